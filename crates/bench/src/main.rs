//! `ironlog-bench`: one closed-loop load generator for Ironlog's gRPC API
//! and for etcd's, so that `scripts/bench-vs-etcd.sh` compares the two
//! under the same clients, the same value size and the same timing.
//!
//! # Layout
//! - `main.rs`: the command line and the JSON report.
//! - `load.rs`: the closed loop: clients, warm-up, measured window,
//!   latency percentiles.
//! - `target.rs`: what one write is on each system: an Ironlog `Append`
//!   of N events, or an etcd `Txn` of N puts.
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

mod load;
mod target;

#[derive(Debug, Parser)]
#[command(
    name = "ironlog-bench",
    about = "Closed-loop write load against Ironlog or etcd"
)]
struct Cli {
    /// Which system to drive.
    #[arg(long, value_enum)]
    target: TargetKind,
    /// Endpoints, comma-separated. Ironlog: any node (followers forward);
    /// etcd: the members' client URLs.
    #[arg(long, env = "IRONLOG_ENDPOINT", value_delimiter = ',')]
    endpoints: Vec<String>,
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Writes per request: events per Append, or puts per Txn.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of load before measuring (connections, caches, leader).
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Bytes each written value has on the wire: an Ironlog event's
    /// protobuf encoding, or an etcd value.
    #[arg(long, default_value_t = 300)]
    value_bytes: usize,
    /// Ironlog: the cluster CA (PEM).
    #[arg(long, env = "IRONLOG_CA")]
    ca: Option<PathBuf>,
    /// Ironlog: the client certificate (PEM) and its key.
    #[arg(long, env = "IRONLOG_CERT")]
    cert: Option<PathBuf>,
    #[arg(long, env = "IRONLOG_KEY")]
    key: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TargetKind {
    Ironlog,
    Etcd,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let shape = load::Shape {
        clients: cli.clients,
        batch: cli.batch,
        warmup: Duration::from_secs(cli.warmup_seconds),
        measured: Duration::from_secs(cli.seconds),
    };
    shape.check()?;
    if cli.endpoints.is_empty() {
        anyhow::bail!("give --endpoints");
    }
    let report = match cli.target {
        TargetKind::Ironlog => {
            let credentials = ironlog::cli::client::Credentials {
                ca: cli.ca,
                cert: cli.cert,
                key: cli.key,
                token: None,
                token_file: None,
            };
            let factory = target::IronlogFactory::new(credentials, cli.endpoints, cli.value_bytes);
            load::run(&factory, &shape).await?
        }
        TargetKind::Etcd => {
            let factory = target::EtcdFactory::new(cli.endpoints, cli.value_bytes);
            load::run(&factory, &shape).await?
        }
    };
    let json = serde_json::json!({
        "target": format!("{:?}", cli.target).to_lowercase(),
        "clients": cli.clients,
        "batch": cli.batch,
        "value_bytes": cli.value_bytes,
        "requests": report.requests,
        "writes": report.requests * cli.batch as u64,
        "seconds": report.seconds,
        "writes_per_second": report.requests as f64 * cli.batch as f64 / report.seconds,
        "p50_ms": report.p50.as_secs_f64() * 1e3,
        "p99_ms": report.p99.as_secs_f64() * 1e3,
        "retried": report.retried,
    });
    println!("{json}");
    Ok(())
}
