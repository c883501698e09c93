//! The pure ledger core: no I/O, no async. Raft, redb and tonic call into it.
pub mod checkpoint;
pub mod event;
pub mod merkle;
pub mod tile;
