//! One running node: storage, Raft, the gRPC server (public Ledger and Admin
//! services, the internal Raft service, reflection), the optional read-only
//! HTTP server (C2SP tlog-tiles, [`crate::api::tiles`]), the checkpoint
//! ticker and the checkpoint signer.
//!
//! # Start-up
//! Opens `ledger.redb`, `raft-log.redb` and `snapshots/` under the data dir,
//! starts Raft, serves on the given listeners, and (with `bootstrap`) on a
//! fresh log initialises the cluster with the configured peers.
//!
//! # Shutdown
//! Both servers stop accepting, their handlers lose the store, Raft stops,
//! and every accepted connection then reads EOF, so no client connection
//! keeps the database open or keeps reaching the stopped node's services.
//!
//! # Checkpoints
//! The leader proposes [`Command::Checkpoint`] every `interval_ms` or every
//! `every_entries` new leaves, whichever comes first, if the tree grew. Every
//! voter signs each checkpoint it applies and proposes its signature as
//! [`Command::Cosign`], so all replicas gather all signatures.
//!
//! # Witnesses
//! With `[[witnesses]]` configured, the leader also submits each
//! quorum-signed checkpoint to them in the background
//! ([`crate::witness::submitter`]).
//!
//! # A full disk
//! The node measures its data directory's free space ([`crate::disk`]) and,
//! below `storage.free_bytes_min`, writes nothing: the proposer refuses,
//! the Raft service refuses replication and votes, a leader hands over
//! ([`crate::raft::handover`]), and the checkpoint ticker and the signer
//! pause. It resumes by itself once there is room. A node started onto a
//! disk below the floor waits, before opening any database, until there is.
//!
//! # Fail-stop
//! If openraft stops on a fatal error anyway (a storage I/O error that got
//! past the floor, a panic), [`run`] logs the cause and returns it, and the
//! process exits non-zero: a supervisor restarts it, and redb recovers from
//! its last commit. A node never lingers answering errors with Raft dead.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::analysis::analyst::Analyst;
use crate::analysis::model::{Model, ModelSettings};
use crate::api::admin_service::AdminApi;
use crate::api::analysis_service::AnalysisApi;
use crate::api::ledger_service::LedgerApi;
use crate::api::tiles::TilesApi;
use crate::api::StoreSlot;
use crate::auth::{AuthLayer, Authorizer, Listener as AuthListener, RefusalLog};
use crate::config::{Config, Role};
use crate::disk::FreeSpace;
use crate::ledger::checkpoint::NoteSigner;
use crate::limits::{
    GRPC_CLIENT_CONNECTIONS_MAX, GRPC_KEEPALIVE_INTERVAL_MS, GRPC_KEEPALIVE_TIMEOUT_MS,
    GRPC_MESSAGE_BYTES_MAX, GRPC_PEER_CONNECTIONS_MAX, GRPC_STREAMS_PER_CONNECTION_MAX,
    RAFT_MESSAGE_BYTES_MAX,
};
use crate::proto;
use crate::raft::{
    Command, LogStore, Network, PeerInfo, ProposeError, Proposer, Raft, StateMachine,
};
use crate::storage::ledger_store::{same_witness_keys, LedgerStore, LEDGER_FILE};
use crate::storage::signing_record::SigningRecord;
use crate::tls::{Alpn, ClientCert, TlsMaterial};

/// Why a node could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot read signing key {path}: {reason}")]
    SigningKey { path: String, reason: String },
    #[error("cannot open storage in {path}: {reason}")]
    Storage { path: String, reason: String },
    #[error("raft failed to start: {0}")]
    Raft(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("gRPC server failed: {0}")]
    Serve(String),
    #[error("cannot set up witnesses: {0}")]
    Witness(#[from] crate::witness::submitter::SubmitterError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error(
        "raft stopped on a fatal error: {0}; the node exits so that its supervisor restarts it \
         (storage recovers from its last commit)"
    )]
    RaftFatal(String),
}

