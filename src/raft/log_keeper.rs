//! Keeps the Raft log bounded in bytes.
//!
//! openraft builds a snapshot every `raft.snapshot_logs_since_last` entries
//! and then keeps `raft.max_in_snapshot_log_to_keep` entries behind it:
//! both are counts. An entry holds one batch or one group, up to a thousand
//! events (about 400 KB), so the log of a node appended to in large batches
//! grew to thousands of such entries, gigabytes, before anything was purged
//! (`scripts/bench-growth.sh`: 259-741 bytes of Raft log per event beside
//! the ledger's 674).
//!
//! Here, every [`KEEPER_INTERVAL_MS`], a node looks at the entries its log
//! holds only on disk, below the in-memory tail (`raft.log_memory_bytes`,
//! the newest entries, which replication reads). Once those hold about
//! `raft.log_purge_bytes`, it asks openraft for a snapshot if none covers
//! them yet, and purges them once one does (`trigger().purge_log`, which
//! openraft delays while a replication still reads them). A snapshot costs
//! little here: it names the ledger's stored leaves instead of copying them.
//! So the log on disk stays within about the two budgets together, however
//! long the log and however large its entries. A follower that falls
//! further behind than that is restored from a snapshot instead of the log.
use std::time::Duration;

use super::log_store::LogStore;
use super::Raft;

/// How often the log is looked at, ms.
pub const KEEPER_INTERVAL_MS: u64 = 1000;

/// Runs until aborted when the node stops.
pub async fn run(raft: Raft, log: LogStore, purge_bytes: u64) {
    let mut tick = tokio::time::interval(Duration::from_millis(KEEPER_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(disk) = log.disk_only() else {
            continue;
        };
        if disk.bytes < purge_bytes {
            continue;
        }
        let snapshot = super::metrics(&raft).snapshot.map(|id| id.index);
        let result = match snapshot {
            Some(covered) if covered >= disk.last => {
                tracing::debug!(
                    upto = disk.last,
                    bytes = disk.bytes,
                    "purging the raft log below its tail"
                );
                raft.trigger().purge_log(disk.last).await
            }
            _ => {
                tracing::debug!(
                    bytes = disk.bytes,
                    "raft log beyond its tail: building a snapshot"
                );
                raft.trigger().snapshot().await
            }
        };
        if result.is_err() {
            // Raft stopped: the node is shutting down or exits on its own.
            return;
        }
    }
}
