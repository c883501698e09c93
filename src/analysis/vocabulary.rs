//! The vocabulary of audit events: what the words of a question name among
//! the actions, services, clients, kinds of actor and networks that the
//! ingested formats record.
//!
//! A question says "who listed the bucket" or "what did roles do from the
//! AWS CLI"; the log says `s3:ListObjects`, `AssumedRole` and
//! `aws-cli/1.18.136 Python/3.8.5 Darwin/19.5.0`. This module holds both
//! sides of that translation, as data, for every format `ironlog ingest`
//! reads (CloudTrail eventNames, Kubernetes verbs, Okta, GCP and GitHub
//! event types, auditd syscalls):
//! - [`Verb`]: what an action does, read from the action's own name
//!   (`GetObject` gets, `k8s.list` lists, `repo.archived` changes), and the
//!   English verbs that ask for it ("read", "looked up", "deleted").
//! - services and platforms: `s3:GetObject` is S3 on AWS, `k8s.create` is
//!   Kubernetes, `storage.objects.get` is GCP's storage.
//! - [`Client`]: what a user agent says about the client (a CLI, the
//!   console, a browser, an SDK, Terraform; macOS, Windows, Linux).
//! - [`ActorKind`]: a user, a role session, a service, anonymous or root,
//!   from the recorded identity type or, where a format records none, from
//!   the shape of the actor's name (`system:serviceaccount:...`).
//! - [`Network`]: an address or CIDR written in the question, or "internal"
//!   (private ranges) and "external".
//!
//! Pure functions over strings; no I/O.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::words::words;

/// What an action does, read from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    Get,
    List,
    Describe,
    Create,
    Change,
    Delete,
    Start,
    Stop,
    Assume,
}

impl Verb {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Describe => "describe",
            Verb::Create => "create",
            Verb::Change => "change",
            Verb::Delete => "delete",
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Assume => "assume",
        }
    }

    /// What the action named `action` does, if its name says.
    pub fn of_action(action: &str) -> Option<Verb> {
        // The operation is the last part of the name: `s3:GetObject`,
        // `io.k8s.core.v1.pods.create`, `google.iam.admin.v1.CreateRole`.
        let op = action.rsplit([':', '.', '/']).next().unwrap_or(action);
        let w = words(op);
        let first = w.iter().find(|w| w.as_str() != "batch");
        // CamelCase names start with their verb (`DeleteBucket`); dotted
        // and snake-case event types often end with it (`repo.archived`,
        // `inboundSsoProfileDeleted`).
        let verb = [first, w.last()]
            .into_iter()
            .flatten()
            .find_map(|w| action_verb(w));
        verb
    }
}

