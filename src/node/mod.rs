//! One running node: storage, Raft, the gRPC server (public Ledger and Admin
//! services, the internal Raft service, reflection), the optional read-only
//! HTTP server (C2SP tlog-tiles, `crate::api::tiles`), the checkpoint
//! ticker and the checkpoint signer.
//!
//! # Start-up
//! Opens `ledger.redb`, `raft-log/` and `snapshots/` under the data dir,
//! starts Raft, serves on the given listeners, and (with `bootstrap`) on a
//! fresh log initialises the cluster with the configured peers.
//!
//! # Shutdown
//! Both servers stop accepting, their handlers lose the store, Raft stops,
//! and every accepted connection then reads EOF, so no client connection
//! keeps the database open or keeps reaching the stopped node's services.
//!
//! # Checkpoints
//! The leader proposes [`Command::Checkpoint`](crate::raft::Command::Checkpoint) every `interval_ms` or every
//! `every_entries` new leaves, whichever comes first, if the tree grew. Every
//! voter signs each checkpoint it applies and proposes its signature as
//! [`Command::Cosign`](crate::raft::Command::Cosign), so all replicas gather all signatures.
//!
//! # Witnesses
//! With `[[witnesses]]` configured, the leader also submits each
//! quorum-signed checkpoint to them in the background
//! (`crate::witness::submitter`).
//!
//! # A full disk
//! The node measures its data directory's free space ([`crate::disk`]) and,
//! below `storage.free_bytes_min`, writes nothing: the proposer refuses,
//! the Raft service refuses replication and votes, a leader hands over
//! (`crate::raft::handover`), and the checkpoint ticker and the signer
//! pause. It resumes by itself once there is room. A node started onto a
//! disk below the floor waits, before opening any database, until there is.
//!
//! # Fail-stop
//! If openraft stops on a fatal error anyway (a storage I/O error that got
//! past the floor, a panic), [`run`] logs the cause and returns it, and the
//! process exits non-zero: a supervisor restarts it, and redb recovers from
//! its last commit. A node never lingers answering errors with Raft dead.
//!
//! # Layout
//! - `mod.rs`: [`start`] in named steps (open storage, start Raft, spawn
//!   the background tasks, build the services, serve), [`run`] until a
//!   signal or a fatal Raft error, and [`RunningNode::shutdown`].
//! - `listener.rs`: serving gRPC on one listener: limits, the connection
//!   cap, TLS handshakes off the accept loop, connections that end when
//!   the node stops.
//! - `bootstrap.rs`: initialising the cluster once, never a second time.
//! - `checkpointer.rs`: the leader's checkpoint ticker and witness set.
//! - `signer.rs`: a voter's checkpoint signer.

