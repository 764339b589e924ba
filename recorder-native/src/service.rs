//! `recorder-native serve`: wires the node together. Starts event delivery and heartbeats,
//! serves the job API while it recovers what an earlier run left, then at shutdown stops every job
//! cleanly and gives the last events a moment to leave.

use std::future::Future;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::watch;

use crate::config::{seconds, ServiceConfig};
use crate::events::{self, ControlPlaneClient};
use crate::storage::Storage;
use crate::store::Store;
use crate::supervisor::Node;
use crate::{api, recovery};

/// Runs the service until `shutdown` resolves. `worker_exe` is the binary workers run.
pub async fn serve(
    config: ServiceConfig,
    worker_exe: PathBuf,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Recordings, the job table and job files (which hold tokens) are the meeting's content and
    // its credentials: whatever the service and its workers create is readable by this user
    // only, whatever the directories' own modes (an existing data or recordings directory keeps
    // the mode it has).
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
    unsafe { libc::umask(0o077) };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let recordings = config.recordings_dir();
    std::fs::create_dir_all(&recordings)
        .with_context(|| format!("creating {}", recordings.display()))?;
    let store = Store::open(&config.data_dir.join("recorder.db"))?;
    let storage = Storage::from_config(config.s3.as_ref())?;
    let node = Node::new(config.clone(), store, storage, worker_exe);
    let leftovers = recovery::leftovers(&node);

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut background = Vec::new();
    if let Some(control_plane) = &config.control_plane {
        let client = ControlPlaneClient::new(
            &control_plane.url,
            &config.node_id,
            &config.api_key,
            &config.api_secret,
        );
        background.push(tokio::spawn(events::deliver(
            node.store(),
            client.clone(),
            node.outbox(),
            stop_rx.clone(),
        )));
        background.push(tokio::spawn(heartbeats(
            node.clone(),
            client,
            seconds(control_plane.heartbeat_seconds),
            stop_rx.clone(),
        )));
    }

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, node = %config.node_id, "recorder listening");
    println!("listening on http://{address}");
    let recovering = tokio::spawn(recovery::recover(node.clone(), leftovers));
    edgemeet_serve::serve(listener, api::router(node.clone()), api::LIMITS, shutdown)
        .await
        .context("serving the job API")?;

    tracing::info!("shutting down: stopping every job");
    // What recovery has not concluded yet stays in the store for the next start (a repair's
    // process dies with its handle).
    recovering.abort();
    node.shutdown().await;
    if config.control_plane.is_some() {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && node.heartbeat().undelivered_events > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let _ = stop_tx.send(true);
    for task in background {
        let _ = task.await;
    }
    Ok(())
}

/// Sends the node's figures every `every` until `stop`. Heartbeats are not queued: a missed one
/// is simply superseded by the next.
async fn heartbeats(
    node: Arc<Node>,
    client: ControlPlaneClient,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = client.heartbeat(&node.heartbeat()).await {
            tracing::debug!(error = %e, "heartbeat not delivered");
        }
    }
}
