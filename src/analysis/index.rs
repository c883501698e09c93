//! The analysis index: every committed entry the analysis node has seen, in
//! log order, with its category, plus the distinct values of each field
//! (the vocabulary questions are mapped onto).
//!
//! Pure and in memory: the node rebuilds it from its own replica of the log
//! at start (the log is the source of truth; the index is a cache of it).
//!
//! # Invariants
//! - Entries are pushed in strictly increasing index order, without gaps
//!   after the first (asserted), so "the last N entries" and index ranges
//!   are slices.
//! - The vocabulary counts equal the number of held entries carrying each
//!   value (checked in tests after eviction).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;

use super::category::Category;
use super::vocabulary::{self, ActorKind, Client, Clients, Network, Verb};
use crate::ledger::event::{Event, Outcome};
use crate::limits::ANALYSIS_INDEX_ENTRIES_MAX;

/// How an entry's category was decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "by", content = "name")]
pub enum Decided {
    /// A rule decided; its name is the reason shown.
    Rule(&'static str),
    /// The model scored the candidate labels.
    Model,
    /// Rules were unsure and the model has not scored it yet; until then it
    /// counts as `other`.
    Pending,
}

/// One committed entry as the analyst sees it. Strings are shared with the
/// vocabulary, so a million entries by a hundred actors hold a hundred
/// actor strings.
#[derive(Clone, Debug)]
pub struct IndexedEntry {
    pub index: u64,
    pub time_unix_nanos: i64,
    pub actor: Arc<str>,
    pub action: Arc<str>,
    pub resource: Arc<str>,
    pub source: Arc<str>,
    pub ip: Option<Arc<str>>,
    pub outcome: Outcome,
    pub category: Category,
    pub decided: Decided,
    /// Read once at push from the fields above (see [`vocabulary`]), so a
    /// question over a million entries does not parse a million names.
    pub traits: Traits,
}

/// What the vocabulary reads from an entry's fields.
#[derive(Clone, Debug)]
pub struct Traits {
    pub verb: Option<Verb>,
    pub service: Option<Arc<str>>,
    pub platform: &'static str,
    pub clients: Clients,
    pub actor_kind: Option<ActorKind>,
    pub ip: Option<std::net::IpAddr>,
}

impl Traits {
    fn of(event: &Event) -> Traits {
        Traits {
            verb: Verb::of_action(&event.action),
            service: vocabulary::service_of(
                &event.action,
                &event.source,
                event
                    .details
                    .get("protoPayload")
                    .and_then(|p| p.get("serviceName"))
                    .and_then(|s| s.as_str()),
            )
            .map(Arc::from),
            platform: vocabulary::platform_of(&event.source),
            clients: Clients::of(event.actor.user_agent.as_deref()),
            actor_kind: ActorKind::of(event.actor.kind.as_deref(), &event.actor.id),
            ip: event.actor.ip.as_deref().and_then(|ip| ip.parse().ok()),
        }
    }
}

/// Which field of an entry a value belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Actor,
    Action,
    Resource,
}

impl Field {
    pub const ALL: [Field; 3] = [Field::Actor, Field::Resource, Field::Action];

    pub fn as_str(&self) -> &'static str {
        match self {
            Field::Actor => "actor",
            Field::Action => "action",
            Field::Resource => "resource",
        }
    }
}

/// A filter over entries: every present condition must hold; within one
/// condition, any of its values may ("failed or denied"). An empty list is
/// no condition. Times are half-open, `[from, to)`, on the event's own time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub from_unix_nanos: Option<i64>,
    pub to_unix_nanos: Option<i64>,
    pub actors: Vec<String>,
    pub resources: Vec<String>,
    pub actions: Vec<String>,
    /// What the action does ("listed", "deleted").
    pub verbs: Vec<Verb>,
    pub category: Option<Category>,
    pub outcomes: Vec<Outcome>,
    /// Services or platforms (`s3`, `kubernetes`, `gcp`).
    pub services: Vec<String>,
    pub clients: Vec<Client>,
    pub actor_kinds: Vec<ActorKind>,
    pub networks: Vec<Network>,
}

/// True when `values` is empty (no condition) or holds `v`.
fn any_of<T: PartialEq + ?Sized, U: std::borrow::Borrow<T>>(values: &[U], v: &T) -> bool {
    values.is_empty() || values.iter().any(|x| x.borrow() == v)
}

