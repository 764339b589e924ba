//! The recorder's HMAC scheme, the same as the rest of edgemeet: `API-KEY` names the caller and
//! `HASH-SIGNATURE` is the lowercase hex HMAC-SHA256 of the raw body under the secret. Checks are
//! constant-time. The recorder signs its own events and heartbeats the same way.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Header naming the caller's key.
pub const API_KEY_HEADER: &str = "API-KEY";
/// Header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "HASH-SIGNATURE";

/// Hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Why a call was not authenticated (the message the caller gets).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// `API-KEY` or `HASH-SIGNATURE` is absent.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// The key is not ours.
    #[error("invalid API key")]
    Key,
    /// The signature does not match the body.
    #[error("invalid signature")]
    Signature,
}

/// Checks a call's key and signature against ours, in constant time.
pub fn verify(
    api_key: &str,
    secret: &str,
    presented_key: Option<&str>,
    signature_hex: Option<&str>,
    body: &[u8],
) -> Result<(), AuthError> {
    let presented_key = presented_key
        .filter(|k| !k.is_empty())
        .ok_or(AuthError::Missing(API_KEY_HEADER))?;
    if !bool::from(presented_key.as_bytes().ct_eq(api_key.as_bytes())) {
        return Err(AuthError::Key);
    }
    let signature_hex = signature_hex
        .filter(|s| !s.is_empty())
        .ok_or(AuthError::Missing(SIGNATURE_HEADER))?;
    let signature = hex::decode(signature_hex.trim()).map_err(|_| AuthError::Signature)?;
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(secret.as_bytes()).map_err(|_| AuthError::Signature)?;
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| AuthError::Signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_key_and_signature_pass() {
        let body = br#"{"job_id":"a"}"#;
        let good = sign(b"secret-secret-secret", body);
        let check = |key, sig: Option<&str>, body: &[u8]| {
            verify("key", "secret-secret-secret", key, sig, body)
        };
        assert_eq!(check(Some("key"), Some(&good), body), Ok(()));
        assert_eq!(check(Some("key"), Some(&good.to_uppercase()), body), Ok(()));
        assert_eq!(
            check(None, Some(&good), body),
            Err(AuthError::Missing(API_KEY_HEADER))
        );
        assert_eq!(check(Some("other"), Some(&good), body), Err(AuthError::Key));
        assert_eq!(
            check(Some("key"), None, body),
            Err(AuthError::Missing(SIGNATURE_HEADER))
        );
        assert_eq!(
            check(Some("key"), Some("zz"), body),
            Err(AuthError::Signature)
        );
        assert_eq!(
            check(Some("key"), Some(&good), b"{}"),
            Err(AuthError::Signature)
        );
    }
}
