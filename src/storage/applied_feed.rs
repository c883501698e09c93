//! The hand-off of newly stored leaves from the state machine to a reader on
//! the same node (the analysis node's analyst), so that the reader need not
//! read back from the store what apply has just written.
//!
//! # What it guarantees, and what not
//! Best effort, by design: [`FeedSender::offer`] never waits. While the
//! batches queued and not yet taken hold more than the budget
//! ([`APPLIED_FEED_BYTES_MAX`](crate::limits::APPLIED_FEED_BYTES_MAX), as
//! estimated by [`event_bytes`]), further batches are dropped, so a slow or
//! stopped reader never slows appends and never grows memory. A reader
//! therefore sees leaves in log order but not necessarily all of them: a
//! batch whose first index is past the next one it expects follows a gap,
//! which it reads from the store, as it does at start-up (nothing applied
//! before the feed existed is offered) and after a snapshot install (which
//! stores leaves without applying them). The store stays the record; the
//! feed only saves reading it again.
//!
//! Here, below both `raft` (which offers) and `analysis` (which takes), so
//! that neither depends on the other.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::ledger::event::Event;
use crate::storage::ledger_store::{Op, OpResult};

/// A feed whose queued batches hold at most `bytes_max` (estimated); the
/// state machine keeps the sender, the reader the receiver.
pub fn applied_feed(bytes_max: usize) -> (FeedSender, FeedReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sender = FeedSender {
        tx,
        budget: Arc::new(Semaphore::new(bytes_max)),
    };
    (sender, FeedReceiver { rx })
}

/// The state machine's end. Clones share the queue and its budget.
#[derive(Clone)]
pub struct FeedSender {
    /// Unbounded itself: `budget` bounds it, in bytes rather than batches,
    /// since a batch holds from one leaf to thousands.
    tx: mpsc::UnboundedSender<NewLeaves>,
    /// Bytes the queue may still take; each batch holds its share until the
    /// reader drops it.
    budget: Arc<Semaphore>,
}

/// The leaves one apply stored, in log order, as (leaf index, event).
pub struct NewLeaves {
    leaves: std::collections::VecDeque<(u64, Event)>,
    /// Returned to the budget when the reader is done with the batch.
    _budget: OwnedSemaphorePermit,
}

/// The reader's end.
pub struct FeedReceiver {
    rx: mpsc::UnboundedReceiver<NewLeaves>,
}

impl FeedSender {
    /// Offers the leaves that `ops` stored, as `results` (what
    /// [`LedgerStore::apply`](crate::storage::ledger_store::LedgerStore::apply)
    /// returned for them) say: the events of appends, less those
    /// deduplicated or refused. Takes `ops` to move the events, not copy
    /// them. Returns false if the leaves were dropped: over the budget, or
    /// the reader is gone.
    pub fn offer(&self, ops: Vec<Op>, results: &[OpResult]) -> bool {
        let mut leaves = Vec::new();
        let mut bytes = 0usize;
        // A group's batches pair with its results as single appends do.
        let mut batches = Vec::new();
        for (op, result) in ops.into_iter().zip(results) {
            match (op, result) {
                (Op::Append { events, .. }, result) => batches.push((events, result)),
                (Op::AppendGroup { batches: group, .. }, OpResult::Grouped { results }) => {
                    batches.extend(group.into_iter().zip(results));
                }
                _ => {}
            }
        }
        for (events, result) in batches {
            let OpResult::Appended {
                indices,
                deduplicated,
                ..
            } = result
            else {
                continue;
            };
            // The Raft log's tail may still share the batch: copied then.
            let events =
                std::sync::Arc::try_unwrap(events).unwrap_or_else(|shared| (*shared).clone());
            for ((event, &index), &dup) in events.into_iter().zip(indices).zip(deduplicated) {
                if !dup {
                    bytes = bytes.saturating_add(event_bytes(&event));
                    leaves.push((index, event));
                }
            }
        }
        if leaves.is_empty() {
            return true;
        }
        // A batch larger than the whole budget never fits: dropped too.
        let permit = u32::try_from(bytes)
            .ok()
            .and_then(|n| Arc::clone(&self.budget).try_acquire_many_owned(n).ok());
        let Some(permit) = permit else {
            return false;
        };
        self.tx
            .send(NewLeaves {
                leaves: leaves.into(),
                _budget: permit,
            })
            .is_ok()
    }
}

impl NewLeaves {
    /// The index of the next leaf in the batch.
    pub fn first_index(&self) -> Option<u64> {
        self.leaves.front().map(|(index, _)| *index)
    }

    /// Takes the next leaf.
    pub fn pop(&mut self) -> Option<(u64, Event)> {
        self.leaves.pop_front()
    }
}

impl FeedReceiver {
    /// The next batch; `None` once every sender is gone (the state machine
    /// stopped).
    pub async fn recv(&mut self) -> Option<NewLeaves> {
        self.rx.recv().await
    }

    /// The next batch if one is queued.
    pub fn try_recv(&mut self) -> Option<NewLeaves> {
        self.rx.try_recv().ok()
    }
}

