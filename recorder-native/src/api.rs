//! The job API. Every route but `/health` and `/download/{token}` is a signed JSON POST
//! (`API-KEY`, `HASH-SIGNATURE` over the raw body), and every answer is JSON with `status`
//! (bool) and `msg`, as in the rest of edgemeet.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /jobs/start` | [`StartRequest`] | `job`; 200 also for a repeat of the same job id |
//! | `POST /jobs/stop` | `{"job_id"}` | `job` (ENDING, or as it ended) |
//! | `POST /jobs/list` | `{}` | `jobs`, `capacity` |
//! | `POST /jobs/delete` | `{"job_id"}` | `job` (its `file` and `file_bytes` now null); 200 again for a repeat |
//! | `GET /download/{token}` | | the recording (see below) |
//! | `GET /health` | | `status` |
//!
//! `/jobs/delete` deletes an ended (COMPLETE or FAILED) job's recording, local or in the bucket;
//! 409 for a job that has not ended, 502 when the bucket refuses, 400 for a `job_id` that is not
//! one. For a job the node has forgotten it deletes what is kept of it (`job` null); when
//! nothing is kept it answers 200 "nothing kept" (a deletion may be repeated).
//!
//! `GET` (or `HEAD`) `/download/{token}` needs no `API-KEY`: the token
//! ([`edgemeet_protocol::download`], minted by the control plane with this node's `api_secret`)
//! is the authorization, so a browser can follow a redirect to it. It answers a COMPLETE
//! composite's MP4: streamed from disk (`Content-Disposition: attachment`, one `Range: bytes=`
//! range answered with 206), or a 307 to a presigned GET URL of its object in the bucket, valid
//! for [`PRESIGNED_FOR`](crate::supervisor::PRESIGNED_FOR). Errors are plain text: 401 for a
//! token that is malformed, forged or expired, 404 for an unknown job (a forgotten one is served
//! from what is kept of it), one that has not ended with a recording, a tracks job (no single
//! file), a deleted or missing recording; 416 for a range past the end.
//! The token is never logged.
//!
//! Errors: 400 bad input, 401 authentication, 404 unknown job, 409 job id taken by a different
//! job, or a new job id whose earlier recording (of a job the node has forgotten) is still in
//! the recordings directory or the bucket, 413 body too large, 503 no capacity (`msg` starts
//! with "no capacity": the node is full, or, for a job that writes a file, free disk space in
//! the recordings directory is below `admission.min_free_disk_mb` or an ended job's final
//! state waits for the job database to take it, or the job database is out of space).

use std::sync::Arc;

use std::path::Path;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use edgemeet_serve::{BodyError, Limits};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{key_matches, verify, API_KEY_HEADER, SIGNATURE_HEADER};
use crate::job::is_job_id;
use crate::job::StartRequest;
use crate::storage::{attachment, StorageError};
use crate::store::StoreError;
use crate::supervisor::{
    DeleteError, Deleted, Node, Recording, RecordingError, StartError, StopError,
};

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;
/// Connections and deadlines: 256 connections at once, 30 s for a request's head and then its
/// body, and 60 s for a client (a download's browser) to take more of an answer.
pub const LIMITS: Limits = Limits {
    max_connections: 256,
    read_timeout: std::time::Duration::from_secs(30),
    write_timeout: std::time::Duration::from_secs(60),
};
/// Most jobs one list returns.
const LIST_LIMIT: usize = 200;

/// The API's routes over `node`.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/jobs/start", post(start))
        .route("/jobs/stop", post(stop))
        .route("/jobs/list", post(list))
        .route("/jobs/delete", post(delete))
        // `get` answers HEAD too (axum drops the body).
        .route("/download/{token}", get(download))
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteRequest {
    job_id: String,
}

