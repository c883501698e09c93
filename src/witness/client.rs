//! The HTTP client of a witness's `add-checkpoint` call, as the node uses it.
//!
//! Plain HTTP/1.1 with keep-alive: TLS, where a witness needs it, is left to
//! a proxy in front of the node or the witness. Every call is bounded in
//! time ([`WITNESS_REQUEST_TIMEOUT_MS`]) and in response size
//! ([`WITNESS_RESPONSE_BYTES_MAX`]), so a slow or hostile witness costs the
//! node one bounded background task and nothing else.
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::ledger::checkpoint::SignatureLine;
use crate::ledger::witness::{
    parse_cosignatures, parse_size_body, AddCheckpointRequest, SIZE_CONTENT_TYPE,
};
use crate::limits::{WITNESS_REQUEST_TIMEOUT_MS, WITNESS_RESPONSE_BYTES_MAX};

/// Why a submission got no cosignature. All are retryable with a later
/// checkpoint; [`SubmitError::Refused`] with 409 or 422 on a consistency
/// problem is worth an operator's look.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("witness URL {url:?} is invalid: {reason}")]
    Url { url: String, reason: String },
    #[error("witness {url} did not answer within {ms} ms")]
    Timeout { url: String, ms: u64 },
    #[error("cannot reach witness {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("witness {url} refused the checkpoint with {status}: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("witness {url} sent an invalid response: {reason}")]
    BadResponse { url: String, reason: String },
}

/// What a witness answered to a well-formed submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submission {
    /// 200: the cosignature lines (from any keys; the caller picks).
    Cosigned(Vec<SignatureLine>),
    /// 409 with a size body: the witness's last cosigned size differs from
    /// the old size sent; retry with a proof from `size`.
    Conflict { size: u64 },
}

/// A raw HTTP answer: status, content type and (bounded) body.
#[derive(Clone, Debug)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// One HTTP client (and connection pool) for every witness.
#[derive(Clone)]
pub struct HttpClient(Client<HttpConnector, Full<Bytes>>);

impl Default for HttpClient {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(WITNESS_REQUEST_TIMEOUT_MS)));
        Self(Client::builder(TokioExecutor::new()).build(connector))
    }
}

/// A client of one witness, by its submission prefix.
#[derive(Clone)]
pub struct WitnessClient {
    /// The submission prefix, without a trailing slash, for messages.
    url: String,
    /// `<prefix>/add-checkpoint`.
    endpoint: Uri,
    http: HttpClient,
}

impl WitnessClient {
    /// A client for the witness with submission prefix `url` (`http://...`).
    pub fn new(url: &str, http: HttpClient) -> Result<Self, SubmitError> {
        let prefix = url.trim_end_matches('/');
        let invalid = |reason: &str| SubmitError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let endpoint: Uri = format!("{prefix}/add-checkpoint")
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| invalid(&e.to_string()))?;
        if endpoint.scheme_str() != Some("http") || endpoint.host().is_none() {
            return Err(invalid("expected http://host:port[/path]"));
        }
        Ok(Self {
            url: prefix.to_string(),
            endpoint,
            http,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// POSTs `body` to add-checkpoint; any HTTP status is an `Ok`.
    pub async fn post(&self, body: Vec<u8>) -> Result<RawResponse, SubmitError> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.endpoint.clone())
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| self.transport(e))?;
        let exchange = async {
            let response = self
                .http
                .0
                .request(request)
                .await
                .map_err(|e| self.transport(e))?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = Limited::new(response.into_body(), WITNESS_RESPONSE_BYTES_MAX)
                .collect()
                .await
                .map_err(|e| SubmitError::BadResponse {
                    url: self.url.clone(),
                    reason: format!(
                        "body unreadable or over {WITNESS_RESPONSE_BYTES_MAX} bytes: {e}"
                    ),
                })?
                .to_bytes();
            Ok(RawResponse {
                status,
                content_type,
                body,
            })
        };
        tokio::time::timeout(Duration::from_millis(WITNESS_REQUEST_TIMEOUT_MS), exchange)
            .await
            .map_err(|_| SubmitError::Timeout {
                url: self.url.clone(),
                ms: WITNESS_REQUEST_TIMEOUT_MS,
            })?
    }

    /// Submits one checkpoint and interprets the answer.
    pub async fn add_checkpoint(
        &self,
        req: &AddCheckpointRequest,
    ) -> Result<Submission, SubmitError> {
        let raw = self.post(req.encode()).await?;
        let bad = |reason: String| SubmitError::BadResponse {
            url: self.url.clone(),
            reason,
        };
        match StatusCode::from_u16(raw.status) {
            Ok(StatusCode::OK) => parse_cosignatures(&raw.body)
                .map(Submission::Cosigned)
                .map_err(|e| bad(e.to_string())),
            Ok(StatusCode::CONFLICT) if raw.content_type.as_deref() == Some(SIZE_CONTENT_TYPE) => {
                parse_size_body(&raw.body)
                    .map(|size| Submission::Conflict { size })
                    .ok_or_else(|| bad("409 body is not a tree size".into()))
            }
            _ => Err(SubmitError::Refused {
                url: self.url.clone(),
                status: raw.status,
                message: String::from_utf8_lossy(&raw.body).trim().to_string(),
            }),
        }
    }

    fn transport(&self, e: impl std::fmt::Display) -> SubmitError {
        SubmitError::Transport {
            url: self.url.clone(),
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let http = HttpClient::default;
        let c = WitnessClient::new("http://127.0.0.1:7380/", http()).unwrap();
        assert_eq!(c.url(), "http://127.0.0.1:7380");
        assert_eq!(
            c.endpoint.to_string(),
            "http://127.0.0.1:7380/add-checkpoint"
        );
        let c = WitnessClient::new("http://w.example:80/witness", http()).unwrap();
        assert_eq!(
            c.endpoint.to_string(),
            "http://w.example:80/witness/add-checkpoint"
        );
        for bad in [
            "",
            "127.0.0.1:7380",
            "https://w.example",
            "ftp://w",
            "http://",
        ] {
            assert!(WitnessClient::new(bad, http()).is_err(), "{bad:?}");
        }
    }
}
