//! `ironlog.v1.Analysis`: questions, summaries, anomaly flags and
//! categories, served by the analysis node. Answers cite the entries they
//! rest on with inclusion proofs against the latest checkpoint signed by a
//! majority of voters, so an answer can be audited like any entry.

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{broadcast, watch};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::convert::{
    checkpoint_to_proto, entry_to_proto, event_from_proto, outcome_to_proto, proven_leaf,
};
use super::error::ApiError;
use crate::analysis::analyst::{Analyst, Answer, Categorized, StoredFlag, Window};
use crate::analysis::index::{Decided, Filter, IndexedEntry};
use crate::limits::{ANSWER_ENTRIES_DEFAULT, ANSWER_ENTRIES_MAX, CATEGORIZE_EVENTS_MAX};
use crate::proto::analysis_server::Analysis;
use crate::proto::{self as pb};
use crate::raft::Raft;
use crate::storage::ledger_store::StoredCheckpoint;

pub struct AnalysisApi {
    analyst: Arc<Analyst>,
    store: super::StoreSlot,
    raft: Raft,
    stopping: watch::Receiver<bool>,
}

fn flag_to_proto(f: &StoredFlag) -> pb::AnomalyFlag {
    pb::AnomalyFlag {
        kind: f.kind.clone(),
        score: f.score,
        reason: f.reason.clone(),
        entries: f.entries.clone(),
        actor: f.actor.clone(),
        time_unix_nanos: f.time_unix_nanos,
        incident: f.incident,
        incident_key: f.incident_key.clone(),
        kinds: f.flags.iter().map(|k| k.kind.clone()).collect(),
        reasons: f.flags.iter().map(|k| k.reason.clone()).collect(),
        last_unix_nanos: f.last_unix_nanos,
        entries_unlisted: f.entries_unlisted,
        context: f.context.clone(),
    }
}

fn decided_text(d: &Decided) -> String {
    match d {
        Decided::Rule(name) => format!("rule:{name}"),
        Decided::Model => "model".into(),
        Decided::Pending => "pending".into(),
    }
}

fn counts(items: &[(String, u64)]) -> Vec<pb::CountItem> {
    items
        .iter()
        .map(|(k, n)| pb::CountItem {
            key: k.clone(),
            count: *n,
        })
        .collect()
}

/// The query an answer ran, as the API shows it: single values in the
/// singular fields as well as in the lists, so older clients still read it.
fn structured_query(f: &Filter, answer: &Answer) -> pb::StructuredQuery {
    let one = |values: &[String]| match values {
        [v] => v.clone(),
        _ => String::new(),
    };
    let names = |items: Vec<&str>| items.into_iter().map(String::from).collect();
    pb::StructuredQuery {
        from_unix_nanos: f.from_unix_nanos.unwrap_or(0),
        to_unix_nanos: f.to_unix_nanos.unwrap_or(0),
        time_text: answer.time_text.clone().unwrap_or_default(),
        actor: one(&f.actors),
        resource: one(&f.resources),
        action: one(&f.actions),
        category: f
            .category
            .map(|c| c.as_str().to_string())
            .unwrap_or_default(),
        outcome: match f.outcomes.as_slice() {
            [o] => outcome_to_proto(*o) as i32,
            _ => pb::Outcome::Unspecified as i32,
        },
        intent: answer.intent.as_str().to_string(),
        actors: f.actors.clone(),
        resources: f.resources.clone(),
        actions: f.actions.clone(),
        outcomes: f
            .outcomes
            .iter()
            .map(|o| outcome_to_proto(*o) as i32)
            .collect(),
        verbs: names(f.verbs.iter().map(|v| v.as_str()).collect()),
        services: f.services.clone(),
        clients: names(f.clients.iter().map(|c| c.as_str()).collect()),
        actor_kinds: names(f.actor_kinds.iter().map(|k| k.as_str()).collect()),
        networks: f.networks.iter().map(|n| n.text()).collect(),
    }
}

fn now_or(t: i64) -> i64 {
    if t == 0 {
        crate::clock::now_unix_nanos()
    } else {
        t
    }
}

impl AnalysisApi {
    pub fn new(
        analyst: Arc<Analyst>,
        store: super::StoreSlot,
        raft: Raft,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        AnalysisApi {
            analyst,
            store,
            raft,
            stopping,
        }
    }

