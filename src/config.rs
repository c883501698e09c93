//! The node configuration: one TOML file, read and validated once at start-up.
//!
//! Owns the shape of the file and every check that can be made without
//! touching the network or the data directory. A node never starts with a
//! configuration that [`Config::validate`] refuses, so the rest of the node
//! may rely on the invariants listed there (non-zero unique ids, a sane
//! origin line, election timeouts that leave room for heartbeats).
//!
//! Relative paths in the file (`data_dir`, `signing_key_file`) are resolved
//! against the directory holding the file, so a configuration means the same
//! thing whatever directory the node is started from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ledger::cosignature::CosignatureVerifier;

/// Largest configuration file read, bytes. A node config is a few hundred
/// bytes; anything near this bound is not a config file.
pub const CONFIG_FILE_BYTES_MAX: u64 = 1024 * 1024;

use crate::limits::ORIGIN_BYTES_MAX;

/// Every node certificate names `node-<id>.ironlog`; no client identity may
/// start with this prefix, so none can pass for a node.
pub const NODE_NAME_PREFIX: &str = "node-";

/// Shortest checkpoint interval, ms. Each checkpoint is a Raft proposal plus
/// one signature per voter; more often than this would spend the cluster on
/// signing rather than on appending.
pub const CHECKPOINT_INTERVAL_MS_MIN: u64 = 10;

/// Most peers listed in one configuration. Ironlog runs three or five voters;
/// the bound keeps bootstrap membership and per-checkpoint cosigning small.
pub const PEERS_MAX: usize = 16;

/// Default `raft.log_purge_bytes`: with the in-memory 32 MiB, a node's
/// Raft log file stays near 100 MiB whatever the log's length.
pub const RAFT_LOG_PURGE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// Most witnesses one node submits checkpoints to. Each costs one HTTP call
/// per checkpoint and one Raft entry per cosignature; a handful suffices.
pub const WITNESSES_MAX: usize = 16;

/// Why a configuration was refused. Every variant names the file or field
/// and the offending value, because the operator fixes it by editing the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is {bytes} bytes, more than the {max} allowed")]
    TooLarge { path: PathBuf, bytes: u64, max: u64 },
    #[error("cannot parse config file {path}")]
    Parse {
        path: PathBuf,
        /// Boxed: a TOML error with its source snippet is large, and it
        /// would otherwise size every `Result` that can carry a `ConfigError`.
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("{field} must be non-zero")]
    IdZero { field: String },
    #[error("peer id {id} is listed more than once in peers")]
    PeerIdDuplicate { id: u64 },
    #[error("{count} peers listed, at most {max} are supported")]
    PeersTooMany { count: usize, max: usize },
    #[error("peers[{position}] (id {id}): verifier_key is empty")]
    PeerVerifierKeyEmpty { position: usize, id: u64 },
    #[error("bootstrap = true but this node (id {id}) is not listed in peers")]
    BootstrapWithoutSelf { id: u64 },
    #[error("role = \"analysis\" needs an [analysis] section with at least `model = \"/path/to/model.gguf\"`")]
    AnalysisMissing,
    #[error("an [analysis] section is only allowed with role = \"analysis\"")]
    AnalysisNotAnalysisRole,
    #[error("analysis.{field} = {value} is out of range; expected 1..={max}")]
    AnalysisValue {
        field: &'static str,
        value: u64,
        max: u64,
    },
    #[error("bootstrap = true on a learner (id {id}): only a voter can initialise the cluster")]
    BootstrapLearner { id: u64 },
    #[error(
        "raft.election_timeout_min_ms ({min_ms}) must be less than \
         raft.election_timeout_max_ms ({max_ms})"
    )]
    ElectionTimeoutRange { min_ms: u64, max_ms: u64 },
    #[error(
        "raft.heartbeat_ms ({heartbeat_ms}) must be non-zero and less than \
         raft.election_timeout_min_ms ({election_timeout_min_ms})"
    )]
    HeartbeatTooSlow {
        heartbeat_ms: u64,
        election_timeout_min_ms: u64,
    },
    #[error("raft.{field} must be non-zero")]
    RaftZero { field: &'static str },
    #[error("checkpoint.interval_ms ({interval_ms}) must be at least {min_ms}")]
    CheckpointIntervalTooShort { interval_ms: u64, min_ms: u64 },
    #[error("checkpoint.every_entries must be at least 1")]
    CheckpointEveryEntriesZero,
    #[error("origin {origin:?}: {reason}")]
    Origin {
        origin: String,
        reason: &'static str,
    },
    #[error("{field} = {value:?} is not a host:port address: {reason}")]
    Address {
        field: String,
        value: String,
        reason: &'static str,
    },
    #[error(
        "listen = {listen} is a wildcard address that peers cannot dial; \
         set advertise to this node's reachable host:port"
    )]
    AdvertiseRequired { listen: SocketAddr },
    #[error("http_listen = {http_listen} overlaps listen = {listen}: the two servers need different ports")]
    HttpListenConflict {
        listen: SocketAddr,
        http_listen: SocketAddr,
    },
    #[error("http_listen = {http_listen}: port 0 would pick a port that no client can know")]
    HttpListenPortZero { http_listen: SocketAddr },
    #[error("{count} witnesses listed, at most {max} are supported")]
    WitnessesTooMany { count: usize, max: usize },
    #[error("witnesses[{position}].url = {url:?}: {reason}")]
    WitnessUrl {
        position: usize,
        url: String,
        reason: String,
    },
    #[error("witnesses[{position}].verifier_key: {reason}")]
    WitnessKey { position: usize, reason: String },
    #[error("witnesses[{position}] repeats the verifier key of witnesses[{first}]")]
    WitnessDuplicate { position: usize, first: usize },
    #[error(
        "no [tls] section: give ca_file, cert_file and key_file (`ironlog certs` writes them), \
         or run with --insecure for plaintext without authentication"
    )]
    TlsMissing,
    #[error("{count} auth.clients listed, at most {max} are supported")]
    ClientsTooMany { count: usize, max: usize },
    #[error("{field} must be non-zero")]
    AuthZero { field: String },
    #[error("auth.clients[{position}] ({name:?}): {reason}")]
    Client {
        position: usize,
        name: String,
        reason: String,
    },
    #[error("peer_listen = {peer_listen} is a wildcard address that peers cannot dial; set peer_advertise")]
    PeerAdvertiseRequired { peer_listen: SocketAddr },
    #[error("peer_listen = {peer_listen} overlaps {other_field} = {other}: each server needs its own port")]
    PeerListenConflict {
        peer_listen: SocketAddr,
        other_field: &'static str,
        other: SocketAddr,
    },
}

