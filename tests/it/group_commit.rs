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
                let resp = client
                    .append(proto::AppendRequest {
                        events: vec![event("alice", n)],
                        wait_checkpoint: false,
                    })
                    .await
                    .unwrap_or_else(|s| panic!("append {n} via node {via}: {s}"))
                    .into_inner();
                (n, resp)
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
