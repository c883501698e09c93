//! `ironlog verify`, `ironlog export` and `ironlog monitor`: the outside
//! auditor's commands. They use only the public read API (or files), and
//! trust only the policy file and their own state file.
//!
//! Each prints a one-line verdict (`verify OK: ...` / `verify FAILED: ...`)
//! or, with `--json`, one JSON object; the exit code is 0 only when every
//! check held.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use super::output::{print_json, print_line};
use super::{client, CliError, Global};
use crate::audit::monitor::{self, Alert};
use crate::audit::reader::LogReader;
use crate::audit::state::AuditState;
use crate::audit::verifier::{self, Consistency, Latest};
use crate::audit::AuditError;
use crate::ledger::bundle::{self, BundleVerdict};
use crate::ledger::policy::TrustPolicy;
use crate::proto::ledger_client::LedgerClient;

/// Largest policy file read, bytes.
const POLICY_BYTES_MAX: u64 = 1024 * 1024;

/// Largest bundle read, bytes: about a million entries with proofs.
pub const BUNDLE_BYTES_MAX: u64 = 4 * 1024 * 1024 * 1024;

/// Largest `--entries-json` file read, bytes.
const ENTRIES_JSON_BYTES_MAX: u64 = 1024 * 1024 * 1024;

/// Default pause between monitor rounds, ms.
const MONITOR_INTERVAL_MS_DEFAULT: u64 = 5_000;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Trust policy: origin, voter keys and threshold, optional witnesses.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// State file: the last checkpoint this verifier accepted. The new one
    /// must be consistent with it; on success it is replaced.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Check inclusion proofs of these entries: `0,5,10-20`.
    #[arg(long, value_name = "LIST", conflicts_with = "bundle")]
    pub entries: Option<String>,
    /// Check inclusion of entries given as JSON lines with `index` and
    /// `leaf` (hex), as `ironlog get --json` prints them.
    #[arg(long, value_name = "FILE", conflicts_with = "bundle")]
    pub entries_json: Option<PathBuf>,
    /// Download every entry, recompute every leaf hash and the root, and
    /// compare with the signed checkpoint.
    #[arg(long, conflicts_with = "bundle")]
    pub full: bool,
    /// Verify an offline bundle (from `ironlog export` or
    /// `append --receipts`); no network is used.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write the bundle here (C2SP tlog-proof blocks, one per entry).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Entries to export: `0,5,10-20`.
    #[arg(long, value_name = "LIST", required_unless_present = "all")]
    pub entries: Option<String>,
    /// Export every entry the latest checkpoint covers.
    #[arg(long, conflicts_with = "entries")]
    pub all: bool,
    /// Refuse to export unless the checkpoint satisfies this policy.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// State file, kept across restarts.
    #[arg(long, value_name = "FILE")]
    pub state: PathBuf,
    /// A node to watch (repeatable); default: --endpoint.
    #[arg(long = "node", value_name = "URL")]
    pub nodes: Vec<String>,
    /// Pause between rounds, ms.
    #[arg(long, default_value_t = MONITOR_INTERVAL_MS_DEFAULT)]
    pub interval_ms: u64,
    /// Run one round and exit.
    #[arg(long)]
    pub once: bool,
    /// Run this shell command on each alert (with IRONLOG_ALERT_KIND,
    /// IRONLOG_ALERT_NODE and IRONLOG_ALERT_MESSAGE set) and keep
    /// monitoring. Without it, the first alert ends the monitor non-zero.
    #[arg(long, value_name = "CMD")]
    pub alert_command: Option<String>,
}

fn read_bounded(path: &Path, max: u64, what: &str) -> Result<Vec<u8>, CliError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| CliError::Usage(format!("cannot read {what} {}: {e}", path.display())))?;
    if meta.len() > max {
        return Err(CliError::Usage(format!(
            "{what} {} is {} bytes, more than the {max}-byte limit",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read(path)
        .map_err(|e| CliError::Usage(format!("cannot read {what} {}: {e}", path.display())))
}

pub fn load_policy(path: &Path) -> Result<TrustPolicy, CliError> {
    let bytes = read_bounded(path, POLICY_BYTES_MAX, "policy file")?;
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::Usage(format!("policy file {} is not UTF-8", path.display())))?;
    TrustPolicy::parse(&text)
        .map_err(|e| CliError::Usage(format!("policy file {}: {e}", path.display())))
}

/// Writes `bytes` to `path` with [`crate::storage::write_atomic`], so a
/// reader never sees half a bundle and one written survives a crash.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    crate::storage::write_atomic(path, bytes)
        .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))
}

