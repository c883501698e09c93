//! Snapshots: the whole state as a file of tagged records (leaves inline,
//! as a follower receives it; this node's own are manifests, see
//! `manifest.rs`), installed by rebuilding hashes and indexes from the leaves and checking
//! every checkpoint root and signature before anything replaces the state.

use std::io::{BufReader, Read, Write};
use std::path::Path;

use redb::Durability;

use super::checkpoints::CHECKPOINT_VOTER_LINES_MAX;
use super::hash_chunks::{HASH_CHUNKS, LEGACY_HASHES};
use super::tables::{
    CHECKPOINTS, ENTRIES, IDEMPOTENCY, INDEX_TABLES, SIGNATURES, WITNESS_COSIGNATURES,
};
use super::writer::Writer;
use super::{create_tables, LedgerStore, StateMeta, StoreError};
use crate::ledger::checkpoint::{self, CheckpointBody, SignatureLine};
use crate::ledger::event::LeafRecord;
use crate::ledger::merkle;
use crate::limits::INDEX_STEP_LEAVES_MAX;

impl LedgerStore {
    /// Replaces the whole state with the snapshot at `path`, rebuilding and
    /// checking the Merkle tree and every signature; on any error the old
    /// state is kept (nothing is written).
    ///
    /// `check` sees the snapshot's own metadata before anything is
    /// restored, and returns the verifier keys of the voters of its
    /// membership (the membership is opaque here): every voter signature
    /// naming one of them must verify with it. An `Err` from `check`
    /// refuses the snapshot with that reason.
    pub fn import_snapshot(
        &self,
        path: &Path,
        check: impl FnOnce(&StateMeta) -> Result<Vec<String>, String>,
    ) -> Result<StateMeta, StoreError> {
        self.import_snapshot_from(BufReader::new(std::fs::File::open(path)?), check)
    }

    /// [`Self::import_snapshot`] from a record stream: a transfer's file, or
    /// this node's own manifest expanded by a
    /// [`SnapshotReader`](super::SnapshotReader).
    pub fn import_snapshot_from(
        &self,
        mut input: impl Read,
        check: impl FnOnce(&StateMeta) -> Result<Vec<String>, String>,
    ) -> Result<StateMeta, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.delete_table(ENTRIES)?;
        txn.delete_table(CHECKPOINTS)?;
        txn.delete_table(HASH_CHUNKS)?;
        txn.delete_table(LEGACY_HASHES)?;
        txn.delete_table(SIGNATURES)?;
        txn.delete_table(WITNESS_COSIGNATURES)?;
        txn.delete_table(IDEMPOTENCY)?;
        for def in INDEX_TABLES {
            txn.delete_table(def)?;
        }
        // Made again, empty, whether or not the snapshot fills them.
        create_tables(&txn)?;
        let meta = {
            let mut w = Writer::open(&txn, &self.origin)?;
            let (tag, rec) = read_record(&mut input)?;
            if tag != TAG_META {
                return Err(StoreError::BadSnapshot(
                    "does not start with metadata".into(),
                ));
            }
            let target: StateMeta = serde_json::from_slice(&rec)
                .map_err(|e| StoreError::BadSnapshot(format!("metadata: {e}")))?;
            let voters = VoterKey::parse_all(&check(&target).map_err(StoreError::BadSnapshot)?);
            w.meta = StateMeta {
                tree_size: 0,
                last_commit_time_unix_nanos: 0,
                ..target.clone()
            };
            w.indexed = 0;
            loop {
                let (tag, rec) = read_record(&mut input)?;
                match tag {
                    TAG_LEAF => {
                        w.restore_leaf(&rec)?;
                        w.index_pending(INDEX_STEP_LEAVES_MAX)?;
                    }
                    TAG_CHECKPOINT => w.restore_checkpoint(&rec)?,
                    TAG_SIGNATURE => w.restore_signature(&rec, &voters)?,
                    TAG_WITNESS_COSIGNATURE => w.restore_witness_cosignature(&rec)?,
                    TAG_END => break,
                    other => {
                        return Err(StoreError::BadSnapshot(format!(
                            "unknown record tag {other}"
                        )))
                    }
                }
            }
            if w.meta.tree_size != target.tree_size {
                return Err(StoreError::BadSnapshot(format!(
                    "holds {} leaves but claims {}",
                    w.meta.tree_size, target.tree_size
                )));
            }
            // The commit time every later leaf is at least: a batch whose
            // events were all deduplicated advances it with no leaf, so the
            // last leaf's time can be older. Restoring only that made the
            // next leaves' commit times, and so their bytes and the roots
            // this node signs, differ from the other replicas' (found by the
            // chaos harness: checkpoints a quorum signed that the final tree
            // contradicted).
            if target.last_commit_time_unix_nanos < w.meta.last_commit_time_unix_nanos {
                return Err(StoreError::BadSnapshot(format!(
                    "claims last commit time {}, before its last leaf's {}",
                    target.last_commit_time_unix_nanos, w.meta.last_commit_time_unix_nanos
                )));
            }
            w.meta.last_commit_time_unix_nanos = target.last_commit_time_unix_nanos;
            w.index_all_pending()?;
            w.save_meta()?;
            w.meta.clone()
        };
        txn.commit()?;
        Ok(meta)
    }
}

