//! The edge's tables and every query it runs, in SQLite's dialect (schema: `migrations/`).
//! Only this module writes SQL.

use crate::platform::{Rows, SqlValue, Store, StoreError};
use crate::registry::{Capacity, Heartbeat, Load, RegionStatus};

/// The schema (every migration, in order; each may run again), for hosts and tests that set up
/// a database.
pub const SCHEMA: &str = concat!(
    include_str!("../migrations/0001_rooms.sql"),
    include_str!("../migrations/0002_regions.sql"),
    include_str!("../migrations/0003_entries.sql"),
    include_str!("../migrations/0004_livekit_rooms.sql"),
    include_str!("../migrations/0005_region_moves.sql"),
    include_str!("../migrations/0006_livekit_deletions.sql"),
    include_str!("../migrations/0007_past_room_retention.sql"),
    include_str!("../migrations/0008_applied_events_per_region.sql"),
    include_str!("../migrations/0009_waiting_room.sql"),
    include_str!("../migrations/0010_forget_room_keys.sql"),
    include_str!("../migrations/0011_recordings.sql"),
    include_str!("../migrations/0012_auto_recording.sql"),
    include_str!("../migrations/0013_unannounced_sessions.sql"),
    include_str!("../migrations/0014_customer_webhooks.sql"),
    include_str!("../migrations/0015_recording_metadata.sql"),
    include_str!("../migrations/0016_blocked_users.sql"),
    include_str!("../migrations/0017_user_locks.sql"),
    include_str!("../migrations/0018_bbb_meetings.sql"),
    include_str!("../migrations/0019_bbb_callbacks.sql"),
    include_str!("../migrations/0020_session_analytics.sql"),
    include_str!("../migrations/0021_bbb_guest_policy.sql")
);

/// Room sessions still running (created or active).
pub const STATUS_CREATED: &str = "created";
/// Ended sessions (past rooms).
pub const STATUS_ENDED: &str = "ended";

/// A session's LiveKit room name, as an SQL expression over `rooms` (named by the alias given,
/// e.g. `"r."`, where other tables are joined): `<room_id>.<sid>`, or the room id for sessions
/// created before per-session names (`migrations/0004_livekit_rooms.sql`).
macro_rules! livekit_room_sql {
    () => {
        livekit_room_sql!("")
    };
    ($rooms:literal) => {
        concat!(
            "(CASE WHEN ",
            $rooms,
            "id >= (SELECT first_session_id FROM livekit_naming) THEN ",
            $rooms,
            "room_id || '.' || ",
            $rooms,
            "sid ELSE ",
            $rooms,
            "room_id END)"
        )
    };
}

pub mod analytics;
pub mod bbb;
pub mod locks;
pub mod recordings;
pub mod webhooks;

const ROOM_COLUMNS: &str = concat!(
    "id, room_id, sid, room_title, webhook_url, metadata, \
     max_participants, empty_timeout, region_hint, region, is_running, status, \
     joined_participants, created_at, started_at, ended_at, ",
    livekit_room_sql!(),
    ", (SELECT CASE WHEN left_at_ms IS NULL THEN received_at_ms ELSE 0 END \
     FROM region_status WHERE region_id = region)"
);

/// The room id a LiveKit room name belongs to (the index every lookup by name goes through).
fn room_id_of(livekit_room: &str) -> &str {
    livekit_room.split('.').next().unwrap_or(livekit_room)
}

/// One room session.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomRow {
    /// Table id (recorders and webhooks key on it later).
    pub id: i64,
    /// The customer's room id.
    pub room_id: String,
    /// This session's id (a UUID).
    pub sid: String,
    /// Title from the metadata.
    pub room_title: String,
    /// Per-meeting webhook URL ('' when none).
    pub webhook_url: String,
    /// RoomMetadata as a JSON string.
    pub metadata: String,
    /// Participant limit (0 = none).
    pub max_participants: i64,
    /// Seconds an empty room is kept.
    pub empty_timeout: i64,
    /// The region asked for at create.
    pub region_hint: Option<String>,
    /// The region the room is pinned to (set on first join).
    pub region: Option<String>,
    /// Whether the session is running.
    pub is_running: bool,
    /// `created`, `active` or `ended`.
    pub status: String,
    /// Participants who joined so far.
    pub joined_participants: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, when media started.
    pub started_at: Option<i64>,
    /// Unix seconds, when the session ended.
    pub ended_at: Option<i64>,
    /// Its LiveKit room's name: `<room_id>.<sid>`, so that each session has a LiveKit room of
    /// its own (the room id for sessions from before per-session names).
    pub livekit_room: String,
    /// When the edge last heard from the pinned region's sidecar (Unix ms, the edge's clock):
    /// 0 when it drained and left, `None` when the registry has no entry for it (no region
    /// pinned, or no sidecars).
    pub region_heard_ms: Option<i64>,
}

/// A room session about to be stored.
#[derive(Debug, Clone)]
pub struct NewRoom<'a> {
    /// The customer's room id.
    pub room_id: &'a str,
    /// The new session id.
    pub sid: &'a str,
    /// Title.
    pub room_title: &'a str,
    /// Per-meeting webhook URL.
    pub webhook_url: &'a str,
    /// RoomMetadata JSON.
    pub metadata: &'a str,
    /// Participant limit.
    pub max_participants: i64,
    /// Empty timeout in seconds.
    pub empty_timeout: i64,
    /// Requested region.
    pub region_hint: Option<&'a str>,
    /// Unix seconds.
    pub created_at: i64,
}

/// Stores a new running session unless `room_id` already has one. Returns the running session
/// and whether it was created by this call (concurrent creates get the same session).
pub async fn create_room(
    store: &impl Store,
    room: &NewRoom<'_>,
) -> Result<(RoomRow, bool), StoreError> {
    let sql = format!(
        "INSERT INTO rooms (room_id, sid, room_title, webhook_url, metadata, max_participants, \
         empty_timeout, region_hint, is_running, status, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, '{STATUS_CREATED}', ?) \
         ON CONFLICT DO NOTHING RETURNING {ROOM_COLUMNS}"
    );
    let params = [
        room.room_id.into(),
        room.sid.into(),
        room.room_title.into(),
        room.webhook_url.into(),
        room.metadata.into(),
        room.max_participants.into(),
        room.empty_timeout.into(),
        room.region_hint.into(),
        room.created_at.into(),
    ];
    // The insert conflicts with a running session; that session may end before it is read
    // (an endRoom in between), and then the insert is tried again.
    for _ in 0..CREATE_ATTEMPTS {
        if let Some(row) = rooms(store.execute(&sql, &params).await?)?.pop() {
            return Ok((row, true));
        }
        if let Some(row) = running_room(store, room.room_id).await? {
            return Ok((row, false));
        }
    }
    Err(StoreError(
        "room insert conflicted but no running session exists".into(),
    ))
}

/// Inserts [`create_room`] tries while the session it conflicts with keeps ending before it is
/// read.
const CREATE_ATTEMPTS: usize = 3;

/// The running session of `room_id`.
pub async fn running_room(
    store: &impl Store,
    room_id: &str,
) -> Result<Option<RoomRow>, StoreError> {
    let sql = format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE room_id = ? AND is_running = 1");
    Ok(rooms(store.execute(&sql, &[room_id.into()]).await?)?.pop())
}

