//! The LiveKit server API the edge calls (Twirp over JSON, a fresh token per call: rooms deleted,
//! their metadata written, participants listed, removed and muted, data sent), and the
//! shape of LiveKit's `ParticipantInfo` as plugNmeet returns it (snake_case, defaults emitted,
//! int64 as strings, only fields of livekit/protocol v1.49 so strict clients accept it).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Region;
use crate::platform::{HttpClient, OutboundRequest};
use crate::tokens::{mint_livekit_token, LiveKitClaims, VideoGrant};
use crate::wire::{int64_string, lenient_int_or_zero, normalize_keys};

/// Lifetime of the token sent with each server API call.
const API_TOKEN_SECS: u64 = 600;

/// The longest one call waits for LiveKit to connect and then to answer. A LiveKit server
/// answers in milliseconds; one that does not within this is treated as unreachable, so a
/// request that calls it (an end, a listing) still answers in time.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The longest a call waits while another service waits on the edge's answer: a room metadata
/// write made during a recorder node's report (the node gives up after 10 s), a removal made
/// during a sidecar's webhook batch.
pub const BRIEF_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A LiveKit call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LiveKitError {
    /// No answer (network).
    #[error("LiveKit unreachable: {0}")]
    Unreachable(String),
    /// An error answer; `msg` is LiveKit's.
    #[error("LiveKit answered {status}: {msg}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Twirp error message.
        msg: String,
    },
    /// An answer that is not what Twirp promises.
    #[error("LiveKit answer unreadable: {0}")]
    Malformed(String),
    /// The call's token could not be minted.
    #[error("token: {0}")]
    Token(String),
}

/// The server API of one region's LiveKit.
pub struct LiveKitApi<'a, H> {
    http: &'a H,
    region: &'a Region,
    now_secs: u64,
}

impl<'a, H: HttpClient> LiveKitApi<'a, H> {
    /// A client for `region`, minting its tokens at `now_secs`.
    pub fn new(http: &'a H, region: &'a Region, now_secs: u64) -> Self {
        LiveKitApi {
            http,
            region,
            now_secs,
        }
    }

