//! Summaries of a window of entries: deterministic facts, and sentences
//! about them that code writes and the model only chooses among.
//!
//! The facts (counts by category, actor, outcome; each busy actor's most
//! frequent action on a resource; failures; flags; notable changes) are
//! computed here by code and are the answer. [`sentences`] turns them into
//! candidate sentences, every one a claim of the facts with its names,
//! actions, resources and numbers paired as an entry pairs them. The model
//! ranks the candidates by what an analyst should read first and the
//! summary states the ones it picks ([`chosen`]); it never writes a
//! sentence, so it cannot misstate one. Without a model (or with too few
//! candidates to choose among) the [`template`] paragraph is used, and the
//! reason is given.
//!
//! The model once wrote the prose itself, checked for names and numbers
//! outside the facts; 12 of 13 windows fell back on the template, and prose
//! that passed could still pair true names wrongly ("a desktop client used
//! ListObjects on the instance"): checks on tokens cannot see claims.

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
    /// For each of the most active actors, its most frequent action on one
    /// resource.
    pub habits: Vec<Habit>,
}

/// What one actor did most: `count` of its `entries` were `action` on
/// `resource`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Habit {
    pub actor: String,
    pub entries: u64,
    pub action: String,
    pub resource: String,
    pub count: u64,
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
    let mut pairs: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let cited: BTreeSet<u64> = flags
        .iter()
        .flat_map(|fl| fl.entries.iter().copied())
        .collect();
    let mut cited_here: BTreeSet<u64> = BTreeSet::new();
    for e in entries {
        if cited.contains(&e.index) {
            cited_here.insert(e.index);
        }
        *pairs
            .entry((
                e.actor.to_string(),
                e.action.to_string(),
                e.resource.to_string(),
            ))
            .or_default() += 1;
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
    // A flag is a fact of this window when every entry it cites is in it:
    // an incident that began before the window names what it saw then.
    f.flags = flags
        .into_iter()
        .filter(|fl| fl.entries.iter().all(|i| cited_here.contains(i)))
        .take(SUMMARY_LIST_MAX)
        .collect();
    f.by_category = top(cat, Category::ALL.len());
    f.by_outcome = top(out, 4);
    f.top_actors = top(actors, SUMMARY_LIST_MAX);
    f.top_resources = top(resources, SUMMARY_LIST_MAX);
    f.failing_actors = top(failing, SUMMARY_LIST_MAX);
    f.habits = f
        .top_actors
        .iter()
        .take(SUMMARY_HABITS_MAX)
        .filter_map(|(actor, n)| {
            let ((_, action, resource), count) = pairs
                .range((actor.clone(), String::new(), String::new())..)
                .take_while(|((a, _, _), _)| a == actor)
                // The most frequent; ties to the first in name order.
                .fold(
                    None,
                    |best: Option<(&(String, String, String), &u64)>, kv| match best {
                        Some(b) if b.1 >= kv.1 => Some(b),
                        _ => Some(kv),
                    },
                )?;
            Some(Habit {
                actor: actor.clone(),
                entries: *n,
                action: action.clone(),
                resource: resource.clone(),
                count: *count,
            })
        })
        .collect();
    f
}

/// Most actors whose habit is offered as a sentence.
const SUMMARY_HABITS_MAX: usize = 2;
/// Most notable changes and flags offered as sentences, each. With the
/// habits and the failures, at most 9 candidates, each one short prompt
/// for the model.
const SUMMARY_CHANGES_OFFERED: usize = 3;

/// Sentences the model picks for a summary, after the opening one.
pub const CHOSEN_SENTENCES: usize = 3;

