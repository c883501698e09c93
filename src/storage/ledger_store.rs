//! The ledger state on redb: leaves, stored Merkle hashes, checkpoints, their
//! signatures, idempotency keys and query indexes.
//!
//! # What it owns
//! One redb file per node (`ledger.redb`). It knows nothing of Raft: the
//! consensus layer hands it ordered [`Op`]s plus an opaque "applied" marker and
//! membership blob, and it applies them in one write transaction.
//!
//! # Invariants
//! - Leaf `i` is stored only when the tree size is `i` (asserted).
//! - Every leaf and the stored hashes it adds are written in the transaction
//!   that advances the tree size, so a reader never sees a leaf without the
//!   hashes covering it.
//! - Checkpoint sizes only grow, and a checkpoint's root is recomputed from the
//!   stored hashes and read back before it is stored.
//! - A signature is stored only if it verifies over the stored body.
//! - Witness cosignatures live in their own table, apart from voter
//!   signatures, so they never count towards the voter quorum; a note shows
//!   the voter signatures first, then the witness cosignatures.
//!
//! # Crash semantics
//! Each [`LedgerStore::apply`] is one transaction, made durable by the next
//! `Immediate` commit ([`LedgerStore::flush`], which every snapshot export runs
//! first). After a crash the store is exactly as of some earlier `apply`, never
//! older than the last snapshot, and the Raft layer re-applies the committed
//! log (kept behind that snapshot) from the stored "applied" marker.
//!
//! # Snapshots
//! A snapshot is the leaves, checkpoints, signatures, witness cosignatures and
//! metadata, streamed to a file. Installing one rebuilds hashes and indexes from the leaves and
//! refuses it if any checkpoint root does not match, so a corrupt or forged
//! snapshot cannot replace a good state.
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use crate::ledger::checkpoint::{self, CheckpointBody, SignatureLine};
use crate::ledger::cosignature::CosignatureVerifier;
use crate::ledger::event::{Event, LeafRecord, Outcome};
use crate::ledger::merkle::{self, Hash, HashStore, MerkleError};
use crate::ledger::tile::{self, Tile, TileKind};
use crate::limits::{PAGE_ENTRIES_MAX, QUERY_SCAN_ROWS_MAX};

/// The ledger file's name inside a node's data dir.
pub const LEDGER_FILE: &str = "ledger.redb";

// The tables are visible to the rest of `storage` so that `fsck` reads the
// very definitions the store writes with.
pub(super) const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
pub(super) const HASHES: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("hashes");
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Checkpoint size -> body text.
pub(super) const CHECKPOINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("checkpoints");
/// (checkpoint size, key id) -> signature line.
pub(super) const SIGNATURES: TableDefinition<(u64, u32), &str> = TableDefinition::new("signatures");
/// (checkpoint size, witness key id) -> (witness verifier key, cosignature
/// line). The key is kept so every reader, and a snapshot install, can
/// re-verify the line without the node's configuration.
pub(super) const WITNESS_COSIGNATURES: TableDefinition<(u64, u32), (&str, &str)> =
    TableDefinition::new("witness_cosignatures");
/// (source, idempotency key) -> leaf index.
pub(super) const IDEMPOTENCY: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("idempotency");
/// Query indexes: (field value, leaf index) -> (), so one field value's leaves
/// are a contiguous key range in leaf order and pages resume with a range.
pub(super) const IDX_ACTOR: TableDefinition<(&str, u64), ()> = TableDefinition::new("idx_actor");
pub(super) const IDX_ACTION: TableDefinition<(&str, u64), ()> = TableDefinition::new("idx_action");
pub(super) const IDX_RESOURCE: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("idx_resource");
pub(super) const IDX_OUTCOME: TableDefinition<(u8, u64), ()> = TableDefinition::new("idx_outcome");

/// The `meta` row holding [`StateMeta`] as JSON.
pub(super) const META_STATE: &str = "state";

/// Errors of the ledger store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed; the state may be unusable (fatal).
    #[error("storage failure: {0}")]
    Db(#[from] redb::Error),
    /// Stored bytes do not decode or do not hash as recorded (fatal: corruption).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A Merkle computation failed; out-of-range requests surface as OUT_OF_RANGE.
    #[error(transparent)]
    Merkle(#[from] MerkleError),
    /// A caller asked for something outside the tree (OUT_OF_RANGE).
    #[error("{what} {value} is beyond the tree size {size}")]
    OutOfRange {
        what: &'static str,
        value: u64,
        size: u64,
    },
    /// No checkpoint exists at the requested size (NOT_FOUND).
    #[error("no checkpoint at size {size}")]
    NoCheckpoint { size: u64 },
    /// A page token that this store did not issue (INVALID_ARGUMENT).
    #[error("invalid page token {token:?}")]
    BadPageToken { token: String },
    /// A snapshot that does not rebuild into a consistent state.
    #[error("snapshot rejected: {0}")]
    BadSnapshot(String),
    #[error("snapshot i/o: {0}")]
    Io(#[from] std::io::Error),
}

macro_rules! redb_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
redb_errors!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// Metadata that changes with every apply.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StateMeta {
    /// Opaque marker of the last applied Raft log id (owned by the raft layer).
    pub applied: Option<Vec<u8>>,
    /// Opaque last membership (owned by the raft layer).
    pub membership: Option<Vec<u8>>,
    pub tree_size: u64,
    /// Commit time of the last leaf; commit times never go backwards.
    pub last_commit_time_unix_nanos: i64,
}

/// One operation to apply, in Raft log order.
#[derive(Clone, Debug)]
pub enum Op {
    /// Append a batch of events atomically, stamped with the leader's time.
    Append {
        events: Vec<Event>,
        commit_time_unix_nanos: i64,
    },
    /// Cut a checkpoint at the current tree size (a no-op if one exists).
    Checkpoint,
    /// Add a voter's signature over the checkpoint at `size`, if it verifies
    /// with `verifier_key`.
    Cosign {
        size: u64,
        line: SignatureLine,
        verifier_key: String,
    },
    /// Add a witness's cosignature over the checkpoint at `size`, if it
    /// verifies with the `cosignature/v1` key `verifier_key`.
    WitnessCosign {
        size: u64,
        line: SignatureLine,
        verifier_key: String,
    },
    /// A Raft entry with no ledger effect (blank, membership).
    Nothing,
}

/// The result of one applied [`Op`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum OpResult {
    Appended {
        indices: Vec<u64>,
        deduplicated: Vec<bool>,
        tree_size: u64,
    },
    /// The size of the checkpoint cut, if the tree grew since the last one.
    Checkpointed {
        size: Option<u64>,
    },
    Cosigned {
        accepted: bool,
    },
    WitnessCosigned {
        accepted: bool,
    },
    #[default]
    Nothing,
}

