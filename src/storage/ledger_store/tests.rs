//! The store's unit tests. They share one fixture, a store holding a
//! checkpoint signed by one voter, across appends, checkpoints, witness
//! cosignatures and snapshots, so they are kept together.

use std::io::BufReader;
use std::path::Path;

use super::checkpoints::CHECKPOINT_VOTER_LINES_MAX;
use super::snapshot::{read_record, write_record, TAG_END, TAG_LEAF, TAG_META, TAG_SIGNATURE};
use redb::TableHandle;

use super::tables::{INDEX_TABLES, LEGACY_OUTCOME_INDEX, LEGACY_STR_INDEXES};
use super::*;
use crate::ledger::checkpoint::{self, generate_key, CheckpointBody, NoteSigner};
use crate::ledger::cosignature::Cosigner;
use crate::ledger::event::{Actor, Event, LeafRecord, Outcome};
use crate::ledger::merkle::Hash;
use crate::limits::CHECKPOINT_WITNESS_LINES_MAX;

const ORIGIN: &str = "ironlog.test/log";

fn event(n: u64) -> Event {
    Event {
        time_unix_nanos: n as i64 + 1,
        actor: Actor {
            id: "alice".into(),
            kind: None,
            ip: None,
            user_agent: None,
        },
        action: "read".into(),
        resource: format!("r{n}"),
        outcome: Outcome::Success,
        source: "test".into(),
        details: Default::default(),
        idempotency_key: Some(format!("k{n}")),
    }
}

fn voter() -> (NoteSigner, String) {
    let (skey, vkey) = generate_key(ORIGIN).unwrap();
    (NoteSigner::from_skey(&skey).unwrap(), vkey)
}

fn witness(name: &str) -> Cosigner {
    Cosigner::from_skey(&Cosigner::generate(name).unwrap().0).unwrap()
}

fn cosign_op(signer: &NoteSigner, vkey: &str, body: &CheckpointBody) -> Op {
    Op::Cosign {
        size: body.size,
        line: signer.sign(body).unwrap(),
        verifier_key: vkey.to_string(),
    }
}

/// A store holding a checkpoint at size 3 signed by one voter, whose
/// verifier key is returned.
fn store_with_checkpoint(dir: &Path) -> (LedgerStore, CheckpointBody, String) {
    let store = LedgerStore::open(&dir.join("ledger.redb"), ORIGIN).unwrap();
    let append = Op::Append {
        events: (0..3).map(event).collect::<Vec<_>>().into(),
        commit_time_unix_nanos: 1,
    };
    store.apply(&[append, Op::Checkpoint], None, None).unwrap();
    let body = store.checkpoint_at(3).unwrap().body;
    let (signer, vkey) = voter();
    assert_eq!(
        store
            .apply(&[cosign_op(&signer, &vkey, &body)], None, None)
            .unwrap(),
        vec![OpResult::Cosigned { accepted: true }]
    );
    (store, body, vkey)
}

fn set_witnesses(store: &LedgerStore, keys: &[String]) -> OpResult {
    let op = Op::SetWitnesses {
        verifier_keys: keys.to_vec(),
    };
    store.apply(&[op], None, None).unwrap().remove(0)
}

fn witness_op(body: &CheckpointBody, witness: &Cosigner, time: u64) -> Op {
    Op::WitnessCosign {
        size: body.size,
        line: witness.cosign(body, time).unwrap(),
        verifier_key: witness.verifier_key(),
    }
}

fn is_refused(result: &OpResult) -> bool {
    result.refusal().is_some()
}

/// Everything a refused op could have touched, to compare before/after.
fn fingerprint(store: &LedgerStore) -> (StateMeta, Hash, Leaves, QueryPage, Vec<u64>) {
    let size = store.tree_size().unwrap();
    (
        store.meta().unwrap(),
        store.root(size).unwrap(),
        store.entries(0, size + 10).unwrap().0,
        store
            .query(
                &QueryFilter {
                    actor: Some("alice".into()),
                    ..Default::default()
                },
                100,
                None,
            )
            .unwrap(),
        store.checkpoint_sizes(100).unwrap(),
    )
}

