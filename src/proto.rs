//! Generated protobuf messages and gRPC stubs for `ironlog.v1`.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("ironlog.v1");

/// Encoded file descriptor set, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ironlog_descriptor");