/// A stored checkpoint with the signatures gathered for it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredCheckpoint {
    pub body: CheckpointBody,
    /// Voters' signatures: what the quorum counts.
    pub signatures: Vec<SignatureLine>,
    /// Witnesses' `cosignature/v1` lines, each verified on apply.
    pub witness_signatures: Vec<SignatureLine>,
}

impl StoredCheckpoint {
    /// The signed note: body, blank line, the voters' signature lines, then
    /// the witnesses' cosignature lines.
    pub fn note(&self) -> String {
        let lines: Vec<SignatureLine> = self
            .signatures
            .iter()
            .chain(&self.witness_signatures)
            .cloned()
            .collect();
        checkpoint::assemble_note(&self.body, &lines)
    }
}

/// Filters of a `Query`; `None` matches anything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
    pub outcome: Option<Outcome>,
    /// Event time lower bound, inclusive.
    pub since_unix_nanos: Option<i64>,
    /// Event time upper bound, exclusive.
    pub until_unix_nanos: Option<i64>,
}

impl QueryFilter {
    fn matches(&self, record: &LeafRecord) -> bool {
        let e = &record.event;
        self.actor.as_ref().is_none_or(|a| *a == e.actor.id)
            && self.action.as_ref().is_none_or(|a| *a == e.action)
            && self.resource.as_ref().is_none_or(|r| *r == e.resource)
            && self.outcome.is_none_or(|o| o == e.outcome)
            && self.since_unix_nanos.is_none_or(|t| e.time_unix_nanos >= t)
            && self.until_unix_nanos.is_none_or(|t| e.time_unix_nanos < t)
    }
}

/// What a tile request finds; see [`LedgerStore::read_tile`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TileRead {
    /// No checkpoint has the required signatures yet.
    NoCheckpoint,
    /// The checkpoint, of `size` leaves, holds only `covered` of the tile's
    /// hashes or entries.
    NotCovered { size: u64, covered: u16 },
    /// The tile's hashes concatenated, or the entry bundle.
    Data(Vec<u8>),
}

/// Leaves as (leaf index, leaf bytes).
pub type Leaves = Vec<(u64, Vec<u8>)>;

/// One page of query results.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryPage {
    pub entries: Leaves,
    /// Where to resume; `None` when the scan reached the end.
    pub next_page_token: Option<String>,
}

/// The redb-backed ledger state of one node.
pub struct LedgerStore {
    db: Database,
    /// The checkpoint origin line; fixed for the life of the log.
    origin: String,
}

/// Reads stored hashes inside a transaction (read or write).
struct TableHashes<'a, T: ReadableTable<u64, &'static [u8; 32]>>(&'a T);

impl<T: ReadableTable<u64, &'static [u8; 32]>> HashStore for TableHashes<'_, T> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        indexes
            .iter()
            .map(|&i| match self.0.get(i) {
                Ok(Some(v)) => Ok(*v.value()),
                Ok(None) => Err(MerkleError::MissingHash { index: i }),
                Err(e) => Err(MerkleError::Store {
                    reason: e.to_string(),
                }),
            })
            .collect()
    }
}

