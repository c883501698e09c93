//! The internal `ironlog.v1.Raft` gRPC service: hands peers' Raft messages to
//! openraft, receives streamed snapshots, and accepts forwarded proposals.
use std::path::PathBuf;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::vote::RaftLeaderId;
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};

use super::network::SnapshotHeader;
use super::proposer::{ProposeError, Proposer};
use super::state_machine::SnapshotFile;
use super::{Command, NodeId, Raft, TypeConfig};
use crate::auth::{caller_of, Caller, CallerKind, Refusal, RefusalLog};
use crate::proto::raft_server::Raft as RaftService;
use crate::proto::{RaftMessage, SnapshotChunk};

/// Largest snapshot a node accepts, bytes: beyond any log this node could
/// hold, it stops a faulty peer from filling the disk.
const SNAPSHOT_BYTES_MAX: u64 = 1 << 40;

pub struct RaftRpc {
    raft: Raft,
    proposer: Proposer,
    /// Where incoming snapshots are written before they are installed.
    snapshot_dir: PathBuf,
    /// Held while a snapshot is received.
    incoming: tokio::sync::Mutex<()>,
    refusals: RefusalLog,
}

impl RaftRpc {
    pub fn new(proposer: Proposer, snapshot_dir: PathBuf, refusals: RefusalLog) -> Self {
        Self {
            raft: proposer.raft().clone(),
            proposer,
            snapshot_dir,
            incoming: tokio::sync::Mutex::new(()),
            refusals,
        }
    }

    /// [`sender_is`] for a unary request; a refusal is recorded.
    fn check<T>(&self, req: &Request<T>, claimed: NodeId, what: &str) -> Result<(), Status> {
        let caller = caller_of(req)?;
        sender_is(caller, claimed, what).inspect_err(|status| {
            self.refusals.record(Refusal::of(
                Some(caller),
                caller.remote,
                &format!("ironlog.v1.Raft/{what}"),
                status,
            ))
        })
    }
}

/// The next snapshot chunk, within the per-chunk deadline: a sender that
/// stalls does not hold the transfer (and its temp file) open.
async fn next_chunk(
    chunks: &mut Streaming<SnapshotChunk>,
) -> Result<Option<SnapshotChunk>, Status> {
    tokio::time::timeout(
        std::time::Duration::from_millis(crate::limits::SNAPSHOT_CHUNK_TIMEOUT_MS),
        chunks.message(),
    )
    .await
    .map_err(|_| Status::deadline_exceeded("snapshot sender stalled"))?
}

