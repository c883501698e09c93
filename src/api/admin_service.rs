//! `ironlog.v1.Admin`: node status and membership changes.
use std::collections::BTreeSet;

use tonic::{Request, Response, Status};

use super::error::ApiError;
use crate::proto::admin_server::Admin;
use crate::proto::{self as pb};
use crate::raft::{Network, NodeView, PeerInfo, Raft};

pub struct AdminApi {
    raft: Raft,
    store: super::StoreSlot,
    /// Dials a joining node as its peers will, to check its certificate.
    network: Network,
    /// Where a refused join is recorded.
    refusals: crate::auth::RefusalLog,
}

impl AdminApi {
    pub fn new(
        raft: Raft,
        store: super::StoreSlot,
        network: Network,
        refusals: crate::auth::RefusalLog,
    ) -> Self {
        Self {
            raft,
            store,
            network,
            refusals,
        }
    }
}

/// How long AddLearner waits for the joining node's TLS handshake, ms.
const JOIN_PROBE_MS: u64 = 3_000;

fn members(v: &NodeView) -> Vec<pb::Member> {
    v.members
        .iter()
        .map(|m| pb::Member {
            id: m.id,
            addr: m.peer.addr.clone(),
            voter: m.voter,
            verifier_key: m.peer.verifier_key.clone(),
            client_addr: m.peer.client_addr.clone(),
        })
        .collect()
}

#[tonic::async_trait]
impl Admin for AdminApi {
    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let v = crate::raft::view(&self.raft);
        let store = self.store.get()?;
        let origin = store.origin().to_string();
        let (size, root, checkpoint_size) = tokio::task::spawn_blocking(move || {
            let size = store.tree_size()?;
            let root = store.root(size)?;
            let cp = store.checkpoint_sizes(1)?.first().copied().unwrap_or(0);
            Ok::<_, crate::storage::ledger_store::StoreError>((size, root, cp))
        })
        .await
        .map_err(ApiError::from)??;
        Ok(Response::new(pb::StatusResponse {
            node_id: v.id,
            role: v.role.to_string(),
            term: v.term,
            leader_id: v.leader.unwrap_or(0),
            leader_addr: v
                .leader_member()
                .map(|m| m.peer.addr.clone())
                .unwrap_or_default(),
            commit_index: v.commit_index,
            applied_index: v.applied_index,
            tree_size: size,
            root_hash: root.to_vec(),
            members: members(&v),
            origin,
            checkpoint_size,
        }))
    }

    async fn add_learner(
        &self,
        req: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let caller = crate::auth::caller_of(&req)?.clone();
        let req = req.into_inner();
        if req.id == 0 {
            return Err(ApiError::NodeIdZero.into());
        }
        if req.addr.parse::<std::net::SocketAddr>().is_err() && !req.addr.contains(':') {
            return Err(ApiError::NotHostPort {
                field: "address",
                addr: req.addr,
            }
            .into());
        }
        for (field, addr) in [("addr", &req.addr), ("client_addr", &req.client_addr)] {
            if addr
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/')
            {
                return Err(ApiError::NotHostPort {
                    field,
                    addr: addr.clone(),
                }
                .into());
            }
        }
        let key = req.verifier_key.trim();
        if !key.is_empty() {
            crate::ledger::checkpoint::parse_verifier(key)
                .map_err(|e| ApiError::BadVerifierKey(e.to_string()))?;
            let taken = crate::raft::view(&self.raft)
                .members
                .iter()
                .find(|m| m.id != req.id && m.peer.verifier_key.trim() == key)
                .map(|m| m.id);
            if let Some(owner) = taken {
                return Err(ApiError::VerifierKeyTaken { owner }.into());
            }
        }
        // The leader must be able to reach the node as a peer of this
        // cluster before it enters the membership: a certificate of another
        // CA (or naming another node) fails here, not in replication.
        self.network
            .probe(
                req.id,
                &req.addr,
                std::time::Duration::from_millis(JOIN_PROBE_MS),
            )
            .await
            .map_err(|e| {
                let refused = ApiError::PeerUnreachable {
                    id: req.id,
                    addr: req.addr.clone(),
                    reason: e.to_string(),
                };
                self.refusals
                    .refuse(&caller, "ironlog.v1.Admin/AddLearner", refused.into())
            })?;
        let node = PeerInfo {
            addr: req.addr,
            client_addr: req.client_addr,
            verifier_key: req.verifier_key,
        };
        crate::raft::add_learner(&self.raft, req.id, node).await?;
        Ok(Response::new(pb::MembershipResponse {
            members: members(&crate::raft::view(&self.raft)),
        }))
    }

    async fn change_membership(
        &self,
        req: Request<pb::ChangeMembershipRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let req = req.into_inner();
        if req.voters.is_empty() {
            return Err(ApiError::NoVoters.into());
        }
        let voters: BTreeSet<u64> = req.voters.into_iter().collect();
        crate::raft::change_membership(&self.raft, voters, req.retain).await?;
        Ok(Response::new(pb::MembershipResponse {
            members: members(&crate::raft::view(&self.raft)),
        }))
    }
}
