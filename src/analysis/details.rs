//! Reading native fields of the original record that `Event.details` keeps.
//!
//! Ingest stores each source record under its own field names (CloudTrail's
//! `eventSource`, Kubernetes' `objectRef.resource`, GCP's
//! `protoPayload.methodName`), so categorisation and anomaly rules read them
//! here. A lookup tries the exact key first and then an ASCII
//! case-insensitive match, because some pipelines lower-case keys (Panther's
//! own fixtures contain `eventname` and `useridentity`). Pure and
//! allocation-free: a missing or mistyped field is `None`, never an error.

use serde_json::{Map, Value};

/// The value at `path` below `details`.
pub fn field<'a>(details: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    value_at(member(details, first)?, rest)
}

/// The string at `path` below `details`.
pub fn str_field<'a>(details: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    field(details, path)?.as_str()
}

/// The value at `path` below `value`; an empty path is `value` itself.
pub fn value_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |v, key| member(v.as_object()?, key))
}

/// The string at `path` below `value`.
pub fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    value_at(value, path)?.as_str()
}

/// True when the value at `path` is JSON `true` or the string "true" (some
/// exporters stringify booleans).
pub fn is_true(value: &Value, path: &[&str]) -> bool {
    match value_at(value, path) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// The elements of the array at `path`, or none.
pub fn array_at<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    value_at(value, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// One key below an object: exact first, then ASCII case-insensitive.
pub fn member<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn exact_key_wins_over_case_insensitive_match() {
        let d = map(json!({"eventName": "A", "eventname": "B", "X": {"Y": 1}}));
        assert_eq!(str_field(&d, &["eventName"]), Some("A"));
        assert_eq!(str_field(&d, &["eventname"]), Some("B"));
        assert_eq!(str_field(&d, &["EVENTNAME"]), Some("A"));
        assert_eq!(field(&d, &["x", "y"]), Some(&json!(1)));
    }

    #[test]
    fn missing_or_mistyped_paths_are_none() {
        let d = map(json!({"a": {"b": [1, 2]}, "s": "t"}));
        assert_eq!(field(&d, &[]), None);
        assert_eq!(str_field(&d, &["a", "b"]), None);
        assert_eq!(field(&d, &["s", "deeper"]), None);
        assert_eq!(array_at(&json!(d), &["a", "b"]).len(), 2);
        assert!(array_at(&json!(d), &["a", "missing"]).is_empty());
    }

    #[test]
    fn is_true_accepts_bools_and_stringified_bools() {
        let v = json!({"a": true, "b": "True", "c": "yes", "d": false});
        assert!(is_true(&v, &["a"]));
        assert!(is_true(&v, &["b"]));
        assert!(!is_true(&v, &["c"]));
        assert!(!is_true(&v, &["d"]));
        assert!(!is_true(&v, &["missing"]));
    }
}
