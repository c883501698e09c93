//! `ironlog fsck` on a real node's files: a cleanly stopped node's copy
//! passes; one flipped byte in any stored entry, stored hash, checkpoint body
//! or signature line is found and pinned to the right leaf or checkpoint; a
//! running node's files are refused; a crashed node's file is checked from a
//! recovered copy; and the binary exits non-zero on a flipped copy.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{event, wait_checkpoint, Cluster};
use ironlog::fsck::{self, FsckError, FsckOptions, FsckReport, ProblemKind, RedbCheck};
use ironlog::ledger::event::{Actor, Event, Outcome};
use ironlog::ledger::merkle;
use ironlog::proto;
use ironlog::storage::ledger_store::{LedgerStore, Op, LEDGER_FILE};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redb::{ReadOnlyDatabase, ReadableDatabase, TableDefinition, TypeName, Value};

/// The ledger's tables as this test reads them, independently of fsck, to
/// learn which stored values a flipped byte really changed.
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
/// The stored hashes, in chunks of consecutive hashes, 127 to a chunk.
const HASH_CHUNKS: TableDefinition<u64, &[u8]> = TableDefinition::new("hash_chunks");
const HASH_CHUNK_HASHES: u64 = 127;
const CHECKPOINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("checkpoints");
const SIGNATURES: TableDefinition<(u64, u32), StrBytes> = TableDefinition::new("signatures");

/// A `&str` column read as bytes: a flipped byte may leave it invalid UTF-8,
/// which redb's own `&str` decoding would panic on.
#[derive(Debug)]
struct StrBytes;

impl Value for StrBytes {
    type SelfType<'a> = &'a [u8];
    type AsBytes<'a> = &'a [u8];

    fn fixed_width() -> Option<usize> {
        None
    }

    fn from_bytes<'a>(data: &'a [u8]) -> &'a [u8]
    where
        Self: 'a,
    {
        data
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a &'b [u8]) -> &'a [u8]
    where
        Self: 'b,
    {
        value
    }

    fn type_name() -> TypeName {
        <&str as Value>::type_name()
    }
}

/// Live trials wanted per kind of stored value (entries, stored hashes,
/// checkpoint bodies, signature lines). A trial flips one byte of a fresh
/// copy; it is live when the flip changed what redb reads back, and stale when
/// it hit an old copy of the value in a page redb freed, which nothing reads.
const LIVE_TRIALS_PER_KIND: usize = 16;
/// Trials per kind at most: the live share is about a third for signature
/// lines (their pages are rewritten by every cosign) and higher for the rest.
const TRIALS_PER_KIND_MAX: usize = 150;
/// Batch sizes appended, one checkpoint after each: 300 leaves.
const BATCHES: [u64; 6] = [40, 70, 25, 90, 55, 20];

/// A stored value a trial may flip a byte of.
#[derive(Clone, Copy, Debug)]
enum Target {
    Entry(u64),
    Hash(u64),
    Checkpoint(u64),
    Signature(u64, u32),
}

#[derive(Debug)]
struct Stored {
    target: Target,
    bytes: Vec<u8>,
}

/// Reads `target` back from `file`; `None` if it is gone or unreadable.
fn read_back(file: &Path, target: Target) -> Option<Vec<u8>> {
    let read = || -> Result<Option<Vec<u8>>, redb::Error> {
        let db = ReadOnlyDatabase::open(file)?;
        let txn = db.begin_read()?;
        Ok(match target {
            Target::Entry(i) => txn.open_table(ENTRIES)?.get(i)?.map(|v| v.value().to_vec()),
            Target::Hash(i) => txn
                .open_table(HASH_CHUNKS)?
                .get(i / HASH_CHUNK_HASHES)?
                .and_then(|v| {
                    let at = (i % HASH_CHUNK_HASHES) as usize * 32;
                    v.value().get(at..at + 32).map(<[u8]>::to_vec)
                }),
            Target::Checkpoint(s) => txn
                .open_table(CHECKPOINTS)?
                .get(s)?
                .map(|v| v.value().to_vec()),
            Target::Signature(s, k) => txn
                .open_table(SIGNATURES)?
                .get((s, k))?
                .map(|v| v.value().to_vec()),
        })
    };
    std::panic::catch_unwind(read).ok()?.ok()?
}

