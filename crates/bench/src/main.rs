//! `ironlog-bench`: one load generator (closed loop, or open at a given rate) for Ironlog's gRPC API
//! and for etcd's, so that `scripts/bench-vs-etcd.sh` compares the two
//! under the same clients, the same value size and the same timing, and
//! `scripts/bench-proofs.sh` measures Ironlog's proof serving the same way.
//!
//! # Layout
//! - `main.rs`: the command line and the JSON report.
//! - `load.rs`: the closed loop, or an open one at a given rate: clients,
//!   warm-up, measured window, latency percentiles.
//! - `target.rs`: what one write is on each system: an Ironlog `Append`
//!   of N events, or an etcd `Txn` of N puts.
//! - `proofs.rs`: what one proof request is on Ironlog (`--op inclusion`
//!   or `--op consistency`): random leaves and sizes under one checkpoint,
//!   a sample of the answers verified.
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

mod load;
mod proofs;
mod target;

#[derive(Debug, Parser)]
#[command(
    name = "ironlog-bench",
    about = "Write load (closed loop, or open at --rate) against Ironlog or etcd, or proof load against Ironlog"
)]
struct Cli {
    /// Which system to drive.
    #[arg(long, value_enum)]
    target: TargetKind,
    /// What each request does: an append (a write of --batch values), or,
    /// on Ironlog only, an inclusion proof of a random leaf or a
    /// consistency proof between two random tree sizes.
    #[arg(long, value_enum, default_value_t = Op::Append)]
    op: Op,
    /// Endpoints, comma-separated. Ironlog: any node (followers forward);
    /// etcd: the members' client URLs.
    #[arg(long, env = "IRONLOG_ENDPOINT", value_delimiter = ',')]
    endpoints: Vec<String>,
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Writes per request: events per Append, or puts per Txn (appends only).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Open loop: requests per second over all clients, each request due at
    /// its turn and timed from then (0: the closed loop, each client sending
    /// as soon as its last answer is in).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Also write every measured request as a JSON line, `[due, ms]`: when
    /// it was due (seconds into the measured window) and how long it took,
    /// to see whether slow requests come together (a stall) or apart.
    #[arg(long)]
    timeline: Option<PathBuf>,
    /// Seconds of load before measuring (connections, caches, leader).
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Bytes each written value has on the wire: an Ironlog event's
    /// protobuf encoding, or an etcd value.
    #[arg(long, default_value_t = 300)]
    value_bytes: usize,
    /// The CA (PEM) that https:// endpoints present certificates of:
    /// Ironlog's cluster CA, or the one etcd's members were issued by.
    #[arg(long, env = "IRONLOG_CA")]
    ca: Option<PathBuf>,
    /// The client certificate (PEM) and its key, presented to https://
    /// endpoints.
    #[arg(long, env = "IRONLOG_CERT")]
    cert: Option<PathBuf>,
    #[arg(long, env = "IRONLOG_KEY")]
    key: Option<PathBuf>,
    /// Proofs: the tree size of the checkpoint to prove within, read from
    /// the first endpoint; 0 is the latest checkpoint.
    #[arg(long, default_value_t = 0)]
    tree_size: u64,
    /// Proofs: each client verifies every Nth proof it receives (1: all),
    /// outside the timed request.
    #[arg(long, default_value_t = 100)]
    verify_every: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TargetKind {
    Ironlog,
    Etcd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Op {
    Append,
    Inclusion,
    Consistency,
}

impl Op {
    /// The proof each request asks for; `None` for appends.
    fn proof(self) -> Option<proofs::ProofKind> {
        match self {
            Op::Append => None,
            Op::Inclusion => Some(proofs::ProofKind::Inclusion),
            Op::Consistency => Some(proofs::ProofKind::Consistency),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let shape = load::Shape {
        clients: cli.clients,
        batch: cli.batch,
        warmup: Duration::from_secs(cli.warmup_seconds),
        measured: Duration::from_secs(cli.seconds),
        rate: (cli.rate != 0.0).then_some(cli.rate),
    };
    shape.check()?;
    if cli.endpoints.is_empty() {
        anyhow::bail!("give --endpoints");
    }
    let json = match (cli.target, cli.op.proof()) {
        (TargetKind::Ironlog, None) => {
            let factory = target::IronlogFactory::new(
                credentials(&cli),
                cli.endpoints.clone(),
                cli.value_bytes,
            );
            append_json(&cli, &load::run(&factory, &shape).await?)
        }
        (TargetKind::Etcd, None) => {
            let factory =
                target::EtcdFactory::new(cli.endpoints.clone(), cli.value_bytes, etcd_tls(&cli)?);
            append_json(&cli, &load::run(&factory, &shape).await?)
        }
        (TargetKind::Ironlog, Some(kind)) => {
            if cli.batch != 1 {
                anyhow::bail!("--batch is for --op append; a proof request asks for one proof");
            }
            let factory = proofs::ProofFactory::new(
                credentials(&cli),
                cli.endpoints.clone(),
                kind,
                cli.tree_size,
                cli.verify_every,
            )
            .await
            .map_err(anyhow::Error::msg)?;
            let report = load::run(&factory, &shape).await?;
            proofs_json(&cli, &factory, &report)
        }
        (TargetKind::Etcd, Some(_)) => {
            let op = format!("{:?}", cli.op).to_lowercase();
            anyhow::bail!("--op {op} is for --target ironlog only")
        }
    };
    println!("{json}");
    Ok(())
}

fn credentials(cli: &Cli) -> ironlog::cli::client::Credentials {
    ironlog::cli::client::Credentials {
        ca: cli.ca.clone(),
        cert: cli.cert.clone(),
        key: cli.key.clone(),
        token: None,
        token_file: None,
    }
}

/// Client TLS for etcd members reached over https://: the CA to trust and,
/// when given, the client certificate to present (members run with
/// `--client-cert-auth`).
fn etcd_tls(cli: &Cli) -> anyhow::Result<Option<etcd_client::TlsOptions>> {
    if !cli.endpoints.iter().any(|e| e.starts_with("https://")) {
        return Ok(None);
    }
    let read = |path: &Option<PathBuf>, what: &str| -> anyhow::Result<Option<Vec<u8>>> {
        path.as_ref()
            .map(|p| std::fs::read(p).map_err(|e| anyhow::anyhow!("{what} {}: {e}", p.display())))
            .transpose()
    };
    let ca = read(&cli.ca, "--ca")?
        .ok_or_else(|| anyhow::anyhow!("https:// etcd endpoints need --ca"))?;
    let mut tls =
        etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(ca));
    match (read(&cli.cert, "--cert")?, read(&cli.key, "--key")?) {
        (Some(cert), Some(key)) => tls = tls.identity(etcd_client::Identity::from_pem(cert, key)),
        (None, None) => {}
        _ => anyhow::bail!("--cert and --key go together"),
    }
    Ok(Some(tls))
}

fn append_json(cli: &Cli, report: &load::Report) -> serde_json::Value {
    if let Some(path) = &cli.timeline {
        let lines: String = report
            .timeline
            .iter()
            .map(|(due, ms)| format!("[{due:.6},{ms:.3}]\n"))
            .collect();
        if let Err(e) = std::fs::write(path, lines) {
            eprintln!("--timeline {}: {e}", path.display());
        }
    }
    serde_json::json!({
        "target": format!("{:?}", cli.target).to_lowercase(),
        "clients": cli.clients,
        "batch": cli.batch,
        "value_bytes": cli.value_bytes,
        "requests": report.requests,
        "writes": report.completed * cli.batch as u64,
        "seconds": report.seconds,
        "writes_per_second": report.completed as f64 * cli.batch as f64 / report.seconds,
        "p50_ms": report.p50.as_secs_f64() * 1e3,
        "p99_ms": report.p99.as_secs_f64() * 1e3,
        "retried": report.retried,
        "rate": cli.rate,
        "late": report.late,
    })
}

fn proofs_json(
    cli: &Cli,
    factory: &proofs::ProofFactory,
    report: &load::Report,
) -> serde_json::Value {
    serde_json::json!({
        "target": "ironlog",
        "op": format!("{:?}", cli.op).to_lowercase(),
        "clients": cli.clients,
        "tree_size": factory.tree().size,
        "requests": report.requests,
        "seconds": report.seconds,
        "proofs_per_second": report.requests as f64 / report.seconds,
        "p50_ms": report.p50.as_secs_f64() * 1e3,
        "p99_ms": report.p99.as_secs_f64() * 1e3,
        "verified": factory.verified(),
        "retried": report.retried,
    })
}
