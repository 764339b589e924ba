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
use crate::db::locks::{self as db, Lock, LockTarget, Locked};
use crate::exchange::{EdgeRequest, EdgeResponse};
use crate::livekit::{self, LiveKitApi, LiveKitError, ParticipantInfo, Permission};
use crate::moderation::{media_unreachable, user_not_found};
use crate::platform::{Clock, HttpClient, Store, StoreError};
use crate::rooms::{check_named_user, invalid};
use crate::sessions::{moderator_request, room_not_active, store_failure, JoinRules};
use crate::wire::Common;
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
            Ok(false) => return room_not_active(),
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
        Err(e) => {
            // The lock stands; those the edge heard join are brought in line later.
            let only = (!everyone).then_some(req.user_id.as_str());
            if let Err(se) = db::queue_present(&edge.store, &room.sid, only, moderator).await {
                tracing::error!(error = %se, "lock checks could not be queued");
            }
            return media_unreachable(room, &e);
        }
    };
    let present: Vec<&ParticipantInfo> = participants
        .iter()
        .filter(|p| p.identity != moderator && p.state != "DISCONNECTED")
        .collect();
    let pairs: Vec<(&str, &str)> = present
        .iter()
        .map(|p| (room.sid.as_str(), p.identity.as_str()))
        .collect();
    let targets = match db::targets_of(&edge.store, &pairs).await {
        Ok(targets) => targets,
        Err(e) => return store_failure(e),
    };
    let stale = stale_participants(&present, &targets);
    let given = give_or_queue(
        edge,
        &api,
        region,
        &stale,
        UPDATES_PER_CALL,
        livekit::CALL_TIMEOUT,
    );
    let (outcomes, left) = match given.await {
        Ok(given) => given,
        Err(e) => return store_failure(e),
    };
    let updated = outcomes.iter().filter(|o| o.is_ok()).count();
    if updated == 0 {
        if let Some(e) = outcomes.iter().find_map(|o| o.as_ref().err()) {
            return media_unreachable(room, e);
        }
    }
    EdgeResponse::reply(Common::ok("success"), LockRes { updated, left })
}

/// The permission `target`'s session grants them now (`None`: stored metadata that does not
/// read, logged where it is read).
fn permission_for(target: &LockTarget) -> Option<Permission> {
    let rules = JoinRules::read(&target.room_metadata, &target.user_metadata)?;
    Some(Permission::visible_publishing(
        &rules.allowed_sources(target.is_admin),
        rules.may_chat(target.is_admin),
    ))
}

/// Each of `targets` whose LiveKit metadata or publishing rights (as `present` lists them)
/// differ from what their session grants now, with that permission.
fn stale_participants<'t>(
    present: &[&ParticipantInfo],
    targets: &'t [LockTarget],
) -> Vec<(&'t LockTarget, Permission)> {
    targets
        .iter()
        .filter_map(|target| {
            let permission = permission_for(target)?;
            let participant = present.iter().find(|p| p.identity == target.user_id)?;
            let publishes_as = participant.permission.as_ref().is_some_and(|current| {
                permission.publishes_as(
                    current.can_publish,
                    &current.can_publish_sources,
                    current.can_publish_data,
                )
            });
            (!publishes_as || participant.metadata != target.user_metadata)
                .then_some((target, permission))
        })
        .collect()
}

/// Gives each of `targets` its permission and stored metadata in LiveKit, side by side, each
/// waiting at most `timeout`; the outcomes in order (`Ok(false)`: LiveKit no longer has them).
async fn give_to_livekit<H: HttpClient>(
    api: &LiveKitApi<'_, H>,
    region: &Region,
    targets: &[(&LockTarget, Permission)],
    timeout: std::time::Duration,
) -> Vec<Result<bool, LiveKitError>> {
    join_all(targets.iter().map(|(target, permission)| async move {
        let outcome = api
            .update_participant(
                &target.livekit_room,
                &target.user_id,
                &target.user_metadata,
                Some(permission),
                timeout,
            )
            .await;
        if let Err(e) = &outcome {
            tracing::warn!(region = %region.id, room = %target.livekit_room, identity = %target.user_id, error = %e, "a participant's locks could not be given to LiveKit; a lock check follows");
        }
        outcome
    }))
    .await
}

/// Gives the first `limit` of `stale` their permission and stored metadata in LiveKit, side by
/// side, each waiting at most `timeout`, and queues a lock check for the others: those past
/// the limit, those whose call failed, and those whose locks changed while it ran. The
/// outcomes of the calls made (in order) and how many checks were queued.
async fn give_or_queue<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    api: &LiveKitApi<'_, H>,
    region: &Region,
    stale: &[(&LockTarget, Permission)],
    limit: usize,
    timeout: std::time::Duration,
) -> Result<(Vec<Result<bool, LiveKitError>>, usize), StoreError> {
    let (now, later) = stale.split_at(stale.len().min(limit));
    let outcomes = give_to_livekit(api, region, now, timeout).await;
    let (taken, failed): (Vec<_>, Vec<_>) = now
        .iter()
        .zip(&outcomes)
        .partition(|(_, outcome)| outcome.is_ok());
    let taken: Vec<&(&LockTarget, Permission)> = taken.into_iter().map(|(t, _)| t).collect();
    let mut left: Vec<(&str, &str)> = later
        .iter()
        .chain(failed.into_iter().map(|(t, _)| t))
        .map(|(t, _)| (t.room_sid.as_str(), t.user_id.as_str()))
        .collect();
    left.extend(changed_meanwhile(edge, &taken).await?);
    db::queue_checks(&edge.store, &left).await?;
    Ok((outcomes, left.len()))
}

