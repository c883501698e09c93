//! Group commit through the real API: concurrent single-event appends, to
//! the leader and through a follower, travel in fewer Raft entries than
//! there are appends, and each caller still gets its own answer.

use crate::common;

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::Barrier;

use common::{event, Cluster};
use ironlog::proto;

/// Concurrent appends, each of one event, per node they are sent through.
const APPENDS_PER_NODE: u64 = 64;

/// Appends event `n` of `actor` through `client`, connected to node `via`.
async fn append_one(
    client: &mut proto::ledger_client::LedgerClient<tonic::transport::Channel>,
    actor: &str,
    n: u64,
    via: u64,
) -> proto::AppendResponse {
    client
        .append(proto::AppendRequest {
            events: vec![event(actor, n)],
            wait_checkpoint: false,
        })
        .await
        .unwrap_or_else(|s| panic!("append {n} via node {via}: {s}"))
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_raft_entries_and_each_gets_its_own_answer() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    // Settle: the first append waits out the leader's first entries.
    let mut client = c.ledger(leader).await;
    client
        .append(proto::AppendRequest {
            events: vec![event("warmup", 1_000_000)],
            wait_checkpoint: false,
        })
        .await
        .unwrap();
    let before = c.status(leader).await.unwrap();

    // Every request is ready before any is sent, on one connection per
    // node, and all start together: they arrive while the first groups
    // are in flight, however slow the machine is.
    let start = Arc::new(Barrier::new(2 * APPENDS_PER_NODE as usize + 1));
    let mut tasks = Vec::new();
    for (k, via) in [leader, follower].into_iter().enumerate() {
        let node = c.ledger(via).await;
        for i in 0..APPENDS_PER_NODE {
            let n = k as u64 * APPENDS_PER_NODE + i;
            let mut client = node.clone();
            let start = start.clone();
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                (n, append_one(&mut client, "alice", n, via).await)
            }));
        }
    }
    // One more that repeats append 0's idempotency key: deduplicated against
    // it whether or not the two share a group.
    let mut client = c.ledger(follower).await;
    let repeat_start = start.clone();
    let repeat = tokio::spawn(async move {
        repeat_start.wait().await;
        client
            .append(proto::AppendRequest {
                events: vec![event("alice", 0)],
                wait_checkpoint: false,
            })
            .await
            .unwrap()
            .into_inner()
    });

    let mut indices = BTreeSet::new();
    let mut first_index = None;
    for task in tasks {
        let (n, resp) = task.await.unwrap();
        assert_eq!(resp.indices.len(), 1, "append {n}");
        assert!(resp.indices[0] < resp.tree_size, "append {n}");
        if n == 0 {
            first_index = Some(resp.indices[0]);
        }
        if resp.deduplicated[0] {
            // Only append 0 can be deduplicated: against the repeat, if the
            // repeat was applied first.
            assert_eq!(n, 0, "append {n} was deduplicated");
        } else {
            assert!(indices.insert(resp.indices[0]), "index given twice");
        }
    }
    let repeat = repeat.await.unwrap();
    assert_eq!(Some(repeat.indices[0]), first_index, "same key, same index");
    let total = 2 * APPENDS_PER_NODE;
    // Every event got its own leaf, all of them contiguous after the start.
    if !repeat.deduplicated[0] {
        indices.insert(repeat.indices[0]);
    }
    assert_eq!(indices.len() as u64, total);
    let lo = *indices.first().unwrap();
    assert_eq!(*indices.last().unwrap(), lo + total - 1);
    assert_eq!(lo, before.tree_size);

    // Fewer Raft entries than appends, though the leader's checkpoints and
    // signatures also took entries meanwhile.
    let after = c.status(leader).await.unwrap();
    let entries = after.applied_index - before.applied_index;
    assert!(
        entries < total,
        "{total} concurrent appends took {entries} Raft entries: none were grouped"
    );
    eprintln!("{total} concurrent appends took {entries} Raft entries");
    let mut reader = c.ledger(follower).await;
    let entries = reader
        .get_entries(proto::GetEntriesRequest {
            start: lo,
            end: lo + total,
            linearizable: true,
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(entries.len() as u64, total);
}

/// Waves of concurrent appends sent through the two followers.
const FORWARD_WAVES_MAX: u64 = 5;
const FORWARDED_PER_FOLLOWER: u64 = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_groups_what_both_followers_forward_into_shared_entries() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let followers: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
    let mut client = c.ledger(leader).await;
    client
        .append(proto::AppendRequest {
            events: vec![event("warmup", 1_000_000)],
            wait_checkpoint: false,
        })
        .await
        .unwrap();
    // Every event of one Raft entry carries the commit time the leader
    // stamped on that entry, and each entry gets its own. An event
    // forwarded by one follower sharing its commit time with one forwarded
    // by the other means the leader proposed them as one entry: each
    // follower forwards its own groups, so only the leader can join them.
    // Whether a wave's forwards overlap at the leader is timing; a few
    // waves make it near certain, and before the intake grouped forwards
    // no wave could share.
    for wave in 0..FORWARD_WAVES_MAX {
        let start = Arc::new(Barrier::new(2 * FORWARDED_PER_FOLLOWER as usize));
        let mut tasks = Vec::new();
        for &via in &followers {
            let node = c.ledger(via).await;
            for i in 0..FORWARDED_PER_FOLLOWER {
                let n = 10_000 * (wave + 1) + 100 * via + i;
                let (mut client, start) = (node.clone(), start.clone());
                tasks.push(tokio::spawn(async move {
                    start.wait().await;
                    let resp = append_one(&mut client, "bob", n, via).await;
                    (via, resp.indices[0])
                }));
            }
        }
        let mut sent_via = Vec::new();
        for task in tasks {
            sent_via.push(task.await.unwrap());
        }
        let lo = sent_via.iter().map(|(_, i)| *i).min().unwrap();
        let hi = sent_via.iter().map(|(_, i)| *i).max().unwrap();
        let entries = client
            .get_entries(proto::GetEntriesRequest {
                start: lo,
                end: hi + 1,
                linearizable: true,
            })
            .await
            .unwrap()
            .into_inner()
            .entries;
        let time_of: std::collections::HashMap<u64, i64> = entries
            .iter()
            .map(|e| (e.index, e.commit_time_unix_nanos))
            .collect();
        let times = |via: u64| -> BTreeSet<i64> {
            sent_via
                .iter()
                .filter(|(v, _)| *v == via)
                .map(|(_, i)| time_of[i])
                .collect()
        };
        let shared = times(followers[0])
            .intersection(&times(followers[1]))
            .count();
        eprintln!("wave {wave}: {shared} Raft entries held appends forwarded by both followers");
        if shared > 0 {
            return;
        }
    }
    panic!("in {FORWARD_WAVES_MAX} waves, no Raft entry held appends forwarded by both followers");
}