/// Most client identities in one configuration: each is checked per
/// request by a linear scan of certificate names.
pub const CLIENTS_MAX: usize = 1024;

/// One node's configuration. See `cluster/node1.toml` for an annotated example.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Raft node id; non-zero, unique in the cluster, never reused.
    pub id: u64,
    /// Client listener: the gRPC bind address of the public services
    /// (Ledger, Admin, Analysis, reflection), TLS unless `insecure`.
    pub listen: SocketAddr,
    /// `host:port` that clients dial; `listen` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// Peer listener: the gRPC bind address of the node-to-node Raft service
    /// (Raft messages, snapshots, forwarded proposals), mutual TLS unless
    /// `insecure`: only certificates of this cluster's CA naming a node.
    pub peer_listen: SocketAddr,
    /// `host:port` that peers dial; `peer_listen` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_advertise: Option<String>,
    /// HTTP bind address of the read-only C2SP tlog-tiles endpoint
    /// (`/checkpoint`, `/tile/...`); no HTTP server when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_listen: Option<SocketAddr>,
    /// Where the node keeps its Raft log and ledger database.
    pub data_dir: PathBuf,
    /// First line of every checkpoint, e.g. `example.org/ironlog`.
    pub origin: String,
    /// File holding this node's signed-note private key (`ironlog keygen`).
    pub signing_key_file: PathBuf,
    #[serde(default)]
    pub role: Role,
    /// Initialise the cluster with `peers` on first start (empty log only).
    #[serde(default)]
    pub bootstrap: bool,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    #[serde(default)]
    pub raft: RaftTuning,
    #[serde(default)]
    pub storage: StorageConfig,
    /// The voters, this node included, that `bootstrap` initialises.
    #[serde(default)]
    pub peers: Vec<Peer>,
    /// C2SP tlog-witnesses the leader submits each checkpoint to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<WitnessConfig>,
    /// Required with `role = "analysis"`, refused otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisConfig>,
    /// Certificates for both listeners and for dialling peers; required
    /// unless the node runs with `--insecure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Who may call what on the client listener.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Plaintext, unauthenticated: set only by the `--insecure` flag, never
    /// from the file, so it is a choice made (and warned about) at every start.
    #[serde(skip)]
    pub insecure: bool,
}

/// The node's certificate material (`ironlog certs` writes all three).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The cluster CA (PEM): peers' and clients' certificates must chain to it.
    pub ca_file: PathBuf,
    /// This node's certificate (PEM), naming `node-<id>.ironlog` and the
    /// hosts clients dial; it serves both listeners and identifies the node
    /// to its peers.
    pub cert_file: PathBuf,
    /// Its private key (PEM, mode 0600: a key readable by others is refused).
    pub key_file: PathBuf,
}

/// Client identities and their roles.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Let callers without credentials read checkpoints, proofs and tiles
    /// (the `auditor` role), as a public log does.
    pub anonymous_auditor: bool,
    /// Requests per second each identity may make (a token bucket), unless
    /// its own entry says otherwise.
    pub requests_per_s: Option<u32>,
    /// Requests one identity may have in flight at once, unless its own
    /// entry says otherwise.
    pub in_flight_max: Option<u32>,
    pub clients: Vec<ClientConfig>,
}

/// One client identity: a certificate's subject common name or a bearer
/// token (only its SHA-256 is stored), and what it may do.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The identity's name, as recorded with its refusals.
    pub name: String,
    /// Subject common name of the client certificate (issued by the cluster
    /// CA) that authenticates as this identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_cn: Option<String>,
    /// Hex SHA-256 of the bearer token that authenticates as this identity
    /// (`ironlog certs` prints the token once and stores only this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    pub roles: Vec<ClientRole>,
    /// The `source` values this identity may append as (`appender` only):
    /// no client writes in another service's name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// Overrides `auth.requests_per_s` for this identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_s: Option<u32>,
    /// Overrides `auth.in_flight_max` for this identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight_max: Option<u32>,
}

/// What an identity may do. No role edits or deletes an entry: no such
/// operation exists.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ClientRole {
    /// `Append`, as one of its `sources`.
    Appender,
    /// `GetEntries`, `Query`, `Tail`.
    Reader,
    /// Checkpoints, proofs and tiles.
    Auditor,
    /// The `Analysis` service.
    Analyst,
    /// Membership (`AddLearner`, `ChangeMembership`).
    Admin,
}

impl ClientRole {
    pub fn name(&self) -> &'static str {
        match self {
            ClientRole::Appender => "appender",
            ClientRole::Reader => "reader",
            ClientRole::Auditor => "auditor",
            ClientRole::Analyst => "analyst",
            ClientRole::Admin => "admin",
        }
    }
}

