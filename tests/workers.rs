//! What only the Worker does: place a room by Cloudflare's `request.cf` location (set here
//! through Miniflare, as Cloudflare's edge sets it), ahead of any location header, and never by a
//! client-set `cf-*` header; answer a redirect from LiveKit as the failure it is, as Spin does;
//! log the edge's warnings through `console.error`; run on D1 what recording from a room's start
//! writes. The rest of the Worker's behaviour is the
//! shared black-box suite in `tests/api.rs`.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::worker::WorkerEdge;
use support::{unique, Target};

const API_SECRET: &str = "workers-test-api-secret-0123456789abcdef";

fn bindings() -> Value {
    let region = |id: &str, lat: f64, lon: f64| {
        json!({"id": id, "name": id, "lat": lat, "lon": lon,
               "livekit_url": "ws://127.0.0.1:9", "api_key": "lk"})
    };
    let secret = "workers-test-livekit-secret-0123456789ab";
    json!({
        "api_key": "plugnmeet",
        "api_secret": API_SECRET,
        "regions": json!([region("us", 38.9, -77.0), region("eu", 50.11, 8.68),
                          region("ap", 1.35, 103.82)]).to_string(),
        "livekit_secrets": json!({"us": secret, "eu": secret, "ap": secret}).to_string(),
        "geo_latitude_header": "x-test-latitude",
        "geo_longitude_header": "x-test-longitude",
    })
}

#[test]
fn rooms_are_placed_by_request_cf() {
    // Cloudflare says the user is in Paris.
    let worker = WorkerEdge::start_with_cf(
        &bindings(),
        &json!({"latitude": "48.8566", "longitude": "2.3522", "country": "FR"}),
    );
    let target = Target::new(worker.base.clone(), "plugnmeet".into(), API_SECRET.into());
    let room = unique("cf");
    target.create_room(&room, json!({}));
    // A location header claiming Singapore does not override the platform's own.
    let reply = target.session(
        &target.join_token(&room, "u1", false, false),
        &[("x-test-latitude", "1.29"), ("x-test-longitude", "103.85")],
    );
    let body = reply.json();
    assert_eq!(reply.status, 200, "{body}\n{}", worker.log());
    assert_eq!(
        (body["region"]["id"].as_str(), body["placement"].as_str()),
        (Some("eu"), Some("nearest")),
        "{body}"
    );
}

/// What a test double HTTP server was asked: (path, body) of each request, in order.
type Asked = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A test double HTTP server on loopback, one request per connection: each is recorded and
/// answered with `answer(path)`, a whole HTTP/1.1 response. Returns its port.
fn http_double(answer: impl Fn(&str) -> String + Send + 'static) -> (u16, Asked) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let asked: Asked = Arc::default();
    let seen = asked.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            let response = answer(&path);
            seen.lock().expect("lock").push((path, body));
            let _ = reader.get_mut().write_all(response.as_bytes());
        }
    });
    (port, asked)
}

