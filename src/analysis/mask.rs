//! Masking: secrets and personal data never reach the model.
//!
//! Before any text goes into a prompt, [`MaskTable::mask`] replaces every
//! sensitive span with a placeholder such as `<EMAIL_1>`, `<IP_2>` or
//! `<SECRET_1>`; [`MaskTable::unmask`] puts the originals back in what the
//! caller sees. One table serves one request, so the same original always
//! gets the same placeholder within it and the model can still tell that two
//! entries came from the same address.
//!
//! ## What is masked, in this order
//! Each pass runs over the output of the one before, so a span masked early
//! is a placeholder by the time later patterns look, and can never be
//! half-taken by a broader one. The order is the reason for most of the
//! correctness here:
//! 1. **Placeholder-shaped input** (`<EMAIL_1>`, `< ip_7 >`, `<X_OVERFLOW>`)
//!    becomes `<LITERAL_n>` first. Afterwards every placeholder-shaped span
//!    in the masked text is one this table made, so a log line that carries
//!    `<EMAIL_1>` cannot make `unmask` reveal another entry's address; the
//!    literal text comes back as written.
//! 2. **PEM private-key blocks**, whole: their base64 body would otherwise be
//!    picked apart by the token and card patterns below.
//! 3. **Credentials in URLs** (`postgres://user:pass@host`, also mysql,
//!    mongodb, redis, amqp and any other scheme): the `user:pass` part. Before
//!    emails, because `pass@db.example.com` looks like one.
//! 4. **Token shapes**: JWTs, AWS access key ids (AKIA/ASIA/ABIA/ACCA),
//!    GitHub (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`), Slack
//!    (`xox?-`), Google API keys and Stripe live keys.
//! 5. **`Bearer` tokens** (with at least one digit and one letter, so prose
//!    such as "bearer authentication" is left alone).
//! 6. **Key-value secrets**: the value after `password`, `secret`,
//!    `api_key`, `token`, `access_key`, `private_key`, `authorization`,
//!    `credential(s)`, `connection_string`, `dsn`, `signature` and their
//!    prefixed forms (`db_password`, `clientSecret`, `secretAccessKey`,
//!    `X-Api-Key`), in `k=v`, `k: v`, JSON, escaped JSON inside a JSON
//!    string, `--password v` and `curl -u user:pass`. The key is kept so the model knows what was
//!    there; a key only counts when it *ends* with the word, so
//!    `minimumPasswordLength: 14` and `tokenType` are left alone. After the
//!    token shapes, so a token under such a key is one placeholder, not two.
//! 7. **Emails**, also URL-encoded (`bob%40example.com`).
//! 8. **Card numbers**: 13–19 digits, optional single spaces or dashes,
//!    starting 2–6 (the card networks' ranges) and passing the Luhn check.
//!    Before phones, whose national forms overlap them.
//! 9. **IPv6**, checked by the standard library's parser, so timestamps
//!    (`12:30:45`), MAC addresses and ARNs (`arn:aws:iam::1234…`) fail.
//!    Before IPv4 so `::ffff:10.0.0.1` is one address.
//! 10. **IPv4**, each octet 0–255 and not part of a longer dotted run (OIDs,
//!     four-part versions such as `1.2.3.4.5`). A dotted quad straight after
//!     a capitalised user-agent product (`Chrome/140.0.0.0`) is a version.
//!     Also the dashed address in AWS host names (`ip-10-0-0-1`).
//! 11. **Phone numbers**: `+` and 8–15 digits (E.164), `(555) 123-4567`,
//!     `555-123-4567`, `555.123.4567`, and national numbers that start with
//!     0 (`020 7946 0958`). Bare digit runs are never phones: they are far
//!     more often ids, ports or timestamps.
//!
//! ## Limits
//! The table holds at most [`MASK_TABLE_ENTRIES_MAX`] originals of at most
//! [`MASK_TABLE_BYTES_MAX`] bytes in all. Past either, new originals are
//! still masked, as `<KIND_OVERFLOW>`, which `unmask` leaves as it is: a
//! hostile text can make the answer less precise, never leak.
//!
//! ## Known gaps
//! Masking is pattern-based: a secret under an unusual key, a password in
//! free prose ("password: correct horse" keeps "horse"), a name, a street
//! address or a national id number is not found. `PWD=` (the shell's
//! working directory) is masked like the ODBC `Pwd=` password; that errs
//! toward hiding. Card-like numbers
//! pass the Luhn check one time in ten, so some 13–19 digit ids starting
//! 2–6 are masked as cards; that errs toward hiding.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use crate::limits::{MASK_TABLE_BYTES_MAX, MASK_TABLE_ENTRIES_MAX};

/// What a placeholder stands for; its tag names the placeholder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Input text that already looked like a placeholder.
    Literal,
    Secret,
    Email,
    Card,
    Ip,
    Phone,
}

impl Kind {
    const COUNT: usize = 6;

    /// The word inside the placeholder, `<TAG_n>`.
    fn tag(self) -> &'static str {
        match self {
            Kind::Literal => "LITERAL",
            Kind::Secret => "SECRET",
            Kind::Email => "EMAIL",
            Kind::Card => "CARD",
            Kind::Ip => "IP",
            Kind::Phone => "PHONE",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One masking pass: the kind it assigns and the spans it finds. Spans are
/// sorted and do not overlap.
struct Pass {
    kind: Kind,
    find: fn(&str) -> Vec<Range<usize>>,
}

/// The passes in the order documented at the top of this module.
const PASSES: [Pass; 11] = [
    Pass {
        kind: Kind::Literal,
        find: find_placeholder_shaped,
    },
    Pass {
        kind: Kind::Secret,
        find: find_pem_blocks,
    },
    Pass {
        kind: Kind::Secret,
        find: find_url_credentials,
    },
    Pass {
        kind: Kind::Secret,
        find: find_token_shapes,
    },
    Pass {
        kind: Kind::Secret,
        find: find_bearer_tokens,
    },
    Pass {
        kind: Kind::Secret,
        find: find_key_value_secrets,
    },
    Pass {
        kind: Kind::Email,
        find: find_emails,
    },
    Pass {
        kind: Kind::Card,
        find: find_cards,
    },
    Pass {
        kind: Kind::Ip,
        find: find_ipv6,
    },
    Pass {
        kind: Kind::Ip,
        find: find_ipv4,
    },
    Pass {
        kind: Kind::Phone,
        find: find_phones,
    },
];

/// A placeholder this module makes (and the only shape `unmask` replaces).
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| re(r"<[A-Z]+_[0-9]+>"));

/// Anything a reader (or the model) could take for a placeholder: wider
/// than [`PLACEHOLDER`] on purpose, so near-misses are neutralised too.
static PLACEHOLDER_SHAPED: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)<\s*[a-z]+_(?:[0-9]+|overflow)\s*>"));

