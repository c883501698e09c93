//! Snapshot manifests: a snapshot that names its leaves instead of copying
//! them.
//!
//! Leaves are immutable once applied, and the store already holds them
//! durably, so a snapshot this node builds needs only the state that is not
//! a leaf (metadata, checkpoints, voter signatures, witness cosignatures)
//! and the number of leaves it covers. Building one costs the size of that
//! state, not the size of the log: before manifests, every snapshot wrote
//! every leaf again, once per `raft.snapshot_logs_since_last` entries, so
//! the cost of an append grew with the log.
//!
//! A manifest is the snapshot record format with one [`TAG_LEDGER_LEAVES`]
//! record where the leaf records would be. [`SnapshotReader`] expands it
//! into the full format only when the whole snapshot is needed: sent to a
//! follower, or installed on this node at start-up. Leaves `[0, n)` never
//! change once stored (the log is append-only and a replica's leaves only
//! ever agree with the leader's), so the expansion yields the state the
//! manifest was cut at whenever it runs.
//!
//! A peer never sees the tag: what goes over the wire is expanded, and a
//! transfer that carries one is refused on import as an unknown record.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read};
use std::ops::{Deref, Range};
use std::path::Path;

use redb::{ReadableDatabase, ReadableTable};

use super::meta::read_meta;
use super::snapshot::{
    read_record, witness_record, write_record, TAG_CHECKPOINT, TAG_END, TAG_LEAF, TAG_META,
    TAG_SIGNATURE, TAG_WITNESS_COSIGNATURE,
};
use super::tables::{CHECKPOINTS, META, SIGNATURES, WITNESS_COSIGNATURES};
use super::{LedgerStore, StateMeta, StoreError};
use crate::limits::PAGE_ENTRIES_MAX;

/// In a manifest: the leaves `[0, n)` are this store's own, `n` as eight
/// big-endian bytes. Only ever written by [`LedgerStore::write_manifest`]
/// and read by [`SnapshotReader`] over the same store.
pub(super) const TAG_LEDGER_LEAVES: u8 = 6;

impl LedgerStore {
    /// Writes a manifest of the state as it is now to `path`, fsynced, and
    /// returns its metadata. Its size is that of the non-leaf state.
    pub fn write_manifest(&self, path: &Path) -> Result<StateMeta, StoreError> {
        // Read first, then flush: the flush is a durable commit after every
        // commit this read sees, so the state the manifest records (and
        // the leaves it names) survives a crash. Flushing first would let
        // an apply commit, non-durably, between the flush and the read, and
        // a crash then leave the store short of the leaves the manifest
        // names (the chaos harness found this).
        let txn = self.db.begin_read()?;
        self.flush()?;
        let meta = read_meta(&txn.open_table(META)?)?;
        let mut out = BufWriter::new(File::create(path)?);
        write_record(
            &mut out,
            TAG_META,
            &serde_json::to_vec(&meta).expect("meta serialises"),
        )?;
        write_record(&mut out, TAG_LEDGER_LEAVES, &meta.tree_size.to_be_bytes())?;
        for row in txn.open_table(CHECKPOINTS)?.iter()? {
            let (size, body) = row?;
            let mut rec = size.value().to_be_bytes().to_vec();
            rec.extend_from_slice(body.value());
            write_record(&mut out, TAG_CHECKPOINT, &rec)?;
        }
        for row in txn.open_table(SIGNATURES)?.iter()? {
            let (key, line) = row?;
            let mut rec = key.value().0.to_be_bytes().to_vec();
            rec.extend_from_slice(line.value().as_bytes());
            write_record(&mut out, TAG_SIGNATURE, &rec)?;
        }
        for row in txn.open_table(WITNESS_COSIGNATURES)?.iter()? {
            let (key, value) = row?;
            let (vkey, line) = value.value();
            write_record(
                &mut out,
                TAG_WITNESS_COSIGNATURE,
                &witness_record(key.value().0, vkey, line),
            )?;
        }
        write_record(&mut out, TAG_END, &[])?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(meta)
    }

