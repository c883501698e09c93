//! Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed-note
//! envelopes, signed with Ed25519.
//!
//! The note format, key encodings and key IDs come from the `signed_note`
//! crate and checkpoint parsing from `tlog_tiles::checkpoint`; this module
//! binds them to Ironlog's types and gives their opaque errors names.
//!
//! # Invariants
//! - A checkpoint body is exactly three lines, `origin\nsize\nbase64(root)\n`,
//!   with a canonical decimal size. Extension lines are refused: Ironlog never
//!   writes them, and a body we cannot represent must not be half-accepted.
//! - [`NoteSigner::sign`] only signs bodies that parse back to themselves, so
//!   every signature the node emits is over text any verifier reads the same way.
//! - [`open_note`] returns a body only when at least one trusted key signed it.
//!   Signatures by keys the caller does not know are ignored, as C2SP requires;
//!   a bad signature by a key the caller does know fails the whole note, since
//!   it means the note was altered or the key misused.
//!
//! Pure: no I/O. Key generation reads the OS random source and nothing else.

use super::merkle::Hash;
use base64::prelude::{Engine, BASE64_STANDARD};
use signed_note::{
    Note, NoteError, Signature, Signer, StandardSigner, StandardVerifier, Verifier, VerifierList,
};
use std::fmt;
use tlog_tiles::checkpoint::Checkpoint;

/// First byte of an encoded Ed25519 key in signed-note key strings.
const ALG_ED25519: u8 = 1;

/// Errors from checkpoint and note handling. Parse and verification errors
/// are about input (gRPC `INVALID_ARGUMENT`, or corruption when the input came
/// from our own storage); `InvalidKey` at start-up is a configuration error.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("checkpoint body is malformed: {reason}: {text:?}")]
    MalformedBody { reason: &'static str, text: String },
    #[error("checkpoint body has extension lines, which Ironlog does not accept: {extension:?}")]
    BodyExtension { extension: String },
    #[error("checkpoint origin {origin:?} is invalid: it must be one non-empty line without control characters")]
    InvalidOrigin { origin: String },
    #[error("key name {name:?} is invalid: it must be non-empty, without spaces or '+'")]
    InvalidKeyName { name: String },
    #[error("{kind} key is invalid ({reason}): {key_hint}")]
    InvalidKey {
        kind: &'static str,
        reason: String,
        /// The key's name part only: never echo private key material.
        key_hint: String,
    },
    #[error("signature line is malformed: {line:?}")]
    MalformedSignature { line: String },
    #[error("note is malformed ({reason})")]
    MalformedNote { reason: &'static str },
    #[error("signature by {name}+{key_id:08x} does not verify")]
    BadSignature { name: String, key_id: u32 },
    #[error("signature is by {got_name}+{got_id:08x}, but the verifier key is {want_name}+{want_id:08x}")]
    KeyMismatch {
        want_name: String,
        want_id: u32,
        got_name: String,
        got_id: u32,
    },
    #[error("note has no signature by any of the {keys} trusted keys")]
    NoTrustedSignature { keys: usize },
    #[error("signing failed: {reason}")]
    Signing { reason: String },
}

/// The signed part of a checkpoint: which log, how big, and its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointBody {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl CheckpointBody {
    /// The C2SP tlog-checkpoint text, `origin\nsize\nbase64(root)\n`. Only
    /// meaningful for a valid origin; [`NoteSigner::sign`] checks that.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64_STANDARD.encode(self.root)
        )
    }

    /// Parses checkpoint text strictly: three lines, each newline-terminated,
    /// canonical decimal size, standard base64 of exactly 32 bytes, nothing after.
    pub fn parse(text: &[u8]) -> Result<Self, CheckpointError> {
        let malformed = |reason| CheckpointError::MalformedBody {
            reason,
            text: String::from_utf8_lossy(text).into_owned(),
        };
        std::str::from_utf8(text).map_err(|_| malformed("not UTF-8"))?;
        let checkpoint = Checkpoint::from_bytes(text).map_err(|_| {
            malformed("expected origin, canonical decimal size and base64 root hash lines")
        })?;
        if !checkpoint.extension().is_empty() {
            return Err(CheckpointError::BodyExtension {
                extension: checkpoint.extension().to_string(),
            });
        }
        let body = CheckpointBody {
            origin: checkpoint.origin().to_string(),
            size: checkpoint.size(),
            root: checkpoint.hash().0,
        };
        body.check_origin()?;
        Ok(body)
    }

    fn check_origin(&self) -> Result<(), CheckpointError> {
        if self.origin.is_empty() || self.origin.chars().any(char::is_control) {
            return Err(CheckpointError::InvalidOrigin {
                origin: self.origin.clone(),
            });
        }
        Ok(())
    }
}

