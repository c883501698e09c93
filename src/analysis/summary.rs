//! Summaries of a window of entries: deterministic facts first, then a
//! short paragraph the model writes from those facts only.
//!
//! The facts (counts by category, actor, outcome; failures; flags; notable
//! changes) are computed here by code and are the answer. The model's
//! paragraph is a convenience, and is shown only if every identifier and
//! number in it appears in the facts ([`check_prose`]) and it reads as a
//! finished short paragraph that does not loop ([`prose_problem`]);
//! otherwise the template paragraph built from the facts is returned, with
//! the reason.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::category::Category;
use super::index::IndexedEntry;
use crate::ledger::event::Outcome;
use crate::limits::{SUMMARY_LIST_MAX, SUMMARY_NOTABLE_MAX};

/// A flag as the summary shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlagFact {
    pub kind: String,
    pub actor: String,
    pub reason: String,
    pub score: f32,
    pub entries: Vec<u64>,
}

/// A change worth naming (privilege, admin, configuration, deletion).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notable {
    pub index: u64,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub category: Category,
    pub outcome: Outcome,
}

/// Everything the summary states, computed by code.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Facts {
    pub window: String,
    pub entries: u64,
    pub first_index: Option<u64>,
    pub last_index: Option<u64>,
    pub by_category: Vec<(String, u64)>,
    pub by_outcome: Vec<(String, u64)>,
    pub top_actors: Vec<(String, u64)>,
    pub top_resources: Vec<(String, u64)>,
    pub failures: u64,
    pub failing_actors: Vec<(String, u64)>,
    pub flags: Vec<FlagFact>,
    pub notable: Vec<Notable>,
}

fn top(counts: BTreeMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// Computes the facts of a window from its entries (in log order) and the
/// flags raised in it.
pub fn facts<'a>(
    window: String,
    entries: impl Iterator<Item = &'a IndexedEntry>,
    flags: Vec<FlagFact>,
) -> Facts {
    let mut f = Facts {
        window,
        ..Facts::default()
    };
    let mut cat: BTreeMap<String, u64> = BTreeMap::new();
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    let mut actors: BTreeMap<String, u64> = BTreeMap::new();
    let mut resources: BTreeMap<String, u64> = BTreeMap::new();
    let mut failing: BTreeMap<String, u64> = BTreeMap::new();
    for e in entries {
        f.entries += 1;
        f.first_index.get_or_insert(e.index);
        f.last_index = Some(e.index);
        *cat.entry(e.category.as_str().into()).or_default() += 1;
        *out.entry(e.outcome.as_str().into()).or_default() += 1;
        *actors.entry(e.actor.to_string()).or_default() += 1;
        *resources.entry(e.resource.to_string()).or_default() += 1;
        if matches!(e.outcome, Outcome::Failure | Outcome::Denied) {
            f.failures += 1;
            *failing.entry(e.actor.to_string()).or_default() += 1;
        }
        let notable = matches!(
            e.category,
            Category::PrivilegeChange
                | Category::AdminChange
                | Category::ConfigChange
                | Category::DataDeletion
                | Category::DataExport
                | Category::SecurityAlert
        );
        if notable && f.notable.len() < SUMMARY_NOTABLE_MAX {
            f.notable.push(Notable {
                index: e.index,
                actor: e.actor.to_string(),
                action: e.action.to_string(),
                resource: e.resource.to_string(),
                category: e.category,
                outcome: e.outcome,
            });
        }
    }
    f.by_category = top(cat, Category::ALL.len());
    f.by_outcome = top(out, 4);
    f.top_actors = top(actors, SUMMARY_LIST_MAX);
    f.top_resources = top(resources, SUMMARY_LIST_MAX);
    f.failing_actors = top(failing, SUMMARY_LIST_MAX);
    f.flags = flags.into_iter().take(SUMMARY_LIST_MAX).collect();
    f
}

