//! The leader's intake of commands other nodes forward to it, whether they
//! come by the unary `Forward` call or over a `ForwardStream`.
//!
//! Who may forward what is checked here, once for both ways in. Forwarded
//! appends then join this node's group commit beside its own clients'
//! appends: everything that arrives while earlier groups commit travels as
//! one Raft entry, wherever it came in. Proposed straight to the Raft core
//! instead, every follower's forward was an entry of its own, and with
//! clients spread over three nodes nearly every event was (0.95 entries per
//! event at 16 clients, against 0.45 with the intake grouping them).
//!
//! Every batch of a forwarded group gets its own [`Outcome`]: the leader may
//! place two batches of one forward in different groups, and one may commit
//! while the other times out.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tonic::Status;

use super::proposer::{ProposeError, Proposer};
use super::service::{check_sender, Claim, PeerError};
use super::{Command, CommandResponse, NodeId, Raft};
use crate::auth::{Caller, CallerKind, RefusalLog};
use crate::limits::{FORWARD_IN_FLIGHT_MAX, RESERVED_SOURCE_PREFIX};

/// The gRPC method refusals of forwarded commands are recorded under,
/// whichever way they came: the stream carries the same commands.
const FORWARD_METHOD: &str = "ironlog.v1.Raft/Forward";

/// What became of one forwarded command, or of one batch of a forwarded
/// group, as the forwarding node hands it to its caller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// Applied (possibly refused where it was applied, which the response
    /// says).
    Done(CommandResponse),
    /// Not proposed, or not known to have committed: the gRPC status the
    /// leader gave it, passed on as it came.
    Failed { code: i32, message: String },
}

impl Outcome {
    pub fn failed(status: &Status) -> Self {
        Outcome::Failed {
            code: status.code() as i32,
            message: status.message().to_string(),
        }
    }

    pub fn into_result(self) -> Result<CommandResponse, ProposeError> {
        match self {
            Outcome::Done(response) => Ok(response),
            // OK is no failure: a leader that says so is faulty.
            Outcome::Failed { code: 0, message } => Err(ProposeError::BadForwardReply(format!(
                "a failure with code OK: {message}"
            ))),
            Outcome::Failed { code, message } => Err(ProposeError::Forwarded(Status::new(
                tonic::Code::from(code),
                message,
            ))),
        }
    }
}

/// One outcome per batch, from what the leader answered for a forward of
/// `batches` batches: one outcome each, or a single failure for them all (a
/// command refused whole before anything was proposed).
pub fn per_batch(
    outcomes: Vec<Outcome>,
    batches: usize,
) -> Vec<Result<CommandResponse, ProposeError>> {
    match outcomes.len() {
        n if n == batches => outcomes.into_iter().map(Outcome::into_result).collect(),
        // Refused whole: before anything was proposed, or where it was
        // applied (a group the store would not take).
        1 if matches!(
            outcomes[0],
            Outcome::Failed { .. } | Outcome::Done(CommandResponse::Refused { .. })
        ) =>
        {
            let whole = outcomes[0].clone().into_result();
            vec![whole; batches]
        }
        n => {
            let e = ProposeError::BadForwardReply(format!(
                "{n} outcomes for a forward of {batches} batches"
            ));
            vec![Err(e); batches]
        }
    }
}

/// Checks and proposes forwarded commands on the leader.
#[derive(Clone)]
pub struct Intake {
    raft: Raft,
    proposer: Proposer,
    refusals: RefusalLog,
    /// Forwarded commands each node has unanswered here, over all its
    /// streams ([`FORWARD_IN_FLIGHT_MAX`]); `None` for callers of an
    /// `--insecure` node, which carry no node identity.
    slots: Arc<Mutex<HashMap<Option<NodeId>, Arc<Semaphore>>>>,
}

impl Intake {
    pub fn new(proposer: Proposer, refusals: RefusalLog) -> Self {
        Self {
            raft: proposer.raft().clone(),
            proposer,
            refusals,
            slots: Arc::default(),
        }
    }

    /// The node a caller forwards for, checked to be a member; `None` for
    /// the callers of an `--insecure` node, which may forward anything.
    /// A refusal is recorded.
    pub fn sender(&self, caller: &Caller) -> Result<Option<NodeId>, Status> {
        let from = node_of(caller);
        if let Some(id) = from {
            self.check(caller, id, Claim::Member, "Forward")?;
        }
        Ok(from)
    }

    fn check(
        &self,
        caller: &Caller,
        claimed: NodeId,
        claim: Claim,
        what: &str,
    ) -> Result<(), Status> {
        check_sender(&self.raft, &self.refusals, caller, claimed, claim, what)
    }

    /// What a member may forward: appends (with no other node's refusal
    /// records among them), its own signatures and witness cosignatures;
    /// checkpoints and the witness set are only ever the leader's own.
    /// Everything is validated again where it is applied.
    fn admit(&self, caller: &Caller, cmd: &Command) -> Result<(), Status> {
        let from = self.sender(caller)?;
        let refuse = |e: PeerError| Err(self.refusals.refuse(caller, FORWARD_METHOD, e.into()));
        match cmd {
            Command::Cosign { node_id, .. } => {
                self.check(caller, *node_id, Claim::Member, "Forward(Cosign)")
            }
            Command::Append { .. } | Command::AppendGroup { .. } => {
                let own = from.map(|id| format!("{RESERVED_SOURCE_PREFIX}node-{id}"));
                let forged = cmd.appended_events().find(|e| {
                    e.source.starts_with(RESERVED_SOURCE_PREFIX)
                        && own.as_deref() != Some(e.source.as_str())
                });
                match forged {
                    Some(e) => refuse(PeerError::ForgedSource {
                        source_name: e.source.clone(),
                    }),
                    None => Ok(()),
                }
            }
            Command::WitnessCosign { .. } => Ok(()),
            Command::Checkpoint | Command::SetWitnesses { .. } => {
                if caller.kind == CallerKind::Insecure {
                    Ok(())
                } else {
                    refuse(PeerError::NotForwardable {
                        command: cmd.to_string(),
                    })
                }
            }
        }
    }