    /// The entries with their leaves and inclusion proofs against the latest
    /// majority-signed checkpoint (entries it does not cover yet get none).
    async fn prove(
        &self,
        entries: Vec<IndexedEntry>,
    ) -> Result<(Option<pb::Checkpoint>, Vec<pb::ProvenEntry>), Status> {
        let store = self.store.get()?;
        let quorum = crate::raft::voter_quorum(&self.raft);
        tokio::task::spawn_blocking(move || {
            let cp: Option<StoredCheckpoint> = store
                .latest_signed_checkpoint(quorum)
                .map_err(ApiError::from)?;
            let size = cp.as_ref().map_or(0, |c| c.body.size);
            let mut out = Vec::with_capacity(entries.len());
            for e in entries {
                let (leaf, proof) = if e.index < size {
                    let (leaf, proof) = proven_leaf(&store, e.index, size)?;
                    (leaf, Some(proof))
                } else {
                    let (rows, _) = store
                        .entries(e.index, e.index + 1)
                        .map_err(ApiError::from)?;
                    let Some((_, leaf)) = rows.into_iter().next() else {
                        return Err(ApiError::LeafMissing { index: e.index });
                    };
                    (leaf, None)
                };
                out.push(pb::ProvenEntry {
                    entry: Some(entry_to_proto(e.index, leaf)?),
                    category: e.category.as_str().to_string(),
                    proof,
                });
            }
            let cp = cp.as_ref().map(checkpoint_to_proto);
            Ok((cp, out))
        })
        .await
        .map_err(ApiError::from)?
        .map_err(Status::from)
    }
}

type FlagStream = Pin<Box<dyn Stream<Item = Result<pb::AnomalyFlag, Status>> + Send>>;

