//! BBB's meeting calls: `create`, `join`, `isMeetingRunning`, `getMeetingInfo`, `getMeetings`
//! and `end`, each done by the plugNmeet call that does the same.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;

use super::xml::{self, is_element_name, Xml};
use super::{
    callbacks, hashed_id, meeting, meeting_meta, outcome, public_origin, store_failure, Call,
    Refusal,
};
use crate::db;
use crate::db::bbb::{self as store, BbbMeeting};
use crate::exchange::{EdgeRequest, EdgeResponse};
use crate::platform::{Clock, HttpClient, Store};
use crate::rooms;
use crate::rooms::create::CreateRoomReq;
use crate::rooms::join::{GenerateTokenReq, UserInfo};
use crate::rooms::status::RoomWithParticipants;
use crate::Edge;

/// What BBB's `disabledFeatures` names, and the room feature each turns off (as a path into
/// `room_features`).
const DISABLED_FEATURES: &[(&str, &[&str])] = &[
    ("chat", &["chat_features", "allow_chat"]),
    ("screenshare", &["allow_screen_share"]),
    ("raiseHand", &["allow_raise_hand"]),
    ("virtualBackgrounds", &["allow_virtual_bg"]),
    ("polls", &["allow_polls"]),
    (
        "sharedNotes",
        &["shared_note_pad_features", "allowed_shared_note_pad"],
    ),
    (
        "presentation",
        &["whiteboard_features", "allowed_whiteboard"],
    ),
    (
        "externalVideos",
        &[
            "external_media_player_features",
            "allowed_external_media_player",
        ],
    ),
    ("breakoutRooms", &["breakout_room_features", "is_allow"]),
];

/// BBB's lock parameters and the default lock each sets.
const LOCKS: &[(&str, &str)] = &[
    ("lockSettingsDisableCam", "lock_webcam"),
    ("lockSettingsDisableMic", "lock_microphone"),
    ("lockSettingsDisablePublicChat", "lock_chat_send_message"),
    ("lockSettingsDisablePrivateChat", "lock_private_chat"),
    ("lockSettingsDisableNotes", "lock_shared_notepad"),
];

/// Most `meta_*` parameters one meeting keeps, and the longest value.
const MAX_META: usize = 32;
const MAX_META_VALUE: usize = 1024;
/// Longest password.
const MAX_PASSWORD_LEN: usize = 256;

/// Sets `value` at `path` under `object`, making the objects on the way.
fn set_path(object: &mut Map<String, Value>, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            object.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let inner = object
                .entry((*first).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = inner {
                set_path(inner, rest, value);
            }
        }
    }
}

/// BBB's guest policy that lets everyone in.
const ALWAYS_ACCEPT: &str = "ALWAYS_ACCEPT";
/// BBB's guest policy that makes users other than moderators wait for one.
const ASK_MODERATOR: &str = "ASK_MODERATOR";
/// BBB's guest policy that makes guests alone wait.
const ALWAYS_ACCEPT_AUTH: &str = "ALWAYS_ACCEPT_AUTH";
/// BBB's guest policy that turns users other than moderators away.
const ALWAYS_DENY: &str = "ALWAYS_DENY";

/// `create`'s `guestPolicy` (BBB's default: `ALWAYS_ACCEPT`).
fn guest_policy(call: &Call<'_>) -> Result<&'static str, EdgeResponse> {
    match call.text("guestPolicy") {
        "" | ALWAYS_ACCEPT => Ok(ALWAYS_ACCEPT),
        ASK_MODERATOR => Ok(ASK_MODERATOR),
        ALWAYS_ACCEPT_AUTH => Ok(ALWAYS_ACCEPT_AUTH),
        ALWAYS_DENY => Ok(ALWAYS_DENY),
        _ => Err(xml::failed(
            "invalidGuestPolicy",
            "guestPolicy: ALWAYS_ACCEPT, ASK_MODERATOR, ALWAYS_ACCEPT_AUTH or ALWAYS_DENY",
        )),
    }
}

/// What BBB's guest policy makes of a user joining (BBB's `guestStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GuestStatus {
    /// In.
    Allow,
    /// Waits for a moderator.
    Wait,
    /// Turned away.
    Deny,
}

