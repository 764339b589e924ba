//! plugNmeet's webhooks: the customer's own servers are told what happens in each session
//! (`room_created`, `room_started`, `participant_joined`, `participant_left`, `room_finished`,
//! `session_ended`, `track_published`, `track_unpublished`, `start_recording`,
//! `end_recording`, `start_rtmp`, `end_rtmp`, `recording_proceeded`), as plugNmeet's server
//! tells them (its `CommonNotifyEvent`), so
//! receivers written for plugNmeet take them unchanged.
//!
//! - **Which:** also `artifact_created` (the file as an artifact, `crate::artifacts`) and
//!   `analytics_proceeded`, once a session's analytics file is written
//!   (`migrations/0020_session_analytics.sql`), after its `session_ended`.
//! - **Where:** the configured `webhook_url`, and with `webhook_per_meeting` the room's own
//!   `metadata.webhook_url`, captured when the session is created ([`capture`]).
//! - **Never lost:** the schema's triggers queue each event in the statement that changed the
//!   state (`migrations/0014_customer_webhooks.sql`), so no crash between the change and the
//!   queueing can drop one.
//! - **Delivered on heartbeats** ([`deliver_due`]): a sidecar's heartbeat (or, without
//!   sidecars, a recorder's) is the edge's clock, so events go out within a heartbeat period
//!   (5 s by default). No customer's request ever waits on a customer's server.
//! - **In order per session and URL**, at least once: an event is sent only once every earlier
//!   one of its session for that URL went. A URL that fails (no answer within
//!   [`DELIVERY_TIMEOUT`], 408, 429 or a 5xx) holds the session's queue for it, and gets the
//!   event again after [`RETRY_AFTER_SECS`], [`MAX_ATTEMPTS`] times in all (about 45 minutes).
//!   Then the event is dropped (logged), and with it every event queued behind it: they are at
//!   least as stale, and a receiver down for good must not leave a queue that never drains.
//!   Events that happen later go as usual. (A BBB recording-ready callback, news of its own
//!   recording, is dropped alone.) Any other 4xx refuses the one event for good, as
//!   plugNmeet takes it, and so does a redirect (3xx), which is not followed. Every attempt, on
//!   every URL, carries the same event `id`.
//! - **Signed as plugNmeet signs:** `Authorization` and `Hash-Token` both carry an HS256 JWT
//!   under the API secret: `iss` the API key, valid for five minutes, and `sha256` the base64
//!   SHA-256 of the body. TLS certificates are verified (plugNmeet's sender skips that).
//! - **Bounded:** a delivery claims at most [`EVENTS_PER_DELIVERY`] events, starts no send
//!   after [`SEND_WINDOW_MS`], never reads a receiver's answer body, and costs one statement
//!   when nothing is due (six at most).
//! - **BigBlueButton's callbacks** (`bbb::callbacks`) share the outbox and all of the above,
//!   written as BBB writes them, and go out whether plugNmeet's webhooks are configured or not.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::analytics::ArtifactFileInfo;
use crate::bbb::callbacks;
use crate::db::webhooks::{self as db, QueuedEvent};
use crate::db::RoomRow;
use crate::platform::{Clock, HttpClient, OutboundRequest, Store, StoreError};
use crate::tokens::RecordingReadyClaims;
use crate::Edge;

/// Events one delivery claims at most (with the LiveKit calls a heartbeat makes, within the 50
/// outbound requests Workers' free plan allows a request).
pub const EVENTS_PER_DELIVERY: u32 = 24;
/// No send starts later than this after the request began (ms): with [`DELIVERY_TIMEOUT`] for
/// the last answer, a heartbeat ends inside the 10 s its sidecar or recorder waits.
pub const SEND_WINDOW_MS: i64 = 4_000;
/// How long a customer's server may take to answer one event.
pub const DELIVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// Attempts at one event before it is dropped.
pub const MAX_ATTEMPTS: i64 = 6;
/// The wait before attempt n + 2, after n + 1 failed (seconds).
pub const RETRY_AFTER_SECS: [i64; 5] = [5, 30, 120, 600, 1800];
/// How long events claimed by a delivery stay out of other deliveries' reach: far longer than
/// a delivery can take ([`SEND_WINDOW_MS`] and one [`DELIVERY_TIMEOUT`]).
const LEASE_MS: i64 = 60_000;
/// How long the signature of a delivery is valid (plugNmeet: five minutes).
const SIGNATURE_VALIDITY_SECS: u64 = 300;