pub(super) const TAG_META: u8 = 1;
pub(super) const TAG_LEAF: u8 = 2;
pub(super) const TAG_CHECKPOINT: u8 = 3;
pub(super) const TAG_SIGNATURE: u8 = 4;
/// Size, then `verifier key \n cosignature line`. Snapshots without any are
/// still read; a node older than this tag refuses snapshots that have one.
pub(super) const TAG_WITNESS_COSIGNATURE: u8 = 5;
pub(super) const TAG_END: u8 = 0xff;
/// Largest snapshot record: a leaf, or a checkpoint body, or the metadata
/// (which holds the membership).
const SNAPSHOT_RECORD_BYTES_MAX: usize = 1024 * 1024;
const _: () = assert!(crate::limits::LEAF_BYTES_MAX < SNAPSHOT_RECORD_BYTES_MAX);

pub(super) fn write_record(out: &mut impl Write, tag: u8, rec: &[u8]) -> std::io::Result<()> {
    out.write_all(&[tag])?;
    out.write_all(&(rec.len() as u32).to_be_bytes())?;
    out.write_all(rec)
}

pub(super) fn read_record(input: &mut impl Read) -> Result<(u8, Vec<u8>), StoreError> {
    let mut head = [0u8; 5];
    input
        .read_exact(&mut head)
        .map_err(|e| StoreError::BadSnapshot(format!("truncated: {e}")))?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > SNAPSHOT_RECORD_BYTES_MAX {
        return Err(StoreError::BadSnapshot(format!(
            "record of {len} bytes exceeds {SNAPSHOT_RECORD_BYTES_MAX}"
        )));
    }
    let mut rec = vec![0u8; len];
    input
        .read_exact(&mut rec)
        .map_err(|e| StoreError::BadSnapshot(format!("truncated: {e}")))?;
    Ok((head[0], rec))
}