#[test]
fn an_invalid_batch_is_refused_at_apply_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, _) = store_with_checkpoint(dir.path());
    let before = fingerprint(&store);
    let spoilers: [&dyn Fn(&mut Event); 6] = [
        &|e| e.actor.id = "eve\u{7}".into(),
        &|e| e.time_unix_nanos = 0,
        &|e| e.time_unix_nanos = -5,
        &|e| e.action.clear(),
        &|e| e.resource.clear(),
        &|e| e.source = "s".repeat(crate::limits::FIELD_BYTES_MAX + 1),
    ];
    for spoil in spoilers {
        // The bad event is the last of the batch: the valid ones before
        // it must not be written either.
        let mut events: Vec<Event> = (10..13).map(event).collect();
        spoil(&mut events[2]);
        let op = Op::Append {
            events: events.into(),
            commit_time_unix_nanos: 100,
        };
        let result = store.apply(&[op], None, None).unwrap().remove(0);
        assert!(
            result.refusal().unwrap().starts_with("event 2:"),
            "{result:?}"
        );
        assert_eq!(fingerprint(&store), before);
    }
    for (events, commit_time) in [
        ((10..13).map(event).collect::<Vec<_>>(), 0),
        ((10..13).map(event).collect(), -1),
        (Vec::new(), 100),
        (
            (0..crate::limits::BATCH_EVENTS_MAX as u64 + 1)
                .map(event)
                .collect(),
            100,
        ),
    ] {
        let op = Op::Append {
            events: events.into(),
            commit_time_unix_nanos: commit_time,
        };
        assert!(is_refused(&store.apply(&[op], None, None).unwrap()[0]));
        assert_eq!(fingerprint(&store), before);
    }
    // A valid batch still goes in after the refusals.
    let op = Op::Append {
        events: (10..13).map(event).collect::<Vec<_>>().into(),
        commit_time_unix_nanos: 100,
    };
    assert!(matches!(
        store.apply(&[op], None, None).unwrap()[0],
        OpResult::Appended { tree_size: 6, .. }
    ));
}

#[test]
fn witness_cosignatures_are_kept_apart_from_voter_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let (store, body, _) = store_with_checkpoint(dir.path());
    let witness = witness("witness.test/w1");
    assert_eq!(
        set_witnesses(&store, &[witness.verifier_key()]),
        OpResult::WitnessesSet { changed: true }
    );
    let results = store
        .apply(&[witness_op(&body, &witness, 7)], None, None)
        .unwrap();
    assert_eq!(results, vec![OpResult::WitnessCosigned { accepted: true }]);

    let cp = store.checkpoint_at(3).unwrap();
    assert_eq!(cp.signatures.len(), 1);
    assert_eq!(cp.witness_signatures.len(), 1);
    // A witness does not make up for a missing voter.
    assert_eq!(store.latest_checkpoint(2).unwrap(), None);
    let note = cp.note();
    let voter_at = note.find(&cp.signatures[0].to_line()).unwrap();
    let witness_at = note.find(&cp.witness_signatures[0].to_line()).unwrap();
    assert!(voter_at < witness_at, "voters first, then witnesses");

    // The same witness again at the same size keeps the first line.
    store
        .apply(&[witness_op(&body, &witness, 8)], None, None)
        .unwrap();
    assert_eq!(store.checkpoint_at(3).unwrap(), cp);
}

#[test]
fn cosignatures_are_refused_unless_their_key_is_a_replicated_witness_key() {
    let dir = tempfile::tempdir().unwrap();
    let (store, body, _) = store_with_checkpoint(dir.path());
    let w1 = witness("witness.test/w1");
    // No set yet: nothing is accepted, whatever key the command carries.
    let result = store
        .apply(&[witness_op(&body, &w1, 7)], None, None)
        .unwrap()
        .remove(0);
    assert!(result
        .refusal()
        .unwrap()
        .contains("not in the replicated witness set"));
    set_witnesses(&store, &[w1.verifier_key()]);
    let stranger = witness("witness.test/junk");
    let result = store
        .apply(&[witness_op(&body, &stranger, 7)], None, None)
        .unwrap()
        .remove(0);
    assert!(result.refusal().unwrap().contains("witness.test/junk"));
    assert!(store
        .checkpoint_at(3)
        .unwrap()
        .witness_signatures
        .is_empty());
}

#[test]
fn invalid_witness_cosignatures_are_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (store, body, _) = store_with_checkpoint(dir.path());
    let witness = witness("witness.test/w1");
    let other = super::tests::witness("witness.test/w2");
    set_witnesses(&store, &[witness.verifier_key(), other.verifier_key()]);
    let mut other_body = body.clone();
    other_body.root[0] ^= 1;
    let ops = [
        // Over another root.
        Op::WitnessCosign {
            size: 3,
            line: witness.cosign(&other_body, 1).unwrap(),
            verifier_key: witness.verifier_key(),
        },
        // Claimed for another key.
        Op::WitnessCosign {
            size: 3,
            line: witness.cosign(&body, 1).unwrap(),
            verifier_key: other.verifier_key(),
        },
        // A voter key given as a witness key.
        Op::WitnessCosign {
            size: 3,
            line: witness.cosign(&body, 1).unwrap(),
            verifier_key: generate_key(ORIGIN).unwrap().1,
        },
        // No checkpoint at that size.
        Op::WitnessCosign {
            size: 2,
            line: witness.cosign(&body, 1).unwrap(),
            verifier_key: witness.verifier_key(),
        },
    ];
    let results = store.apply(&ops, None, None).unwrap();
    assert!(results.iter().all(is_refused), "{results:?}");
    assert!(store
        .checkpoint_at(3)
        .unwrap()
        .witness_signatures
        .is_empty());
}

