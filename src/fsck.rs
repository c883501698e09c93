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
//! Values and string keys are read as raw bytes ([`Raw`]) and decoded here,
//! because redb's own `&str` decoding unwraps. redb itself may still panic on
//! a structurally damaged file (its docs say so for a file altered outside
//! redb), so each phase runs under `catch_unwind`, and a panic becomes a
//! problem saying where the walk stopped.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{self, AtomicU64};

use redb::{
    Builder, DatabaseError, Key, ReadOnlyTable, ReadTransaction, ReadableDatabase, StorageError,
    TableDefinition, TableHandle, TypeName, Value,
};
use serde::Serialize;

use crate::ledger::checkpoint::{self, CheckpointBody, CheckpointError, SignatureLine};
use crate::ledger::cosignature::CosignatureVerifier;
use crate::ledger::event::LeafRecord;
use crate::ledger::merkle::{self, Hash, HashStore, MerkleError, HASH_BYTES};
use crate::limits::{FSCK_CACHE_BYTES, FSCK_PROBLEMS_MAX};
use crate::raft::state_machine::voter_verifier_keys;
use crate::storage::ledger_store::{
    StateMeta, CHECKPOINTS, ENTRIES, HASHES, IDEMPOTENCY, IDX_ACTION, IDX_ACTOR, IDX_OUTCOME,
    IDX_RESOURCE, LEDGER_FILE, META, META_STATE, SIGNATURES, WITNESS_COSIGNATURES,
};
use signed_note::Verifier as _;

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
    /// [`FSCK_PROBLEMS_MAX`].
    pub problems: Vec<Problem>,
    /// Problems found beyond [`FSCK_PROBLEMS_MAX`], counted only.
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

/// Runs `f`, turning a panic into its message. redb trusts the structure of
/// the pages it reads and may panic on one damaged outside redb.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic without a message".into())
    })
}

/// A table key or value read as its raw bytes, under the type name of `T` so
/// that redb opens a table declared with `T`. redb's `&str` decoding unwraps
/// UTF-8, and its fixed-width decoding unwraps the length, either of which a
/// damaged page would turn into a panic; fsck decodes the bytes itself.
#[derive(Debug)]
struct Raw<T>(PhantomData<T>);

impl<T: Value + 'static> Value for Raw<T> {
    type SelfType<'a>
        = &'a [u8]
    where
        Self: 'a;
    type AsBytes<'a>
        = &'a [u8]
    where
        Self: 'a;

    fn fixed_width() -> Option<usize> {
        T::fixed_width()
    }

    fn from_bytes<'a>(data: &'a [u8]) -> &'a [u8]
    where
        Self: 'a,
    {
        data
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a &'b [u8]) -> &'a [u8]
    where
        Self: 'b,
    {
        value
    }

    fn type_name() -> TypeName {
        T::type_name()
    }
}

impl<T: Key + 'static> Key for Raw<T> {
    /// `T`'s order, so the table is the same table. fsck only iterates raw
    /// tables from end to end, which compares no keys.
    fn compare(data1: &[u8], data2: &[u8]) -> Ordering {
        T::compare(data1, data2)
    }
}

/// A table's name, for as long as the program runs.
fn name_of<K: Key + 'static, V: Value + 'static>(
    def: &'static TableDefinition<'static, K, V>,
) -> &'static str {
    def.name()
}

/// The same table with its values read raw.
fn raw_values<K: Key + 'static, V: Value + 'static>(
    def: &'static TableDefinition<'static, K, V>,
) -> TableDefinition<'static, K, Raw<V>> {
    TableDefinition::new(name_of(def))
}

/// The same table with its keys read raw.
fn raw_keys<K: Key + 'static, V: Value + 'static>(
    def: &'static TableDefinition<'static, K, V>,
) -> TableDefinition<'static, Raw<K>, V> {
    TableDefinition::new(name_of(def))
}

/// Splits a redb 2-tuple key whose first element has variable width: redb
/// writes that element's length first (one byte below 254; 254 then a u16;
/// 255 then a u32, little-endian), then the first element, then the last,
/// which runs to the end. `None` if the bytes cannot be such a key.
fn split_pair(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&tag, rest) = key.split_first()?;
    let (len, rest) = match tag {
        0..=253 => (usize::from(tag), rest),
        254 => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            (usize::from(u16::from_le_bytes(*len)), rest)
        }
        255 => {
            let (len, rest) = rest.split_first_chunk::<4>()?;
            (usize::try_from(u32::from_le_bytes(*len)).ok()?, rest)
        }
    };
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// A `(&str, u64)` key: an index row's field value and leaf index.
fn str_u64_key(key: &[u8]) -> Option<(&str, u64)> {
    let (value, index) = split_pair(key)?;
    let index = u64::from_le_bytes(index.try_into().ok()?);
    Some((std::str::from_utf8(value).ok()?, index))
}

/// A `(&str, &str)` key: an idempotency row's source and key.
fn str_str_key(key: &[u8]) -> Option<(&str, &str)> {
    let (source, key) = split_pair(key)?;
    Some((
        std::str::from_utf8(source).ok()?,
        std::str::from_utf8(key).ok()?,
    ))
}

/// The rows of one table in key order, owned, with one row of look-ahead. A
/// read error ends the table and is kept for the checker to report.
struct Cursor<T> {
    table: &'static str,
    rows: Box<dyn Iterator<Item = Result<T, StorageError>>>,
    ahead: Option<T>,
    error: Option<StorageError>,
}

impl<T> Cursor<T> {
    fn new(
        table: &'static str,
        rows: impl Iterator<Item = Result<T, StorageError>> + 'static,
    ) -> Self {
        Self {
            table,
            rows: Box::new(rows),
            ahead: None,
            error: None,
        }
    }

    fn peek(&mut self) -> Option<&T> {
        if self.ahead.is_none() && self.error.is_none() {
            match self.rows.next() {
                Some(Ok(row)) => self.ahead = Some(row),
                Some(Err(e)) => self.error = Some(e),
                None => {}
            }
        }
        self.ahead.as_ref()
    }

    fn next_if(&mut self, wanted: impl FnOnce(&T) -> bool) -> Option<T> {
        if self.peek().is_some_and(wanted) {
            self.ahead.take()
        } else {
            None
        }
    }
}

/// One complete subtree of the tree walked so far.
#[derive(Clone, Copy, Debug)]
struct Node {
    /// Its stored-hash index.
    index: u64,
    /// Its hash recomputed from the leaves.
    computed: Hash,
    /// The hash stored for it, if any.
    stored: Option<Hash>,
}

