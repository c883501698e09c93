//! GCP Cloud Audit Logs: `LogEntry` objects whose `protoPayload` is an
//! `AuditLog`.
//!
//! | event | from |
//! |---|---|
//! | time | `timestamp`, else `receiveTimestamp` |
//! | actor.id | `protoPayload.authenticationInfo.principalEmail` (else `principalSubject`) |
//! | actor.ip / user_agent | `protoPayload.requestMetadata.callerIp` / `callerSuppliedUserAgent` |
//! | action | `protoPayload.methodName` |
//! | resource | `protoPayload.resourceName`, else `gcp:{resource.type}`, else `gcp:{serviceName}` |
//! | outcome | `protoPayload.status.code` 7 (PERMISSION_DENIED) or an authorization not granted: denied; another non-zero code: failure; a status with code 0 (or none): success; no status: failure when `severity` is ERROR or worse, else unknown |
//! | idempotency key | `gcp-audit:{insertId}` |

use serde_json::Value;

use super::record::{self, kind, object, str_at, Draft};
use super::{time, Format, RecordError};
use crate::ledger::event::{Event, Outcome};

/// google.rpc.Code PERMISSION_DENIED.
const CODE_PERMISSION_DENIED: i64 = 7;

/// LogSeverity names at or above ERROR.
const ERROR_SEVERITIES: &[&str] = &["ERROR", "CRITICAL", "ALERT", "EMERGENCY"];

pub(super) fn map(value: &Value) -> Result<Event, RecordError> {
    let record = object(value)?;
    let time_unix_nanos = time::first_time(
        record,
        &["timestamp", "receiveTimestamp"],
        false,
        "timestamp",
    )?;
    let payload = match record.get("protoPayload") {
        Some(payload @ Value::Object(_)) => payload,
        None | Some(Value::Null) => {
            return Err(RecordError::MissingField {
                field: "protoPayload",
                why: "an audit log entry carries the call in it",
            })
        }
        Some(other) => {
            return Err(RecordError::WrongType {
                field: "protoPayload",
                expected: "an object",
                found: kind(other),
            })
        }
    };
    let method = match payload.get("methodName") {
        Some(Value::String(m)) if !m.trim().is_empty() => m,
        Some(other @ (Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_))) => {
            return Err(RecordError::WrongType {
                field: "protoPayload.methodName",
                expected: "a string",
                found: kind(other),
            })
        }
        _ => {
            return Err(RecordError::MissingField {
                field: "protoPayload.methodName",
                why: "the method is the action",
            })
        }
    };
    let auth = payload.get("authenticationInfo").unwrap_or(&Value::Null);
    let metadata = payload.get("requestMetadata").unwrap_or(&Value::Null);
    let resource = str_at(payload, &["resourceName"])
        .map(str::to_string)
        .or_else(|| str_at(value, &["resource", "type"]).map(|t| format!("gcp:{t}")))
        .or_else(|| str_at(payload, &["serviceName"]).map(|s| format!("gcp:{s}")))
        .unwrap_or_default();
    let draft = Draft {
        time_unix_nanos,
        actor_id: str_at(auth, &["principalEmail"]).or_else(|| str_at(auth, &["principalSubject"])),
        actor_kind: None,
        // The API writes callerIp; some exports capitalise it.
        actor_ip: str_at(metadata, &["callerIp"]).or_else(|| str_at(metadata, &["callerIP"])),
        user_agent: str_at(metadata, &["callerSuppliedUserAgent"]),
        action: method.clone(),
        resource,
        outcome: outcome(value, payload),
        native_id: str_at(value, &["insertId"]).map(str::to_string),
    };
    record::finish(Format::GcpAudit, draft, record)
}