/// Keeps the URLs the session `sid` (created with the room's own webhook URL `room_url`, ''
/// when none) sends its events to, and so queues its `room_created`. Nothing when no URL is
/// configured.
pub async fn capture<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    sid: &str,
    room_url: &str,
    created_at: i64,
) -> Result<(), StoreError> {
    let urls = edge.config.webhooks.urls_for(room_url);
    db::capture_urls(&edge.store, sid, &urls, created_at).await
}

/// What one delivery did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Events a URL took (2xx).
    pub sent: usize,
    /// Events a URL refused for good (a 4xx other than 408 and 429): not sent again, as
    /// plugNmeet does not send them again.
    pub refused: usize,
    /// Events that failed and wait for another attempt.
    pub failed: usize,
    /// Events dropped after their last attempt (each with the rest of its queue).
    pub dropped: usize,
}

/// What became of one queue (a session's events for one URL) in a delivery.
#[derive(Default)]
struct QueueOutcome {
    /// Events sent or refused for good: forgotten.
    done: Vec<i64>,
    /// Claimed events not attempted because the time was up.
    untried: Vec<i64>,
    /// The event that failed, with its attempts so far.
    failed: Option<(i64, i64)>,
    sent: usize,
    refused: usize,
}

/// Sends the events that are due (see the module's documentation); `started_ms` is when the
/// request paying for it started. Each session's events for a URL go one after the other, the
/// queues side by side, and no send starts later than [`SEND_WINDOW_MS`] after `started_ms`,
/// so the request ends well inside its caller's timeout with what it sent recorded. A store
/// failure stops the delivery; events it claimed are attempted again once their lease is over.
pub async fn deliver_due<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    started_ms: i64,
) -> Result<Delivered, StoreError> {
    deliver_due_before(edge, started_ms.saturating_add(SEND_WINDOW_MS)).await
}

/// [`deliver_due`] with no send starting at or after `deadline_ms` (the edge's clock): for a
/// caller whose own caller waits on it more briefly.
pub async fn deliver_due_before<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    deadline_ms: i64,
) -> Result<Delivered, StoreError> {
    let now_ms = edge.clock.now_ms();
    if now_ms >= deadline_ms {
        return Ok(Delivered::default());
    }
    let events = db::claim_due(
        &edge.store,
        now_ms,
        now_ms.saturating_add(LEASE_MS),
        EVENTS_PER_DELIVERY,
        edge.config.webhooks.enabled(),
    )
    .await?;
    if events.is_empty() {
        return Ok(Delivered::default());
    }
    let mut sids: Vec<&str> = events.iter().map(|e| e.room_sid.as_str()).collect();
    sids.sort_unstable();
    sids.dedup();
    let sessions = crate::db::rooms_by_sids(&edge.store, &sids).await?;

    // The claimed events by queue, each queue in order (events come sorted by id).
    let mut queues: Vec<Vec<&QueuedEvent>> = Vec::new();
    for event in &events {
        match queues
            .iter_mut()
            .find(|q| q[0].room_sid == event.room_sid && q[0].url == event.url)
        {
            Some(queue) => queue.push(event),
            None => queues.push(vec![event]),
        }
    }
    let outcomes = futures_util::future::join_all(
        queues
            .iter()
            .map(|queue| deliver_queue(edge, queue, &sessions, deadline_ms)),
    )
    .await;

    let mut delivered = Delivered::default();
    let mut done = Vec::new();
    let mut untried = Vec::new();
    let mut postponed = Vec::new();
    let mut given_up = Vec::new();
    for (queue, outcome) in queues.iter().zip(outcomes) {
        delivered.sent += outcome.sent;
        delivered.refused += outcome.refused;
        done.extend(outcome.done);
        untried.extend(outcome.untried);
        let Some((id, attempts)) = outcome.failed else {
            continue;
        };
        let head = queue[0];
        let wait = usize::try_from(attempts - 1)
            .ok()
            .and_then(|n| RETRY_AFTER_SECS.get(n));
        match wait {
            Some(secs) if attempts < MAX_ATTEMPTS => {
                delivered.failed += 1;
                let next = now_ms.saturating_add(secs.saturating_mul(1000));
                postponed.push(db::Postponed {
                    room_sid: &head.room_sid,
                    url: &head.url,
                    id,
                    attempts,
                    next_attempt_ms: next,
                });
            }
            _ => {
                delivered.dropped += 1;
                let at = queue.iter().position(|e| e.id == id).unwrap_or(0);
                if queue[at].event == callbacks::RECORDING_READY {
                    // Each recording's is news of its own, never stale: only it goes, and the
                    // queue behind it is due again.
                    done.push(id);
                    untried.extend(queue[at + 1..].iter().map(|e| e.id));
                    tracing::error!(
                        attempts = MAX_ATTEMPTS,
                        "a recording-ready callback was not delivered; giving up on it"
                    );
                } else {
                    given_up.push((head.room_sid.as_str(), head.url.as_str()));
                }
            }
        }
    }
    db::forget(&edge.store, &done).await?;
    if !given_up.is_empty() {
        let dropped = db::forget_queues(&edge.store, &given_up).await?;
        tracing::error!(
            queues = given_up.len(),
            events = dropped,
            attempts = MAX_ATTEMPTS,
            "webhooks not delivered; giving up on them and the events queued behind them"
        );
    }
    db::postpone(&edge.store, &postponed).await?;
    db::release(&edge.store, &untried).await?;
    Ok(delivered)
}