static PEM_BLOCK: LazyLock<Regex> = LazyLock::new(|| {
    // A block cut short (a truncated log line) is masked up to where its
    // base64 body ends, escaped newlines included.
    re(
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s\\:,-]*)",
    )
});

static URL_CREDENTIALS: LazyLock<Regex> = LazyLock::new(|| {
    // Userinfo cannot hold `/` (RFC 3986), so `host:8443/users/bob@x.io`
    // is a path, not credentials. A raw `@` in a password is tolerated: the
    // match runs to the last `@` before the path.
    re(r#"(?i)\b[a-z][a-z0-9+.-]*://([^\s:/@<>"'\\]*:[^\s/<>"'\\]+)@"#)
});

static TOKEN_SHAPES: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
        r"|\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16,24}\b",
        r"|\bgh[pousr]_[A-Za-z0-9]{30,255}\b",
        r"|\bgithub_pat_[A-Za-z0-9_]{30,255}\b",
        r"|\bxox[abposre]-[A-Za-z0-9-]{10,}",
        r"|\bAIza[0-9A-Za-z_-]{35}\b",
        r"|\b[sr]k_live_[0-9A-Za-z]{16,}\b",
    ))
});

static BEARER: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\bbearer\s+([A-Za-z0-9._~+/=-]{8,})"));

/// A key that names a secret, then its separator. The key must end with
/// one of the words (the separator follows at once), which is what keeps
/// `passwordPolicy` and `minimumPasswordLength` out.
static SECRET_KEY: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?i)\b[a-z0-9_.-]*?",
        r"(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey",
        r"|access[_-]?key|private[_-]?key|signing[_-]?key|encryption[_-]?key",
        r"|master[_-]?key|account[_-]?key|credentials?|authorization",
        r"|connection[_-]?string|dsn|signature)",
        r#"(?:\\*["'])?\s*[:=]\s*"#,
    ))
});

/// `curl -u user:pass`, `--user user:pass`: a bare `-u root` is only a name.
static USER_PASS_FLAG: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?:^|\s)(?:-u|--user)[\s=]+["']?([^\s:"'<>]+:[^\s"'<>]+)"#));

/// `--password value` on a command line (the `=` form is a key-value).
static SECRET_FLAG: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?:^|\s)--?(?:password|passwd|pass|token|secret|api-key|apikey|access-token|auth-token)\s+",
    )
});

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"[A-Za-z0-9_.%+-]+(?:@|%40)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b",
    )
});

static CARD: LazyLock<Regex> = LazyLock::new(|| re(r"\b[2-6]\d{3}(?:[ -]?\d){9,15}\b"));

/// Maximal runs of hex digits, colons and dots holding at least two
/// colons; each is then checked by the IPv6 parser.
static IPV6_RUN: LazyLock<Regex> =
    LazyLock::new(|| re(r"[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*"));

/// AWS-style host names that spell a private address with dashes
/// (`ip-10-0-0-1.ec2.internal`); the dashed quad is masked.
static IPV4_DASHED_HOST: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\bip-((?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:-(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})\b",
    )
});

static IPV4: LazyLock<Regex> = LazyLock::new(|| {
    re(r"\b(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\b")
});

static PHONES: LazyLock<[Regex; 4]> = LazyLock::new(|| {
    [
        re(r"\+\d[\d ().-]{6,22}\d"),
        re(r"\(\d{3}\)\s?\d{3}[\s.-]\d{4}\b"),
        re(r"\b\d{3}[.-]\d{3}[.-]\d{4}\b"),
        re(r"\b0\d{1,4}[ -]\d{3,4}[ -]?\d{3,4}\b"),
    ]
});

/// Compiles one of this module's fixed patterns. They are constants, tested
/// below, so a failure here is a programming error caught by any test run.
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("mask pattern {pattern:?}: {e}"))
}

/// One placeholder and the original text it stands for.
#[derive(Clone, Debug)]
struct Entry {
    placeholder: String,
    original: String,
}

/// The placeholders of one request and what they stand for. Make one per
/// request, mask everything that goes into the prompt with it, and unmask
/// what comes back; never share one between requests, since the numbering
/// tells the model which entries share an address.
#[derive(Clone, Debug, Default)]
pub struct MaskTable {
    /// In the order they were made, for [`MaskTable::originals`].
    entries: Vec<Entry>,
    /// Original → index in `entries`: the same original gets the same
    /// placeholder however often it appears.
    by_original: HashMap<String, usize>,
    /// Placeholder → index in `entries`, for `unmask`.
    by_placeholder: HashMap<String, usize>,
    /// Last number used per [`Kind`], so each kind counts from 1.
    counters: [usize; Kind::COUNT],
    /// Bytes of all originals held, against [`MASK_TABLE_BYTES_MAX`].
    original_bytes: usize,
    /// Set once a limit is reached; from then on every new original is an
    /// overflow placeholder, so an overflow placeholder never ends up inside
    /// an original the table stores.
    full: bool,
}

impl MaskTable {
    pub fn new() -> MaskTable {
        MaskTable::default()
    }

