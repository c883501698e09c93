//! A voter's signer: signs every checkpoint it applies (only as a
//! consistency-proven extension of what it signed before) and proposes the
//! signature, so every replica gathers every signature.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::NodeError;
use crate::config::Config;
use crate::ledger::checkpoint::NoteSigner;
use crate::raft::{Command, ProposeError, Proposer};
use crate::storage::ledger_store::LedgerStore;
use crate::storage::signing_record::SigningRecord;

/// How many times a voter retries proposing its checkpoint signature while
/// leadership settles, and how long it waits between tries.
const COSIGN_ATTEMPTS_MAX: u32 = 20;
const COSIGN_RETRY_MS: u64 = 250;

/// How often a voter checks that it signed the newest checkpoint.
const COSIGN_RECHECK_MS: u64 = 2000;

/// This voter's signing key, from `signing_key_file`.
pub(super) fn load_signer(config: &Config) -> Result<NoteSigner, NodeError> {
    let err = |reason: String| NodeError::SigningKey {
        path: config.signing_key_file.display().to_string(),
        reason,
    };
    let text = crate::key_file::read_private_key(&config.signing_key_file)
        .map_err(|e| err(e.to_string()))?;
    NoteSigner::from_skey(text.trim()).map_err(|e| err(e.to_string()))
}

/// What a voter signs with, and the record that keeps it from signing a
/// history that rewrites one it signed before.
pub(super) struct Cosigner {
    pub(super) node_id: u64,
    pub(super) signer: NoteSigner,
    pub(super) proposer: Proposer,
    pub(super) store: Arc<LedgerStore>,
    /// The last tree this voter signed (persisted): a new checkpoint is
    /// signed only as a consistency-proven extension of it.
    pub(super) record: Arc<std::sync::Mutex<SigningRecord>>,
}

/// Signs every checkpoint this voter applies and proposes the signature.
/// It also re-checks the newest checkpoint now and then, so a voter that was
/// down (or caught up by snapshot) signs the checkpoint it missed.
pub(super) async fn cosign_loop(cosigner: Cosigner, mut sizes: mpsc::UnboundedReceiver<u64>) {
    let mut recheck = tokio::time::interval(Duration::from_millis(COSIGN_RECHECK_MS));
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let size = tokio::select! {
            s = sizes.recv() => match s {
                Some(s) => s,
                None => return,
            },
            _ = recheck.tick() => match newest_unsigned(&cosigner.store, cosigner.signer.key_id()).await {
                Some(s) => s,
                None => continue,
            },
        };
        if !cosign(&cosigner, size).await {
            return;
        }
    }
}

/// The newest checkpoint, if it lacks this key's signature.
async fn newest_unsigned(store: &Arc<LedgerStore>, key_id: u32) -> Option<u64> {
    let s = store.clone();
    tokio::task::spawn_blocking(move || {
        let size = *s.checkpoint_sizes(1).ok()?.first()?;
        let cp = s.checkpoint_at(size).ok()?;
        (!cp.signatures.iter().any(|sig| sig.key_id == key_id)).then_some(size)
    })
    .await
    .ok()
    .flatten()
}

/// Signs the checkpoint at `size` and proposes the signature, retrying while
/// leadership settles. Returns false once Raft has stopped.
async fn cosign(cosigner: &Cosigner, size: u64) -> bool {
    let Cosigner {
        node_id,
        signer,
        proposer,
        store,
        record,
    } = cosigner;
    let node_id = *node_id;
    // Low on disk: neither the signing record nor a proposal can be
    // written. The recheck signs the newest checkpoint once there is room.
    if proposer.space().is_low() {
        tracing::debug!(size, "low on disk space: not signing now");
        return true;
    }
    // Only voters' signatures count; a node still joining as a learner
    // (or removed) would only have its signature refused at apply.
    let is_voter = crate::raft::view(proposer.raft()).is_voter(node_id);
    if !is_voter {
        tracing::debug!(size, "not a voter: not signing");
        return true;
    }
    let last_signed = record
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .last_signed()
        .map(|t| t.size);
    if last_signed.is_some_and(|last| size < last) {
        // A queued older checkpoint after a newer one was signed: nothing
        // to do, and signing it would not extend what was signed.
        tracing::debug!(size, ?last_signed, "older than the last signed checkpoint");
        return true;
    }
    let (s, r) = (store.clone(), record.clone());
    let body = match tokio::task::spawn_blocking(move || -> Result<_, String> {
        let body = s.checkpoint_at(size).map_err(|e| e.to_string())?.body;
        r.lock()
            .unwrap_or_else(|e| e.into_inner())
            .authorize_and_record(&body, |old, new| {
                s.consistency_proof(old, new).map(|(proof, _, _)| proof)
            })
            .map_err(|e| e.to_string())?;
        Ok(body)
    })
    .await
    {
        Ok(Ok(body)) => body,
        other => {
            tracing::error!(size, ?other, "refusing to sign checkpoint");
            return true;
        }
    };
    let line = match signer.sign(&body) {
        Ok(line) => line.to_line(),
        Err(e) => {
            tracing::error!(error = %e, "cannot sign checkpoint");
            return true;
        }
    };
    let cmd = Command::Cosign {
        node_id,
        size,
        line,
    };
    for attempt in 1..=COSIGN_ATTEMPTS_MAX {
        match proposer.propose(cmd.clone()).await {
            Ok(_) => return true,
            Err(e @ (ProposeError::Fatal(_) | ProposeError::Stopping)) => {
                tracing::info!(error = %e, "raft stopped; signer ends");
                return false;
            }
            // The recheck proposes it again once there is room.
            Err(ProposeError::DiskLow(_)) => return true,
            Err(e) => {
                tracing::debug!(size, attempt, error = %e, "cosign not yet accepted");
                tokio::time::sleep(Duration::from_millis(COSIGN_RETRY_MS)).await;
            }
        }
    }
    true
}