/// Words in action names and what they do.
const ACTION_VERBS: &[(&str, Verb)] = &[
    ("get", Verb::Get),
    ("read", Verb::Get),
    ("download", Verb::Get),
    ("head", Verb::Get),
    ("retrieve", Verb::Get),
    ("fetch", Verb::Get),
    ("select", Verb::Get),
    ("query", Verb::Get),
    ("view", Verb::Get),
    ("decrypt", Verb::Get),
    ("clone", Verb::Get),
    ("list", Verb::List),
    ("watch", Verb::List),
    ("lookup", Verb::List),
    ("search", Verb::List),
    ("scan", Verb::List),
    ("propfind", Verb::List),
    ("describe", Verb::Describe),
    ("create", Verb::Create),
    ("created", Verb::Create),
    ("add", Verb::Create),
    ("insert", Verb::Create),
    ("run", Verb::Create),
    ("launch", Verb::Create),
    ("register", Verb::Create),
    ("generate", Verb::Create),
    ("copy", Verb::Create),
    ("import", Verb::Create),
    ("upload", Verb::Create),
    ("update", Verb::Change),
    ("updated", Verb::Change),
    ("modify", Verb::Change),
    ("patch", Verb::Change),
    ("set", Verb::Change),
    ("put", Verb::Change),
    ("change", Verb::Change),
    ("replace", Verb::Change),
    ("edit", Verb::Change),
    ("attach", Verb::Change),
    ("enable", Verb::Change),
    ("disable", Verb::Change),
    ("authorize", Verb::Change),
    ("reset", Verb::Change),
    ("rename", Verb::Change),
    ("transfer", Verb::Change),
    ("archived", Verb::Change),
    ("restore", Verb::Change),
    ("grant", Verb::Change),
    ("override", Verb::Change),
    ("dismiss", Verb::Change),
    ("delete", Verb::Delete),
    ("deleted", Verb::Delete),
    ("deletion", Verb::Delete),
    ("remove", Verb::Delete),
    ("destroy", Verb::Delete),
    ("terminate", Verb::Delete),
    ("deregister", Verb::Delete),
    ("purge", Verb::Delete),
    ("revoke", Verb::Delete),
    ("detach", Verb::Delete),
    ("start", Verb::Start),
    ("stop", Verb::Stop),
    ("assume", Verb::Assume),
    // auditd system calls (`SYSCALL:execve`).
    ("execve", Verb::Start),
    ("execveat", Verb::Start),
    ("open", Verb::Get),
    ("openat", Verb::Get),
    ("mkdir", Verb::Create),
    ("mkdirat", Verb::Create),
    ("creat", Verb::Create),
    ("mknod", Verb::Create),
    ("chmod", Verb::Change),
    ("fchmod", Verb::Change),
    ("fchmodat", Verb::Change),
    ("chown", Verb::Change),
    ("fchown", Verb::Change),
    ("fchownat", Verb::Change),
    ("renameat", Verb::Change),
    ("setuid", Verb::Change),
    ("setgid", Verb::Change),
    ("unlink", Verb::Delete),
    ("unlinkat", Verb::Delete),
    ("rmdir", Verb::Delete),
];

fn action_verb(word: &str) -> Option<Verb> {
    ACTION_VERBS
        .iter()
        .find(|(w, _)| *w == word)
        .map(|(_, v)| *v)
}

/// English verbs (every form a question uses) and the action verbs they
/// ask for. "Read" is any read-only call; "changed" any call that writes.
const QUESTION_VERBS: &[(&[&str], &[Verb])] = &[
    (
        &["read", "reads", "reading", "view", "viewed", "viewing"],
        &[Verb::Get, Verb::List, Verb::Describe],
    ),
    (
        &[
            "get",
            "gets",
            "got",
            "fetch",
            "fetched",
            "retrieve",
            "retrieved",
            "download",
            "downloaded",
            "downloads",
        ],
        &[Verb::Get],
    ),
    (
        &[
            "list",
            "listed",
            "listing",
            "listings",
            "lists",
            "enumerate",
            "enumerated",
            "enumerating",
            "enumeration",
        ],
        &[Verb::List],
    ),
    (&["describe", "described", "describing"], &[Verb::Describe]),
    (
        &[
            "inspect",
            "inspected",
            "inspecting",
            "inspection",
            "inspections",
            "lookup",
            "lookups",
            "looked",
            "look",
        ],
        &[Verb::Describe, Verb::Get, Verb::List],
    ),
    (
        &[
            "create",
            "created",
            "creating",
            "creates",
            "creation",
            "creations",
            "addition",
            "additions",
            "add",
            "added",
            "adding",
            "launch",
            "launched",
            "insert",
            "inserted",
            "generate",
            "generated",
            "provision",
            "provisioned",
        ],
        &[Verb::Create],
    ),
    (
        &[
            "change", "changed", "changing", "changes", "write", "wrote", "writes", "written",
        ],
        ANY_WRITE,
    ),
    (
        // To modify or alter is to change what exists, not to create or
        // delete it; "changed" and "wrote" stay any write.
        &[
            "modify",
            "modified",
            "modifying",
            "modifies",
            "alter",
            "altered",
            "update",
            "updated",
            "updating",
            "updates",
            "edit",
            "edited",
            "patch",
            "patched",
            "reconfigure",
            "reconfigured",
            "transfer",
            "transferred",
            "transfers",
            "archive",
            "archived",
            "enable",
            "enabled",
            "disable",
            "disabled",
            "grant",
            "granted",
            "attach",
            "attached",
        ],
        &[Verb::Change],
    ),
    (
        &[
            "delete",
            "deleted",
            "deleting",
            "deletes",
            "deletion",
            "deletions",
            "remove",
            "removed",
            "removing",
            "removal",
            "removals",
            "destroy",
            "destroyed",
            "terminate",
            "terminated",
            "drop",
            "dropped",
            "purge",
            "purged",
            "wipe",
            "wiped",
            "erase",
            "erased",
        ],
        &[Verb::Delete],
    ),
    (
        &[
            "start", "started", "starting", "execute", "executed", "exec", "ran",
        ],
        &[Verb::Start],
    ),
    (
        &["stop", "stopped", "stopping", "halt", "halted"],
        &[Verb::Stop],
    ),
    (&["assume", "assumed", "assuming"], &[Verb::Assume]),
    (
        &["upload", "uploaded", "uploads", "uploading", "put"],
        &[Verb::Create, Verb::Change],
    ),
];