/// A node an append completed, with what is needed to judge its stored hash.
#[derive(Clone, Copy, Debug)]
struct Completed {
    node: Node,
    level: u8,
    /// The hash of its two stored children, when both are stored (interior
    /// nodes only).
    from_stored_children: Option<Hash>,
    /// A stored child differs from its recomputed hash.
    child_differs: bool,
}

/// The roots of the complete subtrees of the tree walked so far, largest
/// first: one per set bit of the size, and all that appending a leaf or
/// computing the root ever reads of a tree.
#[derive(Debug, Default)]
struct Frontier {
    nodes: Vec<Node>,
}

/// The frontier as a [`HashStore`], answering with computed or stored hashes.
struct FrontierView<'a> {
    nodes: &'a [Node],
    stored: bool,
}

impl HashStore for FrontierView<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        indexes
            .iter()
            .map(|&index| {
                let node = self.nodes.iter().find(|n| n.index == index);
                match node {
                    Some(n) if !self.stored => Ok(n.computed),
                    Some(Node {
                        stored: Some(h), ..
                    }) => Ok(*h),
                    _ => Err(MerkleError::MissingHash { index }),
                }
            })
            .collect()
    }
}

impl Frontier {
    fn view(&self, stored: bool) -> FrontierView<'_> {
        FrontierView {
            nodes: &self.nodes,
            stored,
        }
    }

    /// Appends leaf `n` (the size so far) with hash `leaf_hash`; `stored`
    /// gives the hash stored at a stored-hash index. Returns the nodes the
    /// leaf completes, from the leaf up.
    fn append(
        &mut self,
        n: u64,
        leaf_hash: &Hash,
        mut stored: impl FnMut(u64) -> Option<Hash>,
    ) -> Vec<Completed> {
        let hashes = merkle::hashes_to_store(n, leaf_hash, &self.view(false))
            .expect("the frontier holds every hash an append reads");
        assert_eq!(
            hashes.len(),
            n.trailing_ones() as usize + 1,
            "leaf {n} completes one subtree per trailing one bit"
        );
        let mut completed = Vec::with_capacity(hashes.len());
        let mut right: Option<Node> = None;
        for (level, (index, computed)) in (0u8..).zip(hashes) {
            let node = Node {
                index,
                computed,
                stored: stored(index),
            };
            let (from_stored_children, child_differs) = match right {
                None => (None, false),
                Some(r) => {
                    let l = self
                        .nodes
                        .pop()
                        .expect("a completed subtree has its left half in the frontier");
                    let from = l
                        .stored
                        .zip(r.stored)
                        .map(|(l, r)| merkle::node_hash(&l, &r));
                    let differs = l.stored != Some(l.computed) || r.stored != Some(r.computed);
                    (from, differs)
                }
            };
            completed.push(Completed {
                node,
                level,
                from_stored_children,
                child_differs,
            });
            right = Some(node);
        }
        self.nodes
            .push(right.expect("an append completes at least its leaf"));
        completed
    }

    /// The root of the tree so far of `size` leaves, from the recomputed or
    /// the stored hashes; `None` if a stored one is missing.
    fn root(&self, size: u64, stored: bool) -> Option<Hash> {
        merkle::root(size, &self.view(stored)).ok()
    }
}

/// The known verifier keys: (name, key ID) -> (key, where it came from).
type Keys = BTreeMap<(String, u32), (String, String)>;

/// Rows as fsck reads them: key and raw value bytes.
type Rows<K> = Cursor<(K, Vec<u8>)>;

/// The state of the walk in leaf order.
struct Walk {
    entries: Rows<u64>,
    hashes: Rows<u64>,
    checkpoints: Rows<u64>,
    signatures: Rows<(u64, u32)>,
    /// `None` once a leaf is missing: nothing above it can be recomputed.
    frontier: Option<Frontier>,
    /// Leaves walked so far: the size the frontier is for.
    walked: u64,
    last_commit_time: Option<i64>,
    /// Leaves that decode and carry an idempotency key.
    keyed_leaves: u64,
    /// (checkpoint size, origin) of every checkpoint that parses.
    origins: Vec<(u64, String)>,
}

struct Checker {
    report: FsckReport,
    keys: Keys,
    /// Leaves with an idempotency key, once the walk has counted them all.
    keyed_leaves: Option<u64>,
}

impl Checker {
    fn problem(
        &mut self,
        kind: ProblemKind,
        leaf_index: Option<u64>,
        checkpoint_size: Option<u64>,
        message: String,
    ) {
        if let Some(leaf) = leaf_index {
            let first = self.report.first_bad_leaf.get_or_insert(leaf);
            *first = (*first).min(leaf);
        }
        if self.report.problems.len() < FSCK_PROBLEMS_MAX {
            self.report.problems.push(Problem {
                kind,
                leaf_index,
                checkpoint_size,
                message,
            });
        } else {
            self.report.problems_omitted += 1;
        }
    }

    fn at_leaf(&mut self, kind: ProblemKind, leaf: u64, message: String) {
        self.problem(kind, Some(leaf), None, message);
    }

    fn at_checkpoint(&mut self, kind: ProblemKind, size: u64, message: String) {
        self.problem(kind, None, Some(size), message);
    }

    fn general(&mut self, kind: ProblemKind, message: String) {
        self.problem(kind, None, None, message);
    }

    fn report_cursor<T>(&mut self, cursor: &Cursor<T>) {
        if let Some(e) = &cursor.error {
            let message = format!(
                "reading table {} failed; the rest of it is unchecked: {e}",
                cursor.table
            );
            self.general(ProblemKind::Unreadable, message);
        }
    }

    fn open<K: Key + 'static, V: Value + 'static>(
        &mut self,
        txn: &ReadTransaction,
        def: TableDefinition<K, V>,
    ) -> Option<ReadOnlyTable<K, V>> {
        match txn.open_table(def) {
            Ok(table) => Some(table),
            Err(e) => {
                let message = format!("table {} cannot be opened: {e}", def.name());
                self.general(ProblemKind::Unreadable, message);
                None
            }
        }
    }

    /// Checks a database open for reading: the ledger walk, then the index
    /// tables. A redb panic stops only the phase it happens in.
    fn check_database(&mut self, db: &impl ReadableDatabase) -> Result<(), FsckError> {
        let txn = db.begin_read().map_err(|e| FsckError::Unreadable {
            path: self.report.ledger_file.clone(),
            reason: e.to_string(),
        })?;
        self.require_ledger_tables(&txn)?;
        if let Err(panic) = guarded(|| self.walk(&txn)) {
            let message =
                format!("redb panicked during the ledger walk, which stopped there: {panic}");
            self.general(ProblemKind::Unreadable, message);
        }
        if let Err(panic) = guarded(|| self.check_indexes(&txn)) {
            let message =
                format!("redb panicked checking the index tables, which stopped there: {panic}");
            self.general(ProblemKind::Unreadable, message);
        }
        if let Err(panic) = guarded(|| self.check_witness_cosignatures(&txn)) {
            let message = format!(
                "redb panicked checking the witness cosignatures, which stopped there: {panic}"
            );
            self.general(ProblemKind::Unreadable, message);
        }
        Ok(())
    }

