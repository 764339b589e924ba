//! Elastic, region-pinned media with real parts: two real LiveKit servers as two regions, each
//! with a real `media-sidecar` (heartbeats, webhook relay, drain), the edge in the local host,
//! and real participants (LiveKit's Python realtime SDK) joining through the edge's session
//! endpoint. The edge's registry is read from its SQLite file; everything else goes through
//! the edge's and the sidecars' HTTP APIs.
//!
//! Runs inside `scripts/test.sh`'s private network namespace (WebRTC ignores loopback).

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::regions::Region;
use support::{sign, unique, Participant, System};

const FRANKFURT: (f64, f64) = (50.11, 8.68);
const WASHINGTON: (f64, f64) = (38.9, -77.0);
/// Seconds without a heartbeat after which a region takes no new rooms (sidecars beat every 1 s).
const REGION_TIMEOUT: u64 = 3;

/// Two regions ("a" in Frankfurt, "b" in Washington) and the edge that places rooms in them.
fn two_regions(name: &str) -> (System, Region, Region) {
    let mut a = Region::start("a");
    let mut b = Region::start("b");
    let regions = format!(
        "{}{}",
        a.edge_toml(FRANKFURT.0, FRANKFURT.1),
        b.edge_toml(WASHINGTON.0, WASHINGTON.1)
    );
    let system = System::start_with(
        name,
        &format!("region_timeout_secs = {REGION_TIMEOUT}"),
        &regions,
    );
    a.start_sidecar(&system.target.base, "");
    b.start_sidecar(&system.target.base, "");
    wait_region(&system, "a", |r| r.heard && !r.draining);
    wait_region(&system, "b", |r| r.heard && !r.draining);
    (system, a, b)
}

/// A region's row in the edge's registry.
#[derive(Debug)]
struct RegistryRow {
    heard: bool,
    received_at_ms: i64,
    draining: bool,
    left: bool,
    rooms: i64,
}

fn registry_row(system: &System, region: &str) -> RegistryRow {
    let db = rusqlite::Connection::open(system.data_dir.join("edge.sqlite")).expect("edge db");
    db.query_row(
        "SELECT received_at_ms, draining, left_at_ms IS NOT NULL, rooms FROM region_status \
         WHERE region_id = ?",
        [region],
        |row| {
            Ok(RegistryRow {
                heard: true,
                received_at_ms: row.get(0)?,
                draining: row.get::<_, i64>(1)? != 0,
                left: row.get(2)?,
                rooms: row.get(3)?,
            })
        },
    )
    .unwrap_or(RegistryRow {
        heard: false,
        received_at_ms: 0,
        draining: false,
        left: false,
        rooms: 0,
    })
}