impl GuestStatus {
    /// As BBB decides it (with its default `authenticatedGuest=true`): a moderator, or a user
    /// who says `guest=false`, comes in; under `ASK_MODERATOR` everyone else waits (a user who
    /// gives no `guest` counts as authenticated, unless `auth=false`), under
    /// `ALWAYS_ACCEPT_AUTH` only a guest (`guest=true`) waits, and under `ALWAYS_DENY`
    /// everyone else is turned away. `guest` and `auth` are the parameters, `None` when not
    /// given (BBB reads any other text than `true` as false).
    fn of(policy: &str, is_admin: bool, guest: Option<bool>, auth: Option<bool>) -> GuestStatus {
        let authenticated = auth.unwrap_or(guest.is_none());
        let is_guest = guest == Some(true);
        match policy {
            _ if is_admin || guest == Some(false) => GuestStatus::Allow,
            ASK_MODERATOR if is_guest || authenticated => GuestStatus::Wait,
            ALWAYS_ACCEPT_AUTH if is_guest => GuestStatus::Wait,
            ALWAYS_DENY => GuestStatus::Deny,
            _ => GuestStatus::Allow,
        }
    }
}

/// plugNmeet's `room/create` request for BBB `create` parameters.
fn create_request(
    call: &Call<'_>,
    room_id: &str,
    title: &str,
) -> Result<CreateRoomReq, EdgeResponse> {
    let mut features = Map::new();
    let mut flag = |path: &[&str], on: bool| set_path(&mut features, path, Value::Bool(on));
    let record = call.flag("record");
    flag(&["recording_features", "is_allow"], record);
    flag(&["recording_features", "is_allow_cloud"], record);
    flag(
        &["recording_features", "enable_auto_cloud_recording"],
        record && call.flag("autoStartRecording"),
    );
    flag(
        &["admin_only_webcams"],
        call.flag("webcamsOnlyForModerator"),
    );
    flag(&["mute_on_start"], call.flag("muteOnStart"));
    // BBB keeps a meeting's events only when asked to (off by default).
    flag(&["enable_analytics"], call.flag("meetingKeepEvents"));
    // The waiting room lists those who wait; the policy picks who does, at `join`. Under any
    // policy but ALWAYS_ACCEPT it is on, so that a join before the policy is stored (or
    // through plugNmeet's API) waits rather than comes in.
    if guest_policy(call)? != ALWAYS_ACCEPT {
        flag(&["waiting_room_features", "is_active"], true);
    }
    if call.flag("lockSettingsHideUserList") {
        flag(&["allow_view_other_users_list"], false);
    }
    for disabled in call.text("disabledFeatures").split(',') {
        if let Some((_, path)) = DISABLED_FEATURES.iter().find(|(name, _)| *name == disabled) {
            flag(path, false);
        }
    }
    if let Ok(minutes) = call.text("duration").parse::<u64>() {
        if minutes > 0 {
            features.insert("room_duration".into(), minutes.into());
        }
    }
    let mut locks = Map::new();
    for (param, lock) in LOCKS {
        if call.flag(param) {
            locks.insert((*lock).into(), Value::Bool(true));
        }
    }
    let mut metadata = json!({
        "room_title": title,
        "room_features": features,
        "default_lock_settings": locks,
    });
    let welcome = call.text("welcome");
    if !welcome.is_empty() {
        metadata["welcome_message"] = welcome.replace("%%CONFNAME%%", title).into();
    }
    let logout_url = call.text("logoutURL");
    if !logout_url.is_empty() {
        metadata["logout_url"] = logout_url.into();
    }
    Ok(CreateRoomReq {
        room_id: room_id.to_owned(),
        max_participants: call.text("maxParticipants").parse().ok(),
        metadata: Some(metadata),
        ..CreateRoomReq::default()
    })
}

