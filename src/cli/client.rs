//! Connecting to a node, with the cluster's TLS and the caller's
//! credentials, and showing gRPC statuses as `<code>: <message>`.
//!
//! An `https://` endpoint (the default) is verified against the cluster CA
//! given with `--ca`; the caller may present a client certificate
//! (`--cert`/`--key`) and a bearer token (`--token`/`--token-file`). The
//! token rides on every call of every command, because every client is
//! built on [`Conn`], whose interceptor inserts it. `http://` is plaintext,
//! for clusters run with `--insecure`; a token is never sent over it.
//!
//! Nothing here prints or logs a token or any byte of a key file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;

use super::CliError;
use crate::key_file::KeyFileError;
use crate::limits;
use crate::proto::admin_client::AdminClient;
use crate::proto::ledger_client::LedgerClient;

/// How long to wait for a TCP and HTTP/2 connection before giving up. Long
/// enough for a node across a WAN, short enough that a typo'd port fails fast.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// Deadline for one unary call. Appends wait for a Raft commit, which takes
/// a few heartbeats; a call still pending after this is reported, not hung on.
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;

/// Deadline for one call to the analysis node: a call may wait for the
/// model behind others (one computation at a time on a small machine), each
/// bounded by the node's own model timeout.
pub const ANALYSIS_REQUEST_TIMEOUT_MS: u64 = 300_000;

/// Largest CA or client certificate file read, bytes: a short chain.
pub const CERT_FILE_BYTES_MAX: u64 = crate::tls::CERT_FILE_BYTES_MAX;

pub use crate::tls::bearer::{Bearer, Conn};

/// A bearer token as given on the command line or read from a file. Its
/// `Debug` shows nothing of it, so no error or log line can carry it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl std::str::FromStr for Token {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Token, Self::Err> {
        Ok(Token(s.to_string()))
    }
}

/// How the caller proves who it is, and how it checks the node: the global
/// `--ca`, `--cert`, `--key`, `--token` and `--token-file` options. Files
/// are read when a command connects, so commands that never connect
/// (`keygen`, `certs`, `fsck`) are not affected by stale settings.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// The cluster CA (PEM) that an `https://` node's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) issued by the cluster CA, with its key.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub token: Option<Token>,
    /// File holding the token (mode 0600, like a private key).
    pub token_file: Option<PathBuf>,
}

/// Why the credentials or the endpoint could not be used. None of these
/// carries a token or key bytes; each names the option or file to fix.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "{endpoint} is an https:// endpoint but no CA certificate was given: pass --ca FILE \
         or set IRONLOG_CA (the cluster's ca.pem; `ironlog cluster up` writes an env file \
         that sets it); use http:// only for a cluster run with --insecure"
    )]
    CaMissing { endpoint: String },
    #[error("endpoint {endpoint:?}: use https://host:port (or http://host:port for a cluster run with --insecure)")]
    Scheme { endpoint: String },
    #[error("cannot read {what} {}: {source}", .path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {} is {bytes} bytes, more than the {max} a certificate file may have", .path.display())]
    TooLarge {
        what: &'static str,
        path: PathBuf,
        bytes: u64,
        max: u64,
    },
    #[error("{what} {} holds no PEM certificate", .path.display())]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("client key: {0}")]
    Key(#[source] KeyFileError),
    #[error("token file: {0}")]
    TokenFile(#[source] KeyFileError),
    #[error("--cert and --key (IRONLOG_CERT, IRONLOG_KEY) go together; {missing} is missing")]
    IdentityHalf { missing: &'static str },
    #[error("give --token (IRONLOG_TOKEN) or --token-file (IRONLOG_TOKEN_FILE), not both")]
    TokenTwice,
    #[error("the bearer token {reason}")]
    TokenInvalid { reason: &'static str },
    #[error(
        "refusing to send a bearer token in plaintext to {endpoint}: use an https:// \
         endpoint with --ca, or unset --token/--token-file (IRONLOG_TOKEN, IRONLOG_TOKEN_FILE)"
    )]
    TokenOverPlaintext { endpoint: String },
    #[error(
        "a client certificate cannot be presented over plaintext {endpoint}: use an \
         https:// endpoint, or unset --cert/--key (IRONLOG_CERT, IRONLOG_KEY)"
    )]
    CertOverPlaintext { endpoint: String },
}