mod bootstrap;
mod checkpointer;
mod listener;
mod signer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::analysis::analyst::Analyst;
use crate::analysis::anomaly::Catalogue;
use crate::analysis::model::{Model, ModelSettings};
use crate::api::admin_service::AdminApi;
use crate::api::analysis_service::AnalysisApi;
use crate::api::ledger_service::LedgerApi;
use crate::api::tiles::TilesApi;
use crate::api::StoreSlot;
use crate::auth::refusal::RefusalWriter;
use crate::auth::{AuthLayer, Authorizer, Listener as AuthListener, RefusalLog};
use crate::config::{Config, Role};
use crate::disk::FreeSpace;
use crate::limits::{
    APPLIED_FEED_BYTES_MAX, GRPC_CLIENT_CONNECTIONS_MAX, GRPC_MESSAGE_BYTES_MAX,
    GRPC_PEER_CONNECTIONS_MAX, RAFT_MESSAGE_BYTES_MAX,
};
use crate::proto;
use crate::raft::{LogStore, Network, Proposer, Raft, StateMachine};
use crate::storage::applied_feed::{applied_feed, FeedReceiver};
use crate::storage::ledger_store::{LedgerStore, LEDGER_FILE};
use crate::storage::signing_record::SigningRecord;
use crate::tls::{Alpn, ClientCert, TlsMaterial};
use listener::Accept;

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
    #[error("analysis.detections: {0}")]
    Detections(String),
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
    server: ServerTask,
    peer_server: ServerTask,
    http_server: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
    /// The analysis node's analyst, told to stop its model work at shutdown.
    analyst: Option<Arc<Analyst>>,
    /// Told at shutdown to give back its open segment's preallocated space.
    log_store: LogStore,
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
        // Raft writes nothing more: the next start finds the open segment
        // ending at its last record, with no zero tail to cut off.
        self.log_store.release_preallocation().await;
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
    let (addr, peer_addr, http_addr) = listeners.addresses(&config)?;
    let tls = security(&config)?;
    let signer = match config.role {
        Role::Voter => Some(signer::load_signer(&config)?),
        Role::Learner | Role::Analysis => None,
    };
    let mut storage = Storage::open(&config).await?;
    // Only the analysis node's apply hands its new leaves over.
    let analysis = match &config.analysis {
        Some(settings) if config.role == Role::Analysis => {
            // Before anything starts: a bad table is the operator's to fix.
            let catalogue = load_detections(&settings.detections)?;
            Some((settings, catalogue, storage.feed_new_leaves()))
        }
        _ => None,
    };
    let (mut parts, stop, refusal_writer) = Parts::start(&config, storage, tls).await?;
    let mut tasks = parts.spawn_tasks(&config, signer, refusal_writer)?;
    let analyst = match analysis {
        Some((settings, catalogue, fed)) => Some(
            parts
                .start_analyst(settings, catalogue, fed, &mut tasks)
                .await,
        ),
        None => None,
    };
    let http_server = match listeners.http {
        Some(listener) => Some(parts.serve_tiles(listener)?),
        None => None,
    };
    let server = parts.serve_clients(listeners.client, analyst.as_ref())?;
    let peer_server = parts.serve_peers(listeners.peer)?;
    Ok(RunningNode {
        id: config.id,
        addr,
        peer_addr,
        http_addr,
        raft: parts.raft,
        stop,
        slot: parts.slot,
        closing: parts.closing,
        server,
        peer_server,
        http_server,
        tasks,
        analyst,
        log_store: parts.log_store.clone(),
    })
}

/// What the steps of [`start`] share once storage and Raft run.
struct Parts {
    raft: Raft,
    /// The Raft log, which its keeper watches (`raft::log_keeper`).
    log_store: LogStore,
    proposer: Proposer,
    store: Arc<LedgerStore>,
    slot: StoreSlot,
    space: FreeSpace,
    snapshot_dir: PathBuf,
    applied: watch::Receiver<crate::storage::Applied>,
    /// Sizes of checkpoints a voter majority signed, for the witnesses.
    voter_signed: watch::Receiver<u64>,
    /// Sizes of checkpoints as applied, for the signer (taken once).
    new_checkpoints: Option<mpsc::UnboundedReceiver<u64>>,
    stop: watch::Receiver<bool>,
    refusals: RefusalLog,
    authorizer: Arc<Authorizer>,
    tls: Option<TlsMaterial>,
    /// Cancelled at shutdown: every accepted connection then reads EOF.
    closing: CancellationToken,
}

impl Parts {
    /// Starts Raft over `storage` (and on a bootstrap node's first start,
    /// the cluster), and makes what the services share.
    async fn start(
        config: &Config,
        storage: Storage,
        tls: Option<TlsMaterial>,
    ) -> Result<(Parts, watch::Sender<bool>, RefusalWriter), NodeError> {
        let applied = storage.state_machine.subscribe();
        let voter_signed = storage.state_machine.subscribe_voter_signed();
        let network = Network::new(tls.clone());
        let log_store = storage.log_store.clone();
        let raft = crate::raft::start(
            config.id,
            &config.origin,
            &config.raft,
            network.clone(),
            storage.log_store,
            storage.state_machine,
        )
        .await
        .map_err(NodeError::Raft)?;
        let proposer = Proposer::new(raft.clone(), network, storage.space.clone());
        if config.bootstrap {
            bootstrap::bootstrap(&raft, config, proposer.network()).await?;
        }
        let (stop, stop_rx) = watch::channel(false);
        let (refusals, refusal_writer) = RefusalLog::new(config.id);
        let authorizer = Arc::new(Authorizer::new(
            &config.auth,
            config.insecure,
            refusals.clone(),
        ));
        let parts = Parts {
            raft,
            log_store,
            proposer,
            slot: StoreSlot::new(storage.store.clone()),
            store: storage.store,
            space: storage.space,
            snapshot_dir: storage.snapshot_dir,
            applied,
            voter_signed,
            new_checkpoints: Some(storage.new_checkpoints),
            stop: stop_rx,
            refusals,
            authorizer,
            tls,
            closing: CancellationToken::new(),
        };
        Ok((parts, stop, refusal_writer))
    }