/// What "changed" or "wrote" asks for: any call that writes.
pub const ANY_WRITE: &[Verb] = &[Verb::Create, Verb::Change, Verb::Delete];

/// The action verbs a question word asks for, if it is a verb.
pub fn question_verbs(word: &str) -> Option<&'static [Verb]> {
    QUESTION_VERBS
        .iter()
        .find(|(forms, _)| forms.contains(&word))
        .map(|(_, verbs)| *verbs)
}

/// Services and platforms as questions name them, and the name the log
/// gives them (see [`service_of`] and [`platform_of`]).
const SERVICES: &[(&[&str], &str)] = &[
    (&["s3"], "s3"),
    (&["ec2"], "ec2"),
    (&["iam"], "iam"),
    (&["sts"], "sts"),
    (&["kms"], "kms"),
    (&["rds"], "rds"),
    (&["lambda"], "lambda"),
    (&["dynamodb"], "dynamodb"),
    (&["cloudtrail"], "cloudtrail"),
    (&["secretsmanager", "secrets manager"], "secretsmanager"),
    (&["ses"], "ses"),
    (&["athena"], "athena"),
    (&["ecr"], "ecr"),
    (&["bedrock"], "bedrock"),
    (&["codebuild"], "codebuild"),
    (&["securityhub", "security hub"], "securityhub"),
    (&["cloudwatch"], "monitoring"),
    (
        &[
            "elb",
            "load balancer",
            "load balancers",
            "elasticloadbalancing",
        ],
        "elasticloadbalancing",
    ),
    (&["sso"], "sso"),
    (&["kubernetes", "k8s", "eks"], "kubernetes"),
    (&["github"], "github"),
    (&["okta"], "okta"),
    (&["gcp", "google cloud"], "gcp"),
    (&["aws", "amazon"], "aws"),
    (&["compute engine"], "compute"),
    (&["cloud storage", "gcs"], "storage"),
    (&["bigquery"], "bigquery"),
    (&["cloud dns"], "dns"),
    (&["cloud logging"], "logging"),
    (&["cloud kms"], "cloudkms"),
];

