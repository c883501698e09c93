//! Native audit logs mapped onto [`Event`]s: AWS CloudTrail, Kubernetes
//! audit, Linux auditd, Okta System Log, GCP Cloud Audit Logs, GitHub audit
//! log, and Ironlog's own JSON lines.
//!
//! Pure parsing: the only I/O is reading from a [`BufRead`]. `ironlog
//! ingest` (in `crate::cli::ingest`) sends what this module produces;
//! evaluation code maps single native records with [`event_from_json`].
//!
//! ## Layout
//! - one file per format (`cloudtrail`, `k8s_audit`, `auditd`, `okta`,
//!   `gcp_audit`, `github_audit`, `jsonl`): the native record to an event;
//! - `split`: cuts a JSON input (lines, arrays, `{"Records": [...]}`
//!   documents) into records without parsing it whole;
//! - `record`: what every format shares: field clean-up, the idempotency
//!   key, the trimmed `details`;
//! - `time`: the time notations the formats use.
//!
//! ## Conventions every format follows
//! - `source` is the format's name; `details` is the original record,
//!   trimmed to [`DETAILS_BYTES_MAX`](crate::limits::DETAILS_BYTES_MAX) by
//!   dropping its largest top-level fields first (named in
//!   `details["_ironlog_dropped"]`). Size never makes a record fail.
//! - The time is the record's own event time; a record without one fails,
//!   naming the field expected. It is never "now".
//! - `idempotency_key` is `"{format}:{native event id}"`, or
//!   `"{format}:sha256:{hex}"` of the record's canonical JSON when it has no
//!   id (or the id does not fit a field), so ingesting a file twice appends
//!   nothing new.
//! - Strings bound for identifier fields (actor, action, resource, ...)
//!   have control characters replaced by U+FFFD and, beyond
//!   [`FIELD_BYTES_MAX`](crate::limits::FIELD_BYTES_MAX), are cut on a
//!   character boundary and end with `…`: an over-long ARN is still worth
//!   ingesting, and its full text stays in `details`.
//!
//! ## Invariants
//! - Every event produced has passed [`Event::validate`].
//! - Memory per record is bounded by
//!   [`INGEST_RECORD_BYTES_MAX`](crate::limits::INGEST_RECORD_BYTES_MAX)
//!   (auditd: by its own line and open-event limits), whatever the input.
//! - No input makes this module panic.

mod auditd;
mod cloudtrail;
pub(crate) mod event_json;
mod gcp_audit;
mod github_audit;
mod jsonl;
mod k8s_audit;
mod okta;
mod record;
mod split;
mod time;

use std::fmt;
use std::io::BufRead;

use serde_json::Value;

use crate::ledger::event::{Event, EventError};

/// A native log format `ironlog ingest --format` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Format {
    /// AWS CloudTrail: `{"Records": [...]}` documents, arrays or JSON lines.
    #[value(name = "cloudtrail")]
    Cloudtrail,
    /// Kubernetes audit events (`audit.k8s.io`): JSON lines, an array, or an
    /// `EventList` (`{"items": [...]}`).
    #[value(name = "k8s-audit")]
    K8sAudit,
    /// Linux auditd: raw `type=... msg=audit(...)` lines, grouped into one
    /// event per `(timestamp:serial)`, or JSON lines whose `SyslogMessage`
    /// or `message` holds such a line (e.g. Azure Monitor's Syslog table).
    #[value(name = "auditd")]
    Auditd,
    /// Okta System Log events: JSON lines or an array.
    #[value(name = "okta")]
    Okta,
    /// GCP Cloud Audit Logs (LogEntry with `protoPayload`): JSON lines, an
    /// array, or `{"entries": [...]}`.
    #[value(name = "gcp-audit")]
    GcpAudit,
    /// GitHub organisation or enterprise audit log: JSON lines or an array.
    #[value(name = "github-audit")]
    GithubAudit,
    /// Ironlog's own event JSON lines, as `ironlog append --file` reads.
    #[value(name = "jsonl")]
    Jsonl,
}

