//! `ironlog certs`: the cluster's certificate authority, node and client
//! certificates, and bearer tokens.
//!
//! - `certs ca` makes the cluster CA: `ca.pem` and `ca-key.pem`. Peers and
//!   clients are trusted because their certificates chain to it, so its key
//!   is the cluster's most sensitive file: keep it offline once the nodes
//!   and clients have their certificates.
//! - `certs node` issues `node-<id>.pem` naming `node-<id>.ironlog` (the
//!   identity peers check, [`crate::tls::identity`]) and the hosts clients
//!   dial, for both server and client authentication (a node dials peers).
//! - `certs client` issues `<name>.pem` whose subject common name is the
//!   identity a node's `[[auth.clients]] certificate_cn` grants roles to.
//! - `certs token` makes a random bearer token and prints the SHA-256 that
//!   `[[auth.clients]] token_sha256` holds.
//!
//! Keys are ECDSA P-256 (rustls with ring verifies it, as do most clients).
//! Private keys are written with mode 0600, and no file is ever
//! overwritten: every file is created with `create_new`, and a pair is
//! written only when neither of its files exists. No key material is
//! printed or put in an error.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use clap::{Args, Subcommand};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use tokio_rustls::rustls;

use super::output::{print_json, print_line};
use super::{CliError, Global};
use crate::tls::identity::{self, NODE_NAME_PREFIX};

/// The CA's validity, days: long enough that a cluster never has to
/// re-key its trust root in normal operation.
pub const CA_VALIDITY_DAYS: i64 = 3650;

/// A node or client certificate's validity, days; reissue with `certs`
/// before it ends (the files are never overwritten, so move the old ones).
pub const LEAF_VALIDITY_DAYS: i64 = 825;

/// How far back a new certificate's validity starts, so that a peer whose
/// clock is a little behind does not refuse it as not yet valid.
const CLOCK_SKEW_S: i64 = 3600;

/// Bytes of randomness in a bearer token: 256 bits, beyond guessing.
pub const TOKEN_RANDOM_BYTES: usize = 32;

/// Longest client name: X.509's upper bound for a common name.
pub const CLIENT_NAME_BYTES_MAX: usize = 64;

/// The CA's files in `--dir`.
pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// Common name of a CA made by `certs ca`.
const CA_COMMON_NAME: &str = "Ironlog cluster CA";

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Make a new cluster CA: DIR/ca.pem and DIR/ca-key.pem (mode 0600).
    Ca(CaArgs),
    /// Issue node N's certificate (DIR/node-N.pem, DIR/node-N-key.pem),
    /// signed by DIR/ca.pem, naming node-N.ironlog and each --host.
    Node(NodeArgs),
    /// Issue a client certificate (DIR/NAME.pem, DIR/NAME-key.pem) whose
    /// common name NAME is what `[[auth.clients]] certificate_cn` matches.
    Client(ClientArgs),
    /// Make a random bearer token; print it and the SHA-256 for `token_sha256`.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct CaArgs {
    /// Directory for the CA's files (created, mode 0700, if missing).
    #[arg(long)]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Directory holding ca.pem and ca-key.pem; the node's files go there too.
    #[arg(long)]
    pub dir: PathBuf,
    /// The node's id, as in its config.
    #[arg(long)]
    pub id: u64,
    /// A host name or IP address that peers and clients dial (repeatable),
    /// e.g. --host ledger-1.example.org --host 10.0.0.11.
    #[arg(long = "host", value_name = "HOST", required = true)]
    pub hosts: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Directory holding ca.pem and ca-key.pem; the client's files go there too.
    #[arg(long)]
    pub dir: PathBuf,
    /// The identity's name, e.g. payments-api (not node-..., no '/' or spaces).
    #[arg(long)]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Write the token to FILE (mode 0600, never overwritten) instead of
    /// printing it; for `--token-file` / IRONLOG_TOKEN_FILE.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Why a certificate, key or token was not made. Each names the file or
