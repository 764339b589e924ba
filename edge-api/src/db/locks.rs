//! The SQL of the locks moderators set during a meeting (`migrations/0017_user_locks.sql`):
//! kept per user in `user_locks`, laid over their stored metadata by the schema's triggers,
//! and, for everyone, also over the room's default locks for users who come later; and the
//! `lock_checks` of participants whose LiveKit permission must still follow their locks.

use super::{json_list, Columns};
use crate::platform::{SqlValue, Store, StoreError};

/// The lock a moderator sets: one `LockSettings` field, on or off.
#[derive(Debug, Clone, Copy)]
pub struct Lock<'a> {
    /// The `LockSettings` field, e.g. `lock_microphone`.
    pub field: &'a str,
    /// Locked (true) or unlocked.
    pub locked: bool,
}

impl Lock<'_> {
    /// The lock as parameters: its field, and its value as JSON text (for `json(?)`).
    fn params(&self) -> [SqlValue; 2] {
        [
            self.field.into(),
            if self.locked { "true" } else { "false" }.into(),
        ]
    }
}

/// What [`lock_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// The lock is on the user.
    Set,
    /// The user is a moderator (only the whiteboard lock applies to moderators).
    Moderator,
    /// The session issued no token to such a visible user.
    Unknown,
}

/// The whiteboard lock, the one lock that also binds moderators (as in plugNmeet).
const WHITEBOARD: &str = "lock_whiteboard";

/// Sets `lock` on user `user_id` of session `room_sid`, if a visible user the session issued a
/// token to, and a moderator only for the whiteboard; one statement when it is set.
pub async fn lock_user(
    store: &impl Store,
    room_sid: &str,
    user_id: &str,
    lock: Lock<'_>,
) -> Result<Locked, StoreError> {
    let [field, value] = lock.params();
    let rows = store
        .execute(
            "INSERT INTO user_locks (room_sid, user_id, locks) \
             SELECT room_sid, user_id, json_object(?, json(?)) FROM room_users \
             WHERE room_sid = ? AND user_id = ? AND is_hidden = 0 AND (is_admin = 0 OR ? = ?) \
             ON CONFLICT (room_sid, user_id) DO UPDATE SET locks = json_patch(locks, excluded.locks) \
             RETURNING 1",
            &[
                field.clone(),
                value,
                room_sid.into(),
                user_id.into(),
                field,
                WHITEBOARD.into(),
            ],
        )
        .await?;
    if !rows.rows.is_empty() {
        return Ok(Locked::Set);
    }
    let user = super::room_user(store, room_sid, user_id).await?;
    Ok(match user {
        Some(user) if !user.is_hidden && user.is_admin => Locked::Moderator,
        _ => Locked::Unknown,
    })
}

/// Sets `lock` on every visible user of session `room_sid` but `moderator` (and other
/// moderators, but for the whiteboard), and on the room's default locks, which a user given a
/// token later starts with; false when the session no longer runs (then nothing is changed).
/// A user who has the lock already is left as stored (their metadata, and so their LiveKit
/// participant, unchanged), so calling again only reaches those still without it.
pub async fn lock_everyone(
    store: &impl Store,
    room_sid: &str,
    moderator: &str,
    lock: Lock<'_>,
) -> Result<bool, StoreError> {
    let [field, value] = lock.params();
    let rooms = store
        .execute(
            "UPDATE rooms SET metadata = json_patch(metadata, \
             json_object('default_lock_settings', json_object(?, json(?)))) \
             WHERE sid = ? AND is_running = 1 RETURNING 1",
            &[field.clone(), value.clone(), room_sid.into()],
        )
        .await?;
    if rooms.rows.is_empty() {
        return Ok(false);
    }
    store
        .execute(
            "INSERT INTO user_locks (room_sid, user_id, locks) \
             SELECT room_sid, user_id, json_object(?, json(?)) FROM room_users \
             WHERE room_sid = ? AND user_id != ? AND is_hidden = 0 AND (is_admin = 0 OR ? = ?) \
             ON CONFLICT (room_sid, user_id) DO UPDATE SET locks = json_patch(locks, excluded.locks) \
             WHERE json_extract(locks, '$.' || ?) IS NOT json_extract(excluded.locks, '$.' || ?)",
            &[
                field.clone(),
                value,
                room_sid.into(),
                moderator.into(),
                field.clone(),
                WHITEBOARD.into(),
                field.clone(),
                field,
            ],
        )
        .await?;
    Ok(true)
}

/// A user a lock check brings in line: what their session would grant them now, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct LockTarget {
    /// The session.
    pub room_sid: String,
    /// The identity.
    pub user_id: String,
    /// The session's LiveKit room.
    pub livekit_room: String,
    /// The session's stored metadata (its publishing features and default locks).
    pub room_metadata: String,
    /// The user's stored metadata, locks included.
    pub user_metadata: String,
    /// A moderator (no lock but the whiteboard's binds them).
    pub is_admin: bool,
}

/// The columns of a [`LockTarget`], over `rooms r` and `room_users u`.
const TARGET_COLUMNS: &str = concat!(
    "u.room_sid, u.user_id, ",
    livekit_room_sql!("r."),
    ", r.metadata, u.metadata, u.is_admin"
);

fn targets(rows: &crate::platform::Rows) -> Result<Vec<LockTarget>, StoreError> {
    rows.rows
        .iter()
        .map(|r| {
            let col = Columns(r);
            Ok(LockTarget {
                room_sid: col.text(0)?,
                user_id: col.text(1)?,
                livekit_room: col.text(2)?,
                room_metadata: col.text(3)?,
                user_metadata: col.text(4)?,
                is_admin: col.int(5)? != 0,
            })
        })
        .collect()
}

