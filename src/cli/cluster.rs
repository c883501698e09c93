//! `ironlog cluster up`: three nodes on this machine, for trying Ironlog out.
//!
//! The first run writes a signing key and a config per node into `--dir`;
//! later runs reuse them, so the ledger survives restarts. It also makes,
//! once, the cluster's TLS material in `--dir/tls` (a CA, a certificate per
//! node, and an `operator` client identity holding every role, as both a
//! client certificate and a bearer token), and writes `--dir/env`, a shell
//! file that points the CLI at node 1 with the operator's certificate.
//! With `--insecure` the same configs are used, but the nodes are started
//! with `--insecure`: plaintext, nobody authenticated. The nodes run as
//! child processes of this one, in their own process group so that a
//! terminal's Ctrl-C reaches only this process, which then stops them in
//! order: SIGTERM, a grace period, then SIGKILL. If a node dies on its own
//! the others are stopped and the command fails naming it.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use clap::Args;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::certs::{self, CertFiles, CertificateAuthority, CertsError};
use super::client::{self, Credentials};
use super::keygen::{self, KeygenError};
use crate::config::{
    AuthConfig, CheckpointConfig, ClientConfig, ClientRole, Config, ConfigError, Peer, RaftTuning,
    Role, TlsConfig,
};
use crate::ledger::checkpoint::NoteSigner;
use crate::ledger::policy::{KeyGroup, TrustPolicy};
use crate::proto;

/// Nodes in the local cluster: the smallest that survives losing one.
pub const NODES: u16 = 3;

/// Origin used when `--origin` is not given and no configs exist yet.
pub const ORIGIN_DEFAULT: &str = "example.org/ironlog";

/// Port of node 1 when `--base-port` is not given; nodes use consecutive ports.
pub const BASE_PORT_DEFAULT: u16 = 7001;

/// Node N's tlog-tiles HTTP port is its gRPC port plus this when
/// `--http-base-port` is not given: 8001-8003 next to 7001-7003.
pub const HTTP_PORT_OFFSET: u16 = 1000;

/// Node N's peer (Raft) port is its client port plus this when
/// `--peer-base-port` is not given: 7101-7104 next to 7001-7004.
pub const PEER_PORT_OFFSET: u16 = 100;

/// Directory under `--dir` for the CA, certificates, keys and token.
pub const TLS_DIR: &str = "tls";

/// The client identity `cluster up` makes for its operator: every role.
pub const OPERATOR_NAME: &str = "operator";

/// The operator's bearer token file in [`TLS_DIR`] (mode 0600).
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";

/// The operator's rate and in-flight limits: far above what one machine's
/// benchmarks send, so `scripts/bench-append.sh` measures TLS and
/// authorisation, not the operator's throttle.
pub const OPERATOR_REQUESTS_PER_S: u32 = 1_000_000;
pub const OPERATOR_IN_FLIGHT_MAX: u32 = 4_096;

/// The shell file `cluster up` writes into `--dir` for the CLI.
pub const ENV_FILE: &str = "env";

/// Hosts every local node certificate names besides `node-<id>.ironlog`.
const LOCAL_HOSTS: [&str; 2] = ["127.0.0.1", "localhost"];

/// How long the nodes get to elect a leader: many election timeouts, plus
/// process start-up and first-start database creation.
pub const LEADER_WAIT_MS: u64 = 30_000;

/// Pause between status polls while waiting for a leader.
const STATUS_POLL_MS: u64 = 200;

/// Deadline for one status poll, so a hung node cannot stall the wait.
const STATUS_CALL_MS: u64 = 1_000;

/// How long a node has to exit after SIGTERM before it is killed.
pub const STOP_GRACE_MS: u64 = 10_000;

/// Bytes from the end of a node's log shown when it dies.
const LOG_TAIL_BYTES: u64 = 2_048;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Directory for keys, configs, data and logs (created if missing).
    #[arg(long)]
    pub dir: PathBuf,
    /// Port of node 1; node N listens on BASE + N - 1 [default: 7001 on first run].
    #[arg(long)]
    pub base_port: Option<u16>,
    /// Checkpoint origin and key name [default: example.org/ironlog on first run].
    #[arg(long)]
    pub origin: Option<String>,
    /// Port of node 1's read-only tlog-tiles HTTP endpoint; node N uses
    /// HTTP_BASE + N - 1 [default: base port + 1000 on first run].
    #[arg(long)]
    pub http_base_port: Option<u16>,
    /// Port of node 1's peer (Raft) listener; node N uses PEER_BASE + N - 1
    /// [default: base port + 100 on first run].
    #[arg(long)]
    pub peer_base_port: Option<u16>,
    /// Also run the analysis node (node 4, a non-voting learner on the next
    /// port) with this GGUF model; `scripts/install-model.sh` prints the
    /// default model's path.
    #[arg(long)]
    pub analysis_model: Option<PathBuf>,
    /// Start the nodes with --insecure: plaintext on every port, nobody
    /// authenticated, anyone on this machine may append, read, change
    /// membership or speak Raft. For comparing against TLS only.
    #[arg(long)]
    pub insecure: bool,
}