/// The services a question names, with the words that named them. `padded`
/// is the question's words joined by single spaces, with a space at each end.
pub fn services_in(padded: &str) -> Vec<(&'static str, Vec<String>)> {
    let mut out: Vec<(&'static str, Vec<String>)> = Vec::new();
    for (names, service) in SERVICES {
        for name in *names {
            if padded.contains(&format!(" {name} ")) && !out.iter().any(|(s, _)| s == service) {
                out.push((service, name.split(' ').map(String::from).collect()));
            }
        }
    }
    out
}

/// The service of an action, as the log names it: the prefix of a
/// CloudTrail `service:Operation`, or for GCP the record's own
/// `protoPayload.serviceName` (`cloudkms.googleapis.com` is KMS), else the
/// service part of the method (`storage.objects.get`).
pub fn service_of(action: &str, source: &str, gcp_service_name: Option<&str>) -> Option<String> {
    if let Some((service, _)) = action.split_once(':') {
        return Some(service.to_lowercase());
    }
    if source != "gcp-audit" {
        return None;
    }
    if let Some(name) = gcp_service_name {
        let short = name.strip_suffix(".googleapis.com").unwrap_or(name);
        // Google prefixes some services with "cloud" (cloudkms); questions
        // name them without it.
        let short = match short {
            "cloudkms" => "kms",
            other => other,
        };
        return Some(short.to_lowercase());
    }
    // `google.iam.admin.v1.CreateServiceAccount` is IAM,
    // `v1.compute.instances.insert` compute, `storage.objects.get` storage.
    const PACKAGING: &[&str] = &["google", "cloud", "api", "devtools"];
    let parts: Vec<&str> = action.split('.').collect();
    if parts.len() < 2 {
        return None;
    }
    parts
        .iter()
        .find(|p| {
            let version = p.starts_with('v') && p[1..].starts_with(|c: char| c.is_ascii_digit());
            !PACKAGING.contains(p) && !version && p.starts_with(|c: char| c.is_ascii_lowercase())
        })
        .map(|p| p.to_string())
}

/// The platform an entry comes from, by the format it was ingested from.
pub fn platform_of(source: &str) -> &'static str {
    match source {
        "cloudtrail" => "aws",
        "k8s-audit" => "kubernetes",
        "gcp-audit" => "gcp",
        "github-audit" => "github",
        "okta" => "okta",
        "auditd" => "linux",
        _ => "other",
    }
}

/// What a user agent says about the client: the tool (a CLI, the console,
/// an SDK...) and the operating system, two separate things a question can
/// name together ("kubectl on macOS").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Client {
    /// Any command-line tool.
    Cli,
    Kubectl,
    Gcloud,
    Console,
    Browser,
    /// Any SDK or HTTP library.
    Sdk,
    Boto,
    Terraform,
    MacOs,
    Windows,
    Linux,
}

impl Client {
    pub const ALL: [Client; 11] = [
        Client::Cli,
        Client::Kubectl,
        Client::Gcloud,
        Client::Console,
        Client::Browser,
        Client::Sdk,
        Client::Boto,
        Client::Terraform,
        Client::MacOs,
        Client::Windows,
        Client::Linux,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Client::Cli => "cli",
            Client::Kubectl => "kubectl",
            Client::Gcloud => "gcloud",
            Client::Console => "console",
            Client::Browser => "browser",
            Client::Sdk => "sdk",
            Client::Boto => "boto",
            Client::Terraform => "terraform",
            Client::MacOs => "macos",
            Client::Windows => "windows",
            Client::Linux => "linux",
        }
    }

    /// An operating system rather than a tool.
    pub fn is_os(&self) -> bool {
        matches!(self, Client::MacOs | Client::Windows | Client::Linux)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// Whether the user agent `ua` (lower-cased) shows this client.
    fn shown_by(self, ua: &str) -> bool {
        let has = |keys: &[&str]| keys.iter().any(|k| ua.contains(k));
        // The AWS CLI is built on botocore; it is the CLI, not an SDK.
        let boto = has(&["boto3"]) || (ua.contains("botocore") && !ua.contains("aws-cli"));
        match self {
            Client::Cli => has(&[
                "aws-cli",
                "kubectl",
                "google-cloud-sdk",
                "gcloud",
                "azure-cli",
            ]),
            Client::Kubectl => has(&["kubectl"]),
            Client::Gcloud => has(&["google-cloud-sdk", "gcloud"]),
            Client::Console => has(&["console", "signin.amazonaws.com"]),
            Client::Browser => has(&["mozilla", "chrome/", "safari/", "firefox/"]),
            Client::Sdk => boto || has(&["aws-sdk", "go-http-client", "python-requests"]),
            Client::Boto => boto,
            Client::Terraform => has(&["terraform"]),
            Client::MacOs => has(&["darwin", "macintosh", "mac os", "os/macos"]),
            Client::Windows => has(&["windows", "win32", "win64"]),
            Client::Linux => has(&["linux"]),
        }
    }
}

/// The clients one user agent shows, as a set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clients(u16);

