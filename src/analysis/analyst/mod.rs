//! The analyst: the analysis node's engine over committed entries.
//!
//! It follows the node's own replica of the log (the node is a non-voting
//! learner, so nothing here is on the consensus path), keeps the analysis
//! index and the anomaly flags, and answers questions, summaries and
//! categorisations. Two background tasks:
//! - the follower takes every newly applied entry (from apply as it stores
//!   it, or read back from the store when apply could not hand it over),
//!   categorises it by rules, runs the anomaly detector and indexes it; it
//!   never waits for the model, so the index keeps up with the log however
//!   busy the model is;
//! - the categoriser asks the model for the entries rules left undecided,
//!   a few at a time, so questions are never starved.
//!
//! Neither task stops on an error: a bad entry or a model failure is logged
//! and skipped (the entry stays `pending`), and reading resumes.
//!
//! Everything that reaches the model is masked first ([`super::mask`]);
//! every model output is a choice among candidates code offered, or prose
//! checked against the facts ([`super::summary::check_prose`]).
//!
//! ## Layout
//! - this file: [`Analyst`], its state, [`AnalystError`], the kept flags
//!   ([`StoredFlag`], listing and subscribing) and the plumbing the others
//!   share.
//! - `follower.rs`: the follower: each committed entry, handed over by apply
//!   or read from the store, through the rules, the detector and the index.
//! - `categorizer.rs`: the categoriser, and the category of one event or
//!   entry on request, by rules or the model.
//! - `ask.rs`: [`Analyst::ask`], a question answered over the index.
//! - `summarize.rs`: [`Analyst::summarize`], the facts of a window and the
//!   model's checked paragraph.

mod ask;
mod categorizer;
mod follower;
mod summarize;

pub use self::categorizer::Categorized;
pub use self::summarize::Window;

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{broadcast, Notify};

use super::anomaly::{Detector, DetectorConfig, Flag};
use super::index::{Filter, Index};
use super::model::{Model, ModelError};
use super::question::QuestionError;
use super::summary::FlagFact;
use crate::limits::FLAGS_STREAM_BUFFER;

/// Errors of the analyst. `Question` and `Window` are the caller's
/// (`INVALID_ARGUMENT`); `ModelUnavailable` means the node serves without a
/// model (`FAILED_PRECONDITION`, naming why); `Model` is a model failure or
/// timeout for this request only.
#[derive(Debug, thiserror::Error)]
pub enum AnalystError {
    #[error("{0}")]
    Question(#[from] QuestionError),
    #[error("{0}")]
    Window(String),
    #[error("the model is not available: {0}")]
    ModelUnavailable(String),
    #[error("{0}")]
    Model(#[from] ModelError),
    #[error("storage: {0}")]
    Storage(String),
}

/// A flag as kept and streamed: the detector's flag with owned strings.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFlag {
    /// Position among all flags this node raised, from 0: a stream that
    /// lists the kept flags and then follows new ones skips what it listed.
    pub seq: u64,
    pub kind: String,
    pub score: f32,
    pub reason: String,
    pub entries: Vec<u64>,
    pub actor: String,
    pub time_unix_nanos: i64,
}

impl From<&Flag> for StoredFlag {
    fn from(f: &Flag) -> StoredFlag {
        StoredFlag {
            seq: 0,
            kind: f.kind.as_str().to_string(),
            score: f.score,
            reason: f.reason.clone(),
            entries: f.entries.clone(),
            actor: f.actor.clone(),
            time_unix_nanos: f.time_unix_nanos,
        }
    }
}

impl From<&StoredFlag> for FlagFact {
    fn from(f: &StoredFlag) -> FlagFact {
        FlagFact {
            kind: f.kind.clone(),
            actor: f.actor.clone(),
            reason: f.reason.clone(),
            score: f.score,
            entries: f.entries.clone(),
        }
    }
}

struct State {
    index: Index,
    /// Flags in the order raised; bounded, oldest dropped.
    flags: VecDeque<StoredFlag>,
    /// Flags raised since start, kept or dropped: the next `seq`.
    flags_raised: u64,
}

pub struct Analyst {
    state: RwLock<State>,
    /// Separate from `state` so detection never holds the index lock.
    detector: Mutex<Detector>,
    flag_tx: broadcast::Sender<StoredFlag>,
    /// The model, or why there is none (the node then still indexes, flags
    /// and answers what code alone can).
    model: Result<Arc<Model>, String>,
    categorize_with_model: bool,
    /// Wakes the categoriser when the follower indexed pending entries.
    pending: Notify,
    /// Entries the follower read from the store because apply did not hand
    /// them over (start-up, a snapshot install, a full feed): how often the
    /// slow path runs.
    entries_read_back: AtomicU64,
}

impl Analyst {
    pub fn new(model: Result<Arc<Model>, String>, categorize_with_model: bool) -> Arc<Analyst> {
        let (flag_tx, _) = broadcast::channel(FLAGS_STREAM_BUFFER);
        Arc::new(Analyst {
            state: RwLock::new(State {
                index: Index::new(),
                flags: VecDeque::new(),
                flags_raised: 0,
            }),
            detector: Mutex::new(Detector::new(DetectorConfig::default())),
            flag_tx,
            model,
            categorize_with_model,
            pending: Notify::new(),
            entries_read_back: AtomicU64::new(0),
        })
    }

