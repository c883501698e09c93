//! Everything openraft: the type configuration, the log store, the state
//! machine adapter over [`crate::storage::ledger_store`], the tonic network,
//! the internal Raft gRPC service, and the `handover` of leadership by a
//! node low on disk. No other module names an openraft type: they read
//! this node's state through [`view`].
//!
//! # What goes through the log
//! [`Command::Append`] batches (one Raft entry each, applied atomically;
//! concurrent ones travel together as one [`Command::AppendGroup`] entry,
//! each still applied and refused alone),
//! [`Command::Checkpoint`] (cut a checkpoint at the current tree size, so every
//! replica cuts the same one), [`Command::Cosign`] (a voter's signature over
//! such a checkpoint, so every replica stores every signature),
//! [`Command::WitnessCosign`] (a witness's cosignature the leader obtained,
//! re-verified by every replica) and [`Command::SetWitnesses`] (the witness
//! keys cosignatures are accepted from, so every replica checks the same).
//! Every command is validated where it is applied (`state_machine`); a
//! refused one changes nothing and answers
//! [`OpResult::Refused`](crate::storage::ledger_store::OpResult::Refused).
//!
//! # Layout
//! - `mod.rs`: the type configuration, [`Command`] and its answers, and
//!   starting, initialising and changing the membership of a Raft.
//! - `log_store.rs`: the Raft log and vote, with its in-memory tail.
//! - `wal.rs`: their segment files on disk (the `raft-log` crate).
//! - `state_machine.rs`: commands applied to the ledger store, snapshots
//!   built, sent and installed.
//! - `network.rs`: the tonic client side: channels to peers, messages and
//!   streamed snapshots.
//! - `service.rs`: the peer gRPC service, and [`PeerError`] for what it
//!   refuses.
//! - `proposer.rs`: proposals from any node, forwarded to the leader.
//! - `forward_link.rs`: a follower's stream of forwarded commands to the
//!   leader.
//! - `intake.rs`: the leader's checks of forwarded commands, which then
//!   join its group commit.
//! - `group_commit.rs`: concurrent appends proposed as one entry.
//! - `log_keeper.rs`: the Raft log kept bounded in bytes (snapshots and
//!   purges of what lies below its in-memory tail).
//! - `handover.rs`: a leader low on disk hands leadership over.
//! - `view.rs`: this node's state in plain types for other layers.
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ledger::event::Event;
pub use crate::storage::ledger_store::Batch;

mod forward_link;
pub(crate) mod group_commit;
pub(crate) mod handover;
mod intake;
pub(crate) mod log_keeper;
pub(crate) mod log_store;
mod logged_command;
pub mod network;
pub(crate) mod proposer;
pub(crate) mod service;
pub(crate) mod state_machine;
pub(crate) mod view;
mod wal;

pub use intake::Outcome;
pub use log_store::{DurableEnd, LogStore};
pub use logged_command::LoggedCommand;
pub use network::Network;
pub use proposer::{ProposeError, Proposer};
pub use service::PeerError;
pub use state_machine::StateMachine;
pub use view::{view, Member, NodeView};

/// A node's id: non-zero, unique in the cluster.
pub type NodeId = u64;

/// What the cluster knows about one member: where to reach it and the key its
/// checkpoint signatures verify with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// `host:port` of the node's peer listener (Raft, Forward).
    pub addr: String,
    /// `host:port` of its client listener, for clients and forwarded
    /// reads; empty when unknown.
    #[serde(default)]
    pub client_addr: String,
    /// signed-note verifier key (`name+id+key`); empty for learners that do not sign.
    pub verifier_key: String,
}

impl fmt::Display for PeerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)
    }
}

/// A command proposed through Raft.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Append events; `commit_time_unix_nanos` is stamped by the leader.
    Append {
        events: Batch,
        commit_time_unix_nanos: i64,
    },
    /// Several clients' batches proposed as one entry by group commit
    /// ([`group_commit`]); each is applied, and may be refused, alone.
    AppendGroup {
        batches: Vec<Batch>,
        commit_time_unix_nanos: i64,
    },
    /// Cut a checkpoint at the tree size this command is applied at.
    Checkpoint,
    /// `node_id`'s signature line over the checkpoint at `size`.
    Cosign {
        node_id: NodeId,
        size: u64,
        line: String,
    },
    /// A witness's `cosignature/v1` line over the checkpoint at `size`, with
    /// the witness key it verifies with. Stored apart from voter signatures.
    WitnessCosign {
        size: u64,
        verifier_key: String,
        line: String,
    },
    /// Replace the set of witness `cosignature/v1` verifier keys that
    /// `WitnessCosign` is accepted from. The leader proposes it when its
    /// configured witnesses differ from the replicated set.
    SetWitnesses { verifier_keys: Vec<String> },
}

