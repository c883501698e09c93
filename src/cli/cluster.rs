//! `ironlog cluster up`: three nodes on this machine, for trying Ironlog out.
//!
//! The first run writes a signing key and a config per node into `--dir`;
//! later runs reuse them, so the ledger survives restarts. The nodes run as
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

use super::client;
use super::keygen::{self, KeygenError};
use crate::config::{CheckpointConfig, Config, ConfigError, Peer, RaftTuning, Role};
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
    /// Also run the analysis node (node 4, a non-voting learner on the next
    /// port) with this GGUF model; `scripts/install-model.sh` prints the
    /// default model's path.
    #[arg(long)]
    pub analysis_model: Option<PathBuf>,
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
    endpoint: String,
    /// The tlog-tiles URL prefix; none if the node's config has no `http_listen`.
    http_url: Option<String>,
}

/// First gRPC and first HTTP port; node N uses each plus N - 1.
#[derive(Clone, Copy, Debug)]
struct Ports {
    grpc: u16,
    http: u16,
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
    let nodes = prepare(args)?;
    let mut children = Vec::new();
    for node in &nodes {
        match spawn(node) {
            Ok(child) => children.push((node.id, child)),
            Err(e) => {
                stop(&mut children).await;
                return Err(e.into());
            }
        }
    }
    let result = supervise(args, &nodes, &mut children, &mut shutdown).await;
    stop(&mut children).await;
    if let Err(ClusterError::Exited { log, .. }) = &result {
        show_log_tail(log);
    }
    Ok(result?)
}

