//! Initialising a cluster on its bootstrap node's first start, and never
//! a second time.
use std::collections::BTreeMap;
use std::time::Duration;

use super::NodeError;
use crate::config::Config;
use crate::proto;
use crate::raft::{Network, PeerInfo, Raft};

/// How long bootstrap waits for each peer's status. A peer that does not
/// answer in time counts as not initialised: on a cluster's first start the
/// peers may not be serving yet (a refused connection fails at once). Long
/// enough for a TCP connect, a TLS handshake and one call on a busy machine:
/// a wiped bootstrap node that misses its peers' answer would initialise a
/// second cluster.
const BOOTSTRAP_PROBE_MS: u64 = 3000;

/// A peer that already belongs to an initialised cluster (it has seen a
/// term), if any answers. Asked on its client listener, as a node.
async fn initialised_peer(config: &Config, network: &Network) -> Option<u64> {
    let limit = Duration::from_millis(BOOTSTRAP_PROBE_MS);
    let probes = config
        .peers
        .iter()
        .filter(|p| p.id != config.id)
        .filter_map(|p| Some((p.id, p.client_addr.clone()?)))
        .map(|(id, addr)| async move {
            let channel = network.channel(id, &addr).ok()?;
            let status = tokio::time::timeout(
                limit,
                proto::admin_client::AdminClient::new(channel)
                    .status(proto::StatusRequest::default()),
            )
            .await
            .ok()?
            .ok()?;
            (status.get_ref().term > 0).then_some(id)
        });
    futures::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .next()
}

/// Initialises the cluster on a fresh log; on any later start it is a no-op.
/// A bootstrap node whose data directory was lost also has a fresh log: if
/// a peer already belongs to a cluster it must not initialise a second one
/// (a new membership entry and an election at term 1); it starts empty and
/// the leader restores it by snapshot, like any wiped node.
pub(super) async fn bootstrap(
    raft: &Raft,
    config: &Config,
    network: &Network,
) -> Result<(), NodeError> {
    if raft
        .is_initialized()
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?
    {
        return Ok(());
    }
    if let Some(peer) = initialised_peer(config, network).await {
        tracing::warn!(
            peer,
            "bootstrap = true, but peer {peer} already belongs to an initialised cluster: \
             not initialising; this node waits for the leader to restore its log"
        );
        return Ok(());
    }
    let members: BTreeMap<u64, PeerInfo> = config
        .peers
        .iter()
        .map(|p| {
            (
                p.id,
                PeerInfo {
                    addr: p.addr.clone(),
                    client_addr: p.client_addr.clone().unwrap_or_default(),
                    verifier_key: p.verifier_key.clone(),
                },
            )
        })
        .collect();
    crate::raft::initialize(raft, members)
        .await
        .map_err(NodeError::Raft)
}
