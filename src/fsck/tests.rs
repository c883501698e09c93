//! [`check`] end to end: ledgers written by the store, then changed through
//! redb the way a flipped bit would change them.

use std::path::Path;

use redb::{Database, Key, ReadableTable, TableDefinition, Value};

use super::*;
use crate::ledger::checkpoint::{generate_key, CheckpointBody, NoteSigner};
use crate::ledger::event::{Actor, Event, LeafRecord, Outcome};
use crate::ledger::merkle;
use crate::storage::ledger_store::hash_chunks::HASH_CHUNK_HASHES;
use crate::storage::ledger_store::{
    LedgerStore, Op, CHECKPOINTS, ENTRIES, HASH_CHUNKS, IDX_ACTOR, LEGACY_HASHES, META,
    META_INDEXED, SIGNATURES,
};

const ORIGIN: &str = "test.example/fsck";

fn event(n: u64) -> Event {
    Event {
        time_unix_nanos: 1_700_000_000_000_000_000 + n as i64,
        actor: Actor {
            id: format!("user{}", n % 3),
            ..Actor::default()
        },
        action: "db.read".into(),
        resource: format!("table{}", n % 5),
        outcome: Outcome::Success,
        source: "payments-api".into(),
        details: serde_json::Map::new(),
        idempotency_key: n.is_multiple_of(2).then(|| format!("k{n}")),
    }
}

fn signer() -> NoteSigner {
    let (skey, _) = generate_key(ORIGIN).expect("keygen");
    NoteSigner::from_skey(&skey).expect("signer")
}

/// A data dir holding `batches` batches of `per_batch` events, each
/// followed by a checkpoint that `signer` signs; closed cleanly.
fn ledger(signer: &NoteSigner, batches: u64, per_batch: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LedgerStore::open(&dir.path().join(LEDGER_FILE), ORIGIN).expect("store");
    let mut n = 0;
    for batch in 0..batches {
        let events = (0..per_batch)
            .map(|_| {
                n += 1;
                event(n)
            })
            .collect::<Vec<_>>()
            .into();
        let append = Op::Append {
            events,
            commit_time_unix_nanos: 1_700_000_000_000_000_000 + batch as i64,
        };
        store
            .apply(&[append, Op::Checkpoint], None, None)
            .expect("append");
        let checkpoint = store
            .checkpoint_at(store.tree_size().expect("size"))
            .expect("checkpoint");
        let cosign = Op::Cosign {
            size: checkpoint.body.size,
            line: signer.sign(&checkpoint.body).expect("sign"),
            verifier_key: signer.verifier_key(),
        };
        store.apply(&[cosign], None, None).expect("cosign");
    }
    store.index_all().expect("index");
    dir
}

fn trusting(signer: &NoteSigner) -> FsckOptions {
    FsckOptions {
        extra_vkeys: vec![signer.verifier_key()],
        redb_check: true,
    }
}

/// Overwrites one row the way a bit flip would, but through redb, so
/// only fsck's own checks can notice.
fn overwrite<K: Key + 'static, V: Value + 'static>(
    dir: &Path,
    def: TableDefinition<K, V>,
    key: K::SelfType<'_>,
    value: V::SelfType<'_>,
) {
    let db = Database::open(dir.join(LEDGER_FILE)).expect("open");
    let txn = db.begin_write().expect("write");
    {
        let mut table = txn.open_table(def).expect("table");
        assert!(table.insert(key, value).expect("insert").is_some());
    }
    txn.commit().expect("commit");
}

/// Overwrites stored hash `index` inside its chunk.
fn overwrite_hash(dir: &Path, index: u64, hash: &[u8; 32]) {
    let db = Database::open(dir.join(LEDGER_FILE)).expect("open");
    let txn = db.begin_write().expect("write");
    {
        let mut table = txn.open_table(HASH_CHUNKS).expect("table");
        let chunk = index / HASH_CHUNK_HASHES;
        let mut bytes = table
            .get(chunk)
            .expect("get")
            .expect("stored")
            .value()
            .to_vec();
        let at = (index % HASH_CHUNK_HASHES) as usize * 32;
        bytes[at..at + 32].copy_from_slice(hash);
        table.insert(chunk, bytes.as_slice()).expect("insert");
    }
    txn.commit().expect("commit");
}

fn kinds(report: &FsckReport) -> Vec<(ProblemKind, Option<u64>, Option<u64>)> {
    report
        .problems
        .iter()
        .map(|p| (p.kind, p.leaf_index, p.checkpoint_size))
        .collect()
}

