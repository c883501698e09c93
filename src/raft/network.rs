//! The Raft network over tonic: one HTTP/2 channel per peer, shared by every
//! RPC to it; appends are pipelined over one bidirectional stream; snapshots
//! stream in chunks with a deadline per chunk rather than per transfer.
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult, VoteRequest,
    VoteResponse,
};
use openraft::{OptionalSend, RaftNetworkFactory, RaftNetworkV2};
use serde::{de::DeserializeOwned, Serialize};
use tonic::transport::{Channel, Endpoint};

use super::state_machine::SnapshotFile;
use super::{NodeId, PeerInfo, TypeConfig};
use crate::limits::{RAFT_MESSAGE_BYTES_MAX, SNAPSHOT_CHUNK_BYTES, SNAPSHOT_CHUNK_TIMEOUT_MS};
use crate::proto::raft_client::RaftClient;
use crate::proto::{RaftMessage, SnapshotChunk};
use crate::tls::TlsMaterial;

type Vote = openraft::alias::VoteOf<TypeConfig>;
type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>;
type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;

/// How long to wait for a TCP connection to a peer.
const CONNECT_TIMEOUT_MS: u64 = 1000;

/// Pause after a replication stream fails to open, ms: about a heartbeat,
/// so a down peer is retried a few times a second rather than thousands.
const STREAM_OPEN_RETRY_MS: u64 = 100;

/// Header of the first snapshot chunk.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SnapshotHeader {
    pub vote: Vote,
    pub meta: SnapshotMeta,
}

/// Opens (lazily) and caches one channel per peer, over mutual TLS unless
/// the node runs `--insecure`.
#[derive(Clone, Default)]
pub struct Network {
    channels: Arc<Mutex<HashMap<(NodeId, String), Channel>>>,
    /// This node's certificate and the cluster CA; `None` for plaintext.
    tls: Option<Arc<TlsMaterial>>,
}

impl Network {
    pub fn new(tls: Option<TlsMaterial>) -> Self {
        Self {
            channels: Arc::default(),
            tls: tls.map(Arc::new),
        }
    }

    /// A channel to node `target` at `addr` (either of its listeners). Over
    /// TLS, the server must present a certificate of the cluster CA naming
    /// `target`, so a redirected or spoofed address cannot pose as a peer.
    pub fn channel(&self, target: NodeId, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut channels = self.channels.lock().expect("channel map lock");
        let key = (target, addr.to_string());
        if let Some(c) = channels.get(&key) {
            return Ok(c.clone());
        }
        let c = self
            .endpoint(target, addr)?
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .connect_lazy();
        channels.insert(key, c.clone());
        Ok(c)
    }

    /// Node `target` at `addr`, over mutual TLS (its certificate must name
    /// `target`) unless the node runs `--insecure`.
    fn endpoint(&self, target: NodeId, addr: &str) -> Result<Endpoint, tonic::transport::Error> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?;
        match &self.tls {
            Some(tls) => endpoint.tls_config(tls.peer_client(target)),
            None => Ok(endpoint),
        }
    }

    /// Connects to node `target` at `addr` now (TLS handshake included),
    /// to check that it is a peer of this cluster before it joins.
    pub async fn probe(&self, target: NodeId, addr: &str, limit: Duration) -> Result<(), String> {
        let endpoint = self
            .endpoint(target, addr)
            .map_err(|e| e.to_string())?
            .connect_timeout(limit);
        match tokio::time::timeout(limit, endpoint.connect()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(error_chain(&e)),
            Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
        }
    }

    /// A client for the internal Raft service of node `target` at `addr`.
    pub fn client(
        &self,
        target: NodeId,
        addr: &str,
    ) -> Result<RaftClient<Channel>, tonic::transport::Error> {
        Ok(RaftClient::new(self.channel(target, addr)?)
            .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX))
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &PeerInfo) -> PeerClient {
        PeerClient {
            client: self.client(target, &node.addr).map_err(|e| e.to_string()),
        }
    }
}

/// The unary calls of the internal Raft service.
#[derive(Clone, Copy)]
enum Unary {
    AppendEntries,
    Vote,
    PreVote,
}

/// Raft RPCs to one peer.
pub struct PeerClient {
    /// An invalid address is reported on every call as unreachable.
    client: Result<RaftClient<Channel>, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct WireError(String);

fn encode<T: Serialize>(value: &T) -> RaftMessage {
    RaftMessage {
        data: serde_json::to_vec(value).expect("raft messages serialise"),
    }
}

fn decode<T: DeserializeOwned>(msg: &RaftMessage) -> Result<T, WireError> {
    serde_json::from_slice(&msg.data).map_err(|e| WireError(format!("bad raft message: {e}")))
}

/// An error and its causes: tonic's transport errors say little at the top.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Peers that are down or shutting down are unreachable; anything else is a
/// network error (openraft retries soon).
fn status_to_rpc(status: tonic::Status) -> RPCError<TypeConfig> {
    let err = WireError(format!("{}: {}", status.code(), status.message()));
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
            RPCError::Unreachable(Unreachable::new(&err))
        }
        _ => RPCError::Network(NetworkError::new(&err)),
    }
}

