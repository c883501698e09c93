//! The store's errors: one enum, fatal (the database failed, stored data is
//! corrupt) apart from what a caller asked wrongly, and how each redb error
//! becomes one.

use crate::ledger::merkle::MerkleError;

/// Errors of the ledger store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed; the state may be unusable (fatal).
    #[error("storage failure: {0}")]
    Db(#[from] redb::Error),
    /// Stored bytes do not decode or do not hash as recorded (fatal: corruption).
    #[error("stored data is corrupt: table {table}, key {key}: {reason}")]
    Corrupt {
        /// The redb table, as named in the file.
        table: &'static str,
        /// The key (or key range) whose value is wrong.
        key: String,
        reason: String,
    },
    /// A Merkle computation failed; out-of-range requests surface as OUT_OF_RANGE.
    #[error(transparent)]
    Merkle(#[from] MerkleError),
    /// A caller asked for something outside the tree (OUT_OF_RANGE).
    #[error("{what} {value} is beyond the tree size {size}")]
    OutOfRange {
        what: &'static str,
        value: u64,
        size: u64,
    },
    /// No checkpoint exists at the requested size (NOT_FOUND).
    #[error("no checkpoint at size {size}")]
    NoCheckpoint { size: u64 },
    /// A page token that this store did not issue (INVALID_ARGUMENT).
    #[error("invalid page token {token:?}")]
    BadPageToken { token: String },
    /// A snapshot that does not rebuild into a consistent state.
    #[error("snapshot rejected: {0}")]
    BadSnapshot(String),
    #[error("snapshot i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A [`StoreError::Corrupt`] naming where: the table, the key, and what is
/// wrong with the value there.
pub(super) fn corrupt(
    table: &'static str,
    key: impl std::fmt::Display,
    reason: impl std::fmt::Display,
) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

macro_rules! redb_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
redb_errors!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
