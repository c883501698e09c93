//! Okta System Log: `action` is the `eventType`, `outcome` from
//! `outcome.result`.

use super::{verdict, Category, RuleVerdict};
use crate::analysis::details::str_field;
use crate::ledger::event::{Event, Outcome};

use Category::*;

/// Okta's own detections and user reports of suspicious activity.
const DETECTIONS: &[&str] = &[
    "security.threat.detected",
    "security.attack.start",
    "security.breached_credential.detected",
    "security.session.detect_client_roaming",
    "security.request.blocked",
    "user.risk.detect",
    "app.oauth2.token.detect_reuse",
    "user.account.report_suspicious_activity_by_enduser",
];

const PRIVILEGE: &[&str] = &[
    "user.account.privilege.grant",
    "user.account.privilege.revoke",
    "group.privilege.grant",
    "group.privilege.revoke",
    "group.user_membership.add",
    "group.user_membership.remove",
    "app.user_membership.add",
    "app.user_membership.remove",
    "application.user_membership.add",
    "application.user_membership.remove",
    "application.user_membership.change_username",
    "system.api_token.create",
    "system.api_token.revoke",
];

const ADMIN: &[&str] = &[
    "user.account.reset_password",
    "user.account.update_password",
    "user.account.unlock",
    "user.account.update_profile",
    "group.lifecycle.create",
    "group.lifecycle.delete",
];

pub(super) fn rule(event: &Event) -> Option<RuleVerdict> {
    let event_type = if event.action.contains('.') {
        event.action.as_str()
    } else {
        str_field(&event.details, &["eventType"])?
    };
    if DETECTIONS.contains(&event_type) {
        return verdict(SecurityAlert, "okta.detection");
    }
    if event_type == "user.session.start" || event_type.starts_with("user.authentication.") {
        return match event.outcome {
            Outcome::Success => verdict(AuthSuccess, "okta.sign_in"),
            Outcome::Failure | Outcome::Denied => verdict(FailedLogin, "okta.sign_in_failed"),
            Outcome::Unknown => None,
        };
    }
    // Okta locks an account after too many failed sign-ins.
    if event_type.starts_with("user.account.lock") {
        return verdict(FailedLogin, "okta.account_locked");
    }
    if PRIVILEGE.contains(&event_type) {
        return verdict(PrivilegeChange, "okta.privilege");
    }
    if ADMIN.contains(&event_type)
        || event_type.starts_with("user.lifecycle.")
        || event_type.starts_with("user.mfa.factor.")
        || event_type.starts_with("system.idp.lifecycle.")
    {
        return verdict(AdminChange, "okta.identity_admin");
    }
    // Sign-on policy evaluations are part of a sign-in, not policy changes.
    if event_type.starts_with("policy.evaluate") {
        return verdict(Other, "okta.policy_evaluation");
    }
    if event_type.starts_with("policy.lifecycle.")
        || event_type.starts_with("policy.rule.")
        || event_type.starts_with("application.lifecycle.")
        || event_type.starts_with("application.policy.")
    {
        return verdict(ConfigChange, "okta.policy_change");
    }
    if event_type.starts_with("system.org.rate_limit.")
        || event_type.starts_with("system.operation.rate_limit.")
    {
        return verdict(Other, "okta.rate_limit");
    }
    None
}
