//! `room/isRoomActive`, `room/getActiveRoomInfo` and `room/getActiveRoomsInfo`: what runs now,
//! with the participants LiveKit reports for each room's region.

use std::cell::RefCell;
use std::collections::HashSet;

use futures_util::StreamExt as _;
use serde::Serialize;

use super::{internal, room_id_request, ActiveRoomInfo};
use crate::db::{self, recordings, RoomRow};
use crate::exchange::EdgeResponse;
use crate::livekit::{LiveKitError, ParticipantInfo};
use crate::platform::{Clock, HttpClient, Store, StoreError};
use crate::wire::{Common, StatusCode};
use crate::Edge;

/// `getActiveRoomsInfo` lists at most this many rooms per call (each may be a LiveKit call).
const MAX_ACTIVE_ROOMS: i64 = 500;
/// Most room metadata (stored JSON bytes) one getActiveRoomsInfo answer carries: the answer
/// holds it about three times over (rows, copies, escaped output), within a Worker's memory.
const LISTED_METADATA_BUDGET: usize = 4 * 1024 * 1024;
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
pub(crate) struct RoomWithParticipants {
    pub(crate) room_info: ActiveRoomInfo,
    pub(crate) participants_info: Vec<ParticipantInfo>,
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
    match active_room(edge, &room_id).await {
        Ok(Some(room)) => EdgeResponse::reply(
            Common::ok("success"),
            GetActiveRoomInfoRes { room: Some(room) },
        ),
        Ok(None) => EdgeResponse::reply(
            Common::fail(StatusCode::RoomNotActive, "room is not active"),
            GetActiveRoomInfoRes { room: None },
        ),
        Err(response) => response,
    }
}

/// Room `room_id`'s running session with the participants LiveKit lists, `None` when none
/// runs; `Err` is the answer to send (a store failure, a media server that did not answer).
pub(crate) async fn active_room<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    room_id: &str,
) -> Result<Option<RoomWithParticipants>, EdgeResponse> {
    let Some(room) = db::running_room(&edge.store, room_id)
        .await
        .map_err(internal)?
    else {
        return Ok(None);
    };
    let mut listed = [with_participants(edge, &room)
        .await
        .map_err(|e| media_unreachable(&room, e))?];
    mark_running_jobs(edge, &mut listed)
        .await
        .map_err(internal)?;
    let [room] = listed;
    Ok(Some(room))
}

/// Handles `POST /auth/room/getActiveRoomsInfo`: every running room (the first
/// [`MAX_ACTIVE_ROOMS`]) with its participants. A media server that does not answer leaves out
/// only the participants of its own rooms, and is not asked again in this call; `msg` says what
/// was left out.
pub async fn get_active_rooms_info<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
) -> EdgeResponse {
    match active_rooms(edge).await {
        Ok((rooms, _)) if rooms.is_empty() => EdgeResponse::reply(
            Common::fail(StatusCode::NotFound, "no active room found"),
            GetActiveRoomsInfoRes { rooms },
        ),
        Ok((rooms, msg)) => EdgeResponse::reply(Common::ok(msg), GetActiveRoomsInfoRes { rooms }),
        Err(response) => response,
    }
}

/// Every running room (the first [`MAX_ACTIVE_ROOMS`]) with its participants, and what the
/// answer should say of what was left out (`success` when nothing was); `Err` is the answer to
/// send.
pub(crate) async fn active_rooms<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
) -> Result<(Vec<RoomWithParticipants>, String), EdgeResponse> {
    let budget = i64::try_from(LISTED_METADATA_BUDGET).unwrap_or(i64::MAX);
    let mut rooms = db::running_rooms(&edge.store, MAX_ACTIVE_ROOMS + 1, budget)
        .await
        .map_err(internal)?;
    if rooms.is_empty() {
        return Ok((Vec::new(), String::new()));
    }
    let listed_rooms = rooms_within_budget(&rooms);
    let truncated = rooms.len() > listed_rooms;
    rooms.truncate(listed_rooms);
    // Regions whose media server did not answer in this call: their other rooms are not asked.
    let silent_regions: RefCell<HashSet<&str>> = RefCell::new(HashSet::new());
    let listed: Vec<(RoomWithParticipants, bool)> = futures_util::stream::iter(rooms.iter())
        .map(|room| {
            let silent_regions = &silent_regions;
            async move {
                let region = room.region.as_deref().unwrap_or("");
                if silent_regions.borrow().contains(region) {
                    return (without_participants(room), false);
                }
                match with_participants(edge, room).await {
                    Ok(listed) => (listed, true),
                    Err(e) => {
                        tracing::warn!(room_id = %room.room_id, region, error = %e, "listing participants failed; leaving them out");
                        silent_regions.borrow_mut().insert(region);
                        (without_participants(room), false)
                    }
                }
            }
        })
        .buffered(CONCURRENT_LISTINGS)
        .collect()
        .await;
    let left_out = listed.iter().filter(|(_, complete)| !complete).count();
    let mut msg = String::from("success");
    if truncated {
        msg.push_str(&format!("; the first {listed_rooms} active rooms only"));
    }
    if left_out > 0 {
        msg.push_str(&format!(
            "; participants left out of {left_out} room(s) whose media server did not answer"
        ));
    }
    let mut rooms: Vec<RoomWithParticipants> = listed.into_iter().map(|(room, _)| room).collect();
    mark_running_jobs(edge, &mut rooms)
        .await
        .map_err(internal)?;
    Ok((rooms, msg))
}

/// How many of `rooms` (in order) one listing carries: at most [`MAX_ACTIVE_ROOMS`], and no
/// more metadata in all than [`LISTED_METADATA_BUDGET`] (always at least one room).
fn rooms_within_budget(rooms: &[RoomRow]) -> usize {
    let mut metadata_bytes = 0;
    let within = rooms.iter().take_while(|room| {
        metadata_bytes += room.metadata.len();
        metadata_bytes <= LISTED_METADATA_BUDGET
    });
    within
        .count()
        .clamp(1, MAX_ACTIVE_ROOMS as usize)
        .min(rooms.len())
}

/// Sets `is_recording` and `is_active_rtmp` of rooms whose recording or broadcast a live
/// recorder node reports ACTIVE.
async fn mark_running_jobs<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    rooms: &mut [RoomWithParticipants],
) -> Result<(), StoreError> {
    let fleet = &edge.config.recorders;
    if fleet.nodes.is_empty() {
        return Ok(());
    }
    let sids: Vec<&str> = rooms.iter().map(|r| r.room_info.sid.as_str()).collect();
    let alive_since = crate::recording::alive_since_ms(fleet.timeout_secs, edge.clock.now_ms());
    let active = recordings::active_kinds(&edge.store, &sids, alive_since).await?;
    for room in rooms.iter_mut() {
        for (sid, kind) in &active {
            if *sid == room.room_info.sid {
                match kind.as_str() {
                    "recording" => room.room_info.is_recording = 1,
                    "rtmp" => room.room_info.is_active_rtmp = 1,
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

fn without_participants(room: &RoomRow) -> RoomWithParticipants {
    RoomWithParticipants {
        room_info: ActiveRoomInfo::from(room),
        participants_info: Vec::new(),
    }
}

async fn with_participants<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    room: &RoomRow,
) -> Result<RoomWithParticipants, LiveKitError> {
    // A room nobody has joined yet is not on any media server.
    let region = edge.media_region(room);
    let participants_info = match region {
        Some(region) => {
            edge.livekit(region)
                .list_participants(&room.livekit_room)
                .await?
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
