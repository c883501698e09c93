//! What holds for every format: errors name the record, hostile input
//! neither panics nor grows memory past a record, and details always fit.

use rand::{Rng, RngCore, SeedableRng};
use serde_json::{json, Value};

use super::*;
use crate::ledger::event::canonical_details;
use crate::limits::{DETAILS_BYTES_MAX, FIELD_BYTES_MAX};

const ALL: [Format; 7] = [
    Format::Cloudtrail,
    Format::K8sAudit,
    Format::Auditd,
    Format::Okta,
    Format::GcpAudit,
    Format::GithubAudit,
    Format::Jsonl,
];

const JSON_FORMATS: [Format; 6] = [
    Format::Cloudtrail,
    Format::K8sAudit,
    Format::Okta,
    Format::GcpAudit,
    Format::GithubAudit,
    Format::Jsonl,
];

/// A valid record of each JSON format, for mutating.
fn valid(format: Format) -> Value {
    match format {
        Format::Cloudtrail => json!({
            "eventTime": "2020-04-30T23:51:08Z", "eventSource": "s3.amazonaws.com",
            "eventName": "GetObject", "eventID": "e1",
            "userIdentity": {"arn": "arn:aws:iam::1:user/a"},
            "requestParameters": {"bucketName": "b", "key": "k"}
        }),
        Format::K8sAudit => json!({
            "requestReceivedTimestamp": "2018-10-26T13:38:34.867116Z", "verb": "get",
            "auditID": "a1", "stage": "ResponseComplete", "user": {"username": "u"},
            "objectRef": {"resource": "secrets", "namespace": "ns", "name": "s"},
            "responseStatus": {"code": 200}
        }),
        Format::Okta => json!({
            "published": "2022-03-22T14:21:53.225Z", "eventType": "user.session.start",
            "uuid": "u1", "actor": {"alternateId": "a@b.c"}
        }),
        Format::GcpAudit => json!({
            "timestamp": "2023-03-08T18:52:52.114Z", "insertId": "i1",
            "protoPayload": {"methodName": "storage.objects.get", "resourceName": "r"}
        }),
        Format::GithubAudit => json!({
            "@timestamp": 1623971719091u64, "action": "repo.destroy", "actor": "cat", "repo": "o/r"
        }),
        Format::Jsonl => json!({
            "time": "2024-05-01T12:00:00Z", "actor": "a", "action": "x", "resource": "r",
            "outcome": "success", "source": "s"
        }),
        Format::Auditd => json!({
            "SyslogMessage": "type=USER_LOGIN msg=audit(1493046015.752:42120): pid=1 uid=0 auid=4294967295 msg='op=login acct=\"root\" addr=46.160.144.250 res=failed'"
        }),
    }
}

/// The field carrying each format's event time.
fn time_field(format: Format) -> &'static str {
    match format {
        Format::Cloudtrail => "eventTime",
        Format::K8sAudit => "requestReceivedTimestamp",
        Format::Okta => "published",
        Format::GcpAudit => "timestamp",
        Format::GithubAudit => "@timestamp",
        Format::Jsonl => "time",
        Format::Auditd => "SyslogMessage",
    }
}

fn lines(records: &[Value]) -> String {
    records.iter().map(|r| format!("{r}\n")).collect()
}

#[test]
fn every_format_maps_its_valid_record() {
    for format in ALL {
        let event =
            event_from_json(format, &valid(format)).unwrap_or_else(|e| panic!("{format}: {e}"));
        event.validate().unwrap();
        if format != Format::Jsonl {
            assert_eq!(event.source, format.name());
        }
        assert!(event.idempotency_key.is_some(), "{format}");
    }
}

#[test]
fn a_missing_time_is_an_error_naming_the_record() {
    for format in JSON_FORMATS {
        let mut broken = valid(format);
        broken.as_object_mut().unwrap().remove(time_field(format));
        let input = lines(&[valid(format), valid(format), broken, valid(format)]);
        let results: Vec<_> = read_events(format, input.as_bytes()).collect();
        assert_eq!(results.len(), 4, "{format}");
        let err = results[2].as_ref().expect_err("record 3 has no time");
        assert_eq!(err.record(), Some(3));
        let text = err.to_string();
        assert!(
            text.starts_with("record 3: no event time (expected "),
            "{format}: {text}"
        );
        assert!(results[3].is_ok(), "reading goes on after a bad record");
    }
}

#[test]
fn truncated_json_names_the_record() {
    for format in JSON_FORMATS {
        let whole = valid(format).to_string();
        let cut = &whole[..whole.len() / 2];
        let input = format!("{}\n{cut}", valid(format));
        let results: Vec<_> = read_events(format, input.as_bytes()).collect();
        assert!(results[0].is_ok(), "{format}");
        let err = results[1].as_ref().expect_err("record 2 is cut");
        assert!(err.to_string().starts_with("record 2: "), "{format}: {err}");
    }
    // In a Records document the element number is the record number, and
    // its line is shown.
    let doc = format!(
        "{{\"Records\": [\n{},\n{},\n{{\"eventTime\": 5}}\n]}}",
        valid(Format::Cloudtrail),
        valid(Format::Cloudtrail)
    );
    let results: Vec<_> = read_events(Format::Cloudtrail, doc.as_bytes()).collect();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[2].as_ref().unwrap_err().to_string(),
        "record 3 (line 4): `eventTime` must be a time string, found a number"
    );
}

