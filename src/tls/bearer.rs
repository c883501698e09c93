//! A bearer token on every call of a client: the interceptor the command
//! line and the auditor's reader share. Its `Debug` shows nothing of the
//! token, so no error or log line can carry it.
use std::fmt;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;

/// A channel to one node that carries the caller's bearer token, if any, on
/// every call.
pub type Conn = InterceptedService<Channel, Bearer>;

/// Inserts `authorization: Bearer <token>` into every request.
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// `value` is the whole header value, `Bearer <token>`, marked sensitive.
    pub fn new(value: Option<MetadataValue<Ascii>>) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Bearer(<redacted>)"
        } else {
            "Bearer(none)"
        })
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}
