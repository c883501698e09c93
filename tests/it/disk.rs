//! A full disk on one node: each node's data directory on a small tmpfs of
//! its own, then the leader's filled to below its floor. That node refuses
//! appends (RESOURCE_EXHAUSTED, naming the floor), hands leadership over and
//! refuses replication, while the other two keep appending; once the filler
//! is gone it catches up by itself and takes appends again. Restarted onto a
//! full disk, it waits before opening storage. Nothing acknowledged is lost.
//!
//! And with the floor turned off, a real `ironlog node` process whose disk
//! fills up stops on the storage error and exits non-zero rather than
//! lingering; restarted with room, it still holds what it acknowledged.
//!
//! Mounting needs root (the CI runs the tests as root).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironlog::config::{CheckpointConfig, Config, Peer, Role, StorageConfig};
use ironlog::proto;
use ironlog::proto::admin_client::AdminClient;
use ironlog::proto::ledger_client::LedgerClient;
use tonic::transport::Channel;

use crate::common::{event, tls_channel, Cluster, ORIGIN, TEST_PKI};

const MIB: u64 = 1024 * 1024;
/// Each node's tmpfs: room for the test's small log, its snapshots and redb's
/// growth, and small enough to fill in a moment.
const TMPFS_BYTES: u64 = 64 * MIB;
/// The floor the nodes run with (`storage.free_bytes_min`).
const FLOOR_BYTES: u64 = 8 * MIB;
/// Free space the filler leaves: well below the floor, yet room for what is
/// under way when the node notices.
const LEFT_FREE_BYTES: u64 = 4 * MIB;
/// How long leadership may take to move, or a node to catch up.
const SETTLE_MS_MAX: u64 = 20_000;
/// How long a restarted node is watched to see that it waits for room.
const WAITING_MS: u64 = 2_000;
/// The fail-stop test's tmpfs: the node's files and little more.
const FAIL_STOP_TMPFS_BYTES: u64 = 32 * MIB;
/// How long the fail-stop node may keep appending into a full disk before
/// it must have stopped.
const FAIL_STOP_MS_MAX: u64 = 30_000;

