//! [`Analyst::ask`]: a question read by code into a query, its entity
//! slots filled by code or (among the candidates code offers) the model,
//! and the answer sentence written by code from what the index holds.

use std::collections::BTreeSet;

use super::{now_at, range_text, rfc3339, Analyst, AnalystError, StoredFlag};
use crate::analysis::index::{Field, Filter, IndexedEntry};
use crate::analysis::mask::MaskTable;
use crate::analysis::model::Priority;
use crate::analysis::question::{self, Draft, Intent, QuestionError, SlotCandidates};
use crate::analysis::when;

/// How one slot of a question was filled.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotChoice {
    pub field: Field,
    /// Empty when none was chosen; several when the question named several.
    pub values: Vec<String>,
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

/// What a question was read as, before anything is searched.
struct Reading {
    intent: Intent,
    filter: Filter,
    time_text: Option<String>,
    slots: Vec<SlotChoice>,
    /// What the caller should know about how the question was read.
    notes: Vec<String>,
}

/// What a search found.
struct Found {
    sentence: String,
    total: u64,
    /// The newest matching entries (at most the requested number), oldest first.
    entries: Vec<IndexedEntry>,
    flags: Vec<StoredFlag>,
}

impl Analyst {
    /// Chooses a value for one slot: code when one candidate clearly wins,
    /// else the model among the candidates and "none".
    async fn choose(
        &self,
        question: &str,
        field: Field,
        slot: &SlotCandidates,
        notes: &mut Vec<String>,
    ) -> Result<SlotChoice, AnalystError> {
        let candidates: Vec<String> = slot.candidates.iter().map(|c| c.value.clone()).collect();
        let best_score = slot.candidates.first().map_or(0.0, |c| c.score);
        if best_score < MIN_SLOT_SCORE {
            return Ok(SlotChoice {
                field,
                values: Vec::new(),
                chosen_by: "none",
                candidates,
            });
        }
        let named = slot.written_out();
        if !named.is_empty() {
            return Ok(SlotChoice {
                field,
                values: named.iter().map(|c| c.value.clone()).collect(),
                chosen_by: "code",
                candidates,
            });
        }
        if let Some(w) = slot.clear_winner() {
            return Ok(SlotChoice {
                field,
                values: vec![w.value.clone()],
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
                    values: Vec::new(),
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
            values: candidates.get(best).cloned().into_iter().collect(),
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
        let mut notes = Vec::new();
        // "the last hour of the log": relative to the log's own latest
        // event, not to the clock (an investigation of an old capture).
        let now_unix_nanos = match log_relative(q).then(|| self.latest_event_time()).flatten() {
            Some(latest) => {
                notes.push(format!(
                    "times are relative to the log's latest event, {}",
                    rfc3339(latest)
                ));
                latest.saturating_add(1)
            }
            None => now_unix_nanos,
        };
        let time = time_in_question(q, now_unix_nanos)?;
        let Draft {
            intent,
            mut filter,
            time_text,
            slots: drafted,
            unmatched,
        } = question::draft(q, time, &self.read().index);
        let slots = self
            .fill_slots(q, &drafted, &mut filter, &mut notes)
            .await?;
        let mut reading = Reading {
            intent,
            filter,
            time_text,
            slots,
            notes,
        };
        if let Some(sentence) = reading.why_unmapped(&unmatched) {
            return Ok(reading.unmapped(sentence));
        }
        let scope = describe_filter(&reading.filter, reading.time_text.as_deref());
        let found = if reading.intent == Intent::Anomalies {
            self.search_flags(&reading.filter, &scope, max_entries)
        } else {
            self.search_entries(reading.intent, &reading.filter, &scope, max_entries)
        };
        Ok(reading.answer(found))
    }

    /// Fills each drafted slot ([`Analyst::choose`]) and narrows `filter` to
    /// every value chosen.
    async fn fill_slots(
        &self,
        question: &str,
        drafted: &[(Field, SlotCandidates)],
        filter: &mut Filter,
        notes: &mut Vec<String>,
    ) -> Result<Vec<SlotChoice>, AnalystError> {
        let mut slots = Vec::new();
        for (field, cands) in drafted {
            let choice = self.choose(question, *field, cands, notes).await?;
            let values = choice.values.clone();
            match field {
                Field::Actor => filter.actors = values,
                Field::Resource => filter.resources = values,
                Field::Action => {
                    // A named action says what it does; the verb adds nothing.
                    if !values.is_empty() {
                        filter.verbs.clear();
                    }
                    filter.actions = values;
                }
            }
            slots.push(choice);
        }
        Ok(slots)
    }

    /// The event time of the latest entry the index holds.
    fn latest_event_time(&self) -> Option<i64> {
        self.read().index.last(1).next().map(|e| e.time_unix_nanos)
    }

    /// The flags raised in the filter's time (by its actor, if it names
    /// one), the entries they cite, and a sentence giving the latest three.
    fn search_flags(&self, filter: &Filter, scope: &str, max_entries: usize) -> Found {
        let flags: Vec<StoredFlag> = self
            .flags(filter.from_unix_nanos, filter.to_unix_nanos, 0.0)
            .into_iter()
            .filter(|f| filter.actors.is_empty() || filter.actors.contains(&f.actor))
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
        Found {
            sentence,
            total: cited.len() as u64,
            entries,
            flags,
        }
    }

    /// The entries the filter selects: how many, the newest `max_entries`,
    /// and the sentence by code.
    fn search_entries(
        &self,
        intent: Intent,
        filter: &Filter,
        scope: &str,
        max_entries: usize,
    ) -> Found {
        let state = self.read();
        let matching: Vec<&IndexedEntry> = state.index.select(filter).collect();
        let total = matching.len() as u64;
        let entries: Vec<IndexedEntry> = matching
            .iter()
            .skip(matching.len().saturating_sub(max_entries))
            .map(|e| (*e).clone())
            .collect();
        let sentence = sentence(intent, &matching, scope);
        Found {
            sentence,
            total,
            entries,
            flags: Vec::new(),
        }
    }
}

impl Reading {
    /// Why nothing should be searched, if so: a word of the question names
    /// nothing the log or the vocabulary knows ("payroll" in a log with no
    /// payroll), or the question names nothing to search by. A question
    /// that maps and matches nothing is answered "none", not refused.
    fn why_unmapped(&mut self, unmatched: &[String]) -> Option<String> {
        if !unmatched.is_empty() {
            return Some(format!(
                "I could not map this question onto the log: {} name{} no actor, resource, action, service, client or kind of actor in the log. Nothing was searched.",
                unmatched
                    .iter()
                    .map(|w| format!("\"{w}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
                if unmatched.len() == 1 { "s" } else { "" }
            ));
        }
        if self.filter.is_empty()
            && self.intent != Intent::Anomalies
            && self.intent != Intent::Count
        {
            return Some("I could not map this question onto the log: it names no time, actor, resource, action, category or outcome that I recognise. Try e.g. \"who accessed <resource> in the last 24 hours?\".".to_string());
        }
        None
    }

    /// The answer when nothing was searched: `sentence` says why.
    fn unmapped(self, sentence: String) -> Answer {
        Answer {
            mapped: false,
            sentence,
            intent: self.intent,
            filter: self.filter,
            time_text: self.time_text,
            total: 0,
            entries: Vec::new(),
            slots: self.slots,
            flags: Vec::new(),
            note: self.notes.join("; "),
        }
    }

    /// The answer with what the search found.
    fn answer(self, found: Found) -> Answer {
        Answer {
            mapped: true,
            sentence: found.sentence,
            intent: self.intent,
            filter: self.filter,
            time_text: self.time_text,
            total: found.total,
            entries: found.entries,
            slots: self.slots,
            flags: found.flags,
            note: self.notes.join("; "),
        }
    }
}

/// Whether the question counts time back from the log's own end.
fn log_relative(question: &str) -> bool {
    let q = question.to_lowercase();
    [
        "of the log",
        "in the log's",
        "the log's last",
        "the log's final",
        "end of the log",
        "log time",
        "the latest entry",
        "the last entry",
    ]
    .iter()
    .any(|p| q.contains(p))
}

/// The range the question's time expression names, as of `now_unix_nanos`,
/// with its words; `None` when it has none.
fn time_in_question(
    question: &str,
    now_unix_nanos: i64,
) -> Result<Option<(i64, i64, String)>, AnalystError> {
    let now = now_at(now_unix_nanos)?;
    let time = when::find_time_range(question, now)
        .map_err(|e| AnalystError::Question(QuestionError::Time(e.to_string())))?
        .map(|m| (m.range.from_unix_nanos, m.range.to_unix_nanos, m.text));
    Ok(time)
}

/// Below this match score a slot is not filled at all: one shared common
/// word is not a reference to a value.
const MIN_SLOT_SCORE: f64 = 0.5;

/// Alternatives of one condition in words: "a or b or c".
fn either<S: AsRef<str>>(values: impl Iterator<Item = S>) -> String {
    values
        .map(|v| v.as_ref().to_string())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The scope of a query in words, e.g. `on resource "x" in the last 24 hours (…)`.
fn describe_filter(f: &Filter, time_text: Option<&str>) -> String {
    let quoted = |values: &[String]| either(values.iter().map(|v| format!("\"{v}\"")));
    let mut parts = Vec::new();
    if let Some(c) = f.category {
        parts.push(format!("of category {c}"));
    }
    if !f.outcomes.is_empty() {
        parts.push(format!(
            "with outcome {}",
            either(f.outcomes.iter().map(|o| o.as_str()))
        ));
    }
    if !f.actor_kinds.is_empty() {
        parts.push(format!(
            "by a {}",
            either(f.actor_kinds.iter().map(|k| k.as_str()))
        ));
    }
    if !f.actors.is_empty() {
        parts.push(format!("by actor {}", quoted(&f.actors)));
    }
    if !f.actions.is_empty() {
        parts.push(format!("with action {}", quoted(&f.actions)));
    }
    if !f.verbs.is_empty() {
        parts.push(format!(
            "whose action is a {}",
            either(f.verbs.iter().map(|v| v.as_str()))
        ));
    }
    if !f.services.is_empty() {
        parts.push(format!("in service {}", f.services.join(" or ")));
    }
    if !f.resources.is_empty() {
        parts.push(format!("on resource {}", quoted(&f.resources)));
    }
    if !f.clients.is_empty() {
        parts.push(format!(
            "from a {} client",
            either(f.clients.iter().map(|c| c.as_str()))
        ));
    }
    if !f.networks.is_empty() {
        parts.push(format!(
            "from network {}",
            either(f.networks.iter().map(|n| n.text()))
        ));
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
        return format!("None: no entries match {scope}.");
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
    use crate::analysis::analyst::follower::unreadable_event;
    use crate::analysis::category::Category;
    use crate::analysis::index::{Decided, Index};

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
        assert_eq!(
            sentence(Intent::List, &[], "x"),
            "None: no entries match x."
        );
    }
}
