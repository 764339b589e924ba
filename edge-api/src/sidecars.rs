//! The internal endpoints each region's media-sidecar calls, signed with that region's own
//! sidecar secret (never a customer's key): `API-KEY` is the region id, `HASH-SIGNATURE` the
//! hex HMAC-SHA256 of the raw body.
//!
//! - `POST /internal/sidecar/heartbeat`: a [`Heartbeat`] into the registry, then the region's
//!   due work ([`lifecycle::on_heartbeat`]) and the customer's due webhooks
//!   ([`crate::webhooks::deliver_due`]).
//! - `POST /internal/sidecar/events`: `{region_id, events: [LiveKit webhook event, ...]}`, at
//!   most `max_events_per_batch` ([`MAX_EVENTS`] unless configured lower; a larger batch gets
//!   413 with `max_events`, which the sidecar adopts), applied in order
//!   ([`lifecycle::apply`]). A batch holding a malformed
//!   event is refused whole (400, nothing applied): the sidecar halves it until the event is
//!   alone and sets that one aside for an operator, rather than have it dropped here. A store
//!   failure answers 503 so the sidecar re-sends the batch, whose applied events are then
//!   recognised by id.
//!
//! Answers are `{status, msg, ...}`: 401 for a bad signature or unknown region, 400 for a body
//! that is not the endpoint's message, 503 when the store fails.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::verify_signature;
use crate::config::Region;
use crate::exchange::{EdgeRequest, EdgeResponse};
use crate::lifecycle::{self, Outcome, WebhookEvent};
use crate::platform::{Clock, HttpClient, Store, StoreError};
use crate::registry::Heartbeat;
use crate::wire::{Common, Reply, StatusCode};
use crate::{db, Edge};

/// Events per batch at most.
pub const MAX_EVENTS: usize = 100;

/// An event id's length at most, in bytes (LiveKit's are `EV_` and 12 characters).
pub const MAX_EVENT_ID_BYTES: usize = 64;

/// How far a region's clock (its sidecar's, its LiveKit's) may be from the edge's. A heartbeat
/// whose `sent_at_ms` is further off is refused (a replayed old heartbeat must not undo a
/// drain), and a LiveKit room that started more than this before a session was created is not
/// that session's.
pub const REGION_CLOCK_SKEW_MS: i64 = 60_000;

/// A batch of relayed webhooks. Fields a newer sidecar adds are ignored, as in [`Heartbeat`].
#[derive(Deserialize)]
struct EventBatch {
    region_id: String,
    events: Vec<Value>,
}

#[derive(Serialize)]
struct BatchReply {
    applied: usize,
    duplicates: usize,
    ignored: usize,
}

/// The answer to a batch over `max_events_per_batch`.
#[derive(Serialize)]
struct BatchTooLarge {
    /// The most events a batch may carry.
    max_events: usize,
}

#[derive(Serialize)]
struct HeartbeatReply {
    /// Whether this heartbeat was newer than the stored one.
    recorded: bool,
    /// Sessions ended on this heartbeat (duration or empty limits).
    rooms_ended: usize,
    /// Sessions still running in the region, counted after this heartbeat was recorded: a
    /// draining sidecar may leave once this is 0 (no session placed there can still start).
    running_sessions: i64,
}

/// Handles `/internal/sidecar/heartbeat` and `/internal/sidecar/events`.
pub async fn handle<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    let region = match authenticate(edge, request) {
        Ok(region) => region,
        Err(response) => return response,
    };
    match request.path.as_str() {
        "/internal/sidecar/heartbeat" => heartbeat(edge, region, &request.body).await,
        "/internal/sidecar/events" => events(edge, region, &request.body).await,
        _ => EdgeResponse::text(404, "Not Found"),
    }
}

/// The region whose sidecar signed the request, or the 401.
fn authenticate<'a, S, H, C>(
    edge: &'a Edge<S, H, C>,
    request: &EdgeRequest,
) -> Result<&'a Region, EdgeResponse> {
    let unauthorized = |msg: &str| {
        EdgeResponse::common(401, Common::fail(StatusCode::InvalidTokenOrSignature, msg))
    };
    let region_id = request.header("api-key").unwrap_or_default();
    let signature = request.header("hash-signature").unwrap_or_default();
    // Unknown regions are checked against a dummy secret so timing does not tell them apart.
    let (region, secret) = match (
        edge.config.region(region_id),
        edge.config.sidecar_secrets.get(region_id),
    ) {
        (Some(region), Some(secret)) => (Some(region), secret.as_bytes()),
        _ => (None, &[0u8; 32][..]),
    };
    let valid = verify_signature(secret, &request.body, signature);
    match region {
        // The region was found by this id, so a valid signature is the whole check.
        Some(region) if valid => Ok(region),
        _ => Err(unauthorized("invalid sidecar signature or region")),
    }
}

