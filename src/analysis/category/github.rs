//! GitHub audit log: `action` is the audit `action` (`repo.destroy`).

use super::{verdict, Category, RuleVerdict};
use crate::analysis::details::str_field;
use crate::ledger::event::Event;

use Category::*;

const PRIVILEGE: &[&str] = &[
    "org.add_member",
    "org.remove_member",
    "org.update_member",
    "org.invite_member",
    "org.add_billing_manager",
    "org.remove_billing_manager",
    "team.add_member",
    "team.remove_member",
    "team.promote_maintainer",
    "team.demote_maintainer",
    "team.add_repository",
    "team.remove_repository",
    "team.update_repository_permission",
    "repo.add_member",
    "repo.remove_member",
    "repo.update_member",
    "organization_moderators.add_user",
    "organization_moderators.remove_user",
    "business.add_admin",
    "business.remove_admin",
    "public_key.create",
    "public_key.delete",
    "deploy_key.create",
    "deploy_key.delete",
    "org_credential_authorization.grant",
    "org_credential_authorization.revoke",
];

const CONFIG_PREFIXES: &[&str] = &[
    "repository_ruleset.",
    "hook.",
    "secret_scanning",
    "dependabot_security_updates",
    "dependabot_alerts",
    "advanced_security.",
    "repository_vulnerability_alert.dismiss",
];

pub(super) fn rule(event: &Event) -> Option<RuleVerdict> {
    let action = if event.action.contains('.') {
        event.action.as_str()
    } else {
        str_field(&event.details, &["action"])?
    };
    if PRIVILEGE.contains(&action) {
        return verdict(PrivilegeChange, "github.membership_or_key");
    }
    match action {
        "repo.destroy" => return verdict(DataDeletion, "github.repo_destroyed"),
        // A transfer hands the repository to another owner: it leaves the org.
        "repo.download_zip" | "git.clone" | "repo.transfer" => {
            return verdict(DataExport, "github.repo_copied_out")
        }
        "team.create" | "team.destroy" | "org.saml_disabled" | "org.saml_enabled" => {
            return verdict(AdminChange, "github.identity_admin")
        }
        "repo.create" | "repo.access" | "repo.archived" | "repo.unarchived" | "repo.rename" => {
            return verdict(ConfigChange, "github.repo_settings")
        }
        "repository_vulnerability_alert.create" | "secret_scanning_alert.create" => {
            return verdict(SecurityAlert, "github.security_alert")
        }
        "git.push" | "git.fetch" => return verdict(Other, "github.git_activity"),
        _ => {}
    }
    // policy_override is a bypass of branch protection, not a change to it.
    if action.starts_with("protected_branch.") && action != "protected_branch.policy_override" {
        return verdict(ConfigChange, "github.branch_protection");
    }
    if CONFIG_PREFIXES.iter().any(|p| action.starts_with(p))
        || (action.starts_with("org.") && (action.contains("enable") || action.contains("disable")))
    {
        return verdict(ConfigChange, "github.security_settings");
    }
    if action.starts_with("workflows.") {
        return verdict(Other, "github.workflow_run");
    }
    None
}
