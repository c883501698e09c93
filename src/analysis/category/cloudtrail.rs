//! AWS CloudTrail: `action` is `{service}:{eventName}`, `details` the
//! CloudTrail record.
//!
//! Sign-in and STS calls decide logins; IAM, S3, secrets, keys and the
//! database and compute services have per-call tables; other services get
//! only the verb rules that hold across AWS (Describe/List read metadata;
//! writes to infrastructure services change configuration). Anything else is
//! left to the model.

use super::{verdict, Category, RuleVerdict};
use crate::analysis::details::{array_at, field, str_at, str_field, value_at};
use crate::analysis::words::{any, words};
use crate::ledger::event::{Event, Outcome};
use serde_json::Value;

use Category::*;

pub(super) fn rule(event: &Event) -> Option<RuleVerdict> {
    let (service, name) = api_call(event)?;
    let name = without_api_version(name);
    let refused = matches!(event.outcome, Outcome::Failure | Outcome::Denied);
    match service {
        "signin" => sign_in(name, event, refused),
        "sts" => sts(name, event.outcome),
        "sso" | "sso-oauth" if name == "CreateToken" => {
            login(event.outcome, "cloudtrail.sso_token")
        }
        "iam" => iam(name),
        "s3" => s3(name),
        "secretsmanager" => secrets_manager(name),
        "ssm" => ssm(name),
        "kms" => kms(name),
        "ec2" => ec2(name, event),
        "ec2-instance-connect" if name.starts_with("Send") => {
            verdict(PrivilegeChange, "cloudtrail.instance_ssh_key")
        }
        "rds" => rds(name, event),
        "dynamodb" => dynamodb(name),
        "athena" if matches!(name, "StartQueryExecution" | "GetQueryResults") => {
            verdict(DataAccess, "cloudtrail.athena_query")
        }
        "logs" => logs(name),
        // Resource policies on functions: configuration, as for buckets.
        "lambda" if name.ends_with("Permission") => {
            verdict(ConfigChange, "cloudtrail.resource_policy")
        }
        "securityhub" if name == "BatchImportFindings" => {
            verdict(SecurityAlert, "cloudtrail.securityhub_findings_imported")
        }
        _ => None,
    }
    .or_else(|| by_verb(service, name))
}

/// `(service, eventName)` from the action, or from the record itself when
/// the action does not have the `service:name` shape.
fn api_call(event: &Event) -> Option<(&str, &str)> {
    if let Some((service, name)) = event.action.split_once(':') {
        return Some((service, name));
    }
    let source = str_field(&event.details, &["eventSource"])?;
    let name = str_field(&event.details, &["eventName"])?;
    Some((source.trim_end_matches(".amazonaws.com"), name))
}

/// Lambda's event names carry the API version: an eight-digit date and
/// sometimes `v{n}` (`UpdateFunctionCode20150331v2`).
fn without_api_version(name: &str) -> &str {
    let is_digit = |c: char| c.is_ascii_digit();
    let trailing = name.trim_end_matches(is_digit);
    let dated = match trailing.strip_suffix('v') {
        Some(before_v) if trailing.len() < name.len() => before_v,
        _ => name,
    };
    let base = dated.trim_end_matches(is_digit);
    if dated.len() - base.len() == 8 && !base.is_empty() {
        base
    } else {
        name
    }
}

fn login(outcome: Outcome, rule: &'static str) -> Option<RuleVerdict> {
    match outcome {
        Outcome::Success => verdict(AuthSuccess, rule),
        Outcome::Failure | Outcome::Denied => verdict(FailedLogin, rule),
        Outcome::Unknown => None,
    }
}

fn sign_in(name: &str, event: &Event, refused: bool) -> Option<RuleVerdict> {
    match name {
        "ConsoleLogin" | "ExternalIdPDirectoryLogin" | "CheckMfa" | "SwitchRole" => {
            // The result is in responseElements.{eventName}, not in errorCode.
            match str_field(&event.details, &["responseElements", name]) {
                Some("Failure") => verdict(FailedLogin, "cloudtrail.console_login_failed"),
                Some("Success") if !refused => verdict(AuthSuccess, "cloudtrail.console_login"),
                _ if refused => verdict(FailedLogin, "cloudtrail.console_login_failed"),
                _ => None,
            }
        }
        "GetSigninToken" => login(event.outcome, "cloudtrail.signin_token"),
        "PasswordUpdated" => verdict(AdminChange, "cloudtrail.password_changed"),
        _ => None,
    }
}