/// A witness the leader asks to cosign checkpoints (`ironlog witness`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// Submission prefix, `http://host:port[/path]`; the node POSTs to
    /// `<url>/add-checkpoint`. Plain HTTP: put a proxy in front for TLS.
    pub url: String,
    /// The witness's `cosignature/v1` verifier key (`ironlog keygen --witness`).
    pub verifier_key: String,
}

/// Whether the node votes and cosigns checkpoints, or only replicates.
/// `analysis` is a learner that also runs the analyst (local model,
/// categories, anomaly flags, questions) over what it replicates: it never
/// counts towards a quorum, so the model cannot slow down appends.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Voter,
    Learner,
    Analysis,
}

impl Role {
    /// True for the roles that never vote (learner, analysis).
    pub fn is_learner(&self) -> bool {
        !matches!(self, Role::Voter)
    }
}

/// The analysis node's settings (`[analysis]`, with `role = "analysis"`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    /// The GGUF model file (`scripts/install-model.sh` prints the default's path).
    pub model: PathBuf,
    /// CPU threads per model computation.
    #[serde(default = "default_model_threads")]
    pub threads: u32,
    /// Model computations at once; more queue.
    #[serde(default = "default_model_concurrency")]
    pub concurrency: usize,
    /// Wall-clock limit of one model computation, ms.
    #[serde(default = "default_model_timeout_ms")]
    pub timeout_ms: u64,
    /// Let the model categorise the entries the rules leave undecided, in
    /// the background. Off, they stay `other` (pending) until `Categorize`
    /// asks for them.
    #[serde(default = "default_true")]
    pub categorize_with_model: bool,
    /// Detection tables of the organisation's own (TOML, the format of the
    /// built-in catalogue), added to the built-in detections. A table that
    /// cannot be read or has a mistake stops the node at start, naming it.
    #[serde(default)]
    pub detections: Vec<PathBuf>,
}

fn default_model_threads() -> u32 {
    2
}
fn default_model_concurrency() -> usize {
    1
}
fn default_model_timeout_ms() -> u64 {
    crate::limits::MODEL_TIMEOUT_MS_DEFAULT
}
fn default_true() -> bool {
    true
}

/// When the leader proposes a checkpoint: once either bound is reached and
/// entries arrived since the last checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    pub interval_ms: u64,
    pub every_entries: u64,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            interval_ms: 1000,
            every_entries: 1000,
        }
    }
}

/// Raft timing and log compaction. The defaults suit a LAN or one region.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RaftTuning {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Raft log entries applied since the last snapshot that trigger a new one.
    pub snapshot_logs_since_last: u64,
    /// Raft log entries kept behind a snapshot, so slightly lagging
    /// followers catch up from the log instead of a full snapshot.
    pub max_in_snapshot_log_to_keep: u64,
    /// Bytes of the newest Raft log entries kept in memory, which
    /// replication reads without touching the disk.
    pub log_memory_bytes: u64,
    /// Bytes of Raft log below the in-memory ones that make the node build
    /// a snapshot and purge them (`raft::log_keeper`): with the entry
    /// counts above alone, a log of large batches grew to gigabytes.
    pub log_purge_bytes: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        RaftTuning {
            heartbeat_ms: 100,
            election_timeout_min_ms: 400,
            election_timeout_max_ms: 800,
            snapshot_logs_since_last: 5000,
            max_in_snapshot_log_to_keep: 1000,
            log_memory_bytes: crate::limits::RAFT_LOG_TAIL_BYTES as u64,
            log_purge_bytes: RAFT_LOG_PURGE_BYTES_DEFAULT,
        }
    }
}

/// The data directory's disk (`[storage]`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Free bytes the data directory's filesystem must keep. Below it the
    /// node stops writing (no proposals, no replication, no votes; a leader
    /// hands over) until free space is back above it by an eighth; see
    /// [`crate::disk`]. 0 turns the guard off: a full disk then stops the
    /// node on its first failed write.
    pub free_bytes_min: u64,
    /// redb's page cache for the ledger file, bytes: what the node keeps of
    /// it in memory, whatever the log's size.
    pub ledger_cache_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            free_bytes_min: crate::limits::FREE_BYTES_MIN_DEFAULT,
            ledger_cache_bytes: crate::limits::LEDGER_CACHE_BYTES_DEFAULT,
        }
    }
}

/// A voter known at bootstrap.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub id: u64,
    /// `host:port` of the peer listener, which the other nodes dial.
    pub addr: String,
    /// `host:port` of its client listener, shown to clients (status, where
    /// the leader is); absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    /// The peer's signed-note verifier key (`ironlog keygen` prints it).
    pub verifier_key: String,
}

