//! The kept flags: one [`StoredFlag`] per incident the detector opened,
//! grown by each update the detector reports, bounded, and listed for
//! `Anomalies`, questions and summaries.
//!
//! A stored flag is an incident as the analyst shows it: every flag raised
//! on it (its kinds, their highest scores and latest reasons) and every
//! entry it lists so far, which grows as the detector adds entries. Each
//! change gets the next `seq`, and the stored flag carries the `seq` of its
//! latest change, so a follower that lists and then follows skips only
//! changes the list already showed, and sees every later one.
//!
//! Kept in memory only: flags are recomputed from the log at start (the
//! detector is deterministic over the log, so incident ids are the same).

use std::collections::VecDeque;

use crate::analysis::anomaly::IncidentUpdate;
use crate::analysis::summary::FlagFact;
use crate::limits::{FLAGS_KEPT_MAX, FLAG_ENTRIES_KEPT_MAX};

/// One kind of flag raised on an incident.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentFlag {
    pub kind: String,
    /// The highest score a flag of this kind had.
    pub score: f32,
    /// The latest flag of this kind's reason (its counts are the latest).
    pub reason: String,
}

/// A flag as kept and streamed: one incident, with the flags raised on it
/// and the entries it lists so far.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFlag {
    /// Position among all changes to the kept flags, from 0: that of this
    /// flag's latest change. A stream that lists the kept flags and then
    /// follows changes skips what it listed.
    pub seq: u64,
    /// The detector's incident id, the same in every change of one incident.
    pub incident: u64,
    /// What the incident gathers entries by, in words.
    pub incident_key: String,
    /// Kind, score and reason of the highest-scoring flag raised on the
    /// incident (the first raised, on a tie).
    pub kind: String,
    pub score: f32,
    pub reason: String,
    /// Every kind of flag raised on it, first raised first.
    pub flags: Vec<IncidentFlag>,
    /// The incident's evidence so far, ascending: the entries that raised
    /// its flags and those that joined it as part of what happened (see
    /// `anomaly/incident.rs`).
    pub entries: Vec<u64>,
    /// Context: the actor's other entries while the incident was open,
    /// ascending; never also in `entries`.
    pub context: Vec<u64>,
    /// Entries that joined after the incident was full, not listed.
    pub entries_unlisted: u64,
    /// Actor of the entry that opened it.
    pub actor: String,
    /// Event time of the entry that opened it.
    pub time_unix_nanos: i64,
    /// Latest event time among its entries.
    pub last_unix_nanos: i64,
}

impl StoredFlag {
    /// The flag an incident's first update opens, if it raised a flag (a
    /// first update always does; see `IncidentUpdate`).
    fn opened(u: &IncidentUpdate) -> Option<StoredFlag> {
        let first = u.flags.first()?;
        let mut f = StoredFlag {
            seq: 0,
            incident: u.id,
            incident_key: u.key.to_string(),
            kind: String::new(),
            score: 0.0,
            reason: String::new(),
            flags: Vec::new(),
            entries: Vec::new(),
            context: Vec::new(),
            entries_unlisted: 0,
            actor: first.actor.clone(),
            time_unix_nanos: first.time_unix_nanos,
            last_unix_nanos: first.time_unix_nanos,
        };
        f.apply(u);
        Some(f)
    }

    /// Merges a later update of the same incident.
    fn apply(&mut self, u: &IncidentUpdate) {
        assert_eq!(self.incident, u.id, "an update of another incident");
        for raised in &u.flags {
            let kind = raised.kind.as_str();
            match self.flags.iter_mut().find(|f| f.kind == kind) {
                Some(f) => {
                    f.score = f.score.max(raised.score);
                    f.reason.clone_from(&raised.reason);
                }
                None => self.flags.push(IncidentFlag {
                    kind: kind.to_string(),
                    score: raised.score,
                    reason: raised.reason.clone(),
                }),
            }
        }
        if let Some(top) = self
            .flags
            .iter()
            .reduce(|best, f| if f.score > best.score { f } else { best })
        {
            self.kind.clone_from(&top.kind);
            self.score = top.score;
            self.reason.clone_from(&top.reason);
        }
        let in_order = match (self.entries.last(), u.added.first()) {
            (Some(last), Some(first)) => last < first,
            _ => true,
        };
        self.entries.extend(&u.added);
        if !in_order {
            self.entries.sort_unstable();
        }
        // Evidence now that was context before (a flag raised later cited
        // it), then the new context.
        if !u.added.is_empty() {
            self.context.retain(|i| u.added.binary_search(i).is_err());
        }
        self.context.extend(&u.context);
        self.context.sort_unstable();
        self.context.dedup();
        self.entries_unlisted = u.unlisted;
        self.last_unix_nanos = self.last_unix_nanos.max(u.last_unix_nanos);
    }

    /// Entries it lists, evidence and context.
    fn listed(&self) -> usize {
        self.entries.len() + self.context.len()
    }

