//! `POST /api/session`: the join page trades a plugNmeet join token for the room's region, that
//! region's LiveKit URL and a LiveKit access token minted here. The first session of a room
//! pins it to a region (see [`crate::placement`]); every later one gets the same region, unless
//! the region is gone (see [`crate::registry::region_is_gone`]): then the join moves the room.
//!
//! Beside it: `POST /api/renewToken` (a fresh join token for a valid one, so a long meeting
//! keeps its rights) and `POST /api/endRoom` (a moderator ends the meeting).
//!
//! Authorization is the join token in `Authorization` (raw, like plugNmeet's `/api/*`, or as
//! `Bearer`). Failures are 401 with plugNmeet's `notifications.*` messages.

use serde::{Deserialize, Serialize};

use crate::config::GeoPoint;
use crate::db;
use crate::exchange::{EdgeRequest, EdgeResponse};
use crate::metadata::{may_chat, publish_sources, LockSettings, PublishingRules, ALL_SOURCES};
use crate::placement::{self, Reason};
use crate::platform::{Clock, HttpClient, Store, StoreError};
use crate::registry;
use crate::rooms;
use crate::tokens::{
    mint_join_token, mint_livekit_token, verify_join_token, JoinClaims, LiveKitClaims, RoomConfig,
    TokenError, VideoGrant,
};
use crate::wire::{Common, StatusCode};
use crate::Edge;

#[derive(Serialize)]
struct RegionInfo {
    id: String,
    name: String,
}

#[derive(Serialize)]
struct SessionRes {
    room_id: String,
    room_sid: String,
    room_title: String,
    user_id: String,
    name: String,
    is_admin: bool,
    is_hidden: bool,
    /// The track sources the user may publish (LiveKit's names; none for a hidden user), as the
    /// room's features and the user's locks allow: the page offers only these.
    publish_sources: Vec<&'static str>,
    /// Always false here: this user is in (see [`WaitingRes`]).
    waiting: bool,
    /// The room has a waiting room: a moderator's page lists who waits.
    waiting_room: bool,
    /// The room has a chat (carried by LiveKit between the pages).
    chat: bool,
    /// The user may write in it (LiveKit's `canPublishData`; a moderator's chat lock can take
    /// it away during the meeting, and LiveKit tells the page).
    may_chat: bool,
    /// For a moderator: the room's locks on others (`default_lock_settings`, which "lock
    /// everyone" changes), so their page shows which are on.
    #[serde(skip_serializing_if = "Option::is_none")]
    room_locks: Option<LockSettings>,
    /// For a moderator in a room with a waiting room: what waiting users read, so their page
    /// can show it and change it (`/api/waitingRoom/updateMsg`).
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting_room_msg: Option<String>,
    /// The room's end-to-end encryption key, in an encrypted room: the page encrypts what it
    /// publishes and decrypts what it receives with it, so LiveKit only forwards.
    #[serde(skip_serializing_if = "Option::is_none")]
    e2ee_key: Option<String>,
    region: RegionInfo,
    /// `pinned` when the room already had its region, `failover` when it moved from a region
    /// that is gone, else why it was chosen now (`hint`, `nearest`, `default`, `fallback`).
    placement: &'static str,
    livekit_url: String,
    token: String,
}

/// The answer to a user who must wait for a moderator: no region, no LiveKit token. The page
/// asks again every few seconds.
#[derive(Serialize)]
struct WaitingRes {
    room_id: String,
    room_title: String,
    user_id: String,
    name: String,
    is_admin: bool,
    is_hidden: bool,
    /// Always true here.
    waiting: bool,
    /// What the room's creator wants waiting users to read (may be empty).
    waiting_room_msg: String,
}

/// What a session acts on of the room's stored metadata and the user's latest `UserMetadata`,
/// each read for those fields only.
pub(crate) struct JoinRules {
    room: PublishingRules,
    user: UserRules,
}

/// The fields of a stored `UserMetadata` a session acts on.
#[derive(Default, Deserialize)]
#[serde(default)]
struct UserRules {
    lock_settings: LockSettings,
    wait_for_approval: bool,
}

