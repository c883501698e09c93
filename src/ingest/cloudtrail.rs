//! AWS CloudTrail records.
//!
//! | event | from |
//! |---|---|
//! | time | `eventTime` (or a log shipper's `@timestamp`) |
//! | actor.id | `userIdentity.arn`, else `invokedBy` for AWS services, `principalId`, `userName`, `accountId` |
//! | actor.kind / ip / user_agent | `userIdentity.type` / `sourceIPAddress` (when an IP, not a service name) / `userAgent` |
//! | action | `{service}:{eventName}`, service = `eventSource` less `.amazonaws.com` |
//! | resource | the first ARN in `resources`, else from `requestParameters` (S3 object ARN, a known name or ARN field), else `aws:{service}` |
//! | outcome | `errorCode` naming an authorization refusal: denied; other `errorCode`, `errorMessage` or a failed console login: failure; else success (CloudTrail records an error whenever a call fails) |
//! | idempotency key | `cloudtrail:{eventID}` |

use serde_json::{Map, Value};

use super::record::{self, object, required_str, str_at, Draft};
use super::{time, Format, RecordError};
use crate::ledger::event::{Event, Outcome};

/// `requestParameters` fields naming the target, most specific first. An
/// ARN value is used as is; a name becomes `aws:{service}/{name}`.
const TARGET_PARAMETERS: &[&str] = &[
    "userName",
    "roleName",
    "groupName",
    "policyArn",
    "policyName",
    "functionName",
    "instanceId",
    "dBInstanceIdentifier",
    "dbInstanceIdentifier",
    "clusterName",
    "secretId",
    "keyId",
    "trailName",
    "name",
    "detectorId",
    "repositoryName",
    "tableName",
    "stackName",
    "logGroupName",
    "topicArn",
    "queueUrl",
    "roleArn",
    "snapshotId",
    "volumeId",
    "imageId",
    "groupId",
    "vpcId",
    "accessKeyId",
];

pub(super) fn map(value: &Value) -> Result<Event, RecordError> {
    let record = object(value)?;
    let time_unix_nanos =
        time::first_time(record, &["eventTime", "@timestamp"], false, "eventTime")?;
    let event_name = required_str(record, "eventName", "the API call is the action")?;
    let event_source = required_str(record, "eventSource", "its service is part of the action")?;
    let service = event_source
        .strip_suffix(".amazonaws.com")
        .unwrap_or(event_source);
    let identity = record.get("userIdentity").unwrap_or(&Value::Null);
    let actor_id = str_at(identity, &["arn"])
        .or_else(|| str_at(identity, &["invokedBy"]))
        .or_else(|| str_at(identity, &["principalId"]))
        .or_else(|| str_at(identity, &["userName"]))
        .or_else(|| str_at(identity, &["accountId"]));
    let actor_ip = str_at(value, &["sourceIPAddress"])
        .filter(|ip| ip.trim().parse::<std::net::IpAddr>().is_ok());
    let draft = Draft {
        time_unix_nanos,
        actor_id,
        actor_kind: str_at(identity, &["type"]),
        actor_ip,
        user_agent: str_at(value, &["userAgent"]),
        action: format!("{service}:{event_name}"),
        resource: resource(record, service),
        outcome: outcome(record),
        native_id: str_at(value, &["eventID"]).map(str::to_string),
    };
    record::finish(Format::Cloudtrail, draft, record)
}

