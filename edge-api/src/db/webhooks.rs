//! The SQL of the customer's webhooks: each session's URLs and the outbox the schema's
//! triggers fill (`migrations/0014_customer_webhooks.sql`).

use serde::Serialize;

use super::{json_list, Columns};
use crate::platform::{SqlValue, Store, StoreError};

/// Keeps the URLs session `room_sid` sends its events to (none are added twice, so a repeated
/// `room/create` changes nothing). The first time a URL is kept, the schema queues the
/// session's `room_created` for it.
pub async fn capture_urls(
    store: &impl Store,
    room_sid: &str,
    urls: &[&str],
    captured_at: i64,
) -> Result<(), StoreError> {
    if urls.is_empty() {
        return Ok(());
    }
    let rows = vec!["(?, ?, ?)"; urls.len()].join(", ");
    let params: Vec<SqlValue> = urls
        .iter()
        .flat_map(|url| [room_sid.into(), (*url).into(), captured_at.into()])
        .collect();
    store
        .execute(
            &format!(
                "INSERT OR IGNORE INTO room_webhook_urls (room_sid, url, captured_at) \
                 VALUES {rows}"
            ),
            &params,
        )
        .await?;
    Ok(())
}

/// A LiveKit track event (`track_published`, `track_unpublished`) as the statements that keep
/// it take it: for the running session in `region_id` whose media is LiveKit room
/// `livekit_sid`, named `livekit_room`.
#[derive(Debug, Clone, Copy)]
pub struct TrackEvent<'a> {
    /// The region whose LiveKit reported it.
    pub region_id: &'a str,
    /// The LiveKit room's name.
    pub livekit_room: &'a str,
    /// The LiveKit room's sid.
    pub livekit_sid: &'a str,
    /// `track_published` or `track_unpublished`.
    pub event: &'a str,
    /// JSON: the participant and the track (`webhooks::track_detail`).
    pub detail: &'a str,
    /// Unix seconds.
    pub at: i64,
}

impl TrackEvent<'_> {
    /// The parameters both statements bind: `?1` the event, `?2` the detail, `?3` the time,
    /// `?4` the LiveKit sid, `?5` the room id, `?6` the region.
    pub(crate) fn params(&self) -> [SqlValue; 6] {
        [
            self.event.into(),
            self.detail.into(),
            self.at.into(),
            self.livekit_sid.into(),
            super::room_id_of(self.livekit_room).into(),
            self.region_id.into(),
        ]
    }
}

/// Queues `track` for every webhook URL of its session. Returns whether any was queued (none
/// for a session without URLs). The participant's `joined_at` is the one kept, and the
/// queue's wait is joined, as the triggers do.
pub async fn queue_track_event(
    store: &impl Store,
    track: &TrackEvent<'_>,
) -> Result<bool, StoreError> {
    let rows = store
        .execute(
            "INSERT INTO webhook_outbox (room_sid, url, event, detail, num_participants, \
             created_at, next_attempt_at) \
             SELECT u.room_sid, u.url, ?1, \
             json_set(json(?2), '$.joined_at', COALESCE((SELECT p.joined_at \
              FROM room_participants p WHERE p.room_sid = r.sid \
              AND p.participant_sid = json_extract(?2, '$.sid')), 0)), \
             (SELECT COUNT(*) FROM room_participants p WHERE p.room_sid = r.sid \
              AND p.left_at IS NULL AND p.hidden = 0), ?3, \
             (SELECT COALESCE(MAX(w.next_attempt_at), 0) FROM webhook_outbox w \
              WHERE w.room_sid = u.room_sid AND w.url = u.url AND w.attempts > 0) \
             FROM rooms r JOIN room_media m ON m.room_sid = r.sid AND m.livekit_sid = ?4 \
             JOIN room_webhook_urls u ON u.room_sid = r.sid \
             WHERE r.room_id = ?5 AND r.region = ?6 AND r.is_running = 1 \
             ORDER BY u.url RETURNING id",
            &track.params(),
        )
        .await?;
    Ok(!rows.rows.is_empty())
}

/// One queued event for one URL.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedEvent {
    /// The outbox row (orders a session's events for a URL).
    pub id: i64,
    /// The session.
    pub room_sid: String,
    /// Where it goes.
    pub url: String,
    /// plugNmeet's event name.
    pub event: String,
    /// JSON object: the participant or the recording the event is about (`{}` otherwise).
    pub detail: String,
    /// Visible participants in the room when it happened.
    pub num_participants: i64,
    /// Unix seconds: when it happened.
    pub created_at: i64,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// Claims up to `limit` due events for one delivery, in order: an event is due when its time
