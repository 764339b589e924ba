//! plugNmeet's `/auth/room/*` API: one module per call, each owning its request parsing, rules
//! and response shaping. What they share lives here.

pub mod broadcast;
pub mod create;
pub mod end;
pub mod join;
pub mod past;
pub mod status;

use serde::{Deserialize, Serialize};

use crate::db::RoomRow;
use crate::exchange::EdgeResponse;
use crate::platform::StoreError;
use crate::wire::{
    enum_name_or_number, int64_string, lenient_int, parse_input, Common, InputError, StatusCode,
};

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

/// Checks the `user_id` a moderator's call names, like getJoinToken's ids; the answer that
/// refuses it otherwise.
pub(crate) fn check_named_user(user_id: &str) -> Result<(), EdgeResponse> {
    if user_id.is_empty() {
        return Err(invalid("user_id: required"));
    }
    if user_id.len() > MAX_ID_LEN || !is_plain_id(user_id) {
        return Err(invalid("user_id should only contain letters, digits -_"));
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

/// Page size of plugNmeet's listings when `limit` is 0.
const DEFAULT_PAGE: u32 = 20;
/// Largest page of a listing.
const MAX_PAGE: u32 = 100;

/// What a listing call (`fetchPastRooms`, `recording/fetch`, `analytics/fetch`,
/// `artifact/fetch`) asks for.
#[derive(Deserialize)]
pub struct ListingReq {
    /// Only these rooms' (all when empty).
    #[serde(default)]
    pub room_ids: Vec<String>,
    /// One session only (`recording/fetch`, `artifact/fetch`; the others ignore it, as
    /// plugNmeet drops unknown fields).
    #[serde(default)]
    pub room_sid: Option<String>,
    /// One kind of artifact only (`artifact/fetch`): its name or number, as protojson reads an
    /// enum.
    #[serde(default, rename = "type", deserialize_with = "enum_name_or_number")]
    pub artifact_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_int")]
    from: Option<u32>,
    #[serde(default, deserialize_with = "lenient_int")]
    limit: Option<u32>,
    #[serde(default)]
    order_by: String,
}

/// A listing's answer: `result` when the page found rows, else `NOT_FOUND` with `none`.
pub fn listing_answer<T: Serialize>(result: Option<T>, none: &str) -> EdgeResponse {
    #[derive(Serialize)]
    struct ListingRes<T> {
        result: Option<T>,
    }
    let common = match result {
        Some(_) => Common::ok("success"),
        None => Common::fail(StatusCode::NotFound, none),
    };
    EdgeResponse::reply(common, ListingRes { result })
}

/// Which page of a listing plugNmeet's fetch calls ask for, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows to skip.
    pub from: u32,
    /// Rows at most (0 asked: 20; at most 100).
    pub limit: u32,
    /// Newest first (`DESC`, the default) or oldest first (`ASC`).
    pub descending: bool,
}

impl Page {
    /// Reads a listing call's body (at most `max_ids` room ids): its filter and its page,
    /// checked as [`Page::read`] checks them. `Err` is the answer to send.
    pub fn requested(body: &[u8], max_ids: usize) -> Result<(ListingReq, Page), EdgeResponse> {
        let mut req: ListingReq = parse_input(body).map_err(bad_input)?;
        let page = Page::read(
            &mut req.room_ids,
            max_ids,
            req.from,
            req.limit,
            &req.order_by,
        )?;
        Ok((req, page))
    }

    /// Checks a listing's filter and page: `room_ids` (at most `max_ids`, each a valid room id;
    /// the same id twice names one room, so they are deduplicated in place), `from`, `limit`
    /// and `order_by`. `Err` is the answer to send.
    pub fn read(
        room_ids: &mut Vec<String>,
        max_ids: usize,
        from: Option<u32>,
        limit: Option<u32>,
        order_by: &str,
    ) -> Result<Page, EdgeResponse> {
        if room_ids.len() > max_ids {
            return Err(invalid(format!("room_ids: at most {max_ids} ids")));
        }
        room_ids.sort_unstable();
        room_ids.dedup();
        if let Some(msg) = room_ids.iter().find_map(|id| check_room_id(id).err()) {
            return Err(invalid(msg));
        }
        let descending = match order_by.to_ascii_uppercase().as_str() {
            "" | "DESC" => true,
            "ASC" => false,
            _ => return Err(invalid("order_by: ASC or DESC")),
        };
        let limit = match limit.unwrap_or(0) {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        Ok(Page {
            from: from.unwrap_or(0),
            limit,
            descending,
        })
    }

    /// The listing of `room_ids` this page asks the store for.
    pub fn of<'a>(&self, room_ids: &'a [String]) -> crate::db::ListingQuery<'a> {
        crate::db::ListingQuery {
            room_ids,
            room_sid: None,
            from: self.from,
            limit: self.limit,
            descending: self.descending,
        }
    }

    /// [`Page::requested`] for a listing that also takes one session (`room_sid`, at most 64
    /// characters).
    pub fn requested_with_session(
        body: &[u8],
        max_ids: usize,
    ) -> Result<(ListingReq, Page), EdgeResponse> {
        let (req, page) = Page::requested(body, max_ids)?;
        if req.room_sid.as_deref().is_some_and(|sid| sid.len() > 64) {
            return Err(invalid("room_sid: at most 64 characters"));
        }
        Ok((req, page))
    }

    /// The page of `req`'s rooms, of its session alone when it names one (`""` names none).
    pub fn of_session<'a>(&self, req: &'a ListingReq) -> crate::db::ListingQuery<'a> {
        crate::db::ListingQuery {
            room_sid: req.room_sid.as_deref().filter(|sid| !sid.is_empty()),
            ..self.of(&req.room_ids)
        }
    }

    /// `order_by` as the answer echoes it.
    pub fn order_by(&self) -> &'static str {
        if self.descending {
            "DESC"
        } else {
            "ASC"
        }
    }
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