impl Command {
    /// The events an append or a group of appends carries; none for other
    /// commands.
    pub fn appended_events(&self) -> impl Iterator<Item = &Event> {
        let batches: Vec<&Vec<Event>> = match self {
            Command::Append { events, .. } => vec![&**events],
            Command::AppendGroup { batches, .. } => batches.iter().map(|b| &**b).collect(),
            _ => Vec::new(),
        };
        batches.into_iter().flatten()
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Append { events, .. } => write!(f, "append({} events)", events.len()),
            Command::AppendGroup { batches, .. } => write!(
                f,
                "append-group({} batches, {} events)",
                batches.len(),
                batches.iter().map(|b| b.len()).sum::<usize>()
            ),
            Command::Checkpoint => write!(f, "checkpoint"),
            Command::Cosign { node_id, size, .. } => {
                write!(f, "cosign(node {node_id}, size {size})")
            }
            Command::WitnessCosign { size, .. } => write!(f, "witness-cosign(size {size})"),
            Command::SetWitnesses { verifier_keys } => {
                write!(f, "set-witnesses({} keys)", verifier_keys.len())
            }
        }
    }
}

/// What applying a command produced: the store's own result type, so the
/// state machine hands it back unchanged.
pub type CommandResponse = crate::storage::ledger_store::OpResult;

openraft::declare_raft_types!(
    /// Ironlog's openraft type configuration.
    pub TypeConfig:
        D = LoggedCommand,
        R = CommandResponse,
        NodeId = NodeId,
        Node = PeerInfo,
);

/// The Raft handle of a node.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// Starts node `id`'s Raft core over its log store and state machine, with
/// the timing and compaction of `tuning`.
pub async fn start(
    id: NodeId,
    cluster_name: &str,
    tuning: &crate::config::RaftTuning,
    network: Network,
    log_store: LogStore,
    state_machine: StateMachine,
) -> Result<Raft, String> {
    let config = openraft::Config {
        cluster_name: cluster_name.to_string(),
        heartbeat_interval: tuning.heartbeat_ms,
        election_timeout_min: tuning.election_timeout_min_ms,
        election_timeout_max: tuning.election_timeout_max_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(tuning.snapshot_logs_since_last),
        max_in_snapshot_log_to_keep: tuning.max_in_snapshot_log_to_keep,
        enable_pre_vote: Some(true),
        // A follower whose data directory was lost answers the leader's
        // appends with a conflict below what it had acknowledged. Without
        // this the leader discards that conflict as stale and re-sends the
        // same append forever (thousands of streams a second, the wiped node
        // never restored); with it, the leader resets its progress for that
        // follower and restores it by snapshot.
        allow_log_reversion: Some(true),
        // A leader that restarts must win an election in a new term before
        // it leads again; openraft's default lets it resume in its old term.
        // Replication reads entries from the in-memory tail before the
        // leader's own log has made them durable, so a leader killed then
        // can come back with a shorter log than its followers hold, resume
        // in the same term and assign the same log ids to different
        // entries. Followers compare log ids only, keep their old entries,
        // and the replicas' trees fork at that index (the chaos harness
        // found this: checkpoints a quorum signed that the final tree
        // contradicted). In a new term, the election restriction keeps the
        // entries a majority holds, and the lost ones are re-sent.
        enable_leader_restore: Some(false),
        ..Default::default()
    };
    let config = config.validate().map_err(|e| e.to_string())?;
    Raft::new(
        id,
        std::sync::Arc::new(config),
        network,
        log_store,
        state_machine,
    )
    .await
    .map_err(|e| e.to_string())
}

/// Initialises the cluster with `members` as its voters; a cluster already
/// initialised is not an error (it is said in the log).
pub async fn initialize(
    raft: &Raft,
    members: std::collections::BTreeMap<NodeId, PeerInfo>,
) -> Result<(), String> {
    match raft.initialize(members).await {
        Ok(()) => Ok(()),
        Err(openraft::error::RaftError::APIError(e)) => {
            tracing::info!(error = %e, "cluster already initialised");
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Confirms with a quorum that this node leads and has applied everything
/// committed before the call (ReadIndex): the basis of a linearizable read.
pub async fn ensure_linearizable(raft: &Raft) -> Result<(), String> {
    raft.ensure_linearizable(openraft::ReadPolicy::ReadIndex)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Why a membership change was not made.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// Membership changes run on the leader; this node is not it.
    #[error("membership changes run on the leader: {}", match leader {
        Some((id, addr)) => format!("node {id} at {addr}"),
        None => "no leader is known yet".to_string(),
    })]
    NotLeader { leader: Option<(NodeId, String)> },
    /// The change itself is not allowed (a learner missing, a change in
    /// progress): retrying the same request will not help.
    #[error("{0}")]
    Refused(String),
    /// Raft is stopping or stopped.
    #[error("raft is unavailable: {0}")]
    Unavailable(String),
}

