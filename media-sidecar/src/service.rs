//! `media-sidecar serve`: the wiring. Opens the outbox, starts the HTTP server, the relay and
//! the heartbeats, then waits for a drain to begin and end:
//!
//! 1. A drain request (signal or admin call) makes the heartbeats say `draining: true` at once.
//! 2. When a look at LiveKit taken after that finds no rooms (or at the deadline), the sidecar
//!    keeps accepting webhooks for [`SETTLE`] (the last `room_finished` can trail LiveKit's
//!    `ListRooms`), stops its HTTP server, flushes the outbox for up to [`FLUSH_TIMEOUT`], sends
//!    a final `leaving: true` heartbeat and returns.
//! 3. A second signal skips all that: a best-effort flush of [`QUICK_FLUSH`] and return.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable as _};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::drain::{self, Drain, Reason, Step};
use crate::edge::EdgeClient;
use crate::heartbeat::{
    self, cpu_load, HeartbeatLoop, LiveKitProbe, Moment, Observation, Reporter,
};
use crate::http::{self, HttpState};
use crate::metrics::{flag, Metrics};
use crate::outbox::{now_ms, Outbox, OutboxError, SharedOutbox};
use crate::relay::{self, RelaySignals};
use crate::webhooks::WebhookVerifier;

/// How long a finished drain keeps taking webhooks before it flushes.
pub const SETTLE: Duration = Duration::from_secs(2);
/// The longest a finished drain waits for the outbox to empty.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// The flush after a second signal.
pub const QUICK_FLUSH: Duration = Duration::from_secs(2);
/// The longest the HTTP server gets to finish the requests it is serving.
const HTTP_GRACE: Duration = Duration::from_secs(5);

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory could not be created.
    #[error("creating {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The outbox could not be opened.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The listen address could not be bound.
    #[error("binding {address}: {source}")]
    Bind {
        /// The configured address.
        address: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Http(#[source] std::io::Error),
}

/// How the service ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Drained and said goodbye; `undelivered` events were left in the outbox for the next run.
    Drained {
        /// What ended the drain.
        reason: Reason,
        /// Events the flush could not deliver.
        undelivered: u64,
    },
    /// A second signal cut the drain short.
    Forced {
        /// Events the quick flush could not deliver.
        undelivered: u64,
    },
}

/// Runs the sidecar until a drain ends or a second signal arrives. `signals` carries the drain
/// requests of SIGTERM/SIGINT (see [`drain::signal_requests`]). Binds `config.listen` and says
/// so on stdout.
pub async fn serve(
    config: Config,
    signals: mpsc::Receiver<drain::Request>,
) -> Result<Exit, ServeError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            address: config.listen,
            source,
        })?;
    let address = listener.local_addr().map_err(ServeError::Http)?;
    println!("listening on http://{address}");
    serve_on(config, listener, Metrics::new(), signals).await
}