    /// Witness cosignatures are stored with the witness's verifier key, so
    /// each one is re-verified over the stored checkpoint body it is filed
    /// under: a changed byte in the key, the line or the body fails it.
    fn check_witness_cosignatures(&mut self, txn: &ReadTransaction) {
        use ProblemKind::{SignatureInvalid, SignatureMalformed, SignatureOrphan};
        // A ledger that never had a witness has no such table.
        let Ok(table) = txn.open_table(WITNESS_COSIGNATURES) else {
            return;
        };
        let Ok(checkpoints) = txn.open_table(CHECKPOINTS) else {
            return;
        };
        let rows = match table.range::<(u64, u32)>(..) {
            Ok(rows) => rows,
            Err(e) => {
                let message = format!("cannot read the witness cosignatures: {e}");
                self.general(ProblemKind::Unreadable, message);
                return;
            }
        };
        for row in rows {
            let ((size, key_id), (vkey, text)) = match row {
                Ok((k, v)) => {
                    let (vkey, text) = v.value();
                    (k.value(), (vkey.to_string(), text.to_string()))
                }
                Err(e) => {
                    let message = format!("cannot read a witness cosignature: {e}");
                    self.general(ProblemKind::Unreadable, message);
                    return;
                }
            };
            self.report.signatures_checked += 1;
            let verifier = match CosignatureVerifier::new(&vkey) {
                Ok(v) if v.key_id() == key_id => v,
                Ok(v) => {
                    let message = format!(
                        "a witness cosignature is filed under key ID {key_id:08x}, but its key is {:08x}",
                        v.key_id()
                    );
                    self.at_checkpoint(SignatureMalformed, size, message);
                    continue;
                }
                Err(e) => {
                    let message = format!("a stored witness key does not parse: {e}");
                    self.at_checkpoint(SignatureMalformed, size, message);
                    continue;
                }
            };
            let line = match SignatureLine::parse(&text) {
                Ok(line) if line.to_line() == text => line,
                Ok(_) => {
                    let message = "a witness cosignature line is not in canonical form".into();
                    self.at_checkpoint(SignatureMalformed, size, message);
                    continue;
                }
                Err(e) => {
                    self.at_checkpoint(SignatureMalformed, size, e.to_string());
                    continue;
                }
            };
            let body = match checkpoints.get(size) {
                Ok(Some(body)) => CheckpointBody::parse(body.value()).ok(),
                _ => {
                    let message = format!(
                        "a witness cosignature by key ID {key_id:08x} is stored, but no checkpoint"
                    );
                    self.at_checkpoint(SignatureOrphan, size, message);
                    continue;
                }
            };
            // A body that does not parse is reported by the walk already.
            if let Some(body) = body {
                match verifier.verify_line(&body, &line) {
                    Ok(_) => self.report.signatures_verified += 1,
                    Err(e) => self.at_checkpoint(SignatureInvalid, size, e.to_string()),
                }
            }
        }
    }

    /// A redb file without the ledger's core tables is not a ledger at all.
    fn require_ledger_tables(&self, txn: &ReadTransaction) -> Result<(), FsckError> {
        let listed = guarded(|| {
            txn.list_tables()
                .map(|tables| tables.map(|t| t.name().to_string()).collect::<Vec<_>>())
        });
        let tables = match listed {
            Ok(Ok(tables)) => tables,
            Ok(Err(e)) => {
                return Err(FsckError::Unreadable {
                    path: self.report.ledger_file.clone(),
                    reason: format!("cannot list its tables: {e}"),
                })
            }
            Err(panic) => {
                return Err(FsckError::Unreadable {
                    path: self.report.ledger_file.clone(),
                    reason: format!("redb panicked listing its tables: {panic}"),
                })
            }
        };
        for name in [ENTRIES.name(), META.name()] {
            if !tables.iter().any(|t| t == name) {
                return Err(FsckError::NotDataDir {
                    path: self.report.ledger_file.clone(),
                    reason: format!("the redb file has no {name} table"),
                });
            }
        }
        Ok(())
    }

    /// The state metadata, or `None` (reported) if it is unreadable.
    fn read_meta(&mut self, txn: &ReadTransaction) -> Option<StateMeta> {
        let table = self.open(txn, raw_keys(&META))?;
        let mut state = None;
        let rows = match table.range::<&[u8]>(..) {
            Ok(rows) => rows,
            Err(e) => {
                self.general(ProblemKind::Meta, format!("cannot read: {e}"));
                return None;
            }
        };
        for row in rows {
            let (key, value) = match row {
                Ok(row) => row,
                Err(e) => {
                    self.general(ProblemKind::Meta, format!("cannot read: {e}"));
                    return None;
                }
            };
            if key.value() == META_STATE.as_bytes() {
                state = Some(value.value().to_vec());
            } else {
                let message = format!(
                    "unexpected metadata row {:?}",
                    String::from_utf8_lossy(key.value())
                );
                self.general(ProblemKind::Meta, message);
            }
        }
        // A store that never applied anything has no state row: size 0.
        let Some(state) = state else {
            return Some(StateMeta::default());
        };
        match serde_json::from_slice(&state) {
            Ok(meta) => Some(meta),
            Err(e) => {
                let message =
                    format!("the state row does not decode ({e}); the tree size is unknown");
                self.general(ProblemKind::Meta, message);
                None
            }
        }
    }

    /// Adds the voters' keys in the stored membership to the known keys.
    fn learn_voter_keys(&mut self, meta: &StateMeta) {
        let Some(blob) = &meta.membership else {
            return;
        };
        let voters = match voter_verifier_keys(blob) {
            Ok(voters) => voters,
            Err(e) => {
                let message = format!("the stored membership does not decode: {e}");
                self.general(ProblemKind::Membership, message);
                return;
            }
        };
        for (id, vkey) in voters {
            match checkpoint::verifier_key_id(&vkey) {
                Ok(key) => {
                    self.keys
                        .entry(key)
                        .or_insert((vkey, format!("voter {id}")));
                }
                Err(e) => {
                    let message = format!("voter {id}'s verifier key is invalid: {e}");
                    self.general(ProblemKind::Membership, message);
                }
            }
        }
    }