impl Config {
    /// Reads, parses and validates the file at `path`, resolving relative
    /// `data_dir` and `signing_key_file` against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(path, false)
    }

    /// [`Config::load`], with `insecure` (the `--insecure` flag) applied
    /// before validation: plaintext listeners, no authentication.
    pub fn load_with(path: &Path, insecure: bool) -> Result<Config, ConfigError> {
        let read_error = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let bytes = std::fs::metadata(path).map_err(read_error)?.len();
        if bytes > CONFIG_FILE_BYTES_MAX {
            return Err(ConfigError::TooLarge {
                path: path.to_path_buf(),
                bytes,
                max: CONFIG_FILE_BYTES_MAX,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        let mut config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        config.data_dir = base.join(&config.data_dir);
        config.signing_key_file = base.join(&config.signing_key_file);
        if let Some(tls) = &mut config.tls {
            tls.ca_file = base.join(&tls.ca_file);
            tls.cert_file = base.join(&tls.cert_file);
            tls.key_file = base.join(&tls.key_file);
        }
        config.insecure = insecure;
        config.validate()?;
        Ok(config)
    }

    /// Checks every invariant the node relies on; the first violation wins.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_ids()?;
        self.validate_addresses()?;
        validate_origin(&self.origin)?;
        self.raft.validate()?;
        self.checkpoint.validate()?;
        self.validate_witnesses()?;
        self.validate_analysis()?;
        self.validate_security()?;
        Ok(())
    }

    fn validate_security(&self) -> Result<(), ConfigError> {
        if self.tls.is_none() && !self.insecure {
            return Err(ConfigError::TlsMissing);
        }
        if self.auth.clients.len() > CLIENTS_MAX {
            return Err(ConfigError::ClientsTooMany {
                count: self.auth.clients.len(),
                max: CLIENTS_MAX,
            });
        }
        if self.auth.requests_per_s == Some(0) || self.auth.in_flight_max == Some(0) {
            return Err(ConfigError::AuthZero {
                field: "auth.requests_per_s / auth.in_flight_max".into(),
            });
        }
        for (position, c) in self.auth.clients.iter().enumerate() {
            let error = |reason: &str| ConfigError::Client {
                position,
                name: c.name.clone(),
                reason: reason.to_string(),
            };
            if c.name.trim().is_empty() {
                return Err(error("name is empty"));
            }
            if self.auth.clients[..position]
                .iter()
                .any(|o| o.name == c.name)
            {
                return Err(error("name is listed twice"));
            }
            let earlier = &self.auth.clients[..position];
            if c.certificate_cn.is_some()
                && earlier.iter().any(|o| o.certificate_cn == c.certificate_cn)
            {
                return Err(error("certificate_cn belongs to another client too"));
            }
            let token = |o: &ClientConfig| o.token_sha256.as_deref().map(str::to_ascii_lowercase);
            if c.token_sha256.is_some() && earlier.iter().any(|o| token(o) == token(c)) {
                return Err(error("token_sha256 belongs to another client too"));
            }
            if c.certificate_cn.is_none() && c.token_sha256.is_none() {
                return Err(error(
                    "needs certificate_cn or token_sha256 to authenticate",
                ));
            }
            if let Some(cn) = &c.certificate_cn {
                if cn.starts_with(NODE_NAME_PREFIX) {
                    return Err(error(
                        "certificate_cn may not name a node (node-<id>.ironlog)",
                    ));
                }
            }
            if let Some(hash) = &c.token_sha256 {
                let ok = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
                if !ok {
                    return Err(error(
                        "token_sha256 must be 64 hex digits (the SHA-256 of the token, not the token)",
                    ));
                }
            }
            if c.roles.is_empty() {
                return Err(error("roles is empty"));
            }
            let appender = c.roles.contains(&ClientRole::Appender);
            if appender && c.sources.is_empty() {
                return Err(error(
                    "role appender needs sources: the source values it may append as",
                ));
            }
            if !appender && !c.sources.is_empty() {
                return Err(error("sources are only for the appender role"));
            }
            if c.requests_per_s == Some(0) || c.in_flight_max == Some(0) {
                return Err(error("requests_per_s and in_flight_max must be non-zero"));
            }
        }
        Ok(())
    }

    fn validate_analysis(&self) -> Result<(), ConfigError> {
        match (&self.analysis, self.role) {
            (None, Role::Analysis) => Err(ConfigError::AnalysisMissing),
            (Some(_), Role::Voter | Role::Learner) => Err(ConfigError::AnalysisNotAnalysisRole),
            (Some(a), Role::Analysis) => {
                if a.threads == 0 || a.threads > crate::limits::MODEL_THREADS_MAX {
                    return Err(ConfigError::AnalysisValue {
                        field: "threads",
                        value: u64::from(a.threads),
                        max: u64::from(crate::limits::MODEL_THREADS_MAX),
                    });
                }
                if a.concurrency == 0 || a.concurrency > crate::limits::MODEL_CONCURRENCY_MAX {
                    return Err(ConfigError::AnalysisValue {
                        field: "concurrency",
                        value: a.concurrency as u64,
                        max: crate::limits::MODEL_CONCURRENCY_MAX as u64,
                    });
                }
                if a.timeout_ms == 0 || a.timeout_ms > crate::limits::MODEL_TIMEOUT_MS_MAX {
                    return Err(ConfigError::AnalysisValue {
                        field: "timeout_ms",
                        value: a.timeout_ms,
                        max: crate::limits::MODEL_TIMEOUT_MS_MAX,
                    });
                }
                Ok(())
            }
            (None, _) => Ok(()),
        }
    }

    fn validate_witnesses(&self) -> Result<(), ConfigError> {
        if self.witnesses.len() > WITNESSES_MAX {
            return Err(ConfigError::WitnessesTooMany {
                count: self.witnesses.len(),
                max: WITNESSES_MAX,
            });
        }
        for (position, w) in self.witnesses.iter().enumerate() {
            validate_witness_url(position, &w.url)?;
            CosignatureVerifier::new(&w.verifier_key).map_err(|e| ConfigError::WitnessKey {
                position,
                reason: e.to_string(),
            })?;
            let key = w.verifier_key.trim();
            if let Some(first) = self.witnesses[..position]
                .iter()
                .position(|o| o.verifier_key.trim() == key)
            {
                return Err(ConfigError::WitnessDuplicate { position, first });
            }
        }
        Ok(())
    }

    /// The `host:port` peers and clients dial to reach this node.
    pub fn advertise_addr(&self) -> String {
        match &self.advertise {
            Some(addr) => addr.clone(),
            None => self.listen.to_string(),
        }
    }

    fn validate_ids(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::IdZero { field: "id".into() });
        }
        if self.peers.len() > PEERS_MAX {
            return Err(ConfigError::PeersTooMany {
                count: self.peers.len(),
                max: PEERS_MAX,
            });
        }
        for (position, peer) in self.peers.iter().enumerate() {
            if peer.id == 0 {
                return Err(ConfigError::IdZero {
                    field: format!("peers[{position}].id"),
                });
            }
            if self.peers[..position].iter().any(|p| p.id == peer.id) {
                return Err(ConfigError::PeerIdDuplicate { id: peer.id });
            }
            if peer.verifier_key.trim().is_empty() {
                return Err(ConfigError::PeerVerifierKeyEmpty {
                    position,
                    id: peer.id,
                });
            }
        }
        if self.bootstrap {
            if self.role.is_learner() {
                return Err(ConfigError::BootstrapLearner { id: self.id });
            }
            if !self.peers.iter().any(|p| p.id == self.id) {
                return Err(ConfigError::BootstrapWithoutSelf { id: self.id });
            }
        }
        Ok(())
    }

    /// The `host:port` peers dial to reach this node's peer listener.
    pub fn peer_advertise_addr(&self) -> String {
        match &self.peer_advertise {
            Some(addr) => addr.clone(),
            None => self.peer_listen.to_string(),
        }
    }

    fn validate_addresses(&self) -> Result<(), ConfigError> {
        match &self.peer_advertise {
            Some(addr) => validate_host_port("peer_advertise", addr)?,
            None if self.peer_listen.ip().is_unspecified() => {
                return Err(ConfigError::PeerAdvertiseRequired {
                    peer_listen: self.peer_listen,
                })
            }
            None => {}
        }
        let mut others = vec![("listen", self.listen)];
        others.extend(self.http_listen.map(|a| ("http_listen", a)));
        for (other_field, other) in others {
            if overlaps(self.peer_listen, other) {
                return Err(ConfigError::PeerListenConflict {
                    peer_listen: self.peer_listen,
                    other_field,
                    other,
                });
            }
        }
        for (position, peer) in self.peers.iter().enumerate() {
            if let Some(addr) = &peer.client_addr {
                validate_host_port(&format!("peers[{position}].client_addr"), addr)?;
            }
        }
        match &self.advertise {
            Some(addr) => validate_host_port("advertise", addr)?,
            None if self.listen.ip().is_unspecified() => {
                return Err(ConfigError::AdvertiseRequired {
                    listen: self.listen,
                })
            }
            None => {}
        }
        for (position, peer) in self.peers.iter().enumerate() {
            validate_host_port(&format!("peers[{position}].addr"), &peer.addr)?;
        }
        if let Some(http_listen) = self.http_listen {
            self.validate_http_listen(http_listen)?;
        }
        Ok(())
    }

    fn validate_http_listen(&self, http_listen: SocketAddr) -> Result<(), ConfigError> {
        if http_listen.port() == 0 {
            return Err(ConfigError::HttpListenPortZero { http_listen });
        }
        // A wildcard address binds the port on every interface, so it
        // collides with the other listener whatever that one's address.
        let (a, b) = (self.listen.ip(), http_listen.ip());
        let same_ip = a == b || a.is_unspecified() || b.is_unspecified();
        if same_ip && self.listen.port() == http_listen.port() {
            return Err(ConfigError::HttpListenConflict {
                listen: self.listen,
                http_listen,
            });
        }
        Ok(())
    }
}