/// value to fix; none carries key material.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("{} already exists; refusing to overwrite it (move it away to issue a new one)", .path.display())]
    Exists { path: PathBuf },
    #[error("cannot write {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CA key: {0}")]
    CaKey(#[source] crate::key_file::KeyFileError),
    #[error("{}: {reason}; make a CA with `ironlog certs ca --dir DIR`", .path.display())]
    CaInvalid { path: PathBuf, reason: String },
    #[error("cannot generate the certificate: {0}")]
    Generate(String),
    #[error("client name {name:?}: {reason}")]
    ClientName { name: String, reason: &'static str },
    #[error("--host {host:?}: {reason}")]
    Host { host: String, reason: &'static str },
    #[error("node id must be non-zero")]
    NodeIdZero,
    #[error("the issued certificate does not verify against {}: {reason}", .ca.display())]
    NotVerified { ca: PathBuf, reason: String },
}

impl From<rcgen::Error> for CertsError {
    fn from(e: rcgen::Error) -> Self {
        CertsError::Generate(e.to_string())
    }
}

pub fn run(global: &Global, command: &CertsCommand) -> Result<(), CliError> {
    match command {
        CertsCommand::Ca(args) => {
            let files = create_ca(&args.dir)?;
            report(global, "CA", &files)
        }
        CertsCommand::Node(args) => {
            let ca = CertificateAuthority::load(&args.dir)?;
            let files = ca.issue_node(&args.dir, args.id, &args.hosts)?;
            report(global, &identity::node_name(args.id), &files)
        }
        CertsCommand::Client(args) => {
            let ca = CertificateAuthority::load(&args.dir)?;
            let files = ca.issue_client(&args.dir, &args.name)?;
            report(global, &args.name, &files)
        }
        CertsCommand::Token(args) => token(global, args),
    }
}

/// A certificate and its private key, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn report(global: &Global, what: &str, files: &CertFiles) -> Result<(), CliError> {
    if global.json {
        return print_json(&serde_json::json!({
            "name": what,
            "certificate_file": files.cert.display().to_string(),
            "private_key_file": files.key.display().to_string(),
        }));
    }
    print_line(&format!(
        "{what}: certificate {}, private key {} (mode 0600)",
        files.cert.display(),
        files.key.display()
    ))
}

fn token(global: &Global, args: &TokenArgs) -> Result<(), CliError> {
    let token = new_token();
    let hash = token_sha256(&token);
    if let Some(out) = &args.out {
        write_new(out, format!("{token}\n").as_bytes(), 0o600)?;
    }
    let shown = args.out.is_none().then_some(token.as_str());
    if global.json {
        return print_json(&serde_json::json!({
            "token": shown,
            "token_file": args.out.as_ref().map(|p| p.display().to_string()),
            "token_sha256": hash,
        }));
    }
    match shown {
        Some(token) => print_line(&format!("token         {token}"))?,
        None => print_line(&format!(
            "token written to {} (mode 0600)",
            args.out.as_deref().unwrap_or(Path::new("")).display()
        ))?,
    }
    print_line(&format!("token_sha256  {hash}"))?;
    eprintln!(
        "Put token_sha256 in the node configs' [[auth.clients]] entry; give the token to \
         the client only (--token-file or IRONLOG_TOKEN_FILE). It is not stored anywhere else."
    );
    Ok(())
}

/// A fresh bearer token: 256 random bits, base64url without padding.
pub fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_RANDOM_BYTES];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The hex SHA-256 of a token, as `[[auth.clients]] token_sha256` holds it.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Makes a new CA in `dir`; refuses if either of its files exists.
pub fn create_ca(dir: &Path) -> Result<CertFiles, CertsError> {
    create_dir(dir)?;
    let files = CertFiles {
        cert: dir.join(CA_CERT_FILE),
        key: dir.join(CA_KEY_FILE),
    };
    refuse_existing(&files)?;
    let key = KeyPair::generate()?;
    let cert = ca_params(CA_VALIDITY_DAYS)?.self_signed(&key)?;
    write_pair(&files, &cert.pem(), &key.serialize_pem())?;
    Ok(files)
}

/// The cluster CA, loaded to issue certificates.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_path: PathBuf,
    cert_der: CertificateDer<'static>,
}

