//! Test-only: raw records from the shared data sets as [`Event`]s.
//!
//! The real ingest module is written elsewhere; this is a small stand-in that
//! follows the same mapping conventions (source names, `action`, `resource`,
//! `outcome`, `details` = the original record) so that rule and detector
//! tests run on real records. It is deliberately forgiving: a field it cannot
//! find gets a placeholder, never a panic.

use crate::ledger::event::{Actor, Event, Outcome};
use crate::limits::{DETAILS_BYTES_MAX, FIELD_BYTES_MAX};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::details::{array_at, str_at, value_at};

/// Time given to records without a readable one: 2023-11-14T22:13:20Z.
const DEFAULT_TIME_NS: i64 = 1_700_000_000_000_000_000;

/// A Panther test record's `log` as the event ingest would produce, by the
/// record's own format (the `log_type` column of `panther_gold.jsonl`).
pub fn panther_event(log_type: &str, log: &Value) -> Event {
    match log_type {
        "AWS.CloudTrail" => cloudtrail_event(log),
        "Amazon.EKS.Audit" => k8s_event(log),
        "GCP.AuditLog" => gcp_event(log),
        "Okta.SystemLog" => okta_event(log),
        "GitHub.Audit" => github_event(log),
        other => panic!("test helper does not map log type {other}"),
    }
}

pub fn cloudtrail_event(log: &Value) -> Event {
    let service = str_at(log, &["eventSource"])
        .unwrap_or("unknown")
        .trim_end_matches(".amazonaws.com");
    let name = str_at(log, &["eventName"]).unwrap_or("unknown");
    let params = value_at(log, &["requestParameters"]);
    let resource = array_at(log, &["resources"])
        .iter()
        .find_map(|r| str_at(r, &["ARN"]))
        .filter(|arn| !arn.is_empty())
        .map(str::to_string)
        .or_else(|| {
            let params = params?;
            let name = [
                "bucketName",
                "functionName",
                "userName",
                "roleName",
                "groupName",
                "policyArn",
                "secretId",
                "dBInstanceIdentifier",
                "instanceId",
                "name",
                "keyId",
                "trailName",
                "snapshotId",
            ]
            .iter()
            .find_map(|k| str_at(params, &[k]))?;
            let key = str_at(params, &["key"]).map_or(String::new(), |k| format!("/{k}"));
            Some(format!("aws:{service}/{name}{key}"))
        })
        .unwrap_or_else(|| format!("aws:{service}"));
    let identity = value_at(log, &["userIdentity"]);
    let actor_id = identity
        .and_then(|i| {
            ["arn", "userName", "principalId"]
                .iter()
                .find_map(|k| str_at(i, &[k]).filter(|s| !s.is_empty()))
        })
        .unwrap_or("unknown");
    let outcome = match str_at(log, &["errorCode"]) {
        Some(code) if code.contains("AccessDenied") || code.contains("Unauthorized") => {
            Outcome::Denied
        }
        Some(_) => Outcome::Failure,
        None if str_at(log, &["responseElements", name]) == Some("Failure") => Outcome::Failure,
        None => Outcome::Success,
    };
    build(
        "cloudtrail",
        format!("{service}:{name}"),
        resource,
        Actor {
            id: actor_id.to_string(),
            kind: identity.and_then(|i| str_at(i, &["type"])).map(clean),
            ip: str_at(log, &["sourceIPAddress"]).map(clean),
            user_agent: str_at(log, &["userAgent"]).map(clean),
        },
        outcome,
        parse_time(value_at(log, &["eventTime"])),
        log,
    )
}

pub fn k8s_event(log: &Value) -> Event {
    let verb = str_at(log, &["verb"]).unwrap_or("request");
    let resource = match value_at(log, &["objectRef"]) {
        Some(object) => {
            let mut r = String::from("k8s:");
            if let Some(ns) = str_at(object, &["namespace"]).filter(|s| !s.is_empty()) {
                r.push_str(ns);
                r.push('/');
            }
            r.push_str(str_at(object, &["resource"]).unwrap_or(""));
            for part in ["name", "subresource"] {
                if let Some(v) = str_at(object, &[part]).filter(|s| !s.is_empty()) {
                    r.push('/');
                    r.push_str(v);
                }
            }
            r
        }
        None => format!("k8s:{}", str_at(log, &["requestURI"]).unwrap_or("")),
    };
    let outcome = match value_at(log, &["responseStatus", "code"]).and_then(Value::as_i64) {
        Some(403) => Outcome::Denied,
        Some(code) if code >= 400 => Outcome::Failure,
        Some(_) => Outcome::Success,
        None => Outcome::Unknown,
    };
    let time = ["requestReceivedTimestamp", "stageTimestamp", "timestamp"]
        .iter()
        .find_map(|k| value_at(log, &[k]));
    build(
        "k8s-audit",
        format!("k8s.{verb}"),
        resource,
        Actor {
            id: str_at(log, &["user", "username"])
                .unwrap_or("unknown")
                .to_string(),
            kind: None,
            ip: array_at(log, &["sourceIPs"])
                .first()
                .and_then(Value::as_str)
                .map(clean),
            user_agent: str_at(log, &["userAgent"]).map(clean),
        },
        outcome,
        parse_time(time),
        log,
    )
}

