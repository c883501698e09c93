//! Deviations from an actor's own history, judged only after the warm-up:
//! rate spikes, unusual hours, new networks, user agents and resource
//! families, and first-seen actor/resource pairs; and how each event is
//! learned into the actor's baselines.

use super::actor::ActorState;
use super::sensitive::is_sensitive_target;
use super::state::digest;
use super::{DetectorConfig, Flag, FlagKind, Observed, NANOS_PER_S};
use crate::analysis::category::Category;
use crate::analysis::details::str_field;
use crate::ledger::event::Event;
use crate::limits::{
    ANOMALY_BASELINE_VALUES_MAX, ANOMALY_FLAG_ENTRIES_MAX, ANOMALY_RESOURCES_PER_ACTOR_MAX,
};
use std::net::IpAddr;

/// Deviations from the actor's own history, judged before this event is
/// learned.
pub(super) fn baseline_flags(actor: &ActorState, e: &Observed) -> Vec<Flag> {
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

pub(super) fn rate_spike(
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

/// Adds the event to the actor's baselines.
pub(super) fn learn(actor: &mut ActorState, e: &Observed) {
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
    use crate::analysis::anomaly::tests::{at, ev, of, Run, HOUR};
    use crate::ledger::event::Outcome;

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
}
