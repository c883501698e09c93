//! Reads of the Merkle tree: roots, inclusion and consistency proofs, and
//! C2SP tlog-tiles tiles and entry bundles under a signed checkpoint.

use redb::ReadableDatabase;

use super::checkpoints::newest_signed_checkpoint;
use super::error::corrupt;
use super::hash_chunks::{ChunkedHashes, HASH_CHUNKS};
use super::meta::tree_size;
use super::tables::ENTRIES;
use super::{LedgerStore, StoreError};
use crate::ledger::merkle::{self, Hash, HashStore, MerkleError};
use crate::ledger::tile::{self, Tile, TileKind};

/// What a tile request finds; see [`LedgerStore::read_tile`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TileRead {
    /// No checkpoint has the required signatures yet.
    NoCheckpoint,
    /// The checkpoint, of `size` leaves, holds only `covered` of the tile's
    /// hashes or entries.
    NotCovered { size: u64, covered: u16 },
    /// The tile's hashes concatenated, or the entry bundle.
    Data(Vec<u8>),
}

impl LedgerStore {
    /// The root of the tree at `size` (<= current size).
    pub fn root(&self, size: u64) -> Result<Hash, StoreError> {
        let txn = self.db.begin_read()?;
        within("tree size", size, tree_size(&txn)?)?;
        let hashes = txn.open_table(HASH_CHUNKS)?;
        Ok(merkle::root(size, &ChunkedHashes::stored(&hashes))?)
    }

    /// Inclusion proof of leaf `index` in the tree of `size`, with the leaf
    /// hash and the root it proves against.
    pub fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<(Hash, Vec<Hash>, Hash), StoreError> {
        let txn = self.db.begin_read()?;
        within("tree size", size, tree_size(&txn)?)?;
        if index >= size {
            return Err(StoreError::OutOfRange {
                what: "leaf index",
                value: index,
                size,
            });
        }
        let hashes = txn.open_table(HASH_CHUNKS)?;
        let reader = ChunkedHashes::stored(&hashes);
        let leaf = reader.read_hashes(&[merkle::stored_hash_index(0, index)])?[0];
        let proof = merkle::inclusion_proof(index, size, &reader)?;
        let root = merkle::root(size, &reader)?;
        Ok((leaf, proof, root))
    }

    /// Consistency proof between two tree sizes, with both roots.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<(Vec<Hash>, Hash, Hash), StoreError> {
        let txn = self.db.begin_read()?;
        within("new size", new_size, tree_size(&txn)?)?;
        if old_size > new_size {
            return Err(MerkleError::SizeOutOfOrder { old_size, new_size }.into());
        }
        let hashes = txn.open_table(HASH_CHUNKS)?;
        let reader = ChunkedHashes::stored(&hashes);
        let proof = merkle::consistency_proof(old_size, new_size, &reader)?;
        Ok((
            proof,
            merkle::root(old_size, &reader)?,
            merkle::root(new_size, &reader)?,
        ))
    }

    /// A C2SP tlog-tiles tile or entry bundle, if the newest checkpoint with
    /// at least `min_signatures` signatures covers it at its width. The
    /// checkpoint and the data are read in one transaction, so what is served
    /// is exactly what that checkpoint commits to.
    pub fn read_tile(&self, tile: &Tile, min_signatures: usize) -> Result<TileRead, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(checkpoint) = newest_signed_checkpoint(&txn, min_signatures)? else {
            return Ok(TileRead::NoCheckpoint);
        };
        let size = checkpoint.body.size;
        let covered = tile.covered_width(size);
        if covered < tile.width {
            return Ok(TileRead::NotCovered { size, covered });
        }
        // A checkpoint never exceeds the tree size, so everything it covers
        // is stored; a gap below is corruption, not a missing tile.
        let data = match tile.kind {
            TileKind::Hashes { .. } => {
                let hashes = txn.open_table(HASH_CHUNKS)?;
                merkle::tile_hashes(tile, size, &ChunkedHashes::stored(&hashes))?.concat()
            }
            TileKind::Entries => {
                let first = tile.first_node();
                let end = first + u64::from(tile.width);
                let entries = txn.open_table(ENTRIES)?;
                let leaves = entries
                    .range(first..end)?
                    .map(|row| row.map(|(_, leaf)| leaf))
                    .collect::<Result<Vec<_>, _>>()?;
                if leaves.len() != usize::from(tile.width) {
                    return Err(corrupt(
                        "entries",
                        format!("{first}..{end}"),
                        "not all stored",
                    ));
                }
                tile::encode_bundle(leaves.iter().map(|leaf| leaf.value()))
                    .map_err(|e| corrupt("entries", tile, e))?
            }
        };
        Ok(TileRead::Data(data))
    }
}

/// `value` (a size) may not exceed the tree size.
fn within(what: &'static str, value: u64, size: u64) -> Result<(), StoreError> {
    if value > size {
        return Err(StoreError::OutOfRange { what, value, size });
    }
    Ok(())
}
