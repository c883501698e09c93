//! Audit events and their canonical leaf encoding.
//!
//! An [`Event`] is what a client submits; a [`LeafRecord`] is that event as
//! committed: the leaf index and commit time the leader assigned, plus the
//! event. [`LeafRecord::encode`] gives the bytes the Merkle tree hashes, so
//! they are specified byte for byte in `docs/FORMAT.md` for verifiers in any
//! language.
//!
//! # Invariants
//! - Every event written to the log has passed [`Event::validate`].
//! - For validated events the encoding is a bijection: one event, one byte
//!   string. `details` is written as canonical JSON (sorted keys, no
//!   whitespace) and an absent optional string is written as length 0, which
//!   is unambiguous because validation forbids present-but-empty optionals.
//! - [`LeafRecord::decode`] checks structure and canonical form only, never
//!   the tunable limits in [`crate::limits`]: a leaf committed under today's
//!   limits must still decode if the limits change, because the log is
//!   immutable. Lengths are bounded by the input, so decoding hostile bytes
//!   cannot allocate more than their size.

use crate::limits::{DETAILS_BYTES_MAX, FIELD_BYTES_MAX};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// First byte of every leaf; a new layout gets a new version, and old leaves
/// keep decoding under theirs.
pub const LEAF_VERSION: u8 = 0x01;

/// Errors in events and leaf bytes. Event errors come from client input and
/// surface as gRPC `INVALID_ARGUMENT`, so their messages name the field and
/// the limit. `Leaf*` errors mean stored or received leaf bytes are corrupt:
/// fatal when read from our own storage, `INVALID_ARGUMENT` when a client
/// sent them.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventError {
    #[error("field `{field}` is required and must not be empty")]
    MissingField { field: &'static str },
    #[error("field `{field}` is {len} bytes, more than the maximum of {max}")]
    FieldTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("optional field `{field}` is present but empty; omit it instead")]
    EmptyOptional { field: &'static str },
    #[error("field `{field}` contains a control character at byte {at}")]
    ControlCharacter { field: &'static str, at: usize },
    #[error("`details` must be a JSON object")]
    DetailsNotObject,
    #[error("`details` is not valid JSON: {reason}")]
    DetailsInvalid { reason: String },
    #[error("`details` is {len} bytes as canonical JSON, more than the maximum of {max}")]
    DetailsTooLarge { len: usize, max: usize },
    #[error("event time {time} ns is invalid; it must be after the Unix epoch")]
    InvalidTime { time: i64 },
    #[error("outcome `{value}` is invalid; expected success, failure, denied or unknown")]
    InvalidOutcome { value: String },
    #[error("leaf is truncated: more bytes needed at offset {at}")]
    LeafTruncated { at: usize },
    #[error("leaf version {version} is not supported (expected {LEAF_VERSION})")]
    LeafVersion { version: u8 },
    #[error("leaf has {extra} unexpected trailing bytes")]
    LeafTrailingBytes { extra: usize },
    #[error("leaf field `{field}` is not valid UTF-8")]
    LeafUtf8 { field: &'static str },
    #[error("leaf outcome code {code} is unknown")]
    LeafOutcome { code: u8 },
    #[error("leaf field `{field}` is not in canonical form")]
    LeafNotCanonical { field: &'static str },
}

/// How the audited action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
    Unknown,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
            Outcome::Unknown => "unknown",
        }
    }

    /// Leaf encoding code, 1..=4. Zero is left unused so an all-zero leaf
    /// body cannot decode as a plausible event.
    pub fn code(&self) -> u8 {
        match self {
            Outcome::Success => 1,
            Outcome::Failure => 2,
            Outcome::Denied => 3,
            Outcome::Unknown => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<Outcome> {
        match code {
            1 => Some(Outcome::Success),
            2 => Some(Outcome::Failure),
            3 => Some(Outcome::Denied),
            4 => Some(Outcome::Unknown),
            _ => None,
        }
    }
}

impl std::str::FromStr for Outcome {
    type Err = EventError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Outcome::Success,
            Outcome::Failure,
            Outcome::Denied,
            Outcome::Unknown,
        ]
        .into_iter()
        .find(|o| o.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| EventError::InvalidOutcome {
            value: s.to_string(),
        })
    }
}