    /// Stops model work at its next step; the node is stopping.
    pub fn shutdown(&self) {
        if let Ok(m) = &self.model {
            m.cancel_all();
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn model(&self) -> Result<&Arc<Model>, AnalystError> {
        self.model
            .as_ref()
            .map_err(|why| AnalystError::ModelUnavailable(why.clone()))
    }

    /// How far the index has read: the next entry index it expects.
    pub fn indexed(&self) -> u64 {
        self.read().index.next_index()
    }

    /// Flags whose time is in `[from, to)` (either bound optional) with at
    /// least `min_score`, oldest first.
    pub fn flags(&self, from: Option<i64>, to: Option<i64>, min_score: f32) -> Vec<StoredFlag> {
        self.flags_and_cursor(from, to, min_score).0
    }

    /// [`Analyst::flags`], and the `seq` the next flag raised will get: a
    /// subscriber that lists and then follows skips live flags below it.
    pub fn flags_and_cursor(
        &self,
        from: Option<i64>,
        to: Option<i64>,
        min_score: f32,
    ) -> (Vec<StoredFlag>, u64) {
        let state = self.read();
        let listed = state
            .flags
            .iter()
            .filter(|f| from.is_none_or(|t| f.time_unix_nanos >= t))
            .filter(|f| to.is_none_or(|t| f.time_unix_nanos < t))
            .filter(|f| f.score >= min_score)
            .cloned()
            .collect();
        (listed, state.flags_raised)
    }

    pub fn subscribe_flags(&self) -> broadcast::Receiver<StoredFlag> {
        self.flag_tx.subscribe()
    }
}

/// `now_unix_nanos` as a date and time, or the caller's error.
fn now_at(now_unix_nanos: i64) -> Result<time::OffsetDateTime, AnalystError> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_unix_nanos))
        .map_err(|e| AnalystError::Window(format!("now_unix_nanos is out of range: {e}")))
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t))
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

fn range_text(f: &Filter) -> String {
    match (f.from_unix_nanos, f.to_unix_nanos) {
        (Some(a), Some(b)) => format!("{} to {}", rfc3339(a), rfc3339(b)),
        (Some(a), None) => format!("since {}", rfc3339(a)),
        (None, Some(b)) => format!("before {}", rfc3339(b)),
        (None, None) => "the whole log".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::event::{Actor, Event, Outcome};

    #[test]
    fn a_follower_that_subscribed_before_listing_skips_listed_flags_by_seq() {
        let analyst = Analyst::new(Err("no model in this test".into()), false);
        let alert = |n: i64| Event {
            time_unix_nanos: n,
            actor: Actor {
                id: format!("scanner-{n}"),
                kind: None,
                ip: None,
                user_agent: None,
            },
            action: "threat.detected".into(),
            resource: "host/1".into(),
            outcome: Outcome::Unknown,
            source: "ids".into(),
            details: Default::default(),
            idempotency_key: None,
        };
        analyst.observe(0, &alert(1));
        // Subscribed, then two more flags before the list is taken: the
        // race the cursor closes.
        let mut live = analyst.subscribe_flags();
        analyst.observe(1, &alert(2));
        analyst.observe(2, &alert(3));
        let (listed, cursor) = analyst.flags_and_cursor(None, None, 0.0);
        assert_eq!(listed.iter().map(|f| f.seq).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(cursor, 3);
        analyst.observe(3, &alert(4));
        let mut new = Vec::new();
        while let Ok(f) = live.try_recv() {
            if f.seq >= cursor {
                new.push(f.entries.clone());
            }
        }
        assert_eq!(new, vec![vec![3]], "only the flag raised after listing");
    }
}