fn wait_region(system: &System, region: &str, ready: impl Fn(&RegistryRow) -> bool) -> RegistryRow {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = registry_row(system, region);
        if ready(&row) {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "region {region} never got there: {row:?}\n{}",
            system.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Creates `room` (if new) and opens a session in it for `user` at `at`; the session reply.
fn session(system: &System, room: &str, user: &str, at: (f64, f64)) -> Value {
    let target = &system.target;
    let (status, body) = target.call(
        "/auth/room/create",
        &json!({"room_id": room, "empty_timeout": 120, "metadata": {"room_title": room}}),
    );
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    let token = target.join_token(room, user, false, false);
    let (lat, lon) = (at.0.to_string(), at.1.to_string());
    let reply = target.session(
        &token,
        &[("x-test-latitude", &lat), ("x-test-longitude", &lon)],
    );
    let body = reply.json();
    assert_eq!(reply.status, 200, "{body}");
    body
}

fn region_of(session: &Value) -> &str {
    session["region"]["id"].as_str().expect("region id")
}

/// Joins the room of `session` as a real participant publishing audio and video.
fn join(session: &Value) -> Participant {
    let participant = Participant::join(
        session["livekit_url"].as_str().expect("url"),
        session["token"].as_str().expect("token"),
        "audio,video",
    );
    participant.expect_line("joined", Duration::from_secs(30));
    participant
}

fn room_row(system: &System, room: &str) -> (i64, i64, String) {
    let db = rusqlite::Connection::open(system.data_dir.join("edge.sqlite")).expect("edge db");
    db.query_row(
        "SELECT is_running, joined_participants, status FROM rooms WHERE room_id = ? \
         ORDER BY id DESC LIMIT 1",
        [room],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )
    .expect("room row")
}

fn wait_room(system: &System, room: &str, want: impl Fn(&(i64, i64, String)) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = room_row(system, room);
        if want(&row) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "room {room} stayed {row:?}\n{}",
            system.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Events waiting in a sidecar's outbox, from its metrics.
fn outbox_depth(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("media_sidecar_outbox_depth "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn rooms_follow_region_health_and_keep_their_pins() {
    let (system, mut a, _b) = two_regions("regions-placement");

    let pinned = unique("near-a");
    let first = session(&system, &pinned, "u1", FRANKFURT);
    assert_eq!(
        (region_of(&first), &first["placement"]),
        ("a", &json!("nearest"))
    );
    assert_eq!(first["livekit_url"], a.livekit.ws_url.as_str());
    let far = session(&system, &unique("near-b"), "u2", WASHINGTON);
    assert_eq!(region_of(&far), "b");

    // Region a goes silent: new rooms near it go to b; its room keeps its pin.
    let stopped_at = registry_row(&system, "a").received_at_ms;
    a.sidecar().kill();
    std::thread::sleep(Duration::from_secs(REGION_TIMEOUT + 2));
    assert_eq!(registry_row(&system, "a").received_at_ms, stopped_at);
    let moved = session(&system, &unique("near-a"), "u3", FRANKFURT);
    assert_eq!(region_of(&moved), "b", "{moved}");
    let again = session(&system, &pinned, "u4", WASHINGTON);
    assert_eq!(
        (region_of(&again), &again["placement"]),
        ("a", &json!("pinned"))
    );

    // Back: a takes rooms again.
    a.sidecar().restart();
    wait_region(&system, "a", |r| r.received_at_ms > stopped_at);
    let back_room = unique("near-a");
    let back = session(&system, &back_room, "u5", FRANKFURT);
    assert_eq!(region_of(&back), "a", "{back}");

    // Drain a while a participant is in its room: no new rooms there, the meeting goes on,
    // and the sidecar leaves once the room is gone.
    let participant = join(&first);
    wait_region(&system, "a", |r| r.rooms >= 1);
    a.sidecar().terminate();
    wait_region(&system, "a", |r| r.draining);
    let drained = session(&system, &unique("near-a"), "u6", FRANKFURT);
    assert_eq!(region_of(&drained), "b", "{drained}");
    let still = session(&system, &pinned, "u7", FRANKFURT);
    assert_eq!(region_of(&still), "a");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        a.sidecar().wait_exit(Duration::from_millis(10)),
        None,
        "left while a room ran"
    );
    let (status, body) = system
        .target
        .call("/auth/room/endRoom", &json!({"room_id": pinned}));
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    // LiveKit has no room left, but u5's session was placed in a and u5 holds a token for it
    // without having connected yet: the region stays until that session ends too.
    assert_eq!(
        a.sidecar().wait_exit(Duration::from_secs(4)),
        None,
        "left while a session placed there still ran"
    );
    let (status, body) = system
        .target
        .call("/auth/room/endRoom", &json!({"room_id": back_room}));
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    assert_eq!(
        a.sidecar().wait_exit(Duration::from_secs(60)),
        Some(0),
        "{:#?}",
        a.sidecar().log
    );
    assert!(
        registry_row(&system, "a").left,
        "the drained region did not leave"
    );
    drop(participant);
    let after = session(&system, &unique("near-a"), "u8", FRANKFURT);
    assert_eq!(region_of(&after), "b");
}

/// The running rooms as `getActiveRoomsInfo` lists them: room id to participant identities.
fn active_rooms(system: &System) -> (Value, std::collections::HashMap<String, Vec<String>>) {
    let (status, body) = system
        .target
        .call("/auth/room/getActiveRoomsInfo", &json!({}));
    assert_eq!(status, 200, "{body}");
    let rooms = body["rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("no rooms: {body}"))
        .iter()
        .map(|room| {
            let identities = room["participants_info"]
                .as_array()
                .expect("participants_info")
                .iter()
                .map(|p| p["identity"].as_str().expect("identity").to_owned())
                .collect();
            (
                room["room_info"]["room_id"]
                    .as_str()
                    .expect("room_id")
                    .to_owned(),
                identities,
            )
        })
        .collect();
    (body, rooms)
}

#[test]
fn a_silent_media_server_leaves_out_only_its_own_rooms_participants() {
    let (system, mut a, _b) = two_regions("regions-listing");
    let in_a = unique("list-a");
    let in_b = unique("list-b");
    let first_a = session(&system, &in_a, "ua", FRANKFURT);
    let first_b = session(&system, &in_b, "ub", WASHINGTON);
    assert_eq!((region_of(&first_a), region_of(&first_b)), ("a", "b"));
    let _participant_a = join(&first_a);
    let _participant_b = join(&first_b);
    let (body, rooms) = active_rooms(&system);
    assert_eq!(body["msg"], "success", "{body}");
    assert_eq!(rooms[&in_a], ["ua"], "{body}");
    assert_eq!(rooms[&in_b], ["ub"], "{body}");

    // Region a's LiveKit dies: both rooms are still listed, b's with its participant; only a's
    // participants are left out, and the answer says so.
    a.livekit.kill();
    let (body, rooms) = active_rooms(&system);
    assert_eq!(body["status"], true, "{body}");
    assert_eq!(body["status_code"], "SUCCESS", "{body}");
    assert_eq!(rooms[&in_b], ["ub"], "{body}");
    assert!(rooms[&in_a].is_empty(), "{body}");
    let msg = body["msg"].as_str().expect("msg");
    assert!(
        msg.starts_with("success;") && msg.contains("left out of 1 room"),
        "{msg}"
    );
    // Asked about that one room, the edge says its media server did not answer.
    let (_, one) = system
        .target
        .call("/auth/room/getActiveRoomInfo", &json!({"room_id": in_a}));
    assert_eq!(one["status"], false, "{one}");
    // And the component's warning reaches the host's log (the edge's tracing has a subscriber).
    let log = system.stderr();
    assert!(
        log.contains("listing participants failed") && log.contains(in_a.as_str()),
        "no warning in the host's log:\n{log}"
    );
}

/// A media server that takes connections and never answers (a real LiveKit stopped with
/// SIGSTOP) costs an end of its room the LiveKit call's timeout, not the whole request: the
/// session ends at once and the LiveKit delete is kept for the region's heartbeats to retry.
#[test]
fn a_hung_media_server_does_not_hold_up_ending_its_room() {
    let (system, a, _b) = two_regions("regions-hung");
    let room = unique("hung");
    let first = session(&system, &room, "ua", FRANKFURT);
    assert_eq!(region_of(&first), "a");
    a.livekit.pause();
    let (status, ended) = system
        .target
        .call("/auth/room/endRoom", &json!({ "room_id": room }));
    a.livekit.resume();
    assert_eq!((status, &ended["status"]), (200, &json!(true)), "{ended}");
    let (_, active) = system
        .target
        .call("/auth/room/isRoomActive", &json!({ "room_id": room }));
    assert_eq!(active["is_active"], false, "{active}");
    let db = rusqlite::Connection::open(system.data_dir.join("edge.sqlite")).expect("edge db");
    let kept: i64 = db
        .query_row(
            "SELECT count(*) FROM livekit_deletions WHERE region_id = 'a' AND livekit_room LIKE ?",
            [format!("{room}.%")],
            |row| row.get(0),
        )
        .expect("livekit_deletions");
    assert_eq!(kept, 1, "the unanswered delete is kept for a retry");
}

#[test]
fn forged_heartbeats_and_webhooks_change_nothing() {
    let (system, mut a, b) = two_regions("regions-forged");
    let before = registry_row(&system, "a");
    let forged = json!({"region_id": "a", "sidecar_id": "evil", "sent_at_ms": i64::MAX / 2,
        "livekit_ok": true, "load": {"rooms": 0, "participants": 0},
        "capacity": {"max_rooms": 0, "max_participants": 0}, "draining": true});
    let body = serde_json::to_vec(&forged).expect("json");
    for (key, secret) in [
        ("a", "not-the-secret-not-the-secret-xxxx".to_string()),
        ("a", b.secret.clone()),
        ("plugnmeet", system.target.api_secret.clone()),
    ] {
        let signature = sign(&secret, &body);
        let reply = system.target.post(
            "/internal/sidecar/heartbeat",
            &body,
            &[("API-KEY", key), ("HASH-SIGNATURE", &signature)],
        );
        assert_eq!(reply.status, 401, "{key}: {}", reply.text());
    }
    // Signed with the region's own secret, but from far outside the clock window, including a
    // time whose difference from now overflows an i64.
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms");
    for sent_at_ms in [i64::MIN, i64::MIN + now_ms, i64::MAX, now_ms - 3_600_000] {
        let mut stale = forged.clone();
        stale["sent_at_ms"] = json!(sent_at_ms);
        let body = serde_json::to_vec(&stale).expect("json");
        let reply = system.target.post(
            "/internal/sidecar/heartbeat",
            &body,
            &[
                ("API-KEY", "a"),
                ("HASH-SIGNATURE", &sign(&a.secret, &body)),
            ],
        );
        assert_eq!(
            reply.status,
            400,
            "sent_at_ms {sent_at_ms}: {}",
            reply.text()
        );
    }
    let after = registry_row(&system, "a");
    assert!(!after.draining && after.received_at_ms >= before.received_at_ms);

    // A webhook LiveKit did not sign is refused by the sidecar and never reaches the edge.
    let room = unique("forged");
    let event = json!({"id": unique("EV"), "event": "room_finished",
        "room": {"sid": "RM_x", "name": room}, "createdAt": "1"});
    let reply = ureq::post(&format!("{}/webhook", a.sidecar().base))
        .header("Authorization", "not-a-jwt")
        .header("Content-Type", "application/webhook+json")
        .send(serde_json::to_vec(&event).expect("json").as_slice());
    let status = match reply {
        Ok(r) => r.status().as_u16(),
        Err(ureq::Error::StatusCode(code)) => code,
        Err(e) => panic!("webhook post: {e}"),
    };
    assert_eq!(status, 401);
    let metrics = a.sidecar().metrics();
    assert!(metrics.contains("webhooks_rejected"), "{metrics}");
}

#[test]
fn webhooks_reach_the_edge_once_and_in_order_through_outages() {
    let (mut system, mut a, _b) = two_regions("regions-relay");
    let room = unique("relay");
    let alice_session = session(&system, &room, "alice", FRANKFURT);
    assert_eq!(region_of(&alice_session), "a");
    let alice = join(&alice_session);
    wait_room(&system, &room, |(running, joined, status)| {
        *running == 1 && *joined == 1 && status == "active"
    });
    // The edge's room info is what LiveKit sees, in the room's own region.
    let (status, info) = system
        .target
        .call("/auth/room/getActiveRoomInfo", &json!({"room_id": room}));
    assert_eq!(status, 200, "{info}");
    let identities: Vec<&str> = info["room"]["participants_info"]
        .as_array()
        .expect("participants")
        .iter()
        .filter_map(|p| p["identity"].as_str())
        .collect();
    assert_eq!(identities, ["alice"], "{info}");
    assert_eq!(
        info["room"]["room_info"]["joined_participants"], "1",
        "{info}"
    );

    // The edge goes away; bob joins and alice leaves meanwhile; the sidecar is SIGKILLed with
    // those events in its outbox and comes back.
    let bob_session = session(&system, &room, "bob", FRANKFURT);
    assert_eq!(region_of(&bob_session), "a");
    system.stop(Duration::from_secs(20));
    let bob = join(&bob_session);
    assert!(alice.leave(Duration::from_secs(20)).is_some());
    let deadline = Instant::now() + Duration::from_secs(30);
    while outbox_depth(&a.sidecar().metrics()) < 2 {
        assert!(Instant::now() < deadline, "{}", a.sidecar().metrics());
        std::thread::sleep(Duration::from_millis(200));
    }
    a.sidecar().kill();
    a.sidecar().restart();
    std::thread::sleep(Duration::from_secs(2));
    system.restart();

    // Everything arrives, once: two people joined, and when bob leaves the room empties and
    // LiveKit finishes it, which ends the session.
    wait_room(&system, &room, |(_, joined, _)| *joined == 2);
    assert!(bob.leave(Duration::from_secs(20)).is_some());
    wait_room(&system, &room, |(running, _, status)| {
        *running == 0 && status == "ended"
    });
    let (_, joined, _) = room_row(&system, &room);
    assert_eq!(joined, 2, "an event was applied twice or lost");
    let (status, past) = system.target.call(
        "/auth/room/fetchPastRooms",
        &json!({"room_ids": [room], "limit": 10}),
    );
    assert_eq!(status, 200, "{past}");
    assert_eq!(
        past["result"]["rooms_list"][0]["joined_participants"], "2",
        "{past}"
    );
    let db = rusqlite::Connection::open(system.data_dir.join("edge.sqlite")).expect("db");
    let present: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM room_participants p JOIN rooms r ON r.sid = p.room_sid \
             WHERE r.room_id = ? AND p.left_at IS NULL",
            [&room],
            |row| row.get(0),
        )
        .expect("participants");
    assert_eq!(present, 0);
}

/// A region where no sidecar runs (as with LiveKit Cloud): its LiveKit posts its webhooks
/// straight to the edge (`"webhooks": "direct"`). The region takes rooms without heartbeats; a
/// real participant's join makes the session active and is counted once; when they leave,
/// LiveKit closes the room and the session ends. Webhooks not signed by the region's LiveKit,
/// or for a region that does not take them, change nothing.
#[test]
fn a_region_without_a_sidecar_hears_livekit_directly() {
    let planned = support::regions::PlannedLiveKit::new("cloud");
    let region = format!(
        "[[regions]]\nid = \"cloud\"\nname = \"Cloud\"\nlat = {}\nlon = {}\nlivekit_url = \"{}\"\n\
         api_key = \"{}\"\napi_secret = \"{}\"\nwebhooks = \"direct\"\n",
        FRANKFURT.0, FRANKFURT.1, planned.ws_url, planned.key, planned.secret
    );
    let system = System::start("direct-webhooks", &region);
    let (key, secret) = (planned.key.clone(), planned.secret.clone());
    let livekit = planned.start(&format!("{}/webhook/cloud", system.target.base));

    let room = unique("direct");
    let first = session(&system, &room, "u1", FRANKFURT);
    assert_eq!(region_of(&first), "cloud", "{first}");
    assert_eq!(room_row(&system, &room), (1, 0, "created".to_owned()));
    let participant = join(&first);
    // LiveKit's room_started and participant_joined, posted to the edge: active, one joined
    // (LiveKit's count only: the edge did not count the session call too).
    wait_room(&system, &room, |row| row.2 == "active" && row.1 == 1);
    // A second session call of the same user changes no count either.
    let again = system
        .target
        .session(&system.target.join_token(&room, "u1", false, false), &[]);
    assert_eq!(again.status, 200, "{}", again.text());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(room_row(&system, &room).1, 1);

    // Refused, changing nothing: unsigned, signed with another secret, for another region, for
    // a region that does not take them, and not a POST.
    let body = serde_json::to_vec(&json!({"event": "room_finished", "id": "EV_forged",
        "room": {"name": format!("{room}.x"), "sid": "RM_x"}}))
    .unwrap();
    let post = |path: &str, authorization: Option<&str>| {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = authorization {
            headers.push(("Authorization", a));
        }
        system.target.post(path, &body, &headers).status
    };
    let now = support::now_secs();
    let signed_with = |secret: &str| {
        use base64::Engine;
        use sha2::Digest;
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&body));
        support::hs256(
            secret,
            &json!({"iss": key, "nbf": now, "exp": now + 300, "sha256": hash}),
        )
    };
    assert_eq!(post("/webhook/cloud", None), 403);
    assert_eq!(post("/webhook/cloud", Some("garbage")), 403);
    assert_eq!(
        post(
            "/webhook/cloud",
            Some(&signed_with("another-secret-0123456789abcdef"))
        ),
        403
    );
    assert_eq!(post("/webhook/elsewhere", Some(&signed_with(&secret))), 404);
    assert_eq!(system.target.request("GET", "/webhook/cloud").status, 405);
    // Signed right, but about no room the edge runs: taken, and nothing changes.
    assert_eq!(post("/webhook/cloud", Some(&signed_with(&secret))), 200);
    assert_eq!(room_row(&system, &room), (1, 1, "active".to_owned()));

    // The participant leaves: LiveKit closes the empty room, and its room_finished ends the
    // session.
    assert_eq!(participant.leave(Duration::from_secs(20)), Some(0));
    wait_room(&system, &room, |row| row.0 == 0 && row.2 == "ended");
    let (_, past) = system
        .target
        .call("/auth/room/fetchPastRooms", &json!({"room_ids": [room]}));
    assert_eq!(
        past["result"]["rooms_list"][0]["joined_participants"], "1",
        "{past}"
    );
    drop(livekit);
}
