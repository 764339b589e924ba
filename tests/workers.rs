//! What only the Worker does: place a room by Cloudflare's `request.cf` location (set here
//! through Miniflare, as Cloudflare's edge sets it), ahead of any location header, and never by a
//! client-set `cf-*` header; answer a redirect from LiveKit as the failure it is, as Spin does;
//! log the edge's warnings through `console.error`. The rest of the Worker's behaviour is the
//! shared black-box suite in `tests/api.rs`.

mod support;

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

/// A test double of a LiveKit server behind a redirect (no real LiveKit answers redirects):
/// every request to `/twirp/...` gets a 307 to `/followed/...`, which would answer a valid empty
/// participant list. Returns its port and the paths it was asked for.
fn redirecting_livekit() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
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
            seen.lock().expect("lock").push(path.clone());
            let answer = match path.strip_prefix("/twirp/") {
                Some(rest) => format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: /followed/{rest}\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                ),
                None => "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                         Content-Length: 19\r\nConnection: close\r\n\r\n{\"participants\":[]}"
                    .to_owned(),
            };
            let _ = reader.get_mut().write_all(answer.as_bytes());
        }
    });
    (port, asked)
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
    let asked = asked.lock().expect("lock").clone();
    assert!(
        asked.iter().any(|p| p.starts_with("/twirp/"))
            && !asked.iter().any(|p| p.starts_with("/followed/")),
        "{asked:?}"
    );
    // The edge's warning reached workerd's log through console.error.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut log = String::new();
    while !log.contains("listing participants failed") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        log.push_str(&worker.log());
    }
    assert!(
        log.contains("listing participants failed"),
        "no warning in workerd's log:\n{log}"
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
/// queries, and a larger one is refused whole with the limit before any query runs.
#[test]
fn sidecar_batches_are_held_to_the_configured_size() {
    let sidecar_secret = "workers-test-sidecar-secret-0123456789ab";
    let mut bindings = bindings();
    bindings["sidecar_secrets"] = json!(json!({ "eu": sidecar_secret }).to_string());
    bindings["max_events_per_batch"] = json!("2");
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
