//! The clients: appenders that behave as a careful service would (unique
//! idempotency keys, the same keys on every retry, any node), and a reader
//! that keeps every signed checkpoint it is shown. Everything they see goes
//! into one [`Record`], which the checker holds the cluster to.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ironlog::proto;
use ironlog::proto::ledger_client::LedgerClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

use crate::cluster::Dialer;

/// Events per append: 1 to this many, so batches of several sizes meet
/// every fault.
const BATCH_EVENTS_MAX: u64 = 4;
/// Pause between one client's appends: the harness is about faults, not
/// throughput, and a paced load keeps a long run's log (and the snapshots,
/// which copy it) within the nodes' small disks.
const APPEND_PAUSE_MS: u64 = 10;
/// Pause after a failed call before the next node is tried.
const RETRY_PAUSE_MS: u64 = 50;
/// How often the checkpoint reader asks a node.
const CHECKPOINT_POLL_MS: u64 = 250;
/// Error messages kept per status code, for the report.
const ERROR_SAMPLES_MAX: usize = 3;

/// The event of client `client`'s `seq`-th append; the checker rebuilds it
/// from the key to check that the log holds exactly what was sent.
pub fn event(client: u64, seq: u64) -> proto::Event {
    proto::Event {
        time_unix_nanos: 1_750_000_000_000_000_000 + (client * 1_000_000_000 + seq) as i64,
        actor: Some(proto::Actor {
            id: format!("chaos-client-{client}"),
            r#type: "service".into(),
            ip: "10.213.0.254".into(),
            user_agent: String::new(),
        }),
        action: "chaos.append".into(),
        resource: format!("chaos://client/{client}/{seq}"),
        outcome: proto::Outcome::Success as i32,
        source: "chaos-harness".into(),
        details_json: format!("{{\"client\":{client},\"seq\":{seq}}}"),
        idempotency_key: key(client, seq),
    }
}

pub fn key(client: u64, seq: u64) -> String {
    format!("c{client}-{seq}")
}

/// Parses a key back into (client, seq).
pub fn parse_key(key: &str) -> Option<(u64, u64)> {
    let (c, s) = key.strip_prefix('c')?.split_once('-')?;
    Some((c.parse().ok()?, s.parse().ok()?))
}

/// A checkpoint note as a client received it.
pub struct Seen {
    pub node: u64,
    pub note: String,
}

#[derive(Default)]
pub struct Record {
    /// Every acknowledged key and the index it was acknowledged at.
    pub acked: BTreeMap<String, u64>,
    /// Keys of batches the clients gave up on at the end: each may be in
    /// the log once or not at all, never twice.
    pub unacked: BTreeSet<String>,
    pub batches: u64,
    /// Acknowledgements that said `deduplicated`: a retry of a batch whose
    /// earlier attempt had committed although its caller saw an error.
    pub deduplicated_batches: u64,
    /// When each acknowledgement arrived, in ms since the run started.
    pub ack_times_ms: Vec<u64>,
    pub errors: BTreeMap<String, u64>,
    pub error_samples: BTreeMap<String, Vec<String>>,
    /// A contradiction inside the acknowledgements themselves.
    pub violations: Vec<String>,
    pub checkpoints: Vec<Seen>,
}

impl Record {
    fn error(&mut self, status: &tonic::Status) {
        let code = format!("{:?}", status.code());
        *self.errors.entry(code.clone()).or_default() += 1;
        let samples = self.error_samples.entry(code).or_default();
        let message: String = status.message().chars().take(200).collect();
        if samples.len() < ERROR_SAMPLES_MAX && !samples.contains(&message) {
            samples.push(message);
        }
    }

