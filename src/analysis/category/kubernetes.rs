//! Kubernetes audit events: `action` is `k8s.{verb}` and `details` the audit
//! event (`objectRef.resource`, `objectRef.subresource`, `requestURI`). GKE
//! requests arrive through GCP audit logs and are decided here too, from
//! the method name (see `gcp.rs`).

use super::{verdict, Category, RuleVerdict};
use crate::analysis::details::str_field;
use crate::ledger::event::Event;
use serde_json::{Map, Value};

use Category::*;

/// One API request: verb, resource type and subresource ("" when none).
pub(crate) struct Request<'a> {
    pub verb: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
}

pub(super) fn rule(event: &Event) -> Option<RuleVerdict> {
    let details = &event.details;
    let verb = event
        .action
        .strip_prefix("k8s.")
        .or_else(|| str_field(details, &["verb"]));
    let resource = str_field(details, &["objectRef", "resource"]).filter(|r| !r.is_empty());
    match (verb, resource) {
        (Some(verb), Some(resource)) => by_request(&Request {
            verb,
            resource,
            subresource: str_field(details, &["objectRef", "subresource"]).unwrap_or(""),
        }),
        _ => non_resource(details),
    }
}

/// Paths every cluster serves to probes and load balancers.
const HEALTH_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/metrics"];

/// True for requests to health, readiness and version endpoints, which
/// probes and load balancers make anonymously all day.
pub(crate) fn is_health_path(request_uri: &str) -> bool {
    let path = request_uri.split('?').next().unwrap_or("");
    HEALTH_PATHS.iter().any(|h| {
        path == *h
            || path
                .strip_prefix(h)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

fn non_resource(details: &Map<String, Value>) -> Option<RuleVerdict> {
    let uri = str_field(details, &["requestURI"])?;
    is_health_path(uri).then_some(RuleVerdict {
        category: Other,
        rule: "k8s.health_check",
    })
}

const READ_VERBS: &[&str] = &["get", "list", "watch"];
const WRITE_VERBS: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];
const RBAC: &[&str] = &[
    "roles",
    "clusterroles",
    "rolebindings",
    "clusterrolebindings",
];
/// Requests that ask the API server a question and change nothing.
const REVIEWS: &[&str] = &[
    "tokenreviews",
    "subjectaccessreviews",
    "selfsubjectaccessreviews",
    "selfsubjectrulesreviews",
    "localsubjectaccessreviews",
];

pub(super) fn by_request(r: &Request) -> Option<RuleVerdict> {
    let read = READ_VERBS.contains(&r.verb);
    let write = WRITE_VERBS.contains(&r.verb);
    let deletes = matches!(r.verb, "delete" | "deletecollection");
    match (r.resource, r.subresource) {
        // Exec and attach open a shell in a workload: GET or POST, either way.
        ("pods", "exec" | "attach") => verdict(PrivilegeChange, "k8s.pod_exec"),
        ("pods", "log") if read => verdict(DataAccess, "k8s.pod_logs_read"),
        ("serviceaccounts", "token") if r.verb == "create" => {
            verdict(PrivilegeChange, "k8s.service_account_token")
        }
        ("certificatesigningrequests", _) if write => {
            verdict(PrivilegeChange, "k8s.certificate_request")
        }
        (resource, _) if RBAC.contains(&resource) && write => {
            verdict(PrivilegeChange, "k8s.rbac_change")
        }
        ("secrets", _) if read => verdict(DataAccess, "k8s.secret_read"),
        ("secrets", _) if deletes => verdict(DataDeletion, "k8s.secret_deleted"),
        ("configmaps", _) if read => verdict(DataAccess, "k8s.configmap_read"),
        ("persistentvolumeclaims" | "persistentvolumes", _) if deletes => {
            verdict(DataDeletion, "k8s.volume_deleted")
        }
        ("serviceaccounts", "") if write => verdict(AdminChange, "k8s.service_account_change"),
        (resource, _) if REVIEWS.contains(&resource) => verdict(Other, "k8s.access_review"),
        // Kubelets and controllers write Events and Leases constantly.
        ("events" | "leases", _) => verdict(Other, "k8s.cluster_bookkeeping"),
        _ if write => verdict(ConfigChange, "k8s.object_change"),
        _ if read => verdict(Other, "k8s.read_metadata"),
        _ => None,
    }
}
