//! Who a certificate names: a node of this cluster (`node-<id>.ironlog`,
//! a DNS subject alternative name that `ironlog certs` puts in every node
//! certificate), or a client (its subject common name).
//!
//! The node name is a DNS name rather than a custom extension so that a
//! peer dialling node 2 can ask rustls to verify exactly that name: the
//! server side of a peer connection is authenticated by the same rule as
//! the client side.
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Every node certificate names `node-<id>.ironlog`; no client identity may
/// start with this prefix (the configuration checks that, below this layer).
pub use crate::config::NODE_NAME_PREFIX;
/// The suffix of a node name.
pub const NODE_NAME_SUFFIX: &str = ".ironlog";

/// The DNS name a node's certificate carries, and that peers verify.
pub fn node_name(id: u64) -> String {
    format!("{NODE_NAME_PREFIX}{id}{NODE_NAME_SUFFIX}")
}

/// The node id in a node name; `None` for any other name.
pub fn parse_node_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(NODE_NAME_PREFIX)?
        .strip_suffix(NODE_NAME_SUFFIX)?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|id| *id != 0)
}

/// What a verified certificate says about its holder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertIdentity {
    /// The subject's common name, if any.
    pub common_name: Option<String>,
    /// The node id, if the certificate names exactly one node.
    pub node_id: Option<u64>,
}

/// Why a certificate's identity could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the certificate does not parse as X.509: {0}")]
    Parse(String),
    #[error("the certificate names more than one node ({first} and {second})")]
    SeveralNodes { first: u64, second: u64 },
}

/// Reads the identity of a certificate that TLS already verified against
/// the cluster CA (this function checks no signature).
pub fn cert_identity(der: &[u8]) -> Result<CertIdentity, IdentityError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| IdentityError::Parse(e.to_string()))?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let mut node_id = None;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            let GeneralName::DNSName(dns) = name else {
                continue;
            };
            let Some(id) = parse_node_name(dns) else {
                continue;
            };
            match node_id {
                Some(first) if first != id => {
                    return Err(IdentityError::SeveralNodes { first, second: id })
                }
                _ => node_id = Some(id),
            }
        }
    }
    Ok(CertIdentity {
        common_name,
        node_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_round_trip_and_nothing_else_parses() {
        assert_eq!(node_name(7), "node-7.ironlog");
        assert_eq!(parse_node_name("node-7.ironlog"), Some(7));
        for bad in [
            "node-0.ironlog",
            "node-07.ironlog",
            "node-.ironlog",
            "node-7.ironlog.evil",
            "xnode-7.ironlog",
            "node-7x.ironlog",
            "node-99999999999999999999999.ironlog",
        ] {
            assert_eq!(parse_node_name(bad), None, "{bad}");
        }
    }

    fn cert(sans: Vec<String>, cn: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(sans).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn a_node_certificate_names_its_node_and_a_client_certificate_none() {
        let node = cert(vec![node_name(2), "localhost".into()], "node-2.ironlog");
        let id = cert_identity(&node).expect("parses");
        assert_eq!(id.node_id, Some(2));
        let client = cert(vec!["payments.example".into()], "payments-api");
        let id = cert_identity(&client).expect("parses");
        assert_eq!(id.node_id, None);
        assert_eq!(id.common_name.as_deref(), Some("payments-api"));
    }

    #[test]
    fn a_certificate_naming_two_nodes_is_refused() {
        let both = cert(vec![node_name(1), node_name(2)], "x");
        assert!(matches!(
            cert_identity(&both),
            Err(IdentityError::SeveralNodes { .. })
        ));
        assert!(cert_identity(b"junk").is_err());
    }
}
