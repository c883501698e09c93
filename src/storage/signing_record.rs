//! The voter's own record of the last checkpoint it signed, so it never
//! signs a history that rewrites one it signed before.
//!
//! # What it owns
//! One small file in the node's data dir ([`SIGNING_RECORD_FILE`]): the
//! origin, size and root hash of the newest checkpoint this voter signed.
//! The ledger store can be replaced wholesale (a snapshot install), so it
//! cannot vouch for its own past; this file is the voter's memory, apart
//! from it.
//!
//! # Invariants
//! - A checkpoint is signed only if it is the recorded tree (same size and
//!   root: re-signing is harmless), or larger and a consistency proof from
//!   the recorded tree to it verifies. Smaller, same size with another
//!   root, or a failed proof is refused ([`SigningRefusal`]).
//! - The recorded size never decreases (asserted).
//! - The record is written, durably, before the signature leaves the node.
//!
//! # Crash semantics
//! Written with [`super::write_atomic`] (temp file, fsync, rename, fsync of
//! the directory): after a crash the file holds the old record or the new,
//! never a mix. A crash after recording and before signing only means the
//! next attempt re-signs the recorded tree, which is allowed. A file that
//! does not parse is refused with [`SigningRecordError::Corrupt`]: the node
//! must not sign until an operator has looked, because starting afresh
//! would forget what it signed. A missing file means "never signed" (a new
//! voter, or a wiped data dir, which forgets too: keep it with the key).
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use base64::prelude::{Engine, BASE64_STANDARD};

use crate::ledger::checkpoint::CheckpointBody;
use crate::ledger::merkle::{self, Hash};

/// The record's file name inside the data dir.
pub const SIGNING_RECORD_FILE: &str = "signing-record";

/// First line of the file; a new layout gets a new line.
const HEADER: &str = "ironlog signing record v1";

/// Largest file accepted, bytes: the header, an origin of at most
/// `limits::ORIGIN_BYTES_MAX` bytes, a size and a base64 hash, with room.
const FILE_BYTES_MAX: u64 = 1024;

/// Why the record cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SigningRecordError {
    /// The file could not be read or written; retry (or fix the disk).
    #[error("signing record {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The file does not parse: fatal for signing until an operator checks
    /// it, since ignoring it would forget what this voter signed.
    #[error("signing record {path} is corrupt ({reason}); this voter signs nothing until an operator restores or removes it")]
    Corrupt { path: PathBuf, reason: String },
}

/// Why this voter refuses to sign a checkpoint. Roots are shown in base64,
/// as in checkpoint bodies.
#[derive(Debug, thiserror::Error)]
pub enum SigningRefusal {
    /// The checkpoint is of another log than the one this voter signed.
    #[error(
        "checkpoint of origin {origin:?} is not of the log this voter signs ({signed_origin:?})"
    )]
    OtherLog {
        origin: String,
        signed_origin: String,
    },
    /// The tree shrank: everything past `size` would be disowned.
    #[error("checkpoint at size {size} (root {root}) is smaller than the tree of size {signed_size} (root {signed_root}) this voter already signed")]
    Shrinks {
        size: u64,
        root: String,
        signed_size: u64,
        signed_root: String,
    },
    /// Same size, another root: a fork of the tree this voter signed.
    #[error("checkpoint at size {size} has root {root}, but this voter signed root {signed_root} at that size")]
    Forks {
        size: u64,
        root: String,
        signed_root: String,
    },
    /// No proof could be read (the store is behind or failing); retry later.
    #[error(
        "no consistency proof from the signed tree of size {signed_size} to size {size}: {reason}"
    )]
    ProofUnavailable {
        signed_size: u64,
        size: u64,
        reason: String,
    },
    /// The proof does not show the signed tree is a prefix of the new one:
    /// the history this voter signed was rewritten.
    #[error("checkpoint at size {size} (root {root}) does not extend the tree of size {signed_size} (root {signed_root}) this voter signed: {reason}")]
    Inconsistent {
        size: u64,
        root: String,
        signed_size: u64,
        signed_root: String,
        reason: String,
    },
    /// The record could not be written, so the signature must not be given.
    #[error(transparent)]
    Record(#[from] SigningRecordError),
}