impl RaftTuning {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.election_timeout_min_ms >= self.election_timeout_max_ms {
            return Err(ConfigError::ElectionTimeoutRange {
                min_ms: self.election_timeout_min_ms,
                max_ms: self.election_timeout_max_ms,
            });
        }
        if self.heartbeat_ms == 0 || self.heartbeat_ms >= self.election_timeout_min_ms {
            return Err(ConfigError::HeartbeatTooSlow {
                heartbeat_ms: self.heartbeat_ms,
                election_timeout_min_ms: self.election_timeout_min_ms,
            });
        }
        if self.snapshot_logs_since_last == 0 {
            return Err(ConfigError::RaftZero {
                field: "snapshot_logs_since_last",
            });
        }
        if self.log_purge_bytes == 0 {
            return Err(ConfigError::RaftZero {
                field: "log_purge_bytes",
            });
        }
        Ok(())
    }
}

impl CheckpointConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.interval_ms < CHECKPOINT_INTERVAL_MS_MIN {
            return Err(ConfigError::CheckpointIntervalTooShort {
                interval_ms: self.interval_ms,
                min_ms: CHECKPOINT_INTERVAL_MS_MIN,
            });
        }
        if self.every_entries == 0 {
            return Err(ConfigError::CheckpointEveryEntriesZero);
        }
        Ok(())
    }
}

/// Two bind addresses that would take the same port (port 0 picks a fresh
/// one, so it never collides).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    let same_ip = a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified();
    same_ip && a.port() == b.port() && a.port() != 0
}