    /// `text` with every sensitive span replaced by its placeholder.
    pub fn mask(&mut self, text: &str) -> String {
        let mut current = text.to_owned();
        for pass in &PASSES {
            let spans = (pass.find)(&current);
            if !spans.is_empty() {
                current = self.replace(&current, pass.kind, &spans);
            }
        }
        current
    }

    /// `text` with every placeholder this table made replaced by its
    /// original. Other placeholder-shaped text (made up by the model, or an
    /// overflow placeholder) is left as it is. One pass: an original that
    /// itself looks like a placeholder (a `Kind::Literal`) is not expanded
    /// again.
    pub fn unmask(&self, text: &str) -> String {
        PLACEHOLDER
            .replace_all(text, |caps: &regex::Captures<'_>| {
                let found = &caps[0];
                match self.by_placeholder.get(found) {
                    Some(&i) => self.entries[i].original.clone(),
                    None => found.to_owned(),
                }
            })
            .into_owned()
    }

    /// Number of originals held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True once a limit was reached and later originals were masked as
    /// `<KIND_OVERFLOW>` (still hidden, but no longer restorable).
    #[cfg(test)]
    pub fn overflowed(&self) -> bool {
        self.full
    }

    /// `(placeholder, original)` pairs in the order they were made.
    #[cfg(test)]
    pub fn originals(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|e| (e.placeholder.as_str(), e.original.as_str()))
    }

    fn replace(&mut self, text: &str, kind: Kind, spans: &[Range<usize>]) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for span in spans {
            out.push_str(&text[last..span.start]);
            let placeholder = self.placeholder_for(kind, &text[span.clone()]);
            out.push_str(&placeholder);
            last = span.end;
        }
        out.push_str(&text[last..]);
        out
    }

    fn placeholder_for(&mut self, kind: Kind, found: &str) -> String {
        // A later pass can take a span that holds an earlier placeholder
        // (a quoted password holding a URL whose credentials were masked).
        // Stored originals are always raw input, so expand those first;
        // input placeholders were all made literals by pass 1, so anything
        // placeholder-shaped here is ours. Literals themselves are raw.
        let original = if kind != Kind::Literal && found.contains('<') {
            self.unmask(found)
        } else {
            found.to_owned()
        };
        if let Some(&i) = self.by_original.get(&original) {
            return self.entries[i].placeholder.clone();
        }
        if self.full
            || self.entries.len() >= MASK_TABLE_ENTRIES_MAX
            || self.original_bytes + original.len() > MASK_TABLE_BYTES_MAX
        {
            self.full = true;
            return format!("<{}_OVERFLOW>", kind.tag());
        }
        let counter = &mut self.counters[kind.index()];
        *counter += 1;
        let placeholder = format!("<{}_{}>", kind.tag(), counter);
        let i = self.entries.len();
        self.original_bytes += original.len();
        self.by_original.insert(original.clone(), i);
        self.by_placeholder.insert(placeholder.clone(), i);
        self.entries.push(Entry {
            placeholder: placeholder.clone(),
            original,
        });
        placeholder
    }
}

fn whole_matches(regex: &Regex, text: &str) -> Vec<Range<usize>> {
    regex.find_iter(text).map(|m| m.range()).collect()
}

fn find_placeholder_shaped(text: &str) -> Vec<Range<usize>> {
    whole_matches(&PLACEHOLDER_SHAPED, text)
}

fn find_pem_blocks(text: &str) -> Vec<Range<usize>> {
    whole_matches(&PEM_BLOCK, text)
}

fn find_url_credentials(text: &str) -> Vec<Range<usize>> {
    URL_CREDENTIALS
        .captures_iter(text)
        .filter_map(|c| c.get(1))
        .map(|m| m.range())
        .collect()
}

fn find_token_shapes(text: &str) -> Vec<Range<usize>> {
    whole_matches(&TOKEN_SHAPES, text)
}

fn find_bearer_tokens(text: &str) -> Vec<Range<usize>> {
    BEARER
        .captures_iter(text)
        .filter_map(|c| c.get(1))
        .filter(|m| looks_like_token(m.as_str()))
        .map(|m| m.range())
        .collect()
}

/// Random tokens mix letters and digits; English words do not.
fn looks_like_token(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit()) && s.bytes().any(|b| b.is_ascii_alphabetic())
}

fn find_key_value_secrets(text: &str) -> Vec<Range<usize>> {
    let mut spans: Vec<Range<usize>> = SECRET_KEY
        .find_iter(text)
        .filter_map(|m| secret_value(text, m.end(), m.as_str()))
        .chain(
            SECRET_FLAG
                .find_iter(text)
                .filter_map(|m| bare_value(text, m.end())),
        )
        .chain(
            USER_PASS_FLAG
                .captures_iter(text)
                .filter_map(|c| c.get(1))
                .map(|m| m.range()),
        )
        .collect();
    spans.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
    without_overlaps(spans)
}

/// The span of the value that starts at `at`, after `key_and_sep`, or None
/// when there is nothing secret there (empty, null, a nested object).
fn secret_value(text: &str, at: usize, key_and_sep: &str) -> Option<Range<usize>> {
    let rest = &text[at..];
    // A quoted key's quote run (`"`, or `\"` inside a JSON string) tells how
    // deeply the value's quotes are escaped.
    let backslashes = rest.bytes().take_while(|&b| b == b'\\').count();
    match rest.as_bytes().get(backslashes) {
        Some(b'"') => quoted_value(text, at + backslashes + 1, backslashes),
        Some(b'\'') if backslashes == 0 => {
            let start = at + 1;
            let end = text[start..]
                .find(['\'', '\n'])
                .map_or(text.len(), |i| start + i);
            non_empty(text, start..end)
        }
        // `password=\\server\share`: a bare value that starts with a
        // backslash, so backslashes do not end it.
        _ if backslashes > 0 => bare_value_until(text, at, BARE_VALUE_ENDS.trim_end_matches('\\')),
        _ => {
            let span = bare_value(text, at)?;
            // `Authorization: Basic xyz`: the scheme is not the secret.
            let key_is_auth = key_and_sep.to_ascii_lowercase().contains("authorization");
            let scheme = &text[span.clone()];
            if key_is_auth
                && ["basic", "bearer", "digest", "token", "negotiate"]
                    .iter()
                    .any(|s| scheme.eq_ignore_ascii_case(s))
            {
                let after = span.end + text[span.end..].len() - text[span.end..].trim_start().len();
                return bare_value(text, after);
            }
            Some(span)
        }
    }
}