#[test]
fn a_witness_set_is_validated_before_it_replaces_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, voter_key) = store_with_checkpoint(dir.path());
    let w1 = witness("witness.test/w1").verifier_key();
    let w2 = witness("witness.test/w2").verifier_key();
    assert_eq!(
        set_witnesses(&store, &[w1.clone(), w2.clone()]),
        OpResult::WitnessesSet { changed: true }
    );
    assert_eq!(
        set_witnesses(&store, &[w1.clone(), w2.clone()]),
        OpResult::WitnessesSet { changed: false }
    );
    let too_many: Vec<String> = (0..=crate::config::WITNESSES_MAX)
        .map(|i| witness(&format!("witness.test/w{i}")).verifier_key())
        .collect();
    for bad in [
        vec![w1.clone(), w1.clone()],
        vec![voter_key, w1.clone()],
        vec!["not a key".into()],
        vec![format!(" {w1}")],
        too_many,
    ] {
        assert!(is_refused(&set_witnesses(&store, &bad)), "{bad:?}");
        assert_eq!(store.witness_keys().unwrap(), vec![w1.clone(), w2.clone()]);
    }
    // Removing a key remembers it, so its old cosignatures still install.
    set_witnesses(&store, std::slice::from_ref(&w2));
    let keys = store.meta().unwrap().witnesses.unwrap();
    assert_eq!(keys.current, vec![w2.clone()]);
    assert_eq!(keys.former, vec![w1.clone()]);
    assert_eq!(keys.legacy_through_size, Some(3));
    assert!(same_witness_keys(
        &[format!("{w2}\n")],
        &store.witness_keys().unwrap()
    ));
    assert!(!same_witness_keys(&[w1], &store.witness_keys().unwrap()));
}

#[test]
fn a_checkpoint_never_carries_more_lines_than_a_note_may() {
    let dir = tempfile::tempdir().unwrap();
    let (store, body, _) = store_with_checkpoint(dir.path());
    // Witness lines: fill the set's share, then swap the whole set.
    let first: Vec<Cosigner> = (0..CHECKPOINT_WITNESS_LINES_MAX)
        .map(|i| witness(&format!("witness.test/a{i}")))
        .collect();
    let keys: Vec<String> = first.iter().map(Cosigner::verifier_key).collect();
    set_witnesses(&store, &keys);
    let ops: Vec<Op> = first.iter().map(|w| witness_op(&body, w, 1)).collect();
    let results = store.apply(&ops, None, None).unwrap();
    assert!(results
        .iter()
        .all(|r| *r == OpResult::WitnessCosigned { accepted: true }));
    let late = witness("witness.test/late");
    set_witnesses(&store, &[late.verifier_key()]);
    let result = store
        .apply(&[witness_op(&body, &late, 1)], None, None)
        .unwrap()
        .remove(0);
    assert!(result
        .refusal()
        .unwrap()
        .contains("witness cosignature lines"));

    // Voter lines: one voter already signed; fill the rest, then one more.
    let signers: Vec<(NoteSigner, String)> =
        (1..=CHECKPOINT_VOTER_LINES_MAX).map(|_| voter()).collect();
    let ops: Vec<Op> = signers
        .iter()
        .map(|(s, k)| cosign_op(s, k, &body))
        .collect();
    let results = store.apply(&ops, None, None).unwrap();
    assert!(results[..CHECKPOINT_VOTER_LINES_MAX - 1]
        .iter()
        .all(|r| *r == OpResult::Cosigned { accepted: true }));
    assert!(is_refused(&results[CHECKPOINT_VOTER_LINES_MAX - 1]));
    // Re-signing by a voter already there replaces its line.
    let (s, k) = &signers[0];
    assert_eq!(
        store.apply(&[cosign_op(s, k, &body)], None, None).unwrap(),
        vec![OpResult::Cosigned { accepted: true }]
    );
    let cp = store.checkpoint_at(3).unwrap();
    assert_eq!(cp.signatures.len(), CHECKPOINT_VOTER_LINES_MAX);
    assert_eq!(cp.witness_signatures.len(), CHECKPOINT_WITNESS_LINES_MAX);
    let vkeys: Vec<String> = signers[..2].iter().map(|(_, k)| k.clone()).collect();
    checkpoint::verify_note_text(cp.note().as_bytes(), &vkeys).unwrap();
}

#[test]
fn the_latest_checkpoint_always_has_a_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let (store, body, _) = store_with_checkpoint(dir.path());
    assert_eq!(store.latest_checkpoint(1).unwrap().unwrap().body, body);
    assert_eq!(store.latest_checkpoint(2).unwrap(), None);
    // A newer checkpoint with no signature is never served, not even
    // to a caller asking for no signatures at all.
    let op = Op::Append {
        events: vec![event(9)].into(),
        commit_time_unix_nanos: 2,
    };
    store.apply(&[op, Op::Checkpoint], None, None).unwrap();
    assert_eq!(store.latest_checkpoint(0).unwrap().unwrap().body, body);
    assert_eq!(
        store.latest_signed_checkpoint(1).unwrap().unwrap().body,
        body
    );
    let fresh = LedgerStore::open(&dir.path().join("fresh.redb"), ORIGIN).unwrap();
    fresh.apply(&[Op::Checkpoint], None, None).unwrap();
    assert_eq!(fresh.latest_checkpoint(0).unwrap(), None);
}

