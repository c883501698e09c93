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
//! [`keyword_baseline`](fn@keyword_baseline) is the strawman the
//! categoriser must beat in evaluation, and nothing else.
//!
//! # Layout
//! - `taxonomy.rs`: the labels ([`Category`]), their names and words.
//! - this file: [`rule_category`], which sends each source to its rules,
//!   and the findings of security services, whatever their source.
//! - one file per source format with rules of its own: `cloudtrail.rs`,
//!   `kubernetes.rs`, `gcp.rs`, `okta.rs`, `github.rs`, `auditd.rs`.
//! - `generic.rs`: the rules on action words for every other source.
//! - `keyword_baseline.rs`: [`keyword_baseline`](fn@keyword_baseline), the
//!   evaluation strawman.

mod auditd;
mod cloudtrail;
mod gcp;
mod generic;
mod github;
mod keyword_baseline;
mod kubernetes;
mod okta;
mod taxonomy;

pub(crate) use gcp::gke_request;
pub use keyword_baseline::keyword_baseline;
pub(crate) use kubernetes::{is_health_path, Request as KubeRequest};
pub use taxonomy::{Category, UnknownCategory};

use super::details::{array_at, field, str_field};
use crate::ledger::event::Event;

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
        _ => generic::rule(event),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::testing::{auditd_event, k8s_event, panther_event};
    use crate::ledger::event::{Actor, Outcome};
    use serde_json::{json, Map, Value};
    use Category::*;

    const PANTHER_SAMPLES: &str =
        include_str!("../../../tests/data/analysis/category/panther_samples.jsonl");
    const AUDITD_RECORDS: &str =
        include_str!("../../../tests/data/analysis/category/auditd_records.txt");

    pub(super) fn event(source: &str, action: &str, outcome: Outcome) -> Event {
        Event {
            time_unix_nanos: 1,
            actor: Actor {
                id: "someone".into(),
                ..Actor::default()
            },
            action: action.into(),
            resource: "thing".into(),
            outcome,
            source: source.into(),
            details: Map::new(),
            idempotency_key: None,
        }
    }

    pub(super) fn decided(e: &Event) -> Option<(Category, &'static str)> {
        rule_category(e).map(|v| (v.category, v.rule))
    }

    #[test]
    fn real_panther_events_get_the_expected_verdicts() {
        // (rule_id, test_name, expected verdict)
        type Case = (&'static str, &'static str, Option<(Category, &'static str)>);
        let expected: &[Case] = &[
            (
                "AWS.Console.RootLoginFailed",
                "Failed Root Login",
                Some((FailedLogin, "cloudtrail.console_login_failed")),
            ),
            (
                "AWS.Console.LoginWithoutSAML",
                "Normal Login",
                Some((AuthSuccess, "cloudtrail.console_login")),
            ),
            (
                "AWS.IAM.AttachAdminUserPolicy",
                "IAM User Policy Attached with Administrator Access",
                Some((PrivilegeChange, "cloudtrail.iam_permissions")),
            ),
            (
                "AWS.IAM.Backdoor.User.Keys",
                "jack create keys for jackson",
                Some((PrivilegeChange, "cloudtrail.iam_permissions")),
            ),
            (
                "AWS.CloudTrail.Stopped",
                "CloudTrail Was Stopped",
                Some((ConfigChange, "cloudtrail.infrastructure_change")),
            ),
            (
                "AWS.RDS.InstanceDeletion",
                "RDS Instance Deleted Without Final Snapshot - Critical",
                Some((DataDeletion, "cloudtrail.database_deleted")),
            ),
            (
                "AWS.CloudTrail.SnapshotMadePublic",
                "Snapshot Made Publicly Accessible",
                Some((DataExport, "cloudtrail.snapshot_shared")),
            ),
            // A copy may or may not leave the account: the model decides.
            (
                "AWS.S3.CopyObjectToExternalAccountBucket",
                "S3 CopyObject to External Account Bucket",
                None,
            ),
            (
                "AWS.Console.RootLoginFailed",
                "Non-Login Event",
                Some((Other, "cloudtrail.read_metadata")),
            ),
            (
                "Kubernetes.Pod.Exec",
                "EKS Exec Into Pod",
                Some((PrivilegeChange, "k8s.pod_exec")),
            ),
            (
                "Kubernetes.ClusterRoleBinding.Privileged",
                "EKS ClusterRoleBinding to cluster-admin",
                Some((PrivilegeChange, "k8s.rbac_change")),
            ),
            (
                "Kubernetes.Secrets.DumpAllNamespaces",
                "EKS cluster-wide secret list",
                Some((DataAccess, "k8s.secret_read")),
            ),
            (
                "Amazon.EKS.AnonymousAPIAccess",
                "ELB Health Check from Public IP",
                Some((Other, "k8s.health_check")),
            ),
            (
                "GCP.GCS.ObjectExfiltration",
                "Cross-Project Object Copy",
                Some((DataExport, "gcp.storage_copied_out")),
            ),
            (
                "GCP.GCS.ObjectExfiltration",
                "Same-Project Different Bucket Copy",
                None,
            ),
            (
                "Kubernetes.Pod.Exec",
                "GCP GKE Exec Into Pod",
                Some((PrivilegeChange, "k8s.pod_exec")),
            ),
            (
                "GCP.IAM.serviceAccounts.signJwt.Privilege.Escalation",
                "JWT Not Signed",
                Some((FailedLogin, "gcp.service_account_credentials")),
            ),
            (
                "GCP.iam.serviceAccountKeys.create",
                "privilege-escalation",
                Some((PrivilegeChange, "gcp.permission_credentials")),
            ),
            (
                "Okta.Login.Success",
                "Failed Login",
                Some((FailedLogin, "okta.sign_in_failed")),
            ),
            (
                "Okta.Login.Success",
                "Successful Login",
                Some((AuthSuccess, "okta.sign_in")),
            ),
            (
                "Okta.AdminRoleAssigned",
                "Admin Access Assigned",
                Some((PrivilegeChange, "okta.privilege")),
            ),
            (
                "Okta.Refresh.Access.Token.Reuse",
                "Reuse Event",
                Some((SecurityAlert, "okta.detection")),
            ),
            // Lower-cased keys; a sign-on policy evaluation is not a policy change.
            (
                "Okta.New.Behavior.Accessing.Admin.Console",
                "Not New Behavior",
                Some((Other, "okta.policy_evaluation")),
            ),
            (
                "GitHub.Org.Modified",
                "GitHub - Org - User Added",
                Some((PrivilegeChange, "github.membership_or_key")),
            ),
            (
                "GitHub.Branch.ProtectionDisabled",
                "GitHub - Branch Protection Disabled",
                Some((ConfigChange, "github.branch_protection")),
            ),
            // Bypassing branch protection changes no setting.
            (
                "GitHub.Branch.PolicyOverride",
                "GitHub - Branch Protection Policy Override",
                None,
            ),
            (
                "GitHub.SupplyChain.SuspiciousUserAgents",
                "Legitimate Git Clone Action - Should Not Alert",
                Some((DataExport, "github.repo_copied_out")),
            ),
        ];
        let samples: Vec<Value> = PANTHER_SAMPLES
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(samples.len(), expected.len());
        for (rule_id, test_name, want) in expected {
            let sample = samples
                .iter()
                .find(|s| s["rule_id"] == *rule_id && s["test_name"] == *test_name)
                .unwrap_or_else(|| panic!("sample {rule_id} / {test_name} missing"));
            let e = panther_event(sample["log_type"].as_str().unwrap(), &sample["log"]);
            assert_eq!(
                decided(&e),
                *want,
                "{rule_id} / {test_name}: {} {}",
                e.action,
                e.resource
            );
        }
    }

    fn falco(name: &str) -> Event {
        let text = match name {
            "exec_pod" => include_str!("../../../tests/data/analysis/falco/exec_pod.json"),
            "attach_cluster_admin_role" => {
                include_str!("../../../tests/data/analysis/falco/attach_cluster_admin_role.json")
            }
            "delete_secret" => {
                include_str!("../../../tests/data/analysis/falco/delete_secret.json")
            }
            "create_deployment" => {
                include_str!("../../../tests/data/analysis/falco/create_deployment.json")
            }
            "create_configmap_sensitive_values" => include_str!(
                "../../../tests/data/analysis/falco/create_configmap_sensitive_values.json"
            ),
            "create_serviceaccount" => {
                include_str!("../../../tests/data/analysis/falco/create_serviceaccount.json")
            }
            "anonymous_creates_namespace_foo" => {
                include_str!(
                    "../../../tests/data/analysis/falco/anonymous_creates_namespace_foo.json"
                )
            }
            other => panic!("no trace {other}"),
        };
        let line = text.lines().find(|l| !l.trim().is_empty()).unwrap();
        k8s_event(&serde_json::from_str(line).unwrap())
    }

    #[test]
    fn falco_kubernetes_traces_get_the_expected_verdicts() {
        let cases = [
            ("exec_pod", (PrivilegeChange, "k8s.pod_exec")),
            (
                "attach_cluster_admin_role",
                (PrivilegeChange, "k8s.rbac_change"),
            ),
            ("delete_secret", (DataDeletion, "k8s.secret_deleted")),
            ("create_deployment", (ConfigChange, "k8s.object_change")),
            (
                "create_configmap_sensitive_values",
                (ConfigChange, "k8s.object_change"),
            ),
            (
                "create_serviceaccount",
                (AdminChange, "k8s.service_account_change"),
            ),
            // Anonymous or not, creating a namespace is a configuration change;
            // the anonymity is the detector's business.
            (
                "anonymous_creates_namespace_foo",
                (ConfigChange, "k8s.object_change"),
            ),
        ];
        for (trace, want) in cases {
            assert_eq!(decided(&falco(trace)), Some(want), "{trace}");
        }
    }

    #[test]
    fn real_auditd_records_get_the_expected_verdicts() {
        let by_serial = |serial: &str| {
            let line = AUDITD_RECORDS
                .lines()
                .find(|l| l.contains(serial))
                .unwrap_or_else(|| panic!("record {serial} missing"));
            decided(&auditd_event(line))
        };
        assert_eq!(
            by_serial(":42120)"),
            Some((FailedLogin, "auditd.login_failed"))
        );
        assert_eq!(by_serial(":12651)"), Some((AuthSuccess, "auditd.login")));
        assert_eq!(by_serial(":18669)"), Some((AuthSuccess, "auditd.login")));
        assert_eq!(
            by_serial(":21878)"),
            Some((AdminChange, "auditd.account_admin"))
        );
        assert_eq!(
            by_serial(":12517)"),
            Some((ConfigChange, "auditd.system_config"))
        );
        assert_eq!(
            by_serial(":753)"),
            Some((SecurityAlert, "auditd.anomaly_report"))
        );
        // A crashing process is not a security alert.
        assert_eq!(by_serial(":911150)"), None);
    }

    #[test]
    fn outcome_decides_between_login_categories() {
        let mut e = event("cloudtrail", "sts:AssumeRole", Outcome::Success);
        assert_eq!(decided(&e).map(|d| d.0), Some(AuthSuccess));
        e.outcome = Outcome::Denied;
        assert_eq!(decided(&e).map(|d| d.0), Some(FailedLogin));
        e.outcome = Outcome::Unknown;
        assert_eq!(decided(&e), None);
        let mut okta = event("okta", "user.session.start", Outcome::Failure);
        assert_eq!(decided(&okta).map(|d| d.0), Some(FailedLogin));
        okta.outcome = Outcome::Success;
        assert_eq!(decided(&okta).map(|d| d.0), Some(AuthSuccess));
    }

    #[test]
    fn console_login_result_is_read_from_the_response() {
        let mut e = event("cloudtrail", "signin:ConsoleLogin", Outcome::Success);
        e.details = json!({"responseElements": {"ConsoleLogin": "Failure"}})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(decided(&e).map(|d| d.0), Some(FailedLogin));
    }

    #[test]
    fn security_service_findings_are_alerts_whatever_the_source() {
        let mut e = event("eventbridge", "aws.guardduty", Outcome::Unknown);
        e.details = json!({"detail-type": "GuardDuty Finding", "detail": {"type": "Recon:EC2/PortProbeUnprotectedPort"}})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(
            decided(&e),
            Some((SecurityAlert, "security_service_finding"))
        );
        let mut hub = event("cloudtrail", "securityhub:Something", Outcome::Unknown);
        hub.details = json!({"findings": [{"SchemaVersion": "2018-10-08", "Title": "x"}]})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(decided(&hub).map(|d| d.0), Some(SecurityAlert));
    }

    #[test]
    fn odd_events_get_none_and_never_panic() {
        for source in [
            "cloudtrail",
            "k8s-audit",
            "gcp-audit",
            "okta",
            "github-audit",
            "auditd",
            "x",
        ] {
            for action in [
                "",
                ":",
                "k8s.",
                "io.k8s.",
                "io.k8s.v1",
                "v1.compute.",
                ".",
                "ANOM_",
                "é:ü",
            ] {
                let _ = rule_category(&event(source, action, Outcome::Unknown));
            }
        }
        let mut e = event("gcp-audit", "io.k8s.core.v1.pods", Outcome::Success);
        e.details = json!({"protoPayload": {"authorizationInfo": "not an array", "metadata": 3}})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(rule_category(&e), None);
        assert_eq!(
            decided(&event("k8s-audit", "k8s.get", Outcome::Success)),
            None
        );
    }

    #[test]
    fn rule_names_are_short_dotted_snake_case() {
        let samples = PANTHER_SAMPLES
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap());
        for s in samples {
            let e = panther_event(s["log_type"].as_str().unwrap(), &s["log"]);
            if let Some(v) = rule_category(&e) {
                assert!(v.rule.len() <= 48, "{}", v.rule);
                assert!(
                    v.rule.chars().all(|c| c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || c == '_'
                        || c == '.'),
                    "{}",
                    v.rule
                );
            }
        }
    }
}
