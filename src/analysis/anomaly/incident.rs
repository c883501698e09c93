//! Incidents: the entries of one flagged session, actor or account, grouped
//! under the flags raised on it, and growing while it stays active.
//!
//! A flag opens an incident keyed by what it is about ([`IncidentKey`]);
//! while the incident is open every later entry with that key joins it, and
//! a later flag on the same key joins it too (one incident, several flags)
//! instead of opening a copy. The entries that raised a flag are listed in
//! its incident, along with the entry it was raised on.
//!
//! # Evidence and context
//! An incident lists its entries in two lists. **Evidence** is what an
//! analyst exports: the entries that raised its flags, and every entry of
//! an incident whose key makes each entry part of what happened (a stolen
//! session's calls, the failed logins against one account, the events of a
//! burst, mass access or privilege-then-access window). **Context** is the
//! rest of what the actor did while a single-event incident (a detection,
//! a sensitive change, a security alert, a baseline deviation) was open:
//! worth reading beside the flagged event, but not evidence of anything by
//! itself, so an export of the evidence does not sweep in the actor's
//! routine calls.
//!
//! An actor's flags come in two levels, apart: review (score 0.5 and above)
//! and context (below). Each level keeps its own incident per actor, so a
//! weak baseline deviation does not take on the score of a detection raised
//! on the same actor minutes before, nor lift its entry into that
//! detection's evidence.
//!
//! # Open and closed
//! An incident is open to an entry whose event time lies within the
//! incident's idle window of its entries (before the first or after the
//! last: event times may be out of order), as long as the incident then
//! spans at most `ANOMALY_INCIDENT_SPAN_S_MAX`. The idle window is its
//! flags' (the longest, once several joined): a window flag's own window,
//! [`DetectorConfig::incident_idle_s`] for a session flag (instance
//! credentials off the host, privilege change then sensitive access), and
//! [`DetectorConfig::event_incident_idle_s`] for a single-event flag. An
//! entry with the key past the window closes the incident: a later flag on
//! the key opens a new one.
//!
//! # Memory
//! At most `ANOMALY_INCIDENTS_OPEN_MAX` incidents are open, the least
//! recently grown forgotten first; each lists at most
//! `ANOMALY_INCIDENT_ENTRIES_MAX` entries, its first, and counts the
//! entries that join after that. Nothing reported is lost when an incident
//! is forgotten or closed: every change is reported as it happens
//! ([`IncidentUpdate`]), and the detector keeps only what it needs to place
//! the next entry.

use std::fmt;

use super::instance_credentials::off_host_use;
use super::state::Lru;
use super::{DetectorConfig, Flag, FlagKind, Observed, NANOS_PER_S, REVIEW_SCORE_MIN};
use crate::analysis::category::Category;
use crate::limits::{
    ANOMALY_INCIDENTS_OPEN_MAX, ANOMALY_INCIDENT_CONTEXT_MAX, ANOMALY_INCIDENT_ENTRIES_MAX,
    ANOMALY_INCIDENT_SPAN_S_MAX,
};

/// What an incident gathers entries by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IncidentKey {
    /// Every entry of one actor: most flags are about what an actor did.
    Actor(String),
    /// The calls of one EC2 instance role session made from a desktop
    /// client, and not the instance's own calls with the same session:
    /// those are the host doing its job, and would bury the stolen use.
    OffHostSession(String),
    /// Logins, failed or not, against one account: failed logins from many
    /// actors converge there, and a success after them matters most.
    Target(String),
}

impl IncidentKey {
    /// Its name among the open incidents at `level`: a tag, then the name,
    /// so an actor and an account with the same name stay apart, and an
    /// actor's review and context incidents too.
    fn slot(&self, level: Level) -> String {
        let level = match level {
            Level::Review => 'r',
            Level::Context => 'c',
        };
        match self {
            IncidentKey::Actor(a) => format!("a{level}\0{a}"),
            IncidentKey::OffHostSession(s) => format!("o{level}\0{s}"),
            IncidentKey::Target(t) => format!("t{level}\0{t}"),
        }
    }
}

