//! The region registry, the sidecar endpoints and the room lifecycle, through `Edge::handle`
//! over a real SQLite (rusqlite, the schema the hosts run). LiveKit's Twirp API is replaced by
//! `RecordingLiveKit`, a test double that answers 200 and records the calls (the system tests
//! in the root package use a real LiveKit).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use edge_api::auth::sign;
use edge_api::config::{CustomerWebhooks, EdgeConfig, GeoHeaders, GeoPoint, Region};
use edge_api::native::SqliteStore;
use edge_api::platform::{Clock, HttpClient, OutboundError, OutboundRequest, OutboundResponse};
use edge_api::{db, registry, Edge, EdgeRequest, EdgeResponse};
use http::Method;
use serde_json::{json, Value};

/// Test double for LiveKit's Twirp API: answers `{}` (or 503 while `down` is set, or never
/// while `hangs` is set) and records each call's URL and body. Requests to
/// `http://hooks.test/...` are a customer's webhook receiver instead: recorded with their
/// headers and answered with `hook_status` after `hook_delay_ms` on the edge's clock (`clock`,
/// shared with it), or not at all when that is past the edge's timeout.
#[derive(Default)]
struct RecordingLiveKit {
    calls: RefCell<Vec<(String, Value)>>,
    down: Cell<bool>,
    /// LiveKit answers 404 (no such room or participant).
    missing: Cell<bool>,
    hangs: Cell<bool>,
    hooks: RefCell<Vec<OutboundRequest>>,
    hook_status: Cell<Option<u16>>,
    hook_delay_ms: Cell<i64>,
    clock: Rc<Cell<i64>>,
}

impl HttpClient for RecordingLiveKit {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        if request.url.starts_with("http://hooks.test/") {
            let delay = self.hook_delay_ms.get();
            let timeout = i64::try_from(request.timeout.as_millis()).expect("ms");
            self.clock.set(self.clock.get() + delay.min(timeout));
            self.hooks.borrow_mut().push(request);
            if delay >= timeout {
                return Err(OutboundError("timed out".into()));
            }
            return Ok(OutboundResponse {
                status: self.hook_status.get().unwrap_or(200),
                body: Vec::new(),
            });
        }
        let body = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        self.calls.borrow_mut().push((request.url, body));
        if self.hangs.get() {
            std::future::pending::<()>().await;
        }
        Ok(if self.down.get() {
            OutboundResponse {
                status: 503,
                body: b"{\"code\":\"unavailable\"}".to_vec(),
            }
        } else if self.missing.get() {
            OutboundResponse {
                status: 404,
                body: b"{\"code\":\"not_found\"}".to_vec(),
            }
        } else {
            OutboundResponse {
                status: 200,
                body: b"{}".to_vec(),
            }
        })
    }
}

struct TestClock(Rc<Cell<i64>>);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.get()
    }
}

const API_SECRET: &str = "api-secret-0123456789abcdef0123456789";
const SIDECAR_EU: &str = "sidecar-eu-0123456789abcdef012345678";
const SIDECAR_US: &str = "sidecar-us-0123456789abcdef012345678";
const T0: i64 = 1_800_000_000_000;

type TestEdge = Edge<SqliteStore, RecordingLiveKit, TestClock>;

fn region(id: &str, lat: f64, lon: f64) -> Region {
    Region {
        id: id.into(),
        name: id.into(),
        location: GeoPoint { lat, lon },
        livekit_url: format!("ws://{id}.livekit.test"),
        api_key: "lk".into(),
        api_secret: "livekit-secret-0123456789abcdef01234".into(),
        direct_webhooks: false,
    }
}

fn edge() -> TestEdge {
    let store = SqliteStore::in_memory().expect("sqlite");
    // Every migration may run again on an existing database.
    store.execute_batch(db::SCHEMA).expect("schema again");
    let clock = Rc::new(Cell::new(T0));
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
            sidecar_secrets: [
                ("eu".to_string(), SIDECAR_EU.to_string()),
                ("us".to_string(), SIDECAR_US.to_string()),
            ]
            .into(),
            region_timeout_secs: 15,
            max_events_per_batch: 100,
            past_rooms_retention_days: 0,
            recorders: Default::default(),
            webhooks: Default::default(),
            public_url: String::new(),
        },
        store,
        http: RecordingLiveKit {
            clock: clock.clone(),
            ..Default::default()
        },
        clock: TestClock(clock),
    }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn post(edge: &TestEdge, path: &str, key: &str, secret: &str, body: &Value) -> (u16, Value) {
    reply(block(edge.handle(signed(path, key, secret, body))))
}

fn signed(path: &str, key: &str, secret: &str, body: &Value) -> EdgeRequest {
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
    request
}

fn reply(response: EdgeResponse) -> (u16, Value) {
    (
        response.status,
        serde_json::from_slice(&response.body).unwrap_or(Value::Null),
    )
}

fn heartbeat_body(region: &str, sent_at_ms: i64, draining: bool, rooms: i64) -> Value {
    json!({
        "region_id": region, "sidecar_id": format!("{region}-1"), "sent_at_ms": sent_at_ms,
        "livekit_ok": true, "load": {"rooms": rooms, "participants": 0, "publishers": 0},
        "capacity": {"max_rooms": 2, "max_participants": 0}, "draining": draining,
        "leaving": false, "undelivered_events": 0
    })
}

fn beat(edge: &TestEdge, region: &str, draining: bool, rooms: i64) -> (u16, Value) {
    let secret = if region == "eu" {
        SIDECAR_EU
    } else {
        SIDECAR_US
    };
    let body = heartbeat_body(region, edge.clock.0.get(), draining, rooms);
    post(edge, "/internal/sidecar/heartbeat", region, secret, &body)
}

/// The LiveKit rooms the edge asked to delete, in order.
fn deleted_rooms(edge: &TestEdge) -> Vec<Value> {
    edge.http
        .calls
        .borrow()
        .iter()
        .map(|(_, body)| body["room"].clone())
        .collect()
}

/// Posts `body` as a heartbeat signed by eu's sidecar.
fn beat_eu(edge: &TestEdge, body: &Value) -> (u16, Value) {
    post(edge, "/internal/sidecar/heartbeat", "eu", SIDECAR_EU, body)
}

fn availability(edge: &TestEdge, region: &str) -> registry::Availability {
    block(registry::load(edge))
        .expect("registry")
        .availability(region)
}

/// Creates a room through the plugNmeet API with the `room/create` body `create`; its session
/// as stored (placed nowhere yet).
fn created_room(edge: &TestEdge, create: &Value) -> db::RoomRow {
    let (status, body) = post(edge, "/auth/room/create", "plugnmeet", API_SECRET, create);
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    let room_id = create["room_id"].as_str().expect("room_id");
    block(db::running_room(&edge.store, room_id))
        .expect("store")
        .expect("room")
}

/// Creates `room_id` through the plugNmeet API with only a title.
fn titled_room(edge: &TestEdge, room_id: &str) -> db::RoomRow {
    created_room(
        edge,
        &json!({"room_id": room_id, "metadata": {"room_title": "T"}}),
    )
}

/// Ends `room_id` through the plugNmeet API, which must answer success.
fn end_room(edge: &TestEdge, room_id: &str) {
    let (status, body) = post(
        edge,
        "/auth/room/endRoom",
        "plugnmeet",
        API_SECRET,
        &json!({ "room_id": room_id }),
    );
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
}

/// Creates `room_id` through the plugNmeet API and pins it to `region` as a first join would.
fn running_room(edge: &TestEdge, room_id: &str, region: &str, features: Value) -> db::RoomRow {
    let room = created_room(
        edge,
        &json!({"room_id": room_id, "metadata": {"room_title": "T", "room_features": features}}),
    );
    block(db::pin_region(&edge.store, &room.sid, region)).expect("pin");
    room
}

fn events(edge: &TestEdge, region: &str, events: Vec<Value>) -> (u16, Value) {
    let secret = if region == "eu" {
        SIDECAR_EU
    } else {
        SIDECAR_US
    };
    post(
        edge,
        "/internal/sidecar/events",
        region,
        secret,
        &json!({"region_id": region, "events": events}),
    )
}

/// The LiveKit room name of `room_id`'s running session (what LiveKit's events name).
fn lk(edge: &TestEdge, room_id: &str) -> String {
    block(db::running_room(&edge.store, room_id))
        .expect("store")
        .expect("running")
        .livekit_room
}

/// A LiveKit webhook event about LiveKit room `room` (named as the edge named it) whose sid is
/// `lk_room`.
fn event(id: &str, kind: &str, room: &str, lk_room: &str, participant: Option<Value>) -> Value {
    let mut e = json!({"id": id, "event": kind, "createdAt": ((T0 / 1000) + 1).to_string(),
                       "room": {"sid": lk_room, "name": room, "numParticipants": 0}});
    if let Some(p) = participant {
        e["participant"] = p;
    }
    e
}

fn participant(sid: &str, identity: &str, hidden: bool) -> Value {
    json!({"sid": sid, "identity": identity, "name": identity, "state": "ACTIVE",
           "permission": {"canSubscribe": true, "hidden": hidden}})
}

#[test]
fn forged_stale_and_misaddressed_heartbeats_change_nothing() {
    let edge = edge();
    let good = heartbeat_body("eu", T0, false, 0);
    // Signed with another region's secret, with the customers' secret, or not at all.
    for (key, secret) in [("eu", SIDECAR_US), ("eu", API_SECRET), ("xx", SIDECAR_EU)] {
        let (status, body) = post(&edge, "/internal/sidecar/heartbeat", key, secret, &good);
        assert_eq!(status, 401, "{key}: {body}");
    }
    let (status, _) = post(
        &edge,
        "/internal/sidecar/heartbeat",
        "plugnmeet",
        API_SECRET,
        &good,
    );
    assert_eq!(status, 401);
    // Signed by us for eu's body.
    let (status, _) = post(
        &edge,
        "/internal/sidecar/heartbeat",
        "us",
        SIDECAR_US,
        &good,
    );
    assert_eq!(status, 400);
    let stale = heartbeat_body("eu", T0 - 120_000, false, 0);
    let (status, body) = beat_eu(&edge, &stale);
    assert_eq!(status, 400, "{body}");
    let (status, _) = post(
        &edge,
        "/internal/sidecar/heartbeat",
        "eu",
        SIDECAR_EU,
        &json!({"region_id": "eu"}),
    );
    assert_eq!(status, 400);
    assert_eq!(availability(&edge, "eu"), registry::Availability::Unknown);
    // The customers' API does not take sidecar credentials either.
    let (status, _) = post(
        &edge,
        "/auth/room/isRoomActive",
        "eu",
        SIDECAR_EU,
        &json!({}),
    );
    assert_eq!(status, 401);
}

#[test]
fn regions_come_and_go_with_their_heartbeats() {
    let edge = edge();
    assert_eq!(availability(&edge, "eu"), registry::Availability::Unknown);
    let (status, body) = beat(&edge, "eu", false, 0);
    assert_eq!((status, &body["recorded"]), (200, &json!(true)), "{body}");
    assert_eq!(availability(&edge, "eu"), registry::Availability::Available);
    // An older heartbeat arriving late is not recorded.
    let late = heartbeat_body("eu", T0 - 1000, true, 0);
    let (_, body) = beat_eu(&edge, &late);
    assert_eq!(body["recorded"], false);
    assert_eq!(availability(&edge, "eu"), registry::Availability::Available);
    // Silent for longer than the timeout: unhealthy; back when it beats again.
    edge.clock.0.set(T0 + 16_000);
    assert_eq!(availability(&edge, "eu"), registry::Availability::Silent);
    beat(&edge, "eu", false, 2);
    assert_eq!(availability(&edge, "eu"), registry::Availability::Full);
    edge.clock.0.set(T0 + 17_000);
    beat(&edge, "eu", true, 1);
    assert_eq!(availability(&edge, "eu"), registry::Availability::Draining);
    edge.clock.0.set(T0 + 18_000);
    let mut leaving = heartbeat_body("eu", T0 + 18_000, true, 0);
    leaving["leaving"] = json!(true);
    beat_eu(&edge, &leaving);
    assert_eq!(availability(&edge, "eu"), registry::Availability::Left);
    edge.clock.0.set(T0 + 19_000);
    beat(&edge, "eu", false, 0);
    assert_eq!(availability(&edge, "eu"), registry::Availability::Available);
    // A sidecar that cannot keep LiveKit's webhooks (its disk is full): no new rooms there.
    edge.clock.0.set(T0 + 20_000);
    let mut unkept = heartbeat_body("eu", T0 + 20_000, false, 0);
    unkept["events_ok"] = json!(false);
    let (status, body) = beat_eu(&edge, &unkept);
    assert_eq!((status, &body["recorded"]), (200, &json!(true)), "{body}");
    assert_eq!(availability(&edge, "eu"), registry::Availability::MediaDown);
}

/// A sidecar upgraded before the edge sends fields this edge does not know yet: its heartbeats
/// and event batches are taken (refusing them would mark a healthy region down for the length
/// of a rolling upgrade).
#[test]
fn a_newer_sidecars_messages_are_taken() {
    let edge = edge();
    let mut newer = heartbeat_body("eu", T0, false, 0);
    newer["gpu_load"] = json!(0.4);
    newer["load"]["tracks"] = json!(12);
    let (status, body) = beat_eu(&edge, &newer);
    assert_eq!((status, &body["recorded"]), (200, &json!(true)), "{body}");
    assert_eq!(availability(&edge, "eu"), registry::Availability::Available);
    let room = running_room(&edge, "newer-room", "eu", json!({}));
    let started = event(
        "EV_NEWER",
        "room_started",
        &room.livekit_room,
        "RM_NEWER",
        None,
    );
    let (status, body) = post(
        &edge,
        "/internal/sidecar/events",
        "eu",
        SIDECAR_EU,
        &json!({"region_id": "eu", "events": [started], "batch_id": "b-1"}),
    );
    assert_eq!((status, &body["applied"]), (200, &json!(1)), "{body}");
}

/// A database whose migrations were not applied is not healthy, though it answers `SELECT 1`.
#[test]
fn the_health_check_needs_the_schema() {
    let edge = edge();
    let health =
        |edge: &TestEdge| block(edge.handle(EdgeRequest::new(Method::GET, "/healthCheck"))).status;
    assert_eq!(health(&edge), 200);
    edge.store
        .execute_batch("DROP TABLE region_status")
        .expect("drop");
    assert_eq!(health(&edge), 503);
    // The store's error (table names, paths) is not told to an unauthenticated caller.
    let body = block(edge.handle(EdgeRequest::new(Method::GET, "/healthCheck"))).body;
    let body = String::from_utf8_lossy(&body);
    assert!(!body.contains("region_status"), "{body}");
}

#[test]
fn webhooks_drive_the_session_exactly_once() {
    let edge = edge();
    let room = running_room(&edge, "weekly", "eu", json!({}));
    let weekly = room.livekit_room.as_str();
    let batch = vec![
        event("EV_1", "room_started", weekly, "RM_1", None),
        event(
            "EV_2",
            "participant_joined",
            weekly,
            "RM_1",
            Some(participant("PA_1", "alice", false)),
        ),
        event(
            "EV_3",
            "participant_joined",
            weekly,
            "RM_1",
            Some(participant("PA_2", "recorder", true)),
        ),
        event(
            "EV_4",
            "participant_left",
            weekly,
            "RM_1",
            Some(participant("PA_1", "alice", false)),
        ),
        // Alice reconnects: a new participant sid, the same person.
        event(
            "EV_5",
            "participant_joined",
            weekly,
            "RM_1",
            Some(participant("PA_3", "alice", false)),
        ),
        event(
            "EV_6",
            "participant_joined",
            weekly,
            "RM_1",
            Some(participant("PA_4", "bob", false)),
        ),
    ];
    // A malformed event refuses its whole batch, so that the sidecar isolates it and sets it
    // aside instead of having it dropped here; nothing of the batch is applied.
    let mut with_malformed = batch.clone();
    with_malformed.push(json!({"id": 7, "event": "room_finished"}));
    let (status, body) = events(&edge, "eu", with_malformed);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["msg"].as_str().unwrap_or("").contains("event 6"),
        "{body}"
    );
    let long_id = event(&"E".repeat(65), "room_started", weekly, "RM_1", None);
    assert_eq!(events(&edge, "eu", vec![long_id]).0, 400);
    let untouched = block(db::running_room(&edge.store, "weekly"))
        .expect("store")
        .expect("running");
    assert_eq!(untouched.status, "created");
    let (status, body) = events(&edge, "eu", batch.clone());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["applied"], 6, "{body}");
    // The same batch again (its acknowledgement was lost): nothing changes.
    let (_, body) = events(&edge, "eu", batch);
    assert_eq!(body["duplicates"], 6, "{body}");
    let now = block(db::running_room(&edge.store, "weekly"))
        .expect("store")
        .expect("running");
    assert_eq!(now.status, "active");
    assert_eq!(now.started_at, Some(T0 / 1000 + 1));
    assert_eq!(
        now.joined_participants, 2,
        "alice once, bob; not the recorder"
    );
    // The same room's events from another region's sidecar do not touch it.
    let (_, body) = events(
        &edge,
        "us",
        vec![event("EV_8", "room_finished", weekly, "RM_1", None)],
    );
    assert_eq!(body["ignored"], 1, "{body}");
    let (_, body) = events(
        &edge,
        "eu",
        vec![event("EV_9", "room_finished", weekly, "RM_1", None)],
    );
    assert_eq!(body["applied"], 1, "{body}");
    assert!(block(db::running_room(&edge.store, "weekly"))
        .expect("store")
        .is_none());
    let (total, past) = block(db::past_rooms(
        &edge.store,
        &db::ListingQuery {
            room_ids: &["weekly".to_string()],
            room_sid: None,
            from: 0,
            limit: 10,
            descending: true,
        },
    ))
    .expect("past");
    assert_eq!(total, 1);
    assert_eq!(past[0].room.sid, room.sid);
    assert_eq!(past[0].room.joined_participants, 2);
    assert_eq!(
        past[0].analytics_file_id,
        Some(format!("{}-analytics", room.sid))
    );
}

