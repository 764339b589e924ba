//! plugNmeet's `/auth/room/*` API: one module per call, each owning its request parsing, rules
//! and response shaping. What they share lives here.

pub mod create;
pub mod end;
pub mod join;
pub mod past;
pub mod status;

use serde::Serialize;

use crate::db::RoomRow;
use crate::exchange::EdgeResponse;
use crate::platform::StoreError;
use crate::wire::{int64_string, parse_input, Common, InputError, StatusCode};

/// Longest room or user id accepted.
pub const MAX_ID_LEN: usize = 128;

/// Checks a room id: `^[a-zA-Z0-9-_]+$`, no `-FIELD_`, not starting with `user_`.
pub fn check_room_id(room_id: &str) -> Result<(), String> {
    if room_id.is_empty() {
        return Err("room_id: required".into());
    }
    if room_id.len() > MAX_ID_LEN {
        return Err(format!("room_id: longer than {MAX_ID_LEN} characters"));
    }
    if !is_plain_id(room_id) {
        return Err("room_id should only contain letters, digits -_".into());
    }
    if room_id.contains("-FIELD_") || room_id.starts_with("user_") {
        return Err("room_id: must not contain `-FIELD_` or start with `user_`".into());
    }
    Ok(())
}

/// `^[a-zA-Z0-9-_]+$`.
pub fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Reads a `{room_id}` request (isRoomActive, getActiveRoomInfo, endRoom) and checks the id;
/// `Err` is the answer to send.
pub fn room_id_request(body: &[u8]) -> Result<String, EdgeResponse> {
    #[derive(serde::Deserialize)]
    struct RoomIdReq {
        #[serde(default)]
        room_id: String,
    }
    let req: RoomIdReq = parse_input(body).map_err(bad_input)?;
    check_room_id(&req.room_id).map_err(invalid)?;
    Ok(req.room_id)
}

/// A 200 with `status:false` and `INVALID_PARAMETERS`.
pub fn invalid(msg: impl Into<String>) -> EdgeResponse {
    EdgeResponse::common(200, Common::fail(StatusCode::InvalidParameters, msg))
}

/// The answer to a body that is not the call's request message.
pub fn bad_input(e: InputError) -> EdgeResponse {
    invalid(e.0)
}

/// A store failure: logged in full, answered without detail.
pub fn internal(e: StoreError) -> EdgeResponse {
    tracing::error!(error = %e, "store failure");
    EdgeResponse::common(
        200,
        Common::fail(StatusCode::InternalServerError, "internal server error"),
    )
}

/// plugNmeet's `ActiveRoomInfo`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActiveRoomInfo {
    /// Title.
    pub room_title: String,
    /// The customer's id.
    pub room_id: String,
    /// The session id.
    pub sid: String,
    /// Participants who joined so far (int64, as a string).
    #[serde(serialize_with = "int64_string")]
    pub joined_participants: i64,
    /// 1 while running.
    pub is_running: i32,
    /// 1 while a recording runs.
    pub is_recording: i32,
    /// 1 while an RTMP broadcast runs.
    pub is_active_rtmp: i32,
    /// Per-meeting webhook URL.
    pub webhook_url: String,
    /// 1 for a breakout room.
    pub is_breakout_room: i32,
    /// The parent of a breakout room.
    pub parent_room_id: String,
    /// Unix seconds (int64, as a string).
    #[serde(serialize_with = "int64_string")]
    pub creation_time: i64,
    /// RoomMetadata as a JSON string.
    pub metadata: String,
}

impl From<&RoomRow> for ActiveRoomInfo {
    fn from(row: &RoomRow) -> Self {
        ActiveRoomInfo {
            room_title: row.room_title.clone(),
            room_id: row.room_id.clone(),
            sid: row.sid.clone(),
            joined_participants: row.joined_participants,
            is_running: i32::from(row.is_running),
            is_recording: 0,
            is_active_rtmp: 0,
            webhook_url: row.webhook_url.clone(),
            is_breakout_room: 0,
            parent_room_id: String::new(),
            creation_time: row.created_at,
            metadata: row.metadata.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids() {
        assert!(check_room_id("room-1_A").is_ok());
        for bad in ["", "a b", "room/../x", "x-FIELD_1", "user_1", "ünï", "a.b"] {
            assert!(check_room_id(bad).is_err(), "{bad}");
        }
        assert!(check_room_id(&"a".repeat(MAX_ID_LEN + 1)).is_err());
    }
}
