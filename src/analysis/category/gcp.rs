//! Google Cloud audit logs: `action` is `protoPayload.methodName`, `details`
//! the LogEntry.
//!
//! Method names are decided by service (IAM, credentials, Storage, KMS,
//! logging, compute, GKE); when a record has no method name, or the method
//! is a Deployment Manager deployment that acts for the caller, the
//! permission it exercised (`authorizationInfo[].permission`) decides.

use super::kubernetes::{self, Request};
use super::{verdict, Category, RuleVerdict};
use crate::analysis::details::{array_at, field, str_at, str_field, value_at};
use crate::ledger::event::{Event, Outcome};
use serde_json::Value;

use Category::*;

pub(super) fn rule(event: &Event) -> Option<RuleVerdict> {
    let payload = field(&event.details, &["protoPayload"]).unwrap_or(&Value::Null);
    if let Some(v) = bigquery_metadata(payload) {
        return Some(v);
    }
    let method_name = str_at(payload, &["methodName"]);
    let method = method_name.unwrap_or(&event.action);
    if method_name.is_none() || method.contains("deploymentmanager") {
        if let Some(v) = by_permission(payload, event.outcome) {
            return Some(v);
        }
    }
    by_method(method, payload, event)
}

/// BigQuery reports table reads and deletions in its own metadata, whatever
/// job method carried them.
fn bigquery_metadata(payload: &Value) -> Option<RuleVerdict> {
    let meta = value_at(payload, &["metadata"])?;
    if value_at(meta, &["tableDeletion"]).is_some() {
        return verdict(DataDeletion, "gcp.bigquery_table_deleted");
    }
    if value_at(meta, &["tableDataRead"]).is_some() {
        return verdict(DataAccess, "gcp.bigquery_read");
    }
    None
}

/// The last dotted segment of a method name (`google.iam.admin.v1.CreateRole`
/// → `CreateRole`).
fn last_segment(method: &str) -> &str {
    method.rsplit('.').next().unwrap_or(method)
}

/// A credential request's category. A refusal in `authorizationInfo`
/// (`granted: false`) counts even when `status` is empty, as some records
/// have it.
fn login(payload: &Value, outcome: Outcome, rule: &'static str) -> Option<RuleVerdict> {
    let refused_here = array_at(payload, &["authorizationInfo"])
        .iter()
        .any(|a| value_at(a, &["granted"]) == Some(&Value::Bool(false)));
    match outcome {
        _ if refused_here => verdict(FailedLogin, rule),
        Outcome::Success => verdict(AuthSuccess, rule),
        Outcome::Failure | Outcome::Denied => verdict(FailedLogin, rule),
        Outcome::Unknown => None,
    }
}

/// `io.k8s.{group}.{version}.{resource}[.{subresource}].{verb}`, as GKE
/// writes method names and permissions.
pub(crate) fn gke_request(name: &str) -> Option<Request<'_>> {
    let parts: Vec<&str> = name.strip_prefix("io.k8s.")?.split('.').collect();
    let version = parts.iter().position(|p| is_api_version(p))?;
    match &parts[version + 1..] {
        [resource, verb] => Some(Request {
            verb,
            resource,
            subresource: "",
        }),
        [resource, subresource, verb] => Some(Request {
            verb,
            resource,
            subresource,
        }),
        _ => None,
    }
}

