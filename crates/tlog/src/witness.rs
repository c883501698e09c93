//! C2SP tlog-witness (c2sp.org/tlog-witness): the `add-checkpoint` request
//! body, and the witness's decision on it, as pure functions.
//!
//! A witness keeps, per log origin, the size and root of the last checkpoint
//! it cosigned. It cosigns a new checkpoint only if the log's keys signed it,
//! the client knows that stored size, and a consistency proof shows the new
//! tree extends the stored one. That is what makes a cosignature worth
//! having: a log that shows one party a tree and another party a fork cannot
//! get both cosigned by the same witness.
//!
//! # Request body
//! ```text
//! old <size>\n
//! <base64 hash>\n        (0 to 63 consistency proof lines)
//! \n
//! <checkpoint note: body, blank line, signature lines>
//! ```
//!
//! # Decision
//! [`decide`] checks, in this order, and refuses with the status the spec
//! names (each [`Refusal`] variant documents its status):
//! 1. the body is well formed, `old <= size`, and the proof is empty when
//!    `old` is 0 (400);
//! 2. a log policy is configured for the origin (404);
//! 3. the note meets the policy's *log* threshold (403);
//! 4. `old` equals the stored size, 0 when none is stored (409, with the
//!    stored size in the body so the client can retry);
//! 5. at equal sizes, the roots are equal (409);
//! 6. the consistency proof from the stored tree verifies (422).
//!
//! # Invariants
//! - An accepted checkpoint is never smaller than the stored one: `old` must
//!   equal the stored size and may not exceed the new size (asserted).
//! - Nothing here panics on a request body, however malformed.
//!
//! Pure: no I/O, no clock. The caller supplies the stored state and the
//! time for the cosignature, and persists the new state.

use base64::prelude::{Engine, BASE64_STANDARD};
use signed_note::Note;

use super::checkpoint::{CheckpointBody, CheckpointError, SignatureLine};
use super::merkle::{self, Hash, HASH_BYTES, PROOF_HASHES_MAX};
use super::policy::{PolicyError, TrustPolicy};

/// Most consistency proof lines a request may carry (the spec's bound).
pub const PROOF_LINES_MAX: usize = 63;

/// Content type of a 409 body that carries the witness's stored size.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

const _: () = assert!(PROOF_LINES_MAX <= PROOF_HASHES_MAX);

/// Why a witness refuses to cosign. [`Refusal::status`] is the HTTP status
/// the spec prescribes for each.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the body does not follow the add-checkpoint format.
    #[error("malformed add-checkpoint request: {reason}")]
    Malformed { reason: String },
    /// 400: the client claims an old tree larger than the new one.
    #[error("old size {old_size} is larger than the checkpoint size {size}")]
    OldSizeAboveSize { old_size: u64, size: u64 },
    /// 400: from size 0 there is nothing to prove, so the proof must be empty.
    #[error("old size is 0, but the request carries {lines} consistency proof line(s)")]
    ProofFromZero { lines: usize },
    /// 404: no log key is configured for this origin.
    #[error("unknown origin {origin:?}: this witness trusts no log key for it")]
    UnknownOrigin { origin: String },
    /// 403: the note is not signed by enough of the origin's log keys.
    #[error("checkpoint is not signed by the log: {reason}")]
    Untrusted { reason: String },
    /// 409: the client's old size is not the size this witness last
    /// cosigned. The response body is `stored_size` and a newline.
    #[error("old size {old_size} is not the size this witness last cosigned ({stored_size})")]
    OldSizeMismatch { old_size: u64, stored_size: u64 },
    /// 409: same size as the stored checkpoint, different root: a fork.
    #[error("checkpoint of size {size} has a different root from the one this witness cosigned at that size")]
    RootMismatch { size: u64 },
    /// 422: the consistency proof does not show the new tree extends the stored one.
    #[error("consistency proof from size {old_size} to {size} does not verify: {reason}")]
    Inconsistent {
        old_size: u64,
        size: u64,
        reason: String,
    },
}

