//! Authentication of `/auth/*` calls: `API-KEY` plus `HASH-SIGNATURE`, the lowercase hex
//! HMAC-SHA256 of the raw body under the API secret, compared in constant time.
//!
//! Every failure is a 401 carrying a `CommonResponse`, as JSON, or as protobuf when the request's
//! `Content-Type` is exactly `application/protobuf` (plugNmeet's rule).

use subtle::ConstantTimeEq;

use crate::config::EdgeConfig;
use crate::exchange::{EdgeRequest, EdgeResponse};
use crate::wire::{Common, StatusCode};

pub use edgemeet_protocol::signing::{sign, verify_signature};

/// Verifies an `/auth/*` request; `Err` holds the 401 to send.
pub fn authenticate(config: &EdgeConfig, request: &EdgeRequest) -> Result<(), EdgeResponse> {
    let fail = |code, msg: &str| Err(unauthorized(request, Common::fail(code, msg)));
    let Some(api_key) = request.header("api-key").filter(|k| !k.is_empty()) else {
        return fail(
            StatusCode::MissingRequiredParameter,
            "Missing API-KEY header.",
        );
    };
    if !bool::from(api_key.as_bytes().ct_eq(config.api_key.as_bytes())) {
        return fail(StatusCode::InvalidApiKey, "Invalid API key provided.");
    }
    let Some(signature) = request.header("hash-signature").filter(|s| !s.is_empty()) else {
        return fail(
            StatusCode::MissingRequiredParameter,
            "Missing HASH-SIGNATURE header.",
        );
    };
    // For multipart uploads plugNmeet signs the `Room-Id` header instead of the body.
    let is_multipart = request
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("multipart/form-data"));
    let signed: &[u8] = if is_multipart {
        request.header("room-id").unwrap_or("").as_bytes()
    } else {
        &request.body
    };
    if !verify_signature(config.api_secret.as_bytes(), signed, signature) {
        return fail(
            StatusCode::InvalidTokenOrSignature,
            "Failed to verify provided authentication details.",
        );
    }
    Ok(())
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
