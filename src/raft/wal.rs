//! The Raft log on disk: segment files of sequential records (the
//! `raft-log` crate, openraft's author's write-ahead log, as databend-meta
//! uses it), not a B-tree.
//!
//! # Why not redb
//! The log is written at its end, truncated at its end and purged at its
//! start, and read mostly from memory ([`super::log_store`]'s tail). redb
//! gave it B-tree pages: about nine page writes per durable commit where
//! an append-only file writes the new records once, and its commit was
//! about half of the log writer's CPU under load. Measured with the log
//! writer's redb commit replaced by a plain append and `fdatasync` (one
//! run each, same binary, TLS): 1 x 1 616 -> 714 events/s, 16 x 1 2,779 ->
//! 3,246, 8 x 100 37,000 -> 37,960.
//!
//! # What a record holds
//! Entries are stored as the JSON openraft's types serialise to (the bytes
//! the replication budget counts); log ids as three big-endian integers
//! (term, leader node, index); the vote as JSON. Each record carries a
//! checksum (raft-log's), and a record torn by a crash at the end of the
//! last segment is cut off when the log is opened.
//!
//! # Preallocated segments
//! The open segment is allocated to its full size ahead of its records
//! ([`Preallocation`]), so an `fdatasync` does not also commit a new file
//! size through the journal, and a crash's leftovers in that space (zeros,
//! or a record torn at a sector) are cut off when the log is opened
//! ([`open`]).
//!
//! # From redb
//! A data directory written before this format has `raft-log.redb` beside
//! where the segments go. [`open`] copies its vote, committed id, purge
//! point and entries into a new log, makes that durable, moves it into
//! place and only then removes the old file, so a crash at any step leaves
//! one complete log to start from.
use std::cmp::Ordering;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;

use bytes::Bytes;
use raft_log::api::raft_log_writer::RaftLogWriter;
use raft_log::codeq::{Decode, Encode};
use raft_log::{Config, RaftLog, Types};
use redb::{ReadableDatabase, TableDefinition};

use super::TypeConfig;
use crate::limits::{RAFT_ENTRY_JSON_BYTES_MAX, RAFT_LOG_SEGMENT_BYTES, RAFT_MESSAGE_BYTES_MAX};

pub(super) type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub(super) type Vote = openraft::alias::VoteOf<TypeConfig>;
type LeaderId = openraft::alias::CommittedLeaderIdOf<TypeConfig>;

/// The open log; every write goes through one lock holder at a time.
pub(super) type Wal = RaftLog<WalTypes>;

/// raft-log's type configuration for Ironlog's Raft log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct WalTypes;

impl Types for WalTypes {
    type LogId = StoredLogId;
    type LogPayload = StoredEntry;
    type Vote = StoredVote;
    type Callback = Flushed;
    type UserData = ();

    fn log_index(log_id: &StoredLogId) -> u64 {
        log_id.0.index
    }

    fn payload_size(payload: &StoredEntry) -> u64 {
        payload.0.len() as u64
    }
}

/// A Raft log id as stored: term, leader node, index.
///
/// Ordered by index first. raft-log orders ids to check appends, purges
/// and commits and to choose what its cache may evict; openraft, and this
/// store's tail, go by index. Ordered by term first (openraft's own order
/// for log ids), a follower holding a stale suffix of a higher term than
/// the entries that replace it would have its purge past that suffix
/// ignored (the next append then refused), and replacement entries taken
/// as older than the stale ones and evicted before they can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StoredLogId(pub LogId);

impl Ord for StoredLogId {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0.index, self.0.leader_id).cmp(&(other.0.index, other.0.leader_id))
    }
}

impl PartialOrd for StoredLogId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Encode for StoredLogId {
    fn encode<W: Write>(&self, mut w: W) -> io::Result<usize> {
        let mut n = self.0.leader_id.term.encode(&mut w)?;
        n += self.0.leader_id.node_id.encode(&mut w)?;
        n += self.0.index.encode(&mut w)?;
        Ok(n)
    }
}

impl Decode for StoredLogId {
    fn decode<R: Read>(mut r: R) -> io::Result<Self> {
        let term = u64::decode(&mut r)?;
        let node_id = u64::decode(&mut r)?;
        let index = u64::decode(&mut r)?;
        Ok(StoredLogId(LogId::new(LeaderId { term, node_id }, index)))
    }
}

/// One Raft entry's JSON; shared, not copied, between the writer and the
/// crate's cache.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct StoredEntry(pub Bytes);

impl fmt::Debug for StoredEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredEntry({} bytes)", self.0.len())
    }
}

impl Encode for StoredEntry {
    fn encode<W: Write>(&self, mut w: W) -> io::Result<usize> {
        // Refused here rather than written: a record that decoding refuses
        // would make the log impossible to open.
        if self.0.len() > RAFT_MESSAGE_BYTES_MAX {
            return Err(io::Error::other(format!(
                "raft entry of {} bytes exceeds {RAFT_MESSAGE_BYTES_MAX}",
                self.0.len()
            )));
        }
        let len = u32::try_from(self.0.len())
            .map_err(|_| io::Error::other("raft entry too large to store"))?;
        let n = len.encode(&mut w)?;
        w.write_all(&self.0)?;
        Ok(n + self.0.len())
    }
}

