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
use super::vocabulary::{self, Verb, ANY_WRITE};
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

    /// The values the question writes out whole, when it names more than
    /// one ("pedro or ec2.amazonaws.com"): each is meant.
    pub fn written_out(&self) -> Vec<&Candidate> {
        let whole: Vec<&Candidate> = self
            .candidates
            .iter()
            .filter(|c| c.score > FULL_MATCH_SCORE)
            .collect();
        if whole.len() >= 2 {
            whole
        } else {
            Vec::new()
        }
    }
}

/// Score of a value whose every significant word appears in the question.
const FULL_MATCH_SCORE: f64 = 1.0;
/// Lead over the runner-up that lets code decide without the model.
const CLEAR_MARGIN: f64 = 0.34;

/// What code read from the question before any model call.
#[derive(Clone, Debug, PartialEq)]
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
    // Glue and asking words seen in analysts' questions.
    "also",
    "against",
    "both",
    "client",
    "clients",
    "doing",
    "each",
    "either",
    "find",
    "happen",
    "happening",
    "into",
    "just",
    "kind",
    "kinds",
    "know",
    "only",
    "onto",
    "other",
    "out",
    "per",
    "than",
    "then",
    "through",
    "tool",
    "tools",
    "type",
    "types",
    "using",
    "want",
    "active",
    "came",
    "come",
    "comes",
    "content",
    "contents",
    "everything",
    "gave",
    "more",
    "try",
    "tried",
    "trying",
    "attempt",
    "attempted",
    // Where in the log ("the last hour of the log", "the latest entry").
    "latest",
    "final",
    "end",
    "newest",
    "oldest",
    "earliest",
    "first",
];

