//! Who may call what: client identities (a client certificate of the
//! cluster CA, or a bearer token whose SHA-256 the config holds), their
//! roles, per-identity rate and in-flight limits, and the record of every
//! refusal in the ledger itself.
//!
//! - [`permission`]: the table from gRPC method to the role it needs;
//!   a method missing from it is refused (default deny).
//! - [`authorizer`]: authentication and the decision for one request.
//! - [`error`]: why a caller was refused ([`AuthError`]).
//! - [`layer`]: the tower layer that applies the decision in front of every
//!   service of a listener, so no handler can forget to check.
//! - [`refusal`]: refusals written to the ledger as audit events by the node
//!   that refused them, rate-limited so a flood cannot fill the log.
//!
//! No role, method or flag edits or deletes an entry: there is no such call.
pub mod authorizer;
pub mod error;
pub mod layer;
pub mod permission;
pub mod refusal;

pub use authorizer::{Authorizer, Caller, CallerKind, RETRY_AFTER_MS_HEADER};
pub use error::AuthError;
pub use layer::{caller_of, AuthLayer, Listener};
pub use refusal::{Refusal, RefusalLog};
