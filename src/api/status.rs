//! Where every layer's errors become gRPC statuses: one `From<_> for
//! Status` per error type, so a handler's `?` picks the code and no code
//! is chosen anywhere else.
//!
//! - bad client input: INVALID_ARGUMENT (which field, which limit);
//! - indices or sizes beyond the tree: OUT_OF_RANGE;
//! - batches over a named limit, a caller over its rate, and writes to a
//!   node below its free-space floor (`storage.free_bytes_min`):
//!   RESOURCE_EXHAUSTED;
//! - no credentials: UNAUTHENTICATED; credentials without the role, or a
//!   peer claiming to be another node: PERMISSION_DENIED;
//! - "retry elsewhere or later" (not the leader, no leader, a node shutting
//!   down, not committed in time): UNAVAILABLE, naming the leader when known;
//! - "an operator must look" (corruption, storage failure, a Raft that
//!   stopped on a fatal error): INTERNAL;
//! - the analysis node: see `From<AnalystError>`; membership changes: see
//!   `From<MembershipError>`.
//!
//! The layers below (`auth`, the peer service in `raft::service`) return
//! their own typed errors ([`AuthError`], [`PeerError`]) and never import
//! this module: the conversions are trait impls, which `?` finds wherever
//! the error is raised.
use tonic::Status;

use super::error::ApiError;
use crate::analysis::analyst::AnalystError;
use crate::analysis::model::ModelError;
use crate::auth::AuthError;
use crate::ledger::batch::BatchError;
use crate::ledger::merkle::MerkleError;
use crate::raft::{MembershipError, PeerError, ProposeError};
use crate::storage::ledger_store::StoreError;

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Status {
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
}

/// The core crate's error (a foreign type: no `From` impl can live here).
fn from_merkle(e: MerkleError) -> Status {
    match e {
        MerkleError::IndexOutOfRange { .. } | MerkleError::TileBeyondTree { .. } => {
            Status::out_of_range(e.to_string())
        }
        MerkleError::SizeOutOfOrder { .. } => Status::invalid_argument(e.to_string()),
        other => Status::internal(other.to_string()),
    }
}

/// A membership change not made: "ask the leader" and "raft is stopping"
/// are UNAVAILABLE (retry elsewhere or later), a refused change
/// FAILED_PRECONDITION (the request must change).
impl From<MembershipError> for Status {
    fn from(e: MembershipError) -> Status {
        match e {
            MembershipError::NotLeader { .. } | MembershipError::Unavailable(_) => {
                Status::unavailable(e.to_string())
            }
            MembershipError::Refused(_) => Status::failed_precondition(e.to_string()),
        }
    }
}

/// A client's proposal not made. "Retry elsewhere or later" (no leader
/// here, a node shutting down, not committed in time) is UNAVAILABLE; a
/// node whose Raft failed is INTERNAL, so that a client and an alert can
/// tell the two apart: that node stops itself and an operator must read
/// its log.
impl From<ProposeError> for Status {
    fn from(e: ProposeError) -> Status {
        match e {
            ProposeError::Forwarded(s) => s,
            ProposeError::DiskLow(low) => Status::resource_exhausted(low.to_string()),
            ProposeError::Fatal(_) | ProposeError::BadForwardReply(_) => {
                Status::internal(e.to_string())
            }
            ProposeError::NotLeader { .. }
            | ProposeError::LeaderUnreachable { .. }
            | ProposeError::Timeout { .. }
            | ProposeError::CommitUnknown { .. }
            | ProposeError::Stopping => Status::unavailable(e.to_string()),
        }
    }
}

