//! A node's link to the leader for the commands it forwards: one
//! long-lived `ForwardStream` per leader instead of a unary `Forward` call
//! per command.
//!
//! A unary call costs a new HTTP/2 stream each time: headers both ways, a
//! task on the leader, a trip through the channel's buffer task here. With
//! clients spread over a three-node cluster, two of every three appends are
//! forwarded, and at 16 clients the cluster spent about 250 µs more CPU per
//! event than with every client at the leader. Over the stream a forward is
//! one message each way; replies carry the id of the request they answer.
//!
//! A leader that predates the stream answers UNIMPLEMENTED when it is
//! opened: nothing was proposed, and this node forwards by unary calls to
//! that leader, trying the stream again after [`STREAM_RETRY_MS`] (a
//! rolling upgrade may have replaced it meanwhile). A stream that breaks
//! with requests in flight fails them UNAVAILABLE: the leader may have
//! proposed them, so their callers retry with their idempotency keys as
//! after any lost answer; a request that never left is sent again on a
//! fresh stream.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use super::intake::Outcome;
use super::network::Network;
use super::proposer::ProposeError;
use super::{Command, NodeId};
use crate::proto::{ForwardRequest, RaftMessage};

/// How long to forward by unary calls to a leader that did not know the
/// stream before trying the stream again, ms.
pub const STREAM_RETRY_MS: u64 = 60_000;

/// What ended a request on a stream without an answer.
#[derive(Debug)]
enum LinkError {
    /// The stream had closed before the request went out: nothing was
    /// sent, so it may be sent again (the command is handed back).
    NotSent(Vec<u8>),
    /// The leader does not serve the stream (UNIMPLEMENTED): nothing was
    /// proposed.
    Unsupported,
    /// The stream broke, or the leader's answer did not decode, after the
    /// request went out: it may or may not have been proposed.
    Lost(Status),
}

/// Where one request's answer goes.
type Answer = oneshot::Sender<Result<Vec<Outcome>, LinkError>>;

/// Requests on one stream that await their answer.
struct Waiting {
    /// `None` once the stream has ended: nothing more is answered.
    replies: Mutex<Option<HashMap<u64, Answer>>>,
}

impl Waiting {
    fn open() -> Self {
        Self {
            replies: Mutex::new(Some(HashMap::new())),
        }
    }

    /// Registers request `id`; `None` if the stream has ended.
    fn register(&self, id: u64) -> Option<oneshot::Receiver<Result<Vec<Outcome>, LinkError>>> {
        let (tx, rx) = oneshot::channel();
        let mut replies = self.replies.lock().expect("forward replies lock");
        replies.as_mut()?.insert(id, tx);
        Some(rx)
    }

    fn forget(&self, id: u64) {
        if let Some(replies) = self.replies.lock().expect("forward replies lock").as_mut() {
            replies.remove(&id);
        }
    }

    fn answer(&self, id: u64, result: Result<Vec<Outcome>, LinkError>) {
        let tx = match self.replies.lock().expect("forward replies lock").as_mut() {
            Some(replies) => replies.remove(&id),
            None => None,
        };
        // The caller may have given up (its commit timeout).
        if let Some(tx) = tx {
            let _ = tx.send(result);
        }
    }

    /// Ends the stream: every request still waiting gets what `why` makes.
    fn close(&self, why: impl Fn() -> LinkError) {
        let waiting = self.replies.lock().expect("forward replies lock").take();
        for (_, tx) in waiting.into_iter().flatten() {
            let _ = tx.send(Err(why()));
        }
    }
}

/// One open stream to one leader.
struct Stream {
    requests: mpsc::UnboundedSender<ForwardRequest>,
    waiting: Arc<Waiting>,
    next_id: AtomicU64,
}

