//! What a check found: the report, its problems and their kinds, and the
//! outcome of redb's own integrity check.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// What was checked and what was wrong.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FsckReport {
    pub ledger_file: PathBuf,
    /// The origin the checkpoints name (the most common one, if they differ).
    pub origin: Option<String>,
    /// The tree size recorded in the metadata (or, if that is unreadable, the
    /// number of leaves walked).
    pub tree_size: u64,
    pub entries_checked: u64,
    pub hashes_checked: u64,
    pub checkpoints_checked: u64,
    pub signatures_checked: u64,
    pub signatures_verified: u64,
    pub index_rows_checked: u64,
    /// `name+keyid` of every key signatures were checked against, and where it came from.
    pub known_keys: Vec<String>,
    /// The file was not closed cleanly, so a recovered private copy was checked.
    pub recovered_copy: bool,
    pub redb_check: RedbCheck,
    /// The smallest leaf index any problem names: the tree of every smaller
    /// size is intact as stored.
    pub first_bad_leaf: Option<u64>,
    /// In the order found (leaf order, then the index tables); at most
    /// [`FSCK_PROBLEMS_MAX`](crate::limits::FSCK_PROBLEMS_MAX).
    pub problems: Vec<Problem>,
    /// Problems found beyond
    /// [`FSCK_PROBLEMS_MAX`](crate::limits::FSCK_PROBLEMS_MAX), counted only.
    pub problems_omitted: u64,
}

impl FsckReport {
    /// No problem found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.problems_omitted == 0
    }

    pub fn problem_count(&self) -> u64 {
        self.problems.len() as u64 + self.problems_omitted
    }

    /// The first problem naming [`Self::first_bad_leaf`], if the report holds it.
    pub fn first_bad_leaf_problem(&self) -> Option<&Problem> {
        let leaf = self.first_bad_leaf?;
        self.problems.iter().find(|p| p.leaf_index == Some(leaf))
    }
}

/// The outcome of redb's own integrity check.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RedbCheck {
    #[default]
    NotRun,
    /// Every page reachable from the last commit has its recorded checksum.
    Passed,
    /// Reported as a [`ProblemKind::RedbIntegrity`] problem too.
    Failed,
    /// The file needed recovery; redb verified the copy's checksums while
    /// recovering it.
    VerifiedOnRecovery,
    Skipped {
        reason: String,
    },
}

/// One thing found wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The leaf whose append first made the stored state wrong, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_size: Option<u64>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.leaf_index, self.checkpoint_size) {
            (Some(leaf), _) => write!(f, "{} at leaf {leaf}: {}", self.kind, self.message),
            (None, Some(size)) => write!(f, "{} at checkpoint {size}: {}", self.kind, self.message),
            (None, None) => write!(f, "{}: {}", self.kind, self.message),
        }
    }
}

/// What kind of thing is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The state metadata is missing, unreadable, or disagrees with the leaves.
    Meta,
    /// The stored membership does not decode, or holds an invalid voter key.
    Membership,
    /// Leaves below the tree size are not stored.
    EntryMissing,
    /// Leaves are stored at or beyond the tree size.
    EntryUnexpected,
    /// A leaf does not decode as a canonical leaf record.
    EntryDecode,
    /// A leaf decodes but contradicts its position (index, commit time order).
    EntryRecord,
    /// A leaf's bytes do not hash to its stored leaf hash.
    LeafHashMismatch,
    /// A stored hash the tree needs is not stored.
    HashMissing,
    /// A stored hash beyond what the tree needs.
    HashUnexpected,
    /// An interior stored hash differs from the hash of the leaves below it.
    HashMismatch,
    /// A checkpoint body does not parse, is not canonical, or is stored under
    /// another size.
    CheckpointMalformed,
    /// A checkpoint names another origin than the rest.
    CheckpointOrigin,
    /// A checkpoint is for a size beyond the tree.
    CheckpointBeyondTree,
    /// A checkpoint's root is not the root of the stored leaves at its size.
    CheckpointRoot,
    /// A signature line does not parse, is not canonical, or is stored under
    /// another key ID.
    SignatureMalformed,
    /// A signature by a key that is neither a voter's nor given by the caller.
    SignatureUnknownKey,
    /// A signature by a known key that does not verify over its checkpoint.
    SignatureInvalid,
    /// A signature stored for a size that has no checkpoint.
    SignatureOrphan,
    /// A query index or idempotency row disagrees with the leaves.
    IndexRow,
    /// redb's page checksum check failed, or redb cannot open the file.
    RedbIntegrity,
    /// redb failed or panicked while reading; the check stopped there.
    Unreadable,
}

impl ProblemKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ProblemKind::Meta => "meta",
            ProblemKind::Membership => "membership",
            ProblemKind::EntryMissing => "entry_missing",
            ProblemKind::EntryUnexpected => "entry_unexpected",
            ProblemKind::EntryDecode => "entry_decode",
            ProblemKind::EntryRecord => "entry_record",
            ProblemKind::LeafHashMismatch => "leaf_hash_mismatch",
            ProblemKind::HashMissing => "hash_missing",
            ProblemKind::HashUnexpected => "hash_unexpected",
            ProblemKind::HashMismatch => "hash_mismatch",
            ProblemKind::CheckpointMalformed => "checkpoint_malformed",
            ProblemKind::CheckpointOrigin => "checkpoint_origin",
            ProblemKind::CheckpointBeyondTree => "checkpoint_beyond_tree",
            ProblemKind::CheckpointRoot => "checkpoint_root",
            ProblemKind::SignatureMalformed => "signature_malformed",
            ProblemKind::SignatureUnknownKey => "signature_unknown_key",
            ProblemKind::SignatureInvalid => "signature_invalid",
            ProblemKind::SignatureOrphan => "signature_orphan",
            ProblemKind::IndexRow => "index_row",
            ProblemKind::RedbIntegrity => "redb_integrity",
            ProblemKind::Unreadable => "unreadable",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
