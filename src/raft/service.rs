//! The internal `ironlog.v1.Raft` gRPC service: hands peers' Raft messages to
//! openraft, receives streamed snapshots, and accepts forwarded proposals.
//!
//! While this node is below its free-space floor ([`crate::disk`]) it takes
//! no message that could write: entries (heartbeats included: they may
//! advance the stored commit index), snapshots and votes (granting one
//! stores it) are answered UNAVAILABLE, which the sender treats as an
//! unreachable peer and retries with backoff. The node looks partitioned
//! instead of meeting ENOSPC inside openraft, and the leader catches it up
//! once it has room again.
use std::path::PathBuf;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::vote::RaftLeaderId;
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};

use super::intake::{Grouping, Intake, Outcome};
use super::network::SnapshotHeader;
use super::proposer::{ProposeError, Proposer};
use super::state_machine::SnapshotFile;
use super::{Command, NodeId, Raft, TypeConfig};
use crate::auth::{caller_of, Caller, CallerKind, RefusalLog};
use crate::disk::{DiskLow, FreeSpace};
use crate::limits::FORWARD_IN_FLIGHT_MAX;
use crate::proto::raft_server::Raft as RaftService;
use crate::proto::{ForwardReply, ForwardRequest, RaftMessage, SnapshotChunk};

/// A peer's message refused, or failed on this node; `api::status` gives
/// each its gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{what} claims to come from node {claimed}, but the connection is authenticated as node {authenticated}")]
    NotTheSender {
        what: String,
        claimed: NodeId,
        authenticated: NodeId,
    },
    #[error("{what} from a {kind} caller: only nodes speak Raft")]
    NotANode { what: String, kind: &'static str },
    #[error("{what} from node {id}, which is not {needed} of this cluster")]
    NotAMember {
        what: String,
        id: NodeId,
        needed: &'static str,
    },
    #[error("a node may not append as source {source_name:?}: it is another node's")]
    ForgedSource { source_name: String },
    #[error("{command} is proposed by the leader itself, never forwarded")]
    NotForwardable { command: String },
    #[error("{what} refused at apply: {reason}")]
    RefusedAtApply { what: String, reason: String },
    #[error("bad raft message: {0}")]
    BadMessage(String),
    #[error("empty snapshot stream")]
    EmptySnapshot,
    #[error("bad snapshot header: {0}")]
    BadSnapshotHeader(String),
    #[error(
        "snapshot header: last log id {last} is newer than the committed {committed} \
         but not at a greater index"
    )]
    SnapshotContradictsCommitted { last: String, committed: String },
    #[error("snapshot header: last log id {last} lies beyond the sender's vote {vote}")]
    SnapshotBeyondVote { last: String, vote: String },
    #[error("snapshot sender stalled")]
    SenderStalled,
    #[error("a snapshot is already being received; retry later")]
    SnapshotBusy,
    #[error("receiving snapshot: {0}")]
    Receiving(std::io::Error),
    #[error("raft stopped: {0}")]
    Stopped(String),
    #[error("{what} refused: {low}")]
    DiskLow { what: String, low: DiskLow },
    #[error("installing snapshot: {0}")]
    Install(String),
    /// A forwarded proposal this node could not make.
    #[error("{}", forward_refusal(.0))]
    Forward(ProposeError),
}

fn forward_refusal(e: &ProposeError) -> String {
    match e {
        ProposeError::DiskLow(low) => {
            format!("{low}; leadership is moving to a node with space, retry shortly")
        }
        other => other.to_string(),
    }
}

/// Largest snapshot a node accepts, bytes: beyond any log this node could
/// hold, it stops a faulty peer from filling the disk.
const SNAPSHOT_BYTES_MAX: u64 = 1 << 40;

pub struct RaftRpc {
    raft: Raft,
    /// Where incoming snapshots are written before they are installed.
    snapshot_dir: PathBuf,
    /// Held while a snapshot is received.
    incoming: tokio::sync::Mutex<()>,
    refusals: RefusalLog,
    /// Below its floor, the node refuses every message that could write.
    space: FreeSpace,
    /// Checks and proposes what other nodes forward.
    intake: Intake,
}

