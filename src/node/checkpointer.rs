//! The leader's checkpoint ticker: a checkpoint when the tree grew and the
//! interval passed or enough leaves arrived, and the replicated witness set
//! kept equal to the configured one.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Config;
use crate::raft::view::RoleChanges;
use crate::raft::{Command, Proposer};
use crate::storage::ledger_store::{same_witness_keys, LedgerStore};

/// On the leader: makes the replicated witness set (which every replica
/// checks witness cosignatures against) the one this node's config lists.
async fn sync_witness_keys(config: &Config, proposer: &Proposer, store: &Arc<LedgerStore>) {
    let configured: Vec<String> = config
        .witnesses
        .iter()
        .map(|w| w.verifier_key.trim().to_string())
        .collect();
    let s = store.clone();
    let replicated = match tokio::task::spawn_blocking(move || s.witness_keys()).await {
        Ok(Ok(keys)) => keys,
        _ => return,
    };
    if same_witness_keys(&configured, &replicated) {
        return;
    }
    match proposer
        .propose_local(Command::SetWitnesses {
            verifier_keys: configured,
        })
        .await
    {
        Ok(r) => {
            if let Some(reason) = r.refusal() {
                tracing::error!(reason, "witness keys refused");
            }
        }
        Err(e) => tracing::debug!(error = %e, "witness keys not proposed"),
    }
}

/// On the leader, proposes a checkpoint when the tree grew and either the
/// interval passed or `every_entries` leaves arrived.
pub(super) async fn checkpoint_ticker(
    config: Config,
    proposer: Proposer,
    store: Arc<LedgerStore>,
    mut applied: watch::Receiver<crate::storage::Applied>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(config.checkpoint.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_checkpoint: Option<u64> = None;
    let mut leading = false;
    // Changes with the role and the leader, not with every entry.
    let mut roles = RoleChanges::new(proposer.raft());
    loop {
        // Only the leader counts applied leaves: waking on every apply
        // cost each node a task wake-up per entry (followers gained 10% at
        // one client without it). Another node waits for its role to
        // change, so a new leader cuts its first checkpoint at once.
        let by_count = tokio::select! {
            _ = tick.tick() => false,
            r = applied.changed(), if leading => { if r.is_err() { return; } true }
            up = roles.changed(), if !leading => { if !up { return; } false }
        };
        leading = proposer.raft().current_leader().await == Some(config.id);
        if !leading {
            last_checkpoint = None;
            continue;
        }
        // A leader low on disk is handing over; proposing would only be
        // refused, once a tick.
        if proposer.space().is_low() {
            continue;
        }
        // The configured witness set changes only with a restart: check it
        // when this node takes the lead and on every tick, not on every
        // applied entry (a ledger read each time, on the append path).
        if !by_count || last_checkpoint.is_none() {
            sync_witness_keys(&config, &proposer, &store).await;
        }
        let size = applied.borrow().tree_size;
        if last_checkpoint.is_none() {
            let s = store.clone();
            last_checkpoint = tokio::task::spawn_blocking(move || s.checkpoint_sizes(1))
                .await
                .ok()
                .and_then(|r| r.ok())
                .and_then(|v| v.first().copied());
        }
        let due = match last_checkpoint {
            None => true,
            Some(last) if size <= last => false,
            Some(last) => !by_count || size - last >= config.checkpoint.every_entries,
        };
        if !due {
            continue;
        }
        match proposer.propose_local(Command::Checkpoint).await {
            Ok(crate::raft::CommandResponse::Checkpointed { size: Some(s) }) => {
                last_checkpoint = Some(s)
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "checkpoint not proposed"),
        }
        tick.reset();
    }
}