/// A node's signing key, parsed from a signed-note private key string
/// `PRIVATE+KEY+<name>+<hex id>+<base64>`.
#[derive(Clone)]
pub struct NoteSigner {
    /// Does the signing; it checked the key's format, algorithm and ID.
    signer: StandardSigner,
    /// The matching verifier key, derived once so peers can be told it
    /// without the private key ever leaving this struct.
    verifier_key: String,
}

impl fmt::Debug for NoteSigner {
    /// Shows only the public half: signing keys must not reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("verifier_key", &self.verifier_key)
            .finish_non_exhaustive()
    }
}

/// What an error may say about a key string: its name and key ID, and only
/// when the string has a key's shape (`[PRIVATE+KEY+]<name>+<8 hex>+...`).
/// Anything else is not shown at all: a malformed key file may hold nothing
/// but secret bytes (a bare base64 key, a key pasted into the wrong field),
/// and whatever part of it an error printed would reach logs and terminals.
pub(crate) fn key_hint(key: &str) -> String {
    let (prefix, rest) = match key.trim().strip_prefix("PRIVATE+KEY+") {
        Some(rest) => ("PRIVATE+KEY+", rest),
        None => ("", key.trim()),
    };
    let mut parts = rest.splitn(3, '+');
    let shaped = match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(id), Some(_))
            if signed_note::is_key_name_valid(name)
                && name.len() <= KEY_HINT_NAME_BYTES_MAX
                && id.len() == 8
                && id.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Some(format!("{prefix}{name}+{id}"))
        }
        _ => None,
    };
    shaped.unwrap_or_else(|| "(key text not shown: it does not have a key's shape)".to_string())
}

/// Longest key name an error repeats, bytes; a name is an origin-like
/// string (at most [`crate::limits::ORIGIN_BYTES_MAX`]), so longer text is not a name.
const KEY_HINT_NAME_BYTES_MAX: usize = 255;

impl NoteSigner {
    pub fn from_skey(skey: &str) -> Result<Self, CheckpointError> {
        let invalid = |reason: String| CheckpointError::InvalidKey {
            kind: "signing",
            reason,
            key_hint: key_hint(skey),
        };
        let signer = StandardSigner::new(skey).map_err(|e| invalid(e.to_string()))?;
        // StandardSigner does not expose its public key, so derive it from
        // the key data it has just validated. Base64 may itself contain '+',
        // so take everything after the fourth separator.
        let encoded = skey.splitn(5, '+').nth(4).unwrap_or("");
        // The decoder's error names the offending byte: a byte of the secret.
        let raw = BASE64_STANDARD
            .decode(encoded)
            .map_err(|_| invalid("key data is not base64".into()))?;
        let secret: [u8; 32] = match raw.split_first() {
            Some((&ALG_ED25519, rest)) => rest
                .try_into()
                .map_err(|_| invalid("wrong key length".into()))?,
            _ => return Err(invalid("not an Ed25519 key".into())),
        };
        let public = ed25519_dalek::SigningKey::from_bytes(&secret).verifying_key();
        let verifier_key = signed_note::new_ed25519_verifier_key(signer.name(), &public);
        // Pair check: the derived public key must carry the ID in the skey.
        let verifier = StandardVerifier::new(&verifier_key).map_err(|e| invalid(e.to_string()))?;
        assert_eq!(
            verifier.key_id(),
            signer.key_id(),
            "derived verifier key disagrees with signing key"
        );
        Ok(NoteSigner {
            signer,
            verifier_key,
        })
    }

    pub fn name(&self) -> &str {
        self.signer.name()
    }

    pub fn key_id(&self) -> u32 {
        self.signer.key_id()
    }

    /// The public verifier key `<name>+<hex id>+<base64>`.
    pub fn verifier_key(&self) -> String {
        self.verifier_key.clone()
    }

    /// Signs a checkpoint body. Ed25519 is deterministic, so every node with
    /// this key signs a body to the same bytes.
    pub fn sign(&self, body: &CheckpointBody) -> Result<SignatureLine, CheckpointError> {
        body.check_origin()?;
        let text = body.to_text();
        // Pair check: sign only text that reads back as the same body.
        if CheckpointBody::parse(text.as_bytes())? != *body {
            return Err(CheckpointError::InvalidOrigin {
                origin: body.origin.clone(),
            });
        }
        let signature =
            self.signer
                .sign(text.as_bytes())
                .map_err(|e| CheckpointError::Signing {
                    reason: e.to_string(),
                })?;
        Ok(SignatureLine {
            name: self.name().to_string(),
            key_id: self.key_id(),
            signature,
        })
    }
}

