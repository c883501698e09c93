//! Turning a plain question into a structured query, by code first.
//!
//! Times come from [`super::when`]; categories, outcomes and the kind of
//! answer wanted from fixed word tables; actors, resources and actions only
//! from values that exist in the index. For each of those three slots code
//! ranks the index's values by how well their words match the question's;
//! when one value clearly wins, code picks it, and when several tie the
//! model chooses among them (or "none") by scoring — it can never invent a
//! value. Words the question uses that match nothing are reported, so a
//! question about something the log does not hold says so instead of
//! silently answering about everything.

use std::collections::BTreeSet;

use serde::Serialize;

use super::category::Category;
use super::index::{Field, Filter, Index};
use crate::ledger::event::Outcome;
use crate::limits::{QUESTION_BYTES_MAX, SLOT_CANDIDATES_MAX};

/// What kind of answer the question wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// "Who ...": the actors of the matching entries.
    Who,
    /// "How many ...": a count.
    Count,
    /// "When ...": the times.
    When,
    /// "Anything unusual ...": the anomaly flags in the window.
    Anomalies,
    /// Anything else: the matching entries.
    List,
}

impl Intent {
    pub fn as_str(&self) -> &'static str {
        match self {
            Intent::Who => "who",
            Intent::Count => "count",
            Intent::When => "when",
            Intent::Anomalies => "anomalies",
            Intent::List => "list",
        }
    }
}

/// Bad questions; surfaced as `INVALID_ARGUMENT`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QuestionError {
    #[error("the question is empty")]
    Empty,
    #[error("the question is {len} bytes, more than the maximum of {QUESTION_BYTES_MAX}")]
    TooLong { len: usize },
    #[error("the question contains a control character at byte {at}")]
    Control { at: usize },
    #[error("{0}")]
    Time(String),
}

/// Checks the question before anything else looks at it.
pub fn validate(question: &str) -> Result<&str, QuestionError> {
    if question.len() > QUESTION_BYTES_MAX {
        return Err(QuestionError::TooLong {
            len: question.len(),
        });
    }
    if let Some((at, _)) = question
        .char_indices()
        .find(|(_, c)| c.is_control() && *c != '\n' && *c != '\t')
    {
        return Err(QuestionError::Control { at });
    }
    let q = question.trim();
    if q.is_empty() {
        return Err(QuestionError::Empty);
    }
    Ok(q)
}

/// One value offered for a slot, with its word-match score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    pub value: String,
    pub score: f64,
    pub entries: u64,
}

/// The candidates for one slot, best first.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SlotCandidates {
    pub candidates: Vec<Candidate>,
}

impl SlotCandidates {
    /// The value code can pick alone: the best candidate when it beats the
    /// runner-up clearly, or when it is written out whole in the question.
    pub fn clear_winner(&self) -> Option<&Candidate> {
        let best = self.candidates.first()?;
        match self.candidates.get(1) {
            None => Some(best),
            Some(second) if best.score >= FULL_MATCH_SCORE && second.score < FULL_MATCH_SCORE => {
                Some(best)
            }
            Some(second) if best.score - second.score >= CLEAR_MARGIN => Some(best),
            _ => None,
        }
    }
}

/// Score of a value whose every significant word appears in the question.
const FULL_MATCH_SCORE: f64 = 1.0;
/// Lead over the runner-up that lets code decide without the model.
const CLEAR_MARGIN: f64 = 0.34;

/// What code read from the question before any model call.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Draft {
    pub intent: Intent,
    pub filter: Filter,
    pub time_text: Option<String>,
    /// Candidates per entity slot, only for slots with any.
    pub slots: Vec<(Field, SlotCandidates)>,
    /// Significant words of the question that matched nothing.
    pub unmatched: Vec<String>,
}

