//! The untrusted-input parsers (signed notes, trust policies, tlog-proof
//! bundles, proofs) under many seeded random mutations of valid inputs: no
//! panics, and nothing altered is ever accepted as something it is not.
//!
//! The same entry points have cargo-fuzz targets in `fuzz/` for longer,
//! coverage-guided runs (`scripts/fuzz.sh`); this test keeps them honest in
//! every CI run on stable Rust.

use ironlog::ledger::bundle::{encode_bundle, parse_bundle, verify_bundle, TlogProof};
use ironlog::ledger::checkpoint::{assemble_note, generate_key, CheckpointBody, NoteSigner};
use ironlog::ledger::event::{Actor, Event, LeafRecord, Outcome};
use ironlog::ledger::merkle::{self, MemoryHashStore};
use ironlog::ledger::policy::{KeyGroup, TrustPolicy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ORIGIN: &str = "robustness.test/log";
const MUTATIONS: usize = 3_000;

fn leaf(index: u64) -> Vec<u8> {
    LeafRecord {
        index,
        commit_time_unix_nanos: 1_700_000_000_000_000_000 + index as i64,
        event: Event {
            time_unix_nanos: 1_700_000_000_000_000_000,
            actor: Actor {
                id: format!("user{index}"),
                kind: Some("user".into()),
                ip: Some("10.0.0.1".into()),
                user_agent: None,
            },
            action: "db.read".into(),
            resource: "postgres://payments".into(),
            outcome: Outcome::Success,
            source: "robustness".into(),
            details: Default::default(),
            idempotency_key: None,
        },
    }
    .encode()
}

/// A 13-leaf log signed by 2 of 3 voters, and a bundle of 3 of its entries.
fn fixture() -> (TrustPolicy, Vec<TlogProof>, String) {
    let keys: Vec<(String, String)> = (0..3).map(|_| generate_key(ORIGIN).unwrap()).collect();
    let mut tree = MemoryHashStore::new();
    let leaves: Vec<Vec<u8>> = (0..13).map(leaf).collect();
    for l in &leaves {
        tree.append(l).unwrap();
    }
    let body = CheckpointBody {
        origin: ORIGIN.into(),
        size: 13,
        root: tree.root().unwrap(),
    };
    let sigs: Vec<_> = keys[..2]
        .iter()
        .map(|(s, _)| NoteSigner::from_skey(s).unwrap().sign(&body).unwrap())
        .collect();
    let note = assemble_note(&body, &sigs);
    let proofs = [0u64, 7, 12]
        .iter()
        .map(|&i| TlogProof {
            extra: Some(leaves[i as usize].clone()),
            index: i,
            hashes: merkle::inclusion_proof(i, 13, &tree).unwrap(),
            note: note.clone(),
        })
        .collect();
    let policy = TrustPolicy {
        origin: ORIGIN.into(),
        log: KeyGroup {
            threshold: 2,
            keys: keys.into_iter().map(|(_, v)| v).collect(),
        },
        witnesses: None,
    };
    (policy, proofs, note)
}

/// Flips, overwrites, deletes, duplicates or truncates a few bytes.
fn mutate(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.gen_range(1..=3) {
        if out.is_empty() {
            out.push(rng.gen());
            continue;
        }
        let at = rng.gen_range(0..out.len());
        match rng.gen_range(0..5) {
            0 => out[at] ^= 1 << rng.gen_range(0..8),
            1 => out[at] = rng.gen(),
            2 => {
                out.remove(at);
            }
            3 => {
                let end = (at + rng.gen_range(1..40)).min(out.len());
                let chunk = out[at..end].to_vec();
                let to = rng.gen_range(0..=out.len());
                out.splice(to..to, chunk);
            }
            _ => out.truncate(at),
        }
    }
    out
}

#[test]
fn mutated_bundles_are_refused_or_mean_the_same() {
    let (policy, proofs, _) = fixture();
    let text = encode_bundle(&proofs).into_bytes();
    assert!(verify_bundle(&parse_bundle(&text).unwrap(), Some(&policy)).is_ok());
    let seed = 0x1c0_1095;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut accepted = 0;
    for n in 0..MUTATIONS {
        let bad = mutate(&mut rng, &text);
        let Ok(parsed) = parse_bundle(&bad) else {
            continue;
        };
        let _ = verify_bundle(&parsed, None);
        if verify_bundle(&parsed, Some(&policy)).is_ok() {
            // Only changes that leave every proof's meaning intact may pass
            // (e.g. a mutation that drops a whole proof block).
            accepted += 1;
            for p in &parsed {
                assert!(
                    proofs
                        .iter()
                        .any(|q| q.index == p.index && q.extra == p.extra && q.hashes == p.hashes),
                    "seed {seed:#x}, mutation {n}: an altered proof was accepted"
                );
            }
        }
    }
    assert!(accepted < MUTATIONS / 10, "{accepted} mutations accepted");
}

#[test]
fn mutated_notes_and_policies_never_panic_or_pass_altered() {
    let (policy, _, note) = fixture();
    let original = policy.check(note.as_bytes()).unwrap();
    let policy_text = policy.to_toml().into_bytes();
    let mut rng = StdRng::seed_from_u64(0x0de_0001);
    for _ in 0..MUTATIONS {
        let bad = mutate(&mut rng, note.as_bytes());
        let _ = CheckpointBody::parse(&bad);
        if let Ok(accepted) = policy.check(&bad) {
            assert_eq!(accepted.body, original.body, "an altered body was accepted");
        }
        let bad_policy = mutate(&mut rng, &policy_text);
        if let Ok(text) = std::str::from_utf8(&bad_policy) {
            let _ = TrustPolicy::parse(text);
        }
    }
}

#[test]
fn random_proofs_never_panic_and_never_verify() {
    let mut tree = MemoryHashStore::new();
    for i in 0u64..100 {
        tree.append(&i.to_le_bytes()).unwrap();
    }
    let root = tree.root().unwrap();
    let mut rng = StdRng::seed_from_u64(0x9f_0002);
    for _ in 0..MUTATIONS {
        let size = rng.gen_range(0..200u64);
        let index = rng.gen_range(0..220u64);
        let hashes: Vec<[u8; 32]> = (0..rng.gen_range(0..10)).map(|_| rng.gen()).collect();
        let leaf = merkle::leaf_hash(&index.to_le_bytes());
        assert!(merkle::verify_inclusion(index, size, &leaf, &hashes, &root).is_err());
        let old = rng.gen_range(0..220u64);
        assert!(
            merkle::verify_consistency(old, size, &root, &root, &hashes).is_err() || old == size
        );
    }
}
