//! The ledger core checked against published test vectors and independent
//! implementations: transparency-dev Merkle proof vectors, ct-merkle and
//! rs_merkle as oracles for roots and proofs, tessera's signed checkpoints
//! and the C2SP signed-note example. Fixtures live in tests/data (see its
//! README for provenance) so these tests need nothing outside the repository.

use base64::prelude::{Engine, BASE64_STANDARD};
use ironlog::ledger::checkpoint::{
    assemble_note, open_note, verify_note_text, CheckpointBody, CheckpointError, NoteSigner,
};
use ironlog::ledger::event::{parse_details, Actor, Event, LeafRecord, Outcome};
use ironlog::ledger::merkle::{
    self, consistency_proof, inclusion_proof, verify_consistency, verify_inclusion, Hash,
    MemoryHashStore, EMPTY_ROOT,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn data_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(sub)
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
}

fn decode_b64(v: &Value) -> Vec<u8> {
    BASE64_STANDARD
        .decode(v.as_str().expect("hash is a string"))
        .expect("hash is base64")
}

/// A leaf hash or proof hash from a vector, or None when it is not 32 bytes:
/// our API's `Hash` type cannot hold it, so such a case is rejected before
/// verification (as transparency-dev's verifier rejects a wrong-size leaf hash).
fn strict_hash(v: &Value) -> Option<Hash> {
    <Hash>::try_from(decode_b64(v).as_slice()).ok()
}

fn strict_proof(v: &Value) -> Option<Vec<Hash>> {
    let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
    items.iter().map(strict_hash).collect()
}

/// A root hash from a vector. A few roots are "don't care" placeholders that
/// are not 32 bytes (e.g. base64 of "don't care 2", or empty); they are mapped
/// injectively to SHA-256("placeholder" || bytes), so equal placeholders stay
/// equal and none can equal a real tree hash. Returns whether it mapped.
fn root_hash(v: &Value) -> (Hash, bool) {
    let bytes = decode_b64(v);
    match <Hash>::try_from(bytes.as_slice()) {
        Ok(h) => (h, false),
        Err(_) => {
            let mut h = Sha256::new();
            h.update(b"placeholder");
            h.update(&bytes);
            (h.finalize().into(), true)
        }
    }
}

struct Tally {
    files: usize,
    accepted: usize,
    rejected: usize,
}

fn run_vectors(sub: &str, check: impl Fn(&Value) -> (bool, bool)) -> Tally {
    let mut files = Vec::new();
    json_files(&data_dir(sub), &mut files);
    let mut tally = Tally {
        files: files.len(),
        accepted: 0,
        rejected: 0,
    };
    for path in &files {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let want_err = case["wantErr"].as_bool().expect("wantErr");
        let (ok, used_placeholder) = check(&case);
        assert_eq!(
            ok,
            !want_err,
            "{}: {} (wantErr {want_err})",
            path.display(),
            case["desc"]
        );
        if ok {
            tally.accepted += 1;
            assert!(
                !used_placeholder || case["size1"] == case["size2"],
                "{}: accepted only thanks to a placeholder hash",
                path.display()
            );
        } else {
            tally.rejected += 1;
        }
    }
    assert!(tally.files > 0, "no vectors found under {sub}");
    assert_eq!(tally.accepted + tally.rejected, tally.files);
    tally
}

#[test]
fn inclusion_vectors_from_transparency_dev_all_agree() {
    let tally = run_vectors("merkle/inclusion", |case| {
        let (root, mapped) = root_hash(&case["root"]);
        let (Some(leaf), Some(proof)) =
            (strict_hash(&case["leafHash"]), strict_proof(&case["proof"]))
        else {
            return (false, mapped);
        };
        let ok = verify_inclusion(
            case["leafIdx"].as_u64().unwrap(),
            case["treeSize"].as_u64().unwrap(),
            &leaf,
            &proof,
            &root,
        )
        .is_ok();
        (ok, mapped)
    });
    assert!(tally.accepted > 0 && tally.rejected > tally.accepted);
}

#[test]
fn consistency_vectors_from_transparency_dev_all_agree() {
    let tally = run_vectors("merkle/consistency", |case| {
        let (root1, m1) = root_hash(&case["root1"]);
        let (root2, m2) = root_hash(&case["root2"]);
        let Some(proof) = strict_proof(&case["proof"]) else {
            return (false, m1 || m2);
        };
        let ok = verify_consistency(
            case["size1"].as_u64().unwrap(),
            case["size2"].as_u64().unwrap(),
            &root1,
            &root2,
            &proof,
        )
        .is_ok();
        (ok, m1 || m2)
    });
    assert!(tally.accepted > 0 && tally.rejected > tally.accepted);
}