/// The `meta_*` parameters as the JSON object kept; `Err` is the answer to send.
fn meta_of(call: &Call<'_>) -> Result<String, EdgeResponse> {
    let mut meta = Map::new();
    for (name, value) in call.meta() {
        if !is_element_name(&name) {
            return Err(xml::failed(
                "invalidMetadata",
                &format!("meta_{name}: a name of letters, digits, `-`, `_` and `.`"),
            ));
        }
        if value.len() > MAX_META_VALUE {
            return Err(xml::failed(
                "invalidMetadata",
                &format!("meta_{name}: longer than {MAX_META_VALUE} bytes"),
            ));
        }
        if !callbacks::is_acceptable_meta(&name, value) {
            return Err(xml::failed(
                "invalidMetadata",
                &format!("meta_{name}: not an http(s) URL"),
            ));
        }
        meta.insert(name, value.into());
    }
    if meta.len() > MAX_META {
        return Err(xml::failed(
            "invalidMetadata",
            &format!("at most {MAX_META} meta_ parameters"),
        ));
    }
    Ok(Value::Object(meta).to_string())
}

/// A password given, or a new random one (BBB makes them when none is given).
fn password(call: &Call<'_>, name: &str) -> Result<String, EdgeResponse> {
    match call.text(name) {
        "" => Ok(crate::new_room_key()[..12].to_owned()),
        given if given.len() > MAX_PASSWORD_LEN => Err(xml::failed(
            "invalidPassword",
            &format!("{name}: longer than {MAX_PASSWORD_LEN} bytes"),
        )),
        given => Ok(given.to_owned()),
    }
}

/// BBB's date text for Unix seconds (RFC 2822, UTC).
fn date(unix_secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc2822)
                .ok()
        })
        .unwrap_or_default()
}

/// Handles BBB `create`: the session is created as plugNmeet's `room/create` creates it (a
/// repeat while it runs answers the running one, with the passwords it was created with).
pub async fn create<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    call: &Call<'_>,
) -> EdgeResponse {
    let (meeting_id, room_id) = match meeting(call) {
        Ok(named) => named,
        Err(response) => return response,
    };
    let title = match call.text("name").trim() {
        "" => meeting_id,
        name => name,
    };
    let prepared = create_request(call, &room_id, title).and_then(|request| {
        Ok((
            request,
            guest_policy(call)?,
            BbbMeeting {
                meeting_id: meeting_id.to_owned(),
                attendee_pw: Some(password(call, "attendeePW")?),
                moderator_pw: Some(password(call, "moderatorPW")?),
                meta: meta_of(call)?,
            },
        ))
    });
    let (request, policy, meeting) = match prepared {
        Ok(prepared) => prepared,
        Err(response) => return response,
    };
    let (room, created) = match rooms::create::create_session(edge, request).await {
        Ok(created) => created,
        Err(response) => return Refusal::of(&response).answer("createFailed"),
    };
    // Set by the create that made the session (a repeat, or a BBB create of a session made
    // through plugNmeet's API, changes nothing). Until it is stored, the waiting room holds
    // everyone but moderators.
    if created {
        if let Err(e) = store::keep_guest_policy(&edge.store, &room.sid, policy).await {
            return store_failure(e);
        }
    }
    let kept = match store::keep_meeting(&edge.store, &room.sid, &meeting).await {
        Ok(Some(kept)) => kept,
        Ok(None) => return xml::failed("createFailed", "the meeting ended meanwhile"),
        Err(e) => return store_failure(e),
    };
    // A repeat that names other passwords than the meeting has is another meeting, as in BBB.
    let differs = |given: &str, kept: &Option<String>| {
        !given.is_empty() && !same_secret(given, kept.as_deref())
    };
    if differs(call.text("attendeePW"), &kept.attendee_pw)
        || differs(call.text("moderatorPW"), &kept.moderator_pw)
    {
        return xml::failed(
            "idNotUnique",
            "A meeting already exists with that meeting ID. Please use a different meeting ID.",
        );
    }
    let mut answer = Xml::success()
        .field("meetingID", &kept.meeting_id)
        .field("internalMeetingID", &room.sid)
        .field("parentMeetingID", "bbb-none")
        .field("meetingName", &room.room_title)
        .field(
            "attendeePW",
            kept.attendee_pw.as_deref().unwrap_or_default(),
        )
        .field(
            "moderatorPW",
            kept.moderator_pw.as_deref().unwrap_or_default(),
        )
        .field("createTime", room.created_at.saturating_mul(1000))
        .field("createDate", date(room.created_at))
        .field("voiceBridge", call.text("voiceBridge"))
        .field("dialNumber", call.text("dialNumber"))
        .field("hasUserJoined", false)
        .field(
            "duration",
            call.text("duration").parse::<u64>().unwrap_or(0),
        )
        .field("hasBeenForciblyEnded", false);
    if !created {
        answer = answer.field("messageKey", "duplicateWarning").field(
            "message",
            "This conference was already in existence and may currently be in progress.",
        );
    }
    answer.finish()
}