/// A tmpfs mounted on a directory, lazily unmounted on drop (a node that
/// panicked with it may still hold files there).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Tmpfs {
        Self::mount_sized(dir, TMPFS_BYTES)
    }

    fn mount_sized(dir: &Path, bytes: u64) -> Tmpfs {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={bytes}"))
            .arg("tmpfs")
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {} (the disk tests need root): {status}",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            std::fs::create_dir(&target).expect("mkdir");
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Moves node `id`'s data directory onto a tmpfs of its own (stopped, files
/// copied, restarted) and gives it the test's floor.
async fn move_to_tmpfs(c: &mut Cluster, id: u64) -> Tmpfs {
    c.stop(id).await;
    let dir = c.data_dir(id);
    let old = dir.with_extension("old");
    std::fs::rename(&dir, &old).expect("move the data dir aside");
    std::fs::create_dir(&dir).expect("mkdir");
    let tmpfs = Tmpfs::mount(&dir);
    copy_tree(&old, &dir);
    std::fs::remove_dir_all(&old).expect("remove the old data dir");
    c.configs[(id - 1) as usize].storage.free_bytes_min = FLOOR_BYTES;
    c.restart(id).await;
    tmpfs
}

/// Writes a file that leaves [`LEFT_FREE_BYTES`] free in `dir`'s filesystem.
fn fill(dir: &Path) -> PathBuf {
    let free = ironlog::disk::free_bytes(dir).expect("statvfs");
    assert!(
        free > LEFT_FREE_BYTES + MIB,
        "only {free} bytes free to start with"
    );
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("create filler");
    // Written, not sized: a sparse file takes no room on tmpfs.
    let chunk = vec![0xa5u8; MIB as usize];
    let mut left = free - LEFT_FREE_BYTES;
    while left > 0 {
        let n = left.min(MIB) as usize;
        file.write_all(&chunk[..n]).expect("write filler");
        left -= n as u64;
    }
    file.sync_all().expect("sync filler");
    let free = ironlog::disk::free_bytes(dir).expect("statvfs");
    assert!(free < FLOOR_BYTES, "{free} bytes still free");
    path
}

async fn append_one(c: &Cluster, via: u64, n: u64) -> Result<u64, tonic::Status> {
    let resp = c
        .ledger(via)
        .await
        .append(proto::AppendRequest {
            events: vec![event("alice", n)],
            wait_checkpoint: false,
        })
        .await?
        .into_inner();
    Ok(resp.indices[0])
}

/// Appends event `n` through the nodes in `via`, in turn, until one
/// acknowledges it; retries only what says "retry" (UNAVAILABLE, while
/// leadership moves). Records the acknowledged index.
async fn append_retrying(c: &Cluster, via: &[u64], n: u64, acked: &mut BTreeMap<u64, u64>) {
    let deadline = Instant::now() + Duration::from_millis(SETTLE_MS_MAX);
    for attempt in 0.. {
        let node = via[attempt % via.len()];
        match append_one(c, node, n).await {
            Ok(index) => {
                acked.insert(index, n);
                return;
            }
            Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("append {n} through node {node}: {s:?}"),
        }
    }
}

/// Waits until nodes `ids` agree on a leader among them; returns it.
async fn leader_among(c: &Cluster, ids: &[u64]) -> u64 {
    let deadline = Instant::now() + Duration::from_millis(SETTLE_MS_MAX);
    loop {
        let mut leaders = Vec::new();
        for &id in ids {
            leaders.push(c.status(id).await.map(|s| s.leader_id));
        }
        if let Some(Some(l)) = leaders.first() {
            if ids.contains(l) && leaders.iter().all(|x| *x == Some(*l)) {
                return *l;
            }
        }
        assert!(
            Instant::now() < deadline,
            "nodes {ids:?} agree on no leader among them: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until nodes 1..=3 report the same tree size and root; returns the size.
async fn converged(c: &Cluster) -> u64 {
    let deadline = Instant::now() + Duration::from_millis(SETTLE_MS_MAX);
    loop {
        let mut trees = Vec::new();
        for id in 1..=3 {
            trees.push(c.status(id).await.map(|s| (s.tree_size, s.root_hash)));
        }
        if let Some(Some(first)) = trees.first() {
            if trees.iter().all(|t| t.as_ref() == Some(first)) {
                return first.0;
            }
        }
        let sizes: Vec<_> = trees.iter().map(|t| t.as_ref().map(|t| t.0)).collect();
        assert!(
            Instant::now() < deadline,
            "nodes did not converge: {sizes:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every acknowledged event is on every node, at its acknowledged index.
async fn assert_all_acknowledged_present(c: &Cluster, acked: &BTreeMap<u64, u64>) {
    let end = acked.keys().last().map_or(0, |i| i + 1);
    for id in 1..=3 {
        let mut keys = BTreeMap::new();
        let mut start = 0;
        while start < end {
            let page = c
                .ledger(id)
                .await
                .get_entries(proto::GetEntriesRequest {
                    start,
                    end,
                    linearizable: false,
                })
                .await
                .expect("get entries")
                .into_inner();
            assert!(
                !page.entries.is_empty(),
                "node {id}: no entries from {start}"
            );
            for e in page.entries {
                start = e.index + 1;
                keys.insert(e.index, e.event.expect("event").idempotency_key);
            }
        }
        for (index, n) in acked {
            assert_eq!(
                keys.get(index).map(String::as_str),
                Some(format!("evt-{n}").as_str()),
                "node {id}: acknowledged event {n} at index {index}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_stops_one_node_without_stopping_the_cluster_and_it_recovers_by_itself() {
    let mut c = Cluster::start(3).await;
    c.leader().await;
    let mut mounts = Vec::new();
    for id in 1..=3 {
        mounts.push(move_to_tmpfs(&mut c, id).await);
        c.leader().await;
    }
    let mut acked = BTreeMap::new();
    let full = c.leader().await;
    let others: Vec<u64> = (1..=3).filter(|&id| id != full).collect();
    for n in 0..10 {
        append_retrying(&c, &[full], n, &mut acked).await;
    }
    converged(&c).await;

    // The leader's disk fills: its own clients are refused, naming the floor.
    let filler = fill(&c.data_dir(full));
    let refused = append_one(&c, full, 100)
        .await
        .expect_err("a node below its floor takes no append");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    for part in [
        format!("node {full}"),
        FLOOR_BYTES.to_string(),
        "storage.free_bytes_min".to_string(),
        "nothing was written".to_string(),
    ] {
        assert!(refused.message().contains(&part), "{part:?}: {refused:?}");
    }

    // The other two elect one of themselves and keep appending.
    for n in 10..30 {
        append_retrying(&c, &others, n, &mut acked).await;
    }
    let new_leader = leader_among(&c, &others).await;
    assert_ne!(new_leader, full);
    let size = c.status(new_leader).await.expect("status").tree_size;
    let stuck = c.status(full).await.expect("status of the full node");
    assert!(
        stuck.tree_size < size,
        "the full node took no replication: {} of {size}",
        stuck.tree_size
    );
    let refused = append_one(&c, full, 100).await.expect_err("still full");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );

    // Room again: it catches up by itself and takes appends.
    std::fs::remove_file(&filler).expect("remove filler");
    let size = converged(&c).await;
    assert!(size >= 30, "{size}");
    for n in 30..35 {
        append_retrying(&c, &[full], n, &mut acked).await;
    }
    converged(&c).await;

    // Restarted onto a full disk, it waits before opening storage.
    c.stop(full).await;
    let filler = fill(&c.data_dir(full));
    {
        let restart = c.restart(full);
        tokio::pin!(restart);
        assert!(
            tokio::time::timeout(Duration::from_millis(WAITING_MS), &mut restart)
                .await
                .is_err(),
            "a node whose disk is below its floor does not start"
        );
        std::fs::remove_file(&filler).expect("remove filler");
        tokio::time::timeout(Duration::from_millis(SETTLE_MS_MAX), restart)
            .await
            .expect("the node starts once there is room");
    }
    for n in 35..40 {
        append_retrying(&c, &others, n, &mut acked).await;
    }
    converged(&c).await;
    assert_all_acknowledged_present(&c, &acked).await;
    for id in 1..=3 {
        c.stop(id).await;
    }
    drop(mounts);
}

/// A node process, killed and reaped if the test ends while it runs.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_node(config: &Path, log: &Path) -> Process {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open node log");
    let child = Command::new(env!("CARGO_BIN_EXE_ironlog"))
        .args(["node", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log"))
        .stderr(log)
        .spawn()
        .expect("spawn ironlog node");
    Process(child)
}

/// Waits until the lone node at `addr` leads; returns a channel to it.
async fn serving(addr: &str) -> Channel {
    let deadline = Instant::now() + Duration::from_millis(SETTLE_MS_MAX);
    loop {
        if let Ok(channel) =
            tls_channel(addr, &TEST_PKI.pki.ca_pem(), Some(&TEST_PKI.operator)).await
        {
            let status = AdminClient::new(channel.clone())
                .status(proto::StatusRequest {})
                .await;
            if status.is_ok_and(|s| s.get_ref().leader_id == 1) {
                return channel;
            }
        }
        assert!(Instant::now() < deadline, "node at {addr} does not lead");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free loopback port (released at once: the node binds it right after).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("bound").port()
}

/// An event whose details make it a few KiB, so a full disk is reached in a
/// few batches.
fn large_event(n: u64) -> proto::Event {
    proto::Event {
        details_json: format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(4000)),
        ..event("alice", n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_storage_fails_exits_instead_of_lingering_and_restarts_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("node1");
    std::fs::create_dir(&data_dir).expect("mkdir");
    let _tmpfs = Tmpfs::mount_sized(&data_dir, FAIL_STOP_TMPFS_BYTES);
    let (skey, vkey) = ironlog::ledger::checkpoint::generate_key(ORIGIN).expect("keygen");
    let key_file = dir.path().join("node1.key");
    crate::common::write_key(&key_file, &skey);
    let (port, peer_port) = (free_port(), free_port());
    let addr = format!("127.0.0.1:{port}");
    let config = Config {
        id: 1,
        listen: addr.parse().expect("addr"),
        advertise: None,
        peer_listen: format!("127.0.0.1:{peer_port}").parse().expect("addr"),
        peer_advertise: None,
        http_listen: None,
        data_dir: data_dir.clone(),
        origin: ORIGIN.to_string(),
        signing_key_file: key_file,
        role: Role::Voter,
        bootstrap: true,
        checkpoint: CheckpointConfig::default(),
        raft: crate::common::tuning(),
        // The guard off: the disk fills under the node, as if a write
        // raced past the floor.
        storage: StorageConfig {
            free_bytes_min: 0,
            ..StorageConfig::default()
        },
        peers: vec![Peer {
            id: 1,
            addr: format!("127.0.0.1:{peer_port}"),
            client_addr: Some(addr.clone()),
            verifier_key: vkey,
        }],
        witnesses: Vec::new(),
        analysis: None,
        tls: Some(TEST_PKI.pki.node_into(dir.path(), 1)),
        auth: crate::common::test_auth(),
        insecure: false,
    };
    config.validate().expect("valid config");
    let config_file = dir.path().join("node1.toml");
    std::fs::write(&config_file, toml::to_string(&config).expect("toml")).expect("write config");
    let log = dir.path().join("node1.log");

    let mut node = spawn_node(&config_file, &log);
    let mut client = LedgerClient::new(serving(&addr).await);
    let mut acked = BTreeMap::new();
    for n in 0..5 {
        let resp = client
            .append(proto::AppendRequest {
                events: vec![event("alice", n)],
                wait_checkpoint: false,
            })
            .await
            .expect("append with room")
            .into_inner();
        acked.insert(resp.indices[0], n);
    }

    // Fill the disk to the last byte, then keep appending.
    let filler = data_dir.join("filler");
    {
        let mut file = std::fs::File::create(&filler).expect("create filler");
        let chunk = vec![0xa5u8; MIB as usize];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.write_all(&chunk[..4096]);
    }
    let deadline = Instant::now() + Duration::from_millis(FAIL_STOP_MS_MAX);
    let mut n = 1000;
    let status = loop {
        if let Some(status) = node.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the node still runs {FAIL_STOP_MS_MAX} ms into a full disk; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let events = (n..n + 50).map(large_event).collect();
        n += 50;
        let appended = tokio::time::timeout(
            Duration::from_secs(5),
            client.append(proto::AppendRequest {
                events,
                wait_checkpoint: false,
            }),
        )
        .await;
        if let Ok(Ok(resp)) = appended {
            for (i, index) in resp.into_inner().indices.into_iter().enumerate() {
                acked.insert(index, n - 50 + i as u64);
            }
        }
    };
    let text = std::fs::read_to_string(&log).expect("read log");
    assert!(!status.success(), "exit status {status}; log:\n{text}");
    assert!(
        text.contains("raft stopped on a fatal error"),
        "the node names why it stopped; log:\n{text}"
    );
    // The Raft log's crate logs at info on every fsync; the node keeps
    // those lines out of its log even with RUST_LOG=info.
    let chatter = text.lines().filter(|l| l.contains("INFO raft_log")).count();
    assert_eq!(chatter, 0, "raft_log info lines in the node log:\n{text}");

    // Room again: the restarted node holds everything it acknowledged.
    std::fs::remove_file(&filler).expect("remove filler");
    drop(node);
    let _node = spawn_node(&config_file, &log);
    let mut client = LedgerClient::new(serving(&addr).await);
    let end = acked.keys().last().map_or(0, |i| i + 1);
    let mut keys = BTreeMap::new();
    while (keys.len() as u64) < end {
        let page = client
            .get_entries(proto::GetEntriesRequest {
                start: keys.len() as u64,
                end,
                linearizable: false,
            })
            .await
            .expect("get entries after the restart")
            .into_inner();
        assert!(!page.entries.is_empty(), "entries end at {}", keys.len());
        for e in page.entries {
            keys.insert(e.index, e.event.expect("event").idempotency_key);
        }
    }
    for (index, n) in &acked {
        assert_eq!(
            keys.get(index).map(String::as_str),
            Some(format!("evt-{n}").as_str()),
            "acknowledged event {n} at index {index}"
        );
    }
}
