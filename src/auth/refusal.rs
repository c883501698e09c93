//! Refused requests on the record: each becomes an audit event in the
//! ledger, appended by the node that refused it (source
//! `ironlog/node-<id>`, action `ironlog.request.refused`, outcome `denied`).
//!
//! Recording never slows the refusal: refusals go through a bounded queue to
//! one writer task that appends at most [`REFUSAL_EVENTS_PER_S`] per second.
//! What does not fit is counted, and the count is written with the next
//! record (`details.unrecorded_before`), so a flood is visible without
//! filling the log.
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};

use super::authorizer::Caller;
use crate::ledger::event::{Actor, Event, Outcome};
use crate::limits::{
    FIELD_BYTES_MAX, REFUSAL_EVENTS_PER_S, REFUSAL_QUEUE_MAX, RESERVED_SOURCE_PREFIX,
};

/// The action of every refusal record.
pub const REFUSAL_ACTION: &str = "ironlog.request.refused";

/// Longest reason kept in a record, bytes.
const REASON_BYTES_MAX: usize = 512;

/// One refused request.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// The caller's identity name, or `anonymous`.
    pub caller: String,
    /// How it authenticated (`anonymous`, `token`, `certificate`, `node`).
    pub kind: &'static str,
    pub remote: Option<SocketAddr>,
    /// `ironlog.v1.Admin/AddLearner`.
    pub method: String,
    pub code: tonic::Code,
    pub reason: String,
}

impl Refusal {
    pub fn of(
        caller: Option<&Caller>,
        remote: Option<SocketAddr>,
        method: &str,
        status: &tonic::Status,
    ) -> Refusal {
        Refusal {
            caller: caller.map_or("anonymous".into(), |c| c.name.clone()),
            kind: caller.map_or("anonymous", |c| c.kind.name()),
            remote,
            method: method.to_string(),
            code: status.code(),
            reason: status.message().to_string(),
        }
    }

    /// The audit event recording this refusal on node `node_id`.
    pub fn event(&self, node_id: u64, now_unix_nanos: i64, unrecorded_before: u64) -> Event {
        let mut details = Map::new();
        details.insert("code".into(), Value::from(format!("{:?}", self.code)));
        details.insert(
            "reason".into(),
            Value::from(clip(&self.reason, REASON_BYTES_MAX)),
        );
        if unrecorded_before > 0 {
            details.insert("unrecorded_before".into(), Value::from(unrecorded_before));
        }
        Event {
            time_unix_nanos: now_unix_nanos,
            actor: Actor {
                id: clip(&self.caller, FIELD_BYTES_MAX),
                kind: Some(self.kind.to_string()),
                ip: self.remote.map(|a| a.ip().to_string()),
                user_agent: None,
            },
            action: REFUSAL_ACTION.into(),
            resource: clip(&self.method, FIELD_BYTES_MAX),
            outcome: Outcome::Denied,
            source: format!("{RESERVED_SOURCE_PREFIX}node-{node_id}"),
            details,
            idempotency_key: None,
        }
    }
}

/// At most `max` bytes of `text`, on a character boundary, with control
/// characters replaced: a name from a certificate or a path from the wire
/// must still make a valid event.
fn clip(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = if c.is_control() { '?' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        out.push('?');
    }
    out
}

/// Where refusals are reported; cheap to clone, never blocks.
#[derive(Clone)]
pub struct RefusalLog {
    tx: Option<mpsc::Sender<Refusal>>,
    /// Refusals not queued (queue full) since the last record.
    unrecorded: Arc<AtomicU64>,
}

