//! The public gRPC services and the one place errors become gRPC statuses.
//!
//! - [`ledger_service`]: `ironlog.v1.Ledger` (append, read, prove, query, tail).
//! - [`admin_service`]: `ironlog.v1.Admin` (status, membership).
//! - [`convert`]: protobuf <-> ledger types, with validation of client input.
//! - [`status`]: error -> `tonic::Status` mapping.
pub mod admin_service;
pub mod convert;
pub mod ledger_service;
pub mod status;
