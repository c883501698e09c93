//! The metadata row: what changes with every apply (the tree size, the
//! last commit time, the Raft layer's opaque marker and membership, the
//! witness set), and reading it.

use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};

use super::error::corrupt;
use super::tables::{META, META_INDEXED, META_STATE};
use super::witness::WitnessKeys;
use super::StoreError;

/// Metadata that changes with every apply.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StateMeta {
    /// Opaque marker of the last applied Raft log id (owned by the raft layer).
    #[serde(with = "opaque_bytes")]
    pub applied: Option<Vec<u8>>,
    /// Opaque last membership (owned by the raft layer).
    #[serde(with = "opaque_bytes")]
    pub membership: Option<Vec<u8>>,
    pub tree_size: u64,
    /// Commit time of the last leaf; commit times never go backwards.
    pub last_commit_time_unix_nanos: i64,
    /// The replicated witness keys; `None` until the first
    /// [`Op::SetWitnesses`](super::Op::SetWitnesses). Left out of the JSON
    /// while `None`, so older snapshots and stores read unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witnesses: Option<WitnessKeys>,
}

/// The opaque fields as base64 text. serde_json writes a `Vec<u8>` as an
/// array of numbers, three to four times the bytes and slow to parse, and
/// this row is read and written on every apply (the membership alone is
/// about 1.5 KB as numbers: 2.7% of a node's CPU under load went to parsing
/// it). Arrays, as stores and snapshots written before hold them, still
/// read.
mod opaque_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            None => s.serialize_none(),
            Some(bytes) => s.serialize_some(&STANDARD.encode(bytes)),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Text(String),
        Numbers(Vec<u8>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<Form>::deserialize(d)? {
            None => Ok(None),
            Some(Form::Text(text)) => STANDARD.decode(text).map(Some).map_err(D::Error::custom),
            Some(Form::Numbers(bytes)) => Ok(Some(bytes)),
        }
    }
}

pub(super) fn read_meta(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<StateMeta, StoreError> {
    match table.get(META_STATE)? {
        None => Ok(StateMeta::default()),
        Some(v) => serde_json::from_slice(v.value()).map_err(|e| corrupt("meta", META_STATE, e)),
    }
}

/// How many leaves the query index tables cover ([`META_INDEXED`]);
/// `tree_size` for a store written before indexing was deferred, which
/// indexed every leaf as it was stored.
pub(crate) fn read_indexed(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    tree_size: u64,
) -> Result<u64, StoreError> {
    Ok(read_indexed_row(table, tree_size)?.unwrap_or(tree_size))
}

/// The stored [`META_INDEXED`] count, if there is one; never above
/// `tree_size`.
pub(super) fn read_indexed_row(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    tree_size: u64,
) -> Result<Option<u64>, StoreError> {
    match table.get(META_INDEXED)? {
        None => Ok(None),
        Some(v) => match <[u8; 8]>::try_from(v.value()) {
            Ok(bytes) if u64::from_be_bytes(bytes) <= tree_size => {
                Ok(Some(u64::from_be_bytes(bytes)))
            }
            Ok(bytes) => Err(corrupt(
                "meta",
                META_INDEXED,
                format!(
                    "{} leaves indexed of a tree of {tree_size}",
                    u64::from_be_bytes(bytes)
                ),
            )),
            Err(_) => Err(corrupt("meta", META_INDEXED, "not an 8-byte count")),
        },
    }
}

pub(super) fn tree_size(txn: &ReadTransaction) -> Result<u64, StoreError> {
    Ok(read_meta(&txn.open_table(META)?)?.tree_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_fields_are_text_and_older_arrays_still_read() {
        let meta = StateMeta {
            applied: Some(br#"{"index":7}"#.to_vec()),
            membership: None,
            tree_size: 3,
            ..StateMeta::default()
        };
        let json = serde_json::to_string(&meta).unwrap();
        assert!(json.contains(r#""applied":"eyJpbmRleCI6N30=""#), "{json}");
        assert!(json.contains(r#""membership":null"#), "{json}");
        assert_eq!(serde_json::from_str::<StateMeta>(&json).unwrap(), meta);
        let older = r#"{"applied":[123,125],"membership":null,"tree_size":3,"last_commit_time_unix_nanos":0}"#;
        let read: StateMeta = serde_json::from_str(older).unwrap();
        assert_eq!(read.applied, Some(b"{}".to_vec()));
        assert_eq!(read.tree_size, 3);
        let bad = r#"{"applied":"not base64!","membership":null,"tree_size":3,"last_commit_time_unix_nanos":0}"#;
        assert!(serde_json::from_str::<StateMeta>(bad).is_err());
    }
}
