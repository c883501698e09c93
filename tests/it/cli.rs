//! The `ironlog` binary's behaviour that needs no running cluster: keys,
//! input validation before any connection, and config errors at start-up.

use std::path::Path;
use std::process::{Command, Output};

/// An endpoint nothing listens on: port 1 is reserved (tcpmux) and unused.
/// A command that reaches the network fails with "cannot connect", so a
/// test seeing a parse error proves parsing came first.
const DEAD_ENDPOINT: &str = "http://127.0.0.1:1";

fn ironlog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ironlog"))
        .args(args)
        .env("IRONLOG_ENDPOINT", DEAD_ENDPOINT)
        .env_remove("RUST_LOG")
        .output()
        .expect("the ironlog binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

const GOOD_LINE: &str = r#"{"time":"2024-05-01T12:00:00Z","actor":"alice","action":"db.read","resource":"postgres://payments/customers","outcome":"success","source":"payments-api"}"#;

#[test]
fn keygen_writes_a_private_key_0600_and_a_pub_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("node1.key");
    let output = ironlog(&[
        "keygen",
        "--name",
        "example.org/ironlog",
        "--out",
        path_str(&key),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));

    let vkey = std::fs::read_to_string(dir.path().join("node1.key.pub")).expect("pub file");
    assert!(vkey.starts_with("example.org/ironlog+"), "{vkey}");
    assert_eq!(stdout(&output).trim(), vkey.trim(), "the vkey is printed");

    let skey = std::fs::read_to_string(&key).expect("key file");
    assert!(!skey.trim().is_empty());
    assert_ne!(skey.trim(), vkey.trim());
    let mode = std::fs::metadata(&key)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "private key mode {mode:o}");
}

#[test]
fn keygen_refuses_to_overwrite_a_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("node1.key");
    std::fs::write(&key, "precious").expect("write");
    let output = ironlog(&[
        "keygen",
        "--name",
        "example.org/ironlog",
        "--out",
        path_str(&key),
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("already exists"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_to_string(&key).expect("read"), "precious");
    assert!(!dir.path().join("node1.key.pub").exists());
}

#[test]
fn keygen_refuses_when_only_the_pub_file_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("node1.key");
    std::fs::write(dir.path().join("node1.key.pub"), "old").expect("write");
    let output = ironlog(&[
        "keygen",
        "--name",
        "example.org/ironlog",
        "--out",
        path_str(&key),
    ]);
    assert!(!output.status.success());
    assert!(!key.exists(), "no private key without its pub file");
}

#[test]
fn append_names_the_malformed_line_before_connecting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("events.jsonl");
    std::fs::write(
        &file,
        format!("{GOOD_LINE}\n\n{GOOD_LINE}\n{{\"actor\": \n"),
    )
    .expect("write");
    let output = ironlog(&["append", "--file", path_str(&file)]);
    let err = stderr(&output);
    assert!(!output.status.success());
    assert!(err.starts_with("error: line 4: invalid JSON"), "{err}");
    assert!(!err.contains("connect"), "{err}");
}

#[test]
fn append_names_an_invalid_event_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("events.jsonl");
    let bad = GOOD_LINE.replace("\"success\"", "\"maybe\"");
    std::fs::write(&file, format!("{GOOD_LINE}\n{bad}\n")).expect("write");
    let output = ironlog(&["append", "--file", path_str(&file)]);
    let err = stderr(&output);
    assert!(!output.status.success());
    assert!(err.contains("line 2") && err.contains("outcome"), "{err}");
}

/// `ironlog append --file -` against a dead endpoint, every stream piped:
/// it reads all of its standard input before anything else.
fn append_from_stdin() -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_ironlog"))
        .args(["append", "--file", "-"])
        .env("IRONLOG_ENDPOINT", DEAD_ENDPOINT)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn")
}