    /// Resolves once the node is told to stop.
    fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    }

    /// The background tasks: the checkpoint ticker, the refusal recorder,
    /// the free-space watch and handover, a voter's signer, and the
    /// witness submitter when witnesses are configured.
    fn spawn_tasks(
        &mut self,
        config: &Config,
        signer: Option<crate::ledger::checkpoint::NoteSigner>,
        refusal_writer: RefusalWriter,
    ) -> Result<Vec<JoinHandle<()>>, NodeError> {
        let mut tasks = vec![
            tokio::spawn(checkpointer::checkpoint_ticker(
                config.clone(),
                self.proposer.clone(),
                self.store.clone(),
                self.applied.clone(),
            )),
            tokio::spawn(record_refusals(
                refusal_writer,
                self.proposer.clone(),
                self.stop.clone(),
            )),
            tokio::spawn(self.space.clone().watch(self.stop.clone())),
            tokio::spawn(crate::raft::handover::run(
                self.raft.clone(),
                self.space.clone(),
            )),
            tokio::spawn(crate::raft::log_keeper::run(
                self.raft.clone(),
                self.log_store.clone(),
                config.raft.log_purge_bytes,
            )),
        ];
        if let (Some(signer), Some(new_checkpoints)) = (signer, self.new_checkpoints.take()) {
            let record =
                SigningRecord::open(&config.data_dir).map_err(|e| storage_error(config, &e))?;
            tasks.push(tokio::spawn(signer::cosign_loop(
                signer::Cosigner {
                    node_id: config.id,
                    signer,
                    proposer: self.proposer.clone(),
                    store: self.store.clone(),
                    record: Arc::new(std::sync::Mutex::new(record)),
                },
                new_checkpoints,
            )));
        }
        if !config.witnesses.is_empty() {
            let submitter = crate::witness::submitter::Submitter::new(
                config.id,
                &config.witnesses,
                self.proposer.clone(),
                self.store.clone(),
            )?;
            tasks.push(tokio::spawn(submitter.run(self.voter_signed.clone())));
        }
        Ok(tasks)
    }

    /// The analysis node's analyst, following the log (`fed` by apply) and
    /// categorising.
    async fn start_analyst(
        &self,
        settings: &crate::config::AnalysisConfig,
        catalogue: Arc<Catalogue>,
        fed: FeedReceiver,
        tasks: &mut Vec<JoinHandle<()>>,
    ) -> Arc<Analyst> {
        let analyst = load_analyst(settings, catalogue).await;
        tasks.push(tokio::spawn(Arc::clone(&analyst).follow(
            self.store.clone(),
            self.applied.clone(),
            fed,
            self.stop.clone(),
        )));
        tasks.push(tokio::spawn(
            Arc::clone(&analyst).categorize_pending(self.stop.clone()),
        ));
        analyst
    }

    /// The read-only tlog-tiles endpoint over HTTP/1.
    fn serve_tiles(&self, listener: TcpListener) -> Result<JoinHandle<()>, NodeError> {
        let tls = match &self.tls {
            Some(t) => Some(t.server_config(ClientCert::Optional, Alpn::Http1)?),
            None => None,
        };
        let router = TilesApi::new(self.slot.clone(), self.raft.clone())
            .router_with(self.authorizer.clone());
        Ok(tokio::spawn(crate::http_server::serve(
            listener,
            router,
            tls,
            crate::http_server::HttpLimits::default(),
            self.closing.clone(),
            self.stopped(),
        )))
    }

    /// The client listener: Ledger, Admin, reflection, and Analysis on the
    /// analysis node.
    fn serve_clients(
        &self,
        listener: TcpListener,
        analyst: Option<&Arc<Analyst>>,
    ) -> Result<ServerTask, NodeError> {
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| NodeError::Serve(e.to_string()))?;
        let ledger = proto::ledger_server::LedgerServer::new(LedgerApi::new(
            self.slot.clone(),
            self.proposer.clone(),
            self.applied.clone(),
            self.stop.clone(),
            self.refusals.clone(),
        ))
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX);
        let admin = proto::admin_server::AdminServer::new(AdminApi::new(
            self.raft.clone(),
            self.slot.clone(),
            self.proposer.network().clone(),
            self.refusals.clone(),
        ));
        let analysis = analyst.map(|analyst| {
            proto::analysis_server::AnalysisServer::new(AnalysisApi::new(
                Arc::clone(analyst),
                self.slot.clone(),
                self.raft.clone(),
                self.stop.clone(),
            ))
        });
        let router = listener::grpc_server()
            .layer(AuthLayer::new(
                self.authorizer.clone(),
                AuthListener::Client,
            ))
            .add_service(ledger)
            .add_service(admin)
            .add_service(reflection)
            .add_optional_service(analysis);
        let accept = self.accept(listener, GRPC_CLIENT_CONNECTIONS_MAX, "client listener");
        let tls = self.tls.as_ref();
        Ok(listener::serve(
            router,
            accept,
            tls,
            ClientCert::Optional,
            self.stopped(),
        )?)
    }

    /// The peer listener: the internal Raft service, to nodes only.
    fn serve_peers(&self, listener: TcpListener) -> Result<ServerTask, NodeError> {
        let raft_service = proto::raft_server::RaftServer::new(crate::raft::service::RaftRpc::new(
            self.proposer.clone(),
            self.snapshot_dir.clone(),
            self.refusals.clone(),
        ))
        .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX);
        let router = listener::grpc_server()
            .layer(AuthLayer::new(self.authorizer.clone(), AuthListener::Peer))
            .add_service(raft_service);
        let accept = self.accept(listener, GRPC_PEER_CONNECTIONS_MAX, "peer listener");
        let tls = self.tls.as_ref();
        Ok(listener::serve(
            router,
            accept,
            tls,
            ClientCert::Required,
            self.stopped(),
        )?)
    }

    fn accept(&self, listener: TcpListener, max: usize, name: &'static str) -> Accept {
        Accept {
            listener,
            closing: self.closing.clone(),
            max,
            name,
            refusals: self.authorizer.refusals().clone(),
        }
    }
}

