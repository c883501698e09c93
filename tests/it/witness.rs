//! Witnesses over real HTTP: `ironlog witness` cosigns only consistent
//! checkpoints and answers everything else with the C2SP status, keeps its
//! state across a restart; and a three-node cluster gets its checkpoints
//! cosigned by a running witness, after the witness was down and after the
//! leader changed.
use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{event, Cluster};
use ironlog::config::WitnessConfig;
use ironlog::ledger::checkpoint::{assemble_note, generate_key, CheckpointBody, NoteSigner};
use ironlog::ledger::cosignature::{CosignatureVerifier, Cosigner};
use ironlog::ledger::merkle::{self, consistency_proof, MemoryHashStore};
use ironlog::ledger::policy::{KeyGroup, TrustPolicy};
use ironlog::ledger::witness::{parse_cosignatures, AddCheckpointRequest, SIZE_CONTENT_TYPE};
use ironlog::limits::WITNESS_REQUEST_BYTES_MAX;
use ironlog::proto;
use ironlog::witness::client::{HttpClient, RawResponse, WitnessClient};
use ironlog::witness::server::{serve, Witness};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const ORIGIN: &str = "witness.test/log";
const WITNESS_NAME: &str = "witness.test/w1";

/// A witness served in-process, from files, like `ironlog witness` does.
struct RunningWitness {
    url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// The files an `ironlog witness` reads.
struct WitnessFiles {
    key: PathBuf,
    state: PathBuf,
    policy: PathBuf,
    verifier_key: String,
}

impl WitnessFiles {
    /// A witness key and a state path in `dir`, trusting `log_keys` (2 of them) for `origin`.
    fn new(dir: &Path, origin: &str, log_keys: &[String]) -> Self {
        let (skey, vkey) = Cosigner::generate(WITNESS_NAME).unwrap();
        let key = dir.join("w1.key");
        crate::common::write_key(&key, &skey);
        let policy = TrustPolicy {
            origin: origin.into(),
            log: KeyGroup {
                threshold: 2,
                keys: log_keys.to_vec(),
            },
            witnesses: None,
        };
        let policy_path = dir.join("policy.toml");
        std::fs::write(&policy_path, policy.to_toml()).unwrap();
        WitnessFiles {
            key,
            state: dir.join("witness-state.json"),
            policy: policy_path,
            verifier_key: vkey,
        }
    }

    async fn start(&self, listener: TcpListener) -> RunningWitness {
        let witness = Witness::open(&self.key, &self.state, std::slice::from_ref(&self.policy))
            .expect("witness opens");
        assert_eq!(witness.verifier_key(), self.verifier_key);
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            serve(listener, Arc::new(witness), async {
                let _ = stopped.await;
            })
            .await
            .expect("witness serves");
        });
        RunningWitness { url, stop, task }
    }
}

impl RunningWitness {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }

    async fn post(&self, body: Vec<u8>) -> RawResponse {
        WitnessClient::new(&self.url, HttpClient::default())
            .unwrap()
            .post(body)
            .await
            .expect("witness answers")
    }
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A log as the witness sees it: a tree and the voters' keys.
struct Log {
    voters: Vec<NoteSigner>,
    vkeys: Vec<String>,
}

impl Log {
    fn new() -> Self {
        let (mut voters, mut vkeys) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let (skey, vkey) = generate_key(ORIGIN).unwrap();
            voters.push(NoteSigner::from_skey(&skey).unwrap());
            vkeys.push(vkey);
        }
        Log { voters, vkeys }
    }

    /// A checkpoint of `tree` at `size`, signed by voters 0 and 1.
    fn checkpoint(&self, tree: &MemoryHashStore, size: u64) -> (CheckpointBody, Vec<u8>) {
        let body = CheckpointBody {
            origin: ORIGIN.into(),
            size,
            root: merkle::root(size, tree).unwrap(),
        };
        let sigs = [
            self.voters[0].sign(&body).unwrap(),
            self.voters[1].sign(&body).unwrap(),
        ];
        let note = assemble_note(&body, &sigs).into_bytes();
        (body, note)
    }

    /// The add-checkpoint body from `old` to `size` of `tree`.
    fn request(&self, tree: &MemoryHashStore, old: u64, size: u64) -> Vec<u8> {
        let (_, note) = self.checkpoint(tree, size);
        let proof = consistency_proof(old, size, tree).unwrap();
        AddCheckpointRequest::new(old, proof, note)
            .unwrap()
            .encode()
    }
}