/// A whole HTTP/1.1 response with a JSON body.
fn json_response(status: &str, body: &Value) -> String {
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A test double of a LiveKit server behind a redirect (no real LiveKit answers redirects):
/// every request to `/twirp/...` gets a 307 to `/followed/...`, which would answer a valid empty
/// participant list. Returns its port and the paths it was asked for.
fn redirecting_livekit() -> (u16, Asked) {
    http_double(|path| match path.strip_prefix("/twirp/") {
        Some(rest) => format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: /followed/{rest}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        None => json_response("200 OK", &json!({"participants": []})),
    })
}

/// A redirect from a region's LiveKit URL is an answer, not a path to follow (as on Spin and the
/// local host, whose outbound HTTP never follows one); the failure reaches the platform's log.
#[test]
fn livekit_redirects_are_not_followed_and_failures_are_logged() {
    let (port, asked) = redirecting_livekit();
    let mut bindings = bindings();
    let region = json!({"id": "eu", "name": "eu", "lat": 50.11, "lon": 8.68,
                        "livekit_url": format!("ws://127.0.0.1:{port}"), "api_key": "lk"});
    bindings["regions"] = json!(json!([region]).to_string());
    bindings["livekit_secrets"] =
        json!(json!({"eu": "workers-test-livekit-secret-0123456789ab"}).to_string());
    let worker = WorkerEdge::start(&bindings);
    let target = Target::new(worker.base.clone(), "plugnmeet".into(), API_SECRET.into());
    let room = unique("redirect");
    target.create_room(&room, json!({}));
    let reply = target.session(&target.join_token(&room, "u1", false, false), &[]);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let (status, body) = target.call("/auth/room/getActiveRoomInfo", &json!({"room_id": room}));
    assert_eq!((status, &body["status"]), (200, &json!(false)), "{body}");
    assert!(
        body["msg"]
            .as_str()
            .unwrap_or("")
            .contains("did not answer"),
        "{body}"
    );
    let asked: Vec<String> = asked
        .lock()
        .expect("lock")
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert!(
        asked.iter().any(|p| p.starts_with("/twirp/"))
            && !asked.iter().any(|p| p.starts_with("/followed/")),
        "{asked:?}"
    );
    // The edge's warning reached workerd's log through console.error.
    assert_logged(&worker, "listing participants failed");
}

/// Waits up to 5 s for `needle` in workerd's log.
fn assert_logged(worker: &WorkerEdge, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut log = String::new();
    while !log.contains(needle) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        log.push_str(&worker.log());
    }
    assert!(
        log.contains(needle),
        "`{needle}` not in workerd's log:\n{log}"
    );
}

/// On Workers a `cf-*` location header came from the client (Cloudflare's own location is
/// `request.cf`), so with the default header names and no `request.cf` coordinates the claimed
/// location does not place the room.
#[test]
fn client_set_cf_location_headers_are_not_read() {
    let mut bindings = bindings();
    let map = bindings.as_object_mut().expect("object");
    map.remove("geo_latitude_header");
    map.remove("geo_longitude_header");
    map.insert("default_region".into(), json!("us"));
    let worker = WorkerEdge::start(&bindings);
    let target = Target::new(worker.base.clone(), "plugnmeet".into(), API_SECRET.into());
    let room = unique("cfhdr");
    target.create_room(&room, json!({}));
    // Claims Singapore, through the header names a proxy-fronted Spin edge reads by default.
    let reply = target.session(
        &target.join_token(&room, "u1", false, false),
        &[("cf-iplatitude", "1.29"), ("cf-iplongitude", "103.85")],
    );
    let body = reply.json();
    assert_eq!(reply.status, 200, "{body}\n{}", worker.log());
    assert_eq!(
        (body["region"]["id"].as_str(), body["placement"].as_str()),
        (Some("us"), Some("default")),
        "{body}"
    );
}

/// `max_events_per_batch` reaches the Worker: on D1's free plan a sidecar batch must fit 50
/// queries, and a larger one is refused whole with the limit before any query runs. Track
/// events for a session the edge does not run are ignored.
#[test]
fn sidecar_batches_are_held_to_the_configured_size() {
    let sidecar_secret = "workers-test-sidecar-secret-0123456789ab";
    let mut bindings = bindings();
    bindings["sidecar_secrets"] = json!(json!({ "eu": sidecar_secret }).to_string());
    bindings["max_events_per_batch"] = json!("2");
    // With webhooks configured, each track event runs its queueing statement on D1 (it queues
    // nothing here: the edge runs no session in LiveKit room "w").
    bindings["webhook_url"] = json!("http://127.0.0.1:9/hook");
    let worker = WorkerEdge::start(&bindings);
    let sidecar = Target::new(worker.base.clone(), "eu".into(), sidecar_secret.into());
    let event = |n: usize| {
        json!({"id": format!("EV_W{n}"), "event": "track_published",
               "room": {"sid": "RM_W", "name": "w"}})
    };
    let (status, body) = sidecar.call(
        "/internal/sidecar/events",
        &json!({"region_id": "eu", "events": [event(1), event(2), event(3)]}),
    );
    assert_eq!(status, 413, "{body}\n{}", worker.log());
    assert_eq!(body["max_events"], 2, "{body}");
    let (status, body) = sidecar.call(
        "/internal/sidecar/events",
        &json!({"region_id": "eu", "events": [event(1), event(2)]}),
    );
    assert_eq!(status, 200, "{body}\n{}", worker.log());
    assert_eq!(body["ignored"], 2, "{body}");
}

