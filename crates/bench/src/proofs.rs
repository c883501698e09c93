//! One proof request on Ironlog: an inclusion proof of a random leaf, or a
//! consistency proof between two random tree sizes, all within one tree
//! size fixed for the run (by default the latest checkpoint's, so every
//! answer has a signed root to be checked against).
//!
//! A client checks every `verify_every`-th proof it receives (after its
//! latency is taken, see [`Client::check`]) with the core's verifiers:
//! an inclusion proof against the checkpoint's root and the leaf's own
//! bytes, a consistency proof between the two roots it returns and, with a
//! second proof, from its newer root to the checkpoint's. A proof that does
//! not verify ends the run. The checkpoint's signatures are not checked
//! here (`ironlog checkpoint --vkey` does that): the root is taken as the
//! first endpoint serves it.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::load::{Client, Factory, RequestError};
use ironlog::cli::client::{self as ironlog_client, Conn, Credentials};
use ironlog::ledger::merkle::{self, Hash};
use ironlog::proto;
use ironlog::proto::ledger_client::LedgerClient;

/// Which proof each request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProofKind {
    Inclusion,
    Consistency,
}

impl ProofKind {
    /// The smallest tree the kind can draw from: a consistency proof needs
    /// two different non-empty sizes.
    fn size_min(self) -> u64 {
        match self {
            ProofKind::Inclusion => 1,
            ProofKind::Consistency => 2,
        }
    }
}

/// The tree every request of the run proves within.
#[derive(Clone, Copy, Debug)]
pub struct Tree {
    pub size: u64,
    /// The checkpoint's root at `size`: what sampled proofs are checked against.
    pub root: Hash,
}

pub struct ProofFactory {
    credentials: Credentials,
    endpoints: Vec<String>,
    kind: ProofKind,
    tree: Tree,
    verify_every: u64,
    /// Proofs verified by all clients, for the report.
    verified: Arc<AtomicU64>,
}

