//! `ironlog witness`: runs a C2SP tlog-witness until SIGINT or SIGTERM.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use tokio::net::TcpListener;

use super::CliError;
use crate::witness::server::{serve, Witness, WitnessError};

#[derive(Debug, Args)]
pub struct WitnessArgs {
    /// Address to serve HTTP on; the submission prefix is http://ADDR.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The witness's private key (`ironlog keygen --witness NAME`).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Where the last cosigned size and root per log are kept (JSON);
    /// created on the first cosignature. Back it up: a witness that forgets
    /// it can be shown a rolled-back log.
    #[arg(long, value_name = "FILE")]
    pub state: PathBuf,
    /// Trust policy of a log to witness (repeatable): its origin and its
    /// `[log]` keys and threshold decide what is cosigned.
    #[arg(long = "policy", value_name = "FILE", required = true)]
    pub policies: Vec<PathBuf>,
}

pub async fn run(args: &WitnessArgs) -> Result<(), CliError> {
    let witness = Arc::new(Witness::open(&args.key, &args.state, &args.policies)?);
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| WitnessError::Listen {
            addr: args.listen,
            source,
        })?;
    let origins: Vec<&str> = witness.origins().collect();
    tracing::info!(
        listen = %args.listen,
        verifier_key = %witness.verifier_key(),
        ?origins,
        "witness serving"
    );
    serve(listener, witness.clone(), stop_signal()).await?;
    tracing::info!("witness stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