/// Sends one queue's claimed events in order until one fails or the time is up.
async fn deliver_queue<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    queue: &[&QueuedEvent],
    sessions: &[RoomRow],
    deadline_ms: i64,
) -> QueueOutcome {
    let mut outcome = QueueOutcome::default();
    for (at, event) in queue.iter().enumerate() {
        if outcome.failed.is_some() {
            // The rest wait with the failed one (`db::postpone`).
            break;
        }
        if edge.clock.now_ms() >= deadline_ms {
            outcome.untried.extend(queue[at..].iter().map(|e| e.id));
            break;
        }
        let Some(session) = sessions.iter().find(|s| s.sid == event.room_sid) else {
            // The session was forgotten meanwhile; its events went with it.
            outcome.done.push(event.id);
            continue;
        };
        match send(edge, event, session).await {
            Ok(()) => {
                outcome.sent += 1;
                outcome.done.push(event.id);
            }
            Err(SendError::Refused(status)) if is_final_refusal(status) => {
                tracing::warn!(event = %event.event, sid = %event.room_sid, status, "webhook refused by its receiver; not sent again");
                outcome.refused += 1;
                outcome.done.push(event.id);
            }
            Err(why) => {
                let attempts = event.attempts + 1;
                tracing::warn!(event = %event.event, sid = %event.room_sid, attempts, %why, "webhook not delivered");
                outcome.failed = Some((event.id, attempts));
            }
        }
    }
    outcome
}

/// Whether a receiver's answer refuses an event for good: a 4xx but 408 (timeout) and 429
/// (too many requests), and 501, as plugNmeet's sender (go-retryablehttp) takes them; and a
/// redirect, which the edge does not follow (a receiver's answer must not send the edge
/// elsewhere) and which asking again would not change.
fn is_final_refusal(status: u16) -> bool {
    ((300..500).contains(&status) && status != 408 && status != 429) || status == 501
}

/// Why an attempt failed (never holds a secret: the URL's query may, so it is left out).
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("no answer: {0}")]
    Unanswered(String),
    #[error("answered {0}")]
    Refused(u16),
    #[error("could not sign: {0}")]
    Signing(String),
}

async fn send<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    event: &QueuedEvent,
    session: &RoomRow,
) -> Result<(), SendError> {
    let detail: Detail = serde_json::from_str(&event.detail).unwrap_or_default();
    let now_secs = u64::try_from(edge.now_secs()).unwrap_or(0);
    let signing = |e: crate::tokens::TokenError| SendError::Signing(e.to_string());
    let request = match event.event.as_str() {
        callbacks::MEETING_ENDED => callbacks::meeting_ended(
            &event.url,
            &detail.meeting_id,
            detail.recording_marks != 0,
            DELIVERY_TIMEOUT,
        ),
        callbacks::RECORDING_READY => callbacks::recording_ready(
            &event.url,
            &edge.config.api_secret,
            RecordingReadyClaims {
                meeting_id: detail.meeting_id,
                record_id: detail.record_id,
            },
            now_secs,
            DELIVERY_TIMEOUT,
        )
        .map_err(signing)?,
        _ => {
            let body = notify_body(event, detail, session);
            let token = crate::tokens::mint_webhook_signature(
                &edge.config.api_key,
                &edge.config.api_secret,
                &body,
                now_secs,
                SIGNATURE_VALIDITY_SECS,
            )
            .map_err(signing)?;
            OutboundRequest {
                method: http::Method::POST,
                url: event.url.clone(),
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("authorization".into(), token.clone()),
                    ("hash-token".into(), token),
                ],
                body,
                timeout: DELIVERY_TIMEOUT,
                read_body: false,
            }
        }
    };
    let response = edge
        .http
        .send(request)
        .await
        .map_err(|e| SendError::Unanswered(e.to_string()))?;
    if (200..300).contains(&response.status) {
        Ok(())
    } else {
        Err(SendError::Refused(response.status))
    }
}

