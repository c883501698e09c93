//! Single events that deserve a look on their own, whatever came before:
//! audit logging stopped, the root account used, a bucket made public,
//! cluster-admin bound, a privileged pod, a shell opened in a pod, an
//! anonymous request let through.
//!
//! Only changes that took effect count (outcome success or unknown): a
//! refused attempt changed nothing, and repeated refusals are the failure
//! burst's business. Each finding carries its own score (see the module
//! documentation of `anomaly` for what scores mean) and a phrase for the
//! flag's reason.

use crate::analysis::category::{gke_request, is_health_path, Category, KubeRequest};
use crate::analysis::details::{array_at, field, is_true, str_at, str_field, value_at};
use crate::analysis::words::{any, words};
use crate::ledger::event::{Event, Outcome};
use serde_json::Value;

/// One high-signal finding: how much it matters and what it is, in words.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub score: f32,
    pub what: String,
}

fn finding(score: f32, what: impl Into<String>) -> Option<Finding> {
    Some(Finding {
        score,
        what: what.into(),
    })
}

/// The finding when `condition` holds.
fn when(condition: bool, score: f32, what: &str) -> Option<Finding> {
    if condition {
        finding(score, what)
    } else {
        None
    }
}

/// The high-signal finding for `event`, if any.
pub fn sensitive_change(event: &Event) -> Option<Finding> {
    if matches!(event.outcome, Outcome::Failure | Outcome::Denied) {
        return None;
    }
    match event.source.as_str() {
        "k8s-audit" => kube_view_audit(event).and_then(|v| kube(&v)),
        "cloudtrail" => cloudtrail(event),
        "gcp-audit" => gcp(event),
        "okta" => okta(&event.action),
        "github-audit" => github(event),
        _ => None,
    }
}

/// Words in a resource or action that mark what it touches as sensitive.
const SENSITIVE_WORDS: &[&str] = &[
    "secret",
    "secrets",
    "password",
    "passwd",
    "shadow",
    "credential",
    "credentials",
    "token",
    "tokens",
    "private",
    "key",
    "keys",
    "kms",
    "vault",
    "backup",
    "backups",
    "snapshot",
    "prod",
    "production",
    "confidential",
    "sensitive",
    "pii",
    "customer",
    "customers",
    "payroll",
    "finance",
    "billing",
    "ssn",
];

/// Whether a data access, export or deletion touches something sensitive:
/// a resource whose name says so, a Kubernetes secret, or any export or
/// deletion (moving data out or destroying it matters whatever its name).
pub fn is_sensitive_target(event: &Event, category: Category) -> bool {
    match category {
        Category::DataExport | Category::DataDeletion => true,
        Category::DataAccess => {
            any(&words(&event.resource), SENSITIVE_WORDS)
                || any(&words(&event.action), SENSITIVE_WORDS)
        }
        _ => false,
    }
}

/// A Kubernetes request as the checks need it, from a k8s audit event or a
/// GKE record in a GCP audit log.
struct KubeView<'a> {
    verb: &'a str,
    resource: &'a str,
    subresource: &'a str,
    namespace: &'a str,
    name: &'a str,
    user: &'a str,
    groups: Vec<&'a str>,
    /// The object sent (requestObject, or GKE's request/response).
    body: Option<&'a Value>,
    uri: &'a str,
}

fn kube_view_audit(event: &Event) -> Option<KubeView<'_>> {
    let d = &event.details;
    let verb = event
        .action
        .strip_prefix("k8s.")
        .or_else(|| str_field(d, &["verb"]))?;
    let object = field(d, &["objectRef"]);
    let part = |k: &str| object.and_then(|o| str_at(o, &[k])).unwrap_or("");
    let groups = field(d, &["user", "groups"])
        .map(|g| array_at(g, &[]).iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    Some(KubeView {
        verb,
        resource: part("resource"),
        subresource: part("subresource"),
        namespace: part("namespace"),
        name: part("name"),
        user: str_field(d, &["user", "username"]).unwrap_or(&event.actor.id),
        groups,
        body: field(d, &["requestObject"]),
        uri: str_field(d, &["requestURI"]).unwrap_or(""),
    })
}

