//! The checker: the report being built and the keys signatures are checked
//! against, how a problem is recorded (naming the first bad leaf, up to the
//! cap), and the phases run over one open database, each under its own
//! panic guard.

use redb::{
    Key, ReadOnlyTable, ReadTransaction, ReadableDatabase, TableDefinition, TableHandle, Value,
};

use super::raw::{guarded, Cursor};
use super::signatures::Keys;
use super::{FsckError, FsckReport, Problem, ProblemKind};
use crate::limits::FSCK_PROBLEMS_MAX;
use crate::storage::ledger_store::{ENTRIES, META};

pub(super) struct Checker {
    pub(super) report: FsckReport,
    pub(super) keys: Keys,
    /// Leaves with an idempotency key, once the walk has counted them all.
    pub(super) keyed_leaves: Option<u64>,
}

impl Checker {
    pub(super) fn problem(
        &mut self,
        kind: ProblemKind,
        leaf_index: Option<u64>,
        checkpoint_size: Option<u64>,
        message: String,
    ) {
        if let Some(leaf) = leaf_index {
            let first = self.report.first_bad_leaf.get_or_insert(leaf);
            *first = (*first).min(leaf);
        }
        if self.report.problems.len() < FSCK_PROBLEMS_MAX {
            self.report.problems.push(Problem {
                kind,
                leaf_index,
                checkpoint_size,
                message,
            });
        } else {
            self.report.problems_omitted += 1;
        }
    }

    pub(super) fn at_leaf(&mut self, kind: ProblemKind, leaf: u64, message: String) {
        self.problem(kind, Some(leaf), None, message);
    }

    pub(super) fn at_checkpoint(&mut self, kind: ProblemKind, size: u64, message: String) {
        self.problem(kind, None, Some(size), message);
    }

    pub(super) fn general(&mut self, kind: ProblemKind, message: String) {
        self.problem(kind, None, None, message);
    }

    pub(super) fn report_cursor<T>(&mut self, cursor: &Cursor<T>) {
        if let Some(e) = &cursor.error {
            let message = format!(
                "reading table {} failed; the rest of it is unchecked: {e}",
                cursor.table
            );
            self.general(ProblemKind::Unreadable, message);
        }
    }

    pub(super) fn open<K: Key + 'static, V: Value + 'static>(
        &mut self,
        txn: &ReadTransaction,
        def: TableDefinition<K, V>,
    ) -> Option<ReadOnlyTable<K, V>> {
        match txn.open_table(def) {
            Ok(table) => Some(table),
            Err(e) => {
                let message = format!("table {} cannot be opened: {e}", def.name());
                self.general(ProblemKind::Unreadable, message);
                None
            }
        }
    }

    /// Checks a database open for reading: the ledger walk, then the index
    /// tables. A redb panic stops only the phase it happens in.
    pub(super) fn check_database(&mut self, db: &impl ReadableDatabase) -> Result<(), FsckError> {
        let txn = db.begin_read().map_err(|e| FsckError::Unreadable {
            path: self.report.ledger_file.clone(),
            reason: e.to_string(),
        })?;
        self.require_ledger_tables(&txn)?;
        if let Err(panic) = guarded(|| self.walk(&txn)) {
            let message =
                format!("redb panicked during the ledger walk, which stopped there: {panic}");
            self.general(ProblemKind::Unreadable, message);
        }
        if let Err(panic) = guarded(|| self.check_indexes(&txn)) {
            let message =
                format!("redb panicked checking the index tables, which stopped there: {panic}");
            self.general(ProblemKind::Unreadable, message);
        }
        if let Err(panic) = guarded(|| self.check_witness_cosignatures(&txn)) {
            let message = format!(
                "redb panicked checking the witness cosignatures, which stopped there: {panic}"
            );
            self.general(ProblemKind::Unreadable, message);
        }
        Ok(())
    }

    /// A redb file without the ledger's core tables is not a ledger at all.
    fn require_ledger_tables(&self, txn: &ReadTransaction) -> Result<(), FsckError> {
        let listed = guarded(|| {
            txn.list_tables()
                .map(|tables| tables.map(|t| t.name().to_string()).collect::<Vec<_>>())
        });
        let tables = match listed {
            Ok(Ok(tables)) => tables,
            Ok(Err(e)) => {
                return Err(FsckError::Unreadable {
                    path: self.report.ledger_file.clone(),
                    reason: format!("cannot list its tables: {e}"),
                })
            }
            Err(panic) => {
                return Err(FsckError::Unreadable {
                    path: self.report.ledger_file.clone(),
                    reason: format!("redb panicked listing its tables: {panic}"),
                })
            }
        };
        for name in [ENTRIES.name(), META.name()] {
            if !tables.iter().any(|t| t == name) {
                return Err(FsckError::NotDataDir {
                    path: self.report.ledger_file.clone(),
                    reason: format!("the redb file has no {name} table"),
                });
            }
        }
        Ok(())
    }
}