/// Rewrites a snapshot file record by record.
fn rewrite_snapshot(path: &Path, mut edit: impl FnMut(u8, Vec<u8>) -> Option<Vec<u8>>) {
    let mut input = BufReader::new(std::fs::File::open(path).unwrap());
    let mut out = Vec::new();
    loop {
        let (tag, rec) = read_record(&mut input).unwrap();
        if let Some(rec) = edit(tag, rec) {
            write_record(&mut out, tag, &rec).unwrap();
        }
        if tag == TAG_END {
            break;
        }
    }
    std::fs::write(path, out).unwrap();
}

fn voters(keys: &[&String]) -> impl FnOnce(&StateMeta) -> Result<Vec<String>, String> {
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    move |_| Ok(keys)
}

#[test]
fn snapshots_carry_witness_cosignatures_and_the_witness_set() {
    let dir = tempfile::tempdir().unwrap();
    let (store, body, vkey) = store_with_checkpoint(dir.path());
    let witness = witness("witness.test/w1");
    set_witnesses(&store, &[witness.verifier_key()]);
    store
        .apply(&[witness_op(&body, &witness, 7)], None, None)
        .unwrap();
    let snap = dir.path().join("snap");
    store.export_snapshot(&snap).unwrap();

    let other = LedgerStore::open(&dir.path().join("other.redb"), ORIGIN).unwrap();
    other.import_snapshot(&snap, voters(&[&vkey])).unwrap();
    assert_eq!(
        other.checkpoint_at(3).unwrap(),
        store.checkpoint_at(3).unwrap()
    );
    assert_eq!(other.witness_keys().unwrap(), vec![witness.verifier_key()]);

    // A snapshot whose witness cosignature does not verify is refused,
    // and the state it would have replaced is kept.
    let mut bytes = std::fs::read(&snap).unwrap();
    let line = witness.cosign(&body, 7).unwrap().to_line();
    let mut forged_line = witness.cosign(&body, 7).unwrap();
    forged_line.signature[20] ^= 1;
    let forged_line = forged_line.to_line();
    assert_eq!(forged_line.len(), line.len());
    let at = bytes
        .windows(line.len())
        .position(|w| w == line.as_bytes())
        .expect("the cosignature is in the snapshot");
    bytes[at..at + line.len()].copy_from_slice(forged_line.as_bytes());
    let forged = dir.path().join("forged");
    std::fs::write(&forged, bytes).unwrap();
    let before = fingerprint(&other);
    assert!(matches!(
        other.import_snapshot(&forged, voters(&[&vkey])),
        Err(StoreError::BadSnapshot(_))
    ));
    assert_eq!(fingerprint(&other), before);
}

#[test]
fn a_snapshot_cosignature_by_a_key_outside_its_witness_set_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (store, body, vkey) = store_with_checkpoint(dir.path());
    let w1 = witness("witness.test/w1");
    set_witnesses(&store, &[w1.verifier_key()]);
    store
        .apply(&[witness_op(&body, &w1, 7)], None, None)
        .unwrap();
    // Removed later: its cosignature stays and still installs.
    set_witnesses(&store, &[]);
    let snap = dir.path().join("snap");
    store.export_snapshot(&snap).unwrap();
    let other = LedgerStore::open(&dir.path().join("other.redb"), ORIGIN).unwrap();
    other.import_snapshot(&snap, voters(&[&vkey])).unwrap();
    assert_eq!(other.checkpoint_at(3).unwrap().witness_signatures.len(), 1);

    // The same snapshot claiming a witness set that never held the key.
    rewrite_snapshot(&snap, |tag, rec| {
        if tag != TAG_META {
            return Some(rec);
        }
        let mut meta: StateMeta = serde_json::from_slice(&rec).unwrap();
        meta.witnesses = Some(WitnessKeys::default());
        Some(serde_json::to_vec(&meta).unwrap())
    });
    let fresh = LedgerStore::open(&dir.path().join("fresh.redb"), ORIGIN).unwrap();
    let err = fresh.import_snapshot(&snap, voters(&[&vkey])).unwrap_err();
    assert!(err.to_string().contains("checkpoint 3"), "{err}");
    assert_eq!(fresh.tree_size().unwrap(), 0);
}

#[test]
fn a_snapshot_leaf_that_append_would_refuse_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, vkey) = store_with_checkpoint(dir.path());
    let snap = dir.path().join("snap");
    store.export_snapshot(&snap).unwrap();
    let target = LedgerStore::open(&dir.path().join("target.redb"), ORIGIN).unwrap();
    let before = fingerprint(&target);
    // Leaf 0 replaced by one with a control character and no action:
    // its index and encoding are right, only the gate can tell.
    rewrite_snapshot(&snap, |tag, rec| {
        if tag != TAG_LEAF {
            return Some(rec);
        }
        let mut record = LeafRecord::decode(&rec).unwrap();
        if record.index == 0 {
            record.event.actor.id = "mallory\n\0".into();
            record.event.action = String::new();
            return Some(record.encode());
        }
        Some(rec)
    });
    let err = target.import_snapshot(&snap, voters(&[&vkey])).unwrap_err();
    assert!(err.to_string().contains("leaf 0 fails validation"), "{err}");
    assert_eq!(fingerprint(&target), before, "nothing written");
}

