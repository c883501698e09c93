//! Proposing commands: on the leader through `client_write`, elsewhere by
//! forwarding to the leader's internal `Forward` RPC. The leader stamps the
//! commit time, so every replica stores the same one.
//!
//! Every proposal, whoever makes it (a client's append, an append forwarded
//! to this leader, a checkpoint, a cosignature, a refusal record), first
//! passes the free-space floor ([`crate::disk`]): a node below it proposes
//! nothing and forwards nothing, so nothing is written on its behalf.
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};

use super::forward_link::ForwardLinks;
use super::group_commit::GroupCommit;
use super::intake::per_batch;
use super::network::Network;
use super::Batch;
use super::{Command, CommandResponse, LoggedCommand, NodeId, Raft};
use crate::clock::now_unix_nanos;
use crate::disk::{DiskLow, FreeSpace};
use crate::ledger::batch::validate_events;

/// How long a client's proposal may wait to commit before it is answered
/// UNAVAILABLE: long enough for an election or two, short enough that a
/// cluster without a quorum does not hold requests forever.
pub const COMMIT_TIMEOUT_MS: u64 = 10_000;

/// Why a proposal did not commit. Clone: one group commit's failure is
/// every batch's in it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ProposeError {
    /// This node cannot propose; retry at the leader (UNAVAILABLE).
    #[error("not the leader; {}", match leader {
        Some((id, addr)) => format!("the leader is node {id} at {addr}"),
        None => "no leader is known yet, retry shortly".to_string(),
    })]
    NotLeader { leader: Option<(NodeId, String)> },
    /// The leader refused or failed the forwarded proposal: its status is
    /// passed on as it came.
    #[error("forwarded to the leader: {}", .0.message())]
    Forwarded(tonic::Status),
    /// No channel to the leader could be made (UNAVAILABLE).
    #[error("forwarding to leader {leader}: {reason}")]
    LeaderUnreachable { leader: NodeId, reason: String },
    /// The leader's answer did not decode: a version skew or a bug (INTERNAL).
    #[error("forwarded to the leader: bad forward reply: {0}")]
    BadForwardReply(String),
    /// The leader lost its role after appending the entry: it may or may
    /// not commit under the next leader.
    #[error(
        "the leader changed before this write committed; it may or may not be in the log: retry with the same idempotency keys (a committed batch is answered as a deduplicated retry){}",
        match leader {
            Some((id, addr)) => format!("; the leader is node {id} at {addr}"),
            None => String::new(),
        }
    )]
    CommitUnknown { leader: Option<(NodeId, String)> },
    /// Not committed in time: the cluster may have lost its quorum. The
    /// command may still commit later; retrying with idempotency keys is safe.
    #[error("not committed within {ms} ms; is a majority of voters up?")]
    Timeout { ms: u64 },
    /// This node's Raft is shutting down as asked: retry at another node
    /// (UNAVAILABLE).
    #[error("this node is shutting down; retry at another node")]
    Stopping,
    /// This node's Raft stopped on a storage error or a panic: the node
    /// exits so its supervisor restarts it, and an operator must read its
    /// log (INTERNAL, never confused with "retry at the leader").
    #[error("raft stopped on a fatal error: {0}")]
    Fatal(String),
    /// This node is below its floor of free disk space; nothing was
    /// proposed (RESOURCE_EXHAUSTED to a client of this node).
    #[error(transparent)]
    DiskLow(#[from] DiskLow),
}

/// Where a proposal goes.
enum Route {
    /// This node leads.
    Here,
    /// Another node leads, at this address.
    Leader(NodeId, String),
    /// No leader known (an election): ask the Raft core.
    Unknown,
}

/// Proposes commands for one node.
#[derive(Clone)]
pub struct Proposer {
    raft: Raft,
    network: Network,
    /// The stream of forwarded commands to the current leader.
    links: ForwardLinks,
    /// Checked before every proposal.
    space: FreeSpace,
    /// Where appends go to be proposed in groups; `None` in the proposer
    /// the group task itself uses.
    group: Option<GroupCommit>,
}

/// Sets what only the leader may set: the commit time of appended events.
fn stamp(cmd: &mut Command) {
    if let Command::Append {
        commit_time_unix_nanos,
        ..
    }
    | Command::AppendGroup {
        commit_time_unix_nanos,
        ..
    } = cmd
    {
        *commit_time_unix_nanos = now_unix_nanos();
    }
}

