//! Cuts a JSON input into records without parsing it whole, so a file of
//! any size streams in memory bounded by one record.
//!
//! Accepted shapes, in any mix:
//! - JSON lines, or any sequence of top-level objects (pretty-printed too);
//! - a top-level array: each element is a record;
//! - a document object whose wrapper key (CloudTrail `Records`, k8s
//!   `EventList.items`, GCP `entries`) holds an array: each element is a
//!   record, the document's other fields are skipped.
//!
//! The scanner checks JSON structure (brackets, strings, commas and colons)
//! but not scalars; `serde_json` parses each record it cuts. A structural
//! error ends the broken record and scanning resumes at the next line (or
//! right there, when the offending byte starts a line), so one truncated
//! line in a JSON-lines file costs that line only.

use std::io::{self, BufRead};

use super::{IngestError, RecordError};
use crate::limits::INGEST_RECORD_BYTES_MAX;

/// Deepest nesting the scanner follows. `serde_json` refuses more than 128
/// levels anyway; this only bounds the scanner's own stack on hostile input.
const NESTING_MAX: usize = 1024;

/// Longest wrapper key compared, bytes; longer keys are not wrappers.
const WRAPPER_KEY_BYTES_MAX: usize = 64;

const UTF8_BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// One record's bytes and where it starts.
#[derive(Debug)]
pub(crate) struct RawRecord {
    /// 1-based, in input order.
    pub number: u64,
    /// 1-based line of the record's first byte.
    pub line: u64,
    pub bytes: Vec<u8>,
}

pub(crate) struct Splitter<R> {
    input: R,
    wrapper_keys: &'static [&'static str],
    /// Line of the next unread byte.
    line: u64,
    /// Whether a non-whitespace byte was read on the current line, to tell
    /// a byte that starts a line (a place to resume after an error).
    line_has_content: bool,
    mode: Mode,
    records: u64,
    started: bool,
    finished: bool,
}

#[derive(Clone, Copy)]
enum Mode {
    /// Between top-level values.
    Top,
    /// Inside an array whose elements are records: a top-level array, or a
    /// wrapper document's (`wrapper`), whose rest must be skipped after it.
    Array { wrapper: bool, need_comma: bool },
}

/// What the scanner expects next inside a value.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Value,
    /// First element of an array, or its end.
    ValueOrClose,
    /// First key of an object, or its end.
    KeyOrClose,
    Key,
    Colon,
    CommaOrClose,
}

/// Scanner state: open containers and what comes next.
struct Scan {
    stack: Vec<u8>,
    expect: Expect,
}

impl Scan {
    fn value() -> Scan {
        Scan {
            stack: Vec::new(),
            expect: Expect::Value,
        }
    }

    /// Inside a wrapper object, after its records array.
    fn rest_of_object() -> Scan {
        Scan {
            stack: vec![b'{'],
            expect: Expect::CommaOrClose,
        }
    }
}

enum End {
    Complete,
    /// Stopped just after the `[` of a wrapper key's array.
    Wrapper,
}

enum ScanError {
    Io(io::Error),
    Truncated,
    /// `resume_here`: the offending byte starts a line and is left unread.
    Malformed {
        reason: String,
        resume_here: bool,
    },
}

impl From<io::Error> for ScanError {
    fn from(e: io::Error) -> Self {
        ScanError::Io(e)
    }
}

