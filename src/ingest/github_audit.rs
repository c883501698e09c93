//! GitHub organisation and enterprise audit log events (the REST API's and
//! audit-log streaming's shape).
//!
//! | event | from |
//! |---|---|
//! | time | `@timestamp`, else `created_at` (epoch milliseconds, or a time string) |
//! | actor.id / ip / user_agent | `actor` / `actor_ip` / `user_agent` |
//! | action | `action` (e.g. `repo.destroy`) |
//! | resource | the most specific target present: `repo`, `repository`, `team`, `user`, `org`, `business` |
//! | outcome | success: GitHub's audit log records only actions that were carried out |
//! | idempotency key | `github-audit:{_document_id}` |

use serde_json::Value;

use super::record::{self, object, required_str, str_at, Draft};
use super::{time, Format, RecordError};
use crate::ledger::event::{Event, Outcome};

/// Target fields, most specific first.
const TARGETS: &[&str] = &["repo", "repository", "team", "user", "org", "business"];

pub(super) fn map(value: &Value) -> Result<Event, RecordError> {
    let record = object(value)?;
    let time_unix_nanos = time::first_time(
        record,
        &["@timestamp", "created_at"],
        true,
        "@timestamp or created_at",
    )?;
    let action = required_str(record, "action", "it names what was done")?;
    let draft = Draft {
        time_unix_nanos,
        actor_id: str_at(value, &["actor"]),
        actor_kind: None,
        actor_ip: str_at(value, &["actor_ip"]),
        user_agent: str_at(value, &["user_agent"]),
        action: action.to_string(),
        resource: TARGETS
            .iter()
            .find_map(|t| str_at(value, &[t]))
            .unwrap_or_default()
            .to_string(),
        outcome: Outcome::Success,
        native_id: str_at(value, &["_document_id"]).map(str::to_string),
    };
    record::finish(Format::GithubAudit, draft, record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{read_events, Format};
    use serde_json::json;

    const PANTHER: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ingest/github_audit_panther.jsonl"
    ));

    #[test]
    fn panther_samples_map() {
        let events: Vec<Event> = read_events(Format::GithubAudit, PANTHER.as_bytes())
            .map(|r| r.expect("every sample record maps").1)
            .collect();
        assert_eq!(events.len(), PANTHER.lines().count());
        for e in &events {
            assert_eq!(e.action, e.details["action"]);
            assert!(e
                .idempotency_key
                .as_deref()
                .unwrap()
                .starts_with("github-audit:"));
        }
    }

    #[test]
    fn exact_mapping() {
        let e = map(&json!({
            "actor": "cat", "action": "protected_branch.destroy",
            "created_at": 1621305118553u64, "org": "my-org", "repo": "my-org/my-repo",
            "_document_id": "doc-1", "actor_ip": "192.0.2.1", "user_agent": "git/2.40"
        }))
        .unwrap();
        assert_eq!(e.time_unix_nanos, 1_621_305_118_553_000_000);
        assert_eq!(e.actor.id, "cat");
        assert_eq!(e.actor.ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(e.action, "protected_branch.destroy");
        assert_eq!(e.resource, "my-org/my-repo");
        assert_eq!(e.outcome, Outcome::Success);
        assert_eq!(e.idempotency_key.as_deref(), Some("github-audit:doc-1"));
        let e = map(&json!({
            "actor": "admin", "action": "org.add_member", "@timestamp": 1623971719091u64,
            "created_at": "ignored", "org": "my-org", "user": "new-person"
        }))
        .unwrap();
        assert_eq!(
            e.time_unix_nanos, 1_623_971_719_091_000_000,
            "@timestamp wins"
        );
        assert_eq!(e.resource, "new-person");
        assert!(e
            .idempotency_key
            .as_deref()
            .unwrap()
            .starts_with("github-audit:sha256:"));
    }

    #[test]
    fn broken_records_name_the_field() {
        let e = map(&json!({"action": "repo.create"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no event time (expected @timestamp or created_at)"
        );
        let e = map(&json!({"action": "repo.create", "created_at": true})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`created_at` must be a time string or epoch milliseconds, found a boolean"
        );
        let e = map(&json!({"created_at": 1})).unwrap_err();
        assert_eq!(e.to_string(), "no `action` (it names what was done)");
    }
}