/// Words that carry no entity: question words, glue, and the generic nouns
/// of audit questions.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "access",
    "accessed",
    "accesses",
    "accessing",
    "activity",
    "activities",
    "actor",
    "actors",
    "after",
    "all",
    "an",
    "and",
    "any",
    "anyone",
    "anything",
    "are",
    "as",
    "at",
    "be",
    "been",
    "between",
    "by",
    "can",
    "changes",
    "change",
    "changed",
    "data",
    "did",
    "do",
    "does",
    "during",
    "entries",
    "entry",
    "event",
    "events",
    "ever",
    "every",
    "for",
    "from",
    "give",
    "has",
    "have",
    "how",
    "i",
    "in",
    "is",
    "it",
    "its",
    "last",
    "list",
    "log",
    "logs",
    "made",
    "many",
    "me",
    "most",
    "my",
    "of",
    "on",
    "or",
    "our",
    "over",
    "past",
    "please",
    "recent",
    "recently",
    "resource",
    "resources",
    "see",
    "show",
    "since",
    "so",
    "some",
    "someone",
    "summarise",
    "summarize",
    "tell",
    "that",
    "the",
    "their",
    "them",
    "there",
    "these",
    "this",
    "those",
    "times",
    "to",
    "touch",
    "touched",
    "up",
    "us",
    "use",
    "used",
    "user",
    "users",
    "via",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "who",
    "whom",
    "whose",
    "why",
    "with",
    "within",
    "happened",
    "occur",
    "occurred",
    "performed",
    "done",
    "did",
    "action",
    "actions",
    "until",
    "before",
    "ago",
    "count",
    "number",
    "total",
    "anybody",
    "somebody",
    "everyone",
    "name",
    "names",
    "account",
    "accounts",
    // How a question refers to entries in general, not to any value.
    "request",
    "requests",
    "call",
    "calls",
    "called",
    "api",
    "send",
    "sent",
    "make",
    "operation",
    "operations",
];

/// Categories named by phrases; longest phrases first so "failed login"
/// wins over "login".
const CATEGORY_PHRASES: &[(&str, Category)] = &[
    ("failed login", Category::FailedLogin),
    ("failed logins", Category::FailedLogin),
    ("failed sign-in", Category::FailedLogin),
    ("failed sign in", Category::FailedLogin),
    ("failed signin", Category::FailedLogin),
    ("login failure", Category::FailedLogin),
    ("unsuccessful login", Category::FailedLogin),
    ("bad password", Category::FailedLogin),
    ("successful login", Category::AuthSuccess),
    ("logged in", Category::AuthSuccess),
    ("signed in", Category::AuthSuccess),
    ("log in", Category::AuthSuccess),
    ("logins", Category::AuthSuccess),
    ("login", Category::AuthSuccess),
    ("sign-ins", Category::AuthSuccess),
    ("privilege change", Category::PrivilegeChange),
    ("privilege", Category::PrivilegeChange),
    ("privileges", Category::PrivilegeChange),
    ("permission", Category::PrivilegeChange),
    ("permissions", Category::PrivilegeChange),
    ("escalation", Category::PrivilegeChange),
    ("admin change", Category::AdminChange),
    ("admin changes", Category::AdminChange),
    ("administrative", Category::AdminChange),
    ("configuration", Category::ConfigChange),
    ("config", Category::ConfigChange),
    ("settings", Category::ConfigChange),
    ("reads", Category::DataAccess),
    ("read", Category::DataAccess),
    ("exported", Category::DataExport),
    ("export", Category::DataExport),
    ("exports", Category::DataExport),
    ("exfiltration", Category::DataExport),
    ("downloaded", Category::DataExport),
    ("deleted", Category::DataDeletion),
    ("delete", Category::DataDeletion),
    ("deletions", Category::DataDeletion),
    ("deletion", Category::DataDeletion),
    ("removed", Category::DataDeletion),
    ("security alert", Category::SecurityAlert),
    ("security alerts", Category::SecurityAlert),
    ("alerts", Category::SecurityAlert),
];

