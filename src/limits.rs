//! Every bound in Ironlog, with its unit and the reason for its value.
//!
//! Requests beyond these limits are refused with a status naming the limit;
//! nothing is truncated silently.
//!
//! This module depends on nothing else in the crate (only on the core's own
//! constants), so every other module may use it without a cycle.

// The bounds on events, leaves and batches belong to the transparency-log
// core, which enforces them; re-exported so every limit is named here.
pub use ironlog_tlog::limits::{
    BATCH_BYTES_MAX, BATCH_EVENTS_MAX, DETAILS_BYTES_MAX, FIELD_BYTES_MAX, LEAF_BYTES_MAX,
    ORIGIN_BYTES_MAX,
};

/// gRPC message size limit, bytes: the largest batch plus framing slack.
pub const GRPC_MESSAGE_BYTES_MAX: usize = BATCH_BYTES_MAX + 1024 * 1024;

/// Most entries returned by one `GetEntries` or `Query` page.
pub const PAGE_ENTRIES_MAX: u64 = 1000;

/// Default `Query` page size when the caller gives none.
pub const PAGE_ENTRIES_DEFAULT: u32 = 100;

/// Most index rows one `Query` call scans before it returns a partial page
/// with a continuation token, so a selective query cannot hold a read
/// transaction (and pin redb pages) for long.
pub const QUERY_SCAN_ROWS_MAX: u64 = 100_000;

/// Leaves stored before their query index rows are written, all at once, in
/// key order. Four index rows per leaf inserted one apply at a time copied
/// the same scattered B-tree pages over and over: with one event per apply
/// they halved the ledger's apply rate and doubled its file. A query reads
/// the leaves beyond the index directly, so this also bounds the leaves
/// such a query decodes without an index.
pub const INDEX_DEFER_LEAVES: u64 = 1024;

/// Most leaves indexed in one step, so the decoded leaves held at once stay
/// bounded however many wait: when a snapshot is installed, or a store
/// written before index runs is indexed again, a step at a time.
pub const INDEX_STEP_LEAVES_MAX: u64 = 65_536;

/// Most leaves an apply may add and still run inline on the async worker
/// that drives the state machine (one leaf applies in about 5 µs, so this
/// is a few hundred microseconds); larger applies, and any that completes
/// an index step, first hand the worker's other tasks to another thread.
pub const APPLY_INLINE_LEAVES_MAX: u64 = 64;

/// Bytes of snapshot data per gRPC chunk when streaming a snapshot.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// Deadline for one snapshot chunk to be accepted by the receiver, ms.
/// Per chunk rather than for the whole transfer, so large logs still ship.
pub const SNAPSHOT_CHUNK_TIMEOUT_MS: u64 = 10_000;

/// Entries buffered per `Tail` subscriber before it is told to catch up
/// from storage instead.
pub const TAIL_BUFFER_ENTRIES: usize = 1024;

/// How long `Append` with `wait_checkpoint` waits for a checkpoint signed
/// by a majority to cover the batch, ms. Checkpoints come every second by
/// default; this leaves room for an election and a slow cosigner.
pub const RECEIPT_WAIT_MS: u64 = 30_000;
/// Largest entry bundle served over HTTP (tlog-tiles), bytes: a full
/// bundle of the largest leaves, each behind its two-byte length.
pub const ENTRY_BUNDLE_BYTES_MAX: usize = ironlog_tlog::tile::TILE_WIDTH as usize
    * (ironlog_tlog::tile::BUNDLE_LENGTH_BYTES + LEAF_BYTES_MAX);

/// Tile and checkpoint reads the HTTP endpoint runs at once. Each is one
/// redb read transaction on a blocking thread and holds at most one bundle
/// in memory; past this the endpoint answers 503 with Retry-After, so a
/// crawler cannot take the blocking pool (and memory) from Raft and gRPC.
pub const TILE_READS_CONCURRENT_MAX: usize = 16;

/// Seconds a client is told to wait (Retry-After) when the HTTP endpoint is
/// at [`TILE_READS_CONCURRENT_MAX`] or has no signed checkpoint yet.
pub const TILE_RETRY_AFTER_S: u64 = 1;

/// Question and free-text inputs are bounded at the API edge.
pub const QUESTION_BYTES_MAX: usize = 2048;

/// Largest `add-checkpoint` request a witness reads, bytes. A request is an
/// old-size line, at most 63 proof lines of 45 bytes and one checkpoint
/// note; this leaves room for a note with dozens of signature lines.
pub const WITNESS_REQUEST_BYTES_MAX: usize = 64 * 1024;

