//! The read-only HTTP endpoint of C2SP tlog-tiles
//! (<https://c2sp.org/tlog-tiles>), so existing transparency tooling can
//! fetch and verify the log without Ironlog's client:
//!
//! - `GET /checkpoint`: the newest checkpoint signed by a majority of the
//!   voters, as the whole signed note (`text/plain; charset=utf-8`, never cached).
//! - `GET /tile/<L>/<N>[.p/<W>]`: Merkle tree hashes, 256 of 32 bytes in a
//!   full tile (see [`crate::ledger::tile`] for the path).
//! - `GET /tile/entries/<N>[.p/<W>]`: entry bundles: each leaf's exact stored
//!   bytes behind a big-endian uint16 length; a leaf's hash is
//!   `SHA-256(0x00 || leaf)`, the matching hash in level-0 tile `N`.
//!
//! # What is served
//! Only what the newest majority-signed checkpoint commits to, so every byte
//! verifies against a note any node serves: a full tile once that checkpoint
//! holds all of it, a partial tile of width `W` once it holds at least `W`.
//! The spec requires partial tiles to stay available for every checkpointed
//! size until the full tile is; Ironlog serves them for good, since a
//! width-`W` tile is the first `W` hashes of the full one and never changes.
//! The rest is 404, even when this node already stores it.
//!
//! # Statuses
//! 400 (one line naming the fault) for a path that is not canonical
//! tlog-tiles; 404 beyond the checkpoint or outside tlog-tiles; 405 for any
//! method but GET and HEAD; 503 with `Retry-After` before the first signed
//! checkpoint and at [`TILE_READS_CONCURRENT_MAX`], 503 while the node stops;
//! 500 when storage fails. Every error is `text/plain` and never cached.
//!
//! # Bounds and shutdown
//! A request reads at most one tile (256 hashes or entries) in one redb read
//! transaction on a blocking thread, and at most [`TILE_READS_CONCURRENT_MAX`]
//! run at once. The store comes through the node's [`StoreSlot`], closed when
//! the node stops, so no connection keeps the database open.
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::Semaphore;

use super::StoreSlot;
use crate::ledger::tile::{Tile, TilePathError};
use crate::limits::{TILE_READS_CONCURRENT_MAX, TILE_RETRY_AFTER_S};
use crate::raft::voter_quorum;
use crate::raft::Raft;
use crate::storage::ledger_store::{LedgerStore, StoreError, TileRead};

/// `Cache-Control` of a full tile or bundle: its bytes can never change.
const CACHE_FULL_TILE: &str = "public, max-age=31536000, immutable";

/// `Cache-Control` of a partial tile or bundle. Its bytes never change
/// either, but it is superseded by the full tile soon, so caches need not
/// keep it long.
const CACHE_PARTIAL_TILE: &str = "public, max-age=60";

/// `Cache-Control` of the checkpoint and of errors: both change as the log grows.
const CACHE_NONE: &str = "no-store";

const TEXT: &str = "text/plain; charset=utf-8";
const OCTETS: &str = "application/octet-stream";

