//! What every format shares once it has read its native fields: cleaning
//! strings for identifier fields, the idempotency key, and `details`
//! trimmed to the ledger's limit.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{Format, RecordError};
use crate::ledger::event::{canonical_details, Actor, Event, Outcome};
use crate::limits::{
    DETAILS_BYTES_MAX, FIELD_BYTES_MAX, INGEST_DROPPED_NAMES_MAX, INGEST_DROPPED_NAME_BYTES_MAX,
};

/// Where the names of dropped top-level fields are listed in `details`.
pub const DROPPED_KEY: &str = "_ironlog_dropped";

/// Ends a string cut to fit a field.
const TRUNCATION_MARKER: char = '…';

/// Stands for a control character in an identifier field.
const CONTROL_REPLACEMENT: char = '\u{FFFD}';

/// Actor id when a record names nobody (e.g. an unauthenticated request
/// with no identity block at all).
pub const UNKNOWN_ACTOR: &str = "unknown";

/// A format's reading of one record, before clean-up.
pub(crate) struct Draft<'a> {
    pub time_unix_nanos: i64,
    pub actor_id: Option<&'a str>,
    pub actor_kind: Option<&'a str>,
    pub actor_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub action: String,
    pub resource: String,
    pub outcome: Outcome,
    /// The source's own event id, if the record has one.
    pub native_id: Option<String>,
}

/// The validated event for `record` as read into `draft`: fields cleaned,
/// idempotency key set, `details` = `record` trimmed to fit.
pub(crate) fn finish(
    format: Format,
    draft: Draft<'_>,
    record: &Map<String, Value>,
) -> Result<Event, RecordError> {
    let idempotency_key = Some(idempotency_key(format, draft.native_id.as_deref(), record));
    let event = Event {
        time_unix_nanos: draft.time_unix_nanos,
        actor: Actor {
            id: draft
                .actor_id
                .and_then(optional)
                .unwrap_or_else(|| UNKNOWN_ACTOR.to_string()),
            kind: draft.actor_kind.and_then(optional),
            ip: draft.actor_ip.and_then(optional),
            user_agent: draft.user_agent.and_then(optional),
        },
        action: field(&draft.action),
        resource: optional(&draft.resource).unwrap_or_else(|| format.name().to_string()),
        outcome: draft.outcome,
        source: format.name().to_string(),
        details: trim_details(record.clone()),
        idempotency_key,
    };
    event.validate()?;
    Ok(event)
}

/// `text` fit for an identifier field: control characters replaced, and
/// cut on a character boundary with a marker when longer than the field
/// limit.
pub(crate) fn field(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_control() {
                CONTROL_REPLACEMENT
            } else {
                c
            }
        })
        .collect();
    if out.len() > FIELD_BYTES_MAX {
        let keep = floor_char_boundary(&out, FIELD_BYTES_MAX - TRUNCATION_MARKER.len_utf8());
        out.truncate(keep);
        out.push(TRUNCATION_MARKER);
    }
    out
}

/// [`field`] for an optional value: blank and placeholder values (`-`, `?`,
/// `null`, which logs write for "none") mean absent.
pub(crate) fn optional(text: &str) -> Option<String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || matches!(trimmed, "-" | "?" | "null" | "(null)" | "(none)") {
        return None;
    }
    Some(field(text))
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// `"{format}:{id}"`; without a usable id, `"{format}:sha256:{hex}"` of the
/// record's canonical JSON (so the same record always gets the same key).
pub(crate) fn idempotency_key(
    format: Format,
    native_id: Option<&str>,
    record: &Map<String, Value>,
) -> String {
    let prefix = format.name();
    match native_id.filter(|id| !id.trim().is_empty()) {
        Some(id) => {
            let key = format!("{prefix}:{id}");
            if key.len() <= FIELD_BYTES_MAX && !key.chars().any(char::is_control) {
                key
            } else {
                format!(
                    "{prefix}:sha256:{}",
                    hex::encode(Sha256::digest(id.as_bytes()))
                )
            }
        }
        None => {
            let canonical = canonical_details(record);
            format!(
                "{prefix}:sha256:{}",
                hex::encode(Sha256::digest(canonical.as_bytes()))
            )
        }
    }
}

/// `details` within [`DETAILS_BYTES_MAX`] as canonical JSON: the largest
/// top-level fields are dropped first (ties by name, so the result is
/// deterministic) and their names listed under [`DROPPED_KEY`].
pub(crate) fn trim_details(mut details: Map<String, Value>) -> Map<String, Value> {
    let mut total = canonical_details(&details).len();
    if total <= DETAILS_BYTES_MAX {
        return details;
    }
    // Size of each member as it appears in the canonical text, with its comma.
    let mut members: Vec<(usize, String)> = details
        .iter()
        .map(|(k, v)| {
            (
                json_len(&Value::String(k.clone())) + 1 + json_len(v) + 1,
                k.clone(),
            )
        })
        .collect();
    members.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut members = members.into_iter();
    let mut dropped = Vec::new();
    loop {
        // Drop by estimate, then measure: the list of names adds bytes too.
        let excess = total.saturating_sub(DETAILS_BYTES_MAX);
        let mut freed = 0;
        while freed < excess {
            let Some((size, name)) = members.next() else {
                break;
            };
            details.remove(&name);
            freed += size;
            dropped.push(name);
        }
        details.insert(DROPPED_KEY.to_string(), dropped_list(&dropped));
        total = canonical_details(&details).len();
        if total <= DETAILS_BYTES_MAX || members.len() == 0 {
            return details;
        }
        details.remove(DROPPED_KEY);
    }
}

