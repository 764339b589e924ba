//! The JWTs the edge mints: plugNmeet's join token (what `room/getJoinToken` returns and the
//! join page carries), LiveKit's access token (what the browser connects to its region with),
//! the recording download token, the signature of the webhooks sent to the customer, and that
//! of BigBlueButton's recording-ready callback.
//!
//! Time always comes from the caller (the platform clock), never from `std::time`.

use jwt_simple::prelude::{
    Duration, HS256Key, JWTClaims, MACLike, UnixTimeStamp, VerificationOptions,
};
use jwt_simple::JWTError;
use serde::{Deserialize, Serialize};

/// plugNmeet's `client_type` for a browser joining through the web client.
pub const CLIENT_TYPE_HYBRID_WEB: i32 = 1;

/// Clock skew tolerated when verifying a join token (plugNmeet: one minute).
const LEEWAY_SECS: u64 = 60;

/// The private claims of plugNmeet's join token, written like Go's json with `omitempty`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct JoinClaims {
    /// Display name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The user's id in the room (equal to `sub`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_id: String,
    /// The room the token is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub room_id: String,
    /// Moderator rights.
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_admin: bool,
    /// Joins without being seen or publishing.
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_hidden: bool,
    /// plugNmeet's client type, an integer (1 = HYBRID_WEB).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub client_type: i32,
}

fn is_false(b: &bool) -> bool {
    !*b
}
/// Whether a number is zero (left out of a token, like Go's omitempty).
fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

/// Why a join token was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    /// The token's lifetime is over.
    #[error("token expired")]
    Expired,
    /// Bad signature, wrong issuer, malformed, or `sub` ≠ `user_id`.
    #[error("invalid token")]
    Invalid,
    /// The key could not sign (a configuration error).
    #[error("token signing failed: {0}")]
    Signing(String),
}

/// Mints a plugNmeet join token for `claims`, valid from `now_secs` for `validity_secs`.
pub fn mint_join_token(
    api_key: &str,
    api_secret: &str,
    claims: JoinClaims,
    now_secs: u64,
    validity_secs: u64,
) -> Result<String, TokenError> {
    let subject = claims.user_id.clone();
    let jwt = timed_claims(claims, now_secs, validity_secs)
        .with_issuer(api_key)
        .with_subject(subject);
    HS256Key::from_bytes(api_secret.as_bytes())
        .authenticate(jwt)
        .map_err(|e| TokenError::Signing(e.to_string()))
}

/// A join token that passed [`verify_join_token`].
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedJoinToken {
    /// What the token says.
    pub claims: JoinClaims,
    /// When it was issued, in Unix seconds (its `nbf`; tokens from elsewhere may carry only
    /// `iat`, and one with neither reads as issued at 0).
    pub issued_at_secs: u64,
}

impl VerifiedJoinToken {
    /// Whether the token was issued before `session_created_secs`, beyond the clock leeway:
    /// issued for an earlier session of the same room id. The leeway covers edges whose clocks
    /// differ by a little.
    pub fn predates(&self, session_created_secs: i64) -> bool {
        i128::from(self.issued_at_secs) + i128::from(LEEWAY_SECS) < i128::from(session_created_secs)
    }
}

/// Verifies a join token: HS256 under the API secret, `iss` = API key, an `exp` that has not
/// passed (one minute leeway), and `sub` = the `user_id` claim.
pub fn verify_join_token(
    api_key: &str,
    api_secret: &str,
    token: &str,
    now_secs: u64,
) -> Result<VerifiedJoinToken, TokenError> {
    let claims: JWTClaims<JoinClaims> =
        verify_hs256(api_key, api_secret, token, now_secs, 8 * 1024)?;
    let user_id = &claims.custom.user_id;
    if user_id.is_empty() || claims.subject.as_deref() != Some(user_id.as_str()) {
        return Err(TokenError::Invalid);
    }
    let issued_at_secs = claims
        .invalid_before
        .or(claims.issued_at)
        .map_or(0, |t| t.as_secs());
    Ok(VerifiedJoinToken {
        claims: claims.custom,
        issued_at_secs,
    })
}

/// What a download token lets its holder fetch: a recording, or an analytics file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Download {
    /// A recording (`sub` = its record id).
    Recording,
    /// An analytics file (`sub` = its file id).
    Analytics,
}

