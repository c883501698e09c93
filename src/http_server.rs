//! Serving an axum router over HTTP/1 with the limits a public listener
//! needs; the tlog-tiles endpoint and the witness both use it.
//!
//! `axum::serve` gives hyper no timer, so a client that opens a connection
//! and never finishes a header holds it for ever, and it caps nothing. Here
//! each connection gets:
//! - a header-read timeout ([`HTTP_HEADER_READ_TIMEOUT_MS`]), which hyper
//!   also applies while a kept-alive connection waits for its next request,
//!   so it is the keep-alive timeout as well;
//! - an idle timeout ([`HTTP_IDLE_TIMEOUT_MS`]): no byte read or written for
//!   that long ends the connection (a client that stops reading a response);
//! - a per-request timeout ([`HTTP_REQUEST_TIMEOUT_MS`]), answered with 503;
//! - a slot among [`HTTP_CONNECTIONS_MAX`]: a connection accepted beyond it
//!   is closed at once, so a flood of idle sockets cannot exhaust memory or
//!   file descriptors (they would otherwise wait in the backlog unseen);
//! - optionally TLS, with a handshake deadline
//!   ([`HTTP_TLS_HANDSHAKE_TIMEOUT_MS`]).
//!
//! # Stopping
//! When `shutdown` completes the listener closes and every connection
//! finishes its request in progress, then closes; [`serve`] returns when the
//! last one has. Cancelling `closing` drops every connection at once (the
//! client reads EOF), so a keep-alive client cannot keep a stopped node's
//! server, and its store, alive.
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;

use crate::limits::{
    HTTP_CONNECTIONS_MAX, HTTP_HEADER_READ_TIMEOUT_MS, HTTP_IDLE_TIMEOUT_MS,
    HTTP_READ_BUFFER_BYTES_MAX, HTTP_REQUEST_TIMEOUT_MS, HTTP_TLS_HANDSHAKE_TIMEOUT_MS,
};

/// Pause after an accept error other than a peer's reset (out of file
/// descriptors, mostly), so the loop does not spin while it lasts.
const ACCEPT_ERROR_BACKOFF_MS: u64 = 1000;

/// A listener's limits; [`Default`] gives the ones in [`crate::limits`].
/// Tests shorten them.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub connections_max: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_millis(HTTP_HEADER_READ_TIMEOUT_MS),
            idle_timeout: Duration::from_millis(HTTP_IDLE_TIMEOUT_MS),
            request_timeout: Duration::from_millis(HTTP_REQUEST_TIMEOUT_MS),
            tls_handshake_timeout: Duration::from_millis(HTTP_TLS_HANDSHAKE_TIMEOUT_MS),
            connections_max: HTTP_CONNECTIONS_MAX,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes and every
/// connection has finished (see the module doc). With `tls`, each accepted
/// connection is a TLS connection. Cancelling `closing` ends every
/// connection at once. Accept errors are logged and retried, never returned.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<ServerConfig>>,
    limits: HttpLimits,
    closing: CancellationToken,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let router = router.layer(axum::middleware::from_fn_with_state(
        limits.request_timeout,
        request_timeout,
    ));
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    // Tells connections to finish their request and close.
    let draining = CancellationToken::new();
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            _ = closing.cancelled() => break,
            // Reap finished connections so the set stays small.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, max = limits.connections_max, "HTTP connection limit reached; closing");
            continue;
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(
            Accepted {
                stream,
                peer,
                _slot: slot,
            },
            router.clone(),
            tls.clone(),
            limits.clone(),
            Stop {
                closing: closing.clone(),
                draining: draining.clone(),
            },
        ));
    }
    drop(listener);
    draining.cancel();
    while connections.join_next().await.is_some() {}
}

async fn accept_failed(e: io::Error) {
    // A peer that reset before accept is its own problem, not the listener's.
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(error = %e, "HTTP accept failed; retrying");
    tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_BACKOFF_MS)).await;
}

/// An accepted socket and the connection slot it holds until it closes.
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    _slot: OwnedSemaphorePermit,
}