/// Whether `given` is `expected`, in constant time.
fn same_secret(given: &str, expected: Option<&str>) -> bool {
    expected.is_some_and(|expected| bool::from(given.as_bytes().ct_eq(expected.as_bytes())))
}

/// The `user_id` a BBB `userID` joins as: itself when it is a valid user id, a hash of it
/// otherwise, and a new one when none is given.
fn user_id_of(bbb_user_id: &str) -> String {
    if bbb_user_id.is_empty() {
        return crate::new_id();
    }
    if rooms::join::check_user_id(bbb_user_id).is_ok() {
        return bbb_user_id.to_owned();
    }
    format!("bbb-{}", hashed_id(bbb_user_id))
}

/// Handles BBB `join`: a join token from plugNmeet's `room/getJoinToken`, and a redirect to the
/// join page with it (or, with `redirect=false`, its link in the answer).
pub async fn join<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
    call: &Call<'_>,
) -> EdgeResponse {
    let (meeting_id, room_id) = match meeting(call) {
        Ok(named) => named,
        Err(response) => return response,
    };
    let full_name = call.text("fullName").trim();
    if full_name.is_empty() {
        return xml::failed(
            "missingParamFullName",
            "You must specify a name for the attendee who will be joining the meeting.",
        );
    }
    let session = match store::running_session(&edge.store, &room_id).await {
        Ok(Some(session)) => session,
        Ok(None) => return not_found(),
        Err(e) => return store_failure(e),
    };
    let create_time = call.text("createTime");
    if !create_time.is_empty() && create_time != session.created_at.saturating_mul(1000).to_string()
    {
        return xml::failed(
            "mismatchCreateTime",
            "The createTime parameter submitted mismatches with the current meeting.",
        );
    }
    let meeting = session.meeting.as_ref();
    let is_admin = match call.text("role") {
        role if role.eq_ignore_ascii_case("MODERATOR") => true,
        role if role.eq_ignore_ascii_case("VIEWER") => false,
        "" => {
            let given = call.text("password");
            let is = |password: Option<&String>| {
                !given.is_empty() && same_secret(given, password.map(String::as_str))
            };
            if is(meeting.and_then(|m| m.moderator_pw.as_ref())) {
                true
            } else if is(meeting.and_then(|m| m.attendee_pw.as_ref())) {
                false
            } else {
                return xml::failed(
                    "invalidPassword",
                    "The password you submitted is not valid.",
                );
            }
        }
        _ => return xml::failed("invalidRole", "role: MODERATOR or VIEWER"),
    };
    let bbb_user_id = call.text("userID");
    let mut user_metadata = Map::new();
    if !bbb_user_id.is_empty() {
        user_metadata.insert("ex_user_id".into(), bbb_user_id.into());
    }
    let avatar = call.text("avatarURL");
    if !avatar.is_empty() {
        user_metadata.insert("profile_pic".into(), avatar.into());
    }
    // BBB's guest policy, for a meeting created through BBB's API; plugNmeet's waiting room
    // decides for one created through plugNmeet's.
    let given = |name| Some(call.flag(name)).filter(|_| !call.text(name).is_empty());
    let status = session
        .guest_policy
        .as_deref()
        .map(|policy| GuestStatus::of(policy, is_admin, given("guest"), given("auth")));
    if status == Some(GuestStatus::Deny) {
        return xml::failed(
            "guestDeniedAccess",
            "You have been denied access to this meeting based on the meeting's guest policy",
        );
    }
    let token_request = GenerateTokenReq {
        waits: status.map(|status| status == GuestStatus::Wait),
        room_id,
        user_info: Some(UserInfo {
            name: full_name.to_owned(),
            user_id: user_id_of(bbb_user_id),
            is_admin,
            is_hidden: false,
            user_metadata: Some(Value::Object(user_metadata)),
        }),
    };
    let token = match rooms::join::issue(edge, token_request).await {
        Ok(token) => token,
        Err(response) => {
            let refusal = Refusal::of(&response);
            let key = if refusal.status_code == "USER_BLOCKED" {
                "userBlocked"
            } else {
                "joinFailed"
            };
            return refusal.answer(key);
        }
    };
    let link = format!(
        "{}/?access_token={token}",
        public_origin(&edge.config.public_url, request)
    );
    if call.text("redirect").eq_ignore_ascii_case("false") {
        let (key, message, status) = if status == Some(GuestStatus::Wait) {
            (
                "guestWait",
                "Guest waiting for approval to join meeting.",
                "WAIT",
            )
        } else {
            (
                "successfullyJoined",
                "You have joined successfully.",
                "ALLOW",
            )
        };
        return Xml::success()
            .field("messageKey", key)
            .field("message", message)
            .field("meeting_id", meeting_id)
            .field("session_token", &token)
            .field("guestStatus", status)
            .field("url", &link)
            .finish();
    }
    EdgeResponse {
        status: 302,
        headers: vec![
            ("location", link),
            ("cache-control", "no-store".into()),
            ("referrer-policy", "no-referrer".into()),
        ],
        body: Vec::new(),
    }
}

