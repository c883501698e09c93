//! The closed loop: every client sends one request, waits for its answer,
//! and sends the next; requests that start inside the measured window count.
//! A request is whatever the target's [`Client`] sends: a write of a batch,
//! or one proof.
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

#[derive(Clone, Debug)]
pub struct Shape {
    pub clients: usize,
    pub batch: usize,
    pub warmup: Duration,
    pub measured: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("--clients must be 1..={CLIENTS_MAX}, not {0}")]
    Clients(usize),
    #[error("--batch must be 1..={BATCH_MAX}, not {0}")]
    Batch(usize),
    #[error("--seconds must be 1..={SECONDS_MAX}, not {0}")]
    Seconds(u64),
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
        Ok(())
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
    /// Requests that started in the measured window and succeeded.
    pub requests: u64,
    pub seconds: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Requests the target asked to retry.
    pub retried: u64,
}

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
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let mut latencies = Vec::new();
            let mut retried = 0u64;
            // Requests are numbered per client so that no two requests of a
            // run write the same key (or draw the same random leaf).
            let mut n = (c as u64) << 40;
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                let fatal = |reason| LoadError::Request { client: c, reason };
                match client.request(n, batch).await {
                    Ok(()) => {
                        if t >= measure_from {
                            latencies.push(t.elapsed());
                        }
                        client.check(n).await.map_err(fatal)?;
                    }
                    Err(RequestError::Retry) => {
                        retried += 1;
                        tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS)).await;
                    }
                    Err(RequestError::Fatal(reason)) => return Err(fatal(reason)),
                }
                n += batch as u64;
            }
            Ok((latencies, retried))
        }));
    }
    let mut all = Vec::new();
    let mut retried = 0;
    for t in tasks {
        let (latencies, r) = t.await??;
        all.extend(latencies);
        retried += r;
    }
    all.sort_unstable();
    Ok(Report {
        requests: all.len() as u64,
        seconds: shape.measured.as_secs_f64(),
        p50: percentile(&all, 50.0),
        p99: percentile(&all, 99.0),
        retried,
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
        };
        assert!(ok.check().is_ok());
        let none = Shape {
            clients: 0,
            ..ok.clone()
        };
        assert!(matches!(none.check(), Err(LoadError::Clients(0))));
        let huge = Shape {
            batch: BATCH_MAX + 1,
            ..ok
        };
        assert!(matches!(huge.check(), Err(LoadError::Batch(_))));
    }
}