fn status_to_streaming(status: tonic::Status) -> StreamingError<TypeConfig> {
    match status_to_rpc(status) {
        RPCError::Unreachable(u) => StreamingError::Unreachable(u),
        RPCError::Network(n) => StreamingError::Network(n),
        other => StreamingError::Network(NetworkError::new(&WireError(other.to_string()))),
    }
}

impl PeerClient {
    fn client(&self) -> Result<RaftClient<Channel>, RPCError<TypeConfig>> {
        self.client
            .clone()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&WireError(e))))
    }

    /// One unary Raft RPC: JSON in, JSON out, bounded by openraft's deadline.
    async fn unary<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        kind: Unary,
        rpc: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let mut client = self.client()?;
        let mut req = tonic::Request::new(encode(rpc));
        req.set_timeout(option.hard_ttl());
        let resp = match kind {
            Unary::AppendEntries => client.append_entries(req).await,
            Unary::Vote => client.vote(req).await,
            Unary::PreVote => client.pre_vote(req).await,
        }
        .map_err(status_to_rpc)?;
        decode(resp.get_ref()).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(Unary::AppendEntries, &rpc, &option).await
    }

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        _option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<
            BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>,
            RPCError<TypeConfig>,
        >,
    >
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        Box::pin(async move {
            let mut client = self.client()?;
            let outbound = input.map(|req| encode(&req));
            let inbound = match client.stream_append(tonic::Request::new(outbound)).await {
                Ok(resp) => resp.into_inner(),
                Err(status) => {
                    // openraft retries a stream that fails to open at once,
                    // without its usual backoff: pause here, or a leader
                    // busy-loops (and floods its log) while a peer is down.
                    tokio::time::sleep(Duration::from_millis(STREAM_OPEN_RETRY_MS)).await;
                    return Err(status_to_rpc(status));
                }
            };
            let results = inbound.map(|item| match item {
                Ok(msg) => decode::<StreamAppendResult<TypeConfig>>(&msg)
                    .map_err(|e| RPCError::Network(NetworkError::new(&e))),
                Err(status) => Err(status_to_rpc(status)),
            });
            Ok(results.boxed())
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(Unary::Vote, &rpc, &option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(Unary::PreVote, &rpc, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut client = self.client().map_err(|e| match e {
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            other => StreamingError::Network(NetworkError::new(&WireError(other.to_string()))),
        })?;
        let header = serde_json::to_vec(&SnapshotHeader {
            vote,
            meta: snapshot.meta.clone(),
        })
        .expect("snapshot header serialises");
        let reader = snapshot.snapshot.into_reader();
        let (tx, rx) = tokio::sync::mpsc::channel::<SnapshotChunk>(2);
        // The reader feeds chunks from a blocking thread (a manifest is
        // expanded with reads from the store); a receiver that stops taking
        // them for a whole chunk deadline ends the transfer.
        let runtime = tokio::runtime::Handle::current();
        let feeder = tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            let mut header = Some(header);
            loop {
                let chunk = match read_chunk(&mut reader) {
                    Ok(chunk) => chunk,
                    Err(e) => return Err(format!("reading snapshot: {e}")),
                };
                let last = chunk.is_empty();
                let msg = SnapshotChunk {
                    header: header.take().unwrap_or_default(),
                    data: chunk,
                };
                let sent = runtime.block_on(
                    tx.send_timeout(msg, Duration::from_millis(SNAPSHOT_CHUNK_TIMEOUT_MS)),
                );
                if sent.is_err() {
                    return Err("snapshot receiver stalled".to_string());
                }
                if last {
                    return Ok(());
                }
            }
        });
        let call = client.install_snapshot(tonic::Request::new(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        let result = tokio::select! {
            closed = cancel => {
                feeder.abort();
                return Err(StreamingError::Closed(closed));
            }
            r = call => r,
        };
        let resp = result.map_err(status_to_streaming)?;
        if let Ok(Err(reason)) = feeder.await {
            return Err(StreamingError::Network(NetworkError::new(&WireError(
                reason,
            ))));
        }
        decode(resp.get_ref()).map_err(|e| StreamingError::Network(NetworkError::new(&e)))
    }
}

/// Reads up to one chunk; empty at the end of the snapshot.
fn read_chunk(reader: &mut impl std::io::Read) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(SNAPSHOT_CHUNK_BYTES);
    reader
        .take(SNAPSHOT_CHUNK_BYTES as u64)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_peers_are_unreachable_so_openraft_backs_off() {
        let e = status_to_rpc(tonic::Status::unavailable("down"));
        assert!(matches!(e, RPCError::Unreachable(_)));
        let e = status_to_rpc(tonic::Status::internal("bug"));
        assert!(matches!(e, RPCError::Network(_)));
    }
}