impl From<types::WriteError> for MembershipError {
    fn from(e: types::WriteError) -> Self {
        use openraft::error::{ClientWriteError, RaftError};
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                MembershipError::NotLeader {
                    leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
                }
            }
            RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
                MembershipError::Refused(c.to_string())
            }
            other => MembershipError::Unavailable(other.to_string()),
        }
    }
}

/// Adds node `id` as a learner and waits until it has caught up.
pub async fn add_learner(raft: &Raft, id: NodeId, node: PeerInfo) -> Result<(), MembershipError> {
    raft.add_learner(id, node, true).await?;
    Ok(())
}

/// Makes `voters` the voters; removed voters stay as learners if `retain`.
pub async fn change_membership(
    raft: &Raft,
    voters: std::collections::BTreeSet<NodeId>,
    retain: bool,
) -> Result<(), MembershipError> {
    raft.change_membership(voters, retain).await?;
    Ok(())
}

/// A node's Raft role, as the Status call names it.
fn role_name(m: &types::Metrics) -> &'static str {
    match m.state {
        openraft::ServerState::Leader => "leader",
        openraft::ServerState::Follower => "follower",
        openraft::ServerState::Candidate => "candidate",
        openraft::ServerState::Learner => "learner",
        openraft::ServerState::Shutdown => "shutdown",
    }
}

/// A majority of the current voters ([`crate::ledger::policy::majority`]):
/// the signatures a checkpoint needs before it is served as the latest.
pub fn voter_quorum(raft: &Raft) -> usize {
    use openraft::async_runtime::watch::WatchReceiver;
    let voters = raft
        .metrics()
        .borrow_watched()
        .membership_config
        .membership()
        .voter_ids()
        .count();
    crate::ledger::policy::majority(voters)
}

/// A snapshot of the node's Raft metrics.
pub fn metrics(raft: &Raft) -> types::Metrics {
    use openraft::async_runtime::watch::WatchReceiver;
    raft.metrics().borrow_watched().clone()
}

/// How often [`stopped`] looks at the Raft core's state: a node whose core
/// failed exits at most this much later.
pub const STOPPED_POLL_MS: u64 = 100;

/// Waits until the Raft core stops and says why: the fatal error openraft
/// reported (a storage I/O error, a panic), or that it stopped as asked.
/// openraft reports the error in the metrics before it drops their sender;
/// a core that ended without reporting one (its task panicked) is said so.
pub async fn stopped(raft: &Raft) -> String {
    use futures::FutureExt;
    use openraft::async_runtime::watch::WatchReceiver;
    // Looked at on a timer, not on every change: the metrics change several
    // times per appended entry (log, commit, apply), and waiting on them
    // woke the thread that awaits this (the main thread, a thread of its
    // own) each time, about six futex wake-ups per append on the leader.
    let mut tick = tokio::time::interval(Duration::from_millis(STOPPED_POLL_MS));
    let mut metrics = raft.metrics();
    loop {
        tick.tick().await;
        if let Err(fatal) = &metrics.borrow_watched().running_state {
            return fatal.to_string();
        }
        // Closed: the core is gone. Its last word may have come with it.
        if let Some(Err(_)) = metrics.changed().now_or_never() {
            return match &metrics.borrow_watched().running_state {
                Err(fatal) => fatal.to_string(),
                Ok(()) => "the raft core ended without reporting why (panicked)".to_string(),
            };
        }
    }
}

/// The openraft types this module names often (metrics, errors); other
/// layers see [`view`] instead.
pub(crate) mod types {
    pub use openraft::error::{ClientWriteError, RaftError};
    pub use openraft::RaftMetrics;
    pub type Metrics = RaftMetrics<super::TypeConfig>;
    pub type WriteError = RaftError<super::TypeConfig, ClientWriteError<super::TypeConfig>>;
    pub type ServerMetricsWatch = openraft::type_config::alias::WatchReceiverOf<
        super::TypeConfig,
        openraft::metrics::RaftServerMetrics<super::TypeConfig>,
    >;
}
