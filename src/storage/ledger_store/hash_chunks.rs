//! The stored Merkle hashes, packed in chunks of consecutive hashes.
//!
//! The tlog stored-hash sequence
//! ([`stored_hash_index`](crate::ledger::merkle::stored_hash_index)) only grows
//! at its end: leaf `n` adds the hashes numbered
//! `stored_hash_count(n)..stored_hash_count(n + 1)`, its own and those of
//! the subtrees it completes, about two per leaf. Stored a row each, they
//! were two thirds of an append's B-tree inserts, and redb rebuilds the
//! page an insert lands in. Packed [`HASH_CHUNK_HASHES`] to a row, an apply
//! rewrites the chunk at the end once, and each chunk it fills once more.
//!
//! # Invariants
//! - Chunk `c` holds the hashes `c * HASH_CHUNK_HASHES ..`, concatenated:
//!   every chunk before the last is full, and the last holds exactly what
//!   the tree size calls for (checked when a writer loads it).
//! - A writer keeps the last chunk in memory while it appends
//!   ([`HashTail`]), and stores it before the transaction commits
//!   (`Writer::save_meta`), so a reader never sees a leaf without its
//!   hashes.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle, WriteTransaction};

use super::error::corrupt;
use super::meta::read_meta;
use super::tables::META;
use super::StoreError;
use crate::ledger::merkle::{self, Hash, HashStore, MerkleError, HASH_BYTES};

/// Chunk number -> its hashes, concatenated.
pub(crate) const HASH_CHUNKS: TableDefinition<u64, &[u8]> = TableDefinition::new("hash_chunks");

/// The hashes of stores written before chunks, one row each: packed into
/// chunks when such a store is opened.
pub(crate) const LEGACY_HASHES: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("hashes");

/// Hashes per chunk: as many as fit one 4 KiB redb leaf page beside the
/// page header, the value's end offset and the key (16 bytes), so a full
/// chunk is one page and no page is shared with the chunk being rewritten.
pub(crate) const HASH_CHUNK_HASHES: u64 = 127;

/// Bytes of a full chunk.
const CHUNK_BYTES: usize = HASH_CHUNK_HASHES as usize * HASH_BYTES;

// A full chunk fits one redb leaf page (4-byte header, the value's 4-byte
// end offset, the 8-byte key), and one more hash would not.
const _: () = assert!(CHUNK_BYTES + 16 <= 4096 && CHUNK_BYTES + HASH_BYTES + 16 > 4096);

/// The chunk a stored hash is in, and its place there.
fn locate(index: u64) -> (u64, usize) {
    (
        index / HASH_CHUNK_HASHES,
        (index % HASH_CHUNK_HASHES) as usize,
    )
}

/// The stored hashes of one chunk row, numbered; an error says why the
/// bytes cannot be a chunk.
pub(crate) fn chunk_hashes(chunk: u64, bytes: &[u8]) -> Result<Vec<(u64, Hash)>, String> {
    if !bytes.len().is_multiple_of(HASH_BYTES) || bytes.len() > CHUNK_BYTES {
        return Err(format!(
            "hash chunk {chunk} is {} bytes, not a multiple of {HASH_BYTES} up to {CHUNK_BYTES}",
            bytes.len()
        ));
    }
    let first = chunk
        .checked_mul(HASH_CHUNK_HASHES)
        .filter(|first| first.checked_add(HASH_CHUNK_HASHES).is_some())
        .ok_or_else(|| format!("hash chunk {chunk} is beyond any tree"))?;
    Ok(bytes
        .chunks_exact(HASH_BYTES)
        .enumerate()
        .map(|(i, h)| (first + i as u64, h.try_into().expect("chunks_exact")))
        .collect())
}

/// One hash out of a chunk's bytes, if the chunk holds it.
fn hash_at(bytes: &[u8], offset: usize) -> Option<Hash> {
    let start = offset * HASH_BYTES;
    bytes.get(start..start + HASH_BYTES)?.try_into().ok()
}

/// Stored hashes read through the chunk table, inside a transaction (read
/// or write), and through a writer's tail, in memory, where it has one.
pub(super) struct ChunkedHashes<'a, T: ReadableTable<u64, &'static [u8]>> {
    pub(super) table: &'a T,
    pub(super) tail: Option<&'a HashTail>,
}

