//! Three real `ironlog node` processes, one per network namespace, each
//! with its data directory on its own small tmpfs so that one node's disk
//! can be filled. Keys and certificates are made with the `ironlog`
//! binary itself (`keygen`, `certs`), as an operator would.
//!
//! A node that exits on its own is started again by [`Cluster::supervise`],
//! as systemd's `Restart=always` would: a node stops itself on a fatal
//! storage error and relies on that.
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironlog::proto;
use ironlog::proto::admin_client::AdminClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::net::{run, Net};

pub const ORIGIN: &str = "chaos.test/ironlog";
const CLIENT_PORT: u16 = 7001;
const PEER_PORT: u16 = 7101;
/// Bounds on one call, so a call to a cut-off node fails fast and the
/// caller moves on; a slowed link still carries a small append in time.
pub const CONNECT_TIMEOUT_MS: u64 = 1_000;
pub const RPC_TIMEOUT_MS: u64 = 4_000;
/// systemd's default RestartSec is 100 ms; a second keeps a node that
/// cannot start (a full disk) from spinning.
const RESTART_DELAY_MS: u64 = 1_000;
/// The free-space floor below which a node refuses writes
/// (`storage.free_bytes_min`), small so that the fill fault is quick.
pub const FREE_BYTES_MIN: u64 = 8 << 20;
const LOG_TAIL_LINES: usize = 30;
/// Fills that fail (the node wrote meanwhile) are retried smaller, at most
/// this many times in all.
const FILL_ATTEMPTS_MAX: u32 = 40;
/// A disk with this little free space counts as full to the last byte:
/// tmpfs keeps a few pages that fallocate cannot take.
const FILL_SLACK_BYTES: u64 = 64 << 10;

pub struct Node {
    pub id: u64,
    config: PathBuf,
    pub data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// Whether the harness wants it running (the supervisor restarts it).
    pub wanted: bool,
    /// When it exited on its own, for the restart delay.
    exited_at: Option<Instant>,
    pub paused: bool,
}

pub struct Cluster {
    pub dir: PathBuf,
    pub net: Net,
    pub nodes: Vec<Node>,
    pub vkeys: Vec<String>,
    ca_pem: String,
    client: Identity,
    binary: PathBuf,
    /// Restarts the supervisor made, of nodes that exited on their own.
    pub restarts: u64,
}

fn ironlog(binary: &Path, args: &[&str]) -> Result<String, String> {
    run(binary.to_str().ok_or("binary path is not UTF-8")?, args)
}