fn kube_view_gke<'a>(event: &'a Event, payload: &'a Value) -> Option<KubeView<'a>> {
    let method = str_at(payload, &["methodName"])?;
    let KubeRequest {
        verb,
        resource,
        subresource,
    } = gke_request(method)?;
    // resourceName: "core/v1/namespaces/{ns}/pods/{name}[/{sub}]".
    let path = str_at(payload, &["resourceName"]).unwrap_or("");
    let segments: Vec<&str> = path.split('/').collect();
    let after = |key: &str| {
        segments
            .iter()
            .position(|s| *s == key)
            .and_then(|i| segments.get(i + 1))
            .copied()
            .unwrap_or("")
    };
    let user = str_at(payload, &["authenticationInfo", "principalEmail"])
        .or_else(|| str_at(payload, &["authenticationInfo", "authoritySelector"]))
        .unwrap_or(&event.actor.id);
    Some(KubeView {
        verb,
        resource,
        subresource,
        namespace: after("namespaces"),
        name: after(resource),
        user,
        groups: Vec::new(),
        body: value_at(payload, &["request"]).or_else(|| value_at(payload, &["response"])),
        uri: "",
    })
}

const WORKLOADS: &[&str] = &[
    "pods",
    "deployments",
    "daemonsets",
    "statefulsets",
    "replicasets",
    "jobs",
    "cronjobs",
    "replicationcontrollers",
];
const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public"];
/// Host paths whose mount gives a container the node (Falco's list of
/// sensitive mounts is the model).
const SENSITIVE_HOST_PATHS: &[&str] = &[
    "/",
    "/etc",
    "/proc",
    "/root",
    "/home/admin",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
    "/var/lib/kubelet",
    "/etc/kubernetes",
];
const DANGEROUS_CAPABILITIES: &[&str] = &[
    "SYS_ADMIN",
    "ALL",
    "SYS_PTRACE",
    "SYS_MODULE",
    "NET_ADMIN",
    "DAC_READ_SEARCH",
];
/// Strings that betray credentials in ConfigMap data.
const CREDENTIAL_MARKERS: &[&str] = &[
    "aws_access_key_id",
    "aws-access-key-id",
    "aws_s3_access_key_id",
    "aws-s3-access-key-id",
    "aws_secret_access_key",
    "aws-secret-access-key",
    "password",
    "passphrase",
    "private_key",
    "private-key",
    "client_secret",
    "api_key",
];

fn kube(v: &KubeView) -> Option<Finding> {
    let system_user = v.user.starts_with("system:");
    let anonymous = v.user == "system:anonymous" || v.groups.contains(&"system:unauthenticated");
    // GKE names health endpoints as resources (`io.k8s.core.v1.healthz.get`).
    let health =
        is_health_path(v.uri) || matches!(v.resource, "healthz" | "livez" | "readyz" | "version");
    if anonymous && !health {
        return finding(
            0.8,
            format!("anonymous request allowed: {} {}", v.verb, target(v)),
        );
    }
    if v.resource == "pods" && matches!(v.subresource, "exec" | "attach") {
        return finding(0.6, format!("opened a shell in pod {}", target(v)));
    }
    let writes = matches!(v.verb, "create" | "update" | "patch");
    let deletes = matches!(v.verb, "delete" | "deletecollection");
    let body = v.body.unwrap_or(&Value::Null);
    if matches!(v.resource, "clusterrolebindings" | "rolebindings") && writes {
        let role = str_at(body, &["roleRef", "name"]).unwrap_or("");
        let to_anonymous = array_at(body, &["subjects"]).iter().any(|s| {
            matches!(
                str_at(s, &["name"]),
                Some("system:anonymous" | "system:unauthenticated")
            )
        });
        if role == "cluster-admin" || to_anonymous {
            let who = if to_anonymous {
                "anonymous users"
            } else {
                "a subject"
            };
            return finding(0.9, format!("bound role {role} to {who} in {}", target(v)));
        }
    }
    if matches!(v.resource, "clusterroles" | "roles") {
        if v.name.starts_with("system:") && !system_user && (writes || deletes) {
            return finding(0.7, format!("{} built-in role {}", past(v.verb), v.name));
        }
        if writes {
            if let Some(what) = risky_rules(body) {
                return finding(0.7, format!("role {} {what}", v.name));
            }
        }
    }
    if WORKLOADS.contains(&v.resource) && v.subresource.is_empty() && writes {
        if let Some(what) = risky_pod(body) {
            return finding(0.8, format!("{what} in {}", target(v)));
        }
        if SYSTEM_NAMESPACES.contains(&v.namespace) && !system_user && v.verb == "create" {
            return finding(
                0.5,
                format!("created {} in system namespace {}", v.resource, v.namespace),
            );
        }
    }
    if v.resource == "serviceaccounts"
        && v.subresource.is_empty()
        && v.verb == "create"
        && SYSTEM_NAMESPACES.contains(&v.namespace)
        && !system_user
    {
        return finding(0.5, format!("created service account in {}", v.namespace));
    }
    if v.resource == "services" && writes && str_at(body, &["spec", "type"]) == Some("NodePort") {
        return finding(
            0.5,
            format!("exposed service {} on every node's ports", target(v)),
        );
    }
    if v.resource == "configmaps" && writes {
        let data = value_at(body, &["data"]).map(|d| d.to_string().to_lowercase());
        if data.is_some_and(|d| CREDENTIAL_MARKERS.iter().any(|m| d.contains(m))) {
            return finding(0.6, format!("configmap {} holds credentials", target(v)));
        }
    }
    None
}

