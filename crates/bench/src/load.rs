//! The load: by default a closed loop, where every client sends one
//! request, waits for its answer, and sends the next; requests that start
//! inside the measured window count. With a rate ([`Shape::rate`]) it is
//! an open loop instead: each request has a time it is due, the clients
//! take turns at a fixed interval, and a request's latency runs from when
//! it was due, not from when a client that fell behind got round to it (so
//! a stall shows in the percentiles as long as it lasted, rather than as
//! one slow request: no coordinated omission). A request is whatever the
//! target's [`Client`] sends: a write of a batch, or one proof.
use std::future::Future;
use std::time::{Duration, Instant};

/// Most concurrent clients: one connection each.
pub const CLIENTS_MAX: usize = 1024;
/// Most writes in one request (Ironlog's `BATCH_EVENTS_MAX` bounds it further).
/// Reads (proofs) are one per request.
pub const BATCH_MAX: usize = 1000;
/// Longest measured window, seconds.
pub const SECONDS_MAX: u64 = 600;
/// Pause after a request the target asked to retry (no leader for a moment), ms.
const RETRY_BACKOFF_MS: u64 = 20;
/// Highest open-loop rate, requests per second over all clients.
pub const RATE_MAX_PER_S: f64 = 1_000_000.0;

#[derive(Clone, Debug)]
pub struct Shape {
    pub clients: usize,
    pub batch: usize,
    pub warmup: Duration,
    pub measured: Duration,
    /// Open loop at this many requests per second over all clients; `None`
    /// is the closed loop.
    pub rate: Option<f64>,
}

/// One measured request: when it was due, seconds into the measured
/// window, and how long it took, ms.
pub type Sample = (f64, f64);

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("--clients must be 1..={CLIENTS_MAX}, not {0}")]
    Clients(usize),
    #[error("--batch must be 1..={BATCH_MAX}, not {0}")]
    Batch(usize),
    #[error("--seconds must be 1..={SECONDS_MAX}, not {0}")]
    Seconds(u64),
    #[error("--rate must be above 0 and at most {RATE_MAX_PER_S} requests/s, not {0}")]
    Rate(f64),
    #[error("connecting client {client}: {reason}")]
    Connect { client: usize, reason: String },
    #[error("client {client}: {reason}")]
    Request { client: usize, reason: String },
    #[error("a client task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Shape {
    pub fn check(&self) -> Result<(), LoadError> {
        if !(1..=CLIENTS_MAX).contains(&self.clients) {
            return Err(LoadError::Clients(self.clients));
        }
        if !(1..=BATCH_MAX).contains(&self.batch) {
            return Err(LoadError::Batch(self.batch));
        }
        let s = self.measured.as_secs();
        if !(1..=SECONDS_MAX).contains(&s) {
            return Err(LoadError::Seconds(s));
        }
        if let Some(rate) = self.rate {
            if !(rate > 0.0 && rate <= RATE_MAX_PER_S) {
                return Err(LoadError::Rate(rate));
            }
        }
        Ok(())
    }

    /// When client `c`'s `k`th request is due after `start`, in the open
    /// loop: the clients take turns, so requests are due evenly over time
    /// at the rate. `None` in the closed loop (send at once).
    fn due(&self, start: Instant, c: usize, k: u64) -> Option<Instant> {
        let rate = self.rate?;
        // Request number k * clients + c of the whole run.
        let nth = k as f64 * self.clients as f64 + c as f64;
        Some(start + Duration::from_secs_f64(nth / rate))
    }
}

/// Why one request did not succeed.
pub enum RequestError {
    /// The target said "not now" (no leader, leader moving): back off, go on.
    Retry,
    /// Anything else ends the run.
    Fatal(String),
}

/// One client's connection to the system under test.
pub trait Client: Send + 'static {
    /// Sends request number `n` (unique in the run) and waits for its
    /// answer: `batch` writes numbered from `n`, or one read. Timed.
    fn request(
        &mut self,
        n: u64,
        batch: usize,
    ) -> impl Future<Output = Result<(), RequestError>> + Send;

    /// Work on the answer to request `n` that is not part of serving it,
    /// such as verifying a sampled proof: run after the request's latency
    /// is taken, so it never shows in the percentiles (it does take time
    /// from the client's loop, so keep it to a small sample). A failed
    /// check ends the run.
    fn check(&mut self, n: u64) -> impl Future<Output = Result<(), String>> + Send {
        let _ = n;
        async { Ok(()) }
    }
}

/// Makes one connected client per closed loop.
pub trait Factory {
    type Client: Client;
    fn connect(&self, client: usize) -> impl Future<Output = Result<Self::Client, String>>;
}

