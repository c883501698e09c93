//! The Raft state machine: applies committed commands to the
//! [`LedgerStore`], builds and installs snapshots.
//!
//! # Crash semantics
//! Every `apply` call is one store transaction that also records the last
//! applied log id and membership, so after a restart the applied state and the
//! ledger agree, and openraft re-applies anything after it from the Raft log
//! (whose committed id is saved). Building a snapshot fsyncs the store,
//! before openraft may purge the log behind it. An apply fsyncs only now
//! and then (every `LEDGER_DURABLE_INTERVAL_MS`), and only within what this
//! node's own Raft log holds durably ([`DurableEnd`]): durably ahead of its
//! log, a restarted node would have openraft purge the log up to the
//! applied index, past its last snapshot.
//!
//! # Validation
//! Every command is checked here and in the store as it is applied, on
//! every replica, whatever path it took into the log (the API, `Raft/Forward`,
//! a faulty leader): batches meet the API's rules and limits, cosignatures
//! must come from voters or replicated witness keys. A refused command
//! changes nothing and answers `OpResult::Refused` with the reason. The
//! checks read only the command, the membership and the store, never a
//! clock or local configuration, so every replica decides alike.
//!
//! # Snapshots
//! A snapshot is a file under `snapshots/`: a manifest written by
//! [`LedgerStore::write_manifest`], which names the leaves the store holds
//! rather than copying them (so a build costs the non-leaf state, not the
//! log), expanded with every leaf inline only when a follower is sent it
//! ([`SnapshotFile::into_reader`]). A snapshot received whole is replaced,
//! once installed, by a manifest of the state it installed. `current.json`
//! names the newest one and its Raft metadata. Installing one checks its metadata against openraft's
//! and its voter signatures against its own membership before anything is
//! written. Transfers and builds in progress are `*.tmp` files.
//!
//! A snapshot becomes current in this order, each step durable before the
//! next: its file is fsynced (by the export, or by the transfer receiver),
//! renamed to `<term>-<index>-<nanos>.snap` and the directory fsynced;
//! `current.json` is replaced with [`crate::storage::write_atomic`]; only
//! then are the older `.snap` files removed. A crash at any point leaves
//! `current.json` naming a complete file, the old one or the new, and
//! perhaps files it does not name: [`StateMachine::open`] removes those,
//! with every `*.tmp` a transfer, a build or `current.json`'s own
//! replacement left.
//!
//! `current.json` only moves forward. openraft builds snapshots in a task
//! of its own, beside installs, so a build that read the store before a
//! newer snapshot was installed can finish after it; it then finds the
//! newer one current, removes its own file and returns that one.
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::{Command, DurableEnd, TypeConfig};
use crate::ledger::checkpoint::SignatureLine;
use crate::limits::{APPLY_INLINE_LEAVES_MAX, INDEX_DEFER_LEAVES};
use crate::storage::applied_feed::FeedSender;
use crate::storage::ledger_store::{LedgerStore, Op, OpResult, SnapshotReader, StateMeta};
use crate::storage::Applied;
use crate::storage::{sync_dir, write_atomic, write_atomic_temp};

type LogId = openraft::alias::LogIdOf<TypeConfig>;
type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>;

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// A snapshot's file: a transfer received whole, or a manifest this node
/// built, which names the leaves its store holds.
pub struct SnapshotFile {
    pub path: PathBuf,
    pub file: std::fs::File,
    /// The store whose leaves a manifest names; `None` for a transfer,
    /// which is read as it is (a manifest record in one is refused).
    pub leaves_from: Option<Arc<LedgerStore>>,
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFile")
            .field("path", &self.path)
            .field("received", &self.leaves_from.is_none())
            .finish()
    }
}

impl SnapshotFile {
    /// A transfer received from a peer.
    pub fn received(path: PathBuf, file: std::fs::File) -> Self {
        Self {
            path,
            file,
            leaves_from: None,
        }
    }

    /// The whole snapshot as a record stream, leaves inline: what a
    /// follower is sent and what an install reads.
    pub fn into_reader(self) -> Box<dyn io::Read + Send> {
        match self.leaves_from {
            Some(store) => Box::new(SnapshotReader::expanding(store, self.file)),
            None => Box::new(io::BufReader::new(self.file)),
        }
    }
}

/// The contents of `current.json`.
#[derive(Serialize, Deserialize)]
struct CurrentSnapshot {
    meta: SnapshotMeta,
    /// The snapshot's file name inside the snapshot directory.
    file: String,
}

/// The file naming the current snapshot, inside the snapshot directory.
const CURRENT_FILE: &str = "current.json";
/// How every snapshot file's name ends; files so named that
/// [`CURRENT_FILE`] does not name are removed.
const SNAPSHOT_SUFFIX: &str = ".snap";

