//! Offline proof bundles: entries with their inclusion proofs and a signed
//! checkpoint, checkable with no network.
//!
//! Each entry is one C2SP tlog-proof (c2sp.org/tlog-proof@v1):
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of the entry's exact leaf bytes>
//! index <n>
//! <base64 proof hash, leaf sibling first>...
//!
//! <signed checkpoint note>
//! ```
//! The spec names `extra` as the place for "data necessary to reconstruct
//! the record hash"; here that is the leaf itself, so a verifier recomputes
//! `SHA-256(0x00 || leaf)` rather than trusting a hash. A bundle is a file of
//! such proofs one after another: each block is a valid `.tlog-proof` on its
//! own, and the header line cannot occur inside a note (signature lines start
//! with U+2014), so the split is unambiguous.
//!
//! Verification trusts nothing in the file: the checkpoint must satisfy the
//! [`TrustPolicy`], each leaf must decode and name the index it is filed
//! under, and each proof must lead from the leaf hash to the signed root.
//!
//! Pure: text in, verdicts out.

use std::collections::BTreeMap;

use base64::prelude::{Engine, BASE64_STANDARD};

use super::checkpoint::{CheckpointBody, CheckpointError};
use super::event::LeafRecord;
use super::merkle::{self, Hash};
use super::policy::{Accepted, PolicyError, TrustPolicy};

/// First line of every tlog-proof.
pub const PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Most proof lines: a tree of 2^64 leaves has 64 levels.
pub const PROOF_HASHES_MAX: usize = 64;

/// Why a bundle or one of its proofs is not accepted. Every variant names
/// the proof (by its position in the file) so the user can find it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("bundle is empty: it holds no {PROOF_HEADER} proof")]
    Empty,
    #[error("bundle is not text: {0}")]
    NotText(String),
    #[error("proof {proof}: {reason}")]
    Malformed { proof: usize, reason: String },
    #[error("proof {proof} (leaf {index}): checkpoint not accepted: {source}")]
    Checkpoint {
        proof: usize,
        index: u64,
        #[source]
        source: PolicyError,
    },
    #[error(
        "proof {proof} (leaf {index}): the leaf bytes do not decode as an Ironlog entry: {reason}"
    )]
    Leaf {
        proof: usize,
        index: u64,
        reason: String,
    },
    #[error("proof {proof}: filed under index {index} but the leaf says it is entry {leaf_index}")]
    IndexMismatch {
        proof: usize,
        index: u64,
        leaf_index: u64,
    },
    #[error("proof {proof} (leaf {index}): inclusion proof does NOT verify against checkpoint {size}: {reason}")]
    Inclusion {
        proof: usize,
        index: u64,
        size: u64,
        reason: String,
    },
}

/// One c2sp.org/tlog-proof@v1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque extra data; for Ironlog, the leaf bytes.
    pub extra: Option<Vec<u8>>,
    pub index: u64,
    pub hashes: Vec<Hash>,
    /// The signed checkpoint note, verbatim (ends with a newline).
    pub note: String,
}

