//! One write on each system under test, of the same size: an Ironlog
//! `Append` of `batch` events, each event `value_bytes` long in protobuf;
//! an etcd `Put` (or a `Txn` of `batch` puts), each value `value_bytes`.
//! Clients are spread round-robin over the endpoints; both systems forward
//! a follower's write to the leader.
use prost::Message;

use crate::load::{Client, Factory, RequestError};
use ironlog::cli::client::{self as ironlog_client, Conn, Credentials};
use ironlog::proto;
use ironlog::proto::ledger_client::LedgerClient;

pub struct IronlogFactory {
    credentials: Credentials,
    endpoints: Vec<String>,
    /// Padding that makes an event `value_bytes` long on the wire.
    pad: String,
}

impl IronlogFactory {
    pub fn new(credentials: Credentials, endpoints: Vec<String>, value_bytes: usize) -> Self {
        let bare = event(0, 0, "").encoded_len();
        IronlogFactory {
            credentials,
            endpoints,
            pad: "x".repeat(value_bytes.saturating_sub(bare)),
        }
    }
}

/// A benchmark event: a database read by one of 50 users on one of 20
/// tables, as an audited service would append it.
fn event(client: usize, n: u64, pad: &str) -> proto::Event {
    proto::Event {
        time_unix_nanos: 1_767_225_600_000_000_000 + n as i64,
        actor: Some(proto::Actor {
            id: format!("bench-user-{:02}", n % 50),
            r#type: "user".into(),
            ip: "192.0.2.10".into(),
            user_agent: String::new(),
        }),
        action: "db.read".into(),
        resource: format!("postgres://bench/table{:02}", n % 20),
        outcome: proto::Outcome::Success as i32,
        source: format!("bench-client-{client:04}"),
        details_json: format!("{{\"n\":\"{n:016}\",\"pad\":\"{pad}\"}}"),
        idempotency_key: String::new(),
    }
}

pub struct IronlogClient {
    ledger: LedgerClient<Conn>,
    client: usize,
    pad: String,
}

impl Factory for IronlogFactory {
    type Client = IronlogClient;

    async fn connect(&self, client: usize) -> Result<IronlogClient, String> {
        let endpoint = &self.endpoints[client % self.endpoints.len()];
        let channel = ironlog_client::connect(&self.credentials, endpoint)
            .await
            .map_err(|e| format!("{endpoint}: {e}"))?;
        Ok(IronlogClient {
            ledger: ironlog_client::ledger(channel),
            client,
            pad: self.pad.clone(),
        })
    }
}

impl Client for IronlogClient {
    async fn request(&mut self, n: u64, batch: usize) -> Result<(), RequestError> {
        let events = (0..batch as u64)
            .map(|i| event(self.client, n + i, &self.pad))
            .collect();
        let request = proto::AppendRequest {
            events,
            wait_checkpoint: false,
        };
        match self.ledger.append(request).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::Unavailable => Err(RequestError::Retry),
            Err(s) => Err(RequestError::Fatal(format!(
                "{:?}: {}",
                s.code(),
                s.message()
            ))),
        }
    }
}

pub struct EtcdFactory {
    endpoints: Vec<String>,
    value: Vec<u8>,
    /// Client TLS (the CA to trust and the certificate to present) for
    /// https:// members; `None` for plaintext ones.
    tls: Option<etcd_client::TlsOptions>,
}

impl EtcdFactory {
    pub fn new(
        endpoints: Vec<String>,
        value_bytes: usize,
        tls: Option<etcd_client::TlsOptions>,
    ) -> Self {
        EtcdFactory {
            endpoints,
            value: vec![b'x'; value_bytes],
            tls,
        }
    }
}

pub struct EtcdClient {
    kv: etcd_client::KvClient,
    client: usize,
    value: Vec<u8>,
}

impl Factory for EtcdFactory {
    type Client = EtcdClient;

    async fn connect(&self, client: usize) -> Result<EtcdClient, String> {
        let endpoint = &self.endpoints[client % self.endpoints.len()];
        let options = self
            .tls
            .clone()
            .map(|tls| etcd_client::ConnectOptions::new().with_tls(tls));
        let c = etcd_client::Client::connect([endpoint.as_str()], options)
            .await
            .map_err(|e| format!("{endpoint}: {e}"))?;
        Ok(EtcdClient {
            kv: c.kv_client(),
            client,
            value: self.value.clone(),
        })
    }
}

impl Client for EtcdClient {
    async fn request(&mut self, n: u64, batch: usize) -> Result<(), RequestError> {
        let key = |i: u64| format!("bench/{:04}/{:016}", self.client, n + i);
        let result = if batch == 1 {
            self.kv
                .put(key(0), self.value.clone(), None)
                .await
                .map(drop)
        } else {
            let puts = (0..batch as u64)
                .map(|i| etcd_client::TxnOp::put(key(i), self.value.clone(), None))
                .collect::<Vec<_>>();
            self.kv
                .txn(etcd_client::Txn::new().and_then(puts))
                .await
                .map(drop)
        };
        match result {
            Ok(()) => Ok(()),
            Err(etcd_client::Error::GRpcStatus(s)) if s.code() == tonic::Code::Unavailable => {
                Err(RequestError::Retry)
            }
            Err(e) => Err(RequestError::Fatal(e.to_string())),
        }
    }
}