/// A gRPC server's task.
type ServerTask = JoinHandle<Result<(), tonic::transport::Error>>;

impl Listeners {
    /// Where each listener listens (the client, peer and HTTP addresses).
    fn addresses(
        &self,
        config: &Config,
    ) -> Result<(SocketAddr, SocketAddr, Option<SocketAddr>), NodeError> {
        let local = |l: &TcpListener, addr: SocketAddr| {
            l.local_addr().map_err(|e| NodeError::Listen {
                addr,
                reason: e.to_string(),
            })
        };
        let client = local(&self.client, config.listen)?;
        let peer = local(&self.peer, config.peer_listen)?;
        let http = match &self.http {
            Some(l) => Some(local(l, config.http_listen.unwrap_or(client))?),
            None => None,
        };
        Ok((client, peer, http))
    }
}

fn storage_error(config: &Config, e: &dyn std::fmt::Display) -> NodeError {
    NodeError::Storage {
        path: config.data_dir.display().to_string(),
        reason: e.to_string(),
    }
}

/// What start-up opens under the data directory, in this order: the free
/// space check (a node started on a full disk waits here, before opening
/// anything), the ledger, the Raft log, the snapshots.
struct Storage {
    space: FreeSpace,
    store: Arc<LedgerStore>,
    log_store: LogStore,
    state_machine: StateMachine,
    snapshot_dir: PathBuf,
    /// Sizes of checkpoints as they are applied, for the signer.
    new_checkpoints: mpsc::UnboundedReceiver<u64>,
}

impl Storage {
    async fn open(config: &Config) -> Result<Storage, NodeError> {
        let err = |e: &dyn std::fmt::Display| storage_error(config, e);
        std::fs::create_dir_all(&config.data_dir).map_err(|e| err(&e))?;
        let space = FreeSpace::new(config.id, &config.data_dir, config.storage.free_bytes_min);
        space.wait_for_room().await.map_err(|e| err(&e))?;
        let store = Arc::new(
            LedgerStore::open_with_cache(
                &config.data_dir.join(LEDGER_FILE),
                &config.origin,
                config.storage.ledger_cache_bytes,
            )
            .map_err(|e| err(&e))?,
        );
        let log_store = LogStore::open_with_tail(
            &config.data_dir.join("raft-log"),
            usize::try_from(config.raft.log_memory_bytes).unwrap_or(usize::MAX),
        )
        .map_err(|e| err(&e))?;
        let snapshot_dir = config.data_dir.join("snapshots");
        let (mut state_machine, new_checkpoints) =
            StateMachine::open(store.clone(), &snapshot_dir).map_err(|e| err(&e))?;
        state_machine.durable_within(log_store.durable_end());
        Ok(Storage {
            space,
            store,
            log_store,
            state_machine,
            snapshot_dir,
            new_checkpoints,
        })
    }