#[test]
fn a_snapshot_is_refused_if_a_voter_signature_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (store, body, vkey) = store_with_checkpoint(dir.path());
    let snap = dir.path().join("snap");
    store.export_snapshot(&snap).unwrap();
    let target = LedgerStore::open(&dir.path().join("target.redb"), ORIGIN).unwrap();
    target
        .apply(
            &[Op::Append {
                events: vec![event(50)].into(),
                commit_time_unix_nanos: 5,
            }],
            None,
            None,
        )
        .unwrap();
    let before = fingerprint(&target);

    // A signature of another tree filed under this checkpoint.
    let mut other = body.clone();
    other.root[3] ^= 1;
    let line = store.checkpoint_at(3).unwrap().signatures[0].clone();
    let (name, key_id) = (line.name.clone(), line.key_id);
    rewrite_snapshot(&snap, |tag, rec| {
        if tag != TAG_SIGNATURE {
            return Some(rec);
        }
        let mut forged = line.clone();
        forged.signature[10] ^= 1;
        let mut rec = 3u64.to_be_bytes().to_vec();
        rec.extend_from_slice(forged.to_line().as_bytes());
        Some(rec)
    });
    let err = target.import_snapshot(&snap, voters(&[&vkey])).unwrap_err();
    assert!(err.to_string().contains("checkpoint 3"), "{err}");
    assert_eq!(fingerprint(&target), before, "nothing written");

    // A signature by a key the membership does not list cannot be
    // verified: left out, the rest installs.
    store.export_snapshot(&snap).unwrap();
    let (_, stranger) = voter();
    target.import_snapshot(&snap, voters(&[&stranger])).unwrap();
    assert!(target.checkpoint_at(3).unwrap().signatures.is_empty());
    target.import_snapshot(&snap, voters(&[&vkey])).unwrap();
    let sigs = target.checkpoint_at(3).unwrap().signatures;
    assert_eq!((sigs[0].name.clone(), sigs[0].key_id), (name, key_id));

    // What the caller's check refuses is refused before anything is written.
    let err = target
        .import_snapshot(&snap, |_| Err("metadata disagrees".into()))
        .unwrap_err();
    assert!(err.to_string().contains("metadata disagrees"));
    assert_eq!(target.checkpoint_at(3).unwrap().signatures.len(), 1);
}

fn append_events(store: &LedgerStore, range: std::ops::Range<u64>) {
    let append = Op::Append {
        events: range.map(event).collect::<Vec<_>>().into(),
        commit_time_unix_nanos: 1,
    };
    let result = store.apply(&[append], None, None).unwrap().remove(0);
    assert!(!is_refused(&result), "{result:?}");
}

#[test]
fn a_manifest_names_the_stored_leaves_and_expands_to_the_state_it_was_cut_at() {
    let dir = tempfile::tempdir().unwrap();
    let (store, body, vkey) = store_with_checkpoint(dir.path());
    let first = dir.path().join("first.manifest");
    store.write_manifest(&first).unwrap();
    for start in (3..3003).step_by(500) {
        append_events(&store, start..start + 500);
    }
    let path = dir.path().join("cut.manifest");
    let cut = store.write_manifest(&path).unwrap();
    assert_eq!(cut.tree_size, 3003);

    // Its size is the non-leaf state's: 3,000 more leaves (about 200 KB)
    // add only the digits of the tree size, and no leaf is in it.
    let first_len = std::fs::metadata(&first).unwrap().len();
    let manifest = std::fs::read(&path).unwrap();
    assert!(
        manifest.len() as u64 <= first_len + 16,
        "{} bytes after 3,000 leaves, {first_len} before",
        manifest.len()
    );
    let leaf = LeafRecord {
        index: 2000,
        commit_time_unix_nanos: 1,
        event: event(2000),
    }
    .encode();
    assert!(!manifest.windows(leaf.len()).any(|w| w == leaf.as_slice()));

    // The log grows after the cut; the expansion is still the state at it.
    append_events(&store, 3003..3010);
    let mut expanded = Vec::new();
    std::io::Read::read_to_end(
        &mut SnapshotReader::expanding(&store, std::fs::File::open(&path).unwrap()),
        &mut expanded,
    )
    .unwrap();
    let other = LedgerStore::open(&dir.path().join("other.redb"), ORIGIN).unwrap();
    let installed = other
        .import_snapshot_from(expanded.as_slice(), voters(&[&vkey]))
        .unwrap();
    assert_eq!(installed, cut);
    assert_eq!(
        other.indexed_leaves().unwrap(),
        3003,
        "an install indexes all"
    );
    assert_eq!(other.root(3003).unwrap(), store.root(3003).unwrap());
    assert_eq!(
        other.entries(2990, 4000).unwrap().0,
        store.entries(2990, 3003).unwrap().0
    );
    assert_eq!(other.checkpoint_at(3).unwrap().body, body);
    assert_eq!(
        other.checkpoint_at(3).unwrap().signatures,
        store.checkpoint_at(3).unwrap().signatures
    );

    // A full export is the same stream, written out.
    let full = dir.path().join("full");
    store.export_snapshot(&full).unwrap();
    assert!(std::fs::metadata(&full).unwrap().len() > expanded.len() as u64);
}

