//! What the node tells its control plane: job events, delivered from the durable outbox in
//! order, in batches, retried with backoff until acknowledged, each with an id the receiver
//! de-duplicates on; and heartbeats, which are only ever the latest state and are not queued.
//!
//! Both are POSTed as JSON to the configured URL, signed like the job API (`API-KEY`,
//! `HASH-SIGNATURE`); the body's `type` is `events` or `heartbeat`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use edgemeet_protocol::delivery::{judge, BatchSizer, Next};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{watch, Notify};

use crate::auth::{sign, API_KEY_HEADER, SIGNATURE_HEADER};
use crate::job::JobView;
use crate::store::{Pending, Store};

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

impl DeliveryError {
    /// The answer's status, `None` when no answer came.
    pub fn status(&self) -> Option<u16> {
        match self {
            DeliveryError::Unreachable(_) => None,
            DeliveryError::Refused(status) => Some(*status),
        }
    }
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
        // No redirects: reqwest would follow a 301/302 as a bodiless GET, and a 2xx from
        // wherever it landed would count as delivered.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
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
        self.post_bytes(serde_json::to_vec(body).unwrap_or_default())
            .await
    }

    async fn post_bytes(&self, bytes: Vec<u8>) -> Result<(), DeliveryError> {
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
            .map_err(|e| DeliveryError::Unreachable(e.without_url()))?;
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

/// Events per POST at most.
const MAX_BATCH: usize = 100;

fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(15))
        .with_jitter()
        .without_max_times()
        .build()
}

#[derive(Serialize)]
struct EventsBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    node_id: &'a str,
    events: Vec<Box<RawValue>>,
}

/// The POST body for `pending` (oldest first), each event byte for byte as stored. An event
/// that is somehow not JSON is returned as `Err(seq)`, to be set aside.
fn events_body(node_id: &str, pending: &[Pending]) -> Result<Vec<u8>, i64> {
    let events = pending
        .iter()
        .map(|p| RawValue::from_string(p.body.clone()).map_err(|_| p.seq))
        .collect::<Result<Vec<_>, _>>()?;
    let first = pending.first().map_or(0, |p| p.seq);
    serde_json::to_vec(&EventsBody {
        kind: "events",
        node_id,
        events,
    })
    .map_err(|_| first)
}

/// Delivers the outbox until `stop` turns true: oldest first, a batch at a time, each batch
/// removed only after the control plane acknowledged it. `wake` is notified when an event is
/// queued. An event the control plane refuses for good (400 or 413, found by splitting the
/// refused batch) is set aside in the store's `dead_letter` table, so it cannot hold up the
/// events behind it; any other failure is retried with backoff, forever.
pub async fn deliver(
    store: Arc<Mutex<Store>>,
    client: ControlPlaneClient,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delays = backoff();
    let mut sizer = BatchSizer::new(MAX_BATCH);
    let set_aside = |seq: i64, status: u16| match store.lock() {
        Ok(mut store) => {
            if let Err(e) = store.set_aside(seq, status) {
                tracing::error!(error = %e, seq, "cannot set a refused event aside");
            }
        }
        Err(_) => tracing::error!(seq, "cannot set a refused event aside: store lock poisoned"),
    };
    while !*stop.borrow() {
        let batch = match store.lock() {
            Ok(store) => store.pending(sizer.limit()),
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
        let body = match events_body(&client.node_id, &batch) {
            Ok(body) => body,
            Err(seq) => {
                tracing::error!(seq, "an outbox event is not JSON; setting it aside");
                set_aside(seq, 0);
                continue;
            }
        };
        let answer = client.post_bytes(body).await;
        let refusal = answer.as_ref().copied().map_err(DeliveryError::status);
        match judge(refusal, batch.len()) {
            Next::Ack => {
                if let Ok(mut store) = store.lock() {
                    if let Err(e) = store.delivered_through(last) {
                        tracing::error!(error = %e, "cannot clear delivered events");
                    }
                }
                tracing::debug!(events = batch.len(), "events delivered");
                delays = backoff();
                sizer.succeeded();
            }
            Next::Split => {
                tracing::warn!(events = batch.len(), error = ?answer.err(), "the control plane refused a batch; splitting it");
                sizer.split(batch.len());
            }
            Next::SetAside(status) => {
                tracing::error!(
                    seq = last,
                    status,
                    "the control plane refused an event; setting it aside in dead_letter"
                );
                set_aside(last, status);
                sizer.succeeded();
            }
            Next::Retry => {
                let delay = delays.next().unwrap_or(Duration::from_secs(15));
                tracing::warn!(error = ?answer.err().map(|e| e.to_string()), retry_in = ?delay, waiting = batch.len(), "event delivery failed");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A control plane URL may carry a credential in its query: a failed delivery's error,
    /// which goes to the log on every retry, must not repeat it.
    #[tokio::test]
    async fn an_unreachable_control_plane_is_named_without_its_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let url = format!("http://127.0.0.1:{port}/events?token=sekrit-value");
        let client = ControlPlaneClient::new(&url, "node", "key", "secret-secret-secret");
        let error = client
            .heartbeat(&serde_json::json!({}))
            .await
            .expect_err("nothing listens");
        let mut told = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(e) = source {
            told.push_str(&format!(" / {e} / {e:?}"));
            source = e.source();
        }
        told.push_str(&format!(" / {error:?}"));
        assert!(matches!(error, DeliveryError::Unreachable(_)), "{told}");
        assert!(!told.contains("sekrit"), "{told}");
    }

    fn pending(bodies: &[&str]) -> Vec<Pending> {
        bodies
            .iter()
            .enumerate()
            .map(|(i, body)| Pending {
                seq: 10 + i as i64,
                body: (*body).to_owned(),
            })
            .collect()
    }

    #[test]
    fn a_batch_carries_the_events_as_stored_and_names_one_that_is_not_json() {
        let body = events_body(
            "node-1",
            &pending(&[r#"{"event_id":"a", "n":1}"#, r#"{"event_id":"b"}"#]),
        )
        .expect("body");
        assert_eq!(
            String::from_utf8(body).expect("utf8"),
            r#"{"type":"events","node_id":"node-1","events":[{"event_id":"a", "n":1},{"event_id":"b"}]}"#
        );
        assert_eq!(
            events_body("node-1", &pending(&["{}", "{broken", "{}"])),
            Err(11)
        );
    }
}
