//! TLS for both listeners and for dialling peers: the cluster CA, this
//! node's certificate and key, loaded and checked once at start-up.
//!
//! - The **peer listener** (Raft, snapshots, forwarded proposals) requires a
//!   client certificate issued by the cluster CA; which node it names is
//!   checked per message by `crate::raft::service`.
//! - The **client listener** (Ledger, Admin, Analysis, reflection) and the
//!   tlog-tiles HTTP endpoint accept a client certificate of the cluster CA
//!   or none (a bearer token, or anonymous auditing); `crate::auth` decides.
//! - **Dialling a peer** presents this node's certificate and verifies that
//!   the server's names the node it meant to reach (`node-<id>.ironlog`).
//!
//! # Layout
//! - `mod.rs`: [`TlsMaterial`]: loading, checking, server and client configs.
//! - [`identity`]: who a certificate names (a node, a client).
//! - `bearer.rs`: the bearer token a client sends with every request.
pub(crate) mod bearer;
pub mod identity;

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::config::TlsConfig;
use crate::limits::TLS_HANDSHAKE_TIMEOUT_MS;

/// Largest certificate file read, bytes: a chain of a few certificates.
pub const CERT_FILE_BYTES_MAX: u64 = 256 * 1024;

/// Why the node's TLS material was refused; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: String },
    #[error("{path}: {reason}")]
    Key { path: String, reason: String },
    #[error("{path} is not a certificate for node {id}: it names {found} (expected {expected}); issue one with `ironlog certs node --id {id}`")]
    WrongNode {
        path: String,
        id: u64,
        found: String,
        expected: String,
    },
    #[error("TLS set-up failed: {0}")]
    Rustls(String),
}

/// The cluster CA and this node's certificate and key, in PEM.
#[derive(Clone)]
pub struct TlsMaterial {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

fn read_cert_file(path: &std::path::Path) -> Result<Vec<u8>, TlsError> {
    let err = |reason: String| TlsError::Read {
        path: path.display().to_string(),
        reason,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| err(e.to_string()))?
        .len();
    if len > CERT_FILE_BYTES_MAX {
        return Err(err(format!(
            "{len} bytes, more than the {CERT_FILE_BYTES_MAX} a certificate file may have"
        )));
    }
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    if CertificateDer::pem_slice_iter(&pem).next().is_none() {
        return Err(TlsError::NoCertificate {
            path: path.display().to_string(),
        });
    }
    Ok(pem)
}

impl TlsMaterial {
    /// Reads the files of `config`; the key must not be readable by group
    /// or others, and the certificate must name node `node_id`.
    pub fn load(config: &TlsConfig, node_id: u64) -> Result<TlsMaterial, TlsError> {
        let ca_pem = read_cert_file(&config.ca_file)?;
        let cert_pem = read_cert_file(&config.cert_file)?;
        let key_path = config.key_file.display().to_string();
        let key_pem = crate::key_file::read_private_key(&config.key_file)
            .map_err(|e| TlsError::Key {
                path: key_path.clone(),
                reason: e.to_string(),
            })?
            .into_bytes();
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::Key {
            path: key_path,
            reason: "no PEM private key in the file".into(),
        })?;
        let material = TlsMaterial {
            ca_pem,
            cert_pem,
            key_pem,
        };
        let leaf = material
            .certs()?
            .into_iter()
            .next()
            .ok_or_else(|| TlsError::NoCertificate {
                path: config.cert_file.display().to_string(),
            })?;
        let named = identity::cert_identity(&leaf).map_err(|e| TlsError::WrongNode {
            path: config.cert_file.display().to_string(),
            id: node_id,
            found: e.to_string(),
            expected: identity::node_name(node_id),
        })?;
        if named.node_id != Some(node_id) {
            return Err(TlsError::WrongNode {
                path: config.cert_file.display().to_string(),
                id: node_id,
                found: named
                    .node_id
                    .map_or("no node".to_string(), identity::node_name),
                expected: identity::node_name(node_id),
            });
        }
        material.server_config(ClientCert::Required, Alpn::H2)?;
        Ok(material)
    }

    fn certs(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Rustls(format!("certificate PEM: {e}")))
    }

    fn handshake_timeout() -> Duration {
        Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS)
    }

    /// Dialling node `target` (on either of its listeners): present this
    /// node's certificate, and accept only a server certificate of the
    /// cluster CA that names `target`.
    pub fn peer_client(&self, target: u64) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(identity::node_name(target))
            .timeout(Self::handshake_timeout())
    }

    /// A rustls server configuration: this node's certificate, client
    /// certificates verified against the cluster CA (required on the peer
    /// listener, optional elsewhere), and the ALPN protocol served.
    pub fn server_config(
        &self,
        client_cert: ClientCert,
        alpn: Alpn,
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(&self.ca_pem) {
            let ca = ca.map_err(|e| TlsError::Rustls(format!("CA PEM: {e}")))?;
            roots
                .add(ca)
                .map_err(|e| TlsError::Rustls(format!("CA certificate: {e}")))?;
        }
        let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        );
        let builder = match client_cert {
            ClientCert::Required => builder,
            ClientCert::Optional => builder.allow_unauthenticated(),
        };
        let verifier = builder
            .build()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| TlsError::Rustls(format!("key PEM: {e}")))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.certs()?, key)
            .map_err(|e| TlsError::Rustls(format!("certificate and key: {e}")))?;
        config.alpn_protocols = vec![match alpn {
            Alpn::H2 => b"h2".to_vec(),
            Alpn::Http1 => b"http/1.1".to_vec(),
        }];
        Ok(Arc::new(config))
    }
}

/// Whether a listener requires a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCert {
    /// The peer listener: only nodes, so always a certificate.
    Required,
    /// The client listener and HTTP: a certificate, a token, or neither.
    Optional,
}

/// The application protocol a listener speaks over TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    /// gRPC.
    H2,
    /// tlog-tiles over HTTP/1.1.
    Http1,
}

/// Whether a failed handshake was about the client's certificate (another
/// CA, expired, none where one is required): worth a refusal record, unlike
/// a port scan or a client that hung up.
pub fn is_certificate_refusal(e: &std::io::Error) -> bool {
    matches!(
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
    )
}
