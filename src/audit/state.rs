//! What an auditor remembers between runs, kept in one JSON file.
//!
//! The file is the auditor's own evidence: the largest checkpoint it has
//! accepted (with the full signed note, so a later fork can be shown to a
//! third party), the last size each monitored node served, and the roots it
//! has seen by size. It is replaced with [`crate::storage::write_atomic`]
//! (temporary file, fsync, rename, fsync of the directory) so a crash never
//! leaves half a state, and it is tied to one origin: pointing a verifier at
//! another log with an old state file is an error, not a silent reset.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::AuditError;
use crate::ledger::merkle::Hash;

/// Version of the state file layout.
const STATE_VERSION: u32 = 1;

/// Roots remembered by size for fork detection over time. Older sizes are
/// still protected by consistency proofs from the trusted head; this window
/// catches a log that serves two different trees of a recent size.
pub const SEEN_ROOTS_MAX: usize = 4096;

/// Alerts kept in the file as a record; the log line is the primary output.
pub const ALERTS_KEPT_MAX: usize = 100;

/// Largest state file read, bytes: a bound on what a corrupted or hostile
/// file can make the verifier allocate.
pub const STATE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// A checkpoint this auditor accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub size: u64,
    /// Root hash, hex.
    pub root: String,
    /// The signed note as it was served.
    pub note: String,
    /// When it was accepted, Unix seconds.
    pub accepted_at: u64,
}

/// The last checkpoint one node served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub size: u64,
    pub root: String,
    pub seen_at: u64,
}

/// An alert as recorded in the state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub at: u64,
    pub kind: String,
    pub node: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditState {
    pub version: u32,
    pub origin: String,
    pub head: Option<Head>,
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeView>,
    /// Size -> root (hex) of checkpoints seen, newest `SEEN_ROOTS_MAX`.
    #[serde(default)]
    pub seen: BTreeMap<u64, String>,
    #[serde(default)]
    pub alerts: Vec<AlertRecord>,
}

pub fn now_unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl AuditState {
    pub fn new(origin: &str) -> Self {
        Self {
            version: STATE_VERSION,
            origin: origin.to_string(),
            head: None,
            nodes: BTreeMap::new(),
            seen: BTreeMap::new(),
            alerts: Vec::new(),
        }
    }

    /// Loads `path` for `origin`; a missing file is a fresh state.
    pub fn load(path: &Path, origin: &str) -> Result<Self, AuditError> {
        let err = |reason: String| AuditError::State {
            path: path.display().to_string(),
            reason,
        };
        let bytes = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new(origin)),
            Err(e) => return Err(err(e.to_string())),
            Ok(m) if m.len() > STATE_BYTES_MAX => {
                return Err(err(format!(
                    "{} bytes is larger than the {STATE_BYTES_MAX}-byte limit",
                    m.len()
                )))
            }
            Ok(_) => std::fs::read(path).map_err(|e| err(e.to_string()))?,
        };
        let state: AuditState = serde_json::from_slice(&bytes)
            .map_err(|e| err(format!("not an Ironlog audit state file: {e}")))?;
        if state.version != STATE_VERSION {
            return Err(err(format!(
                "layout version {} is not the supported version {STATE_VERSION}",
                state.version
            )));
        }
        if state.origin != origin {
            return Err(err(format!(
                "it belongs to the log {:?}, not {origin:?}; use a separate state file per log",
                state.origin
            )));
        }
        if let Some(head) = &state.head {
            parse_root(&head.root)
                .ok_or_else(|| err("the head's root is not 32 hex bytes".into()))?;
        }
        Ok(state)
    }

    /// Replaces `path` atomically with this state.
    pub fn save(&self, path: &Path) -> Result<(), AuditError> {
        let err = |e: std::io::Error| AuditError::State {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let json = serde_json::to_vec_pretty(self).expect("state serialises");
        crate::storage::write_atomic(path, &json).map_err(err)
    }

    /// The head's root hash.
    pub fn head_root(&self) -> Option<(u64, Hash)> {
        let head = self.head.as_ref()?;
        Some((head.size, parse_root(&head.root)?))
    }

    /// Remembers the root of a checkpoint of `size`; returns the different
    /// root remembered for that size, if any (a fork).
    pub fn remember_root(&mut self, size: u64, root: &Hash) -> Option<String> {
        let hex_root = hex::encode(root);
        match self.seen.get(&size) {
            Some(old) if *old != hex_root => return Some(old.clone()),
            Some(_) => return None,
            None => {}
        }
        self.seen.insert(size, hex_root);
        while self.seen.len() > SEEN_ROOTS_MAX {
            self.seen.pop_first();
        }
        None
    }

    pub fn record_alert(&mut self, kind: &str, node: &str, message: &str) {
        self.alerts.push(AlertRecord {
            at: now_unix_secs(),
            kind: kind.to_string(),
            node: node.to_string(),
            message: message.to_string(),
        });
        if self.alerts.len() > ALERTS_KEPT_MAX {
            let excess = self.alerts.len() - ALERTS_KEPT_MAX;
            self.alerts.drain(..excess);
        }
    }
}

pub fn parse_root(hex_root: &str) -> Option<Hash> {
    hex::decode(hex_root).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_is_tied_to_its_origin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut state = AuditState::load(&path, "a.example/log").unwrap();
        assert_eq!(state.head, None);
        state.head = Some(Head {
            size: 5,
            root: hex::encode([1u8; 32]),
            note: "n".into(),
            accepted_at: 1,
        });
        assert_eq!(state.remember_root(5, &[1; 32]), None);
        assert_eq!(state.remember_root(5, &[1; 32]), None);
        assert_eq!(
            state.remember_root(5, &[2; 32]),
            Some(hex::encode([1u8; 32]))
        );
        state.save(&path).unwrap();
        assert_eq!(AuditState::load(&path, "a.example/log").unwrap(), state);
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, ["state.json"], "no temporary is left beside it");
        let err = AuditState::load(&path, "b.example/log")
            .unwrap_err()
            .to_string();
        assert!(err.contains("belongs to the log"), "{err}");
        std::fs::write(&path, b"{ not json").unwrap();
        let err = AuditState::load(&path, "a.example/log")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an Ironlog audit state file"), "{err}");
    }

    #[test]
    fn seen_roots_are_bounded() {
        let mut state = AuditState::new("o");
        for size in 0..(SEEN_ROOTS_MAX as u64 + 10) {
            state.remember_root(size, &[0; 32]);
        }
        assert_eq!(state.seen.len(), SEEN_ROOTS_MAX);
        assert_eq!(state.seen.keys().next(), Some(&10));
    }
}
