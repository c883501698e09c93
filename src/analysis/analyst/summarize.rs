//! [`Analyst::summarize`]: the facts of a window by code, then the model's
//! paragraph about them if it passes the check against the facts, else the
//! template paragraph and why.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{now_at, range_text, Analyst, AnalystError, StoredFlag};
use crate::analysis::index::{Field, Filter, IndexedEntry};
use crate::analysis::mask::MaskTable;
use crate::analysis::model::{Model, ModelError, Priority};
use crate::analysis::summary::{self, Facts, FlagFact};
use crate::analysis::when;
use crate::limits::SUMMARY_TOKENS_MAX;

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
    /// Summarises a window: facts by code, then the model's paragraph if it
    /// passes the check against the facts.
    pub async fn summarize(
        &self,
        window: Window,
        now_unix_nanos: i64,
    ) -> Result<Summary, AnalystError> {
        let (label, filter, last) = window_scope(window, now_unix_nanos)?;
        let (facts, known, flags) = self.window_facts(label, &filter, last);
        let template = summary::template(&facts);
        if facts.entries == 0 {
            return Ok(template_summary(
                facts,
                template,
                "the window has no entries".into(),
                flags,
            ));
        }
        let lines = summary::fact_lines(&facts);
        let model = match self.model() {
            Ok(m) => Arc::clone(m),
            Err(e) => return Ok(template_summary(facts, template, e.to_string(), flags)),
        };
        let prose = match model_paragraph(&model, &lines).await {
            Ok(p) => p,
            Err(e) => {
                let reason = format!("the model failed: {e}");
                return Ok(template_summary(facts, template, reason, flags));
            }
        };
        Ok(match summary::prose_problem(&prose, &lines, &known) {
            None => Summary {
                facts,
                text: prose,
                from_model: true,
                rejected_reason: None,
                flags,
            },
            Some(reason) => template_summary(facts, template, reason, flags),
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
    ) -> (Facts, BTreeSet<String>, Vec<StoredFlag>) {
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
        let mut known = BTreeSet::new();
        for field in Field::ALL {
            known.extend(state.index.values(field).map(|(v, _)| v.to_string()));
        }
        (facts, known, flags)
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

/// The model's paragraph on the fact lines: masked on the way in, cut to
/// its first complete sentences and unmasked on the way out.
async fn model_paragraph(model: &Arc<Model>, lines: &str) -> Result<String, ModelError> {
    let mut table = MaskTable::new();
    let masked = table.mask(lines);
    let prompt = format!(
        "Facts about activity in an audit log:\n{masked}\nA two-sentence summary of these facts for a security analyst:\n"
    );
    let prose = model
        .generate(
            Priority::Interactive,
            prompt,
            SUMMARY_TOKENS_MAX,
            vec!["\n\n".into()],
        )
        .await?;
    // The first sentences only: the model runs on past the two it
    // was asked for, and the token limit cuts the rest mid-sentence.
    Ok(table.unmask(summary::complete_sentences(
        &prose,
        summary::PROSE_SENTENCES_KEPT,
    )))
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