#[test]
fn a_clean_ledger_passes_counts_everything_and_is_left_unchanged() {
    let signer = signer();
    let dir = ledger(&signer, 3, 7);
    let file = dir.path().join(LEDGER_FILE);
    let before = std::fs::read(&file).expect("read");
    let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
    assert!(report.is_ok(), "{:#?}", report.problems);
    assert_eq!(report.tree_size, 21);
    assert_eq!(report.entries_checked, 21);
    assert_eq!(report.hashes_checked, merkle::stored_hash_count(21));
    assert_eq!(report.checkpoints_checked, 3);
    assert_eq!(report.signatures_checked, 3);
    assert_eq!(report.signatures_verified, 3);
    // Four query indexes per leaf, plus the ten leaves with a key.
    assert_eq!(report.index_rows_checked, 4 * 21 + 10);
    assert_eq!(report.origin.as_deref(), Some(ORIGIN));
    assert_eq!(report.redb_check, RedbCheck::Passed);
    assert!(!report.recovered_copy);
    assert_eq!(std::fs::read(&file).expect("read"), before, "fsck wrote");
}

#[test]
fn a_query_index_run_that_does_not_decode_is_a_problem() {
    let signer = signer();
    let dir = ledger(&signer, 3, 7);
    // Leaf 0 is event 1, by user1: its actor run starts there.
    overwrite(dir.path(), IDX_ACTOR, ("user1", 0), [0x80u8].as_slice());
    let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
    let messages: Vec<&str> = report.problems.iter().map(|p| p.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains(r#"the run of actor "user1" from leaf 0 does not decode"#)),
        "{messages:#?}"
    );
    // The leaves that run named are named by no other.
    assert!(
        messages
            .iter()
            .any(|m| m.contains("idx_actor_runs names 14 leaves for 21 indexed")),
        "{messages:#?}"
    );
}

#[test]
fn leaves_waiting_for_their_query_index_rows_are_fine_but_rows_beyond_the_count_are_not() {
    let signer = signer();
    let dir = ledger(&signer, 3, 7);
    {
        let store = LedgerStore::open(&dir.path().join(LEDGER_FILE), ORIGIN).expect("store");
        let append = Op::Append {
            events: (22..=30).map(event).collect::<Vec<_>>().into(),
            commit_time_unix_nanos: 1_700_000_000_000_000_010,
        };
        store.apply(&[append], None, None).expect("append");
        assert_eq!(store.indexed_leaves().expect("count"), 21);
    }
    let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
    assert!(report.is_ok(), "{:#?}", report.problems);
    assert_eq!(report.tree_size, 30);
    // Four query index rows for each of the 21 indexed leaves, and the
    // idempotency rows of all 15 keyed leaves, which are never deferred.
    assert_eq!(report.index_rows_checked, 4 * 21 + 15);

    // A count lower than the rows stored: the rows of leaf 20 are beyond it.
    overwrite(
        dir.path(),
        META,
        META_INDEXED,
        20u64.to_be_bytes().as_slice(),
    );
    let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
    let index_problems = report
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::IndexRow)
        .count();
    assert!(index_problems >= 4, "{:#?}", report.problems);
    assert!(report
        .problems
        .iter()
        .any(|p| p.message.contains("names leaf 20, beyond the 20 leaves")));
}

#[test]
fn a_signature_by_a_key_nobody_vouches_for_is_a_problem() {
    let signer = signer();
    let dir = ledger(&signer, 2, 3);
    let report = check(dir.path(), &FsckOptions::default()).expect("fsck runs");
    assert_eq!(
        kinds(&report),
        [
            (ProblemKind::SignatureUnknownKey, None, Some(3)),
            (ProblemKind::SignatureUnknownKey, None, Some(6)),
        ]
    );
    assert_eq!(report.first_bad_leaf, None);
}

#[test]
fn a_changed_leaf_hash_names_its_leaf_once() {
    let signer = signer();
    let dir = ledger(&signer, 2, 8);
    overwrite_hash(dir.path(), merkle::stored_hash_index(0, 5), &[7u8; 32]);
    let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
    assert_eq!(
        kinds(&report),
        [(ProblemKind::LeafHashMismatch, Some(5), None)]
    );
    assert_eq!(report.first_bad_leaf, Some(5));
}