fn not_found() -> EdgeResponse {
    xml::failed(
        "notFound",
        "We could not find a meeting with that meeting ID - perhaps the meeting is not yet running?",
    )
}

/// Handles BBB `isMeetingRunning`: true once someone has joined the running session (BBB's
/// meaning), not merely once it was created.
pub async fn is_meeting_running<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    call: &Call<'_>,
) -> EdgeResponse {
    let (_, room_id) = match meeting(call) {
        Ok(named) => named,
        Err(response) => return response,
    };
    let running = match db::running_room(&edge.store, &room_id).await {
        Ok(room) => room.is_some_and(|room| has_started(&room.status, room.joined_participants)),
        Err(e) => return store_failure(e),
    };
    Xml::success().field("running", running).finish()
}

/// Whether a running session has started in BBB's sense: LiveKit reported its room, or
/// someone joined it.
fn has_started(status: &str, joined_participants: i64) -> bool {
    status == "active" || joined_participants > 0
}

/// The fields of a participant's stored metadata a listing reads.
#[derive(Deserialize, Default)]
struct ParticipantMetadata {
    #[serde(default)]
    is_admin: bool,
    #[serde(default)]
    is_presenter: bool,
    /// The BBB `userID` (or plugNmeet's own id) the user joined with.
    #[serde(default)]
    ex_user_id: Option<String>,
}