/// `size` leaves named `<prefix> <i>`, with the first `shared` named as in the real log.
fn tree(prefix: &str, shared: u64, size: u64) -> MemoryHashStore {
    let mut t = MemoryHashStore::new();
    for i in 0..size {
        let name = if i < shared { "leaf" } else { prefix };
        t.append(format!("{name} {i}").as_bytes()).unwrap();
    }
    t
}

fn text(r: &RawResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_cosigns_consistent_checkpoints_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::new();
    let files = WitnessFiles::new(dir.path(), ORIGIN, &log.vkeys);
    let witness = files.start(bind().await).await;
    let real = tree("leaf", 0, 30);
    let verifier = CosignatureVerifier::new(&files.verifier_key).unwrap();

    // First sight of the log: old 0, no proof.
    let r = witness.post(log.request(&real, 0, 5)).await;
    assert_eq!(r.status, 200, "{}", text(&r));
    let lines = parse_cosignatures(&r.body).expect("cosignature lines");
    assert_eq!(lines.len(), 1);
    let (body5, note5) = log.checkpoint(&real, 5);
    let time = verifier
        .verify_line(&body5, &lines[0])
        .expect("cosignature verifies");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(time <= now && now - time < 60, "cosigned now: {time}");
    // An auditor's policy asking for one witness accepts the cosigned note.
    let mut cosigned = String::from_utf8(note5).unwrap();
    cosigned.push_str(&lines[0].to_line());
    let policy = TrustPolicy {
        origin: ORIGIN.into(),
        log: KeyGroup {
            threshold: 2,
            keys: log.vkeys.clone(),
        },
        witnesses: Some(KeyGroup {
            threshold: 1,
            keys: vec![files.verifier_key.clone()],
        }),
    };
    let accepted = policy.check(cosigned.as_bytes()).expect("policy accepts");
    assert_eq!(accepted.witness_signers.len(), 1);

    // Consistent growth, with a proof from the stored size.
    let r = witness.post(log.request(&real, 5, 12)).await;
    assert_eq!(r.status, 200, "{}", text(&r));

    // A fork of the log, signed by the same voters: larger, its proof from
    // 12 does not reach the root the witness stored at 12.
    let fork = tree("fork", 3, 30);
    let r = witness.post(log.request(&fork, 12, 20)).await;
    assert_eq!(r.status, 422, "{}", text(&r));
    // The fork at the stored size itself: same size, another root.
    let r = witness.post(log.request(&fork, 12, 12)).await;
    assert_eq!(r.status, 409, "{}", text(&r));
    assert_ne!(r.content_type.as_deref(), Some(SIZE_CONTENT_TYPE));

    // A stale old size: 409 telling the stored size.
    let r = witness.post(log.request(&real, 5, 20)).await;
    assert_eq!(r.status, 409, "{}", text(&r));
    assert_eq!(r.content_type.as_deref(), Some(SIZE_CONTENT_TYPE));
    assert_eq!(text(&r), "12\n");

    // Signed by a key the witness does not trust, or by too few voters: 403.
    let (stranger, _) = generate_key(ORIGIN).unwrap();
    let stranger = NoteSigner::from_skey(&stranger).unwrap();
    let (body20, _) = log.checkpoint(&real, 20);
    let proof = consistency_proof(12, 20, &real).unwrap();
    for sigs in [
        vec![stranger.sign(&body20).unwrap()],
        vec![log.voters[2].sign(&body20).unwrap()],
    ] {
        let note = assemble_note(&body20, &sigs).into_bytes();
        let req = AddCheckpointRequest::new(12, proof.clone(), note).unwrap();
        let r = witness.post(req.encode()).await;
        assert_eq!(r.status, 403, "{}", text(&r));
    }

    // A log the witness does not know: 404.
    let other = CheckpointBody {
        origin: "other.test/log".into(),
        ..body20.clone()
    };
    let (other_key, _) = generate_key("other.test/log").unwrap();
    let other_sig = NoteSigner::from_skey(&other_key)
        .unwrap()
        .sign(&other)
        .unwrap();
    let note = assemble_note(&other, &[other_sig]).into_bytes();
    let r = witness
        .post(AddCheckpointRequest::new(0, vec![], note).unwrap().encode())
        .await;
    assert_eq!(r.status, 404, "{}", text(&r));

    // Garbage, an old size above the size, and an oversized body.
    let r = witness.post(b"hello".to_vec()).await;
    assert_eq!(r.status, 400, "{}", text(&r));
    let mut above = log.request(&real, 0, 12);
    above.splice(..b"old 0".len(), b"old 13".iter().copied());
    let r = witness.post(above).await;
    assert_eq!(r.status, 400, "{}", text(&r));
    let r = witness
        .post(vec![b'x'; WITNESS_REQUEST_BYTES_MAX + 1])
        .await;
    assert_eq!(r.status, 413, "{}", text(&r));

    // None of that moved the witness: it still extends from 12.
    let r = witness.post(log.request(&real, 12, 20)).await;
    assert_eq!(r.status, 200, "{}", text(&r));
    witness.stop().await;

    // After a restart it still knows it cosigned 20.
    let witness = files.start(bind().await).await;
    let r = witness.post(log.request(&real, 0, 25)).await;
    assert_eq!(r.status, 409, "{}", text(&r));
    assert_eq!(r.content_type.as_deref(), Some(SIZE_CONTENT_TYPE));
    assert_eq!(text(&r), "20\n");
    let r = witness.post(log.request(&real, 20, 25)).await;
    assert_eq!(r.status, 200, "{}", text(&r));
    witness.stop().await;
}