fn target(v: &KubeView) -> String {
    match (v.namespace, v.name) {
        ("", "") => v.resource.to_string(),
        ("", name) => format!("{}/{name}", v.resource),
        (ns, "") => format!("{ns}/{}", v.resource),
        (ns, name) => format!("{ns}/{}/{name}", v.resource),
    }
}

fn past(verb: &str) -> &'static str {
    match verb {
        "create" => "created",
        "delete" | "deletecollection" => "deleted",
        _ => "modified",
    }
}

/// What makes a role's rules dangerous: wildcards, shell access to pods, or
/// the verbs that let a holder grant itself more.
fn risky_rules(body: &Value) -> Option<&'static str> {
    for rule in array_at(body, &["rules"]) {
        let list = |k: &str| -> Vec<&str> {
            array_at(rule, &[k])
                .iter()
                .filter_map(Value::as_str)
                .collect()
        };
        let (verbs, resources) = (list("verbs"), list("resources"));
        if verbs.contains(&"*") || resources.contains(&"*") {
            return Some("grants wildcard access");
        }
        if resources
            .iter()
            .any(|r| matches!(*r, "pods/exec" | "pods/attach"))
        {
            return Some("grants shell access to pods");
        }
        if verbs
            .iter()
            .any(|v| matches!(*v, "escalate" | "bind" | "impersonate"))
        {
            return Some("grants escalate, bind or impersonate");
        }
    }
    None
}

/// The pod spec of a pod or of a workload's pod template.
fn pod_spec(body: &Value) -> Option<&Value> {
    [
        &["spec", "jobTemplate", "spec", "template", "spec"][..],
        &["spec", "template", "spec"],
        &["spec"],
    ]
    .iter()
    .find_map(|path| value_at(body, path).filter(|s| s.get("containers").is_some()))
}

fn risky_pod(body: &Value) -> Option<String> {
    let spec = pod_spec(body)?;
    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| array_at(spec, &[k]));
    for c in containers {
        if is_true(c, &["securityContext", "privileged"]) {
            return Some("privileged container".into());
        }
        let added = array_at(c, &["securityContext", "capabilities", "add"]);
        if let Some(cap) = added
            .iter()
            .filter_map(Value::as_str)
            .find(|cap| DANGEROUS_CAPABILITIES.contains(&cap.trim_start_matches("CAP_")))
        {
            return Some(format!("container with capability {cap}"));
        }
    }
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if is_true(spec, &[host]) {
            return Some(format!("pod with {host}"));
        }
    }
    array_at(spec, &["volumes"])
        .iter()
        .filter_map(|v| str_at(v, &["hostPath", "path"]))
        .find(|path| {
            let path = path.trim_end_matches('/');
            let path = if path.is_empty() { "/" } else { path };
            SENSITIVE_HOST_PATHS.iter().any(|s| {
                path == *s || (*s != "/" && path.starts_with(s) && path[s.len()..].starts_with('/'))
            })
        })
        .map(|path| format!("pod mounting host path {path}"))
}

