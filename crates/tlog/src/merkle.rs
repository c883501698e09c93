//! RFC 9162 Merkle tree hashing over the tlog "stored hash index" layout.
//!
//! The math comes from the `tlog_tiles` crate (a port of Go's
//! `golang.org/x/mod/sumdb/tlog`); this module gives it Ironlog's types and
//! errors and closes the gaps where that crate is more lenient than the
//! transparency-dev test vectors or would panic on bad input.
//!
//! # Layout
//! Every tree node that roots a complete power-of-two subtree is stored once,
//! at `stored_hash_index(level, n)`, in the order nodes become complete. A
//! tree of `size` leaves owns exactly `stored_hash_count(size)` stored hashes,
//! and appending leaf `n` adds the hashes [`hashes_to_store`] returns, at
//! consecutive indexes starting at `stored_hash_index(0, n)`. Nothing stored
//! is ever rewritten, which is what makes the log append-only on disk too.
//!
//! # Invariants
//! - `leaf_hash(x) = SHA-256(0x00 || x)`, `node_hash(l, r) = SHA-256(0x01 || l || r)`,
//!   and the empty tree's root is `SHA-256("")` (RFC 9162 section 2.1.1).
//! - Verifiers check proof length before hashing, so a hostile proof costs
//!   O(log size) work and cannot be accepted with extra or missing hashes.
//! - A consistency check from the empty tree is refused rather than
//!   trivially accepted: it proves nothing, and accepting it silently would let
//!   a caller believe it had checked a root it never looked at.
//!
//! This module does no I/O: stored hashes come through [`HashStore`].

use std::cell::RefCell;
use tlog_tiles::tlog;

use super::tile::Tile;

/// Bytes in one SHA-256 hash.
pub const HASH_BYTES: usize = 32;

/// A SHA-256 tree hash (leaf, interior node or root).
pub type Hash = [u8; HASH_BYTES];

/// Root of the empty tree: SHA-256 of the empty string (RFC 9162 section 2.1.1).
pub const EMPTY_ROOT: Hash = tlog::EMPTY_HASH.0;

/// Largest tree this module accepts, leaves. The stored hash index of leaf `n`
/// is just under `2n`, so this bound keeps every index (and `n + 1`) inside
/// u64 with room to spare; it is far beyond any log we will ever hold.
pub const TREE_SIZE_MAX: u64 = 1 << 62;

/// Longest proof any tree within [`TREE_SIZE_MAX`] can need, hashes: one per
/// level for the path plus one seed for a consistency proof.
pub const PROOF_HASHES_MAX: usize = 64;

const _: () = assert!(HASH_BYTES == tlog::HASH_SIZE);
const _: () = assert!(TREE_SIZE_MAX.trailing_zeros() as usize + 2 <= PROOF_HASHES_MAX);

/// Errors from Merkle hashing, proving and verifying. Proof and size errors
/// are the caller's (gRPC `INVALID_ARGUMENT` / `OUT_OF_RANGE`); `MissingHash`,
/// `StoreCount` and `Store` mean the stored tree is incomplete or unreadable
/// and are fatal for the node that hits them (`INTERNAL`).
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum MerkleError {
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    SizeOutOfOrder { old_size: u64, new_size: u64 },
    #[error("tree size {size} exceeds the maximum of {max}")]
    TreeTooLarge { size: u64, max: u64 },
    #[error(
        "a consistency proof from the empty tree (to size {new_size}) proves nothing; \
         any tree extends the empty tree"
    )]
    EmptyOldTree { new_size: u64 },
    #[error("proof has {got} hashes, expected {expected}")]
    ProofLength { expected: usize, got: usize },
    #[error("proof does not match the root hash")]
    ProofMismatch,
    #[error("stored hash {index} is missing")]
    MissingHash { index: u64 },
    #[error("hash store returned {returned} hashes for {requested} requested indexes")]
    StoreCount { requested: usize, returned: usize },
    #[error("hash store failed: {reason}")]
    Store { reason: String },
    #[error("{tile} is beyond the tree of size {size}, which holds {covered} of its hashes")]
    TileBeyondTree {
        tile: String,
        size: u64,
        covered: u16,
    },
}

