//! `POST /api/recording`: a moderator's page starts or stops the session's recording or RTMP
//! broadcast. Authorized by a moderator's join token, like the other `/api/*` calls; the body
//! is `{"task": "START_RECORDING" | "STOP_RECORDING" | "START_RTMP" | "STOP_RTMP",
//! "rtmp_url"?}` (plugNmeet's `RecordingReq` fields, as JSON).
//!
//! Answers are `{status, status_code, msg}`, with `record_id` on a start:
//! - 200 `success`: a node took the job (it reports ACTIVE once it records), or took the stop.
//! - 409 `notifications.{recording,rtmp}-already-running` / `-not-running`.
//! - 403 when the room's features do not allow it (an encrypted room allows neither).
//! - 503 `notifications.no-recorder-available`: no live node has room for the job.
//! - 400 bad input, including an RTMP URL the node refuses (with the node's reason).

use serde::{Deserialize, Serialize};

use super::nodes::{NodeApi, NodeError, StartJob};
use super::{alive_since_ms, Kind};
use crate::config::{Recorder, Region};
use crate::db::recordings::{self as db, JobRow, LiveRecorder, NewJob};
use crate::exchange::{EdgeRequest, EdgeResponse};
use crate::metadata::RecordingRules;
use crate::platform::{Clock, HttpClient, Store};
use crate::sessions::{authorize_moderator, store_failure, Authorized};
use crate::tokens::{mint_livekit_token, LiveKitClaims, VideoGrant};
use crate::wire::{parse_input, Common, StatusCode};
use crate::Edge;

/// Largest body accepted.
const MAX_BODY_BYTES: usize = 8 * 1024;
/// Longest RTMP URL accepted (the node's own limit).
const MAX_RTMP_URL_BYTES: usize = 2048;
/// A job no node has reported on this long after it was sent is taken for lost (its node took
/// it and died before saying anything, or the edge's request ended mid-dispatch).
const UNREPORTED_JOB_MS: i64 = 60_000;

#[derive(Deserialize)]
struct RecordingReq {
    task: String,
    #[serde(default)]
    rtmp_url: Option<String>,
    /// plugNmeet's page sends the session id; when given it must be this session's.
    #[serde(default)]
    sid: Option<String>,
}

#[derive(Serialize)]
struct Started {
    record_id: String,
}

fn answer(status: u16, code: StatusCode, msg: impl Into<String>) -> EdgeResponse {
    EdgeResponse::common(status, Common::fail(code, msg))
}

fn bad_request(msg: impl Into<String>) -> EdgeResponse {
    answer(400, StatusCode::InvalidParameters, msg)
}

/// Handles `POST /api/recording`.
pub async fn handle<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    if request.body_exceeds(MAX_BODY_BYTES) {
        return EdgeResponse::body_over(MAX_BODY_BYTES);
    }
    let authorized = match authorize_moderator(
        edge,
        request,
        "notifications.only-moderators-can-record",
    )
    .await
    {
        Ok(authorized) => authorized,
        Err(response) => return response,
    };
    let req: RecordingReq = match parse_input(&request.body) {
        Ok(req) => req,
        Err(e) => return bad_request(e.0),
    };
    if req
        .sid
        .as_deref()
        .is_some_and(|sid| sid != authorized.room.sid)
    {
        return bad_request("sid: not this session's");
    }
    let rtmp_url = req.rtmp_url.as_deref().filter(|u| !u.is_empty());
    let (kind, start) = match req.task.as_str() {
        "START_RECORDING" => (Kind::Recording, true),
        "STOP_RECORDING" => (Kind::Recording, false),
        "START_RTMP" => (Kind::Rtmp, true),
        "STOP_RTMP" => (Kind::Rtmp, false),
        _ => return bad_request("task: START_RECORDING, STOP_RECORDING, START_RTMP or STOP_RTMP"),
    };
    if rtmp_url.is_some() && !(start && kind == Kind::Rtmp) {
        return bad_request("rtmp_url: only for START_RTMP");
    }
    if start {
        if kind == Kind::Rtmp {
            match rtmp_url {
                None => return bad_request("rtmpUrl required"),
                Some(url) if !is_rtmp_url(url) => {
                    return bad_request(format!(
                        "rtmp_url: an rtmp:// or rtmps:// URL of at most {MAX_RTMP_URL_BYTES} bytes"
                    ))
                }
                Some(_) => {}
            }
        }
        start_job(edge, &authorized, kind, rtmp_url).await
    } else {
        stop_job(edge, &authorized, kind).await
    }
}

