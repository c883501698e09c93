//! The `ironlog` command line: run a node, make keys, talk to a cluster, and
//! bring up a local three-node cluster.
//!
//! ## Layout
//! - `client`: connecting to an endpoint with TLS and credentials; how
//!   gRPC statuses are shown.
//! - `append`: events from flags or JSON lines, parsed and validated in
//!   full before anything is sent.
//! - `ingest`: native audit logs (CloudTrail, k8s audit, auditd, Okta,
//!   GCP, GitHub) appended as events, validated in full first.
//! - `read`: `get`, `tail` and `query`.
//! - `prove`: `checkpoint` and `prove`, which check proofs locally.
//! - `audit`: `verify`, `export` and `monitor`, for outside auditors who
//!   trust only a policy file.
//! - `analysis`: `ask`, `summarize`, `anomalies` and `categorize`, the
//!   analysis node's commands; `ask` verifies the proofs it prints.
//! - `status`: the `status` table.
//! - `fsck`: `fsck`, which checks a stopped node's files offline.
//! - `keygen`: signed-note key pairs (node and witness keys).
//! - `certs`: the cluster CA, node and client certificates, bearer tokens.
//! - `witness`: `witness`, a C2SP tlog-witness server.
//! - `cluster`: `cluster up`, a local cluster of child processes.
//! - `output`: how entries, hashes and times are printed.
//!
//! Every command returns a [`CliError`]; `main` prints it as `error: ...`
//! and exits non-zero. Nothing here panics on user input.

pub(crate) mod analysis;
pub(crate) mod append;
pub(crate) mod audit;
pub(crate) mod certs;
pub mod client;
pub(crate) mod cluster;
pub(crate) mod detect;
pub(crate) mod fsck;
pub(crate) mod ingest;
pub(crate) mod keygen;
pub(crate) mod output;
pub(crate) mod prove;
pub(crate) mod read;
pub(crate) mod status;
pub(crate) mod witness;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError};

pub use client::StatusError;

/// Default endpoint: node 1 of `ironlog cluster up`.
pub const ENDPOINT_DEFAULT: &str = "https://127.0.0.1:7001";

