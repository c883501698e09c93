//! Why a caller was refused at the door; `api::status` gives each its gRPC
//! code, and the layer records the refusal in the ledger.
use super::authorizer::RETRY_IN_FLIGHT_MS;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no method {method} on this listener")]
    NoMethod { method: String },
    #[error(
        "{method} needs {needs}; no credentials were presented \
         (give a client certificate of the cluster CA or a bearer token)"
    )]
    NoCredentials { method: String, needs: String },
    #[error("{kind} {caller:?} lacks {needs} needed for {method}")]
    LacksPermission {
        kind: &'static str,
        caller: String,
        needs: String,
        method: String,
    },
    #[error("the peer listener serves only nodes of this cluster: {0}")]
    NotANode(String),
    #[error("client certificate unreadable: {0}")]
    CertificateUnreadable(String),
    #[error("client certificate CN={cn:?} is not a configured client (auth.clients)")]
    UnknownClient { cn: String },
    #[error("authorization must be `Bearer <token>`")]
    NotBearer,
    #[error("unknown bearer token")]
    UnknownToken,
    #[error(
        "over the rate limit of {requests_per_s} requests/s for this identity; \
         retry after {retry_after_ms} ms"
    )]
    OverRate {
        requests_per_s: u32,
        retry_after_ms: u128,
    },
    #[error(
        "{in_flight_max} requests of this identity are already in flight (the limit); \
         retry when one completes"
    )]
    InFlight { in_flight_max: u32 },
    /// A handler reached without the layer in front (a test calling a
    /// service directly): a wiring bug, refused.
    #[error("request reached a service without authorisation")]
    Unauthorised,
}

impl AuthError {
    /// When a caller over its limits may come back, ms.
    pub fn retry_after_ms(&self) -> Option<u128> {
        match self {
            AuthError::OverRate { retry_after_ms, .. } => Some(*retry_after_ms),
            AuthError::InFlight { .. } => Some(RETRY_IN_FLIGHT_MS),
            _ => None,
        }
    }
}
