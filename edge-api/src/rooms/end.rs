//! `room/endRoom`: ends the session at once and deletes the LiveKit room in its region, which
//! disconnects everyone. Ending an ended room succeeds again (and retries the LiveKit delete).

use super::{internal, room_id_request};
use crate::db::{self, RoomRow};
use crate::exchange::EdgeResponse;
use crate::lifecycle;
use crate::platform::{Clock, HttpClient, Store, StoreError};
use crate::wire::{Common, StatusCode};
use crate::Edge;

/// Handles `POST /auth/room/endRoom`.
pub async fn handle<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    let room_id = match room_id_request(body) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let room = match db::latest_room(&edge.store, &room_id).await {
        Ok(Some(room)) => room,
        Ok(None) => {
            return EdgeResponse::common(
                200,
                Common::fail(StatusCode::RoomNotFound, "room not found"),
            )
        }
        Err(e) => return internal(e),
    };
    if let Err(e) = end_session(edge, &room).await {
        return internal(e);
    }
    lifecycle::retry_due_deletes(edge).await;
    EdgeResponse::common(200, Common::ok("success"))
}

/// Ends `room`'s session (if it is still running) and deletes its LiveKit room. The session is
/// over in the edge's state whatever LiveKit says: no new token is minted for it. A failed
/// delete is retried later (see [`lifecycle::delete_livekit_room`]); ending again also
/// retries it.
pub async fn end_session<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    room: &RoomRow,
) -> Result<(), StoreError> {
    let now = edge.now_secs();
    if room.is_running && db::end_room(&edge.store, &room.sid, now).await? {
        tracing::info!(room_id = %room.room_id, sid = %room.sid, "room ended");
    }
    // Recordings are asked to stop before the room goes, so each can finish its file.
    crate::recording::dispatch::stop_jobs_of_sessions(edge, &[room.sid.as_str()]).await;
    // The region as it is now, not as `room` was read: a join may have pinned the session in
    // between, and its LiveKit room must go too. No pin lands once the session has ended.
    let pinned = db::session_region(&edge.store, &room.sid).await?;
    if let Some(region) = pinned.as_deref().and_then(|id| edge.config.region(id)) {
        lifecycle::delete_livekit_room(edge, region, &room.livekit_room).await?;
    }
    Ok(())
}