#[derive(Debug, Parser)]
#[command(
    name = "ironlog",
    version,
    about = "Immutable, replicated audit ledger"
)]
pub struct Cli {
    /// gRPC endpoint of any node (followers forward writes to the leader):
    /// https://host:port, or http://host:port for a cluster run with --insecure.
    #[arg(long, global = true, env = "IRONLOG_ENDPOINT", default_value = ENDPOINT_DEFAULT)]
    pub endpoint: String,
    /// The cluster CA certificate (PEM) that an https:// node must present a
    /// certificate of; required for https://.
    #[arg(long, global = true, env = "IRONLOG_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) issued by the cluster CA (`ironlog certs
    /// client`), presented to the node; needs --key.
    #[arg(long, global = true, env = "IRONLOG_CERT", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM, mode 0600). `ironlog
    /// witness` has its own --key (its signing key), which takes precedence
    /// there: clap gives a subcommand's argument of the same id priority.
    #[arg(long, global = true, env = "IRONLOG_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Bearer token sent on every call (`authorization: Bearer TOKEN`).
    /// Prefer --token-file: a command line is visible to other local users.
    #[arg(
        long,
        global = true,
        env = "IRONLOG_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<client::Token>,
    /// File holding the bearer token (mode 0600).
    #[arg(long, global = true, env = "IRONLOG_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Print JSON instead of human-readable text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node until SIGINT or SIGTERM.
    Node {
        /// The node's TOML configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Serve plaintext without authentication: no TLS on either listener,
        /// any caller may do anything, any process may speak Raft. Only for
        /// a throwaway cluster on one machine; the node warns at every start.
        #[arg(long)]
        insecure: bool,
    },
    /// Generate a signed-note key pair for a node, or a witness's with --witness.
    Keygen(keygen::KeygenArgs),
    /// Make the cluster CA, node and client certificates, and bearer tokens.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Run a C2SP tlog-witness for the logs of the given policies.
    Witness(witness::WitnessArgs),
    /// Append events, from flags or from a JSON-lines file.
    Append(Box<append::AppendArgs>),
    /// Append a native audit log (CloudTrail, k8s audit, auditd, Okta, GCP,
    /// GitHub, or Ironlog JSON lines), validated in full first.
    Ingest(ingest::IngestArgs),
    /// Print entries START..END (END exclusive; default START+1).
    Get(read::GetArgs),
    /// Stream entries as they are committed.
    Tail(read::TailArgs),
    /// Find entries by actor, action, resource, outcome and time.
    Query(read::QueryArgs),
    /// Print a signed checkpoint note.
    Checkpoint(prove::CheckpointArgs),
    /// Fetch a proof and a checkpoint and verify the proof locally.
    #[command(subcommand)]
    Prove(prove::ProveCommand),
    /// Audit the log: the latest checkpoint against a trust policy, its
    /// consistency with the last one accepted, and chosen or all entries;
    /// or an offline bundle.
    Verify(audit::VerifyArgs),
    /// Write entries with inclusion proofs and a signed checkpoint to a
    /// bundle file that `verify --bundle` checks offline.
    Export(audit::ExportArgs),
    /// Watch one or more nodes and alert on rollback, fork, inconsistency
    /// or missing signatures.
    Monitor(audit::MonitorArgs),
    /// Ask the analysis node a question in plain words; the answer cites
    /// entries with inclusion proofs, which are verified before printing.
    Ask(analysis::AskArgs),
    /// Summarise a window of entries: facts by code, prose by the model.
    Summarize(analysis::SummarizeArgs),
    /// List (or follow) the anomaly flags of a window.
    Anomalies(analysis::AnomaliesArgs),
    /// The category of entries, or of events not in the log.
    Categorize(analysis::CategorizeArgs),
    /// Run the anomaly detector over a native audit log file here, without
    /// a cluster and without appending: the flags it would raise.
    Detect(detect::DetectArgs),
    /// Show the node's Raft and ledger status.
    Status,
    /// Check a stopped node's files offline: every leaf, stored hash,
    /// checkpoint and signature.
    Fsck(fsck::FsckArgs),
    /// Run a local cluster for trying Ironlog out.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start three nodes on this machine; Ctrl-C stops them.
    Up(cluster::UpArgs),
}

/// Options every client command shares.
#[derive(Clone, Debug)]
pub struct Global {
    pub endpoint: String,
    pub json: bool,
    /// TLS trust and the caller's identity for every connection.
    pub credentials: client::Credentials,
}