impl<'a, T: ReadableTable<u64, &'static [u8]>> ChunkedHashes<'a, T> {
    /// The hashes as stored, with no writer's tail.
    pub(super) fn stored(table: &'a T) -> Self {
        Self { table, tail: None }
    }
}

impl<T: ReadableTable<u64, &'static [u8]>> HashStore for ChunkedHashes<'_, T> {
    /// Each index from the tail where it holds it, from the table
    /// otherwise, fetching each chunk once for a run of indexes in it.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        let (table, tail) = (self.table, self.tail);
        let store_error = |e: redb::StorageError| MerkleError::Store {
            reason: e.to_string(),
        };
        let mut fetched: Option<(u64, Option<redb::AccessGuard<'_, &'static [u8]>>)> = None;
        let mut out = Vec::with_capacity(indexes.len());
        for &index in indexes {
            let (chunk, offset) = locate(index);
            let found = match tail {
                Some(tail) if tail.chunk == chunk => hash_at(&tail.bytes, offset),
                _ => {
                    if fetched.as_ref().map(|(c, _)| *c) != Some(chunk) {
                        fetched = Some((chunk, table.get(chunk).map_err(store_error)?));
                    }
                    let (_, row) = fetched.as_ref().expect("fetched just above");
                    row.as_ref().and_then(|row| hash_at(row.value(), offset))
                }
            };
            out.push(found.ok_or(MerkleError::MissingHash { index })?);
        }
        Ok(out)
    }
}

/// The chunk at the end of the sequence, held by a writer while it
/// appends hashes.
pub(super) struct HashTail {
    chunk: u64,
    bytes: Vec<u8>,
    /// Changed since it was loaded or last stored.
    dirty: bool,
}

impl HashTail {
    /// The last chunk of a sequence of `count` stored hashes (a tree's
    /// [`stored_hash_count`](crate::ledger::merkle::stored_hash_count)), which must hold exactly the hashes
    /// that count leaves to it.
    pub(super) fn load<T: ReadableTable<u64, &'static [u8]>>(
        table: &T,
        count: u64,
    ) -> Result<Self, StoreError> {
        let (chunk, held) = locate(count);
        let mut bytes = Vec::with_capacity(CHUNK_BYTES);
        if let Some(row) = table.get(chunk)? {
            bytes.extend_from_slice(row.value());
        }
        if bytes.len() != held * HASH_BYTES {
            return Err(corrupt(
                HASH_CHUNKS.name(),
                chunk,
                format!(
                    "holds {} bytes where the tree size calls for {} hashes",
                    bytes.len(),
                    held
                ),
            ));
        }
        Ok(Self {
            chunk,
            bytes,
            dirty: false,
        })
    }

    /// The number the next hash appended must have.
    fn next_index(&self) -> u64 {
        self.chunk * HASH_CHUNK_HASHES + (self.bytes.len() / HASH_BYTES) as u64
    }

    /// Appends the hash numbered `index`, storing the chunk once it is full.
    pub(super) fn push(
        &mut self,
        table: &mut redb::Table<'_, u64, &'static [u8]>,
        index: u64,
        hash: &Hash,
    ) -> Result<(), StoreError> {
        assert_eq!(
            index,
            self.next_index(),
            "stored hashes are appended in sequence"
        );
        self.bytes.extend_from_slice(hash);
        self.dirty = true;
        if self.bytes.len() == CHUNK_BYTES {
            self.store(table)?;
            self.chunk += 1;
            self.bytes.clear();
        }
        Ok(())
    }

    /// Stores the chunk if it changed.
    pub(super) fn store(
        &mut self,
        table: &mut redb::Table<'_, u64, &'static [u8]>,
    ) -> Result<(), StoreError> {
        if self.dirty {
            table.insert(self.chunk, self.bytes.as_slice())?;
            self.dirty = false;
        }
        Ok(())
    }
}