impl Writer<'_> {
    fn restore_leaf(&mut self, leaf: &[u8]) -> Result<(), StoreError> {
        let record = LeafRecord::decode(leaf)
            .map_err(|e| StoreError::BadSnapshot(format!("leaf {}: {e}", self.meta.tree_size)))?;
        // The gate every append passes applies to restored leaves too: a
        // snapshot is no way around it.
        if leaf.len() > crate::limits::LEAF_BYTES_MAX {
            return Err(StoreError::BadSnapshot(format!(
                "leaf {} is {} bytes, more than {}",
                record.index,
                leaf.len(),
                crate::limits::LEAF_BYTES_MAX
            )));
        }
        record.event.validate().map_err(|e| {
            StoreError::BadSnapshot(format!("leaf {} fails validation: {e}", record.index))
        })?;
        if record.index != self.meta.tree_size {
            return Err(StoreError::BadSnapshot(format!(
                "leaf {} found where {} was expected",
                record.index, self.meta.tree_size
            )));
        }
        self.add_leaf(leaf, record.commit_time_unix_nanos, &record.event)?;
        Ok(())
    }

    fn restore_checkpoint(&mut self, rec: &[u8]) -> Result<(), StoreError> {
        let (size, text) = split_size(rec)?;
        let body = CheckpointBody::parse(text)
            .map_err(|e| StoreError::BadSnapshot(format!("checkpoint {size}: {e}")))?;
        if body.size != size || size > self.meta.tree_size || body.origin != self.origin {
            return Err(StoreError::BadSnapshot(format!(
                "checkpoint {size} does not belong to this log"
            )));
        }
        let root = merkle::root(size, &self.hash_store())?;
        if root != body.root {
            return Err(StoreError::BadSnapshot(format!(
                "checkpoint {size} root does not match the leaves"
            )));
        }
        self.checkpoints.table()?.insert(size, text)?;
        Ok(())
    }

    /// Restores a voter signature, verifying it with the key of the voter
    /// of the snapshot's membership it names. A signature by a key that
    /// membership does not list (a voter since removed) cannot be checked,
    /// so it is left out rather than stored unverified; one that names a
    /// voter and does not verify refuses the whole snapshot.
    fn restore_signature(&mut self, rec: &[u8], voters: &[VoterKey]) -> Result<(), StoreError> {
        let (size, line) = split_size(rec)?;
        let bad = |reason: String| {
            StoreError::BadSnapshot(format!("voter signature at checkpoint {size}: {reason}"))
        };
        let line = std::str::from_utf8(line).map_err(|_| bad("not UTF-8".into()))?;
        let sig = SignatureLine::parse(line).map_err(|e| bad(e.to_string()))?;
        let Some(body) = self.stored_body(size)? else {
            return Err(bad("its checkpoint is missing".into()));
        };
        let Some(voter) = voters
            .iter()
            .find(|v| v.name == sig.name && v.key_id == sig.key_id)
        else {
            return Ok(());
        };
        checkpoint::verify_signature(&voter.verifier_key, &body, &sig)
            .map_err(|e| bad(e.to_string()))?;
        if self.voter_line_refusal(size, sig.key_id)?.is_some() {
            return Err(bad(format!(
                "more than {CHECKPOINT_VOTER_LINES_MAX} voter signature lines"
            )));
        }
        self.signatures.table()?.insert((size, sig.key_id), line)?;
        Ok(())
    }

    /// Restores a witness cosignature, re-verifying it against the restored
    /// checkpoint and requiring its key to be one the restored witness set
    /// admits: a snapshot cannot bring in a cosignature that does not hold.
    fn restore_witness_cosignature(&mut self, rec: &[u8]) -> Result<(), StoreError> {
        let (size, rest) = split_size(rec)?;
        let bad = |reason: &str| {
            StoreError::BadSnapshot(format!(
                "witness cosignature at checkpoint {size}: {reason}"
            ))
        };
        let text = std::str::from_utf8(rest).map_err(|_| bad("not UTF-8"))?;
        let (vkey, line) = text
            .split_once('\n')
            .ok_or_else(|| bad("no verifier key"))?;
        let sig = SignatureLine::parse(line).map_err(|e| bad(&e.to_string()))?;
        // A snapshot from before witness sets were replicated has none:
        // its cosignatures were admitted by the key they carry.
        let admitted = self
            .meta
            .witnesses
            .as_ref()
            .is_none_or(|w| w.admits_restored(vkey, size));
        if !admitted {
            return Err(bad("its key is not in the restored witness set"));
        }
        self.store_witness_cosignature(size, &sig, vkey)?
            .map_err(|reason| bad(&reason))
    }
}

/// A voter's signed-note verifier key with the name and key ID its
/// signature lines carry, to match lines to keys without trying each.
struct VoterKey {
    name: String,
    key_id: u32,
    verifier_key: String,
}

impl VoterKey {
    /// Keys that do not parse are left out: such a voter cannot have
    /// signed, so a line naming it is as unverifiable as a stranger's.
    fn parse_all(keys: &[String]) -> Vec<VoterKey> {
        keys.iter()
            .filter_map(|k| {
                let (name, key_id) = checkpoint::verifier_key_id(k).ok()?;
                Some(VoterKey {
                    name,
                    key_id,
                    verifier_key: k.clone(),
                })
            })
            .collect()
    }
}

/// A witness cosignature snapshot record: size, verifier key, newline, line.
pub(super) fn witness_record(size: u64, vkey: &str, line: &str) -> Vec<u8> {
    let mut rec = size.to_be_bytes().to_vec();
    rec.extend_from_slice(vkey.as_bytes());
    rec.push(b'\n');
    rec.extend_from_slice(line.as_bytes());
    rec
}

fn split_size(rec: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    if rec.len() < 8 {
        return Err(StoreError::BadSnapshot("short record".into()));
    }
    let (head, rest) = rec.split_at(8);
    Ok((u64::from_be_bytes(head.try_into().expect("8 bytes")), rest))
}