/// The hashes, checkpoints and signatures stored in `file`.
fn stored_values(file: &Path) -> Vec<Stored> {
    let db = ReadOnlyDatabase::open(file).expect("open clean copy");
    let txn = db.begin_read().expect("read");
    let mut out = Vec::new();
    for row in txn
        .open_table(HASH_CHUNKS)
        .unwrap()
        .range::<u64>(..)
        .unwrap()
    {
        let (k, v) = row.unwrap();
        for (i, hash) in v.value().chunks_exact(32).enumerate() {
            out.push(Stored {
                target: Target::Hash(k.value() * HASH_CHUNK_HASHES + i as u64),
                bytes: hash.to_vec(),
            });
        }
    }
    for row in txn
        .open_table(CHECKPOINTS)
        .unwrap()
        .range::<u64>(..)
        .unwrap()
    {
        let (k, v) = row.unwrap();
        out.push(Stored {
            target: Target::Checkpoint(k.value()),
            bytes: v.value().to_vec(),
        });
    }
    for row in txn
        .open_table(SIGNATURES)
        .unwrap()
        .range::<(u64, u32)>(..)
        .unwrap()
    {
        let (k, v) = row.unwrap();
        let (size, key_id) = k.value();
        out.push(Stored {
            target: Target::Signature(size, key_id),
            bytes: v.value().to_vec(),
        });
    }
    out
}

fn occurrences(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(at, _)| at)
        .collect()
}

/// The leaf whose append stores stored hash `index`, and whether it is that
/// leaf's own hash.
fn storing_leaf(index: u64) -> (u64, bool) {
    let leaf = (0..)
        .find(|&n| merkle::stored_hash_count(n + 1) > index)
        .expect("some leaf stores it");
    (leaf, index == merkle::stored_hash_index(0, leaf))
}

/// Asserts the report pins a live flip of `target` where it belongs.
fn assert_pinned(report: &FsckReport, target: Target, trial: &str) {
    let has = |kind: ProblemKind, leaf: Option<u64>, size: Option<u64>| {
        report
            .problems
            .iter()
            .any(|p| p.kind == kind && p.leaf_index == leaf && p.checkpoint_size == size)
    };
    match target {
        Target::Entry(i) => {
            assert_eq!(report.first_bad_leaf, Some(i), "{trial}");
            assert!(has(ProblemKind::LeafHashMismatch, Some(i), None), "{trial}");
        }
        Target::Hash(index) => {
            let (leaf, own) = storing_leaf(index);
            let kind = if own {
                ProblemKind::LeafHashMismatch
            } else {
                ProblemKind::HashMismatch
            };
            assert_eq!(report.first_bad_leaf, Some(leaf), "{trial}");
            assert!(has(kind, Some(leaf), None), "{trial}");
        }
        Target::Checkpoint(size) | Target::Signature(size, _) => {
            assert_eq!(report.first_bad_leaf, None, "{trial}");
            let names_it = report.problems.iter().any(|p| {
                p.checkpoint_size == Some(size)
                    && (p.kind.as_str().starts_with("checkpoint_")
                        || p.kind.as_str().starts_with("signature_"))
            });
            assert!(names_it, "{trial}");
        }
    }
}

async fn all_entries(c: &Cluster, id: u64, size: u64) -> Vec<proto::Entry> {
    let mut client = c.ledger(id).await;
    let mut out = Vec::new();
    while (out.len() as u64) < size {
        let resp = client
            .get_entries(proto::GetEntriesRequest {
                start: out.len() as u64,
                end: size,
                linearizable: false,
            })
            .await
            .expect("get entries")
            .into_inner();
        assert!(!resp.entries.is_empty());
        out.extend(resp.entries);
    }
    out
}

/// Appends `events` through node `via` as one batch, retrying while
/// leadership settles (same idempotency keys, so never twice).
async fn append(c: &Cluster, via: u64, events: Vec<proto::Event>) {
    for _ in 0..50 {
        match c
            .ledger(via)
            .await
            .append(proto::AppendRequest {
                events: events.clone(),
                wait_checkpoint: false,
            })
            .await
        {
            Ok(_) => return,
            Err(s) if s.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => panic!("append failed: {s}"),
        }
    }
    panic!("append kept failing with UNAVAILABLE");
}

/// Waits until no process holds `file` open for writing. A stopped node's
/// last handles on its store are dropped by tasks that finish after
/// `shutdown` returns, and only then is the file closed cleanly.
async fn wait_released(file: &Path) {
    for _ in 0..100 {
        match ReadOnlyDatabase::open(file) {
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(_) => return,
            Err(e) => panic!("{} does not open: {e}", file.display()),
        }
    }
    panic!(
        "{} is still held 10 s after its node stopped",
        file.display()
    );
}

