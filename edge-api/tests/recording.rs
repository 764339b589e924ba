//! Recording through `Edge::handle` over a real SQLite (the schema the hosts run): a moderator's
//! `POST /api/recording`, recorder nodes' heartbeats and job events on
//! `POST /internal/recorder/events`, the room state they drive and plugNmeet's recording catalog.
//!
//! The outbound HTTP is `ScriptedRecorders`, a test double that routes by URL: LiveKit's Twirp
//! calls are answered 200 `{}` (or not at all, when a test takes LiveKit down); each recorder node's `/jobs/start` and `/jobs/stop` get the
//! answer scripted for that node (200, 503 "no capacity", 400 with a message, 404 or no answer).
//! Every call is recorded with its URL, headers and body, so the tests check what the nodes were
//! asked, how it was signed, and the LiveKit token they were given. Nodes' heartbeats and events
//! are built as `recorder-native` sends them (`ControlPlaneClient::heartbeat`, `EventsBody`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use edge_api::auth::sign;
use edge_api::config::{EdgeConfig, GeoHeaders, GeoPoint, Recorder, RecorderFleet, Region};
use edge_api::native::SqliteStore;
use edge_api::platform::{
    Clock, HttpClient, OutboundError, OutboundRequest, OutboundResponse, SqlValue, Store,
};
use edge_api::{Edge, EdgeRequest, EdgeResponse};
use http::Method;
use serde_json::{json, Value};

const API_SECRET: &str = "api-secret-0123456789abcdef0123456789";
const LIVEKIT_SECRET: &str = "livekit-secret-0123456789abcdef01234";
const T0: i64 = 1_800_000_000_000;
/// `recorder_timeout_secs`.
const TIMEOUT_SECS: i64 = 15;

/// A configured recorder node.
#[derive(Clone, Copy)]
struct Node {
    id: &'static str,
    url: &'static str,
    key: &'static str,
    secret: &'static str,
    region: Option<&'static str>,
}

/// Near the rooms (which are placed in eu).
const EU: Node = Node {
    id: "rec-eu",
    url: "http://rec-eu.test:8090",
    key: "rec-key-eu",
    secret: "rec-eu-secret-0123456789",
    region: Some("eu"),
};
/// Elsewhere.
const US: Node = Node {
    id: "rec-us",
    url: "http://rec-us.test:8090",
    key: "rec-key-us",
    secret: "rec-us-secret-0123456789",
    region: Some("us"),
};
const NODES: [Node; 2] = [EU, US];

/// How a node answers its job API.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// 200 `{}`.
    Ok,
    /// 503 `{"msg": "no capacity: ..."}`.
    Full,
    /// 400 `{"msg": ...}`.
    Refuse(&'static str),
    /// 404 (it does not know the job).
    Unknown,
    /// No answer (connection refused).
    Down,
}

/// One outbound call as the edge made it.
#[derive(Clone, Debug)]
struct Call {
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: std::time::Duration,
}

impl Call {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// The node called and the path (`/jobs/start`, `/jobs/stop`); `None` for LiveKit.
    fn node_call(&self) -> Option<(&'static str, &str)> {
        NODES
            .iter()
            .find_map(|n| self.url.strip_prefix(n.url).map(|path| (n.id, path)))
    }
}

/// Test double for the edge's outbound HTTP: LiveKit's Twirp calls answer 200 `{}`, recorder
/// nodes answer as scripted per node (200 unless told otherwise); every call is recorded.
#[derive(Default)]
struct ScriptedRecorders {
    answers: RefCell<HashMap<&'static str, Answer>>,
    calls: RefCell<Vec<Call>>,
    /// LiveKit's calls get no answer.
    livekit_down: Cell<bool>,
    /// Another request's change, made in the database at `.0` (through a connection of its
    /// own) while the next room-metadata write is under way: a report racing this one.
    racing_change: RefCell<Option<(std::path::PathBuf, String)>>,
}

impl ScriptedRecorders {
    /// From now on, `node` answers its job API with `answer`.
    fn script(&self, node: Node, answer: Answer) {
        self.answers.borrow_mut().insert(node.id, answer);
    }

    /// The calls made to recorder nodes, in order: (node id, path).
    fn node_calls(&self) -> Vec<(&'static str, String)> {
        self.calls
            .borrow()
            .iter()
            .filter_map(|c| c.node_call().map(|(id, path)| (id, path.to_owned())))
            .collect()
    }

    /// The room metadata written to LiveKit so far, in order: (region's URL, LiveKit room,
    /// metadata), each call's token checked to be the region's, for that room, with admin rights,
    /// and its wait short enough for the node's report to be answered in time.
    fn room_metadata_writes(&self) -> Vec<(String, String, Value)> {
        self.calls
            .borrow()
            .iter()
            .filter_map(|c| {
                let base = c
                    .url
                    .strip_suffix("/twirp/livekit.RoomService/UpdateRoomMetadata")?;
                let body = c.json();
                let room = body["room"].as_str().expect("room").to_owned();
                assert_eq!(c.timeout, edge_api::livekit::BRIEF_CALL_TIMEOUT);
                assert!(
                    c.timeout <= std::time::Duration::from_secs(2),
                    "{:?}",
                    c.timeout
                );
                let token = c
                    .header("authorization")
                    .and_then(|h| h.strip_prefix("Bearer "));
                let claims = livekit_claims(token.expect("a bearer token"));
                assert_eq!(claims["video"]["roomAdmin"], json!(true), "{claims}");
                assert_eq!(claims["video"]["room"], json!(room), "{claims}");
                let metadata = body["metadata"].as_str().expect("metadata string");
                let metadata = serde_json::from_str(metadata).expect("metadata is JSON");
                Some((base.to_owned(), room, metadata))
            })
            .collect()
    }

    /// The latest call to a recorder node.
    fn last_node_call(&self) -> Call {
        self.calls
            .borrow()
            .iter()
            .rev()
            .find(|c| c.node_call().is_some())
            .cloned()
            .expect("a call to a recorder node")
    }
}

fn respond(status: u16, body: Value) -> Result<OutboundResponse, OutboundError> {
    Ok(OutboundResponse {
        status,
        body: serde_json::to_vec(&body).expect("json"),
    })
}

impl HttpClient for ScriptedRecorders {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        let call = Call {
            url: request.url.clone(),
            headers: request.headers.clone(),
            body: request.body.clone(),
            timeout: request.timeout,
        };
        self.calls.borrow_mut().push(call.clone());
        if request.url.starts_with("http://hooks.test/") {
            // A customer's webhook receiver.
            return respond(200, json!({}));
        }
        if request.url.contains("/twirp/livekit.") {
            if self.livekit_down.get() {
                return Err(OutboundError("connection refused".into()));
            }
            let racing = self.racing_change.borrow_mut().take();
            if let Some((database, sql)) = racing {
                let other = SqliteStore::open(&database).expect("a second connection");
                other.execute(&sql, &[]).await.expect("the racing change");
            }
            return respond(200, json!({}));
        }
        let Some((node, path)) = call.node_call() else {
            panic!("an unexpected outbound call: {}", request.url);
        };
        assert!(
            ["/jobs/start", "/jobs/stop", "/jobs/delete"].contains(&path),
            "not the job API: {}",
            request.url
        );
        assert_eq!(request.method, Method::POST, "{}", request.url);
        let answer = self
            .answers
            .borrow()
            .get(node)
            .copied()
            .unwrap_or(Answer::Ok);
        match answer {
            Answer::Ok => respond(200, json!({})),
            Answer::Full => respond(503, json!({"msg": "no capacity: 0.2 cores free"})),
            Answer::Refuse(msg) => respond(400, json!({ "msg": msg })),
            Answer::Unknown => respond(404, json!({"msg": "no such job"})),
            Answer::Down => Err(OutboundError("connection refused".into())),
        }
    }
}

struct TestClock(Cell<i64>);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.get()
    }
}

type TestEdge = Edge<SqliteStore, ScriptedRecorders, TestClock>;

fn region(id: &str, lat: f64, lon: f64) -> Region {
    Region {
        id: id.into(),
        name: id.into(),
        location: GeoPoint { lat, lon },
        livekit_url: format!("ws://{id}.livekit.test"),
        api_key: "lk".into(),
        api_secret: LIVEKIT_SECRET.into(),
        direct_webhooks: false,
    }
}

/// An edge with regions eu and us (no sidecars: both always available) and the nodes
/// [`NODES`].
fn edge() -> TestEdge {
    let nodes = NODES
        .iter()
        .map(|n| Recorder {
            id: n.id.into(),
            url: n.url.into(),
            api_key: n.key.into(),
            api_secret: n.secret.into(),
            region: n.region.map(Into::into),
            public_url: format!("https://dl.{}", n.id),
        })
        .collect();
    Edge {
        config: EdgeConfig {
            api_key: "plugnmeet".into(),
            api_secret: API_SECRET.into(),
            token_validity_secs: 600,
            max_participants_cap: 0,
            max_room_duration_minutes: 0,
            regions: vec![region("eu", 50.1, 8.7), region("us", 39.0, -77.5)],
            default_region: "us".into(),
            geo_headers: GeoHeaders {
                latitude: "x-lat".into(),
                longitude: "x-lon".into(),
            },
            sidecar_secrets: Default::default(),
            region_timeout_secs: 15,
            max_events_per_batch: 100,
            past_rooms_retention_days: 0,
            recorders: RecorderFleet {
                nodes,
                timeout_secs: TIMEOUT_SECS,
                download_token_validity_secs: 1800,
            },
            webhooks: Default::default(),
            public_url: String::new(),
        },
        store: SqliteStore::in_memory().expect("sqlite"),
        http: ScriptedRecorders::default(),
        clock: TestClock(Cell::new(T0)),
    }
}

fn now(edge: &TestEdge) -> i64 {
    edge.clock.0.get()
}

fn advance(edge: &TestEdge, ms: i64) {
    edge.clock.0.set(now(edge) + ms);
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn reply(response: EdgeResponse) -> (u16, Value) {
    (
        response.status,
        serde_json::from_slice(&response.body).unwrap_or(Value::Null),
    )
}

/// POSTs `body` to `path`, signed with `key` and `secret` as plugNmeet and the nodes sign.
fn post(edge: &TestEdge, path: &str, key: &str, secret: &str, body: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(body).expect("json");
    let mut request = EdgeRequest::new(Method::POST, path);
    request
        .headers
        .insert("api-key", key.parse().expect("header"));
    request.headers.insert(
        "hash-signature",
        sign(secret.as_bytes(), &body).parse().expect("header"),
    );
    request.body = body;
    reply(block(edge.handle(request)))
}

/// A plugNmeet server API call (`/auth/...`).
fn api(edge: &TestEdge, path: &str, body: &Value) -> (u16, Value) {
    post(edge, path, "plugnmeet", API_SECRET, body)
}

/// `POST /api/recording` with a join token.
fn record(edge: &TestEdge, token: &str, body: &Value) -> (u16, Value) {
    let mut request = EdgeRequest::new(Method::POST, "/api/recording");
    request.headers.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request.body = serde_json::to_vec(body).expect("json");
    reply(block(edge.handle(request)))
}

fn task(edge: &TestEdge, token: &str, task: &str) -> (u16, Value) {
    record(edge, token, &json!({ "task": task }))
}

/// Asserts a refusal: `status`, plugNmeet's `status: false` and `msg`.
fn assert_refused(answer: (u16, Value), status: u16, msg: &str) {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["status"], json!(false), "{body}");
    assert_eq!(body["msg"], json!(msg), "{body}");
}

/// A started job's record_id (asserting the 200 success).
fn started(answer: (u16, Value)) -> String {
    let (status, body) = answer;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["status"], &body["msg"]),
        (&json!(true), &json!("success")),
        "{body}"
    );
    body["record_id"].as_str().expect("record_id").to_owned()
}

/// A running session with a moderator's and a guest's join token, placed in eu by the
/// moderator's first `/api/session`.
struct Meeting {
    room_id: String,
    sid: String,
    livekit_room: String,
    created_at: i64,
    moderator: String,
    guest: String,
}