impl RaftRpc {
    pub fn new(proposer: Proposer, snapshot_dir: PathBuf, refusals: RefusalLog) -> Self {
        Self {
            raft: proposer.raft().clone(),
            space: proposer.space().clone(),
            snapshot_dir,
            incoming: tokio::sync::Mutex::new(()),
            intake: Intake::new(proposer, refusals.clone()),
            refusals,
        }
    }

    /// [`low_on_disk`] for this node. Not recorded as a refusal: recording
    /// is a write, and the sender is a healthy peer doing its job.
    fn writable(&self, what: &str) -> Result<(), PeerError> {
        match low_on_disk(&self.space, what) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// [`sender_is`] and [`Claim::allowed`] for a unary request; a refusal
    /// is recorded.
    fn check<T>(
        &self,
        req: &Request<T>,
        claimed: NodeId,
        claim: Claim,
        what: &str,
    ) -> Result<(), Status> {
        let caller = caller_of(req)?;
        check_sender(&self.raft, &self.refusals, caller, claimed, claim, what)
    }
}

/// [`sender_is`] and [`claim_ok`] for message `what` from `caller`; a
/// refusal is recorded.
pub(super) fn check_sender(
    raft: &Raft,
    refusals: &RefusalLog,
    caller: &Caller,
    claimed: NodeId,
    claim: Claim,
    what: &str,
) -> Result<(), Status> {
    sender_is(caller, claimed, what)
        .and_then(|()| claim_ok(raft, claimed, claim, what))
        .map_err(|e| refusals.refuse(caller, &format!("ironlog.v1.Raft/{what}"), e.into()))
}

/// [`Claim::allowed`] against this node's current membership.
fn claim_ok(raft: &Raft, claimed: NodeId, claim: Claim, what: &str) -> Result<(), PeerError> {
    // Runs on every unary Raft message: take the membership (an Arc) from
    // the metrics watch rather than cloning all the metrics.
    let config = {
        use openraft::async_runtime::watch::WatchReceiver;
        raft.metrics().borrow_watched().membership_config.clone()
    };
    let membership = config.membership();
    let voters: Vec<NodeId> = membership.voter_ids().collect();
    let members: Vec<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
    claim.allowed(claimed, &voters, &members, what)
}

/// What a message claims its sender to be, checked against what this node
/// knows of the membership. A node that knows no membership yet (new or
/// wiped) cannot judge and accepts what the certificate check accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Claim {
    /// A candidate asking for votes: must be a voter here.
    Candidate,
    /// A leader sending entries or a snapshot: must not be a node this
    /// node knows as a learner (the analysis node never leads). An id this
    /// node does not know may be a voter added while it was away.
    Leader,
    /// A node forwarding a proposal: must be a member.
    Member,
}

impl Claim {
    fn allowed(
        self,
        id: NodeId,
        voters: &[NodeId],
        members: &[NodeId],
        what: &str,
    ) -> Result<(), PeerError> {
        if members.is_empty() {
            return Ok(());
        }
        let ok = match self {
            Claim::Candidate => voters.contains(&id),
            Claim::Leader => voters.contains(&id) || !members.contains(&id),
            Claim::Member => members.contains(&id),
        };
        if ok {
            Ok(())
        } else {
            Err(PeerError::NotAMember {
                what: what.to_string(),
                id,
                needed: match self {
                    Claim::Candidate | Claim::Leader => "a voter",
                    Claim::Member => "a member",
                },
            })
        }
    }
}

/// The next snapshot chunk, within the per-chunk deadline: a sender that
/// stalls does not hold the transfer (and its temp file) open.
async fn next_chunk(
    chunks: &mut Streaming<SnapshotChunk>,
) -> Result<Option<SnapshotChunk>, PeerError> {
    tokio::time::timeout(
        std::time::Duration::from_millis(crate::limits::SNAPSHOT_CHUNK_TIMEOUT_MS),
        chunks.message(),
    )
    .await
    .map_err(|_| PeerError::SenderStalled)?
    .map_err(|s| PeerError::Receiving(std::io::Error::other(s)))
}

