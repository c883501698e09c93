//! Three real `ironlog node` processes, killed with SIGKILL (no graceful
//! shutdown, no flush) while a client keeps appending: the leader twice and a
//! follower once, each restarted from its data dir. At the end every node
//! holds the same log, every acknowledged event is in it exactly once at its
//! acknowledged index, and the latest checkpoint is cosigned by a majority.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironlog::ledger::checkpoint::{generate_key, open_note};
use ironlog::ledger::event::LeafRecord;
use ironlog::ledger::merkle::leaf_hash;
use ironlog::proto;
use ironlog::proto::admin_client::AdminClient;
use ironlog::proto::ledger_client::LedgerClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::common::pki::{ClientCert, Pki};

const ORIGIN: &str = "crash.test/ironlog";

/// The crash clusters' CA and the client certificate every call presents.
static PKI: std::sync::LazyLock<(tempfile::TempDir, Pki, ClientCert)> =
    std::sync::LazyLock::new(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::new(dir.path(), "crash");
        let operator = pki.client("operator");
        (dir, pki, operator)
    });
const NODES: u64 = 3;
/// Events per `Append`: several Raft entries per snapshot interval (50), so
/// kills land before, during and after snapshots and log purges.
const BATCH_EVENTS: u64 = 20;
/// Upper bound on batches the writer sends, so the log stays small enough
/// to read back and compare within the time budget.
const WRITER_BATCHES_MAX: u64 = 3000;
/// How long one batch may stay unacknowledged, across all its retries,
/// before the writer gives up: elections take well under a second here.
const BATCH_RETRY_MS_MAX: u64 = 20_000;
/// Bounds on one RPC, so a call to a killed node fails fast and the writer
/// moves on to the next node.
const CONNECT_TIMEOUT_MS: u64 = 300;
const RPC_TIMEOUT_MS: u64 = 3_000;
const LEADER_WAIT_MS_MAX: u64 = 30_000;
const CONVERGE_WAIT_MS_MAX: u64 = 60_000;
const CHECKPOINT_WAIT_MS_MAX: u64 = 20_000;
const LOG_TAIL_LINES: usize = 40;
const GET_ENTRIES_PAGE: u64 = 1000;
/// Distinct error messages the writer keeps per status code, for the report.
const ERROR_SAMPLES_MAX: usize = 3;
/// Set to keep the temp dir (configs, data, node logs) after a passing run;
/// it is always kept after a failure.
const KEEP_DIR_ENV: &str = "IRONLOG_CRASH_KEEP_DIR";

/// One node: its files and, while it runs, its process.
struct Node {
    id: u64,
    addr: String,
    /// The node's two ports, held from the moment they were picked until
    /// the node first starts, so a parallel test cannot take them.
    reserved: Vec<TcpListener>,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// The three node processes. Dropping it SIGKILLs and reaps every child, so
/// a failing or panicking test leaves no process behind; on a panic it also
/// prints the node logs' tails, unless a failure message already carried them.
struct Cluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    vkeys: Vec<String>,
    tails_reported: bool,
}

