//! `fsck`: proves, offline, that a stopped node's ledger file is intact.
//!
//! # Why
//! The ledger promises that stored bytes never change. Raft and the signed
//! checkpoints protect the log in flight and towards auditors, but nothing
//! re-reads what a node keeps on its own disk: a flipped bit in a leaf would
//! be served, proved against and shipped to new nodes in snapshots. `fsck`
//! re-derives everything that can be derived and compares it with what is
//! stored.
//!
//! # What is checked
//! In one pass over the tables in key order, leaf by leaf:
//! - leaves `0..size` are all stored, none beyond, and `size` is the tree size
//!   the metadata records;
//! - every leaf decodes strictly, carries its own index, and commit times never
//!   go backwards;
//! - every stored hash equals the hash recomputed from the leaves, and there
//!   are exactly `stored_hash_count(size)` of them. The walk keeps only the
//!   roots of the complete subtrees so far (the frontier, one per set bit of
//!   the size): O(n) time and O(log n) memory beyond the rows being read;
//! - every checkpoint body parses, is canonical, is stored under its own size,
//!   names the same origin as the others, and its root equals the root
//!   recomputed from the leaves at its size;
//! - every signature line parses, is canonical, is stored under its own key
//!   ID, is by a known key, and verifies over its checkpoint's body. Known keys
//!   are the voters' verifier keys in the stored Raft membership plus any the
//!   caller adds. A signature by an unknown key is a problem: otherwise a
//!   flipped byte in a key name or key ID would go unnoticed.
//!
//! Then every query index and idempotency row must point at a stored leaf with
//! that value, one row per leaf (per leaf with a key, for idempotency); and
//! redb's own page checksums are verified on a private temporary copy, since
//! that check repairs what it can and so must never run on the original.
//!
//! "Canonical" matters because the checks compare parsed values: a body or a
//! signature line that parses to the expected value from different bytes has
//! still been changed, and the promise is about bytes.
//!
//! # Which leaf is bad
//! A problem names the leaf whose append first made the stored state wrong:
//! the leaf itself for a bad entry or leaf hash, and for an interior hash the
//! leaf that completed its subtree. The first bad leaf is the smallest such
//! index; the tree of any smaller size is intact. A stored hash that differs
//! from the leaves only because a stored child below it differs (and that
//! agrees with its stored children) is not reported again, nor is a checkpoint
//! root that agrees with the stored hashes above an already reported bad leaf:
//! one changed byte gives one or two problems, not one per ancestor.
//!
//! # Never writes
//! The ledger is opened with redb's `ReadOnlyDatabase`, which cannot write. A
//! running node holds the file exclusively, so fsck then refuses with
//! [`FsckError::Locked`]. A file that was not closed cleanly (the node crashed
//! or was killed) needs redb's recovery, which writes; fsck then recovers and
//! checks a private copy and says so in the report.
//!
//! # Hostile bytes
//! Values and string keys are read as raw bytes (`raw::Raw`) and decoded here,
//! because redb's own `&str` decoding unwraps. redb itself may still panic on
//! a structurally damaged file (its docs say so for a file altered outside
//! redb), so each phase runs under `catch_unwind`, and a panic becomes a
//! problem saying where the walk stopped.
//!
//! # Layout
//! - `mod.rs`: the entry point, [`check`], with its options and the errors
//!   that stop it before it can report.
//! - `report.rs`: what [`check`] finds: [`FsckReport`], [`Problem`],
//!   [`ProblemKind`], [`RedbCheck`].
//! - `checker.rs`: the checker's state (the report being built, the known
//!   keys), how a problem is recorded, and the phases run over one open
//!   database, each under its own panic guard.
//! - `raw.rs`: reading redb without trusting it: raw keys and values, tuple
//!   keys split by hand, row cursors with look-ahead, and the panic guard.
//! - `frontier.rs`: the Merkle frontier, the roots of the complete subtrees
//!   walked so far, and the nodes each appended leaf completes.
//! - `walk.rs`: the one pass in leaf order over the metadata, leaves, stored
//!   hashes, checkpoints and signature rows.
//! - `signatures.rs`: the known verifier keys, and the checks of voter
//!   signature lines and of witness cosignatures.
//! - `index.rs`: the query index and idempotency tables against the leaves.
//! - `copy.rs`: redb's integrity check and its crash recovery, each on a
//!   private copy of the file.
//! - `tests.rs` (test builds only): [`check`] end to end, on ledgers written
//!   by the store and then changed through redb.

mod checker;
mod copy;
mod frontier;
mod index;
mod raw;
mod report;
mod signatures;
#[cfg(test)]
mod tests;
mod walk;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{Builder, DatabaseError, StorageError};

