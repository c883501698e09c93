//! Okta System Log events.
//!
//! | event | from |
//! |---|---|
//! | time | `published` |
//! | actor.id / kind | `actor.alternateId` (else `displayName`, `id`) / `actor.type` |
//! | actor.ip / user_agent | `client.ipAddress` / `client.userAgent.rawUserAgent` |
//! | action | `eventType` |
//! | resource | the first `target`'s `alternateId` (else `displayName`, `id`); `okta` when there is none |
//! | outcome | `outcome.result`: SUCCESS or ALLOW: success; DENY: denied; FAILURE: failure; CHALLENGE, SKIPPED, UNKNOWN or none: unknown |
//! | idempotency key | `okta:{uuid}` |

use serde_json::Value;

use super::record::{self, object, required_str, str_at, Draft};
use super::{time, Format, RecordError};
use crate::ledger::event::{Event, Outcome};

pub(super) fn map(value: &Value) -> Result<Event, RecordError> {
    let record = object(value)?;
    let time_unix_nanos = time::first_time(record, &["published"], false, "published")?;
    let event_type = required_str(record, "eventType", "the event type is the action")?;
    let actor = value.get("actor").unwrap_or(&Value::Null);
    let target = value
        .get("target")
        .and_then(|t| t.get(0))
        .unwrap_or(&Value::Null);
    let resource = str_at(target, &["alternateId"])
        .or_else(|| str_at(target, &["displayName"]))
        .or_else(|| str_at(target, &["id"]))
        .unwrap_or_default();
    let draft = Draft {
        time_unix_nanos,
        actor_id: str_at(actor, &["alternateId"])
            .or_else(|| str_at(actor, &["displayName"]))
            .or_else(|| str_at(actor, &["id"])),
        actor_kind: str_at(actor, &["type"]),
        actor_ip: str_at(value, &["client", "ipAddress"]),
        user_agent: str_at(value, &["client", "userAgent", "rawUserAgent"]),
        action: event_type.to_string(),
        resource: resource.to_string(),
        outcome: match str_at(value, &["outcome", "result"]) {
            Some("SUCCESS" | "ALLOW") => Outcome::Success,
            Some("DENY") => Outcome::Denied,
            Some("FAILURE") => Outcome::Failure,
            _ => Outcome::Unknown,
        },
        native_id: str_at(value, &["uuid"]).map(str::to_string),
    };
    record::finish(Format::Okta, draft, record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{read_events, Format};
    use serde_json::json;

    const PANTHER: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ingest/okta_panther.jsonl"
    ));

    #[test]
    fn panther_samples_map() {
        let events: Vec<Event> = read_events(Format::Okta, PANTHER.as_bytes())
            .map(|r| r.expect("every sample record maps").1)
            .collect();
        assert_eq!(events.len(), PANTHER.lines().count());
        for e in &events {
            assert_eq!(e.source, "okta");
            assert!(e.idempotency_key.as_deref().unwrap().starts_with("okta:"));
            assert_eq!(e.action, e.details["eventType"]);
        }
        assert!(events.iter().any(|e| e.outcome == Outcome::Failure));
        assert!(events.iter().any(|e| e.outcome == Outcome::Success));
    }

    #[test]
    fn exact_mapping() {
        let record = json!({
            "uuid": "u-1", "published": "2022-03-22 14:21:53.225",
            "eventType": "user.session.start",
            "actor": {"alternateId": "homer@springfield.gov", "displayName": "Homer", "type": "User"},
            "client": {"ipAddress": "1.1.1.1", "userAgent": {"rawUserAgent": "Mozilla/5.0"}},
            "outcome": {"result": "DENY", "reason": "policy"},
            "target": [{"alternateId": "Salesforce", "type": "AppInstance"}]
        });
        let e = map(&record).unwrap();
        assert_eq!(e.time_unix_nanos, 1_647_958_913_225_000_000);
        assert_eq!(e.actor.id, "homer@springfield.gov");
        assert_eq!(e.actor.kind.as_deref(), Some("User"));
        assert_eq!(e.actor.ip.as_deref(), Some("1.1.1.1"));
        assert_eq!(e.actor.user_agent.as_deref(), Some("Mozilla/5.0"));
        assert_eq!(e.action, "user.session.start");
        assert_eq!(e.resource, "Salesforce");
        assert_eq!(e.outcome, Outcome::Denied);
        assert_eq!(e.idempotency_key.as_deref(), Some("okta:u-1"));
        let mut no_target = record.clone();
        no_target.as_object_mut().unwrap().remove("target");
        no_target["outcome"] = json!({"result": "CHALLENGE"});
        let e = map(&no_target).unwrap();
        assert_eq!((e.resource.as_str(), e.outcome), ("okta", Outcome::Unknown));
    }

    #[test]
    fn broken_records_name_the_field() {
        let e = map(&json!({"eventType": "x", "published": "redacted"})).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("`published`: \"redacted\" is not a time"),
            "{e}"
        );
        let e = map(&json!({"eventType": "x"})).unwrap_err();
        assert_eq!(e.to_string(), "no event time (expected published)");
    }
}