/// plugNmeet's `CommonNotifyEvent`, written as its server writes it: snake_case, int64 as
/// strings, unpopulated fields left out.
#[derive(Serialize)]
struct NotifyEvent<'a> {
    event: &'a str,
    room: NotifyRoom<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    participant: Option<NotifyParticipant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recording_info: Option<NotifyRecording>,
    #[serde(skip_serializing_if = "Option::is_none")]
    track: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    analytics: Option<NotifyAnalytics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    room_artifact: Option<NotifyArtifact>,
    id: String,
    created_at: String,
}

/// plugNmeet's `AnalyticsEvent`: the file an `analytics_proceeded` announces.
#[derive(Serialize)]
struct NotifyAnalytics {
    file_id: String,
}

/// plugNmeet's `RoomArtifactWebhookEvent`: the artifact an `artifact_created` announces (an
/// analytics file, `crate::artifacts`).
#[derive(Serialize)]
struct NotifyArtifact {
    #[serde(rename = "type")]
    kind: &'static str,
    artifact_id: String,
    metadata: NotifyArtifactMetadata,
}

#[derive(Serialize)]
struct NotifyArtifactMetadata {
    file_info: ArtifactFileInfo,
}

#[derive(Serialize)]
struct NotifyRoom<'a> {
    sid: &'a str,
    room_id: &'a str,
    // plugNmeet's `optional` fields: written when set, zero too.
    empty_timeout: i64,
    max_participants: i64,
    creation_time: String,
    metadata: &'a str,
    num_participants: i64,
}

/// LiveKit's `ParticipantInfo`, the fields the edge knows (no metadata: plugNmeet's carries
/// none, its users' metadata being its own).
#[derive(Serialize)]
struct NotifyParticipant {
    sid: String,
    identity: String,
    state: &'static str,
    joined_at: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    permission: Option<NotifyPermission>,
}

#[derive(Serialize)]
struct NotifyPermission {
    hidden: bool,
}

#[derive(Serialize)]
struct NotifyRecording {
    record_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    recorder_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    recorder_msg: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    file_path: String,
    /// Megabytes, as plugNmeet counts them.
    #[serde(skip_serializing_if = "is_zero_f64")]
    file_size: f64,
}

fn is_zero_f64(n: &f64) -> bool {
    *n == 0.0
}

/// What the schema's triggers keep about the participant or the recording (and, for BBB's
/// callbacks, the meeting).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Detail {
    file_id: String,
    meeting_id: String,
    recording_marks: i64,
    sid: String,
    identity: String,
    name: String,
    hidden: i64,
    joined_at: i64,
    record_id: String,
    recorder_id: String,
    recorder_msg: String,
    file_path: String,
    file_bytes: i64,
    track: Option<serde_json::Value>,
}

/// The body sent for `event` of `session`.
fn notify_body(event: &QueuedEvent, detail: Detail, session: &RoomRow) -> Vec<u8> {
    let about_participant =
        event.event.starts_with("participant_") || event.event.starts_with("track_");
    let participant = about_participant.then(|| NotifyParticipant {
        sid: detail.sid.clone(),
        identity: detail.identity.clone(),
        state: if event.event == "participant_left" {
            "DISCONNECTED"
        } else {
            "ACTIVE"
        },
        joined_at: detail.joined_at.to_string(),
        name: detail.name.clone(),
        permission: (detail.hidden != 0).then_some(NotifyPermission { hidden: true }),
    });
    let recording_info = (!detail.record_id.is_empty()).then(|| NotifyRecording {
        record_id: detail.record_id.clone(),
        recorder_id: detail.recorder_id.clone(),
        recorder_msg: detail.recorder_msg.clone(),
        file_path: detail.file_path.clone(),
        file_size: crate::recording::catalog::megabytes(detail.file_bytes),
    });
    let notify = NotifyEvent {
        event: &event.event,
        room: NotifyRoom {
            sid: &session.sid,
            room_id: &session.room_id,
            empty_timeout: session.empty_timeout,
            max_participants: session.max_participants,
            creation_time: session.created_at.to_string(),
            metadata: &session.metadata,
            num_participants: event.num_participants,
        },
        participant,
        recording_info,
        track: detail.track,
        room_artifact: (event.event == "artifact_created").then(|| NotifyArtifact {
            kind: crate::artifacts::MEETING_ANALYTICS,
            artifact_id: detail.file_id.clone(),
            metadata: NotifyArtifactMetadata {
                file_info: ArtifactFileInfo::of(
                    &session.room_id,
                    &detail.file_id,
                    detail.file_bytes,
                ),
            },
        }),
        analytics: (event.event == "analytics_proceeded").then_some(NotifyAnalytics {
            file_id: detail.file_id,
        }),
        id: event_id(event),
        created_at: event.created_at.to_string(),
    };
    // Plain data with string keys: serialization cannot fail.
    serde_json::to_vec(&notify).unwrap_or_default()
}