fn sts(name: &str, outcome: Outcome) -> Option<RuleVerdict> {
    match name {
        "AssumeRole"
        | "AssumeRoleWithSAML"
        | "AssumeRoleWithWebIdentity"
        | "AssumeRoot"
        | "GetSessionToken"
        | "GetFederationToken" => login(outcome, "cloudtrail.session_credentials"),
        "GetCallerIdentity" | "GetAccessKeyInfo" | "DecodeAuthorizationMessage" => {
            verdict(Other, "cloudtrail.identity_lookup")
        }
        _ => None,
    }
}

const IAM_PRIVILEGE: &[&str] = &[
    "AddUserToGroup",
    "RemoveUserFromGroup",
    "CreateAccessKey",
    "UpdateAccessKey",
    "DeleteAccessKey",
    "CreateLoginProfile",
    "CreatePolicy",
    "CreatePolicyVersion",
    "DeletePolicy",
    "DeletePolicyVersion",
    "SetDefaultPolicyVersion",
    "UpdateAssumeRolePolicy",
    "PutUserPermissionsBoundary",
    "PutRolePermissionsBoundary",
    "DeleteUserPermissionsBoundary",
    "DeleteRolePermissionsBoundary",
    "UploadSSHPublicKey",
    "UpdateSSHPublicKey",
    "DeleteSSHPublicKey",
    "CreateServiceSpecificCredential",
    "ResetServiceSpecificCredential",
    "UploadSigningCertificate",
    "AddRoleToInstanceProfile",
    "RemoveRoleFromInstanceProfile",
];

const IAM_ADMIN: &[&str] = &[
    "CreateUser",
    "DeleteUser",
    "UpdateUser",
    "CreateGroup",
    "DeleteGroup",
    "UpdateGroup",
    "CreateRole",
    "DeleteRole",
    "UpdateRole",
    "UpdateRoleDescription",
    "CreateServiceLinkedRole",
    "DeleteServiceLinkedRole",
    "UpdateLoginProfile",
    "DeleteLoginProfile",
    "ChangePassword",
    "CreateVirtualMFADevice",
    "DeleteVirtualMFADevice",
    "EnableMFADevice",
    "DeactivateMFADevice",
    "ResyncMFADevice",
    "CreateSAMLProvider",
    "UpdateSAMLProvider",
    "DeleteSAMLProvider",
    "CreateOpenIDConnectProvider",
    "DeleteOpenIDConnectProvider",
    "UpdateOpenIDConnectProviderThumbprint",
    "CreateInstanceProfile",
    "DeleteInstanceProfile",
    "CreateAccountAlias",
    "DeleteAccountAlias",
];

fn iam(name: &str) -> Option<RuleVerdict> {
    // Attach*/Detach*/Put*/Delete*Policy on users, groups and roles: the
    // identity policies that say what a principal may do.
    let identity_policy = name.ends_with("Policy")
        && ["Attach", "Detach", "Put", "Delete"]
            .iter()
            .any(|verb| name.starts_with(verb))
        && name != "DeleteAccountPasswordPolicy";
    if identity_policy || IAM_PRIVILEGE.contains(&name) {
        return verdict(PrivilegeChange, "cloudtrail.iam_permissions");
    }
    if IAM_ADMIN.contains(&name) {
        return verdict(AdminChange, "cloudtrail.iam_identity");
    }
    if matches!(
        name,
        "UpdateAccountPasswordPolicy"
            | "DeleteAccountPasswordPolicy"
            | "SetSecurityTokenServicePreferences"
    ) {
        return verdict(ConfigChange, "cloudtrail.iam_account_settings");
    }
    if ["Get", "List", "Generate", "Simulate"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        return verdict(Other, "cloudtrail.read_metadata");
    }
    None
}

fn s3(name: &str) -> Option<RuleVerdict> {
    match name {
        "GetObject"
        | "GetObjectVersion"
        | "SelectObjectContent"
        | "GetObjectTorrent"
        | "ListObjects"
        | "ListObjectsV2"
        | "ListObjectVersions"
        | "ListBucket" => verdict(DataAccess, "cloudtrail.s3_read"),
        "DeleteObject" | "DeleteObjects" | "DeleteObjectVersion" | "DeleteBucket" => {
            verdict(DataDeletion, "cloudtrail.s3_delete")
        }
        "CreateBucket"
        | "PutPublicAccessBlock"
        | "DeletePublicAccessBlock"
        | "PutAccountPublicAccessBlock"
        | "DeleteAccountPublicAccessBlock"
        | "PutObjectAcl"
        | "PutObjectLockConfiguration" => verdict(ConfigChange, "cloudtrail.s3_bucket_settings"),
        _ if name.starts_with("PutBucket") || name.starts_with("DeleteBucket") => {
            verdict(ConfigChange, "cloudtrail.s3_bucket_settings")
        }
        _ if name.starts_with("GetBucket")
            || name.starts_with("HeadBucket")
            || name.starts_with("HeadObject")
            || matches!(
                name,
                "ListBuckets"
                    | "ListAllMyBuckets"
                    | "GetObjectAcl"
                    | "GetObjectTagging"
                    | "GetPublicAccessBlock"
                    | "GetAccountPublicAccessBlock"
            ) =>
        {
            verdict(Other, "cloudtrail.read_metadata")
        }
        // CopyObject may stay in the account or leave it; PutObject writes data.
        _ => None,
    }
}

