//! Three real nodes (redb, openraft, tonic) in one process on port-0
//! listeners: failover, restart, wipe-and-recover-by-snapshot, and at the end
//! every node holds the same log, with every acknowledged event exactly once.
use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{event, wait_checkpoint, Cluster};
use ironlog::ledger::checkpoint::open_note;
use ironlog::ledger::event::LeafRecord;
use ironlog::ledger::merkle::{leaf_hash, verify_consistency, verify_inclusion, Hash};
use ironlog::proto;

/// Appends events `from..to` in batches of `batch` through node `via`,
/// retrying a batch (same idempotency keys) while leadership settles.
async fn append(
    c: &Cluster,
    via: u64,
    from: u64,
    to: u64,
    batch: u64,
    acked: &mut BTreeMap<String, u64>,
) {
    let mut n = from;
    while n < to {
        let hi = (n + batch).min(to);
        let events: Vec<_> = (n..hi).map(|i| event("alice", i)).collect();
        let mut attempt = 0;
        let resp = loop {
            let mut client = c.ledger(via).await;
            match client
                .append(proto::AppendRequest {
                    events: events.clone(),
                    wait_checkpoint: false,
                })
                .await
            {
                Ok(r) => break r.into_inner(),
                Err(s) if s.code() == tonic::Code::Unavailable && attempt < 50 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(s) => panic!("append {n}..{hi} via node {via} failed: {s}"),
            }
        };
        assert_eq!(resp.indices.len() as u64, hi - n);
        for (i, idx) in (n..hi).zip(&resp.indices) {
            assert!(*idx < resp.tree_size, "acked index below acked tree size");
            if let Some(prev) = acked.insert(format!("evt-{i}"), *idx) {
                assert_eq!(prev, *idx, "a retried key returns its original index");
            }
        }
        n = hi;
    }
}

async fn all_entries(c: &Cluster, id: u64, size: u64) -> Vec<proto::Entry> {
    let mut client = c.ledger(id).await;
    let mut out = Vec::new();
    while (out.len() as u64) < size {
        let resp = client
            .get_entries(proto::GetEntriesRequest {
                start: out.len() as u64,
                end: size,
                linearizable: false,
            })
            .await
            .expect("get entries")
            .into_inner();
        assert!(!resp.entries.is_empty());
        out.extend(resp.entries);
    }
    out
}