impl Stream {
    /// Opens the stream; a task reads its answers until it ends.
    fn open(network: &Network, leader: NodeId, addr: &str) -> Result<Arc<Self>, ProposeError> {
        let mut client = client(network, leader, addr)?;
        let (requests, outbound) = mpsc::unbounded_channel();
        let waiting = Arc::new(Waiting::open());
        let answers = waiting.clone();
        tokio::spawn(async move {
            let outbound = tokio_stream::wrappers::UnboundedReceiverStream::new(outbound);
            let mut inbound = match client.forward_stream(outbound).await {
                Ok(response) => response.into_inner(),
                Err(status) if status.code() == tonic::Code::Unimplemented => {
                    answers.close(|| LinkError::Unsupported);
                    return;
                }
                Err(status) => {
                    // Refused at the door (this node is not a member) is
                    // said as it came; any other failure to open is one to
                    // retry elsewhere, whatever code the transport gave it.
                    let status = match status.code() {
                        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => status,
                        code => Status::unavailable(format!(
                            "could not open the forward stream to leader {leader} ({code:?}: {}); the write may or may not be in the log: retry with the same idempotency keys",
                            status.message()
                        )),
                    };
                    answers.close(|| LinkError::Lost(status.clone()));
                    return;
                }
            };
            let ended = loop {
                match inbound.message().await {
                    Ok(Some(reply)) => {
                        let outcomes = serde_json::from_slice::<Vec<Outcome>>(&reply.outcomes)
                            .map_err(|e| {
                                LinkError::Lost(Status::internal(format!(
                                    "bad forward reply from leader {leader}: {e}; the write may or may not be in the log"
                                )))
                            });
                        answers.answer(reply.id, outcomes);
                    }
                    Ok(None) => {
                        break Status::unavailable(format!(
                            "leader {leader} closed the forward stream"
                        ))
                    }
                    Err(status) => break status,
                }
            };
            // The transport names a broken connection UNKNOWN, INTERNAL or
            // CANCELLED as it happens: to the caller it is one thing, an
            // answer lost on the way, to retry.
            let ended = Status::unavailable(format!(
                "the forward stream to leader {leader} broke before it answered ({:?}: {}); the write may or may not be in the log: retry with the same idempotency keys",
                ended.code(),
                ended.message()
            ));
            answers.close(|| LinkError::Lost(ended.clone()));
        });
        Ok(Arc::new(Self {
            requests,
            waiting,
            next_id: AtomicU64::new(0),
        }))
    }

    fn is_closed(&self) -> bool {
        self.requests.is_closed()
            || self
                .waiting
                .replies
                .lock()
                .expect("forward replies lock")
                .is_none()
    }

    async fn send(&self, command: Vec<u8>) -> Result<Vec<Outcome>, LinkError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let Some(answer) = self.waiting.register(id) else {
            return Err(LinkError::NotSent(command));
        };
        // A caller that gives up (its commit timeout) leaves no entry
        // behind on a stream that stays open.
        let _forget = Forget {
            waiting: &self.waiting,
            id,
        };
        if let Err(unsent) = self.requests.send(ForwardRequest { id, command }) {
            return Err(LinkError::NotSent(unsent.0.command));
        }
        answer.await.unwrap_or_else(|_| {
            Err(LinkError::Lost(Status::unavailable(
                "the forward stream ended before it answered; the write may or may not be in the log: retry with the same idempotency keys",
            )))
        })
    }
}

/// Removes a request from [`Waiting`] when its caller is done with it,
/// answered or not.
struct Forget<'a> {
    waiting: &'a Waiting,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.waiting.forget(self.id);
    }
}

/// A client of `leader`'s Raft service at `addr`.
fn client(
    network: &Network,
    leader: NodeId,
    addr: &str,
) -> Result<crate::proto::raft_client::RaftClient<tonic::transport::Channel>, ProposeError> {
    network
        .client(leader, addr)
        .map_err(|e| ProposeError::LeaderUnreachable {
            leader,
            reason: e.to_string(),
        })
}

/// How this node reaches one leader.
enum Route {
    Stream(Arc<Stream>),
    /// The leader does not serve the stream: unary calls until then.
    Unary {
        until: Instant,
    },
}

/// The leader (id and address) this node forwards to, and how.
type Current = ((NodeId, String), Route);

/// This node's way to the current leader, replaced when the leader changes
/// (the old stream closes once its last request is answered).
#[derive(Clone)]
pub struct ForwardLinks {
    network: Network,
    current: Arc<Mutex<Option<Current>>>,
}

