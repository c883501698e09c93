pub mod ledger_store;