/// The state machine of one node. Cloning shares the same store.
#[derive(Clone)]
pub struct StateMachine {
    store: Arc<LedgerStore>,
    snapshots: SnapshotDir,
    applied: watch::Sender<Applied>,
    /// Sizes of checkpoints cut by applied commands, for the local signer.
    new_checkpoints: mpsc::UnboundedSender<u64>,
    /// Size of the checkpoint that last got a voter signature applied, for
    /// the witness submitter: a checkpoint may just have reached its quorum.
    voter_signed: watch::Sender<u64>,
    /// The analysis node's hand-off of each apply's new leaves to its
    /// analyst; `None` on other nodes, which then do nothing extra per entry.
    new_leaves: Option<FeedSender>,
    /// The last applied membership, as the store holds it: kept here
    /// because every apply needs it (to check cosignatures), and reading
    /// and decoding it from the store each time cost 1.4% of the CPU under
    /// load.
    membership: StoredMembership,
    /// Leaves the store has not indexed yet, as the last apply left them;
    /// `None` until an apply says (after open or a snapshot install). With
    /// it an apply knows beforehand whether it completes an index step.
    unindexed: Option<u64>,
    /// How far this node's Raft log is durable: an apply is made durable
    /// only within it. `None` (tests without a log): never.
    durable_log: Option<DurableEnd>,
}

impl StateMachine {
    /// Opens the state machine over `store`; snapshots live in `snapshot_dir`.
    /// Returns the receiver of newly cut checkpoint sizes.
    pub fn open(
        store: Arc<LedgerStore>,
        snapshot_dir: &Path,
    ) -> io::Result<(Self, mpsc::UnboundedReceiver<u64>)> {
        let snapshots = SnapshotDir::open(snapshot_dir, store.clone())?;
        let (tx, rx) = mpsc::unbounded_channel();
        let meta = store.meta().map_err(io_err)?;
        let applied: Option<LogId> = decode_opt(&meta.applied)?;
        let sm = Self {
            store,
            snapshots,
            applied: watch::Sender::new(Applied {
                tree_size: meta.tree_size,
                log_index: applied.map_or(0, |id| id.index),
            }),
            new_checkpoints: tx,
            voter_signed: watch::Sender::new(0),
            new_leaves: None,
            membership: decode_opt(&meta.membership)?.unwrap_or_default(),
            unindexed: None,
            durable_log: None,
        };
        Ok((sm, rx))
    }

    /// Lets applies be made durable now and then, within how far `log`
    /// (this node's Raft log) is durable.
    pub fn durable_within(&mut self, log: DurableEnd) {
        self.durable_log = Some(log);
    }

    /// Hands the leaves each later apply stores to `feed`, never waiting
    /// on it. Set before Raft starts, so nothing applied is missed beyond
    /// what the store already holds.
    pub fn feed_new_leaves(&mut self, feed: FeedSender) {
        self.new_leaves = Some(feed);
    }

    pub fn store(&self) -> &Arc<LedgerStore> {
        &self.store
    }

    /// Watches the tree size and applied index.
    pub fn subscribe(&self) -> watch::Receiver<Applied> {
        self.applied.subscribe()
    }

    /// Watches the size of the checkpoint that last got a voter signature.
    pub fn subscribe_voter_signed(&self) -> watch::Receiver<u64> {
        self.voter_signed.subscribe()
    }

    fn publish(&self, tree_size: u64, log_index: u64) {
        self.applied.send_replace(Applied {
            tree_size,
            log_index,
        });
    }
}

/// The snapshot directory: its snapshot files and [`CURRENT_FILE`], which
/// names the current one. Clones share the lock.
#[derive(Clone)]
struct SnapshotDir {
    path: PathBuf,
    /// The store whose leaves this node's manifests name.
    store: Arc<LedgerStore>,
    /// Held while [`CURRENT_FILE`] is read or replaced and while the files
    /// it names are opened, renamed or removed: openraft runs builds in a
    /// task of its own, beside installs and reads, and each must see the
    /// others' updates whole (a build finishing late must not name an
    /// older snapshot than one just installed, nor a read open a file just
    /// removed). A std Mutex: it is taken only inside blocking tasks, never
    /// held across an `.await`.
    update: Arc<Mutex<()>>,
}

impl SnapshotDir {
    /// Opens `path`, creating it, and removes what an earlier run left
    /// unfinished: transfers and builds, a half-written [`CURRENT_FILE`],
    /// and snapshot files it does not name (a crash between a snapshot's
    /// rename and the pointer's, or before old files were removed).
    fn open(path: &Path, store: Arc<LedgerStore>) -> io::Result<Self> {
        std::fs::create_dir_all(path)?;
        remove_leftover_transfers(path)?;
        let dir = Self {
            path: path.to_path_buf(),
            store,
            update: Arc::default(),
        };
        let named = dir.named_file_at_start()?;
        let current_tmp = write_atomic_temp(&dir.current_path())?;
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let unnamed_snapshot =
                name.ends_with(SNAPSHOT_SUFFIX) && named.as_deref() != Some(name.as_ref());
            let leftover = unnamed_snapshot || entry.path() == current_tmp;
            if leftover && entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(dir)
    }

    /// The file [`CURRENT_FILE`] names, if there is one and it exists.
    ///
    /// One naming a missing file (removed by hand, or lost with a disk)
    /// does not stop the node: the store, not the snapshot, holds the
    /// state, and openraft, finding no snapshot at start-up after it has
    /// purged logs, builds one from the store before it serves. The pointer
    /// is removed rather than kept: every later build older than it would
    /// be refused in favour of a file that cannot be opened, failing the
    /// build. A pointer that does not parse is an error: it is only ever
    /// replaced whole, so it is corrupt, not interrupted.
    fn named_file_at_start(&self) -> io::Result<Option<String>> {
        let Some(current) = self.read_current()? else {
            return Ok(None);
        };
        if self.path.join(&current.file).is_file() {
            return Ok(Some(current.file));
        }
        tracing::warn!(
            dir = %self.path.display(),
            file = %current.file,
            "{CURRENT_FILE} names a snapshot file that is missing; \
             starting without a snapshot (openraft builds a new one when it needs one)"
        );
        std::fs::remove_file(self.current_path())?;
        sync_dir(&self.path)?;
        Ok(None)
    }