impl Refusal {
    /// The HTTP status code the spec prescribes.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed { .. }
            | Refusal::OldSizeAboveSize { .. }
            | Refusal::ProofFromZero { .. } => 400,
            Refusal::Untrusted { .. } => 403,
            Refusal::UnknownOrigin { .. } => 404,
            Refusal::OldSizeMismatch { .. } | Refusal::RootMismatch { .. } => 409,
            Refusal::Inconsistent { .. } => 422,
        }
    }

    /// Evidence of log misbehaviour (a fork or a rewritten tree) rather than
    /// a client that is merely out of date: worth an operator's attention.
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            Refusal::RootMismatch { .. } | Refusal::Inconsistent { .. }
        )
    }
}

/// What a witness stores per origin: the last tree it cosigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
}

/// A parsed `add-checkpoint` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpointRequest {
    /// Size of the tree the proof starts from: the witness's stored size.
    pub old_size: u64,
    /// Consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The checkpoint note as sent: body, blank line, signature lines.
    pub note: Vec<u8>,
    /// The note's body, parsed but not yet verified.
    pub checkpoint: CheckpointBody,
}

fn malformed(reason: impl Into<String>) -> Refusal {
    Refusal::Malformed {
        reason: reason.into(),
    }
}

/// Parses a canonical ASCII decimal: digits only, no leading zero (except
/// `0` itself), within u64.
fn parse_decimal(text: &[u8]) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.iter().all(u8::is_ascii_digit)
        && (text == b"0" || text[0] != b'0');
    if !canonical {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Splits off the next newline-terminated line: `(line, rest)`.
fn next_line(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = text.iter().position(|&b| b == b'\n')?;
    Some((&text[..end], &text[end + 1..]))
}

/// The checkpoint body of a note, unverified; refuses anything that is not
/// a signed note whose text is an Ironlog-style checkpoint.
fn note_checkpoint(note: &[u8]) -> Result<CheckpointBody, Refusal> {
    let parsed = Note::from_bytes(note).map_err(|_| {
        malformed("the checkpoint is not a signed note (text, blank line, signature lines)")
    })?;
    CheckpointBody::parse(parsed.text()).map_err(|e| malformed(e.to_string()))
}

impl AddCheckpointRequest {
    /// A request to send: checks what the witness would check about the
    /// format, so a client never sends a body that is refused with 400.
    pub fn new(old_size: u64, proof: Vec<Hash>, note: Vec<u8>) -> Result<Self, Refusal> {
        if proof.len() > PROOF_LINES_MAX {
            return Err(malformed(format!(
                "{} proof lines, at most {PROOF_LINES_MAX} are allowed",
                proof.len()
            )));
        }
        let checkpoint = note_checkpoint(&note)?;
        Ok(Self {
            old_size,
            proof,
            note,
            checkpoint,
        })
    }

    /// Parses a request body. Any deviation from the format is
    /// [`Refusal::Malformed`] naming what is wrong; nothing panics.
    pub fn parse(body: &[u8]) -> Result<Self, Refusal> {
        let (first, mut rest) =
            next_line(body).ok_or_else(|| malformed("missing the \"old <size>\" line"))?;
        let old_size = first
            .strip_prefix(b"old ")
            .and_then(parse_decimal)
            .ok_or_else(|| {
                malformed(format!(
                    "first line must be \"old <size>\" with a canonical decimal size, got {:?}",
                    String::from_utf8_lossy(first)
                ))
            })?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = next_line(rest)
                .ok_or_else(|| malformed("missing the empty line before the checkpoint"))?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == PROOF_LINES_MAX {
                return Err(malformed(format!(
                    "more than {PROOF_LINES_MAX} consistency proof lines"
                )));
            }
            let hash: Hash = BASE64_STANDARD
                .decode(line)
                .ok()
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| {
                    malformed(format!(
                        "proof line {} is not a base64 {HASH_BYTES}-byte hash",
                        proof.len() + 1
                    ))
                })?;
            proof.push(hash);
        }
        Self::new(old_size, proof, rest.to_vec())
    }

    /// The request body, in the format [`AddCheckpointRequest::parse`] reads.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old_size).into_bytes();
        for hash in &self.proof {
            out.extend_from_slice(BASE64_STANDARD.encode(hash).as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(&self.note);
        out
    }
}