/// Gives up on a proposal after [`COMMIT_TIMEOUT_MS`].
async fn within_timeout<T>(
    proposal: impl std::future::Future<Output = Result<T, ProposeError>>,
) -> Result<T, ProposeError> {
    tokio::time::timeout(Duration::from_millis(COMMIT_TIMEOUT_MS), proposal)
        .await
        .map_err(|_| ProposeError::Timeout {
            ms: COMMIT_TIMEOUT_MS,
        })?
}

impl Proposer {
    /// A proposer whose appends go through group commit; starts the group
    /// task, so it is called inside the runtime.
    pub fn new(raft: Raft, network: Network, space: FreeSpace) -> Self {
        let ungrouped = Self {
            raft,
            links: ForwardLinks::new(network.clone()),
            network,
            space,
            group: None,
        };
        Self {
            group: Some(GroupCommit::start(ungrouped.clone())),
            ..ungrouped
        }
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The node's peer network: channels to other nodes over mutual TLS.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The node's free-space view, which the Raft service also consults.
    pub fn space(&self) -> &FreeSpace {
        &self.space
    }

    /// Proposes here if this node leads, otherwise forwards once to the
    /// leader; gives up after `COMMIT_TIMEOUT_MS`.
    /// Appends go through group commit; a batch that fails validation is
    /// proposed alone, to be refused with its reason where it is applied.
    pub async fn propose(&self, cmd: Command) -> Result<CommandResponse, ProposeError> {
        match (cmd, &self.group) {
            (Command::Append { events, .. }, Some(_)) => match validate_events(&events) {
                Ok(bytes) => self.propose_append(events, bytes).await,
                Err(_) => {
                    let cmd = Command::Append {
                        events,
                        commit_time_unix_nanos: 0,
                    };
                    within_timeout(self.propose_once(cmd)).await
                }
            },
            (cmd, _) => within_timeout(self.propose_once(cmd)).await,
        }
    }

    /// Proposes a batch the caller validated (`bytes` of leaves, as
    /// `validate_events` returned) in the next group commit.
    pub async fn propose_append(
        &self,
        events: Batch,
        bytes: usize,
    ) -> Result<CommandResponse, ProposeError> {
        match &self.group {
            Some(group) => within_timeout(group.submit(events, bytes)).await,
            None => {
                let cmd = Command::Append {
                    events,
                    commit_time_unix_nanos: 0,
                };
                within_timeout(self.propose_once(cmd)).await
            }
        }
    }

    /// Proposes a batch another node forwarded (its checks passed in
    /// [`super::intake`]) in this node's next group, never forwarding it
    /// again: a node that does not lead answers [`ProposeError::NotLeader`].
    /// A batch that fails validation is proposed alone, to be refused with
    /// its reason where it is applied.
    pub(super) async fn propose_forwarded(
        &self,
        events: Batch,
    ) -> Result<CommandResponse, ProposeError> {
        match (validate_events(&events), &self.group) {
            (Ok(bytes), Some(group)) => within_timeout(group.submit_forwarded(events, bytes)).await,
            _ => {
                let cmd = Command::Append {
                    events,
                    commit_time_unix_nanos: 0,
                };
                self.propose_here(cmd).await
            }
        }
    }

    /// [`Proposer::propose_local`] bounded by [`COMMIT_TIMEOUT_MS`]: for a
    /// command another node forwarded, whose answer it waits for.
    pub(super) async fn propose_here(&self, cmd: Command) -> Result<CommandResponse, ProposeError> {
        within_timeout(self.propose_local(cmd)).await
    }

    /// [`ProposeError::NotLeader`], with the leader this node's metrics
    /// name, if any.
    pub(super) fn not_leader(&self) -> ProposeError {
        let leader = match self.route() {
            Route::Leader(id, addr) => Some((id, addr)),
            Route::Here | Route::Unknown => None,
        };
        ProposeError::NotLeader { leader }
    }

    /// Whether this node leads, as its metrics say.
    pub(super) fn leads(&self) -> bool {
        matches!(self.route(), Route::Here)
    }

    /// What the group task proposes with: the batches as one entry (a plain
    /// append when there is one), here if this node leads, else forwarded
    /// once, or only here when `here_only` (some of them were forwarded to
    /// this node). One result per batch. The group's callers bound the
    /// wait, and this bounds it too, so a group never holds its in-flight
    /// slot for good.
    pub(super) async fn propose_group(
        &self,
        mut batches: Vec<Batch>,
        here_only: bool,
    ) -> Vec<Result<CommandResponse, ProposeError>> {
        let n = batches.len();
        let cmd = if n == 1 {
            Command::Append {
                events: batches.pop().expect("one batch"),
                commit_time_unix_nanos: 0,
            }
        } else {
            Command::AppendGroup {
                batches,
                commit_time_unix_nanos: 0,
            }
        };
        match within_timeout(self.propose_routed(cmd, n, here_only)).await {
            Ok(results) => results,
            Err(e) => vec![Err(e); n],
        }
    }

    /// Proposes a command that is not a group of appends.
    async fn propose_once(&self, cmd: Command) -> Result<CommandResponse, ProposeError> {
        self.propose_routed(cmd, 1, false)
            .await?
            .pop()
            .expect("one result for one command")
    }

    /// Proposes `cmd`, of `batches` batches (1 for any command but a group
    /// of appends), here if this node leads or `here_only`, else forwarded
    /// once to the leader; one result per batch.
    async fn propose_routed(
        &self,
        cmd: Command,
        batches: usize,
        here_only: bool,
    ) -> Result<Vec<Result<CommandResponse, ProposeError>>, ProposeError> {
        // A node low on disk takes no appends at all, forwarded ones too: it
        // could not store what it acknowledged (the chaos harness checks).
        self.space.check()?;
        let route = if here_only { Route::Here } else { self.route() };
        match route {
            // No copy of the command: a leader that lost its role since the
            // metrics were read refuses with the new leader's address, and
            // the client retries there (nothing was appended).
            Route::Here => Ok(split(self.write_local(cmd).await?, batches)),
            Route::Leader(id, addr) => Ok(per_batch(
                self.links.forward(id, &addr, &cmd).await?,
                batches,
            )),
            Route::Unknown => match self.write_local(cmd.clone()).await {
                Err(ProposeError::NotLeader {
                    leader: Some((id, addr)),
                }) => Ok(per_batch(
                    self.links.forward(id, &addr, &cmd).await?,
                    batches,
                )),
                other => Ok(split(other?, batches)),
            },
        }
    }

    /// Where a proposal goes, as this node's metrics say: a read, where
    /// asking the Raft core cost a round trip to it and a copy of the
    /// command (all its events) for every proposal, to learn on a follower
    /// what the metrics already said.
    fn route(&self) -> Route {
        use openraft::async_runtime::watch::WatchReceiver;
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        match m.current_leader {
            Some(id) if id == m.id => {
                if m.state.is_leader() {
                    Route::Here
                } else {
                    Route::Unknown
                }
            }
            Some(id) => match m.membership_config.membership().get_node(&id) {
                Some(peer) => Route::Leader(id, peer.addr.clone()),
                None => Route::Unknown,
            },
            None => Route::Unknown,
        }
    }

    /// Proposes on this node; fails with the leader's address if it does
    /// not lead, and with [`ProposeError::DiskLow`] if this node is below
    /// its free-space floor (measured afresh).
    pub async fn propose_local(&self, cmd: Command) -> Result<CommandResponse, ProposeError> {
        self.space.check()?;
        self.write_local(cmd).await
    }

    /// [`Proposer::propose_local`] once the disk has been checked.
    async fn write_local(&self, mut cmd: Command) -> Result<CommandResponse, ProposeError> {
        stamp(&mut cmd);
        match self.raft.client_write(LoggedCommand::new(cmd)).await {
            Ok(resp) => Ok(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ProposeError::NotLeader {
                    leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
                })
            }
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f))) => {
                Err(ProposeError::CommitUnknown {
                    leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
                })
            }
            Err(RaftError::Fatal(openraft::error::Fatal::Stopped)) => Err(ProposeError::Stopping),
            Err(e) => Err(ProposeError::Fatal(e.to_string())),
        }
    }
}

/// One result per batch from what applying a group (or, for one batch, a
/// plain append) answered.
fn split(response: CommandResponse, batches: usize) -> Vec<Result<CommandResponse, ProposeError>> {
    match response {
        CommandResponse::Grouped { results } if results.len() == batches => {
            results.into_iter().map(Ok).collect()
        }
        single if batches == 1 => vec![Ok(single)],
        // Refused whole where it was applied (a group the store would not
        // take): every batch was refused with it.
        refused @ CommandResponse::Refused { .. } => vec![Ok(refused); batches],
        other => {
            let e = ProposeError::BadForwardReply(format!(
                "a group of {batches} batches was answered {other:?}"
            ));
            vec![Err(e); batches]
        }
    }
}