fn resource(record: &Map<String, Value>, service: &str) -> String {
    if let Some(resources) = record.get("resources").and_then(Value::as_array) {
        for field in ["ARN", "arn", "ARNPrefix"] {
            if let Some(arn) = resources.iter().find_map(|r| str_at(r, &[field])) {
                return arn.to_string();
            }
        }
    }
    let params = record.get("requestParameters").unwrap_or(&Value::Null);
    if let Some(bucket) = str_at(params, &["bucketName"]) {
        return match str_at(params, &["key"]) {
            Some(key) => format!("arn:aws:s3:::{bucket}/{key}"),
            None => format!("arn:aws:s3:::{bucket}"),
        };
    }
    let named = |v: &str| {
        if v.starts_with("arn:") {
            v.to_string()
        } else {
            format!("aws:{service}/{v}")
        }
    };
    if let Some(v) = TARGET_PARAMETERS.iter().find_map(|k| str_at(params, &[k])) {
        return named(v);
    }
    if let Some(id) = params
        .pointer("/instancesSet/items/0/instanceId")
        .and_then(Value::as_str)
    {
        return named(id);
    }
    // Any ARN among the parameters (in key order, so deterministically).
    if let Some(arn) = params.as_object().and_then(|p| {
        p.values()
            .filter_map(Value::as_str)
            .find(|v| v.starts_with("arn:"))
    }) {
        return arn.to_string();
    }
    format!("aws:{service}")
}

