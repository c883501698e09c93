//! `ironlog bench append`: a closed-loop append load generator that reports
//! events/s and per-request latency percentiles, so scripts/bench-append.sh
//! can measure a cluster end to end through the real gRPC API.
use std::time::{Duration, Instant};

use clap::Args;

use super::{client, CliError, Global};
use crate::proto;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Events per Append request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// How long to run, seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Bytes of padding in each event's details, to size events.
    #[arg(long, default_value_t = 200)]
    pub details_bytes: usize,
}

/// Longest benchmark run, seconds: load loops are bounded in time.
const BENCH_SECONDS_MAX: u64 = 600;
/// Pause after an UNAVAILABLE answer (no leader for a moment), ms.
const UNAVAILABLE_BACKOFF_MS: u64 = 50;
/// Most concurrent bench clients.
const BENCH_CLIENTS_MAX: usize = 256;

fn event(client: usize, n: u64, pad: &str) -> proto::Event {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i64;
    proto::Event {
        time_unix_nanos: now,
        actor: Some(proto::Actor {
            id: format!("bench-user-{}", n % 50),
            r#type: "user".into(),
            ip: "192.0.2.10".into(),
            user_agent: String::new(),
        }),
        action: "db.read".into(),
        resource: format!("postgres://bench/table{}", n % 20),
        outcome: proto::Outcome::Success as i32,
        source: format!("bench-client-{client}"),
        details_json: format!("{{\"n\":{n},\"pad\":\"{pad}\"}}"),
        idempotency_key: String::new(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub async fn run(global: &Global, args: &BenchArgs) -> Result<(), CliError> {
    if args.clients == 0 || args.clients > BENCH_CLIENTS_MAX {
        return Err(CliError::Usage(format!(
            "--clients must be 1..={BENCH_CLIENTS_MAX}"
        )));
    }
    if args.batch == 0 || args.batch > crate::limits::BATCH_EVENTS_MAX {
        return Err(CliError::Usage(format!(
            "--batch must be 1..={}",
            crate::limits::BATCH_EVENTS_MAX
        )));
    }
    if args.seconds == 0 || args.seconds > BENCH_SECONDS_MAX {
        return Err(CliError::Usage(format!(
            "--seconds must be 1..={BENCH_SECONDS_MAX}"
        )));
    }
    let pad = "x".repeat(args.details_bytes.min(crate::limits::DETAILS_BYTES_MAX / 2));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let channel = client::connect(&global.credentials, &global.endpoint).await?;
        let mut ledger = client::ledger(channel);
        let pad = pad.clone();
        let batch = args.batch;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut unavailable = 0u64;
            let mut n = 0u64;
            while Instant::now() < deadline {
                let events = (0..batch)
                    .map(|_| {
                        n += 1;
                        event(c, n, &pad)
                    })
                    .collect();
                let t = Instant::now();
                match ledger
                    .append(proto::AppendRequest {
                        events,
                        wait_checkpoint: false,
                    })
                    .await
                {
                    Ok(_) => latencies.push(t.elapsed()),
                    // Leadership can move under load: count it, back off, go on.
                    Err(s) if s.code() == tonic::Code::Unavailable => {
                        unavailable += 1;
                        tokio::time::sleep(Duration::from_millis(UNAVAILABLE_BACKOFF_MS)).await;
                    }
                    Err(s) => return Err(s),
                }
            }
            Ok::<_, tonic::Status>((latencies, unavailable))
        }));
    }
    let mut all = Vec::new();
    let mut unavailable = 0;
    for t in tasks {
        let (lat, errors) = t
            .await
            .map_err(|e| CliError::Usage(format!("bench client failed: {e}")))??;
        all.extend(lat);
        unavailable += errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let events = all.len() * args.batch;
    let report = serde_json::json!({
        "clients": args.clients,
        "batch": args.batch,
        "requests": all.len(),
        "events": events,
        "seconds": elapsed,
        "events_per_second": events as f64 / elapsed,
        "p50_ms": percentile(&all, 50.0).as_secs_f64() * 1e3,
        "p99_ms": percentile(&all, 99.0).as_secs_f64() * 1e3,
        "unavailable": unavailable,
    });
    if global.json {
        println!("{report}");
    } else {
        println!(
            "{} events in {:.1} s: {:.0} events/s; append latency p50 {:.1} ms, p99 {:.1} ms ({} clients, {} events per request, {} UNAVAILABLE retried)",
            events,
            elapsed,
            events as f64 / elapsed,
            report["p50_ms"].as_f64().unwrap_or(0.0),
            report["p99_ms"].as_f64().unwrap_or(0.0),
            args.clients,
            args.batch,
            unavailable
        );
    }
    Ok(())
}
