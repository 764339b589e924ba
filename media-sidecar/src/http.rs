//! The sidecar's HTTP server: `POST /webhook` (LiveKit's webhooks), `POST /admin/drain`
//! (signed with the sidecar secret) and `GET /metrics`. The handlers are thin: the work is in
//! [`crate::webhooks`], [`crate::outbox`], [`crate::drain`] and [`crate::metrics`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use edgemeet_serve::{BodyError, Limits};
use tokio::sync::{mpsc, Notify};

use crate::auth::{self, API_KEY_HEADER, SIGNATURE_HEADER};
use crate::config::Secret;
use crate::drain::{self, AdminDrainBody};
use crate::metrics::{self, Metrics};
use crate::outbox::SharedOutbox;
use crate::relay;
use crate::webhooks::{Rejection, WebhookVerifier};

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    /// Checks LiveKit's signatures.
    pub verifier: Arc<WebhookVerifier>,
    /// Where accepted events go.
    pub outbox: SharedOutbox,
    /// Notified when an event was queued (wakes the relay).
    pub wake: Arc<Notify>,
    /// Counters and gauges.
    pub metrics: Metrics,
    /// This region (the admin calls' `API-KEY`).
    pub region_id: Arc<str>,
    /// The admin calls' HMAC secret.
    pub sidecar_secret: Secret,
    /// Where admin drain requests go.
    pub drain_requests: mpsc::Sender<drain::Request>,
    /// Cleared when a webhook cannot be stored (and set when one is): the next heartbeat then
    /// says the region's webhooks are not kept, and the edge places no new room there (see
    /// [`crate::heartbeat::HeartbeatLoop::events_ok`]).
    pub events_ok: Arc<AtomicBool>,
}

/// The largest body read: the edge's request limit, which no webhook it can take exceeds (see
/// [`relay::max_event_bytes`] for the exact bound), and plenty for an admin call.
pub const MAX_BODY_BYTES: usize = relay::EDGE_MAX_BODY_BYTES;

/// The answer to a webhook too large for the edge to take even alone in a batch. Not 413:
/// LiveKit's webhook client (go-retryablehttp's default policy) counts only a 5xx (but 501) or
/// a 429 as a failure, and would log any 4xx as delivered while the event is lost.
pub const TOO_LARGE_STATUS: StatusCode = StatusCode::INTERNAL_SERVER_ERROR;

/// Connections and deadlines: 512 connections at once (with the body limit, this bounds what a
/// crowd of slow clients can hold), 30 s for a request's head and then its body, and 30 s for
/// a client to take more of an answer.
pub const LIMITS: Limits = Limits {
    max_connections: 512,
    read_timeout: Duration::from_secs(30),
    write_timeout: Duration::from_secs(30),
};

/// The body, or the answer to give.
async fn read_body(body: Body) -> Result<Bytes, Response> {
    edgemeet_serve::read_body(body, MAX_BODY_BYTES, LIMITS.read_timeout)
        .await
        .map_err(|e| {
            let status = match e {
                BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::TooSlow => StatusCode::REQUEST_TIMEOUT,
            };
            answer(status, false, &e.to_string())
        })
}

/// A webhook event too large to forward: with the batch envelope around it, it would exceed
/// the edge's request limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "webhook too large for the edge: the event is {bytes} bytes, and at most {most} fit in the \
     edge's {limit}-byte request limit with the batch around them",
    limit = relay::EDGE_MAX_BODY_BYTES
)]
pub struct TooLargeForEdge {
    /// The event's size (its JSON as it would be stored).
    pub bytes: usize,
    /// The largest event that fits ([`relay::max_event_bytes`]).
    pub most: usize,
}

/// Whether an event of `json` from `region_id` fits alone in a batch the edge takes.
pub fn check_fits(region_id: &str, json: &str) -> Result<(), TooLargeForEdge> {
    let most = relay::max_event_bytes(region_id);
    if json.len() > most {
        return Err(TooLargeForEdge {
            bytes: json.len(),
            most,
        });
    }
    Ok(())
}

/// The router.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/webhook", post(webhook))
        .route("/admin/drain", post(admin_drain))
        .route("/metrics", get(metrics))
        .with_state(state)
}

