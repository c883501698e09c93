//! The append and commit path: one write transaction per apply, its
//! tables, the dispatch of each [`Op`], and a leaf stored at the end of the
//! tree with its hashes and index rows.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use redb::{Durability, ReadableTable, TableDefinition, WriteTransaction};

use super::error::corrupt;
use super::hash_chunks::{ChunkedHashes, HashTail, HASH_CHUNKS};
use super::meta::{read_indexed_row, read_meta};
use super::run;
use super::tables::{
    CHECKPOINTS, ENTRIES, IDEMPOTENCY, IDX_ACTION, IDX_ACTOR, IDX_OUTCOME, IDX_RESOURCE, META,
    META_INDEXED, META_STATE, SIGNATURES, WITNESS_COSIGNATURES,
};
use super::{LedgerStore, Op, OpResult, StateMeta, StoreError};
use crate::ledger::batch;
use crate::ledger::event::{encode_leaf_with, Event, LeafKeys};
use crate::ledger::merkle;
use crate::limits::{INDEX_DEFER_LEAVES, INDEX_STEP_LEAVES_MAX, LEDGER_DURABLE_INTERVAL_MS};

/// What [`LedgerStore::apply_sized`] did and left.
#[derive(Debug)]
pub struct ApplyOutcome {
    /// One per op, in order.
    pub results: Vec<OpResult>,
    /// The tree size after the last op.
    pub tree_size: u64,
    /// Leaves still waiting for their query index rows: the next apply
    /// that brings this to [`INDEX_DEFER_LEAVES`] also indexes them.
    pub unindexed: u64,
}

impl LedgerStore {
    /// Applies `ops` in order in one transaction and records
    /// `applied`/`membership` (when given) as of the last op.
    pub fn apply(
        &self,
        ops: &[Op],
        applied: Option<Vec<u8>>,
        membership: Option<Vec<u8>>,
    ) -> Result<Vec<OpResult>, StoreError> {
        Ok(self.apply_sized(ops, applied, membership, false)?.results)
    }

    /// [`LedgerStore::apply`], also returning the sizes it left, so the
    /// caller need not read them back; a `durable` commit is fsynced.
    pub fn apply_sized(
        &self,
        ops: &[Op],
        applied: Option<Vec<u8>>,
        membership: Option<Vec<u8>>,
        durable: bool,
    ) -> Result<ApplyOutcome, StoreError> {
        let mut txn = self.db.begin_write()?;
        // Not fsync'd for correctness: every applied entry is committed,
        // so durable in a quorum's Raft logs, and is re-applied after a
        // crash; `write_manifest` makes the state durable before the Raft
        // log behind it may be purged. The caller makes an apply durable
        // now and then all the same (see `durable_due`), so that no one
        // commit has seconds of pages to write while every apply waits.
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        let results = {
            let mut w = Writer::open(&txn, &self.origin)?;
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                results.push(w.apply(op)?);
            }
            if applied.is_some() {
                w.meta.applied = applied;
            }
            if membership.is_some() {
                w.meta.membership = membership;
            }
            w.index_pending(INDEX_DEFER_LEAVES)?;
            w.save_meta()?;
            ApplyOutcome {
                results,
                tree_size: w.meta.tree_size,
                unindexed: w.meta.tree_size - w.indexed,
            }
        };
        txn.commit()?;
        if durable {
            self.durable_now();
        }
        Ok(results)
    }

    /// Whether the next apply should be made durable: the last durable
    /// commit is [`LEDGER_DURABLE_INTERVAL_MS`] old. Applies are otherwise
    /// non-durable commits, whose pages redb holds until a durable one
    /// writes them all while every apply waits.
    pub fn durable_due(&self) -> bool {
        let last = *self
            .last_durable
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        last.elapsed() >= Duration::from_millis(LEDGER_DURABLE_INTERVAL_MS)
    }

    /// Records a durable commit that just completed.
    fn durable_now(&self) {
        *self
            .last_durable
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
    }

    /// Writes the query index rows of every leaf that waits for them now,
    /// rather than when [`INDEX_DEFER_LEAVES`] have gathered. Not durable
    /// until the next durable commit.
    pub fn index_all(&self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None)?;
        {
            let mut w = Writer::open(&txn, &self.origin)?;
            w.index_all_pending()?;
            w.save_meta()?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Makes every earlier `apply` durable (one fsync).
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            // A write, so the commit is not skipped as empty.
            let mut w = Writer::open(&txn, &self.origin)?;
            w.save_meta()?;
        }
        txn.commit()?;
        self.durable_now();
        Ok(())
    }
}