    fn current_path(&self) -> PathBuf {
        self.path.join(CURRENT_FILE)
    }

    /// Reads [`CURRENT_FILE`]; the caller holds the lock, or is `open`.
    fn read_current(&self) -> io::Result<Option<CurrentSnapshot>> {
        let path = self.current_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is corrupt: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // Every update leaves the directory valid at each step (it has to
        // survive a crash there), so one that panicked left nothing for the
        // next holder to repair.
        self.update.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current snapshot, opened.
    fn current(&self) -> io::Result<Option<Snapshot>> {
        let _update = self.lock();
        self.read_current()?
            .map(|current| self.open_snapshot(current))
            .transpose()
    }

    /// Makes `staged`, a snapshot file in this directory already fsynced
    /// and holding the state `meta` describes, the current snapshot, unless
    /// the current one is newer: then `staged` is removed and the newer one
    /// kept. Returns the snapshot current afterwards, opened.
    ///
    /// One at the same log id replaces the current one: both hold the same
    /// state. The current file itself (openraft's start-up restore
    /// installs it) stays as it is.
    fn adopt(&self, staged: &Path, meta: &SnapshotMeta) -> io::Result<Snapshot> {
        let _update = self.lock();
        if let Some(current) = self.read_current()? {
            if self.path.join(&current.file) == staged {
                return self.open_snapshot(current);
            }
            if current.meta.last_log_id > meta.last_log_id {
                // Best effort: a file left here is removed at start-up.
                let _ = std::fs::remove_file(staged);
                return self.open_snapshot(current);
            }
        }
        let name = snapshot_name(&meta.last_log_id);
        std::fs::rename(staged, self.path.join(&name))?;
        // The new name must be durable before the pointer names it, or a
        // power loss could leave the pointer naming a file that is not there.
        sync_dir(&self.path)?;
        let current = CurrentSnapshot {
            meta: meta.clone(),
            file: name,
        };
        write_atomic(
            &self.current_path(),
            &serde_json::to_vec(&current).map_err(io_err)?,
        )?;
        // write_atomic fsyncs the directory after its rename, so the pointer
        // names the new file for good before the old ones go. Removals are
        // not fsynced: one undone by a crash is redone by `open`.
        for entry in std::fs::read_dir(&self.path)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(SNAPSHOT_SUFFIX) && name != current.file {
                let _ = std::fs::remove_file(self.path.join(name.as_ref()));
            }
        }
        self.open_snapshot(current)
    }

    /// Writes a manifest of the store just after it installed the
    /// snapshot `meta` describes, staged for [`Self::adopt`].
    fn manifest_of_installed(&self, meta: &SnapshotMeta) -> io::Result<PathBuf> {
        let staged = self
            .path
            .join(format!("installing-{}.tmp", std::process::id()));
        let state = self.store.write_manifest(&staged).map_err(io_err)?;
        let applied: Option<LogId> = decode_opt(&state.applied)?;
        if applied != meta.last_log_id {
            let _ = std::fs::remove_file(&staged);
            return Err(io_err(format!(
                "the store moved to {applied:?} before its manifest was written"
            )));
        }
        Ok(staged)
    }

    fn open_snapshot(&self, current: CurrentSnapshot) -> io::Result<Snapshot> {
        let path = self.path.join(&current.file);
        let file = std::fs::File::open(&path)?;
        Ok(Snapshot {
            meta: current.meta,
            snapshot: SnapshotFile {
                path,
                file,
                leaves_from: Some(self.store.clone()),
            },
        })
    }
}

/// The verifier keys of the voters in a membership as [`StateMachine`] records
/// it in the ledger metadata, as (node id, key); voters without a key are left
/// out. For `ironlog fsck`, which reads a stopped node's files and has no Raft
/// of its own, so the encoding stays this module's business.
pub fn voter_verifier_keys(membership: &[u8]) -> io::Result<Vec<(super::NodeId, String)>> {
    let membership: StoredMembership = serde_json::from_slice(membership).map_err(io_err)?;
    Ok(membership
        .voter_ids()
        .filter_map(|id| {
            let key = &membership.get_node(&id)?.verifier_key;
            (!key.is_empty()).then(|| (id, key.clone()))
        })
        .collect())
}