impl TlogProof {
    pub fn to_text(&self) -> String {
        let mut out = format!("{PROOF_HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", BASE64_STANDARD.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.hashes {
            out.push_str(&BASE64_STANDARD.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.note);
        out
    }

    /// Parses one proof; `position` (1-based) only labels errors.
    pub fn parse(text: &str, position: usize) -> Result<Self, BundleError> {
        let bad = |reason: String| BundleError::Malformed {
            proof: position,
            reason,
        };
        let (head, note) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no empty line before the checkpoint".into()))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(PROOF_HEADER) {
            return Err(bad(format!("first line is not {PROOF_HEADER:?}")));
        }
        let mut line = lines.next();
        let mut extra = None;
        if let Some(data) = line.and_then(|l| l.strip_prefix("extra ")) {
            extra = Some(
                BASE64_STANDARD
                    .decode(data)
                    .map_err(|e| bad(format!("extra is not base64: {e}")))?,
            );
            line = lines.next();
        }
        let index_text = line
            .and_then(|l| l.strip_prefix("index "))
            .ok_or_else(|| bad("missing \"index <n>\" line".into()))?;
        let index = parse_decimal(index_text)
            .ok_or_else(|| bad(format!("index {index_text:?} is not a canonical decimal")))?;
        let mut hashes = Vec::new();
        for (i, line) in lines.enumerate() {
            if hashes.len() == PROOF_HASHES_MAX {
                return Err(bad(format!(
                    "more than {PROOF_HASHES_MAX} proof hashes; no tree is that deep"
                )));
            }
            let raw = BASE64_STANDARD
                .decode(line)
                .map_err(|e| bad(format!("proof line {} is not base64: {e}", i + 1)))?;
            let hash: Hash = raw.as_slice().try_into().map_err(|_| {
                bad(format!(
                    "proof line {} is {} bytes, not a 32-byte hash",
                    i + 1,
                    raw.len()
                ))
            })?;
            hashes.push(hash);
        }
        if note.is_empty() || !note.ends_with('\n') {
            return Err(bad("the checkpoint note is missing or truncated".into()));
        }
        Ok(TlogProof {
            extra,
            index,
            hashes,
            note: note.to_string(),
        })
    }
}

/// ASCII decimal with no leading zeroes (unless it is `0`).
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Renders a bundle: the proofs one after another.
pub fn encode_bundle(proofs: &[TlogProof]) -> String {
    proofs.iter().map(TlogProof::to_text).collect()
}

/// Splits a bundle file into its proofs.
pub fn parse_bundle(bytes: &[u8]) -> Result<Vec<TlogProof>, BundleError> {
    let text = std::str::from_utf8(bytes).map_err(|e| BundleError::NotText(e.to_string()))?;
    let marker = format!("{PROOF_HEADER}\n");
    if !text.starts_with(&marker) {
        return Err(if text.trim().is_empty() {
            BundleError::Empty
        } else {
            BundleError::Malformed {
                proof: 1,
                reason: format!("the file does not start with {PROOF_HEADER:?}"),
            }
        });
    }
    // Block starts: offset 0 and every header line after a newline.
    let mut starts = vec![0];
    let needle = format!("\n{marker}");
    let mut from = 0;
    while let Some(at) = text[from..].find(&needle) {
        starts.push(from + at + 1);
        from += at + 1;
    }
    starts.push(text.len());
    starts
        .windows(2)
        .enumerate()
        .map(|(i, w)| TlogProof::parse(&text[w[0]..w[1]], i + 1))
        .collect()
}

/// One entry proved by a bundle.
#[derive(Clone, Debug)]
pub struct ProvedEntry {
    pub index: u64,
    pub leaf_hash: Hash,
    pub record: LeafRecord,
    /// Size of the checkpoint it was proved against.
    pub checkpoint_size: u64,
}

/// What a verified bundle proves.
#[derive(Clone, Debug)]
pub struct BundleVerdict {
    pub entries: Vec<ProvedEntry>,
    /// Each distinct checkpoint the proofs rest on, by size.
    pub checkpoints: BTreeMap<u64, Accepted>,
}

/// The body of a note whose signatures are NOT checked: for showing what a
/// proof claims when the caller has no policy. The signer lists are empty.
pub fn note_body(note: &str) -> Result<Accepted, PolicyError> {
    let parsed = signed_note::Note::from_bytes(note.as_bytes()).map_err(|_| {
        CheckpointError::MalformedNote {
            reason: "expected UTF-8 text, a blank line and signature lines",
        }
    })?;
    Ok(Accepted {
        body: CheckpointBody::parse(parsed.text())?,
        log_signers: Vec::new(),
        witness_signers: Vec::new(),
    })
}

/// Verifies every proof of a bundle; the first failure is the error. With a
/// `policy`, each checkpoint must satisfy it; without one only the proofs'
/// arithmetic is checked against the roots the notes claim, and nothing
/// says who signed them.
pub fn verify_bundle(
    proofs: &[TlogProof],
    policy: Option<&TrustPolicy>,
) -> Result<BundleVerdict, BundleError> {
    if proofs.is_empty() {
        return Err(BundleError::Empty);
    }
    // Notes repeat across proofs; check each distinct one once.
    let mut accepted_notes: BTreeMap<&str, Accepted> = BTreeMap::new();
    let mut entries = Vec::with_capacity(proofs.len());
    for (i, p) in proofs.iter().enumerate() {
        let position = i + 1;
        let accepted = match accepted_notes.get(p.note.as_str()) {
            Some(a) => a.clone(),
            None => {
                let a = match policy {
                    Some(policy) => policy.check(p.note.as_bytes()),
                    None => note_body(&p.note),
                }
                .map_err(|source| BundleError::Checkpoint {
                    proof: position,
                    index: p.index,
                    source,
                })?;
                accepted_notes.insert(&p.note, a.clone());
                a
            }
        };
        let leaf = p.extra.as_deref().ok_or_else(|| BundleError::Malformed {
            proof: position,
            reason: "no \"extra\" line carrying the leaf bytes".into(),
        })?;
        let record = LeafRecord::decode(leaf).map_err(|e| BundleError::Leaf {
            proof: position,
            index: p.index,
            reason: e.to_string(),
        })?;
        if record.index != p.index {
            return Err(BundleError::IndexMismatch {
                proof: position,
                index: p.index,
                leaf_index: record.index,
            });
        }
        let leaf_hash = merkle::leaf_hash(leaf);
        let size = accepted.body.size;
        merkle::verify_inclusion(p.index, size, &leaf_hash, &p.hashes, &accepted.body.root)
            .map_err(|e| BundleError::Inclusion {
                proof: position,
                index: p.index,
                size,
                reason: e.to_string(),
            })?;
        entries.push(ProvedEntry {
            index: p.index,
            leaf_hash,
            record,
            checkpoint_size: size,
        });
    }
    let checkpoints = accepted_notes
        .into_values()
        .map(|a| (a.body.size, a))
        .collect();
    Ok(BundleVerdict {
        entries,
        checkpoints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{assemble_note, generate_key, NoteSigner};
    use crate::event::{Actor, Event, Outcome};
    use crate::merkle::MemoryHashStore;
    use crate::policy::KeyGroup;

    const ORIGIN: &str = "ironlog.test/log";

    fn leaf(index: u64) -> Vec<u8> {
        LeafRecord {
            index,
            commit_time_unix_nanos: 1_700_000_000_000_000_000,
            event: Event {
                time_unix_nanos: 1_700_000_000_000_000_000,
                actor: Actor {
                    id: format!("user{index}"),
                    kind: None,
                    ip: None,
                    user_agent: None,
                },
                action: "db.read".into(),
                resource: "postgres://payments".into(),
                outcome: Outcome::Success,
                source: "test".into(),
                details: Default::default(),
                idempotency_key: None,
            },
        }
        .encode()
    }

    /// A signed 7-leaf log and a bundle proving leaves 0, 3 and 6.
    fn fixture() -> (TrustPolicy, Vec<TlogProof>) {
        let (skey, vkey) = generate_key(ORIGIN).unwrap();
        let signer = NoteSigner::from_skey(&skey).unwrap();
        let mut tree = MemoryHashStore::new();
        let leaves: Vec<_> = (0..7).map(leaf).collect();
        for l in &leaves {
            tree.append(l).unwrap();
        }
        let body = CheckpointBody {
            origin: ORIGIN.into(),
            size: 7,
            root: tree.root().unwrap(),
        };
        let note = assemble_note(&body, &[signer.sign(&body).unwrap()]);
        let proofs = [0u64, 3, 6]
            .iter()
            .map(|&i| TlogProof {
                extra: Some(leaves[i as usize].clone()),
                index: i,
                hashes: merkle::inclusion_proof(i, 7, &tree).unwrap(),
                note: note.clone(),
            })
            .collect();
        let policy = TrustPolicy {
            origin: ORIGIN.into(),
            log: KeyGroup {
                threshold: 1,
                keys: vec![vkey],
            },
            witnesses: None,
        };
        (policy, proofs)
    }

    #[test]
    fn bundle_round_trips_and_verifies() {
        let (policy, proofs) = fixture();
        let text = encode_bundle(&proofs);
        assert_eq!(parse_bundle(text.as_bytes()).unwrap(), proofs);
        let verdict = verify_bundle(&proofs, Some(&policy)).unwrap();
        assert_eq!(verdict.entries.len(), 3);
        assert_eq!(verdict.entries[1].record.event.actor.id, "user3");
        assert_eq!(verdict.checkpoints.keys().copied().collect::<Vec<_>>(), [7]);
        // Without a policy the arithmetic still has to hold.
        assert!(verify_bundle(&proofs, None).is_ok());
        let mut bad = proofs.clone();
        bad[0].hashes[0][0] ^= 1;
        assert!(verify_bundle(&bad, None).is_err());
    }

    #[test]
    fn every_single_byte_change_is_caught() {
        let (policy, proofs) = fixture();
        let text = encode_bundle(&proofs[1..2]).into_bytes();
        for at in 0..text.len() {
            let mut bad = text.clone();
            bad[at] ^= 0x01;
            let verdict = parse_bundle(&bad).and_then(|p| verify_bundle(&p, Some(&policy)));
            // A flip may land in an unknown (ignored) signature name, turning
            // a valid signature into an unknown one; with a 1-key policy that
            // is still below threshold, so no flip may pass.
            assert!(verdict.is_err(), "flip at byte {at} was accepted");
        }
    }

    #[test]
    fn swapped_leaves_and_wrong_lengths_are_named() {
        let (policy, mut proofs) = fixture();
        proofs[0].extra = proofs[1].extra.clone();
        assert!(matches!(
            verify_bundle(&proofs, Some(&policy)),
            Err(BundleError::IndexMismatch { .. })
        ));
        let (policy, mut proofs) = fixture();
        proofs[1].hashes.pop();
        assert!(matches!(
            verify_bundle(&proofs, Some(&policy)),
            Err(BundleError::Inclusion { proof: 2, .. })
        ));
        let (policy, mut proofs) = fixture();
        proofs[2].extra = None;
        assert!(matches!(
            verify_bundle(&proofs, Some(&policy)),
            Err(BundleError::Malformed { proof: 3, .. })
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"\xff",
            b"hello\n",
            b"c2sp.org/tlog-proof@v1\n",
            b"c2sp.org/tlog-proof@v1\nindex 01\n\nx\n",
            b"c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\nx\n",
            b"c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\nx\n",
            b"c2sp.org/tlog-proof@v1\nindex 1\n\n",
        ] {
            assert!(
                parse_bundle(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let (policy, _) = fixture();
        assert_eq!(
            verify_bundle(&[], Some(&policy)).unwrap_err(),
            BundleError::Empty
        );
    }
}