/// A query index table ([`IDX_ACTOR`] and the others) open for writing.
type IndexTable<'t> = redb::Table<'t, (&'static str, u64), &'static [u8]>;

/// A query index table of the transaction, opened when first used.
type LazyIndex<'t> = Lazy<'t, (&'static str, u64), &'static [u8]>;

/// A table of the transaction, opened when first used: most applies are
/// appends, which touch four of the eleven tables, and opening one costs a
/// lookup in redb's table of tables (opening all eleven was 2.5% of the
/// CPU under load).
pub(super) struct Lazy<'t, K: redb::Key + 'static, V: redb::Value + 'static> {
    txn: &'t WriteTransaction,
    def: TableDefinition<'static, K, V>,
    table: Option<redb::Table<'t, K, V>>,
}

impl<'t, K: redb::Key + 'static, V: redb::Value + 'static> Lazy<'t, K, V> {
    fn new(txn: &'t WriteTransaction, def: TableDefinition<'static, K, V>) -> Self {
        Self {
            txn,
            def,
            table: None,
        }
    }

    /// The table, opened on first use.
    pub(super) fn table(&mut self) -> Result<&mut redb::Table<'t, K, V>, StoreError> {
        if self.table.is_none() {
            self.table = Some(self.txn.open_table(self.def)?);
        }
        Ok(self.table.as_mut().expect("opened just above"))
    }
}

/// The tables of one write transaction, and the metadata as it evolves.
pub(super) struct Writer<'t> {
    pub(super) origin: &'t str,
    entries: redb::Table<'t, u64, &'static [u8]>,
    /// The stored hashes' chunks, and the last one while appending to it
    /// (loaded by the first leaf added, stored by `save_meta`).
    hashes: redb::Table<'t, u64, &'static [u8]>,
    hash_tail: Option<HashTail>,
    meta_table: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) checkpoints: Lazy<'t, u64, &'static [u8]>,
    pub(super) signatures: Lazy<'t, (u64, u32), &'static str>,
    pub(super) witness_cosignatures: Lazy<'t, (u64, u32), (&'static str, &'static str)>,
    idempotency: redb::Table<'t, (&'static str, &'static str), u64>,
    idx_actor: LazyIndex<'t>,
    idx_action: LazyIndex<'t>,
    idx_resource: LazyIndex<'t>,
    idx_outcome: LazyIndex<'t>,
    pub(super) meta: StateMeta,
    /// Leaves `[0, indexed)` have their query index rows ([`META_INDEXED`]).
    pub(super) indexed: u64,
    /// `indexed` as stored, so the row is written only when it changes.
    indexed_stored: Option<u64>,
}

impl<'t> Writer<'t> {
    pub(super) fn open(txn: &'t WriteTransaction, origin: &'t str) -> Result<Self, StoreError> {
        let meta_table = txn.open_table(META)?;
        let meta = read_meta(&meta_table)?;
        let indexed_stored = read_indexed_row(&meta_table, meta.tree_size)?;
        Ok(Self {
            origin,
            entries: txn.open_table(ENTRIES)?,
            hashes: txn.open_table(HASH_CHUNKS)?,
            hash_tail: None,
            meta_table,
            checkpoints: Lazy::new(txn, CHECKPOINTS),
            signatures: Lazy::new(txn, SIGNATURES),
            witness_cosignatures: Lazy::new(txn, WITNESS_COSIGNATURES),
            idempotency: txn.open_table(IDEMPOTENCY)?,
            idx_actor: Lazy::new(txn, IDX_ACTOR),
            idx_action: Lazy::new(txn, IDX_ACTION),
            idx_resource: Lazy::new(txn, IDX_RESOURCE),
            idx_outcome: Lazy::new(txn, IDX_OUTCOME),
            // Absent in a store written before indexing was deferred, which
            // indexed every leaf; `save_meta` then records it.
            indexed: indexed_stored.unwrap_or(meta.tree_size),
            indexed_stored,
            meta,
        })
    }

