//! Authentication of `/auth/*` calls: `API-KEY` plus `HASH-SIGNATURE`, the lowercase hex
//! HMAC-SHA256 of the raw body under the API secret, compared in constant time.
//!
//! Every failure is a 401 carrying a `CommonResponse`, as JSON, or as protobuf when the request's
//! `Content-Type` is exactly `application/protobuf` (plugNmeet's rule).

use crate::config::EdgeConfig;
use crate::exchange::{EdgeRequest, EdgeResponse};
use crate::wire::{Common, StatusCode};

pub use edgemeet_protocol::signing::{key_matches, sign, verify_signature};

/// Verifies an `/auth/*` request; `Err` holds the answer to send (a 401, or the refusal of a
/// signed body that is not a JSON object).
pub fn authenticate(config: &EdgeConfig, request: &EdgeRequest) -> Result<(), EdgeResponse> {
    let fail = |code, msg: &str| Err(unauthorized(request, Common::fail(code, msg)));
    let Some(api_key) = request.header("api-key").filter(|k| !k.is_empty()) else {
        return fail(
            StatusCode::MissingRequiredParameter,
            "Missing API-KEY header.",
        );
    };
    if !key_matches(&config.api_key, Some(api_key)) {
        return fail(StatusCode::InvalidApiKey, "Invalid API key provided.");
    }
    let Some(signature) = request.header("hash-signature").filter(|s| !s.is_empty()) else {
        return fail(
            StatusCode::MissingRequiredParameter,
            "Missing HASH-SIGNATURE header.",
        );
    };
    // Always the body. plugNmeet signs the `Room-Id` header instead for multipart uploads, but no
    // route here takes an upload, and a signature that does not cover the body would let anyone
    // holding one signed value send any body.
    let signed: &[u8] = &request.body;
    if !verify_signature(config.api_secret.as_bytes(), signed, signature) {
        return fail(
            StatusCode::InvalidTokenOrSignature,
            "Failed to verify provided authentication details.",
        );
    }
    // Even over the body, one signed value is in every participant's hands: a join token's HS256
    // signature is exactly HMAC(api_secret, "<header>.<payload>"). So that text, sent as a body
    // with the token's signature, passes the check above. It is never a JSON object (it starts
    // with base64url `eyJ`), and every route reads one, so such a body is refused here, before
    // any route can take it: a route that ignores its body (getActiveRoomsInfo) would otherwise
    // answer it.
    if !is_json_object_text(signed) {
        return Err(EdgeResponse::common(
            200,
            Common::fail(
                StatusCode::InvalidParameters,
                "the request body must be a JSON object",
            ),
        ));
    }
    Ok(())
}

/// Whether `body` is empty or starts, after whitespace, as a JSON object does. Routes parse it
/// fully; this only tells a JSON object from other signed text.
fn is_json_object_text(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_none_or(|&first| first == b'{')
}

/// A 401 in the request's own encoding.
pub fn unauthorized(request: &EdgeRequest, common: Common) -> EdgeResponse {
    if request.header("content-type") == Some("application/protobuf") {
        EdgeResponse {
            status: 401,
            headers: vec![("content-type", "application/protobuf".into())],
            body: common_to_protobuf(&common),
        }
    } else {
        EdgeResponse::common(401, common)
    }
}

