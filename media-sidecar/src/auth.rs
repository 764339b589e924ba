//! edgemeet's HMAC scheme, used both ways: everything the sidecar sends the edge, and the admin
//! calls it accepts. `API-KEY` names the region and `HASH-SIGNATURE` is the lowercase hex
//! HMAC-SHA256 of the raw body under the region's `sidecar_secret`. Checks are constant-time
//! (`hmac`'s `verify_slice`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Header naming the region.
pub const API_KEY_HEADER: &str = "API-KEY";
/// Header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "HASH-SIGNATURE";

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!())
}

/// Lowercase hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Why a signed call was refused (the message the caller gets).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// `API-KEY` or `HASH-SIGNATURE` is absent.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// The key names another region.
    #[error("invalid API key")]
    Key,
    /// The signature does not match the body.
    #[error("invalid signature")]
    Signature,
}

/// Checks a call's key and signature: the key must be `region_id` and the signature the body's
/// HMAC under `secret`.
pub fn verify(
    region_id: &str,
    secret: &[u8],
    presented_key: Option<&str>,
    signature_hex: Option<&str>,
    body: &[u8],
) -> Result<(), AuthError> {
    let presented_key = presented_key
        .filter(|k| !k.is_empty())
        .ok_or(AuthError::Missing(API_KEY_HEADER))?;
    if presented_key != region_id {
        return Err(AuthError::Key);
    }
    let signature_hex = signature_hex
        .filter(|s| !s.is_empty())
        .ok_or(AuthError::Missing(SIGNATURE_HEADER))?;
    let signature = hex::decode(signature_hex.trim()).map_err(|_| AuthError::Signature)?;
    let mut mac = mac(secret);
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| AuthError::Signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn signature_is_lowercase_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(sign(SECRET, b"{}").len(), 64);
    }

    #[test]
    fn only_the_right_region_and_signature_pass() {
        let body = br#"{"deadline_seconds":60}"#;
        let good = sign(SECRET, body);
        let check = |key, sig: Option<&str>, body: &[u8]| verify("eu", SECRET, key, sig, body);
        assert_eq!(check(Some("eu"), Some(&good), body), Ok(()));
        assert_eq!(check(Some("eu"), Some(&good.to_uppercase()), body), Ok(()));
        assert_eq!(
            check(None, Some(&good), body),
            Err(AuthError::Missing(API_KEY_HEADER))
        );
        assert_eq!(check(Some("us"), Some(&good), body), Err(AuthError::Key));
        assert_eq!(
            check(Some("eu"), None, body),
            Err(AuthError::Missing(SIGNATURE_HEADER))
        );
        assert_eq!(
            check(Some("eu"), Some("zz"), body),
            Err(AuthError::Signature)
        );
        assert_eq!(
            check(Some("eu"), Some(&good[..62]), body),
            Err(AuthError::Signature)
        );
        assert_eq!(
            check(Some("eu"), Some(&good), b"{}"),
            Err(AuthError::Signature)
        );
        let other = sign(b"another-secret-another-secret-xx", body);
        assert_eq!(
            check(Some("eu"), Some(&other), body),
            Err(AuthError::Signature)
        );
    }
}