fn answer(status: StatusCode, ok: bool, msg: &str) -> Response {
    let body = serde_json::json!({ "status": ok, "msg": msg }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /webhook`: verify, check that the edge can take the event, commit it to the outbox,
/// then 200. LiveKit retries a 5xx (and logs the webhook as failed once it gives up).
async fn webhook(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    state.metrics.webhooks_received.inc();
    let authorization = header_str(&headers, header::AUTHORIZATION.as_str());
    // Nothing is read from a caller that does not even claim to be LiveKit.
    if authorization.is_none() {
        state.metrics.webhooks_rejected.inc();
        return answer(StatusCode::UNAUTHORIZED, false, "invalid signature");
    }
    let body = match edgemeet_serve::read_body(body, MAX_BODY_BYTES, LIMITS.read_timeout).await {
        Ok(body) => body,
        Err(e) => {
            state.metrics.webhooks_rejected.inc();
            return match e {
                // Past the edge's own limit, it cannot fit in a batch whatever it holds.
                BodyError::TooLarge(limit) => {
                    tracing::warn!(
                        limit,
                        "webhook refused: unreadable or too large for the edge"
                    );
                    answer(
                        TOO_LARGE_STATUS,
                        false,
                        &format!(
                            "webhook too large for the edge: the body is unreadable or over its \
                             {limit}-byte request limit"
                        ),
                    )
                }
                BodyError::TooSlow => answer(StatusCode::REQUEST_TIMEOUT, false, &e.to_string()),
            };
        }
    };
    let event = match state.verifier.verify(authorization, &body) {
        Ok(event) => event,
        Err(rejection) => {
            state.metrics.webhooks_rejected.inc();
            tracing::warn!(reason = %rejection, bytes = body.len(), "webhook refused");
            return match rejection {
                Rejection::Unauthorized(_) => {
                    answer(StatusCode::UNAUTHORIZED, false, "invalid signature")
                }
                Rejection::Malformed(m) => answer(StatusCode::BAD_REQUEST, false, m),
            };
        }
    };
    // Taken, it would be answered 200 here and then refused by the edge for good (413), ending
    // in the dead-letter table; refused, LiveKit reports it as failed.
    if let Err(e) = check_fits(&state.region_id, &event.json) {
        state.metrics.webhooks_rejected.inc();
        tracing::error!(
            id = %event.id,
            event = %event.event,
            bytes = e.bytes,
            most = e.most,
            "webhook refused: too large for the edge to take"
        );
        return answer(TOO_LARGE_STATUS, false, &e.to_string());
    }
    let (id, json) = (event.id.clone(), event.json);
    let stored = state
        .outbox
        .with(move |o| Ok((o.append(&id, &json)?, o.depth()?)))
        .await;
    state.events_ok.store(stored.is_ok(), Ordering::Relaxed);
    match stored {
        Ok((new, depth)) => {
            state.metrics.set_outbox_depth(depth);
            if new {
                state.wake.notify_one();
            }
            tracing::debug!(id = %event.id, event = %event.event, new, "webhook stored");
            answer(StatusCode::OK, true, "stored")
        }
        Err(e) => {
            tracing::error!(error = %e, id = %event.id, "cannot store a webhook");
            answer(StatusCode::INTERNAL_SERVER_ERROR, false, "could not store")
        }
    }
}

/// `POST /admin/drain`: signed like the sidecar's own requests; `{"deadline_seconds": N}`.
async fn admin_drain(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    if !auth::key_matches(&state.region_id, header_str(&headers, API_KEY_HEADER)) {
        return answer(StatusCode::UNAUTHORIZED, false, "invalid API-KEY");
    }
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    if let Err(e) = auth::verify(
        &state.region_id,
        state.sidecar_secret.expose().as_bytes(),
        header_str(&headers, API_KEY_HEADER),
        header_str(&headers, SIGNATURE_HEADER),
        &body,
    ) {
        tracing::warn!(error = %e, "admin call refused");
        return answer(StatusCode::UNAUTHORIZED, false, &e.to_string());
    }
    let parsed = match AdminDrainBody::parse(&body, crate::outbox::now_ms()) {
        Ok(parsed) => parsed,
        Err(e) => return answer(StatusCode::BAD_REQUEST, false, &e),
    };
    tracing::info!(deadline_seconds = ?parsed.deadline_seconds, "drain requested by an admin call");
    match state.drain_requests.send(parsed.request()).await {
        Ok(()) => answer(StatusCode::OK, true, "draining"),
        Err(_) => answer(StatusCode::SERVICE_UNAVAILABLE, false, "shutting down"),
    }
}

/// `GET /metrics`.
async fn metrics(State(state): State<HttpState>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Outbox;
    use crate::relay::{Batch, EDGE_MAX_BODY_BYTES};
    use base64::Engine as _;
    use livekit_api::access_token::AccessToken;
    use sha2::{Digest as _, Sha256};

    const REGION: &str = "eu-west";
    const KEY: &str = "devkey";
    const SECRET: &str = "devsecret-devsecret-devsecret-devsecret";

    fn state(dir: &tempfile::TempDir) -> HttpState {
        let outbox = Outbox::open(&dir.path().join("outbox.db")).expect("open");
        let (drain_requests, _) = mpsc::channel(1);
        HttpState {
            verifier: Arc::new(WebhookVerifier::new(KEY, &Secret::new(SECRET))),
            outbox: SharedOutbox::new(outbox),
            wake: Arc::new(Notify::new()),
            metrics: Metrics::new(),
            region_id: Arc::from(REGION),
            sidecar_secret: Secret::new("sidecar-secret-sidecar-secret-0123"),
            drain_requests,
            events_ok: Arc::new(AtomicBool::new(true)),
        }
    }

    /// A LiveKit-shaped event of exactly `bytes` bytes.
    fn event(id: &str, bytes: usize) -> String {
        let head = format!(r#"{{"event":"room_started","id":"{id}","room":{{"sid":"RM_1"}},"p":""#);
        let tail = r#""}"#;
        format!(
            "{head}{}{tail}",
            "x".repeat(bytes - head.len() - tail.len())
        )
    }

    /// Posts `body` signed as LiveKit signs it; the status and the answer's `msg`.
    async fn post(state: &HttpState, body: String) -> (StatusCode, String) {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body));
        let token = AccessToken::with_api_key(KEY, SECRET)
            .with_sha256(&hash)
            .to_jwt()
            .expect("jwt");
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, token.parse().expect("header value"));
        let response = webhook(State(state.clone()), headers, Body::from(body)).await;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("answer");
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
        (
            status,
            answer["msg"].as_str().unwrap_or_default().to_owned(),
        )
    }

    #[tokio::test]
    async fn a_webhook_is_taken_only_if_it_fits_alone_in_a_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = state(&dir);
        let most = relay::max_event_bytes(REGION);
        assert!(most < MAX_BODY_BYTES);

        // One byte over: refused with a status LiveKit counts as failed, and not stored.
        let (status, msg) = post(&state, event("EV_over", most + 1)).await;
        assert_eq!(status, TOO_LARGE_STATUS);
        assert!(status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED);
        assert!(msg.contains("too large for the edge"), "{msg}");
        assert!(
            msg.contains(&format!("{} bytes", most + 1)) && msg.contains(&most.to_string()),
            "{msg}"
        );
        // Well past the edge's limit: the same.
        let (status, msg) = post(&state, event("EV_huge", EDGE_MAX_BODY_BYTES + 1)).await;
        assert_eq!(status, TOO_LARGE_STATUS);
        assert!(msg.contains("too large for the edge"), "{msg}");
        assert_eq!(state.metrics.webhooks_rejected.get(), 2);
        assert_eq!(state.outbox.with(|o| o.depth()).await.expect("depth"), 0);
        // Not a storage failure: the region still keeps its webhooks.
        assert!(state.events_ok.load(Ordering::Relaxed));

        // Exactly the most (surrounding whitespace is not stored, so it does not count): taken,
        // and its batch is exactly the edge's limit.
        let (status, msg) = post(&state, format!("{}\n", event("EV_fits", most))).await;
        assert_eq!((status, msg.as_str()), (StatusCode::OK, "stored"));
        let pending = state.outbox.with(|o| o.pending(10)).await.expect("pending");
        assert_eq!(pending.len(), 1);
        let batch = Batch::build(REGION, &pending)
            .expect("valid")
            .expect("batch");
        assert_eq!(batch.body.len(), EDGE_MAX_BODY_BYTES);
    }
}
