//! `ironlog monitor`: the verifier's checks, repeated across several nodes.
//!
//! One round asks every node for its latest checkpoint and raises an alert
//! for each of:
//! - **signatures**: a checkpoint below the policy's thresholds, or with a
//!   bad signature by a policy key;
//! - **rollback**: a node now serves a smaller tree than it served before,
//!   or every node serves less than the monitor already accepted;
//! - **fork**: two checkpoints of the same size with different roots, from
//!   two nodes now or from any node over time;
//! - **inconsistent**: a checkpoint that is not an extension of the largest
//!   accepted one (no valid consistency proof between them), which is a fork
//!   at different sizes.
//!
//! A node that cannot be reached is reported, not alerted on: an outage is
//! not evidence of tampering, and the other nodes are still checked.

use super::reader::LogReader;
use super::state::{now_unix_secs, AuditState, NodeView};
use super::verifier::{accept, check_extends, Latest};
use super::AuditError;
use crate::ledger::merkle;
use crate::ledger::policy::{Accepted, PolicyError, TrustPolicy};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertKind {
    Signatures,
    Rollback,
    Fork,
    Inconsistent,
}

impl AlertKind {
    pub fn name(self) -> &'static str {
        match self {
            AlertKind::Signatures => "signatures",
            AlertKind::Rollback => "rollback",
            AlertKind::Fork => "fork",
            AlertKind::Inconsistent => "inconsistent",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub kind: AlertKind,
    /// The endpoint whose answer raised it.
    pub node: String,
    pub message: String,
}

/// What one round saw.
#[derive(Debug, Default)]
pub struct Round {
    pub alerts: Vec<Alert>,
    /// `(endpoint, error)` of nodes that did not answer.
    pub unreachable: Vec<(String, String)>,
    /// `(endpoint, size)` of nodes whose checkpoint passed the policy.
    pub sizes: Vec<(String, u64)>,
}

fn alert(round: &mut Round, kind: AlertKind, node: &str, message: String) {
    round.alerts.push(Alert {
        kind,
        node: node.to_string(),
        message,
    });
}

fn classify(err: &AuditError) -> AlertKind {
    match err {
        AuditError::Rollback { .. } => AlertKind::Rollback,
        AuditError::Fork { .. } => AlertKind::Fork,
        _ => AlertKind::Inconsistent,
    }
}

/// Runs one round over `readers`, updating `state` (the caller saves it).
pub async fn round(
    readers: &mut [LogReader],
    policy: &TrustPolicy,
    state: &mut AuditState,
) -> Round {
    let mut out = Round::default();
    let mut views: Vec<(usize, Accepted, String)> = Vec::new();
    for (i, reader) in readers.iter_mut().enumerate() {
        let node = reader.endpoint().to_string();
        let note = match reader.latest_note().await {
            Ok(note) => note,
            Err(e) => {
                out.unreachable.push((node, e.to_string()));
                continue;
            }
        };
        match policy.check(note.as_bytes()) {
            Ok(accepted) => views.push((i, accepted, note)),
            Err(e @ PolicyError::Syntax(_)) | Err(e @ PolicyError::Invalid(_)) => {
                // Cannot happen with a parsed policy; report rather than hide.
                out.unreachable.push((node, e.to_string()));
            }
            Err(e) => alert(
                &mut out,
                AlertKind::Signatures,
                &node,
                format!("checkpoint not accepted by the policy: {e}"),
            ),
        }
    }

    // Per node: its size must never go down.
    for (i, a, _) in &views {
        let node = readers[*i].endpoint();
        if let Some(before) = state.nodes.get(node) {
            if a.body.size < before.size {
                alert(
                    &mut out,
                    AlertKind::Rollback,
                    node,
                    format!(
                        "the node served size {} before and now serves size {}",
                        before.size, a.body.size
                    ),
                );
            }
        }
    }

    // Per size: one root, across nodes now and over time.
    for (i, a, _) in &views {
        if let Some(old_root) = state.remember_root(a.body.size, &a.body.root) {
            alert(
                &mut out,
                AlertKind::Fork,
                readers[*i].endpoint(),
                format!(
                    "checkpoint size {} has root {}, but root {old_root} was seen for that size",
                    a.body.size,
                    hex::encode(a.body.root)
                ),
            );
        }
    }

    // The largest checkpoint must extend the head; every other must be a
    // prefix of the largest.
    if let Some(largest) = views
        .iter()
        .enumerate()
        .max_by_key(|(_, (_, a, _))| a.body.size)
        .map(|(k, _)| k)
    {
        let (li, la, lnote) = views[largest].clone();
        let lreader = &mut readers[li];
        match check_extends(lreader, state.head_root(), la.body.size, &la.body.root).await {
            Ok(consistency) => {
                let latest = Latest {
                    accepted: la.clone(),
                    note: lnote,
                    consistency,
                };
                accept(state, &latest);
            }
            Err(e @ AuditError::Status { .. }) => {
                out.unreachable
                    .push((lreader.endpoint().to_string(), e.to_string()));
            }
            Err(e) => {
                let node = lreader.endpoint().to_string();
                alert(&mut out, classify(&e), &node, e.to_string());
            }
        }
        for (k, (i, a, _)) in views.iter().enumerate() {
            if k == largest || a.body.size == la.body.size {
                continue;
            }
            let node = readers[*i].endpoint().to_string();
            let proof = match readers[li].consistency(a.body.size, la.body.size).await {
                Ok(p) => p,
                Err(e) => {
                    out.unreachable
                        .push((readers[li].endpoint().to_string(), e.to_string()));
                    continue;
                }
            };
            if let Err(e) = merkle::verify_consistency(
                a.body.size,
                la.body.size,
                &a.body.root,
                &la.body.root,
                &proof,
            ) {
                alert(
                    &mut out,
                    AlertKind::Inconsistent,
                    &node,
                    format!(
                        "its checkpoint {} is not a prefix of checkpoint {} served by {}: {e}",
                        a.body.size,
                        la.body.size,
                        readers[li].endpoint()
                    ),
                );
            }
        }
    }

    let now = now_unix_secs();
    for (i, a, _) in &views {
        let node = readers[*i].endpoint().to_string();
        out.sizes.push((node.clone(), a.body.size));
        let view = NodeView {
            size: a.body.size,
            root: hex::encode(a.body.root),
            seen_at: now,
        };
        // Keep the largest size a node ever served, so a rollback stays
        // visible on every later round rather than becoming the new normal.
        match state.nodes.get(&node) {
            Some(before) if before.size > view.size => {}
            _ => {
                state.nodes.insert(node, view);
            }
        }
    }
    for a in &out.alerts {
        state.record_alert(a.kind.name(), &a.node, &a.message);
    }
    out
}
