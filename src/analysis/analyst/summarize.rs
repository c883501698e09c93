//! [`Analyst::summarize`]: the facts of a window by code, sentences about
//! them by code, and the model's choice of which to state (see
//! [`crate::analysis::summary`]); the template paragraph, and why, when the
//! model cannot choose.

use std::sync::Arc;

use super::{now_at, range_text, Analyst, AnalystError, StoredFlag};
use crate::analysis::index::{Filter, IndexedEntry};
use crate::analysis::mask::MaskTable;
use crate::analysis::model::{Model, ModelError, Priority};
use crate::analysis::summary::{self, Facts, FlagFact};
use crate::analysis::when;

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

impl Analyst {
    /// Summarises a window: facts and candidate sentences by code, then
    /// the sentences the model picks.
    pub async fn summarize(
        &self,
        window: Window,
        now_unix_nanos: i64,
    ) -> Result<Summary, AnalystError> {
        let (label, filter, last) = window_scope(window, now_unix_nanos)?;
        let (facts, flags) = self.window_facts(label, &filter, last);
        let template = summary::template(&facts);
        if facts.entries == 0 {
            return Ok(template_summary(
                facts,
                template,
                "the window has no entries".into(),
                flags,
            ));
        }
        let candidates = summary::sentences(&facts);
        let model = match self.model() {
            Ok(m) => Arc::clone(m),
            Err(e) => return Ok(template_summary(facts, template, e.to_string(), flags)),
        };
        if candidates.len() <= summary::CHOSEN_SENTENCES {
            let reason = format!(
                "{} fact sentence{} to state, nothing to choose among",
                candidates.len(),
                if candidates.len() == 1 { "" } else { "s" }
            );
            let all: Vec<usize> = (0..candidates.len()).collect();
            let text = summary::chosen(&facts, &candidates, &all);
            return Ok(template_summary(facts, text, reason, flags));
        }
        let picked = match model_choice(&model, &candidates).await {
            Ok(p) => p,
            Err(e) => {
                let reason = format!("the model failed: {e}");
                return Ok(template_summary(facts, template, reason, flags));
            }
        };
        let text = summary::chosen(&facts, &candidates, &picked);
        Ok(Summary {
            facts,
            text,
            from_model: true,
            rejected_reason: None,
            flags,
        })
    }

    /// The facts of the window's entries, the values the index knows (the
    /// names the prose may use), and the flags citing an entry of the
    /// window.
    fn window_facts(
        &self,
        label: String,
        filter: &Filter,
        last: Option<usize>,
    ) -> (Facts, Vec<StoredFlag>) {
        let state = self.read();
        let entries: Vec<&IndexedEntry> = match last {
            Some(n) => state.index.last(n).collect(),
            None => state.index.select(filter).collect(),
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
        (facts, flags)
    }
}

/// Which entries `window` covers: its label for the facts, and the filter
/// that selects them or the number of latest entries to take.
fn window_scope(
    window: Window,
    now_unix_nanos: i64,
) -> Result<(String, Filter, Option<usize>), AnalystError> {
    Ok(match window {
        Window::Expression(text) => {
            let now = now_at(now_unix_nanos)?;
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
                return Err(AnalystError::Window(
                    "the window of the last 0 entries is empty by definition; ask for at least 1"
                        .into(),
                ));
            }
            (format!("the last {n} entries"), Filter::default(), Some(n))
        }
    })
}

/// Which candidate sentences the model would have an analyst read first:
/// each sentence is shown alone (masked) and scored by how much more the
/// model expects "yes" than "no" to "does a security analyst need to know
/// this?"; the [`summary::CHOSEN_SENTENCES`] best, best first. Alone, so
/// that the choice rests on what a sentence says and not on where it sits
/// in a list: asked to pick a number from a numbered list, both small
/// models tried picked by position (the first, the second, and one of the
/// last), whatever the sentences were.
async fn model_choice(model: &Arc<Model>, candidates: &[String]) -> Result<Vec<usize>, ModelError> {
    let mut importance = Vec::with_capacity(candidates.len());
    for c in candidates {
        let mut table = MaskTable::new();
        let prompt = format!(
            "Audit log fact: {}\nDoes a security analyst need to know this fact? Answer yes or no.\nAnswer:",
            table.mask(c)
        );
        let scores = model
            .score(
                Priority::Interactive,
                prompt,
                vec![" yes".into(), " no".into()],
            )
            .await?;
        importance.push(scores[0] - scores[1]);
    }
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|a, b| importance[*b].total_cmp(&importance[*a]).then(a.cmp(b)));
    order.truncate(summary::CHOSEN_SENTENCES);
    Ok(order)
}

/// The summary that falls back on the template paragraph, and why.
fn template_summary(
    facts: Facts,
    template: String,
    reason: String,
    flags: Vec<StoredFlag>,
) -> Summary {
    Summary {
        facts,
        text: template,
        from_model: false,
        rejected_reason: Some(reason),
        flags,
    }
}
