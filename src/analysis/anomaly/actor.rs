//! What the detector remembers of each actor and of each target account,
//! and the order an actor's rules run in for each observed entry.

use super::baseline::{baseline_flags, learn, rate_spike};
use super::burst::{failure_burst, mass_access};
use super::instance_credentials::instance_credentials_off_host;
use super::sequence::privilege_then_sensitive;
use super::state::{BoundedSet, Rate, Window};
use super::{DetectorConfig, Flag, Observed};
use crate::analysis::category::Category;
use crate::ledger::event::Outcome;

/// The last privilege change an actor made, awaiting sensitive access.
pub(super) struct PrivilegeChange {
    pub(super) time_ns: i64,
    pub(super) index: u64,
    pub(super) action: String,
    pub(super) resource: String,
}

/// Everything remembered about one actor.
#[derive(Default)]
pub(super) struct ActorState {
    /// Events seen (history for the warm-up).
    pub(super) events: u64,
    /// Events per hour of day, UTC.
    pub(super) hours: [u32; 24],
    pub(super) networks: BoundedSet,
    pub(super) agents: BoundedSet,
    pub(super) families: BoundedSet,
    pub(super) resources: BoundedSet,
    pub(super) rate: Rate,
    pub(super) failures: Window,
    pub(super) reads: Window,
    pub(super) exports: Window,
    pub(super) privilege: Option<PrivilegeChange>,
    /// Event time of the actor's latest use from a desktop client of an
    /// instance session: one off-host flag per incident.
    pub(super) off_host_last_use_ns: Option<i64>,
}

/// Failed logins against one account.
#[derive(Default)]
pub(super) struct TargetState {
    pub(super) failures: Window,
}

pub(super) fn actor_flags(
    config: &DetectorConfig,
    actor: &mut ActorState,
    e: &Observed,
) -> Vec<Flag> {
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
    flags.extend(instance_credentials_off_host(
        config,
        &mut actor.off_host_last_use_ns,
        e,
    ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::anomaly::tests::{at, ev, Run, HOUR};

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
}
