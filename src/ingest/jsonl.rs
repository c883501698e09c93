//! Ironlog's own event JSON lines (README, "JSON-lines event format"),
//! checked exactly as `ironlog append --file` checks them
//! ([`super::event_json::event_from_object`]), with two differences for
//! replaying history: `"time"` is required (never "now"), and a line without
//! `"idempotency_key"` gets `jsonl:sha256:{hex}` of its canonical JSON.
//! `source` and `details` are the line's own; details are not trimmed, as
//! an over-large one is the writer's error, reported as `append` would.

use serde_json::Value;

use super::event_json::event_from_object;
use super::record::{self, kind};
use super::{Format, RecordError};
use crate::ledger::event::Event;

pub(super) fn map(value: &Value) -> Result<Event, RecordError> {
    let Value::Object(object) = value else {
        return Err(RecordError::NotObject { found: kind(value) });
    };
    if matches!(object.get("time"), None | Some(Value::Null)) {
        return Err(RecordError::MissingTime { expected: "time" });
    }
    let mut event =
        event_from_object(object.clone(), None).map_err(|reason| RecordError::Jsonl { reason })?;
    if event.idempotency_key.is_none() {
        event.idempotency_key = Some(record::idempotency_key(Format::Jsonl, None, object));
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_keep_their_own_source_and_key() {
        let line = json!({
            "time": "2024-05-01T12:00:00Z", "actor": {"id": "alice", "ip": "10.1.2.3"},
            "action": "db.read", "resource": "postgres://payments/customers",
            "outcome": "success", "source": "payments-api", "details": {"rows": 12},
            "idempotency_key": "req-8812"
        });
        let e = map(&line).unwrap();
        assert_eq!(e.source, "payments-api");
        assert_eq!(e.idempotency_key.as_deref(), Some("req-8812"));
        assert_eq!(e.details["rows"], 12);
        assert_eq!(e.time_unix_nanos, 1_714_564_800_000_000_000);
        let mut keyless = line.clone();
        keyless.as_object_mut().unwrap().remove("idempotency_key");
        let a = map(&keyless).unwrap().idempotency_key.unwrap();
        let b = map(&keyless).unwrap().idempotency_key.unwrap();
        assert!(a.starts_with("jsonl:sha256:"), "{a}");
        assert_eq!(a, b, "the derived key is stable");
    }

    #[test]
    fn time_is_required_and_append_checks_apply() {
        let line = json!({"actor": "a", "action": "x", "resource": "r", "outcome": "success", "source": "s"});
        assert_eq!(
            map(&line).unwrap_err().to_string(),
            "no event time (expected time)"
        );
        let mut bad = line.clone();
        bad["time"] = json!("2024-05-01T12:00:00Z");
        bad["colour"] = json!("blue");
        assert_eq!(
            map(&bad).unwrap_err().to_string(),
            "unknown field \"colour\""
        );
    }
}