/// The analysis node's errors: a bad question or window is the caller's
/// (INVALID_ARGUMENT); no model is FAILED_PRECONDITION (this node cannot
/// answer); a model that timed out, was cancelled or failed is a retry;
/// storage is INTERNAL.
impl From<AnalystError> for Status {
    fn from(e: AnalystError) -> Status {
        match e {
            AnalystError::Question(_) | AnalystError::Window(_) => {
                Status::invalid_argument(e.to_string())
            }
            AnalystError::ModelUnavailable(_) => Status::failed_precondition(e.to_string()),
            AnalystError::Model(ModelError::Cancelled) => Status::unavailable(e.to_string()),
            AnalystError::Model(ModelError::Abandoned) => Status::cancelled(e.to_string()),
            AnalystError::Model(ModelError::Timeout { .. }) => {
                Status::deadline_exceeded(e.to_string())
            }
            AnalystError::Model(_) => Status::unavailable(e.to_string()),
            AnalystError::Storage(_) => Status::internal(e.to_string()),
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        use ApiError as E;
        let e = match e {
            E::Store(store) => return store.into(),
            other => other,
        };
        let code = match &e {
            E::Store(_) => tonic::Code::Internal,
            E::BatchEvents { .. } | E::BatchBytes { .. } | E::FlagsLagged(_) => {
                tonic::Code::ResourceExhausted
            }
            E::Batch(BatchError::TooManyEvents { .. } | BatchError::TooManyBytes { .. }) => {
                tonic::Code::ResourceExhausted
            }
            E::EmptyBatch
            | E::Batch(_)
            | E::Event { .. }
            | E::EventOutcome { .. }
            | E::DuplicateKey { .. }
            | E::RefusedAtApply { .. }
            | E::RangeBackwards { .. }
            | E::SizesBackwards { .. }
            | E::PageTooLarge { .. }
            | E::UntilNotAfterSince { .. }
            | E::UnknownOutcome(_)
            | E::NodeIdZero
            | E::NotHostPort { .. }
            | E::BadVerifierKey(_)
            | E::NoVoters
            | E::AnswerEntries { .. }
            | E::NoWindow
            | E::WindowsConflict
            | E::WindowAndRange
            | E::BadNow { .. }
            | E::BadWindow(_)
            | E::UnknownWindow(_)
            | E::WindowBackwards { .. }
            | E::MinScore(_)
            | E::NothingToCategorise
            | E::TooManyToCategorise { .. } => tonic::Code::InvalidArgument,
            E::SourceNotAllowed { .. } => tonic::Code::PermissionDenied,
            E::VerifierKeyTaken { .. } => tonic::Code::AlreadyExists,
            E::NotIndexed { .. } => tonic::Code::NotFound,
            E::NoCheckpoint | E::UnderSigned { .. } | E::PeerUnreachable { .. } => {
                tonic::Code::FailedPrecondition
            }
            E::ReceiptTimeout { .. } => tonic::Code::DeadlineExceeded,
            E::NoLeader | E::LeaderUnaddressed { .. } | E::ReadRefused(_) | E::Stopping => {
                tonic::Code::Unavailable
            }
            E::LeafUndecodable { .. }
            | E::LeafMisplaced { .. }
            | E::LeafMissing { .. }
            | E::Unexpected { .. }
            | E::Channel { .. }
            | E::Task(_) => {
                tracing::error!(error = %e, "request failed on this node");
                tonic::Code::Internal
            }
        };
        Status::new(code, e.to_string())
    }
}

/// A caller refused at the door: no credentials is UNAUTHENTICATED,
/// credentials without the role PERMISSION_DENIED, a caller over its
/// limits RESOURCE_EXHAUSTED with a retry hint in ms.
impl From<AuthError> for Status {
    fn from(e: AuthError) -> Status {
        use AuthError as E;
        let code = match &e {
            E::NoMethod { .. } => tonic::Code::Unimplemented,
            E::NoCredentials { .. }
            | E::CertificateUnreadable(_)
            | E::UnknownClient { .. }
            | E::NotBearer
            | E::UnknownToken => tonic::Code::Unauthenticated,
            E::LacksPermission { .. } | E::NotANode(_) => tonic::Code::PermissionDenied,
            E::OverRate { .. } | E::InFlight { .. } => tonic::Code::ResourceExhausted,
            E::Unauthorised => tonic::Code::Internal,
        };
        let mut status = Status::new(code, e.to_string());
        if let Some(ms) = e.retry_after_ms() {
            if let Ok(v) = ms.to_string().parse() {
                status
                    .metadata_mut()
                    .insert(crate::auth::RETRY_AFTER_MS_HEADER, v);
            }
        }
        status
    }
}

/// A peer's Raft message refused or failed. A node low on disk, a Raft
/// stopping and a forward to a node no longer leading are UNAVAILABLE,
/// which a sender treats as an unreachable peer and retries.
impl From<PeerError> for Status {
    fn from(e: PeerError) -> Status {
        use PeerError as E;
        let code = match &e {
            E::NotTheSender { .. }
            | E::NotANode { .. }
            | E::NotAMember { .. }
            | E::ForgedSource { .. }
            | E::NotForwardable { .. } => tonic::Code::PermissionDenied,
            E::BadMessage(_)
            | E::EmptySnapshot
            | E::BadSnapshotHeader(_)
            | E::SnapshotContradictsCommitted { .. }
            | E::SnapshotBeyondVote { .. }
            | E::RefusedAtApply { .. } => tonic::Code::InvalidArgument,
            E::SenderStalled => tonic::Code::DeadlineExceeded,
            E::SnapshotBusy => tonic::Code::ResourceExhausted,
            E::Receiving(_) => tonic::Code::Aborted,
            E::Stopped(_) | E::DiskLow { .. } => tonic::Code::Unavailable,
            E::Install(_) => tonic::Code::Internal,
            E::Forward(ProposeError::Fatal(_) | ProposeError::BadForwardReply(_)) => {
                tonic::Code::Internal
            }
            // Not the leader (any more), stopping, or low on disk and
            // handing over: the forwarding node retries, and reaches the
            // next leader.
            E::Forward(_) => tonic::Code::Unavailable,
        };
        Status::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_reads_are_out_of_range_not_internal() {
        let s = Status::from(StoreError::OutOfRange {
            what: "leaf index",
            value: 9,
            size: 3,
        });
        assert_eq!(s.code(), tonic::Code::OutOfRange);
        assert!(s.message().contains('9') && s.message().contains('3'));
    }

    #[test]
    fn not_leader_names_the_leader() {
        let s = Status::from(ProposeError::NotLeader {
            leader: Some((2, "127.0.0.1:7002".into())),
        });
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert!(s.message().contains("127.0.0.1:7002"), "{}", s.message());
    }

    #[test]
    fn a_failed_raft_is_internal_but_a_stopping_one_is_unavailable() {
        let failed = Status::from(ProposeError::Fatal("No space left on device".into()));
        assert_eq!(failed.code(), tonic::Code::Internal);
        assert!(
            failed.message().contains("No space left"),
            "{}",
            failed.message()
        );
        let stopping = Status::from(ProposeError::Stopping);
        assert_eq!(stopping.code(), tonic::Code::Unavailable);
        let late = Status::from(ProposeError::Timeout { ms: 10_000 });
        assert_eq!(late.code(), tonic::Code::Unavailable);
        // An entry discarded on a leader change is the client's to retry
        // (with its idempotency keys), not an operator's to look at.
        let unknown = Status::from(ProposeError::CommitUnknown {
            leader: Some((2, "127.0.0.1:7002".into())),
        });
        assert_eq!(unknown.code(), tonic::Code::Unavailable);
        for needle in [
            "may or may not",
            "same idempotency keys",
            "node 2 at 127.0.0.1:7002",
        ] {
            assert!(unknown.message().contains(needle), "{}", unknown.message());
        }
        let forwarded = Status::from(PeerError::Forward(ProposeError::CommitUnknown {
            leader: None,
        }));
        assert_eq!(forwarded.code(), tonic::Code::Unavailable);
    }

    #[test]
    fn a_node_low_on_disk_is_resource_exhausted_and_names_the_floor() {
        let s = Status::from(ProposeError::DiskLow(crate::disk::DiskLow {
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

    #[test]
    fn the_services_own_errors_say_whose_move_it_is() {
        let code = |e: ApiError| Status::from(e).code();
        assert_eq!(code(ApiError::EmptyBatch), tonic::Code::InvalidArgument);
        assert_eq!(
            code(ApiError::BatchEvents { count: 9, max: 8 }),
            tonic::Code::ResourceExhausted
        );
        assert_eq!(code(ApiError::NoLeader), tonic::Code::Unavailable);
        assert_eq!(code(ApiError::Stopping), tonic::Code::Unavailable);
        assert_eq!(
            code(ApiError::LeafMisplaced {
                index: 4,
                claimed: 5
            }),
            tonic::Code::Internal
        );
        // The store's error keeps the store's code, not a generic one.
        let s = Status::from(ApiError::Store(StoreError::OutOfRange {
            what: "leaf index",
            value: 9,
            size: 3,
        }));
        assert_eq!(s.code(), tonic::Code::OutOfRange);
        let s = Status::from(ApiError::UnderSigned {
            size: 7,
            signatures: 1,
            quorum: 2,
        });
        assert_eq!(s.code(), tonic::Code::FailedPrecondition);
        assert!(s.message().contains("size 7") && s.message().contains("quorum of 2"));
    }

    #[test]
    fn a_caller_over_its_rate_is_told_when_to_come_back() {
        let s = Status::from(AuthError::OverRate {
            requests_per_s: 5,
            retry_after_ms: 180,
        });
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        let hint = s.metadata().get(crate::auth::RETRY_AFTER_MS_HEADER);
        assert_eq!(hint.and_then(|v| v.to_str().ok()), Some("180"));
        let s = Status::from(AuthError::NotBearer);
        assert_eq!(s.code(), tonic::Code::Unauthenticated);
        assert!(s
            .metadata()
            .get(crate::auth::RETRY_AFTER_MS_HEADER)
            .is_none());
    }

    #[test]
    fn a_forward_to_a_leader_low_on_disk_is_a_retry_not_a_refusal() {
        let low = crate::disk::DiskLow {
            node_id: 1,
            free_bytes: 10,
            floor_bytes: 8388608,
            resume_bytes: 9437184,
        };
        let s = Status::from(PeerError::Forward(ProposeError::DiskLow(low)));
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert!(
            s.message().contains("leadership is moving"),
            "{}",
            s.message()
        );
        let s = Status::from(PeerError::Forward(ProposeError::Fatal("disk I/O".into())));
        assert_eq!(s.code(), tonic::Code::Internal);
    }
}
