//! `room/isRoomActive`, `room/getActiveRoomInfo` and `room/getActiveRoomsInfo`: what runs now,
//! with the participants LiveKit reports for each room's region.

use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;

use super::{internal, room_id_request, ActiveRoomInfo};
use crate::db::{self, RoomRow};
use crate::exchange::EdgeResponse;
use crate::livekit::{LiveKitApi, LiveKitError, ParticipantInfo};
use crate::platform::{Clock, HttpClient, Store};
use crate::wire::{Common, StatusCode};
use crate::Edge;

/// `getActiveRoomsInfo` lists at most this many rooms per call.
const MAX_ACTIVE_ROOMS: i64 = 500;
/// LiveKit calls `getActiveRoomsInfo` has in flight at once. Workers allow six open outbound
/// connections per request and queue the rest; on Spin and the local host it keeps one call
/// from opening hundreds of connections to the media servers at once.
const CONCURRENT_LISTINGS: usize = 6;

#[derive(Serialize)]
struct IsRoomActiveRes {
    is_active: bool,
}

/// `ActiveRoomWithParticipant`.
#[derive(Serialize)]
struct RoomWithParticipants {
    room_info: ActiveRoomInfo,
    participants_info: Vec<ParticipantInfo>,
}

#[derive(Serialize)]
struct GetActiveRoomInfoRes {
    room: Option<RoomWithParticipants>,
}

#[derive(Serialize)]
struct GetActiveRoomsInfoRes {
    rooms: Vec<RoomWithParticipants>,
}

/// Handles `POST /auth/room/isRoomActive`. An inactive room is still `status:true`.
pub async fn is_room_active<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    let room_id = match room_id_request(body) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let (common, is_active) = match db::latest_room(&edge.store, &room_id).await {
        Ok(Some(room)) if room.is_running => (Common::ok("room is active"), true),
        Ok(Some(_)) => (
            Common {
                status: true,
                msg: "room is not active".into(),
                status_code: StatusCode::RoomNotActive,
            },
            false,
        ),
        Ok(None) => (
            Common {
                status: true,
                msg: "room not found".into(),
                status_code: StatusCode::RoomNotFound,
            },
            false,
        ),
        Err(e) => return internal(e),
    };
    EdgeResponse::reply(common, IsRoomActiveRes { is_active })
}

/// Handles `POST /auth/room/getActiveRoomInfo`.
pub async fn get_active_room_info<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    let room_id = match room_id_request(body) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let room = match db::running_room(&edge.store, &room_id).await {
        Ok(Some(room)) => room,
        Ok(None) => {
            return EdgeResponse::reply(
                Common::fail(StatusCode::RoomNotActive, "room is not active"),
                GetActiveRoomInfoRes { room: None },
            )
        }
        Err(e) => return internal(e),
    };
    match with_participants(edge, &room).await {
        Ok(room) => EdgeResponse::reply(
            Common::ok("success"),
            GetActiveRoomInfoRes { room: Some(room) },
        ),
        Err(e) => media_unreachable(&room, e),
    }
}

/// Handles `POST /auth/room/getActiveRoomsInfo`.
pub async fn get_active_rooms_info<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
) -> EdgeResponse {
    let rooms = match db::running_rooms(&edge.store, MAX_ACTIVE_ROOMS).await {
        Ok(rooms) => rooms,
        Err(e) => return internal(e),
    };
    if rooms.is_empty() {
        return EdgeResponse::reply(
            Common::fail(StatusCode::NotFound, "no active room found"),
            GetActiveRoomsInfoRes { rooms: Vec::new() },
        );
    }
    // In order, a few at a time; the first room whose media server does not answer ends it.
    let listed = futures_util::stream::iter(rooms.iter())
        .map(|room| async move {
            with_participants(edge, room)
                .await
                .map_err(|e| media_unreachable(room, e))
        })
        .buffered(CONCURRENT_LISTINGS)
        .try_collect::<Vec<_>>()
        .await;
    match listed {
        Ok(rooms) => EdgeResponse::reply(Common::ok("success"), GetActiveRoomsInfoRes { rooms }),
        Err(unreachable) => unreachable,
    }
}

async fn with_participants<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    room: &RoomRow,
) -> Result<RoomWithParticipants, LiveKitError> {
    // A room nobody has joined yet is not on any media server.
    let region = room.region.as_deref().and_then(|id| edge.config.region(id));
    let participants_info = match region {
        Some(region) => {
            let api = LiveKitApi::new(
                &edge.http,
                region,
                u64::try_from(edge.now_secs()).unwrap_or(0),
            );
            api.list_participants(&room.room_id).await?
        }
        None => Vec::new(),
    };
    Ok(RoomWithParticipants {
        room_info: ActiveRoomInfo::from(room),
        participants_info,
    })
}

fn media_unreachable(room: &RoomRow, e: LiveKitError) -> EdgeResponse {
    tracing::warn!(room_id = %room.room_id, region = ?room.region, error = %e, "listing participants failed");
    EdgeResponse::common(
        200,
        Common::fail(
            StatusCode::InternalServerError,
            format!("the media server of room {} did not answer", room.room_id),
        ),
    )
}