/// Whether session `sid` is still running.
pub async fn session_is_running(store: &impl Store, sid: &str) -> Result<bool, StoreError> {
    let rows = store
        .execute(
            "SELECT 1 FROM rooms WHERE sid = ? AND is_running = 1",
            &[sid.into()],
        )
        .await?;
    Ok(!rows.rows.is_empty())
}

/// Whether session `sid` still lets user `user_id` in: it runs and has not blocked them (the
/// last check before a LiveKit token goes out, so an end or a block made meanwhile holds).
pub async fn session_admits(
    store: &impl Store,
    sid: &str,
    user_id: &str,
) -> Result<Admission, StoreError> {
    let rows = store
        .execute(
            "SELECT (SELECT is_running FROM rooms WHERE sid = ?1), \
             (SELECT is_blocked FROM room_users WHERE room_sid = ?1 AND user_id = ?2)",
            &[sid.into(), user_id.into()],
        )
        .await?;
    let row = rows.rows.first();
    let flag = |i: usize| row.and_then(|r| int_opt(r.get(i))) == Some(1);
    Ok(if !flag(0) {
        Admission::Ended
    } else if flag(1) {
        Admission::Blocked
    } else {
        Admission::Admitted
    })
}

/// What [`session_admits`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The session runs and the user is not blocked.
    Admitted,
    /// The session is over (or unknown).
    Ended,
    /// The session has blocked the user.
    Blocked,
}

/// The most recent session of `room_id`, running or not.
pub async fn latest_room(store: &impl Store, room_id: &str) -> Result<Option<RoomRow>, StoreError> {
    let sql =
        format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE room_id = ? ORDER BY id DESC LIMIT 1");
    Ok(rooms(store.execute(&sql, &[room_id.into()]).await?)?.pop())
}

/// The running sessions, oldest first: at most `limit`, and each only while the metadata of
/// the ones before it comes to at most `metadata_budget` bytes (so the rows read pass the budget
/// by one session's metadata at most, and a caller can tell the budget was reached).
pub async fn running_rooms(
    store: &impl Store,
    limit: i64,
    metadata_budget: i64,
) -> Result<Vec<RoomRow>, StoreError> {
    // The budget is applied by the statement, so one call never reads more than it may list:
    // the running total of metadata bytes before each room must be within it.
    let sql = format!(
        "SELECT {ROOM_COLUMNS} FROM (SELECT *, \
         SUM(length(CAST(metadata AS BLOB))) OVER (ORDER BY id) \
         - length(CAST(metadata AS BLOB)) AS bytes_before \
         FROM rooms WHERE is_running = 1) \
         WHERE bytes_before <= ? ORDER BY id LIMIT ?"
    );
    rooms(
        store
            .execute(&sql, &[metadata_budget.into(), limit.into()])
            .await?,
    )
}

/// Ends a running session. Returns false when it had already ended.
pub async fn end_room(store: &impl Store, sid: &str, now: i64) -> Result<bool, StoreError> {
    let sql = format!(
        "UPDATE rooms SET is_running = 0, status = '{STATUS_ENDED}', ended_at = ? \
         WHERE sid = ? AND is_running = 1 RETURNING id"
    );
    Ok(!store
        .execute(&sql, &[now.into(), sid.into()])
        .await?
        .rows
        .is_empty())
}

/// A region that takes no new room as a statement sees it: draining, or drained and left.
/// Checked in the statement that pins, so a pin cannot land after a drain read the region's
/// sessions and found none.
const REGION_CLOSED_SQL: &str = "EXISTS (SELECT 1 FROM region_status \
     WHERE region_id = ? AND (draining = 1 OR left_at_ms IS NOT NULL))";

/// Forgets what region `region_id`'s sidecar last reported (the region has none now).
pub async fn forget_region_status(store: &impl Store, region_id: &str) -> Result<(), StoreError> {
    store
        .execute(
            "DELETE FROM region_status WHERE region_id = ?",
            &[region_id.into()],
        )
        .await?;
    Ok(())
}

/// Pins a running session to `region` unless it is pinned already, has ended or `region` closed
/// (see [`REGION_CLOSED_SQL`]); returns the session's region after the attempt.
pub async fn pin_region(
    store: &impl Store,
    sid: &str,
    region: &str,
) -> Result<Option<String>, StoreError> {
    let sql = format!(
        "UPDATE rooms SET region = ? \
         WHERE sid = ? AND region IS NULL AND is_running = 1 AND NOT {REGION_CLOSED_SQL}"
    );
    store
        .execute(&sql, &[region.into(), sid.into(), region.into()])
        .await?;
    session_region(store, sid).await
}

/// Moves a running session from region `from`, which is gone, to `to`, unless it no longer
/// runs in `from` (another join moved it) or `to` closed; everyone reported in `from` counts
/// as gone from `now` (`migrations/0005_region_moves.sql`). Returns the session's region after
/// the attempt.
pub async fn move_region(
    store: &impl Store,
    sid: &str,
    from: &str,
    to: &str,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let sql = format!(
        "INSERT INTO region_moves (room_sid, from_region, to_region, moved_at) \
         SELECT sid, region, ?, ? FROM rooms \
         WHERE sid = ? AND region = ? AND is_running = 1 AND NOT {REGION_CLOSED_SQL}"
    );
    store
        .execute(
            &sql,
            &[to.into(), now.into(), sid.into(), from.into(), to.into()],
        )
        .await?;
    session_region(store, sid).await
}

/// The session with this id, running or past.
pub async fn room_by_sid(store: &impl Store, sid: &str) -> Result<Option<RoomRow>, StoreError> {
    let sql = format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE sid = ?");
    Ok(rooms(store.execute(&sql, &[sid.into()]).await?)?
        .into_iter()
        .next())
}

/// The sessions with these ids, running or past, in one statement (in no particular order).
pub async fn rooms_by_sids(store: &impl Store, sids: &[&str]) -> Result<Vec<RoomRow>, StoreError> {
    if sids.is_empty() {
        return Ok(Vec::new());
    }
    let sql =
        format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE sid IN (SELECT value FROM json_each(?))");
    rooms(store.execute(&sql, &[json_list(sids)?]).await?)
}

/// Which users of a session [`users_among`] picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Among {
    /// Users seen by others (not hidden).
    VisibleUsers,
    /// Moderators (as their latest token says), hidden ones too.
    Moderators,
}

/// Which of `identities` are users of session `room_sid` (getJoinToken issued them a token) of
/// the kind `among` names, in one statement.
pub async fn users_among(
    store: &impl Store,
    room_sid: &str,
    identities: &[&str],
    among: Among,
) -> Result<Vec<String>, StoreError> {
    if identities.is_empty() {
        return Ok(Vec::new());
    }
    let kind = match among {
        Among::VisibleUsers => "is_hidden = 0",
        Among::Moderators => "is_admin = 1",
    };
    let sql = format!(
        "SELECT user_id FROM room_users WHERE room_sid = ? AND {kind} \
         AND user_id IN (SELECT value FROM json_each(?))"
    );
    let rows = store
        .execute(&sql, &[room_sid.into(), json_list(identities)?])
        .await?;
    rows.rows.iter().map(|r| Columns(r).text(0)).collect()
}

