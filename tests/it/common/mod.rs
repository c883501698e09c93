//! A real in-process cluster for integration tests: every node is a full
//! `ironlog` node (redb storage, openraft, tonic server) on a port-0 listener,
//! optionally with its tlog-tiles HTTP server on another.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ironlog::config::{CheckpointConfig, Config, Peer, RaftTuning, Role, WitnessConfig};
use ironlog::ledger::checkpoint::generate_key;
use ironlog::node::{self, Listeners, RunningNode};
use ironlog::proto;
use ironlog::proto::admin_client::AdminClient;
use ironlog::proto::analysis_client::AnalysisClient;
use ironlog::proto::ledger_client::LedgerClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::Channel;

pub const ORIGIN: &str = "test.example/ironlog";

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub configs: Vec<Config>,
    pub vkeys: Vec<String>,
    pub nodes: Vec<Option<RunningNode>>,
}

/// Settings that make snapshots and purges happen within a small test.
pub fn tuning() -> RaftTuning {
    RaftTuning {
        heartbeat_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        snapshot_logs_since_last: 20,
        max_in_snapshot_log_to_keep: 0,
    }
}

async fn bind_port_0() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind port 0")
}

/// Binds `addr` again after a node released it, retrying for up to 5 s.
async fn rebind(addr: SocketAddr) -> TcpListener {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("cannot rebind {addr}: {last:?}");
}

impl Cluster {
    /// Starts `n` voters; node 1 bootstraps the cluster.
    pub async fn start(n: u64) -> Cluster {
        Self::start_nodes(n, false, Vec::new()).await
    }

    /// Starts `n` voters that also serve tlog-tiles over HTTP (port 0).
    pub async fn start_with_http(n: u64) -> Cluster {
        Self::start_nodes(n, true, Vec::new()).await
    }

    /// Starts `n` voters that submit their checkpoints to `witnesses`.
    pub async fn start_with_witnesses(n: u64, witnesses: Vec<WitnessConfig>) -> Cluster {
        Self::start_nodes(n, false, witnesses).await
    }

    async fn start_nodes(n: u64, http: bool, witnesses: Vec<WitnessConfig>) -> Cluster {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut listeners = Vec::new();
        let mut peers = Vec::new();
        let mut vkeys = Vec::new();
        for id in 1..=n {
            let l = bind_port_0().await;
            let (skey, vkey) = generate_key(ORIGIN).expect("keygen");
            let key_file = dir.path().join(format!("node{id}.key"));
            std::fs::write(&key_file, skey).unwrap();
            peers.push(Peer {
                id,
                addr: l.local_addr().unwrap().to_string(),
                verifier_key: vkey.clone(),
            });
            vkeys.push(vkey);
            let http_listener = match http {
                true => Some(bind_port_0().await),
                false => None,
            };
            listeners.push(Listeners {
                grpc: l,
                http: http_listener,
            });
        }
        let configs: Vec<Config> = (1..=n)
            .map(|id| Config {
                id,
                listen: peers[(id - 1) as usize].addr.parse().unwrap(),
                advertise: None,
                http_listen: listeners[(id - 1) as usize]
                    .http
                    .as_ref()
                    .map(|l| l.local_addr().unwrap()),
                data_dir: dir.path().join(format!("node{id}")),
                origin: ORIGIN.to_string(),
                signing_key_file: dir.path().join(format!("node{id}.key")),
                role: Role::Voter,
                bootstrap: id == 1,
                checkpoint: CheckpointConfig {
                    interval_ms: 100,
                    every_entries: 1000,
                },
                raft: tuning(),
                peers: peers.clone(),
                witnesses: witnesses.clone(),
                analysis: None,
            })
            .collect();
        let mut nodes = Vec::new();
        for (c, l) in configs.iter().zip(listeners) {
            c.validate().expect("test config is valid");
            nodes.push(Some(node::start(c.clone(), l).await.expect("node starts")));
        }
        Cluster {
            dir,
            configs,
            vkeys,
            nodes,
        }
    }

    /// Starts one more node that is not in the bootstrap membership (it
    /// joins through `AddLearner`); returns its id and verifier key.
    pub async fn start_extra(&mut self) -> (u64, String) {
        let id = self.configs.len() as u64 + 1;
        let l = bind_port_0().await;
        let http = match self.configs[0].http_listen {
            Some(_) => Some(bind_port_0().await),
            None => None,
        };
        let (skey, vkey) = generate_key(ORIGIN).expect("keygen");
        let key_file = self.dir.path().join(format!("node{id}.key"));
        std::fs::write(&key_file, skey).unwrap();
        let mut c = self.configs[0].clone();
        c.id = id;
        c.listen = l.local_addr().unwrap();
        c.http_listen = http.as_ref().map(|l| l.local_addr().unwrap());
        c.data_dir = self.dir.path().join(format!("node{id}"));
        c.signing_key_file = key_file;
        c.bootstrap = false;
        c.validate().expect("extra node config is valid");
        self.nodes.push(Some(
            node::start(c.clone(), Listeners { grpc: l, http })
                .await
                .expect("extra node starts"),
        ));
        self.configs.push(c);
        self.vkeys.push(vkey.clone());
        (id, vkey)
    }

