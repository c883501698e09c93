//! The index tables: every query index and idempotency row names a stored
//! leaf that has its value, and each table has one row per leaf it covers.

use redb::{ReadOnlyTable, ReadTransaction, StorageError, TableDefinition, TableHandle};

use super::checker::Checker;
use super::raw::{raw_keys, str_str_key, str_u64_key};
use super::ProblemKind;
use crate::ledger::event::LeafRecord;
use crate::storage::ledger_store::{
    read_indexed, ENTRIES, IDEMPOTENCY, IDX_ACTION, IDX_ACTOR, IDX_OUTCOME, IDX_RESOURCE, META,
};

/// One index table, the field its rows name, and how a leaf shows it.
type StrIndex = (
    &'static TableDefinition<'static, (&'static str, u64), ()>,
    &'static str,
    fn(&LeafRecord) -> &str,
);

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
        let string_indexes: [StrIndex; 3] = [
            (&IDX_ACTOR, "actor", |r| &r.event.actor.id),
            (&IDX_ACTION, "action", |r| &r.event.action),
            (&IDX_RESOURCE, "resource", |r| &r.event.resource),
        ];
        for (def, field, value_of) in string_indexes {
            let Some(table) = self.open(txn, raw_keys(def)) else {
                continue;
            };
            let rows = table.range::<&[u8]>(..).map(|rows| {
                rows.map(|row| {
                    row.map(|(key, _)| str_u64_key(key.value()).map(|(v, i)| (v.to_string(), i)))
                })
            });
            let counted = self.check_rows(def.name(), rows, |checker, (value, index)| {
                checker.check_index_row(
                    &entries,
                    def.name(),
                    index,
                    indexed,
                    &format!("{field} {value:?}"),
                    |r| format!("{field} {:?}", value_of(r)),
                );
            });
            self.check_row_count(def.name(), counted, indexed, "indexed leaf");
        }
        if let Some(table) = self.open(txn, IDX_OUTCOME) {
            let name = IDX_OUTCOME.name();
            let rows = table
                .range::<(u8, u64)>(..)
                .map(|rows| rows.map(|row| row.map(|(key, _)| Some(key.value()))));
            let counted = self.check_rows(name, rows, |checker, (code, index)| {
                checker.check_index_row(
                    &entries,
                    name,
                    index,
                    indexed,
                    &format!("outcome code {code}"),
                    |r| format!("outcome code {}", r.event.outcome.code()),
                );
            });
            self.check_row_count(name, counted, indexed, "indexed leaf");
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