impl JoinRules {
    /// Reads both. Stored metadata always reads (this edge wrote it, filled with its
    /// defaults). If the room's did not, no session is given (`None`, logged): defaults could
    /// let a user into an encrypted room without its key, publishing media anyone can read. If
    /// the user's did not, the room's locks apply, and a user other than a moderator in a room
    /// with a waiting room waits.
    pub(crate) fn read(room_metadata: &str, user_metadata: &str) -> Option<JoinRules> {
        let room = serde_json::from_str::<PublishingRules>(room_metadata)
            .inspect_err(|e| tracing::error!(error = %e, "stored room metadata does not read"))
            .ok()?;
        let e2ee = &room.room_features.end_to_end_encryption_features;
        if e2ee.is_enabled == Some(true) && e2ee.encryption_key.as_deref().unwrap_or("").is_empty()
        {
            tracing::error!("an encrypted room's stored metadata has no key");
            return None;
        }
        let user = serde_json::from_str::<UserRules>(user_metadata).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "stored user metadata does not read; the room's locks apply");
            UserRules {
                lock_settings: room.default_lock_settings.clone(),
                wait_for_approval: room.room_features.waiting_room_features.is_active
                    == Some(true),
            }
        });
        Some(JoinRules { room, user })
    }

    /// What the user may publish.
    pub(crate) fn allowed_sources(&self, is_admin: bool) -> Vec<&'static str> {
        publish_sources(&self.room.room_features, &self.user.lock_settings, is_admin)
    }

    /// Whether the user may write in the room's chat.
    pub(crate) fn may_chat(&self, is_admin: bool) -> bool {
        may_chat(&self.room.room_features, &self.user.lock_settings, is_admin)
    }

    /// Whether the room has a chat at all.
    fn has_chat(&self) -> bool {
        self.room.room_features.chat_features.allow_chat != Some(false)
    }

    /// Whether the room has a waiting room.
    fn has_waiting_room(&self) -> bool {
        self.room.room_features.waiting_room_features.is_active == Some(true)
    }

    /// The room's encryption key, if it is encrypted.
    fn encryption_key(&self) -> Option<String> {
        let e2ee = &self.room.room_features.end_to_end_encryption_features;
        e2ee.is_enabled
            .filter(|&on| on)
            .and(e2ee.encryption_key.clone())
    }
}

/// How long after a waiting user's last ask they still count as waiting. The page asks every
/// 3 s, but a phone or a background tab may slow its timers to one a minute; a user who closed
/// the page drops off the moderators' list this long after.
pub(crate) const WAITING_SEEN_WITHIN_SECS: i64 = 60;

/// A store failure: logged in full, answered 500 without detail (the browser retries).
pub(crate) fn store_failure(e: StoreError) -> EdgeResponse {
    tracing::error!(error = %e, "store failure");
    internal_error()
}

/// The 500 for a token that could not be signed (the error is logged where it happened).
fn signing_failed() -> EdgeResponse {
    EdgeResponse::common(
        500,
        Common::fail(StatusCode::InternalServerError, "could not sign the token"),
    )
}

/// A 500 without detail (what went wrong is logged where it happened).
fn internal_error() -> EdgeResponse {
    EdgeResponse::common(
        500,
        Common::fail(StatusCode::InternalServerError, "internal server error"),
    )
}

fn unauthorized(code: StatusCode, msg: &str) -> EdgeResponse {
    EdgeResponse::common(401, Common::fail(code, msg))
}

