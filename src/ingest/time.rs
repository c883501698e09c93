//! The time notations native logs use, to Unix nanoseconds.
//!
//! - RFC 3339 (`2020-09-14T00:44:23.000Z`): CloudTrail, k8s, Okta, GCP;
//! - the same without a zone, with a space or a `T` (`2022-11-29 00:09:04.38`):
//!   log pipelines such as Panther normalise times so, always in UTC;
//! - epoch milliseconds (GitHub's `@timestamp` and `created_at`);
//! - epoch seconds with a fraction (auditd's `audit(1490137971.011:50406)`).

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::RecordError;

const NANOS_PER_MILLI: i128 = 1_000_000;
const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// A time string as RFC 3339, or as a zone-less UTC date-time.
pub(crate) fn parse_text(text: &str) -> Result<i64, String> {
    let time = match OffsetDateTime::parse(text, &Rfc3339) {
        Ok(time) => time,
        Err(rfc_error) => {
            zoneless_as_utc(text).ok_or_else(|| format!("expected RFC 3339: {rfc_error}"))?
        }
    };
    i64::try_from(time.unix_timestamp_nanos()).map_err(|_| "out of range".to_string())
}

/// `YYYY-MM-DD HH:MM:SS[.fraction]` or with `T`, no zone: read as UTC.
fn zoneless_as_utc(text: &str) -> Option<OffsetDateTime> {
    let bytes = text.as_bytes();
    if bytes.len() < 19 || !matches!(bytes[10], b' ' | b'T' | b't') {
        return None;
    }
    // Byte 10 is ASCII, so 10 and 11 are character boundaries.
    let has_zone = text.ends_with(['Z', 'z']) || text[11..].contains(['+', '-']);
    if has_zone {
        return None;
    }
    let candidate = format!("{}T{}Z", &text[..10], &text[11..]);
    OffsetDateTime::parse(&candidate, &Rfc3339).ok()
}

/// Epoch milliseconds to nanoseconds; fractional milliseconds are kept to
/// the nanosecond.
pub(crate) fn from_millis(millis: &serde_json::Number) -> Result<i64, String> {
    let nanos = if let Some(ms) = millis.as_i64() {
        i128::from(ms) * NANOS_PER_MILLI
    } else if let Some(ms) = millis.as_f64() {
        if !ms.is_finite() || ms.abs() > 1e15 {
            return Err("out of range".into());
        }
        // Whole and fractional milliseconds apart: ms * 1e6 as one float
        // would lose the nanoseconds of a present-day time.
        (ms.trunc() as i128) * NANOS_PER_MILLI + (ms.fract() * 1e6).round() as i128
    } else {
        return Err("out of range".into());
    };
    i64::try_from(nanos).map_err(|_| "out of range".to_string())
}

/// `SECONDS.FRACTION` (auditd) to nanoseconds, exactly: no float rounding.
pub(crate) fn from_seconds_text(text: &str) -> Option<i64> {
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    if seconds.is_empty()
        || !seconds.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > 9
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let seconds: i64 = seconds.parse().ok()?;
    let fraction_nanos: i64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse::<i64>().ok()? * 10i64.pow(9 - fraction.len() as u32)
    };
    seconds
        .checked_mul(NANOS_PER_SECOND)?
        .checked_add(fraction_nanos)
}

/// The first of `fields` present in `record`, as a time: strings as text,
/// numbers as epoch milliseconds when `numbers_are_millis`. Absent (or
/// null) in all of them is [`RecordError::MissingTime`] naming `expected`.
pub(crate) fn first_time(
    record: &serde_json::Map<String, Value>,
    fields: &[&'static str],
    numbers_are_millis: bool,
    expected: &'static str,
) -> Result<i64, RecordError> {
    for &field in fields {
        let bad = |value: String, reason: String| RecordError::BadTime {
            field,
            value,
            reason,
        };
        match record.get(field) {
            None | Some(Value::Null) => continue,
            Some(Value::String(text)) => {
                return parse_text(text).map_err(|reason| bad(text.clone(), reason))
            }
            Some(Value::Number(n)) if numbers_are_millis => {
                return from_millis(n).map_err(|reason| bad(n.to_string(), reason))
            }
            Some(other) => {
                return Err(RecordError::WrongType {
                    field,
                    expected: if numbers_are_millis {
                        "a time string or epoch milliseconds"
                    } else {
                        "a time string"
                    },
                    found: super::record::kind(other),
                })
            }
        }
    }
    Err(RecordError::MissingTime { expected })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_zoneless_utc_agree() {
        let want = 1_600_044_263_000_000_000;
        assert_eq!(parse_text("2020-09-14T00:44:23.000Z"), Ok(want));
        assert_eq!(parse_text("2020-09-14T02:44:23+02:00"), Ok(want));
        assert_eq!(parse_text("2020-09-14 00:44:23"), Ok(want));
        assert_eq!(parse_text("2020-09-14T00:44:23"), Ok(want));
        assert_eq!(parse_text("2020-09-14 00:44:23.000000000"), Ok(want));
        assert_eq!(
            parse_text("2022-11-29 00:09:04.38"),
            Ok(1_669_680_544_380_000_000)
        );
    }

    #[test]
    fn non_times_are_refused_with_a_reason() {
        for text in [
            "",
            "redacted",
            "2020-09-14",
            "2020-13-01T00:00:00Z",
            "ééééééééééééééééééééé",
        ] {
            assert!(parse_text(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn millis_and_seconds() {
        let n = serde_json::Number::from(1_621_305_118_553i64);
        assert_eq!(from_millis(&n), Ok(1_621_305_118_553_000_000));
        let f = serde_json::Number::from_f64(1_621_305_118_553.5).unwrap();
        assert_eq!(from_millis(&f), Ok(1_621_305_118_553_500_000));
        let huge = serde_json::Number::from_f64(1e300).unwrap();
        assert!(from_millis(&huge).is_err());
        assert_eq!(
            from_seconds_text("1490137971.011"),
            Some(1_490_137_971_011_000_000)
        );
        assert_eq!(
            from_seconds_text("1490137971"),
            Some(1_490_137_971_000_000_000)
        );
        for bad in [
            "",
            ".5",
            "1.2.3",
            "-1.0",
            "1.0000000001",
            "99999999999999999999.1",
        ] {
            assert_eq!(from_seconds_text(bad), None, "{bad:?}");
        }
    }
}