fn decode<T: DeserializeOwned>(msg: &RaftMessage) -> Result<T, PeerError> {
    serde_json::from_slice(&msg.data).map_err(|e| PeerError::BadMessage(e.to_string()))
}

fn encode<T: Serialize>(value: &T) -> Response<RaftMessage> {
    Response::new(RaftMessage {
        data: serde_json::to_vec(value).expect("raft messages serialise"),
    })
}

fn fatal(e: impl std::fmt::Display) -> PeerError {
    PeerError::Stopped(e.to_string())
}

/// UNAVAILABLE for a Raft message `what` while the node is below its
/// free-space floor (as last measured: this runs on every message).
fn low_on_disk(space: &FreeSpace, what: &str) -> Option<PeerError> {
    space.refusal().map(|low| PeerError::DiskLow {
        what: what.to_string(),
        low,
    })
}

/// A message that names node `claimed` as its sender (the candidate of a
/// vote, the leader of an append or snapshot, the signer of a cosignature)
/// is accepted only over a connection authenticated as that node.
fn sender_is(caller: &Caller, claimed: NodeId, what: &str) -> Result<(), PeerError> {
    match caller.kind {
        CallerKind::Insecure => Ok(()),
        CallerKind::Node(id) if id == claimed => Ok(()),
        CallerKind::Node(id) => Err(PeerError::NotTheSender {
            what: what.to_string(),
            claimed,
            authenticated: id,
        }),
        other => Err(PeerError::NotANode {
            what: what.to_string(),
            kind: other.name(),
        }),
    }
}

/// openraft also asserts that a snapshot newer than this node's committed
/// log lies at a greater index: one that does not contradicts committed
/// entries and is refused here rather than panicking the Raft core.
fn check_snapshot_against_committed(
    header: &SnapshotHeader,
    committed: Option<&openraft::alias::LogIdOf<TypeConfig>>,
) -> Result<(), PeerError> {
    if let (Some(last), Some(committed)) = (&header.meta.last_log_id, committed) {
        if last > committed && last.index <= committed.index {
            return Err(PeerError::SnapshotContradictsCommitted {
                last: last.to_string(),
                committed: committed.to_string(),
            });
        }
    }
    Ok(())
}

/// openraft asserts (and panics) on a snapshot whose last log id lies
/// beyond the vote of the leader installing it; refuse it at the door.
fn check_snapshot_header(header: &SnapshotHeader) -> Result<(), PeerError> {
    if let Some(last) = &header.meta.last_log_id {
        let vote_leader = header.vote.leader_id().to_committed();
        if last.committed_leader_id() > &vote_leader {
            return Err(PeerError::SnapshotBeyondVote {
                last: last.to_string(),
                vote: header.vote.to_string(),
            });
        }
    }
    Ok(())
}
type MessageStream = Pin<Box<dyn Stream<Item = Result<RaftMessage, Status>> + Send>>;

