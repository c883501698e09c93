//! `ironlog keygen`: a signed-note key pair for one node, or with
//! `--witness NAME` a witness's `cosignature/v1` (type 0x04) key pair.
//!
//! The private key goes to FILE with mode 0600, the verifier key to FILE.pub.
//! Existing files are never overwritten: losing a node's key means its past
//! cosignatures can no longer be tied to a key the operator still holds.

use std::path::{Path, PathBuf};

use clap::Args;

use super::output::{print_json, print_line};
use super::{CliError, Global};
use crate::ledger::checkpoint::{generate_key, CheckpointError};
use crate::ledger::cosignature::Cosigner;

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Key name: the log's origin, e.g. example.org/ironlog.
    #[arg(long, required_unless_present = "witness", conflicts_with = "witness")]
    pub name: Option<String>,
    /// Make a witness key (cosignature/v1) named NAME instead, e.g.
    /// witness.example.org/w1; use it with `ironlog witness --key`.
    #[arg(long, value_name = "NAME")]
    pub witness: Option<String>,
    /// Where to write the private key; the verifier key goes to FILE.pub.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("cannot generate a key named {name:?}: {reason}")]
    Generate { name: String, reason: String },
    #[error("{path} already exists; refusing to overwrite a key")]
    Exists { path: PathBuf },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub fn run(global: &Global, args: &KeygenArgs) -> Result<(), CliError> {
    let (_, vkey) = match (&args.name, &args.witness) {
        (_, Some(name)) => write_witness_key_pair(name, &args.out)?,
        (Some(name), None) => write_key_pair(name, &args.out)?,
        (None, None) => return Err(CliError::Usage("give --name or --witness".into())),
    };
    if global.json {
        print_json(&serde_json::json!({
            "verifier_key": vkey,
            "private_key_file": args.out.display().to_string(),
            "verifier_key_file": pub_path(&args.out).display().to_string(),
        }))
    } else {
        print_line(&vkey)
    }
}

/// The verifier key's file: FILE.pub next to FILE.
pub fn pub_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Generates a key pair and writes FILE (0600) and FILE.pub; returns
/// `(skey, vkey)`. Neither file is written when either already exists.
pub fn write_key_pair(name: &str, out: &Path) -> Result<(String, String), KeygenError> {
    write_generated(name, out, generate_key)
}

/// Like [`write_key_pair`], for a witness's `cosignature/v1` key.
pub fn write_witness_key_pair(name: &str, out: &Path) -> Result<(String, String), KeygenError> {
    write_generated(name, out, Cosigner::generate)
}

fn write_generated(
    name: &str,
    out: &Path,
    generate: fn(&str) -> Result<(String, String), CheckpointError>,
) -> Result<(String, String), KeygenError> {
    let pub_out = pub_path(out);
    for path in [out, pub_out.as_path()] {
        if path.symlink_metadata().is_ok() {
            return Err(KeygenError::Exists {
                path: path.to_path_buf(),
            });
        }
    }
    let (skey, vkey) = generate(name).map_err(|e| KeygenError::Generate {
        name: name.to_string(),
        reason: e.to_string(),
    })?;
    write_new(out, &skey, 0o600)?;
    write_new(&pub_out, &vkey, 0o644)?;
    Ok((skey, vkey))
}

/// Creates `path` (failing if it exists, even if created since the check
/// above) and writes `text` plus a newline.
fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), KeygenError> {
    crate::key_file::create_new(path, format!("{text}\n").as_bytes(), mode).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeygenError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            KeygenError::Write {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}
