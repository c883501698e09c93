//! The Raft log: an in-memory tail over segment files ([`super::wal`],
//! the `raft-log/` directory), written by one thread.
//!
//! # Why a tail and a writer
//! Every Raft entry costs the core an `append`, the disk a durable commit,
//! and the leader one read per follower to replicate it. Profiled under
//! load, the earlier design spent that on thread hand-offs and redb work: a
//! non-durable commit per append on a blocking thread, a second commit by a
//! flusher to make it durable, and replication reading every entry back
//! from redb and decoding its JSON.
//!
//! - `append` puts the entries in the tail, where every reader finds them at
//!   once (openraft requires that), and queues their stored rows with the
//!   flush callback for the writer thread. It neither waits nor blocks.
//! - The writer takes every write queued, appends them in order to the
//!   write-ahead log and starts one flush (one fsync for all of them). The
//!   crate's flush thread, once it is durable, marks the entries durable in
//!   the tail and fires their callbacks: none is acknowledged before its
//!   fsync. The writer does not wait for it: the next batch is written
//!   while this one syncs, and the callbacks fire without a hand-off back.
//! - Votes, truncations and purges travel through the same queue, because
//!   openraft requires writes to be applied in the order they were made, and
//!   return once committed durably.
//! - The committed id rides along: openraft's newest one waits in the tail
//!   and the writer writes it with the next durable flush, never on its own
//!   (an fsync per committed id would double the writer's fsyncs, and even
//!   a wake-up per committed id cost a thread switch per commit).
//!   openraft reads it back only as a starting point (a node that restarts
//!   with an older one, or none, takes the state machine's applied id and
//!   re-learns the rest from the leader); every entry it names is already
//!   durable in a majority's logs.
//!
//! # Reads
//! A read is served from the tail where the tail holds it, and from the
//! segment files below. The tail keeps every entry that is not durable yet and the newest
//! [`RAFT_LOG_TAIL_BYTES`] of durable ones; only durable entries leave it, so
//! an entry is always in the tail, on disk, or both.
//!
//! Replication reads through `limited_get_log_entries`, which stops at
//! [`RAFT_APPEND_BYTES_MAX`] of stored JSON (the bytes the wire carries) but
//! always returns the first entry: a payload of several entries never
//! outgrows the gRPC message limit, and an oversized one goes alone.
//!
//! # Invariants
//! The log has no holes: entries are a contiguous index range after the last
//! purged id, on disk and in the tail alike.
use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use raft_log::api::raft_log_writer::RaftLogWriter;
use raft_log::Types;
use serde::Serialize;
use tokio::sync::oneshot;

use super::wal::{
    self, LogId, Preallocation, StoredEntry, StoredLogId, StoredVote, Vote, Wal, WalTypes,
};
use super::TypeConfig;
use crate::limits::{RAFT_APPEND_BYTES_MAX, RAFT_LOG_TAIL_BYTES};

type Entry = openraft::alias::EntryOf<TypeConfig>;

/// The Raft log store; cheap to clone (all clones share one tail, one file
/// and one writer thread).
#[derive(Clone)]
pub struct LogStore {
    wal: Arc<RwLock<Wal>>,
    tail: Arc<Mutex<Tail>>,
    /// Writes waiting for the writer thread, in the order they were made.
    writes: mpsc::Sender<Write>,
    /// How far the log on disk is known to be durable.
    durable_end: DurableEnd,
}

/// One past the last index this node's Raft log holds durably, as its
/// writer last made it: 0 until the writer's first flush. Shared with the
/// state machine, which must not make an apply durable beyond it: openraft
/// applies committed entries this node has submitted to its log but not
/// necessarily flushed, and a store durably ahead of its own log would,
/// after a crash, have openraft purge the log up to the applied index,
/// past the last snapshot. A truncation lowers it before openraft appends
/// anything in its place: `truncate_after` waits for the writer.
#[derive(Clone, Debug, Default)]
pub struct DurableEnd(Arc<AtomicU64>);

impl DurableEnd {
    /// Whether the entry at `index` is durable in the log.
    pub fn covers(&self, index: u64) -> bool {
        index < self.0.load(AtomicOrdering::Acquire)
    }

