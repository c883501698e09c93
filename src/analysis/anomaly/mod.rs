//! The anomaly detector: flags over committed entries, in log order.
//!
//! [`Detector::observe`] takes each committed entry once, with its category,
//! and returns the flags it raises, each within its incident, and the
//! incidents the entry joined ([`IncidentUpdate`]). It is pure (no I/O, no
//! clock: all time is event time) and its memory is bounded by the
//! `ANOMALY_*` limits in [`crate::limits`], however long the log and however
//! many actors it names.
//!
//! # Flags
//! - **Event-level**, fire on any single event: [`FlagKind::SecurityAlert`]
//!   (category `security_alert`), [`FlagKind::SensitiveChange`] (audit
//!   logging stopped, MFA removed, public bucket or snapshot, cluster-admin
//!   bound, privileged or host-mounting pods, shell in a pod, anonymous
//!   request allowed, ...: checks that need code, in `anomaly/sensitive.rs`)
//!   and [`FlagKind::Detection`] (the catalogue's detections, written as
//!   data per platform: `anomaly/catalogue.rs`).
//! - **Per session, once per incident**:
//!   [`FlagKind::InstanceCredentialsOffHost`], the role session of an EC2
//!   instance (`assumed-role/<role>/i-<hex>`) used by a desktop client (a
//!   macOS or Windows user agent): the pattern of instance credentials
//!   stolen through the metadata service and replayed from an attacker's
//!   laptop (the OTRF "EC2 proxy, S3 exfiltration" log). The session's later
//!   calls from a desktop join its incident; after a quiet spell longer
//!   than [`DetectorConfig::incident_idle_s`] it is flagged again.
//! - **Windows** over one actor (or one target account): a failure burst
//!   (failed or denied requests by an actor, or failed logins against one
//!   account), mass reads and mass exports (distinct objects), and a privilege
//!   change followed by sensitive data access, export or deletion by the
//!   same actor.
//! - **Baselines**, per actor, only once the actor has
//!   [`DetectorConfig::warmup_events_min`] events of history, so the first
//!   events of a new log or a new actor do not all flag: rate spike, unusual
//!   hour of day (UTC), new network (/24 or /64), new user-agent product,
//!   new resource family (the service or resource type), and first-seen
//!   actor/resource pairs for consequential categories or sensitive
//!   resources.
//!
//! ## Incidents
//! A flag cites the entries that raised it; its **incident** gathers every
//! entry of what it is about, and grows as entries arrive: each later entry
//! with the incident's key joins it while the incident is open (within its
//! idle window of event time: a window flag's own window,
//! [`DetectorConfig::incident_idle_s`] for session flags,
//! [`DetectorConfig::event_incident_idle_s`] for single-event flags; at
//! most `ANOMALY_INCIDENT_SPAN_S_MAX` in all). A second flag on the same key
//! while it is open joins the same incident: one incident id, its highest
//! score, every reason. The key ([`IncidentKey`]) per flag:
//! - instance credentials off the host: the role session *as used from a
//!   desktop client*, so every call the attacker made with it joins and the
//!   instance's own calls with the same session do not;
//! - failed logins against one account from many actors: the account, so
//!   later attempts and a login that then succeeds join;
//! - every other flag, per-actor windows and single events alike: the actor.
//!
//! An incident lists **evidence** (the entries that raised its flags, and
//! every entry that joins an incident of a session, an account or a window)
//! apart from **context** (the actor's other calls while a single-event
//! incident is open). An actor's review-level and context-level flags keep
//! separate incidents. See `incident.rs`.
//!
//! Each change is reported once, as it happens ([`IncidentUpdate`]: entries
//! newly listed, flags newly raised), so the detector keeps only what
//! placing the next entry needs (see `incident.rs`).
//!
//! # Scores
//! A score in 0..=1 is a priority, not a probability: **0.8 and above**, look
//! now (security tooling, known attack steps such as stopped logging or
//! cluster-admin grants, privilege change then sensitive access); **0.5 to
//! 0.8**, review (bursts, mass access, risky changes); **below 0.5**, context
//! (a deviation from one actor's own baseline, weak evidence alone).
//!
//! # Time
//! Entries arrive in log order, but event times may be out of order (client
//! clocks, batching). Windows and buckets are keyed by event time and only
//! move forward: an event older than a window (by the latest time seen for
//! that actor or target) is not added to it, and a late event never moves a
//! window back. Hour-of-day and value baselines are order-independent and
//! learn from every event. A single far-future timestamp moves only its own
//! actor's windows forward; the detector does not guess at clock skew. An
//! incident takes late entries too, within its idle window before its first
//! entry as after its last.
//!
//! # Memory
//! At most `ANOMALY_ACTORS_MAX` actors and `ANOMALY_TARGETS_MAX` targets are
//! tracked, the least recently seen forgotten first; every set and window
//! per actor is capped. At most `ANOMALY_INCIDENTS_OPEN_MAX` incidents are
//! open, the least recently grown forgotten first (it stops growing; what it
//! reported stands), each listing at most `ANOMALY_INCIDENT_ENTRIES_MAX`
//! entries of evidence, its first, and counting the rest, and at most
//! `ANOMALY_INCIDENT_CONTEXT_MAX` of context. `ANOMALY_STATE_BYTES_MAX`
//! sums the worst case.
//!
//! # Layout
//! - `flag.rs`: what a flag is ([`Flag`]) and what it says happened
//!   ([`FlagKind`]).
//! - `incident.rs`: the open incidents, their keys ([`IncidentKey`]) and
//!   idle windows, and what each entry changed ([`IncidentUpdate`]).
//! - `config.rs`: the detector's thresholds ([`DetectorConfig`]), their
//!   documented defaults, and their checks against the limits.
//! - `actor.rs`: what the detector remembers of each actor and each target
//!   account, and the order an actor's rules run in.
//! - `sensitive.rs`: single events that deserve a look on their own, where
//!   the check needs code (pod specs, role rules, policies).
//! - `catalogue.rs` and `catalogue/*.toml`: the detections written as data,
//!   per platform; an organisation's own tables are added at start.
//! - `instance_credentials.rs`: an EC2 instance's role session used from a
//!   desktop client.
//! - `burst.rs`: the counting windows: failure bursts (by one actor or
//!   against one account), mass reads and mass exports.
//! - `sequence.rs`: a privilege change followed by sensitive access.
//! - `baseline.rs`: deviations from an actor's own history (rate, hour,
//!   network, user agent, resource family, first-seen pairs) and how each
//!   event is learned.
//! - `state.rs`: the bounded structures all of it is kept in.
//! - this file: [`Detector`], the entry point, and the entry being observed.

