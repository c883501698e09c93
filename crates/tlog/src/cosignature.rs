//! C2SP tlog-cosignature (`cosignature/v1`, Ed25519): the signatures that
//! witnesses add to a checkpoint to say "this is the largest tree I have
//! seen for this log, and it is consistent with everything I saw before".
//!
//! A cosignature differs from a log signature in three ways, all from the
//! spec (c2sp.org/tlog-cosignature):
//! - the key ID is `SHA-256(name || "\n" || 0x04 || public key)[:4]`, so the
//!   same Ed25519 key can never be mistaken for a log key;
//! - the signed message is `cosignature/v1\ntime <t>\n` followed by the whole
//!   checkpoint body, so a cosignature also commits to when it was made;
//! - the signature bytes are the 8-byte big-endian timestamp followed by the
//!   64-byte Ed25519 signature.
//!
//! [`CosignatureVerifier`] implements `signed_note::Verifier`, so cosignatures
//! are checked by the same note parser as log signatures.
//!
//! Pure: no I/O. Key generation reads the OS random source and nothing else.

use base64::prelude::{Engine, BASE64_STANDARD};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use signed_note::Verifier;

use super::checkpoint::{CheckpointBody, CheckpointError, SignatureLine};

/// Signature type byte of an Ed25519 `cosignature/v1` key.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// Length of a `timestamped_signature`: u64 timestamp + Ed25519 signature.
pub const COSIGNATURE_BYTES: usize = 8 + 64;

/// Largest timestamp the spec allows (`2^63 - 1`).
const TIMESTAMP_MAX: u64 = i64::MAX as u64;

/// A witness's signing key: `PRIVATE+KEY+<name>+<hex id>+base64(0x04 || seed)`.
pub struct Cosigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "Cosigner({}+{:08x})", self.name, self.key_id)
    }
}

/// Key ID of a cosigner key, as the spec defines it.
pub fn cosigner_key_id(name: &str, public: &VerifyingKey) -> u32 {
    let mut material = vec![ALG_COSIGNATURE_V1];
    material.extend_from_slice(public.as_bytes());
    signed_note::key_id(name, &material)
}

/// The bytes a cosignature signs: header, timestamp line, checkpoint body.
pub fn cosigned_message(body_text: &[u8], timestamp: u64) -> Vec<u8> {
    let mut msg = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    msg.extend_from_slice(body_text);
    msg
}

/// The timestamp a cosignature carries, if `signature` has the right length.
pub fn cosignature_time(signature: &[u8]) -> Option<u64> {
    if signature.len() != COSIGNATURE_BYTES {
        return None;
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&signature[..8]);
    Some(u64::from_be_bytes(ts))
}

fn invalid(kind: &'static str, key: &str, reason: impl Into<String>) -> CheckpointError {
    CheckpointError::InvalidKey {
        kind,
        reason: reason.into(),
        // Only the name and ID, and only of a key-shaped string: never
        // echo private key material.
        key_hint: super::checkpoint::key_hint(key),
    }
}

/// Splits `<prefix><name>+<hex id>+<base64>` into its parts, checking the
/// name and the 8-digit hex ID.
fn split_key<'a>(key: &'a str, prefix: &str) -> Option<(&'a str, u32, &'a str)> {
    let rest = key.strip_prefix(prefix)?;
    // Base64 may contain '+', so the name and ID are the first two fields.
    let mut parts = rest.splitn(3, '+');
    let name = parts.next()?;
    let id_hex = parts.next()?;
    let data = parts.next()?;
    if !signed_note::is_key_name_valid(name) || id_hex.len() != 8 {
        return None;
    }
    let id = u32::from_str_radix(id_hex, 16).ok()?;
    Some((name, id, data))
}

impl Cosigner {
    /// Generates a new cosigner key pair named `name`:
    /// `(signing key, verifier key)` strings.
    pub fn generate(name: &str) -> Result<(String, String), CheckpointError> {
        if !signed_note::is_key_name_valid(name) {
            return Err(CheckpointError::InvalidKeyName {
                name: name.to_string(),
            });
        }
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let id = cosigner_key_id(name, &key.verifying_key());
        let mut secret = vec![ALG_COSIGNATURE_V1];
        secret.extend_from_slice(key.as_bytes());
        let skey = format!(
            "PRIVATE+KEY+{name}+{id:08x}+{}",
            BASE64_STANDARD.encode(secret)
        );
        let signer = Cosigner::from_skey(&skey)?;
        Ok((skey, signer.verifier_key()))
    }