pub fn gcp_event(log: &Value) -> Event {
    let payload = value_at(log, &["protoPayload"]).unwrap_or(&Value::Null);
    let action = str_at(payload, &["methodName"]).unwrap_or("unknown");
    let resource = str_at(payload, &["resourceName"])
        .or_else(|| {
            array_at(payload, &["authorizationInfo"])
                .iter()
                .find_map(|a| str_at(a, &["resource"]))
        })
        .or_else(|| str_at(log, &["resource", "type"]))
        .unwrap_or("gcp");
    let auth = value_at(payload, &["authenticationInfo"]).unwrap_or(&Value::Null);
    let actor_id = ["principalEmail", "principalSubject", "authoritySelector"]
        .iter()
        .find_map(|k| str_at(auth, &[k]))
        .unwrap_or("unknown");
    let denied_by_authz = array_at(payload, &["authorizationInfo"])
        .iter()
        .any(|a| value_at(a, &["granted"]) == Some(&Value::Bool(false)));
    let outcome = match value_at(payload, &["status"]) {
        Some(status) => match value_at(status, &["code"]).and_then(Value::as_i64) {
            Some(7) => Outcome::Denied,
            Some(0) | None => Outcome::Success,
            Some(_) => Outcome::Failure,
        },
        None if denied_by_authz => Outcome::Denied,
        None => Outcome::Unknown,
    };
    let meta = value_at(payload, &["requestMetadata"]).unwrap_or(&Value::Null);
    build(
        "gcp-audit",
        action.to_string(),
        resource.to_string(),
        Actor {
            id: actor_id.to_string(),
            kind: None,
            ip: str_at(meta, &["callerIp"]).map(clean),
            user_agent: str_at(meta, &["callerSuppliedUserAgent"]).map(clean),
        },
        outcome,
        parse_time(value_at(log, &["timestamp"])),
        log,
    )
}

pub fn okta_event(log: &Value) -> Event {
    let target = array_at(log, &["target"]).first();
    let resource = target
        .and_then(|t| str_at(t, &["alternateId"]).or_else(|| str_at(t, &["displayName"])))
        .unwrap_or("okta");
    let outcome = match str_at(log, &["outcome", "result"]) {
        Some("SUCCESS") | Some("ALLOW") => Outcome::Success,
        Some("FAILURE") => Outcome::Failure,
        Some("DENY") => Outcome::Denied,
        _ => Outcome::Unknown,
    };
    build(
        "okta",
        str_at(log, &["eventType"]).unwrap_or("unknown").to_string(),
        resource.to_string(),
        Actor {
            id: str_at(log, &["actor", "alternateId"])
                .or_else(|| str_at(log, &["actor", "id"]))
                .unwrap_or("unknown")
                .to_string(),
            kind: str_at(log, &["actor", "type"]).map(clean),
            ip: str_at(log, &["client", "ipAddress"]).map(clean),
            user_agent: str_at(log, &["client", "userAgent", "rawUserAgent"]).map(clean),
        },
        outcome,
        parse_time(value_at(log, &["published"])),
        log,
    )
}

pub fn github_event(log: &Value) -> Event {
    let resource = ["repo", "org", "user", "business"]
        .iter()
        .find_map(|k| str_at(log, &[k]).filter(|s| !s.is_empty()))
        .unwrap_or("github");
    let time = ["created_at", "@timestamp"]
        .iter()
        .find_map(|k| value_at(log, &[k]));
    build(
        "github-audit",
        str_at(log, &["action"]).unwrap_or("unknown").to_string(),
        resource.to_string(),
        Actor {
            id: str_at(log, &["actor"])
                .filter(|s| !s.is_empty())
                .unwrap_or("unknown")
                .to_string(),
            kind: None,
            ip: str_at(log, &["actor_ip"]).map(clean),
            user_agent: str_at(log, &["user_agent"]).map(clean),
        },
        Outcome::Unknown,
        parse_time(time),
        log,
    )
}

