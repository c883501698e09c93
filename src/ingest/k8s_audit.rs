//! Kubernetes audit events (`audit.k8s.io/v1` and `v1beta1` `Event`).
//!
//! | event | from |
//! |---|---|
//! | time | `requestReceivedTimestamp`, else `stageTimestamp`, else v1beta1's `timestamp` |
//! | actor.id / ip / user_agent | `user.username` / `sourceIPs[0]` / `userAgent` |
//! | action | `k8s.{verb}` |
//! | resource | `k8s:` + (`{namespace}/`) + resource + (`/{name}`) + (`/{subresource}`) from `objectRef`; `k8s:{path}` of `requestURI` for non-resource requests |
//! | outcome | authorizer decision `forbid` or HTTP 403: denied; other HTTP status >= 400: failure; < 400: success; no response yet (stage `RequestReceived`): unknown |
//! | idempotency key | `k8s-audit:{auditID}:{stage}` (one request is logged once per stage) |

use serde_json::{Map, Value};

use super::record::{self, object, required_str, str_at, Draft};
use super::{time, Format, RecordError};
use crate::ledger::event::{Event, Outcome};

const HTTP_FORBIDDEN: u64 = 403;
const HTTP_ERRORS_FROM: u64 = 400;

pub(super) fn map(value: &Value) -> Result<Event, RecordError> {
    let record = object(value)?;
    let time_unix_nanos = time::first_time(
        record,
        &["requestReceivedTimestamp", "stageTimestamp", "timestamp"],
        false,
        "requestReceivedTimestamp",
    )?;
    let verb = required_str(record, "verb", "the verb is the action")?;
    let native_id = str_at(value, &["auditID"]).map(|id| match str_at(value, &["stage"]) {
        Some(stage) => format!("{id}:{stage}"),
        None => id.to_string(),
    });
    let draft = Draft {
        time_unix_nanos,
        actor_id: str_at(value, &["user", "username"]),
        actor_kind: None,
        actor_ip: value
            .get("sourceIPs")
            .and_then(|ips| ips.get(0))
            .and_then(Value::as_str),
        user_agent: str_at(value, &["userAgent"]),
        action: format!("k8s.{verb}"),
        resource: resource(record),
        outcome: outcome(record),
        native_id,
    };
    record::finish(Format::K8sAudit, draft, record)
}

fn resource(record: &Map<String, Value>) -> String {
    let object_ref = record.get("objectRef").unwrap_or(&Value::Null);
    if let Some(resource) = str_at(object_ref, &["resource"]) {
        let mut out = String::from("k8s:");
        if let Some(namespace) = str_at(object_ref, &["namespace"]) {
            out.push_str(namespace);
            out.push('/');
        }
        out.push_str(resource);
        for part in ["name", "subresource"] {
            if let Some(text) = str_at(object_ref, &[part]) {
                out.push('/');
                out.push_str(text);
            }
        }
        return out;
    }
    match record.get("requestURI").and_then(Value::as_str) {
        Some(uri) => {
            let path = uri.split('?').next().unwrap_or(uri);
            format!("k8s:{path}")
        }
        None => "k8s:unknown".to_string(),
    }
}