/// The inside of a string whose opening quote (escaped by `level`
/// backslashes) ends just before `start`. The closing quote has `level`
/// backslashes before it modulo `2 * (level + 1)`: 0 of an even run for
/// plain JSON, 1 of a run of 4k+1 for JSON inside a JSON string. A string
/// with no closing quote is masked to the end of its line.
fn quoted_value(text: &str, start: usize, level: usize) -> Option<Range<usize>> {
    let bytes = text.as_bytes();
    let modulus = 2 * (level + 1);
    let mut run = 0usize;
    let mut i = start;
    while let Some(&b) = bytes.get(i) {
        if b == b'"' && run % modulus == level {
            return non_empty(text, start..i - level);
        }
        if b == b'\n' {
            break;
        }
        run = if b == b'\\' { run + 1 } else { 0 };
        i += 1;
    }
    non_empty(text, start..i)
}

/// An unquoted value: up to whitespace or a delimiter of the surrounding
/// syntax (JSON, query strings, headers, placeholders).
fn bare_value(text: &str, at: usize) -> Option<Range<usize>> {
    bare_value_until(text, at, BARE_VALUE_ENDS)
}

/// What ends an unquoted value besides whitespace. `<` and `>` keep a value
/// from running into a placeholder; the backslash ends one inside an
/// escaped JSON string.
const BARE_VALUE_ENDS: &str = ",;&\"'}])<>\\";

fn bare_value_until(text: &str, at: usize, ends: &str) -> Option<Range<usize>> {
    let rest = &text[at..];
    if rest.starts_with(['=', '{', '[']) || rest.starts_with("//") {
        return None; // `token == x`, a nested object, `scheme://`
    }
    let len = rest
        .find(|c: char| c.is_whitespace() || ends.contains(c))
        .unwrap_or(rest.len());
    non_empty(text, at..at + len)
}

fn non_empty(text: &str, span: Range<usize>) -> Option<Range<usize>> {
    let value = text.get(span.clone())?;
    let nothing = ["", "null", "none", "nil", "true", "false"];
    if nothing.iter().any(|n| value.trim().eq_ignore_ascii_case(n)) {
        return None;
    }
    // Already one of our placeholders: nothing left to hide.
    if PLACEHOLDER
        .find(value)
        .is_some_and(|m| m.range() == (0..value.len()))
    {
        return None;
    }
    Some(span)
}

/// Keeps the first of any overlapping spans (input sorted by start).
fn without_overlaps(spans: Vec<Range<usize>>) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::with_capacity(spans.len());
    for span in spans {
        if out.last().is_none_or(|last| span.start >= last.end) {
            out.push(span);
        }
    }
    out
}

fn find_emails(text: &str) -> Vec<Range<usize>> {
    whole_matches(&EMAIL, text)
}

fn find_cards(text: &str) -> Vec<Range<usize>> {
    CARD.find_iter(text)
        .filter(|m| isolated(text, &m.range(), b".-") && luhn_valid(m.as_str()))
        .map(|m| m.range())
        .collect()
}