impl Decode for StoredEntry {
    fn decode<R: Read>(mut r: R) -> io::Result<Self> {
        let len = u32::decode(&mut r)? as usize;
        // The record's checksum is checked after it is read: a damaged
        // length must not make it allocate gigabytes first.
        if len > RAFT_MESSAGE_BYTES_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("raft log record of {len} bytes exceeds {RAFT_MESSAGE_BYTES_MAX}"),
            ));
        }
        let mut buf = vec![0; len];
        r.read_exact(&mut buf)?;
        Ok(StoredEntry(Bytes::from(buf)))
    }
}

/// The vote, as JSON; ordered as openraft orders votes, which raft-log
/// checks so that a vote never goes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredVote(pub Vote);

impl PartialOrd for StoredVote {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.0.partial_cmp(&other.0)
    }
}

impl Encode for StoredVote {
    fn encode<W: Write>(&self, w: W) -> io::Result<usize> {
        let json = serde_json::to_vec(&self.0).map_err(io::Error::other)?;
        json.encode(w)
    }
}

impl Decode for StoredVote {
    fn decode<R: Read>(r: R) -> io::Result<Self> {
        let json = Vec::<u8>::decode(r)?;
        serde_json::from_slice(&json)
            .map(StoredVote)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

fn config(dir: &Path) -> io::Result<Arc<Config>> {
    config_with_segment(dir, RAFT_LOG_SEGMENT_BYTES)
}

fn config_with_segment(dir: &Path, segment_bytes: usize) -> io::Result<Arc<Config>> {
    let dir = dir
        .to_str()
        .ok_or_else(|| io::Error::other(format!("raft log path {dir:?} is not UTF-8")))?;
    Ok(Arc::new(Config {
        chunk_max_size: Some(segment_bytes),
        // The crate reads the open segment's entries only from its cache,
        // and evicts the smallest ids it takes for flushed first. Room for
        // a whole open segment (it closes after the entry that fills it)
        // and as much again means eviction only ever takes entries of
        // closed segments, which it can read back from their files. The
        // store's own tail is the cache replication reads.
        log_cache_max_items: Some(usize::MAX),
        log_cache_capacity: Some(2 * segment_bytes + RAFT_ENTRY_JSON_BYTES_MAX),
        // Opening reads every segment once, sequentially.
        read_buffer_size: Some(1024 * 1024),
        ..Config::new(dir)
    }))
}

/// Opens the log in directory `dir`, first importing `raft-log.redb` from
/// beside it if an older version left one there.
pub(super) fn open(dir: &Path) -> io::Result<Wal> {
    open_with_segment(dir, RAFT_LOG_SEGMENT_BYTES)
}

fn open_with_segment(dir: &Path, segment_bytes: usize) -> io::Result<Wal> {
    let legacy = legacy_path(dir);
    if legacy.exists() {
        import_legacy(&legacy, dir)?;
    }
    std::fs::create_dir_all(dir)?;
    set_aside_unfinished_segment(dir)?;
    let config = config_with_segment(dir, segment_bytes)?;
    let mut repairs = 0;
    loop {
        match RaftLog::open(config.clone()) {
            Ok(wal) => return Ok(wal),
            // What a crash can leave in preallocated segments that the
            // crate refuses: a gap hidden behind a segment's zeros (the crate
            // cuts them off, durably, as it opens the segment, and only then
            // sees the gap), or a record torn at a sector with zeros after
            // it. Each repair removes one, so a few attempts cover them all.
            Err(e) if e.kind() == io::ErrorKind::InvalidData && repairs < OPEN_REPAIRS_MAX => {
                repairs += 1;
                if !(set_aside_unfinished_segment(dir)? || cut_torn_record_near_end(dir)?) {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Repairs [`open_with_segment`] tries before it reports the error.
const OPEN_REPAIRS_MAX: usize = 4;

/// Bytes a disk writes at once: a write a crash interrupts reaches it in
/// whole units of this (or of file system blocks, a multiple of it).
const SECTOR_BYTES: u64 = 512;

/// The segment files in `dir` with their offsets, oldest first.
fn segment_files(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(offset) = entry.file_name().to_str().and_then(segment_offset) {
            segments.push((offset, entry.path()));
        }
    }
    segments.sort();
    Ok(segments)
}

/// Cuts a torn last record off the newest segment, or the one before it
/// (where the newest then holds nothing acknowledged: see
/// [`set_aside_unfinished_segment`]). Returns whether it cut one.
fn cut_torn_record_near_end(dir: &Path) -> io::Result<bool> {
    for (_, path) in segment_files(dir)?.iter().rev().take(2) {
        if cut_torn_record(path)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Cuts the segment at `path` before its first record that does not
/// decode, if that record was torn by a crash in preallocated space.
///
/// A write a crash interrupts reaches the disk in whole sectors, and
/// preallocated space never written reads as zeros, so a torn record has a
/// written start and zeros from a sector boundary on. The crate cuts off a
/// record that is zeros from its first byte, or that the file ends within,
/// but refuses this one as damaged. It is torn if its own bytes (its
/// fields, read up to its checksum) say it reaches past the sector holding
/// the file's last non-zero byte, and the written bytes from its start on
/// are no more than one record's worth with no whole record among them. A
/// record damaged in place ends within the written bytes, or is followed
/// by records that still decode, and is left for the crate to refuse:
/// cutting it could drop an acknowledged entry. (A damaged last record
/// could still pass for torn if its changed bytes make it claim to reach
/// into the zeros: the crate's own cut of a record the file ends within
/// takes the same chance.)
fn cut_torn_record(path: &Path) -> io::Result<bool> {
    let bytes = std::fs::read(path)?;
    let Some(last_written) = bytes.iter().rposition(|&b| b != 0) else {
        return Ok(false);
    };
    let written_end = (last_written as u64 + 1).next_multiple_of(SECTOR_BYTES);
    let mut start = 0;
    // From past the last written byte on, all is zeros: the crate's to cut.
    while start <= last_written {
        let mut rest = &bytes[start..];
        let decoded = raft_log::WALRecord::<WalTypes>::decode(&mut rest);
        let end = bytes.len() - rest.len();
        if decoded.is_ok() {
            start = end;
            continue;
        }
        if end as u64 <= written_end {
            return Ok(false);
        }
        // What was written after a torn record's start is that record's
        // own prefix: more than one record's worth, or a whole record
        // decoding anywhere in it, means damage in place (a changed length
        // field also reads as a record reaching into the zeros), not a tear.
        let written = &bytes[start..written_end.min(bytes.len() as u64) as usize];
        if written.len() > RAFT_MESSAGE_BYTES_MAX || holds_a_record(&written[1..]) {
            return Ok(false);
        }
        tracing::warn!(
            segment = %path.display(),
            offset = start,
            "raft log: cutting off a record a crash left torn (nothing in it was acknowledged)"
        );
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        file.set_len(start as u64)?;
        file.sync_all()?;
        return Ok(true);
    }
    Ok(false)
}

/// The offset a segment file's name gives (`r-<offset with _>.wal`).
fn segment_offset(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("r-")?.strip_suffix(".wal")?;
    digits.replace('_', "").parse().ok()
}

/// Sets aside the newest segment when a crash left the one before it
/// unfinished.
///
/// When a segment fills, raft-log creates the next one before its flush
/// thread has written the old one's last records. A crash in between leaves
/// the old segment ending short of where the new one starts, and the crate
/// then refuses to open the log ("gap between chunks"), or panics on an
/// empty newest file. Nothing after that point was acknowledged: a flush
/// completes only once every earlier segment is written and synced. So the
/// newest segment is renamed out of the log's way (kept for inspection),
/// and the crate cuts the torn end of the one before it as usual. A newest
/// segment with no record at all (empty, or only its preallocated zeros:
/// see [`Preallocation`]) is set aside too. A gap anywhere else is damage,
/// not a crash, and stays an error. Returns whether it set one aside.
fn set_aside_unfinished_segment(dir: &Path) -> io::Result<bool> {
    let segments = segment_files(dir)?;
    // A log's first segment, created and allocated before its first record
    // was synced (a fresh node loses power), can hold nothing: the crate
    // would cut it to nothing and panic on every start. Nothing in it was
    // acknowledged: any flush syncs its first record.
    if let [(_, only)] = &segments[..] {
        if std::fs::metadata(only)?.len() == 0 || only_zeros(only)? {
            set_aside(only, "the log's only segment holds no record")?;
            return Ok(true);
        }
        return Ok(false);
    }
    let [.., (prev_offset, prev_path), (last_offset, last_path)] = &segments[..] else {
        return Ok(false);
    };
    let (prev_len, last_len) = (
        std::fs::metadata(prev_path)?.len(),
        std::fs::metadata(last_path)?.len(),
    );
    if prev_offset + prev_len < *last_offset {
        set_aside(
            last_path,
            "a crash left the segment before this one unfinished",
        )?;
        return Ok(true);
    }
    if last_len == 0 || only_zeros(last_path)? {
        set_aside(last_path, "the newest segment holds no record")?;
        return Ok(true);
    }
    Ok(false)
}

/// Renames the segment at `path` out of the log's way, kept for
/// inspection as `*.wal.unfinished` (numbered if one is there already).
fn set_aside(path: &Path, why: &str) -> io::Result<()> {
    let mut aside = path.with_extension("wal.unfinished");
    let mut n = 1;
    while aside.exists() {
        aside = path.with_extension(format!("wal.unfinished.{n}"));
        n += 1;
    }
    tracing::warn!(
        segment = %path.display(),
        "raft log: {why}; setting it aside (nothing in it was acknowledged)"
    );
    std::fs::rename(path, &aside)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

/// Whether a whole record (checksum and all) decodes at any offset in
/// `bytes`.
fn holds_a_record(bytes: &[u8]) -> bool {
    (0..bytes.len()).any(|at| {
        let mut rest = &bytes[at..];
        raft_log::WALRecord::<WalTypes>::decode(&mut rest).is_ok()
    })
}

/// Whether the file at `path` holds nothing but zero bytes (or nothing).
fn only_zeros(path: &Path) -> io::Result<bool> {
    let mut file = std::fs::File::open(path)?;
    let mut block = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut block)?;
        if n == 0 {
            return Ok(true);
        }
        if block[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

/// Keeps the open segment's file allocated to its full size ahead of the
/// writes that fill it.
///
/// # Why
/// An `fdatasync` after a write that grows a file must also commit the new
/// size through the file system's journal. Measured here on ext4 (a
/// 350-byte write and `fdatasync`, 2,000 times): growing the file, 3
/// device writes per sync, 185-195 µs and 70-77 µs of CPU; into allocated
/// space, 2 writes, 125-135 µs and 45-49 µs. Each Raft entry costs every
/// node one such sync. etcd preallocates its WAL segments for this reason.
///
/// # How
/// raft-log creates each segment empty and writes it from the start, so
/// the writer allocates the new one with `fallocate` as soon as it sees it
/// (the file then reads as zeros past what was written). At shutdown the
/// open one is cut back to its records ([`Preallocation::release`]). After a crash, the crate
/// takes a zero tail for the unwritten end it is (ext4 in writeback mode
/// leaves the same) and cuts it off as it opens the segment, with a
/// warning. Any failure here (a full disk, a file system without
/// `fallocate`) is logged, never returned: the log is as correct without
/// preallocation, only slower.
#[derive(Debug, Default)]
pub(super) struct Preallocation {
    /// The segment last allocated ahead, by its offset.
    open: Option<u64>,
    /// Bytes to allocate a segment to.
    segment_bytes: u64,
}

impl Preallocation {
    pub(super) fn new() -> Self {
        Self::with_segment(RAFT_LOG_SEGMENT_BYTES)
    }

    fn with_segment(segment_bytes: usize) -> Self {
        Self {
            open: None,
            segment_bytes: segment_bytes as u64,
        }
    }

    /// After appends: if raft-log has opened a segment since the last call,
    /// allocates it. (A segment closes once its records reach the
    /// allocation, so a closed one has no allocated space left over.)
    pub(super) fn follow(&mut self, wal: &Wal) {
        let stat = wal.stat();
        let open = stat.open_chunk.chunk_id;
        if self.open == Some(open.0) {
            return;
        }
        self.open = Some(open.0);
        let path = wal.config().chunk_path(open);
        let allocated = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|file| {
                rustix::fs::fallocate(
                    &file,
                    rustix::fs::FallocateFlags::empty(),
                    0,
                    self.segment_bytes,
                )
                .map_err(io::Error::from)
            });
        if let Err(e) = allocated {
            tracing::warn!(segment = %path, error = %e, "raft log: could not preallocate the open segment; appends grow it instead");
        }
    }

    /// Cuts the open segment back to its records, once the crate's flush
    /// thread has written everything queued: at shutdown, so the next start
    /// finds no zero tail to cut off. Appends after this grow it.
    pub(super) fn release(&mut self, wal: &Wal) {
        wal.wait_worker_idle();
        let stat = wal.stat();
        trim(wal, stat.open_chunk.chunk_id, stat.open_chunk.size);
    }
}

/// Cuts the segment `id` back to `size` bytes if it is longer (never
/// longer: where its last records are not written yet, they will be, and a
/// hole in their place would read as a torn record after a crash).
fn trim(wal: &Wal, id: raft_log::ChunkId, size: u64) {
    let path = wal.config().chunk_path(id);
    let trimmed = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|file| {
            if file.metadata()?.len() > size {
                file.set_len(size)?;
                file.sync_all()?;
            }
            Ok(())
        });
    if let Err(e) = trimmed {
        tracing::warn!(segment = %path, error = %e, "raft log: could not cut a segment back to its records");
    }
}

/// What the crate's flush thread does once a flush is durable (or failed).
pub(super) enum Flushed {
    /// Answers on a channel, for a caller that waits.
    Channel(SyncSender<io::Result<()>>),
    /// Runs on the flush thread itself: the store's writer hands its
    /// writes over this way, so their callbacks fire without a thread
    /// hand-off back to the writer, which meanwhile queues the next batch.
    Run(Box<dyn FnOnce(io::Result<()>) + Send>),
}

impl raft_log::Callback for Flushed {
    fn send(self, res: io::Result<()>) {
        match self {
            // The caller may have stopped waiting; the flush stands.
            Flushed::Channel(tx) => {
                let _ = SyncSender::send(&tx, res);
            }
            Flushed::Run(then) => then(res),
        }
    }
}

/// Makes everything written so far durable and waits for it.
pub(super) fn flush(wal: &mut Wal) -> io::Result<std::sync::mpsc::Receiver<io::Result<()>>> {
    let (tx, rx) = sync_channel(1);
    wal.flush(Some(Flushed::Channel(tx)))?;
    Ok(rx)
}

/// Makes everything written so far durable, then runs `then` with the
/// outcome on the crate's flush thread; does not wait.
pub(super) fn flush_then(
    wal: &mut Wal,
    then: impl FnOnce(io::Result<()>) + Send + 'static,
) -> io::Result<()> {
    wal.flush(Some(Flushed::Run(Box::new(then))))
}

/// Waits for a flush started with [`flush`].
pub(super) fn wait(done: &std::sync::mpsc::Receiver<io::Result<()>>) -> io::Result<()> {
    done.recv()
        .map_err(|_| io::Error::other("raft log flush worker stopped"))?
}

fn legacy_path(dir: &Path) -> PathBuf {
    dir.with_extension("redb")
}

const LEGACY_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const LEGACY_META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

fn legacy_meta<T: serde::de::DeserializeOwned>(
    table: &redb::ReadOnlyTable<&str, &[u8]>,
    key: &str,
) -> io::Result<Option<T>> {
    match table.get(key).map_err(io::Error::other)? {
        None => Ok(None),
        Some(v) => serde_json::from_slice(v.value())
            .map(Some)
            .map_err(io::Error::other),
    }
}

/// Copies the redb log at `legacy` into a new log at `dir`.
fn import_legacy(legacy: &Path, dir: &Path) -> io::Result<()> {
    let staging = dir.with_extension("importing");
    if staging.exists() {
        // A crash during an earlier import: the redb file is still whole.
        std::fs::remove_dir_all(&staging)?;
    }
    if dir.exists() {
        // A crash after the move but before the old file was removed: the
        // log in `dir` is the complete copy.
        return std::fs::remove_file(legacy);
    }
    std::fs::create_dir_all(&staging)?;
    {
        let db = redb::Database::open(legacy).map_err(io::Error::other)?;
        let txn = db.begin_read().map_err(io::Error::other)?;
        let meta = txn.open_table(LEGACY_META).map_err(io::Error::other)?;
        let log = txn.open_table(LEGACY_LOG).map_err(io::Error::other)?;
        let mut wal = RaftLog::<WalTypes>::open(config(&staging)?)?;
        if let Some(vote) = legacy_meta::<Vote>(&meta, "vote")? {
            wal.save_vote(StoredVote(vote))?;
        }
        if let Some(purged) = legacy_meta::<Option<LogId>>(&meta, "last_purged")?.flatten() {
            wal.purge(StoredLogId(purged))?;
        }
        for row in log.range::<u64>(..).map_err(io::Error::other)? {
            let (_, v) = row.map_err(io::Error::other)?;
            let entry: openraft::alias::EntryOf<TypeConfig> =
                serde_json::from_slice(v.value()).map_err(io::Error::other)?;
            wal.append([(
                StoredLogId(entry.log_id),
                StoredEntry(Bytes::copy_from_slice(v.value())),
            )])?;
        }
        if let Some(committed) = legacy_meta::<Option<LogId>>(&meta, "committed")?.flatten() {
            wal.commit(StoredLogId(committed))?;
        }
        wait(&flush(&mut wal)?)?;
    }
    // The segment files' names are durable before the move names them.
    std::fs::File::open(&staging)?.sync_all()?;
    std::fs::rename(&staging, dir)?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    tracing::info!(from = %legacy.display(), to = %dir.display(), "raft log moved from redb to segment files");
    std::fs::remove_file(legacy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::log_store::tests::entry_at;
    use openraft::vote::RaftLeaderIdExt;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(LeaderId::new_committed(term, 1), index)
    }

    fn entry_json(term: u64, index: u64) -> Vec<u8> {
        serde_json::to_vec(&entry_at(term, index, 0)).unwrap()
    }

    /// Cuts `bytes` off the end of `file`, as a crash before its last
    /// write reached the disk would.
    fn cut(file: &Path, bytes: u64) {
        let len = std::fs::metadata(file).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(file)
            .unwrap()
            .set_len(len - bytes)
            .unwrap();
    }

    fn append(wal: &mut Wal, term: u64, indices: std::ops::RangeInclusive<u64>) {
        for index in indices {
            wal.append([(
                StoredLogId(log_id(term, index)),
                StoredEntry(Bytes::from(entry_json(term, index))),
            )])
            .unwrap();
        }
    }

    /// Opens `dir` with small segments, waiting for an earlier log's flush
    /// thread (which holds the directory until its queue closes).
    fn reopen(dir: &Path, segment_bytes: usize) -> Wal {
        for _ in 0..100 {
            match open_with_segment(dir, segment_bytes) {
                Ok(wal) => return wal,
                Err(e) if e.to_string().contains("already locked") => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("reopen: {e}"),
            }
        }
        panic!("the log did not reopen");
    }

    fn segments(dir: &Path) -> Vec<(u64, PathBuf)> {
        segment_files(dir).unwrap()
    }

    /// Where raft-log names the segment starting at `offset` in `dir`.
    fn segment_path(dir: &Path, offset: u64) -> PathBuf {
        let config = config_with_segment(dir, 4096).unwrap();
        PathBuf::from(config.chunk_path(raft_log::ChunkId(offset)))
    }

    fn ids_and_terms(wal: &Wal) -> Vec<(u64, u64)> {
        read_all(wal)
            .into_iter()
            .map(|(id, _)| (id.index, id.leader_id.term))
            .collect()
    }

    /// A follower's stale suffix of a higher term is replaced by entries of
    /// a lower one (a new leader that never had it), across a segment
    /// boundary; and a snapshot past the end of such a suffix is installed.
    /// Both go by index, as openraft does.
    #[test]
    fn replacement_entries_of_a_lower_term_are_kept_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft-log");
        let segment = 2048;
        let expected: Vec<(u64, u64)> = (1..=10)
            .map(|i| (i, 1))
            .chain((11..=14).map(|i| (i, 2)))
            .collect();
        {
            let mut wal = open_with_segment(&path, segment).unwrap();
            append(&mut wal, 1, 1..=10);
            append(&mut wal, 3, 11..=20);
            wait(&flush(&mut wal).unwrap()).unwrap();
            assert!(segments(&path).len() >= 3, "entries span segments");
            // The term-3 suffix was never committed: the leader of term 4
            // holds term-2 entries there.
            wal.truncate(11).unwrap();
            append(&mut wal, 2, 11..=14);
            wait(&flush(&mut wal).unwrap()).unwrap();
            assert_eq!(ids_and_terms(&wal), expected);
        }
        let mut wal = reopen(&path, segment);
        assert_eq!(ids_and_terms(&wal), expected, "after a restart");
        // A stale higher-term entry at the end, then a snapshot past it.
        append(&mut wal, 5, 15..=15);
        wal.purge(StoredLogId(log_id(4, 40))).unwrap();
        assert_eq!(wal.log_state().last().map(|id| id.0), Some(log_id(4, 40)));
        append(&mut wal, 4, 41..=42);
        wait(&flush(&mut wal).unwrap()).unwrap();
        assert_eq!(ids_and_terms(&wal), vec![(41, 4), (42, 4)]);
    }

    /// A crash after raft-log opened a new segment but before its flush
    /// thread wrote the old one's last records: the log opens with what the
    /// old segment holds, and the newest is set aside, not deleted.
    #[test]
    fn a_segment_left_unfinished_by_a_crash_is_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft-log");
        let segment = 2048;
        {
            let mut wal = open_with_segment(&path, segment).unwrap();
            append(&mut wal, 1, 1..=20);
            wait(&flush(&mut wal).unwrap()).unwrap();
        }
        let files = segments(&path);
        assert!(files.len() >= 3, "entries span segments");
        cut(&files[files.len() - 2].1, 10);
        let wal = reopen(&path, segment);
        let read = ids_and_terms(&wal);
        assert!(!read.is_empty());
        assert_eq!(
            read,
            (1..=read.len() as u64).map(|i| (i, 1)).collect::<Vec<_>>(),
            "a prefix of the log"
        );
        assert!(
            read.len() < 20,
            "the torn record and what followed are gone"
        );
        let (_, newest) = &files[files.len() - 1];
        assert!(!newest.exists());
        assert!(newest.with_extension("wal.unfinished").exists());
        drop(wal);
        // An empty newest segment (created, nothing written) is set aside
        // too, where the crate would panic on it.
        let next = segments(&path).last().unwrap().0 + 1_000_000;
        let empty = segment_path(&path, next);
        std::fs::write(&empty, b"").unwrap();
        assert!(segment_offset(empty.file_name().unwrap().to_str().unwrap()).is_some());
        let wal = reopen(&path, segment);
        assert_eq!(ids_and_terms(&wal), read);
        assert!(!empty.exists());
    }

    fn len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    /// Appends one entry at a time, flushed, with the writer's
    /// preallocation following each: as the store's writer does.
    fn append_preallocated(
        wal: &mut Wal,
        preallocation: &mut Preallocation,
        indices: std::ops::RangeInclusive<u64>,
    ) {
        for index in indices {
            append(wal, 1, index..=index);
            wait(&flush(wal).unwrap()).unwrap();
            preallocation.follow(wal);
        }
    }

    /// The open segment is allocated to full size ahead of its records, a
    /// closed one ends at its last record, and at release the open one is
    /// cut back too; every entry reads back after a reopen either way.
    #[test]
    fn segments_are_preallocated_and_cut_back_to_their_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft-log");
        let segment = 4096;
        let mut wal = open_with_segment(&path, segment).unwrap();
        let mut preallocation = Preallocation::with_segment(segment);
        preallocation.follow(&wal);
        append_preallocated(&mut wal, &mut preallocation, 1..=30);
        let stat = wal.stat();
        assert!(!stat.closed_chunks.is_empty(), "entries span segments");
        for closed in &stat.closed_chunks {
            let file = wal.config().chunk_path(closed.chunk_id);
            assert_eq!(len(Path::new(&file)), closed.size, "{file}");
        }
        let open = wal.config().chunk_path(stat.open_chunk.chunk_id);
        assert!(stat.open_chunk.size < segment as u64);
        assert_eq!(len(Path::new(&open)), segment as u64, "allocated ahead");
        preallocation.release(&wal);
        assert_eq!(len(Path::new(&open)), stat.open_chunk.size, "cut back");
        // Appends after the release grow the segment, as without it.
        append_preallocated(&mut wal, &mut preallocation, 31..=31);
        drop(wal);
        let wal = reopen(&path, segment);
        assert_eq!(
            ids_and_terms(&wal),
            (1..=31).map(|i| (i, 1)).collect::<Vec<_>>()
        );
    }

    /// Writes entries 1..=30 through a preallocating writer that never
    /// releases (a crash), leaving three segments: two closed, one open
    /// and allocated ahead.
    fn crashed_preallocated_log(path: &Path, segment: usize) {
        let mut wal = open_with_segment(path, segment).unwrap();
        let mut preallocation = Preallocation::with_segment(segment);
        append_preallocated(&mut wal, &mut preallocation, 1..=30);
        // The crate's flush thread holds the directory until it is idle.
        wal.wait_worker_idle();
    }

    fn prefix(n: u64) -> Vec<(u64, u64)> {
        (1..=n).map(|i| (i, 1)).collect()
    }

    /// Zeros the file from `from` to its end, keeping its length: what a
    /// crash leaves of writes into preallocated space that never landed.
    fn zero_from(file: &Path, from: u64) {
        let len = len(file);
        let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
        f.set_len(from).unwrap();
        f.set_len(len).unwrap();
    }

    fn last_written(file: &Path) -> u64 {
        std::fs::read(file)
            .unwrap()
            .iter()
            .rposition(|&b| b != 0)
            .unwrap() as u64
    }

    /// A crash leaves the open segment allocated ahead: the crate cuts its
    /// zeros off, and a newest segment of zeros alone is set aside.
    #[test]
    fn preallocated_zeros_left_by_a_crash_are_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft-log");
        let segment = 4096;
        crashed_preallocated_log(&path, segment);
        let newest = segments(&path).last().unwrap().1.clone();
        assert_eq!(len(&newest), segment as u64, "left preallocated");
        let mut wal = reopen(&path, segment);
        assert_eq!(ids_and_terms(&wal), prefix(30), "the zero tail is cut off");
        append(&mut wal, 1, 31..=31);
        wait(&flush(&mut wal).unwrap()).unwrap();
        wal.wait_worker_idle();
        drop(wal);
        // Named where the newest segment's records end: no gap, only zeros.
        let (last, last_path) = segments(&path).last().unwrap().clone();
        let next = last + len(&last_path);
        let zeros = segment_path(&path, next);
        std::fs::write(&zeros, vec![0u8; segment]).unwrap();
        let wal = reopen(&path, segment);
        assert_eq!(ids_and_terms(&wal), prefix(31));
        assert!(!zeros.exists());
        assert!(zeros.with_extension("wal.unfinished").exists());
    }

    /// A new log's first segment, allocated before its first record was
    /// synced, can be all zeros after a power cut: set aside, and the log
    /// opens empty (the crate alone would panic, at every start).
    #[test]
    fn a_first_segment_of_zeros_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft-log");
        std::fs::create_dir_all(&path).unwrap();
        let first = segment_path(&path, 0);
        std::fs::write(&first, vec![0u8; 4096]).unwrap();
        let wal = reopen(&path, 4096);
        assert!(ids_and_terms(&wal).is_empty());
        assert!(first.with_extension("wal.unfinished").exists());
    }

    /// Records torn at a sector, with zeros after them, are cut off: in
    /// the open segment, and in the one before it, where the gap that
    /// leaves behind then sets the newest aside.
    #[test]
    fn records_torn_in_preallocated_space_are_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft-log");
        let segment = 4096;
        crashed_preallocated_log(&path, segment);
        let files = segments(&path);
        let newest = files[files.len() - 1].1.clone();
        let sector = last_written(&newest) / SECTOR_BYTES * SECTOR_BYTES;
        assert!(sector > 0);
        zero_from(&newest, sector);
        let wal = reopen(&path, segment);
        let read = ids_and_terms(&wal);
        assert!(read.len() < 30 && read.len() >= 25, "{}", read.len());
        assert_eq!(read, prefix(read.len() as u64));
        wal.wait_worker_idle();
        drop(wal);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft-log");
        crashed_preallocated_log(&path, segment);
        let files = segments(&path);
        let (prev, newest) = (
            files[files.len() - 2].1.clone(),
            files[files.len() - 1].1.clone(),
        );
        let prev_len = len(&prev);
        // The closed segment's end never landed, and reads as zeros to
        // where the segment was allocated.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&prev)
            .unwrap()
            .set_len(segment as u64 * 2)
            .unwrap();
        zero_from(&prev, (prev_len - 1) / SECTOR_BYTES * SECTOR_BYTES);
        let wal = reopen(&path, segment);
        let read = ids_and_terms(&wal);
        // The torn record and everything after it are gone, the newest
        // segment's entries (the last five or more, of 30) with them.
        assert!(read.len() < 25, "{}", read.len());
        assert_eq!(read, prefix(read.len() as u64));
        assert!(newest.with_extension("wal.unfinished").exists());
    }

    /// A whole record damaged in place (a changed byte, zeros after it) is
    /// not a tear: the log refuses to open and the file is left as it was.
    #[test]
    fn a_damaged_last_record_is_refused_not_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft-log");
        let segment = 4096;
        crashed_preallocated_log(&path, segment);
        let newest = segments(&path).last().unwrap().1.clone();
        let mut bytes = std::fs::read(&newest).unwrap();
        let inside = last_written(&newest) as usize - 20;
        bytes[inside] ^= 0x40;
        std::fs::write(&newest, &bytes).unwrap();
        let e = open_with_segment(&path, segment).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert!(e.to_string().contains("checksum"), "{e}");
        assert_eq!(std::fs::read(&newest).unwrap(), bytes, "left as it was");
        bytes[inside] ^= 0x40;

        // A changed length makes an earlier record claim to reach into the
        // zeros, as a torn one would; the records after it still decode.
        let mut starts = vec![0];
        loop {
            let at = *starts.last().unwrap();
            let mut rest = &bytes[at..];
            if raft_log::WALRecord::<WalTypes>::decode(&mut rest).is_err() {
                break;
            }
            starts.push(bytes.len() - rest.len());
        }
        let appends: Vec<usize> = starts
            .iter()
            .copied()
            .filter(|&at| bytes[at + 3] == 1)
            .collect();
        assert!(appends.len() >= 3, "{starts:?}");
        let damaged = appends[appends.len() - 3];
        // Tag (4) and log id (24), then the entry's length: now reaching
        // into the zeros but not past the file's end (a record the file
        // ends within is the crate's own to cut).
        let claimed = (bytes.len() - damaged - 32 - 8 - 64) as u32;
        bytes[damaged + 28..damaged + 32].copy_from_slice(&claimed.to_be_bytes());
        std::fs::write(&newest, &bytes).unwrap();
        assert!(open_with_segment(&path, segment).is_err());
        assert_eq!(std::fs::read(&newest).unwrap(), bytes, "left as it was");
    }

    fn read_all(wal: &Wal) -> Vec<(LogId, Vec<u8>)> {
        wal.read(0, u64::MAX)
            .map(|row| row.map(|(id, stored)| (id.0, stored.0.to_vec())))
            .collect::<io::Result<_>>()
            .unwrap()
    }

    #[test]
    fn ids_entries_and_votes_survive_their_encoding() {
        let id = log_id(7, 123_456);
        let bytes = StoredLogId(id).encode_to_vec().unwrap();
        assert_eq!(bytes.len(), 24);
        assert_eq!(StoredLogId::decode(&bytes[..]).unwrap().0, id);
        let vote = Vote::new_committed(9, 3);
        let bytes = StoredVote(vote).encode_to_vec().unwrap();
        assert_eq!(StoredVote::decode(&bytes[..]).unwrap().0, vote);
        let json = entry_json(1, 1);
        let bytes = StoredEntry(Bytes::from(json.clone()))
            .encode_to_vec()
            .unwrap();
        assert_eq!(StoredEntry::decode(&bytes[..]).unwrap().0, json);
        // A damaged length is refused before anything is allocated for it.
        let mut damaged = bytes.clone();
        damaged[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        let err = StoredEntry::decode(&damaged[..]).unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
    }

    /// A data directory from before the segment files: its redb log is
    /// imported whole (vote, purge point, entries, committed id), and the
    /// redb file is gone afterwards.
    #[test]
    fn a_redb_log_from_an_older_version_is_imported() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("raft-log");
        let vote = Vote::new_committed(2, 3);
        {
            let db = redb::Database::create(legacy_path(&target)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn.open_table(LEGACY_META).unwrap();
                meta.insert("vote", serde_json::to_vec(&vote).unwrap().as_slice())
                    .unwrap();
                let purged = serde_json::to_vec(&Some(log_id(1, 3))).unwrap();
                meta.insert("last_purged", purged.as_slice()).unwrap();
                let committed = serde_json::to_vec(&Some(log_id(2, 5))).unwrap();
                meta.insert("committed", committed.as_slice()).unwrap();
                let mut log = txn.open_table(LEGACY_LOG).unwrap();
                for (term, index) in [(1, 4), (2, 5), (2, 6)] {
                    log.insert(index, entry_json(term, index).as_slice())
                        .unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let wal = open(&target).unwrap();
        let state = wal.log_state();
        assert_eq!(state.vote().map(|v| v.0), Some(vote));
        assert_eq!(state.purged().map(|id| id.0), Some(log_id(1, 3)));
        assert_eq!(state.committed().map(|id| id.0), Some(log_id(2, 5)));
        assert_eq!(state.last().map(|id| id.0), Some(log_id(2, 6)));
        let rows = read_all(&wal);
        assert_eq!(
            rows.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![log_id(1, 4), log_id(2, 5), log_id(2, 6)]
        );
        assert_eq!(rows[1].1, entry_json(2, 5), "bytes kept as stored");
        assert!(!legacy_path(&target).exists(), "the redb file is removed");
        assert!(!target.with_extension("importing").exists());
    }

    /// A crash in the middle of writing the last record: the log opens with
    /// every record before it.
    #[test]
    fn a_record_torn_by_a_crash_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("raft-log");
        {
            let mut wal = open(&target).unwrap();
            append(&mut wal, 1, 1..=3);
            wait(&flush(&mut wal).unwrap()).unwrap();
        }
        let files = segments(&target);
        assert_eq!(files.len(), 1, "one segment");
        cut(&files[0].1, 10);
        let wal = reopen(&target, RAFT_LOG_SEGMENT_BYTES);
        let ids: Vec<LogId> = read_all(&wal).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec![log_id(1, 1), log_id(1, 2)]);
    }
}
