//! `ironlog keygen`: a signed-note key pair for one node.
//!
//! The private key goes to FILE with mode 0600, the verifier key to FILE.pub.
//! Existing files are never overwritten: losing a node's key means its past
//! cosignatures can no longer be tied to a key the operator still holds.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::Args;

use super::output::{print_json, print_line};
use super::{CliError, Global};
use crate::ledger::checkpoint::generate_key;

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Key name: the log's origin, e.g. example.org/ironlog.
    #[arg(long)]
    pub name: String,
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
    let (_, vkey) = write_key_pair(&args.name, &args.out)?;
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
    let pub_out = pub_path(out);
    for path in [out, pub_out.as_path()] {
        if path.symlink_metadata().is_ok() {
            return Err(KeygenError::Exists {
                path: path.to_path_buf(),
            });
        }
    }
    let (skey, vkey) = generate_key(name).map_err(|e| KeygenError::Generate {
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
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()
        });
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(KeygenError::Exists {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(KeygenError::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}