#[test]
fn a_hash_chunk_that_cannot_be_one_is_reported_and_skipped_and_the_rest_still_checked() {
    let signer = signer();
    let dir = ledger(&signer, 2, 150);
    // 300 leaves: about 600 stored hashes, five chunks. The second is cut
    // mid-hash.
    overwrite(dir.path(), HASH_CHUNKS, 1, [1u8; 40].as_slice());
    let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
    let unreadable: Vec<&String> = report
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Unreadable)
        .map(|p| &p.message)
        .collect();
    assert_eq!(unreadable.len(), 1, "{:?}", report.problems);
    assert!(
        unreadable[0].contains("hash chunk 1 is 40 bytes"),
        "{unreadable:?}"
    );
    // Its hashes are missing at the leaves that stored them, and only
    // there; every other chunk's hashes are checked.
    let chunk = HASH_CHUNK_HASHES..2 * HASH_CHUNK_HASHES;
    let stored_in_chunk = |leaf: u64| {
        (merkle::stored_hash_count(leaf)..merkle::stored_hash_count(leaf + 1))
            .any(|i| chunk.contains(&i))
    };
    for p in report
        .problems
        .iter()
        .filter(|p| p.kind != ProblemKind::Unreadable)
    {
        assert_eq!(p.kind, ProblemKind::HashMissing, "{p:?}");
        assert!(stored_in_chunk(p.leaf_index.expect("a leaf")), "{p:?}");
    }
    let missing = report
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::HashMissing)
        .count() as u64;
    assert_eq!(missing, HASH_CHUNK_HASHES);
    assert_eq!(
        report.hashes_checked,
        merkle::stored_hash_count(300) - HASH_CHUNK_HASHES
    );
}

#[test]
fn a_store_packed_then_opened_by_an_older_version_opens_again() {
    let signer = signer();
    let dir = ledger(&signer, 1, 40);
    let file = dir.path().join(LEDGER_FILE);
    let root = LedgerStore::open(&file, ORIGIN)
        .expect("store")
        .root(40)
        .expect("root");
    // An older version creates every table it knows, the per-row one too.
    let add_legacy = |rows: &[u64]| {
        let db = Database::open(&file).expect("open");
        let txn = db.begin_write().expect("write");
        {
            let mut legacy = txn.open_table(LEGACY_HASHES).expect("legacy");
            for &i in rows {
                legacy.insert(i, &[9u8; 32]).expect("insert");
            }
        }
        txn.commit().expect("commit");
    };
    add_legacy(&[]);
    let store = LedgerStore::open(&file, ORIGIN).expect("an empty per-row table is dropped");
    assert_eq!(store.root(40).expect("root"), root);
    drop(store);
    // One that appended wrote rows no packed store can take: refused, and
    // the message says what to do.
    add_legacy(&[merkle::stored_hash_count(40)]);
    let refused = LedgerStore::open(&file, ORIGIN).err().expect("refused");
    assert!(
        refused
            .to_string()
            .contains("restore the node from its peers"),
        "{refused}"
    );
}

#[test]
fn a_store_written_before_hash_chunks_is_checked_from_its_per_hash_rows() {
    let signer = signer();
    let dir = ledger(&signer, 2, 60);
    unpack_hashes(dir.path());
    let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
    assert_eq!(kinds(&report), []);
    assert_eq!(report.hashes_checked, merkle::stored_hash_count(120));
    // A changed per-hash row is still pinned to the leaf that stored it.
    overwrite(
        dir.path(),
        LEGACY_HASHES,
        merkle::stored_hash_index(0, 7),
        &[7u8; 32],
    );
    let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
    assert_eq!(
        kinds(&report),
        [(ProblemKind::LeafHashMismatch, Some(7), None)]
    );
}

#[test]
fn a_store_written_before_hash_chunks_is_packed_when_opened_and_proves_the_same() {
    let signer = signer();
    let dir = ledger(&signer, 3, 100);
    let file = dir.path().join(LEDGER_FILE);
    let proofs = |store: &LedgerStore| {
        (
            store.root(300).expect("root"),
            store.inclusion_proof(173, 300).expect("inclusion"),
            store.consistency_proof(100, 300).expect("consistency"),
        )
    };
    let before = proofs(&LedgerStore::open(&file, ORIGIN).expect("store"));
    unpack_hashes(dir.path());
    {
        let store = LedgerStore::open(&file, ORIGIN).expect("packs on open");
        assert_eq!(proofs(&store), before);
        // And it appends on from the packed chunks.
        let append = Op::Append {
            events: vec![event(1_000)].into(),
            commit_time_unix_nanos: 1_800_000_000_000_000_000,
        };
        store
            .apply(&[append, Op::Checkpoint], None, None)
            .expect("append");
    }
    let db = Database::open(&file).expect("open");
    let txn = redb::ReadableDatabase::begin_read(&db).expect("read");
    let names: Vec<String> = txn
        .list_tables()
        .expect("tables")
        .map(|t| redb::TableHandle::name(&t).to_string())
        .collect();
    assert!(names.iter().any(|n| n == "hash_chunks"), "{names:?}");
    assert!(!names.iter().any(|n| n == "hashes"), "{names:?}");
    drop((txn, db));
    let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
    assert_eq!(kinds(&report), []);
    assert_eq!(report.hashes_checked, merkle::stored_hash_count(301));
}