/// has come and no earlier event of its session for the same URL waits (after a failed
/// attempt, or claimed by another request). Claimed events are not due again until
/// `lease_until_ms`, so two requests delivering at once do not send one event twice. Returned
/// in `id` order. Without `customer_webhooks` (plugNmeet's webhooks switched off) only BBB's
/// callbacks are claimed; plugNmeet's events wait until they are switched on again.
pub async fn claim_due(
    store: &impl Store,
    now_ms: i64,
    lease_until_ms: i64,
    limit: u32,
    customer_webhooks: bool,
) -> Result<Vec<QueuedEvent>, StoreError> {
    let rows = store
        .execute(
            &format!(
                "UPDATE webhook_outbox SET next_attempt_at = ?1 WHERE id IN ( \
                 SELECT o.id FROM webhook_outbox o WHERE o.next_attempt_at <= ?2 \
                 AND (?3 OR o.event LIKE 'bbb\\_%' ESCAPE '\\') \
                 AND NOT EXISTS (SELECT 1 FROM webhook_outbox p WHERE p.room_sid = o.room_sid \
                 AND p.url = o.url AND p.id < o.id AND p.next_attempt_at > ?2) \
                 ORDER BY o.id LIMIT {limit}) \
                 RETURNING id, room_sid, url, event, detail, num_participants, created_at, \
                 attempts"
            ),
            &[
                lease_until_ms.into(),
                now_ms.into(),
                i64::from(customer_webhooks).into(),
            ],
        )
        .await?;
    let mut events = rows
        .rows
        .iter()
        .map(|r| {
            let col = Columns(r);
            Ok(QueuedEvent {
                id: col.int(0)?,
                room_sid: col.text(1)?,
                url: col.text(2)?,
                event: col.text(3)?,
                detail: col.text(4)?,
                num_participants: col.int(5)?,
                created_at: col.int(6)?,
                attempts: col.int(7)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    events.sort_unstable_by_key(|e| e.id);
    Ok(events)
}

/// Removes events that were delivered or given up on.
pub async fn forget(store: &impl Store, ids: &[i64]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let list = json_list(ids)?;
    store
        .execute(
            "DELETE FROM webhook_outbox WHERE id IN (SELECT value FROM json_each(?))",
            &[list],
        )
        .await?;
    Ok(())
}

/// Drops every event queued for each (session, URL) in `queues`; returns how many.
pub async fn forget_queues(store: &impl Store, queues: &[(&str, &str)]) -> Result<u64, StoreError> {
    if queues.is_empty() {
        return Ok(0);
    }
    let list = json_list(queues)?;
    let rows = store
        .execute(
            "DELETE FROM webhook_outbox WHERE EXISTS (SELECT 1 FROM json_each(?) q \
             WHERE json_extract(q.value, '$[0]') = webhook_outbox.room_sid \
             AND json_extract(q.value, '$[1]') = webhook_outbox.url) RETURNING id",
            &[list],
        )
        .await?;
    Ok(u64::try_from(rows.rows.len()).unwrap_or(u64::MAX))
}

/// A queue whose head failed: it waits, whole, until its next attempt.
#[derive(Debug, Clone, Serialize)]
pub struct Postponed<'a> {
    /// The session.
    pub room_sid: &'a str,
    /// The URL.
    pub url: &'a str,
    /// The event that failed.
    pub id: i64,
    /// Its failed attempts, this one counted.
    pub attempts: i64,
    /// Unix ms: when the queue is due again.
    pub next_attempt_ms: i64,
}

/// Counts each failed event's attempt and makes its whole queue due again at its next
/// attempt: the events behind it are not due before it (so no claim scans them), and the
/// triggers give events queued later the same wait.
pub async fn postpone(store: &impl Store, queues: &[Postponed<'_>]) -> Result<(), StoreError> {
    if queues.is_empty() {
        return Ok(());
    }
    let list = json_list(queues)?;
    store
        .execute(
            "WITH p AS (SELECT json_extract(value, '$.room_sid') AS room_sid, \
             json_extract(value, '$.url') AS url, json_extract(value, '$.id') AS id, \
             json_extract(value, '$.attempts') AS attempts, \
             json_extract(value, '$.next_attempt_ms') AS next FROM json_each(?)) \
             UPDATE webhook_outbox SET \
             next_attempt_at = (SELECT next FROM p WHERE p.room_sid = webhook_outbox.room_sid \
             AND p.url = webhook_outbox.url), \
             attempts = COALESCE((SELECT attempts FROM p WHERE p.id = webhook_outbox.id), \
             attempts) \
             WHERE EXISTS (SELECT 1 FROM p WHERE p.room_sid = webhook_outbox.room_sid \
             AND p.url = webhook_outbox.url)",
            &[list],
        )
        .await?;
    Ok(())
}

/// Makes claimed events this delivery did not attempt due again at once.
pub async fn release(store: &impl Store, ids: &[i64]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let list = json_list(ids)?;
    store
        .execute(
            "UPDATE webhook_outbox SET next_attempt_at = 0 \
             WHERE id IN (SELECT value FROM json_each(?))",
            &[list],
        )
        .await?;
    Ok(())
}