impl Clients {
    pub fn of(user_agent: Option<&str>) -> Clients {
        let Some(ua) = user_agent else {
            return Clients(0);
        };
        let ua = ua.to_lowercase();
        Clients(
            Client::ALL
                .iter()
                .filter(|c| c.shown_by(&ua))
                .fold(0, |bits, c| bits | c.bit()),
        )
    }

    pub fn contains(&self, c: Client) -> bool {
        self.0 & c.bit() != 0
    }

    /// Whether these clients are what `wanted` asks for: any of its tools
    /// and any of its operating systems (both, when it names both).
    pub fn match_all(&self, wanted: &[Client]) -> bool {
        let dimension = |os: bool| {
            let mut asked = wanted.iter().filter(|c| c.is_os() == os).peekable();
            asked.peek().is_none() || asked.any(|c| self.contains(*c))
        };
        dimension(false) && dimension(true)
    }
}

/// Client words in questions and the clients they mean.
const CLIENT_WORDS: &[(&str, &[Client])] = &[
    ("cli", &[Client::Cli]),
    ("command line", &[Client::Cli]),
    ("kubectl", &[Client::Kubectl]),
    ("gcloud", &[Client::Gcloud]),
    ("console", &[Client::Console]),
    ("browser", &[Client::Browser, Client::Console]),
    ("web", &[Client::Browser, Client::Console]),
    ("sdk", &[Client::Sdk]),
    ("sdks", &[Client::Sdk]),
    ("boto", &[Client::Boto]),
    ("boto3", &[Client::Boto]),
    ("programmatic", &[Client::Sdk, Client::Cli]),
    ("programmatically", &[Client::Sdk, Client::Cli]),
    ("terraform", &[Client::Terraform]),
    ("mac os", &[Client::MacOs]),
    ("os x", &[Client::MacOs]),
    ("mac", &[Client::MacOs]),
    ("macos", &[Client::MacOs]),
    ("macbook", &[Client::MacOs]),
    ("osx", &[Client::MacOs]),
    ("darwin", &[Client::MacOs]),
    ("windows", &[Client::Windows]),
    ("linux", &[Client::Linux]),
    ("desktop", &[Client::MacOs, Client::Windows]),
    ("laptop", &[Client::MacOs, Client::Windows]),
];

/// The clients a question names, with the words that named them.
pub fn clients_in(padded: &str) -> (Vec<Client>, Vec<String>) {
    let mut clients = Vec::new();
    let mut used = Vec::new();
    for (phrase, cs) in CLIENT_WORDS {
        if padded.contains(&format!(" {phrase} ")) {
            for c in *cs {
                if !clients.contains(c) {
                    clients.push(*c);
                }
            }
            used.extend(phrase.split(' ').map(String::from));
        }
    }
    // "the AWS CLI" is the CLI; "the Kubernetes CLI" too.
    if clients.is_empty() && (padded.contains(" user agent ") || padded.contains(" useragent ")) {
        used.extend(["user", "agent", "useragent"].map(String::from));
    }
    (clients, used)
}

/// The kind of actor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    User,
    Role,
    /// A cloud service or a system component acting on its own.
    Service,
    /// A Kubernetes or GCP service account.
    ServiceAccount,
    /// A Kubernetes node.
    Node,
    Anonymous,
    Root,
}

