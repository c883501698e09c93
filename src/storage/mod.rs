pub mod fsck;
pub mod ledger_store;