#[test]
fn a_manifest_is_never_installed_from_a_peer_nor_expanded_over_a_shorter_store() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _body, vkey) = store_with_checkpoint(dir.path());
    let path = dir.path().join("cut.manifest");
    store.write_manifest(&path).unwrap();

    // Sent as it is, it names leaves the receiver does not have: refused,
    // and the receiver's state is kept.
    let other = LedgerStore::open(&dir.path().join("other.redb"), ORIGIN).unwrap();
    append_events(&other, 0..2);
    let before = fingerprint(&other);
    match other.import_snapshot(&path, voters(&[&vkey])) {
        Err(StoreError::BadSnapshot(why)) => assert!(why.contains("unknown record tag"), "{why}"),
        other => panic!("a manifest from a peer was not refused: {other:?}"),
    }
    assert_eq!(fingerprint(&other), before);

    // Expanded over a store with fewer leaves than it names, the reader
    // fails rather than send a short snapshot.
    let mut out = Vec::new();
    let err = std::io::Read::read_to_end(
        &mut SnapshotReader::expanding(&other, std::fs::File::open(&path).unwrap()),
        &mut out,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("names 3 leaves but the store has 2"),
        "{err}"
    );
}

#[test]
fn a_group_applies_each_batch_alone_and_refuses_only_what_one_batch_may_not_hold() {
    let dir = tempfile::tempdir().unwrap();
    let store = LedgerStore::open(&dir.path().join("ledger.redb"), ORIGIN).unwrap();
    let group = Op::AppendGroup {
        batches: vec![
            (0..2).map(event).collect::<Vec<_>>().into(),
            // Refused alone: an empty batch.
            Vec::new().into(),
            // Event 1's key again: deduplicated against the first batch.
            vec![event(1), event(5)].into(),
        ],
        commit_time_unix_nanos: 7,
    };
    let results = store.apply(&[group], None, None).unwrap();
    let [OpResult::Grouped { results }] = results.as_slice() else {
        panic!("{results:?}");
    };
    assert_eq!(
        results[0],
        OpResult::Appended {
            indices: vec![0, 1],
            deduplicated: vec![false, false],
            tree_size: 2
        }
    );
    assert!(is_refused(&results[1]), "{:?}", results[1]);
    assert_eq!(
        results[2],
        OpResult::Appended {
            indices: vec![1, 2],
            deduplicated: vec![true, false],
            tree_size: 3
        }
    );
    let (leaves, size) = store.entries(0, 10).unwrap();
    assert_eq!(size, 3);
    let last = LeafRecord::decode(&leaves[2].1).unwrap();
    assert_eq!((last.event, last.commit_time_unix_nanos), (event(5), 7));

    // A group larger than one batch may be is refused whole.
    let before = fingerprint(&store);
    let half = crate::limits::BATCH_EVENTS_MAX as u64 / 2;
    let big = Op::AppendGroup {
        batches: vec![
            (10..10 + half).map(event).collect::<Vec<_>>().into(),
            (20_000..20_001 + half)
                .map(event)
                .collect::<Vec<_>>()
                .into(),
        ],
        commit_time_unix_nanos: 8,
    };
    let result = store.apply(&[big], None, None).unwrap().remove(0);
    assert!(
        result
            .refusal()
            .is_some_and(|r| r.contains("more than one batch may")),
        "{result:?}"
    );
    assert_eq!(fingerprint(&store), before);
}

/// Every page of `filter`'s results, following the continuation tokens.
fn query_all(store: &LedgerStore, filter: &QueryFilter, page_size: u64) -> Vec<u64> {
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = store.query(filter, page_size, token.as_deref()).unwrap();
        found.extend(page.entries.iter().map(|(i, _)| *i));
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => return found,
        }
    }
}

/// Events whose fields repeat with different periods, so every filter
/// matches a scattered set of leaves.
fn varied_event(n: u64) -> Event {
    Event {
        actor: Actor {
            id: ["alice", "bob"][(n % 2) as usize].into(),
            ..event(n).actor
        },
        action: ["read", "write", "delete"][(n % 3) as usize].into(),
        resource: format!("r{}", n % 7),
        outcome: [Outcome::Success, Outcome::Failure][usize::from(n.is_multiple_of(5))],
        ..event(n)
    }
}

