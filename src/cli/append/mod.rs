//! `ironlog append`: one event from flags, or many from a JSON-lines file.
//!
//! A file is read, parsed and validated in full before the first batch is
//! sent, so a bad line never leaves half a file in the ledger. Batches respect
//! both the event and the byte limit of one `Append` call.
//!
//! # Layout
//! - `mod.rs`: the command: its flags, one event from flags, the report.
//! - `input.rs`: a JSON-lines file read and validated in full, within its
//!   line and file limits.
//! - `batcher.rs`: events gathered in order into `Append` batches within the
//!   event, byte and idempotency-key rules.
//! - `sender.rs`: one `Append` call (retried when safe), and one batch of a
//!   longer run; `ingest` sends through it too.

mod batcher;
mod input;
mod sender;

use std::path::PathBuf;

use clap::Args;
use serde_json::{Map, Value};

use super::audit::{load_policy, write_atomic};
use super::client::{self, StatusError};
use super::output::{print_json, print_line};
use super::{CliError, Global};
use crate::clock::now_unix_nanos;
use crate::ingest::event_json::{non_empty, parse_outcome, parse_rfc3339};
use crate::ledger::bundle::{self, BundleVerdict, TlogProof};
use crate::ledger::event::{Actor, Event};
use crate::limits;
use crate::proto;
use crate::proto::ledger_client::LedgerClient;

pub use batcher::{batches, Batcher, BATCH_EVENTS_DEFAULT};
pub use input::read_file;
pub use sender::send_batch;

#[derive(Debug, Args)]
pub struct AppendArgs {
    /// JSON-lines file of events (see README), or `-` for stdin.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["actor", "action", "resource", "outcome", "source", "details", "time", "idempotency_key", "actor_type", "ip", "user_agent"])]
    pub file: Option<PathBuf>,
    /// Who acted: a user, service or role id.
    #[arg(long, required_unless_present = "file")]
    pub actor: Option<String>,
    /// Kind of actor: user, service, role, ...
    #[arg(long)]
    pub actor_type: Option<String>,
    /// Source IP address of the actor.
    #[arg(long)]
    pub ip: Option<String>,
    #[arg(long)]
    pub user_agent: Option<String>,
    /// What was done, e.g. db.read.
    #[arg(long, required_unless_present = "file")]
    pub action: Option<String>,
    /// What it was done to, e.g. postgres://payments/customers.
    #[arg(long, required_unless_present = "file")]
    pub resource: Option<String>,
    /// success, failure, denied or unknown.
    #[arg(long, required_unless_present = "file")]
    pub outcome: Option<String>,
    /// The service that emitted the event.
    #[arg(long, required_unless_present = "file")]
    pub source: Option<String>,
    /// A JSON object with anything else worth keeping.
    #[arg(long, value_name = "JSON")]
    pub details: Option<String>,
    /// When it happened, RFC 3339 (default: now).
    #[arg(long, value_name = "RFC3339")]
    pub time: Option<String>,
    /// A retry with the same source and key returns the original index.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Wait until a checkpoint signed by a majority of voters covers the
    /// events, and verify each event's inclusion proof (its receipt) here.
    #[arg(long)]
    pub wait_checkpoint: bool,
    /// Write the receipts to FILE as an offline bundle for
    /// `ironlog verify --bundle` (implies --wait-checkpoint).
    #[arg(long, value_name = "FILE")]
    pub receipts: Option<PathBuf>,
    /// Check the receipts' checkpoint against this trust policy.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Events per Append call.
    #[arg(long, default_value_t = BATCH_EVENTS_DEFAULT as u64,
          value_parser = clap::value_parser!(u64).range(1..=limits::BATCH_EVENTS_MAX as u64))]
    pub batch: u64,
}

/// Why events were not appended. Nothing of a file is sent when any of its
/// lines is refused; `Incomplete` is the only variant after which some
/// events may be in the ledger.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("{flag}: {reason}")]
    Flag { flag: &'static str, reason: String },
    #[error("invalid event: {0}")]
    Invalid(String),
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is larger than {max} bytes; split it into smaller files")]
    FileTooLarge { path: PathBuf, max: usize },
    #[error("{path} holds no events")]
    Empty { path: PathBuf },
    #[error(
        "append stopped after {acknowledged} of {total} events were acknowledged \
         (events are in file order; resend the rest)"
    )]
    Incomplete {
        acknowledged: usize,
        total: usize,
        #[source]
        source: StatusError,
    },
}

/// What the ledger said about the appended events, in input order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Appended {
    pub indices: Vec<u64>,
    pub deduplicated: Vec<bool>,
    pub tree_size: u64,
    /// With receipts: one tlog-proof per event, in input order.
    pub receipts: Vec<TlogProof>,
}