/// The two ways a connection is told to stop.
struct Stop {
    /// Close now (the node stopped).
    closing: CancellationToken,
    /// Finish the request in progress, then close (the listener stopped).
    draining: CancellationToken,
}

async fn connection(
    accepted: Accepted,
    router: Router,
    tls: Option<Arc<ServerConfig>>,
    limits: HttpLimits,
    stop: Stop,
) {
    let peer = accepted.peer;
    let Some(tls) = tls else {
        return http1(accepted.stream, peer, router, &limits, &stop).await;
    };
    let handshake = tokio::time::timeout(
        limits.tls_handshake_timeout,
        tokio_rustls::TlsAcceptor::from(tls).accept(accepted.stream),
    );
    let stream = tokio::select! {
        _ = stop.closing.cancelled() => return,
        _ = stop.draining.cancelled() => return,
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
    };
    http1(stream, peer, router, &limits, &stop).await;
}

/// Serves HTTP/1 requests on one connection until it ends or is stopped.
async fn http1<IO>(io: IO, peer: SocketAddr, router: Router, limits: &HttpLimits, stop: &Stop)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(IdleTimeout::new(io, limits.idle_timeout));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(HTTP_READ_BUFFER_BYTES_MAX)
        .keep_alive(true);
    let conn = builder.serve_connection(io, TowerToHyperService::new(router));
    let mut conn = pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended");
                }
                return;
            }
            // Dropping the connection closes the socket: the client reads EOF.
            _ = stop.closing.cancelled() => return,
            _ = stop.draining.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Middleware: a request that takes longer than the limit is answered 503,
/// and its handler dropped.
async fn request_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(RETRY_AFTER, "1")],
            format!(
                "the request took longer than {} ms; retry later\n",
                limit.as_millis()
            ),
        )
            .into_response(),
    }
}

/// A connection that fails with `TimedOut` once neither a read nor a write
/// has made progress for `idle`. The deadline is checked only while hyper
/// waits on the socket, which is exactly when a stalled client costs a slot.
struct IdleTimeout<IO> {
    inner: IO,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<IO> IdleTimeout<IO> {
    fn new(inner: IO, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    /// Progress pushes the deadline back; waiting checks it.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                let idle = self.idle;
                self.deadline.as_mut().reset(Instant::now() + idle);
                Poll::Ready(result)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no bytes read or written for {} ms", self.idle.as_millis()),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for IdleTimeout<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.watch(cx, poll)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::task::JoinHandle;

    /// Generous for a loaded test machine, small against the test limits'
    /// defaults (seconds), so a pass proves the limit, not the default.
    const SLACK: Duration = Duration::from_millis(1500);

    fn short_limits() -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(2000),
            request_timeout: Duration::from_millis(300),
            tls_handshake_timeout: Duration::from_millis(300),
            connections_max: 2,
        }
    }

