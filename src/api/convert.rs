//! Conversions between protobuf messages and ledger types. Client input is
//! validated here, before anything is proposed.
use tonic::Status;

use crate::ledger::event::{parse_details, Actor, Event, EventError, LeafRecord, Outcome};
use crate::ledger::merkle::leaf_hash;
use crate::proto;

fn opt(s: String) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

pub fn outcome_from_proto(value: i32) -> Option<Outcome> {
    match proto::Outcome::try_from(value).ok()? {
        proto::Outcome::Unspecified => None,
        proto::Outcome::Success => Some(Outcome::Success),
        proto::Outcome::Failure => Some(Outcome::Failure),
        proto::Outcome::Denied => Some(Outcome::Denied),
        proto::Outcome::Unknown => Some(Outcome::Unknown),
    }
}

pub fn outcome_to_proto(o: Outcome) -> proto::Outcome {
    match o {
        Outcome::Success => proto::Outcome::Success,
        Outcome::Failure => proto::Outcome::Failure,
        Outcome::Denied => proto::Outcome::Denied,
        Outcome::Unknown => proto::Outcome::Unknown,
    }
}

/// A client's event, checked field by field; `index` names it in errors.
pub fn event_from_proto(index: usize, e: proto::Event) -> Result<Event, Status> {
    let bad = |e: EventError| super::status::from_event(index, e);
    let actor = e
        .actor
        .ok_or_else(|| bad(EventError::MissingField { field: "actor" }))?;
    let outcome = outcome_from_proto(e.outcome).ok_or_else(|| {
        Status::invalid_argument(format!(
            "event {index}: outcome must be one of success, failure, denied, unknown (got {})",
            e.outcome
        ))
    })?;
    let event = Event {
        time_unix_nanos: e.time_unix_nanos,
        actor: Actor {
            id: actor.id,
            kind: opt(actor.r#type),
            ip: opt(actor.ip),
            user_agent: opt(actor.user_agent),
        },
        action: e.action,
        resource: e.resource,
        outcome,
        source: e.source,
        details: parse_details(&e.details_json).map_err(bad)?,
        idempotency_key: opt(e.idempotency_key),
    };
    event.validate().map_err(bad)?;
    Ok(event)
}

pub fn event_to_proto(e: &Event) -> proto::Event {
    proto::Event {
        time_unix_nanos: e.time_unix_nanos,
        actor: Some(proto::Actor {
            id: e.actor.id.clone(),
            r#type: e.actor.kind.clone().unwrap_or_default(),
            ip: e.actor.ip.clone().unwrap_or_default(),
            user_agent: e.actor.user_agent.clone().unwrap_or_default(),
        }),
        action: e.action.clone(),
        resource: e.resource.clone(),
        outcome: outcome_to_proto(e.outcome) as i32,
        source: e.source.clone(),
        details_json: crate::ledger::event::canonical_details(&e.details),
        idempotency_key: e.idempotency_key.clone().unwrap_or_default(),
    }
}

/// A stored leaf as an `Entry`: the exact bytes, their hash and the decoding.
pub fn entry_to_proto(index: u64, leaf: Vec<u8>) -> Result<proto::Entry, Status> {
    let record = LeafRecord::decode(&leaf)
        .map_err(|e| Status::internal(format!("stored leaf {index} does not decode: {e}")))?;
    if record.index != index {
        return Err(Status::internal(format!(
            "stored leaf {index} claims index {}",
            record.index
        )));
    }
    Ok(proto::Entry {
        index,
        commit_time_unix_nanos: record.commit_time_unix_nanos,
        event: Some(event_to_proto(&record.event)),
        leaf_hash: leaf_hash(&leaf).to_vec(),
        leaf,
    })
}
