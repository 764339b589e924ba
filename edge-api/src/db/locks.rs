//! The SQL of the locks moderators set during a meeting (`migrations/0017_user_locks.sql`):
//! kept per user in `user_locks`, laid over their stored metadata by the schema's triggers,
//! and, for everyone, also over the room's default locks for users who come later.

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
             ON CONFLICT (room_sid, user_id) DO UPDATE SET locks = json_patch(locks, excluded.locks)",
            &[
                field.clone(),
                value,
                room_sid.into(),
                moderator.into(),
                field,
                WHITEBOARD.into(),
            ],
        )
        .await?;
    Ok(true)
}

/// A user a moderator's lock may bind, as stored now.
#[derive(Debug, Clone, PartialEq)]
pub struct LockedUser {
    /// Their identity.
    pub user_id: String,
    /// Their `UserMetadata` JSON, locks included.
    pub metadata: String,
    /// A moderator (no lock but the whiteboard's binds them).
    pub is_admin: bool,
}

/// Which of `identities` are visible users of session `room_sid`, with their stored metadata,
/// in one statement.
pub async fn visible_users(
    store: &impl Store,
    room_sid: &str,
    identities: &[&str],
) -> Result<Vec<LockedUser>, StoreError> {
    if identities.is_empty() {
        return Ok(Vec::new());
    }
    let rows = store
        .execute(
            "SELECT user_id, metadata, is_admin FROM room_users \
             WHERE room_sid = ? AND is_hidden = 0 AND is_blocked = 0 \
             AND user_id IN (SELECT value FROM json_each(?))",
            &[room_sid.into(), json_list(identities)?],
        )
        .await?;
    rows.rows
        .iter()
        .map(|r| {
            let col = Columns(r);
            Ok(LockedUser {
                user_id: col.text(0)?,
                metadata: col.text(1)?,
                is_admin: col.int(2)? != 0,
            })
        })
        .collect()
}

/// Which of `identities` a moderator locked anything for in session `room_sid` (their LiveKit
/// token may predate the lock), in one statement.
pub async fn with_locks(
    store: &impl Store,
    room_sid: &str,
    identities: &[&str],
) -> Result<Vec<String>, StoreError> {
    if identities.is_empty() {
        return Ok(Vec::new());
    }
    let rows = store
        .execute(
            "SELECT user_id FROM user_locks WHERE room_sid = ? \
             AND user_id IN (SELECT value FROM json_each(?))",
            &[room_sid.into(), json_list(identities)?],
        )
        .await?;
    rows.rows.iter().map(|r| Columns(r).text(0)).collect()
}