    /// The walk in leaf order over entries, hashes, checkpoints and signatures.
    fn walk(&mut self, txn: &ReadTransaction) {
        let meta = self.read_meta(txn);
        if let Some(meta) = &meta {
            self.learn_voter_keys(meta);
            self.report.tree_size = meta.tree_size;
        }
        self.report.known_keys = self
            .keys
            .iter()
            .map(|((name, id), (_, from))| format!("{name}+{id:08x} ({from})"))
            .collect();
        let Some(mut walk) = self.start_walk(txn) else {
            return;
        };
        let size = meta.as_ref().map(|m| m.tree_size);
        self.walk_leaves(&mut walk, size);
        let size = size.unwrap_or(walk.walked);
        self.report.tree_size = size;
        if let (Some(meta), Some(last)) = (&meta, walk.last_commit_time) {
            if meta.last_commit_time_unix_nanos < last {
                let message = format!(
                    "the recorded last commit time {} is before the last leaf's, {last}",
                    meta.last_commit_time_unix_nanos
                );
                self.general(ProblemKind::Meta, message);
            }
        }
        self.finish_walk(&mut walk, size);
        self.check_origins(&walk.origins);
        // Only a leaf table read to its end has counted every keyed leaf.
        if walk.entries.error.is_none() {
            self.keyed_leaves = Some(walk.keyed_leaves);
        }
    }

