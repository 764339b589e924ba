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
    /// An answer other than 2xx.
    #[error("edge answered {0}")]
    Status(u16),
}

impl EdgeError {
    /// The HTTP status the edge answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            EdgeError::Unreachable(_) => None,
            EdgeError::Status(status) => Some(*status),
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
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
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

    /// POSTs `body` (JSON) to `path`, signed. Ok only on a 2xx.
    pub async fn post(&self, path: &str, body: Vec<u8>) -> Result<(), EdgeError> {
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
        if response.status().is_success() {
            Ok(())
        } else {
            Err(EdgeError::Status(response.status().as_u16()))
        }
    }
}