/// Removes snapshot transfers (`incoming-*.tmp`), builds
/// (`building-*.tmp`) and manifests of installs (`installing-*.tmp`) a
/// previous run left behind: at start-up none is in
/// progress, so each was declined or interrupted and would otherwise stay
/// on disk for good.
fn remove_leftover_transfers(snapshot_dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(snapshot_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let leftover = name.ends_with(".tmp")
            && (name.starts_with("incoming-")
                || name.starts_with("building-")
                || name.starts_with("installing-"));
        if leftover && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Runs an apply `f`, which blocks on redb, on this thread: every apply
/// is on the path of the appends it answers, so it never waits for another
/// thread. A short one (`short`) runs inline, as a poll of the worker that
/// would take a hundred or so microseconds anyway: handing the worker's
/// other tasks to another thread first (`block_in_place`) woke a thread of
/// the blocking pool on every apply, and inline applies took 10% less CPU
/// per event and gave 6-17% more events/s at 16 and 64 clients. A long
/// one does hand them over, so nothing else on this worker waits behind
/// it. Plainly inline on a current-thread runtime (tests), which has no
/// other worker.
fn blocking<T>(short: bool, f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) if !short => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn decode_opt<T: serde::de::DeserializeOwned>(blob: &Option<Vec<u8>>) -> io::Result<Option<T>> {
    match blob {
        None => Ok(None),
        Some(b) => serde_json::from_slice(b).map(Some).map_err(io_err),
    }
}

fn snapshot_name(last: &Option<LogId>) -> String {
    let (term, index) = last
        .as_ref()
        .map_or((0, 0), |id| (id.leader_id.term, id.index));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{term:020}-{index:020}-{nanos}{SNAPSHOT_SUFFIX}")
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let meta = self.store.meta().map_err(io_err)?;
        Ok((
            decode_opt(&meta.applied)?,
            decode_opt(&meta.membership)?.unwrap_or_default(),
        ))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        // A membership entry in this batch applies to the commands after it.
        let mut membership: Option<StoredMembership> = None;
        let mut ops = Vec::new();
        let mut responders = Vec::new();
        let mut last: Option<LogId> = None;
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            last = Some(entry.log_id);
            let op = match entry.payload {
                EntryPayload::Blank => Op::Nothing,
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), m));
                    Op::Nothing
                }
                EntryPayload::Normal(cmd) => command_op(
                    cmd.into_command(),
                    membership.as_ref().unwrap_or(&self.membership),
                ),
            };
            ops.push(op);
            responders.push(responder);
        }
        let Some(last) = last else {
            return Ok(());
        };
        let applied = serde_json::to_vec(&Some(last)).map_err(io_err)?;
        let membership_bytes = match &membership {
            Some(m) => Some(serde_json::to_vec(m).map_err(io_err)?),
            None => None,
        };
        let voter_signed = ops
            .iter()
            .filter_map(|op| match op {
                Op::Cosign { size, .. } => Some(*size),
                _ => None,
            })
            .max();
        // Durable now and then (see `LedgerStore::durable_due`), and only
        // if this node's own log holds the entry durably: openraft applies
        // what this node has submitted to its log, not only what it has
        // flushed.
        let durable = self.store.durable_due()
            && self
                .durable_log
                .as_ref()
                .is_some_and(|log| log.covers(last.index));
        // Short: few leaves, no index step (which decodes up to
        // INDEX_DEFER_LEAVES leaves) due with them, and no fsync.
        let leaves: u64 = ops.iter().map(Op::leaves_max).sum();
        let short = leaves <= APPLY_INLINE_LEAVES_MAX
            && self
                .unindexed
                .is_some_and(|n| n + leaves < INDEX_DEFER_LEAVES)
            && !durable;
        let outcome = blocking(short, || {
            self.store
                .apply_sized(&ops, Some(applied), membership_bytes, durable)
                .map_err(io_err)
        })?;
        self.unindexed = Some(outcome.unindexed);
        let (results, tree_size) = (outcome.results, outcome.tree_size);
        if let Some(m) = membership {
            self.membership = m;
        }
        // Before the new size is published: a reader that sees the size
        // finds in the feed every leaf below it that was not dropped.
        if let Some(feed) = &self.new_leaves {
            feed.offer(ops, &results);
        }
        self.publish(tree_size, last.index);
        if let Some(size) = voter_signed {
            self.voter_signed.send_replace(size);
        }
        for (result, responder) in results.into_iter().zip(responders) {
            if let OpResult::Checkpointed { size: Some(size) } = result {
                // The signer may have stopped during shutdown.
                let _ = self.new_checkpoints.send(size);
            }
            if let Some(r) = responder {
                r.send(result);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        let store = self.store.clone();
        let snapshots = self.snapshots.clone();
        let expected = meta.clone();
        let (state, current) = tokio::task::spawn_blocking(move || {
            let path = snapshot.path.clone();
            let received = snapshot.leaves_from.is_none();
            let state = store
                .import_snapshot_from(snapshot.into_reader(), |state| {
                    snapshot_voter_keys(state, &expected)
                })
                .map_err(io_err)?;
            if !received {
                // This node's own manifest, installed at start-up: it is
                // already current.
                return Ok((state, snapshots.adopt(&path, &expected)?.meta));
            }
            // The transfer holds every leaf, which the store now holds too:
            // a manifest of the state just installed takes its place, so a
            // restored node keeps no second copy of the log.
            let current = match snapshots.manifest_of_installed(&expected) {
                Ok(manifest) => {
                    let _ = std::fs::remove_file(&path);
                    snapshots.adopt(&manifest, &expected)?
                }
                Err(e) => {
                    tracing::warn!(error = %e, "keeping the snapshot as received: no manifest");
                    // The transfer receiver fsynced the file; this renames
                    // it into place and records it.
                    snapshots.adopt(&path, &expected)?
                }
            };
            Ok::<_, io::Error>((state, current.meta))
        })
        .await
        .map_err(io_err)??;
        if current.last_log_id != meta.last_log_id {
            tracing::warn!(
                installed = ?meta.last_log_id,
                kept = ?current.last_log_id,
                "installed a snapshot older than the current one; the newer stays current"
            );
        }
        let applied: Option<LogId> = decode_opt(&state.applied)?;
        self.membership = decode_opt(&state.membership)?.unwrap_or_default();
        // The install indexed what it installed; the next apply says.
        self.unindexed = None;
        self.publish(state.tree_size, applied.map_or(0, |id| id.index));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let snapshots = self.snapshots.clone();
        let current = tokio::task::spawn_blocking(move || snapshots.current())
            .await
            .map_err(io_err)??;
        Ok(current)
    }
}