    /// Whether the incident was active at some time in `[from, to)` (either
    /// bound optional): opened before `to` and active since `from`.
    pub fn within(&self, from: Option<i64>, to: Option<i64>) -> bool {
        from.is_none_or(|t| self.last_unix_nanos >= t)
            && to.is_none_or(|t| self.time_unix_nanos < t)
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

/// The kept flags, oldest incident first; bounded by [`FLAGS_KEPT_MAX`]
/// flags and [`FLAG_ENTRIES_KEPT_MAX`] listed entries, the oldest dropped.
pub(super) struct KeptFlags {
    /// By incident id, ascending: incidents are opened, and so pushed, in
    /// id order, so an update finds its flag by binary search.
    list: VecDeque<StoredFlag>,
    /// Entries listed across `list`, evidence and context.
    entries: usize,
    /// Changes since start, kept or dropped: the next `seq`.
    changes: u64,
}

impl KeptFlags {
    pub(super) fn new() -> KeptFlags {
        KeptFlags {
            list: VecDeque::new(),
            entries: 0,
            changes: 0,
        }
    }

    /// The `seq` the next change will get.
    pub(super) fn next_seq(&self) -> u64 {
        self.changes
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &StoredFlag> {
        self.list.iter()
    }

    /// Flags active in `[from, to)` with at least `min_score`, oldest first.
    pub(super) fn listed(
        &self,
        from: Option<i64>,
        to: Option<i64>,
        min_score: f32,
    ) -> Vec<StoredFlag> {
        self.list
            .iter()
            .filter(|f| f.within(from, to) && f.score >= min_score)
            .cloned()
            .collect()
    }

    /// Applies the updates the detector reported for one entry, handing
    /// each changed flag, as it now is, to `changed`. An update of a flag
    /// already dropped is ignored: that incident is older than every kept.
    pub(super) fn apply(
        &mut self,
        updates: &[IncidentUpdate],
        mut changed: impl FnMut(&StoredFlag),
    ) {
        for u in updates {
            let at = match self.list.binary_search_by_key(&u.id, |f| f.incident) {
                Ok(at) => {
                    let f = &mut self.list[at];
                    let before = f.listed();
                    f.apply(u);
                    self.entries = self.entries + f.listed() - before;
                    at
                }
                // Incidents open in id order, so a new one goes last.
                Err(at) if at == self.list.len() => {
                    let Some(f) = StoredFlag::opened(u) else {
                        continue;
                    };
                    self.entries += f.listed();
                    self.list.push_back(f);
                    at
                }
                Err(_) => continue,
            };
            let f = &mut self.list[at];
            f.seq = self.changes;
            self.changes += 1;
            changed(f);
        }
        self.trim();
    }

    fn trim(&mut self) {
        while self.list.len() > FLAGS_KEPT_MAX || self.entries > FLAG_ENTRIES_KEPT_MAX {
            let Some(oldest) = self.list.pop_front() else {
                break;
            };
            self.entries -= oldest.listed();
        }
        assert!(
            self.list.len() <= FLAGS_KEPT_MAX && self.entries <= FLAG_ENTRIES_KEPT_MAX,
            "kept flags over their bounds: {} flags, {} entries",
            self.list.len(),
            self.entries
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyst::Analyst;
    use crate::analysis::anomaly::{Flag, FlagKind, IncidentKey};
    use crate::ledger::event::{Actor, Event, Outcome};
    use crate::limits::ANOMALY_INCIDENT_ENTRIES_MAX;

    const S: i64 = 1_000_000_000;
    const T0: i64 = 1_600_000_000 * S;

    fn event(actor: &str, action: &str, t: i64, outcome: Outcome) -> Event {
        Event {
            time_unix_nanos: T0 + t * S,
            actor: Actor {
                id: actor.into(),
                kind: None,
                ip: Some("10.0.0.1".into()),
                user_agent: Some("aws-cli/2.13.5 Python/3.11 Linux/6.1".into()),
            },
            action: action.into(),
            resource: format!("arn:aws:s3:::bank/{action}"),
            outcome,
            source: "cloudtrail".into(),
            details: Default::default(),
            idempotency_key: None,
        }
    }

    #[test]
    fn an_incident_is_one_kept_flag_with_its_top_score_every_reason_and_growing_entries() {
        let analyst = Analyst::new(Err("no model in this test".into()), false);
        let eve = "arn:aws:iam::1:user/eve";
        let mut stop = event(eve, "cloudtrail:StopLogging", 0, Outcome::Success);
        stop.resource = "arn:aws:cloudtrail:us-east-1:1:trail/main".into();
        analyst.observe(0, &stop);
        let burst =
            u64::from(crate::analysis::anomaly::DetectorConfig::default().failure_burst_min);
        for i in 1..=burst {
            analyst.observe(
                i,
                &event(eve, "s3:GetObject", 10 + i as i64, Outcome::Denied),
            );
        }
        analyst.observe(
            burst + 1,
            &event(eve, "s3:ListBuckets", 30, Outcome::Success),
        );
        let flags = analyst.flags(None, None, 0.0);
        assert_eq!(flags.len(), 1, "{flags:#?}");
        let f = &flags[0];
        let kinds: Vec<&str> = f.flags.iter().map(|k| k.kind.as_str()).collect();
        assert_eq!(kinds, ["sensitive_change", "failure_burst"]);
        assert!(
            f.flags[0].reason.contains("stopped CloudTrail logging"),
            "{f:?}"
        );
        assert!(
            f.flags[1]
                .reason
                .contains(&format!("{burst} failed or denied")),
            "{f:?}"
        );
        assert_eq!(
            (f.kind.as_str(), f.score),
            ("sensitive_change", 0.9),
            "the top flag"
        );
        assert_eq!(
            f.entries,
            (0..=burst + 1).collect::<Vec<u64>>(),
            "and the entry that joined after"
        );
        assert_eq!(f.incident_key, format!("actor {eve}"));
        assert_eq!(f.last_unix_nanos, T0 + 30 * S);
        // Listed by the time it was active, not only when it was raised.
        assert_eq!(analyst.flags(Some(T0 + 20 * S), None, 0.0).len(), 1);
        assert!(analyst.flags(Some(T0 + 31 * S), None, 0.0).is_empty());
        assert!(analyst.flags(None, Some(T0), 0.0).is_empty());
    }

    #[test]
    fn a_follower_gets_each_change_of_a_listed_incident_after_the_cursor() {
        let analyst = Analyst::new(Err("no model in this test".into()), false);
        let session = "arn:aws:sts::1:assumed-role/Web/i-0317f6c6b66ae9c40";
        let laptop = |t: i64| {
            let mut e = event(session, "s3:ListObjects", t, Outcome::Success);
            e.actor.user_agent = Some("aws-cli/1.18.136 Python/3.8.5 Darwin/19.5.0".into());
            e
        };
        let mut live = analyst.subscribe_flags();
        analyst.observe(0, &laptop(0));
        let (listed, cursor) = analyst.flags_and_cursor(None, None, 0.0);
        assert_eq!((listed.len(), listed[0].entries.clone()), (1, vec![0]));
        // The instance's own call does not join; the laptop's next one does.
        analyst.observe(1, &event(session, "s3:GetObject", 5, Outcome::Success));
        analyst.observe(2, &laptop(10));
        let mut changes = Vec::new();
        while let Ok(f) = live.try_recv() {
            if f.seq >= cursor {
                changes.push((f.incident, f.entries));
            }
        }
        assert_eq!(changes, [(listed[0].incident, vec![0, 2])]);
    }

    fn opening(id: u64, entries: std::ops::Range<u64>) -> IncidentUpdate {
        IncidentUpdate {
            id,
            key: IncidentKey::Actor(format!("a{id}")),
            flags: vec![Flag {
                kind: FlagKind::MassRead,
                score: 0.5,
                reason: "read".into(),
                entries: vec![entries.start],
                actor: format!("a{id}"),
                time_unix_nanos: 0,
                key: IncidentKey::Actor(format!("a{id}")),
            }],
            added: entries.collect(),
            context: Vec::new(),
            unlisted: 0,
            last_unix_nanos: 0,
        }
    }

    #[test]
    fn a_kind_raised_again_keeps_its_highest_score_and_its_latest_reason() {
        let mut kept = KeptFlags::new();
        let mut first = opening(0, 0..3);
        first.flags[0].score = 0.6;
        kept.apply(&[first.clone()], |_| {});
        let mut again = first;
        again.flags[0].score = 0.5;
        again.flags[0].reason = "read 60".into();
        again.added = vec![3];
        kept.apply(&[again], |_| {});
        let f = kept.iter().next().unwrap();
        assert_eq!(f.flags.len(), 1);
        assert_eq!(
            (f.flags[0].score, f.flags[0].reason.as_str()),
            (0.6, "read 60")
        );
        assert_eq!((f.score, f.reason.as_str()), (0.6, "read 60"));
        assert_eq!(f.entries, [0, 1, 2, 3]);
    }

    #[test]
    fn kept_flags_stay_within_their_entry_budget_dropping_the_oldest() {
        let mut kept = KeptFlags::new();
        let full = ANOMALY_INCIDENT_ENTRIES_MAX as u64;
        let n = (FLAG_ENTRIES_KEPT_MAX as u64 / full) + 10;
        for id in 0..n {
            kept.apply(&[opening(id, id * full..(id + 1) * full)], |_| {});
        }
        assert!(kept.entries <= FLAG_ENTRIES_KEPT_MAX);
        assert_eq!(
            kept.entries,
            kept.iter().map(|f| f.entries.len()).sum::<usize>()
        );
        let oldest = kept.iter().next().unwrap().incident;
        assert!(oldest >= 10, "the oldest went first");
        assert_eq!(kept.iter().last().unwrap().incident, n - 1);
        // A change to an incident no longer kept is ignored.
        let mut seen = 0;
        kept.apply(
            &[IncidentUpdate {
                flags: Vec::new(),
                ..opening(0, n * full..n * full + 1)
            }],
            |_| seen += 1,
        );
        assert_eq!(seen, 0);
        assert!(kept.iter().all(|f| f.incident != 0));
    }
}