    fn set(&self, end: u64) {
        self.0.store(end, AtomicOrdering::Release);
    }
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// One entry in the tail, with the size of its stored JSON.
struct Cached {
    entry: Entry,
    bytes: usize,
    durable: bool,
}

/// What the log holds in memory: the newest entries and its state.
struct Tail {
    /// Contiguous by index; entries that are not durable are never dropped.
    entries: VecDeque<Cached>,
    /// Stored bytes of the durable entries in `entries`.
    durable_bytes: usize,
    /// Durable entries beyond this many bytes leave the tail, oldest first.
    budget_bytes: usize,
    last_log_id: Option<LogId>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    /// Stored bytes and count of the entries appended since the log was
    /// opened: their mean sizes the entries only on disk (`disk_only`).
    appended_bytes: u64,
    appended_entries: u64,
}

/// How a read from the tail ended.
enum Taken {
    /// Copied at least one entry and ran out of range or tail.
    Copied,
    /// Stopped at the byte budget.
    Full,
    /// The tail does not hold the first index asked for.
    NotHere,
}

impl Tail {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|c| c.entry.log_id.index)
    }

    fn position(&self, index: u64) -> Option<usize> {
        let first = self.first_index()?;
        let pos = usize::try_from(index.checked_sub(first)?).ok()?;
        (pos < self.entries.len()).then_some(pos)
    }

    /// Adds an entry after the last one; refuses one that would leave a hole
    /// or go back, which openraft never asks for.
    fn push(&mut self, entry: Entry, bytes: usize) -> io::Result<()> {
        let expected = self.last_log_id.map_or(entry.log_id.index, |l| l.index + 1);
        if entry.log_id.index != expected {
            return Err(io::Error::other(format!(
                "raft log append at index {} would leave a hole or overwrite: the log ends at {:?}",
                entry.log_id.index, self.last_log_id
            )));
        }
        self.last_log_id = Some(entry.log_id);
        self.appended_bytes += bytes as u64;
        self.appended_entries += 1;
        self.entries.push_back(Cached {
            entry,
            bytes,
            durable: false,
        });
        Ok(())
    }

    /// Marks the entries the writer committed durably, where the tail still
    /// holds those very entries (not replacements after a truncation), and
    /// lets the oldest durable ones go beyond the budget.
    fn mark_durable(&mut self, ids: &[LogId]) {
        for id in ids {
            if let Some(pos) = self.position(id.index) {
                let cached = &mut self.entries[pos];
                if cached.entry.log_id == *id && !cached.durable {
                    cached.durable = true;
                    self.durable_bytes += cached.bytes;
                }
            }
        }
        while self.durable_bytes > self.budget_bytes {
            match self.entries.front() {
                Some(c) if c.durable => {
                    self.durable_bytes -= c.bytes;
                    self.entries.pop_front();
                }
                _ => break,
            }
        }
    }

    fn pop_back_from(&mut self, from: u64) {
        while let Some(c) = self.entries.back() {
            if c.entry.log_id.index < from {
                break;
            }
            if c.durable {
                self.durable_bytes -= c.bytes;
            }
            self.entries.pop_back();
        }
    }

    fn pop_front_through(&mut self, through: u64) {
        while let Some(c) = self.entries.front() {
            if c.entry.log_id.index > through {
                break;
            }
            if c.durable {
                self.durable_bytes -= c.bytes;
            }
            self.entries.pop_front();
        }
    }

    /// Copies entries from `next` below `end` into `out` while they fit in
    /// `budget` (counting each as its JSON plus a comma), but always one if
    /// `out` is empty.
    fn take(
        &self,
        next: u64,
        end: u64,
        budget: usize,
        used: &mut usize,
        out: &mut Vec<Entry>,
    ) -> Taken {
        let Some(start) = self.position(next) else {
            return Taken::NotHere;
        };
        for cached in self.entries.range(start..) {
            if cached.entry.log_id.index >= end {
                break;
            }
            let bytes = cached.bytes + 1;
            if !out.is_empty() && used.saturating_add(bytes) > budget {
                return Taken::Full;
            }
            *used = used.saturating_add(bytes);
            out.push(cached.entry.clone());
        }
        Taken::Copied
    }
}

/// The entries a log holds only on disk, below its in-memory tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskOnly {
    /// The newest of them.
    pub last: u64,
    /// Their stored bytes, estimated from the mean size of the entries
    /// appended since the log was opened.
    pub bytes: u64,
}

/// A write for the writer thread.
enum Write {
    Append {
        rows: Vec<(LogId, Bytes)>,
        callback: IOFlushed<TypeConfig>,
    },
    Vote {
        vote: Vote,
        done: oneshot::Sender<io::Result<()>>,
    },
    /// Cuts the open segment back to its records (at shutdown).
    Release { done: oneshot::Sender<()> },
    /// Removes every entry from `from` on.
    Truncate {
        from: u64,
        done: oneshot::Sender<io::Result<()>>,
    },
    /// Removes every entry through `through` and records it as the last
    /// purged id.
    Purge {
        through: LogId,
        done: oneshot::Sender<io::Result<()>>,
    },
}