    /// Deletes a room, disconnecting everyone in it. A room LiveKit does not know is fine.
    pub async fn delete_room(&self, room: &str) -> Result<(), LiveKitError> {
        let grant = VideoGrant {
            room_create: true,
            ..Default::default()
        };
        match self
            .call("DeleteRoom", grant, &serde_json::json!({ "room": room }))
            .await
        {
            Ok(_) => Ok(()),
            Err(LiveKitError::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sets a room's metadata, which LiveKit sends to everyone in it, waiting at most
    /// [`BRIEF_CALL_TIMEOUT`]. A room LiveKit does not know (nobody in it, or ended) is
    /// fine: there is nobody to tell.
    pub async fn update_room_metadata(
        &self,
        room: &str,
        metadata: &str,
    ) -> Result<(), LiveKitError> {
        let body = serde_json::json!({ "room": room, "metadata": metadata });
        let call = self.call_within(
            "UpdateRoomMetadata",
            admin_of(room),
            &body,
            BRIEF_CALL_TIMEOUT,
        );
        match call.await {
            Ok(_) | Err(LiveKitError::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The participants of a room (none when LiveKit has no such room).
    pub async fn list_participants(
        &self,
        room: &str,
    ) -> Result<Vec<ParticipantInfo>, LiveKitError> {
        let body = match self
            .call(
                "ListParticipants",
                admin_of(room),
                &serde_json::json!({ "room": room }),
            )
            .await
        {
            Ok(body) => body,
            Err(LiveKitError::Status { status: 404, .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        #[derive(Deserialize)]
        struct ListParticipantsResponse {
            #[serde(default)]
            participants: Vec<ParticipantInfo>,
        }
        let parsed: ListParticipantsResponse = parse_twirp_json(&body)?;
        Ok(parsed.participants)
    }

    /// Disconnects participant `identity` from `room`, waiting at most `timeout`. `Ok(false)`:
    /// LiveKit has no such participant there (or no such room), so there was nobody to remove.
    pub async fn remove_participant(
        &self,
        room: &str,
        identity: &str,
        timeout: std::time::Duration,
    ) -> Result<bool, LiveKitError> {
        let body = serde_json::json!({ "room": room, "identity": identity });
        match self
            .call_within("RemoveParticipant", admin_of(room), &body, timeout)
            .await
        {
            Ok(_) => Ok(true),
            Err(LiveKitError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Participant `identity` of `room`, if LiveKit has them there.
    pub async fn participant(
        &self,
        room: &str,
        identity: &str,
    ) -> Result<Option<ParticipantInfo>, LiveKitError> {
        let body = serde_json::json!({ "room": room, "identity": identity });
        match self.call("GetParticipant", admin_of(room), &body).await {
            Ok(body) => parse_twirp_json(&body).map(Some),
            Err(LiveKitError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Mutes track `track_sid`, published by `identity` in `room`, for everyone: the publisher's
    /// client is told to stop sending it. (Only its publisher may unmute it: LiveKit refuses a
    /// remote unmute unless its rooms allow one, and the edge does not ask for it.)
    pub async fn mute_published_track(
        &self,
        room: &str,
        identity: &str,
        track_sid: &str,
    ) -> Result<(), LiveKitError> {
        let body = serde_json::json!({
            "room": room, "identity": identity, "track_sid": track_sid, "muted": true
        });
        self.call("MutePublishedTrack", admin_of(room), &body)
            .await
            .map(drop)
    }

    /// Gives participant `identity` of `room` new `metadata` and, if given, `permission` (LiveKit
    /// replaces the whole permission, and unpublishes any track whose source it no longer
    /// allows; without one it keeps theirs). Waits at most `timeout`. `Ok(false)`: LiveKit has
    /// no such participant there (or no such room).
    pub async fn update_participant(
        &self,
        room: &str,
        identity: &str,
        metadata: &str,
        permission: Option<&Permission>,
        timeout: std::time::Duration,
    ) -> Result<bool, LiveKitError> {
        let mut body = serde_json::json!({
            "room": room, "identity": identity, "metadata": metadata,
        });
        if let Some(permission) = permission {
            body["permission"] = serde_json::json!(permission);
        }
        let call = self.call_within("UpdateParticipant", admin_of(room), &body, timeout);
        match call.await {
            Ok(_) => Ok(true),
            Err(LiveKitError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sends `data` reliably, under `topic`, to `to` in `room` (everyone when `to` is empty), as
    /// the server: the clients see no participant as its sender, which no participant can
    /// forge. LiveKit does not check that the room exists (a room it does not have waits for a
    /// node that never answers): ask only about a room that has participants.
    pub async fn send_data(
        &self,
        room: &str,
        data: &[u8],
        to: &[&str],
        topic: &str,
    ) -> Result<(), LiveKitError> {
        use base64::Engine;
        let body = serde_json::json!({
            "room": room,
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "kind": "RELIABLE",
            "destination_identities": to,
            "topic": topic,
        });
        match self.call("SendData", admin_of(room), &body).await {
            Ok(_) | Err(LiveKitError::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn call(
        &self,
        method: &str,
        grant: VideoGrant,
        body: &Value,
    ) -> Result<Vec<u8>, LiveKitError> {
        self.call_within(method, grant, body, CALL_TIMEOUT).await
    }

    async fn call_within(
        &self,
        method: &str,
        grant: VideoGrant,
        body: &Value,
        timeout: std::time::Duration,
    ) -> Result<Vec<u8>, LiveKitError> {
        let token = mint_livekit_token(
            &self.region.api_key,
            &self.region.api_secret,
            "",
            LiveKitClaims {
                video: grant,
                ..Default::default()
            },
            self.now_secs,
            API_TOKEN_SECS,
        )
        .map_err(|e| LiveKitError::Token(e.to_string()))?;
        let request = OutboundRequest {
            method: http::Method::POST,
            url: format!(
                "{}/twirp/livekit.RoomService/{method}",
                self.region.api_base_url()
            ),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("authorization".into(), format!("Bearer {token}")),
            ],
            body: serde_json::to_vec(body).map_err(|e| LiveKitError::Malformed(e.to_string()))?,
            timeout,
            read_body: true,
        };
        let response = self
            .http
            .send(request)
            .await
            .map_err(|e| LiveKitError::Unreachable(e.0))?;
        if (200..300).contains(&response.status) {
            return Ok(response.body);
        }
        let msg = serde_json::from_slice::<Value>(&response.body)
            .ok()
            .and_then(|v| v.get("msg").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        Err(LiveKitError::Status {
            status: response.status,
            msg,
        })
    }
}

/// The grant of a call that administers `room`.
fn admin_of(room: &str) -> VideoGrant {
    VideoGrant {
        room_admin: true,
        room: room.to_owned(),
        ..Default::default()
    }
}

/// A Twirp JSON answer (camelCase or snake_case keys) read as `T`.
fn parse_twirp_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, LiveKitError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| LiveKitError::Malformed(e.to_string()))?;
    normalize_keys(value)
        .map_err(|e| LiveKitError::Malformed(e.to_string()))
        .and_then(|v| serde_json::from_value(v).map_err(|e| LiveKitError::Malformed(e.to_string())))
}

fn enum_name<'de, D: serde::Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(de)? {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    })
}

fn default_state() -> String {
    "JOINING".into()
}
fn default_kind() -> String {
    "STANDARD".into()
}
fn default_track_type() -> String {
    "AUDIO".into()
}
fn default_source() -> String {
    "UNKNOWN".into()
}
fn default_reason() -> String {
    "UNKNOWN_REASON".into()
}

/// LiveKit's `ParticipantInfo`, in plugNmeet's output shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ParticipantInfo {
    #[serde(default)]
    pub sid: String,
    #[serde(default)]
    pub identity: String,
    #[serde(default = "default_state", deserialize_with = "enum_name")]
    pub state: String,
    #[serde(default)]
    pub tracks: Vec<TrackInfo>,
    #[serde(default)]
    pub metadata: String,
    #[serde(
        default,
        deserialize_with = "lenient_int_or_zero",
        serialize_with = "int64_string"
    )]
    pub joined_at: i64,
    #[serde(
        default,
        deserialize_with = "lenient_int_or_zero",
        serialize_with = "int64_string"
    )]
    pub joined_at_ms: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "lenient_int_or_zero")]
    pub version: i64,
    #[serde(default)]
    pub permission: Option<ParticipantPermission>,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub is_publisher: bool,
    #[serde(default = "default_kind", deserialize_with = "enum_name")]
    pub kind: String,
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_reason", deserialize_with = "enum_name")]
    pub disconnect_reason: String,
}

/// LiveKit's `ParticipantPermission`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
#[allow(missing_docs)]
pub struct ParticipantPermission {
    pub can_subscribe: bool,
    pub can_publish: bool,
    pub can_publish_data: bool,
    pub can_publish_sources: Vec<Value>,
    pub hidden: bool,
    pub can_update_metadata: bool,
    pub can_subscribe_metrics: bool,
}

/// The permission the edge gives a visible user it issued a LiveKit token to, as LiveKit's
/// `UpdateParticipant` takes it: what the session's token grants, so a change of publishing
/// rights during the meeting leaves every other right as the token gave it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Permission {
    can_subscribe: bool,
    can_publish: bool,
    can_publish_data: bool,
    /// LiveKit's enum names (`CAMERA`, …); empty means any source.
    can_publish_sources: Vec<String>,
    hidden: bool,
}

impl Permission {
    /// A visible user allowed to publish `sources` (token names: `camera`, `microphone`, …; all
    /// of them, or none, as LiveKit reads an empty list as any source), and data (the chat)
    /// when `data`.
    pub fn visible_publishing(sources: &[&str], data: bool) -> Permission {
        let all = sources.len() >= crate::metadata::ALL_SOURCES.len();
        Permission {
            can_subscribe: true,
            can_publish: !sources.is_empty(),
            can_publish_data: data,
            can_publish_sources: if all {
                Vec::new()
            } else {
                sources.iter().map(|s| s.to_ascii_uppercase()).collect()
            },
            hidden: false,
        }
    }

    /// Whether a participant LiveKit lets publish (`can_publish`) `sources` (its enum names;
    /// empty: any), and data when `can_publish_data`, publishes exactly what this permission
    /// lets them, sources in any order.
    pub fn publishes_as(
        &self,
        can_publish: bool,
        sources: &[Value],
        can_publish_data: bool,
    ) -> bool {
        if can_publish != self.can_publish || can_publish_data != self.can_publish_data {
            return false;
        }
        if !self.can_publish {
            return true;
        }
        let mut listed: Vec<&str> = sources.iter().filter_map(Value::as_str).collect();
        listed.sort_unstable();
        let mut wanted: Vec<&str> = self
            .can_publish_sources
            .iter()
            .map(String::as_str)
            .collect();
        wanted.sort_unstable();
        listed == wanted
    }
}

/// LiveKit's `TrackInfo` (the fields plugNmeet's clients read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct TrackInfo {
    #[serde(default)]
    pub sid: String,
    #[serde(
        default = "default_track_type",
        rename = "type",
        deserialize_with = "enum_name"
    )]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub muted: bool,
    #[serde(default, deserialize_with = "lenient_int_or_zero")]
    pub width: i64,
    #[serde(default, deserialize_with = "lenient_int_or_zero")]
    pub height: i64,
    #[serde(default)]
    pub simulcast: bool,
    #[serde(default = "default_source", deserialize_with = "enum_name")]
    pub source: String,
    #[serde(default)]
    pub mime_type: String,
    #[serde(default)]
    pub mid: String,
    #[serde(default)]
    pub stream: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_camel_case_twirp_json_and_writes_plugnmeet_shape() {
        let v: Value = serde_json::json!({
            "sid": "PA_1", "identity": "u1", "state": "ACTIVE", "joinedAt": "1700000000",
            "joinedAtMs": "1700000000123", "name": "Ada", "version": 3,
            "permission": {"canSubscribe": true, "canPublish": true, "canPublishData": true},
            "tracks": [{"sid": "TR_1", "type": "VIDEO", "source": "CAMERA", "width": 640,
                        "height": 480, "mimeType": "video/VP8", "someNewField": 1}],
            "isPublisher": true, "kind": "STANDARD", "brandNewField": {"x": 1}
        });
        let p: ParticipantInfo = serde_json::from_value(normalize_keys(v).unwrap()).unwrap();
        let out = serde_json::to_value(&p).unwrap();
        assert_eq!(out["joined_at"], "1700000000");
        assert_eq!(out["tracks"][0]["type"], "VIDEO");
        assert_eq!(out["tracks"][0]["mime_type"], "video/VP8");
        assert_eq!(out["permission"]["can_publish"], true);
        assert_eq!(out["disconnect_reason"], "UNKNOWN_REASON");
        assert!(out.get("brand_new_field").is_none());
        assert!(out["tracks"][0].get("some_new_field").is_none());
    }
}
