//! The plain keyword baseline: the strawman the categoriser must beat in
//! evaluation, and nothing else.

use super::Category;
use crate::ledger::event::{Event, Outcome};

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
    } else if has(&[
        "policy",
        "role",
        "permission",
        "grant",
        "member",
        "privilege",
    ]) {
        PrivilegeChange
    } else if has(&["user", "group", "password", "mfa", "account"]) {
        AdminChange
    } else if has(&[
        "create", "update", "put", "set", "modify", "patch", "enable", "disable",
    ]) {
        ConfigChange
    } else if has(&[
        "get", "read", "list", "describe", "decrypt", "query", "select",
    ]) {
        DataAccess
    } else {
        Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::category::rule_category;
    use crate::analysis::category::tests::event;
    use Category::*;

    #[test]
    fn keyword_baseline_is_the_naive_strawman() {
        let cat = |source, action, outcome| keyword_baseline(&event(source, action, outcome));
        assert_eq!(
            cat("cloudtrail", "signin:ConsoleLogin", Outcome::Failure),
            FailedLogin
        );
        assert_eq!(
            cat("cloudtrail", "s3:DeleteObject", Outcome::Success),
            DataDeletion
        );
        assert_eq!(
            cat("cloudtrail", "iam:AttachRolePolicy", Outcome::Success),
            PrivilegeChange
        );
        assert_eq!(
            cat("cloudtrail", "s3:GetObject", Outcome::Success),
            DataAccess
        );
        assert_eq!(cat("x", "noop", Outcome::Success), Other);
        // Where it is wrong, by design: a password-profile change is not a login.
        assert_eq!(
            cat("cloudtrail", "iam:UpdateLoginProfile", Outcome::Success),
            AuthSuccess
        );
        assert_eq!(
            rule_category(&event(
                "cloudtrail",
                "iam:UpdateLoginProfile",
                Outcome::Success
            ))
            .map(|v| v.category),
            Some(AdminChange)
        );
    }
}