/// One signature line of a note: key name, key ID and raw signature bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureLine {
    pub name: String,
    pub key_id: u32,
    pub signature: Vec<u8>,
}

impl SignatureLine {
    /// Renders `— <name> <base64(key id || signature)>\n` (U+2014 EM DASH).
    pub fn to_line(&self) -> String {
        let mut blob = self.key_id.to_be_bytes().to_vec();
        blob.extend_from_slice(&self.signature);
        format!("\u{2014} {} {}\n", self.name, BASE64_STANDARD.encode(blob))
    }

    /// Parses one signature line, with or without its final newline.
    pub fn parse(line: &str) -> Result<Self, CheckpointError> {
        let bare = line.strip_suffix('\n').unwrap_or(line);
        let malformed = || CheckpointError::MalformedSignature {
            line: line.to_string(),
        };
        if bare.contains('\n') {
            return Err(malformed());
        }
        let sig = Signature::from_bytes(bare.as_bytes()).map_err(|_| malformed())?;
        Ok(SignatureLine {
            name: sig.name().to_string(),
            key_id: sig.id(),
            signature: sig.signature().to_vec(),
        })
    }
}

/// Generates a new Ed25519 key pair named `name` from the OS random source:
/// `(signing key, verifier key)` in signed-note encoding.
pub fn generate_key(name: &str) -> Result<(String, String), CheckpointError> {
    if !signed_note::is_key_name_valid(name) {
        return Err(CheckpointError::InvalidKeyName {
            name: name.to_string(),
        });
    }
    Ok(signed_note::generate_key(&mut rand::rngs::OsRng, name))
}

/// Parses a log (Ed25519, signature type 0x01) verifier key.
pub fn parse_verifier(vkey: &str) -> Result<StandardVerifier, CheckpointError> {
    StandardVerifier::new(vkey).map_err(|e| CheckpointError::InvalidKey {
        kind: "verifier",
        reason: e.to_string(),
        key_hint: key_hint(vkey),
    })
}

/// The key name and key ID a verifier key signs as, so a signature line can
/// be matched to its key without trying every key in turn.
pub fn verifier_key_id(vkey: &str) -> Result<(String, u32), CheckpointError> {
    let verifier = parse_verifier(vkey)?;
    Ok((verifier.name().to_string(), verifier.key_id()))
}

/// Verifies one signature line over `body` with verifier key `vkey`.
pub fn verify_signature(
    vkey: &str,
    body: &CheckpointBody,
    sig: &SignatureLine,
) -> Result<(), CheckpointError> {
    let verifier = parse_verifier(vkey)?;
    if verifier.name() != sig.name || verifier.key_id() != sig.key_id {
        return Err(CheckpointError::KeyMismatch {
            want_name: verifier.name().to_string(),
            want_id: verifier.key_id(),
            got_name: sig.name.clone(),
            got_id: sig.key_id,
        });
    }
    if !verifier.verify(body.to_text().as_bytes(), &sig.signature) {
        return Err(CheckpointError::BadSignature {
            name: sig.name.clone(),
            key_id: sig.key_id,
        });
    }
    Ok(())
}

/// Renders a signed note: body text, a blank line, then the signature lines
/// in the order given, keeping only the first line per (name, key ID). The
/// caller orders them (the log's own signature first, by convention). A note
/// needs at least one signature; with none, the result will not open.
pub fn assemble_note(body: &CheckpointBody, sigs: &[SignatureLine]) -> String {
    let mut note = body.to_text();
    note.push('\n');
    let mut seen = std::collections::BTreeSet::new();
    for sig in sigs {
        if seen.insert((sig.name.as_str(), sig.key_id)) {
            note.push_str(&sig.to_line());
        }
    }
    note
}

/// `(key name, key ID)` of each trusted key whose signature verified.
pub type SignedBy = Vec<(String, u32)>;