/// SHA-256 behind digest 0.11's traits, which ct-merkle 0.3 needs while the
/// rest of the project is on sha2 0.10. Only glue: hashing is sha2's.
mod sha256_digest011 {
    use ct_merkle::digest::{consts::U32, FixedOutput, HashMarker, Output, OutputSizeUser, Update};

    #[derive(Clone, Default)]
    pub struct Sha256(sha2::Sha256);

    impl HashMarker for Sha256 {}

    impl OutputSizeUser for Sha256 {
        type OutputSize = U32;
    }

    impl Update for Sha256 {
        fn update(&mut self, data: &[u8]) {
            sha2::Digest::update(&mut self.0, data);
        }
    }

    impl FixedOutput for Sha256 {
        fn finalize_into(self, out: &mut Output<Self>) {
            out.copy_from_slice(&sha2::Digest::finalize(self.0));
        }
    }
}

/// RFC 9162 interior hashing for rs_merkle: domain-separated parents, and a
/// node without a sibling promoted unchanged, which yields the RFC's
/// left-balanced tree when built bottom-up.
#[derive(Clone)]
struct Rfc9162;

impl rs_merkle::Hasher for Rfc9162 {
    type Hash = Hash;

    fn hash(data: &[u8]) -> Hash {
        Sha256::digest(data).into()
    }

    fn concat_and_hash(left: &Hash, right: Option<&Hash>) -> Hash {
        match right {
            Some(right) => {
                let mut h = Sha256::new();
                h.update([0x01]);
                h.update(left);
                h.update(right);
                h.finalize().into()
            }
            None => *left,
        }
    }
}

fn chunks(bytes: &[u8]) -> Vec<Hash> {
    bytes
        .chunks(32)
        .map(|c| c.try_into().expect("32-byte hashes"))
        .collect()
}