/// Names of dropped fields, bounded in count and length.
fn dropped_list(dropped: &[String]) -> Value {
    let shown = if dropped.len() > INGEST_DROPPED_NAMES_MAX {
        INGEST_DROPPED_NAMES_MAX - 1
    } else {
        dropped.len()
    };
    let mut names: Vec<Value> = dropped[..shown]
        .iter()
        .map(|name| {
            let mut name = name.clone();
            name.truncate(floor_char_boundary(
                &name,
                INGEST_DROPPED_NAME_BYTES_MAX.min(name.len()),
            ));
            Value::String(name)
        })
        .collect();
    if shown < dropped.len() {
        names.push(Value::String(format!("+{} more", dropped.len() - shown)));
    }
    Value::Array(names)
}

fn json_len(value: &Value) -> usize {
    serde_json::to_string(value).map_or(0, |s| s.len())
}

/// The JSON type of `value`, for error messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `value` as an object, or the error every format gives for anything else.
pub(crate) fn object(value: &Value) -> Result<&Map<String, Value>, RecordError> {
    value
        .as_object()
        .ok_or(RecordError::NotObject { found: kind(value) })
}

/// The non-empty string at `path` (object keys), if there is one.
pub(crate) fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// A required string field: absent is `MissingField` (with `why` it is
/// needed), another type is `WrongType`.
pub(crate) fn required_str<'a>(
    record: &'a Map<String, Value>,
    field: &'static str,
    why: &'static str,
) -> Result<&'a str, RecordError> {
    match record.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            Err(RecordError::MissingField { field, why })
        }
        Some(other) => Err(RecordError::WrongType {
            field,
            expected: "a string",
            found: kind(other),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn long_fields_are_cut_on_a_char_boundary_with_a_marker() {
        let long = "é".repeat(FIELD_BYTES_MAX);
        let cut = field(&long);
        assert!(cut.len() <= FIELD_BYTES_MAX, "{}", cut.len());
        assert!(cut.ends_with(TRUNCATION_MARKER));
        assert!(cut.starts_with("éé"));
        let exact = "x".repeat(FIELD_BYTES_MAX);
        assert_eq!(field(&exact), exact, "at the limit nothing is cut");
    }

    #[test]
    fn control_characters_are_replaced() {
        assert_eq!(field("a\nb\u{7}c"), "a\u{FFFD}b\u{FFFD}c");
        assert_eq!(optional("  "), None);
        assert_eq!(optional("?"), None);
        assert_eq!(optional("x\t"), Some("x\u{FFFD}".to_string()));
    }

    #[test]
    fn small_details_are_kept_whole() {
        let record = json!({"a": 1, "b": {"c": "d"}});
        let map = record.as_object().unwrap().clone();
        assert_eq!(trim_details(map.clone()), map);
    }

    #[test]
    fn the_largest_fields_are_dropped_first_and_named() {
        let record = json!({
            "small": "s",
            "big": "x".repeat(DETAILS_BYTES_MAX),
            "bigger": "y".repeat(DETAILS_BYTES_MAX + 10),
            "medium": "z".repeat(1000),
        });
        let trimmed = trim_details(record.as_object().unwrap().clone());
        assert!(canonical_details(&trimmed).len() <= DETAILS_BYTES_MAX);
        assert_eq!(trimmed[DROPPED_KEY], json!(["bigger", "big"]));
        assert_eq!(trimmed["small"], "s");
        assert_eq!(trimmed["medium"], "z".repeat(1000));
    }

    #[test]
    fn many_small_fields_still_fit_with_a_bounded_list() {
        let mut map = Map::new();
        for i in 0..20_000 {
            map.insert(format!("field-{i:05}"), json!(i));
        }
        let trimmed = trim_details(map);
        assert!(canonical_details(&trimmed).len() <= DETAILS_BYTES_MAX);
        let list = trimmed[DROPPED_KEY].as_array().unwrap();
        assert_eq!(list.len(), INGEST_DROPPED_NAMES_MAX);
        assert!(list.last().unwrap().as_str().unwrap().ends_with("more"));
    }

    #[test]
    fn keys_come_from_the_native_id_or_the_record_hash() {
        let record = json!({"b": 2, "a": 1});
        let map = record.as_object().unwrap();
        assert_eq!(idempotency_key(Format::Okta, Some("abc"), map), "okta:abc");
        let hashed = idempotency_key(Format::Okta, None, map);
        // sha256 of the canonical text {"a":1,"b":2}
        assert_eq!(
            hashed,
            format!(
                "okta:sha256:{}",
                hex::encode(Sha256::digest(br#"{"a":1,"b":2}"#))
            )
        );
        let long = "i".repeat(FIELD_BYTES_MAX);
        let key = idempotency_key(Format::Okta, Some(&long), map);
        assert!(key.starts_with("okta:sha256:") && key.len() < 100, "{key}");
    }
}