/// The Luhn checksum every card number carries; ordinary numbers fail it
/// nine times in ten.
fn luhn_valid(number: &str) -> bool {
    let digits: Vec<u32> = number.chars().filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// True when `span` is not glued to more of the same: no letter, digit or
/// `_` on either side, and no `joiner` followed (or preceded) by a digit,
/// which would make it part of a longer number such as `1.2.3.4.5`.
fn isolated(text: &str, span: &Range<usize>, joiners: &[u8]) -> bool {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let before = span.start.checked_sub(1).map(|i| bytes[i]);
    let before2 = span.start.checked_sub(2).map(|i| bytes[i]);
    let after = bytes.get(span.end).copied();
    let after2 = bytes.get(span.end + 1).copied();
    let glued_before = before.is_some_and(|b| {
        word(b) || (joiners.contains(&b) && before2.is_some_and(|c| c.is_ascii_digit()))
    });
    let glued_after = after.is_some_and(|b| {
        word(b) || (joiners.contains(&b) && after2.is_some_and(|c| c.is_ascii_digit()))
    });
    !glued_before && !glued_after
}

fn find_ipv6(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    for m in IPV6_RUN.find_iter(text) {
        let mut span = m.range();
        // `iam::1234…` in an ARN, `std::fs` in code: glued to a word.
        let stripped_colon =
            text[span.clone()].starts_with(':') && !text[span.clone()].starts_with("::");
        if stripped_colon {
            span.start += 1;
        } else if span.start > 0 && is_word_byte(bytes[span.start - 1]) {
            continue;
        }
        if bytes.get(span.end).copied().is_some_and(is_word_byte) {
            continue;
        }
        while text[span.clone()].ends_with('.') {
            span.end -= 1;
        }
        if text[span.clone()].ends_with(':') && !text[span.clone()].ends_with("::") {
            span.end -= 1;
        }
        if let Some(found) = ipv6_within(text, span) {
            spans.push(found);
        }
    }
    spans
}

/// The address in `span`, or in `span` less a trailing `:port`.
fn ipv6_within(text: &str, span: Range<usize>) -> Option<Range<usize>> {
    let candidate = &text[span.clone()];
    let parses = |s: &str| {
        s.parse::<std::net::Ipv6Addr>()
            .is_ok_and(|a| !a.is_unspecified())
    };
    if parses(candidate) {
        return Some(span);
    }
    let cut = candidate.rfind(':')?;
    let shorter = &candidate[..cut];
    (!shorter.ends_with(':') && parses(shorter)).then(|| span.start..span.start + cut)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn find_ipv4(text: &str) -> Vec<Range<usize>> {
    let dotted = IPV4
        .find_iter(text)
        .filter(|m| isolated(text, &m.range(), b".") && !is_product_version(text, m.start()))
        .map(|m| m.range());
    let dashed = IPV4_DASHED_HOST
        .captures_iter(text)
        .filter_map(|c| c.get(1))
        .map(|m| m.range());
    let mut spans: Vec<Range<usize>> = dotted.chain(dashed).collect();
    spans.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
    without_overlaps(spans)
}

/// `Chrome/140.0.0.0`: a dotted quad right after a capitalised product
/// name that starts a token is a user-agent version, not an address. A
/// path such as `/hosts/10.0.0.1` is not exempt.
fn is_product_version(text: &str, start: usize) -> bool {
    let Some(before) = text[..start].strip_suffix('/') else {
        return false;
    };
    let product_len = before
        .bytes()
        .rev()
        .take_while(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        .count();
    let product = &before[before.len() - product_len..];
    let token_start = before[..before.len() - product_len]
        .chars()
        .next_back()
        .is_none_or(|c| c.is_whitespace() || "(\"',;".contains(c));
    product.starts_with(|c: char| c.is_ascii_uppercase()) && token_start
}

fn find_phones(text: &str) -> Vec<Range<usize>> {
    let mut spans: Vec<Range<usize>> = Vec::new();
    for (i, regex) in PHONES.iter().enumerate() {
        for m in regex.find_iter(text) {
            let digits = m.as_str().bytes().filter(u8::is_ascii_digit).count();
            let plausible = match i {
                0 => (8..=15).contains(&digits),
                3 => (9..=12).contains(&digits),
                _ => true,
            };
            if plausible && isolated(text, &m.range(), b".-/:") {
                spans.push(m.range());
            }
        }
    }
    spans.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
    without_overlaps(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(text: &str) -> (String, MaskTable) {
        let mut table = MaskTable::new();
        let out = table.mask(text);
        assert_eq!(table.unmask(&out), text, "round trip of {text:?}");
        (out, table)
    }

    fn assert_masks(text: &str, secret: &str, placeholder: &str) {
        let (out, _) = masked(text);
        assert!(!out.contains(secret), "{secret:?} survived in {out:?}");
        assert!(
            out.contains(placeholder),
            "{placeholder} missing in {out:?}"
        );
    }

    fn assert_untouched(text: &str) {
        let (out, table) = masked(text);
        assert_eq!(
            out,
            text,
            "masked something: {:?}",
            table.originals().collect::<Vec<_>>()
        );
    }

    #[test]
    fn all_patterns_compile() {
        for regex in [
            &*PLACEHOLDER,
            &*PLACEHOLDER_SHAPED,
            &*PEM_BLOCK,
            &*URL_CREDENTIALS,
            &*TOKEN_SHAPES,
            &*BEARER,
            &*SECRET_KEY,
            &*SECRET_FLAG,
            &*USER_PASS_FLAG,
            &*IPV4_DASHED_HOST,
            &*EMAIL,
            &*CARD,
            &*IPV6_RUN,
            &*IPV4,
        ] {
            assert!(!regex.as_str().is_empty());
        }
        assert_eq!(PHONES.len(), 4);
    }

    #[test]
    fn aws_access_key_ids_are_secrets() {
        assert_masks(
            "key AKIAIOSFODNN7EXAMPLE used",
            "AKIAIOSFODNN7EXAMPLE",
            "<SECRET_1>",
        );
        assert_masks(
            r#""accessKeyId":"ASIA5FLZVX4OI4ZDQJOL""#,
            "ASIA5FLZVX4OI4ZDQJOL",
            "<SECRET_1>",
        );
    }

    #[test]
    fn aws_secret_keys_after_key_names_are_secrets() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        for text in [
            format!("aws_secret_access_key = {secret}"),
            format!(r#"{{"SecretAccessKey": "{secret}", "x": 1}}"#),
            format!("secretAccessKey: {secret}\n"),
        ] {
            let (out, _) = masked(&text);
            assert!(!out.contains(secret), "{out}");
            assert!(out.to_lowercase().contains("secret"), "key kept: {out}");
        }
    }

    #[test]
    fn jwts_and_bearer_tokens_are_secrets() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_masks(&format!("jwt {jwt} end"), jwt, "<SECRET_1>");
        assert_masks(
            &format!("Authorization: Bearer {jwt}"),
            jwt,
            "Bearer <SECRET_1>",
        );
        assert_masks(
            "Authorization: Bearer abc123def456ghi",
            "abc123def456ghi",
            "Bearer <SECRET_1>",
        );
        assert_masks(
            "Authorization: Basic dXNlcjpwYXNz",
            "dXNlcjpwYXNz",
            "Basic <SECRET_1>",
        );
        assert_untouched("the bearer authentication scheme");
    }

    #[test]
    fn github_and_slack_tokens_are_secrets() {
        let ghp = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
        assert_masks(&format!("token {ghp}"), ghp, "<SECRET_1>");
        let pat = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCD";
        assert_masks(&format!("using {pat}."), pat, "<SECRET_1>");
        let gho = "gho_16C7e42F292c6912E7710c838347Ae178B4a";
        assert_masks(gho, gho, "<SECRET_1>");
        let slack = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
        assert_masks(&format!("slack {slack}"), slack, "<SECRET_1>");
    }

    #[test]
    fn pem_private_key_blocks_are_secrets() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn\n/ygWep4PAtGoRBh4e5\n-----END RSA PRIVATE KEY-----";
        assert_masks(
            &format!("key:\n{pem}\nafter"),
            "MIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn",
            "key:\n<SECRET_1>\nafter",
        );
        // Inside a JSON string, with escaped newlines.
        let escaped = r#"{"key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"}"#;
        assert_masks(escaped, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "<SECRET_1>");
        // Cut short by a truncated log line: still masked to the end.
        assert_masks(
            "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1",
            "MHcCAQEEIIrYSSNQFaA2Hwf1",
            "<SECRET_1>",
        );
    }

    #[test]
    fn key_value_secrets_mask_the_value_and_keep_the_key() {
        let cases = [
            (
                "password=hunter2 user=bob",
                "hunter2",
                "password=<SECRET_1> user=bob",
            ),
            (
                r#"{"password": "hunter2", "user": "bob"}"#,
                "hunter2",
                r#"{"password": "<SECRET_1>", "user": "bob"}"#,
            ),
            (
                r#"{"password":"a\"b c","n":1}"#,
                r#"a\"b c"#,
                r#"{"password":"<SECRET_1>","n":1}"#,
            ),
            (
                r#""{\"db_password\":\"s3cr\\\"et\",\"x\":1}""#,
                "s3cr",
                r#""{\"db_password\":\"<SECRET_1>\",\"x\":1}""#,
            ),
            (
                "client_secret: abcd1234",
                "abcd1234",
                "client_secret: <SECRET_1>",
            ),
            (
                "GET /cb?code=1&access_token=tok999&x=2",
                "tok999",
                "access_token=<SECRET_1>&x=2",
            ),
            ("X-Api-Key: k-123456", "k-123456", "X-Api-Key: <SECRET_1>"),
            ("api_key='abc def'", "abc def", "api_key='<SECRET_1>'"),
            (
                "mysql --password s3cr3t -u root",
                "s3cr3t",
                "--password <SECRET_1> -u",
            ),
            ("TOKEN=xyz", "xyz", "TOKEN=<SECRET_1>"),
            (
                "Server=db;Uid=sa;Pwd=Passw0rd!;",
                "Passw0rd!",
                "Pwd=<SECRET_1>;",
            ),
            (
                "curl -u admin:hunter2 https://x",
                "hunter2",
                "curl -u <SECRET_1> https",
            ),
        ];
        for (text, secret, expected) in cases {
            let (out, _) = masked(text);
            assert!(!out.contains(secret), "{secret:?} survived in {out:?}");
            assert!(out.contains(expected), "{out:?} lacks {expected:?}");
        }
    }

    #[test]
    fn key_value_lookalikes_are_left_alone() {
        for text in [
            r#"{"minimumPasswordLength": 14, "passwordReusePrevention": 24}"#,
            r#"{"passwordPolicy": {"maxAge": 90}, "tokenType": "Bearer"}"#,
            r#"{"password": null, "secret": false, "token": ""}"#,
            r#"{"eventType": "user.account.reset_password", "displayMessage": "Reset password"}"#,
            "if token == other {",
            "mysql -u root -p",
        ] {
            assert_untouched(text);
        }
    }

    #[test]
    fn connection_strings_lose_their_credentials_before_emails_are_seen() {
        for scheme in [
            "postgres",
            "postgresql",
            "mysql",
            "mongodb+srv",
            "redis",
            "amqp",
        ] {
            let text = format!("dsn {scheme}://app:S3cr3t@db.example.com:5432/payments ok");
            let (out, table) = masked(&text);
            assert_eq!(
                out,
                format!("dsn {scheme}://<SECRET_1>@db.example.com:5432/payments ok")
            );
            assert_eq!(table.len(), 1, "no <EMAIL> for S3cr3t@db.example.com");
        }
        assert_masks(
            "redis://:onlypass@10.1.2.3:6379",
            "onlypass",
            "redis://<SECRET_1>@<IP_1>:6379",
        );
        assert_masks("mongodb://u:p@ss@h/db", "p@ss", "mongodb://<SECRET_1>@h/db");
        // A port and a path holding an `@` are not credentials.
        assert_masks(
            "https://host:8443/users/bob@x.io",
            "bob@x.io",
            "https://host:8443/users/<EMAIL_1>",
        );
    }

    #[test]
    fn emails_are_masked() {
        assert_masks(
            "login by alice.smith+ops@example.co.uk failed",
            "alice.smith",
            "login by <EMAIL_1> failed",
        );
        assert_masks(
            "arn:aws:sts::123456789012:assumed-role/Admin/bob@corp.com",
            "bob@corp.com",
            "Admin/<EMAIL_1>",
        );
        assert_masks(
            "/users/carol%40example.com/keys",
            "carol%40example.com",
            "/users/<EMAIL_1>/keys",
        );
    }

    #[test]
    fn ipv4_addresses_are_masked() {
        assert_masks(
            "from 203.0.113.50 to 10.0.0.1",
            "203.0.113.50",
            "from <IP_1> to <IP_2>",
        );
        assert_masks("cidr 10.0.0.0/8", "10.0.0.0", "cidr <IP_1>/8");
        assert_masks(
            "http://192.168.1.1:8080/x",
            "192.168.1.1",
            "http://<IP_1>:8080/x",
        );
        assert_masks("GET /hosts/10.0.0.1 HTTP/1.1", "10.0.0.1", "/hosts/<IP_1>");
        assert_masks(
            "node ip-10-0-12-7.ec2.internal",
            "10-0-12-7",
            "node ip-<IP_1>.ec2.internal",
        );
    }

    #[test]
    fn ipv6_addresses_are_masked_in_full_and_compressed_forms() {
        assert_masks(
            "ip 2601:140:9702:ee80:9049:1f55:0000:e970 x",
            "2601:140",
            "ip <IP_1> x",
        );
        assert_masks("src=fe80::1ff:fe23:4567:890a.", "fe80::", "src=<IP_1>.");
        assert_masks("[2001:db8::1]:443", "2001:db8::1", "[<IP_1>]:443");
        assert_masks(
            "peer ::ffff:192.0.2.128 closed",
            "192.0.2.128",
            "peer <IP_1> closed",
        );
        assert_masks("ip:2001:db8::7 end", "2001:db8::7", "ip:<IP_1> end");
        assert_masks(
            "2001:db8:0:0:0:0:0:1:443 refused",
            "2001:db8",
            "<IP_1>:443 refused",
        );
        assert_masks("loopback ::1", "::1", "loopback <IP_1>");
    }

    #[test]
    fn phone_numbers_are_masked() {
        for (text, expected) in [
            ("call +1 (555) 123-4567 now", "call <PHONE_1> now"),
            ("sms to +44 20 7946 0958.", "sms to <PHONE_1>."),
            (
                r#""phoneNumber": "+1234567890""#,
                r#""phoneNumber": "<PHONE_1>""#,
            ),
            ("office (555) 123-4567", "office <PHONE_1>"),
            ("cell 555-123-4567", "cell <PHONE_1>"),
            ("cell 555.123.4567", "cell <PHONE_1>"),
            ("tel 020 7946 0958", "tel <PHONE_1>"),
            ("mobile 07700 900123", "mobile <PHONE_1>"),
        ] {
            let (out, _) = masked(text);
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn card_numbers_are_masked_only_when_luhn_valid() {
        for card in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
            "378282246310005",
        ] {
            assert_masks(
                &format!("card {card} charged"),
                card,
                "card <CARD_1> charged",
            );
        }
        // Same shapes, wrong checksum: ordinary numbers.
        assert_untouched("order 4111111111111112 and 5500-0000-0000-0005");
    }

    #[test]
    fn false_positives_survive() {
        for text in [
            "at 12:30:45 and 2026-11-29T14:00:00.123Z and 2026-11-29 14:00:00",
            "unix 1764424800 nanos 1764424800000000000 ms 1764424800000",
            "arn:aws:iam::123456789012:role/Admin arn:aws:s3:::my-bucket/key",
            "arn:aws:lambda:us-west-2:123456789012:layer:malicious-layer:1",
            "system:serviceaccount:kube-system:default pod nginx-7c5b8d9f4-x2x9z",
            "k8s:default/pods/nginx/exec namespace kube-system",
            "request 2db6a7b5-876c-4995-8258-e6f09d9ef934 id 12345678-1234-1234-1234-123456789012",
            "version 1.2.3 v1.2.3.4 kubectl/v1.25.4 aws-cli/2.13.5 Python/3.11.4",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/140.0.0.0 Safari/537.36",
            "oid 1.3.6.1.4.1.311 and 1.2.3.4.5",
            "port :8080 localhost:8443 count 42 of 100, size 3.5",
            "mac 02:fc:9a:8a:db:c3 std::fmt::Display",
            "account 123456789012 requestID 9876543210 log 90020251001053916537654000000000000001223372122475524001",
            "date 2026-11-29 offset +01:00 tz +0530 and 1e+10",
            "the bearer of bad news",
        ] {
            assert_untouched(text);
        }
    }

    #[test]
    fn same_original_gets_the_same_placeholder_within_a_table() {
        let mut table = MaskTable::new();
        let a = table.mask("bob@example.com from 10.0.0.1");
        let b = table.mask("10.0.0.1 again, then carol@example.com and bob@example.com");
        assert_eq!(a, "<EMAIL_1> from <IP_1>");
        assert_eq!(b, "<IP_1> again, then <EMAIL_2> and <EMAIL_1>");
        assert_eq!(table.len(), 3);
        let pairs: Vec<_> = table.originals().collect();
        assert_eq!(
            pairs,
            [
                ("<EMAIL_1>", "bob@example.com"),
                ("<IP_1>", "10.0.0.1"),
                ("<EMAIL_2>", "carol@example.com")
            ]
        );
        // A fresh table starts again from 1: numbering is per request.
        assert_eq!(MaskTable::new().mask("carol@example.com"), "<EMAIL_1>");
    }

    #[test]
    fn unmask_restores_known_placeholders_and_leaves_unknown_ones() {
        let mut table = MaskTable::new();
        let out = table.mask("bob@example.com");
        assert_eq!(out, "<EMAIL_1>");
        let answer = "<EMAIL_1> did it, not <EMAIL_9> or <IP_1> or <EMAIL_OVERFLOW>";
        assert_eq!(
            table.unmask(answer),
            "bob@example.com did it, not <EMAIL_9> or <IP_1> or <EMAIL_OVERFLOW>"
        );
    }

    #[test]
    fn forged_placeholders_in_input_cannot_reveal_other_originals() {
        let mut table = MaskTable::new();
        let first = table.mask("login by alice@example.com");
        assert_eq!(first, "login by <EMAIL_1>");
        // An attacker writes placeholder-shaped text into a log entry.
        let hostile = "note: <EMAIL_1> < ip_2 > <SECRET_OVERFLOW> from 10.0.0.9";
        let second = table.mask(hostile);
        assert_eq!(
            second,
            "note: <LITERAL_1> <LITERAL_2> <LITERAL_3> from <IP_1>"
        );
        // The model echoes everything; the caller sees exactly what was
        // written, and alice's address appears only where she really was.
        let echoed = table.unmask(&format!("{first} | {second}"));
        assert_eq!(echoed, format!("login by alice@example.com | {hostile}"));
        assert_eq!(echoed.matches("alice@example.com").count(), 1);
    }

    #[test]
    fn every_placeholder_in_masked_text_belongs_to_the_table() {
        let mut table = MaskTable::new();
        let out = table.mask("<IP_1> <EMAIL_2>x@y.io<CARD_3> 10.1.1.1<IP_1>");
        for m in PLACEHOLDER.find_iter(&out) {
            assert!(
                table.by_placeholder.contains_key(m.as_str()),
                "{} in {out}",
                m.as_str()
            );
        }
    }

    #[test]
    fn a_span_holding_an_earlier_placeholder_stores_the_raw_original() {
        // The URL pass masks the credentials first; the key-value pass then
        // takes the whole quoted value. Unmask must give back the raw text.
        let text = r#"{"connection_string": "postgres://u:pw@db/x"}"#;
        let (out, table) = masked(text);
        assert_eq!(out, r#"{"connection_string": "<SECRET_2>"}"#);
        assert!(table
            .originals()
            .all(|(_, original)| !original.contains('<')));
    }

    #[test]
    fn the_table_is_bounded_and_overflow_never_leaks() {
        let mut table = MaskTable::new();
        let text: String = (0..MASK_TABLE_ENTRIES_MAX + 10)
            .map(|i| format!("user{i}@example.com "))
            .collect();
        let out = table.mask(&text);
        assert_eq!(table.len(), MASK_TABLE_ENTRIES_MAX);
        assert!(table.overflowed());
        assert!(!out.contains("@example.com"), "an overflowed email leaked");
        assert_eq!(out.matches("<EMAIL_OVERFLOW>").count(), 10);
        // Overflowed originals stay hidden after unmask too.
        let back = table.unmask(&out);
        assert!(back.contains("user0@example.com"));
        assert!(!back.contains(&format!("user{}@example.com", MASK_TABLE_ENTRIES_MAX)));
        // Even an original seen before overflow keeps its placeholder.
        assert_eq!(table.mask("user0@example.com"), "<EMAIL_1>");
        assert_eq!(table.mask("10.9.9.9"), "<IP_OVERFLOW>");
    }

    #[test]
    fn the_byte_limit_also_overflows() {
        let mut table = MaskTable::new();
        let big = format!("password={}", "x".repeat(MASK_TABLE_BYTES_MAX + 1));
        let out = table.mask(&big);
        assert_eq!(out, "password=<SECRET_OVERFLOW>");
        assert!(table.is_empty());
        assert_eq!(table.mask("a@b.io"), "<EMAIL_OVERFLOW>", "stays full");
    }

    #[test]
    fn random_text_round_trips_and_never_panics() {
        use rand::{Rng, SeedableRng};
        let pieces = [
            "<EMAIL_1>",
            "<",
            ">",
            "_1",
            "@",
            "a@b.io",
            "10.0.0.1",
            "::",
            ":",
            "fe80::1",
            ".",
            "-",
            "+1 555 123 4567",
            "4111111111111111",
            "password=",
            "\"",
            "\\\"",
            "\\",
            "'",
            "token: ",
            "Bearer ",
            "eyJhbGciOi.eyJzdWIiOi.x",
            "AKIAIOSFODNN7EXAMPLE",
            "postgres://u:p@h/d",
            "-----BEGIN PRIVATE KEY-----",
            " ",
            "\n",
            "é",
            "日本",
            "0",
            "9",
            "x",
            "{",
            "}",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x1ab5);
        for _ in 0..3000 {
            let n = rng.gen_range(0..24);
            let text: String = (0..n)
                .map(|_| pieces[rng.gen_range(0..pieces.len())])
                .collect();
            let mut table = MaskTable::new();
            let out = table.mask(&text);
            assert_eq!(table.unmask(&out), text, "masked: {out:?}");
            for m in PLACEHOLDER.find_iter(&out) {
                assert!(
                    table.by_placeholder.contains_key(m.as_str()),
                    "{text:?} -> {out:?}"
                );
            }
        }
    }

    /// Real records (see tests/data/analysis/mask/README.md): no email or IP
    /// of the original survives masking, and unmask restores the exact text.
    #[test]
    fn real_records_lose_every_email_and_ip_and_round_trip() {
        let samples = [
            include_str!("../../tests/data/analysis/mask/panther_cloudtrail_lambda.json"),
            include_str!("../../tests/data/analysis/mask/panther_okta_support_access.json"),
            include_str!("../../tests/data/analysis/mask/panther_gcp_vpc_sc.json"),
            include_str!("../../tests/data/analysis/mask/panther_eks_anonymous.json"),
            include_str!("../../tests/data/analysis/mask/panther_auth0_leaked_password_ipv6.json"),
            include_str!("../../tests/data/analysis/mask/panther_docusign_phone.json"),
            include_str!("../../tests/data/analysis/mask/otrf_cloudtrail_ec2_proxy.json"),
            include_str!(
                "../../tests/data/analysis/mask/otrf_cloudtrail_assume_role_session_token.json"
            ),
            include_str!("../../tests/data/analysis/mask/otrf_aad_audit_update_application.json"),
        ];
        let ipv4 = Regex::new(r"\b\d{1,3}(?:\.\d{1,3}){3}\b").unwrap();
        let email = Regex::new(r"[\w.+-]+@[\w-]+\.[\w.-]+").unwrap();
        for sample in samples {
            let (out, table) = masked(sample);
            let originals: Vec<&str> = table.originals().map(|(_, o)| o).collect();
            for m in email.find_iter(sample) {
                assert!(!out.contains(m.as_str()), "email {} survived", m.as_str());
            }
            for m in ipv4.find_iter(sample) {
                let found = m.as_str();
                if is_product_version(sample, m.start()) {
                    continue; // Chrome/140.0.0.0 in a user agent
                }
                assert!(!out.contains(found), "ip {found} survived in {out}");
                assert!(originals.contains(&found));
            }
            // Shapes the real records carry, asserted where they occur.
            for (shape, kind) in [
                ("2601:140:9702:ee80:9049:1f55:0000:e970", "<IP_"),
                ("AKIAI123456789EXAMPLE", "<SECRET_"),
                ("ASIA5FLZVX4OI4ZDQJOL", "<SECRET_"),
                ("+1234567890", "<PHONE_"),
                ("IQoJb3JpZ2luX2VjEKn", "<SECRET_"),
            ] {
                if sample.contains(shape) {
                    assert!(!out.contains(shape), "{shape} survived");
                    assert!(out.contains(kind));
                }
            }
            // What the model needs survives: ARNs, event names, times.
            for keep in [
                "arn:aws:",
                "eventName",
                "2019-01-01T00:00:00Z",
                "user.session",
                "system:anonymous",
            ] {
                assert_eq!(sample.contains(keep), out.contains(keep), "{keep} lost");
            }
        }
    }
}
