//! The Raft log on redb (`raft-log.redb`), with group commit.
//!
//! # Durability
//! `append` writes entries in a non-durable redb commit, so they are readable
//! as soon as it returns (openraft requires that), and hands the flush
//! callback to one flusher thread. The flusher takes every callback waiting,
//! makes all earlier commits durable with one `Immediate` commit, then fires
//! them: many appends share one fsync, and none is acknowledged before it.
//! Votes, truncations and purges are durable before they return.
//!
//! The committed id is written non-durably, and made durable by the next
//! group commit: openraft reads it back only as a starting point (a node
//! that restarts with an older one, or none, takes the state machine's
//! applied id and re-learns the rest from the leader), and every entry it
//! names is already durable in a majority's logs. A durable write here cost
//! one fsync per commit on every node, inside the Raft core, before the
//! apply that answers the client.
//!
//! # Replication batches
//! Replication reads through `limited_get_log_entries`, which stops at
//! [`RAFT_APPEND_BYTES_MAX`] of stored JSON (the bytes the wire carries) but
//! always returns the first entry: a payload of several entries never
//! outgrows the gRPC message limit, and an oversized one goes alone.
//!
//! # Invariants
//! The stored log has no holes: entries are a contiguous index range after
//! the last purged id.
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{mpsc, Arc};

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};

use super::TypeConfig;
use crate::limits::RAFT_APPEND_BYTES_MAX;

type LogId = openraft::alias::LogIdOf<TypeConfig>;
type Vote = openraft::alias::VoteOf<TypeConfig>;
type Entry = openraft::alias::EntryOf<TypeConfig>;

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "last_purged";
const KEY_FLUSH: &str = "flush_seq";

/// The redb-backed Raft log store; cheap to clone (all clones share one file).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// Flush callbacks waiting for the next group commit.
    flusher: mpsc::Sender<IOFlushed<TypeConfig>>,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl LogStore {
    /// Opens or creates the log at `path` and starts its flusher thread, which
    /// ends when the last clone of the store is dropped.
    pub fn open(path: &Path) -> io::Result<Self> {
        let db = Arc::new(Database::create(path).map_err(io_err)?);
        let txn = db.begin_write().map_err(io_err)?;
        txn.open_table(LOG).map_err(io_err)?;
        txn.open_table(META).map_err(io_err)?;
        txn.commit().map_err(io_err)?;
        let (tx, rx) = mpsc::channel::<IOFlushed<TypeConfig>>();
        let flush_db = db.clone();
        std::thread::Builder::new()
            .name("raft-log-flusher".into())
            .spawn(move || flush_loop(&flush_db, &rx))?;
        Ok(Self { db, flusher: tx })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(io_err)?
    }

    fn read_meta<T: DeserializeOwned>(db: &Database, key: &str) -> io::Result<Option<T>> {
        let txn = db.begin_read().map_err(io_err)?;
        let table = txn.open_table(META).map_err(io_err)?;
        match table.get(key).map_err(io_err)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(v.value()).map(Some).map_err(io_err),
        }
    }

    /// Writes `key`, durable before it returns unless `durability` says
    /// otherwise.
    fn write_meta<T: Serialize>(
        db: &Database,
        key: &str,
        value: &T,
        durability: Durability,
    ) -> io::Result<()> {
        let bytes = serde_json::to_vec(value).map_err(io_err)?;
        let mut txn = db.begin_write().map_err(io_err)?;
        txn.set_durability(durability).map_err(io_err)?;
        {
            let mut table = txn.open_table(META).map_err(io_err)?;
            table.insert(key, bytes.as_slice()).map_err(io_err)?;
        }
        txn.commit().map_err(io_err)
    }
}

/// Group commit: one durable commit for every callback that is waiting.
fn flush_loop(db: &Database, rx: &mpsc::Receiver<IOFlushed<TypeConfig>>) {
    let mut seq: u64 = 0;
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        seq += 1;
        let result = (|| -> io::Result<()> {
            let mut txn = db.begin_write().map_err(io_err)?;
            txn.set_durability(Durability::Immediate).map_err(io_err)?;
            {
                // A write, so redb cannot skip the commit as empty.
                let mut table = txn.open_table(META).map_err(io_err)?;
                table
                    .insert(KEY_FLUSH, seq.to_be_bytes().as_slice())
                    .map_err(io_err)?;
            }
            txn.commit().map_err(io_err)
        })();
        for cb in waiting {
            cb.io_completed(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            });
        }
    }
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