impl Filter {
    pub fn matches(&self, e: &IndexedEntry) -> bool {
        let t = &e.traits;
        self.from_unix_nanos
            .is_none_or(|from| e.time_unix_nanos >= from)
            && self.to_unix_nanos.is_none_or(|to| e.time_unix_nanos < to)
            && any_of::<str, _>(&self.actors, &e.actor)
            && any_of::<str, _>(&self.resources, &e.resource)
            && any_of::<str, _>(&self.actions, &e.action)
            && (self.verbs.is_empty() || t.verb.is_some_and(|v| self.verbs.contains(&v)))
            && self.category.is_none_or(|c| e.category == c)
            && any_of(&self.outcomes, &e.outcome)
            && (self.services.is_empty()
                || self
                    .services
                    .iter()
                    .any(|s| s == t.platform || t.service.as_deref().is_some_and(|ts| ts == s)))
            && t.clients.match_all(&self.clients)
            && (self.actor_kinds.is_empty()
                || t.actor_kind.is_some_and(|k| self.actor_kinds.contains(&k)))
            && (self.networks.is_empty()
                || t.ip
                    .is_some_and(|ip| self.networks.iter().any(|n| n.contains(&ip))))
    }

    /// True when nothing narrows the entries.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }
}

/// The index itself.
#[derive(Default)]
pub struct Index {
    entries: VecDeque<IndexedEntry>,
    /// Distinct values per field with the number of held entries carrying
    /// them; the candidates that questions are matched against.
    vocab: HashMap<Field, BTreeMap<Arc<str>, u64>>,
    /// Entries dropped from the front to stay within the limit.
    evicted: u64,
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    /// Index of the next entry expected, i.e. how far the index has read.
    pub fn next_index(&self) -> u64 {
        self.entries.back().map_or(self.evicted, |e| e.index + 1)
    }

    /// Oldest entry still held (older ones were evicted).
    pub fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    fn intern(&mut self, field: Field, value: &str) -> Arc<str> {
        let map = self.vocab.entry(field).or_default();
        if let Some(n) = map.get_mut(value) {
            *n += 1;
            if let Some((k, _)) = map.get_key_value(value) {
                return Arc::clone(k);
            }
        }
        let k: Arc<str> = Arc::from(value);
        map.insert(Arc::clone(&k), 1);
        k
    }

    fn release(&mut self, field: Field, value: &Arc<str>) {
        if let Some(map) = self.vocab.get_mut(&field) {
            if let Some(n) = map.get_mut(value) {
                *n -= 1;
                if *n == 0 {
                    map.remove(value);
                }
            }
        }
    }

    /// Adds the entry at `index`, which must be the next one.
    pub fn push(&mut self, index: u64, event: &Event, category: Category, decided: Decided) {
        if !self.entries.is_empty() {
            assert_eq!(index, self.next_index(), "index entries arrive in order");
        } else {
            self.evicted = index;
        }
        let actor = self.intern(Field::Actor, &event.actor.id);
        let action = self.intern(Field::Action, &event.action);
        let resource = self.intern(Field::Resource, &event.resource);
        let traits = Traits::of(event);
        self.entries.push_back(IndexedEntry {
            index,
            time_unix_nanos: event.time_unix_nanos,
            actor,
            action,
            resource,
            source: Arc::from(event.source.as_str()),
            ip: event.actor.ip.as_deref().map(Arc::from),
            outcome: event.outcome,
            category,
            decided,
            traits,
        });
        while self.entries.len() > ANALYSIS_INDEX_ENTRIES_MAX {
            if let Some(old) = self.entries.pop_front() {
                self.release(Field::Actor, &old.actor);
                self.release(Field::Action, &old.action);
                self.release(Field::Resource, &old.resource);
                self.evicted = old.index + 1;
            }
        }
    }

    pub fn get(&self, index: u64) -> Option<&IndexedEntry> {
        let first = self.first_index()?;
        let at = usize::try_from(index.checked_sub(first)?).ok()?;
        self.entries.get(at)
    }

    /// Replaces a pending category with the model's choice.
    pub fn set_category(&mut self, index: u64, category: Category, decided: Decided) -> bool {
        let Some(first) = self.first_index() else {
            return false;
        };
        let Some(at) = index
            .checked_sub(first)
            .and_then(|d| usize::try_from(d).ok())
        else {
            return false;
        };
        match self.entries.get_mut(at) {
            Some(e) => {
                e.category = category;
                e.decided = decided;
                true
            }
            None => false,
        }
    }