async fn delete(State(node): State<Arc<Node>>, headers: HeaderMap, body: Body) -> Response {
    let request: DeleteRequest = match authenticated(&node, &headers, body).await {
        Ok(request) => request,
        Err(response) => return *response,
    };
    if !is_job_id(&request.job_id) {
        return fail(
            StatusCode::BAD_REQUEST,
            "job_id must be 1 to 64 letters, digits, '-' or '_'",
        );
    }
    match node.delete(&request.job_id).await {
        Ok(Deleted::Job(job)) => reply(StatusCode::OK, true, "deleted", json!({ "job": job })),
        Ok(Deleted::Forgotten) => reply(StatusCode::OK, true, "deleted", json!({ "job": null })),
        // Nothing to delete is a done deletion (the caller may have lost an earlier answer).
        Ok(Deleted::NothingKept) => {
            reply(StatusCode::OK, true, "nothing kept", json!({ "job": null }))
        }
        Err(e @ DeleteError::NotFound(_)) => fail(StatusCode::NOT_FOUND, &e.to_string()),
        Err(e @ DeleteError::NotEnded { .. }) => fail(StatusCode::CONFLICT, &e.to_string()),
        Err(DeleteError::Store(e)) => store_failed(&e),
        Err(e) => {
            tracing::error!(job = %request.job_id, error = %e, "cannot delete the recording");
            let status = match e {
                DeleteError::Storage(StorageError::Foreign { .. }) | DeleteError::Remove { .. } => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
                _ => StatusCode::BAD_GATEWAY,
            };
            fail(status, &format!("the recording was not deleted: {e}"))
        }
    }
}

/// A plain-text answer that no cache keeps.
fn text(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        msg.to_owned(),
    )
        .into_response()
}

/// Unix seconds now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn download(
    State(node): State<Arc<Node>>,
    method: Method,
    UrlPath(token): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let secret = node.config().api_secret.as_bytes();
    let job_id = match edgemeet_protocol::download::verify(secret, &token, unix_now()) {
        Ok(job_id) => job_id,
        Err(e) => {
            // Never the token: it grants the recording until it expires.
            tracing::info!(error = %e, "download refused");
            return text(StatusCode::UNAUTHORIZED, &e.to_string());
        }
    };
    match node.recording(&job_id).await {
        Ok(Recording::Local(path)) => serve_file(&job_id, &path, &method, &headers).await,
        Ok(Recording::Presigned(url)) => {
            tracing::info!(job = %job_id, "recording download redirected to the bucket");
            let Ok(location) = HeaderValue::from_str(&url) else {
                return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
            };
            (
                StatusCode::TEMPORARY_REDIRECT,
                [
                    (header::LOCATION, location),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
            )
                .into_response()
        }
        Err(
            e @ (RecordingError::NotFound(_)
            | RecordingError::NotComplete { .. }
            | RecordingError::Tracks(_)
            | RecordingError::NoFile(_)
            | RecordingError::Missing(_)
            | RecordingError::Storage(StorageError::Foreign { .. })),
        ) => text(StatusCode::NOT_FOUND, &e.to_string()),
        Err(RecordingError::Store(e)) => {
            tracing::error!(error = %e, "job store failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
        Err(e) => {
            tracing::error!(job = %job_id, error = %e, "cannot hand out the recording");
            text(
                StatusCode::BAD_GATEWAY,
                "the recording store did not answer; try again",
            )
        }
    }
}

/// What part of a file a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum ByteRange {
    /// All of it.
    Whole,
    /// Bytes `start..=end`, within the file.
    Part { start: u64, end: u64 },
    /// A range that starts past the end (or an empty suffix): 416.
    Unsatisfiable,
}

/// The range a `Range` header asks of a file of `size` bytes. One `bytes=` range is honoured
/// (`a-b`, `a-`, `-n`); anything else (several ranges, another unit, a malformed or backwards
/// range) is ignored and the whole file sent, as RFC 9110 allows.
fn byte_range(header: Option<&str>, size: u64) -> ByteRange {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return ByteRange::Whole;
    };
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return ByteRange::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => ByteRange::Whole,
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if size == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Part {
                start: size.saturating_sub(n),
                end: size - 1,
            },
        },
        (first, last) => {
            let Some(start) = number(first) else {
                return ByteRange::Whole;
            };
            let end = match last {
                "" => u64::MAX,
                last => match number(last) {
                    Some(end) if end >= start => end,
                    _ => return ByteRange::Whole,
                },
            };
            if start >= size {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Part {
                    start,
                    end: end.min(size - 1),
                }
            }
        }
    }
}