/// One raw auditd record line (`type=USER_LOGIN msg=audit(…): k=v … msg='k=v …'`),
/// with `details` holding its key=value pairs (the inner `msg='…'` flattened).
pub fn auditd_event(line: &str) -> Event {
    let mut fields = Map::new();
    let (head, body) = line.split_once("): ").unwrap_or((line, ""));
    let time_ns = head
        .split_once("audit(")
        .and_then(|(_, ts)| ts.split(':').next())
        .and_then(|ts| ts.parse::<f64>().ok())
        .map_or(DEFAULT_TIME_NS, |s| (s * 1e9) as i64);
    let kind = head
        .strip_prefix("type=")
        .and_then(|h| h.split_whitespace().next())
        .unwrap_or("UNKNOWN");
    fields.insert("type".into(), Value::String(kind.into()));
    let flattened = body.replace("msg='", "").replace('\'', "");
    for pair in flattened.split_whitespace() {
        if let Some((k, v)) = pair.split_once('=') {
            fields.insert(k.into(), Value::String(v.trim_matches('"').into()));
        }
    }
    let get = |k: &str| fields.get(k).and_then(Value::as_str).map(str::to_string);
    let outcome = match get("res").or_else(|| get("success")).as_deref() {
        Some("failed") | Some("no") => Outcome::Failure,
        Some("success") | Some("yes") => Outcome::Success,
        _ => Outcome::Unknown,
    };
    let action = match get("key").filter(|k| k != "(null)") {
        Some(key) => format!("{kind}:{key}"),
        None => kind.to_string(),
    };
    let actor = get("auid")
        .filter(|a| a != "4294967295")
        .or_else(|| get("acct"))
        .or_else(|| get("uid"))
        .unwrap_or_else(|| "unknown".into());
    let resource = get("acct")
        .or_else(|| get("exe"))
        .unwrap_or_else(|| "host".into());
    build(
        "auditd",
        action,
        resource,
        Actor {
            id: actor,
            kind: None,
            ip: get("addr").filter(|a| a != "?"),
            user_agent: None,
        },
        outcome,
        time_ns,
        &Value::Object(fields),
    )
}

fn build(
    source: &str,
    action: String,
    resource: String,
    actor: Actor,
    outcome: Outcome,
    time_unix_nanos: i64,
    log: &Value,
) -> Event {
    Event {
        time_unix_nanos,
        actor: Actor {
            id: clean(&actor.id),
            ..actor
        },
        action: clean(&action),
        resource: clean(&resource),
        outcome,
        source: source.to_string(),
        details: trimmed(log),
        idempotency_key: None,
    }
}

/// A field as ingest would store it: no control characters, at most
/// [`FIELD_BYTES_MAX`] bytes, never empty.
fn clean(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).collect();
    while out.len() > FIELD_BYTES_MAX {
        out.pop();
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

/// The record as `details`, dropping its largest top-level fields until it
/// fits, as the convention says.
fn trimmed(log: &Value) -> Map<String, Value> {
    let mut map = match log {
        Value::Object(m) => m.clone(),
        other => Map::from_iter([("record".to_string(), other.clone())]),
    };
    let mut dropped = Vec::new();
    while serde_json::to_string(&map).map_or(0, |s| s.len()) > DETAILS_BYTES_MAX - 256 {
        let Some(largest) = map
            .iter()
            .max_by_key(|(_, v)| serde_json::to_string(v).map_or(0, |s| s.len()))
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        map.remove(&largest);
        dropped.push(Value::String(largest));
    }
    if !dropped.is_empty() {
        map.insert("_ironlog_dropped".into(), Value::Array(dropped));
    }
    map
}

fn parse_time(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::Number(n)) => n.as_i64().map_or(DEFAULT_TIME_NS, |ms| {
            // GitHub gives milliseconds.
            ms.saturating_mul(1_000_000)
        }),
        Some(Value::String(s)) => parse_time_text(s).unwrap_or(DEFAULT_TIME_NS),
        _ => DEFAULT_TIME_NS,
    }
}

fn parse_time_text(s: &str) -> Option<i64> {
    let mut text = s.trim().replacen(' ', "T", 1);
    let tail = text.get(text.len().saturating_sub(6)..).unwrap_or("");
    let has_zone = text.ends_with('Z') || tail.contains(['+', '-']);
    if !has_zone {
        text.push('Z');
    }
    let t = OffsetDateTime::parse(&text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos()).ok()
}

#[test]
fn times_in_panther_formats_parse() {
    assert_eq!(
        parse_time_text("2019-01-01T00:00:00Z"),
        Some(1_546_300_800_000_000_000)
    );
    assert_eq!(
        parse_time_text("2019-01-01 00:00:00.500000000"),
        Some(1_546_300_800_500_000_000)
    );
    assert_eq!(parse_time_text("not a time"), None);
}
