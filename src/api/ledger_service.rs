//! `ironlog.v1.Ledger`: append, read, prove, query and tail.
//!
//! There is deliberately no call that edits or deletes an entry.
use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use prost::Message;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::convert::{entry_to_proto, event_from_proto, outcome_from_proto};
use super::error::ApiError;
use crate::limits::{
    BATCH_BYTES_MAX, BATCH_EVENTS_MAX, ENTRIES_PAGE_BYTES_MAX, LEAF_BYTES_MAX,
    PAGE_ENTRIES_DEFAULT, PAGE_ENTRIES_MAX, RECEIPT_WAIT_MS, TAIL_BUFFER_BYTES_MAX,
    TAIL_BUFFER_ENTRIES,
};
use crate::proto::ledger_client::LedgerClient;
use crate::proto::ledger_server::Ledger;
use crate::proto::{self as pb};
use crate::raft::{CommandResponse, Proposer};
use crate::storage::ledger_store::{LedgerStore, QueryFilter, StoredCheckpoint};
use crate::storage::Applied;

pub struct LedgerApi {
    store: super::StoreSlot,
    proposer: Proposer,
    applied: watch::Receiver<Applied>,
    /// Becomes true when the node stops; ends `Tail` streams.
    stopping: watch::Receiver<bool>,
    /// Where a refused append (a forged source) is recorded.
    refusals: crate::auth::RefusalLog,
}

impl LedgerApi {
    pub fn new(
        store: super::StoreSlot,
        proposer: Proposer,
        applied: watch::Receiver<Applied>,
        stopping: watch::Receiver<bool>,
        refusals: crate::auth::RefusalLog,
    ) -> Self {
        Self {
            store,
            proposer,
            applied,
            stopping,
            refusals,
        }
    }

    /// Confirms with a quorum that this node leads and has applied everything
    /// committed before the call (a linearizable read); followers name the leader.
    async fn linearize(&self) -> Result<(), Status> {
        crate::raft::ensure_linearizable(self.proposer.raft())
            .await
            .map_err(|e| ApiError::ReadRefused(e.to_string()).into())
    }

    /// Where a linearizable read must go: `None` when this node leads (or
    /// the request was already forwarded once, so reads never ping-pong),
    /// otherwise a client for the leader.
    fn read_forward<T>(&self, req: &Request<T>) -> Result<Option<LedgerClient<Channel>>, Status> {
        // Only a node may say it already forwarded: a client setting the
        // header must not get a follower's possibly stale answer.
        let from_node = req
            .extensions()
            .get::<crate::auth::Caller>()
            .is_some_and(|c| {
                matches!(
                    c.kind,
                    crate::auth::CallerKind::Node(_) | crate::auth::CallerKind::Insecure
                )
            });
        if from_node && req.metadata().contains_key(FORWARDED_HEADER) {
            return Ok(None);
        }
        let v = crate::raft::view(self.proposer.raft());
        let leader = v.leader.ok_or(ApiError::NoLeader)?;
        if leader == v.id {
            return Ok(None);
        }
        let addr = v
            .leader_member()
            .map(|m| m.peer.client_addr.clone())
            .filter(|a| !a.is_empty())
            .ok_or(ApiError::LeaderUnaddressed { leader })?;
        // As a node, over the node's own TLS channel to the leader's client
        // listener (cached, like the Raft channels).
        let channel = self
            .proposer
            .network()
            .channel(leader, &addr)
            .map_err(|e| ApiError::Channel {
                node: leader,
                reason: e.to_string(),
            })?;
        Ok(Some(LedgerClient::new(channel).max_decoding_message_size(
            crate::limits::GRPC_MESSAGE_BYTES_MAX,
        )))
    }

