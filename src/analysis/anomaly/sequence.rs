//! A privilege change followed, within the window, by sensitive access,
//! export or deletion by the same actor.

use super::actor::ActorState;
use super::sensitive::is_sensitive_target;
use super::{DetectorConfig, Flag, FlagKind, Observed, NANOS_PER_S};

pub(super) fn privilege_then_sensitive(
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

#[cfg(test)]
mod tests {
    use crate::analysis::anomaly::tests::{at, ev, of, Run, HOUR};
    use crate::analysis::anomaly::FlagKind;
    use crate::analysis::category::Category;
    use crate::ledger::event::Outcome;

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
}
