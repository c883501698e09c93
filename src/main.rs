//! The `ironlog` binary: parses the command line and runs it. This is the
//! only place that uses `anyhow`, to print an error and its causes as one
//! `error: ...` line and exit non-zero.

use std::process::ExitCode;

use clap::Parser;
use ironlog::cli::{self, Cli, Command};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: a node's threads hand buffers to one
/// another on every request (gRPC, Raft, redb), and under load glibc's
/// malloc and free took about a quarter of a node's CPU in `perf`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.command);
    keep_huge_pages_off();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Turns transparent huge pages off for this process, before it has
/// allocated much.
///
/// mimalloc asks for huge pages on its arenas (`madvise(MADV_HUGEPAGE)`)
/// and gives back memory it has not used for 10 ms in pieces smaller than
/// one, so the kernel splits the huge page, and the next allocation there
/// faults in and zeroes a fresh 2 MiB page (compacting memory first if it
/// must, as `defrag = madvise` allows). Under appends that cost a node
/// its latency: a three-node cluster at 2,000 appends/s (256 clients,
/// open loop) showed zeroing huge pages in 22% of a follower's CPU
/// samples, applies of a few leaves taking 30-130 ms on all three nodes at
/// once, and p99 at 107 ms; with huge pages off, p99 7.3 ms and the
/// slowest request 21 ms. This is mimalloc's own `MIMALLOC_ALLOW_THP=0`,
/// without depending on the environment a node is started in. The flag is
/// the process's (and its children's, such as an audit hook's): with the
/// kernel's huge pages on `madvise`, the usual default, the model's
/// buffers (glibc's malloc, which never asks) lose nothing; with them on
/// `always`, they lose huge pages too.
fn keep_huge_pages_off() {
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        // A kernel before 3.15, or a seccomp filter, refuses: the node
        // runs as before, with what huge pages cost it.
        tracing::warn!("could not turn transparent huge pages off: {e}");
    }
}

/// 1 for any failure, unless the command gives this one its own status
/// (`fsck`: 2 when it could not check at all).
fn exit_code(error: &anyhow::Error) -> u8 {
    error
        .downcast_ref::<cli::CliError>()
        .map_or(1, cli::CliError::exit_code)
}

/// The error and its causes joined by ": ", skipping a cause whose text
/// the previous message already ends with (transport errors repeat
/// themselves down their chains).
fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if message.is_empty() || text.ends_with(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(cli::run(cli))?;
    Ok(())
}

/// Nodes log at info by default; client commands stay quiet unless
/// RUST_LOG asks, so their output is only what the user asked for.
fn init_tracing(command: &Command) {
    let default = match command {
        Command::Node { .. } | Command::Witness(_) => "info",
        _ => "warn",
    };
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // The Raft log's crate logs at info on every fsync (where its cache may
    // evict up to): a line per commit. Its warnings and errors still show,
    // and RUST_LOG naming it explicitly gets everything it asks for.
    let names_raft_log = std::env::var("RUST_LOG").is_ok_and(|v| v.contains("raft_log"));
    if !names_raft_log {
        filter = filter.add_directive(
            "raft_log=warn"
                .parse()
                .expect("a valid static filter directive"),
        );
    }
    // No colour codes when stderr is a file, as for `cluster up`'s node logs.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}