impl Cluster {
    /// Makes keys, certificates, tmpfs data directories and configs.
    pub fn create(dir: &Path, net: Net, nodes: u64, disk_mb: u64) -> Result<Cluster, String> {
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_ironlog"));
        let pki = dir.join("pki");
        let pki_s = pki.to_str().ok_or("temp path is not UTF-8")?;
        ironlog(&binary, &["certs", "ca", "--dir", pki_s])?;
        ironlog(
            &binary,
            &["certs", "client", "--dir", pki_s, "--name", "chaos"],
        )?;
        let mut vkeys = Vec::new();
        for id in 1..=nodes {
            let ip = net.ip(id);
            let id_s = id.to_string();
            ironlog(
                &binary,
                &[
                    "certs", "node", "--dir", pki_s, "--id", &id_s, "--host", &ip,
                ],
            )?;
            let key = dir.join(format!("node{id}.key"));
            ironlog(
                &binary,
                &["keygen", "--name", ORIGIN, "--out", key.to_str().unwrap()],
            )?;
            let vkey = std::fs::read_to_string(dir.join(format!("node{id}.key.pub")))
                .map_err(|e| format!("read node {id}'s verifier key: {e}"))?;
            vkeys.push(vkey.trim().to_string());
        }
        let peers: String = (1..=nodes)
            .map(|id| {
                format!(
                    "\n[[peers]]\nid = {id}\naddr = \"{ip}:{PEER_PORT}\"\n\
                     client_addr = \"{ip}:{CLIENT_PORT}\"\nverifier_key = \"{}\"\n",
                    vkeys[(id - 1) as usize],
                    ip = net.ip(id),
                )
            })
            .collect();
        let mut list = Vec::new();
        for id in 1..=nodes {
            let data = dir.join(format!("node{id}-data"));
            std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
            let size = format!("size={disk_mb}m");
            run(
                "mount",
                &["-t", "tmpfs", "-o", &size, "tmpfs", data.to_str().unwrap()],
            )?;
            let text = format!(
                "id = {id}\n\
                 listen = \"{ip}:{CLIENT_PORT}\"\n\
                 peer_listen = \"{ip}:{PEER_PORT}\"\n\
                 data_dir = \"{data}\"\n\
                 origin = \"{ORIGIN}\"\n\
                 signing_key_file = \"node{id}.key\"\n\
                 bootstrap = {bootstrap}\n\
                 \n[checkpoint]\ninterval_ms = 500\n\
                 \n[raft]\n\
                 snapshot_logs_since_last = 300\n\
                 max_in_snapshot_log_to_keep = 100\n\
                 \n[storage]\nfree_bytes_min = {FREE_BYTES_MIN}\n\
                 \n[tls]\n\
                 ca_file = \"pki/ca.pem\"\n\
                 cert_file = \"pki/node-{id}.pem\"\n\
                 key_file = \"pki/node-{id}-key.pem\"\n\
                 \n[[auth.clients]]\n\
                 name = \"chaos\"\n\
                 certificate_cn = \"chaos\"\n\
                 roles = [\"appender\", \"reader\", \"auditor\", \"admin\"]\n\
                 sources = [\"*\"]\n\
                 {peers}",
                ip = net.ip(id),
                data = data.display(),
                bootstrap = id == 1,
            );
            let config = dir.join(format!("node{id}.toml"));
            std::fs::write(&config, text).map_err(|e| e.to_string())?;
            list.push(Node {
                id,
                config,
                data,
                log: dir.join(format!("node{id}.log")),
                child: None,
                wanted: false,
                exited_at: None,
                paused: false,
            });
        }
        let read = |name: &str| {
            std::fs::read_to_string(pki.join(name)).map_err(|e| format!("read {name}: {e}"))
        };
        let ca_pem = read("ca.pem")?;
        let client = Identity::from_pem(read("chaos.pem")?, read("chaos-key.pem")?);
        Ok(Cluster {
            dir: dir.to_path_buf(),
            net,
            nodes: list,
            vkeys,
            ca_pem,
            client,
            binary,
            restarts: 0,
        })
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    fn node(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    fn mark(&mut self, id: u64, what: &str) {
        let log = self.node(id).log.clone();
        let _ = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut f| writeln!(f, "===== chaos: {what} ====="));
    }

    /// Starts node `id` in its namespace, its output appended to its log.
    pub fn start(&mut self, id: u64) -> Result<(), String> {
        self.mark(id, &format!("starting node {id}"));
        let ns = self.net.ns(id);
        let binary = self.binary.clone();
        let dir = self.dir.clone();
        let node = self.node(id);
        assert!(node.child.is_none(), "node {id} is already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(|e| e.to_string())?;
        // `ip netns exec` execs the program: the child's pid is the node's.
        let child = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(&binary)
            .args(["node", "--config"])
            .arg(&node.config)
            .current_dir(&dir)
            .env(
                "RUST_LOG",
                std::env::var("IRONLOG_CHAOS_RUST_LOG").unwrap_or("info,openraft=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn node {id}: {e}"))?;
        node.child = Some(child);
        node.wanted = true;
        node.paused = false;
        node.exited_at = None;
        Ok(())
    }

    /// SIGKILL: no flush, no shutdown. The node stays down until started.
    pub fn kill(&mut self, id: u64) {
        let node = self.node(id);
        node.wanted = false;
        node.paused = false;
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.mark(id, &format!("SIGKILLed node {id}"));
    }

    /// SIGTERM and wait: a graceful stop, for the final fsck.
    pub fn stop(&mut self, id: u64) {
        self.resume(id);
        let node = self.node(id);
        node.wanted = false;
        if let Some(mut child) = node.child.take() {
            let _ = run("kill", &["-TERM", &child.id().to_string()]);
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn signal(&mut self, id: u64, sig: &str) {
        if let Some(child) = &self.node(id).child {
            let _ = run("kill", &[sig, &child.id().to_string()]);
        }
    }

    /// SIGSTOP: the process keeps its sockets but does nothing, like a long
    /// garbage-collection pause or a stalled VM.
    pub fn pause(&mut self, id: u64) {
        self.signal(id, "-STOP");
        self.node(id).paused = true;
    }

    pub fn resume(&mut self, id: u64) {
        if self.node(id).paused {
            self.signal(id, "-CONT");
            self.node(id).paused = false;
        }
    }

    pub fn running(&mut self, id: u64) -> bool {
        let node = self.node(id);
        matches!(node.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Restarts nodes that should run but exited on their own, after the
    /// restart delay. Returns what it did, for the log.
    pub fn supervise(&mut self) -> Vec<String> {
        let mut done = Vec::new();
        for i in 0..self.nodes.len() {
            let id = self.nodes[i].id;
            if !self.nodes[i].wanted || self.running(id) {
                continue;
            }
            let node = &mut self.nodes[i];
            if let Some(mut child) = node.child.take() {
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                node.exited_at = Some(Instant::now());
                done.push(format!("node {id} exited on its own ({status})"));
                self.mark(id, &format!("node {id} exited ({status})"));
                continue;
            }
            let due = node
                .exited_at
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(RESTART_DELAY_MS));
            if due {
                self.restarts += 1;
                match self.start(id) {
                    Ok(()) => done.push(format!("supervisor restarted node {id}")),
                    Err(e) => done.push(format!("supervisor could not restart node {id}: {e}")),
                }
            }
        }
        done
    }

    /// Deletes everything in node `id`'s data directory (it must be down).
    pub fn wipe(&mut self, id: u64) -> Result<(), String> {
        let data = self.node(id).data.clone();
        // Kept beside the run (not on the node's small tmpfs) for a failed
        // run's post-mortem: a wipe otherwise destroys the only copy of the
        // state a node held before it was restored from another.
        let aside = (1..)
            .map(|n| self.dir.join(format!("wiped/node{id}-{n}")))
            .find(|p| !p.exists())
            .expect("some name is free");
        std::fs::create_dir_all(&aside).map_err(|e| e.to_string())?;
        run(
            "cp",
            &[
                "-a",
                &format!("{}/.", data.display()),
                aside.to_str().unwrap(),
            ],
        )?;
        for entry in std::fs::read_dir(&data).map_err(|e| e.to_string())? {
            let path = entry.map_err(|e| e.to_string())?.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| format!("wipe {}: {e}", path.display()))?;
        }
        self.mark(id, &format!("wiped node {id}'s data directory"));
        Ok(())
    }

    /// Every line of the nodes' logs that contains `needle`, with the node.
    pub fn log_lines_with(&self, needle: &str) -> Vec<(u64, String)> {
        let mut found = Vec::new();
        for node in &self.nodes {
            let text = std::fs::read(&node.log).unwrap_or_default();
            for line in String::from_utf8_lossy(&text).lines() {
                if line.contains(needle) {
                    found.push((node.id, line.to_string()));
                }
            }
        }
        found
    }

    /// Whether node `id` is writing a snapshot right now (its build file,
    /// `snapshots/building-*.tmp`, exists).
    pub fn building_snapshot(&self, id: u64) -> bool {
        let dir = self.nodes[(id - 1) as usize].data.join("snapshots");
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("building-"))
        })
    }

    fn free_bytes(&self, id: u64) -> Result<u64, String> {
        let data = &self.nodes[(id - 1) as usize].data;
        run("df", &["-B1", "--output=avail", data.to_str().unwrap()])?
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .ok_or("df printed no free space".into())
    }

    /// Fills node `id`'s disk until at most `leave` bytes are free, with
    /// filler files `chaos-filler-N`. The node keeps writing meanwhile, so
    /// a fill that no longer fits is retried with half as much.
    pub fn fill_disk(&mut self, id: u64, leave: u64) -> Result<u64, String> {
        let data = self.node(id).data.clone();
        let mut filled = 0;
        let mut attempts = 0;
        loop {
            let avail = self.free_bytes(id)?;
            if avail <= leave.max(FILL_SLACK_BYTES) {
                break;
            }
            let mut size = avail - leave;
            loop {
                attempts += 1;
                if attempts > FILL_ATTEMPTS_MAX {
                    return Err(format!(
                        "could not fill node {id}'s disk to {leave} bytes free in {FILL_ATTEMPTS_MAX} tries"
                    ));
                }
                let filler = data.join(format!("chaos-filler-{attempts}"));
                match run(
                    "fallocate",
                    &["-l", &size.to_string(), filler.to_str().unwrap()],
                ) {
                    Ok(_) => break,
                    Err(_) => {
                        let _ = std::fs::remove_file(&filler);
                        size /= 2;
                    }
                }
            }
            filled += size;
        }
        self.mark(id, &format!("filled node {id}'s disk: {leave} bytes free"));
        Ok(filled)
    }

    pub fn free_disk(&mut self, id: u64) {
        let data = self.node(id).data.clone();
        if let Ok(entries) = std::fs::read_dir(&data) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("chaos-filler-") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        self.mark(id, &format!("freed node {id}'s disk"));
    }

    /// Runs `ironlog fsck` on node `id`'s data directory (it must be down).
    pub fn fsck(&self, id: u64) -> Result<String, String> {
        let data = &self.nodes[(id - 1) as usize].data;
        let out = Command::new(&self.binary)
            .args(["fsck", "--data-dir"])
            .arg(data)
            .output()
            .map_err(|e| e.to_string())?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("fsck of node {id} ({}): {text}", out.status))
        }
    }

    pub fn url(&self, id: u64) -> String {
        format!("https://{}:{CLIENT_PORT}", self.net.ip(id))
    }

    pub fn peer_addr(&self, id: u64) -> String {
        format!("{}:{PEER_PORT}", self.net.ip(id))
    }

    pub fn client_addr(&self, id: u64) -> String {
        format!("{}:{CLIENT_PORT}", self.net.ip(id))
    }

    /// What a client needs to connect, cheap to clone into tasks.
    pub fn dialer(&self) -> Dialer {
        Dialer {
            urls: self.ids().iter().map(|&id| self.url(id)).collect(),
            ca_pem: self.ca_pem.clone(),
            client: self.client.clone(),
        }
    }

    pub async fn status(&self, id: u64) -> Option<proto::StatusResponse> {
        let channel = self.dialer().connect(id).await?;
        let reply = AdminClient::new(channel)
            .status(proto::StatusRequest {})
            .await
            .ok()?;
        Some(reply.into_inner())
    }

    /// The node that says it leads and that a majority of the nodes name
    /// as leader (a node being restored, still empty, names none).
    pub async fn leader(&mut self) -> Option<u64> {
        let mut named = Vec::new();
        let mut leading = Vec::new();
        for id in self.ids() {
            if self.running(id) && !self.nodes[(id - 1) as usize].paused {
                if let Some(s) = self.status(id).await {
                    named.push(s.leader_id);
                    if s.role == "leader" {
                        leading.push(id);
                    }
                }
            }
        }
        let majority = self.nodes.len() / 2 + 1;
        leading
            .into_iter()
            .find(|&l| named.iter().filter(|&&n| n == l).count() >= majority)
    }

    /// Waits up to `limit` for an agreed leader; on failure, says what
    /// each node answered.
    pub async fn wait_leader(&mut self, limit: Duration) -> Result<u64, String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(l) = self.leader().await {
                return Ok(l);
            }
            self.supervise();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut seen = Vec::new();
        for id in self.ids() {
            let running = self.running(id);
            let status = self
                .status(id)
                .await
                .map(|s| format!("{} in term {}, leader {}", s.role, s.term, s.leader_id));
            seen.push(format!("node {id} (running {running}): {status:?}"));
        }
        Err(format!(
            "no agreed leader within {limit:?}: {}",
            seen.join("; ")
        ))
    }

    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let text = std::fs::read_to_string(&node.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(LOG_TAIL_LINES);
            out.push_str(&format!(
                "\n----- node {} ({}), last lines -----\n",
                node.id,
                node.log.display()
            ));
            for line in &lines[from..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in self.ids() {
            self.resume(id);
            self.kill(id);
            let data = self.nodes[(id - 1) as usize].data.clone();
            let _ = run("umount", &["-l", data.to_str().unwrap_or_default()]);
        }
    }
}

/// Connects to nodes by id, over TLS with the harness's client
/// certificate (roles appender, reader, auditor, admin).
#[derive(Clone)]
pub struct Dialer {
    pub urls: Vec<String>,
    ca_pem: String,
    client: Identity,
}

impl Dialer {
    pub async fn connect(&self, id: u64) -> Option<Channel> {
        self.connect_for(id, Duration::from_millis(RPC_TIMEOUT_MS))
            .await
    }

    /// A channel whose calls may take up to `timeout`, for membership
    /// changes, which wait for a commit.
    pub async fn connect_for(&self, id: u64, timeout: Duration) -> Option<Channel> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(self.client.clone());
        Endpoint::from_shared(self.urls[(id - 1) as usize].clone())
            .ok()?
            .tls_config(tls)
            .ok()?
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .timeout(timeout)
            .connect()
            .await
            .ok()
    }
}