/// A sidecar cut off from the edge for a while delivers an earlier session's events after the
/// room id was ended and created again (here 20 s later, well within the clocks' allowed skew,
/// so time cannot tell the sessions apart): they must neither join anyone to the new session,
/// nor end it, nor delete its LiveKit room. Each session's LiveKit room has its own name.
#[test]
fn a_late_earlier_session_leaves_the_current_one_alone() {
    let edge = edge();
    let first = running_room(&edge, "standup", "eu", json!({}));
    assert!(block(db::end_room(&edge.store, &first.sid, T0 / 1000 + 10)).expect("end"));
    edge.clock.0.set(T0 + 20_000);
    let second = running_room(&edge, "standup", "eu", json!({}));
    assert_ne!(first.livekit_room, second.livekit_room);
    assert!(
        second.livekit_room.starts_with("standup."),
        "{}",
        second.livekit_room
    );
    let old = |id: &str, kind: &str, participant: Option<Value>| {
        // Stamped with the first session's time (T0 + 1 s).
        event(id, kind, &first.livekit_room, "RM_OLD", participant)
    };
    let (status, body) = events(
        &edge,
        "eu",
        vec![
            old("EV_1", "room_started", None),
            old(
                "EV_2",
                "participant_joined",
                Some(participant("PA_1", "alice", false)),
            ),
            old(
                "EV_3",
                "participant_left",
                Some(participant("PA_1", "alice", false)),
            ),
            old("EV_4", "room_finished", None),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["applied"], &body["ignored"]),
        (&json!(0), &json!(4)),
        "{body}"
    );
    // The ended session's LiveKit room is deleted, should it still be open; the new one is not.
    let deleted = deleted_rooms(&edge);
    assert_eq!(deleted, [json!(first.livekit_room)]);
    let now = block(db::running_room(&edge.store, "standup"))
        .expect("store")
        .expect("the second session still runs");
    assert_eq!(now.sid, second.sid);
    assert_eq!(
        (now.status.as_str(), now.joined_participants),
        ("created", 0)
    );

    // The second session's own LiveKit room then drives it as usual.
    let mut started = event("EV_5", "room_started", &second.livekit_room, "RM_NEW", None);
    started["createdAt"] = json!(((T0 + 21_000) / 1000).to_string());
    let mut joined = event(
        "EV_6",
        "participant_joined",
        &second.livekit_room,
        "RM_NEW",
        Some(participant("PA_2", "bob", false)),
    );
    joined["createdAt"] = started["createdAt"].clone();
    let (_, body) = events(&edge, "eu", vec![started, joined]);
    assert_eq!(body["applied"], 2, "{body}");
    let now = block(db::running_room(&edge.store, "standup"))
        .expect("store")
        .expect("running");
    assert_eq!(
        (now.status.as_str(), now.joined_participants),
        ("active", 1)
    );
    let (_, body) = events(
        &edge,
        "eu",
        vec![event(
            "EV_7",
            "room_finished",
            &second.livekit_room,
            "RM_NEW",
            None,
        )],
    );
    assert_eq!(body["applied"], 1, "{body}");
}

/// Sessions created before per-session LiveKit names keep the name their meeting started with
/// (the room id); sessions created after the migration get their own.
#[test]
fn sessions_from_before_per_session_names_keep_the_room_id() {
    let edge = edge();
    let legacy = running_room(&edge, "legacy", "eu", json!({}));
    // As if the migration had run after this session was created.
    edge.store
        .execute_batch(&format!(
            "UPDATE livekit_naming SET first_session_id = {}",
            legacy.id + 1
        ))
        .expect("naming");
    let legacy = block(db::running_room(&edge.store, "legacy"))
        .expect("store")
        .expect("running");
    assert_eq!(legacy.livekit_room, "legacy");
    let started = event("L0", "room_started", "legacy", "RM_L", None);
    assert_eq!(events(&edge, "eu", vec![started]).1["applied"], 1);
    let newer = running_room(&edge, "newer", "eu", json!({}));
    assert_eq!(newer.livekit_room, format!("newer.{}", newer.sid));
    // Migrations run again on every start: the cut-off stays where it was.
    edge.store.execute_batch(db::SCHEMA).expect("schema again");
    assert_eq!(lk(&edge, "legacy"), "legacy");
}

#[test]
fn a_room_livekit_runs_without_the_edge_is_deleted() {
    let edge = edge();
    let (_, body) = events(
        &edge,
        "eu",
        vec![event("EV_1", "room_started", "rogue", "RM_9", None)],
    );
    assert_eq!(body["ignored"], 1, "{body}");
    let calls = edge.http.calls.borrow();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0]
        .0
        .starts_with("http://eu.livekit.test/twirp/livekit.RoomService/DeleteRoom"));
    assert_eq!(calls[0].1["room"], "rogue");
}

#[test]
fn heartbeats_end_rooms_past_their_duration_or_left_empty() {
    let edge = edge();
    running_room(&edge, "timed", "eu", json!({"room_duration": 2}));
    running_room(&edge, "emptied", "eu", json!({}));
    running_room(&edge, "busy", "eu", json!({}));
    let mut batch = Vec::new();
    for (i, room) in ["timed", "emptied", "busy"].iter().enumerate() {
        batch.push(event(
            &format!("S{i}"),
            "room_started",
            &lk(&edge, room),
            &format!("RM_{room}"),
            None,
        ));
        batch.push(event(
            &format!("J{i}"),
            "participant_joined",
            &lk(&edge, room),
            &format!("RM_{room}"),
            Some(participant(&format!("PA_{room}"), "u", false)),
        ));
    }
    let deleted_names = [lk(&edge, "timed"), lk(&edge, "emptied")];
    batch.push(event(
        "L1",
        "participant_left",
        &lk(&edge, "emptied"),
        "RM_emptied",
        Some(participant("PA_emptied", "u", false)),
    ));
    let (status, body) = events(&edge, "eu", batch);
    assert_eq!((status, &body["applied"]), (200, &json!(7)), "{body}");

    // One minute in: nothing is due.
    edge.clock.0.set(T0 + 60_000);
    let (_, body) = beat(&edge, "eu", false, 3);
    assert_eq!(body["rooms_ended"], 0, "{body}");
    // The reply counts the sessions still running there (what a draining sidecar waits for).
    assert_eq!(body["running_sessions"], 3, "{body}");
    let (_, body) = beat(&edge, "us", false, 0);
    assert_eq!(body["running_sessions"], 0, "{body}");
    // Past two minutes: the timed room ends; the empty one waits for its 1800 s timeout.
    edge.clock.0.set(T0 + 122_000);
    let (_, body) = beat(&edge, "eu", false, 3);
    assert_eq!(body["rooms_ended"], 1, "{body}");
    assert_eq!(body["running_sessions"], 2, "{body}");
    assert!(block(db::running_room(&edge.store, "timed"))
        .expect("store")
        .is_none());
    edge.clock.0.set(T0 + 1_802_000);
    let (_, body) = beat(&edge, "eu", false, 2);
    assert_eq!(body["rooms_ended"], 1, "{body}");
    assert!(block(db::running_room(&edge.store, "emptied"))
        .expect("store")
        .is_none());
    assert!(block(db::running_room(&edge.store, "busy"))
        .expect("store")
        .is_some());
    let deleted = deleted_rooms(&edge);
    assert_eq!(deleted, deleted_names.map(Value::from));
}

/// Emptiness is judged on delivered webhooks only: while the region's sidecar still holds some
/// (a re-join may be among them), an empty-looking room is left alone. A session nobody ever
/// entered ends once its empty_timeout has passed since creation, as LiveKit closes a room
/// nobody joins; one placed in a region waits, like emptiness, for that region's webhooks.
#[test]
fn emptiness_waits_for_undelivered_webhooks_and_unentered_rooms_end() {
    let edge = edge();
    let quiet = running_room(&edge, "quiet", "eu", json!({})).livekit_room;
    running_room(&edge, "unentered", "eu", json!({}));
    titled_room(&edge, "unplaced");
    let joined = Some(participant("PA_quiet", "u", false));
    let batch = vec![
        event("Q0", "room_started", &quiet, "RM_quiet", None),
        event(
            "Q1",
            "participant_joined",
            &quiet,
            "RM_quiet",
            joined.clone(),
        ),
        event("Q2", "participant_left", &quiet, "RM_quiet", joined),
    ];
    assert_eq!(events(&edge, "eu", batch).1["applied"], 3);
    edge.clock.0.set(T0 + 1_802_000);
    let mut behind = heartbeat_body("eu", T0 + 1_802_000, false, 1);
    behind["undelivered_events"] = json!(5);
    let (_, body) = beat_eu(&edge, &behind);
    // Only the session never placed anywhere ends: nothing about it can be on its way.
    assert_eq!(body["rooms_ended"], 1, "{body}");
    let running = |room: &str| {
        block(db::running_room(&edge.store, room))
            .expect("store")
            .is_some()
    };
    assert!(running("quiet") && running("unentered") && !running("unplaced"));
    edge.clock.0.set(T0 + 1_807_000);
    let (_, body) = beat(&edge, "eu", false, 1);
    assert_eq!(body["rooms_ended"], 2, "{body}");
    assert!(!running("quiet") && !running("unentered"));
    // Only the room LiveKit ran is deleted there.
    let deleted = deleted_rooms(&edge);
    assert_eq!(deleted, [json!(quiet)]);
}

/// An event's time is LiveKit's clock: one far in the future (a wrong clock, a forged event)
/// is taken as no later than the allowed skew, so the room still reaches its limits.
#[test]
fn an_event_from_the_future_is_held_to_the_clock_skew() {
    let edge = edge();
    let future = running_room(&edge, "future", "eu", json!({"room_duration": 2}));
    let mut started = event(
        "F0",
        "room_started",
        &future.livekit_room,
        "RM_future",
        None,
    );
    started["createdAt"] = json!("9000000000");
    assert_eq!(events(&edge, "eu", vec![started]).1["applied"], 1);
    let room = block(db::running_room(&edge.store, "future"))
        .expect("store")
        .expect("running");
    assert_eq!(room.started_at, Some(T0 / 1000 + 60));
    edge.clock.0.set(T0 + 181_000);
    assert_eq!(beat(&edge, "eu", false, 1).1["rooms_ended"], 1);
}

/// A heartbeat stamped ahead of the edge's clock (a sidecar whose clock then stepped back, or a
/// forged one within the allowed skew) does not make the honest heartbeats after it look old.
#[test]
fn a_heartbeat_stamped_ahead_does_not_silence_its_region() {
    let edge = edge();
    let ahead = heartbeat_body("eu", T0 + 55_000, false, 0);
    let (_, body) = beat_eu(&edge, &ahead);
    assert_eq!(body["recorded"], true, "{body}");
    for step in 1..=4 {
        edge.clock.0.set(T0 + step * 5_000);
        let (_, body) = beat(&edge, "eu", step == 4, 0);
        assert_eq!(body["recorded"], true, "{body}");
    }
    assert_eq!(availability(&edge, "eu"), registry::Availability::Draining);
}

#[test]
fn a_blocked_user_gets_no_token_and_stays_as_stored() {
    let edge = edge();
    let room = running_room(&edge, "blocking", "eu", json!({}));
    let join = |name: &str| {
        post(
            &edge,
            "/auth/room/getJoinToken",
            "plugnmeet",
            API_SECRET,
            &json!({"room_id": "blocking", "user_info": {"name": name, "user_id": "u1"}}),
        )
    };
    let (status, body) = join("First Name");
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");

    // A moderator blocks u1 (as `/api/removeParticipant` with `block_user` does).
    assert!(block(db::block_user(&edge.store, &room.sid, "u1")).expect("block"));
    assert!(!block(db::block_user(&edge.store, &room.sid, "nobody")).expect("block"));
    let before = block(db::room_user(&edge.store, &room.sid, "u1"))
        .expect("store")
        .expect("user");

    let (status, body) = join("Second Name");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], json!(false), "{body}");
    assert_eq!(body["status_code"], json!("USER_BLOCKED"), "{body}");
    assert!(body.get("token").is_none(), "{body}");
    let after = block(db::room_user(&edge.store, &room.sid, "u1"))
        .expect("store")
        .expect("user");
    assert_eq!(after, before, "a blocked user's record must not change");

    // Other users of the room are not affected.
    let (status, body) = post(
        &edge,
        "/auth/room/getJoinToken",
        "plugnmeet",
        API_SECRET,
        &json!({"room_id": "blocking", "user_info": {"name": "Other", "user_id": "u2"}}),
    );
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
}

/// LiveKit keeps no block list: a blocked user who comes back with a LiveKit token minted
/// before the block is removed again as soon as the sidecar reports the join; anyone else's
/// join costs no LiveKit call, nor does a re-sent event.
#[test]
fn a_blocked_user_back_with_an_old_livekit_token_is_removed_again() {
    let edge = edge();
    let room = running_room(&edge, "guarded", "eu", json!({}));
    join_token(&edge, "guarded", "alice");
    join_token(&edge, "guarded", "mallory");
    let name = lk(&edge, "guarded");
    let (status, body) = events(
        &edge,
        "eu",
        vec![
            event("EV_1", "room_started", &name, "RM_1", None),
            presence("EV_2", "participant_joined", &name, "PA_1", "alice"),
            presence("EV_3", "participant_joined", &name, "PA_2", "mallory"),
        ],
    );
    assert_eq!((status, &body["applied"]), (200, &json!(3)), "{body}");
    assert!(edge.http.calls.borrow().is_empty(), "nobody was blocked");

    assert!(block(db::block_user(&edge.store, &room.sid, "mallory")).expect("block"));
    let back = vec![
        presence("EV_4", "participant_left", &name, "PA_2", "mallory"),
        presence("EV_5", "participant_joined", &name, "PA_3", "mallory"),
        presence("EV_6", "participant_joined", &name, "PA_4", "bob-unknown"),
    ];
    let (status, body) = events(&edge, "eu", back.clone());
    assert_eq!((status, &body["applied"]), (200, &json!(3)), "{body}");
    let calls = edge.http.calls.borrow().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].0,
        "http://eu.livekit.test/twirp/livekit.RoomService/RemoveParticipant"
    );
    assert_eq!(calls[0].1, json!({"room": name, "identity": "mallory"}));
    // The same batch again (its acknowledgement lost): nothing twice.
    let (status, _) = events(&edge, "eu", back);
    assert_eq!(status, 200);
    assert_eq!(edge.http.calls.borrow().len(), 1);
    // LiveKit down: the join is still recorded, the batch still acknowledged.
    edge.http.down.set(true);
    let (status, body) = events(
        &edge,
        "eu",
        vec![presence(
            "EV_7",
            "participant_joined",
            &name,
            "PA_5",
            "mallory",
        )],
    );
    assert_eq!((status, &body["applied"]), (200, &json!(1)), "{body}");
    let removals = || {
        edge.http
            .calls
            .borrow()
            .iter()
            .filter(|(url, _)| url.ends_with("/RemoveParticipant"))
            .count()
    };
    assert_eq!(removals(), 2);
    // Each heartbeat tries again for everyone the session still lists as present (no
    // participant_left came for either): while LiveKit is down, then when it says they are
    // gone, which marks them so; then nobody is left to remove.
    let next_beat = || {
        edge.clock.0.set(edge.clock.0.get() + 5_000);
        assert_eq!(beat(&edge, "eu", false, 1).1["recorded"], true);
    };
    next_beat();
    assert_eq!(removals(), 4);
    edge.http.down.set(false);
    edge.http.missing.set(true);
    next_beat();
    assert_eq!(removals(), 6);
    next_beat();
    assert_eq!(removals(), 6, "marked gone after LiveKit's 404");
    // Alice, never blocked, was never touched.
    assert!(edge
        .http
        .calls
        .borrow()
        .iter()
        .all(|(_, b)| b["identity"] != "alice"));
}

/// A join token for `user_id` in `room_id`, from the plugNmeet API.
fn join_token(edge: &TestEdge, room_id: &str, user_id: &str) -> String {
    let (status, body) = post(
        edge,
        "/auth/room/getJoinToken",
        "plugnmeet",
        API_SECRET,
        &json!({"room_id": room_id, "user_info": {"name": user_id, "user_id": user_id}}),
    );
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    body["token"].as_str().expect("token").to_owned()
}

