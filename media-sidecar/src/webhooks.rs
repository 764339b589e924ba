//! LiveKit's webhooks, received and verified. LiveKit signs each one: its `Authorization` header
//! is a JWT signed with the API secret, issued by the API key, whose `sha256` claim is the
//! base64 SHA-256 of the body. `livekit-api`'s [`WebhookReceiver`] checks all of that.
//!
//! Everything that fails before the signature is proven is answered 401, so an unauthenticated
//! caller learns nothing about the body; an authentic body that is not a usable event is 400.

use livekit_api::access_token::TokenVerifier;
use livekit_api::webhooks::{WebhookError, WebhookReceiver};

use crate::config::Secret;

/// An authentic LiveKit event, ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEvent {
    /// LiveKit's event id (`EV_...`), the outbox and the edge de-duplicate on it.
    pub id: String,
    /// The event's kind, e.g. `room_started` (for logs).
    pub event: String,
    /// The event's JSON exactly as LiveKit posted it (surrounding whitespace trimmed).
    pub json: String,
}

/// Why a webhook was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejection {
    /// Not signed by our LiveKit (401). The reason is for logs; it never holds the token.
    #[error("unauthorized webhook: {0}")]
    Unauthorized(&'static str),
    /// Signed, but not a LiveKit event the edge could use (400).
    #[error("malformed webhook: {0}")]
    Malformed(&'static str),
}

/// Verifies webhooks signed with one LiveKit API key.
#[derive(Clone, Debug)]
pub struct WebhookVerifier {
    receiver: WebhookReceiver,
}

impl WebhookVerifier {
    /// A verifier for webhooks LiveKit signs with `api_key` and `api_secret`.
    pub fn new(api_key: &str, api_secret: &Secret) -> WebhookVerifier {
        WebhookVerifier {
            receiver: WebhookReceiver::new(TokenVerifier::with_api_key(
                api_key,
                api_secret.expose(),
            )),
        }
    }

    /// Checks one webhook: its `Authorization` header value and its raw body.
    pub fn verify(
        &self,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<VerifiedEvent, Rejection> {
        let token = authorization
            .map(|a| a.trim())
            .map(|a| a.strip_prefix("Bearer ").unwrap_or(a).trim())
            .filter(|t| !t.is_empty())
            .ok_or(Rejection::Unauthorized("no Authorization header"))?;
        let body =
            std::str::from_utf8(body).map_err(|_| Rejection::Unauthorized("body is not UTF-8"))?;
        let (id, event) = match self.receiver.receive(body, token) {
            Ok(event) => (event.id, event.event),
            Err(WebhookError::InvalidAuth(_)) => {
                return Err(Rejection::Unauthorized("bad or expired token"))
            }
            Err(WebhookError::InvalidSignature | WebhookError::InvalidBase64(_)) => {
                return Err(Rejection::Unauthorized("body does not match the token"))
            }
            // The signature held; the body only failed to decode as this livekit-protocol's
            // WebhookEvent (a newer server may send values it does not know). The edge takes
            // the JSON as it is, so only the id is required.
            Err(WebhookError::InvalidData(_)) => loose_fields(body)?,
        };
        if id.is_empty() {
            return Err(Rejection::Malformed("the event has no id"));
        }
        Ok(VerifiedEvent {
            id,
            event,
            json: body.trim().to_owned(),
        })
    }
}

/// `id` and `event` of an authentic body that is a JSON object but not a known event.
fn loose_fields(body: &str) -> Result<(String, String), Rejection> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|_| Rejection::Malformed("the body is not JSON"))?;
    let field = |name| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    if !value.is_object() {
        return Err(Rejection::Malformed("the body is not a JSON object"));
    }
    Ok((
        field("id").unwrap_or_default(),
        field("event").unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use livekit_api::access_token::AccessToken;
    use sha2::{Digest, Sha256};

    const KEY: &str = "devkey";
    const SECRET: &str = "devsecret-devsecret-devsecret-devsecret";

    fn token(secret: &str, body: &str) -> String {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
        AccessToken::with_api_key(KEY, secret)
            .with_sha256(&hash)
            .to_jwt()
            .expect("jwt")
    }

    fn verifier() -> WebhookVerifier {
        WebhookVerifier::new(KEY, &Secret::new(SECRET))
    }

    const BODY: &str = r#"{"event":"room_started", "room":{"sid":"RM_1","name":"r1"}, "id":"EV_1", "createdAt":"1795497519"}"#;

    #[test]
    fn a_signed_webhook_is_accepted_as_posted() {
        let body = format!("{BODY}\n");
        let event = verifier()
            .verify(Some(&token(SECRET, &body)), body.as_bytes())
            .expect("accepted");
        assert_eq!(event.id, "EV_1");
        assert_eq!(event.event, "room_started");
        assert_eq!(event.json, BODY);
        let bearer = format!("Bearer {}", token(SECRET, BODY));
        assert!(verifier().verify(Some(&bearer), BODY.as_bytes()).is_ok());
    }

    #[test]
    fn forged_or_tampered_webhooks_are_unauthorized() {
        let v = verifier();
        let unauthorized = |r: Result<VerifiedEvent, Rejection>| {
            assert!(matches!(r, Err(Rejection::Unauthorized(_))), "{r:?}");
        };
        unauthorized(v.verify(None, BODY.as_bytes()));
        unauthorized(v.verify(Some(""), BODY.as_bytes()));
        unauthorized(v.verify(Some("not-a-jwt"), BODY.as_bytes()));
        let forged = token("another-secret-another-secret-another", BODY);
        unauthorized(v.verify(Some(&forged), BODY.as_bytes()));
        let tampered = BODY.replace("r1", "r2");
        unauthorized(v.verify(Some(&token(SECRET, BODY)), tampered.as_bytes()));
        unauthorized(v.verify(Some(&token(SECRET, BODY)), &[0xff, 0xfe]));
    }

    #[test]
    fn authentic_bodies_without_an_event_are_malformed() {
        let v = verifier();
        for body in [r#"{"event":"room_started"}"#, "[1,2]", "nope"] {
            let r = v.verify(Some(&token(SECRET, body)), body.as_bytes());
            assert!(matches!(r, Err(Rejection::Malformed(_))), "{body}: {r:?}");
        }
    }

    #[test]
    fn unknown_values_from_a_newer_livekit_still_pass() {
        let body = r#"{"event":"room_started","id":"EV_2","room":{"sid":"RM_1"},"participant":{"kind":"SOMETHING_NEW"}}"#;
        // The premise: this livekit-protocol cannot decode it.
        assert!(serde_json::from_str::<livekit_protocol::WebhookEvent>(body).is_err());
        let event = verifier()
            .verify(Some(&token(SECRET, body)), body.as_bytes())
            .expect("accepted");
        assert_eq!((event.id.as_str(), event.json.as_str()), ("EV_2", body));
    }
}