    /// Signatures a checkpoint needs before it is served as the latest.
    fn quorum(&self) -> usize {
        crate::raft::voter_quorum(self.proposer.raft())
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
            .map_err(ApiError::from)?
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
                .blocking(move |s| s.latest_checkpoint(quorum).map_err(Status::from))
                .await?;
            match latest {
                Some(cp) if cp.body.size >= tree_size && cp.signatures.len() >= quorum => break cp,
                _ => {}
            }
            // Checkpoints and cosignatures arrive as applied log entries.
            let wait = tokio::time::timeout_at(deadline, applied.changed()).await;
            if !matches!(wait, Ok(Ok(()))) {
                return Err(ApiError::ReceiptTimeout {
                    indices: indices.to_vec(),
                    tree_size,
                    wait_ms: RECEIPT_WAIT_MS,
                }
                .into());
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
            .blocking(move |s| s.latest_checkpoint(quorum).map_err(Status::from))
            .await?;
        cp.map(|c| c.body.size)
            .ok_or_else(|| ApiError::NoCheckpoint.into())
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

/// Bytes an entry adds to a message that repeats it: the entry, its length
/// prefix and its one-byte field tag.
fn framed_len(entry: &pb::Entry) -> usize {
    let len = entry.encoded_len();
    1 + prost::length_delimiter_len(len) + len
}

/// Entries `start..end` (clamped to the tree and to [`PAGE_ENTRIES_MAX`]),
/// stopping before their encoded size would pass `budget_bytes` but always
/// holding at least one entry when the range is not empty, so a reader
/// paging from the last index + 1 always progresses. Returns them with the
/// tree size. Leaves are read in chunks sized to the budget, so a page of
/// large leaves never holds much more than the budget in memory.
fn read_page(
    store: &LedgerStore,
    start: u64,
    end: u64,
    budget_bytes: usize,
) -> Result<(Vec<pb::Entry>, u64), Status> {
    let end = end.min(start.saturating_add(PAGE_ENTRIES_MAX));
    let chunk = (budget_bytes / LEAF_BYTES_MAX).max(1) as u64;
    let mut entries = Vec::new();
    let mut used_bytes = 0;
    let mut next = start;
    loop {
        let (rows, tree_size) = store
            .entries(next, end.min(next.saturating_add(chunk)))
            .map_err(Status::from)?;
        if rows.is_empty() {
            return Ok((entries, tree_size));
        }
        for (index, leaf) in rows {
            let entry = entry_to_proto(index, leaf)?;
            let bytes = framed_len(&entry);
            if !entries.is_empty() && used_bytes + bytes > budget_bytes {
                return Ok((entries, tree_size));
            }
            used_bytes += bytes;
            entries.push(entry);
            next = index + 1;
        }
        if next >= end.min(tree_size) {
            return Ok((entries, tree_size));
        }
    }
}

/// `cp` if at least `quorum` voters signed it; FAILED_PRECONDITION naming
/// the size, the signatures and the quorum otherwise.
fn majority_signed(cp: StoredCheckpoint, quorum: usize) -> Result<StoredCheckpoint, Status> {
    let signatures = cp.signatures.len();
    if signatures >= quorum {
        return Ok(cp);
    }
    Err(ApiError::UnderSigned {
        size: cp.body.size,
        signatures,
        quorum,
    }
    .into())
}

/// The sending half of a `Tail` stream: bounded in entries by the channel
/// and in bytes by permits each buffered entry holds until the stream hands
/// it to tonic.
struct TailSender {
    tx: tokio::sync::mpsc::Sender<(Result<pb::Entry, Status>, Option<OwnedSemaphorePermit>)>,
    bytes: Arc<Semaphore>,
    bytes_max: usize,
}

impl TailSender {
    /// Waits for room, then buffers `item`; `Err` once the subscriber is gone.
    async fn send(&self, item: Result<pb::Entry, Status>) -> Result<(), ()> {
        let permit = match &item {
            Ok(entry) => {
                // An entry larger than the whole budget waits for an empty
                // buffer rather than for ever.
                let cost = framed_len(entry).min(self.bytes_max);
                let cost = u32::try_from(cost).map_err(|_| ())?;
                let acquire = self.bytes.clone().acquire_many_owned(cost);
                let permit = tokio::select! {
                    permit = acquire => permit.map_err(|_| ())?,
                    _ = self.tx.closed() => return Err(()),
                };
                Some(permit)
            }
            Err(_) => None,
        };
        self.tx.send((item, permit)).await.map_err(|_| ())
    }

    async fn closed(&self) {
        self.tx.closed().await
    }
}

/// A `Tail` buffer of at most `entries_max` entries and `bytes_max` bytes.
fn tail_channel(entries_max: usize, bytes_max: usize) -> (TailSender, EntryStream) {
    let (tx, rx) = tokio::sync::mpsc::channel(entries_max);
    let sender = TailSender {
        tx,
        bytes: Arc::new(Semaphore::new(bytes_max)),
        bytes_max,
    };
    // The permit is released as tonic takes the entry.
    let stream = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::ReceiverStream::new(rx),
        |(item, _permit)| item,
    );
    (sender, Box::pin(stream))
}

#[tonic::async_trait]
impl Ledger for LedgerApi {
    async fn append(
        &self,
        req: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        let caller = crate::auth::caller_of(&req)?.clone();
        let req = req.into_inner();
        let wait_checkpoint = req.wait_checkpoint;
        if req.events.is_empty() {
            return Err(ApiError::EmptyBatch.into());
        }
        if req.events.len() > BATCH_EVENTS_MAX {
            return Err(ApiError::BatchEvents {
                count: req.events.len(),
                max: BATCH_EVENTS_MAX,
            }
            .into());
        }
        let bytes = req.encoded_len();
        if bytes > BATCH_BYTES_MAX {
            return Err(ApiError::BatchBytes {
                bytes,
                max: BATCH_BYTES_MAX,
            }
            .into());
        }
        let mut keys = HashSet::new();
        let mut events = Vec::with_capacity(req.events.len());
        for (i, e) in req.events.into_iter().enumerate() {
            let event = event_from_proto(i, e)?;
            // No client writes in another service's name.
            if !caller.may_append_as(&event.source) {
                let refused = ApiError::SourceNotAllowed {
                    index: i,
                    caller_kind: caller.kind.name(),
                    caller: caller.name.clone(),
                    source_name: event.source.clone(),
                    allowed: if caller.sources().is_empty() {
                        "none".to_string()
                    } else {
                        caller.sources().join(", ")
                    },
                };
                return Err(self.refusals.refuse(
                    &caller,
                    "ironlog.v1.Ledger/Append",
                    refused.into(),
                ));
            }
            if let Some(key) = &event.idempotency_key {
                if !keys.insert((event.source.clone(), key.clone())) {
                    return Err(ApiError::DuplicateKey {
                        index: i,
                        key: key.clone(),
                        source_name: event.source.clone(),
                    }
                    .into());
                }
            }
            events.push(event);
        }
        // The rules every replica applies at commit, checked here first so
        // that a batch this call accepts is never refused at apply.
        let bytes = crate::ledger::batch::validate_events(&events).map_err(ApiError::Batch)?;
        match self.proposer.propose_append(events.into(), bytes).await? {
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
            CommandResponse::Refused { reason } => Err(ApiError::RefusedAtApply { reason }.into()),
            other => Err(ApiError::Unexpected {
                what: "append",
                answer: format!("{other:?}"),
            }
            .into()),
        }
    }

    async fn get_entries(
        &self,
        req: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        if req.get_ref().end != 0 && req.get_ref().end < req.get_ref().start {
            return Err(ApiError::RangeBackwards {
                start: req.get_ref().start,
                end: req.get_ref().end,
            }
            .into());
        }
        if req.get_ref().linearizable {
            if let Some(mut leader) = self.read_forward(&req)? {
                return leader.get_entries(forwarded(req.into_inner())).await;
            }
            self.linearize().await?;
        }
        let req = req.into_inner();
        let end = if req.end == 0 { u64::MAX } else { req.end };
        // A short page is not the end: the caller asks again from the last
        // index + 1 until it reaches `end` or `tree_size` (the response has
        // no continuation field; that is the continuation).
        let (entries, tree_size) = self
            .blocking(move |s| read_page(s, req.start, end, ENTRIES_PAGE_BYTES_MAX))
            .await?;
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
        let quorum = self.quorum();
        let cp = if req.size == 0 {
            self.blocking(move |s| s.latest_checkpoint(quorum).map_err(Status::from))
                .await?
                .ok_or(ApiError::NoCheckpoint)?
        } else {
            let size = req.size;
            self.blocking(move |s| s.checkpoint_at(size).map_err(Status::from))
                .await?
        };
        // Whatever the store returns, never serve a checkpoint a majority of
        // voters has not signed: an auditor's policy would reject it, and a
        // minority (one compromised voter) must not be able to publish one.
        let cp = majority_signed(cp, quorum)?;
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
            .blocking(move |s| s.inclusion_proof(index, size).map_err(Status::from))
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
            return Err(ApiError::SizesBackwards {
                old: old_size,
                new: new_size,
            }
            .into());
        }
        let (hashes, old_root, new_root) = self
            .blocking(move |s| {
                s.consistency_proof(old_size, new_size)
                    .map_err(Status::from)
            })
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
        let (tx, rx) = tail_channel(TAIL_BUFFER_ENTRIES, TAIL_BUFFER_BYTES_MAX);
        tokio::spawn(async move {
            let mut next = start;
            loop {
                let size = applied.borrow_and_update().tree_size;
                while next < size {
                    let s = store.clone();
                    let from = next;
                    // Pages no larger than the buffer: a subscriber that
                    // falls behind is fed from storage a buffer at a time.
                    let page = tokio::task::spawn_blocking(move || {
                        read_page(&s, from, size, TAIL_BUFFER_BYTES_MAX)
                    })
                    .await
                    .unwrap_or_else(|e| Err(ApiError::from(e).into()));
                    let entries = match page {
                        Ok((entries, _)) => entries,
                        Err(status) => {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                    };
                    for entry in entries {
                        next = entry.index + 1;
                        // A subscriber that went away ends the stream.
                        if tx.send(Ok(entry)).await.is_err() {
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
                    let _ = tx.send(Err(ApiError::Stopping.into())).await;
                    return;
                }
            }
        });
        Ok(Response::new(rx))
    }

    async fn query(
        &self,
        req: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let req = req.into_inner();
        let nonempty = |s: String| if s.is_empty() { None } else { Some(s) };
        if req.page_size as u64 > PAGE_ENTRIES_MAX {
            return Err(ApiError::PageTooLarge {
                size: req.page_size,
                max: PAGE_ENTRIES_MAX,
            }
            .into());
        }
        if req.since_unix_nanos != 0
            && req.until_unix_nanos != 0
            && req.until_unix_nanos <= req.since_unix_nanos
        {
            return Err(ApiError::UntilNotAfterSince {
                since: req.since_unix_nanos,
                until: req.until_unix_nanos,
            }
            .into());
        }
        let outcome = match req.outcome {
            0 => None,
            v => Some(outcome_from_proto(v).ok_or(ApiError::UnknownOutcome(v))?),
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
        // Known limit: the scan (up to QUERY_SCAN_ROWS_MAX rows) runs on
        // tokio's blocking pool, which the Raft log store also uses; many
        // concurrent queries can delay log I/O until a concurrency cap on
        // the public listener (or a pool of its own) bounds them.
        let page = self
            .blocking(move |s| {
                s.query(&filter, page_size, Some(token.as_str()))
                    .map_err(Status::from)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::checkpoint::{generate_key, NoteSigner};
    use crate::ledger::event::{Actor, Event, Outcome};
    use crate::storage::ledger_store::Op;

    const ORIGIN: &str = "ironlog.test/log";

    /// An event whose `details` holds `details_bytes` of text.
    fn event(n: u64, details_bytes: usize) -> Event {
        let mut details = serde_json::Map::new();
        if details_bytes > 0 {
            details.insert("blob".into(), "x".repeat(details_bytes).into());
        }
        Event {
            time_unix_nanos: n as i64 + 1,
            actor: Actor {
                id: "alice".into(),
                kind: None,
                ip: None,
                user_agent: None,
            },
            action: "read".into(),
            resource: format!("r{n}"),
            outcome: Outcome::Success,
            source: "test".into(),
            details,
            idempotency_key: None,
        }
    }

    fn store(dir: &std::path::Path, count: u64, details_bytes: usize) -> LedgerStore {
        let store = LedgerStore::open(&dir.join("ledger.redb"), ORIGIN).unwrap();
        let append = Op::Append {
            events: (0..count)
                .map(|n| event(n, details_bytes))
                .collect::<Vec<_>>()
                .into(),
            commit_time_unix_nanos: 1,
        };
        store.apply(&[append, Op::Checkpoint], None, None).unwrap();
        store
    }

    fn page_bytes(entries: &[pb::Entry]) -> usize {
        entries.iter().map(framed_len).sum()
    }

    #[test]
    fn entries_page_stops_at_the_byte_budget_and_continues_from_last_index() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 20, 20_000);
        let budget = 100_000;
        let mut next = 0;
        let mut pages = 0;
        while next < 20 {
            let (page, tree_size) = read_page(&s, next, u64::MAX, budget).unwrap();
            assert_eq!(tree_size, 20);
            assert!(!page.is_empty());
            assert!(page_bytes(&page) <= budget, "{} bytes", page_bytes(&page));
            // Stopped for the budget, not early: the next entry did not fit.
            let last = page.last().unwrap().index;
            if last + 1 < 20 {
                let (more, _) = read_page(&s, last + 1, last + 2, budget).unwrap();
                assert!(page_bytes(&page) + page_bytes(&more) > budget);
            }
            for (k, entry) in page.iter().enumerate() {
                assert_eq!(entry.index, next + k as u64);
            }
            next = last + 1;
            pages += 1;
        }
        assert!(pages > 1, "20 entries of 20 KB fit one 100 KB page?");
    }

    #[test]
    fn entries_page_holds_one_entry_larger_than_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 3, 10_000);
        let (page, _) = read_page(&s, 1, u64::MAX, 10).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].index, 1);
    }

    #[test]
    fn entries_page_keeps_end_count_and_range_rules() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 5, 0);
        let indices = |page: Vec<pb::Entry>| page.iter().map(|e| e.index).collect::<Vec<u64>>();
        let (page, size) = read_page(&s, 1, 3, ENTRIES_PAGE_BYTES_MAX).unwrap();
        assert_eq!((indices(page), size), (vec![1, 2], 5));
        let (page, _) = read_page(&s, 0, u64::MAX, ENTRIES_PAGE_BYTES_MAX).unwrap();
        assert_eq!(indices(page), vec![0, 1, 2, 3, 4]);
        // Small budgets read in one-leaf chunks and still reach the end.
        let (page, _) = read_page(&s, 0, u64::MAX, 30_000).unwrap();
        assert_eq!(page.len(), 5);
        let (page, size) = read_page(&s, 5, u64::MAX, ENTRIES_PAGE_BYTES_MAX).unwrap();
        assert!(page.is_empty());
        assert_eq!(size, 5);
        let err = read_page(&s, 6, u64::MAX, ENTRIES_PAGE_BYTES_MAX).unwrap_err();
        assert_eq!(err.code(), tonic::Code::OutOfRange, "{err}");
    }

