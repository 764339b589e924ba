//! The media-sidecar `edgemeet up` runs inside the `edgemeet` process, beside the local LiveKit
//! it starts when no regions are configured. It is the same sidecar a region runs (the `media-sidecar`
//! library): LiveKit posts its webhooks to it, and it relays them and heartbeats to the edge, so
//! the one-machine system ends rooms that emptied or ran past their `room_duration` and lists
//! them as past rooms, as a deployment with regions does.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use media_sidecar::config::{Capacity, Config, EdgeConfig, LiveKitConfig, Secret};
use media_sidecar::drain;
use media_sidecar::metrics::Metrics;
use media_sidecar::service::{self, Exit, ServeError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::settings::random_hex;

/// The region id of the local LiveKit.
pub const LOCAL_REGION: &str = "local";

/// The sidecar's port, bound before LiveKit starts (LiveKit is told where to post webhooks).
pub struct BoundSidecar {
    listener: tokio::net::TcpListener,
    /// Where LiveKit posts its webhooks.
    pub webhook_url: String,
    /// The secret the sidecar and the edge share for this run (the edge's `sidecar_secrets`).
    pub secret: String,
}

impl BoundSidecar {
    /// Binds `127.0.0.1:port` (0: any free port) and makes this run's secret.
    pub async fn bind(port: u16) -> anyhow::Result<BoundSidecar> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("binding the local media-sidecar to {address}"))?;
        let bound = listener
            .local_addr()
            .context("the local media-sidecar's address")?;
        Ok(BoundSidecar {
            listener,
            webhook_url: format!("http://{bound}/webhook"),
            secret: random_hex(32)?,
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> anyhow::Result<SocketAddr> {
        self.listener
            .local_addr()
            .context("the local media-sidecar's address")
    }

    /// Starts serving: webhooks from the LiveKit at `livekit_url` (signed with its key), relayed
    /// with heartbeats to the edge at `edge_url`; the outbox is kept under `data_dir`.
    pub fn start(
        self,
        data_dir: &Path,
        livekit_url: &str,
        livekit_key: &str,
        livekit_secret: &str,
        edge_url: &str,
    ) -> anyhow::Result<RunningSidecar> {
        let address = self.address()?;
        let config = Config {
            region_id: LOCAL_REGION.into(),
            listen: address,
            sidecar_secret: Secret::new(self.secret),
            data_dir: data_dir.join("sidecar"),
            heartbeat_seconds: 5.0,
            drain_deadline_seconds: 3600,
            livekit: LiveKitConfig {
                url: livekit_url.into(),
                api_key: livekit_key.into(),
                api_secret: Secret::new(livekit_secret),
            },
            edge: EdgeConfig {
                url: edge_url.into(),
            },
            capacity: Capacity::default(),
        };
        config
            .check()
            .context("the local media-sidecar's configuration")?;
        let metrics = Metrics::new();
        let (requests, signals) = mpsc::channel(1);
        let task = tokio::spawn(service::serve_on(
            config,
            self.listener,
            metrics.clone(),
            signals,
        ));
        Ok(RunningSidecar {
            address,
            requests,
            task,
            metrics,
        })
    }
}

/// A started local sidecar.
pub struct RunningSidecar {
    /// The address it listens on (webhooks, `/metrics`).
    pub address: SocketAddr,
    requests: mpsc::Sender<drain::Request>,
    task: JoinHandle<Result<Exit, ServeError>>,
    metrics: Metrics,
}

impl RunningSidecar {
    /// Waits until the edge has taken a heartbeat (from then on it places rooms in the local
    /// region), at most `within`.
    pub async fn wait_heard(&mut self, within: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + within;
        while self.metrics.heartbeats_sent.get() == 0 {
            if self.task.is_finished() {
                bail!("the local media-sidecar stopped: {}", self.outcome().await);
            }
            if Instant::now() >= until {
                bail!("the edge took no heartbeat from the local media-sidecar within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Stops it without a drain (the whole system is stopping): what it holds is flushed to
    /// the edge for a moment, and the rest waits in its outbox for the next start.
    pub async fn stop(mut self) {
        let _ = self.requests.send(drain::Request::Stop).await;
        let outcome = self.outcome().await;
        tracing::info!(%outcome, "local media-sidecar stopped");
    }

    /// How the serving task ended.
    async fn outcome(&mut self) -> String {
        match (&mut self.task).await {
            Ok(Ok(exit)) => format!("{exit:?}"),
            Ok(Err(e)) => format!("{e}"),
            Err(e) => format!("{e}"),
        }
    }
}
