//! Locks a moderator sets during a meeting: plugNmeet's `POST /api/updateLockSettings`, in
//! JSON, `{"user_id": "...", "service": "mic", "direction": "lock"}`.
//!
//! - `service` names the lock as plugNmeet does: `mic`, `webcam`, `screenShare`, `chat`,
//!   `sendChatMsg`, `chatFile`, `privateChat`, `whiteboard`, `sharedNotepad`, `reactions`;
//!   `direction` is `lock` or `unlock`. Anything else is refused (plugNmeet ignores an unknown
//!   service and reads any direction but `lock` as an unlock).
//! - `user_id` `"all"` locks every visible user of the session but the moderator who asks, and
//!   the room's default locks (`default_lock_settings` in its metadata), which users given a
//!   join token later start with. A single user must be a visible user of the session.
//!   Moderators are not locked (`notifications.cannot-lock-admin` for one), but for the
//!   whiteboard, as in plugNmeet.
//!
//! A user's locks are stored apart from their metadata (`db::locks`), so a later join token for
//! the same user keeps them. The microphone, camera and screen-sharing locks are enforced by
//! LiveKit: the edge gives each such user who is in the meeting the permission their session's
//! token would now grant (`UpdateParticipant`), and LiveKit unpublishes the tracks it no longer
//! allows; a lock lifted lets them publish again. Their LiveKit metadata gets the new
//! `lock_settings` too, which plugNmeet's clients read for the other locks. For everyone, at
//! most [`UPDATES_PER_CALL`] participants are updated a call, side by side, and `left` says how
//! many still need it (the page calls again).
//!
//! A user could still hold a LiveKit token minted before the lock: when LiveKit reports them
//! joining with it ([`crate::lifecycle`]), the edge narrows their permission again
//! ([`enforce_on_join`]).

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use crate::config::Region;
use crate::db::locks::{self as db, Lock, Locked, LockedUser};
use crate::db::RoomRow;
use crate::exchange::{EdgeRequest, EdgeResponse};
use crate::livekit::{self, LiveKitApi, ParticipantInfo, Permission};
use crate::moderation::{media_unreachable, user_not_found};
use crate::platform::{Clock, HttpClient, Store, StoreError};
use crate::rooms::{check_named_user, invalid};
use crate::sessions::{moderator_request, store_failure, JoinRules};
use crate::wire::{Common, StatusCode};
use crate::Edge;

/// The `user_id` that locks everyone (and the room's defaults), as in plugNmeet.
const EVERYONE: &str = "all";
/// Most participants one call updates in LiveKit (each a call, sent side by side; with the
/// listing and the store, a call stays well inside a Worker's 50 subrequests).
pub const UPDATES_PER_CALL: usize = 24;

/// plugNmeet's service names and the `LockSettings` field each sets.
const SERVICES: [(&str, &str); 10] = [
    ("mic", "lock_microphone"),
    ("webcam", "lock_webcam"),
    ("screenShare", "lock_screen_sharing"),
    ("chat", "lock_chat"),
    ("sendChatMsg", "lock_chat_send_message"),
    ("chatFile", "lock_chat_file_share"),
    ("privateChat", "lock_private_chat"),
    ("whiteboard", "lock_whiteboard"),
    ("sharedNotepad", "lock_shared_notepad"),
    ("reactions", "lock_reactions"),
];

#[derive(Deserialize)]
struct LockReq {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    direction: String,
}

#[derive(Serialize)]
struct LockRes {
    /// Participants in the meeting whose LiveKit permission and metadata this call changed.
    updated: usize,
    /// Participants this call did not reach (everyone only; call again).
    left: usize,
}

/// Handles `POST /api/updateLockSettings`.
pub async fn update<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    let (authorized, req): (_, LockReq) = match moderator_request(edge, request).await {
        Ok(call) => call,
        Err(response) => return response,
    };
    let Some(field) = SERVICES
        .iter()
        .find(|(service, _)| *service == req.service)
        .map(|(_, field)| *field)
    else {
        return invalid(
            "service: one of mic, webcam, screenShare, chat, sendChatMsg, chatFile, \
             privateChat, whiteboard, sharedNotepad, reactions",
        );
    };
    let locked = match req.direction.as_str() {
        "lock" => true,
        "unlock" => false,
        _ => return invalid("direction: lock or unlock"),
    };
    if let Err(response) = check_named_user(&req.user_id) {
        return response;
    }
    let moderator = authorized.claims.user_id.as_str();
    if req.user_id == moderator {
        return cannot_lock_moderator();
    }
    let room = &authorized.room;
    let lock = Lock { field, locked };
    let everyone = req.user_id == EVERYONE;
    if everyone {
        match db::lock_everyone(&edge.store, &room.sid, moderator, lock).await {
            Ok(true) => {}
            Ok(false) => {
                return EdgeResponse::common(
                    401,
                    Common::fail(StatusCode::RoomNotActive, "notifications.room-not-active"),
                )
            }
            Err(e) => return store_failure(e),
        }
    } else {
        match db::lock_user(&edge.store, &room.sid, &req.user_id, lock).await {
            Ok(Locked::Set) => {}
            Ok(Locked::Moderator) => return cannot_lock_moderator(),
            Ok(Locked::Unknown) => return user_not_found(),
            Err(e) => return store_failure(e),
        }
    }
    tracing::info!(room_id = %room.room_id, sid = %room.sid, user_id = %req.user_id, service = %req.service, locked, "a moderator changed a lock");
    let Some(region) = edge.media_region(room) else {
        return EdgeResponse::reply(
            Common::ok("success"),
            LockRes {
                updated: 0,
                left: 0,
            },
        );
    };
    let api = edge.livekit(region);
    // Who LiveKit has now, as it lists them.
    let participants = if everyone {
        api.list_participants(&room.livekit_room).await
    } else {
        api.participant(&room.livekit_room, &req.user_id)
            .await
            .map(|p| p.into_iter().collect())
    };
    let participants = match participants {
        Ok(participants) => participants,
        Err(e) => return media_unreachable(room, &e),
    };
    let present: Vec<&ParticipantInfo> = participants
        .iter()
        .filter(|p| p.identity != moderator && p.state != "DISCONNECTED")
        .collect();
    let identities: Vec<&str> = present.iter().map(|p| p.identity.as_str()).collect();
    let users = match db::visible_users(&edge.store, &room.sid, &identities).await {
        Ok(users) => users,
        Err(e) => return store_failure(e),
    };
    let Some(stale) = stale_participants(room, &present, &users) else {
        return store_failure(StoreError("stored room metadata does not read".into()));
    };
    let outcomes = join_all(stale.iter().take(UPDATES_PER_CALL).map(
        |(identity, metadata, permission)| {
            api.update_participant(
                &room.livekit_room,
                identity,
                metadata,
                permission,
                livekit::CALL_TIMEOUT,
            )
        },
    ))
    .await;
    let updated = outcomes.iter().filter(|o| o.is_ok()).count();
    if let Some(e) = outcomes.iter().find_map(|o| o.as_ref().err()) {
        tracing::warn!(room_id = %room.room_id, sid = %room.sid, error = %e, failed = outcomes.len() - updated, "some participants' locks could not be given to LiveKit");
        if updated == 0 {
            return media_unreachable(room, e);
        }
    }
    EdgeResponse::reply(
        Common::ok("success"),
        LockRes {
            updated,
            left: stale.len() - updated,
        },
    )
}

