//! A real in-process cluster for integration tests: every node is a full
//! `ironlog` node (redb storage, openraft, tonic server) on a port-0 listener,
//! optionally with its tlog-tiles HTTP server on another.
#![allow(dead_code)]

pub mod pki;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ironlog::config::{
    AuthConfig, CheckpointConfig, ClientConfig, ClientRole, Config, Peer, RaftTuning, Role,
    WitnessConfig,
};
use ironlog::ledger::checkpoint::generate_key;
use ironlog::node::{self, Listeners, RunningNode};
use ironlog::proto;
use ironlog::proto::admin_client::AdminClient;
use ironlog::proto::analysis_client::AnalysisClient;
use ironlog::proto::ledger_client::LedgerClient;
use pki::{ClientCert, Pki};
use rustls_pki_types::pem::PemObject;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

pub const ORIGIN: &str = "test.example/ironlog";

/// The test clusters' client identities: (name, bearer token, roles,
/// sources, requests/s). `operator` authenticates by certificate instead.
pub const PAYMENTS_TOKEN: &str = "payments-token-0123456789abcdef";
pub const READER_TOKEN: &str = "reader-token-0123456789abcdef";
pub const AUDITOR_TOKEN: &str = "auditor-token-0123456789abcdef";
pub const ANALYST_TOKEN: &str = "analyst-token-0123456789abcdef";
pub const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
/// An appender limited to 2 requests/s, for the rate-limit test.
pub const SLOW_TOKEN: &str = "slow-token-0123456789abcdef";
/// A reader with one request in flight at most, for the stream test.
pub const ONE_AT_A_TIME_TOKEN: &str = "one-at-a-time-token-0123456789";

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub configs: Vec<Config>,
    pub vkeys: Vec<String>,
    pub nodes: Vec<Option<RunningNode>>,
    /// The cluster CA; every node certificate and `operator` come from it.
    pub pki: &'static Pki,
    /// A client certificate with every role and any source.
    pub operator: ClientCert,
}

/// One CA for every test cluster of this process, with the `operator`
/// client certificate written to files, so CLI processes the tests spawn
/// can present it ([`cli_env`]).
pub struct TestPki {
    _dir: tempfile::TempDir,
    pub pki: Pki,
    pub operator: ClientCert,
    pub ca_file: PathBuf,
    pub operator_cert_file: PathBuf,
    pub operator_key_file: PathBuf,
}

pub static TEST_PKI: std::sync::LazyLock<TestPki> = std::sync::LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path(), "cluster");
    let operator = pki.client("operator");
    let operator_cert_file = dir.path().join("operator.pem");
    let operator_key_file = dir.path().join("operator-key.pem");
    std::fs::write(&operator_cert_file, &operator.cert_pem).expect("write operator cert");
    write_key(&operator_key_file, &operator.key_pem);
    TestPki {
        ca_file: pki.ca_file(),
        _dir: dir,
        pki,
        operator,
        operator_cert_file,
        operator_key_file,
    }
});

/// The environment a spawned `ironlog` client needs to reach a test
/// cluster as `operator` over TLS.
pub fn cli_env() -> Vec<(&'static str, PathBuf)> {
    let t = &*TEST_PKI;
    vec![
        ("IRONLOG_CA", t.ca_file.clone()),
        ("IRONLOG_CERT", t.operator_cert_file.clone()),
        ("IRONLOG_KEY", t.operator_key_file.clone()),
    ]
}

fn token_client(
    name: &str,
    token: &str,
    roles: Vec<ClientRole>,
    sources: &[&str],
    requests_per_s: Option<u32>,
) -> ClientConfig {
    ClientConfig {
        name: name.into(),
        certificate_cn: None,
        token_sha256: Some(hex::encode(sha2::Sha256::digest(token.as_bytes()))),
        roles,
        sources: sources.iter().map(|s| s.to_string()).collect(),
        requests_per_s,
        in_flight_max: None,
    }
}

