//! The SQL of the BigBlueButton-compatible API (`migrations/0018_bbb_meetings.sql`): what a BBB
//! `create` said about a session that its room does not hold (the meeting id as written, the
//! passwords, the `meta_*` parameters).

use super::{int_opt, json_list, text_opt, Columns};
use crate::platform::{SqlValue, Store, StoreError};

/// What BBB's `create` stored for a session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BbbMeeting {
    /// The meeting id as the BBB caller wrote it.
    pub meeting_id: String,
    /// The attendee password (`None` once the session ended).
    pub attendee_pw: Option<String>,
    /// The moderator password (`None` once the session ended).
    pub moderator_pw: Option<String>,
    /// The `meta_*` parameters, without the prefix, as a JSON object.
    pub meta: String,
}

fn meeting(row: &[SqlValue], first: usize) -> Option<BbbMeeting> {
    Some(BbbMeeting {
        meeting_id: text_opt(row.get(first))?,
        attendee_pw: text_opt(row.get(first + 1)),
        moderator_pw: text_opt(row.get(first + 2)),
        meta: text_opt(row.get(first + 3)).unwrap_or_else(|| "{}".into()),
    })
}

const MEETING_COLUMNS: &str = "b.meeting_id, b.attendee_pw, b.moderator_pw, b.meta";

/// Keeps `meeting` for session `room_sid` while it runs, unless the session has one already,
/// and answers the one kept: a repeated `create` gets the first one's passwords. `None` when
/// the session ended meanwhile (so no password outlives it). One statement.
pub async fn keep_meeting(
    store: &impl Store,
    room_sid: &str,
    meeting: &BbbMeeting,
) -> Result<Option<BbbMeeting>, StoreError> {
    let optional = |v: &Option<String>| v.as_deref().map_or(SqlValue::Null, SqlValue::from);
    let rows = store
        .execute(
            "INSERT INTO bbb_meetings AS b (room_sid, meeting_id, attendee_pw, moderator_pw, meta) \
             SELECT ?1, ?2, ?3, ?4, ?5 \
             WHERE EXISTS (SELECT 1 FROM rooms WHERE sid = ?1 AND is_running = 1) \
             ON CONFLICT (room_sid) DO UPDATE SET meeting_id = b.meeting_id \
             RETURNING meeting_id, attendee_pw, moderator_pw, meta",
            &[
                room_sid.into(),
                meeting.meeting_id.as_str().into(),
                optional(&meeting.attendee_pw),
                optional(&meeting.moderator_pw),
                meeting.meta.as_str().into(),
            ],
        )
        .await?;
    Ok(rows.rows.first().and_then(|row| self::meeting(row, 0)))
}

/// Keeps BBB guest policy `policy` (`ALWAYS_ACCEPT`, `ASK_MODERATOR`, `ALWAYS_ACCEPT_AUTH` or
/// `ALWAYS_DENY`) for session `room_sid` while it runs, unless it has one already.
pub async fn keep_guest_policy(
    store: &impl Store,
    room_sid: &str,
    policy: &str,
) -> Result<(), StoreError> {
    store
        .execute(
            "INSERT OR IGNORE INTO bbb_guest_policies (room_sid, policy) SELECT ?1, ?2 \
             WHERE EXISTS (SELECT 1 FROM rooms WHERE sid = ?1 AND is_running = 1)",
            &[room_sid.into(), policy.into()],
        )
        .await?;
    Ok(())
}

/// The running session of room `room_id` as a BBB `join` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTarget {
    /// Unix seconds: when the session was created (BBB's `createTime` is it in ms).
    pub created_at: i64,
    /// What BBB's `create` stored, `None` for a session created with plugNmeet's API.
    pub meeting: Option<BbbMeeting>,
    /// The guest policy BBB's `create` set, `None` for a session created with plugNmeet's
    /// API.
    pub guest_policy: Option<String>,
}

/// The running session of room `room_id`, if any, with what BBB's `create` stored. One
/// statement.
pub async fn running_session(
    store: &impl Store,
    room_id: &str,
) -> Result<Option<JoinTarget>, StoreError> {
    let sql = format!(
        "SELECT r.created_at, {MEETING_COLUMNS}, g.policy FROM rooms r \
         LEFT JOIN bbb_meetings b ON b.room_sid = r.sid \
         LEFT JOIN bbb_guest_policies g ON g.room_sid = r.sid \
         WHERE r.room_id = ? AND r.is_running = 1"
    );
    let rows = store.execute(&sql, &[room_id.into()]).await?;
    rows.rows
        .first()
        .map(|row| {
            Ok(JoinTarget {
                created_at: Columns(row).int(0)?,
                meeting: meeting(row, 1),
                guest_policy: text_opt(row.get(5)),
            })
        })
        .transpose()
}

/// A session as BBB's listings describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// The session id.
    pub sid: String,
    /// Its title (empty once its past room was deleted).
    pub room_title: String,
    /// Participants who joined it.
    pub joined_participants: i64,
    /// Unix seconds, when it ended.
    pub ended_at: Option<i64>,
    /// What BBB's `create` stored, if it was created through it.
    pub meeting: Option<BbbMeeting>,
}

/// Sessions `sids` (any the edge still knows, as a room or a BBB meeting), in one statement.
pub async fn sessions(
    store: &impl Store,
    sids: &[&str],
) -> Result<Vec<SessionSummary>, StoreError> {
    if sids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT s.value, r.room_title, r.joined_participants, r.ended_at, {MEETING_COLUMNS} \
         FROM json_each(?) s LEFT JOIN rooms r ON r.sid = s.value \
         LEFT JOIN bbb_meetings b ON b.room_sid = s.value"
    );
    let rows = store.execute(&sql, &[json_list(sids)?]).await?;
    rows.rows
        .iter()
        .map(|row| {
            let col = Columns(row);
            Ok(SessionSummary {
                sid: col.text(0)?,
                room_title: text_opt(row.get(1)).unwrap_or_default(),
                joined_participants: int_opt(row.get(2)).unwrap_or(0),
                ended_at: int_opt(row.get(3)),
                meeting: meeting(row, 4),
            })
        })
        .collect()
}