/// Outcomes named by words.
const OUTCOME_WORDS: &[(&str, Outcome)] = &[
    ("denied", Outcome::Denied),
    ("refused", Outcome::Denied),
    ("forbidden", Outcome::Denied),
    ("unauthorized", Outcome::Denied),
    ("failed", Outcome::Failure),
    ("failures", Outcome::Failure),
    ("failure", Outcome::Failure),
    ("errors", Outcome::Failure),
    ("succeeded", Outcome::Success),
    ("successful", Outcome::Success),
    ("successfully", Outcome::Success),
];

/// Words that mark the anomaly intent.
const ANOMALY_WORDS: &[&str] = &[
    "unusual",
    "anomaly",
    "anomalies",
    "anomalous",
    "suspicious",
    "strange",
    "odd",
    "weird",
    "abnormal",
];

/// Lowercase words of a text: split on anything not alphanumeric, and
/// camelCase split too, so `GetObject` gives `get`, `object`.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && prev_lower && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = c.is_lowercase() || c.is_numeric();
            cur.extend(c.to_lowercase());
        } else {
            prev_lower = false;
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A crude stem so "payments"/"payment" and "deleted"/"delete" meet.
/// A crude suffix stripper, enough to meet a value's word halfway:
/// "repositories" and "repository", "created" and "create", "namespaces"
/// and "namespace" each end up the same. A final `e` goes too, so that the
/// `-ed`/`-es` forms meet the base form.
fn stem(word: &str) -> String {
    let mut w = word.to_string();
    if w.len() > 4 && w.ends_with("ies") {
        w.truncate(w.len() - 3);
        w.push('y');
        return w;
    }
    for suffix in ["ing", "ed", "es", "s"] {
        if w.len() > suffix.len() + 2 && w.ends_with(suffix) {
            w.truncate(w.len() - suffix.len());
            break;
        }
    }
    if w.len() > 3 && w.ends_with('e') {
        w.pop();
    }
    w
}

/// Question words, any form, and the value words they also stand for
/// (`db` in a resource name means database).
const SYNONYMS: &[(&[&str], &[&str])] = &[
    (
        &["database", "db"],
        &["db", "database", "rds", "postgres", "mysql"],
    ),
    (&["bucket"], &["bucket", "s3"]),
    (&["secret"], &["secret", "secrets"]),
    (&["cluster"], &["cluster", "k8s"]),
    (&["repository", "repo"], &["repo", "repos", "repository"]),
    (&["role"], &["role", "roles", "clusterrole", "clusterroles"]),
];

/// The value words a stemmed question word also stands for.
fn synonyms(stemmed: &str) -> &'static [&'static str] {
    SYNONYMS
        .iter()
        .find(|(keys, _)| keys.iter().any(|k| stem(k) == stemmed))
        .map_or(&[], |(_, values)| values)
}

/// True when `needle` occurs in `haystack` as a whole name: not inside a
/// longer one (`developer` is not written out in `john.developer`).
fn contains_whole(haystack: &str, needle: &str) -> bool {
    let part_of_name = |c: char| c.is_alphanumeric() || "._-@/:".contains(c);
    haystack.match_indices(needle).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + needle.len()..].chars().next();
        // A name may end a sentence: "... by alice." or "alice?".
        let after_ok = match after {
            None => true,
            Some(c) if ".:".contains(c) => haystack[at + needle.len() + 1..]
                .chars()
                .next()
                .is_none_or(|n| n.is_whitespace()),
            Some(c) => !part_of_name(c),
        };
        before.is_none_or(|c| !part_of_name(c)) && after_ok
    })
}

/// Words in values that are too generic to identify anything alone.
const GENERIC_VALUE_WORDS: &[&str] = &[
    "arn",
    "aws",
    "k8s",
    "com",
    "org",
    "www",
    "http",
    "https",
    "io",
    "default",
    "v1",
    "api",
    "amazonaws",
    "system",
    "iam",
    "user",
    "the",
];

