//! Stepping aside while this node is below its free-space floor
//! ([`crate::disk`]): it stops campaigning, and if it leads it hands
//! leadership over, so the voters that have room keep a leader and keep
//! appending instead of waiting on a leader that can write nothing.
//!
//! # How
//! - openraft's election timer is off while the node is low and on again
//!   after (`runtime_config().elect`): a node that cannot store the log must
//!   not ask to lead it (a new leader's first act is to append an entry).
//! - A leader calls `trigger().transfer_leader(to)`: openraft stops
//!   proposing and heartbeating and gives up its lease, so the followers'
//!   leases run out and they elect one of themselves; this node refuses
//!   their votes ([`super::service`]). Ironlog's network carries no
//!   TransferLeader message, so the handover takes about one election
//!   timeout rather than being immediate; `to` (the most up-to-date other
//!   voter) is where openraft points writes meanwhile.
//!
//! Once the node has room again it takes the new leader's messages, sees
//! the higher term and follows; nothing here needs undoing but the timer.
use std::collections::BTreeMap;
use std::time::Duration;

use super::{NodeId, Raft};
use crate::disk::FreeSpace;

/// How often a node that is low checks whether it leads (it may have won
/// an election it began just before going low), ms.
const LEADERSHIP_RECHECK_MS: u64 = 1000;

/// Runs until aborted when the node stops.
pub async fn run(raft: Raft, space: FreeSpace) {
    let mut low = space.subscribe();
    // The term this node last handed over in, so it does so once per term.
    let mut handed_over: Option<u64> = None;
    loop {
        let is_low = *low.borrow_and_update();
        raft.runtime_config().elect(!is_low);
        if is_low {
            hand_over(&raft, &mut handed_over).await;
        } else {
            handed_over = None;
        }
        tokio::select! {
            changed = low.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_millis(LEADERSHIP_RECHECK_MS)), if is_low => {}
        }
    }
}

/// If this node leads and has not yet handed over in this term, hands over
/// to the most up-to-date other voter.
async fn hand_over(raft: &Raft, handed_over: &mut Option<u64>) {
    let m = super::metrics(raft);
    if m.current_leader != Some(m.id) || *handed_over == Some(m.current_term) {
        return;
    }
    let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
    let matched: BTreeMap<NodeId, u64> = m
        .replication
        .iter()
        .flatten()
        .map(|(id, log_id)| (*id, log_id.as_ref().map_or(0, |l| l.index + 1)))
        .collect();
    *handed_over = Some(m.current_term);
    let Some(to) = successor(m.id, &voters, &matched) else {
        tracing::warn!(
            "low on disk space and no other voter to lead: refusing writes until there is room"
        );
        return;
    };
    tracing::warn!(
        to,
        term = m.current_term,
        "low on disk space: handing leadership over"
    );
    if let Err(e) = raft.trigger().transfer_leader(to).await {
        tracing::debug!(error = %e, "raft stopped before the handover");
    }
}

/// The voter other than `me` that holds the most of the log (`matched`:
/// entries the leader knows it has), the lowest id among equals; `None`
/// when `me` is the only voter.
fn successor(me: NodeId, voters: &[NodeId], matched: &BTreeMap<NodeId, u64>) -> Option<NodeId> {
    voters
        .iter()
        .copied()
        .filter(|&id| id != me)
        .max_by_key(|id| {
            (
                matched.get(id).copied().unwrap_or(0),
                std::cmp::Reverse(*id),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leadership_goes_to_the_most_up_to_date_other_voter() {
        let matched = BTreeMap::from([(1, 10), (2, 7), (3, 9)]);
        assert_eq!(successor(1, &[1, 2, 3], &matched), Some(3));
        assert_eq!(successor(3, &[1, 2, 3], &matched), Some(1));
        // Learners (not in voters) are never chosen.
        let matched = BTreeMap::from([(2, 7), (3, 7), (4, 99)]);
        assert_eq!(successor(1, &[1, 2, 3], &matched), Some(2));
    }

    #[test]
    fn a_voter_without_replication_metrics_still_qualifies() {
        assert_eq!(successor(1, &[1, 2, 3], &BTreeMap::new()), Some(2));
    }

    #[test]
    fn a_lone_voter_has_no_successor() {
        assert_eq!(successor(1, &[1], &BTreeMap::new()), None);
    }
}