/// D1 runs what recording a room from its start writes: the pending start the room's creation
/// and first join make due (triggers), its claim by a recorder's heartbeat, its settling after
/// a node had no room (the retry time) and after a node took it, then the job's events and the
/// catalog entry. The node's job API is a test double (this test is about the Worker's store;
/// the real recorder's side is in tests/recording.rs); the region's LiveKit does not answer, so
/// telling the room of its recording fails, is logged, loses no report, and is kept for the
/// next heartbeat to try again. The customer's webhooks, queued by D1's triggers, go out on the
/// heartbeats in order.
#[test]
fn recording_from_the_start_runs_on_d1() {
    let refuse_next_start = Arc::new(AtomicBool::new(true));
    let refuse = refuse_next_start.clone();
    let (port, asked) = http_double(move |path| {
        if path == "/jobs/start" && refuse.swap(false, Ordering::SeqCst) {
            json_response(
                "503 Service Unavailable",
                &json!({"msg": "no capacity: 0.1 cores free"}),
            )
        } else {
            json_response("200 OK", &json!({}))
        }
    });
    let starts = || {
        asked
            .lock()
            .expect("lock")
            .iter()
            .filter(|(path, _)| path == "/jobs/start")
            .map(|(_, body)| serde_json::from_slice::<Value>(body).expect("json"))
            .collect::<Vec<_>>()
    };
    let node_secret = "workers-test-recorder-secret-0123456789";
    let mut bindings = bindings();
    bindings["recorders"] = json!(
        json!([{"id": "rec-w", "url": format!("http://127.0.0.1:{port}"),
                                          "api_key": "rec-w-key", "region": "eu"}])
        .to_string()
    );
    bindings["recorder_secrets"] = json!(json!({ "rec-w": node_secret }).to_string());
    // The customer's webhooks go to the same double, queued by D1's triggers.
    bindings["webhook_url"] = json!(format!("http://127.0.0.1:{port}/hook"));
    let worker = WorkerEdge::start(&bindings);
    let target = Target::new(worker.base.clone(), "plugnmeet".into(), API_SECRET.into());
    let node = Target::new(worker.base.clone(), "rec-w-key".into(), node_secret.into());
    let report = |body: Value| {
        let (status, answer) = node.call("/internal/recorder/events", &body);
        assert_eq!(
            (status, &answer["status"]),
            (200, &json!(true)),
            "{answer}\n{}",
            worker.log()
        );
        answer
    };
    let now_ms = || {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock");
        i64::try_from(since_epoch.as_millis()).expect("ms")
    };
    let heartbeat = || {
        report(
            json!({"type": "heartbeat", "node_id": "rec-w", "at_ms": now_ms(),
                      "capacity": {"free_cores": 2.0, "jobs": 0, "max_jobs": 4}}),
        )
    };

    let room = unique("d1auto");
    target.create_room(
        &room,
        json!({"metadata": {"room_features": {
            "recording_features": {"enable_auto_cloud_recording": true}}}}),
    );
    assert_eq!(heartbeat()["recording_started"], false, "nobody joined yet");
    assert!(starts().is_empty());
    let moderator = target.join_token(&room, "m1", true, false);
    let reply = target.session(
        &moderator,
        &[("x-test-latitude", "50.1"), ("x-test-longitude", "8.7")],
    );
    assert_eq!(reply.status, 200, "{}", reply.text());

    // The first try finds the node full: the start waits for its retry.
    assert_eq!(heartbeat()["recording_started"], false);
    assert_eq!(starts().len(), 1);
    assert_eq!(heartbeat()["recording_started"], false);
    assert_eq!(starts().len(), 1, "retried before its time");
    std::thread::sleep(Duration::from_millis(10_500));
    assert_eq!(heartbeat()["recording_started"], true, "{}", worker.log());
    let sent = starts();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1]["room_id"], json!(room), "{}", sent[1]);
    assert_eq!(sent[1]["file"], json!(true), "{}", sent[1]);
    let job_id = sent[1]["job_id"].as_str().expect("job_id").to_owned();
    // Settled: later heartbeats start nothing more.
    assert_eq!(heartbeat()["recording_started"], false);
    assert_eq!(starts().len(), 2);

    let event = |state: &str, at_ms: i64| {
        json!({"event_id": format!("{job_id}-{state}"), "type": "job_state", "at_ms": at_ms,
               "job": {"job_id": job_id, "room_id": room, "state": state, "reason": null,
                       "file": "/recordings/d1.mp4",
                       "file_bytes": (state == "COMPLETE").then_some(2_500_000),
                       "updated_ms": at_ms}})
    };
    let t = now_ms();
    let answer = report(json!({"type": "events", "node_id": "rec-w", "events": [
        event("STARTING", t), event("ACTIVE", t + 1), event("COMPLETE", t + 2)]}));
    assert_eq!(answer["applied"], json!(3), "{answer}");
    assert_logged(&worker, "recording state not sent to the room");
    // The state LiveKit missed is kept, and the next heartbeat tries it again.
    heartbeat();
    let (status, listing) = target.call(
        "/auth/recording/fetch",
        &json!({"room_ids": [room], "from": 0, "limit": 10}),
    );
    assert_eq!(status, 200, "{listing}");
    let list = &listing["result"]["recordings_list"];
    assert_eq!(list[0]["record_id"], json!(job_id), "{listing}");
    assert_eq!(list[0]["file_size"], json!(2.5), "{listing}");
    // It starts with its meeting's title and creation time (a trigger on D1 too).
    let seeded = &list[0]["metadata"]["extra_data"];
    assert!(
        seeded["meeting-created"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{listing}"
    );
    // The backend describes it (a JSON merge patch in D1's SQLite), twice: both changes kept.
    for change in [
        json!({"title": "Standup", "extra_data": {"team": "core"}}),
        json!({"subtitles": {"en": {"label": "English", "url": "https://cdn.test/en.vtt"}},
               "extra_data": {"sprint": "12"}}),
    ] {
        let (_, answer) = target.call(
            "/auth/recording/updateMetadata",
            &json!({"record_id": job_id, "metadata": change}),
        );
        assert_eq!(answer["status"], json!(true), "{answer}");
    }
    let (_, info) = target.call("/auth/recording/info", &json!({"record_id": job_id}));
    let metadata = &info["recording_info"]["metadata"];
    assert_eq!(metadata["title"], "Standup", "{info}");
    assert_eq!(
        metadata["subtitles"],
        json!({"en": {"label": "English", "url": "https://cdn.test/en.vtt"}}),
        "{info}"
    );
    let extra = &metadata["extra_data"];
    assert_eq!(
        (&extra["team"], &extra["sprint"]),
        (&json!("core"), &json!("12")),
        "{info}"
    );
    assert_eq!(
        extra["meeting-created"], seeded["meeting-created"],
        "{info}"
    );
    // The heartbeats delivered the customer's webhooks, in order.
    let hooks: Vec<Value> = asked
        .lock()
        .expect("lock")
        .iter()
        .filter(|(path, _)| path == "/hook")
        .map(|(_, body)| serde_json::from_slice(body).expect("json"))
        .collect();
    let names: Vec<&str> = hooks.iter().filter_map(|h| h["event"].as_str()).collect();
    assert_eq!(
        names,
        [
            "room_created",
            "start_recording",
            "end_recording",
            "recording_proceeded"
        ],
        "{hooks:?}\n{}",
        worker.log()
    );
    assert_eq!(hooks[3]["recording_info"]["record_id"], json!(job_id));
    assert_eq!(hooks[3]["recording_info"]["file_size"], json!(2.5));
    assert!(hooks.iter().all(|h| h["room"]["room_id"] == json!(room)));
}

