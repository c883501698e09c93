//! The checks that need a private copy of the file: redb's page checksum
//! check, and recovering a file that was not closed cleanly. Both write, and
//! fsck never writes to the original.

use std::path::{Path, PathBuf};
use std::sync::atomic::{self, AtomicU64};

use redb::Builder;

use super::checker::Checker;
use super::raw::guarded;
use super::{FsckError, ProblemKind, RedbCheck};
use crate::limits::FSCK_CACHE_BYTES;
use crate::storage::ledger_store::LEDGER_FILE;

impl Checker {
    /// redb's page checksum check, on a copy: the check repairs what it can.
    pub(super) fn redb_check(&mut self, file: &Path) -> RedbCheck {
        let copy = match ScratchCopy::new(file) {
            Ok(copy) => copy,
            Err(e) => {
                return RedbCheck::Skipped {
                    reason: format!(
                        "cannot copy the file to {}: {e}",
                        std::env::temp_dir().display()
                    ),
                }
            }
        };
        let checked = guarded(|| {
            let mut db = Builder::new()
                .set_cache_size(FSCK_CACHE_BYTES)
                .open(&copy.file)?;
            db.check_integrity()
        });
        let failure = match checked {
            Ok(Ok(true)) => return RedbCheck::Passed,
            Ok(Ok(false)) => "it had to repair the copy: page checksums or the allocator state \
                              do not match the last commit"
                .to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(panic) => format!("redb panicked: {panic}"),
        };
        let message = format!("redb's integrity check of a copy of the file failed: {failure}");
        self.general(ProblemKind::RedbIntegrity, message);
        RedbCheck::Failed
    }

    /// The file was not closed cleanly: recover a private copy and check it.
    pub(super) fn check_recovered_copy(&mut self, file: &Path) -> Result<(), FsckError> {
        self.report.recovered_copy = true;
        let copy = ScratchCopy::new(file).map_err(|e| FsckError::Scratch {
            path: file.to_path_buf(),
            reason: e.to_string(),
        })?;
        let opened = guarded(|| {
            Builder::new()
                .set_cache_size(FSCK_CACHE_BYTES)
                .set_check_integrity_on_open(true)
                .open(&copy.file)
        });
        let failure = match opened {
            Ok(Ok(db)) => {
                self.report.redb_check = RedbCheck::VerifiedOnRecovery;
                return self.check_database(&db);
            }
            Ok(Err(e)) => e.to_string(),
            Err(panic) => format!("redb panicked: {panic}"),
        };
        self.report.redb_check = RedbCheck::Failed;
        let message = format!(
            "the file was not closed cleanly, and redb cannot recover a copy of it: {failure}"
        );
        self.general(ProblemKind::RedbIntegrity, message);
        Ok(())
    }
}

/// A private copy of the ledger file in a new temporary directory, removed
/// on drop: redb's integrity check and its crash recovery both write, and
/// fsck never writes to the original.
struct ScratchCopy {
    dir: PathBuf,
    file: PathBuf,
}

/// Tells apart the copies one process makes.
static SCRATCH_COPIES: AtomicU64 = AtomicU64::new(0);

impl ScratchCopy {
    fn new(original: &Path) -> std::io::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seq = SCRATCH_COPIES.fetch_add(1, atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("ironlog-fsck-{}-{nanos}-{seq}", std::process::id()));
        // Fails rather than reuse a directory that is already there.
        std::fs::create_dir(&dir)?;
        let copy = Self {
            file: dir.join(LEDGER_FILE),
            dir,
        };
        std::fs::copy(original, &copy.file)?;
        Ok(copy)
    }
}

impl Drop for ScratchCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