/// Appends events `from..to` through the leader, retrying while leadership settles.
async fn append(c: &Cluster, from: u64, to: u64) {
    let events: Vec<_> = (from..to).map(|i| event("alice", i)).collect();
    for _ in 0..50 {
        let leader = c.leader().await;
        let req = proto::AppendRequest {
            events: events.clone(),
            wait_checkpoint: false,
        };
        match c.ledger(leader).await.append(req).await {
            Ok(_) => return,
            Err(s) if s.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(s) => panic!("append {from}..{to} failed: {s}"),
        }
    }
    panic!("append {from}..{to} never succeeded");
}

/// Polls node `id` until its checkpoint at `size` is accepted by `policy`
/// (which asks for witness cosignatures); returns the note.
async fn wait_cosigned(c: &Cluster, id: u64, size: u64, policy: &TrustPolicy) -> String {
    let mut last = String::new();
    for _ in 0..200 {
        let req = proto::GetCheckpointRequest {
            size,
            ..Default::default()
        };
        match c.ledger(id).await.get_checkpoint(req).await {
            Ok(r) => {
                let note = r.into_inner().checkpoint.expect("a checkpoint").note;
                match policy.check(note.as_bytes()) {
                    Ok(_) => return note,
                    Err(e) => last = e.to_string(),
                }
            }
            Err(s) => last = s.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("node {id}: checkpoint {size} not accepted by the policy: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_checkpoints_get_witness_cosignatures_and_a_down_witness_blocks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The witness's address goes into the nodes' configs, and the nodes'
    // keys into the witness's policy: bind first, serve once both exist.
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    let (wskey, wvkey) = Cosigner::generate(WITNESS_NAME).unwrap();
    let mut c = Cluster::start_with_witnesses(
        3,
        vec![WitnessConfig {
            url: format!("http://{addr}"),
            verifier_key: wvkey.clone(),
        }],
    )
    .await;
    let files = WitnessFiles {
        key: dir.path().join("w1.key"),
        state: dir.path().join("witness-state.json"),
        policy: dir.path().join("policy.toml"),
        verifier_key: wvkey.clone(),
    };
    crate::common::write_key(&files.key, &wskey);
    let log_only = TrustPolicy {
        origin: common::ORIGIN.into(),
        log: KeyGroup {
            threshold: 2,
            keys: c.vkeys.clone(),
        },
        witnesses: None,
    };
    std::fs::write(&files.policy, log_only.to_toml()).unwrap();
    let witness = files.start(listener).await;
    let auditor = TrustPolicy {
        witnesses: Some(KeyGroup {
            threshold: 1,
            keys: vec![wvkey.clone()],
        }),
        ..log_only.clone()
    };

    append(&c, 0, 10).await;
    c.wait_size(10).await;
    let leader = c.leader().await;
    wait_cosigned(&c, leader, 10, &auditor).await;

    // A later checkpoint: the witness needs a consistency proof from 10.
    append(&c, 10, 25).await;
    c.wait_size(25).await;
    let note = wait_cosigned(&c, leader, 25, &auditor).await;
    // Every replica verified and stored the cosignature.
    for id in 1..=3 {
        wait_cosigned(&c, id, 25, &auditor).await;
    }
    // The served latest note carries it, and witnesses are not voters.
    let latest = c
        .ledger(leader)
        .await
        .get_checkpoint(proto::GetCheckpointRequest::default())
        .await
        .unwrap()
        .into_inner()
        .checkpoint
        .unwrap();
    let accepted = auditor
        .check(latest.note.as_bytes())
        .expect("latest is cosigned");
    assert_eq!(accepted.body.size, 25);
    assert_eq!(accepted.witness_signers.len(), 1);
    assert!(accepted.log_signers.len() >= 2);
    let witness_at = note.find(WITNESS_NAME).unwrap();
    assert!(
        note.matches(common::ORIGIN).count() > 2
            && note.rfind(common::ORIGIN).unwrap() < witness_at,
        "voter lines come before the witness line:\n{note}"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files.state).unwrap()).unwrap();
    assert_eq!(state[common::ORIGIN]["size"], 25);

    // The witness goes down: appends and checkpoints go on without it.
    witness.stop().await;
    append(&c, 25, 30).await;
    c.wait_size(30).await;
    let voters_only = TrustPolicy {
        witnesses: None,
        ..log_only.clone()
    };
    wait_cosigned(&c, leader, 30, &voters_only).await;

    // Back up (same state, same address): the next checkpoint is cosigned,
    // with a proof from the 25 it last saw.
    let witness = files
        .start(TcpListener::bind(addr).await.expect("rebind the witness"))
        .await;
    append(&c, 30, 35).await;
    c.wait_size(35).await;
    let leader = c.leader().await;
    wait_cosigned(&c, leader, 35, &auditor).await;

    // A new leader does not know what the witness saw: the witness's 409
    // tells it, and it retries with a proof from that size.
    c.stop(leader).await;
    append(&c, 35, 40).await;
    c.wait_size(40).await;
    let leader = c.leader().await;
    wait_cosigned(&c, leader, 40, &auditor).await;

    witness.stop().await;
    for id in 1..=3 {
        c.stop(id).await;
    }

    // fsck re-verifies stored witness cosignatures: a stopped node's copy
    // passes, and the same copy with one cosignature byte changed does not.
    let copy = dir.path().join("node-copy");
    let report = loop {
        // The node releases its files shortly after stop returns.
        let _ = std::fs::remove_dir_all(&copy);
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::copy(
            c.data_dir(leader).join("ledger.redb"),
            copy.join("ledger.redb"),
        )
        .unwrap();
        match ironlog::fsck::check(&copy, &Default::default()) {
            Ok(r) if !r.recovered_copy => break r,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert!(report.is_ok(), "{report:?}");
    const COSIGS: redb::TableDefinition<(u64, u32), (&str, &str)> =
        redb::TableDefinition::new("witness_cosignatures");
    {
        let db = redb::Database::open(copy.join("ledger.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(COSIGS).unwrap();
            let (key, vkey, line) = {
                let (k, v) = redb::ReadableTable::last(&table)
                    .unwrap()
                    .expect("a stored cosignature");
                let (vkey, line) = v.value();
                (k.value(), vkey.to_string(), line.to_string())
            };
            // Change one base64 character of the signature.
            let at = line.len() - 10;
            let mut bytes = line.into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let line = String::from_utf8(bytes).unwrap();
            table.insert(key, (vkey.as_str(), line.as_str())).unwrap();
        }
        txn.commit().unwrap();
    }
    let report = ironlog::fsck::check(&copy, &Default::default()).unwrap();
    assert!(!report.is_ok(), "a changed witness cosignature passed fsck");
}