/// Whether an incident's flags ask for review or are context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Review,
    Context,
}

impl Level {
    fn of(score: f32) -> Level {
        if score >= REVIEW_SCORE_MIN {
            Level::Review
        } else {
            Level::Context
        }
    }
}

impl fmt::Display for IncidentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IncidentKey::Actor(a) => write!(f, "actor {a}"),
            IncidentKey::OffHostSession(s) => {
                write!(f, "role session {s} used from a desktop client")
            }
            IncidentKey::Target(t) => write!(f, "logins to account {t}"),
        }
    }
}

/// How one observed entry changed one incident. An incident is the sum of
/// its updates: the first opens it with at least one flag; later ones add
/// entries, flags, or both.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentUpdate {
    /// The incident, numbered from 0 in the order opened; the same in every
    /// update of one incident.
    pub id: u64,
    pub key: IncidentKey,
    /// Flags the entry raised on the incident (none if it only joined).
    pub flags: Vec<Flag>,
    /// Entries newly listed in the incident as evidence, ascending; none
    /// listed before.
    pub added: Vec<u64>,
    /// Entries newly listed as context (see the module documentation),
    /// ascending; never also evidence. At most
    /// `ANOMALY_INCIDENT_CONTEXT_MAX` in all, the first.
    pub context: Vec<u64>,
    /// Entries that joined the incident after it was full, not listed; in
    /// total so far.
    pub unlisted: u64,
    /// Latest event time among the incident's entries so far.
    pub last_unix_nanos: i64,
}

/// The open incidents. See the module documentation.
pub(super) struct Incidents {
    open: Lru<Open>,
    /// Id of the next incident opened.
    next_id: u64,
}

/// One open incident: only what placing the next entry needs.
struct Open {
    id: u64,
    first_ns: i64,
    last_ns: i64,
    idle_ns: i64,
    /// Listed entries, ascending and distinct; at most
    /// `ANOMALY_INCIDENT_ENTRIES_MAX`, so a duplicate is found by search.
    entries: Vec<u64>,
    /// Context entries, ascending, distinct, none in `entries`; at most
    /// `ANOMALY_INCIDENT_CONTEXT_MAX`.
    context: Vec<u64>,
    /// Whether an entry that joins by the key alone is evidence: set once a
    /// flag whose key makes every entry part of what happened is placed.
    joiners_are_evidence: bool,
    /// The highest entry index offered: entries come in log order, so any
    /// index above it is new to the incident, even when it is full.
    newest: u64,
    unlisted: u64,
}

impl Open {
    fn new(id: u64, time_ns: i64, idle_ns: i64) -> Open {
        Open {
            id,
            first_ns: time_ns,
            last_ns: time_ns,
            idle_ns,
            entries: Vec::new(),
            context: Vec::new(),
            joiners_are_evidence: false,
            newest: 0,
            unlisted: 0,
        }
    }

    /// Whether an entry at `time_ns` may join.
    fn takes(&self, time_ns: i64) -> bool {
        let span = self
            .last_ns
            .max(time_ns)
            .saturating_sub(self.first_ns.min(time_ns));
        time_ns >= self.first_ns.saturating_sub(self.idle_ns)
            && time_ns <= self.last_ns.saturating_add(self.idle_ns)
            && span <= i64::from(ANOMALY_INCIDENT_SPAN_S_MAX) * NANOS_PER_S
    }

    /// Whether no entry of the key at `time_ns` or later may join: it came
    /// after the idle window (event times move forward per key).
    fn closed_by(&self, time_ns: i64) -> bool {
        time_ns > self.last_ns.saturating_add(self.idle_ns)
    }

