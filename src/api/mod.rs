//! The public gRPC services and the one place errors become gRPC statuses.
//!
//! - [`ledger_service`]: `ironlog.v1.Ledger` (append, read, prove, query, tail).
//! - [`admin_service`]: `ironlog.v1.Admin` (status, membership).
//! - [`analysis_service`]: `ironlog.v1.Analysis` (ask, summarize, anomalies,
//!   categorize), on the analysis node only.
//! - [`convert`]: protobuf <-> ledger types, with validation of client input.
//! - [`error`]: what the services themselves refuse or fail at ([`error::ApiError`]).
//! - [`status`]: every error -> `tonic::Status` mapping, the only place a
//!   code is chosen.
//! - [`tiles`]: the read-only C2SP tlog-tiles HTTP endpoint (`/checkpoint`,
//!   `/tile/...`), with its own error -> HTTP status mapping.
pub mod admin_service;
pub mod analysis_service;
pub mod convert;
pub mod error;
pub mod ledger_service;
pub mod status;
pub mod tiles;

use std::sync::{Arc, RwLock};

use crate::storage::ledger_store::LedgerStore;
use error::ApiError;

/// The ledger store as the services reach it. A stopping node closes it, so
/// connections that outlive the server (peers keep theirs open) cannot keep
/// the database open: the node's files are released for a restart.
#[derive(Clone)]
pub struct StoreSlot(Arc<RwLock<Option<Arc<LedgerStore>>>>);

impl StoreSlot {
    pub fn new(store: Arc<LedgerStore>) -> Self {
        Self(Arc::new(RwLock::new(Some(store))))
    }

    /// The store, or UNAVAILABLE once the node is stopping.
    pub fn get(&self) -> Result<Arc<LedgerStore>, ApiError> {
        self.try_get().ok_or(ApiError::Stopping)
    }

    /// The store, or `None` once the node is stopping.
    pub fn try_get(&self) -> Option<Arc<LedgerStore>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn close(&self) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).take();
    }
}