    fn router() -> Router {
        Router::new().route("/", get(|| async { "hello" })).route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        )
    }

    struct Running {
        addr: SocketAddr,
        closing: CancellationToken,
        stop: tokio::sync::oneshot::Sender<()>,
        task: JoinHandle<()>,
    }

    async fn start(limits: HttpLimits, tls: Option<Arc<ServerConfig>>) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let closing = CancellationToken::new();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(serve(
            listener,
            router(),
            tls,
            limits,
            closing.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        Running {
            addr,
            closing,
            stop,
            task,
        }
    }

    /// Reads until EOF (or a reset), returning what was read and how long it took.
    async fn read_to_close(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
        let began = Instant::now();
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (out, began.elapsed()),
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                Err(_) => panic!("connection still open after 30 s"),
            }
        }
    }

    async fn get_ok(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let (body, _) = read_to_close(&mut s).await;
        String::from_utf8_lossy(&body).into_owned()
    }

    #[tokio::test]
    async fn silent_client_is_disconnected_within_header_timeout() {
        let server = start(short_limits(), None).await;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let (_, took) = read_to_close(&mut s).await;
        assert!(
            took < short_limits().header_read_timeout + SLACK,
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn half_a_header_is_disconnected_within_header_timeout() {
        let server = start(short_limits(), None).await;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nx-slow")
            .await
            .unwrap();
        let (_, took) = read_to_close(&mut s).await;
        assert!(
            took < short_limits().header_read_timeout + SLACK,
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn kept_alive_connection_closes_when_idle_between_requests() {
        let server = start(short_limits(), None).await;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let (response, took) = read_to_close(&mut s).await;
        assert!(String::from_utf8_lossy(&response).ends_with("hello"));
        assert!(
            took < short_limits().header_read_timeout + SLACK,
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn slow_request_is_answered_503_at_request_timeout() {
        let server = start(short_limits(), None).await;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let (response, took) = read_to_close(&mut s).await;
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.1 503"), "{response}");
        assert!(response.contains("retry-after: 1"), "{response}");
        assert!(took < short_limits().request_timeout + SLACK, "{took:?}");
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_are_closed_unserved() {
        let mut limits = short_limits();
        limits.header_read_timeout = Duration::from_secs(20);
        limits.idle_timeout = Duration::from_secs(20);
        let server = start(limits, None).await;
        // Two silent connections take both slots...
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(TcpStream::connect(server.addr).await.unwrap());
        }
        // ...(give the server time to accept them)...
        tokio::time::sleep(Duration::from_millis(200)).await;
        // ...so a third is closed at once, without an answer.
        let mut third = TcpStream::connect(server.addr).await.unwrap();
        let _ = third.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
        let (response, took) = read_to_close(&mut third).await;
        assert!(
            response.is_empty(),
            "{}",
            String::from_utf8_lossy(&response)
        );
        assert!(took < SLACK, "{took:?}");
        // A freed slot serves again.
        drop(held.pop());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(get_ok(server.addr).await.ends_with("hello"));
    }

    #[tokio::test]
    async fn closing_ends_open_connections_and_the_server() {
        let mut limits = short_limits();
        limits.header_read_timeout = Duration::from_secs(20);
        limits.idle_timeout = Duration::from_secs(20);
        let server = start(limits, None).await;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.closing.cancel();
        let (_, took) = read_to_close(&mut s).await;
        assert!(took < SLACK, "{took:?}");
        tokio::time::timeout(SLACK, server.task)
            .await
            .expect("serve returns once closing")
            .unwrap();
    }

    #[tokio::test]
    async fn shutdown_stops_accepting_and_returns() {
        let server = start(short_limits(), None).await;
        assert!(get_ok(server.addr).await.ends_with("hello"));
        server.stop.send(()).unwrap();
        tokio::time::timeout(SLACK, server.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap();
        assert!(TcpStream::connect(server.addr).await.is_err());
    }

    #[tokio::test]
    async fn idle_timeout_fails_stalled_reads_and_writes_and_resets_on_progress() {
        let idle = Duration::from_millis(400);
        let (server, mut client) = tokio::io::duplex(8);
        let mut io = IdleTimeout::new(server, idle);
        // Progress before the deadline pushes it back.
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(io.read(&mut buf).await.unwrap(), 1);
        let began = Instant::now();
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(began.elapsed() >= idle - Duration::from_millis(50));
        assert!(began.elapsed() < idle + SLACK);
        // A peer that stops reading: the write stalls once the pipe is full.
        let mut io = IdleTimeout::new(io.inner, idle);
        let began = Instant::now();
        let err = io.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(began.elapsed() < idle + SLACK);
        drop(client);
    }

    #[tokio::test]
    async fn stalled_tls_handshake_is_dropped() {
        // Any config will do: the client never sends a ClientHello.
        let key = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let provider = tokio_rustls::rustls::crypto::ring::default_provider();
        let config = ServerConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![key.cert.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into()),
            )
            .unwrap();
        let server = start(short_limits(), Some(Arc::new(config))).await;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let (_, took) = read_to_close(&mut s).await;
        assert!(
            took < short_limits().tls_handshake_timeout + SLACK,
            "{took:?}"
        );
    }
}