impl ProofFactory {
    /// Reads the checkpoint at `tree_size` (0: the latest) from the first
    /// endpoint; every client proves within it.
    pub async fn new(
        credentials: Credentials,
        endpoints: Vec<String>,
        kind: ProofKind,
        tree_size: u64,
        verify_every: u64,
    ) -> Result<Self, String> {
        let endpoint = endpoints.first().ok_or("no endpoint")?;
        let mut ledger = connect(&credentials, endpoint).await?;
        let checkpoint = ledger
            .get_checkpoint(proto::GetCheckpointRequest {
                size: tree_size,
                linearizable: false,
            })
            .await
            .map_err(|s| format!("{endpoint}: checkpoint: {}", status_text(&s)))?
            .into_inner()
            .checkpoint
            .ok_or("no checkpoint in the response")?;
        let tree = Tree {
            size: checkpoint.size,
            root: hash("checkpoint root", &checkpoint.root_hash)?,
        };
        if tree.size < kind.size_min() {
            return Err(format!(
                "the checkpoint's tree has {} leaves; {kind:?} proofs need at least {}",
                tree.size,
                kind.size_min()
            ));
        }
        Ok(ProofFactory {
            credentials,
            endpoints,
            kind,
            tree,
            verify_every: verify_every.max(1),
            verified: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn tree(&self) -> Tree {
        self.tree
    }

    /// Proofs verified so far, by every client.
    pub fn verified(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }
}

async fn connect(credentials: &Credentials, endpoint: &str) -> Result<LedgerClient<Conn>, String> {
    let channel = ironlog_client::connect(credentials, endpoint)
        .await
        .map_err(|e| format!("{endpoint}: {e}"))?;
    Ok(ironlog_client::ledger(channel))
}

impl Factory for ProofFactory {
    type Client = ProofClient;

    async fn connect(&self, client: usize) -> Result<ProofClient, String> {
        let endpoint = &self.endpoints[client % self.endpoints.len()];
        Ok(ProofClient {
            ledger: connect(&self.credentials, endpoint).await?,
            kind: self.kind,
            tree: self.tree,
            verify_every: self.verify_every,
            verified: self.verified.clone(),
            last: None,
        })
    }
}

pub struct ProofClient {
    ledger: LedgerClient<Conn>,
    kind: ProofKind,
    tree: Tree,
    verify_every: u64,
    verified: Arc<AtomicU64>,
    /// The answer to the last request, kept only when it is to be checked.
    last: Option<Answer>,
}

enum Answer {
    Inclusion(proto::InclusionProof),
    Consistency(proto::ConsistencyProof),
}

impl Client for ProofClient {
    async fn request(&mut self, n: u64, _batch: usize) -> Result<(), RequestError> {
        let size = self.tree.size;
        let answer = match self.kind {
            ProofKind::Inclusion => {
                let index = leaf_index(n, size);
                let proof = self
                    .ledger
                    .get_inclusion_proof(proto::GetInclusionProofRequest {
                        index,
                        tree_size: size,
                    })
                    .await
                    .map_err(request_error)?
                    .into_inner()
                    .proof
                    .ok_or_else(|| {
                        RequestError::Fatal("no inclusion proof in the answer".into())
                    })?;
                if (proof.index, proof.tree_size) != (index, size) {
                    return Err(RequestError::Fatal(format!(
                        "asked for leaf {index} in size {size}, got leaf {} in size {}",
                        proof.index, proof.tree_size
                    )));
                }
                Answer::Inclusion(proof)
            }
            ProofKind::Consistency => {
                let (old, new) = sizes(n, size);
                let proof = self
                    .consistency(old, new)
                    .await
                    .map_err(RequestError::Fatal)?;
                Answer::Consistency(proof)
            }
        };
        self.last = n.is_multiple_of(self.verify_every).then_some(answer);
        Ok(())
    }

    async fn check(&mut self, _n: u64) -> Result<(), String> {
        match self.last.take() {
            None => return Ok(()),
            Some(Answer::Inclusion(proof)) => self.verify_inclusion(&proof).await?,
            Some(Answer::Consistency(proof)) => self.verify_consistency(&proof).await?,
        }
        self.verified.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl ProofClient {
    async fn consistency(&mut self, old: u64, new: u64) -> Result<proto::ConsistencyProof, String> {
        let proof = self
            .ledger
            .get_consistency_proof(proto::GetConsistencyProofRequest {
                old_size: old,
                new_size: new,
            })
            .await
            .map_err(|s| status_text(&s))?
            .into_inner()
            .proof
            .ok_or("no consistency proof in the answer")?;
        if (proof.old_size, proof.new_size) != (old, new) {
            return Err(format!(
                "asked for sizes {old}..{new}, got {}..{}",
                proof.old_size, proof.new_size
            ));
        }
        Ok(proof)
    }

    /// The proof links the leaf's own bytes (read back here) to the
    /// checkpoint's root.
    async fn verify_inclusion(&mut self, proof: &proto::InclusionProof) -> Result<(), String> {
        let index = proof.index;
        let entries = self
            .ledger
            .get_entries(proto::GetEntriesRequest {
                start: index,
                end: index + 1,
                linearizable: false,
            })
            .await
            .map_err(|s| format!("leaf {index}: {}", status_text(&s)))?
            .into_inner()
            .entries;
        let leaf = entries
            .iter()
            .find(|e| e.index == index)
            .ok_or_else(|| format!("leaf {index} is missing from GetEntries"))?;
        let leaf_hash = merkle::leaf_hash(&leaf.leaf);
        if proof.leaf_hash != leaf_hash {
            return Err(format!(
                "leaf {index}: the proof's leaf hash is not the hash of the stored leaf"
            ));
        }
        if proof.root_hash != self.tree.root {
            return Err(format!(
                "inclusion proof of leaf {index}: its root is not the checkpoint's at size {}",
                self.tree.size
            ));
        }
        merkle::verify_inclusion(
            index,
            proof.tree_size,
            &leaf_hash,
            &hashes(&proof.hashes)?,
            &self.tree.root,
        )
        .map_err(|e| format!("inclusion proof of leaf {index} does not verify: {e}"))
    }

    /// The proof links its two roots, and a second one links its newer root
    /// to the checkpoint's, so neither root is taken on the server's word.
    async fn verify_consistency(&mut self, proof: &proto::ConsistencyProof) -> Result<(), String> {
        let (old, new) = (proof.old_size, proof.new_size);
        let new_root = hash("new root", &proof.new_root)?;
        merkle::verify_consistency(
            old,
            new,
            &hash("old root", &proof.old_root)?,
            &new_root,
            &hashes(&proof.hashes)?,
        )
        .map_err(|e| format!("consistency proof {old}..{new} does not verify: {e}"))?;
        let size = self.tree.size;
        let to_checkpoint = self.consistency(new, size).await?;
        merkle::verify_consistency(
            new,
            size,
            &new_root,
            &self.tree.root,
            &hashes(&to_checkpoint.hashes)?,
        )
        .map_err(|e| format!("root of size {new} is not a prefix of the checkpoint's: {e}"))
    }
}

fn request_error(s: tonic::Status) -> RequestError {
    match s.code() {
        tonic::Code::Unavailable => RequestError::Retry,
        _ => RequestError::Fatal(status_text(&s)),
    }
}

fn status_text(s: &tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

fn hash(what: &str, bytes: &[u8]) -> Result<Hash, String> {
    Hash::try_from(bytes).map_err(|_| format!("{what} is {} bytes, not 32", bytes.len()))
}

fn hashes(list: &[Vec<u8>]) -> Result<Vec<Hash>, String> {
    list.iter().map(|h| hash("proof hash", h)).collect()
}

/// SplitMix64's finaliser: turns consecutive request numbers into
/// well-spread 64-bit values, so each request draws its own leaf or sizes
/// without a shared generator (and a run can be replayed).
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The leaf request `n` proves: uniform below `size` (at least 1). The
/// modulo's bias is below size / 2^64: nothing at any log size we hold.
fn leaf_index(n: u64, size: u64) -> u64 {
    mix(n) % size
}

/// The sizes request `n` proves consistent, `1 <= old < new <= size`
/// (`size` at least 2): `new` uniform in `2..=size`, then `old` uniform below it.
fn sizes(n: u64, size: u64) -> (u64, u64) {
    let first = mix(n);
    let new = 2 + first % (size - 1);
    let old = 1 + mix(first) % (new - 1);
    (old, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_indices_stay_below_the_size_and_cover_it() {
        let size = 10;
        let mut seen = [0u32; 10];
        for n in 0..10_000 {
            seen[leaf_index(n, size) as usize] += 1;
        }
        // Uniform: each of ten leaves near 1000 of 10,000 draws.
        assert!(seen.iter().all(|&k| (800..1200).contains(&k)), "{seen:?}");
        assert!((0..1000).all(|n| leaf_index(n, 1) == 0));
    }

    #[test]
    fn leaf_indices_differ_between_clients_and_repeat_per_request() {
        // load::run numbers client c's requests from c << 40.
        let a: Vec<u64> = (0..8).map(|i| leaf_index(i, 1 << 30)).collect();
        let b: Vec<u64> = (0..8).map(|i| leaf_index((1 << 40) + i, 1 << 30)).collect();
        assert_ne!(a, b);
        assert_eq!(
            a,
            (0..8).map(|i| leaf_index(i, 1 << 30)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn consistency_sizes_are_ordered_non_empty_and_within_the_tree() {
        for size in [2, 3, 17, 1_000_000, 10_000_000] {
            for n in 0..10_000 {
                let (old, new) = sizes(n, size);
                assert!(1 <= old && old < new && new <= size, "{size}: {old}..{new}");
            }
        }
        // The smallest tree has one pair; larger ones reach both ends.
        assert!((0..100).all(|n| sizes(n, 2) == (1, 2)));
        let drawn: Vec<(u64, u64)> = (0..10_000).map(|n| sizes(n, 100)).collect();
        assert!(drawn.iter().any(|&(_, new)| new == 100));
        assert!(drawn.iter().any(|&(old, new)| old == 1 && new == 2));
    }
}