impl Format {
    /// The name on the command line, which is also the events' `source`
    /// (except for `jsonl`, whose lines carry their own).
    pub fn name(&self) -> &'static str {
        match self {
            Format::Cloudtrail => "cloudtrail",
            Format::K8sAudit => "k8s-audit",
            Format::Auditd => "auditd",
            Format::Okta => "okta",
            Format::GcpAudit => "gcp-audit",
            Format::GithubAudit => "github-audit",
            Format::Jsonl => "jsonl",
        }
    }

    /// Top-level keys of a document object whose array value holds the
    /// records, streamed one by one.
    fn wrapper_keys(&self) -> &'static [&'static str] {
        match self {
            Format::Cloudtrail => &["Records"],
            Format::K8sAudit => &["items"],
            Format::GcpAudit => &["entries"],
            Format::Okta | Format::GithubAudit | Format::Jsonl | Format::Auditd => &[],
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why one record could not become an event.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecordError {
    #[error("invalid JSON: {reason}")]
    InvalidJson { reason: String },
    #[error("truncated JSON: the input ends inside this record")]
    Truncated,
    #[error("malformed JSON: {reason}")]
    Malformed { reason: String },
    #[error("record is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("expected a JSON object, found {found}")]
    NotObject { found: &'static str },
    #[error("no event time (expected {expected})")]
    MissingTime { expected: &'static str },
    #[error("`{field}`: {value:?} is not a time ({reason})")]
    BadTime {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("no `{field}` ({why})")]
    MissingField {
        field: &'static str,
        why: &'static str,
    },
    #[error("`{field}` must be {expected}, found {found}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("not an auditd record: {reason}")]
    Auditd { reason: String },
    /// An Ironlog JSON line refused by the same checks as `ironlog append`.
    #[error("{reason}")]
    Jsonl { reason: String },
    #[error("the mapped event is invalid: {0}")]
    Invalid(#[from] EventError),
}

/// Errors from this module. `Record` is per record: reading goes on after
/// it. `Read` ends the input.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// One native record given to [`event_from_json`] did not map.
    #[error("{0}")]
    Invalid(RecordError),
    /// Record `record` (1-based, in input order) did not map; `line` is
    /// where it starts (1-based), shown when it differs from `record`.
    #[error("record {record}{}: {reason}", line_note(*record, *line))]
    Record {
        record: u64,
        line: u64,
        reason: RecordError,
    },
    #[error("cannot read the input")]
    Read(#[source] std::io::Error),
}

fn line_note(record: u64, line: u64) -> String {
    if record == line {
        String::new()
    } else {
        format!(" (line {line})")
    }
}

impl IngestError {
    /// The record number of a per-record error.
    pub fn record(&self) -> Option<u64> {
        match self {
            IngestError::Record { record, .. } => Some(*record),
            IngestError::Invalid(_) | IngestError::Read(_) => None,
        }
    }
}

/// Maps one native record (a parsed JSON value) to a validated event. For
/// auditd the record is a JSON object whose `SyslogMessage` or `message`
/// holds one audit line.
pub fn event_from_json(format: Format, record: &Value) -> Result<Event, IngestError> {
    map_value(format, record).map_err(IngestError::Invalid)
}

fn map_value(format: Format, record: &Value) -> Result<Event, RecordError> {
    match format {
        Format::Cloudtrail => cloudtrail::map(record),
        Format::K8sAudit => k8s_audit::map(record),
        Format::Auditd => auditd::map_json(record),
        Format::Okta => okta::map(record),
        Format::GcpAudit => gcp_audit::map(record),
        Format::GithubAudit => github_audit::map(record),
        Format::Jsonl => jsonl::map(record),
    }
}

/// Reads `input` record by record, yielding each record's number (1-based,
/// in input order) with its event, or the error naming it. An I/O error
/// ends the iteration.
pub fn read_events(
    format: Format,
    input: impl BufRead,
) -> impl Iterator<Item = Result<(u64, Event), IngestError>> {
    match format {
        Format::Auditd => Records::Auditd(auditd::Reader::new(input)),
        _ => Records::Json {
            format,
            records: split::Splitter::new(input, format.wrapper_keys()),
        },
    }
}

/// The two ways of reading: auditd's lines, and JSON records.
enum Records<R> {
    Auditd(auditd::Reader<R>),
    Json {
        format: Format,
        records: split::Splitter<R>,
    },
}

impl<R: BufRead> Iterator for Records<R> {
    type Item = Result<(u64, Event), IngestError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Records::Auditd(reader) => reader.next(),
            Records::Json { format, records } => {
                let raw = match records.next()? {
                    Ok(raw) => raw,
                    Err(e) => return Some(Err(e)),
                };
                let at = |reason| IngestError::Record {
                    record: raw.number,
                    line: raw.line,
                    reason,
                };
                let mapped = serde_json::from_slice::<Value>(&raw.bytes)
                    .map_err(|e| RecordError::InvalidJson {
                        reason: e.to_string(),
                    })
                    .and_then(|value| map_value(*format, &value));
                Some(mapped.map(|event| (raw.number, event)).map_err(at))
            }
        }
    }
}

#[cfg(test)]
mod tests;