/// Packs the per-row hashes of a store written before chunks into chunks,
/// and drops their table; `Ok(false)` if there is none. The rows must be
/// the sequence `0..n` exactly, `n` the stored-hash count of the tree size
/// in the metadata: anything else is refused as corrupt, and the store is
/// left as it was.
///
/// An older version run on a packed store makes an empty per-row table (it
/// creates every table it knows): that is dropped. If it appended too, its
/// rows continue a sequence it could not read, and the store is refused
/// with a message that says so.
pub(super) fn pack_legacy_hashes(txn: &WriteTransaction) -> Result<bool, StoreError> {
    let tables: Vec<String> = txn.list_tables()?.map(|t| t.name().to_string()).collect();
    let has = |name: &str| tables.iter().any(|t| t == name);
    if !has(LEGACY_HASHES.name()) {
        return Ok(false);
    }
    let chunked = has(HASH_CHUNKS.name()) && !txn.open_table(HASH_CHUNKS)?.is_empty()?;
    if chunked {
        if !txn.open_table(LEGACY_HASHES)?.is_empty()? {
            return Err(corrupt(
                LEGACY_HASHES.name(),
                "*",
                "holds per-row hashes beside packed chunks: an older version appended to this store after it was packed; restore the node from its peers (empty its data directory)",
            ));
        }
        txn.delete_table(LEGACY_HASHES)?;
        return Ok(false);
    }
    let expected = merkle::stored_hash_count(read_meta(&txn.open_table(META)?)?.tree_size);
    let mut packed = 0u64;
    {
        let legacy = txn.open_table(LEGACY_HASHES)?;
        let mut chunks = txn.open_table(HASH_CHUNKS)?;
        let mut tail = HashTail::load(&chunks, 0)?;
        for row in legacy.range::<u64>(..)? {
            let (index, hash) = row?;
            let index = index.value();
            if index != packed {
                return Err(corrupt(
                    LEGACY_HASHES.name(),
                    index,
                    format!("found where stored hash {packed} belongs"),
                ));
            }
            tail.push(&mut chunks, index, hash.value())?;
            packed += 1;
        }
        tail.store(&mut chunks)?;
    }
    if packed != expected {
        return Err(corrupt(
            LEGACY_HASHES.name(),
            packed,
            format!("{packed} stored hashes where the tree size calls for {expected}"),
        ));
    }
    txn.delete_table(LEGACY_HASHES)?;
    tracing::info!(
        hashes = packed,
        "packed the per-row stored hashes of an older store into chunks"
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_rows_number_their_hashes_and_refuse_what_cannot_be_a_chunk() {
        let bytes: Vec<u8> = (0..3u8).flat_map(|i| [i; 32]).collect();
        let hashes = chunk_hashes(2, &bytes).unwrap();
        let first = 2 * HASH_CHUNK_HASHES;
        assert_eq!(
            hashes,
            vec![(first, [0; 32]), (first + 1, [1; 32]), (first + 2, [2; 32])]
        );
        assert!(chunk_hashes(0, &bytes[..40]).is_err());
        assert!(chunk_hashes(0, &vec![0; CHUNK_BYTES + HASH_BYTES]).is_err());
        assert!(chunk_hashes(u64::MAX, &bytes).is_err());
    }

    #[test]
    fn appended_hashes_read_back_across_chunks_from_the_tail_and_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("h.redb")).unwrap();
        let hash = |i: u64| merkle::leaf_hash(&i.to_be_bytes());
        let count = 3 * HASH_CHUNK_HASHES + 5;
        // Appended over two transactions, the first ending inside a chunk.
        for range in [0..HASH_CHUNK_HASHES + 7, HASH_CHUNK_HASHES + 7..count] {
            let txn = db.begin_write().unwrap();
            {
                let mut table = txn.open_table(HASH_CHUNKS).unwrap();
                let mut tail = HashTail::load(&table, range.start).unwrap();
                for i in range.clone() {
                    tail.push(&mut table, i, &hash(i)).unwrap();
                    // Readable before it is stored, through the tail.
                    let view = ChunkedHashes {
                        table: &table,
                        tail: Some(&tail),
                    };
                    assert_eq!(view.read_hashes(&[i, 0]).unwrap(), [hash(i), hash(0)]);
                }
                tail.store(&mut table).unwrap();
            }
            txn.commit().unwrap();
        }
        let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
        let table = txn.open_table(HASH_CHUNKS).unwrap();
        assert_eq!(table.len().unwrap(), 4);
        let all: Vec<u64> = (0..count).rev().collect();
        let read = ChunkedHashes::stored(&table).read_hashes(&all).unwrap();
        assert_eq!(read, all.iter().map(|&i| hash(i)).collect::<Vec<_>>());
        assert!(matches!(
            ChunkedHashes::stored(&table).read_hashes(&[count]),
            Err(MerkleError::MissingHash { index }) if index == count
        ));
        // A writer refuses a last chunk that disagrees with the tree size.
        assert!(matches!(
            HashTail::load(&table, count + 1),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