fn decode<T: DeserializeOwned>(msg: &RaftMessage) -> Result<T, Status> {
    serde_json::from_slice(&msg.data)
        .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Response<RaftMessage> {
    Response::new(RaftMessage {
        data: serde_json::to_vec(value).expect("raft messages serialise"),
    })
}

fn fatal(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft stopped: {e}"))
}

/// A message that names node `claimed` as its sender (the candidate of a
/// vote, the leader of an append or snapshot, the signer of a cosignature)
/// is accepted only over a connection authenticated as that node.
fn sender_is(caller: &Caller, claimed: NodeId, what: &str) -> Result<(), Status> {
    match caller.kind {
        CallerKind::Insecure => Ok(()),
        CallerKind::Node(id) if id == claimed => Ok(()),
        CallerKind::Node(id) => Err(Status::permission_denied(format!(
            "{what} claims to come from node {claimed}, but the connection is authenticated as node {id}"
        ))),
        other => Err(Status::permission_denied(format!(
            "{what} from a {} caller: only nodes speak Raft",
            other.name()
        ))),
    }
}

/// openraft asserts (and panics) on a snapshot whose last log id lies
/// beyond the vote of the leader installing it; refuse it at the door.
fn check_snapshot_header(header: &SnapshotHeader) -> Result<(), Status> {
    if let Some(last) = &header.meta.last_log_id {
        let vote_leader = header.vote.leader_id().to_committed();
        if last.committed_leader_id() > &vote_leader {
            return Err(Status::invalid_argument(format!(
                "snapshot header: last log id {last} lies beyond the sender's vote {}",
                header.vote
            )));
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
        let rpc: AppendEntriesRequest<TypeConfig> = decode(req.get_ref())?;
        self.check(&req, *rpc.vote.leader_id().node_id(), "AppendEntries")?;
        let resp = self.raft.append_entries(rpc).await.map_err(fatal)?;
        Ok(encode(&resp))
    }

    type StreamAppendStream = MessageStream;

    async fn stream_append(
        &self,
        req: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<Self::StreamAppendStream>, Status> {
        // A message that does not decode, or that names another leader
        // than the authenticated sender, ends the stream.
        let caller = caller_of(&req)?.clone();
        let refusals = self.refusals.clone();
        let input = req
            .into_inner()
            .take_while(|m| futures::future::ready(m.is_ok()))
            .map(move |m| {
                let rpc = m.ok().and_then(|m| {
                    serde_json::from_slice::<AppendEntriesRequest<TypeConfig>>(&m.data).ok()
                })?;
                match sender_is(&caller, *rpc.vote.leader_id().node_id(), "StreamAppend") {
                    Ok(()) => Some(rpc),
                    Err(status) => {
                        refusals.record(Refusal::of(
                            Some(&caller),
                            caller.remote,
                            "ironlog.v1.Raft/StreamAppend",
                            &status,
                        ));
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
            Err(e) => Err(fatal(e)),
        });
        Ok(Response::new(Box::pin(output)))
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<TypeConfig> = decode(req.get_ref())?;
        self.check(&req, *rpc.vote.leader_id().node_id(), "Vote")?;
        let resp = self.raft.vote(rpc).await.map_err(fatal)?;
        Ok(encode(&resp))
    }

    async fn pre_vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<TypeConfig> = decode(req.get_ref())?;
        self.check(&req, *rpc.vote.leader_id().node_id(), "PreVote")?;
        let resp = self.raft.pre_vote(rpc).await.map_err(fatal)?;
        Ok(encode(&resp))
    }

    async fn install_snapshot(
        &self,
        req: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftMessage>, Status> {
        let caller = caller_of(&req)?.clone();
        // One transfer at a time: a second sender waits rather than
        // doubling the disk this node spends on incoming snapshots.
        let _one_at_a_time = self.incoming.try_lock().map_err(|_| {
            Status::resource_exhausted("a snapshot is already being received; retry later")
        })?;
        let mut chunks = req.into_inner();
        let first = next_chunk(&mut chunks)
            .await?
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let header: SnapshotHeader = serde_json::from_slice(&first.header)
            .map_err(|e| Status::invalid_argument(format!("bad snapshot header: {e}")))?;
        // Who sent it and whether openraft can take it, before a byte is written.
        let checked = sender_is(
            &caller,
            *header.vote.leader_id().node_id(),
            "InstallSnapshot",
        )
        .and_then(|()| check_snapshot_header(&header));
        if let Err(status) = checked {
            self.refusals.record(Refusal::of(
                Some(&caller),
                caller.remote,
                "ironlog.v1.Raft/InstallSnapshot",
                &status,
            ));
            return Err(status);
        }
        let path = self.snapshot_dir.join(format!(
            "incoming-{}.tmp",
            super::proposer::now_unix_nanos()
        ));
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
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(Status::aborted(format!("receiving snapshot: {e}")));
        }
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(Status::internal(e.to_string()));
            }
        };
        let snapshot = openraft::alias::SnapshotOf::<TypeConfig, SnapshotFile> {
            meta: header.meta,
            snapshot: SnapshotFile {
                path: path.clone(),
                file,
            },
        };
        let resp = self.raft.install_full_snapshot(header.vote, snapshot).await;
        // An installed snapshot was renamed into place; one openraft declined
        // (older than what this node has) or failed is still here: remove it.
        let _ = tokio::fs::remove_file(&path).await;
        Ok(encode(&resp.map_err(fatal)?))
    }

    async fn forward(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let cmd: Command = decode(req.get_ref())?;
        // A node forwards its own signature only; what else it forwards is
        // validated where it is applied, on every replica.
        if let Command::Cosign { node_id, .. } = &cmd {
            self.check(&req, *node_id, "Forward(Cosign)")?;
        }
        match self.proposer.propose_local(cmd).await {
            Ok(resp) => Ok(encode(&resp)),
            Err(e @ ProposeError::NotLeader { .. }) => Err(Status::unavailable(e.to_string())),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
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
        let e = sender_is(&node2, 3, "Vote").expect_err("another node");
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(e.message().contains("node 3") && e.message().contains("node 2"));
        assert!(sender_is(&Caller::insecure(None), 3, "Vote").is_ok());
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
        let e = check_snapshot_header(&header(1, 9)).expect_err("beyond the vote");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }
}