    pub fn from_skey(skey: &str) -> Result<Self, CheckpointError> {
        let skey = skey.trim();
        let (name, id, data) = split_key(skey, "PRIVATE+KEY+")
            .ok_or_else(|| invalid("cosigner signing", skey, "malformed key string"))?;
        let raw = BASE64_STANDARD
            .decode(data)
            // The decoder's error names an offending byte of the secret.
            .map_err(|_| invalid("cosigner signing", skey, "key data is not base64"))?;
        let seed: [u8; 32] = match raw.split_first() {
            Some((&ALG_COSIGNATURE_V1, rest)) => rest
                .try_into()
                .map_err(|_| invalid("cosigner signing", skey, "wrong key length"))?,
            _ => {
                return Err(invalid(
                    "cosigner signing",
                    skey,
                    "not a cosignature/v1 (type 0x04) key",
                ))
            }
        };
        let key = SigningKey::from_bytes(&seed);
        if cosigner_key_id(name, &key.verifying_key()) != id {
            return Err(invalid(
                "cosigner signing",
                skey,
                "key ID does not match the key",
            ));
        }
        Ok(Cosigner {
            name: name.to_string(),
            key_id: id,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The public verifier key `<name>+<hex id>+base64(0x04 || public key)`.
    pub fn verifier_key(&self) -> String {
        let mut material = vec![ALG_COSIGNATURE_V1];
        material.extend_from_slice(self.key.verifying_key().as_bytes());
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            BASE64_STANDARD.encode(material)
        )
    }

    /// Cosigns a checkpoint body at `timestamp` (Unix seconds).
    pub fn cosign(
        &self,
        body: &CheckpointBody,
        timestamp: u64,
    ) -> Result<SignatureLine, CheckpointError> {
        if timestamp > TIMESTAMP_MAX {
            return Err(CheckpointError::Signing {
                reason: format!("timestamp {timestamp} exceeds 2^63-1"),
            });
        }
        let msg = cosigned_message(body.to_text().as_bytes(), timestamp);
        let mut signature = timestamp.to_be_bytes().to_vec();
        signature.extend_from_slice(&self.key.sign(&msg).to_bytes());
        debug_assert_eq!(signature.len(), COSIGNATURE_BYTES);
        Ok(SignatureLine {
            name: self.name.clone(),
            key_id: self.key_id,
            signature,
        })
    }
}

/// Checks `cosignature/v1` signatures for one witness key.
#[derive(Clone, Debug)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// Parses a verifier key `<name>+<hex id>+base64(0x04 || public key)`.
    pub fn new(vkey: &str) -> Result<Self, CheckpointError> {
        let vkey = vkey.trim();
        let (name, id, data) = split_key(vkey, "")
            .ok_or_else(|| invalid("cosigner verifier", vkey, "malformed key string"))?;
        let raw = BASE64_STANDARD
            .decode(data)
            .map_err(|e| invalid("cosigner verifier", vkey, e.to_string()))?;
        let public: [u8; 32] = match raw.split_first() {
            Some((&ALG_COSIGNATURE_V1, rest)) => rest
                .try_into()
                .map_err(|_| invalid("cosigner verifier", vkey, "wrong key length"))?,
            _ => {
                return Err(invalid(
                    "cosigner verifier",
                    vkey,
                    "not a cosignature/v1 (type 0x04) key",
                ))
            }
        };
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|e| invalid("cosigner verifier", vkey, e.to_string()))?;
        if cosigner_key_id(name, &key) != id {
            return Err(invalid(
                "cosigner verifier",
                vkey,
                "key ID does not match the key",
            ));
        }
        Ok(CosignatureVerifier {
            name: name.to_string(),
            key_id: id,
            key,
        })
    }

    /// Verifies one cosignature line over `body`; returns its timestamp.
    pub fn verify_line(
        &self,
        body: &CheckpointBody,
        line: &SignatureLine,
    ) -> Result<u64, CheckpointError> {
        if line.name != self.name || line.key_id != self.key_id {
            return Err(CheckpointError::KeyMismatch {
                want_name: self.name.clone(),
                want_id: self.key_id,
                got_name: line.name.clone(),
                got_id: line.key_id,
            });
        }
        if !self.verify(body.to_text().as_bytes(), &line.signature) {
            return Err(CheckpointError::BadSignature {
                name: line.name.clone(),
                key_id: line.key_id,
            });
        }
        cosignature_time(&line.signature).ok_or(CheckpointError::BadSignature {
            name: line.name.clone(),
            key_id: line.key_id,
        })
    }
}

