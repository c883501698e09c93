//! Witnessing (C2SP tlog-witness): `ironlog witness`, a server that
//! cosigns a log's checkpoints only while they stay consistent, and the
//! node's side, which submits its checkpoints to witnesses and keeps the
//! cosignatures they return next to the voters' signatures.
//!
//! ## Layout
//! - `state`: the witness's durable memory, the last tree cosigned per origin.
//! - [`server`]: the witness itself: key, trusted logs, state, HTTP.
//! - [`client`]: the HTTP client of `add-checkpoint`, bounded in time and size.
//! - `submitter`: the leader's background task that feeds witnesses and
//!   proposes their cosignatures through Raft.
//!
//! The protocol and the witness's decision are pure and live in
//! [`crate::ledger::witness`].
pub mod client;
pub mod server;
pub(crate) mod state;
pub(crate) mod submitter;
