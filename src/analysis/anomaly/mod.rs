//! The anomaly detector: flags over committed entries, in log order.
//!
//! [`Detector::observe`] takes each committed entry once, with its category,
//! and returns the flags it raises. It is pure (no I/O, no clock: all time
//! is event time) and its memory is bounded by the `ANOMALY_*` limits in
//! [`crate::limits`], however long the log and however many actors it names.
//!
//! # Flags
//! - **Event-level**, fire on any single event: [`FlagKind::SecurityAlert`]
//!   (category `security_alert`) and [`FlagKind::SensitiveChange`] (audit
//!   logging stopped, root account used, MFA removed, public bucket or
//!   snapshot, cluster-admin bound, privileged or host-mounting pods, shell
//!   in a pod, anonymous request allowed, ...; see `anomaly/sensitive.rs`).
//! - **Per actor, once**: [`FlagKind::InstanceCredentialsOffHost`], the
//!   role session of an EC2 instance (`assumed-role/<role>/i-<hex>`) used by
//!   a desktop client (a macOS or Windows user agent): the pattern of
//!   instance credentials stolen through the metadata service and replayed
//!   from an attacker's laptop (the OTRF "EC2 proxy, S3 exfiltration" log).
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
//! actor's windows forward; the detector does not guess at clock skew.
//!
//! # Memory
//! At most `ANOMALY_ACTORS_MAX` actors and `ANOMALY_TARGETS_MAX` targets are
//! tracked, the least recently seen forgotten first; every set and window
//! per actor is capped. `ANOMALY_STATE_BYTES_MAX` sums the worst case.

mod sensitive;
mod state;

use self::sensitive::{is_sensitive_target, sensitive_change};
use self::state::{digest, BoundedSet, Lru, Mark, Rate, Window};
use crate::analysis::category::Category;
use crate::analysis::details::str_field;
use crate::ledger::event::{Event, Outcome};
use crate::limits::{
    ANOMALY_ACTORS_MAX, ANOMALY_BASELINE_VALUES_MAX, ANOMALY_FLAG_ENTRIES_MAX,
    ANOMALY_RESOURCES_PER_ACTOR_MAX, ANOMALY_TARGETS_MAX, ANOMALY_WINDOW_EVENTS_MAX,
    ANOMALY_WINDOW_S_MAX,
};
use std::net::IpAddr;

const NANOS_PER_S: i64 = 1_000_000_000;

/// What a flag says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlagKind {
    RateSpike,
    UnusualHour,
    NewResource,
    NewSourceIp,
    NewUserAgent,
    FirstSeenPair,
    FailureBurst,
    PrivilegeThenSensitive,
    MassRead,
    MassExport,
    SecurityAlert,
    SensitiveChange,
    InstanceCredentialsOffHost,
}

impl FlagKind {
    pub const ALL: [FlagKind; 13] = [
        FlagKind::RateSpike,
        FlagKind::UnusualHour,
        FlagKind::NewResource,
        FlagKind::NewSourceIp,
        FlagKind::NewUserAgent,
        FlagKind::FirstSeenPair,
        FlagKind::FailureBurst,
        FlagKind::PrivilegeThenSensitive,
        FlagKind::MassRead,
        FlagKind::MassExport,
        FlagKind::SecurityAlert,
        FlagKind::SensitiveChange,
        FlagKind::InstanceCredentialsOffHost,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            FlagKind::RateSpike => "rate_spike",
            FlagKind::UnusualHour => "unusual_hour",
            FlagKind::NewResource => "new_resource",
            FlagKind::NewSourceIp => "new_source_ip",
            FlagKind::NewUserAgent => "new_user_agent",
            FlagKind::FirstSeenPair => "first_seen_pair",
            FlagKind::FailureBurst => "failure_burst",
            FlagKind::PrivilegeThenSensitive => "privilege_then_sensitive",
            FlagKind::MassRead => "mass_read",
            FlagKind::MassExport => "mass_export",
            FlagKind::SecurityAlert => "security_alert",
            FlagKind::SensitiveChange => "sensitive_change",
            FlagKind::InstanceCredentialsOffHost => "instance_credentials_off_host",
        }
    }
}

/// One flag raised by one observed entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Flag {
    pub kind: FlagKind,
    /// Priority in 0..=1; see the module documentation.
    pub score: f32,
    /// Plain words naming the actor, the resource and the counts.
    pub reason: String,
    /// Indices of the entries that raised it, in log order, at most
    /// `ANOMALY_FLAG_ENTRIES_MAX` (the latest).
    pub entries: Vec<u64>,
    /// The actor of the entry that raised it.
    pub actor: String,
    /// Event time of the entry that raised it.
    pub time_unix_nanos: i64,
}

/// Detector thresholds. [`Default`] gives the documented values; settings
/// outside the limits are clamped by [`Detector::new`] and refused by
/// [`DetectorConfig::validate`], which configuration loading should call.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorConfig {
    /// Events an actor needs before baseline flags may fire for it (20: a
    /// working session's worth, so one login's first calls do not flag).
    pub warmup_events_min: u32,
    /// Width of the buckets rate is counted in, seconds (300).
    pub rate_bucket_s: u32,
    /// A bucket is a spike at this many times the actor's mean per active
    /// bucket (5.0)...
    pub rate_spike_factor: f32,
    /// ...and at least this many events (30), so 2 → 10 is not a spike.
    pub rate_spike_events_min: u32,
    /// Closed active buckets an actor needs before its rate is judged (3).
    pub rate_buckets_min: u32,
    /// Window for failure bursts, seconds (300: five minutes).
    pub failure_window_s: u32,
    /// Failed or denied requests by one actor, or failed logins against one
    /// account, within the window that make a burst (5).
    pub failure_burst_min: u32,
    /// How long after a privilege change sensitive access by the same actor
    /// is flagged, seconds (3600).
    pub privilege_window_s: u32,
    /// Window for mass reads and exports, seconds (600).
    pub mass_window_s: u32,
    /// Distinct objects read within the window that make a mass read (50).
    pub mass_read_objects_min: u32,
    /// Distinct objects exported within the window that make a mass export
    /// (10: exports are rarer and each matters more).
    pub mass_export_objects_min: u32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            warmup_events_min: 20,
            rate_bucket_s: 300,
            rate_spike_factor: 5.0,
            rate_spike_events_min: 30,
            rate_buckets_min: 3,
            failure_window_s: 300,
            failure_burst_min: 5,
            privilege_window_s: 3600,
            mass_window_s: 600,
            mass_read_objects_min: 50,
            mass_export_objects_min: 10,
        }
    }
}

