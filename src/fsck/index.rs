//! The index tables: every query index run and idempotency row names stored
//! leaves that have its value, and each table names every leaf it covers
//! once.

use redb::{ReadOnlyTable, ReadTransaction, StorageError, TableHandle};

use super::checker::Checker;
use super::raw::{raw_keys, str_str_key, str_u64_key};
use super::ProblemKind;
use crate::ledger::event::LeafRecord;
use crate::storage::ledger_store::{
    read_indexed, run, IndexDef, ENTRIES, IDEMPOTENCY, IDX_ACTION, IDX_ACTOR, IDX_OUTCOME,
    IDX_RESOURCE, META,
};

/// One query index table, the field its runs name, and how a leaf shows it.
type RunIndex = (&'static IndexDef, &'static str, fn(&LeafRecord) -> &str);

impl Checker {
    /// Every query index and idempotency row names a stored leaf that has
    /// its value, and each table has the right number of rows.
    pub(super) fn check_indexes(&mut self, txn: &ReadTransaction) {
        let size = self.report.tree_size;
        let Some(entries) = self.open(txn, ENTRIES) else {
            return;
        };
        // The query indexes cover the leaves up to the recorded count; the
        // newest leaves get their rows in bulk later.
        let indexed = match self.open(txn, META).map(|meta| read_indexed(&meta, size)) {
            Some(Ok(indexed)) => indexed,
            Some(Err(e)) => {
                let message = format!("the count of indexed leaves is unusable: {e}");
                self.general(ProblemKind::Meta, message);
                size
            }
            None => size,
        };
        let run_indexes: [RunIndex; 4] = [
            (&IDX_ACTOR, "actor", |r| &r.event.actor.id),
            (&IDX_ACTION, "action", |r| &r.event.action),
            (&IDX_RESOURCE, "resource", |r| &r.event.resource),
            (&IDX_OUTCOME, "outcome", |r| r.event.outcome.as_str()),
        ];
        for (def, field, value_of) in run_indexes {
            self.check_runs(txn, &entries, def, field, value_of, indexed);
        }
        if let Some(table) = self.open(txn, raw_keys(&IDEMPOTENCY)) {
            let name = IDEMPOTENCY.name();
            let rows = table.range::<&[u8]>(..).map(|rows| {
                rows.map(|row| {
                    row.map(|(key, index)| {
                        str_str_key(key.value())
                            .map(|(s, k)| ((s.to_string(), k.to_string()), index.value()))
                    })
                })
            });
            let counted = self.check_rows(name, rows, |checker, ((source, key), index)| {
                let claimed = format!("source {source:?} idempotency key {key:?}");
                checker.check_index_row(&entries, name, index, size, &claimed, |r| {
                    let key = r.event.idempotency_key.as_deref().unwrap_or("");
                    format!("source {:?} idempotency key {key:?}", r.event.source)
                });
            });
            if let Some(keyed) = self.keyed_leaves {
                self.check_row_count(name, counted, keyed, "leaf with an idempotency key");
            }
        }
    }