use crate::ledger::checkpoint::{self, CheckpointError};
use crate::limits::FSCK_CACHE_BYTES;
use crate::storage::ledger_store::LEDGER_FILE;
use checker::Checker;
use raw::guarded;
pub use report::{FsckReport, Problem, ProblemKind, RedbCheck};

/// Why fsck could not check the files at all. Problems found in files it
/// could read are not errors: they are in the [`FsckReport`].
#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    #[error("data directory {} does not exist", path.display())]
    NoDataDir { path: PathBuf },
    #[error("{} is not an Ironlog data directory: {reason}", path.display())]
    NotDataDir { path: PathBuf, reason: String },
    #[error(
        "{} is locked by another process: is the node still running? \
         Stop it first; fsck checks a stopped node's files",
        path.display()
    )]
    Locked { path: PathBuf },
    #[error("cannot read {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("cannot make a private copy of {} in {} to check: {reason}", path.display(), std::env::temp_dir().display())]
    Scratch { path: PathBuf, reason: String },
    #[error("invalid --vkey: {0}")]
    BadVkey(#[source] CheckpointError),
}

/// What to check besides the ledger's own contents.
#[derive(Clone, Debug)]
pub struct FsckOptions {
    /// Verifier keys to trust besides the voters in the stored membership,
    /// e.g. of voters that have since been removed.
    pub extra_vkeys: Vec<String>,
    /// Also run redb's page checksum check, on a temporary copy of the file.
    pub redb_check: bool,
}

impl Default for FsckOptions {
    fn default() -> Self {
        Self {
            extra_vkeys: Vec::new(),
            redb_check: true,
        }
    }
}

/// Checks the ledger in `data_dir` without modifying it.
pub fn check(data_dir: &Path, options: &FsckOptions) -> Result<FsckReport, FsckError> {
    let mut keys = BTreeMap::new();
    for vkey in &options.extra_vkeys {
        let id = checkpoint::verifier_key_id(vkey).map_err(FsckError::BadVkey)?;
        keys.insert(id, (vkey.clone(), "--vkey".to_string()));
    }
    let file = ledger_file(data_dir)?;
    let mut checker = Checker {
        report: FsckReport {
            ledger_file: file.clone(),
            ..FsckReport::default()
        },
        keys,
        keyed_leaves: None,
    };
    let opened = guarded(|| {
        Builder::new()
            .set_cache_size(FSCK_CACHE_BYTES)
            .open_read_only(&file)
    });
    match opened {
        Ok(Ok(db)) => {
            checker.check_database(&db)?;
            // The copy is taken while the read-only handle still holds the
            // file, so a node starting meanwhile cannot change it mid-copy.
            checker.report.redb_check = if options.redb_check {
                checker.redb_check(&file)
            } else {
                RedbCheck::Skipped {
                    reason: "not requested".into(),
                }
            };
        }
        Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => {
            return Err(FsckError::Locked { path: file })
        }
        Ok(Err(DatabaseError::RepairAborted)) => checker.check_recovered_copy(&file)?,
        Ok(Err(DatabaseError::Storage(StorageError::Io(e)))) => {
            return Err(FsckError::Unreadable {
                path: file,
                reason: e.to_string(),
            })
        }
        Ok(Err(e)) => checker.problem(
            ProblemKind::RedbIntegrity,
            None,
            None,
            format!("redb cannot open the file: {e}"),
        ),
        Err(panic) => checker.problem(
            ProblemKind::RedbIntegrity,
            None,
            None,
            format!("redb panicked opening the file, which is structurally damaged: {panic}"),
        ),
    }
    Ok(checker.report)
}

/// The ledger file of `data_dir`, which must exist.
fn ledger_file(data_dir: &Path) -> Result<PathBuf, FsckError> {
    match std::fs::metadata(data_dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(FsckError::NotDataDir {
                path: data_dir.to_path_buf(),
                reason: "not a directory".into(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FsckError::NoDataDir {
                path: data_dir.to_path_buf(),
            })
        }
        Err(e) => {
            return Err(FsckError::Unreadable {
                path: data_dir.to_path_buf(),
                reason: e.to_string(),
            })
        }
    }
    let file = data_dir.join(LEDGER_FILE);
    match std::fs::metadata(&file) {
        Ok(m) if m.is_file() => Ok(file),
        Ok(_) => Err(FsckError::NotDataDir {
            path: data_dir.to_path_buf(),
            reason: format!("{LEDGER_FILE} is not a file"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(FsckError::NotDataDir {
            path: data_dir.to_path_buf(),
            reason: format!("it has no {LEDGER_FILE}"),
        }),
        Err(e) => Err(FsckError::Unreadable {
            path: file,
            reason: e.to_string(),
        }),
    }
}
