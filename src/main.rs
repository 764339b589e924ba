//! The `edgemeet` command. Wiring only: the parts live in the library.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: the host allocates on every request (wasmtime's
/// component runtime, hyper, the WASI HTTP plumbing), and it takes ~10% off a request
/// (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "edgemeet",
    version,
    about = "Self-hostable video conferencing: edge API, media regions, recorders"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole system on this machine (edge API in the local host, plus a local LiveKit).
    Up {
        /// The configuration file (see edgemeet.example.toml). Missing default file = defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match Cli::parse().command {
        Command::Up { config } => {
            let explicit = config.is_some();
            let path = config.unwrap_or_else(|| PathBuf::from("edgemeet.toml"));
            edgemeet::up::run(&path, explicit).await
        }
    }
}