/// Longest bearer token accepted, bytes; `ironlog certs token` makes 43.
pub const TOKEN_BYTES_MAX: usize = 1024;

/// The `authorization` value for `token`: printable ASCII without spaces,
/// as RFC 6750 allows, marked sensitive so HTTP/2 never indexes it.
pub fn bearer_value(token: &str) -> Result<MetadataValue<Ascii>, CredentialsError> {
    let invalid = |reason| CredentialsError::TokenInvalid { reason };
    if token.is_empty() {
        return Err(invalid("is empty"));
    }
    if token.len() > TOKEN_BYTES_MAX {
        return Err(invalid("is longer than 1024 bytes"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "must be printable ASCII without spaces or control characters",
        ));
    }
    let mut value = MetadataValue::try_from(format!("Bearer {token}"))
        .map_err(|_| invalid("is not a valid header value"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Reads a certificate file, bounded, and checks it holds a PEM certificate.
fn read_cert(what: &'static str, path: &Path) -> Result<Vec<u8>, CredentialsError> {
    let read = |source| CredentialsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::metadata(path).map_err(read)?.len();
    if bytes > CERT_FILE_BYTES_MAX {
        return Err(CredentialsError::TooLarge {
            what,
            path: path.to_path_buf(),
            bytes,
            max: CERT_FILE_BYTES_MAX,
        });
    }
    let pem = std::fs::read(path).map_err(read)?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(CredentialsError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(pem)
}

impl Credentials {
    /// The token to send, if any, from `--token` or `--token-file`.
    fn token(&self) -> Result<Option<String>, CredentialsError> {
        match (&self.token, &self.token_file) {
            (Some(_), Some(_)) => Err(CredentialsError::TokenTwice),
            (Some(Token(token)), None) => Ok(Some(token.trim().to_string())),
            (None, Some(path)) => {
                let text =
                    crate::key_file::read_private_key(path).map_err(CredentialsError::TokenFile)?;
                Ok(Some(text.trim().to_string()))
            }
            (None, None) => Ok(None),
        }
    }

    /// The bearer interceptor for calls to `endpoint` (`https` or not).
    fn bearer(&self, endpoint: &str, https: bool) -> Result<Bearer, CredentialsError> {
        let Some(token) = self.token()? else {
            return Ok(Bearer::new(None));
        };
        if !https {
            return Err(CredentialsError::TokenOverPlaintext {
                endpoint: endpoint.to_string(),
            });
        }
        Ok(Bearer::new(Some(bearer_value(&token)?)))
    }

    /// The TLS settings for an `https://` endpoint: the CA (required) and
    /// the client identity, if given.
    fn tls(&self, endpoint: &str) -> Result<ClientTlsConfig, CredentialsError> {
        let Some(ca) = &self.ca else {
            return Err(CredentialsError::CaMissing {
                endpoint: endpoint.to_string(),
            });
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read_cert("CA certificate", ca)?))
            .timeout(Duration::from_millis(CONNECT_TIMEOUT_MS));
        match (&self.cert, &self.key) {
            (None, None) => Ok(tls),
            (Some(_), None) => Err(CredentialsError::IdentityHalf { missing: "--key" }),
            (None, Some(_)) => Err(CredentialsError::IdentityHalf { missing: "--cert" }),
            (Some(cert), Some(key)) => {
                let cert = read_cert("client certificate", cert)?;
                let key = crate::key_file::read_private_key(key).map_err(CredentialsError::Key)?;
                Ok(tls.identity(Identity::from_pem(cert, key)))
            }
        }
    }

    /// An endpoint for `url` with TLS set up as its scheme asks, and the
    /// bearer interceptor for it.
    fn endpoint(&self, url: &str) -> Result<(Endpoint, Bearer), CliError> {
        let full = with_scheme(url);
        let https = if full.starts_with("https://") {
            true
        } else if full.starts_with("http://") {
            false
        } else {
            return Err(CredentialsError::Scheme {
                endpoint: url.to_string(),
            }
            .into());
        };
        let invalid = |source| CliError::Endpoint {
            endpoint: url.to_string(),
            source,
        };
        let mut endpoint = Endpoint::from_shared(full).map_err(invalid)?;
        if https {
            endpoint = endpoint.tls_config(self.tls(url)?).map_err(invalid)?;
        } else if self.cert.is_some() || self.key.is_some() {
            return Err(CredentialsError::CertOverPlaintext {
                endpoint: url.to_string(),
            }
            .into());
        }
        let bearer = self.bearer(url, https)?;
        Ok((
            endpoint.connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS)),
            bearer,
        ))
    }
}

/// Opens a channel to `endpoint` (e.g. `https://127.0.0.1:7001`).
pub async fn connect(credentials: &Credentials, endpoint: &str) -> Result<Conn, CliError> {
    connect_with(
        credentials,
        endpoint,
        Some(Duration::from_millis(REQUEST_TIMEOUT_MS)),
    )
    .await
}

/// A channel for the analysis node's unary calls.
pub async fn connect_analysis(credentials: &Credentials, endpoint: &str) -> Result<Conn, CliError> {
    connect_with(
        credentials,
        endpoint,
        Some(Duration::from_millis(ANALYSIS_REQUEST_TIMEOUT_MS)),
    )
    .await
}

/// A channel without a per-call deadline, for `tail`, which streams forever.
pub async fn connect_streaming(
    credentials: &Credentials,
    endpoint: &str,
) -> Result<Conn, CliError> {
    connect_with(credentials, endpoint, None).await
}

/// `host:port` without a scheme means `https://`: TLS unless asked otherwise.
fn with_scheme(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("https://{endpoint}")
    }
}