async fn reader(global: &Global) -> Result<LogReader, CliError> {
    let channel = client::connect_audit(&global.credentials, &global.endpoint, false).await?;
    Ok(LogReader::new(&global.endpoint, ledger_client(channel)))
}

fn ledger_client(channel: client::Conn) -> LedgerClient<client::Conn> {
    LedgerClient::new(channel)
        .max_decoding_message_size(crate::limits::GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(crate::limits::GRPC_MESSAGE_BYTES_MAX)
}

/// Prints a failed verdict and turns it into the command's error.
fn failed(json: bool, command: &str, err: AuditError) -> CliError {
    let _ = if json {
        print_json(&json!({"ok": false, "error": err.to_string()}))
    } else {
        print_line(&format!("{command} FAILED: {err}"))
    };
    CliError::Audit(err)
}

fn signers(latest: &crate::ledger::policy::Accepted) -> String {
    let mut s = format!("{} voter signature(s)", latest.log_signers.len());
    if !latest.witness_signers.is_empty() {
        s.push_str(&format!(
            " and {} witness cosignature(s)",
            latest.witness_signers.len()
        ));
    }
    s
}

pub async fn verify(global: &Global, args: &VerifyArgs) -> Result<(), CliError> {
    let policy = load_policy(&args.policy)?;
    if let Some(path) = &args.bundle {
        return verify_bundle_file(global, &policy, path, args.state.as_deref());
    }
    let mut state = match &args.state {
        Some(path) => AuditState::load(path, &policy.origin).map_err(CliError::Audit)?,
        None => AuditState::new(&policy.origin),
    };
    // Read and check the given entries before any network call: bad input
    // is the caller's problem and must not look like a log failure.
    let given = match &args.entries_json {
        Some(path) => Some(read_entries_json(path)?),
        None => None,
    };
    let listed = match &args.entries {
        Some(spec) => Some(verifier::parse_entry_list(spec).map_err(CliError::Audit)?),
        None => None,
    };
    let mut reader = reader(global).await?;
    let started = std::time::Instant::now();
    let outcome = run_verify(&mut reader, &policy, &state, listed, given, args.full).await;
    let (latest, proved, full) = match outcome {
        Ok(v) => v,
        Err(e) => return Err(failed(global.json, "verify", e)),
    };
    verifier::accept(&mut state, &latest);
    if let Some(path) = &args.state {
        state.save(path).map_err(CliError::Audit)?;
    }
    let body = &latest.accepted.body;
    let consistency = match latest.consistency {
        Consistency::First => "no earlier checkpoint to compare (first use)".to_string(),
        Consistency::Unchanged => "unchanged since the last accepted checkpoint".to_string(),
        Consistency::Extended { from } => format!("consistent with checkpoint {from}"),
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if global.json {
        return print_json(&json!({
            "ok": true,
            "origin": body.origin,
            "size": body.size,
            "root_hash": hex::encode(body.root),
            "log_signers": latest.accepted.log_signers,
            "witness_signers": latest.accepted.witness_signers,
            "consistency": consistency,
            "inclusion_proofs_verified": proved,
            "full_leaves_recomputed": full,
            "elapsed_ms": elapsed_ms,
        }));
    }
    let mut line = format!(
        "verify OK: checkpoint {} of {} (root {}) has {}; {consistency}",
        body.size,
        body.origin,
        &hex::encode(body.root)[..16],
        signers(&latest.accepted),
    );
    if proved > 0 {
        line.push_str(&format!("; {proved} inclusion proof(s) verified"));
    }
    if let Some(n) = full {
        line.push_str(&format!("; full: all {n} leaves recomputed, root matches"));
    }
    line.push_str(&format!(" ({elapsed_ms} ms)"));
    print_line(&line)
}

async fn run_verify(
    reader: &mut LogReader,
    policy: &TrustPolicy,
    state: &AuditState,
    listed: Option<Vec<u64>>,
    given: Option<Vec<(u64, Vec<u8>)>>,
    full: bool,
) -> Result<(Latest, usize, Option<u64>), AuditError> {
    let latest = verifier::check_latest(reader, policy, state).await?;
    let mut proved = 0;
    if let Some(indices) = listed {
        let size = latest.accepted.body.size;
        if let Some(&beyond) = indices.iter().find(|&&i| i >= size) {
            return Err(AuditError::Entry {
                index: beyond,
                reason: format!("not below the checkpoint's tree size {size}"),
            });
        }
        let leaves = verifier::fetch_leaves(reader, &indices).await?;
        proved += verifier::check_inclusion(reader, &latest.accepted, leaves).await?;
    }
    if let Some(entries) = given {
        proved += verifier::check_inclusion(reader, &latest.accepted, entries).await?;
    }
    let full = if full {
        Some(verifier::check_full(reader, &latest.accepted, |_| {}).await?)
    } else {
        None
    };
    Ok((latest, proved, full))
}

/// Reads JSON lines (or one JSON array) of objects with `index` and `leaf`
/// in hex.
fn read_entries_json(path: &Path) -> Result<Vec<(u64, Vec<u8>)>, CliError> {
    let bytes = read_bounded(path, ENTRIES_JSON_BYTES_MAX, "entries file")?;
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::Usage(format!("{} is not UTF-8", path.display())))?;
    let values: Vec<(usize, Value)> = if text.trim_start().starts_with('[') {
        let all: Vec<Value> = serde_json::from_str(&text)
            .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
        all.into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, v))
            .collect()
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map(|v| (i + 1, v))
                    .map_err(|e| CliError::Usage(format!("{} line {}: {e}", path.display(), i + 1)))
            })
            .collect::<Result<_, _>>()?
    };
    if values.is_empty() {
        return Err(CliError::Usage(format!(
            "{} holds no entries",
            path.display()
        )));
    }
    values
        .into_iter()
        .map(|(n, v)| {
            let bad = |why: &str| CliError::Usage(format!("{} entry {n}: {why}", path.display()));
            let index = v
                .get("index")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("needs \"index\" (a non-negative integer)"))?;
            let leaf = v
                .get("leaf")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("needs \"leaf\" (hex of the leaf bytes)"))?;
            let leaf = hex::decode(leaf).map_err(|e| bad(&format!("\"leaf\" is not hex: {e}")))?;
            Ok((index, leaf))
        })
        .collect()
}