fn secrets_manager(name: &str) -> Option<RuleVerdict> {
    match name {
        "GetSecretValue" | "BatchGetSecretValue" => verdict(DataAccess, "cloudtrail.secret_read"),
        "DeleteSecret" => verdict(DataDeletion, "cloudtrail.secret_deleted"),
        "CreateSecret"
        | "UpdateSecret"
        | "PutSecretValue"
        | "RotateSecret"
        | "RestoreSecret"
        | "PutResourcePolicy"
        | "DeleteResourcePolicy"
        | "UpdateSecretVersionStage" => verdict(ConfigChange, "cloudtrail.secret_settings"),
        _ => None,
    }
}

fn ssm(name: &str) -> Option<RuleVerdict> {
    match name {
        "GetParameter" | "GetParameters" | "GetParametersByPath" | "GetParameterHistory" => {
            verdict(DataAccess, "cloudtrail.parameter_read")
        }
        "DeleteParameter" | "DeleteParameters" => {
            verdict(DataDeletion, "cloudtrail.parameter_deleted")
        }
        // An interactive shell on an instance, like `kubectl exec`.
        "StartSession" | "ResumeSession" => verdict(PrivilegeChange, "cloudtrail.ssm_session"),
        _ => None,
    }
}

fn kms(name: &str) -> Option<RuleVerdict> {
    match name {
        "Decrypt" => verdict(DataAccess, "cloudtrail.kms_decrypt"),
        // Once the key is gone, data encrypted under it is unrecoverable.
        "ScheduleKeyDeletion" => verdict(DataDeletion, "cloudtrail.kms_key_deletion"),
        "PutKeyPolicy" => verdict(ConfigChange, "cloudtrail.resource_policy"),
        "CreateKey"
        | "DisableKey"
        | "EnableKey"
        | "EnableKeyRotation"
        | "DisableKeyRotation"
        | "CancelKeyDeletion"
        | "UpdateKeyDescription" => verdict(ConfigChange, "cloudtrail.kms_settings"),
        "CreateGrant" | "RetireGrant" | "RevokeGrant" => {
            verdict(PrivilegeChange, "cloudtrail.kms_grant")
        }
        "Encrypt"
        | "GenerateDataKey"
        | "GenerateDataKeyWithoutPlaintext"
        | "Sign"
        | "Verify"
        | "ReEncrypt"
        | "GenerateRandom" => verdict(Other, "cloudtrail.kms_routine_use"),
        _ => None,
    }
}

fn ec2(name: &str, event: &Event) -> Option<RuleVerdict> {
    let params = field(&event.details, &["requestParameters"]).unwrap_or(&Value::Null);
    match name {
        "GetPasswordData" | "GetConsoleOutput" | "GetConsoleScreenshot" => {
            verdict(DataAccess, "cloudtrail.instance_data_read")
        }
        "DescribeInstanceAttribute" if str_at(params, &["attribute"]) == Some("userData") => {
            verdict(DataAccess, "cloudtrail.instance_data_read")
        }
        "ModifySnapshotAttribute" | "ModifyImageAttribute" => {
            let permission = ["createVolumePermission", "launchPermission"]
                .iter()
                .find_map(|p| value_at(params, &[p]));
            match permission {
                Some(p) if !array_at(p, &["add", "items"]).is_empty() => {
                    verdict(DataExport, "cloudtrail.snapshot_shared")
                }
                Some(_) => verdict(ConfigChange, "cloudtrail.snapshot_sharing_settings"),
                None => None,
            }
        }
        "DeleteSnapshot" | "DeleteVolume" => verdict(DataDeletion, "cloudtrail.volume_deleted"),
        "CreateKeyPair" | "ImportKeyPair" | "DeleteKeyPair" => {
            verdict(PrivilegeChange, "cloudtrail.ssh_key_pair")
        }
        // CopySnapshot and CopyImage may cross regions or accounts: unsure.
        _ => None,
    }
}