/// Rewrites the store's stored hashes as an older store kept them, one row
/// each, with no chunk table.
pub(crate) fn unpack_hashes(dir: &Path) {
    let db = Database::open(dir.join(LEDGER_FILE)).expect("open");
    let txn = db.begin_write().expect("write");
    {
        let chunks = txn.open_table(HASH_CHUNKS).expect("chunks");
        let mut legacy = txn.open_table(LEGACY_HASHES).expect("legacy");
        for row in chunks.range::<u64>(..).expect("range") {
            let (chunk, bytes) = row.expect("row");
            for (i, hash) in bytes.value().chunks_exact(32).enumerate() {
                let hash: &[u8; 32] = hash.try_into().expect("32 bytes");
                legacy
                    .insert(chunk.value() * HASH_CHUNK_HASHES + i as u64, hash)
                    .expect("insert");
            }
        }
    }
    txn.delete_table(HASH_CHUNKS).expect("delete");
    txn.commit().expect("commit");
}

#[test]
fn a_changed_interior_hash_names_the_leaf_that_completed_it() {
    let signer = signer();
    let dir = ledger(&signer, 2, 8);
    // Level 2, third node: leaves 8..=11, completed by leaf 11.
    overwrite_hash(dir.path(), merkle::stored_hash_index(2, 2), &[7u8; 32]);
    let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
    assert_eq!(
        kinds(&report),
        [(ProblemKind::HashMismatch, Some(11), None)]
    );
}

#[test]
fn a_changed_entry_is_the_first_bad_leaf_and_its_index_rows_disagree() {
    let signer = signer();
    let dir = ledger(&signer, 2, 8);
    let mut record = LeafRecord::decode(
        &LedgerStore::open(&dir.path().join(LEDGER_FILE), ORIGIN)
            .expect("store")
            .entries(9, 10)
            .expect("leaf")
            .0[0]
            .1,
    )
    .expect("decodes");
    record.event.actor.id = "mallory".into();
    overwrite(dir.path(), ENTRIES, 9, record.encode().as_slice());
    let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
    assert_eq!(
        kinds(&report),
        [
            (ProblemKind::LeafHashMismatch, Some(9), None),
            (ProblemKind::IndexRow, Some(9), None),
        ]
    );
    assert!(report.problems[0]
        .message
        .starts_with("stored entry hashes to "));
}

#[test]
fn a_changed_checkpoint_or_signature_names_its_size() {
    let signer = signer();
    let dir = ledger(&signer, 2, 4);
    let body = CheckpointBody {
        origin: ORIGIN.into(),
        size: 4,
        root: [1; 32],
    };
    overwrite(dir.path(), CHECKPOINTS, 4, body.to_text().as_bytes());
    let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
    assert_eq!(
        kinds(&report),
        [
            (ProblemKind::CheckpointRoot, None, Some(4)),
            (ProblemKind::SignatureInvalid, None, Some(4)),
        ]
    );

    let dir = ledger(&signer, 2, 4);
    let key = (8, signer.key_id());
    overwrite(dir.path(), SIGNATURES, key, "not a signature line\n");
    let report = check(dir.path(), &trusting(&signer)).expect("fsck runs");
    assert_eq!(
        kinds(&report),
        [(ProblemKind::SignatureMalformed, None, Some(8))]
    );
}

#[test]
fn a_running_store_is_locked_and_other_dirs_are_refused() {
    let signer = signer();
    let dir = ledger(&signer, 1, 1);
    let held = LedgerStore::open(&dir.path().join(LEDGER_FILE), ORIGIN).expect("store");
    let err = check(dir.path(), &FsckOptions::default()).expect_err("locked");
    assert!(matches!(err, FsckError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("is the node still running?"),
        "{err}"
    );
    drop(held);

    let missing = dir.path().join("nope");
    let err = check(&missing, &FsckOptions::default()).expect_err("missing");
    assert!(matches!(err, FsckError::NoDataDir { .. }), "{err}");
    let empty = tempfile::tempdir().expect("tempdir");
    let err = check(empty.path(), &FsckOptions::default()).expect_err("empty");
    assert!(matches!(err, FsckError::NotDataDir { .. }), "{err}");
    let bad_key = FsckOptions {
        extra_vkeys: vec!["not a key".into()],
        redb_check: false,
    };
    let err = check(dir.path(), &bad_key).expect_err("bad key");
    assert!(matches!(err, FsckError::BadVkey(_)), "{err}");
}

#[test]
fn a_file_that_is_not_redb_is_reported_without_panicking() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(LEDGER_FILE), vec![0x5a; 64 * 1024]).expect("write");
    match check(dir.path(), &FsckOptions::default()) {
        Ok(report) => assert!(!report.is_ok(), "{report:#?}"),
        Err(e) => assert!(!matches!(e, FsckError::Locked { .. }), "{e}"),
    }
}