/// The origin is the first line of a checkpoint note and the key name, so it
/// must be one non-empty line without spaces (C2SP tlog-checkpoint).
fn validate_origin(origin: &str) -> Result<(), ConfigError> {
    let reason = if origin.is_empty() {
        Some("must not be empty")
    } else if origin.len() > ORIGIN_BYTES_MAX {
        Some("is longer than 255 bytes")
    } else if origin.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain whitespace, newlines or control characters")
    } else if origin.contains('+') {
        Some("must not contain '+', which separates the parts of a signed-note key")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ConfigError::Origin {
            origin: origin.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Accepts `http://host:port` with an optional path; refuses `https://`
/// (the node speaks plain HTTP), queries and fragments.
fn validate_witness_url(position: usize, url: &str) -> Result<(), ConfigError> {
    let error = |reason: &str| ConfigError::WitnessUrl {
        position,
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if url.starts_with("https://") {
        return Err(error(
            "the node speaks plain HTTP to witnesses; terminate TLS in a local proxy and give its http:// address",
        ));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(error("expected http://host:port[/path]"));
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if path.contains(['?', '#']) || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(error(
            "the path may not hold a query, a fragment or whitespace",
        ));
    }
    validate_host_port(&format!("witnesses[{position}].url"), authority)
        .map_err(|e| error(&e.to_string()))
}

/// Accepts `host:port` and `[ipv6]:port`; refuses URLs, empty hosts and port 0.
fn validate_host_port(field: &str, value: &str) -> Result<(), ConfigError> {
    let error = |reason| ConfigError::Address {
        field: field.to_string(),
        value: value.to_string(),
        reason,
    };
    if value.contains("://") {
        return Err(error("give host:port without a scheme"));
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(error("missing :port"));
    };
    if host.is_empty() {
        return Err(error("missing host"));
    }
    if host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(error("host contains whitespace or '/'"));
    }
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.contains(':') && !bracketed {
        return Err(error("write IPv6 addresses in brackets, e.g. [::1]:7001"));
    }
    match port.parse::<u16>() {
        Ok(0) => Err(error("port 0 cannot be dialled")),
        Ok(_) => Ok(()),
        Err(_) => Err(error("port is not a number from 1 to 65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
        id = 1
        listen = "127.0.0.1:7001"
        peer_listen = "127.0.0.1:7101"
        data_dir = "node1"
        origin = "example.org/ironlog"
        signing_key_file = "node1.key"
        bootstrap = true

        [tls]
        ca_file = "ca.pem"
        cert_file = "node1.pem"
        key_file = "node1-key.pem"

        [[peers]]
        id = 1
        addr = "127.0.0.1:7101"
        verifier_key = "example.org/ironlog+aaaaaaaa+AAAA"

        [[peers]]
        id = 2
        addr = "127.0.0.1:7102"
        verifier_key = "example.org/ironlog+bbbbbbbb+BBBB"
    "#;

    fn valid() -> Config {
        toml::from_str(VALID).expect("the valid example parses")
    }

    fn refused(config: &Config) -> String {
        config
            .validate()
            .expect_err("the config must be refused")
            .to_string()
    }

    #[test]
    fn valid_config_passes_with_defaults_filled_in() {
        let config = valid();
        config.validate().expect("valid");
        assert_eq!(config.role, Role::Voter);
        assert_eq!(config.checkpoint, CheckpointConfig::default());
        assert_eq!(config.raft, RaftTuning::default());
        assert_eq!(config.advertise_addr(), "127.0.0.1:7001");
    }

    #[test]
    fn default_tuning_is_itself_valid() {
        RaftTuning::default().validate().expect("raft defaults");
        CheckpointConfig::default()
            .validate()
            .expect("checkpoint defaults");
    }

    #[test]
    fn advertise_overrides_listen() {
        let mut config = valid();
        config.advertise = Some("ledger-1.internal:7001".into());
        config.validate().expect("valid");
        assert_eq!(config.advertise_addr(), "ledger-1.internal:7001");
    }

    #[test]
    fn load_resolves_relative_paths_against_the_config_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node1.toml");
        std::fs::write(&path, VALID).expect("write");
        let config = Config::load(&path).expect("load");
        assert_eq!(config.data_dir, dir.path().join("node1"));
        assert_eq!(config.signing_key_file, dir.path().join("node1.key"));
    }

    #[test]
    fn load_keeps_absolute_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        let text = VALID.replace("\"node1\"", "\"/var/lib/ironlog\"");
        std::fs::write(&path, text).expect("write");
        let config = Config::load(&path).expect("load");
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/ironlog"));
    }

    #[test]
    fn load_names_a_missing_file() {
        let err = Config::load(Path::new("/nonexistent/ironlog.toml")).expect_err("missing");
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err.to_string().contains("/nonexistent/ironlog.toml"));
    }

    #[test]
    fn load_names_the_file_on_a_parse_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "id = \"one\"\n").expect("write");
        let err = Config::load(&path).expect_err("bad type");
        assert!(matches!(err, ConfigError::Parse { .. }));
        assert!(err.to_string().contains("bad.toml"));
    }

    #[test]
    fn load_validates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            VALID.replace("id = 1\n        listen", "id = 0\n        listen"),
        )
        .expect("write");
        let err = Config::load(&path).expect_err("id 0");
        assert!(matches!(err, ConfigError::IdZero { .. }), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = VALID.replace("bootstrap = true", "bootstrap = true\nbootstrapp = true");
        let err = toml::from_str::<Config>(&text).expect_err("unknown field");
        assert!(err.to_string().contains("bootstrapp"), "{err}");
        let text = format!("{VALID}\n[raft]\nheartbeat = 5\n");
        assert!(toml::from_str::<Config>(&text).is_err());
    }

    #[test]
    fn role_is_lowercase() {
        let text = VALID.replace("bootstrap = true", "role = \"learner\"");
        let config: Config = toml::from_str(&text).expect("learner");
        assert_eq!(config.role, Role::Learner);
        let text = VALID.replace("bootstrap = true", "role = \"Learner\"");
        assert!(toml::from_str::<Config>(&text).is_err());
    }

    #[test]
    fn zero_node_id_is_refused() {
        let mut config = valid();
        config.id = 0;
        assert_eq!(refused(&config), "id must be non-zero");
    }

    #[test]
    fn zero_peer_id_is_refused() {
        let mut config = valid();
        config.peers[1].id = 0;
        assert_eq!(refused(&config), "peers[1].id must be non-zero");
    }

    #[test]
    fn duplicate_peer_ids_are_refused() {
        let mut config = valid();
        config.peers[1].id = 1;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::PeerIdDuplicate { id: 1 })
        ));
    }

    #[test]
    fn tls_is_required_unless_insecure_and_clients_are_checked() {
        let mut config = valid();
        config.tls = None;
        assert!(refused(&config).contains("no [tls] section"));
        config.insecure = true;
        config.validate().expect("--insecure needs no certificates");
        let mut config = valid();
        let client = |name: &str| ClientConfig {
            name: name.into(),
            certificate_cn: None,
            token_sha256: Some("ab".repeat(32)),
            roles: vec![ClientRole::Appender],
            sources: vec!["svc".into()],
            requests_per_s: None,
            in_flight_max: None,
        };
        config.auth.clients = vec![client("a")];
        config.validate().expect("a valid appender");
        config.auth.clients[0].sources.clear();
        assert!(refused(&config).contains("needs sources"));
        config.auth.clients = vec![client("a"), client("a")];
        assert!(refused(&config).contains("listed twice"));
        config.auth.clients = vec![client("a"), client("b")];
        assert!(refused(&config).contains("token_sha256 belongs to another client"));
        let mut raw = client("b");
        raw.token_sha256 = Some("the-token-itself".into());
        config.auth.clients = vec![raw];
        assert!(refused(&config).contains("64 hex digits"));
        let mut node = client("c");
        node.token_sha256 = None;
        node.certificate_cn = Some("node-2.ironlog".into());
        config.auth.clients = vec![node];
        assert!(refused(&config).contains("may not name a node"));
        let mut config = valid();
        config.peer_listen = config.listen;
        assert!(refused(&config).contains("peer_listen"));
    }

    #[test]
    fn too_many_peers_are_refused() {
        let mut config = valid();
        config.peers = (1..=PEERS_MAX as u64 + 1)
            .map(|id| Peer {
                id,
                addr: format!("10.0.0.{id}:7001"),
                client_addr: None,
                verifier_key: "k".into(),
            })
            .collect();
        assert!(matches!(
            config.validate(),
            Err(ConfigError::PeersTooMany { .. })
        ));
    }

    #[test]
    fn empty_verifier_key_is_refused() {
        let mut config = valid();
        config.peers[0].verifier_key = " ".into();
        assert!(matches!(
            config.validate(),
            Err(ConfigError::PeerVerifierKeyEmpty { position: 0, id: 1 })
        ));
    }

    #[test]
    fn bootstrap_requires_self_in_peers() {
        let mut config = valid();
        config.id = 3;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::BootstrapWithoutSelf { id: 3 })
        ));
        config.bootstrap = false;
        config
            .validate()
            .expect("a joining node need not be in peers");
    }

    #[test]
    fn learner_cannot_bootstrap() {
        let mut config = valid();
        config.role = Role::Learner;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::BootstrapLearner { id: 1 })
        ));
    }

    #[test]
    fn election_timeout_min_must_be_below_max() {
        let mut config = valid();
        config.raft.election_timeout_min_ms = 800;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::ElectionTimeoutRange {
                min_ms: 800,
                max_ms: 800
            })
        ));
    }

    #[test]
    fn heartbeat_must_be_below_election_timeout() {
        let mut config = valid();
        config.raft.heartbeat_ms = 400;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::HeartbeatTooSlow {
                heartbeat_ms: 400,
                ..
            })
        ));
        config.raft.heartbeat_ms = 0;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::HeartbeatTooSlow { .. })
        ));
    }

    #[test]
    fn zero_snapshot_threshold_is_refused() {
        let mut config = valid();
        config.raft.snapshot_logs_since_last = 0;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::RaftZero { .. })
        ));
    }

    #[test]
    fn checkpoint_interval_has_a_floor() {
        let mut config = valid();
        config.checkpoint.interval_ms = 9;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::CheckpointIntervalTooShort { interval_ms: 9, .. })
        ));
        config.checkpoint.interval_ms = CHECKPOINT_INTERVAL_MS_MIN;
        config.validate().expect("the floor itself is allowed");
    }

    #[test]
    fn checkpoint_every_entries_must_be_positive() {
        let mut config = valid();
        config.checkpoint.every_entries = 0;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::CheckpointEveryEntriesZero)
        ));
    }

    #[test]
    fn bad_origins_are_refused() {
        let too_long = "a".repeat(ORIGIN_BYTES_MAX + 1);
        for origin in [
            "",
            "example.org/ironlog v2",
            "example.org/\nironlog",
            "example.org/ironlog\t",
            "a+b",
            too_long.as_str(),
        ] {
            let mut config = valid();
            config.origin = origin.to_string();
            assert!(
                matches!(config.validate(), Err(ConfigError::Origin { .. })),
                "origin {origin:?} must be refused"
            );
        }
    }

    #[test]
    fn bad_addresses_are_refused() {
        for addr in [
            "127.0.0.1",
            ":7001",
            "http://10.0.0.11:7001",
            "10.0.0.11:0",
            "10.0.0.11:70000",
            "10.0.0.11:port",
            "::1:7001",
            "host name:7001",
        ] {
            let mut config = valid();
            config.peers[1].addr = addr.to_string();
            let err = refused(&config);
            assert!(err.starts_with("peers[1].addr"), "{addr}: {err}");
        }
    }

    #[test]
    fn good_addresses_are_accepted() {
        for addr in ["10.0.0.11:7001", "ledger-2.example.org:443", "[::1]:7001"] {
            let mut config = valid();
            config.advertise = Some(addr.to_string());
            config.validate().expect(addr);
        }
    }

    #[test]
    fn bad_advertise_is_refused() {
        let mut config = valid();
        config.advertise = Some("ledger-1".into());
        assert!(refused(&config).starts_with("advertise"));
    }

    #[test]
    fn wildcard_listen_needs_advertise() {
        let mut config = valid();
        config.listen = "0.0.0.0:7001".parse().expect("addr");
        assert!(matches!(
            config.validate(),
            Err(ConfigError::AdvertiseRequired { .. })
        ));
        config.advertise = Some("10.0.0.11:7001".into());
        config.validate().expect("advertise given");
    }

    fn witness(url: &str) -> WitnessConfig {
        let (_, vkey) =
            crate::ledger::cosignature::Cosigner::generate("witness.test/w1").expect("key");
        WitnessConfig {
            url: url.to_string(),
            verifier_key: vkey,
        }
    }

    #[test]
    fn witnesses_are_parsed_and_checked() {
        let w = witness("http://127.0.0.1:7380");
        let text = format!(
            "{VALID}\n[[witnesses]]\nurl = \"{}\"\nverifier_key = \"{}\"\n",
            w.url, w.verifier_key
        );
        let config: Config = toml::from_str(&text).expect("witnesses parse");
        config.validate().expect("valid");
        assert_eq!(config.witnesses, vec![w]);
        assert!(valid().witnesses.is_empty(), "witnesses are optional");
    }

    #[test]
    fn bad_witnesses_are_refused() {
        for url in [
            "127.0.0.1:7380",
            "https://w.example:443",
            "http://w.example",
            "http://:7380",
            "http://w.example:7380/a?b",
            "http://w.example:7380/a b",
        ] {
            let mut config = valid();
            config.witnesses = vec![witness(url)];
            let err = refused(&config);
            assert!(err.starts_with("witnesses[0].url"), "{url}: {err}");
        }
        let mut config = valid();
        config.witnesses = vec![witness("http://w.example:7380/witness")];
        config.validate().expect("a path is allowed");
        // A log (Ed25519, type 0x01) key is not a witness key.
        config.witnesses[0].verifier_key = config.peers[0].verifier_key.clone();
        assert!(matches!(
            config.validate(),
            Err(ConfigError::WitnessKey { position: 0, .. })
        ));
        let w = witness("http://a.example:1");
        config.witnesses = vec![w.clone(), w];
        assert!(matches!(
            config.validate(),
            Err(ConfigError::WitnessDuplicate {
                position: 1,
                first: 0
            })
        ));
        config.witnesses = (0..=WITNESSES_MAX)
            .map(|_| witness("http://a.example:1"))
            .collect();
        assert!(matches!(
            config.validate(),
            Err(ConfigError::WitnessesTooMany { .. })
        ));
    }

    #[test]
    fn http_listen_is_optional_and_parsed() {
        assert_eq!(valid().http_listen, None);
        let text = VALID.replace(
            "bootstrap = true",
            "bootstrap = true\nhttp_listen = \"127.0.0.1:8001\"",
        );
        let config: Config = toml::from_str(&text).expect("http_listen");
        assert_eq!(config.http_listen, Some("127.0.0.1:8001".parse().unwrap()));
        config.validate().expect("valid");
        let text = VALID.replace("bootstrap = true", "http_listen = \"localhost:8001\"");
        assert!(
            toml::from_str::<Config>(&text).is_err(),
            "a bind address is an ip:port"
        );
    }

    #[test]
    fn http_listen_must_not_share_the_grpc_port() {
        for http in ["127.0.0.1:7001", "0.0.0.0:7001", "[::]:7001"] {
            let mut config = valid();
            config.http_listen = Some(http.parse().unwrap());
            assert!(
                matches!(
                    config.validate(),
                    Err(ConfigError::HttpListenConflict { .. })
                ),
                "{http}"
            );
        }
        let mut config = valid();
        config.http_listen = Some("127.0.0.2:7001".parse().unwrap());
        config.validate().expect("same port, other address");
        config.http_listen = Some("127.0.0.1:0".parse().unwrap());
        assert!(matches!(
            config.validate(),
            Err(ConfigError::HttpListenPortZero { .. })
        ));
    }

    #[test]
    fn serialised_config_reads_back_equal() {
        let mut config = valid();
        config.http_listen = Some("127.0.0.1:8001".parse().unwrap());
        let text = toml::to_string(&config).expect("serialise");
        let back: Config = toml::from_str(&text).expect("parse back");
        assert_eq!(back, config);
    }

    #[test]
    fn free_bytes_min_defaults_to_the_named_floor_and_is_read_from_storage() {
        assert_eq!(
            valid().storage.free_bytes_min,
            crate::limits::FREE_BYTES_MIN_DEFAULT
        );
        let text = format!("{VALID}\n[storage]\nfree_bytes_min = 8388608\n");
        let config: Config = toml::from_str(&text).expect("[storage]");
        assert_eq!(config.storage.free_bytes_min, 8 * 1024 * 1024);
        assert_eq!(
            config.storage.ledger_cache_bytes,
            crate::limits::LEDGER_CACHE_BYTES_DEFAULT
        );
        let text = format!("{VALID}\n[storage]\nledger_cache_bytes = 1048576\n");
        let config: Config = toml::from_str(&text).expect("[storage]");
        assert_eq!(config.storage.ledger_cache_bytes, 1024 * 1024);
        let text = format!("{VALID}\n[storage]\nfree_bytes = 1\n");
        assert!(toml::from_str::<Config>(&text).is_err(), "unknown key");
    }
}