/// Entries `start..end`, stopping before their stored JSON (plus a comma
/// each, as in a JSON array) would pass `budget_bytes`, but never before the
/// first: openraft requires a non-empty answer for a non-empty range.
fn read_entries(
    db: &Database,
    start: u64,
    end: u64,
    budget_bytes: usize,
) -> io::Result<Vec<Entry>> {
    if start >= end {
        return Ok(Vec::new());
    }
    let txn = db.begin_read().map_err(io_err)?;
    let table = txn.open_table(LOG).map_err(io_err)?;
    let mut out = Vec::new();
    let mut used_bytes: usize = 0;
    for row in table.range(start..end).map_err(io_err)? {
        let (_, v) = row.map_err(io_err)?;
        let bytes = v.value().len() + 1;
        if !out.is_empty() && used_bytes.saturating_add(bytes) > budget_bytes {
            break;
        }
        used_bytes = used_bytes.saturating_add(bytes);
        out.push(serde_json::from_slice::<Entry>(v.value()).map_err(io_err)?);
    }
    Ok(out)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = bound_start(range.start_bound());
        let end = bound_end(range.end_bound()).unwrap_or(u64::MAX);
        self.blocking(move |db| read_entries(db, start, end, usize::MAX))
            .await
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
        self.blocking(move |db| read_entries(db, start, end, RAFT_APPEND_BYTES_MAX))
            .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.blocking(|db| Self::read_meta(db, KEY_VOTE)).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        self.blocking(|db| {
            let last_purged: Option<LogId> = Self::read_meta(db, KEY_PURGED)?;
            let txn = db.begin_read().map_err(io_err)?;
            let table = txn.open_table(LOG).map_err(io_err)?;
            let last = match table.last().map_err(io_err)? {
                Some((_, v)) => Some(
                    serde_json::from_slice::<Entry>(v.value())
                        .map_err(io_err)?
                        .log_id,
                ),
                None => None,
            };
            Ok(LogState {
                last_purged_log_id: last_purged,
                last_log_id: last.or(last_purged),
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let vote = *vote;
        self.blocking(move |db| Self::write_meta(db, KEY_VOTE, &vote, Durability::Immediate))
            .await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.blocking(move |db| Self::write_meta(db, KEY_COMMITTED, &committed, Durability::None))
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        self.blocking(|db| Ok(Self::read_meta::<Option<LogId>>(db, KEY_COMMITTED)?.flatten()))
            .await
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
        let rows = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, serde_json::to_vec(&e).map_err(io_err)?)))
            .collect::<io::Result<Vec<(u64, Vec<u8>)>>>()?;
        self.blocking(move |db| {
            let mut txn = db.begin_write().map_err(io_err)?;
            // Durable at the flusher's next commit; readable now.
            txn.set_durability(Durability::None).map_err(io_err)?;
            {
                let mut table = txn.open_table(LOG).map_err(io_err)?;
                for (index, bytes) in &rows {
                    table.insert(*index, bytes.as_slice()).map_err(io_err)?;
                }
            }
            txn.commit().map_err(io_err)
        })
        .await?;
        self.flusher
            .send(callback)
            .map_err(|_| io::Error::other("raft log flusher stopped"))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index + 1);
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(io_err)?;
            {
                let mut table = txn.open_table(LOG).map_err(io_err)?;
                table.retain_in(from.., |_, _| false).map_err(io_err)?;
            }
            txn.commit().map_err(io_err)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.blocking(move |db| {
            let bytes = serde_json::to_vec(&Some(log_id)).map_err(io_err)?;
            let txn = db.begin_write().map_err(io_err)?;
            {
                // Record the purge point first so the log never looks empty
                // without saying where it ends.
                let mut meta = txn.open_table(META).map_err(io_err)?;
                meta.insert(KEY_PURGED, bytes.as_slice()).map_err(io_err)?;
                let mut table = txn.open_table(LOG).map_err(io_err)?;
                table
                    .retain_in(..=log_id.index, |_, _| false)
                    .map_err(io_err)?;
            }
            txn.commit().map_err(io_err)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::event::{Actor, Event, Outcome};
    use crate::raft::Command;
    use openraft::entry::RaftEntry;
    use openraft::vote::RaftLeaderIdExt;

    /// An entry of one event whose `details` is `quotes` double quotes:
    /// each becomes two bytes of JSON, the worst escaping a valid event has.
    fn entry(index: u64, quotes: usize) -> Entry {
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
        let leader = openraft::alias::LeaderIdOf::<TypeConfig>::new_committed(1, 1);
        Entry::new_normal(
            openraft::LogId::new(leader, index),
            Command::Append {
                events: vec![event],
                commit_time_unix_nanos: 1,
            },
        )
    }

    /// Stores entries as `append` does, without its flush callback.
    fn put(store: &LogStore, entries: &[Entry]) {
        let txn = store.db.begin_write().unwrap();
        {
            let mut table = txn.open_table(LOG).unwrap();
            for e in entries {
                let bytes = serde_json::to_vec(e).unwrap();
                table.insert(e.log_id.index, bytes.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    fn indices(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[tokio::test]
    async fn replication_reads_stay_within_the_byte_budget_and_progress() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(&dir.path().join("raft-log.redb")).unwrap();
        // Ten entries of 600 KB of quotes, 1.2 MB each as JSON: a budget
        // counted before escaping would let twice too many through.
        let quotes = 600 * 1024;
        put(
            &store,
            &(1..=10).map(|i| entry(i, quotes)).collect::<Vec<_>>(),
        );
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
    async fn an_entry_larger_than_the_budget_is_sent_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(&dir.path().join("raft-log.redb")).unwrap();
        put(&store, &(1..=3).map(|i| entry(i, 100)).collect::<Vec<_>>());
        let one = read_entries(&store.db, 2, 4, 10).unwrap();
        assert_eq!(indices(&one), vec![2]);
        let all = read_entries(&store.db, 1, 4, usize::MAX).unwrap();
        assert_eq!(indices(&all), vec![1, 2, 3]);
        assert!(read_entries(&store.db, 3, 3, 10).unwrap().is_empty());
        assert_eq!(
            indices(&read_entries(&store.db, 3, 99, 10).unwrap()),
            vec![3]
        );
    }
}
