//! Bad input through the real gRPC API gets a clear status, and nothing
//! already committed changes.
use crate::common;

use common::{event, Cluster};
use ironlog::limits::BATCH_EVENTS_MAX;
use ironlog::proto;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_precise_statuses_and_leave_the_log_unchanged() {
    let mut c = Cluster::start(1).await;
    c.leader().await;
    let mut client = c.ledger(1).await;
    let ok = client
        .append(proto::AppendRequest {
            events: vec![event("bob", 1), event("bob", 2)],
            wait_checkpoint: false,
        })
        .await
        .expect("valid append")
        .into_inner();
    assert_eq!(ok.indices, vec![0, 1]);
    let before = c.status(1).await.unwrap();

    let expect = |r: Result<tonic::Response<proto::AppendResponse>, tonic::Status>,
                  code: Code,
                  needle: &str| {
        let s = r.expect_err("must be refused");
        assert_eq!(s.code(), code, "{}", s.message());
        assert!(
            s.message().contains(needle),
            "message {:?} lacks {needle:?}",
            s.message()
        );
    };
    expect(
        client
            .append(proto::AppendRequest {
                events: vec![],
                wait_checkpoint: false,
            })
            .await,
        Code::InvalidArgument,
        "at least one",
    );
    let mut no_actor = event("x", 3);
    no_actor.actor = None;
    expect(
        client
            .append(proto::AppendRequest {
                events: vec![event("x", 4), no_actor],
                wait_checkpoint: false,
            })
            .await,
        Code::InvalidArgument,
        "event 1",
    );
    let mut bad_details = event("x", 5);
    bad_details.details_json = "[1,2]".into();
    expect(
        client
            .append(proto::AppendRequest {
                events: vec![bad_details],
                wait_checkpoint: false,
            })
            .await,
        Code::InvalidArgument,
        "event 0",
    );
    let mut bad_outcome = event("x", 6);
    bad_outcome.outcome = 0;
    expect(
        client
            .append(proto::AppendRequest {
                events: vec![bad_outcome],
                wait_checkpoint: false,
            })
            .await,
        Code::InvalidArgument,
        "outcome",
    );
    let big: Vec<_> = (0..BATCH_EVENTS_MAX as u64 + 1)
        .map(|i| event("x", 100 + i))
        .collect();
    expect(
        client
            .append(proto::AppendRequest {
                events: big,
                wait_checkpoint: false,
            })
            .await,
        Code::ResourceExhausted,
        "limit",
    );
    let dup = vec![event("x", 7), event("x", 7)];
    expect(
        client
            .append(proto::AppendRequest {
                events: dup,
                wait_checkpoint: false,
            })
            .await,
        Code::InvalidArgument,
        "twice",
    );

    // A retried idempotent append returns the original indices.
    let again = client
        .append(proto::AppendRequest {
            events: vec![event("bob", 1), event("bob", 2)],
            wait_checkpoint: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.indices, vec![0, 1]);
    assert_eq!(again.deduplicated, vec![true, true]);

    let s = client
        .get_entries(proto::GetEntriesRequest {
            start: 5,
            end: 9,
            linearizable: false,
        })
        .await
        .expect_err("beyond the tree");
    assert_eq!(s.code(), Code::OutOfRange, "{}", s.message());
    let s = client
        .get_inclusion_proof(proto::GetInclusionProofRequest {
            index: 2,
            tree_size: 2,
        })
        .await
        .expect_err("index beyond size");
    assert_eq!(s.code(), Code::OutOfRange, "{}", s.message());
    let s = client
        .get_inclusion_proof(proto::GetInclusionProofRequest {
            index: 0,
            tree_size: 99,
        })
        .await
        .expect_err("size beyond tree");
    assert_eq!(s.code(), Code::OutOfRange, "{}", s.message());
    let s = client
        .get_consistency_proof(proto::GetConsistencyProofRequest {
            old_size: 2,
            new_size: 1,
        })
        .await
        .expect_err("sizes out of order");
    assert_eq!(s.code(), Code::InvalidArgument, "{}", s.message());
    let s = client
        .query(proto::QueryRequest {
            page_token: "garbage".into(),
            actor: "bob".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad token");
    assert_eq!(s.code(), Code::InvalidArgument, "{}", s.message());

    let after = c.status(1).await.unwrap();
    assert_eq!(
        after.tree_size, before.tree_size,
        "refused requests appended nothing"
    );
    assert_eq!(after.root_hash, before.root_hash);

    // Query by actor finds exactly bob's two events.
    let q = client
        .query(proto::QueryRequest {
            actor: "bob".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        q.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert!(q.next_page_token.is_empty());
    c.stop(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_streams_existing_then_new_entries_in_order() {
    use futures::StreamExt;
    let mut c = Cluster::start(1).await;
    c.leader().await;
    let mut client = c.ledger(1).await;
    client
        .append(proto::AppendRequest {
            events: vec![event("carol", 1), event("carol", 2)],
            wait_checkpoint: false,
        })
        .await
        .unwrap();
    let mut stream = client
        .tail(proto::TailRequest { start: 1 })
        .await
        .expect("tail opens")
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.index, 1, "tail starts at the requested index");
    let mut writer = c.ledger(1).await;
    writer
        .append(proto::AppendRequest {
            events: vec![event("carol", 3)],
            wait_checkpoint: false,
        })
        .await
        .unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
        .await
        .expect("a new entry arrives")
        .unwrap()
        .unwrap();
    assert_eq!(next.index, 2);
    assert_eq!(next.event.unwrap().idempotency_key, "evt-3");
    drop(stream);
    c.stop(1).await;
}
