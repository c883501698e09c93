//! Authentication (who is calling) and the decision for one request (may
//! they, and are they within their limits).
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use super::error::AuthError;
use super::permission::{self, Permission};
use super::refusal::{Refusal, RefusalLog};
use crate::config::{AuthConfig, ClientConfig, ClientRole};
use crate::limits::{
    IDENTITY_IN_FLIGHT_MAX_DEFAULT, IDENTITY_REQUESTS_PER_S_DEFAULT, RESERVED_SOURCE_PREFIX,
};
use crate::tls::identity::{cert_identity, node_name};

/// How the caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerKind {
    /// The node runs with `--insecure`: nobody is authenticated, all may do all.
    Insecure,
    /// No credentials.
    Anonymous,
    /// A bearer token.
    Token,
    /// A client certificate of the cluster CA.
    Certificate,
    /// A node certificate of the cluster CA.
    Node(u64),
}

impl CallerKind {
    pub fn name(&self) -> &'static str {
        match self {
            CallerKind::Insecure => "insecure",
            CallerKind::Anonymous => "anonymous",
            CallerKind::Token => "token",
            CallerKind::Certificate => "certificate",
            CallerKind::Node(_) => "node",
        }
    }
}

/// The authenticated caller of one request, as handlers see it (a request
/// extension set by [`super::AuthLayer`]).
#[derive(Clone, Debug)]
pub struct Caller {
    pub name: String,
    pub kind: CallerKind,
    pub remote: Option<SocketAddr>,
    roles: BTreeSet<ClientRole>,
    /// Exact source values, or prefixes when they end in `*`.
    sources: Vec<String>,
}

impl Caller {
    /// The caller of an `--insecure` node: everything is allowed.
    pub fn insecure(remote: Option<SocketAddr>) -> Caller {
        Caller {
            name: "insecure".into(),
            kind: CallerKind::Insecure,
            remote,
            roles: all_roles(),
            sources: vec!["*".into()],
        }
    }

    /// A node of this cluster.
    pub fn node(id: u64, remote: Option<SocketAddr>) -> Caller {
        Caller {
            name: node_name(id),
            kind: CallerKind::Node(id),
            remote,
            // A node reads what it replicates anyway: it may forward
            // linearizable reads and proofs to the leader and probe status.
            roles: [ClientRole::Reader, ClientRole::Auditor].into(),
            sources: Vec::new(),
        }
    }

    pub fn has(&self, permission: Permission) -> bool {
        match permission {
            Permission::Authenticated => self.kind != CallerKind::Anonymous,
            Permission::Role(role) => self.roles.contains(&role),
        }
    }

    /// Whether this caller may append events with `source`. Sources under
    /// [`RESERVED_SOURCE_PREFIX`] belong to the nodes (their refusal
    /// records) and are never a client's, whatever its patterns say.
    pub fn may_append_as(&self, source: &str) -> bool {
        if source.starts_with(RESERVED_SOURCE_PREFIX) {
            return false;
        }
        self.sources
            .iter()
            .any(|allowed| match allowed.strip_suffix('*') {
                Some(prefix) => source.starts_with(prefix),
                None => allowed == source,
            })
    }

    pub fn sources(&self) -> &[String] {
        &self.sources
    }
}

fn all_roles() -> BTreeSet<ClientRole> {
    [
        ClientRole::Appender,
        ClientRole::Reader,
        ClientRole::Auditor,
        ClientRole::Analyst,
        ClientRole::Admin,
    ]
    .into()
}

/// One identity's share of the node: a token bucket and an in-flight cap.
struct Limits {
    rate: DefaultDirectRateLimiter,
    in_flight: Arc<Semaphore>,
    in_flight_max: u32,
    requests_per_s: u32,
}

impl Limits {
    fn new(requests_per_s: u32, in_flight_max: u32) -> Arc<Limits> {
        let per_s = NonZeroU32::new(requests_per_s).unwrap_or(NonZeroU32::MIN);
        Arc::new(Limits {
            // A burst of one second's worth: a client may catch up after a
            // pause, not exceed its rate for long.
            rate: DefaultDirectRateLimiter::direct(Quota::per_second(per_s)),
            in_flight: Arc::new(Semaphore::new(in_flight_max as usize)),
            in_flight_max,
            requests_per_s,
        })
    }
}

struct Identity {
    name: String,
    roles: BTreeSet<ClientRole>,
    sources: Vec<String>,
    limits: Arc<Limits>,
}

