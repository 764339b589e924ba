//! `POST /internal/recorder/events`: what recorder nodes tell the edge, signed with the node's
//! own key and secret (`API-KEY`, `HASH-SIGNATURE` over the raw body, as the node signs every
//! post to its control plane). The body's `type` says which:
//!
//! - `heartbeat`: `{node_id, at_ms, capacity {free_cores, jobs, max_jobs}, store_ok,
//!   unstored_final_states, free_disk_bytes, min_free_disk_bytes, ...}`. Kept as the node's
//!   latest state (an older one, by the node's clock, changes nothing; one whose clock is over
//!   a minute from the edge's is refused), then live jobs of nodes that stopped heartbeating are
//!   marked FAILED, a few at a time, the recording of a room recorded from its start is
//!   sent to a node when due ([`super::autostart`]), and recording states an earlier request
//!   could not write into their rooms are written again ([`super::announce`]).
//! - `events`: `{node_id, events: [{event_id, type, at_ms, job {job_id, state, reason, file,
//!   file_bytes, updated_ms, ...}}]}`, oldest first. Each moves the node's own job to the
//!   reported state, unless a report at least as new was applied, so a batch sent again changes
//!   nothing. A COMPLETE recording with a file (or a file repaired after a crash) enters the
//!   catalog. Events about jobs the edge did not send to this node are ignored. The sessions
//!   whose jobs moved are then told of it in their LiveKit rooms ([`super::announce`]).
//!
//! Answers: 200 `{status: true, ...}`; 401 for a bad signature or unknown node; 400 for a body
//! that is not such a message (the node then isolates and sets aside the bad event); 413 for a
//! batch over `max_events_per_batch` (the node halves it); 503 when the store fails (the node
//! sends it again).

use serde::{Deserialize, Serialize};

use super::alive_since_ms;
use crate::auth::{key_matches, verify_signature};
use crate::config::Recorder;
use crate::db::recordings::{self as db, JobUpdate, RecorderHeartbeat, RecordingRow};
use crate::exchange::{EdgeRequest, EdgeResponse};
use crate::platform::{Clock, HttpClient, Store, StoreError};
use crate::sidecars::REGION_CLOCK_SKEW_MS;
use crate::wire::{Common, StatusCode};
use crate::Edge;

/// Jobs of dead nodes marked FAILED on one heartbeat at most (each is one statement).
const ORPHANS_PER_HEARTBEAT: u32 = 10;

/// A job's states, as the node names them.
const STATES: [&str; 5] = ["STARTING", "ACTIVE", "ENDING", "COMPLETE", "FAILED"];

#[derive(Deserialize)]
struct Report {
    #[serde(rename = "type")]
    kind: String,
    node_id: String,
}

#[derive(Deserialize)]
struct HeartbeatReport {
    at_ms: i64,
    capacity: Capacity,
    #[serde(default = "yes")]
    store_ok: bool,
    #[serde(default)]
    unstored_final_states: u64,
    #[serde(default)]
    free_disk_bytes: Option<u64>,
    #[serde(default)]
    min_free_disk_bytes: u64,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct Capacity {
    free_cores: f64,
    jobs: i64,
    max_jobs: i64,
}

#[derive(Deserialize)]
struct EventsReport {
    events: Vec<Event>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    job: JobReport,
}

#[derive(Deserialize)]
struct JobReport {
    job_id: String,
    state: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    file_bytes: Option<u64>,
    updated_ms: i64,
}

#[derive(Serialize)]
struct HeartbeatReply {
    /// Whether this heartbeat was newer than the kept one.
    recorded: bool,
    /// Jobs of dead nodes marked FAILED on this heartbeat.
    jobs_failed: usize,
    /// Whether this heartbeat started the recording of a room recorded from its start
    /// ([`super::autostart`]).
    recording_started: bool,
}

#[derive(Serialize)]
struct EventsReply {
    applied: usize,
    ignored: usize,
}

/// The largest text a report's job field may carry (a file path, a reason).
const MAX_FIELD_BYTES: usize = 4096;

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Handles `POST /internal/recorder/events`.
pub async fn handle<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    let Some(signer) = authenticate(edge, request) else {
        return EdgeResponse::common(
            401,
            Common::fail(
                StatusCode::InvalidTokenOrSignature,
                "invalid recorder signature or key",
            ),
        );
    };
    let report: Report = match serde_json::from_slice(&request.body) {
        Ok(report) => report,
        Err(e) => return bad_request(format!("not a recorder report: {e}")),
    };
    // A node speaks only for itself.
    let Some(node) = Some(signer).filter(|n| n.id == report.node_id) else {
        return EdgeResponse::common(
            401,
            Common::fail(
                StatusCode::InvalidTokenOrSignature,
                "invalid recorder signature or key",
            ),
        );
    };
    let outcome = match report.kind.as_str() {
        "heartbeat" => heartbeat(edge, node, &request.body).await,
        "events" => events(edge, node, &request.body).await,
        other => return bad_request(format!("type: `{other}` is not heartbeat or events")),
    };
    outcome.unwrap_or_else(|e| {
        tracing::error!(recorder = %node.id, error = %e, "store failure on a recorder report");
        EdgeResponse::common(
            503,
            Common::fail(StatusCode::InternalServerError, "store unavailable"),
        )
    })
}

