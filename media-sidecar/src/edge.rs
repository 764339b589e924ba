//! The edge's internal endpoints, as the sidecar calls them: signed JSON `POST`s (see
//! [`crate::auth`]) to `{edge.url}/internal/sidecar/heartbeat` and `/internal/sidecar/events`.

use std::time::Duration;

use crate::auth::{sign, API_KEY_HEADER, SIGNATURE_HEADER};
use crate::config::Secret;

/// The heartbeat endpoint's path under the edge's base URL.
pub const HEARTBEAT_PATH: &str = "/internal/sidecar/heartbeat";
/// The event relay endpoint's path under the edge's base URL.
pub const EVENTS_PATH: &str = "/internal/sidecar/events";

/// Why a POST to the edge did not land.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// No answer (refused, reset, timed out).
    #[error("edge unreachable: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// An answer other than 2xx (a redirect included: nothing is sent on to another URL).
    #[error("edge answered {0}")]
    Status(u16),
    /// 413: the batch holds more events than the edge takes; `max_events` is its limit, when
    /// it said.
    #[error("edge answered 413: at most {max_events:?} events per batch")]
    TooLarge {
        /// The most events a batch may hold, from the answer's `max_events`.
        max_events: Option<usize>,
    },
    /// A 2xx that is not the edge's acknowledgement (`{"status": true, ...}`): the URL reaches
    /// something else, which must not be taken to have stored anything.
    #[error("a 2xx answer ({0}) that is not the edge's acknowledgement")]
    NotAcknowledged(u16),
}

impl EdgeError {
    /// The HTTP status the edge answered, if the edge answered (a 2xx from something else
    /// counts as no answer: retried, never acknowledged or set aside).
    pub fn status(&self) -> Option<u16> {
        match self {
            EdgeError::Unreachable(_) | EdgeError::NotAcknowledged(_) => None,
            EdgeError::Status(status) => Some(*status),
            EdgeError::TooLarge { .. } => Some(413),
        }
    }
}

/// Signs and POSTs to the edge as this region.
#[derive(Clone)]
pub struct EdgeClient {
    http: reqwest::Client,
    base: String,
    region_id: String,
    secret: Secret,
}

impl EdgeClient {
    /// A client for the edge at `base_url`, signing as `region_id` with `secret`.
    pub fn new(base_url: &str, region_id: &str, secret: Secret) -> EdgeClient {
        // No redirects: reqwest would follow a 301/302 as a bodiless GET, and a 200 from wherever
        // it lands would count as delivered.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        EdgeClient {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            region_id: region_id.to_owned(),
            secret,
        }
    }

    /// The region this client signs as.
    pub fn region_id(&self) -> &str {
        &self.region_id
    }

    /// POSTs `body` (JSON) to `path`, signed. Ok, with the edge's reply, only on a 2xx whose
    /// body is the edge's acknowledgement.
    pub async fn post(&self, path: &str, body: Vec<u8>) -> Result<serde_json::Value, EdgeError> {
        let signature = sign(self.secret.expose().as_bytes(), &body);
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .header(API_KEY_HEADER, &self.region_id)
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| EdgeError::Unreachable(e.without_url()))?;
        let status = response.status().as_u16();
        if status == 413 {
            let max_events = response
                .bytes()
                .await
                .ok()
                .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok())
                .and_then(|reply| reply["max_events"].as_u64())
                .and_then(|n| usize::try_from(n).ok());
            return Err(EdgeError::TooLarge { max_events });
        }
        if !response.status().is_success() {
            return Err(EdgeError::Status(status));
        }
        let reply = response
            .bytes()
            .await
            .map_err(|e| EdgeError::Unreachable(e.without_url()))?;
        acknowledgement(&reply).ok_or(EdgeError::NotAcknowledged(status))
    }
}

/// The edge's reply if `body` is its acknowledgement: a JSON object with `"status": true`.
pub fn acknowledgement(body: &[u8]) -> Option<serde_json::Value> {
    let reply: serde_json::Value = serde_json::from_slice(body).ok()?;
    (reply["status"] == true).then_some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_edges_own_yes_acknowledges() {
        let reply = acknowledgement(br#"{"status":true,"msg":"events applied","applied":2}"#)
            .expect("acknowledged");
        assert_eq!(reply["applied"], 2);
        for other in [
            &b"<html>Welcome</html>"[..],
            b"",
            b"{}",
            br#"{"status":false}"#,
            br#"{"status":"true"}"#,
            b"[true]",
        ] {
            assert!(acknowledgement(other).is_none(), "{other:?}");
        }
        assert_eq!(EdgeError::NotAcknowledged(200).status(), None);
        assert_eq!(EdgeError::Status(302).status(), Some(302));
        assert_eq!(EdgeError::TooLarge { max_events: None }.status(), Some(413));
    }
}