/// Of `updated` (given to LiveKit as they were read), those whose stored metadata has changed
/// since: a lock or unlock that raced this call, whose own LiveKit update may have landed first.
async fn changed_meanwhile<'t, S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    updated: &[&(&'t LockTarget, Permission)],
) -> Result<Vec<(&'t str, &'t str)>, StoreError> {
    let pairs: Vec<(&str, &str)> = updated
        .iter()
        .map(|(t, _)| (t.room_sid.as_str(), t.user_id.as_str()))
        .collect();
    let now = db::targets_of(&edge.store, &pairs).await?;
    Ok(updated
        .iter()
        .filter(|(sent, _)| {
            !now.iter().any(|t| {
                t.room_sid == sent.room_sid
                    && t.user_id == sent.user_id
                    && t.user_metadata == sent.user_metadata
            })
        })
        .map(|(t, _)| (t.room_sid.as_str(), t.user_id.as_str()))
        .collect())
}

/// A locked user heard joining LiveKit, with what LiveKit let them publish.
#[derive(Debug, Clone)]
pub struct LockedJoin {
    /// The session.
    pub room_sid: String,
    /// The identity.
    pub identity: String,
    /// LiveKit let them publish at all.
    pub can_publish: bool,
    /// The sources LiveKit let them publish (its enum names; empty: any).
    pub can_publish_sources: Vec<serde_json::Value>,
    /// LiveKit let them publish data (the chat).
    pub can_publish_data: bool,
}

/// After a batch of LiveKit events from `region`: gives each locked user heard joining with
/// more than their session grants now (a LiveKit token minted before the lock) that
/// permission, at most [`crate::lifecycle::REMOVALS_PER_REQUEST`] side by side, each waiting at
/// most [`livekit::BRIEF_CALL_TIMEOUT`]; the others, and failures, get a lock check. A join
/// with the right permission costs no call. One statement, and one more for lock checks.
pub(crate) async fn enforce_on_join<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    region: &Region,
    joins: &[LockedJoin],
) {
    if joins.is_empty() {
        return;
    }
    let outcome = async {
        let pairs: Vec<(&str, &str)> = joins
            .iter()
            .map(|j| (j.room_sid.as_str(), j.identity.as_str()))
            .collect();
        let targets = db::targets_of(&edge.store, &pairs).await?;
        let wider: Vec<(&LockTarget, Permission)> = targets
            .iter()
            .filter_map(|target| {
                let permission = permission_for(target)?;
                // The latest join of theirs in this batch is what LiveKit has now.
                let join = joins
                    .iter()
                    .rev()
                    .find(|j| j.room_sid == target.room_sid && j.identity == target.user_id)?;
                let granted = permission.publishes_as(
                    join.can_publish,
                    &join.can_publish_sources,
                    join.can_publish_data,
                );
                (!granted).then_some((target, permission))
            })
            .collect();
        let api = edge.livekit(region);
        let limit = crate::lifecycle::REMOVALS_PER_REQUEST;
        let given = give_or_queue(
            edge,
            &api,
            region,
            &wider,
            limit,
            livekit::BRIEF_CALL_TIMEOUT,
        );
        let (outcomes, _) = given.await?;
        for ((target, _), outcome) in wider.iter().zip(&outcomes) {
            if matches!(outcome, Ok(true)) {
                tracing::warn!(region = %region.id, room = %target.livekit_room, identity = %target.user_id, "a locked user joined with an earlier LiveKit token: locked again");
            }
        }
        Ok::<_, StoreError>(())
    };
    if let Err(e) = outcome.await {
        tracing::error!(region = %region.id, error = %e, "locked users' joins could not be checked");
    }
}

/// Works through up to [`crate::lifecycle::REMOVALS_PER_REQUEST`] queued lock checks of
/// `region`'s running sessions, the least tried first: each participant gets the permission and
/// metadata their session grants now, side by side, each waiting at most
/// [`livekit::BRIEF_CALL_TIMEOUT`]. A check is done when LiveKit took it (or no longer has them)
/// and their locks have not changed since; a failed call counts against it. One statement when
/// none is queued, three at most otherwise.
pub(crate) async fn sweep_checks<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    region: &Region,
) -> Result<(), StoreError> {
    let limit = i64::try_from(crate::lifecycle::REMOVALS_PER_REQUEST).unwrap_or(1);
    let due = db::due_checks(&edge.store, &region.id, limit).await?;
    if due.is_empty() {
        return Ok(());
    }
    // Metadata that does not read cannot be followed: its check is done (logged on reading).
    let (givable, unreadable): (Vec<_>, Vec<_>) = due
        .iter()
        .map(|t| (t, permission_for(t)))
        .partition(|(_, p)| p.is_some());
    let givable: Vec<(&LockTarget, Permission)> = givable
        .into_iter()
        .filter_map(|(t, p)| p.map(|p| (t, p)))
        .collect();
    let api = edge.livekit(region);
    let outcomes = give_to_livekit(&api, region, &givable, livekit::BRIEF_CALL_TIMEOUT).await;
    let (taken, failed): (Vec<_>, Vec<_>) = givable
        .iter()
        .zip(&outcomes)
        .partition(|(_, outcome)| outcome.is_ok());
    let done: Vec<&LockTarget> = unreadable
        .iter()
        .map(|(t, _)| *t)
        .chain(taken.iter().map(|((t, _), _)| *t))
        .collect();
    let failed: Vec<&LockTarget> = failed.iter().map(|((t, _), _)| *t).collect();
    db::settle_checks(&edge.store, &done, &failed).await
}

fn cannot_lock_moderator() -> EdgeResponse {
    invalid("notifications.cannot-lock-admin")
}
