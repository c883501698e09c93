//! `ironlog checkpoint` and `ironlog prove`: fetch a signed checkpoint and a
//! proof, then verify the proof here, against the root written in the signed
//! note, with [`crate::ledger::merkle`]. The server is not trusted to have
//! checked anything; with `--vkey` the note's signatures are checked too,
//! and a majority of the given keys (or `--min-signatures`) must have signed.

use base64::Engine;
use clap::{Args, Subcommand};
use serde_json::json;
use tonic::Code;

use super::client::{self, Conn, StatusError};
use super::output::{entry_line, print_json, print_line};
use super::{CliError, Global, TrustArgs};
use crate::ledger::checkpoint::open_note;
use crate::ledger::merkle::{self, Hash};
use crate::proto::{self, ledger_client::LedgerClient};

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Tree size of the checkpoint (default: the latest).
    #[arg(long)]
    pub size: Option<u64>,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Debug, Subcommand)]
pub enum ProveCommand {
    /// Prove that leaf INDEX is in the tree a checkpoint commits to.
    Inclusion {
        index: u64,
        /// Checkpoint tree size to prove against (default: the latest).
        #[arg(long)]
        size: Option<u64>,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Prove that the tree of size OLD is a prefix of the tree of size NEW.
    Consistency {
        old: u64,
        /// Newer checkpoint tree size (default: the latest).
        new: Option<u64>,
        #[command(flatten)]
        trust: TrustArgs,
    },
}

/// Why a checkpoint or proof was not accepted. Each of these means the
/// server's answer cannot be trusted as given; none is retryable as is.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    #[error("the log has no checkpoint yet; append events and wait for one")]
    NoCheckpoint,
    #[error("checkpoint note is malformed: {0}")]
    NoteMalformed(String),
    #[error("checkpoint note says {field} {note} but the response says {response}")]
    NoteMismatch {
        field: &'static str,
        note: String,
        response: String,
    },
    #[error("checkpoint signatures do not verify with the given --vkey: {0}")]
    Signature(String),
    #[error(
        "checkpoint is signed by {signed} of the {keys} given --vkey keys, {required} required \
         (a majority unless --min-signatures says otherwise); signed: [{signers}]"
    )]
    TooFewSignatures {
        signed: usize,
        keys: usize,
        required: usize,
        signers: String,
    },
    #[error("{what} is {len} bytes, not a 32-byte hash")]
    HashLength { what: String, len: usize },
    #[error("leaf {index} is not below the checkpoint's tree size {size}; wait for the next checkpoint or pass a larger --size")]
    IndexBeyond { index: u64, size: u64 },
    #[error("OLD ({old}) must be between 1 and the newer tree size ({new})")]
    SizesInverted { old: u64, new: u64 },
    #[error("leaf {index}: the fetched leaf hashes to {computed}, the proof is for {proved}")]
    LeafMismatch {
        index: u64,
        computed: String,
        proved: String,
    },
    #[error("inclusion proof of leaf {index} in tree size {size} does NOT verify: {reason}")]
    Inclusion {
        index: u64,
        size: u64,
        reason: String,
    },
    #[error("consistency proof from size {old} to {new} does NOT verify: {reason}")]
    Consistency { old: u64, new: u64, reason: String },
}

/// A checkpoint whose note body has been parsed and matched to the response.
struct Fetched {
    checkpoint: proto::Checkpoint,
    root: Hash,
    /// Signers whose signatures verified with `--vkey`; `None` without it.
    verified_signers: Option<Vec<String>>,
}