fn is_rtmp_url(url: &str) -> bool {
    url.len() <= MAX_RTMP_URL_BYTES
        && (url.starts_with("rtmp://") || url.starts_with("rtmps://"))
        && !url.chars().any(char::is_control)
}

async fn start_job<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    authorized: &Authorized,
    kind: Kind,
    rtmp_url: Option<&str>,
) -> EdgeResponse {
    let room = &authorized.room;
    let rules: RecordingRules = serde_json::from_str(&room.metadata).unwrap_or_default();
    let allowed = match kind {
        Kind::Recording => rules.allows_recording(),
        Kind::Rtmp => rules.allows_rtmp(),
    };
    if !allowed {
        return answer(
            403,
            StatusCode::PermissionDenied,
            kind.notification("not-allowed"),
        );
    }
    let Some(region) = room.region.as_deref().and_then(|id| edge.config.region(id)) else {
        // Nobody has joined the media yet (the room is placed on the first join).
        return answer(
            409,
            StatusCode::RoomNotActive,
            "notifications.room-not-active",
        );
    };
    let now_ms = edge.clock.now_ms();
    let fleet = &edge.config.recorders;
    let live =
        match db::live_recorders(&edge.store, alive_since_ms(fleet.timeout_secs, now_ms)).await {
            Ok(live) => live,
            Err(e) => return store_failure(e),
        };
    match db::live_job(&edge.store, &room.sid, kind.as_str()).await {
        Ok(None) => {}
        Ok(Some(job)) => match lost(&job, &live, now_ms) {
            None => {
                return answer(
                    409,
                    StatusCode::Conflict,
                    kind.notification("already-running"),
                )
            }
            Some(reason) => {
                tracing::warn!(job = %job.job_id, recorder = %job.recorder_id, reason, "recording job lost");
                if let Err(e) = db::fail_job(&edge.store, &job.job_id, reason).await {
                    return store_failure(e);
                }
            }
        },
        Err(e) => return store_failure(e),
    }
    let candidates = candidates(&fleet.nodes, &live, region, kind);
    let Some(first) = candidates.first() else {
        return no_recorder();
    };
    // The kind is in the id: a recording and a broadcast started in the same millisecond are
    // two jobs.
    let job_id = format!("{}-{}-{now_ms}", room.sid, kind.as_str());
    let claim = NewJob {
        job_id: &job_id,
        room_sid: &room.sid,
        room_id: &room.room_id,
        kind: kind.as_str(),
        recorder_id: &first.id,
        created_ms: now_ms,
    };
    match db::claim_job(&edge.store, &claim).await {
        Ok(true) => {}
        // Another moderator's start took the slot between the read above and now.
        Ok(false) => {
            return answer(
                409,
                StatusCode::Conflict,
                kind.notification("already-running"),
            )
        }
        Err(e) => return store_failure(e),
    }
    let token = match recorder_token(edge, region, &room.livekit_room, kind) {
        Ok(token) => token,
        Err(response) => {
            let _ = db::drop_job(&edge.store, &job_id).await;
            return response;
        }
    };
    let job = StartJob {
        job_id: &job_id,
        room_id: &room.room_id,
        livekit_url: &region.livekit_url,
        token: &token,
        mode: "composite",
        file: kind == Kind::Recording,
        rtmp_url,
    };
    for (i, node) in candidates.iter().enumerate() {
        if i > 0 {
            if let Err(e) = db::offer_job_to(&edge.store, &job_id, &node.id).await {
                return store_failure(e);
            }
        }
        match NodeApi::new(&edge.http, node).start(&job).await {
            Ok(()) => {
                tracing::info!(job = %job_id, recorder = %node.id, kind = kind.as_str(), "recording job sent");
                return EdgeResponse::reply(Common::ok("success"), Started { record_id: job_id });
            }
            Err(NodeError::BadJob(msg)) => {
                if let Err(e) = db::drop_job(&edge.store, &job_id).await {
                    return store_failure(e);
                }
                return bad_request(msg);
            }
            Err(e) => {
                tracing::warn!(job = %job_id, recorder = %node.id, error = %e, "recorder did not take the job");
            }
        }
    }
    if let Err(e) = db::drop_job(&edge.store, &job_id).await {
        return store_failure(e);
    }
    no_recorder()
}

fn no_recorder() -> EdgeResponse {
    answer(
        503,
        StatusCode::InternalServerError,
        "notifications.no-recorder-available",
    )
}