/// The configured node whose key the request names (keys are unique, see
/// [`crate::config::RecorderFleet`]) and whose secret signed it.
fn authenticate<'a, S, H, C>(
    edge: &'a Edge<S, H, C>,
    request: &EdgeRequest,
) -> Option<&'a Recorder> {
    let key = request.header("api-key");
    let signature = request.header("hash-signature").unwrap_or_default();
    let node = edge
        .config
        .recorders
        .nodes
        .iter()
        .find(|n| key_matches(&n.api_key, key));
    // An unknown key is checked against a dummy secret, so timing does not tell them apart.
    let secret = node.map_or(&[0u8; 32][..], |n| n.api_secret.as_bytes());
    let valid = verify_signature(secret, &request.body, signature);
    node.filter(|_| valid)
}

fn bad_request(msg: String) -> EdgeResponse {
    EdgeResponse::common(400, Common::fail(StatusCode::InvalidParameters, msg))
}

async fn heartbeat<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    node: &Recorder,
    body: &[u8],
) -> Result<EdgeResponse, StoreError> {
    let beat: HeartbeatReport = match serde_json::from_slice(body) {
        Ok(beat) => beat,
        Err(e) => return Ok(bad_request(format!("not a heartbeat: {e}"))),
    };
    let now_ms = edge.clock.now_ms();
    if beat.at_ms.abs_diff(now_ms) > REGION_CLOCK_SKEW_MS.unsigned_abs() {
        return Ok(bad_request(format!(
            "at_ms: more than {} s from the edge's clock",
            REGION_CLOCK_SKEW_MS / 1000
        )));
    }
    let c = &beat.capacity;
    if !c.free_cores.is_finite() || c.free_cores < 0.0 || c.jobs < 0 || c.max_jobs < 0 {
        return Ok(bad_request("capacity: negative or not a number".into()));
    }
    let disk_ok = beat
        .free_disk_bytes
        .is_none_or(|free| free >= beat.min_free_disk_bytes);
    let recorded = db::record_heartbeat(
        &edge.store,
        &RecorderHeartbeat {
            recorder_id: &node.id,
            heard_ms: now_ms,
            sent_at_ms: beat.at_ms,
            free_cores: c.free_cores,
            jobs: c.jobs,
            max_jobs: c.max_jobs,
            accepts_files: beat.store_ok && beat.unstored_final_states == 0 && disk_ok,
        },
    )
    .await?;
    let timeout = edge.config.recorders.timeout_secs;
    let orphans = db::orphaned_jobs(
        &edge.store,
        alive_since_ms(timeout, now_ms),
        ORPHANS_PER_HEARTBEAT,
    )
    .await?;
    for job in &orphans {
        tracing::warn!(job = %job.job_id, recorder = %job.recorder_id, "recording job lost: its recorder stopped reporting");
        db::fail_job(&edge.store, &job.job_id, "the recorder stopped reporting").await?;
    }
    let orphaned_sessions: Vec<&str> = orphans.iter().map(|j| j.room_sid.as_str()).collect();
    super::announce::announce(edge, &orphaned_sessions).await;
    // A recorder that is heard from can take jobs: a room recorded from its start is started
    // now, at the cost of this request rather than a user's. A failure there is not this
    // heartbeat's (it was kept): the next heartbeat tries again.
    let recording_started = super::autostart::start_due(edge).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "store failure starting a recording with its meeting");
        false
    });
    // Recording states an earlier request could not write into their rooms.
    if let Err(e) = super::announce::announce_overdue(edge).await {
        tracing::error!(error = %e, "store failure sending recording states again");
    }
    // Without sidecars, whose heartbeats send them, the customer's webhooks that are due go
    // on a recorder's (kept) heartbeat: a clock like a sidecar's.
    if recorded && !edge.config.uses_sidecars() {
        if let Err(e) = crate::webhooks::deliver_due(edge, now_ms).await {
            tracing::error!(error = %e, "store failure delivering webhooks");
        }
    }
    Ok(EdgeResponse::reply(
        Common::ok("success"),
        HeartbeatReply {
            recorded,
            jobs_failed: orphans.len(),
            recording_started,
        },
    ))
}