mod actor;
mod baseline;
mod burst;
mod catalogue;
mod config;
mod flag;
mod incident;
mod instance_credentials;
mod sensitive;
mod sequence;
mod state;

pub use self::catalogue::Catalogue;
pub use self::config::DetectorConfig;
pub use self::flag::{Flag, FlagKind};
pub use self::incident::{IncidentKey, IncidentUpdate};

use std::sync::Arc;

use self::actor::{actor_flags, ActorState, TargetState};
use self::incident::Incidents;
use self::sensitive::sensitive_change;
use self::state::{Lru, Mark};
use crate::analysis::category::Category;
use crate::ledger::event::Event;
use crate::limits::{ANOMALY_ACTORS_MAX, ANOMALY_TARGETS_MAX};

const NANOS_PER_S: i64 = 1_000_000_000;

/// The score from which a flag asks for review (see Scores above); below
/// it a flag is context.
const REVIEW_SCORE_MIN: f32 = 0.5;

/// The streaming detector. See the module documentation.
pub struct Detector {
    config: DetectorConfig,
    catalogue: Arc<Catalogue>,
    actors: Lru<ActorState>,
    targets: Lru<TargetState>,
    incidents: Incidents,
}

impl Detector {
    /// A detector with `config`, clamped to the limits; a setting outside
    /// them is said, naming the setting and its limit.
    #[cfg(test)]
    pub fn new(config: DetectorConfig) -> Detector {
        Detector::with_catalogue(config, Catalogue::builtin())
    }