/// Checks the join token in `Authorization` (raw, or as `Bearer`) and that its room is running:
/// the authorization of every `/api/*` call. Failures are 401 with plugNmeet's messages.
pub(crate) async fn authorize<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> Result<Authorized, EdgeResponse> {
    let Some(token) = request.authorization_token() else {
        return Err(unauthorized(
            StatusCode::MissingRequiredParameter,
            "notifications.auth-header-missing",
        ));
    };
    let now = u64::try_from(edge.now_secs()).unwrap_or(0);
    let verified =
        match verify_join_token(&edge.config.api_key, &edge.config.api_secret, token, now) {
            Ok(verified) => verified,
            Err(TokenError::Expired) => {
                return Err(unauthorized(
                    StatusCode::InvalidTokenOrSignature,
                    "notifications.token-expired",
                ))
            }
            Err(_) => {
                return Err(unauthorized(
                    StatusCode::InvalidTokenOrSignature,
                    "notifications.invalid-token",
                ))
            }
        };
    let room = match db::running_room(&edge.store, &verified.claims.room_id).await {
        Ok(Some(room)) => room,
        Ok(None) => return Err(room_not_active()),
        Err(e) => return Err(store_failure(e)),
    };
    // A token issued before this session was created was issued for an earlier session of the
    // same room id (ended, then created again within the token's lifetime): it carries none of
    // this session's settings and none of its rights.
    if verified.predates(room.created_at) {
        return Err(unauthorized(
            StatusCode::InvalidTokenOrSignature,
            "notifications.invalid-token",
        ));
    }
    let issued_at_secs = verified.issued_at_secs;
    let claims = verified.claims;
    let user = match db::room_user(&edge.store, &room.sid, &claims.user_id).await {
        // getJoinToken records every user it issues a token to in the session: a token without
        // that record was not issued by it.
        Ok(None) => {
            return Err(unauthorized(
                StatusCode::InvalidTokenOrSignature,
                "notifications.invalid-token",
            ))
        }
        Ok(Some(user)) => user,
        Err(e) => return Err(store_failure(e)),
    };
    if user.is_blocked {
        return Err(unauthorized(
            StatusCode::UserBlocked,
            "notifications.user-blocked",
        ));
    }
    Ok(Authorized {
        claims,
        issued_at_secs,
        room,
        user,
    })
}

/// Like [`authorize`], for a call only a moderator may make (the token and the user's latest
/// token in the session both say so); others get 403 with `refusal` and change nothing.
pub(crate) async fn authorize_moderator<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
    refusal: &str,
) -> Result<Authorized, EdgeResponse> {
    let authorized = authorize(edge, request).await?;
    if !authorized.is_admin() {
        return Err(not_a_moderator(refusal));
    }
    Ok(authorized)
}

/// The refusal of a page's call that only a moderator may make.
pub(crate) const MODERATORS_ONLY: &str = "notifications.only-admin-can-do-this";

/// The 403 for a caller who is not a moderator, with `refusal` as the message.
pub(crate) fn not_a_moderator(refusal: &str) -> EdgeResponse {
    EdgeResponse::common(403, Common::fail(StatusCode::PermissionDenied, refusal))
}

/// Largest request body of a call from the page (a user id, a track id, a flag, a short text).
const PAGE_CALL_MAX_BODY: usize = 4 * 1024;

/// Who may make a call from the page.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Caller {
    /// Any user of the session.
    User,
    /// A moderator only.
    Moderator,
}

/// The caller behind a call from the page, or the answer that refuses it: a body over 4 KiB
/// (413), or what [`authorize`] (or, for a moderator's call, [`authorize_moderator`]) refuses.
async fn page_call<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
    caller: Caller,
) -> Result<Authorized, EdgeResponse> {
    if request.body_exceeds(PAGE_CALL_MAX_BODY) {
        return Err(EdgeResponse::body_over(PAGE_CALL_MAX_BODY));
    }
    match caller {
        Caller::User => authorize(edge, request).await,
        Caller::Moderator => authorize_moderator(edge, request, MODERATORS_ONLY).await,
    }
}

/// The moderator behind a call from the page (the waiting room, moderation), or the answer that
/// refuses it: a body over 4 KiB (413), or what [`authorize_moderator`] refuses.
pub(crate) async fn moderator_call<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> Result<Authorized, EdgeResponse> {
    page_call(edge, request, Caller::Moderator).await
}

/// [`moderator_call`], and its body read as `T` (bad input is `INVALID_PARAMETERS`).
pub(crate) async fn moderator_request<T, S, H, C>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> Result<(Authorized, T), EdgeResponse>
where
    T: serde::de::DeserializeOwned,
    S: Store,
    H: HttpClient,
    C: Clock,
{
    page_request(edge, request, Caller::Moderator).await
}