/// What a track event's row keeps (see `db::webhooks::queue_track_event`): the participant as
/// the triggers keep one, and LiveKit's `TrackInfo` with its keys in snake_case, as plugNmeet
/// writes it.
pub(crate) fn track_detail(
    participant: &crate::lifecycle::EventParticipant,
    track: Option<&serde_json::Value>,
) -> String {
    let detail = serde_json::json!({
        "sid": participant.sid,
        "identity": participant.identity,
        "name": participant.name,
        "hidden": i64::from(participant.permission.as_ref().is_some_and(|p| p.hidden)),
        "track": track.map(snake_case_keys),
    });
    detail.to_string()
}

/// `value` with every object key in snake_case (LiveKit's webhooks are protojson's camelCase;
/// plugNmeet's use the proto names).
fn snake_case_keys(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (crate::wire::snake_case(key), snake_case_keys(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(snake_case_keys).collect()),
        other => other.clone(),
    }
}

/// The event's id: a UUID made from what it says (its session, kind, time, participant or
/// recording, and count), the same on every attempt and for every URL it goes to, as plugNmeet
/// gives one event one id (a receiver with two URLs can tell them apart from repeats). Two
/// events never say all of that alike: each join, track and job has its own LiveKit or job id.
fn event_id(event: &QueuedEvent) -> String {
    let digest = Sha256::new()
        .chain_update(event.room_sid.as_bytes())
        .chain_update([0])
        .chain_update(event.event.as_bytes())
        .chain_update([0])
        .chain_update(event.detail.as_bytes())
        .chain_update([0])
        .chain_update(event.created_at.to_be_bytes())
        .chain_update(event.num_participants.to_be_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_are_passed_on_in_snake_case() {
        let track = serde_json::json!({"sid": "TR_1", "mimeType": "audio/opus",
            "layers": [{"quality": "HIGH", "bitRate": 1}], "disable_dtx": true});
        assert_eq!(
            snake_case_keys(&track),
            serde_json::json!({"sid": "TR_1", "mime_type": "audio/opus",
                "layers": [{"quality": "HIGH", "bit_rate": 1}], "disable_dtx": true})
        );
    }

    #[test]
    fn event_ids_are_the_events_own_on_every_url_and_attempt() {
        let event = |row: i64, url: &str, sid: &str, detail: &str| QueuedEvent {
            id: row,
            room_sid: sid.into(),
            url: url.into(),
            event: "participant_joined".into(),
            detail: detail.into(),
            num_participants: 1,
            created_at: 1_800_000_000,
            attempts: 0,
        };
        let joined = event(1, "https://a.test", "s", r#"{"sid":"PA_1"}"#);
        // The same event for another URL (another row), or attempted again.
        assert_eq!(
            event_id(&joined),
            event_id(&event(2, "https://b.test", "s", r#"{"sid":"PA_1"}"#))
        );
        assert_ne!(
            event_id(&joined),
            event_id(&event(3, "https://a.test", "s", r#"{"sid":"PA_2"}"#))
        );
        assert_ne!(
            event_id(&joined),
            event_id(&event(1, "https://a.test", "t", r#"{"sid":"PA_1"}"#))
        );
        let mut left = event(4, "https://a.test", "s", r#"{"sid":"PA_1"}"#);
        left.event = "participant_left".into();
        assert_ne!(event_id(&joined), event_id(&left));
        assert!(uuid::Uuid::parse_str(&event_id(&joined)).is_ok());
    }
}
