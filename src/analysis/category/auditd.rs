//! Linux auditd: `action` is the record type, with the syscall or rule key
//! after a colon (`USER_LOGIN`, `SYSCALL:execve`); `details` the record's
//! fields, where `res` says how a user-space event ended.

use super::{verdict, Category, RuleVerdict};
use crate::analysis::details::str_field;
use crate::ledger::event::{Event, Outcome};

use Category::*;

pub(super) fn rule(event: &Event) -> Option<RuleVerdict> {
    let record_type = event.action.split(':').next().unwrap_or("");
    match record_type {
        "USER_LOGIN" | "USER_AUTH" | "USER_ERR" => match outcome(event) {
            Outcome::Failure | Outcome::Denied => verdict(FailedLogin, "auditd.login_failed"),
            Outcome::Success if record_type != "USER_ERR" => verdict(AuthSuccess, "auditd.login"),
            _ => None,
        },
        "ANOM_LOGIN_FAILURES" => verdict(FailedLogin, "auditd.login_failures"),
        "ADD_USER" | "DEL_USER" | "ADD_GROUP" | "DEL_GROUP" | "USER_MGMT" | "GRP_MGMT"
        | "USER_CHAUTHTOK" | "GRP_CHAUTHTOK" | "ACCT_LOCK" | "ACCT_UNLOCK" => {
            verdict(AdminChange, "auditd.account_admin")
        }
        "ROLE_ASSIGN" | "ROLE_REMOVE" | "USER_ROLE_CHANGE" | "ROLE_MODIFY" => {
            verdict(PrivilegeChange, "auditd.role_change")
        }
        "CONFIG_CHANGE" | "DAEMON_CONFIG" | "MAC_POLICY_LOAD" | "MAC_CONFIG_CHANGE"
        | "MAC_STATUS" | "NETFILTER_CFG" | "SERVICE_START" | "SERVICE_STOP" => {
            verdict(ConfigChange, "auditd.system_config")
        }
        // The kernel's and PAM's own anomaly reports; a crash (ANOM_ABEND) is
        // not one an analyst would call an alert.
        t if t.starts_with("ANOM_") && t != "ANOM_ABEND" => {
            verdict(SecurityAlert, "auditd.anomaly_report")
        }
        _ => None,
    }
}

/// The event's outcome, or the record's own `res`/`success` field when the
/// outcome was not set.
fn outcome(event: &Event) -> Outcome {
    if event.outcome != Outcome::Unknown {
        return event.outcome;
    }
    let res =
        str_field(&event.details, &["res"]).or_else(|| str_field(&event.details, &["success"]));
    match res {
        Some("failed" | "no" | "0") => Outcome::Failure,
        Some("success" | "yes" | "1") => Outcome::Success,
        _ => Outcome::Unknown,
    }
}
