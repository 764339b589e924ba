//! Raised hands: `POST /api/raiseHand` `{"raised": true}` raises the caller's own hand, and
//! `false` lowers it; a moderator lowers another's with `{"user_id": "...", "raised": false}`.
//! Nobody raises another's hand, and a hidden user has none.
//!
//! The hand is plugNmeet's `raised_hand` in the user's metadata: stored (with a new
//! `metadata_id`), then given to LiveKit (`UpdateParticipant`, the metadata only), which tells
//! every page in the meeting at once; a page that joins later reads it with the participant. A
//! user not in the meeting keeps the stored hand for when they come back; a later join token
//! from the backend starts them with their hand down, as a new join in plugNmeet does.

use serde::{Deserialize, Serialize};

use crate::exchange::{EdgeRequest, EdgeResponse};
use crate::livekit;
use crate::moderation::{media_unreachable, user_not_found};
use crate::platform::{Clock, HttpClient, Store};
use crate::rooms::{check_named_user, invalid};
use crate::sessions::{not_a_moderator, page_request, store_failure, Caller, MODERATORS_ONLY};
use crate::wire::Common;
use crate::Edge;

#[derive(Deserialize)]
struct HandReq {
    /// Whose hand: the caller's when empty.
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    raised: bool,
}

#[derive(Serialize)]
struct HandRes {
    /// The hand as it is now.
    raised: bool,
}

/// Handles `POST /api/raiseHand`.
pub async fn raise<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    let (authorized, req): (_, HandReq) = match page_request(edge, request, Caller::User).await {
        Ok(call) => call,
        Err(response) => return response,
    };
    let me = authorized.claims.user_id.as_str();
    let whose = if req.user_id.is_empty() || req.user_id == me {
        if authorized.is_hidden() {
            return invalid("notifications.hidden-user-has-no-hand");
        }
        me
    } else {
        if let Err(response) = check_named_user(&req.user_id) {
            return response;
        }
        if !authorized.is_admin() {
            return not_a_moderator(MODERATORS_ONLY);
        }
        if req.raised {
            return invalid("notifications.cannot-raise-others-hand");
        }
        req.user_id.as_str()
    };
    let room = &authorized.room;
    let metadata_id = crate::new_id();
    let stored =
        crate::db::set_raised_hand(&edge.store, &room.sid, whose, req.raised, &metadata_id).await;
    let metadata = match stored {
        Ok(Some(metadata)) => metadata,
        Ok(None) => return user_not_found(),
        Err(e) => return store_failure(e),
    };
    if let Some(region) = edge.media_region(room) {
        let api = edge.livekit(region);
        let update = api.update_participant(
            &room.livekit_room,
            whose,
            &metadata,
            None,
            livekit::CALL_TIMEOUT,
        );
        if let Err(e) = update.await {
            return media_unreachable(room, &e);
        }
    }
    tracing::info!(room_id = %room.room_id, sid = %room.sid, user_id = %whose, by = %me, raised = req.raised, "a hand changed");
    EdgeResponse::reply(Common::ok("success"), HandRes { raised: req.raised })
}