/// The join page's `POST /api/session` with `token`.
fn session(edge: &TestEdge, token: &str) -> (u16, Value) {
    let mut request = EdgeRequest::new(Method::POST, "/api/session");
    request
        .headers
        .insert("authorization", token.parse().expect("header"));
    reply(block(edge.handle(request)))
}

/// The count `sql` (a `SELECT COUNT(*)` with one parameter, the session's sid) gives for `sid`.
fn count(edge: &TestEdge, sql: &str, sid: &str) -> i64 {
    let rows = block(edge_api::platform::Store::execute(
        &edge.store,
        sql,
        &[sid.into()],
    ))
    .expect("count");
    match rows.rows[0][0] {
        edge_api::platform::SqlValue::Integer(n) => n,
        ref other => panic!("count: {other:?}"),
    }
}

/// Participants of the session `sid` LiveKit reported and that have not left.
fn present(edge: &TestEdge, sid: &str) -> i64 {
    count(
        edge,
        "SELECT COUNT(*) FROM room_participants WHERE room_sid = ? AND left_at IS NULL",
        sid,
    )
}

/// A running room whose region dies moves at its next join: a region silent for a few
/// heartbeat timeouts, or one that drained and left, is gone; a region that is only late, full
/// or draining keeps its rooms. Once moved, the old region's late events cannot touch it.
#[test]
fn a_room_moves_when_its_region_is_gone() {
    let edge = edge();
    beat(&edge, "eu", false, 0);
    beat(&edge, "us", false, 0);
    let room = running_room(&edge, "moving", "eu", json!({}));
    let name = room.livekit_room.clone();
    let joined = Some(participant("PA_alice", "alice", false));
    let batch = vec![
        event("M0", "room_started", &name, "RM_eu", None),
        event("M1", "participant_joined", &name, "RM_eu", joined),
    ];
    assert_eq!(events(&edge, "eu", batch).1["applied"], 2);
    let bob = join_token(&edge, "moving", "bob");
    let placed = |edge: &TestEdge| {
        let (status, body) = session(edge, &bob);
        assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
        (
            body["region"]["id"].as_str().expect("region").to_owned(),
            body["placement"].as_str().expect("placement").to_owned(),
        )
    };
    assert_eq!(placed(&edge), ("eu".into(), "pinned".into()));

    // Silent past the timeout: no new rooms go there, but this one stays (a restart, a blip).
    edge.clock.0.set(T0 + 30_000);
    beat(&edge, "us", false, 0);
    assert_eq!(availability(&edge, "eu"), registry::Availability::Silent);
    assert_eq!(placed(&edge), ("eu".into(), "pinned".into()));

    // Silent for four timeouts: gone. The join moves the room; everyone LiveKit had reported
    // there counts as gone from now.
    edge.clock.0.set(T0 + 61_000);
    beat(&edge, "us", false, 0);
    assert_eq!(present(&edge, &room.sid), 1);
    let (status, body) = session(&edge, &bob);
    assert_eq!(
        (status, &body["placement"]),
        (200, &json!("failover")),
        "{body}"
    );
    assert_eq!(body["region"]["id"], "us", "{body}");
    assert_eq!(body["livekit_url"], "ws://us.livekit.test", "{body}");
    assert_eq!(present(&edge, &room.sid), 0);
    assert_eq!(placed(&edge), ("us".into(), "pinned".into()));

    // eu comes back with what it held: its LiveKit room finishing ends nothing here.
    edge.clock.0.set(T0 + 62_000);
    beat(&edge, "eu", false, 1);
    let late = vec![event("M2", "room_finished", &name, "RM_eu", None)];
    assert_eq!(events(&edge, "eu", late).1["applied"], 0);
    let now = block(db::running_room(&edge.store, "moving"))
        .expect("store")
        .expect("still running");
    assert_eq!(
        (now.sid.as_str(), now.region.as_deref()),
        (room.sid.as_str(), Some("us"))
    );
    // us's LiveKit room becomes the session's media.
    let joined = Some(participant("PA_bob", "bob", false));
    let batch = vec![
        event("U0", "room_started", &name, "RM_us", None),
        event("U1", "participant_joined", &name, "RM_us", joined),
    ];
    assert_eq!(events(&edge, "us", batch).1["applied"], 2);
    assert_eq!(present(&edge, &room.sid), 1);
    let finished = vec![event("U2", "room_finished", &name, "RM_us", None)];
    assert_eq!(events(&edge, "us", finished).1["applied"], 1);
    assert!(block(db::running_room(&edge.store, "moving"))
        .expect("store")
        .is_none());

    // A region that drained and left is gone at once.
    beat(&edge, "us", false, 0);
    let room = running_room(&edge, "left-behind", "eu", json!({}));
    edge.clock.0.set(T0 + 63_000);
    let mut leaving = heartbeat_body("eu", T0 + 63_000, true, 0);
    leaving["leaving"] = json!(true);
    // (A drain would wait for the room; a sidecar that leaves anyway is what is tested here.)
    assert_eq!(beat_eu(&edge, &leaving).1["recorded"], true);
    let carol = join_token(&edge, "left-behind", "carol");
    let (_, body) = session(&edge, &carol);
    assert_eq!(
        (&body["placement"], &body["region"]["id"]),
        (&json!("failover"), &json!("us")),
        "{body}"
    );
    assert_eq!(
        block(db::running_room(&edge.store, "left-behind"))
            .expect("store")
            .expect("running")
            .sid,
        room.sid
    );
}

/// A pin checks in its own statement that the region is not draining or gone, so it cannot
/// land after a draining sidecar was told its region had no session left.
#[test]
fn a_pin_never_lands_on_a_closed_region() {
    let edge = edge();
    let sid = created_room(
        &edge,
        &json!({"room_id": "late-pin", "metadata": {"room_title": "T"}}),
    )
    .sid;
    // The join read the registry (eu available), then eu's drain heartbeat landed first.
    let (_, body) = beat(&edge, "eu", true, 0);
    assert_eq!(body["running_sessions"], 0, "{body}");
    assert_eq!(
        block(db::pin_region(&edge.store, &sid, "eu")).expect("pin"),
        None
    );
    // us is open: the pin lands, and a later one changes nothing.
    beat(&edge, "us", false, 0);
    assert_eq!(
        block(db::pin_region(&edge.store, &sid, "us")).expect("pin"),
        Some("us".into())
    );
    assert_eq!(
        block(db::pin_region(&edge.store, &sid, "eu")).expect("pin"),
        Some("us".into())
    );
    // A move into a draining region is refused the same way.
    edge.clock.0.set(T0 + 100_000);
    beat(&edge, "eu", true, 0);
    assert_eq!(
        block(db::move_region(
            &edge.store,
            &sid,
            "us",
            "eu",
            T0 / 1000 + 100
        ))
        .expect("move"),
        Some("us".into())
    );
    let (_, body) = beat(&edge, "us", false, 1);
    assert_eq!(body["running_sessions"], 1, "{body}");
}

/// The rooms of a region that is gone and that nobody joins again end once their empty timeout
/// has passed since the region was last heard from, on another region's heartbeat; their
/// LiveKit room is not asked to go (that LiveKit is the dead one). Rooms with a longer empty
/// timeout and rooms of live regions stay.
#[test]
fn rooms_of_a_gone_region_end_after_their_empty_timeout() {
    let edge = edge();
    beat(&edge, "eu", false, 0);
    beat(&edge, "us", false, 0);
    let create = |room_id: &str, empty_timeout: u32| {
        created_room(
            &edge,
            &json!({"room_id": room_id, "empty_timeout": empty_timeout,
                    "metadata": {"room_title": "T"}}),
        )
    };
    let orphan = create("orphan", 300);
    let patient = create("patient", 1800);
    let living = create("living", 300);
    for (room, region) in [(&orphan, "eu"), (&patient, "eu"), (&living, "us")] {
        block(db::pin_region(&edge.store, &room.sid, region)).expect("pin");
        let name = room.livekit_room.clone();
        let joined = Some(participant(&format!("PA_{}", room.room_id), "u", false));
        let batch = vec![
            event(
                &format!("S_{}", room.room_id),
                "room_started",
                &name,
                "RM",
                None,
            ),
            event(
                &format!("J_{}", room.room_id),
                "participant_joined",
                &name,
                "RM",
                joined,
            ),
        ];
        assert_eq!(events(&edge, region, batch).1["applied"], 2);
    }
    let running = |room_id: &str| {
        block(db::running_room(&edge.store, room_id))
            .expect("store")
            .is_some()
    };
    // eu falls silent. Gone after a minute, but its rooms wait for their empty timeout.
    edge.clock.0.set(T0 + 120_000);
    let (_, body) = beat(&edge, "us", false, 1);
    assert_eq!(body["rooms_ended"], 0, "{body}");
    edge.clock.0.set(T0 + 301_000);
    let (_, body) = beat(&edge, "us", false, 1);
    assert_eq!(body["rooms_ended"], 1, "{body}");
    assert!(!running("orphan") && running("patient") && running("living"));
    assert!(
        deleted_rooms(&edge).is_empty(),
        "{:?}",
        deleted_rooms(&edge)
    );
}

/// A LiveKit room the edge could not delete (LiveKit did not answer) is deleted on a later
/// heartbeat of its region, with a growing delay between attempts, and then no more.
#[test]
fn a_failed_livekit_delete_is_retried_on_heartbeats() {
    let edge = edge();
    beat(&edge, "eu", false, 0);
    let room = running_room(&edge, "stuck", "eu", json!({}));
    edge.http.down.set(true);
    // The session is over whatever LiveKit says.
    end_room(&edge, "stuck");
    assert!(block(db::running_room(&edge.store, "stuck"))
        .expect("store")
        .is_none());
    assert_eq!(deleted_rooms(&edge), [json!(room.livekit_room)]);
    // Not before 30 s; then again, failing, and next after 60 s more.
    edge.clock.0.set(T0 + 20_000);
    beat(&edge, "eu", false, 0);
    assert_eq!(deleted_rooms(&edge).len(), 1);
    edge.clock.0.set(T0 + 31_000);
    beat(&edge, "eu", false, 0);
    assert_eq!(deleted_rooms(&edge).len(), 2);
    edge.clock.0.set(T0 + 80_000);
    beat(&edge, "eu", false, 0);
    assert_eq!(deleted_rooms(&edge).len(), 2);
    // LiveKit is back: the delete goes through and is not repeated.
    edge.http.down.set(false);
    edge.clock.0.set(T0 + 92_000);
    beat(&edge, "eu", false, 0);
    assert_eq!(deleted_rooms(&edge).len(), 3);
    edge.clock.0.set(T0 + 4_000_000);
    beat(&edge, "eu", false, 0);
    assert_eq!(
        deleted_rooms(&edge),
        [
            json!(room.livekit_room),
            json!(room.livekit_room),
            json!(room.livekit_room)
        ]
    );
}

/// An end cut off while LiveKit hangs (the platform's time limit, or the client gone) has
/// ended the session and kept the LiveKit delete before asking: the retry deletes the room.
#[test]
fn an_end_cut_off_while_livekit_hangs_keeps_its_delete() {
    let edge = edge();
    beat(&edge, "eu", false, 0);
    let room = running_room(&edge, "hung", "eu", json!({}));
    edge.http.hangs.set(true);
    let end = signed(
        "/auth/room/endRoom",
        "plugnmeet",
        API_SECRET,
        &json!({"room_id": "hung"}),
    );
    // Polled once: its statements run, LiveKit never answers, and the request is dropped there.
    assert!(futures_util::FutureExt::now_or_never(edge.handle(end)).is_none());
    assert!(block(db::running_room(&edge.store, "hung"))
        .expect("store")
        .is_none());
    assert_eq!(deleted_rooms(&edge), [json!(room.livekit_room)]);
    // LiveKit answers again; the kept delete is due 30 s after the attempt.
    edge.http.hangs.set(false);
    edge.clock.0.set(T0 + 20_000);
    beat(&edge, "eu", false, 0);
    assert_eq!(deleted_rooms(&edge).len(), 1);
    edge.clock.0.set(T0 + 31_000);
    beat(&edge, "eu", false, 0);
    assert_eq!(deleted_rooms(&edge).len(), 2);
    // Done, and not asked again.
    edge.clock.0.set(T0 + 4_000_000);
    beat(&edge, "eu", false, 0);
    assert_eq!(deleted_rooms(&edge).len(), 2);
}

/// On a platform that caps queries per request (D1 on Workers' free plan), the edge takes
/// batches of at most `max_events_per_batch`: a larger one is refused whole, before anything is
/// applied, with the limit the sidecar is to use.
#[test]
fn a_batch_over_the_configured_size_is_refused_with_the_limit() {
    let mut edge = edge();
    edge.config.max_events_per_batch = 2;
    let room = running_room(&edge, "budget", "eu", json!({}));
    let name = room.livekit_room.as_str();
    let joined = |id: &str, sid: &str, who: &str| {
        event(
            id,
            "participant_joined",
            name,
            "RM_B",
            Some(participant(sid, who, false)),
        )
    };
    let three = vec![
        event("EV_B0", "room_started", name, "RM_B", None),
        joined("EV_B1", "PA_B1", "ann"),
        joined("EV_B2", "PA_B2", "ben"),
    ];
    let (status, body) = events(&edge, "eu", three.clone());
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["status"], false, "{body}");
    assert_eq!(body["max_events"], 2, "{body}");
    assert_eq!(
        present(&edge, &room.sid),
        0,
        "part of a refused batch was applied"
    );

    let (status, body) = events(&edge, "eu", three[..2].to_vec());
    assert_eq!((status, &body["applied"]), (200, &json!(2)), "{body}");
    let (status, body) = events(&edge, "eu", three[2..].to_vec());
    assert_eq!((status, &body["applied"]), (200, &json!(1)), "{body}");
    assert_eq!(present(&edge, &room.sid), 2);
}

/// Rows of `table` kept for the session `sid`.
fn rows_for(edge: &TestEdge, table: &str, sid: &str) -> i64 {
    count(
        edge,
        &format!("SELECT COUNT(*) FROM {table} WHERE room_sid = ?"),
        sid,
    )
}

/// Past rooms by room id, as `room/fetchPastRooms` lists them.
fn past_room_ids(edge: &TestEdge) -> Vec<String> {
    let (status, body) = post(
        edge,
        "/auth/room/fetchPastRooms",
        "plugnmeet",
        API_SECRET,
        &json!({"order_by": "ASC"}),
    );
    assert_eq!(status, 200, "{body}");
    body["result"]["rooms_list"]
        .as_array()
        .expect("rooms_list")
        .iter()
        .map(|r| r["room_id"].as_str().expect("room_id").to_owned())
        .collect()
}

/// With `past_rooms_retention_days`, a session ended longer ago than that is deleted when
/// rooms are created, with the users and participants kept about it; newer past rooms and
/// running rooms, however old, stay.
#[test]
fn past_rooms_are_forgotten_after_their_retention() {
    let day_ms = 86_400_000;
    let mut edge = edge();
    edge.config.past_rooms_retention_days = 30;
    // Day 0: "old" runs with a user and a participant, then ends; "still-running" starts.
    let old = running_room(&edge, "old", "eu", json!({}));
    join_token(&edge, "old", "ada");
    let (status, body) = events(
        &edge,
        "eu",
        vec![
            event("EV_R1", "room_started", &old.livekit_room, "RM_R", None),
            event(
                "EV_R2",
                "participant_joined",
                &old.livekit_room,
                "RM_R",
                Some(participant("PA_R", "ada", false)),
            ),
        ],
    );
    assert_eq!((status, &body["applied"]), (200, &json!(2)), "{body}");
    assert_eq!(rows_for(&edge, "room_users", &old.sid), 1);
    assert_eq!(rows_for(&edge, "room_participants", &old.sid), 1);
    end_room(&edge, "old");
    running_room(&edge, "still-running", "eu", json!({}));
    // Day 20: "recent" runs and ends.
    edge.clock.0.set(T0 + 20 * day_ms);
    titled_room(&edge, "recent");
    end_room(&edge, "recent");
    assert_eq!(past_room_ids(&edge), ["old", "recent"]);
    assert_eq!(rows_for(&edge, "session_analytics", &old.sid), 1);

    // Day 31: "old" ended 31 days ago. Listing does not delete; the next create does.
    edge.clock.0.set(T0 + 31 * day_ms);
    assert_eq!(past_room_ids(&edge), ["old", "recent"]);
    titled_room(&edge, "new");
    assert_eq!(past_room_ids(&edge), ["recent"]);
    for table in [
        "room_users",
        "room_participants",
        "room_media",
        "session_analytics",
    ] {
        assert_eq!(rows_for(&edge, table, &old.sid), 0, "{table} kept");
    }
    let running = block(db::running_room(&edge.store, "still-running")).expect("store");
    assert!(running.is_some(), "a running room was deleted");

    // Without a retention nothing goes.
    edge.config.past_rooms_retention_days = 0;
    edge.clock.0.set(T0 + 400 * day_ms);
    titled_room(&edge, "later");
    assert_eq!(past_room_ids(&edge), ["recent"]);
}

