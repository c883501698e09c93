//! The bounds the core itself enforces on events, leaves and batches. The
//! node's other limits live in `ironlog::limits`, which re-exports these.

/// Longest identifier-like string field (actor id, action, resource, source,
/// actor type, user agent, idempotency key). Long enough for ARNs and URLs,
/// short enough that indexes keyed by these strings stay small.
pub const FIELD_BYTES_MAX: usize = 1024;

/// Largest `details` JSON object, canonicalised. Audit details carry request
/// parameters, not payloads; a bound keeps one event from dominating a batch.
pub const DETAILS_BYTES_MAX: usize = 32 * 1024;

/// Largest encoded leaf (one event plus what the leader adds).
pub const LEAF_BYTES_MAX: usize = DETAILS_BYTES_MAX + 8 * FIELD_BYTES_MAX + 64;

/// Most events in one `Append` batch. A batch is one Raft entry, applied in
/// one redb transaction: the bound keeps that transaction and the Raft
/// message carrying it small enough to replicate within a heartbeat or two.
pub const BATCH_EVENTS_MAX: usize = 1000;

/// Largest encoded `Append` batch, bytes.
pub const BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Longest checkpoint origin, bytes. The origin is the first line of every
/// signed checkpoint and the name of the signing keys; C2SP origins are
/// schemaless URLs, which stay well below this.
pub const ORIGIN_BYTES_MAX: usize = 255;

const _: () = assert!(LEAF_BYTES_MAX < BATCH_BYTES_MAX);
// A leaf's length is written in two bytes in a tlog-tiles entry bundle.
const _: () = assert!(LEAF_BYTES_MAX <= u16::MAX as usize);
