//! The `media-sidecar` command. `serve --config FILE` runs the sidecar (see the library's
//! `service`); it exits 0 after a drain, or after a second SIGTERM/SIGINT.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use media_sidecar::config::Config;
use media_sidecar::{drain, service};

#[derive(Parser)]
#[command(
    name = "media-sidecar",
    about = "Heartbeats, webhook relay and drain for one regional LiveKit cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sidecar.
    Serve {
        /// The config file (TOML; see sidecar.example.toml).
        #[arg(long)]
        config: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve { config } => {
            let config = Config::load(&config)?;
            let signals = drain::signal_requests().context("watching SIGTERM and SIGINT")?;
            let exit = service::serve(config, signals).await?;
            tracing::info!(?exit, "media-sidecar stopped");
            Ok(())
        }
    }
}
