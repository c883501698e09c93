//! # Ironlog
//!
//! An immutable, replicated audit ledger: three Raft voters replicate one
//! append-only log, store it as an RFC 9162 Merkle log in redb, and sign
//! C2SP checkpoints that outside auditors verify.
//!
//! ## Layout
//! - [`analysis`]: the analysis node's work over committed entries (masking,
//!   categories, anomaly flags, summaries, questions) and its local model.
//! - [`ledger`]: the pure core, its own crate (`crates/tlog`, `ironlog-tlog`)
//!   so that the compiler keeps it free of I/O, async, storage and network:
//!   events and their canonical leaf encoding, Merkle hashing and proofs,
//!   checkpoints and signed notes, witness cosignatures, trust policies,
//!   offline proof bundles, and tlog-tiles coordinates and entry bundles.
//!   External verifiers can depend on that crate alone.
//! - [`storage`]: the redb-backed ledger state (entries, stored hashes,
//!   checkpoints, signatures, idempotency keys, query indexes, snapshots),
//!   one file per concern, and the one durable file replace.
//! - [`fsck`]: proves a stopped node's ledger file intact; above
//!   [`storage`] and [`raft`], whose files and membership it reads.
//! - [`raft`]: everything openraft: type config, the redb log store, the state
//!   machine adapter, the tonic network and the internal Raft service; other
//!   layers see the node's Raft state through its plain `view`.
//! - `api`: the public gRPC services (Ledger, Admin, Analysis), their own
//!   typed errors, and the one place where every layer's errors become gRPC
//!   status codes; the read-only tlog-tiles HTTP endpoint.
//! - `auth`: who may call what (certificates, bearer tokens, roles, limits)
//!   and the record of every refusal.
//! - [`tls`]: the cluster CA, node certificates, and TLS for both listeners.
//! - `http_server`: serving a router over HTTP/1 with the limits a public
//!   listener needs; the tiles endpoint and the witness server both use it.
//! - `audit`: the outside auditor's client side: `verify`, `export` and
//!   `monitor` over the public read API, and the state they keep.
//! - [`node`]: assembles storage, Raft, the gRPC and HTTP servers, the
//!   checkpoint ticker and the signer into one running node.
//! - [`config`]: the node configuration file, validated once at start-up.
//! - [`disk`]: free space in the data directory against its floor
//!   (`storage.free_bytes_min`), below which the node stops writing.
//! - [`ingest`]: native audit logs (CloudTrail, k8s audit, auditd, Okta, GCP,
//!   GitHub) mapped onto events, streamed record by record; pure parsing.
//! - [`witness`]: `ironlog witness` (a C2SP tlog-witness server) and the
//!   leader's task that submits checkpoints to witnesses.
//! - [`cli`]: the `ironlog` command line (client commands, keygen, local cluster).
//! - [`limits`]: every bound, with its unit and its reason; depends on
//!   nothing in this crate.
//! - `clock`: the wall clock, read in one place.
//! - `key_file`: private key files, read with their permissions checked.
//! - [`proto`]: the generated protobuf and gRPC code.
//!
//! Imports between these modules run one way, down: cli; node; api, fsck,
//! witness; raft, analysis, audit; auth, http_server; storage, ingest,
//! disk, tls; config; key_file, clock, proto; limits; the core.
//! `tests/it/layers.rs` fails the suite if one runs up. Modules and items
//! are `pub(crate)` unless the binary, the integration tests or an outside
//! verifier use them.

pub mod analysis;
pub(crate) mod api;
pub(crate) mod audit;
pub(crate) mod auth;
pub mod cli;
pub(crate) mod clock;
pub mod config;
pub mod disk;
pub mod fsck;
pub(crate) mod http_server;
pub mod ingest;
pub(crate) mod key_file;
pub use ironlog_tlog as ledger;
pub mod limits;
pub mod node;
pub mod proto;
pub mod raft;
pub mod storage;
pub mod tls;
pub mod witness;