impl ActorKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Role => "role",
            ActorKind::Service => "service",
            ActorKind::ServiceAccount => "service_account",
            ActorKind::Node => "node",
            ActorKind::Anonymous => "anonymous",
            ActorKind::Root => "root",
        }
    }

    /// The kind of an actor: the recorded identity type where the format
    /// records one (CloudTrail `userIdentity.type`, Okta `actor.type`),
    /// else the shape of its name.
    pub fn of(recorded: Option<&str>, id: &str) -> Option<ActorKind> {
        match recorded {
            Some("IAMUser" | "FederatedUser" | "User" | "IdentityCenterUser") => {
                return Some(ActorKind::User)
            }
            Some("AssumedRole" | "Role" | "WebIdentityUser" | "SAMLUser") => {
                return Some(ActorKind::Role)
            }
            Some(
                "AWSService" | "AWSAccount" | "SystemPrincipal" | "PublicClientApp" | "AppInstance",
            ) => return Some(ActorKind::Service),
            Some("Root") => return Some(ActorKind::Root),
            _ => {}
        }
        let id_lower = id.to_lowercase();
        if id_lower.is_empty() || id_lower == "unknown" {
            return None;
        }
        if id_lower == "system:anonymous" || id_lower == "anonymous" {
            return Some(ActorKind::Anonymous);
        }
        if id_lower.starts_with("system:serviceaccount:")
            || id_lower.ends_with(".gserviceaccount.com")
        {
            return Some(ActorKind::ServiceAccount);
        }
        if id_lower.starts_with("system:node:") {
            return Some(ActorKind::Node);
        }
        if id_lower.starts_with("system:")
            || id_lower.ends_with("[bot]")
            || id_lower.ends_with(".gserviceaccount.com")
            || id_lower.ends_with(".amazonaws.com")
        {
            return Some(ActorKind::Service);
        }
        if id_lower.contains(":assumed-role/") {
            return Some(ActorKind::Role);
        }
        if id_lower.ends_with(":root") {
            return Some(ActorKind::Root);
        }
        Some(ActorKind::User)
    }
}

/// Phrases that ask about a kind of actor. Single words that also name
/// resources ("role" in "the cluster role", "service" in "the payments
/// service") only count in these phrases.
const KIND_PHRASES: &[(&str, &[ActorKind])] = &[
    ("assumed roles", &[ActorKind::Role]),
    ("assumed role", &[ActorKind::Role]),
    ("assumed-role", &[ActorKind::Role]),
    ("role sessions", &[ActorKind::Role]),
    ("role session", &[ActorKind::Role]),
    ("iam roles", &[ActorKind::Role]),
    ("by roles", &[ActorKind::Role]),
    ("by a role", &[ActorKind::Role]),
    ("any role", &[ActorKind::Role]),
    ("which roles", &[ActorKind::Role]),
    ("what roles", &[ActorKind::Role]),
    ("roles", &[ActorKind::Role]),
    ("iam users", &[ActorKind::User]),
    ("iam user", &[ActorKind::User]),
    ("human users", &[ActorKind::User]),
    ("humans", &[ActorKind::User]),
    ("people", &[ActorKind::User]),
    ("by users", &[ActorKind::User]),
    ("by a user", &[ActorKind::User]),
    ("service accounts", &[ActorKind::ServiceAccount]),
    ("service account", &[ActorKind::ServiceAccount]),
    ("serviceaccounts", &[ActorKind::ServiceAccount]),
    ("aws services", &[ActorKind::Service]),
    ("aws service", &[ActorKind::Service]),
    ("service principals", &[ActorKind::Service]),
    ("bots", &[ActorKind::Service]),
    (
        "non human",
        &[
            ActorKind::Service,
            ActorKind::ServiceAccount,
            ActorKind::Node,
        ],
    ),
    (
        "machine identities",
        &[
            ActorKind::Service,
            ActorKind::ServiceAccount,
            ActorKind::Node,
        ],
    ),
    ("nodes", &[ActorKind::Node]),
    ("anonymous", &[ActorKind::Anonymous]),
    ("unauthenticated", &[ActorKind::Anonymous]),
    ("root account", &[ActorKind::Root]),
    ("root user", &[ActorKind::Root]),
    ("root", &[ActorKind::Root]),
];

/// The kinds of actor a question asks about, with the words that named
/// them, and the padded question without those phrases; longest phrases
/// first, so "assumed roles" is read once.
pub fn kinds_in(padded: &str) -> (Vec<ActorKind>, Vec<String>, String) {
    let mut kinds = Vec::new();
    let mut used = Vec::new();
    let mut rest = padded.to_string();
    let mut phrases: Vec<&(&str, &[ActorKind])> = KIND_PHRASES.iter().collect();
    phrases.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    for (phrase, these) in phrases {
        let needle = format!(" {phrase} ");
        // "cluster roles" are Kubernetes resources, not actors.
        if *phrase == "roles" && rest.contains(" cluster roles ") {
            continue;
        }
        if rest.contains(&needle) {
            rest = rest.replace(&needle, " ");
            for kind in *these {
                if !kinds.contains(kind) {
                    kinds.push(*kind);
                }
            }
            used.extend(phrase.split([' ', '-']).map(String::from));
        }
    }
    (kinds, used, rest)
}