/// Read from disk this many bytes at a time.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// Streams job `job_id`'s MP4 at `path`, or the one range asked for; headers only for HEAD.
async fn serve_file(job_id: &str, path: &Path, method: &Method, headers: &HeaderMap) -> Response {
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
    let missing = || {
        text(
            StatusCode::NOT_FOUND,
            &RecordingError::Missing(job_id.to_owned()).to_string(),
        )
    };
    let failed = |e: std::io::Error| {
        tracing::error!(job = %job_id, file = %path.display(), error = %e, "cannot read the recording");
        text(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    };
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return missing(),
        Err(e) => return failed(e),
    };
    let size = match file.metadata().await {
        Ok(meta) if meta.is_file() => meta.len(),
        Ok(_) => return missing(),
        Err(e) => return failed(e),
    };
    // No validators are sent, so a conditional range cannot be matched: the whole file.
    let range = if headers.contains_key(header::IF_RANGE) {
        ByteRange::Whole
    } else {
        byte_range(
            headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
            size,
        )
    };
    let (status, start, len) = match range {
        ByteRange::Whole => (StatusCode::OK, 0, size),
        ByteRange::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        ByteRange::Unsatisfiable => {
            let mut answer = text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                answer.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return answer;
        }
    };
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        if start > 0 {
            if let Err(e) = file.seek(std::io::SeekFrom::Start(start)).await {
                return failed(e);
            }
        }
        tracing::info!(job = %job_id, start, bytes = len, "recording download");
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
            file.take(len),
            DOWNLOAD_CHUNK,
        ))
    };
    let mut answer = Response::new(body);
    *answer.status_mut() = status;
    let fields = answer.headers_mut();
    fields.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    fields.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(value) = HeaderValue::from_str(&attachment(&format!("{job_id}.mp4"))) {
        fields.insert(header::CONTENT_DISPOSITION, value);
    }
    fields.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    fields.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    fields.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(value) =
            HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1))
        {
            fields.insert(header::CONTENT_RANGE, value);
        }
    }
    answer
}

async fn health() -> Response {
    reply(StatusCode::OK, true, "healthy", json!({}))
}

