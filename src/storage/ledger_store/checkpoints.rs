//! Checkpoints: cutting one at the tree size, voter signatures over it and
//! how many lines its note may carry, and reading checkpoints back with
//! their signatures, the newest one with a quorum first.

use redb::{ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable};

use super::error::corrupt;
use super::tables::{CHECKPOINTS, SIGNATURES, WITNESS_COSIGNATURES};
use super::writer::Writer;
use super::{LedgerStore, OpResult, StoreError};
use crate::ledger::checkpoint::{self, CheckpointBody, SignatureLine};
use crate::ledger::merkle;
use crate::limits::{CHECKPOINT_SIGNATURE_LINES_MAX, CHECKPOINT_WITNESS_LINES_MAX};

/// Most voter signature lines per checkpoint: what the witnesses leave.
pub(super) const CHECKPOINT_VOTER_LINES_MAX: usize =
    CHECKPOINT_SIGNATURE_LINES_MAX - CHECKPOINT_WITNESS_LINES_MAX;
// Every configured witness can cosign, and every voter a configuration can
// list (its peers and itself) can sign, within the note's lines.
const _: () = assert!(crate::config::WITNESSES_MAX <= CHECKPOINT_WITNESS_LINES_MAX);
const VOTERS_CONFIGURABLE_MAX: usize = crate::config::PEERS_MAX + 1;
const _: () = assert!(VOTERS_CONFIGURABLE_MAX <= CHECKPOINT_VOTER_LINES_MAX);

/// A stored checkpoint with the signatures gathered for it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredCheckpoint {
    pub body: CheckpointBody,
    /// Voters' signatures: what the quorum counts.
    pub signatures: Vec<SignatureLine>,
    /// Witnesses' `cosignature/v1` lines, each verified on apply.
    pub witness_signatures: Vec<SignatureLine>,
}

impl StoredCheckpoint {
    /// The signed note: body, blank line, the voters' signature lines, then
    /// the witnesses' cosignature lines.
    pub fn note(&self) -> String {
        let lines: Vec<SignatureLine> = self
            .signatures
            .iter()
            .chain(&self.witness_signatures)
            .cloned()
            .collect();
        checkpoint::assemble_note(&self.body, &lines)
    }
}

impl LedgerStore {
    /// The checkpoint at exactly `size`.
    pub fn checkpoint_at(&self, size: u64) -> Result<StoredCheckpoint, StoreError> {
        let txn = self.db.begin_read()?;
        read_checkpoint(&txn, size)?.ok_or(StoreError::NoCheckpoint { size })
    }

    /// The newest checkpoint carrying at least `quorum` voter signatures
    /// (and at least one, whatever `quorum` says), looking back at most a
    /// few checkpoints (older ones are superseded); `None` if none has them.
    /// Never a checkpoint short of the quorum: what is served as "the log's
    /// state" must be what a majority of voters signed.
    pub fn latest_checkpoint(&self, quorum: usize) -> Result<Option<StoredCheckpoint>, StoreError> {
        let txn = self.db.begin_read()?;
        newest_signed_checkpoint(&txn, quorum)
    }

    /// The same as [`LedgerStore::latest_checkpoint`]: what an auditor
    /// holding that signature policy accepts.
    pub fn latest_signed_checkpoint(
        &self,
        min_signatures: usize,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.latest_checkpoint(min_signatures)
    }

    /// Sizes of stored checkpoints, newest first, at most `limit`.
    pub fn checkpoint_sizes(&self, limit: usize) -> Result<Vec<u64>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CHECKPOINTS)?;
        let mut out = Vec::new();
        for row in table.iter()?.rev().take(limit) {
            out.push(row?.0.value());
        }
        Ok(out)
    }
}

/// The newest checkpoint with at least `min_signatures` voter signatures
/// (at least one: an unsigned checkpoint is never served), among the last
/// few: older ones are superseded, and the bound keeps the scan short
/// whatever the history.
pub(super) fn newest_signed_checkpoint(
    txn: &ReadTransaction,
    min_signatures: usize,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    const LOOK_BACK_CHECKPOINTS: usize = 8;
    let min_signatures = min_signatures.max(1);
    let table = txn.open_table(CHECKPOINTS)?;
    for row in table.iter()?.rev().take(LOOK_BACK_CHECKPOINTS) {
        let (size, _) = row?;
        if let Some(cp) = read_checkpoint(txn, size.value())? {
            if cp.signatures.len() >= min_signatures {
                return Ok(Some(cp));
            }
        }
    }
    Ok(None)
}