/// A list as one JSON text parameter, for `json_each(?)`: one statement whatever its length
/// (D1 binds at most 100 parameters).
fn json_list(items: &[impl serde::Serialize]) -> Result<SqlValue, StoreError> {
    serde_json::to_string(items)
        .map(SqlValue::Text)
        .map_err(|e| StoreError(e.to_string()))
}

/// The region session `sid` is pinned to, read now (running or ended).
pub async fn session_region(store: &impl Store, sid: &str) -> Result<Option<String>, StoreError> {
    let rows = store
        .execute("SELECT region FROM rooms WHERE sid = ?", &[sid.into()])
        .await?;
    Ok(rows.rows.first().and_then(|r| text_opt(r.first())))
}

/// Which rows a listing (`fetchPastRooms`, `recording/fetch`, `analytics/fetch`,
/// `artifact/fetch`) returns.
#[derive(Debug, Clone, Copy)]
pub struct ListingQuery<'a> {
    /// Only these room ids (empty = all).
    pub room_ids: &'a [String],
    /// Only this session's rows (listings of tables with a `room_sid` column; `fetchPastRooms`
    /// takes none).
    pub room_sid: Option<&'a str>,
    /// Rows to skip.
    pub from: u32,
    /// Rows to return.
    pub limit: u32,
    /// Newest first.
    pub descending: bool,
}

/// Deletes up to `limit` sessions that ended before `ended_before` (Unix seconds), oldest
/// first, with everything kept about them (`migrations/0007_past_room_retention.sql`). Returns
/// how many went.
pub async fn forget_past_rooms(
    store: &impl Store,
    ended_before: i64,
    limit: i64,
) -> Result<usize, StoreError> {
    let rows = store
        .execute(
            "DELETE FROM rooms WHERE id IN (SELECT id FROM rooms \
             WHERE is_running = 0 AND ended_at < ? ORDER BY ended_at LIMIT ?) RETURNING id",
            &[ended_before.into(), limit.into()],
        )
        .await?;
    Ok(rows.rows.len())
}

/// An ended session as `fetchPastRooms` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct PastRoom {
    /// The session.
    pub room: RoomRow,
    /// Its analytics file, if it has one.
    pub analytics_file_id: Option<String>,
}

/// Ended sessions matching the query, with their analytics files, and how many match in all.
pub async fn past_rooms(
    store: &impl Store,
    q: &ListingQuery<'_>,
) -> Result<(i64, Vec<PastRoom>), StoreError> {
    let (filter, params) = listing_filter(
        "is_running = 0",
        &ListingQuery {
            room_sid: None,
            ..*q
        },
    );
    let total = count_where(store, "rooms", &filter, &params).await?;
    let order = if q.descending { "DESC" } else { "ASC" };
    // LIMIT and OFFSET are written into the statement (they are integers, so nothing can be
    // injected) so that the room ids alone use bound parameters: D1 takes at most 100 per
    // statement, and a filter may name 100 rooms.
    let (limit, from) = (q.limit, q.from);
    let sql = format!(
        "SELECT {ROOM_COLUMNS}, \
         (SELECT a.file_id FROM session_analytics a WHERE a.room_sid = rooms.sid) \
         FROM rooms WHERE {filter} ORDER BY id {order} LIMIT {limit} OFFSET {from}"
    );
    let rows = store.execute(&sql, &params).await?;
    let files: Vec<Option<String>> = rows.rows.iter().map(|r| text_opt(r.get(18))).collect();
    let past = rooms(rows)?
        .into_iter()
        .zip(files)
        .map(|(room, analytics_file_id)| PastRoom {
            room,
            analytics_file_id,
        })
        .collect();
    Ok((total, past))
}

/// A user a join token was issued for.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomUser {
    /// The session.
    pub room_sid: String,
    /// The user's id.
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Moderator.
    pub is_admin: bool,
    /// Hidden.
    pub is_hidden: bool,
    /// UserMetadata JSON (goes into the LiveKit token).
    pub metadata: String,
    /// Blocked from joining again.
    pub is_blocked: bool,
    /// Unix seconds: when getJoinToken issued the user's latest join token in this session
    /// (the `nbf` it gave that token; stored as `updated_at`, which nothing else writes).
    pub token_issued_at: i64,
}

/// Records (or refreshes) a user of a session; a blocked user stays blocked. For a user who is
/// not a moderator (`room_locks`), the `lock_settings` in `user.metadata` are the backend's own
/// for them, which this statement lays over the room's default locks as they are now, and the
/// locks moderators set for them in this session over both: read in the statement that writes
/// them, so a lock for everyone set meanwhile cannot be missed.
pub async fn upsert_user(
    store: &impl Store,
    user: &RoomUser,
    room_locks: bool,
) -> Result<UserRecorded, StoreError> {
    // The blocked check and the write are one statement, so a block placed between them cannot
    // be overwritten: a blocked row is left as it is and returns nothing.
    let rows = store
        .execute(
            "INSERT INTO room_users (room_sid, user_id, name, is_admin, is_hidden, metadata, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?8 THEN json_patch(?6, \
               json_object('lock_settings', json_patch(COALESCE((SELECT \
                 json_extract(metadata, '$.default_lock_settings') FROM rooms WHERE sid = ?1), '{}'), \
                 COALESCE(json_extract(?6, '$.lock_settings'), '{}')))) ELSE ?6 END, ?7) \
             ON CONFLICT (room_sid, user_id) DO UPDATE SET name = excluded.name, \
             is_admin = excluded.is_admin, is_hidden = excluded.is_hidden, \
             metadata = COALESCE( \
               (SELECT json_patch(excluded.metadata, json_object('lock_settings', json(locks))) \
                FROM user_locks WHERE room_sid = excluded.room_sid \
                AND user_id = excluded.user_id), excluded.metadata), \
             updated_at = excluded.updated_at \
             WHERE room_users.is_blocked = 0 \
             RETURNING 1",
            &[
                user.room_sid.as_str().into(),
                user.user_id.as_str().into(),
                user.name.as_str().into(),
                user.is_admin.into(),
                user.is_hidden.into(),
                user.metadata.as_str().into(),
                user.token_issued_at.into(),
                room_locks.into(),
            ],
        )
        .await?;
    Ok(if rows.rows.is_empty() {
        UserRecorded::Blocked
    } else {
        UserRecorded::Recorded
    })
}

/// What [`upsert_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRecorded {
    /// The user was inserted or updated.
    Recorded,
    /// The user is blocked from this session; nothing was changed.
    Blocked,
}

