//! `room/getJoinToken`: checks the user, records what the join token does not carry, and mints
//! plugNmeet's join token.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{bad_input, check_room_id, internal, invalid, is_plain_id, MAX_ID_LEN};
use crate::db::{self, RoomUser, UserRecorded};
use crate::exchange::EdgeResponse;
use crate::metadata::{LockSettings, RoomMetadata};
use crate::platform::{Clock, HttpClient, Store};
use crate::tokens::{mint_join_token, JoinClaims, CLIENT_TYPE_HYBRID_WEB};
use crate::wire::{parse_input, Common, StatusCode};
use crate::Edge;

/// The name plugNmeet reserves for its recorder.
const RESERVED_NAME: &str = "PLUGNMEET_RECORDER_AUTH";
/// user_id prefixes reserved for system participants.
const RESERVED_PREFIXES: &[&str] = &["ingres_", "pnm_agent-", "sip_", "pnm_tts_agent-"];
/// user_id suffix reserved for native-app twins.
const RESERVED_SUFFIX: &str = "-native";
/// Longest display name.
const MAX_NAME_LEN: usize = 256;
/// Longest `profile_pic` URL accepted.
const MAX_PROFILE_PIC_LEN: usize = 2048;
/// Longest `preferred_lang`: a BCP 47 tag is far shorter.
const MAX_LANG_LEN: usize = 35;
/// Longest `extra_data`, the customer's free-form text.
const MAX_EXTRA_DATA_LEN: usize = 16 * 1024;

/// plugNmeet's `GenerateTokenReq`.
#[derive(Deserialize)]
pub(crate) struct GenerateTokenReq {
    /// Whether a user other than a moderator waits for approval, when the edge's caller
    /// decides it (BBB's guest policy); `None`: the room's waiting room decides. Never read
    /// from the request.
    #[serde(skip)]
    pub(crate) waits: Option<bool>,
    #[serde(default)]
    pub(crate) room_id: String,
    #[serde(default)]
    pub(crate) user_info: Option<UserInfo>,
}

/// plugNmeet's `UserInfo`.
#[derive(Deserialize)]
pub(crate) struct UserInfo {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) user_id: String,
    #[serde(default)]
    pub(crate) is_admin: bool,
    #[serde(default)]
    pub(crate) is_hidden: bool,
    #[serde(default)]
    pub(crate) user_metadata: Option<Value>,
}

/// plugNmeet's `UserMetadata`, as stored and put into the user's LiveKit token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct UserMetadata {
    /// Avatar URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_pic: Option<String>,
    /// Moderator (set by the server from `is_admin`).
    pub is_admin: bool,
    /// Whether the recorder records this user's webcam (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_webcam: Option<bool>,
    /// Server-owned.
    pub is_presenter: bool,
    /// Server-owned.
    pub raised_hand: bool,
    /// Server-owned: must wait in the waiting room.
    pub wait_for_approval: bool,
    /// UI language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_lang: Option<String>,
    /// Locks in force for this user.
    pub lock_settings: LockSettings,
    /// Server-owned version id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_id: Option<String>,
    /// Free-form customer data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_data: Option<String>,
    /// The customer's own id when the server generated `user_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ex_user_id: Option<String>,
}

#[derive(Serialize)]
struct GenerateTokenRes {
    token: String,
}

/// Handles `POST /auth/room/getJoinToken`.
pub async fn handle<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    let req: GenerateTokenReq = match parse_input(body) {
        Ok(r) => r,
        Err(e) => return bad_input(e),
    };
    match issue(edge, req).await {
        Ok(token) => EdgeResponse::reply(Common::ok("success"), GenerateTokenRes { token }),
        Err(response) => response,
    }
}

/// Checks and records the user `req` names and mints their join token; `Err` is the answer
/// refusing it.
pub(crate) async fn issue<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    req: GenerateTokenReq,
) -> Result<String, EdgeResponse> {
    check_room_id(&req.room_id).map_err(invalid)?;
    let Some(user) = req.user_info else {
        return Err(invalid("user_info: required"));
    };
    let name = user.name.trim();
    if name.is_empty() {
        return Err(invalid("user_info.name: required"));
    }
    if name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(invalid(
            "user_info.name: too long or has control characters",
        ));
    }
    if name == RESERVED_NAME {
        return Err(invalid("user_info.name: this name is reserved"));
    }
    let mut user_metadata = parse_user_metadata(user.user_metadata).map_err(invalid)?;
    let Some(room) = db::running_room(&edge.store, &req.room_id)
        .await
        .map_err(internal)?
    else {
        return Err(EdgeResponse::common(
            200,
            Common::fail(
                StatusCode::RoomNotFound,
                "room is not active. create room first",
            ),
        ));
    };
    let room_meta: RoomMetadata = serde_json::from_str(&room.metadata).unwrap_or_default();
    let user_id = if room_meta.room_features.auto_gen_user_id == Some(true) {
        if !user.user_id.is_empty() {
            user_metadata.ex_user_id = Some(user.user_id.clone());
        }
        crate::new_id()
    } else {
        check_user_id(&user.user_id).map_err(invalid)?;
        user.user_id.clone()
    };
    user_metadata.is_admin = user.is_admin;
    // A moderator has no locks; others get the room's default locks where the backend set none
    // for them, laid over in the statement that stores them (`db::upsert_user`).
    if user.is_admin {
        user_metadata.lock_settings = LockSettings::default();
    } else {
        user_metadata.wait_for_approval = req
            .waits
            .unwrap_or(room_meta.room_features.waiting_room_features.is_active == Some(true));
    }
    user_metadata.record_webcam.get_or_insert(true);
    user_metadata.metadata_id = Some(crate::new_id());
    let metadata_json = match serde_json::to_string(&user_metadata) {
        Ok(s) => s,
        Err(e) => return Err(invalid(format!("user_metadata: {e}"))),
    };
    let now = edge.now_secs();
    let record = RoomUser {
        room_sid: room.sid.clone(),
        user_id: user_id.clone(),
        name: name.to_owned(),
        is_admin: user.is_admin,
        is_hidden: user.is_hidden,
        metadata: metadata_json,
        is_blocked: false,
        token_issued_at: now,
    };
    let recorded = db::upsert_user(&edge.store, &record, !user.is_admin)
        .await
        .map_err(internal)?;
    if recorded == UserRecorded::Blocked {
        return Err(EdgeResponse::common(
            200,
            Common::fail(
                StatusCode::UserBlocked,
                "this user is blocked to join this session",
            ),
        ));
    }
    let claims = JoinClaims {
        name: name.to_owned(),
        user_id,
        room_id: room.room_id.clone(),
        is_admin: user.is_admin,
        is_hidden: user.is_hidden,
        client_type: CLIENT_TYPE_HYBRID_WEB,
    };
    let validity = edge.config.token_validity();
    mint_join_token(
        &edge.config.api_key,
        &edge.config.api_secret,
        claims,
        u64::try_from(now).unwrap_or(0),
        validity,
    )
    .map_err(|e| {
        tracing::error!(error = %e, "join token signing failed");
        EdgeResponse::common(
            200,
            Common::fail(StatusCode::InternalServerError, "could not sign the token"),
        )
    })
}