fn join_token(edge: &TestEdge, room_id: &str, user_info: Value) -> String {
    let (status, body) = api(
        edge,
        "/auth/room/getJoinToken",
        &json!({"room_id": room_id, "user_info": user_info}),
    );
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    body["token"].as_str().expect("token").to_owned()
}

/// Creates `room_id` with `room_features`: (moderator's, guest's) join tokens. Nobody has
/// joined it yet.
fn created(edge: &TestEdge, room_id: &str, room_features: Value) -> (String, String) {
    let create = json!({"room_id": room_id,
                        "metadata": {"room_title": "Weekly", "room_features": room_features}});
    let (status, body) = api(edge, "/auth/room/create", &create);
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    let moderator = join_token(
        edge,
        room_id,
        json!({"user_id": "mod", "name": "Mo", "is_admin": true}),
    );
    let guest = join_token(edge, room_id, json!({"user_id": "guest", "name": "Gu"}));
    (moderator, guest)
}

/// The holder of `token` enters from Frankfurt (`/api/session`): the room is placed in eu.
fn enter(edge: &TestEdge, token: &str) {
    let mut request = EdgeRequest::new(Method::POST, "/api/session");
    request
        .headers
        .insert("authorization", token.parse().expect("header"));
    request
        .headers
        .insert("x-lat", "50.1".parse().expect("header"));
    request
        .headers
        .insert("x-lon", "8.7".parse().expect("header"));
    let (status, body) = reply(block(edge.handle(request)));
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    assert_eq!(body["region"]["id"], json!("eu"), "{body}");
}

/// Creates `room_id` with `room_features`, gets its tokens and pins it to eu.
fn meeting(edge: &TestEdge, room_id: &str, room_features: Value) -> Meeting {
    let (moderator, guest) = created(edge, room_id, room_features);
    // The moderator joins from Frankfurt: the room is placed in eu.
    enter(edge, &moderator);
    let room = block(edge_api::db::running_room(&edge.store, room_id))
        .expect("store")
        .expect("running");
    assert_eq!(room.region.as_deref(), Some("eu"));
    Meeting {
        room_id: room_id.into(),
        sid: room.sid,
        livekit_room: room.livekit_room,
        created_at: room.created_at,
        moderator,
        guest,
    }
}

/// A heartbeat as `recorder-native` sends it (its `Heartbeat` plus `type`, `node_id`, `at_ms`).
fn heartbeat_body(node: Node, at_ms: i64, free_cores: f64, jobs: i64) -> Value {
    json!({
        "type": "heartbeat", "node_id": node.id, "at_ms": at_ms, "cores": 4.0,
        "capacity": {"cap_cores": 3.0, "reserved_cores": 3.0 - free_cores,
                     "free_cores": free_cores, "jobs": jobs, "max_jobs": 4},
        "jobs": [], "undelivered_events": 0, "dead_letter_events": 0, "store_ok": true,
        "unstored_final_states": 0, "free_disk_bytes": 50_000_000_000u64,
        "min_free_disk_bytes": 1_000_000_000u64
    })
}

/// Posts `body` to the recorder endpoint signed as `node`.
fn report(edge: &TestEdge, node: Node, body: &Value) -> (u16, Value) {
    post(
        edge,
        "/internal/recorder/events",
        node.key,
        node.secret,
        body,
    )
}

/// `node` heartbeats now (by the edge's clock) with `free_cores` and `jobs` running.
fn beat(edge: &TestEdge, node: Node, free_cores: f64, jobs: i64) -> Value {
    let (status, body) = report(
        edge,
        node,
        &heartbeat_body(node, now(edge), free_cores, jobs),
    );
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    body
}

/// One `job_state` event as `recorder-native` queues it: the job's `JobView` after the change.
/// `file` is the recording's file (the node names it from the start) and its size once known.
fn job_event(
    job_id: &str,
    room_id: &str,
    state: &str,
    updated_ms: i64,
    file: Option<(&str, u64)>,
) -> Value {
    json!({
        "event_id": format!("{job_id}-{state}-{updated_ms}"), "type": "job_state",
        "at_ms": updated_ms,
        "job": {"job_id": job_id, "room_id": room_id, "mode": "composite", "state": state,
                "reason": null, "file": file.map(|(path, _)| path),
                "file_bytes": file.and_then(|(_, bytes)| (state == "COMPLETE").then_some(bytes)),
                "rtmp": null, "created_ms": T0, "updated_ms": updated_ms}
    })
}

/// The events batch body (`EventsBody`) of `node`.
fn events_body(node: Node, events: &[Value]) -> Value {
    json!({"type": "events", "node_id": node.id, "events": events})
}

/// `node` sends `events` and the edge answers 200; its answer.
fn send_events(edge: &TestEdge, node: Node, events: &[Value]) -> Value {
    let (status, body) = report(edge, node, &events_body(node, events));
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    body
}

/// (`is_recording`, `is_active_rtmp`) of the running room, from `getActiveRoomInfo`.
fn room_flags(edge: &TestEdge, room_id: &str) -> (Value, Value) {
    let (status, body) = api(
        edge,
        "/auth/room/getActiveRoomInfo",
        &json!({ "room_id": room_id }),
    );
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    let info = &body["room"]["room_info"];
    (info["is_recording"].clone(), info["is_active_rtmp"].clone())
}

/// (state, recorder, reason) of the job as the edge stores it.
fn job(edge: &TestEdge, job_id: &str) -> (String, String, Option<String>) {
    let rows = block(edge.store.execute(
        "SELECT state, recorder_id, reason FROM recording_jobs WHERE job_id = ?",
        &[job_id.into()],
    ))
    .expect("store");
    let row = rows
        .rows
        .first()
        .unwrap_or_else(|| panic!("no job {job_id}"));
    let text = |v: &SqlValue| match v {
        SqlValue::Text(t) => Some(t.clone()),
        _ => None,
    };
    (
        text(&row[0]).expect("state"),
        text(&row[1]).expect("recorder"),
        text(&row[2]),
    )
}

/// How many jobs the edge stores.
fn job_count(edge: &TestEdge) -> i64 {
    let rows = block(
        edge.store
            .execute("SELECT COUNT(*) FROM recording_jobs", &[]),
    )
    .expect("store");
    match rows.rows[0][0] {
        SqlValue::Integer(n) => n,
        ref other => panic!("count: {other:?}"),
    }
}

/// `/auth/recording/fetch` with `body`.
fn fetch(edge: &TestEdge, body: Value) -> Value {
    let (status, body) = api(edge, "/auth/recording/fetch", &body);
    assert_eq!(status, 200, "{body}");
    body
}

/// The record ids of a successful fetch, in order.
fn listed(answer: &Value) -> Vec<String> {
    assert_eq!(answer["status"], json!(true), "{answer}");
    answer["result"]["recordings_list"]
        .as_array()
        .expect("recordings_list")
        .iter()
        .map(|r| r["record_id"].as_str().expect("record_id").to_owned())
        .collect()
}

fn assert_none_found(answer: &Value) {
    assert_eq!(answer["status"], json!(false), "{answer}");
    assert_eq!(answer["status_code"], json!("NOT_FOUND"), "{answer}");
    assert_eq!(answer["msg"], json!("no recordings found"), "{answer}");
}