/// The `(session, identity)` pairs as one JSON parameter (`[[sid, id], ...]`).
fn pairs_param(pairs: &[(&str, &str)]) -> Result<SqlValue, StoreError> {
    json_list(
        &pairs
            .iter()
            .map(|(sid, id)| [*sid, *id])
            .collect::<Vec<_>>(),
    )
}

/// The visible, unblocked users among `pairs` `(session sid, identity)` of running sessions,
/// as [`LockTarget`]s, in one statement.
pub async fn targets_of(
    store: &impl Store,
    pairs: &[(&str, &str)],
) -> Result<Vec<LockTarget>, StoreError> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {TARGET_COLUMNS} FROM json_each(?) j \
         JOIN room_users u ON u.room_sid = json_extract(j.value, '$[0]') \
         AND u.user_id = json_extract(j.value, '$[1]') \
         JOIN rooms r ON r.sid = u.room_sid \
         WHERE r.is_running = 1 AND u.is_hidden = 0 AND u.is_blocked = 0"
    );
    targets(&store.execute(&sql, &[pairs_param(pairs)?]).await?)
}

/// Queues a lock check for each of `pairs` `(session sid, identity)` (one already queued stays
/// once), in one statement.
pub async fn queue_checks(store: &impl Store, pairs: &[(&str, &str)]) -> Result<(), StoreError> {
    if pairs.is_empty() {
        return Ok(());
    }
    store
        .execute(
            "INSERT OR IGNORE INTO lock_checks (room_sid, user_id) \
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)",
            &[pairs_param(pairs)?],
        )
        .await?;
    Ok(())
}

/// Queues a lock check for the visible users of session `room_sid` the edge has heard joining
/// LiveKit and not leaving (`user_id` one of them only, or all but `moderator`), for when
/// LiveKit cannot be asked who is in; how many, in one statement.
pub async fn queue_present(
    store: &impl Store,
    room_sid: &str,
    user_id: Option<&str>,
    moderator: &str,
) -> Result<u64, StoreError> {
    let rows = store
        .execute(
            "INSERT OR IGNORE INTO lock_checks (room_sid, user_id) \
             SELECT DISTINCT p.room_sid, p.identity FROM room_participants p \
             JOIN room_users u ON u.room_sid = p.room_sid AND u.user_id = p.identity \
             WHERE p.room_sid = ?1 AND p.left_at IS NULL AND u.is_hidden = 0 \
             AND u.user_id != ?3 AND (?2 IS NULL OR u.user_id = ?2) RETURNING 1",
            &[
                room_sid.into(),
                user_id.map_or(SqlValue::Null, SqlValue::from),
                moderator.into(),
            ],
        )
        .await?;
    Ok(rows.rows.len() as u64)
}

/// Up to `limit` queued lock checks of running sessions in `region_id`, as [`LockTarget`]s (a
/// queued user since blocked, made hidden or gone is among them no longer), in one statement.
pub async fn due_checks(
    store: &impl Store,
    region_id: &str,
    limit: i64,
) -> Result<Vec<LockTarget>, StoreError> {
    let sql = format!(
        "SELECT {TARGET_COLUMNS} FROM lock_checks c \
         JOIN rooms r ON r.sid = c.room_sid AND r.region = ? AND r.is_running = 1 \
         JOIN room_users u ON u.room_sid = c.room_sid AND u.user_id = c.user_id \
         WHERE u.is_hidden = 0 AND u.is_blocked = 0 ORDER BY c.attempts LIMIT ?"
    );
    targets(
        &store
            .execute(&sql, &[region_id.into(), limit.into()])
            .await?,
    )
}

/// Settles lock checks after their LiveKit calls: forgets each of `done` (a target, as it was
/// given to LiveKit) whose stored metadata is still what was given (a lock that changed
/// meanwhile keeps its check), and counts a failed attempt for each of `failed`. One statement
/// each, when there are any.
pub async fn settle_checks(
    store: &impl Store,
    done: &[&LockTarget],
    failed: &[&LockTarget],
) -> Result<(), StoreError> {
    if !done.is_empty() {
        let sent = json_list(
            &done
                .iter()
                .map(|t| [&t.room_sid, &t.user_id, &t.user_metadata])
                .collect::<Vec<_>>(),
        )?;
        store
            .execute(
                "DELETE FROM lock_checks WHERE EXISTS (SELECT 1 FROM json_each(?) j \
                 JOIN room_users u ON u.room_sid = json_extract(j.value, '$[0]') \
                 AND u.user_id = json_extract(j.value, '$[1]') \
                 WHERE u.room_sid = lock_checks.room_sid AND u.user_id = lock_checks.user_id \
                 AND u.metadata = json_extract(j.value, '$[2]'))",
                &[sent],
            )
            .await?;
    }
    if !failed.is_empty() {
        let pairs: Vec<(&str, &str)> = failed
            .iter()
            .map(|t| (t.room_sid.as_str(), t.user_id.as_str()))
            .collect();
        store
            .execute(
                "UPDATE lock_checks SET attempts = attempts + 1 WHERE EXISTS \
                 (SELECT 1 FROM json_each(?) j WHERE json_extract(j.value, '$[0]') = room_sid \
                 AND json_extract(j.value, '$[1]') = user_id)",
                &[pairs_param(&pairs)?],
            )
            .await?;
    }
    Ok(())
}
