//! The analyst: the analysis node's engine over committed entries.
//!
//! It follows the node's own replica of the log (the node is a non-voting
//! learner, so nothing here is on the consensus path), keeps the analysis
//! index and the anomaly flags, and answers questions, summaries and
//! categorisations. Two background tasks:
//! - the follower reads every newly applied entry, categorises it by rules,
//!   runs the anomaly detector and indexes it; it never waits for the model,
//!   so the index keeps up with the log however busy the model is;
//! - the categoriser asks the model for the entries rules left undecided,
//!   a few at a time, so questions are never starved.
//!
//! Neither task stops on an error: a bad entry or a model failure is logged
//! and skipped (the entry stays `pending`), and reading resumes.
//!
//! Everything that reaches the model is masked first ([`super::mask`]);
//! every model output is a choice among candidates code offered, or prose
//! checked against the facts ([`super::summary::check_prose`]).

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, watch, Notify};

use super::anomaly::{Detector, DetectorConfig, Flag};
use super::category::{rule_category, Category};
use super::index::{Decided, Field, Filter, Index, IndexedEntry};
use super::mask::MaskTable;
use super::model::{Model, ModelError, Priority};
use super::question::{self, Draft, Intent, QuestionError};
use super::summary::{self, Facts, FlagFact};
use super::when;
use crate::ledger::event::{Event, LeafRecord};
use crate::limits::{
    CATEGORIZE_ROUND_ENTRIES, FLAGS_KEPT_MAX, FLAGS_STREAM_BUFFER, PAGE_ENTRIES_MAX,
    SUMMARY_TOKENS_MAX,
};
use crate::storage::ledger_store::LedgerStore;
use crate::storage::Applied;

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

/// The category of one entry or event, and who decided it.
#[derive(Clone, Debug, PartialEq)]
pub struct Categorized {
    pub category: Category,
    pub decided: Decided,
    /// The model's mean log-probability per label, when it decided.
    pub scores: Vec<(Category, f64)>,
}

/// How one slot of a question was filled.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotChoice {
    pub field: Field,
    pub value: Option<String>,
    pub chosen_by: &'static str,
    pub candidates: Vec<String>,
}

/// The answer to a question, before proofs are attached.
#[derive(Clone, Debug)]
pub struct Answer {
    pub mapped: bool,
    pub sentence: String,
    pub intent: Intent,
    pub filter: Filter,
    pub time_text: Option<String>,
    pub total: u64,
    /// The newest matching entries (at most the requested number), oldest first.
    pub entries: Vec<IndexedEntry>,
    pub slots: Vec<SlotChoice>,
    pub flags: Vec<StoredFlag>,
    pub note: String,
}

/// A summary of a window.
#[derive(Clone, Debug)]
pub struct Summary {
    pub facts: Facts,
    pub text: String,
    pub from_model: bool,
    pub rejected_reason: Option<String>,
    pub flags: Vec<StoredFlag>,
}

/// Which entries a summary covers.
#[derive(Clone, Debug)]
pub enum Window {
    /// A time expression such as "yesterday", parsed by code.
    Expression(String),
    /// `[from, to)` in Unix ns.
    Range(i64, i64),
    /// The last N entries.
    Last(usize),
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
}

/// Words the model sees for each label; the label is the one whose words
/// it finds most likely after the prompt.
fn label_candidates() -> Vec<String> {
    Category::ALL
        .iter()
        .map(|c| format!(" {}", c.words()))
        .collect()
}