    /// The oldest entries whose category is still pending, at most `limit`.
    pub fn pending(&self, limit: usize) -> Vec<u64> {
        self.entries
            .iter()
            .filter(|e| e.decided == Decided::Pending)
            .take(limit)
            .map(|e| e.index)
            .collect()
    }

    /// Matching entries, oldest first.
    pub fn select<'a>(&'a self, filter: &'a Filter) -> impl Iterator<Item = &'a IndexedEntry> + 'a {
        self.entries.iter().filter(move |e| filter.matches(e))
    }

    /// The last `n` entries.
    pub fn last(&self, n: usize) -> impl Iterator<Item = &IndexedEntry> {
        self.entries
            .iter()
            .skip(self.entries.len().saturating_sub(n))
    }

    /// Distinct values of a field with their entry counts.
    pub fn values(&self, field: Field) -> impl Iterator<Item = (&str, u64)> {
        self.vocab
            .get(&field)
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, n)| (&**k, *n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::event::Actor;

    pub(crate) fn event(actor: &str, action: &str, resource: &str, t: i64) -> Event {
        Event {
            time_unix_nanos: t,
            actor: Actor {
                id: actor.into(),
                kind: None,
                ip: None,
                user_agent: None,
            },
            action: action.into(),
            resource: resource.into(),
            outcome: Outcome::Success,
            source: "test".into(),
            details: Default::default(),
            idempotency_key: None,
        }
    }

    #[test]
    fn filters_combine_and_times_are_half_open() {
        let mut ix = Index::new();
        ix.push(
            0,
            &event("alice", "db.read", "payments", 10),
            Category::DataAccess,
            Decided::Model,
        );
        ix.push(
            1,
            &event("bob", "db.read", "payments", 20),
            Category::DataAccess,
            Decided::Model,
        );
        ix.push(
            2,
            &event("alice", "login", "console", 30),
            Category::AuthSuccess,
            Decided::Rule("r"),
        );
        let f = Filter {
            actors: vec!["alice".into()],
            ..Filter::default()
        };
        assert_eq!(
            ix.select(&f).map(|e| e.index).collect::<Vec<_>>(),
            vec![0, 2]
        );
        let f = Filter {
            from_unix_nanos: Some(10),
            to_unix_nanos: Some(30),
            resources: vec!["payments".into()],
            ..Filter::default()
        };
        assert_eq!(
            ix.select(&f).map(|e| e.index).collect::<Vec<_>>(),
            vec![0, 1]
        );
        // Values of one condition are alternatives; conditions all hold.
        let f = Filter {
            actors: vec!["bob".into(), "alice".into()],
            outcomes: vec![Outcome::Failure, Outcome::Success],
            verbs: vec![Verb::Get],
            ..Filter::default()
        };
        assert_eq!(
            ix.select(&f).map(|e| e.index).collect::<Vec<_>>(),
            vec![0, 1],
            "db.read gets; login is no read"
        );
        let f = Filter {
            category: Some(Category::AuthSuccess),
            ..Filter::default()
        };
        assert_eq!(ix.select(&f).count(), 1);
        assert_eq!(
            ix.values(Field::Actor).collect::<Vec<_>>(),
            vec![("alice", 2), ("bob", 1)]
        );
        assert_eq!(ix.last(2).map(|e| e.index).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(ix.next_index(), 3);
    }

    #[test]
    fn pending_categories_are_listed_and_replaced() {
        let mut ix = Index::new();
        ix.push(
            5,
            &event("a", "x", "r", 1),
            Category::Other,
            Decided::Pending,
        );
        ix.push(
            6,
            &event("a", "y", "r", 2),
            Category::Other,
            Decided::Rule("r"),
        );
        assert_eq!(ix.pending(10), vec![5]);
        assert!(ix.set_category(5, Category::DataAccess, Decided::Model));
        assert!(ix.pending(10).is_empty());
        assert_eq!(ix.get(5).map(|e| e.category), Some(Category::DataAccess));
        assert!(!ix.set_category(99, Category::Other, Decided::Model));
    }

    #[test]
    #[should_panic(expected = "in order")]
    fn gaps_are_a_bug() {
        let mut ix = Index::new();
        ix.push(0, &event("a", "x", "r", 1), Category::Other, Decided::Model);
        ix.push(2, &event("a", "x", "r", 1), Category::Other, Decided::Model);
    }
}
