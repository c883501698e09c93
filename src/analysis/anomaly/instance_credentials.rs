//! Instance credentials off the host: the role session of an EC2 instance
//! used by a desktop client, flagged once per actor.

use super::{Flag, FlagKind, Observed};

/// Markers of a desktop operating system in a user agent. EC2 instances
/// run Linux almost always; macOS and Windows instances exist, which is why
/// this is a review score, not a certainty.
const DESKTOP_AGENT_MARKERS: &[&str] =
    &["Darwin/", "Macintosh", "Mac OS X", "Windows NT", "Windows/"];

/// Review, not certainty: see [`DESKTOP_AGENT_MARKERS`].
const OFF_HOST_SCORE: f32 = 0.7;

/// An EC2 instance's role session used by a desktop client.
pub(super) fn instance_credentials_off_host(e: &Observed) -> Option<Flag> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::anomaly::tests::{at, ev, of, Run};
    use crate::analysis::category::{rule_category, Category};
    use crate::ledger::event::Outcome;
    use serde_json::Value;

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
}
