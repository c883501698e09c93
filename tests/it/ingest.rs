//! `ironlog ingest` end to end: every sample format through the real binary
//! into a live three-node cluster (through a follower, which forwards to
//! the leader), read back with `ironlog get --json`; a second run appends
//! nothing; a bad file appends nothing and names its record.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::Cluster;
use ironlog::ingest::{read_events, Format};
use serde_json::Value;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ingest");

fn ironlog(endpoint: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ironlog"))
        .arg("--endpoint")
        .arg(endpoint)
        .args(args)
        .envs(crate::common::cli_env())
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ironlog");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(bytes).expect("write stdin");
    }
    child.wait_with_output().expect("ironlog finishes")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn sample(name: &str) -> PathBuf {
    Path::new(DATA).join(name)
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// `ingest --json` of `file`; its summary object.
fn ingest(endpoint: &str, format: &str, file: &Path) -> Value {
    let out = ironlog(
        endpoint,
        &[
            "--json",
            "ingest",
            "--format",
            format,
            "--no-progress",
            p(file),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{format} {}: {}",
        file.display(),
        text(&out)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON summary")
}

/// Entries `start..end` as `get --json` prints them.
fn get(endpoint: &str, start: u64, end: u64) -> Vec<Value> {
    let out = ironlog(
        endpoint,
        &["--json", "get", &start.to_string(), &end.to_string()],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an entry per line"))
        .collect()
}

/// What the library maps from a sample: the count the binary must append.
fn mapped(format: Format, file: &Path) -> u64 {
    let input = std::io::BufReader::new(std::fs::File::open(file).expect("sample"));
    read_events(format, input)
        .inspect(|r| assert!(r.is_ok(), "samples map: {r:?}"))
        .count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_sample_format_ingests_once_into_a_live_cluster() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|&i| i != leader).expect("a follower");
    let endpoint = cluster.addr(follower);

    // (format, file, records, an entry's expected (action, actor, resource))
    let samples: [(&str, Format, &str, u64); 10] = [
        (
            "cloudtrail",
            Format::Cloudtrail,
            "cloudtrail_otrf_ec2_proxy_s3_exfiltration.jsonl",
            103,
        ),
        (
            "cloudtrail",
            Format::Cloudtrail,
            "cloudtrail_records_document.json",
            8,
        ),
        ("k8s-audit", Format::K8sAudit, "k8s_falco_traces.jsonl", 14),
        ("k8s-audit", Format::K8sAudit, "k8s_eks_panther.jsonl", 8),
        ("auditd", Format::Auditd, "auditd_go_libaudit.log", 0),
        (
            "auditd",
            Format::Auditd,
            "auditd_otrf_log4shell_auoms.jsonl",
            50,
        ),
        ("okta", Format::Okta, "okta_panther.jsonl", 10),
        ("gcp-audit", Format::GcpAudit, "gcp_audit_panther.jsonl", 20),
        (
            "github-audit",
            Format::GithubAudit,
            "github_audit_panther.jsonl",
            20,
        ),
        ("jsonl", Format::Jsonl, "ironlog_events.jsonl", 3),
    ];
    let mut size = 0u64;
    for (name, format, file, records) in samples {
        let file = sample(file);
        let records = if records == 0 {
            mapped(format, &file)
        } else {
            assert_eq!(mapped(format, &file), records, "{name}");
            records
        };
        let summary = ingest(&endpoint, name, &file);
        assert_eq!(summary["records"], records, "{name}: {summary}");
        assert_eq!(summary["new"], records, "{name}: {summary}");
        assert_eq!(summary["already_present"], 0, "{name}: {summary}");
        assert_eq!(summary["first_index"], size, "{name}: {summary}");
        assert_eq!(
            summary["last_index"],
            size + records - 1,
            "{name}: {summary}"
        );
        let entries = get(&endpoint, size, size + records);
        assert_eq!(entries.len() as u64, records, "{name}");
        for entry in &entries {
            let event = &entry["event"];
            if name != "jsonl" {
                assert_eq!(event["source"], name, "{name}: {entry}");
            }
            let key = event["idempotency_key"].as_str().expect("a key");
            assert!(
                name == "jsonl" || key.starts_with(&format!("{name}:")),
                "{key}"
            );
        }
        size += records;

        // The same file again: nothing new.
        let again = ingest(&endpoint, name, &file);
        assert_eq!(again["records"], records, "{name}: {again}");
        assert_eq!(again["new"], 0, "{name}: {again}");
        assert_eq!(again["already_present"], records, "{name}: {again}");
    }
    cluster.wait_size(size).await;

    // A field or two, as committed: the S3 object the stolen role read.
    let all = get(&endpoint, 0, 103);
    let get_object = all
        .iter()
        .find(|e| e["event"]["action"] == "s3:GetObject")
        .expect("the exfiltration's GetObject");
    assert_eq!(
        get_object["event"]["resource"],
        "arn:aws:s3:::mordors3stack-s3bucket-llp2yingx64a/ring.txt"
    );
    assert_eq!(get_object["event"]["outcome"], "success");
    assert_eq!(
        get_object["event"]["details"]["eventSource"],
        "s3.amazonaws.com"
    );

    // --dry-run prints Ironlog JSON lines that read back as the same events:
    // ingested as jsonl from stdin they are all already present.
    let falco = sample("k8s_falco_traces.jsonl");
    let dry = ironlog(
        &endpoint,
        &["ingest", "--format", "k8s-audit", "--dry-run", p(&falco)],
        None,
    );
    assert!(dry.status.success(), "{}", text(&dry));
    assert_eq!(String::from_utf8_lossy(&dry.stdout).lines().count(), 14);
    let out = ironlog(
        &endpoint,
        &["ingest", "--format", "jsonl", "--no-progress", "-"],
        Some(&dry.stdout),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out)
            .starts_with("ingested 14 records (0 new, 14 already present) from - as entries "),
        "{}",
        text(&out)
    );

    // A bad record refuses the whole file, naming it; nothing is appended.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.jsonl");
    let good = std::fs::read_to_string(sample("okta_panther.jsonl")).expect("sample");
    let mut lines: Vec<&str> = good.lines().take(3).collect();
    lines.insert(1, r#"{"eventType": "user.session.start", "uuid": "new-1"}"#);
    std::fs::write(&bad, lines.join("\n")).expect("write");
    let out = ironlog(
        &endpoint,
        &["ingest", "--format", "okta", "--no-progress", p(&bad)],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("nothing was appended")
            && text(&out).contains("record 2: no event time (expected published)"),
        "{}",
        text(&out)
    );
    // With --skip-invalid the rest goes in (already present here) and the
    // bad record is reported.
    let out = ironlog(
        &endpoint,
        &[
            "ingest",
            "--format",
            "okta",
            "--no-progress",
            "--skip-invalid",
            p(&bad),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("skipping record 2: no event time"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("ingested 3 records (0 new, 3 already present)"),
        "{}",
        text(&out)
    );
    let status = cluster.status(leader).await.expect("status");
    assert_eq!(status.tree_size, size, "nothing new was appended");
}