/// Checks a snapshot's own metadata against what openraft says it is, before
/// the store writes anything, and returns the verifier keys of the voters of
/// its membership, which its voter signatures must verify with.
fn snapshot_voter_keys(state: &StateMeta, expected: &SnapshotMeta) -> Result<Vec<String>, String> {
    let applied: Option<LogId> = decode_opt(&state.applied).map_err(|e| e.to_string())?;
    if applied != expected.last_log_id {
        return Err(format!(
            "snapshot holds state applied to {applied:?}, but its metadata says {:?}",
            expected.last_log_id
        ));
    }
    let membership: StoredMembership = decode_opt(&state.membership)
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    if membership != expected.last_membership {
        return Err(format!(
            "snapshot holds membership {membership:?}, but its metadata says {:?}",
            expected.last_membership
        ));
    }
    let Some(blob) = &state.membership else {
        return Ok(Vec::new());
    };
    let keys = voter_verifier_keys(blob).map_err(|e| e.to_string())?;
    Ok(keys.into_iter().map(|(_, key)| key).collect())
}

/// Maps a command to its store operation; checks that need the membership
/// (who may cosign, with which key) happen here, identically on every
/// replica. What the store checks itself (batches, signatures over stored
/// checkpoints, the witness set) it checks on every path, tests included.
fn command_op(cmd: Command, membership: &StoredMembership) -> Op {
    match cmd {
        Command::Append {
            events,
            commit_time_unix_nanos,
        } => Op::Append {
            events,
            commit_time_unix_nanos,
        },
        Command::AppendGroup {
            batches,
            commit_time_unix_nanos,
        } => Op::AppendGroup {
            batches,
            commit_time_unix_nanos,
        },
        Command::Checkpoint => Op::Checkpoint,
        Command::Cosign {
            node_id,
            size,
            line,
        } => {
            if !membership.voter_ids().any(|id| id == node_id) {
                return refuse(format!("node {node_id} is not a voter"));
            }
            let Some(verifier_key) = membership
                .get_node(&node_id)
                .map(|n| n.verifier_key.clone())
                .filter(|k| !k.is_empty())
            else {
                return refuse(format!("voter {node_id} has no verifier key"));
            };
            match SignatureLine::parse(&line) {
                Ok(line) => Op::Cosign {
                    size,
                    line,
                    verifier_key,
                },
                Err(_) => refuse(format!("voter {node_id}'s signature line is malformed")),
            }
        }
        // The store checks the key is a replicated witness key and
        // re-verifies the line against its checkpoint.
        Command::WitnessCosign {
            size,
            verifier_key,
            line,
        } => match SignatureLine::parse(&line) {
            Ok(line) => Op::WitnessCosign {
                size,
                line,
                verifier_key,
            },
            Err(_) => refuse(format!(
                "witness cosignature line at size {size} is malformed"
            )),
        },
        Command::SetWitnesses { verifier_keys } => Op::SetWitnesses { verifier_keys },
    }
}