    /// Every run of one query index table decodes, and names each indexed
    /// leaf once, with the value the leaf has.
    fn check_runs(
        &mut self,
        txn: &ReadTransaction,
        entries: &ReadOnlyTable<u64, &'static [u8]>,
        def: &'static IndexDef,
        field: &str,
        value_of: fn(&LeafRecord) -> &str,
        indexed: u64,
    ) {
        let name = def.name();
        let Some(table) = self.open(txn, raw_keys(def)) else {
            return;
        };
        let unreadable = |checker: &mut Self, e: StorageError| {
            let message = format!("reading table {name} failed; the rest of it is unchecked: {e}");
            checker.general(ProblemKind::Unreadable, message);
        };
        let rows = match table.range::<&[u8]>(..) {
            Ok(rows) => rows,
            Err(e) => return unreadable(self, e),
        };
        let mut named = 0u64;
        for row in rows {
            let (key, rest) = match row {
                Ok(row) => row,
                Err(e) => return unreadable(self, e),
            };
            let Some((value, first)) = str_u64_key(key.value()) else {
                let message = format!("{name} has a row whose key does not decode");
                self.general(ProblemKind::IndexRow, message);
                continue;
            };
            let claimed = format!("{field} {value:?}");
            let indices = match run::decode(first, rest.value()) {
                Ok(indices) => indices,
                Err(e) => {
                    let message = format!(
                        "{name}: the run of {claimed} from leaf {first} does not decode: {e}"
                    );
                    self.general(ProblemKind::IndexRow, message);
                    continue;
                }
            };
            for index in indices {
                named += 1;
                self.report.index_rows_checked += 1;
                self.check_index_row(entries, name, index, indexed, &claimed, |r| {
                    format!("{field} {:?}", value_of(r))
                });
            }
        }
        if named != indexed {
            let message = format!(
                "{name} names {named} leaves for {indexed} indexed; it must name each once"
            );
            self.general(ProblemKind::IndexRow, message);
        }
    }

    /// Runs `check` on every row that decodes; returns the rows counted, or
    /// `None` if the table could not be read to the end.
    fn check_rows<T, I>(
        &mut self,
        table: &str,
        rows: Result<I, StorageError>,
        mut check: impl FnMut(&mut Self, T),
    ) -> Option<u64>
    where
        I: Iterator<Item = Result<Option<T>, StorageError>>,
    {
        let fail = |checker: &mut Self, e: StorageError| {
            let message = format!("reading table {table} failed; the rest of it is unchecked: {e}");
            checker.general(ProblemKind::Unreadable, message);
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                fail(self, e);
                return None;
            }
        };
        let mut counted = 0u64;
        for row in rows {
            match row {
                Ok(Some(row)) => {
                    counted += 1;
                    self.report.index_rows_checked += 1;
                    check(self, row);
                }
                Ok(None) => {
                    counted += 1;
                    let message = format!("{table} has a row whose key does not decode");
                    self.general(ProblemKind::IndexRow, message);
                }
                Err(e) => {
                    fail(self, e);
                    return None;
                }
            }
        }
        Some(counted)
    }

    fn check_row_count(&mut self, table: &str, counted: Option<u64>, expected: u64, per: &str) {
        if let Some(rows) = counted.filter(|&rows| rows != expected) {
            let message =
                format!("{table} has {rows} rows for {expected} leaves; it needs one per {per}");
            self.general(ProblemKind::IndexRow, message);
        }
    }

    /// One row claims leaf `index` has `claimed` (as `shown` renders a
    /// leaf); the table holds rows for leaves `[0, covered)` only.
    fn check_index_row(
        &mut self,
        entries: &ReadOnlyTable<u64, &'static [u8]>,
        table: &str,
        index: u64,
        covered: u64,
        claimed: &str,
        shown: impl FnOnce(&LeafRecord) -> String,
    ) {
        if index >= covered {
            let message = format!(
                "a row ({claimed}) names leaf {index}, beyond the {covered} leaves the table covers"
            );
            self.general(ProblemKind::IndexRow, message);
            return;
        }
        let leaf = match entries.get(index) {
            Ok(Some(leaf)) => leaf.value().to_vec(),
            Ok(None) => {
                let message = format!("a row ({claimed}) names leaf {index}, which is not stored");
                self.at_leaf(ProblemKind::IndexRow, index, message);
                return;
            }
            Err(e) => {
                let message = format!("reading leaf {index} for table {table} failed: {e}");
                self.general(ProblemKind::Unreadable, message);
                return;
            }
        };
        // A leaf that does not decode is reported by the walk already.
        let Ok(record) = LeafRecord::decode(&leaf) else {
            return;
        };
        let actual = shown(&record);
        if actual != claimed {
            let message = format!("{table} says the leaf has {claimed}, but it has {actual}");
            self.at_leaf(ProblemKind::IndexRow, index, message);
        }
    }
}