fn cloudtrail(event: &Event) -> Option<Finding> {
    let d = &event.details;
    let (service, name) = event.action.split_once(':')?;
    let params = field(d, &["requestParameters"]).unwrap_or(&Value::Null);
    let root = str_field(d, &["userIdentity", "type"]) == Some("Root")
        && field(d, &["userIdentity", "invokedBy"]).is_none();
    let change = match (service, name) {
        ("cloudtrail", "StopLogging" | "DeleteTrail") => finding(0.9, "stopped CloudTrail logging"),
        (
            "guardduty",
            "DeleteDetector"
            | "DisassociateFromMasterAccount"
            | "DisassociateFromAdministratorAccount"
            | "StopMonitoringMembers",
        ) => finding(0.8, "disabled GuardDuty"),
        ("securityhub", "DisableSecurityHub") => finding(0.8, "disabled Security Hub"),
        (
            "config",
            "StopConfigurationRecorder" | "DeleteConfigurationRecorder" | "DeleteDeliveryChannel",
        ) => finding(0.7, "stopped AWS Config recording"),
        ("ec2", "DeleteFlowLogs") => finding(0.7, "deleted VPC flow logs"),
        ("iam", "DeactivateMFADevice" | "DeleteVirtualMFADevice") => {
            finding(0.6, "removed an MFA device")
        }
        ("iam", n) if n.starts_with("Attach") && n.ends_with("Policy") => {
            let arn = str_at(params, &["policyArn"]).unwrap_or("");
            when(
                arn.ends_with("/AdministratorAccess"),
                0.8,
                "attached AdministratorAccess",
            )
        }
        ("s3", "PutBucketPolicy") => {
            when(public_policy(params), 0.8, "bucket policy allows anyone")
        }
        ("s3", "PutBucketAcl") => {
            let text = params.to_string();
            when(
                text.contains("AllUsers") || text.contains("AuthenticatedUsers"),
                0.8,
                "bucket ACL grants all users",
            )
        }
        ("s3", "DeleteBucketPublicAccessBlock" | "DeletePublicAccessBlock") => {
            finding(0.6, "removed the public access block")
        }
        ("s3", "PutBucketPublicAccessBlock" | "PutPublicAccessBlock") => when(
            params.to_string().contains("false"),
            0.6,
            "weakened the public access block",
        ),
        ("s3", "PutBucketVersioning") => {
            let v = value_at(params, &["VersioningConfiguration"]).unwrap_or(&Value::Null);
            when(
                str_at(v, &["Status"]) == Some("Suspended")
                    || str_at(v, &["MfaDelete"]) == Some("Disabled"),
                0.5,
                "suspended versioning or MFA delete",
            )
        }
        ("ec2", "ModifySnapshotAttribute" | "ModifyImageAttribute") => {
            let public = params.to_string().contains(r#""group":"all""#);
            when(public, 0.8, "made a snapshot or image public")
        }
        ("ec2", "AuthorizeSecurityGroupIngress") => {
            let text = params.to_string();
            when(
                text.contains("0.0.0.0/0") || text.contains("::/0"),
                0.6,
                "opened ingress to the whole internet",
            )
        }
        ("rds", "ModifyDBInstance" | "ModifyDBCluster") => when(
            is_true(params, &["publiclyAccessible"]),
            0.7,
            "made a database publicly accessible",
        ),
        ("kms", "ScheduleKeyDeletion" | "DisableKey") => {
            finding(0.7, "scheduled deletion of or disabled a KMS key")
        }
        _ => None,
    };
    change.or_else(|| when(root, 0.7, "root account used"))
}

/// A bucket policy statement that allows everyone, without conditions.
fn public_policy(params: &Value) -> bool {
    let policy = value_at(params, &["bucketPolicy"]).or_else(|| value_at(params, &["policy"]));
    let Some(policy) = policy else {
        return false;
    };
    // Some exporters keep the policy as a JSON string.
    let parsed;
    let policy = match policy.as_str() {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(v) => {
                parsed = v;
                &parsed
            }
            Err(_) => return false,
        },
        None => policy,
    };
    array_at(policy, &["Statement"]).iter().any(|s| {
        let everyone = match value_at(s, &["Principal"]) {
            Some(Value::String(p)) => p == "*",
            Some(p) => str_at(p, &["AWS"]) == Some("*"),
            None => false,
        };
        str_at(s, &["Effect"]) == Some("Allow") && everyone && value_at(s, &["Condition"]).is_none()
    })
}

/// Roles whose grant makes the member an owner or an administrator.
fn is_admin_role(role: &str) -> bool {
    matches!(role, "roles/owner" | "roles/editor")
        || role.ends_with("Admin")
        || role.ends_with(".admin")
}

