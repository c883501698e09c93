//! `ironlog.v1.Ledger`: append, read, prove, query and tail.
//!
//! There is deliberately no call that edits or deletes an entry.
use std::collections::HashSet;
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use prost::Message;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::convert::{entry_to_proto, event_from_proto, outcome_from_proto};
use super::status::{from_propose, from_store};
use crate::limits::{
    BATCH_BYTES_MAX, BATCH_EVENTS_MAX, PAGE_ENTRIES_DEFAULT, PAGE_ENTRIES_MAX, RECEIPT_WAIT_MS,
};
use crate::proto::ledger_client::LedgerClient;
use crate::proto::ledger_server::Ledger;
use crate::proto::{self as pb};
use crate::raft::state_machine::Applied;
use crate::raft::{Command, CommandResponse, Proposer};
use crate::storage::ledger_store::{LedgerStore, QueryFilter, StoredCheckpoint};

pub struct LedgerApi {
    store: super::StoreSlot,
    proposer: Proposer,
    applied: watch::Receiver<Applied>,
    /// Becomes true when the node stops; ends `Tail` streams.
    stopping: watch::Receiver<bool>,
}

impl LedgerApi {
    pub fn new(
        store: super::StoreSlot,
        proposer: Proposer,
        applied: watch::Receiver<Applied>,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Self {
            store,
            proposer,
            applied,
            stopping,
        }
    }

    /// Confirms with a quorum that this node leads and has applied everything
    /// committed before the call (a linearizable read); followers name the leader.
    async fn linearize(&self) -> Result<(), Status> {
        self.proposer
            .raft()
            .ensure_linearizable(openraft::ReadPolicy::ReadIndex)
            .await
            .map(|_| ())
            .map_err(|e| Status::unavailable(format!("linearizable read refused: {e}")))
    }

    /// Where a linearizable read must go: `None` when this node leads (or
    /// the request was already forwarded once, so reads never ping-pong),
    /// otherwise a client for the leader.
    fn read_forward<T>(&self, req: &Request<T>) -> Result<Option<LedgerClient<Channel>>, Status> {
        if req.metadata().contains_key(FORWARDED_HEADER) {
            return Ok(None);
        }
        let m = crate::raft::metrics(self.proposer.raft());
        let leader = m
            .current_leader
            .ok_or_else(|| Status::unavailable("no leader is known yet, retry shortly"))?;
        if leader == m.id {
            return Ok(None);
        }
        let addr = m
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
            .ok_or_else(|| Status::unavailable(format!("leader {leader} has no known address")))?;
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::internal(e.to_string()))?
            .connect_lazy();
        Ok(Some(LedgerClient::new(channel).max_decoding_message_size(
            crate::limits::GRPC_MESSAGE_BYTES_MAX,
        )))
    }

    /// Signatures a checkpoint needs before it is served as the latest.
    fn quorum(&self) -> usize {
        super::checkpoint_quorum(self.proposer.raft())
    }

    fn checkpoint_response(&self, cp: StoredCheckpoint) -> pb::Checkpoint {
        super::convert::checkpoint_to_proto(&cp)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LedgerStore) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.store.get()?;
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
    }

    /// Waits until a checkpoint signed by a majority covers `tree_size`
    /// (this node applies the cosignatures too, so any node can answer),
    /// then proves each index against it.
    async fn receipts(
        &self,
        indices: &[u64],
        tree_size: u64,
    ) -> Result<(pb::Checkpoint, Vec<pb::Receipt>), Status> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(RECEIPT_WAIT_MS);
        let mut applied = self.applied.clone();
        let cp = loop {
            let quorum = self.quorum();
            let latest = self
                .blocking(move |s| s.latest_checkpoint(quorum).map_err(from_store))
                .await?;
            match latest {
                Some(cp) if cp.body.size >= tree_size && cp.signatures.len() >= quorum => break cp,
                _ => {}
            }
            // Checkpoints and cosignatures arrive as applied log entries.
            let wait = tokio::time::timeout_at(deadline, applied.changed()).await;
            if !matches!(wait, Ok(Ok(()))) {
                return Err(Status::deadline_exceeded(format!(
                    "the events were committed at indices {indices:?}, but no checkpoint \
                     signed by a majority covered tree size {tree_size} within \
                     {RECEIPT_WAIT_MS} ms; fetch their proofs later with GetInclusionProof"
                )));
            }
        };
        let size = cp.body.size;
        let wanted = indices.to_vec();
        let receipts = self
            .blocking(move |s| {
                wanted
                    .iter()
                    .map(|&index| {
                        let (leaf, proof) = super::convert::proven_leaf(s, index, size)?;
                        Ok(pb::Receipt {
                            index,
                            leaf,
                            proof: Some(proof),
                        })
                    })
                    .collect::<Result<Vec<_>, Status>>()
            })
            .await?;
        Ok((self.checkpoint_response(cp), receipts))
    }

    /// The size proofs default to: the latest served checkpoint.
    async fn latest_size(&self) -> Result<u64, Status> {
        let quorum = self.quorum();
        let cp = self
            .blocking(move |s| s.latest_checkpoint(quorum).map_err(from_store))
            .await?;
        cp.map(|c| c.body.size)
            .ok_or_else(|| Status::failed_precondition("no signed checkpoint yet"))
    }
}