/// The newest Raft log segment under node data dir `dir`: its length, and
/// whether its last four bytes (the low half of its last record's
/// checksum) are all zero, as a preallocated zero tail's are.
fn newest_segment(dir: &std::path::Path) -> (u64, bool) {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("raft-log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    files.sort();
    let bytes = std::fs::read(files.last().expect("a segment")).unwrap();
    let zero_end = bytes.len() >= 4 && bytes[bytes.len() - 4..].iter().all(|&b| b == 0);
    (bytes.len() as u64, zero_end)
}

fn hash(bytes: &[u8]) -> Hash {
    bytes.try_into().expect("32-byte hash")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_events_survive_failover_restart_and_wipe() {
    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let mut acked = BTreeMap::new();

    // Append through a follower: forwarded to the leader.
    append(&c, follower, 0, 60, 10, &mut acked).await;
    c.wait_size(60).await;

    // A running node's open segment is allocated ahead of its records
    // (fewer journal commits per fsync), and cut back when it stops.
    let segment_bytes = ironlog::limits::RAFT_LOG_SEGMENT_BYTES as u64;
    assert_eq!(newest_segment(&c.data_dir(leader)), (segment_bytes, true));

    // Kill the leader; a new one takes over and appends go on.
    c.stop(leader).await;
    let (len, zero_end) = newest_segment(&c.data_dir(leader));
    assert!(
        len < segment_bytes && !zero_end,
        "{len} bytes, zero end: {zero_end}"
    );
    let new_leader = c.leader().await;
    assert_ne!(new_leader, leader);
    append(&c, new_leader, 60, 120, 10, &mut acked).await;

    // The old leader restarts from its data dir and catches up.
    c.restart(leader).await;
    c.wait_size(120).await;

    // Wipe a follower: with the log purged behind snapshots, it can only
    // recover by receiving a snapshot.
    let current = c.leader().await;
    let wiped = (1..=3).find(|&i| i != current).unwrap();
    c.stop(wiped).await;
    std::fs::remove_dir_all(c.data_dir(wiped)).unwrap();
    append(&c, current, 120, 180, 10, &mut acked).await;
    let leader_node = c.nodes[(current - 1) as usize].as_ref().unwrap();
    let purged = ironlog::raft::metrics(leader_node.raft())
        .purged
        .map_or(0, |p| p.index);
    assert!(
        purged > 0,
        "the leader purged its log, so only a snapshot can restore the wiped node"
    );
    c.restart(wiped).await;
    c.wait_size(180).await;
    let status = c.status(wiped).await.unwrap();
    assert_eq!(status.tree_size, 180);

    // A retried batch (same keys) appends nothing new.
    append(&c, wiped, 170, 180, 10, &mut acked).await;
    c.wait_size(180).await;

    // Every node: same size and root; every acked event exactly once, at its index.
    let mut roots = Vec::new();
    for id in 1..=3 {
        let s = c.status(id).await.unwrap();
        assert_eq!(s.tree_size, 180, "node {id} size");
        roots.push(s.root_hash.clone());
        let entries = all_entries(&c, id, 180).await;
        let mut seen = BTreeMap::new();
        for e in &entries {
            assert_eq!(leaf_hash(&e.leaf).to_vec(), e.leaf_hash);
            let rec = LeafRecord::decode(&e.leaf).expect("leaf decodes");
            assert_eq!(rec.index, e.index);
            let key = rec.event.idempotency_key.clone().unwrap();
            assert!(
                seen.insert(key, e.index).is_none(),
                "node {id}: an event appears twice"
            );
        }
        assert_eq!(
            seen, acked,
            "node {id} holds exactly the acknowledged events"
        );
    }
    assert!(
        roots.windows(2).all(|w| w[0] == w[1]),
        "all nodes agree on the root"
    );

    // The latest checkpoint is cosigned by a majority and proves inclusion.
    let mut client = c.ledger(wiped).await;
    let cp = wait_checkpoint(&mut client, &c.vkeys, |size, _| size == 180).await;
    let cp = cp.expect("a checkpoint at size 180");

    // The wiped node, restored by snapshot, still signs the newest checkpoint.
    let all_signed = wait_checkpoint(&mut client, &c.vkeys, |_, signers| signers == 3)
        .await
        .is_some();
    assert!(
        all_signed,
        "every voter, the wiped one included, signs the newest checkpoint"
    );

    // A linearizable read sent to a follower is answered by the leader.
    let leader_now = c.leader().await;
    let follower_now = (1..=3).find(|&i| i != leader_now).unwrap();
    let lin = c
        .ledger(follower_now)
        .await
        .get_entries(proto::GetEntriesRequest {
            start: 179,
            end: 180,
            linearizable: true,
        })
        .await
        .expect("linearizable read via a follower")
        .into_inner();
    assert_eq!(lin.tree_size, 180);
    assert_eq!(lin.entries.len(), 1);
    let (body, signers) = open_note(cp.note.as_bytes(), &c.vkeys).expect("note verifies");
    assert_eq!(body.size, 180);
    assert!(signers.len() >= 2, "cosigned by a majority: {signers:?}");
    let proof = client
        .get_inclusion_proof(proto::GetInclusionProofRequest {
            index: 42,
            tree_size: 180,
        })
        .await
        .unwrap()
        .into_inner()
        .proof
        .unwrap();
    let hashes: Vec<Hash> = proof.hashes.iter().map(|h| hash(h)).collect();
    verify_inclusion(42, 180, &hash(&proof.leaf_hash), &hashes, &body.root)
        .expect("inclusion verifies");
    let cons = client
        .get_consistency_proof(proto::GetConsistencyProofRequest {
            old_size: 60,
            new_size: 180,
        })
        .await
        .unwrap()
        .into_inner()
        .proof
        .unwrap();
    let hashes: Vec<Hash> = cons.hashes.iter().map(|h| hash(h)).collect();
    verify_consistency(60, 180, &hash(&cons.old_root), &body.root, &hashes)
        .expect("consistency verifies");

    for id in 1..=3 {
        c.stop(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_quorum_nothing_is_acknowledged_and_writes_resume_with_it() {
    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    let mut acked = BTreeMap::new();
    append(&c, leader, 0, 10, 10, &mut acked).await;
    c.wait_size(10).await;
    let others: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
    for &id in &others {
        c.stop(id).await;
    }
    let refused = c
        .ledger(leader)
        .await
        .append(proto::AppendRequest {
            events: vec![event("alice", 10)],
            wait_checkpoint: false,
        })
        .await
        .expect_err("one node of three cannot commit");
    assert_eq!(
        refused.code(),
        tonic::Code::Unavailable,
        "{}",
        refused.message()
    );
    assert_eq!(
        c.status(leader).await.unwrap().tree_size,
        10,
        "nothing applied without a quorum"
    );

    // With a majority back, the same (idempotent) event commits once.
    c.restart(others[0]).await;
    c.leader().await;
    append(&c, leader, 10, 11, 1, &mut acked).await;
    c.wait_size(11).await;
    for id in [leader, others[0]] {
        c.stop(id).await;
    }
}

/// The bootstrap node (node 1, `bootstrap = true`) loses its data directory.
/// Its fresh log looks like a first start; it must not initialise a second
/// cluster (a new membership entry and an election) but wait to be restored
/// by the leader, whatever role it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_bootstrap_node_rejoins_instead_of_initialising_again() {
    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    let mut acked = BTreeMap::new();
    append(&c, leader, 0, 30, 10, &mut acked).await;
    c.wait_size(30).await;

    c.stop(1).await;
    std::fs::remove_dir_all(c.data_dir(1)).unwrap();
    let current = c.leader().await;
    assert_ne!(current, 1);
    append(&c, current, 30, 60, 10, &mut acked).await;
    let term_before = c.status(current).await.unwrap().term;

    c.restart(1).await;
    c.wait_size(60).await;
    let restored = c.status(1).await.unwrap();
    assert_eq!(restored.tree_size, 60);
    assert_eq!(restored.leader_id, current, "{restored:?}");
    assert_eq!(
        c.status(current).await.unwrap().term,
        term_before,
        "the restarted node started no election"
    );
    for id in 1..=3 {
        c.stop(id).await;
    }
}

/// A leader that stops and starts again must win an election in a new term
/// before it leads: resuming in its old term, it could reuse log ids for
/// other entries than the ones its followers already hold under them (its
/// own log may have lost entries it had replicated before they were durable
/// here), and followers, comparing ids only, would keep theirs: a fork the
/// chaos harness found. The followers' election timeouts are long enough
/// that none of them elects itself while the leader is away, so only a
/// restored leadership could give the old term back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_leader_leads_again_only_in_a_new_term() {
    let tuning = ironlog::config::RaftTuning {
        election_timeout_min_ms: 2_000,
        election_timeout_max_ms: 3_000,
        ..common::tuning()
    };
    let mut c = Cluster::start_with_tuning(3, tuning).await;
    let leader = c.leader().await;
    let mut acked = BTreeMap::new();
    append(&c, leader, 0, 20, 10, &mut acked).await;
    let term_before = c.status(leader).await.unwrap().term;

    c.stop(leader).await;
    c.restart(leader).await;
    // At once, before anyone could have been elected: not leading yet.
    let back = c.status(leader).await.unwrap();
    assert!(
        back.leader_id != leader || back.term > term_before,
        "the restarted node resumed leading in term {} without an election: {back:?}",
        back.term
    );
    let current = c.leader().await;
    let now = c.status(current).await.unwrap();
    assert!(
        now.term > term_before,
        "a leader in term {} after the old leader (term {term_before}) restarted: {now:?}",
        now.term
    );
    append(&c, current, 20, 40, 10, &mut acked).await;
    c.wait_size(40).await;
    for id in 1..=3 {
        c.stop(id).await;
    }
}