/// Writes one meeting's elements (BBB's `getMeetingInfo` fields, also each `<meeting>` of
/// `getMeetings`).
fn meeting_fields(mut xml: Xml, room: &RoomWithParticipants, bbb: Option<&BbbMeeting>) -> Xml {
    let info = &room.room_info;
    // BBB's duration is the one the meeting was created with, in minutes (0: none).
    let duration = serde_json::from_str::<Value>(&info.metadata)
        .ok()
        .and_then(|m| m["room_features"]["room_duration"].as_u64())
        .unwrap_or(0);
    let mut moderators = 0;
    let mut voices = 0;
    let mut videos = 0;
    let mut listeners = 0;
    let mut attendees = Xml::fragment();
    // Hidden participants (a recorder among them) are no attendees.
    let attending = room
        .participants_info
        .iter()
        .filter(|p| !p.permission.as_ref().is_some_and(|p| p.hidden));
    let mut count = 0;
    for participant in attending {
        count += 1;
        let metadata: ParticipantMetadata =
            serde_json::from_str(&participant.metadata).unwrap_or_default();
        let has = |source: &str| participant.tracks.iter().any(|t| t.source == source);
        let (video, voice) = (has("CAMERA"), has("MICROPHONE"));
        moderators += i32::from(metadata.is_admin);
        videos += i32::from(video);
        voices += i32::from(voice);
        listeners += i32::from(!voice);
        attendees = attendees
            .open("attendee")
            .field(
                "userID",
                metadata
                    .ex_user_id
                    .as_deref()
                    .unwrap_or(&participant.identity),
            )
            .field("fullName", &participant.name)
            .field(
                "role",
                if metadata.is_admin {
                    "MODERATOR"
                } else {
                    "VIEWER"
                },
            )
            .field("isPresenter", metadata.is_presenter)
            .field("isListeningOnly", !voice)
            .field("hasJoinedVoice", voice)
            .field("hasVideo", video)
            .field("clientType", "HTML5")
            .close("attendee");
    }
    let started = info.joined_participants > 0 || count > 0;
    xml = xml
        .field("meetingName", &info.room_title)
        .field(
            "meetingID",
            bbb.map_or(info.room_id.as_str(), |b| b.meeting_id.as_str()),
        )
        .field("internalMeetingID", &info.sid)
        .field("createTime", info.creation_time.saturating_mul(1000))
        .field("createDate", date(info.creation_time))
        .field(
            "attendeePW",
            bbb.and_then(|b| b.attendee_pw.as_deref())
                .unwrap_or_default(),
        )
        .field(
            "moderatorPW",
            bbb.and_then(|b| b.moderator_pw.as_deref())
                .unwrap_or_default(),
        )
        .field("running", started)
        .field("duration", duration)
        .field("hasUserJoined", started)
        .field("recording", info.is_recording > 0)
        .field("hasBeenForciblyEnded", false)
        .field("startTime", info.creation_time.saturating_mul(1000))
        .field("endTime", 0)
        .field("participantCount", count)
        .field("listenerCount", listeners)
        .field("voiceParticipantCount", voices)
        .field("videoCount", videos)
        .field("maxUsers", 0)
        .field("moderatorCount", moderators)
        .open("attendees")
        .append(attendees);
    xml.close("attendees")
        .metadata(meeting_meta(bbb).iter())
        .field("isBreakout", false)
}