    /// Writes the whole snapshot (every leaf inline) to `path`, fsynced: a
    /// manifest expanded. What a follower receives; tests use it to make
    /// transfers.
    pub fn export_snapshot(&self, path: &Path) -> Result<StateMeta, StoreError> {
        let manifest = path.with_extension("manifest");
        let result = (|| {
            let meta = self.write_manifest(&manifest)?;
            let mut reader = SnapshotReader::expanding(self, File::open(&manifest)?);
            let mut out = File::create(path)?;
            io::copy(&mut reader, &mut out)?;
            out.sync_all()?;
            Ok(meta)
        })();
        let _ = std::fs::remove_file(&manifest);
        result
    }
}

/// Reads a snapshot file as the full record stream a follower installs:
/// records pass through as they are, and a [`TAG_LEDGER_LEAVES`] record is
/// replaced by the leaf records it names, read from the store in pages.
/// A transfer received from a peer is read as the file it is, never
/// through this.
pub struct SnapshotReader<S> {
    store: S,
    file: BufReader<File>,
    /// Bytes ready to hand out, front first.
    ready: VecDeque<u8>,
    /// Leaves still to read from the store.
    leaves: Range<u64>,
    /// The END record has been read from the file.
    ended: bool,
}

impl<S: Deref<Target = LedgerStore>> SnapshotReader<S> {
    /// Expands the manifest (or passes through the full snapshot) in `file`,
    /// reading named leaves from `store`.
    pub fn expanding(store: S, file: File) -> Self {
        Self::new(store, file)
    }
}

impl<S: Deref<Target = LedgerStore>> SnapshotReader<S> {
    fn new(store: S, file: File) -> Self {
        Self {
            store,
            file: BufReader::new(file),
            ready: VecDeque::new(),
            leaves: 0..0,
            ended: false,
        }
    }

    /// Queues the next records' bytes; false at the end of the snapshot.
    fn fill(&mut self) -> Result<bool, StoreError> {
        if !self.leaves.is_empty() {
            let end = self
                .leaves
                .end
                .min(self.leaves.start.saturating_add(PAGE_ENTRIES_MAX));
            let (page, _) = self.store.entries(self.leaves.start, end)?;
            if page.len() as u64 != end - self.leaves.start {
                // `entries` clamps to the tree size: the store has fewer
                // leaves than the manifest names.
                return Err(StoreError::BadSnapshot(format!(
                    "the manifest names {} leaves but the store has {}",
                    self.leaves.end,
                    self.leaves.start + page.len() as u64
                )));
            }
            for (_, leaf) in page {
                self.push(TAG_LEAF, &leaf);
            }
            self.leaves.start = end;
            return Ok(true);
        }
        if self.ended {
            return Ok(false);
        }
        let (tag, rec) = read_record(&mut self.file)?;
        match tag {
            TAG_LEDGER_LEAVES => {
                let count: [u8; 8] = rec.as_slice().try_into().map_err(|_| {
                    StoreError::BadSnapshot("ledger-leaves record is not 8 bytes".into())
                })?;
                self.leaves = 0..u64::from_be_bytes(count);
            }
            _ => {
                self.ended = tag == TAG_END;
                self.push(tag, &rec);
            }
        }
        Ok(true)
    }

    fn push(&mut self, tag: u8, rec: &[u8]) {
        self.ready.push_back(tag);
        self.ready.extend((rec.len() as u32).to_be_bytes());
        self.ready.extend(rec);
    }
}

impl<S: Deref<Target = LedgerStore>> Read for SnapshotReader<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.ready.is_empty() {
            if !self.fill().map_err(io::Error::other)? {
                return Ok(0);
            }
        }
        let (front, _) = self.ready.as_slices();
        let n = front.len().min(buf.len());
        buf[..n].copy_from_slice(&front[..n]);
        self.ready.drain(..n);
        Ok(n)
    }
}
