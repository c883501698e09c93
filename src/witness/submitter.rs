//! The leader's side of witnessing: submits each new quorum-signed
//! checkpoint to every configured witness and proposes the cosignatures it
//! gets back through Raft ([`Command::WitnessCosign`]).
//!
//! It runs as one background task per node and acts only while the node
//! leads. Nothing waits for it: appends and checkpoints go on whether
//! witnesses answer or not. A witness that is down or refuses costs one
//! warning, and is tried again with the next checkpoint.
//!
//! Per witness it remembers the size the witness last cosigned. That guess
//! may be wrong (another leader submitted since, or the witness was reset);
//! the witness then answers 409 with its size, and the submitter retries
//! once with a consistency proof from that size.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::client::{HttpClient, Submission, SubmitError, WitnessClient};
use crate::config::WitnessConfig;
use crate::ledger::checkpoint::{assemble_note, CheckpointError, SignatureLine};
use crate::ledger::cosignature::CosignatureVerifier;
use crate::ledger::witness::AddCheckpointRequest;
use crate::raft::{Command, CommandResponse, ProposeError, Proposer};
use crate::storage::ledger_store::{LedgerStore, StoredCheckpoint};

/// How often the submitter checks, without a new signature to wake it,
/// whether this node now leads with a checkpoint its witnesses lack.
const WITNESS_RECHECK_MS: u64 = 2000;

/// Submissions per checkpoint and witness: the first, and one retry from
/// the size a 409 reported.
const SUBMIT_ATTEMPTS_MAX: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum SubmitterError {
    #[error("witnesses[{position}]: {source}")]
    Url {
        position: usize,
        #[source]
        source: SubmitError,
    },
    #[error("witnesses[{position}].verifier_key: {source}")]
    Key {
        position: usize,
        #[source]
        source: CheckpointError,
    },
}

/// One configured witness and what the leader knows of it.
struct Target {
    client: WitnessClient,
    verifier: CosignatureVerifier,
    verifier_key: String,
    key_id: u32,
    /// The size the witness last cosigned, as far as this node knows.
    witnessed_size: Option<u64>,
    /// The largest checkpoint submitted (or found cosigned) while leading,
    /// so each checkpoint is tried once per witness.
    attempted_size: Option<u64>,
}

/// Submits checkpoints to witnesses; see the module doc.
pub struct Submitter {
    node_id: u64,
    targets: Vec<Target>,
    proposer: Proposer,
    store: Arc<LedgerStore>,
}

impl Submitter {
    pub fn new(
        node_id: u64,
        witnesses: &[WitnessConfig],
        proposer: Proposer,
        store: Arc<LedgerStore>,
    ) -> Result<Self, SubmitterError> {
        let http = HttpClient::default();
        let targets = witnesses
            .iter()
            .enumerate()
            .map(|(position, w)| {
                let client = WitnessClient::new(&w.url, http.clone())
                    .map_err(|source| SubmitterError::Url { position, source })?;
                let verifier = CosignatureVerifier::new(&w.verifier_key)
                    .map_err(|source| SubmitterError::Key { position, source })?;
                Ok(Target {
                    client,
                    key_id: signed_note::Verifier::key_id(&verifier),
                    verifier,
                    verifier_key: w.verifier_key.trim().to_string(),
                    witnessed_size: None,
                    attempted_size: None,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            node_id,
            targets,
            proposer,
            store,
        })
    }

    /// Runs until the state machine goes away. `voter_signed` changes when
    /// a voter signature is applied, i.e. when a checkpoint may have just
    /// reached its quorum.
    pub async fn run(mut self, mut voter_signed: watch::Receiver<u64>) {
        let mut recheck = tokio::time::interval(Duration::from_millis(WITNESS_RECHECK_MS));
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = voter_signed.changed() => if r.is_err() { return },
                _ = recheck.tick() => {},
            }
            if self.proposer.raft().current_leader().await != Some(self.node_id) {
                // Another leader submits; what it did is learnt from 409s.
                for t in &mut self.targets {
                    t.attempted_size = None;
                }
                continue;
            }
            let Some(cp) = self.latest_signed().await else {
                continue;
            };
            let size = cp.body.size;
            let mut due = Vec::new();
            for t in &mut self.targets {
                // Already cosigned (perhaps under an earlier leader) counts as done.
                let done = t.attempted_size.is_some_and(|a| a >= size)
                    || cp.witness_signatures.iter().any(|s| s.key_id == t.key_id);
                t.attempted_size = Some(t.attempted_size.map_or(size, |a| a.max(size)));
                if !done {
                    due.push(t);
                }
            }
            let (store, proposer) = (&self.store, &self.proposer);
            futures::future::join_all(due.into_iter().map(|t| t.submit(&cp, store, proposer)))
                .await;
        }
    }