    /// Adds the entries `indices`, one of them observed at `time_ns`, and
    /// returns those newly listed, ascending. Past the cap an entry never
    /// offered before is counted instead; an older one offered again (a
    /// flag's earlier entries) cannot be told from one already counted, so
    /// it is not.
    fn add(&mut self, time_ns: i64, indices: &[u64]) -> Vec<u64> {
        self.first_ns = self.first_ns.min(time_ns);
        self.last_ns = self.last_ns.max(time_ns);
        let mut added = Vec::new();
        for &i in indices {
            let fresh = self.entries.is_empty() || i > self.newest;
            match self.entries.binary_search(&i) {
                Ok(_) => {}
                Err(_) if self.entries.len() >= ANOMALY_INCIDENT_ENTRIES_MAX => {
                    if fresh {
                        self.unlisted += 1;
                    }
                }
                Err(at) => {
                    self.entries.insert(at, i);
                    added.push(i);
                    // Evidence now, no longer context (a window flag may
                    // cite an entry that first joined as context). One the
                    // full evidence list cannot take stays listed as
                    // context, as it was reported.
                    if let Ok(at) = self.context.binary_search(&i) {
                        self.context.remove(at);
                    }
                }
            }
            self.newest = self.newest.max(i);
        }
        assert!(
            self.entries.len() <= ANOMALY_INCIDENT_ENTRIES_MAX,
            "incident {} lists {} entries, more than its cap",
            self.id,
            self.entries.len()
        );
        added.sort_unstable();
        added
    }

    /// Lists the entry `index`, observed at `time_ns`, as context unless it
    /// is already listed or the context is full; returns it if listed.
    fn add_context(&mut self, time_ns: i64, index: u64) -> Option<u64> {
        self.first_ns = self.first_ns.min(time_ns);
        self.last_ns = self.last_ns.max(time_ns);
        self.newest = self.newest.max(index);
        if self.entries.binary_search(&index).is_ok()
            || self.context.len() >= ANOMALY_INCIDENT_CONTEXT_MAX
        {
            return None;
        }
        let at = self.context.binary_search(&index).err()?;
        self.context.insert(at, index);
        Some(index)
    }

    fn update(&self, key: IncidentKey, added: Vec<u64>, context: Vec<u64>) -> IncidentUpdate {
        IncidentUpdate {
            id: self.id,
            key,
            flags: Vec::new(),
            added,
            context,
            unlisted: self.unlisted,
            last_unix_nanos: self.last_ns,
        }
    }
}

/// How an incident opened by a flag of `kind` grows: how long it stays
/// open without a new entry, seconds, and whether an entry that joins by
/// the key alone is evidence (a session's, an account's or a window's
/// entries are part of what happened; a single event's neighbours are
/// context). Every kind is named, so a new one must choose.
fn growth(config: &DetectorConfig, kind: FlagKind) -> (u32, bool) {
    match kind {
        FlagKind::FailureBurst => (config.failure_window_s, true),
        FlagKind::MassRead | FlagKind::MassExport => (config.mass_window_s, true),
        FlagKind::RateSpike => (config.rate_bucket_s, true),
        FlagKind::InstanceCredentialsOffHost | FlagKind::PrivilegeThenSensitive => {
            (config.incident_idle_s, true)
        }
        FlagKind::SecurityAlert
        | FlagKind::SensitiveChange
        | FlagKind::Detection
        | FlagKind::UnusualHour
        | FlagKind::NewResource
        | FlagKind::NewSourceIp
        | FlagKind::NewUserAgent
        | FlagKind::FirstSeenPair => (config.event_incident_idle_s, false),
    }
}

/// The keys whose open incidents the entry joins.
fn keys_of(e: &Observed) -> Vec<IncidentKey> {
    let event = e.event;
    let mut keys = vec![IncidentKey::Actor(event.actor.id.clone())];
    if off_host_use(event).is_some() {
        keys.push(IncidentKey::OffHostSession(event.actor.id.clone()));
    }
    if matches!(e.category, Category::FailedLogin | Category::AuthSuccess) {
        keys.push(IncidentKey::Target(event.resource.clone()));
    }
    keys
}

impl Incidents {
    pub(super) fn new() -> Incidents {
        Incidents {
            open: Lru::new(ANOMALY_INCIDENTS_OPEN_MAX),
            next_id: 0,
        }
    }