fn list(items: &[(String, u64)]) -> String {
    items
        .iter()
        .map(|(k, n)| format!("{k} ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The facts as lines: what the model is shown (after masking) and what
/// its prose is checked against.
pub fn fact_lines(f: &Facts) -> String {
    let mut s = String::new();
    s.push_str(&format!("Window: {}\n", f.window));
    s.push_str(&format!("Entries: {}\n", f.entries));
    if f.entries == 0 {
        return s;
    }
    s.push_str(&format!("By category: {}\n", list(&f.by_category)));
    s.push_str(&format!("By outcome: {}\n", list(&f.by_outcome)));
    s.push_str(&format!("Most active actors: {}\n", list(&f.top_actors)));
    s.push_str(&format!(
        "Most used resources: {}\n",
        list(&f.top_resources)
    ));
    s.push_str(&format!("Failed or denied: {}", f.failures));
    if !f.failing_actors.is_empty() {
        s.push_str(&format!(" by {}", list(&f.failing_actors)));
    }
    s.push('\n');
    for n in &f.notable {
        s.push_str(&format!(
            "Change: {} did {} on {} ({}, {})\n",
            n.actor,
            n.action,
            n.resource,
            n.category,
            n.outcome.as_str()
        ));
    }
    for fl in &f.flags {
        s.push_str(&format!("Flag: {} ({})\n", fl.reason, fl.kind));
    }
    s
}

/// The paragraph code writes from the facts: always correct, the fallback
/// whenever the model's prose is rejected.
pub fn template(f: &Facts) -> String {
    if f.entries == 0 {
        return format!("No entries in {}.", f.window);
    }
    let mut s = format!(
        "{} entries in {}: {}.",
        f.entries,
        f.window,
        f.by_category
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some((a, n)) = f.top_actors.first() {
        s.push_str(&format!(" The most active actor was {a} ({n} entries)."));
    }
    if f.failures > 0 {
        s.push_str(&format!(
            " {} failed or were denied, most by {}.",
            f.failures,
            f.failing_actors
                .first()
                .map(|(a, _)| a.as_str())
                .unwrap_or("nobody")
        ));
    }
    if !f.notable.is_empty() {
        let n = &f.notable[0];
        s.push_str(&format!(
            " {} notable change{}, e.g. {} did {} on {}.",
            f.notable.len(),
            if f.notable.len() == 1 { "" } else { "s" },
            n.actor,
            n.action,
            n.resource
        ));
    }
    if !f.flags.is_empty() {
        s.push_str(&format!(
            " {} anomaly flag{} raised.",
            f.flags.len(),
            if f.flags.len() == 1 { " was" } else { "s were" }
        ));
    }
    s
}

/// Tokens of a prose text that name something: anything with a digit, an
/// `@`, a `:`, a `/`, an `_`, an inner `.` or `-`, or a placeholder — and
/// any whole value from `known` (every actor, resource and action the index
/// holds), which catches plain names like `frank` that belong to another
/// window.
pub fn identifiers(prose: &str, known: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for raw in prose.split_whitespace() {
        // A trailing colon is punctuation ("tasks:"), not part of a name.
        let t = trim_punctuation(raw);
        if t.is_empty() {
            continue;
        }
        // An inner '-' between letters only is an English compound
        // ("first-time"); hyphenated names (pods, hosts) carry digits or
        // are in `known`.
        let shaped = t
            .chars()
            .any(|c| c.is_ascii_digit() || "@:/_<>".contains(c))
            || t.trim_matches(|c| c == '.' || c == '-').contains('.');
        if shaped || known.contains(t) || known.contains(&t.to_lowercase()) {
            out.push(t.to_string());
        }
    }
    out
}

/// Checks the model's prose against the facts: every identifier in it must
/// appear in the facts text as a whole token, or as a whole part of one
/// (`ec2` of `aws:ec2`), never as a substring (`7` is not in `37`). Returns
/// the offending identifiers.
pub fn check_prose(prose: &str, fact_text: &str, known: &BTreeSet<String>) -> Vec<String> {
    let atoms = fact_atoms(fact_text);
    identifiers(prose, known)
        .into_iter()
        .filter(|id| !atoms.contains(&id.to_lowercase()))
        .collect()
}

/// The facts' tokens, lower-cased, and their parts (split at `:` `/` `@`
/// and the like, then at every non-alphanumeric character).
fn fact_atoms(fact_text: &str) -> BTreeSet<String> {
    let mut atoms: BTreeSet<String> = BTreeSet::new();
    for raw in fact_text.split_whitespace() {
        let token = trim_punctuation(raw).to_lowercase();
        for piece in token.split(|c: char| ":/@=,;()[]\"'".contains(c)) {
            atoms.insert(piece.to_string());
        }
        for piece in token.split(|c: char| !c.is_alphanumeric()) {
            atoms.insert(piece.to_string());
        }
        atoms.insert(token);
    }
    atoms
}

/// Fewest facts (distinct identifiers or numbers of the facts) a paragraph
/// must state: "The logs are not encrypted." names nothing wrong, and says
/// nothing either.
pub const PROSE_FACTS_MIN: usize = 2;

/// Most sentences a summary paragraph may have: the model is asked for two.
pub const PROSE_SENTENCES_MAX: usize = 4;

/// Sentences of the model's paragraph that are kept: it was asked for two,
/// and runs on (the token limit cuts it mid-sentence) more often than not.
pub const PROSE_SENTENCES_KEPT: usize = 2;

/// The first `max` complete sentences of `prose` (a sentence ends at `.`,
/// `!` or `?` before whitespace or the end), or all of it when no sentence
/// is complete, which [`prose_problem`] then rejects as cut off.
pub fn complete_sentences(prose: &str, max: usize) -> &str {
    let prose = prose.trim();
    // A list marker the model put first ("1. ", "- ") is not a sentence.
    let prose = prose
        .strip_prefix("- ")
        .or_else(|| {
            let digits = prose.find(|c: char| !c.is_ascii_digit())?;
            (digits > 0)
                .then(|| prose[digits..].strip_prefix(". "))
                .flatten()
        })
        .unwrap_or(prose)
        .trim_start();
    let mut end = None;
    let mut count = 0;
    let mut start = 0;
    let mut chars = prose.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let at_end = chars.peek().is_none_or(|(_, n)| n.is_whitespace());
        if matches!(c, '.' | '!' | '?') && at_end {
            let sentence = prose[start..i].trim();
            start = i + c.len_utf8();
            // "2." opening the next list item is not a sentence.
            if sentence.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            end = Some(i + c.len_utf8());
            count += 1;
            if count == max {
                break;
            }
        }
    }
    end.map_or(prose, |e| &prose[..e])
}

/// Two sentences sharing at least this share of their words (Jaccard) say
/// the same thing: the small model loops, varying only a number or a name.
const NEAR_DUPLICATE_SHARE: f64 = 0.6;

/// Why the model's paragraph may not be shown, or `None` when it may: too
/// short, cut off mid-sentence by the token limit, too long, a sentence
/// repeated or nearly so, or an identifier or number not in the facts.
pub fn prose_problem(prose: &str, fact_text: &str, known: &BTreeSet<String>) -> Option<String> {
    let prose = prose.trim();
    if prose.split_whitespace().count() < 4 {
        return Some("the model wrote no usable prose".into());
    }
    if !prose.ends_with(['.', '!', '?']) {
        return Some("the model's prose was cut off mid-sentence".into());
    }
    let sentences: Vec<BTreeSet<String>> = prose
        .split(['.', '!', '?', '\n'])
        .map(|s| {
            s.split(|c: char| !c.is_alphabetic())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect::<BTreeSet<String>>()
        })
        .filter(|words| words.len() >= 3)
        .collect();
    if sentences.len() > PROSE_SENTENCES_MAX {
        return Some(format!(
            "the model wrote {} sentences, not a short paragraph",
            sentences.len()
        ));
    }
    for (i, a) in sentences.iter().enumerate() {
        for b in &sentences[i + 1..] {
            let shared = a.intersection(b).count() as f64;
            let all = a.union(b).count() as f64;
            if shared / all >= NEAR_DUPLICATE_SHARE {
                return Some("the model repeated itself".into());
            }
        }
    }
    let bad = check_prose(prose, fact_text, known);
    if !bad.is_empty() {
        return Some(format!(
            "the model's prose named {} not in the facts",
            bad.iter()
                .map(|b| format!("\"{b}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let stated: BTreeSet<String> = identifiers(prose, known)
        .into_iter()
        .map(|id| id.to_lowercase())
        .collect();
    if stated.len() < PROSE_FACTS_MIN {
        return Some(format!(
            "the model's prose states {} of the facts (at least {PROSE_FACTS_MIN} needed)",
            stated.len()
        ));
    }
    None
}

fn trim_punctuation(raw: &str) -> &str {
    raw.trim_matches(|c: char| {
        matches!(
            c,
            '.' | ',' | ';' | ':' | '!' | '?' | '"' | '\'' | '(' | ')' | '[' | ']' | '`' | '*'
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::index::{Decided, Index};
    use crate::ledger::event::{Actor, Event};

    fn ev(actor: &str, action: &str, resource: &str, outcome: Outcome) -> Event {
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
            outcome,
            source: "t".into(),
            details: Default::default(),
            idempotency_key: None,
        }
    }

    fn window() -> Index {
        let mut ix = Index::new();
        let rows = [
            (
                "alice",
                "db.read",
                "payments",
                Outcome::Success,
                Category::DataAccess,
            ),
            (
                "alice",
                "db.read",
                "payments",
                Outcome::Success,
                Category::DataAccess,
            ),
            (
                "frank",
                "login",
                "console",
                Outcome::Failure,
                Category::FailedLogin,
            ),
            (
                "root",
                "iam:AttachUserPolicy",
                "arn:aws:iam::1:user/x",
                Outcome::Success,
                Category::PrivilegeChange,
            ),
        ];
        for (i, (a, b, c, o, k)) in rows.into_iter().enumerate() {
            ix.push(i as u64, &ev(a, b, c, o), k, Decided::Model);
        }
        ix
    }

    #[test]
    fn facts_count_by_category_actor_and_outcome() {
        let ix = window();
        let f = facts("the last 4 entries".into(), ix.last(4), vec![]);
        assert_eq!(f.entries, 4);
        assert_eq!(f.by_category[0], ("data_access".into(), 2));
        assert_eq!(f.top_actors[0], ("alice".into(), 2));
        assert_eq!(f.failures, 1);
        assert_eq!(f.failing_actors, vec![("frank".into(), 1)]);
        assert_eq!(f.notable.len(), 1);
        assert_eq!(f.notable[0].action, "iam:AttachUserPolicy");
        let t = template(&f);
        assert!(
            t.starts_with("4 entries in the last 4 entries: 2 data_access"),
            "{t}"
        );
        assert!(t.contains("most by frank"), "{t}");
    }

    #[test]
    fn empty_windows_say_so() {
        let f = facts("yesterday".into(), std::iter::empty(), vec![]);
        assert_eq!(template(&f), "No entries in yesterday.");
        assert_eq!(fact_lines(&f), "Window: yesterday\nEntries: 0\n");
    }

    #[test]
    fn prose_with_an_identifier_outside_the_facts_is_rejected() {
        let ix = window();
        let f = facts("w".into(), ix.last(3), vec![]);
        let text = fact_lines(&f);
        let known: BTreeSet<String> = ["alice", "frank", "root", "mallory"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(check_prose(
            "Alice read payments twice; frank failed to log in.",
            &text,
            &known
        )
        .is_empty());
        // root is in the index but not in this window (the last 3 entries
        // include it, so use a window without it).
        let f2 = facts("w".into(), ix.last(4).take(2), vec![]);
        let text2 = fact_lines(&f2);
        assert_eq!(
            check_prose("root changed a policy", &text2, &known),
            vec!["root"]
        );
        assert_eq!(
            check_prose("alice read 7 rows from 10.0.0.9", &text2, &known),
            vec!["7", "10.0.0.9"]
        );
        assert_eq!(
            check_prose("mallory@evil.example logged in", &text2, &known),
            vec!["mallory@evil.example"]
        );
    }

    #[test]
    fn the_first_complete_sentences_are_kept() {
        assert_eq!(
            complete_sentences("One ran at 10.0.0.9 today. Two! Three? Fo", 2),
            "One ran at 10.0.0.9 today. Two!"
        );
        assert_eq!(complete_sentences("One. Then a cut", 2), "One.");
        assert_eq!(complete_sentences("no end at all", 2), "no end at all");
        assert_eq!(
            complete_sentences("1. The logs are fine. More. Even more.", 2),
            "The logs are fine. More."
        );
        assert_eq!(
            complete_sentences("1. The role changed (privilege_change).\n2.", 2),
            "The role changed (privilege_change)."
        );
    }

    #[test]
    fn numbers_and_names_must_be_whole_tokens_of_the_facts() {
        let facts =
            "Entries: 37\nActors: arn:aws:iam::1:user/pedro (37)\nResources: aws:ec2 (37)\n";
        let known = BTreeSet::new();
        // "7" is inside "37" but is not a number the facts state.
        assert_eq!(check_prose("pedro made 7 calls.", facts, &known), vec!["7"]);
        assert!(check_prose("pedro made 37 calls on EC2.", facts, &known).is_empty());
        assert!(check_prose("arn:aws:iam::1:user/pedro was busy.", facts, &known).is_empty());
    }

    #[test]
    fn looping_cut_off_or_long_prose_is_rejected_and_a_plain_paragraph_passes() {
        let facts = "Entries: 103\nActors: pedro (87), ec2.amazonaws.com (5)\nFlags: new_user_agent (36 events), new_resource (38 events)\n";
        let known = BTreeSet::new();
        // The demo's real output: near-identical lines, the last one cut off.
        let looping = "The logs show that the user agent \"pedro\" has been used for the first time, after 36 events (new_user_agent)\n\
                       The logs show that the user agent \"pedro\" has been used for the first time, after 38 events (new_resource).";
        assert_eq!(
            prose_problem(looping, facts, &known).as_deref(),
            Some("the model repeated itself")
        );
        let cut = "pedro made 87 of the 103 calls. Two flags were raised for (new_resource";
        assert_eq!(
            prose_problem(cut, facts, &known).as_deref(),
            Some("the model's prose was cut off mid-sentence")
        );
        let long = "pedro was busy. ec2.amazonaws.com called too. There were 103 entries. \
                    Flags were raised for pedro. Nothing failed at all.";
        assert!(prose_problem(long, facts, &known).is_some_and(|r| r.contains("5 sentences")));
        assert_eq!(
            prose_problem("ok.", facts, &known).as_deref(),
            Some("the model wrote no usable prose")
        );
        let good = "Of 103 entries, pedro made 87. Two first-time flags were raised for new resources and agents.";
        assert_eq!(prose_problem(good, facts, &known), None);
        // Real output that names nothing wrong and states nothing.
        assert_eq!(
            prose_problem("The logs are not encrypted.", facts, &known).as_deref(),
            Some("the model's prose states 0 of the facts (at least 2 needed)")
        );
    }
}