impl LedgerStore {
    /// Opens (or creates) the store at `path` for a log named `origin`.
    pub fn open(path: &Path, origin: &str) -> Result<Self, StoreError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(ENTRIES)?;
            txn.open_table(HASHES)?;
            txn.open_table(META)?;
            txn.open_table(CHECKPOINTS)?;
            txn.open_table(SIGNATURES)?;
            txn.open_table(WITNESS_COSIGNATURES)?;
            txn.open_table(IDEMPOTENCY)?;
            txn.open_table(IDX_ACTOR)?;
            txn.open_table(IDX_ACTION)?;
            txn.open_table(IDX_RESOURCE)?;
            txn.open_table(IDX_OUTCOME)?;
        }
        txn.commit()?;
        Ok(Self {
            db,
            origin: origin.to_string(),
        })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The current metadata (applied marker, membership, tree size).
    pub fn meta(&self) -> Result<StateMeta, StoreError> {
        let txn = self.db.begin_read()?;
        read_meta(&txn.open_table(META)?)
    }

    pub fn tree_size(&self) -> Result<u64, StoreError> {
        Ok(self.meta()?.tree_size)
    }

    /// Applies `ops` in order in one durable transaction and records
    /// `applied`/`membership` (when given) as of the last op.
    pub fn apply(
        &self,
        ops: &[Op],
        applied: Option<Vec<u8>>,
        membership: Option<Vec<u8>>,
    ) -> Result<Vec<OpResult>, StoreError> {
        let mut txn = self.db.begin_write()?;
        // Not fsync'd here: every applied entry is already durable in a
        // quorum's Raft logs and in this node's own, and is re-applied from
        // there after a crash. `export_snapshot` makes the state durable
        // before the Raft log behind it may be purged.
        txn.set_durability(Durability::None)?;
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
            w.save_meta()?;
            results
        };
        txn.commit()?;
        Ok(results)
    }

    /// Leaves `[start, end)` as (index, leaf bytes); `end` is clamped to the
    /// tree size and to one page.
    pub fn entries(&self, start: u64, end: u64) -> Result<(Leaves, u64), StoreError> {
        let txn = self.db.begin_read()?;
        let size = read_meta(&txn.open_table(META)?)?.tree_size;
        if start > size {
            return Err(StoreError::OutOfRange {
                what: "start index",
                value: start,
                size,
            });
        }
        let end = end.min(size).min(start.saturating_add(PAGE_ENTRIES_MAX));
        let table = txn.open_table(ENTRIES)?;
        let mut out = Vec::with_capacity((end.saturating_sub(start)) as usize);
        for row in table.range(start..end)? {
            let (k, v) = row?;
            out.push((k.value(), v.value().to_vec()));
        }
        if out.len() as u64 != end.saturating_sub(start) {
            return Err(StoreError::Corrupt(format!(
                "leaves {start}..{end} are not all stored"
            )));
        }
        Ok((out, size))
    }

    /// The root of the tree at `size` (<= current size).
    pub fn root(&self, size: u64) -> Result<Hash, StoreError> {
        let txn = self.db.begin_read()?;
        within("tree size", size, tree_size(&txn)?)?;
        let hashes = txn.open_table(HASHES)?;
        Ok(merkle::root(size, &TableHashes(&hashes))?)
    }

    /// Inclusion proof of leaf `index` in the tree of `size`, with the leaf
    /// hash and the root it proves against.
    pub fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<(Hash, Vec<Hash>, Hash), StoreError> {
        let txn = self.db.begin_read()?;
        within("tree size", size, tree_size(&txn)?)?;
        if index >= size {
            return Err(StoreError::OutOfRange {
                what: "leaf index",
                value: index,
                size,
            });
        }
        let hashes = txn.open_table(HASHES)?;
        let reader = TableHashes(&hashes);
        let leaf = reader.read_hashes(&[merkle::stored_hash_index(0, index)])?[0];
        let proof = merkle::inclusion_proof(index, size, &reader)?;
        let root = merkle::root(size, &reader)?;
        Ok((leaf, proof, root))
    }

    /// Consistency proof between two tree sizes, with both roots.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<(Vec<Hash>, Hash, Hash), StoreError> {
        let txn = self.db.begin_read()?;
        within("new size", new_size, tree_size(&txn)?)?;
        if old_size > new_size {
            return Err(MerkleError::SizeOutOfOrder { old_size, new_size }.into());
        }
        let hashes = txn.open_table(HASHES)?;
        let reader = TableHashes(&hashes);
        let proof = merkle::consistency_proof(old_size, new_size, &reader)?;
        Ok((
            proof,
            merkle::root(old_size, &reader)?,
            merkle::root(new_size, &reader)?,
        ))
    }

    /// The checkpoint at exactly `size`.
    pub fn checkpoint_at(&self, size: u64) -> Result<StoredCheckpoint, StoreError> {
        let txn = self.db.begin_read()?;
        read_checkpoint(&txn, size)?.ok_or(StoreError::NoCheckpoint { size })
    }

    /// The newest checkpoint carrying at least `min_signatures` signatures,
    /// looking back at most a few checkpoints (older ones are superseded);
    /// failing that, the newest one with any signature.
    pub fn latest_checkpoint(
        &self,
        min_signatures: usize,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let txn = self.db.begin_read()?;
        let (signed, fallback) = newest_checkpoints(&txn, min_signatures)?;
        Ok(signed.or(fallback))
    }

    /// The newest checkpoint carrying at least `min_signatures` signatures,
    /// with no fallback: what an auditor holding that signature policy accepts.
    pub fn latest_signed_checkpoint(
        &self,
        min_signatures: usize,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(newest_checkpoints(&txn, min_signatures)?.0)
    }

    /// A C2SP tlog-tiles tile or entry bundle, if the newest checkpoint with
    /// at least `min_signatures` signatures covers it at its width. The
    /// checkpoint and the data are read in one transaction, so what is served
    /// is exactly what that checkpoint commits to.
    pub fn read_tile(&self, tile: &Tile, min_signatures: usize) -> Result<TileRead, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(checkpoint) = newest_checkpoints(&txn, min_signatures)?.0 else {
            return Ok(TileRead::NoCheckpoint);
        };
        let size = checkpoint.body.size;
        let covered = tile.covered_width(size);
        if covered < tile.width {
            return Ok(TileRead::NotCovered { size, covered });
        }
        // A checkpoint never exceeds the tree size, so everything it covers
        // is stored; a gap below is corruption, not a missing tile.
        let data = match tile.kind {
            TileKind::Hashes { .. } => {
                let hashes = txn.open_table(HASHES)?;
                merkle::tile_hashes(tile, size, &TableHashes(&hashes))?.concat()
            }
            TileKind::Entries => {
                let first = tile.first_node();
                let end = first + u64::from(tile.width);
                let entries = txn.open_table(ENTRIES)?;
                let leaves = entries
                    .range(first..end)?
                    .map(|row| row.map(|(_, leaf)| leaf))
                    .collect::<Result<Vec<_>, _>>()?;
                if leaves.len() != usize::from(tile.width) {
                    return Err(StoreError::Corrupt(format!(
                        "leaves {first}..{end} are not all stored"
                    )));
                }
                tile::encode_bundle(leaves.iter().map(|leaf| leaf.value()))
                    .map_err(|e| StoreError::Corrupt(format!("{tile}: {e}")))?
            }
        };
        Ok(TileRead::Data(data))
    }

    /// Sizes of stored checkpoints, newest first, at most `limit`.
    pub fn checkpoint_sizes(&self, limit: usize) -> Result<Vec<u64>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CHECKPOINTS)?;
        let mut out = Vec::new();
        for row in table.iter()?.rev().take(limit) {
            out.push(row?.0.value());
        }
        Ok(out)
    }

    /// Runs a query; results are in leaf-index order, one page at a time.
    pub fn query(
        &self,
        filter: &QueryFilter,
        page_size: u64,
        page_token: Option<&str>,
    ) -> Result<QueryPage, StoreError> {
        let after = match page_token {
            None | Some("") => 0,
            Some(t) => t.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
                StoreError::BadPageToken {
                    token: t.to_string(),
                }
            })?,
        };
        let page_size = page_size.clamp(1, PAGE_ENTRIES_MAX) as usize;
        let txn = self.db.begin_read()?;
        let entries = txn.open_table(ENTRIES)?;
        // Candidates come from the most selective index the filter names;
        // the rest of the filter is checked on the decoded leaf.
        let candidates: Box<dyn Iterator<Item = Result<u64, StoreError>>> =
            if let Some(actor) = &filter.actor {
                str_index_scan(&txn, IDX_ACTOR, actor, after)?
            } else if let Some(resource) = &filter.resource {
                str_index_scan(&txn, IDX_RESOURCE, resource, after)?
            } else if let Some(action) = &filter.action {
                str_index_scan(&txn, IDX_ACTION, action, after)?
            } else if let Some(outcome) = filter.outcome {
                let table = txn.open_table(IDX_OUTCOME)?;
                let code = outcome.code();
                Box::new(
                    table
                        .range((code, after)..=(code, u64::MAX))?
                        .map(|r| r.map(|(k, _)| k.value().1).map_err(StoreError::from)),
                )
            } else {
                Box::new(
                    entries
                        .range(after..)?
                        .map(|r| r.map(|(k, _)| k.value()).map_err(StoreError::from)),
                )
            };
        let mut page = QueryPage {
            entries: Vec::new(),
            next_page_token: None,
        };
        for (scanned, index) in candidates.enumerate() {
            let index = index?;
            if scanned as u64 >= QUERY_SCAN_ROWS_MAX || page.entries.len() >= page_size {
                page.next_page_token = Some(index.to_string());
                break;
            }
            let leaf = entries
                .get(index)?
                .ok_or_else(|| StoreError::Corrupt(format!("index names missing leaf {index}")))?
                .value()
                .to_vec();
            let record = LeafRecord::decode(&leaf)
                .map_err(|e| StoreError::Corrupt(format!("leaf {index}: {e}")))?;
            if filter.matches(&record) {
                page.entries.push((index, leaf));
            }
        }
        Ok(page)
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
        Ok(())
    }

    /// Writes a snapshot of the whole state to `path` and returns its metadata.
    pub fn export_snapshot(&self, path: &Path) -> Result<StateMeta, StoreError> {
        self.flush()?;
        let txn = self.db.begin_read()?;
        let meta = read_meta(&txn.open_table(META)?)?;
        let file = std::fs::File::create(path)?;
        let mut out = BufWriter::new(file);
        write_record(
            &mut out,
            TAG_META,
            &serde_json::to_vec(&meta).expect("meta serialises"),
        )?;
        for row in txn.open_table(ENTRIES)?.iter()? {
            let (_, leaf) = row?;
            write_record(&mut out, TAG_LEAF, leaf.value())?;
        }
        for row in txn.open_table(CHECKPOINTS)?.iter()? {
            let (size, body) = row?;
            let mut rec = size.value().to_be_bytes().to_vec();
            rec.extend_from_slice(body.value());
            write_record(&mut out, TAG_CHECKPOINT, &rec)?;
        }
        for row in txn.open_table(SIGNATURES)?.iter()? {
            let (key, line) = row?;
            let mut rec = key.value().0.to_be_bytes().to_vec();
            rec.extend_from_slice(line.value().as_bytes());
            write_record(&mut out, TAG_SIGNATURE, &rec)?;
        }
        for row in txn.open_table(WITNESS_COSIGNATURES)?.iter()? {
            let (key, value) = row?;
            let (vkey, line) = value.value();
            write_record(
                &mut out,
                TAG_WITNESS_COSIGNATURE,
                &witness_record(key.value().0, vkey, line),
            )?;
        }
        write_record(&mut out, TAG_END, &[])?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(meta)
    }

    /// Replaces the whole state with the snapshot at `path`, rebuilding and
    /// checking the Merkle tree; on any error the old state is kept.
    pub fn import_snapshot(&self, path: &Path) -> Result<StateMeta, StoreError> {
        let mut input = BufReader::new(std::fs::File::open(path)?);
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.delete_table(ENTRIES)?;
        txn.delete_table(CHECKPOINTS)?;
        txn.delete_table(HASHES)?;
        txn.delete_table(SIGNATURES)?;
        txn.delete_table(WITNESS_COSIGNATURES)?;
        txn.delete_table(IDEMPOTENCY)?;
        for def in [IDX_ACTOR, IDX_ACTION, IDX_RESOURCE] {
            txn.delete_table(def)?;
        }
        txn.delete_table(IDX_OUTCOME)?;
        let meta = {
            let mut w = Writer::open(&txn, &self.origin)?;
            let (tag, rec) = read_record(&mut input)?;
            if tag != TAG_META {
                return Err(StoreError::BadSnapshot(
                    "does not start with metadata".into(),
                ));
            }
            let target: StateMeta = serde_json::from_slice(&rec)
                .map_err(|e| StoreError::BadSnapshot(format!("metadata: {e}")))?;
            w.meta = StateMeta {
                tree_size: 0,
                last_commit_time_unix_nanos: 0,
                ..target.clone()
            };
            loop {
                let (tag, rec) = read_record(&mut input)?;
                match tag {
                    TAG_LEAF => w.restore_leaf(&rec)?,
                    TAG_CHECKPOINT => w.restore_checkpoint(&rec)?,
                    TAG_SIGNATURE => w.restore_signature(&rec)?,
                    TAG_WITNESS_COSIGNATURE => w.restore_witness_cosignature(&rec)?,
                    TAG_END => break,
                    other => {
                        return Err(StoreError::BadSnapshot(format!(
                            "unknown record tag {other}"
                        )))
                    }
                }
            }
            if w.meta.tree_size != target.tree_size {
                return Err(StoreError::BadSnapshot(format!(
                    "holds {} leaves but claims {}",
                    w.meta.tree_size, target.tree_size
                )));
            }
            w.save_meta()?;
            w.meta.clone()
        };
        txn.commit()?;
        Ok(meta)
    }
}