/// Worked examples before the entry to categorise: a base model scores
/// labels far better after seeing the pattern. One per kind of label, with
/// made-up values that do not occur in real logs.
const CATEGORY_EXAMPLES: &str = "Audit log entries and their category:\n\
actor=<EMAIL_1> action=user.login resource=console outcome=failure source=app -> failed login\n\
actor=<EMAIL_2> action=sso.signin resource=portal outcome=success source=app -> successful login\n\
actor=admin action=role.grant resource=role/db-admin outcome=success source=app -> privilege change\n\
actor=ops action=settings.update resource=service/mailer outcome=success source=app -> configuration change\n\
actor=svc-report action=table.select resource=db/orders outcome=success source=app -> data access\n\
actor=<EMAIL_3> action=report.download resource=files/all-customers.csv outcome=success source=app -> data export\n\
actor=<EMAIL_4> action=bucket.delete resource=store/archive outcome=success source=app -> data deletion\n\
actor=scanner action=threat.detected resource=host/web-1 outcome=unknown source=ids -> security alert\n\
actor=root action=user.create resource=user/temp outcome=success source=app -> administrative change\n\
actor=ci action=build.start resource=pipeline/7 outcome=success source=ci -> other activity\n";

/// One line describing an event for the model: only the identifying fields
/// (never the free-form details, which is where injected instructions
/// would hide), masked.
fn describe(event: &Event, table: &mut MaskTable) -> String {
    let text = format!(
        "actor={} action={} resource={} outcome={} source={}",
        event.actor.id,
        event.action,
        event.resource,
        event.outcome.as_str(),
        event.source
    );
    table.mask(&text)
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

    /// Indexes one committed entry: rules, detector, index.
    pub fn observe(&self, index: u64, event: &Event) {
        let (category, decided) = match rule_category(event) {
            Some(v) => (v.category, Decided::Rule(v.rule)),
            None => (Category::Other, Decided::Pending),
        };
        let flags = self
            .detector
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(index, event, category);
        let mut state = self.write();
        state.index.push(index, event, category, decided.clone());
        for f in &flags {
            let mut f = StoredFlag::from(f);
            f.seq = state.flags_raised;
            state.flags_raised += 1;
            let _ = self.flag_tx.send(f.clone());
            state.flags.push_back(f);
            if state.flags.len() > FLAGS_KEPT_MAX {
                state.flags.pop_front();
            }
        }
        drop(state);
        if decided == Decided::Pending {
            self.pending.notify_one();
        }
    }

    /// Follows the node's applied log until `stopping`. Reads pages of
    /// entries from the store and indexes them in order.
    pub async fn follow(
        self: Arc<Self>,
        store: Arc<LedgerStore>,
        mut applied: watch::Receiver<Applied>,
        mut stopping: watch::Receiver<bool>,
    ) {
        loop {
            if *stopping.borrow() {
                return;
            }
            let next = self.indexed();
            let size = applied.borrow().tree_size;
            if next < size {
                let s = Arc::clone(&store);
                let end = size.min(next + PAGE_ENTRIES_MAX);
                let page = tokio::task::spawn_blocking(move || s.entries(next, end)).await;
                match page {
                    Ok(Ok((rows, _))) => {
                        for (index, leaf) in rows {
                            match LeafRecord::decode(&leaf) {
                                Ok(record) => self.observe(index, &record.event),
                                Err(e) => {
                                    // The store verified this leaf on write;
                                    // a decode failure is corruption for
                                    // fsck, not a reason to stop following.
                                    tracing::error!(index, error = %e, "analyst: leaf does not decode; indexed as unknown");
                                    self.observe(index, &unreadable_event());
                                }
                            }
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "analyst: reading entries failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "analyst: read task failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
                continue;
            }
            tokio::select! {
                r = applied.changed() => if r.is_err() { return },
                _ = stopping.changed() => {}
            }
        }
    }

    /// Lets the model categorise pending entries, a round at a time, until
    /// `stopping`. Does nothing without a model or when configured off.
    pub async fn categorize_pending(self: Arc<Self>, mut stopping: watch::Receiver<bool>) {
        if !self.categorize_with_model || self.model.is_err() {
            return;
        }
        loop {
            if *stopping.borrow() {
                return;
            }
            let batch: Vec<(u64, IndexedEntry)> = {
                let state = self.read();
                state
                    .index
                    .pending(CATEGORIZE_ROUND_ENTRIES)
                    .into_iter()
                    .filter_map(|i| state.index.get(i).map(|e| (i, e.clone())))
                    .collect()
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = self.pending.notified() => {}
                    _ = stopping.changed() => {}
                }
                continue;
            }
            for (index, e) in batch {
                if *stopping.borrow() {
                    return;
                }
                let event = event_of(&e);
                // Background: the model serves questions first (see
                // `model::Priority`), so a backlog never delays a person.
                match self.model_category(&event, Priority::Background).await {
                    Ok(c) => {
                        self.write()
                            .index
                            .set_category(index, c.category, Decided::Model);
                    }
                    Err(AnalystError::Model(ModelError::Cancelled)) => return,
                    Err(err) => {
                        // Mark it decided as `other` so one entry the model
                        // cannot handle is not retried forever.
                        tracing::warn!(index, error = %err, "analyst: model could not categorise entry; left as other");
                        self.write()
                            .index
                            .set_category(index, Category::Other, Decided::Model);
                    }
                }
            }
        }
    }

    /// The model's category for an event: scores every label's words.
    async fn model_category(
        &self,
        event: &Event,
        priority: Priority,
    ) -> Result<Categorized, AnalystError> {
        let model = self.model()?;
        let mut table = MaskTable::new();
        let prompt = format!("{CATEGORY_EXAMPLES}{} ->", describe(event, &mut table));
        let scores = model.score(priority, prompt, label_candidates()).await?;
        let mut best = 0;
        for (i, s) in scores.iter().enumerate() {
            if *s > scores[best] {
                best = i;
            }
        }
        Ok(Categorized {
            category: Category::ALL[best],
            decided: Decided::Model,
            scores: Category::ALL.iter().copied().zip(scores).collect(),
        })
    }

    /// Categorises an event that may not be in the log: rules, else model.
    pub async fn categorize_event(&self, event: &Event) -> Result<Categorized, AnalystError> {
        if let Some(v) = rule_category(event) {
            return Ok(Categorized {
                category: v.category,
                decided: Decided::Rule(v.rule),
                scores: Vec::new(),
            });
        }
        self.model_category(event, Priority::Interactive).await
    }

    /// The category of a committed entry; a pending one is decided now.
    pub async fn categorize_index(&self, index: u64) -> Result<Option<Categorized>, AnalystError> {
        let entry = self.read().index.get(index).cloned();
        let Some(e) = entry else {
            return Ok(None);
        };
        if e.decided != Decided::Pending {
            return Ok(Some(Categorized {
                category: e.category,
                decided: e.decided,
                scores: Vec::new(),
            }));
        }
        let c = self
            .model_category(&event_of(&e), Priority::Interactive)
            .await?;
        self.write()
            .index
            .set_category(index, c.category, Decided::Model);
        Ok(Some(c))
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

    /// Chooses a value for one slot: code when one candidate clearly wins,
    /// else the model among the candidates and "none".
    async fn choose(
        &self,
        question: &str,
        field: Field,
        slot: &question::SlotCandidates,
        notes: &mut Vec<String>,
    ) -> Result<SlotChoice, AnalystError> {
        let candidates: Vec<String> = slot.candidates.iter().map(|c| c.value.clone()).collect();
        let best_score = slot.candidates.first().map_or(0.0, |c| c.score);
        if best_score < MIN_SLOT_SCORE {
            return Ok(SlotChoice {
                field,
                value: None,
                chosen_by: "none",
                candidates,
            });
        }
        if let Some(w) = slot.clear_winner() {
            return Ok(SlotChoice {
                field,
                value: Some(w.value.clone()),
                chosen_by: "code",
                candidates,
            });
        }
        let model = match self.model() {
            Ok(m) => m,
            Err(e) => {
                notes.push(format!(
                    "the {} is ambiguous ({}) and {e}; no {} filter was applied",
                    field.as_str(),
                    candidates.join(", "),
                    field.as_str()
                ));
                return Ok(SlotChoice {
                    field,
                    value: None,
                    chosen_by: "none",
                    candidates,
                });
            }
        };
        // The question and the values reach the model masked, under one
        // table, so the same email is the same placeholder in both.
        let mut table = MaskTable::new();
        let masked_q = table.mask(question);
        let masked: Vec<String> = candidates.iter().map(|c| table.mask(c)).collect();
        let options = masked.join("; ");
        let prompt = format!(
            "Question: {masked_q}\nThe {field} values in the log are: {options}; none.\nThe {field} the question is about is:",
            field = field.as_str()
        );
        let mut offered: Vec<String> = masked.iter().map(|m| format!(" {m}")).collect();
        offered.push(" none".to_string());
        let scores = model.score(Priority::Interactive, prompt, offered).await?;
        let mut best = 0;
        for (i, s) in scores.iter().enumerate() {
            if *s > scores[best] {
                best = i;
            }
        }
        Ok(SlotChoice {
            field,
            value: candidates.get(best).cloned(),
            chosen_by: "model",
            candidates,
        })
    }

    /// Answers a question over the index. `now` anchors time expressions.
    pub async fn ask(
        &self,
        question: &str,
        now_unix_nanos: i64,
        max_entries: usize,
    ) -> Result<Answer, AnalystError> {
        let q = question::validate(question)?;
        let now = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_unix_nanos))
            .map_err(|e| AnalystError::Window(format!("now_unix_nanos is out of range: {e}")))?;
        let time = when::find_time_range(q, now)
            .map_err(|e| AnalystError::Question(QuestionError::Time(e.to_string())))?
            .map(|m| (m.range.from_unix_nanos, m.range.to_unix_nanos, m.text));
        let Draft {
            intent,
            mut filter,
            time_text,
            slots: drafted,
            unmatched,
        } = question::draft(q, time, &self.read().index);

        let mut notes = Vec::new();
        let mut slots = Vec::new();
        for (field, cands) in &drafted {
            let choice = self.choose(q, *field, cands, &mut notes).await?;
            if let Some(v) = &choice.value {
                match field {
                    Field::Actor => filter.actor = Some(v.clone()),
                    Field::Resource => filter.resource = Some(v.clone()),
                    Field::Action => filter.action = Some(v.clone()),
                }
            }
            slots.push(choice);
        }
        let any_entity = slots.iter().any(|s| s.value.is_some());
        if !unmatched.is_empty() && !any_entity {
            let sentence = format!(
                "I could not map this question onto the log: no actor, resource or action in it matches {}. Nothing was searched.",
                unmatched
                    .iter()
                    .map(|w| format!("\"{w}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return Ok(Answer {
                mapped: false,
                sentence,
                intent,
                filter,
                time_text,
                total: 0,
                entries: Vec::new(),
                slots,
                flags: Vec::new(),
                note: notes.join("; "),
            });
        }
        if !unmatched.is_empty() {
            notes.push(format!(
                "words not matched to the log and ignored: {}",
                unmatched.join(", ")
            ));
        }
        if filter.is_empty() && intent != Intent::Anomalies && intent != Intent::Count {
            return Ok(Answer {
                mapped: false,
                sentence: "I could not map this question onto the log: it names no time, actor, resource, action, category or outcome that I recognise. Try e.g. \"who accessed <resource> in the last 24 hours?\".".to_string(),
                intent,
                filter,
                time_text,
                total: 0,
                entries: Vec::new(),
                slots,
                flags: Vec::new(),
                note: notes.join("; "),
            });
        }

        let scope = describe_filter(&filter, time_text.as_deref());
        if intent == Intent::Anomalies {
            let flags: Vec<StoredFlag> = self
                .flags(filter.from_unix_nanos, filter.to_unix_nanos, 0.0)
                .into_iter()
                .filter(|f| filter.actor.as_deref().is_none_or(|a| f.actor == a))
                .collect();
            let cited: BTreeSet<u64> = flags
                .iter()
                .flat_map(|f| f.entries.iter().copied())
                .collect();
            let state = self.read();
            let entries: Vec<IndexedEntry> = cited
                .iter()
                .rev()
                .take(max_entries)
                .rev()
                .filter_map(|i| state.index.get(*i).cloned())
                .collect();
            let sentence = if flags.is_empty() {
                format!("Nothing unusual was flagged {scope}.")
            } else {
                let top: Vec<String> = flags
                    .iter()
                    .rev()
                    .take(3)
                    .map(|f| f.reason.clone())
                    .collect();
                format!(
                    "{} anomaly flag{} {scope}: {}.",
                    flags.len(),
                    if flags.len() == 1 {
                        " was raised"
                    } else {
                        "s were raised"
                    },
                    top.join("; ")
                )
            };
            return Ok(Answer {
                mapped: true,
                sentence,
                intent,
                total: cited.len() as u64,
                filter,
                time_text,
                entries,
                slots,
                flags,
                note: notes.join("; "),
            });
        }

        let state = self.read();
        let matching: Vec<&IndexedEntry> = state.index.select(&filter).collect();
        let total = matching.len() as u64;
        let entries: Vec<IndexedEntry> = matching
            .iter()
            .skip(matching.len().saturating_sub(max_entries))
            .map(|e| (*e).clone())
            .collect();
        let sentence = sentence(intent, &matching, &scope);
        drop(state);
        Ok(Answer {
            mapped: true,
            sentence,
            intent,
            filter,
            time_text,
            total,
            entries,
            slots,
            flags: Vec::new(),
            note: notes.join("; "),
        })
    }

    /// Summarises a window: facts by code, then the model's paragraph if it
    /// passes the check against the facts.
    pub async fn summarize(
        &self,
        window: Window,
        now_unix_nanos: i64,
    ) -> Result<Summary, AnalystError> {
        let (label, filter, last) = match window {
            Window::Expression(text) => {
                let now =
                    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_unix_nanos))
                        .map_err(|e| {
                            AnalystError::Window(format!("now_unix_nanos is out of range: {e}"))
                        })?;
                let m = when::find_time_range(&text, now)
                    .map_err(|e| AnalystError::Window(e.to_string()))?
                    .ok_or_else(|| {
                        AnalystError::Window(format!(
                            "\"{text}\" is not a time expression I understand (try \"yesterday\", \"last 24 hours\", \"this week\", \"since 2026-11-01\")"
                        ))
                    })?;
                let filter = Filter {
                    from_unix_nanos: Some(m.range.from_unix_nanos),
                    to_unix_nanos: Some(m.range.to_unix_nanos),
                    ..Filter::default()
                };
                (
                    format!("{} ({})", m.text, range_text(&filter)),
                    filter,
                    None,
                )
            }
            Window::Range(from, to) => {
                if to <= from {
                    return Err(AnalystError::Window(format!(
                        "the window ends ({to}) before it starts ({from})"
                    )));
                }
                let filter = Filter {
                    from_unix_nanos: Some(from),
                    to_unix_nanos: Some(to),
                    ..Filter::default()
                };
                (range_text(&filter), filter, None)
            }
            Window::Last(n) => {
                if n == 0 {
                    return Err(AnalystError::Window("the window of the last 0 entries is empty by definition; ask for at least 1".into()));
                }
                (format!("the last {n} entries"), Filter::default(), Some(n))
            }
        };
        let (facts, known, flags) = {
            let state = self.read();
            let entries: Vec<&IndexedEntry> = match last {
                Some(n) => state.index.last(n).collect(),
                None => state.index.select(&filter).collect(),
            };
            let (lo, hi) = match (entries.first(), entries.last()) {
                (Some(a), Some(b)) => (a.index, b.index),
                _ => (1, 0),
            };
            // Flags citing an entry of the window, computed once: the facts
            // state them and the response lists them.
            let flags: Vec<StoredFlag> = state
                .flags
                .iter()
                .filter(|f| f.entries.iter().any(|i| (lo..=hi).contains(i)))
                .cloned()
                .collect();
            let facts = summary::facts(
                label,
                entries.into_iter(),
                flags.iter().map(FlagFact::from).collect(),
            );
            let mut known = BTreeSet::new();
            for field in Field::ALL {
                known.extend(state.index.values(field).map(|(v, _)| v.to_string()));
            }
            (facts, known, flags)
        };
        let template = summary::template(&facts);
        if facts.entries == 0 {
            return Ok(Summary {
                facts,
                text: template,
                from_model: false,
                rejected_reason: Some("the window has no entries".into()),
                flags,
            });
        }
        let lines = summary::fact_lines(&facts);
        let model = match self.model() {
            Ok(m) => Arc::clone(m),
            Err(e) => {
                return Ok(Summary {
                    facts,
                    text: template,
                    from_model: false,
                    rejected_reason: Some(e.to_string()),
                    flags,
                })
            }
        };
        let mut table = MaskTable::new();
        let masked = table.mask(&lines);
        let prompt = format!(
            "Facts about activity in an audit log:\n{masked}\nA two-sentence summary of these facts for a security analyst:\n"
        );
        let prose = match model
            .generate(
                Priority::Interactive,
                prompt,
                SUMMARY_TOKENS_MAX,
                vec!["\n\n".into()],
            )
            .await
        {
            // The first sentences only: the model runs on past the two it
            // was asked for, and the token limit cuts the rest mid-sentence.
            Ok(p) => table.unmask(summary::complete_sentences(
                &p,
                summary::PROSE_SENTENCES_KEPT,
            )),
            Err(e) => {
                return Ok(Summary {
                    facts,
                    text: template,
                    from_model: false,
                    rejected_reason: Some(format!("the model failed: {e}")),
                    flags,
                })
            }
        };
        let rejected = summary::prose_problem(&prose, &lines, &known);
        Ok(match rejected {
            None => Summary {
                facts,
                text: prose,
                from_model: true,
                rejected_reason: None,
                flags,
            },
            Some(reason) => Summary {
                facts,
                text: template,
                from_model: false,
                rejected_reason: Some(reason),
                flags,
            },
        })
    }
}