fn read_checkpoint(
    txn: &ReadTransaction,
    size: u64,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let checkpoints: ReadOnlyTable<u64, &[u8]> = txn.open_table(CHECKPOINTS)?;
    let Some(text) = checkpoints.get(size)? else {
        return Ok(None);
    };
    let body = CheckpointBody::parse(text.value()).map_err(|e| corrupt("checkpoints", size, e))?;
    let sigs = txn.open_table(SIGNATURES)?;
    let mut signatures = Vec::new();
    for row in sigs.range((size, 0)..=(size, u32::MAX))? {
        let (_, line) = row?;
        signatures
            .push(SignatureLine::parse(line.value()).map_err(|e| corrupt("signatures", size, e))?);
    }
    let witness = txn.open_table(WITNESS_COSIGNATURES)?;
    let mut witness_signatures = Vec::new();
    for row in witness.range((size, 0)..=(size, u32::MAX))? {
        let (_, value) = row?;
        witness_signatures.push(
            SignatureLine::parse(value.value().1)
                .map_err(|e| corrupt("witness_cosignatures", size, e))?,
        );
    }
    Ok(Some(StoredCheckpoint {
        body,
        signatures,
        witness_signatures,
    }))
}

impl Writer<'_> {
    pub(super) fn checkpoint(&mut self) -> Result<Option<CheckpointBody>, StoreError> {
        let size = self.meta.tree_size;
        let latest = self.checkpoints.table()?.last()?.map(|(k, _)| k.value());
        if let Some(latest) = latest {
            assert!(latest <= size, "a checkpoint never exceeds the tree size");
            if latest == size {
                return Ok(None);
            }
        }
        let root = merkle::root(size, &self.hash_store())?;
        let body = CheckpointBody {
            origin: self.origin.to_string(),
            size,
            root,
        };
        self.checkpoints
            .table()?
            .insert(size, body.to_text().as_bytes())?;
        // Read back what was written: the stored body must be the one signed.
        let stored = self
            .checkpoints
            .table()?
            .get(size)?
            .map(|v| v.value().to_vec())
            .expect("checkpoint just written");
        assert_eq!(
            stored,
            body.to_text().as_bytes(),
            "checkpoint reads back as written"
        );
        Ok(Some(body))
    }

    /// The stored checkpoint body at `size`, if there is one; a body that
    /// does not parse is corruption.
    pub(super) fn stored_body(&mut self, size: u64) -> Result<Option<CheckpointBody>, StoreError> {
        let Some(text) = self
            .checkpoints
            .table()?
            .get(size)?
            .map(|v| v.value().to_vec())
        else {
            return Ok(None);
        };
        CheckpointBody::parse(&text)
            .map(Some)
            .map_err(|e| corrupt("checkpoints", size, e))
    }

    /// Stores a voter's signature over the checkpoint at `size` if it
    /// verifies with `verifier_key` and the note has room for it.
    pub(super) fn cosign(
        &mut self,
        size: u64,
        line: &SignatureLine,
        verifier_key: &str,
    ) -> Result<OpResult, StoreError> {
        let Some(body) = self.stored_body(size)? else {
            return Ok(OpResult::refused(format!("no checkpoint at size {size}")));
        };
        if let Err(e) = checkpoint::verify_signature(verifier_key, &body, line) {
            return Ok(OpResult::refused(format!("checkpoint {size}: {e}")));
        }
        if let Some(refusal) = self.voter_line_refusal(size, line.key_id)? {
            return Ok(refusal);
        }
        self.signatures
            .table()?
            .insert((size, line.key_id), line.to_line().as_str())?;
        Ok(OpResult::Cosigned { accepted: true })
    }

    /// A refusal if a new voter line `key_id` would pass the voter lines of
    /// checkpoint `size`; replacing a line already there adds none.
    pub(super) fn voter_line_refusal(
        &mut self,
        size: u64,
        key_id: u32,
    ) -> Result<Option<OpResult>, StoreError> {
        if self.signatures.table()?.get((size, key_id))?.is_some() {
            return Ok(None);
        }
        let lines = count_lines(
            self.signatures
                .table()?
                .range((size, 0)..=(size, u32::MAX))?,
        )?;
        Ok((lines >= CHECKPOINT_VOTER_LINES_MAX).then(|| {
            OpResult::refused(format!(
                "checkpoint {size} already has {lines} voter signature lines, the most it may carry"
            ))
        }))
    }
}

/// Counts the rows of a signature table range.
pub(super) fn count_lines<K: redb::Key + 'static, V: redb::Value + 'static>(
    rows: redb::Range<'_, K, V>,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for row in rows {
        row?;
        n += 1;
    }
    Ok(n)
}
