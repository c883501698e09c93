//! Ironlog's own event format in JSON (README, "JSON-lines event format"):
//! one object per event, checked field by field into a validated
//! [`Event`]. `ironlog append --file` reads it (with "now" for a missing
//! time) and `ironlog ingest --format jsonl` (with the time required), so
//! it lives here, below both, rather than in the command line.
use std::str::FromStr;

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::ledger::event::{Actor, Event, Outcome};

/// One JSON line to a validated event; the error says what is wrong with it.
pub fn parse_line(text: &str, now_unix_nanos: i64) -> Result<Event, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err("expected a JSON object".into());
    };
    event_from_object(object, Some(now_unix_nanos))
}

/// One event object of the JSON-lines format to a validated event. Without
/// a `"time"` the event gets `default_time_unix_nanos`, or is refused when
/// there is none (`ironlog ingest` never stamps "now" on a record).
pub fn event_from_object(
    mut object: Map<String, Value>,
    default_time_unix_nanos: Option<i64>,
) -> Result<Event, String> {
    let time_unix_nanos = match object.remove("time") {
        None | Some(Value::Null) => default_time_unix_nanos.ok_or("missing \"time\"")?,
        Some(Value::String(text)) => parse_rfc3339(&text).map_err(|e| format!("\"time\": {e}"))?,
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or("\"time\": expected an integer of Unix nanoseconds")?,
        Some(_) => return Err("\"time\": expected an RFC 3339 string or Unix nanoseconds".into()),
    };
    let actor = match object.remove("actor") {
        Some(Value::String(id)) => Actor {
            id,
            kind: None,
            ip: None,
            user_agent: None,
        },
        Some(Value::Object(actor)) => parse_actor(actor)?,
        None => return Err("missing \"actor\"".into()),
        Some(_) => return Err("\"actor\": expected a string or an object with \"id\"".into()),
    };
    let action = required_string(&mut object, "action")?;
    let resource = required_string(&mut object, "resource")?;
    let outcome_text = required_string(&mut object, "outcome")?;
    let outcome = parse_outcome(&outcome_text).map_err(|e| format!("\"outcome\": {e}"))?;
    let source = required_string(&mut object, "source")?;
    let details = match object.remove("details") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(details)) => details,
        Some(_) => return Err("\"details\": expected a JSON object".into()),
    };
    let idempotency_key = optional_string(&mut object, "idempotency_key")?;
    if let Some(unknown) = object.keys().next() {
        return Err(format!("unknown field \"{unknown}\""));
    }
    let event = Event {
        time_unix_nanos,
        actor,
        action,
        resource,
        outcome,
        source,
        details,
        idempotency_key,
    };
    event.validate().map_err(|e| e.to_string())?;
    Ok(event)
}

fn parse_actor(mut actor: Map<String, Value>) -> Result<Actor, String> {
    let not_a_string = |name: &str| format!("\"actor.{name}\": expected a string");
    let id = match actor.remove("id") {
        Some(Value::String(id)) => id,
        _ => return Err(not_a_string("id")),
    };
    let parsed = Actor {
        id,
        kind: optional_string(&mut actor, "type").map_err(|_| not_a_string("type"))?,
        ip: optional_string(&mut actor, "ip").map_err(|_| not_a_string("ip"))?,
        user_agent: optional_string(&mut actor, "user_agent")
            .map_err(|_| not_a_string("user_agent"))?,
    };
    if let Some(unknown) = actor.keys().next() {
        return Err(format!("unknown field \"actor.{unknown}\""));
    }
    Ok(parsed)
}

fn required_string(object: &mut Map<String, Value>, name: &str) -> Result<String, String> {
    match object.remove(name) {
        Some(Value::String(text)) => Ok(text),
        None | Some(Value::Null) => Err(format!("missing \"{name}\"")),
        Some(_) => Err(format!("\"{name}\": expected a string")),
    }
}

/// Absent, null and "" all mean "not given": real audit sources often write
/// empty strings for unknown values, and the ledger stores them as absent.
fn optional_string(object: &mut Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match object.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(non_empty(text)),
        Some(_) => Err(format!("\"{name}\": expected a string")),
    }
}

pub fn parse_outcome(text: &str) -> Result<Outcome, String> {
    Outcome::from_str(text)
        .map_err(|_| format!("{text:?} is not one of success, failure, denied, unknown"))
}

/// RFC 3339 to Unix nanoseconds, refusing times an i64 cannot hold.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let time = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| format!("{text:?} is not an RFC 3339 time ({e})"))?;
    i64::try_from(time.unix_timestamp_nanos())
        .map_err(|_| format!("{text:?} is out of range for Unix nanoseconds"))
}

pub fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}