pub(crate) fn check_user_id(user_id: &str) -> Result<(), String> {
    if user_id.is_empty() {
        return Err("user_info.user_id: required".into());
    }
    if user_id.len() > MAX_ID_LEN || !is_plain_id(user_id) {
        return Err("user_info.user_id should only contain letters, digits -_".into());
    }
    if RESERVED_PREFIXES.iter().any(|p| user_id.starts_with(p))
        || user_id.ends_with(RESERVED_SUFFIX)
    {
        return Err("user_info.user_id: this id is reserved".into());
    }
    Ok(())
}

fn parse_user_metadata(value: Option<Value>) -> Result<UserMetadata, String> {
    let Some(value) = value else {
        return Ok(UserMetadata::default());
    };
    for field in [
        "is_presenter",
        "raised_hand",
        "wait_for_approval",
        "metadata_id",
    ] {
        let set = match value.get(field) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        };
        if set {
            return Err(format!(
                "user_info.user_metadata.{field}: is set by the server and must be empty"
            ));
        }
    }
    let meta: UserMetadata =
        serde_json::from_value(value).map_err(|e| format!("user_info.user_metadata: {e}"))?;
    if let Some(pic) = meta.profile_pic.as_deref().filter(|p| !p.is_empty()) {
        let ok = (pic.starts_with("https://") || pic.starts_with("http://"))
            && !pic.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return Err("user_info.user_metadata.profile_pic: must be an http(s) URL".into());
        }
    }
    // Every one of these goes into the stored user and into the user's LiveKit token, which
    // the browser sends to LiveKit in its connection URL: each is bounded.
    for (field, text, max) in [
        ("profile_pic", &meta.profile_pic, MAX_PROFILE_PIC_LEN),
        ("preferred_lang", &meta.preferred_lang, MAX_LANG_LEN),
        ("ex_user_id", &meta.ex_user_id, MAX_ID_LEN),
        ("extra_data", &meta.extra_data, MAX_EXTRA_DATA_LEN),
    ] {
        if text.as_ref().is_some_and(|t| t.len() > max) {
            return Err(format!(
                "user_info.user_metadata.{field}: longer than {max} bytes"
            ));
        }
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids() {
        assert!(check_user_id("alice_1").is_ok());
        for bad in [
            "",
            "sip_1",
            "ingres_x",
            "pnm_agent-1",
            "bob-native",
            "a b",
            "ä",
        ] {
            assert!(check_user_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_owned_user_metadata_is_refused() {
        assert!(parse_user_metadata(Some(serde_json::json!({"is_presenter": true}))).is_err());
        assert!(
            parse_user_metadata(Some(serde_json::json!({"profile_pic": "javascript:x"}))).is_err()
        );
        let m = parse_user_metadata(Some(
            serde_json::json!({"preferred_lang": "de", "unknown": 1}),
        ))
        .unwrap();
        assert_eq!(m.preferred_lang.as_deref(), Some("de"));
    }

    #[test]
    fn user_metadata_texts_are_bounded() {
        let long_url = format!("https://example.com/{}", "a".repeat(MAX_PROFILE_PIC_LEN));
        for (field, value) in [
            ("profile_pic", long_url),
            ("preferred_lang", "x".repeat(MAX_LANG_LEN + 1)),
            ("ex_user_id", "u".repeat(MAX_ID_LEN + 1)),
            ("extra_data", "d".repeat(MAX_EXTRA_DATA_LEN + 1)),
        ] {
            let refused = parse_user_metadata(Some(serde_json::json!({ field: value })));
            assert!(
                refused.as_ref().is_err_and(|e| e.contains(field)),
                "{field}: {refused:?}"
            );
        }
        let fits = parse_user_metadata(Some(serde_json::json!({
            "profile_pic": format!("https://example.com/{}", "a".repeat(100)),
            "preferred_lang": "zh-Hant-TW",
            "ex_user_id": "u".repeat(MAX_ID_LEN),
            "extra_data": "d".repeat(MAX_EXTRA_DATA_LEN),
        })));
        assert!(fits.is_ok(), "{fits:?}");
    }
}
