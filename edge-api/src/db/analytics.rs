//! The SQL of plugNmeet's analytics files (`migrations/0020_session_analytics.sql`): each ended
//! session's attendance, written by the schema when the session ends, and what its users
//! published, noted as LiveKit reports it.

use super::webhooks::TrackEvent;
use super::{count_where, listing_filter, text_opt, Columns, ListingQuery};
use crate::platform::{Rows, Store, StoreError};

/// One analytics file as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsFile {
    /// The file's id (plugNmeet's `file_id`).
    pub file_id: String,
    /// The room whose session it describes.
    pub room_id: String,
    /// That session.
    pub room_sid: String,
    /// Its size in bytes.
    pub bytes: i64,
    /// Unix seconds: when it was written (the session's end).
    pub created_at: i64,
}

/// The total the filter matches, and its page (two statements).
pub async fn analytics_page(
    store: &impl Store,
    q: &ListingQuery<'_>,
) -> Result<(i64, Vec<AnalyticsFile>), StoreError> {
    let (filter, params) = listing_filter("1 = 1", q);
    let total = count_where(store, "session_analytics", &filter, &params).await?;
    let order = if q.descending { "DESC" } else { "ASC" };
    // LIMIT and OFFSET are integers written into the statement, as in `past_rooms`.
    let (limit, from) = (q.limit, q.from);
    let sql = format!(
        "SELECT {FILE_COLUMNS} FROM session_analytics \
         WHERE {filter} ORDER BY created_at {order}, file_id {order} LIMIT {limit} OFFSET {from}"
    );
    Ok((total, files(store.execute(&sql, &params).await?)?))
}

const FILE_COLUMNS: &str = "file_id, room_id, room_sid, bytes, created_at";

fn files(rows: Rows) -> Result<Vec<AnalyticsFile>, StoreError> {
    rows.rows
        .iter()
        .map(|row| {
            let col = Columns(row);
            Ok(AnalyticsFile {
                file_id: col.text(0)?,
                room_id: col.text(1)?,
                room_sid: col.text(2)?,
                bytes: col.int(3)?,
                created_at: col.int(4)?,
            })
        })
        .collect()
}

/// Analytics file `file_id`, if it exists.
pub async fn analytics_file(
    store: &impl Store,
    file_id: &str,
) -> Result<Option<AnalyticsFile>, StoreError> {
    let rows = store
        .execute(
            &format!("SELECT {FILE_COLUMNS} FROM session_analytics WHERE file_id = ?"),
            &[file_id.into()],
        )
        .await?;
    Ok(files(rows)?.pop())
}

/// The content of analytics file `file_id`, if it exists.
pub async fn analytics_body(
    store: &impl Store,
    file_id: &str,
) -> Result<Option<String>, StoreError> {
    let rows = store
        .execute(
            "SELECT body FROM session_analytics WHERE file_id = ?",
            &[file_id.into()],
        )
        .await?;
    Ok(rows.rows.first().and_then(|row| text_opt(row.first())))
}

/// Deletes analytics file `file_id`; whether it existed.
pub async fn delete_analytics(store: &impl Store, file_id: &str) -> Result<bool, StoreError> {
    let rows = store
        .execute(
            "DELETE FROM session_analytics WHERE file_id = ? RETURNING 1",
            &[file_id.into()],
        )
        .await?;
    Ok(!rows.rows.is_empty())
}

/// Notes `track` for the analytics file of its session: a visible user's microphone, camera
/// or screen share started or ended. Only for a session with analytics, its first 2,000, and
/// each track's start and end once. Returns whether it was noted.
pub async fn note_track_event(
    store: &impl Store,
    track: &TrackEvent<'_>,
) -> Result<bool, StoreError> {
    let rows = store
        .execute(
            "INSERT OR IGNORE INTO session_track_events \
             (room_sid, track_sid, identity, name, status, at_ms) \
             SELECT r.sid, json_extract(?2, '$.track.sid'), json_extract(?2, '$.identity'), k.name, \
             CASE ?1 WHEN 'track_published' THEN 'ANALYTICS_STATUS_STARTED' \
              ELSE 'ANALYTICS_STATUS_ENDED' END, ?3 * 1000 \
             FROM rooms r JOIN room_media m ON m.room_sid = r.sid AND m.livekit_sid = ?4, \
             (SELECT CASE json_extract(?2, '$.track.source') \
              WHEN 'MICROPHONE' THEN 'mic_status' WHEN 2 THEN 'mic_status' \
              WHEN 'CAMERA' THEN 'webcam_status' WHEN 1 THEN 'webcam_status' \
              WHEN 'SCREEN_SHARE' THEN 'screen_share_status' WHEN 3 THEN 'screen_share_status' \
              WHEN 'SCREEN_SHARE_AUDIO' THEN 'screen_share_status' \
              WHEN 4 THEN 'screen_share_status' END AS name) k \
             WHERE r.room_id = ?5 AND r.region = ?6 AND r.is_running = 1 \
             AND k.name IS NOT NULL AND json_extract(?2, '$.track.sid') IS NOT NULL \
             AND json_extract(?2, '$.hidden') = 0 \
             AND COALESCE(json_extract(CASE WHEN json_valid(r.metadata) THEN r.metadata END, \
              '$.room_features.enable_analytics'), 1) \
             AND (SELECT COUNT(*) FROM session_track_events t WHERE t.room_sid = r.sid) < 2000 \
             RETURNING 1",
            &track.params(),
        )
        .await?;
    Ok(!rows.rows.is_empty())
}