fn categorized(index: u64, c: Categorized) -> pb::CategoryResult {
    pb::CategoryResult {
        index,
        category: c.category.as_str().to_string(),
        decided_by: decided_text(&c.decided),
        scores: c
            .scores
            .iter()
            .map(|(l, s)| pb::LabelScore {
                label: l.as_str().to_string(),
                score: *s,
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl Analysis for AnalysisApi {
    async fn ask(&self, req: Request<pb::AskRequest>) -> Result<Response<pb::AskResponse>, Status> {
        let req = req.into_inner();
        let max = match req.max_entries {
            0 => ANSWER_ENTRIES_DEFAULT,
            n if n > ANSWER_ENTRIES_MAX => {
                return Err(ApiError::AnswerEntries {
                    count: n,
                    max: ANSWER_ENTRIES_MAX,
                }
                .into())
            }
            n => n,
        };
        let answer = self
            .analyst
            .ask(&req.question, now_or(req.now_unix_nanos), max as usize)
            .await
            .map_err(Status::from)?;
        let (checkpoint, entries) = self.prove(answer.entries.clone()).await?;
        let f = &answer.filter;
        let query = structured_query(f, &answer);
        Ok(Response::new(pb::AskResponse {
            mapped: answer.mapped,
            answer: answer.sentence,
            query: Some(query),
            total_matches: answer.total,
            entries,
            checkpoint,
            slots: answer
                .slots
                .iter()
                .map(|s| pb::SlotChoice {
                    slot: s.field.as_str().to_string(),
                    value: s.values.first().cloned().unwrap_or_default(),
                    values: s.values.clone(),
                    chosen_by: s.chosen_by.to_string(),
                    candidates: s.candidates.clone(),
                })
                .collect(),
            flags: answer.flags.iter().map(flag_to_proto).collect(),
            note: answer.note,
        }))
    }

    async fn summarize(
        &self,
        req: Request<pb::SummarizeRequest>,
    ) -> Result<Response<pb::SummarizeResponse>, Status> {
        let req = req.into_inner();
        let given = [
            !req.window.trim().is_empty(),
            req.from_unix_nanos != 0 || req.to_unix_nanos != 0,
            req.last != 0,
        ];
        let window = match given {
            [true, false, false] => Window::Expression(req.window.trim().to_string()),
            [false, true, false] => Window::Range(
                req.from_unix_nanos,
                if req.to_unix_nanos == 0 {
                    i64::MAX
                } else {
                    req.to_unix_nanos
                },
            ),
            [false, false, true] => Window::Last(req.last as usize),
            [false, false, false] => return Err(ApiError::NoWindow.into()),
            _ => return Err(ApiError::WindowsConflict.into()),
        };
        let s = self
            .analyst
            .summarize(window, now_or(req.now_unix_nanos))
            .await
            .map_err(Status::from)?;
        let f = &s.facts;
        Ok(Response::new(pb::SummarizeResponse {
            facts: Some(pb::SummaryFacts {
                window: f.window.clone(),
                entries: f.entries,
                by_category: counts(&f.by_category),
                by_outcome: counts(&f.by_outcome),
                top_actors: counts(&f.top_actors),
                top_resources: counts(&f.top_resources),
                failures: f.failures,
                failing_actors: counts(&f.failing_actors),
                notable: f
                    .notable
                    .iter()
                    .map(|n| {
                        format!(
                            "#{} {} did {} on {} ({}, {})",
                            n.index,
                            n.actor,
                            n.action,
                            n.resource,
                            n.category,
                            n.outcome.as_str()
                        )
                    })
                    .collect(),
                first_index: f.first_index.unwrap_or(0),
                last_index: f.last_index.unwrap_or(0),
                habits: f
                    .habits
                    .iter()
                    .map(|h| {
                        format!(
                            "{}: {} of {} were {} on {}",
                            h.actor, h.count, h.entries, h.action, h.resource
                        )
                    })
                    .collect(),
            }),
            summary: s.text,
            prose_source: if s.from_model {
                "model_chosen"
            } else {
                "template"
            }
            .into(),
            rejected_reason: s.rejected_reason.unwrap_or_default(),
            flags: s.flags.iter().map(flag_to_proto).collect(),
        }))
    }

    type AnomaliesStream = FlagStream;

    async fn anomalies(
        &self,
        req: Request<pb::AnomaliesRequest>,
    ) -> Result<Response<Self::AnomaliesStream>, Status> {
        let req = req.into_inner();
        let (from, to) = if !req.window.trim().is_empty() {
            if req.from_unix_nanos != 0 || req.to_unix_nanos != 0 {
                return Err(ApiError::WindowAndRange.into());
            }
            let now_nanos = now_or(req.now_unix_nanos);
            let now = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_nanos))
                .map_err(|e| ApiError::BadNow {
                    value: now_nanos,
                    reason: e.to_string(),
                })?;
            let m = crate::analysis::when::find_time_range(req.window.trim(), now)
                .map_err(|e| ApiError::BadWindow(e.to_string()))?
                .ok_or_else(|| ApiError::UnknownWindow(req.window.trim().to_string()))?;
            (Some(m.range.from_unix_nanos), Some(m.range.to_unix_nanos))
        } else {
            (
                (req.from_unix_nanos != 0).then_some(req.from_unix_nanos),
                (req.to_unix_nanos != 0).then_some(req.to_unix_nanos),
            )
        };
        if let (Some(a), Some(b)) = (from, to) {
            if b <= a {
                return Err(ApiError::WindowBackwards { from: a, to: b }.into());
            }
        }
        if !(0.0..=1.0).contains(&req.min_score) {
            return Err(ApiError::MinScore(req.min_score).into());
        }
        // Subscribe before listing, so no flag falls between the two.
        let mut live = self.analyst.subscribe_flags();
        let (existing, cursor) = self.analyst.flags_and_cursor(from, to, req.min_score);
        let follow = req.follow;
        let min_score = req.min_score;
        let mut stopping = self.stopping.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(crate::limits::FLAGS_STREAM_BUFFER);
        tokio::spawn(async move {
            for f in &existing {
                if tx.send(Ok(flag_to_proto(f))).await.is_err() {
                    return;
                }
            }
            if !follow {
                return;
            }
            loop {
                tokio::select! {
                    got = live.recv() => match got {
                        Ok(f) => {
                            // Below the cursor: a change made before the
                            // list was taken, which the list showed (or
                            // filtered out); a later change of a listed
                            // incident is sent again, as it now is.
                            if f.seq < cursor || f.score < min_score || !f.within(from, to) {
                                continue;
                            }
                            if tx.send(Ok(flag_to_proto(&f))).await.is_err() { return; }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            let _ = tx.send(Err(ApiError::FlagsLagged(n).into())).await;
                            return;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = tx.closed() => return,
                    _ = stopping.changed() => {
                        let _ = tx.send(Err(ApiError::Stopping.into())).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn categorize(
        &self,
        req: Request<pb::CategorizeRequest>,
    ) -> Result<Response<pb::CategorizeResponse>, Status> {
        let req = req.into_inner();
        let n = req.indices.len() + req.events.len();
        if n == 0 {
            return Err(ApiError::NothingToCategorise.into());
        }
        if n > CATEGORIZE_EVENTS_MAX {
            return Err(ApiError::TooManyToCategorise {
                count: n,
                max: CATEGORIZE_EVENTS_MAX,
            }
            .into());
        }
        let mut results = Vec::with_capacity(n);
        for index in req.indices {
            let c = self
                .analyst
                .categorize_index(index)
                .await
                .map_err(Status::from)?
                .ok_or_else(|| ApiError::NotIndexed {
                    index,
                    indexed: self.analyst.indexed(),
                })?;
            results.push(categorized(index, c));
        }
        for (i, e) in req.events.into_iter().enumerate() {
            let event = event_from_proto(i, e)?;
            let c = self
                .analyst
                .categorize_event(&event)
                .await
                .map_err(Status::from)?;
            results.push(categorized(i as u64, c));
        }
        Ok(Response::new(pb::CategorizeResponse { results }))
    }
}