fn significant(word: &str) -> bool {
    word.len() >= 2 && !GENERIC_VALUE_WORDS.contains(&word)
}

/// How well a value matches the question's words: the share of the
/// question's content words the value contains (stemmed, with synonyms when
/// allowed), plus a little for how much of the value those words cover, so
/// a long ARN that holds every word asked about still wins; or
/// [`FULL_MATCH_SCORE`] plus a little when the whole value is written out.
fn match_score(
    value: &str,
    question_lower: &str,
    qstems: &BTreeSet<String>,
    use_synonyms: bool,
) -> f64 {
    let vwords: Vec<String> = words(value)
        .into_iter()
        .filter(|w| significant(w))
        .collect();
    if vwords.is_empty() || qstems.is_empty() {
        return 0.0;
    }
    let vstems: BTreeSet<String> = vwords.iter().map(|w| stem(w)).collect();
    let matches = |q: &String| {
        vstems.contains(q)
            || (use_synonyms && synonyms(q).iter().any(|s| vwords.iter().any(|w| w == s)))
    };
    let covered = qstems.iter().filter(|q| matches(q)).count();
    if covered == 0 {
        return 0.0;
    }
    let value_hits = vwords
        .iter()
        .filter(|w| {
            qstems.contains(&stem(w))
                || (use_synonyms && qstems.iter().any(|q| synonyms(q).contains(&w.as_str())))
        })
        .count();
    let whole = value.len() >= 3 && contains_whole(question_lower, &value.to_lowercase());
    if whole {
        return FULL_MATCH_SCORE + 0.5;
    }
    let question_share = covered as f64 / qstems.len() as f64;
    let value_share = value_hits as f64 / vwords.len() as f64;
    (question_share * 0.9 + value_share * 0.1).min(FULL_MATCH_SCORE - 0.01)
}