/// The private claims that make a token a download token of one kind (plugNmeet's download
/// token has `sub` = the file; here `sub` is the record or file id). A join token never
/// carries them, a download token has no `user_id`, and a token of one kind is no token of
/// the other, so none passes for another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
struct DownloadClaims {
    #[serde(default, skip_serializing_if = "is_false")]
    recording_download: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    analytics_download: bool,
}

impl DownloadClaims {
    fn of(kind: Download) -> Self {
        DownloadClaims {
            recording_download: kind == Download::Recording,
            analytics_download: kind == Download::Analytics,
        }
    }
}

/// Mints a token that lets its holder download `kind` `id` until it expires.
pub fn mint_download_token(
    api_key: &str,
    api_secret: &str,
    kind: Download,
    id: &str,
    now_secs: u64,
    validity_secs: u64,
) -> Result<String, TokenError> {
    let jwt = timed_claims(DownloadClaims::of(kind), now_secs, validity_secs)
        .with_issuer(api_key)
        .with_subject(id);
    HS256Key::from_bytes(api_secret.as_bytes())
        .authenticate(jwt)
        .map_err(|e| TokenError::Signing(e.to_string()))
}

/// The id a download token of `kind` grants: HS256 under the API secret, `iss` = API key, not
/// expired (one minute leeway), and marked as a download token of that kind only.
pub fn verify_download_token(
    api_key: &str,
    api_secret: &str,
    kind: Download,
    token: &str,
    now_secs: u64,
) -> Result<String, TokenError> {
    let claims: JWTClaims<ServiceClaims> =
        verify_hs256(api_key, api_secret, token, now_secs, 2 * 1024)?;
    let marks = DownloadClaims {
        recording_download: claims.custom.recording_download,
        analytics_download: claims.custom.analytics_download,
    };
    match (
        marks == DownloadClaims::of(kind),
        claims.expires_at,
        claims.subject,
    ) {
        (true, Some(_), Some(id)) if !id.is_empty() => Ok(id),
        _ => Err(TokenError::Invalid),
    }
}

/// The private claims of the edge's tokens other than join tokens, read as one type so that
/// the JWT verifier is compiled once for them all (each instance is some 11 KB of the
/// component): a download token's marks ([`DownloadClaims`]), a webhook signature's body hash
/// ([`WebhookClaims`]). Each check reads its own: a token of one kind has none of the other's.
#[derive(Serialize, Deserialize, Default)]
struct ServiceClaims {
    #[serde(default)]
    recording_download: bool,
    #[serde(default)]
    analytics_download: bool,
    #[serde(default)]
    sha256: Option<String>,
}

/// LiveKit's `video` grant. `None` fields are left out (LiveKit reads absent tri-states as true).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct VideoGrant {
    /// Create rooms (Twirp CreateRoom/DeleteRoom).
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_create: bool,
    /// List rooms.
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_list: bool,
    /// Administer `room`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_admin: bool,
    /// Join `room`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_join: bool,
    /// The room the grant is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub room: String,
    /// May publish tracks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish: Option<bool>,
    /// May subscribe to tracks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_subscribe: Option<bool>,
    /// The track sources it may publish (`camera`, `microphone`, `screen_share`,
    /// `screen_share_audio`); absent, any. LiveKit reads an empty list as any too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish_sources: Option<Vec<String>>,
    /// May publish data messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish_data: Option<bool>,
    /// May change its own metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_update_own_metadata: Option<bool>,
    /// Invisible to other participants.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
    /// A recorder.
    #[serde(default, skip_serializing_if = "is_false")]
    pub recorder: bool,
}

/// The claims of a LiveKit access token besides the registered ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LiveKitClaims {
    /// Display name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Participant metadata (a JSON string).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    /// The grant.
    pub video: VideoGrant,
    /// How LiveKit configures the room if this join creates it (LiveKit creates rooms on first
    /// join, so this is where a room's limits reach it).
    #[serde(
        default,
        rename = "roomConfig",
        skip_serializing_if = "Option::is_none"
    )]
    pub room_config: Option<RoomConfig>,
}

/// LiveKit's `RoomConfiguration`, the part the edge sets (protojson field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RoomConfig {
    /// Most participants LiveKit lets in at once (hidden ones count; 0 = no limit).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_participants: u32,
}

