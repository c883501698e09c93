//! `ironlog witness`: a C2SP tlog-witness that serves
//! `POST <prefix>/add-checkpoint` over HTTP.
//!
//! It trusts the logs named by its policy files (each policy's `[log]` keys
//! and threshold; a policy's `[witnesses]` group is not used here), keeps
//! the last tree it cosigned per origin in a `StateFile`, and answers with
//! one `cosignature/v1` line. The decision itself is
//! [`crate::ledger::witness::decide`]; this module adds the key, the state
//! and the HTTP around it.
//!
//! # Crash semantics and the rollback race
//! Check, cosign and the durable state write happen under one lock, and the
//! cosignature leaves only after the write: two concurrent requests cannot
//! both pass the check against the same stored size, and a crash never
//! leaves a cosignature out that the state does not account for.
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::net::TcpListener;

use super::state::{StateError, StateFile};
use crate::ledger::checkpoint::{CheckpointError, SignatureLine};
use crate::ledger::cosignature::Cosigner;
use crate::ledger::policy::TrustPolicy;
use crate::ledger::witness::{decide, size_body, AddCheckpointRequest, Refusal, SIZE_CONTENT_TYPE};
use crate::limits::WITNESS_REQUEST_BYTES_MAX;

/// Why a witness could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("cannot read witness key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error(transparent)]
    KeyFile(#[from] crate::key_file::KeyFileError),
    #[error("cannot read trust policy {path}: {reason}")]
    Policy { path: PathBuf, reason: String },
    #[error("two trust policies name origin {origin:?}; give one policy per log")]
    DuplicateOrigin { origin: String },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Why one add-checkpoint call produced no cosignature.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The spec's 4xx answers.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// 500: the new state could not be made durable, so nothing was cosigned.
    #[error(transparent)]
    Persist(#[from] StateError),
    /// 500: the key could not sign (a clock beyond 2^63 seconds).
    #[error("cannot cosign: {0}")]
    Sign(CheckpointError),
}

/// A witness: its key, the logs it trusts, and what it cosigned.
pub struct Witness {
    cosigner: Cosigner,
    /// Log policies by origin.
    policies: BTreeMap<String, TrustPolicy>,
    /// A std mutex, held on a blocking thread across check, cosign and the
    /// fsync'd write, so check-and-persist is one step (see the module doc).
    state: Mutex<StateFile>,
}

impl Witness {
    pub fn new(
        cosigner: Cosigner,
        policies: Vec<TrustPolicy>,
        state: StateFile,
    ) -> Result<Self, WitnessError> {
        let mut by_origin = BTreeMap::new();
        for policy in policies {
            let origin = policy.origin.clone();
            if by_origin.insert(origin.clone(), policy).is_some() {
                return Err(WitnessError::DuplicateOrigin { origin });
            }
        }
        Ok(Self {
            cosigner,
            policies: by_origin,
            state: Mutex::new(state),
        })
    }

    /// Reads the key, the policies and the state from files.
    pub fn open(key: &Path, state: &Path, policies: &[PathBuf]) -> Result<Self, WitnessError> {
        let key_err = |reason: String| WitnessError::Key {
            path: key.to_path_buf(),
            reason,
        };
        // Refuses a key file group or others may read or write.
        let skey = crate::key_file::read_private_key(key)?;
        let cosigner = Cosigner::from_skey(skey.trim()).map_err(|e| key_err(e.to_string()))?;
        let policies = policies
            .iter()
            .map(|path| {
                let policy_err = |reason: String| WitnessError::Policy {
                    path: path.clone(),
                    reason,
                };
                let text = std::fs::read_to_string(path).map_err(|e| policy_err(e.to_string()))?;
                TrustPolicy::parse(&text).map_err(|e| policy_err(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(cosigner, policies, StateFile::load(state)?)
    }

    /// The witness's `cosignature/v1` verifier key, for logs' configs and policies.
    pub fn verifier_key(&self) -> String {
        self.cosigner.verifier_key()
    }

    /// The origins this witness cosigns for.
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(String::as_str)
    }

    /// Handles one add-checkpoint body, cosigning at `now` (Unix seconds).
    /// Blocking: it fsyncs the state file before returning a cosignature.
    pub fn add_checkpoint(&self, body: &[u8], now: u64) -> Result<SignatureLine, AddError> {
        let req = AddCheckpointRequest::parse(body)?;
        let origin = req.checkpoint.origin.as_str();
        // A panic under the lock happens before `record` changes anything,
        // and `record` keeps file and memory equal, so a poisoned state is
        // still a consistent one.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let head = decide(self.policies.get(origin), state.get(origin).as_ref(), &req)
            .inspect_err(|refusal| {
                if refusal.is_misbehaviour() {
                    // The spec invites keeping this: it may prove a fork.
                    tracing::warn!(
                        origin,
                        %refusal,
                        note = %String::from_utf8_lossy(&req.note),
                        "refused an inconsistent checkpoint"
                    );
                }
            })?;
        let line = self
            .cosigner
            .cosign(&req.checkpoint, now)
            .map_err(AddError::Sign)?;
        state.record(origin, head, now)?;
        tracing::info!(origin, size = head.size, "cosigned");
        Ok(line)
    }
}

/// The HTTP routes of a witness.
pub fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .layer(DefaultBodyLimit::max(WITNESS_REQUEST_BYTES_MAX))
        .with_state(witness)
}

/// Serves `witness` on `listener` until `shutdown` completes, with the
/// header, idle and request timeouts and the connection cap of
/// `http_server`. Tests bind port 0 and pass
/// their own shutdown signal.
pub async fn serve(
    listener: TcpListener,
    witness: Arc<Witness>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WitnessError> {
    // Nothing else stops a witness's connections: they end with the process.
    let closing = tokio_util::sync::CancellationToken::new();
    crate::http_server::serve(
        listener,
        router(witness),
        None,
        crate::http_server::HttpLimits::default(),
        closing,
        shutdown,
    )
    .await;
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
    let now = unix_now();
    let outcome = tokio::task::spawn_blocking(move || witness.add_checkpoint(&body, now)).await;
    let text = |status: StatusCode, body: String| {
        (status, [(CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
    };
    match outcome {
        Ok(Ok(line)) => text(StatusCode::OK, line.to_line()),
        Ok(Err(AddError::Refused(Refusal::OldSizeMismatch { stored_size, .. }))) => (
            StatusCode::CONFLICT,
            [(CONTENT_TYPE, SIZE_CONTENT_TYPE)],
            size_body(stored_size),
        )
            .into_response(),
        Ok(Err(AddError::Refused(refusal))) => {
            tracing::debug!(%refusal, "refused");
            let status = StatusCode::from_u16(refusal.status())
                .expect("refusal statuses are valid HTTP statuses");
            text(status, format!("{refusal}\n"))
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "add-checkpoint failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
        }
        Err(e) => {
            tracing::error!(error = %e, "add-checkpoint task failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error\n".to_string(),
            )
        }
    }
}