/// The sentence every summary opens with: how many entries, and of what.
pub fn opening(f: &Facts) -> String {
    format!(
        "{} entries in {}: {}.",
        f.entries,
        f.window,
        f.by_category
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The candidate sentences about a window, each written by code from one
/// fact: habits of the busiest actors, failures, notable changes and
/// anomaly flags.
pub fn sentences(f: &Facts) -> Vec<String> {
    let mut out = Vec::new();
    for h in &f.habits {
        if h.count == h.entries {
            out.push(format!(
                "{} made {} request{}, all {} on {}.",
                h.actor,
                h.entries,
                plural(h.entries),
                h.action,
                h.resource
            ));
        } else {
            out.push(format!(
                "{} made {} requests; {} of them {} {} on {}.",
                h.actor,
                h.entries,
                h.count,
                if h.count == 1 { "was" } else { "were" },
                h.action,
                h.resource
            ));
        }
    }
    if f.failures > 0 {
        let by = f
            .failing_actors
            .iter()
            .map(|(a, n)| format!("{a} ({n})"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push(format!(
            "{} request{} failed or {} denied, by {by}.",
            f.failures,
            plural(f.failures),
            if f.failures == 1 { "was" } else { "were" }
        ));
    }
    for n in f.notable.iter().take(SUMMARY_CHANGES_OFFERED) {
        out.push(format!(
            "{} did {} on {} ({}; outcome {}).",
            n.actor,
            n.action,
            n.resource,
            n.category,
            n.outcome.as_str()
        ));
    }
    for fl in f.flags.iter().take(SUMMARY_CHANGES_OFFERED) {
        out.push(format!(
            "Anomaly flag ({}): {}.",
            fl.kind,
            fl.reason.trim_end_matches('.')
        ));
    }
    // Two flags of one kind with one reason say one thing.
    let mut seen = BTreeSet::new();
    out.retain(|s| seen.insert(s.clone()));
    out
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The summary of the opening sentence and the candidates at `picked`,
/// in the order picked.
pub fn chosen(f: &Facts, candidates: &[String], picked: &[usize]) -> String {
    let mut s = opening(f);
    for &i in picked {
        if let Some(c) = candidates.get(i) {
            s.push(' ');
            s.push_str(c);
        }
    }
    s
}

/// The paragraph code writes from the facts: always correct, the fallback
/// whenever the model's prose is rejected.
pub fn template(f: &Facts) -> String {
    if f.entries == 0 {
        return format!("No entries in {}.", f.window);
    }
    let mut s = opening(f);
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
        assert!(sentences(&f).is_empty());
    }

    #[test]
    fn each_sentence_pairs_names_as_an_entry_does() {
        let ix = window();
        let f = facts("w".into(), ix.last(4), vec![]);
        assert_eq!(
            f.habits[0],
            Habit {
                actor: "alice".into(),
                entries: 2,
                action: "db.read".into(),
                resource: "payments".into(),
                count: 2,
            }
        );
        let s = sentences(&f);
        assert!(
            s.contains(&"alice made 2 requests, all db.read on payments.".to_string()),
            "{s:?}"
        );
        assert!(
            s.contains(&"1 request failed or was denied, by frank (1).".to_string()),
            "{s:?}"
        );
        assert!(
            s.contains(&"root did iam:AttachUserPolicy on arn:aws:iam::1:user/x (privilege_change; outcome success).".to_string()),
            "{s:?}"
        );
        // Every actor/action/resource a sentence names together is a pair
        // some entry of the window has.
        let entries: Vec<_> = ix.last(4).collect();
        for sentence in &s {
            let named: Vec<&str> = entries
                .iter()
                .flat_map(|e| [&*e.actor, &*e.action, &*e.resource])
                .filter(|v| sentence.contains(*v))
                .collect();
            let mut values: Vec<&str> = named.clone();
            values.sort_unstable();
            values.dedup();
            if values.len() >= 2 {
                assert!(
                    entries.iter().any(|e| values.iter().all(|v| [
                        &*e.actor,
                        &*e.action,
                        &*e.resource
                    ]
                    .contains(v))),
                    "{sentence}: {values:?} are not one entry's"
                );
            }
        }
        let summary = chosen(&f, &s, &[2, 0]);
        assert!(summary.starts_with("4 entries in w: "), "{summary}");
        assert!(
            summary.ends_with(&format!(" {} {}", s[2], s[0])),
            "{summary}"
        );
    }

    #[test]
    fn a_flag_citing_entries_outside_the_window_is_not_stated() {
        let ix = window();
        let flag = |entries: Vec<u64>| FlagFact {
            kind: "failure_burst".into(),
            actor: "frank".into(),
            reason: "frank failed".into(),
            score: 0.6,
            entries,
        };
        let f = facts(
            "w".into(),
            ix.last(2),
            vec![flag(vec![2]), flag(vec![1, 2])],
        );
        assert_eq!(f.flags.len(), 1, "{:?}", f.flags);
        assert_eq!(f.flags[0].entries, vec![2]);
    }

    #[test]
    fn a_mixed_actor_says_how_many_of_its_requests_were_its_habit() {
        let mut ix = window();
        ix.push(
            4,
            &ev("alice", "db.write", "payments", Outcome::Success),
            Category::ConfigChange,
            Decided::Model,
        );
        let f = facts("w".into(), ix.last(5), vec![]);
        let s = sentences(&f);
        assert!(
            s.contains(&"alice made 3 requests; 2 of them were db.read on payments.".to_string()),
            "{s:?}"
        );
    }
}
