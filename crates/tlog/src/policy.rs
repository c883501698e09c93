//! Trust policy: which signatures make a checkpoint believable to an outside
//! verifier who trusts no single operator.
//!
//! A policy names the log's origin, the voters' verifier keys with a
//! threshold (for example 2 of 3), and optionally witness keys
//! (c2sp.org/tlog-cosignature) with their own threshold. A checkpoint is
//! accepted only when enough *distinct* policy keys signed it validly.
//!
//! Rules, and why:
//! - Signatures by keys the policy does not name are ignored (C2SP
//!   signed-note): anyone may add a line to a note.
//! - A signature that claims a policy key's name and ID but does not verify
//!   fails the whole checkpoint: it is evidence that the note was altered or
//!   a key misused, and a verifier must not quietly look past that.
//! - A key listed twice counts once, so a threshold cannot be met by
//!   repeating one key.
//!
//! The file is TOML:
//! ```toml
//! origin = "ironlog.example/audit"
//! [log]
//! threshold = 2
//! keys = ["ironlog.example/audit+1a2b3c4d+AQ...", "...", "..."]
//! [witnesses]            # optional
//! threshold = 1
//! keys = ["witness.example/w1+5e6f7a8b+BA..."]
//! ```
//!
//! Pure: parses text, checks bytes; no I/O.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use signed_note::{Note, NoteError, Verifier, VerifierList};

use super::checkpoint::{parse_verifier, CheckpointBody, CheckpointError};
use super::cosignature::CosignatureVerifier;

/// The quorum rule, the one place it is written: more than half of
/// `members`. A checkpoint is served once this many voters signed it, and a
/// default trust policy asks for this many of the voters' keys, so that any
/// two quorums share an honest voter when fewer than half are faulty.
pub fn majority(members: usize) -> usize {
    members / 2 + 1
}

