//! What only the Worker does: place a room by Cloudflare's `request.cf` location (set here
//! through Miniflare, as Cloudflare's edge sets it), ahead of any location header. The rest of
//! the Worker's behaviour is the shared black-box suite in `tests/api.rs`.

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