/// About how many bytes `event` holds in memory, what the feed's budget
/// counts: the struct, its strings, and the `details` tree (each JSON value
/// and key, and the strings in it). Allocator and map overhead are left
/// out; an estimate is enough for a bound on memory, and computing it costs
/// one walk over a few fields.
pub fn event_bytes(event: &Event) -> usize {
    let optional = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let strings = event.actor.id.len()
        + optional(&event.actor.kind)
        + optional(&event.actor.ip)
        + optional(&event.actor.user_agent)
        + event.action.len()
        + event.resource.len()
        + event.source.len()
        + optional(&event.idempotency_key);
    // A stack, not recursion: the depth of `details` is the client's.
    let mut details = 0;
    let mut pending: Vec<&Value> = Vec::new();
    let key = |k: &String| size_of::<String>() + k.len();
    for (k, v) in &event.details {
        details += key(k);
        pending.push(v);
    }
    while let Some(v) = pending.pop() {
        details += size_of::<Value>();
        match v {
            Value::String(s) => details += s.len(),
            Value::Array(items) => pending.extend(items),
            Value::Object(fields) => {
                for (k, v) in fields {
                    details += key(k);
                    pending.push(v);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    size_of::<Event>() + strings + details
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::event::{Actor, Outcome};

    fn event(n: u64) -> Event {
        Event {
            time_unix_nanos: 1,
            actor: Actor {
                id: "alice".into(),
                kind: None,
                ip: None,
                user_agent: None,
            },
            action: "read".into(),
            resource: format!("r{n}"),
            outcome: Outcome::Success,
            source: "test".into(),
            details: Default::default(),
            idempotency_key: None,
        }
    }

    fn append(events: Vec<Event>) -> Op {
        Op::Append {
            events: events.into(),
            commit_time_unix_nanos: 1,
        }
    }

    fn indices(leaves: &mut NewLeaves) -> Vec<(u64, String)> {
        std::iter::from_fn(|| leaves.pop())
            .map(|(i, e)| (i, e.resource))
            .collect()
    }

    #[test]
    fn only_the_leaves_an_apply_stored_are_offered_in_order() {
        let (tx, mut rx) = applied_feed(1 << 20);
        let ops = vec![
            append(vec![event(0), event(1), event(2)]),
            Op::Checkpoint,
            append(vec![event(9)]),
            append(vec![event(3)]),
        ];
        let results = vec![
            // The second event was a retry of an earlier one.
            OpResult::Appended {
                indices: vec![7, 2, 8],
                deduplicated: vec![false, true, false],
                tree_size: 9,
            },
            OpResult::Checkpointed { size: Some(9) },
            OpResult::Refused {
                reason: "over a limit".into(),
            },
            OpResult::Appended {
                indices: vec![9],
                deduplicated: vec![false],
                tree_size: 10,
            },
        ];
        assert!(tx.offer(ops, &results));
        let mut leaves = rx.try_recv().unwrap();
        assert_eq!(leaves.first_index(), Some(7));
        assert_eq!(
            indices(&mut leaves),
            [(7, "r0".into()), (8, "r2".into()), (9, "r3".into())]
        );
        assert!(rx.try_recv().is_none());

        // A group's batches are offered like single appends, less the
        // batch that was refused.
        let group = Op::AppendGroup {
            batches: vec![
                vec![event(4)].into(),
                vec![event(5)].into(),
                vec![event(6)].into(),
            ],
            commit_time_unix_nanos: 1,
        };
        let appended = |index: u64| OpResult::Appended {
            indices: vec![index],
            deduplicated: vec![false],
            tree_size: index + 1,
        };
        let grouped = OpResult::Grouped {
            results: vec![
                appended(10),
                OpResult::Refused {
                    reason: "bad".into(),
                },
                appended(11),
            ],
        };
        assert!(tx.offer(vec![group], &[grouped]));
        let mut leaves = rx.try_recv().unwrap();
        assert_eq!(indices(&mut leaves), [(10, "r4".into()), (11, "r6".into())]);

        // Nothing stored, nothing sent.
        assert!(tx.offer(vec![Op::Nothing], &[OpResult::Nothing]));
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn batches_over_the_budget_are_dropped_until_the_reader_takes_some() {
        let one = event_bytes(&event(0));
        let (tx, mut rx) = applied_feed(2 * one);
        let offer = |index: u64| {
            let result = OpResult::Appended {
                indices: vec![index],
                deduplicated: vec![false],
                tree_size: index + 1,
            };
            tx.offer(vec![append(vec![event(index)])], &[result])
        };
        assert!(offer(0));
        assert!(offer(1));
        assert!(!offer(2), "the budget is spent: dropped, not waited for");
        let first = rx.try_recv().unwrap();
        assert!(!offer(3), "a batch held by the reader still counts");
        drop(first);
        assert!(offer(4));
        let taken: Vec<_> = std::iter::from_fn(|| rx.try_recv())
            .map(|l| l.first_index())
            .collect();
        assert_eq!(taken, [Some(1), Some(4)]);

        // A batch larger than the whole budget never fits.
        let results = OpResult::Appended {
            indices: vec![5, 6, 7],
            deduplicated: vec![false; 3],
            tree_size: 8,
        };
        let big = append(vec![event(5), event(6), event(7)]);
        assert!(!tx.offer(vec![big], &[results]));
        drop(rx);
        assert!(!offer(8), "the reader is gone");
    }

    #[test]
    fn event_bytes_counts_strings_and_nested_details() {
        let plain = event_bytes(&event(0));
        let mut e = event(0);
        e.details = serde_json::from_str(r#"{"k":["abcd",{"x":"yz"}]}"#).unwrap();
        let value = size_of::<Value>();
        let key = size_of::<String>();
        // "k", the array, "abcd", the object, "x" and "yz".
        let details = (key + 1) + value + (value + 4) + value + (key + 1) + (value + 2);
        assert_eq!(event_bytes(&e), plain + details);
    }
}