/// `v1`, `v1beta1`, `v2alpha1`.
fn is_api_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let after_major = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    if after_major.len() == rest.len() {
        return false;
    }
    after_major.is_empty()
        || ["alpha", "beta"].iter().any(|tag| {
            after_major
                .strip_prefix(tag)
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
}

fn by_method(method: &str, payload: &Value, event: &Event) -> Option<RuleVerdict> {
    if let Some(request) = gke_request(method) {
        return kubernetes::by_request(&request);
    }
    let last = last_segment(method);
    let lower = method.to_ascii_lowercase();
    if lower.contains("setiampolicy") || lower.contains("setiampermissions") {
        return verdict(PrivilegeChange, "gcp.iam_policy_set");
    }
    match last {
        "GenerateAccessToken" | "GenerateIdToken" | "SignJwt" | "SignBlob" => {
            return login(payload, event.outcome, "gcp.service_account_credentials")
        }
        "CreateServiceAccountKey"
        | "DeleteServiceAccountKey"
        | "UploadServiceAccountKey"
        | "DisableServiceAccountKey"
        | "EnableServiceAccountKey" => return verdict(PrivilegeChange, "gcp.service_account_key"),
        "CreateServiceAccount"
        | "DeleteServiceAccount"
        | "DisableServiceAccount"
        | "EnableServiceAccount"
        | "UndeleteServiceAccount"
        | "PatchServiceAccount"
        | "UpdateServiceAccount" => return verdict(AdminChange, "gcp.service_account"),
        "InsertProjectOwnershipInvite" => return verdict(PrivilegeChange, "gcp.owner_invite"),
        _ => {}
    }
    if method.starts_with("google.iam.admin.")
        && matches!(
            last,
            "CreateRole" | "UpdateRole" | "DeleteRole" | "UndeleteRole"
        )
    {
        return verdict(PrivilegeChange, "gcp.custom_role");
    }
    let api_key = method.starts_with("google.api.apikeys.")
        && last.ends_with("Key")
        && !last.starts_with("Get");
    let hmac_key = method.starts_with("storage.hmacKeys.") && !matches!(last, "get" | "list");
    if api_key || hmac_key {
        return verdict(PrivilegeChange, "gcp.api_key");
    }
    if method.contains("WorkforcePools.")
        || method.contains("WorkloadIdentityPools.")
        || (method.starts_with("google.admin.") && lower.contains("sso"))
    {
        return verdict(AdminChange, "gcp.identity_federation");
    }
    // Storage decides its own methods, unsure ones included: an object read
    // is never mere metadata.
    if method.starts_with("storage.objects.") || method.starts_with("storage.buckets.") {
        return storage(method, payload, event);
    }
    data_services(method, last)
        .or_else(|| compute_metadata(method, payload))
        .or_else(|| infrastructure(method, last))
}

fn storage(method: &str, payload: &Value, event: &Event) -> Option<RuleVerdict> {
    match method {
        "storage.objects.get" | "storage.objects.list" => {
            // A copy records the read with a destination; another project's
            // bucket as destination means the data left. `projects/_/`
            // names no project, so the copy's reach is unknown.
            let destination = str_at(payload, &["metadata", "destination"]);
            let project = str_field(&event.details, &["resource", "labels", "project_id"]);
            match (destination.map(project_of), project) {
                (None, _) => verdict(DataAccess, "gcp.storage_read"),
                (Some(Some(to)), Some(from)) if to == from => {
                    verdict(DataAccess, "gcp.storage_read")
                }
                (Some(Some(_)), Some(_)) => verdict(DataExport, "gcp.storage_copied_out"),
                _ => None,
            }
        }
        "storage.objects.delete" | "storage.buckets.delete" => {
            verdict(DataDeletion, "gcp.storage_deleted")
        }
        "storage.buckets.create" | "storage.buckets.update" | "storage.buckets.patch" => {
            verdict(ConfigChange, "gcp.storage_bucket_settings")
        }
        "storage.buckets.get" | "storage.buckets.list" | "storage.buckets.getIamPolicy" => {
            verdict(Other, "gcp.read_metadata")
        }
        _ => None,
    }
}

/// The project named in a `projects/{project}/...` path; `_` names none.
fn project_of(path: &str) -> Option<&str> {
    let project = path.strip_prefix("projects/")?.split('/').next()?;
    (!project.is_empty() && project != "_").then_some(project)
}

fn data_services(method: &str, last: &str) -> Option<RuleVerdict> {
    if method.contains("secretmanager") {
        return match last {
            "AccessSecretVersion" => verdict(DataAccess, "gcp.secret_read"),
            "DestroySecretVersion" | "DeleteSecret" => verdict(DataDeletion, "gcp.secret_deleted"),
            _ => None,
        };
    }
    if method.contains("cloudkms") || method.starts_with("google.cloud.kms.") || is_kms_call(last) {
        return match last {
            "Decrypt" | "AsymmetricDecrypt" => verdict(DataAccess, "gcp.kms_decrypt"),
            "DestroyCryptoKeyVersion" => verdict(DataDeletion, "gcp.kms_key_destroyed"),
            "Encrypt" | "AsymmetricSign" | "MacSign" | "MacVerify" | "GenerateRandomBytes" => {
                verdict(Other, "gcp.kms_routine_use")
            }
            "UpdateCryptoKeyVersion"
            | "CreateCryptoKey"
            | "UpdateCryptoKey"
            | "UpdateCryptoKeyPrimaryVersion"
            | "RestoreCryptoKeyVersion"
            | "CreateKeyRing" => verdict(ConfigChange, "gcp.kms_settings"),
            _ => None,
        };
    }
    if method.starts_with("google.logging.v2.LoggingServiceV2.") && last == "DeleteLog" {
        return verdict(DataDeletion, "gcp.log_deleted");
    }
    match method {
        "cloudsql.instances.export" => verdict(DataExport, "gcp.sql_export"),
        "cloudsql.instances.delete" | "cloudsql.backupRuns.delete" => {
            verdict(DataDeletion, "gcp.sql_deleted")
        }
        _ => None,
    }
}

/// KMS method names are bare (`Decrypt`, `UpdateCryptoKeyVersion`) in audit
/// logs, with the service only in `serviceName`.
fn is_kms_call(last: &str) -> bool {
    last.contains("CryptoKey")
        || matches!(
            last,
            "Decrypt" | "AsymmetricDecrypt" | "Encrypt" | "AsymmetricSign" | "CreateKeyRing"
        )
}

/// Setting instance or project metadata is configuration, unless it adds
/// SSH keys: then it grants login to the instances.
fn compute_metadata(method: &str, payload: &Value) -> Option<RuleVerdict> {
    let last = last_segment(method);
    if !method.contains("compute") || !matches!(last, "setMetadata" | "setCommonInstanceMetadata") {
        return None;
    }
    let delta = value_at(payload, &["metadata", "instanceMetadataDelta"])
        .or_else(|| value_at(payload, &["metadata", "projectMetadataDelta"]));
    let ssh = delta.is_some_and(|d| {
        ["addedMetadataKeys", "modifiedMetadataKeys"]
            .iter()
            .flat_map(|k| array_at(d, &[k]))
            .any(|key| matches!(key.as_str(), Some("ssh-keys" | "sshKeys")))
    });
    if ssh {
        verdict(PrivilegeChange, "gcp.instance_ssh_keys")
    } else {
        verdict(ConfigChange, "gcp.infrastructure_change")
    }
}

/// Method-name prefixes of services whose writes change infrastructure or
/// security settings.
const INFRASTRUCTURE_PREFIXES: &[&str] = &[
    "v1.compute.",
    "beta.compute.",
    "compute.",
    "dns.",
    "google.appengine.",
    "google.cloud.run.",
    "google.cloud.functions.",
    "google.container.",
    "google.devtools.cloudbuild.",
    "v2.deploymentmanager.",
    "deploymentmanager.",
    "google.logging.v2.ConfigServiceV2.",
    "google.pubsub.",
    "cloudsql.",
    "google.cloud.sql.",
    "google.cloud.resourcemanager.",
];

const WRITE_PREFIXES: &[&str] = &[
    "create",
    "insert",
    "update",
    "patch",
    "delete",
    "replace",
    "set",
    "batchupdate",
    "enable",
    "disable",
    "start",
    "stop",
    "reset",
    "deploy",
    "rollback",
    "attach",
    "detach",
    "add",
    "remove",
    "resize",
    "suspend",
    "resume",
];

const READ_PREFIXES: &[&str] = &[
    "get",
    "list",
    "aggregatedlist",
    "search",
    "testiampermissions",
];

fn infrastructure(method: &str, last: &str) -> Option<RuleVerdict> {
    let lower = last.to_ascii_lowercase();
    // Any service's plain reads return settings or metadata; data reads were
    // decided above.
    if READ_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return verdict(Other, "gcp.read_metadata");
    }
    let infrastructure = INFRASTRUCTURE_PREFIXES
        .iter()
        .any(|p| method.starts_with(p))
        || method.contains(".Firewall.")
        || method.contains(".compute.");
    if !infrastructure || !WRITE_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return None;
    }
    if method.contains("compute")
        && lower == "delete"
        && (method.contains(".disks.") || method.contains(".snapshots."))
    {
        return verdict(DataDeletion, "gcp.disk_deleted");
    }
    verdict(ConfigChange, "gcp.infrastructure_change")
}

