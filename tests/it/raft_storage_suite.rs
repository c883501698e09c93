//! openraft's storage conformance suite, run against Ironlog's log store
//! and ledger state machine (each case on fresh files): once with the log's
//! in-memory tail at its size in production, and once with none, so that
//! every durable entry is read back from redb.
use std::sync::Arc;

use ironlog::limits::RAFT_LOG_TAIL_BYTES;
use ironlog::raft::{LogStore, StateMachine, TypeConfig};
use ironlog::storage::ledger_store::LedgerStore;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;

/// Builds the stores; the log keeps `tail_bytes` of durable entries in
/// memory.
struct RedbBuilder {
    tail_bytes: usize,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RedbBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = LogStore::open_with_tail(&dir.path().join("raft-log"), self.tail_bytes)
            .expect("log store opens");
        let store = Arc::new(
            LedgerStore::open(&dir.path().join("ledger.redb"), "test/suite").expect("ledger opens"),
        );
        let (sm, _checkpoints) =
            StateMachine::open(store, &dir.path().join("snapshots")).expect("sm opens");
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_log_store_and_state_machine_pass_openraft_suite(
) -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(RedbBuilder {
        tail_bytes: RAFT_LOG_TAIL_BYTES,
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_read_from_redb_alone_passes_openraft_suite() -> Result<(), StorageError<TypeConfig>>
{
    Suite::test_all(RedbBuilder { tail_bytes: 0 }).await?;
    Ok(())
}
