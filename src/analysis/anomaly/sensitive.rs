//! Single events that deserve a look on their own, whatever came before:
//! audit logging stopped, a bucket made public,
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
use crate::analysis::vocabulary::is_internal;
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
    /// The caller's user agent and source addresses.
    agent: &'a str,
    ips: Vec<&'a str>,
}

fn kube_view_audit(event: &Event) -> Option<KubeView<'_>> {
    let d = &event.details;
    let verb = event
        .action
        .strip_prefix("k8s.")
        .or_else(|| str_field(d, &["verb"]))?;
    let object = field(d, &["objectRef"]);
    let part = |k: &str| object.and_then(|o| str_at(o, &[k])).unwrap_or("");
    let strings = |path: &[&str]| -> Vec<&str> {
        field(d, path)
            .map(|g| array_at(g, &[]).iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    Some(KubeView {
        verb,
        resource: part("resource"),
        subresource: part("subresource"),
        namespace: part("namespace"),
        name: part("name"),
        user: str_field(d, &["user", "username"]).unwrap_or(&event.actor.id),
        groups: strings(&["user", "groups"]),
        body: field(d, &["requestObject"]),
        uri: str_field(d, &["requestURI"]).unwrap_or(""),
        agent: event.actor.user_agent.as_deref().unwrap_or(""),
        ips: strings(&["sourceIPs"]),
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
        agent: event.actor.user_agent.as_deref().unwrap_or(""),
        ips: event.actor.ip.as_deref().into_iter().collect(),
    })
}

/// Whether a GKE record says the API server refused the object: its
/// response is a `Status` of failure, though the call itself may carry no
/// error status.
fn gke_refused(payload: &Value) -> bool {
    str_at(payload, &["response", "status"]) == Some("Failure")
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
/// Namespaces the platform runs its own components in.
const SYSTEM_NAMESPACES: &[&str] = &[
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "gke-system",
    "gke-managed-system",
];
/// Identities of the control plane and of the cloud provider's managers,
/// by prefix. Service accounts count only in the platform's namespaces: one
/// in an application namespace is a workload like any other.
const SYSTEM_PRINCIPAL_PREFIXES: &[&str] = &[
    "system:serviceaccount:kube-system:",
    "system:serviceaccount:kube-public:",
    "system:serviceaccount:kube-node-lease:",
    "system:serviceaccount:gke-system:",
    "system:serviceaccount:gke-managed-system:",
    "eks:",
];
/// Registries that serve the platform's own images (control plane add-ons,
/// CNI, cloud agents). A pod in a system namespace running anything else is
/// not one the platform put there.
const PLATFORM_REGISTRIES: &[&str] = &[
    "registry.k8s.io/",
    "k8s.gcr.io/",
    "gke.gcr.io/",
    "gcr.io/gke-release/",
    "gcr.io/google-containers/",
    "gcr.io/google_containers/",
    "mcr.microsoft.com/",
    "public.ecr.aws/eks/",
    "public.ecr.aws/eks-distro/",
    "602401143452.dkr.ecr.",
];
/// Host paths whose mount gives a container the node (Falco's and
/// Panther's lists of sensitive mounts are the model).
const SENSITIVE_HOST_PATHS: &[&str] = &[
    "/",
    "/etc",
    "/proc",
    "/sys",
    "/root",
    "/home/admin",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
    "/var/lib/kubelet",
    "/var/lib/docker",
    "/etc/kubernetes",
];
const DANGEROUS_CAPABILITIES: &[&str] = &[
    "SYS_ADMIN",
    "ALL",
    "SYS_PTRACE",
    "SYS_MODULE",
    "NET_ADMIN",
    "DAC_READ_SEARCH",
    "BPF",
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
/// Where a pod's projected identity tokens live; reading one from a shell
/// is how a stolen pod becomes a stolen identity.
const TOKEN_PATHS: &[&str] = &[
    "serviceaccount/token",
    "/var/run/secrets/kubernetes.io/serviceaccount",
    "/var/run/secrets/eks.amazonaws.com/serviceaccount",
    "/var/run/secrets/azure/tokens",
    "/var/run/secrets/tokens/",
];
/// Cluster roles whose binding hands over the cluster (or its control
/// plane's powers).
const PRIVILEGED_CLUSTER_ROLES: &[&str] = &[
    "cluster-admin",
    "system:masters",
    "admin",
    "system:kube-controller-manager",
    "system:kube-scheduler",
];
/// Built-in roles that cluster add-ons are expected to reconcile.
const ADJUSTABLE_SYSTEM_ROLES: &[&str] =
    &["system:coredns", "system:managed-certificate-controller"];

/// Whether `user` is the control plane, a node, a cloud manager or a
/// service account of the platform's namespaces.
fn is_system_principal(user: &str) -> bool {
    if matches!(
        user,
        "system:anonymous" | "system:unauthenticated" | "masterclient" | "aksService"
    ) {
        return matches!(user, "masterclient" | "aksService");
    }
    if user.starts_with("system:") && !user.starts_with("system:serviceaccount:") {
        return true;
    }
    SYSTEM_PRINCIPAL_PREFIXES
        .iter()
        .any(|p| user.starts_with(p))
        || user.ends_with("@container-engine-robot.iam.gserviceaccount.com")
        || is_google_service_agent(user)
}

/// Google's per-project service agents, `service-<project number>@<agent
/// domain>.iam.gserviceaccount.com` (`container-engine-robot`,
/// `gcp-sa-*`): names a project cannot give its own service accounts, as
/// the number is Google's and the domain is not the project's.
fn is_google_service_agent(user: &str) -> bool {
    let Some((local, domain)) = user.split_once('@') else {
        return false;
    };
    let number = local.strip_prefix("service-").unwrap_or("");
    !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
        && (domain == "container-engine-robot.iam.gserviceaccount.com"
            || (domain.starts_with("gcp-sa-") && domain.ends_with(".iam.gserviceaccount.com")))
}

/// Whether the request is the platform's own probe: the kubelet, a cloud
/// load balancer's health check, or the node itself.
fn is_platform_probe(v: &KubeView) -> bool {
    let parsed = |ip: &&str| ip.parse::<std::net::IpAddr>().ok();
    let inside = v
        .ips
        .first()
        .and_then(parsed)
        .is_some_and(|ip| is_internal(&ip));
    let loopback = !v.ips.is_empty() && v.ips.iter().all(|ip| *ip == "127.0.0.1" || *ip == "::1");
    // Google's health checkers call from Google's own ranges (GKE's audit
    // records often carry no address at all); from anywhere else their
    // agent string is someone borrowing it.
    let google_range = |ip: &std::net::IpAddr| match ip {
        std::net::IpAddr::V4(a) => {
            let o = a.octets();
            (o[0], o[1]) == (35, 191) || (o[0], o[1], o[2] & 0xfc) == (130, 211, 0)
        }
        std::net::IpAddr::V6(_) => false,
    };
    let from_google =
        v.ips.is_empty() || v.ips.iter().filter_map(parsed).all(|ip| google_range(&ip));
    let google = ["GoogleHC/", "GoogleKubernetesEngineFrontend"]
        .iter()
        .any(|a| v.agent.starts_with(a))
        && from_google;
    // The kubelet and an AWS load balancer probe from inside the network,
    // and only the server's root (health paths are excused before this).
    let prober = ["kube-probe/", "ELB-HealthChecker/"]
        .iter()
        .any(|a| v.agent.starts_with(a))
        && inside
        && matches!(v.uri, "/" | "");
    loopback || google || prober
}

fn kube(v: &KubeView) -> Option<Finding> {
    let system_principal = is_system_principal(v.user);
    let system_namespace = SYSTEM_NAMESPACES.contains(&v.namespace);
    // The platform managing its own namespaces: what every cluster does.
    let platform_own = system_principal && system_namespace;
    let anonymous = v.user == "system:anonymous" || v.groups.contains(&"system:unauthenticated");
    // GKE names health endpoints as resources (`io.k8s.core.v1.healthz.get`).
    let health =
        is_health_path(v.uri) || matches!(v.resource, "healthz" | "livez" | "readyz" | "version");
    if anonymous && !health && !is_platform_probe(v) {
        return finding(
            0.8,
            format!("anonymous request allowed: {} {}", v.verb, target(v)),
        );
    }
    if v.resource == "pods" && matches!(v.subresource, "exec" | "attach") {
        return if platform_own { None } else { pod_session(v) };
    }
    let writes = matches!(v.verb, "create" | "update" | "patch");
    let deletes = matches!(v.verb, "delete" | "deletecollection");
    let body = v.body.unwrap_or(&Value::Null);
    if matches!(v.resource, "clusterrolebindings" | "rolebindings") && writes {
        return binding(v, body, system_principal);
    }
    if matches!(v.resource, "clusterroles" | "roles") {
        let built_in = v.name.starts_with("system:") || v.name.starts_with("eks:");
        if built_in
            && !system_principal
            && (writes || deletes)
            && !ADJUSTABLE_SYSTEM_ROLES.contains(&v.name)
        {
            // Panther rates this Critical; 0.8 because cluster upgrades by
            // administrators also reconcile built-in roles.
            return finding(0.8, format!("{} built-in role {}", past(v.verb), v.name));
        }
        if writes && !system_principal {
            if let Some((score, what)) = risky_rules(body, v.resource == "clusterroles") {
                // A new role is a new grant, and a patch sends only what it
                // changes; an update resends a whole role, mostly unchanged,
                // every time a manifest is applied.
                let score = if v.verb == "update" {
                    score.min(0.4)
                } else {
                    score
                };
                return finding(score, format!("role {} {what}", v.name));
            }
        }
    }
    if WORKLOADS.contains(&v.resource) && v.subresource.is_empty() && writes {
        let foreign = foreign_image(body);
        if let Some((score, what)) = risky_pod(body) {
            if !platform_own || foreign.is_some() {
                return finding(score, format!("{what} in {}", target(v)));
            }
        }
        if system_namespace && v.verb == "create" {
            if !system_principal {
                // A controller-made workload's pods are judged when created.
                let score = if v.resource == "pods" { 0.7 } else { 0.4 };
                return finding(
                    score,
                    format!("created {} in system namespace {}", v.resource, v.namespace),
                );
            }
            if let (Some(image), "pods") = (foreign, v.resource) {
                return finding(
                    0.6,
                    format!(
                        "pod in system namespace {} runs image {image} from outside the platform's registries",
                        v.namespace
                    ),
                );
            }
        }
    }
    if v.resource == "serviceaccounts"
        && v.subresource.is_empty()
        && v.verb == "create"
        && system_namespace
        && !system_principal
    {
        return finding(0.5, format!("created service account in {}", v.namespace));
    }
    if v.resource == "services" && writes && str_at(body, &["spec", "type"]) == Some("NodePort") {
        // Panther rates this High, Falco WARNING; 0.6 because nodes are
        // often private, so the exposure depends on the network.
        return finding(
            0.6,
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

/// A shell or command session in a pod. Running a command of one's choice
/// in a container is worth a review on its own (Panther alerts on it,
/// Falco notes it); reading the pod's identity token or streaming files out
/// of it is worse. Attaching joins the process the container already runs,
/// without choosing a command: context only.
fn pod_session(v: &KubeView) -> Option<Finding> {
    if v.subresource == "attach" {
        return finding(0.4, format!("attached to pod {}", target(v)));
    }
    let command = exec_command(v);
    let joined = command.join(" ").to_lowercase();
    if TOKEN_PATHS.iter().any(|p| joined.contains(p)) {
        return finding(
            0.8,
            format!("read the service account token in pod {}", target(v)),
        );
    }
    if streams_archive_out(&command) {
        return finding(0.7, format!("copied files out of pod {}", target(v)));
    }
    finding(0.6, format!("opened a shell in pod {}", target(v)))
}

/// The command of an exec: the request's `command` list, else the
/// `command=` parameters of the request URI.
fn exec_command(v: &KubeView) -> Vec<String> {
    let listed: Vec<String> = v
        .body
        .map(|b| array_at(b, &["command"]))
        .unwrap_or(&[])
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    let query = v.uri.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("command="))
        .map(percent_decode)
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `tar c…f - …`: an archive written to standard output, which is how
/// `kubectl cp` reads files out of a pod.
fn streams_archive_out(command: &[String]) -> bool {
    let Some(tar) = command.iter().position(|a| {
        let a = a.to_lowercase();
        a == "tar" || a.ends_with("/tar")
    }) else {
        return false;
    };
    let rest = &command[tar + 1..];
    let Some(flags) = rest.iter().position(|a| {
        let f = a.trim_start_matches('-');
        !f.is_empty()
            && f.chars().all(|c| c.is_ascii_alphabetic())
            && f.contains('c')
            && f.ends_with('f')
    }) else {
        return false;
    };
    rest.get(flags + 1).is_some_and(|a| a == "-")
}

/// A role binding that hands over the cluster.
fn binding(v: &KubeView, body: &Value, system_principal: bool) -> Option<Finding> {
    let role = str_at(body, &["roleRef", "name"]).unwrap_or("");
    let to_anonymous = array_at(body, &["subjects"]).iter().any(|s| {
        matches!(
            str_at(s, &["name"]),
            Some("system:anonymous" | "system:unauthenticated")
        )
    });
    if to_anonymous {
        return finding(
            0.9,
            format!("bound role {role} to anonymous users in {}", target(v)),
        );
    }
    if system_principal || !PRIVILEGED_CLUSTER_ROLES.contains(&role) {
        return None;
    }
    if v.resource == "rolebindings" {
        // Within one namespace: how namespace owners are commonly made.
        return (role == "cluster-admin").then(|| Finding {
            score: 0.4,
            what: format!("bound role {role} within namespace in {}", target(v)),
        });
    }
    let score = if matches!(role, "cluster-admin" | "system:masters") {
        0.9
    } else {
        0.7
    };
    finding(
        score,
        format!("bound role {role} to a subject in {}", target(v)),
    )
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

const WRITE_VERBS: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

/// What makes a role's rules dangerous, and how much: wildcards, shell
/// access to pods, the node proxy, the verbs that let a holder grant itself
/// more; then write access, by what it writes to. `cluster_wide` for a
/// ClusterRole.
fn risky_rules(body: &Value, cluster_wide: bool) -> Option<(f32, &'static str)> {
    let top = if cluster_wide { 0.8 } else { 0.7 };
    let mut worst: Option<(f32, &'static str)> = None;
    let mut note = |score: f32, what: &'static str| {
        if worst.is_none_or(|(s, _)| score > s) {
            worst = Some((score, what));
        }
    };
    for rule in array_at(body, &["rules"]) {
        let list = |k: &str| -> Vec<&str> {
            array_at(rule, &[k])
                .iter()
                .filter_map(Value::as_str)
                .collect()
        };
        let (verbs, resources) = (list("verbs"), list("resources"));
        if verbs.contains(&"*") || resources.contains(&"*") {
            note(top, "grants wildcard access");
        }
        if resources
            .iter()
            .any(|r| matches!(*r, "pods/exec" | "pods/attach"))
        {
            note(top, "grants shell access to pods");
        }
        if resources.contains(&"nodes/proxy")
            || (resources.contains(&"nodes/*") && !verbs.is_empty())
        {
            note(0.8, "grants the node proxy (the kubelet API)");
        }
        if verbs
            .iter()
            .any(|v| matches!(*v, "escalate" | "bind" | "impersonate"))
        {
            note(top, "grants escalate, bind or impersonate");
        }
        if !verbs.iter().any(|v| WRITE_VERBS.contains(v)) || resources.is_empty() {
            continue;
        }
        let touches = |names: &[&str]| resources.iter().any(|r| names.contains(r));
        if touches(&[
            "secrets",
            "roles",
            "clusterroles",
            "rolebindings",
            "clusterrolebindings",
        ]) {
            note(0.7, "grants write access to secrets or RBAC");
        } else if cluster_wide && touches(&["pods", "nodes", "persistentvolumes"]) {
            note(
                0.6,
                "grants cluster-wide write access to pods, nodes or volumes",
            );
        } else if cluster_wide {
            note(0.5, "grants cluster-wide write access");
        } else {
            // Panther: "common/expected" for a namespaced role.
            note(0.4, "grants write access in its namespace");
        }
    }
    worst
}

/// The pod spec of a pod or of a workload's pod template.
fn pod_spec(body: &Value) -> Option<&Value> {
    [
        &["spec", "jobTemplate", "spec", "template", "spec"][..],
        &["spec", "template", "spec"],
    ]
    .iter()
    .find_map(|path| value_at(body, path).filter(|s| s.is_object()))
    .or_else(|| value_at(body, &["spec"]).filter(|s| s.is_object()))
}

fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["containers", "initContainers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |k| array_at(spec, &[k]))
}

/// The first container image of the pod not served by a platform registry.
fn foreign_image(body: &Value) -> Option<&str> {
    containers(pod_spec(body)?)
        .filter_map(|c| str_at(c, &["image"]))
        .find(|image| {
            let image = image.to_ascii_lowercase();
            !(PLATFORM_REGISTRIES.iter().any(|r| image.starts_with(r))
                || (image.contains(".dkr.ecr.") && image.contains(".amazonaws.com/eks/")))
        })
}

/// What in a pod spec gives its containers the node, and how much it
/// matters: privilege, dangerous capabilities, the host's namespaces or
/// sensitive host paths (0.8); explicitly running as root (0.6).
fn risky_pod(body: &Value) -> Option<(f32, String)> {
    let spec = pod_spec(body)?;
    for c in containers(spec) {
        if is_true(c, &["securityContext", "privileged"]) {
            return Some((0.8, "privileged container".into()));
        }
        let added = array_at(c, &["securityContext", "capabilities", "add"]);
        if let Some(cap) = added
            .iter()
            .filter_map(Value::as_str)
            .find(|cap| DANGEROUS_CAPABILITIES.contains(&cap.trim_start_matches("CAP_")))
        {
            return Some((0.8, format!("container with capability {cap}")));
        }
    }
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if is_true(spec, &[host]) {
            return Some((0.8, format!("pod with {host}")));
        }
    }
    let mount = array_at(spec, &["volumes"])
        .iter()
        .filter_map(|v| str_at(v, &["hostPath", "path"]))
        .find(|path| {
            let path = path.trim_end_matches('/');
            let path = if path.is_empty() { "/" } else { path };
            SENSITIVE_HOST_PATHS.iter().any(|s| {
                path == *s || (*s != "/" && path.starts_with(s) && path[s.len()..].starts_with('/'))
            })
        });
    if let Some(path) = mount {
        return Some((0.8, format!("pod mounting host path {path}")));
    }
    // Root by request, not by the image's default: the spec asks for uid 0
    // or waives the non-root check.
    let as_root = |ctx: &Value| {
        value_at(ctx, &["runAsUser"]).and_then(Value::as_i64) == Some(0)
            || value_at(ctx, &["runAsNonRoot"]) == Some(&Value::Bool(false))
    };
    let pod_ctx = value_at(spec, &["securityContext"]).unwrap_or(&Value::Null);
    if as_root(pod_ctx)
        || containers(spec)
            .any(|c| as_root(value_at(c, &["securityContext"]).unwrap_or(&Value::Null)))
    {
        return Some((0.6, "container set to run as root".into()));
    }
    None
}

fn cloudtrail(event: &Event) -> Option<Finding> {
    let d = &event.details;
    let (service, name) = event.action.split_once(':')?;
    let params = field(d, &["requestParameters"]).unwrap_or(&Value::Null);
    match (service, name) {
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
            // Only permissions being added: `group: all` elsewhere in the
            // request (a removal, another attribute) shares nothing.
            let public = ["launchPermission", "createVolumePermission"]
                .iter()
                .flat_map(|p| array_at(params, &[p, "add", "items"]))
                .any(|item| str_at(item, &["group"]) == Some("all"));
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
        // The root account's own use is the catalogue's (`aws.root.*`): it
        // tells writes from reads and root's sign-ins from AWS acting for it.
        _ => None,
    }
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
        return if gke_refused(payload) {
            None
        } else {
            kube(&view)
        };
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
        assert!(risky_pod(&pod("/sys/fs/cgroup")).is_some());
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["CAP_SYS_ADMIN"]}}}]
        }}}}}});
        assert_eq!(
            risky_pod(&cron),
            Some((0.8, "container with capability CAP_SYS_ADMIN".to_string()))
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

    fn gke(method: &str, user: &str, resource_name: &str, payload_extra: Value) -> Event {
        let mut payload = json!({
            "methodName": method,
            "authenticationInfo": {"principalEmail": user},
            "resourceName": resource_name,
            "serviceName": "k8s.io",
        });
        if let (Some(p), Some(extra)) = (payload.as_object_mut(), payload_extra.as_object()) {
            p.extend(extra.clone());
        }
        let details = json!({"protoPayload": payload});
        Event {
            time_unix_nanos: 1,
            actor: crate::ledger::event::Actor {
                id: user.into(),
                ..Default::default()
            },
            action: method.into(),
            resource: resource_name.into(),
            outcome: Outcome::Unknown,
            source: "gcp-audit".into(),
            details: details.as_object().cloned().unwrap_or_default(),
            idempotency_key: None,
        }
    }

    fn score(event: &Event) -> Option<f32> {
        sensitive_change(event).map(|f| f.score)
    }

    #[test]
    fn pod_sessions_are_scored_by_what_they_run() {
        let pod =
            json!({"resource": "pods", "subresource": "exec", "namespace": "prod", "name": "web"});
        let shell = k8s(
            "create",
            "dev@example.com",
            pod.clone(),
            json!({"command": ["/bin/sh"]}),
        );
        assert_eq!(score(&shell), Some(0.6));
        let token = k8s(
            "create",
            "dev@example.com",
            pod.clone(),
            json!({"command": ["sh", "-c", "cat /var/run/secrets/kubernetes.io/serviceaccount/token"]}),
        );
        assert_eq!(score(&token), Some(0.8));
        let mut copy = k8s("create", "dev@example.com", pod.clone(), Value::Null);
        copy.details.insert(
            "requestURI".into(),
            json!("/api/v1/namespaces/prod/pods/web/exec?command=tar&command=cf&command=-&command=%2Fapp%2Fdata"),
        );
        assert_eq!(score(&copy), Some(0.7));
        let mut upload = copy.clone();
        upload.details.insert(
            "requestURI".into(),
            json!("/api/v1/namespaces/prod/pods/web/exec?command=tar&command=xf&command=-&command=-C&command=/tmp"),
        );
        assert_eq!(score(&upload), Some(0.6));
        let attach = json!({"resource": "pods", "subresource": "attach", "namespace": "prod", "name": "web"});
        assert_eq!(
            score(&k8s("create", "dev@example.com", attach, Value::Null)),
            Some(0.4)
        );
        let system = json!({"resource": "pods", "subresource": "exec", "namespace": "kube-system", "name": "proxy"});
        let own = k8s(
            "create",
            "system:serviceaccount:kube-system:kube-proxy",
            system,
            Value::Null,
        );
        assert_eq!(score(&own), None);
        assert_eq!(percent_decode("%2Fvar%2Frun+x%zz"), "/var/run x%zz");
    }

    #[test]
    fn the_platform_may_run_privileged_pods_from_its_own_images_in_its_namespaces() {
        let pod = |image: &str| json!({"spec": {"containers": [{"image": image, "securityContext": {"privileged": true}}]}});
        let system_ns = json!({"resource": "pods", "namespace": "kube-system"});
        let controller = "system:serviceaccount:kube-system:daemon-set-controller";
        let own = k8s(
            "create",
            controller,
            system_ns.clone(),
            pod("registry.k8s.io/kube-proxy:v1.29"),
        );
        assert_eq!(score(&own), None);
        let foreign = k8s(
            "create",
            controller,
            system_ns.clone(),
            pod("attacker/miner"),
        );
        assert_eq!(score(&foreign), Some(0.8));
        let elsewhere = json!({"resource": "pods", "namespace": "default"});
        let app = k8s(
            "create",
            controller,
            elsewhere,
            pod("registry.k8s.io/kube-proxy:v1.29"),
        );
        assert_eq!(score(&app), Some(0.8));
        // Plain pods in a system namespace: by a person, or from a foreign image.
        let plain = |image: &str| json!({"spec": {"containers": [{"image": image}]}});
        let by_hand = k8s(
            "create",
            "dev@example.com",
            system_ns.clone(),
            plain("k8s.gcr.io/pause"),
        );
        assert_eq!(score(&by_hand), Some(0.7));
        let replica = "system:serviceaccount:kube-system:replicaset-controller";
        let nginx = k8s("create", replica, system_ns.clone(), plain("nginx"));
        assert!(sensitive_change(&nginx)
            .unwrap()
            .what
            .contains("image nginx"));
        assert_eq!(
            score(&k8s(
                "create",
                replica,
                system_ns,
                plain("k8s.gcr.io/coredns")
            )),
            None
        );
        let deployment =
            json!({"resource": "deployments", "namespace": "kube-system", "name": "d"});
        assert_eq!(
            score(&k8s("create", "dev@example.com", deployment, Value::Null)),
            Some(0.4)
        );
        let root = json!({"spec": {"containers": [{"image": "nginx", "securityContext": {"runAsUser": 0}}]}});
        let default_ns = json!({"resource": "pods", "namespace": "default"});
        assert_eq!(
            score(&k8s("create", "dev@example.com", default_ns, root)),
            Some(0.6)
        );
    }

    #[test]
    fn bindings_of_privileged_roles_are_scored_by_reach() {
        let crb = json!({"resource": "clusterrolebindings", "name": "b"});
        let bind = |role: &str| json!({"roleRef": {"name": role}, "subjects": [{"kind": "User", "name": "eve"}]});
        assert_eq!(
            score(&k8s("create", "eve", crb.clone(), bind("cluster-admin"))),
            Some(0.9)
        );
        assert_eq!(
            score(&k8s("create", "eve", crb.clone(), bind("admin"))),
            Some(0.7)
        );
        assert_eq!(
            score(&k8s("create", "eve", crb.clone(), bind("view"))),
            None
        );
        let operator = "system:serviceaccount:kube-system:operator";
        assert_eq!(
            score(&k8s("create", operator, crb.clone(), bind("cluster-admin"))),
            None
        );
        let anon = json!({"roleRef": {"name": "view"}, "subjects": [{"name": "system:anonymous"}]});
        assert_eq!(score(&k8s("create", operator, crb, anon)), Some(0.9));
        let rb = json!({"resource": "rolebindings", "namespace": "team", "name": "b"});
        assert_eq!(
            score(&k8s("create", "eve", rb, bind("cluster-admin"))),
            Some(0.4)
        );
    }

    #[test]
    fn roles_are_judged_when_created_by_people() {
        let role = json!({"resource": "clusterroles", "name": "r"});
        let rules = |resources: Value, verbs: Value| json!({"rules": [{"resources": resources, "verbs": verbs}]});
        let wildcard = rules(json!(["*"]), json!(["get"]));
        assert_eq!(
            score(&k8s("create", "eve", role.clone(), wildcard.clone())),
            Some(0.8)
        );
        assert_eq!(
            score(&k8s("update", "eve", role.clone(), wildcard.clone())),
            Some(0.4)
        );
        let operator = "system:serviceaccount:kube-system:operator";
        assert_eq!(
            score(&k8s("create", operator, role.clone(), wildcard)),
            None
        );
        let proxy = rules(json!(["nodes/proxy"]), json!(["get"]));
        assert_eq!(score(&k8s("create", "eve", role.clone(), proxy)), Some(0.8));
        let secrets = rules(json!(["secrets"]), json!(["get", "delete"]));
        assert_eq!(
            score(&k8s("create", "eve", role.clone(), secrets)),
            Some(0.7)
        );
        let urls = json!({"rules": [{"nonResourceURLs": ["/api"], "verbs": ["delete"]}]});
        assert_eq!(score(&k8s("create", "eve", role, urls)), None);
        let ns_role = json!({"resource": "roles", "namespace": "team", "name": "r"});
        let deploy = rules(json!(["deployments"]), json!(["update"]));
        assert_eq!(score(&k8s("create", "eve", ns_role, deploy)), Some(0.4));
        let coredns = json!({"resource": "clusterroles", "name": "system:coredns"});
        assert_eq!(score(&k8s("update", "eve", coredns, Value::Null)), None);
        let node = json!({"resource": "clusterroles", "name": "system:node"});
        assert_eq!(score(&k8s("patch", "eve", node, Value::Null)), Some(0.8));
    }

    #[test]
    fn gke_requests_share_the_kubernetes_checks() {
        let host_net = gke(
            "io.k8s.core.v1.pods.create",
            "dev@example.com",
            "core/v1/namespaces/default/pods/p",
            json!({"request": {"spec": {"hostNetwork": true}}}),
        );
        assert_eq!(score(&host_net), Some(0.8));
        let refused = gke(
            "io.k8s.core.v1.pods.create",
            "dev@example.com",
            "core/v1/namespaces/default/pods/p",
            json!({"request": {"spec": {"hostNetwork": true}}, "response": {"status": "Failure"}}),
        );
        assert_eq!(score(&refused), None);
        let robot = gke(
            "io.k8s.core.v1.pods.create",
            "service-123@container-engine-robot.iam.gserviceaccount.com",
            "core/v1/namespaces/kube-system/pods/agent",
            json!({"request": {"spec": {"containers": [{"image": "gke.gcr.io/agent", "securityContext": {"privileged": true}}]}}}),
        );
        assert_eq!(score(&robot), None);
        let mut probe = gke("io.k8s.core.v1.componentstatuses.list", "", "", json!({}));
        probe.details["protoPayload"]["authenticationInfo"] =
            json!({"authoritySelector": "system:anonymous"});
        probe.actor.user_agent = Some("GoogleHC/1.0".into());
        assert_eq!(score(&probe), None);
        // Google's checker string from Google's health-check range is the
        // checker; from anywhere else, someone borrowing it.
        probe.actor.ip = Some("35.191.10.20".into());
        assert_eq!(score(&probe), None);
        probe.actor.ip = Some("198.51.100.7".into());
        assert_eq!(score(&probe), Some(0.8));
        probe.actor.ip = None;
        probe.actor.user_agent = Some("curl/8.0".into());
        assert_eq!(score(&probe), Some(0.8));
        let pods = json!({"resource": "pods", "namespace": "default"});
        let mut borrowed = k8s("list", "system:anonymous", pods, Value::Null);
        borrowed.actor.user_agent = Some("kube-probe/1.29".into());
        borrowed
            .details
            .insert("sourceIPs".into(), json!(["203.0.113.9"]));
        assert_eq!(score(&borrowed), Some(0.8));
        // From inside the network, the kubelet's probe of the server's root
        // is the platform; the same agent listing pods is not.
        borrowed
            .details
            .insert("sourceIPs".into(), json!(["10.0.0.7"]));
        assert_eq!(score(&borrowed), Some(0.8));
        borrowed.details.insert("requestURI".into(), json!("/"));
        assert_eq!(score(&borrowed), None);
        let exec = gke(
            "io.k8s.core.v1.pods.exec.create",
            "dev@example.com",
            "core/v1/namespaces/prod/pods/db/exec",
            json!({"request": {"command": ["cat", "/var/run/secrets/tokens/gcp-ksa/token"]}}),
        );
        assert_eq!(score(&exec), Some(0.8));
    }

    #[test]
    fn system_principals_are_the_platform_not_any_service_account() {
        for user in [
            "system:kube-controller-manager",
            "system:node:ip-10-0-0-1.ec2.internal",
            "system:serviceaccount:kube-system:replicaset-controller",
            "eks:node-manager",
            "service-123@container-engine-robot.iam.gserviceaccount.com",
            "service-123@gcp-sa-logging.iam.gserviceaccount.com",
        ] {
            assert!(is_system_principal(user), "{user}");
        }
        // Names a project can give its own service accounts are not the
        // platform's.
        for user in [
            "system:serviceaccount:default:app",
            "system:anonymous",
            "service-desk@example.com",
            "dev@example.com",
            "container-engine-robot@p.iam.gserviceaccount.com",
            "service-backup@proj.iam.gserviceaccount.com",
            "service-123@proj.iam.gserviceaccount.com",
        ] {
            assert!(!is_system_principal(user), "{user}");
        }
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
