//! The follower: indexes every newly applied entry, in log order, exactly
//! once, through the rules, the anomaly detector and the index. It never
//! waits for the model.
//!
//! Entries come from the state machine's apply
//! ([`crate::storage::applied_feed`]) as it stores them, so the follower
//! costs no second read and decode of each leaf. The feed drops batches
//! rather than slow apply, and offers nothing stored before it existed
//! (start-up) or without an apply (a snapshot install): the follower reads
//! every such gap from the node's own replica, which holds every entry
//! below the published tree size.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Analyst;
use crate::analysis::category::{rule_category, Category};
use crate::analysis::index::Decided;
use crate::ledger::event::{Event, LeafRecord};
use crate::limits::PAGE_ENTRIES_MAX;
use crate::storage::applied_feed::{FeedReceiver, NewLeaves};
use crate::storage::ledger_store::LedgerStore;
use crate::storage::Applied;

/// How long the follower waits before retrying a failed read of the store.
const READ_RETRY_MS: u64 = 500;

impl Analyst {
    /// Indexes one committed entry: rules, detector, index.
    pub fn observe(&self, index: u64, event: &Event) {
        let (category, decided) = match rule_category(event) {
            Some(v) => (v.category, Decided::Rule(v.rule)),
            None => (Category::Other, Decided::Pending),
        };
        let updates = self
            .detector
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(index, event, category);
        let mut state = self.write();
        state.index.push(index, event, category, decided.clone());
        // A copy per change only for followers: most changes have none.
        let following = self.flag_tx.receiver_count() > 0;
        state.flags.apply(&updates, |f| {
            if following {
                let _ = self.flag_tx.send(f.clone());
            }
        });
        drop(state);
        if decided == Decided::Pending {
            self.pending.notify_one();
        }
    }

    /// Follows the node's applied log until `stopping`: indexes what apply
    /// hands over on `fed`, and reads from `store` what it did not.
    pub async fn follow(
        self: Arc<Self>,
        store: Arc<LedgerStore>,
        mut applied: watch::Receiver<Applied>,
        mut fed: FeedReceiver,
        mut stopping: watch::Receiver<bool>,
    ) {
        // Leaves handed over and not yet indexed: past a gap, kept until
        // the gap is read, or past the end of a round.
        let mut held: Option<NewLeaves> = None;
        loop {
            if *stopping.borrow() {
                return;
            }
            // The size first: apply offers its leaves before it publishes
            // the size, so every leaf below it is in the feed by now, or
            // was never offered or was dropped.
            let size = applied.borrow_and_update().tree_size;
            held = self.index_fed(&mut fed, held);
            let next = self.indexed();
            match held.as_ref().and_then(NewLeaves::first_index) {
                Some(first) if first == next => tokio::task::yield_now().await,
                Some(gap_end) => self.read_back(&store, next, gap_end).await,
                None if next < size => self.read_back(&store, next, size).await,
                None => tokio::select! {
                    leaves = fed.recv() => match leaves {
                        Some(leaves) => held = Some(leaves),
                        // The state machine is gone: Raft stopped.
                        None => return,
                    },
                    r = applied.changed() => if r.is_err() { return },
                    _ = stopping.changed() => {}
                },
            }
        }
    }

    /// Indexes the leaves apply handed over, `held` first, in order, and
    /// returns those it did not: the rest from the first leaf past a gap,
    /// or past [`PAGE_ENTRIES_MAX`] indexed, so that the task yields between
    /// rounds as it does between pages read from the store. Leaves already
    /// read from the store are skipped.
    fn index_fed(&self, fed: &mut FeedReceiver, held: Option<NewLeaves>) -> Option<NewLeaves> {
        let mut next = self.indexed();
        let round_end = next + PAGE_ENTRIES_MAX;
        let mut leaves = held.or_else(|| fed.try_recv())?;
        loop {
            match leaves.first_index() {
                None => leaves = fed.try_recv()?,
                Some(index) if index > next || next == round_end => return Some(leaves),
                Some(_) => {
                    let Some((index, event)) = leaves.pop() else {
                        continue;
                    };
                    if index == next {
                        self.observe(index, &event);
                        next += 1;
                    }
                }
            }
        }
    }