/// Who performed the action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Actor {
    pub id: String,
    pub kind: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// One audit event as submitted by a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Client-observed time; the leader's commit time is kept separately in
    /// [`LeafRecord`] because client clocks cannot be trusted for ordering.
    pub time_unix_nanos: i64,
    pub actor: Actor,
    pub action: String,
    pub resource: String,
    pub outcome: Outcome,
    /// The emitting service.
    pub source: String,
    pub details: Map<String, Value>,
    /// Lets a client retry an append without duplicating the event.
    pub idempotency_key: Option<String>,
}

/// A string field in leaf order, with its name for error messages.
struct Field<'a> {
    name: &'static str,
    value: Option<&'a str>,
    required: bool,
}

impl<'a> Field<'a> {
    fn required(name: &'static str, value: &'a str) -> Self {
        Field {
            name,
            value: Some(value),
            required: true,
        }
    }

    fn optional(name: &'static str, value: &'a Option<String>) -> Self {
        Field {
            name,
            value: value.as_deref(),
            required: false,
        }
    }
}

impl Event {
    /// The identifier-like string fields, in leaf encoding order (details,
    /// which is not identifier-like, sits between `source` and
    /// `idempotency_key` in the leaf).
    fn fields(&self) -> [Field<'_>; 8] {
        [
            Field::required("actor.id", &self.actor.id),
            Field::optional("actor.kind", &self.actor.kind),
            Field::optional("actor.ip", &self.actor.ip),
            Field::optional("actor.user_agent", &self.actor.user_agent),
            Field::required("action", &self.action),
            Field::required("resource", &self.resource),
            Field::required("source", &self.source),
            Field::optional("idempotency_key", &self.idempotency_key),
        ]
    }

    /// Checks the event may enter the log: time after the epoch; required
    /// fields non-empty; optional fields absent or non-empty; every string
    /// within [`FIELD_BYTES_MAX`] and free of control characters (they would
    /// let one field forge line breaks in logs and UIs); canonical details
    /// within [`DETAILS_BYTES_MAX`] and stable under a JSON round trip.
    pub fn validate(&self) -> Result<(), EventError> {
        self.validate_details().map(|_| ())
    }

    /// [`Event::validate`], returning the canonical details text it checked:
    /// with it, [`Event::leaf_len`] measures the leaf and [`encode_leaf_with`]
    /// encodes it, so the details are written once, where checking and then
    /// encoding to measure wrote them three times and cloned the event (a
    /// tenth of the CPU of a 100-event append, in a profile).
    pub fn validate_details(&self) -> Result<String, EventError> {
        if self.time_unix_nanos <= 0 {
            return Err(EventError::InvalidTime {
                time: self.time_unix_nanos,
            });
        }
        for field in self.fields() {
            validate_field(&field)?;
        }
        let details = canonical_details(&self.details);
        if details.len() > DETAILS_BYTES_MAX {
            return Err(EventError::DetailsTooLarge {
                len: details.len(),
                max: DETAILS_BYTES_MAX,
            });
        }
        // A float that serde_json prints but does not parse back to the same
        // value would make the committed leaf fail to decode. Strings and
        // integers always survive, so only details with a float take the
        // round trip.
        if self.details.values().any(has_float) && parse_details(&details)? != self.details {
            return Err(EventError::DetailsInvalid {
                reason: "a number does not survive a JSON round trip".into(),
            });
        }
        Ok(details)
    }

