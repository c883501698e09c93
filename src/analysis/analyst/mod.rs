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
//! every model output is a choice among candidates code offered: a label,
//! a slot's value, or which of code's sentences a summary states.
//!
//! ## Layout
//! - this file: [`Analyst`], its state, [`AnalystError`], listing and
//!   subscribing to the kept flags, and the plumbing the others share.
//! - `flags.rs`: the kept flags, one [`StoredFlag`] per incident, grown by
//!   the detector's updates and bounded.
//! - `follower.rs`: the follower: each committed entry, handed over by apply
//!   or read from the store, through the rules, the detector and the index.
//! - `categorizer.rs`: the categoriser, and the category of one event or
//!   entry on request, by rules or the model.
//! - `ask.rs`: [`Analyst::ask`], a question answered over the index.
//! - `summarize.rs`: [`Analyst::summarize`], the facts of a window and the
//!   model's checked paragraph.

mod ask;
mod categorizer;
mod flags;
mod follower;
mod summarize;

pub use self::ask::Answer;
pub use self::categorizer::Categorized;
pub use self::flags::StoredFlag;
pub use self::summarize::Window;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{broadcast, Notify};

use self::flags::KeptFlags;
use super::anomaly::{Catalogue, Detector, DetectorConfig};
use super::index::{Filter, Index};
use super::model::{Model, ModelError};
use super::question::QuestionError;
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

struct State {
    index: Index,
    /// One flag per incident, oldest first; bounded, oldest dropped.
    flags: KeptFlags,
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
    /// An analyst with the built-in detections only (the node passes its
    /// catalogue to [`Analyst::with_catalogue`]).
    #[cfg(test)]
    pub fn new(model: Result<Arc<Model>, String>, categorize_with_model: bool) -> Arc<Analyst> {
        Analyst::with_catalogue(model, categorize_with_model, Catalogue::builtin())
    }

    /// An analyst whose detector uses `catalogue` (the built-in detections
    /// and the organisation's own).
    pub fn with_catalogue(
        model: Result<Arc<Model>, String>,
        categorize_with_model: bool,
        catalogue: Arc<Catalogue>,
    ) -> Arc<Analyst> {
        let (flag_tx, _) = broadcast::channel(FLAGS_STREAM_BUFFER);
        Arc::new(Analyst {
            state: RwLock::new(State {
                index: Index::new(),
                flags: KeptFlags::new(),
            }),
            detector: Mutex::new(Detector::with_catalogue(
                DetectorConfig::default(),
                catalogue,
            )),
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

    /// Flags (incidents) active in `[from, to)` (either bound optional;
    /// see [`StoredFlag::within`]) with at least `min_score`, oldest first.
    pub fn flags(&self, from: Option<i64>, to: Option<i64>, min_score: f32) -> Vec<StoredFlag> {
        self.flags_and_cursor(from, to, min_score).0
    }

    /// [`Analyst::flags`], and the `seq` the next change will get: a
    /// subscriber that lists and then follows skips live changes below it.
    pub fn flags_and_cursor(
        &self,
        from: Option<i64>,
        to: Option<i64>,
        min_score: f32,
    ) -> (Vec<StoredFlag>, u64) {
        let state = self.read();
        (
            state.flags.listed(from, to, min_score),
            state.flags.next_seq(),
        )
    }

    /// Every change to a kept flag from now on, as the flag then is: a new
    /// incident, or one that grew or had another flag raised on it.
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
