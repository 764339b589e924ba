//! The job API. Every route but `/health` is a signed JSON POST (`API-KEY`, `HASH-SIGNATURE`
//! over the raw body), and every answer is JSON with `status` (bool) and `msg`, as in the rest of
//! edgemeet.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /jobs/start` | [`StartRequest`] | `job`; 200 also for a repeat of the same job id |
//! | `POST /jobs/stop` | `{"job_id"}` | `job` (ENDING, or as it ended) |
//! | `POST /jobs/list` | `{}` | `jobs`, `capacity` |
//! | `GET /health` | | `status` |
//!
//! Errors: 400 bad input, 401 authentication, 404 unknown job, 409 job id taken by a different
//! job, or a new job id whose earlier recording (of a job the node has forgotten) is still in
//! the recordings directory or the bucket, 413 body too large, 503 no capacity (`msg` starts
//! with "no capacity": the node is full, or, for a job that writes a file, free disk space in
//! the recordings directory is below `admission.min_free_disk_mb` or an ended job's final
//! state waits for the job database to take it, or the job database is out of space).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use edgemeet_serve::{BodyError, Limits};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{key_matches, verify, API_KEY_HEADER, SIGNATURE_HEADER};
use crate::job::StartRequest;
use crate::store::StoreError;
use crate::supervisor::{Node, StartError, StopError};

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;
/// Connections and deadlines: 256 connections at once, 30 s for a request's head and then its
/// body.
pub const LIMITS: Limits = Limits {
    max_connections: 256,
    read_timeout: std::time::Duration::from_secs(30),
};
/// Most jobs one list returns.
const LIST_LIMIT: usize = 200;

/// The API's routes over `node`.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/jobs/start", post(start))
        .route("/jobs/stop", post(stop))
        .route("/jobs/list", post(list))
        .route("/health", get(health))
        .fallback(not_found)
        .with_state(node)
}

fn reply(status: StatusCode, ok: bool, msg: &str, mut extra: Value) -> Response {
    let mut body = json!({ "status": ok, "msg": msg });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object_mut()) {
        body.append(extra);
    }
    (status, Json(body)).into_response()
}

fn fail(status: StatusCode, msg: &str) -> Response {
    reply(status, false, msg, json!({}))
}

/// A failed job store: logged here, and only "internal error" for the caller.
fn store_failed(e: &StoreError) -> Response {
    tracing::error!(error = %e, "job store failed");
    fail(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// Checks the signature and parses the body; `Err` is the answer to send. The body is read only
/// from a caller that names this node's key, and only up to [`MAX_BODY`] within the deadline.
async fn authenticated<T: for<'de> Deserialize<'de>>(
    node: &Node,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, Box<Response>> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let config = node.config();
    if !key_matches(&config.api_key, header(API_KEY_HEADER)) {
        return Err(Box::new(fail(StatusCode::UNAUTHORIZED, "invalid API-KEY")));
    }
    let body = edgemeet_serve::read_body(body, MAX_BODY, LIMITS.read_timeout)
        .await
        .map_err(|e| {
            let status = match e {
                BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::TooSlow => StatusCode::REQUEST_TIMEOUT,
            };
            Box::new(fail(status, &e.to_string()))
        })?;
    verify(
        &config.api_key,
        config.api_secret.as_bytes(),
        header(API_KEY_HEADER),
        header(SIGNATURE_HEADER),
        &body,
    )
    .map_err(|e| Box::new(fail(StatusCode::UNAUTHORIZED, &e.to_string())))?;
    serde_json::from_slice(&body).map_err(|e| {
        Box::new(fail(
            StatusCode::BAD_REQUEST,
            &format!("invalid request: {e}"),
        ))
    })
}

async fn start(State(node): State<Arc<Node>>, headers: HeaderMap, body: Body) -> Response {
    let request: StartRequest = match authenticated(&node, &headers, body).await {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match node.start(request).await {
        Ok(started) => reply(
            StatusCode::OK,
            true,
            if started.existing {
                "job already exists"
            } else {
                "job started"
            },
            json!({ "job": started.job }),
        ),
        Err(e @ StartError::Invalid(_)) => fail(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(e @ (StartError::Conflict(_) | StartError::RecordingExists { .. })) => {
            fail(StatusCode::CONFLICT, &e.to_string())
        }
        Err(e @ StartError::NoCapacity(_)) => fail(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(StartError::Store(e)) => store_failed(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StopRequest {
    job_id: String,
}

async fn stop(State(node): State<Arc<Node>>, headers: HeaderMap, body: Body) -> Response {
    let request: StopRequest = match authenticated(&node, &headers, body).await {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match node.stop(&request.job_id) {
        Ok(job) => reply(StatusCode::OK, true, "stopping", json!({ "job": job })),
        Err(e @ StopError::NotFound(_)) => fail(StatusCode::NOT_FOUND, &e.to_string()),
        Err(StopError::Store(e)) => store_failed(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListRequest {}

async fn list(State(node): State<Arc<Node>>, headers: HeaderMap, body: Body) -> Response {
    if let Err(response) = authenticated::<ListRequest>(&node, &headers, body).await {
        return *response;
    }
    match node.list(LIST_LIMIT) {
        Ok((jobs, capacity)) => reply(
            StatusCode::OK,
            true,
            "success",
            json!({ "jobs": jobs, "capacity": capacity }),
        ),
        Err(e) => store_failed(&e),
    }
}

async fn health() -> Response {
    reply(StatusCode::OK, true, "healthy", json!({}))
}

async fn not_found() -> Response {
    fail(StatusCode::NOT_FOUND, "no such route")
}