impl Write {
    fn complete(self, result: &io::Result<()>) {
        let copy = || match result {
            Ok(()) => Ok(()),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        match self {
            Write::Append { callback, .. } => callback.io_completed(copy()),
            Write::Vote { done, .. } | Write::Truncate { done, .. } | Write::Purge { done, .. } => {
                // The caller may have been cancelled; the write stands.
                let _ = done.send(copy());
            }
            Write::Release { .. } => {}
        }
    }
}

// A panic while holding the lock leaves the crate's state as its last
// completed call left it; the writer reports any error it returned.
fn read_wal(wal: &RwLock<Wal>) -> RwLockReadGuard<'_, Wal> {
    wal.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_wal(wal: &RwLock<Wal>) -> RwLockWriteGuard<'_, Wal> {
    wal.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(io_err)
}

impl LogStore {
    /// Opens or creates the log in directory `path` and starts its writer
    /// thread, which ends when the last clone of the store is dropped.
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::open_with_tail(path, RAFT_LOG_TAIL_BYTES)
    }

    /// [`LogStore::open`], keeping at most `tail_bytes` of durable entries in
    /// memory (0: only those not yet durable, so reads of the rest go to
    /// disk).
    pub fn open_with_tail(path: &Path, tail_bytes: usize) -> io::Result<Self> {
        let wal = wal::open(path)?;
        let state = wal.log_state();
        let (last_purged, last_stored) =
            (state.purged().map(|id| id.0), state.last().map(|id| id.0));
        let (vote, committed) = (state.vote().map(|v| v.0), state.committed().map(|id| id.0));
        let wal = Arc::new(RwLock::new(wal));
        let tail = Arc::new(Mutex::new(Tail {
            entries: VecDeque::new(),
            durable_bytes: 0,
            budget_bytes: tail_bytes,
            last_log_id: last_stored.or(last_purged),
            last_purged,
            vote,
            committed,
            appended_bytes: 0,
            appended_entries: 0,
        }));
        let (tx, rx) = mpsc::channel::<Write>();
        let durable_end = DurableEnd::default();
        let (writer_wal, writer_tail, writer_end) =
            (wal.clone(), tail.clone(), durable_end.clone());
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || write_loop(&writer_wal, &writer_tail, &writer_end, &rx))?;
        Ok(Self {
            wal,
            tail,
            writes: tx,
            durable_end,
        })
    }

    /// Cuts the open segment's preallocated space back to its records,
    /// after every write queued before this call: for shutdown, so the next
    /// start finds the segment ending where its records do. Appends after
    /// it grow the segment as they come.
    pub async fn release_preallocation(&self) {
        let (done, answered) = oneshot::channel();
        if self.send(Write::Release { done }).is_ok() {
            let _ = answered.await;
        }
    }

    /// How far the log is durable, updated after every flush.
    pub fn durable_end(&self) -> DurableEnd {
        self.durable_end.clone()
    }

    /// What the log holds only on disk, below its in-memory tail, for
    /// [`super::log_keeper`]; `None` when nothing, or when nothing has been
    /// appended since the log was opened to estimate sizes from.
    pub fn disk_only(&self) -> Option<DiskOnly> {
        let tail = self.tail();
        // An empty tail (every entry larger than its budget) holds nothing
        // in memory: the whole log is on disk only.
        let first = tail
            .first_index()
            .or_else(|| tail.last_log_id.map(|id| id.index + 1))?;
        let from = tail.last_purged.map_or(0, |id| id.index + 1);
        let entries = first.checked_sub(from).filter(|&n| n > 0)?;
        let mean = tail.appended_bytes.checked_div(tail.appended_entries)?;
        Some(DiskOnly {
            last: first - 1,
            bytes: entries.saturating_mul(mean),
        })
    }

    fn tail(&self) -> MutexGuard<'_, Tail> {
        // A panic while holding the lock leaves no half-done change: every
        // method of `Tail` keeps its invariants at each step.
        self.tail
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn send(&self, write: Write) -> io::Result<()> {
        self.writes
            .send(write)
            .map_err(|_| io::Error::other("raft log writer stopped"))
    }

    /// Queues a write that answers on `done` and waits for its commit.
    async fn write_and_wait(
        &self,
        write: impl FnOnce(oneshot::Sender<io::Result<()>>) -> Write,
    ) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(write(tx))?;
        rx.await
            .map_err(|_| io::Error::other("raft log writer stopped"))?
    }

    /// Entries `start..end` within `budget` bytes of stored JSON (always the
    /// first), from the tail where it holds them and from disk below it.
    async fn read(&self, start: u64, end: u64, budget: usize) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        let mut used = 0;
        let mut next = start;
        while next < end {
            let (taken, first_cached) = {
                let tail = self.tail();
                (
                    tail.take(next, end, budget, &mut used, &mut out),
                    tail.first_index(),
                )
            };
            match taken {
                Taken::Full => break,
                // The tail holds nothing further.
                Taken::Copied => break,
                Taken::NotHere => {
                    if first_cached.is_some_and(|first| next >= first) {
                        // Past the end of the log.
                        break;
                    }
                    // Below the tail: from disk, up to where the tail began.
                    // Entries leaving the tail meanwhile are on disk by then
                    // (only durable ones leave), so the loop finds them there.
                    let disk_end = first_cached.map_or(end, |first| first.min(end));
                    let wal = self.wal.clone();
                    let remaining = budget.saturating_sub(used);
                    let first_forced = out.is_empty();
                    let (entries, bytes, full) = tokio::task::spawn_blocking(move || {
                        read_stored(&wal, next, disk_end, remaining, first_forced)
                    })
                    .await
                    .map_err(io_err)??;
                    let entries = entries
                        .iter()
                        .map(|stored| serde_json::from_slice::<Entry>(&stored.0).map_err(io_err))
                        .collect::<io::Result<Vec<_>>>()?;
                    // Stored entries start after the purge point, which
                    // may be past `next`; with none stored below the tail,
                    // the range goes on in the tail.
                    next = match entries.last() {
                        Some(last) => last.log_id.index + 1,
                        None if disk_end < end => disk_end,
                        None => break,
                    };
                    used = used.saturating_add(bytes);
                    out.extend(entries);
                    if full {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Stored entries `start..end` within `budget` bytes (each counted as its
/// JSON plus a comma, as in a JSON array), but at least one if
/// `first_forced`: the entries, their bytes, and whether the budget stopped
/// the read.
fn read_stored(
    wal: &RwLock<Wal>,
    start: u64,
    end: u64,
    budget: usize,
    first_forced: bool,
) -> io::Result<(Vec<StoredEntry>, usize, bool)> {
    let mut out = Vec::new();
    let mut used: usize = 0;
    if start >= end {
        return Ok((out, used, false));
    }
    // Reads share the lock (a lagging follower's disk reads do not hold
    // up each other), and only the file reads happen under it: entries are
    // decoded after.
    let wal = read_wal(wal);
    for row in wal.read(start, end) {
        let (_, stored) = row?;
        let bytes = stored.0.len() + 1;
        let forced = first_forced && out.is_empty();
        if !forced && used.saturating_add(bytes) > budget {
            return Ok((out, used, true));
        }
        used = used.saturating_add(bytes);
        out.push(stored);
    }
    Ok((out, used, false))
}

/// The writer thread: every write waiting goes into the write-ahead log,
/// with the newest committed id, and is flushed with one fsync; the flush
/// thread completes them.
fn write_loop(
    wal: &RwLock<Wal>,
    tail: &Arc<Mutex<Tail>>,
    durable_end: &DurableEnd,
    rx: &mpsc::Receiver<Write>,
) {
    let mut preallocation = Preallocation::new();
    preallocation.follow(&read_wal(wal));
    while let Ok(first) = rx.recv() {
        // The newest committed id goes with this flush. Read before the
        // queue is drained: the entries it names were queued before openraft
        // recorded it, so they are in this batch or an earlier one.
        let committed = tail
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .committed;
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        // One yield before the flush: on a busy machine the threads
        // about to queue more writes run first, and join this flush's
        // fsync instead of waiting for one of their own. It costs an idle
        // machine nothing (no other thread is runnable) and measured
        // better at every load shape (A/B, 5 s runs, TLS: 1 x 1 +6%,
        // 16 x 1 +15%, 64 x 1 +16%); a second yield added nothing.
        std::thread::yield_now();
        batch.extend(rx.try_iter());
        let mut writes = Vec::with_capacity(batch.len());
        let mut releases = Vec::new();
        for write in batch {
            match write {
                Write::Release { done } => releases.push(done),
                other => writes.push(other),
            }
        }
        if writes.is_empty() {
            release(wal, &mut preallocation, releases);
            continue;
        }
        let flushing = Flushing {
            ids: surviving_ids(&writes),
            writes,
            end: 0,
            tail: tail.clone(),
            durable_end: durable_end.clone(),
        };
        submit(wal, flushing, committed);
        preallocation.follow(&read_wal(wal));
        release(wal, &mut preallocation, releases);
    }
    // Every store is gone. The crate lets go of the directory when the log
    // is dropped, but its flush thread writes on whatever is queued: a log
    // opened again meanwhile would start where those writes then land.
    read_wal(wal).wait_worker_idle();
}

/// Writes handed to the crate's flush thread with their flush: completed
/// there once it is durable, or, if it never runs (the thread stopped),
/// with an error when dropped. None is ever left unanswered.
struct Flushing {
    writes: Vec<Write>,
    /// The entries the flush leaves on disk ([`surviving_ids`]).
    ids: Vec<LogId>,
    /// One past the last index the log holds once the flush is durable.
    end: u64,
    tail: Arc<Mutex<Tail>>,
    durable_end: DurableEnd,
}

impl Flushing {
    fn done(mut self, result: io::Result<()>) {
        if result.is_ok() {
            self.durable_end.set(self.end);
            self.tail
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .mark_durable(&self.ids);
        }
        for write in self.writes.drain(..) {
            write.complete(&result);
        }
    }
}

impl Drop for Flushing {
    fn drop(&mut self) {
        let stopped = Err(io::Error::other("raft log flush worker stopped"));
        for write in self.writes.drain(..) {
            write.complete(&stopped);
        }
    }
}

/// Answers `releases` once the open segment is cut back to its records.
fn release(
    wal: &RwLock<Wal>,
    preallocation: &mut Preallocation,
    releases: Vec<oneshot::Sender<()>>,
) {
    if releases.is_empty() {
        return;
    }
    preallocation.release(&read_wal(wal));
    for done in releases {
        // The caller may have given up waiting; the segment is cut anyway.
        let _ = done.send(());
    }
}

/// The ids of the entries a flushed batch leaves on disk: appended, and
/// not removed by a later truncation or purge in the same batch.
fn surviving_ids(batch: &[Write]) -> Vec<LogId> {
    let mut ids: Vec<LogId> = Vec::new();
    for write in batch {
        match write {
            Write::Append { rows, .. } => ids.extend(rows.iter().map(|(id, _)| *id)),
            Write::Truncate { from, .. } => ids.retain(|id| id.index < *from),
            Write::Purge { through, .. } => ids.retain(|id| id.index > through.index),
            Write::Vote { .. } | Write::Release { .. } => {}
        }
    }
    ids
}

/// Appends the writes of `flushing` to the write-ahead log in order, with
/// the newest `committed` id if one waits, and starts one flush for all of
/// them: the crate's flush thread completes them once it is durable, while
/// this thread goes on to the next batch. If the log refuses them, they
/// are completed at once with the error.
fn submit(wal: &RwLock<Wal>, mut flushing: Flushing, committed: Option<LogId>) {
    let mut wal = write_wal(wal);
    match append_writes(&mut wal, &flushing.writes, committed) {
        Ok(end) => {
            flushing.end = end;
            // Refused only if the flush thread stopped: the closure is then
            // dropped unrun, and `Flushing`'s drop answers every write.
            if let Err(e) = wal::flush_then(&mut wal, move |result| flushing.done(result)) {
                tracing::error!(error = %e, "raft log: could not queue a flush or a segment removal");
            }
        }
        Err(e) => {
            drop(wal);
            flushing.done(Err(e));
        }
    }
}

/// Appends `batch` to the log in order, with the newest `committed` id if
/// one waits. Returns one past the last index the log then holds: all of it
/// durable once the next flush is.
fn append_writes(wal: &mut Wal, batch: &[Write], committed: Option<LogId>) -> io::Result<u64> {
    for write in batch {
        match write {
            Write::Append { rows, .. } => {
                wal.append(
                    rows.iter()
                        .map(|(id, json)| (StoredLogId(*id), StoredEntry(json.clone()))),
                )?;
            }
            Write::Vote { vote, .. } => {
                wal.save_vote(StoredVote(*vote))?;
            }
            // Handled by the write loop after the batch.
            Write::Release { .. } => {}
            Write::Truncate { from, .. } => {
                // Past the end there is nothing to remove (and the crate
                // wants the id of the entry before `from`).
                if *from < WalTypes::next_log_index(wal.log_state().last()) {
                    wal.truncate(*from)?;
                }
            }
            Write::Purge { through, .. } => {
                // The purge point is recorded with the removal, so the
                // log never looks empty without saying where it ends.
                wal.purge(StoredLogId(*through))?;
            }
        }
    }
    if let Some(id) = committed {
        write_committed(wal, id)?;
    }
    Ok(WalTypes::next_log_index(wal.log_state().last()))
}

/// Records `id` as committed unless an id as new is recorded already (the
/// crate refuses a committed id that goes back, and after a restart
/// openraft may report one from before the stored one).
fn write_committed(wal: &mut Wal, id: LogId) -> io::Result<()> {
    if wal
        .log_state()
        .committed()
        .is_none_or(|stored| stored.0 < id)
    {
        wal.commit(StoredLogId(id))?;
    }
    Ok(())
}

fn bound_start(b: Bound<&u64>) -> u64 {
    match b {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i + 1,
        Bound::Unbounded => 0,
    }
}

fn bound_end(b: Bound<&u64>) -> Option<u64> {
    match b {
        Bound::Included(&i) => Some(i + 1),
        Bound::Excluded(&i) => Some(i),
        Bound::Unbounded => None,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = bound_start(range.start_bound());
        let end = bound_end(range.end_bound()).unwrap_or(u64::MAX);
        self.read(start, end, usize::MAX).await
    }

    /// What replication reads: entries from `start` whose JSON, the very
    /// bytes an AppendEntries message carries, stays within
    /// [`RAFT_APPEND_BYTES_MAX`], and always the first one, so one payload
    /// never outgrows the gRPC message limit and replication still moves
    /// past an entry larger than the budget.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, io::Error> {
        self.read(start, end, RAFT_APPEND_BYTES_MAX).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.tail().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let tail = self.tail();
        Ok(LogState {
            last_purged_log_id: tail.last_purged,
            last_log_id: tail.last_log_id.or(tail.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let vote = *vote;
        self.write_and_wait(|done| Write::Vote { vote, done })
            .await?;
        self.tail().vote = Some(vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // The writer takes it from the tail with its next batch: waking it
        // for a committed id alone would cost a thread switch per commit and
        // write nothing.
        self.tail().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.tail().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut rows = Vec::new();
        {
            let mut tail = self.tail();
            for entry in entries {
                let bytes = encode(&entry)?;
                let id = entry.log_id;
                tail.push(entry, bytes.len())?;
                rows.push((id, Bytes::from(bytes)));
            }
        }
        self.send(Write::Append { rows, callback })
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index + 1);
        {
            let mut tail = self.tail();
            tail.pop_back_from(from);
            if tail.last_log_id.is_some_and(|last| last.index >= from) {
                tail.last_log_id = last_log_id.or(tail.last_purged);
            }
        }
        self.write_and_wait(|done| Write::Truncate { from, done })
            .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        {
            let mut tail = self.tail();
            tail.pop_front_through(log_id.index);
            tail.last_purged = Some(log_id);
            if tail
                .last_log_id
                .is_none_or(|last| last.index < log_id.index)
            {
                tail.last_log_id = Some(log_id);
            }
        }
        self.write_and_wait(|done| Write::Purge {
            through: log_id,
            done,
        })
        .await
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::ledger::event::{Actor, Event, Outcome};
    use crate::raft::Command;
    use openraft::entry::RaftEntry;
    use openraft::vote::RaftLeaderIdExt;

    /// An entry of one event at `term`, whose `details` is `quotes` double
    /// quotes: each becomes two bytes of JSON, the worst escaping a valid
    /// event has.
    pub(in crate::raft) fn entry_at(term: u64, index: u64, quotes: usize) -> Entry {
        let mut details = serde_json::Map::new();
        details.insert("q".into(), "\"".repeat(quotes).into());
        let event = Event {
            time_unix_nanos: 1,
            actor: Actor {
                id: "alice".into(),
                kind: None,
                ip: None,
                user_agent: None,
            },
            action: "read".into(),
            resource: "r".into(),
            outcome: Outcome::Success,
            source: "test".into(),
            details,
            idempotency_key: None,
        };
        let leader = openraft::alias::LeaderIdOf::<TypeConfig>::new_committed(term, 1);
        Entry::new_normal(
            openraft::LogId::new(leader, index),
            Command::Append {
                events: vec![event].into(),
                commit_time_unix_nanos: 1,
            }
            .into(),
        )
    }

    fn entry(index: u64, quotes: usize) -> Entry {
        entry_at(1, index, quotes)
    }

    /// Appends `entries` and waits until the writer has made them durable.
    async fn append_durably(store: &mut LogStore, entries: Vec<Entry>) {
        let (tx, rx) = <TypeConfig as openraft::type_config::TypeConfigExt>::oneshot();
        store
            .append(entries, IOFlushed::signal(tx))
            .await
            .expect("append");
        rx.await.expect("callback fired").expect("durable");
    }

    /// Nothing is acknowledged before the crate's flush thread has synced
    /// it: with that thread held, an append's callback does not fire and
    /// the durable end does not move; let go, both follow.
    #[tokio::test]
    async fn appends_are_acknowledged_only_after_their_flush() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(&dir.path().join("raft-log")).unwrap();
        let end = store.durable_end();
        let (hold, held) = mpsc::channel::<()>();
        wal::flush_then(&mut write_wal(&store.wal), move |_| {
            let _ = held.recv();
        })
        .unwrap();
        let (tx, mut rx) = <TypeConfig as openraft::type_config::TypeConfigExt>::oneshot();
        store
            .append(vec![entry(1, 0)], IOFlushed::signal(tx))
            .await
            .unwrap();
        let early = tokio::time::timeout(std::time::Duration::from_millis(300), &mut rx).await;
        assert!(early.is_err(), "acknowledged while its flush was held");
        assert!(!end.covers(1));
        hold.send(()).unwrap();
        rx.await.expect("callback fired").expect("durable");
        assert!(end.covers(1));
    }

    fn indices(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    fn terms(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.leader_id.term).collect()
    }

    /// Opens `path`, waiting for an earlier store's writer thread (which
    /// holds the file until its queue closes) to let go.
    fn reopen(path: &Path, tail_bytes: usize) -> LogStore {
        for _ in 0..100 {
            if let Ok(store) = LogStore::open_with_tail(path, tail_bytes) {
                return store;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the log did not reopen");
    }

    /// Replication reads stay within the byte budget and always progress,
    /// whether the entries come from the tail (`tail_bytes` large) or from
    /// disk (0: durable entries leave the tail at once).
    async fn reads_stay_within_budget(tail_bytes: usize) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open_with_tail(&dir.path().join("raft-log"), tail_bytes).unwrap();
        // Ten entries of 600 KB of quotes, 1.2 MB each as JSON: a budget
        // counted before escaping would let twice too many through.
        let quotes = 600 * 1024;
        append_durably(&mut store, (1..=10).map(|i| entry(i, quotes)).collect()).await;
        let in_tail = store.tail().entries.len();
        assert_eq!(in_tail, if tail_bytes == 0 { 0 } else { 10 });
        let mut next = 1;
        let mut reads = 0;
        while next <= 10 {
            let batch = store.limited_get_log_entries(next, 11).await.unwrap();
            assert!(!batch.is_empty(), "an empty answer stalls replication");
            assert_eq!(
                indices(&batch),
                (next..next + batch.len() as u64).collect::<Vec<_>>()
            );
            // What the AppendEntries message carries for these entries.
            let wire = serde_json::to_vec(&batch).unwrap().len();
            assert!(wire >= batch.len() * 2 * quotes, "escaping not counted");
            assert!(wire <= RAFT_APPEND_BYTES_MAX, "{wire} bytes");
            next += batch.len() as u64;
            reads += 1;
        }
        assert!(reads >= 3, "{reads} reads for 12 MB of JSON");
        // Unlimited reads still return the whole range.
        assert_eq!(store.try_get_log_entries(1..=10).await.unwrap().len(), 10);
    }

    #[tokio::test]
    async fn replication_reads_from_the_tail_stay_within_the_byte_budget() {
        reads_stay_within_budget(RAFT_LOG_TAIL_BYTES).await;
    }

    #[tokio::test]
    async fn replication_reads_from_disk_stay_within_the_byte_budget() {
        reads_stay_within_budget(0).await;
    }

    #[tokio::test]
    async fn an_entry_larger_than_the_budget_is_sent_alone() {
        for tail_bytes in [RAFT_LOG_TAIL_BYTES, 0] {
            let dir = tempfile::tempdir().unwrap();
            let mut store =
                LogStore::open_with_tail(&dir.path().join("raft-log"), tail_bytes).unwrap();
            append_durably(&mut store, (1..=3).map(|i| entry(i, 100)).collect()).await;
            assert_eq!(indices(&store.read(2, 4, 10).await.unwrap()), vec![2]);
            let all = store.read(1, 4, usize::MAX).await.unwrap();
            assert_eq!(indices(&all), vec![1, 2, 3]);
            // From below the first entry (the log starts at 1).
            let all = store.read(0, 4, usize::MAX).await.unwrap();
            assert_eq!(indices(&all), vec![1, 2, 3]);
            assert!(store.read(3, 3, 10).await.unwrap().is_empty());
            assert_eq!(indices(&store.read(3, 99, 10).await.unwrap()), vec![3]);
            assert!(store.read(4, 99, 10).await.unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn a_read_spans_disk_and_tail_once_the_tail_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let one = encode(&entry(10, 10)).unwrap().len();
        // Room for three durable entries in memory.
        let mut store = LogStore::open_with_tail(&dir.path().join("raft-log"), 3 * one).unwrap();
        append_durably(&mut store, (1..=10).map(|i| entry(i, 10)).collect()).await;
        {
            let tail = store.tail();
            assert_eq!(tail.first_index(), Some(8), "the tail keeps the newest");
            assert!(tail.durable_bytes <= 3 * one);
        }
        // Not yet durable entries stay whatever the budget.
        store
            .append((11..=20).map(|i| entry(i, 10)), IOFlushed::noop())
            .await
            .unwrap();
        let all = store.try_get_log_entries(1..=20).await.unwrap();
        assert_eq!(indices(&all), (1..=20).collect::<Vec<_>>());
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.map(|id| id.index), Some(20));
    }

    #[tokio::test]
    async fn an_entry_replaced_after_a_truncation_is_not_taken_for_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft-log");
        let mut store = LogStore::open_with_tail(&path, 0).unwrap();
        // Term 1 writes 1..=5; before they are durable, a new leader's log
        // replaces 3.. with its own.
        store
            .append((1..=5).map(|i| entry(i, 10)), IOFlushed::noop())
            .await
            .unwrap();
        store
            .truncate_after(Some(entry(2, 0).log_id))
            .await
            .unwrap();
        assert_eq!(
            store.get_log_state().await.unwrap().last_log_id,
            Some(entry(2, 0).log_id)
        );
        append_durably(&mut store, (3..=4).map(|i| entry_at(2, i, 10)).collect()).await;
        let all = store.try_get_log_entries(1..=10).await.unwrap();
        assert_eq!(indices(&all), vec![1, 2, 3, 4]);
        assert_eq!(terms(&all), vec![1, 1, 2, 2]);
        // A truncation at or past the end changes nothing.
        store
            .truncate_after(Some(entry(9, 0).log_id))
            .await
            .unwrap();
        assert_eq!(
            store.get_log_state().await.unwrap().last_log_id,
            Some(entry_at(2, 4, 0).log_id)
        );
        // Disk says the same after a restart.
        drop(store);
        let mut store = reopen(&path, 0);
        let all = store.try_get_log_entries(1..=10).await.unwrap();
        assert_eq!(terms(&all), vec![1, 1, 2, 2]);
    }

    #[tokio::test]
    async fn a_hole_in_the_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(&dir.path().join("raft-log")).unwrap();
        append_durably(&mut store, vec![entry(1, 0), entry(2, 0)]).await;
        let err = store
            .append([entry(4, 0)], IOFlushed::noop())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("hole"), "{err}");
        assert_eq!(
            store.get_log_state().await.unwrap().last_log_id,
            Some(entry(2, 0).log_id)
        );
    }

    #[tokio::test]
    async fn the_durable_end_follows_flushes_and_truncations() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(&dir.path().join("raft-log")).unwrap();
        let end = store.durable_end();
        assert!(!end.covers(0), "nothing flushed yet");
        append_durably(&mut store, (1..=5).map(|i| entry(i, 10)).collect()).await;
        assert!(end.covers(5) && !end.covers(6));
        store
            .truncate_after(Some(entry(3, 0).log_id))
            .await
            .unwrap();
        assert!(
            end.covers(3) && !end.covers(4),
            "a truncation pulls it back"
        );
        append_durably(&mut store, vec![entry(4, 0)]).await;
        assert!(end.covers(4) && !end.covers(5));
    }

    #[tokio::test]
    async fn a_reopened_log_has_its_entries_vote_commit_and_purge_point() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft-log");
        let mut store = LogStore::open(&path).unwrap();
        append_durably(&mut store, (1..=8).map(|i| entry(i, 10)).collect()).await;
        let vote = Vote::new_committed(3, 2);
        store.save_vote(&vote).await.unwrap();
        store
            .save_committed(Some(entry(6, 0).log_id))
            .await
            .unwrap();
        store.purge(entry(3, 0).log_id).await.unwrap();
        // The purge was durable, and carried the committed id with it.
        drop(store);
        let mut store = reopen(&path, RAFT_LOG_TAIL_BYTES);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(entry(3, 0).log_id));
        assert_eq!(state.last_log_id, Some(entry(8, 0).log_id));
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
        assert_eq!(
            store.read_committed().await.unwrap(),
            Some(entry(6, 0).log_id)
        );
        let rest = store.try_get_log_entries(0..=8).await.unwrap();
        assert_eq!(indices(&rest), vec![4, 5, 6, 7, 8]);
        // The next append follows the stored end.
        append_durably(&mut store, vec![entry(9, 0)]).await;
        let all = store.try_get_log_entries(4..).await.unwrap();
        assert_eq!(indices(&all), vec![4, 5, 6, 7, 8, 9]);
    }
}