    #[test]
    fn checkpoint_below_quorum_is_refused_naming_size_signatures_and_quorum() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 3, 0);
        let mut cp = s.checkpoint_at(3).unwrap();
        let (skey, _) = generate_key(ORIGIN).unwrap();
        let line = NoteSigner::from_skey(&skey)
            .unwrap()
            .sign(&cp.body)
            .unwrap();
        cp.signatures = vec![line.clone()];
        let err = majority_signed(cp.clone(), 2).unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);
        for part in ["size 3", "1 voter signatures", "quorum of 2"] {
            assert!(err.message().contains(part), "{}", err.message());
        }
        cp.signatures.clear();
        assert!(majority_signed(cp.clone(), 1).is_err());
        cp.signatures = vec![line.clone(), line];
        assert_eq!(majority_signed(cp, 2).unwrap().body.size, 3);
    }

    fn entry(index: u64, bytes: usize) -> pb::Entry {
        pb::Entry {
            index,
            leaf: vec![0; bytes],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn tail_buffer_is_bounded_in_bytes_not_only_entries() {
        use futures::StreamExt;
        let (tx, mut rx) = tail_channel(100, 1000);
        tx.send(Ok(entry(0, 600))).await.unwrap();
        // 600 + 600 bytes exceed the 1000-byte buffer though 2 < 100 entries.
        let second = tx.send(Ok(entry(1, 600)));
        tokio::pin!(second);
        let waited = tokio::time::timeout(Duration::from_millis(100), &mut second).await;
        assert!(waited.is_err(), "sent past the byte budget");
        // Taking the first entry frees its bytes.
        assert_eq!(rx.next().await.unwrap().unwrap().index, 0);
        second.await.unwrap();
        assert_eq!(rx.next().await.unwrap().unwrap().index, 1);
        // An entry larger than the whole budget still goes through, alone.
        tx.send(Ok(entry(2, 5000))).await.unwrap();
        assert_eq!(rx.next().await.unwrap().unwrap().index, 2);
        // A subscriber that went away fails a waiting send.
        tx.send(Ok(entry(3, 900))).await.unwrap();
        let blocked = tx.send(Ok(entry(4, 900)));
        drop(rx);
        assert!(blocked.await.is_err());
    }
}