    /// The newest checkpoint signed by a majority of the current voters.
    async fn latest_signed(&self) -> Option<StoredCheckpoint> {
        let quorum = crate::raft::voter_quorum(self.proposer.raft());
        let store = self.store.clone();
        let cp = tokio::task::spawn_blocking(move || store.latest_checkpoint(quorum))
            .await
            .ok()?
            .inspect_err(|e| tracing::warn!(error = %e, "cannot read the latest checkpoint"))
            .ok()??;
        (cp.signatures.len() >= quorum).then_some(cp)
    }
}

impl Target {
    /// Submits `cp` (with the voters' signatures only) and proposes the
    /// cosignature it gets back. Failures are logged, never returned: the
    /// next checkpoint is the retry.
    async fn submit(
        &mut self,
        cp: &StoredCheckpoint,
        store: &Arc<LedgerStore>,
        proposer: &Proposer,
    ) {
        let size = cp.body.size;
        let note = assemble_note(&cp.body, &cp.signatures).into_bytes();
        let mut old_size = self.witnessed_size.unwrap_or(0);
        for _ in 0..SUBMIT_ATTEMPTS_MAX {
            if old_size > size {
                tracing::debug!(
                    witness = self.client.url(),
                    old_size,
                    size,
                    "witness is ahead"
                );
                return;
            }
            let Some(req) = request(store, old_size, size, note.clone()).await else {
                return;
            };
            match self.client.add_checkpoint(&req).await {
                Ok(Submission::Cosigned(lines)) => {
                    self.witnessed_size = Some(size);
                    self.accept(cp, &lines, proposer).await;
                    return;
                }
                Ok(Submission::Conflict { size: theirs }) => {
                    tracing::debug!(
                        witness = self.client.url(),
                        old_size,
                        theirs,
                        "retrying from the witness's size"
                    );
                    self.witnessed_size = Some(theirs);
                    old_size = theirs;
                }
                Err(e) => {
                    report_failure(&e, size);
                    return;
                }
            }
        }
        tracing::warn!(
            witness = self.client.url(),
            size,
            "witness keeps reporting another size; trying again with the next checkpoint"
        );
    }

    /// Verifies the witness's lines against its configured key and
    /// proposes the valid one; lines by other keys are ignored.
    async fn accept(&self, cp: &StoredCheckpoint, lines: &[SignatureLine], proposer: &Proposer) {
        let url = self.client.url();
        let valid = lines
            .iter()
            .filter(|l| l.key_id == self.key_id)
            .find(|l| match self.verifier.verify_line(&cp.body, l) {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(witness = url, error = %e, "witness sent a cosignature that does not verify");
                    false
                }
            });
        let Some(line) = valid else {
            tracing::warn!(
                witness = url,
                size = cp.body.size,
                "witness answered without a valid cosignature by its configured key"
            );
            return;
        };
        let cmd = Command::WitnessCosign {
            size: cp.body.size,
            verifier_key: self.verifier_key.clone(),
            line: line.to_line(),
        };
        match proposer.propose(cmd).await {
            Ok(CommandResponse::WitnessCosigned { accepted: true }) => {
                tracing::debug!(
                    witness = self.client.url(),
                    size = cp.body.size,
                    "witness cosignature stored"
                );
            }
            Ok(other) => {
                tracing::warn!(
                    witness = self.client.url(),
                    ?other,
                    "witness cosignature not stored"
                )
            }
            Err(e @ (ProposeError::Fatal(_) | ProposeError::Stopping)) => {
                tracing::debug!(error = %e, "raft stopped")
            }
            Err(e) => tracing::warn!(error = %e, "cannot propose a witness cosignature"),
        }
    }
}

/// The add-checkpoint request from `old_size` to `size`, with its
/// consistency proof read from the store.
async fn request(
    store: &Arc<LedgerStore>,
    old_size: u64,
    size: u64,
    note: Vec<u8>,
) -> Option<AddCheckpointRequest> {
    let s = store.clone();
    let proof = match tokio::task::spawn_blocking(move || s.consistency_proof(old_size, size)).await
    {
        Ok(Ok((proof, _, _))) => proof,
        other => {
            tracing::warn!(
                old_size,
                size,
                ?other,
                "cannot prove consistency for a witness"
            );
            return None;
        }
    };
    AddCheckpointRequest::new(old_size, proof, note)
        .inspect_err(|e| tracing::error!(error = %e, "cannot build an add-checkpoint request"))
        .ok()
}

fn report_failure(e: &SubmitError, size: u64) {
    match e {
        SubmitError::Refused {
            status: 409 | 422, ..
        } => {
            tracing::error!(error = %e, size, "a witness reports our checkpoint inconsistent with what it cosigned before")
        }
        _ => {
            tracing::warn!(error = %e, size, "witness did not cosign; trying again with the next checkpoint")
        }
    }
}