async fn not_found() -> Response {
    fail(StatusCode::NOT_FOUND, "no such route")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobState, Mode, StartRequest};
    use crate::storage::Storage;
    use crate::testing::{signed_post, FakeNode, RUNS_UNTIL_KILLED, WRITES_AND_FINISHES};
    use edgemeet_protocol::download::mint;

    /// The API over `node` on a loopback port: its address, and what stops it.
    async fn serve(node: &Arc<Node>) -> (String, tokio::sync::oneshot::Sender<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(edgemeet_serve::serve(
            listener,
            router(node.clone()),
            LIMITS,
            async {
                let _ = stopped.await;
            },
        ));
        (format!("http://{address}"), stop)
    }

    /// A signed POST of `body` to `path`: status and JSON answer.
    async fn call(node: &Node, base: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let (status, answer) = signed_post(node, &format!("{base}{path}"), &body).await;
        (StatusCode::from_u16(status).expect("status"), answer)
    }

    /// A download link of `job_id`'s recording, valid for `seconds` from now (negative:
    /// expired), signed with `secret`.
    fn link(base: &str, secret: &str, job_id: &str, seconds: i64) -> String {
        let expires_at = unix_now().saturating_add_signed(seconds);
        format!(
            "{base}/download/{}",
            mint(secret.as_bytes(), job_id, expires_at)
        )
    }

    /// A finished recording is downloaded whole, in part and as headers only with a valid
    /// link, and refused (401) with a forged or expired one; jobs without a single finished
    /// file answer 404. Deleting it removes the file and keeps the job, listed without it;
    /// deleting again succeeds, and a running job's deletion is refused with 409.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_recording_is_downloaded_with_a_link_and_deleted() {
        let fake = FakeNode::new("download", WRITES_AND_FINISHES, Storage::Local);
        let node = &fake.node;
        let secret = node.config().api_secret.clone();
        node.start(FakeNode::request("done")).await.expect("start");
        let tracks = StartRequest {
            mode: Mode::Tracks,
            ..FakeNode::request("tracks")
        };
        node.start(tracks).await.expect("start tracks");
        assert_eq!(fake.wait_ended("done").await.state, JobState::Complete);
        assert_eq!(fake.wait_ended("tracks").await.state, JobState::Complete);
        let file = fake.recordings().join("done.mp4");
        let recorded = std::fs::read(&file).expect("the recording");
        let (base, _stop) = serve(node).await;
        let client = reqwest::Client::new();

        let url = link(&base, &secret, "done", 60);
        let whole = client.get(&url).send().await.expect("download");
        assert_eq!(whole.status().as_u16(), 200);
        let header = |answer: &reqwest::Response, name: &str| {
            answer
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(header(&whole, "content-type").as_deref(), Some("video/mp4"));
        assert_eq!(
            header(&whole, "content-disposition").as_deref(),
            Some("attachment; filename=\"done.mp4\"")
        );
        assert_eq!(
            header(&whole, "cache-control").as_deref(),
            Some("private, no-store")
        );
        assert_eq!(
            header(&whole, "content-length"),
            Some(recorded.len().to_string())
        );
        assert_eq!(whole.bytes().await.expect("body"), recorded);

        let head = client.head(&url).send().await.expect("head");
        assert_eq!(head.status().as_u16(), 200);
        assert_eq!(
            header(&head, "content-length"),
            Some(recorded.len().to_string())
        );
        assert!(head.bytes().await.expect("body").is_empty());

        let part = client
            .get(&url)
            .header("range", "bytes=2-5")
            .send()
            .await
            .expect("range");
        assert_eq!(part.status().as_u16(), 206);
        assert_eq!(
            header(&part, "content-range"),
            Some(format!("bytes 2-5/{}", recorded.len()))
        );
        assert_eq!(part.bytes().await.expect("body"), recorded[2..=5]);
        let past = client
            .get(&url)
            .header("range", format!("bytes={}-", recorded.len()))
            .send()
            .await
            .expect("range");
        assert_eq!(past.status().as_u16(), 416);

        for (refused, status, says) in [
            (link(&base, &secret, "done", -61), 401, "expired"),
            (
                link(&base, "not-the-secret-at-all", "done", 60),
                401,
                "invalid",
            ),
            (
                format!("{base}/download/done.99999999999.00"),
                401,
                "malformed",
            ),
            (link(&base, &secret, "unknown", 60), 404, "no job unknown"),
            (link(&base, &secret, "tracks", 60), 404, "separate tracks"),
        ] {
            let answer = client.get(&refused).send().await.expect("answer");
            assert_eq!(answer.status().as_u16(), status, "{says}");
            assert_eq!(
                header(&answer, "content-type").as_deref(),
                Some("text/plain; charset=utf-8")
            );
            let text = answer.text().await.expect("text");
            assert!(text.contains(says), "{text}");
        }

        for _ in 0..2 {
            let (status, answer) =
                call(node, &base, "/jobs/delete", json!({ "job_id": "done" })).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            assert_eq!(answer["msg"], "deleted");
            assert_eq!(answer["job"]["state"], "COMPLETE");
            assert_eq!(answer["job"]["file"], Value::Null);
            assert_eq!(answer["job"]["file_bytes"], Value::Null);
        }
        assert!(!file.exists(), "the recording is still there");
        let (listed, _) = node.list(10).expect("list");
        let done = listed.iter().find(|j| j.job_id == "done").expect("listed");
        assert_eq!((done.file.as_deref(), done.file_bytes), (None, None));
        let gone = client.get(&url).send().await.expect("answer");
        assert_eq!(gone.status().as_u16(), 404);
        assert!(gone.text().await.expect("text").contains("deleted"));

        let (status, answer) =
            call(node, &base, "/jobs/delete", json!({ "job_id": "tracks" })).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(!fake.recordings().join("tracks").exists());
        let (status, answer) =
            call(node, &base, "/jobs/delete", json!({ "job_id": "nobody" })).await;
        assert_eq!(
            (status, &answer["msg"]),
            (StatusCode::OK, &json!("nothing kept")),
            "{answer}"
        );
    }

    /// A recording whose job the node has forgotten (after `keep_finished_jobs_days`) is still
    /// downloaded and deleted: a control plane keeps its catalog for longer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_forgotten_jobs_recording_is_still_served_and_deleted() {
        let fake = FakeNode::new("forgotten", WRITES_AND_FINISHES, Storage::Local);
        let node = &fake.node;
        let secret = node.config().api_secret.clone();
        std::fs::create_dir_all(fake.recordings()).expect("recordings dir");
        let file = fake.recordings().join("old-job.mp4");
        std::fs::write(&file, b"an old recording").expect("write");
        std::fs::create_dir_all(fake.recordings().join("old-tracks")).expect("tracks dir");
        std::fs::write(fake.recordings().join("old-tracks/a.mkv"), b"t").expect("write");
        let (base, _stop) = serve(node).await;
        let client = reqwest::Client::new();

        let answer = client
            .get(link(&base, &secret, "old-job", 60))
            .send()
            .await
            .expect("download");
        assert_eq!(answer.status().as_u16(), 200);
        assert_eq!(
            answer.bytes().await.expect("body").as_ref(),
            b"an old recording"
        );
        let tracks = client
            .get(link(&base, &secret, "old-tracks", 60))
            .send()
            .await
            .expect("answer");
        assert_eq!(tracks.status().as_u16(), 404);

        let (status, answer) =
            call(node, &base, "/jobs/delete", json!({ "job_id": "old-job" })).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["job"], Value::Null, "{answer}");
        assert!(!file.exists(), "the recording is still there");
        let (status, answer) =
            call(node, &base, "/jobs/delete", json!({ "job_id": "old-job" })).await;
        assert_eq!(
            (status, &answer["msg"]),
            (StatusCode::OK, &json!("nothing kept")),
            "{answer}"
        );
        // Nothing but a job id names a path.
        for bad in ["..", "", "/", "a/../b"] {
            let (status, _) = call(node, &base, "/jobs/delete", json!({ "job_id": bad })).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
        assert!(fake.recordings().exists(), "the recordings directory went");
        // A link to a file elsewhere is not handed out.
        let outside = fake
            .recordings()
            .parent()
            .expect("parent")
            .join("secret.txt");
        std::fs::write(&outside, b"not a recording").expect("write");
        std::os::unix::fs::symlink(&outside, fake.recordings().join("linked.mp4")).expect("link");
        let linked = client
            .get(link(&base, &secret, "linked", 60))
            .send()
            .await
            .expect("answer");
        assert_eq!(linked.status().as_u16(), 404);
        let (status, _) = call(
            node,
            &base,
            "/jobs/delete",
            json!({ "job_id": "old-tracks" }),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(!fake.recordings().join("old-tracks").exists());
    }

    /// A job that has not ended is not deleted, and its recording is not downloadable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_running_job_is_not_deleted() {
        let fake = FakeNode::new("delete-running", RUNS_UNTIL_KILLED, Storage::Local);
        let node = &fake.node;
        node.start(FakeNode::request("live")).await.expect("start");
        let (base, _stop) = serve(node).await;
        let (status, answer) = call(node, &base, "/jobs/delete", json!({ "job_id": "live" })).await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert!(
            answer["msg"]
                .as_str()
                .is_some_and(|m| m.contains("has not ended")),
            "{answer}"
        );
        let secret = node.config().api_secret.clone();
        let answer = reqwest::get(link(&base, &secret, "live", 60))
            .await
            .expect("answer");
        assert_eq!(answer.status().as_u16(), 404);
        node.stop("live").expect("stop");
        fake.wait_ended("live").await;
    }

    #[test]
    fn one_byte_range_is_honoured_and_anything_else_ignored() {
        let part = |start, end| ByteRange::Part { start, end };
        for (header, expected) in [
            (None, ByteRange::Whole),
            (Some("bytes=0-99"), part(0, 99)),
            (Some("bytes=10-"), part(10, 999)),
            (Some("bytes=990-5000"), part(990, 999)),
            (Some("bytes=-100"), part(900, 999)),
            (Some("bytes=-5000"), part(0, 999)),
            (Some("bytes=999-999"), part(999, 999)),
            (Some("bytes=1000-"), ByteRange::Unsatisfiable),
            (Some("bytes=-0"), ByteRange::Unsatisfiable),
            (Some("bytes=0-1,5-6"), ByteRange::Whole),
            (Some("bytes=9-3"), ByteRange::Whole),
            (Some("bytes=x-3"), ByteRange::Whole),
            (Some("bytes=+1-3"), ByteRange::Whole),
            (Some("bytes=-"), ByteRange::Whole),
            (Some("items=0-3"), ByteRange::Whole),
        ] {
            assert_eq!(byte_range(header, 1000), expected, "{header:?}");
        }
        assert_eq!(byte_range(Some("bytes=-10"), 0), ByteRange::Unsatisfiable);
        assert_eq!(byte_range(Some("bytes=0-"), 0), ByteRange::Unsatisfiable);
    }
}