/// The tree a voter last signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTree {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// The persistent record of the last checkpoint this voter signed.
#[derive(Debug)]
pub struct SigningRecord {
    path: PathBuf,
    last: Option<SignedTree>,
}

impl SigningRecord {
    /// Reads the record in `dir` (the node's data dir); none yet is fine.
    pub fn open(dir: &Path) -> Result<Self, SigningRecordError> {
        let path = dir.join(SIGNING_RECORD_FILE);
        let io_err = |source| SigningRecordError::Io {
            path: path.clone(),
            source,
        };
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self { path, last: None }),
            Err(e) => return Err(io_err(e)),
        };
        // Bounded read: a huge file is as corrupt as a garbled one.
        let mut bytes = Vec::new();
        file.take(FILE_BYTES_MAX + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
        let last = parse(&bytes).map_err(|reason| SigningRecordError::Corrupt {
            path: path.clone(),
            reason,
        })?;
        Ok(Self {
            path,
            last: Some(last),
        })
    }

    /// The tree last signed, if any.
    pub fn last_signed(&self) -> Option<&SignedTree> {
        self.last.as_ref()
    }

    /// Whether `body` may be signed: it is the recorded tree, or extends it
    /// as `consistency(old size, new size)` proves (called only when the
    /// proof is needed; the store's own roots are not trusted, the proof is
    /// checked against the recorded root and the body's root).
    pub fn check_extension<E: std::fmt::Display>(
        &self,
        body: &CheckpointBody,
        consistency: impl FnOnce(u64, u64) -> Result<Vec<Hash>, E>,
    ) -> Result<(), SigningRefusal> {
        let Some(last) = &self.last else {
            return Ok(());
        };
        if body.origin != last.origin {
            return Err(SigningRefusal::OtherLog {
                origin: body.origin.clone(),
                signed_origin: last.origin.clone(),
            });
        }
        let (size, root) = (body.size, b64(&body.root));
        let (signed_size, signed_root) = (last.size, b64(&last.root));
        if size < signed_size {
            return Err(SigningRefusal::Shrinks {
                size,
                root,
                signed_size,
                signed_root,
            });
        }
        if size == signed_size {
            if body.root != last.root {
                return Err(SigningRefusal::Forks {
                    size,
                    root,
                    signed_root,
                });
            }
            return Ok(());
        }
        // The empty tree is a prefix of every tree.
        if signed_size == 0 {
            return Ok(());
        }
        let proof =
            consistency(signed_size, size).map_err(|e| SigningRefusal::ProofUnavailable {
                signed_size,
                size,
                reason: e.to_string(),
            })?;
        merkle::verify_consistency(signed_size, size, &last.root, &body.root, &proof).map_err(|e| {
            SigningRefusal::Inconsistent {
                size,
                root,
                signed_size,
                signed_root,
                reason: e.to_string(),
            }
        })
    }

    /// Checks `body` as [`SigningRecord::check_extension`] does and, if it
    /// may be signed, records it durably before returning: sign only after
    /// this returns `Ok`.
    pub fn authorize_and_record<E: std::fmt::Display>(
        &mut self,
        body: &CheckpointBody,
        consistency: impl FnOnce(u64, u64) -> Result<Vec<Hash>, E>,
    ) -> Result<(), SigningRefusal> {
        self.check_extension(body, consistency)?;
        let tree = SignedTree {
            origin: body.origin.clone(),
            size: body.size,
            root: body.root,
        };
        if self.last.as_ref() == Some(&tree) {
            return Ok(());
        }
        assert!(
            self.last.as_ref().is_none_or(|l| l.size < tree.size),
            "the signed tree only grows"
        );
        super::write_atomic(&self.path, render(&tree).as_bytes()).map_err(|source| {
            SigningRecordError::Io {
                path: self.path.clone(),
                source,
            }
        })?;
        self.last = Some(tree);
        Ok(())
    }
}