fn refuse(reason: String) -> Op {
    Op::Refuse { reason }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;

    /// Builds a snapshot of the store as it is now, or returns the current
    /// one if a newer snapshot was installed while this one was built.
    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let store = self.store.clone();
        let snapshots = self.snapshots.clone();
        tokio::task::spawn_blocking(move || {
            // openraft runs one build at a time, so the name is free.
            let staged = snapshots
                .path
                .join(format!("building-{}.tmp", std::process::id()));
            let started = std::time::Instant::now();
            let state = match store.write_manifest(&staged) {
                Ok(state) => {
                    // The manifest's durable flush, most of this time, holds
                    // every apply behind it: a stall appends would show.
                    tracing::info!(
                        tree_size = state.tree_size,
                        ms = started.elapsed().as_millis() as u64,
                        "snapshot manifest written, the store flushed"
                    );
                    state
                }
                Err(e) => {
                    // Best effort: a file left here is removed at start-up.
                    let _ = std::fs::remove_file(&staged);
                    return Err(io_err(e));
                }
            };
            // The manifest is fsynced, and so is the store it names.
            let meta = SnapshotMeta {
                last_log_id: decode_opt(&state.applied)?,
                last_membership: decode_opt(&state.membership)?.unwrap_or_default(),
            };
            snapshots.adopt(&staged, &meta)
        })
        .await
        .map_err(io_err)?
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ledger::checkpoint::{generate_key, CheckpointBody, NoteSigner};
    use crate::ledger::event::{Actor, Event, Outcome};
    use crate::raft::PeerInfo;

    const ORIGIN: &str = "ironlog.test/log";

    /// Node 1 and 2 voters with keys, node 3 a voter without one.
    fn membership() -> (StoredMembership, NoteSigner) {
        let (skey, vkey) = generate_key(ORIGIN).unwrap();
        let (_, vkey2) = generate_key(ORIGIN).unwrap();
        let peer = |key: &str| PeerInfo {
            addr: "127.0.0.1:1".into(),
            verifier_key: key.into(),
            ..PeerInfo::default()
        };
        let nodes = BTreeMap::from([(1, peer(&vkey)), (2, peer(&vkey2)), (3, peer(""))]);
        let stored = StoredMembership::new(None, openraft::Membership::from(nodes));
        (stored, NoteSigner::from_skey(&skey).unwrap())
    }

    fn log_id(index: u64) -> LogId {
        use openraft::vote::RaftLeaderIdExt;
        let leader = openraft::alias::LeaderIdOf::<TypeConfig>::new_committed(3, 1);
        openraft::LogId::new(leader, index)
    }

    fn line(signer: &NoteSigner) -> String {
        let body = CheckpointBody {
            origin: ORIGIN.into(),
            size: 1,
            root: [0; 32],
        };
        signer.sign(&body).unwrap().to_line()
    }

    fn refusal(op: Op) -> String {
        match op {
            Op::Refuse { reason } => reason,
            other => panic!("{other:?} was not refused"),
        }
    }

    #[test]
    fn cosignatures_from_non_voters_or_keyless_voters_are_refused_with_a_reason() {
        let (m, signer) = membership();
        let cosign = |node_id, line: String| Command::Cosign {
            node_id,
            size: 1,
            line,
        };
        assert!(matches!(
            command_op(cosign(1, line(&signer)), &m),
            Op::Cosign { .. }
        ));
        assert!(refusal(command_op(cosign(9, line(&signer)), &m)).contains("node 9 is not a voter"));
        assert!(refusal(command_op(cosign(3, line(&signer)), &m)).contains("no verifier key"));
        assert!(refusal(command_op(cosign(1, "junk".into()), &m)).contains("malformed"));
        let witness = Command::WitnessCosign {
            size: 1,
            verifier_key: String::new(),
            line: "junk".into(),
        };
        assert!(refusal(command_op(witness, &m)).contains("malformed"));
    }

    #[test]
    fn append_and_set_witnesses_reach_the_store_which_validates_them() {
        let (m, _) = membership();
        let keys = vec!["k".to_string()];
        assert!(matches!(
            command_op(Command::SetWitnesses { verifier_keys: keys.clone() }, &m),
            Op::SetWitnesses { verifier_keys } if verifier_keys == keys
        ));
    }

    #[tokio::test]
    async fn apply_hands_the_leaves_it_stored_to_the_feed() {
        use openraft::entry::RaftEntry;
        type Entry = openraft::alias::EntryOf<TypeConfig>;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LedgerStore::open(&dir.path().join("ledger.redb"), ORIGIN).unwrap());
        let (mut sm, _checkpoints) = StateMachine::open(store, &dir.path().join("snaps")).unwrap();
        let (feed, mut fed) = crate::storage::applied_feed::applied_feed(1 << 20);
        sm.feed_new_leaves(feed);
        let append = |index, events| {
            let cmd = Command::Append {
                events,
                commit_time_unix_nanos: 1,
            };
            Ok((Entry::new_normal(log_id(index), cmd.into()), None))
        };
        let entries = vec![
            append(1, vec![event(0), event(1)].into()),
            Ok((Entry::new_blank(log_id(2)), None)),
            append(3, vec![event(2)].into()),
        ];
        sm.apply(futures::stream::iter(entries)).await.unwrap();
        assert_eq!(sm.subscribe().borrow().tree_size, 3);
        let mut leaves = fed.try_recv().expect("one batch per apply");
        let handed: Vec<_> = std::iter::from_fn(|| leaves.pop())
            .map(|(i, e)| (i, e.resource))
            .collect();
        assert_eq!(
            handed,
            [(0, "r0".into()), (1, "r1".into()), (2, "r2".into())]
        );
        assert!(fed.try_recv().is_none());
    }

    #[test]
    fn a_snapshot_whose_metadata_disagrees_with_openraft_is_refused() {
        let (m, _) = membership();
        let applied_id = log_id(10);
        let expected = SnapshotMeta {
            last_log_id: Some(applied_id),
            last_membership: m.clone(),
        };
        let state = StateMeta {
            applied: Some(serde_json::to_vec(&Some(applied_id)).unwrap()),
            membership: Some(serde_json::to_vec(&m).unwrap()),
            ..Default::default()
        };
        let keys = snapshot_voter_keys(&state, &expected).unwrap();
        assert_eq!(keys.len(), 2, "the keyless voter has no key to give");

        let other_id = log_id(11);
        let stale = StateMeta {
            applied: Some(serde_json::to_vec(&Some(other_id)).unwrap()),
            ..state.clone()
        };
        assert!(snapshot_voter_keys(&stale, &expected)
            .unwrap_err()
            .contains("applied"));
        let no_members = StateMeta {
            membership: None,
            ..state
        };
        assert!(snapshot_voter_keys(&no_members, &expected)
            .unwrap_err()
            .contains("membership"));
    }

    #[test]
    fn leftover_snapshot_transfers_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LedgerStore::open(&dir.path().join("ledger.redb"), ORIGIN).unwrap());
        let snaps = dir.path().join("snapshots");
        std::fs::create_dir_all(&snaps).unwrap();
        for name in ["incoming-7.tmp", "building-42.tmp", "other.tmp"] {
            std::fs::write(snaps.join(name), b"x").unwrap();
        }
        StateMachine::open(store, &snaps).unwrap();
        assert_eq!(names(&snaps), ["other.tmp"]);
    }

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
            idempotency_key: None,
        }
    }

    /// A store applied up to log index `index`, holding `leaves` leaves,
    /// under membership `m`.
    fn store_at(path: &Path, index: u64, leaves: u64, m: &StoredMembership) -> Arc<LedgerStore> {
        let store = LedgerStore::open(path, ORIGIN).unwrap();
        let append = Op::Append {
            events: (0..leaves).map(event).collect::<Vec<_>>().into(),
            commit_time_unix_nanos: 1,
        };
        let applied = serde_json::to_vec(&Some(log_id(index))).unwrap();
        let membership = serde_json::to_vec(m).unwrap();
        store
            .apply(&[append], Some(applied), Some(membership))
            .unwrap();
        Arc::new(store)
    }

    /// Moves `store`'s applied marker to `index`, changing nothing else.
    fn advance(store: &LedgerStore, index: u64) {
        let applied = serde_json::to_vec(&Some(log_id(index))).unwrap();
        store.apply(&[Op::Nothing], Some(applied), None).unwrap();
    }

    fn meta_at(index: u64, m: &StoredMembership) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(log_id(index)),
            last_membership: m.clone(),
        }
    }

    /// The snapshot file `path` as a transfer receiver hands it over.
    fn snapshot_file(path: &Path) -> SnapshotFile {
        SnapshotFile::received(path.to_path_buf(), std::fs::File::open(path).unwrap())
    }

    /// The file names in `dir`, sorted (snapshot files, named by their
    /// term first, come before `current.json`).
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn file_name(snapshot: &Snapshot) -> String {
        let name = snapshot.snapshot.path.file_name().unwrap();
        name.to_string_lossy().into_owned()
    }

    #[tokio::test]
    async fn an_older_build_finishing_after_a_newer_install_leaves_the_newer_current() {
        let dir = tempfile::tempdir().unwrap();
        let (m, _) = membership();
        let store = store_at(&dir.path().join("ledger.redb"), 5, 2, &m);
        let snaps = dir.path().join("snapshots");
        let (mut sm, _checkpoints) = StateMachine::open(store.clone(), &snaps).unwrap();

        // A build exports the store at index 5 (build_snapshot's first half)...
        let staged = snaps.join("building-1.tmp");
        let built = store.export_snapshot(&staged).unwrap();
        let older = SnapshotMeta {
            last_log_id: decode_opt(&built.applied).unwrap(),
            last_membership: m.clone(),
        };
        assert_eq!(older, meta_at(5, &m));
        // ...then the leader's snapshot at index 10 is installed...
        let leader = store_at(&dir.path().join("leader.redb"), 10, 4, &m);
        let incoming = snaps.join("incoming-1.tmp");
        leader.export_snapshot(&incoming).unwrap();
        let newer = meta_at(10, &m);
        sm.install_snapshot(&newer, snapshot_file(&incoming))
            .await
            .unwrap();
        assert_eq!(store.tree_size().unwrap(), 4);
        let installed = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(installed.meta, newer);
        // ...and only then does the build record its result (its second half).
        let returned = sm.snapshots.adopt(&staged, &older).unwrap();
        assert_eq!(returned.meta, newer, "the build returns the newer snapshot");
        assert_eq!(returned.snapshot.path, installed.snapshot.path);
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, newer, "current.json did not move back");
        assert_eq!(
            names(&snaps),
            [file_name(&installed), CURRENT_FILE.to_string()],
            "neither the build's file nor the transfer is left"
        );

        // A newer build replaces it and leaves one snapshot file.
        advance(&store, 11);
        let rebuilt = sm.build_snapshot().await.unwrap();
        assert_eq!(rebuilt.meta, meta_at(11, &m));
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, rebuilt.meta);
        assert_eq!(
            names(&snaps),
            [file_name(&rebuilt), CURRENT_FILE.to_string()]
        );
    }

    #[tokio::test]
    async fn a_built_snapshot_names_the_leaves_and_a_follower_receives_them_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (m, _) = membership();
        let leader = store_at(&dir.path().join("leader.redb"), 10, 900, &m);
        let (mut leader_sm, _c) =
            StateMachine::open(leader.clone(), &dir.path().join("leader-snaps")).unwrap();
        let built = leader_sm.build_snapshot().await.unwrap();
        let manifest_len = built.snapshot.file.metadata().unwrap().len();
        let full = dir.path().join("full");
        leader.export_snapshot(&full).unwrap();
        let full_len = std::fs::metadata(&full).unwrap().len();
        assert!(
            manifest_len * 20 < full_len,
            "a build wrote {manifest_len} bytes for a {full_len}-byte state"
        );

        // What the network sends is the snapshot expanded, every leaf inline.
        let follower_snaps = dir.path().join("follower-snaps");
        let follower = store_at(&dir.path().join("follower.redb"), 1, 0, &m);
        let (mut follower_sm, _c) = StateMachine::open(follower.clone(), &follower_snaps).unwrap();
        let incoming = follower_snaps.join("incoming-1.tmp");
        let current = leader_sm.get_current_snapshot().await.unwrap().unwrap();
        let mut sent = current.snapshot.into_reader();
        let mut out = std::fs::File::create(&incoming).unwrap();
        assert_eq!(io::copy(&mut sent, &mut out).unwrap(), full_len);
        follower_sm
            .install_snapshot(&current.meta, snapshot_file(&incoming))
            .await
            .unwrap();
        assert_eq!(follower.root(900).unwrap(), leader.root(900).unwrap());

        // The follower keeps a manifest of what it installed, not the
        // transfer: no second copy of the log.
        let kept = follower_sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(kept.meta, current.meta);
        assert!(kept.snapshot.file.metadata().unwrap().len() * 20 < full_len);
        assert_eq!(
            names(&follower_snaps),
            [file_name(&kept), CURRENT_FILE.to_string()]
        );
        // And it can pass the snapshot on, whole.
        let mut again = Vec::new();
        io::Read::read_to_end(&mut kept.snapshot.into_reader(), &mut again).unwrap();
        assert_eq!(again, std::fs::read(&full).unwrap());
    }

    #[tokio::test]
    async fn open_removes_snapshot_files_current_json_does_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let (m, _) = membership();
        let store = store_at(&dir.path().join("ledger.redb"), 5, 2, &m);
        let snaps = dir.path().join("snapshots");
        let (mut sm, _checkpoints) = StateMachine::open(store.clone(), &snaps).unwrap();
        let built = sm.build_snapshot().await.unwrap();
        let named = file_name(&built);
        drop((sm, built));
        // What a crash in the middle of recording a snapshot leaves: the new
        // file renamed in but not yet named, or an old one not yet removed,
        // and current.json's own temporary.
        let stray = "00000000000000000003-00000000000000000009-1.snap";
        std::fs::copy(snaps.join(&named), snaps.join(stray)).unwrap();
        std::fs::write(snaps.join("current.json.tmp"), b"{").unwrap();

        let (mut sm, _checkpoints) = StateMachine::open(store, &snaps).unwrap();
        assert_eq!(names(&snaps), [named.clone(), CURRENT_FILE.to_string()]);
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, meta_at(5, &m));
        assert_eq!(file_name(&current), named);

        // openraft's start-up restore installs the current file itself:
        // it stays where it is, still named.
        let meta = current.meta.clone();
        sm.install_snapshot(&meta, current.snapshot).await.unwrap();
        assert_eq!(names(&snaps), [named, CURRENT_FILE.to_string()]);
    }

    #[tokio::test]
    async fn a_current_json_naming_a_missing_file_opens_with_no_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (m, _) = membership();
        let store = store_at(&dir.path().join("ledger.redb"), 5, 2, &m);
        let snaps = dir.path().join("snapshots");
        let (mut sm, _checkpoints) = StateMachine::open(store.clone(), &snaps).unwrap();
        let built = sm.build_snapshot().await.unwrap();
        std::fs::remove_file(&built.snapshot.path).unwrap();
        drop((sm, built));

        let (mut sm, _checkpoints) = StateMachine::open(store.clone(), &snaps).unwrap();
        assert!(sm.get_current_snapshot().await.unwrap().is_none());
        assert!(names(&snaps).is_empty(), "the dangling pointer is removed");
        // A build is not held back by the snapshot that went missing.
        let rebuilt = sm.build_snapshot().await.unwrap();
        assert_eq!(rebuilt.meta, meta_at(5, &m));
        drop((sm, rebuilt));

        // A pointer that does not parse was not interrupted (it is replaced
        // whole) but damaged: the node does not start on it.
        std::fs::write(snaps.join(CURRENT_FILE), b"{").unwrap();
        let err = StateMachine::open(store, &snaps).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn a_refused_install_changes_neither_the_store_nor_the_current_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (m, _) = membership();
        let store = store_at(&dir.path().join("ledger.redb"), 5, 2, &m);
        let snaps = dir.path().join("snapshots");
        let (mut sm, _checkpoints) = StateMachine::open(store.clone(), &snaps).unwrap();
        let built = sm.build_snapshot().await.unwrap();
        let store_before = store.meta().unwrap();

        // The leader's snapshot holds index 10 but its metadata claims 12.
        let leader = store_at(&dir.path().join("leader.redb"), 10, 4, &m);
        let incoming = snaps.join("incoming-1.tmp");
        leader.export_snapshot(&incoming).unwrap();
        let err = sm
            .install_snapshot(&meta_at(12, &m), snapshot_file(&incoming))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("applied"), "{err}");

        assert_eq!(store.meta().unwrap(), store_before);
        assert_eq!(store.entries(0, 10).unwrap().0.len(), 2);
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, built.meta);
        assert_eq!(file_name(&current), file_name(&built));
        // The transfer is the receiver's to remove; nothing else moved.
        assert_eq!(
            names(&snaps),
            [
                file_name(&built),
                CURRENT_FILE.to_string(),
                "incoming-1.tmp".into()
            ]
        );
    }
}
