//! Signatures: the verifier keys fsck knows (the stored voters' and the
//! caller's), each voter signature line checked against them, and each
//! witness cosignature re-verified with the key stored beside it.

use std::collections::BTreeMap;

use redb::ReadTransaction;
use signed_note::Verifier as _;

use super::checker::Checker;
use super::ProblemKind;
use crate::ledger::checkpoint::{self, CheckpointBody, SignatureLine};
use crate::ledger::cosignature::CosignatureVerifier;
use crate::raft::state_machine::voter_verifier_keys;
use crate::storage::ledger_store::{StateMeta, CHECKPOINTS, WITNESS_COSIGNATURES};

/// The known verifier keys: (name, key ID) -> (key, where it came from).
pub(super) type Keys = BTreeMap<(String, u32), (String, String)>;

impl Checker {
    /// Adds the voters' keys in the stored membership to the known keys.
    pub(super) fn learn_voter_keys(&mut self, meta: &StateMeta) {
        let Some(blob) = &meta.membership else {
            return;
        };
        let voters = match voter_verifier_keys(blob) {
            Ok(voters) => voters,
            Err(e) => {
                let message = format!("the stored membership does not decode: {e}");
                self.general(ProblemKind::Membership, message);
                return;
            }
        };
        for (id, vkey) in voters {
            match checkpoint::verifier_key_id(&vkey) {
                Ok(key) => {
                    self.keys
                        .entry(key)
                        .or_insert((vkey, format!("voter {id}")));
                }
                Err(e) => {
                    let message = format!("voter {id}'s verifier key is invalid: {e}");
                    self.general(ProblemKind::Membership, message);
                }
            }
        }
    }

    pub(super) fn orphan(&mut self, size: u64, key_id: u32) {
        self.report.signatures_checked += 1;
        let message = format!("a signature by key ID {key_id:08x} is stored, but no checkpoint");
        self.at_checkpoint(ProblemKind::SignatureOrphan, size, message);
    }

    pub(super) fn check_signature(
        &mut self,
        size: u64,
        key_id: u32,
        bytes: &[u8],
        body: Option<&CheckpointBody>,
    ) {
        use ProblemKind::{SignatureInvalid, SignatureMalformed, SignatureUnknownKey};
        self.report.signatures_checked += 1;
        let Ok(text) = std::str::from_utf8(bytes) else {
            let message = format!("the signature line stored for key ID {key_id:08x} is not UTF-8");
            self.at_checkpoint(SignatureMalformed, size, message);
            return;
        };
        let line = match SignatureLine::parse(text) {
            Ok(line) => line,
            Err(e) => {
                self.at_checkpoint(SignatureMalformed, size, e.to_string());
                return;
            }
        };
        let signer = format!("{}+{:08x}", line.name, line.key_id);
        if line.to_line() != text {
            let message = format!("the signature line by {signer} is not in canonical form");
            self.at_checkpoint(SignatureMalformed, size, message);
        }
        if line.key_id != key_id {
            let message = format!("stored under key ID {key_id:08x}, but the line is by {signer}");
            self.at_checkpoint(SignatureMalformed, size, message);
        }
        let Some((vkey, _)) = self.keys.get(&(line.name.clone(), line.key_id)) else {
            let message = format!(
                "signature by unknown key {signer}: not a voter's in the stored membership \
                 (pass --vkey to trust a former voter's key)"
            );
            self.at_checkpoint(SignatureUnknownKey, size, message);
            return;
        };
        // A body that does not parse is reported already; nothing to verify against.
        let Some(body) = body else {
            return;
        };
        match checkpoint::verify_signature(vkey, body, &line) {
            Ok(()) => self.report.signatures_verified += 1,
            Err(e) => self.at_checkpoint(SignatureInvalid, size, e.to_string()),
        }
    }

    /// Witness cosignatures are stored with the witness's verifier key, so
    /// each one is re-verified over the stored checkpoint body it is filed
    /// under: a changed byte in the key, the line or the body fails it.
    pub(super) fn check_witness_cosignatures(&mut self, txn: &ReadTransaction) {
        use ProblemKind::{SignatureInvalid, SignatureMalformed, SignatureOrphan};
        // A ledger that never had a witness has no such table.
        let Ok(table) = txn.open_table(WITNESS_COSIGNATURES) else {
            return;
        };
        let Ok(checkpoints) = txn.open_table(CHECKPOINTS) else {
            return;
        };
        let rows = match table.range::<(u64, u32)>(..) {
            Ok(rows) => rows,
            Err(e) => {
                let message = format!("cannot read the witness cosignatures: {e}");
                self.general(ProblemKind::Unreadable, message);
                return;
            }
        };
        for row in rows {
            let ((size, key_id), (vkey, text)) = match row {
                Ok((k, v)) => {
                    let (vkey, text) = v.value();
                    (k.value(), (vkey.to_string(), text.to_string()))
                }
                Err(e) => {
                    let message = format!("cannot read a witness cosignature: {e}");
                    self.general(ProblemKind::Unreadable, message);
                    return;
                }
            };
            self.report.signatures_checked += 1;
            let verifier = match CosignatureVerifier::new(&vkey) {
                Ok(v) if v.key_id() == key_id => v,
                Ok(v) => {
                    let message = format!(
                        "a witness cosignature is filed under key ID {key_id:08x}, but its key is {:08x}",
                        v.key_id()
                    );
                    self.at_checkpoint(SignatureMalformed, size, message);
                    continue;
                }
                Err(e) => {
                    let message = format!("a stored witness key does not parse: {e}");
                    self.at_checkpoint(SignatureMalformed, size, message);
                    continue;
                }
            };
            let line = match SignatureLine::parse(&text) {
                Ok(line) if line.to_line() == text => line,
                Ok(_) => {
                    let message = "a witness cosignature line is not in canonical form".into();
                    self.at_checkpoint(SignatureMalformed, size, message);
                    continue;
                }
                Err(e) => {
                    self.at_checkpoint(SignatureMalformed, size, e.to_string());
                    continue;
                }
            };
            let body = match checkpoints.get(size) {
                Ok(Some(body)) => CheckpointBody::parse(body.value()).ok(),
                _ => {
                    let message = format!(
                        "a witness cosignature by key ID {key_id:08x} is stored, but no checkpoint"
                    );
                    self.at_checkpoint(SignatureOrphan, size, message);
                    continue;
                }
            };
            // A body that does not parse is reported by the walk already.
            if let Some(body) = body {
                match verifier.verify_line(&body, &line) {
                    Ok(_) => self.report.signatures_verified += 1,
                    Err(e) => self.at_checkpoint(SignatureInvalid, size, e.to_string()),
                }
            }
        }
    }
}