/// Why a request was not answered with a resource. Each variant's doc names
/// the HTTP status it becomes; the message is the one-line body.
#[derive(Debug, thiserror::Error)]
pub enum TilesError {
    /// 400: the path is not a canonical tlog-tiles path.
    #[error(transparent)]
    BadPath(#[from] TilePathError),
    /// 404: a path outside tlog-tiles.
    #[error(
        "no such resource; this endpoint serves /checkpoint, /tile/<L>/<N>[.p/<W>] \
         and /tile/entries/<N>[.p/<W>]"
    )]
    UnknownPath,
    /// 404: the signed checkpoint does not hold the tile at this width yet.
    #[error(
        "{tile} is beyond the latest signed checkpoint (tree size {size}, which holds \
         {covered} of this tile's 256)"
    )]
    NotCovered { tile: Tile, size: u64, covered: u16 },
    /// 405: the endpoint is read-only.
    #[error("{method} is not allowed: this endpoint is read-only (GET and HEAD)")]
    MethodNotAllowed { method: Method },
    /// 503 with Retry-After: no checkpoint has a majority of signatures yet.
    #[error(
        "no checkpoint is signed by a majority of the voters yet; \
         retry in {TILE_RETRY_AFTER_S} s"
    )]
    NoCheckpoint,
    /// 503 with Retry-After: at [`TILE_READS_CONCURRENT_MAX`] reads.
    #[error(
        "{TILE_READS_CONCURRENT_MAX} reads are in progress, the most this node runs at once; \
         retry in {TILE_RETRY_AFTER_S} s"
    )]
    Busy,
    /// 503: the node is stopping.
    #[error("node is stopping; read from another node")]
    Stopping,
    /// 500: storage failed or is corrupt (the node needs an operator).
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
    /// 500: the blocking read task died.
    #[error("read task failed: {reason}")]
    Task { reason: String },
}

impl TilesError {
    pub fn status(&self) -> StatusCode {
        match self {
            TilesError::BadPath(_) => StatusCode::BAD_REQUEST,
            TilesError::UnknownPath | TilesError::NotCovered { .. } => StatusCode::NOT_FOUND,
            TilesError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            TilesError::NoCheckpoint | TilesError::Busy | TilesError::Stopping => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            TilesError::Store(_) | TilesError::Task { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for TilesError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %self, "tlog-tiles read failed");
        }
        let mut response = (
            status,
            [
                (header::CONTENT_TYPE, TEXT),
                (header::CACHE_CONTROL, CACHE_NONE),
            ],
            format!("{self}\n"),
        )
            .into_response();
        let headers = response.headers_mut();
        match self {
            TilesError::MethodNotAllowed { .. } => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            TilesError::NoCheckpoint | TilesError::Busy => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(TILE_RETRY_AFTER_S));
            }
            _ => {}
        }
        response
    }
}

/// The endpoint's shared state; cheap to clone (one per request).
#[derive(Clone)]
pub struct TilesApi {
    store: StoreSlot,
    /// For the current voters, which decide how many signatures a
    /// checkpoint needs ([`voter_quorum`]).
    raft: Raft,
    /// Permits for reads in progress; see [`TILE_READS_CONCURRENT_MAX`].
    reads: Arc<Semaphore>,
}

impl TilesApi {
    pub fn new(store: StoreSlot, raft: Raft) -> Self {
        Self {
            store,
            raft,
            reads: Arc::new(Semaphore::new(TILE_READS_CONCURRENT_MAX)),
        }
    }

    /// The routes; HEAD is answered wherever GET is.
    pub fn router(self) -> Router {
        Router::new()
            .route("/checkpoint", get(checkpoint).fallback(method_not_allowed))
            .route("/tile/{*rest}", get(tile).fallback(method_not_allowed))
            .fallback(unknown)
            .with_state(self)
    }

    /// [`TilesApi::router`] behind the auditor role: a bearer token, or
    /// nothing if the operator opened the log to anonymous auditors.
    pub fn router_with(self, authorizer: Arc<crate::auth::Authorizer>) -> Router {
        self.router()
            .layer(axum::middleware::from_fn_with_state(authorizer, authorize))
    }

    /// Runs `f` on a blocking thread with the store, within the read limit.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LedgerStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, TilesError> {
        let permit = Arc::clone(&self.reads)
            .try_acquire_owned()
            .map_err(|_| TilesError::Busy)?;
        let store = self.store.try_get().ok_or(TilesError::Stopping)?;
        // The permit moves into the task: a client that hangs up does not
        // free it while the read still runs.
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&store)
        })
        .await
        .map_err(|e| TilesError::Task {
            reason: e.to_string(),
        })?;
        Ok(result?)
    }
}