fn gcp(event: &Event) -> Option<Finding> {
    let payload = field(&event.details, &["protoPayload"])?;
    if let Some(view) = kube_view_gke(event, payload) {
        return kube(&view);
    }
    let method = str_at(payload, &["methodName"])?;
    let last = method.rsplit('.').next().unwrap_or(method);
    if method.to_ascii_lowercase().contains("setiampolicy") {
        let deltas = array_at(payload, &["serviceData", "policyDelta", "bindingDeltas"]);
        for delta in deltas {
            let (role, member) = (
                str_at(delta, &["role"]).unwrap_or(""),
                str_at(delta, &["member"]).unwrap_or(""),
            );
            if str_at(delta, &["action"]) != Some("ADD") {
                continue;
            }
            if matches!(member, "allUsers" | "allAuthenticatedUsers") {
                return finding(0.8, format!("granted {role} to {member} (public)"));
            }
            if is_admin_role(role) {
                return finding(0.7, format!("granted {role} to {member}"));
            }
        }
        let public = array_at(payload, &["request", "policy", "bindings"])
            .iter()
            .flat_map(|b| array_at(b, &["members"]))
            .any(|m| matches!(m.as_str(), Some("allUsers" | "allAuthenticatedUsers")));
        return when(public, 0.8, "IAM policy grants access to all users");
    }
    if method.starts_with("google.logging.v2.ConfigServiceV2.")
        && matches!(last, "DeleteSink" | "DeleteBucket")
    {
        return finding(0.7, "deleted a log sink or bucket");
    }
    let request = value_at(payload, &["request"]).unwrap_or(&Value::Null);
    if method.contains("subnetworks.patch") {
        let off = value_at(request, &["enableFlowLogs"]) == Some(&Value::Bool(false))
            || value_at(request, &["logConfig", "enable"]) == Some(&Value::Bool(false));
        return when(off, 0.6, "disabled VPC flow logs");
    }
    if method.contains("firewalls.insert") || method.contains("firewalls.patch") {
        let open = array_at(request, &["sourceRanges"])
            .iter()
            .any(|r| matches!(r.as_str(), Some("0.0.0.0/0" | "::/0")));
        return when(open, 0.6, "opened a firewall to the whole internet");
    }
    None
}

fn okta(event_type: &str) -> Option<Finding> {
    match event_type {
        "user.mfa.factor.deactivate" | "user.mfa.factor.reset_all" => {
            finding(0.6, "removed MFA factors")
        }
        "user.account.privilege.grant" | "group.privilege.grant" => {
            finding(0.7, "granted administrator privileges")
        }
        "policy.lifecycle.deactivate"
        | "policy.lifecycle.delete"
        | "policy.rule.deactivate"
        | "policy.rule.delete" => finding(0.6, "disabled or deleted a security policy"),
        "system.idp.lifecycle.create" | "system.idp.lifecycle.activate" => {
            finding(0.6, "added an identity provider")
        }
        "user.session.impersonation.initiate" | "user.session.impersonation.grant" => {
            finding(0.8, "impersonation session")
        }
        "system.api_token.create" => finding(0.5, "created an API token"),
        _ => None,
    }
}

