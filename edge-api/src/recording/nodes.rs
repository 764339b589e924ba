//! The recorder nodes' job API as the edge calls it: `POST /jobs/start`, `/jobs/stop` and
//! `/jobs/delete`,
//! JSON signed with the node's key and secret (`API-KEY`, `HASH-SIGNATURE`).

use serde::{Deserialize, Serialize};

use crate::auth::sign;
use crate::config::Recorder;
use crate::platform::{HttpClient, OutboundRequest};

/// The longest a call waits for a node. A node answers a start once it has admitted the job
/// (before it joins the room), in milliseconds.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A job as the node's `/jobs/start` takes it.
#[derive(Serialize)]
pub struct StartJob<'a> {
    /// The edge's id for the job (the recording's record_id).
    pub job_id: &'a str,
    /// The room, reported back in the job's events.
    pub room_id: &'a str,
    /// The room's region's LiveKit URL.
    pub livekit_url: &'a str,
    /// A hidden subscriber's LiveKit token for the room.
    pub token: &'a str,
    /// Always `composite`.
    pub mode: &'static str,
    /// Whether it writes a file.
    pub file: bool,
    /// Where it broadcasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtmp_url: Option<&'a str>,
}

/// A node's call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// No answer.
    #[error("recorder unreachable: {0}")]
    Unreachable(String),
    /// The node has no room for the job (503 "no capacity ...").
    #[error("recorder full: {0}")]
    Full(String),
    /// The node does not know the job (404).
    #[error("recorder does not know the job")]
    UnknownJob,
    /// The node found the job's input wrong (400): `msg` is the node's, for the user.
    #[error("recorder refused the job: {0}")]
    BadJob(String),
    /// Any other answer.
    #[error("recorder answered {status}: {msg}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The node's message.
        msg: String,
    },
}

#[derive(Deserialize, Default)]
struct NodeReply {
    #[serde(default)]
    msg: String,
}

/// One node's job API over the edge's outbound HTTP.
pub struct NodeApi<'a, H> {
    http: &'a H,
    node: &'a Recorder,
}

impl<'a, H: HttpClient> NodeApi<'a, H> {
    /// The job API of `node`.
    pub fn new(http: &'a H, node: &'a Recorder) -> Self {
        NodeApi { http, node }
    }

    /// Starts a job (a repeat of the same job id is the same job).
    pub async fn start(&self, job: &StartJob<'_>) -> Result<(), NodeError> {
        self.call("/jobs/start", &serde_json::to_vec(job).unwrap_or_default())
            .await
    }

    /// Asks a job to end (it then ends by itself and reports how).
    pub async fn stop(&self, job_id: &str) -> Result<(), NodeError> {
        self.call_about("/jobs/stop", job_id).await
    }

    /// Deletes an ended job's recording from the node (its file, or its object in the bucket).
    pub async fn delete(&self, job_id: &str) -> Result<(), NodeError> {
        self.call_about("/jobs/delete", job_id).await
    }

    /// A call whose body names one job: `{"job_id"}`.
    async fn call_about(&self, path: &str, job_id: &str) -> Result<(), NodeError> {
        let body = serde_json::to_vec(&serde_json::json!({ "job_id": job_id })).unwrap_or_default();
        self.call(path, &body).await
    }

    async fn call(&self, path: &str, body: &[u8]) -> Result<(), NodeError> {
        let request = OutboundRequest {
            method: http::Method::POST,
            url: format!("{}{path}", self.node.url),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("api-key".into(), self.node.api_key.clone()),
                (
                    "hash-signature".into(),
                    sign(self.node.api_secret.as_bytes(), body),
                ),
            ],
            body: body.to_vec(),
            timeout: CALL_TIMEOUT,
            read_body: true,
        };
        let response = self
            .http
            .send(request)
            .await
            .map_err(|e| NodeError::Unreachable(e.to_string()))?;
        if (200..300).contains(&response.status) {
            return Ok(());
        }
        let msg = serde_json::from_slice::<NodeReply>(&response.body)
            .unwrap_or_default()
            .msg;
        Err(match response.status {
            503 if msg.starts_with("no capacity") => NodeError::Full(msg),
            404 => NodeError::UnknownJob,
            400 => NodeError::BadJob(msg),
            status => NodeError::Status { status, msg },
        })
    }
}