/// The sockets a node serves on, bound by the caller (port 0 in tests).
pub struct Listeners {
    /// gRPC for clients: Ledger, Admin, Analysis, reflection.
    pub client: TcpListener,
    /// gRPC for peers: the internal Raft service (mutual TLS).
    pub peer: TcpListener,
    /// HTTP: the read-only tlog-tiles endpoint; none to serve no HTTP.
    pub http: Option<TcpListener>,
}

/// How many times a voter retries proposing its checkpoint signature while
/// leadership settles, and how long it waits between tries.
const COSIGN_ATTEMPTS_MAX: u32 = 20;
const COSIGN_RETRY_MS: u64 = 250;

/// How often a voter checks that it signed the newest checkpoint.
const COSIGN_RECHECK_MS: u64 = 2000;

/// How long in-flight requests get to finish when a node stops.
const SHUTDOWN_GRACE_MS: u64 = 5000;

/// A node that is running; dropping it does not stop it, call [`shutdown`](Self::shutdown).
pub struct RunningNode {
    pub id: u64,
    /// Where the client listener listens.
    pub addr: SocketAddr,
    /// Where the peer listener listens.
    pub peer_addr: SocketAddr,
    /// Where the tlog-tiles endpoint listens, if it runs.
    pub http_addr: Option<SocketAddr>,
    raft: Raft,
    stop: watch::Sender<bool>,
    /// Closed at shutdown so lingering connections release the store.
    slot: StoreSlot,
    /// Cancelled at shutdown: every accepted connection then reads EOF, so
    /// peers reconnect to whatever serves this address next.
    closing: CancellationToken,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    peer_server: JoinHandle<Result<(), tonic::transport::Error>>,
    http_server: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
    /// The analysis node's analyst, told to stop its model work at shutdown.
    analyst: Option<Arc<Analyst>>,
}

impl RunningNode {
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Waits until Raft stops, and says why ([`crate::raft::stopped`]).
    pub async fn raft_stopped(&self) -> String {
        crate::raft::stopped(&self.raft).await
    }

