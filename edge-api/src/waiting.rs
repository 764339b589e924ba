//! The waiting room, kept by the edge: in a room whose `waiting_room_features.is_active` is on,
//! getJoinToken marks users other than moderators `wait_for_approval`, and `POST /api/session`
//! answers them `waiting` with no region and no LiveKit token (see [`crate::sessions`]), so no
//! client can skip the wait. Their page asks again every few seconds. A moderator's page lists
//! them and lets them in or turns them away here:
//!
//! - `POST /api/waitingRoom/users`: who is waiting now, longest first (at most 200), and
//!   `total`, how many wait in all.
//! - `POST /api/waitingRoom/approveUsers` `{"user_id": "..."}` (plugNmeet's call; `"all"` lets
//!   in everyone waiting, those past the list's 200 too): the user's next session gets a LiveKit token.
//! - `POST /api/waitingRoom/rejectUsers` `{"user_id": "..."}`: the user is blocked from this
//!   session, as `USER_BLOCKED`.
//! - `POST /api/waitingRoom/updateMsg` `{"msg": "..."}` (plugNmeet's call): what waiting users
//!   read from now on (their page shows it at its next ask), at most [`MAX_MESSAGE_BYTES`] of
//!   plain text; `""` clears it.
//!
//! All four take a moderator's join token in `Authorization`, like `/api/endRoom`; others get
//! 403 and change nothing.

use serde::{Deserialize, Serialize};

use crate::db::{self, Waiting};
use crate::exchange::{EdgeRequest, EdgeResponse};
use crate::platform::{Clock, HttpClient, Store};
use crate::rooms::check_named_user;
use crate::sessions::{
    moderator_call, moderator_request, room_not_active, store_failure, Authorized,
    WAITING_SEEN_WITHIN_SECS,
};
use crate::wire::{int64_string, Common, StatusCode};
use crate::Edge;

/// Most waiting users one list returns.
const MAX_LISTED: i64 = 200;
/// The `user_id` that lets every waiting user in, as in plugNmeet.
const EVERYONE: &str = "all";
/// Longest waiting-room message a moderator may set (UTF-8 bytes): room for a few paragraphs,
/// and for JSON's escapes within a moderator's call's 4 KiB.
pub const MAX_MESSAGE_BYTES: usize = 2 * 1024;

/// A waiting user as the list shows them.
#[derive(Serialize)]
struct WaitingUserRes {
    user_id: String,
    name: String,
    /// Unix seconds, as a string (int64 on plugNmeet's wire).
    #[serde(serialize_with = "int64_string")]
    waiting_since: i64,
}

#[derive(Serialize)]
struct UsersRes {
    users: Vec<WaitingUserRes>,
    /// How many wait in all (more than `users` lists when over [`MAX_LISTED`]).
    total: i64,
}

#[derive(Serialize)]
struct ApprovedRes {
    /// The users let in by this call (none: they were not waiting, or already in).
    approved: Vec<String>,
}

#[derive(Deserialize)]
struct MessageReq {
    #[serde(default)]
    msg: String,
}

#[derive(Deserialize)]
struct UserReq {
    #[serde(default)]
    user_id: String,
}

/// The moderator behind a decision and the `user_id` it is about (checked like getJoinToken's
/// ids), or the answer that refuses it.
async fn decision<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> Result<(Authorized, String), EdgeResponse> {
    let (authorized, req): (_, UserReq) = moderator_request(edge, request).await?;
    check_named_user(&req.user_id)?;
    Ok((authorized, req.user_id))
}

/// Handles `POST /api/waitingRoom/users`.
pub async fn users<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    let authorized = match moderator_call(edge, request).await {
        Ok(authorized) => authorized,
        Err(response) => return response,
    };
    let seen_since = edge.now_secs().saturating_sub(WAITING_SEEN_WITHIN_SECS);
    match db::waiting_users(&edge.store, &authorized.room.sid, seen_since, MAX_LISTED).await {
        Ok((waiting, total)) => EdgeResponse::reply(
            Common::ok("success"),
            UsersRes {
                total,
                users: waiting
                    .into_iter()
                    .map(|w| WaitingUserRes {
                        user_id: w.user_id,
                        name: w.name,
                        waiting_since: w.since,
                    })
                    .collect(),
            },
        ),
        Err(e) => store_failure(e),
    }
}

/// Handles `POST /api/waitingRoom/approveUsers`.
pub async fn approve<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    let (authorized, user_id) = match decision(edge, request).await {
        Ok(decision) => decision,
        Err(response) => return response,
    };
    let who = if user_id == EVERYONE {
        Waiting::SeenSince(edge.now_secs().saturating_sub(WAITING_SEEN_WITHIN_SECS))
    } else {
        Waiting::User(&user_id)
    };
    let approved =
        match db::approve_waiting(&edge.store, &authorized.room.sid, who, &crate::new_id()).await {
            Ok(approved) => approved,
            Err(e) => return store_failure(e),
        };
    if approved.is_empty() && matches!(who, Waiting::User(_)) {
        return EdgeResponse::common(
            200,
            Common::fail(StatusCode::UserNotFound, "notifications.user-not-waiting"),
        );
    }
    tracing::info!(room_id = %authorized.room.room_id, approved = approved.len(), "waiting users let in");
    EdgeResponse::reply(Common::ok("success"), ApprovedRes { approved })
}

/// Handles `POST /api/waitingRoom/rejectUsers`.
pub async fn reject<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    let (authorized, user_id) = match decision(edge, request).await {
        Ok(decision) => decision,
        Err(response) => return response,
    };
    match db::reject_waiting(&edge.store, &authorized.room.sid, &user_id).await {
        Ok(true) => EdgeResponse::common(200, Common::ok("success")),
        Ok(false) => EdgeResponse::common(
            200,
            Common::fail(StatusCode::UserNotFound, "notifications.user-not-waiting"),
        ),
        Err(e) => store_failure(e),
    }
}

/// Handles `POST /api/waitingRoom/updateMsg`.
pub async fn update_message<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    let (authorized, req): (_, MessageReq) = match moderator_request(edge, request).await {
        Ok(call) => call,
        Err(response) => return response,
    };
    if req.msg.len() > MAX_MESSAGE_BYTES {
        return crate::rooms::invalid(format!("msg: at most {MAX_MESSAGE_BYTES} bytes"));
    }
    let room = &authorized.room;
    match db::set_waiting_room_message(&edge.store, &room.sid, &req.msg).await {
        Ok(true) => {
            tracing::info!(room_id = %room.room_id, sid = %room.sid, "a moderator changed the waiting room's message");
            EdgeResponse::common(200, Common::ok("success"))
        }
        Ok(false) => room_not_active(),
        Err(e) => store_failure(e),
    }
}