/// RFC 9162 leaf hash: SHA-256(0x00 || leaf).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    tlog::record_hash(leaf).0
}

/// RFC 9162 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    tlog::node_hash(tlog::Hash(*left), tlog::Hash(*right)).0
}

/// Source of stored hashes, indexed by tlog stored-hash index. Implemented by
/// the redb storage layer and by [`MemoryHashStore`].
pub trait HashStore {
    /// Returns one hash per requested index, in request order. A missing
    /// index is [`MerkleError::MissingHash`], never a default hash.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError>;
}

/// Adapts a [`HashStore`] to `tlog_tiles`' reader. `tlog_tiles` panics when a
/// reader returns the wrong number of hashes and only carries strings in its
/// errors, so the adapter checks the count itself and keeps our typed error
/// aside to hand back unchanged.
struct Reader<'a, S: HashStore + ?Sized> {
    store: &'a S,
    failure: RefCell<Option<MerkleError>>,
}

impl<'a, S: HashStore + ?Sized> Reader<'a, S> {
    fn new(store: &'a S) -> Self {
        Reader {
            store,
            failure: RefCell::new(None),
        }
    }

    /// Prefers the store's own error over the placeholder `tlog_tiles` saw.
    fn error(&self, fallback: tlog::Error) -> MerkleError {
        self.failure.borrow_mut().take().unwrap_or(match fallback {
            tlog::Error::InvalidProof => MerkleError::ProofMismatch,
            other => MerkleError::Store {
                reason: other.to_string(),
            },
        })
    }
}

impl<S: HashStore + ?Sized> tlog::HashReader for Reader<'_, S> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog::Hash>, tlog::Error> {
        let result = self.store.read_hashes(indexes).and_then(|hashes| {
            if hashes.len() == indexes.len() {
                Ok(hashes)
            } else {
                Err(MerkleError::StoreCount {
                    requested: indexes.len(),
                    returned: hashes.len(),
                })
            }
        });
        match result {
            Ok(hashes) => Ok(hashes.into_iter().map(tlog::Hash).collect()),
            Err(e) => {
                *self.failure.borrow_mut() = Some(e);
                Err(tlog::Error::InvalidInput("hash store failed".into()))
            }
        }
    }
}

fn check_size(size: u64) -> Result<(), MerkleError> {
    if size > TREE_SIZE_MAX {
        return Err(MerkleError::TreeTooLarge {
            size,
            max: TREE_SIZE_MAX,
        });
    }
    Ok(())
}

/// Position of node `(level, n)` in the stored-hash sequence: the n-th node
/// at `level` (leaves are level 0). Defined for nodes of trees within
/// [`TREE_SIZE_MAX`].
pub fn stored_hash_index(level: u8, n: u64) -> u64 {
    tlog::stored_hash_index(level, n)
}

/// How many stored hashes a tree of `size` leaves has.
pub fn stored_hash_count(size: u64) -> u64 {
    tlog::stored_hash_count(size)
}

/// The stored hashes to persist when appending leaf number `n` (0-based, equal
/// to the tree size before the append) with hash `leaf_hash`, as
/// `(stored_hash_index, hash)` pairs in index order. The first pair is always
/// the leaf hash at `stored_hash_index(0, n)`; the rest are the subtrees the
/// leaf completes. Reads at most log2(n) earlier hashes from `store`.
pub fn hashes_to_store<S: HashStore + ?Sized>(
    n: u64,
    leaf_hash: &Hash,
    store: &S,
) -> Result<Vec<(u64, Hash)>, MerkleError> {
    check_size(n.saturating_add(1))?;
    let reader = Reader::new(store);
    let hashes = tlog::stored_hashes_for_record_hash(n, tlog::Hash(*leaf_hash), &reader)
        .map_err(|e| reader.error(e))?;
    let first = stored_hash_index(0, n);
    let pairs: Vec<(u64, Hash)> = (first..).zip(hashes.into_iter().map(|h| h.0)).collect();
    // The new hashes must exactly fill the gap between the two tree sizes,
    // or the next append would read a hash from the wrong slot.
    assert_eq!(
        first + pairs.len() as u64,
        stored_hash_count(n + 1),
        "stored hash layout broken at leaf {n}"
    );
    Ok(pairs)
}