/// LiveKit's webhooks can arrive out of order: a participant heard leaving before it was heard
/// joining is counted as having been there, and is not present afterwards (it would otherwise
/// keep the room from ever being empty).
#[test]
fn a_participant_heard_leaving_before_joining_is_not_left_present() {
    let edge = edge();
    let room = running_room(&edge, "reordered", "eu", json!({}));
    let name = room.livekit_room.as_str();
    let ada = || Some(participant("PA_O", "ada", false));
    let (status, body) = events(
        &edge,
        "eu",
        vec![
            event("EV_O1", "room_started", name, "RM_O", None),
            event("EV_O2", "participant_left", name, "RM_O", ada()),
            event("EV_O3", "participant_joined", name, "RM_O", ada()),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        present(&edge, &room.sid),
        0,
        "a participant that left is present"
    );
    assert_eq!(rows_for(&edge, "room_participants", &room.sid), 1);
    let joined = block(db::running_room(&edge.store, "reordered"))
        .expect("store")
        .expect("running")
        .joined_participants;
    assert_eq!(
        joined, 1,
        "the participant was there, so it counts as having joined"
    );
}

/// Without sidecars there is no heartbeat: a LiveKit delete that failed is retried on the next
/// `room/create` or `room/endRoom` once it is due, and not after it went through.
#[test]
fn without_sidecars_a_failed_livekit_delete_is_retried_on_later_calls() {
    let mut edge = edge();
    edge.config.sidecar_secrets.clear();
    let room = running_room(&edge, "stuck", "eu", json!({}));
    edge.http.down.set(true);
    end_room(&edge, "stuck");
    assert_eq!(deleted_rooms(&edge), [json!(room.livekit_room)]);
    // Not due yet.
    edge.clock.0.set(T0 + 20_000);
    titled_room(&edge, "second");
    assert_eq!(deleted_rooms(&edge).len(), 1);
    // Due: retried, and LiveKit is back.
    edge.http.down.set(false);
    edge.clock.0.set(T0 + 31_000);
    titled_room(&edge, "third");
    assert_eq!(
        deleted_rooms(&edge),
        [json!(room.livekit_room), json!(room.livekit_room)]
    );
    // Done: an end of another (never placed) room retries nothing more.
    edge.clock.0.set(T0 + 4_000_000);
    end_room(&edge, "third");
    assert_eq!(deleted_rooms(&edge).len(), 2);
}

/// Event ids are remembered per region: the same id from another region's sidecar is applied
/// there, and its re-send from either region is recognised as a repeat.
#[test]
fn event_ids_are_remembered_per_region() {
    let edge = edge();
    let eu = running_room(&edge, "in-eu", "eu", json!({}));
    let us = running_room(&edge, "in-us", "us", json!({}));
    // The same event id from each region, then each sent again.
    for counted in ["applied", "duplicates"] {
        for (region, room, lk_sid) in [("eu", &eu, "RM_EU"), ("us", &us, "RM_US")] {
            let started = event("EV_SAME", "room_started", &room.livekit_room, lk_sid, None);
            let (status, body) = events(&edge, region, vec![started]);
            assert_eq!(
                (status, &body[counted]),
                (200, &json!(1)),
                "{region}: {body}"
            );
        }
    }
}

/// Where only some regions have a sidecar, the deletes of a sidecar region that stopped
/// heartbeating do not hold the few places each call has for retries: the other regions'
/// deletes are retried too.
#[test]
fn retries_on_calls_are_not_starved_by_a_silent_sidecar_region() {
    let mut edge = edge();
    edge.config.sidecar_secrets.remove("us");
    let stuck: Vec<db::RoomRow> = (0..5)
        .map(|n| running_room(&edge, &format!("eu-{n}"), "eu", json!({})))
        .collect();
    edge.http.down.set(true);
    for room in &stuck {
        end_room(&edge, &room.room_id);
    }
    edge.clock.0.set(T0 + 1_000);
    let us = running_room(&edge, "in-us", "us", json!({}));
    end_room(&edge, "in-us");
    edge.http.down.set(false);
    edge.clock.0.set(T0 + 40_000);
    titled_room(&edge, "later-1");
    titled_room(&edge, "later-2");
    let deleted = deleted_rooms(&edge);
    let us_deletes = deleted
        .iter()
        .filter(|room| **room == json!(us.livekit_room))
        .count();
    assert_eq!(
        us_deletes, 2,
        "the delete in the region without a sidecar was not retried: {deleted:?}"
    );
}

/// A join token for `user_info` (with `user_id` and `name`) in `room_id`, from the plugNmeet API.
fn join_token_as(edge: &TestEdge, room_id: &str, user_info: Value) -> String {
    let (status, body) = post(
        edge,
        "/auth/room/getJoinToken",
        "plugnmeet",
        API_SECRET,
        &json!({"room_id": room_id, "user_info": user_info}),
    );
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    body["token"].as_str().expect("token").to_owned()
}

/// The `video` grant of the LiveKit token a successful session answer carries.
fn livekit_grant(session: &Value) -> Value {
    use base64::Engine;
    let token = session["token"].as_str().expect("token");
    let payload = token.split('.').nth(1).expect("payload");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    let claims: Value = serde_json::from_slice(&payload).expect("claims");
    claims["video"].clone()
}

/// A user's rights in a session are those of the latest join token the backend issued them: an
/// older token still joins, but brings back neither moderator rights nor a visibility the
/// backend has since changed.
#[test]
fn an_older_join_token_brings_back_no_right_a_later_one_took() {
    let edge = edge();
    beat(&edge, "eu", false, 0);
    titled_room(&edge, "demoted");
    let as_admin = join_token_as(
        &edge,
        "demoted",
        json!({"user_id": "bob", "name": "Bob", "is_admin": true}),
    );
    let (status, body) = session(&edge, &as_admin);
    assert_eq!(status, 200, "{body}");
    assert_eq!(livekit_grant(&body)["roomAdmin"], json!(true), "{body}");

    join_token_as(&edge, "demoted", json!({"user_id": "bob", "name": "Bob"}));
    let (status, body) = session(&edge, &as_admin);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_admin"], json!(false), "{body}");
    assert!(livekit_grant(&body).get("roomAdmin").is_none(), "{body}");
    let mut end = EdgeRequest::new(Method::POST, "/api/endRoom");
    end.headers
        .insert("authorization", as_admin.parse().expect("header"));
    assert_eq!(block(edge.handle(end)).status, 403);

    // Made hidden (watching, not publishing) by a later token: the earlier, visible one
    // publishes nothing either.
    let visible = join_token_as(&edge, "demoted", json!({"user_id": "eve", "name": "Eve"}));
    join_token_as(
        &edge,
        "demoted",
        json!({"user_id": "eve", "name": "Eve", "is_hidden": true}),
    );
    let (status, body) = session(&edge, &visible);
    assert_eq!(status, 200, "{body}");
    let grant = livekit_grant(&body);
    assert_eq!(
        (&grant["hidden"], &grant["canPublish"]),
        (&json!(true), &json!(false)),
        "{body}"
    );
}

/// A room id ended and created again is a new session: a token issued for the earlier one is
/// refused there even once the same user has a token for the new one.
#[test]
fn a_join_token_from_an_earlier_session_of_the_room_id_is_refused() {
    let edge = edge();
    titled_room(&edge, "again");
    let earlier = join_token_as(
        &edge,
        "again",
        json!({"user_id": "ann", "name": "Ann", "is_admin": true}),
    );
    end_room(&edge, "again");
    edge.clock.0.set(T0 + 120_000);
    beat(&edge, "eu", false, 0);
    titled_room(&edge, "again");
    let current = join_token(&edge, "again", "ann");
    let (status, body) = session(&edge, &earlier);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["msg"], json!("notifications.invalid-token"), "{body}");
    let (status, body) = session(&edge, &current);
    assert_eq!(status, 200, "{body}");
}

/// endRoom deletes the LiveKit room of a session pinned after endRoom read it (a join placing
/// the room at that moment), and no pin lands on a session that has ended.
#[test]
fn a_room_ending_as_it_is_placed_leaves_no_livekit_room() {
    let edge = edge();
    let read_by_end = titled_room(&edge, "racing");
    assert_eq!(read_by_end.region, None);
    let pinned = block(db::pin_region(&edge.store, &read_by_end.sid, "eu")).expect("pin");
    assert_eq!(pinned.as_deref(), Some("eu"));
    block(edge_api::rooms::end::end_session(&edge, &read_by_end)).expect("end");
    assert_eq!(
        deleted_rooms(&edge),
        vec![json!(read_by_end.livekit_room)],
        "the pinned session's LiveKit room is deleted"
    );

    let ended_first = titled_room(&edge, "ended-first");
    end_room(&edge, "ended-first");
    let pinned = block(db::pin_region(&edge.store, &ended_first.sid, "eu")).expect("pin");
    assert_eq!(pinned, None, "no pin lands on an ended session");
}

/// A store that ends the running session of the room a create conflicts with just before the
/// create reads it: an endRoom landing between the two statements.
struct EndsBeforeTheRead {
    inner: SqliteStore,
    armed: Cell<bool>,
}

impl edge_api::platform::Store for EndsBeforeTheRead {
    async fn execute(
        &self,
        sql: &str,
        params: &[edge_api::platform::SqlValue],
    ) -> Result<edge_api::platform::Rows, edge_api::platform::StoreError> {
        if self.armed.get() && sql.starts_with("SELECT") && sql.contains("is_running = 1") {
            self.armed.set(false);
            self.inner
                .execute(
                    "UPDATE rooms SET is_running = 0, ended_at = 1 WHERE room_id = ?",
                    params,
                )
                .await?;
        }
        self.inner.execute(sql, params).await
    }
}

/// A create whose conflicting session ends before it is read creates a new one instead of
/// failing.
#[test]
fn a_create_racing_an_end_creates_a_new_session() {
    let store = EndsBeforeTheRead {
        inner: SqliteStore::in_memory().expect("sqlite"),
        armed: Cell::new(false),
    };
    let room = |sid| db::NewRoom {
        room_id: "racing",
        sid,
        room_title: "T",
        webhook_url: "",
        metadata: "{}",
        max_participants: 0,
        empty_timeout: 300,
        region_hint: None,
        created_at: 1,
    };
    let (first, created) = block(db::create_room(&store, &room("S1"))).expect("first");
    assert!(created);
    store.armed.set(true);
    let (second, created) = block(db::create_room(&store, &room("S2"))).expect("second");
    assert!(
        !store.armed.get(),
        "the session ended between insert and read"
    );
    assert!(created, "{second:?}");
    assert_eq!((first.sid.as_str(), second.sid.as_str()), ("S1", "S2"));
}

/// Metadata whose stored JSON is about `kib` KiB: within each text field's own limit.
fn bulky_metadata(kib: usize) -> Value {
    let text = |n: usize| "m".repeat(n * 1024);
    let quarter = kib / 4;
    json!({
        "room_title": text(quarter),
        "welcome_message": text(quarter),
        "extra_data": text(quarter),
        "room_features": {"waiting_room_features": {"waiting_room_msg": text(kib - 3 * quarter)}},
    })
}

