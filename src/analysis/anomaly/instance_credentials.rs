//! Instance credentials off the host: the role session of an EC2 instance
//! used by a desktop client. Flagged once per incident: the calls that
//! follow with the same session from a desktop client join its incident
//! (`incident.rs`) rather than each raising a flag of its own.

use super::incident::IncidentKey;
use super::{DetectorConfig, Flag, FlagKind, Observed, NANOS_PER_S};
use crate::ledger::event::Event;

/// Markers of a desktop operating system in a user agent. EC2 instances
/// run Linux almost always; macOS and Windows instances exist, which is why
/// this is a review score, not a certainty.
const DESKTOP_AGENT_MARKERS: &[&str] =
    &["Darwin/", "Macintosh", "Mac OS X", "Windows NT", "Windows/"];

/// Review, not certainty: see [`DESKTOP_AGENT_MARKERS`].
const OFF_HOST_SCORE: f32 = 0.7;

/// A call made with an EC2 instance's role session by a desktop client.
pub(super) struct OffHostUse<'a> {
    /// The session name: the instance id.
    pub(super) session: &'a str,
    /// The desktop marker found in the user agent.
    pub(super) marker: &'a str,
    pub(super) agent: &'a str,
}

/// Whether `event` is a CloudTrail call made with an instance's role session
/// (`assumed-role/<role>/i-<hex>`) by a desktop client. The flag and the
/// incident's membership use this one test, so every call the flag would
/// describe joins its incident and the instance's own calls do not.
pub(super) fn off_host_use(event: &Event) -> Option<OffHostUse<'_>> {
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
    instance.then_some(OffHostUse {
        session,
        marker,
        agent,
    })
}

/// An EC2 instance's role session used by a desktop client: flagged on the
/// first such use, and again only after a quiet spell longer than
/// [`DetectorConfig::incident_idle_s`] since the latest (`last_use_ns`): in
/// between, each use joins the flag's incident, which stays open as long.
pub(super) fn instance_credentials_off_host(
    config: &DetectorConfig,
    last_use_ns: &mut Option<i64>,
    e: &Observed,
) -> Option<Flag> {
    let event = e.event;
    let found = off_host_use(event)?;
    let idle_ns = i64::from(config.incident_idle_s) * NANOS_PER_S;
    let previous = last_use_ns.replace(last_use_ns.map_or(e.time(), |t| t.max(e.time())));
    if previous.is_some_and(|t| e.time() <= t.saturating_add(idle_ns)) {
        return None;
    }
    let flag = e.flag(
        FlagKind::InstanceCredentialsOffHost,
        OFF_HOST_SCORE,
        format!(
            "the role session of EC2 instance {} ({}) was used by a desktop client \
             ({} in user agent \"{}\"): {} on {}; instance credentials replayed off the instance?",
            found.session,
            event.actor.id,
            found.marker.trim_end_matches('/'),
            found.agent,
            event.action,
            event.resource
        ),
        vec![e.index],
    );
    Some(flag.keyed(IncidentKey::OffHostSession(event.actor.id.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::anomaly::tests::{at, ev, of, Run};
    use crate::analysis::category::{rule_category, Category};
    use crate::ledger::event::Outcome;
    use serde_json::Value;

    /// The OTRF "EC2 proxy, S3 exfiltration" CloudTrail log, ingested as
    /// `ironlog ingest` would: the instance role's session, replayed from a
    /// Mac, is flagged once, and its incident lists all eleven calls made
    /// with it; pedro, the console user, is not flagged.
    #[test]
    fn instance_credentials_used_from_a_desktop_flag_once_per_session() {
        use crate::ingest::{event_from_json, Format};
        const OTRF: &str = include_str!(
            "../../../tests/data/ingest/cloudtrail_otrf_ec2_proxy_s3_exfiltration.jsonl"
        );
        let mut run = Run::new();
        let mut stolen = Vec::new();
        for (i, line) in OTRF.lines().enumerate() {
            let value: Value = serde_json::from_str(line).unwrap();
            let event = event_from_json(Format::Cloudtrail, &value).unwrap();
            let category = rule_category(&event).map_or(Category::Other, |v| v.category);
            let agent = event.actor.user_agent.as_deref().unwrap_or("");
            if event.actor.id.ends_with("/i-0317f6c6b66ae9c40") && agent.contains("Darwin/") {
                stolen.push(i as u64);
            }
            run.feed(&event, category);
        }
        let off_host = of(&run.flags, FlagKind::InstanceCredentialsOffHost);
        assert_eq!(off_host.len(), 1, "{off_host:#?}");
        let f = off_host[0];
        assert!(f.actor.ends_with("/i-0317f6c6b66ae9c40"), "{f:?}");
        assert!(f.reason.contains("Darwin"), "{}", f.reason);
        assert!(f.score >= 0.5, "a review score: {f:?}");
        assert_eq!(stolen.len(), 11);
        let incident = run
            .incidents()
            .into_values()
            .find(|i| i.kinds.contains(&FlagKind::InstanceCredentialsOffHost))
            .expect("the flag's incident");
        assert_eq!(
            incident.entries, stolen,
            "every call with the stolen session"
        );

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
}