#[test]
fn queries_find_every_match_whether_or_not_its_index_rows_are_written_yet() {
    use crate::limits::INDEX_DEFER_LEAVES;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let store = LedgerStore::open(&path, ORIGIN).unwrap();
    // Batches of 1 to 7 events, until two deferred rounds have been
    // indexed and some leaves still wait.
    let total = 2 * INDEX_DEFER_LEAVES + 37;
    append_varied(&store, 0..total);
    let indexed = store.indexed_leaves().unwrap();
    assert!(
        indexed >= 2 * INDEX_DEFER_LEAVES && indexed < total,
        "{indexed} of {total} leaves indexed"
    );

    let filters = varied_filters();
    let expected = |f: &QueryFilter| matching(f, 0..total);
    for filter in &filters {
        let want = expected(filter);
        assert!(want.iter().any(|&i| i >= indexed) || filter.until_unix_nanos.is_some());
        // Pages of 7 cross the indexed boundary mid-page.
        assert_eq!(query_all(&store, filter, 7), want, "{filter:?}");
    }

    // Indexed in full, the answers are the same.
    store.index_all().unwrap();
    assert_eq!(store.indexed_leaves().unwrap(), total);
    for filter in &filters {
        assert_eq!(
            query_all(&store, filter, 100),
            expected(filter),
            "{filter:?}"
        );
    }

    // A store from before indexing was deferred has no count, and every
    // leaf indexed: it reads as all indexed, and the leaves it stores next
    // wait for theirs.
    drop(store);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .remove(META_INDEXED)
            .unwrap()
            .expect("the count is stored");
        txn.commit().unwrap();
    }
    let store = LedgerStore::open(&path, ORIGIN).unwrap();
    assert_eq!(store.indexed_leaves().unwrap(), total);
    let append = Op::Append {
        events: (total..total + 5)
            .map(varied_event)
            .collect::<Vec<_>>()
            .into(),
        commit_time_unix_nanos: 1,
    };
    store.apply(&[append], None, None).unwrap();
    assert_eq!(store.indexed_leaves().unwrap(), total);
    let filter = QueryFilter {
        actor: Some("bob".into()),
        ..Default::default()
    };
    let mut want = expected(&filter);
    want.extend((total..total + 5).filter(|n| n % 2 == 1));
    assert_eq!(query_all(&store, &filter, 50), want);
}

/// Filters that between them use every query index, and none.
fn varied_filters() -> Vec<QueryFilter> {
    vec![
        QueryFilter {
            actor: Some("bob".into()),
            ..Default::default()
        },
        QueryFilter {
            resource: Some("r3".into()),
            ..Default::default()
        },
        QueryFilter {
            action: Some("delete".into()),
            outcome: Some(Outcome::Failure),
            ..Default::default()
        },
        QueryFilter {
            outcome: Some(Outcome::Failure),
            ..Default::default()
        },
        QueryFilter {
            actor: Some("alice".into()),
            resource: Some("r0".into()),
            since_unix_nanos: Some(100),
            ..Default::default()
        },
        QueryFilter {
            until_unix_nanos: Some(40),
            ..Default::default()
        },
    ]
}

/// The leaves among `varied_event(range)` that `f` matches, by brute force.
fn matching(f: &QueryFilter, range: std::ops::Range<u64>) -> Vec<u64> {
    range
        .filter(|&n| {
            let e = varied_event(n);
            f.actor.as_ref().is_none_or(|a| *a == e.actor.id)
                && f.action.as_ref().is_none_or(|a| *a == e.action)
                && f.resource.as_ref().is_none_or(|r| *r == e.resource)
                && f.outcome.is_none_or(|o| o == e.outcome)
                && f.since_unix_nanos.is_none_or(|t| e.time_unix_nanos >= t)
                && f.until_unix_nanos.is_none_or(|t| e.time_unix_nanos < t)
        })
        .collect()
}

/// Appends `varied_event(range)` in batches of 1 to 7 events.
fn append_varied(store: &LedgerStore, range: std::ops::Range<u64>) {
    let mut n = range.start;
    while n < range.end {
        let size = (n % 7 + 1).min(range.end - n);
        let append = Op::Append {
            events: (n..n + size).map(varied_event).collect::<Vec<_>>().into(),
            commit_time_unix_nanos: 1,
        };
        assert!(!is_refused(&store.apply(&[append], None, None).unwrap()[0]));
        n += size;
    }
}