const TAG_META: u8 = 1;
const TAG_LEAF: u8 = 2;
const TAG_CHECKPOINT: u8 = 3;
const TAG_SIGNATURE: u8 = 4;
/// Size, then `verifier key \n cosignature line`. Snapshots without any are
/// still read; a node older than this tag refuses snapshots that have one.
const TAG_WITNESS_COSIGNATURE: u8 = 5;
const TAG_END: u8 = 0xff;
/// Largest snapshot record: a leaf, or a checkpoint body, or the metadata
/// (which holds the membership).
const SNAPSHOT_RECORD_BYTES_MAX: usize = 1024 * 1024;
const _: () = assert!(crate::limits::LEAF_BYTES_MAX < SNAPSHOT_RECORD_BYTES_MAX);

fn write_record(out: &mut impl Write, tag: u8, rec: &[u8]) -> std::io::Result<()> {
    out.write_all(&[tag])?;
    out.write_all(&(rec.len() as u32).to_be_bytes())?;
    out.write_all(rec)
}

fn read_record(input: &mut impl Read) -> Result<(u8, Vec<u8>), StoreError> {
    let mut head = [0u8; 5];
    input
        .read_exact(&mut head)
        .map_err(|e| StoreError::BadSnapshot(format!("truncated: {e}")))?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > SNAPSHOT_RECORD_BYTES_MAX {
        return Err(StoreError::BadSnapshot(format!(
            "record of {len} bytes exceeds {SNAPSHOT_RECORD_BYTES_MAX}"
        )));
    }
    let mut rec = vec![0u8; len];
    input
        .read_exact(&mut rec)
        .map_err(|e| StoreError::BadSnapshot(format!("truncated: {e}")))?;
    Ok((head[0], rec))
}