    /// The length of this event's leaf when its canonical details are
    /// `details_len` bytes: index and commit time are fixed-width, so any
    /// record of the event has this length.
    pub(crate) fn leaf_len(&self, details_len: usize) -> usize {
        let strings: usize = self
            .fields()
            .iter()
            .map(|f| f.value.map_or(0, str::len))
            .sum();
        LEAF_FIXED_BYTES + LEAF_STRINGS * LEAF_LENGTH_PREFIX_BYTES + strings + details_len
    }
}

/// Bytes of a leaf before its strings: version, index, commit time, event
/// time and outcome code.
const LEAF_FIXED_BYTES: usize = 1 + 8 + 8 + 8 + 1;
/// Length-prefixed strings in a leaf: the eight of [`Event::fields`] and
/// the details.
const LEAF_STRINGS: usize = 9;
/// Each string's big-endian `u32` length.
const LEAF_LENGTH_PREFIX_BYTES: usize = 4;

/// Whether a JSON value holds a floating-point number anywhere.
fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        Value::Null | Value::Bool(_) | Value::String(_) => false,
    }
}

fn validate_field(field: &Field<'_>) -> Result<(), EventError> {
    let name = field.name;
    let value = match field.value {
        None => return Ok(()),
        Some("") if field.required => return Err(EventError::MissingField { field: name }),
        Some("") => return Err(EventError::EmptyOptional { field: name }),
        Some(value) => value,
    };
    if value.len() > FIELD_BYTES_MAX {
        return Err(EventError::FieldTooLong {
            field: name,
            len: value.len(),
            max: FIELD_BYTES_MAX,
        });
    }
    if let Some((at, _)) = value.char_indices().find(|(_, c)| c.is_control()) {
        return Err(EventError::ControlCharacter { field: name, at });
    }
    Ok(())
}

/// Parses a details JSON text. The empty (or all-whitespace) string is the
/// empty object, so clients without details can send nothing.
pub fn parse_details(json: &str) -> Result<Map<String, Value>, EventError> {
    if json.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(EventError::DetailsNotObject),
        Err(e) => Err(EventError::DetailsInvalid {
            reason: e.to_string(),
        }),
    }
}

/// Canonical JSON text of details: keys sorted (serde_json's `Map` is a
/// BTreeMap without the `preserve_order` feature, recursively), no whitespace.
pub fn canonical_details(details: &Map<String, Value>) -> String {
    // Serialising a map of JSON values cannot fail: keys are strings and
    // values contain no non-finite floats.
    serde_json::to_string(details).expect("JSON values always serialise")
}

/// An event as committed to the log at `index`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeafRecord {
    pub index: u64,
    /// Leader's clock at commit; stored beside the client's time so auditors
    /// can see clock skew and back-dating.
    pub commit_time_unix_nanos: i64,
    pub event: Event,
}

const DETAILS_FIELD: &str = "details";

impl LeafRecord {
    /// Canonical leaf bytes (format v1, `docs/FORMAT.md`). Deterministic:
    /// the same record always encodes to the same bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_leaf(self.index, self.commit_time_unix_nanos, &self.event)
    }

    /// Decodes leaf bytes, strictly: the bytes must be exactly what
    /// [`LeafRecord::encode`] produces for the decoded record.
    pub fn decode(bytes: &[u8]) -> Result<LeafRecord, EventError> {
        let mut r = LeafReader { bytes, pos: 0 };
        let LeafHeader {
            index,
            commit_time_unix_nanos,
            time_unix_nanos,
            outcome,
        } = r.header()?;
        let actor = Actor {
            id: r.string("actor.id")?,
            kind: r.optional("actor.kind")?,
            ip: r.optional("actor.ip")?,
            user_agent: r.optional("actor.user_agent")?,
        };
        let action = r.string("action")?;
        let resource = r.string("resource")?;
        let source = r.string("source")?;
        let details_text = r.string(DETAILS_FIELD)?;
        let idempotency_key = r.optional("idempotency_key")?;
        if r.pos != bytes.len() {
            return Err(EventError::LeafTrailingBytes {
                extra: bytes.len() - r.pos,
            });
        }
        let details = parse_details(&details_text).map_err(|_| EventError::LeafNotCanonical {
            field: DETAILS_FIELD,
        })?;
        if canonical_details(&details) != details_text {
            return Err(EventError::LeafNotCanonical {
                field: DETAILS_FIELD,
            });
        }
        Ok(LeafRecord {
            index,
            commit_time_unix_nanos,
            event: Event {
                time_unix_nanos,
                actor,
                action,
                resource,
                outcome,
                source,
                details,
                idempotency_key,
            },
        })
    }
}