    /// Makes the state machine hand each apply's new leaves to the returned
    /// receiver; before Raft starts, so no apply is missed.
    fn feed_new_leaves(&mut self) -> FeedReceiver {
        let (tx, rx) = applied_feed(APPLIED_FEED_BYTES_MAX);
        self.state_machine.feed_new_leaves(tx);
        rx
    }
}

/// Appends the refusals this node records to the ledger, through Raft like
/// any event.
async fn record_refusals(writer: RefusalWriter, proposer: Proposer, stop: watch::Receiver<bool>) {
    writer
        .run(
            move |event| {
                let proposer = proposer.clone();
                async move {
                    let cmd = crate::raft::Command::Append {
                        events: vec![event].into(),
                        commit_time_unix_nanos: 0,
                    };
                    proposer
                        .propose(cmd)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
            },
            stop,
        )
        .await
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

/// Loads the model and builds the analyst. A model that cannot be loaded
/// does not stop the node: it serves what code alone can answer, and every
/// request that needs the model is told why (path and install command).
async fn load_analyst(
    settings: &crate::config::AnalysisConfig,
    catalogue: Arc<Catalogue>,
) -> Arc<Analyst> {
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
    Analyst::with_catalogue(loaded, settings.categorize_with_model, catalogue)
}

/// The built-in detections and the organisation's own tables
/// (`analysis.detections`), checked together.
fn load_detections(paths: &[std::path::PathBuf]) -> Result<Arc<Catalogue>, NodeError> {
    if paths.is_empty() {
        return Ok(Catalogue::builtin());
    }
    let catalogue = read_detection_tables(paths, true).map_err(NodeError::Detections)?;
    tracing::info!(
        detections = catalogue.len(),
        tables = paths.len(),
        "analysis node: the organisation's detection tables added to the built-in ones"
    );
    Ok(Arc::new(catalogue))
}

/// The detections of the tables at `paths`, with the built-in ones or
/// alone, checked together; the problem in words, naming the file (and the
/// detection) otherwise. The node's `analysis.detections` and `ironlog
/// detect --catalogue` both read tables through here.
pub fn read_detection_tables(
    paths: &[std::path::PathBuf],
    with_builtin: bool,
) -> Result<Catalogue, String> {
    let mut tables = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        tables.push((path.display().to_string(), text));
    }
    let named: Vec<(&str, &str)> = tables
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let parsed = if with_builtin {
        Catalogue::with_builtin(&named)
    } else {
        Catalogue::parse(&named)
    };
    parsed.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_organisations_detection_tables_load_or_stop_the_node_naming_the_problem() {
        assert_eq!(
            load_detections(&[]).unwrap().len(),
            Catalogue::builtin().len()
        );
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("acme.toml");
        std::fs::write(
            &good,
            "[[detection]]\nid = \"acme.vault\"\nwhat = \"opened the vault\"\nscore = 0.9\nsource = [\"cloudtrail\"]\n",
        )
        .unwrap();
        assert_eq!(
            load_detections(std::slice::from_ref(&good)).unwrap().len(),
            Catalogue::builtin().len() + 1
        );
        let missing = dir.path().join("missing.toml");
        let err = load_detections(&[missing]).unwrap_err().to_string();
        assert!(
            err.contains("cannot read") && err.contains("missing.toml"),
            "{err}"
        );
        let bad = dir.path().join("bad.toml");
        std::fs::write(
            &bad,
            "[[detection]]\nid = \"acme.bad\"\nwhat = \"w\"\nscore = 0.5\nsource = [\"syslog\"]\n",
        )
        .unwrap();
        let err = load_detections(&[bad]).unwrap_err().to_string();
        assert!(
            err.contains("bad.toml") && err.contains("\"acme.bad\"") && err.contains("syslog"),
            "{err}"
        );
    }
}