impl ForwardLinks {
    pub fn new(network: Network) -> Self {
        Self {
            network,
            current: Arc::default(),
        }
    }

    /// The stream to `leader` at `addr`, opened if there is none yet;
    /// `None` while it forwards by unary calls.
    fn stream(&self, leader: NodeId, addr: &str) -> Result<Option<Arc<Stream>>, ProposeError> {
        let mut current = self.current.lock().expect("forward link lock");
        if let Some((key, route)) = current.as_ref() {
            if key.0 == leader && key.1 == addr {
                match route {
                    Route::Stream(s) if !s.is_closed() => return Ok(Some(s.clone())),
                    Route::Unary { until } if Instant::now() < *until => return Ok(None),
                    _ => {}
                }
            }
        }
        let stream = Stream::open(&self.network, leader, addr)?;
        *current = Some(((leader, addr.to_string()), Route::Stream(stream.clone())));
        Ok(Some(stream))
    }

    fn unary_until_retry(&self, leader: NodeId, addr: &str) {
        let until = Instant::now() + Duration::from_millis(STREAM_RETRY_MS);
        *self.current.lock().expect("forward link lock") =
            Some(((leader, addr.to_string()), Route::Unary { until }));
    }

    /// Forwards `cmd` to `leader` at `addr`: one outcome, or one per batch
    /// of a group of appends.
    pub async fn forward(
        &self,
        leader: NodeId,
        addr: &str,
        cmd: &Command,
    ) -> Result<Vec<Outcome>, ProposeError> {
        let mut command = serde_json::to_vec(cmd).expect("commands serialise");
        // A request that never left is sent once more, on a fresh stream.
        for _ in 0..2 {
            let Some(stream) = self.stream(leader, addr)? else {
                return self.unary(leader, addr, command).await;
            };
            match stream.send(command).await {
                Ok(outcomes) => return Ok(outcomes),
                Err(LinkError::NotSent(unsent)) => command = unsent,
                Err(LinkError::Unsupported) => {
                    // Once a minute at most: encoded again rather than
                    // copied for every request in case.
                    self.unary_until_retry(leader, addr);
                    let command = serde_json::to_vec(cmd).expect("commands serialise");
                    return self.unary(leader, addr, command).await;
                }
                Err(LinkError::Lost(status)) => return Err(ProposeError::Forwarded(status)),
            }
        }
        Err(ProposeError::LeaderUnreachable {
            leader,
            reason: "the forward stream closed as soon as it opened".to_string(),
        })
    }

    /// The unary `Forward` call, for a leader that predates the stream: it
    /// answers one command response (a group's is `Grouped`) or a status.
    async fn unary(
        &self,
        leader: NodeId,
        addr: &str,
        command: Vec<u8>,
    ) -> Result<Vec<Outcome>, ProposeError> {
        let resp = client(&self.network, leader, addr)?
            .forward(RaftMessage { data: command })
            .await
            .map_err(ProposeError::Forwarded)?
            .into_inner();
        let response = serde_json::from_slice(&resp.data)
            .map_err(|e| ProposeError::BadForwardReply(e.to_string()))?;
        Ok(match response {
            super::CommandResponse::Grouped { results } => {
                results.into_iter().map(Outcome::Done).collect()
            }
            single => vec![Outcome::Done(single)],
        })
    }
}

#[cfg(test)]
mod tests {
    //! Against fake leaders (tonic servers in this process): an old leader
    //! without the stream is the case a rolling upgrade meets, and no
    //! binary of that version exists here to run.
    use std::pin::Pin;
    use std::sync::atomic::AtomicUsize;

    use futures::StreamExt;
    use tonic::{Request, Response, Streaming};

    use super::*;
    use crate::ledger::event::Event;
    use crate::proto::raft_server::{Raft as RaftService, RaftServer};
    use crate::proto::{ForwardReply, SnapshotChunk};
    use crate::raft::CommandResponse;