/// The caller behind a call from the page (any user of the session, or a moderator only) and
/// its body read as `T`, or the answer that refuses it: a body over 4 KiB (413), what
/// [`authorize`] (or [`authorize_moderator`]) refuses, or bad input (`INVALID_PARAMETERS`).
pub(crate) async fn page_request<T, S, H, C>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
    caller: Caller,
) -> Result<(Authorized, T), EdgeResponse>
where
    T: serde::de::DeserializeOwned,
    S: Store,
    H: HttpClient,
    C: Clock,
{
    let authorized = page_call(edge, request, caller).await?;
    let req = crate::wire::parse_input(&request.body).map_err(rooms::bad_input)?;
    Ok((authorized, req))
}

/// The 401 for a token whose session is not (or no longer) running.
pub(crate) fn room_not_active() -> EdgeResponse {
    unauthorized(StatusCode::RoomNotActive, "notifications.room-not-active")
}

/// A join token checked against the running session it was issued for.
pub(crate) struct Authorized {
    /// What the token says.
    pub(crate) claims: JoinClaims,
    /// When the token was issued (its `nbf`), Unix seconds.
    pub(crate) issued_at_secs: u64,
    /// The running session it was issued for.
    pub(crate) room: db::RoomRow,
    /// The user as their latest token in this session recorded them.
    pub(crate) user: db::RoomUser,
}

impl Authorized {
    /// Moderator rights: the token says so and the user's latest token in this session still
    /// does (the backend may have issued a later one without them; an older token must not
    /// bring them back).
    pub(crate) fn is_admin(&self) -> bool {
        self.claims.is_admin && self.user.is_admin
    }

    /// Hidden (unseen, not publishing): as the user's latest token in this session says. Either
    /// way an older token could gain something (publishing, or being unseen), so it decides
    /// nothing here.
    pub(crate) fn is_hidden(&self) -> bool {
        self.user.is_hidden
    }
}

/// Handles `POST /api/endRoom`: a moderator (an admin join token) ends the meeting from the
/// page. The same as `room/endRoom`: the session ends at once and the LiveKit room is deleted,
/// which disconnects everyone. Other users get 403 and change nothing.
pub async fn end_room<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    let authorized =
        match authorize_moderator(edge, request, "notifications.only-admin-can-end-room").await {
            Ok(authorized) => authorized,
            Err(response) => return response,
        };
    match rooms::end::end_session(edge, &authorized.room).await {
        Ok(()) => EdgeResponse::common(200, Common::ok("success")),
        Err(e) => store_failure(e),
    }
}

/// A renewed join token.
#[derive(Serialize)]
struct RenewedRes {
    token: String,
}

/// Handles `POST /api/renewToken`: the page trades its join token, while it is valid and its
/// session runs, for a fresh one, so a meeting (or a wait) longer than a token's life keeps its
/// rights (plugNmeet's client renews its token the same way). The new token carries the user's
/// rights as their latest token in the session gives them; a blocked user gets none. Only the
/// latest token getJoinToken issued to the user (or a renewal of it) is renewed: one it has
/// replaced dies at its own expiry.
pub async fn renew_token<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    let authorized = match authorize(edge, request).await {
        Ok(authorized) => authorized,
        Err(response) => return response,
    };
    if i128::from(authorized.issued_at_secs) < i128::from(authorized.user.token_issued_at) {
        return unauthorized(
            StatusCode::InvalidTokenOrSignature,
            "notifications.token-replaced",
        );
    }
    let claims = JoinClaims {
        is_admin: authorized.is_admin(),
        is_hidden: authorized.is_hidden(),
        ..authorized.claims
    };
    let validity = edge.config.token_validity();
    let now = u64::try_from(edge.now_secs()).unwrap_or(0);
    match mint_join_token(
        &edge.config.api_key,
        &edge.config.api_secret,
        claims,
        now,
        validity,
    ) {
        Ok(token) => EdgeResponse::reply(Common::ok("success"), RenewedRes { token }),
        Err(e) => {
            tracing::error!(error = %e, "join token signing failed");
            signing_failed()
        }
    }
}