#[test]
fn a_store_with_per_leaf_query_indexes_is_indexed_again_as_runs() {
    use crate::limits::INDEX_DEFER_LEAVES;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let store = LedgerStore::open(&path, ORIGIN).unwrap();
    let total = INDEX_DEFER_LEAVES + 100;
    append_varied(&store, 0..total);
    store.index_all().unwrap();
    drop(store);
    // As a store written before runs: one row per leaf in the older
    // tables, no runs, no count of indexed leaves.
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        for def in INDEX_TABLES {
            assert!(txn.delete_table(def).unwrap());
        }
        txn.open_table(META).unwrap().remove(META_INDEXED).unwrap();
        {
            let [actors, actions, resources] = LEGACY_STR_INDEXES;
            let mut actors = txn.open_table(actors).unwrap();
            let mut actions = txn.open_table(actions).unwrap();
            let mut resources = txn.open_table(resources).unwrap();
            let mut outcomes = txn.open_table(LEGACY_OUTCOME_INDEX).unwrap();
            for i in 0..total {
                let e = varied_event(i);
                actors.insert((e.actor.id.as_str(), i), ()).unwrap();
                actions.insert((e.action.as_str(), i), ()).unwrap();
                resources.insert((e.resource.as_str(), i), ()).unwrap();
                outcomes.insert((e.outcome.code(), i), ()).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    let store = LedgerStore::open(&path, ORIGIN).unwrap();
    assert_eq!(
        store.indexed_leaves().unwrap(),
        0,
        "indexed again from the first"
    );
    {
        let txn = store.db.begin_read().unwrap();
        let names: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
        for legacy in ["idx_actor", "idx_action", "idx_resource", "idx_outcome"] {
            assert!(!names.iter().any(|n| n == legacy), "{legacy} in {names:?}");
        }
    }
    for filter in &varied_filters() {
        assert_eq!(
            query_all(&store, filter, 100),
            matching(filter, 0..total),
            "{filter:?}"
        );
    }
    // The next append starts the indexing: every leaf, in one step here.
    append_varied(&store, total..total + 1);
    assert_eq!(store.indexed_leaves().unwrap(), total + 1);
    for filter in &varied_filters() {
        assert_eq!(
            query_all(&store, filter, 100),
            matching(filter, 0..total + 1),
            "{filter:?}"
        );
    }
}

#[test]
fn an_installed_snapshot_keeps_the_commit_time_a_deduplicated_batch_advanced() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _body, vkey) = store_with_checkpoint(dir.path());
    // Leaves 0-2 were committed at time 1. A retry of event 1 alone, at
    // time 500, adds no leaf but moves the commit time every later leaf
    // gets at least.
    let retry = Op::Append {
        events: vec![event(1)].into(),
        commit_time_unix_nanos: 500,
    };
    let result = store.apply(&[retry], None, None).unwrap().remove(0);
    assert!(matches!(&result, OpResult::Appended { deduplicated, .. } if deduplicated == &[true]));
    assert_eq!(store.meta().unwrap().last_commit_time_unix_nanos, 500);

    let snapshot = dir.path().join("full");
    store.export_snapshot(&snapshot).unwrap();
    let other = LedgerStore::open(&dir.path().join("other.redb"), ORIGIN).unwrap();
    other.import_snapshot(&snapshot, voters(&[&vkey])).unwrap();
    assert_eq!(other.meta().unwrap().last_commit_time_unix_nanos, 500);

    // The next batch, stamped earlier by another leader's clock, becomes
    // the same leaf on both.
    let next = Op::Append {
        events: vec![event(3)].into(),
        commit_time_unix_nanos: 200,
    };
    store
        .apply(std::slice::from_ref(&next), None, None)
        .unwrap();
    other.apply(&[next], None, None).unwrap();
    assert_eq!(
        other.entries(3, 4).unwrap().0,
        store.entries(3, 4).unwrap().0
    );
    assert_eq!(other.root(4).unwrap(), store.root(4).unwrap());

    // A snapshot claiming a commit time before its own last leaf's is refused.
    rewrite_snapshot(&snapshot, |tag, rec| {
        if tag != TAG_META {
            return Some(rec);
        }
        let mut meta: StateMeta = serde_json::from_slice(&rec).unwrap();
        meta.last_commit_time_unix_nanos = 0;
        Some(serde_json::to_vec(&meta).unwrap())
    });
    let third = LedgerStore::open(&dir.path().join("third.redb"), ORIGIN).unwrap();
    let e = third
        .import_snapshot(&snapshot, voters(&[&vkey]))
        .unwrap_err();
    assert!(e.to_string().contains("before its last leaf"), "{e}");
}

/// The tree size a crash would leave: a copy of the file taken while the
/// store is open, opened as a store of its own.
fn size_after_crash(path: &Path) -> u64 {
    let copy = tempfile::tempdir().unwrap();
    let copied = copy.path().join("ledger.redb");
    std::fs::copy(path, &copied).unwrap();
    let recovered = LedgerStore::open(&copied, ORIGIN).unwrap();
    recovered.meta().unwrap().tree_size
}

#[test]
fn a_durable_apply_survives_a_crash_and_the_interval_says_when_one_is_due() {
    use crate::limits::LEDGER_DURABLE_INTERVAL_MS;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let store = LedgerStore::open(&path, ORIGIN).unwrap();
    let append = |n: u64| Op::Append {
        events: vec![event(n)].into(),
        commit_time_unix_nanos: 100,
    };
    let interval = Duration::from_millis(LEDGER_DURABLE_INTERVAL_MS);
    // Opening commits durably.
    assert!(!store.durable_due());
    store.apply_sized(&[append(1)], None, None, false).unwrap();
    assert_eq!(size_after_crash(&path), 0, "a plain apply is not durable");
    assert!(!store.durable_due(), "within the interval");
    std::thread::sleep(interval);
    assert!(store.durable_due());
    let outcome = store.apply_sized(&[append(2)], None, None, true).unwrap();
    assert_eq!(outcome.tree_size, 2);
    assert_eq!(
        size_after_crash(&path),
        2,
        "a durable apply is, with all before it"
    );
    assert!(!store.durable_due(), "that apply was durable");
    std::thread::sleep(interval);
    assert!(store.durable_due());
    store.flush().unwrap();
    assert!(!store.durable_due(), "a flush counts as durable");
}