    /// Stops serving, stops Raft and waits until storage is released, so the
    /// same data dir can be opened again.
    pub async fn shutdown(self) {
        // Stop accepting first, then stop Raft: that ends the long-lived
        // replication streams peers hold open, which graceful shutdown waits for.
        let _ = self.stop.send(true);
        if let Some(a) = &self.analyst {
            a.shutdown();
        }
        self.slot.close();
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.raft.shutdown().await;
        self.closing.cancel();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(SHUTDOWN_GRACE_MS);
        drain("gRPC", self.server, deadline).await;
        drain("peer gRPC", self.peer_server, deadline).await;
        if let Some(http_server) = self.http_server {
            drain("HTTP", http_server, deadline).await;
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Waits for a server task to end by `deadline`, then ends it.
async fn drain<T>(name: &str, mut server: JoinHandle<T>, deadline: tokio::time::Instant) {
    if tokio::time::timeout_at(deadline, &mut server)
        .await
        .is_err()
    {
        tracing::warn!(
            server = name,
            "connections still open after the grace period; closing them"
        );
        server.abort();
        let _ = server.await;
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| NodeError::Listen {
            addr,
            reason: e.to_string(),
        })
}

/// Runs a node until SIGINT or SIGTERM, or until Raft stops on a fatal
/// error, which is returned so the process exits non-zero.
pub async fn run(config: Config) -> Result<(), NodeError> {
    let client = bind(config.listen).await?;
    let peer = bind(config.peer_listen).await?;
    let http = match config.http_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let node = start(config, Listeners { client, peer, http }).await?;
    tracing::info!(id = node.id, addr = %node.addr, peer_addr = %node.peer_addr, "node serving");
    if let Some(http_addr) = node.http_addr {
        tracing::info!(addr = %http_addr, "tlog-tiles served over HTTP");
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| NodeError::Serve(e.to_string()))?;
    let fatal = tokio::select! {
        _ = tokio::signal::ctrl_c() => None,
        _ = term.recv() => None,
        why = node.raft_stopped() => Some(why),
    };
    let Some(why) = fatal else {
        tracing::info!("stopping");
        node.shutdown().await;
        return Ok(());
    };
    let error = NodeError::RaftFatal(why);
    tracing::error!(error = %error, "stopping");
    // Bounded: a node whose storage failed must not hang on its way out.
    let limit = Duration::from_millis(FATAL_SHUTDOWN_MS);
    if tokio::time::timeout(limit, node.shutdown()).await.is_err() {
        tracing::error!(
            limit_ms = FATAL_SHUTDOWN_MS,
            "shutdown did not finish; exiting anyway"
        );
    }
    Err(error)
}

/// How long a node stopping on a fatal error gives its shutdown, ms: the
/// servers' grace period plus a margin for Raft and the tasks.
const FATAL_SHUTDOWN_MS: u64 = 2 * SHUTDOWN_GRACE_MS;

/// Starts a node serving on `listeners` (bind port 0 in tests).
pub async fn start(config: Config, listeners: Listeners) -> Result<RunningNode, NodeError> {
    let Listeners {
        client: listener,
        peer: peer_listener,
        http,
    } = listeners;
    let local = |l: &TcpListener, addr: SocketAddr| {
        l.local_addr().map_err(|e| NodeError::Listen {
            addr,
            reason: e.to_string(),
        })
    };
    let addr = local(&listener, config.listen)?;
    let peer_addr = local(&peer_listener, config.peer_listen)?;
    let http_addr = match &http {
        Some(l) => Some(local(l, config.http_listen.unwrap_or(addr))?),
        None => None,
    };
    let tls = security(&config)?;
    let storage_err = |e: &dyn std::fmt::Display| NodeError::Storage {
        path: config.data_dir.display().to_string(),
        reason: e.to_string(),
    };
    let signer = match config.role {
        Role::Voter => Some(load_signer(&config)?),
        Role::Learner | Role::Analysis => None,
    };
    std::fs::create_dir_all(&config.data_dir).map_err(|e| storage_err(&e))?;
    let space = FreeSpace::new(config.id, &config.data_dir, config.storage.free_bytes_min);
    space.wait_for_room().await.map_err(|e| storage_err(&e))?;
    let store = Arc::new(
        LedgerStore::open(&config.data_dir.join(LEDGER_FILE), &config.origin)
            .map_err(|e| storage_err(&e))?,
    );
    let log_store =
        LogStore::open(&config.data_dir.join("raft-log.redb")).map_err(|e| storage_err(&e))?;
    let snapshot_dir = config.data_dir.join("snapshots");
    let (sm, new_checkpoints) =
        StateMachine::open(store.clone(), &snapshot_dir).map_err(|e| storage_err(&e))?;
    let applied = sm.subscribe();
    let voter_signed = sm.subscribe_voter_signed();
    let network = Network::new(tls.clone());
    let raft = crate::raft::start(
        config.id,
        &config.origin,
        &config.raft,
        network.clone(),
        log_store,
        sm,
    )
    .await
    .map_err(NodeError::Raft)?;
    let proposer = Proposer::new(raft.clone(), network, space.clone());

    if config.bootstrap {
        bootstrap(&raft, &config, proposer.network()).await?;
    }
    let (stop, stop_rx) = watch::channel(false);

    let (refusals, refusal_writer) = RefusalLog::new(config.id);
    let authorizer = Arc::new(Authorizer::new(
        &config.auth,
        config.insecure,
        refusals.clone(),
    ));
    let mut tasks = vec![
        tokio::spawn(checkpoint_ticker(
            config.clone(),
            proposer.clone(),
            store.clone(),
            applied.clone(),
        )),
        tokio::spawn({
            let proposer = proposer.clone();
            refusal_writer.run(
                move |event| {
                    let proposer = proposer.clone();
                    async move {
                        let cmd = crate::raft::Command::Append {
                            events: vec![event],
                            commit_time_unix_nanos: 0,
                        };
                        proposer
                            .propose(cmd)
                            .await
                            .map(drop)
                            .map_err(|e| e.to_string())
                    }
                },
                stop_rx.clone(),
            )
        }),
        tokio::spawn(space.clone().watch(stop_rx.clone())),
        tokio::spawn(crate::raft::handover::run(raft.clone(), space.clone())),
    ];
    if let Some(signer) = signer {
        let record = SigningRecord::open(&config.data_dir).map_err(|e| storage_err(&e))?;
        tasks.push(tokio::spawn(cosign_loop(
            Cosigner {
                node_id: config.id,
                signer,
                proposer: proposer.clone(),
                store: store.clone(),
                record: Arc::new(std::sync::Mutex::new(record)),
            },
            new_checkpoints,
        )));
    }

    if !config.witnesses.is_empty() {
        let submitter = crate::witness::submitter::Submitter::new(
            config.id,
            &config.witnesses,
            proposer.clone(),
            store.clone(),
        )?;
        tasks.push(tokio::spawn(submitter.run(voter_signed)));
    }

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| NodeError::Serve(e.to_string()))?;
    let slot = StoreSlot::new(store.clone());
    let mut analyst_handle = None;
    let analysis = match &config.analysis {
        Some(settings) if config.role == Role::Analysis => {
            let analyst = start_analyst(settings).await;
            analyst_handle = Some(Arc::clone(&analyst));
            tasks.push(tokio::spawn(Arc::clone(&analyst).follow(
                store.clone(),
                applied.clone(),
                stop_rx.clone(),
            )));
            tasks.push(tokio::spawn(
                Arc::clone(&analyst).categorize_pending(stop_rx.clone()),
            ));
            Some(proto::analysis_server::AnalysisServer::new(
                AnalysisApi::new(analyst, slot.clone(), raft.clone(), stop_rx.clone()),
            ))
        }
        _ => None,
    };
    let ledger = proto::ledger_server::LedgerServer::new(LedgerApi::new(
        slot.clone(),
        proposer.clone(),
        applied,
        stop_rx.clone(),
        refusals.clone(),
    ))
    .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let admin = proto::admin_server::AdminServer::new(AdminApi::new(
        raft.clone(),
        slot.clone(),
        proposer.network().clone(),
        refusals.clone(),
    ));
    let raft_svc = proto::raft_server::RaftServer::new(crate::raft::service::RaftRpc::new(
        proposer.clone(),
        snapshot_dir,
        refusals,
    ))
    .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
    .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX);
    let closing = CancellationToken::new();
    let http_tls = match &tls {
        Some(t) => Some(t.server_config(ClientCert::Optional, Alpn::Http1)?),
        None => None,
    };
    let http_server = http.map(|listener| {
        let router = TilesApi::new(slot.clone(), raft.clone()).router_with(authorizer.clone());
        let mut stop_wait = stop_rx.clone();
        tokio::spawn(crate::http_server::serve(
            listener,
            router,
            http_tls,
            crate::http_server::HttpLimits::default(),
            closing.clone(),
            async move {
                let _ = stop_wait.wait_for(|s| *s).await;
            },
        ))
    });
    let client_tls = match &tls {
        Some(t) => Some(t.server_config(ClientCert::Optional, Alpn::H2)?),
        None => None,
    };
    let peer_tls = match &tls {
        Some(t) => Some(t.server_config(ClientCert::Required, Alpn::H2)?),
        None => None,
    };
    let server = {
        let router = grpc_server()
            .layer(AuthLayer::new(authorizer.clone(), AuthListener::Client))
            .add_service(ledger)
            .add_service(admin)
            .add_service(reflection)
            .add_optional_service(analysis);
        let mut stop_wait = stop_rx.clone();
        let stopped = async move {
            let _ = stop_wait.wait_for(|s| *s).await;
        };
        let accept = Accept {
            listener,
            closing: closing.clone(),
            max: GRPC_CLIENT_CONNECTIONS_MAX,
            name: "client listener",
            refusals: authorizer.refusals().clone(),
        };
        match client_tls {
            Some(config) => {
                tokio::spawn(router.serve_with_incoming_shutdown(accept.tls(config), stopped))
            }
            None => tokio::spawn(router.serve_with_incoming_shutdown(accept.plain(), stopped)),
        }
    };
    let peer_server = {
        let router = grpc_server()
            .layer(AuthLayer::new(authorizer.clone(), AuthListener::Peer))
            .add_service(raft_svc);
        let mut stop_wait = stop_rx.clone();
        let stopped = async move {
            let _ = stop_wait.wait_for(|s| *s).await;
        };
        let accept = Accept {
            listener: peer_listener,
            closing: closing.clone(),
            max: GRPC_PEER_CONNECTIONS_MAX,
            name: "peer listener",
            refusals: authorizer.refusals().clone(),
        };
        match peer_tls {
            Some(config) => {
                tokio::spawn(router.serve_with_incoming_shutdown(accept.tls(config), stopped))
            }
            None => tokio::spawn(router.serve_with_incoming_shutdown(accept.plain(), stopped)),
        }
    };
    Ok(RunningNode {
        id: config.id,
        addr,
        peer_addr,
        http_addr,
        raft,
        stop,
        slot,
        closing,
        server,
        peer_server,
        http_server,
        tasks,
        analyst: analyst_handle,
    })
}

/// The node's TLS material, or `None` with a warning when it runs
/// `--insecure` (said at every start, so nobody forgets it is on).
fn security(config: &Config) -> Result<Option<TlsMaterial>, NodeError> {
    if config.insecure {
        tracing::warn!(
            "--insecure: both listeners speak plaintext and nobody is authenticated; \
             anyone who reaches a port can append, read and change membership"
        );
        return Ok(None);
    }
    let tls = config.tls.as_ref().ok_or_else(|| {
        NodeError::Tls(crate::tls::TlsError::Rustls(
            "no [tls] section and not --insecure".into(),
        ))
    })?;
    Ok(Some(TlsMaterial::load(tls, config.id)?))
}

/// A gRPC server with the limits every listener needs: keepalives that
/// find dead peers, bounded streams per connection.
fn grpc_server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_millis(GRPC_KEEPALIVE_INTERVAL_MS)))
        .http2_keepalive_timeout(Some(Duration::from_millis(GRPC_KEEPALIVE_TIMEOUT_MS)))
        .max_concurrent_streams(Some(GRPC_STREAMS_PER_CONNECTION_MAX))
        .concurrency_limit_per_connection(GRPC_STREAMS_PER_CONNECTION_MAX as usize)
}

