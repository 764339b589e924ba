//! `recorder-native serve`: wires the node together. Starts event delivery and heartbeats,
//! serves the job API while it recovers what an earlier run left, then at shutdown stops every job
//! cleanly and gives the last events a moment to leave.

use std::future::Future;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
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
    // Before anything is read or removed: a second service on these directories would take the
    // first one's running jobs for leftovers, repair their live files and delete them.
    let _data_lock = hold_exclusively(&config.data_dir, "recorder.lock")?;
    let _recordings_lock = hold_exclusively(&recordings, ".recorder.lock")?;
    let store = Store::open(&config.data_dir.join("recorder.db"))?;
    let storage = Storage::from_config(config.s3.as_ref(), &config.node_id)?;
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

/// Holds `dir` for this process until the returned file is dropped (an advisory `flock` on
/// `dir/name`, released by the kernel however the process ends). Fails at once, naming the
/// directory, when another service holds it.
fn hold_exclusively(dir: &Path, name: &str) -> anyhow::Result<std::fs::File> {
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let error = std::io::Error::last_os_error();
        if error.kind() == std::io::ErrorKind::WouldBlock {
            anyhow::bail!(
                "{} is in use by another recorder-native service: each node needs its own \
                 data_dir and recordings_dir",
                dir.display()
            );
        }
        return Err(error).with_context(|| format!("locking {}", path.display()));
    }
    Ok(file)
}

/// Sends the node's figures every `every` until `stop`. Heartbeats are not queued: a missed one
/// is simply superseded by the next.
async fn heartbeats(
    node: Arc<Node>,
    client: ControlPlaneClient,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // The config keeps `every` within range; a zero period would panic.
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_held_by_one_service_at_a_time() {
        let dir = std::env::temp_dir().join(format!("recorder-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let held = hold_exclusively(&dir, "recorder.lock").expect("first");
        // Another open of the same lock (as a second process would make) is refused.
        let second = hold_exclusively(&dir, "recorder.lock").expect_err("second");
        assert!(second.to_string().contains("in use by another"), "{second}");
        // Another lock file in the same directory is another lock (data_dir may hold recordings).
        let other = hold_exclusively(&dir, ".recorder.lock").expect("other name");
        drop((held, other));
        hold_exclusively(&dir, "recorder.lock").expect("free again");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