    fn start_walk(&mut self, txn: &ReadTransaction) -> Option<Walk> {
        let entries = self.open(txn, ENTRIES)?;
        let hashes = self.open(txn, raw_values(&HASHES))?;
        let checkpoints = self.open(txn, CHECKPOINTS)?;
        let signatures = self.open(txn, raw_values(&SIGNATURES))?;
        let cursors = (|| {
            Ok::<_, StorageError>(Walk {
                entries: Cursor::new(
                    name_of(&ENTRIES),
                    entries
                        .range::<u64>(..)?
                        .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec()))),
                ),
                hashes: Cursor::new(
                    name_of(&HASHES),
                    hashes
                        .range::<u64>(..)?
                        .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec()))),
                ),
                checkpoints: Cursor::new(
                    name_of(&CHECKPOINTS),
                    checkpoints
                        .range::<u64>(..)?
                        .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec()))),
                ),
                signatures: Cursor::new(
                    name_of(&SIGNATURES),
                    signatures
                        .range::<(u64, u32)>(..)?
                        .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec()))),
                ),
                frontier: Some(Frontier::default()),
                walked: 0,
                last_commit_time: None,
                keyed_leaves: 0,
                origins: Vec::new(),
            })
        })();
        match cursors {
            Ok(walk) => Some(walk),
            Err(e) => {
                self.general(
                    ProblemKind::Unreadable,
                    format!("cannot read the ledger tables: {e}"),
                );
                None
            }
        }
    }

    /// Every stored leaf, in order, with the checkpoints cut between them.
    fn walk_leaves(&mut self, walk: &mut Walk, size: Option<u64>) {
        while let Some((index, leaf)) = walk.entries.next_if(|_| true) {
            if let Some(size) = size.filter(|&size| index >= size) {
                let mut extra = 1u64;
                while walk.entries.next_if(|_| true).is_some() {
                    extra += 1;
                }
                let message = format!(
                    "{extra} leaves are stored at or beyond the tree size {size}, the first at index {index}"
                );
                self.at_leaf(ProblemKind::EntryUnexpected, index, message);
                break;
            }
            self.checkpoints_upto(walk, walk.walked);
            if index > walk.walked {
                self.lose_tree(walk, index);
                self.checkpoints_upto(walk, index);
            }
            self.check_leaf(walk, index, &leaf);
            walk.walked = index.saturating_add(1);
        }
        if let Some(size) = size.filter(|&size| walk.walked < size) {
            self.checkpoints_upto(walk, walk.walked);
            self.lose_tree(walk, size);
        }
    }

    /// Leaves `walk.walked..upto` are missing: report them, and stop
    /// recomputing the tree, which no longer can be.
    fn lose_tree(&mut self, walk: &mut Walk, upto: u64) {
        let from = walk.walked;
        let message = if walk.frontier.take().is_some() {
            format!("leaves {from}..{upto} are not stored; hashes and roots above leaf {from} are not checked")
        } else {
            format!("leaves {from}..{upto} are not stored")
        };
        self.at_leaf(ProblemKind::EntryMissing, from, message);
    }

    fn check_leaf(&mut self, walk: &mut Walk, index: u64, leaf: &[u8]) {
        self.report.entries_checked += 1;
        match LeafRecord::decode(leaf) {
            Err(e) => {
                let message = format!("the stored entry does not decode: {e}");
                self.at_leaf(ProblemKind::EntryDecode, index, message);
            }
            Ok(record) => {
                if record.index != index {
                    let message = format!("the stored entry says it is leaf {}", record.index);
                    self.at_leaf(ProblemKind::EntryRecord, index, message);
                }
                let time = record.commit_time_unix_nanos;
                if let Some(previous) = walk.last_commit_time.filter(|&p| time < p) {
                    let message =
                        format!("commit time {time} is before the previous leaf's, {previous}");
                    self.at_leaf(ProblemKind::EntryRecord, index, message);
                }
                walk.last_commit_time = Some(time);
                if record.event.idempotency_key.is_some() {
                    walk.keyed_leaves += 1;
                }
            }
        }
        let Some(frontier) = &mut walk.frontier else {
            return;
        };
        let hashes = &mut walk.hashes;
        let mut unexpected = Vec::new();
        let completed = frontier.append(index, &merkle::leaf_hash(leaf), |wanted| {
            // Rows below the one wanted were all asked for already; one
            // still here is a stored hash no tree position owns.
            while let Some((extra, _)) = hashes.next_if(|(i, _)| *i < wanted) {
                unexpected.push(extra);
            }
            let (_, bytes) = hashes.next_if(|(i, _)| *i == wanted)?;
            <[u8; HASH_BYTES]>::try_from(bytes.as_slice()).ok()
        });
        for extra in unexpected {
            let message = format!("stored hash {extra} belongs to no node of the tree");
            self.at_leaf(ProblemKind::HashUnexpected, index, message);
        }
        for node in completed {
            self.judge_hash(index, &node);
        }
    }

    /// Compares one stored hash that leaf `leaf` completed with the leaves.
    fn judge_hash(&mut self, leaf: u64, completed: &Completed) {
        let Completed {
            node,
            level,
            from_stored_children,
            child_differs,
        } = *completed;
        let Some(stored) = node.stored else {
            let message = format!(
                "stored hash {} (level {level}) is missing or not {HASH_BYTES} bytes",
                node.index
            );
            self.at_leaf(ProblemKind::HashMissing, leaf, message);
            return;
        };
        self.report.hashes_checked += 1;
        if stored == node.computed {
            return;
        }
        if level == 0 {
            let message = format!(
                "stored entry hashes to {}, but its stored leaf hash ({}) is {}",
                hex::encode(node.computed),
                node.index,
                hex::encode(stored)
            );
            self.at_leaf(ProblemKind::LeafHashMismatch, leaf, message);
            return;
        }
        // Already explained by the child that differs, if it agrees with
        // the stored children.
        if child_differs && from_stored_children == Some(stored) {
            return;
        }
        let first = leaf + 1 - (1u64 << level);
        let message = format!(
            "stored hash {} (level {level}, leaves {first}..={leaf}) is {}, but the leaves hash to {}",
            node.index,
            hex::encode(stored),
            hex::encode(node.computed)
        );
        self.at_leaf(ProblemKind::HashMismatch, leaf, message);
    }

    /// Checks every checkpoint of size `upto` or less not yet checked. Only
    /// one of the tree's current size can have its root recomputed.
    fn checkpoints_upto(&mut self, walk: &mut Walk, upto: u64) {
        while let Some((size, body)) = walk.checkpoints.next_if(|(size, _)| *size <= upto) {
            let roots = walk
                .frontier
                .as_ref()
                .filter(|_| size == walk.walked)
                .and_then(|f| Some((f.root(size, false)?, f.root(size, true))));
            self.check_checkpoint(walk, size, &body, Roots::Known(roots));
        }
    }

    fn check_checkpoint(&mut self, walk: &mut Walk, size: u64, text: &[u8], roots: Roots) {
        self.report.checkpoints_checked += 1;
        self.orphans_below(walk, size);
        let body = match CheckpointBody::parse(text) {
            Ok(body) => Some(body),
            Err(e) => {
                self.at_checkpoint(ProblemKind::CheckpointMalformed, size, e.to_string());
                None
            }
        };
        if let Some(body) = &body {
            if body.to_text().as_bytes() != text {
                let message = "the body is not in canonical form".to_string();
                self.at_checkpoint(ProblemKind::CheckpointMalformed, size, message);
            }
            if body.size != size {
                let message = format!("stored under size {size}, but its body says {}", body.size);
                self.at_checkpoint(ProblemKind::CheckpointMalformed, size, message);
            }
            walk.origins.push((size, body.origin.clone()));
            match roots {
                Roots::BeyondTree(tree_size) => {
                    let message = format!("the tree has only {tree_size} leaves");
                    self.at_checkpoint(ProblemKind::CheckpointBeyondTree, size, message);
                }
                Roots::Known(Some((computed, stored))) if body.root != computed => {
                    // Agreeing with the stored hashes above a leaf already
                    // reported bad, it is that leaf which changed.
                    let explained = stored == Some(body.root)
                        && self.report.first_bad_leaf.is_some_and(|leaf| leaf < size);
                    if !explained {
                        let message = format!(
                            "its root is {}, but the stored leaves give {}",
                            hex::encode(body.root),
                            hex::encode(computed)
                        );
                        self.at_checkpoint(ProblemKind::CheckpointRoot, size, message);
                    }
                }
                Roots::Known(_) => {}
            }
        }
        while let Some(((_, key_id), line)) = walk.signatures.next_if(|((s, _), _)| *s == size) {
            self.check_signature(size, key_id, &line, body.as_ref());
        }
    }

    /// Signatures stored for sizes below `size` that have no checkpoint.
    fn orphans_below(&mut self, walk: &mut Walk, size: u64) {
        while let Some(((orphan, key_id), _)) = walk.signatures.next_if(|((s, _), _)| *s < size) {
            self.orphan(orphan, key_id);
        }
    }

    fn orphan(&mut self, size: u64, key_id: u32) {
        self.report.signatures_checked += 1;
        let message = format!("a signature by key ID {key_id:08x} is stored, but no checkpoint");
        self.at_checkpoint(ProblemKind::SignatureOrphan, size, message);
    }

    fn check_signature(
        &mut self,
        size: u64,
        key_id: u32,
        bytes: &[u8],
        body: Option<&CheckpointBody>,
    ) {
        use ProblemKind::{SignatureInvalid, SignatureMalformed, SignatureUnknownKey};
        self.report.signatures_checked += 1;
        let Ok(text) = std::str::from_utf8(bytes) else {
            let message = format!("the signature line stored for key ID {key_id:08x} is not UTF-8");
            self.at_checkpoint(SignatureMalformed, size, message);
            return;
        };
        let line = match SignatureLine::parse(text) {
            Ok(line) => line,
            Err(e) => {
                self.at_checkpoint(SignatureMalformed, size, e.to_string());
                return;
            }
        };
        let signer = format!("{}+{:08x}", line.name, line.key_id);
        if line.to_line() != text {
            let message = format!("the signature line by {signer} is not in canonical form");
            self.at_checkpoint(SignatureMalformed, size, message);
        }
        if line.key_id != key_id {
            let message = format!("stored under key ID {key_id:08x}, but the line is by {signer}");
            self.at_checkpoint(SignatureMalformed, size, message);
        }
        let Some((vkey, _)) = self.keys.get(&(line.name.clone(), line.key_id)) else {
            let message = format!(
                "signature by unknown key {signer}: not a voter's in the stored membership \
                 (pass --vkey to trust a former voter's key)"
            );
            self.at_checkpoint(SignatureUnknownKey, size, message);
            return;
        };
        // A body that does not parse is reported already; nothing to verify against.
        let Some(body) = body else {
            return;
        };
        match checkpoint::verify_signature(vkey, body, &line) {
            Ok(()) => self.report.signatures_verified += 1,
            Err(e) => self.at_checkpoint(SignatureInvalid, size, e.to_string()),
        }
    }

    /// After the last leaf: the checkpoint at the tree size, and whatever is
    /// stored beyond the tree.
    fn finish_walk(&mut self, walk: &mut Walk, size: u64) {
        self.checkpoints_upto(walk, size);
        if walk.frontier.is_some() {
            let mut extra = 0u64;
            let mut first = None;
            while let Some((index, _)) = walk.hashes.next_if(|_| true) {
                extra += 1;
                first.get_or_insert(index);
            }
            if let Some(first) = first {
                let message = format!(
                    "{extra} stored hashes beyond the {} a tree of {size} leaves has, the first at index {first}",
                    merkle::stored_hash_count(size)
                );
                self.general(ProblemKind::HashUnexpected, message);
            }
        }
        while let Some((beyond, body)) = walk.checkpoints.next_if(|_| true) {
            self.check_checkpoint(walk, beyond, &body, Roots::BeyondTree(size));
        }
        while let Some(((orphan, key_id), _)) = walk.signatures.next_if(|_| true) {
            self.orphan(orphan, key_id);
        }
        self.report_cursor(&walk.entries);
        self.report_cursor(&walk.hashes);
        self.report_cursor(&walk.checkpoints);
        self.report_cursor(&walk.signatures);
    }

    /// All checkpoints name one origin; the most common is taken as the log's.
    fn check_origins(&mut self, origins: &[(u64, String)]) {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, origin) in origins {
            *counts.entry(origin).or_default() += 1;
        }
        let Some(log_origin) = origins
            .iter()
            .map(|(_, o)| o.as_str())
            .max_by_key(|o| counts[o])
        else {
            return;
        };
        self.report.origin = Some(log_origin.to_string());
        for (size, origin) in origins {
            if origin != log_origin {
                let message =
                    format!("names origin {origin:?}, the other checkpoints {log_origin:?}");
                self.at_checkpoint(ProblemKind::CheckpointOrigin, *size, message);
            }
        }
    }
}

