//! The one request-signing scheme every hop in edgemeet uses (plugNmeet's): `API-KEY` names the
//! caller and `HASH-SIGNATURE` is the lowercase hex HMAC-SHA256 of the raw body under the
//! caller's secret. Customers' backends sign the edge's API this way; media-sidecars sign their
//! heartbeats and webhook batches (with their region's own secret); recorders sign their events
//! and accept jobs signed this way. Every comparison is constant-time. Works on every target the
//! edge runs on (no I/O, no std-only dependency).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Header naming the caller's key.
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

/// Whether `signature_hex` (hex, either case) is the HMAC of `body` under `secret`, compared in
/// constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], signature_hex: &str) -> bool {
    let Ok(signature) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let mut mac = mac(secret);
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// Why a signed call was refused (the message the caller gets; it never holds a secret).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// `API-KEY` or `HASH-SIGNATURE` is absent.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// The key is not the expected one.
    #[error("invalid API key")]
    Key,
    /// The signature does not match the body.
    #[error("invalid signature")]
    Signature,
}

/// Whether `presented_key` is `expected_key`, compared in constant time (a service checks it
/// before reading a body, and again in [`verify`]).
pub fn key_matches(expected_key: &str, presented_key: Option<&str>) -> bool {
    presented_key
        .filter(|k| !k.is_empty())
        .is_some_and(|k| bool::from(k.as_bytes().ct_eq(expected_key.as_bytes())))
}

/// Checks a call: `presented_key` must be `expected_key` and `signature_hex` the HMAC of `body`
/// under `secret`, both compared in constant time.
pub fn verify(
    expected_key: &str,
    secret: &[u8],
    presented_key: Option<&str>,
    signature_hex: Option<&str>,
    body: &[u8],
) -> Result<(), AuthError> {
    if presented_key.is_none_or(str::is_empty) {
        return Err(AuthError::Missing(API_KEY_HEADER));
    }
    if !key_matches(expected_key, presented_key) {
        return Err(AuthError::Key);
    }
    let signature_hex = signature_hex
        .filter(|s| !s.is_empty())
        .ok_or(AuthError::Missing(SIGNATURE_HEADER))?;
    if verify_signature(secret, body, signature_hex) {
        Ok(())
    } else {
        Err(AuthError::Signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signatures_match_only_their_body_and_secret() {
        let sig = sign(b"secret", b"{\"a\":1}");
        assert_eq!(sig, sig.to_lowercase());
        assert!(verify_signature(b"secret", b"{\"a\":1}", &sig));
        assert!(verify_signature(
            b"secret",
            b"{\"a\":1}",
            &sig.to_uppercase()
        ));
        assert!(!verify_signature(b"secret", b"{\"a\":2}", &sig));
        assert!(!verify_signature(b"other", b"{\"a\":1}", &sig));
        assert!(!verify_signature(b"secret", b"{\"a\":1}", "zz"));
        assert!(!verify_signature(b"secret", b"{\"a\":1}", &sig[..10]));
    }

    #[test]
    fn only_the_right_key_and_signature_pass() {
        let body = b"{\"x\":1}";
        let good = sign(b"secret", body);
        let check = |key, sig| verify("key", b"secret", key, sig, body);
        assert_eq!(check(Some("key"), Some(&good)), Ok(()));
        assert_eq!(check(Some("other"), Some(&good)), Err(AuthError::Key));
        assert_eq!(
            check(None, Some(&good)),
            Err(AuthError::Missing(API_KEY_HEADER))
        );
        assert_eq!(
            check(Some("key"), None),
            Err(AuthError::Missing(SIGNATURE_HEADER))
        );
        assert_eq!(
            check(Some("key"), Some("nothex")),
            Err(AuthError::Signature)
        );
        let wrong = sign(b"other", body);
        assert_eq!(check(Some("key"), Some(&wrong)), Err(AuthError::Signature));
    }

    #[test]
    fn keys_match_only_exactly() {
        assert!(key_matches("recorder", Some("recorder")));
        assert!(!key_matches("recorder", Some("recorder2")));
        assert!(!key_matches("recorder", Some("Recorder")));
        assert!(!key_matches("recorder", Some("")));
        assert!(!key_matches("recorder", None));
        assert!(!key_matches("", Some("")));
    }
}