async fn checkpoint(State(api): State<TilesApi>) -> Result<Response, TilesError> {
    let quorum = voter_quorum(&api.raft);
    let checkpoint = api
        .read(move |store| store.latest_signed_checkpoint(quorum))
        .await?
        .ok_or(TilesError::NoCheckpoint)?;
    Ok((
        [
            (header::CONTENT_TYPE, TEXT),
            (header::CACHE_CONTROL, CACHE_NONE),
        ],
        checkpoint.note(),
    )
        .into_response())
}

async fn tile(State(api): State<TilesApi>, uri: Uri) -> Result<Response, TilesError> {
    // The raw path, not a decoded one: `%30` is not a canonical `0`.
    let path = uri.path().strip_prefix('/').unwrap_or(uri.path());
    let tile = Tile::parse(path)?;
    let quorum = voter_quorum(&api.raft);
    let data = match api
        .read(move |store| store.read_tile(&tile, quorum))
        .await?
    {
        TileRead::Data(data) => data,
        TileRead::NoCheckpoint => return Err(TilesError::NoCheckpoint),
        TileRead::NotCovered { size, covered } => {
            return Err(TilesError::NotCovered {
                tile,
                size,
                covered,
            })
        }
    };
    let cache = if tile.is_full() {
        CACHE_FULL_TILE
    } else {
        CACHE_PARTIAL_TILE
    };
    Ok((
        [
            (header::CONTENT_TYPE, OCTETS),
            (header::CACHE_CONTROL, cache),
        ],
        data,
    )
        .into_response())
}

async fn method_not_allowed(method: Method) -> TilesError {
    TilesError::MethodNotAllowed { method }
}

/// Outside tlog-tiles: 404 for reads, and 405 for writes, so a client
/// trying to submit learns that no path here accepts one.
async fn unknown(method: Method) -> TilesError {
    if method == Method::GET || method == Method::HEAD {
        TilesError::UnknownPath
    } else {
        TilesError::MethodNotAllowed { method }
    }
}

/// Admits a tiles request for the auditor role, or answers 401, 403 or 429
/// with the reason (and `Retry-After` when over a rate limit).
async fn authorize(
    axum::extract::State(authorizer): axum::extract::State<Arc<crate::auth::Authorizer>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = req.uri().path().to_string();
    let authorization = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let parts = crate::auth::authorizer::RequestParts {
        path: &path,
        certs: None,
        authorization: authorization.as_deref(),
        remote: None,
    };
    match authorizer.admit_tiles(&parts) {
        Ok(admitted) => {
            let _in_flight = admitted.permit;
            next.run(req).await
        }
        Err(status) => {
            let code = match status.code() {
                tonic::Code::Unauthenticated => axum::http::StatusCode::UNAUTHORIZED,
                tonic::Code::ResourceExhausted => axum::http::StatusCode::TOO_MANY_REQUESTS,
                _ => axum::http::StatusCode::FORBIDDEN,
            };
            let mut response = (code, format!("{}\n", status.message())).into_response();
            if code == axum::http::StatusCode::TOO_MANY_REQUESTS {
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("1"),
                );
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_one_line_with_its_status() {
        let cases = [
            (
                TilesError::BadPath(Tile::parse("tile/0/1").unwrap_err()),
                400,
            ),
            (TilesError::UnknownPath, 404),
            (
                TilesError::NotCovered {
                    tile: Tile::parse("tile/0/001").unwrap(),
                    size: 300,
                    covered: 44,
                },
                404,
            ),
            (
                TilesError::MethodNotAllowed {
                    method: Method::POST,
                },
                405,
            ),
            (TilesError::NoCheckpoint, 503),
            (TilesError::Busy, 503),
            (TilesError::Stopping, 503),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
            let message = error.to_string();
            assert!(!message.contains('\n'), "{message}");
            let response = error.into_response();
            assert_eq!(
                response.headers()[header::CACHE_CONTROL],
                CACHE_NONE,
                "errors are not cached"
            );
        }
    }
}
