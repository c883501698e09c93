//! External verification end to end: a live three-node cluster, audited
//! through the real `ironlog` binary with nothing but a trust policy.
//!
//! - receipts on append, export of a bundle, offline verification of both;
//! - `verify` with a state file, chosen entries and a full recomputation;
//! - one node stopped: appends go on and `verify` passes on 2 of 3 signatures;
//! - `monitor` raises a fork when the log is rebuilt with other content under
//!   the same keys, and a rollback when it comes back smaller.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{event, Cluster, ORIGIN};
use ironlog::ledger::policy::{KeyGroup, TrustPolicy};
use ironlog::proto;

fn ironlog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ironlog"))
        .args(args)
        .envs(crate::common::cli_env())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ironlog")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn write_policy(dir: &Path, name: &str, vkeys: &[String], threshold: usize) -> std::path::PathBuf {
    let policy = TrustPolicy {
        origin: ORIGIN.into(),
        log: KeyGroup {
            threshold,
            keys: vkeys.to_vec(),
        },
        witnesses: None,
    };
    let path = dir.join(name);
    std::fs::write(&path, policy.to_toml()).unwrap();
    path
}

/// Appends `actor`'s events `range` through node `via`, retrying while no
/// leader is known yet (right after start or a rebuild).
async fn append(cluster: &Cluster, via: u64, actor: &str, range: std::ops::Range<u64>) {
    let mut client = cluster.ledger(via).await;
    let request = proto::AppendRequest {
        events: range.map(|n| event(actor, n)).collect(),
        wait_checkpoint: false,
    };
    for _ in 0..50 {
        match client.append(request.clone()).await {
            Ok(_) => return,
            Err(s) if s.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(s) => panic!("append: {s}"),
        }
    }
    panic!("append: no leader within 5 s");
}