/// Handles `POST /api/session`.
pub async fn handle<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    let authorized = match authorize(edge, request).await {
        Ok(authorized) => authorized,
        Err(response) => return response,
    };
    let (is_admin, is_hidden) = (authorized.is_admin(), authorized.is_hidden());
    let Authorized {
        claims, room, user, ..
    } = authorized;
    let now = edge.now_secs();
    let now_u = u64::try_from(now).unwrap_or(0);
    let Some(rules) = JoinRules::read(&room.metadata, &user.metadata) else {
        return internal_error();
    };
    // The waiting room: getJoinToken marked the user to wait, and only a moderator's decision
    // clears the mark. No region is chosen and no LiveKit token leaves the edge before that.
    if rules.user.wait_for_approval && !is_admin {
        if let Err(e) = db::note_waiting(
            &edge.store,
            &room.sid,
            &claims.user_id,
            now,
            WAITING_SEEN_WITHIN_SECS,
        )
        .await
        {
            return store_failure(e);
        }
        return EdgeResponse::reply(
            Common::ok("notifications.waiting-for-approval"),
            WaitingRes {
                room_id: room.room_id,
                room_title: room.room_title,
                user_id: claims.user_id,
                name: claims.name,
                is_admin,
                is_hidden,
                waiting: true,
                waiting_room_msg: rules
                    .room
                    .room_features
                    .waiting_room_features
                    .waiting_room_msg,
            },
        );
    }
    let pinned = room.region.as_deref().filter(|region| {
        !registry::region_is_gone(
            &edge.config,
            region,
            room.region_heard_ms,
            edge.clock.now_ms(),
        )
    });
    let (region_id, placement) = match pinned {
        Some(pinned) => (pinned.to_owned(), "pinned"),
        None => match place(edge, request, &room).await {
            Ok(placed) => placed,
            Err(response) => return response,
        },
    };
    let Some(region) = edge.config.region(&region_id) else {
        // Placed by an edge with another configuration, while a new one rolls out.
        return EdgeResponse::common(
            503,
            Common::fail(
                StatusCode::InternalServerError,
                "the room's media region is no longer available",
            ),
        );
    };
    let publish_sources = if is_hidden {
        Vec::new()
    } else {
        rules.allowed_sources(is_admin)
    };
    let may_chat = !is_hidden && rules.may_chat(is_admin);
    let video = VideoGrant {
        room_join: true,
        room: room.livekit_room.clone(),
        room_admin: is_admin,
        hidden: is_hidden,
        // LiveKit reads an empty source list as "any": no source at all is no publishing.
        can_publish: Some(!publish_sources.is_empty()),
        can_publish_sources: (publish_sources.len() < ALL_SOURCES.len())
            .then(|| publish_sources.iter().map(|s| (*s).to_owned()).collect()),
        // The chat is all a page publishes as data (the backend's notices come from the server).
        can_publish_data: Some(may_chat),
        can_subscribe: Some(true),
        ..Default::default()
    };
    // The room's limit goes to LiveKit with every join: whichever join creates the LiveKit room
    // sets it, and LiveKit refuses joins past it.
    let room_config = u32::try_from(room.max_participants)
        .ok()
        .filter(|&max| max > 0)
        .map(|max_participants| RoomConfig { max_participants });
    let lk_claims = LiveKitClaims {
        name: claims.name.clone(),
        metadata: user.metadata,
        video,
        room_config,
    };
    let validity = edge.config.token_validity();
    let token = match mint_livekit_token(
        &region.api_key,
        &region.api_secret,
        &claims.user_id,
        lk_claims,
        now_u,
        validity,
    ) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(region = %region.id, error = %e, "LiveKit token signing failed");
            return signing_failed();
        }
    };
    // The session may have ended since it was read (endRoom reads the region after ending it,
    // so a pin made before that is deleted with the room), or blocked the user: no token goes
    // out then.
    match db::session_admits(&edge.store, &room.sid, &claims.user_id).await {
        Ok(db::Admission::Admitted) => {}
        Ok(db::Admission::Ended) => return room_not_active(),
        Ok(db::Admission::Blocked) => {
            return unauthorized(StatusCode::UserBlocked, "notifications.user-blocked")
        }
        Err(e) => return store_failure(e),
    }
    // Where the edge does not hear the region's LiveKit webhooks, a room's joined count is the
    // visible users who entered through the edge (admitted: the token goes out); where it
    // does, LiveKit's participant_joined counts instead.
    if !edge.config.hears_events_of(&region.id) {
        if let Err(e) = db::record_entry(&edge.store, &room.sid, &claims.user_id, now).await {
            return store_failure(e);
        }
    }
    EdgeResponse::reply(
        Common::ok("success"),
        SessionRes {
            room_id: room.room_id,
            room_sid: room.sid,
            room_title: room.room_title,
            user_id: claims.user_id,
            name: claims.name,
            is_admin,
            is_hidden,
            publish_sources,
            waiting: false,
            waiting_room: rules.has_waiting_room(),
            chat: rules.has_chat(),
            may_chat,
            room_locks: is_admin.then(|| rules.room.default_lock_settings.clone()),
            waiting_room_msg: (is_admin && rules.has_waiting_room()).then(|| {
                rules
                    .room
                    .room_features
                    .waiting_room_features
                    .waiting_room_msg
                    .clone()
            }),
            e2ee_key: rules.encryption_key(),
            region: RegionInfo {
                id: region.id.clone(),
                name: region.name.clone(),
            },
            placement,
            livekit_url: region.livekit_url.clone(),
            token,
        },
    )
}