/// A handful of distinct values in 0..n: both ends, the middle, and a few
/// pseudo-random picks (fixed seed, so failures reproduce).
fn samples(n: u64, seed: &mut u64) -> Vec<u64> {
    let mut out = vec![0, n / 2, n - 1];
    for _ in 0..3 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.push((*seed >> 33) % n);
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn roots_and_proofs_match_ct_merkle_and_rs_merkle_up_to_1000_leaves() {
    type Oracle = ct_merkle::mem_backed_tree::MemoryBackedTree<sha256_digest011::Sha256, Vec<u8>>;
    const SIZE_MAX: u64 = 1000;
    let mut ours = MemoryHashStore::new();
    let mut oracle = Oracle::new();
    let mut rs_leaves: Vec<Hash> = Vec::new();
    let mut roots = vec![EMPTY_ROOT];
    let mut seed = 0x1234_5678_u64;
    assert_eq!(ours.root().unwrap(), EMPTY_ROOT);
    assert_eq!(
        oracle.root().as_bytes().as_slice(),
        EMPTY_ROOT.as_slice(),
        "ct-merkle's empty root"
    );

    for n in 1..=SIZE_MAX {
        let data = format!("entry {n}").into_bytes();
        let mut leaf = Sha256::new();
        leaf.update([0x00]);
        leaf.update(&data);
        rs_leaves.push(leaf.finalize().into());
        assert_eq!(ours.append(&data).unwrap(), n - 1);
        oracle.push(data);

        let root = ours.root().unwrap();
        roots.push(root);
        assert_eq!(
            root.as_slice(),
            oracle.root().as_bytes().as_slice(),
            "ct-merkle root, size {n}"
        );
        let rs_root = rs_merkle::MerkleTree::<Rfc9162>::from_leaves(&rs_leaves)
            .root()
            .expect("non-empty tree has a root");
        assert_eq!(root, rs_root, "rs_merkle root, size {n}");

        for index in samples(n, &mut seed) {
            let theirs = oracle.prove_inclusion(index as usize);
            let mine = inclusion_proof(index, n, &ours).unwrap();
            assert_eq!(mine, chunks(theirs.as_bytes()), "inclusion {index} of {n}");
            verify_inclusion(
                index,
                n,
                &rs_leaves[index as usize],
                &chunks(theirs.as_bytes()),
                &root,
            )
            .unwrap_or_else(|e| panic!("ct-merkle inclusion {index} of {n}: {e}"));
        }
        for old in samples(n, &mut seed).into_iter().map(|s| s + 1) {
            let theirs = oracle.prove_consistency((n - old) as usize);
            let mine = consistency_proof(old, n, &ours).unwrap();
            assert_eq!(mine, chunks(theirs.as_bytes()), "consistency {old} -> {n}");
            verify_consistency(
                old,
                n,
                &roots[old as usize],
                &root,
                &chunks(theirs.as_bytes()),
            )
            .unwrap_or_else(|e| panic!("ct-merkle consistency {old} -> {n}: {e}"));
        }
    }
    assert_eq!(ours.size(), SIZE_MAX);
    assert_eq!(
        merkle::stored_hash_count(SIZE_MAX),
        2 * SIZE_MAX - u64::from(SIZE_MAX.count_ones())
    );
}

const TESSERA_ENTRIES: [&str; 15] = [
    "one", "two", "three", "four", "five", "six", "seven", "eit", "nain", "ten", "ileven", "twelf",
    "threeten", "fourten", "fivten",
];
const TESSERA_ORIGIN: &str = "example.com/log/testdata";
/// Published test key from transparency-dev/tessera's testdata; not a secret.
const TESSERA_SKEY: &str =
    "PRIVATE+KEY+example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg";
const TESSERA_VKEY: &str =
    "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";

fn tessera_checkpoint(n: usize) -> String {
    std::fs::read_to_string(data_dir(&format!("tlog-checkpoint/checkpoint.{n}"))).unwrap()
}

#[test]
fn tessera_checkpoints_are_reproduced_byte_for_byte_and_verify() {
    let signer = NoteSigner::from_skey(TESSERA_SKEY).unwrap();
    assert_eq!(signer.verifier_key(), TESSERA_VKEY);
    assert_eq!(signer.key_id(), 0x33d7b496);
    let mut store = MemoryHashStore::new();
    for n in 0..=TESSERA_ENTRIES.len() {
        if n > 0 {
            store.append(TESSERA_ENTRIES[n - 1].as_bytes()).unwrap();
        }
        let body = CheckpointBody {
            origin: TESSERA_ORIGIN.into(),
            size: n as u64,
            root: store.root().unwrap(),
        };
        let note = assemble_note(&body, &[signer.sign(&body).unwrap()]);
        let want = tessera_checkpoint(n);
        assert_eq!(note, want, "checkpoint.{n}");
        let (opened, keys) = open_note(want.as_bytes(), &[TESSERA_VKEY.to_string()]).unwrap();
        assert_eq!(opened, body);
        assert_eq!(keys, vec![(TESSERA_ORIGIN.to_string(), 0x33d7b496)]);
    }
}

#[test]
fn signed_note_example_verifies_and_tampering_fails() {
    let note = std::fs::read(data_dir("signed-note/example.note")).unwrap();
    let vkey = std::fs::read_to_string(data_dir("signed-note/example.vkey")).unwrap();
    let vkeys = [vkey.trim().to_string()];
    let (text, keys) = verify_note_text(&note, &vkeys).unwrap();
    assert_eq!(text, b"This is an example message.\n");
    assert_eq!(keys, vec![("example.com/foo".to_string(), 0x530d903a)]);
    // Not a checkpoint, so open_note refuses the (verified) text.
    assert!(matches!(
        open_note(&note, &vkeys),
        Err(CheckpointError::MalformedBody { .. })
    ));
    let mut tampered = note.clone();
    tampered[5] ^= 0x20; // "is" -> "Is"
    assert!(matches!(
        verify_note_text(&tampered, &vkeys),
        Err(CheckpointError::BadSignature { .. })
    ));
}

#[test]
fn every_single_byte_change_to_a_checkpoint_note_is_rejected() {
    let note = tessera_checkpoint(7).into_bytes();
    let vkeys = [TESSERA_VKEY.to_string()];
    assert!(open_note(&note, &vkeys).is_ok());
    for i in 0..note.len() {
        let mut changed = note.clone();
        changed[i] ^= 0x01;
        assert!(
            open_note(&changed, &vkeys).is_err(),
            "flip at byte {i} accepted"
        );
    }
    for len in 0..note.len() {
        assert!(
            open_note(&note[..len], &vkeys).is_err(),
            "prefix of {len} bytes accepted"
        );
    }
}

/// Signs arbitrary text with the tessera test key, to reach the body parser
/// with notes whose signatures are valid.
fn signed_text(text: &str) -> Vec<u8> {
    let signer = signed_note::StandardSigner::new(TESSERA_SKEY).unwrap();
    let mut note = signed_note::Note::new(text.as_bytes(), &[]).unwrap();
    note.add_sigs(&[&signer]).unwrap();
    note.to_bytes()
}

#[test]
fn malformed_notes_and_bodies_are_errors_not_panics() {
    let vkeys = [TESSERA_VKEY.to_string()];
    let good = tessera_checkpoint(3);
    let (body_text, sig_line) = good.split_once("\n\n").unwrap();
    let root = body_text.lines().nth(2).unwrap();

    let malformed: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\n".to_vec(),
        body_text.as_bytes().to_vec(),
        format!("{body_text}\n").into_bytes(),
        format!("{body_text}\n\n").into_bytes(),
        format!("{body_text}\n{sig_line}").into_bytes(),
        format!("{body_text}\n\n{}", sig_line.trim_end()).into_bytes(),
        format!("{body_text}\n\n\u{2014} example.com/log/testdata !!!notbase64!!!\n").into_bytes(),
        format!("{body_text}\n\n\u{2014} example.com/log/testdata AAAA\n").into_bytes(),
        format!(
            "{body_text}\n\n- example.com/log/testdata {}\n",
            sig_line[29..].trim_end()
        )
        .into_bytes(),
        format!("{body_text}\r\n\n{sig_line}").into_bytes(),
        [&good.as_bytes()[..5], b"\xff", &good.as_bytes()[6..]].concat(),
        vec![0xff; 4096],
    ];
    for note in &malformed {
        let result = open_note(note, &vkeys);
        assert!(
            matches!(result, Err(CheckpointError::MalformedNote { .. })),
            "{:?}: {result:?}",
            String::from_utf8_lossy(note)
        );
    }

    // Well-formed notes that no trusted key signed.
    let (_, other_vkey) = ironlog::ledger::checkpoint::generate_key(TESSERA_ORIGIN).unwrap();
    assert_eq!(
        open_note(good.as_bytes(), &[other_vkey]),
        Err(CheckpointError::NoTrustedSignature { keys: 1 })
    );
    let unknown_only = format!(
        "{body_text}\n\n\u{2014} someone.else/log {}\n",
        sig_line.rsplit(' ').next().unwrap().trim_end()
    );
    assert_eq!(
        open_note(unknown_only.as_bytes(), &vkeys),
        Err(CheckpointError::NoTrustedSignature { keys: 1 })
    );
    assert!(matches!(
        open_note(good.as_bytes(), &["garbage".to_string()]),
        Err(CheckpointError::InvalidKey { .. })
    ));
    // A trusted signature plus an unknown one still opens.
    let with_unknown = format!("{good}{}", unknown_only.split_once("\n\n").unwrap().1);
    assert!(open_note(with_unknown.as_bytes(), &vkeys).is_ok());

    // Validly signed texts that are not Ironlog checkpoint bodies.
    let bad_bodies = [
        format!("{TESSERA_ORIGIN}\n3\n"),
        format!("{TESSERA_ORIGIN}\n03\n{root}\n"),
        format!("{TESSERA_ORIGIN}\n3\n{root}extra\n"),
        format!("{TESSERA_ORIGIN}\nthree\n{root}\n"),
        format!("{TESSERA_ORIGIN}\n3\nAAAA\n"),
        "just one line\n".to_string(),
    ];
    for text in &bad_bodies {
        let result = open_note(&signed_text(text), &vkeys);
        assert!(
            matches!(result, Err(CheckpointError::MalformedBody { .. })),
            "{text:?}: {result:?}"
        );
    }
    let with_extension = format!("{TESSERA_ORIGIN}\n3\n{root}\nextension line\n");
    assert!(matches!(
        open_note(&signed_text(&with_extension), &vkeys),
        Err(CheckpointError::BodyExtension { .. })
    ));
}

#[test]
fn golden_leaf_in_format_doc_matches_the_encoder() {
    let record = LeafRecord {
        index: 7,
        commit_time_unix_nanos: 1_700_000_000_123_456_789,
        event: Event {
            time_unix_nanos: 1_700_000_000_000_000_000,
            actor: Actor {
                id: "alice".into(),
                kind: Some("user".into()),
                ip: None,
                user_agent: None,
            },
            action: "login".into(),
            resource: "console".into(),
            outcome: Outcome::Denied,
            source: "auth".into(),
            details: parse_details(r#"{"reason":"mfa","attempt":2}"#).unwrap(),
            idempotency_key: Some("k1".into()),
        },
    };
    record.event.validate().unwrap();
    let encoded = record.encode();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/FORMAT.md"))
        .unwrap();
    let doc_hex: String = doc.split_whitespace().collect();
    assert!(
        doc_hex.contains(&hex(&encoded)),
        "FORMAT.md lacks the golden leaf hex"
    );
    assert!(
        doc_hex.contains(&hex(&merkle::leaf_hash(&encoded))),
        "FORMAT.md lacks the golden leaf hash"
    );
    assert_eq!(LeafRecord::decode(&encoded).unwrap(), record);
}