/// What the listener and connection tell about one request.
pub struct RequestParts<'a> {
    /// The gRPC path, `/ironlog.v1.Ledger/Append`.
    pub path: &'a str,
    /// The client's certificate chain, verified by TLS against the CA.
    pub certs: Option<&'a [CertificateDer<'static>]>,
    /// The `authorization` metadata, if any.
    pub authorization: Option<&'a str>,
    pub remote: Option<SocketAddr>,
}

/// A request that may proceed: its caller, and its in-flight slot (held
/// until the handler answers).
pub struct Admitted {
    pub caller: Caller,
    pub permit: Option<OwnedSemaphorePermit>,
}

/// Decides every request of one node.
pub struct Authorizer {
    insecure: bool,
    anonymous_auditor: bool,
    by_cn: HashMap<String, Arc<Identity>>,
    by_token: HashMap<[u8; 32], Arc<Identity>>,
    anonymous: Arc<Limits>,
    refusals: RefusalLog,
}

impl Authorizer {
    pub fn new(config: &AuthConfig, insecure: bool, refusals: RefusalLog) -> Authorizer {
        let default_rate = config
            .requests_per_s
            .unwrap_or(IDENTITY_REQUESTS_PER_S_DEFAULT);
        let default_in_flight = config
            .in_flight_max
            .unwrap_or(IDENTITY_IN_FLIGHT_MAX_DEFAULT);
        let mut by_cn = HashMap::new();
        let mut by_token = HashMap::new();
        for c in &config.clients {
            let identity = Arc::new(identity(c, default_rate, default_in_flight));
            if let Some(cn) = &c.certificate_cn {
                by_cn.insert(cn.clone(), identity.clone());
            }
            if let Some(hash) = &c.token_sha256 {
                let mut digest = [0u8; 32];
                if hex::decode_to_slice(hash, &mut digest).is_ok() {
                    by_token.insert(digest, identity);
                }
            }
        }
        Authorizer {
            insecure,
            anonymous_auditor: config.anonymous_auditor,
            by_cn,
            by_token,
            anonymous: Limits::new(default_rate, default_in_flight),
            refusals,
        }
    }

    pub fn refusals(&self) -> &RefusalLog {
        &self.refusals
    }

    /// Decides a request on the client listener; every refusal is recorded.
    pub fn admit_client(&self, parts: &RequestParts<'_>) -> Result<Admitted, Status> {
        let method = permission::method_name(parts.path);
        self.admit(parts, method, || {
            permission::for_path(parts.path).ok_or_else(|| AuthError::NoMethod {
                method: method.to_string(),
            })
        })
    }

    /// Decides a request to the tlog-tiles HTTP endpoint: the auditor role,
    /// from a bearer token or, if the operator opened it, anonymously.
    pub fn admit_tiles(&self, parts: &RequestParts<'_>) -> Result<Admitted, Status> {
        self.admit(parts, &format!("tiles {}", parts.path), || {
            Ok(Permission::Role(ClientRole::Auditor))
        })
    }

    /// Authenticates, finds what `method` needs (after authenticating, so
    /// an unknown method's refusal names its caller), then decides.
    fn admit(
        &self,
        parts: &RequestParts<'_>,
        method: &str,
        needed: impl FnOnce() -> Result<Permission, AuthError>,
    ) -> Result<Admitted, Status> {
        if self.insecure {
            return Ok(Admitted {
                caller: Caller::insecure(parts.remote),
                permit: None,
            });
        }
        let refuse = |caller: Option<&Caller>, e: AuthError| {
            let status = Status::from(e);
            self.refusals
                .record(Refusal::of(caller, parts.remote, method, &status));
            status
        };
        let (caller, limits) = self.authenticate(parts).map_err(|e| refuse(None, e))?;
        let needed = needed().map_err(|e| refuse(Some(&caller), e))?;
        self.decide(caller, limits, needed, method, parts.remote)
    }

    /// The role and limit checks for an authenticated caller.
    fn decide(
        &self,
        caller: Caller,
        limits: Option<Arc<Limits>>,
        needed: Permission,
        method: &str,
        remote: Option<SocketAddr>,
    ) -> Result<Admitted, Status> {
        let refuse = |caller: Option<&Caller>, e: AuthError| {
            let status = Status::from(e);
            self.refusals
                .record(Refusal::of(caller, remote, method, &status));
            status
        };
        if !caller.has(needed) {
            let e = if caller.kind == CallerKind::Anonymous {
                AuthError::NoCredentials {
                    method: method.to_string(),
                    needs: needed.describe(),
                }
            } else {
                AuthError::LacksPermission {
                    kind: caller.kind.name(),
                    caller: caller.name.clone(),
                    needs: needed.describe(),
                    method: method.to_string(),
                }
            };
            return Err(refuse(Some(&caller), e));
        }
        let permit = match limits {
            Some(limits) => match admit_within(&limits) {
                Ok(permit) => Some(permit),
                Err(e) => return Err(refuse(Some(&caller), e)),
            },
            None => None,
        };
        Ok(Admitted { caller, permit })
    }

