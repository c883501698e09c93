//! Witnesses: the replicated set of keys cosignatures are accepted from,
//! and witness cosignatures, kept apart from voter signatures so that they
//! never count towards the voter quorum.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::checkpoints::count_lines;
use super::writer::Writer;
use super::{LedgerStore, OpResult, StoreError};
use crate::ledger::checkpoint::SignatureLine;
use crate::ledger::cosignature::CosignatureVerifier;
use crate::limits::{CHECKPOINT_WITNESS_LINES_MAX, WITNESS_KEYS_FORMER_MAX};

/// The witness keys the cluster accepts cosignatures from, replicated
/// through the log so every replica checks the same set.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct WitnessKeys {
    /// `cosignature/v1` verifier keys whose new cosignatures are accepted.
    pub current: Vec<String>,
    /// Keys once current and since removed. Their cosignatures from before
    /// the removal stay stored, so a snapshot install must still accept them.
    pub former: Vec<String>,
    /// The newest checkpoint when the set was first replicated: checkpoints
    /// up to it may carry cosignatures admitted before there was a set, by
    /// the key the command carried, and a snapshot install checks those
    /// against that key alone.
    pub legacy_through_size: Option<u64>,
}

impl WitnessKeys {
    /// Whether cosignatures by `vkey` may be stored at checkpoint `size`
    /// when restored from a snapshot.
    pub(super) fn admits_restored(&self, vkey: &str, size: u64) -> bool {
        let vkey = vkey.trim();
        self.current.iter().chain(&self.former).any(|k| k == vkey)
            || self.legacy_through_size.is_some_and(|s| size <= s)
    }
}

/// Whether two lists name the same witness keys, in any order and ignoring
/// surrounding whitespace: what the leader compares its configured list
/// with [`LedgerStore::witness_keys`] by before proposing
/// [`Op::SetWitnesses`](super::Op::SetWitnesses).
pub fn same_witness_keys(a: &[String], b: &[String]) -> bool {
    let set = |keys: &[String]| {
        keys.iter()
            .map(|k| k.trim().to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    a.len() == b.len() && set(a) == set(b)
}

impl LedgerStore {
    /// The replicated witness keys cosignatures are accepted from now, in
    /// the order last set; empty until the first
    /// [`Op::SetWitnesses`](super::Op::SetWitnesses).
    pub fn witness_keys(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .meta()?
            .witnesses
            .map(|w| w.current)
            .unwrap_or_default())
    }
}

impl Writer<'_> {
    /// Stores a witness's cosignature over the checkpoint at `size` if
    /// `verifier_key` is in the replicated witness set and the line verifies
    /// with it; the first one per (size, key) stays, so a re-proposed
    /// cosignature changes nothing.
    pub(super) fn witness_cosign(
        &mut self,
        size: u64,
        line: &SignatureLine,
        verifier_key: &str,
    ) -> Result<OpResult, StoreError> {
        let admitted = self
            .meta
            .witnesses
            .as_ref()
            .is_some_and(|w| w.current.iter().any(|k| k == verifier_key.trim()));
        if !admitted {
            return Ok(OpResult::refused(format!(
                "cosignature by {}+{:08x}: its key is not in the replicated witness set",
                clip(&line.name),
                line.key_id
            )));
        }
        match self.store_witness_cosignature(size, line, verifier_key)? {
            Ok(()) => Ok(OpResult::WitnessCosigned { accepted: true }),
            Err(reason) => Ok(OpResult::Refused { reason }),
        }
    }

    /// Verifies and stores a witness cosignature whose key is admitted;
    /// `Err(reason)` when it does not verify or the note has no room.
    pub(super) fn store_witness_cosignature(
        &mut self,
        size: u64,
        line: &SignatureLine,
        verifier_key: &str,
    ) -> Result<Result<(), String>, StoreError> {
        let Some(body) = self.stored_body(size)? else {
            return Ok(Err(format!("no checkpoint at size {size}")));
        };
        if let Err(e) =
            CosignatureVerifier::new(verifier_key).and_then(|v| v.verify_line(&body, line))
        {
            return Ok(Err(format!("witness cosignature at {size}: {e}")));
        }
        if self
            .witness_cosignatures
            .table()?
            .get((size, line.key_id))?
            .is_some()
        {
            return Ok(Ok(()));
        }
        let lines = count_lines(
            self.witness_cosignatures
                .table()?
                .range((size, 0)..=(size, u32::MAX))?,
        )?;
        if lines >= CHECKPOINT_WITNESS_LINES_MAX {
            return Ok(Err(format!(
                "checkpoint {size} already has {lines} witness cosignature lines, the most it may carry"
            )));
        }
        self.witness_cosignatures
            .table()?
            .insert((size, line.key_id), (verifier_key, line.to_line().as_str()))?;
        Ok(Ok(()))
    }

    /// Replaces the replicated witness set; refused unchanged if any key is
    /// not a `cosignature/v1` key, two keys are the same witness (same name
    /// and key ID: cosignatures are filed by key ID), or there are too many.
    pub(super) fn set_witnesses(&mut self, keys: &[String]) -> Result<OpResult, StoreError> {
        let max = crate::config::WITNESSES_MAX;
        if keys.len() > max {
            return Ok(OpResult::refused(format!(
                "{} witness keys exceed the limit of {max}",
                keys.len()
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, key) in keys.iter().enumerate() {
            // Stored exactly as given and compared exactly, so refuse the
            // whitespace the parser would forgive.
            if key.trim() != key {
                return Ok(OpResult::refused(format!(
                    "witness key {i} has surrounding whitespace"
                )));
            }
            let verifier = match CosignatureVerifier::new(key) {
                Ok(v) => v,
                Err(e) => return Ok(OpResult::refused(format!("witness key {i}: {e}"))),
            };
            use signed_note::Verifier as _;
            let id = (verifier.name().to_string(), verifier.key_id());
            if !seen.insert(id.clone()) {
                return Ok(OpResult::refused(format!(
                    "witness key {i} repeats {}+{:08x}",
                    clip(&id.0),
                    id.1
                )));
            }
        }
        let old = self.meta.witnesses.clone();
        if old.as_ref().is_some_and(|w| w.current == keys) {
            return Ok(OpResult::WitnessesSet { changed: false });
        }
        let legacy_through_size = match &old {
            Some(w) => w.legacy_through_size,
            None => self.checkpoints.table()?.last()?.map(|(k, _)| k.value()),
        };
        let old = old.unwrap_or_default();
        let mut former: Vec<String> = old
            .former
            .iter()
            .chain(&old.current)
            .filter(|k| !keys.contains(k))
            .cloned()
            .collect();
        former.sort();
        former.dedup();
        if former.len() > WITNESS_KEYS_FORMER_MAX {
            return Ok(OpResult::refused(format!(
                "{} removed witness keys would be remembered, more than the limit of {WITNESS_KEYS_FORMER_MAX}",
                former.len()
            )));
        }
        self.meta.witnesses = Some(WitnessKeys {
            current: keys.to_vec(),
            former,
            legacy_through_size,
        });
        Ok(OpResult::WitnessesSet { changed: true })
    }
}

/// At most a short prefix of text taken from a command, for refusal
/// reasons: a forged command may carry megabytes where a name belongs.
fn clip(text: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 64;
    let mut out: String = text.chars().take(SHOWN_CHARS_MAX).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}