    #[derive(Clone, Copy, PartialEq)]
    enum Leader {
        /// Predates the stream: UNIMPLEMENTED, unary calls only.
        Old,
        /// Answers each request on the stream, the latest first.
        Streaming,
        /// Takes one request and closes the stream without answering.
        Hangs,
        /// Takes one request and ends the stream with an error, as a
        /// connection reset reaches the caller.
        Resets,
        /// Takes requests and never answers, never closing the stream.
        Silent,
    }

    #[derive(Clone)]
    struct Fake {
        kind: Leader,
        unary_calls: Arc<AtomicUsize>,
        streams_opened: Arc<AtomicUsize>,
    }

    /// What the fake leader answers for a command: its first event's time
    /// as the index, so each caller can tell its own answer.
    fn answer(command: &[u8]) -> CommandResponse {
        let Ok(Command::Append { events, .. }) = serde_json::from_slice(command) else {
            panic!("the fake leader takes appends");
        };
        let index = events[0].time_unix_nanos as u64;
        CommandResponse::Appended {
            indices: vec![index],
            deduplicated: vec![false],
            tree_size: index + 1,
        }
    }

    type Replies = Pin<Box<dyn futures::Stream<Item = Result<ForwardReply, Status>> + Send>>;
    type Messages = Pin<Box<dyn futures::Stream<Item = Result<RaftMessage, Status>> + Send>>;

    #[tonic::async_trait]
    impl RaftService for Fake {
        async fn append_entries(
            &self,
            _: Request<RaftMessage>,
        ) -> Result<Response<RaftMessage>, Status> {
            Err(Status::unimplemented("fake"))
        }

        type StreamAppendStream = Messages;

        async fn stream_append(
            &self,
            _: Request<Streaming<RaftMessage>>,
        ) -> Result<Response<Messages>, Status> {
            Err(Status::unimplemented("fake"))
        }

        async fn vote(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
            Err(Status::unimplemented("fake"))
        }

        async fn pre_vote(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
            Err(Status::unimplemented("fake"))
        }

        async fn install_snapshot(
            &self,
            _: Request<Streaming<SnapshotChunk>>,
        ) -> Result<Response<RaftMessage>, Status> {
            Err(Status::unimplemented("fake"))
        }

        async fn forward(
            &self,
            req: Request<RaftMessage>,
        ) -> Result<Response<RaftMessage>, Status> {
            self.unary_calls.fetch_add(1, Ordering::SeqCst);
            let data = serde_json::to_vec(&answer(&req.get_ref().data)).unwrap();
            Ok(Response::new(RaftMessage { data }))
        }

        type ForwardStreamStream = Replies;

        async fn forward_stream(
            &self,
            req: Request<Streaming<ForwardRequest>>,
        ) -> Result<Response<Replies>, Status> {
            self.streams_opened.fetch_add(1, Ordering::SeqCst);
            let mut requests = req.into_inner();
            match self.kind {
                Leader::Old => Err(Status::unimplemented("unknown method ForwardStream")),
                Leader::Hangs => {
                    let replies = async_stream(async move {
                        let _ = requests.message().await;
                        Vec::new()
                    });
                    Ok(Response::new(replies))
                }
                Leader::Resets => {
                    let reset = futures::stream::once(async move {
                        let _ = requests.message().await;
                        Err(Status::internal("h2 protocol error: stream reset"))
                    });
                    Ok(Response::new(reset.boxed()))
                }
                Leader::Silent => {
                    let silent = futures::stream::once(async move {
                        while let Ok(Some(_)) = requests.message().await {}
                        std::future::pending::<()>().await;
                        Err(Status::internal("never"))
                    });
                    Ok(Response::new(silent.boxed()))
                }
                Leader::Streaming => {
                    // Gathers what is in flight and answers it newest first,
                    // so answers come out of order.
                    let replies = async_stream(async move {
                        let mut taken = Vec::new();
                        while let Ok(Some(r)) = requests.message().await {
                            taken.push(r);
                            if taken.len() == 8 {
                                break;
                            }
                        }
                        taken.reverse();
                        taken
                            .into_iter()
                            .map(|r| ForwardReply {
                                id: r.id,
                                outcomes: serde_json::to_vec(&[Outcome::Done(answer(&r.command))])
                                    .unwrap(),
                            })
                            .collect()
                    });
                    Ok(Response::new(replies))
                }
            }
        }
    }