/// Why a policy file is unusable or a checkpoint is not accepted by it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("trust policy is not valid TOML: {0}")]
    Syntax(String),
    #[error("trust policy is invalid: {0}")]
    Invalid(String),
    #[error("checkpoint is for origin {got:?}, but the policy trusts {want:?}")]
    OriginMismatch { want: String, got: String },
    #[error("checkpoint has {got} valid {group} signature(s) from policy keys, fewer than the threshold {need}{signers}")]
    BelowThreshold {
        group: &'static str,
        got: usize,
        need: usize,
        /// ": signed by a, b" or empty.
        signers: String,
    },
    #[error(transparent)]
    Note(#[from] CheckpointError),
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeyGroup {
    pub threshold: usize,
    pub keys: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrustPolicy {
    pub origin: String,
    pub log: KeyGroup,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witnesses: Option<KeyGroup>,
}

/// A checkpoint the policy accepts, with who vouched for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub body: CheckpointBody,
    /// `name+keyid` of each policy log key that signed.
    pub log_signers: Vec<String>,
    /// `name+keyid` of each policy witness key that cosigned.
    pub witness_signers: Vec<String>,
}

fn key_label(name: &str, id: u32) -> String {
    format!("{name}+{id:08x}")
}

impl TrustPolicy {
    /// Parses and validates a policy file's text.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let policy: TrustPolicy =
            toml::from_str(text).map_err(|e| PolicyError::Syntax(e.message().to_string()))?;
        policy.validate()?;
        Ok(policy)
    }

    /// The policy as TOML text that [`TrustPolicy::parse`] reads back.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a policy of strings and integers serialises")
    }

    fn validate(&self) -> Result<(), PolicyError> {
        let probe = CheckpointBody {
            origin: self.origin.clone(),
            size: 0,
            root: [0; 32],
        };
        if CheckpointBody::parse(probe.to_text().as_bytes())
            .ok()
            .as_ref()
            != Some(&probe)
        {
            return Err(PolicyError::Invalid(format!(
                "origin {:?} must be one non-empty line",
                self.origin
            )));
        }
        let mut seen = BTreeSet::new();
        for (group, g) in self.groups() {
            if g.threshold == 0 || g.threshold > g.keys.len() {
                return Err(PolicyError::Invalid(format!(
                    "[{group}] threshold {} must be between 1 and the number of keys ({})",
                    g.threshold,
                    g.keys.len()
                )));
            }
            for vkey in &g.keys {
                let (name, id) = if group == "log" {
                    let v = parse_verifier(vkey)?;
                    (v.name().to_string(), v.key_id())
                } else {
                    let v = CosignatureVerifier::new(vkey)?;
                    (v.name().to_string(), v.key_id())
                };
                if !seen.insert((name.clone(), id)) {
                    return Err(PolicyError::Invalid(format!(
                        "key {} is listed twice; each key may count once",
                        key_label(&name, id)
                    )));
                }
            }
        }
        Ok(())
    }

    fn groups(&self) -> impl Iterator<Item = (&'static str, &KeyGroup)> {
        std::iter::once(("log", &self.log)).chain(self.witnesses.iter().map(|w| ("witness", w)))
    }

    /// Checks a signed checkpoint note against the policy.
    pub fn check(&self, note: &[u8]) -> Result<Accepted, PolicyError> {
        let parsed = Note::from_bytes(note).map_err(|_| CheckpointError::MalformedNote {
            reason:
                "expected UTF-8 text, a blank line and signature lines, without control characters",
        })?;
        let mut verifiers: Vec<Box<dyn Verifier>> = Vec::new();
        let mut log_ids = BTreeSet::new();
        for vkey in &self.log.keys {
            let v = parse_verifier(vkey)?;
            log_ids.insert((v.name().to_string(), v.key_id()));
            verifiers.push(Box::new(v));
        }
        for vkey in self.witnesses.iter().flat_map(|w| &w.keys) {
            verifiers.push(Box::new(CosignatureVerifier::new(vkey)?));
        }
        let verified = match parsed.verify(&VerifierList::new(verifiers)) {
            Ok((verified, _unknown)) => verified,
            Err(NoteError::UnverifiedNote) => Vec::new(),
            Err(NoteError::InvalidSignature { name, id }) => {
                return Err(CheckpointError::BadSignature { name, key_id: id }.into())
            }
            Err(_) => {
                return Err(CheckpointError::MalformedNote {
                    reason: "signatures could not be checked",
                }
                .into())
            }
        };
        let body = CheckpointBody::parse(parsed.text())?;
        if body.origin != self.origin {
            return Err(PolicyError::OriginMismatch {
                want: self.origin.clone(),
                got: body.origin,
            });
        }
        let (mut log_signers, mut witness_signers) = (Vec::new(), Vec::new());
        for sig in &verified {
            let label = key_label(sig.name(), sig.id());
            if log_ids.contains(&(sig.name().to_string(), sig.id())) {
                log_signers.push(label);
            } else {
                witness_signers.push(label);
            }
        }
        let need = |group: &'static str, got: &[String], g: &KeyGroup| {
            if got.len() < g.threshold {
                return Err(PolicyError::BelowThreshold {
                    group,
                    got: got.len(),
                    need: g.threshold,
                    signers: if got.is_empty() {
                        String::new()
                    } else {
                        format!(": signed by {}", got.join(", "))
                    },
                });
            }
            Ok(())
        };
        need("log", &log_signers, &self.log)?;
        if let Some(w) = &self.witnesses {
            need("witness", &witness_signers, w)?;
        }
        Ok(Accepted {
            body,
            log_signers,
            witness_signers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{assemble_note, generate_key, NoteSigner, SignatureLine};
    use crate::cosignature::Cosigner;

    const ORIGIN: &str = "ironlog.test/log";

    struct Fixture {
        voters: Vec<NoteSigner>,
        witness: Cosigner,
        policy: TrustPolicy,
    }

    fn fixture(log_threshold: usize, witness_threshold: Option<usize>) -> Fixture {
        let mut voters = Vec::new();
        let mut keys = Vec::new();
        for _ in 0..3 {
            let (skey, vkey) = generate_key(ORIGIN).unwrap();
            voters.push(NoteSigner::from_skey(&skey).unwrap());
            keys.push(vkey);
        }
        let (wskey, wvkey) = Cosigner::generate("witness.test/w1").unwrap();
        let policy = TrustPolicy {
            origin: ORIGIN.into(),
            log: KeyGroup {
                threshold: log_threshold,
                keys,
            },
            witnesses: witness_threshold.map(|threshold| KeyGroup {
                threshold,
                keys: vec![wvkey],
            }),
        };
        Fixture {
            voters,
            witness: Cosigner::from_skey(&wskey).unwrap(),
            policy: TrustPolicy::parse(&policy.to_toml()).unwrap(),
        }
    }

    fn body() -> CheckpointBody {
        CheckpointBody {
            origin: ORIGIN.into(),
            size: 10,
            root: [3; 32],
        }
    }

    fn sigs(f: &Fixture, voters: &[usize]) -> Vec<SignatureLine> {
        voters
            .iter()
            .map(|&i| f.voters[i].sign(&body()).unwrap())
            .collect()
    }

    #[test]
    fn threshold_of_distinct_log_keys() {
        let f = fixture(2, None);
        let one = assemble_note(&body(), &sigs(&f, &[0]));
        assert!(matches!(
            f.policy.check(one.as_bytes()),
            Err(PolicyError::BelowThreshold {
                got: 1,
                need: 2,
                ..
            })
        ));
        // The same signature twice is still one key.
        let mut twice = one.clone();
        twice.push_str(&f.voters[0].sign(&body()).unwrap().to_line());
        assert!(f.policy.check(twice.as_bytes()).is_err());
        let two = assemble_note(&body(), &sigs(&f, &[0, 2]));
        let accepted = f.policy.check(two.as_bytes()).unwrap();
        assert_eq!(accepted.body, body());
        assert_eq!(accepted.log_signers.len(), 2);
    }

    #[test]
    fn unknown_signatures_are_ignored_but_bad_known_ones_fail() {
        let f = fixture(2, None);
        let (stranger, _) = generate_key(ORIGIN).unwrap();
        let stranger = NoteSigner::from_skey(&stranger).unwrap();
        let mut lines = sigs(&f, &[0, 1]);
        lines.push(stranger.sign(&body()).unwrap());
        let note = assemble_note(&body(), &lines);
        assert_eq!(
            f.policy.check(note.as_bytes()).unwrap().log_signers.len(),
            2
        );

        let mut forged = sigs(&f, &[0, 1]);
        forged[1].signature[0] ^= 1;
        let note = assemble_note(&body(), &forged);
        assert!(matches!(
            f.policy.check(note.as_bytes()),
            Err(PolicyError::Note(CheckpointError::BadSignature { .. }))
        ));
    }

    #[test]
    fn witness_threshold_is_separate_from_the_log_threshold() {
        let f = fixture(2, Some(1));
        let note = assemble_note(&body(), &sigs(&f, &[0, 1, 2]));
        assert!(matches!(
            f.policy.check(note.as_bytes()),
            Err(PolicyError::BelowThreshold {
                group: "witness",
                ..
            })
        ));
        let mut lines = sigs(&f, &[0, 1]);
        lines.push(f.witness.cosign(&body(), 1_700_000_000).unwrap());
        let accepted = f
            .policy
            .check(assemble_note(&body(), &lines).as_bytes())
            .unwrap();
        assert_eq!(accepted.witness_signers.len(), 1);
        // A witness cosignature cannot stand in for a voter.
        let lines = vec![
            f.voters[0].sign(&body()).unwrap(),
            f.witness.cosign(&body(), 1).unwrap(),
        ];
        assert!(matches!(
            f.policy.check(assemble_note(&body(), &lines).as_bytes()),
            Err(PolicyError::BelowThreshold { group: "log", .. })
        ));
    }

    #[test]
    fn another_origin_is_refused() {
        let f = fixture(1, None);
        let (skey, vkey) = generate_key("other.test/log").unwrap();
        let mut policy = f.policy.clone();
        policy.log.keys.push(vkey);
        let other = CheckpointBody {
            origin: "other.test/log".into(),
            ..body()
        };
        let line = NoteSigner::from_skey(&skey).unwrap().sign(&other).unwrap();
        let note = assemble_note(&other, &[line]);
        assert!(matches!(
            policy.check(note.as_bytes()),
            Err(PolicyError::OriginMismatch { .. })
        ));
    }

    #[test]
    fn invalid_policies_are_named() {
        let f = fixture(2, None);
        let key = &f.policy.log.keys[0];
        for (text, needle) in [
            ("origin = ", "TOML"),
            ("origin = \"o\"\n[log]\nthreshold = 0\nkeys = []\n", "threshold"),
            (
                &format!("origin = \"o\"\n[log]\nthreshold = 2\nkeys = [\"{key}\"]\n"),
                "threshold",
            ),
            (
                &format!("origin = \"o\"\n[log]\nthreshold = 1\nkeys = [\"{key}\", \"{key}\"]\n"),
                "twice",
            ),
            (
                "origin = \"o\"\n[log]\nthreshold = 1\nkeys = [\"nonsense\"]\n",
                "key",
            ),
            (
                &format!("origin = \"\"\n[log]\nthreshold = 1\nkeys = [\"{key}\"]\n"),
                "origin",
            ),
            (
                &format!(
                    "origin = \"o\"\nextra = 1\n[log]\nthreshold = 1\nkeys = [\"{key}\"]\n"
                ),
                "extra",
            ),
            (
                &format!("origin = \"o\"\n[log]\nthreshold = 1\nkeys = [\"{key}\"]\n[witnesses]\nthreshold = 1\nkeys = [\"{key}\"]\n"),
                "key",
            ),
        ] {
            let err = TrustPolicy::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn garbage_notes_are_errors() {
        let f = fixture(1, None);
        for note in [
            &b""[..],
            b"\xff\xfe",
            b"a\n\n",
            b"o\n1\nAAAA\n\n\xe2\x80\x94 x AAAA\n",
        ] {
            assert!(f.policy.check(note).is_err());
        }
    }
}