impl<R: BufRead> Splitter<R> {
    pub(crate) fn new(input: R, wrapper_keys: &'static [&'static str]) -> Self {
        Splitter {
            input,
            wrapper_keys,
            line: 1,
            line_has_content: false,
            mode: Mode::Top,
            records: 0,
            started: false,
            finished: false,
        }
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        loop {
            match self.input.fill_buf() {
                Ok(buf) => return Ok(buf.first().copied()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn bump(&mut self, b: u8) {
        self.input.consume(1);
        if b == b'\n' {
            self.line += 1;
            self.line_has_content = false;
        } else if !b.is_ascii_whitespace() {
            self.line_has_content = true;
        }
    }

    /// Skips whitespace; the next byte, unread.
    fn next_significant(&mut self) -> io::Result<Option<u8>> {
        while let Some(b) = self.peek()? {
            if !b.is_ascii_whitespace() {
                return Ok(Some(b));
            }
            self.bump(b);
        }
        Ok(None)
    }

    /// Discards the rest of the current line, newline included.
    fn skip_line(&mut self) -> io::Result<()> {
        while let Some(b) = self.peek()? {
            self.bump(b);
            if b == b'\n' {
                break;
            }
        }
        Ok(())
    }

    fn skip_bom(&mut self) -> io::Result<()> {
        let buf = self.input.fill_buf()?;
        if buf.starts_with(&UTF8_BOM) {
            self.input.consume(UTF8_BOM.len());
        }
        Ok(())
    }

    fn error(number: u64, line: u64, reason: RecordError) -> Option<<Self as Iterator>::Item> {
        Some(Err(IngestError::Record {
            record: number,
            line,
            reason,
        }))
    }

    fn read_error(&mut self, e: io::Error) -> Option<<Self as Iterator>::Item> {
        self.finished = true;
        Some(Err(IngestError::Read(e)))
    }

    /// After a scan error: report it, and resume scanning where possible.
    fn scan_failed(
        &mut self,
        number: u64,
        line: u64,
        e: ScanError,
    ) -> Option<<Self as Iterator>::Item> {
        self.mode = Mode::Top;
        match e {
            ScanError::Io(e) => self.read_error(e),
            ScanError::Truncated => {
                self.finished = true;
                Self::error(number, line, RecordError::Truncated)
            }
            ScanError::Malformed {
                reason,
                resume_here,
            } => {
                if !resume_here {
                    if let Err(e) = self.skip_line() {
                        return self.read_error(e);
                    }
                }
                Self::error(number, line, RecordError::Malformed { reason })
            }
        }
    }

    /// Reads one value from the next significant byte, keeping its bytes
    /// in `buf` (while within the record limit) when given one.
    fn scan(
        &mut self,
        mut scan: Scan,
        mut buf: Option<&mut Vec<u8>>,
        detect_wrapper: bool,
    ) -> Result<End, ScanError> {
        let mut in_string = false;
        let mut string_is_key = false;
        let mut escape = false;
        let mut in_scalar = false;
        let mut key: Vec<u8> = Vec::new();
        let mut key_at_depth_1: Option<Vec<u8>> = None;
        loop {
            let Some(b) = self.peek()? else {
                return if in_scalar && scan.stack.is_empty() {
                    Ok(End::Complete)
                } else {
                    Err(ScanError::Truncated)
                };
            };
            if in_string {
                self.bump(b);
                keep(&mut buf, b);
                if escape {
                    escape = false;
                } else if b == b'\\' {
                    escape = true;
                } else if b == b'"' {
                    in_string = false;
                    if string_is_key {
                        if scan.stack.len() == 1 {
                            key_at_depth_1 = Some(std::mem::take(&mut key));
                        }
                        scan.expect = Expect::Colon;
                        continue;
                    }
                    if after_value(&mut scan) {
                        return Ok(End::Complete);
                    }
                } else if b == b'\n' {
                    return Err(ScanError::Malformed {
                        reason: "a string runs past the end of its line".into(),
                        resume_here: true,
                    });
                }
                if string_is_key && key.len() < WRAPPER_KEY_BYTES_MAX + 1 {
                    key.push(b);
                }
                continue;
            }
            if in_scalar {
                if is_scalar_byte(b) {
                    self.bump(b);
                    keep(&mut buf, b);
                    continue;
                }
                in_scalar = false;
                if after_value(&mut scan) {
                    return Ok(End::Complete);
                }
            }
            if b.is_ascii_whitespace() {
                self.bump(b);
                continue;
            }
            let top = scan.stack.last().copied();
            let expect = scan.expect;
            let value_here = matches!(expect, Expect::Value | Expect::ValueOrClose);
            match b {
                b'{' | b'[' if value_here => {
                    if scan.stack.len() >= NESTING_MAX {
                        return Err(malformed(
                            format!("nested deeper than {NESTING_MAX} levels"),
                            false,
                        ));
                    }
                    self.bump(b);
                    let is_wrapper = b == b'['
                        && detect_wrapper
                        && scan.stack.len() == 1
                        && key_at_depth_1
                            .as_deref()
                            .is_some_and(|k| self.wrapper_keys.iter().any(|w| w.as_bytes() == k));
                    if is_wrapper {
                        return Ok(End::Wrapper);
                    }
                    keep(&mut buf, b);
                    scan.stack.push(b);
                    scan.expect = if b == b'{' {
                        Expect::KeyOrClose
                    } else {
                        Expect::ValueOrClose
                    };
                }
                b'"' if value_here || matches!(expect, Expect::Key | Expect::KeyOrClose) => {
                    self.bump(b);
                    keep(&mut buf, b);
                    in_string = true;
                    string_is_key = !value_here;
                    key.clear();
                }
                b':' if expect == Expect::Colon => {
                    self.bump(b);
                    keep(&mut buf, b);
                    scan.expect = Expect::Value;
                }
                b',' if expect == Expect::CommaOrClose => {
                    self.bump(b);
                    keep(&mut buf, b);
                    scan.expect = if top == Some(b'{') {
                        Expect::Key
                    } else {
                        Expect::Value
                    };
                }
                b'}' if top == Some(b'{')
                    && matches!(expect, Expect::KeyOrClose | Expect::CommaOrClose) =>
                {
                    self.bump(b);
                    keep(&mut buf, b);
                    scan.stack.pop();
                    if after_value(&mut scan) {
                        return Ok(End::Complete);
                    }
                }
                b']' if top == Some(b'[')
                    && matches!(expect, Expect::ValueOrClose | Expect::CommaOrClose) =>
                {
                    self.bump(b);
                    keep(&mut buf, b);
                    scan.stack.pop();
                    if after_value(&mut scan) {
                        return Ok(End::Complete);
                    }
                }
                _ if value_here && is_scalar_byte(b) => {
                    self.bump(b);
                    keep(&mut buf, b);
                    in_scalar = true;
                }
                _ => {
                    let resume_here = !self.line_has_content;
                    return Err(malformed(
                        format!("unexpected {}", show_byte(b)),
                        resume_here,
                    ));
                }
            }
        }
    }

    /// The record starting at the next significant byte (known to be `{`
    /// or an array element), or the switch into a wrapper's array.
    fn record(&mut self, detect_wrapper: bool) -> Option<<Self as Iterator>::Item> {
        self.records += 1;
        let (number, line) = (self.records, self.line);
        let mut bytes = Vec::new();
        match self.scan(Scan::value(), Some(&mut bytes), detect_wrapper) {
            Ok(End::Complete) if bytes.len() > INGEST_RECORD_BYTES_MAX => Self::error(
                number,
                line,
                RecordError::TooLarge {
                    max: INGEST_RECORD_BYTES_MAX,
                },
            ),
            Ok(End::Complete) => Some(Ok(RawRecord {
                number,
                line,
                bytes,
            })),
            Ok(End::Wrapper) => {
                // The document is not a record; its elements are.
                self.records -= 1;
                self.mode = Mode::Array {
                    wrapper: true,
                    need_comma: false,
                };
                None
            }
            Err(e) => self.scan_failed(number, line, e),
        }
    }

    /// One step: a record, an error, or `None` when the step only moved on.
    fn step(&mut self) -> Option<<Self as Iterator>::Item> {
        if !self.started {
            self.started = true;
            if let Err(e) = self.skip_bom() {
                return self.read_error(e);
            }
        }
        let next = match self.next_significant() {
            Ok(next) => next,
            Err(e) => return self.read_error(e),
        };
        match (self.mode, next) {
            (Mode::Top, None) => {
                self.finished = true;
                None
            }
            (Mode::Array { .. }, None) => {
                self.finished = true;
                Self::error(self.records + 1, self.line, RecordError::Truncated)
            }
            (Mode::Top, Some(b'[')) => {
                self.bump(b'[');
                self.mode = Mode::Array {
                    wrapper: false,
                    need_comma: false,
                };
                None
            }
            (Mode::Top, Some(b'{')) => self.record(true),
            (Mode::Top, Some(b)) => {
                self.records += 1;
                let (number, line) = (self.records, self.line);
                let reason = RecordError::Malformed {
                    reason: format!("expected a JSON object or array, found {}", show_byte(b)),
                };
                if let Err(e) = self.skip_line() {
                    return self.read_error(e);
                }
                Self::error(number, line, reason)
            }
            (Mode::Array { wrapper, .. }, Some(b']')) => {
                self.bump(b']');
                self.mode = Mode::Top;
                if wrapper {
                    let line = self.line;
                    if let Err(e) = self.scan(Scan::rest_of_object(), None, false) {
                        return self.scan_failed(self.records + 1, line, e);
                    }
                }
                None
            }
            (
                Mode::Array {
                    wrapper,
                    need_comma: true,
                },
                Some(b','),
            ) => {
                self.bump(b',');
                self.mode = Mode::Array {
                    wrapper,
                    need_comma: false,
                };
                None
            }
            (
                Mode::Array {
                    need_comma: true, ..
                },
                Some(b),
            )
            | (Mode::Array { .. }, Some(b @ b',')) => {
                self.records += 1;
                let (number, line) = (self.records, self.line);
                let resume_here = !self.line_has_content && b != b',';
                let e = malformed(
                    format!(
                        "expected ',' or ']' between records, found {}",
                        show_byte(b)
                    ),
                    resume_here,
                );
                self.scan_failed(number, line, e)
            }
            (Mode::Array { wrapper, .. }, Some(_)) => {
                self.mode = Mode::Array {
                    wrapper,
                    need_comma: true,
                };
                self.record(false)
            }
        }
    }
}

impl<R: BufRead> Iterator for Splitter<R> {
    type Item = Result<RawRecord, IngestError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.finished {
            if let Some(item) = self.step() {
                return Some(item);
            }
        }
        None
    }
}

/// Keeps a record byte; one byte past the limit marks the record too large
/// without holding more.
fn keep(buf: &mut Option<&mut Vec<u8>>, b: u8) {
    if let Some(buf) = buf {
        if buf.len() <= INGEST_RECORD_BYTES_MAX {
            buf.push(b);
        }
    }
}

/// Closes a value; true when it was the outermost.
fn after_value(scan: &mut Scan) -> bool {
    if scan.stack.is_empty() {
        return true;
    }
    scan.expect = Expect::CommaOrClose;
    false
}

fn malformed(reason: String, resume_here: bool) -> ScanError {
    ScanError::Malformed {
        reason,
        resume_here,
    }
}

/// Bytes of numbers and of `true`, `false`, `null` (and of garbage words,
/// which `serde_json` then refuses).
fn is_scalar_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')
}

fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(
        input: &str,
        keys: &'static [&'static str],
    ) -> Vec<Result<(u64, u64, String), String>> {
        Splitter::new(input.as_bytes(), keys)
            .map(|r| {
                r.map(|r| (r.number, r.line, String::from_utf8(r.bytes).unwrap()))
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    fn ok(number: u64, line: u64, text: &str) -> Result<(u64, u64, String), String> {
        Ok((number, line, text.to_string()))
    }

    #[test]
    fn json_lines_and_pretty_objects() {
        let input = "{\"a\":1}\n\n{\"b\": [1, {\"c\": \"}\"}]}\n{\n  \"d\": true\n}\n";
        assert_eq!(
            split(input, &[]),
            [
                ok(1, 1, "{\"a\":1}"),
                ok(2, 3, "{\"b\":[1,{\"c\":\"}\"}]}"),
                ok(3, 4, "{\"d\":true}"),
            ]
        );
    }

    #[test]
    fn arrays_and_wrappers_yield_their_elements() {
        let input = "[{\"a\":1},\n {\"a\":2}]\n{\"kind\":\"EventList\",\"items\":[{\"x\":\"[\"},{\"y\":2}],\"metadata\":{}}\n{\"items\":3}";
        assert_eq!(
            split(input, &["items"]),
            [
                ok(1, 1, "{\"a\":1}"),
                ok(2, 2, "{\"a\":2}"),
                ok(3, 3, "{\"x\":\"[\"}"),
                ok(4, 3, "{\"y\":2}"),
                ok(5, 4, "{\"items\":3}"),
            ]
        );
        // Not a wrapper key for this format: the document is one record.
        assert_eq!(
            split("{\"items\":[1]}", &["Records"]),
            [ok(1, 1, "{\"items\":[1]}")]
        );
        // A nested key of the same name is not a wrapper.
        assert_eq!(
            split("{\"a\":{\"items\":[1]}}", &["items"]),
            [ok(1, 1, "{\"a\":{\"items\":[1]}}")]
        );
    }

    #[test]
    fn a_truncated_line_costs_only_that_line() {
        let input = "{\"a\":1}\n{\"b\":{\"c\":2}\n{\"d\":3}\n{\"e\":\"cut\n{\"f\":4}\n";
        let got = split(input, &[]);
        assert_eq!(got[0], ok(1, 1, "{\"a\":1}"));
        assert!(
            got[1]
                .as_ref()
                .unwrap_err()
                .starts_with("record 2: malformed JSON: unexpected '{'"),
            "{got:?}"
        );
        assert_eq!(got[2], ok(3, 3, "{\"d\":3}"));
        assert!(
            got[3]
                .as_ref()
                .unwrap_err()
                .starts_with("record 4: malformed JSON: a string runs past"),
            "{got:?}"
        );
        assert_eq!(got[4], ok(5, 5, "{\"f\":4}"));
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn input_ending_inside_a_record_is_truncation() {
        let got = split("{\"a\":1}\n{\"b\":[1,2", &[]);
        assert_eq!(got[0], ok(1, 1, "{\"a\":1}"));
        assert_eq!(
            got[1],
            Err("record 2: truncated JSON: the input ends inside this record".into())
        );
        let got = split("[{\"a\":1},", &[]);
        assert_eq!(
            got[1],
            Err("record 2 (line 1): truncated JSON: the input ends inside this record".into())
        );
    }

    #[test]
    fn garbage_lines_are_one_error_each() {
        let got = split("hello world\n{\"a\":1}\n\u{1}\u{2}\n", &[]);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0]
            .as_ref()
            .unwrap_err()
            .contains("expected a JSON object or array, found 'h'"));
        assert_eq!(got[1], ok(2, 2, "{\"a\":1}"));
        assert!(got[2].as_ref().unwrap_err().contains("byte 0x01"));
    }

    #[test]
    fn bom_and_crlf_are_accepted() {
        assert_eq!(
            split("\u{feff}{\"a\":1}\r\n{\"b\":2}\r\n", &[]),
            [ok(1, 1, "{\"a\":1}"), ok(2, 2, "{\"b\":2}")]
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let deep = "[".repeat(100_000);
        let got = split(&format!("{{\"a\":{deep}\n{{\"b\":1}}\n"), &[]);
        assert!(
            got[0].as_ref().unwrap_err().contains("nested deeper than"),
            "{:?}",
            got[0]
        );
        assert_eq!(got[1], ok(2, 2, "{\"b\":1}"));
    }

    #[test]
    fn oversized_records_are_skipped_in_bounded_memory() {
        let big = "x".repeat(INGEST_RECORD_BYTES_MAX + 10);
        let input = format!("{{\"a\":\"{big}\"}}\n{{\"b\":1}}\n");
        let got = split(&input, &[]);
        assert!(
            got[0].as_ref().unwrap_err().contains("larger than"),
            "{:?}",
            &got[0].as_ref().map(|_| ())
        );
        assert_eq!(got[1], ok(2, 2, "{\"b\":1}"));
    }
}
