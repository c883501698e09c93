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
//! - The query index tables name exactly the leaves `[0, n)`, each once,
//!   `n` recorded in the `meta` table beside the state. They hold runs
//!   (`run.rs`): one row per value among the leaves indexed in one step.
//!   The newer leaves (fewer than about
//!   [`INDEX_DEFER_LEAVES`](crate::limits::INDEX_DEFER_LEAVES)) get theirs
//!   in the next step, and a query reads them directly, so every query
//!   still sees every leaf. Idempotency rows are never deferred: the next
//!   batch may repeat a key.
//! - Checkpoint sizes only grow, and a checkpoint's root is recomputed from the
//!   stored hashes and read back before it is stored.
//! - A signature is stored only if it verifies over the stored body.
//! - Every batch is checked with
//!   [`batch::validate_batch`](crate::ledger::batch::validate_batch) where it is
//!   applied, whatever path its command took into the log; a refused batch
//!   changes nothing ([`OpResult::Refused`]).
//! - Witness cosignatures live in their own table, apart from voter
//!   signatures, so they never count towards the voter quorum; a note shows
//!   the voter signatures first, then the witness cosignatures. A witness
//!   cosignature is accepted only from a key in the replicated witness set
//!   ([`Op::SetWitnesses`]), one per key and checkpoint.
//! - A checkpoint carries at most
//!   [`CHECKPOINT_SIGNATURE_LINES_MAX`](crate::limits::CHECKPOINT_SIGNATURE_LINES_MAX)
//!   lines, of which at most
//!   [`CHECKPOINT_WITNESS_LINES_MAX`](crate::limits::CHECKPOINT_WITNESS_LINES_MAX)
//!   are witnesses', so
//!   its note always opens (signed_note refuses more than 100).
//! - Only a checkpoint with a quorum of voter signatures is ever "latest".
//!
//! # Crash semantics
//! Each [`LedgerStore::apply`] is one transaction, made durable by the next
//! `Immediate` commit: [`LedgerStore::flush`], which every snapshot export
//! runs first, or an apply the caller asks to be durable
//! ([`LedgerStore::durable_due`]). After a crash the store is exactly as of
//! some earlier `apply`, never older than the last snapshot, and the Raft
//! layer re-applies the committed log (kept behind that snapshot) from the
//! stored "applied" marker.
//!
//! # Snapshots
//! A snapshot is the leaves, checkpoints, signatures, witness cosignatures and
//! metadata. A node's own snapshot is a manifest that names its stored
//! leaves rather than copying them, so building one costs the non-leaf
//! state, not the log; it is expanded, leaves inline, when a follower needs it. Installing one rebuilds hashes and indexes from the leaves and
//! refuses it if any checkpoint root does not match, any voter signature by
//! a voter of the snapshot's own membership or any witness cosignature does
//! not verify, or a checkpoint carries too many lines, so a corrupt or
//! forged snapshot cannot replace a good state.
//!
//! # Layout
//! - `mod.rs`: [`LedgerStore`] itself: opening the file (and creating its
//!   tables), the origin, the metadata as it stands.
//! - `error.rs`: [`StoreError`], and how redb's errors become one.
//! - `tables.rs`: the redb table definitions (`fsck` reads the file with
//!   the same ones).
//! - `hash_chunks.rs`: the stored Merkle hashes, packed in chunks of
//!   consecutive hashes, read as a
//!   [`HashStore`](crate::ledger::merkle::HashStore) and extended at the
//!   end by a writer; stores written before chunks are packed on open.
//! - `meta.rs`: [`StateMeta`], the one metadata row, and reading it.
//! - `op.rs`: [`Op`] and [`OpResult`]: the commands applied in log order and
//!   what each one did.
//! - `writer.rs`: the append and commit path: [`LedgerStore::apply`] and
//!   [`LedgerStore::flush`], the tables of one write transaction, and a leaf
//!   stored with its hashes and index rows.
//! - `checkpoints.rs`: cutting checkpoints, voter signatures and how many
//!   lines a note may carry, and reading checkpoints back
//!   ([`StoredCheckpoint`], the newest one with a quorum).
//! - `witness.rs`: the replicated witness set ([`WitnessKeys`]) and witness
//!   cosignatures.
//! - `query.rs`: pages of leaves, and queries over the index tables
//!   ([`QueryFilter`], [`QueryPage`]).
//! - `run.rs`: a query index run, the leaves of one step with one value,
//!   as one row.
//! - `tree.rs`: reads of the Merkle tree: roots, inclusion and consistency
//!   proofs, tlog tiles ([`TileRead`]).
//! - `snapshot.rs`: snapshot import, the record format, and the checks a
//!   snapshot must pass before it replaces the state.
//! - `manifest.rs`: the snapshots a node builds, which name the stored
//!   leaves instead of copying them, and [`SnapshotReader`], which expands
//!   one into the full record stream when a follower needs it.
//! - `tests.rs` (test builds only): the store's unit tests, which share one
//!   fixture (a store with a signed checkpoint) across these concerns.