/// A user of a session, if a token was issued for them.
pub async fn room_user(
    store: &impl Store,
    room_sid: &str,
    user_id: &str,
) -> Result<Option<RoomUser>, StoreError> {
    let rows = store
        .execute(
            "SELECT room_sid, user_id, name, is_admin, is_hidden, metadata, is_blocked, \
             updated_at FROM room_users WHERE room_sid = ? AND user_id = ?",
            &[room_sid.into(), user_id.into()],
        )
        .await?;
    rows.rows
        .first()
        .map(|r| {
            let col = Columns(r);
            Ok(RoomUser {
                room_sid: col.text(0)?,
                user_id: col.text(1)?,
                name: col.text(2)?,
                is_admin: col.int(3)? != 0,
                is_hidden: col.int(4)? != 0,
                metadata: col.text(5)?,
                is_blocked: col.int(6)? != 0,
                token_issued_at: col.int(7)?,
            })
        })
        .transpose()
}

/// Sets the waiting room's message in running session `sid`'s metadata
/// (`room_features.waiting_room_features.waiting_room_msg`); false when the session no longer
/// runs.
pub async fn set_waiting_room_message(
    store: &impl Store,
    sid: &str,
    message: &str,
) -> Result<bool, StoreError> {
    let rows = store
        .execute(
            "UPDATE rooms SET metadata = json_patch(metadata, json_object('room_features', \
             json_object('waiting_room_features', json_object('waiting_room_msg', ?)))) \
             WHERE sid = ? AND is_running = 1 RETURNING 1",
            &[message.into(), sid.into()],
        )
        .await?;
    Ok(!rows.rows.is_empty())
}

/// Notes that a user waiting to be let in asked again at `now`, if the session still runs (a
/// row for an ended one would never be cleared). A wait that was not seen for `fresh_secs`
/// begins anew (the user left and came back).
pub async fn note_waiting(
    store: &impl Store,
    room_sid: &str,
    user_id: &str,
    now: i64,
    fresh_secs: i64,
) -> Result<(), StoreError> {
    store
        .execute(
            "INSERT INTO waiting_users (room_sid, user_id, since, seen_at) \
             SELECT ?, ?, ?, ? WHERE EXISTS \
             (SELECT 1 FROM rooms WHERE sid = ?1 AND is_running = 1) \
             ON CONFLICT (room_sid, user_id) DO UPDATE SET \
             since = CASE WHEN waiting_users.seen_at < ? THEN excluded.since \
             ELSE waiting_users.since END, seen_at = excluded.seen_at",
            &[
                room_sid.into(),
                user_id.into(),
                now.into(),
                now.into(),
                now.saturating_sub(fresh_secs).into(),
            ],
        )
        .await?;
    Ok(())
}

/// A user waiting to be let in.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingUser {
    /// The user's id.
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Unix seconds: when the wait began.
    pub since: i64,
}

