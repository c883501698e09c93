//! Everything on a node's disk that is not the Raft log: the ledger state
//! ([`ledger_store`]) and the voter's record of what it signed
//! (`signing_record`). The offline checker, `crate::fsck`, reads both
//! and the Raft layer's membership, so it sits above this module and
//! [`crate::raft`], not inside either.
//!
//! # Layout
//! - `mod.rs`: [`Applied`] (what readers learn after each apply) and
//!   [`write_atomic`], the one durable file replace.
//! - [`applied_feed`]: the leaves each apply stored, handed to the analyst
//!   without a second read, best effort.
//! - [`ledger_store`]: the ledger state in redb, one file per concern
//!   (see its layout).
//! - `signing_record.rs`: the last tree a voter signed.
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub mod applied_feed;
pub mod ledger_store;
pub(crate) mod signing_record;

/// What readers (the API, the analysis node) learn after each apply, from
/// the state machine: here, below both, so that neither depends on Raft.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub tree_size: u64,
    /// Raft log index of the last applied entry.
    pub log_index: u64,
}

/// Replaces the file at `path` with `bytes` so that after a crash it holds
/// either the old contents or the new, never a mix: write a temporary file
/// beside it, fsync it, rename it over `path`, then fsync the directory so
/// the rename itself survives a power loss.
///
/// This is the one file replace of the crate: every writer of a state,
/// pointer or output file that must not be torn goes through it. A write
/// that fails leaves `path` as it was and removes its temporary. Callers
/// serialise writes to one `path`: concurrent writers would share the
/// temporary.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_atomic_temp(path)?;
    let replaced = write_synced(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = replaced {
        // Best effort: if even this fails, the owner's start-up clean-up
        // (or the next write, which truncates it) deals with the leftover.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(parent_dir(path))
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The temporary file [`write_atomic`] writes before renaming it over
/// `path`: `path` with `.tmp` appended. A crash can leave it behind; an
/// owner that cleans up at start-up removes it by this name.
pub fn write_atomic_temp(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} names no file", path.display())))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    Ok(parent_dir(path).join(tmp_name))
}

/// The directory holding `path`; `.` for a bare file name.
fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Makes renames and removals in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state")]);
        assert_eq!(
            write_atomic_temp(&path).unwrap(),
            dir.path().join("state.tmp")
        );
        assert_eq!(
            write_atomic_temp(Path::new("bare")).unwrap(),
            Path::new("./bare.tmp")
        );
    }

    #[test]
    fn a_failed_write_atomic_keeps_the_target_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        // A directory that is not empty cannot be renamed over.
        let path = dir.path().join("target");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), b"kept").unwrap();
        write_atomic(&path, b"new").unwrap_err();
        assert_eq!(std::fs::read(path.join("inside")).unwrap(), b"kept");
        assert!(!write_atomic_temp(&path).unwrap().exists());
    }
}
