//! The outside auditor's side: checks a running log through its public read
//! API only, trusting nothing but a [`TrustPolicy`](crate::ledger::policy::TrustPolicy)
//! and what this auditor itself saw before.
//!
//! ## Layout
//! - [`state`]: what a verifier or monitor remembers between runs (the
//!   largest checkpoint it accepted, per-node sizes, roots seen by size), in
//!   a JSON file replaced atomically.
//! - [`reader`]: the public gRPC calls, with every response checked for
//!   shape (hash lengths, sizes) before use.
//! - [`verifier`]: `ironlog verify` and `ironlog export`: the latest
//!   checkpoint against the policy, consistency from the remembered one,
//!   inclusion of chosen entries, or a full recomputation of the tree.
//! - [`monitor`]: `ironlog monitor`: the same checks, repeatedly, across
//!   several nodes, raising alerts on rollback, fork, inconsistency and
//!   missing signatures.
//!
//! Proof arithmetic and note checks come from the pure
//! [`crate::ledger`] core; this module only fetches and compares.

pub mod monitor;
pub mod reader;
pub mod state;
pub mod verifier;

use crate::ledger::bundle::BundleError;
use crate::ledger::policy::PolicyError;

/// Why an audit did not pass. Each message says what was expected and what
/// was found, so the verdict line alone tells an operator where to look.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{endpoint}: {code:?}: {message}")]
    Status {
        endpoint: String,
        code: tonic::Code,
        message: String,
    },
    #[error("{endpoint} sent an invalid response: {reason}")]
    BadResponse { endpoint: String, reason: String },
    #[error("checkpoint not accepted: {0}")]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("ROLLBACK: the log now serves checkpoint size {new}, smaller than size {old} accepted before (a rolled-back log, or a lagging node: try another node)")]
    Rollback { old: u64, new: u64 },
    #[error("FORK: two checkpoints of size {size} with different roots: {old_root} accepted before, {new_root} now")]
    Fork {
        size: u64,
        old_root: String,
        new_root: String,
    },
    #[error("INCONSISTENT: checkpoint {new} is not an extension of checkpoint {old} accepted before: {reason}")]
    Inconsistent { old: u64, new: u64, reason: String },
    #[error("entry {index}: inclusion proof against checkpoint {size} does NOT verify: {reason}")]
    Inclusion {
        index: u64,
        size: u64,
        reason: String,
    },
    #[error("entry {index}: {reason}")]
    Entry { index: u64, reason: String },
    #[error("full check: the {size} leaves hash to root {computed}, but the signed checkpoint says {signed}")]
    RootMismatch {
        size: u64,
        computed: String,
        signed: String,
    },
    #[error("state file {path}: {reason}")]
    State { path: String, reason: String },
    #[error("{0}")]
    Input(String),
}
