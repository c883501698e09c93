//! Maps every layer's errors to gRPC statuses, in one place.
//!
//! - bad client input: INVALID_ARGUMENT (which field, which limit);
//! - indices or sizes beyond the tree: OUT_OF_RANGE;
//! - batches over a named limit, and writes to a node below its free-space
//!   floor (`storage.free_bytes_min`): RESOURCE_EXHAUSTED;
//! - not the leader / no leader / a node shutting down / not committed in
//!   time: UNAVAILABLE, naming the leader when known (retry elsewhere or later);
//! - corruption, storage failure, a Raft that stopped on a fatal error:
//!   INTERNAL (the node needs an operator);
//! - the analysis node: see [`from_analyst`]; membership changes: see
//!   [`from_membership`].
//!
//! The Raft service (`raft::service`) answers peers, not clients, and keeps
//! its own few statuses: it sits below this layer.
use tonic::Status;

use crate::analysis::analyst::AnalystError;
use crate::ledger::event::EventError;
use crate::ledger::merkle::MerkleError;
use crate::raft::ProposeError;
use crate::storage::ledger_store::StoreError;

pub fn from_store(e: StoreError) -> Status {
    match e {
        StoreError::OutOfRange { .. } => Status::out_of_range(e.to_string()),
        StoreError::NoCheckpoint { .. } => Status::not_found(e.to_string()),
        StoreError::BadPageToken { .. } => Status::invalid_argument(e.to_string()),
        StoreError::Merkle(m) => from_merkle(m),
        StoreError::Db(_)
        | StoreError::Corrupt { .. }
        | StoreError::BadSnapshot(_)
        | StoreError::Io(_) => {
            tracing::error!(error = %e, "storage failure");
            Status::internal(e.to_string())
        }
    }
}

pub fn from_merkle(e: MerkleError) -> Status {
    match e {
        MerkleError::IndexOutOfRange { .. } | MerkleError::TileBeyondTree { .. } => {
            Status::out_of_range(e.to_string())
        }
        MerkleError::SizeOutOfOrder { .. } => Status::invalid_argument(e.to_string()),
        other => Status::internal(other.to_string()),
    }
}

pub fn from_event(index: usize, e: EventError) -> Status {
    Status::invalid_argument(format!("event {index}: {e}"))
}

/// A membership change not made: "ask the leader" and "raft is stopping"
/// are UNAVAILABLE (retry elsewhere or later), a refused change
/// FAILED_PRECONDITION (the request must change).
pub fn from_membership(e: crate::raft::MembershipError) -> Status {
    use crate::raft::MembershipError;
    match e {
        MembershipError::NotLeader { .. } | MembershipError::Unavailable(_) => {
            Status::unavailable(e.to_string())
        }
        MembershipError::Refused(_) => Status::failed_precondition(e.to_string()),
    }
}

/// A proposal not made. "Retry elsewhere or later" (no leader here, a node
/// shutting down, not committed in time) is UNAVAILABLE; a node whose Raft
/// failed is INTERNAL, so that a client and an alert can tell the two
/// apart: that node stops itself and an operator must read its log.
pub fn from_propose(e: ProposeError) -> Status {
    match e {
        ProposeError::Forwarded(s) => s,
        ProposeError::DiskLow(low) => Status::resource_exhausted(low.to_string()),
        ProposeError::Fatal(_) => Status::internal(e.to_string()),
        ProposeError::NotLeader { .. } | ProposeError::Timeout { .. } | ProposeError::Stopping => {
            Status::unavailable(e.to_string())
        }
    }
}

/// The analysis node's errors: a bad question or window is the caller's
/// (INVALID_ARGUMENT); no model is FAILED_PRECONDITION (this node cannot
/// answer); a model that timed out, was cancelled or failed is a retry;
/// storage is INTERNAL.
pub fn from_analyst(e: AnalystError) -> Status {
    match e {
        AnalystError::Question(_) | AnalystError::Window(_) => {
            Status::invalid_argument(e.to_string())
        }
        AnalystError::ModelUnavailable(_) => Status::failed_precondition(e.to_string()),
        AnalystError::Model(crate::analysis::model::ModelError::Cancelled) => {
            Status::unavailable(e.to_string())
        }
        AnalystError::Model(crate::analysis::model::ModelError::Abandoned) => {
            Status::cancelled(e.to_string())
        }
        AnalystError::Model(crate::analysis::model::ModelError::Timeout { .. }) => {
            Status::deadline_exceeded(e.to_string())
        }
        AnalystError::Model(_) => Status::unavailable(e.to_string()),
        AnalystError::Storage(_) => Status::internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_reads_are_out_of_range_not_internal() {
        let s = from_store(StoreError::OutOfRange {
            what: "leaf index",
            value: 9,
            size: 3,
        });
        assert_eq!(s.code(), tonic::Code::OutOfRange);
        assert!(s.message().contains('9') && s.message().contains('3'));
    }

    #[test]
    fn not_leader_names_the_leader() {
        let s = from_propose(ProposeError::NotLeader {
            leader: Some((2, "127.0.0.1:7002".into())),
        });
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert!(s.message().contains("127.0.0.1:7002"), "{}", s.message());
    }

    #[test]
    fn a_failed_raft_is_internal_but_a_stopping_one_is_unavailable() {
        let failed = from_propose(ProposeError::Fatal("No space left on device".into()));
        assert_eq!(failed.code(), tonic::Code::Internal);
        assert!(
            failed.message().contains("No space left"),
            "{}",
            failed.message()
        );
        let stopping = from_propose(ProposeError::Stopping);
        assert_eq!(stopping.code(), tonic::Code::Unavailable);
        let late = from_propose(ProposeError::Timeout { ms: 10_000 });
        assert_eq!(late.code(), tonic::Code::Unavailable);
    }

    #[test]
    fn a_node_low_on_disk_is_resource_exhausted_and_names_the_floor() {
        let s = from_propose(ProposeError::DiskLow(crate::disk::DiskLow {
            node_id: 1,
            free_bytes: 10,
            floor_bytes: 8388608,
            resume_bytes: 9437184,
        }));
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(
            s.message().contains("storage.free_bytes_min") && s.message().contains("8388608"),
            "{}",
            s.message()
        );
    }
}