fn verify_bundle_file(
    global: &Global,
    policy: &TrustPolicy,
    path: &Path,
    state_path: Option<&Path>,
) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    let bytes = read_bounded(path, BUNDLE_BYTES_MAX, "bundle")?;
    let verdict = bundle::parse_bundle(&bytes)
        .and_then(|proofs| bundle::verify_bundle(&proofs, Some(policy)))
        .map_err(|e| failed(global.json, "verify", e.into()))?;
    // With a state file, a bundle's checkpoint of a size this verifier
    // already accepted must have the same root: otherwise it is a fork.
    if let Some(state_path) = state_path {
        let mut state = AuditState::load(state_path, &policy.origin).map_err(CliError::Audit)?;
        for (size, accepted) in &verdict.checkpoints {
            if let Some(old_root) = state.remember_root(*size, &accepted.body.root) {
                return Err(failed(
                    global.json,
                    "verify",
                    AuditError::Fork {
                        size: *size,
                        old_root,
                        new_root: hex::encode(accepted.body.root),
                    },
                ));
            }
        }
        state.save(state_path).map_err(CliError::Audit)?;
    }
    report_bundle(global, path, &verdict, started.elapsed())
}

fn report_bundle(
    global: &Global,
    path: &Path,
    verdict: &BundleVerdict,
    elapsed: Duration,
) -> Result<(), CliError> {
    let elapsed_ms = elapsed.as_millis() as u64;
    let checkpoints: Vec<Value> = verdict
        .checkpoints
        .values()
        .map(|a| {
            json!({
                "size": a.body.size,
                "root_hash": hex::encode(a.body.root),
                "log_signers": a.log_signers,
                "witness_signers": a.witness_signers,
            })
        })
        .collect();
    if global.json {
        return print_json(&json!({
            "ok": true,
            "bundle": path.display().to_string(),
            "entries_verified": verdict.entries.len(),
            "indices": verdict.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
            "checkpoints": checkpoints,
            "elapsed_ms": elapsed_ms,
        }));
    }
    let sizes: Vec<String> = verdict
        .checkpoints
        .values()
        .map(|a| format!("{} ({})", a.body.size, signers(a)))
        .collect();
    print_line(&format!(
        "verify OK: bundle {}: {} entries proved against checkpoint {} ({elapsed_ms} ms, offline)",
        path.display(),
        verdict.entries.len(),
        sizes.join(", ")
    ))
}

