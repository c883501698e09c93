//! The tower layer that puts [`Authorizer`] in front of every service of a
//! listener: a request reaches a handler only with a [`Caller`] extension,
//! after its identity, role and limits were checked.
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::authorizer::{Authorizer, Caller, RequestParts};

/// Which listener the layer guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// Ledger, Admin, Analysis, reflection: client identities and roles.
    Client,
    /// Raft and Forward: node certificates only.
    Peer,
}

#[derive(Clone)]
pub struct AuthLayer {
    authorizer: Arc<Authorizer>,
    listener: Listener,
}

impl AuthLayer {
    pub fn new(authorizer: Arc<Authorizer>, listener: Listener) -> Self {
        Self {
            authorizer,
            listener,
        }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            authorizer: self.authorizer.clone(),
            listener: self.listener,
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    authorizer: Arc<Authorizer>,
    listener: Listener,
}

/// The caller's verified certificate chain and address, from what tonic
/// records about the connection.
fn connection(
    ext: &http::Extensions,
) -> (
    Option<Arc<Vec<rustls_pki_types::CertificateDer<'static>>>>,
    Option<std::net::SocketAddr>,
) {
    if let Some(tls) = ext.get::<TlsConnectInfo<TcpConnectInfo>>() {
        return (tls.peer_certs(), tls.get_ref().remote_addr());
    }
    let remote = ext.get::<TcpConnectInfo>().and_then(|t| t.remote_addr());
    (None, remote)
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The clone is the one polled ready: take it, leave the fresh one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (certs, remote) = connection(req.extensions());
        let path = req.uri().path().to_string();
        let authorization = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let parts = RequestParts {
            path: &path,
            certs: certs.as_deref().map(Vec::as_slice),
            authorization: authorization.as_deref(),
            remote,
        };
        let decision = match self.listener {
            Listener::Client => self.authorizer.admit_client(&parts),
            Listener::Peer => self.authorizer.admit_peer(&parts),
        };
        match decision {
            Ok(admitted) => {
                req.extensions_mut().insert::<Caller>(admitted.caller);
                Box::pin(async move {
                    let response = inner.call(req).await?;
                    // The in-flight slot lives as long as the response body,
                    // so a stream (`Tail`, `Anomalies`) holds it until it ends.
                    Ok(match admitted.permit {
                        Some(permit) => response.map(|body| {
                            Body::new(HeldBody {
                                inner: body,
                                _permit: permit,
                            })
                        }),
                        None => response,
                    })
                })
            }
            Err(status) => Box::pin(async move { Ok(status.into_http::<Body>()) }),
        }
    }
}

/// A response body that holds its request's in-flight slot until it ends.
struct HeldBody {
    inner: Body,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl http_body::Body for HeldBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The caller a handler is serving; a request without one did not pass the
/// layer (a test calling a service directly) and is refused.
pub fn caller_of<T>(req: &tonic::Request<T>) -> Result<&Caller, super::AuthError> {
    req.extensions()
        .get::<Caller>()
        .ok_or(super::AuthError::Unauthorised)
}
