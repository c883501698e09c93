//! The follower: reads every newly applied entry from the node's own
//! replica, in log order, and puts it through the rules, the anomaly
//! detector and the index. It never waits for the model.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Analyst, StoredFlag};
use crate::analysis::category::{rule_category, Category};
use crate::analysis::index::Decided;
use crate::ledger::event::{Event, LeafRecord};
use crate::limits::{FLAGS_KEPT_MAX, PAGE_ENTRIES_MAX};
use crate::storage::ledger_store::LedgerStore;
use crate::storage::Applied;

impl Analyst {
    /// Indexes one committed entry: rules, detector, index.
    pub fn observe(&self, index: u64, event: &Event) {
        let (category, decided) = match rule_category(event) {
            Some(v) => (v.category, Decided::Rule(v.rule)),
            None => (Category::Other, Decided::Pending),
        };
        let flags = self
            .detector
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(index, event, category);
        let mut state = self.write();
        state.index.push(index, event, category, decided.clone());
        for f in &flags {
            let mut f = StoredFlag::from(f);
            f.seq = state.flags_raised;
            state.flags_raised += 1;
            let _ = self.flag_tx.send(f.clone());
            state.flags.push_back(f);
            if state.flags.len() > FLAGS_KEPT_MAX {
                state.flags.pop_front();
            }
        }
        drop(state);
        if decided == Decided::Pending {
            self.pending.notify_one();
        }
    }

    /// Follows the node's applied log until `stopping`. Reads pages of
    /// entries from the store and indexes them in order.
    pub async fn follow(
        self: Arc<Self>,
        store: Arc<LedgerStore>,
        mut applied: watch::Receiver<Applied>,
        mut stopping: watch::Receiver<bool>,
    ) {
        loop {
            if *stopping.borrow() {
                return;
            }
            let next = self.indexed();
            let size = applied.borrow().tree_size;
            if next < size {
                let s = Arc::clone(&store);
                let end = size.min(next + PAGE_ENTRIES_MAX);
                let page = tokio::task::spawn_blocking(move || s.entries(next, end)).await;
                match page {
                    Ok(Ok((rows, _))) => {
                        for (index, leaf) in rows {
                            match LeafRecord::decode(&leaf) {
                                Ok(record) => self.observe(index, &record.event),
                                Err(e) => {
                                    // The store verified this leaf on write;
                                    // a decode failure is corruption for
                                    // fsck, not a reason to stop following.
                                    tracing::error!(index, error = %e, "analyst: leaf does not decode; indexed as unknown");
                                    self.observe(index, &unreadable_event());
                                }
                            }
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "analyst: reading entries failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "analyst: read task failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
                continue;
            }
            tokio::select! {
                r = applied.changed() => if r.is_err() { return },
                _ = stopping.changed() => {}
            }
        }
    }
}

/// A stand-in for a leaf that does not decode, so the index stays gapless.
pub(super) fn unreadable_event() -> Event {
    Event {
        time_unix_nanos: 0,
        actor: crate::ledger::event::Actor {
            id: "(unreadable)".into(),
            kind: None,
            ip: None,
            user_agent: None,
        },
        action: "(unreadable)".into(),
        resource: "(unreadable)".into(),
        outcome: crate::ledger::event::Outcome::Unknown,
        source: "(unreadable)".into(),
        details: Default::default(),
        idempotency_key: None,
    }
}
