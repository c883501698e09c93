//! The trust boundary, attacked from outside against a real cluster: every
//! attack is refused, leaves the tree size and root unchanged, and the
//! refusal is on the record in the ledger itself.
use std::time::Duration;

use crate::common;

use common::pki::{ClientCert, Pki};
use common::{
    event, tls_channel, Cluster, ADMIN_TOKEN, ONE_AT_A_TIME_TOKEN, PAYMENTS_TOKEN, READER_TOKEN,
    SLOW_TOKEN,
};
use ironlog::proto;
use ironlog::proto::raft_client::RaftClient;
use ironlog::raft::{Command, Outcome, TypeConfig};
use tonic::Code;

type Vote = openraft::alias::VoteOf<TypeConfig>;
use ironlog::ledger::checkpoint::CheckpointBody;
use ironlog::ledger::cosignature::Cosigner;

/// The body of a signed note: everything before the blank line.
fn note_body(note: &str) -> String {
    let end = note.find("\n\n").expect("a signed note") + 1;
    note[..end].to_string()
}

/// Tree size and root hash as node `id` reports them.
async fn size_and_root(c: &Cluster, id: u64) -> (u64, Vec<u8>) {
    let s = c.status(id).await.expect("status");
    (s.tree_size, s.root_hash)
}

/// Node `id`'s tree size once it has not grown for a second (refusal
/// records are written in the background, after the refused call returns).
async fn settled_size(c: &Cluster, id: u64) -> u64 {
    let mut size = size_and_root(c, id).await.0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let now = size_and_root(c, id).await.0;
        if now == size {
            return size;
        }
        size = now;
    }
    panic!("node {id} kept growing (size {size})");
}

/// Checks that node `id`'s log still holds the tree `before` as its prefix
/// (a consistency proof to its old root) and that everything after it is
/// a refusal record written by a node, nothing the attack sent.
async fn only_refusals_since(c: &Cluster, id: u64, before: &(u64, Vec<u8>)) {
    let (size, root) = size_and_root(c, id).await;
    assert!(size >= before.0, "node {id} shrank: {size} < {}", before.0);
    if size == before.0 {
        assert_eq!(root, before.1, "node {id}: same size, another root");
        return;
    }
    let mut ledger = c.ledger(id).await;
    let entries = ledger
        .get_entries(proto::GetEntriesRequest {
            start: before.0,
            end: size,
            linearizable: false,
        })
        .await
        .expect("entries")
        .into_inner()
        .entries;
    for e in &entries {
        let ev = e.event.as_ref().expect("event");
        assert!(
            ev.action == "ironlog.request.refused" && ev.source.starts_with("ironlog/node-"),
            "node {id}: leaf {} is not a refusal record: {ev:?}",
            e.index
        );
    }
    // The old tree is a prefix of the new one, by a proof the node gives
    // and the checkpoint it is checked against.
    let cp = ledger
        .get_checkpoint(proto::GetCheckpointRequest::default())
        .await
        .expect("checkpoint")
        .into_inner()
        .checkpoint
        .expect("checkpoint");
    if cp.size > before.0 {
        let proof = ledger
            .get_consistency_proof(proto::GetConsistencyProofRequest {
                old_size: before.0,
                new_size: cp.size,
            })
            .await
            .expect("consistency proof")
            .into_inner()
            .proof
            .expect("proof");
        assert_eq!(
            proof.old_root, before.1,
            "node {id}: the old tree was rewritten"
        );
    }
}

/// Appends `n` events as the operator, so the tree is not empty.
async fn seed(c: &Cluster, n: u64) {
    let leader = c.leader().await;
    c.ledger(leader)
        .await
        .append(proto::AppendRequest {
            events: (0..n).map(|i| event("seed", i)).collect(),
            wait_checkpoint: false,
        })
        .await
        .expect("seed append");
    c.wait_size(n).await;
}

