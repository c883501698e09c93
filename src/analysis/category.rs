//! The fixed category taxonomy. Every entry gets exactly one category:
//! rules decide what they can; the model scores the remaining entries
//! against these labels (never free text).
//!
//! [`rule_category`] is the deterministic half. It is built to be precise
//! rather than complete: it answers only where the source's own semantics
//! settle the question (a CloudTrail `ConsoleLogin` whose response says
//! `Failure`, a Kubernetes `pods/exec`) and returns `None` otherwise, so the
//! model decides. Per-source rules live in one file per source format; a
//! source without its own rules gets the generic rules on action words.
//! Conventions for the arguable cases (a denied attempt keeps the category
//! of what was attempted, except failed sign-ins; AWS resource policies are
//! configuration, GCP role bindings are privilege changes) are those of the
//! gold set, `tests/data/analysis/README.md`.
//!
//! [`keyword_baseline`] is the strawman the categoriser must beat in
//! evaluation, and nothing else.

mod auditd;
mod cloudtrail;
mod gcp;
mod github;
mod kubernetes;
mod okta;

pub(crate) use kubernetes::is_health_path;

use super::details::{array_at, field, str_field};
use super::words::{any, words};
use crate::ledger::event::{Event, Outcome};
use std::fmt;
use std::str::FromStr;

/// One category of audit entry. The order is the order of [`Category::ALL`],
/// which is also the order in which the model scores candidate labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    FailedLogin,
    AuthSuccess,
    PrivilegeChange,
    AdminChange,
    ConfigChange,
    DataAccess,
    DataExport,
    DataDeletion,
    SecurityAlert,
    Other,
}

/// A name that is not in the taxonomy.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unknown category `{0}`; expected one of failed_login, auth_success, privilege_change, admin_change, config_change, data_access, data_export, data_deletion, security_alert, other")]
pub struct UnknownCategory(pub String);

impl Category {
    pub const ALL: [Category; 10] = [
        Category::FailedLogin,
        Category::AuthSuccess,
        Category::PrivilegeChange,
        Category::AdminChange,
        Category::ConfigChange,
        Category::DataAccess,
        Category::DataExport,
        Category::DataDeletion,
        Category::SecurityAlert,
        Category::Other,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Category::FailedLogin => "failed_login",
            Category::AuthSuccess => "auth_success",
            Category::PrivilegeChange => "privilege_change",
            Category::AdminChange => "admin_change",
            Category::ConfigChange => "config_change",
            Category::DataAccess => "data_access",
            Category::DataExport => "data_export",
            Category::DataDeletion => "data_deletion",
            Category::SecurityAlert => "security_alert",
            Category::Other => "other",
        }
    }

    /// Plain words for the label, as the model scores them: a base model
    /// knows "failed login" far better than `failed_login`.
    pub fn words(&self) -> &'static str {
        match self {
            Category::FailedLogin => "failed login",
            Category::AuthSuccess => "successful login",
            Category::PrivilegeChange => "privilege change",
            Category::AdminChange => "administrative change",
            Category::ConfigChange => "configuration change",
            Category::DataAccess => "data access",
            Category::DataExport => "data export",
            Category::DataDeletion => "data deletion",
            Category::SecurityAlert => "security alert",
            Category::Other => "other activity",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = UnknownCategory;

    fn from_str(s: &str) -> Result<Category, UnknownCategory> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCategory(s.to_string()))
    }
}

/// A category decided by a rule, and which rule decided it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleVerdict {
    pub category: Category,
    /// Short stable rule name (`cloudtrail.console_login_failed`), shown to
    /// users as the reason for the category.
    pub rule: &'static str,
}

fn verdict(category: Category, rule: &'static str) -> Option<RuleVerdict> {
    Some(RuleVerdict { category, rule })
}

/// The category the rules are sure of, or `None` when the model should
/// decide. Pure: reads only the event.
pub fn rule_category(event: &Event) -> Option<RuleVerdict> {
    if let Some(v) = security_finding(event) {
        return Some(v);
    }
    match event.source.as_str() {
        "cloudtrail" => cloudtrail::rule(event),
        "k8s-audit" => kubernetes::rule(event),
        "gcp-audit" => gcp::rule(event),
        "okta" => okta::rule(event),
        "github-audit" => github::rule(event),
        "auditd" => auditd::rule(event),
        _ => generic(event),
    }
}

