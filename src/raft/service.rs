//! The internal `ironlog.v1.Raft` gRPC service: hands peers' Raft messages to
//! openraft, receives streamed snapshots, and accepts forwarded proposals.
use std::path::PathBuf;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};

use super::network::SnapshotHeader;
use super::proposer::{ProposeError, Proposer};
use super::state_machine::SnapshotFile;
use super::{Command, Raft, TypeConfig};
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
}

impl RaftRpc {
    pub fn new(proposer: Proposer, snapshot_dir: PathBuf) -> Self {
        Self {
            raft: proposer.raft().clone(),
            proposer,
            snapshot_dir,
        }
    }
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

type MessageStream = Pin<Box<dyn Stream<Item = Result<RaftMessage, Status>> + Send>>;

#[tonic::async_trait]
impl RaftService for RaftRpc {
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(req.get_ref())?;
        let resp = self.raft.append_entries(rpc).await.map_err(fatal)?;
        Ok(encode(&resp))
    }

    type StreamAppendStream = MessageStream;

    async fn stream_append(
        &self,
        req: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<Self::StreamAppendStream>, Status> {
        // A message that does not decode ends the stream; the leader reopens it.
        let input = req
            .into_inner()
            .take_while(|m| futures::future::ready(m.is_ok()))
            .filter_map(|m| async move {
                m.ok().and_then(|m| {
                    serde_json::from_slice::<AppendEntriesRequest<TypeConfig>>(&m.data).ok()
                })
            });
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
        let resp = self.raft.vote(rpc).await.map_err(fatal)?;
        Ok(encode(&resp))
    }

    async fn pre_vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<TypeConfig> = decode(req.get_ref())?;
        let resp = self.raft.pre_vote(rpc).await.map_err(fatal)?;
        Ok(encode(&resp))
    }

    async fn install_snapshot(
        &self,
        req: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftMessage>, Status> {
        let mut chunks = req.into_inner();
        let first = chunks
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let header: SnapshotHeader = serde_json::from_slice(&first.header)
            .map_err(|e| Status::invalid_argument(format!("bad snapshot header: {e}")))?;
        let path = self.snapshot_dir.join(format!(
            "incoming-{}.tmp",
            super::proposer::now_unix_nanos()
        ));
        let result = async {
            let mut file = tokio::fs::File::create(&path).await?;
            let mut total = first.data.len() as u64;
            file.write_all(&first.data).await?;
            while let Some(chunk) = chunks.message().await.map_err(std::io::Error::other)? {
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
        let file = std::fs::File::open(&path).map_err(|e| Status::internal(e.to_string()))?;
        let snapshot = openraft::alias::SnapshotOf::<TypeConfig, SnapshotFile> {
            meta: header.meta,
            snapshot: SnapshotFile { path, file },
        };
        let resp = self
            .raft
            .install_full_snapshot(header.vote, snapshot)
            .await
            .map_err(fatal)?;
        Ok(encode(&resp))
    }

    async fn forward(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let cmd: Command = decode(req.get_ref())?;
        match self.proposer.propose_local(cmd).await {
            Ok(resp) => Ok(encode(&resp)),
            Err(e @ ProposeError::NotLeader { .. }) => Err(Status::unavailable(e.to_string())),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }
}