/// Largest witness response a node reads, bytes: a few cosignature lines
/// of about 150 bytes each, or a short refusal.
pub const WITNESS_RESPONSE_BYTES_MAX: usize = 16 * 1024;

/// How long a node waits for one witness request (connect, send, answer),
/// ms. A witness fsyncs before answering; anything slower is treated as down
/// until the next checkpoint.
pub const WITNESS_REQUEST_TIMEOUT_MS: u64 = 5_000;

/// Most problems one `fsck` report lists; the rest are only counted. A badly
/// damaged file can fail several checks for every leaf, and the report must
/// stay small enough to hold in memory and to read.
pub const FSCK_PROBLEMS_MAX: usize = 1000;

/// Problems `ironlog fsck` prints as text, one line each; `--json` lists all
/// the report holds.
pub const FSCK_PROBLEMS_PRINTED_MAX: usize = 20;

/// redb page cache while `fsck` reads, bytes. The walk reads the tables in key
/// order, touching most pages once, so redb's default of 1 GiB would only grow
/// the checker's memory on a large ledger without making it faster.
pub const FSCK_CACHE_BYTES: usize = 64 * 1024 * 1024;

// Bundles in flight at once stay within a modest share of a node's memory.
const _: () = assert!(TILE_READS_CONCURRENT_MAX * ENTRY_BUNDLE_BYTES_MAX <= 256 * 1024 * 1024);
const _: () = assert!(
    WITNESS_REQUEST_BYTES_MAX > ironlog_tlog::witness::PROOF_LINES_MAX * 45 + 4 * ORIGIN_BYTES_MAX
);
const _: () = assert!(BATCH_BYTES_MAX < GRPC_MESSAGE_BYTES_MAX);
const _: () = assert!(PAGE_ENTRIES_DEFAULT as u64 <= PAGE_ENTRIES_MAX);
const _: () = assert!(SNAPSHOT_CHUNK_BYTES < GRPC_MESSAGE_BYTES_MAX);
const _: () = assert!(FSCK_PROBLEMS_PRINTED_MAX <= FSCK_PROBLEMS_MAX);

// ---- the analysis node's model

/// Tokens in one model context: the longest prompt plus what is generated
/// after it. Prompts are built from bounded facts, so 2048 holds them with
/// room; a larger context costs memory (482 MB RSS at 8192 here) for nothing.
pub const MODEL_CONTEXT_TOKENS: usize = 2048;

/// Most tokens one `generate` call produces: a summary paragraph is about a
/// hundred; at about 40 tokens/s on 2 threads this bounds a call to seconds.
pub const MODEL_GENERATE_TOKENS_MAX: usize = 256;

/// Most candidates scored in one call (the category labels, or the values
/// offered for one slot of a question, plus "none").
pub const MODEL_CANDIDATES_MAX: usize = 32;

/// Tokens of one candidate that count towards its score; values longer than
/// this are told apart by their first tokens.
pub const MODEL_CANDIDATE_TOKENS_MAX: usize = 24;

/// Default wall-clock limit for one model computation, ms. A timeout is an
/// answer ("the model timed out"), never a stuck request.
pub const MODEL_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// Most CPU threads one model computation may use: more than the machine's
/// cores only adds contention.
pub const MODEL_THREADS_MAX: u32 = 64;

/// Most model computations at once.
pub const MODEL_CONCURRENCY_MAX: usize = 16;

/// Longest configurable model timeout, ms (10 minutes).
pub const MODEL_TIMEOUT_MS_MAX: u64 = 600_000;

// ---- the analyst

/// Entries the analysis index holds in memory (about 100 bytes each plus
/// shared strings); older ones are dropped from the index, never from the
/// log, and answers say how far back the index reaches.
pub const ANALYSIS_INDEX_ENTRIES_MAX: usize = 2_000_000;

