//! The witness's memory: per log origin, the size and root of the last
//! checkpoint it cosigned, and when. One JSON file:
//! `{"<origin>": {"size": N, "root": "<base64>", "time": <unix seconds>}}`.
//!
//! # Crash semantics
//! [`StateFile::record`] writes the whole map with
//! [`crate::storage::write_atomic`] (temporary file, fsync, rename over the
//! state file, fsync of the directory), and only then updates memory. A
//! crash leaves either the old file or the new one, never a mix; the
//! witness answers only after the new one is durable.
//!
//! # Invariants
//! - The in-memory map equals the file after every successful
//!   [`StateFile::record`]; a failed write leaves both as they were.
//! - A state file that does not parse stops the witness: starting over from
//!   nothing would let a log roll back what the witness already vouched for.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::prelude::{Engine, BASE64_STANDARD};
use serde::{Deserialize, Serialize};

use crate::ledger::witness::TreeHead;

/// Largest state file read, bytes. One record is an origin (at most a few
/// hundred bytes) and two numbers; this allows tens of thousands of logs.
pub const STATE_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read witness state {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("witness state {path} is {bytes} bytes, more than the {max} allowed")]
    TooLarge { path: PathBuf, bytes: u64, max: u64 },
    /// Fatal: the witness must not start without knowing what it cosigned.
    #[error("witness state {path} is corrupt ({reason}); restore it from a backup rather than deleting it, or the log could be rolled back")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write witness state {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One origin's record as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Record {
    size: u64,
    /// Base64 of the 32-byte root, as in checkpoints.
    root: String,
    /// Unix seconds of the cosignature that stored this record.
    time: u64,
}

/// The state file and its contents.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    heads: BTreeMap<String, (TreeHead, u64)>,
}

impl StateFile {
    /// Reads the state at `path`; a missing file is an empty state (a new
    /// witness), anything unreadable is an error.
    pub fn load(path: &Path) -> Result<Self, StateError> {
        let read_error = |source| StateError::Read {
            path: path.to_path_buf(),
            source,
        };
        let corrupt = |reason: String| StateError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    path: path.to_path_buf(),
                    heads: BTreeMap::new(),
                })
            }
            Err(e) => return Err(read_error(e)),
        };
        if bytes > STATE_FILE_BYTES_MAX {
            return Err(StateError::TooLarge {
                path: path.to_path_buf(),
                bytes,
                max: STATE_FILE_BYTES_MAX,
            });
        }
        let text = std::fs::read(path).map_err(read_error)?;
        let records: BTreeMap<String, Record> =
            serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        let mut heads = BTreeMap::new();
        for (origin, r) in records {
            let root = BASE64_STANDARD
                .decode(&r.root)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt(format!("root of {origin:?} is not a base64 hash")))?;
            heads.insert(origin, (TreeHead { size: r.size, root }, r.time));
        }
        Ok(Self {
            path: path.to_path_buf(),
            heads,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last tree cosigned for `origin`.
    pub fn get(&self, origin: &str) -> Option<TreeHead> {
        self.heads.get(origin).map(|(head, _)| *head)
    }

    /// Durably records `head`, cosigned at `time`, as `origin`'s latest
    /// tree; memory changes only once the file has.
    pub fn record(&mut self, origin: &str, head: TreeHead, time: u64) -> Result<(), StateError> {
        let mut next = self.heads.clone();
        next.insert(origin.to_string(), (head, time));
        self.write(&next)?;
        self.heads = next;
        Ok(())
    }

    fn write(&self, heads: &BTreeMap<String, (TreeHead, u64)>) -> Result<(), StateError> {
        let records: BTreeMap<&str, Record> = heads
            .iter()
            .map(|(origin, (head, time))| {
                let record = Record {
                    size: head.size,
                    root: BASE64_STANDARD.encode(head.root),
                    time: *time,
                };
                (origin.as_str(), record)
            })
            .collect();
        let text = serde_json::to_vec_pretty(&records).expect("records serialise");
        crate::storage::write_atomic(&self.path, &text).map_err(|source| StateError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut state = StateFile::load(&path).unwrap();
        assert_eq!(state.get("o"), None);
        let head = TreeHead {
            size: 7,
            root: [3; 32],
        };
        state.record("o", head, 1_700_000_000).unwrap();
        state.record("p", TreeHead { size: 0, ..head }, 1).unwrap();
        assert_eq!(state.get("o"), Some(head));
        let again = StateFile::load(&path).unwrap();
        assert_eq!(again.get("o"), Some(head));
        assert_eq!(again.get("p").map(|h| h.size), Some(0));
        assert!(!dir.path().join("state.json.tmp").exists());
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        for text in [
            "",
            "{",
            "[]",
            r#"{"o": {"size": 1, "root": "AAAA", "time": 0}}"#,
            r#"{"o": {"size": 1, "time": 0}}"#,
        ] {
            std::fs::write(&path, text).unwrap();
            assert!(
                matches!(StateFile::load(&path), Err(StateError::Corrupt { .. })),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("state.json");
        let mut state = StateFile::load(&path).unwrap();
        let head = TreeHead {
            size: 1,
            root: [0; 32],
        };
        assert!(matches!(
            state.record("o", head, 0),
            Err(StateError::Write { .. })
        ));
        assert_eq!(state.get("o"), None);
    }
}