fn b64(hash: &Hash) -> String {
    BASE64_STANDARD.encode(hash)
}

fn render(tree: &SignedTree) -> String {
    format!(
        "{HEADER}\n{}\n{}\n{}\n",
        tree.origin,
        tree.size,
        b64(&tree.root)
    )
}

/// Parses the file strictly: exactly what [`render`] writes, nothing else.
fn parse(bytes: &[u8]) -> Result<SignedTree, String> {
    if bytes.len() as u64 > FILE_BYTES_MAX {
        return Err(format!("longer than {FILE_BYTES_MAX} bytes"));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let body = text
        .strip_suffix('\n')
        .ok_or("does not end with a newline")?;
    let lines: Vec<&str> = body.split('\n').collect();
    let [header, origin, size, root] = lines[..] else {
        return Err(format!("has {} lines, expected 4", lines.len()));
    };
    if header != HEADER {
        return Err(format!("first line is not {HEADER:?}"));
    }
    if origin.is_empty() || origin.chars().any(char::is_control) {
        return Err("origin line is empty or has control characters".into());
    }
    let size: u64 = size
        .parse()
        .ok()
        .filter(|n: &u64| n.to_string() == size)
        .ok_or("size line is not a decimal number")?;
    let root: Hash = BASE64_STANDARD
        .decode(root)
        .ok()
        .and_then(|raw| raw.try_into().ok())
        .filter(|h: &Hash| b64(h) == root)
        .ok_or("root line is not a base64 SHA-256 hash")?;
    let tree = SignedTree {
        origin: origin.to_string(),
        size,
        root,
    };
    // Read back what a write would produce: any other byte is corruption.
    if render(&tree) != text {
        return Err("not in canonical form".into());
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::merkle::{MemoryHashStore, MerkleError};

    const ORIGIN: &str = "ironlog.test/log";

    /// A tree of `n` leaves named `prefix0`, `prefix1`, ...
    fn tree(prefix: &str, n: u64) -> MemoryHashStore {
        let mut t = MemoryHashStore::new();
        for i in 0..n {
            t.append(format!("{prefix}{i}").as_bytes()).unwrap();
        }
        t
    }

    fn body(t: &MemoryHashStore) -> CheckpointBody {
        CheckpointBody {
            origin: ORIGIN.into(),
            size: t.size(),
            root: t.root().unwrap(),
        }
    }

    /// Consistency proofs from `t`, as a store holding `t` would give them.
    fn proofs(t: &MemoryHashStore) -> impl FnOnce(u64, u64) -> Result<Vec<Hash>, MerkleError> + '_ {
        move |old, new| merkle::consistency_proof(old, new, t)
    }

    fn no_proof(_: u64, _: u64) -> Result<Vec<Hash>, MerkleError> {
        panic!("no proof is needed here")
    }

    #[test]
    fn a_new_voter_signs_and_the_record_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let t = tree("a", 5);
        let mut record = SigningRecord::open(dir.path()).unwrap();
        assert_eq!(record.last_signed(), None);
        record.authorize_and_record(&body(&t), no_proof).unwrap();
        let reopened = SigningRecord::open(dir.path()).unwrap();
        assert_eq!(
            reopened.last_signed(),
            Some(&SignedTree {
                origin: ORIGIN.into(),
                size: 5,
                root: t.root().unwrap()
            })
        );
    }

    #[test]
    fn the_same_tree_is_signed_again_and_extensions_with_a_proof() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = SigningRecord::open(dir.path()).unwrap();
        let small = tree("a", 5);
        let big = tree("a", 12);
        record
            .authorize_and_record(&body(&small), no_proof)
            .unwrap();
        record
            .authorize_and_record(&body(&small), no_proof)
            .unwrap();
        record
            .authorize_and_record(&body(&big), proofs(&big))
            .unwrap();
        assert_eq!(record.last_signed().unwrap().size, 12);
        assert_eq!(
            SigningRecord::open(dir.path()).unwrap().last_signed(),
            record.last_signed()
        );
    }

    #[test]
    fn a_smaller_tree_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = SigningRecord::open(dir.path()).unwrap();
        record
            .authorize_and_record(&body(&tree("a", 8)), no_proof)
            .unwrap();
        let err = record
            .authorize_and_record(&body(&tree("a", 7)), no_proof)
            .unwrap_err();
        assert!(
            matches!(
                err,
                SigningRefusal::Shrinks {
                    size: 7,
                    signed_size: 8,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(record.last_signed().unwrap().size, 8);
    }

    #[test]
    fn a_forged_tree_of_the_same_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = SigningRecord::open(dir.path()).unwrap();
        let good = tree("a", 8);
        record.authorize_and_record(&body(&good), no_proof).unwrap();
        let forged = tree("forged", 8);
        let err = record
            .authorize_and_record(&body(&forged), no_proof)
            .unwrap_err();
        let SigningRefusal::Forks {
            size,
            root,
            signed_root,
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(*size, 8);
        assert_eq!(*root, b64(&forged.root().unwrap()));
        assert_eq!(*signed_root, b64(&good.root().unwrap()));
        assert!(err.to_string().contains(signed_root.as_str()));
        // Refused, so not recorded: the good tree is still the reference.
        assert_eq!(
            SigningRecord::open(dir.path())
                .unwrap()
                .last_signed()
                .unwrap()
                .root,
            good.root().unwrap()
        );
    }

    #[test]
    fn a_larger_tree_that_rewrites_the_signed_prefix_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = SigningRecord::open(dir.path()).unwrap();
        record
            .authorize_and_record(&body(&tree("a", 6)), no_proof)
            .unwrap();
        // Leaf 2 rewritten, then grown: a store holding this tree gives
        // proofs about it, and none connects it to what was signed.
        let mut rewritten = MemoryHashStore::new();
        for i in 0..20u64 {
            let leaf = if i == 2 {
                "evil".into()
            } else {
                format!("a{i}")
            };
            rewritten.append(leaf.as_bytes()).unwrap();
        }
        let err = record
            .authorize_and_record(&body(&rewritten), proofs(&rewritten))
            .unwrap_err();
        assert!(
            matches!(
                err,
                SigningRefusal::Inconsistent {
                    size: 20,
                    signed_size: 6,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(record.last_signed().unwrap().size, 6);
    }

    #[test]
    fn a_missing_proof_or_another_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = SigningRecord::open(dir.path()).unwrap();
        record
            .authorize_and_record(&body(&tree("a", 3)), no_proof)
            .unwrap();
        let err = record
            .check_extension(&body(&tree("a", 9)), |_, _| Err("store is behind"))
            .unwrap_err();
        assert!(matches!(
            err,
            SigningRefusal::ProofUnavailable {
                signed_size: 3,
                size: 9,
                ..
            }
        ));
        let mut other = body(&tree("a", 3));
        other.origin = "other.test/log".into();
        assert!(matches!(
            record.check_extension(&other, no_proof),
            Err(SigningRefusal::OtherLog { .. })
        ));
    }

    #[test]
    fn a_corrupt_record_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = SigningRecord::open(dir.path()).unwrap();
        record
            .authorize_and_record(&body(&tree("a", 3)), no_proof)
            .unwrap();
        let path = dir.path().join(SIGNING_RECORD_FILE);
        let good = std::fs::read_to_string(&path).unwrap();
        let corruptions = [
            String::new(),
            good[..good.len() - 1].to_string(),
            good.replace("\n3\n", "\n03\n"),
            good.replace("\n3\n", "\n-3\n"),
            good.replace(HEADER, "ironlog signing record v9"),
            good.replacen('=', "", 1),
            format!("{good}extra\n"),
            "x".repeat(FILE_BYTES_MAX as usize + 10),
        ];
        for bad in corruptions {
            std::fs::write(&path, &bad).unwrap();
            assert!(
                matches!(
                    SigningRecord::open(dir.path()),
                    Err(SigningRecordError::Corrupt { .. })
                ),
                "{bad:?} was accepted"
            );
        }
    }
}