fn github(event: &Event) -> Option<Finding> {
    let action = event.action.as_str();
    let public = str_field(&event.details, &["visibility"]) == Some("public");
    match action {
        "org.disable_two_factor_requirement" => finding(0.8, "disabled the org's 2FA requirement"),
        "org.saml_disabled" => finding(0.7, "disabled SAML single sign-on"),
        "protected_branch.destroy" => finding(0.6, "removed branch protection"),
        "protected_branch.policy_override" => finding(0.6, "overrode branch protection"),
        "repo.destroy" => finding(0.6, "deleted a repository"),
        "repo.transfer" => finding(0.6, "transferred a repository out"),
        "business.add_admin" => finding(0.6, "added an enterprise administrator"),
        "repo.create" | "repo.access" if public => finding(0.6, "made a repository public"),
        a if a.ends_with(".disable")
            && (a.contains("secret_scanning")
                || a.contains("dependabot")
                || a.contains("advanced_security")) =>
        {
            finding(0.6, "disabled a code security feature")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn public_bucket_policies_need_an_unconditioned_wildcard_principal() {
        let policy = |statement: Value| json!({"bucketPolicy": {"Statement": [statement]}});
        assert!(public_policy(&policy(
            json!({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"})
        )));
        assert!(public_policy(&policy(
            json!({"Effect": "Allow", "Principal": {"AWS": "*"}})
        )));
        assert!(!public_policy(&policy(
            json!({"Effect": "Allow", "Principal": "*", "Condition": {"IpAddress": {}}})
        )));
        assert!(!public_policy(&policy(
            json!({"Effect": "Deny", "Principal": "*"})
        )));
        let as_text =
            json!({"bucketPolicy": r#"{"Statement":[{"Effect":"Allow","Principal":"*"}]}"#});
        assert!(public_policy(&as_text));
    }
    #[test]
    fn sensitive_host_paths_match_whole_path_components() {
        let pod = |path: &str| json!({"spec": {"containers": [{"name": "c"}], "volumes": [{"hostPath": {"path": path}}]}});
        assert!(risky_pod(&pod("/etc")).is_some());
        assert!(risky_pod(&pod("/etc/kubernetes/manifests")).is_some());
        assert!(risky_pod(&pod("/")).is_some());
        assert!(risky_pod(&pod("/etcetera")).is_none());
        assert!(risky_pod(&pod("/data")).is_none());
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["CAP_SYS_ADMIN"]}}}]
        }}}}}});
        assert_eq!(
            risky_pod(&cron).as_deref(),
            Some("container with capability CAP_SYS_ADMIN")
        );
    }

    fn k8s(verb: &str, user: &str, object_ref: Value, request: Value) -> Event {
        let details = json!({
            "verb": verb,
            "user": {"username": user},
            "objectRef": object_ref,
            "requestObject": request,
            "requestURI": "/api/v1/x",
        });
        Event {
            time_unix_nanos: 1,
            actor: crate::ledger::event::Actor {
                id: user.into(),
                ..Default::default()
            },
            action: format!("k8s.{verb}"),
            resource: "k8s:x".into(),
            outcome: Outcome::Success,
            source: "k8s-audit".into(),
            details: details.as_object().cloned().unwrap_or_default(),
            idempotency_key: None,
        }
    }

    #[test]
    fn node_port_services_and_wildcard_roles_are_sensitive() {
        let svc = json!({"resource": "services", "namespace": "default", "name": "web"});
        let node_port = k8s(
            "create",
            "dev",
            svc.clone(),
            json!({"spec": {"type": "NodePort"}}),
        );
        let found = sensitive_change(&node_port).unwrap();
        assert!(found.what.contains("default/services/web"), "{found:?}");
        let cluster_ip = k8s("create", "dev", svc, json!({"spec": {"type": "ClusterIP"}}));
        assert_eq!(sensitive_change(&cluster_ip), None);
        let role = json!({"resource": "clusterroles", "name": "r"});
        let wildcard = json!({"rules": [{"resources": ["pods"], "verbs": ["*"]}]});
        assert!(sensitive_change(&k8s("create", "dev", role.clone(), wildcard)).is_some());
        let narrow = json!({"rules": [{"resources": ["pods"], "verbs": ["get"]}]});
        assert_eq!(sensitive_change(&k8s("create", "dev", role, narrow)), None);
    }

    #[test]
    fn anonymous_health_checks_are_not_flagged_but_other_anonymous_requests_are() {
        let mut probe = k8s("get", "system:anonymous", Value::Null, Value::Null);
        probe
            .details
            .insert("requestURI".into(), json!("/healthz?verbose"));
        assert_eq!(sensitive_change(&probe), None);
        let pods = json!({"resource": "pods", "namespace": "default"});
        let list = k8s("list", "system:anonymous", pods, Value::Null);
        assert!(sensitive_change(&list)
            .unwrap()
            .what
            .starts_with("anonymous request allowed"));
        let mut refused = list.clone();
        refused.outcome = Outcome::Denied;
        assert_eq!(sensitive_change(&refused), None);
    }

    #[test]
    fn admin_roles_are_recognised() {
        for role in [
            "roles/owner",
            "roles/editor",
            "roles/resourcemanager.organizationAdmin",
            "roles/iam.admin",
        ] {
            assert!(is_admin_role(role), "{role}");
        }
        assert!(!is_admin_role("roles/viewer"));
        assert!(!is_admin_role("roles/run.invoker"));
    }
}
