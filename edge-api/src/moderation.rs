//! A moderator keeping order in the meeting, from the page (plugNmeet's `/api/*` calls of the
//! same names, in JSON):
//!
//! - `POST /api/removeParticipant` `{"user_id": "...", "block_user": false}`: LiveKit
//!   disconnects the user. With `block_user` the user is also blocked from this session first
//!   (so a reconnect racing the removal is refused): no session, no token renewal and no new join
//!   token for them (`USER_BLOCKED`), and a LiveKit join with a LiveKit token they still hold is
//!   undone as soon as the region's sidecar reports it (see [`crate::lifecycle`]). A user who is
//!   not in the meeting can still be blocked. Nobody removes themselves.
//! - `POST /api/muteUnmuteTrack` `{"user_id": "...", "track_sid": "", "muted": true}`: mutes the
//!   user's microphone (or the track named), or with `user_id` `"all"` and no `track_sid`
//!   every microphone but the moderator's own, at most [`MUTES_PER_CALL`] a call (`left` says
//!   how many remain). Only its publisher may unmute a track: `muted` false (or absent, which
//!   protojson reads as false) is refused, as LiveKit refuses a remote unmute unless rooms
//!   allow one (plugNmeet does not allow it either, for privacy).
//!
//! Both take a moderator's join token in `Authorization`, like `/api/endRoom`; others get 403
//! and change nothing. Only visible users the session knows (getJoinToken issued them a token)
//! are acted on: hidden users (a recorder's bot, an observer) and LiveKit participants that
//! are not users (SIP, ingress, agents) are out of a moderator's reach.
//!
//! The moderator's own LiveKit token carries LiveKit's `roomAdmin`, as plugNmeet's does, and
//! LiveKit would take the same calls from it directly; the edge's rules bind the page, and a
//! demoted or blocked moderator keeps LiveKit's rights until that token expires.

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use crate::db;
use crate::exchange::{EdgeRequest, EdgeResponse};
use crate::livekit::{self, LiveKitError, TrackInfo};
use crate::platform::{Clock, HttpClient, Store};
use crate::rooms::{check_named_user, invalid, is_plain_id};
use crate::sessions::{moderator_request, store_failure, Authorized};
use crate::wire::{Common, StatusCode};
use crate::Edge;

/// The `user_id` that mutes every microphone but the moderator's, as in plugNmeet.
const EVERYONE: &str = "all";
/// Most tracks one mute-everyone call mutes (each is a LiveKit call, sent side by side; with
/// the listing, a call stays well inside a Worker's 50 subrequests).
pub const MUTES_PER_CALL: usize = 24;
/// Longest LiveKit track sid taken (LiveKit's are `TR_` and a dozen characters).
const MAX_TRACK_SID_LEN: usize = 64;
/// LiveKit's name for a microphone track's source.
const MICROPHONE: &str = "MICROPHONE";

#[derive(Deserialize)]
struct RemoveReq {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    block_user: bool,
}

#[derive(Serialize)]
struct RemovedRes {
    /// LiveKit disconnected the user (false: they were not in the meeting).
    removed: bool,
    /// The user is blocked from this session.
    blocked: bool,
}

#[derive(Deserialize)]
struct MuteReq {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    track_sid: String,
    #[serde(default)]
    muted: bool,
}

#[derive(Serialize)]
struct MutedRes {
    /// Tracks muted by this call (a track already muted is not counted).
    muted: usize,
    /// Open microphones this call did not reach (mute everyone only; call again).
    left: usize,
}

fn refused(code: StatusCode, msg: &str) -> EdgeResponse {
    EdgeResponse::common(200, Common::fail(code, msg))
}

pub(crate) fn user_not_found() -> EdgeResponse {
    refused(StatusCode::UserNotFound, "notifications.user-not-found")
}

fn user_not_active() -> EdgeResponse {
    refused(StatusCode::UserNotActive, "notifications.user-not-active")
}

/// LiveKit could not be asked: 503, so the page says to try again.
pub(crate) fn media_unreachable(room: &db::RoomRow, e: &LiveKitError) -> EdgeResponse {
    tracing::warn!(room_id = %room.room_id, sid = %room.sid, error = %e, "a moderator's call to LiveKit failed");
    EdgeResponse::common(
        503,
        Common::fail(
            StatusCode::InternalServerError,
            "notifications.media-server-unreachable",
        ),
    )
}

/// Handles `POST /api/removeParticipant`.
pub async fn remove<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    let (authorized, req): (_, RemoveReq) = match moderator_request(edge, request).await {
        Ok(call) => call,
        Err(response) => return response,
    };
    if let Err(response) = check_named_user(&req.user_id) {
        return response;
    }
    if req.user_id == authorized.claims.user_id {
        return invalid("notifications.cannot-remove-yourself");
    }
    let room = &authorized.room;
    // The block lands before LiveKit is asked, so a reconnect racing the removal is refused.
    let known = if req.block_user {
        db::block_user(&edge.store, &room.sid, &req.user_id).await
    } else {
        db::room_user(&edge.store, &room.sid, &req.user_id)
            .await
            .map(|user| user.is_some_and(|u| !u.is_hidden))
    };
    match known {
        Ok(true) => {}
        Ok(false) => return user_not_found(),
        Err(e) => return store_failure(e),
    }
    let removed = match edge.media_region(room) {
        None => false,
        Some(region) => {
            let api = edge.livekit(region);
            let removal =
                api.remove_participant(&room.livekit_room, &req.user_id, livekit::CALL_TIMEOUT);
            match removal.await {
                Ok(removed) => removed,
                Err(e) => return media_unreachable(room, &e),
            }
        }
    };
    if !removed && !req.block_user {
        return user_not_active();
    }
    tracing::info!(room_id = %room.room_id, sid = %room.sid, user_id = %req.user_id, removed, blocked = req.block_user, "a moderator removed a participant");
    EdgeResponse::reply(
        Common::ok("success"),
        RemovedRes {
            removed,
            blocked: req.block_user,
        },
    )
}

