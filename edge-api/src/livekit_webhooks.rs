//! `POST /webhook/<region id>`: LiveKit's webhooks posted straight to the edge, for a region
//! where no media-sidecar can run beside LiveKit (LiveKit Cloud, a managed cluster): its
//! regions entry says `"webhooks": "direct"`, and its LiveKit's webhook URL is this path.
//!
//! - Each webhook is checked as LiveKit signs it: `Authorization` holds a JWT signed with the
//!   region's API secret, issued by its API key, whose `sha256` claim is the body's. A missing
//!   or bad one is 403, a body that is not a LiveKit event 422 (plugNmeet's `/webhook` answers).
//! - The event is applied as a sidecar's would be ([`crate::lifecycle::apply`]: one statement,
//!   its id remembered, so LiveKit's retries change nothing twice). After an applied one, a
//!   blocked user heard joining is removed again (and any still listed as present), a
//!   `room_finished` forgets old event ids, and the customer's due webhooks go out, briefly.
//! - The region's API key is its own (checked at load): a webhook names no region, so one
//!   signed for another region's room would otherwise be taken for a room this region does not
//!   run, and its LiveKit room deleted.
//! - What only a sidecar gives is not had: LiveKit posts each webhook a few times at most and
//!   not strictly in order, and there is no heartbeat, so the region is always taken as
//!   available and the edge's own limits (`room_duration`, a room nobody entered) are kept on
//!   each new `room/create` ([`crate::lifecycle::end_due_without_heartbeats`]). LiveKit itself
//!   closes a room its last participant left (its `departure_timeout`), and that
//!   `room_finished` ends the session.

use crate::config::Region;
use crate::exchange::{EdgeRequest, EdgeResponse};
use crate::lifecycle::{self, HeardJoins, Outcome, WebhookEvent};
use crate::platform::{Clock, HttpClient, Store, StoreError};
use crate::sidecars::MAX_EVENT_ID_BYTES;
use crate::tokens::verify_webhook_signature;
use crate::Edge;

/// The path prefix; the region id follows.
pub const PREFIX: &str = "/webhook/";
/// Largest webhook body taken (LiveKit's events are a few KiB).
const MAX_BODY: usize = 64 * 1024;
/// How long after an applied webhook the customer's webhooks may still start going out (each
/// waits at most [`crate::webhooks::DELIVERY_TIMEOUT`]).
const DELIVERY_WINDOW_MS: i64 = 1_000;

/// Handles `POST /webhook/<region id>`.
pub async fn handle<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    let region_id = request.path.strip_prefix(PREFIX).unwrap_or_default();
    let Some(region) = edge
        .config
        .region(region_id)
        .filter(|region| region.direct_webhooks)
    else {
        // Unknown, or its webhooks come through its sidecar: nothing here for them.
        return EdgeResponse::text(404, "Not Found");
    };
    if request.body_exceeds(MAX_BODY) {
        return EdgeResponse::text(413, "Payload Too Large");
    }
    let Some(token) = request.authorization_token() else {
        return EdgeResponse::text(403, "Forbidden");
    };
    let now = u64::try_from(edge.now_secs()).unwrap_or(0);
    if verify_webhook_signature(
        &region.api_key,
        &region.api_secret,
        token,
        &request.body,
        now,
    )
    .is_err()
    {
        tracing::warn!(region = %region.id, "a webhook not signed by the region's LiveKit: refused");
        return EdgeResponse::text(403, "Forbidden");
    }
    let event: WebhookEvent = match serde_json::from_slice(&request.body) {
        Ok(event) => event,
        Err(e) => {
            tracing::warn!(region = %region.id, error = %e, "a signed webhook that is not a LiveKit event");
            return EdgeResponse::text(422, "Unprocessable Entity");
        }
    };
    if event.id.is_empty() || event.id.len() > MAX_EVENT_ID_BYTES {
        return EdgeResponse::text(422, "Unprocessable Entity");
    }
    // A blocked user heard joining is still listed as present: the sweep below removes them,
    // with any other the region's sessions list, so only a locked user's join is followed up.
    let mut joins = HeardJoins::default();
    let outcome = match lifecycle::apply(edge, region, &event, &mut joins).await {
        Ok(outcome) => outcome,
        Err(e) => {
            // LiveKit posts it again.
            tracing::error!(region = %region.id, error = %e, "store failure applying a webhook");
            return EdgeResponse::text(503, "Service Unavailable");
        }
    };
    if outcome == Outcome::Applied {
        crate::locks::enforce_on_join(edge, region, joins.locked()).await;
        if let Err(e) = after_applied(edge, region, &event.event).await {
            tracing::error!(region = %region.id, error = %e, "store failure after a webhook");
        }
    }
    EdgeResponse::text(200, "")
}

/// What a sidecar's heartbeat would pay for, done on an applied webhook instead, briefly: LiveKit
/// sends the room's later events only once this one is answered, and drops one that waited
/// 30 s. After a participant event, blocked users still listed as present (one who just
/// joined among them) are removed and a few lock checks are worked through: there is no
/// heartbeat to do either; a `room_finished`
/// forgets old event ids; the customer's due webhooks go out, none starting later than
/// [`DELIVERY_WINDOW_MS`] from now.
async fn after_applied<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    region: &Region,
    event: &str,
) -> Result<(), StoreError> {
    match event {
        "participant_joined" | "participant_left" => {
            lifecycle::sweep_blocked(edge, region).await?;
            crate::locks::sweep_checks(edge, region).await?;
        }
        "room_finished" => {
            let forget_before = edge.now_secs() - lifecycle::APPLIED_EVENTS_KEPT_SECS;
            crate::db::prune_applied_events(&edge.store, forget_before).await?;
        }
        _ => {}
    }
    let deadline_ms = edge.clock.now_ms().saturating_add(DELIVERY_WINDOW_MS);
    crate::webhooks::deliver_due_before(edge, deadline_ms).await?;
    Ok(())
}