    /// A detector with `config` and the detections of `catalogue` instead
    /// of the built-in ones.
    pub fn with_catalogue(config: DetectorConfig, catalogue: Arc<Catalogue>) -> Detector {
        if let Err(e) = config.validate() {
            tracing::warn!(error = %e, "anomaly detector setting clamped to its limit");
        }
        Detector {
            config: config.clamped(),
            catalogue,
            actors: Lru::new(ANOMALY_ACTORS_MAX),
            targets: Lru::new(ANOMALY_TARGETS_MAX),
            incidents: Incidents::new(),
        }
    }

    /// Actors whose state is currently kept (at most `ANOMALY_ACTORS_MAX`).
    #[cfg(test)]
    pub fn actors_tracked(&self) -> usize {
        self.actors.len()
    }

    /// Target accounts currently kept (at most `ANOMALY_TARGETS_MAX`).
    #[cfg(test)]
    pub fn targets_tracked(&self) -> usize {
        self.targets.len()
    }

    /// Observes the committed entry `index` (entries must come in log order)
    /// with its category, and returns how it changed the incidents: those
    /// it opened or joined, with the flags it raised on each.
    pub fn observe(
        &mut self,
        index: u64,
        event: &Event,
        category: Category,
    ) -> Vec<IncidentUpdate> {
        let e = Observed {
            index,
            event,
            category,
        };
        let flags = self.flags(&e);
        self.incidents.record(&self.config, &e, flags)
    }

    /// The flags the entry raises.
    fn flags(&mut self, e: &Observed) -> Vec<Flag> {
        let (index, event, category) = (e.index, e.event, e.category);
        let mut flags = Vec::new();
        if category == Category::SecurityAlert {
            flags.push(e.flag(
                FlagKind::SecurityAlert,
                0.9,
                format!(
                    "security alert from {}: {} on {} (actor {})",
                    event.source, event.action, event.resource, event.actor.id
                ),
                vec![index],
            ));
        }
        if let Some(found) = sensitive_change(event) {
            flags.push(e.flag(
                FlagKind::SensitiveChange,
                found.score,
                format!(
                    "{} {}: {} on {}",
                    event.actor.id, found.what, event.action, event.resource
                ),
                vec![index],
            ));
        }
        // A detection below review is context: it is named beside a
        // review-level one on the same event, but raises no flag alone, so
        // catch-alls (every console login, every IAM change) do not turn an
        // actor's routine calls into incidents.
        let hits = self.catalogue.hits(event);
        if let Some(top) = hits.first().filter(|h| h.score >= REVIEW_SCORE_MIN) {
            let named: Vec<String> = hits
                .iter()
                .map(|h| format!("{} [{}]", h.what, h.id))
                .collect();
            flags.push(e.flag(
                FlagKind::Detection,
                top.score,
                format!(
                    "{} {}: {} on {}",
                    event.actor.id,
                    named.join("; "),
                    event.action,
                    event.resource
                ),
                vec![index],
            ));
        }
        if category == Category::FailedLogin {
            flags.extend(self.target_burst(e));
        }
        let config = &self.config;
        let actor = self.actors.touch(&event.actor.id, ActorState::default);
        flags.extend(actor_flags(config, actor, e));
        flags
    }
}

/// The entry being observed.
struct Observed<'a> {
    index: u64,
    event: &'a Event,
    category: Category,
}

