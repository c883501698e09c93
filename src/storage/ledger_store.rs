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
//! - Every batch is checked with [`batch::validate_batch`] where it is
//!   applied, whatever path its command took into the log; a refused batch
//!   changes nothing ([`OpResult::Refused`]).
//! - Witness cosignatures live in their own table, apart from voter
//!   signatures, so they never count towards the voter quorum; a note shows
//!   the voter signatures first, then the witness cosignatures. A witness
//!   cosignature is accepted only from a key in the replicated witness set
//!   ([`Op::SetWitnesses`]), one per key and checkpoint.
//! - A checkpoint carries at most [`CHECKPOINT_SIGNATURE_LINES_MAX`] lines,
//!   of which at most [`CHECKPOINT_WITNESS_LINES_MAX`] are witnesses', so
//!   its note always opens (signed_note refuses more than 100).
//! - Only a checkpoint with a quorum of voter signatures is ever "latest".
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
//! refuses it if any checkpoint root does not match, any voter signature by
//! a voter of the snapshot's own membership or any witness cosignature does
//! not verify, or a checkpoint carries too many lines, so a corrupt or
//! forged snapshot cannot replace a good state.
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use crate::ledger::batch;
use crate::ledger::checkpoint::{self, CheckpointBody, SignatureLine};
use crate::ledger::cosignature::CosignatureVerifier;
use crate::ledger::event::{Event, LeafRecord, Outcome};
use crate::ledger::merkle::{self, Hash, HashStore, MerkleError};
use crate::ledger::tile::{self, Tile, TileKind};
use crate::limits::{
    CHECKPOINT_SIGNATURE_LINES_MAX, CHECKPOINT_WITNESS_LINES_MAX, PAGE_ENTRIES_MAX,
    QUERY_SCAN_ROWS_MAX, WITNESS_KEYS_FORMER_MAX,
};

/// Most voter signature lines per checkpoint: what the witnesses leave.
const CHECKPOINT_VOTER_LINES_MAX: usize =
    CHECKPOINT_SIGNATURE_LINES_MAX - CHECKPOINT_WITNESS_LINES_MAX;
// Every configured witness can cosign, and every voter a configuration can
// list (its peers and itself) can sign, within the note's lines.
const _: () = assert!(crate::config::WITNESSES_MAX <= CHECKPOINT_WITNESS_LINES_MAX);
const VOTERS_CONFIGURABLE_MAX: usize = crate::config::PEERS_MAX + 1;
const _: () = assert!(VOTERS_CONFIGURABLE_MAX <= CHECKPOINT_VOTER_LINES_MAX);

/// The ledger file's name inside a node's data dir.
pub const LEDGER_FILE: &str = "ledger.redb";

// The tables are visible to the crate so that `fsck` reads the
// very definitions the store writes with.
pub(crate) const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
pub(crate) const HASHES: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("hashes");
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Checkpoint size -> body text.
pub(crate) const CHECKPOINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("checkpoints");
/// (checkpoint size, key id) -> signature line.
pub(crate) const SIGNATURES: TableDefinition<(u64, u32), &str> = TableDefinition::new("signatures");
/// (checkpoint size, witness key id) -> (witness verifier key, cosignature
/// line). The key is kept so every reader, and a snapshot install, can
/// re-verify the line without the node's configuration.
pub(crate) const WITNESS_COSIGNATURES: TableDefinition<(u64, u32), (&str, &str)> =
    TableDefinition::new("witness_cosignatures");
/// (source, idempotency key) -> leaf index.
pub(crate) const IDEMPOTENCY: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("idempotency");
/// Query indexes: (field value, leaf index) -> (), so one field value's leaves
/// are a contiguous key range in leaf order and pages resume with a range.
pub(crate) const IDX_ACTOR: TableDefinition<(&str, u64), ()> = TableDefinition::new("idx_actor");
pub(crate) const IDX_ACTION: TableDefinition<(&str, u64), ()> = TableDefinition::new("idx_action");
pub(crate) const IDX_RESOURCE: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("idx_resource");
pub(crate) const IDX_OUTCOME: TableDefinition<(u8, u64), ()> = TableDefinition::new("idx_outcome");

/// The `meta` row holding [`StateMeta`] as JSON.
pub(crate) const META_STATE: &str = "state";

/// Errors of the ledger store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed; the state may be unusable (fatal).
    #[error("storage failure: {0}")]
    Db(#[from] redb::Error),
    /// Stored bytes do not decode or do not hash as recorded (fatal: corruption).
    #[error("stored data is corrupt: table {table}, key {key}: {reason}")]
    Corrupt {
        /// The redb table, as named in the file.
        table: &'static str,
        /// The key (or key range) whose value is wrong.
        key: String,
        reason: String,
    },
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

/// A [`StoreError::Corrupt`] naming where: the table, the key, and what is
/// wrong with the value there.
fn corrupt(
    table: &'static str,
    key: impl std::fmt::Display,
    reason: impl std::fmt::Display,
) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.to_string(),
        reason: reason.to_string(),
    }
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
    /// The replicated witness keys; `None` until the first
    /// [`Op::SetWitnesses`]. Left out of the JSON while `None`, so older
    /// snapshots and stores read unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witnesses: Option<WitnessKeys>,
}

