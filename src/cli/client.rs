//! Connecting to a node, and showing gRPC statuses as `<code>: <message>`.

use std::fmt;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use super::CliError;
use crate::limits;
use crate::proto::admin_client::AdminClient;
use crate::proto::ledger_client::LedgerClient;

/// How long to wait for a TCP and HTTP/2 connection before giving up. Long
/// enough for a node across a WAN, short enough that a typo'd port fails fast.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// Deadline for one unary call. Appends wait for a Raft commit, which takes
/// a few heartbeats; a call still pending after this is reported, not hung on.
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;

/// Opens a channel to `endpoint` (e.g. `http://127.0.0.1:7001`).
pub async fn connect(endpoint: &str) -> Result<Channel, CliError> {
    connect_with(endpoint, Some(Duration::from_millis(REQUEST_TIMEOUT_MS))).await
}

/// Deadline for one call to the analysis node: a call may wait for the
/// model behind others (one computation at a time on a small machine), each
/// bounded by the node's own model timeout.
pub const ANALYSIS_REQUEST_TIMEOUT_MS: u64 = 300_000;

/// A channel for the analysis node's unary calls.
pub async fn connect_analysis(endpoint: &str) -> Result<Channel, CliError> {
    connect_with(
        endpoint,
        Some(Duration::from_millis(ANALYSIS_REQUEST_TIMEOUT_MS)),
    )
    .await
}

/// A channel without a per-call deadline, for `tail`, which streams forever.
pub async fn connect_streaming(endpoint: &str) -> Result<Channel, CliError> {
    connect_with(endpoint, None).await
}

/// `host:port` without a scheme means plain HTTP/2, as in the node configs.
fn with_scheme(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

async fn connect_with(endpoint: &str, timeout: Option<Duration>) -> Result<Channel, CliError> {
    let parsed =
        Endpoint::from_shared(with_scheme(endpoint)).map_err(|source| CliError::Endpoint {
            endpoint: endpoint.to_string(),
            source,
        })?;
    let parsed = parsed.connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS));
    let parsed = match timeout {
        Some(timeout) => parsed.timeout(timeout),
        None => parsed,
    };
    parsed.connect().await.map_err(|source| CliError::Connect {
        endpoint: endpoint.to_string(),
        source,
    })
}

/// A channel that connects on first use and reconnects after failures, for
/// long-running clients such as `monitor` that must outlive an outage.
pub fn lazy(endpoint: &str) -> Result<Channel, CliError> {
    let parsed =
        Endpoint::from_shared(with_scheme(endpoint)).map_err(|source| CliError::Endpoint {
            endpoint: endpoint.to_string(),
            source,
        })?;
    Ok(parsed
        .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
        .connect_lazy())
}

pub fn ledger(channel: Channel) -> LedgerClient<Channel> {
    LedgerClient::new(channel)
        .max_decoding_message_size(limits::GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(limits::GRPC_MESSAGE_BYTES_MAX)
}

pub fn admin(channel: Channel) -> AdminClient<Channel> {
    AdminClient::new(channel)
        .max_decoding_message_size(limits::GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(limits::GRPC_MESSAGE_BYTES_MAX)
}

/// A gRPC status as the user sees it: `unavailable: no leader elected yet`.
#[derive(Debug)]
pub struct StatusError(pub tonic::Status);

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.0.message();
        if message.is_empty() {
            write!(f, "{}", code_name(self.0.code()))
        } else {
            write!(f, "{}: {}", code_name(self.0.code()), message)
        }
    }
}

impl std::error::Error for StatusError {}

/// The lowercase gRPC code name, as in the gRPC status code documentation.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_code_then_message() {
        let shown = StatusError(tonic::Status::unavailable("no leader")).to_string();
        assert_eq!(shown, "unavailable: no leader");
        let shown = StatusError(tonic::Status::new(Code::NotFound, "")).to_string();
        assert_eq!(shown, "not_found");
    }
}
