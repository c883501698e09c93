//! Events gathered, in order, into `Append` batches.
use std::collections::HashSet;

use prost::Message;

use crate::api::convert::event_to_proto;
use crate::ledger::event::Event;
use crate::limits;
use crate::proto;

/// Default events per `Append` call: big enough to amortise a Raft commit,
/// half the server's limit so a batch of large events stays under the bytes cap.
pub const BATCH_EVENTS_DEFAULT: usize = 500;

/// Bytes of an `Append` request left for framing beyond the events themselves.
pub(super) const BATCH_FRAMING_BYTES: usize = 64 * 1024;

const _: () = assert!(BATCH_EVENTS_DEFAULT <= limits::BATCH_EVENTS_MAX);
const _: () = assert!(limits::LEAF_BYTES_MAX + BATCH_FRAMING_BYTES < limits::BATCH_BYTES_MAX);

/// Splits events into batches of at most `batch_events` events and at most
/// the server's byte limit, keeping their order.
pub fn batches(events: &[Event], batch_events: usize) -> Vec<Vec<proto::Event>> {
    let mut batcher = Batcher::new(batch_events);
    let mut batches: Vec<_> = events.iter().filter_map(|e| batcher.push(e)).collect();
    batches.extend(batcher.finish());
    batches
}

/// Gathers events, in order, into `Append` batches within the event count,
/// the server's byte limit, and one event per `(source, idempotency key)`:
/// the server refuses a batch holding a key twice, while across batches it
/// answers the second with the first's index.
pub struct Batcher {
    batch_events: usize,
    current: Vec<proto::Event>,
    current_bytes: usize,
    keys: HashSet<(String, String)>,
}

impl Batcher {
    pub fn new(batch_events: usize) -> Self {
        Batcher {
            batch_events,
            current: Vec::new(),
            current_bytes: 0,
            keys: HashSet::new(),
        }
    }

    /// Adds `event`; returns the batch it closed, if it did not fit.
    pub fn push(&mut self, event: &Event) -> Option<Vec<proto::Event>> {
        let bytes_max = limits::BATCH_BYTES_MAX - BATCH_FRAMING_BYTES;
        let wire = event_to_proto(event);
        // Tag and length prefix of the repeated field: at most 1 + 10 bytes.
        let bytes = wire.encoded_len() + 11;
        let key = (!wire.idempotency_key.is_empty())
            .then(|| (wire.source.clone(), wire.idempotency_key.clone()));
        let repeated = key.as_ref().is_some_and(|k| self.keys.contains(k));
        let full = self.current.len() >= self.batch_events
            || self.current_bytes + bytes > bytes_max
            || repeated;
        let closed = if full && !self.current.is_empty() {
            self.current_bytes = 0;
            self.keys.clear();
            Some(std::mem::take(&mut self.current))
        } else {
            None
        };
        self.keys.extend(key);
        self.current.push(wire);
        self.current_bytes += bytes;
        closed
    }

    /// The last, partial batch.
    pub fn finish(self) -> Option<Vec<proto::Event>> {
        (!self.current.is_empty()).then_some(self.current)
    }
}
