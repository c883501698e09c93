//! Certificates for test clusters, made with rcgen: a cluster CA, node
//! certificates naming `node-<id>.ironlog` and 127.0.0.1, and client
//! certificates; and a second, unrelated CA for the attacks.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ironlog::config::TlsConfig;
use ironlog::tls::identity::node_name;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

pub struct Pki {
    dir: PathBuf,
    /// A name for the files of this CA, so two CAs share a directory.
    label: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A client's certificate and key, in PEM.
#[derive(Clone)]
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write key");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
}

impl Pki {
    pub fn new(dir: &Path, label: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{label} test CA"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA");
        std::fs::write(dir.join(format!("{label}-ca.pem")), issuer.pem()).expect("write CA");
        Pki {
            dir: dir.to_path_buf(),
            label: label.to_string(),
            issuer,
        }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.label))
    }

    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    fn issue(
        &self,
        sans: Vec<String>,
        cn: &str,
        usages: Vec<ExtendedKeyUsagePurpose>,
    ) -> ClientCert {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = usages;
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        ClientCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Node `id`'s certificate files (serving both listeners, dialling peers).
    pub fn node(&self, id: u64) -> TlsConfig {
        self.node_into(&self.dir, id)
    }

    /// [`Pki::node`], with the CA and the node's files written into `dir`.
    pub fn node_into(&self, dir: &Path, id: u64) -> TlsConfig {
        let c = self.issue(
            vec![node_name(id), "127.0.0.1".into(), "localhost".into()],
            &node_name(id),
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        let cert_file = dir.join(format!("{}-node-{id}.pem", self.label));
        let key_file = dir.join(format!("{}-node-{id}-key.pem", self.label));
        let ca_file = dir.join(format!("{}-ca.pem", self.label));
        std::fs::write(&cert_file, &c.cert_pem).expect("write cert");
        write_private(&key_file, &c.key_pem);
        std::fs::write(&ca_file, self.ca_pem()).expect("write CA");
        TlsConfig {
            ca_file,
            cert_file,
            key_file,
        }
    }

    /// A node certificate's PEM (to dial as that node from a test).
    pub fn node_client(&self, id: u64) -> ClientCert {
        self.issue(
            vec![node_name(id), "127.0.0.1".into()],
            &node_name(id),
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    /// A client certificate with subject CN `name`.
    pub fn client(&self, name: &str) -> ClientCert {
        self.issue(Vec::new(), name, vec![ExtendedKeyUsagePurpose::ClientAuth])
    }
}
