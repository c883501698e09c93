//! What other layers may know of this node's Raft state, in plain types:
//! its role, term, leader, indices and the membership. They read this
//! rather than openraft's metrics, so no openraft type leaves `raft`.
use super::{NodeId, PeerInfo, Raft};

/// One member of the cluster as this node knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    /// A voter (counts for the quorum, signs checkpoints) or a learner.
    pub voter: bool,
    pub peer: PeerInfo,
}

/// This node's Raft state at one moment.
#[derive(Clone, Debug)]
pub struct NodeView {
    pub id: NodeId,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub role: &'static str,
    pub term: u64,
    pub leader: Option<NodeId>,
    /// The highest index this node knows the cluster committed; 0 before any.
    pub commit_index: u64,
    /// The highest index this node applied; 0 before any.
    pub applied_index: u64,
    /// Members in id order.
    pub members: Vec<Member>,
}

impl NodeView {
    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.member(id).is_some_and(|m| m.voter)
    }

    /// The leader, when one is known and this node has its details.
    pub fn leader_member(&self) -> Option<&Member> {
        self.leader.and_then(|id| self.member(id))
    }
}

/// This node's Raft state now.
pub fn view(raft: &Raft) -> NodeView {
    let m = super::metrics(raft);
    let membership = m.membership_config.membership();
    let members = membership
        .nodes()
        .map(|(id, peer)| Member {
            id: *id,
            voter: membership.voter_ids().any(|v| v == *id),
            peer: peer.clone(),
        })
        .collect();
    NodeView {
        id: m.id,
        role: super::role_name(&m),
        term: m.current_term,
        leader: m.current_leader,
        commit_index: m.cluster_committed.as_ref().map_or(0, |l| l.index),
        applied_index: m.last_applied.as_ref().map_or(0, |l| l.index),
        members,
    }
}

/// Wakes when this node's role, term, leader or membership changes, and
/// not on every entry as the full metrics do.
pub struct RoleChanges(crate::raft::types::ServerMetricsWatch);

impl RoleChanges {
    pub fn new(raft: &Raft) -> Self {
        Self(raft.server_metrics())
    }

    /// Resolves at the next change; `false` once the Raft core is gone.
    pub async fn changed(&mut self) -> bool {
        use openraft::async_runtime::watch::WatchReceiver;
        self.0.changed().await.is_ok()
    }
}