    /// Starts an analysis node (a learner running the analyst with `model`)
    /// and adds it through the leader; returns its id.
    pub async fn start_analysis(&mut self, model: PathBuf) -> u64 {
        // Before the new node exists: it knows no leader until it is added.
        let leader = self.leader().await;
        let id = self.configs.len() as u64 + 1;
        let l = bind_port_0().await;
        let mut c = self.configs[0].clone();
        c.id = id;
        c.listen = l.local_addr().unwrap();
        c.http_listen = None;
        c.data_dir = self.dir.path().join(format!("node{id}"));
        c.signing_key_file = self.dir.path().join(format!("node{id}.key"));
        c.bootstrap = false;
        c.role = Role::Analysis;
        c.analysis = Some(ironlog::config::AnalysisConfig {
            model,
            threads: 2,
            concurrency: 1,
            timeout_ms: 60_000,
            categorize_with_model: true,
        });
        c.validate().expect("analysis node config is valid");
        self.nodes.push(Some(
            node::start(
                c.clone(),
                Listeners {
                    grpc: l,
                    http: None,
                },
            )
            .await
            .expect("analysis node starts"),
        ));
        self.configs.push(c);
        self.vkeys.push(String::new());
        let mut admin = self.admin(leader).await;
        admin
            .add_learner(proto::AddLearnerRequest {
                id,
                addr: self.configs[(id - 1) as usize].listen.to_string(),
                verifier_key: String::new(),
            })
            .await
            .expect("analysis node added as a learner");
        id
    }

    pub async fn analysis(&self, id: u64) -> AnalysisClient<Channel> {
        AnalysisClient::connect(self.addr(id))
            .await
            .expect("connect")
    }

    pub fn addr(&self, id: u64) -> String {
        format!("http://{}", self.configs[(id - 1) as usize].listen)
    }

    /// Where node `id` serves tlog-tiles ([`Cluster::start_with_http`]).
    pub fn http_addr(&self, id: u64) -> SocketAddr {
        self.configs[(id - 1) as usize]
            .http_listen
            .expect("the node serves HTTP")
    }

    pub async fn ledger(&self, id: u64) -> LedgerClient<Channel> {
        LedgerClient::connect(self.addr(id)).await.expect("connect")
    }

    pub async fn admin(&self, id: u64) -> AdminClient<Channel> {
        AdminClient::connect(self.addr(id)).await.expect("connect")
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.configs[(id - 1) as usize].data_dir.clone()
    }

    /// Stops node `id` (server, Raft, storage released).
    pub async fn stop(&mut self, id: u64) {
        if let Some(n) = self.nodes[(id - 1) as usize].take() {
            n.shutdown().await;
        }
    }

    /// Starts node `id` again from its data dir, on its old ports. Retries
    /// for up to 5 s while the files are still locked: openraft's tasks and
    /// the Raft log's flusher thread let go of the databases a few
    /// milliseconds after `shutdown` returns.
    pub async fn restart(&mut self, id: u64) {
        let c = self.configs[(id - 1) as usize].clone();
        for _ in 0..50 {
            let grpc = rebind(c.listen).await;
            let http = match c.http_listen {
                Some(addr) => Some(rebind(addr).await),
                None => None,
            };
            match node::start(c.clone(), Listeners { grpc, http }).await {
                Ok(n) => {
                    self.nodes[(id - 1) as usize] = Some(n);
                    return;
                }
                Err(node::NodeError::Storage { reason, .. }) if reason.contains("already open") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("restart node {id}: {e}"),
            }
        }
        panic!("node {id}'s storage is still open 5 s after it stopped");
    }

    pub async fn status(&self, id: u64) -> Option<proto::StatusResponse> {
        let mut a = AdminClient::connect(self.addr(id)).await.ok()?;
        Some(a.status(proto::StatusRequest {}).await.ok()?.into_inner())
    }