/// What a checkpoint's root can be compared with.
enum Roots {
    /// The roots at its size recomputed from the leaves and from the stored
    /// hashes (`None` if a stored one is missing); `None` if the tree below
    /// it cannot be recomputed.
    Known(Option<(Hash, Option<Hash>)>),
    /// Its size is beyond the tree of this many leaves.
    BeyondTree(u64),
}

/// One index table, the field its rows name, and how a leaf shows it.
type StrIndex = (
    &'static TableDefinition<'static, (&'static str, u64), ()>,
    &'static str,
    fn(&LeafRecord) -> &str,
);

impl Checker {
    /// Every query index and idempotency row names a stored leaf that has
    /// its value, and each table has the right number of rows.
    fn check_indexes(&mut self, txn: &ReadTransaction) {
        let size = self.report.tree_size;
        let Some(entries) = self.open(txn, ENTRIES) else {
            return;
        };
        let string_indexes: [StrIndex; 3] = [
            (&IDX_ACTOR, "actor", |r| &r.event.actor.id),
            (&IDX_ACTION, "action", |r| &r.event.action),
            (&IDX_RESOURCE, "resource", |r| &r.event.resource),
        ];
        for (def, field, value_of) in string_indexes {
            let Some(table) = self.open(txn, raw_keys(def)) else {
                continue;
            };
            let rows = table.range::<&[u8]>(..).map(|rows| {
                rows.map(|row| {
                    row.map(|(key, _)| str_u64_key(key.value()).map(|(v, i)| (v.to_string(), i)))
                })
            });
            let counted = self.check_rows(def.name(), rows, |checker, (value, index)| {
                checker.check_index_row(
                    &entries,
                    def.name(),
                    index,
                    size,
                    &format!("{field} {value:?}"),
                    |r| format!("{field} {:?}", value_of(r)),
                );
            });
            self.check_row_count(def.name(), counted, size, "leaf");
        }
        if let Some(table) = self.open(txn, IDX_OUTCOME) {
            let name = IDX_OUTCOME.name();
            let rows = table
                .range::<(u8, u64)>(..)
                .map(|rows| rows.map(|row| row.map(|(key, _)| Some(key.value()))));
            let counted = self.check_rows(name, rows, |checker, (code, index)| {
                checker.check_index_row(
                    &entries,
                    name,
                    index,
                    size,
                    &format!("outcome code {code}"),
                    |r| format!("outcome code {}", r.event.outcome.code()),
                );
            });
            self.check_row_count(name, counted, size, "leaf");
        }
        if let Some(table) = self.open(txn, raw_keys(&IDEMPOTENCY)) {
            let name = IDEMPOTENCY.name();
            let rows = table.range::<&[u8]>(..).map(|rows| {
                rows.map(|row| {
                    row.map(|(key, index)| {
                        str_str_key(key.value())
                            .map(|(s, k)| ((s.to_string(), k.to_string()), index.value()))
                    })
                })
            });
            let counted = self.check_rows(name, rows, |checker, ((source, key), index)| {
                let claimed = format!("source {source:?} idempotency key {key:?}");
                checker.check_index_row(&entries, name, index, size, &claimed, |r| {
                    let key = r.event.idempotency_key.as_deref().unwrap_or("");
                    format!("source {:?} idempotency key {key:?}", r.event.source)
                });
            });
            if let Some(keyed) = self.keyed_leaves {
                self.check_row_count(name, counted, keyed, "leaf with an idempotency key");
            }
        }
    }

    /// Runs `check` on every row that decodes; returns the rows counted, or
    /// `None` if the table could not be read to the end.
    fn check_rows<T, I>(
        &mut self,
        table: &str,
        rows: Result<I, StorageError>,
        mut check: impl FnMut(&mut Self, T),
    ) -> Option<u64>
    where
        I: Iterator<Item = Result<Option<T>, StorageError>>,
    {
        let fail = |checker: &mut Self, e: StorageError| {
            let message = format!("reading table {table} failed; the rest of it is unchecked: {e}");
            checker.general(ProblemKind::Unreadable, message);
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                fail(self, e);
                return None;
            }
        };
        let mut counted = 0u64;
        for row in rows {
            match row {
                Ok(Some(row)) => {
                    counted += 1;
                    self.report.index_rows_checked += 1;
                    check(self, row);
                }
                Ok(None) => {
                    counted += 1;
                    let message = format!("{table} has a row whose key does not decode");
                    self.general(ProblemKind::IndexRow, message);
                }
                Err(e) => {
                    fail(self, e);
                    return None;
                }
            }
        }
        Some(counted)
    }

    fn check_row_count(&mut self, table: &str, counted: Option<u64>, expected: u64, per: &str) {
        if let Some(rows) = counted.filter(|&rows| rows != expected) {
            let message =
                format!("{table} has {rows} rows for {expected} leaves; it needs one per {per}");
            self.general(ProblemKind::IndexRow, message);
        }
    }

    /// One row claims leaf `index` has `claimed` (as `shown` renders a leaf).
    fn check_index_row(
        &mut self,
        entries: &ReadOnlyTable<u64, &'static [u8]>,
        table: &str,
        index: u64,
        size: u64,
        claimed: &str,
        shown: impl FnOnce(&LeafRecord) -> String,
    ) {
        if index >= size {
            let message =
                format!("a row ({claimed}) names leaf {index}, beyond the tree size {size}");
            self.general(ProblemKind::IndexRow, message);
            return;
        }
        let leaf = match entries.get(index) {
            Ok(Some(leaf)) => leaf.value().to_vec(),
            Ok(None) => {
                let message = format!("a row ({claimed}) names leaf {index}, which is not stored");
                self.at_leaf(ProblemKind::IndexRow, index, message);
                return;
            }
            Err(e) => {
                let message = format!("reading leaf {index} for table {table} failed: {e}");
                self.general(ProblemKind::Unreadable, message);
                return;
            }
        };
        // A leaf that does not decode is reported by the walk already.
        let Ok(record) = LeafRecord::decode(&leaf) else {
            return;
        };
        let actual = shown(&record);
        if actual != claimed {
            let message = format!("{table} says the leaf has {claimed}, but it has {actual}");
            self.at_leaf(ProblemKind::IndexRow, index, message);
        }
    }

    /// redb's page checksum check, on a copy: the check repairs what it can.
    fn redb_check(&mut self, file: &Path) -> RedbCheck {
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
    fn check_recovered_copy(&mut self, file: &Path) -> Result<(), FsckError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::checkpoint::{generate_key, NoteSigner};
    use crate::ledger::event::{Actor, Event, Outcome};
    use crate::ledger::merkle::MemoryHashStore;
    use crate::storage::ledger_store::{LedgerStore, Op};
    use redb::{Database, ReadableTable};

    const ORIGIN: &str = "test.example/fsck";

    fn event(n: u64) -> Event {
        Event {
            time_unix_nanos: 1_700_000_000_000_000_000 + n as i64,
            actor: Actor {
                id: format!("user{}", n % 3),
                ..Actor::default()
            },
            action: "db.read".into(),
            resource: format!("table{}", n % 5),
            outcome: Outcome::Success,
            source: "payments-api".into(),
            details: serde_json::Map::new(),
            idempotency_key: n.is_multiple_of(2).then(|| format!("k{n}")),
        }
    }

    fn signer() -> NoteSigner {
        let (skey, _) = generate_key(ORIGIN).expect("keygen");
        NoteSigner::from_skey(&skey).expect("signer")
    }

    /// A data dir holding `batches` batches of `per_batch` events, each
    /// followed by a checkpoint that `signer` signs; closed cleanly.
    fn ledger(signer: &NoteSigner, batches: u64, per_batch: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LedgerStore::open(&dir.path().join(LEDGER_FILE), ORIGIN).expect("store");
        let mut n = 0;
        for batch in 0..batches {
            let events = (0..per_batch)
                .map(|_| {
                    n += 1;
                    event(n)
                })
                .collect();
            let append = Op::Append {
                events,
                commit_time_unix_nanos: 1_700_000_000_000_000_000 + batch as i64,
            };
            store
                .apply(&[append, Op::Checkpoint], None, None)
                .expect("append");
            let checkpoint = store
                .checkpoint_at(store.tree_size().expect("size"))
                .expect("checkpoint");
            let cosign = Op::Cosign {
                size: checkpoint.body.size,
                line: signer.sign(&checkpoint.body).expect("sign"),
                verifier_key: signer.verifier_key(),
            };
            store.apply(&[cosign], None, None).expect("cosign");
        }
        dir
    }

    fn trusting(signer: &NoteSigner) -> FsckOptions {
        FsckOptions {
            extra_vkeys: vec![signer.verifier_key()],
            redb_check: true,
        }
    }

    /// Overwrites one row the way a bit flip would, but through redb, so
    /// only fsck's own checks can notice.
    fn overwrite<K: Key + 'static, V: Value + 'static>(
        dir: &Path,
        def: TableDefinition<K, V>,
        key: K::SelfType<'_>,
        value: V::SelfType<'_>,
    ) {
        let db = Database::open(dir.join(LEDGER_FILE)).expect("open");
        let txn = db.begin_write().expect("write");
        {
            let mut table = txn.open_table(def).expect("table");
            assert!(table.insert(key, value).expect("insert").is_some());
        }
        txn.commit().expect("commit");
    }

    fn kinds(report: &FsckReport) -> Vec<(ProblemKind, Option<u64>, Option<u64>)> {
        report
            .problems
            .iter()
            .map(|p| (p.kind, p.leaf_index, p.checkpoint_size))
            .collect()
    }

    #[test]
    fn a_clean_ledger_passes_counts_everything_and_is_left_unchanged() {
        let signer = signer();
        let dir = ledger(&signer, 3, 7);
        let file = dir.path().join(LEDGER_FILE);
        let before = std::fs::read(&file).expect("read");
        let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
        assert!(report.is_ok(), "{:#?}", report.problems);
        assert_eq!(report.tree_size, 21);
        assert_eq!(report.entries_checked, 21);
        assert_eq!(report.hashes_checked, merkle::stored_hash_count(21));
        assert_eq!(report.checkpoints_checked, 3);
        assert_eq!(report.signatures_checked, 3);
        assert_eq!(report.signatures_verified, 3);
        // Four query indexes per leaf, plus the ten leaves with a key.
        assert_eq!(report.index_rows_checked, 4 * 21 + 10);
        assert_eq!(report.origin.as_deref(), Some(ORIGIN));
        assert_eq!(report.redb_check, RedbCheck::Passed);
        assert!(!report.recovered_copy);
        assert_eq!(std::fs::read(&file).expect("read"), before, "fsck wrote");
    }

    #[test]
    fn a_signature_by_a_key_nobody_vouches_for_is_a_problem() {
        let signer = signer();
        let dir = ledger(&signer, 2, 3);
        let report = check(dir.path(), &FsckOptions::default()).expect("fsck runs");
        assert_eq!(
            kinds(&report),
            [
                (ProblemKind::SignatureUnknownKey, None, Some(3)),
                (ProblemKind::SignatureUnknownKey, None, Some(6)),
            ]
        );
        assert_eq!(report.first_bad_leaf, None);
    }

    #[test]
    fn a_changed_leaf_hash_names_its_leaf_once() {
        let signer = signer();
        let dir = ledger(&signer, 2, 8);
        overwrite(
            dir.path(),
            HASHES,
            merkle::stored_hash_index(0, 5),
            &[7u8; 32],
        );
        let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
        assert_eq!(
            kinds(&report),
            [(ProblemKind::LeafHashMismatch, Some(5), None)]
        );
        assert_eq!(report.first_bad_leaf, Some(5));
    }

    #[test]
    fn a_changed_interior_hash_names_the_leaf_that_completed_it() {
        let signer = signer();
        let dir = ledger(&signer, 2, 8);
        // Level 2, third node: leaves 8..=11, completed by leaf 11.
        overwrite(
            dir.path(),
            HASHES,
            merkle::stored_hash_index(2, 2),
            &[7u8; 32],
        );
        let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
        assert_eq!(
            kinds(&report),
            [(ProblemKind::HashMismatch, Some(11), None)]
        );
    }

    #[test]
    fn a_changed_entry_is_the_first_bad_leaf_and_its_index_rows_disagree() {
        let signer = signer();
        let dir = ledger(&signer, 2, 8);
        let mut record = LeafRecord::decode(
            &LedgerStore::open(&dir.path().join(LEDGER_FILE), ORIGIN)
                .expect("store")
                .entries(9, 10)
                .expect("leaf")
                .0[0]
                .1,
        )
        .expect("decodes");
        record.event.actor.id = "mallory".into();
        overwrite(dir.path(), ENTRIES, 9, record.encode().as_slice());
        let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
        assert_eq!(
            kinds(&report),
            [
                (ProblemKind::LeafHashMismatch, Some(9), None),
                (ProblemKind::IndexRow, Some(9), None),
            ]
        );
        assert!(report.problems[0]
            .message
            .starts_with("stored entry hashes to "));
    }

    #[test]
    fn a_changed_checkpoint_or_signature_names_its_size() {
        let signer = signer();
        let dir = ledger(&signer, 2, 4);
        let body = CheckpointBody {
            origin: ORIGIN.into(),
            size: 4,
            root: [1; 32],
        };
        overwrite(dir.path(), CHECKPOINTS, 4, body.to_text().as_bytes());
        let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
        assert_eq!(
            kinds(&report),
            [
                (ProblemKind::CheckpointRoot, None, Some(4)),
                (ProblemKind::SignatureInvalid, None, Some(4)),
            ]
        );

        let dir = ledger(&signer, 2, 4);
        let key = (8, signer.key_id());
        overwrite(dir.path(), SIGNATURES, key, "not a signature line\n");
        let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
        assert_eq!(
            kinds(&report),
            [(ProblemKind::SignatureMalformed, None, Some(8))]
        );
    }

    #[test]
    fn a_running_store_is_locked_and_other_dirs_are_refused() {
        let signer = signer();
        let dir = ledger(&signer, 1, 1);
        let held = LedgerStore::open(&dir.path().join(LEDGER_FILE), ORIGIN).expect("store");
        let err = check(dir.path(), &FsckOptions::default()).expect_err("locked");
        assert!(matches!(err, FsckError::Locked { .. }), "{err}");
        assert!(
            err.to_string().contains("is the node still running?"),
            "{err}"
        );
        drop(held);

        let missing = dir.path().join("nope");
        let err = check(&missing, &FsckOptions::default()).expect_err("missing");
        assert!(matches!(err, FsckError::NoDataDir { .. }), "{err}");
        let empty = tempfile::tempdir().expect("tempdir");
        let err = check(empty.path(), &FsckOptions::default()).expect_err("empty");
        assert!(matches!(err, FsckError::NotDataDir { .. }), "{err}");
        let bad_key = FsckOptions {
            extra_vkeys: vec!["not a key".into()],
            redb_check: false,
        };
        let err = check(dir.path(), &bad_key).expect_err("bad key");
        assert!(matches!(err, FsckError::BadVkey(_)), "{err}");
    }

    #[test]
    fn a_file_that_is_not_redb_is_reported_without_panicking() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(LEDGER_FILE), vec![0x5a; 64 * 1024]).expect("write");
        match check(dir.path(), &FsckOptions::default()) {
            Ok(report) => assert!(!report.is_ok(), "{report:#?}"),
            Err(e) => assert!(!matches!(e, FsckError::Locked { .. }), "{e}"),
        }
    }

    #[test]
    fn the_frontier_agrees_with_the_reference_tree() {
        let mut reference = MemoryHashStore::new();
        let mut frontier = Frontier::default();
        for n in 0..100u64 {
            assert_eq!(
                frontier.root(n, false),
                reference.root().ok(),
                "root at size {n}"
            );
            let leaf = merkle::leaf_hash(format!("leaf {n}").as_bytes());
            let expected = merkle::hashes_to_store(n, &leaf, &reference).expect("reference");
            reference.append_leaf_hash(&leaf).expect("append");
            let completed = frontier.append(n, &leaf, |index| {
                reference.read_hashes(&[index]).ok().map(|h| h[0])
            });
            let got: Vec<(u64, Hash)> = completed
                .iter()
                .map(|c| (c.node.index, c.node.computed))
                .collect();
            assert_eq!(got, expected, "hashes of leaf {n}");
            assert!(completed.iter().all(|c| !c.child_differs));
            assert!(completed
                .iter()
                .all(|c| c.level == 0 || c.from_stored_children == Some(c.node.computed)));
            assert_eq!(frontier.nodes.len(), (n + 1).count_ones() as usize);
        }
    }

    #[test]
    fn raw_tuple_keys_split_as_redb_writes_them() {
        const PAIRS: TableDefinition<(&str, u64), ()> = TableDefinition::new("pairs");
        const STRINGS: TableDefinition<(&str, &str), u64> = TableDefinition::new("strings");
        let dir = tempfile::tempdir().expect("tempdir");
        let long = "x".repeat(300);
        let db = Database::create(dir.path().join("t.redb")).expect("db");
        let txn = db.begin_write().expect("write");
        {
            let mut pairs = txn.open_table(PAIRS).expect("pairs");
            let mut strings = txn.open_table(STRINGS).expect("strings");
            for (s, i) in [("", 0u64), ("alice", 5), (long.as_str(), u64::MAX)] {
                pairs.insert((s, i), ()).expect("insert");
                strings.insert((s, "key"), i).expect("insert");
            }
        }
        txn.commit().expect("commit");
        let txn = db.begin_read().expect("read");
        let pairs = txn.open_table(raw_keys(&PAIRS)).expect("raw pairs");
        let got: Vec<(String, u64)> = pairs
            .iter()
            .expect("iter")
            .map(|row| {
                let (k, _) = row.expect("row");
                let (s, i) = str_u64_key(k.value()).expect("splits");
                (s.to_string(), i)
            })
            .collect();
        assert_eq!(
            got,
            [
                (String::new(), 0),
                ("alice".to_string(), 5),
                (long.clone(), u64::MAX)
            ]
        );
        let strings = txn.open_table(raw_keys(&STRINGS)).expect("raw strings");
        for row in strings.iter().expect("iter") {
            let (k, _) = row.expect("row");
            assert_eq!(str_str_key(k.value()).expect("splits").1, "key");
        }
        assert_eq!(split_pair(&[]), None);
        assert_eq!(split_pair(&[5, b'a']), None);
        assert_eq!(split_pair(&[254, 1]), None);
        assert_eq!(str_u64_key(&[1, b'a', 0]), None);
    }
}