fn outcome(record: &Map<String, Value>) -> Outcome {
    let decision = record
        .get("annotations")
        .and_then(|a| a.get("authorization.k8s.io/decision"))
        .and_then(Value::as_str);
    if decision == Some("forbid") {
        return Outcome::Denied;
    }
    let status = record.get("responseStatus").unwrap_or(&Value::Null);
    match status.get("code").and_then(Value::as_u64) {
        Some(HTTP_FORBIDDEN) => Outcome::Denied,
        Some(code) if code >= HTTP_ERRORS_FROM => Outcome::Failure,
        Some(_) => Outcome::Success,
        None => match status.get("status").and_then(Value::as_str) {
            Some("Failure") => Outcome::Failure,
            Some("Success") => Outcome::Success,
            _ => Outcome::Unknown,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{read_events, Format};
    use serde_json::json;

    const FALCO: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ingest/k8s_falco_traces.jsonl"
    ));
    const EKS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ingest/k8s_eks_panther.jsonl"
    ));

    fn events(text: &str) -> Vec<Event> {
        read_events(Format::K8sAudit, text.as_bytes())
            .map(|r| r.expect("every sample record maps").1)
            .collect()
    }

    #[test]
    fn falco_exec_into_a_pod() {
        let events = events(FALCO);
        assert_eq!(
            events.len(),
            FALCO.lines().filter(|l| !l.trim().is_empty()).count()
        );
        let exec = events
            .iter()
            .find(|e| e.resource.ends_with("/exec"))
            .expect("the exec trace");
        assert_eq!(exec.action, "k8s.create");
        assert_eq!(
            exec.resource,
            "k8s:default/pods/nginx-deployment-7998647bdf-phvq7/exec"
        );
        assert_eq!(exec.actor.id, "minikube-user");
        assert_eq!(exec.actor.ip.as_deref(), Some("192.168.99.1"));
        assert_eq!(
            exec.outcome,
            Outcome::Success,
            "HTTP 101 switching protocols"
        );
        assert_eq!(exec.time_unix_nanos, 1_540_561_114_867_116_000);
        assert_eq!(
            exec.idempotency_key.as_deref(),
            Some("k8s-audit:ca1ed9f4-7bf4-4c85-81a8-1b11253d1ba6:ResponseStarted")
        );
        assert_eq!(exec.details["objectRef"]["subresource"], "exec");
        let namespace = events
            .iter()
            .find(|e| e.resource == "k8s:namespaces/foo")
            .expect("a cluster-scoped namespace create");
        assert_eq!(namespace.action, "k8s.create");
    }

    #[test]
    fn eks_events_with_pipeline_times() {
        let events = events(EKS);
        assert!(!events.is_empty());
        for e in &events {
            assert!(e.action.starts_with("k8s."), "{}", e.action);
            assert!(e.resource.starts_with("k8s:"), "{}", e.resource);
        }
    }

    #[test]
    fn outcomes() {
        let base = json!({
            "verb": "get", "stage": "ResponseComplete", "auditID": "a",
            "requestReceivedTimestamp": "2024-01-01T00:00:00Z",
            "user": {"username": "system:anonymous"},
            "objectRef": {"resource": "secrets", "namespace": "kube-system", "name": "token"},
        });
        let with = |status: Value, decision: &str| {
            let mut v = base.clone();
            v["responseStatus"] = status;
            v["annotations"] = json!({"authorization.k8s.io/decision": decision});
            map(&v).unwrap().outcome
        };
        assert_eq!(with(json!({"code": 403}), "allow"), Outcome::Denied);
        assert_eq!(with(json!({"code": 200}), "forbid"), Outcome::Denied);
        assert_eq!(with(json!({"code": 401}), "allow"), Outcome::Failure);
        assert_eq!(with(json!({"code": 201}), "allow"), Outcome::Success);
        assert_eq!(with(Value::Null, "allow"), Outcome::Unknown);
        let e = map(&base).unwrap();
        assert_eq!(e.resource, "k8s:kube-system/secrets/token");
        let mut non_resource = base.clone();
        non_resource.as_object_mut().unwrap().remove("objectRef");
        non_resource["requestURI"] = json!("/healthz?verbose=1");
        assert_eq!(map(&non_resource).unwrap().resource, "k8s:/healthz");
    }

    #[test]
    fn broken_records_name_the_field() {
        let e = map(&json!({"verb": "get"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no event time (expected requestReceivedTimestamp)"
        );
        let e = map(&json!({"kind": 0})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no event time (expected requestReceivedTimestamp)"
        );
        let e = map(&json!({"stageTimestamp": "2024-01-01T00:00:00Z"})).unwrap_err();
        assert_eq!(e.to_string(), "no `verb` (the verb is the action)");
    }
}