    /// Open incidents (at most `ANOMALY_INCIDENTS_OPEN_MAX`).
    #[cfg(test)]
    pub(super) fn open(&self) -> usize {
        self.open.len()
    }

    /// Places the entry `e` in the open incidents of its keys, then each
    /// flag it raised in the open incident of the flag's key, or a new one;
    /// returns every change, one update per incident.
    pub(super) fn record(
        &mut self,
        config: &DetectorConfig,
        e: &Observed,
        flags: Vec<Flag>,
    ) -> Vec<IncidentUpdate> {
        let time = e.time();
        let mut updates: Vec<IncidentUpdate> = Vec::new();
        // Nothing open, nothing to join: the common case costs no lookup.
        // The incidents the entry's own flags go to take it as evidence
        // below; it does not join them as context first.
        let flagged: Vec<String> = flags
            .iter()
            .map(|f| f.key.slot(Level::of(f.score)))
            .collect();
        if self.open.len() > 0 {
            for key in keys_of(e) {
                for level in [Level::Review, Level::Context] {
                    let slot = key.slot(level);
                    if flagged.contains(&slot) {
                        continue;
                    }
                    let Some(open) = self.open.get_mut(&slot) else {
                        continue;
                    };
                    if open.takes(time) {
                        let update = if open.joiners_are_evidence {
                            let added = open.add(time, &[e.index]);
                            open.update(key.clone(), added, Vec::new())
                        } else {
                            let context = open.add_context(time, e.index).into_iter().collect();
                            open.update(key.clone(), Vec::new(), context)
                        };
                        updates.push(update);
                    } else if open.closed_by(time) {
                        self.open.remove(&slot);
                    }
                }
            }
        }
        for flag in flags {
            let slot = flag.key.slot(Level::of(flag.score));
            let (idle_s, joiners_are_evidence) = growth(config, flag.kind);
            let idle_ns = i64::from(idle_s) * NANOS_PER_S;
            // An incident that cannot take the flag's entry (closed, or the
            // entry would stretch it past its span) gives way to a new one.
            if !self.open.get_mut(&slot).is_some_and(|o| o.takes(time)) {
                self.open
                    .insert(&slot, Open::new(self.next_id, time, idle_ns));
                self.next_id += 1;
            }
            let open = self
                .open
                .get_mut(&slot)
                .expect("the flag's incident was found open or just opened");
            open.idle_ns = open.idle_ns.max(idle_ns);
            open.joiners_are_evidence |= joiners_are_evidence;
            let mut cited = flag.entries.clone();
            cited.push(e.index);
            let added = open.add(time, &cited);
            match updates.iter_mut().find(|u| u.id == open.id) {
                Some(u) => {
                    u.added.extend(added);
                    u.added.sort_unstable();
                    u.unlisted = open.unlisted;
                    u.last_unix_nanos = open.last_ns;
                    u.flags.push(flag);
                }
                None => {
                    let mut u = open.update(flag.key.clone(), added, Vec::new());
                    u.flags.push(flag);
                    updates.push(u);
                }
            }
        }
        assert!(
            self.open.len() <= ANOMALY_INCIDENTS_OPEN_MAX,
            "{} incidents open, more than the cap",
            self.open.len()
        );
        updates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::anomaly::tests::{at, ev, of, Run};
    use crate::ledger::event::{Event, Outcome};
    use crate::limits::{ANOMALY_INCIDENT_CONTEXT_MAX, ANOMALY_INCIDENT_ENTRIES_MAX};

    const SESSION: &str = "arn:aws:sts::123456789123:assumed-role/MordorNginxStack-BankingWAFRole-9S3E0UAE1MM0/i-0317f6c6b66ae9c40";
    /// The attacker's laptop, as in the OTRF capture.
    const LAPTOP: &str = "[aws-cli/1.18.136 Python/3.8.5 Darwin/19.5.0 botocore/1.17.59]";
    /// The instance's own SDK.
    const INSTANCE_SDK: &str = "aws-sdk-go/1.35.5 (go1.15.2; linux; amd64)";

    fn call(agent: &str, action: &str, time_ns: i64) -> Event {
        let mut e = ev(
            SESSION,
            action,
            "arn:aws:s3:::bank",
            time_ns,
            Outcome::Success,
        );
        e.source = "cloudtrail".into();
        e.actor.ip = Some("1.2.3.4".into());
        e.actor.user_agent = Some(agent.into());
        e
    }

    /// The OTRF "EC2 proxy, S3 exfiltration" sequence: eleven calls with the
    /// instance's stolen session from a Mac, in the capture's log order and
    /// out-of-order event times (seconds after 01:00:00), a ten-minute pause
    /// among them, between the instance's own calls with the same session.
    #[test]
    fn a_session_used_from_a_desktop_gathers_all_its_calls_and_not_the_instances_own() {
        let desktop_s = [33, 53, 64, 154, 154, 110, 4, 760, 763, 800, 800];
        let mut run = Run::new();
        let (mut stolen, mut own) = (Vec::new(), Vec::new());
        let mut index = 0;
        for (n, s) in desktop_s.into_iter().enumerate() {
            // The instance keeps calling with its session as it always does.
            run.feed(
                &call(INSTANCE_SDK, "s3:GetObject", at(0, s - 1)),
                Category::DataAccess,
            );
            own.push(index);
            run.feed(
                &call(LAPTOP, &format!("s3:ListObjects{n}"), at(0, s)),
                Category::DataAccess,
            );
            stolen.push(index + 1);
            index += 2;
        }
        run.feed(
            &call(INSTANCE_SDK, "s3:GetObject", at(0, 900)),
            Category::DataAccess,
        );
        own.push(index);

        let flags = of(&run.flags, FlagKind::InstanceCredentialsOffHost);
        assert_eq!(flags.len(), 1, "one flag for one incident: {flags:#?}");
        let incidents = run.incidents();
        let off_host: Vec<_> = incidents
            .values()
            .filter(|i| i.kinds.contains(&FlagKind::InstanceCredentialsOffHost))
            .collect();
        assert_eq!(off_host.len(), 1, "{incidents:#?}");
        let incident = off_host[0];
        assert_eq!(
            incident.key,
            Some(IncidentKey::OffHostSession(SESSION.into()))
        );
        assert_eq!(incident.entries, stolen, "all eleven, and only them");
        assert!(own.iter().all(|i| !incident.entries.contains(i)));
    }

    #[test]
    fn an_incident_stops_growing_after_its_idle_window() {
        let idle_s = i64::from(DetectorConfig::default().incident_idle_s);
        let mut run = Run::new();
        run.feed(&call(LAPTOP, "s3:ListBuckets", at(0, 0)), Category::Other);
        // Within the window of the last entry, however far from the first.
        run.feed(
            &call(LAPTOP, "s3:ListObjects", at(0, idle_s - 1)),
            Category::Other,
        );
        run.feed(
            &call(LAPTOP, "s3:GetObject", at(0, 2 * idle_s - 2)),
            Category::Other,
        );
        // A quiet spell longer than the window: the incident is closed, and
        // the session's next use is a new incident with a flag of its own.
        run.feed(
            &call(LAPTOP, "s3:GetObject", at(0, 3 * idle_s)),
            Category::Other,
        );
        run.feed(
            &call(LAPTOP, "s3:GetObject", at(0, 3 * idle_s + 5)),
            Category::Other,
        );
        let incidents = run.incidents();
        let entries: Vec<&Vec<u64>> = incidents.values().map(|i| &i.entries).collect();
        assert_eq!(entries, [&vec![0, 1, 2], &vec![3, 4]], "{incidents:#?}");
        assert_eq!(
            of(&run.flags, FlagKind::InstanceCredentialsOffHost).len(),
            2
        );

        // A single-event flag's incident closes after a short window.
        let short_s = i64::from(DetectorConfig::default().event_incident_idle_s);
        let mut run = Run::new();
        run.feed(
            &stop_logging("arn:aws:iam::1:user/eve"),
            Category::ConfigChange,
        );
        let next = |s| {
            ev(
                "arn:aws:iam::1:user/eve",
                "s3:ListBuckets",
                "aws:s3",
                at(0, s),
                Outcome::Success,
            )
        };
        run.feed(&next(short_s), Category::Other);
        run.feed(&next(2 * short_s + 1), Category::Other);
        let incidents = run.incidents();
        assert_eq!(incidents.len(), 1);
        // The actor's next call is context, not evidence; the one after the
        // window is neither.
        assert_eq!(incidents[&0].entries, [0]);
        assert_eq!(incidents[&0].context, [1]);
    }

    #[test]
    fn a_single_events_incident_lists_the_actors_other_calls_as_context_up_to_its_cap() {
        let mut run = Run::new();
        let eve = "arn:aws:iam::1:user/eve";
        run.feed(&stop_logging(eve), Category::ConfigChange);
        let more = 3 * ANOMALY_INCIDENT_CONTEXT_MAX as i64;
        for i in 1..=more {
            run.feed(
                &ev(
                    eve,
                    "s3:ListBuckets",
                    "aws:s3",
                    at(0, i / 8),
                    Outcome::Success,
                ),
                Category::Other,
            );
        }
        // A second detection by eve, minutes later: evidence of the same
        // incident.
        run.feed(&stop_logging(eve), Category::ConfigChange);
        let incidents = run.incidents();
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        let incident = &incidents[&0];
        assert_eq!(incident.entries, [0, more as u64 + 1]);
        assert_eq!(incident.context.len(), ANOMALY_INCIDENT_CONTEXT_MAX);
        assert_eq!(incident.context[0], 1, "the first context is listed");
    }

    /// Places entry `index` (`event`, raising a flag of `kind` and `score`
    /// if given) straight into `incidents`; returns the updates.
    fn place(
        incidents: &mut Incidents,
        index: u64,
        event: &Event,
        flag: Option<(FlagKind, f32)>,
    ) -> Vec<IncidentUpdate> {
        let e = Observed {
            index,
            event,
            category: Category::Other,
        };
        let flags = flag
            .map(|(kind, score)| e.flag(kind, score, "test".into(), vec![index]))
            .into_iter()
            .collect();
        incidents.record(&DetectorConfig::default(), &e, flags)
    }

    /// Evidence and context of each incident, summed from its updates.
    fn summed(
        updates: &[IncidentUpdate],
    ) -> std::collections::BTreeMap<u64, (Vec<u64>, Vec<u64>, u64)> {
        let mut out: std::collections::BTreeMap<u64, (Vec<u64>, Vec<u64>, u64)> =
            Default::default();
        for u in updates {
            let (entries, context, unlisted) = out.entry(u.id).or_default();
            entries.extend(&u.added);
            context.retain(|i| !u.added.contains(i));
            context.extend(&u.context);
            *unlisted = u.unlisted;
            for i in entries.iter() {
                assert!(
                    !context.contains(i),
                    "entry {i} both evidence and context: {u:?}"
                );
            }
        }
        out
    }

    #[test]
    fn a_weak_flag_keeps_its_own_incident_beside_a_detection_on_the_same_actor() {
        let mut incidents = Incidents::new();
        let eve = "arn:aws:iam::1:user/eve";
        let call = |s: i64| ev(eve, "s3:ListBuckets", "aws:s3", at(0, s), Outcome::Success);
        let mut updates = Vec::new();
        updates.extend(place(
            &mut incidents,
            0,
            &call(0),
            Some((FlagKind::SensitiveChange, 0.9)),
        ));
        // A weak flag on eve seconds later: an incident of its own, at its
        // own level; in the detection's incident, eve's call is context.
        updates.extend(place(
            &mut incidents,
            1,
            &call(10),
            Some((FlagKind::NewUserAgent, 0.3)),
        ));
        updates.extend(place(&mut incidents, 2, &call(20), None));
        updates.extend(place(
            &mut incidents,
            3,
            &call(30),
            Some((FlagKind::Detection, 0.8)),
        ));
        let s = summed(&updates);
        assert_eq!(s.len(), 2, "{updates:#?}");
        assert_eq!(s[&0].0, [0, 3], "the detection's evidence");
        assert_eq!(s[&0].1, [1, 2], "and its context");
        assert_eq!(s[&1].0, [1], "the weak flag's own incident");
        assert_eq!(s[&1].1, [2, 3]);
    }

    #[test]
    fn a_full_incident_counts_later_flagged_entries_and_lists_none_as_context() {
        let mut incidents = Incidents::new();
        let eve = "arn:aws:iam::1:user/eve";
        let more = ANOMALY_INCIDENT_ENTRIES_MAX as u64 + 10;
        let mut updates = Vec::new();
        for i in 0..more {
            let e = ev(
                eve,
                "s3:GetObject",
                "secret",
                at(0, (i / 8) as i64),
                Outcome::Success,
            );
            updates.extend(place(
                &mut incidents,
                i,
                &e,
                Some((FlagKind::Detection, 0.7)),
            ));
        }
        let s = summed(&updates);
        assert_eq!(s.len(), 1);
        let (entries, context, unlisted) = &s[&0];
        assert_eq!(entries.len(), ANOMALY_INCIDENT_ENTRIES_MAX);
        assert!(
            context.is_empty(),
            "flagged entries are evidence, listed or counted"
        );
        assert_eq!(*unlisted, 10);
    }

    /// `actor` stops CloudTrail logging: a single-event flag.
    fn stop_logging(actor: &str) -> Event {
        let mut stop = ev(
            actor,
            "cloudtrail:StopLogging",
            "arn:aws:cloudtrail:us-east-1:1:trail/main",
            at(0, 0),
            Outcome::Success,
        );
        stop.source = "cloudtrail".into();
        stop
    }

    #[test]
    fn flags_on_one_key_within_the_window_share_one_incident() {
        let mut run = Run::new();
        let eve = "arn:aws:iam::1:user/eve";
        run.feed(&stop_logging(eve), Category::ConfigChange);
        for i in 0..5 {
            let denied = ev(
                eve,
                "s3:GetObject",
                &format!("secret{i}"),
                at(0, 10 + i),
                Outcome::Denied,
            );
            run.feed(&denied, Category::DataAccess);
        }
        assert_eq!(run.flags.len(), 2, "{:#?}", run.flags);
        let incidents = run.incidents();
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        let incident = &incidents[&0];
        assert_eq!(
            incident.kinds,
            [FlagKind::SensitiveChange, FlagKind::FailureBurst]
        );
        assert_eq!(incident.entries, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn failed_logins_against_one_account_gather_in_the_accounts_incident() {
        let mut run = Run::new();
        let login = |actor: &str, account: &str, s: i64, outcome: Outcome| {
            let mut e = ev(actor, "login", account, at(0, s), outcome);
            e.actor.ip = Some(format!("192.0.2.{}", s % 200));
            e
        };
        for i in 0..5 {
            run.feed(
                &login(
                    &format!("attacker{i}"),
                    "bob@example.com",
                    i * 5,
                    Outcome::Failure,
                ),
                Category::FailedLogin,
            );
        }
        // Another attacker, then the account's owner (or the attacker) in.
        run.feed(
            &login("attacker9", "bob@example.com", 60, Outcome::Failure),
            Category::FailedLogin,
        );
        run.feed(
            &login("bob@example.com", "bob@example.com", 90, Outcome::Success),
            Category::AuthSuccess,
        );
        // Not the same account; not a login.
        run.feed(
            &login("attacker9", "alice@example.com", 95, Outcome::Failure),
            Category::FailedLogin,
        );
        run.feed(
            &ev(
                "attacker3",
                "files:read",
                "bob@example.com",
                at(0, 96),
                Outcome::Success,
            ),
            Category::DataAccess,
        );
        let incidents = run.incidents();
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        let incident = &incidents[&0];
        assert_eq!(
            incident.key,
            Some(IncidentKey::Target("bob@example.com".into()))
        );
        assert_eq!(incident.entries, [0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_busy_actors_incident_ends_after_a_day() {
        let mut run = Run::new();
        // A failure burst: every later entry of the actor is evidence.
        for i in 0..5 {
            run.feed(
                &ev(
                    "scanner",
                    "s3:GetObject",
                    "secret",
                    at(0, i),
                    Outcome::Denied,
                ),
                Category::DataAccess,
            );
        }
        // Every 200 s, never quiet for the 300 s window, for 25 hours.
        let steps = 25 * 3600 / 200;
        for i in 1..=steps {
            run.feed(
                &ev(
                    "scanner",
                    "heartbeat",
                    "host/1",
                    at(0, 4 + i * 200),
                    Outcome::Success,
                ),
                Category::Other,
            );
        }
        let incidents = run.incidents();
        let day = i64::from(ANOMALY_INCIDENT_SPAN_S_MAX) / 200;
        assert_eq!(
            incidents[&0].entries.len() as i64,
            5 + day,
            "the burst and a day of entries: {:?}",
            incidents[&0].kinds
        );
    }

    #[test]
    fn incidents_stay_bounded_under_many_flagged_actors_and_long_incidents() {
        let mut run = Run::new();
        // Each of many actors raises a flag (a security alert) at once.
        let actors = 4 * ANOMALY_INCIDENTS_OPEN_MAX as i64;
        for i in 0..actors {
            let alert = ev(
                &format!("ids-{i}"),
                "threat.detected",
                "host/1",
                at(0, i / 100),
                Outcome::Unknown,
            );
            run.feed(&alert, Category::SecurityAlert);
        }
        assert_eq!(run.detector.incidents.open(), ANOMALY_INCIDENTS_OPEN_MAX);
        assert_eq!(run.incidents().len() as i64, actors, "each reported");
        // The most recent stay open and grow; the oldest were forgotten.
        let grow = |run: &mut Run, actor: &str| {
            run.feed(
                &ev(actor, "heartbeat", "host/1", at(0, 60), Outcome::Success),
                Category::Other,
            )
        };
        let before = run.updates.len();
        grow(&mut run, &format!("ids-{}", actors - 1));
        grow(&mut run, "ids-0");
        assert_eq!(run.updates.len(), before + 1, "only the recent one grew");

        // One incident with endless entries lists its first and counts the
        // rest: a burst of denials (its later entries are evidence), then
        // endless calls, then a second burst, a flag on the full incident
        // citing entries that already joined it.
        let mut run = Run::new();
        let deny = |run: &mut Run, t: i64| {
            for i in 0..5 {
                run.feed(
                    &ev(
                        "busy",
                        "s3:GetObject",
                        &format!("secret{i}"),
                        at(0, t + i),
                        Outcome::Denied,
                    ),
                    Category::DataAccess,
                );
            }
        };
        deny(&mut run, 0);
        let more = 3 * ANOMALY_INCIDENT_ENTRIES_MAX;
        for i in 1..=more as i64 {
            run.feed(
                &ev(
                    "busy",
                    "heartbeat",
                    "host/1",
                    at(0, 4 + i / 8),
                    Outcome::Success,
                ),
                Category::Other,
            );
        }
        let t = 5 + more as i64 / 8;
        deny(&mut run, t);
        let incidents = run.incidents();
        assert_eq!(incidents.len(), 1, "the burst joined the open incident");
        let incident = &incidents[&0];
        assert!(incident.kinds.contains(&FlagKind::FailureBurst));
        assert_eq!(incident.entries.len(), ANOMALY_INCIDENT_ENTRIES_MAX);
        assert_eq!(incident.entries[0], 0, "the first entries are listed");
        assert_eq!(
            incident.unlisted as usize,
            5 + more + 5 - ANOMALY_INCIDENT_ENTRIES_MAX,
            "every other entry counted once"
        );
    }
}
