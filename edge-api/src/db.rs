//! The edge's tables and every query it runs, in SQLite's dialect (schema:
//! `migrations/0001_rooms.sql`). Only this module writes SQL.

use crate::platform::{Rows, SqlValue, Store, StoreError};

/// The schema, for hosts and tests that set up a database.
pub const SCHEMA: &str = include_str!("../migrations/0001_rooms.sql");

/// Room sessions still running (created or active).
pub const STATUS_CREATED: &str = "created";
/// Ended sessions (past rooms).
pub const STATUS_ENDED: &str = "ended";

const ROOM_COLUMNS: &str = "id, room_id, sid, room_title, webhook_url, metadata, \
     max_participants, empty_timeout, region_hint, region, is_running, status, \
     joined_participants, created_at, started_at, ended_at";

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
    if let Some(row) = rooms(store.execute(&sql, &params).await?)?.pop() {
        return Ok((row, true));
    }
    running_room(store, room.room_id)
        .await?
        .map(|row| (row, false))
        .ok_or_else(|| StoreError("room insert conflicted but no running session exists".into()))
}

/// The running session of `room_id`.
pub async fn running_room(
    store: &impl Store,
    room_id: &str,
) -> Result<Option<RoomRow>, StoreError> {
    let sql = format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE room_id = ? AND is_running = 1");
    Ok(rooms(store.execute(&sql, &[room_id.into()]).await?)?.pop())
}

/// The most recent session of `room_id`, running or not.
pub async fn latest_room(store: &impl Store, room_id: &str) -> Result<Option<RoomRow>, StoreError> {
    let sql =
        format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE room_id = ? ORDER BY id DESC LIMIT 1");
    Ok(rooms(store.execute(&sql, &[room_id.into()]).await?)?.pop())
}

/// Every running session, oldest first (at most `limit`).
pub async fn running_rooms(store: &impl Store, limit: i64) -> Result<Vec<RoomRow>, StoreError> {
    let sql = format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE is_running = 1 ORDER BY id LIMIT ?");
    rooms(store.execute(&sql, &[limit.into()]).await?)
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

/// Pins a running session to `region` unless it is pinned already; returns the pinned region.
pub async fn pin_region(
    store: &impl Store,
    sid: &str,
    region: &str,
) -> Result<Option<String>, StoreError> {
    store
        .execute(
            "UPDATE rooms SET region = ? WHERE sid = ? AND region IS NULL",
            &[region.into(), sid.into()],
        )
        .await?;
    let rows = store
        .execute("SELECT region FROM rooms WHERE sid = ?", &[sid.into()])
        .await?;
    Ok(rows.rows.first().and_then(|r| text_opt(r.first())))
}

/// Which ended sessions `fetchPastRooms` returns.
#[derive(Debug, Clone)]
pub struct PastRoomsQuery<'a> {
    /// Only these room ids (empty = all).
    pub room_ids: &'a [String],
    /// Rows to skip.
    pub from: i64,
    /// Rows to return.
    pub limit: i64,
    /// Newest first.
    pub descending: bool,
}

/// Ended sessions matching the query, and how many match in all.
pub async fn past_rooms(
    store: &impl Store,
    q: &PastRoomsQuery<'_>,
) -> Result<(i64, Vec<RoomRow>), StoreError> {
    let mut filter = String::from("is_running = 0");
    let mut params: Vec<SqlValue> = Vec::new();
    if !q.room_ids.is_empty() {
        filter.push_str(" AND room_id IN (");
        filter.push_str(&vec!["?"; q.room_ids.len()].join(", "));
        filter.push(')');
        params.extend(q.room_ids.iter().map(|id| SqlValue::from(id.as_str())));
    }
    let count = store
        .execute(
            &format!("SELECT COUNT(*) FROM rooms WHERE {filter}"),
            &params,
        )
        .await?;
    let total = count
        .rows
        .first()
        .and_then(|r| int_opt(r.first()))
        .unwrap_or(0);
    let order = if q.descending { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {ROOM_COLUMNS} FROM rooms WHERE {filter} ORDER BY id {order} LIMIT ? OFFSET ?"
    );
    params.push(q.limit.into());
    params.push(q.from.into());
    Ok((total, rooms(store.execute(&sql, &params).await?)?))
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
}

/// Records (or refreshes) a user of a session; a blocked user stays blocked.
pub async fn upsert_user(store: &impl Store, user: &RoomUser, now: i64) -> Result<(), StoreError> {
    store
        .execute(
            "INSERT INTO room_users (room_sid, user_id, name, is_admin, is_hidden, metadata, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (room_sid, user_id) DO UPDATE SET name = excluded.name, \
             is_admin = excluded.is_admin, is_hidden = excluded.is_hidden, \
             metadata = excluded.metadata, updated_at = excluded.updated_at",
            &[
                user.room_sid.as_str().into(),
                user.user_id.as_str().into(),
                user.name.as_str().into(),
                user.is_admin.into(),
                user.is_hidden.into(),
                user.metadata.as_str().into(),
                now.into(),
            ],
        )
        .await?;
    Ok(())
}

/// A user of a session, if a token was issued for them.
pub async fn room_user(
    store: &impl Store,
    room_sid: &str,
    user_id: &str,
) -> Result<Option<RoomUser>, StoreError> {
    let rows = store
        .execute(
            "SELECT room_sid, user_id, name, is_admin, is_hidden, metadata, is_blocked \
             FROM room_users WHERE room_sid = ? AND user_id = ?",
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
            })
        })
        .transpose()
}

/// Records that a user entered the room; the first time, the room's joined count goes up.
/// Returns whether this was the user's first entry.
pub async fn mark_joined(
    store: &impl Store,
    room_sid: &str,
    user_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let first = !store
        .execute(
            "UPDATE room_users SET joined_at = ? \
             WHERE room_sid = ? AND user_id = ? AND joined_at IS NULL RETURNING user_id",
            &[now.into(), room_sid.into(), user_id.into()],
        )
        .await?
        .rows
        .is_empty();
    if first {
        store
            .execute(
                "UPDATE rooms SET joined_participants = joined_participants + 1 WHERE sid = ?",
                &[room_sid.into()],
            )
            .await?;
    }
    Ok(first)
}

/// Whether the store answers (for `/healthCheck`).
pub async fn ping(store: &impl Store) -> Result<(), StoreError> {
    store.execute("SELECT 1", &[]).await.map(|_| ())
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