/// Placement attempts a join makes when the chosen region closes before the pin lands.
const PLACEMENT_ATTEMPTS: usize = 3;

/// Places `room` (unplaced, or pinned to a region that is gone) in an available region, pins it
/// there and returns the region and why it was chosen: `failover` for a room that moved,
/// `pinned` when a concurrent join placed it first.
async fn place<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
    room: &db::RoomRow,
) -> Result<(String, &'static str), EdgeResponse> {
    let user_geo = request.platform_geo.or_else(|| header_geo(edge, request));
    let from = room.region.as_deref();
    for _ in 0..PLACEMENT_ATTEMPTS {
        let registry = registry::load(edge).await.map_err(store_failure)?;
        let Some((region, reason)) =
            placement::choose(&edge.config, room.region_hint.as_deref(), user_geo, |r| {
                registry.is_available(&r.id)
            })
        else {
            break;
        };
        // A region that reports without a sidecar has no status; one kept from when it had a
        // sidecar (it drained, left or fell silent then) must not close it to pins.
        if edge.config.uses_sidecars() && !edge.config.has_sidecar(&region.id) {
            db::forget_region_status(&edge.store, &region.id)
                .await
                .map_err(store_failure)?;
        }
        let placed = match from {
            None => db::pin_region(&edge.store, &room.sid, &region.id).await,
            Some(from) => {
                db::move_region(&edge.store, &room.sid, from, &region.id, edge.now_secs()).await
            }
        }
        .map_err(store_failure)?;
        match placed {
            Some(placed) if placed == region.id => {
                let why = if from.is_some() {
                    tracing::warn!(room_id = %room.room_id, from = ?from, to = %region.id, "the room's region is gone: moved");
                    "failover"
                } else {
                    tracing::info!(room_id = %room.room_id, region = %region.id, ?reason, "room pinned");
                    reason_name(reason)
                };
                return Ok((placed, why));
            }
            // Another join placed or moved it first: its choice stands.
            Some(placed) if Some(placed.as_str()) != from => return Ok((placed, "pinned")),
            // The session ended, or the region closed (began draining) between the registry
            // read and the pin.
            _ => {
                if !db::session_is_running(&edge.store, &room.sid)
                    .await
                    .map_err(store_failure)?
                {
                    return Err(room_not_active());
                }
            }
        }
    }
    tracing::warn!(room_id = %room.room_id, "no media region is available");
    Err(EdgeResponse::common(
        503,
        Common::fail(
            StatusCode::InternalServerError,
            "notifications.no-media-region-available",
        ),
    ))
}

fn reason_name(reason: Reason) -> &'static str {
    match reason {
        Reason::Hint => "hint",
        Reason::Nearest => "nearest",
        Reason::Default => "default",
        Reason::Fallback => "fallback",
    }
}

/// The user's location from the configured headers (set by a trusted proxy).
fn header_geo<S, H, C>(edge: &Edge<S, H, C>, request: &EdgeRequest) -> Option<GeoPoint> {
    let read = |name: &str| {
        request
            .header(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    GeoPoint::new(
        read(&edge.config.geo_headers.latitude)?,
        read(&edge.config.geo_headers.longitude)?,
    )
}