impl RefusalLog {
    /// A log that records nothing (unit tests).
    #[cfg(test)]
    pub fn disabled() -> RefusalLog {
        RefusalLog {
            tx: None,
            unrecorded: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A log and the writer that appends what it receives.
    pub fn new(node_id: u64) -> (RefusalLog, RefusalWriter) {
        let (tx, rx) = mpsc::channel(REFUSAL_QUEUE_MAX);
        let unrecorded = Arc::new(AtomicU64::new(0));
        (
            RefusalLog {
                tx: Some(tx),
                unrecorded: unrecorded.clone(),
            },
            RefusalWriter {
                node_id,
                rx,
                unrecorded,
            },
        )
    }

    /// Records that `caller`'s call to `method` was refused with `status`,
    /// and hands the status back for the caller to return.
    pub fn refuse(&self, caller: &Caller, method: &str, status: tonic::Status) -> tonic::Status {
        self.record(Refusal::of(Some(caller), caller.remote, method, &status));
        status
    }

    pub fn record(&self, refusal: Refusal) {
        tracing::info!(
            caller = %refusal.caller,
            kind = refusal.kind,
            method = %refusal.method,
            code = ?refusal.code,
            reason = %refusal.reason,
            "request refused"
        );
        if let Some(tx) = &self.tx {
            if tx.try_send(refusal).is_err() {
                self.unrecorded.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Appends queued refusals to the ledger, within the rate.
pub struct RefusalWriter {
    node_id: u64,
    rx: mpsc::Receiver<Refusal>,
    unrecorded: Arc<AtomicU64>,
}

impl RefusalWriter {
    /// Runs until the node stops, handing each record to `append`, which
    /// proposes it (the node passes its proposer: this layer sits below
    /// Raft and does not name it).
    pub async fn run<F, Fut>(mut self, append: F, mut stop: watch::Receiver<bool>)
    where
        F: Fn(Event) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let per_s = NonZeroU32::new(REFUSAL_EVENTS_PER_S).unwrap_or(NonZeroU32::MIN);
        let rate = DefaultDirectRateLimiter::direct(Quota::per_second(per_s));
        loop {
            let refusal = tokio::select! {
                r = self.rx.recv() => match r {
                    Some(r) => r,
                    None => return,
                },
                _ = stop.wait_for(|s| *s) => return,
            };
            if rate.check().is_err() {
                self.unrecorded.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let unrecorded = self.unrecorded.swap(0, Ordering::Relaxed);
            let event = refusal.event(self.node_id, crate::clock::now_unix_nanos(), unrecorded);
            if let Err(e) = append(event).await {
                // Without a quorum nothing can be recorded; the count says
                // how many went missing once one is.
                self.unrecorded.fetch_add(1 + unrecorded, Ordering::Relaxed);
                tracing::warn!(error = %e, "refusal not recorded");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_makes_a_valid_event_even_from_hostile_text() {
        let refusal = Refusal {
            caller: "evil\n\0name".into(),
            kind: "certificate",
            remote: Some("10.1.2.3:5555".parse().unwrap()),
            method: "ironlog.v1.Admin/AddLearner".into(),
            code: tonic::Code::PermissionDenied,
            reason: "x".repeat(5000),
        };
        let event = refusal.event(2, 1_700_000_000_000_000_000, 3);
        event.validate().expect("refusal events pass the gate");
        assert_eq!(event.source, "ironlog/node-2");
        assert_eq!(event.outcome, Outcome::Denied);
        assert_eq!(event.actor.id, "evil??name");
        assert_eq!(event.actor.ip.as_deref(), Some("10.1.2.3"));
        assert_eq!(event.details["unrecorded_before"], 3);
        assert_eq!(event.details["code"], "PermissionDenied");
        assert!(event.details["reason"].as_str().unwrap().len() <= REASON_BYTES_MAX);
    }

    #[test]
    fn a_full_queue_counts_what_it_drops() {
        let (log, writer) = RefusalLog::new(1);
        let r = Refusal {
            caller: "a".into(),
            kind: "anonymous",
            remote: None,
            method: "m".into(),
            code: tonic::Code::Unauthenticated,
            reason: "r".into(),
        };
        for _ in 0..REFUSAL_QUEUE_MAX + 5 {
            log.record(r.clone());
        }
        assert_eq!(writer.unrecorded.load(Ordering::Relaxed), 5);
    }
}