    /// Writes what the writer holds in memory, the last hash chunk and the
    /// metadata: every use of a writer ends with it, before the commit.
    pub(super) fn save_meta(&mut self) -> Result<(), StoreError> {
        if let Some(tail) = &mut self.hash_tail {
            tail.store(&mut self.hashes)?;
        }
        let bytes = serde_json::to_vec(&self.meta).expect("meta serialises");
        self.meta_table.insert(META_STATE, bytes.as_slice())?;
        assert!(
            self.indexed <= self.meta.tree_size,
            "the index never covers leaves the tree does not hold"
        );
        if self.indexed_stored != Some(self.indexed) {
            let bytes = self.indexed.to_be_bytes();
            self.meta_table.insert(META_INDEXED, bytes.as_slice())?;
            self.indexed_stored = Some(self.indexed);
        }
        Ok(())
    }

    /// Writes the query index runs of the leaves stored since the last
    /// step, once at least `min_pending` wait (see [`INDEX_DEFER_LEAVES`]),
    /// and at most [`INDEX_STEP_LEAVES_MAX`] of them: the leaves are read
    /// back, and each table gets one run per value among them, in key
    /// order.
    pub(super) fn index_pending(&mut self, min_pending: u64) -> Result<(), StoreError> {
        let pending = self.meta.tree_size - self.indexed;
        if pending == 0 || pending < min_pending {
            return Ok(());
        }
        let (from, to) = (
            self.indexed,
            self.indexed + pending.min(INDEX_STEP_LEAVES_MAX),
        );
        let mut records = Vec::with_capacity(usize::try_from(to - from).unwrap_or(0));
        for row in self.entries.range(from..to)? {
            let (index, leaf) = row?;
            let index = index.value();
            let record =
                LeafKeys::decode(leaf.value()).map_err(|e| corrupt("entries", index, e))?;
            if index != from + records.len() as u64 || record.index != index {
                return Err(corrupt(
                    "entries",
                    index,
                    "found where another leaf belongs",
                ));
            }
            records.push(record);
        }
        if records.len() as u64 != to - from {
            return Err(corrupt(
                "entries",
                format!("{from}..{to}"),
                "not all stored",
            ));
        }
        insert_runs(self.idx_actor.table()?, &records, |r| &r.actor_id)?;
        insert_runs(self.idx_action.table()?, &records, |r| &r.action)?;
        insert_runs(self.idx_resource.table()?, &records, |r| &r.resource)?;
        insert_runs(self.idx_outcome.table()?, &records, |r| r.outcome.as_str())?;
        self.indexed = to;
        Ok(())
    }