/// Decides whether a witness with log policy `policy` for the request's
/// origin (`None`: unknown origin) and stored tree `stored` (`None`: never
/// cosigned for this origin) cosigns `req`. On success returns the tree head
/// to store; the caller must persist it before returning the cosignature.
///
/// Only the policy's log keys and threshold count: a witness vouches for
/// what the log signed, not for what other witnesses said.
pub fn decide(
    policy: Option<&TrustPolicy>,
    stored: Option<&TreeHead>,
    req: &AddCheckpointRequest,
) -> Result<TreeHead, Refusal> {
    let size = req.checkpoint.size;
    if req.old_size > size {
        return Err(Refusal::OldSizeAboveSize {
            old_size: req.old_size,
            size,
        });
    }
    if req.old_size == 0 && !req.proof.is_empty() {
        return Err(Refusal::ProofFromZero {
            lines: req.proof.len(),
        });
    }
    let policy = policy.ok_or_else(|| Refusal::UnknownOrigin {
        origin: req.checkpoint.origin.clone(),
    })?;
    check_log_signatures(policy, req)?;

    let stored_size = stored.map_or(0, |h| h.size);
    if req.old_size != stored_size {
        return Err(Refusal::OldSizeMismatch {
            old_size: req.old_size,
            stored_size,
        });
    }
    let new = TreeHead {
        size,
        root: req.checkpoint.root,
    };
    match stored {
        Some(old) if old.size == size => {
            if old.root != new.root {
                return Err(Refusal::RootMismatch { size });
            }
            if !req.proof.is_empty() {
                return Err(inconsistent(req, "a proof between equal sizes is empty"));
            }
        }
        Some(old) if old.size > 0 => {
            merkle::verify_consistency(old.size, size, &old.root, &new.root, &req.proof)
                .map_err(|e| inconsistent(req, &e.to_string()))?;
        }
        // Nothing stored, or the empty tree: any tree extends it.
        _ => {}
    }
    assert!(
        new.size >= stored_size,
        "a witness never accepts a smaller tree than it stored"
    );
    Ok(new)
}

fn inconsistent(req: &AddCheckpointRequest, reason: &str) -> Refusal {
    Refusal::Inconsistent {
        old_size: req.old_size,
        size: req.checkpoint.size,
        reason: reason.to_string(),
    }
}

/// Checks the note against the policy's log keys and threshold only.
fn check_log_signatures(policy: &TrustPolicy, req: &AddCheckpointRequest) -> Result<(), Refusal> {
    let log_only = TrustPolicy {
        witnesses: None,
        ..policy.clone()
    };
    match log_only.check(&req.note) {
        Ok(accepted) => {
            // The body was parsed from the same note when the request was.
            assert_eq!(accepted.body, req.checkpoint, "one note, one body");
            Ok(())
        }
        Err(PolicyError::OriginMismatch { got, .. }) => Err(Refusal::UnknownOrigin { origin: got }),
        Err(PolicyError::Note(
            e @ (CheckpointError::MalformedNote { .. }
            | CheckpointError::MalformedBody { .. }
            | CheckpointError::BodyExtension { .. }
            | CheckpointError::InvalidOrigin { .. }),
        )) => Err(malformed(e.to_string())),
        Err(e) => Err(Refusal::Untrusted {
            reason: e.to_string(),
        }),
    }
}

/// Parses a 409 body: the witness's stored size in decimal and a newline.
pub fn parse_size_body(body: &[u8]) -> Option<u64> {
    parse_decimal(body.strip_suffix(b"\n")?)
}

/// The 409 body for a stored size.
pub fn size_body(size: u64) -> String {
    format!("{size}\n")
}