async fn supervise(
    args: &UpArgs,
    nodes: &[Node],
    children: &mut [(u64, Child)],
    shutdown: &mut Shutdown,
) -> Result<(), ClusterError> {
    let leader = tokio::select! {
        leader = wait_for_leader(args, nodes) => leader?,
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
            added = add_analysis_learner(leader_node, analysis) => added?,
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
    if let Some(follower) = nodes.iter().find(|n| n.id != leader) {
        say(&format!(
            "Try: ironlog --endpoint {} status   (any node accepts appends)",
            follower.endpoint
        ));
    }
    say(&format!(
        "Audit: ironlog verify --policy {} --state audit-state.json",
        args.dir.join(POLICY_FILE).display()
    ));
    if let Some(url) = nodes.iter().find_map(|n| n.http_url.as_ref()) {
        say(&format!(
            "     curl {url}/checkpoint   (C2SP tlog-tiles, read-only)"
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

/// Writes whatever keys and configs are missing, and checks the ones that
/// exist still belong together.
fn prepare(args: &UpArgs) -> Result<Vec<Node>, ClusterError> {
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
    let ports = Ports {
        grpc: base_port,
        http: http_ports(base_port, http_base_port)?,
    };
    // Validate the shape first, so a bad --origin fails before keys are made.
    let probe = node_config(1, ports, &origin, &[(1, "probe".into())]);
    probe.validate().map_err(|source| ClusterError::Config {
        path: config_path(dir, 1),
        source,
    })?;

    let mut vkeys = Vec::new();
    for id in 1..=u64::from(NODES) {
        vkeys.push((id, ensure_key(dir, id, &origin)?));
    }
    write_policy(dir, &origin, &vkeys)?;
    let mut nodes = Vec::new();
    for id in 1..=u64::from(NODES) {
        let path = config_path(dir, id);
        let config = ensure_config(dir, &path, id, ports, &origin, &vkeys)?;
        let data_dir = &config.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|source| ClusterError::Io {
            path: data_dir.clone(),
            source,
        })?;
        nodes.push(Node {
            id,
            endpoint: format!("http://{}", config.advertise_addr()),
            http_url: config.http_listen.map(|addr| format!("http://{addr}")),
            config_path: path,
            log_path: dir.join(format!("node{id}.log")),
        });
    }
    if let Some(model) = &args.analysis_model {
        nodes.push(prepare_analysis(dir, model, ports, &origin, &vkeys)?);
    }
    Ok(nodes)
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
    let mut config = node_config(id, ports, origin, vkeys);
    config.role = Role::Analysis;
    config.bootstrap = false;
    config.http_listen = None;
    config.analysis = Some(crate::config::AnalysisConfig {
        model,
        threads: 2,
        concurrency: 1,
        timeout_ms: crate::limits::MODEL_TIMEOUT_MS_DEFAULT,
        categorize_with_model: true,
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
        endpoint: format!("http://{}", config.advertise_addr()),
        http_url: None,
        config_path: path,
        log_path: dir.join(format!("node{id}.log")),
    })
}

/// Adds the analysis node to the cluster as a learner, through the leader
/// (idempotent: a node already a learner stays one).
async fn add_analysis_learner(leader: &Node, analysis: &Node) -> Result<(), ClusterError> {
    let addr = analysis.endpoint.trim_start_matches("http://").to_string();
    let mut last = String::new();
    for _ in 0..(LEADER_WAIT_MS / STATUS_POLL_MS) {
        let attempt = async {
            let channel = super::client::connect(&leader.endpoint)
                .await
                .map_err(|e| e.to_string())?;
            super::client::admin(channel)
                .add_learner(crate::proto::AddLearnerRequest {
                    id: analysis.id,
                    addr: addr.clone(),
                    verifier_key: String::new(),
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
            threshold: vkeys.len() / 2 + 1,
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

fn config_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("node{id}.toml"))
}

fn load_existing_config(dir: &Path) -> Result<Option<Config>, ClusterError> {
    let path = config_path(dir, 1);
    if !path.exists() {
        return Ok(None);
    }
    Config::load(&path)
        .map(Some)
        .map_err(|source| ClusterError::Config { path, source })
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

/// The config `cluster up` writes for node `id`.
fn node_config(id: u64, ports: Ports, origin: &str, vkeys: &[(u64, String)]) -> Config {
    let port = |base: u16, id: u64| u16::try_from(u64::from(base) + id - 1).unwrap_or(base);
    let addr = |id: u64| format!("127.0.0.1:{}", port(ports.grpc, id));
    Config {
        id,
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], port(ports.grpc, id))),
        advertise: None,
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
        peers: vkeys
            .iter()
            .map(|(peer, vkey)| Peer {
                id: *peer,
                addr: addr(*peer),
                verifier_key: vkey.clone(),
            })
            .collect(),
        witnesses: Vec::new(),
        analysis: None,
    }
}

fn ensure_config(
    dir: &Path,
    path: &Path,
    id: u64,
    ports: Ports,
    origin: &str,
    vkeys: &[(u64, String)],
) -> Result<Config, ClusterError> {
    if !path.exists() {
        write_config(path, &node_config(id, ports, origin, vkeys))?;
    }
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

fn spawn(node: &Node) -> Result<Child, ClusterError> {
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

async fn wait_for_leader(args: &UpArgs, nodes: &[Node]) -> Result<u64, ClusterError> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(LEADER_WAIT_MS);
    loop {
        for node in nodes {
            if let Some(leader) = leader_seen_by(&node.endpoint).await {
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
async fn leader_seen_by(endpoint: &str) -> Option<u64> {
    let call = async {
        let channel = client::connect(endpoint).await.ok()?;
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
    };

    fn vkeys() -> Vec<(u64, String)> {
        (1..=3).map(|id| (id, format!("o+{id:08x}+key"))).collect()
    }

    #[test]
    fn generated_configs_are_valid_and_only_node_one_bootstraps() {
        for id in 1..=3 {
            let config = node_config(id, PORTS, ORIGIN_DEFAULT, &vkeys());
            config.validate().expect("valid");
            assert_eq!(config.bootstrap, id == 1);
            assert_eq!(config.listen.port(), 7000 + id as u16);
            assert_eq!(config.http_listen.map(|a| a.port()), Some(8000 + id as u16));
            assert_eq!(config.peers.len(), 3);
        }
    }

    #[test]
    fn written_configs_load_back_with_paths_in_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = config_path(dir.path(), 2);
        let ports = Ports {
            grpc: 7101,
            http: 8101,
        };
        let config = ensure_config(dir.path(), &path, 2, ports, ORIGIN_DEFAULT, &vkeys())
            .expect("written and loaded");
        assert_eq!(config.data_dir, dir.path().join("node2"));
        assert_eq!(config.signing_key_file, dir.path().join("node2.key"));
        assert_eq!(config.advertise_addr(), "127.0.0.1:7102");
        assert_eq!(config.http_listen, Some("127.0.0.1:8102".parse().unwrap()));
        let again =
            ensure_config(dir.path(), &path, 2, ports, ORIGIN_DEFAULT, &vkeys()).expect("reused");
        assert_eq!(again, config);
    }

    #[test]
    fn a_config_with_other_keys_is_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = config_path(dir.path(), 1);
        ensure_config(dir.path(), &path, 1, PORTS, ORIGIN_DEFAULT, &vkeys()).expect("written");
        let mut other = vkeys();
        other[2].1 = "o+ffffffff+other".into();
        let err =
            ensure_config(dir.path(), &path, 1, PORTS, ORIGIN_DEFAULT, &other).expect_err("stale");
        assert!(matches!(err, ClusterError::Stale { .. }), "{err}");
    }

    #[test]
    fn ports_must_fit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = UpArgs {
            dir: dir.path().to_path_buf(),
            base_port: Some(65535),
            origin: None,
            http_base_port: None,
            analysis_model: None,
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
            dir: dir.path().to_path_buf(),
            base_port: Some(65000),
            origin: None,
            http_base_port: None,
            analysis_model: None,
        };
        assert!(matches!(
            prepare(&args),
            Err(ClusterError::HttpPorts { .. })
        ));
    }
}