/// Why a live job can be taken for lost, or `None` while it may still be running: its node is
/// dead, or it was never reported on long after it was sent.
fn lost(job: &JobRow, live: &[LiveRecorder], now_ms: i64) -> Option<&'static str> {
    if !live.iter().any(|r| r.recorder_id == job.recorder_id) {
        return Some("the recorder stopped reporting");
    }
    if job.updated_ms == 0 && now_ms.saturating_sub(job.created_ms) > UNREPORTED_JOB_MS {
        return Some("the recorder never reported the job");
    }
    None
}

/// The configured nodes that are alive and have room for a job of `kind`: those in `region`
/// first, then by free cores (as `live` is ordered).
fn candidates<'a>(
    nodes: &'a [Recorder],
    live: &[LiveRecorder],
    region: &Region,
    kind: Kind,
) -> Vec<&'a Recorder> {
    let mut fitting: Vec<(bool, usize, &Recorder)> = live
        .iter()
        .enumerate()
        .filter(|(_, r)| r.jobs < r.max_jobs && r.free_cores > 0.0)
        .filter(|(_, r)| kind != Kind::Recording || r.accepts_files)
        .filter_map(|(rank, r)| {
            let node = nodes.iter().find(|n| n.id == r.recorder_id)?;
            let elsewhere = node.region.as_deref() != Some(region.id.as_str());
            Some((elsewhere, rank, node))
        })
        .collect();
    fitting.sort_by_key(|&(elsewhere, rank, _)| (elsewhere, rank));
    fitting.into_iter().map(|(_, _, node)| node).collect()
}

/// A LiveKit token for the node: a hidden subscriber with LiveKit's `recorder` grant, which
/// publishes nothing and does not count toward the room's participant limit.
fn recorder_token<S, H, C: Clock>(
    edge: &Edge<S, H, C>,
    region: &Region,
    livekit_room: &str,
    kind: Kind,
) -> Result<String, EdgeResponse> {
    let identity = match kind {
        Kind::Recording => "RECORDER_BOT",
        Kind::Rtmp => "RTMP_BOT",
    };
    let claims = LiveKitClaims {
        name: identity.into(),
        metadata: String::new(),
        video: VideoGrant {
            room_join: true,
            room: livekit_room.to_owned(),
            hidden: true,
            recorder: true,
            can_publish: Some(false),
            can_publish_data: Some(false),
            can_subscribe: Some(true),
            ..Default::default()
        },
        room_config: None,
    };
    let now = u64::try_from(edge.clock.now_ms().div_euclid(1000)).unwrap_or(0);
    mint_livekit_token(
        &region.api_key,
        &region.api_secret,
        identity,
        claims,
        now,
        edge.config.token_validity(),
    )
    .map_err(|e| {
        tracing::error!(region = %region.id, error = %e, "recorder token signing failed");
        answer(
            500,
            StatusCode::InternalServerError,
            "could not sign the token",
        )
    })
}

async fn stop_job<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    authorized: &Authorized,
    kind: Kind,
) -> EdgeResponse {
    let not_running = || answer(409, StatusCode::Conflict, kind.notification("not-running"));
    let job = match db::live_job(&edge.store, &authorized.room.sid, kind.as_str()).await {
        Ok(Some(job)) => job,
        Ok(None) => return not_running(),
        Err(e) => return store_failure(e),
    };
    let Some(node) = edge.config.recorders.node(&job.recorder_id) else {
        return give_up(edge, &job, kind, "the recorder is no longer configured").await;
    };
    let fleet = &edge.config.recorders;
    let alive_since = alive_since_ms(fleet.timeout_secs, edge.clock.now_ms());
    match db::live_recorders(&edge.store, alive_since).await {
        Ok(live) if !live.iter().any(|r| r.recorder_id == node.id) => {
            return give_up(edge, &job, kind, "the recorder stopped reporting").await;
        }
        Ok(_) => {}
        Err(e) => return store_failure(e),
    }
    match NodeApi::new(&edge.http, node).stop(&job.job_id).await {
        Ok(()) => match db::mark_ending(&edge.store, &job.job_id).await {
            Ok(()) => EdgeResponse::common(200, Common::ok("success")),
            Err(e) => store_failure(e),
        },
        Err(NodeError::UnknownJob) => {
            give_up(edge, &job, kind, "the recorder does not know the job").await
        }
        Err(e) => {
            tracing::warn!(job = %job.job_id, recorder = %node.id, error = %e, "recording stop not delivered");
            answer(
                503,
                StatusCode::InternalServerError,
                "notifications.recorder-unreachable",
            )
        }
    }
}

