//! Every integration test in one binary: linking the crate (and llama.cpp)
//! once instead of once per file keeps the clean-clone suite inside its budget.

mod common;

mod analysis;
mod api_errors;
mod audit;
mod cli;
mod cluster;
mod detect;
mod disk;
mod fsck;
mod group_commit;
mod ingest;
mod layers;
mod ledger_vectors;
mod log_keeper;
mod membership;
mod parser_robustness;
mod raft_storage_suite;
mod security;
mod tiles;
mod witness;