impl Verifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.key_id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Some(timestamp) = cosignature_time(sig) else {
            return false;
        };
        if timestamp > TIMESTAMP_MAX {
            return false;
        }
        let Ok(signature) = ed25519_dalek::Signature::from_slice(&sig[8..]) else {
            return false;
        };
        self.key
            .verify_strict(&cosigned_message(msg, timestamp), &signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{assemble_note, generate_key, verify_note_text, NoteSigner};

    fn body() -> CheckpointBody {
        CheckpointBody {
            origin: "ironlog.test/log".into(),
            size: 42,
            root: [7; 32],
        }
    }

    #[test]
    fn cosignature_round_trips_and_binds_time_and_body() {
        let (skey, vkey) = Cosigner::generate("witness.test/w1").unwrap();
        let signer = Cosigner::from_skey(&skey).unwrap();
        assert_eq!(signer.verifier_key(), vkey);
        let verifier = CosignatureVerifier::new(&vkey).unwrap();
        let line = signer.cosign(&body(), 1_700_000_000).unwrap();
        assert_eq!(line.signature.len(), COSIGNATURE_BYTES);
        assert_eq!(verifier.verify_line(&body(), &line), Ok(1_700_000_000));

        // Another body, or the same signature claiming another time, fails.
        let mut other = body();
        other.size = 43;
        assert!(verifier.verify_line(&other, &line).is_err());
        let mut retimed = line.clone();
        retimed.signature[7] ^= 1;
        assert!(verifier.verify_line(&body(), &retimed).is_err());
        // A log (type 0x01) signature of the same body is not a cosignature.
        assert!(!verifier.verify(body().to_text().as_bytes(), &[0; 64]));
    }

    #[test]
    fn cosignatures_verify_inside_a_note_next_to_log_signatures() {
        let (log_skey, log_vkey) = generate_key("ironlog.test/log").unwrap();
        let log = NoteSigner::from_skey(&log_skey).unwrap();
        let (w_skey, w_vkey) = Cosigner::generate("witness.test/w1").unwrap();
        let witness = Cosigner::from_skey(&w_skey).unwrap();
        let note = assemble_note(
            &body(),
            &[
                log.sign(&body()).unwrap(),
                witness.cosign(&body(), 5).unwrap(),
            ],
        );
        let (_, signed) = verify_note_text(note.as_bytes(), &[log_vkey]).unwrap();
        assert_eq!(signed.len(), 1, "the witness is unknown here and ignored");
        // The ed25519 verifier refuses a type 0x04 key.
        assert!(verify_note_text(note.as_bytes(), &[w_vkey]).is_err());
    }

    #[test]
    fn key_ids_are_domain_separated_from_log_keys() {
        let (skey, vkey) = Cosigner::generate("same.name").unwrap();
        let c = Cosigner::from_skey(&skey).unwrap();
        let public = VerifyingKey::from_bytes(
            &BASE64_STANDARD
                .decode(vkey.splitn(3, '+').nth(2).unwrap())
                .unwrap()[1..]
                .try_into()
                .unwrap(),
        )
        .unwrap();
        let as_log_key = signed_note::new_ed25519_verifier_key("same.name", &public);
        assert_ne!(
            as_log_key.split('+').nth(1).unwrap(),
            format!("{:08x}", c.key_id())
        );
    }

    #[test]
    fn malformed_keys_are_errors_not_panics() {
        let (skey, vkey) = Cosigner::generate("w").unwrap();
        for bad in [
            "",
            "w",
            "w+zz+AAAA",
            "w+0000000+BAAA",
            &vkey[..vkey.len() - 4],
            &vkey.replace("+B", "+A"),
        ] {
            assert!(CosignatureVerifier::new(bad).is_err(), "{bad:?}");
        }
        assert!(Cosigner::from_skey("PRIVATE+KEY+w").is_err());
        let (log_skey, log_vkey) = generate_key("w").unwrap();
        assert!(Cosigner::from_skey(&log_skey).is_err());
        assert!(CosignatureVerifier::new(&log_vkey).is_err());
        // Renaming the key breaks its ID.
        assert!(Cosigner::from_skey(&skey.replacen("+w+", "+v+", 1)).is_err());
    }
}