/// A region whose LiveKit posts its webhooks straight to the Worker (`"webhooks": "direct"`, as
/// with LiveKit Cloud): the signed events run on D1 as a sidecar's would (LiveKit's retry of
/// one changes nothing twice), the joined count is LiveKit's alone, and LiveKit's room_finished
/// makes the session a past room. A webhook not signed by the region's LiveKit is refused.
#[test]
fn livekit_posts_webhooks_straight_to_the_worker() {
    let livekit_secret = "workers-test-livekit-secret-0123456789ab";
    let mut bindings = bindings();
    let region = json!([{"id": "eu", "name": "eu", "lat": 50.11, "lon": 8.68,
                         "livekit_url": "ws://127.0.0.1:9", "api_key": "lk", "webhooks": "direct"}]);
    bindings["regions"] = json!(region.to_string());
    bindings["livekit_secrets"] = json!(json!({ "eu": livekit_secret }).to_string());
    let worker = WorkerEdge::start(&bindings);
    let target = Target::new(worker.base.clone(), "plugnmeet".into(), API_SECRET.into());
    let room = unique("direct");
    target.create_room(&room, json!({}));
    let session = target
        .session(&target.join_token(&room, "u1", false, false), &[])
        .json();
    assert_eq!(session["region"]["id"], "eu", "{session}\n{}", worker.log());
    let livekit_room = support::jwt_claims(session["token"].as_str().unwrap())["video"]["room"]
        .as_str()
        .unwrap()
        .to_owned();
    let post = |event: &Value, secret: &str| {
        use base64::Engine;
        use sha2::Digest;
        let body = serde_json::to_vec(event).unwrap();
        let now = support::now_secs();
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&body));
        let token = support::hs256(
            secret,
            &json!({"iss": "lk", "nbf": now, "exp": now + 300, "sha256": hash}),
        );
        target
            .post("/webhook/eu", &body, &[("Authorization", token.as_str())])
            .status
    };
    let event = |id: &str, kind: &str, participant: Option<Value>| {
        let mut e = json!({"id": id, "event": kind, "createdAt": support::now_secs().to_string(),
                           "room": {"sid": "RM_direct", "name": livekit_room}});
        if let Some(p) = participant {
            e["participant"] = p;
        }
        e
    };
    let joined = event(
        "EV_D2",
        "participant_joined",
        Some(json!({"sid": "PA_1", "identity": "u1", "name": "User u1", "state": "ACTIVE"})),
    );
    assert_eq!(
        post(&event("EV_D1", "room_started", None), livekit_secret),
        200,
        "{}",
        worker.log()
    );
    assert_eq!(post(&joined, livekit_secret), 200);
    assert_eq!(post(&joined, livekit_secret), 200, "LiveKit's retry");
    assert_eq!(
        post(
            &event("EV_D3", "room_finished", None),
            "another-secret-0123456789abcdef0123"
        ),
        403
    );
    let (_, active) = target.call("/auth/room/isRoomActive", &json!({"room_id": room}));
    assert_eq!(active["is_active"], true, "{active}");
    assert_eq!(
        post(&event("EV_D3", "room_finished", None), livekit_secret),
        200
    );
    let (_, active) = target.call("/auth/room/isRoomActive", &json!({"room_id": room}));
    assert_eq!(active["is_active"], false, "{active}\n{}", worker.log());
    let (_, past) = target.call("/auth/room/fetchPastRooms", &json!({"room_ids": [room]}));
    assert_eq!(
        past["result"]["rooms_list"][0]["joined_participants"], "1",
        "{past}"
    );
}
