//! The redb tables of the ledger file (the stored hashes' chunks are
//! defined with their layout, in `hash_chunks.rs`).

use redb::TableDefinition;

// The tables are visible to the crate so that `fsck` reads the
// very definitions the store writes with.
pub(crate) const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Checkpoint size -> body text.
pub(crate) const CHECKPOINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("checkpoints");
/// (checkpoint size, key id) -> signature line.
pub(crate) const SIGNATURES: TableDefinition<(u64, u32), &str> = TableDefinition::new("signatures");
/// (checkpoint size, witness key id) -> (witness verifier key, cosignature
/// line). The key is kept so every reader, and a snapshot install, can
/// re-verify the line without the node's configuration.
pub(crate) const WITNESS_COSIGNATURES: TableDefinition<(u64, u32), (&str, &str)> =
    TableDefinition::new("witness_cosignatures");
/// (source, idempotency key) -> leaf index.
pub(crate) const IDEMPOTENCY: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("idempotency");
/// Query indexes, one per field: (field value, first leaf index of a run)
/// -> the rest of the run, the leaves indexed in one step that have the
/// value ([`run`](super::run)). One value's runs are a contiguous key range
/// in leaf order, so a page resumes with a range. The outcome's value is
/// its name ([`Outcome::as_str`](crate::ledger::event::Outcome::as_str)).
pub(crate) const IDX_ACTOR: IndexDef = TableDefinition::new("idx_actor_runs");
pub(crate) const IDX_ACTION: IndexDef = TableDefinition::new("idx_action_runs");
pub(crate) const IDX_RESOURCE: IndexDef = TableDefinition::new("idx_resource_runs");
pub(crate) const IDX_OUTCOME: IndexDef = TableDefinition::new("idx_outcome_runs");
/// Every query index table.
pub(crate) const INDEX_TABLES: [IndexDef; 4] = [IDX_ACTOR, IDX_ACTION, IDX_RESOURCE, IDX_OUTCOME];

/// The type of a query index table.
pub(crate) type IndexDef = TableDefinition<'static, (&'static str, u64), &'static [u8]>;

/// The query indexes of stores written before runs, one row per leaf:
/// dropped when such a store is opened, and rebuilt as runs.
pub(super) const LEGACY_STR_INDEXES: [TableDefinition<(&str, u64), ()>; 3] = [
    TableDefinition::new("idx_actor"),
    TableDefinition::new("idx_action"),
    TableDefinition::new("idx_resource"),
];
pub(super) const LEGACY_OUTCOME_INDEX: TableDefinition<(u8, u64), ()> =
    TableDefinition::new("idx_outcome");

/// The `meta` row holding [`StateMeta`](super::StateMeta) as JSON.
pub(crate) const META_STATE: &str = "state";
/// The `meta` row holding, as a big-endian u64, how many leaves the query
/// index tables cover: leaves `[0, n)` have their rows, newer ones not yet
/// (see `Writer::index_pending`). A store written before indexing was
/// deferred has no such row, and every leaf indexed.
pub(crate) const META_INDEXED: &str = "indexed";
