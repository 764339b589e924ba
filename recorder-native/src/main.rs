//! The `recorder-native` command.
//! - `serve --config FILE`: the recorder service (job API, workers, events).
//! - `record --job FILE`: one worker; reports JSON lines on stdout, stops on SIGINT/SIGTERM.
//! - `repair --input PART --output MP4`: turns a fragmented recording into a finished MP4.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use recorder_native::config::ServiceConfig;
use recorder_native::worker::{self, WorkerJob, WorkerReport};
use recorder_native::{finalize, media, service};

#[derive(Parser)]
#[command(
    name = "recorder-native",
    about = "Records and broadcasts LiveKit rooms with GStreamer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the recorder service.
    Serve {
        /// The service's config file (TOML; see recorder.example.toml).
        #[arg(long)]
        config: PathBuf,
    },
    /// Run one job in the foreground (what the service's workers run).
    Record {
        /// The job file (JSON: livekit_url, token, mode, output, rtmp_url).
        #[arg(long)]
        job: PathBuf,
    },
    /// Repair a fragmented recording into a finished faststart MP4.
    Repair {
        /// The fragmented file (`*.part.mp4`).
        #[arg(long)]
        input: PathBuf,
        /// The MP4 to write.
        #[arg(long)]
        output: PathBuf,
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
            let config = ServiceConfig::load(&config)?;
            let exe = std::env::current_exe().context("locating the recorder-native binary")?;
            service::serve(config, exe, stop_signal()).await
        }
        Command::Record { job } => record(&job).await,
        Command::Repair { input, output } => {
            media::init()?;
            tokio::task::spawn_blocking(move || finalize::remux_faststart(&input, &output))
                .await
                .context("the repair thread panicked")??;
            Ok(())
        }
    }
}

async fn record(job_file: &Path) -> anyhow::Result<()> {
    // The supervisor starts workers with SIGTERM blocked: a stop that came early is pending, and
    // is delivered here once the handler is in place.
    let stop = stop_signal();
    accept_sigterm();
    let job = match WorkerJob::load(job_file) {
        Ok(job) => job,
        Err(e) => {
            worker::report(&WorkerReport::Failed {
                reason: e.to_string(),
            });
            return Err(e.into());
        }
    };
    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    // GStreamer runs on a plain thread: the LiveKit signaller blocks on its own runtime.
    std::thread::Builder::new()
        .name("recording".into())
        .spawn(move || {
            let _ = done_tx.send(worker::record(&job, &stop_rx));
        })
        .context("starting the recording thread")?;
    let mut done = std::pin::pin!(done_rx);
    let result = tokio::select! {
        result = &mut done => result,
        () = stop => {
            let _ = stop_tx.send(());
            done.await
        }
    };
    match result.context("the recording thread panicked")? {
        Ok(()) => Ok(()),
        Err(e) => {
            worker::report(&WorkerReport::Failed {
                reason: e.to_string(),
            });
            Err(e.into())
        }
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called (not when it
/// is first polled), so a signal that arrives in between is not lost.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        match (term, interrupt) {
            (Ok(mut term), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot watch SIGTERM and SIGINT; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

/// Unblocks SIGTERM on this thread (where the supervisor blocked it for the worker's start-up).
fn accept_sigterm() {
    let term = worker::sigterm_only();
    // SAFETY: a plain signal-mask call on this thread, with a valid set.
    unsafe {
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &term, std::ptr::null_mut());
    }
}