/// Marks a read forwarded from a follower to the leader.
const FORWARDED_HEADER: &str = "x-ironlog-forwarded";

fn forwarded<T>(msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert(
        FORWARDED_HEADER,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    req
}

type EntryStream = Pin<Box<dyn Stream<Item = Result<pb::Entry, Status>> + Send>>;

#[tonic::async_trait]
impl Ledger for LedgerApi {
    async fn append(
        &self,
        req: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        let req = req.into_inner();
        let wait_checkpoint = req.wait_checkpoint;
        if req.events.is_empty() {
            return Err(Status::invalid_argument("append needs at least one event"));
        }
        if req.events.len() > BATCH_EVENTS_MAX {
            return Err(Status::resource_exhausted(format!(
                "batch of {} events exceeds the limit of {BATCH_EVENTS_MAX}",
                req.events.len()
            )));
        }
        let bytes = req.encoded_len();
        if bytes > BATCH_BYTES_MAX {
            return Err(Status::resource_exhausted(format!(
                "batch of {bytes} bytes exceeds the limit of {BATCH_BYTES_MAX}"
            )));
        }
        let mut keys = HashSet::new();
        let mut events = Vec::with_capacity(req.events.len());
        for (i, e) in req.events.into_iter().enumerate() {
            let event = event_from_proto(i, e)?;
            if let Some(key) = &event.idempotency_key {
                if !keys.insert((event.source.clone(), key.clone())) {
                    return Err(Status::invalid_argument(format!(
                        "event {i}: idempotency key {key:?} of source {:?} appears twice in the batch",
                        event.source
                    )));
                }
            }
            events.push(event);
        }
        let cmd = Command::Append {
            events,
            commit_time_unix_nanos: 0,
        };
        match self.proposer.propose(cmd).await.map_err(from_propose)? {
            CommandResponse::Appended {
                indices,
                deduplicated,
                tree_size,
            } => {
                let (checkpoint, receipts) = if wait_checkpoint {
                    let (cp, receipts) = self.receipts(&indices, tree_size).await?;
                    (Some(cp), receipts)
                } else {
                    (None, Vec::new())
                };
                Ok(Response::new(pb::AppendResponse {
                    indices,
                    tree_size,
                    deduplicated,
                    checkpoint,
                    receipts,
                }))
            }
            other => Err(Status::internal(format!("append answered with {other:?}"))),
        }
    }

    async fn get_entries(
        &self,
        req: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        if req.get_ref().end != 0 && req.get_ref().end < req.get_ref().start {
            return Err(Status::invalid_argument(format!(
                "end {} is before start {}",
                req.get_ref().end,
                req.get_ref().start
            )));
        }
        if req.get_ref().linearizable {
            if let Some(mut leader) = self.read_forward(&req)? {
                return leader.get_entries(forwarded(req.into_inner())).await;
            }
            self.linearize().await?;
        }
        let req = req.into_inner();
        let end = if req.end == 0 {
            req.start.saturating_add(PAGE_ENTRIES_MAX)
        } else {
            req.end
        };
        let (rows, tree_size) = self
            .blocking(move |s| s.entries(req.start, end).map_err(from_store))
            .await?;
        let entries = rows
            .into_iter()
            .map(|(i, leaf)| entry_to_proto(i, leaf))
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::GetEntriesResponse { entries, tree_size }))
    }

    async fn get_checkpoint(
        &self,
        req: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        if req.get_ref().linearizable {
            if let Some(mut leader) = self.read_forward(&req)? {
                return leader.get_checkpoint(forwarded(req.into_inner())).await;
            }
            self.linearize().await?;
        }
        let req = req.into_inner();
        let cp = if req.size == 0 {
            let quorum = self.quorum();
            self.blocking(move |s| s.latest_checkpoint(quorum).map_err(from_store))
                .await?
                .ok_or_else(|| Status::failed_precondition("no signed checkpoint yet"))?
        } else {
            let size = req.size;
            self.blocking(move |s| s.checkpoint_at(size).map_err(from_store))
                .await?
        };
        Ok(Response::new(pb::GetCheckpointResponse {
            checkpoint: Some(self.checkpoint_response(cp)),
        }))
    }

    async fn get_inclusion_proof(
        &self,
        req: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        let req = req.into_inner();
        let size = if req.tree_size == 0 {
            self.latest_size().await?
        } else {
            req.tree_size
        };
        let index = req.index;
        let (leaf, hashes, root) = self
            .blocking(move |s| s.inclusion_proof(index, size).map_err(from_store))
            .await?;
        Ok(Response::new(pb::GetInclusionProofResponse {
            proof: Some(pb::InclusionProof {
                index,
                tree_size: size,
                leaf_hash: leaf.to_vec(),
                hashes: hashes.iter().map(|h| h.to_vec()).collect(),
                root_hash: root.to_vec(),
            }),
        }))
    }

    async fn get_consistency_proof(
        &self,
        req: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let req = req.into_inner();
        let new_size = if req.new_size == 0 {
            self.latest_size().await?
        } else {
            req.new_size
        };
        let old_size = req.old_size;
        if old_size > new_size {
            return Err(Status::invalid_argument(format!(
                "old size {old_size} is larger than new size {new_size}"
            )));
        }
        let (hashes, old_root, new_root) = self
            .blocking(move |s| s.consistency_proof(old_size, new_size).map_err(from_store))
            .await?;
        Ok(Response::new(pb::GetConsistencyProofResponse {
            proof: Some(pb::ConsistencyProof {
                old_size,
                new_size,
                hashes: hashes.iter().map(|h| h.to_vec()).collect(),
                old_root: old_root.to_vec(),
                new_root: new_root.to_vec(),
            }),
        }))
    }

    type TailStream = EntryStream;

    async fn tail(
        &self,
        req: Request<pb::TailRequest>,
    ) -> Result<Response<Self::TailStream>, Status> {
        let start = req.into_inner().start;
        let store = self.store.get()?;
        let mut applied = self.applied.clone();
        let mut stopping = self.stopping.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(crate::limits::TAIL_BUFFER_ENTRIES);
        tokio::spawn(async move {
            let mut next = start;
            loop {
                let size = applied.borrow_and_update().tree_size;
                while next < size {
                    let s = store.clone();
                    let from = next;
                    let rows = tokio::task::spawn_blocking(move || s.entries(from, size)).await;
                    let rows = match rows {
                        Ok(Ok((rows, _))) => rows,
                        Ok(Err(e)) => {
                            let _ = tx.send(Err(from_store(e))).await;
                            return;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                            return;
                        }
                    };
                    for (i, leaf) in rows {
                        next = i + 1;
                        // A subscriber that went away ends the stream.
                        if tx.send(entry_to_proto(i, leaf)).await.is_err() {
                            return;
                        }
                    }
                }
                tokio::select! {
                    changed = applied.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                    _ = stopping.changed() => {}
                }
                if *stopping.borrow() {
                    let _ = tx.send(Err(Status::unavailable("node is stopping"))).await;
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn query(
        &self,
        req: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let req = req.into_inner();
        let nonempty = |s: String| if s.is_empty() { None } else { Some(s) };
        if req.page_size as u64 > PAGE_ENTRIES_MAX {
            return Err(Status::invalid_argument(format!(
                "page size {} exceeds the limit of {PAGE_ENTRIES_MAX}",
                req.page_size
            )));
        }
        if req.since_unix_nanos != 0
            && req.until_unix_nanos != 0
            && req.until_unix_nanos <= req.since_unix_nanos
        {
            return Err(Status::invalid_argument("until must be after since"));
        }
        let outcome =
            match req.outcome {
                0 => None,
                v => Some(outcome_from_proto(v).ok_or_else(|| {
                    Status::invalid_argument(format!("unknown outcome value {v}"))
                })?),
            };
        let filter = QueryFilter {
            actor: nonempty(req.actor),
            action: nonempty(req.action),
            resource: nonempty(req.resource),
            outcome,
            since_unix_nanos: (req.since_unix_nanos != 0).then_some(req.since_unix_nanos),
            until_unix_nanos: (req.until_unix_nanos != 0).then_some(req.until_unix_nanos),
        };
        let page_size = if req.page_size == 0 {
            PAGE_ENTRIES_DEFAULT
        } else {
            req.page_size
        } as u64;
        let token = req.page_token;
        let page = self
            .blocking(move |s| {
                s.query(&filter, page_size, Some(token.as_str()))
                    .map_err(from_store)
            })
            .await?;
        let entries = page
            .entries
            .into_iter()
            .map(|(i, leaf)| entry_to_proto(i, leaf))
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::QueryResponse {
            entries,
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }
}