impl Cluster {
    fn write_configs() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut addrs = Vec::new();
        let mut peer_addrs = Vec::new();
        let mut vkeys = Vec::new();
        let mut reserved: Vec<Vec<TcpListener>> = Vec::new();
        let mut free_port = |id: u64| {
            let l = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
            let port = l.local_addr().expect("bound").port();
            if reserved.len() < id as usize {
                reserved.push(Vec::new());
            }
            reserved[(id - 1) as usize].push(l);
            port
        };
        for id in 1..=NODES {
            let (skey, vkey) = generate_key(ORIGIN).expect("keygen");
            crate::common::write_key(&dir.path().join(format!("node{id}.key")), &skey);
            addrs.push(format!("127.0.0.1:{}", free_port(id)));
            peer_addrs.push(format!("127.0.0.1:{}", free_port(id)));
            vkeys.push(vkey);
            PKI.1.node_into(dir.path(), id);
        }
        let peers: String = (1..=NODES)
            .map(|id| {
                let i = (id - 1) as usize;
                format!(
                    "\n[[peers]]\nid = {id}\naddr = \"{}\"\nclient_addr = \"{}\"\nverifier_key = \"{}\"\n",
                    peer_addrs[i], addrs[i], vkeys[i]
                )
            })
            .collect();
        let nodes = (1..=NODES)
            .map(|id| {
                let addr = addrs[(id - 1) as usize].clone();
                let peer_addr = &peer_addrs[(id - 1) as usize];
                let text = format!(
                    "id = {id}\n\
                     listen = \"{addr}\"\n\
                     peer_listen = \"{peer_addr}\"\n\
                     data_dir = \"node{id}\"\n\
                     origin = \"{ORIGIN}\"\n\
                     signing_key_file = \"node{id}.key\"\n\
                     bootstrap = {}\n\
                     \n[checkpoint]\ninterval_ms = 200\n\
                     \n[raft]\n\
                     heartbeat_ms = 50\n\
                     election_timeout_min_ms = 300\n\
                     election_timeout_max_ms = 600\n\
                     snapshot_logs_since_last = 50\n\
                     max_in_snapshot_log_to_keep = 10\n\
                     \n[tls]\n\
                     ca_file = \"crash-ca.pem\"\n\
                     cert_file = \"crash-node-{id}.pem\"\n\
                     key_file = \"crash-node-{id}-key.pem\"\n\
                     \n[[auth.clients]]\n\
                     name = \"operator\"\n\
                     certificate_cn = \"operator\"\n\
                     roles = [\"appender\", \"reader\", \"auditor\", \"admin\"]\n\
                     sources = [\"*\"]\n\
                     {peers}",
                    id == 1
                );
                let config = dir.path().join(format!("node{id}.toml"));
                std::fs::write(&config, text).expect("write config");
                Node {
                    id,
                    addr,
                    reserved: std::mem::take(&mut reserved[(id - 1) as usize]),
                    config,
                    log: dir.path().join(format!("node{id}.log")),
                    child: None,
                }
            })
            .collect();
        Cluster {
            dir,
            nodes,
            vkeys,
            tails_reported: false,
        }
    }

    fn node(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| url(&n.addr)).collect()
    }

    /// Starts node `id`, appending its output to its log file so the log
    /// keeps every incarnation.
    fn spawn(&mut self, id: u64) {
        let node = self.node(id);
        assert!(node.child.is_none(), "node {id} is already running");
        node.reserved.clear();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("open node log");
        let mut marker = log.try_clone().expect("clone log");
        writeln!(marker, "===== test: starting node {id} =====").expect("write log");
        let child = Command::new(env!("CARGO_BIN_EXE_ironlog"))
            .args(["node", "--config"])
            .arg(&node.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn ironlog node");
        eprintln!("[crash] node {id} started, pid {}", child.id());
        node.child = Some(child);
    }

    /// SIGKILL: the process gets no chance to flush or shut down.
    fn sigkill(&mut self, id: u64) {
        let node = self.node(id);
        let Some(mut child) = node.child.take() else {
            return;
        };
        let pid = child.id();
        // Child::kill sends SIGKILL on Unix.
        let _ = child.kill();
        let status = child.wait().expect("reap killed node");
        let _ = OpenOptions::new()
            .append(true)
            .open(&node.log)
            .and_then(|mut f| writeln!(f, "===== test: SIGKILLed node {id} ({status}) ====="));
        eprintln!("[crash] node {id} (pid {pid}) SIGKILLed: {status}");
    }

    fn running(&mut self, id: u64) -> bool {
        let node = self.node(id);
        match node.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                eprintln!("[crash] node {id} exited on its own: {status}");
                false
            }
            _ => false,
        }
    }

    fn log_tails(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let text = std::fs::read_to_string(&node.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(LOG_TAIL_LINES);
            out.push_str(&format!(
                "\n----- node {} log ({}), last {} lines -----\n",
                node.id,
                node.log.display(),
                lines.len() - from
            ));
            for line in &lines[from..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Fails the test with `message` and the tail of every node's log.
    fn fail(&mut self, message: String) -> ! {
        self.tails_reported = true;
        let tails = self.log_tails();
        panic!("{message}\n{tails}");
    }

    async fn status(&self, id: u64) -> Option<proto::StatusResponse> {
        let channel = connect(&url(&self.nodes[(id - 1) as usize].addr)).await?;
        let mut admin = AdminClient::new(channel);
        Some(
            admin
                .status(proto::StatusRequest {})
                .await
                .ok()?
                .into_inner(),
        )
    }

    /// Waits until every running node names the same leader, itself running.
    async fn leader(&mut self) -> u64 {
        let deadline = Instant::now() + Duration::from_millis(LEADER_WAIT_MS_MAX);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            seen.clear();
            for id in 1..=NODES {
                if self.running(id) {
                    seen.push((id, self.status(id).await.map(|s| s.leader_id)));
                }
            }
            if let Some((_, Some(leader))) = seen.first().copied() {
                let agreed = seen.iter().all(|&(_, l)| l == Some(leader));
                if leader != 0 && agreed && seen.iter().any(|&(id, _)| id == leader) {
                    return leader;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.fail(format!(
            "no agreed leader within {LEADER_WAIT_MS_MAX} ms; (node, leader_id) seen: {seen:?}"
        ))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in 1..=NODES {
            self.sigkill(id);
        }
        let panicking = std::thread::panicking();
        if panicking && !self.tails_reported {
            eprintln!("{}", self.log_tails());
        }
        if panicking || std::env::var_os(KEEP_DIR_ENV).is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("[crash] kept {}", self.dir.path().display());
        }
    }
}

fn url(addr: &str) -> String {
    format!("https://{addr}")
}

async fn connect(url: &str) -> Option<Channel> {
    let (_, pki, operator) = &*PKI;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pki.ca_pem()))
        .identity(Identity::from_pem(&operator.cert_pem, &operator.key_pem));
    Endpoint::from_shared(url.to_string())
        .ok()?
        .tls_config(tls)
        .ok()?
        .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .timeout(Duration::from_millis(RPC_TIMEOUT_MS))
        .connect()
        .await
        .ok()
}

fn event(n: u64) -> proto::Event {
    proto::Event {
        time_unix_nanos: 1_700_000_000_000_000_000 + n as i64,
        actor: Some(proto::Actor {
            id: "crash-writer".into(),
            r#type: "service".into(),
            ip: "10.9.8.7".into(),
            user_agent: String::new(),
        }),
        action: "ledger.append".into(),
        resource: format!("crash://batch/{}", n / BATCH_EVENTS),
        outcome: proto::Outcome::Success as i32,
        source: "crash-test".into(),
        details_json: format!("{{\"n\":{n}}}"),
        idempotency_key: key(n),
    }
}

fn key(n: u64) -> String {
    format!("k-{n}")
}

/// What the writer saw: every acknowledged key with its index.
#[derive(Default)]
struct Acks {
    index_by_key: BTreeMap<String, u64>,
    batches: u64,
    /// Batches answered with `deduplicated`: a retry of a batch whose first
    /// attempt committed although its caller saw an error.
    deduplicated_batches: u64,
    errors: HashMap<tonic::Code, u64>,
    error_samples: HashMap<tonic::Code, Vec<String>>,
}

impl Acks {
    fn error(&mut self, status: &tonic::Status) {
        *self.errors.entry(status.code()).or_default() += 1;
        let samples = self.error_samples.entry(status.code()).or_default();
        let message = status.message().to_string();
        if samples.len() < ERROR_SAMPLES_MAX && !samples.contains(&message) {
            samples.push(message);
        }
    }
}

/// Appends batches until `stop` (finishing the batch in flight) or
/// [`WRITER_BATCHES_MAX`], retrying a failed batch with the same keys on the
/// next node. Returns an error if an acknowledgement contradicts itself or a
/// batch cannot be acknowledged at all.
async fn writer(urls: Vec<String>, stop: Arc<AtomicBool>) -> Result<Acks, String> {
    let mut acks = Acks::default();
    let mut target = 0usize;
    let mut client: Option<LedgerClient<Channel>> = None;
    for batch in 0..WRITER_BATCHES_MAX {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let first = batch * BATCH_EVENTS;
        let events: Vec<_> = (first..first + BATCH_EVENTS).map(event).collect();
        let deadline = Instant::now() + Duration::from_millis(BATCH_RETRY_MS_MAX);
        let resp = loop {
            if Instant::now() > deadline {
                return Err(format!(
                    "batch {batch} not acknowledged within {BATCH_RETRY_MS_MAX} ms; errors so far: {:?}",
                    acks.errors
                ));
            }
            if client.is_none() {
                client = connect(&urls[target]).await.map(LedgerClient::new);
            }
            let result = match client.as_mut() {
                Some(c) => c
                    .append(proto::AppendRequest {
                        events: events.clone(),
                        wait_checkpoint: false,
                    })
                    .await
                    .map(tonic::Response::into_inner),
                None => Err(tonic::Status::unavailable(format!(
                    "test: cannot connect to {}",
                    urls[target]
                ))),
            };
            match result {
                Ok(r) => break r,
                Err(status) => {
                    acks.error(&status);
                    client = None;
                    target = (target + 1) % urls.len();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        record(&mut acks, batch, &resp)?;
    }
    Ok(acks)
}

/// Checks one acknowledgement against itself and earlier ones, then keeps it.
fn record(acks: &mut Acks, batch: u64, resp: &proto::AppendResponse) -> Result<(), String> {
    let first = batch * BATCH_EVENTS;
    if resp.indices.len() as u64 != BATCH_EVENTS || resp.deduplicated.len() as u64 != BATCH_EVENTS {
        return Err(format!("batch {batch}: malformed ack {resp:?}"));
    }
    // One batch is one Raft entry applied in one transaction: its leaves
    // are contiguous and all new, or all earlier appends of the same keys.
    let contiguous = resp.indices.windows(2).all(|w| w[1] == w[0] + 1);
    let dedup_uniform = resp.deduplicated.iter().all(|&d| d == resp.deduplicated[0]);
    if !contiguous || !dedup_uniform {
        return Err(format!(
            "batch {batch}: ack is not one atomic run: indices {:?}, deduplicated {:?}",
            resp.indices, resp.deduplicated
        ));
    }
    if resp.deduplicated[0] {
        acks.deduplicated_batches += 1;
    }
    for (n, &index) in (first..).zip(&resp.indices) {
        if index >= resp.tree_size {
            return Err(format!(
                "batch {batch}: key {} acked at index {index}, not below the acked tree size {}",
                key(n),
                resp.tree_size
            ));
        }
        if let Some(prev) = acks.index_by_key.insert(key(n), index) {
            return Err(format!("key {} acked twice: {prev} and {index}", key(n)));
        }
    }
    acks.batches += 1;
    Ok(())
}

/// Every entry of node `id`, `0..size`, in pages.
async fn read_all(c: &Cluster, id: u64, size: u64) -> Result<Vec<proto::Entry>, String> {
    let url = url(&c.nodes[(id - 1) as usize].addr);
    let channel = connect(&url)
        .await
        .ok_or(format!("node {id}: cannot connect"))?;
    let mut ledger = LedgerClient::new(channel);
    let mut out: Vec<proto::Entry> = Vec::new();
    while (out.len() as u64) < size {
        let start = out.len() as u64;
        let page = ledger
            .get_entries(proto::GetEntriesRequest {
                start,
                end: (start + GET_ENTRIES_PAGE).min(size),
                linearizable: false,
            })
            .await
            .map_err(|s| format!("node {id}: GetEntries from {start}: {s}"))?
            .into_inner();
        if page.entries.is_empty() {
            return Err(format!(
                "node {id}: GetEntries from {start} returned nothing"
            ));
        }
        out.extend(page.entries);
    }
    Ok(out)
}

/// Checks one node's log: hashes, indices, each key at most once. Returns
/// each key's index.
fn check_log(id: u64, entries: &[proto::Entry]) -> Result<BTreeMap<String, u64>, String> {
    let mut index_by_key = BTreeMap::new();
    for (position, e) in entries.iter().enumerate() {
        if e.index != position as u64 {
            return Err(format!("node {id}: entry {position} has index {}", e.index));
        }
        if leaf_hash(&e.leaf).as_slice() != e.leaf_hash.as_slice() {
            return Err(format!(
                "node {id}: leaf {position}: leaf_hash does not match"
            ));
        }
        let rec = LeafRecord::decode(&e.leaf)
            .map_err(|err| format!("node {id}: leaf {position} does not decode: {err}"))?;
        if rec.index != e.index {
            return Err(format!(
                "node {id}: leaf {position} encodes index {}",
                rec.index
            ));
        }
        let key = rec
            .event
            .idempotency_key
            .clone()
            .ok_or(format!("node {id}: leaf {position} has no idempotency key"))?;
        let n: Option<u64> = key.strip_prefix("k-").and_then(|n| n.parse().ok());
        let sent = n.map(event);
        let matches = sent.as_ref().is_some_and(|sent| {
            rec.event.source == sent.source
                && rec.event.resource == sent.resource
                && rec.event.time_unix_nanos == sent.time_unix_nanos
                && serde_json::from_str::<serde_json::Value>(&sent.details_json).ok()
                    == Some(serde_json::Value::Object(rec.event.details.clone()))
        });
        if !matches {
            return Err(format!(
                "node {id}: leaf {position} (key {key}) is not the event the writer sent: {:?}",
                rec.event
            ));
        }
        if let Some(first) = index_by_key.insert(key.clone(), e.index) {
            return Err(format!(
                "node {id}: key {key} appears twice, at {first} and {}",
                e.index
            ));
        }
    }
    Ok(index_by_key)
}

/// Polls until every node reports the same non-decreasing tree size, at
/// least `min_size`, with the same root.
async fn converge(c: &mut Cluster, min_size: u64) -> (u64, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_millis(CONVERGE_WAIT_MS_MAX);
    let mut last = Vec::new();
    while Instant::now() < deadline {
        last.clear();
        for id in 1..=NODES {
            last.push(c.status(id).await.map(|s| (s.tree_size, s.root_hash)));
        }
        if let Some(Some((size, root))) = last.first().cloned() {
            if size >= min_size
                && last
                    .iter()
                    .all(|s| s.as_ref() == Some(&(size, root.clone())))
            {
                return (size, root);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sizes: Vec<_> = last
        .iter()
        .map(|s| s.as_ref().map(|(size, root)| (size, hex::encode(root))))
        .collect();
    c.fail(format!(
        "nodes did not converge within {CONVERGE_WAIT_MS_MAX} ms on a size >= {min_size}: \
         (tree_size, root) per node {sizes:?}"
    ))
}

/// Polls node `id` until its latest majority-signed checkpoint is at `size`.
async fn checkpoint_at(c: &Cluster, id: u64, size: u64) -> Result<proto::Checkpoint, String> {
    let deadline = Instant::now() + Duration::from_millis(CHECKPOINT_WAIT_MS_MAX);
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(channel) = connect(&url(&c.nodes[(id - 1) as usize].addr)).await {
            let got = LedgerClient::new(channel)
                .get_checkpoint(proto::GetCheckpointRequest {
                    size: 0,
                    linearizable: false,
                })
                .await;
            match got.map(|r| r.into_inner().checkpoint) {
                Ok(Some(cp)) if cp.size == size => return Ok(cp),
                Ok(Some(cp)) => last = Some(format!("size {}", cp.size)),
                Ok(None) => last = Some("no checkpoint".into()),
                Err(s) => last = Some(s.to_string()),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "node {id}: no checkpoint at size {size} within {CHECKPOINT_WAIT_MS_MAX} ms; last: {last:?}"
    ))
}

/// Kills node `victim`, waits `down_ms`, starts it again.
async fn kill_and_restart(c: &mut Cluster, victim: u64, what: &str, down_ms: u64) {
    eprintln!("[crash] SIGKILL {what} node {victim}");
    c.sigkill(victim);
    tokio::time::sleep(Duration::from_millis(down_ms)).await;
    c.spawn(victim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_sigkill_of_node_processes() {
    let started = Instant::now();
    let mut c = Cluster::write_configs();
    eprintln!("[crash] configs in {}", c.dir.path().display());
    for id in 1..=NODES {
        c.spawn(id);
    }
    let leader = c.leader().await;
    eprintln!(
        "[crash] leader {leader} after {:?}; starting the writer",
        started.elapsed()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(writer(c.urls(), stop.clone()));

    tokio::time::sleep(Duration::from_millis(1000)).await;
    let first_victim = c.leader().await;
    kill_and_restart(&mut c, first_victim, "leader", 1500).await;

    tokio::time::sleep(Duration::from_millis(1000)).await;
    let leader = c.leader().await;
    // A node not killed yet, if there is one, so the kills spread out.
    let follower = (1..=NODES)
        .filter(|&id| id != leader)
        .min_by_key(|&id| id == first_victim)
        .expect("a follower");
    kill_and_restart(&mut c, follower, "follower", 1000).await;

    tokio::time::sleep(Duration::from_millis(1000)).await;
    let leader = c.leader().await;
    kill_and_restart(&mut c, leader, "leader", 1500).await;

    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let acks = match writer.await {
        Ok(Ok(acks)) => acks,
        Ok(Err(e)) => c.fail(format!("writer: {e}")),
        Err(e) => c.fail(format!("writer task: {e}")),
    };
    let acked_size = acks.index_by_key.values().max().map_or(0, |&i| i + 1);
    eprintln!(
        "[crash] writer stopped after {:?}: {} batches ({} events) acknowledged, {} of them \
         deduplicated retries, errors by code {:?}, e.g. {:?}",
        started.elapsed(),
        acks.batches,
        acks.index_by_key.len(),
        acks.deduplicated_batches,
        acks.errors,
        acks.error_samples
    );
    if acks.batches == 0 {
        c.fail("the writer got no acknowledgement at all".into());
    }

    let (size, root) = converge(&mut c, acked_size).await;
    eprintln!(
        "[crash] all nodes at tree size {size}, root {} after {:?}",
        hex::encode(&root),
        started.elapsed()
    );

    let mut reference: Option<Vec<proto::Entry>> = None;
    for id in 1..=NODES {
        let checked = match read_all(&c, id, size).await {
            Ok(entries) => check_log(id, &entries).map(|keys| (entries, keys)),
            Err(e) => Err(e),
        };
        let (entries, index_by_key) = match checked {
            Ok(x) => x,
            Err(e) => c.fail(e),
        };
        let lost: Vec<_> = acks
            .index_by_key
            .iter()
            .filter(|(k, i)| index_by_key.get(*k) != Some(i))
            .map(|(k, i)| (k.clone(), *i, index_by_key.get(k).copied()))
            .take(10)
            .collect();
        if !lost.is_empty() {
            c.fail(format!(
                "node {id}: acknowledged keys missing or moved, (key, acked index, found at): {lost:?}"
            ));
        }
        match &reference {
            None => reference = Some(entries),
            Some(first) => {
                let differ = first
                    .iter()
                    .zip(&entries)
                    .position(|(a, b)| a.leaf != b.leaf);
                if let Some(index) = differ {
                    c.fail(format!("node {id}: leaf {index} differs from node 1's"));
                }
            }
        }
        eprintln!(
            "[crash] node {id}: {size} leaves verified, {} acked keys in place, {} unacked",
            acks.index_by_key.len(),
            index_by_key.len() - acks.index_by_key.len()
        );
    }

    for id in 1..=NODES {
        let opened = checkpoint_at(&c, id, size).await.and_then(|cp| {
            open_note(cp.note.as_bytes(), &c.vkeys)
                .map_err(|e| format!("node {id}: checkpoint note does not verify: {e}"))
        });
        let (body, signers) = match opened {
            Ok(x) => x,
            Err(e) => c.fail(e),
        };
        if body.size != size || body.root.as_slice() != root.as_slice() || signers.len() < 2 {
            c.fail(format!(
                "node {id}: checkpoint size {} root {} signers {signers:?}; want size {size}, \
                 root {}, >= 2 signers",
                body.size,
                hex::encode(body.root),
                hex::encode(&root)
            ));
        }
        eprintln!(
            "[crash] node {id}: checkpoint at {size} verifies, {} signers",
            signers.len()
        );
    }

    for id in 1..=NODES {
        c.sigkill(id);
    }
    eprintln!("[crash] passed in {:?}", started.elapsed());
}
