//! What the node tells its control plane: job events, delivered from the durable outbox in
//! order, in batches, retried with backoff until acknowledged, each with an id the receiver
//! de-duplicates on; and heartbeats, which are only ever the latest state and are not queued.
//!
//! Both are POSTed as JSON to the configured URL, signed like the job API (`API-KEY`,
//! `HASH-SIGNATURE`); the body's `type` is `events` or `heartbeat`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use crate::auth::{sign, API_KEY_HEADER, SIGNATURE_HEADER};
use crate::job::JobView;
use crate::store::Store;

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The job changed state (`job.state`, with `job.reason` when it failed).
    JobState,
    /// The RTMP broadcast ended on its own (`job.reason`); the file goes on.
    BroadcastEnded,
    /// A file a crash left behind was repaired into a playable MP4 (`job.file`).
    Recovered,
}

/// One event, as queued and as delivered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Unique; the receiver drops repeats.
    pub event_id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The job as it is after the event.
    pub job: JobView,
}

impl Event {
    /// A new event about `job`, now.
    pub fn new(kind: EventKind, job: &JobView) -> Event {
        Event {
            event_id: uuid::Uuid::new_v4().to_string(),
            kind,
            at_ms: now_ms(),
            job: job.clone(),
        }
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Why a POST to the control plane did not land.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No answer (refused, timed out).
    #[error("control plane unreachable: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// An answer other than 2xx.
    #[error("control plane answered {0}")]
    Refused(u16),
}

/// Signs and POSTs to the control plane.
#[derive(Clone)]
pub struct ControlPlaneClient {
    http: reqwest::Client,
    url: String,
    node_id: String,
    api_key: String,
    secret: String,
}

impl ControlPlaneClient {
    /// A client for `url`, signing as this node.
    pub fn new(url: &str, node_id: &str, api_key: &str, secret: &str) -> ControlPlaneClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        ControlPlaneClient {
            http,
            url: url.to_owned(),
            node_id: node_id.to_owned(),
            api_key: api_key.to_owned(),
            secret: secret.to_owned(),
        }
    }

    async fn post(&self, body: &serde_json::Value) -> Result<(), DeliveryError> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let signature = sign(self.secret.as_bytes(), &bytes);
        let response = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header(API_KEY_HEADER, &self.api_key)
            .header(SIGNATURE_HEADER, signature)
            .body(bytes)
            .send()
            .await
            .map_err(DeliveryError::Unreachable)?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Refused(response.status().as_u16()))
        }
    }

    /// Sends one heartbeat.
    pub async fn heartbeat(&self, heartbeat: &impl Serialize) -> Result<(), DeliveryError> {
        let mut body = serde_json::to_value(heartbeat).unwrap_or_default();
        if let Some(fields) = body.as_object_mut() {
            fields.insert("type".into(), "heartbeat".into());
            fields.insert("node_id".into(), self.node_id.clone().into());
            fields.insert("at_ms".into(), now_ms().into());
        }
        self.post(&body).await
    }
}

/// Events per POST.
const BATCH: usize = 100;

fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(15))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Delivers the outbox until `stop` turns true: oldest first, a batch at a time, each batch
/// removed only after the control plane acknowledged it. `wake` is notified when an event is
/// queued.
pub async fn deliver(
    store: Arc<Mutex<Store>>,
    client: ControlPlaneClient,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delays = backoff();
    while !*stop.borrow() {
        let batch = match store.lock() {
            Ok(store) => store.pending(BATCH),
            Err(_) => return,
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the event outbox");
                Vec::new()
            }
        };
        let Some(last) = batch.last().map(|p| p.seq) else {
            tokio::select! {
                () = wake.notified() => {}
                _ = stop.changed() => {}
            }
            continue;
        };
        let events: Vec<serde_json::Value> = batch
            .iter()
            .filter_map(|p| serde_json::from_str(&p.body).ok())
            .collect();
        let body = serde_json::json!({
            "type": "events",
            "node_id": client.node_id,
            "events": events,
        });
        match client.post(&body).await {
            Ok(()) => {
                if let Ok(mut store) = store.lock() {
                    if let Err(e) = store.delivered_through(last) {
                        tracing::error!(error = %e, "cannot clear delivered events");
                    }
                }
                tracing::debug!(events = batch.len(), "events delivered");
                delays = backoff();
            }
            Err(e) => {
                let delay = delays.next().unwrap_or(Duration::from_secs(15));
                tracing::warn!(error = %e, retry_in = ?delay, waiting = batch.len(), "event delivery failed");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}