    /// Reads one page of entries `from..to` from the store and indexes it;
    /// on a failure, waits and leaves the retry to the caller.
    async fn read_back(&self, store: &Arc<LedgerStore>, from: u64, to: u64) {
        let s = Arc::clone(store);
        let end = to.min(from + PAGE_ENTRIES_MAX);
        let page = tokio::task::spawn_blocking(move || s.entries(from, end)).await;
        match page {
            Ok(Ok((rows, _))) => {
                let read = rows.len() as u64;
                let total = self.entries_read_back.fetch_add(read, Ordering::Relaxed) + read;
                tracing::debug!(from, to, total, "analyst: entries read back from the store");
                for (index, leaf) in rows {
                    match LeafRecord::decode(&leaf) {
                        Ok(record) => self.observe(index, &record.event),
                        Err(e) => {
                            // The store verified this leaf on write; a
                            // decode failure is corruption for fsck, not a
                            // reason to stop following.
                            tracing::error!(index, error = %e, "analyst: leaf does not decode; indexed as unknown");
                            self.observe(index, &unreadable_event());
                        }
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "analyst: reading entries failed; retrying");
                tokio::time::sleep(Duration::from_millis(READ_RETRY_MS)).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "analyst: read task failed; retrying");
                tokio::time::sleep(Duration::from_millis(READ_RETRY_MS)).await;
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::ledger::event::{Actor, Outcome};
    use crate::storage::applied_feed::{applied_feed, event_bytes, FeedSender};
    use crate::storage::ledger_store::Op;

    fn event(n: u64) -> Event {
        Event {
            time_unix_nanos: n as i64 + 1,
            actor: Actor {
                id: "alice".into(),
                kind: None,
                ip: None,
                user_agent: None,
            },
            action: "db.read".into(),
            // One width, so every event costs the feed the same.
            resource: format!("table{n:04}"),
            outcome: Outcome::Success,
            source: "test".into(),
            details: Default::default(),
            idempotency_key: None,
        }
    }

    /// A node's store, its published size and its feed, driven by hand as
    /// the state machine's apply drives them.
    struct Node {
        store: Arc<LedgerStore>,
        applied: watch::Sender<Applied>,
        feed: FeedSender,
    }

    impl Node {
        /// Stores one append, offers its leaves (unless `offered` is false,
        /// as for what a snapshot install stores), then publishes the size:
        /// apply's order. Returns whether the feed took them.
        fn apply(&self, events: Vec<Event>, offered: bool) -> bool {
            let ops = vec![Op::Append {
                events: events.into(),
                commit_time_unix_nanos: 1,
            }];
            let results = self.store.apply(&ops, None, None).unwrap();
            let taken = offered && self.feed.offer(ops, &results);
            let tree_size = self.store.tree_size().unwrap();
            self.applied.send_replace(Applied {
                tree_size,
                log_index: 0,
            });
            taken
        }

        fn events(&self, n: u64) -> Vec<Event> {
            let size = self.store.tree_size().unwrap();
            (size..size + n).map(event).collect()
        }
    }

    async fn indexed_to(analyst: &Analyst, size: u64, follower: &tokio::task::JoinHandle<()>) {
        for _ in 0..1000 {
            assert!(!follower.is_finished(), "the follower stopped");
            if analyst.indexed() == size {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("indexed {} of {size}", analyst.indexed());
    }

    #[tokio::test]
    async fn every_entry_is_indexed_once_in_order_whether_fed_or_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(LedgerStore::open(&dir.path().join("ledger.redb"), "test/log").unwrap());
        // Room for two batches of two entries.
        let (feed, fed) = applied_feed(4 * event_bytes(&event(0)));
        let node = Node {
            store: store.clone(),
            applied: watch::Sender::new(Applied::default()),
            feed,
        };
        let (stop, stopping) = watch::channel(false);
        let analyst = Analyst::new(Err("no model in this test".into()), false);

        // Stored before the feed was read (a restart): never offered.
        node.apply(node.events(3), false);
        // Two batches fill the feed; the third is dropped.
        assert!(node.apply(node.events(2), true));
        assert!(node.apply(node.events(2), true));
        assert!(!node.apply(node.events(2), true), "the feed is full");
        let follower = tokio::spawn(Arc::clone(&analyst).follow(
            store.clone(),
            node.applied.subscribe(),
            fed,
            stopping,
        ));
        indexed_to(&analyst, 9, &follower).await;
        let read_back = || analyst.entries_read_back.load(Ordering::Relaxed);
        assert_eq!(read_back(), 3 + 2, "only what the feed did not carry");

        // Followed live: a retried event (stored at 9) stores nothing, the
        // rest is fed.
        let mut retried = node.events(2);
        retried[0].idempotency_key = Some("once".into());
        assert!(node.apply(retried.clone(), true));
        indexed_to(&analyst, 11, &follower).await;
        retried.truncate(1);
        retried.extend(node.events(1));
        assert!(node.apply(retried, true));
        indexed_to(&analyst, 12, &follower).await;
        // Leaves stored without an apply (a snapshot install), then fed ones.
        node.apply(node.events(4), false);
        assert!(node.apply(node.events(2), true));
        indexed_to(&analyst, 18, &follower).await;
        assert_eq!(read_back(), 3 + 2 + 4);

        let resources: Vec<_> = {
            let state = analyst.read();
            assert_eq!(state.index.first_index(), Some(0));
            (0..18)
                .map(|i| state.index.get(i).map(|e| e.resource.to_string()))
                .collect()
        };
        for (i, resource) in resources.into_iter().enumerate() {
            assert_eq!(resource, Some(format!("table{i:04}")), "entry {i}");
        }
        stop.send_replace(true);
        follower.await.unwrap();
    }

    #[tokio::test]
    async fn an_apply_larger_than_a_round_is_indexed_over_several() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(LedgerStore::open(&dir.path().join("ledger.redb"), "test/log").unwrap());
        let (feed, fed) = applied_feed(crate::limits::APPLIED_FEED_BYTES_MAX);
        let applied = watch::Sender::new(Applied::default());
        let (_stop, stopping) = watch::channel(false);
        let analyst = Analyst::new(Err("no model in this test".into()), false);
        let follower = tokio::spawn(Arc::clone(&analyst).follow(
            store.clone(),
            applied.subscribe(),
            fed,
            stopping,
        ));
        let size = 5 * PAGE_ENTRIES_MAX / 2;
        let ops: Vec<Op> = (0..size)
            .step_by(PAGE_ENTRIES_MAX as usize / 2)
            .map(|from| Op::Append {
                events: (from..from + PAGE_ENTRIES_MAX / 2)
                    .map(event)
                    .collect::<Vec<_>>()
                    .into(),
                commit_time_unix_nanos: 1,
            })
            .collect();
        let results = store.apply(&ops, None, None).unwrap();
        assert!(feed.offer(ops, &results));
        applied.send_replace(Applied {
            tree_size: size,
            log_index: 0,
        });
        indexed_to(&analyst, size, &follower).await;
        assert_eq!(analyst.entries_read_back.load(Ordering::Relaxed), 0);
    }
}