fn read_meta(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<StateMeta, StoreError> {
    match table.get(META_STATE)? {
        None => Ok(StateMeta::default()),
        Some(v) => serde_json::from_slice(v.value())
            .map_err(|e| StoreError::Corrupt(format!("state metadata: {e}"))),
    }
}

fn tree_size(txn: &ReadTransaction) -> Result<u64, StoreError> {
    Ok(read_meta(&txn.open_table(META)?)?.tree_size)
}

/// `value` (a size) may not exceed the tree size.
fn within(what: &'static str, value: u64, size: u64) -> Result<(), StoreError> {
    if value > size {
        return Err(StoreError::OutOfRange { what, value, size });
    }
    Ok(())
}

/// The newest checkpoint with at least `min_signatures` signatures, and the
/// newest with any, among the last few: older ones are superseded, and the
/// bound keeps the scan short whatever the history.
fn newest_checkpoints(
    txn: &ReadTransaction,
    min_signatures: usize,
) -> Result<(Option<StoredCheckpoint>, Option<StoredCheckpoint>), StoreError> {
    const LOOK_BACK_CHECKPOINTS: usize = 8;
    let table = txn.open_table(CHECKPOINTS)?;
    let mut fallback = None;
    for row in table.iter()?.rev().take(LOOK_BACK_CHECKPOINTS) {
        let (size, _) = row?;
        if let Some(cp) = read_checkpoint(txn, size.value())? {
            if cp.signatures.len() >= min_signatures {
                return Ok((Some(cp), fallback));
            }
            if fallback.is_none() && !cp.signatures.is_empty() {
                fallback = Some(cp);
            }
        }
    }
    Ok((None, fallback))
}

fn read_checkpoint(
    txn: &ReadTransaction,
    size: u64,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let checkpoints: ReadOnlyTable<u64, &[u8]> = txn.open_table(CHECKPOINTS)?;
    let Some(text) = checkpoints.get(size)? else {
        return Ok(None);
    };
    let body = CheckpointBody::parse(text.value())
        .map_err(|e| StoreError::Corrupt(format!("checkpoint {size}: {e}")))?;
    let sigs = txn.open_table(SIGNATURES)?;
    let mut signatures = Vec::new();
    for row in sigs.range((size, 0)..=(size, u32::MAX))? {
        let (_, line) = row?;
        signatures.push(
            SignatureLine::parse(line.value())
                .map_err(|e| StoreError::Corrupt(format!("signature at {size}: {e}")))?,
        );
    }
    let witness = txn.open_table(WITNESS_COSIGNATURES)?;
    let mut witness_signatures = Vec::new();
    for row in witness.range((size, 0)..=(size, u32::MAX))? {
        let (_, value) = row?;
        witness_signatures.push(
            SignatureLine::parse(value.value().1)
                .map_err(|e| StoreError::Corrupt(format!("witness cosignature at {size}: {e}")))?,
        );
    }
    Ok(Some(StoredCheckpoint {
        body,
        signatures,
        witness_signatures,
    }))
}

fn str_index_scan(
    txn: &ReadTransaction,
    def: TableDefinition<(&'static str, u64), ()>,
    value: &str,
    after: u64,
) -> Result<Box<dyn Iterator<Item = Result<u64, StoreError>>>, StoreError> {
    let table = txn.open_table(def)?;
    let rows: Vec<Result<u64, StoreError>> = table
        .range((value, after)..=(value, u64::MAX))?
        .take(QUERY_SCAN_ROWS_MAX as usize + 1)
        .map(|r| r.map(|(k, _)| k.value().1).map_err(StoreError::from))
        .collect();
    Ok(Box::new(rows.into_iter()))
}

/// The tables of one write transaction, and the metadata as it evolves.
struct Writer<'t> {
    origin: &'t str,
    entries: redb::Table<'t, u64, &'static [u8]>,
    hashes: redb::Table<'t, u64, &'static [u8; 32]>,
    meta_table: redb::Table<'t, &'static str, &'static [u8]>,
    checkpoints: redb::Table<'t, u64, &'static [u8]>,
    signatures: redb::Table<'t, (u64, u32), &'static str>,
    witness_cosignatures: redb::Table<'t, (u64, u32), (&'static str, &'static str)>,
    idempotency: redb::Table<'t, (&'static str, &'static str), u64>,
    idx_actor: redb::Table<'t, (&'static str, u64), ()>,
    idx_action: redb::Table<'t, (&'static str, u64), ()>,
    idx_resource: redb::Table<'t, (&'static str, u64), ()>,
    idx_outcome: redb::Table<'t, (u8, u64), ()>,
    meta: StateMeta,
}