/// Findings of AWS security services, whatever source carried them:
/// EventBridge wraps them with a `detail-type`; GuardDuty findings name
/// their service; Security Hub sends ASFF `findings`.
fn security_finding(event: &Event) -> Option<RuleVerdict> {
    let d = &event.details;
    let finding_type = str_field(d, &["detail-type"]).is_some_and(|t| t.contains("Finding"));
    let guardduty = str_field(d, &["service", "serviceName"]) == Some("guardduty")
        && str_field(d, &["type"]).is_some();
    let asff = field(d, &["findings"]).is_some_and(|f| {
        array_at(f, &[])
            .iter()
            .any(|x| x.get("SchemaVersion").is_some() || x.get("ProductArn").is_some())
    });
    (finding_type || guardduty || asff).then_some(RuleVerdict {
        category: Category::SecurityAlert,
        rule: "security_service_finding",
    })
}

const LOGIN_WORDS: &[&str] = &[
    "login", "logon", "signin", "authenticate", "authentication", "authenticated",
];
/// Words that make a "login" action a change to login settings instead.
const SETTINGS_WORDS: &[&str] = &[
    "profile", "password", "policy", "config", "configuration", "setting", "settings",
];
const DELETE_WORDS: &[&str] = &["delete", "deleted", "destroy", "destroyed", "purge", "erase", "wipe"];
const DATA_NOUNS: &[&str] = &[
    "file", "files", "object", "objects", "bucket", "table", "database", "db", "backup",
    "snapshot", "record", "records", "document", "documents", "dataset", "volume", "repo",
    "repository", "secret", "data",
];
const EXPORT_WORDS: &[&str] = &["export", "exported", "download", "downloaded", "exfiltrate"];
const GRANT_WORDS: &[&str] = &["grant", "granted", "revoke", "revoked", "assign", "assigned", "unassign"];
const PERMISSION_NOUNS: &[&str] = &["role", "permission", "permissions", "privilege", "admin", "access"];
const DETECTION_WORDS: &[&str] = &["threat", "finding", "detected", "malware", "intrusion"];

/// Rules on action words for sources without rules of their own. Whole
/// words only, and only combinations that mean one thing (a login word
/// without a settings word; a delete word with a data noun).
fn generic(event: &Event) -> Option<RuleVerdict> {
    use Category::*;
    let w = words(&event.action);
    if any(&w, LOGIN_WORDS) && !any(&w, SETTINGS_WORDS) {
        return match event.outcome {
            Outcome::Success => verdict(AuthSuccess, "generic.sign_in"),
            Outcome::Failure | Outcome::Denied => verdict(FailedLogin, "generic.sign_in_failed"),
            Outcome::Unknown => None,
        };
    }
    if any(&w, DETECTION_WORDS) {
        return verdict(SecurityAlert, "generic.detection");
    }
    if any(&w, DELETE_WORDS) && any(&w, DATA_NOUNS) {
        return verdict(DataDeletion, "generic.data_deleted");
    }
    if any(&w, EXPORT_WORDS) && !any(&w, SETTINGS_WORDS) {
        return verdict(DataExport, "generic.data_export");
    }
    if any(&w, GRANT_WORDS) && any(&w, PERMISSION_NOUNS) {
        return verdict(PrivilegeChange, "generic.permission_change");
    }
    None
}

/// The plain keyword baseline, for evaluation only: the strawman the real
/// categoriser must beat. A dozen substring checks on the lower-cased action
/// and resource, first match wins; deliberately naive.
pub fn keyword_baseline(event: &Event) -> Category {
    use Category::*;
    let text = format!("{} {}", event.action, event.resource).to_lowercase();
    let has = |keys: &[&str]| keys.iter().any(|k| text.contains(k));
    let failed = matches!(event.outcome, Outcome::Failure | Outcome::Denied);
    if has(&["login", "logon", "signin", "authenticat"]) {
        return if failed { FailedLogin } else { AuthSuccess };
    }
    if has(&["alert", "finding", "threat"]) {
        SecurityAlert
    } else if has(&["delete", "remove", "destroy"]) {
        DataDeletion
    } else if has(&["export", "download", "clone", "copy"]) {
        DataExport
    } else if has(&["policy", "role", "permission", "grant", "member", "privilege"]) {
        PrivilegeChange
    } else if has(&["user", "group", "password", "mfa", "account"]) {
        AdminChange
    } else if has(&["create", "update", "put", "set", "modify", "patch", "enable", "disable"]) {
        ConfigChange
    } else if has(&["get", "read", "list", "describe", "decrypt", "query", "select"]) {
        DataAccess
    } else {
        Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_refused() {
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>(), Ok(c));
        }
        assert_eq!(
            "login".parse::<Category>(),
            Err(UnknownCategory("login".into()))
        );
    }
}
