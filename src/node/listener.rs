//! Serving gRPC on one listener: the server's limits, accepting within a
//! connection cap, TLS handshakes off the accept loop, and connections that
//! end when the node stops.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::auth::RefusalLog;
use crate::limits::{
    GRPC_KEEPALIVE_INTERVAL_MS, GRPC_KEEPALIVE_TIMEOUT_MS, GRPC_STREAMS_PER_CONNECTION_MAX,
};

/// A gRPC server with the limits every listener needs: keepalives that
/// find dead peers, bounded streams per connection.
pub(super) fn grpc_server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_millis(GRPC_KEEPALIVE_INTERVAL_MS)))
        .http2_keepalive_timeout(Some(Duration::from_millis(GRPC_KEEPALIVE_TIMEOUT_MS)))
        .max_concurrent_streams(Some(GRPC_STREAMS_PER_CONNECTION_MAX))
        .concurrency_limit_per_connection(GRPC_STREAMS_PER_CONNECTION_MAX as usize)
}

/// Accepting connections on one listener: at most `max` open at once (one
/// more is closed at accept), each ending when the node stops.
pub(super) struct Accept {
    pub(super) listener: TcpListener,
    pub(super) closing: CancellationToken,
    pub(super) max: usize,
    /// For logs and refusal records.
    pub(super) name: &'static str,
    /// Where a handshake refused for its certificate is recorded.
    pub(super) refusals: RefusalLog,
}

impl Accept {
    /// The next connection with a free slot, or `None` once the node stops.
    async fn next(&self, slots: &Arc<tokio::sync::Semaphore>) -> Option<(Connection, SocketAddr)> {
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = self.closing.cancelled() => return None,
            };
            let (stream, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!(listener = self.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_MS)).await;
                    continue;
                }
            };
            match slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    let _ = stream.set_nodelay(true);
                    return Some((Connection::new(stream, &self.closing, Some(slot)), remote));
                }
                Err(_) => tracing::warn!(
                    listener = self.name,
                    max = self.max,
                    "connection refused: the listener is at its connection cap"
                ),
            }
        }
    }

    /// Plaintext connections (`--insecure`).
    fn plain(self) -> impl futures::Stream<Item = std::io::Result<Connection>> {
        let slots = Arc::new(tokio::sync::Semaphore::new(self.max));
        futures::stream::unfold((self, slots), |(accept, slots)| async move {
            let (conn, _) = accept.next(&slots).await?;
            Some((Ok(conn), (accept, slots)))
        })
    }

    /// TLS connections: each handshake runs on its own task within
    /// [`TLS_HANDSHAKE_TIMEOUT_MS`], so a slow or silent client holds one
    /// slot, never the accept loop. A handshake refused for its certificate
    /// (another CA, none on the peer listener) is a refusal on the record.
    fn tls(
        self,
        config: Arc<tokio_rustls::rustls::ServerConfig>,
    ) -> impl futures::Stream<Item = std::io::Result<tokio_rustls::server::TlsStream<Connection>>>
    {
        let (tx, rx) = mpsc::channel(TLS_ACCEPTED_QUEUE);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(self.max));
            while let Some((conn, remote)) = self.next(&slots).await {
                if tx.is_closed() {
                    return;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                let (refusals, name) = (self.refusals.clone(), self.name);
                tokio::spawn(async move {
                    let limit = Duration::from_millis(crate::limits::TLS_HANDSHAKE_TIMEOUT_MS);
                    match tokio::time::timeout(limit, acceptor.accept(conn)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send(Ok(stream)).await;
                        }
                        Ok(Err(e)) if crate::tls::is_certificate_refusal(&e) => {
                            refusals.record(crate::auth::Refusal {
                                caller: "unknown".into(),
                                kind: "tls",
                                remote: Some(remote),
                                method: format!("TLS handshake ({name})"),
                                code: tonic::Code::Unauthenticated,
                                reason: e.to_string(),
                            });
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(listener = name, %remote, error = %e, "TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::debug!(listener = name, %remote, "TLS handshake timed out")
                        }
                    }
                });
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}

/// Pause after a failed accept, ms.
const ACCEPT_RETRY_MS: u64 = 50;

/// Handshaken connections waiting for the server to take them.
const TLS_ACCEPTED_QUEUE: usize = 64;

/// An accepted connection that ends (reads EOF) when the node stops, even if
/// the peer would keep it open. Without this, a peer's HTTP/2 connection to a
/// stopped in-process node stays up, and its requests keep reaching the old
/// services instead of the node restarted on the same address.
struct Connection {
    inner: tokio::net::TcpStream,
    closed: std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    /// The listener's connection slot, released when the connection ends.
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Connection {
    fn new(
        inner: tokio::net::TcpStream,
        closing: &CancellationToken,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Self {
        Self {
            inner,
            closed: Box::pin(closing.clone().cancelled_owned()),
            _slot: slot,
        }
    }
}

impl tokio::io::AsyncRead for Connection {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if std::future::Future::poll(self.closed.as_mut(), cx).is_ready() {
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Connection {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// A gRPC router behind the authorisation layer, as every listener serves.
pub(super) type AuthRouter = tonic::transport::server::Router<
    tower::layer::util::Stack<crate::auth::AuthLayer, tower::layer::util::Identity>,
>;

/// Serves `router` on `accept`'s listener until `stopped`: over TLS (with
/// the client certificate `client_cert` asks for) unless the node runs
/// `--insecure`.
pub(super) fn serve(
    router: AuthRouter,
    accept: Accept,
    tls: Option<&crate::tls::TlsMaterial>,
    client_cert: crate::tls::ClientCert,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>, crate::tls::TlsError> {
    Ok(match tls {
        Some(t) => {
            let config = t.server_config(client_cert, crate::tls::Alpn::H2)?;
            tokio::spawn(router.serve_with_incoming_shutdown(accept.tls(config), stopped))
        }
        None => tokio::spawn(router.serve_with_incoming_shutdown(accept.plain(), stopped)),
    })
}