/// Root hash of the tree of the first `size` leaves; [`EMPTY_ROOT`] for 0.
pub fn root<S: HashStore + ?Sized>(size: u64, store: &S) -> Result<Hash, MerkleError> {
    check_size(size)?;
    let reader = Reader::new(store);
    tlog::tree_hash(size, &reader)
        .map(|h| h.0)
        .map_err(|e| reader.error(e))
}

/// RFC 9162 inclusion proof (audit path) for leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof<S: HashStore + ?Sized>(
    index: u64,
    size: u64,
    store: &S,
) -> Result<Vec<Hash>, MerkleError> {
    check_size(size)?;
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let reader = Reader::new(store);
    let proof = tlog::prove_record(size, index, &reader).map_err(|e| reader.error(e))?;
    Ok(proof.into_iter().map(|h| h.0).collect())
}

/// RFC 9162 consistency proof that the tree of `old_size` leaves is a prefix
/// of the tree of `new_size` leaves. Empty when `old_size` is 0 or equal to
/// `new_size`: there is nothing to prove.
pub fn consistency_proof<S: HashStore + ?Sized>(
    old_size: u64,
    new_size: u64,
    store: &S,
) -> Result<Vec<Hash>, MerkleError> {
    check_size(new_size)?;
    if old_size > new_size {
        return Err(MerkleError::SizeOutOfOrder { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    let reader = Reader::new(store);
    let proof = tlog::prove_tree(new_size, old_size, &reader).map_err(|e| reader.error(e))?;
    Ok(proof.into_iter().map(|h| h.0).collect())
}

/// The hashes of `tile` (C2SP tlog-tiles) in the tree of `size` leaves,
/// left to right: `tile.width` stored hashes at the tile's tree level. For
/// an entry bundle, the leaf hashes of its entries. A tile that the tree does
/// not hold at its full width is [`MerkleError::TileBeyondTree`]: serving a
/// hash the checkpoint does not commit to would let a reader trust it early.
pub fn tile_hashes<S: HashStore + ?Sized>(
    tile: &Tile,
    size: u64,
    store: &S,
) -> Result<Vec<Hash>, MerkleError> {
    check_size(size)?;
    let covered = tile.covered_width(size);
    if covered < tile.width {
        return Err(MerkleError::TileBeyondTree {
            tile: tile.path(),
            size,
            covered,
        });
    }
    // Covered means the tree holds a complete node at this level, so the
    // level is below 64 and every node index below is within the tree.
    let level = u8::try_from(tile.tree_level()).expect("a covered tile's level is below 64");
    let first = tile.first_node();
    let indexes: Vec<u64> = (0..u64::from(tile.width))
        .map(|i| stored_hash_index(level, first + i))
        .collect();
    let hashes = store.read_hashes(&indexes)?;
    if hashes.len() != indexes.len() {
        return Err(MerkleError::StoreCount {
            requested: indexes.len(),
            returned: hashes.len(),
        });
    }
    Ok(hashes)
}

/// Number of hashes in the inclusion proof for leaf `index` of a tree of
/// `size` leaves (`index < size`): the levels where the path to the leaf has
/// a sibling. Below the highest bit where `index` and `size - 1` differ, every
/// level has one; above it, only levels where the path turns right do.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let inner = u64::BITS - (index ^ (size - 1)).leading_zeros();
    let border = (index >> inner).count_ones();
    (inner + border) as usize
}

/// Number of hashes in the consistency proof between sizes `0 < old < new`.
/// It is the inclusion path of the old tree's last leaf, minus the levels
/// where the old tree is itself a complete subtree, plus one seed hash unless
/// the old tree is a single complete subtree the verifier already knows.
fn consistency_proof_len(old: u64, new: u64) -> usize {
    let shift = old.trailing_zeros();
    let path = inclusion_proof_len(old - 1, new) - shift as usize;
    let seed = usize::from(old != 1 << shift);
    path + seed
}

fn check_proof_len(expected: usize, got: usize) -> Result<(), MerkleError> {
    if expected != got {
        return Err(MerkleError::ProofLength { expected, got });
    }
    Ok(())
}

fn to_tlog(proof: &[Hash]) -> Vec<tlog::Hash> {
    proof.iter().copied().map(tlog::Hash).collect()
}

/// Verifies that `proof` shows leaf `index` with hash `leaf_hash` is in the
/// tree of `size` leaves with root `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    check_size(size)?;
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    check_proof_len(inclusion_proof_len(index, size), proof.len())?;
    tlog::check_record(
        &to_tlog(proof),
        size,
        tlog::Hash(*root),
        index,
        tlog::Hash(*leaf_hash),
    )
    .map_err(|_| MerkleError::ProofMismatch)
}

/// Verifies that `proof` shows the tree of `old_size` leaves with root
/// `old_root` is a prefix of the tree of `new_size` leaves with root
/// `new_root`. Equal sizes need an empty proof and equal roots. An
/// `old_size` of 0 is refused with [`MerkleError::EmptyOldTree`]: callers
/// that start from an empty tree have nothing to check and should skip the call.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    check_size(new_size)?;
    if old_size > new_size {
        return Err(MerkleError::SizeOutOfOrder { old_size, new_size });
    }
    if old_size == 0 {
        return Err(MerkleError::EmptyOldTree { new_size });
    }
    let expected = if old_size == new_size {
        0
    } else {
        consistency_proof_len(old_size, new_size)
    };
    check_proof_len(expected, proof.len())?;
    tlog::check_tree(
        &to_tlog(proof),
        new_size,
        tlog::Hash(*new_root),
        old_size,
        tlog::Hash(*old_root),
    )
    .map_err(|_| MerkleError::ProofMismatch)
}

