//! The public read calls an auditor makes, with each response checked for
//! shape before it is used: hashes are 32 bytes, sizes are the ones asked
//! for. Whether the content is *true* is for the proofs to show.

use crate::tls::bearer::Conn;

use super::AuditError;
use crate::ledger::merkle::Hash;
use crate::proto::{self, ledger_client::LedgerClient};

/// A connection to one node's public `Ledger` service.
#[derive(Clone)]
pub struct LogReader {
    endpoint: String,
    client: LedgerClient<Conn>,
}

impl LogReader {
    pub fn new(endpoint: &str, client: LedgerClient<Conn>) -> Self {
        Self {
            endpoint: endpoint.to_string(),
            client,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn status(&self, status: tonic::Status) -> AuditError {
        AuditError::Status {
            endpoint: self.endpoint.clone(),
            code: status.code(),
            message: status.message().to_string(),
        }
    }

    fn bad(&self, reason: impl Into<String>) -> AuditError {
        AuditError::BadResponse {
            endpoint: self.endpoint.clone(),
            reason: reason.into(),
        }
    }

    fn hashes(&self, what: &str, raw: &[Vec<u8>]) -> Result<Vec<Hash>, AuditError> {
        raw.iter()
            .enumerate()
            .map(|(i, h)| {
                h.as_slice().try_into().map_err(|_| {
                    self.bad(format!(
                        "{what} hash {i} is {} bytes, not a 32-byte hash",
                        h.len()
                    ))
                })
            })
            .collect()
    }

    /// The signed note of the node's latest checkpoint, as served. Not a
    /// linearizable read: an auditor wants each node's own view, so that two
    /// nodes showing different logs can be caught.
    pub async fn latest_note(&mut self) -> Result<String, AuditError> {
        let response = self
            .client
            .get_checkpoint(proto::GetCheckpointRequest {
                size: 0,
                linearizable: false,
            })
            .await
            .map_err(|s| self.status(s))?
            .into_inner();
        response
            .checkpoint
            .map(|c| c.note)
            .ok_or_else(|| self.bad("GetCheckpoint returned no checkpoint"))
    }

    /// A consistency proof from `old` to `new` (both non-zero, old <= new).
    pub async fn consistency(&mut self, old: u64, new: u64) -> Result<Vec<Hash>, AuditError> {
        let proof = self
            .client
            .get_consistency_proof(proto::GetConsistencyProofRequest {
                old_size: old,
                new_size: new,
            })
            .await
            .map_err(|s| self.status(s))?
            .into_inner()
            .proof
            .ok_or_else(|| self.bad("GetConsistencyProof returned no proof"))?;
        if proof.old_size != old || proof.new_size != new {
            return Err(self.bad(format!(
                "asked for a proof from {old} to {new}, got {} to {}",
                proof.old_size, proof.new_size
            )));
        }
        self.hashes("consistency proof", &proof.hashes)
    }

    /// An inclusion proof of leaf `index` in the tree of `size` leaves.
    pub async fn inclusion(&mut self, index: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
        let proof = self
            .client
            .get_inclusion_proof(proto::GetInclusionProofRequest {
                index,
                tree_size: size,
            })
            .await
            .map_err(|s| self.status(s))?
            .into_inner()
            .proof
            .ok_or_else(|| self.bad("GetInclusionProof returned no proof"))?;
        if proof.index != index || proof.tree_size != size {
            return Err(self.bad(format!(
                "asked for leaf {index} in size {size}, got leaf {} in size {}",
                proof.index, proof.tree_size
            )));
        }
        self.hashes("inclusion proof", &proof.hashes)
    }

    /// Leaves `start..end` as `(index, leaf bytes)`; a page may end early.
    pub async fn leaves(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, AuditError> {
        let response = self
            .client
            .get_entries(proto::GetEntriesRequest {
                start,
                end,
                linearizable: false,
            })
            .await
            .map_err(|s| self.status(s))?
            .into_inner();
        let mut out = Vec::with_capacity(response.entries.len());
        for (i, e) in response.entries.into_iter().enumerate() {
            let want = start + i as u64;
            if e.index != want || want >= end {
                return Err(self.bad(format!(
                    "GetEntries({start}..{end}) returned index {} at position {i}",
                    e.index
                )));
            }
            out.push((e.index, e.leaf));
        }
        Ok(out)
    }
}