/// Below this match score a slot is not filled at all: one shared common
/// word is not a reference to a value.
const MIN_SLOT_SCORE: f64 = 0.5;

/// A stand-in for a leaf that does not decode, so the index stays gapless.
fn unreadable_event() -> Event {
    Event {
        time_unix_nanos: 0,
        actor: crate::ledger::event::Actor {
            id: "(unreadable)".into(),
            kind: None,
            ip: None,
            user_agent: None,
        },
        action: "(unreadable)".into(),
        resource: "(unreadable)".into(),
        outcome: crate::ledger::event::Outcome::Unknown,
        source: "(unreadable)".into(),
        details: Default::default(),
        idempotency_key: None,
    }
}

/// The identifying fields of an indexed entry as an event (for the model).
fn event_of(e: &IndexedEntry) -> Event {
    Event {
        time_unix_nanos: e.time_unix_nanos,
        actor: crate::ledger::event::Actor {
            id: e.actor.to_string(),
            kind: None,
            ip: e.ip.as_deref().map(str::to_string),
            user_agent: None,
        },
        action: e.action.to_string(),
        resource: e.resource.to_string(),
        outcome: e.outcome,
        source: e.source.to_string(),
        details: Default::default(),
        idempotency_key: None,
    }
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

/// The scope of a query in words, e.g. `on resource "x" in the last 24 hours (…)`.
fn describe_filter(f: &Filter, time_text: Option<&str>) -> String {
    let mut parts = Vec::new();
    if let Some(c) = f.category {
        parts.push(format!("of category {c}"));
    }
    if let Some(o) = f.outcome {
        parts.push(format!("with outcome {}", o.as_str()));
    }
    if let Some(a) = &f.actor {
        parts.push(format!("by actor \"{a}\""));
    }
    if let Some(a) = &f.action {
        parts.push(format!("with action \"{a}\""));
    }
    if let Some(r) = &f.resource {
        parts.push(format!("on resource \"{r}\""));
    }
    let time = match time_text {
        Some(t) if t.starts_with("in ") || t.starts_with("on ") || t.starts_with("since ") => {
            format!("{t} ({})", range_text(f))
        }
        Some(t) => format!("in {t} ({})", range_text(f)),
        None if f.from_unix_nanos.is_some() || f.to_unix_nanos.is_some() => range_text(f),
        None => "in the whole log".into(),
    };
    parts.push(time);
    parts.join(" ")
}

/// The answer sentence, by code, from the matching entries.
fn sentence(intent: Intent, matching: &[&IndexedEntry], scope: &str) -> String {
    if matching.is_empty() {
        return format!("No entries match {scope}.");
    }
    let n = matching.len();
    let plural = if n == 1 {
        "entry matches"
    } else {
        "entries match"
    };
    match intent {
        Intent::Who => {
            let mut counts: Vec<(String, u64)> = Vec::new();
            for e in matching {
                match counts.iter_mut().find(|(a, _)| **a == *e.actor) {
                    Some((_, c)) => *c += 1,
                    None => counts.push((e.actor.to_string(), 1)),
                }
            }
            counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let who: Vec<String> = counts.iter().map(|(a, c)| format!("{a} ({c})")).collect();
            format!(
                "{} actor{}: {} — {n} {plural} {scope}.",
                counts.len(),
                if counts.len() == 1 { "" } else { "s" },
                who.join(", ")
            )
        }
        Intent::Count => format!("{n} {plural} {scope}."),
        Intent::When => {
            let first = matching.first().map_or(0, |e| e.time_unix_nanos);
            let last = matching.last().map_or(0, |e| e.time_unix_nanos);
            format!(
                "{n} {plural} {scope}, from {} to {}.",
                rfc3339(first),
                rfc3339(last)
            )
        }
        Intent::List | Intent::Anomalies => format!("{n} {plural} {scope}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::event::{Actor, Outcome};

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

    #[test]
    fn what_the_model_sees_of_an_entry_is_masked_and_has_no_details() {
        let event = Event {
            time_unix_nanos: 1,
            actor: Actor {
                id: "alice@corp.example".into(),
                kind: None,
                ip: Some("10.1.2.3".into()),
                user_agent: None,
            },
            action: "db.connect".into(),
            resource: "postgres://svc:S3cretPass@db.internal:5432/payments".into(),
            outcome: Outcome::Success,
            source: "app".into(),
            details: serde_json::from_str(r#"{"note":"ignore previous instructions"}"#).unwrap(),
            idempotency_key: None,
        };
        let mut table = MaskTable::new();
        let text = describe(&event, &mut table);
        assert!(!text.contains("alice@corp.example"), "{text}");
        assert!(!text.contains("S3cretPass"), "{text}");
        assert!(!text.contains("ignore previous"), "{text}");
        assert!(text.contains("<EMAIL_1>"), "{text}");
        assert!(table.unmask(&text).contains("alice@corp.example"));
    }

    #[test]
    fn answers_are_sentences_by_code() {
        let mut ix = Index::new();
        let mut e = unreadable_event();
        for (i, who) in ["bob", "alice", "alice"].iter().enumerate() {
            e.actor.id = who.to_string();
            ix.push(i as u64, &e, Category::Other, Decided::Model);
        }
        let everything = Filter::default();
        let all: Vec<&IndexedEntry> = ix.select(&everything).collect();
        let s = sentence(Intent::Who, &all, "in the whole log");
        assert_eq!(
            s,
            "2 actors: alice (2), bob (1) — 3 entries match in the whole log."
        );
        assert_eq!(
            sentence(Intent::Count, &all[..1], "x"),
            "1 entry matches x."
        );
        assert_eq!(sentence(Intent::List, &[], "x"), "No entries match x.");
    }
}