    /// Waits until the running nodes agree on one leader; returns its id.
    pub async fn leader(&self) -> u64 {
        for _ in 0..200 {
            let mut leaders = Vec::new();
            for (i, n) in self.nodes.iter().enumerate() {
                if n.is_some() {
                    if let Some(s) = self.status(i as u64 + 1).await {
                        leaders.push(s.leader_id);
                    }
                }
            }
            if let Some(&l) = leaders.first() {
                let running = self.nodes[(l.max(1) - 1) as usize].is_some();
                if l != 0 && running && leaders.iter().all(|&x| x == l) {
                    return l;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no leader elected");
    }

    /// Waits until every running node reports tree size `size`.
    pub async fn wait_size(&self, size: u64) {
        for _ in 0..300 {
            let mut all = true;
            for (i, n) in self.nodes.iter().enumerate() {
                if n.is_some() {
                    let s = self.status(i as u64 + 1).await;
                    if s.map(|s| s.tree_size) != Some(size) {
                        all = false;
                    }
                }
            }
            if all {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let sizes: Vec<_> =
            futures::future::join_all((1..=self.nodes.len() as u64).map(|i| self.status(i)))
                .await
                .into_iter()
                .map(|s| s.map(|s| s.tree_size))
                .collect();
        panic!("nodes did not reach size {size}: {sizes:?}");
    }
}

/// An event with a unique idempotency key, so a test can count it.
pub fn event(actor: &str, n: u64) -> proto::Event {
    proto::Event {
        time_unix_nanos: 1_700_000_000_000_000_000 + n as i64,
        actor: Some(proto::Actor {
            id: actor.to_string(),
            r#type: "user".into(),
            ip: "10.1.2.3".into(),
            user_agent: String::new(),
        }),
        action: "db.read".into(),
        resource: format!("postgres://payments/table{}", n % 3),
        outcome: proto::Outcome::Success as i32,
        source: "payments-api".into(),
        details_json: format!("{{\"n\":{n}}}"),
        idempotency_key: format!("evt-{n}"),
    }
}

/// Polls the latest checkpoint (every 100 ms, for at most 10 s) until `done`
/// holds for its size and the number of `vkeys` that verified it; every note
/// seen must verify.
pub async fn wait_checkpoint(
    client: &mut LedgerClient<Channel>,
    vkeys: &[String],
    done: impl Fn(u64, usize) -> bool,
) -> Option<proto::Checkpoint> {
    for _ in 0..100 {
        // Before the first checkpoint has a quorum of signatures the node
        // answers FAILED_PRECONDITION; that is a reason to wait, not to fail.
        let cp = match client
            .get_checkpoint(proto::GetCheckpointRequest::default())
            .await
        {
            Ok(r) => r.into_inner().checkpoint.expect("a checkpoint"),
            Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(s) => panic!("get checkpoint: {s}"),
        };
        let (body, signers) = ironlog::ledger::checkpoint::open_note(cp.note.as_bytes(), vkeys)
            .expect("note verifies");
        if done(body.size, signers.len()) {
            return Some(cp);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// One HTTP/1.1 response, as read off the socket.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request and reads the whole response (`Connection: close`).
/// A hand-written client on purpose: it sends the path byte for byte (no
/// client library normalising it), and needs no HTTP client crate whose
/// features would differ between the library and test builds.
pub async fn http_request(addr: SocketAddr, method: &str, path: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect HTTP");
    let body_len = if method == "GET" || method == "HEAD" {
        String::new()
    } else {
        "Content-Length: 0\r\n".to_string()
    };
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{body_len}\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send HTTP request");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("HTTP response within 10 s")
        .expect("read HTTP response");
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head ends");
    let head = std::str::from_utf8(&raw[..head_end]).expect("HTTP head is text");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("header line");
            (name.trim().to_ascii_lowercase(), value.trim().to_string())
        })
        .collect();
    let response = HttpResponse {
        status,
        headers,
        body: raw[head_end + 4..].to_vec(),
    };
    if method != "HEAD" {
        let length: usize = response
            .header("content-length")
            .expect("content-length")
            .parse()
            .expect("numeric content-length");
        assert_eq!(response.body.len(), length, "{method} {path}: whole body");
    }
    response
}

pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_request(addr, "GET", path).await
}

/// The model the analysis tests load: `$IRONLOG_MODEL` (scripts/test.sh
/// exports it after installing the model), else the install script's
/// default location. A missing model fails the test with the fix.
pub fn model_path() -> PathBuf {
    let path = match std::env::var_os("IRONLOG_MODEL") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/ironlog/models/gemma-3-270m-q4_k_m.gguf"),
    };
    assert!(
        path.exists(),
        "model {} is missing: run ./scripts/install-model.sh (./scripts/test.sh does)",
        path.display()
    );
    path
}