pub async fn export(global: &Global, args: &ExportArgs) -> Result<(), CliError> {
    let policy = args.policy.as_deref().map(load_policy).transpose()?;
    let mut reader = reader(global).await?;
    let note = reader.latest_note().await.map_err(CliError::Audit)?;
    // Without a policy the note is still parsed; the bundle then rests on
    // whatever signatures it carries, for the recipient's policy to judge.
    let accepted = match &policy {
        Some(p) => p
            .check(note.as_bytes())
            .map_err(|e| CliError::Audit(e.into()))?,
        None => bundle::note_body(&note).map_err(|e| CliError::Audit(e.into()))?,
    };
    let indices = match (&args.entries, args.all) {
        (Some(spec), _) => verifier::parse_entry_list(spec).map_err(CliError::Audit)?,
        (None, true) => (0..accepted.body.size).collect(),
        (None, false) => return Err(CliError::Usage("give --entries LIST or --all".into())),
    };
    let proofs = verifier::export(&mut reader, &note, &accepted, &indices)
        .await
        .map_err(CliError::Audit)?;
    write_atomic(&args.out, bundle::encode_bundle(&proofs).as_bytes())?;
    if global.json {
        return print_json(&json!({
            "out": args.out.display().to_string(),
            "entries": proofs.len(),
            "checkpoint_size": accepted.body.size,
        }));
    }
    print_line(&format!(
        "exported {} entries with inclusion proofs against checkpoint {} to {}",
        proofs.len(),
        accepted.body.size,
        args.out.display()
    ))
}

pub async fn monitor(global: &Global, args: &MonitorArgs) -> Result<(), CliError> {
    let policy = load_policy(&args.policy)?;
    let mut state = AuditState::load(&args.state, &policy.origin).map_err(CliError::Audit)?;
    let endpoints = if args.nodes.is_empty() {
        vec![global.endpoint.clone()]
    } else {
        args.nodes.clone()
    };
    // Channels connect lazily, so a node that is down at start is reported
    // by the round like any other outage instead of stopping the monitor.
    let mut readers = Vec::new();
    for e in &endpoints {
        let channel = client::connect_audit(&global.credentials, e, true).await?;
        readers.push(LogReader::new(e, ledger_client(channel)));
    }
    loop {
        let round = monitor::round(&mut readers, &policy, &mut state).await;
        state.save(&args.state).map_err(CliError::Audit)?;
        for (node, err) in &round.unreachable {
            tracing::warn!(node, error = %err, "node not checked this round");
        }
        for a in &round.alerts {
            raise(global, a, args.alert_command.as_deref());
        }
        let sizes: Vec<String> = round
            .sizes
            .iter()
            .map(|(n, s)| format!("{n}={s}"))
            .collect();
        let head = state.head.as_ref().map(|h| h.size).unwrap_or(0);
        if global.json {
            print_json(&json!({
                "alerts": round.alerts.iter().map(|a| json!({
                    "kind": a.kind.name(), "node": a.node, "message": a.message
                })).collect::<Vec<_>>(),
                "unreachable": round.unreachable.iter().map(|(n, e)| json!({"node": n, "error": e})).collect::<Vec<_>>(),
                "sizes": round.sizes.iter().map(|(n, s)| json!({"node": n, "size": s})).collect::<Vec<_>>(),
                "head": head,
            }))?;
        } else {
            print_line(&format!(
                "monitor: {} alert(s), {} of {} node(s) checked [{}], {} unreachable; accepted head size {head}",
                round.alerts.len(),
                round.sizes.len(),
                readers.len(),
                sizes.join(" "),
                round.unreachable.len(),
            ))?;
        }
        if !round.alerts.is_empty() && args.alert_command.is_none() {
            return Err(CliError::Alerts(round.alerts.len()));
        }
        if args.once {
            return if round.alerts.is_empty() {
                Ok(())
            } else {
                Err(CliError::Alerts(round.alerts.len()))
            };
        }
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }
}

/// Logs an alert and runs the hook, if any. A failing hook is logged; it
/// must not stop the monitor that reports it.
fn raise(global: &Global, alert: &Alert, hook: Option<&str>) {
    tracing::error!(kind = alert.kind.name(), node = %alert.node, "{}", alert.message);
    if !global.json {
        eprintln!(
            "ALERT {} {}: {}",
            alert.kind.name(),
            alert.node,
            alert.message
        );
    }
    if let Some(cmd) = hook {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("IRONLOG_ALERT_KIND", alert.kind.name())
            .env("IRONLOG_ALERT_NODE", &alert.node)
            .env("IRONLOG_ALERT_MESSAGE", &alert.message)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => tracing::error!(%s, "alert command failed"),
            Err(e) => tracing::error!(error = %e, "alert command could not run"),
        }
    }
}