/// Mints a LiveKit access token for `identity` (empty for server API calls).
pub fn mint_livekit_token(
    api_key: &str,
    api_secret: &str,
    identity: &str,
    claims: LiveKitClaims,
    now_secs: u64,
    validity_secs: u64,
) -> Result<String, TokenError> {
    let mut jwt = timed_claims(claims, now_secs, validity_secs).with_issuer(api_key);
    if !identity.is_empty() {
        jwt = jwt.with_subject(identity);
    }
    HS256Key::from_bytes(api_secret.as_bytes())
        .authenticate(jwt)
        .map_err(|e| TokenError::Signing(e.to_string()))
}

/// Claims with `nbf` = now and `exp` = now + validity, and no `iat`, `jti` or `aud`.
/// The private claim of plugNmeet's webhook signature: the body's hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookClaims {
    /// Standard base64 of the SHA-256 of the body.
    pub sha256: String,
}

/// Mints the JWT a webhook carrying `body` is signed with, as plugNmeet's server (and LiveKit)
/// sign theirs: HS256 under the API secret, `iss` the API key, valid from `now_secs` for
/// `validity_secs`, and the body's hash.
pub fn mint_webhook_signature(
    api_key: &str,
    api_secret: &str,
    body: &[u8],
    now_secs: u64,
    validity_secs: u64,
) -> Result<String, TokenError> {
    use base64::Engine;
    use sha2::Digest;
    let claims = WebhookClaims {
        sha256: base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body)),
    };
    let jwt = timed_claims(claims, now_secs, validity_secs).with_issuer(api_key);
    HS256Key::from_bytes(api_secret.as_bytes())
        .authenticate(jwt)
        .map_err(|e| TokenError::Signing(e.to_string()))
}

/// The claims of BigBlueButton's recording-ready callback: the meeting as its `create` named
/// it, and the recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingReadyClaims {
    /// The meeting id as the BBB caller wrote it.
    pub meeting_id: String,
    /// The recording's id (`recordID` in BBB's `getRecordings`).
    pub record_id: String,
}

/// Mints the `signed_parameters` of BigBlueButton's recording-ready callback, as BBB signs it:
/// HS256 under the API secret over [`RecordingReadyClaims`], with an `exp` `validity_secs` after
/// `now_secs` (BBB's carries none) and no `nbf` or `iat`, which a receiver whose clock is behind
/// would refuse.
pub fn mint_recording_ready(
    api_secret: &str,
    claims: RecordingReadyClaims,
    now_secs: u64,
    validity_secs: u64,
) -> Result<String, TokenError> {
    let mut jwt = timed_claims(claims, now_secs, validity_secs);
    jwt.invalid_before = None;
    HS256Key::from_bytes(api_secret.as_bytes())
        .authenticate(jwt)
        .map_err(|e| TokenError::Signing(e.to_string()))
}

/// Verifies the JWT a webhook carrying `body` was signed with (as [`mint_webhook_signature`]
/// mints it; LiveKit signs its webhooks the same way): HS256 under `api_secret`, `iss` =
/// `api_key`, an `exp` that has not passed (one minute leeway), and `sha256` = the body's.
pub fn verify_webhook_signature(
    api_key: &str,
    api_secret: &str,
    token: &str,
    body: &[u8],
    now_secs: u64,
) -> Result<(), TokenError> {
    use base64::Engine;
    use sha2::Digest;
    let claims: JWTClaims<ServiceClaims> =
        verify_hs256(api_key, api_secret, token, now_secs, 4 * 1024)?;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body));
    if claims.custom.sha256.as_deref() != Some(hash.as_str()) {
        return Err(TokenError::Invalid);
    }
    Ok(())
}

/// Verifies an HS256 token of ours or LiveKit's: signed with `api_secret`, `iss` = `api_key`, at
/// most `max_len` bytes, with an `exp` that has not passed as of `now_secs` (one minute
/// leeway). Expired is told apart from invalid.
fn verify_hs256<C: Serialize + serde::de::DeserializeOwned>(
    api_key: &str,
    api_secret: &str,
    token: &str,
    now_secs: u64,
    max_len: usize,
) -> Result<JWTClaims<C>, TokenError> {
    let options = VerificationOptions {
        allowed_issuers: Some([api_key.to_owned()].into_iter().collect()),
        time_tolerance: Some(Duration::from_secs(LEEWAY_SECS)),
        artificial_time: Some(UnixTimeStamp::from_secs(now_secs)),
        max_token_length: Some(max_len),
        ..Default::default()
    };
    let claims: JWTClaims<C> = HS256Key::from_bytes(api_secret.as_bytes())
        .verify_token(token, Some(options))
        .map_err(|e| match e.downcast_ref::<JWTError>() {
            Some(JWTError::TokenHasExpired) => TokenError::Expired,
            _ => TokenError::Invalid,
        })?;
    // A token without an expiry would be good for ever.
    if claims.expires_at.is_none() {
        return Err(TokenError::Invalid);
    }
    Ok(claims)
}