/// A room's stored metadata is bounded in all, not only field by field, and one listing of
/// running rooms carries a bounded amount of it, saying which rooms it left out.
#[test]
fn room_metadata_and_the_listing_of_rooms_are_bounded() {
    let edge = edge();
    let (status, body) = post(
        &edge,
        "/auth/room/create",
        "plugnmeet",
        API_SECRET,
        &json!({"room_id": "too-big", "metadata": bulky_metadata(66)}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status_code"], json!("INVALID_PARAMETERS"), "{body}");
    assert!(block(db::running_room(&edge.store, "too-big"))
        .expect("store")
        .is_none());

    for i in 0..80 {
        created_room(
            &edge,
            &json!({"room_id": format!("bulky-{i}"), "metadata": bulky_metadata(60)}),
        );
    }
    let (status, body) = post(
        &edge,
        "/auth/room/getActiveRoomsInfo",
        "plugnmeet",
        API_SECRET,
        &json!({}),
    );
    assert_eq!(
        (status, &body["status"]),
        (200, &json!(true)),
        "{}",
        body["msg"]
    );
    let listed = body["rooms"].as_array().expect("rooms").len();
    assert!((60..80).contains(&listed), "listed {listed} of 80");
    assert_eq!(
        body["msg"],
        json!(format!("success; the first {listed} active rooms only"))
    );
    // The statement itself stops at the budget: what one listing reads passes it by one room's
    // metadata at most, however many rooms run.
    let budget = 4 * 1024 * 1024;
    let read = block(db::running_rooms(&edge.store, 501, budget)).expect("store");
    let bytes: usize = read.iter().map(|room| room.metadata.len()).sum();
    assert_eq!(read.len(), listed + 1, "read {bytes} bytes");
    assert!(bytes <= 4 * 1024 * 1024 + 64 * 1024, "read {bytes} bytes");
}

/// Users waiting in a session's waiting room, as stored.
fn waiting_rows(edge: &TestEdge) -> i64 {
    let rows = block(edge_api::platform::Store::execute(
        &edge.store,
        "SELECT COUNT(*) FROM waiting_users",
        &[],
    ))
    .expect("count");
    match rows.rows[0][0] {
        edge_api::platform::SqlValue::Integer(n) => n,
        ref other => panic!("count: {other:?}"),
    }
}

/// A session's waiting users go when it ends, and a wait noted after that (a request that
/// passed its checks just before the end) is not kept: nothing waits for an ended session.
#[test]
fn waits_never_outlive_their_session() {
    let edge = edge();
    let room = running_room(
        &edge,
        "lobby",
        "eu",
        json!({"waiting_room_features": {"is_active": true}}),
    );
    block(db::note_waiting(&edge.store, &room.sid, "u1", 100, 60)).expect("note");
    block(db::note_waiting(&edge.store, &room.sid, "u1", 103, 60)).expect("note again");
    assert_eq!(waiting_rows(&edge), 1);
    end_room(&edge, "lobby");
    assert_eq!(waiting_rows(&edge), 0);
    block(db::note_waiting(&edge.store, &room.sid, "u2", 104, 60)).expect("note");
    assert_eq!(waiting_rows(&edge), 0);
}

/// An encrypted room whose stored key cannot be read gives no session (a 500), never one
/// without the key, whose page would publish media anyone can read.
#[test]
fn an_encrypted_room_without_its_key_gives_no_session() {
    let edge = edge();
    let room = running_room(
        &edge,
        "vault",
        "eu",
        json!({"end_to_end_encryption_features": {"is_enabled": true}}),
    );
    let token = join_token(&edge, "vault", "u1");
    let (status, body) = session(&edge, &token);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["e2ee_key"].as_str().map(str::len), Some(32), "{body}");
    for broken in [
        "json_remove(metadata, '$.room_features.end_to_end_encryption_features.encryption_key')",
        "'{not json'",
    ] {
        block(edge_api::platform::Store::execute(
            &edge.store,
            &format!("UPDATE rooms SET metadata = {broken} WHERE sid = ?"),
            &[room.sid.as_str().into()],
        ))
        .expect("break the stored metadata");
        let (status, body) = session(&edge, &token);
        assert_eq!(status, 500, "{broken}: {body}");
        assert!(body.get("token").is_none(), "{body}");
    }
}

/// An encrypted room's key is forgotten when its session ends (every way a session ends
/// clears `is_running`, which the trigger watches); the rest of its metadata stays for the
/// past room.
#[test]
fn an_encrypted_room_forgets_its_key_when_it_ends() {
    let edge = edge();
    let stored_metadata = |sid: &str| -> Value {
        let rows = block(edge_api::platform::Store::execute(
            &edge.store,
            "SELECT metadata FROM rooms WHERE sid = ?",
            &[sid.into()],
        ))
        .expect("read");
        match &rows.rows[0][0] {
            edge_api::platform::SqlValue::Text(json) => serde_json::from_str(json).expect("json"),
            other => panic!("metadata: {other:?}"),
        }
    };
    let room = running_room(
        &edge,
        "vault",
        "eu",
        json!({"end_to_end_encryption_features": {"is_enabled": true}}),
    );
    let e2ee = "/room_features/end_to_end_encryption_features";
    let before = stored_metadata(&room.sid);
    assert!(
        before.pointer(&format!("{e2ee}/encryption_key")).is_some(),
        "{before}"
    );
    end_room(&edge, "vault");
    let after = stored_metadata(&room.sid);
    assert!(
        after.pointer(&format!("{e2ee}/encryption_key")).is_none(),
        "{after}"
    );
    assert_eq!(
        after.pointer(&format!("{e2ee}/is_enabled")),
        Some(&json!(true))
    );
    assert_eq!(after["room_title"], before["room_title"]);
}

/// An edge that sends every session's webhooks to `http://hooks.test/all`, and a room's own
/// `webhook_url` its sessions' too when `per_meeting`.
fn hooked_edge(per_meeting: bool) -> TestEdge {
    let mut edge = edge();
    edge.config.webhooks = CustomerWebhooks {
        url: "http://hooks.test/all".into(),
        per_meeting,
    };
    edge
}

/// The webhooks the receivers got, in order, as (URL, body); each checked to carry
/// plugNmeet's signature as its SDKs verify it: the same HS256 JWT in `Authorization` and
/// `Hash-Token`, under the API secret, issued by the API key, valid now, whose `sha256` is the
/// base64 SHA-256 of the body.
fn webhooks_received(edge: &TestEdge) -> Vec<(String, Value)> {
    use base64::Engine;
    use jwt_simple::prelude::{HS256Key, MACLike, VerificationOptions};
    use sha2::Digest;
    edge.http
        .hooks
        .borrow()
        .iter()
        .map(|request| {
            let header = |name: &str| {
                request
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            assert_eq!(header("content-type"), "application/json");
            let token = header("authorization");
            assert_eq!(token, header("hash-token"));
            // Verified as of when it was sent (its `nbf`): five minutes later it has expired.
            let metadata = jwt_simple::token::Token::decode_metadata(&token).expect("a JWT");
            assert_eq!(metadata.algorithm(), "HS256");
            let sent_at = {
                let options = VerificationOptions {
                    accept_future: true,
                    time_tolerance: Some(jwt_simple::prelude::Duration::from_days(3650)),
                    ..Default::default()
                };
                HS256Key::from_bytes(API_SECRET.as_bytes())
                    .verify_token::<edge_api::tokens::WebhookClaims>(&token, Some(options))
                    .expect("signed by the API secret")
                    .invalid_before
                    .expect("nbf")
            };
            assert!(sent_at.as_secs() <= u64::try_from(edge.clock.0.get() / 1000).unwrap());
            let options = VerificationOptions {
                artificial_time: Some(sent_at),
                allowed_issuers: Some(["plugnmeet".to_string()].into()),
                ..Default::default()
            };
            let claims = HS256Key::from_bytes(API_SECRET.as_bytes())
                .verify_token::<edge_api::tokens::WebhookClaims>(&token, Some(options))
                .expect("signed by the API secret, for the API key, valid when sent");
            let lifetime = claims.expires_at.expect("exp").as_secs() - sent_at.as_secs();
            assert_eq!(lifetime, 300, "valid five minutes");
            assert_eq!(
                claims.custom.sha256,
                base64::engine::general_purpose::STANDARD
                    .encode(sha2::Sha256::digest(&request.body))
            );
            (
                request.url.clone(),
                serde_json::from_slice(&request.body).expect("JSON body"),
            )
        })
        .collect()
}

/// The event names `url` received, in order.
fn event_names(received: &[(String, Value)], url: &str) -> Vec<String> {
    received
        .iter()
        .filter(|(u, _)| u == url)
        .map(|(_, body)| body["event"].as_str().expect("event").to_string())
        .collect()
}

/// Events waiting in the outbox.
fn queued_webhooks(edge: &TestEdge) -> i64 {
    count(edge, "SELECT COUNT(*) FROM webhook_outbox WHERE ? = ?1", "")
}

#[test]
fn the_customer_hears_of_a_meeting_in_order_on_each_url() {
    let edge = hooked_edge(true);
    let create = json!({"room_id": "r1", "metadata": {"room_title": "Weekly",
                        "webhook_url": "http://hooks.test/room"}});
    let room = created_room(&edge, &create);
    // A repeated create is the same session: its room_created is not queued again.
    created_room(&edge, &create);
    block(db::pin_region(&edge.store, &room.sid, "eu")).expect("pin");
    assert!(
        edge.http.hooks.borrow().is_empty(),
        "nothing is sent before a heartbeat"
    );
    assert_eq!(tick(&edge, 1).0, 200);
    assert_eq!(webhooks_received(&edge).len(), 2);

    let name = lk(&edge, "r1");
    let (status, body) = events(
        &edge,
        "eu",
        vec![
            event("EV_1", "room_started", &name, "RM_1", None),
            presence("EV_2", "participant_joined", &name, "PA_1", "alice"),
            presence("EV_3", "participant_joined", &name, "PA_2", "bob"),
            presence("EV_4", "participant_left", &name, "PA_2", "bob"),
        ],
    );
    assert_eq!((status, &body["applied"]), (200, &json!(4)), "{body}");
    // Eight events wait (four for each URL): one heartbeat sends them all.
    assert_eq!(queued_webhooks(&edge), 8);
    tick(&edge, 1);
    assert_eq!(queued_webhooks(&edge), 0);
    end_room(&edge, "r1");
    tick(&edge, 0);

    let received = webhooks_received(&edge);
    let expected = [
        "room_created",
        "room_started",
        "participant_joined",
        "participant_joined",
        "participant_left",
        "participant_left",
        "room_finished",
        "session_ended",
        "artifact_created",
        "analytics_proceeded",
    ];
    for url in ["http://hooks.test/all", "http://hooks.test/room"] {
        assert_eq!(event_names(&received, url), expected, "{url}");
    }
    let for_all: Vec<&Value> = received
        .iter()
        .filter(|(u, _)| u == "http://hooks.test/all")
        .map(|(_, b)| b)
        .collect();
    for body in &for_all {
        assert_eq!(body["room"]["sid"], json!(room.sid), "{body}");
        assert_eq!(body["room"]["room_id"], "r1", "{body}");
        assert_eq!(
            body["room"]["creation_time"],
            json!(room.created_at.to_string())
        );
        let metadata: Value =
            serde_json::from_str(body["room"]["metadata"].as_str().expect("metadata"))
                .expect("the room's metadata, as JSON");
        assert_eq!(metadata["room_title"], "Weekly");
        assert!(
            body["created_at"].as_str().is_some(),
            "int64 as a string: {body}"
        );
        assert!(uuid_like(body["id"].as_str().expect("id")), "{body}");
    }
    // Who came and went, and how many were in the room then.
    let people: Vec<(String, String, i64)> = for_all
        .iter()
        .filter(|b| b.get("participant").is_some())
        .map(|b| {
            (
                b["event"].as_str().unwrap_or("").to_string(),
                b["participant"]["identity"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                b["room"]["num_participants"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    let expected_people = [
        ("participant_joined", "alice", 1),
        ("participant_joined", "bob", 2),
        ("participant_left", "bob", 1),
        ("participant_left", "alice", 0),
    ];
    assert_eq!(
        people,
        expected_people
            .iter()
            .map(|(e, who, n)| (e.to_string(), who.to_string(), *n))
            .collect::<Vec<_>>()
    );
    let file_id = format!("{}-analytics", room.sid);
    let artifact = &for_all[8]["room_artifact"];
    assert_eq!(artifact["type"], "MEETING_ANALYTICS", "{}", for_all[8]);
    assert_eq!(artifact["artifact_id"], json!(file_id));
    let file_info = &artifact["metadata"]["file_info"];
    assert_eq!(
        file_info["file_path"],
        json!(format!("meeting_analytics/r1/{file_id}.json"))
    );
    assert_eq!(file_info["mime_type"], "application/json");
    let stored = rows_for(&edge, "session_analytics", &room.sid);
    assert_eq!(stored, 1);
    assert!(
        file_info["file_size"]
            .as_str()
            .is_some_and(|n| n.parse::<i64>().is_ok_and(|n| n > 0)),
        "int64 as a string: {file_info}"
    );
    assert!(for_all[8].get("analytics").is_none(), "{}", for_all[8]);
    assert_eq!(
        for_all[9]["analytics"]["file_id"],
        json!(file_id),
        "the session's analytics file"
    );
    assert!(for_all[9].get("room_artifact").is_none(), "{}", for_all[9]);
    assert_eq!(for_all[2]["participant"]["state"], "ACTIVE");
    assert_eq!(for_all[4]["participant"]["state"], "DISCONNECTED");
    // Each event has an id of its own, and the same one on both URLs (plugNmeet gives one
    // event one id).
    let ids_for = |url: &str| -> Vec<String> {
        received
            .iter()
            .filter(|(u, _)| u == url)
            .filter_map(|(_, b)| b["id"].as_str().map(str::to_owned))
            .collect()
    };
    let all = ids_for("http://hooks.test/all");
    assert_eq!(all, ids_for("http://hooks.test/room"));
    let mut distinct = all.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), all.len(), "every event has its own id");
}

fn uuid_like(id: &str) -> bool {
    let parts: Vec<usize> = id.split('-').map(str::len).collect();
    parts == [8, 4, 4, 4, 12] && id.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

#[test]
fn a_failing_receiver_gets_each_event_again_in_order_until_it_is_given_up() {
    // Without per-meeting URLs, a room's own webhook_url gets nothing.
    let edge = hooked_edge(false);
    let room = created_room(
        &edge,
        &json!({"room_id": "r1", "empty_timeout": 7200, "metadata": {"room_title": "T",
                "webhook_url": "http://hooks.test/room"}}),
    );
    block(db::pin_region(&edge.store, &room.sid, "eu")).expect("pin");
    edge.http.hook_status.set(Some(500));
    tick(&edge, 1);
    let name = lk(&edge, "r1");
    events(
        &edge,
        "eu",
        vec![event("EV_1", "room_started", &name, "RM_1", None)],
    );
    // Not due yet (the first retry waits 5 s), and room_started waits behind it.
    tick(&edge, 1);
    assert_eq!(
        event_names(&webhooks_received(&edge), "http://hooks.test/all"),
        ["room_created"]
    );
    edge.clock.0.set(edge.clock.0.get() + 5_000);
    tick(&edge, 1);
    edge.http.hook_status.set(None);
    edge.clock.0.set(edge.clock.0.get() + 30_000);
    tick(&edge, 1);
    let received = webhooks_received(&edge);
    assert_eq!(
        event_names(&received, "http://hooks.test/all"),
        [
            "room_created",
            "room_created",
            "room_created",
            "room_started"
        ]
    );
    assert!(event_names(&received, "http://hooks.test/room").is_empty());
    // Every attempt at one event carries the same id.
    assert_eq!(received[0].1["id"], received[2].1["id"]);
    assert_ne!(received[2].1["id"], received[3].1["id"]);

    // A receiver that keeps failing: the event is given up after its last attempt, and the
    // events queued behind it with it (as stale); what happens later goes.
    edge.http.hook_status.set(Some(503));
    events(
        &edge,
        "eu",
        vec![
            presence("EV_2", "participant_joined", &name, "PA_1", "alice"),
            presence("EV_3", "participant_left", &name, "PA_1", "alice"),
        ],
    );
    let before = edge.http.hooks.borrow().len();
    tick(&edge, 1);
    for wait in edge_api::webhooks::RETRY_AFTER_SECS {
        edge.clock.0.set(edge.clock.0.get() + wait * 1000);
        tick(&edge, 1);
    }
    let attempts = edge.http.hooks.borrow().len() - before;
    assert_eq!(
        attempts,
        usize::try_from(edge_api::webhooks::MAX_ATTEMPTS).unwrap()
    );
    assert_eq!(queued_webhooks(&edge), 0, "participant_left went with it");
    edge.http.hook_status.set(None);
    events(
        &edge,
        "eu",
        vec![presence("EV_4", "participant_joined", &name, "PA_2", "bob")],
    );
    tick(&edge, 1);
    let received = webhooks_received(&edge);
    let names = event_names(&received, "http://hooks.test/all");
    let mut expected = vec!["room_created"; 3];
    expected.push("room_started");
    expected.extend(["participant_joined"; 7]);
    assert_eq!(names, expected);
    let last = &received.last().expect("one").1;
    assert_eq!(last["participant"]["identity"], "bob", "{last}");
    assert_eq!(queued_webhooks(&edge), 0);
}

#[test]
fn slow_receivers_hold_a_heartbeat_for_a_few_seconds_and_what_went_is_kept() {
    let edge = hooked_edge(false);
    for room_id in ["a", "b", "c", "d", "e"] {
        titled_room(&edge, room_id);
    }
    // Each answer takes 1.5 s: sends start while the window is open, the rest wait.
    edge.http.hook_delay_ms.set(1_500);
    let started = edge.clock.0.get() + 1_000;
    tick(&edge, 0);
    let sent = edge.http.hooks.borrow().len();
    let window = edge_api::webhooks::SEND_WINDOW_MS;
    assert_eq!(
        i64::try_from(sent).unwrap(),
        window / 1_500 + 1,
        "sends start until the window closes"
    );
    assert!(edge.clock.0.get() - started < window + 3_000);
    assert_eq!(
        queued_webhooks(&edge),
        5 - i64::try_from(sent).unwrap(),
        "what went is forgotten"
    );
    // Not answering at all: each send fails at the timeout, and its room's event waits.
    edge.http.hook_delay_ms.set(10_000);
    tick(&edge, 0);
    assert_eq!(queued_webhooks(&edge), 5 - i64::try_from(sent).unwrap());
    edge.http.hook_delay_ms.set(0);
    edge.clock.0.set(edge.clock.0.get() + 5_000);
    tick(&edge, 0);
    let mut rooms: Vec<String> = webhooks_received(&edge)
        .iter()
        .filter_map(|(_, body)| body["room"]["room_id"].as_str().map(String::from))
        .collect();
    rooms.sort_unstable();
    rooms.dedup();
    assert_eq!(rooms, ["a", "b", "c", "d", "e"]);
    assert_eq!(queued_webhooks(&edge), 0);
}

/// A receiver that refuses an event (a 4xx but 408 and 429) is not sent it again, and the
/// room's later events go; as plugNmeet's sender takes such an answer.
#[test]
fn a_refused_event_is_not_sent_again() {
    let edge = hooked_edge(false);
    let room = titled_room(&edge, "r1");
    block(db::pin_region(&edge.store, &room.sid, "eu")).expect("pin");
    edge.http.hook_status.set(Some(404));
    tick(&edge, 1);
    assert_eq!(queued_webhooks(&edge), 0);
    edge.http.hook_status.set(Some(429));
    let name = lk(&edge, "r1");
    events(
        &edge,
        "eu",
        vec![event("EV_1", "room_started", &name, "RM_1", None)],
    );
    tick(&edge, 1);
    assert_eq!(
        queued_webhooks(&edge),
        1,
        "429 is a failure: it is tried again"
    );
    edge.http.hook_status.set(None);
    edge.clock.0.set(edge.clock.0.get() + 5_000);
    tick(&edge, 1);
    assert_eq!(
        event_names(&webhooks_received(&edge), "http://hooks.test/all"),
        ["room_created", "room_started", "room_started"]
    );
    assert_eq!(queued_webhooks(&edge), 0);
}

#[test]
fn without_webhook_urls_nothing_is_queued() {
    let edge = edge();
    let room = running_room(&edge, "r1", "eu", json!({}));
    let name = lk(&edge, "r1");
    events(
        &edge,
        "eu",
        vec![
            event("EV_1", "room_started", &name, "RM_1", None),
            presence("EV_2", "participant_joined", &name, "PA_1", "alice"),
        ],
    );
    end_room(&edge, "r1");
    tick(&edge, 0);
    assert_eq!(rows_for(&edge, "room_webhook_urls", &room.sid), 0);
    assert_eq!(queued_webhooks(&edge), 0);
    assert!(edge.http.hooks.borrow().is_empty());
}

/// eu's next heartbeat, a second after the last (a heartbeat no newer than the kept one does
/// no due work), with `rooms` rooms in LiveKit.
fn tick(edge: &TestEdge, rooms: i64) -> (u16, Value) {
    edge.clock.0.set(edge.clock.0.get() + 1_000);
    let (status, body) = beat(edge, "eu", false, rooms);
    assert_eq!((status, &body["recorded"]), (200, &json!(true)), "{body}");
    (status, body)
}

/// LiveKit's event `id` of `kind` (participant_joined or participant_left) about visible
/// participant `who` (sid `participant_sid`) in LiveKit room `room` (sid RM_1).
fn presence(id: &str, kind: &str, room: &str, participant_sid: &str, who: &str) -> Value {
    event(
        id,
        kind,
        room,
        "RM_1",
        Some(participant(participant_sid, who, false)),
    )
}

/// With webhooks, LiveKit's track events are passed on (once, a re-sent batch changes
/// nothing), their `TrackInfo` in plugNmeet's snake_case; without webhooks or analytics, they
/// change nothing.
#[test]
fn track_events_are_passed_on_once_with_webhooks_only() {
    let track = |id: &str, kind: &str, name: &str| {
        let mut e = presence(id, "participant_joined", name, "PA_1", "alice");
        e["event"] = json!(kind);
        e["track"] = json!({"sid": "TR_1", "type": "AUDIO", "source": "MICROPHONE",
                            "mimeType": "audio/opus", "disableDtx": false});
        e
    };
    for hooked in [true, false] {
        let edge = if hooked { hooked_edge(false) } else { edge() };
        // Without analytics: the analytics file does not note them either.
        running_room(&edge, "r1", "eu", json!({"enable_analytics": false}));
        let name = lk(&edge, "r1");
        let batch = vec![
            event("EV_1", "room_started", &name, "RM_1", None),
            presence("EV_2", "participant_joined", &name, "PA_1", "alice"),
            track("EV_3", "track_published", &name),
            track("EV_4", "track_unpublished", &name),
        ];
        let (_, first) = events(&edge, "eu", batch.clone());
        let (_, again) = events(&edge, "eu", batch);
        if !hooked {
            assert_eq!(
                (&first["applied"], &first["ignored"]),
                (&json!(2), &json!(2))
            );
            assert_eq!(queued_webhooks(&edge), 0);
            continue;
        }
        assert_eq!(first["applied"], 4, "{first}");
        assert_eq!(again["duplicates"], 4, "{again}");
        tick(&edge, 1);
        let received = webhooks_received(&edge);
        let names = event_names(&received, "http://hooks.test/all");
        assert_eq!(
            names,
            [
                "room_created",
                "room_started",
                "participant_joined",
                "track_published",
                "track_unpublished"
            ]
        );
        let published = &received[3].1;
        assert_eq!(published["track"]["mime_type"], "audio/opus", "{published}");
        assert_eq!(published["track"]["source"], "MICROPHONE", "{published}");
        assert_eq!(published["participant"]["identity"], "alice", "{published}");
        assert_eq!(
            published["participant"]["joined_at"], received[2].1["participant"]["joined_at"],
            "{published}"
        );
        assert_ne!(published["participant"]["joined_at"], "0", "{published}");
        assert_eq!(published["room"]["num_participants"], 1, "{published}");
    }
}

/// A region that had a sidecar and now has its LiveKit post webhooks straight to the edge keeps
/// the status its sidecar last reported (here: drained and left). Beside regions with sidecars,
/// that status neither closes it to new rooms nor ends the sessions running there; without a
/// sidecar or webhooks of its own, a region takes no rooms at all.
#[test]
fn a_region_switched_to_direct_webhooks_is_not_held_to_its_sidecars_last_word() {
    let mut edge = edge();
    edge.config.regions.push(region("cl", 50.2, 8.8));
    edge.config
        .sidecar_secrets
        .insert("cl".into(), "sidecar-cl-0123456789abcdef0123456789".into());
    let sidecar_cl = |edge: &TestEdge, left: bool| {
        let mut body = heartbeat_body("cl", edge.clock.0.get(), left, 0);
        body["leaving"] = json!(left);
        post(
            edge,
            "/internal/sidecar/heartbeat",
            "cl",
            "sidecar-cl-0123456789abcdef0123456789",
            &body,
        )
    };
    assert_eq!(sidecar_cl(&edge, false).0, 200);
    let kept = running_room(&edge, "kept", "cl", json!({}));
    let pinned = |room_id: &str| {
        block(db::running_room(&edge.store, room_id))
            .unwrap()
            .and_then(|r| r.region)
    };
    assert_eq!(pinned("kept").as_deref(), Some("cl"));
    edge.clock.0.set(edge.clock.0.get() + 1_000);
    assert_eq!(sidecar_cl(&edge, true).0, 200);
    // Now cl reports directly: its sidecar secret goes, its webhooks come straight.
    edge.config.sidecar_secrets.remove("cl");
    edge.config
        .regions
        .iter_mut()
        .find(|r| r.id == "cl")
        .unwrap()
        .direct_webhooks = true;
    // Long past every timeout (and with no new join there yet), eu's heartbeats do not end the
    // session running in cl.
    edge.clock.0.set(edge.clock.0.get() + 3_600_000);
    beat(&edge, "eu", false, 0);
    assert_eq!(pinned("kept").as_deref(), Some("cl"));
    assert_eq!(kept.room_id, "kept");
    // A join from next to cl is placed there (eu, a little further, heartbeats too).
    edge.clock.0.set(edge.clock.0.get() + 1_000);
    beat(&edge, "eu", false, 0);
    let room = titled_room(&edge, "near-cl");
    let token = join_token(&edge, "near-cl", "u1");
    let mut request = EdgeRequest::new(Method::POST, "/api/session");
    request
        .headers
        .insert("authorization", token.parse().expect("header"));
    request.headers.insert("x-lat", "50.2".parse().unwrap());
    request.headers.insert("x-lon", "8.8".parse().unwrap());
    let (status, body) = reply(block(edge.handle(request)));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["region"]["id"], "cl", "{body}");
    assert_eq!(
        block(db::running_room(&edge.store, "near-cl"))
            .unwrap()
            .unwrap()
            .sid,
        room.sid
    );
    // Neither a sidecar nor webhooks of its own: never heard, never chosen.
    edge.config
        .regions
        .iter_mut()
        .find(|r| r.id == "cl")
        .unwrap()
        .direct_webhooks = false;
    let registry = block(registry::load(&edge)).unwrap();
    assert_eq!(registry.availability("cl"), registry::Availability::Unknown);
}

/// A region whose LiveKit posts its webhooks straight to the edge has no heartbeat to end its
/// sessions by the edge's own limits: each new `room/create` does it instead. Its session
/// nobody entered ends once its `empty_timeout` has passed; one whose LiveKit room started
/// (a signed `room_started` posted to `/webhook/cl`) ends once its `room_duration` is over, and
/// its LiveKit room is deleted; one still within both goes on.
#[test]
fn a_direct_regions_limits_are_kept_on_room_creates() {
    let mut edge = edge();
    let mut cl = region("cl", 50.2, 8.8);
    cl.api_key = "lk-cl".into();
    cl.direct_webhooks = true;
    edge.config.regions.push(cl);
    // Nobody entered: empty_timeout is 120 s.
    let idle = created_room(
        &edge,
        &json!({"room_id": "idle", "empty_timeout": 120, "metadata": {"room_title": "T"}}),
    );
    block(db::pin_region(&edge.store, &idle.sid, "cl")).expect("pin");
    // Started, with a two-minute room_duration.
    let timed = running_room(&edge, "timed-cl", "cl", json!({"room_duration": 2}));
    let lasting = running_room(&edge, "lasting-cl", "cl", json!({"room_duration": 10}));
    for (n, room) in [(1, &timed), (2, &lasting)] {
        let body = serde_json::to_vec(&json!({"id": format!("EV_CL{n}"), "event": "room_started",
            "createdAt": (T0 / 1000).to_string(),
            "room": {"sid": format!("RM_CL{n}"), "name": room.livekit_room}}))
        .unwrap();
        let token = edge_api::tokens::mint_webhook_signature(
            "lk-cl",
            "livekit-secret-0123456789abcdef01234",
            &body,
            u64::try_from(T0 / 1000).unwrap(),
            300,
        )
        .unwrap();
        let mut request = EdgeRequest::new(Method::POST, "/webhook/cl");
        request
            .headers
            .insert("authorization", token.parse().expect("header"));
        request.body = body;
        assert_eq!(block(edge.handle(request)).status, 200);
    }
    let running = |room_id: &str| {
        block(db::running_room(&edge.store, room_id))
            .unwrap()
            .is_some()
    };
    // A create before any limit passed ends nothing.
    titled_room(&edge, "early");
    assert!(running("idle") && running("timed-cl") && running("lasting-cl"));
    // Three minutes on: past idle's empty_timeout and timed's room_duration.
    edge.clock.0.set(T0 + 180_000);
    titled_room(&edge, "later");
    assert!(!running("idle"), "nobody entered within empty_timeout");
    assert!(!running("timed-cl"), "room_duration is over");
    assert!(running("lasting-cl") && running("later") && running("early"));
    let deleted: Vec<Value> = edge
        .http
        .calls
        .borrow()
        .iter()
        .filter(|(url, _)| url.ends_with("/DeleteRoom"))
        .map(|(_, body)| body["room"].clone())
        .collect();
    assert_eq!(
        deleted,
        vec![json!(timed.livekit_room)],
        "idle never had a LiveKit room"
    );
}

/// Without sidecars there is no heartbeat at all: a session nobody ever entered (unplaced) ends
/// on a later `room/create` once its `empty_timeout` has passed, as LiveKit closes a room nobody
/// joins; one placed in a region the edge does not hear is left alone (it cannot tell whether
/// anyone is in it).
#[test]
fn without_sidecars_an_unentered_session_ends_on_a_later_create() {
    let mut edge = edge();
    edge.config.sidecar_secrets.clear();
    let create = |room_id: &str| {
        created_room(
            &edge,
            &json!({"room_id": room_id, "empty_timeout": 120, "metadata": {"room_title": "T"}}),
        )
    };
    create("unentered");
    let placed = create("placed");
    block(db::pin_region(&edge.store, &placed.sid, "eu")).expect("pin");
    edge.clock.0.set(T0 + 121_000);
    create("next");
    let running = |room_id: &str| {
        block(db::running_room(&edge.store, room_id))
            .unwrap()
            .is_some()
    };
    assert!(!running("unentered"));
    assert!(running("placed") && running("next"));
}

/// `POST path` on the page's API with `token` in `Authorization`.
fn page_call(edge: &TestEdge, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let mut request = EdgeRequest::new(Method::POST, path);
    request
        .headers
        .insert("authorization", token.parse().expect("header"));
    request.body = serde_json::to_vec(body).expect("json");
    reply(block(edge.handle(request)))
}

/// The sources a session answer lets its user publish.
fn publishes(edge: &TestEdge, token: &str) -> Value {
    let (status, body) = session(edge, token);
    assert_eq!(status, 200, "{body}");
    body["publish_sources"].clone()
}

/// A moderator's locks bind the user's LiveKit tokens from then on, a later join token from the
/// backend included; "all" binds everyone but moderators, and users who come later; an unlock
/// lifts only its own lock; bad requests and targets are refused and change nothing.
#[test]
fn a_moderators_locks_bind_every_later_token() {
    let edge = edge();
    beat(&edge, "eu", false, 0);
    titled_room(&edge, "locked");
    let chair = join_token_as(
        &edge,
        "locked",
        json!({"user_id": "chair", "name": "Chair", "is_admin": true}),
    );
    let alice = join_token(&edge, "locked", "alice");
    // The room allows screen sharing to moderators only (plugNmeet's default).
    let all = json!(["camera", "microphone"]);
    let everything = json!(["camera", "microphone", "screen_share", "screen_share_audio"]);
    assert_eq!(publishes(&edge, &chair), everything);
    assert_eq!(publishes(&edge, &alice), all);
    let lock = |who: &str, service: &str, direction: &str| {
        page_call(
            &edge,
            "/api/updateLockSettings",
            &chair,
            &json!({"user_id": who, "service": service, "direction": direction}),
        )
    };

    let (status, body) = lock("alice", "mic", "lock");
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    assert_eq!(publishes(&edge, &alice), json!(["camera"]));
    // A later join token (the backend's, with no locks of its own) keeps the moderator's lock.
    let alice = join_token(&edge, "locked", "alice");
    assert_eq!(publishes(&edge, &alice), json!(["camera"]));

    // Everyone's cameras: Alice, and Bob who comes later; not the moderator.
    let (status, body) = lock("all", "webcam", "lock");
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    let bob = join_token(&edge, "locked", "bob");
    assert_eq!(publishes(&edge, &alice), json!([]));
    assert_eq!(publishes(&edge, &bob), json!(["microphone"]));
    assert_eq!(publishes(&edge, &chair), everything);
    let (_, moderator) = session(&edge, &chair);
    // With plugNmeet's default locks (screen sharing, whiteboard, shared notepad).
    assert_eq!(
        moderator["room_locks"],
        json!({"lock_webcam": true, "lock_screen_sharing": true, "lock_whiteboard": true,
               "lock_shared_notepad": true}),
        "{moderator}"
    );
    let (_, guest) = session(&edge, &bob);
    assert!(guest.get("room_locks").is_none(), "{guest}");

    // Alice's microphone back; her camera stays locked.
    let (_, body) = lock("alice", "mic", "unlock");
    assert_eq!(body["status"], json!(true), "{body}");
    assert_eq!(publishes(&edge, &alice), json!(["microphone"]));
    // The chat lock takes LiveKit's data, which the chat is carried on; others keep it.
    let (_, before) = session(&edge, &alice);
    assert_eq!(
        (&before["chat"], &before["may_chat"]),
        (&json!(true), &json!(true))
    );
    let (_, body) = lock("alice", "chat", "lock");
    assert_eq!(body["status"], json!(true), "{body}");
    let (_, after) = session(&edge, &alice);
    assert_eq!(after["may_chat"], json!(false), "{after}");
    assert_eq!(livekit_grant(&after)["canPublishData"], json!(false));
    let (_, other) = session(&edge, &bob);
    assert_eq!(livekit_grant(&other)["canPublishData"], json!(true));
    let sid = block(db::running_room(&edge.store, "locked"))
        .expect("store")
        .expect("running")
        .sid;
    let stored = block(db::room_user(&edge.store, &sid, "alice"))
        .expect("store")
        .expect("alice");
    let metadata: Value = serde_json::from_str(&stored.metadata).expect("json");
    let locks = &metadata["lock_settings"];
    assert_eq!(
        (
            &locks["lock_microphone"],
            &locks["lock_webcam"],
            &locks["lock_chat"],
            &locks["lock_screen_sharing"]
        ),
        (&json!(false), &json!(true), &json!(true), &json!(true)),
        "{metadata}"
    );

    // Refused, changing nothing.
    let refusals = [
        (
            lock("chair", "mic", "lock"),
            "notifications.cannot-lock-admin",
        ),
        (
            lock("nobody", "mic", "lock"),
            "notifications.user-not-found",
        ),
        (lock("alice", "telepathy", "lock"), "service: one of mic"),
        (lock("alice", "mic", "LOCK"), "direction: lock or unlock"),
        (lock("alice", "mic", ""), "direction: lock or unlock"),
        (lock("", "mic", "lock"), "user_id: required"),
        (lock("a'b", "mic", "lock"), "user_id should only contain"),
    ];
    for ((status, body), msg) in refusals {
        assert_eq!((status, &body["status"]), (200, &json!(false)), "{body}");
        assert!(
            body["msg"].as_str().is_some_and(|m| m.starts_with(msg)),
            "{msg}: {body}"
        );
    }
    let another_chair = join_token_as(
        &edge,
        "locked",
        json!({"user_id": "chair-2", "name": "Chair 2", "is_admin": true}),
    );
    assert_eq!(
        lock("chair-2", "webcam", "lock").1["msg"],
        "notifications.cannot-lock-admin"
    );
    assert_eq!(publishes(&edge, &another_chair), everything);
    let (status, body) = page_call(
        &edge,
        "/api/updateLockSettings",
        &bob,
        &json!({"user_id": "alice", "service": "mic", "direction": "lock"}),
    );
    assert_eq!((status, &body["status"]), (403, &json!(false)), "{body}");
    assert_eq!(publishes(&edge, &alice), json!(["microphone"]));
}

/// A locked user who joins LiveKit with a LiveKit token minted before the lock is given the
/// narrower permission as soon as the sidecar reports the join; a join with the right
/// permission, or of anyone not locked, costs no LiveKit call.
#[test]
fn a_locked_user_back_with_an_old_livekit_token_is_locked_again() {
    let edge = edge();
    let room = running_room(&edge, "hall", "eu", json!({}));
    join_token_as(
        &edge,
        "hall",
        json!({"user_id": "chair", "name": "Chair", "is_admin": true}),
    );
    join_token(&edge, "hall", "alice");
    join_token(&edge, "hall", "bob");
    let locked = block(db::locks::lock_user(
        &edge.store,
        &room.sid,
        "alice",
        db::locks::Lock {
            field: "lock_microphone",
            locked: true,
        },
    ))
    .expect("lock");
    assert_eq!(locked, db::locks::Locked::Set);
    let name = lk(&edge, "hall");
    let joined = |id: &str, sid: &str, who: &str, permission: Value| {
        let mut e = presence(id, "participant_joined", &name, sid, who);
        e["participant"]["permission"] = permission;
        e
    };
    let (status, body) = events(
        &edge,
        "eu",
        vec![
            event("EV_1", "room_started", &name, "RM_1", None),
            // Alice's earlier token: anything.
            joined("EV_2", "PA_1", "alice", json!({"canPublish": true})),
            joined("EV_3", "PA_2", "bob", json!({"canPublish": true})),
        ],
    );
    assert_eq!((status, &body["applied"]), (200, &json!(3)), "{body}");
    let calls = edge.http.calls.borrow().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].0,
        "http://eu.livekit.test/twirp/livekit.RoomService/UpdateParticipant"
    );
    assert_eq!(calls[0].1["identity"], "alice");
    assert_eq!(
        calls[0].1["permission"],
        json!({"can_subscribe": true, "can_publish": true, "can_publish_data": true,
               "can_publish_sources": ["CAMERA"],
               "hidden": false})
    );
    let metadata: Value =
        serde_json::from_str(calls[0].1["metadata"].as_str().expect("metadata")).expect("json");
    assert_eq!(metadata["lock_settings"]["lock_microphone"], true);

    // Back with a token minted after the lock: already right, nothing to do.
    let (status, _) = events(
        &edge,
        "eu",
        vec![
            presence("EV_4", "participant_left", &name, "PA_1", "alice"),
            joined(
                "EV_5",
                "PA_3",
                "alice",
                json!({"canPublish": true, "canPublishSources": ["CAMERA"],
                       "canPublishData": true}),
            ),
        ],
    );
    assert_eq!(status, 200);
    assert_eq!(edge.http.calls.borrow().len(), 1);

    // Back once more with the earlier token while LiveKit is down: the join is recorded and a
    // lock check queued; each heartbeat tries again until LiveKit takes it, then none is left.
    let updates = || {
        edge.http
            .calls
            .borrow()
            .iter()
            .filter(|(url, _)| url.ends_with("/UpdateParticipant"))
            .count()
    };
    edge.http.down.set(true);
    let (status, body) = events(
        &edge,
        "eu",
        vec![
            presence("EV_6", "participant_left", &name, "PA_3", "alice"),
            joined("EV_7", "PA_4", "alice", json!({"canPublish": true})),
        ],
    );
    assert_eq!((status, &body["applied"]), (200, &json!(2)), "{body}");
    assert_eq!(updates(), 2);
    let next_beat = || {
        edge.clock.0.set(edge.clock.0.get() + 5_000);
        assert_eq!(beat(&edge, "eu", false, 1).1["recorded"], true);
    };
    next_beat();
    assert_eq!(updates(), 3, "tried again while LiveKit is down");
    edge.http.down.set(false);
    next_beat();
    assert_eq!(updates(), 4, "given once LiveKit answers");
    next_beat();
    assert_eq!(updates(), 4, "the check is done");
    assert!(edge
        .http
        .calls
        .borrow()
        .iter()
        .all(|(_, b)| b["identity"] != "bob"));
}

/// A lock for everyone binds a user whose join token was issued after it, and one whose row
/// the lock found; the backend's own lock for a user (`false` included) stands over the room's.
#[test]
fn a_lock_for_everyone_binds_later_users_unless_the_backend_says_otherwise() {
    let edge = edge();
    let room = running_room(&edge, "assembly", "eu", json!({}));
    join_token_as(
        &edge,
        "assembly",
        json!({"user_id": "chair", "name": "Chair", "is_admin": true}),
    );
    join_token(&edge, "assembly", "early");
    assert!(block(db::locks::lock_everyone(
        &edge.store,
        &room.sid,
        "chair",
        db::locks::Lock {
            field: "lock_microphone",
            locked: true,
        },
    ))
    .expect("lock"));
    join_token(&edge, "assembly", "late");
    join_token_as(
        &edge,
        "assembly",
        json!({"user_id": "speaker", "name": "Speaker",
               "user_metadata": {"lock_settings": {"lock_microphone": false}}}),
    );
    let lock_of = |user: &str| {
        let stored = block(db::room_user(&edge.store, &room.sid, user))
            .expect("store")
            .expect("user");
        let metadata: Value = serde_json::from_str(&stored.metadata).expect("json");
        metadata["lock_settings"]["lock_microphone"].clone()
    };
    assert_eq!(lock_of("early"), json!(true));
    assert_eq!(lock_of("late"), json!(true));
    assert_eq!(lock_of("speaker"), json!(false));
    assert_eq!(lock_of("chair"), Value::Null);
    // Everyone has it: locking again changes nobody's metadata (so no LiveKit update follows).
    let before = block(db::room_user(&edge.store, &room.sid, "early"))
        .expect("store")
        .expect("user")
        .metadata;
    assert!(block(db::locks::lock_everyone(
        &edge.store,
        &room.sid,
        "chair",
        db::locks::Lock {
            field: "lock_microphone",
            locked: true,
        },
    ))
    .expect("lock"));
    let after = block(db::room_user(&edge.store, &room.sid, "early"))
        .expect("store")
        .expect("user")
        .metadata;
    assert_eq!(before, after);
}

/// Puts recording `record_id` of session `room` in the catalog, as a recorder's report does.
fn stored_recording(edge: &TestEdge, room: &db::RoomRow, record_id: &str) {
    block(edge_api::platform::Store::execute(
        &edge.store,
        "INSERT INTO recordings (record_id, room_id, room_sid, recorder_id, file_path, \
         file_bytes, created_at, room_created_at) VALUES (?1, ?2, ?3, 'node', '/r/x.mp4', 1000, 1, 1)",
        &[
            record_id.into(),
            room.room_id.as_str().into(),
            room.sid.as_str().into(),
        ],
    ))
    .expect("recording");
}

/// The claims of a recording-ready callback: a form with one field, `signed_parameters`, an
/// HS256 JWT under the API secret, valid now.
fn recording_ready_claims(
    edge: &TestEdge,
    callback: &OutboundRequest,
) -> edge_api::tokens::RecordingReadyClaims {
    use jwt_simple::prelude::{HS256Key, MACLike};
    let form: Vec<(String, String)> = form_urlencoded::parse(&callback.body)
        .into_owned()
        .collect();
    assert_eq!(form.len(), 1, "{form:?}");
    assert_eq!(form[0].0, "signed_parameters");
    let options = jwt_simple::prelude::VerificationOptions {
        artificial_time: Some(jwt_simple::prelude::UnixTimeStamp::from_millis(
            u64::try_from(edge.clock.0.get()).expect("ms"),
        )),
        ..Default::default()
    };
    HS256Key::from_bytes(API_SECRET.as_bytes())
        .verify_token::<edge_api::tokens::RecordingReadyClaims>(&form[0].1, Some(options))
        .expect("signed with the API secret, valid now")
        .custom
}

/// BBB's API `call` with `query`, checksummed (SHA-1) with the API secret; the answer's body.
fn bbb(edge: &TestEdge, call: &str, query: &str) -> String {
    let sum = hex::encode(hmac_sha1_compact::Hash::hash(
        format!("{call}{query}{API_SECRET}").as_bytes(),
    ));
    let request = EdgeRequest::new(
        Method::GET,
        &format!("/plugnmeet/bigbluebutton/api/{call}?{query}&checksum={sum}"),
    );
    let response = block(edge.handle(request));
    assert_eq!(response.status, 200);
    String::from_utf8(response.body).expect("XML")
}

/// The text of XML element `name` in `xml` (the first one).
fn xml_text<'a>(xml: &'a str, name: &str) -> &'a str {
    let open = format!("<{name}>");
    let start = xml.find(&open).map(|i| i + open.len()).unwrap_or(xml.len());
    let end = xml[start..].find('<').map_or(start, |i| start + i);
    &xml[start..end]
}

/// BBB's guest policy, decided as BBB decides it: under `ASK_MODERATOR` a viewer waits for a
/// moderator (`guestStatus` `WAIT`, and their session waits) unless they join with
/// `guest=false`; under `ALWAYS_ACCEPT_AUTH` only a guest (`guest=true`) waits; under
/// `ALWAYS_DENY` a viewer is turned away (`guestDeniedAccess`) unless `guest=false`; a
/// moderator always comes in. The `create` that made the session sets it: a repeat, or a BBB
/// `create` of a session made with plugNmeet's API, changes nothing.
#[test]
fn a_bbb_guest_policy_decides_as_bbb_does() {
    let edge = edge();
    let join = |meeting: &str, who: &str, extra: &str| -> String {
        bbb(
            &edge,
            "join",
            &format!("meetingID={meeting}&fullName={who}&userID={who}&redirect=false{extra}"),
        )
    };
    let waits = |answer: &str| -> bool {
        let (_, body) = session(&edge, xml_text(answer, "session_token"));
        match body["waiting"].as_bool() {
            Some(true) => {
                assert!(body.get("token").is_none(), "no LiveKit token: {body}");
                true
            }
            _ => {
                assert!(body["token"].is_string(), "{body}");
                false
            }
        }
    };
    let (guest, member, viewer) = (
        "&role=VIEWER&guest=true",
        "&role=VIEWER&guest=false",
        "&role=VIEWER",
    );
    for (meeting, policy, viewer_waits) in [
        ("ask", "ASK_MODERATOR", true),
        ("auth", "ALWAYS_ACCEPT_AUTH", false),
    ] {
        let created = bbb(
            &edge,
            "create",
            &format!("meetingID={meeting}&guestPolicy={policy}"),
        );
        assert_eq!(xml_text(&created, "returncode"), "SUCCESS", "{created}");
        let room = block(db::running_room(&edge.store, meeting))
            .expect("store")
            .expect("room");
        block(db::pin_region(&edge.store, &room.sid, "eu")).expect("pin");

        let answer = join(meeting, "gina", guest);
        assert_eq!(
            xml_text(&answer, "guestStatus"),
            "WAIT",
            "{policy}: {answer}"
        );
        assert_eq!(xml_text(&answer, "messageKey"), "guestWait");
        assert!(waits(&answer), "{policy}: a guest waits");
        let answer = join(meeting, "vic", viewer);
        let status = if viewer_waits { "WAIT" } else { "ALLOW" };
        assert_eq!(
            xml_text(&answer, "guestStatus"),
            status,
            "{policy}: {answer}"
        );
        assert_eq!(waits(&answer), viewer_waits, "{policy}: a viewer");
        for (who, extra) in [("mel", member), ("mo", "&role=MODERATOR&guest=true")] {
            let answer = join(meeting, who, extra);
            assert_eq!(
                xml_text(&answer, "guestStatus"),
                "ALLOW",
                "{policy}: {answer}"
            );
            assert!(!waits(&answer), "{policy}: {who} comes in");
        }
    }

    let created = bbb(&edge, "create", "meetingID=closed&guestPolicy=ALWAYS_DENY");
    assert_eq!(xml_text(&created, "returncode"), "SUCCESS", "{created}");
    // A repeat asking to let everyone in changes nothing.
    bbb(
        &edge,
        "create",
        "meetingID=closed&guestPolicy=ALWAYS_ACCEPT",
    );
    for extra in [guest, viewer] {
        let turned_away = join("closed", "gus", extra);
        assert_eq!(xml_text(&turned_away, "returncode"), "FAILED", "{extra}");
        assert_eq!(xml_text(&turned_away, "messageKey"), "guestDeniedAccess");
    }
    let member_in = join("closed", "mel", member);
    assert_eq!(xml_text(&member_in, "guestStatus"), "ALLOW", "{member_in}");
    let refused = bbb(&edge, "create", "meetingID=odd&guestPolicy=SOMETIMES");
    assert_eq!(xml_text(&refused, "messageKey"), "invalidGuestPolicy");

    // A session made with plugNmeet's API keeps its own rule under a BBB create.
    running_room(&edge, "plain", "eu", json!({}));
    bbb(&edge, "create", "meetingID=plain&guestPolicy=ALWAYS_DENY");
    let plain_guest = join("plain", "gus", guest);
    assert_eq!(
        xml_text(&plain_guest, "guestStatus"),
        "ALLOW",
        "{plain_guest}"
    );

    // Ended, the session forgets its policy.
    let room = block(db::running_room(&edge.store, "closed"))
        .expect("store")
        .expect("room");
    end_room(&edge, "closed");
    assert_eq!(
        count(
            &edge,
            "SELECT COUNT(*) FROM bbb_guest_policies WHERE room_sid = ?",
            &room.sid
        ),
        0
    );
}

/// A meeting created through BBB's API with callback URLs gets BBB's callbacks: the
/// recording-ready one for each recording (a form POST of `signed_parameters`, an HS256 JWT of
/// the meeting and the recording under the API secret) and the meeting-ended one (a GET with
/// `recordingmarks` and `meetingID` added to the URL's own query), even with plugNmeet's
/// webhooks off. A callback URL that is not http(s) is refused at `create`.
#[test]
fn a_bbb_integration_hears_its_meeting_end_and_recordings() {
    let edge = edge();
    assert!(!edge.config.webhooks.enabled());
    let refused = bbb(
        &edge,
        "create",
        "meetingID=m0&name=M&meta_endCallbackUrl=file%3A%2F%2F%2Fetc%2Fpasswd",
    );
    assert!(
        refused.contains("<messageKey>invalidMetadata</messageKey>"),
        "{refused}"
    );
    assert!(block(db::running_room(&edge.store, "m0"))
        .expect("store")
        .is_none());

    let created = bbb(
        &edge,
        "create",
        "meetingID=m1&name=Maths&record=true\
         &meta_endCallbackUrl=http%3A%2F%2Fhooks.test%2Fended%3Flms%3D7\
         &meta_bbb-recording-ready-url=http%3A%2F%2Fhooks.test%2Fready",
    );
    assert!(
        created.contains("<returncode>SUCCESS</returncode>"),
        "{created}"
    );
    let room = block(db::running_room(&edge.store, "m1"))
        .expect("store")
        .expect("room");
    block(db::pin_region(&edge.store, &room.sid, "eu")).expect("pin");
    // A recording of the session, as a recorder's reports leave it.
    block(edge_api::platform::Store::execute(
        &edge.store,
        "INSERT INTO recording_jobs (job_id, room_sid, room_id, kind, recorder_id, state, \
         created_ms, updated_ms) VALUES ('rec-1', ?1, 'm1', 'recording', 'node', 'ACTIVE', 0, 0)",
        &[room.sid.as_str().into()],
    ))
    .expect("job");
    stored_recording(&edge, &room, "rec-1");
    end_room(&edge, "m1");
    assert_eq!(
        queued_webhooks(&edge),
        2,
        "both callbacks queued, nothing else"
    );
    tick(&edge, 0);
    assert_eq!(queued_webhooks(&edge), 0);

    let hooks = edge.http.hooks.borrow();
    assert_eq!(
        hooks.len(),
        2,
        "{:?}",
        hooks.iter().map(|h| &h.url).collect::<Vec<_>>()
    );
    let ready = &hooks[0];
    assert_eq!(
        (&ready.method, ready.url.as_str()),
        (&Method::POST, "http://hooks.test/ready")
    );
    let claims = recording_ready_claims(&edge, ready);
    assert_eq!(claims.meeting_id, "m1");
    assert_eq!(claims.record_id, "rec-1");
    let ended = &hooks[1];
    assert_eq!(ended.method, Method::GET);
    assert_eq!(
        ended.url,
        "http://hooks.test/ended?lms=7&recordingmarks=true&meetingID=m1"
    );
    drop(hooks);

    // An empty callback URL is none; a receiver that redirects is not asked again (the edge
    // follows no redirect, and asking again would not change it).
    let created = bbb(
        &edge,
        "create",
        "meetingID=m2&name=M&meta_endCallbackUrl=http%3A%2F%2Fhooks.test%2Fmoved\
         &meta_bbb-recording-ready-url=",
    );
    assert!(
        created.contains("<returncode>SUCCESS</returncode>"),
        "{created}"
    );
    edge.http.hook_status.set(Some(302));
    end_room(&edge, "m2");
    assert_eq!(queued_webhooks(&edge), 1);
    tick(&edge, 0);
    assert_eq!(queued_webhooks(&edge), 0, "a redirect refuses for good");
    tick(&edge, 0);
    let hooks = edge.http.hooks.borrow();
    assert_eq!(hooks.len(), 3, "asked once");
    assert!(
        hooks[2].url.starts_with("http://hooks.test/moved?"),
        "{}",
        hooks[2].url
    );
    drop(hooks);

    // A recording-ready callback given up on (its receiver down for its every attempt) goes
    // alone: the next recording's, behind it, is news of its own and still goes.
    let created = bbb(
        &edge,
        "create",
        "meetingID=m3&name=M&meta_bbb-recording-ready-url=http%3A%2F%2Fhooks.test%2Fready3",
    );
    assert!(
        created.contains("<returncode>SUCCESS</returncode>"),
        "{created}"
    );
    let m3 = block(db::running_room(&edge.store, "m3"))
        .expect("store")
        .expect("room");
    for record_id in ["rec-a", "rec-b"] {
        stored_recording(&edge, &m3, record_id);
    }
    edge.http.hook_status.set(Some(503));
    let before = edge.http.hooks.borrow().len();
    tick(&edge, 0);
    for wait in edge_api::webhooks::RETRY_AFTER_SECS {
        edge.clock.0.set(edge.clock.0.get() + wait * 1000);
        tick(&edge, 0);
    }
    assert_eq!(
        edge.http.hooks.borrow().len() - before,
        usize::try_from(edge_api::webhooks::MAX_ATTEMPTS).unwrap(),
        "rec-a's attempts"
    );
    assert_eq!(queued_webhooks(&edge), 1, "rec-b waits");
    edge.http.hook_status.set(None);
    tick(&edge, 0);
    assert_eq!(queued_webhooks(&edge), 0);
    let hooks = edge.http.hooks.borrow();
    let last = hooks.last().expect("a callback");
    let claims = recording_ready_claims(&edge, last);
    assert_eq!(claims.record_id, "rec-b");
}

/// plugNmeet's analytics: a session created with `enable_analytics` (the default) has, once it
/// ends, a file with its attendance as plugNmeet writes it (int64 as strings, times in ms):
/// every visible user who joined, as a moderator or not, with their `ex_user_id`, each join and
/// leave (one still inside at the end leaves then); hidden participants are not in it. The
/// calls list it, give a download token that only an analytics download takes, and delete it;
/// a session without analytics, or forgotten, has none.
#[test]
fn an_ended_session_has_its_attendance_file() {
    let edge = edge();
    let room = running_room(&edge, "att", "eu", json!({}));
    join_token_as(
        &edge,
        "att",
        json!({"name": "Alice A.", "user_id": "alice", "is_admin": true,
               "user_metadata": {"ex_user_id": "lms-7"}}),
    );
    join_token(&edge, "att", "bob");
    let name = lk(&edge, "att");
    let t0 = edge.clock.0.get() / 1000;
    let (status, body) = events(
        &edge,
        "eu",
        vec![
            event("EV_1", "room_started", &name, "RM_1", None),
            presence("EV_2", "participant_joined", &name, "PA_1", "alice"),
            presence("EV_3", "participant_joined", &name, "PA_2", "bob"),
            presence("EV_4", "participant_left", &name, "PA_2", "bob"),
            presence("EV_5", "participant_joined", &name, "PA_3", "bob"),
            event(
                "EV_6",
                "participant_joined",
                &name,
                "RM_1",
                Some(participant("PA_9", "recorder", true)),
            ),
        ],
    );
    assert_eq!((status, &body["applied"]), (200, &json!(6)), "{body}");
    // What alice publishes is noted (the hidden recorder's tracks are not; a retried event, or
    // a track's start heard again under another event id, is noted once).
    let track = |id: &str, kind: &str, who: Value, (track_sid, source): (&str, &str)| {
        let mut e = event(id, kind, &name, "RM_1", Some(who));
        e["track"] = json!({"sid": track_sid, "source": source});
        e
    };
    let alice = || participant("PA_1", "alice", false);
    let (mic, camera) = (("TR_MIC", "MICROPHONE"), ("TR_CAM", "CAMERA"));
    let recorder = participant("PA_9", "recorder", true);
    let batch = vec![
        track("EV_7", "track_published", alice(), mic),
        track("EV_8", "track_published", alice(), camera),
        track("EV_9", "track_unpublished", alice(), mic),
        track("EV_10", "track_published", recorder, ("TR_R", "CAMERA")),
        track("EV_11", "track_published", alice(), mic),
    ];
    let (_, noted) = events(&edge, "eu", batch.clone());
    assert_eq!(
        (&noted["applied"], &noted["ignored"]),
        (&json!(3), &json!(2)),
        "{noted}"
    );
    let (_, again) = events(&edge, "eu", batch);
    assert_eq!(again["duplicates"], 3, "{again}");
    edge.clock.0.set(edge.clock.0.get() + 60_000);
    end_room(&edge, "att");
    // Another session with analytics off writes none.
    running_room(&edge, "quiet", "eu", json!({"enable_analytics": false}));
    end_room(&edge, "quiet");

    let (_, listed) = post(
        &edge,
        "/auth/analytics/fetch",
        "plugnmeet",
        API_SECRET,
        &json!({"room_ids": []}),
    );
    assert_eq!(listed["status"], json!(true), "{listed}");
    let result = &listed["result"];
    assert_eq!(result["total_analytics"], "1", "{listed}");
    let file = &result["analytics_list"][0];
    let file_id = format!("{}-analytics", room.sid);
    assert_eq!(file["file_id"], json!(file_id));
    assert_eq!(file["room_id"], "att");
    assert_eq!(file["file_name"], json!(format!("{file_id}.json")));
    assert!(file["creation_time"].is_string(), "{file}");
    // fetchPastRooms names it (plugNmeet's optional `analytics_file_id`: absent without one).
    let (_, past) = post(
        &edge,
        "/auth/room/fetchPastRooms",
        "plugnmeet",
        API_SECRET,
        &json!({"room_ids": ["att", "quiet"]}),
    );
    let listed = past["result"]["rooms_list"].as_array().expect("rooms_list");
    let of = |id: &str| listed.iter().find(|r| r["room_id"] == id).expect("listed");
    assert_eq!(of("att")["analytics_file_id"], json!(file_id), "{past}");
    assert!(of("quiet").get("analytics_file_id").is_none(), "{past}");

    let (_, token) = post(
        &edge,
        "/auth/analytics/getDownloadToken",
        "plugnmeet",
        API_SECRET,
        &json!({"file_id": file_id}),
    );
    let token = token["token"].as_str().expect("token").to_owned();
    let download = |token: &str| {
        block(edge.handle(EdgeRequest::new(
            Method::GET,
            &format!("/download/analytics/{token}"),
        )))
    };
    let got = download(&token);
    assert_eq!(got.status, 200);
    assert!(got
        .headers
        .iter()
        .any(|(n, v)| *n == "content-disposition" && v.contains(&format!("{file_id}.json"))));
    assert_eq!(
        file["file_size"].as_f64(),
        Some(got.body.len() as f64),
        "the listed size is the file's"
    );
    let analytics: Value = serde_json::from_slice(&got.body).expect("JSON");
    let room_info = &analytics["room"];
    assert_eq!(room_info["room_id"], "att");
    assert_eq!(room_info["room_title"], "T");
    assert_eq!(
        room_info["room_total_users"], "2",
        "the recorder is not counted"
    );
    assert_eq!(room_info["enabled_e2ee"], false);
    assert_eq!(
        room_info["room_duration"],
        json!((room_info["room_ended"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            - room.created_at)
            .to_string())
    );
    let users = analytics["users"].as_array().expect("users");
    assert_eq!(users.len(), 2, "{users:?}");
    let alice = &users[0];
    assert_eq!(alice["user_id"], "alice");
    assert_eq!(alice["name"], "Alice A.");
    assert_eq!(alice["is_admin"], true);
    assert_eq!(alice["ex_user_id"], "lms-7");
    let bob = &users[1];
    assert_eq!(bob["is_admin"], false);
    assert!(bob.get("ex_user_id").is_none(), "unset, left out: {bob}");
    let event_of = |user: &Value, name: &str| -> Value {
        user["events"]
            .as_array()
            .expect("events")
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {user}"))
    };
    assert_eq!(event_of(bob, "joined")["total"], 2, "{bob}");
    assert_eq!(event_of(bob, "left")["total"], 2, "{bob}");
    let alice_left = event_of(alice, "left");
    let left_at: i64 = alice_left["values"][0]["time"]
        .as_str()
        .expect("int64 as a string")
        .parse()
        .expect("ms");
    assert_eq!(
        left_at,
        room_info["room_ended"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            * 1000,
        "still inside at the end: left then"
    );
    let joined_at: i64 = event_of(alice, "joined")["values"][0]["time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(joined_at >= t0 * 1000 && joined_at < left_at, "{joined_at}");
    assert_eq!(
        event_of(alice, "joined")["values"][0]["value"],
        event_of(alice, "joined")["values"][0]["time"],
        "plugNmeet writes the time as the value too"
    );
    // What alice published, after her joins and leaves; bob published nothing.
    let names = |user: &Value| -> Vec<String> {
        user["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["name"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        names(alice),
        ["joined", "left", "mic_status", "webcam_status"]
    );
    assert_eq!(names(bob), ["joined", "left"]);
    let mic = event_of(alice, "mic_status");
    assert_eq!(mic["total"], 2, "{mic}");
    let statuses: Vec<&Value> = mic["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["value"])
        .collect();
    assert_eq!(
        statuses,
        [
            &json!("ANALYTICS_STATUS_STARTED"),
            &json!("ANALYTICS_STATUS_ENDED")
        ]
    );
    assert!(mic["values"][0]["time"]
        .as_str()
        .is_some_and(|t| t.parse::<i64>().is_ok()));
    assert_eq!(event_of(alice, "webcam_status")["total"], 1);
    assert_eq!(
        count(
            &edge,
            "SELECT COUNT(*) FROM session_track_events WHERE room_sid = ?",
            &room.sid
        ),
        0,
        "noted until the file is written"
    );

    // Tokens of other kinds, changed ones and others' files lead nowhere.
    let (_, recording_token) = post(
        &edge,
        "/auth/recording/getDownloadToken",
        "plugnmeet",
        API_SECRET,
        &json!({"record_id": file_id}),
    );
    assert_eq!(recording_token["status"], json!(false));
    for bad in [format!("{token}x"), "x".to_owned()] {
        assert_eq!(download(&bad).status, 401, "{bad}");
    }
    let (_, bad_id) = post(
        &edge,
        "/auth/analytics/getDownloadToken",
        "plugnmeet",
        API_SECRET,
        &json!({"file_id": "../etc"}),
    );
    assert_eq!(bad_id["status_code"], "INVALID_PARAMETERS", "{bad_id}");
    let (_, none) = post(
        &edge,
        "/auth/analytics/fetch",
        "plugnmeet",
        API_SECRET,
        &json!({"room_ids": ["quiet"]}),
    );
    assert_eq!(
        (&none["status"], &none["status_code"]),
        (&json!(false), &json!("NOT_FOUND")),
        "{none}"
    );

    let delete = |file_id: &str| {
        post(
            &edge,
            "/auth/analytics/delete",
            "plugnmeet",
            API_SECRET,
            &json!({"file_id": file_id}),
        )
        .1
    };
    assert_eq!(delete(&file_id)["status"], json!(true));
    assert_eq!(delete(&file_id)["status_code"], "NOT_FOUND");
    assert_eq!(download(&token).status, 404, "gone with its file");
}

/// plugNmeet's artifact API shows the analytics files as `MEETING_ANALYTICS` artifacts under
/// the same ids: `fetch` pages them and filters them by rooms, session and type (name or
/// number; another type finds none, a type plugNmeet does not have is refused), `info` gives
/// one with its session, its token downloads it on either route, and `delete` removes it for
/// both APIs.
#[test]
fn the_artifact_api_shows_the_analytics_files() {
    let edge = edge();
    let first = running_room(&edge, "art", "eu", json!({}));
    edge.clock.0.set(edge.clock.0.get() + 60_000);
    end_room(&edge, "art");
    let second = running_room(&edge, "art", "eu", json!({}));
    edge.clock.0.set(edge.clock.0.get() + 60_000);
    end_room(&edge, "art");
    running_room(&edge, "other", "eu", json!({}));
    end_room(&edge, "other");
    let call = |path: &str, body: Value| post(&edge, path, "plugnmeet", API_SECRET, &body).1;
    let ids = |listed: &Value| -> Vec<String> {
        listed["result"]["artifacts_list"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|a| a["artifact_id"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (first_id, second_id) = (
        format!("{}-analytics", first.sid),
        format!("{}-analytics", second.sid),
    );

    let listed = call(
        "/auth/artifact/fetch",
        json!({"room_ids": ["art"], "limit": 1, "order_by": "ASC"}),
    );
    assert_eq!(listed["status"], json!(true), "{listed}");
    let result = &listed["result"];
    assert_eq!(
        (
            &result["total_artifacts"],
            &result["from"],
            &result["limit"]
        ),
        (&json!("2"), &json!("0"), &json!("1")),
        "uint64 and int64 as strings: {listed}"
    );
    assert_eq!(result["order_by"], "ASC");
    assert!(
        result.get("type").is_none(),
        "not asked, not echoed: {listed}"
    );
    assert_eq!(ids(&listed), std::slice::from_ref(&first_id));
    let artifact = &result["artifacts_list"][0];
    assert_eq!(artifact["room_id"], "art");
    assert_eq!(artifact["type"], "MEETING_ANALYTICS");
    assert!(
        artifact["created"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "RFC 3339: {artifact}"
    );
    let metadata = &artifact["metadata"];
    assert_eq!(metadata["user_info"], Value::Null, "{metadata}");
    assert_eq!(metadata["file_info"]["mime_type"], "application/json");
    assert_eq!(
        metadata["file_info"]["file_path"],
        json!(format!("meeting_analytics/art/{first_id}.json"))
    );

    // A page past the end is an empty list (there are artifacts, none on it).
    let past_end = call(
        "/auth/artifact/fetch",
        json!({"room_ids": ["art"], "from": 5}),
    );
    assert_eq!(past_end["status"], json!(true), "{past_end}");
    assert_eq!(
        past_end["result"]["artifacts_list"],
        json!([]),
        "{past_end}"
    );
    assert_eq!(past_end["result"]["total_artifacts"], "2", "{past_end}");

    // One session; a type by name or number; the newest first by default.
    let of_session = call("/auth/artifact/fetch", json!({"room_sid": second.sid}));
    assert_eq!(
        ids(&of_session),
        std::slice::from_ref(&second_id),
        "{of_session}"
    );
    for kind in [json!("MEETING_ANALYTICS"), json!(1)] {
        let typed = call("/auth/artifact/fetch", json!({"type": kind}));
        assert_eq!(typed["result"]["type"], "MEETING_ANALYTICS", "{typed}");
        assert_eq!(ids(&typed).len(), 3, "{typed}");
        assert_eq!(ids(&typed)[2], first_id, "oldest last: {typed}");
    }
    for kind in [json!("MEETING_SUMMARY"), json!(0), json!(7)] {
        let none = call("/auth/artifact/fetch", json!({"type": kind}));
        assert_eq!(
            (&none["status"], &none["status_code"], &none["msg"]),
            (
                &json!(false),
                &json!("NOT_FOUND"),
                &json!("no artifact found")
            ),
            "{none}"
        );
    }
    for bad in [
        json!({"type": "SUMMARY"}),
        json!({"type": true}),
        json!({"room_sid": "s".repeat(65)}),
        json!({"room_ids": vec!["art"; 100]}),
    ] {
        let refused = call("/auth/artifact/fetch", bad.clone());
        assert_eq!(
            refused["status_code"], "INVALID_PARAMETERS",
            "{bad}: {refused}"
        );
    }

    // One artifact, with its session (times as plugNmeet writes them there).
    let info = call("/auth/artifact/info", json!({"artifact_id": first_id}));
    assert_eq!(info["status"], json!(true), "{info}");
    assert_eq!(info["artifact_info"]["artifact_id"], json!(first_id));
    assert_eq!(info["artifact_info"]["type"], "MEETING_ANALYTICS");
    let room_info = &info["room_info"];
    assert_eq!(room_info["room_sid"], json!(first.sid), "{info}");
    assert_eq!(room_info["room_id"], "art");
    assert!(
        room_info["ended"]
            .as_str()
            .is_some_and(|t| t.len() == 19 && t.as_bytes()[10] == b' '),
        "2006-01-02 15:04:05: {room_info}"
    );
    for (body, code) in [
        (json!({"artifact_id": "nope"}), "NOT_FOUND"),
        (json!({"artifact_id": ""}), "INVALID_PARAMETERS"),
        (json!({"artifact_id": "../x"}), "INVALID_PARAMETERS"),
        (json!({"file_id": first_id}), "INVALID_PARAMETERS"),
    ] {
        let answer = call("/auth/artifact/info", body.clone());
        assert_eq!(answer["status_code"], code, "{body}: {answer}");
    }

    // Its token downloads it on both routes, as the analytics token does.
    let token = call(
        "/auth/artifact/getDownloadToken",
        json!({"artifact_id": first_id}),
    );
    assert_eq!(token["status"], json!(true), "{token}");
    let token = token["token"].as_str().expect("token").to_owned();
    let analytics_token = call(
        "/auth/analytics/getDownloadToken",
        json!({"file_id": first_id}),
    )["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let download = |route: &str, token: &str| {
        block(edge.handle(EdgeRequest::new(
            Method::GET,
            &format!("/download/{route}/{token}"),
        )))
    };
    let file = download("artifact", &token);
    assert_eq!(file.status, 200);
    let listed_size = &metadata["file_info"]["file_size"];
    assert_eq!(listed_size, &json!(file.body.len().to_string()));
    let analytics: Value = serde_json::from_slice(&file.body).expect("JSON");
    assert_eq!(analytics["room"]["room_id"], "art");
    assert_eq!(download("analytics", &token).body, file.body);
    assert_eq!(download("artifact", &analytics_token).body, file.body);
    assert_eq!(download("artifact", &format!("{token}x")).status, 401);
    let missing = call(
        "/auth/artifact/getDownloadToken",
        json!({"artifact_id": "nope"}),
    );
    assert_eq!(
        (&missing["status_code"], &missing["msg"]),
        (&json!("NOT_FOUND"), &json!("artifact not found"))
    );

    // Deleted as an artifact, it is gone for the analytics calls too; the others stay.
    let deleted = call("/auth/artifact/delete", json!({"artifact_id": first_id}));
    assert_eq!(deleted["status"], json!(true), "{deleted}");
    let again = call("/auth/artifact/delete", json!({"artifact_id": first_id}));
    assert_eq!(again["status_code"], "NOT_FOUND");
    let analytics_gone = call(
        "/auth/analytics/getDownloadToken",
        json!({"file_id": first_id}),
    );
    assert_eq!(analytics_gone["msg"], "analytics not found");
    assert_eq!(download("artifact", &token).status, 404);
    let left = call("/auth/artifact/fetch", json!({"room_ids": ["art"]}));
    assert_eq!(ids(&left), [second_id]);
}

/// A session's analytics file holds its first 2,000 joins, however many there were (a user
/// reconnecting in a loop must not make the statement that ends the session fail), and still
/// counts every user.
#[test]
fn an_analytics_file_is_bounded() {
    let edge = edge();
    let room = running_room(&edge, "crowd", "eu", json!({}));
    block(edge_api::platform::Store::execute(
        &edge.store,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500) \
         INSERT INTO room_participants (room_sid, participant_sid, identity, name, joined_at) \
         SELECT ?1, 'PA_' || i, CASE WHEN i <= 2200 THEN 'looper' ELSE 'user-' || i END, \
         'N', 1000 + i FROM n",
        &[room.sid.as_str().into()],
    ))
    .expect("participants");
    end_room(&edge, "crowd");
    let body = block(db::analytics::analytics_body(
        &edge.store,
        &format!("{}-analytics", room.sid),
    ))
    .expect("store")
    .expect("file");
    let analytics: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(analytics["room"]["room_total_users"], "301");
    let users = analytics["users"].as_array().expect("users");
    assert_eq!(users.len(), 1, "the first 2,000 joins are the looper's");
    assert_eq!(users[0]["events"][0]["total"], 2000);
    let times: Vec<i64> = users[0]["events"][0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v["time"].as_str().expect("time").parse().expect("ms"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "in time order");
}