/// Handles BBB `getMeetingInfo`: plugNmeet's `room/getActiveRoomInfo`, with LiveKit's
/// participants as attendees.
pub async fn get_meeting_info<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    call: &Call<'_>,
) -> EdgeResponse {
    let (_, room_id) = match meeting(call) {
        Ok(named) => named,
        Err(response) => return response,
    };
    let room = match rooms::status::active_room(edge, &room_id).await {
        Ok(Some(room)) => room,
        Ok(None) => return not_found(),
        Err(response) => return Refusal::of(&response).answer("error"),
    };
    let bbb = match store::sessions(&edge.store, &[room.room_info.sid.as_str()]).await {
        Ok(mut sessions) => sessions.pop().and_then(|s| s.meeting),
        Err(e) => return store_failure(e),
    };
    meeting_fields(Xml::success(), &room, bbb.as_ref()).finish()
}

/// Handles BBB `getMeetings`: plugNmeet's `room/getActiveRoomsInfo`.
pub async fn get_meetings<S: Store, H: HttpClient, C: Clock>(edge: &Edge<S, H, C>) -> EdgeResponse {
    let rooms = match rooms::status::active_rooms(edge).await {
        Ok((rooms, _)) => rooms,
        Err(response) => return Refusal::of(&response).answer("error"),
    };
    if rooms.is_empty() {
        return Xml::success()
            .field("meetings", "")
            .field("messageKey", "noMeetings")
            .field("message", "no meetings were found on this server")
            .finish();
    }
    let sids: Vec<&str> = rooms.iter().map(|r| r.room_info.sid.as_str()).collect();
    let sessions = match store::sessions(&edge.store, &sids).await {
        Ok(sessions) => sessions,
        Err(e) => return store_failure(e),
    };
    let mut xml = Xml::success().open("meetings");
    for room in &rooms {
        let bbb = sessions
            .iter()
            .find(|s| s.sid == room.room_info.sid)
            .and_then(|s| s.meeting.as_ref());
        xml = meeting_fields(xml.open("meeting"), room, bbb).close("meeting");
    }
    xml.close("meetings").finish()
}