fn bad_request(msg: String) -> EdgeResponse {
    EdgeResponse::common(400, Common::fail(StatusCode::InvalidParameters, msg))
}

fn unavailable(e: StoreError) -> EdgeResponse {
    tracing::error!(error = %e, "store failure on a sidecar call");
    EdgeResponse::common(
        503,
        Common::fail(StatusCode::InternalServerError, "store unavailable; retry"),
    )
}

async fn heartbeat<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    region: &Region,
    body: &[u8],
) -> EdgeResponse {
    let hb: Heartbeat = match serde_json::from_slice(body) {
        Ok(hb) => hb,
        Err(e) => return bad_request(format!("not a heartbeat: {e}")),
    };
    if hb.region_id != region.id {
        return bad_request("region_id differs from the signing region".into());
    }
    let now_ms = edge.clock.now_ms();
    // abs_diff: a difference of two i64s can overflow; an overflowing one wrapped to a negative
    // number and passed the check.
    if hb.sent_at_ms.abs_diff(now_ms) > REGION_CLOCK_SKEW_MS.unsigned_abs() {
        return bad_request(format!(
            "sent_at_ms is more than {} s from the edge's clock",
            REGION_CLOCK_SKEW_MS / 1000
        ));
    }
    let recorded = match db::record_heartbeat(&edge.store, &hb, now_ms).await {
        Ok(recorded) => recorded,
        Err(e) => return unavailable(e),
    };
    if recorded && (hb.leaving || hb.draining) {
        tracing::info!(region = %region.id, leaving = hb.leaving, draining = hb.draining, "region draining");
    }
    // Only a recorded heartbeat pays for the due work: a late or replayed one changes nothing.
    let rooms_ended = if recorded {
        let events_settled = hb.events_ok && hb.undelivered_events == 0;
        match lifecycle::on_heartbeat(edge, region, events_settled).await {
            Ok(n) => n,
            Err(e) => return unavailable(e),
        }
    } else {
        0
    };
    // The customer's webhooks that are due, this heartbeat's events among them. A failure
    // only delays them: the heartbeat was kept.
    if recorded {
        if let Err(e) = crate::webhooks::deliver_due(edge, now_ms).await {
            tracing::error!(error = %e, "store failure delivering webhooks");
        }
    }
    let running_sessions = match db::running_sessions_in(&edge.store, &region.id).await {
        Ok(n) => n,
        Err(e) => return unavailable(e),
    };
    EdgeResponse::reply(
        Common::ok("heartbeat recorded"),
        HeartbeatReply {
            recorded,
            rooms_ended,
            running_sessions,
        },
    )
}

async fn events<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    region: &Region,
    body: &[u8],
) -> EdgeResponse {
    let batch: EventBatch = match serde_json::from_slice(body) {
        Ok(batch) => batch,
        Err(e) => return bad_request(format!("not an event batch: {e}")),
    };
    if batch.region_id != region.id {
        return bad_request("region_id differs from the signing region".into());
    }
    let most = edge.config.max_events_per_batch;
    if batch.events.len() > most {
        // Refused before anything is applied; the sidecar sends at most `max_events` from now.
        return EdgeResponse::json(
            413,
            &Reply::new(
                Common::fail(
                    StatusCode::InvalidParameters,
                    format!("at most {most} events per batch"),
                ),
                BatchTooLarge { max_events: most },
            ),
        );
    }
    let mut parsed = Vec::with_capacity(batch.events.len());
    for (index, value) in batch.events.into_iter().enumerate() {
        match serde_json::from_value::<WebhookEvent>(value) {
            Ok(event) if event.id.len() <= MAX_EVENT_ID_BYTES => parsed.push(event),
            Ok(_) => {
                return bad_request(format!(
                    "event {index}: id longer than {MAX_EVENT_ID_BYTES} bytes"
                ))
            }
            Err(e) => {
                tracing::warn!(region = %region.id, index, error = %e, "refusing a batch with a malformed webhook event");
                return bad_request(format!("event {index} is not a LiveKit webhook event: {e}"));
            }
        }
    }
    let mut reply = BatchReply {
        applied: 0,
        duplicates: 0,
        ignored: 0,
    };
    let mut joins = lifecycle::HeardJoins::default();
    for event in &parsed {
        match lifecycle::apply(edge, region, event, &mut joins).await {
            Ok(Outcome::Applied) => reply.applied += 1,
            Ok(Outcome::Duplicate) => reply.duplicates += 1,
            Ok(Outcome::Ignored) => reply.ignored += 1,
            Err(e) => return unavailable(e),
        }
    }
    lifecycle::follow_up_joins(edge, region, joins).await;
    EdgeResponse::reply(Common::ok("events applied"), reply)
}