/// Node id of the analysis node `cluster up --analysis-model` adds.
pub const ANALYSIS_NODE_ID: u64 = NODES as u64 + 1;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot use {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--base-port {base_port} leaves no room for {NODES} consecutive ports")]
    Ports { base_port: u16 },
    #[error(
        "HTTP base port {http_base_port} leaves no room for {NODES} consecutive ports \
         apart from the gRPC ports from {base_port}; pass another --http-base-port"
    )]
    HttpPorts { http_base_port: u32, base_port: u16 },
    #[error(
        "peer base port {peer_base_port} leaves no room for {} consecutive ports apart \
         from the client ports from {base_port} and the HTTP ports from {http_base_port}; \
         pass another --peer-base-port", NODES + 1
    )]
    PeerPorts {
        peer_base_port: u32,
        base_port: u16,
        http_base_port: u16,
    },
    #[error(transparent)]
    Certs(#[from] CertsError),
    #[error(transparent)]
    Keygen(#[from] KeygenError),
    #[error("cannot read the signing key in {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("{path}")]
    Config {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
    #[error("{path}: {reason}; delete {dir} to start a fresh cluster")]
    Stale {
        path: PathBuf,
        reason: String,
        dir: PathBuf,
    },
    #[error("cannot start node {id}")]
    Spawn {
        id: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("node {id} exited unexpectedly ({status}); its log is {log}")]
    Exited {
        id: u64,
        status: String,
        log: PathBuf,
    },
    #[error("no leader was elected within {} s; the node logs are in {dir}", LEADER_WAIT_MS / 1000)]
    NoLeader { dir: PathBuf },
    #[error("cannot add the analysis node {id} as a learner: {reason}")]
    Learner { id: u64, reason: String },
    #[error("cannot listen for signals")]
    Signal(#[source] std::io::Error),
}

/// One node's files, all inside `--dir`.
#[derive(Debug)]
struct Node {
    id: u64,
    config_path: PathBuf,
    log_path: PathBuf,
    /// Its client listener's URL, `https://` (or `http://` with `--insecure`).
    endpoint: String,
    /// Its peer listener, `host:port`, as AddLearner takes it.
    peer_addr: String,
    /// The tlog-tiles URL prefix; none if the node's config has no `http_listen`.
    http_url: Option<String>,
}

/// First client, HTTP and peer port; node N uses each plus N - 1.
#[derive(Clone, Copy, Debug)]
struct Ports {
    grpc: u16,
    http: u16,
    peer: u16,
}

/// How `cluster up` itself and the CLI reach the nodes.
#[derive(Debug)]
struct Access {
    insecure: bool,
    /// The operator's credentials, for the leader wait and AddLearner.
    credentials: Credentials,
    /// The operator identity every node config lists.
    operator: ClientConfig,
}

impl Access {
    fn scheme(&self) -> &'static str {
        if self.insecure {
            "http"
        } else {
            "https"
        }
    }
}

/// SIGINT and SIGTERM, registered before any child exists so that neither
/// can kill this process while children run unsupervised.
struct Shutdown {
    interrupt: Signal,
    terminate: Signal,
}

impl Shutdown {
    fn register() -> Result<Shutdown, ClusterError> {
        Ok(Shutdown {
            interrupt: signal(SignalKind::interrupt()).map_err(ClusterError::Signal)?,
            terminate: signal(SignalKind::terminate()).map_err(ClusterError::Signal)?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

pub async fn up(args: &UpArgs) -> Result<(), super::CliError> {
    let mut shutdown = Shutdown::register()?;
    let (nodes, access) = prepare(args)?;
    if access.insecure {
        say("WARNING: --insecure: the nodes speak plaintext and authenticate nobody; anyone on this machine can append, read, change membership and speak Raft. Never use this for real data.");
    }
    let mut children = Vec::new();
    for node in &nodes {
        match spawn(node, access.insecure) {
            Ok(child) => children.push((node.id, child)),
            Err(e) => {
                stop(&mut children).await;
                return Err(e.into());
            }
        }
    }
    let result = supervise(args, &nodes, &access, &mut children, &mut shutdown).await;
    stop(&mut children).await;
    if let Err(ClusterError::Exited { log, .. }) = &result {
        show_log_tail(log);
    }
    Ok(result?)
}

async fn supervise(
    args: &UpArgs,
    nodes: &[Node],
    access: &Access,
    children: &mut [(u64, Child)],
    shutdown: &mut Shutdown,
) -> Result<(), ClusterError> {
    let leader = tokio::select! {
        leader = wait_for_leader(args, nodes, &access.credentials) => leader?,
        exited = first_exit(children, nodes) => return Err(exited),
        signal = shutdown.recv() => {
            say(&format!("{signal} received before a leader was elected; stopping"));
            return Ok(());
        }
    };
    if let (Some(analysis), Some(leader_node)) = (
        nodes.iter().find(|n| n.id == ANALYSIS_NODE_ID),
        nodes.iter().find(|n| n.id == leader),
    ) {
        tokio::select! {
            added = add_analysis_learner(leader_node, analysis, &access.credentials) => added?,
            exited = first_exit(children, nodes) => return Err(exited),
        }
    }
    say(&format!(
        "Ironlog cluster running in {} (leader: node {leader})",
        args.dir.display()
    ));
    for node in nodes {
        let http = match &node.http_url {
            Some(url) => format!("tiles {url}"),
            None => "tiles off (no http_listen in its config)".to_string(),
        };
        say(&format!(
            "  node {}  {}  {http}  log {}",
            node.id,
            node.endpoint,
            node.log_path.display()
        ));
    }
    let env = args.dir.join(ENV_FILE);
    if access.insecure {
        say("INSECURE: plaintext, no authentication (started with --insecure).");
    } else {
        say(&format!(
            "TLS on every port; clients need the cluster CA and an identity (operator: every role; \
             its certificate and token are in {}).",
            args.dir.join(TLS_DIR).display()
        ));
    }
    say(&format!(
        "Use:   source {}   (sets IRONLOG_ENDPOINT{} for the ironlog CLI)",
        shell_quote(&env.display().to_string()),
        if access.insecure {
            ""
        } else {
            ", IRONLOG_CA, IRONLOG_CERT and IRONLOG_KEY"
        }
    ));
    if let Some(follower) = nodes.iter().find(|n| n.id != leader) {
        say(&format!(
            "Try:   ironlog --endpoint {} status   (any node accepts appends)",
            follower.endpoint
        ));
    }
    say(&format!(
        "Audit: ironlog verify --policy {} --state audit-state.json",
        args.dir.join(POLICY_FILE).display()
    ));
    if let Some(url) = nodes.iter().find_map(|n| n.http_url.as_ref()) {
        let curl = match (
            &access.credentials.ca,
            &access.credentials.cert,
            &access.credentials.key,
        ) {
            (Some(ca), Some(cert), Some(key)) if !access.insecure => format!(
                "curl --cacert {} --cert {} --key {} ",
                shell_quote(&ca.display().to_string()),
                shell_quote(&cert.display().to_string()),
                shell_quote(&key.display().to_string())
            ),
            _ => "curl ".to_string(),
        };
        say(&format!(
            "       {curl}{url}/checkpoint   (C2SP tlog-tiles, read-only)"
        ));
    }
    if let Some(analysis) = nodes.iter().find(|n| n.id == ANALYSIS_NODE_ID) {
        say(&format!(
            "Ask:   ironlog --endpoint {} ask \"who accessed the payments database in the last 24 hours?\"   (analysis node {}, a non-voting learner)",
            analysis.endpoint, analysis.id
        ));
    }
    say("Press Ctrl-C to stop the cluster.");
    tokio::select! {
        exited = first_exit(children, nodes) => Err(exited),
        signal = shutdown.recv() => {
            say(&format!("{signal} received; stopping the nodes"));
            Ok(())
        }
    }
}

/// Writes whatever keys, certificates and configs are missing, and checks
/// the ones that exist still belong together.
fn prepare(args: &UpArgs) -> Result<(Vec<Node>, Access), ClusterError> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).map_err(|source| ClusterError::Io {
        path: dir.clone(),
        source,
    })?;
    let existing = load_existing_config(dir)?;
    let origin = args
        .origin
        .clone()
        .or_else(|| existing.as_ref().map(|c| c.origin.clone()))
        .unwrap_or_else(|| ORIGIN_DEFAULT.to_string());
    let base_port = args
        .base_port
        .or_else(|| existing.as_ref().map(|c| c.listen.port()))
        .unwrap_or(BASE_PORT_DEFAULT);
    if base_port == 0 || base_port.checked_add(NODES - 1).is_none() {
        return Err(ClusterError::Ports { base_port });
    }
    let http_base_port = args
        .http_base_port
        .or_else(|| {
            existing
                .as_ref()
                .and_then(|c| c.http_listen.map(|a| a.port()))
        })
        .map(u32::from)
        .unwrap_or(u32::from(base_port) + u32::from(HTTP_PORT_OFFSET));
    let http = http_ports(base_port, http_base_port)?;
    let peer_base_port = args
        .peer_base_port
        .or_else(|| existing.as_ref().map(|c| c.peer_listen.port()))
        .map(u32::from)
        .unwrap_or(u32::from(base_port) + u32::from(PEER_PORT_OFFSET));
    let ports = Ports {
        grpc: base_port,
        http,
        peer: peer_ports(base_port, http, peer_base_port)?,
    };
    // Validate the shape first, so a bad --origin fails before keys are made.
    let probe = node_config(
        1,
        ports,
        &origin,
        &[(1, "probe".into())],
        &operator_client("0".repeat(64)),
    );
    probe.validate().map_err(|source| ClusterError::Config {
        path: config_path(dir, 1),
        source,
    })?;

    let mut vkeys = Vec::new();
    for id in 1..=u64::from(NODES) {
        vkeys.push((id, ensure_key(dir, id, &origin)?));
    }
    write_policy(dir, &origin, &vkeys)?;
    let mut ids: Vec<u64> = (1..=u64::from(NODES)).collect();
    if args.analysis_model.is_some() {
        ids.push(ANALYSIS_NODE_ID);
    }
    let access = ensure_tls(dir, &ids, args.insecure)?;
    let mut nodes = Vec::new();
    for id in 1..=u64::from(NODES) {
        let path = config_path(dir, id);
        let config = ensure_config(dir, &path, id, ports, &origin, &vkeys, &access.operator)?;
        let data_dir = &config.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|source| ClusterError::Io {
            path: data_dir.clone(),
            source,
        })?;
        nodes.push(Node {
            id,
            endpoint: format!("{}://{}", access.scheme(), config.advertise_addr()),
            peer_addr: config.peer_advertise_addr(),
            http_url: config
                .http_listen
                .map(|addr| format!("{}://{addr}", access.scheme())),
            config_path: path,
            log_path: dir.join(format!("node{id}.log")),
        });
    }
    if let Some(model) = &args.analysis_model {
        nodes.push(prepare_analysis(
            dir, model, ports, &origin, &vkeys, &access,
        )?);
    }
    write_env(dir, &nodes[0].endpoint, &access)?;
    Ok((nodes, access))
}

/// The operator identity: every role, any source, limits out of the way.
fn operator_client(token_sha256: String) -> ClientConfig {
    ClientConfig {
        name: OPERATOR_NAME.to_string(),
        certificate_cn: Some(OPERATOR_NAME.to_string()),
        token_sha256: Some(token_sha256),
        roles: vec![
            ClientRole::Appender,
            ClientRole::Reader,
            ClientRole::Auditor,
            ClientRole::Analyst,
            ClientRole::Admin,
        ],
        sources: vec!["*".to_string()],
        requests_per_s: Some(OPERATOR_REQUESTS_PER_S),
        in_flight_max: Some(OPERATOR_IN_FLIGHT_MAX),
    }
}

/// Makes whatever TLS material is missing in `dir/tls` (the CA, a
/// certificate for each of `ids`, the operator's certificate and token)
/// and reuses what exists. Made even with `--insecure`, so the same
/// directory can be brought up either way.
fn ensure_tls(dir: &Path, ids: &[u64], insecure: bool) -> Result<Access, ClusterError> {
    let tls = dir.join(TLS_DIR);
    let ca_files = CertFiles {
        cert: tls.join(certs::CA_CERT_FILE),
        key: tls.join(certs::CA_KEY_FILE),
    };
    if !ca_files.cert.exists() && !ca_files.key.exists() {
        certs::create_ca(&tls)?;
    }
    let ca = CertificateAuthority::load(&tls)?;
    let hosts: Vec<String> = LOCAL_HOSTS.iter().map(|h| h.to_string()).collect();
    for &id in ids {
        let files = node_cert_files(dir, id);
        if !(files.cert.exists() && files.key.exists()) {
            ca.issue_node(&tls, id, &hosts)?;
        }
    }
    let operator = CertFiles {
        cert: tls.join(format!("{OPERATOR_NAME}.pem")),
        key: tls.join(format!("{OPERATOR_NAME}-key.pem")),
    };
    if !(operator.cert.exists() && operator.key.exists()) {
        ca.issue_client(&tls, OPERATOR_NAME)?;
    }
    let token_path = tls.join(OPERATOR_TOKEN_FILE);
    let token = if token_path.exists() {
        crate::key_file::read_private_key(&token_path)
            .map_err(|e| ClusterError::Key {
                path: token_path.clone(),
                reason: e.to_string(),
            })?
            .trim()
            .to_string()
    } else {
        let token = certs::new_token();
        certs::write_new(&token_path, format!("{token}\n").as_bytes(), 0o600)?;
        token
    };
    let absolute = |path: &Path| {
        std::path::absolute(path).map_err(|source| ClusterError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let credentials = if insecure {
        Credentials::default()
    } else {
        Credentials {
            ca: Some(absolute(&ca_files.cert)?),
            cert: Some(absolute(&operator.cert)?),
            key: Some(absolute(&operator.key)?),
            token: None,
            token_file: None,
        }
    };
    Ok(Access {
        insecure,
        credentials,
        operator: operator_client(certs::token_sha256(&token)),
    })
}

fn node_cert_files(dir: &Path, id: u64) -> CertFiles {
    let tls = dir.join(TLS_DIR);
    CertFiles {
        cert: tls.join(format!("node-{id}.pem")),
        key: tls.join(format!("node-{id}-key.pem")),
    }
}

/// Writes `dir/env`, which points the CLI at node 1 with the operator's
/// certificate (or, with `--insecure`, at its plaintext port with no
/// credentials). Rewritten on every run: it holds paths, no secret.
fn write_env(dir: &Path, endpoint: &str, access: &Access) -> Result<(), ClusterError> {
    let quoted = |path: &Option<PathBuf>| {
        shell_quote(
            &path
                .as_deref()
                .unwrap_or(Path::new(""))
                .display()
                .to_string(),
        )
    };
    let mut text = format!(
        "# Written by `ironlog cluster up`; `source` it to use this cluster with the CLI.\n\
         export IRONLOG_ENDPOINT={}\n",
        shell_quote(endpoint)
    );
    if access.insecure {
        text.push_str(
            "# INSECURE: the cluster runs with --insecure (plaintext, nobody authenticated).\n\
             unset IRONLOG_CA IRONLOG_CERT IRONLOG_KEY IRONLOG_TOKEN IRONLOG_TOKEN_FILE\n",
        );
    } else {
        let c = &access.credentials;
        text.push_str(&format!(
            "export IRONLOG_CA={}\nexport IRONLOG_CERT={}\nexport IRONLOG_KEY={}\n\
             # The operator may use its bearer token instead of the certificate:\n\
             #   export IRONLOG_TOKEN_FILE={}\n\
             unset IRONLOG_TOKEN IRONLOG_TOKEN_FILE\n",
            quoted(&c.ca),
            quoted(&c.cert),
            quoted(&c.key),
            shell_quote(
                &c.ca
                    .as_deref()
                    .and_then(Path::parent)
                    .unwrap_or(Path::new(""))
                    .join(OPERATOR_TOKEN_FILE)
                    .display()
                    .to_string()
            ),
        ));
    }
    let path = dir.join(ENV_FILE);
    std::fs::write(&path, text).map_err(|source| ClusterError::Io { path, source })
}

/// `text` as one POSIX shell word.
fn shell_quote(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-:+=,@".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The analysis node's config: a learner on the port after the voters',
/// without an HTTP endpoint, rewritten on every run so `--analysis-model`
/// can change. Its data directory (its replica) is kept.
fn prepare_analysis(
    dir: &Path,
    model: &Path,
    ports: Ports,
    origin: &str,
    vkeys: &[(u64, String)],
    access: &Access,
) -> Result<Node, ClusterError> {
    let id = ANALYSIS_NODE_ID;
    if ports.grpc.checked_add(NODES).is_none() {
        return Err(ClusterError::Ports {
            base_port: ports.grpc,
        });
    }
    let model = std::path::absolute(model).map_err(|source| ClusterError::Io {
        path: model.to_path_buf(),
        source,
    })?;
    let mut config = node_config(id, ports, origin, vkeys, &access.operator);
    config.role = Role::Analysis;
    config.bootstrap = false;
    config.http_listen = None;
    config.analysis = Some(crate::config::AnalysisConfig {
        model,
        threads: 2,
        concurrency: 1,
        timeout_ms: crate::limits::MODEL_TIMEOUT_MS_DEFAULT,
        categorize_with_model: true,
        detections: Vec::new(),
    });
    let path = config_path(dir, id);
    config.validate().map_err(|source| ClusterError::Config {
        path: path.clone(),
        source,
    })?;
    write_config(&path, &config)?;
    let data_dir = dir.join(&config.data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|source| ClusterError::Io {
        path: data_dir,
        source,
    })?;
    Ok(Node {
        id,
        endpoint: format!("{}://{}", access.scheme(), config.advertise_addr()),
        peer_addr: config.peer_advertise_addr(),
        http_url: None,
        config_path: path,
        log_path: dir.join(format!("node{id}.log")),
    })
}

/// Adds the analysis node to the cluster as a learner, through the leader
/// (idempotent: a node already a learner stays one).
async fn add_analysis_learner(
    leader: &Node,
    analysis: &Node,
    credentials: &Credentials,
) -> Result<(), ClusterError> {
    let client_addr = analysis
        .endpoint
        .split_once("://")
        .map_or(analysis.endpoint.as_str(), |(_, addr)| addr)
        .to_string();
    let mut last = String::new();
    for _ in 0..(LEADER_WAIT_MS / STATUS_POLL_MS) {
        let attempt = async {
            let channel = client::connect(credentials, &leader.endpoint)
                .await
                .map_err(|e| e.to_string())?;
            client::admin(channel)
                .add_learner(crate::proto::AddLearnerRequest {
                    id: analysis.id,
                    addr: analysis.peer_addr.clone(),
                    verifier_key: String::new(),
                    client_addr: client_addr.clone(),
                })
                .await
                .map_err(|e| e.message().to_string())
        };
        match attempt.await {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(std::time::Duration::from_millis(STATUS_POLL_MS)).await;
    }
    Err(ClusterError::Learner {
        id: analysis.id,
        reason: last,
    })
}

/// Writes `policy.toml`: the trust policy an auditor of this cluster
/// would use (all voters' keys, a majority threshold), for `ironlog verify`.
fn write_policy(dir: &Path, origin: &str, vkeys: &[(u64, String)]) -> Result<(), ClusterError> {
    let policy = TrustPolicy {
        origin: origin.to_string(),
        log: KeyGroup {
            threshold: crate::ledger::policy::majority(vkeys.len()),
            keys: vkeys.iter().map(|(_, k)| k.clone()).collect(),
        },
        witnesses: None,
    };
    let path = dir.join(POLICY_FILE);
    std::fs::write(&path, policy.to_toml()).map_err(|source| ClusterError::Io { path, source })
}

/// Name of the trust policy file `cluster up` writes into its directory.
pub const POLICY_FILE: &str = "policy.toml";

/// The first HTTP port, if all of the nodes' HTTP ports are valid and
/// clear of their gRPC ports.
fn http_ports(base_port: u16, http_base_port: u32) -> Result<u16, ClusterError> {
    let nodes = u32::from(NODES);
    let grpc = u32::from(base_port)..u32::from(base_port) + nodes;
    let http = http_base_port..http_base_port + nodes;
    let fits = http_base_port != 0 && http.end - 1 <= u32::from(u16::MAX);
    let apart = http.end <= grpc.start || grpc.end <= http.start;
    match u16::try_from(http_base_port) {
        Ok(port) if fits && apart => Ok(port),
        _ => Err(ClusterError::HttpPorts {
            http_base_port,
            base_port,
        }),
    }
}

/// The first peer port, if all of the nodes' peer ports (the analysis
/// node's included) are valid and clear of their client and HTTP ports.
fn peer_ports(
    base_port: u16,
    http_base_port: u16,
    peer_base_port: u32,
) -> Result<u16, ClusterError> {
    let slots = u32::from(NODES) + 1;
    let grpc = u32::from(base_port)..u32::from(base_port) + slots;
    let http = u32::from(http_base_port)..u32::from(http_base_port) + u32::from(NODES);
    let peer = peer_base_port..peer_base_port + slots;
    let apart = |other: &std::ops::Range<u32>| peer.end <= other.start || other.end <= peer.start;
    let fits = peer_base_port != 0 && peer.end - 1 <= u32::from(u16::MAX);
    match u16::try_from(peer_base_port) {
        Ok(port) if fits && apart(&grpc) && apart(&http) => Ok(port),
        _ => Err(ClusterError::PeerPorts {
            peer_base_port,
            base_port,
            http_base_port,
        }),
    }
}

fn config_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("node{id}.toml"))
}

fn load_existing_config(dir: &Path) -> Result<Option<Config>, ClusterError> {
    let path = config_path(dir, 1);
    if !path.exists() {
        return Ok(None);
    }
    refuse_old_layout(dir, &path)?;
    Config::load_with(&path, true)
        .map(Some)
        .map_err(|source| ClusterError::Config { path, source })
}

/// A config from before the peer listener existed is stale: its data
/// directory's Raft membership names the peers' client ports, which no
/// longer speak Raft, so rewriting the config alone would not revive it.
fn refuse_old_layout(dir: &Path, path: &Path) -> Result<(), ClusterError> {
    let text = std::fs::read_to_string(path).map_err(|source| ClusterError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let old = text
        .parse::<toml::Table>()
        .is_ok_and(|table| !table.contains_key("peer_listen"));
    if old {
        return Err(ClusterError::Stale {
            path: path.to_path_buf(),
            reason: "was written by an older Ironlog, without a peer listener (peer_listen) \
                     or TLS; its stored membership names the old Raft addresses"
                .into(),
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// Returns the node's verifier key, generating the key pair on first run.
fn ensure_key(dir: &Path, id: u64, origin: &str) -> Result<String, ClusterError> {
    let path = dir.join(format!("node{id}.key"));
    if !path.exists() {
        let (_, vkey) = keygen::write_key_pair(origin, &path)?;
        return Ok(vkey);
    }
    let skey = std::fs::read_to_string(&path).map_err(|source| ClusterError::Io {
        path: path.clone(),
        source,
    })?;
    let signer = NoteSigner::from_skey(skey.trim()).map_err(|e| ClusterError::Key {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(signer.verifier_key())
}

/// The config `cluster up` writes for node `id`: TLS with its files in
/// `tls/`, and the operator as the one client identity.
fn node_config(
    id: u64,
    ports: Ports,
    origin: &str,
    vkeys: &[(u64, String)],
    operator: &ClientConfig,
) -> Config {
    let port = |base: u16, id: u64| u16::try_from(u64::from(base) + id - 1).unwrap_or(base);
    let addr = |base: u16, id: u64| format!("127.0.0.1:{}", port(base, id));
    let tls = Path::new(TLS_DIR);
    Config {
        id,
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], port(ports.grpc, id))),
        advertise: None,
        peer_listen: std::net::SocketAddr::from(([127, 0, 0, 1], port(ports.peer, id))),
        peer_advertise: None,
        http_listen: Some(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            port(ports.http, id),
        ))),
        data_dir: PathBuf::from(format!("node{id}")),
        origin: origin.to_string(),
        signing_key_file: PathBuf::from(format!("node{id}.key")),
        role: Role::Voter,
        bootstrap: id == 1,
        checkpoint: CheckpointConfig::default(),
        raft: RaftTuning::default(),
        storage: Default::default(),
        peers: vkeys
            .iter()
            .map(|(peer, vkey)| Peer {
                id: *peer,
                addr: addr(ports.peer, *peer),
                client_addr: Some(addr(ports.grpc, *peer)),
                verifier_key: vkey.clone(),
            })
            .collect(),
        witnesses: Vec::new(),
        analysis: None,
        tls: Some(TlsConfig {
            ca_file: tls.join(certs::CA_CERT_FILE),
            cert_file: tls.join(format!("node-{id}.pem")),
            key_file: tls.join(format!("node-{id}-key.pem")),
        }),
        auth: AuthConfig {
            anonymous_auditor: false,
            requests_per_s: None,
            in_flight_max: None,
            clients: vec![operator.clone()],
        },
        insecure: false,
    }
}

fn ensure_config(
    dir: &Path,
    path: &Path,
    id: u64,
    ports: Ports,
    origin: &str,
    vkeys: &[(u64, String)],
    operator: &ClientConfig,
) -> Result<Config, ClusterError> {
    if !path.exists() {
        write_config(path, &node_config(id, ports, origin, vkeys, operator))?;
    }
    refuse_old_layout(dir, path)?;
    let config = Config::load(path).map_err(|source| ClusterError::Config {
        path: path.to_path_buf(),
        source,
    })?;
    let stale = |reason: String| ClusterError::Stale {
        path: path.to_path_buf(),
        reason,
        dir: dir.to_path_buf(),
    };
    if config.id != id {
        return Err(stale(format!("has id {}, expected {id}", config.id)));
    }
    if config.origin != origin {
        return Err(stale(format!(
            "uses origin {:?}, not {origin:?}",
            config.origin
        )));
    }
    let keys: BTreeMap<u64, &String> = vkeys.iter().map(|(id, key)| (*id, key)).collect();
    for peer in &config.peers {
        if keys
            .get(&peer.id)
            .is_some_and(|key| **key != peer.verifier_key)
        {
            return Err(stale(format!(
                "lists a verifier key for node {} that does not match node{}.key",
                peer.id, peer.id
            )));
        }
    }
    Ok(config)
}

fn write_config(path: &Path, config: &Config) -> Result<(), ClusterError> {
    let io_error = |source| ClusterError::Io {
        path: path.to_path_buf(),
        source,
    };
    let body =
        toml::to_string(config).map_err(|e| io_error(std::io::Error::other(e.to_string())))?;
    let text = format!(
        "# Written by `ironlog cluster up` for a local trial cluster; later runs\n\
         # reuse it. Relative paths are relative to this file's directory.\n\
         # See cluster/README.md for a real deployment.\n\n{body}"
    );
    std::fs::write(path, text).map_err(io_error)
}

fn spawn(node: &Node, insecure: bool) -> Result<Child, ClusterError> {
    let spawn_error = |source| ClusterError::Spawn {
        id: node.id,
        source,
    };
    let exe = std::env::current_exe().map_err(spawn_error)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&node.log_path)
        .map_err(|source| ClusterError::Io {
            path: node.log_path.clone(),
            source,
        })?;
    let log_err = log.try_clone().map_err(spawn_error)?;
    let mut command = Command::new(exe);
    command
        .arg("node")
        .arg("--config")
        .arg(&node.config_path)
        .args(insecure.then_some("--insecure"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .kill_on_drop(true);
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "info");
    }
    command.spawn().map_err(spawn_error)
}

async fn wait_for_leader(
    args: &UpArgs,
    nodes: &[Node],
    credentials: &Credentials,
) -> Result<u64, ClusterError> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(LEADER_WAIT_MS);
    loop {
        for node in nodes {
            if let Some(leader) = leader_seen_by(credentials, &node.endpoint).await {
                return Ok(leader);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ClusterError::NoLeader {
                dir: args.dir.clone(),
            });
        }
        tokio::time::sleep(Duration::from_millis(STATUS_POLL_MS)).await;
    }
}

/// The leader id a node reports, if it is up and knows one.
async fn leader_seen_by(credentials: &Credentials, endpoint: &str) -> Option<u64> {
    let call = async {
        let channel = client::connect(credentials, endpoint).await.ok()?;
        let status = client::admin(channel)
            .status(proto::StatusRequest {})
            .await
            .ok()?
            .into_inner();
        (status.leader_id != 0).then_some(status.leader_id)
    };
    tokio::time::timeout(Duration::from_millis(STATUS_CALL_MS), call)
        .await
        .ok()
        .flatten()
}

/// Resolves when any child exits, naming it.
async fn first_exit(children: &mut [(u64, Child)], nodes: &[Node]) -> ClusterError {
    let waits = children.iter_mut().map(|(id, child)| {
        let id = *id;
        Box::pin(async move { (id, child.wait().await) })
    });
    let ((id, status), _, _) = futures::future::select_all(waits).await;
    let log = nodes
        .iter()
        .find(|node| node.id == id)
        .map(|node| node.log_path.clone())
        .unwrap_or_default();
    ClusterError::Exited {
        id,
        status: describe(status),
        log,
    }
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(e) => format!("cannot tell how: {e}"),
    }
}

/// SIGTERM to every running child, then wait; SIGKILL after the grace period.
async fn stop(children: &mut [(u64, Child)]) {
    for (id, child) in children.iter_mut() {
        if let Some(pid) = child.id() {
            terminate(*id, pid);
        }
    }
    for (id, child) in children.iter_mut() {
        let grace = Duration::from_millis(STOP_GRACE_MS);
        let status = match tokio::time::timeout(grace, child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                say(&format!(
                    "node {id} did not stop within {} s; killing it",
                    STOP_GRACE_MS / 1000
                ));
                let _ = child.start_kill();
                child.wait().await
            }
        };
        say(&format!("node {id} stopped ({})", describe(status)));
    }
}

fn terminate(id: u64, pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions. `pid` is a child
    // we have not yet reaped (tokio reports no id once it has), so it cannot
    // name a recycled, unrelated process.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    if rc != 0 {
        say(&format!(
            "cannot signal node {id}: {}",
            std::io::Error::last_os_error()
        ));
    }
}

/// Prints the end of a dead node's log, which usually says why it died.
fn show_log_tail(path: &Path) {
    let Ok(mut file) = std::fs::File::open(path) else {
        return;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if file
        .seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)))
        .is_err()
    {
        return;
    }
    let mut tail = Vec::new();
    if file.read_to_end(&mut tail).is_err() || tail.is_empty() {
        return;
    }
    eprintln!("--- last lines of {} ---", path.display());
    eprintln!("{}", String::from_utf8_lossy(&tail).trim_end());
    eprintln!("---");
}