impl<'t> Writer<'t> {
    fn open(txn: &'t WriteTransaction, origin: &'t str) -> Result<Self, StoreError> {
        let meta_table = txn.open_table(META)?;
        let meta = read_meta(&meta_table)?;
        Ok(Self {
            origin,
            entries: txn.open_table(ENTRIES)?,
            hashes: txn.open_table(HASHES)?,
            meta_table,
            checkpoints: txn.open_table(CHECKPOINTS)?,
            signatures: txn.open_table(SIGNATURES)?,
            witness_cosignatures: txn.open_table(WITNESS_COSIGNATURES)?,
            idempotency: txn.open_table(IDEMPOTENCY)?,
            idx_actor: txn.open_table(IDX_ACTOR)?,
            idx_action: txn.open_table(IDX_ACTION)?,
            idx_resource: txn.open_table(IDX_RESOURCE)?,
            idx_outcome: txn.open_table(IDX_OUTCOME)?,
            meta,
        })
    }

    fn save_meta(&mut self) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(&self.meta).expect("meta serialises");
        self.meta_table.insert(META_STATE, bytes.as_slice())?;
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<OpResult, StoreError> {
        match op {
            Op::Append {
                events,
                commit_time_unix_nanos,
            } => self.append(events, *commit_time_unix_nanos),
            Op::Checkpoint => Ok(OpResult::Checkpointed {
                size: self.checkpoint()?.map(|b| b.size),
            }),
            Op::Cosign {
                size,
                line,
                verifier_key,
            } => Ok(OpResult::Cosigned {
                accepted: self.cosign(*size, line, verifier_key)?,
            }),
            Op::WitnessCosign {
                size,
                line,
                verifier_key,
            } => Ok(OpResult::WitnessCosigned {
                accepted: self.witness_cosign(*size, line, verifier_key)?,
            }),
            Op::Nothing => Ok(OpResult::Nothing),
        }
    }

    fn append(&mut self, events: &[Event], commit_time: i64) -> Result<OpResult, StoreError> {
        // Commit times never go backwards even if leaders' clocks disagree.
        let commit_time = commit_time.max(self.meta.last_commit_time_unix_nanos);
        let mut indices = Vec::with_capacity(events.len());
        let mut deduplicated = Vec::with_capacity(events.len());
        for event in events {
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
            let record = LeafRecord {
                index: self.meta.tree_size,
                commit_time_unix_nanos: commit_time,
                event: event.clone(),
            };
            let index = self.add_leaf(&record.encode(), &record)?;
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

    /// Stores one leaf at the end of the tree, with its hashes and indexes.
    fn add_leaf(&mut self, leaf: &[u8], record: &LeafRecord) -> Result<u64, StoreError> {
        let index = self.meta.tree_size;
        assert_eq!(
            record.index, index,
            "a leaf index equals the tree size before append"
        );
        let hashes =
            merkle::hashes_to_store(index, &merkle::leaf_hash(leaf), &TableHashes(&self.hashes))?;
        assert_eq!(
            hashes.first().map(|h| h.0),
            Some(merkle::stored_hash_index(0, index)),
            "the first stored hash of a leaf is its own"
        );
        for (i, h) in &hashes {
            self.hashes.insert(*i, h)?;
        }
        self.entries.insert(index, leaf)?;
        let e = &record.event;
        self.idx_actor.insert((e.actor.id.as_str(), index), ())?;
        self.idx_action.insert((e.action.as_str(), index), ())?;
        self.idx_resource.insert((e.resource.as_str(), index), ())?;
        self.idx_outcome.insert((e.outcome.code(), index), ())?;
        if let Some(key) = &e.idempotency_key {
            self.idempotency
                .insert((e.source.as_str(), key.as_str()), index)?;
        }
        self.meta.tree_size = index + 1;
        self.meta.last_commit_time_unix_nanos = record.commit_time_unix_nanos;
        Ok(index)
    }

    fn checkpoint(&mut self) -> Result<Option<CheckpointBody>, StoreError> {
        let size = self.meta.tree_size;
        let latest = self.checkpoints.last()?.map(|(k, _)| k.value());
        if let Some(latest) = latest {
            assert!(latest <= size, "a checkpoint never exceeds the tree size");
            if latest == size {
                return Ok(None);
            }
        }
        let root = merkle::root(size, &TableHashes(&self.hashes))?;
        let body = CheckpointBody {
            origin: self.origin.to_string(),
            size,
            root,
        };
        self.checkpoints.insert(size, body.to_text().as_bytes())?;
        // Read back what was written: the stored body must be the one signed.
        let stored = self
            .checkpoints
            .get(size)?
            .map(|v| v.value().to_vec())
            .expect("checkpoint just written");
        assert_eq!(
            stored,
            body.to_text().as_bytes(),
            "checkpoint reads back as written"
        );
        Ok(Some(body))
    }

    /// The stored checkpoint body at `size`, if there is one; a body that
    /// does not parse is corruption.
    fn stored_body(&self, size: u64) -> Result<Option<CheckpointBody>, StoreError> {
        let Some(text) = self.checkpoints.get(size)?.map(|v| v.value().to_vec()) else {
            return Ok(None);
        };
        CheckpointBody::parse(&text)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("checkpoint {size}: {e}")))
    }