fn outcome(entry: &Value, payload: &Value) -> Outcome {
    let refused = payload
        .get("authorizationInfo")
        .and_then(Value::as_array)
        .is_some_and(|infos| {
            infos
                .iter()
                .any(|i| i.get("granted").and_then(Value::as_bool) == Some(false))
        });
    match payload.get("status") {
        Some(status @ Value::Object(_)) => {
            // proto3 JSON leaves out a zero code: `{}` is OK.
            match status.get("code").and_then(Value::as_i64).unwrap_or(0) {
                CODE_PERMISSION_DENIED => Outcome::Denied,
                _ if refused => Outcome::Denied,
                0 => Outcome::Success,
                _ => Outcome::Failure,
            }
        }
        _ if refused => Outcome::Denied,
        _ => match str_at(entry, &["severity"]) {
            Some(s) if ERROR_SEVERITIES.contains(&s) => Outcome::Failure,
            _ => Outcome::Unknown,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{read_events, Format};
    use serde_json::json;

    const PANTHER: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ingest/gcp_audit_panther.jsonl"
    ));

    #[test]
    fn panther_samples_map() {
        let events: Vec<Event> = read_events(Format::GcpAudit, PANTHER.as_bytes())
            .map(|r| r.expect("every sample record maps").1)
            .collect();
        assert_eq!(events.len(), PANTHER.lines().count());
        for e in &events {
            assert_eq!(e.action, e.details["protoPayload"]["methodName"]);
        }
        assert!(events.iter().any(|e| e.outcome == Outcome::Denied));
    }

    fn base() -> Value {
        json!({
            "insertId": "12345",
            "timestamp": "2023-03-08T18:52:52.114Z",
            "severity": "NOTICE",
            "resource": {"type": "gcs_bucket"},
            "protoPayload": {
                "methodName": "SetIamPolicy",
                "serviceName": "storage.googleapis.com",
                "resourceName": "projects/_/buckets/payroll",
                "authenticationInfo": {"principalEmail": "user1@company.io"},
                "requestMetadata": {"callerIp": "1.2.3.4", "callerSuppliedUserAgent": "gcloud"},
                "status": {}
            }
        })
    }

    #[test]
    fn exact_mapping_and_outcomes() {
        let e = map(&base()).unwrap();
        assert_eq!(e.time_unix_nanos, 1_678_301_572_114_000_000);
        assert_eq!(e.actor.id, "user1@company.io");
        assert_eq!(e.actor.ip.as_deref(), Some("1.2.3.4"));
        assert_eq!(e.actor.user_agent.as_deref(), Some("gcloud"));
        assert_eq!(e.action, "SetIamPolicy");
        assert_eq!(e.resource, "projects/_/buckets/payroll");
        assert_eq!(e.outcome, Outcome::Success);
        assert_eq!(e.idempotency_key.as_deref(), Some("gcp-audit:12345"));
        let with_status = |status: Value| {
            let mut v = base();
            v["protoPayload"]["status"] = status;
            map(&v).unwrap().outcome
        };
        assert_eq!(
            with_status(json!({"code": 7, "message": "PERMISSION_DENIED"})),
            Outcome::Denied
        );
        assert_eq!(with_status(json!({"code": 5})), Outcome::Failure);
        assert_eq!(with_status(Value::Null), Outcome::Unknown);
        let mut v = base();
        v["protoPayload"].as_object_mut().unwrap().remove("status");
        v["protoPayload"]["authorizationInfo"] = json!([{"granted": false}]);
        assert_eq!(map(&v).unwrap().outcome, Outcome::Denied);
        v["protoPayload"]
            .as_object_mut()
            .unwrap()
            .remove("resourceName");
        assert_eq!(map(&v).unwrap().resource, "gcp:gcs_bucket");
    }

    #[test]
    fn broken_records_name_the_field() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("timestamp");
        assert_eq!(
            map(&v).unwrap_err().to_string(),
            "no event time (expected timestamp)"
        );
        let mut v = base();
        v["protoPayload"]["methodName"] = json!(["x"]);
        assert_eq!(
            map(&v).unwrap_err().to_string(),
            "`protoPayload.methodName` must be a string, found an array"
        );
        let mut v = base();
        v.as_object_mut().unwrap().remove("protoPayload");
        assert!(map(&v)
            .unwrap_err()
            .to_string()
            .starts_with("no `protoPayload`"));
    }
}