/// Handles `POST /api/muteUnmuteTrack`.
pub async fn mute<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    let (authorized, req): (_, MuteReq) = match moderator_request(edge, request).await {
        Ok(call) => call,
        Err(response) => return response,
    };
    if !req.muted {
        return invalid("notifications.remote-unmute-not-allowed");
    }
    if let Err(response) = check_named_user(&req.user_id) {
        return response;
    }
    if req.track_sid.len() > MAX_TRACK_SID_LEN
        || !(req.track_sid.is_empty() || is_plain_id(&req.track_sid))
    {
        return invalid("track_sid: not a LiveKit track id");
    }
    // `all` with a track named is a user called `all`.
    if req.user_id == EVERYONE && req.track_sid.is_empty() {
        return mute_everyone(edge, &authorized).await;
    }
    let room = &authorized.room;
    match db::room_user(&edge.store, &room.sid, &req.user_id).await {
        Ok(Some(user)) if !user.is_hidden => {}
        Ok(_) => return user_not_found(),
        Err(e) => return store_failure(e),
    }
    let Some(region) = edge.media_region(room) else {
        return user_not_active();
    };
    let api = edge.livekit(region);
    let participant = match api.participant(&room.livekit_room, &req.user_id).await {
        Ok(Some(participant)) => participant,
        Ok(None) => return user_not_active(),
        Err(e) => return media_unreachable(room, &e),
    };
    let chosen: Vec<&TrackInfo> = participant
        .tracks
        .iter()
        .filter(|t| {
            if req.track_sid.is_empty() {
                t.source == MICROPHONE
            } else {
                t.sid == req.track_sid
            }
        })
        .collect();
    if chosen.is_empty() {
        return refused(StatusCode::NotFound, "notifications.no-track-to-mute");
    }
    let mut muted = 0;
    for track in chosen.into_iter().filter(|t| !t.muted).take(MUTES_PER_CALL) {
        if let Err(e) = api
            .mute_published_track(&room.livekit_room, &req.user_id, &track.sid)
            .await
        {
            return media_unreachable(room, &e);
        }
        muted += 1;
    }
    tracing::info!(room_id = %room.room_id, sid = %room.sid, user_id = %req.user_id, muted, "a moderator muted a participant");
    EdgeResponse::reply(Common::ok("success"), MutedRes { muted, left: 0 })
}

/// Mutes every open microphone of the room's visible users but the moderator's own,
/// [`MUTES_PER_CALL`] at most, side by side.
async fn mute_everyone<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    authorized: &Authorized,
) -> EdgeResponse {
    let room = &authorized.room;
    let Some(region) = edge.media_region(room) else {
        return EdgeResponse::reply(Common::ok("success"), MutedRes { muted: 0, left: 0 });
    };
    let api = edge.livekit(region);
    let participants = match api.list_participants(&room.livekit_room).await {
        Ok(participants) => participants,
        Err(e) => return media_unreachable(room, &e),
    };
    let others: Vec<&str> = participants
        .iter()
        .filter(|p| p.identity != authorized.claims.user_id && p.state == "ACTIVE")
        .map(|p| p.identity.as_str())
        .collect();
    let users =
        match db::users_among(&edge.store, &room.sid, &others, db::Among::VisibleUsers).await {
            Ok(users) => users,
            Err(e) => return store_failure(e),
        };
    let open: Vec<(&str, &str)> = participants
        .iter()
        .filter(|p| p.state == "ACTIVE" && users.contains(&p.identity))
        .flat_map(|p| {
            p.tracks
                .iter()
                .filter(|t| t.source == MICROPHONE && !t.muted)
                .map(|t| (p.identity.as_str(), t.sid.as_str()))
        })
        .collect();
    let calls = open
        .iter()
        .take(MUTES_PER_CALL)
        .map(|(identity, sid)| api.mute_published_track(&room.livekit_room, identity, sid));
    let outcomes = join_all(calls).await;
    let muted = outcomes.iter().filter(|o| o.is_ok()).count();
    if let Some(e) = outcomes.iter().find_map(|o| o.as_ref().err()) {
        tracing::warn!(room_id = %room.room_id, sid = %room.sid, error = %e, failed = outcomes.len() - muted, "some microphones could not be muted");
        if muted == 0 {
            return media_unreachable(room, e);
        }
    }
    tracing::info!(room_id = %room.room_id, sid = %room.sid, muted, "a moderator muted everyone");
    EdgeResponse::reply(
        Common::ok("success"),
        MutedRes {
            muted,
            left: open.len() - muted,
        },
    )
}