impl CertificateAuthority {
    /// Reads `dir/ca.pem` and `dir/ca-key.pem` (which must be mode 0600).
    pub fn load(dir: &Path) -> Result<CertificateAuthority, CertsError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let invalid = |path: &Path, reason: String| CertsError::CaInvalid {
            path: path.to_path_buf(),
            reason,
        };
        let pem = std::fs::read(&cert_path).map_err(|source| CertsError::Read {
            path: cert_path.clone(),
            source,
        })?;
        let cert_der = CertificateDer::from_pem_slice(&pem)
            .map_err(|e| invalid(&cert_path, format!("no PEM certificate ({e})")))?;
        let key_text = crate::key_file::read_private_key(&key_path).map_err(CertsError::CaKey)?;
        let key = KeyPair::from_pem(&key_text)
            .map_err(|_| invalid(&key_path, "not a PKCS#8 PEM private key".into()))?;
        let public_key = spki_of(&cert_der).map_err(|e| invalid(&cert_path, e))?;
        if rcgen::PublicKeyData::der_bytes(&key) != public_key.as_slice() {
            return Err(invalid(
                &key_path,
                format!(
                    "does not belong to the certificate in {}",
                    cert_path.display()
                ),
            ));
        }
        // rcgen 0.14 reads an issuer from a certificate only with its
        // x509-parser feature; the issuer's subject is rebuilt instead, and
        // every issued certificate is verified against the CA file, so a
        // CA whose subject this cannot reproduce is refused, not used.
        let mut params = ca_params(CA_VALIDITY_DAYS)?;
        params.distinguished_name =
            subject_of(&cert_der).map_err(|reason| invalid(&cert_path, reason))?;
        Ok(CertificateAuthority {
            issuer: Issuer::new(params, key),
            cert_path,
            cert_der,
        })
    }

    /// Issues node `id`'s certificate into `dir`: `node-<id>.pem` and
    /// `node-<id>-key.pem`.
    pub fn issue_node(
        &self,
        dir: &Path,
        id: u64,
        hosts: &[String],
    ) -> Result<CertFiles, CertsError> {
        if id == 0 {
            return Err(CertsError::NodeIdZero);
        }
        let name = identity::node_name(id);
        let mut sans = vec![name.clone()];
        for host in hosts {
            check_host(id, host)?;
            if !sans.contains(host) {
                sans.push(host.clone());
            }
        }
        let mut params = leaf_params(sans, &name)?;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let files = CertFiles {
            cert: dir.join(format!("node-{id}.pem")),
            key: dir.join(format!("node-{id}-key.pem")),
        };
        self.issue(&files, &params)?;
        Ok(files)
    }

    /// Issues a client certificate with common name `name` into `dir`:
    /// `<name>.pem` and `<name>-key.pem`.
    pub fn issue_client(&self, dir: &Path, name: &str) -> Result<CertFiles, CertsError> {
        check_client_name(name)?;
        let mut params = leaf_params(Vec::new(), name)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let files = CertFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        self.issue(&files, &params)?;
        Ok(files)
    }

    fn issue(&self, files: &CertFiles, params: &CertificateParams) -> Result<(), CertsError> {
        refuse_existing(files)?;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        self.verify(cert.der())?;
        write_pair(files, &cert.pem(), &key.serialize_pem())
    }

    /// Checks that `leaf` chains to this CA as a client certificate (every
    /// certificate issued here may authenticate a client; node certificates
    /// also serve), with rustls's own verifier, as a node will check it.
    pub fn verify(&self, leaf: &CertificateDer<'_>) -> Result<(), CertsError> {
        let not_verified = |reason: String| CertsError::NotVerified {
            ca: self.cert_path.clone(),
            reason,
        };
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.cert_der.clone())
            .map_err(|e| not_verified(e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| not_verified(e.to_string()))?;
        verifier
            .verify_client_cert(&leaf.clone().into_owned(), &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| not_verified(e.to_string()))
    }
}

/// The parameters of a CA certificate valid for `days`.
fn ca_params(days: i64) -> Result<CertificateParams, CertsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, days);
    Ok(params)
}

/// A leaf certificate's parameters: `sans` (IP addresses where they parse
/// as one, DNS names otherwise) and common name `cn`.
fn leaf_params(sans: Vec<String>, cn: &str) -> Result<CertificateParams, CertsError> {
    let mut params = CertificateParams::new(sans)?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    set_validity(&mut params, LEAF_VALIDITY_DAYS);
    Ok(params)
}

fn set_validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::seconds(CLOCK_SKEW_S);
    params.not_after = now + time::Duration::days(days);
}