/// A network a question names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// An address or a CIDR block written in the question.
    Block(IpNet),
    /// Private, loopback and link-local addresses.
    Internal,
    /// Everything else.
    External,
}

impl Network {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match self {
            Network::Block(net) => net.contains(ip),
            Network::Internal => is_internal(ip),
            Network::External => !is_internal(ip),
        }
    }

    pub fn text(&self) -> String {
        match self {
            Network::Block(net) => net.to_string(),
            Network::Internal => "internal".into(),
            Network::External => "external".into(),
        }
    }
}

/// Private, loopback and link-local addresses (IPv6: loopback, unique
/// local, link-local).
pub(crate) fn is_internal(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// The networks a question names: written addresses and CIDR blocks, and
/// "internal"/"external" networks.
pub fn networks_in(question: &str, padded: &str) -> (Vec<Network>, Vec<String>) {
    let mut nets = Vec::new();
    let mut used = Vec::new();
    for token in question.split_whitespace() {
        let t = token.trim_matches(|c: char| ",;?!()\"'".contains(c));
        let t = t.strip_suffix('.').unwrap_or(t);
        let net = t
            .parse::<IpNet>()
            .ok()
            .or_else(|| t.parse::<IpAddr>().ok().map(IpNet::from));
        if let Some(net) = net {
            nets.push(Network::Block(net.trunc()));
            used.extend(super::question::words(t));
        }
    }
    for (phrases, net) in [
        (
            &[
                " internal network ",
                " private network ",
                " internal ip ",
                " internal address",
                " inside our network ",
                " internal ips ",
            ][..],
            Network::Internal,
        ),
        (
            &[
                " external ",
                " outside our network ",
                " outside the network ",
                " public ip",
                " internet ",
                " from outside ",
            ][..],
            Network::External,
        ),
    ] {
        if phrases.iter().any(|p| padded.contains(p)) {
            nets.push(net);
            used.extend(
                [
                    "internal",
                    "private",
                    "external",
                    "outside",
                    "inside",
                    "public",
                    "internet",
                    "network",
                    "networks",
                    "ip",
                    "ips",
                    "address",
                    "addresses",
                ]
                .map(String::from),
            );
        }
    }
    (nets, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_say_what_they_do_in_every_format() {
        for (action, verb) in [
            ("s3:GetObject", Verb::Get),
            ("s3:ListObjects", Verb::List),
            ("ec2:DescribeInstances", Verb::Describe),
            ("secretsmanager:BatchGetSecretValue", Verb::Get),
            ("kms:ScheduleKeyDeletion", Verb::Delete),
            ("k8s.create", Verb::Create),
            ("k8s.watch", Verb::List),
            ("io.k8s.core.v1.pods.get", Verb::Get),
            ("repo.archived", Verb::Change),
            ("repo.add_member", Verb::Create),
            ("google.iam.admin.v1.CreateServiceAccount", Verb::Create),
            ("v1.compute.instances.delete", Verb::Delete),
            ("SetIamPolicy", Verb::Change),
            (
                "google.admin.AdminService.inboundSsoProfileDeleted",
                Verb::Delete,
            ),
            ("cloudtrail:StopLogging", Verb::Stop),
            ("sts:AssumeRole", Verb::Assume),
            ("user.session.start", Verb::Start),
            ("SYSCALL:execve", Verb::Start),
            ("SYSCALL:unlinkat", Verb::Delete),
        ] {
            assert_eq!(Verb::of_action(action), Some(verb), "{action}");
        }
        // "ScheduleKeyDeletion" schedules; its last word is a noun.
        assert_ne!(Verb::of_action("kms:ScheduleKeyDeletion"), Some(Verb::Get));
        assert_eq!(Verb::of_action("signin:ConsoleLogin"), None);
        assert_eq!(Verb::of_action(""), None);
        // A question's "modified" is a change of what exists; "changed"
        // is any write.
        assert_eq!(question_verbs("modified"), Some(&[Verb::Change][..]));
        assert_eq!(question_verbs("altered"), Some(&[Verb::Change][..]));
        assert_eq!(question_verbs("changed"), Some(ANY_WRITE));
    }

    #[test]
    fn services_and_platforms_come_from_the_action_and_the_format() {
        assert_eq!(
            service_of("s3:GetObject", "cloudtrail", None).as_deref(),
            Some("s3")
        );
        assert_eq!(
            service_of(
                "google.iam.admin.v1.CreateServiceAccount",
                "gcp-audit",
                None
            )
            .as_deref(),
            Some("iam")
        );
        assert_eq!(
            service_of("v1.compute.instances.insert", "gcp-audit", None).as_deref(),
            Some("compute")
        );
        assert_eq!(service_of("k8s.create", "k8s-audit", None), None);
        assert_eq!(
            service_of("Encrypt", "gcp-audit", Some("cloudkms.googleapis.com")).as_deref(),
            Some("kms")
        );
        assert_eq!(platform_of("k8s-audit"), "kubernetes");
        let s = services_in(" how many denied s3 or ec2 requests ");
        let names: Vec<&str> = s.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, vec!["s3", "ec2"]);
    }

    #[test]
    fn user_agents_name_their_clients() {
        let cli = Clients::of(Some(
            "[aws-cli/1.18.136 Python/3.8.5 Darwin/19.5.0 botocore/1.17.5]",
        ));
        assert!(cli.contains(Client::Cli) && cli.contains(Client::MacOs));
        assert!(
            !cli.contains(Client::Sdk),
            "the CLI's botocore is not an SDK"
        );
        let console = Clients::of(Some("console.ec2.amazonaws.com"));
        assert!(console.contains(Client::Console) && !console.contains(Client::Cli));
        assert!(Clients::of(Some("Boto3/1.26.0")).contains(Client::Sdk));
        assert_eq!(Clients::of(None), Clients::default());
        let (c, used) = clients_in(" what did pedro do from the aws cli ");
        assert_eq!(c, vec![Client::Cli]);
        assert!(used.contains(&"cli".to_string()));
    }

    #[test]
    fn actor_kinds_come_from_the_record_or_the_name() {
        assert_eq!(
            ActorKind::of(Some("AssumedRole"), "x"),
            Some(ActorKind::Role)
        );
        assert_eq!(
            ActorKind::of(None, "system:serviceaccount:kube-system:x"),
            Some(ActorKind::ServiceAccount)
        );
        assert_eq!(
            ActorKind::of(None, "system:kube-scheduler"),
            Some(ActorKind::Service)
        );
        assert_eq!(
            ActorKind::of(None, "system:anonymous"),
            Some(ActorKind::Anonymous)
        );
        assert_eq!(ActorKind::of(None, "minikube-user"), Some(ActorKind::User));
        let (k, _, rest) = kinds_in(" what did assumed roles do ");
        assert_eq!(k, vec![ActorKind::Role]);
        assert_eq!(rest, " what did do ");
        let (k, _, _) = kinds_in(" who created the some reader cluster roles ");
        assert!(k.is_empty(), "{k:?}");
    }

    #[test]
    fn networks_are_written_blocks_or_internal_and_external() {
        let (n, _) = networks_in("requests from 10.0.0.0/8?", " requests from 10 0 0 0 8 ");
        assert_eq!(n.len(), 1);
        assert!(n[0].contains(&"10.1.2.3".parse().unwrap()));
        assert!(!n[0].contains(&"11.1.2.3".parse().unwrap()));
        let (n, _) = networks_in("calls from 1.2.3.4.", " calls from 1 2 3 4 ");
        assert!(n[0].contains(&"1.2.3.4".parse().unwrap()));
        let (n, _) = networks_in("x", " logins from outside our network ");
        assert_eq!(n, vec![Network::External]);
        assert!(n[0].contains(&"1.2.3.4".parse().unwrap()));
        assert!(!n[0].contains(&"192.168.1.1".parse().unwrap()));
    }
}