/// Bytes of newly applied events (as `storage::applied_feed::event_bytes`
/// estimates them in memory) queued for the analyst and not yet indexed.
/// Past this, apply drops what it would hand over rather than wait, and the
/// analyst reads the dropped leaves back from the store. Several of the
/// largest batches, so a follower a moment behind is still fed; small beside
/// the model the analysis node loads.
pub const APPLIED_FEED_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Values offered per slot of a question (the model scores at most these
/// plus "none").
pub const SLOT_CANDIDATES_MAX: usize = 8;

/// Entries an answer returns with proofs by default, and at most.
pub const ANSWER_ENTRIES_DEFAULT: u32 = 20;
pub const ANSWER_ENTRIES_MAX: u32 = 200;

/// Items in each "top" list of a summary (actors, resources, flags).
pub const SUMMARY_LIST_MAX: usize = 10;

/// Notable changes named in a summary.
pub const SUMMARY_NOTABLE_MAX: usize = 10;

/// Anomaly flags kept in memory for `Anomalies` and summaries; the oldest go
/// first. Flags are recomputed from the log at start, so none is lost.
pub const FLAGS_KEPT_MAX: usize = 100_000;

/// Entry indices listed across the kept flags, evidence and context, summed
/// (16 MB). A flag lists every entry of its incident, up to
/// [`ANOMALY_INCIDENT_ENTRIES_MAX`] and [`ANOMALY_INCIDENT_CONTEXT_MAX`], so
/// [`FLAGS_KEPT_MAX`] full ones would take about 1 GB; past this the oldest
/// flags go first, as past [`FLAGS_KEPT_MAX`].
pub const FLAG_ENTRIES_KEPT_MAX: usize = 2_000_000;

// The newest incidents always fit whole.
const _: () = assert!(
    FLAG_ENTRIES_KEPT_MAX >= 16 * (ANOMALY_INCIDENT_ENTRIES_MAX + ANOMALY_INCIDENT_CONTEXT_MAX)
);

/// New flags buffered per `Anomalies` follower before it is told it fell
/// behind.
pub const FLAGS_STREAM_BUFFER: usize = 1024;

/// Entries the background categoriser scores per round before it yields to
/// questions.
pub const CATEGORIZE_ROUND_ENTRIES: usize = 16;

/// Events one `Categorize` call may carry or name.
pub const CATEGORIZE_EVENTS_MAX: usize = 256;

// ---- analysis: masking and time expressions ----

/// Most distinct originals one request's mask table holds
/// (`analysis::mask`). A prompt carries at most a few hundred entries with a
/// handful of addresses and secrets each; past this a hostile text could
/// only grow the table, so later originals are masked as `<KIND_OVERFLOW>`
/// (hidden, not restorable) instead.
pub const MASK_TABLE_ENTRIES_MAX: usize = 4096;

/// Most bytes of originals one mask table holds, summed. Bounds the copies
/// it keeps when originals are long (PEM blocks, connection strings); past
/// this, as past [`MASK_TABLE_ENTRIES_MAX`], originals overflow.
pub const MASK_TABLE_BYTES_MAX: usize = 1024 * 1024;

/// Longest time range a question may name, days (`analysis::when`): ten
/// years, leap days included. Anything longer is far more likely a typo or
/// a misread number than a question about the ledger, and is refused.
pub const TIME_RANGE_DAYS_MAX: i64 = 10 * 365 + 3;

// The whole `details` of one entry fits in a mask table on its own, so no
// single entry can overflow a fresh table.
const _: () = assert!(MASK_TABLE_BYTES_MAX >= DETAILS_BYTES_MAX);
// ---- Analysis: the anomaly detector (src/analysis/anomaly/) ----
// The detector keeps per-actor state for a stream of any length, so every
// collection in it is capped here; the worst case is summed below.

/// Actors whose baselines and windows the detector keeps. Past this the
/// least recently seen actor is forgotten (and starts over, warm-up
/// included, if it returns): a burst of random actor names then costs a
/// fixed amount of memory instead of growing without end.
pub const ANOMALY_ACTORS_MAX: usize = 4096;

/// Accounts tracked as targets of failed logins, for bursts against one
/// account from many actors; least recently targeted forgotten first.
pub const ANOMALY_TARGETS_MAX: usize = 4096;

/// Distinct networks, user-agent products and resource families remembered
/// per actor. An actor already past this many has no usable baseline for
/// that dimension, so new values stop being flagged rather than evicting
/// old ones (which would flag the same values over and over).
pub const ANOMALY_BASELINE_VALUES_MAX: usize = 64;

/// Distinct exact resources remembered per actor, for first-seen
/// actor/resource pairs; same saturation rule as above.
pub const ANOMALY_RESOURCES_PER_ACTOR_MAX: usize = 256;

/// Events one sliding window keeps (an actor's failures, reads or exports; a
/// target's failed logins). Count thresholds cannot exceed it.
pub const ANOMALY_WINDOW_EVENTS_MAX: usize = 64;

/// Longest window or bucket any detector setting may ask for, seconds: a day
/// covers the slowest pattern the flags describe (privilege change, then
/// sensitive access) without holding stale state.
pub const ANOMALY_WINDOW_S_MAX: u32 = 24 * 3600;

/// Entry indices listed in one flag (the latest that raised it), so a flag
/// stays small enough to store and show.
pub const ANOMALY_FLAG_ENTRIES_MAX: usize = 16;

/// Incidents the detector keeps open at once (`anomaly/incident.rs`): each
/// gathers the entries of one flagged session, actor or account while it
/// stays active. Real incidents overlap in the tens; past this the least
/// recently grown one is forgotten, so a flood of flagged actors costs a
/// fixed amount of memory. A forgotten incident only stops growing: what it
/// already reported stays with the analyst.
pub const ANOMALY_INCIDENTS_OPEN_MAX: usize = 512;

/// Entries one incident lists, the first to join (how it began and what
/// raised its flags). Enough for an attacker's session or a burst of a few
/// hundred calls; past this an incident counts its entries instead of
/// listing them, so one busy actor cannot fill memory.
pub const ANOMALY_INCIDENT_ENTRIES_MAX: usize = 1024;

/// Context entries one incident lists (`anomaly/incident.rs`): the actor's
/// other entries while a single-event incident is open, which raised no
/// flag of the incident's level. The first this many are listed, enough to
/// see what the actor did around the flagged events; later ones are not
/// listed, as context is for reading, not for export.
pub const ANOMALY_INCIDENT_CONTEXT_MAX: usize = 256;

/// Longest quiet gap, seconds of event time, after which an incident stops
/// growing, for any setting: the longest detector window, since a window
/// flag's incident stays open for its own window.
pub const ANOMALY_INCIDENT_IDLE_S_MAX: u32 = ANOMALY_WINDOW_S_MAX;

/// Longest an incident lasts, seconds of event time from its first entry to
/// its last. An actor busy without pause never goes quiet; without this its
/// incident would absorb flags raised days later. A day, as the windows.
pub const ANOMALY_INCIDENT_SPAN_S_MAX: u32 = 24 * 3600;

/// Worst-case payload of the detector's state, bytes: per actor two copies
/// of its name, three windows of 24-byte entries, the exact-resource set and
/// three baseline sets of 8-byte hashes, 24 hour counters and fixed fields;
/// per target its name and one window; per open incident two copies of its
/// key (a name and a tag), its listed entries and context, and fixed
/// fields. Hash-table overhead comes on top (at most about twice this).
pub const ANOMALY_STATE_BYTES_MAX: usize = ANOMALY_ACTORS_MAX
    * (2 * FIELD_BYTES_MAX
        + 3 * ANOMALY_WINDOW_EVENTS_MAX * 24
        + ANOMALY_RESOURCES_PER_ACTOR_MAX * 8
        + 3 * ANOMALY_BASELINE_VALUES_MAX * 8
        + 24 * 4
        + 256)
    + ANOMALY_TARGETS_MAX * (2 * FIELD_BYTES_MAX + ANOMALY_WINDOW_EVENTS_MAX * 24 + 64)
    + ANOMALY_INCIDENTS_OPEN_MAX
        * (2 * (FIELD_BYTES_MAX + 8)
            + (ANOMALY_INCIDENT_ENTRIES_MAX + ANOMALY_INCIDENT_CONTEXT_MAX) * 8
            + 64);

const _: () = assert!(ANOMALY_FLAG_ENTRIES_MAX <= ANOMALY_WINDOW_EVENTS_MAX);
// A flag's cited entries always fit in its incident, with room to grow.
const _: () = assert!(ANOMALY_FLAG_ENTRIES_MAX < ANOMALY_INCIDENT_ENTRIES_MAX);
// A window flag's incident stays open for the flag's own window, and a
// quiet gap never outlasts the whole incident.
const _: () = assert!(ANOMALY_WINDOW_S_MAX <= ANOMALY_INCIDENT_IDLE_S_MAX);
const _: () = assert!(ANOMALY_INCIDENT_IDLE_S_MAX <= ANOMALY_INCIDENT_SPAN_S_MAX);
// The feed takes several of the largest batches, and its budget is counted
// in the semaphore permits one batch may take at once (u32).
const _: () = assert!(APPLIED_FEED_BYTES_MAX >= 8 * BATCH_BYTES_MAX);
const _: () = assert!(APPLIED_FEED_BYTES_MAX <= u32::MAX as usize);
// The analysis node runs beside a model; its detector stays under 64 MiB.
const _: () = assert!(ANOMALY_STATE_BYTES_MAX <= 64 * 1024 * 1024);
// ---------------------------------------------------------------------------
// Ingesting native audit logs (`crate::ingest`, `ironlog ingest`).

/// Largest single input record, bytes: one JSON record (a line, an array
/// element or one element of a `Records`/`items` wrapper) or one auditd
/// line. Records are parsed one at a time so a file of any size streams in
/// bounded memory; real audit records are a few KiB (large k8s request
/// objects reach a few hundred), so 8 MiB only stops garbage.
pub const INGEST_RECORD_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Names listed in `details["_ironlog_dropped"]` when a record's largest
/// fields are dropped to fit [`DETAILS_BYTES_MAX`]; beyond this the list
/// ends with a count. Without a cap a record of many small fields could
/// need a list as large as what it dropped.
pub const INGEST_DROPPED_NAMES_MAX: usize = 32;

/// Longest field name kept in that list, bytes (longer names are cut).
pub const INGEST_DROPPED_NAME_BYTES_MAX: usize = 64;

/// Most auditd lines grouped into one event. A syscall event is a handful
/// of records (SYSCALL, EXECVE, CWD, PATH..., PROCTITLE, EOE); an execve
/// with thousands of arguments is split by the kernel into many EXECVE
/// records, and beyond this they are dropped and counted in the event.
pub const AUDITD_EVENT_RECORDS_MAX: usize = 256;

/// Longest auditd line, bytes. The kernel caps one record at about 9 KiB
/// (MAX_AUDIT_MESSAGE_LENGTH); a JSON wrapper (a syslog shipper's object
/// around the record) adds a few KiB more.
pub const AUDITD_LINE_BYTES_MAX: usize = 128 * 1024;

/// Lines after an auditd event's last record before it is taken as
/// complete when no EOE record closes it. The kernel writes an event's
/// records together, interleaved at most with a few other events'.
pub const AUDITD_EVENT_GAP_LINES: u64 = 64;

/// Bytes of auditd lines held by open events (seen, not yet complete) at
/// once; past it the oldest open event is completed early. Bounds memory on
/// input whose events never close, whatever their number or size.
pub const AUDITD_OPEN_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Bad records `ironlog ingest --skip-invalid` prints, one line each; the
/// rest are only counted.
pub const INGEST_ERRORS_PRINTED_MAX: usize = 20;

/// Times one `Append` batch is retried after UNAVAILABLE (no leader for a
/// moment, or a leader change mid-call) when every event in it carries an
/// idempotency key, so a retry cannot duplicate one. Enough to ride out a
/// few elections.
pub const APPEND_UNAVAILABLE_RETRIES_MAX: u32 = 20;

/// Pause before such a retry, ms: about one election timeout.
pub const APPEND_RETRY_BACKOFF_MS: u64 = 250;

// Several full-size events fit in the open-events budget.
const _: () = assert!(4 * AUDITD_LINE_BYTES_MAX * 16 <= AUDITD_OPEN_BYTES_MAX);
const _: () = assert!(AUDITD_LINE_BYTES_MAX <= INGEST_RECORD_BYTES_MAX);
// The dropped-names list is a small fraction of the details it describes.
const _: () =
    assert!(INGEST_DROPPED_NAMES_MAX * (INGEST_DROPPED_NAME_BYTES_MAX + 8) < DETAILS_BYTES_MAX / 8);

/// Longest a TLS handshake may take on either listener, ms. A client that
/// opens a connection and says nothing holds a connection slot for at most
/// this long.
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

// ---- checkpoint signatures and witness keys (raft apply, storage)

/// Most signature lines one checkpoint note carries: voters' signatures plus
/// witnesses' cosignatures. signed_note (and every C2SP verifier) refuses a
/// note of more than 100; a note past that would be unverifiable for
/// everyone, so lines beyond this bound are refused when applied.
pub const CHECKPOINT_SIGNATURE_LINES_MAX: usize = 48;

/// Of those, the most witness cosignatures per checkpoint: one per witness
/// key, and a node submits to at most `config::WITNESSES_MAX` witnesses. The
/// rest of the lines are kept for voters, so witnesses can never crowd out
/// the signatures a quorum needs.
pub const CHECKPOINT_WITNESS_LINES_MAX: usize = 16;

/// Witness keys once in the replicated set and since removed, remembered so
/// the cosignatures they made before their removal still install from a
/// snapshot. Each key is about 100 bytes in the state metadata; a set
/// change beyond this many removals is refused.
pub const WITNESS_KEYS_FORMER_MAX: usize = 256;

const _: () = assert!(CHECKPOINT_WITNESS_LINES_MAX < CHECKPOINT_SIGNATURE_LINES_MAX);
// signed_note opens notes of at most 100 signatures.
const _: () = assert!(CHECKPOINT_SIGNATURE_LINES_MAX < 100);

/// Requests per second one client identity may make when its config entry
/// and `auth.requests_per_s` say nothing: far above one service's audit
/// rate, low enough that one runaway client cannot starve the others.
pub const IDENTITY_REQUESTS_PER_S_DEFAULT: u32 = 5_000;

/// Requests one client identity may have in flight when the config says
/// nothing: enough for a batching appender's pipeline.
pub const IDENTITY_IN_FLIGHT_MAX_DEFAULT: u32 = 256;

/// Sources that only the nodes append as (their records of refused
/// requests): no client identity may use them, whatever its patterns.
pub const RESERVED_SOURCE_PREFIX: &str = "ironlog/";

/// Refusals recorded in the ledger per second, per node, at most; beyond it
/// refusals are counted and the count goes into the next record, so a
/// flood of bad requests cannot fill the log.
pub const REFUSAL_EVENTS_PER_S: u32 = 10;

/// Refusals waiting to be recorded, per node; beyond it they are counted only.
pub const REFUSAL_QUEUE_MAX: usize = 256;

// ---- the trust boundary: key files, HTTP connections, byte-bounded reads
// (`key_file`, `http_server`, `api::ledger_service`, `raft::log_store`).

/// Largest private key file read, bytes. A signing key is about 100 bytes
/// and a PEM RSA-8192 TLS key about 6.5 KiB; anything larger is not a key,
/// and reading it would only grow memory.
pub const KEY_FILE_BYTES_MAX: usize = 16 * 1024;

/// How long an HTTP client (tlog-tiles, witness) has to send a request's
/// whole header, ms, counted from when the server starts waiting for it: on
/// a new connection once TLS is up, on a kept-alive one once the previous
/// response is sent, so it is also the keep-alive idle timeout. Without it
/// a client that never finishes a header holds a connection for ever.
pub const HTTP_HEADER_READ_TIMEOUT_MS: u64 = 10_000;

/// Longest one HTTP request may take from its header to its response, ms
/// (body read and handler included). Tile and checkpoint reads take
/// milliseconds and a witness fsyncs once; past this the server answers
/// 503, so a stuck read cannot hold a connection slot.
pub const HTTP_REQUEST_TIMEOUT_MS: u64 = 10_000;

/// Longest an HTTP connection may go without reading or writing a byte, ms:
/// a client that stops reading its response is dropped. Longer than a
/// request may take, so a request in progress is never cut by it.
pub const HTTP_IDLE_TIMEOUT_MS: u64 = 30_000;

/// Deadline for an HTTP client's TLS handshake, ms: a few round trips.
pub const HTTP_TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// HTTP connections one listener serves at once; more are closed as soon as
/// they are accepted. Each holds a read buffer (below) and at most one
/// request, so this bounds the endpoint's memory and file descriptors.
pub const HTTP_CONNECTIONS_MAX: usize = 256;

/// Read buffer of one HTTP connection, bytes; a request header must fit in
/// it (431 otherwise). Tile paths and witness requests have short headers.
pub const HTTP_READ_BUFFER_BYTES_MAX: usize = 64 * 1024;

/// Largest `GetEntries` page, bytes of encoded entries. A page stops before
/// this (but holds at least one entry) and the caller asks again from the
/// last index + 1; below the gRPC message limit with room for framing, so
/// a page of large leaves never fails to encode or decode.
pub const ENTRIES_PAGE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Largest encoded `Entry` message for a valid leaf: the leaf, the event
/// decoded from it (the same fields again, `details` as JSON text), the
/// 32-byte leaf hash, and tags and lengths.
pub const ENTRY_MESSAGE_BYTES_MAX: usize = 2 * LEAF_BYTES_MAX + 1024;

/// Bytes of encoded entries buffered per `Tail` subscriber (besides the
/// entry count bound); a subscriber that falls further behind is fed from
/// storage as it catches up, so a slow reader costs at most this.
pub const TAIL_BUFFER_BYTES_MAX: usize = 1024 * 1024;

/// Room in a Raft message for what is not entries (vote, log ids, commit
/// index, JSON punctuation) and for the protobuf and gRPC framing, bytes.
pub const RAFT_MESSAGE_FRAMING_BYTES: usize = 64 * 1024;

/// Budget of one AppendEntries payload, bytes of entries as serde_json
/// writes them (the log stores that very JSON, so its size is what goes on
/// the wire, escaping included). Entries beyond it wait for the next
/// message; a single entry larger than this is still sent, alone, so
/// replication always progresses.
pub const RAFT_APPEND_BYTES_MAX: usize = GRPC_MESSAGE_BYTES_MAX - RAFT_MESSAGE_FRAMING_BYTES;

/// Bytes of durable Raft entries (as stored JSON) the log keeps in memory
/// after they are written (`raft::log_store`), the newest ones: what
/// replication to a follower that keeps up reads, without a disk read and a
/// JSON decode per entry. Entries not yet durable are always kept, whatever
/// their size; a follower further behind is fed from the segment files.
/// Each entry is held both parsed and as its JSON
/// (`raft::logged_command`), so the tail's memory is about twice this.
pub const RAFT_LOG_TAIL_BYTES: usize = 16 * 1024 * 1024;

/// Groups of appends a node keeps in flight at once (`raft::group_commit`):
/// appends arriving while this many are being committed wait and travel
/// together in the next. Enough to keep the Raft pipeline busy (groups
/// replicating while the next forms) without splitting a burst into many
/// small entries; measured against 2 on this machine (one round of
/// bench-vs-etcd.sh): 16 x 1 and 64 x 1 the same, 8 x 100 0.49x -> 0.56x
/// of etcd.
pub const GROUP_IN_FLIGHT_MAX: usize = 4;

/// Groups of appends a node that does not lead may have forwarded to the
/// leader and not yet answered. The leader groups forwarded batches again
/// with all it receives ([`GROUP_IN_FLIGHT_MAX`] applies there), so a
/// follower that held its clients' appends back behind four forwards
/// queued them twice. Measured against 4 (16 clients spread over three
/// nodes, two alternations): 2,495 and 2,322 -> 2,623 and 2,643 events/s;
/// 64 measured the same as 16 within the noise.
pub const FORWARD_GROUPS_IN_FLIGHT_MAX: usize = 16;

/// Commands one node may have unanswered on the leader over all its
/// `ForwardStream`s; its streams are read no further until one is
/// answered. A follower has at most [`FORWARD_GROUPS_IN_FLIGHT_MAX`] groups
/// and a few other proposals in flight, so only a faulty peer reaches it;
/// then it holds at most this many Raft messages' worth of memory
/// ([`RAFT_MESSAGE_BYTES_MAX`] each).
pub const FORWARD_IN_FLIGHT_MAX: usize = 64;

/// Worst-case JSON of one Raft entry, bytes: a full `Append` batch whose
/// string fields are all `"` or `\` (each escaped as two bytes; control
/// characters are refused by `Event::validate`, and `details` is already
/// JSON text in the batch), plus field names per event.
pub const RAFT_ENTRY_JSON_BYTES_MAX: usize = 2 * BATCH_BYTES_MAX + BATCH_EVENTS_MAX * 512;

/// Message limit the Raft service and its clients need, bytes: one
/// worst-case entry sent alone with its framing. `GRPC_MESSAGE_BYTES_MAX`
/// holds any payload of several entries, not one such entry.
pub const RAFT_MESSAGE_BYTES_MAX: usize = RAFT_ENTRY_JSON_BYTES_MAX + RAFT_MESSAGE_FRAMING_BYTES;

// A request in progress is never cut by the idle timeout.
const _: () = assert!(HTTP_REQUEST_TIMEOUT_MS < HTTP_IDLE_TIMEOUT_MS);
// hyper refuses read buffers under 8 KiB.
const _: () = assert!(HTTP_READ_BUFFER_BYTES_MAX >= 8192);
// Read buffers of a full HTTP listener stay within a modest share of memory.
const _: () = assert!(HTTP_CONNECTIONS_MAX * HTTP_READ_BUFFER_BYTES_MAX <= 64 * 1024 * 1024);
// A page or a Tail buffer holds at least one valid entry, and a page with
// its framing fits in a gRPC message.
const _: () = assert!(ENTRY_MESSAGE_BYTES_MAX <= TAIL_BUFFER_BYTES_MAX);
const _: () = assert!(TAIL_BUFFER_BYTES_MAX <= ENTRIES_PAGE_BYTES_MAX);
const _: () = assert!(ENTRIES_PAGE_BYTES_MAX + 1024 * 1024 <= GRPC_MESSAGE_BYTES_MAX);
// A full-size Append batch fits one AppendEntries payload unless escaping
// grows it, and the worst single entry fits the Raft message limit.
const _: () = assert!(BATCH_BYTES_MAX <= RAFT_APPEND_BYTES_MAX);
const _: () = assert!(RAFT_APPEND_BYTES_MAX + RAFT_MESSAGE_FRAMING_BYTES <= GRPC_MESSAGE_BYTES_MAX);
const _: () = assert!(GRPC_MESSAGE_BYTES_MAX <= RAFT_MESSAGE_BYTES_MAX);

/// Connections the client listener holds open at once; one more is closed
/// on accept. Services keep one or a few channels each.
pub const GRPC_CLIENT_CONNECTIONS_MAX: usize = 1024;

/// Connections the peer listener holds open at once: a few per peer.
pub const GRPC_PEER_CONNECTIONS_MAX: usize = 64;

/// HTTP/2 streams (concurrent calls) per connection on either listener.
pub const GRPC_STREAMS_PER_CONNECTION_MAX: u32 = 256;

/// How often a node pings an idle HTTP/2 connection, ms, and how long it
/// waits for the answer before closing it: a half-open `Tail` stream or a
/// vanished peer is found within their sum.
pub const GRPC_KEEPALIVE_INTERVAL_MS: u64 = 30_000;
pub const GRPC_KEEPALIVE_TIMEOUT_MS: u64 = 10_000;

// ---- free disk space (`disk`, `raft::handover`, `raft::service`)

/// Default floor of free space in the data directory's filesystem, bytes
/// (`storage.free_bytes_min`). Below it the node stops writing: it proposes
/// nothing, takes no replication and grants no votes, so redb never meets
/// ENOSPC in the middle of a commit. The floor is the room for what is
/// already under way when it is crossed (entries committed but not yet
/// applied, a stream's next messages before the next measurement, redb's
/// copy-on-write pages): four worst-case entries, each in the Raft log and
/// then in the ledger.
pub const FREE_BYTES_MIN_DEFAULT: u64 = 64 * 1024 * 1024;

/// Longest an apply goes without making the ledger durable, milliseconds.
/// Applies are non-durable commits (a crash re-applies them from the Raft
/// log), so redb holds their pages until a durable commit writes them all,
/// and that commit holds every apply behind it. Left to the snapshot alone
/// (every `raft.snapshot_logs_since_last` entries, on every node at the
/// same index), one flush wrote seconds of appends: at 4,000 appends/s the
/// snapshot's manifest and flush took 18-29 ms (250-300 ms, on all three
/// nodes at once, in a busier run), and 1-9 ms with applies made durable
/// this often.
pub const LEDGER_DURABLE_INTERVAL_MS: u64 = 250;

/// redb's page cache for `ledger.redb` by default (`storage.ledger_cache_bytes`),
/// bytes. redb's own default is 1 GiB, which a node fills as its log grows:
/// a node serving proofs held 148 MiB with 1M entries and 1,623 MiB with 10M
/// (`scripts/bench-proofs.sh`). With a fixed cache a node's memory stays flat
/// as the log grows; reads beyond it come from the OS page cache.
pub const LEDGER_CACHE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// Largest segment file of the Raft log (`raft-log/`), bytes. A purge
/// removes whole segments, so the log keeps up to this much beyond what it
/// must; and the `raft-log` crate's cache keeps up to twice this (the
/// open segment's entries, which it reads only from there, and room as
/// large again) plus one entry, beside the tail ([`RAFT_LOG_TAIL_BYTES`]).
/// The open segment is allocated to this size on disk when it is opened
/// (`raft::wal::Preallocation`), and cut back to its records when it closes.
pub const RAFT_LOG_SEGMENT_BYTES: usize = 16 * 1024 * 1024;

/// How often a node measures the free space of its data directory, ms. One
/// `statvfs` is cheap; this bounds how long replication (which takes the
/// measured view, where a proposal measures afresh) writes past the floor.
pub const FREE_SPACE_CHECK_INTERVAL_MS: u64 = 250;

/// Hysteresis of the floor: a node low on space resumes once free space
/// reaches the floor plus floor / this, so a disk hovering at the floor
/// does not flip the node between refusing and accepting at every
/// measurement (and leadership does not bounce with it).
pub const FREE_BYTES_RESUME_DIVISOR: u64 = 8;

const _: () =
    assert!(FREE_BYTES_MIN_DEFAULT >= 4 * (RAFT_ENTRY_JSON_BYTES_MAX + BATCH_BYTES_MAX) as u64);
// At most a second between measurements: at the rates one batch entry
// per message allows, replication past the floor stays within the room
// the default floor keeps.
const _: () = assert!(FREE_SPACE_CHECK_INTERVAL_MS <= 1000);
const _: () = assert!(FREE_BYTES_RESUME_DIVISOR > 0);