fn rds(name: &str, event: &Event) -> Option<RuleVerdict> {
    let params = field(&event.details, &["requestParameters"]).unwrap_or(&Value::Null);
    match name {
        "DeleteDBInstance"
        | "DeleteDBCluster"
        | "DeleteDBSnapshot"
        | "DeleteDBClusterSnapshot"
        | "DeleteDBInstanceAutomatedBackup"
        | "DeleteDBClusterAutomatedBackup" => verdict(DataDeletion, "cloudtrail.database_deleted"),
        "StartExportTask" => verdict(DataExport, "cloudtrail.database_export"),
        "CopyDBSnapshot" | "CopyDBClusterSnapshot" => {
            // Only a copy from another region is known to move the data.
            str_at(params, &["sourceRegion"])?;
            verdict(DataExport, "cloudtrail.snapshot_copied_cross_region")
        }
        "ModifyDBSnapshotAttribute" | "ModifyDBClusterSnapshotAttribute" => {
            if array_at(params, &["valuesToAdd"]).is_empty() {
                verdict(ConfigChange, "cloudtrail.snapshot_sharing_settings")
            } else {
                verdict(DataExport, "cloudtrail.snapshot_shared")
            }
        }
        "AddRoleToDBCluster"
        | "AddRoleToDBInstance"
        | "RemoveRoleFromDBCluster"
        | "RemoveRoleFromDBInstance" => verdict(PrivilegeChange, "cloudtrail.database_role"),
        "DownloadDBLogFilePortion" | "DownloadCompleteDBLogFile" => {
            verdict(DataAccess, "cloudtrail.database_log_read")
        }
        _ => None,
    }
}

fn dynamodb(name: &str) -> Option<RuleVerdict> {
    match name {
        "GetItem" | "BatchGetItem" | "Query" | "Scan" => {
            verdict(DataAccess, "cloudtrail.table_read")
        }
        "DeleteTable" | "DeleteBackup" | "DeleteItem" => {
            verdict(DataDeletion, "cloudtrail.table_deleted")
        }
        "ExportTableToPointInTime" => verdict(DataExport, "cloudtrail.table_export"),
        _ => None,
    }
}

fn logs(name: &str) -> Option<RuleVerdict> {
    match name {
        "GetLogEvents" | "FilterLogEvents" | "StartQuery" | "GetQueryResults" => {
            verdict(DataAccess, "cloudtrail.log_read")
        }
        "DeleteLogGroup" | "DeleteLogStream" => verdict(DataDeletion, "cloudtrail.log_deleted"),
        "CreateExportTask" => verdict(DataExport, "cloudtrail.log_export"),
        _ => None,
    }
}

/// Services whose write calls change infrastructure or security-control
/// settings. Services that store or move data (SQS, SNS, S3 objects,
/// CodeCommit, ...) are absent on purpose: their writes are data, not
/// configuration, and the model decides them.
const INFRASTRUCTURE_SERVICES: &[&str] = &[
    "ec2",
    "lambda",
    "rds",
    "dynamodb",
    "elasticloadbalancing",
    "autoscaling",
    "cloudformation",
    "codebuild",
    "codepipeline",
    "ecs",
    "eks",
    "ecr",
    "route53",
    "cloudfront",
    "apigateway",
    "elasticache",
    "redshift",
    "elasticfilesystem",
    "backup",
    "bedrock",
    "sagemaker",
    "waf",
    "waf-regional",
    "wafv2",
    "network-firewall",
    "config",
    "cloudtrail",
    "guardduty",
    "securityhub",
    "inspector2",
    "access-analyzer",
    "macie2",
    "detective",
    "kms",
    "secretsmanager",
    "ssm",
    "events",
    "logs",
    "monitoring",
];

const WRITE_VERBS: &[&str] = &[
    "Create",
    "Update",
    "Delete",
    "Put",
    "Modify",
    "Attach",
    "Detach",
    "Associate",
    "Disassociate",
    "Authorize",
    "Revoke",
    "Enable",
    "Disable",
    "Start",
    "Stop",
    "Terminate",
    "Run",
    "Reboot",
    "Restore",
    "Replace",
    "Register",
    "Deregister",
    "Set",
    "Add",
    "Remove",
    "Tag",
    "Untag",
    "Accept",
    "Reject",
    "Cancel",
    "Reset",
    "Failover",
    "Promote",
    "Rotate",
];