    fn cosign(
        &mut self,
        size: u64,
        line: &SignatureLine,
        verifier_key: &str,
    ) -> Result<bool, StoreError> {
        let Some(body) = self.stored_body(size)? else {
            return Ok(false);
        };
        if checkpoint::verify_signature(verifier_key, &body, line).is_err() {
            return Ok(false);
        }
        self.signatures
            .insert((size, line.key_id), line.to_line().as_str())?;
        Ok(true)
    }

    /// Stores a witness's cosignature over the checkpoint at `size` if it
    /// verifies with `verifier_key`; the first one per (size, key) stays, so
    /// a re-proposed cosignature changes nothing.
    fn witness_cosign(
        &mut self,
        size: u64,
        line: &SignatureLine,
        verifier_key: &str,
    ) -> Result<bool, StoreError> {
        let Some(body) = self.stored_body(size)? else {
            return Ok(false);
        };
        let verified = CosignatureVerifier::new(verifier_key)
            .and_then(|v| v.verify_line(&body, line))
            .is_ok();
        if !verified {
            return Ok(false);
        }
        if self
            .witness_cosignatures
            .get((size, line.key_id))?
            .is_none()
        {
            self.witness_cosignatures
                .insert((size, line.key_id), (verifier_key, line.to_line().as_str()))?;
        }
        Ok(true)
    }

    fn restore_leaf(&mut self, leaf: &[u8]) -> Result<(), StoreError> {
        let record = LeafRecord::decode(leaf)
            .map_err(|e| StoreError::BadSnapshot(format!("leaf {}: {e}", self.meta.tree_size)))?;
        if record.index != self.meta.tree_size {
            return Err(StoreError::BadSnapshot(format!(
                "leaf {} found where {} was expected",
                record.index, self.meta.tree_size
            )));
        }
        self.add_leaf(leaf, &record)?;
        Ok(())
    }

    fn restore_checkpoint(&mut self, rec: &[u8]) -> Result<(), StoreError> {
        let (size, text) = split_size(rec)?;
        let body = CheckpointBody::parse(text)
            .map_err(|e| StoreError::BadSnapshot(format!("checkpoint {size}: {e}")))?;
        if body.size != size || size > self.meta.tree_size || body.origin != self.origin {
            return Err(StoreError::BadSnapshot(format!(
                "checkpoint {size} does not belong to this log"
            )));
        }
        let root = merkle::root(size, &TableHashes(&self.hashes))?;
        if root != body.root {
            return Err(StoreError::BadSnapshot(format!(
                "checkpoint {size} root does not match the leaves"
            )));
        }
        self.checkpoints.insert(size, text)?;
        Ok(())
    }

    fn restore_signature(&mut self, rec: &[u8]) -> Result<(), StoreError> {
        let (size, line) = split_size(rec)?;
        let line = std::str::from_utf8(line)
            .map_err(|_| StoreError::BadSnapshot(format!("signature at {size} is not UTF-8")))?;
        let sig = SignatureLine::parse(line)
            .map_err(|e| StoreError::BadSnapshot(format!("signature at {size}: {e}")))?;
        if self.checkpoints.get(size)?.is_none() {
            return Err(StoreError::BadSnapshot(format!(
                "signature for missing checkpoint {size}"
            )));
        }
        self.signatures.insert((size, sig.key_id), line)?;
        Ok(())
    }

    /// Restores a witness cosignature, re-verifying it against the restored
    /// checkpoint: a snapshot cannot bring in a cosignature that does not hold.
    fn restore_witness_cosignature(&mut self, rec: &[u8]) -> Result<(), StoreError> {
        let (size, rest) = split_size(rec)?;
        let bad = |reason: &str| {
            StoreError::BadSnapshot(format!("witness cosignature at {size}: {reason}"))
        };
        let text = std::str::from_utf8(rest).map_err(|_| bad("not UTF-8"))?;
        let (vkey, line) = text
            .split_once('\n')
            .ok_or_else(|| bad("no verifier key"))?;
        let sig = SignatureLine::parse(line).map_err(|e| bad(&e.to_string()))?;
        if !self.witness_cosign(size, &sig, vkey)? {
            return Err(bad("does not verify over a restored checkpoint"));
        }
        Ok(())
    }
}

/// A witness cosignature snapshot record: size, verifier key, newline, line.
fn witness_record(size: u64, vkey: &str, line: &str) -> Vec<u8> {
    let mut rec = size.to_be_bytes().to_vec();
    rec.extend_from_slice(vkey.as_bytes());
    rec.push(b'\n');
    rec.extend_from_slice(line.as_bytes());
    rec
}

