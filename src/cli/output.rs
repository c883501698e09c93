//! How entries, times and hashes are printed, for people and as JSON.

use std::io::Write;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::CliError;
use crate::proto;

/// Unix nanoseconds as RFC 3339 UTC; the raw number if out of range.
pub fn format_time(unix_nanos: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_nanos))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix_nanos.to_string())
}

/// Lowercase outcome name for a proto outcome number.
pub fn outcome_name(code: i32) -> &'static str {
    match proto::Outcome::try_from(code) {
        Ok(proto::Outcome::Success) => "success",
        Ok(proto::Outcome::Failure) => "failure",
        Ok(proto::Outcome::Denied) => "denied",
        Ok(proto::Outcome::Unknown) => "unknown",
        Ok(proto::Outcome::Unspecified) | Err(_) => "unspecified",
    }
}

/// One line per entry: index, event time, actor, action, resource, outcome, source.
pub fn entry_line(entry: &proto::Entry) -> String {
    let Some(event) = &entry.event else {
        return format!("{:>8}  (no event)", entry.index);
    };
    let actor = event.actor.as_ref().map(|a| a.id.as_str()).unwrap_or("-");
    format!(
        "{:>8}  {}  {}  {}  {}  {}  ({})",
        entry.index,
        format_time(event.time_unix_nanos),
        actor,
        event.action,
        event.resource,
        outcome_name(event.outcome),
        event.source,
    )
}

/// An entry as one JSON object, including the leaf bytes and leaf hash in hex.
pub fn entry_json(entry: &proto::Entry) -> Value {
    let mut value = json!({
        "index": entry.index,
        "commit_time": format_time(entry.commit_time_unix_nanos),
        "leaf": hex::encode(&entry.leaf),
        "leaf_hash": hex::encode(&entry.leaf_hash),
    });
    if let Some(event) = &entry.event {
        value["event"] = event_json(event);
    }
    value
}

fn event_json(event: &proto::Event) -> Value {
    let actor = event.actor.clone().unwrap_or_default();
    let details = if event.details_json.is_empty() {
        json!({})
    } else {
        // Shown as text if a server ever sends details that are not JSON.
        serde_json::from_str(&event.details_json)
            .unwrap_or_else(|_| Value::String(event.details_json.clone()))
    };
    let mut value = json!({
        "time": format_time(event.time_unix_nanos),
        "time_unix_nanos": event.time_unix_nanos,
        "actor": { "id": actor.id },
        "action": event.action,
        "resource": event.resource,
        "outcome": outcome_name(event.outcome),
        "source": event.source,
        "details": details,
    });
    for (key, field) in [
        ("type", actor.r#type),
        ("ip", actor.ip),
        ("user_agent", actor.user_agent),
    ] {
        if !field.is_empty() {
            value["actor"][key] = Value::String(field);
        }
    }
    if !event.idempotency_key.is_empty() {
        value["idempotency_key"] = Value::String(event.idempotency_key.clone());
    }
    value
}

/// An event in the JSON-lines form `ironlog append --file` and `ironlog
/// ingest --format jsonl` read back (README, "JSON-lines event format").
pub fn event_line(event: &crate::ledger::event::Event) -> Value {
    let mut actor = json!({ "id": event.actor.id });
    for (key, field) in [
        ("type", &event.actor.kind),
        ("ip", &event.actor.ip),
        ("user_agent", &event.actor.user_agent),
    ] {
        if let Some(field) = field {
            actor[key] = Value::String(field.clone());
        }
    }
    let mut value = json!({
        "time": format_time(event.time_unix_nanos),
        "actor": actor,
        "action": event.action,
        "resource": event.resource,
        "outcome": event.outcome.as_str(),
        "source": event.source,
        "details": event.details,
    });
    if let Some(key) = &event.idempotency_key {
        value["idempotency_key"] = Value::String(key.clone());
    }
    value
}

/// Prints one entry in the chosen format.
pub fn print_entry(entry: &proto::Entry, json: bool) -> Result<(), CliError> {
    if json {
        print_json(&entry_json(entry))
    } else {
        print_line(&entry_line(entry))
    }
}

/// Writes one line to stdout, reporting a closed pipe as an error instead of
/// panicking the way `println!` does.
pub fn print_line(line: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").map_err(CliError::Output)
}

/// Writes one compact JSON value per line.
pub fn print_json(value: &Value) -> Result<(), CliError> {
    print_line(&value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_time(1_540_560_318_275_010_000),
            "2018-10-26T13:25:18.27501Z"
        );
    }

    #[test]
    fn unknown_outcome_numbers_do_not_panic() {
        assert_eq!(outcome_name(1), "success");
        assert_eq!(outcome_name(99), "unspecified");
    }

    #[test]
    fn entry_json_carries_leaf_and_hash_in_hex() {
        let entry = proto::Entry {
            index: 7,
            leaf: vec![0xab, 0xcd],
            leaf_hash: vec![0x01; 32],
            event: Some(proto::Event {
                details_json: r#"{"k":"v"}"#.into(),
                outcome: 3,
                ..Default::default()
            }),
            ..Default::default()
        };
        let value = entry_json(&entry);
        assert_eq!(value["leaf"], "abcd");
        assert_eq!(value["leaf_hash"], "01".repeat(32));
        assert_eq!(value["event"]["details"]["k"], "v");
        assert_eq!(value["event"]["outcome"], "denied");
    }
}