/// Why a command failed. The message is what the user sees after `error: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("node failed")]
    Node(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    #[error("invalid endpoint {endpoint:?}")]
    Endpoint {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot connect to {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error(transparent)]
    Append(#[from] append::AppendError),
    #[error(transparent)]
    Ingest(#[from] ingest::IngestCliError),
    #[error(transparent)]
    Credentials(#[from] client::CredentialsError),
    #[error(transparent)]
    Keygen(#[from] keygen::KeygenError),
    #[error(transparent)]
    Certs(#[from] certs::CertsError),
    #[error(transparent)]
    Witness(#[from] crate::witness::server::WitnessError),
    #[error(transparent)]
    Prove(#[from] prove::ProveError),
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error("monitor raised {0} alert(s)")]
    Alerts(usize),
    #[error(transparent)]
    Fsck(#[from] fsck::FsckCliError),
    #[error("{0}")]
    Usage(String),
    #[error("server sent an invalid response: {0}")]
    BadResponse(String),
    #[error("cannot write output")]
    Output(#[source] std::io::Error),
}

impl CliError {
    /// The process exit status for this error: 1, except where a command
    /// gives its failures distinct statuses.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Fsck(e) => e.exit_code(),
            _ => 1,
        }
    }
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        CliError::Status(StatusError(status))
    }
}

/// Runs one parsed command line to completion.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let global = Global {
        endpoint: cli.endpoint,
        json: cli.json,
        credentials: client::Credentials {
            ca: cli.ca,
            cert: cli.cert,
            key: cli.key,
            token: cli.token,
            token_file: cli.token_file,
        },
    };
    match cli.command {
        Command::Node { config, insecure } => run_node(&config, insecure).await,
        Command::Keygen(args) => keygen::run(&global, &args),
        Command::Certs(command) => certs::run(&global, &command),
        Command::Witness(args) => witness::run(&args).await,
        Command::Append(args) => append::run(&global, &args).await,
        Command::Ingest(args) => ingest::run(&global, &args).await,
        Command::Get(args) => read::get(&global, &args).await,
        Command::Tail(args) => read::tail(&global, &args).await,
        Command::Query(args) => read::query(&global, &args).await,
        Command::Checkpoint(args) => prove::checkpoint(&global, &args).await,
        Command::Prove(command) => prove::prove(&global, &command).await,
        Command::Verify(args) => audit::verify(&global, &args).await,
        Command::Export(args) => audit::export(&global, &args).await,
        Command::Monitor(args) => audit::monitor(&global, &args).await,
        Command::Ask(args) => analysis::ask(&global, &args).await,
        Command::Summarize(args) => analysis::summarize(&global, &args).await,
        Command::Anomalies(args) => analysis::anomalies(&global, &args).await,
        Command::Categorize(args) => analysis::categorize(&global, &args).await,
        Command::Detect(args) => detect::run(&global, &args),
        Command::Status => status::run(&global).await,
        Command::Fsck(args) => fsck::run(&global, &args),
        Command::Cluster(ClusterCommand::Up(args)) => cluster::up(&args).await,
    }
}

async fn run_node(path: &std::path::Path, insecure: bool) -> Result<(), CliError> {
    let config = Config::load_with(path, insecure)?;
    tracing::info!(
        id = config.id,
        listen = %config.listen,
        peer_listen = %config.peer_listen,
        "starting node"
    );
    crate::node::run(config)
        .await
        .map_err(|e| CliError::Node(Box::new(e)))
}

/// Shared `--vkey` option: verifier keys whose signatures must be on a note.
#[derive(Clone, Debug, Default, Args)]
pub struct TrustArgs {
    /// Verifier key of a voter (repeatable; give every voter's). The `.pub`
    /// file written by `ironlog keygen` holds one. A note is accepted only if
    /// a majority of the given keys signed it (see --min-signatures).
    /// Without --vkey the note's signatures are shown but not checked.
    #[arg(long = "vkey", value_name = "VKEY")]
    pub vkeys: Vec<String>,
    /// How many of the --vkey keys must have signed, 1 to their number
    /// [default: a majority, floor(n/2)+1].
    #[arg(long, value_name = "K", requires = "vkeys")]
    pub min_signatures: Option<usize>,
}

impl TrustArgs {
    /// Signatures by distinct given keys a note needs: `--min-signatures`,
    /// or a majority of the keys, as a quorum of voters signs each checkpoint.
    pub fn signatures_required(&self) -> Result<usize, CliError> {
        let keys = self.distinct_vkeys().len();
        match self.min_signatures {
            None => Ok(crate::ledger::policy::majority(keys)),
            Some(k) if (1..=keys).contains(&k) => Ok(k),
            Some(k) => Err(CliError::Usage(format!(
                "--min-signatures {k} must be between 1 and the number of distinct --vkey keys given ({keys})"
            ))),
        }
    }

    /// The given keys, trimmed, each once: a key given twice must not
    /// count twice towards the threshold.
    pub fn distinct_vkeys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.vkeys.iter().map(|k| k.trim().to_string()).collect();
        keys.sort();
        keys.dedup();
        keys
    }
}