/// `CommonResponse{bool status = 1; string msg = 2; StatusCode status_code = 3}` in protobuf.
fn common_to_protobuf(common: &Common) -> Vec<u8> {
    let mut out = Vec::with_capacity(common.msg.len() + 8);
    if common.status {
        out.extend_from_slice(&[0x08, 0x01]);
    }
    if !common.msg.is_empty() {
        out.push(0x12);
        put_varint(&mut out, common.msg.len() as u64);
        out.extend_from_slice(common.msg.as_bytes());
    }
    let code = common.status_code as u64;
    if code != 0 {
        out.push(0x18);
        put_varint(&mut out, code);
    }
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EdgeConfig {
        EdgeConfig {
            api_key: "key".into(),
            api_secret: "secret".into(),
            token_validity_secs: 600,
            max_participants_cap: 0,
            max_room_duration_minutes: 0,
            regions: Vec::new(),
            default_region: String::new(),
            geo_headers: crate::config::GeoHeaders {
                latitude: String::new(),
                longitude: String::new(),
            },
            sidecar_secrets: Default::default(),
            region_timeout_secs: 15,
            max_events_per_batch: 100,
            past_rooms_retention_days: 0,
            recorders: Default::default(),
            webhooks: Default::default(),
            public_url: String::new(),
        }
    }

    fn request(headers: &[(&'static str, &str)], body: &[u8]) -> EdgeRequest {
        let mut request = EdgeRequest::new(http::Method::POST, "/auth/room/getJoinToken");
        for (name, value) in headers {
            request
                .headers
                .insert(*name, http::HeaderValue::from_str(value).unwrap());
        }
        request.body = body.to_vec();
        request
    }

    #[test]
    fn signature_covers_the_body() {
        let body = br#"{"room_id":"r"}"#;
        let signature = sign(b"secret", body);
        let ok = request(&[("api-key", "key"), ("hash-signature", &signature)], body);
        assert!(authenticate(&config(), &ok).is_ok());
        let other = request(
            &[("api-key", "key"), ("hash-signature", &signature)],
            br#"{"room_id":"s"}"#,
        );
        assert_eq!(authenticate(&config(), &other).unwrap_err().status, 401);
    }

    /// A multipart content type must not move the signature off the body: with a signed
    /// `Room-Id` (any value the attacker holds a signature for), any body would pass.
    #[test]
    fn multipart_does_not_sign_the_room_id_instead() {
        let room_id = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0";
        let signature = sign(b"secret", room_id.as_bytes());
        let forged = request(
            &[
                ("api-key", "key"),
                ("hash-signature", &signature),
                ("content-type", "multipart/form-data; boundary=x"),
                ("room-id", room_id),
            ],
            br#"{"room_id":"any","user_info":{"name":"x","user_id":"x","is_admin":true}}"#,
        );
        let refused = authenticate(&config(), &forged).unwrap_err();
        assert_eq!(refused.status, 401);
    }

    /// Every participant holds a join token, whose signature is an HMAC of its own header and
    /// payload under the API secret: that text, signed so, is refused as a body.
    #[test]
    fn a_join_tokens_signature_does_not_sign_a_request() {
        use base64::Engine;
        let claims = crate::tokens::JoinClaims {
            name: "Eve".into(),
            user_id: "eve".into(),
            room_id: "r".into(),
            ..Default::default()
        };
        let config = EdgeConfig {
            api_secret: "a-secret-long-enough-for-hs256-tokens".into(),
            ..config()
        };
        let token =
            crate::tokens::mint_join_token("key", &config.api_secret, claims, 1_700_000_000, 600)
                .unwrap();
        let (signing_input, signature) = token.rsplit_once('.').unwrap();
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap();
        let signature: String = signature.iter().map(|b| format!("{b:02x}")).collect();
        let forged = request(
            &[("api-key", "key"), ("hash-signature", &signature)],
            signing_input.as_bytes(),
        );
        let refused = authenticate(&config, &forged).unwrap_err();
        let body: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
        assert_eq!(body["status"], false, "{body}");
        assert_eq!(body["status_code"], "INVALID_PARAMETERS", "{body}");
    }

    #[test]
    fn empty_and_object_bodies_are_json_object_text() {
        assert!(is_json_object_text(b""));
        assert!(is_json_object_text(b" \n{}"));
        assert!(!is_json_object_text(b"eyJhbGciOiJIUzI1NiJ9.e30"));
        assert!(!is_json_object_text(b"[]"));
    }

    #[test]
    fn protobuf_common_response() {
        let bytes = common_to_protobuf(&Common::fail(
            StatusCode::InvalidApiKey,
            "Invalid API key provided.",
        ));
        assert_eq!(bytes[0], 0x12);
        assert_eq!(bytes[1] as usize, "Invalid API key provided.".len());
        assert_eq!(&bytes[bytes.len() - 2..], &[0x18, 6]);
    }
}