/// Who may do what in a test cluster.
pub fn test_auth() -> AuthConfig {
    use ClientRole::*;
    AuthConfig {
        // tlog-tiles and checkpoints are public, as a transparency log's are.
        anonymous_auditor: true,
        requests_per_s: None,
        in_flight_max: None,
        clients: vec![
            ClientConfig {
                name: "operator".into(),
                certificate_cn: Some("operator".into()),
                token_sha256: None,
                roles: vec![Appender, Reader, Auditor, Analyst, Admin],
                sources: vec!["*".into()],
                requests_per_s: None,
                in_flight_max: None,
            },
            token_client(
                "payments",
                PAYMENTS_TOKEN,
                vec![Appender],
                &["payments-api"],
                None,
            ),
            token_client("reader", READER_TOKEN, vec![Reader], &[], None),
            token_client("auditor", AUDITOR_TOKEN, vec![Auditor], &[], None),
            token_client("analyst", ANALYST_TOKEN, vec![Analyst], &[], None),
            token_client("admin", ADMIN_TOKEN, vec![Admin], &[], None),
            token_client("slow", SLOW_TOKEN, vec![Appender], &["slow-svc"], Some(2)),
            ClientConfig {
                in_flight_max: Some(1),
                ..token_client(
                    "one-at-a-time",
                    ONE_AT_A_TIME_TOKEN,
                    vec![Reader],
                    &[],
                    None,
                )
            },
        ],
    }
}

