//! The pure ledger core: no I/O, no async. Raft, redb and tonic call into it.
pub mod batch;
pub mod bundle;
pub mod checkpoint;
pub mod cosignature;
pub mod event;
pub mod merkle;
pub mod policy;
pub mod tile;
pub mod witness;