/// Parses a signed note of any text and verifies it against `vkeys`:
/// returns the text and the `(name, key ID)` of each trusted key whose
/// signature verified. Unknown signatures are ignored; it is an error if no
/// trusted key signed, if a trusted key's signature is bad, or if the note is
/// malformed.
pub fn verify_note_text(
    note: &[u8],
    vkeys: &[String],
) -> Result<(Vec<u8>, SignedBy), CheckpointError> {
    let parsed = Note::from_bytes(note).map_err(|_| CheckpointError::MalformedNote {
        reason: "expected UTF-8 text, a blank line and signature lines, without control characters",
    })?;
    // signed_note treats a key listed twice as ambiguous; a repeated trusted
    // key is harmless, so list each once.
    let mut unique: Vec<&String> = vkeys.iter().collect();
    unique.sort();
    unique.dedup();
    let verifiers = unique
        .into_iter()
        .map(|vkey| parse_verifier(vkey).map(|v| Box::new(v) as Box<dyn Verifier>))
        .collect::<Result<Vec<_>, _>>()?;
    let (verified, _unknown) =
        parsed
            .verify(&VerifierList::new(verifiers))
            .map_err(|e| match e {
                NoteError::InvalidSignature { name, id } => {
                    CheckpointError::BadSignature { name, key_id: id }
                }
                NoteError::UnverifiedNote => {
                    CheckpointError::NoTrustedSignature { keys: vkeys.len() }
                }
                _ => CheckpointError::MalformedNote {
                    reason: "signatures could not be checked",
                },
            })?;
    let keys = verified
        .iter()
        .map(|s| (s.name().to_string(), s.id()))
        .collect();
    Ok((parsed.text().to_vec(), keys))
}