/// The public key bits of a certificate (the subjectPublicKey bit string).
fn spki_of(der: &CertificateDer<'_>) -> Result<Vec<u8>, String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}

/// The certificate's subject as rcgen writes it: common and organisation
/// names, the attributes `certs ca` uses.
fn subject_of(der: &CertificateDer<'_>) -> Result<DistinguishedName, String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let mut name = DistinguishedName::new();
    for cn in cert.subject().iter_common_name() {
        let cn = cn.as_str().map_err(|e| e.to_string())?;
        name.push(DnType::CommonName, cn);
    }
    for o in cert.subject().iter_organization() {
        let o = o.as_str().map_err(|e| e.to_string())?;
        name.push(DnType::OrganizationName, o);
    }
    if name.iter().next().is_none() {
        return Err("the CA certificate's subject has no common name".into());
    }
    Ok(name)
}

/// A host a node certificate may name: an IP address or a DNS name, and
/// not another node's name (a certificate naming two nodes is refused).
fn check_host(id: u64, host: &str) -> Result<(), CertsError> {
    let refuse = |reason| {
        Err(CertsError::Host {
            host: host.to_string(),
            reason,
        })
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if host.is_empty() || host.len() > 253 {
        return refuse("a host name has 1 to 253 characters");
    }
    // No wildcards: `*.ironlog` would name every node, and one node could
    // then pose as any peer.
    let dns_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    if !host.chars().all(dns_char) {
        return refuse("not an IP address or a DNS name (letters, digits, '-', '.'; no wildcards)");
    }
    match identity::parse_node_name(host) {
        Some(other) if other != id => refuse("names another node"),
        _ => Ok(()),
    }
}

/// A client identity's name: the certificate's common name and the stem
/// of its file names, so it must be a plain, short, printable word.
pub fn check_client_name(name: &str) -> Result<(), CertsError> {
    let refuse = |reason| {
        Err(CertsError::ClientName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > CLIENT_NAME_BYTES_MAX {
        return refuse("must have 1 to 64 bytes");
    }
    if name.starts_with(NODE_NAME_PREFIX) {
        return refuse("must not start with \"node-\", which names cluster nodes");
    }
    if name
        .chars()
        .any(|c| c == '/' || c.is_whitespace() || c.is_control())
    {
        return refuse("must not contain '/', whitespace or control characters");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return refuse("must not start with '.' or '-'");
    }
    if name == "ca" {
        return refuse("\"ca\" is the CA's own file name");
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), CertsError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CertsError::Write {
            path: dir.to_path_buf(),
            source,
        })
}

/// Refuses before anything is generated if either file exists (or is a
/// dangling symlink), so a pair is never half replaced.
fn refuse_existing(files: &CertFiles) -> Result<(), CertsError> {
    for path in [&files.cert, &files.key] {
        if path.symlink_metadata().is_ok() {
            return Err(CertsError::Exists { path: path.clone() });
        }
    }
    Ok(())
}

/// Writes the key (0600) first, then the certificate (0644): a certificate
/// is never on disk without its key.
fn write_pair(files: &CertFiles, cert_pem: &str, key_pem: &str) -> Result<(), CertsError> {
    write_new(&files.key, key_pem.as_bytes(), 0o600)?;
    write_new(&files.cert, cert_pem.as_bytes(), 0o644)
}

/// Creates `path` (failing if it exists, even if created since any check)
/// with `mode` and writes `bytes`, synced.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertsError> {
    crate::key_file::create_new(path, bytes, mode).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            CertsError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            CertsError::Write {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::tls::identity::cert_identity;
    use rustls::client::danger::ServerCertVerifier;

    fn der_of(path: &Path) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(path).expect("PEM certificate")
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn a_node_certificate_names_its_node_and_verifies_against_the_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_files = create_ca(dir.path()).expect("CA");
        assert_eq!(mode(&ca_files.key), 0o600);
        let ca = CertificateAuthority::load(dir.path()).expect("load CA");
        let hosts = ["127.0.0.1".to_string(), "localhost".to_string()];
        let files = ca.issue_node(dir.path(), 3, &hosts).expect("node cert");
        assert_eq!(files.cert, dir.path().join("node-3.pem"));
        assert_eq!(mode(&files.key), 0o600);
        let der = der_of(&files.cert);
        let id = cert_identity(&der).expect("parses");
        assert_eq!(id.node_id, Some(3));
        assert_eq!(id.common_name.as_deref(), Some("node-3.ironlog"));
        ca.verify(&der).expect("chains to the CA");

        // As a server certificate too, for the names peers and clients dial.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der_of(&ca_files.cert)).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("verifier");
        for name in ["node-3.ironlog", "127.0.0.1", "localhost"] {
            let server = rustls_pki_types::ServerName::try_from(name).expect("name");
            verifier
                .verify_server_cert(&der, &[], &server, &[], UnixTime::now())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = rustls_pki_types::ServerName::try_from("node-2.ironlog").expect("name");
        assert!(verifier
            .verify_server_cert(&der, &[], &other, &[], UnixTime::now())
            .is_err());
    }

    #[test]
    fn a_client_certificate_names_no_node_and_carries_its_common_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        create_ca(dir.path()).expect("CA");
        let ca = CertificateAuthority::load(dir.path()).expect("load CA");
        let files = ca.issue_client(dir.path(), "payments-api").expect("client");
        let der = der_of(&files.cert);
        let id = cert_identity(&der).expect("parses");
        assert_eq!(id.node_id, None);
        assert_eq!(id.common_name.as_deref(), Some("payments-api"));
        ca.verify(&der).expect("chains to the CA");
        assert_eq!(mode(&files.key), 0o600);
    }

    #[test]
    fn a_certificate_of_another_ca_does_not_verify() {
        let ours = tempfile::tempdir().expect("tempdir");
        let theirs = tempfile::tempdir().expect("tempdir");
        create_ca(ours.path()).expect("CA");
        create_ca(theirs.path()).expect("CA");
        let ours = CertificateAuthority::load(ours.path()).expect("ours");
        let theirs_ca = CertificateAuthority::load(theirs.path()).expect("theirs");
        let files = theirs_ca
            .issue_node(theirs.path(), 1, &["127.0.0.1".into()])
            .expect("node");
        assert!(matches!(
            ours.verify(&der_of(&files.cert)),
            Err(CertsError::NotVerified { .. })
        ));
    }

    #[test]
    fn existing_files_are_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = create_ca(dir.path()).expect("CA");
        let before = std::fs::read(&files.key).expect("read");
        let err = create_ca(dir.path()).expect_err("second CA");
        assert!(
            err.to_string().contains("ca.pem") && err.to_string().contains("refusing"),
            "{err}"
        );
        assert_eq!(std::fs::read(&files.key).expect("read"), before);

        let ca = CertificateAuthority::load(dir.path()).expect("load CA");
        ca.issue_client(dir.path(), "ops").expect("client");
        let err = ca.issue_client(dir.path(), "ops").expect_err("again");
        assert!(matches!(err, CertsError::Exists { .. }), "{err}");
        // A stray key alone also blocks the pair, and stays as it was.
        std::fs::write(dir.path().join("node-1-key.pem"), "x").expect("write");
        let err = ca
            .issue_node(dir.path(), 1, &["localhost".into()])
            .expect_err("key exists");
        assert!(err.to_string().contains("node-1-key.pem"), "{err}");
        assert!(!dir.path().join("node-1.pem").exists());
        let token = dir.path().join("t");
        write_new(&token, b"a", 0o600).expect("first");
        assert!(matches!(
            write_new(&token, b"b", 0o600),
            Err(CertsError::Exists { .. })
        ));
    }

    #[test]
    fn a_ca_key_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = create_ca(dir.path()).expect("CA");
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        assert!(matches!(
            CertificateAuthority::load(dir.path()),
            Err(CertsError::CaKey(_))
        ));
    }

    #[test]
    fn client_names_that_could_pose_as_a_node_or_a_path_are_refused() {
        for name in [
            "",
            "node-1.ironlog",
            "node-x",
            "a/b",
            "a b",
            "a\tb",
            "a\u{7}b",
            "..",
            ".hidden",
            "-x",
            "ca",
            &"x".repeat(65),
        ] {
            assert!(check_client_name(name).is_err(), "{name:?}");
        }
        for name in ["operator", "payments-api", "svc.example_1"] {
            check_client_name(name).expect(name);
        }
    }

    #[test]
    fn node_hosts_may_not_name_another_node() {
        check_host(1, "node-1.ironlog").expect("its own name");
        check_host(1, "::1").expect("IPv6");
        for host in [
            "node-2.ironlog",
            "a b",
            "",
            "a/b",
            "exämple.org",
            "*.ironlog",
            "*",
        ] {
            assert!(check_host(1, host).is_err(), "{host:?}");
        }
    }

    #[test]
    fn tokens_are_random_and_hashed_as_sent() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        super::super::client::bearer_value(&a).expect("a valid header value");
        assert_eq!(
            token_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