/// [`serve`] on a listener the caller bound, counting into `metrics`: how a process that runs
/// the sidecar beside its own work (`edgemeet up`) embeds it and watches it.
pub async fn serve_on(
    config: Config,
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    mut signals: mpsc::Receiver<drain::Request>,
) -> Result<Exit, ServeError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .map_err(|source| ServeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
    let outbox = SharedOutbox::new(Outbox::open(&config.outbox_path())?);
    let waiting = outbox.with(|o| o.depth()).await?;
    metrics.set_outbox_depth(waiting);
    let edge = EdgeClient::new(
        &config.edge.url,
        &config.region_id,
        config.sidecar_secret.clone(),
    );
    let reporter = Reporter {
        region_id: config.region_id.clone(),
        sidecar_id: uuid::Uuid::new_v4().to_string(),
        capacity: config.capacity,
    };

    let wake = Arc::new(Notify::new());
    let events_ok = Arc::new(AtomicBool::new(true));
    let hurry = Arc::new(Notify::new());
    let (admin_tx, mut admin_rx) = mpsc::channel(4);
    // A drain a crashed run did not finish goes on, with its deadline.
    let mut drain = Drain::new(config.drain_deadline());
    if let Some(deadline_ms) = outbox.with(|o| o.saved_drain()).await? {
        let left = u64::try_from(deadline_ms.saturating_sub(now_ms())).unwrap_or(0);
        let now = Instant::now();
        drain.resume(now + Duration::from_millis(left), now);
        metrics.draining.set(flag(true));
        tracing::warn!(
            deadline_in_s = left / 1000,
            "resuming a drain the last run did not finish"
        );
    }
    let (draining_tx, draining_rx) = watch::channel(drain.is_draining());
    let (observations_tx, mut observations) = watch::channel(Observation {
        at: Instant::now(),
        totals: None,
        edge_sessions: None,
    });

    let address = listener.local_addr().map_err(ServeError::Http)?;
    let router = http::router(HttpState {
        verifier: Arc::new(WebhookVerifier::new(
            &config.livekit.api_key,
            &config.livekit.api_secret,
        )),
        outbox: outbox.clone(),
        wake: Arc::clone(&wake),
        metrics: metrics.clone(),
        region_id: Arc::from(config.region_id.as_str()),
        sidecar_secret: config.sidecar_secret.clone(),
        drain_requests: admin_tx.clone(),
        events_ok: Arc::clone(&events_ok),
    });
    let (http_stop_tx, mut http_stop_rx) = watch::channel(false);
    let mut server: JoinHandle<std::io::Result<()>> = tokio::spawn(edgemeet_serve::serve(
        listener,
        router,
        http::LIMITS,
        async move {
            let _ = http_stop_rx.wait_for(|stop| *stop).await;
        },
    ));
    tracing::info!(
        %address,
        region = %config.region_id,
        sidecar_id = %reporter.sidecar_id,
        waiting,
        "media-sidecar listening"
    );

    let (relay_stop_tx, relay_stop_rx) = watch::channel(false);
    let relay = tokio::spawn(relay::run(
        outbox.clone(),
        edge.clone(),
        metrics.clone(),
        RelaySignals {
            wake,
            hurry: Arc::clone(&hurry),
            stop: relay_stop_rx,
        },
    ));
    let (heartbeat_stop_tx, heartbeat_stop_rx) = watch::channel(false);
    let heartbeats = tokio::spawn(
        HeartbeatLoop {
            reporter: reporter.clone(),
            probe: LiveKitProbe::new(
                &config.livekit.url,
                &config.livekit.api_key,
                &config.livekit.api_secret,
            ),
            client: edge.clone(),
            outbox: outbox.clone(),
            metrics: metrics.clone(),
            every: config.heartbeat_every(),
            observations: observations_tx,
            events_ok: Arc::clone(&events_ok),
            draining: draining_rx,
            stop: heartbeat_stop_rx,
        }
        .run(),
    );

    let mut saved_deadline = drain.deadline();
    let mut signals_open = true;
    let ending = loop {
        let wake_at = drain
            .deadline()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(24 * 3600));
        let step = tokio::select! {
            request = signals.recv(), if signals_open => match request {
                Some(request) => drain.request(request, Instant::now()),
                None => {
                    signals_open = false;
                    Step::Serve
                }
            },
            Some(request) = admin_rx.recv() => drain.request(request, Instant::now()),
            changed = observations.changed() => {
                if changed.is_err() {
                    tracing::error!("the heartbeat task ended; leaving");
                    break Step::ExitNow;
                }
                let seen = *observations.borrow_and_update();
                drain.observe(seen.at, seen.totals.map(|t| t.rooms), seen.edge_sessions, Instant::now())
            }
            () = tokio::time::sleep_until(wake_at.into()) => {
                let seen = *observations.borrow();
                drain.observe(seen.at, seen.totals.map(|t| t.rooms), seen.edge_sessions, Instant::now())
            }
            result = &mut server => {
                let _ = relay_stop_tx.send(true);
                let _ = heartbeat_stop_tx.send(true);
                return Err(ServeError::Http(match result {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => std::io::Error::other("the server stopped"),
                    Err(e) => std::io::Error::other(e),
                }));
            }
        };
        if drain.is_draining() && !*draining_tx.borrow() {
            tracing::info!(deadline_in = ?drain.deadline().map(|d| d.saturating_duration_since(Instant::now())), "draining: the region takes no new rooms");
            metrics.draining.set(flag(true));
            let _ = draining_tx.send(true);
        }
        if let Some(deadline) = drain.deadline().filter(|d| saved_deadline != Some(*d)) {
            let left = deadline.saturating_duration_since(Instant::now());
            let deadline_ms =
                now_ms().saturating_add(i64::try_from(left.as_millis()).unwrap_or(i64::MAX));
            match outbox.with(move |o| o.save_drain(deadline_ms)).await {
                Ok(()) => saved_deadline = Some(deadline),
                Err(e) => tracing::error!(error = %e, "cannot remember the drain"),
            }
        }
        if step != Step::Serve {
            break step;
        }
    };
    drop(admin_tx);

    let mut running = Running {
        outbox,
        metrics,
        edge,
        reporter,
        hurry,
        observations,
        http_stop: http_stop_tx,
        server: Some(server),
        heartbeat_stop: heartbeat_stop_tx,
        heartbeats: Some(heartbeats),
    };
    let exit = match ending {
        Step::Leave(reason) => {
            // A further signal cuts even the exit sequence short, to the quick one.
            let left = tokio::select! {
                exit = running.leave(reason) => Some(exit),
                Some(_) = signals.recv(), if signals_open => None,
            };
            match left {
                Some(exit) => exit,
                None => {
                    tracing::warn!("stop requested again: leaving now");
                    running.quit().await
                }
            }
        }
        _ => running.quit().await,
    };
    let _ = relay_stop_tx.send(true);
    let _ = relay.await;
    // The drain is over either way: left, or told twice to stop. Only a crash leaves it saved.
    if let Err(e) = running.outbox.with(|o| o.clear_drain()).await {
        tracing::error!(error = %e, "cannot forget the finished drain");
    }
    let (Exit::Drained { undelivered, .. } | Exit::Forced { undelivered }) = exit;
    if undelivered > 0 {
        tracing::warn!(undelivered, "events stay in the outbox for the next start");
    }
    Ok(exit)
}