#[test]
fn append_reads_stdin_and_validates_it_first() {
    use std::io::Write;
    let mut child = append_from_stdin();
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{GOOD_LINE}\nnot json\n").as_bytes())
        .expect("write stdin");
    drop(stdin);
    let output = child.wait_with_output().expect("wait");
    assert!(!output.status.success());
    assert!(
        stderr(&output).starts_with("error: line 2:"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn append_of_a_valid_file_fails_only_at_the_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, format!("{GOOD_LINE}\n")).expect("write");
    let output = ironlog(&["append", "--file", path_str(&file)]);
    let err = stderr(&output);
    assert!(!output.status.success());
    assert!(
        err.contains("cannot connect to http://127.0.0.1:1"),
        "{err}"
    );
}

#[test]
fn append_flags_are_validated_before_connecting() {
    let output = ironlog(&[
        "append",
        "--actor",
        "alice",
        "--action",
        "db.read",
        "--resource",
        "r",
        "--outcome",
        "success",
        "--source",
        "s",
        "--details",
        "[1, 2]",
    ]);
    let err = stderr(&output);
    assert!(!output.status.success());
    assert!(
        err.contains("--details") && err.contains("JSON object"),
        "{err}"
    );
}

#[test]
fn append_batch_size_is_bounded() {
    let output = ironlog(&["append", "--file", "-", "--batch", "1001"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--batch"), "{}", stderr(&output));
}

#[test]
fn node_with_a_bad_config_fails_naming_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        r#"
id = 1
listen = "127.0.0.1:7001"
peer_listen = "127.0.0.1:7101"
data_dir = "data"
origin = "example.org/ironlog"
signing_key_file = "node.key"

[raft]
election_timeout_min_ms = 900
election_timeout_max_ms = 800
"#,
    )
    .expect("write");
    let output = ironlog(&["node", "--config", path_str(&config)]);
    let err = stderr(&output);
    assert!(!output.status.success());
    assert!(
        err.contains("election_timeout_min_ms (900)") && err.contains("(800)"),
        "{err}"
    );
}

#[test]
fn a_node_without_tls_refuses_to_start_unless_insecure_is_explicit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("plain.toml");
    std::fs::write(
        &config,
        r#"
id = 1
listen = "127.0.0.1:1"
peer_listen = "127.0.0.1:2"
data_dir = "data"
origin = "example.org/ironlog"
signing_key_file = "node.key"
"#,
    )
    .expect("write");
    let output = ironlog(&["node", "--config", path_str(&config)]);
    let err = stderr(&output);
    assert!(!output.status.success());
    assert!(
        err.contains("no [tls] section") && err.contains("--insecure"),
        "{err}"
    );
    // With --insecure the TLS check passes; the node then fails on the
    // missing signing key, after warning that it is insecure.
    let output = Command::new(env!("CARGO_BIN_EXE_ironlog"))
        .args(["node", "--insecure", "--config", path_str(&config)])
        .env("RUST_LOG", "warn")
        .output()
        .expect("runs");
    let err = stderr(&output);
    assert!(!output.status.success());
    assert!(
        err.contains("signing key") || err.contains("node.key"),
        "{err}"
    );
    assert!(!err.contains("no [tls] section"), "{err}");
}

#[test]
fn node_with_unparseable_config_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("typo.toml");
    std::fs::write(
        &config,
        "id = 1\nlisten = \"127.0.0.1:7001\"\nlisten_addr = 3\n",
    )
    .expect("write");
    let output = ironlog(&["node", "--config", path_str(&config)]);
    let err = stderr(&output);
    assert!(!output.status.success());
    assert!(err.contains("typo.toml"), "{err}");
}

#[test]
fn node_with_a_missing_config_says_so() {
    let output = ironlog(&["node", "--config", "/nonexistent/ironlog.toml"]);
    let err = stderr(&output);
    assert!(!output.status.success());
    assert!(
        err.contains("cannot read config file /nonexistent/ironlog.toml"),
        "{err}"
    );
}

#[test]
fn an_unreachable_endpoint_is_a_clean_error() {
    let output = ironlog(&["status"]);
    let err = stderr(&output);
    assert!(!output.status.success());
    assert!(err.starts_with("error: cannot connect to"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The binary turns transparent huge pages off for itself (the kernel
/// reports it as `THP_enabled: 0`): left on, mimalloc's huge pages are
/// split and zeroed again under load, and appends stall for 100 ms and
/// more (see `keep_huge_pages_off` in main.rs).
#[test]
fn the_binary_runs_without_transparent_huge_pages() {
    // A child inherits the flag: if this process has it already, the
    // child's would prove nothing.
    if thp_enabled("self") == "0" {
        eprintln!("skipped: this test process runs with huge pages off already");
        return;
    }
    // A command that waits on its standard input stays alive to be read.
    let mut child = append_from_stdin();
    let pid = child.id().to_string();
    let mut last = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        last = thp_enabled(&pid);
        if last == "0" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(last, "0");
}

/// The `THP_enabled` value in `/proc/<pid>/status`.
fn thp_enabled(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("the process's status")
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .expect("this kernel reports THP_enabled")
        .trim()
        .to_string()
}
