//! The rules every `Append` batch meets, wherever it enters the log.
//!
//! The gRPC `Append` API checks a batch before proposing it, but a command
//! can also reach Raft another way (`Raft/Forward`, a forged or buggy
//! leader). So the state machine checks every batch again where it is
//! applied, on every replica, with [`validate_batch`]: one gate, the same
//! rules everywhere.
//!
//! # Invariants
//! - Deterministic: the result depends only on the events and the commit
//!   time carried in the command, never on a clock or on local
//!   configuration, so every replica accepts or refuses the same batch.
//! - All or nothing: one bad event refuses the whole batch.
//!
//! Pure: no I/O.
use std::collections::HashSet;

use super::event::{Event, EventError};
use crate::limits::{BATCH_BYTES_MAX, BATCH_EVENTS_MAX, LEAF_BYTES_MAX};

/// Why a batch is refused. Surfaces as `INVALID_ARGUMENT` (or
/// `RESOURCE_EXHAUSTED` for the size limits) at the API, and as
/// `OpResult::Refused` when a command is refused at apply.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BatchError {
    #[error("an append needs at least one event")]
    Empty,
    #[error("batch of {count} events exceeds the limit of {max}")]
    TooManyEvents { count: usize, max: usize },
    #[error("batch encodes to {bytes} leaf bytes, more than the limit of {max}")]
    TooManyBytes { bytes: usize, max: usize },
    #[error("a group of {batches} batches holds {count} events, more than one batch may ({max})")]
    GroupTooLarge {
        batches: usize,
        count: usize,
        max: usize,
    },
    #[error("event {index}: {source}")]
    InvalidEvent { index: usize, source: EventError },
    #[error("event {index} encodes to a leaf of {bytes} bytes, more than the limit of {max}")]
    LeafTooLarge {
        index: usize,
        bytes: usize,
        max: usize,
    },
    #[error("event {index}: idempotency key {key:?} of source {source_name:?} appears twice in the batch")]
    DuplicateIdempotencyKey {
        index: usize,
        source_name: String,
        key: String,
    },
    #[error("commit time {time} ns is invalid; the leader stamps a time after the Unix epoch")]
    InvalidCommitTime { time: i64 },
}

/// Checks a batch as committed: the leader's commit time, then the events.
pub fn validate_batch(events: &[Event], commit_time_unix_nanos: i64) -> Result<(), BatchError> {
    validate_batch_details(events, commit_time_unix_nanos).map(|_| ())
}

/// [`validate_batch`], returning each event's canonical details text (as
/// [`Event::validate_details`] does), so the store encodes the leaves with
/// [`encode_leaf_with`](crate::event::encode_leaf_with) without writing
/// the details out a second time.
pub fn validate_batch_details(
    events: &[Event],
    commit_time_unix_nanos: i64,
) -> Result<Vec<String>, BatchError> {
    if commit_time_unix_nanos <= 0 {
        return Err(BatchError::InvalidCommitTime {
            time: commit_time_unix_nanos,
        });
    }
    let mut details = Vec::with_capacity(events.len());
    check_events(events, |d| details.push(d))?;
    Ok(details)
}

/// Checks the shape of a group of batches proposed as one Raft entry (group
/// commit): together they hold no more events than one batch may, so the
/// entry stays within what one batch's entry may be. Each batch is then
/// checked on its own with [`validate_batch`]. Bytes are budgeted where a
/// group is formed, from each batch's [`validate_events`] total, and every
/// replica bounds a Raft message on receipt.
pub fn validate_group<B: std::ops::Deref<Target = Vec<Event>>>(
    batches: &[B],
) -> Result<(), BatchError> {
    let count: usize = batches.iter().map(|b| b.len()).sum();
    if count > BATCH_EVENTS_MAX {
        return Err(BatchError::GroupTooLarge {
            batches: batches.len(),
            count,
            max: BATCH_EVENTS_MAX,
        });
    }
    Ok(())
}

