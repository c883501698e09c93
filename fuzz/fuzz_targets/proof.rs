//! Inclusion and consistency proof verification with arbitrary sizes,
//! indices and proof hashes: errors, never panics, and a proof over a tree
//! built here verifies exactly when it is the real one.
#![no_main]

use ironlog::ledger::bundle::TlogProof;
use ironlog::ledger::merkle::{self, Hash, MemoryHashStore};
use libfuzzer_sys::fuzz_target;

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, x) in data.iter().skip(at).take(8).enumerate() {
        b[i] = *x;
    }
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = TlogProof::parse(text, 1);
    }
    let size = u64_at(data, 0);
    let index = u64_at(data, 8);
    let hashes: Vec<Hash> = data
        .get(16..)
        .unwrap_or(&[])
        .chunks_exact(32)
        .map(|c| c.try_into().unwrap())
        .collect();
    let root = [0u8; 32];
    let _ = merkle::verify_inclusion(index, size, &root, &hashes, &root);
    let _ = merkle::verify_consistency(index, size, &root, &root, &hashes);

    // A small real tree: only the true proof verifies.
    let n = (size % 64) + 1;
    let mut tree = MemoryHashStore::new();
    for i in 0..n {
        tree.append(&i.to_le_bytes()).unwrap();
    }
    let root = tree.root().unwrap();
    let i = index % n;
    let leaf = merkle::leaf_hash(&i.to_le_bytes());
    let real = merkle::inclusion_proof(i, n, &tree).unwrap();
    assert!(merkle::verify_inclusion(i, n, &leaf, &real, &root).is_ok());
    if hashes != real {
        assert!(merkle::verify_inclusion(i, n, &leaf, &hashes, &root).is_err());
    }
});
