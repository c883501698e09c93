//! Ironlog's transparency-log core: no I/O, no async, no storage, no network.
//! The node (Raft, redb, tonic) calls into it, and so can an external
//! verifier that depends on this crate alone.
//!
//! - [`event`]: audit events and their canonical leaf encoding; [`batch`]:
//!   the rules a batch meets before it is committed; [`limits`]: their bounds.
//! - [`merkle`]: the RFC 9162 tree over a stored-hash index, proofs and their
//!   verification; [`tile`]: tlog-tiles coordinates and entry bundles.
//! - [`checkpoint`]: C2SP checkpoints and signed notes; [`cosignature`]:
//!   tlog-cosignature lines; [`witness`]: a witness's decisions;
//!   [`policy`]: trust policies (who must have signed).
//! - [`bundle`]: offline bundles of entries with proofs and a checkpoint.
pub mod batch;
pub mod bundle;
pub mod checkpoint;
pub mod cosignature;
pub mod event;
pub mod limits;
pub mod merkle;
pub mod policy;
pub mod tile;
pub mod witness;