/// `(identity, metadata, permission)` for each of `present` whose LiveKit metadata or publishing
/// rights differ from what `users` (their stored rows) now say; `None` when the room's stored
/// metadata does not read.
fn stale_participants<'u>(
    room: &RoomRow,
    present: &[&ParticipantInfo],
    users: &'u [LockedUser],
) -> Option<Vec<(&'u str, &'u str, Permission)>> {
    let mut stale = Vec::new();
    for user in users {
        let rules = JoinRules::read(&room.metadata, &user.metadata)?;
        let permission = Permission::visible_publishing(&rules.allowed_sources(user.is_admin));
        let Some(participant) = present.iter().find(|p| p.identity == user.user_id) else {
            continue;
        };
        let publishes_as = participant.permission.as_ref().is_some_and(|current| {
            permission.publishes_as(current.can_publish, &current.can_publish_sources)
        });
        if !publishes_as || participant.metadata != user.metadata {
            stale.push((user.user_id.as_str(), user.metadata.as_str(), permission));
        }
    }
    Some(stale)
}

/// After a batch of LiveKit events from `region`: gives each participant in `joined`
/// (`(session sid, LiveKit room, identity, the publishing LiveKit granted)`) whose session had
/// locked them the permission their session now grants, if LiveKit let them join with more
/// (a LiveKit token minted before the lock). At most [`crate::lifecycle::REMOVALS_PER_REQUEST`],
/// side by side, each waiting at most [`livekit::BRIEF_CALL_TIMEOUT`].
pub(crate) async fn enforce_on_join<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    region: &Region,
    joined: &[LockedJoin],
) {
    let api = edge.livekit(region);
    let checks = joined
        .iter()
        .take(crate::lifecycle::REMOVALS_PER_REQUEST)
        .map(|join| narrow(edge, &api, region, join));
    join_all(checks).await;
}

/// A locked user heard joining LiveKit, with what LiveKit let them publish.
#[derive(Debug, Clone)]
pub struct LockedJoin {
    /// The session.
    pub room_sid: String,
    /// Its LiveKit room.
    pub livekit_room: String,
    /// The identity.
    pub identity: String,
    /// LiveKit let them publish at all.
    pub can_publish: bool,
    /// The sources LiveKit let them publish (its enum names; empty: any).
    pub can_publish_sources: Vec<serde_json::Value>,
}

async fn narrow<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    api: &LiveKitApi<'_, H>,
    region: &Region,
    join: &LockedJoin,
) {
    let stored = async {
        let room = crate::db::room_by_sid(&edge.store, &join.room_sid).await?;
        let users = db::visible_users(&edge.store, &join.room_sid, &[&join.identity]).await?;
        Ok::<_, StoreError>((room, users.into_iter().next()))
    };
    let (room, user) = match stored.await {
        Ok((Some(room), Some(user))) => (room, user),
        Ok(_) => return,
        Err(e) => {
            tracing::error!(error = %e, "a locked user's join could not be checked");
            return;
        }
    };
    let Some(rules) = JoinRules::read(&room.metadata, &user.metadata) else {
        return;
    };
    let permission = Permission::visible_publishing(&rules.allowed_sources(user.is_admin));
    if permission.publishes_as(join.can_publish, &join.can_publish_sources) {
        return;
    }
    let update = api.update_participant(
        &join.livekit_room,
        &join.identity,
        &user.metadata,
        &permission,
        livekit::BRIEF_CALL_TIMEOUT,
    );
    match update.await {
        Ok(_) => {
            tracing::warn!(region = %region.id, room = %join.livekit_room, identity = %join.identity, "a locked user joined with an earlier LiveKit token: locked again");
        }
        Err(e) => {
            tracing::warn!(region = %region.id, room = %join.livekit_room, identity = %join.identity, error = %e, "a locked user's LiveKit permission could not be narrowed");
        }
    }
}

fn cannot_lock_moderator() -> EdgeResponse {
    invalid("notifications.cannot-lock-admin")
}