/// Checks the events of a batch, before the leader stamps it: what the API
/// can check up front, so a batch it accepts is never refused at apply.
/// Returns the bytes of its leaves, which group commit budgets with.
pub fn validate_events(events: &[Event]) -> Result<usize, BatchError> {
    check_events(events, drop)
}

/// The checks of [`validate_events`], handing `keep` each event's canonical
/// details in order as it passes.
fn check_events(events: &[Event], mut keep: impl FnMut(String)) -> Result<usize, BatchError> {
    if events.is_empty() {
        return Err(BatchError::Empty);
    }
    if events.len() > BATCH_EVENTS_MAX {
        return Err(BatchError::TooManyEvents {
            count: events.len(),
            max: BATCH_EVENTS_MAX,
        });
    }
    let mut bytes = 0usize;
    let mut keys = HashSet::new();
    for (index, event) in events.iter().enumerate() {
        let details = event
            .validate_details()
            .map_err(|source| BatchError::InvalidEvent { index, source })?;
        let leaf = event.leaf_len(details.len());
        if leaf > LEAF_BYTES_MAX {
            return Err(BatchError::LeafTooLarge {
                index,
                bytes: leaf,
                max: LEAF_BYTES_MAX,
            });
        }
        bytes += leaf;
        keep(details);
        if let Some(key) = &event.idempotency_key {
            // A second copy would be deduplicated against the first within
            // the same batch: refused, as the API does, so a client learns
            // of the mistake instead of getting one index for two events.
            if !keys.insert((event.source.as_str(), key.as_str())) {
                return Err(BatchError::DuplicateIdempotencyKey {
                    index,
                    source_name: event.source.clone(),
                    key: key.clone(),
                });
            }
        }
    }
    // Measured on the leaf encoding rather than on any wire format, so every
    // replica measures the same bytes.
    if bytes > BATCH_BYTES_MAX {
        return Err(BatchError::TooManyBytes {
            bytes,
            max: BATCH_BYTES_MAX,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Actor, LeafRecord, Outcome};
    use crate::limits::{DETAILS_BYTES_MAX, FIELD_BYTES_MAX};

    /// The oracle: the length of the event's leaf, encoded.
    fn leaf_bytes(event: &Event) -> usize {
        LeafRecord {
            index: 0,
            commit_time_unix_nanos: 0,
            event: event.clone(),
        }
        .encode()
        .len()
    }

    fn event(n: usize) -> Event {
        Event {
            time_unix_nanos: 1_700_000_000_000_000_000,
            actor: Actor {
                id: format!("user{n}"),
                ..Actor::default()
            },
            action: "db.read".into(),
            resource: "table".into(),
            outcome: Outcome::Success,
            source: "api".into(),
            details: Default::default(),
            idempotency_key: Some(format!("k{n}")),
        }
    }

    fn batch(n: usize) -> Vec<Event> {
        (0..n).map(event).collect()
    }

    #[test]
    fn a_valid_batch_passes() {
        validate_batch(&batch(3), 1).unwrap();
        validate_batch(&batch(BATCH_EVENTS_MAX), 1).unwrap();
    }

    #[test]
    fn the_details_a_batch_checks_encode_the_same_leaves() {
        let mut events = batch(4);
        events[1]
            .details
            .insert("z".into(), serde_json::json!({"b": [1, 2.5], "a": "x"}));
        events[2]
            .details
            .insert("a".into(), "\"quoted\" \u{e9}".into());
        let details = validate_batch_details(&events, 7).unwrap();
        assert_eq!(details.len(), events.len());
        for (i, (event, text)) in events.iter().zip(&details).enumerate() {
            assert_eq!(*text, crate::event::canonical_details(&event.details));
            let at = 40 + i as u64;
            assert_eq!(
                crate::event::encode_leaf_with(at, 7, event, text),
                crate::event::encode_leaf(at, 7, event)
            );
        }
        assert_eq!(
            validate_batch_details(&events, 0),
            Err(BatchError::InvalidCommitTime { time: 0 })
        );
    }

    #[test]
    fn one_invalid_event_refuses_the_batch_and_is_named() {
        type Spoil<'a> = &'a dyn Fn(&mut Event);
        let cases: [(Spoil, EventError); 4] = [
            (
                &|e| e.time_unix_nanos = 0,
                EventError::InvalidTime { time: 0 },
            ),
            (
                &|e| e.action.clear(),
                EventError::MissingField { field: "action" },
            ),
            (
                &|e| e.resource.clear(),
                EventError::MissingField { field: "resource" },
            ),
            (
                &|e| e.actor.id = "eve\u{1b}[2J".into(),
                EventError::ControlCharacter {
                    field: "actor.id",
                    at: 3,
                },
            ),
        ];
        for (spoil, want) in cases {
            let mut events = batch(3);
            spoil(&mut events[2]);
            assert_eq!(
                validate_batch(&events, 1),
                Err(BatchError::InvalidEvent {
                    index: 2,
                    source: want
                })
            );
        }
    }

    #[test]
    fn oversized_fields_are_refused() {
        let mut events = batch(1);
        events[0].resource = "r".repeat(FIELD_BYTES_MAX + 1);
        assert!(matches!(
            validate_batch(&events, 1),
            Err(BatchError::InvalidEvent {
                index: 0,
                source: EventError::FieldTooLong { .. }
            })
        ));
    }

    #[test]
    fn a_commit_time_at_or_before_the_epoch_is_refused() {
        for time in [0, -1, i64::MIN] {
            assert_eq!(
                validate_batch(&batch(1), time),
                Err(BatchError::InvalidCommitTime { time })
            );
        }
    }

    #[test]
    fn empty_and_overlong_batches_are_refused() {
        assert_eq!(validate_batch(&[], 1), Err(BatchError::Empty));
        assert_eq!(
            validate_batch(&batch(BATCH_EVENTS_MAX + 1), 1),
            Err(BatchError::TooManyEvents {
                count: BATCH_EVENTS_MAX + 1,
                max: BATCH_EVENTS_MAX
            })
        );
    }

    #[test]
    fn a_batch_over_the_byte_limit_is_refused() {
        // Each event near the details limit; enough of them pass 4 MiB.
        let big = serde_json::json!({ "blob": "x".repeat(DETAILS_BYTES_MAX - 16) });
        let per_event = DETAILS_BYTES_MAX;
        let count = BATCH_BYTES_MAX / per_event + 1;
        assert!(count <= BATCH_EVENTS_MAX);
        let events: Vec<Event> = (0..count)
            .map(|n| Event {
                details: big.as_object().unwrap().clone(),
                ..event(n)
            })
            .collect();
        assert!(matches!(
            validate_batch(&events, 1),
            Err(BatchError::TooManyBytes { bytes, max: BATCH_BYTES_MAX }) if bytes > BATCH_BYTES_MAX
        ));
    }

    #[test]
    fn a_repeated_idempotency_key_is_refused() {
        let mut events = batch(3);
        events[2].idempotency_key = Some("k0".into());
        assert_eq!(
            validate_batch(&events, 1),
            Err(BatchError::DuplicateIdempotencyKey {
                index: 2,
                source_name: "api".into(),
                key: "k0".into()
            })
        );
    }

    #[test]
    fn a_group_holds_no_more_events_than_one_batch_and_validation_reports_leaf_bytes() {
        let batch = |n: usize| (0..n).map(event).collect::<Vec<_>>();
        let half = BATCH_EVENTS_MAX / 2;
        let group =
            |batches: Vec<Vec<Event>>| batches.into_iter().map(Box::new).collect::<Vec<_>>();
        assert_eq!(
            validate_group(&group(vec![batch(half), batch(half)])),
            Ok(())
        );
        assert_eq!(
            validate_group(&group(vec![batch(half), batch(half), batch(1)])),
            Err(BatchError::GroupTooLarge {
                batches: 3,
                count: BATCH_EVENTS_MAX + 1,
                max: BATCH_EVENTS_MAX
            })
        );
        let events = batch(3);
        let leaves: usize = events.iter().map(leaf_bytes).sum();
        assert_eq!(validate_events(&events), Ok(leaves));
    }
}