/// Waits (up to 15 s) for a refusal record whose resource is `method`
/// (and, if given, whose actor is `actor`); returns its details.
async fn refusal_recorded(c: &Cluster, method: &str, actor: Option<&str>) -> serde_json::Value {
    let leader = c.leader().await;
    let mut ledger = c.ledger(leader).await;
    for _ in 0..150 {
        let found = ledger
            .query(proto::QueryRequest {
                action: "ironlog.request.refused".into(),
                resource: method.into(),
                page_size: 100,
                ..Default::default()
            })
            .await
            .expect("query refusals")
            .into_inner()
            .entries;
        let hit = found.into_iter().find(|e| {
            let ev = e.event.as_ref().expect("event");
            let who = ev.actor.as_ref().map(|a| a.id.as_str());
            ev.source.starts_with("ironlog/node-")
                && ev.outcome == proto::Outcome::Denied as i32
                && actor.is_none_or(|a| who == Some(a))
        });
        if let Some(e) = hit {
            let ev = e.event.expect("event");
            return serde_json::from_str(&ev.details_json).expect("details are JSON");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no refusal of {method} by {actor:?} was recorded in the ledger");
}

async fn peer_client(
    c: &Cluster,
    id: u64,
    ca_pem: &str,
    as_: &ClientCert,
) -> Option<RaftClient<tonic::transport::Channel>> {
    // A node certificate names node-<id>.ironlog and 127.0.0.1: dial by IP.
    let channel = tls_channel(&c.peer_addr(id), ca_pem, Some(as_))
        .await
        .ok()?;
    Some(RaftClient::new(channel))
}

/// Sends `cmds` over one `ForwardStream` and returns what the leader
/// answered for each, in their order.
async fn over_stream(
    peer: &mut RaftClient<tonic::transport::Channel>,
    cmds: &[Command],
) -> Result<Vec<Vec<Outcome>>, tonic::Status> {
    let requests: Vec<_> = cmds
        .iter()
        .enumerate()
        .map(|(id, cmd)| proto::ForwardRequest {
            id: id as u64,
            command: serde_json::to_vec(cmd).expect("serialises"),
        })
        .collect();
    let mut replies = peer
        .forward_stream(futures::stream::iter(requests))
        .await?
        .into_inner();
    let mut answers = vec![None; cmds.len()];
    while let Some(reply) = replies.message().await? {
        answers[reply.id as usize] =
            Some(serde_json::from_slice(&reply.outcomes).expect("outcomes"));
    }
    Ok(answers
        .into_iter()
        .map(|a| a.expect("every command answered"))
        .collect())
}

fn raft_message<T: serde::Serialize>(value: &T) -> proto::RaftMessage {
    proto::RaftMessage {
        data: serde_json::to_vec(value).expect("serialises"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_and_wrong_role_admin_calls_are_refused_and_recorded() {
    let mut c = Cluster::start(3).await;
    seed(&c, 5).await;
    let leader = c.leader().await;
    let before = size_and_root(&c, leader).await;
    let members_before = c.status(leader).await.unwrap().members.len();

    let request = proto::AddLearnerRequest {
        id: 99,
        addr: "127.0.0.1:9".into(),
        verifier_key: c.vkeys[1].clone(),
        client_addr: String::new(),
    };
    let mut anonymous = proto::admin_client::AdminClient::new(c.anonymous_channel(leader).await);
    let e = anonymous
        .add_learner(request.clone())
        .await
        .expect_err("anonymous");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("admin role"), "{}", e.message());
    let e = anonymous
        .change_membership(proto::ChangeMembershipRequest {
            voters: vec![leader],
            retain: false,
        })
        .await
        .expect_err("anonymous");
    assert_eq!(e.code(), Code::Unauthenticated);

    let mut reader = c.admin_as(leader, READER_TOKEN).await;
    let e = reader
        .add_learner(request.clone())
        .await
        .expect_err("reader");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("\"reader\""), "{}", e.message());
    let mut appender = c.ledger_as(leader, PAYMENTS_TOKEN).await;
    let e = appender
        .get_entries(proto::GetEntriesRequest {
            start: 0,
            end: 1,
            linearizable: false,
        })
        .await
        .expect_err("an appender does not read");
    assert_eq!(e.code(), Code::PermissionDenied);
    let mut bad_token = c.admin_as(leader, "not-a-token").await;
    let e = bad_token
        .add_learner(request.clone())
        .await
        .expect_err("bad token");
    assert_eq!(e.code(), Code::Unauthenticated);

    // Even the admin may not add a node that is not a peer of this cluster,
    // nor reuse a voter's key.
    let mut admin = c.admin_as(leader, ADMIN_TOKEN).await;
    let e = admin.add_learner(request).await.expect_err("bogus peer");
    assert!(
        matches!(e.code(), Code::AlreadyExists | Code::FailedPrecondition),
        "{e:?}"
    );

    refusal_recorded(&c, "ironlog.v1.Admin/AddLearner", Some("anonymous")).await;
    refusal_recorded(&c, "ironlog.v1.Admin/AddLearner", Some("reader")).await;
    refusal_recorded(&c, "ironlog.v1.Ledger/GetEntries", Some("payments")).await;
    let status = c.status(leader).await.unwrap();
    assert_eq!(status.members.len(), members_before, "membership unchanged");
    // The refusal records are the only leaves added.
    let refusals = status.tree_size - before.0;
    assert!(refusals >= 3, "{refusals} refusals recorded");
    only_refusals_since(&c, leader, &before).await;
    for id in 1..=3 {
        c.stop(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_from_a_client_certificate_or_another_ca_is_refused() {
    let mut c = Cluster::start(3).await;
    seed(&c, 5).await;
    let leader = c.leader().await;
    let before = size_and_root(&c, leader).await;
    let forged = Command::Append {
        events: vec![].into(),
        commit_time_unix_nanos: 1,
    };

    // A client certificate of the cluster CA: TLS passes, the peer listener does not.
    let ca = c.pki.ca_pem();
    let mut as_client = peer_client(&c, leader, &ca, &c.operator)
        .await
        .expect("TLS with a client certificate");
    let e = as_client
        .forward(raft_message(&forged))
        .await
        .expect_err("client cert");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = over_stream(&mut as_client, std::slice::from_ref(&forged))
        .await
        .expect_err("client cert");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = as_client
        .append_entries(proto::RaftMessage {
            data: b"{}".to_vec(),
        })
        .await
        .expect_err("client cert");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // A node certificate from another CA does not even complete TLS.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Pki::new(other_dir.path(), "other");
    let impostor = other.node_client(2);
    match peer_client(&c, leader, &ca, &impostor).await {
        None => {}
        Some(mut client) => {
            let e = client
                .forward(raft_message(&forged))
                .await
                .expect_err("other CA");
            assert!(
                // TLS 1.3 reports a refused client certificate after the
                // client's side of the handshake: the first call fails.
                matches!(
                    e.code(),
                    Code::Unavailable | Code::Unknown | Code::Cancelled
                ),
                "{e:?}"
            );
        }
    }

    // A real node certificate claiming to be another node.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let liar_id = (1..=3).find(|id| *id != leader && *id != follower).unwrap();
    let as_follower = c.pki.node_client(follower);
    let mut liar = peer_client(&c, leader, &ca, &as_follower)
        .await
        .expect("node TLS");
    let vote = openraft::raft::VoteRequest::<TypeConfig>::new(Vote::new(1000, liar_id), None);
    let e = liar
        .vote(raft_message(&vote))
        .await
        .expect_err("vote for another node");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains(&format!("node {liar_id}")),
        "{}",
        e.message()
    );
    let cosign = Command::Cosign {
        node_id: liar_id,
        size: 1,
        line: "— junk".into(),
    };
    let e = liar
        .forward(raft_message(&cosign))
        .await
        .expect_err("cosign as another node");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    refusal_recorded(&c, "ironlog.v1.Raft/Forward", Some("operator")).await;
    refusal_recorded(&c, "ironlog.v1.Raft/Vote", None).await;
    // The handshake with another CA's certificate is on the record too.
    let details = refusal_recorded(&c, "TLS handshake (peer listener)", Some("unknown")).await;
    assert!(
        details["reason"]
            .as_str()
            .unwrap_or("")
            .contains("certificate"),
        "{details}"
    );
    assert_eq!(c.leader().await, leader, "the leader was not deposed");
    for id in 1..=3 {
        only_refusals_since(&c, id, &before).await;
    }
    for id in 1..=3 {
        c.stop(id).await;
    }
}

/// A forwarded command answered by the leader: it must say it was refused
/// where it was applied.
fn assert_refused(answer: Result<tonic::Response<proto::RaftMessage>, tonic::Status>) {
    let r = answer.expect("the leader answers a forwarded command");
    let resp: ironlog::raft::CommandResponse =
        serde_json::from_slice(&r.get_ref().data).expect("a command response");
    assert!(resp.refusal().is_some(), "not refused: {resp:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_witness_cosignatures_are_refused_and_notes_stay_verifiable() {
    let mut c = Cluster::start(3).await;
    seed(&c, 5).await;
    let leader = c.leader().await;
    let mut ledger = c.ledger(leader).await;
    let vkeys = c.vkeys.clone();
    let cp = common::wait_checkpoint(&mut ledger, &vkeys, |size, signers| {
        size == 5 && signers >= 2
    })
    .await
    .expect("a majority-signed checkpoint");
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let mut peer = peer_client(&c, leader, &c.pki.ca_pem(), &c.pki.node_client(follower))
        .await
        .expect("node TLS");
    // 120 witnesses the cluster never configured, each with a line that
    // really verifies under its own key: more than a note may carry.
    for n in 0..120u32 {
        let name = format!("junk.example/w{n}");
        let (skey, vkey) = Cosigner::generate(&name).expect("key");
        let cosigner = Cosigner::from_skey(&skey).expect("cosigner");
        let body = CheckpointBody::parse(note_body(&cp.note).as_bytes()).expect("body");
        let line = cosigner
            .cosign(&body, 1_700_000_000)
            .expect("cosign")
            .to_line();
        let cmd = Command::WitnessCosign {
            size: cp.size,
            verifier_key: vkey,
            line,
        };
        assert_refused(peer.forward(raft_message(&cmd)).await);
    }
    let after = ledger
        .get_checkpoint(proto::GetCheckpointRequest {
            size: cp.size,
            linearizable: false,
        })
        .await
        .expect("checkpoint")
        .into_inner()
        .checkpoint
        .unwrap();
    let lines = after
        .note
        .lines()
        .filter(|l| l.starts_with('\u{2014}'))
        .count();
    assert!(
        lines <= 3,
        "only the voters' lines: {lines}\n{}",
        after.note
    );
    ironlog::ledger::checkpoint::open_note(after.note.as_bytes(), &vkeys).expect("still verifies");
    for id in 1..=3 {
        c.stop(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_appends_through_forward_are_refused_at_apply() {
    let mut c = Cluster::start(3).await;
    seed(&c, 5).await;
    let leader = c.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    // A real peer (a compromised follower) forwards what Append would refuse.
    let ca = c.pki.ca_pem();
    let as_follower = c.pki.node_client(follower);
    let mut peer = peer_client(&c, leader, &ca, &as_follower)
        .await
        .expect("node TLS");
    let mut bad = ironlog::ledger::event::Event {
        time_unix_nanos: -5,
        actor: ironlog::ledger::event::Actor {
            id: "mallory\0\nroot".into(),
            ..Default::default()
        },
        action: String::new(),
        resource: String::new(),
        outcome: ironlog::ledger::event::Outcome::Success,
        source: "payments-api".into(),
        details: Default::default(),
        idempotency_key: None,
    };
    let before = size_and_root(&c, leader).await;
    let cmd = Command::Append {
        events: vec![bad.clone()].into(),
        commit_time_unix_nanos: 0,
    };
    assert_refused(peer.forward(raft_message(&cmd)).await);
    // What only the leader proposes, and other nodes' refusal records, are
    // not accepted from a forwarding node at all.
    let e = peer
        .forward(raft_message(&Command::SetWitnesses {
            verifier_keys: vec![],
        }))
        .await
        .expect_err("the witness set is the leader's");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let mut as_other_node = event("x", 1).clone();
    as_other_node.source = format!("ironlog/node-{leader}");
    let forged_record = ironlog::ledger::event::Event {
        time_unix_nanos: 1_700_000_000_000_000_000,
        actor: ironlog::ledger::event::Actor {
            id: "anonymous".into(),
            ..Default::default()
        },
        action: "ironlog.request.refused".into(),
        resource: "ironlog.v1.Admin/AddLearner".into(),
        outcome: ironlog::ledger::event::Outcome::Denied,
        source: as_other_node.source.clone(),
        details: Default::default(),
        idempotency_key: None,
    };
    let e = peer
        .forward(raft_message(&Command::Append {
            events: vec![forged_record.clone()].into(),
            commit_time_unix_nanos: 0,
        }))
        .await
        .expect_err("another node's refusal records");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // An oversized field, also refused.
    bad.time_unix_nanos = 1_700_000_000_000_000_000;
    bad.actor.id = "a".repeat(ironlog::limits::FIELD_BYTES_MAX + 1);
    bad.action = "db.read".into();
    bad.resource = "r".into();
    let cmd = Command::Append {
        events: vec![bad].into(),
        commit_time_unix_nanos: 0,
    };
    assert_refused(peer.forward(raft_message(&cmd)).await);
    // The stream takes the same commands and refuses them alike.
    let forged = Command::Append {
        events: vec![forged_record].into(),
        commit_time_unix_nanos: 0,
    };
    let set_witnesses = Command::SetWitnesses {
        verifier_keys: vec![],
    };
    let answers = over_stream(&mut peer, &[cmd, set_witnesses, forged])
        .await
        .expect("a member's stream opens");
    match answers[0].as_slice() {
        [Outcome::Done(resp)] => assert!(resp.refusal().is_some(), "not refused: {resp:?}"),
        other => panic!("expected a refusal at apply, got {other:?}"),
    }
    for (what, answer) in [
        ("the witness set", &answers[1]),
        ("a refusal record", &answers[2]),
    ] {
        match answer.as_slice() {
            [Outcome::Failed { code, .. }] => {
                assert_eq!(Code::from(*code), Code::PermissionDenied, "{what}")
            }
            other => panic!("{what} was not refused: {other:?}"),
        }
    }
    // Each refusal is on the record (as a leaf written by the leader), and
    // nothing else was added on any node.
    let details = refusal_recorded(&c, "ironlog.v1.Raft/Forward", None).await;
    assert!(details["reason"].as_str().is_some(), "{details}");
    // Seven refusals were recorded one by one, and the later ones may still
    // be on their way into the log: compare the nodes once it is quiet.
    let size = settled_size(&c, leader).await;
    c.wait_size(size).await;
    for id in 1..=3 {
        only_refusals_since(&c, id, &before).await;
    }
    for id in 1..=3 {
        c.stop(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_from_non_peers_and_crafted_headers_are_refused_before_writing() {
    let mut c = Cluster::start(3).await;
    seed(&c, 5).await;
    let leader = c.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let before = size_and_root(&c, follower).await;
    let ca = c.pki.ca_pem();
    let header = |vote: Vote, last_term: u64| {
        let meta = openraft::alias::SnapshotMetaOf::<TypeConfig> {
            last_log_id: Some(openraft::alias::LogIdOf::<TypeConfig>::new(
                openraft::vote::RaftLeaderId::new(last_term, leader),
                1_000_000,
            )),
            last_membership: Default::default(),
        };
        serde_json::to_vec(&ironlog::raft::network::SnapshotHeader { vote, meta }).unwrap()
    };
    let send = |client: &mut RaftClient<tonic::transport::Channel>, header: Vec<u8>| {
        let chunks = vec![
            proto::SnapshotChunk {
                header,
                data: vec![0u8; 1024],
            },
            proto::SnapshotChunk {
                header: Vec::new(),
                data: Vec::new(),
            },
        ];
        let mut client = client.clone();
        async move { client.install_snapshot(futures::stream::iter(chunks)).await }
    };
    // From a client certificate.
    let mut as_client = peer_client(&c, follower, &ca, &c.operator)
        .await
        .expect("TLS");
    let e = send(&mut as_client, header(Vote::new_committed(99, leader), 1))
        .await
        .expect_err("non-peer snapshot");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // From the leader's certificate but with a header openraft would assert on.
    let as_leader = c.pki.node_client(leader);
    let mut peer = peer_client(&c, follower, &ca, &as_leader)
        .await
        .expect("TLS");
    let e = send(&mut peer, header(Vote::new_committed(1, leader), 50))
        .await
        .expect_err("crafted header");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    // The follower is alive, unchanged, and leaves no temp file behind.
    tokio::time::sleep(Duration::from_millis(300)).await;
    only_refusals_since(&c, follower, &before).await;
    let leftovers: Vec<_> = std::fs::read_dir(c.data_dir(follower).join("snapshots"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !leftovers
            .iter()
            .any(|n| n.to_string_lossy().starts_with("incoming-")),
        "{leftovers:?}"
    );
    seed_more(&c, 5, 3).await;
    refusal_recorded(&c, "ironlog.v1.Raft/InstallSnapshot", Some("operator")).await;
    for id in 1..=3 {
        c.stop(id).await;
    }
}

/// Appends `n` more events after `seeded`, proving the cluster still commits.
async fn seed_more(c: &Cluster, seeded: u64, n: u64) {
    let leader = c.leader().await;
    c.ledger(leader)
        .await
        .append(proto::AppendRequest {
            events: (seeded..seeded + n).map(|i| event("later", i)).collect(),
            wait_checkpoint: false,
        })
        .await
        .expect("the cluster still commits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_source_is_refused_and_recorded() {
    let mut c = Cluster::start(3).await;
    seed(&c, 3).await;
    let leader = c.leader().await;
    let before = size_and_root(&c, leader).await;
    let mut payments = c.ledger_as(leader, PAYMENTS_TOKEN).await;
    let mut forged = event("mallory", 100);
    forged.source = "billing-api".into();
    let e = payments
        .append(proto::AppendRequest {
            events: vec![event("alice", 101), forged],
            wait_checkpoint: false,
        })
        .await
        .expect_err("another service's source");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("billing-api"), "{}", e.message());
    let mut node_source = event("mallory", 102);
    node_source.source = "ironlog/node-1".into();
    let e = c
        .ledger(leader)
        .await
        .append(proto::AppendRequest {
            events: vec![node_source],
            wait_checkpoint: false,
        })
        .await
        .expect_err("even the operator may not write as a node");
    assert_eq!(e.code(), Code::PermissionDenied);
    // Its own source is fine.
    payments
        .append(proto::AppendRequest {
            events: vec![event("alice", 103)],
            wait_checkpoint: false,
        })
        .await
        .expect("own source");
    let details = refusal_recorded(&c, "ironlog.v1.Ledger/Append", Some("payments")).await;
    assert!(details["reason"].as_str().unwrap().contains("billing-api"));
    let entries = c
        .ledger(leader)
        .await
        .get_entries(proto::GetEntriesRequest {
            start: before.0,
            end: before.0 + 100,
            linearizable: true,
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(entries.iter().all(|e| {
        let ev = e.event.as_ref().unwrap();
        ev.source != "billing-api" && ev.actor.as_ref().unwrap().id != "mallory"
    }));
    for id in 1..=3 {
        c.stop(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_certificate_of_another_ca_cannot_join() {
    let mut c = Cluster::start(3).await;
    seed(&c, 3).await;
    let leader = c.leader().await;
    let other_dir = tempfile::tempdir().unwrap();
    let other = Pki::new(other_dir.path(), "other");
    let (id, vkey) = c.start_extra_with(other.node(4)).await;
    let before = c.status(leader).await.unwrap();
    let e = c
        .admin(leader)
        .await
        .add_learner(c.add_learner_request(id, &vkey))
        .await
        .expect_err("another CA's node");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let after = c.status(leader).await.unwrap();
    assert_eq!(after.members.len(), before.members.len());
    assert!(!after.members.iter().any(|m| m.id == id));
    let details = refusal_recorded(&c, "ironlog.v1.Admin/AddLearner", Some("operator")).await;
    assert!(
        details["reason"]
            .as_str()
            .unwrap_or("")
            .contains("not reachable as a peer"),
        "{details}"
    );
    for id in 1..=4 {
        c.stop(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_is_told_to_retry_while_others_append() {
    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    let mut slow = c.ledger_as(leader, SLOW_TOKEN).await;
    let mut payments = c.ledger_as(leader, PAYMENTS_TOKEN).await;
    let mut exhausted = None;
    let mut n = 0;
    for i in 0..20 {
        let mut e = event("batch", 500 + i);
        e.source = "slow-svc".into();
        match slow
            .append(proto::AppendRequest {
                events: vec![e],
                wait_checkpoint: false,
            })
            .await
        {
            Ok(_) => {}
            Err(s) => {
                exhausted = Some(s);
                break;
            }
        }
        // The other client is unaffected, every time.
        payments
            .append(proto::AppendRequest {
                events: vec![event("alice", 600 + i)],
                wait_checkpoint: false,
            })
            .await
            .expect("another identity keeps appending");
        n += 1;
    }
    let e = exhausted.expect("2 requests/s is exceeded by 20 back to back");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.metadata().get("retry-after-ms").is_some());
    assert!(n < 20);
    refusal_recorded(&c, "ironlog.v1.Ledger/Append", Some("slow")).await;
    for id in 1..=3 {
        c.stop(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_holds_its_in_flight_slot_until_it_ends() {
    let mut c = Cluster::start(3).await;
    seed(&c, 3).await;
    let leader = c.leader().await;
    let mut reader = c.ledger_as(leader, ONE_AT_A_TIME_TOKEN).await;
    let read = proto::GetEntriesRequest {
        start: 0,
        end: 1,
        linearizable: false,
    };
    reader
        .get_entries(read)
        .await
        .expect("one call at a time is fine");
    // The finished call's slot is given back when its response is done
    // with, which a loaded machine may not have got to yet.
    let mut opened = None;
    for _ in 0..50 {
        match reader.tail(proto::TailRequest { start: 0 }).await {
            Ok(tail) => {
                opened = Some(tail.into_inner());
                break;
            }
            Err(e) if e.code() == Code::ResourceExhausted => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("a tail opens: {e:?}"),
        }
    }
    let tail = opened.expect("a tail opens once the finished call's slot is back");
    let e = reader
        .get_entries(read)
        .await
        .expect_err("the open tail holds the only slot");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("in flight"), "{}", e.message());
    drop(tail);
    let mut freed = false;
    for _ in 0..50 {
        if reader.get_entries(read).await.is_ok() {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "closing the tail frees the slot");
    for id in 1..=3 {
        c.stop(id).await;
    }
}
