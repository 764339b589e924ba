//! `room/broadcastToRoom`: the backend tells the people in a running meeting something, as a
//! notification (`notification_msg {text, type, with_sound}`) or a chat line from the system
//! (`chat_msg {message}`): to everyone, to the moderators in it (`only_to_admins`), and/or to
//! one user (`to_user_id`). LiveKit carries it (`SendData`, reliable, topic
//! [`NOTICE_TOPIC`]) from the server, so no participant can pass one off as the organiser's;
//! the join page shows it.

use serde::{Deserialize, Serialize};

use super::{bad_input, check_room_id, internal, invalid, is_plain_id, MAX_ID_LEN};
use crate::db::{self, Among};
use crate::exchange::EdgeResponse;
use crate::platform::{Clock, HttpClient, Store};
use crate::wire::{enum_name_or_number, parse_input, Common, StatusCode};
use crate::Edge;

/// The data topic the join page listens on for the backend's notices.
pub const NOTICE_TOPIC: &str = "edgemeet.notice";
/// Longest text taken (LiveKit's reliable data packets carry up to about 15 KiB).
const MAX_TEXT_BYTES: usize = 4 * 1024;

#[derive(Deserialize)]
struct BroadcastReq {
    #[serde(default)]
    room_id: String,
    #[serde(default)]
    only_to_admins: bool,
    #[serde(default)]
    to_user_id: Option<String>,
    #[serde(default)]
    chat_msg: Option<ChatMsg>,
    #[serde(default)]
    notification_msg: Option<NotificationMsg>,
}

#[derive(Deserialize)]
struct ChatMsg {
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct NotificationMsg {
    #[serde(default)]
    text: String,
    /// `NATS_SYSTEM_NOTIFICATION_INFO`, `_WARNING` or `_ERROR` (or 0, 1, 2).
    #[serde(default, rename = "type", deserialize_with = "enum_name_or_number")]
    kind: Option<String>,
    #[serde(default)]
    with_sound: bool,
}

/// What the page receives.
#[derive(Serialize)]
struct Notice<'a> {
    /// `notification` or `chat`.
    kind: &'static str,
    text: &'a str,
    /// `info`, `warning` or `error`.
    level: &'static str,
    with_sound: bool,
    id: String,
    /// Unix ms.
    sent_at: i64,
}

/// A notification type, as plugNmeet names or numbers it; `None` for another.
fn level(kind: Option<&str>) -> Option<&'static str> {
    match kind.unwrap_or("0") {
        "NATS_SYSTEM_NOTIFICATION_INFO" | "0" => Some("info"),
        "NATS_SYSTEM_NOTIFICATION_WARNING" | "1" => Some("warning"),
        "NATS_SYSTEM_NOTIFICATION_ERROR" | "2" => Some("error"),
        _ => None,
    }
}

/// Handles `POST /auth/room/broadcastToRoom`.
pub async fn handle<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    let req: BroadcastReq = match parse_input(body) {
        Ok(r) => r,
        Err(e) => return bad_input(e),
    };
    if let Err(msg) = check_room_id(&req.room_id) {
        return invalid(msg);
    }
    let to_user = req.to_user_id.as_deref().filter(|u| !u.is_empty());
    if to_user.is_some_and(|u| u.len() > MAX_ID_LEN || !is_plain_id(u)) {
        return invalid("to_user_id should only contain letters, digits -_");
    }
    let (kind, text, level, with_sound) = match (&req.chat_msg, &req.notification_msg) {
        (Some(chat), None) => ("chat", chat.message.as_str(), "info", false),
        (None, Some(n)) => match level(n.kind.as_deref()) {
            Some(level) => ("notification", n.text.as_str(), level, n.with_sound),
            None => return invalid("notification_msg.type: not a notification type"),
        },
        _ => return invalid("exactly one of chat_msg and notification_msg is required"),
    };
    if text.is_empty() {
        return invalid("the message text is required");
    }
    if text.len() > MAX_TEXT_BYTES {
        return invalid(format!("the message text: at most {MAX_TEXT_BYTES} bytes"));
    }
    let room = match db::latest_room(&edge.store, &req.room_id).await {
        Ok(Some(room)) if room.is_running => room,
        Ok(Some(_)) => {
            return EdgeResponse::common(
                200,
                Common::fail(StatusCode::RoomNotActive, "room is not active"),
            )
        }
        Ok(None) => {
            return EdgeResponse::common(
                200,
                Common::fail(StatusCode::RoomNotFound, "room not found"),
            )
        }
        Err(e) => return internal(e),
    };
    let no_one = |msg: &str| EdgeResponse::common(200, Common::fail(StatusCode::UserNotFound, msg));
    let nobody_online = || {
        if req.only_to_admins {
            no_one("no online user found")
        } else {
            // Nobody to tell: plugNmeet answers success then too.
            EdgeResponse::common(200, Common::ok("success"))
        }
    };
    let Some(region) = edge.media_region(&room) else {
        return nobody_online();
    };
    let api = edge.livekit(region);
    let unreachable = |e: crate::livekit::LiveKitError| {
        tracing::warn!(room_id = %room.room_id, error = %e, "broadcastToRoom: LiveKit failed");
        EdgeResponse::common(
            200,
            Common::fail(StatusCode::InternalServerError, "media server unreachable"),
        )
    };
    // Who is in first: LiveKit's SendData to a room it does not have waits for a node that
    // never answers, where its listing says at once that nobody is there.
    let participants = match api.list_participants(&room.livekit_room).await {
        Ok(participants) => participants,
        Err(e) => return unreachable(e),
    };
    let online: Vec<&str> = participants
        .iter()
        .filter(|p| p.state == "ACTIVE")
        .map(|p| p.identity.as_str())
        .collect();
    if online.is_empty() {
        return nobody_online();
    }
    let mut to: Vec<String> = Vec::new();
    if req.only_to_admins {
        match db::users_among(&edge.store, &room.sid, &online, Among::Moderators).await {
            Ok(admins) if admins.is_empty() => return no_one("no online admin user found"),
            Ok(admins) => to = admins,
            Err(e) => return internal(e),
        }
    }
    if let Some(user) = to_user {
        if !to.iter().any(|u| u == user) {
            to.push(user.to_owned());
        }
    }
    let notice = Notice {
        kind,
        text,
        level,
        with_sound,
        id: crate::new_id(),
        sent_at: edge.clock.now_ms(),
    };
    let data = match serde_json::to_vec(&notice) {
        Ok(data) => data,
        Err(e) => {
            tracing::error!(error = %e, "broadcastToRoom: notice not serialized");
            return EdgeResponse::common(
                200,
                Common::fail(StatusCode::InternalServerError, "internal server error"),
            );
        }
    };
    let to: Vec<&str> = to.iter().map(String::as_str).collect();
    match api
        .send_data(&room.livekit_room, &data, &to, NOTICE_TOPIC)
        .await
    {
        Ok(()) => EdgeResponse::common(200, Common::ok("success")),
        Err(e) => unreachable(e),
    }
}
