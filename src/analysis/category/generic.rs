//! The generic rules on action words, for sources without rules of their
//! own: whole words only, and only combinations that mean one thing.

use super::{verdict, Category, RuleVerdict};
use crate::analysis::words::{any, words};
use crate::ledger::event::{Event, Outcome};

const LOGIN_WORDS: &[&str] = &[
    "login",
    "logon",
    "signin",
    "authenticate",
    "authentication",
    "authenticated",
];
/// Words that make a "login" action a change to login settings instead.
const SETTINGS_WORDS: &[&str] = &[
    "profile",
    "password",
    "policy",
    "config",
    "configuration",
    "setting",
    "settings",
];
const DELETE_WORDS: &[&str] = &[
    "delete",
    "deleted",
    "destroy",
    "destroyed",
    "purge",
    "erase",
    "wipe",
];
const DATA_NOUNS: &[&str] = &[
    "file",
    "files",
    "object",
    "objects",
    "bucket",
    "table",
    "database",
    "db",
    "backup",
    "snapshot",
    "record",
    "records",
    "document",
    "documents",
    "dataset",
    "volume",
    "repo",
    "repository",
    "secret",
    "data",
];
const EXPORT_WORDS: &[&str] = &["export", "exported", "download", "downloaded", "exfiltrate"];
const GRANT_WORDS: &[&str] = &[
    "grant", "granted", "revoke", "revoked", "assign", "assigned", "unassign",
];
const PERMISSION_NOUNS: &[&str] = &[
    "role",
    "permission",
    "permissions",
    "privilege",
    "admin",
    "access",
];
const DETECTION_WORDS: &[&str] = &["threat", "finding", "detected", "malware", "intrusion"];
/// Verbs that change something.
const CHANGE_WORDS: &[&str] = &[
    "create",
    "created",
    "update",
    "updated",
    "modify",
    "modified",
    "patch",
    "patched",
    "set",
    "change",
    "changed",
    "enable",
    "enabled",
    "disable",
    "disabled",
    "edit",
    "add",
    "added",
    "remove",
    "removed",
    "rename",
    "configure",
    "reset",
];
/// What an administrator manages: accounts and their credentials.
const ACCOUNT_NOUNS: &[&str] = &[
    "user",
    "users",
    "account",
    "accounts",
    "group",
    "groups",
    "member",
    "members",
    "password",
    "mfa",
    "credential",
    "credentials",
    "login",
];
/// Verbs that only read: `db.read`, `file.view`, `records.list`. A read
/// changes nothing, whatever it reads, so it is data access.
const READ_WORDS: &[&str] = &[
    "read", "get", "list", "view", "viewed", "select", "query", "fetch", "describe",
];

/// Rules on action words for sources without rules of their own. Whole
/// words only, and only combinations that mean one thing (a login word
/// without a settings word; a delete word with a data noun).
pub(super) fn rule(event: &Event) -> Option<RuleVerdict> {
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
    // Checked after the specific rules: "export" and "delete" outrank a
    // read or change word beside them.
    if any(&w, READ_WORDS) {
        return verdict(DataAccess, "generic.read");
    }
    let changes = any(&w, CHANGE_WORDS) || any(&w, DELETE_WORDS);
    if changes && any(&w, ACCOUNT_NOUNS) {
        return verdict(AdminChange, "generic.account_change");
    }
    // A write to data (`db.write`, `file.create`) is not configuration;
    // the model weighs those.
    if changes && !any(&w, DATA_NOUNS) {
        return verdict(ConfigChange, "generic.change");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::category::tests::{decided, event};
    use Category::*;

    #[test]
    fn generic_word_rules_apply_only_to_sources_without_their_own() {
        let cat = |source, action, outcome| decided(&event(source, action, outcome)).map(|d| d.0);
        assert_eq!(
            cat("myapp", "user.login", Outcome::Failure),
            Some(FailedLogin)
        );
        assert_eq!(
            cat("myapp", "UserLogin", Outcome::Success),
            Some(AuthSuccess)
        );
        assert_eq!(
            cat("myapp", "UpdateLoginProfile", Outcome::Success),
            Some(AdminChange)
        );
        assert_eq!(
            cat("myapp", "files.delete", Outcome::Success),
            Some(DataDeletion)
        );
        assert_eq!(
            cat("myapp", "user.delete", Outcome::Success),
            Some(AdminChange)
        );
        assert_eq!(
            cat("myapp", "namespace.create", Outcome::Success),
            Some(ConfigChange)
        );
        assert_eq!(cat("myapp", "db.write", Outcome::Success), None);
        assert_eq!(cat("myapp", "file.create", Outcome::Success), None);
        assert_eq!(
            cat("myapp", "report.export", Outcome::Success),
            Some(DataExport)
        );
        assert_eq!(
            cat("myapp", "export_settings.update", Outcome::Success),
            Some(ConfigChange)
        );
        assert_eq!(
            cat("myapp", "role.grant", Outcome::Success),
            Some(PrivilegeChange)
        );
        assert_eq!(
            cat("myapp", "threat.detected", Outcome::Unknown),
            Some(SecurityAlert)
        );
        assert_eq!(
            cat("myapp", "page.view", Outcome::Success),
            Some(DataAccess)
        );
        assert_eq!(cat("myapp", "db.read", Outcome::Success), Some(DataAccess));
        assert_eq!(
            cat("myapp", "records.read_and_delete", Outcome::Success),
            Some(DataDeletion)
        );
        assert_eq!(cat("myapp", "widget.frobnicate", Outcome::Success), None);
        // Known sources never fall back to word guesses.
        assert_eq!(cat("github-audit", "files.delete", Outcome::Success), None);
    }
}