    /// The slots of the node `caller` forwards for, shared by all its
    /// streams: a peer may open many, and each request may be as large as
    /// a Raft message.
    pub fn slots(&self, caller: &Caller) -> Arc<Semaphore> {
        self.slots
            .lock()
            .expect("forward slots lock")
            .entry(node_of(caller))
            .or_insert_with(|| Arc::new(Semaphore::new(FORWARD_IN_FLIGHT_MAX)))
            .clone()
    }

    /// Checks `cmd` from `caller` and proposes it here: one outcome for a
    /// command, and for a group of appends one per batch or one for the
    /// whole, as `grouping` says. `Err` refuses it whole, with nothing
    /// proposed. Every proposal is bounded by the commit timeout, so a
    /// leader without a quorum answers rather than holding the request.
    pub async fn take(
        &self,
        caller: &Caller,
        cmd: Command,
        grouping: Grouping,
    ) -> Result<Vec<Outcome>, Status> {
        self.admit(caller, &cmd)?;
        let what = cmd.to_string();
        let (results, appends) = match (cmd, grouping) {
            (Command::Append { events, .. }, _) => {
                (vec![self.proposer.propose_forwarded(events).await], true)
            }
            (Command::AppendGroup { batches, .. }, Grouping::PerBatch) => {
                let each = batches
                    .into_iter()
                    .map(|events| self.proposer.propose_forwarded(events));
                (futures::future::join_all(each).await, true)
            }
            (group @ Command::AppendGroup { .. }, Grouping::Whole) => {
                (vec![self.proposer.propose_here(group).await], true)
            }
            (other, _) => (vec![self.proposer.propose_here(other).await], false),
        };
        Ok(results
            .into_iter()
            .map(|result| match result {
                Ok(response) => {
                    // Refused where it was applied: a node forwarded what
                    // the gate does not let in, which is worth a record
                    // (one per refused batch of a group). A cosignature
                    // refused because its node is not (yet, or any more)
                    // a voter is routine during membership changes, and
                    // recording it would add a leaf, a checkpoint, and
                    // another cosignature to refuse.
                    let refused: Vec<&str> = match &response {
                        CommandResponse::Grouped { results } => {
                            results.iter().filter_map(|r| r.refusal()).collect()
                        }
                        single => Vec::from_iter(single.refusal()),
                    };
                    for reason in refused.into_iter().filter(|_| appends) {
                        self.refusals.refuse(
                            caller,
                            FORWARD_METHOD,
                            PeerError::RefusedAtApply {
                                what: what.clone(),
                                reason: reason.to_string(),
                            }
                            .into(),
                        );
                    }
                    Outcome::Done(response)
                }
                Err(e) => Outcome::failed(&Status::from(PeerError::Forward(e))),
            })
            .collect())
    }
}

/// The node a caller is authenticated as, if it is one.
fn node_of(caller: &Caller) -> Option<NodeId> {
    match caller.kind {
        CallerKind::Node(id) => Some(id),
        _ => None,
    }
}

/// How a forwarded group of appends is proposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// Each batch joins this node's group commit on its own and gets its
    /// own outcome: for a forwarding node that hands each batch's outcome
    /// to its own caller (over the stream).
    PerBatch,
    /// The group is proposed whole, as one entry, with one outcome: for a
    /// forwarding node that gives every batch of the group the same answer
    /// (a unary `Forward` from an older version). Split, a batch that
    /// committed could share a failure that says nothing was appended.
    Whole,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn appended(index: u64) -> CommandResponse {
        CommandResponse::Appended {
            indices: vec![index],
            deduplicated: vec![false],
            tree_size: index + 1,
        }
    }

    #[test]
    fn outcomes_are_handed_out_per_batch_and_a_whole_refusal_to_every_batch() {
        let unavailable = Outcome::failed(&Status::unavailable("not the leader"));
        let mixed = per_batch(vec![Outcome::Done(appended(4)), unavailable.clone()], 2);
        assert_eq!(mixed[0].as_ref().unwrap(), &appended(4));
        match &mixed[1] {
            Err(ProposeError::Forwarded(s)) => {
                assert_eq!(s.code(), tonic::Code::Unavailable);
                assert_eq!(s.message(), "not the leader");
            }
            other => panic!("expected the leader's status, got {other:?}"),
        }

        let whole = per_batch(vec![unavailable], 3);
        assert_eq!(whole.len(), 3);
        assert!(whole
            .iter()
            .all(|r| matches!(r, Err(ProposeError::Forwarded(_)))));

        // OK is not a failure: a faulty leader's answer.
        let ok = Outcome::Failed {
            code: 0,
            message: "fine".into(),
        };
        assert!(matches!(
            ok.into_result(),
            Err(ProposeError::BadForwardReply(_))
        ));

        // A lone success cannot stand for three batches: a bad reply.
        let short = per_batch(vec![Outcome::Done(appended(1))], 3);
        assert!(short
            .iter()
            .all(|r| matches!(r, Err(ProposeError::BadForwardReply(_)))));
    }
}