    /// Checks one acknowledgement against itself and earlier ones, then
    /// keeps it.
    fn ack(&mut self, client: u64, first: u64, n: u64, resp: &proto::AppendResponse, at_ms: u64) {
        self.batches += 1;
        self.ack_times_ms.push(at_ms);
        let keys: Vec<String> = (first..first + n).map(|s| key(client, s)).collect();
        if resp.indices.len() as u64 != n || resp.deduplicated.len() as u64 != n {
            self.violations.push(format!(
                "batch {keys:?}: malformed acknowledgement {resp:?}"
            ));
            return;
        }
        // One batch is one Raft entry applied in one transaction: its
        // leaves are contiguous and all new, or all earlier appends.
        let contiguous = resp.indices.windows(2).all(|w| w[1] == w[0] + 1);
        let uniform = resp.deduplicated.iter().all(|&d| d == resp.deduplicated[0]);
        if !contiguous || !uniform {
            self.violations.push(format!(
                "batch {keys:?} is not one atomic run: indices {:?}, deduplicated {:?}",
                resp.indices, resp.deduplicated
            ));
        }
        if resp.deduplicated[0] {
            self.deduplicated_batches += 1;
        }
        for (key, &index) in keys.into_iter().zip(&resp.indices) {
            if index >= resp.tree_size {
                self.violations.push(format!(
                    "{key} acknowledged at index {index}, not below the tree size {}",
                    resp.tree_size
                ));
            }
            if let Some(prev) = self.acked.insert(key.clone(), index) {
                self.violations
                    .push(format!("{key} acknowledged twice: at {prev} and {index}"));
            }
        }
    }
}

/// Flags the run sets to end the clients.
#[derive(Default)]
pub struct Stop {
    /// No new batches.
    pub appending: AtomicBool,
    /// Give up on the batch in flight.
    pub retrying: AtomicBool,
}

/// One appending client; returns when told to stop.
pub async fn appender(
    client: u64,
    seed: u64,
    dialer: Dialer,
    record: Arc<Mutex<Record>>,
    stop: Arc<Stop>,
    started: Instant,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (client << 32));
    let nodes = dialer.urls.len() as u64;
    let mut channels: Vec<Option<LedgerClient<Channel>>> = vec![None; nodes as usize];
    let mut target = rng.gen_range(1..=nodes);
    let mut seq = 0u64;
    while !stop.appending.load(Ordering::Relaxed) {
        let n = rng.gen_range(1..=BATCH_EVENTS_MAX);
        let events: Vec<_> = (seq..seq + n).map(|s| event(client, s)).collect();
        loop {
            if stop.retrying.load(Ordering::Relaxed) {
                let mut r = record.lock().unwrap();
                r.unacked.extend((seq..seq + n).map(|s| key(client, s)));
                return;
            }
            let slot = &mut channels[(target - 1) as usize];
            if slot.is_none() {
                *slot = dialer.connect(target).await.map(LedgerClient::new);
            }
            let result = match slot.as_mut() {
                Some(c) => c
                    .append(proto::AppendRequest {
                        events: events.clone(),
                        wait_checkpoint: false,
                    })
                    .await
                    .map(tonic::Response::into_inner),
                None => Err(tonic::Status::unavailable(format!(
                    "chaos client: cannot connect to node {target}"
                ))),
            };
            match result {
                Ok(resp) => {
                    let mut r = record.lock().unwrap();
                    // Read under the lock, so the times are in order.
                    let at = started.elapsed().as_millis() as u64;
                    r.ack(client, seq, n, &resp, at);
                    break;
                }
                Err(status) => {
                    record.lock().unwrap().error(&status);
                    channels[(target - 1) as usize] = None;
                    target = rng.gen_range(1..=nodes);
                    tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
                }
            }
        }
        seq += n;
        tokio::time::sleep(Duration::from_millis(APPEND_PAUSE_MS)).await;
        // Now and then a client moves to another node on its own, so every
        // node serves (and forwards) appends.
        if rng.gen_ratio(1, 20) {
            target = rng.gen_range(1..=nodes);
        }
    }
}

/// Asks random nodes for their latest checkpoint and keeps every distinct
/// note, until told to stop.
pub async fn checkpoint_reader(
    seed: u64,
    dialer: Dialer,
    record: Arc<Mutex<Record>>,
    stop: Arc<Stop>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xc4ec);
    let nodes = dialer.urls.len() as u64;
    let mut seen = BTreeSet::new();
    while !stop.retrying.load(Ordering::Relaxed) {
        let node = rng.gen_range(1..=nodes);
        if let Some(channel) = dialer.connect(node).await {
            let got = LedgerClient::new(channel)
                .get_checkpoint(proto::GetCheckpointRequest {
                    size: 0,
                    linearizable: false,
                })
                .await;
            if let Ok(Some(cp)) = got.map(|r| r.into_inner().checkpoint) {
                if seen.insert(cp.note.clone()) {
                    record.lock().unwrap().checkpoints.push(Seen {
                        node,
                        note: cp.note,
                    });
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(CHECKPOINT_POLL_MS)).await;
    }
}