fn seed() -> u64 {
    std::env::var("IRONLOG_FSCK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fsck_passes_a_stopped_node_and_pins_every_live_flipped_byte() {
    let started = Instant::now();
    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    let victim = (1..=3).find(|&i| i != leader).unwrap();
    let mut client = c.ledger(victim).await;
    let mut size = 0;
    for batch in BATCHES {
        append(
            &c,
            leader,
            (size..size + batch).map(|n| event("alice", n)).collect(),
        )
        .await;
        size += batch;
        let signed = wait_checkpoint(&mut client, &c.vkeys, |s, signers| {
            s == size && signers == 3
        });
        assert!(signed.await.is_some(), "checkpoint at {size} signed by all");
    }
    let leaves = all_entries(&c, victim, size).await;
    for id in (1..=3).filter(|&id| id != victim) {
        c.stop(id).await;
    }

    // A running node holds its files: fsck refuses, and says why.
    let err = fsck::check(&c.data_dir(victim), &FsckOptions::default()).expect_err("locked");
    assert!(matches!(err, FsckError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("is the node still running?"),
        "{err}"
    );

    c.stop(victim).await;
    wait_released(&c.data_dir(victim).join(LEDGER_FILE)).await;
    let clean = tempfile::tempdir().expect("tempdir");
    let clean_file = clean.path().join(LEDGER_FILE);
    std::fs::copy(c.data_dir(victim).join(LEDGER_FILE), &clean_file).expect("copy");
    // (a) The untouched copy passes, with every voter's key from the
    // stored membership and nothing else.
    let report = fsck::check(clean.path(), &FsckOptions::default()).expect("fsck runs");
    assert!(report.is_ok(), "{:#?}", report.problems);
    assert_eq!(report.tree_size, size);
    assert_eq!(report.entries_checked, size);
    assert_eq!(report.hashes_checked, merkle::stored_hash_count(size));
    // One checkpoint per batch, and possibly one of the empty tree.
    assert!(report.checkpoints_checked >= BATCHES.len() as u64);
    assert!(report.signatures_checked >= 3 * BATCHES.len() as u64);
    assert_eq!(report.signatures_verified, report.signatures_checked);
    assert!(!report.recovered_copy);
    assert_eq!(report.known_keys.len(), 3, "{:?}", report.known_keys);
    assert_eq!(report.redb_check, RedbCheck::Passed);

    // (b) One flipped byte per fresh copy, in a random occurrence of a
    // random stored value.
    let image = std::fs::read(&clean_file).expect("read copy");
    let mut by_kind: [Vec<Stored>; 4] = Default::default();
    for leaf in leaves {
        by_kind[0].push(Stored {
            target: Target::Entry(leaf.index),
            bytes: leaf.leaf,
        });
    }
    for stored in stored_values(&clean_file) {
        let kind = match stored.target {
            Target::Entry(_) => 0,
            Target::Hash(_) => 1,
            Target::Checkpoint(_) => 2,
            Target::Signature(..) => 3,
        };
        by_kind[kind].push(stored);
    }
    let seed = seed();
    println!("flip trials: seed {seed} (rerun with IRONLOG_FSCK_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut trials = [0; 4];
    let mut live = [0; 4];
    loop {
        let wanted: Vec<usize> = (0..4)
            .filter(|&k| live[k] < LIVE_TRIALS_PER_KIND && trials[k] < TRIALS_PER_KIND_MAX)
            .collect();
        if wanted.is_empty() {
            break;
        }
        for kind in wanted {
            trials[kind] += 1;
            let values = &by_kind[kind];
            let value = &values[rng.gen_range(0..values.len())];
            let found = occurrences(&image, &value.bytes);
            assert!(!found.is_empty(), "{:?} is stored verbatim", value.target);
            let at = found[rng.gen_range(0..found.len())] + rng.gen_range(0..value.bytes.len());
            let mask: u8 = rng.gen_range(1..=255);
            let mut flipped = image.clone();
            flipped[at] ^= mask;
            let dir = tempfile::tempdir().expect("tempdir");
            let file = dir.path().join(LEDGER_FILE);
            std::fs::write(&file, &flipped).expect("write flipped copy");
            let is_live = read_back(&file, value.target).as_deref() != Some(&value.bytes[..]);
            // Half the trials without redb's checksums, so fsck's own checks
            // are seen to catch every flip alone.
            let options = FsckOptions {
                redb_check: trials[kind] % 2 == 0,
                ..FsckOptions::default()
            };
            let report = fsck::check(dir.path(), &options).expect("fsck runs on a flipped copy");
            let trial = format!(
                "seed {seed}: {:?} byte {at} ^ {mask:#04x} (one of {} copies), live {is_live}: {:#?}",
                value.target,
                found.len(),
                report.problems
            );
            if is_live {
                live[kind] += 1;
                assert!(!report.is_ok(), "{trial}");
                assert_pinned(&report, value.target, &trial);
                if options.redb_check {
                    assert_eq!(report.redb_check, RedbCheck::Failed, "{trial}");
                }
            } else {
                assert!(report.is_ok(), "a stale copy is read by nothing: {trial}");
            }
        }
    }
    let (all, all_live) = (trials.iter().sum::<usize>(), live.iter().sum::<usize>());
    println!(
        "{all} trials, {all_live} live; per kind (entries, hashes, checkpoints, signatures) \
         {live:?} live of {trials:?}; {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    assert!(all >= 60, "{all} trials");
    for (kind, &n) in live.iter().enumerate() {
        assert!(
            n >= LIVE_TRIALS_PER_KIND,
            "seed {seed}: kind {kind} had {n} live flips in {} trials",
            trials[kind]
        );
    }
}

fn local_event(n: u64) -> Event {
    Event {
        time_unix_nanos: 1_700_000_000_000_000_000 + n as i64,
        actor: Actor {
            id: format!("user{n}"),
            ..Actor::default()
        },
        action: "db.read".into(),
        resource: "table".into(),
        outcome: Outcome::Success,
        source: "payments-api".into(),
        details: serde_json::Map::new(),
        idempotency_key: Some(format!("k{n}")),
    }
}

/// A data dir with `count` leaves and a checkpoint, written in one
/// transaction (so each leaf is stored exactly once in the file), closed
/// cleanly; returns the leaves.
fn local_ledger(dir: &Path, count: u64) -> Vec<Vec<u8>> {
    let store = LedgerStore::open(&dir.join(LEDGER_FILE), common::ORIGIN).expect("store");
    let append = Op::Append {
        events: (0..count).map(local_event).collect::<Vec<_>>().into(),
        commit_time_unix_nanos: 1_700_000_000_000_000_000,
    };
    store
        .apply(&[append, Op::Checkpoint], None, None)
        .expect("apply");
    let (leaves, _) = store.entries(0, count).expect("entries");
    leaves.into_iter().map(|(_, leaf)| leaf).collect()
}

#[test]
fn a_file_left_open_by_a_crash_is_checked_from_a_recovered_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    local_ledger(dir.path(), 30);
    // Open the file for writing and never close it, as a crash would leave
    // it, then take what is on disk.
    let store = LedgerStore::open(&dir.path().join(LEDGER_FILE), common::ORIGIN).expect("store");
    let crashed = tempfile::tempdir().expect("tempdir");
    let crashed_file = crashed.path().join(LEDGER_FILE);
    std::fs::copy(dir.path().join(LEDGER_FILE), &crashed_file).expect("copy");
    std::mem::forget(store);
    let before = std::fs::read(&crashed_file).expect("read");

    let report = fsck::check(crashed.path(), &FsckOptions::default()).expect("fsck runs");
    assert!(report.is_ok(), "{:#?}", report.problems);
    assert!(report.recovered_copy);
    assert_eq!(report.redb_check, RedbCheck::VerifiedOnRecovery);
    assert_eq!(report.entries_checked, 30);
    assert_eq!(
        std::fs::read(&crashed_file).expect("read"),
        before,
        "the crashed file itself is not recovered in place"
    );
}

fn ironlog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ironlog"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the ironlog binary runs")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

#[test]
fn the_binary_passes_a_clean_dir_and_fails_a_flipped_copy_with_the_first_bad_leaf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let leaves = local_ledger(dir.path(), 20);
    let data_dir = path_str(dir.path()).to_string();

    let ok = ironlog(&["fsck", "--data-dir", &data_dir]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("fsck OK: 20 entries, "), "{stdout}");

    // Held open, as by a running node: exit 2, and the reason.
    let file: PathBuf = dir.path().join(LEDGER_FILE);
    let held = LedgerStore::open(&file, common::ORIGIN).expect("store");
    let locked = ironlog(&["fsck", "--data-dir", &data_dir]);
    let stderr = String::from_utf8_lossy(&locked.stderr);
    assert_eq!(locked.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is the node still running?"), "{stderr}");
    drop(held);

    let mut image = std::fs::read(&file).expect("read");
    let found = occurrences(&image, &leaves[7]);
    assert_eq!(found.len(), 1, "leaf 7 is stored once");
    // Inside the actor id, past the fixed-width header.
    image[found[0] + 32] ^= 0x01;
    std::fs::write(&file, &image).expect("write");

    let failed = ironlog(&["fsck", "--data-dir", &data_dir]);
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert_eq!(failed.status.code(), Some(1), "{stdout}");
    let verdict = stdout.lines().next().unwrap_or("");
    assert!(
        verdict.starts_with("fsck FAILED: first bad leaf 7: stored entry hashes to "),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("fsck found"),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );

    let json = ironlog(&["fsck", "--json", "--data-dir", &data_dir]);
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("one JSON report");
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_bad_leaf"], 7);
    assert_eq!(report["problems"][0]["kind"], "leaf_hash_mismatch");
}