/// The users of a session waiting now (asked since `seen_since`, still marked to wait, not
/// turned away), longest waiting first, at most `limit`, and how many wait in all (one
/// statement: the count is a window over every match, taken before the limit).
pub async fn waiting_users(
    store: &impl Store,
    room_sid: &str,
    seen_since: i64,
    limit: i64,
) -> Result<(Vec<WaitingUser>, i64), StoreError> {
    let rows = store
        .execute(
            "SELECT w.user_id, u.name, w.since, COUNT(*) OVER () FROM waiting_users w \
             JOIN room_users u ON u.room_sid = w.room_sid AND u.user_id = w.user_id \
             WHERE w.room_sid = ? AND w.seen_at >= ? AND u.is_blocked = 0 \
             AND json_valid(u.metadata) AND json_extract(u.metadata, '$.wait_for_approval') = 1 \
             ORDER BY w.since, w.user_id LIMIT ?",
            &[room_sid.into(), seen_since.into(), limit.into()],
        )
        .await?;
    let total = match rows.rows.first() {
        Some(row) => Columns(row).int(3)?,
        None => 0,
    };
    let users = rows
        .rows
        .iter()
        .map(|r| {
            let col = Columns(r);
            Ok(WaitingUser {
                user_id: col.text(0)?,
                name: col.text(1)?,
                since: col.int(2)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((users, total))
}

/// Who a waiting-room decision is for.
#[derive(Debug, Clone, Copy)]
pub enum Waiting<'a> {
    /// One user marked to wait.
    User(&'a str),
    /// Everyone marked to wait who asked since these Unix seconds: the users a moderator's
    /// list shows, not everyone a token was once issued for.
    SeenSince(i64),
}

/// Lets waiting users in: clears `wait_for_approval` in their stored metadata (with a new
/// `metadata_id`), so their next session gets a LiveKit token. Returns the ids let in.
pub async fn approve_waiting(
    store: &impl Store,
    room_sid: &str,
    who: Waiting<'_>,
    metadata_id: &str,
) -> Result<Vec<String>, StoreError> {
    const SET: &str = "UPDATE room_users SET metadata = json_set(metadata, \
         '$.wait_for_approval', json('false'), '$.metadata_id', ?) \
         WHERE room_sid = ? AND is_blocked = 0 AND json_valid(metadata) \
         AND json_extract(metadata, '$.wait_for_approval') = 1";
    let rows = match who {
        Waiting::User(user_id) => {
            store
                .execute(
                    &format!("{SET} AND user_id = ? RETURNING user_id"),
                    &[metadata_id.into(), room_sid.into(), user_id.into()],
                )
                .await?
        }
        Waiting::SeenSince(seen_since) => {
            store
                .execute(
                    &format!(
                        "{SET} AND user_id IN (SELECT user_id FROM waiting_users \
                         WHERE room_sid = ?2 AND seen_at >= ?) RETURNING user_id"
                    ),
                    &[metadata_id.into(), room_sid.into(), seen_since.into()],
                )
                .await?
        }
    };
    rows.rows.iter().map(|r| Columns(r).text(0)).collect()
}

/// Turns a waiting user away: blocks them from this session (no session, no new join token).
/// Only a user marked to wait can be turned away here. Returns whether one was.
pub async fn reject_waiting(
    store: &impl Store,
    room_sid: &str,
    user_id: &str,
) -> Result<bool, StoreError> {
    let rows = store
        .execute(
            "UPDATE room_users SET is_blocked = 1 \
             WHERE room_sid = ? AND user_id = ? AND is_blocked = 0 AND json_valid(metadata) \
             AND json_extract(metadata, '$.wait_for_approval') = 1 RETURNING user_id",
            &[room_sid.into(), user_id.into()],
        )
        .await?;
    Ok(!rows.rows.is_empty())
}

/// Blocks user `user_id` from session `room_sid` (a moderator removed them for good): no
/// session, no renewal and no new join token for them, and a LiveKit join with a token they
/// still hold is undone (see [`participant_joined`] and [`blocked_presences`]). Returns whether
/// the session knows the user (getJoinToken recorded them, not hidden); blocking again changes
/// nothing and still returns true.
pub async fn block_user(
    store: &impl Store,
    room_sid: &str,
    user_id: &str,
) -> Result<bool, StoreError> {
    // `updated_at` stays: it is when getJoinToken issued the user's latest token (renewal
    // checks it), and nothing else writes it. A hidden user is not a moderator's to see.
    let rows = store
        .execute(
            "UPDATE room_users SET is_blocked = 1 WHERE room_sid = ? AND user_id = ? \
             AND is_hidden = 0 RETURNING user_id",
            &[room_sid.into(), user_id.into()],
        )
        .await?;
    Ok(!rows.rows.is_empty())
}

/// Raises (or lowers) visible, unblocked user `user_id`'s hand in session `room_sid`
/// (plugNmeet's `raised_hand` in their metadata, with a new `metadata_id`); their metadata as it
/// is now, or `None` when the session has no such user. One statement.
pub async fn set_raised_hand(
    store: &impl Store,
    room_sid: &str,
    user_id: &str,
    raised: bool,
    metadata_id: &str,
) -> Result<Option<String>, StoreError> {
    let rows = store
        .execute(
            "UPDATE room_users SET metadata = json_set(metadata, '$.raised_hand', json(?), \
             '$.metadata_id', ?) WHERE room_sid = ? AND user_id = ? AND is_hidden = 0 \
             AND is_blocked = 0 RETURNING metadata",
            &[
                if raised { "true" } else { "false" }.into(),
                metadata_id.into(),
                room_sid.into(),
                user_id.into(),
            ],
        )
        .await?;
    rows.rows.first().map(|r| Columns(r).text(0)).transpose()
}

/// Records that a user entered the room's session through the edge (where the edge does not
/// hear the region's LiveKit webhooks, this is how the session knows who joined): a visible
/// user's first entry counts in
/// `joined_participants`, by trigger, in this one statement.
pub async fn record_entry(
    store: &impl Store,
    room_sid: &str,
    user_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    store
        .execute(
            "UPDATE room_users SET joined_at = ? \
             WHERE room_sid = ? AND user_id = ? AND joined_at IS NULL",
            &[now.into(), room_sid.into(), user_id.into()],
        )
        .await?;
    Ok(())
}

/// How many sessions run pinned to `region_id`.
pub async fn running_sessions_in(store: &impl Store, region_id: &str) -> Result<i64, StoreError> {
    let rows = store
        .execute(
            "SELECT COUNT(*) FROM rooms WHERE is_running = 1 AND region = ?",
            &[region_id.into()],
        )
        .await?;
    Ok(first_int(&rows))
}

/// Stores a region's heartbeat unless a newer one is stored (heartbeats may arrive out of
/// order). `leaving` marks the region as left; any other heartbeat registers it again.
/// Returns whether it was stored.
pub async fn record_heartbeat(
    store: &impl Store,
    hb: &Heartbeat,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let left_at: Option<i64> = hb.leaving.then_some(now_ms);
    let rows = store
        .execute(
            "INSERT INTO region_status (region_id, sidecar_id, sent_at_ms, received_at_ms, \
             livekit_ok, draining, left_at_ms, rooms, participants, publishers, cpu_load, \
             max_rooms, max_participants, undelivered_events) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (region_id) DO UPDATE SET sidecar_id = excluded.sidecar_id, \
             sent_at_ms = excluded.sent_at_ms, received_at_ms = excluded.received_at_ms, \
             livekit_ok = excluded.livekit_ok, draining = excluded.draining, \
             left_at_ms = excluded.left_at_ms, rooms = excluded.rooms, \
             participants = excluded.participants, publishers = excluded.publishers, \
             cpu_load = excluded.cpu_load, max_rooms = excluded.max_rooms, \
             max_participants = excluded.max_participants, \
             undelivered_events = excluded.undelivered_events \
             WHERE excluded.sent_at_ms > region_status.sent_at_ms \
             RETURNING region_id",
            &[
                hb.region_id.as_str().into(),
                hb.sidecar_id.as_str().into(),
                // Kept no later than the edge's clock: a heartbeat stamped ahead (a sidecar
                // clock stepped back afterwards, or a forged one) must not make the honest
                // heartbeats after it look old and silence the region.
                hb.sent_at_ms.min(now_ms).into(),
                now_ms.into(),
                // The registry's "media usable": LiveKit answers and its webhooks are kept.
                (hb.livekit_ok && hb.events_ok).into(),
                hb.draining.into(),
                left_at.into(),
                hb.load.rooms.into(),
                hb.load.participants.into(),
                hb.load.publishers.into(),
                hb.load.cpu_load.map_or(SqlValue::Null, SqlValue::Real),
                hb.capacity.max_rooms.into(),
                hb.capacity.max_participants.into(),
                hb.undelivered_events.into(),
            ],
        )
        .await?;
    Ok(!rows.rows.is_empty())
}

/// Every region that ever heartbeated, with its last heartbeat.
pub async fn region_statuses(store: &impl Store) -> Result<Vec<RegionStatus>, StoreError> {
    let rows = store
        .execute(
            "SELECT region_id, sidecar_id, sent_at_ms, received_at_ms, livekit_ok, draining, \
             left_at_ms, rooms, participants, publishers, cpu_load, max_rooms, \
             max_participants, undelivered_events FROM region_status ORDER BY region_id",
            &[],
        )
        .await?;
    rows.rows
        .iter()
        .map(|r| {
            let col = Columns(r);
            Ok(RegionStatus {
                region_id: col.text(0)?,
                received_at_ms: col.int(3)?,
                left_at_ms: int_opt(r.get(6)),
                heartbeat: Heartbeat {
                    region_id: col.text(0)?,
                    sidecar_id: col.text(1)?,
                    sent_at_ms: col.int(2)?,
                    livekit_ok: col.int(4)? != 0,
                    events_ok: true,
                    draining: col.int(5)? != 0,
                    leaving: int_opt(r.get(6)).is_some(),
                    load: Load {
                        rooms: col.count(7)?,
                        participants: col.count(8)?,
                        publishers: col.count(9)?,
                        cpu_load: match r.get(10) {
                            Some(SqlValue::Real(f)) => Some(*f),
                            Some(SqlValue::Integer(i)) => Some(*i as f64),
                            _ => None,
                        },
                    },
                    capacity: Capacity {
                        max_rooms: col.count(11)?,
                        max_participants: col.count(12)?,
                    },
                    undelivered_events: col.count(13)?,
                },
            })
        })
        .collect()
}

/// Whether a webhook event was applied already.
pub async fn event_applied(
    store: &impl Store,
    region_id: &str,
    event_id: &str,
) -> Result<bool, StoreError> {
    // Per region: another region's sidecar naming the same id must not hide this one's event.
    let rows = store
        .execute(
            "SELECT 1 FROM applied_region_events WHERE region_id = ? AND event_id = ?",
            &[region_id.into(), event_id.into()],
        )
        .await?;
    Ok(!rows.rows.is_empty())
}

/// Remembers that a webhook event was applied (after applying it: every event's statement is
/// idempotent, so one applied twice after a crash here changes nothing).
pub async fn mark_event_applied(
    store: &impl Store,
    event_id: &str,
    region_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    store
        .execute(
            "INSERT INTO applied_region_events (region_id, event_id, applied_at) \
             VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            &[region_id.into(), event_id.into(), now.into()],
        )
        .await?;
    Ok(())
}

/// Forgets applied event ids older than `before` (Unix seconds); a sidecar re-sends within
/// minutes, never days.
pub async fn prune_applied_events(store: &impl Store, before: i64) -> Result<(), StoreError> {
    store
        .execute(
            "DELETE FROM applied_region_events WHERE applied_at < ?",
            &[before.into()],
        )
        .await?;
    Ok(())
}

/// Counts an attempt at deleting LiveKit room `livekit_room` in `region_id` at `now` and
/// schedules the next one, kept until [`forget_livekit_deletion`]: 30 s after the first attempt,
/// each later one twice as long, up to an hour. Returns the attempts so far.
pub async fn defer_livekit_deletion(
    store: &impl Store,
    region_id: &str,
    livekit_room: &str,
    now: i64,
) -> Result<i64, StoreError> {
    let rows = store
        .execute(
            "INSERT INTO livekit_deletions (region_id, livekit_room, attempts, next_at) \
             VALUES (?, ?, 1, ? + 30) \
             ON CONFLICT (region_id, livekit_room) DO UPDATE SET attempts = attempts + 1, \
             next_at = excluded.next_at - 30 + MIN(3600, 30 << MIN(attempts, 7)) \
             RETURNING attempts",
            &[region_id.into(), livekit_room.into(), now.into()],
        )
        .await?;
    Ok(first_int(&rows))
}

/// LiveKit rooms (with their region) of `region_id`, or of every region, whose delete is due
/// again at `now`; at most `limit`.
pub async fn due_livekit_deletions(
    store: &impl Store,
    region_id: Option<&str>,
    now: i64,
    limit: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    let rows = store
        .execute(
            "SELECT region_id, livekit_room FROM livekit_deletions \
             WHERE (? IS NULL OR region_id = ?) AND next_at <= ? ORDER BY next_at LIMIT ?",
            &[region_id.into(), region_id.into(), now.into(), limit.into()],
        )
        .await?;
    rows.rows
        .iter()
        .map(|r| Ok((Columns(r).text(0)?, Columns(r).text(1)?)))
        .collect()
}

/// Forgets a pending delete (it succeeded, or it is given up).
pub async fn forget_livekit_deletion(
    store: &impl Store,
    region_id: &str,
    livekit_room: &str,
) -> Result<(), StoreError> {
    store
        .execute(
            "DELETE FROM livekit_deletions WHERE region_id = ? AND livekit_room = ?",
            &[region_id.into(), livekit_room.into()],
        )
        .await?;
    Ok(())
}

/// What `room_started` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomStart {
    /// The LiveKit room is now the running session's media.
    Linked,
    /// A running session of that room id is pinned there, but it was created after this
    /// LiveKit room started (beyond `clock_skew` seconds): the event belongs to an earlier
    /// session, delivered late.
    Stale,
    /// No session of that room id runs in that region.
    Unknown,
}

/// `room_started`: links LiveKit's room `livekit_sid`, named `livekit_room` and started at
/// `at`, to the running session of that name pinned to `region_id` and makes it active, unless
/// the session is younger than the LiveKit room (allowing `clock_skew` seconds between the
/// clocks; only sessions from before per-session names can share a name).
pub async fn room_started(
    store: &impl Store,
    region_id: &str,
    livekit_room: &str,
    livekit_sid: &str,
    at: i64,
    clock_skew: i64,
) -> Result<RoomStart, StoreError> {
    let rows = store
        .execute(
            concat!(
                "INSERT INTO room_media (room_sid, livekit_sid, started_at) \
                 SELECT sid, ?, ? FROM rooms WHERE room_id = ? AND ",
                livekit_room_sql!(),
                " = ? AND region = ? AND is_running = 1 AND created_at <= ? \
                 ON CONFLICT (room_sid) DO UPDATE SET livekit_sid = excluded.livekit_sid \
                 RETURNING room_sid"
            ),
            &[
                livekit_sid.into(),
                at.into(),
                room_id_of(livekit_room).into(),
                livekit_room.into(),
                region_id.into(),
                at.saturating_add(clock_skew).into(),
            ],
        )
        .await?;
    if !rows.rows.is_empty() {
        return Ok(RoomStart::Linked);
    }
    let running = store
        .execute(
            concat!(
                "SELECT 1 FROM rooms WHERE room_id = ? AND ",
                livekit_room_sql!(),
                " = ? AND region = ? AND is_running = 1"
            ),
            &[
                room_id_of(livekit_room).into(),
                livekit_room.into(),
                region_id.into(),
            ],
        )
        .await?;
    Ok(if running.rows.is_empty() {
        RoomStart::Unknown
    } else {
        RoomStart::Stale
    })
}

/// A participant as LiveKit reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaParticipant<'a> {
    /// LiveKit's participant sid.
    pub sid: &'a str,
    /// The identity (the plugNmeet user id).
    pub identity: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Hidden (a recorder, an observer): not counted.
    pub hidden: bool,
}

/// `participant_joined`: adds the participant to the running session in `region_id` whose
/// media is LiveKit room `livekit_sid`, named `livekit_room` (a visible identity's first entry
/// counts, by trigger). Records nothing when no such session runs: an event of an earlier
/// session's LiveKit room, delivered late, joins nobody to the current one.
pub async fn participant_joined(
    store: &impl Store,
    region_id: &str,
    livekit_room: &str,
    livekit_sid: &str,
    participant: &MediaParticipant<'_>,
    at: i64,
) -> Result<Joined, StoreError> {
    let rows = store
        .execute(
            "INSERT INTO room_participants (room_sid, participant_sid, identity, name, hidden, \
             joined_at) SELECT r.sid, ?, ?, ?, ?, ? FROM rooms r \
             JOIN room_media m ON m.room_sid = r.sid AND m.livekit_sid = ? \
             WHERE r.room_id = ? AND r.region = ? AND r.is_running = 1 \
             ON CONFLICT DO NOTHING RETURNING room_sid, \
             (SELECT u.is_blocked FROM room_users u \
              WHERE u.room_sid = room_participants.room_sid \
              AND u.user_id = room_participants.identity), \
             EXISTS (SELECT 1 FROM user_locks l \
              WHERE l.room_sid = room_participants.room_sid \
              AND l.user_id = room_participants.identity)",
            &[
                participant.sid.into(),
                participant.identity.into(),
                participant.name.into(),
                participant.hidden.into(),
                at.into(),
                livekit_sid.into(),
                room_id_of(livekit_room).into(),
                region_id.into(),
            ],
        )
        .await?;
    Ok(match rows.rows.first() {
        None => Joined::NotRecorded,
        Some(row) if int_opt(row.get(1)) == Some(1) => Joined::Blocked,
        Some(row) if int_opt(row.get(2)) == Some(1) => Joined::Locked {
            room_sid: Columns(row).text(0)?,
        },
        Some(_) => Joined::Recorded,
    })
}

/// A participant LiveKit may still have in a session that has blocked them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedPresence {
    /// The session.
    pub room_sid: String,
    /// Its LiveKit room.
    pub livekit_room: String,
    /// LiveKit's participant sid.
    pub participant_sid: String,
    /// The identity (the user id).
    pub identity: String,
}

/// Participants of `region_id`'s running sessions that the session has blocked and no
/// `participant_left` has yet marked gone, at most `limit` (a partial index on blocked users
/// keeps this small: `migrations/0016_blocked_users.sql`).
pub async fn blocked_presences(
    store: &impl Store,
    region_id: &str,
    limit: i64,
) -> Result<Vec<BlockedPresence>, StoreError> {
    let sql = format!(
        // CROSS JOIN keeps this order: from the few blocked users (the partial index), not
        // from every participant of the region's running sessions.
        "SELECT p.room_sid, (SELECT {} FROM rooms WHERE sid = p.room_sid), p.participant_sid, \
         p.identity FROM room_users u CROSS JOIN rooms r CROSS JOIN room_participants p \
         WHERE u.is_blocked = 1 AND r.sid = u.room_sid AND r.is_running = 1 AND r.region = ? \
         AND p.room_sid = u.room_sid AND p.identity = u.user_id AND p.left_at IS NULL LIMIT ?",
        livekit_room_sql!()
    );
    let rows = store
        .execute(&sql, &[region_id.into(), limit.into()])
        .await?;
    rows.rows
        .iter()
        .map(|r| {
            let col = Columns(r);
            Ok(BlockedPresence {
                room_sid: col.text(0)?,
                livekit_room: col.text(1)?,
                participant_sid: col.text(2)?,
                identity: col.text(3)?,
            })
        })
        .collect()
}

/// Marks participant `participant_sid` of session `room_sid` gone at `at` (LiveKit said it
/// has no such participant), unless it left already.
pub async fn participant_gone(
    store: &impl Store,
    room_sid: &str,
    participant_sid: &str,
    at: i64,
) -> Result<(), StoreError> {
    store
        .execute(
            "UPDATE room_participants SET left_at = ? \
             WHERE room_sid = ? AND participant_sid = ? AND left_at IS NULL",
            &[at.into(), room_sid.into(), participant_sid.into()],
        )
        .await?;
    Ok(())
}

/// What a `participant_joined` event did to the session's participant list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// Nothing: no running session of that LiveKit room in that region, or heard before.
    NotRecorded,
    /// The participant is in the session's list now.
    Recorded,
    /// Recorded, but the session has blocked this identity: they came in with a LiveKit token
    /// minted before the block, and must be removed again.
    Blocked,
    /// Recorded, and a moderator has locked something for this identity in session
    /// `room_sid`: their LiveKit token may predate the lock.
    Locked {
        /// The session.
        room_sid: String,
    },
}

