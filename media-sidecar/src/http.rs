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
    /// Whether the last webhook could be stored; heartbeats report it, and the edge places no
    /// new room in a region whose webhooks would be lost.
    pub events_ok: Arc<AtomicBool>,
}

/// The largest body taken: a webhook the edge can take (its request limit is 256 KiB), or an
/// admin call.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Connections and deadlines: 512 connections at once (with the body limit, this bounds what a
/// crowd of slow clients can hold), 30 s for a request's head and then its body.
pub const LIMITS: Limits = Limits {
    max_connections: 512,
    read_timeout: Duration::from_secs(30),
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

/// `POST /webhook`: verify, commit to the outbox, then 200. LiveKit retries anything else.
async fn webhook(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    state.metrics.webhooks_received.inc();
    let authorization = header_str(&headers, header::AUTHORIZATION.as_str());
    // Nothing is read from a caller that does not even claim to be LiveKit.
    if authorization.is_none() {
        state.metrics.webhooks_rejected.inc();
        return answer(StatusCode::UNAUTHORIZED, false, "invalid signature");
    }
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(response) => {
            state.metrics.webhooks_rejected.inc();
            return response;
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
