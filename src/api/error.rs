//! What the public services refuse, or fail at, that is their own (not the
//! store's, Raft's or the analyst's): each variant carries the values that
//! made it, and [`super::status`] decides its gRPC code.
use crate::ledger::batch::BatchError;
use crate::ledger::event::EventError;
use crate::storage::ledger_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    // The request itself (INVALID_ARGUMENT unless noted).
    #[error("append needs at least one event")]
    EmptyBatch,
    /// RESOURCE_EXHAUSTED.
    #[error("batch of {count} events exceeds the limit of {max}")]
    BatchEvents { count: usize, max: usize },
    /// RESOURCE_EXHAUSTED.
    #[error("batch of {bytes} bytes exceeds the limit of {max}")]
    BatchBytes { bytes: usize, max: usize },
    /// The batch rules every replica applies at commit, checked first.
    #[error(transparent)]
    Batch(BatchError),
    #[error("event {index}: {error}")]
    Event { index: usize, error: EventError },
    #[error(
        "event {index}: outcome must be one of success, failure, denied, unknown (got {value})"
    )]
    EventOutcome { index: usize, value: i32 },
    #[error(
        "event {index}: idempotency key {key:?} of source {source_name:?} appears twice in the batch"
    )]
    DuplicateKey {
        index: usize,
        key: String,
        source_name: String,
    },
    /// PERMISSION_DENIED: no client writes in another service's name.
    #[error("event {index}: {caller_kind} {caller:?} may not append as source {source_name:?} (allowed: {allowed})")]
    SourceNotAllowed {
        index: usize,
        caller_kind: &'static str,
        caller: String,
        source_name: String,
        allowed: String,
    },
    #[error("refused where it is applied: {reason}")]
    RefusedAtApply { reason: String },
    #[error("end {end} is before start {start}")]
    RangeBackwards { start: u64, end: u64 },
    #[error("old size {old} is larger than new size {new}")]
    SizesBackwards { old: u64, new: u64 },
    #[error("page size {size} exceeds the limit of {max}")]
    PageTooLarge { size: u32, max: u64 },
    #[error("until ({until}) must be after since ({since})")]
    UntilNotAfterSince { since: i64, until: i64 },
    #[error("unknown outcome value {0}")]
    UnknownOutcome(i32),
    #[error("node id must be non-zero")]
    NodeIdZero,
    #[error("{field} {addr:?} is not host:port")]
    NotHostPort { field: &'static str, addr: String },
    #[error("verifier_key is not a signed-note verifier key: {0}")]
    BadVerifierKey(String),
    /// ALREADY_EXISTS.
    #[error("verifier_key already belongs to node {owner}; every node signs with its own key")]
    VerifierKeyTaken { owner: u64 },
    #[error("a membership needs at least one voter")]
    NoVoters,
    #[error("max_entries {count} is more than the maximum of {max}")]
    AnswerEntries { count: u32, max: u32 },
    #[error("give a window: a time expression (window), a time range (from/to) or the last N entries (last)")]
    NoWindow,
    #[error("give only one of: window, from/to, last")]
    WindowsConflict,
    #[error("give either window or from/to, not both")]
    WindowAndRange,
    #[error("now_unix_nanos {value}: {reason}")]
    BadNow { value: i64, reason: String },
    #[error("{0}")]
    BadWindow(String),
    #[error("\"{0}\" is not a time expression I understand")]
    UnknownWindow(String),
    #[error("the window ends ({to}) before it starts ({from})")]
    WindowBackwards { from: i64, to: i64 },
    #[error("min_score {0} is outside 0..=1")]
    MinScore(f32),
    #[error("give entry indices or events to categorise")]
    NothingToCategorise,
    #[error("{count} items to categorise; at most {max} per call")]
    TooManyToCategorise { count: usize, max: usize },
    /// NOT_FOUND.
    #[error("entry {index} is not in the analysis index (it holds up to entry {indexed})")]
    NotIndexed { index: u64, indexed: u64 },

    // This node cannot answer now, another or a later call can.
    /// FAILED_PRECONDITION.
    #[error("no signed checkpoint yet")]
    NoCheckpoint,
    /// FAILED_PRECONDITION: never serve what a minority signed.
    #[error(
        "the checkpoint at size {size} has {signatures} voter signatures, fewer than the \
         quorum of {quorum}; ask for the latest (size 0) or retry once voters have signed"
    )]
    UnderSigned {
        size: u64,
        signatures: usize,
        quorum: usize,
    },
    /// FAILED_PRECONDITION: the joining node is refused.
    #[error("node {id} at {addr} is not reachable as a peer of this cluster: {reason}")]
    PeerUnreachable {
        id: u64,
        addr: String,
        reason: String,
    },
    /// DEADLINE_EXCEEDED: committed, but not yet covered by a checkpoint.
    #[error(
        "the events were committed at indices {indices:?}, but no checkpoint \
         signed by a majority covered tree size {tree_size} within \
         {wait_ms} ms; fetch their proofs later with GetInclusionProof"
    )]
    ReceiptTimeout {
        indices: Vec<u64>,
        tree_size: u64,
        wait_ms: u64,
    },
    /// UNAVAILABLE.
    #[error("no leader is known yet, retry shortly")]
    NoLeader,
    /// UNAVAILABLE.
    #[error("leader {leader} has no known client address")]
    LeaderUnaddressed { leader: u64 },
    /// UNAVAILABLE.
    #[error("linearizable read refused: {0}")]
    ReadRefused(String),
    /// UNAVAILABLE.
    #[error("node is stopping")]
    Stopping,
    /// RESOURCE_EXHAUSTED: a `follow` subscriber too slow for the flags.
    #[error("this follower fell {0} flags behind; reconnect and list from the last flag's time")]
    FlagsLagged(u64),

    // This node is broken (INTERNAL: an operator must look).
    #[error("stored leaf {index} does not decode: {reason}")]
    LeafUndecodable { index: u64, reason: String },
    #[error("stored leaf {index} claims index {claimed}")]
    LeafMisplaced { index: u64, claimed: u64 },
    #[error("leaf {index} is missing")]
    LeafMissing { index: u64 },
    #[error("{what} answered with {answer}")]
    Unexpected { what: &'static str, answer: String },
    #[error("channel to node {node}: {reason}")]
    Channel { node: u64, reason: String },
    /// The store's own error, coded by `From<StoreError>`.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a worker task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// An event a client sent, refused field by field; `.0` names it.
impl From<(usize, EventError)> for ApiError {
    fn from((index, error): (usize, EventError)) -> ApiError {
        ApiError::Event { index, error }
    }
}