/// `participant_left`: the participant (LiveKit's sid, unique) is no longer in the session of
/// LiveKit room `livekit_room` (sid `livekit_sid`) in `region_id`. A participant the edge has
/// not heard join (its `participant_joined` comes later, or never) is recorded as joined and
/// left at once, so a late `participant_joined` cannot make it present for good.
pub async fn participant_left(
    store: &impl Store,
    region_id: &str,
    livekit_room: &str,
    livekit_sid: &str,
    participant: &MediaParticipant<'_>,
    at: i64,
) -> Result<bool, StoreError> {
    let rows = store
        .execute(
            "INSERT INTO room_participants (room_sid, participant_sid, identity, name, hidden, \
             joined_at, left_at) SELECT r.sid, ?, ?, ?, ?, ?, ? FROM rooms r \
             JOIN room_media m ON m.room_sid = r.sid AND m.livekit_sid = ? \
             WHERE r.room_id = ? AND r.region = ? AND r.is_running = 1 \
             ON CONFLICT (room_sid, participant_sid) DO UPDATE SET left_at = excluded.left_at \
             WHERE left_at IS NULL RETURNING room_sid",
            &[
                participant.sid.into(),
                participant.identity.into(),
                participant.name.into(),
                participant.hidden.into(),
                at.into(),
                at.into(),
                livekit_sid.into(),
                room_id_of(livekit_room).into(),
                region_id.into(),
            ],
        )
        .await?;
    Ok(!rows.rows.is_empty())
}

