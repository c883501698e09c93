//! Group commit: appends that arrive while earlier ones are still being
//! committed travel together as one Raft entry ([`Command::AppendGroup`]).
//!
//! Every Raft entry costs the same fixed work on every replica whatever it
//! carries: a log row, an encoding on the way out and a decoding on the way
//! in for each follower, the Raft core's bookkeeping, a responder, and on a
//! follower a forwarded request to the leader. With many clients each
//! sending one event, that fixed work, not the events, is what runs out of
//! CPU. So a node keeps at most [`GROUP_IN_FLIGHT_MAX`] groups in flight;
//! appends arriving meanwhile queue, and the next group takes all of them
//! that fit one batch's budget ([`BATCH_EVENTS_MAX`] events and
//! [`BATCH_BYTES_MAX`] leaf bytes, so a group's entry is no larger than one
//! batch's may be). A lone client waits for no one: an append that finds
//! nothing in flight is proposed at once, alone, as a plain
//! [`Command::Append`].
//!
//! Each batch in a group keeps its own meaning: it is validated, refused or
//! deduplicated alone where it is applied, and its caller gets its own
//! result. A follower groups the appends it forwards, so the leader
//! receives one forwarded request per group, and the leader's intake
//! ([`super::intake`]) puts each forwarded batch in its own queue beside
//! its clients' appends. A group holding a forwarded batch is proposed on
//! this node or not at all: forwarded twice, a batch could travel in
//! circles while leadership moves.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::proposer::{ProposeError, Proposer};
use super::Batch;
use super::CommandResponse;
use crate::limits::{
    BATCH_BYTES_MAX, BATCH_EVENTS_MAX, FORWARD_GROUPS_IN_FLIGHT_MAX, GROUP_IN_FLIGHT_MAX,
};

/// One caller's batch waiting for a group.
struct Pending {
    events: Batch,
    /// Its leaves' bytes, as `validate_events` measured them.
    bytes: usize,
    /// Another node forwarded it here: it is proposed here or refused.
    forwarded: bool,
    reply: oneshot::Sender<Result<CommandResponse, ProposeError>>,
}

/// The queue of one node's appends. Dropping every handle ends its task.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::UnboundedSender<Pending>,
}

impl GroupCommit {
    /// Starts the group task, which proposes through `proposer` (one that
    /// does not group, so proposals do not loop back here).
    pub(crate) fn start(proposer: Proposer) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(proposer, rx));
        Self { queue }
    }

    /// Proposes `events` (already validated, `bytes` of leaves) in the next
    /// group, and returns what applying this batch did.
    pub(crate) async fn submit(
        &self,
        events: Batch,
        bytes: usize,
    ) -> Result<CommandResponse, ProposeError> {
        self.enqueue(events, bytes, false).await
    }

    /// [`GroupCommit::submit`] for a batch another node forwarded: proposed
    /// on this node, never forwarded again.
    pub(crate) async fn submit_forwarded(
        &self,
        events: Batch,
        bytes: usize,
    ) -> Result<CommandResponse, ProposeError> {
        self.enqueue(events, bytes, true).await
    }

    async fn enqueue(
        &self,
        events: Batch,
        bytes: usize,
        forwarded: bool,
    ) -> Result<CommandResponse, ProposeError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            events,
            bytes,
            forwarded,
            reply,
        };
        self.queue
            .send(pending)
            .map_err(|_| ProposeError::Stopping)?;
        // The task is gone only when the node is shutting down.
        answer.await.map_err(|_| ProposeError::Stopping)?
    }
}

/// Forms groups while permits allow and commits each in a task of its own.
async fn run(proposer: Proposer, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let in_flight = Arc::new(Semaphore::new(GROUP_IN_FLIGHT_MAX));
    let forwarding = Arc::new(Semaphore::new(FORWARD_GROUPS_IN_FLIGHT_MAX));
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        // Waiting here is what lets a group form: appends queue meanwhile.
        // A leader's groups are Raft entries: few and full is cheapest. A
        // follower's are forwards to the leader, which groups them again
        // with everything else it receives: holding them back here only
        // queues them twice.
        let slots = if proposer.leads() {
            &in_flight
        } else {
            &forwarding
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut events = first.events.len();
        let mut bytes = first.bytes;
        let mut group = vec![first];
        while let Ok(next) = rx.try_recv() {
            if events + next.events.len() > BATCH_EVENTS_MAX || bytes + next.bytes > BATCH_BYTES_MAX
            {
                carried = Some(next);
                break;
            }
            events += next.events.len();
            bytes += next.bytes;
            group.push(next);
        }
        let proposer = proposer.clone();
        tokio::spawn(async move {
            commit(&proposer, group).await;
            drop(permit);
        });
    }
}

/// Proposes one group and hands each caller its batch's result.
async fn commit(proposer: &Proposer, mut group: Vec<Pending>) {
    let mut here_only = group.iter().any(|p| p.forwarded);
    if here_only && !proposer.leads() {
        // No longer the leader: forwarded batches go back to their node,
        // which retries at the new leader; this node's own are forwarded.
        let (forwarded, own): (Vec<_>, Vec<_>) = group.into_iter().partition(|p| p.forwarded);
        let e = proposer.not_leader();
        for p in forwarded {
            let _ = p.reply.send(Err(e.clone()));
        }
        group = own;
        here_only = false;
        if group.is_empty() {
            return;
        }
    }
    let (batches, replies): (Vec<_>, Vec<_>) =
        group.into_iter().map(|p| (p.events, p.reply)).unzip();
    let results = proposer.propose_group(batches, here_only).await;
    debug_assert_eq!(results.len(), replies.len(), "one result per batch");
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(result);
    }
}