pub struct Report {
    /// Requests that started in the measured window and succeeded (open
    /// loop: that were due in it), the ones the percentiles are over.
    pub requests: u64,
    /// What the throughput is: the closed loop's `requests`; in the open
    /// loop, requests answered inside the measured window (an open loop's
    /// requests are due at the rate whether or not the target keeps up).
    pub completed: u64,
    pub seconds: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Requests the target asked to retry.
    pub retried: u64,
    /// Open loop: measured requests that went out later than they were due
    /// by more than [`LATE_MS`], because their client was still waiting for
    /// an earlier answer.
    pub late: u64,
    /// Every measured request, in the order they were due.
    pub timeline: Vec<Sample>,
}

/// How late an open-loop request may go out and not count as late, ms.
/// Tokio's timer wakes a sleeper on the next 1 ms tick, so every request
/// may go up to 1 ms late on its own.
pub const LATE_MS: u64 = 2;

pub async fn run<F: Factory>(factory: &F, shape: &Shape) -> Result<Report, LoadError> {
    // Connect every client before the clock starts.
    let mut clients = Vec::with_capacity(shape.clients);
    for c in 0..shape.clients {
        let client = factory
            .connect(c)
            .await
            .map_err(|reason| LoadError::Connect { client: c, reason })?;
        clients.push(client);
    }
    let start = Instant::now() + Duration::from_millis(100);
    let measure_from = start + shape.warmup;
    let end = measure_from + shape.measured;
    let batch = shape.batch;
    let mut tasks = Vec::with_capacity(shape.clients);
    for (c, mut client) in clients.into_iter().enumerate() {
        let shape = shape.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let mut latencies = Vec::new();
            let (mut retried, mut late, mut completed) = (0u64, 0u64, 0u64);
            // Requests are numbered per client so that no two requests of a
            // run write the same key (or draw the same random leaf).
            let mut n = (c as u64) << 40;
            for k in 0.. {
                // Closed loop: the request is due now; open loop: at its
                // turn, waited for if it is still ahead.
                let due = match shape.due(start, c, k) {
                    Some(due) => {
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                if due >= end {
                    break;
                }
                let sent = Instant::now();
                let fatal = |reason| LoadError::Request { client: c, reason };
                loop {
                    match client.request(n, batch).await {
                        Ok(()) => {
                            let done = Instant::now();
                            if due >= measure_from {
                                latencies.push((due - measure_from, done - due));
                                if sent.duration_since(due) > Duration::from_millis(LATE_MS) {
                                    late += 1;
                                }
                            }
                            let in_window = (measure_from..end).contains(&done);
                            if shape.rate.is_some() && in_window {
                                completed += 1;
                            }
                            client.check(n).await.map_err(fatal)?;
                        }
                        Err(RequestError::Retry) => {
                            retried += 1;
                            tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS)).await;
                            // Open loop: the same request again, still timed
                            // from when it was due, so the wait counts.
                            if shape.rate.is_some() {
                                continue;
                            }
                        }
                        Err(RequestError::Fatal(reason)) => return Err(fatal(reason)),
                    }
                    break;
                }
                n += batch as u64;
            }
            Ok((latencies, retried, late, completed))
        }));
    }
    let (mut retried, mut late, mut completed) = (0, 0, 0);
    let mut timeline = Vec::new();
    for t in tasks {
        let (latencies, r, l, done) = t.await??;
        timeline.extend(latencies);
        retried += r;
        late += l;
        completed += done;
    }
    timeline.sort_unstable();
    let mut all: Vec<Duration> = timeline.iter().map(|(_, took)| *took).collect();
    all.sort_unstable();
    Ok(Report {
        requests: all.len() as u64,
        completed: if shape.rate.is_some() {
            completed
        } else {
            all.len() as u64
        },
        seconds: shape.measured.as_secs_f64(),
        p50: percentile(&all, 50.0),
        p99: percentile(&all, 99.0),
        retried,
        late,
        timeline: timeline
            .into_iter()
            .map(|(due, took)| (due.as_secs_f64(), took.as_secs_f64() * 1e3))
            .collect(),
    })
}

