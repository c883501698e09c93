//! The metadata row: what changes with every apply (the tree size, the
//! last commit time, the Raft layer's opaque marker and membership, the
//! witness set), and reading it.

use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};

use super::error::corrupt;
use super::tables::{META, META_STATE};
use super::witness::WitnessKeys;
use super::StoreError;

/// Metadata that changes with every apply.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StateMeta {
    /// Opaque marker of the last applied Raft log id (owned by the raft layer).
    pub applied: Option<Vec<u8>>,
    /// Opaque last membership (owned by the raft layer).
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

pub(super) fn read_meta(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<StateMeta, StoreError> {
    match table.get(META_STATE)? {
        None => Ok(StateMeta::default()),
        Some(v) => serde_json::from_slice(v.value()).map_err(|e| corrupt("meta", META_STATE, e)),
    }
}

pub(super) fn tree_size(txn: &ReadTransaction) -> Result<u64, StoreError> {
    Ok(read_meta(&txn.open_table(META)?)?.tree_size)
}
