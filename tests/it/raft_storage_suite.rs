//! openraft's storage conformance suite, run against Ironlog's redb log store
//! and ledger state machine (each case on fresh files).
use std::sync::Arc;

use ironlog::raft::{LogStore, StateMachine, TypeConfig};
use ironlog::storage::ledger_store::LedgerStore;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;

struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RedbBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = LogStore::open(&dir.path().join("raft-log.redb")).expect("log store opens");
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
    Suite::test_all(RedbBuilder).await?;
    Ok(())
}