/// Parses a signed checkpoint note and verifies it against `vkeys` (see
/// [`verify_note_text`]); returns the body and the keys that signed it.
pub fn open_note(
    note: &[u8],
    vkeys: &[String],
) -> Result<(CheckpointBody, SignedBy), CheckpointError> {
    let (text, keys) = verify_note_text(note, vkeys)?;
    Ok((CheckpointBody::parse(&text)?, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> CheckpointBody {
        CheckpointBody {
            origin: "ironlog.test/log".into(),
            size: 42,
            root: [7; 32],
        }
    }

    fn key(name: &str) -> (NoteSigner, String) {
        let (skey, vkey) = generate_key(name).unwrap();
        let signer = NoteSigner::from_skey(&skey).unwrap();
        assert_eq!(signer.verifier_key(), vkey);
        (signer, vkey)
    }

    #[test]
    fn body_text_round_trips() {
        let text = body().to_text();
        assert_eq!(
            text,
            "ironlog.test/log\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"
        );
        assert_eq!(CheckpointBody::parse(text.as_bytes()), Ok(body()));
    }

    #[test]
    fn malformed_bodies_are_rejected() {
        let root = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
        for text in [
            String::new(),
            "o\n42\n".into(),
            format!("o\n42\n{root}"),
            format!("o\n042\n{root}\n"),
            format!("o\n+42\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            format!("\n42\n{root}\n"),
            "o\n42\nBwcH\n".into(),
            "o\n42\n!!!!\n".into(),
            format!("o\n42\n{root}\n\n"),
        ] {
            assert!(
                matches!(
                    CheckpointBody::parse(text.as_bytes()),
                    Err(CheckpointError::MalformedBody { .. })
                ),
                "accepted {text:?}"
            );
        }
        assert_eq!(
            CheckpointBody::parse(format!("o\n42\n{root}\next\n").as_bytes()),
            Err(CheckpointError::BodyExtension {
                extension: "ext\n".into()
            })
        );
        assert!(CheckpointBody::parse(b"o\xff\n42\n").is_err());
    }

    #[test]
    fn sign_then_open_round_trips_and_key_ids_agree() {
        let (signer, vkey) = key("ironlog.test/node-1");
        let line = signer.sign(&body()).unwrap();
        assert_eq!(line.key_id, signer.key_id());
        assert_eq!(line.signature.len(), 64);
        assert_eq!(SignatureLine::parse(&line.to_line()), Ok(line.clone()));
        verify_signature(&vkey, &body(), &line).unwrap();
        let note = assemble_note(&body(), &[line.clone(), line]);
        assert_eq!(note.matches('\u{2014}').count(), 1, "duplicates dropped");
        let (opened, keys) = open_note(note.as_bytes(), &[vkey.clone(), vkey]).unwrap();
        assert_eq!(opened, body());
        assert_eq!(keys, vec![(signer.name().to_string(), signer.key_id())]);
    }

    #[test]
    fn signer_debug_hides_the_private_key() {
        let (skey, _) = generate_key("ironlog.test/node-1").unwrap();
        let signer = NoteSigner::from_skey(&skey).unwrap();
        let secret = skey.splitn(5, '+').nth(4).unwrap();
        assert!(!format!("{signer:?}").contains(secret));
        let err = NoteSigner::from_skey(&format!("{skey}x")).unwrap_err();
        assert!(!err.to_string().contains(secret), "{err}");
    }

    #[test]
    fn wrong_keys_and_altered_bodies_fail() {
        let (signer, vkey) = key("ironlog.test/node-1");
        let (_, other_vkey) = key("ironlog.test/node-2");
        let line = signer.sign(&body()).unwrap();
        assert!(matches!(
            verify_signature(&other_vkey, &body(), &line),
            Err(CheckpointError::KeyMismatch { .. })
        ));
        let mut grown = body();
        grown.size += 1;
        assert_eq!(
            verify_signature(&vkey, &grown, &line),
            Err(CheckpointError::BadSignature {
                name: line.name.clone(),
                key_id: line.key_id
            })
        );
        let note = assemble_note(&body(), &[line]);
        assert_eq!(
            open_note(note.as_bytes(), std::slice::from_ref(&other_vkey)),
            Err(CheckpointError::NoTrustedSignature { keys: 1 })
        );
        assert_eq!(
            open_note(note.as_bytes(), &[]),
            Err(CheckpointError::NoTrustedSignature { keys: 0 })
        );
        let tampered = note.replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(
            open_note(tampered.as_bytes(), &[vkey]),
            Err(CheckpointError::BadSignature { .. })
        ));
    }

    #[test]
    fn invalid_keys_and_names_are_rejected() {
        for name in ["", "has space", "a+b"] {
            assert_eq!(
                generate_key(name),
                Err(CheckpointError::InvalidKeyName { name: name.into() })
            );
        }
        for skey in ["", "PRIVATE+KEY+x+00000000+AAAA", "x+00000000+AAAA"] {
            assert!(matches!(
                NoteSigner::from_skey(skey),
                Err(CheckpointError::InvalidKey {
                    kind: "signing",
                    ..
                })
            ));
        }
        let note = assemble_note(&body(), &[]);
        assert!(matches!(
            open_note(note.as_bytes(), &["not a key".to_string()]),
            Err(CheckpointError::MalformedNote { .. })
        ));
        let (signer, _) = key("n");
        let note = assemble_note(&body(), &[signer.sign(&body()).unwrap()]);
        assert!(matches!(
            open_note(note.as_bytes(), &["not a key".to_string()]),
            Err(CheckpointError::InvalidKey {
                kind: "verifier",
                ..
            })
        ));
    }

    #[test]
    fn key_errors_never_repeat_key_material() {
        let (skey, _) = generate_key("example.org/log").unwrap();
        let secret = skey.splitn(5, '+').nth(4).unwrap().to_string();
        let shown = |skey: &str| NoteSigner::from_skey(skey).unwrap_err().to_string();
        // A bare secret (no prefix, no separators), a secret pasted where
        // the name goes, a key with a corrupt tail: none is echoed.
        for malformed in [
            secret.clone(),
            format!("PRIVATE+KEY+{secret}"),
            format!("{secret}\n"),
            format!("{}#", &skey[..skey.len() - 1]),
            format!("PRIVATE+KEY+example.org/log+zzzzzzzz+{secret}"),
        ] {
            let message = shown(&malformed);
            let tail = secret.trim_end_matches('=');
            assert!(
                !message.contains(&tail[..16]) && !message.contains(&tail[tail.len() - 16..]),
                "{message:?} repeats key material"
            );
        }
        // A well-shaped key with a corrupt key part is still named.
        let corrupt = format!("{}!!!!", &skey[..skey.len() - 4]);
        assert!(shown(&corrupt).contains("PRIVATE+KEY+example.org/log+"));
        assert!(parse_verifier(&secret)
            .err()
            .unwrap()
            .to_string()
            .contains("not shown"));
    }

    #[test]
    fn signing_refuses_origins_that_would_change_the_text() {
        let (signer, _) = key("n");
        for origin in ["", "a\nb", "a\tb"] {
            let mut b = body();
            b.origin = origin.into();
            assert_eq!(
                signer.sign(&b),
                Err(CheckpointError::InvalidOrigin {
                    origin: origin.into()
                })
            );
        }
    }

    #[test]
    fn malformed_signature_lines_are_rejected() {
        for line in [
            "",
            "- n AAAAAAA=",
            "\u{2014} n",
            "\u{2014} n !!!",
            "\u{2014} n AAAA",
            "\u{2014}  AAAAAAA=",
            "\u{2014} n AAAAAAA=\n\u{2014} n AAAAAAA=",
        ] {
            assert!(
                matches!(
                    SignatureLine::parse(line),
                    Err(CheckpointError::MalformedSignature { .. })
                ),
                "accepted {line:?}"
            );
        }
    }
}
