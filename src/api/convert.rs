//! Conversions between protobuf messages and ledger types. Client input is
//! validated here, before anything is proposed.
use super::error::ApiError;

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
pub fn event_from_proto(index: usize, e: proto::Event) -> Result<Event, ApiError> {
    let bad = |e: EventError| ApiError::from((index, e));
    let actor = e
        .actor
        .ok_or_else(|| bad(EventError::MissingField { field: "actor" }))?;
    let outcome = outcome_from_proto(e.outcome).ok_or(ApiError::EventOutcome {
        index,
        value: e.outcome,
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
pub fn entry_to_proto(index: u64, leaf: Vec<u8>) -> Result<proto::Entry, ApiError> {
    let record = LeafRecord::decode(&leaf).map_err(|e| ApiError::LeafUndecodable {
        index,
        reason: e.to_string(),
    })?;
    if record.index != index {
        return Err(ApiError::LeafMisplaced {
            index,
            claimed: record.index,
        });
    }
    Ok(proto::Entry {
        index,
        commit_time_unix_nanos: record.commit_time_unix_nanos,
        event: Some(event_to_proto(&record.event)),
        leaf_hash: leaf_hash(&leaf).to_vec(),
        leaf,
    })
}

/// A stored checkpoint as served: the signed note with voter then witness
/// signature lines, and `name+keyid` of every signer.
pub fn checkpoint_to_proto(
    cp: &crate::storage::ledger_store::StoredCheckpoint,
) -> proto::Checkpoint {
    proto::Checkpoint {
        origin: cp.body.origin.clone(),
        size: cp.body.size,
        root_hash: cp.body.root.to_vec(),
        note: cp.note(),
        signers: cp
            .signatures
            .iter()
            .chain(&cp.witness_signatures)
            .map(|s| format!("{}+{:08x}", s.name, s.key_id))
            .collect(),
    }
}

/// The stored leaf at `index` and its inclusion proof in the tree of `size`.
pub fn proven_leaf(
    store: &crate::storage::ledger_store::LedgerStore,
    index: u64,
    size: u64,
) -> Result<(Vec<u8>, proto::InclusionProof), ApiError> {
    let (rows, _) = store.entries(index, index + 1)?;
    let leaf = rows
        .into_iter()
        .next()
        .map(|(_, leaf)| leaf)
        .ok_or(ApiError::LeafMissing { index })?;
    let (leaf_hash, hashes, root) = store.inclusion_proof(index, size)?;
    Ok((
        leaf,
        proto::InclusionProof {
            index,
            tree_size: size,
            leaf_hash: leaf_hash.to_vec(),
            hashes: hashes.iter().map(|h| h.to_vec()).collect(),
            root_hash: root.to_vec(),
        },
    ))
}