fn outcome(record: &Map<String, Value>) -> Outcome {
    if let Some(code) = record
        .get("errorCode")
        .and_then(Value::as_str)
        .filter(|c| !c.trim().is_empty())
    {
        let code = code.to_ascii_lowercase();
        let refused = ["accessdenied", "unauthorized", "forbidden", "notauthorized"]
            .iter()
            .any(|word| code.contains(word));
        return if refused {
            Outcome::Denied
        } else {
            Outcome::Failure
        };
    }
    // Sign-in events report their result under their own name
    // (`ConsoleLogin`, `PasswordUpdated`, `SwitchRole`, `CheckMfa`).
    let name = record
        .get("eventName")
        .and_then(Value::as_str)
        .unwrap_or("");
    match record
        .get("responseElements")
        .and_then(|r| r.get(name))
        .and_then(Value::as_str)
    {
        Some("Failure") => return Outcome::Failure,
        Some("Success") => return Outcome::Success,
        _ => {}
    }
    if record
        .get("errorMessage")
        .and_then(Value::as_str)
        .is_some_and(|m| !m.trim().is_empty())
    {
        return Outcome::Failure;
    }
    Outcome::Success
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{read_events, Format};
    use serde_json::json;

    const OTRF: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ingest/cloudtrail_otrf_ec2_proxy_s3_exfiltration.jsonl"
    ));
    const DOCUMENT: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ingest/cloudtrail_records_document.json"
    ));

    fn events(text: &str) -> Vec<Event> {
        read_events(Format::Cloudtrail, text.as_bytes())
            .map(|r| r.expect("every sample record maps").1)
            .collect()
    }

    #[test]
    fn otrf_sample_maps_every_record() {
        let events = events(OTRF);
        assert_eq!(events.len(), OTRF.lines().count());
        let first = &events[0];
        assert_eq!(first.time_unix_nanos, 1_600_044_263_000_000_000);
        assert_eq!(first.actor.id, "arn:aws:iam::123456789123:user/pedro");
        assert_eq!(first.actor.kind.as_deref(), Some("IAMUser"));
        assert_eq!(first.actor.ip.as_deref(), Some("1.2.3.4"));
        assert_eq!(
            first.actor.user_agent.as_deref(),
            Some("console.ec2.amazonaws.com")
        );
        assert_eq!(first.action, "ec2:DescribeInstanceTypes");
        assert_eq!(first.resource, "aws:ec2");
        assert_eq!(first.outcome, Outcome::Success);
        assert_eq!(first.source, "cloudtrail");
        assert_eq!(
            first.idempotency_key.as_deref(),
            Some("cloudtrail:fd4f1042-c7f6-4107-a6ee-d841d92596e7")
        );
        assert_eq!(first.details["eventSource"], "ec2.amazonaws.com");
        // The exfiltration itself: an S3 object read by the stolen role.
        let get = events
            .iter()
            .find(|e| e.action == "s3:GetObject")
            .expect("a GetObject");
        assert_eq!(
            get.resource,
            "arn:aws:s3:::mordors3stack-s3bucket-llp2yingx64a/ring.txt"
        );
        assert!(get.actor.id.contains(":assumed-role/"), "{}", get.actor.id);
        assert_eq!(get.actor.kind.as_deref(), Some("AssumedRole"));
    }

    #[test]
    fn records_document_streams_its_elements() {
        let events = events(DOCUMENT);
        assert!(events.len() >= 3, "{}", events.len());
        for e in &events {
            assert!(e
                .idempotency_key
                .as_deref()
                .unwrap()
                .starts_with("cloudtrail:"));
        }
    }

    fn base() -> Value {
        json!({
            "eventTime": "2019-01-01T00:00:00Z",
            "eventSource": "iam.amazonaws.com",
            "eventName": "AttachUserPolicy",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice"},
            "sourceIPAddress": "203.0.113.50",
            "requestParameters": {"userName": "bob", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
            "eventID": "e-1"
        })
    }

    #[test]
    fn target_outcome_and_service_identities() {
        let e = map(&base()).unwrap();
        assert_eq!(e.action, "iam:AttachUserPolicy");
        assert_eq!(e.resource, "aws:iam/bob");
        let mut denied = base();
        denied["errorCode"] = json!("AccessDenied");
        assert_eq!(map(&denied).unwrap().outcome, Outcome::Denied);
        denied["errorCode"] = json!("Client.UnauthorizedOperation");
        assert_eq!(map(&denied).unwrap().outcome, Outcome::Denied);
        let mut failed = base();
        failed["errorCode"] = json!("NoSuchEntity");
        assert_eq!(map(&failed).unwrap().outcome, Outcome::Failure);
        let mut login = base();
        login["eventSource"] = json!("signin.amazonaws.com");
        login["eventName"] = json!("ConsoleLogin");
        login["requestParameters"] = Value::Null;
        login["responseElements"] = json!({"ConsoleLogin": "Failure"});
        let e = map(&login).unwrap();
        assert_eq!(
            (e.action.as_str(), e.resource.as_str(), e.outcome),
            ("signin:ConsoleLogin", "aws:signin", Outcome::Failure)
        );
        let mut password = login.clone();
        password["eventName"] = json!("PasswordUpdated");
        password["responseElements"] = json!({"PasswordUpdated": "Failure"});
        assert_eq!(map(&password).unwrap().outcome, Outcome::Failure);
        password["responseElements"] = json!({"PasswordUpdated": "Success"});
        assert_eq!(map(&password).unwrap().outcome, Outcome::Success);
        let mut service = base();
        service["userIdentity"] = json!({"type": "AWSService", "invokedBy": "ec2.amazonaws.com"});
        service["sourceIPAddress"] = json!("ec2.amazonaws.com");
        let e = map(&service).unwrap();
        assert_eq!(e.actor.id, "ec2.amazonaws.com");
        assert_eq!(e.actor.ip, None, "a service name is not an IP");
    }

    #[test]
    fn broken_records_name_the_field() {
        let mut no_time = base();
        no_time.as_object_mut().unwrap().remove("eventTime");
        assert_eq!(
            map(&no_time).unwrap_err().to_string(),
            "no event time (expected eventTime)"
        );
        let mut bad_time = base();
        bad_time["eventTime"] = json!("yesterday");
        assert!(map(&bad_time)
            .unwrap_err()
            .to_string()
            .starts_with("`eventTime`: \"yesterday\" is not a time"));
        let mut wrong = base();
        wrong["eventName"] = json!(42);
        assert_eq!(
            map(&wrong).unwrap_err().to_string(),
            "`eventName` must be a string, found a number"
        );
        assert_eq!(
            map(&json!([1])).unwrap_err().to_string(),
            "expected a JSON object, found an array"
        );
    }
}