/// A detector setting outside its limits.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DetectorConfigError {
    #[error("detector setting `{name}` is {value} s; it must be between 1 and {max} s")]
    Window {
        name: &'static str,
        value: u32,
        max: u32,
    },
    #[error("detector setting `{name}` is {value}; it must be between 1 and {max}, the events one window keeps")]
    Count {
        name: &'static str,
        value: u32,
        max: usize,
    },
    #[error("detector setting `{name}` is {value}; it must be at least 1")]
    AtLeastOne { name: &'static str, value: u32 },
    #[error(
        "detector setting `rate_spike_factor` is {value}; it must be a finite number of at least 1"
    )]
    SpikeFactor { value: f32 },
}

impl DetectorConfig {
    fn windows(&self) -> [(&'static str, u32); 4] {
        [
            ("rate_bucket_s", self.rate_bucket_s),
            ("failure_window_s", self.failure_window_s),
            ("privilege_window_s", self.privilege_window_s),
            ("mass_window_s", self.mass_window_s),
        ]
    }

    fn counts(&self) -> [(&'static str, u32); 3] {
        [
            ("failure_burst_min", self.failure_burst_min),
            ("mass_read_objects_min", self.mass_read_objects_min),
            ("mass_export_objects_min", self.mass_export_objects_min),
        ]
    }

    /// Checks every setting against its limit.
    pub fn validate(&self) -> Result<(), DetectorConfigError> {
        for (name, value) in self.windows() {
            if !(1..=ANOMALY_WINDOW_S_MAX).contains(&value) {
                return Err(DetectorConfigError::Window {
                    name,
                    value,
                    max: ANOMALY_WINDOW_S_MAX,
                });
            }
        }
        for (name, value) in self.counts() {
            if value == 0 || value as usize > ANOMALY_WINDOW_EVENTS_MAX {
                return Err(DetectorConfigError::Count {
                    name,
                    value,
                    max: ANOMALY_WINDOW_EVENTS_MAX,
                });
            }
        }
        for (name, value) in [
            ("warmup_events_min", self.warmup_events_min),
            ("rate_spike_events_min", self.rate_spike_events_min),
            ("rate_buckets_min", self.rate_buckets_min),
        ] {
            if value == 0 {
                return Err(DetectorConfigError::AtLeastOne { name, value });
            }
        }
        if !self.rate_spike_factor.is_finite() || self.rate_spike_factor < 1.0 {
            return Err(DetectorConfigError::SpikeFactor {
                value: self.rate_spike_factor,
            });
        }
        Ok(())
    }

    /// The nearest valid configuration.
    fn clamped(mut self) -> DetectorConfig {
        let window = |s: u32| s.clamp(1, ANOMALY_WINDOW_S_MAX);
        let count = |n: u32| n.clamp(1, ANOMALY_WINDOW_EVENTS_MAX as u32);
        self.rate_bucket_s = window(self.rate_bucket_s);
        self.failure_window_s = window(self.failure_window_s);
        self.privilege_window_s = window(self.privilege_window_s);
        self.mass_window_s = window(self.mass_window_s);
        self.failure_burst_min = count(self.failure_burst_min);
        self.mass_read_objects_min = count(self.mass_read_objects_min);
        self.mass_export_objects_min = count(self.mass_export_objects_min);
        self.warmup_events_min = self.warmup_events_min.max(1);
        self.rate_spike_events_min = self.rate_spike_events_min.max(1);
        self.rate_buckets_min = self.rate_buckets_min.max(1);
        if !self.rate_spike_factor.is_finite() || self.rate_spike_factor < 1.0 {
            self.rate_spike_factor = DetectorConfig::default().rate_spike_factor;
        }
        self
    }
}

/// The last privilege change an actor made, awaiting sensitive access.
struct PrivilegeChange {
    time_ns: i64,
    index: u64,
    action: String,
    resource: String,
}

/// Everything remembered about one actor.
#[derive(Default)]
struct ActorState {
    /// Events seen (history for the warm-up).
    events: u64,
    /// Events per hour of day, UTC.
    hours: [u32; 24],
    networks: BoundedSet,
    agents: BoundedSet,
    families: BoundedSet,
    resources: BoundedSet,
    rate: Rate,
    failures: Window,
    reads: Window,
    exports: Window,
    privilege: Option<PrivilegeChange>,
    /// The off-host flag has fired for this actor (it fires once).
    off_host_flagged: bool,
}

/// Failed logins against one account.
#[derive(Default)]
struct TargetState {
    failures: Window,
}

/// The streaming detector. See the module documentation.
pub struct Detector {
    config: DetectorConfig,
    actors: Lru<ActorState>,
    targets: Lru<TargetState>,
}

impl Detector {
    /// A detector with `config`, clamped to the limits.
    pub fn new(config: DetectorConfig) -> Detector {
        Detector {
            config: config.clamped(),
            actors: Lru::new(ANOMALY_ACTORS_MAX),
            targets: Lru::new(ANOMALY_TARGETS_MAX),
        }
    }

    /// Actors whose state is currently kept (at most `ANOMALY_ACTORS_MAX`).
    pub fn actors_tracked(&self) -> usize {
        self.actors.len()
    }

    /// Target accounts currently kept (at most `ANOMALY_TARGETS_MAX`).
    pub fn targets_tracked(&self) -> usize {
        self.targets.len()
    }

    /// Observes the committed entry `index` (entries must come in log order)
    /// with its category, and returns the flags it raises.
    pub fn observe(&mut self, index: u64, event: &Event, category: Category) -> Vec<Flag> {
        let e = Observed {
            index,
            event,
            category,
        };
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
        if category == Category::FailedLogin {
            flags.extend(self.target_burst(&e));
        }
        let config = &self.config;
        let actor = self.actors.touch(&event.actor.id, ActorState::default);
        flags.extend(actor_flags(config, actor, &e));
        flags
    }

    fn target_burst(&mut self, e: &Observed) -> Option<Flag> {
        let window_ns = self.config.failure_window_s as i64 * NANOS_PER_S;
        let target = self.targets.touch(&e.event.resource, TargetState::default);
        let w = &mut target.failures;
        let added = w.add(
            e.mark(digest(&e.event.actor.id)),
            window_ns,
            ANOMALY_WINDOW_EVENTS_MAX,
        );
        let (n, actors) = (w.len(), w.distinct());
        // One actor failing against one account is that actor's burst,
        // flagged once there; this flag is for many actors converging.
        if !added
            || n < self.config.failure_burst_min as usize
            || actors < 2
            || !w.cooled(e.time(), window_ns)
        {
            return None;
        }
        w.flagged_at_ns = Some(e.time());
        Some(e.flag(
            FlagKind::FailureBurst,
            burst_score(n, self.config.failure_burst_min),
            format!(
                "{n} failed logins against {} from {actors} actors within {} s (latest by {})",
                e.event.resource, self.config.failure_window_s, e.event.actor.id
            ),
            w.entries(ANOMALY_FLAG_ENTRIES_MAX),
        ))
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
        }
    }
}

/// 0.5 at the threshold, rising 0.05 per extra event, at most 1.
fn burst_score(n: usize, min: u32) -> f32 {
    (0.5 + 0.05 * n.saturating_sub(min as usize) as f32).min(1.0)
}

fn actor_flags(config: &DetectorConfig, actor: &mut ActorState, e: &Observed) -> Vec<Flag> {
    let mut flags = Vec::new();
    let event = e.event;
    let warm = actor.events >= u64::from(config.warmup_events_min);
    if warm {
        flags.extend(baseline_flags(actor, e));
    }
    // Counted from the first event, so the rate baseline exists when the
    // warm-up ends; judged only after it.
    flags.extend(rate_spike(config, actor, e, warm));
    flags.extend(failure_burst(config, actor, e));
    flags.extend(mass_access(config, actor, e));
    flags.extend(privilege_then_sensitive(config, actor, e));
    if !actor.off_host_flagged {
        if let Some(f) = instance_credentials_off_host(e) {
            actor.off_host_flagged = true;
            flags.push(f);
        }
    }
    if e.category == Category::PrivilegeChange
        && !matches!(event.outcome, Outcome::Failure | Outcome::Denied)
    {
        actor.privilege = Some(PrivilegeChange {
            time_ns: e.time(),
            index: e.index,
            action: event.action.clone(),
            resource: event.resource.clone(),
        });
    }
    learn(actor, e);
    flags
}

/// Markers of a desktop operating system in a user agent. EC2 instances
/// run Linux almost always; macOS and Windows instances exist, which is why
/// this is a review score, not a certainty.
const DESKTOP_AGENT_MARKERS: &[&str] =
    &["Darwin/", "Macintosh", "Mac OS X", "Windows NT", "Windows/"];

/// Review, not certainty: see [`DESKTOP_AGENT_MARKERS`].
const OFF_HOST_SCORE: f32 = 0.7;

/// An EC2 instance's role session used by a desktop client.
fn instance_credentials_off_host(e: &Observed) -> Option<Flag> {
    let event = e.event;
    if event.source != "cloudtrail" {
        return None;
    }
    let session = event
        .actor
        .id
        .split(":assumed-role/")
        .nth(1)?
        .rsplit('/')
        .next()?;
    let instance = session.strip_prefix("i-").is_some_and(|hex| {
        (8..=17).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    let agent = event.actor.user_agent.as_deref()?;
    let marker = DESKTOP_AGENT_MARKERS.iter().find(|m| agent.contains(*m))?;
    if !instance {
        return None;
    }
    Some(e.flag(
        FlagKind::InstanceCredentialsOffHost,
        OFF_HOST_SCORE,
        format!(
            "the role session of EC2 instance {session} ({}) was used by a desktop client \
             ({} in user agent \"{agent}\"): {} on {}; instance credentials replayed off the instance?",
            event.actor.id,
            marker.trim_end_matches('/'),
            event.action,
            event.resource
        ),
        vec![e.index],
    ))
}

/// Deviations from the actor's own history, judged before this event is
/// learned.
fn baseline_flags(actor: &ActorState, e: &Observed) -> Vec<Flag> {
    let mut flags = Vec::new();
    let event = e.event;
    let who = &event.actor.id;
    let history = actor.events;
    if let Some(net) = event.actor.ip.as_deref().and_then(network) {
        let known = actor.networks.len();
        if known > 0
            && known < ANOMALY_BASELINE_VALUES_MAX
            && !actor.networks.contains(digest(&net))
        {
            flags.push(e.flag(
                FlagKind::NewSourceIp,
                0.3,
                format!(
                    "{who} used network {net} for the first time, after {history} events from {known} other network(s) ({} on {})",
                    event.action, event.resource
                ),
                vec![e.index],
            ));
        }
    }
    if let Some(agent) = event.actor.user_agent.as_deref().map(agent_product) {
        let known = actor.agents.len();
        if known > 0
            && known < ANOMALY_BASELINE_VALUES_MAX
            && !actor.agents.contains(digest(&agent))
        {
            flags.push(e.flag(
                FlagKind::NewUserAgent,
                0.2,
                format!(
                    "{who} used user agent \"{agent}\" for the first time, after {history} events with {known} other(s)"
                ),
                vec![e.index],
            ));
        }
    }
    let family = family(event);
    let known = actor.families.len();
    if known < ANOMALY_BASELINE_VALUES_MAX && !actor.families.contains(digest(&family)) {
        flags.push(e.flag(
            FlagKind::NewResource,
            0.2,
            format!(
                "{who} touched {family} for the first time, after {history} events ({} on {})",
                event.action, event.resource
            ),
            vec![e.index],
        ));
    }
    let consequential = matches!(
        e.category,
        Category::PrivilegeChange
            | Category::AdminChange
            | Category::DataExport
            | Category::DataDeletion
    ) || is_sensitive_target(event, e.category);
    let resources_full = actor.resources.len() >= ANOMALY_RESOURCES_PER_ACTOR_MAX;
    if consequential && !resources_full && !actor.resources.contains(digest(&event.resource)) {
        flags.push(e.flag(
            FlagKind::FirstSeenPair,
            0.3,
            format!(
                "{who} {} on {} for the first time ({})",
                event.action,
                event.resource,
                e.category.words()
            ),
            vec![e.index],
        ));
    }
    let hour = hour_of_day(e.time());
    let near = |h: usize| actor.hours[h % 24];
    if near(hour + 23) + near(hour) + near(hour + 1) == 0 {
        flags.push(e.flag(
            FlagKind::UnusualHour,
            0.2,
            format!(
                "{who} active at {hour:02}:00 UTC, within an hour of none of their previous {history} events ({} on {})",
                event.action, event.resource
            ),
            vec![e.index],
        ));
    }
    flags
}

fn rate_spike(
    config: &DetectorConfig,
    actor: &mut ActorState,
    e: &Observed,
    warm: bool,
) -> Option<Flag> {
    let bucket_ns = config.rate_bucket_s as i64 * NANOS_PER_S;
    let rate = &mut actor.rate;
    if !rate.add(e.time(), e.index, bucket_ns, ANOMALY_FLAG_ENTRIES_MAX) || !warm {
        return None;
    }
    let threshold = (rate.mean * config.rate_spike_factor).max(config.rate_spike_events_min as f32);
    if rate.flagged || rate.closed < config.rate_buckets_min || (rate.count as f32) < threshold {
        return None;
    }
    rate.flagged = true;
    let ratio = rate.count as f32 / rate.mean.max(1.0);
    Some(e.flag(
        FlagKind::RateSpike,
        (0.3 + 0.05 * (ratio - config.rate_spike_factor)).clamp(0.3, 0.8),
        format!(
            "{} made {} requests in one {} s bucket, against a usual {:.1} per active bucket",
            e.event.actor.id, rate.count, config.rate_bucket_s, rate.mean
        ),
        rate.recent.iter().copied().collect(),
    ))
}

fn failure_burst(config: &DetectorConfig, actor: &mut ActorState, e: &Observed) -> Option<Flag> {
    if !matches!(e.event.outcome, Outcome::Failure | Outcome::Denied) {
        return None;
    }
    let window_ns = config.failure_window_s as i64 * NANOS_PER_S;
    let w = &mut actor.failures;
    let added = w.add(
        e.mark(digest(&e.event.resource)),
        window_ns,
        ANOMALY_WINDOW_EVENTS_MAX,
    );
    let n = w.len();
    if !added || n < config.failure_burst_min as usize || !w.cooled(e.time(), window_ns) {
        return None;
    }
    w.flagged_at_ns = Some(e.time());
    Some(e.flag(
        FlagKind::FailureBurst,
        burst_score(n, config.failure_burst_min),
        format!(
            "{} had {n} failed or denied requests within {} s (latest: {} on {})",
            e.event.actor.id, config.failure_window_s, e.event.action, e.event.resource
        ),
        w.entries(ANOMALY_FLAG_ENTRIES_MAX),
    ))
}

fn mass_access(config: &DetectorConfig, actor: &mut ActorState, e: &Observed) -> Option<Flag> {
    let (w, min, kind, verb, base) = match e.category {
        Category::DataAccess => (
            &mut actor.reads,
            config.mass_read_objects_min,
            FlagKind::MassRead,
            "read",
            0.5,
        ),
        Category::DataExport => (
            &mut actor.exports,
            config.mass_export_objects_min,
            FlagKind::MassExport,
            "exported",
            0.7,
        ),
        _ => return None,
    };
    let window_ns = config.mass_window_s as i64 * NANOS_PER_S;
    if !w.add(
        e.mark(digest(&e.event.resource)),
        window_ns,
        ANOMALY_WINDOW_EVENTS_MAX,
    ) {
        return None;
    }
    let distinct = w.distinct();
    if distinct < min as usize || !w.cooled(e.time(), window_ns) {
        return None;
    }
    w.flagged_at_ns = Some(e.time());
    Some(e.flag(
        kind,
        (base + 0.01 * (distinct - min as usize) as f32).min(1.0),
        format!(
            "{} {verb} {distinct} distinct objects within {} s (latest: {})",
            e.event.actor.id, config.mass_window_s, e.event.resource
        ),
        w.entries(ANOMALY_FLAG_ENTRIES_MAX),
    ))
}

fn privilege_then_sensitive(
    config: &DetectorConfig,
    actor: &mut ActorState,
    e: &Observed,
) -> Option<Flag> {
    if !is_sensitive_target(e.event, e.category) {
        return None;
    }
    let change = actor.privilege.as_ref()?;
    let window_ns = config.privilege_window_s as i64 * NANOS_PER_S;
    let after = e.time().checked_sub(change.time_ns)?;
    if !(0..=window_ns).contains(&after) {
        return None;
    }
    let flag = e.flag(
        FlagKind::PrivilegeThenSensitive,
        0.8,
        format!(
            "{} changed privileges ({} on {}) and {} s later: {} on {} ({})",
            e.event.actor.id,
            change.action,
            change.resource,
            after / NANOS_PER_S,
            e.event.action,
            e.event.resource,
            e.category.words()
        ),
        vec![change.index, e.index],
    );
    // One flag per privilege change: what follows is the same story.
    actor.privilege = None;
    Some(flag)
}

/// Adds the event to the actor's baselines.
fn learn(actor: &mut ActorState, e: &Observed) {
    let event = e.event;
    actor.events = actor.events.saturating_add(1);
    let hour = hour_of_day(e.time());
    actor.hours[hour] = actor.hours[hour].saturating_add(1);
    if let Some(net) = event.actor.ip.as_deref().and_then(network) {
        actor
            .networks
            .insert(digest(&net), ANOMALY_BASELINE_VALUES_MAX);
    }
    if let Some(agent) = event.actor.user_agent.as_deref().map(agent_product) {
        actor
            .agents
            .insert(digest(&agent), ANOMALY_BASELINE_VALUES_MAX);
    }
    actor
        .families
        .insert(digest(&family(event)), ANOMALY_BASELINE_VALUES_MAX);
    actor
        .resources
        .insert(digest(&event.resource), ANOMALY_RESOURCES_PER_ACTOR_MAX);
}

/// Hour of day (UTC) of a time in nanoseconds since the epoch.
fn hour_of_day(time_ns: i64) -> usize {
    let seconds = time_ns.div_euclid(NANOS_PER_S);
    (seconds.rem_euclid(86_400) / 3_600) as usize
}

/// The /24 (IPv4) or /64 (IPv6) network of an address; `None` for values
/// that are not addresses (CloudTrail puts service names there).
fn network(ip: &str) -> Option<String> {
    match ip.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            Some(format!("{a}.{b}.{c}.0/24"))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network(&v4.to_string()),
            None => {
                let s = v6.segments();
                Some(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
            }
        },
    }
}

/// The product token of a user agent (`aws-cli/2.13.5 Python/3.11` →
/// `aws-cli`), so version upgrades are not new agents.
fn agent_product(agent: &str) -> String {
    let first = agent
        .split(|c: char| c == '/' || c.is_whitespace())
        .find(|s| !s.is_empty())
        .unwrap_or(agent);
    first.chars().take(64).collect::<String>().to_lowercase()
}

/// The kind of thing an event touches, coarser than the resource: the AWS
/// service, the Kubernetes resource type, the GCP service, the Okta or
/// GitHub event family.
fn family(event: &Event) -> String {
    let d = &event.details;
    let kind = match event.source.as_str() {
        "k8s-audit" => str_field(d, &["objectRef", "resource"]).map(str::to_string),
        "gcp-audit" => str_field(d, &["protoPayload", "serviceName"]).map(str::to_string),
        _ => None,
    };
    let kind = kind.unwrap_or_else(|| {
        let action = event.action.as_str();
        action
            .split([':', '.'])
            .next()
            .unwrap_or(action)
            .to_string()
    });
    format!("{} {kind}", event.source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::category::rule_category;
    use crate::analysis::testing::{k8s_event, panther_event};
    use crate::ledger::event::Actor;
    use serde_json::{Map, Value};

    const T0: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z, seconds
    const HOUR: i64 = 3600;

    /// 09:00 UTC on day `day` after T0's day, plus `s` seconds.
    fn at(day: i64, s: i64) -> i64 {
        ((T0 / 86_400 + day) * 86_400 + 9 * HOUR + s) * NANOS_PER_S
    }

    fn ev(actor: &str, action: &str, resource: &str, time_ns: i64, outcome: Outcome) -> Event {
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

    /// Feeds events and collects every flag, with the index given to each.
    struct Run {
        detector: Detector,
        next: u64,
        flags: Vec<Flag>,
    }

    impl Run {
        fn new() -> Run {
            Run {
                detector: Detector::new(DetectorConfig::default()),
                next: 0,
                flags: Vec::new(),
            }
        }

        fn feed(&mut self, event: &Event, category: Category) -> Vec<Flag> {
            let flags = self.detector.observe(self.next, event, category);
            self.next += 1;
            self.flags.extend(flags.clone());
            flags
        }

        /// Thirty quiet events by `actor` over ten days: the warm-up and a
        /// baseline of one network, one agent, one family, morning hours.
        fn warm(&mut self, actor: &str) {
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

    fn of(flags: &[Flag], kind: FlagKind) -> Vec<&Flag> {
        flags.iter().filter(|f| f.kind == kind).collect()
    }

    /// The OTRF "EC2 proxy, S3 exfiltration" CloudTrail log, ingested as
    /// `ironlog ingest` would: the instance role's session, replayed from a
    /// Mac, is flagged once; pedro, the console user, is not.
    #[test]
    fn instance_credentials_used_from_a_desktop_flag_once_per_session() {
        use crate::ingest::{event_from_json, Format};
        const OTRF: &str = include_str!(
            "../../../tests/data/ingest/cloudtrail_otrf_ec2_proxy_s3_exfiltration.jsonl"
        );
        let mut run = Run::new();
        for line in OTRF.lines() {
            let value: Value = serde_json::from_str(line).unwrap();
            let event = event_from_json(Format::Cloudtrail, &value).unwrap();
            let category = rule_category(&event).map_or(Category::Other, |v| v.category);
            run.feed(&event, category);
        }
        let off_host = of(&run.flags, FlagKind::InstanceCredentialsOffHost);
        assert_eq!(off_host.len(), 1, "{off_host:#?}");
        let f = off_host[0];
        assert!(f.actor.ends_with("/i-0317f6c6b66ae9c40"), "{f:?}");
        assert!(f.reason.contains("Darwin"), "{}", f.reason);
        assert!(f.score >= 0.5, "a review score: {f:?}");

        // Not an instance session, or not a desktop client: no flag.
        let mut run = Run::new();
        let mut e = ev(
            "arn:aws:sts::1:assumed-role/Admin/alice",
            "s3:ListBuckets",
            "aws:s3",
            at(0, 0),
            Outcome::Success,
        );
        e.source = "cloudtrail".into();
        e.actor.user_agent = Some("aws-cli/1.18 Python/3.8 Darwin/19.5.0".into());
        run.feed(&e, Category::DataAccess);
        e.actor.id = "arn:aws:sts::1:assumed-role/Web/i-0317f6c6b66ae9c40".into();
        e.actor.user_agent = Some("aws-cli/1.18 Python/3.8 Linux/5.4 botocore/1.17".into());
        run.feed(&e, Category::DataAccess);
        e.actor.id = "arn:aws:sts::1:assumed-role/Web/i-xyz".into();
        e.actor.user_agent = Some("aws-cli/1.18 Python/3.8 Darwin/19.5.0".into());
        run.feed(&e, Category::DataAccess);
        assert!(
            of(&run.flags, FlagKind::InstanceCredentialsOffHost).is_empty(),
            "{:#?}",
            run.flags
        );
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
    fn baseline_flags_wait_for_the_warm_up() {
        let mut run = Run::new();
        for i in 0..19 {
            let mut e = ev(
                "newcomer",
                &format!("svc{i}:act"),
                &format!("r{i}"),
                at(0, i * 3 * HOUR),
                Outcome::Success,
            );
            e.actor.ip = Some(format!("198.51.{i}.7"));
            e.actor.user_agent = Some(format!("agent{i}/1.0"));
            run.feed(&e, Category::PrivilegeChange);
        }
        assert!(run.flags.is_empty(), "{:#?}", run.flags);
    }

    #[test]
    fn new_network_flags_once_and_a_neighbour_address_does_not() {
        let mut run = Run::new();
        run.warm("alice");
        let mut same_net = ev(
            "alice",
            "files:read",
            "reports/q1.csv",
            at(10, 0),
            Outcome::Success,
        );
        same_net.actor.ip = Some("10.1.2.200".into());
        assert!(run.feed(&same_net, Category::DataAccess).is_empty());
        let mut away = same_net.clone();
        away.actor.ip = Some("203.0.113.7".into());
        let flags = run.feed(&away, Category::DataAccess);
        let new_ip = of(&flags, FlagKind::NewSourceIp);
        assert_eq!(new_ip.len(), 1, "{flags:#?}");
        assert!(new_ip[0].reason.contains("alice") && new_ip[0].reason.contains("203.0.113.0/24"));
        assert!(
            new_ip[0].reason.contains("31 events"),
            "{}",
            new_ip[0].reason
        );
        assert_eq!(new_ip[0].entries, vec![31]);
        assert!(
            run.feed(&away, Category::DataAccess).is_empty(),
            "learned after one"
        );
        let mut v6 = same_net.clone();
        v6.actor.ip = Some("2001:db8:1:2::5".into());
        let flags = run.feed(&v6, Category::DataAccess);
        assert!(of(&flags, FlagKind::NewSourceIp)[0]
            .reason
            .contains("2001:db8:1:2::/64"));
    }

    #[test]
    fn new_user_agent_product_flags_but_a_version_bump_does_not() {
        let mut run = Run::new();
        run.warm("alice");
        let mut bump = ev(
            "alice",
            "files:read",
            "reports/q1.csv",
            at(10, 0),
            Outcome::Success,
        );
        bump.actor.user_agent = Some("aws-cli/2.99.0 Python/3.12".into());
        assert!(run.feed(&bump, Category::DataAccess).is_empty());
        let mut tool = bump.clone();
        tool.actor.user_agent = Some("python-requests/2.31.0".into());
        let flags = run.feed(&tool, Category::DataAccess);
        assert_eq!(of(&flags, FlagKind::NewUserAgent).len(), 1, "{flags:#?}");
        assert!(flags[0].reason.contains("\"python-requests\""));
    }

    #[test]
    fn unusual_hour_flags_activity_far_from_the_usual_hours() {
        let mut run = Run::new();
        run.warm("alice");
        // 10:00 is next to the usual 09:xx: not unusual.
        let near = ev(
            "alice",
            "files:read",
            "reports/q1.csv",
            at(10, HOUR),
            Outcome::Success,
        );
        assert!(run.feed(&near, Category::DataAccess).is_empty());
        let night = ev(
            "alice",
            "files:read",
            "reports/q1.csv",
            at(10, 17 * HOUR),
            Outcome::Success,
        );
        let flags = run.feed(&night, Category::DataAccess);
        let odd = of(&flags, FlagKind::UnusualHour);
        assert_eq!(odd.len(), 1, "{flags:#?}");
        assert!(odd[0].reason.contains("02:00 UTC"), "{}", odd[0].reason);
    }

    #[test]
    fn rate_spike_flags_once_when_far_above_the_actors_mean() {
        let mut run = Run::new();
        // Five requests per five-minute bucket for ten buckets.
        for b in 0..10 {
            for i in 0..5 {
                let e = ev(
                    "bot",
                    "files:read",
                    "reports/q1.csv",
                    at(0, b * 300 + i * 10),
                    Outcome::Success,
                );
                run.feed(&e, Category::DataAccess);
            }
        }
        assert!(run.flags.is_empty(), "{:#?}", run.flags);
        for i in 0..60 {
            let e = ev(
                "bot",
                "files:read",
                "reports/q1.csv",
                at(0, 10 * 300 + i),
                Outcome::Success,
            );
            run.feed(&e, Category::DataAccess);
        }
        let spikes = of(&run.flags, FlagKind::RateSpike);
        assert_eq!(spikes.len(), 1, "{:#?}", run.flags);
        assert!(
            spikes[0].reason.contains("30 requests") && spikes[0].reason.contains("5.0"),
            "{}",
            spikes[0].reason
        );
        assert!(spikes[0].entries.len() <= ANOMALY_FLAG_ENTRIES_MAX);
        assert_eq!(spikes[0].entries.last(), Some(&79));
    }

    #[test]
    fn new_resource_family_and_first_seen_pair_for_consequential_actions() {
        let mut run = Run::new();
        run.warm("alice");
        let grant = ev(
            "alice",
            "iam:AttachUserPolicy",
            "arn:aws:iam::1:user/bob",
            at(10, 0),
            Outcome::Success,
        );
        let flags = run.feed(&grant, Category::PrivilegeChange);
        assert_eq!(of(&flags, FlagKind::NewResource).len(), 1, "{flags:#?}");
        assert!(of(&flags, FlagKind::NewResource)[0]
            .reason
            .contains("app iam"));
        let pair = of(&flags, FlagKind::FirstSeenPair);
        assert_eq!(pair.len(), 1);
        assert!(
            pair[0].reason.contains("arn:aws:iam::1:user/bob")
                && pair[0].reason.contains("privilege change")
        );
        // A new ordinary report is neither a new family nor consequential.
        let read = ev(
            "alice",
            "files:read",
            "reports/q9.csv",
            at(10, 60),
            Outcome::Success,
        );
        assert!(run.feed(&read, Category::DataAccess).is_empty());
    }

    #[test]
    fn failure_burst_by_one_actor_fires_once_per_window() {
        let mut run = Run::new();
        for i in 0..9 {
            let e = ev(
                "mallory",
                "files:read",
                &format!("secret{i}"),
                at(0, i * 20),
                Outcome::Denied,
            );
            let flags = run.feed(&e, Category::DataAccess);
            let bursts = of(&flags, FlagKind::FailureBurst);
            if i == 4 {
                assert_eq!(bursts.len(), 1, "fifth denial");
                assert!(
                    bursts[0]
                        .reason
                        .contains("mallory had 5 failed or denied requests within 300 s"),
                    "{}",
                    bursts[0].reason
                );
                assert_eq!(bursts[0].entries, vec![0, 1, 2, 3, 4]);
                assert!((bursts[0].score - 0.5).abs() < 1e-6);
            } else {
                assert!(bursts.is_empty(), "event {i}");
            }
        }
        // A whole window later it may fire again.
        for i in 0..5 {
            let e = ev(
                "mallory",
                "files:read",
                "x",
                at(0, 600 + i),
                Outcome::Failure,
            );
            run.feed(&e, Category::DataAccess);
        }
        assert_eq!(of(&run.flags, FlagKind::FailureBurst).len(), 2);
    }

    #[test]
    fn spread_out_failures_are_not_a_burst() {
        let mut run = Run::new();
        for i in 0..20 {
            let e = ev("alice", "login", "alice", at(0, i * 120), Outcome::Failure);
            run.feed(&e, Category::FailedLogin);
        }
        assert!(
            of(&run.flags, FlagKind::FailureBurst).is_empty(),
            "{:#?}",
            run.flags
        );
    }

    #[test]
    fn failed_logins_against_one_account_from_many_actors_burst() {
        let mut run = Run::new();
        for i in 0..5 {
            let mut e = ev(
                &format!("attacker{i}"),
                "login",
                "bob@example.com",
                at(0, i * 5),
                Outcome::Failure,
            );
            e.actor.ip = Some(format!("192.0.2.{i}"));
            run.feed(&e, Category::FailedLogin);
        }
        let bursts = of(&run.flags, FlagKind::FailureBurst);
        assert_eq!(bursts.len(), 1, "{:#?}", run.flags);
        assert!(
            bursts[0]
                .reason
                .contains("5 failed logins against bob@example.com from 5 actors"),
            "{}",
            bursts[0].reason
        );
        assert_eq!(bursts[0].actor, "attacker4");
        // One actor failing five times against one account: one flag, the
        // actor's, not a second one for the account.
        let mut run = Run::new();
        for i in 0..5 {
            let e = ev(
                "mallory",
                "login",
                "bob@example.com",
                at(0, i),
                Outcome::Failure,
            );
            run.feed(&e, Category::FailedLogin);
        }
        let bursts = of(&run.flags, FlagKind::FailureBurst);
        assert_eq!(bursts.len(), 1, "{bursts:#?}");
        assert!(bursts[0].reason.starts_with("mallory had 5 failed"));
    }

    #[test]
    fn late_events_do_not_rewind_windows() {
        let mut run = Run::new();
        let e = ev("mallory", "files:read", "x", at(1, 0), Outcome::Denied);
        run.feed(&e, Category::DataAccess);
        // Four more denials stamped a day earlier: outside the window of the
        // latest time seen, so no burst.
        for i in 0..4 {
            let late = ev("mallory", "files:read", "x", at(0, i), Outcome::Denied);
            run.feed(&late, Category::DataAccess);
        }
        assert!(
            of(&run.flags, FlagKind::FailureBurst).is_empty(),
            "{:#?}",
            run.flags
        );
        // Late by a minute is inside the window and counts.
        for i in 0..4 {
            let late = ev(
                "mallory",
                "files:read",
                "x",
                at(1, -60 + i),
                Outcome::Denied,
            );
            run.feed(&late, Category::DataAccess);
        }
        assert_eq!(of(&run.flags, FlagKind::FailureBurst).len(), 1);
    }

    #[test]
    fn privilege_change_then_sensitive_access_by_the_same_actor() {
        let mut run = Run::new();
        let grant = ev(
            "alice",
            "iam:AttachUserPolicy",
            "arn:aws:iam::1:user/alice",
            at(0, 0),
            Outcome::Success,
        );
        run.feed(&grant, Category::PrivilegeChange);
        let other = ev(
            "bob",
            "secretsmanager:GetSecretValue",
            "prod/db-password",
            at(0, 60),
            Outcome::Success,
        );
        run.feed(&other, Category::DataAccess);
        let dull = ev(
            "alice",
            "s3:GetObject",
            "reports/q1.csv",
            at(0, 120),
            Outcome::Success,
        );
        run.feed(&dull, Category::DataAccess);
        assert!(of(&run.flags, FlagKind::PrivilegeThenSensitive).is_empty());
        let read = ev(
            "alice",
            "secretsmanager:GetSecretValue",
            "prod/db-password",
            at(0, 600),
            Outcome::Success,
        );
        let flags = run.feed(&read, Category::DataAccess);
        let seq = of(&flags, FlagKind::PrivilegeThenSensitive);
        assert_eq!(seq.len(), 1, "{flags:#?}");
        assert_eq!(seq[0].entries, vec![0, 3]);
        assert!(
            seq[0].reason.contains("600 s later") && seq[0].reason.contains("prod/db-password"),
            "{}",
            seq[0].reason
        );
        // One flag per privilege change.
        assert!(of(
            &run.feed(&read, Category::DataAccess),
            FlagKind::PrivilegeThenSensitive
        )
        .is_empty());
    }

    #[test]
    fn sensitive_access_after_the_window_or_a_refused_grant_is_not_a_sequence() {
        let mut run = Run::new();
        let grant = ev(
            "alice",
            "iam:AttachUserPolicy",
            "u",
            at(0, 0),
            Outcome::Success,
        );
        run.feed(&grant, Category::PrivilegeChange);
        let late = ev(
            "alice",
            "s3:DeleteObject",
            "any",
            at(0, 2 * HOUR),
            Outcome::Success,
        );
        run.feed(&late, Category::DataDeletion);
        let refused = ev(
            "carol",
            "iam:AttachUserPolicy",
            "u",
            at(0, 0),
            Outcome::Denied,
        );
        run.feed(&refused, Category::PrivilegeChange);
        let export = ev(
            "carol",
            "rds:StartExportTask",
            "db",
            at(0, 60),
            Outcome::Success,
        );
        run.feed(&export, Category::DataExport);
        assert!(
            of(&run.flags, FlagKind::PrivilegeThenSensitive).is_empty(),
            "{:#?}",
            run.flags
        );
    }

    #[test]
    fn mass_reads_and_exports_count_distinct_objects() {
        let mut run = Run::new();
        for i in 0..200 {
            let e = ev(
                "alice",
                "s3:GetObject",
                "reports/same.csv",
                at(0, i),
                Outcome::Success,
            );
            run.feed(&e, Category::DataAccess);
        }
        assert!(
            of(&run.flags, FlagKind::MassRead).is_empty(),
            "re-reading one object"
        );
        for i in 0..60 {
            let e = ev(
                "bob",
                "s3:GetObject",
                &format!("bucket/obj{i}"),
                at(0, i * 5),
                Outcome::Success,
            );
            let flags = run.feed(&e, Category::DataAccess);
            assert_eq!(
                of(&flags, FlagKind::MassRead).len(),
                usize::from(i == 49),
                "read {i}"
            );
        }
        let read = &of(&run.flags, FlagKind::MassRead)[0];
        assert!(
            read.reason
                .contains("bob read 50 distinct objects within 600 s"),
            "{}",
            read.reason
        );
        assert_eq!(read.entries.len(), ANOMALY_FLAG_ENTRIES_MAX);
        for i in 0..10 {
            let e = ev(
                "carol",
                "snapshots:share",
                &format!("snap{i}"),
                at(0, i),
                Outcome::Success,
            );
            run.feed(&e, Category::DataExport);
        }
        let export = of(&run.flags, FlagKind::MassExport);
        assert_eq!(export.len(), 1);
        assert!(export[0]
            .reason
            .contains("carol exported 10 distinct objects"));
        assert!((export[0].score - 0.7).abs() < 1e-6);
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

    #[test]
    fn config_is_validated_with_the_setting_named_and_clamped_by_new() {
        assert_eq!(DetectorConfig::default().validate(), Ok(()));
        let bad = DetectorConfig {
            failure_window_s: 0,
            ..DetectorConfig::default()
        };
        let err = bad.validate().unwrap_err();
        assert!(
            err.to_string().contains("failure_window_s") && err.to_string().contains("is 0 s"),
            "{err}"
        );
        let too_many = DetectorConfig {
            mass_read_objects_min: 1000,
            ..DetectorConfig::default()
        };
        assert_eq!(
            too_many.validate(),
            Err(DetectorConfigError::Count {
                name: "mass_read_objects_min",
                value: 1000,
                max: ANOMALY_WINDOW_EVENTS_MAX
            })
        );
        let nan = DetectorConfig {
            rate_spike_factor: f32::NAN,
            warmup_events_min: 0,
            ..too_many
        };
        assert!(nan.validate().is_err());
        assert_eq!(nan.clamped().validate(), Ok(()));
    }

    #[test]
    fn kind_names_are_distinct_snake_case() {
        let names: Vec<&str> = FlagKind::ALL.iter().map(FlagKind::as_str).collect();
        for n in &names {
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{n}");
        }
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn networks_agents_and_hours_are_parsed_safely() {
        assert_eq!(network("203.0.113.9"), Some("203.0.113.0/24".into()));
        assert_eq!(network("::ffff:203.0.113.9"), Some("203.0.113.0/24".into()));
        assert_eq!(network("cloudformation.amazonaws.com"), None);
        assert_eq!(network("AWS Internal"), None);
        assert_eq!(agent_product("Mozilla/5.0 (Macintosh)"), "mozilla");
        assert_eq!(agent_product("  "), "  ".to_lowercase());
        assert_eq!(hour_of_day(-1), 23);
        assert_eq!(hour_of_day(at(0, 0)), 9);
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
            flags.extend(detector.observe(i as u64, &e, category_of(&e)));
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
            Detector::new(DetectorConfig::default()).observe(0, &e, category_of(&e))
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
        // A failed root login and an ordinary console login are not single-event flags.
        assert!(flags_for("AWS.Console.RootLoginFailed", "Failed Root Login").is_empty());
        assert!(flags_for("AWS.Console.LoginWithoutSAML", "Normal Login").is_empty());
    }
}
