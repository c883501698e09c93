//! The checker: what must hold after the faults are healed. Every failed
//! property is collected, not just the first, so one report shows the
//! whole damage.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ironlog::ledger::checkpoint::open_note;
use ironlog::ledger::event::LeafRecord;
use ironlog::ledger::merkle::{leaf_hash, verify_consistency, Hash};
use ironlog::proto;
use ironlog::proto::ledger_client::LedgerClient;

use crate::cluster::{Cluster, Dialer};
use crate::load::{event, parse_key, Record};

const GET_ENTRIES_PAGE: u64 = 1000;
/// How long the final checkpoint may take to cover the final size: the
/// leader cuts one every 500 ms and a majority signs it.
const FINAL_CHECKPOINT_WAIT_MS: u64 = 30_000;

/// What the checks counted, for the report.
#[derive(Default, Debug)]
pub struct Figures {
    pub size: u64,
    pub acked: usize,
    pub lost: usize,
    pub moved: usize,
    pub duplicated: usize,
    pub foreign: usize,
    pub unacked_present: usize,
    pub divergent_nodes: usize,
    pub checkpoints_seen: usize,
    pub checkpoints_bad_signature: usize,
    pub checkpoints_inconsistent: usize,
    pub forks: usize,
}

/// Waits until every node reports the same tree size, at least
/// `min_size`, and the same root.
pub async fn converge(
    c: &mut Cluster,
    min_size: u64,
    limit: Duration,
) -> Result<(u64, Vec<u8>), String> {
    let deadline = Instant::now() + limit;
    let mut last = Vec::new();
    while Instant::now() < deadline {
        c.supervise();
        last.clear();
        for id in c.ids() {
            last.push(c.status(id).await.map(|s| (s.tree_size, s.root_hash)));
        }
        if let Some(Some((size, root))) = last.first().cloned() {
            if size >= min_size
                && last
                    .iter()
                    .all(|s| s.as_ref() == Some(&(size, root.clone())))
            {
                return Ok((size, root));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen: Vec<_> = last
        .iter()
        .map(|s| s.as_ref().map(|(size, root)| (*size, hex::encode(root))))
        .collect();
    Err(format!(
        "nodes did not converge within {limit:?} on a size >= {min_size}: (tree size, root) per node {seen:?}"
    ))
}

async fn read_all(d: &Dialer, id: u64, size: u64) -> Result<Vec<proto::Entry>, String> {
    let channel = d
        .connect(id)
        .await
        .ok_or(format!("node {id}: cannot connect"))?;
    let mut ledger = LedgerClient::new(channel);
    let mut out: Vec<proto::Entry> = Vec::new();
    while (out.len() as u64) < size {
        let start = out.len() as u64;
        let page = ledger
            .get_entries(proto::GetEntriesRequest {
                start,
                end: (start + GET_ENTRIES_PAGE).min(size),
                linearizable: false,
            })
            .await
            .map_err(|s| format!("node {id}: GetEntries from {start}: {s}"))?
            .into_inner();
        if page.entries.is_empty() {
            return Err(format!(
                "node {id}: GetEntries from {start} returned nothing"
            ));
        }
        out.extend(page.entries);
    }
    Ok(out)
}

/// Every leaf of every node, against the acknowledgements and each other.
pub async fn check_logs(
    c: &Cluster,
    record: &Record,
    size: u64,
    figures: &mut Figures,
    failures: &mut Vec<String>,
) {
    let dialer = c.dialer();
    figures.size = size;
    figures.acked = record.acked.len();
    let mut reference: Option<(u64, Vec<proto::Entry>)> = None;
    for id in c.ids() {
        let entries = match read_all(&dialer, id, size).await {
            Ok(e) => e,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let mut index_by_key: BTreeMap<String, u64> = BTreeMap::new();
        for (position, e) in entries.iter().enumerate() {
            match leaf_key(e, position as u64) {
                Ok(key) => {
                    if let Some(first) = index_by_key.insert(key.clone(), e.index) {
                        figures.duplicated += 1;
                        failures.push(format!(
                            "node {id}: {key} is in the log twice, at {first} and {}",
                            e.index
                        ));
                    }
                }
                Err(why) => {
                    figures.foreign += 1;
                    failures.push(format!("node {id}: leaf {position}: {why}"));
                }
            }
        }
        for (key, &acked_at) in &record.acked {
            match index_by_key.get(key) {
                None => {
                    figures.lost += 1;
                    failures.push(format!(
                        "node {id}: acknowledged {key} (index {acked_at}) is missing"
                    ));
                }
                Some(&at) if at != acked_at => {
                    figures.moved += 1;
                    failures.push(format!(
                        "node {id}: {key} was acknowledged at {acked_at} but is at {at}"
                    ));
                }
                Some(_) => {}
            }
        }
        if reference.is_none() {
            figures.unacked_present = record
                .unacked
                .iter()
                .filter(|k| index_by_key.contains_key(*k))
                .count();
        }
        match &reference {
            None => reference = Some((id, entries)),
            Some((first_id, first)) => {
                if let Some(i) = first
                    .iter()
                    .zip(&entries)
                    .position(|(a, b)| a.leaf != b.leaf)
                {
                    figures.divergent_nodes += 1;
                    failures.push(format!(
                        "node {id}: leaf {i} differs from node {first_id}'s"
                    ));
                }
            }
        }
    }
}

/// Checks one entry's hash and index and that it is an event a client
/// sent, returning its key.
fn leaf_key(e: &proto::Entry, position: u64) -> Result<String, String> {
    if e.index != position {
        return Err(format!("has index {}", e.index));
    }
    if leaf_hash(&e.leaf).as_slice() != e.leaf_hash.as_slice() {
        return Err("leaf_hash does not match the leaf".into());
    }
    let rec = LeafRecord::decode(&e.leaf).map_err(|err| format!("does not decode: {err}"))?;
    if rec.index != position {
        return Err(format!("encodes index {}", rec.index));
    }
    // Leaves the nodes write themselves (refusal records) are theirs.
    if rec.event.source.starts_with("ironlog/") {
        return Ok(format!("node-record-{position}"));
    }
    let key = rec
        .event
        .idempotency_key
        .clone()
        .ok_or("has no idempotency key")?;
    let (client, seq) = parse_key(&key).ok_or(format!("key {key} is not a client's"))?;
    let sent = event(client, seq);
    let same = rec.event.source == sent.source
        && rec.event.resource == sent.resource
        && rec.event.action == sent.action
        && rec.event.time_unix_nanos == sent.time_unix_nanos
        && serde_json::from_str::<serde_json::Value>(&sent.details_json).ok()
            == Some(serde_json::Value::Object(rec.event.details.clone()));
    if !same {
        return Err(format!(
            "{key} is not the event its client sent: {:?}",
            rec.event
        ));
    }
    Ok(key)
}

fn hash(bytes: &[u8]) -> Result<Hash, String> {
    bytes
        .try_into()
        .map_err(|_| format!("a hash of {} bytes", bytes.len()))
}

/// The final signed checkpoint, at `size`, from node `id`.
async fn final_checkpoint(d: &Dialer, id: u64, size: u64) -> Result<proto::Checkpoint, String> {
    let deadline = Instant::now() + Duration::from_millis(FINAL_CHECKPOINT_WAIT_MS);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Some(channel) = d.connect(id).await {
            let got = LedgerClient::new(channel)
                .get_checkpoint(proto::GetCheckpointRequest {
                    size: 0,
                    linearizable: false,
                })
                .await;
            match got.map(|r| r.into_inner().checkpoint) {
                Ok(Some(cp)) if cp.size == size => return Ok(cp),
                Ok(Some(cp)) => last = format!("size {}", cp.size),
                Ok(None) => last = "no checkpoint".into(),
                Err(s) => last = s.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("node {id}: no checkpoint at size {size} within {FINAL_CHECKPOINT_WAIT_MS} ms; last: {last}"))
}

/// Every checkpoint a client saw: signed by a majority of the voters, one
/// root per size, and consistent with the final checkpoint.
pub async fn check_checkpoints(
    c: &Cluster,
    record: &Record,
    size: u64,
    root: &[u8],
    figures: &mut Figures,
    failures: &mut Vec<String>,
) {
    let dialer = c.dialer();
    let majority = c.vkeys.len() / 2 + 1;
    figures.checkpoints_seen = record.checkpoints.len();
    let mut root_by_size: BTreeMap<u64, Hash> = BTreeMap::new();
    for id in c.ids() {
        match final_checkpoint(&dialer, id, size).await {
            Ok(cp) => match open_note(cp.note.as_bytes(), &c.vkeys) {
                Ok((body, signers)) if body.root.as_slice() == root && signers.len() >= majority => {
                    root_by_size.insert(body.size, body.root);
                }
                Ok((body, signers)) => failures.push(format!(
                    "node {id}: final checkpoint has root {} and {} signers; want {} and >= {majority}",
                    hex::encode(body.root),
                    signers.len(),
                    hex::encode(root)
                )),
                Err(e) => failures.push(format!("node {id}: final checkpoint does not verify: {e}")),
            },
            Err(e) => failures.push(e),
        }
    }
    let Ok(final_root) = hash(root) else {
        failures.push("final root is not 32 bytes".into());
        return;
    };
    let Some(channel) = dialer.connect(1).await else {
        failures.push("cannot connect to node 1 for consistency proofs".into());
        return;
    };
    let mut ledger = LedgerClient::new(channel);
    for seen in &record.checkpoints {
        let (body, signers) = match open_note(seen.note.as_bytes(), &c.vkeys) {
            Ok(x) => x,
            Err(e) => {
                figures.checkpoints_bad_signature += 1;
                failures.push(format!(
                    "a checkpoint from node {} does not verify: {e}",
                    seen.node
                ));
                continue;
            }
        };
        if signers.len() < majority {
            figures.checkpoints_bad_signature += 1;
            failures.push(format!(
                "a checkpoint at size {} from node {} has {} signers, fewer than a majority",
                body.size,
                seen.node,
                signers.len()
            ));
        }
        if let Some(other) = root_by_size.insert(body.size, body.root) {
            if other != body.root {
                figures.forks += 1;
                failures.push(format!(
                    "two checkpoints of size {} with different roots: {} and {}",
                    body.size,
                    hex::encode(other),
                    hex::encode(body.root)
                ));
            }
        }
        if body.size == 0 {
            // The empty tree has one root, and every tree extends it.
            if body.root != ironlog::ledger::merkle::EMPTY_ROOT {
                figures.forks += 1;
                failures.push(format!(
                    "a checkpoint at size 0 from node {} has a root other than the empty tree's",
                    seen.node
                ));
            }
            continue;
        }
        if body.size > size {
            figures.checkpoints_inconsistent += 1;
            failures.push(format!(
                "a checkpoint at size {} is beyond the final size {size}",
                body.size
            ));
            continue;
        }
        let proof = ledger
            .get_consistency_proof(proto::GetConsistencyProofRequest {
                old_size: body.size,
                new_size: size,
            })
            .await
            .map_err(|s| s.to_string())
            .and_then(|r| r.into_inner().proof.ok_or("no proof".to_string()))
            .and_then(|p| {
                p.hashes
                    .iter()
                    .map(|h| hash(h))
                    .collect::<Result<Vec<_>, _>>()
            });
        let verified = proof.and_then(|hashes| {
            verify_consistency(body.size, size, &body.root, &final_root, &hashes)
                .map_err(|e| e.to_string())
        });
        if let Err(e) = verified {
            figures.checkpoints_inconsistent += 1;
            failures.push(format!(
                "checkpoint at size {} (from node {}) is not consistent with the final one at {size}: {e}",
                body.size, seen.node
            ));
        }
    }
}