/// [`LeafRecord::encode`] of the record `event` becomes at `index`, committed
/// at `commit_time_unix_nanos`, without making the record (a copy of the
/// event).
pub fn encode_leaf(index: u64, commit_time_unix_nanos: i64, event: &Event) -> Vec<u8> {
    encode_leaf_with(
        index,
        commit_time_unix_nanos,
        event,
        &canonical_details(&event.details),
    )
}

/// [`encode_leaf`] with the event's canonical details already written out
/// (by [`Event::validate_details`]); `details` must be exactly
/// [`canonical_details`] of the event's details.
pub fn encode_leaf_with(
    index: u64,
    commit_time_unix_nanos: i64,
    event: &Event,
    details: &str,
) -> Vec<u8> {
    debug_assert_eq!(details, canonical_details(&event.details));
    let mut out = Vec::with_capacity(event.leaf_len(details.len()));
    out.push(LEAF_VERSION);
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(&commit_time_unix_nanos.to_be_bytes());
    out.extend_from_slice(&event.time_unix_nanos.to_be_bytes());
    out.push(event.outcome.code());
    let fields = event.fields();
    let (before, after) = fields.split_at(7);
    for field in before {
        put_str(&mut out, field.value.unwrap_or(""));
    }
    put_str(&mut out, details);
    for field in after {
        put_str(&mut out, field.value.unwrap_or(""));
    }
    out
}

/// What a leaf is indexed by (`ironlog`'s query indexes), read without
/// parsing its details: indexing reads back every leaf, and parsing and
/// re-printing each one's details there was most of the cost.
#[derive(Clone, Debug, PartialEq)]
pub struct LeafKeys {
    pub index: u64,
    pub actor_id: String,
    pub action: String,
    pub resource: String,
    pub outcome: Outcome,
}

impl LeafKeys {
    /// Reads the indexed fields of leaf bytes. Checks the structure up to
    /// the resource only; [`LeafRecord::decode`] checks the whole leaf.
    pub fn decode(bytes: &[u8]) -> Result<LeafKeys, EventError> {
        let mut r = LeafReader { bytes, pos: 0 };
        let header = r.header()?;
        let actor_id = r.string("actor.id")?;
        // actor.kind, actor.ip, actor.user_agent
        for _ in 0..3 {
            r.skip_string()?;
        }
        Ok(LeafKeys {
            index: header.index,
            actor_id,
            action: r.string("action")?,
            resource: r.string("resource")?,
            outcome: header.outcome,
        })
    }
}

/// The fixed-width start of a leaf, after its version byte.
struct LeafHeader {
    index: u64,
    commit_time_unix_nanos: i64,
    time_unix_nanos: i64,
    outcome: Outcome,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Fields are bounded far below 4 GiB by validation; a longer string here
    // means an unvalidated event reached the encoder.
    let len = u32::try_from(s.len()).expect("leaf field longer than u32::MAX bytes");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Cursor over leaf bytes that reports where it ran out.
struct LeafReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl LeafReader<'_> {
    /// Reads and checks the version and the fixed-width fields.
    fn header(&mut self) -> Result<LeafHeader, EventError> {
        let version = self.take::<1>()?[0];
        if version != LEAF_VERSION {
            return Err(EventError::LeafVersion { version });
        }
        let index = u64::from_be_bytes(self.take()?);
        let commit_time_unix_nanos = i64::from_be_bytes(self.take()?);
        let time_unix_nanos = i64::from_be_bytes(self.take()?);
        let code = self.take::<1>()?[0];
        let outcome = Outcome::from_code(code).ok_or(EventError::LeafOutcome { code })?;
        Ok(LeafHeader {
            index,
            commit_time_unix_nanos,
            time_unix_nanos,
            outcome,
        })
    }