    /// A reply stream of what `replies` resolves to, then its end.
    fn async_stream(
        replies: impl std::future::Future<Output = Vec<ForwardReply>> + Send + 'static,
    ) -> Replies {
        futures::stream::once(replies)
            .flat_map(|rs| futures::stream::iter(rs.into_iter().map(Ok)))
            .boxed()
    }

    async fn fake_leader(kind: Leader) -> (Fake, String) {
        let fake = Fake {
            kind,
            unary_calls: Arc::default(),
            streams_opened: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = RaftServer::new(fake.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (fake, addr)
    }

    fn append(n: i64) -> Command {
        let event = Event {
            time_unix_nanos: n,
            actor: crate::ledger::event::Actor {
                id: "alice".into(),
                ..Default::default()
            },
            action: "db.read".into(),
            resource: "payments".into(),
            outcome: crate::ledger::event::Outcome::Success,
            source: "test".into(),
            details: Default::default(),
            idempotency_key: None,
        };
        Command::Append {
            events: vec![event].into(),
            commit_time_unix_nanos: 0,
        }
    }

    fn index_of(outcomes: Vec<Outcome>) -> u64 {
        match outcomes.as_slice() {
            [Outcome::Done(CommandResponse::Appended { indices, .. })] => indices[0],
            other => panic!("expected one append's outcome, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn answers_reach_their_callers_when_they_come_out_of_order() {
        let (fake, addr) = fake_leader(Leader::Streaming).await;
        let links = ForwardLinks::new(Network::new(None));
        let calls = (0..8).map(|n| {
            let (links, addr) = (links.clone(), addr.clone());
            async move { (n, links.forward(1, &addr, &append(n)).await) }
        });
        for (n, result) in futures::future::join_all(calls).await {
            assert_eq!(index_of(result.expect("answered")), n as u64);
        }
        assert_eq!(fake.streams_opened.load(Ordering::SeqCst), 1, "one stream");
        assert_eq!(fake.unary_calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_leader_without_the_stream_is_reached_by_unary_calls() {
        let (fake, addr) = fake_leader(Leader::Old).await;
        let links = ForwardLinks::new(Network::new(None));
        for n in 0..3 {
            let outcomes = links.forward(1, &addr, &append(n)).await.expect("answered");
            assert_eq!(index_of(outcomes), n as u64);
        }
        assert_eq!(fake.unary_calls.load(Ordering::SeqCst), 3);
        // Asked once; not again until STREAM_RETRY_MS has passed.
        assert_eq!(fake.streams_opened.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stream_that_breaks_fails_its_requests_as_perhaps_committed() {
        // Closed cleanly, or reset (which the transport reports INTERNAL):
        // either way the caller hears UNAVAILABLE, to retry, never a bug.
        for kind in [Leader::Hangs, Leader::Resets] {
            let (_fake, addr) = fake_leader(kind).await;
            let links = ForwardLinks::new(Network::new(None));
            match links.forward(1, &addr, &append(7)).await {
                Err(ProposeError::Forwarded(status)) => {
                    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                    assert!(
                        status.message().contains("may or may not be in the log"),
                        "{}",
                        status.message()
                    );
                }
                other => panic!("expected a lost answer, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_leaves_nothing_waiting() {
        let (_fake, addr) = fake_leader(Leader::Silent).await;
        let links = ForwardLinks::new(Network::new(None));
        for n in 0..3 {
            let late = tokio::time::timeout(
                Duration::from_millis(200),
                links.forward(1, &addr, &append(n)),
            )
            .await;
            assert!(late.is_err(), "the silent leader answered");
        }
        let current = links.current.lock().unwrap();
        let Some((_, Route::Stream(stream))) = current.as_ref() else {
            panic!("no stream open");
        };
        let waiting = stream.waiting.replies.lock().unwrap();
        assert_eq!(
            waiting.as_ref().map(HashMap::len),
            Some(0),
            "requests left waiting"
        );
    }
}