/// The `p`th percentile of sorted latencies (nearest rank).
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&ms, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&ms, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&ms[..1], 99.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn shapes_outside_the_limits_are_refused() {
        let ok = Shape {
            clients: 16,
            batch: 1,
            warmup: Duration::from_secs(1),
            measured: Duration::from_secs(10),
            rate: None,
        };
        assert!(ok.check().is_ok());
        let none = Shape {
            clients: 0,
            ..ok.clone()
        };
        assert!(matches!(none.check(), Err(LoadError::Clients(0))));
        let huge = Shape {
            batch: BATCH_MAX + 1,
            ..ok.clone()
        };
        assert!(matches!(huge.check(), Err(LoadError::Batch(_))));
        for rate in [0.0, -1.0, f64::NAN, RATE_MAX_PER_S * 2.0] {
            let bad = Shape {
                rate: Some(rate),
                ..ok.clone()
            };
            assert!(matches!(bad.check(), Err(LoadError::Rate(_))), "{rate}");
        }
    }

    #[test]
    fn open_loop_requests_are_due_in_turn_at_the_rate() {
        let shape = Shape {
            clients: 4,
            batch: 1,
            warmup: Duration::from_secs(1),
            measured: Duration::from_secs(1),
            rate: Some(1000.0),
        };
        let start = Instant::now();
        let at = |c, k| shape.due(start, c, k).unwrap() - start;
        // One request per millisecond over the run: the clients take turns.
        assert_eq!(at(0, 0), Duration::ZERO);
        assert_eq!(at(3, 0), Duration::from_millis(3));
        assert_eq!(at(0, 1), Duration::from_millis(4));
        assert_eq!(at(1, 250), Duration::from_millis(1001));
        let closed = Shape {
            rate: None,
            ..shape
        };
        assert_eq!(closed.due(start, 0, 7), None);
    }

    /// A target that answers after a fixed delay, or after a long stall
    /// on one request.
    struct Slow {
        delay: Duration,
        stall_at: Option<u64>,
        stall: Duration,
    }

    impl Client for Slow {
        async fn request(&mut self, n: u64, _batch: usize) -> Result<(), RequestError> {
            let pause = if Some(n) == self.stall_at {
                self.stall
            } else {
                self.delay
            };
            tokio::time::sleep(pause).await;
            Ok(())
        }
    }

    /// Slow clients: answering after `delay`, but request `stall_at`
    /// after 300 ms.
    struct SlowFactory(Option<u64>, Duration);

    impl Factory for SlowFactory {
        type Client = Slow;
        async fn connect(&self, _client: usize) -> Result<Slow, String> {
            Ok(Slow {
                delay: self.1,
                stall_at: self.0,
                stall: Duration::from_millis(300),
            })
        }
    }

    #[tokio::test]
    async fn an_open_loop_keeps_its_rate_and_counts_a_stall_against_every_request_it_delays() {
        let shape = Shape {
            clients: 1,
            batch: 1,
            warmup: Duration::from_millis(0),
            measured: Duration::from_secs(1),
            rate: Some(200.0),
        };
        let ms = Duration::from_millis(1);
        let steady = run(&SlowFactory(None, ms), &shape).await.unwrap();
        // 200 requests due in the second; a 1 ms answer never falls behind.
        assert!(
            (190..=200).contains(&steady.requests),
            "{}",
            steady.requests
        );
        assert!(steady.p99 < Duration::from_millis(100), "{:?}", steady.p99);
        // One request of client 0 stalls 300 ms: the 60 requests due in
        // that time wait behind it and are as late as the stall left them,
        // so well over 1% of the run is slow, not one request in 200.
        let stalled = run(&SlowFactory(Some(10), ms), &shape).await.unwrap();
        assert!(stalled.late >= 50, "{}", stalled.late);
        // The timeline shows them together: every slow request was due
        // during the stall (from 50 ms, request 10, for 300 ms) or the
        // backlog it left, none in the rest of the second.
        assert_eq!(stalled.timeline.len() as u64, stalled.requests);
        let slow: Vec<f64> = stalled
            .timeline
            .iter()
            .filter(|(_, ms)| *ms > 100.0)
            .map(|(due, _)| *due)
            .collect();
        assert!(slow.len() >= 30, "{slow:?}");
        assert!(
            slow.iter().all(|due| (0.04..0.55).contains(due)),
            "{slow:?}"
        );
        // The backlog drains within the window: all are answered in it.
        assert!(stalled.completed >= 190, "{}", stalled.completed);
        // A target that cannot keep up (10 ms an answer, one client, 200
        // due a second) is measured at what it answered, not at the rate.
        let slow = run(&SlowFactory(None, 10 * ms), &shape).await.unwrap();
        assert!(slow.completed <= 100, "{}", slow.completed);
        assert!(slow.requests >= 190, "{}", slow.requests);
        assert!(
            stalled.p99 >= Duration::from_millis(200),
            "{:?}",
            stalled.p99
        );
        // The closed loop, by contrast, sees one slow request.
        let closed = Shape {
            rate: None,
            ..shape
        };
        let closed = run(&SlowFactory(Some(10), ms), &closed).await.unwrap();
        assert_eq!(closed.late, 0);
        assert!(closed.p50 < Duration::from_millis(100), "{:?}", closed.p50);
    }
}
