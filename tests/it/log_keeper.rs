//! The Raft log stays bounded in bytes, whatever its entries' counts say:
//! with snapshots every million entries and a thousand entries kept behind
//! one, nothing would ever be purged, yet a node whose log holds more than
//! `raft.log_purge_bytes` below its in-memory entries builds a snapshot and
//! purges them, keeps serving every leaf, and restarts from what it kept.

use std::time::Duration;

use crate::common;

use common::{event, tuning, Cluster};
use ironlog::config::RaftTuning;
use ironlog::proto;

/// Batches appended, and events in each: about 100 KB of leaves a batch.
const BATCHES: u64 = 30;
const PER_BATCH: u64 = 100;

/// Waits up to 30 s for node `id` to have purged its log past `index`.
async fn wait_purged(c: &Cluster, id: u64, index: u64) -> u64 {
    for _ in 0..300 {
        let m = c.metrics(id);
        if let Some(purged) = m.purged.filter(|p| p.index > index) {
            assert!(
                m.snapshot.is_some_and(|s| s.index >= purged.index),
                "node {id} purged {purged:?} beyond its snapshot {:?}",
                m.snapshot
            );
            return purged.index;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = c.metrics(id);
    panic!(
        "node {id} never purged past {index}: purged {:?}, snapshot {:?}, last log {:?}",
        m.purged, m.snapshot, m.last_log_index
    );
}

async fn append_batches(c: &Cluster, via: u64, from: u64, batches: u64) {
    let mut client = c.ledger(via).await;
    for b in from..from + batches {
        let events = (0..PER_BATCH)
            .map(|i| {
                let mut e = event("bulk", b * PER_BATCH + i);
                e.details_json = format!(r#"{{"pad":"{}"}}"#, "x".repeat(800));
                e
            })
            .collect();
        client
            .append(proto::AppendRequest {
                events,
                wait_checkpoint: false,
            })
            .await
            .unwrap_or_else(|s| panic!("batch {b}: {s}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_log_of_large_entries_is_purged_by_bytes_and_every_leaf_stays() {
    let raft = RaftTuning {
        snapshot_logs_since_last: 1_000_000,
        max_in_snapshot_log_to_keep: 1000,
        log_memory_bytes: 64 * 1024,
        log_purge_bytes: 256 * 1024,
        ..tuning()
    };
    let mut c = Cluster::start_with_tuning(3, raft).await;
    let leader = c.leader().await;
    append_batches(&c, leader, 0, BATCHES).await;
    let size = BATCHES * PER_BATCH;
    c.wait_size(size).await;

    // Every node, leader and followers, purges most of its ~3 MB log: the
    // counts alone would have kept all of it.
    for id in 1..=3 {
        let purged = wait_purged(&c, id, 0).await;
        assert!(
            purged >= BATCHES / 2,
            "node {id} purged only through {purged}"
        );
    }

    // Every leaf is still served, through any node.
    for id in 1..=3 {
        let mut client = c.ledger(id).await;
        let mut got = 0;
        while got < size {
            let page = client
                .get_entries(proto::GetEntriesRequest {
                    start: got,
                    end: size,
                    linearizable: false,
                })
                .await
                .unwrap_or_else(|s| panic!("entries from {got} via node {id}: {s}"))
                .into_inner();
            assert!(
                !page.entries.is_empty(),
                "no entries from {got} via node {id}"
            );
            for (k, e) in page.entries.iter().enumerate() {
                assert_eq!(e.index, got + k as u64);
            }
            got += page.entries.len() as u64;
        }
    }

    // A follower restarts from its snapshot and purged log, then follows.
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    c.stop(follower).await;
    c.restart(follower).await;
    let leader = c.leader().await;
    append_batches(&c, leader, BATCHES, 5).await;
    c.wait_size(size + 5 * PER_BATCH).await;
    for id in 1..=3 {
        c.stop(id).await;
    }
}