pub async fn run(global: &Global, args: &AppendArgs) -> Result<(), CliError> {
    let now = now_unix_nanos();
    let events = match &args.file {
        Some(path) => read_file(path, now)?,
        None => vec![event_from_flags(args, now)?],
    };
    let policy = args.policy.as_deref().map(load_policy).transpose()?;
    let wait = args.wait_checkpoint || args.receipts.is_some();
    let batches = batches(&events, args.batch as usize);
    let channel = client::connect(&global.credentials, &global.endpoint).await?;
    let appended = send(client::ledger(channel), batches, events.len(), wait).await?;
    // Receipts are checked here, not taken on the server's word.
    let verdict = if wait {
        let verdict = bundle::verify_bundle(&appended.receipts, policy.as_ref())
            .map_err(|e| CliError::Audit(e.into()))?;
        if let Some(path) = &args.receipts {
            write_atomic(path, bundle::encode_bundle(&appended.receipts).as_bytes())?;
        }
        Some(verdict)
    } else {
        None
    };
    report(&appended, verdict.as_ref(), policy.is_some(), global.json)
}

/// One tlog-proof per receipt, against the response's checkpoint note.
fn receipts_to_proofs(response: &proto::AppendResponse) -> Result<Vec<TlogProof>, CliError> {
    let note = response
        .checkpoint
        .as_ref()
        .map(|c| c.note.clone())
        .ok_or_else(|| CliError::BadResponse("receipts without a checkpoint".into()))?;
    if response.receipts.len() != response.indices.len() {
        return Err(CliError::BadResponse(format!(
            "{} receipts for {} events",
            response.receipts.len(),
            response.indices.len()
        )));
    }
    response
        .receipts
        .iter()
        .zip(&response.indices)
        .map(|(r, &index)| {
            let proof = r
                .proof
                .as_ref()
                .ok_or_else(|| CliError::BadResponse(format!("receipt {index} has no proof")))?;
            if r.index != index || proof.index != index {
                return Err(CliError::BadResponse(format!(
                    "receipt for index {} where {index} was expected",
                    r.index
                )));
            }
            let hashes = proof
                .hashes
                .iter()
                .map(|h| {
                    h.as_slice().try_into().map_err(|_| {
                        CliError::BadResponse(format!(
                            "receipt {index}: a proof hash is not 32 bytes"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(TlogProof {
                extra: Some(r.leaf.clone()),
                index,
                hashes,
                note: note.clone(),
            })
        })
        .collect()
}

fn event_from_flags(args: &AppendArgs, now_unix_nanos: i64) -> Result<Event, AppendError> {
    let flag = |flag: &'static str| move |reason: String| AppendError::Flag { flag, reason };
    let required = |value: &Option<String>, name: &'static str| {
        value.clone().ok_or_else(|| AppendError::Flag {
            flag: name,
            reason: "required without --file".into(),
        })
    };
    let time_unix_nanos = match &args.time {
        Some(text) => parse_rfc3339(text).map_err(flag("--time"))?,
        None => now_unix_nanos,
    };
    let details = match &args.details {
        None => Map::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(details)) => details,
            Ok(_) => return Err(flag("--details")("expected a JSON object".into())),
            Err(e) => return Err(flag("--details")(format!("invalid JSON: {e}"))),
        },
    };
    let event = Event {
        time_unix_nanos,
        actor: Actor {
            id: required(&args.actor, "--actor")?,
            kind: args.actor_type.clone().and_then(non_empty),
            ip: args.ip.clone().and_then(non_empty),
            user_agent: args.user_agent.clone().and_then(non_empty),
        },
        action: required(&args.action, "--action")?,
        resource: required(&args.resource, "--resource")?,
        outcome: parse_outcome(&required(&args.outcome, "--outcome")?)
            .map_err(flag("--outcome"))?,
        source: required(&args.source, "--source")?,
        details,
        idempotency_key: args.idempotency_key.clone().and_then(non_empty),
    };
    event
        .validate()
        .map_err(|e| AppendError::Invalid(e.to_string()))?;
    Ok(event)
}

async fn send(
    mut ledger: LedgerClient<client::Conn>,
    batches: Vec<Vec<proto::Event>>,
    total: usize,
    wait_checkpoint: bool,
) -> Result<Appended, CliError> {
    let mut appended = Appended::default();
    for events in batches {
        let sent = events.len();
        let acknowledged = appended.indices.len();
        let response = send_batch(
            &mut ledger,
            events,
            wait_checkpoint,
            acknowledged,
            |status| {
                AppendError::Incomplete {
                    acknowledged,
                    total,
                    source: StatusError(status),
                }
                .into()
            },
        )
        .await?;
        if wait_checkpoint {
            appended.receipts.extend(receipts_to_proofs(&response)?);
        }
        let mut deduplicated = response.deduplicated;
        deduplicated.resize(sent, false);
        appended.indices.extend(response.indices);
        appended.deduplicated.extend(deduplicated);
        appended.tree_size = appended.tree_size.max(response.tree_size);
    }
    Ok(appended)
}

fn report(
    appended: &Appended,
    receipts: Option<&BundleVerdict>,
    policy_checked: bool,
    json: bool,
) -> Result<(), CliError> {
    let sizes: Vec<u64> = receipts
        .map(|v| v.checkpoints.keys().copied().collect())
        .unwrap_or_default();
    if json {
        let mut value = serde_json::json!({
            "indices": appended.indices,
            "deduplicated": appended.deduplicated,
            "tree_size": appended.tree_size,
        });
        if let Some(v) = receipts {
            value["receipts"] = serde_json::json!({
                "verified": v.entries.len(),
                "checkpoint_sizes": sizes,
                "policy_checked": policy_checked,
                "proofs": appended.receipts.iter().map(|p| serde_json::json!({
                    "index": p.index,
                    "proof": p.hashes.iter().map(hex::encode).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
        }
        return print_json(&value);
    }
    print_line(&summary(appended))?;
    if let Some(v) = receipts {
        let signed = if policy_checked {
            "its signatures satisfy the policy"
        } else {
            "signatures not checked: pass --policy"
        };
        print_line(&format!(
            "receipts: {} inclusion proof(s) verified against checkpoint {sizes:?} ({signed})",
            v.entries.len()
        ))?;
    }
    Ok(())
}

/// `appended 53 events at indices 0..52 (2 deduplicated); tree size 53`.
pub fn summary(appended: &Appended) -> String {
    let count = appended.indices.len();
    let dedup = appended.deduplicated.iter().filter(|d| **d).count();
    let first = appended.indices.iter().min().copied().unwrap_or(0);
    let last = appended.indices.iter().max().copied().unwrap_or(0);
    let where_ = if count == 1 {
        format!("appended 1 event at index {first}")
    } else {
        format!("appended {count} events at indices {first}..{last}")
    };
    let dedup = match dedup {
        0 => String::new(),
        1 if count == 1 => " (a retry: the event was already in the ledger)".into(),
        n => format!(" ({n} were already in the ledger)"),
    };
    format!("{where_}{dedup}; tree size {}", appended.tree_size)
}

#[cfg(test)]
mod tests {
    use super::batcher::BATCH_FRAMING_BYTES;
    use super::input::{parse_lines, LINE_BYTES_MAX};
    use super::*;
    use crate::api::convert::event_to_proto;
    use crate::ingest::event_json::parse_line;
    use prost::Message;
    use std::path::Path;

    const NOW: i64 = 1_700_000_000_000_000_000;

    fn line(extra: &str) -> String {
        line_by(r#""alice""#, extra)
    }

    fn line_by(actor: &str, extra: &str) -> String {
        format!(
            r#"{{"actor":{actor},"action":"db.read","resource":"db://x","outcome":"success","source":"svc"{extra}}}"#
        )
    }

    #[test]
    fn minimal_line_defaults_time_and_details() {
        let event = parse_line(&line(""), NOW).expect("valid");
        assert_eq!(event.time_unix_nanos, NOW);
        assert_eq!(event.actor.id, "alice");
        assert!(event.details.is_empty());
        assert_eq!(event.idempotency_key, None);
    }

    #[test]
    fn full_line_parses_every_field() {
        let text = r#"{"time":"2018-10-26T13:25:18.27501Z","actor":{"id":"bob","type":"user","ip":"10.1.2.3","user_agent":"curl"},"action":"db.read","resource":"db://x","outcome":"success","source":"svc","details":{"n":1},"idempotency_key":"k1"}"#;
        let event = parse_line(text, NOW).expect("valid");
        assert_eq!(event.time_unix_nanos, 1_540_560_318_275_010_000);
        assert_eq!(event.actor.id, "bob");
        assert_eq!(event.actor.kind.as_deref(), Some("user"));
        assert_eq!(event.actor.ip.as_deref(), Some("10.1.2.3"));
        assert_eq!(event.details["n"], 1);
        assert_eq!(event.idempotency_key.as_deref(), Some("k1"));
    }

    #[test]
    fn integer_time_is_unix_nanos() {
        let event = parse_line(&line(r#","time":42"#), NOW).expect("valid");
        assert_eq!(event.time_unix_nanos, 42);
    }

    #[test]
    fn each_problem_is_named() {
        let cases = [
            ("{", "invalid JSON"),
            ("[1]", "expected a JSON object"),
            (&line(r#","time":"yesterday""#), "\"time\""),
            (&line(r#","time":1.5"#), "\"time\""),
            (&line(r#","outcome":"maybe""#), "\"outcome\""),
            (&line(r#","details":[1]"#), "\"details\""),
            (&line_by(r#"{"type":"user"}"#, ""), "actor.id"),
            (&line_by(r#"{"id":"a","role":"x"}"#, ""), "actor.role"),
            (&line(r#","colour":"blue""#), "unknown field \"colour\""),
            (
                r#"{"actor":"a","resource":"r","outcome":"success","source":"s"}"#,
                "missing \"action\"",
            ),
        ];
        for (text, expected) in cases {
            let err = parse_line(text, NOW).expect_err(text);
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let input = format!("{}\n\n{}\n{{oops\n", line(""), line(""));
        let err = parse_lines(input.as_bytes(), Path::new("x"), NOW).expect_err("line 4");
        assert!(err.to_string().starts_with("line 4: invalid JSON"), "{err}");
    }

    #[test]
    fn blank_lines_are_skipped_and_crlf_is_accepted() {
        let input = format!("{}\r\n\n   \n{}", line(""), line(""));
        let events = parse_lines(input.as_bytes(), Path::new("x"), NOW).expect("valid");
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn overlong_lines_are_refused() {
        let input = format!("{}\n", "x".repeat(LINE_BYTES_MAX + 5));
        let err = parse_lines(input.as_bytes(), Path::new("x"), NOW).expect_err("long");
        assert!(err.to_string().starts_with("line 1: longer than"), "{err}");
    }

    #[test]
    fn batches_respect_the_event_count() {
        let event = parse_line(&line(""), NOW).expect("valid");
        let events = vec![event; 1201];
        let sizes: Vec<usize> = batches(&events, 500).iter().map(Vec::len).collect();
        assert_eq!(sizes, [500, 500, 201]);
    }

    #[test]
    fn a_repeated_idempotency_key_starts_a_new_batch() {
        let keyed = |key: &str| {
            parse_line(&line(&format!(r#","idempotency_key":"{key}""#)), NOW).expect("valid")
        };
        let events = vec![keyed("a"), keyed("b"), keyed("a"), keyed("c")];
        let sizes: Vec<usize> = batches(&events, 500).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2], "the second \"a\" goes to the next batch");
    }

    #[test]
    fn batches_respect_the_byte_limit() {
        let big = "x".repeat(30 * 1024);
        let event =
            parse_line(&line(&format!(r#","details":{{"blob":"{big}"}}"#)), NOW).expect("valid");
        let events = vec![event; 300];
        let all = batches(&events, limits::BATCH_EVENTS_MAX);
        assert!(all.len() > 1);
        for batch in &all {
            let bytes: usize = batch.iter().map(|e| e.encoded_len() + 11).sum();
            assert!(bytes <= limits::BATCH_BYTES_MAX - BATCH_FRAMING_BYTES);
        }
        assert_eq!(all.iter().map(Vec::len).sum::<usize>(), 300);
    }

    #[test]
    fn proto_conversion_keeps_every_field() {
        let text = line_by(
            r#"{"id":"bob","type":"user","ip":"10.1.2.3","user_agent":"curl"}"#,
            r#","details":{"n":1},"idempotency_key":"k1""#,
        );
        let wire = event_to_proto(&parse_line(&text, NOW).expect("valid"));
        let actor = wire.actor.expect("actor");
        assert_eq!(
            (
                actor.id.as_str(),
                actor.r#type.as_str(),
                actor.ip.as_str(),
                actor.user_agent.as_str()
            ),
            ("bob", "user", "10.1.2.3", "curl")
        );
        assert_eq!(wire.outcome, proto::Outcome::Success as i32);
        assert_eq!(wire.details_json, r#"{"n":1}"#);
        assert_eq!(wire.idempotency_key, "k1");
    }

    #[test]
    fn summary_reads_naturally() {
        let one = Appended {
            indices: vec![7],
            deduplicated: vec![false],
            tree_size: 8,
            receipts: Vec::new(),
        };
        assert_eq!(summary(&one), "appended 1 event at index 7; tree size 8");
        let many = Appended {
            indices: vec![0, 1, 2],
            deduplicated: vec![false, true, true],
            tree_size: 3,
            receipts: Vec::new(),
        };
        assert_eq!(
            summary(&many),
            "appended 3 events at indices 0..2 (2 were already in the ledger); tree size 3"
        );
    }
}
