//! `ironlog status`: one node's view of Raft and of the ledger.

use serde_json::json;

use super::client;
use super::output::{print_json, print_line};
use super::{CliError, Global};
use crate::proto;

pub async fn run(global: &Global) -> Result<(), CliError> {
    let status = client::admin(client::connect(&global.credentials, &global.endpoint).await?)
        .status(proto::StatusRequest {})
        .await?
        .into_inner();
    if global.json {
        return print_json(&status_json(&status));
    }
    print_line(&status_table(&status))
}

pub fn status_json(status: &proto::StatusResponse) -> serde_json::Value {
    json!({
        "node_id": status.node_id,
        "role": status.role,
        "term": status.term,
        "leader_id": status.leader_id,
        "leader_addr": status.leader_addr,
        "commit_index": status.commit_index,
        "applied_index": status.applied_index,
        "tree_size": status.tree_size,
        "root_hash": hex::encode(&status.root_hash),
        "origin": status.origin,
        "checkpoint_size": status.checkpoint_size,
        "members": status.members.iter().map(|m| json!({
            "id": m.id,
            "addr": m.addr,
            "client_addr": m.client_addr,
            "voter": m.voter,
            "verifier_key": m.verifier_key,
        })).collect::<Vec<_>>(),
    })
}

pub fn status_table(status: &proto::StatusResponse) -> String {
    let leader = match (status.leader_id, status.leader_addr.as_str()) {
        (0, _) => "unknown (no leader elected)".to_string(),
        (id, "") => id.to_string(),
        (id, addr) => format!("{id} ({addr})"),
    };
    let mut lines = vec![
        format!("node            {}", status.node_id),
        format!("role            {}", status.role),
        format!("term            {}", status.term),
        format!("leader          {leader}"),
        format!("commit index    {}", status.commit_index),
        format!("applied index   {}", status.applied_index),
        format!("tree size       {}", status.tree_size),
        format!("root            {}", hex::encode(&status.root_hash)),
        format!("origin          {}", status.origin),
        format!("checkpoint      {}", status.checkpoint_size),
        String::new(),
        "members".to_string(),
    ];
    let client = |m: &proto::Member| {
        if m.client_addr.is_empty() {
            "-".to_string()
        } else {
            m.client_addr.clone()
        }
    };
    let width = |f: &dyn Fn(&proto::Member) -> usize, header: &str| {
        status
            .members
            .iter()
            .map(f)
            .max()
            .unwrap_or(0)
            .max(header.len())
    };
    let client_width = width(&|m| client(m).len(), "CLIENT");
    let peer_width = width(&|m| m.addr.len(), "PEER");
    lines.push(format!(
        "  {:>4}  {:<client_width$}  {:<peer_width$}  {:<7}  VERIFIER KEY",
        "ID", "CLIENT", "PEER", "ROLE"
    ));
    for member in &status.members {
        let role = if member.voter { "voter" } else { "learner" };
        let leader = if member.id == status.leader_id {
            "*"
        } else {
            " "
        };
        lines.push(format!(
            "{leader} {:>4}  {:<client_width$}  {:<peer_width$}  {:<7}  {}",
            member.id,
            client(member),
            member.addr,
            role,
            member.verifier_key
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_marks_the_leader() {
        let status = proto::StatusResponse {
            node_id: 2,
            role: "follower".into(),
            leader_id: 1,
            leader_addr: "127.0.0.1:7001".into(),
            members: vec![
                proto::Member {
                    id: 1,
                    addr: "127.0.0.1:7101".into(),
                    voter: true,
                    verifier_key: "o+1+k".into(),
                    client_addr: "127.0.0.1:7001".into(),
                },
                proto::Member {
                    id: 2,
                    addr: "127.0.0.1:7102".into(),
                    voter: false,
                    verifier_key: "o+2+k".into(),
                    client_addr: String::new(),
                },
            ],
            ..Default::default()
        };
        let table = status_table(&status);
        assert!(
            table.contains("leader          1 (127.0.0.1:7001)"),
            "{table}"
        );
        assert!(
            table.contains("*    1  127.0.0.1:7001  127.0.0.1:7101  voter"),
            "{table}"
        );
        assert!(
            table.contains("     2  -               127.0.0.1:7102  learner"),
            "{table}"
        );
    }
}
