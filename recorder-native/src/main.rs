//! The `recorder-native` command. `record --job FILE` records one LiveKit room into an MP4 in
//! the foreground until SIGINT or SIGTERM, then finishes the file.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use recorder_native::finalize::remux_faststart;
use recorder_native::job::RecordJob;
use recorder_native::pipeline::{self, CompositeSettings, Recording, RoomInput};

#[derive(Parser)]
#[command(
    name = "recorder-native",
    about = "Records LiveKit rooms with GStreamer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record one room (a job file: livekit_url, token, output) until SIGINT or SIGTERM.
    Record {
        /// The job file (JSON).
        #[arg(long)]
        job: PathBuf,
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
        Command::Record { job } => record(&job).await,
    }
}

async fn record(job_file: &std::path::Path) -> anyhow::Result<()> {
    let job = RecordJob::load(job_file)?;
    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    // GStreamer runs on a plain thread: the LiveKit signaller blocks on its own runtime.
    std::thread::Builder::new()
        .name("recording".into())
        .spawn(move || {
            let _ = done_tx.send(record_blocking(&job, &stop_rx));
        })
        .context("starting the recording thread")?;
    let mut done = std::pin::pin!(done_rx);
    tokio::select! {
        result = &mut done => return result.context("the recording thread panicked")?,
        () = stop_signal() => {}
    }
    let _ = stop_tx.send(());
    done.await.context("the recording thread panicked")?
}

/// Builds, runs and finishes one recording; returns once the file is in place.
fn record_blocking(job: &RecordJob, stop: &std::sync::mpsc::Receiver<()>) -> anyhow::Result<()> {
    pipeline::init()?;
    let part = job.part_file();
    let recording = Recording::build(
        &RoomInput {
            ws_url: job.livekit_url.clone(),
            token: job.token.clone(),
        },
        CompositeSettings::default(),
        part.clone(),
    )?;
    let started = std::time::Instant::now();
    println!("recording {}", part.display());
    recording.run(stop)?;
    let recorded = started.elapsed();
    remux_faststart(&part, &job.output)?;
    std::fs::remove_file(&part).with_context(|| format!("removing {}", part.display()))?;
    println!(
        "finished {} after {:.1} s",
        job.output.display(),
        recorded.as_secs_f64()
    );
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
