//! The counting windows over one actor or one target account: failure
//! bursts (failed or denied requests by an actor, failed logins against an
//! account from many actors) and mass reads and exports (distinct objects).

use super::actor::{ActorState, TargetState};
use super::incident::IncidentKey;
use super::state::digest;
use super::{Detector, DetectorConfig, Flag, FlagKind, Observed, NANOS_PER_S};
use crate::analysis::category::Category;
use crate::ledger::event::Outcome;
use crate::limits::{ANOMALY_FLAG_ENTRIES_MAX, ANOMALY_WINDOW_EVENTS_MAX};

impl Detector {
    /// Failed logins against one account (the event's resource) from many
    /// actors; [`Detector::observe`] asks for failed logins only.
    pub(super) fn target_burst(&mut self, e: &Observed) -> Option<Flag> {
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
        Some(
            e.flag(
                FlagKind::FailureBurst,
                burst_score(n, self.config.failure_burst_min),
                format!(
                    "{n} failed logins against {} from {actors} actors within {} s (latest by {})",
                    e.event.resource, self.config.failure_window_s, e.event.actor.id
                ),
                w.entries(ANOMALY_FLAG_ENTRIES_MAX),
            )
            .keyed(IncidentKey::Target(e.event.resource.clone())),
        )
    }
}

/// 0.5 at the threshold, rising 0.05 per extra event, at most 1.
fn burst_score(n: usize, min: u32) -> f32 {
    (0.5 + 0.05 * n.saturating_sub(min as usize) as f32).min(1.0)
}

pub(super) fn failure_burst(
    config: &DetectorConfig,
    actor: &mut ActorState,
    e: &Observed,
) -> Option<Flag> {
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

pub(super) fn mass_access(
    config: &DetectorConfig,
    actor: &mut ActorState,
    e: &Observed,
) -> Option<Flag> {
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

#[cfg(test)]
mod tests {
    use crate::analysis::anomaly::tests::{at, ev, flags_of, of, Run};
    use crate::analysis::anomaly::{Detector, DetectorConfig, FlagKind};
    use crate::analysis::category::Category;
    use crate::ledger::event::Outcome;
    use crate::limits::ANOMALY_FLAG_ENTRIES_MAX;

    #[test]
    fn default_failure_bursts_need_ten_refusals_within_ten_minutes() {
        let config = DetectorConfig::default();
        assert_eq!(
            (config.failure_burst_min, config.failure_window_s),
            (10, 600)
        );
        let mut detector = Detector::new(config);
        let mut bursts = 0;
        for i in 0..10u64 {
            let denied = ev(
                "mallory",
                "s3:GetObject",
                &format!("secret{i}"),
                at(0, 50 * i as i64),
                Outcome::Denied,
            );
            let flags = flags_of(&detector.observe(i, &denied, Category::DataAccess));
            let burst = of(&flags, FlagKind::FailureBurst).len();
            assert_eq!(burst, usize::from(i == 9), "refusal {}: {flags:#?}", i + 1);
            bursts += burst;
        }
        assert_eq!(bursts, 1);
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
}