/// The three lines a C2SP checkpoint body starts with.
#[derive(Debug, PartialEq, Eq)]
pub struct NoteBody {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

pub async fn checkpoint(global: &Global, args: &CheckpointArgs) -> Result<(), CliError> {
    let mut ledger = client::ledger(client::connect(&global.credentials, &global.endpoint).await?);
    let fetched = fetch_checkpoint(&mut ledger, args.size.unwrap_or(0), &args.trust).await?;
    let checkpoint = &fetched.checkpoint;
    if global.json {
        return print_json(&json!({
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root_hash": hex::encode(fetched.root),
            "note": checkpoint.note,
            "signers": checkpoint.signers,
            "verified_signers": fetched.verified_signers,
        }));
    }
    print_line(checkpoint.note.trim_end_matches('\n'))?;
    if let Some(signers) = &fetched.verified_signers {
        eprintln!("signatures verified: {}", signers.join(", "));
    }
    Ok(())
}

pub async fn prove(global: &Global, command: &ProveCommand) -> Result<(), CliError> {
    let mut ledger = client::ledger(client::connect(&global.credentials, &global.endpoint).await?);
    match command {
        ProveCommand::Inclusion { index, size, trust } => {
            prove_inclusion(&mut ledger, global.json, *index, size.unwrap_or(0), trust).await
        }
        ProveCommand::Consistency { old, new, trust } => {
            prove_consistency(&mut ledger, global.json, *old, new.unwrap_or(0), trust).await
        }
    }
}

async fn prove_inclusion(
    ledger: &mut LedgerClient<Conn>,
    json: bool,
    index: u64,
    size: u64,
    trust: &TrustArgs,
) -> Result<(), CliError> {
    let fetched = fetch_checkpoint(ledger, size, trust).await?;
    let size = fetched.checkpoint.size;
    if index >= size {
        return Err(ProveError::IndexBeyond { index, size }.into());
    }
    let proof = ledger
        .get_inclusion_proof(proto::GetInclusionProofRequest {
            index,
            tree_size: size,
        })
        .await?
        .into_inner()
        .proof
        .ok_or_else(|| CliError::BadResponse("no inclusion proof in the response".into()))?;
    if proof.index != index || proof.tree_size != size {
        return Err(CliError::BadResponse(format!(
            "asked for leaf {index} in size {size}, got leaf {} in size {}",
            proof.index, proof.tree_size
        )));
    }
    let entry = fetch_entry(ledger, index).await?;
    let leaf_hash = merkle::leaf_hash(&entry.leaf);
    for (what, claimed) in [("proof", &proof.leaf_hash), ("entry", &entry.leaf_hash)] {
        if claimed.as_slice() != leaf_hash.as_slice() {
            return Err(ProveError::LeafMismatch {
                index,
                computed: hex::encode(leaf_hash),
                proved: format!("{} (from the {what})", hex::encode(claimed)),
            }
            .into());
        }
    }
    let path = hashes("inclusion proof hash", &proof.hashes)?;
    merkle::verify_inclusion(index, size, &leaf_hash, &path, &fetched.root).map_err(|e| {
        ProveError::Inclusion {
            index,
            size,
            reason: e.to_string(),
        }
    })?;
    if json {
        return print_json(&json!({
            "verified": true,
            "index": index,
            "tree_size": size,
            "leaf_hash": hex::encode(leaf_hash),
            "root_hash": hex::encode(fetched.root),
            "proof": proof.hashes.iter().map(hex::encode).collect::<Vec<_>>(),
            "origin": fetched.checkpoint.origin,
            "signers": fetched.checkpoint.signers,
            "verified_signers": fetched.verified_signers,
        }));
    }
    print_line(&format!(
        "verified: leaf {index} is in the tree of size {size}"
    ))?;
    print_line(&format!("  entry      {}", entry_line(&entry).trim_start()))?;
    print_line(&format!("  leaf hash  {}", hex::encode(leaf_hash)))?;
    print_line(&format!("  root       {}", hex::encode(fetched.root)))?;
    print_line(&format!("  proof      {} hashes", path.len()))?;
    print_line(&signed_by(&fetched))
}

async fn prove_consistency(
    ledger: &mut LedgerClient<Conn>,
    json: bool,
    old: u64,
    new: u64,
    trust: &TrustArgs,
) -> Result<(), CliError> {
    let newer = fetch_checkpoint(ledger, new, trust).await?;
    let new = newer.checkpoint.size;
    if old == 0 || old > new {
        return Err(ProveError::SizesInverted { old, new }.into());
    }
    let older = match fetch_checkpoint(ledger, old, trust).await {
        Err(CliError::Status(StatusError(status))) if status.code() == Code::NotFound => {
            return Err(CliError::Usage(format!(
                "OLD ({old}) must be the tree size of an existing checkpoint ({})",
                StatusError(status)
            )))
        }
        fetched => fetched?,
    };
    let proof = ledger
        .get_consistency_proof(proto::GetConsistencyProofRequest {
            old_size: old,
            new_size: new,
        })
        .await?
        .into_inner()
        .proof
        .ok_or_else(|| CliError::BadResponse("no consistency proof in the response".into()))?;
    if proof.old_size != old || proof.new_size != new {
        return Err(CliError::BadResponse(format!(
            "asked for sizes {old}..{new}, got {}..{}",
            proof.old_size, proof.new_size
        )));
    }
    let path = hashes("consistency proof hash", &proof.hashes)?;
    merkle::verify_consistency(old, new, &older.root, &newer.root, &path).map_err(|e| {
        ProveError::Consistency {
            old,
            new,
            reason: e.to_string(),
        }
    })?;
    if json {
        return print_json(&json!({
            "verified": true,
            "old_size": old,
            "new_size": new,
            "old_root": hex::encode(older.root),
            "new_root": hex::encode(newer.root),
            "proof": proof.hashes.iter().map(hex::encode).collect::<Vec<_>>(),
            "origin": newer.checkpoint.origin,
            "verified_signers": newer.verified_signers,
        }));
    }
    print_line(&format!(
        "verified: the tree of size {old} is a prefix of the tree of size {new}"
    ))?;
    print_line(&format!("  old root  {}", hex::encode(older.root)))?;
    print_line(&format!("  new root  {}", hex::encode(newer.root)))?;
    print_line(&format!("  proof     {} hashes", path.len()))?;
    print_line(&signed_by(&newer))
}

fn signed_by(fetched: &Fetched) -> String {
    let signers = &fetched.checkpoint.signers;
    match &fetched.verified_signers {
        Some(verified) => format!(
            "  checkpoint {} signed by {}; verified with --vkey: {}",
            fetched.checkpoint.origin,
            signers.join(", "),
            verified.join(", ")
        ),
        None => format!(
            "  checkpoint {} signed by {} (signatures not checked: pass --vkey to check them)",
            fetched.checkpoint.origin,
            signers.join(", ")
        ),
    }
}

async fn fetch_entry(
    ledger: &mut LedgerClient<Conn>,
    index: u64,
) -> Result<proto::Entry, CliError> {
    let response = ledger
        .get_entries(proto::GetEntriesRequest {
            start: index,
            end: index + 1,
            linearizable: false,
        })
        .await?
        .into_inner();
    response
        .entries
        .into_iter()
        .find(|entry| entry.index == index)
        .ok_or_else(|| CliError::BadResponse(format!("entry {index} missing from the response")))
}

/// Fetches the checkpoint of `size` (0 = latest), checks that the signed
/// note says what the response fields say, and checks signatures if asked.
async fn fetch_checkpoint(
    ledger: &mut LedgerClient<Conn>,
    size: u64,
    trust: &TrustArgs,
) -> Result<Fetched, CliError> {
    let checkpoint = ledger
        .get_checkpoint(proto::GetCheckpointRequest {
            size,
            linearizable: false,
        })
        .await?
        .into_inner()
        .checkpoint
        .ok_or(ProveError::NoCheckpoint)?;
    let body = parse_note_body(&checkpoint.note)?;
    if body.size == 0 {
        return Err(ProveError::NoCheckpoint.into());
    }
    check_matches(&body, &checkpoint, size)?;
    let verified_signers = if trust.vkeys.is_empty() {
        None
    } else {
        let required = trust.signatures_required()?;
        Some(verify_signatures(
            &checkpoint.note,
            &body,
            &trust.distinct_vkeys(),
            required,
        )?)
    };
    Ok(Fetched {
        root: body.root,
        checkpoint,
        verified_signers,
    })
}

fn check_matches(
    body: &NoteBody,
    checkpoint: &proto::Checkpoint,
    asked: u64,
) -> Result<(), ProveError> {
    let mismatch = |field, note: String, response: String| {
        Err(ProveError::NoteMismatch {
            field,
            note,
            response,
        })
    };
    if body.origin != checkpoint.origin {
        return mismatch("origin", body.origin.clone(), checkpoint.origin.clone());
    }
    if body.size != checkpoint.size {
        return mismatch("size", body.size.to_string(), checkpoint.size.to_string());
    }
    if asked != 0 && body.size != asked {
        return mismatch(
            "size",
            body.size.to_string(),
            format!("{asked} (asked for)"),
        );
    }
    if body.root.as_slice() != checkpoint.root_hash.as_slice() {
        return mismatch(
            "root",
            hex::encode(body.root),
            hex::encode(&checkpoint.root_hash),
        );
    }
    Ok(())
}

/// Checks the note's signatures against `vkeys` (distinct, trimmed) and
/// that at least `required` of them signed; returns who did.
fn verify_signatures(
    note: &str,
    body: &NoteBody,
    vkeys: &[String],
    required: usize,
) -> Result<Vec<String>, ProveError> {
    let (opened, signers) =
        open_note(note.as_bytes(), vkeys).map_err(|e| ProveError::Signature(e.to_string()))?;
    if opened.size != body.size || opened.origin != body.origin {
        return Err(ProveError::Signature(
            "the verified body differs from the parsed one".into(),
        ));
    }
    let mut signers: Vec<String> = signers
        .into_iter()
        .map(|(name, key_id)| format!("{name}+{key_id:08x}"))
        .collect();
    signers.sort();
    signers.dedup();
    if signers.len() < required {
        return Err(ProveError::TooFewSignatures {
            signed: signers.len(),
            keys: vkeys.len(),
            required,
            signers: signers.join(", "),
        });
    }
    Ok(signers)
}

/// Parses the first three lines of a C2SP tlog-checkpoint note: origin,
/// decimal tree size, base64 root hash. Extension lines and signatures
/// after them are left to the signature check.
pub fn parse_note_body(note: &str) -> Result<NoteBody, ProveError> {
    let malformed = |reason: &str| ProveError::NoteMalformed(reason.to_string());
    let Some((body, _signatures)) = note.split_once("\n\n") else {
        return Err(malformed("no blank line between body and signatures"));
    };
    let mut lines = body.split('\n');
    let origin = lines.next().unwrap_or_default();
    if origin.is_empty() {
        return Err(malformed("empty origin line"));
    }
    let size_line = lines
        .next()
        .ok_or_else(|| malformed("missing tree size line"))?;
    let canonical = size_line == "0" || !size_line.starts_with('0');
    let size = size_line
        .parse::<u64>()
        .ok()
        .filter(|_| canonical && size_line.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| malformed("tree size is not a decimal number"))?;
    let root_line = lines
        .next()
        .ok_or_else(|| malformed("missing root hash line"))?;
    let root = base64::engine::general_purpose::STANDARD
        .decode(root_line)
        .map_err(|_| malformed("root hash is not base64"))?;
    Ok(NoteBody {
        origin: origin.to_string(),
        size,
        root: to_hash("checkpoint root hash", &root)?,
    })
}

fn to_hash(what: &str, bytes: &[u8]) -> Result<Hash, ProveError> {
    Hash::try_from(bytes).map_err(|_| ProveError::HashLength {
        what: what.to_string(),
        len: bytes.len(),
    })
}

fn hashes(what: &str, raw: &[Vec<u8>]) -> Result<Vec<Hash>, ProveError> {
    raw.iter().map(|bytes| to_hash(what, bytes)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT_B64: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

    #[test]
    fn note_body_parses() {
        let note =
            format!("example.org/ironlog\n53\n{ROOT_B64}\n\n\u{2014} example.org/ironlog AAAA\n");
        let body = parse_note_body(&note).expect("valid");
        assert_eq!(body.origin, "example.org/ironlog");
        assert_eq!(body.size, 53);
        assert_eq!(
            hex::encode(body.root),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn malformed_notes_are_refused() {
        for note in [
            "",
            "origin\n53\n",
            &format!("origin\n053\n{ROOT_B64}\n\nsig\n"),
            &format!("origin\n+53\n{ROOT_B64}\n\nsig\n"),
            &format!("origin\nx\n{ROOT_B64}\n\nsig\n"),
            "origin\n53\nAAAA\n\nsig\n",
            "origin\n53\n!!!\n\nsig\n",
            &format!("\n53\n{ROOT_B64}\n\nsig\n"),
        ] {
            assert!(parse_note_body(note).is_err(), "{note:?}");
        }
    }

    /// A note over `body` signed by the first `signed` of three voter keys,
    /// and all three verifier keys.
    fn note_signed_by(signed: usize) -> (String, NoteBody, Vec<String>) {
        use crate::ledger::checkpoint::{assemble_note, generate_key, CheckpointBody, NoteSigner};
        let body = CheckpointBody {
            origin: "ironlog.test/log".into(),
            size: 42,
            root: [7; 32],
        };
        let keys: Vec<(String, String)> = (0..3)
            .map(|_| generate_key("ironlog.test/log").expect("key"))
            .collect();
        let sigs: Vec<_> = keys[..signed]
            .iter()
            .map(|(skey, _)| {
                NoteSigner::from_skey(skey)
                    .expect("signer")
                    .sign(&body)
                    .expect("sign")
            })
            .collect();
        let note = assemble_note(&body, &sigs);
        let parsed = parse_note_body(&note).expect("parses");
        (
            note,
            parsed,
            keys.into_iter().map(|(_, vkey)| vkey).collect(),
        )
    }

    fn trust(vkeys: &[String], min_signatures: Option<usize>) -> TrustArgs {
        TrustArgs {
            vkeys: vkeys.to_vec(),
            min_signatures,
        }
    }

    fn accepted(note: &str, body: &NoteBody, trust: &TrustArgs) -> Result<usize, String> {
        let required = trust.signatures_required().map_err(|e| e.to_string())?;
        verify_signatures(note, body, &trust.distinct_vkeys(), required)
            .map(|signers| signers.len())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn vkey_checks_require_a_majority_of_the_given_keys_by_default() {
        let (note, body, vkeys) = note_signed_by(1);
        let err = accepted(&note, &body, &trust(&vkeys, None)).expect_err("1 of 3");
        assert!(err.contains("signed by 1 of the 3"), "{err}");
        assert_eq!(accepted(&note, &body, &trust(&vkeys, Some(1))), Ok(1));
        // The one signer's key alone is a majority of one.
        assert_eq!(accepted(&note, &body, &trust(&vkeys[..1], None)), Ok(1));
        let (note, body, vkeys) = note_signed_by(2);
        assert_eq!(accepted(&note, &body, &trust(&vkeys, None)), Ok(2));
        assert!(accepted(&note, &body, &trust(&vkeys, Some(3))).is_err());
    }

    #[test]
    fn a_key_given_twice_counts_once() {
        let (note, body, vkeys) = note_signed_by(1);
        let twice = vec![
            vkeys[0].clone(),
            format!(" {} ", vkeys[0]),
            vkeys[1].clone(),
        ];
        // Two distinct keys: a majority is both, and only one signed.
        assert!(accepted(&note, &body, &trust(&twice, None)).is_err());
    }

    #[test]
    fn min_signatures_must_be_between_one_and_the_number_of_keys() {
        let vkeys: Vec<String> = (1..=3).map(|i| format!("o+{i:08x}+k")).collect();
        assert_eq!(trust(&vkeys, None).signatures_required().ok(), Some(2));
        assert_eq!(trust(&vkeys[..1], None).signatures_required().ok(), Some(1));
        assert_eq!(trust(&vkeys[..2], None).signatures_required().ok(), Some(2));
        assert_eq!(trust(&vkeys, Some(3)).signatures_required().ok(), Some(3));
        for k in [0, 4] {
            let err = trust(&vkeys, Some(k))
                .signatures_required()
                .expect_err("out of range");
            assert!(err.to_string().contains("--min-signatures"), "{err}");
        }
    }

    #[test]
    fn response_fields_must_match_the_note() {
        let note = format!("o\n53\n{ROOT_B64}\n\nsig\n");
        let body = parse_note_body(&note).expect("valid");
        let checkpoint = proto::Checkpoint {
            origin: "o".into(),
            size: 53,
            root_hash: body.root.to_vec(),
            note: note.clone(),
            signers: vec![],
        };
        check_matches(&body, &checkpoint, 0).expect("matches");
        check_matches(&body, &checkpoint, 53).expect("matches the size asked for");
        assert!(check_matches(&body, &checkpoint, 52).is_err());
        let other = proto::Checkpoint {
            size: 54,
            ..checkpoint.clone()
        };
        assert!(check_matches(&body, &other, 0).is_err());
        let other = proto::Checkpoint {
            root_hash: vec![0; 32],
            ..checkpoint
        };
        assert!(check_matches(&body, &other, 0).is_err());
    }
}
