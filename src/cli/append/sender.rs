//! `Append` calls: one batch, retried when that is safe, and one batch of
//! a longer run.
use std::time::Duration;

use super::super::client;
use super::super::CliError;
use crate::limits;
use crate::proto;
use crate::proto::ledger_client::LedgerClient;

/// One `Append` call. UNAVAILABLE (no leader for a moment, or a leader
/// change mid-call) is retried when every event carries an idempotency
/// key, so a retry of a batch that did commit appends nothing twice.
pub async fn append_batch(
    ledger: &mut LedgerClient<client::Conn>,
    events: Vec<proto::Event>,
    wait_checkpoint: bool,
) -> Result<proto::AppendResponse, tonic::Status> {
    let retry = events.iter().all(|e| !e.idempotency_key.is_empty());
    if !retry {
        let request = proto::AppendRequest {
            events,
            wait_checkpoint,
        };
        return ledger
            .append(request)
            .await
            .map(tonic::Response::into_inner);
    }
    let mut retries = 0;
    loop {
        let request = proto::AppendRequest {
            events: events.clone(),
            wait_checkpoint,
        };
        match ledger.append(request).await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status)
                if status.code() == tonic::Code::Unavailable
                    && retries < limits::APPEND_UNAVAILABLE_RETRIES_MAX =>
            {
                retries += 1;
                tokio::time::sleep(Duration::from_millis(limits::APPEND_RETRY_BACKOFF_MS)).await;
            }
            Err(status) => return Err(status),
        }
    }
}

/// Sends one batch of a longer run, of which `acknowledged` events were
/// acknowledged before it. A failure of the first batch is the call's own
/// error; a later one is `incomplete(status)`, which says how far the run
/// got. The answer must carry one index per event.
pub async fn send_batch(
    ledger: &mut LedgerClient<client::Conn>,
    events: Vec<proto::Event>,
    wait_checkpoint: bool,
    acknowledged: usize,
    incomplete: impl FnOnce(tonic::Status) -> CliError,
) -> Result<proto::AppendResponse, CliError> {
    let sent = events.len();
    let response = match append_batch(ledger, events, wait_checkpoint).await {
        Ok(response) => response,
        Err(status) if acknowledged == 0 => return Err(status.into()),
        Err(status) => return Err(incomplete(status)),
    };
    if response.indices.len() != sent {
        return Err(CliError::BadResponse(format!(
            "{} indices for a batch of {sent} events",
            response.indices.len()
        )));
    }
    Ok(response)
}