async fn connect_with(
    credentials: &Credentials,
    endpoint: &str,
    timeout: Option<Duration>,
) -> Result<Conn, CliError> {
    let (parsed, bearer) = credentials.endpoint(endpoint)?;
    let parsed = match timeout {
        Some(timeout) => parsed.timeout(timeout),
        None => parsed,
    };
    let channel = parsed.connect().await.map_err(|source| CliError::Connect {
        endpoint: endpoint.to_string(),
        source,
    })?;
    Ok(InterceptedService::new(channel, bearer))
}

/// A channel for the auditor's log reader (`audit::reader::LogReader`) with the caller's
/// credentials. `lazy` connects on first use and reconnects after failures,
/// for `monitor`, which must outlive an outage.
pub async fn connect_audit(
    credentials: &Credentials,
    endpoint: &str,
    lazy: bool,
) -> Result<Conn, CliError> {
    let (parsed, bearer) = credentials.endpoint(endpoint)?;
    let parsed = parsed.timeout(Duration::from_millis(REQUEST_TIMEOUT_MS));
    let channel = if lazy {
        parsed.connect_lazy()
    } else {
        parsed.connect().await.map_err(|source| CliError::Connect {
            endpoint: endpoint.to_string(),
            source,
        })?
    };
    Ok(InterceptedService::new(channel, bearer))
}

