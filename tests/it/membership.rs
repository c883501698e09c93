//! Membership through the Admin API: a node joins as a learner, catches up,
//! is promoted to voter, and then cosigns checkpoints.
use crate::common;

use common::{event, wait_checkpoint, Cluster};
use ironlog::proto;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joins_catches_up_and_is_promoted_to_cosigning_voter() {
    let mut c = Cluster::start(1).await;
    c.leader().await;
    let mut ledger = c.ledger(1).await;
    ledger
        .append(proto::AppendRequest {
            events: (0..30).map(|i| event("dave", i)).collect(),
            wait_checkpoint: false,
        })
        .await
        .unwrap();

    let (id, vkey) = c.start_extra().await;
    let mut admin = c.admin(1).await;
    let bad = admin
        .add_learner(proto::AddLearnerRequest {
            id: 0,
            addr: "x".into(),
            verifier_key: String::new(),
            client_addr: String::new(),
        })
        .await
        .expect_err("id 0 is refused");
    assert_eq!(bad.code(), Code::InvalidArgument);
    let members = admin
        .add_learner(c.add_learner_request(id, &vkey))
        .await
        .expect("learner added")
        .into_inner()
        .members;
    assert!(members.iter().any(|m| m.id == id && !m.voter));
    c.wait_size(30).await;
    assert_eq!(c.status(id).await.unwrap().role, "learner");

    let empty = admin
        .change_membership(proto::ChangeMembershipRequest {
            voters: vec![],
            retain: false,
        })
        .await
        .expect_err("no voters is refused");
    assert_eq!(empty.code(), Code::InvalidArgument);
    let members = admin
        .change_membership(proto::ChangeMembershipRequest {
            voters: vec![1, id],
            retain: false,
        })
        .await
        .expect("promoted")
        .into_inner()
        .members;
    assert!(members.iter().filter(|m| m.voter).count() == 2);

    // New entries get a checkpoint that both voters sign.
    ledger
        .append(proto::AppendRequest {
            events: (30..40).map(|i| event("dave", i)).collect(),
            wait_checkpoint: false,
        })
        .await
        .unwrap();
    c.wait_size(40).await;
    let signed = wait_checkpoint(&mut ledger, &c.vkeys, |size, signers| {
        size == 40 && signers == 2
    })
    .await
    .map_or(0, |_| 2);
    assert_eq!(signed, 2, "both voters cosign the checkpoint of size 40");
    c.stop(id).await;
    c.stop(1).await;
}