/// Asserts `call` carries `node`'s key and the hex HMAC-SHA256 of its body under `node`'s secret.
fn assert_signed_by(call: &Call, node: Node) {
    assert_eq!(call.header("api-key"), Some(node.key), "{}", call.url);
    assert_eq!(
        call.header("hash-signature"),
        Some(sign(node.secret.as_bytes(), &call.body).as_str()),
        "{}",
        call.url
    );
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The claims of a LiveKit token, after checking its HS256 signature with the region's secret.
fn livekit_claims(token: &str) -> Value {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (signed, signature) = token.rsplit_once('.').expect("a JWT");
    let expected = sign(LIVEKIT_SECRET.as_bytes(), signed.as_bytes());
    assert_eq!(
        b64.decode(signature).expect("base64"),
        hex_decode(&expected),
        "the token is not signed with the region's LiveKit secret"
    );
    let payload = signed.split('.').nth(1).expect("payload");
    serde_json::from_slice(&b64.decode(payload).expect("base64")).expect("claims")
}

/// `edge_api::auth::sign`, which the checks above rely on, is hex HMAC-SHA256 (RFC 4231, case 2).
#[test]
fn the_signature_is_hex_hmac_sha256() {
    assert_eq!(
        sign(b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn a_start_goes_to_the_rooms_region_first_and_past_a_full_node() {
    let edge = edge();
    let m = meeting(&edge, "weekly", json!({}));

    // No node has heartbeated yet.
    assert_refused(
        task(&edge, &m.moderator, "START_RECORDING"),
        503,
        "notifications.no-recorder-available",
    );
    assert!(edge.http.node_calls().is_empty());
    assert_eq!(job_count(&edge), 0, "a refused start holds no slot");

    // us has more free cores; eu is in the room's region but full.
    beat(&edge, EU, 0.5, 1);
    beat(&edge, US, 2.5, 0);
    edge.http.script(EU, Answer::Full);
    let record_id = started(task(&edge, &m.moderator, "START_RECORDING"));
    assert_eq!(
        edge.http.node_calls(),
        [(EU.id, "/jobs/start".into()), (US.id, "/jobs/start".into())]
    );
    let calls: Vec<Call> = edge
        .http
        .calls
        .borrow()
        .iter()
        .filter(|c| c.node_call().is_some())
        .cloned()
        .collect();
    assert_signed_by(&calls[0], EU);
    assert_signed_by(&calls[1], US);
    let sent = calls[1].json();
    assert_eq!(
        calls[0].json(),
        sent,
        "the same job is offered to each node"
    );
    assert_eq!(sent["job_id"], json!(record_id), "{sent}");
    assert_eq!(sent["room_id"], json!("weekly"), "{sent}");
    assert_eq!(sent["livekit_url"], json!("ws://eu.livekit.test"), "{sent}");
    assert_eq!(sent["mode"], json!("composite"), "{sent}");
    assert_eq!(sent["file"], json!(true), "{sent}");
    assert!(sent.get("rtmp_url").is_none(), "{sent}");
    let claims = livekit_claims(sent["token"].as_str().expect("token"));
    let video = &claims["video"];
    assert_eq!(video["roomJoin"], json!(true), "{claims}");
    assert_eq!(video["room"], json!(m.livekit_room), "{claims}");
    assert_eq!(video["hidden"], json!(true), "{claims}");
    assert_eq!(video["recorder"], json!(true), "{claims}");
    assert_eq!(video["canPublish"], json!(false), "{claims}");
    assert_eq!(claims["iss"], json!("lk"), "{claims}");
    assert_eq!(job(&edge, &record_id).0, "STARTING");
    assert_eq!(
        job(&edge, &record_id).1,
        US.id,
        "the job is the node's that took it"
    );

    // One recording per session.
    assert_refused(
        task(&edge, &m.moderator, "START_RECORDING"),
        409,
        "notifications.recording-already-running",
    );
    assert_eq!(edge.http.node_calls().len(), 2, "nothing more was sent");

    // eu has room again: the broadcast goes there first, and takes it.
    advance(&edge, 1_000);
    edge.http.script(EU, Answer::Ok);
    let rtmp = json!({"task": "START_RTMP", "rtmp_url": "rtmp://live.example.com/app/key"});
    let rtmp_id = started(record(&edge, &m.moderator, &rtmp));
    assert_ne!(rtmp_id, record_id);
    let call = edge.http.last_node_call();
    assert_eq!(call.node_call(), Some((EU.id, "/jobs/start")));
    assert_eq!(edge.http.node_calls().len(), 3);
    let sent = call.json();
    assert_eq!(
        (&sent["file"], &sent["rtmp_url"], &sent["job_id"]),
        (
            &json!(false),
            &json!("rtmp://live.example.com/app/key"),
            &json!(rtmp_id)
        ),
        "{sent}"
    );
    let video = &livekit_claims(sent["token"].as_str().expect("token"))["video"];
    assert_eq!(
        (&video["hidden"], &video["canPublish"]),
        (&json!(true), &json!(false))
    );
    assert_refused(
        record(&edge, &m.moderator, &rtmp),
        409,
        "notifications.rtmp-already-running",
    );
}

/// A node that does not answer, or does not know the call, is passed over like a full one.
#[test]
fn an_unreachable_node_keeps_the_job_and_a_refusing_one_is_passed_over() {
    let edge = edge();
    let m = meeting(&edge, "unreachable", json!({}));
    beat(&edge, EU, 1.0, 0);
    beat(&edge, US, 1.0, 0);
    // A node that refuses (404 here) did not start the job: the next is asked.
    edge.http.script(EU, Answer::Unknown);
    edge.http.script(US, Answer::Unknown);
    assert_refused(
        task(&edge, &m.moderator, "START_RECORDING"),
        503,
        "notifications.no-recorder-available",
    );
    assert_eq!(
        edge.http.node_calls(),
        [(EU.id, "/jobs/start".into()), (US.id, "/jobs/start".into())]
    );
    assert_eq!(job_count(&edge), 0, "the slot is freed");
    // No answer may be a node that took the job: it is not offered to another, which could
    // start a second recording. It stays with that node...
    edge.http.script(EU, Answer::Down);
    edge.http.script(US, Answer::Ok);
    assert_refused(
        task(&edge, &m.moderator, "START_RECORDING"),
        503,
        "notifications.recorder-unreachable",
    );
    assert_eq!(
        edge.http.node_calls().len(),
        3,
        "only the first node was asked"
    );
    assert_refused(
        task(&edge, &m.moderator, "START_RECORDING"),
        409,
        "notifications.recording-already-running",
    );
    // ...until the node never reports it (or stops heartbeating): then the next start goes to
    // a node that answers.
    advance(&edge, 61_000);
    beat(&edge, US, 1.0, 0);
    let record_id = started(task(&edge, &m.moderator, "START_RECORDING"));
    assert_eq!(job(&edge, &record_id).1, US.id);
}

#[test]
fn refused_starts_hold_no_slot() {
    let edge = edge();
    let m = meeting(&edge, "refusals", json!({}));
    beat(&edge, EU, 1.0, 0);
    beat(&edge, US, 1.0, 0);

    assert_refused(
        task(&edge, &m.guest, "START_RECORDING"),
        403,
        "notifications.only-moderators-can-record",
    );
    let (status, _) = task(&edge, "not-a-token", "START_RECORDING");
    assert_eq!(status, 401);
    let mut no_auth = EdgeRequest::new(Method::POST, "/api/recording");
    no_auth.body = br#"{"task":"START_RECORDING"}"#.to_vec();
    assert_eq!(block(edge.handle(no_auth)).status, 401);

    for bad in [
        json!({"task": "PAUSE_RECORDING"}),
        json!({}),
        json!({"task": "START_RECORDING", "rtmp_url": "rtmp://live.example.com/app/key"}),
        json!({"task": "STOP_RTMP", "rtmp_url": "rtmp://live.example.com/app/key"}),
        json!({"task": "START_RTMP"}),
        json!({"task": "START_RTMP", "rtmp_url": ""}),
        json!({"task": "START_RTMP", "rtmp_url": "http://live.example.com/app/key"}),
        json!({"task": "START_RTMP", "rtmp_url": "rtmp://live.example.com/app/\nkey"}),
        json!({"task": "START_RECORDING", "sid": "another-session"}),
    ] {
        let (status, body) = record(&edge, &m.moderator, &bad);
        assert_eq!(
            (status, &body["status"]),
            (400, &json!(false)),
            "{bad}: {body}"
        );
    }
    assert!(edge.http.node_calls().is_empty(), "nothing was sent");
    assert_eq!(job_count(&edge), 0);

    // The node refuses the job's input: its reason is the user's, and the slot is free.
    edge.http
        .script(EU, Answer::Refuse("rtmp_url: host not resolvable"));
    let rtmp = json!({"task": "START_RTMP", "rtmp_url": "rtmp://nowhere.invalid/app/key"});
    let (status, body) = record(&edge, &m.moderator, &rtmp);
    assert_eq!((status, &body["status"]), (400, &json!(false)), "{body}");
    assert_eq!(
        body["msg"],
        json!("rtmp_url: host not resolvable"),
        "{body}"
    );
    assert_eq!(
        edge.http.node_calls(),
        [(EU.id, "/jobs/start".into())],
        "a job the node finds wrong is not offered to another node"
    );
    assert_eq!(job_count(&edge), 0);
    edge.http.script(EU, Answer::Ok);
    let id = started(record(&edge, &m.moderator, &rtmp));
    assert_eq!(job(&edge, &id), ("STARTING".into(), EU.id.into(), None));
    // With the session's own sid, as plugNmeet's page sends it (a moment later: see
    // `a_recording_and_a_broadcast_started_in_the_same_millisecond_both_start`).
    advance(&edge, 1);
    let own = json!({"task": "START_RECORDING", "sid": m.sid});
    started(record(&edge, &m.moderator, &own));
}

/// A node whose disk or job store cannot take a file gets broadcasts only.
#[test]
fn a_node_short_of_disk_takes_broadcasts_only() {
    let edge = edge();
    let m = meeting(&edge, "disk", json!({}));
    let mut short = heartbeat_body(EU, T0, 2.0, 0);
    short["free_disk_bytes"] = json!(10_000_000u64);
    assert_eq!(report(&edge, EU, &short).0, 200);
    assert_refused(
        task(&edge, &m.moderator, "START_RECORDING"),
        503,
        "notifications.no-recorder-available",
    );
    assert!(edge.http.node_calls().is_empty());
    let rtmp = json!({"task": "START_RTMP", "rtmp_url": "rtmps://live.example.com/app/key"});
    let id = started(record(&edge, &m.moderator, &rtmp));
    assert_eq!(job(&edge, &id).1, EU.id);
}

#[test]
fn job_events_drive_the_room_and_fill_the_catalog() {
    let edge = edge();
    let m = meeting(&edge, "events", json!({}));
    beat(&edge, EU, 1.0, 0);
    beat(&edge, US, 0.5, 0);
    let id = started(task(&edge, &m.moderator, "START_RECORDING"));
    assert_eq!(job(&edge, &id).1, EU.id);
    let file = Some(("recordings/events.mp4", 12_345_678));
    let ev = |state: &str, at: i64| job_event(&id, &m.room_id, state, T0 + at, file);
    assert_eq!(room_flags(&edge, "events"), (json!(0), json!(0)));

    let answer = send_events(&edge, EU, &[ev("STARTING", 100), ev("ACTIVE", 200)]);
    assert_eq!(answer["applied"], json!(2), "{answer}");
    assert_eq!(job(&edge, &id).0, "ACTIVE");
    assert_eq!(room_flags(&edge, "events"), (json!(1), json!(0)));

    // Another node's word about this job changes nothing and adds no recording.
    let answer = send_events(&edge, US, &[ev("COMPLETE", 900)]);
    assert_eq!(
        (&answer["applied"], &answer["ignored"]),
        (&json!(0), &json!(1)),
        "{answer}"
    );
    assert_eq!(job(&edge, &id).0, "ACTIVE");
    assert_eq!(room_flags(&edge, "events"), (json!(1), json!(0)));
    assert_none_found(&fetch(&edge, json!({})));

    // A batch with a bad event is refused whole.
    let mut bad = ev("ENDING", 250);
    bad["job"]["state"] = json!("PAUSED");
    let (status, body) = report(&edge, EU, &events_body(EU, &[ev("ENDING", 240), bad]));
    assert_eq!((status, &body["status"]), (400, &json!(false)), "{body}");
    assert_eq!(job(&edge, &id).0, "ACTIVE", "nothing of the batch applied");

    // Forged, unknown or misattributed reports are refused and change nothing.
    let finish = events_body(EU, &[ev("FAILED", 260)]);
    for (key, secret) in [
        (EU.key, US.secret),
        (EU.key, API_SECRET),
        ("rec-unknown", EU.secret),
        ("plugnmeet", API_SECRET),
    ] {
        let (status, body) = post(&edge, "/internal/recorder/events", key, secret, &finish);
        assert_eq!(status, 401, "{key}: {body}");
    }
    // Signed by eu in us's name.
    let as_us = events_body(US, &[ev("FAILED", 260)]);
    let (status, body) = report(&edge, EU, &as_us);
    assert_eq!(status, 401, "{body}");
    assert_eq!(job(&edge, &id).0, "ACTIVE");

    // The recording ends: the room stops recording and the catalog lists it.
    let batch = [ev("ENDING", 300), ev("COMPLETE", 400)];
    let answer = send_events(&edge, EU, &batch);
    assert_eq!(answer["applied"], json!(2), "{answer}");
    assert_eq!(job(&edge, &id).0, "COMPLETE");
    assert_eq!(room_flags(&edge, "events"), (json!(0), json!(0)));
    let expected = json!({
        "record_id": id, "room_id": "events", "room_sid": m.sid,
        "file_path": "recordings/events.mp4", "file_size": 12.35,
        "creation_time": (T0 / 1000).to_string(),
        "room_creation_time": m.created_at.to_string(),
        // As plugNmeet starts a recording's metadata (the meeting goes on: no end yet).
        "metadata": {"title": "Weekly", "subtitles": {}, "extra_data": {
            "meeting-title": "Weekly", "meeting-created": "2027-01-15T08:00:00Z"}},
    });
    assert_eq!(m.created_at, 1_800_000_000, "2027-01-15T08:00:00Z");
    let answer = fetch(&edge, json!({"room_ids": ["events"]}));
    assert_eq!(listed(&answer), [id.as_str()]);
    assert_eq!(answer["msg"], json!("success"), "{answer}");
    assert_eq!(answer["result"]["total_recordings"], json!("1"), "{answer}");
    assert_eq!(answer["result"]["recordings_list"][0], expected, "{answer}");
    let (status, info) = api(&edge, "/auth/recording/info", &json!({"record_id": id}));
    assert_eq!((status, &info["status"]), (200, &json!(true)), "{info}");
    assert_eq!(info["recording_info"], expected, "{info}");
    assert_eq!(info["room_info"]["room_id"], json!("events"), "{info}");
    assert_eq!(info["room_info"]["room_sid"], json!(m.sid), "{info}");
    assert_eq!(info["room_info"]["room_title"], json!("Weekly"), "{info}");
    let (_, alias) = api(
        &edge,
        "/auth/recording/recordingInfo",
        &json!({"record_id": id}),
    );
    assert_eq!(alias["recording_info"], expected, "{alias}");

    // The same batch again (its acknowledgement was lost) changes nothing.
    send_events(&edge, EU, &batch);
    assert_eq!(job(&edge, &id).0, "COMPLETE");
    let answer = fetch(&edge, json!({}));
    assert_eq!(listed(&answer), [id.as_str()]);
    assert_eq!(answer["result"]["recordings_list"][0], expected, "{answer}");

    // An older event arriving late does not move the job back.
    send_events(&edge, EU, &[ev("ACTIVE", 200), ev("ENDING", 300)]);
    assert_eq!(job(&edge, &id).0, "COMPLETE");
    assert_eq!(room_flags(&edge, "events"), (json!(0), json!(0)));

    // The slot is free again.
    advance(&edge, 1_000);
    beat(&edge, EU, 1.0, 0);
    started(task(&edge, &m.moderator, "START_RECORDING"));
}

/// A broadcast's events set `is_active_rtmp`, and a broadcast enters no catalog.
#[test]
fn a_broadcast_is_shown_while_active_and_not_catalogued() {
    let edge = edge();
    let m = meeting(&edge, "broadcast", json!({}));
    beat(&edge, EU, 1.0, 0);
    let rtmp = json!({"task": "START_RTMP", "rtmp_url": "rtmp://live.example.com/app/key"});
    let id = started(record(&edge, &m.moderator, &rtmp));
    send_events(
        &edge,
        EU,
        &[job_event(&id, "broadcast", "ACTIVE", T0 + 10, None)],
    );
    assert_eq!(room_flags(&edge, "broadcast"), (json!(0), json!(1)));
    let done = job_event(&id, "broadcast", "COMPLETE", T0 + 20, Some(("x.mp4", 1)));
    send_events(&edge, EU, &[done]);
    assert_eq!(room_flags(&edge, "broadcast"), (json!(0), json!(0)));
    assert_none_found(&fetch(&edge, json!({})));
}

/// Every change of a session's jobs is written into its LiveKit room's metadata, whole, so that
/// the pages in it show what is recorded and broadcast; LiveKit being down loses no report, and
/// a write it missed is made on a later heartbeat.
#[test]
fn the_room_is_told_what_its_recorders_do() {
    let edge = edge();
    let m = meeting(&edge, "told", json!({}));
    let other = meeting(&edge, "told-too", json!({}));
    beat(&edge, EU, 2.0, 0);
    let writes = || edge.http.room_metadata_writes();
    let last = || writes().last().cloned().expect("a metadata write");
    let eu = "http://eu.livekit.test".to_owned();
    let told = |metadata: Value| (eu.clone(), m.livekit_room.clone(), metadata);

    // Starting writes nothing yet: the node's own report of the job does.
    let recording = started(task(&edge, &m.moderator, "START_RECORDING"));
    assert!(writes().is_empty(), "{:?}", writes());
    let ev = |id: &str, state: &str, at: i64| job_event(id, "told", state, T0 + at, None);
    send_events(&edge, EU, &[ev(&recording, "STARTING", 10)]);
    assert_eq!(
        writes(),
        [told(json!({"recorder": {"recording": "STARTING"}}))]
    );
    // One write per session and batch, with the state after the whole batch.
    advance(&edge, 1);
    let rtmp = json!({"task": "START_RTMP", "rtmp_url": "rtmp://live.example.com/app/key"});
    let broadcast = started(record(&edge, &m.moderator, &rtmp));
    send_events(
        &edge,
        EU,
        &[
            ev(&recording, "ACTIVE", 20),
            ev(&broadcast, "STARTING", 21),
            ev(&broadcast, "ACTIVE", 22),
        ],
    );
    assert_eq!(writes().len(), 2, "{:?}", writes());
    assert_eq!(
        last(),
        told(json!({"recorder": {"recording": "ACTIVE", "rtmp": "ACTIVE"}}))
    );
    // An event the edge ignores writes nothing; a batch sent again (its answer was lost)
    // writes the same state again.
    send_events(&edge, US, &[ev(&broadcast, "FAILED", 30)]);
    assert_eq!(writes().len(), 2, "{:?}", writes());
    send_events(&edge, EU, &[ev(&recording, "ACTIVE", 20)]);
    assert_eq!(
        writes()[2..],
        [told(
            json!({"recorder": {"recording": "ACTIVE", "rtmp": "ACTIVE"}})
        )]
    );

    // A moderator's stop: the node's ENDING, then its end.
    let (status, body) = task(&edge, &m.moderator, "STOP_RECORDING");
    assert_eq!(status, 200, "{body}");
    send_events(&edge, EU, &[ev(&recording, "ENDING", 40)]);
    assert_eq!(
        last(),
        told(json!({"recorder": {"recording": "ENDING", "rtmp": "ACTIVE"}}))
    );
    send_events(&edge, EU, &[ev(&recording, "COMPLETE", 50)]);
    assert_eq!(last(), told(json!({"recorder": {"rtmp": "ACTIVE"}})));

    // LiveKit does not answer: the reports are still taken, and a batch about two sessions
    // waits for it once, not twice.
    let other_job = started(task(&edge, &other.moderator, "START_RECORDING"));
    edge.http.livekit_down.set(true);
    let before = edge.http.calls.borrow().len();
    let answer = send_events(
        &edge,
        EU,
        &[
            ev(&broadcast, "ENDING", 60),
            job_event(&other_job, "told-too", "ACTIVE", T0 + 61, None),
        ],
    );
    assert_eq!(answer["applied"], json!(2), "{answer}");
    let livekit_calls = edge.http.calls.borrow()[before..]
        .iter()
        .filter(|c| c.url.contains("/twirp/"))
        .count();
    assert_eq!(livekit_calls, 1);
    assert_eq!(job(&edge, &broadcast).0, "ENDING");
    edge.http.livekit_down.set(false);
    // The next recorder heartbeat writes both sessions' states, and later ones nothing more.
    let count = writes().len();
    advance(&edge, 1_000);
    beat(&edge, EU, 2.0, 1);
    let again = writes()[count..].to_vec();
    assert_eq!(again.len(), 2, "{again:?}");
    assert!(
        again.contains(&told(json!({"recorder": {"rtmp": "ENDING"}}))),
        "{again:?}"
    );
    let other_told = json!({"recorder": {"recording": "ACTIVE"}});
    assert!(
        again.contains(&(eu.clone(), other.livekit_room.clone(), other_told)),
        "{again:?}"
    );
    advance(&edge, 1_000);
    beat(&edge, EU, 2.0, 1);
    assert_eq!(writes().len(), count + 2, "{:?}", writes());

    // A node that stops reporting: the heartbeat that takes its jobs for lost tells the rooms.
    advance(&edge, TIMEOUT_SECS * 1000 + 1_000);
    let answer = beat(&edge, US, 1.0, 0);
    assert_eq!(answer["jobs_failed"], json!(2), "{answer}");
    let recent: Vec<_> = writes().into_iter().rev().take(2).collect();
    assert!(
        recent.contains(&told(json!({"recorder": {}}))),
        "{recent:?}"
    );
    assert!(
        recent.contains(&(
            eu.clone(),
            other.livekit_room.clone(),
            json!({"recorder": {}})
        )),
        "{recent:?}"
    );

    // An ended session has no room to tell.
    beat(&edge, EU, 2.0, 0);
    let ended = meeting(&edge, "told-ended", json!({}));
    let last_job = started(task(&edge, &ended.moderator, "START_RECORDING"));
    let (status, body) = api(
        &edge,
        "/auth/room/endRoom",
        &json!({"room_id": "told-ended"}),
    );
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    let count = writes().len();
    let ending = job_event(&last_job, "told-ended", "ENDING", now(&edge), None);
    assert_eq!(send_events(&edge, EU, &[ending])["applied"], json!(1));
    assert_eq!(writes().len(), count, "{:?}", writes());
}

#[test]
fn a_dead_recorder_stops_counting_and_its_jobs_fail() {
    let edge = edge();
    let m = meeting(&edge, "dead", json!({}));
    beat(&edge, EU, 2.0, 0);
    beat(&edge, US, 1.0, 0);
    let recording = started(task(&edge, &m.moderator, "START_RECORDING"));
    advance(&edge, 1);
    let rtmp = json!({"task": "START_RTMP", "rtmp_url": "rtmp://live.example.com/app/key"});
    let broadcast = started(record(&edge, &m.moderator, &rtmp));
    assert_eq!(job(&edge, &recording).1, EU.id);
    assert_eq!(job(&edge, &broadcast).1, EU.id);
    send_events(
        &edge,
        EU,
        &[
            job_event(&recording, "dead", "ACTIVE", T0 + 100, Some(("d.mp4", 0))),
            job_event(&broadcast, "dead", "ACTIVE", T0 + 101, None),
        ],
    );
    assert_eq!(room_flags(&edge, "dead"), (json!(1), json!(1)));
    // us heartbeats while eu is alive: nothing is swept.
    advance(&edge, 10_000);
    let answer = beat(&edge, US, 1.0, 0);
    assert_eq!(answer["jobs_failed"], json!(0), "{answer}");

    // eu falls silent past the timeout; nobody has swept yet, but it no longer counts.
    advance(&edge, (TIMEOUT_SECS - 10) * 1000 + 1_000);
    assert_eq!(room_flags(&edge, "dead"), (json!(0), json!(0)));
    assert_eq!(job(&edge, &recording).0, "ACTIVE");

    // A new start takes the slot from the dead node's job and goes to a live node.
    let calls_before = edge.http.node_calls().len();
    let again = started(task(&edge, &m.moderator, "START_RECORDING"));
    assert_ne!(again, recording);
    assert_eq!(
        edge.http.node_calls()[calls_before..],
        [(US.id, "/jobs/start".to_owned())],
        "the dead node is not asked"
    );
    let (state, _, reason) = job(&edge, &recording);
    assert_eq!(state, "FAILED");
    assert!(reason.is_some());
    assert_eq!(job(&edge, &again), ("STARTING".into(), US.id.into(), None));

    // A live node's heartbeat sweeps the dead node's remaining job.
    let answer = beat(&edge, US, 0.5, 1);
    assert_eq!(answer["jobs_failed"], json!(1), "{answer}");
    assert_eq!(job(&edge, &broadcast).0, "FAILED");
    let answer = beat(&edge, US, 0.5, 1);
    assert_eq!(answer["jobs_failed"], json!(0), "{answer}");
    assert_eq!(job(&edge, &again).0, "STARTING", "a live node's job stays");

    // eu comes back and repeats its old report: the new recording keeps the slot.
    beat(&edge, EU, 2.0, 0);
    send_events(
        &edge,
        EU,
        &[job_event(
            &recording,
            "dead",
            "ACTIVE",
            T0 + 100,
            Some(("d.mp4", 0)),
        )],
    );
    assert_eq!(job(&edge, &recording).0, "FAILED");
    assert_refused(
        task(&edge, &m.moderator, "START_RECORDING"),
        409,
        "notifications.recording-already-running",
    );
}

#[test]
fn stop_asks_the_node_and_a_forgotten_job_is_not_running() {
    let edge = edge();
    let m = meeting(&edge, "stopping", json!({}));
    beat(&edge, EU, 1.0, 0);

    assert_refused(
        task(&edge, &m.moderator, "STOP_RECORDING"),
        409,
        "notifications.recording-not-running",
    );
    assert_refused(
        task(&edge, &m.moderator, "STOP_RTMP"),
        409,
        "notifications.rtmp-not-running",
    );
    assert!(edge.http.node_calls().is_empty());

    let id = started(task(&edge, &m.moderator, "START_RECORDING"));
    send_events(
        &edge,
        EU,
        &[job_event(&id, "stopping", "ACTIVE", T0 + 10, None)],
    );
    assert_refused(
        task(&edge, &m.guest, "STOP_RECORDING"),
        403,
        "notifications.only-moderators-can-record",
    );
    let (status, body) = task(&edge, &m.moderator, "STOP_RECORDING");
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    let call = edge.http.last_node_call();
    assert_eq!(call.node_call(), Some((EU.id, "/jobs/stop")));
    assert_eq!(call.json(), json!({ "job_id": id }));
    assert_signed_by(&call, EU);
    assert_eq!(job(&edge, &id).0, "ENDING");
    // Still finishing: the slot is held.
    assert_refused(
        task(&edge, &m.moderator, "START_RECORDING"),
        409,
        "notifications.recording-already-running",
    );
    // The node finishes the job; the slot is then free.
    send_events(
        &edge,
        EU,
        &[job_event(&id, "stopping", "ENDING", T0 + 20, None)],
    );
    send_events(
        &edge,
        EU,
        &[job_event(&id, "stopping", "COMPLETE", T0 + 30, None)],
    );
    assert_eq!(job(&edge, &id).0, "COMPLETE");

    // An unreachable node: the stop is not delivered and the job still runs.
    advance(&edge, 1_000);
    beat(&edge, EU, 1.0, 0);
    let second = started(task(&edge, &m.moderator, "START_RECORDING"));
    edge.http.script(EU, Answer::Down);
    let (status, body) = task(&edge, &m.moderator, "STOP_RECORDING");
    assert_eq!((status, &body["status"]), (503, &json!(false)), "{body}");
    assert_eq!(job(&edge, &second).0, "STARTING");

    // A node that does not know a job it never reported: the start may still be on its way,
    // so the job is not given up.
    edge.http.script(EU, Answer::Unknown);
    let (status, body) = task(&edge, &m.moderator, "STOP_RECORDING");
    assert_eq!((status, &body["status"]), (409, &json!(false)), "{body}");
    assert_eq!(job(&edge, &second).0, "STARTING");
    // Once the node has reported the job, not knowing it means it is not running.
    send_events(
        &edge,
        EU,
        &[job_event(&second, "stopping", "ACTIVE", T0 + 1_100, None)],
    );
    assert_refused(
        task(&edge, &m.moderator, "STOP_RECORDING"),
        409,
        "notifications.recording-not-running",
    );
    assert_eq!(
        edge.http.last_node_call().json(),
        json!({ "job_id": second })
    );
    let (state, _, reason) = job(&edge, &second);
    assert_eq!(state, "FAILED");
    assert!(reason.is_some());
    assert_refused(
        task(&edge, &m.moderator, "STOP_RECORDING"),
        409,
        "notifications.recording-not-running",
    );
    advance(&edge, 1_000);
    edge.http.script(EU, Answer::Ok);
    started(task(&edge, &m.moderator, "START_RECORDING"));
}

#[test]
fn the_rooms_features_can_forbid_recording_and_broadcasting() {
    let edge = edge();
    beat(&edge, EU, 2.0, 0);
    let rtmp = json!({"task": "START_RTMP", "rtmp_url": "rtmp://live.example.com/app/key"});

    let encrypted = meeting(
        &edge,
        "encrypted",
        json!({"end_to_end_encryption_features": {"is_enabled": true}}),
    );
    assert_refused(
        task(&edge, &encrypted.moderator, "START_RECORDING"),
        403,
        "notifications.recording-not-allowed",
    );
    assert_refused(
        record(&edge, &encrypted.moderator, &rtmp),
        403,
        "notifications.rtmp-not-allowed",
    );

    let no_rtmp = meeting(&edge, "no-rtmp", json!({"allow_rtmp": false}));
    assert_refused(
        record(&edge, &no_rtmp.moderator, &rtmp),
        403,
        "notifications.rtmp-not-allowed",
    );
    assert!(edge.http.node_calls().is_empty());
    assert_eq!(job_count(&edge), 0);
    // Recording is still allowed there.
    started(task(&edge, &no_rtmp.moderator, "START_RECORDING"));
}

/// Starts a recording of `m` on eu, has eu record it to `file` and complete it; its record_id.
/// The clock moves on 10 s, so recordings are ordered by creation.
fn finished_recording(edge: &TestEdge, m: &Meeting, file: &str) -> String {
    beat(edge, EU, 2.0, 0);
    let id = started(task(edge, &m.moderator, "START_RECORDING"));
    let t = now(edge);
    send_events(
        edge,
        EU,
        &[
            job_event(&id, &m.room_id, "ACTIVE", t + 1, Some((file, 2_000_000))),
            job_event(&id, &m.room_id, "COMPLETE", t + 2, Some((file, 2_000_000))),
        ],
    );
    advance(edge, 10_000);
    id
}

#[test]
fn the_catalog_pages_and_filters() {
    let edge = edge();
    assert_none_found(&fetch(&edge, json!({})));
    let a = meeting(&edge, "room-a", json!({}));
    let b = meeting(&edge, "room-b", json!({}));
    let a1 = finished_recording(&edge, &a, "a1.mp4");
    let b1 = finished_recording(&edge, &b, "b1.mp4");
    let a2 = finished_recording(&edge, &a, "a2.mp4");
    let a3 = finished_recording(&edge, &a, "a3.mp4");

    let all = fetch(&edge, json!({}));
    assert_eq!(
        listed(&all),
        [a3.as_str(), a2.as_str(), b1.as_str(), a1.as_str()],
        "newest first by default"
    );
    assert_eq!(all["result"]["total_recordings"], json!("4"), "{all}");
    assert_eq!(all["result"]["order_by"], json!("DESC"), "{all}");
    assert_eq!(all["result"]["recordings_list"][0]["file_size"], json!(2.0));

    let page = fetch(
        &edge,
        json!({"room_ids": ["room-a"], "from": 1, "limit": 1, "order_by": "ASC"}),
    );
    assert_eq!(listed(&page), [a2.as_str()]);
    let result = &page["result"];
    assert_eq!(
        (
            &result["total_recordings"],
            &result["from"],
            &result["limit"],
            &result["order_by"]
        ),
        (&json!("3"), &json!(1), &json!(1), &json!("ASC")),
        "{page}"
    );
    let page = fetch(
        &edge,
        json!({"room_ids": ["room-a"], "from": 0, "limit": 2, "order_by": "DESC"}),
    );
    assert_eq!(listed(&page), [a3.as_str(), a2.as_str()]);
    assert_eq!(
        listed(&fetch(
            &edge,
            json!({"room_ids": ["room-b", "room-a"], "order_by": "asc"})
        )),
        [a1.as_str(), b1.as_str(), a2.as_str(), a3.as_str()]
    );
    assert_eq!(
        listed(&fetch(&edge, json!({"room_ids": ["room-b"]}))),
        [b1.as_str()]
    );
    assert_eq!(
        listed(&fetch(&edge, json!({"room_sid": a.sid, "order_by": "ASC"}))),
        [a1.as_str(), a2.as_str(), a3.as_str()]
    );
    // A session of another room.
    assert_none_found(&fetch(
        &edge,
        json!({"room_ids": ["room-a"], "room_sid": b.sid}),
    ));
    assert_none_found(&fetch(&edge, json!({"room_ids": ["room-c"]})));
    assert_none_found(&fetch(&edge, json!({"room_sid": "no-such-session"})));
    assert_none_found(&fetch(&edge, json!({"from": 4})));

    let bad = fetch(&edge, json!({"order_by": "SIDEWAYS"}));
    assert_eq!(bad["status"], json!(false), "{bad}");
    assert_eq!(bad["status_code"], json!("INVALID_PARAMETERS"), "{bad}");
    assert!(bad.get("result").is_none_or(Value::is_null), "{bad}");

    let (_, info) = api(&edge, "/auth/recording/info", &json!({"record_id": "nope"}));
    assert_eq!(
        (&info["status"], &info["msg"]),
        (&json!(false), &json!("recording not found")),
        "{info}"
    );
}

/// `/auth/recording/updateMetadata`, as plugNmeet reads a change: texts set, cleared by `""`
/// and kept when absent; subtitles and extra data patched key by key; the result shown by
/// fetch and info; bad input, a missing recording and an oversize result change nothing; the
/// metadata goes with its recording.
#[test]
fn the_backend_describes_a_recording() {
    let edge = edge();
    let m = meeting(&edge, "described", json!({}));
    let id = finished_recording(&edge, &m, "d1.mp4");
    let other = finished_recording(&edge, &m, "d2.mp4");
    let update = |body: Value| api(&edge, "/auth/recording/updateMetadata", &body).1;
    let shown = |id: &str| {
        let (_, info) = api(&edge, "/auth/recording/info", &json!({"record_id": id}));
        info["recording_info"]["metadata"].clone()
    };
    // A new recording starts with its meeting's title and creation time, as plugNmeet's does
    // (no end time: the meeting goes on).
    let created = time::OffsetDateTime::from_unix_timestamp(m.created_at)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let seeded = json!({"title": "Weekly", "subtitles": {},
        "extra_data": {"meeting-title": "Weekly", "meeting-created": created}});
    assert_eq!(shown(&id), seeded);
    assert!(created.ends_with('Z'), "{created}");
    let ok = update(json!({"record_id": id, "metadata": {
        "title": "Lecture 1", "description": "Intro",
        "subtitles": {"en": {"label": "English", "url": "https://cdn.test/en.vtt"},
                      "de": {"label": "Deutsch", "url": "https://cdn.test/de.vtt"}},
        "extraData": {"courseId": "42", "term": "fall"}}}));
    assert_eq!(
        (&ok["status"], &ok["msg"]),
        (&json!(true), &json!("success")),
        "{ok}"
    );
    assert_eq!(
        shown(&id),
        json!({"title": "Lecture 1", "description": "Intro",
               "subtitles": {"de": {"label": "Deutsch", "url": "https://cdn.test/de.vtt"},
                             "en": {"label": "English", "url": "https://cdn.test/en.vtt"}},
               "extra_data": {"courseId": "42", "term": "fall", "meeting-title": "Weekly",
                              "meeting-created": created}})
    );
    // A second change: the title cleared, the description kept (absent), a subtitle removed
    // (no URL) and one replaced, an extra key removed and one added.
    let ok = update(json!({"record_id": id, "metadata": {
        "title": "", "description": null,
        "subtitles": {"de": {"label": "Deutsch"}, "en": {"label": "English (US)", "url": "u2"}},
        "extra_data": {"term": "", "room": "B12"}}}));
    assert_eq!(ok["status"], json!(true), "{ok}");
    let expected = json!({"description": "Intro",
        "subtitles": {"en": {"label": "English (US)", "url": "u2"}},
        "extra_data": {"courseId": "42", "room": "B12", "meeting-title": "Weekly",
                       "meeting-created": created}});
    assert_eq!(shown(&id), expected);
    // fetch shows the same; the other recording keeps what it started with.
    let listed = fetch(&edge, json!({"order_by": "ASC"}));
    assert_eq!(
        listed["result"]["recordings_list"][0]["metadata"], expected,
        "{listed}"
    );
    assert_eq!(listed["result"]["recordings_list"][1]["metadata"], seeded);
    // Nothing to change: success, nothing written.
    assert_eq!(update(json!({"record_id": other}))["status"], json!(true));
    assert_eq!(
        update(json!({"record_id": other, "metadata": {}}))["status"],
        json!(true)
    );
    assert_eq!(shown(&other), seeded);
    // A recording without metadata (its row gone, as for one made before metadata existed):
    // a change that only clears gives it none; one that sets something gives it that.
    block(edge_api::platform::Store::execute(
        &edge.store,
        "DELETE FROM recording_metadata WHERE record_id = ?",
        &[other.as_str().into()],
    ))
    .expect("delete");
    let ok = update(
        json!({"record_id": other, "metadata": {"title": "", "extra_data": {"k": ""},
        "subtitles": {"en": {"label": "English", "url": null}}}}),
    );
    assert_eq!(ok["status"], json!(true), "{ok}");
    assert_eq!(shown(&other), Value::Null);
    update(json!({"record_id": other, "metadata": {"extra_data": {"k": "v"}}}));
    assert_eq!(
        shown(&other),
        json!({"subtitles": {}, "extra_data": {"k": "v"}})
    );

    // Refused, changing nothing.
    let refused = |body: Value, code: &str| {
        let answer = update(body.clone());
        assert_eq!(answer["status"], json!(false), "{body}: {answer}");
        assert_eq!(answer["status_code"], json!(code), "{body}: {answer}");
    };
    refused(
        json!({"record_id": "nope", "metadata": {"title": "x"}}),
        "NOT_FOUND",
    );
    refused(json!({"record_id": "nope"}), "NOT_FOUND");
    refused(json!({"metadata": {"title": "x"}}), "INVALID_PARAMETERS");
    refused(
        json!({"record_id": "../d1", "metadata": {"title": "x"}}),
        "INVALID_PARAMETERS",
    );
    refused(
        json!({"record_id": id, "metadata": {"title": 5}}),
        "INVALID_PARAMETERS",
    );
    refused(
        json!({"record_id": id, "metadata": {"extra_data": {"k": 1}}}),
        "INVALID_PARAMETERS",
    );
    refused(
        json!({"record_id": id, "metadata": {"extra_data": {"": "v"}}}),
        "INVALID_PARAMETERS",
    );
    refused(
        json!({"record_id": id, "metadata": {"subtitles": {"x".repeat(129): null}}}),
        "INVALID_PARAMETERS",
    );
    let many: serde_json::Map<String, Value> =
        (0..257).map(|i| (format!("k{i}"), json!("v"))).collect();
    refused(
        json!({"record_id": id, "metadata": {"extra_data": many}}),
        "INVALID_PARAMETERS",
    );
    // The bound counts bytes: 6,000 three-byte characters are over 16 KiB.
    refused(
        json!({"record_id": id, "metadata": {"description": "€".repeat(6_000)}}),
        "INVALID_PARAMETERS",
    );
    // Growing past 16 KiB, in one change or in several.
    refused(
        json!({"record_id": id, "metadata": {"description": "d".repeat(17_000)}}),
        "INVALID_PARAMETERS",
    );
    for n in 0..3 {
        let ok = update(json!({"record_id": id, "metadata": {
            "extra_data": {format!("k{n}"): "v".repeat(5_000)}}}));
        assert_eq!(ok["status"], json!(true), "{n}: {ok}");
    }
    refused(
        json!({"record_id": id, "metadata": {"extra_data": {"k3": "v".repeat(5_000)}}}),
        "INVALID_PARAMETERS",
    );
    let now = shown(&id);
    assert_eq!(now["description"], "Intro");
    assert!(now["extra_data"].get("k3").is_none(), "{now}");
    assert_eq!(now["extra_data"]["k2"].as_str().map(str::len), Some(5_000));

    // Deleting the recording takes its metadata along.
    let (_, deleted) = api(&edge, "/auth/recording/delete", &json!({"record_id": id}));
    assert_eq!(deleted["status"], json!(true), "{deleted}");
    let rows = block(edge_api::platform::Store::execute(
        &edge.store,
        "SELECT COUNT(*) FROM recording_metadata WHERE record_id = ?",
        &[id.as_str().into()],
    ))
    .expect("count");
    assert_eq!(rows.rows[0][0], edge_api::platform::SqlValue::Integer(0));
}

#[test]
fn heartbeats_out_of_clock_or_order_are_not_kept() {
    let edge = edge();
    let m = meeting(&edge, "clock", json!({}));
    for at_ms in [T0 + 60_001, T0 - 60_001] {
        let (status, body) = report(&edge, EU, &heartbeat_body(EU, at_ms, 2.0, 0));
        assert_eq!((status, &body["status"]), (400, &json!(false)), "{body}");
    }
    assert_refused(
        task(&edge, &m.moderator, "START_RECORDING"),
        503,
        "notifications.no-recorder-available",
    );

    // Ahead by under a minute: kept.
    let (status, body) = report(&edge, EU, &heartbeat_body(EU, T0 + 59_000, 2.0, 0));
    assert_eq!((status, &body["recorded"]), (200, &json!(true)), "{body}");
    // An older one (by the node's clock) arriving late, saying the node is full: not kept.
    let (status, body) = report(&edge, EU, &heartbeat_body(EU, T0 + 1_000, 0.0, 4));
    assert_eq!((status, &body["recorded"]), (200, &json!(false)), "{body}");
    let id = started(task(&edge, &m.moderator, "START_RECORDING"));
    assert_eq!(job(&edge, &id).1, EU.id);

    // A heartbeat that is not one, or of another type.
    let mut broken = heartbeat_body(EU, T0, 2.0, 0);
    broken["capacity"]["free_cores"] = json!(-1.0);
    assert_eq!(report(&edge, EU, &broken).0, 400);
    let mut other = heartbeat_body(EU, T0, 2.0, 0);
    other["type"] = json!("gossip");
    assert_eq!(report(&edge, EU, &other).0, 400);
}

/// A recording and a broadcast started in the same millisecond (two moderators, or one page
/// starting both) are two jobs: the second must not be taken for the first.
#[test]
fn a_recording_and_a_broadcast_started_in_the_same_millisecond_both_start() {
    let edge = edge();
    let m = meeting(&edge, "same-ms", json!({}));
    beat(&edge, EU, 2.0, 0);
    let recording = started(task(&edge, &m.moderator, "START_RECORDING"));
    let rtmp = json!({"task": "START_RTMP", "rtmp_url": "rtmp://live.example.com/app/key"});
    let broadcast = started(record(&edge, &m.moderator, &rtmp));
    assert_ne!(recording, broadcast);
}

/// A heartbeat whose `at_ms` is so far from the edge's clock that the difference overflows is
/// refused like any other out of clock.
#[test]
fn a_heartbeat_whose_clock_difference_overflows_is_refused() {
    let edge = edge();
    for at_ms in [i64::MIN + T0, i64::MIN] {
        let (status, body) = report(&edge, EU, &heartbeat_body(EU, at_ms, 2.0, 0));
        assert_eq!(status, 400, "{at_ms}: {body}");
    }
}

/// An event older than the job's latest applied report changes nothing, and is answered as not
/// applied.
#[test]
fn a_stale_event_is_not_counted_as_applied() {
    let edge = edge();
    let m = meeting(&edge, "stale", json!({}));
    beat(&edge, EU, 2.0, 0);
    let id = started(task(&edge, &m.moderator, "START_RECORDING"));
    send_events(
        &edge,
        EU,
        &[job_event(&id, "stale", "COMPLETE", T0 + 20, None)],
    );
    let answer = send_events(
        &edge,
        EU,
        &[job_event(&id, "stale", "ACTIVE", T0 + 10, None)],
    );
    assert_eq!(job(&edge, &id).0, "COMPLETE");
    assert_eq!(
        (&answer["applied"], &answer["ignored"]),
        (&json!(0), &json!(1)),
        "{answer}"
    );
}

/// A dead recorder's job cannot be stopped, and does not need to be: a stop answers
/// not-running at once (and marks the job FAILED) rather than calling the dead node. No other
/// heartbeat has to come first.
#[test]
fn a_stop_of_a_dead_recorders_job_answers_not_running() {
    let edge = edge();
    let m = meeting(&edge, "swept", json!({}));
    beat(&edge, EU, 2.0, 0);
    let id = started(task(&edge, &m.moderator, "START_RECORDING"));
    send_events(
        &edge,
        EU,
        &[job_event(&id, "swept", "ACTIVE", T0 + 10, None)],
    );
    advance(&edge, TIMEOUT_SECS * 1000 + 1_000);
    edge.http.script(EU, Answer::Down);
    let calls_before = edge.http.node_calls().len();
    assert_refused(
        task(&edge, &m.moderator, "STOP_RECORDING"),
        409,
        "notifications.recording-not-running",
    );
    assert_eq!(job(&edge, &id).0, "FAILED");
    assert_eq!(
        edge.http.node_calls().len(),
        calls_before,
        "the dead node was called"
    );
}

/// A node whose clock stepped back between ACTIVE and COMPLETE still ends its job: a final
/// state always replaces a live one, and the recording is listed. A stale live state never
/// replaces a final one.
#[test]
fn a_final_state_wins_over_the_nodes_clock() {
    let edge = edge();
    let m = meeting(&edge, "clockback", json!({}));
    beat(&edge, EU, 1.0, 0);
    let id = started(task(&edge, &m.moderator, "START_RECORDING"));
    let file = Some(("recordings/clockback.mp4", 2_000_000));
    send_events(
        &edge,
        EU,
        &[job_event(&id, "clockback", "ACTIVE", T0 + 5_000, None)],
    );
    // COMPLETE stamped before ACTIVE (the node's clock stepped back).
    let answer = send_events(
        &edge,
        EU,
        &[job_event(&id, "clockback", "COMPLETE", T0 + 1_000, file)],
    );
    assert_eq!(answer["applied"], json!(1), "{answer}");
    assert_eq!(job(&edge, &id).0, "COMPLETE");
    assert_eq!(room_flags(&edge, "clockback"), (json!(0), json!(0)));
    assert_eq!(
        listed(&fetch(&edge, json!({"room_ids": ["clockback"]}))),
        std::slice::from_ref(&id)
    );
    // A live state, however new, does not bring it back.
    let answer = send_events(
        &edge,
        EU,
        &[job_event(&id, "clockback", "ACTIVE", T0 + 9_000, None)],
    );
    assert_eq!(answer["ignored"], json!(1), "{answer}");
    assert_eq!(job(&edge, &id).0, "COMPLETE");
}

/// A job that failed but kept what it recorded is listed; a long reason is cut short, not
/// refused (refusing it would set the node's final event aside for good).
#[test]
fn a_failed_job_with_a_file_is_listed_and_a_long_reason_is_kept_short() {
    let edge = edge();
    let m = meeting(&edge, "partial", json!({}));
    beat(&edge, EU, 1.0, 0);
    let id = started(task(&edge, &m.moderator, "START_RECORDING"));
    let mut failed = job_event(
        &id,
        "partial",
        "FAILED",
        T0 + 3_000,
        Some(("recordings/partial.mp4", 0)),
    );
    failed["job"]["reason"] = json!("é".repeat(5_000));
    let answer = send_events(&edge, EU, &[failed]);
    assert_eq!(answer["applied"], json!(1), "{answer}");
    let (state, _, reason) = job(&edge, &id);
    assert_eq!(state, "FAILED");
    let reason = reason.expect("a reason");
    assert!(
        reason.len() <= 4096 && reason.starts_with('é'),
        "{}",
        reason.len()
    );
    assert_eq!(
        listed(&fetch(&edge, json!({"room_ids": ["partial"]}))),
        [id]
    );
}

/// Ending the meeting asks the node to stop its recording before the LiveKit room goes, and
/// a node that stopped heartbeating is not called.
#[test]
fn ending_the_meeting_stops_its_recording_first() {
    let edge = edge();
    let m = meeting(&edge, "ending", json!({}));
    beat(&edge, EU, 1.0, 0);
    let id = started(task(&edge, &m.moderator, "START_RECORDING"));
    send_events(
        &edge,
        EU,
        &[job_event(&id, "ending", "ACTIVE", T0 + 10, None)],
    );
    let before = edge.http.calls.borrow().len();
    let (status, body) = api(&edge, "/auth/room/endRoom", &json!({"room_id": "ending"}));
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    let calls: Vec<String> = edge.http.calls.borrow()[before..]
        .iter()
        .map(|c| c.url.clone())
        .collect();
    let stop = calls
        .iter()
        .position(|u| u == &format!("{}/jobs/stop", EU.url))
        .unwrap_or_else(|| panic!("no stop sent: {calls:?}"));
    let delete = calls
        .iter()
        .position(|u| u.ends_with("/twirp/livekit.RoomService/DeleteRoom"))
        .unwrap_or_else(|| panic!("no LiveKit delete: {calls:?}"));
    assert!(stop < delete, "{calls:?}");

    // The next meeting's node dies before it ends: no call to it.
    let m = meeting(&edge, "ending2", json!({}));
    beat(&edge, EU, 1.0, 0);
    let id = started(task(&edge, &m.moderator, "START_RECORDING"));
    send_events(
        &edge,
        EU,
        &[job_event(&id, "ending2", "ACTIVE", T0 + 20, None)],
    );
    advance(&edge, TIMEOUT_SECS * 1000 + 1_000);
    let before = edge.http.node_calls().len();
    api(&edge, "/auth/room/endRoom", &json!({"room_id": "ending2"}));
    assert_eq!(
        edge.http.node_calls().len(),
        before,
        "a dead node was called"
    );
}

/// Two nodes may not share a key: each node's reports are known by it.
#[test]
fn recorder_keys_must_differ() {
    use edge_api::platform::ConfigSource;
    struct Vars(Vec<(&'static str, String)>);
    impl ConfigSource for Vars {
        async fn get(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        }
    }
    let vars = |recorders: Value| {
        Vars(vec![
            ("api_key", "plugnmeet".into()),
            ("api_secret", API_SECRET.into()),
            (
                "regions",
                json!([{"id": "eu", "lat": 50.1, "lon": 8.7,
                        "livekit_url": "ws://eu", "api_key": "lk"}])
                .to_string(),
            ),
            ("livekit_secrets", json!({"eu": LIVEKIT_SECRET}).to_string()),
            ("recorders", recorders.to_string()),
            (
                "recorder_secrets",
                json!({"a": "secret-a-0123456789", "b": "secret-b-0123456789"}).to_string(),
            ),
        ])
    };
    let shared = vars(json!([
        {"id": "a", "url": "http://a:8090", "api_key": "recorder"},
        {"id": "b", "url": "http://b:8090", "api_key": "recorder"}
    ]));
    let e = block(EdgeConfig::load(&shared)).expect_err("a shared key");
    assert!(e.to_string().contains("api_key"), "{e}");
    let distinct = vars(json!([
        {"id": "a", "url": "http://a:8090/", "api_key": "rec-a", "region": "eu"},
        {"id": "b", "url": "https://b", "api_key": "rec-b", "public_url": "https://dl.example.com"}
    ]));
    let config = block(EdgeConfig::load(&distinct)).expect("distinct keys");
    let nodes = &config.recorders.nodes;
    assert_eq!(nodes[0].url, "http://a:8090");
    assert_eq!(nodes[0].public_url, "http://a:8090");
    assert_eq!(nodes[1].public_url, "https://dl.example.com");
    for bad in [
        json!([{"id": "a", "url": "ftp://a", "api_key": "k"}]),
        json!([{"id": "a", "url": "http://a?x=1", "api_key": "k"}]),
        json!([{"id": "a b", "url": "http://a", "api_key": "k"}]),
        json!([{"id": "a", "url": "http://a", "api_key": "k", "region": "nowhere"}]),
        json!([{"id": "c", "url": "http://c", "api_key": "k"}]),
    ] {
        assert!(
            block(EdgeConfig::load(&vars(bad.clone()))).is_err(),
            "{bad}"
        );
    }
}

/// The node link a download redirect sends the browser to, at the EU node's public URL.
fn eu_node_link(redirect: &EdgeResponse) -> String {
    let location = redirect
        .headers
        .iter()
        .find(|(n, _)| *n == "location")
        .map(|(_, v)| v.clone())
        .expect("location");
    location
        .strip_prefix("https://dl.rec-eu/download/")
        .unwrap_or_else(|| panic!("not the node's public URL: {location}"))
        .to_owned()
}

/// A download: `getDownloadToken` gives a token only for a listed recording; the download
/// route checks it and redirects to the node's public URL with a link the node can check
/// (`edgemeet_protocol::download`), naming that recording only and working for five minutes.
#[test]
fn a_download_token_leads_to_the_node_holding_the_file() {
    let edge = edge();
    let m = meeting(&edge, "dl", json!({}));
    let id = finished_recording(&edge, &m, "recordings/dl.mp4");
    let (status, body) = api(
        &edge,
        "/auth/recording/getDownloadToken",
        &json!({"record_id": id}),
    );
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    let token = body["token"].as_str().expect("token").to_owned();
    let (_, missing) = api(
        &edge,
        "/auth/recording/getDownloadToken",
        &json!({"record_id": "no-such-recording"}),
    );
    assert_eq!(
        (&missing["status"], &missing["status_code"], &missing["msg"]),
        (
            &json!(false),
            &json!("NOT_FOUND"),
            &json!("recording not found")
        ),
        "{missing}"
    );

    let download = |token: &str, method: Method| {
        block(edge.handle(EdgeRequest::new(
            method,
            &format!("/download/recording/{token}"),
        )))
    };
    for method in [Method::GET, Method::HEAD] {
        let response = download(&token, method);
        assert_eq!(response.status, 307);
        let link = eu_node_link(&response);
        let link = link.as_str();
        let now_secs = u64::try_from(now(&edge) / 1000).unwrap();
        assert_eq!(
            edgemeet_protocol::download::verify(EU.secret.as_bytes(), link, now_secs),
            Ok(id.clone())
        );
        assert!(edgemeet_protocol::download::verify(
            EU.secret.as_bytes(),
            link,
            now_secs + 300 + 60
        )
        .is_err());
    }
    // Not a download token: a join token, a changed one, an expired one.
    for bad in [m.moderator.clone(), format!("{token}x"), "x".into()] {
        assert_eq!(download(&bad, Method::GET).status, 401, "{bad}");
    }
    let post = block(edge.handle(EdgeRequest::new(
        Method::POST,
        &format!("/download/recording/{token}"),
    )));
    assert_eq!(post.status, 405);
    advance(&edge, (1_800 + 61) * 1000);
    let expired = download(&token, Method::GET);
    assert_eq!(expired.status, 401);
    assert_eq!(expired.body, b"download token expired");
}

/// BBB's `getRecordings` gives a playback link that integrations may keep (Greenlight stores
/// them): it redirects as a download does, a year later as on the first day, while its
/// recording exists; a changed link, or one signed with another secret, leads nowhere.
#[test]
fn a_bbb_playback_link_lasts_as_long_as_its_recording() {
    use sha2::Digest as _;
    let edge = edge();
    let m = meeting(&edge, "pb", json!({}));
    let id = finished_recording(&edge, &m, "recordings/pb.mp4");
    let query = format!("recordID={id}");
    let sum = hex::encode(sha2::Sha256::digest(
        format!("getRecordings{query}{API_SECRET}").as_bytes(),
    ));
    let listed = block(edge.handle(EdgeRequest::new(
        Method::GET,
        &format!("/plugnmeet/bigbluebutton/api/getRecordings?{query}&checksum={sum}"),
    )));
    let xml = String::from_utf8(listed.body).expect("XML");
    let url = xml
        .split("<url>")
        .nth(1)
        .and_then(|rest| rest.split("</url>").next())
        .unwrap_or_else(|| panic!("no playback url: {xml}"));
    let path = &url[url.find("/playback/").unwrap_or_else(|| panic!("{url}"))..];
    let open = |path: &str, method: Method| block(edge.handle(EdgeRequest::new(method, path)));
    for method in [Method::GET, Method::HEAD] {
        assert_eq!(open(path, method).status, 307, "{path}");
    }
    advance(&edge, 400 * 24 * 3600 * 1000);
    let later = open(path, Method::GET);
    assert_eq!(later.status, 307, "a year on");
    let link = eu_node_link(&later);
    let link = link.as_str();
    let now_secs = u64::try_from(now(&edge) / 1000).unwrap();
    assert_eq!(
        edgemeet_protocol::download::verify(EU.secret.as_bytes(), link, now_secs),
        Ok(id.clone()),
        "a fresh link of the node's"
    );

    let (record_id, signature) = path
        .strip_prefix("/playback/recording/")
        .and_then(|rest| rest.split_once('/'))
        .expect("record id and signature");
    assert_eq!(record_id, id);
    let other_secret = edgemeet_protocol::signing::sign(
        b"another-secret-0123456789abcdef01234",
        format!("edgemeet-playback\n{id}").as_bytes(),
    );
    let mut flipped = signature.to_owned();
    flipped.replace_range(..1, if signature.starts_with('0') { "1" } else { "0" });
    for bad in [
        format!("/playback/recording/{id}/{flipped}"),
        format!("/playback/recording/{id}/{other_secret}"),
        format!("/playback/recording/other/{signature}"),
        format!("/playback/recording/{id}"),
        format!("/playback/recording/{id}/{signature}/x"),
        "/playback/recording/".into(),
    ] {
        let refused = open(&bad, Method::GET);
        assert_eq!(
            (refused.status, refused.body.as_slice()),
            (401, &b"invalid playback link"[..]),
            "{bad}"
        );
    }
    assert_eq!(
        block(edge.handle(EdgeRequest::new(Method::POST, path))).status,
        405
    );
    edge.http.script(EU, Answer::Ok);
    let (_, deleted) = api(&edge, "/auth/recording/delete", &json!({"record_id": id}));
    assert_eq!(deleted["status"], json!(true), "{deleted}");
    assert_eq!(
        open(path, Method::GET).status,
        404,
        "gone with its recording"
    );
}

/// A delete asks the node first and forgets the recording only once the node has deleted it.
#[test]
fn a_recording_is_deleted_on_its_node_then_forgotten() {
    let edge = edge();
    let m = meeting(&edge, "del", json!({}));
    let id = finished_recording(&edge, &m, "recordings/del.mp4");
    let (status, token) = api(
        &edge,
        "/auth/recording/getDownloadToken",
        &json!({"record_id": id}),
    );
    assert_eq!(status, 200);
    let token = token["token"].as_str().expect("token").to_owned();

    edge.http.script(EU, Answer::Down);
    let (_, body) = api(&edge, "/auth/recording/delete", &json!({"record_id": id}));
    assert_eq!(body["status"], json!(false), "{body}");
    assert_eq!(
        listed(&fetch(&edge, json!({"room_ids": ["del"]}))),
        std::slice::from_ref(&id)
    );

    edge.http.script(EU, Answer::Ok);
    let (status, body) = api(&edge, "/auth/recording/delete", &json!({"record_id": id}));
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    let call = edge.http.last_node_call();
    assert_eq!(call.node_call(), Some((EU.id, "/jobs/delete")));
    assert_eq!(call.json(), json!({ "job_id": id }));
    assert_signed_by(&call, EU);
    assert_none_found(&fetch(&edge, json!({"room_ids": ["del"]})));
    let (_, again) = api(&edge, "/auth/recording/delete", &json!({"record_id": id}));
    assert_eq!(
        (&again["status"], &again["status_code"]),
        (&json!(false), &json!("NOT_FOUND")),
        "{again}"
    );
    // Its download token now leads nowhere.
    let gone = block(edge.handle(EdgeRequest::new(
        Method::GET,
        &format!("/download/recording/{token}"),
    )));
    assert_eq!(gone.status, 404);
    let (_, bad) = api(
        &edge,
        "/auth/recording/delete",
        &json!({"record_id": "../x"}),
    );
    assert_eq!(bad["status_code"], json!("INVALID_PARAMETERS"), "{bad}");

    // A node that answers 404 (no such route: an older recorder, a proxy) has deleted
    // nothing: the entry stays.
    let m = meeting(&edge, "del2", json!({}));
    let kept = finished_recording(&edge, &m, "recordings/del2.mp4");
    edge.http.script(EU, Answer::Unknown);
    let (_, body) = api(&edge, "/auth/recording/delete", &json!({"record_id": kept}));
    assert_eq!(body["status"], json!(false), "{body}");
    assert_eq!(
        listed(&fetch(&edge, json!({"room_ids": ["del2"]}))),
        std::slice::from_ref(&kept)
    );
    // Once deleted, the node's final event sent again (its earlier answer lost) does not
    // bring the recording back.
    edge.http.script(EU, Answer::Ok);
    let (_, body) = api(&edge, "/auth/recording/delete", &json!({"record_id": kept}));
    assert_eq!(body["status"], json!(true), "{body}");
    let answer = send_events(
        &edge,
        EU,
        &[job_event(
            &kept,
            "del2",
            "COMPLETE",
            now(&edge) - 10_000 + 2,
            Some(("recordings/del2.mp4", 2_000_000)),
        )],
    );
    assert_eq!(answer["ignored"], json!(1), "{answer}");
    assert_none_found(&fetch(&edge, json!({"room_ids": ["del2"]})));
}

/// `recording_features` of a room recorded from its start.
fn recorded_from_the_start() -> Value {
    json!({"recording_features": {"is_allow": true, "is_allow_cloud": true,
                                  "enable_auto_cloud_recording": true}})
}

/// The session's automatic start as stored: (tries, next try, outcome), `None` without one.
fn auto_recording(edge: &TestEdge, room_id: &str) -> Option<(i64, Option<i64>, String)> {
    let rows = block(edge.store.execute(
        "SELECT a.attempts, a.next_attempt_ms, a.outcome FROM auto_recordings a \
         JOIN rooms r ON r.sid = a.room_sid WHERE r.room_id = ?",
        &[room_id.into()],
    ))
    .expect("store");
    let row = rows.rows.first()?;
    let int = |v: &SqlValue| match v {
        SqlValue::Integer(i) => Some(*i),
        _ => None,
    };
    let SqlValue::Text(outcome) = &row[2] else {
        panic!("outcome: {:?}", row[2]);
    };
    Some((
        int(&row[0]).expect("attempts"),
        int(&row[1]),
        outcome.clone(),
    ))
}

/// The `/jobs/start` calls made so far, as (node, job sent).
fn starts(edge: &TestEdge) -> Vec<(&'static str, Value)> {
    edge.http
        .calls
        .borrow()
        .iter()
        .filter_map(|c| match c.node_call() {
            Some((node, "/jobs/start")) => Some((node, c.json())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_room_recorded_from_its_start_is_started_once_it_is_joined_and_only_once() {
    let edge = edge();
    let (moderator, _guest) = created(&edge, "from-start", recorded_from_the_start());
    assert_eq!(
        auto_recording(&edge, "from-start"),
        Some((0, None, "waiting for the first join".into()))
    );

    // Nobody is in the meeting yet: there is nothing to record.
    beat(&edge, EU, 2.0, 0);
    let answer = beat(&edge, US, 2.5, 0);
    assert_eq!(answer["recording_started"], json!(false), "{answer}");
    assert!(edge.http.node_calls().is_empty());

    // The first user enters; the next heartbeat of any node (here the one elsewhere) sends the
    // recording, to the node in the room's region, as a moderator's Record would.
    enter(&edge, &moderator);
    assert_eq!(
        auto_recording(&edge, "from-start"),
        Some((0, Some(0), "due".into()))
    );
    advance(&edge, 1_000);
    let answer = beat(&edge, US, 2.5, 0);
    assert_eq!(answer["recording_started"], json!(true), "{answer}");
    let sent = starts(&edge);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (node, sent_job) = &sent[0];
    assert_eq!(*node, EU.id, "the room's region first");
    assert_eq!(
        (&sent_job["room_id"], &sent_job["mode"], &sent_job["file"]),
        (&json!("from-start"), &json!("composite"), &json!(true)),
        "{sent_job}"
    );
    let video = &livekit_claims(sent_job["token"].as_str().expect("token"))["video"];
    assert_eq!(
        (&video["hidden"], &video["recorder"], &video["canPublish"]),
        (&json!(true), &json!(true), &json!(false))
    );
    let id = sent_job["job_id"].as_str().expect("job_id").to_owned();
    assert_eq!(job(&edge, &id).0, "STARTING");
    let (attempts, next, outcome) = auto_recording(&edge, "from-start").expect("kept");
    assert_eq!((attempts, next), (1, None), "settled: {outcome}");
    assert_eq!(outcome, format!("started job {id}"));

    send_events(
        &edge,
        EU,
        &[job_event(&id, "from-start", "ACTIVE", now(&edge), None)],
    );
    assert_eq!(room_flags(&edge, "from-start").0, json!(1));

    // More heartbeats start nothing more.
    for node in [EU, US, EU] {
        advance(&edge, 5_000);
        assert_eq!(beat(&edge, node, 2.0, 1)["recording_started"], json!(false));
    }
    assert_eq!(starts(&edge).len(), 1);

    // A moderator stops it: the edge does not start it again.
    let (status, body) = task(&edge, &moderator, "STOP_RECORDING");
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    send_events(
        &edge,
        EU,
        &[job_event(
            &id,
            "from-start",
            "COMPLETE",
            now(&edge),
            Some(("/r/a.mp4", 1_000)),
        )],
    );
    assert_eq!(room_flags(&edge, "from-start").0, json!(0));
    for _ in 0..3 {
        advance(&edge, 400_000);
        beat(&edge, EU, 2.0, 0);
    }
    assert_eq!(starts(&edge).len(), 1, "a stopped recording stays stopped");
    // The moderator may record again, by hand (with a new token: the first has expired).
    let moderator = join_token(
        &edge,
        "from-start",
        json!({"user_id": "mod", "name": "Mo", "is_admin": true}),
    );
    started(task(&edge, &moderator, "START_RECORDING"));
}

#[test]
fn a_recording_from_the_start_waits_for_a_recorder_with_room() {
    let edge = edge();
    let m = meeting(&edge, "waits", recorded_from_the_start());
    // The only live node is full: nothing is sent, and the start is tried again in 10 s.
    beat(&edge, EU, 0.0, 4);
    assert!(starts(&edge).is_empty());
    let (attempts, next, outcome) = auto_recording(&edge, "waits").expect("kept");
    assert_eq!(
        (attempts, next, outcome.as_str()),
        (1, Some(now(&edge) + 10_000), "no recorder had room for it")
    );
    // Not before then, whatever the heartbeats say.
    advance(&edge, 5_000);
    beat(&edge, EU, 2.0, 0);
    assert!(starts(&edge).is_empty());
    // Then a node that refuses (503, no capacity) is passed over like a full one, and the
    // next wait is twice as long.
    advance(&edge, 5_000);
    edge.http.script(EU, Answer::Full);
    beat(&edge, EU, 2.0, 0);
    assert_eq!(edge.http.node_calls(), [(EU.id, "/jobs/start".into())]);
    assert_eq!(job_count(&edge), 0, "a refused start holds no slot");
    assert_eq!(
        auto_recording(&edge, "waits").expect("kept").1,
        Some(now(&edge) + 20_000)
    );
    // A node that does not answer keeps the job (it may have taken it). The start is looked
    // at again only once such a job, never reported, counts as lost (60 s): this node never
    // took it, so the next try starts the recording anew rather than taking it for running.
    advance(&edge, 20_000);
    edge.http.script(EU, Answer::Down);
    beat(&edge, EU, 2.0, 0);
    let sent = starts(&edge);
    assert_eq!(sent.len(), 2);
    let silent = sent[1].1["job_id"].as_str().expect("job_id").to_owned();
    assert_eq!(job(&edge, &silent).0, "STARTING");
    let (attempts, next, outcome) = auto_recording(&edge, "waits").expect("kept");
    assert_eq!(
        (attempts, next, outcome.as_str()),
        (3, Some(now(&edge) + 65_000), "the recorder did not answer")
    );
    advance(&edge, 40_000);
    edge.http.script(EU, Answer::Ok);
    beat(&edge, EU, 2.0, 0);
    assert_eq!(
        starts(&edge).len(),
        2,
        "not before the silent job counts as lost"
    );
    advance(&edge, 25_000);
    beat(&edge, EU, 2.0, 0);
    let sent = starts(&edge);
    assert_eq!(sent.len(), 3, "{sent:?}");
    let id = sent[2].1["job_id"].as_str().expect("job_id").to_owned();
    assert_ne!(id, silent);
    assert_eq!(
        job(&edge, &silent),
        (
            "FAILED".into(),
            EU.id.into(),
            Some("the recorder never reported the job".into())
        )
    );
    assert_eq!(job(&edge, &id).0, "STARTING");
    assert_eq!(
        auto_recording(&edge, "waits"),
        Some((4, None, format!("started job {id}")))
    );
    send_events(
        &edge,
        EU,
        &[job_event(&id, &m.room_id, "ACTIVE", now(&edge), None)],
    );
    assert_eq!(room_flags(&edge, "waits").0, json!(1));
}

#[test]
fn a_moderator_first_a_room_that_forbids_it_or_an_ended_meeting_gets_no_automatic_start() {
    let edge = edge();
    beat(&edge, EU, 2.0, 0);

    // A moderator pressed Record before any heartbeat: the automatic start finds it running.
    let quick = meeting(&edge, "quick", recorded_from_the_start());
    let id = started(task(&edge, &quick.moderator, "START_RECORDING"));
    advance(&edge, 1_000);
    beat(&edge, EU, 2.0, 1);
    assert_eq!(starts(&edge).len(), 1);
    assert_eq!(starts(&edge)[0].1["job_id"], json!(id));
    assert_eq!(
        auto_recording(&edge, "quick").expect("kept").2,
        "a recording was running already"
    );

    // Cloud recording not allowed: the flag starts nothing.
    let mut features = recorded_from_the_start();
    features["recording_features"]["is_allow_cloud"] = json!(false);
    meeting(&edge, "no-cloud", features);
    // An encrypted room cannot be recorded, so it is not asked for at all.
    let mut features = recorded_from_the_start();
    features["end_to_end_encryption_features"] = json!({"is_enabled": true});
    meeting(&edge, "encrypted", features);
    assert_eq!(auto_recording(&edge, "encrypted"), None);
    // Without the flag, nothing either.
    meeting(&edge, "plain", json!({}));
    assert_eq!(auto_recording(&edge, "plain"), None);
    advance(&edge, 1_000);
    beat(&edge, EU, 2.0, 1);
    advance(&edge, 1_000);
    beat(&edge, EU, 2.0, 1);
    assert_eq!(starts(&edge).len(), 1, "{:?}", starts(&edge));
    assert_eq!(
        auto_recording(&edge, "no-cloud"),
        Some((1, None, "the room does not allow cloud recording".into()))
    );

    // A meeting that ends before a heartbeat comes is not recorded, and its row goes.
    let ended = meeting(&edge, "ended", recorded_from_the_start());
    assert!(auto_recording(&edge, "ended").is_some());
    let (status, body) = api(&edge, "/auth/room/endRoom", &json!({"room_id": "ended"}));
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    let rows = block(edge.store.execute(
        "SELECT COUNT(*) FROM auto_recordings WHERE room_sid = ?",
        &[ended.sid.as_str().into()],
    ))
    .expect("store");
    assert_eq!(rows.rows[0][0], SqlValue::Integer(0));
    advance(&edge, 1_000);
    beat(&edge, EU, 2.0, 1);
    assert_eq!(starts(&edge).len(), 1);
}

/// The customer's webhooks tell a recording's start and end, a broadcast's, and the recording's
/// file once it is in the catalog, with what plugNmeet's `recording_info` carries; they go out
/// on the recorder's next heartbeat.
#[test]
fn the_customer_hears_of_recordings_and_broadcasts() {
    let mut edge = edge();
    edge.config.webhooks.url = "http://hooks.test/all".into();
    let m = meeting(&edge, "told", json!({}));
    let record_id = finished_recording(&edge, &m, "told/rec.mp4");
    let rtmp = json!({"task": "START_RTMP", "rtmp_url": "rtmp://live.example.com/app/key"});
    let broadcast_id = started(record(&edge, &m.moderator, &rtmp));
    let t = now(&edge);
    let mut failed = job_event(&broadcast_id, "told", "FAILED", t + 1, None);
    failed["job"]["reason"] = json!("rtmp: connection refused");
    send_events(
        &edge,
        EU,
        &[job_event(&broadcast_id, "told", "ACTIVE", t, None), failed],
    );
    let hooks = || -> Vec<Value> {
        edge.http
            .calls
            .borrow()
            .iter()
            .filter(|c| c.url == "http://hooks.test/all")
            .map(|c| serde_json::from_slice(&c.body).expect("json"))
            .collect()
    };
    // room_created went on the heartbeat before the recording; the rest waits for the next.
    assert_eq!(hooks().len(), 1);
    advance(&edge, 1_000);
    beat(&edge, EU, 2.0, 0);
    let received = hooks();
    let names: Vec<&str> = received
        .iter()
        .filter_map(|b| b["event"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "room_created",
            "start_recording",
            "end_recording",
            "recording_proceeded",
            "start_rtmp",
            "end_rtmp"
        ]
    );
    for body in &received[1..] {
        assert_eq!(body["room"]["sid"], json!(m.sid), "{body}");
        assert_eq!(
            body["recording_info"]["recorder_id"],
            json!(EU.id),
            "{body}"
        );
    }
    assert_eq!(received[1]["recording_info"]["record_id"], json!(record_id));
    let proceeded = &received[3]["recording_info"];
    assert_eq!(proceeded["file_path"], "told/rec.mp4", "{proceeded}");
    assert_eq!(proceeded["file_size"], json!(2.0), "{proceeded}");
    let ended = &received[5]["recording_info"];
    assert_eq!(ended["record_id"], json!(broadcast_id), "{ended}");
    assert_eq!(ended["recorder_msg"], "rtmp: connection refused", "{ended}");
}

/// Two nodes reporting on one session in the same instant: the recording's node's report reads
/// the jobs, and before its write reaches LiveKit the broadcast's report changes them (and has
/// written already). The first report sees the change once its write is made and writes again,
/// so what LiveKit keeps is the state both changes left, not the older one.
#[test]
fn a_state_changed_while_being_written_is_written_again() {
    let mut edge = edge();
    let database = std::env::temp_dir().join(format!(
        "edgemeet-announce-race-{}.sqlite",
        std::process::id()
    ));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }
    edge.store = SqliteStore::open(&database).expect("a database file");
    let m = meeting(&edge, "race", json!({}));
    beat(&edge, EU, 2.0, 0);
    let recording = started(task(&edge, &m.moderator, "START_RECORDING"));
    let rtmp = json!({"task": "START_RTMP", "rtmp_url": "rtmp://live.example.com/app/key"});
    let broadcast = started(record(&edge, &m.moderator, &rtmp));
    let t = now(&edge);
    *edge.http.racing_change.borrow_mut() = Some((
        database.clone(),
        format!(
            "UPDATE recording_jobs SET state = 'ACTIVE', updated_ms = {} WHERE job_id = '{broadcast}'",
            t + 2
        ),
    ));
    send_events(
        &edge,
        EU,
        &[job_event(&recording, "race", "ACTIVE", t + 1, None)],
    );
    let writes = edge.http.room_metadata_writes();
    let (_, room, last) = writes.last().expect("a write");
    assert_eq!(room, &m.livekit_room);
    assert_eq!(
        last,
        &json!({"recorder": {"recording": "ACTIVE", "rtmp": "ACTIVE"}}),
        "{writes:?}"
    );
    assert_eq!(
        writes[writes.len() - 2].2,
        json!({"recorder": {"recording": "ACTIVE", "rtmp": "STARTING"}}),
        "the first write carried the state read before the other change"
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }
}
