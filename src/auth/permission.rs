//! Which role each gRPC method needs. Default deny: a method not listed
//! here is refused before it reaches a service.
use crate::config::ClientRole;

/// What a request needs from its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Any authenticated caller (status, reflection).
    Authenticated,
    /// A caller with this role.
    Role(ClientRole),
}

impl Permission {
    pub fn describe(&self) -> String {
        match self {
            Permission::Authenticated => "any authenticated identity".to_string(),
            Permission::Role(role) => format!("the {} role", role.name()),
        }
    }
}

/// The permission a client-listener method needs, by its gRPC path
/// (`/package.Service/Method`); `None` for an unknown method.
pub fn for_path(path: &str) -> Option<Permission> {
    use ClientRole::*;
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let role = match (service, method) {
        ("ironlog.v1.Ledger", "Append") => Appender,
        ("ironlog.v1.Ledger", "GetEntries" | "Query" | "Tail") => Reader,
        ("ironlog.v1.Ledger", "GetCheckpoint" | "GetInclusionProof" | "GetConsistencyProof") => {
            Auditor
        }
        ("ironlog.v1.Analysis", "Ask" | "Summarize" | "Anomalies" | "Categorize") => Analyst,
        ("ironlog.v1.Admin", "AddLearner" | "ChangeMembership") => Admin,
        ("ironlog.v1.Admin", "Status") => return Some(Permission::Authenticated),
        ("grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection", _) => {
            return Some(Permission::Authenticated)
        }
        _ => return None,
    };
    Some(Permission::Role(role))
}

/// The short method name used in refusals and audit events:
/// `ironlog.v1.Admin/AddLearner`.
pub fn method_name(path: &str) -> &str {
    path.strip_prefix('/').unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_of_the_public_services_needs_its_role() {
        use ClientRole::*;
        let cases = [
            ("/ironlog.v1.Ledger/Append", Role(Appender)),
            ("/ironlog.v1.Ledger/GetEntries", Role(Reader)),
            ("/ironlog.v1.Ledger/Tail", Role(Reader)),
            ("/ironlog.v1.Ledger/Query", Role(Reader)),
            ("/ironlog.v1.Ledger/GetCheckpoint", Role(Auditor)),
            ("/ironlog.v1.Ledger/GetInclusionProof", Role(Auditor)),
            ("/ironlog.v1.Ledger/GetConsistencyProof", Role(Auditor)),
            ("/ironlog.v1.Analysis/Ask", Role(Analyst)),
            ("/ironlog.v1.Analysis/Anomalies", Role(Analyst)),
            ("/ironlog.v1.Admin/AddLearner", Role(Admin)),
            ("/ironlog.v1.Admin/ChangeMembership", Role(Admin)),
            ("/ironlog.v1.Admin/Status", Authenticated),
        ];
        use Permission::*;
        for (path, want) in cases {
            assert_eq!(for_path(path), Some(want), "{path}");
        }
    }

    #[test]
    fn unknown_methods_and_the_raft_service_are_not_served_to_clients() {
        for path in [
            "/ironlog.v1.Raft/Forward",
            "/ironlog.v1.Raft/AppendEntries",
            "/ironlog.v1.Ledger/Delete",
            "/ironlog.v1.Ledger/",
            "/nonsense",
            "",
        ] {
            assert_eq!(for_path(path), None, "{path}");
        }
    }

    #[test]
    fn the_proto_has_no_method_the_table_forgot() {
        // Every rpc of the client-facing services in the .proto is listed,
        // so adding one without deciding its role fails here.
        let proto = include_str!("../../proto/ironlog/v1/ironlog.proto");
        let mut service = "";
        for line in proto.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("service ") {
                service = rest.split_whitespace().next().unwrap_or("");
            } else if let Some(rest) = line.strip_prefix("rpc ") {
                let method = rest.split('(').next().unwrap_or("").trim();
                let path = format!("/ironlog.v1.{service}/{method}");
                if service == "Raft" {
                    assert_eq!(for_path(&path), None, "{path} is peer-only");
                } else {
                    assert!(for_path(&path).is_some(), "{path} has no permission");
                }
            }
        }
    }
}