#[test]
fn wrong_types_name_the_field() {
    let mut v = valid(Format::Okta);
    v["eventType"] = json!({"nested": true});
    assert_eq!(
        event_from_json(Format::Okta, &v).unwrap_err().to_string(),
        "`eventType` must be a string, found an object"
    );
    let mut v = valid(Format::K8sAudit);
    v["verb"] = json!(null);
    assert_eq!(
        event_from_json(Format::K8sAudit, &v)
            .unwrap_err()
            .to_string(),
        "no `verb` (the verb is the action)"
    );
    for format in ALL {
        for not_object in [json!(1), json!("x"), json!(null), json!([{}])] {
            let err = event_from_json(format, &not_object)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("expected a JSON object"), "{format}: {err}");
        }
    }
}

#[test]
fn huge_strings_are_cut_and_details_trimmed() {
    for format in JSON_FORMATS.into_iter().filter(|f| *f != Format::Jsonl) {
        let mut v = valid(format);
        let huge = "é".repeat(3 * DETAILS_BYTES_MAX);
        // Every string field at the top level and below gets the huge text,
        // except the time.
        fill_strings(&mut v, &huge, time_field(format));
        let event = event_from_json(format, &v).unwrap_or_else(|e| panic!("{format}: {e}"));
        assert!(canonical_details(&event.details).len() <= DETAILS_BYTES_MAX);
        assert!(event.details.contains_key("_ironlog_dropped"), "{format}");
        for field in [&event.actor.id, &event.action, &event.resource] {
            assert!(field.len() <= FIELD_BYTES_MAX, "{format}");
        }
        assert!(event.action.ends_with('…'), "{format}: {}", event.action);
    }
}

fn fill_strings(v: &mut Value, text: &str, except: &str) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k != except {
                    fill_strings(child, text, except);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|c| fill_strings(c, text, except)),
        Value::String(s) => *s = format!("{s}{text}"),
        _ => {}
    }
}

#[test]
fn deeply_nested_json_is_an_error_not_a_crash() {
    for format in JSON_FORMATS {
        for depth in [200, 5_000, 200_000] {
            let input = format!(
                "{}{}\n{}\n",
                "{\"a\":".repeat(depth),
                "}".repeat(depth),
                valid(format)
            );
            let results: Vec<_> = read_events(format, input.as_bytes()).collect();
            assert!(results[0].is_err(), "{format} depth {depth}");
            assert!(
                results.last().unwrap().is_ok(),
                "{format} depth {depth}: {results:?}"
            );
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x1_0ba5e);
    for round in 0..300 {
        let mut bytes = vec![0u8; rng.gen_range(0..4096)];
        rng.fill_bytes(&mut bytes);
        // Sprinkle JSON and auditd syntax so the scanners go deep.
        for _ in 0..rng.gen_range(0..64) {
            let at = rng.gen_range(0..=bytes.len());
            let piece: &[u8] = match rng.gen_range(0..8) {
                0 => b"{\"Records\":[",
                1 => b"\"",
                2 => b"\n",
                3 => b"type=SYSCALL msg=audit(1.5:7): syscall=59 arch=c000003e ",
                4 => b"}",
                5 => b"]",
                6 => b"{\"eventTime\":\"2020-01-01T00:00:00Z\",",
                _ => b"\\",
            };
            bytes.splice(at..at, piece.iter().copied());
        }
        for format in ALL {
            for result in read_events(format, bytes.as_slice()) {
                match result {
                    Ok((_, event)) => event.validate().unwrap(),
                    Err(e) => assert!(e.record().is_some(), "round {round} {format}: {e}"),
                }
            }
        }
    }
}

#[test]
fn mutated_samples_never_panic() {
    let samples = [
        (
            Format::Cloudtrail,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/ingest/cloudtrail_records_document.json"
            )),
        ),
        (
            Format::K8sAudit,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/ingest/k8s_falco_traces.jsonl"
            )),
        ),
        (
            Format::Auditd,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/ingest/auditd_go_libaudit.log"
            )),
        ),
        (
            Format::GcpAudit,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/ingest/gcp_audit_panther.jsonl"
            )),
        ),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (format, text) in samples {
        for _ in 0..100 {
            let mut bytes = text.as_bytes().to_vec();
            for _ in 0..rng.gen_range(1..8) {
                let at = rng.gen_range(0..bytes.len());
                match rng.gen_range(0..3) {
                    0 => bytes[at] = rng.gen(),
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            // Errors are expected here; what is mapped must be valid.
            for (_, event) in read_events(format, bytes.as_slice()).flatten() {
                event.validate().unwrap();
            }
        }
    }
}

#[test]
fn format_names_are_the_cli_names() {
    use clap::ValueEnum;
    for format in ALL {
        let value = format.to_possible_value().unwrap();
        assert_eq!(value.get_name(), format.name());
        assert_eq!(Format::from_str(format.name(), false), Ok(format));
    }
}
