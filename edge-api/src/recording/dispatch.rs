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
use crate::db::RoomRow;
use crate::exchange::{EdgeRequest, EdgeResponse};
use crate::metadata::RecordingRules;
use crate::platform::{Clock, HttpClient, Store, StoreError};
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
pub(crate) const UNREPORTED_JOB_MS: i64 = 60_000;
/// Nodes asked in turn by one start at most: each costs a statement and a call of up to
/// [`super::nodes::CALL_TIMEOUT`], and nodes are chosen by their heartbeats' free capacity, so
/// more than a few refusing in a row means the fleet is full.
const MAX_NODES_ASKED: usize = 4;
/// How long a node's LiveKit token works. The node joins the room again with it whenever the
/// room's tracks change, for as long as the recording runs, so it must outlive any meeting.
/// It names the session's own LiveKit room (`<room_id>.<sid>`), which is never used again once
/// the session ends, so it grants nothing after that.
const RECORDER_TOKEN_SECS: u64 = 24 * 60 * 60;

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
    match start(edge, &authorized.room, kind, rtmp_url).await {
        Ok(job_id) => EdgeResponse::reply(Common::ok("success"), Started { record_id: job_id }),
        Err(not_started) => not_started.response(kind),
    }
}

/// Why [`start`] sent no job (or took back the one it sent).
#[derive(Debug)]
pub(crate) enum NotStarted {
    /// The room's features forbid this kind of job.
    NotAllowed,
    /// Nobody has joined the session yet, so it has no region (rooms are placed on the first
    /// join); or it ended while the node was asked.
    RoomNotActive,
    /// A job of this kind runs in the session already.
    AlreadyRunning,
    /// No live node has room for the job.
    NoRecorder,
    /// The chosen node did not answer: the job stays with it, and is taken for lost if the node
    /// never reports it.
    Unreachable,
    /// The node found the job's input wrong: its message.
    BadJob(String),
    /// The node's LiveKit token could not be signed.
    Signing,
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for NotStarted {
    fn from(e: StoreError) -> Self {
        NotStarted::Store(e)
    }
}

impl NotStarted {
    /// The answer to a moderator's start that ended so.
    fn response(self, kind: Kind) -> EdgeResponse {
        match self {
            NotStarted::NotAllowed => answer(
                403,
                StatusCode::PermissionDenied,
                kind.notification("not-allowed"),
            ),
            NotStarted::RoomNotActive => answer(
                409,
                StatusCode::RoomNotActive,
                "notifications.room-not-active",
            ),
            NotStarted::AlreadyRunning => answer(
                409,
                StatusCode::Conflict,
                kind.notification("already-running"),
            ),
            NotStarted::NoRecorder => no_recorder(),
            NotStarted::Unreachable => answer(
                503,
                StatusCode::InternalServerError,
                "notifications.recorder-unreachable",
            ),
            NotStarted::BadJob(msg) => bad_request(msg),
            NotStarted::Signing => answer(
                500,
                StatusCode::InternalServerError,
                "could not sign the token",
            ),
            NotStarted::Store(e) => store_failure(e),
        }
    }
}

/// Sends a job of `kind` for the running session `room` to a live node with room for it (the
/// room's region first; a node that refuses is passed over for the next) and returns its id.
/// The moderator's start and the automatic start of a room recorded from its beginning
/// ([`super::autostart`]) both come here.
pub(crate) async fn start<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    room: &RoomRow,
    kind: Kind,
    rtmp_url: Option<&str>,
) -> Result<String, NotStarted> {
    let rules: RecordingRules = serde_json::from_str(&room.metadata).unwrap_or_default();
    let allowed = match kind {
        Kind::Recording => rules.allows_recording(),
        Kind::Rtmp => rules.allows_rtmp(),
    };
    if !allowed {
        return Err(NotStarted::NotAllowed);
    }
    let Some(region) = edge.media_region(room) else {
        // Nobody has joined the media yet (the room is placed on the first join).
        return Err(NotStarted::RoomNotActive);
    };
    let now_ms = edge.clock.now_ms();
    let fleet = &edge.config.recorders;
    let live = db::live_recorders(&edge.store, alive_since_ms(fleet.timeout_secs, now_ms)).await?;
    if let Some(job) = db::live_job(&edge.store, &room.sid, kind.as_str()).await? {
        let Some(reason) = lost(&job, &live, now_ms) else {
            return Err(NotStarted::AlreadyRunning);
        };
        tracing::warn!(job = %job.job_id, recorder = %job.recorder_id, reason, "recording job lost");
        db::fail_job(&edge.store, &job.job_id, reason).await?;
        super::announce::announce(edge, &[room.sid.as_str()]).await;
    }
    let mut candidates = candidates(&fleet.nodes, &live, region, kind);
    candidates.truncate(MAX_NODES_ASKED);
    let Some(first) = candidates.first() else {
        return Err(NotStarted::NoRecorder);
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
    if !db::claim_job(&edge.store, &claim).await? {
        // Another start took the slot between the read above and now.
        return Err(NotStarted::AlreadyRunning);
    }
    let token = match recorder_token(edge, region, &room.livekit_room, kind, now_ms) {
        Ok(token) => token,
        Err(not_started) => {
            let _ = db::drop_job(&edge.store, &job_id).await;
            return Err(not_started);
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
            db::offer_job_to(&edge.store, &job_id, &node.id).await?;
        }
        match NodeApi::new(&edge.http, node).start(&job).await {
            Ok(()) => {
                tracing::info!(job = %job_id, recorder = %node.id, kind = kind.as_str(), "recording job sent");
                return started(edge, &room.sid, node, job_id).await;
            }
            Err(NodeError::BadJob(msg)) => {
                db::drop_job(&edge.store, &job_id).await?;
                return Err(NotStarted::BadJob(msg));
            }
            Err(NodeError::Unreachable(e)) => {
                // No answer may still be a node that took the job: offering it to another
                // could start two. It stays on this node, and is taken for lost if the node
                // never reports it (or dies); the next start can then go elsewhere.
                tracing::warn!(job = %job_id, recorder = %node.id, error = %e, "recorder did not answer a start");
                return Err(NotStarted::Unreachable);
            }
            Err(e) => {
                // A refusal: this node did not start the job.
                tracing::warn!(job = %job_id, recorder = %node.id, error = %e, "recorder did not take the job");
            }
        }
    }
    db::drop_job(&edge.store, &job_id).await?;
    Err(NotStarted::NoRecorder)
}

/// The end of a start a node took. A session that ended while the node was asked (its end
/// could not stop a job the node did not have yet) has the job stopped again now.
async fn started<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    room_sid: &str,
    node: &Recorder,
    job_id: String,
) -> Result<String, NotStarted> {
    if crate::db::session_is_running(&edge.store, room_sid).await? {
        return Ok(job_id);
    }
    if let Err(e) = NodeApi::new(&edge.http, node).stop(&job_id).await {
        tracing::warn!(job = %job_id, recorder = %node.id, error = %e, "stop of a job started as its session ended not delivered");
    }
    Err(NotStarted::RoomNotActive)
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
    now_ms: i64,
) -> Result<String, NotStarted> {
    // plugNmeet's names; each job its own identity, so that two jobs in a room never take
    // each other's place in LiveKit.
    let name = match kind {
        Kind::Recording => "RECORDER_BOT",
        Kind::Rtmp => "RTMP_BOT",
    };
    let identity = format!("{name}-{now_ms}");
    let claims = LiveKitClaims {
        name: name.into(),
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
        &identity,
        claims,
        now,
        RECORDER_TOKEN_SECS,
    )
    .map_err(|e| {
        tracing::error!(region = %region.id, error = %e, "recorder token signing failed");
        NotStarted::Signing
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
        // A start still on its way to the node: nothing to give up yet.
        Err(NodeError::UnknownJob) if job.updated_ms == 0 => answer(
            409,
            StatusCode::Conflict,
            "the recording is still starting; try again in a moment",
        ),
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

/// Asks the nodes recording or broadcasting these sessions to stop, as the sessions end: each
/// node then finishes its file rather than losing the room under it. Best effort, and cheap
/// for a request that ends many sessions: two statements at most, whatever it finds, and no
/// call to a node that stopped heartbeating. Nothing is written: each node reports its job's
/// end, and a job that never ends is taken for lost with its node. Failures are logged.
pub async fn stop_jobs_of_sessions<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    room_sids: &[&str],
) {
    let fleet = &edge.config.recorders;
    if fleet.nodes.is_empty() || room_sids.is_empty() {
        return;
    }
    let jobs = match db::live_jobs_of_sessions(&edge.store, room_sids).await {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::error!(error = %e, "recording jobs of ending sessions not read; not stopped");
            return;
        }
    };
    if jobs.iter().all(|job| job.state == "ENDING") {
        return;
    }
    let alive_since = alive_since_ms(fleet.timeout_secs, edge.clock.now_ms());
    let live = match db::live_recorders(&edge.store, alive_since).await {
        Ok(live) => live,
        Err(e) => {
            tracing::error!(error = %e, "recorders not read; recordings of ending sessions not stopped");
            return;
        }
    };
    for job in jobs.iter().filter(|job| job.state != "ENDING") {
        let node = fleet
            .node(&job.recorder_id)
            .filter(|node| live.iter().any(|r| r.recorder_id == node.id));
        let Some(node) = node else { continue };
        if let Err(e) = NodeApi::new(&edge.http, node).stop(&job.job_id).await {
            tracing::warn!(job = %job.job_id, recorder = %node.id, error = %e, "recording stop at the session's end not delivered");
        }
    }
}

/// Marks a job its node cannot stop as failed; the session then has none of its kind running.
async fn give_up<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    job: &JobRow,
    kind: Kind,
    reason: &'static str,
) -> EdgeResponse {
    tracing::warn!(job = %job.job_id, recorder = %job.recorder_id, reason, "recording job lost");
    match db::fail_job(&edge.store, &job.job_id, reason).await {
        Ok(()) => {
            super::announce::announce(edge, &[job.room_sid.as_str()]).await;
            answer(409, StatusCode::Conflict, kind.notification("not-running"))
        }
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
            public_url: format!("https://{id}"),
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