/// Parses a 200 body: one or more note signature lines, each ending in a
/// newline. Lines by unknown keys are kept; the caller picks the ones it trusts.
pub fn parse_cosignatures(body: &[u8]) -> Result<Vec<SignatureLine>, CheckpointError> {
    let malformed = |line: &[u8]| CheckpointError::MalformedSignature {
        line: String::from_utf8_lossy(line).into_owned(),
    };
    let mut rest = body;
    let mut lines = Vec::new();
    while !rest.is_empty() {
        let (line, after) = next_line(rest).ok_or_else(|| malformed(rest))?;
        let text = std::str::from_utf8(line).map_err(|_| malformed(line))?;
        lines.push(SignatureLine::parse(text)?);
        rest = after;
    }
    if lines.is_empty() {
        return Err(malformed(body));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{assemble_note, generate_key, NoteSigner};
    use crate::cosignature::Cosigner;
    use crate::merkle::{consistency_proof, MemoryHashStore};
    use crate::policy::KeyGroup;

    const ORIGIN: &str = "ironlog.test/log";

    struct Log {
        tree: MemoryHashStore,
        voters: Vec<NoteSigner>,
        policy: TrustPolicy,
    }

    impl Log {
        fn new() -> Self {
            let mut voters = Vec::new();
            let mut keys = Vec::new();
            for _ in 0..3 {
                let (skey, vkey) = generate_key(ORIGIN).unwrap();
                voters.push(NoteSigner::from_skey(&skey).unwrap());
                keys.push(vkey);
            }
            let (_, wvkey) = Cosigner::generate("witness.test/other").unwrap();
            let policy = TrustPolicy {
                origin: ORIGIN.into(),
                log: KeyGroup { threshold: 2, keys },
                // Must be ignored: the witness does not need other witnesses.
                witnesses: Some(KeyGroup {
                    threshold: 1,
                    keys: vec![wvkey],
                }),
            };
            Log {
                tree: MemoryHashStore::new(),
                voters,
                policy,
            }
        }

        fn grow_to(&mut self, size: u64) {
            while self.tree.size() < size {
                let n = self.tree.size();
                self.tree.append(format!("leaf {n}").as_bytes()).unwrap();
            }
        }

        fn body(&self, size: u64) -> CheckpointBody {
            CheckpointBody {
                origin: ORIGIN.into(),
                size,
                root: merkle::root(size, &self.tree).unwrap(),
            }
        }

        fn note(&self, body: &CheckpointBody, voters: &[usize]) -> Vec<u8> {
            let sigs: Vec<_> = voters
                .iter()
                .map(|&i| self.voters[i].sign(body).unwrap())
                .collect();
            assemble_note(body, &sigs).into_bytes()
        }

        fn request(&self, old: u64, size: u64) -> AddCheckpointRequest {
            let proof = consistency_proof(old, size, &self.tree).unwrap();
            AddCheckpointRequest::new(old, proof, self.note(&self.body(size), &[0, 1])).unwrap()
        }

        fn head(&self, size: u64) -> TreeHead {
            TreeHead {
                size,
                root: self.body(size).root,
            }
        }
    }

    fn status(r: &Result<TreeHead, Refusal>) -> u16 {
        r.as_ref().map_or_else(|e| e.status(), |_| 200)
    }

    #[test]
    fn request_round_trips_through_its_encoding() {
        let mut log = Log::new();
        log.grow_to(13);
        let req = log.request(5, 13);
        assert!(!req.proof.is_empty());
        let body = req.encode();
        assert!(body.starts_with(b"old 5\n"));
        assert_eq!(AddCheckpointRequest::parse(&body), Ok(req));
        let first = log.request(0, 13);
        let body = first.encode();
        assert!(body.starts_with(format!("old 0\n\n{ORIGIN}\n13\n").as_bytes()));
        assert_eq!(AddCheckpointRequest::parse(&body), Ok(first));
    }

    #[test]
    fn garbage_bodies_are_malformed_not_panics() {
        let mut log = Log::new();
        log.grow_to(4);
        let note = String::from_utf8(log.note(&log.body(4), &[0])).unwrap();
        let hash = BASE64_STANDARD.encode([1u8; 32]);
        let too_many = format!("old 1\n{}\n{note}", format!("{hash}\n").repeat(64));
        for body in [
            String::new(),
            "old 1".into(),
            "old 1\n".into(),
            "new 1\n\n".into(),
            format!("old 01\n\n{note}"),
            format!("old -1\n\n{note}"),
            format!("old +1\n\n{note}"),
            format!("old  1\n\n{note}"),
            format!("old 18446744073709551616\n\n{note}"),
            format!("old 1\nnot base64!\n\n{note}"),
            format!("old 1\nAAAA\n\n{note}"),
            format!("old 1\n{hash}\n{note}"),
            too_many,
            "old 0\n\n".into(),
            "old 0\n\nnot a note".into(),
            format!("old 0\n\n{ORIGIN}\n4\n\n\u{2014} x AAAA\n"),
            format!("old 0\n\n{}", note.replacen("\n\n", "\next\n\n", 1)),
        ] {
            let got = AddCheckpointRequest::parse(body.as_bytes());
            assert!(
                matches!(got, Err(Refusal::Malformed { .. })),
                "{body:?}: {got:?}"
            );
            assert_eq!(got.unwrap_err().status(), 400);
        }
        assert!(AddCheckpointRequest::parse(b"old 0\n\n\xff\xfe\n\n").is_err());
        let sixty_three = format!("old 1\n{}\n{note}", format!("{hash}\n").repeat(63));
        assert_eq!(
            AddCheckpointRequest::parse(sixty_three.as_bytes())
                .unwrap()
                .proof
                .len(),
            PROOF_LINES_MAX
        );
    }

    #[test]
    fn first_checkpoint_is_cosigned_and_becomes_the_state() {
        let mut log = Log::new();
        log.grow_to(7);
        let got = decide(Some(&log.policy), None, &log.request(0, 7));
        assert_eq!(got, Ok(log.head(7)));
    }

    #[test]
    fn consistent_growth_is_cosigned() {
        let mut log = Log::new();
        log.grow_to(21);
        for (old, new) in [(7, 8), (7, 21), (1, 2), (8, 16), (0, 21)] {
            let stored = (old > 0).then(|| log.head(old));
            assert_eq!(
                decide(Some(&log.policy), stored.as_ref(), &log.request(old, new)),
                Ok(log.head(new)),
                "{old} -> {new}"
            );
        }
    }

    #[test]
    fn same_checkpoint_again_is_cosigned_again() {
        let mut log = Log::new();
        log.grow_to(9);
        let got = decide(Some(&log.policy), Some(&log.head(9)), &log.request(9, 9));
        assert_eq!(got, Ok(log.head(9)));
    }

    #[test]
    fn old_size_above_size_is_400() {
        let mut log = Log::new();
        log.grow_to(9);
        let mut req = log.request(0, 9);
        req.old_size = 10;
        let got = decide(Some(&log.policy), Some(&log.head(9)), &req);
        assert_eq!(
            got,
            Err(Refusal::OldSizeAboveSize {
                old_size: 10,
                size: 9
            })
        );
        assert_eq!(status(&got), 400);
    }

    #[test]
    fn proof_from_zero_is_400() {
        let mut log = Log::new();
        log.grow_to(9);
        let mut req = log.request(0, 9);
        req.proof = vec![[0; 32]];
        assert_eq!(
            decide(Some(&log.policy), None, &req),
            Err(Refusal::ProofFromZero { lines: 1 })
        );
    }

    #[test]
    fn unknown_origin_is_404() {
        let mut log = Log::new();
        log.grow_to(3);
        let got = decide(None, None, &log.request(0, 3));
        assert_eq!(
            got,
            Err(Refusal::UnknownOrigin {
                origin: ORIGIN.into()
            })
        );
        assert_eq!(status(&got), 404);
        let mut other = log.policy.clone();
        other.origin = "other.test/log".into();
        assert_eq!(status(&decide(Some(&other), None, &log.request(0, 3))), 404);
    }

    #[test]
    fn unsigned_or_under_signed_checkpoints_are_403() {
        let mut log = Log::new();
        log.grow_to(3);
        let body = log.body(3);
        // One voter of the required two.
        let req = AddCheckpointRequest::new(0, vec![], log.note(&body, &[2])).unwrap();
        assert_eq!(status(&decide(Some(&log.policy), None, &req)), 403);
        // Signed only by a key the policy does not know.
        let (skey, _) = generate_key(ORIGIN).unwrap();
        let stranger = NoteSigner::from_skey(&skey).unwrap();
        let note = assemble_note(&body, &[stranger.sign(&body).unwrap()]);
        let req = AddCheckpointRequest::new(0, vec![], note.into_bytes()).unwrap();
        let got = decide(Some(&log.policy), None, &req);
        assert!(matches!(got, Err(Refusal::Untrusted { .. })), "{got:?}");
        // A forged signature by a trusted key.
        let mut sigs = vec![
            log.voters[0].sign(&body).unwrap(),
            log.voters[1].sign(&body).unwrap(),
        ];
        sigs[1].signature[3] ^= 1;
        let req =
            AddCheckpointRequest::new(0, vec![], assemble_note(&body, &sigs).into_bytes()).unwrap();
        assert_eq!(status(&decide(Some(&log.policy), None, &req)), 403);
    }

    #[test]
    fn the_policy_witness_group_is_not_required() {
        let mut log = Log::new();
        log.grow_to(3);
        assert!(log.policy.witnesses.is_some());
        assert!(decide(Some(&log.policy), None, &log.request(0, 3)).is_ok());
    }

    #[test]
    fn stale_or_unknown_old_size_is_409_with_the_stored_size() {
        let mut log = Log::new();
        log.grow_to(20);
        let got = decide(Some(&log.policy), Some(&log.head(10)), &log.request(0, 20));
        assert_eq!(
            got,
            Err(Refusal::OldSizeMismatch {
                old_size: 0,
                stored_size: 10
            })
        );
        assert_eq!(status(&got), 409);
        let got = decide(Some(&log.policy), Some(&log.head(10)), &log.request(5, 20));
        assert_eq!(status(&got), 409);
        // Nothing stored: the stored size is 0.
        let got = decide(Some(&log.policy), None, &log.request(5, 20));
        assert_eq!(
            got,
            Err(Refusal::OldSizeMismatch {
                old_size: 5,
                stored_size: 0
            })
        );
        // A rollback attempt: older than the stored tree.
        let got = decide(Some(&log.policy), Some(&log.head(20)), &log.request(10, 10));
        assert_eq!(status(&got), 409);
    }

    #[test]
    fn same_size_other_root_is_409() {
        let mut log = Log::new();
        log.grow_to(9);
        let stored = TreeHead {
            size: 9,
            root: [9; 32],
        };
        let got = decide(Some(&log.policy), Some(&stored), &log.request(9, 9));
        assert_eq!(got, Err(Refusal::RootMismatch { size: 9 }));
        assert_eq!(status(&got), 409);
        assert!(got.unwrap_err().is_misbehaviour());
    }

    #[test]
    fn inconsistent_proofs_are_422() {
        let mut log = Log::new();
        log.grow_to(20);
        // The witness saw a different tree of size 10 (a fork).
        let forked = TreeHead {
            size: 10,
            root: [1; 32],
        };
        let got = decide(Some(&log.policy), Some(&forked), &log.request(10, 20));
        assert!(matches!(got, Err(Refusal::Inconsistent { .. })), "{got:?}");
        assert_eq!(status(&got), 422);
        // A tampered proof, a truncated one, and a non-empty one at equal sizes.
        let mut req = log.request(10, 20);
        req.proof[0][0] ^= 1;
        assert_eq!(
            status(&decide(Some(&log.policy), Some(&log.head(10)), &req)),
            422
        );
        let mut req = log.request(10, 20);
        req.proof.pop();
        assert_eq!(
            status(&decide(Some(&log.policy), Some(&log.head(10)), &req)),
            422
        );
        let mut req = log.request(20, 20);
        req.proof.push([0; 32]);
        assert_eq!(
            status(&decide(Some(&log.policy), Some(&log.head(20)), &req)),
            422
        );
    }

    #[test]
    fn response_bodies_parse() {
        assert_eq!(parse_size_body(size_body(42).as_bytes()), Some(42));
        assert_eq!(parse_size_body(b"0\n"), Some(0));
        for bad in [&b""[..], b"42", b"042\n", b"x\n", b"4 2\n", b"\n"] {
            assert_eq!(parse_size_body(bad), None, "{bad:?}");
        }
        let (skey, _) = Cosigner::generate("witness.test/w1").unwrap();
        let w = Cosigner::from_skey(&skey).unwrap();
        let body = CheckpointBody {
            origin: ORIGIN.into(),
            size: 1,
            root: [0; 32],
        };
        let line = w.cosign(&body, 1).unwrap();
        let two = format!("{}{}", line.to_line(), line.to_line());
        assert_eq!(
            parse_cosignatures(two.as_bytes()),
            Ok(vec![line.clone(), line.clone()])
        );
        let unterminated = line.to_line();
        let unterminated = unterminated.trim_end();
        for bad in [
            "",
            "\n",
            unterminated,
            "not a signature\n",
            "\u{2014} w AAAA\n",
        ] {
            assert!(parse_cosignatures(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(parse_cosignatures(b"\xff\n").is_err());
    }
}