    /// Indexes every leaf that waits, a step at a time.
    pub(super) fn index_all_pending(&mut self) -> Result<(), StoreError> {
        while self.indexed < self.meta.tree_size {
            self.index_pending(1)?;
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<OpResult, StoreError> {
        match op {
            Op::Append {
                events,
                commit_time_unix_nanos,
            } => self.append(events, *commit_time_unix_nanos),
            Op::AppendGroup {
                batches,
                commit_time_unix_nanos,
            } => {
                // A group is one Raft entry: its size is bounded like one
                // batch's, so every replica can take it in one message.
                if let Err(e) = batch::validate_group(batches) {
                    return Ok(OpResult::refused(e));
                }
                let mut results = Vec::with_capacity(batches.len());
                for events in batches {
                    results.push(self.append(events, *commit_time_unix_nanos)?);
                }
                Ok(OpResult::Grouped { results })
            }
            Op::Checkpoint => Ok(OpResult::Checkpointed {
                size: self.checkpoint()?.map(|b| b.size),
            }),
            Op::Cosign {
                size,
                line,
                verifier_key,
            } => self.cosign(*size, line, verifier_key),
            Op::WitnessCosign {
                size,
                line,
                verifier_key,
            } => self.witness_cosign(*size, line, verifier_key),
            Op::SetWitnesses { verifier_keys } => self.set_witnesses(verifier_keys),
            Op::Refuse { reason } => Ok(OpResult::refused(reason)),
            Op::Nothing => Ok(OpResult::Nothing),
        }
    }

    fn append(&mut self, events: &[Event], commit_time: i64) -> Result<OpResult, StoreError> {
        // The one gate: checked before anything is written, so a refused
        // batch leaves no leaf, index or idempotency key behind.
        // The canonical details it checked are the ones each leaf encodes.
        let details = match batch::validate_batch_details(events, commit_time) {
            Ok(details) => details,
            Err(e) => return Ok(OpResult::refused(e)),
        };
        // Commit times never go backwards even if leaders' clocks disagree.
        let commit_time = commit_time.max(self.meta.last_commit_time_unix_nanos);
        let mut indices = Vec::with_capacity(events.len());
        let mut deduplicated = Vec::with_capacity(events.len());
        for (event, details) in events.iter().zip(&details) {
            if let Some(key) = &event.idempotency_key {
                if let Some(index) = self
                    .idempotency
                    .get((event.source.as_str(), key.as_str()))?
                {
                    indices.push(index.value());
                    deduplicated.push(true);
                    continue;
                }
            }
            let leaf = encode_leaf_with(self.meta.tree_size, commit_time, event, details);
            let index = self.add_leaf(&leaf, commit_time, event)?;
            indices.push(index);
            deduplicated.push(false);
        }
        self.meta.last_commit_time_unix_nanos = commit_time;
        Ok(OpResult::Appended {
            indices,
            deduplicated,
            tree_size: self.meta.tree_size,
        })
    }

    /// Stores one leaf at the end of the tree, with its hashes and its
    /// idempotency key: `event`'s leaf at the current tree size, committed
    /// at `commit_time` (callers encode or check the index it carries).
    pub(super) fn add_leaf(
        &mut self,
        leaf: &[u8],
        commit_time: i64,
        event: &Event,
    ) -> Result<u64, StoreError> {
        let index = self.meta.tree_size;
        if self.hash_tail.is_none() {
            let count = merkle::stored_hash_count(index);
            self.hash_tail = Some(HashTail::load(&self.hashes, count)?);
        }
        let hashes = merkle::hashes_to_store(index, &merkle::leaf_hash(leaf), &self.hash_store())?;
        assert_eq!(
            hashes.first().map(|h| h.0),
            Some(merkle::stored_hash_index(0, index)),
            "the first stored hash of a leaf is its own"
        );
        let tail = self.hash_tail.as_mut().expect("loaded above");
        for (i, h) in &hashes {
            tail.push(&mut self.hashes, *i, h)?;
        }
        self.entries.insert(index, leaf)?;
        // Query index rows follow in bulk (`index_pending`); the
        // idempotency row cannot wait, the next batch may repeat the key.
        if let Some(key) = &event.idempotency_key {
            self.idempotency
                .insert((event.source.as_str(), key.as_str()), index)?;
        }
        self.meta.tree_size = index + 1;
        self.meta.last_commit_time_unix_nanos = commit_time;
        Ok(index)
    }
}

impl Writer<'_> {
    /// The stored hashes as of this writer's appends, stored or not yet.
    pub(super) fn hash_store(&self) -> ChunkedHashes<'_, redb::Table<'_, u64, &'static [u8]>> {
        ChunkedHashes {
            table: &self.hashes,
            tail: self.hash_tail.as_ref(),
        }
    }
}

/// Inserts the runs of `records` (consecutive leaves, in order) by the
/// value `field` reads, in key order.
fn insert_runs<'r>(
    table: &mut IndexTable<'_>,
    records: &'r [LeafKeys],
    field: impl Fn(&'r LeafKeys) -> &'r str,
) -> Result<(), StoreError> {
    let mut by_value: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for r in records {
        by_value.entry(field(r)).or_default().push(r.index);
    }
    for (value, indices) in by_value {
        for chunk in indices.chunks(run::RUN_LEAVES_MAX) {
            table.insert((value, chunk[0]), run::encode(chunk).as_slice())?;
        }
    }
    Ok(())
}