    /// Decides a request on the peer listener: only a node certificate of
    /// the cluster CA may speak there. Which node the message claims to
    /// come from is checked per message against [`Caller::kind`].
    pub fn admit_peer(&self, parts: &RequestParts<'_>) -> Result<Admitted, Status> {
        if self.insecure {
            return Ok(Admitted {
                caller: Caller::insecure(parts.remote),
                permit: None,
            });
        }
        let method = permission::method_name(parts.path).to_string();
        let named = parts
            .certs
            .and_then(|certs| certs.first())
            .map(|leaf| cert_identity(leaf));
        match named {
            Some(Ok(id)) if id.node_id.is_some() => Ok(Admitted {
                caller: Caller::node(id.node_id.unwrap_or_default(), parts.remote),
                permit: None,
            }),
            other => {
                let shown = match &other {
                    Some(Ok(id)) => format!(
                        "the certificate (CN={}) names no node",
                        id.common_name.as_deref().unwrap_or("none")
                    ),
                    Some(Err(e)) => e.to_string(),
                    None => "no client certificate was presented".into(),
                };
                let status = Status::from(AuthError::NotANode(shown));
                let caller = match other {
                    Some(Ok(id)) => Some(Caller {
                        name: id.common_name.unwrap_or_default(),
                        kind: CallerKind::Certificate,
                        remote: parts.remote,
                        roles: BTreeSet::new(),
                        sources: Vec::new(),
                    }),
                    _ => None,
                };
                self.refusals
                    .record(Refusal::of(caller.as_ref(), parts.remote, &method, &status));
                Err(status)
            }
        }
    }

    /// Who is calling: a certificate wins over a token; neither is anonymous.
    fn authenticate(
        &self,
        parts: &RequestParts<'_>,
    ) -> Result<(Caller, Option<Arc<Limits>>), AuthError> {
        if let Some(leaf) = parts.certs.and_then(|c| c.first()) {
            let named =
                cert_identity(leaf).map_err(|e| AuthError::CertificateUnreadable(e.to_string()))?;
            if let Some(id) = named.node_id {
                return Ok((Caller::node(id, parts.remote), None));
            }
            let cn = named.common_name.unwrap_or_default();
            let identity = self
                .by_cn
                .get(&cn)
                .ok_or_else(|| AuthError::UnknownClient { cn: cn.clone() })?;
            return Ok(self.caller(identity, CallerKind::Certificate, parts.remote));
        }
        if let Some(value) = parts.authorization {
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or(AuthError::NotBearer)?;
            let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
            let identity = self.by_token.get(&digest).ok_or(AuthError::UnknownToken)?;
            return Ok(self.caller(identity, CallerKind::Token, parts.remote));
        }
        let roles = if self.anonymous_auditor {
            [ClientRole::Auditor].into()
        } else {
            BTreeSet::new()
        };
        Ok((
            Caller {
                name: "anonymous".into(),
                kind: CallerKind::Anonymous,
                remote: parts.remote,
                roles,
                sources: Vec::new(),
            },
            Some(self.anonymous.clone()),
        ))
    }

    fn caller(
        &self,
        identity: &Arc<Identity>,
        kind: CallerKind,
        remote: Option<SocketAddr>,
    ) -> (Caller, Option<Arc<Limits>>) {
        (
            Caller {
                name: identity.name.clone(),
                kind,
                remote,
                roles: identity.roles.clone(),
                sources: identity.sources.clone(),
            },
            Some(identity.limits.clone()),
        )
    }
}

fn identity(c: &ClientConfig, default_rate: u32, default_in_flight: u32) -> Identity {
    Identity {
        name: c.name.clone(),
        roles: c.roles.iter().copied().collect(),
        sources: c.sources.clone(),
        limits: Limits::new(
            c.requests_per_s.unwrap_or(default_rate),
            c.in_flight_max.unwrap_or(default_in_flight),
        ),
    }
}

/// Takes a token and an in-flight slot, or says when to come back.
fn admit_within(limits: &Limits) -> Result<OwnedSemaphorePermit, AuthError> {
    if let Err(not_until) = limits.rate.check() {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        return Err(AuthError::OverRate {
            requests_per_s: limits.requests_per_s,
            retry_after_ms: wait.as_millis().max(1),
        });
    }
    limits
        .in_flight
        .clone()
        .try_acquire_owned()
        .map_err(|_| AuthError::InFlight {
            in_flight_max: limits.in_flight_max,
        })
}