/// Waits (at most 15 s) until node `via` serves a checkpoint of `size`.
async fn wait_served(cluster: &Cluster, via: u64, size: u64) {
    let mut client = cluster.ledger(via).await;
    for _ in 0..150 {
        if let Ok(r) = client
            .get_checkpoint(proto::GetCheckpointRequest::default())
            .await
        {
            if r.into_inner().checkpoint.is_some_and(|c| c.size == size) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("node {via} never served a checkpoint of size {size}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bundles_receipts_and_verify_on_a_live_cluster() {
    let mut cluster = Cluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "policy.toml", &cluster.vkeys, 2);
    let strict = write_policy(dir.path(), "strict.toml", &cluster.vkeys, 3);
    let state = dir.path().join("state.json");
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let endpoint = cluster.addr(follower);

    append(&cluster, follower, "alice", 0..40).await;

    // Receipts: append through a follower, wait for a cosigned checkpoint,
    // verify the proofs in the CLI, and keep them as a bundle.
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        "{\"actor\":{\"id\":\"bob\"},\"action\":\"db.export\",\"resource\":\"s3://payroll\",\"outcome\":\"success\",\"source\":\"etl\"}\n\
         {\"actor\":{\"id\":\"carol\"},\"action\":\"iam.grant\",\"resource\":\"role/admin\",\"outcome\":\"denied\",\"source\":\"iam\"}\n",
    )
    .unwrap();
    let receipts = dir.path().join("receipts.tlog-proof");
    let out = ironlog(&[
        "--endpoint",
        &endpoint,
        "append",
        "--file",
        p(&events),
        "--receipts",
        p(&receipts),
        "--policy",
        p(&policy),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("receipts: 2 inclusion proof(s) verified"),
        "{}",
        text(&out)
    );
    let out = ironlog(&["verify", "--policy", p(&policy), "--bundle", p(&receipts)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("2 entries proved"), "{}", text(&out));

    // verify: policy, first use, chosen entries, full recomputation.
    wait_served(&cluster, follower, 42).await;
    let out = ironlog(&[
        "--endpoint",
        &endpoint,
        "--json",
        "verify",
        "--policy",
        p(&policy),
        "--state",
        p(&state),
        "--entries",
        "0,3,10-19,41",
        "--full",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["size"], 42);
    assert_eq!(v["inclusion_proofs_verified"], 13);
    assert_eq!(v["full_leaves_recomputed"], 42);
    // The latest checkpoint carries a majority of voter signatures; the
    // third may not have arrived yet when the auditor reads it.
    let signers = v["log_signers"].as_array().unwrap().len();
    assert!((2..=3).contains(&signers), "{v}");

    // Entries given as JSON, as `get --json` prints them.
    let out = ironlog(&["--endpoint", &endpoint, "--json", "get", "5", "8"]);
    assert!(out.status.success(), "{}", text(&out));
    let given = dir.path().join("given.jsonl");
    std::fs::write(&given, &out.stdout).unwrap();
    let out = ironlog(&[
        "--endpoint",
        &endpoint,
        "verify",
        "--policy",
        p(&policy),
        "--entries-json",
        p(&given),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("3 inclusion proof(s) verified"),
        "{}",
        text(&out)
    );
    // The same entries with one leaf byte changed are refused.
    let tampered = String::from_utf8(std::fs::read(&given).unwrap())
        .unwrap()
        .replacen("\"leaf\":\"01", "\"leaf\":\"02", 1);
    std::fs::write(&given, tampered).unwrap();
    let out = ironlog(&[
        "--endpoint",
        &endpoint,
        "verify",
        "--policy",
        p(&policy),
        "--entries-json",
        p(&given),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("verify FAILED"), "{}", text(&out));

    // Export a bundle and verify it offline; any changed byte fails it.
    let bundle = dir.path().join("export.tlog-proof");
    let out = ironlog(&[
        "--endpoint",
        &endpoint,
        "export",
        "--entries",
        "0-9,40,41",
        "--out",
        p(&bundle),
        "--policy",
        p(&policy),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = ironlog(&["verify", "--policy", p(&policy), "--bundle", p(&bundle)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("12 entries proved"), "{}", text(&out));
    let mut bytes = std::fs::read(&bundle).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x04;
    let broken = dir.path().join("broken.tlog-proof");
    std::fs::write(&broken, &bytes).unwrap();
    let out = ironlog(&["verify", "--policy", p(&policy), "--bundle", p(&broken)]);
    assert!(!out.status.success(), "flip at {at} passed: {}", text(&out));
    std::fs::write(&broken, b"not a bundle\n").unwrap();
    let out = ironlog(&["verify", "--policy", p(&policy), "--bundle", p(&broken)]);
    assert!(!out.status.success());
    assert!(text(&out).contains("does not start with"), "{}", text(&out));

    // One voter down: appends continue, and the 2-of-3 policy still holds,
    // consistent with the state from before.
    let down = (1..=3).find(|&i| i != leader && i != follower).unwrap();
    cluster.stop(down).await;
    append(&cluster, follower, "dave", 100..130).await;
    wait_served(&cluster, follower, 72).await;
    let out = ironlog(&[
        "--endpoint",
        &endpoint,
        "--json",
        "verify",
        "--policy",
        p(&policy),
        "--state",
        p(&state),
        "--full",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["size"], 72);
    assert_eq!(v["log_signers"].as_array().unwrap().len(), 2);
    assert_eq!(v["consistency"], "consistent with checkpoint 42");
    // A policy that demands all three voters refuses the same checkpoint.
    let out = ironlog(&["--endpoint", &endpoint, "verify", "--policy", p(&strict)]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("fewer than the threshold 3"),
        "{}",
        text(&out)
    );

    // A state file of another log is refused, not overwritten.
    let other = TrustPolicy {
        origin: "other.example/log".into(),
        ..TrustPolicy::parse(&std::fs::read_to_string(&policy).unwrap()).unwrap()
    };
    let other_path = dir.path().join("other.toml");
    std::fs::write(&other_path, other.to_toml()).unwrap();
    let before = std::fs::read(&state).unwrap();
    let out = ironlog(&[
        "--endpoint",
        &endpoint,
        "verify",
        "--policy",
        p(&other_path),
        "--state",
        p(&state),
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("belongs to the log"), "{}", text(&out));
    assert_eq!(std::fs::read(&state).unwrap(), before);
}

/// Stops every node, deletes every data dir and starts them again: a new
/// log under the same keys and origin, as a malicious operator could.
async fn rebuild(cluster: &mut Cluster) {
    for i in 1..=3 {
        cluster.stop(i).await;
    }
    for i in 1..=3 {
        std::fs::remove_dir_all(cluster.data_dir(i)).unwrap();
    }
    for i in 1..=3 {
        cluster.restart(i).await;
    }
    cluster.leader().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn monitor_alerts_on_fork_and_rollback() {
    let mut cluster = Cluster::start(3).await;
    cluster.leader().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "policy.toml", &cluster.vkeys, 2);
    let state = dir.path().join("monitor.json");
    let hook_log = dir.path().join("alerts.txt");
    let hook = format!("echo \"$IRONLOG_ALERT_KIND\" >> {}", p(&hook_log));
    let nodes: Vec<String> = (1..=3).map(|i| cluster.addr(i)).collect();
    let monitor = |extra: &[&str]| {
        let mut args = vec![
            "monitor",
            "--once",
            "--policy",
            p(&policy),
            "--state",
            p(&state),
        ];
        for n in &nodes {
            args.extend(["--node", n.as_str()]);
        }
        args.extend(extra);
        ironlog(&args)
    };

    append(&cluster, 1, "alice", 0..10).await;
    for i in 1..=3 {
        wait_served(&cluster, i, 10).await;
    }
    let out = monitor(&[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("0 alert(s), 3 of 3 node(s) checked"),
        "{}",
        text(&out)
    );

    // Growth is fine: a consistency proof links 10 to 25.
    append(&cluster, 2, "alice", 10..25).await;
    for i in 1..=3 {
        wait_served(&cluster, i, 25).await;
    }
    let out = monitor(&[]);
    assert!(out.status.success(), "{}", text(&out));

    // The operators rebuild the log under the same keys with other content.
    rebuild(&mut cluster).await;
    append(&cluster, 1, "mallory", 0..25).await;
    for i in 1..=3 {
        wait_served(&cluster, i, 25).await;
    }
    let out = monitor(&["--alert-command", &hook]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ALERT fork"), "{}", text(&out));

    // Rebuilt again, smaller: a rollback on every node.
    rebuild(&mut cluster).await;
    append(&cluster, 1, "mallory", 0..5).await;
    for i in 1..=3 {
        wait_served(&cluster, i, 5).await;
    }
    let out = monitor(&["--alert-command", &hook]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ALERT rollback"), "{}", text(&out));

    // The hook ran for each alert; the state file kept them as evidence,
    // and the accepted head is still the first log's checkpoint.
    let hooked = std::fs::read_to_string(&hook_log).unwrap();
    assert!(hooked.lines().any(|l| l == "fork"), "{hooked}");
    assert!(hooked.lines().any(|l| l == "rollback"), "{hooked}");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["head"]["size"], 25);
    let kinds: Vec<&str> = saved["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"fork") && kinds.contains(&"rollback"),
        "{kinds:?}"
    );
}