/// Progress messages; a closed stdout must not stop the shutdown sequence.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORTS: Ports = Ports {
        grpc: 7001,
        http: 8001,
        peer: 7101,
    };

    fn vkeys() -> Vec<(u64, String)> {
        (1..=3).map(|id| (id, format!("o+{id:08x}+key"))).collect()
    }

    fn operator() -> ClientConfig {
        operator_client(certs::token_sha256("t"))
    }

    fn up_args(dir: &Path) -> UpArgs {
        UpArgs {
            dir: dir.to_path_buf(),
            base_port: None,
            origin: None,
            http_base_port: None,
            peer_base_port: None,
            analysis_model: None,
            insecure: false,
        }
    }

    #[test]
    fn generated_configs_are_valid_and_only_node_one_bootstraps() {
        for id in 1..=3 {
            let config = node_config(id, PORTS, ORIGIN_DEFAULT, &vkeys(), &operator());
            config.validate().expect("valid");
            assert_eq!(config.bootstrap, id == 1);
            assert_eq!(config.listen.port(), 7000 + id as u16);
            assert_eq!(config.peer_listen.port(), 7100 + id as u16);
            assert_eq!(config.http_listen.map(|a| a.port()), Some(8000 + id as u16));
            assert_eq!(config.peers.len(), 3);
            for peer in &config.peers {
                assert_eq!(peer.addr, format!("127.0.0.1:{}", 7100 + peer.id));
                assert_eq!(
                    peer.client_addr,
                    Some(format!("127.0.0.1:{}", 7000 + peer.id))
                );
            }
            let tls = config.tls.as_ref().expect("TLS by default");
            assert_eq!(
                tls.cert_file,
                Path::new("tls").join(format!("node-{id}.pem"))
            );
            assert_eq!(config.auth.clients, vec![operator()]);
            assert!(!config.auth.anonymous_auditor);
        }
    }

    #[test]
    fn written_configs_load_back_with_paths_in_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = config_path(dir.path(), 2);
        let ports = Ports {
            grpc: 7101,
            http: 8101,
            peer: 7201,
        };
        let config = ensure_config(
            dir.path(),
            &path,
            2,
            ports,
            ORIGIN_DEFAULT,
            &vkeys(),
            &operator(),
        )
        .expect("written and loaded");
        assert_eq!(config.data_dir, dir.path().join("node2"));
        assert_eq!(config.signing_key_file, dir.path().join("node2.key"));
        assert_eq!(config.advertise_addr(), "127.0.0.1:7102");
        assert_eq!(config.peer_advertise_addr(), "127.0.0.1:7202");
        assert_eq!(config.http_listen, Some("127.0.0.1:8102".parse().unwrap()));
        let tls = config.tls.as_ref().expect("tls");
        assert_eq!(tls.ca_file, dir.path().join("tls/ca.pem"));
        assert_eq!(tls.key_file, dir.path().join("tls/node-2-key.pem"));
        let again = ensure_config(
            dir.path(),
            &path,
            2,
            ports,
            ORIGIN_DEFAULT,
            &vkeys(),
            &operator(),
        )
        .expect("reused");
        assert_eq!(again, config);
    }

    #[test]
    fn a_config_with_other_keys_is_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = config_path(dir.path(), 1);
        ensure_config(
            dir.path(),
            &path,
            1,
            PORTS,
            ORIGIN_DEFAULT,
            &vkeys(),
            &operator(),
        )
        .expect("written");
        let mut other = vkeys();
        other[2].1 = "o+ffffffff+other".into();
        let err = ensure_config(
            dir.path(),
            &path,
            1,
            PORTS,
            ORIGIN_DEFAULT,
            &other,
            &operator(),
        )
        .expect_err("stale");
        assert!(matches!(err, ClusterError::Stale { .. }), "{err}");
    }

    #[test]
    fn a_config_from_before_the_peer_listener_is_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = config_path(dir.path(), 1);
        std::fs::write(
            &path,
            "id = 1\nlisten = \"127.0.0.1:7001\"\ndata_dir = \"node1\"\n\
             origin = \"example.org/ironlog\"\nsigning_key_file = \"node1.key\"\n",
        )
        .expect("write");
        let err = ensure_config(
            dir.path(),
            &path,
            1,
            PORTS,
            ORIGIN_DEFAULT,
            &vkeys(),
            &operator(),
        )
        .expect_err("old layout");
        assert!(
            matches!(err, ClusterError::Stale { .. }) && err.to_string().contains("peer_listen"),
            "{err}"
        );
        let err = prepare(&up_args(dir.path())).expect_err("old layout");
        assert!(matches!(err, ClusterError::Stale { .. }), "{err}");
    }

    #[test]
    fn prepare_makes_tls_material_once_and_reuses_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = up_args(dir.path());
        let (nodes, access) = prepare(&args).expect("first run");
        assert_eq!(nodes[0].endpoint, "https://127.0.0.1:7001");
        assert_eq!(nodes[1].peer_addr, "127.0.0.1:7102");
        assert_eq!(nodes[0].http_url.as_deref(), Some("https://127.0.0.1:8001"));
        let tls = dir.path().join(TLS_DIR);
        for file in [
            "ca.pem",
            "node-1.pem",
            "node-3-key.pem",
            "operator.pem",
            "operator.token",
        ] {
            assert!(tls.join(file).exists(), "{file}");
        }
        let token = std::fs::read_to_string(tls.join(OPERATOR_TOKEN_FILE)).expect("token");
        assert_eq!(
            access.operator.token_sha256.as_deref(),
            Some(certs::token_sha256(token.trim()).as_str())
        );
        let ca_before = std::fs::read(tls.join("ca.pem")).expect("ca");
        let (_, again) = prepare(&args).expect("second run");
        assert_eq!(std::fs::read(tls.join("ca.pem")).expect("ca"), ca_before);
        assert_eq!(again.operator, access.operator);
        // Every node's config loads with its TLS files in place.
        for id in 1..=3 {
            Config::load(&config_path(dir.path(), id)).expect("loads with TLS");
        }
        let env = std::fs::read_to_string(dir.path().join(ENV_FILE)).expect("env");
        assert!(
            env.contains("export IRONLOG_ENDPOINT=https://127.0.0.1:7001"),
            "{env}"
        );
        assert!(env.contains("IRONLOG_CA="), "{env}");
        assert!(env.contains("operator-key.pem"), "{env}");
        assert!(!env.contains(token.trim()), "the env file holds no token");
    }

    #[test]
    fn insecure_uses_plaintext_endpoints_and_no_credentials() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = up_args(dir.path());
        args.insecure = true;
        let (nodes, access) = prepare(&args).expect("prepared");
        assert_eq!(nodes[0].endpoint, "http://127.0.0.1:7001");
        assert!(access.credentials.ca.is_none() && access.credentials.cert.is_none());
        let env = std::fs::read_to_string(dir.path().join(ENV_FILE)).expect("env");
        assert!(
            env.contains("IRONLOG_ENDPOINT=http://127.0.0.1:7001"),
            "{env}"
        );
        assert!(env.contains("unset IRONLOG_CA"), "{env}");
    }

    #[test]
    fn the_example_configs_in_cluster_parse_and_validate() {
        for (id, text) in [
            (1, include_str!("../../cluster/node1.toml")),
            (2, include_str!("../../cluster/node2.toml")),
            (3, include_str!("../../cluster/node3.toml")),
        ] {
            let config: Config = toml::from_str(text).unwrap_or_else(|e| panic!("node{id}: {e}"));
            config
                .validate()
                .unwrap_or_else(|e| panic!("node{id}: {e}"));
            assert_eq!(config.id, id);
            assert!(config.tls.is_some(), "node{id}: TLS by default");
            assert_eq!(config.peer_advertise_addr(), format!("10.0.0.1{id}:7101"));
            let appender = &config.auth.clients[0];
            assert_eq!(appender.roles, vec![ClientRole::Appender]);
            assert!(!appender.sources.is_empty());
        }
    }

    #[test]
    fn shell_quoting_survives_spaces_and_quotes() {
        assert_eq!(shell_quote("/tmp/a-b/ca.pem"), "/tmp/a-b/ca.pem");
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn peer_ports_must_fit_and_stay_clear_of_the_other_ports() {
        assert_eq!(peer_ports(7001, 8001, 7101).ok(), Some(7101));
        assert_eq!(peer_ports(7001, 8001, 7005).ok(), Some(7005));
        for peer in [7004, 6998, 8000, 8003, 0, 65533] {
            assert!(
                matches!(
                    peer_ports(7001, 8001, peer),
                    Err(ClusterError::PeerPorts { .. })
                ),
                "{peer}"
            );
        }
    }

    #[test]
    fn ports_must_fit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = UpArgs {
            base_port: Some(65535),
            ..up_args(dir.path())
        };
        assert!(matches!(prepare(&args), Err(ClusterError::Ports { .. })));
    }

    #[test]
    fn http_ports_must_fit_and_stay_clear_of_the_grpc_ports() {
        assert_eq!(http_ports(7001, 8001).ok(), Some(8001));
        assert_eq!(http_ports(7001, 7004).ok(), Some(7004));
        assert_eq!(http_ports(7001, 6998).ok(), Some(6998));
        for http in [7003, 6999, 7001, 0, 65534, 65535 + 1000] {
            assert!(
                matches!(http_ports(7001, http), Err(ClusterError::HttpPorts { .. })),
                "{http}"
            );
        }
        // The default offset runs past the last port for a high --base-port.
        let dir = tempfile::tempdir().expect("tempdir");
        let args = UpArgs {
            base_port: Some(65000),
            ..up_args(dir.path())
        };
        assert!(matches!(
            prepare(&args),
            Err(ClusterError::HttpPorts { .. })
        ));
    }
}