impl Observed<'_> {
    fn time(&self) -> i64 {
        self.event.time_unix_nanos
    }

    fn mark(&self, what: u64) -> Mark {
        Mark {
            time_ns: self.time(),
            index: self.index,
            what,
        }
    }

    fn flag(&self, kind: FlagKind, score: f32, reason: String, entries: Vec<u64>) -> Flag {
        Flag {
            kind,
            score: score.clamp(0.0, 1.0),
            reason,
            entries,
            actor: self.event.actor.id.clone(),
            time_unix_nanos: self.time(),
            key: IncidentKey::Actor(self.event.actor.id.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::category::rule_category;
    use crate::analysis::testing::{k8s_event, panther_event};
    use crate::ledger::event::{Actor, Outcome};
    use crate::limits::{
        ANOMALY_BASELINE_VALUES_MAX, ANOMALY_FLAG_ENTRIES_MAX, ANOMALY_RESOURCES_PER_ACTOR_MAX,
        ANOMALY_WINDOW_EVENTS_MAX,
    };
    use serde_json::{Map, Value};

    const T0: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z, seconds
    pub(super) const HOUR: i64 = 3600;

    /// 09:00 UTC on day `day` after T0's day, plus `s` seconds.
    pub(super) fn at(day: i64, s: i64) -> i64 {
        ((T0 / 86_400 + day) * 86_400 + 9 * HOUR + s) * NANOS_PER_S
    }

    pub(super) fn ev(
        actor: &str,
        action: &str,
        resource: &str,
        time_ns: i64,
        outcome: Outcome,
    ) -> Event {
        Event {
            time_unix_nanos: time_ns,
            actor: Actor {
                id: actor.into(),
                kind: None,
                ip: Some("10.1.2.3".into()),
                user_agent: Some("aws-cli/2.13.5 Python/3.11".into()),
            },
            action: action.into(),
            resource: resource.into(),
            outcome,
            source: "app".into(),
            details: Map::new(),
            idempotency_key: None,
        }
    }

    /// The flags raised in `updates`.
    pub(super) fn flags_of(updates: &[IncidentUpdate]) -> Vec<Flag> {
        updates.iter().flat_map(|u| u.flags.clone()).collect()
    }

    /// An incident as the sum of its updates: what an analyst would see.
    #[derive(Debug, Default)]
    pub(super) struct Summed {
        pub(super) key: Option<IncidentKey>,
        pub(super) kinds: Vec<FlagKind>,
        pub(super) entries: Vec<u64>,
        pub(super) context: Vec<u64>,
        pub(super) unlisted: u64,
    }

    /// Feeds events and collects every flag and incident update, with the
    /// index given to each.
    pub(super) struct Run {
        pub(super) detector: Detector,
        next: u64,
        pub(super) flags: Vec<Flag>,
        pub(super) updates: Vec<IncidentUpdate>,
    }

    impl Run {
        /// A detector with the defaults, but bursts of 5 failures within
        /// 300 s: the numbers the window and incident tests were written
        /// with (`default_failure_bursts_need_ten_refusals` checks the
        /// defaults).
        pub(super) fn new() -> Run {
            let config = DetectorConfig {
                failure_window_s: 300,
                failure_burst_min: 5,
                ..DetectorConfig::default()
            };
            Run {
                detector: Detector::new(config),
                next: 0,
                flags: Vec::new(),
                updates: Vec::new(),
            }
        }

        /// Observes `event` as the next entry; returns the flags it raised.
        pub(super) fn feed(&mut self, event: &Event, category: Category) -> Vec<Flag> {
            let updates = self.detector.observe(self.next, event, category);
            self.next += 1;
            let flags = flags_of(&updates);
            self.flags.extend(flags.clone());
            self.updates.extend(updates);
            flags
        }

        /// Every incident so far, by id, summed from its updates.
        pub(super) fn incidents(&self) -> std::collections::BTreeMap<u64, Summed> {
            let mut out: std::collections::BTreeMap<u64, Summed> = Default::default();
            for u in &self.updates {
                let s = out.entry(u.id).or_default();
                assert!(
                    s.key.as_ref().is_none_or(|k| *k == u.key),
                    "one key per incident"
                );
                assert!(
                    s.key.is_some() || !u.flags.is_empty(),
                    "an incident opens with a flag"
                );
                s.key = Some(u.key.clone());
                s.kinds.extend(u.flags.iter().map(|f| f.kind));
                for i in &u.added {
                    assert!(!s.entries.contains(i), "entry {i} listed twice: {u:?}");
                }
                s.entries.extend(&u.added);
                s.entries.sort_unstable();
                for i in &u.context {
                    assert!(
                        !s.entries.contains(i) && !s.context.contains(i),
                        "context entry {i} listed twice: {u:?}"
                    );
                }
                s.context.retain(|i| !u.added.contains(i));
                s.context.extend(&u.context);
                s.context.sort_unstable();
                s.unlisted = u.unlisted;
            }
            out
        }

        /// Thirty quiet events by `actor` over ten days: the warm-up and a
        /// baseline of one network, one agent, one family, morning hours.
        pub(super) fn warm(&mut self, actor: &str) {
            for i in 0..30 {
                let e = ev(
                    actor,
                    "files:read",
                    "reports/q1.csv",
                    at(i / 3, (i % 3) * 600),
                    Outcome::Success,
                );
                self.feed(&e, Category::DataAccess);
            }
        }
    }

    pub(super) fn of(flags: &[Flag], kind: FlagKind) -> Vec<&Flag> {
        flags.iter().filter(|f| f.kind == kind).collect()
    }

    #[test]
    fn normal_repeated_behaviour_raises_no_flags() {
        let mut run = Run::new();
        // Sixty working days of the same reads and edits, ten per morning,
        // from the same network and client, within a few distinct reports.
        for day in 0..60 {
            for i in 0..10 {
                let report = format!("reports/r{}.csv", i % 4);
                let mut e = ev(
                    "alice",
                    "files:read",
                    &report,
                    at(day, i * 200),
                    Outcome::Success,
                );
                e.actor.ip = Some(format!("10.1.2.{}", 1 + (i % 5)));
                e.actor.user_agent = Some(format!("aws-cli/2.{day}.0 Python/3.11"));
                run.feed(&e, Category::DataAccess);
                let edit = ev(
                    "alice",
                    "files:update",
                    &report,
                    at(day, i * 200 + 30),
                    Outcome::Success,
                );
                run.feed(&edit, Category::ConfigChange);
            }
        }
        assert!(run.flags.is_empty(), "{:#?}", run.flags);
    }

    #[test]
    fn security_alerts_and_sensitive_changes_fire_on_single_events() {
        let mut run = Run::new();
        let alert = ev("guardduty", "finding", "i-123", at(0, 0), Outcome::Unknown);
        let flags = run.feed(&alert, Category::SecurityAlert);
        assert_eq!(flags.len(), 1);
        assert_eq!(
            (flags[0].kind, flags[0].score),
            (FlagKind::SecurityAlert, 0.9)
        );
        let mut stop = ev(
            "arn:aws:iam::1:user/eve",
            "cloudtrail:StopLogging",
            "arn:aws:cloudtrail:us-east-1:1:trail/main",
            at(0, 5),
            Outcome::Success,
        );
        stop.source = "cloudtrail".into();
        let flags = run.feed(&stop, Category::ConfigChange);
        let change = of(&flags, FlagKind::SensitiveChange);
        assert_eq!(change.len(), 1, "{flags:#?}");
        assert!(
            change[0].reason.contains("eve stopped CloudTrail logging"),
            "{}",
            change[0].reason
        );
        // A refused attempt changed nothing.
        stop.outcome = Outcome::Denied;
        assert!(of(
            &run.feed(&stop, Category::ConfigChange),
            FlagKind::SensitiveChange
        )
        .is_empty());
    }

    #[test]
    fn memory_stays_bounded_under_a_million_random_actors() {
        let mut detector = Detector::new(DetectorConfig::default());
        let mut e = ev("x", "login", "y", at(0, 0), Outcome::Failure);
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..1_000_000u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            e.actor.id = format!("actor-{seed:x}");
            e.resource = format!("account-{:x}", seed >> 20);
            e.time_unix_nanos = at(0, (i / 1000) as i64);
            detector.observe(i, &e, Category::FailedLogin);
        }
        assert_eq!(detector.actors_tracked(), ANOMALY_ACTORS_MAX);
        assert_eq!(detector.targets_tracked(), ANOMALY_TARGETS_MAX);
        // One actor with endless distinct values keeps capped sets.
        for i in 0..20_000u64 {
            let mut e = ev(
                "sprayer",
                "files:read",
                &format!("obj{i}"),
                at(1, (i / 10) as i64),
                Outcome::Denied,
            );
            e.actor.ip = Some(format!("{}.{}.{}.1", 1 + i % 200, (i / 200) % 250, i % 7));
            e.actor.user_agent = Some(format!("agent{i}/1"));
            e.action = format!("svc{i}:read");
            detector.observe(2_000_000 + i, &e, Category::DataAccess);
        }
        let actor = detector.actors.touch("sprayer", ActorState::default);
        assert_eq!(actor.networks.len(), ANOMALY_BASELINE_VALUES_MAX);
        assert_eq!(actor.agents.len(), ANOMALY_BASELINE_VALUES_MAX);
        assert_eq!(actor.families.len(), ANOMALY_BASELINE_VALUES_MAX);
        assert_eq!(actor.resources.len(), ANOMALY_RESOURCES_PER_ACTOR_MAX);
        assert!(actor.reads.len() <= ANOMALY_WINDOW_EVENTS_MAX);
        assert!(actor.failures.len() <= ANOMALY_WINDOW_EVENTS_MAX);
        assert!(actor.rate.recent.len() <= ANOMALY_FLAG_ENTRIES_MAX);
    }

    fn category_of(e: &Event) -> Category {
        rule_category(e).map_or(Category::Other, |v| v.category)
    }

    /// Every event of a Falco trace through a fresh detector.
    fn falco_flags(trace: &str) -> Vec<Flag> {
        let mut detector = Detector::new(DetectorConfig::default());
        let mut flags = Vec::new();
        for (i, line) in trace.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            let e = k8s_event(&serde_json::from_str(line).unwrap());
            flags.extend(flags_of(&detector.observe(i as u64, &e, category_of(&e))));
        }
        flags
    }

    #[test]
    fn falco_attack_traces_raise_the_expected_flags() {
        let positives = [
            (include_str!("../../../tests/data/analysis/falco/exec_pod.json"), "opened a shell in pod default/pods/nginx-deployment-7998647bdf-phvq7"),
            (include_str!("../../../tests/data/analysis/falco/attach_cluster_admin_role.json"), "bound role cluster-admin"),
            (include_str!("../../../tests/data/analysis/falco/create_nginx_pod_privileged.json"), "privileged container"),
            (include_str!("../../../tests/data/analysis/falco/create_nginx_pod_sensitive_mount.json"), "host path /etc"),
            (include_str!("../../../tests/data/analysis/falco/create_nginx_pod_hostnetwork.json"), "hostNetwork"),
            (include_str!("../../../tests/data/analysis/falco/anonymous_creates_namespace_foo.json"), "anonymous request allowed: create namespaces/foo"),
            (include_str!("../../../tests/data/analysis/falco/create_configmap_sensitive_values.json"), "holds credentials"),
            (include_str!("../../../tests/data/analysis/falco/create_cluster_role_pod_exec.json"), "grants shell access to pods"),
            (include_str!("../../../tests/data/analysis/falco/modify_cluster_role_node_problem_detector.json"), "modified built-in role system:node-problem-detector"),
        ];
        for (trace, phrase) in positives {
            let flags = falco_flags(trace);
            let changes = of(&flags, FlagKind::SensitiveChange);
            assert!(!changes.is_empty(), "no flag, expected {phrase}");
            assert!(
                changes.iter().all(|f| f.reason.contains(phrase)),
                "{phrase}: {changes:#?}"
            );
            assert!(changes.iter().all(|f| f.score >= 0.6));
        }
        let cluster_admin = falco_flags(include_str!(
            "../../../tests/data/analysis/falco/attach_cluster_admin_role.json"
        ));
        assert_eq!(cluster_admin[0].score, 0.9);
        assert_eq!(cluster_admin[0].actor, "minikube-user");
    }

    #[test]
    fn falco_benign_traces_raise_no_flags() {
        for trace in [
            include_str!("../../../tests/data/analysis/falco/create_nginx_pod_unprivileged.json"),
            include_str!(
                "../../../tests/data/analysis/falco/create_nginx_pod_unsensitive_mount.json"
            ),
            include_str!("../../../tests/data/analysis/falco/create_deployment.json"),
            include_str!("../../../tests/data/analysis/falco/create_serviceaccount.json"),
            include_str!("../../../tests/data/analysis/falco/delete_secret.json"),
        ] {
            assert!(falco_flags(trace).is_empty(), "{:#?}", falco_flags(trace));
        }
    }

    #[test]
    fn falco_labels_agree_for_the_copied_traces() {
        // Falco's own verdict (its default rule files, warning or notice
        // rules only) against whether we raise any flag.
        let labels: Value = serde_json::from_str(include_str!(
            "../../../tests/data/analysis/falco/trace_labels.json"
        ))
        .unwrap();
        let detects = |name: &str| -> bool {
            labels[name].as_array().unwrap().iter().any(|t| {
                let files: Vec<&str> = t["rules_files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                let default = files.iter().all(|f| {
                    matches!(
                        *f,
                        "falco_rules.yaml"
                            | "k8s_audit_rules.yaml"
                            | "engine_v4_k8s_audit_rules.yaml"
                    )
                });
                let informational = t["rules_fired"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|r| r.as_str().unwrap_or("").starts_with("K8s "));
                default && t["detect"] == true && !informational
            })
        };
        for (name, trace) in [
            (
                "exec_pod.json",
                include_str!("../../../tests/data/analysis/falco/exec_pod.json"),
            ),
            (
                "create_nginx_pod_privileged.json",
                include_str!("../../../tests/data/analysis/falco/create_nginx_pod_privileged.json"),
            ),
            (
                "create_nginx_pod_unprivileged.json",
                include_str!(
                    "../../../tests/data/analysis/falco/create_nginx_pod_unprivileged.json"
                ),
            ),
            (
                "create_nginx_pod_unsensitive_mount.json",
                include_str!(
                    "../../../tests/data/analysis/falco/create_nginx_pod_unsensitive_mount.json"
                ),
            ),
            (
                "create_deployment.json",
                include_str!("../../../tests/data/analysis/falco/create_deployment.json"),
            ),
            (
                "delete_secret.json",
                include_str!("../../../tests/data/analysis/falco/delete_secret.json"),
            ),
        ] {
            assert_eq!(!falco_flags(trace).is_empty(), detects(name), "{name}");
        }
    }

    #[test]
    fn real_panther_events_raise_single_event_flags() {
        let samples: Vec<Value> =
            include_str!("../../../tests/data/analysis/category/panther_samples.jsonl")
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        let flags_for = |rule_id: &str, test_name: &str| {
            let s = samples
                .iter()
                .find(|s| s["rule_id"] == rule_id && s["test_name"] == test_name)
                .unwrap();
            let e = panther_event(s["log_type"].as_str().unwrap(), &s["log"]);
            flags_of(&Detector::new(DetectorConfig::default()).observe(0, &e, category_of(&e)))
        };
        let stopped = flags_for("AWS.CloudTrail.Stopped", "CloudTrail Was Stopped");
        assert_eq!(stopped.len(), 1);
        assert!(stopped[0].reason.contains("stopped CloudTrail logging"));
        let admin = flags_for(
            "AWS.IAM.AttachAdminUserPolicy",
            "IAM User Policy Attached with Administrator Access",
        );
        assert!(
            admin[0].reason.contains("attached AdministratorAccess"),
            "{admin:#?}"
        );
        let public = flags_for(
            "AWS.CloudTrail.SnapshotMadePublic",
            "Snapshot Made Publicly Accessible",
        );
        assert!(
            public[0].reason.contains("made a snapshot or image public"),
            "{public:#?}"
        );
        let binding = flags_for(
            "Kubernetes.ClusterRoleBinding.Privileged",
            "EKS ClusterRoleBinding to cluster-admin",
        );
        assert_eq!(binding[0].score, 0.9);
        let reuse = flags_for("Okta.Refresh.Access.Token.Reuse", "Reuse Event");
        assert_eq!(reuse[0].kind, FlagKind::SecurityAlert);
        // A failed root login is a detection of the catalogue; an ordinary
        // console login is context at most.
        let root = flags_for("AWS.Console.RootLoginFailed", "Failed Root Login");
        assert_eq!(root.len(), 1, "{root:#?}");
        assert_eq!(root[0].kind, FlagKind::Detection);
        assert!(
            root[0].reason.contains("[aws.root.console_login_failed]"),
            "{root:#?}"
        );
        assert!(root[0].score >= 0.8);
        let login = flags_for("AWS.Console.LoginWithoutSAML", "Normal Login");
        assert!(login.iter().all(|f| f.score < 0.5), "{login:#?}");
    }
}