/// The witness keys the cluster accepts cosignatures from, replicated
/// through the log so every replica checks the same set.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct WitnessKeys {
    /// `cosignature/v1` verifier keys whose new cosignatures are accepted.
    pub current: Vec<String>,
    /// Keys once current and since removed. Their cosignatures from before
    /// the removal stay stored, so a snapshot install must still accept them.
    pub former: Vec<String>,
    /// The newest checkpoint when the set was first replicated: checkpoints
    /// up to it may carry cosignatures admitted before there was a set, by
    /// the key the command carried, and a snapshot install checks those
    /// against that key alone.
    pub legacy_through_size: Option<u64>,
}

impl WitnessKeys {
    /// Whether cosignatures by `vkey` may be stored at checkpoint `size`
    /// when restored from a snapshot.
    fn admits_restored(&self, vkey: &str, size: u64) -> bool {
        let vkey = vkey.trim();
        self.current.iter().chain(&self.former).any(|k| k == vkey)
            || self.legacy_through_size.is_some_and(|s| size <= s)
    }
}

/// Whether two lists name the same witness keys, in any order and ignoring
/// surrounding whitespace: what the leader compares its configured list
/// with [`LedgerStore::witness_keys`] by before proposing
/// [`Op::SetWitnesses`].
pub fn same_witness_keys(a: &[String], b: &[String]) -> bool {
    let set = |keys: &[String]| {
        keys.iter()
            .map(|k| k.trim().to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    a.len() == b.len() && set(a) == set(b)
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
    /// Add a witness's cosignature over the checkpoint at `size`, if
    /// `verifier_key` is in the replicated witness set and the line verifies
    /// with it.
    WitnessCosign {
        size: u64,
        line: SignatureLine,
        verifier_key: String,
    },
    /// Replace the replicated witness set, if every key is a valid
    /// `cosignature/v1` key, none repeats and there are at most
    /// `config::WITNESSES_MAX`.
    SetWitnesses { verifier_keys: Vec<String> },
    /// A command refused before it reached the store (a cosignature by a
    /// non-voter, a line that does not parse): recorded as
    /// [`OpResult::Refused`] with this reason, changing nothing.
    Refuse { reason: String },
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
    /// The witness set was replaced; `changed` is false when it already was
    /// the one given.
    WitnessesSet {
        changed: bool,
    },
    /// The command was refused where it was applied and changed nothing
    /// (no leaf, no index, no signature); `reason` says why, for the
    /// proposer's caller. Every replica refuses it alike.
    Refused {
        reason: String,
    },
    #[default]
    Nothing,
}

impl OpResult {
    /// Why the command was refused, if it was: lets callers that match
    /// only the success they expect report a refusal as such.
    pub fn refusal(&self) -> Option<&str> {
        match self {
            OpResult::Refused { reason } => Some(reason),
            _ => None,
        }
    }

    fn refused(reason: impl std::fmt::Display) -> Self {
        OpResult::Refused {
            reason: reason.to_string(),
        }
    }
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

    /// The replicated witness keys cosignatures are accepted from now, in
    /// the order last set; empty until the first [`Op::SetWitnesses`].
    pub fn witness_keys(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .meta()?
            .witnesses
            .map(|w| w.current)
            .unwrap_or_default())
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
            return Err(corrupt(
                "entries",
                format!("{start}..{end}"),
                "not all stored",
            ));
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

    /// The newest checkpoint carrying at least `quorum` voter signatures
    /// (and at least one, whatever `quorum` says), looking back at most a
    /// few checkpoints (older ones are superseded); `None` if none has them.
    /// Never a checkpoint short of the quorum: what is served as "the log's
    /// state" must be what a majority of voters signed.
    pub fn latest_checkpoint(&self, quorum: usize) -> Result<Option<StoredCheckpoint>, StoreError> {
        let txn = self.db.begin_read()?;
        newest_signed_checkpoint(&txn, quorum)
    }

    /// The same as [`LedgerStore::latest_checkpoint`]: what an auditor
    /// holding that signature policy accepts.
    pub fn latest_signed_checkpoint(
        &self,
        min_signatures: usize,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.latest_checkpoint(min_signatures)
    }

    /// A C2SP tlog-tiles tile or entry bundle, if the newest checkpoint with
    /// at least `min_signatures` signatures covers it at its width. The
    /// checkpoint and the data are read in one transaction, so what is served
    /// is exactly what that checkpoint commits to.
    pub fn read_tile(&self, tile: &Tile, min_signatures: usize) -> Result<TileRead, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(checkpoint) = newest_signed_checkpoint(&txn, min_signatures)? else {
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
                    return Err(corrupt(
                        "entries",
                        format!("{first}..{end}"),
                        "not all stored",
                    ));
                }
                tile::encode_bundle(leaves.iter().map(|leaf| leaf.value()))
                    .map_err(|e| corrupt("entries", tile, e))?
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
                .ok_or_else(|| corrupt("entries", index, "missing, but a query index names it"))?
                .value()
                .to_vec();
            let record = LeafRecord::decode(&leaf).map_err(|e| corrupt("entries", index, e))?;
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
    /// checking the Merkle tree and every signature; on any error the old
    /// state is kept (nothing is written).
    ///
    /// `check` sees the snapshot's own metadata before anything is
    /// restored, and returns the verifier keys of the voters of its
    /// membership (the membership is opaque here): every voter signature
    /// naming one of them must verify with it. An `Err` from `check`
    /// refuses the snapshot with that reason.
    pub fn import_snapshot(
        &self,
        path: &Path,
        check: impl FnOnce(&StateMeta) -> Result<Vec<String>, String>,
    ) -> Result<StateMeta, StoreError> {
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
            let voters = VoterKey::parse_all(&check(&target).map_err(StoreError::BadSnapshot)?);
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
                    TAG_SIGNATURE => w.restore_signature(&rec, &voters)?,
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
        Some(v) => serde_json::from_slice(v.value()).map_err(|e| corrupt("meta", META_STATE, e)),
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

/// The newest checkpoint with at least `min_signatures` voter signatures
/// (at least one: an unsigned checkpoint is never served), among the last
/// few: older ones are superseded, and the bound keeps the scan short
/// whatever the history.
fn newest_signed_checkpoint(
    txn: &ReadTransaction,
    min_signatures: usize,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    const LOOK_BACK_CHECKPOINTS: usize = 8;
    let min_signatures = min_signatures.max(1);
    let table = txn.open_table(CHECKPOINTS)?;
    for row in table.iter()?.rev().take(LOOK_BACK_CHECKPOINTS) {
        let (size, _) = row?;
        if let Some(cp) = read_checkpoint(txn, size.value())? {
            if cp.signatures.len() >= min_signatures {
                return Ok(Some(cp));
            }
        }
    }
    Ok(None)
}

fn read_checkpoint(
    txn: &ReadTransaction,
    size: u64,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let checkpoints: ReadOnlyTable<u64, &[u8]> = txn.open_table(CHECKPOINTS)?;
    let Some(text) = checkpoints.get(size)? else {
        return Ok(None);
    };
    let body = CheckpointBody::parse(text.value()).map_err(|e| corrupt("checkpoints", size, e))?;
    let sigs = txn.open_table(SIGNATURES)?;
    let mut signatures = Vec::new();
    for row in sigs.range((size, 0)..=(size, u32::MAX))? {
        let (_, line) = row?;
        signatures
            .push(SignatureLine::parse(line.value()).map_err(|e| corrupt("signatures", size, e))?);
    }
    let witness = txn.open_table(WITNESS_COSIGNATURES)?;
    let mut witness_signatures = Vec::new();
    for row in witness.range((size, 0)..=(size, u32::MAX))? {
        let (_, value) = row?;
        witness_signatures.push(
            SignatureLine::parse(value.value().1)
                .map_err(|e| corrupt("witness_cosignatures", size, e))?,
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
        if let Err(e) = batch::validate_batch(events, commit_time) {
            return Ok(OpResult::refused(e));
        }
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
            .map_err(|e| corrupt("checkpoints", size, e))
    }

    /// Stores a voter's signature over the checkpoint at `size` if it
    /// verifies with `verifier_key` and the note has room for it.
    fn cosign(
        &mut self,
        size: u64,
        line: &SignatureLine,
        verifier_key: &str,
    ) -> Result<OpResult, StoreError> {
        let Some(body) = self.stored_body(size)? else {
            return Ok(OpResult::refused(format!("no checkpoint at size {size}")));
        };
        if let Err(e) = checkpoint::verify_signature(verifier_key, &body, line) {
            return Ok(OpResult::refused(format!("checkpoint {size}: {e}")));
        }
        if let Some(refusal) = self.voter_line_refusal(size, line.key_id)? {
            return Ok(refusal);
        }
        self.signatures
            .insert((size, line.key_id), line.to_line().as_str())?;
        Ok(OpResult::Cosigned { accepted: true })
    }

    /// A refusal if a new voter line `key_id` would pass the voter lines of
    /// checkpoint `size`; replacing a line already there adds none.
    fn voter_line_refusal(&self, size: u64, key_id: u32) -> Result<Option<OpResult>, StoreError> {
        if self.signatures.get((size, key_id))?.is_some() {
            return Ok(None);
        }
        let lines = count_lines(self.signatures.range((size, 0)..=(size, u32::MAX))?)?;
        Ok((lines >= CHECKPOINT_VOTER_LINES_MAX).then(|| {
            OpResult::refused(format!(
                "checkpoint {size} already has {lines} voter signature lines, the most it may carry"
            ))
        }))
    }

    /// Stores a witness's cosignature over the checkpoint at `size` if
    /// `verifier_key` is in the replicated witness set and the line verifies
    /// with it; the first one per (size, key) stays, so a re-proposed
    /// cosignature changes nothing.
    fn witness_cosign(
        &mut self,
        size: u64,
        line: &SignatureLine,
        verifier_key: &str,
    ) -> Result<OpResult, StoreError> {
        let admitted = self
            .meta
            .witnesses
            .as_ref()
            .is_some_and(|w| w.current.iter().any(|k| k == verifier_key.trim()));
        if !admitted {
            return Ok(OpResult::refused(format!(
                "cosignature by {}+{:08x}: its key is not in the replicated witness set",
                clip(&line.name),
                line.key_id
            )));
        }
        match self.store_witness_cosignature(size, line, verifier_key)? {
            Ok(()) => Ok(OpResult::WitnessCosigned { accepted: true }),
            Err(reason) => Ok(OpResult::Refused { reason }),
        }
    }

    /// Verifies and stores a witness cosignature whose key is admitted;
    /// `Err(reason)` when it does not verify or the note has no room.
    fn store_witness_cosignature(
        &mut self,
        size: u64,
        line: &SignatureLine,
        verifier_key: &str,
    ) -> Result<Result<(), String>, StoreError> {
        let Some(body) = self.stored_body(size)? else {
            return Ok(Err(format!("no checkpoint at size {size}")));
        };
        if let Err(e) =
            CosignatureVerifier::new(verifier_key).and_then(|v| v.verify_line(&body, line))
        {
            return Ok(Err(format!("witness cosignature at {size}: {e}")));
        }
        if self
            .witness_cosignatures
            .get((size, line.key_id))?
            .is_some()
        {
            return Ok(Ok(()));
        }
        let lines = count_lines(
            self.witness_cosignatures
                .range((size, 0)..=(size, u32::MAX))?,
        )?;
        if lines >= CHECKPOINT_WITNESS_LINES_MAX {
            return Ok(Err(format!(
                "checkpoint {size} already has {lines} witness cosignature lines, the most it may carry"
            )));
        }
        self.witness_cosignatures
            .insert((size, line.key_id), (verifier_key, line.to_line().as_str()))?;
        Ok(Ok(()))
    }

    /// Replaces the replicated witness set; refused unchanged if any key is
    /// not a `cosignature/v1` key, two keys are the same witness (same name
    /// and key ID: cosignatures are filed by key ID), or there are too many.
    fn set_witnesses(&mut self, keys: &[String]) -> Result<OpResult, StoreError> {
        let max = crate::config::WITNESSES_MAX;
        if keys.len() > max {
            return Ok(OpResult::refused(format!(
                "{} witness keys exceed the limit of {max}",
                keys.len()
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, key) in keys.iter().enumerate() {
            // Stored exactly as given and compared exactly, so refuse the
            // whitespace the parser would forgive.
            if key.trim() != key {
                return Ok(OpResult::refused(format!(
                    "witness key {i} has surrounding whitespace"
                )));
            }
            let verifier = match CosignatureVerifier::new(key) {
                Ok(v) => v,
                Err(e) => return Ok(OpResult::refused(format!("witness key {i}: {e}"))),
            };
            use signed_note::Verifier as _;
            let id = (verifier.name().to_string(), verifier.key_id());
            if !seen.insert(id.clone()) {
                return Ok(OpResult::refused(format!(
                    "witness key {i} repeats {}+{:08x}",
                    clip(&id.0),
                    id.1
                )));
            }
        }
        let old = self.meta.witnesses.clone();
        if old.as_ref().is_some_and(|w| w.current == keys) {
            return Ok(OpResult::WitnessesSet { changed: false });
        }
        let legacy_through_size = match &old {
            Some(w) => w.legacy_through_size,
            None => self.checkpoints.last()?.map(|(k, _)| k.value()),
        };
        let old = old.unwrap_or_default();
        let mut former: Vec<String> = old
            .former
            .iter()
            .chain(&old.current)
            .filter(|k| !keys.contains(k))
            .cloned()
            .collect();
        former.sort();
        former.dedup();
        if former.len() > WITNESS_KEYS_FORMER_MAX {
            return Ok(OpResult::refused(format!(
                "{} removed witness keys would be remembered, more than the limit of {WITNESS_KEYS_FORMER_MAX}",
                former.len()
            )));
        }
        self.meta.witnesses = Some(WitnessKeys {
            current: keys.to_vec(),
            former,
            legacy_through_size,
        });
        Ok(OpResult::WitnessesSet { changed: true })
    }

    fn restore_leaf(&mut self, leaf: &[u8]) -> Result<(), StoreError> {
        let record = LeafRecord::decode(leaf)
            .map_err(|e| StoreError::BadSnapshot(format!("leaf {}: {e}", self.meta.tree_size)))?;
        // The gate every append passes applies to restored leaves too: a
        // snapshot is no way around it.
        if leaf.len() > crate::limits::LEAF_BYTES_MAX {
            return Err(StoreError::BadSnapshot(format!(
                "leaf {} is {} bytes, more than {}",
                record.index,
                leaf.len(),
                crate::limits::LEAF_BYTES_MAX
            )));
        }
        record.event.validate().map_err(|e| {
            StoreError::BadSnapshot(format!("leaf {} fails validation: {e}", record.index))
        })?;
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

    /// Restores a voter signature, verifying it with the key of the voter
    /// of the snapshot's membership it names. A signature by a key that
    /// membership does not list (a voter since removed) cannot be checked,
    /// so it is left out rather than stored unverified; one that names a
    /// voter and does not verify refuses the whole snapshot.
    fn restore_signature(&mut self, rec: &[u8], voters: &[VoterKey]) -> Result<(), StoreError> {
        let (size, line) = split_size(rec)?;
        let bad = |reason: String| {
            StoreError::BadSnapshot(format!("voter signature at checkpoint {size}: {reason}"))
        };
        let line = std::str::from_utf8(line).map_err(|_| bad("not UTF-8".into()))?;
        let sig = SignatureLine::parse(line).map_err(|e| bad(e.to_string()))?;
        let Some(body) = self.stored_body(size)? else {
            return Err(bad("its checkpoint is missing".into()));
        };
        let Some(voter) = voters
            .iter()
            .find(|v| v.name == sig.name && v.key_id == sig.key_id)
        else {
            return Ok(());
        };
        checkpoint::verify_signature(&voter.verifier_key, &body, &sig)
            .map_err(|e| bad(e.to_string()))?;
        if self.voter_line_refusal(size, sig.key_id)?.is_some() {
            return Err(bad(format!(
                "more than {CHECKPOINT_VOTER_LINES_MAX} voter signature lines"
            )));
        }
        self.signatures.insert((size, sig.key_id), line)?;
        Ok(())
    }

    /// Restores a witness cosignature, re-verifying it against the restored
    /// checkpoint and requiring its key to be one the restored witness set
    /// admits: a snapshot cannot bring in a cosignature that does not hold.
    fn restore_witness_cosignature(&mut self, rec: &[u8]) -> Result<(), StoreError> {
        let (size, rest) = split_size(rec)?;
        let bad = |reason: &str| {
            StoreError::BadSnapshot(format!(
                "witness cosignature at checkpoint {size}: {reason}"
            ))
        };
        let text = std::str::from_utf8(rest).map_err(|_| bad("not UTF-8"))?;
        let (vkey, line) = text
            .split_once('\n')
            .ok_or_else(|| bad("no verifier key"))?;
        let sig = SignatureLine::parse(line).map_err(|e| bad(&e.to_string()))?;
        // A snapshot from before witness sets were replicated has none:
        // its cosignatures were admitted by the key they carry.
        let admitted = self
            .meta
            .witnesses
            .as_ref()
            .is_none_or(|w| w.admits_restored(vkey, size));
        if !admitted {
            return Err(bad("its key is not in the restored witness set"));
        }
        self.store_witness_cosignature(size, &sig, vkey)?
            .map_err(|reason| bad(&reason))
    }
}

/// A voter's signed-note verifier key with the name and key ID its
/// signature lines carry, to match lines to keys without trying each.
struct VoterKey {
    name: String,
    key_id: u32,
    verifier_key: String,
}

impl VoterKey {
    /// Keys that do not parse are left out: such a voter cannot have
    /// signed, so a line naming it is as unverifiable as a stranger's.
    fn parse_all(keys: &[String]) -> Vec<VoterKey> {
        keys.iter()
            .filter_map(|k| {
                let (name, key_id) = checkpoint::verifier_key_id(k).ok()?;
                Some(VoterKey {
                    name,
                    key_id,
                    verifier_key: k.clone(),
                })
            })
            .collect()
    }
}

/// Counts the rows of a signature table range.
fn count_lines<K: redb::Key + 'static, V: redb::Value + 'static>(
    rows: redb::Range<'_, K, V>,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for row in rows {
        row?;
        n += 1;
    }
    Ok(n)
}

/// At most a short prefix of text taken from a command, for refusal
/// reasons: a forged command may carry megabytes where a name belongs.
fn clip(text: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 64;
    let mut out: String = text.chars().take(SHOWN_CHARS_MAX).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
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
            details: Default::default(),
            idempotency_key: Some(format!("k{n}")),
        }
    }

    fn voter() -> (NoteSigner, String) {
        let (skey, vkey) = generate_key(ORIGIN).unwrap();
        (NoteSigner::from_skey(&skey).unwrap(), vkey)
    }

    fn witness(name: &str) -> Cosigner {
        Cosigner::from_skey(&Cosigner::generate(name).unwrap().0).unwrap()
    }

    fn cosign_op(signer: &NoteSigner, vkey: &str, body: &CheckpointBody) -> Op {
        Op::Cosign {
            size: body.size,
            line: signer.sign(body).unwrap(),
            verifier_key: vkey.to_string(),
        }
    }

    /// A store holding a checkpoint at size 3 signed by one voter, whose
    /// verifier key is returned.
    fn store_with_checkpoint(dir: &Path) -> (LedgerStore, CheckpointBody, String) {
        let store = LedgerStore::open(&dir.join("ledger.redb"), ORIGIN).unwrap();
        let append = Op::Append {
            events: (0..3).map(event).collect(),
            commit_time_unix_nanos: 1,
        };
        store.apply(&[append, Op::Checkpoint], None, None).unwrap();
        let body = store.checkpoint_at(3).unwrap().body;
        let (signer, vkey) = voter();
        assert_eq!(
            store
                .apply(&[cosign_op(&signer, &vkey, &body)], None, None)
                .unwrap(),
            vec![OpResult::Cosigned { accepted: true }]
        );
        (store, body, vkey)
    }

    fn set_witnesses(store: &LedgerStore, keys: &[String]) -> OpResult {
        let op = Op::SetWitnesses {
            verifier_keys: keys.to_vec(),
        };
        store.apply(&[op], None, None).unwrap().remove(0)
    }

    fn witness_op(body: &CheckpointBody, witness: &Cosigner, time: u64) -> Op {
        Op::WitnessCosign {
            size: body.size,
            line: witness.cosign(body, time).unwrap(),
            verifier_key: witness.verifier_key(),
        }
    }

    fn is_refused(result: &OpResult) -> bool {
        result.refusal().is_some()
    }

    /// Everything a refused op could have touched, to compare before/after.
    fn fingerprint(store: &LedgerStore) -> (StateMeta, Hash, Leaves, QueryPage, Vec<u64>) {
        let size = store.tree_size().unwrap();
        (
            store.meta().unwrap(),
            store.root(size).unwrap(),
            store.entries(0, size + 10).unwrap().0,
            store
                .query(
                    &QueryFilter {
                        actor: Some("alice".into()),
                        ..Default::default()
                    },
                    100,
                    None,
                )
                .unwrap(),
            store.checkpoint_sizes(100).unwrap(),
        )
    }

    #[test]
    fn an_invalid_batch_is_refused_at_apply_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _, _) = store_with_checkpoint(dir.path());
        let before = fingerprint(&store);
        let spoilers: [&dyn Fn(&mut Event); 6] = [
            &|e| e.actor.id = "eve\u{7}".into(),
            &|e| e.time_unix_nanos = 0,
            &|e| e.time_unix_nanos = -5,
            &|e| e.action.clear(),
            &|e| e.resource.clear(),
            &|e| e.source = "s".repeat(crate::limits::FIELD_BYTES_MAX + 1),
        ];
        for spoil in spoilers {
            // The bad event is the last of the batch: the valid ones before
            // it must not be written either.
            let mut events: Vec<Event> = (10..13).map(event).collect();
            spoil(&mut events[2]);
            let op = Op::Append {
                events,
                commit_time_unix_nanos: 100,
            };
            let result = store.apply(&[op], None, None).unwrap().remove(0);
            assert!(
                result.refusal().unwrap().starts_with("event 2:"),
                "{result:?}"
            );
            assert_eq!(fingerprint(&store), before);
        }
        for (events, commit_time) in [
            ((10..13).map(event).collect::<Vec<_>>(), 0),
            ((10..13).map(event).collect(), -1),
            (Vec::new(), 100),
            (
                (0..crate::limits::BATCH_EVENTS_MAX as u64 + 1)
                    .map(event)
                    .collect(),
                100,
            ),
        ] {
            let op = Op::Append {
                events,
                commit_time_unix_nanos: commit_time,
            };
            assert!(is_refused(&store.apply(&[op], None, None).unwrap()[0]));
            assert_eq!(fingerprint(&store), before);
        }
        // A valid batch still goes in after the refusals.
        let op = Op::Append {
            events: (10..13).map(event).collect(),
            commit_time_unix_nanos: 100,
        };
        assert!(matches!(
            store.apply(&[op], None, None).unwrap()[0],
            OpResult::Appended { tree_size: 6, .. }
        ));
    }

    #[test]
    fn witness_cosignatures_are_kept_apart_from_voter_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let (store, body, _) = store_with_checkpoint(dir.path());
        let witness = witness("witness.test/w1");
        assert_eq!(
            set_witnesses(&store, &[witness.verifier_key()]),
            OpResult::WitnessesSet { changed: true }
        );
        let results = store
            .apply(&[witness_op(&body, &witness, 7)], None, None)
            .unwrap();
        assert_eq!(results, vec![OpResult::WitnessCosigned { accepted: true }]);

        let cp = store.checkpoint_at(3).unwrap();
        assert_eq!(cp.signatures.len(), 1);
        assert_eq!(cp.witness_signatures.len(), 1);
        // A witness does not make up for a missing voter.
        assert_eq!(store.latest_checkpoint(2).unwrap(), None);
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
    fn cosignatures_are_refused_unless_their_key_is_a_replicated_witness_key() {
        let dir = tempfile::tempdir().unwrap();
        let (store, body, _) = store_with_checkpoint(dir.path());
        let w1 = witness("witness.test/w1");
        // No set yet: nothing is accepted, whatever key the command carries.
        let result = store
            .apply(&[witness_op(&body, &w1, 7)], None, None)
            .unwrap()
            .remove(0);
        assert!(result
            .refusal()
            .unwrap()
            .contains("not in the replicated witness set"));
        set_witnesses(&store, &[w1.verifier_key()]);
        let stranger = witness("witness.test/junk");
        let result = store
            .apply(&[witness_op(&body, &stranger, 7)], None, None)
            .unwrap()
            .remove(0);
        assert!(result.refusal().unwrap().contains("witness.test/junk"));
        assert!(store
            .checkpoint_at(3)
            .unwrap()
            .witness_signatures
            .is_empty());
    }

    #[test]
    fn invalid_witness_cosignatures_are_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (store, body, _) = store_with_checkpoint(dir.path());
        let witness = witness("witness.test/w1");
        let other = super::tests::witness("witness.test/w2");
        set_witnesses(&store, &[witness.verifier_key(), other.verifier_key()]);
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
                verifier_key: other.verifier_key(),
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
        assert!(results.iter().all(is_refused), "{results:?}");
        assert!(store
            .checkpoint_at(3)
            .unwrap()
            .witness_signatures
            .is_empty());
    }

    #[test]
    fn a_witness_set_is_validated_before_it_replaces_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _, voter_key) = store_with_checkpoint(dir.path());
        let w1 = witness("witness.test/w1").verifier_key();
        let w2 = witness("witness.test/w2").verifier_key();
        assert_eq!(
            set_witnesses(&store, &[w1.clone(), w2.clone()]),
            OpResult::WitnessesSet { changed: true }
        );
        assert_eq!(
            set_witnesses(&store, &[w1.clone(), w2.clone()]),
            OpResult::WitnessesSet { changed: false }
        );
        let too_many: Vec<String> = (0..=crate::config::WITNESSES_MAX)
            .map(|i| witness(&format!("witness.test/w{i}")).verifier_key())
            .collect();
        for bad in [
            vec![w1.clone(), w1.clone()],
            vec![voter_key, w1.clone()],
            vec!["not a key".into()],
            vec![format!(" {w1}")],
            too_many,
        ] {
            assert!(is_refused(&set_witnesses(&store, &bad)), "{bad:?}");
            assert_eq!(store.witness_keys().unwrap(), vec![w1.clone(), w2.clone()]);
        }
        // Removing a key remembers it, so its old cosignatures still install.
        set_witnesses(&store, std::slice::from_ref(&w2));
        let keys = store.meta().unwrap().witnesses.unwrap();
        assert_eq!(keys.current, vec![w2.clone()]);
        assert_eq!(keys.former, vec![w1.clone()]);
        assert_eq!(keys.legacy_through_size, Some(3));
        assert!(same_witness_keys(
            &[format!("{w2}\n")],
            &store.witness_keys().unwrap()
        ));
        assert!(!same_witness_keys(&[w1], &store.witness_keys().unwrap()));
    }

    #[test]
    fn a_checkpoint_never_carries_more_lines_than_a_note_may() {
        let dir = tempfile::tempdir().unwrap();
        let (store, body, _) = store_with_checkpoint(dir.path());
        // Witness lines: fill the set's share, then swap the whole set.
        let first: Vec<Cosigner> = (0..CHECKPOINT_WITNESS_LINES_MAX)
            .map(|i| witness(&format!("witness.test/a{i}")))
            .collect();
        let keys: Vec<String> = first.iter().map(Cosigner::verifier_key).collect();
        set_witnesses(&store, &keys);
        let ops: Vec<Op> = first.iter().map(|w| witness_op(&body, w, 1)).collect();
        let results = store.apply(&ops, None, None).unwrap();
        assert!(results
            .iter()
            .all(|r| *r == OpResult::WitnessCosigned { accepted: true }));
        let late = witness("witness.test/late");
        set_witnesses(&store, &[late.verifier_key()]);
        let result = store
            .apply(&[witness_op(&body, &late, 1)], None, None)
            .unwrap()
            .remove(0);
        assert!(result
            .refusal()
            .unwrap()
            .contains("witness cosignature lines"));

        // Voter lines: one voter already signed; fill the rest, then one more.
        let signers: Vec<(NoteSigner, String)> =
            (1..=CHECKPOINT_VOTER_LINES_MAX).map(|_| voter()).collect();
        let ops: Vec<Op> = signers
            .iter()
            .map(|(s, k)| cosign_op(s, k, &body))
            .collect();
        let results = store.apply(&ops, None, None).unwrap();
        assert!(results[..CHECKPOINT_VOTER_LINES_MAX - 1]
            .iter()
            .all(|r| *r == OpResult::Cosigned { accepted: true }));
        assert!(is_refused(&results[CHECKPOINT_VOTER_LINES_MAX - 1]));
        // Re-signing by a voter already there replaces its line.
        let (s, k) = &signers[0];
        assert_eq!(
            store.apply(&[cosign_op(s, k, &body)], None, None).unwrap(),
            vec![OpResult::Cosigned { accepted: true }]
        );
        let cp = store.checkpoint_at(3).unwrap();
        assert_eq!(cp.signatures.len(), CHECKPOINT_VOTER_LINES_MAX);
        assert_eq!(cp.witness_signatures.len(), CHECKPOINT_WITNESS_LINES_MAX);
        let vkeys: Vec<String> = signers[..2].iter().map(|(_, k)| k.clone()).collect();
        checkpoint::verify_note_text(cp.note().as_bytes(), &vkeys).unwrap();
    }

    #[test]
    fn the_latest_checkpoint_always_has_a_quorum() {
        let dir = tempfile::tempdir().unwrap();
        let (store, body, _) = store_with_checkpoint(dir.path());
        assert_eq!(store.latest_checkpoint(1).unwrap().unwrap().body, body);
        assert_eq!(store.latest_checkpoint(2).unwrap(), None);
        // A newer checkpoint with no signature is never served, not even
        // to a caller asking for no signatures at all.
        let op = Op::Append {
            events: vec![event(9)],
            commit_time_unix_nanos: 2,
        };
        store.apply(&[op, Op::Checkpoint], None, None).unwrap();
        assert_eq!(store.latest_checkpoint(0).unwrap().unwrap().body, body);
        assert_eq!(
            store.latest_signed_checkpoint(1).unwrap().unwrap().body,
            body
        );
        let fresh = LedgerStore::open(&dir.path().join("fresh.redb"), ORIGIN).unwrap();
        fresh.apply(&[Op::Checkpoint], None, None).unwrap();
        assert_eq!(fresh.latest_checkpoint(0).unwrap(), None);
    }

    /// Rewrites a snapshot file record by record.
    fn rewrite_snapshot(path: &Path, mut edit: impl FnMut(u8, Vec<u8>) -> Option<Vec<u8>>) {
        let mut input = BufReader::new(std::fs::File::open(path).unwrap());
        let mut out = Vec::new();
        loop {
            let (tag, rec) = read_record(&mut input).unwrap();
            if let Some(rec) = edit(tag, rec) {
                write_record(&mut out, tag, &rec).unwrap();
            }
            if tag == TAG_END {
                break;
            }
        }
        std::fs::write(path, out).unwrap();
    }

    fn voters(keys: &[&String]) -> impl FnOnce(&StateMeta) -> Result<Vec<String>, String> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        move |_| Ok(keys)
    }

    #[test]
    fn snapshots_carry_witness_cosignatures_and_the_witness_set() {
        let dir = tempfile::tempdir().unwrap();
        let (store, body, vkey) = store_with_checkpoint(dir.path());
        let witness = witness("witness.test/w1");
        set_witnesses(&store, &[witness.verifier_key()]);
        store
            .apply(&[witness_op(&body, &witness, 7)], None, None)
            .unwrap();
        let snap = dir.path().join("snap");
        store.export_snapshot(&snap).unwrap();

        let other = LedgerStore::open(&dir.path().join("other.redb"), ORIGIN).unwrap();
        other.import_snapshot(&snap, voters(&[&vkey])).unwrap();
        assert_eq!(
            other.checkpoint_at(3).unwrap(),
            store.checkpoint_at(3).unwrap()
        );
        assert_eq!(other.witness_keys().unwrap(), vec![witness.verifier_key()]);

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
        let forged = dir.path().join("forged");
        std::fs::write(&forged, bytes).unwrap();
        let before = fingerprint(&other);
        assert!(matches!(
            other.import_snapshot(&forged, voters(&[&vkey])),
            Err(StoreError::BadSnapshot(_))
        ));
        assert_eq!(fingerprint(&other), before);
    }

    #[test]
    fn a_snapshot_cosignature_by_a_key_outside_its_witness_set_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (store, body, vkey) = store_with_checkpoint(dir.path());
        let w1 = witness("witness.test/w1");
        set_witnesses(&store, &[w1.verifier_key()]);
        store
            .apply(&[witness_op(&body, &w1, 7)], None, None)
            .unwrap();
        // Removed later: its cosignature stays and still installs.
        set_witnesses(&store, &[]);
        let snap = dir.path().join("snap");
        store.export_snapshot(&snap).unwrap();
        let other = LedgerStore::open(&dir.path().join("other.redb"), ORIGIN).unwrap();
        other.import_snapshot(&snap, voters(&[&vkey])).unwrap();
        assert_eq!(other.checkpoint_at(3).unwrap().witness_signatures.len(), 1);

        // The same snapshot claiming a witness set that never held the key.
        rewrite_snapshot(&snap, |tag, rec| {
            if tag != TAG_META {
                return Some(rec);
            }
            let mut meta: StateMeta = serde_json::from_slice(&rec).unwrap();
            meta.witnesses = Some(WitnessKeys::default());
            Some(serde_json::to_vec(&meta).unwrap())
        });
        let fresh = LedgerStore::open(&dir.path().join("fresh.redb"), ORIGIN).unwrap();
        let err = fresh.import_snapshot(&snap, voters(&[&vkey])).unwrap_err();
        assert!(err.to_string().contains("checkpoint 3"), "{err}");
        assert_eq!(fresh.tree_size().unwrap(), 0);
    }

    #[test]
    fn a_snapshot_leaf_that_append_would_refuse_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _, vkey) = store_with_checkpoint(dir.path());
        let snap = dir.path().join("snap");
        store.export_snapshot(&snap).unwrap();
        let target = LedgerStore::open(&dir.path().join("target.redb"), ORIGIN).unwrap();
        let before = fingerprint(&target);
        // Leaf 0 replaced by one with a control character and no action:
        // its index and encoding are right, only the gate can tell.
        rewrite_snapshot(&snap, |tag, rec| {
            if tag != TAG_LEAF {
                return Some(rec);
            }
            let mut record = LeafRecord::decode(&rec).unwrap();
            if record.index == 0 {
                record.event.actor.id = "mallory\n\0".into();
                record.event.action = String::new();
                return Some(record.encode());
            }
            Some(rec)
        });
        let err = target.import_snapshot(&snap, voters(&[&vkey])).unwrap_err();
        assert!(err.to_string().contains("leaf 0 fails validation"), "{err}");
        assert_eq!(fingerprint(&target), before, "nothing written");
    }

    #[test]
    fn a_snapshot_is_refused_if_a_voter_signature_does_not_verify() {
        let dir = tempfile::tempdir().unwrap();
        let (store, body, vkey) = store_with_checkpoint(dir.path());
        let snap = dir.path().join("snap");
        store.export_snapshot(&snap).unwrap();
        let target = LedgerStore::open(&dir.path().join("target.redb"), ORIGIN).unwrap();
        target
            .apply(
                &[Op::Append {
                    events: vec![event(50)],
                    commit_time_unix_nanos: 5,
                }],
                None,
                None,
            )
            .unwrap();
        let before = fingerprint(&target);

        // A signature of another tree filed under this checkpoint.
        let mut other = body.clone();
        other.root[3] ^= 1;
        let line = store.checkpoint_at(3).unwrap().signatures[0].clone();
        let (name, key_id) = (line.name.clone(), line.key_id);
        rewrite_snapshot(&snap, |tag, rec| {
            if tag != TAG_SIGNATURE {
                return Some(rec);
            }
            let mut forged = line.clone();
            forged.signature[10] ^= 1;
            let mut rec = 3u64.to_be_bytes().to_vec();
            rec.extend_from_slice(forged.to_line().as_bytes());
            Some(rec)
        });
        let err = target.import_snapshot(&snap, voters(&[&vkey])).unwrap_err();
        assert!(err.to_string().contains("checkpoint 3"), "{err}");
        assert_eq!(fingerprint(&target), before, "nothing written");

        // A signature by a key the membership does not list cannot be
        // verified: left out, the rest installs.
        store.export_snapshot(&snap).unwrap();
        let (_, stranger) = voter();
        target.import_snapshot(&snap, voters(&[&stranger])).unwrap();
        assert!(target.checkpoint_at(3).unwrap().signatures.is_empty());
        target.import_snapshot(&snap, voters(&[&vkey])).unwrap();
        let sigs = target.checkpoint_at(3).unwrap().signatures;
        assert_eq!((sigs[0].name.clone(), sigs[0].key_id), (name, key_id));

        // What the caller's check refuses is refused before anything is written.
        let err = target
            .import_snapshot(&snap, |_| Err("metadata disagrees".into()))
            .unwrap_err();
        assert!(err.to_string().contains("metadata disagrees"));
        assert_eq!(target.checkpoint_at(3).unwrap().signatures.len(), 1);
    }
}