    /// Steps over a string, checking only that it is whole.
    fn skip_string(&mut self) -> Result<(), EventError> {
        let len = u32::from_be_bytes(self.take()?) as usize;
        self.slice(len).map(|_| ())
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], EventError> {
        let slice = self.slice(N)?;
        Ok(slice.try_into().expect("slice has length N"))
    }

    fn slice(&mut self, len: usize) -> Result<&[u8], EventError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(EventError::LeafTruncated {
                at: self.bytes.len(),
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn string(&mut self, field: &'static str) -> Result<String, EventError> {
        let len = u32::from_be_bytes(self.take()?) as usize;
        let raw = self.slice(len)?;
        String::from_utf8(raw.to_vec()).map_err(|_| EventError::LeafUtf8 { field })
    }

    fn optional(&mut self, field: &'static str) -> Result<Option<String>, EventError> {
        let s = self.string(field)?;
        Ok(if s.is_empty() { None } else { Some(s) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Pinned in docs/FORMAT.md; changing it breaks every stored leaf hash.
    const GOLDEN_LEAF_HEX: &str = "01000000000000000717979cfe3d85cd1517979cfe362a00000300000005616c69636500000004757365720000000000000000000000056c6f67696e00000007636f6e736f6c6500000004617574680000001c7b22617474656d7074223a322c22726561736f6e223a226d6661227d000000026b31";

    fn golden_record() -> LeafRecord {
        let details = parse_details(r#"{"reason":"mfa","attempt":2}"#).unwrap();
        LeafRecord {
            index: 7,
            commit_time_unix_nanos: 1_700_000_000_123_456_789,
            event: Event {
                time_unix_nanos: 1_700_000_000_000_000_000,
                actor: Actor {
                    id: "alice".into(),
                    kind: Some("user".into()),
                    ip: None,
                    user_agent: None,
                },
                action: "login".into(),
                resource: "console".into(),
                outcome: Outcome::Denied,
                source: "auth".into(),
                details,
                idempotency_key: Some("k1".into()),
            },
        }
    }

    #[test]
    fn leaf_keys_are_the_decoded_records_and_damage_is_refused() {
        let mut record = golden_record();
        for (kind, agent) in [(None, None), (Some("role"), Some("aws-cli/2"))] {
            record.event.actor.kind = kind.map(String::from);
            record.event.actor.user_agent = agent.map(String::from);
            let leaf = record.encode();
            let full = LeafRecord::decode(&leaf).unwrap();
            let keys = LeafKeys::decode(&leaf).unwrap();
            assert_eq!(
                keys,
                LeafKeys {
                    index: full.index,
                    actor_id: full.event.actor.id,
                    action: full.event.action,
                    resource: full.event.resource,
                    outcome: full.event.outcome,
                }
            );
        }
        let leaf = record.encode();
        // The keys end with the resource: a leaf cut there still gives
        // them, one cut a byte earlier is refused.
        let e = &record.event;
        let strings = [&e.actor.id, &e.action, &e.resource]
            .iter()
            .map(|s| s.len())
            .sum::<usize>()
            + [&e.actor.kind, &e.actor.ip, &e.actor.user_agent]
                .iter()
                .map(|s| s.as_ref().map_or(0, String::len))
                .sum::<usize>();
        let resource_end = LEAF_FIXED_BYTES + 6 * LEAF_LENGTH_PREFIX_BYTES + strings;
        assert!(LeafKeys::decode(&leaf[..resource_end]).is_ok());
        assert!(matches!(
            LeafKeys::decode(&leaf[..resource_end - 1]),
            Err(EventError::LeafTruncated { .. })
        ));
        let mut bad = leaf.clone();
        bad[0] = 9;
        assert_eq!(
            LeafKeys::decode(&bad),
            Err(EventError::LeafVersion { version: 9 })
        );
    }

    #[test]
    fn the_checked_details_measure_the_encoded_leaf() {
        let mut record = golden_record();
        let mut seen = Vec::new();
        for details in [
            "",
            r#"{"a":"é\"\\\n","n":[1,-2,{"z":null,"y":true}],"f":1.5}"#,
            r#"{"big":18446744073709551615,"neg":-9223372036854775808}"#,
        ] {
            record.event.details = parse_details(details).unwrap();
            for (kind, ip, key) in [
                (None, None, None),
                (Some("user"), Some("10.0.0.1"), Some("k")),
                (Some("rôle"), None, Some("ключ")),
            ] {
                record.event.actor.kind = kind.map(String::from);
                record.event.actor.ip = ip.map(String::from);
                record.event.idempotency_key = key.map(String::from);
                let details = record.event.validate_details().unwrap();
                let len = record.event.leaf_len(details.len());
                assert_eq!(
                    len,
                    record.encode().len(),
                    "{details} {kind:?} {ip:?} {key:?}"
                );
                seen.push(len);
            }
        }
        seen.dedup();
        assert!(seen.len() > 3, "the cases differ in length: {seen:?}");
    }

    #[test]
    fn details_are_refused_exactly_when_a_float_does_not_survive_a_round_trip() {
        // serde_json parses floats fast rather than exactly, so some printed
        // floats parse back a unit off; the oracle is the round trip itself.
        let mut event = golden_record().event;
        let (mut refused, mut accepted) = (0, 0);
        let mut bits: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            bits = bits
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let x = f64::from_bits(bits);
            let Some(n) = serde_json::Number::from_f64(x) else {
                continue; // NaN and infinities are not JSON numbers
            };
            event.details = Map::from_iter([("x".to_string(), json!([{ "v": n }]))]);
            let survives =
                parse_details(&canonical_details(&event.details)).unwrap() == event.details;
            match event.validate() {
                Ok(()) => {
                    assert!(survives, "{x:e} accepted but does not survive");
                    accepted += 1;
                }
                Err(EventError::DetailsInvalid { .. }) => {
                    assert!(!survives, "{x:e} refused but survives");
                    refused += 1;
                }
                Err(e) => panic!("{x:e}: {e}"),
            }
        }
        assert!(accepted > 10_000, "accepted {accepted}");
        assert!(refused > 100, "refused {refused}: the refusing branch ran");
        // Integers never take the round trip, and always pass.
        event.details = parse_details(r#"{"n":[18446744073709551615,-1,0]}"#).unwrap();
        assert_eq!(event.validate(), Ok(()));
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn golden_leaf_encoding_is_pinned() {
        let encoded = golden_record().encode();
        assert_eq!(hex(&encoded), GOLDEN_LEAF_HEX);
        assert_eq!(LeafRecord::decode(&encoded).unwrap(), golden_record());
    }

    #[test]
    fn round_trip_with_all_optionals_present_and_absent() {
        let mut record = golden_record();
        record.event.validate().unwrap();
        assert_eq!(LeafRecord::decode(&record.encode()).unwrap(), record);
        record.event.actor.kind = None;
        record.event.idempotency_key = None;
        record.event.details = Map::new();
        assert_eq!(LeafRecord::decode(&record.encode()).unwrap(), record);
        record.event.actor.ip = Some("2001:db8::1".into());
        record.event.actor.user_agent = Some("curl/8 ✓".into());
        record.index = u64::MAX;
        record.commit_time_unix_nanos = i64::MIN;
        assert_eq!(LeafRecord::decode(&record.encode()).unwrap(), record);
    }

    #[test]
    fn encoding_ignores_details_insertion_order() {
        let mut a = golden_record();
        let mut b = golden_record();
        a.event.details = Map::new();
        b.event.details = Map::new();
        let nested = json!({"z": 1, "a": [{"y": true, "b": null}]});
        for (k, v) in [
            ("x", json!(1)),
            ("nested", nested.clone()),
            ("a", json!("s")),
        ] {
            a.event.details.insert(k.into(), v);
        }
        for (k, v) in [("a", json!("s")), ("nested", nested), ("x", json!(1))] {
            b.event.details.insert(k.into(), v);
        }
        assert_eq!(a.encode(), b.encode());
        assert_eq!(
            canonical_details(&a.event.details),
            r#"{"a":"s","nested":{"a":[{"b":null,"y":true}],"z":1},"x":1}"#
        );
    }

    #[test]
    fn decode_rejects_truncation_at_every_length() {
        let encoded = golden_record().encode();
        for len in 0..encoded.len() {
            assert_eq!(
                LeafRecord::decode(&encoded[..len]),
                Err(EventError::LeafTruncated { at: len }),
                "prefix of {len} bytes"
            );
        }
    }

    #[test]
    fn decode_rejects_trailing_bytes() {
        let mut encoded = golden_record().encode();
        encoded.extend_from_slice(&[0, 0]);
        assert_eq!(
            LeafRecord::decode(&encoded),
            Err(EventError::LeafTrailingBytes { extra: 2 })
        );
    }

    #[test]
    fn decode_rejects_bad_version() {
        let mut encoded = golden_record().encode();
        encoded[0] = 2;
        assert_eq!(
            LeafRecord::decode(&encoded),
            Err(EventError::LeafVersion { version: 2 })
        );
    }

    #[test]
    fn decode_rejects_unknown_outcome() {
        let mut encoded = golden_record().encode();
        for code in [0u8, 5, 255] {
            encoded[25] = code;
            assert_eq!(
                LeafRecord::decode(&encoded),
                Err(EventError::LeafOutcome { code })
            );
        }
    }

    /// Builds a leaf by hand so tests can put arbitrary bytes in a field.
    fn raw_leaf(fields: [&[u8]; 9]) -> Vec<u8> {
        let mut out = vec![LEAF_VERSION];
        out.extend_from_slice(&[0; 24]);
        out.push(Outcome::Success.code());
        for f in fields {
            out.extend_from_slice(&(f.len() as u32).to_be_bytes());
            out.extend_from_slice(f);
        }
        out
    }

    #[test]
    fn decode_rejects_invalid_utf8() {
        let leaf = raw_leaf([b"a", b"", b"", b"", b"\xff", b"r", b"s", b"{}", b""]);
        assert_eq!(
            LeafRecord::decode(&leaf),
            Err(EventError::LeafUtf8 { field: "action" })
        );
    }

    #[test]
    fn decode_rejects_non_canonical_details() {
        for details in [
            &b""[..],
            b"{ }",
            br#"{"b":1,"a":2}"#,
            b"[]",
            b"not json",
            b"1.0e0",
        ] {
            let leaf = raw_leaf([b"a", b"", b"", b"", b"x", b"r", b"s", details, b""]);
            assert_eq!(
                LeafRecord::decode(&leaf),
                Err(EventError::LeafNotCanonical { field: "details" }),
                "details {:?}",
                String::from_utf8_lossy(details)
            );
        }
        let leaf = raw_leaf([
            b"a",
            b"",
            b"",
            b"",
            b"x",
            b"r",
            b"s",
            br#"{"a":2,"b":1}"#,
            b"",
        ]);
        assert!(LeafRecord::decode(&leaf).is_ok());
    }

    #[test]
    fn decode_of_huge_declared_length_is_truncation_not_allocation() {
        let mut leaf = raw_leaf([b"a", b"", b"", b"", b"x", b"r", b"s", b"{}", b""]);
        leaf.truncate(26);
        leaf.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            LeafRecord::decode(&leaf),
            Err(EventError::LeafTruncated { at: leaf.len() })
        );
    }

    #[test]
    fn validate_reports_the_offending_field() {
        let ok = golden_record().event;
        ok.validate().unwrap();
        let check = |f: &dyn Fn(&mut Event), want: EventError| {
            let mut e = ok.clone();
            f(&mut e);
            assert_eq!(e.validate(), Err(want));
        };
        check(
            &|e| e.time_unix_nanos = 0,
            EventError::InvalidTime { time: 0 },
        );
        check(
            &|e| e.actor.id.clear(),
            EventError::MissingField { field: "actor.id" },
        );
        check(
            &|e| e.action.clear(),
            EventError::MissingField { field: "action" },
        );
        check(
            &|e| e.resource.clear(),
            EventError::MissingField { field: "resource" },
        );
        check(
            &|e| e.source.clear(),
            EventError::MissingField { field: "source" },
        );
        check(
            &|e| e.actor.ip = Some(String::new()),
            EventError::EmptyOptional { field: "actor.ip" },
        );
        check(
            &|e| e.idempotency_key = Some(String::new()),
            EventError::EmptyOptional {
                field: "idempotency_key",
            },
        );
        check(
            &|e| e.resource = "r".repeat(FIELD_BYTES_MAX + 1),
            EventError::FieldTooLong {
                field: "resource",
                len: FIELD_BYTES_MAX + 1,
                max: FIELD_BYTES_MAX,
            },
        );
        check(
            &|e| e.actor.user_agent = Some("a\nb".into()),
            EventError::ControlCharacter {
                field: "actor.user_agent",
                at: 1,
            },
        );
        check(
            &|e| e.action = "lo\0gin".into(),
            EventError::ControlCharacter {
                field: "action",
                at: 2,
            },
        );
        let big = "x".repeat(DETAILS_BYTES_MAX);
        check(
            &|e| {
                e.details = Map::new();
                e.details.insert("k".into(), json!(big));
            },
            EventError::DetailsTooLarge {
                len: DETAILS_BYTES_MAX + 8,
                max: DETAILS_BYTES_MAX,
            },
        );
        let mut at_limit = ok.clone();
        at_limit.resource = "r".repeat(FIELD_BYTES_MAX);
        at_limit.validate().unwrap();
    }

    #[test]
    fn parse_details_accepts_objects_only() {
        assert_eq!(parse_details(""), Ok(Map::new()));
        assert_eq!(parse_details("  "), Ok(Map::new()));
        assert_eq!(parse_details("[1]"), Err(EventError::DetailsNotObject));
        assert_eq!(parse_details("null"), Err(EventError::DetailsNotObject));
        assert!(matches!(
            parse_details("{"),
            Err(EventError::DetailsInvalid { .. })
        ));
        assert_eq!(parse_details(r#"{"a":1}"#).unwrap()["a"], json!(1));
    }

    #[test]
    fn outcome_names_and_codes_round_trip() {
        for o in [
            Outcome::Success,
            Outcome::Failure,
            Outcome::Denied,
            Outcome::Unknown,
        ] {
            assert_eq!(Outcome::from_code(o.code()), Some(o));
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
            assert_eq!(o.as_str().to_uppercase().parse::<Outcome>(), Ok(o));
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.as_str())
            );
        }
        assert_eq!(Outcome::from_code(0), None);
        assert_eq!(
            "ok".parse::<Outcome>(),
            Err(EventError::InvalidOutcome { value: "ok".into() })
        );
    }
}