/// `room_finished`: ends the running session that LiveKit room `livekit_sid` belongs to (a
/// finished LiveKit room of an earlier session ends nothing). Returns the ended session's sid.
pub async fn room_finished(
    store: &impl Store,
    region_id: &str,
    livekit_sid: &str,
    at: i64,
) -> Result<Option<String>, StoreError> {
    let sql = format!(
        "UPDATE rooms SET is_running = 0, status = '{STATUS_ENDED}', ended_at = ? \
         WHERE is_running = 1 AND region = ? \
         AND sid IN (SELECT room_sid FROM room_media WHERE livekit_sid = ?) RETURNING sid"
    );
    let rows = store
        .execute(&sql, &[at.into(), region_id.into(), livekit_sid.into()])
        .await?;
    Ok(rows.rows.first().and_then(|r| text_opt(r.first())))
}

/// Why the edge ends a room on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitReached {
    /// Its `room_duration` is over.
    Duration,
    /// Nobody visible has been in it for its `empty_timeout`.
    Empty,
    /// Nobody entered its LiveKit room within `empty_timeout` of its creation (LiveKit closes a
    /// room nobody joins the same way).
    NeverStarted,
    /// Its region is gone and nobody joined it again (which would have moved it) within
    /// `empty_timeout` of when the region was last heard from.
    RegionGone,
}

/// A running session the edge must end now.
#[derive(Debug, Clone, PartialEq)]
pub struct DueRoom {
    /// The session.
    pub sid: String,
    /// The customer's room id.
    pub room_id: String,
    /// Its LiveKit room's name.
    pub livekit_room: String,
    /// Why.
    pub reason: LimitReached,
}

/// Running sessions in `region_id` whose `room_duration` is over or that stayed empty for their
/// `empty_timeout`, as of `now` (Unix seconds); at most `limit`. Emptiness counts only when
/// `events_settled` (the region's sidecar holds no undelivered webhook: a re-join may be among
/// them).
pub async fn due_rooms(
    store: &impl Store,
    region_id: &str,
    now: i64,
    events_settled: bool,
    limit: i64,
) -> Result<Vec<DueRoom>, StoreError> {
    let rows = store
        .execute(
            concat!(
            "SELECT sid, room_id, livekit_room, over FROM (\
               SELECT r.sid, r.room_id, r.empty_timeout, m.started_at, ",
               livekit_room_sql!(), " AS livekit_room, \
                 COALESCE(json_extract(r.metadata, '$.room_features.room_duration'), 0) AS minutes, \
                 EXISTS (SELECT 1 FROM room_participants p WHERE p.room_sid = r.sid \
                   AND p.left_at IS NULL AND p.hidden = 0) AS occupied, \
                 COALESCE((SELECT MAX(p.left_at) FROM room_participants p \
                   WHERE p.room_sid = r.sid AND p.hidden = 0), m.started_at) AS empty_since, \
                 (COALESCE(json_extract(r.metadata, '$.room_features.room_duration'), 0) > 0 \
                   AND m.started_at + 60 * json_extract(r.metadata, '$.room_features.room_duration') <= ?) AS over \
               FROM rooms r JOIN room_media m ON m.room_sid = r.sid \
               WHERE r.is_running = 1 AND r.region = ?) \
             WHERE over OR (? AND empty_timeout > 0 AND NOT occupied AND empty_since + empty_timeout <= ?) \
             ORDER BY sid LIMIT ?"),
            &[
                now.into(),
                region_id.into(),
                events_settled.into(),
                now.into(),
                limit.into(),
            ],
        )
        .await?;
    due(rows)
}