/// Handles BBB `end`: plugNmeet's `room/endRoom`. A `password`, when given, must be the
/// moderator's (older BBB required it).
pub async fn end<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    call: &Call<'_>,
) -> EdgeResponse {
    let (_, room_id) = match meeting(call) {
        Ok(named) => named,
        Err(response) => return response,
    };
    let session = match store::running_session(&edge.store, &room_id).await {
        Ok(Some(session)) => session,
        Ok(None) => return not_found(),
        Err(e) => return store_failure(e),
    };
    let given = call.text("password");
    let moderator_pw = session
        .meeting
        .as_ref()
        .and_then(|m| m.moderator_pw.as_deref());
    if !given.is_empty() && !same_secret(given, moderator_pw) {
        return xml::failed(
            "invalidPassword",
            "You must supply the moderator password for this call.",
        );
    }
    let request = json!({ "room_id": room_id }).to_string();
    let response = rooms::end::handle(edge, request.as_bytes()).await;
    if let Err(refusal) = outcome(&response) {
        return refusal.answer("error");
    }
    Xml::success()
        .field("messageKey", "sentEndMeetingRequest")
        .field(
            "message",
            "A request to end the meeting was sent. Please wait a few seconds, and then use the getMeetingInfo or isMeetingRunning API calls to verify that it was ended.",
        )
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(query: &'static str) -> Call<'static> {
        Call {
            name: "create",
            params: form_urlencoded::parse(query.as_bytes()).collect(),
        }
    }

    #[test]
    fn create_parameters_become_room_features() {
        let request = create_request(
            &call("record=true&autoStartRecording=true&muteOnStart=true&guestPolicy=ASK_MODERATOR&disabledFeatures=chat,screenshare,nonsense&lockSettingsDisableMic=true&duration=30&maxParticipants=12&welcome=Hi+%25%25CONFNAME%25%25&logoutURL=https%3A%2F%2Flms.example.com"),
            "room-1",
            "Algebra",
        )
        .unwrap();
        assert_eq!(request.max_participants, Some(12));
        assert_eq!(request.room_id, "room-1");
        let metadata = request.metadata.unwrap();
        let f = &metadata["room_features"];
        assert_eq!(f["recording_features"]["is_allow"], true);
        assert_eq!(f["recording_features"]["enable_auto_cloud_recording"], true);
        assert_eq!(f["mute_on_start"], true);
        assert_eq!(f["waiting_room_features"]["is_active"], true);
        assert_eq!(f["chat_features"]["allow_chat"], false);
        assert_eq!(f["allow_screen_share"], false);
        assert_eq!(f["room_duration"], 30);
        assert_eq!(metadata["default_lock_settings"]["lock_microphone"], true);
        assert_eq!(metadata["welcome_message"], "Hi Algebra");
        assert_eq!(metadata["logout_url"], "https://lms.example.com");
        // BBB records nothing unless asked.
        let plain = create_request(&call("name=x"), "r", "x").unwrap();
        let features = &plain.metadata.unwrap()["room_features"];
        assert_eq!(features["recording_features"]["is_allow"], false);
        assert!(create_request(&call("guestPolicy=SOMETIMES"), "r", "x").is_err());
        for (policy, waiting_room) in [
            ("ALWAYS_ACCEPT_AUTH", true),
            ("ALWAYS_DENY", true),
            ("ALWAYS_ACCEPT", false),
        ] {
            let query: &'static str = Box::leak(format!("guestPolicy={policy}").into_boxed_str());
            let metadata = create_request(&call(query), "r", "x")
                .unwrap()
                .metadata
                .unwrap();
            let active = &metadata["room_features"]["waiting_room_features"]["is_active"];
            assert_eq!(active.as_bool().unwrap_or(false), waiting_room, "{policy}");
        }
    }

    #[test]
    fn the_guest_policy_decides_as_bbb_does() {
        use GuestStatus::{Allow, Deny, Wait};
        // (guest, auth) as given: not, true, false.
        let cases = [
            (None, None),
            (Some(true), None),
            (Some(false), None),
            (None, Some(false)),
        ];
        let expected = [
            (ALWAYS_ACCEPT, [Allow, Allow, Allow, Allow]),
            (ASK_MODERATOR, [Wait, Wait, Allow, Allow]),
            (ALWAYS_ACCEPT_AUTH, [Allow, Wait, Allow, Allow]),
            (ALWAYS_DENY, [Deny, Deny, Allow, Deny]),
        ];
        for (policy, statuses) in expected {
            for ((guest, auth), status) in cases.into_iter().zip(statuses) {
                let of = GuestStatus::of(policy, false, guest, auth);
                assert_eq!(of, status, "{policy} {guest:?} {auth:?}");
                let moderator = GuestStatus::of(policy, true, guest, auth);
                assert_eq!(moderator, Allow, "a moderator, {policy} {guest:?} {auth:?}");
            }
        }
    }

    #[test]
    fn meta_names_must_be_element_names() {
        assert_eq!(
            meta_of(&call("meta_BBB-Origin=Moodle&meta_x.y=1")).unwrap(),
            r#"{"bbb-origin":"Moodle","x.y":"1"}"#
        );
        assert!(meta_of(&call("meta_a%3Cb=1")).is_err());
        assert!(meta_of(&call("meta_1a=1")).is_err());
    }

    #[test]
    fn bbb_user_ids() {
        assert_eq!(user_id_of("moodle-42"), "moodle-42");
        let odd = user_id_of("jane@example.com");
        assert!(odd.starts_with("bbb-") && odd.len() == 36, "{odd}");
        assert_eq!(odd, user_id_of("jane@example.com"));
        assert_eq!(user_id_of("sip_1").len(), 36, "reserved ids are hashed too");
        assert_ne!(user_id_of(""), user_id_of(""));
    }

    #[test]
    fn passwords_compare_whole() {
        assert!(same_secret("mod-pw", Some("mod-pw")));
        assert!(!same_secret("mod-p", Some("mod-pw")));
        assert!(!same_secret("mod-pw", None));
    }
}