fn timed_claims<C>(custom: C, now_secs: u64, validity_secs: u64) -> JWTClaims<C> {
    JWTClaims {
        issued_at: None,
        expires_at: Some(UnixTimeStamp::from_secs(now_secs + validity_secs)),
        invalid_before: Some(UnixTimeStamp::from_secs(now_secs)),
        issuer: None,
        subject: None,
        audiences: None,
        jwt_id: None,
        nonce: None,
        custom,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn claims() -> JoinClaims {
        JoinClaims {
            name: "Ada".into(),
            user_id: "u1".into(),
            room_id: "room1".into(),
            is_admin: true,
            is_hidden: false,
            client_type: CLIENT_TYPE_HYBRID_WEB,
        }
    }

    fn payload(token: &str) -> serde_json::Value {
        let part = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn join_token_has_plugnmeet_claims() {
        let t = mint_join_token("key", SECRET, claims(), 1_000, 600).unwrap();
        let p = payload(&t);
        assert_eq!(p["iss"], "key");
        assert_eq!(p["sub"], "u1");
        assert_eq!(p["nbf"], 1_000);
        assert_eq!(p["exp"], 1_600);
        assert_eq!(p["client_type"], 1);
        assert_eq!(p["is_admin"], true);
        assert!(p.get("is_hidden").is_none(), "omitempty like Go");
        assert!(p.get("iat").is_none() && p.get("jti").is_none());
        let header = t.split('.').next().unwrap();
        let h: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(h["alg"], "HS256");
        assert_eq!(h["typ"], "JWT");
    }

    #[test]
    fn join_token_verification() {
        let t = mint_join_token("key", SECRET, claims(), 1_000, 600).unwrap();
        let verified = verify_join_token("key", SECRET, &t, 1_100).unwrap();
        assert_eq!(verified.claims, claims());
        assert_eq!(verified.issued_at_secs, 1_000);
        // Issued for a session created up to the leeway later: the clocks of two edges.
        assert!(!verified.predates(1_000 + LEEWAY_SECS as i64));
        assert!(verified.predates(1_001 + LEEWAY_SECS as i64));
        // one minute of leeway, then expired
        assert!(verify_join_token("key", SECRET, &t, 1_650).is_ok());
        assert_eq!(
            verify_join_token("key", SECRET, &t, 1_700),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify_join_token("other", SECRET, &t, 1_100),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            verify_join_token("key", "another-secret-another-secret-xx", &t, 1_100),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            verify_join_token("key", SECRET, "a.b.c", 1_100),
            Err(TokenError::Invalid)
        );
        let mut forged = t.clone();
        forged.pop();
        forged.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(
            verify_join_token("key", SECRET, &forged, 1_100),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn sub_must_match_user_id() {
        let mut c = claims();
        c.user_id = "u2".into();
        let jwt = timed_claims(c, 1_000, 600)
            .with_issuer("key")
            .with_subject("u1");
        let t = HS256Key::from_bytes(SECRET.as_bytes())
            .authenticate(jwt)
            .unwrap();
        assert_eq!(
            verify_join_token("key", SECRET, &t, 1_100),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn livekit_token_shape() {
        let t = mint_livekit_token(
            "lk",
            SECRET,
            "u1",
            LiveKitClaims {
                name: "Ada".into(),
                metadata: String::new(),
                video: VideoGrant {
                    room_join: true,
                    room: "room1".into(),
                    can_publish: Some(false),
                    hidden: true,
                    ..Default::default()
                },
                room_config: Some(RoomConfig {
                    max_participants: 12,
                }),
            },
            1_000,
            600,
        )
        .unwrap();
        let p = payload(&t);
        assert_eq!(p["sub"], "u1");
        assert_eq!(
            p["video"],
            serde_json::json!({"roomJoin":true,"room":"room1","canPublish":false,"hidden":true})
        );
        assert_eq!(p["roomConfig"], serde_json::json!({"maxParticipants":12}));
        let without =
            mint_livekit_token("lk", SECRET, "u1", LiveKitClaims::default(), 1_000, 600).unwrap();
        assert!(payload(&without).get("roomConfig").is_none());
    }

    #[test]
    fn download_and_join_tokens_do_not_pass_for_each_other() {
        use Download::{Analytics, Recording};
        let download =
            mint_download_token("k", SECRET, Recording, "sid-recording-1", 1_000, 1_800).unwrap();
        assert_eq!(
            verify_download_token("k", SECRET, Recording, &download, 2_000),
            Ok("sid-recording-1".into())
        );
        assert_eq!(
            verify_download_token("k", SECRET, Recording, &download, 1_000 + 1_800 + 61),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify_download_token("other", SECRET, Recording, &download, 2_000),
            Err(TokenError::Invalid)
        );
        // A recording's token is no analytics file's, nor the other way round.
        assert_eq!(
            verify_download_token("k", SECRET, Analytics, &download, 2_000),
            Err(TokenError::Invalid)
        );
        let analytics =
            mint_download_token("k", SECRET, Analytics, "sid-analytics", 1_000, 1_800).unwrap();
        assert_eq!(
            verify_download_token("k", SECRET, Analytics, &analytics, 2_000),
            Ok("sid-analytics".into())
        );
        assert_eq!(
            verify_download_token("k", SECRET, Recording, &analytics, 2_000),
            Err(TokenError::Invalid)
        );
        assert!(verify_join_token("k", SECRET, &download, 2_000).is_err());
        // A join token whose user id is a record id is not a download token.
        let join = mint_join_token(
            "k",
            SECRET,
            JoinClaims {
                user_id: "sid-recording-1".into(),
                ..claims()
            },
            1_000,
            600,
        )
        .unwrap();
        for kind in [Recording, Analytics] {
            assert_eq!(
                verify_download_token("k", SECRET, kind, &join, 1_100),
                Err(TokenError::Invalid)
            );
        }
    }

    #[test]
    fn a_webhook_signature_covers_the_body() {
        let body = br#"{"event":"room_started"}"#;
        let token = mint_webhook_signature("key", SECRET, body, 1_000, 300).unwrap();
        let options = VerificationOptions {
            artificial_time: Some(UnixTimeStamp::from_secs(1_100)),
            allowed_issuers: Some(["key".to_string()].into()),
            ..Default::default()
        };
        let claims = HS256Key::from_bytes(SECRET.as_bytes())
            .verify_token::<WebhookClaims>(&token, Some(options))
            .unwrap();
        use sha2::Digest;
        assert_eq!(
            claims.custom.sha256,
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body))
        );
        assert_eq!(claims.invalid_before.unwrap().as_secs(), 1_000);
        assert_eq!(claims.expires_at.unwrap().as_secs(), 1_300);
    }

    #[test]
    fn a_webhook_signature_holds_only_for_its_body_key_and_time() {
        let body = br#"{"event":"room_started","id":"EV_1"}"#;
        let token = mint_webhook_signature("lk", "secret-0123456789", body, 1_000, 300).unwrap();
        let check = |key: &str, secret: &str, body: &[u8], now: u64| {
            verify_webhook_signature(key, secret, &token, body, now)
        };
        assert!(check("lk", "secret-0123456789", body, 1_100).is_ok());
        assert!(
            check("lk", "secret-0123456789", b"{}", 1_100).is_err(),
            "another body"
        );
        assert!(
            check("other", "secret-0123456789", body, 1_100).is_err(),
            "another key"
        );
        assert!(
            check("lk", "another-secret-01", body, 1_100).is_err(),
            "another secret"
        );
        assert!(matches!(
            check("lk", "secret-0123456789", body, 1_500),
            Err(TokenError::Expired)
        ));
        assert!(verify_webhook_signature("lk", "secret-0123456789", "x.y.z", body, 1_100).is_err());
    }

    #[test]
    fn download_tokens_and_webhook_signatures_do_not_pass_for_each_other() {
        let body = br#"{"event":"room_started"}"#;
        let signature = mint_webhook_signature("k", SECRET, body, 1_000, 300).unwrap();
        for kind in [Download::Recording, Download::Analytics] {
            assert_eq!(
                verify_download_token("k", SECRET, kind, &signature, 1_100),
                Err(TokenError::Invalid)
            );
            let download = mint_download_token("k", SECRET, kind, "id", 1_000, 300).unwrap();
            assert_eq!(
                verify_webhook_signature("k", SECRET, &download, body, 1_100),
                Err(TokenError::Invalid)
            );
        }
    }
}