/// Asks the nodes recording or broadcasting the session to stop, as it ends: each then
/// finalizes its file and reports COMPLETE, instead of losing the room under it. A node that
/// cannot be reached is left to notice the room is gone; the store's failure is passed on.
pub async fn stop_session_jobs<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    room_sid: &str,
) -> Result<(), crate::platform::StoreError> {
    if edge.config.recorders.nodes.is_empty() {
        return Ok(());
    }
    for job in db::live_jobs_of_session(&edge.store, room_sid).await? {
        if job.state == "ENDING" {
            continue;
        }
        let Some(node) = edge.config.recorders.node(&job.recorder_id) else {
            db::fail_job(
                &edge.store,
                &job.job_id,
                "the recorder is no longer configured",
            )
            .await?;
            continue;
        };
        match NodeApi::new(&edge.http, node).stop(&job.job_id).await {
            Ok(()) => db::mark_ending(&edge.store, &job.job_id).await?,
            Err(NodeError::UnknownJob) => {
                db::fail_job(
                    &edge.store,
                    &job.job_id,
                    "the recorder does not know the job",
                )
                .await?
            }
            Err(e) => {
                tracing::warn!(job = %job.job_id, recorder = %node.id, error = %e, "recording stop at the session's end not delivered");
            }
        }
    }
    Ok(())
}

/// Marks a job its node cannot stop as failed; the session then has none of its kind running.
async fn give_up<S: Store, H, C>(
    edge: &Edge<S, H, C>,
    job: &JobRow,
    kind: Kind,
    reason: &'static str,
) -> EdgeResponse {
    tracing::warn!(job = %job.job_id, recorder = %job.recorder_id, reason, "recording job lost");
    match db::fail_job(&edge.store, &job.job_id, reason).await {
        Ok(()) => answer(409, StatusCode::Conflict, kind.notification("not-running")),
        Err(e) => store_failure(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fixtures::region;

    fn node(id: &str, region: Option<&str>) -> Recorder {
        Recorder {
            id: id.into(),
            url: format!("http://{id}"),
            api_key: "k".into(),
            api_secret: "s".repeat(16),
            region: region.map(Into::into),
        }
    }

    fn live(id: &str, free_cores: f64, jobs: i64, accepts_files: bool) -> LiveRecorder {
        LiveRecorder {
            recorder_id: id.into(),
            free_cores,
            jobs,
            max_jobs: 4,
            accepts_files,
        }
    }

    #[test]
    fn the_rooms_region_first_then_free_cores_and_only_nodes_with_room() {
        let nodes = [
            node("eu-1", Some("eu")),
            node("us-1", Some("us")),
            node("any", None),
            node("full", Some("eu")),
            node("disk", Some("eu")),
        ];
        // As the store lists them: most free cores first; "ghost" is not configured.
        let live = [
            live("us-1", 1.5, 0, true),
            live("ghost", 1.4, 0, true),
            live("any", 1.0, 1, true),
            live("disk", 0.9, 0, false),
            live("eu-1", 0.4, 1, true),
            live("full", 1.2, 4, true),
        ];
        let ids = |kind| {
            candidates(&nodes, &live, &region("eu", 0.0, 0.0), kind)
                .iter()
                .map(|n| n.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(Kind::Recording), ["eu-1", "us-1", "any"]);
        // A broadcast writes no file: a node short of disk can take it.
        assert_eq!(ids(Kind::Rtmp), ["disk", "eu-1", "us-1", "any"]);
    }

    #[test]
    fn a_job_is_lost_when_its_node_is_dead_or_never_reported_it() {
        let job = JobRow {
            job_id: "j".into(),
            room_sid: "s".into(),
            room_id: "r".into(),
            kind: "recording".into(),
            recorder_id: "a".into(),
            state: "STARTING".into(),
            reason: None,
            created_ms: 1_000,
            updated_ms: 0,
        };
        let alive = [live("a", 1.0, 1, true)];
        assert_eq!(lost(&job, &alive, 2_000), None);
        assert!(lost(&job, &[], 2_000).is_some());
        assert!(lost(&job, &alive, 1_000 + UNREPORTED_JOB_MS + 1).is_some());
        let reported = JobRow {
            updated_ms: 1_500,
            ..job
        };
        assert_eq!(lost(&reported, &alive, 10_000_000), None);
    }

    #[test]
    fn rtmp_urls() {
        assert!(is_rtmp_url("rtmp://live.example.com/app/key"));
        assert!(is_rtmp_url("rtmps://live.example.com:443/app/key"));
        for bad in ["http://x/y", "rtmp://x/\nkey", "file:///etc/passwd", ""] {
            assert!(!is_rtmp_url(bad), "{bad}");
        }
        assert!(!is_rtmp_url(&format!("rtmp://x/{}", "k".repeat(2048))));
    }
}