/// A TLS channel to `addr` that trusts `ca_pem`, presenting `identity`.
pub async fn tls_channel(
    addr: &str,
    ca_pem: &str,
    identity: Option<&ClientCert>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
    }
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(pub tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

pub fn bearer(token: &str) -> Bearer {
    Bearer(format!("Bearer {token}").parse().expect("ascii token"))
}

pub type TokenChannel = tonic::service::interceptor::InterceptedService<Channel, Bearer>;

/// Settings that make snapshots and purges happen within a small test.
pub fn tuning() -> RaftTuning {
    RaftTuning {
        heartbeat_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        snapshot_logs_since_last: 20,
        max_in_snapshot_log_to_keep: 0,
        ..RaftTuning::default()
    }
}

/// Writes a private key as a node expects it: readable by its owner only.
pub fn write_key(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write key");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
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
        Self::start_nodes(n, false, Vec::new(), tuning()).await
    }

    /// Starts `n` voters with the Raft settings `raft`.
    pub async fn start_with_tuning(n: u64, raft: RaftTuning) -> Cluster {
        Self::start_nodes(n, false, Vec::new(), raft).await
    }

    /// Starts `n` voters that also serve tlog-tiles over HTTP (port 0).
    pub async fn start_with_http(n: u64) -> Cluster {
        Self::start_nodes(n, true, Vec::new(), tuning()).await
    }

    /// Starts `n` voters that submit their checkpoints to `witnesses`.
    pub async fn start_with_witnesses(n: u64, witnesses: Vec<WitnessConfig>) -> Cluster {
        Self::start_nodes(n, false, witnesses, tuning()).await
    }

    async fn start_nodes(
        n: u64,
        http: bool,
        witnesses: Vec<WitnessConfig>,
        raft: RaftTuning,
    ) -> Cluster {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = &TEST_PKI.pki;
        let operator = TEST_PKI.operator.clone();
        let mut listeners = Vec::new();
        let mut peers = Vec::new();
        let mut vkeys = Vec::new();
        for id in 1..=n {
            let client = bind_port_0().await;
            let peer = bind_port_0().await;
            let (skey, vkey) = generate_key(ORIGIN).expect("keygen");
            write_key(&dir.path().join(format!("node{id}.key")), &skey);
            peers.push(Peer {
                id,
                addr: peer.local_addr().unwrap().to_string(),
                client_addr: Some(client.local_addr().unwrap().to_string()),
                verifier_key: vkey.clone(),
            });
            vkeys.push(vkey);
            let http_listener = match http {
                true => Some(bind_port_0().await),
                false => None,
            };
            listeners.push(Listeners {
                client,
                peer,
                http: http_listener,
            });
        }
        let configs: Vec<Config> = (1..=n)
            .map(|id| {
                let l = &listeners[(id - 1) as usize];
                Config {
                    id,
                    listen: l.client.local_addr().unwrap(),
                    advertise: None,
                    peer_listen: l.peer.local_addr().unwrap(),
                    peer_advertise: None,
                    http_listen: l.http.as_ref().map(|l| l.local_addr().unwrap()),
                    data_dir: dir.path().join(format!("node{id}")),
                    origin: ORIGIN.to_string(),
                    signing_key_file: dir.path().join(format!("node{id}.key")),
                    role: Role::Voter,
                    bootstrap: id == 1,
                    checkpoint: CheckpointConfig {
                        interval_ms: 100,
                        every_entries: 1000,
                    },
                    raft: raft.clone(),
                    storage: Default::default(),
                    peers: peers.clone(),
                    witnesses: witnesses.clone(),
                    analysis: None,
                    tls: Some(pki.node_into(dir.path(), id)),
                    auth: test_auth(),
                    insecure: false,
                }
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
            pki,
            operator,
        }
    }

    /// Starts one more node that is not in the bootstrap membership (it
    /// joins through `AddLearner`); returns its id and verifier key.
    pub async fn start_extra(&mut self) -> (u64, String) {
        let id = self.configs.len() as u64 + 1;
        let tls = self.pki.node_into(self.dir.path(), id);
        self.start_extra_with(tls).await
    }

    /// [`Cluster::start_extra`] with the given certificate files.
    pub async fn start_extra_with(&mut self, tls: ironlog::config::TlsConfig) -> (u64, String) {
        let id = self.configs.len() as u64 + 1;
        let client = bind_port_0().await;
        let peer = bind_port_0().await;
        let http = match self.configs[0].http_listen {
            Some(_) => Some(bind_port_0().await),
            None => None,
        };
        let (skey, vkey) = generate_key(ORIGIN).expect("keygen");
        let key_file = self.dir.path().join(format!("node{id}.key"));
        write_key(&key_file, &skey);
        let mut c = self.configs[0].clone();
        c.id = id;
        c.listen = client.local_addr().unwrap();
        c.peer_listen = peer.local_addr().unwrap();
        c.http_listen = http.as_ref().map(|l| l.local_addr().unwrap());
        c.data_dir = self.dir.path().join(format!("node{id}"));
        c.signing_key_file = key_file;
        c.bootstrap = false;
        c.tls = Some(tls);
        c.validate().expect("extra node config is valid");
        self.nodes.push(Some(
            node::start(c.clone(), Listeners { client, peer, http })
                .await
                .expect("extra node starts"),
        ));
        self.configs.push(c);
        self.vkeys.push(vkey.clone());
        (id, vkey)
    }

    /// The AddLearner request that joins node `id` as configured.
    pub fn add_learner_request(&self, id: u64, verifier_key: &str) -> proto::AddLearnerRequest {
        let c = &self.configs[(id - 1) as usize];
        proto::AddLearnerRequest {
            id,
            addr: c.peer_listen.to_string(),
            verifier_key: verifier_key.to_string(),
            client_addr: c.listen.to_string(),
        }
    }

    /// Starts an analysis node (a learner running the analyst with `model`)
    /// and adds it through the leader; returns its id.
    pub async fn start_analysis(&mut self, model: PathBuf) -> u64 {
        self.start_analysis_with(model, Vec::new()).await
    }

    /// The same, with the organisation's own detection tables.
    pub async fn start_analysis_with(&mut self, model: PathBuf, detections: Vec<PathBuf>) -> u64 {
        // Before the new node exists: it knows no leader until it is added.
        let leader = self.leader().await;
        let id = self.configs.len() as u64 + 1;
        let client = bind_port_0().await;
        let peer = bind_port_0().await;
        let mut c = self.configs[0].clone();
        c.id = id;
        c.listen = client.local_addr().unwrap();
        c.peer_listen = peer.local_addr().unwrap();
        c.http_listen = None;
        c.data_dir = self.dir.path().join(format!("node{id}"));
        c.signing_key_file = self.dir.path().join(format!("node{id}.key"));
        c.bootstrap = false;
        c.role = Role::Analysis;
        c.tls = Some(self.pki.node_into(self.dir.path(), id));
        c.analysis = Some(ironlog::config::AnalysisConfig {
            model,
            threads: 2,
            concurrency: 1,
            timeout_ms: 60_000,
            categorize_with_model: true,
            detections,
        });
        c.validate().expect("analysis node config is valid");
        self.nodes.push(Some(
            node::start(
                c.clone(),
                Listeners {
                    client,
                    peer,
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
            .add_learner(self.add_learner_request(id, ""))
            .await
            .expect("analysis node added as a learner");
        id
    }

    pub async fn analysis(&self, id: u64) -> AnalysisClient<Channel> {
        AnalysisClient::new(self.channel(id).await)
    }

    /// Node `id`'s client listener, `host:port`.
    pub fn client_addr(&self, id: u64) -> String {
        self.configs[(id - 1) as usize].listen.to_string()
    }

    /// Node `id`'s peer listener, `host:port`.
    pub fn peer_addr(&self, id: u64) -> String {
        self.configs[(id - 1) as usize].peer_listen.to_string()
    }

    /// Node `id`'s client endpoint URL.
    pub fn addr(&self, id: u64) -> String {
        format!("https://{}", self.client_addr(id))
    }

    /// Where node `id` serves tlog-tiles ([`Cluster::start_with_http`]).
    pub fn http_addr(&self, id: u64) -> SocketAddr {
        self.configs[(id - 1) as usize]
            .http_listen
            .expect("the node serves HTTP")
    }

    /// A channel to node `id`'s client listener as `operator`.
    pub async fn channel(&self, id: u64) -> Channel {
        tls_channel(
            &self.client_addr(id),
            &self.pki.ca_pem(),
            Some(&self.operator),
        )
        .await
        .expect("connect")
    }

    /// A channel to node `id`'s client listener with no client certificate.
    pub async fn anonymous_channel(&self, id: u64) -> Channel {
        tls_channel(&self.client_addr(id), &self.pki.ca_pem(), None)
            .await
            .expect("connect")
    }

    /// A Ledger client of node `id` authenticated by `token`.
    pub async fn ledger_as(&self, id: u64, token: &str) -> LedgerClient<TokenChannel> {
        LedgerClient::with_interceptor(self.anonymous_channel(id).await, bearer(token))
    }

    /// An Admin client of node `id` authenticated by `token`.
    pub async fn admin_as(&self, id: u64, token: &str) -> AdminClient<TokenChannel> {
        AdminClient::with_interceptor(self.anonymous_channel(id).await, bearer(token))
    }

    pub async fn ledger(&self, id: u64) -> LedgerClient<Channel> {
        LedgerClient::new(self.channel(id).await)
    }

    pub async fn admin(&self, id: u64) -> AdminClient<Channel> {
        AdminClient::new(self.channel(id).await)
    }

    /// Node `id`'s Raft metrics as they stand; it must be running.
    pub fn metrics(&self, id: u64) -> openraft::RaftMetrics<ironlog::raft::TypeConfig> {
        let node = self.nodes[(id - 1) as usize]
            .as_ref()
            .expect("the node is running");
        ironlog::raft::metrics(node.raft())
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
            let client = rebind(c.listen).await;
            let peer = rebind(c.peer_listen).await;
            let http = match c.http_listen {
                Some(addr) => Some(rebind(addr).await),
                None => None,
            };
            match node::start(c.clone(), Listeners { client, peer, http }).await {
                Ok(n) => {
                    self.nodes[(id - 1) as usize] = Some(n);
                    return;
                }
                // redb's and the Raft log's (raft-log's) words for a file
                // the stopped node's threads still hold.
                Err(node::NodeError::Storage { reason, .. })
                    if reason.contains("already open") || reason.contains("already locked") =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("restart node {id}: {e}"),
            }
        }
        panic!("node {id}'s storage is still open 5 s after it stopped");
    }

    pub async fn status(&self, id: u64) -> Option<proto::StatusResponse> {
        let channel = tls_channel(
            &self.client_addr(id),
            &self.pki.ca_pem(),
            Some(&self.operator),
        )
        .await
        .ok()?;
        let mut a = AdminClient::new(channel);
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
    let tcp = TcpStream::connect(addr).await.expect("connect HTTP");
    let mut stream = tls_connect(tcp).await;
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

/// A TLS client connection to a test node's HTTP endpoint, trusting the
/// test CA (anonymous: tiles are open to auditors without credentials).
pub async fn tls_connect(tcp: TcpStream) -> tokio_rustls::client::TlsStream<TcpStream> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pki_types::CertificateDer::pem_slice_iter(TEST_PKI.pki.ca_pem().as_bytes()) {
        roots.add(ca.expect("CA PEM")).expect("CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    connector
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the node")
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