/// Decides from the permission the request exercised, for records without a
/// method name and for deployments acting for their caller.
fn by_permission(payload: &Value, outcome: Outcome) -> Option<RuleVerdict> {
    let permission = array_at(payload, &["authorizationInfo"])
        .iter()
        .find_map(|a| str_at(a, &["permission"]))?;
    if let Some(request) = gke_request(permission) {
        return kubernetes::by_request(&request);
    }
    if permission.ends_with(".setIamPolicy") {
        return verdict(PrivilegeChange, "gcp.permission_iam_policy");
    }
    match permission {
        "iam.serviceAccountKeys.create"
        | "iam.serviceAccountKeys.delete"
        | "storage.hmacKeys.create"
        | "apikeys.keys.create" => verdict(PrivilegeChange, "gcp.permission_credentials"),
        "iam.serviceAccounts.getAccessToken"
        | "iam.serviceAccounts.signJwt"
        | "iam.serviceAccounts.signBlob"
        | "iam.serviceAccounts.getOpenIdToken" => {
            login(payload, outcome, "gcp.service_account_credentials")
        }
        "storage.objects.get" | "storage.objects.list" | "bigquery.tables.getData" => {
            verdict(DataAccess, "gcp.permission_data_read")
        }
        "storage.objects.delete" | "bigquery.tables.delete" => {
            verdict(DataDeletion, "gcp.permission_data_delete")
        }
        _ => {
            let service = permission.split('.').next()?;
            let verb = permission.rsplit('.').next()?;
            let infra = [
                "compute",
                "cloudfunctions",
                "cloudbuild",
                "run",
                "container",
                "dns",
                "appengine",
                "deploymentmanager",
                "logging",
            ];
            (infra.contains(&service) && WRITE_PREFIXES.iter().any(|p| verb.starts_with(p)))
                .then_some(RuleVerdict {
                    category: ConfigChange,
                    rule: "gcp.permission_infrastructure_change",
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gke_method_names_parse_to_requests() {
        let r = gke_request("io.k8s.core.v1.pods.exec.create").unwrap();
        assert_eq!(
            (r.resource, r.subresource, r.verb),
            ("pods", "exec", "create")
        );
        let r = gke_request("io.k8s.authorization.rbac.v1.clusterrolebindings.create").unwrap();
        assert_eq!(
            (r.resource, r.subresource, r.verb),
            ("clusterrolebindings", "", "create")
        );
        let r = gke_request("io.k8s.batch.v1beta1.cronjobs.patch").unwrap();
        assert_eq!(r.resource, "cronjobs");
        assert!(gke_request("io.k8s.core.pods.create").is_none());
        assert!(gke_request("v1.compute.instances.insert").is_none());
    }

    #[test]
    fn api_versions_are_recognised() {
        for v in ["v1", "v1beta1", "v2alpha3", "v10"] {
            assert!(is_api_version(v), "{v}");
        }
        for v in ["v", "vbeta1", "v1beta", "version", "1", "v1x"] {
            assert!(!is_api_version(v), "{v}");
        }
    }
}