/// What the exit sequences stop, in their order.
struct Running {
    outbox: SharedOutbox,
    metrics: Metrics,
    edge: EdgeClient,
    reporter: Reporter,
    hurry: Arc<Notify>,
    observations: watch::Receiver<Observation>,
    http_stop: watch::Sender<bool>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    heartbeat_stop: watch::Sender<bool>,
    heartbeats: Option<JoinHandle<()>>,
}

impl Running {
    /// The end of a drain: settle, stop taking webhooks, flush, say goodbye.
    async fn leave(&mut self, reason: Reason) -> Exit {
        tracing::info!(?reason, "drain finished; flushing the outbox");
        tokio::time::sleep(SETTLE).await;
        self.stop_server(HTTP_GRACE).await;
        let undelivered = flush(&self.outbox, &self.hurry, FLUSH_TIMEOUT).await;
        // Waits for a heartbeat in flight: none may reach the edge after the goodbye.
        self.stop_heartbeats(true).await;
        let last = *self.observations.borrow();
        let goodbye = self.reporter.heartbeat(&Moment {
            totals: last.totals,
            cpu_load: cpu_load(),
            draining: true,
            leaving: true,
            undelivered_events: undelivered,
            events_ok: true,
        });
        let sent = (|| heartbeat::send(&self.edge, &goodbye))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(2))
                    .with_jitter()
                    .with_max_times(4),
            )
            .await;
        match sent {
            Ok(_) => {
                self.metrics.heartbeats_sent.inc();
                tracing::info!(undelivered, "final heartbeat sent; leaving");
            }
            Err(e) => {
                self.metrics.heartbeats_failed.inc();
                tracing::error!(error = %e, undelivered, "final heartbeat not delivered; leaving");
            }
        }
        Exit::Drained {
            reason,
            undelivered,
        }
    }

    /// A second signal: a quick flush and no goodbye (the region still has rooms).
    async fn quit(&mut self) -> Exit {
        tracing::warn!("stopping now");
        self.stop_server(QUICK_FLUSH).await;
        let undelivered = flush(&self.outbox, &self.hurry, QUICK_FLUSH).await;
        self.stop_heartbeats(false).await;
        Exit::Forced { undelivered }
    }

    async fn stop_server(&mut self, grace: Duration) {
        let _ = self.http_stop.send(true);
        if let Some(mut server) = self.server.take() {
            if tokio::time::timeout(grace, &mut server).await.is_err() {
                tracing::warn!("HTTP requests still open; closing them");
                server.abort();
            }
        }
    }

    /// Stops the heartbeats; `finish` lets a heartbeat in flight be answered first.
    async fn stop_heartbeats(&mut self, finish: bool) {
        let _ = self.heartbeat_stop.send(true);
        if let Some(heartbeats) = self.heartbeats.take() {
            if !finish {
                heartbeats.abort();
            }
            let _ = heartbeats.await;
        }
    }
}

/// Waits up to `timeout` for the relay to empty the outbox; returns how many events are left.
async fn flush(outbox: &SharedOutbox, hurry: &Notify, timeout: Duration) -> u64 {
    let until = Instant::now() + timeout;
    hurry.notify_one();
    loop {
        let left = match outbox.with(|o| o.depth()).await {
            Ok(left) => left,
            Err(e) => {
                tracing::error!(error = %e, "cannot count the outbox");
                return u64::MAX;
            }
        };
        if left == 0 || Instant::now() >= until {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