async fn events<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    node: &Recorder,
    body: &[u8],
) -> Result<EdgeResponse, StoreError> {
    let report: EventsReport = match serde_json::from_slice(body) {
        Ok(report) => report,
        Err(e) => return Ok(bad_request(format!("not an events batch: {e}"))),
    };
    if report.events.len() > edge.config.max_events_per_batch {
        return Ok(EdgeResponse::common(
            413,
            Common::fail(
                StatusCode::InvalidParameters,
                format!(
                    "at most {} events per batch",
                    edge.config.max_events_per_batch
                ),
            ),
        ));
    }
    // The whole batch is checked before anything is applied.
    for event in &report.events {
        let job = &event.job;
        if !super::is_node_id(&job.job_id) {
            return Ok(bad_request("job.job_id: 1 to 64 of [A-Za-z0-9_-]".into()));
        }
        if !STATES.contains(&job.state.as_str()) {
            return Ok(bad_request(format!(
                "job.state: `{}` is not a job state",
                job.state
            )));
        }
        // A path is never this long; a reason may be, and is cut short below.
        if job.file.as_ref().is_some_and(|f| f.len() > MAX_FIELD_BYTES) {
            return Ok(bad_request(format!(
                "job.file: at most {MAX_FIELD_BYTES} bytes"
            )));
        }
    }
    let (mut applied, mut ignored) = (0, 0);
    let mut changed_sessions = Vec::new();
    for event in &report.events {
        if !["job_state", "recovered"].contains(&event.kind.as_str()) {
            // `broadcast_ended` and kinds a newer node adds: the job's own state says enough.
            ignored += 1;
            continue;
        }
        let job = &event.job;
        let update = JobUpdate {
            recorder_id: &node.id,
            job_id: &job.job_id,
            state: &job.state,
            reason: job.reason.as_deref().map(|r| cut(r, MAX_FIELD_BYTES)),
            updated_ms: job.updated_ms,
        };
        let Some(row) = db::apply_job_update(&edge.store, &update).await? else {
            ignored += 1;
            continue;
        };
        applied += 1;
        changed_sessions.push(row.room_sid.clone());
        // A failed job that kept a file (what it recorded before it failed) is listed too:
        // a partial recording is better than a lost one.
        let finished =
            job.state == "COMPLETE" || job.state == "FAILED" || event.kind == "recovered";
        if let (true, "recording", Some(file)) = (finished, row.kind.as_str(), &job.file) {
            db::add_recording(
                &edge.store,
                &RecordingRow {
                    record_id: row.job_id.clone(),
                    room_id: row.room_id.clone(),
                    room_sid: row.room_sid.clone(),
                    recorder_id: node.id.clone(),
                    file_path: file.clone(),
                    file_bytes: job
                        .file_bytes
                        .and_then(|b| i64::try_from(b).ok())
                        .unwrap_or(0),
                    created_at: row.created_ms.div_euclid(1000),
                    room_created_at: 0,
                    metadata: None,
                },
            )
            .await?;
            tracing::info!(record_id = %row.job_id, recorder = %node.id, "recording finished");
        }
    }
    let changed_sessions: Vec<&str> = changed_sessions.iter().map(String::as_str).collect();
    super::announce::announce(edge, &changed_sessions).await;
    Ok(EdgeResponse::reply(
        Common::ok("success"),
        EventsReply { applied, ignored },
    ))
}