/// The retry hint a caller at its in-flight limit gets, ms: about one
/// request's time, not a promise.
pub(crate) const RETRY_IN_FLIGHT_MS: u128 = 100;

/// Metadata key of the retry hint on RESOURCE_EXHAUSTED, in ms.
pub const RETRY_AFTER_MS_HEADER: &str = "retry-after-ms";

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthConfig {
        AuthConfig {
            anonymous_auditor: false,
            requests_per_s: None,
            in_flight_max: None,
            clients: vec![
                ClientConfig {
                    name: "payments".into(),
                    certificate_cn: None,
                    token_sha256: Some(hex::encode(Sha256::digest(b"secret-token"))),
                    roles: vec![ClientRole::Appender],
                    sources: vec!["payments-api".into(), "batch/*".into()],
                    requests_per_s: Some(2),
                    in_flight_max: None,
                },
                ClientConfig {
                    name: "ops".into(),
                    certificate_cn: Some("ops".into()),
                    token_sha256: None,
                    roles: vec![ClientRole::Admin],
                    sources: vec![],
                    requests_per_s: None,
                    in_flight_max: None,
                },
            ],
        }
    }

    fn parts<'a>(path: &'a str, authorization: Option<&'a str>) -> RequestParts<'a> {
        RequestParts {
            path,
            certs: None,
            authorization,
            remote: None,
        }
    }

    #[test]
    fn anonymous_callers_are_unauthenticated_and_wrong_roles_denied() {
        let auth = Authorizer::new(&config(), false, RefusalLog::disabled());
        let e = auth
            .admit_client(&parts("/ironlog.v1.Admin/AddLearner", None))
            .err()
            .expect("refused");
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert!(e.message().contains("admin role"), "{}", e.message());
        let e = auth
            .admit_client(&parts(
                "/ironlog.v1.Admin/AddLearner",
                Some("Bearer secret-token"),
            ))
            .err()
            .expect("refused");
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(e.message().contains("\"payments\""), "{}", e.message());
        let e = auth
            .admit_client(&parts("/ironlog.v1.Ledger/Append", Some("Bearer wrong")))
            .err()
            .expect("refused");
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let ok = auth
            .admit_client(&parts(
                "/ironlog.v1.Ledger/Append",
                Some("Bearer secret-token"),
            ))
            .expect("admitted");
        assert_eq!(ok.caller.name, "payments");
    }

    #[test]
    fn sources_are_bound_to_the_identity_and_node_sources_are_reserved() {
        let auth = Authorizer::new(&config(), false, RefusalLog::disabled());
        let caller = auth
            .admit_client(&parts(
                "/ironlog.v1.Ledger/Append",
                Some("Bearer secret-token"),
            ))
            .expect("admitted")
            .caller;
        assert!(caller.may_append_as("payments-api"));
        assert!(caller.may_append_as("batch/nightly"));
        assert!(!caller.may_append_as("payments-api2"));
        assert!(!caller.may_append_as("billing"));
        let all = Caller::insecure(None);
        assert!(all.may_append_as("anything"));
        assert!(!all.may_append_as(&format!("{RESERVED_SOURCE_PREFIX}node-1")));
    }

    #[test]
    fn an_identity_over_its_rate_is_told_to_retry_and_others_are_not() {
        let auth = Authorizer::new(&config(), false, RefusalLog::disabled());
        let p = parts("/ironlog.v1.Ledger/Append", Some("Bearer secret-token"));
        let mut refused = None;
        for _ in 0..10 {
            if let Err(e) = auth.admit_client(&p) {
                refused = Some(e);
                break;
            }
        }
        let e = refused.expect("2 requests/s is exceeded by 10 at once");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.metadata().get(RETRY_AFTER_MS_HEADER).is_some());
        assert!(e.message().contains("retry after"), "{}", e.message());
        // The anonymous bucket is another identity's: unaffected.
        let e = auth
            .admit_client(&parts("/ironlog.v1.Ledger/GetCheckpoint", None))
            .err()
            .expect("no anonymous auditing configured");
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn insecure_nodes_admit_everyone_and_the_peer_listener_needs_a_node() {
        let auth = Authorizer::new(&config(), true, RefusalLog::disabled());
        assert!(auth
            .admit_client(&parts("/ironlog.v1.Admin/AddLearner", None))
            .is_ok());
        let auth = Authorizer::new(&config(), false, RefusalLog::disabled());
        let e = auth
            .admit_peer(&parts("/ironlog.v1.Raft/Forward", None))
            .err()
            .expect("no certificate");
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
    }
}