mod checkpoints;
mod error;
pub(crate) mod hash_chunks;
mod manifest;
mod meta;
mod op;
mod query;
pub(crate) mod run;
mod snapshot;
mod tables;
#[cfg(test)]
mod tests;
mod tree;
mod witness;
mod writer;

use std::path::Path;

use redb::{Database, ReadableDatabase};

use crate::limits::LEDGER_CACHE_BYTES_DEFAULT;

use hash_chunks::pack_legacy_hashes;
use meta::read_meta;
use tables::{INDEX_TABLES, LEGACY_OUTCOME_INDEX, LEGACY_STR_INDEXES};

pub use checkpoints::StoredCheckpoint;
pub use error::StoreError;
pub(crate) use hash_chunks::{chunk_hashes, HASH_CHUNKS, LEGACY_HASHES};
pub use manifest::SnapshotReader;
pub(crate) use meta::read_indexed;
pub use meta::StateMeta;
pub use op::{Batch, Op, OpResult};
pub use query::{Leaves, QueryFilter, QueryPage};
pub(crate) use tables::{
    IndexDef, CHECKPOINTS, ENTRIES, IDEMPOTENCY, IDX_ACTION, IDX_ACTOR, IDX_OUTCOME, IDX_RESOURCE,
    META, META_INDEXED, META_STATE, SIGNATURES, WITNESS_COSIGNATURES,
};
pub use tree::TileRead;
pub use witness::{same_witness_keys, WitnessKeys};
pub use writer::ApplyOutcome;

/// The ledger file's name inside a node's data dir.
pub const LEDGER_FILE: &str = "ledger.redb";

/// The redb-backed ledger state of one node.
pub struct LedgerStore {
    db: Database,
    /// The checkpoint origin line; fixed for the life of the log.
    origin: String,
    /// When a commit last made the store durable: an apply after
    /// [`LEDGER_DURABLE_INTERVAL_MS`] is made durable itself.
    ///
    /// [`LEDGER_DURABLE_INTERVAL_MS`]: crate::limits::LEDGER_DURABLE_INTERVAL_MS
    last_durable: std::sync::Mutex<std::time::Instant>,
}

impl LedgerStore {
    /// Opens (or creates) the store at `path` for a log named `origin`,
    /// with the default page cache.
    pub fn open(path: &Path, origin: &str) -> Result<Self, StoreError> {
        Self::open_with_cache(path, origin, LEDGER_CACHE_BYTES_DEFAULT)
    }

    /// [`LedgerStore::open`] with a page cache of `cache_bytes`.
    pub fn open_with_cache(
        path: &Path,
        origin: &str,
        cache_bytes: u64,
    ) -> Result<Self, StoreError> {
        let db = redb::Builder::new()
            .set_cache_size(usize::try_from(cache_bytes).unwrap_or(usize::MAX))
            .create(path)?;
        let txn = db.begin_write()?;
        {
            let mut dropped = txn.delete_table(LEGACY_OUTCOME_INDEX)?;
            for def in LEGACY_STR_INDEXES {
                dropped |= txn.delete_table(def)?;
            }
            if dropped {
                // Derived from the leaves, which stay as they are: indexed
                // again, from the first, as runs, a step per apply; a query
                // meanwhile reads the leaves not indexed yet.
                for def in INDEX_TABLES {
                    txn.delete_table(def)?;
                }
                let zero = 0u64.to_be_bytes();
                txn.open_table(META)?
                    .insert(META_INDEXED, zero.as_slice())?;
                tracing::info!(
                    "dropped the per-leaf query indexes of an older store; its leaves are indexed again as runs"
                );
            }
            pack_legacy_hashes(&txn)?;
            create_tables(&txn)?;
        }
        txn.commit()?;
        Ok(Self {
            db,
            origin: origin.to_string(),
            last_durable: std::sync::Mutex::new(std::time::Instant::now()),
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

    /// How many leaves, from the first, have their query index rows; the
    /// newer ones get theirs in bulk (see
    /// [`INDEX_DEFER_LEAVES`](crate::limits::INDEX_DEFER_LEAVES)).
    pub fn indexed_leaves(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        read_indexed(&table, read_meta(&table)?.tree_size)
    }
}

/// Makes every table the store reads that does not exist yet: readers
/// expect them all, and a writer opens only those it writes.
fn create_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(ENTRIES)?;
    txn.open_table(HASH_CHUNKS)?;
    txn.open_table(META)?;
    txn.open_table(CHECKPOINTS)?;
    txn.open_table(SIGNATURES)?;
    txn.open_table(WITNESS_COSIGNATURES)?;
    txn.open_table(IDEMPOTENCY)?;
    for def in INDEX_TABLES {
        txn.open_table(def)?;
    }
    Ok(())
}