#[tonic::async_trait]
impl RaftService for RaftRpc {
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.writable("AppendEntries")?;
        let rpc: AppendEntriesRequest<TypeConfig> = decode(req.get_ref())?;
        self.check(
            &req,
            *rpc.vote.leader_id().node_id(),
            Claim::Leader,
            "AppendEntries",
        )?;
        let resp = self.raft.append_entries(rpc).await.map_err(fatal)?;
        Ok(encode(&resp))
    }

    type StreamAppendStream = MessageStream;

    async fn stream_append(
        &self,
        req: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<Self::StreamAppendStream>, Status> {
        // A message that does not decode, or that names another leader
        // than the authenticated sender, ends the stream; so does running
        // low on disk, which then ends the answers with UNAVAILABLE.
        self.writable("StreamAppend")?;
        let caller = caller_of(&req)?.clone();
        let refusals = self.refusals.clone();
        let raft = self.raft.clone();
        let space = self.space.clone();
        // The membership check runs once per leader a stream names (a stream
        // carries one leader's entries); the identity check on every message.
        let mut leader_checked: Option<NodeId> = None;
        let input = req
            .into_inner()
            .take_while(|m| futures::future::ready(m.is_ok()))
            .map(move |m| {
                if space.is_low() {
                    return None;
                }
                let rpc = m.ok().and_then(|m| {
                    serde_json::from_slice::<AppendEntriesRequest<TypeConfig>>(&m.data).ok()
                })?;
                let leader = *rpc.vote.leader_id().node_id();
                let mut verdict = sender_is(&caller, leader, "StreamAppend");
                if verdict.is_ok() && leader_checked != Some(leader) {
                    verdict = claim_ok(&raft, leader, Claim::Leader, "StreamAppend");
                    leader_checked = Some(leader);
                }
                match verdict {
                    Ok(()) => Some(rpc),
                    Err(e) => {
                        refusals.refuse(&caller, "ironlog.v1.Raft/StreamAppend", e.into());
                        None
                    }
                }
            })
            .take_while(|m| futures::future::ready(m.is_some()))
            .filter_map(futures::future::ready);
        let output = self.raft.stream_append(input).map(|r| match r {
            Ok(result) => Ok(RaftMessage {
                data: serde_json::to_vec(&result).expect("raft messages serialise"),
            }),
            Err(e) => Err(fatal(e).into()),
        });
        // A stream cut short for want of space says so, rather than ending
        // as if the leader had nothing more to send.
        let space = self.space.clone();
        let low = futures::stream::once(async move { low_on_disk(&space, "StreamAppend") })
            .filter_map(|e| futures::future::ready(e.map(|e| Err(e.into()))));
        Ok(Response::new(Box::pin(output.chain(low))))
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.writable("Vote")?;
        let rpc: VoteRequest<TypeConfig> = decode(req.get_ref())?;
        self.check(
            &req,
            *rpc.vote.leader_id().node_id(),
            Claim::Candidate,
            "Vote",
        )?;
        let resp = self.raft.vote(rpc).await.map_err(fatal)?;
        Ok(encode(&resp))
    }

    async fn pre_vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        // A pre-vote writes nothing, but granting it would invite the real
        // vote this node refuses, and a leader it cannot follow.
        self.writable("PreVote")?;
        let rpc: VoteRequest<TypeConfig> = decode(req.get_ref())?;
        self.check(
            &req,
            *rpc.vote.leader_id().node_id(),
            Claim::Candidate,
            "PreVote",
        )?;
        let resp = self.raft.pre_vote(rpc).await.map_err(fatal)?;
        Ok(encode(&resp))
    }

    async fn install_snapshot(
        &self,
        req: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.writable("InstallSnapshot")?;
        let caller = caller_of(&req)?.clone();
        // One transfer at a time: a second sender waits rather than
        // doubling the disk this node spends on incoming snapshots.
        let _one_at_a_time = self
            .incoming
            .try_lock()
            .map_err(|_| PeerError::SnapshotBusy)?;
        let mut chunks = req.into_inner();
        let first = next_chunk(&mut chunks)
            .await?
            .ok_or(PeerError::EmptySnapshot)?;
        let header: SnapshotHeader = serde_json::from_slice(&first.header)
            .map_err(|e| PeerError::BadSnapshotHeader(e.to_string()))?;
        // Who sent it and whether openraft can take it, before a byte is written.
        let leader = *header.vote.leader_id().node_id();
        let checked = sender_is(&caller, leader, "InstallSnapshot")
            .and_then(|()| claim_ok(&self.raft, leader, Claim::Leader, "InstallSnapshot"))
            .and_then(|()| check_snapshot_header(&header))
            .and_then(|()| {
                let committed = super::metrics(&self.raft).local_committed;
                check_snapshot_against_committed(&header, committed.as_ref())
            });
        if let Err(e) = checked {
            return Err(self
                .refusals
                .refuse(&caller, "ironlog.v1.Raft/InstallSnapshot", e.into()));
        }
        /// Removes the transfer file however the transfer ends: refused,
        /// failed, declined by openraft, or dropped half-way when the sender
        /// goes away (tonic then drops this handler, and no code after the
        /// `.await` it was waiting in runs). An installed snapshot was
        /// renamed into place, so there is nothing left to remove.
        struct Incoming(PathBuf);
        impl Drop for Incoming {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        let incoming = Incoming(
            self.snapshot_dir
                .join(format!("incoming-{}.tmp", crate::clock::now_unix_nanos())),
        );
        let path = incoming.0.clone();
        let result = async {
            let mut file = tokio::fs::File::create(&path).await?;
            let mut total = first.data.len() as u64;
            file.write_all(&first.data).await?;
            while let Some(chunk) = next_chunk(&mut chunks)
                .await
                .map_err(std::io::Error::other)?
            {
                total += chunk.data.len() as u64;
                if total > SNAPSHOT_BYTES_MAX {
                    return Err(std::io::Error::other("snapshot exceeds the size limit"));
                }
                file.write_all(&chunk.data).await?;
            }
            file.sync_all().await?;
            Ok::<_, std::io::Error>(())
        }
        .await;
        result.map_err(PeerError::Receiving)?;
        let file = std::fs::File::open(&path).map_err(|e| PeerError::Install(e.to_string()))?;
        let snapshot = openraft::alias::SnapshotOf::<TypeConfig, SnapshotFile> {
            meta: header.meta,
            snapshot: SnapshotFile::received(path, file),
        };
        // Once openraft has the snapshot, its state machine reads the file
        // by path whether or not this handler is still waiting: so the
        // install runs in a task of its own, which keeps the file until
        // openraft is done with it even if the sender goes away.
        let raft = self.raft.clone();
        let resp = tokio::spawn(async move {
            let resp = raft.install_full_snapshot(header.vote, snapshot).await;
            drop(incoming);
            resp
        })
        .await
        .map_err(|e| PeerError::Install(e.to_string()))?;
        Ok(encode(&resp.map_err(fatal)?))
    }

    async fn forward(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let cmd: Command = decode(req.get_ref())?;
        let caller = caller_of(&req)?;
        // One answer for the whole command: a follower that forwards by
        // unary calls (an older version) gives it to every batch.
        let outcomes = self.intake.take(caller, cmd, Grouping::Whole).await?;
        match <[Outcome; 1]>::try_from(outcomes) {
            Ok([Outcome::Done(response)]) => Ok(encode(&response)),
            Ok([Outcome::Failed { code, message }]) => {
                Err(Status::new(tonic::Code::from(code), message))
            }
            Err(_) => Err(Status::internal("a forwarded command got several outcomes")),
        }
    }

    type ForwardStreamStream = Pin<Box<dyn Stream<Item = Result<ForwardReply, Status>> + Send>>;

    async fn forward_stream(
        &self,
        req: Request<Streaming<ForwardRequest>>,
    ) -> Result<Response<Self::ForwardStreamStream>, Status> {
        // Only members forward: refused at the door, and again for each
        // command (the membership may change while the stream is open).
        let caller = caller_of(&req)?.clone();
        self.intake.sender(&caller)?;
        let intake = self.intake.clone();
        let mut requests = req.into_inner();
        let (replies, answers) = tokio::sync::mpsc::channel(FORWARD_IN_FLIGHT_MAX);
        let slots = self.intake.slots(&caller);
        tokio::spawn(async move {
            loop {
                // A node with this many commands unanswered (over all its
                // streams) is read no further: HTTP/2 flow control holds
                // it back.
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let request = match requests.message().await {
                    Ok(Some(request)) => request,
                    // The sender closed its side (its leader changed) or
                    // went away: commands already taken are still answered.
                    Ok(None) | Err(_) => return,
                };
                let (intake, replies, caller) = (intake.clone(), replies.clone(), caller.clone());
                tokio::spawn(async move {
                    let outcomes = match serde_json::from_slice::<Command>(&request.command) {
                        Ok(cmd) => match intake.take(&caller, cmd, Grouping::PerBatch).await {
                            Ok(outcomes) => outcomes,
                            Err(status) => vec![Outcome::failed(&status)],
                        },
                        Err(e) => vec![Outcome::failed(&Status::from(PeerError::BadMessage(
                            e.to_string(),
                        )))],
                    };
                    let reply = ForwardReply {
                        id: request.id,
                        outcomes: serde_json::to_vec(&outcomes).expect("outcomes serialise"),
                    };
                    // The sender may have gone: nothing to answer then.
                    let _ = replies.send(Ok(reply)).await;
                    drop(slot);
                });
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(answers),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Vote = openraft::alias::VoteOf<TypeConfig>;

    #[test]
    fn a_message_is_accepted_only_from_the_node_it_names() {
        let node2 = Caller::node(2, None);
        assert!(sender_is(&node2, 2, "Vote").is_ok());
        let e = Status::from(sender_is(&node2, 3, "Vote").expect_err("another node"));
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(e.message().contains("node 3") && e.message().contains("node 2"));
        assert!(sender_is(&Caller::insecure(None), 3, "Vote").is_ok());
    }

    #[test]
    fn only_voters_campaign_learners_never_lead_and_only_members_forward() {
        let (voters, members) = ([1, 2, 3], [1, 2, 3, 4]);
        assert!(Claim::Candidate
            .allowed(2, &voters, &members, "Vote")
            .is_ok());
        assert!(Claim::Candidate
            .allowed(4, &voters, &members, "Vote")
            .is_err());
        assert!(Claim::Candidate
            .allowed(9, &voters, &members, "Vote")
            .is_err());
        assert!(Claim::Leader
            .allowed(4, &voters, &members, "AppendEntries")
            .is_err());
        // An unknown id may be a voter added while this node was away.
        assert!(Claim::Leader
            .allowed(9, &voters, &members, "AppendEntries")
            .is_ok());
        assert!(Claim::Member
            .allowed(4, &voters, &members, "Forward")
            .is_ok());
        assert!(Claim::Member
            .allowed(9, &voters, &members, "Forward")
            .is_err());
        // A node that knows no membership yet (new, wiped) cannot judge.
        assert!(Claim::Candidate.allowed(9, &[], &[], "Vote").is_ok());
    }

    #[test]
    fn a_snapshot_contradicting_committed_entries_is_refused() {
        let log_id = |term: u64, index: u64| {
            openraft::alias::LogIdOf::<TypeConfig>::new(RaftLeaderId::new(term, 1), index)
        };
        let header = |last| SnapshotHeader {
            vote: Vote::new_committed(9, 1),
            meta: openraft::alias::SnapshotMetaOf::<TypeConfig> {
                last_log_id: Some(last),
                last_membership: Default::default(),
            },
        };
        let committed = log_id(3, 100);
        assert!(
            check_snapshot_against_committed(&header(log_id(5, 50)), Some(&committed)).is_err()
        );
        assert!(
            check_snapshot_against_committed(&header(log_id(5, 150)), Some(&committed)).is_ok()
        );
        assert!(check_snapshot_against_committed(&header(log_id(2, 50)), Some(&committed)).is_ok());
        assert!(check_snapshot_against_committed(&header(log_id(5, 50)), None).is_ok());
    }

    #[test]
    fn a_snapshot_beyond_its_senders_vote_is_refused_before_openraft_sees_it() {
        let header = |vote_term: u64, last_term: u64| SnapshotHeader {
            vote: Vote::new_committed(vote_term, 1),
            meta: openraft::alias::SnapshotMetaOf::<TypeConfig> {
                last_log_id: Some(openraft::alias::LogIdOf::<TypeConfig>::new(
                    RaftLeaderId::new(last_term, 1),
                    10,
                )),
                last_membership: Default::default(),
            },
        };
        assert!(check_snapshot_header(&header(5, 5)).is_ok());
        assert!(check_snapshot_header(&header(5, 3)).is_ok());
        let e = Status::from(check_snapshot_header(&header(1, 9)).expect_err("beyond the vote"));
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }
}
