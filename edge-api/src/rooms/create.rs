//! `room/create`: stores a room session (idempotent while it runs). No media server is touched:
//! the room is placed in a region when it is first joined.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{bad_input, check_room_id, internal, invalid, ActiveRoomInfo};
use crate::db::{self, NewRoom, RoomRow};
use crate::exchange::EdgeResponse;
use crate::lifecycle;
use crate::metadata::{self, MetadataLimits};
use crate::platform::{Clock, HttpClient, Store};
use crate::wire::{lenient_int, parse_input, Common};
use crate::Edge;

/// An `empty_timeout` below this many seconds becomes [`DEFAULT_EMPTY_TIMEOUT`].
const MIN_EMPTY_TIMEOUT: u32 = 120;
/// plugNmeet's default empty timeout: 30 minutes.
const DEFAULT_EMPTY_TIMEOUT: u32 = 1800;

/// plugNmeet's `CreateRoomReq`.
#[derive(Deserialize, Default)]
pub(crate) struct CreateRoomReq {
    #[serde(default)]
    pub(crate) room_id: String,
    #[serde(default, deserialize_with = "lenient_int")]
    pub(crate) empty_timeout: Option<u32>,
    #[serde(default, deserialize_with = "lenient_int")]
    pub(crate) max_participants: Option<u32>,
    #[serde(default)]
    pub(crate) metadata: Option<Value>,
    /// edgemeet's extension: the region to place the room in.
    #[serde(default)]
    pub(crate) region: Option<String>,
}

#[derive(Serialize)]
struct CreateRoomRes {
    room_info: ActiveRoomInfo,
}

/// Handles `POST /auth/room/create`.
pub async fn handle<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    let req: CreateRoomReq = match parse_input(body) {
        Ok(r) => r,
        Err(e) => return bad_input(e),
    };
    match create_session(edge, req).await {
        Ok((row, _)) => EdgeResponse::reply(
            Common::ok("success"),
            CreateRoomRes {
                room_info: ActiveRoomInfo::from(&row),
            },
        ),
        Err(response) => response,
    }
}

/// Creates the session `req` asks for, or finds the one running for its room (then `false`);
/// `Err` is the answer refusing it.
pub(crate) async fn create_session<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    req: CreateRoomReq,
) -> Result<(RoomRow, bool), EdgeResponse> {
    check_room_id(&req.room_id).map_err(invalid)?;
    let Some(metadata) = req.metadata else {
        return Err(invalid("metadata: required"));
    };
    if let Some(region) = req.region.as_deref().filter(|r| !r.is_empty()) {
        if edge.config.region(region).is_none() {
            return Err(invalid(format!(
                "region: `{region}` is not a configured region"
            )));
        }
    }
    let limits = MetadataLimits {
        max_room_duration_minutes: edge.config.max_room_duration_minutes,
    };
    let metadata = metadata::from_input(metadata, limits, crate::new_id).map_err(invalid)?;
    let metadata_json = match serde_json::to_string(&metadata) {
        Ok(s) if s.len() > metadata::MAX_STORED_BYTES => {
            return Err(invalid(format!(
                "metadata: larger than {} bytes in all",
                metadata::MAX_STORED_BYTES
            )))
        }
        Ok(s) => s,
        Err(e) => return Err(invalid(format!("metadata: {e}"))),
    };
    let empty_timeout = match req.empty_timeout {
        Some(t) if t >= MIN_EMPTY_TIMEOUT => t,
        _ => DEFAULT_EMPTY_TIMEOUT,
    };
    let cap = edge.config.max_participants_cap;
    let max_participants = match req.max_participants.unwrap_or(0) {
        n if cap > 0 && (n == 0 || n > cap) => cap,
        n => n,
    };
    let sid = crate::new_id();
    let room = NewRoom {
        room_id: &req.room_id,
        sid: &sid,
        room_title: &metadata.room_title,
        webhook_url: metadata.webhook_url.as_deref().unwrap_or(""),
        metadata: &metadata_json,
        max_participants: i64::from(max_participants),
        empty_timeout: i64::from(empty_timeout),
        region_hint: req.region.as_deref().filter(|r| !r.is_empty()),
        created_at: edge.now_secs(),
    };
    let (row, created) = db::create_room(&edge.store, &room)
        .await
        .map_err(internal)?;
    // Every create (a repeat too, so one whose capture failed is mended by the client's
    // retry): the session's webhook URLs, and with them its room_created.
    crate::webhooks::capture(edge, &row.sid, &row.webhook_url, row.created_at)
        .await
        .map_err(internal)?;
    if created {
        tracing::info!(room_id = %row.room_id, sid = %row.sid, "room created");
        forget_expired_past_rooms(edge).await;
        lifecycle::retry_due_deletes(edge).await;
        lifecycle::end_due_without_heartbeats(edge).await;
    }
    Ok((row, created))
}

/// Past rooms forgotten per room created at most: a create stays cheap, and as every session
/// was created once, this keeps up with sessions ending.
const FORGET_PER_CREATE: i64 = 20;

/// Deletes a few of the past rooms older than the retention (when one is configured). A
/// failure only delays that to the next create.
async fn forget_expired_past_rooms<S: Store, H: HttpClient, C: Clock>(edge: &Edge<S, H, C>) {
    let days = edge.config.past_rooms_retention_days;
    if days <= 0 {
        return;
    }
    let before = edge.now_secs().saturating_sub(days.saturating_mul(86_400));
    match db::forget_past_rooms(&edge.store, before, FORGET_PER_CREATE).await {
        Ok(0) => {}
        Ok(forgotten) => tracing::info!(forgotten, days, "past rooms past their retention deleted"),
        Err(e) => tracing::warn!(error = %e, "could not delete expired past rooms"),
    }
}