/// An in-memory [`HashStore`] holding a whole tree: the reference store for
/// tests and for recomputing roots from a list of leaves.
#[derive(Default, Clone, Debug)]
pub struct MemoryHashStore {
    /// Stored hashes in stored-hash-index order; its length is always
    /// `stored_hash_count(size)`.
    hashes: Vec<Hash>,
    /// Leaves appended so far. Kept apart from `hashes` because the count of
    /// leaves cannot be recovered from the count of stored hashes cheaply.
    size: u64,
}

impl MemoryHashStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf by its data; returns its leaf index.
    pub fn append(&mut self, leaf: &[u8]) -> Result<u64, MerkleError> {
        self.append_leaf_hash(&leaf_hash(leaf))
    }

    /// Appends a leaf by its RFC 9162 leaf hash; returns its leaf index.
    pub fn append_leaf_hash(&mut self, h: &Hash) -> Result<u64, MerkleError> {
        let index = self.size;
        let pairs = hashes_to_store(index, h, self)?;
        for (stored_index, hash) in pairs {
            assert_eq!(stored_index, self.hashes.len() as u64);
            self.hashes.push(hash);
        }
        self.size += 1;
        Ok(index)
    }

    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Root of the whole tree.
    pub fn root(&self) -> Result<Hash, MerkleError> {
        root(self.size, self)
    }
}