pub fn ledger(channel: Conn) -> LedgerClient<Conn> {
    LedgerClient::new(channel)
        .max_decoding_message_size(limits::GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(limits::GRPC_MESSAGE_BYTES_MAX)
}

pub fn admin(channel: Conn) -> AdminClient<Conn> {
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
    use tonic::service::Interceptor;

    fn creds() -> Credentials {
        Credentials::default()
    }

    fn refusal(credentials: &Credentials, endpoint: &str) -> String {
        match credentials.endpoint(endpoint) {
            Ok(_) => panic!("{endpoint} accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_bearer_interceptor_puts_the_token_on_every_request() {
        let mut bearer = Bearer::new(Some(bearer_value("abc_DEF-123").expect("valid")));
        for _ in 0..2 {
            let request = bearer.call(tonic::Request::new(())).expect("passes");
            let value = request.metadata().get("authorization").expect("header");
            assert_eq!(value.to_str().expect("ascii"), "Bearer abc_DEF-123");
        }
        let request = Bearer::new(None)
            .call(tonic::Request::new(()))
            .expect("passes");
        assert!(request.metadata().get("authorization").is_none());
    }

    #[test]
    fn tokens_that_are_not_header_values_are_refused_without_echoing_them() {
        for token in ["", "a b", "a\nb", "caf\u{e9}", "a\u{0}b"] {
            let err = bearer_value(token).expect_err("refused").to_string();
            assert!(err.starts_with("the bearer token "), "{err}");
            if !token.is_empty() {
                assert!(!err.contains(token), "{err}");
            }
        }
        assert!(bearer_value(&"x".repeat(TOKEN_BYTES_MAX + 1)).is_err());
        assert_eq!(format!("{:?}", Token::new("s3cret")), "Token(<redacted>)");
        let bearer = Bearer::new(Some(bearer_value("s3cret").expect("valid")));
        assert!(!format!("{bearer:?}").contains("s3cret"));
    }

    #[test]
    fn https_needs_a_ca_and_plaintext_refuses_a_token_or_certificate() {
        let err = refusal(&creds(), "https://127.0.0.1:7001");
        assert!(err.contains("--ca") && err.contains("IRONLOG_CA"), "{err}");
        let err = refusal(&creds(), "127.0.0.1:7001");
        assert!(err.contains("--ca"), "no scheme means https: {err}");
        creds()
            .endpoint("http://127.0.0.1:7001")
            .expect("plaintext without credentials");

        let with_token = Credentials {
            token: Some(Token::new("s3cret")),
            ..creds()
        };
        let err = refusal(&with_token, "http://127.0.0.1:7001");
        assert!(
            err.contains("plaintext") && !err.contains("s3cret"),
            "{err}"
        );
        let with_cert = Credentials {
            cert: Some("c.pem".into()),
            key: Some("k.pem".into()),
            ..creds()
        };
        assert!(refusal(&with_cert, "http://127.0.0.1:7001").contains("plaintext"));
        assert!(refusal(&creds(), "ftp://127.0.0.1:7001").contains("https://"));
        let both = Credentials {
            token: Some(Token::new("a")),
            token_file: Some("t".into()),
            ..creds()
        };
        assert!(matches!(both.token(), Err(CredentialsError::TokenTwice)));
    }

    #[test]
    fn a_missing_ca_file_or_half_an_identity_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = Credentials {
            ca: Some(dir.path().join("nope.pem")),
            ..creds()
        };
        assert!(refusal(&missing, "https://127.0.0.1:7001").contains("nope.pem"));
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "hello").expect("write");
        let bad = Credentials {
            ca: Some(not_pem.clone()),
            ..creds()
        };
        assert!(refusal(&bad, "https://127.0.0.1:7001").contains("no PEM certificate"));
        let ca = crate::cli::certs::create_ca(dir.path().join("tls").as_path()).expect("ca");
        let half = Credentials {
            ca: Some(ca.cert.clone()),
            cert: Some(ca.cert.clone()),
            ..creds()
        };
        assert!(refusal(&half, "https://127.0.0.1:7001").contains("--key"));
        let good = Credentials {
            ca: Some(ca.cert),
            ..creds()
        };
        good.endpoint("https://127.0.0.1:7001").expect("CA only");
    }

    #[test]
    fn status_shows_code_then_message() {
        let shown = StatusError(tonic::Status::unavailable("no leader")).to_string();
        assert_eq!(shown, "unavailable: no leader");
        let shown = StatusError(tonic::Status::new(Code::NotFound, "")).to_string();
        assert_eq!(shown, "not_found");
    }
}