fn split_size(rec: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    if rec.len() < 8 {
        return Err(StoreError::BadSnapshot("short record".into()));
    }
    let (head, rest) = rec.split_at(8);
    Ok((u64::from_be_bytes(head.try_into().expect("8 bytes")), rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::checkpoint::{generate_key, NoteSigner};
    use crate::ledger::cosignature::Cosigner;
    use crate::ledger::event::Actor;

    const ORIGIN: &str = "ironlog.test/log";

    fn event(n: u64) -> Event {
        Event {
            time_unix_nanos: n as i64,
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
            details: Default::default(),
            idempotency_key: None,
        }
    }

    /// A store holding a checkpoint at size 3 signed by one voter.
    fn store_with_checkpoint(dir: &Path) -> (LedgerStore, CheckpointBody) {
        let store = LedgerStore::open(&dir.join("ledger.redb"), ORIGIN).unwrap();
        let append = Op::Append {
            events: (0..3).map(event).collect(),
            commit_time_unix_nanos: 1,
        };
        store.apply(&[append, Op::Checkpoint], None, None).unwrap();
        let body = store.checkpoint_at(3).unwrap().body;
        let (skey, vkey) = generate_key(ORIGIN).unwrap();
        let line = NoteSigner::from_skey(&skey).unwrap().sign(&body).unwrap();
        let cosign = Op::Cosign {
            size: 3,
            line,
            verifier_key: vkey,
        };
        assert_eq!(
            store.apply(&[cosign], None, None).unwrap(),
            vec![OpResult::Cosigned { accepted: true }]
        );
        (store, body)
    }

    fn witness_op(body: &CheckpointBody, witness: &Cosigner, time: u64) -> Op {
        Op::WitnessCosign {
            size: body.size,
            line: witness.cosign(body, time).unwrap(),
            verifier_key: witness.verifier_key(),
        }
    }

    #[test]
    fn witness_cosignatures_are_kept_apart_from_voter_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let (store, body) = store_with_checkpoint(dir.path());
        let (wskey, _) = Cosigner::generate("witness.test/w1").unwrap();
        let witness = Cosigner::from_skey(&wskey).unwrap();
        let results = store
            .apply(&[witness_op(&body, &witness, 7)], None, None)
            .unwrap();
        assert_eq!(results, vec![OpResult::WitnessCosigned { accepted: true }]);

        let cp = store.checkpoint_at(3).unwrap();
        assert_eq!(cp.signatures.len(), 1);
        assert_eq!(cp.witness_signatures.len(), 1);
        // A witness does not make up for a missing voter.
        assert!(
            store
                .latest_checkpoint(2)
                .unwrap()
                .unwrap()
                .signatures
                .len()
                < 2
        );
        let note = cp.note();
        let voter_at = note.find(&cp.signatures[0].to_line()).unwrap();
        let witness_at = note.find(&cp.witness_signatures[0].to_line()).unwrap();
        assert!(voter_at < witness_at, "voters first, then witnesses");

        // The same witness again at the same size keeps the first line.
        store
            .apply(&[witness_op(&body, &witness, 8)], None, None)
            .unwrap();
        assert_eq!(store.checkpoint_at(3).unwrap(), cp);
    }

    #[test]
    fn invalid_witness_cosignatures_are_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (store, body) = store_with_checkpoint(dir.path());
        let (wskey, _) = Cosigner::generate("witness.test/w1").unwrap();
        let witness = Cosigner::from_skey(&wskey).unwrap();
        let (_, other_vkey) = Cosigner::generate("witness.test/w2").unwrap();
        let mut other_body = body.clone();
        other_body.root[0] ^= 1;
        let ops = [
            // Over another root.
            Op::WitnessCosign {
                size: 3,
                line: witness.cosign(&other_body, 1).unwrap(),
                verifier_key: witness.verifier_key(),
            },
            // Claimed for another key.
            Op::WitnessCosign {
                size: 3,
                line: witness.cosign(&body, 1).unwrap(),
                verifier_key: other_vkey,
            },
            // A voter key given as a witness key.
            Op::WitnessCosign {
                size: 3,
                line: witness.cosign(&body, 1).unwrap(),
                verifier_key: generate_key(ORIGIN).unwrap().1,
            },
            // No checkpoint at that size.
            Op::WitnessCosign {
                size: 2,
                line: witness.cosign(&body, 1).unwrap(),
                verifier_key: witness.verifier_key(),
            },
        ];
        let results = store.apply(&ops, None, None).unwrap();
        assert!(results
            .iter()
            .all(|r| *r == OpResult::WitnessCosigned { accepted: false }));
        assert!(store
            .checkpoint_at(3)
            .unwrap()
            .witness_signatures
            .is_empty());
    }

    #[test]
    fn snapshots_carry_witness_cosignatures() {
        let dir = tempfile::tempdir().unwrap();
        let (store, body) = store_with_checkpoint(dir.path());
        let (wskey, _) = Cosigner::generate("witness.test/w1").unwrap();
        let witness = Cosigner::from_skey(&wskey).unwrap();
        store
            .apply(&[witness_op(&body, &witness, 7)], None, None)
            .unwrap();
        let snap = dir.path().join("snap");
        store.export_snapshot(&snap).unwrap();

        let other = LedgerStore::open(&dir.path().join("other.redb"), ORIGIN).unwrap();
        other.import_snapshot(&snap).unwrap();
        assert_eq!(
            other.checkpoint_at(3).unwrap(),
            store.checkpoint_at(3).unwrap()
        );

        // A snapshot whose witness cosignature does not verify is refused,
        // and the state it would have replaced is kept.
        let mut bytes = std::fs::read(&snap).unwrap();
        let line = witness.cosign(&body, 7).unwrap().to_line();
        let mut forged_line = witness.cosign(&body, 7).unwrap();
        forged_line.signature[20] ^= 1;
        let forged_line = forged_line.to_line();
        assert_eq!(forged_line.len(), line.len());
        let at = bytes
            .windows(line.len())
            .position(|w| w == line.as_bytes())
            .expect("the cosignature is in the snapshot");
        bytes[at..at + line.len()].copy_from_slice(forged_line.as_bytes());
        std::fs::write(&snap, bytes).unwrap();
        let fresh = LedgerStore::open(&dir.path().join("fresh.redb"), ORIGIN).unwrap();
        assert!(matches!(
            fresh.import_snapshot(&snap),
            Err(StoreError::BadSnapshot(_))
        ));
        assert_eq!(fresh.tree_size().unwrap(), 0);
    }
}