/// Reads a question: intent, category, outcome and per-slot candidates.
/// `time` is what [`super::when::find_time_range`] found, as
/// `(from, to, text)`.
pub fn draft(question: &str, time: Option<(i64, i64, String)>, index: &Index) -> Draft {
    let lower = question.to_lowercase();
    let mut qwords = words(question);
    // Time words were consumed by the time parser.
    if let Some((_, _, text)) = &time {
        let tw: BTreeSet<String> = words(text).into_iter().collect();
        qwords.retain(|w| !tw.contains(w));
    }
    let mut filter = Filter::default();
    let mut consumed: BTreeSet<String> = BTreeSet::new();
    if let Some((from, to, _)) = &time {
        filter.from_unix_nanos = Some(*from);
        filter.to_unix_nanos = Some(*to);
    }

    let padded = format!(" {} ", words(&lower).join(" "));
    let mut phrases: Vec<&(&str, Category)> = CATEGORY_PHRASES.iter().collect();
    phrases.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    for (phrase, category) in phrases {
        if padded.contains(&format!(" {phrase} ")) {
            filter.category = Some(*category);
            consumed.extend(words(phrase));
            break;
        }
    }
    // "failed logins" is a category, not also an outcome filter.
    if filter.category != Some(Category::FailedLogin) {
        for (word, outcome) in OUTCOME_WORDS {
            if qwords.iter().any(|w| w == word) {
                filter.outcome = Some(*outcome);
                consumed.insert(word.to_string());
                break;
            }
        }
    }
    let intent = if qwords.iter().any(|w| ANOMALY_WORDS.contains(&w.as_str())) {
        consumed.extend(ANOMALY_WORDS.iter().map(|w| w.to_string()));
        Intent::Anomalies
    } else if lower.starts_with("how many") || lower.contains("how many") {
        Intent::Count
    } else if lower.starts_with("who") || lower.contains(" who ") || lower.contains("which user") {
        Intent::Who
    } else if lower.starts_with("when") {
        Intent::When
    } else {
        Intent::List
    };

    let content: Vec<String> = qwords
        .iter()
        .filter(|w| !STOP_WORDS.contains(&w.as_str()) && !consumed.contains(*w))
        .filter(|w| !w.chars().all(|c| c.is_ascii_digit()))
        .cloned()
        .collect();
    let qstems: BTreeSet<String> = content.iter().map(|w| stem(w)).collect();

    let mut slots = Vec::new();
    let mut matched_stems: BTreeSet<String> = BTreeSet::new();
    if !qstems.is_empty() {
        for field in Field::ALL {
            let mut cands: Vec<Candidate> = index
                .values(field)
                .map(|(v, n)| Candidate {
                    value: v.to_string(),
                    // "database" may mean a resource called payments-db,
                    // but not the action db.read: actions match only on
                    // the words the question uses.
                    score: match_score(v, &lower, &qstems, field != Field::Action),
                    entries: n,
                })
                .filter(|c| c.score > 0.0)
                .collect();
            cands.sort_by(|a, b| {
                b.score
                    .total_cmp(&a.score)
                    .then(b.entries.cmp(&a.entries))
                    .then(a.value.cmp(&b.value))
            });
            cands.truncate(SLOT_CANDIDATES_MAX);
            if cands.is_empty() {
                continue;
            }
            for c in &cands {
                for w in words(&c.value) {
                    matched_stems.insert(stem(&w));
                    for q in &qstems {
                        if synonyms(q).contains(&w.as_str()) {
                            matched_stems.insert(q.clone());
                        }
                    }
                }
            }
            slots.push((field, SlotCandidates { candidates: cands }));
        }
    }
    let unmatched = content
        .iter()
        .filter(|w| !matched_stems.contains(&stem(w)))
        .cloned()
        .collect();
    Draft {
        intent,
        filter,
        time_text: time.map(|(_, _, t)| t),
        slots,
        unmatched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::index::Decided;
    use crate::ledger::event::{Actor, Event};

    fn ev(actor: &str, action: &str, resource: &str) -> Event {
        Event {
            time_unix_nanos: 1,
            actor: Actor {
                id: actor.into(),
                kind: None,
                ip: None,
                user_agent: None,
            },
            action: action.into(),
            resource: resource.into(),
            outcome: Outcome::Success,
            source: "t".into(),
            details: Default::default(),
            idempotency_key: None,
        }
    }

    fn index() -> Index {
        let mut ix = Index::new();
        let rows = [
            (
                "alice@corp.example",
                "db.read",
                "postgres://payments/customers",
            ),
            ("bob@corp.example", "db.read", "postgres://hr/employees"),
            ("frank", "user.login", "console"),
            (
                "ci-bot",
                "s3:GetObject",
                "arn:aws:s3:::payments-exports/2026.csv",
            ),
        ];
        for (i, (a, b, c)) in rows.iter().enumerate() {
            ix.push(i as u64, &ev(a, b, c), Category::Other, Decided::Model);
        }
        ix
    }

    #[test]
    fn word_forms_meet_at_one_stem() {
        for (a, b) in [
            ("created", "create"),
            ("namespaces", "namespace"),
            ("repositories", "repository"),
            ("deleting", "delete"),
            ("roles", "role"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} / {b}");
        }
        assert_ne!(stem("read"), stem("role"));
        assert_eq!(synonyms(&stem("repositories")), synonyms("repo"));
        assert!(synonyms(&stem("databases")).contains(&"rds"));
    }

    #[test]
    fn a_value_is_written_out_only_as_a_whole_name() {
        assert!(contains_whole("who is developer?", "developer"));
        assert!(contains_whole("list everything by alice.", "alice"));
        assert!(!contains_whole(
            "list everything john.developer did",
            "developer"
        ));
        assert!(!contains_whole("who gave alice@acme.io rights", "alice"));
        assert!(!contains_whole("payments-db2 reads", "payments-db"));
    }

    #[test]
    fn inflected_words_and_plural_nouns_find_their_values() {
        let mut ix = Index::new();
        let rows = [
            ("system:anonymous", "k8s.create", "k8s:namespaces/foo"),
            ("octocat", "repo.create", "acme/project_repo"),
            ("octocat", "repo.transfer", "acme/other"),
        ];
        for (i, (a, b, c)) in rows.iter().enumerate() {
            ix.push(i as u64, &ev(a, b, c), Category::Other, Decided::Model);
        }
        let d = draft("Which user created the namespace foo?", None, &ix);
        assert!(d.unmatched.is_empty(), "{:?}", d.unmatched);
        let resource = d.slots.iter().find(|(f, _)| *f == Field::Resource).unwrap();
        assert_eq!(resource.1.candidates[0].value, "k8s:namespaces/foo");
        let d = draft("How many repositories were created?", None, &ix);
        assert!(d.unmatched.is_empty(), "{:?}", d.unmatched);
        let d = draft("How many denied requests did octocat make?", None, &ix);
        assert!(d.unmatched.is_empty(), "{:?}", d.unmatched);
        assert_eq!(d.filter.outcome, Some(Outcome::Denied));
    }

    #[test]
    fn words_split_camel_case_and_punctuation() {
        assert_eq!(
            words("s3:GetObject by Alice"),
            vec!["s3", "get", "object", "by", "alice"]
        );
    }

    #[test]
    fn validation_names_the_problem() {
        assert_eq!(validate("   "), Err(QuestionError::Empty));
        assert!(matches!(
            validate(&"x".repeat(QUESTION_BYTES_MAX + 1)),
            Err(QuestionError::TooLong { .. })
        ));
        assert_eq!(validate("who\u{7}"), Err(QuestionError::Control { at: 3 }));
        assert_eq!(validate(" who? "), Ok("who?"));
    }

    #[test]
    fn payments_database_offers_the_payments_resources() {
        let d = draft("Who accessed the payments database?", None, &index());
        assert_eq!(d.intent, Intent::Who);
        let (field, slot) = d
            .slots
            .iter()
            .find(|(f, _)| *f == Field::Resource)
            .expect("resource slot");
        assert_eq!(*field, Field::Resource);
        let values: Vec<&str> = slot.candidates.iter().map(|c| c.value.as_str()).collect();
        assert_eq!(values[0], "postgres://payments/customers", "{values:?}");
        assert!(values.contains(&"arn:aws:s3:::payments-exports/2026.csv"));
        assert!(d.unmatched.is_empty(), "{:?}", d.unmatched);
    }

    #[test]
    fn an_actor_named_in_full_is_a_clear_winner() {
        let d = draft("what did frank do", None, &index());
        let (_, slot) = d
            .slots
            .iter()
            .find(|(f, _)| *f == Field::Actor)
            .expect("actor slot");
        assert_eq!(slot.clear_winner().map(|c| c.value.as_str()), Some("frank"));
    }

    #[test]
    fn categories_outcomes_and_intents_come_from_words() {
        let d = draft("How many failed logins were there?", None, &index());
        assert_eq!(d.intent, Intent::Count);
        assert_eq!(d.filter.category, Some(Category::FailedLogin));
        assert_eq!(d.filter.outcome, None);
        let d = draft("Anything unusual?", None, &index());
        assert_eq!(d.intent, Intent::Anomalies);
        let d = draft("show denied requests", None, &index());
        assert_eq!(d.filter.outcome, Some(Outcome::Denied));
    }

    #[test]
    fn unknown_things_are_reported_not_ignored() {
        let d = draft("who accessed the warehouse?", None, &index());
        assert_eq!(d.unmatched, vec!["warehouse".to_string()]);
        assert!(d.slots.is_empty());
    }
}