/// Nouns whose deletion destroys stored data, when they end the event name
/// (`DeleteDBSnapshot`, not `DeleteBucketPolicy`).
const DATA_STORES: &[&str] = &[
    "Snapshot",
    "Backup",
    "BackupVault",
    "RecoveryPoint",
    "Volume",
    "Table",
    "Database",
    "DBInstance",
    "FileSystem",
    "Bucket",
    "Object",
    "Secret",
    "Parameter",
    "LogGroup",
    "LogStream",
    "Repository",
    "Item",
];

/// Words in an event name that make a write about identities or
/// permissions rather than configuration, whatever the service.
const IDENTITY_WORDS: &[&str] = &[
    "user",
    "users",
    "role",
    "roles",
    "policy",
    "permission",
    "permissions",
    "credential",
    "credentials",
    "password",
    "login",
    "token",
    "member",
    "members",
    "grant",
    "mfa",
    "key",
];

/// True when the call is about identities or permissions. "Group" counts
/// only right after the verb (`CreateGroup`), not as part of another noun
/// (`CreateSecurityGroup`, `DeleteLogGroup`).
fn is_identity_call(name: &str) -> bool {
    let w = words(name);
    any(&w, IDENTITY_WORDS) || w.get(1).is_some_and(|second| second == "group")
}

/// Suffixes of Get calls that return settings or metadata, not stored data.
const METADATA_SUFFIXES: &[&str] = &[
    "Policy",
    "Configuration",
    "Attributes",
    "Attribute",
    "Status",
    "Settings",
    "Selectors",
    "Contact",
    "Identity",
    "Tags",
    "Role",
    "User",
    "Group",
];

fn by_verb(service: &str, name: &str) -> Option<RuleVerdict> {
    if name.starts_with("Describe")
        || (name.starts_with("List") && !name.starts_with("ListObject"))
        || (name.starts_with("Get") && METADATA_SUFFIXES.iter().any(|s| name.ends_with(s)))
    {
        return verdict(Other, "cloudtrail.read_metadata");
    }
    if !INFRASTRUCTURE_SERVICES.contains(&service) {
        return None;
    }
    let verb = WRITE_VERBS.iter().find(|v| name.starts_with(*v))?;
    if *verb == "Delete"
        && DATA_STORES.iter().any(|noun| {
            name.ends_with(noun) || name.strip_suffix('s').is_some_and(|n| n.ends_with(noun))
        })
    {
        return verdict(DataDeletion, "cloudtrail.data_store_deleted");
    }
    if matches!(*verb, "Create" | "Start") && name.contains("Export") {
        return verdict(DataExport, "cloudtrail.export_started");
    }
    if is_identity_call(name) {
        return None;
    }
    verdict(ConfigChange, "cloudtrail.infrastructure_change")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_suffix_is_stripped_only_when_it_is_a_date() {
        assert_eq!(
            without_api_version("UpdateFunctionCode20150331v2"),
            "UpdateFunctionCode"
        );
        assert_eq!(
            without_api_version("AddPermission20150331"),
            "AddPermission"
        );
        assert_eq!(without_api_version("ListObjectsV2"), "ListObjectsV2");
        assert_eq!(without_api_version("GetObject"), "GetObject");
        assert_eq!(without_api_version("2015"), "2015");
    }

    #[test]
    fn generic_verbs_respect_data_stores_and_identity_words() {
        let cat = |s, n| by_verb(s, n).map(|v| v.category);
        assert_eq!(cat("redshift", "DeleteClusterSnapshot"), Some(DataDeletion));
        assert_eq!(cat("s3", "DeleteBucketPolicy"), None);
        assert_eq!(cat("ec2", "DeleteSecurityGroup"), Some(ConfigChange));
        assert_eq!(cat("ecs", "UpdateService"), Some(ConfigChange));
        assert_eq!(cat("ecs", "CreateTaskRole"), None);
        assert_eq!(cat("sqs", "DeleteMessage"), None);
        assert_eq!(cat("anything", "DescribeThings"), Some(Other));
        assert_eq!(cat("anything", "GetThing"), None);
        assert_eq!(cat("backup", "DeleteBackupVault"), Some(DataDeletion));
        assert_eq!(cat("ec2", "CreateSecurityGroup"), Some(ConfigChange));
        assert_eq!(cat("logs", "CreateLogGroup"), Some(ConfigChange));
        assert_eq!(cat("eks", "CreateGroup"), None);
        assert_eq!(cat("kms", "CreateKey"), None);
    }
}