impl HashStore for MemoryHashStore {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        indexes
            .iter()
            .map(|&index| {
                usize::try_from(index)
                    .ok()
                    .and_then(|i| self.hashes.get(i))
                    .copied()
                    .ok_or(MerkleError::MissingHash { index })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn store_of(n: u64) -> MemoryHashStore {
        let mut store = MemoryHashStore::new();
        for i in 0..n {
            assert_eq!(store.append(format!("leaf {i}").as_bytes()), Ok(i));
        }
        store
    }

    /// Straight from the RFC 9162 definition, for cross-checking.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => EMPTY_ROOT,
            1 => leaves[0],
            n => {
                // The largest power of two smaller than n.
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    #[test]
    fn hashing_matches_rfc9162_constants() {
        assert_eq!(EMPTY_ROOT, <Hash>::from(Sha256::digest(b"")));
        assert_eq!(
            leaf_hash(b"")[..4],
            [0x6e, 0x34, 0x0b, 0x9c],
            "hash of the empty leaf"
        );
        let mut h = Sha256::new();
        h.update([0x01]);
        h.update([1u8; 32]);
        h.update([2u8; 32]);
        assert_eq!(node_hash(&[1; 32], &[2; 32]), <Hash>::from(h.finalize()));
    }

    #[test]
    fn memory_store_root_matches_reference_for_small_trees() {
        let mut store = MemoryHashStore::new();
        let mut leaves = Vec::new();
        assert_eq!(store.root(), Ok(EMPTY_ROOT));
        for i in 0..70u32 {
            let h = leaf_hash(&i.to_be_bytes());
            leaves.push(h);
            store.append_leaf_hash(&h).unwrap();
            assert_eq!(
                store.root().unwrap(),
                reference_root(&leaves),
                "size {}",
                i + 1
            );
            assert_eq!(stored_hash_count(store.size()), store.hashes.len() as u64);
        }
    }

    #[test]
    fn every_proof_verifies_and_has_predicted_length() {
        let store = store_of(40);
        for size in 1..=40 {
            let root = root(size, &store).unwrap();
            for index in 0..size {
                let proof = inclusion_proof(index, size, &store).unwrap();
                assert_eq!(proof.len(), inclusion_proof_len(index, size));
                let leaf = leaf_hash(format!("leaf {index}").as_bytes());
                verify_inclusion(index, size, &leaf, &proof, &root).unwrap();
            }
            for old in 1..=size {
                let old_root = super::root(old, &store).unwrap();
                let proof = consistency_proof(old, size, &store).unwrap();
                if old < size {
                    assert_eq!(proof.len(), consistency_proof_len(old, size));
                }
                verify_consistency(old, size, &old_root, &root, &proof).unwrap();
            }
        }
    }

    #[test]
    fn proof_generation_rejects_bad_ranges() {
        let store = store_of(5);
        assert_eq!(
            inclusion_proof(5, 5, &store),
            Err(MerkleError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(
            consistency_proof(4, 3, &store),
            Err(MerkleError::SizeOutOfOrder {
                old_size: 4,
                new_size: 3
            })
        );
        assert_eq!(consistency_proof(0, 5, &store), Ok(vec![]));
        assert_eq!(consistency_proof(5, 5, &store), Ok(vec![]));
        assert_eq!(
            root(u64::MAX, &store),
            Err(MerkleError::TreeTooLarge {
                size: u64::MAX,
                max: TREE_SIZE_MAX
            })
        );
    }

    #[test]
    fn missing_stored_hashes_are_errors_not_panics() {
        let store = store_of(5);
        assert!(matches!(
            root(6, &store),
            Err(MerkleError::MissingHash { .. })
        ));
        assert!(matches!(
            inclusion_proof(0, 9, &store),
            Err(MerkleError::MissingHash { .. })
        ));
        assert!(matches!(
            consistency_proof(3, 9, &store),
            Err(MerkleError::MissingHash { .. })
        ));
    }

    struct ShortStore;
    impl HashStore for ShortStore {
        fn read_hashes(&self, _indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
            Ok(vec![])
        }
    }

    #[test]
    fn store_returning_too_few_hashes_is_an_error_not_a_panic() {
        assert_eq!(
            root(3, &ShortStore),
            Err(MerkleError::StoreCount {
                requested: 2,
                returned: 0
            })
        );
        assert_eq!(
            hashes_to_store(1, &[0; 32], &ShortStore),
            Err(MerkleError::StoreCount {
                requested: 1,
                returned: 0
            })
        );
    }

    #[test]
    fn tampered_proofs_are_rejected() {
        let store = store_of(11);
        let root = store.root().unwrap();
        let leaf = leaf_hash(b"leaf 3");
        let proof = inclusion_proof(3, 11, &store).unwrap();
        let mut longer = proof.clone();
        longer.push([0; 32]);
        assert_eq!(
            verify_inclusion(3, 11, &leaf, &longer, &root),
            Err(MerkleError::ProofLength {
                expected: 4,
                got: 5
            })
        );
        assert_eq!(
            verify_inclusion(3, 11, &leaf, &proof[1..], &root),
            Err(MerkleError::ProofLength {
                expected: 4,
                got: 3
            })
        );
        let mut flipped = proof.clone();
        flipped[2][7] ^= 1;
        assert_eq!(
            verify_inclusion(3, 11, &leaf, &flipped, &root),
            Err(MerkleError::ProofMismatch)
        );
        assert_eq!(
            verify_inclusion(4, 11, &leaf, &proof, &root),
            Err(MerkleError::ProofMismatch)
        );

        let old_root = super::root(6, &store).unwrap();
        let proof = consistency_proof(6, 11, &store).unwrap();
        assert_eq!(
            verify_consistency(6, 11, &root, &old_root, &proof),
            Err(MerkleError::ProofMismatch)
        );
        assert_eq!(
            verify_consistency(0, 11, &EMPTY_ROOT, &root, &[]),
            Err(MerkleError::EmptyOldTree { new_size: 11 })
        );
        assert_eq!(
            verify_consistency(11, 11, &root, &root, &proof),
            Err(MerkleError::ProofLength {
                expected: 0,
                got: proof.len()
            })
        );
        assert_eq!(
            verify_consistency(11, 6, &root, &old_root, &[]),
            Err(MerkleError::SizeOutOfOrder {
                old_size: 11,
                new_size: 6
            })
        );
    }

    #[test]
    fn tile_hashes_match_tlog_tiles_and_stop_at_the_tree() {
        use crate::tile::{TileKind, TILE_HEIGHT};
        struct Adapter<'a>(&'a MemoryHashStore);
        impl tlog::HashReader for Adapter<'_> {
            fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog::Hash>, tlog::Error> {
                let hashes = HashStore::read_hashes(self.0, indexes).expect("stored");
                Ok(hashes.into_iter().map(tlog::Hash).collect())
            }
        }
        let size = 256 * 3 + 5;
        let store = store_of(size);
        for (level, index, width) in [(0, 0, 256), (0, 2, 256), (0, 3, 5), (0, 3, 2), (1, 0, 3)] {
            let tile = Tile {
                kind: TileKind::Hashes { level },
                index,
                width,
            };
            let ours: Vec<u8> = tile_hashes(&tile, size, &store).unwrap().concat();
            let theirs = tlog_tiles::Tile::new(TILE_HEIGHT, level, index, width.into(), false)
                .read_data(&Adapter(&store))
                .unwrap();
            assert_eq!(ours, theirs, "{tile}");
        }
        let level1 = Tile {
            kind: TileKind::Hashes { level: 1 },
            index: 0,
            width: 3,
        };
        let subtree = root(256, &store).unwrap();
        assert_eq!(tile_hashes(&level1, size, &store).unwrap()[0], subtree);
        for (level, index, width) in [(0, 3, 6), (0, 4, 1), (1, 0, 4), (2, 0, 1), (63, 0, 1)] {
            let tile = Tile {
                kind: TileKind::Hashes { level },
                index,
                width,
            };
            assert!(
                matches!(
                    tile_hashes(&tile, size, &store),
                    Err(MerkleError::TileBeyondTree { .. })
                ),
                "{tile}"
            );
        }
    }

    #[test]
    fn oversized_proofs_are_rejected_before_hashing() {
        let proof = vec![[0u8; 32]; 1_000_000];
        assert_eq!(
            verify_inclusion(0, 2, &[0; 32], &proof, &[0; 32]),
            Err(MerkleError::ProofLength {
                expected: 1,
                got: 1_000_000
            })
        );
    }
}