/// Categories named by phrases; longest phrases first so "failed login"
/// wins over "login". Verbs ("read", "deleted") are not categories: they
/// name what actions do (see [`vocabulary`]).
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
    ("sign ins", Category::AuthSuccess),
    ("sign in", Category::AuthSuccess),
    ("failed sign ins", Category::FailedLogin),
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
    ("exported", Category::DataExport),
    ("export", Category::DataExport),
    ("exports", Category::DataExport),
    ("exfiltration", Category::DataExport),
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
    ("denials", Outcome::Denied),
    ("rejected", Outcome::Denied),
    ("fail", Outcome::Failure),
    ("errored", Outcome::Failure),
    ("error", Outcome::Failure),
    ("unsuccessful", Outcome::Failure),
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
/// camelCase split too, so `GetObject` gives `get`, `object` and
/// `BankingWAFRole` gives `banking`, `waf`, `role` (see [`super::words`]).
pub fn words(text: &str) -> Vec<String> {
    super::words::words(text)
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
            // "transferred", "stopped": the doubled consonant goes too
            // (but not "installed" or "passed").
            let b = w.as_bytes();
            let n = b.len();
            if suffix != "s"
                && suffix != "es"
                && n > 4
                && b[n - 1] == b[n - 2]
                && !b"aeioulsz".contains(&b[n - 1])
            {
                w.pop();
            }
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

/// Words between a passive verb and its subject ("objects were listed").
const PASSIVE_GLUE: &[&str] = &["was", "were", "been", "is", "are", "be", "got", "get"];

/// Nouns that name a type of thing ("bucket", "pods", "a repository"), not
/// one thing: alone they pick no actor or resource ("a repository" is any
/// repository), though beside a name they help find it ("the payments
/// database").
const TYPE_NOUNS: &[&str] = &[
    "app",
    "application",
    "bucket",
    "cluster",
    "database",
    "db",
    "deployment",
    "file",
    "function",
    "group",
    "instance",
    "key",
    "namespace",
    "object",
    "pod",
    "policy",
    "project",
    "repo",
    "repository",
    "role",
    "secret",
    "service",
    "snapshot",
    "table",
    "team",
    "volume",
];

fn is_type_noun(stemmed: &str) -> bool {
    TYPE_NOUNS.iter().any(|t| stem(t) == stemmed)
}

/// True when the question writes out the value whole, or, for an action,
/// its operation (`GetSecretValue` for `secretsmanager:GetSecretValue`),
/// or, for an actor, its name (`contractor` in `...:user/contractor`), or,
/// for a resource, a part that is a name (`customer-data-db` in
/// `aws:rds/customer-data-db`, `kube-system` in a namespaced path).
fn written_out(value: &str, question_lower: &str, field: Field, skip: &BTreeSet<String>) -> bool {
    let v = value.to_lowercase();
    if v.len() >= 3 && contains_whole(question_lower, &v) {
        return true;
    }
    let parts: Vec<&str> = value.split([':', '/']).filter(|p| !p.is_empty()).collect();
    // A part that is a common word ("user", "default", "log"), a word the
    // vocabulary read ("kms", "iam") or a type noun ("pods") is no name.
    let plain_word = |part: &str| {
        let w = words(part);
        let lower = part.to_lowercase();
        skip.contains(&lower)
            || STOP_WORDS.contains(&lower.as_str())
            || GENERIC_VALUE_WORDS.contains(&lower.as_str())
            || (w.len() == 1 && is_type_noun(&stem(&w[0])))
    };
    let written = |part: &str| {
        part.len() >= 3 && !plain_word(part) && contains_whole(question_lower, &part.to_lowercase())
    };
    match field {
        Field::Action => {
            let op = value.rsplit([':', '.', '/']).next().unwrap_or(value);
            // A single word (`create`) is a verb, not a name written out.
            words(op).len() >= 2 && written(op)
        }
        Field::Actor => parts.len() >= 2 && parts.last().is_some_and(|p| written(p)),
        Field::Resource => {
            parts.len() >= 2
                && parts.iter().enumerate().any(|(i, p)| {
                    let last = i + 1 == parts.len();
                    let name_like =
                        p.contains(['-', '_', '.', '@']) || p.chars().any(|c| c.is_ascii_digit());
                    (last || name_like) && written(p)
                })
        }
    }
}

/// How well a value matches the question's words: the share of the
/// question's content words the value contains (stemmed, with synonyms when
/// allowed), plus a little for how much of the value those words cover, so
/// a long ARN that holds every word asked about still wins; or
/// Values written out are found apart (see [`written_out`]). Type nouns
/// alone score nothing.
fn match_score(
    value: &str,
    qstems: &BTreeSet<String>,
    field: Field,
    use_synonyms: bool,
    has_verb: bool,
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
    let covered: Vec<&String> = qstems.iter().filter(|q| matches(q)).collect();
    if covered.is_empty() {
        return 0.0;
    }
    // Type nouns alone pick nothing; for actions they may beside a verb
    // ("created repositories" is `repo.create`).
    if (field != Field::Action || !has_verb) && covered.iter().all(|q| is_type_noun(q)) {
        return 0.0;
    }
    let value_hits = vwords
        .iter()
        .filter(|w| {
            qstems.contains(&stem(w))
                || (use_synonyms && qstems.iter().any(|q| synonyms(q).contains(&w.as_str())))
        })
        .count();
    let question_share = covered.len() as f64 / qstems.len() as f64;
    let value_share = value_hits as f64 / vwords.len() as f64;
    (question_share * 0.9 + value_share * 0.1).min(FULL_MATCH_SCORE - 0.01)
}

/// A question token that is a name (`ec2.amazonaws.com`, `ring.txt`,
/// `k8s:pods/x`, `10.0.0.0/8`): its words are the name's, not English, so
/// "ec2" inside it is no service and "create" inside `repo.create` no verb.
fn is_name_token(token: &str) -> bool {
    let t = token.trim_matches(|c: char| !c.is_alphanumeric());
    t.contains(['.', ':', '@', '/', '_']) || is_api_name(t)
}

/// A CamelCase API name (`SetIamPolicy`, `ListObjects`, `BankingWAF`): a
/// capital, lower-case letters, then another capital. "macOS" and "S3" are
/// not.
fn is_api_name(t: &str) -> bool {
    let mut chars = t.chars();
    let starts = chars.next().is_some_and(|c| c.is_ascii_uppercase());
    let rest: Vec<char> = chars.collect();
    let lower_run = rest.iter().take_while(|c| c.is_ascii_lowercase()).count();
    starts && lower_run >= 1 && rest.get(lower_run).is_some_and(|c| c.is_ascii_uppercase())
}

/// The question's words, lower-case, without the time words, possessive
/// `'s` and other single letters; and the same without name tokens'
/// words, joined and padded with spaces for phrase search.
fn question_words(question: &str, time_text: Option<&str>) -> (Vec<String>, String) {
    let time_words: BTreeSet<String> = time_text
        .map(words)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let keep = |w: &String| {
        let single_letter = w.chars().count() == 1 && w.chars().all(char::is_alphabetic);
        !time_words.contains(w) && !single_letter
    };
    let all: Vec<String> = words(question).into_iter().filter(keep).collect();
    let plain: Vec<String> = question
        .split_whitespace()
        .filter(|t| !is_name_token(t))
        .flat_map(words)
        .filter(keep)
        .collect();
    (all, format!(" {} ", plain.join(" ")))
}

/// Reads a question: intent, category, outcomes, what the actions do,
/// services, clients, kinds of actor, networks, and per-slot candidates.
/// `time` is what [`super::when::find_time_range`] found, as
/// `(from, to, text)`.
pub fn draft(question: &str, time: Option<(i64, i64, String)>, index: &Index) -> Draft {
    let lower = question.to_lowercase();
    let (qwords, plain) = question_words(question, time.as_ref().map(|(_, _, t)| t.as_str()));
    let mut filter = Filter::default();
    // Words read as something other than a name: they are not matched
    // against actors and resources.
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
    // "failed logins" is a category, not also an outcome filter; "failed or
    // denied" is either outcome.
    if filter.category != Some(Category::FailedLogin) {
        for (word, outcome) in OUTCOME_WORDS {
            if qwords.iter().any(|w| w == word) {
                if !filter.outcomes.contains(outcome) {
                    filter.outcomes.push(*outcome);
                }
                consumed.insert(word.to_string());
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

    // Kinds of actor, services, clients and networks, before verbs:
    // "assumed roles" is a kind of actor, not the verb "assume", and "IAM
    // users" a kind of actor, not the IAM service.
    let (kinds, used, plain) = vocabulary::kinds_in(&plain);
    filter.actor_kinds = kinds;
    consumed.extend(used);
    for (service, used) in vocabulary::services_in(&plain) {
        filter.services.push(service.to_string());
        consumed.extend(used);
    }
    let (clients, used) = vocabulary::clients_in(&plain);
    filter.clients = clients;
    consumed.extend(used);
    let (networks, used) = vocabulary::networks_in(question, &plain);
    filter.networks = networks;
    consumed.extend(used);
    let (verb_words, verb_nouns) = read_verbs(&plain, &mut filter, &mut consumed);

    let content: Vec<String> = qwords
        .iter()
        .filter(|w| !STOP_WORDS.contains(&w.as_str()) && !consumed.contains(*w))
        .filter(|w| !verb_words.contains(w))
        .filter(|w| !w.chars().all(|c| c.is_ascii_digit()))
        .cloned()
        .collect();
    let qstems: BTreeSet<String> = content.iter().map(|w| stem(w)).collect();
    // With a verb, actions match on the verb and its nouns ("listed
    // objects" is `ListObjects`, "archived" `repo.archived`); without one,
    // on every content word ("the ListBuckets calls").
    let action_stems: BTreeSet<String> = if verb_words.is_empty() {
        qstems.clone()
    } else {
        verb_words
            .iter()
            .chain(verb_nouns.iter())
            .map(|w| stem(w))
            .collect()
    };

    // Values written out whole, in every field first: their words name
    // them and no other field's value ("example-secret" is the secret, not
    // the actor example-user). A name that is an actor's is the actor's.
    let mut named: Vec<(Field, Vec<Candidate>)> = Vec::new();
    let mut claimed: BTreeSet<String> = BTreeSet::new();
    let skip: BTreeSet<String> = consumed.iter().chain(verb_words.iter()).cloned().collect();
    for field in [Field::Actor, Field::Action, Field::Resource] {
        let mut found: Vec<Candidate> = index
            .values(field)
            .filter(|(v, _)| written_out(v, &lower, field, &skip))
            .filter(|(v, _)| {
                field != Field::Resource
                    || !named.iter().any(|(_, cs)| {
                        cs.iter().any(|c| {
                            c.value.eq_ignore_ascii_case(v) || written_part_of(v, &c.value, &lower)
                        })
                    })
            })
            // A part written out ("controller") loses to a value, of any
            // field, that holds it and more of the question's words
            // ("replicaset-controller"); type nouns do not count.
            .filter(|(v, _)| {
                let mine: BTreeSet<String> =
                    claimed_words(v, &lower).iter().map(|w| stem(w)).collect();
                !Field::ALL.iter().any(|f| {
                    index.values(*f).any(|(other, _)| {
                        let theirs: BTreeSet<String> = words(other)
                            .iter()
                            .map(|w| stem(w))
                            .filter(|w| qstems.contains(w) && !is_type_noun(w))
                            .collect();
                        other != *v && theirs.is_superset(&mine) && theirs.len() > mine.len()
                    })
                })
            })
            .map(|(v, n)| Candidate {
                value: v.to_string(),
                score: FULL_MATCH_SCORE + 0.5,
                entries: n,
            })
            .collect();
        // `SetIamPolicy` written so is that action, not also `setIamPolicy`.
        if field == Field::Action && found.len() > 1 {
            let exact: Vec<Candidate> = found
                .iter()
                .filter(|c| {
                    let op = c.value.rsplit([':', '.', '/']).next().unwrap_or(&c.value);
                    question.contains(op)
                })
                .cloned()
                .collect();
            if !exact.is_empty() {
                found = exact;
            }
        }
        for c in &found {
            claimed.extend(claimed_words(&c.value, &lower));
        }
        named.push((field, found));
    }
    let claimed_stems: BTreeSet<String> = claimed.iter().map(|w| stem(w)).collect();
    let free = |stems: &BTreeSet<String>| -> BTreeSet<String> {
        stems.difference(&claimed_stems).cloned().collect()
    };
    let (qstems_free, action_free) = (free(&qstems), free(&action_stems));

    let mut slots = Vec::new();
    for field in Field::ALL {
        let written: Vec<Candidate> = named
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, cs)| cs.clone())
            .unwrap_or_default();
        if !written.is_empty() {
            // Every value written out is meant ("pedro or ops").
            slots.push((
                field,
                SlotCandidates {
                    candidates: written,
                },
            ));
            continue;
        }
        let stems = if field == Field::Action {
            &action_free
        } else {
            &qstems_free
        };
        let mut cands: Vec<Candidate> = index
            .values(field)
            // With a verb in the question, only actions that do it.
            .filter(|(v, _)| {
                field != Field::Action
                    || filter.verbs.is_empty()
                    || Verb::of_action(v).is_some_and(|vb| filter.verbs.contains(&vb))
            })
            .map(|(v, n)| Candidate {
                value: v.to_string(),
                // "database" may mean a resource called payments-db, but
                // not the action db.read unless a verb narrowed them.
                score: match_score(
                    v,
                    stems,
                    field,
                    field != Field::Action || !filter.verbs.is_empty(),
                    !verb_words.is_empty(),
                ),
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
        // The verb already narrows the actions; a single action is taken
        // only when the verb and its nouns single it out, never guessed
        // among several that share the verb.
        if field == Field::Action
            && !verb_words.is_empty()
            && (SlotCandidates {
                candidates: cands.clone(),
            })
            .clear_winner()
            .is_none()
        {
            continue;
        }
        if !cands.is_empty() {
            slots.push((field, SlotCandidates { candidates: cands }));
        }
    }
    drop_resource_named_by_the_actor(&mut slots, &qstems_free);
    let unmatched = content
        .iter()
        .filter(|w| !claimed.contains(*w) && !names_something(index, &stem(w)))
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

/// "What did the BankingWAF role do": the words name the role's session
/// (an actor) and also the role itself (a resource). When the best resource
/// matches no word the best actor does not, the words were the actor's.
fn drop_resource_named_by_the_actor(
    slots: &mut Vec<(Field, SlotCandidates)>,
    qstems: &BTreeSet<String>,
) {
    let matched = |field: Field| -> Option<BTreeSet<String>> {
        let (_, slot) = slots.iter().find(|(f, _)| *f == field)?;
        let best = slot.clear_winner()?;
        if best.score > FULL_MATCH_SCORE {
            return None;
        }
        Some(
            words(&best.value)
                .iter()
                .map(|w| stem(w))
                .filter(|w| qstems.contains(w))
                .collect(),
        )
    };
    if let (Some(actor), Some(resource)) = (matched(Field::Actor), matched(Field::Resource)) {
        if resource.is_subset(&actor) {
            slots.retain(|(f, _)| *f != Field::Resource);
        }
    }
}

/// Whether `part` of a resource is only written because it is part of the
/// name `other` that the question writes out ("bob" inside "my-org/bob").
fn written_part_of(part: &str, other: &str, question_lower: &str) -> bool {
    let p = part.to_lowercase();
    let o = other.to_lowercase();
    o != p && o.contains(&p) && contains_whole(question_lower, &o)
}

/// The question's words that a written-out value accounts for.
fn claimed_words(value: &str, question_lower: &str) -> Vec<String> {
    let mut out = Vec::new();
    let whole = value.to_lowercase();
    let parts = std::iter::once(whole.as_str()).chain(whole.split([':', '/', '.']));
    for part in parts {
        if part.len() >= 3 && contains_whole(question_lower, part) {
            out.extend(words(part));
        }
    }
    out
}

/// The question's verbs (not inside names): what the actions do, into
/// `filter.verbs`; returns the verb words and the nouns beside each verb:
/// its object ("listed objects", "deleted the snapshot") or, in the
/// passive, its subject ("which repositories were created"). A leading
/// command ("List what pedro did", "Show ...") is the asking, not a verb.
fn read_verbs(
    plain: &str,
    filter: &mut Filter,
    consumed: &mut BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let mut verb_words: Vec<String> = Vec::new();
    let mut verb_nouns: Vec<String> = Vec::new();
    let plain_words: Vec<&str> = plain.split_whitespace().collect();
    for (at, w) in plain_words.iter().enumerate() {
        if consumed.contains(*w) {
            continue;
        }
        if at == 0 && COMMANDS.contains(w) {
            consumed.insert(w.to_string());
            continue;
        }
        let Some(verbs) = vocabulary::question_verbs(w) else {
            continue;
        };
        // "privilege changes" is the category; "changes" adds nothing.
        if filter.category.is_some() && verbs == ANY_WRITE {
            consumed.insert(w.to_string());
            continue;
        }
        for v in verbs {
            if !filter.verbs.contains(v) {
                filter.verbs.push(*v);
            }
        }
        verb_words.push(w.to_string());
        let is_noun = |x: &&&str| {
            !STOP_WORDS.contains(x) && !PASSIVE_GLUE.contains(x) && !consumed.contains(**x)
        };
        verb_nouns.extend(
            plain_words[at + 1..]
                .iter()
                .take_while(|x| vocabulary::question_verbs(x).is_none())
                .take(3)
                .find(is_noun)
                .map(|x| x.to_string()),
        );
        if plain_words[..at]
            .last()
            .is_some_and(|x| PASSIVE_GLUE.contains(x))
        {
            verb_nouns.extend(
                plain_words[..at]
                    .iter()
                    .rev()
                    .take(3)
                    .find(is_noun)
                    .map(|x| x.to_string()),
            );
        }
    }
    (verb_words, verb_nouns)
}

/// Words that open a question as a command to the analyst.
const COMMANDS: &[&str] = &[
    "list",
    "show",
    "get",
    "find",
    "give",
    "tell",
    "summarise",
    "summarize",
];

/// Whether some actor, resource or action of the log has the word (or a
/// value word it stands for).
fn names_something(index: &Index, stemmed: &str) -> bool {
    let syn = synonyms(stemmed);
    Field::ALL.iter().any(|f| {
        index.values(*f).any(|(v, _)| {
            words(v)
                .iter()
                .any(|w| stem(w) == stemmed || syn.contains(&w.as_str()))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::index::Decided;
    use crate::analysis::vocabulary;
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
        assert_eq!(d.filter.outcomes, vec![Outcome::Denied]);
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
        assert!(d.filter.outcomes.is_empty());
        let d = draft("Anything unusual?", None, &index());
        assert_eq!(d.intent, Intent::Anomalies);
        let d = draft("show denied requests", None, &index());
        assert_eq!(d.filter.outcomes, vec![Outcome::Denied]);
    }

    fn log() -> Index {
        let mut ix = Index::new();
        let role = "arn:aws:sts::1:assumed-role/WebRole/i-0abc";
        type Row<'a> = (
            &'a str,
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Outcome,
        );
        let rows: [Row; 8] = [
            (
                "pedro",
                "ec2:DescribeInstances",
                "aws:ec2",
                Some("IAMUser"),
                Some("console.ec2.amazonaws.com"),
                Outcome::Success,
            ),
            (
                role,
                "s3:ListObjects",
                "arn:aws:s3:::bucket-a",
                Some("AssumedRole"),
                Some("aws-cli/1.18 Darwin/19"),
                Outcome::Success,
            ),
            (
                role,
                "s3:ListBuckets",
                "aws:s3",
                Some("AssumedRole"),
                Some("aws-cli/1.18 Darwin/19"),
                Outcome::Success,
            ),
            (
                role,
                "s3:GetObject",
                "arn:aws:s3:::bucket-a/ring.txt",
                Some("AssumedRole"),
                Some("aws-cli/1.18 Darwin/19"),
                Outcome::Denied,
            ),
            (
                "ec2.amazonaws.com",
                "sts:AssumeRole",
                "arn:aws:iam::1:role/WebRole",
                Some("AWSService"),
                None,
                Outcome::Success,
            ),
            (
                "ops",
                "secretsmanager:GetSecretValue",
                "db-password",
                Some("IAMUser"),
                Some("Boto3/1.26"),
                Outcome::Failure,
            ),
            (
                "ops",
                "secretsmanager:BatchGetSecretValue",
                "db-password",
                Some("IAMUser"),
                Some("Boto3/1.26"),
                Outcome::Success,
            ),
            (
                "object-bot",
                "k8s.delete",
                "k8s:pods/default/web",
                None,
                None,
                Outcome::Success,
            ),
        ];
        for (i, (actor, action, resource, kind, ua, outcome)) in rows.into_iter().enumerate() {
            let mut e = ev(actor, action, resource);
            e.actor.kind = kind.map(String::from);
            e.actor.user_agent = ua.map(String::from);
            e.outcome = outcome;
            e.source = if action.starts_with("k8s.") {
                "k8s-audit"
            } else {
                "cloudtrail"
            }
            .into();
            ix.push(i as u64, &e, Category::Other, Decided::Model);
        }
        ix
    }

    fn slot(d: &Draft, field: Field) -> Option<&SlotCandidates> {
        d.slots.iter().find(|(f, _)| *f == field).map(|(_, s)| s)
    }

    fn selected(ix: &Index, d: &Draft) -> Vec<u64> {
        let mut f = d.filter.clone();
        for field in Field::ALL {
            // As `ask` does: a weak best match fills no slot.
            let winner = slot(d, field).and_then(|s| s.clear_winner());
            if let Some(w) = winner.filter(|w| w.score >= 0.5) {
                let v = vec![w.value.clone()];
                match field {
                    Field::Actor => f.actors = v,
                    Field::Resource => f.resources = v,
                    Field::Action => {
                        f.verbs.clear();
                        f.actions = v
                    }
                }
            }
        }
        ix.select(&f).map(|e| e.index).collect()
    }

    #[test]
    fn verbs_pick_actions_not_actors_whose_names_hold_the_word() {
        let ix = log();
        let d = draft("Who listed objects in bucket-a?", None, &ix);
        let action = slot(&d, Field::Action).and_then(|s| s.clear_winner());
        assert_eq!(action.map(|c| c.value.as_str()), Some("s3:ListObjects"));
        assert!(slot(&d, Field::Actor).is_none(), "{:?}", d.slots);
        assert_eq!(selected(&ix, &d), vec![1]);
        // A plain verb with no noun is the verb's whole family.
        let d = draft("What did pedro look up?", None, &ix);
        assert_eq!(d.filter.verbs, vec![Verb::Describe, Verb::Get, Verb::List]);
        assert_eq!(selected(&ix, &d), vec![0]);
        let d = draft("What was deleted?", None, &ix);
        assert_eq!(selected(&ix, &d), vec![7]);
        assert!(d.unmatched.is_empty(), "{:?}", d.unmatched);
    }

    #[test]
    fn an_api_call_named_by_name_is_that_action() {
        let ix = log();
        let d = draft("Who called GetSecretValue?", None, &ix);
        let action = slot(&d, Field::Action).and_then(|s| s.clear_winner());
        assert_eq!(
            action.map(|c| c.value.as_str()),
            Some("secretsmanager:GetSecretValue")
        );
        assert_eq!(selected(&ix, &d), vec![5]);
    }

    #[test]
    fn services_clients_kinds_and_networks_are_slots() {
        let ix = log();
        let d = draft("What did roles do from the AWS CLI?", None, &ix);
        assert_eq!(d.filter.actor_kinds, vec![vocabulary::ActorKind::Role]);
        assert_eq!(d.filter.clients, vec![vocabulary::Client::Cli]);
        assert_eq!(selected(&ix, &d), vec![1, 2, 3]);
        let d = draft("Which S3 calls came from a Mac?", None, &ix);
        assert_eq!(d.filter.services, vec!["s3".to_string()]);
        assert_eq!(selected(&ix, &d), vec![1, 2, 3]);
        // "ec2" inside a name is the name, not the service.
        let d = draft("What did ec2.amazonaws.com do?", None, &ix);
        assert!(d.filter.services.is_empty());
        assert_eq!(selected(&ix, &d), vec![4]);
        let d = draft("Which calls were made with Boto3?", None, &ix);
        assert_eq!(selected(&ix, &d), vec![5, 6]);
    }

    #[test]
    fn or_joins_values_of_one_slot_and_possessives_are_their_owner() {
        let ix = log();
        let d = draft("Which of ops's requests were denied or failed?", None, &ix);
        assert_eq!(d.filter.outcomes, vec![Outcome::Denied, Outcome::Failure]);
        assert_eq!(selected(&ix, &d), vec![5]);
        let d = draft("Show pedro's activity", None, &ix);
        assert!(d.unmatched.is_empty(), "{:?}", d.unmatched);
        assert_eq!(selected(&ix, &d), vec![0]);
        let d = draft("What did pedro or ops do?", None, &ix);
        let named: Vec<&str> = slot(&d, Field::Actor)
            .map(|s| s.written_out().iter().map(|c| c.value.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(named, vec!["ops", "pedro"]);
    }

    #[test]
    fn a_name_written_in_part_loses_to_a_value_holding_more_of_the_question() {
        let mut ix = Index::new();
        let rows = [
            (
                "system:serviceaccount:kube-system:replicaset-controller",
                "k8s.create",
                "k8s:default/pods/web-1",
            ),
            (
                "user@company.com",
                "io.k8s.rbac.v1.roles.patch",
                "rbac/v1/namespaces/kube-system/roles/system:controller",
            ),
            (
                "arn:aws:iam::1:user/contractor",
                "s3:GetObject",
                "arn:aws:s3:::b/k",
            ),
            (
                "arn:aws:iam::1:user/testuser",
                "s3:GetObject",
                "arn:aws:s3:::b/k",
            ),
        ];
        for (i, (a, b, c)) in rows.iter().enumerate() {
            ix.push(i as u64, &ev(a, b, c), Category::Other, Decided::Model);
        }
        let d = draft("Show the replicaset controller's pod creations", None, &ix);
        assert!(slot(&d, Field::Resource).is_none(), "{:?}", d.slots);
        assert_eq!(selected(&ix, &d), vec![0]);
        // The name at the end of an ARN is written out; two of them are both meant.
        let d = draft("What did contractor or testuser do?", None, &ix);
        let named: Vec<&str> = slot(&d, Field::Actor)
            .map(|s| s.written_out().iter().map(|c| c.value.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            named,
            vec![
                "arn:aws:iam::1:user/contractor",
                "arn:aws:iam::1:user/testuser"
            ]
        );
    }

    #[test]
    fn a_word_naming_nothing_is_reported_and_a_known_empty_answer_is_not() {
        let ix = log();
        let d = draft("Who accessed the payroll database?", None, &ix);
        assert_eq!(d.unmatched, vec!["payroll".to_string()]);
        // Everything here is known; the answer is simply none.
        let d = draft("Show denied requests by pedro", None, &ix);
        assert!(d.unmatched.is_empty(), "{:?}", d.unmatched);
        assert!(selected(&ix, &d).is_empty());
    }

    #[test]
    fn unknown_things_are_reported_not_ignored() {
        let d = draft("who accessed the warehouse?", None, &index());
        assert_eq!(d.unmatched, vec!["warehouse".to_string()]);
        assert!(d.slots.is_empty());
    }
}