/// Accepting connections on one listener: at most `max` open at once (one
/// more is closed at accept), each ending when the node stops.
struct Accept {
    listener: TcpListener,
    closing: CancellationToken,
    max: usize,
    /// For logs and refusal records.
    name: &'static str,
    /// Where a handshake refused for its certificate is recorded.
    refusals: RefusalLog,
}

impl Accept {
    /// The next connection with a free slot, or `None` once the node stops.
    async fn next(&self, slots: &Arc<tokio::sync::Semaphore>) -> Option<(Connection, SocketAddr)> {
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = self.closing.cancelled() => return None,
            };
            let (stream, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!(listener = self.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_MS)).await;
                    continue;
                }
            };
            match slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    let _ = stream.set_nodelay(true);
                    return Some((Connection::new(stream, &self.closing, Some(slot)), remote));
                }
                Err(_) => tracing::warn!(
                    listener = self.name,
                    max = self.max,
                    "connection refused: the listener is at its connection cap"
                ),
            }
        }
    }

    /// Plaintext connections (`--insecure`).
    fn plain(self) -> impl futures::Stream<Item = std::io::Result<Connection>> {
        let slots = Arc::new(tokio::sync::Semaphore::new(self.max));
        futures::stream::unfold((self, slots), |(accept, slots)| async move {
            let (conn, _) = accept.next(&slots).await?;
            Some((Ok(conn), (accept, slots)))
        })
    }

    /// TLS connections: each handshake runs on its own task within
    /// [`TLS_HANDSHAKE_TIMEOUT_MS`], so a slow or silent client holds one
    /// slot, never the accept loop. A handshake refused for its certificate
    /// (another CA, none on the peer listener) is a refusal on the record.
    fn tls(
        self,
        config: Arc<tokio_rustls::rustls::ServerConfig>,
    ) -> impl futures::Stream<Item = std::io::Result<tokio_rustls::server::TlsStream<Connection>>>
    {
        let (tx, rx) = mpsc::channel(TLS_ACCEPTED_QUEUE);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(self.max));
            while let Some((conn, remote)) = self.next(&slots).await {
                if tx.is_closed() {
                    return;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                let (refusals, name) = (self.refusals.clone(), self.name);
                tokio::spawn(async move {
                    let limit = Duration::from_millis(crate::limits::TLS_HANDSHAKE_TIMEOUT_MS);
                    match tokio::time::timeout(limit, acceptor.accept(conn)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send(Ok(stream)).await;
                        }
                        Ok(Err(e)) if crate::tls::is_certificate_refusal(&e) => {
                            refusals.record(crate::auth::Refusal {
                                caller: "unknown".into(),
                                kind: "tls",
                                remote: Some(remote),
                                method: format!("TLS handshake ({name})"),
                                code: tonic::Code::Unauthenticated,
                                reason: e.to_string(),
                            });
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(listener = name, %remote, error = %e, "TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::debug!(listener = name, %remote, "TLS handshake timed out")
                        }
                    }
                });
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}

/// Pause after a failed accept, ms.
const ACCEPT_RETRY_MS: u64 = 50;

/// Handshaken connections waiting for the server to take them.
const TLS_ACCEPTED_QUEUE: usize = 64;

/// Loads the model and builds the analyst. A model that cannot be loaded
/// does not stop the node: it serves what code alone can answer, and every
/// request that needs the model is told why (path and install command).
async fn start_analyst(settings: &crate::config::AnalysisConfig) -> Arc<Analyst> {
    let model_settings = ModelSettings {
        path: settings.model.clone(),
        threads: settings.threads,
        concurrency: settings.concurrency,
        timeout_ms: settings.timeout_ms,
    };
    let loaded = tokio::task::spawn_blocking(move || Model::load(model_settings))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    if let Err(why) = &loaded {
        tracing::error!(error = %why, "analysis node: serving without a model");
    }
    Analyst::new(loaded, settings.categorize_with_model)
}

fn load_signer(config: &Config) -> Result<NoteSigner, NodeError> {
    let err = |reason: String| NodeError::SigningKey {
        path: config.signing_key_file.display().to_string(),
        reason,
    };
    let text = crate::key_file::read_private_key(&config.signing_key_file)
        .map_err(|e| err(e.to_string()))?;
    NoteSigner::from_skey(text.trim()).map_err(|e| err(e.to_string()))
}

/// How long bootstrap waits for each peer's status. A peer that does not
/// answer in time counts as not initialised: on a cluster's first start the
/// peers may not be serving yet (a refused connection fails at once). Long
/// enough for a TCP connect, a TLS handshake and one call on a busy machine:
/// a wiped bootstrap node that misses its peers' answer would initialise a
/// second cluster.
const BOOTSTRAP_PROBE_MS: u64 = 3000;

/// A peer that already belongs to an initialised cluster (it has seen a
/// term), if any answers. Asked on its client listener, as a node.
async fn initialised_peer(config: &Config, network: &Network) -> Option<u64> {
    let limit = Duration::from_millis(BOOTSTRAP_PROBE_MS);
    let probes = config
        .peers
        .iter()
        .filter(|p| p.id != config.id)
        .filter_map(|p| Some((p.id, p.client_addr.clone()?)))
        .map(|(id, addr)| async move {
            let channel = network.channel(id, &addr).ok()?;
            let status = tokio::time::timeout(
                limit,
                proto::admin_client::AdminClient::new(channel)
                    .status(proto::StatusRequest::default()),
            )
            .await
            .ok()?
            .ok()?;
            (status.get_ref().term > 0).then_some(id)
        });
    futures::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .next()
}

/// Initialises the cluster on a fresh log; on any later start it is a no-op.
/// A bootstrap node whose data directory was lost also has a fresh log: if
/// a peer already belongs to a cluster it must not initialise a second one
/// (a new membership entry and an election at term 1); it starts empty and
/// the leader restores it by snapshot, like any wiped node.
async fn bootstrap(raft: &Raft, config: &Config, network: &Network) -> Result<(), NodeError> {
    if raft
        .is_initialized()
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?
    {
        return Ok(());
    }
    if let Some(peer) = initialised_peer(config, network).await {
        tracing::warn!(
            peer,
            "bootstrap = true, but peer {peer} already belongs to an initialised cluster: \
             not initialising; this node waits for the leader to restore its log"
        );
        return Ok(());
    }
    let members: BTreeMap<u64, PeerInfo> = config
        .peers
        .iter()
        .map(|p| {
            (
                p.id,
                PeerInfo {
                    addr: p.addr.clone(),
                    client_addr: p.client_addr.clone().unwrap_or_default(),
                    verifier_key: p.verifier_key.clone(),
                },
            )
        })
        .collect();
    crate::raft::initialize(raft, members)
        .await
        .map_err(NodeError::Raft)
}

/// On the leader: makes the replicated witness set (which every replica
/// checks witness cosignatures against) the one this node's config lists.
async fn sync_witness_keys(config: &Config, proposer: &Proposer, store: &Arc<LedgerStore>) {
    let configured: Vec<String> = config
        .witnesses
        .iter()
        .map(|w| w.verifier_key.trim().to_string())
        .collect();
    let s = store.clone();
    let replicated = match tokio::task::spawn_blocking(move || s.witness_keys()).await {
        Ok(Ok(keys)) => keys,
        _ => return,
    };
    if same_witness_keys(&configured, &replicated) {
        return;
    }
    match proposer
        .propose_local(Command::SetWitnesses {
            verifier_keys: configured,
        })
        .await
    {
        Ok(r) => {
            if let Some(reason) = r.refusal() {
                tracing::error!(reason, "witness keys refused");
            }
        }
        Err(e) => tracing::debug!(error = %e, "witness keys not proposed"),
    }
}

/// On the leader, proposes a checkpoint when the tree grew and either the
/// interval passed or `every_entries` leaves arrived.
async fn checkpoint_ticker(
    config: Config,
    proposer: Proposer,
    store: Arc<LedgerStore>,
    mut applied: watch::Receiver<crate::storage::Applied>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(config.checkpoint.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_checkpoint: Option<u64> = None;
    loop {
        let by_count = tokio::select! {
            _ = tick.tick() => false,
            r = applied.changed() => { if r.is_err() { return; } true }
        };
        if proposer.raft().current_leader().await != Some(config.id) {
            last_checkpoint = None;
            continue;
        }
        // A leader low on disk is handing over; proposing would only be
        // refused, once a tick.
        if proposer.space().is_low() {
            continue;
        }
        sync_witness_keys(&config, &proposer, &store).await;
        let size = applied.borrow().tree_size;
        if last_checkpoint.is_none() {
            let s = store.clone();
            last_checkpoint = tokio::task::spawn_blocking(move || s.checkpoint_sizes(1))
                .await
                .ok()
                .and_then(|r| r.ok())
                .and_then(|v| v.first().copied());
        }
        let due = match last_checkpoint {
            None => true,
            Some(last) if size <= last => false,
            Some(last) => !by_count || size - last >= config.checkpoint.every_entries,
        };
        if !due {
            continue;
        }
        match proposer.propose_local(Command::Checkpoint).await {
            Ok(crate::raft::CommandResponse::Checkpointed { size: Some(s) }) => {
                last_checkpoint = Some(s)
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "checkpoint not proposed"),
        }
        tick.reset();
    }
}

/// What a voter signs with, and the record that keeps it from signing a
/// history that rewrites one it signed before.
struct Cosigner {
    node_id: u64,
    signer: NoteSigner,
    proposer: Proposer,
    store: Arc<LedgerStore>,
    /// The last tree this voter signed (persisted): a new checkpoint is
    /// signed only as a consistency-proven extension of it.
    record: Arc<std::sync::Mutex<SigningRecord>>,
}

/// Signs every checkpoint this voter applies and proposes the signature.
/// It also re-checks the newest checkpoint now and then, so a voter that was
/// down (or caught up by snapshot) signs the checkpoint it missed.
async fn cosign_loop(cosigner: Cosigner, mut sizes: mpsc::UnboundedReceiver<u64>) {
    let mut recheck = tokio::time::interval(Duration::from_millis(COSIGN_RECHECK_MS));
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let size = tokio::select! {
            s = sizes.recv() => match s {
                Some(s) => s,
                None => return,
            },
            _ = recheck.tick() => match newest_unsigned(&cosigner.store, cosigner.signer.key_id()).await {
                Some(s) => s,
                None => continue,
            },
        };
        if !cosign(&cosigner, size).await {
            return;
        }
    }
}

/// The newest checkpoint, if it lacks this key's signature.
async fn newest_unsigned(store: &Arc<LedgerStore>, key_id: u32) -> Option<u64> {
    let s = store.clone();
    tokio::task::spawn_blocking(move || {
        let size = *s.checkpoint_sizes(1).ok()?.first()?;
        let cp = s.checkpoint_at(size).ok()?;
        (!cp.signatures.iter().any(|sig| sig.key_id == key_id)).then_some(size)
    })
    .await
    .ok()
    .flatten()
}

/// Signs the checkpoint at `size` and proposes the signature, retrying while
/// leadership settles. Returns false once Raft has stopped.
async fn cosign(cosigner: &Cosigner, size: u64) -> bool {
    let Cosigner {
        node_id,
        signer,
        proposer,
        store,
        record,
    } = cosigner;
    let node_id = *node_id;
    // Low on disk: neither the signing record nor a proposal can be
    // written. The recheck signs the newest checkpoint once there is room.
    if proposer.space().is_low() {
        tracing::debug!(size, "low on disk space: not signing now");
        return true;
    }
    // Only voters' signatures count; a node still joining as a learner
    // (or removed) would only have its signature refused at apply.
    let is_voter = crate::raft::view(proposer.raft()).is_voter(node_id);
    if !is_voter {
        tracing::debug!(size, "not a voter: not signing");
        return true;
    }
    let last_signed = record
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .last_signed()
        .map(|t| t.size);
    if last_signed.is_some_and(|last| size < last) {
        // A queued older checkpoint after a newer one was signed: nothing
        // to do, and signing it would not extend what was signed.
        tracing::debug!(size, ?last_signed, "older than the last signed checkpoint");
        return true;
    }
    let (s, r) = (store.clone(), record.clone());
    let body = match tokio::task::spawn_blocking(move || -> Result<_, String> {
        let body = s.checkpoint_at(size).map_err(|e| e.to_string())?.body;
        r.lock()
            .unwrap_or_else(|e| e.into_inner())
            .authorize_and_record(&body, |old, new| {
                s.consistency_proof(old, new).map(|(proof, _, _)| proof)
            })
            .map_err(|e| e.to_string())?;
        Ok(body)
    })
    .await
    {
        Ok(Ok(body)) => body,
        other => {
            tracing::error!(size, ?other, "refusing to sign checkpoint");
            return true;
        }
    };
    let line = match signer.sign(&body) {
        Ok(line) => line.to_line(),
        Err(e) => {
            tracing::error!(error = %e, "cannot sign checkpoint");
            return true;
        }
    };
    let cmd = Command::Cosign {
        node_id,
        size,
        line,
    };
    for attempt in 1..=COSIGN_ATTEMPTS_MAX {
        match proposer.propose(cmd.clone()).await {
            Ok(_) => return true,
            Err(e @ (ProposeError::Fatal(_) | ProposeError::Stopping)) => {
                tracing::info!(error = %e, "raft stopped; signer ends");
                return false;
            }
            // The recheck proposes it again once there is room.
            Err(ProposeError::DiskLow(_)) => return true,
            Err(e) => {
                tracing::debug!(size, attempt, error = %e, "cosign not yet accepted");
                tokio::time::sleep(Duration::from_millis(COSIGN_RETRY_MS)).await;
            }
        }
    }
    true
}

/// An accepted connection that ends (reads EOF) when the node stops, even if
/// the peer would keep it open. Without this, a peer's HTTP/2 connection to a
/// stopped in-process node stays up, and its requests keep reaching the old
/// services instead of the node restarted on the same address.
struct Connection {
    inner: tokio::net::TcpStream,
    closed: std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    /// The listener's connection slot, released when the connection ends.
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Connection {
    fn new(
        inner: tokio::net::TcpStream,
        closing: &CancellationToken,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Self {
        Self {
            inner,
            closed: Box::pin(closing.clone().cancelled_owned()),
            _slot: slot,
        }
    }
}

impl tokio::io::AsyncRead for Connection {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if std::future::Future::poll(self.closed.as_mut(), cx).is_ready() {
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Connection {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
