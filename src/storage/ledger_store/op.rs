//! The commands the store applies, in Raft log order, and what each one
//! did: appended, checkpointed, signed, or refused with a reason.

use serde::{Deserialize, Serialize};

use crate::ledger::checkpoint::SignatureLine;
use crate::ledger::event::Event;

/// One client's batch of events, shared: a Raft entry's command is read
/// once for each follower it is sent to and once to apply it, and each
/// read copied every event (strings and details) before.
pub type Batch = std::sync::Arc<Vec<Event>>;

/// One operation to apply, in Raft log order.
#[derive(Clone, Debug)]
pub enum Op {
    /// Append a batch of events atomically, stamped with the leader's time.
    Append {
        events: Batch,
        commit_time_unix_nanos: i64,
    },
    /// Append several clients' batches, proposed together by group
    /// commit: each is applied as its own [`Op::Append`] (validated and
    /// refused alone), in order, with one commit time.
    AppendGroup {
        batches: Vec<Batch>,
        commit_time_unix_nanos: i64,
    },
    /// Cut a checkpoint at the current tree size (a no-op if one exists).
    Checkpoint,
    /// Add a voter's signature over the checkpoint at `size`, if it verifies
    /// with `verifier_key`.
    Cosign {
        size: u64,
        line: SignatureLine,
        verifier_key: String,
    },
    /// Add a witness's cosignature over the checkpoint at `size`, if
    /// `verifier_key` is in the replicated witness set and the line verifies
    /// with it.
    WitnessCosign {
        size: u64,
        line: SignatureLine,
        verifier_key: String,
    },
    /// Replace the replicated witness set, if every key is a valid
    /// `cosignature/v1` key, none repeats and there are at most
    /// `config::WITNESSES_MAX`.
    SetWitnesses { verifier_keys: Vec<String> },
    /// A command refused before it reached the store (a cosignature by a
    /// non-voter, a line that does not parse): recorded as
    /// [`OpResult::Refused`] with this reason, changing nothing.
    Refuse { reason: String },
    /// A Raft entry with no ledger effect (blank, membership).
    Nothing,
}

impl Op {
    /// The most leaves applying this op can add: its events (a checkpoint,
    /// a signature or a refusal adds none).
    pub fn leaves_max(&self) -> u64 {
        match self {
            Op::Append { events, .. } => events.len() as u64,
            Op::AppendGroup { batches, .. } => batches.iter().map(|b| b.len() as u64).sum(),
            _ => 0,
        }
    }
}

/// The result of one applied [`Op`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum OpResult {
    Appended {
        indices: Vec<u64>,
        deduplicated: Vec<bool>,
        tree_size: u64,
    },
    /// The size of the checkpoint cut, if the tree grew since the last one.
    Checkpointed {
        size: Option<u64>,
    },
    Cosigned {
        accepted: bool,
    },
    WitnessCosigned {
        accepted: bool,
    },
    /// What each batch of an [`Op::AppendGroup`] did, in order.
    Grouped {
        results: Vec<OpResult>,
    },
    /// The witness set was replaced; `changed` is false when it already was
    /// the one given.
    WitnessesSet {
        changed: bool,
    },
    /// The command was refused where it was applied and changed nothing
    /// (no leaf, no index, no signature); `reason` says why, for the
    /// proposer's caller. Every replica refuses it alike.
    Refused {
        reason: String,
    },
    #[default]
    Nothing,
}

impl OpResult {
    /// Why the command was refused, if it was: lets callers that match
    /// only the success they expect report a refusal as such.
    pub fn refusal(&self) -> Option<&str> {
        match self {
            OpResult::Refused { reason } => Some(reason),
            _ => None,
        }
    }

    pub(super) fn refused(reason: impl std::fmt::Display) -> Self {
        OpResult::Refused {
            reason: reason.to_string(),
        }
    }
}
