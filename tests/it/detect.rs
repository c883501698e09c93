//! `ironlog detect` through the real binary: the detection catalogue over a
//! native log file, offline; a table given with `--catalogue` instead of the
//! built-in ones; a bad table refused naming its detection; a record that
//! does not map skipped and named, the rest still read.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn detect(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ironlog"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run ironlog")
}

/// `ironlog [--json] detect --format cloudtrail [--catalogue TABLE] LOG`.
fn detect_cloudtrail(json: bool, table: Option<&Path>, log: &Path) -> Output {
    let mut args = Vec::new();
    if json {
        args.push("--json");
    }
    args.extend(["detect", "--format", "cloudtrail"]);
    if let Some(table) = table {
        args.extend(["--catalogue", table.to_str().unwrap()]);
    }
    args.push(log.to_str().unwrap());
    detect(&args)
}

fn updates_of(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "detect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// The ids of the catalogue detections raised on `record` (1-based).
fn detections_on(updates: &[Value], record: u64) -> Vec<String> {
    updates
        .iter()
        .filter(|u| u["record"] == record)
        .flat_map(|u| u["flags"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["kind"] == "detection")
        .flat_map(|f| {
            let reason = f["reason"].as_str().unwrap_or("").to_string();
            reason
                .split('[')
                .skip(1)
                .filter_map(|part| part.split(']').next().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A CloudTrail record of `caller` creating an access key for `owner`.
fn create_access_key(caller: &str, owner: &str, second: u32) -> Value {
    json!({
        "eventVersion": "1.08",
        "eventTime": format!("2026-11-30T10:00:{second:02}Z"),
        "eventSource": "iam.amazonaws.com",
        "eventName": "CreateAccessKey",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0",
        "userIdentity": {
            "type": "IAMUser",
            "arn": format!("arn:aws:iam::111122223333:user/{caller}"),
            "accountId": "111122223333",
            "userName": caller
        },
        "requestParameters": {"userName": owner},
        "responseElements": {"accessKey": {"userName": owner, "status": "Active"}}
    })
}

fn write_lines(path: &Path, records: &[Value]) {
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).expect("write the log");
}

#[test]
fn detect_runs_the_catalogue_over_a_native_log_offline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("trail.jsonl");
    write_lines(
        &log,
        &[
            // A key made for somebody else: a backdoor (Panther's
            // AWS.IAM.Backdoor.User.Keys behaviour).
            create_access_key("mallory", "alice", 0),
            // A user's own key: not that detection.
            create_access_key("bob", "bob", 1),
            // Not CloudTrail at all: skipped and named, not fatal.
            json!({"hello": "world"}),
        ],
    );
    let out = detect_cloudtrail(true, None, &log);
    let updates = updates_of(&out);
    assert!(
        detections_on(&updates, 1).contains(&"aws.iam.access_key_created_for_user".to_string()),
        "{updates:#?}"
    );
    assert!(
        !detections_on(&updates, 2).contains(&"aws.iam.access_key_created_for_user".to_string()),
        "{updates:#?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("skipped: record 3"), "{stderr}");
    assert!(stderr.contains("1 record(s) skipped"), "{stderr}");
    // Every flag belongs to an incident whose evidence lists its record.
    let first = updates
        .iter()
        .find(|u| u["record"] == 1 && !u["flags"].as_array().unwrap().is_empty())
        .expect("an incident opened on record 1");
    assert!(first["added"].as_array().unwrap().contains(&json!(1)));

    // The same log with a table of one's own instead of the built-in ones.
    let table = dir.path().join("mine.toml");
    std::fs::write(
        &table,
        r#"
[[detection]]
id = "mine.keys_for_bob"
what = "created keys for bob"
score = 0.9
source = ["cloudtrail"]
action = ["iam:CreateAccessKey"]
all = [{ path = "requestParameters.userName", is = ["bob"] }]
"#,
    )
    .unwrap();
    let out = detect_cloudtrail(true, Some(&table), &log);
    let updates = updates_of(&out);
    assert_eq!(detections_on(&updates, 2), ["mine.keys_for_bob"]);
    assert!(detections_on(&updates, 1).is_empty(), "{updates:#?}");

    // A table with a mistake is refused, naming the detection and the problem.
    std::fs::write(
        &table,
        "[[detection]]\nid = \"broken\"\nwhat = \"w\"\nscore = 2.0\nsource = [\"cloudtrail\"]\n",
    )
    .unwrap();
    let out = detect_cloudtrail(false, Some(&table), &log);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("detection \"broken\"") && stderr.contains("outside (0, 1]"),
        "{stderr}"
    );
}