/// Running sessions pinned to a region that is gone (drained and left, or silent for
/// `gone_after_ms`; see [`crate::registry::region_is_gone`]) whose `empty_timeout` has passed
/// since the region was last heard from, as of `now_ms`: nobody can have been in them since,
/// and nobody joined to move them. Only regions in `sidecar_regions` (those with a sidecar now)
/// count: another's status is left from when it had one. At most `limit`.
pub async fn orphaned_rooms(
    store: &impl Store,
    now_ms: i64,
    gone_after_ms: i64,
    sidecar_regions: &[&str],
    limit: i64,
) -> Result<Vec<DueRoom>, StoreError> {
    let rows = store
        .execute(
            concat!(
                "SELECT r.sid, r.room_id, ",
                livekit_room_sql!(),
                ", 3 FROM rooms r JOIN region_status s ON s.region_id = r.region \
             WHERE r.is_running = 1 AND r.empty_timeout > 0 \
               AND r.region IN (SELECT value FROM json_each(?)) \
               AND (s.left_at_ms IS NOT NULL OR s.received_at_ms < ? - ?) \
               AND COALESCE(s.left_at_ms, s.received_at_ms) + 1000 * r.empty_timeout <= ? \
             ORDER BY r.id LIMIT ?"
            ),
            &[
                json_list(sidecar_regions)?,
                now_ms.into(),
                gone_after_ms.into(),
                now_ms.into(),
                limit.into(),
            ],
        )
        .await?;
    due(rows)
}

/// Rows of `sid, room_id, livekit_room, reason` (1 the duration, 2 never started, 3 the region
/// is gone, else empty).
fn due(rows: Rows) -> Result<Vec<DueRoom>, StoreError> {
    rows.rows
        .iter()
        .map(|r| {
            let col = Columns(r);
            Ok(DueRoom {
                sid: col.text(0)?,
                room_id: col.text(1)?,
                livekit_room: col.text(2)?,
                reason: match col.int(3)? {
                    1 => LimitReached::Duration,
                    2 => LimitReached::NeverStarted,
                    3 => LimitReached::RegionGone,
                    _ => LimitReached::Empty,
                },
            })
        })
        .collect()
}

/// Running sessions whose LiveKit room never started (no `room_started` arrived) although
/// `empty_timeout` has passed since they were created, as of `now`: those placed in one of
/// `regions` (each a region whose `room_started` would have been heard, none on its way), and
/// the unplaced ones with `unplaced`. At most `limit`.
pub async fn never_started_rooms(
    store: &impl Store,
    regions: &[&str],
    unplaced: bool,
    now: i64,
    limit: i64,
) -> Result<Vec<DueRoom>, StoreError> {
    let rows = store
        .execute(
            concat!(
                "SELECT r.sid, r.room_id, ",
                livekit_room_sql!(),
                ", 2 FROM rooms r \
             WHERE r.is_running = 1 AND r.created_at + r.empty_timeout <= ? \
               AND ((r.region IS NULL AND ?) OR r.region IN (SELECT value FROM json_each(?))) \
               AND NOT EXISTS (SELECT 1 FROM room_media m WHERE m.room_sid = r.sid) \
             ORDER BY r.id LIMIT ?"
            ),
            &[
                now.into(),
                unplaced.into(),
                json_list(regions)?,
                limit.into(),
            ],
        )
        .await?;
    due(rows)
}

/// Whether the store answers with the edge's tables in place (for `/healthCheck`): a database
/// whose migrations were never applied answers `SELECT 1` but fails every room call.
pub async fn ping(store: &impl Store) -> Result<(), StoreError> {
    store
        .execute(
            "SELECT (SELECT 1 FROM rooms LIMIT 1), (SELECT 1 FROM room_users LIMIT 1), \
             (SELECT 1 FROM region_status LIMIT 1)",
            &[],
        )
        .await
        .map(|_| ())
}

fn rooms(rows: Rows) -> Result<Vec<RoomRow>, StoreError> {
    rows.rows
        .iter()
        .map(|r| {
            let col = Columns(r);
            Ok(RoomRow {
                id: col.int(0)?,
                room_id: col.text(1)?,
                sid: col.text(2)?,
                room_title: col.text(3)?,
                webhook_url: col.text(4)?,
                metadata: col.text(5)?,
                max_participants: col.int(6)?,
                empty_timeout: col.int(7)?,
                region_hint: text_opt(r.get(8)),
                region: text_opt(r.get(9)),
                is_running: col.int(10)? != 0,
                status: col.text(11)?,
                joined_participants: col.int(12)?,
                created_at: col.int(13)?,
                started_at: int_opt(r.get(14)),
                ended_at: int_opt(r.get(15)),
                livekit_room: col.text(16)?,
                region_heard_ms: int_opt(r.get(17)),
            })
        })
        .collect()
}

struct Columns<'a>(&'a [SqlValue]);

impl Columns<'_> {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        text_opt(self.0.get(i)).ok_or_else(|| StoreError(format!("column {i}: expected text")))
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        int_opt(self.0.get(i)).ok_or_else(|| StoreError(format!("column {i}: expected integer")))
    }
    fn count(&self, i: usize) -> Result<u64, StoreError> {
        u64::try_from(self.int(i)?)
            .map_err(|_| StoreError(format!("column {i}: expected a count, not negative")))
    }
}

/// A listing's `WHERE` clause and its parameters: `base`, and when the query names rooms, only
/// theirs (each a bound parameter: D1 takes at most 100 a statement), and when it names a
/// session, only its rows.
fn listing_filter(base: &str, q: &ListingQuery<'_>) -> (String, Vec<SqlValue>) {
    let mut filter = String::from(base);
    if !q.room_ids.is_empty() {
        filter.push_str(" AND room_id IN (");
        filter.push_str(&vec!["?"; q.room_ids.len()].join(", "));
        filter.push(')');
    }
    let mut params: Vec<SqlValue> = q
        .room_ids
        .iter()
        .map(|id| SqlValue::from(id.as_str()))
        .collect();
    if let Some(sid) = q.room_sid {
        filter.push_str(" AND room_sid = ?");
        params.push(sid.into());
    }
    (filter, params)
}

/// How many rows of `table` match `filter` (one statement).
async fn count_where(
    store: &impl Store,
    table: &str,
    filter: &str,
    params: &[SqlValue],
) -> Result<i64, StoreError> {
    let rows = store
        .execute(
            &format!("SELECT COUNT(*) FROM {table} WHERE {filter}"),
            params,
        )
        .await?;
    Ok(first_int(&rows))
}

/// The first column of the first row as an integer (a `COUNT(*)`); 0 when there is none.
fn first_int(rows: &Rows) -> i64 {
    rows.rows
        .first()
        .and_then(|r| int_opt(r.first()))
        .unwrap_or(0)
}

fn text_opt(v: Option<&SqlValue>) -> Option<String> {
    match v {
        Some(SqlValue::Text(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int_opt(v: Option<&SqlValue>) -> Option<i64> {
    match v {
        Some(SqlValue::Integer(i)) => Some(*i),
        // D1 hands integers to JavaScript as numbers, which may come back as reals.
        Some(SqlValue::Real(f)) if f.fract() == 0.0 => Some(*f as i64),
        _ => None,
    }
}
