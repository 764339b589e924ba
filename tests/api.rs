//! The black-box suite of the edge API: plugNmeet's `/auth/*` room calls, the browser session
//! endpoint and `/healthCheck`, over HTTP against the edge-api component in the local host with
//! a real LiveKit server. One system is started for the whole suite; every case only uses its
//! [`Target`] and makes its own rooms, so the cases run in parallel and can run against any
//! edge build (the Worker later).

mod support;

use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{json, Value};
use support::worker::WorkerEdge;
use support::{hs256, jwt_claims, now_secs, unique, xml_field, Participant, System, Target};

/// A case of the suite.
type Case = fn(&Suite);

/// What the cases get: the edge, plus LiveKit's address for cross-checks.
struct Suite {
    target: Target,
    livekit_ws: String,
    livekit_http: String,
    livekit_key: String,
    livekit_secret: String,
}

/// Regions on top of the local one, all served by the one local LiveKit, at different places
/// so placement can be observed.
const REGIONS: &str = r#"
[[regions]]
id = "eu"
name = "Frankfurt"
lat = 50.11
lon = 8.68

[[regions]]
id = "ap"
name = "Singapore"
lat = 1.35
lon = 103.82
"#;

/// The suite against the edge at `base`, with `system`'s credentials and LiveKit.
fn suite(system: &System, base: String) -> Suite {
    Suite {
        target: Target::new(
            base,
            system.target.api_key.clone(),
            system.target.api_secret.clone(),
        ),
        livekit_ws: system.livekit_ws.clone(),
        livekit_http: system.livekit_http.clone(),
        livekit_key: system.livekit_key.clone(),
        livekit_secret: system.livekit_secret.clone(),
    }
}

/// The Worker's vars and secrets: the same configuration `edgemeet up` gives the Spin
/// component (the local region first, then [`REGIONS`], all on the system's LiveKit).
fn worker_bindings(system: &System) -> Value {
    let region = |id: &str, name: &str, lat: f64, lon: f64| {
        json!({"id": id, "name": name, "lat": lat, "lon": lon,
               "livekit_url": system.livekit_ws, "api_key": system.livekit_key})
    };
    let regions = json!([
        region("local", "This machine", 0.0, 0.0),
        region("eu", "Frankfurt", 50.11, 8.68),
        region("ap", "Singapore", 1.35, 103.82),
    ]);
    let secrets = json!({"local": system.livekit_secret, "eu": system.livekit_secret,
                         "ap": system.livekit_secret});
    json!({
        "api_key": system.target.api_key,
        "api_secret": system.target.api_secret,
        "regions": regions.to_string(),
        "livekit_secrets": secrets.to_string(),
        "geo_latitude_header": "x-test-latitude",
        "geo_longitude_header": "x-test-longitude",
    })
}

fn main() {
    let args = Arguments::from_args();
    let cases: Vec<(&str, Case)> = vec![
        (
            "health_check_answers_any_method",
            health_check_answers_any_method,
        ),
        ("auth_missing_api_key", auth_missing_api_key),
        ("auth_wrong_api_key", auth_wrong_api_key),
        ("auth_missing_signature", auth_missing_signature),
        ("auth_bad_signature", auth_bad_signature),
        (
            "auth_signature_is_over_raw_bytes",
            auth_signature_is_over_raw_bytes,
        ),
        ("auth_failure_in_protobuf", auth_failure_in_protobuf),
        (
            "auth_join_token_does_not_sign_requests",
            auth_join_token_does_not_sign_requests,
        ),
        ("routing_method_and_path", routing_method_and_path),
        (
            "create_returns_plugnmeet_shape",
            create_returns_plugnmeet_shape,
        ),
        ("create_is_idempotent", create_is_idempotent),
        (
            "create_is_idempotent_under_concurrency",
            create_is_idempotent_under_concurrency,
        ),
        (
            "create_accepts_camel_case_and_nulls",
            create_accepts_camel_case_and_nulls,
        ),
        ("create_refuses_bad_room_ids", create_refuses_bad_room_ids),
        (
            "create_refuses_malformed_bodies",
            create_refuses_malformed_bodies,
        ),
        (
            "create_refuses_server_owned_fields",
            create_refuses_server_owned_fields,
        ),
        ("create_keeps_unicode", create_keeps_unicode),
        ("create_refuses_oversize_body", create_refuses_oversize_body),
        ("create_checks_region_hint", create_checks_region_hint),
        ("join_token_claims", join_token_claims),
        ("join_token_refusals", join_token_refusals),
        ("join_token_auto_gen_user_id", join_token_auto_gen_user_id),
        ("is_room_active_states", is_room_active_states),
        (
            "active_room_info_for_unknown_room",
            active_room_info_for_unknown_room,
        ),
        (
            "active_rooms_info_lists_running_rooms",
            active_rooms_info_lists_running_rooms,
        ),
        ("end_room_semantics", end_room_semantics),
        ("past_rooms_paging_and_order", past_rooms_paging_and_order),
        ("session_refusals", session_refusals),
        ("session_pins_nearest_region", session_pins_nearest_region),
        ("session_region_hint_wins", session_region_hint_wins),
        ("session_livekit_grants", session_livekit_grants),
        ("end_room_from_the_page", end_room_from_the_page),
        ("recording_without_recorders", recording_without_recorders),
        ("waiting_room", waiting_room),
        (
            "waiting_list_counts_past_what_it_lists",
            waiting_list_counts_past_what_it_lists,
        ),
        ("join_token_renewal", join_token_renewal),
        ("encrypted_room", encrypted_room),
        ("join_page_is_served", join_page_is_served),
        ("cms_plugins_embed_the_page", cms_plugins_embed_the_page),
        (
            "real_participant_joins_and_is_ended",
            real_participant_joins_and_is_ended,
        ),
        (
            "moderator_mutes_removes_and_blocks",
            moderator_mutes_removes_and_blocks,
        ),
        (
            "moderator_locks_reach_livekit",
            moderator_locks_reach_livekit,
        ),
        ("hands_go_up_and_down", hands_go_up_and_down),
        (
            "backend_broadcasts_to_the_room",
            backend_broadcasts_to_the_room,
        ),
        (
            "max_participants_reaches_livekit",
            max_participants_reaches_livekit,
        ),
        (
            "publish_sources_reach_livekit",
            publish_sources_reach_livekit,
        ),
        (
            "plugnmeet_python_sdk_unchanged",
            plugnmeet_python_sdk_unchanged,
        ),
        ("bbb_client_unchanged", bbb_client_unchanged),
        ("bbb_refusals_and_raw_answers", bbb_refusals_and_raw_answers),
    ];
    // Start the edges only if some case will run (so `--list` stays cheap).
    let system = (!args.list).then(|| System::start("api", REGIONS));
    let worker = system
        .as_ref()
        .map(|s| WorkerEdge::start(&worker_bindings(s)));
    let suites: Vec<(&str, Option<Arc<Suite>>)> = vec![
        (
            "spin",
            system
                .as_ref()
                .map(|s| Arc::new(suite(s, s.target.base.clone()))),
        ),
        (
            "workers",
            system
                .as_ref()
                .zip(worker.as_ref())
                .map(|(s, w)| Arc::new(suite(s, w.base.clone()))),
        ),
    ];
    let mut trials = Vec::new();
    for (target, suite) in suites {
        for (name, case) in &cases {
            let suite = suite.clone();
            let case = *case;
            trials.push(Trial::test(format!("{target}/{name}"), move || {
                let suite = suite.ok_or_else(|| Failed::from("no edge"))?;
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&suite)))
                    .map_err(|e| Failed::from(panic_message(&e)))
            }));
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    if conclusion.has_failed() {
        if let Some(system) = &system {
            eprintln!("--- edgemeet up stderr ---\n{}", system.stderr());
        }
        if let Some(worker) = &worker {
            eprintln!("--- workerd (Miniflare) log ---\n{}", worker.log());
        }
    }
    drop(worker);
    drop(system);
    conclusion.exit();
}

fn panic_message(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".into())
}

/// A 401 with plugNmeet's failed envelope and exactly this message.
fn assert_auth_refused(r: &support::Reply, code: &str, msg: &str) {
    assert_eq!(r.status, 401, "{}", r.text());
    let j = r.json();
    assert_common(&j, false, code);
    assert_eq!(j["msg"], msg);
}

fn assert_common(json: &Value, status: bool, code: &str) {
    assert_eq!(json["status"], status, "{json}");
    assert_eq!(json["status_code"], code, "{json}");
    assert!(json["msg"].is_string(), "{json}");
}

// ---------------------------------------------------------------- health and auth

fn health_check_answers_any_method(s: &Suite) {
    for method in ["GET", "PUT", "DELETE"] {
        let r = s.target.request(method, "/healthCheck");
        assert_eq!((r.status, r.text().as_str()), (200, "Healthy"), "{method}");
    }
    let r = s.target.post("/healthCheck", b"", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "Healthy"));
}

fn auth_missing_api_key(s: &Suite) {
    let body = br#"{"room_id":"x"}"#;
    let sig = support::sign(&s.target.api_secret, body);
    let r = s
        .target
        .post("/auth/room/isRoomActive", body, &[("HASH-SIGNATURE", &sig)]);
    assert_auth_refused(&r, "MISSING_REQUIRED_PARAMETER", "Missing API-KEY header.");
}

fn auth_wrong_api_key(s: &Suite) {
    let body = br#"{"room_id":"x"}"#;
    let sig = support::sign(&s.target.api_secret, body);
    let r = s.target.post(
        "/auth/room/isRoomActive",
        body,
        &[("API-KEY", "plugnmeeT"), ("HASH-SIGNATURE", &sig)],
    );
    assert_auth_refused(&r, "INVALID_API_KEY", "Invalid API key provided.");
}

fn auth_missing_signature(s: &Suite) {
    let r = s.target.post(
        "/auth/room/isRoomActive",
        br#"{"room_id":"x"}"#,
        &[("API-KEY", "plugnmeet")],
    );
    assert_auth_refused(
        &r,
        "MISSING_REQUIRED_PARAMETER",
        "Missing HASH-SIGNATURE header.",
    );
}

fn auth_bad_signature(s: &Suite) {
    let body = br#"{"room_id":"x"}"#;
    for sig in [
        support::sign("some-other-secret-some-other-secret", body),
        support::sign(&s.target.api_secret, br#"{"room_id":"y"}"#),
        "not-hex".to_string(),
        "00".repeat(32),
    ] {
        let r = s.target.post(
            "/auth/room/isRoomActive",
            body,
            &[("API-KEY", "plugnmeet"), ("HASH-SIGNATURE", &sig)],
        );
        assert_auth_refused(
            &r,
            "INVALID_TOKEN_OR_SIGNATURE",
            "Failed to verify provided authentication details.",
        );
        // Nothing about the secret or the expected signature leaks.
        assert!(!r.text().contains(&s.target.api_secret));
    }
}

fn auth_signature_is_over_raw_bytes(s: &Suite) {
    // Python's json.dumps spacing, and an extra newline: whatever bytes were signed are verified.
    let room = unique("raw");
    let body = format!("{{\"room_id\": \"{room}\",  \"metadata\": {{\"room_title\": \"Raw\"}}}}\n");
    let r = s.target.call_bytes("/auth/room/create", body.as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], true, "{}", r.text());
    // Uppercase hex is the same signature.
    let body = format!("{{\"room_id\":\"{room}\"}}");
    let sig = support::sign(&s.target.api_secret, body.as_bytes()).to_uppercase();
    let r = s.target.post(
        "/auth/room/isRoomActive",
        body.as_bytes(),
        &[("API-KEY", "plugnmeet"), ("HASH-SIGNATURE", &sig)],
    );
    assert_eq!(r.json()["is_active"], true);
}

fn auth_failure_in_protobuf(s: &Suite) {
    let r = s.target.post(
        "/auth/room/isRoomActive",
        b"\x0a\x01x",
        &[
            ("API-KEY", "wrong"),
            ("Content-Type", "application/protobuf"),
        ],
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.content_type(), "application/protobuf");
    // CommonResponse{status=false, msg=2, status_code=3 (INVALID_API_KEY = 6)}
    let msg = b"Invalid API key provided.";
    let mut expected = vec![0x12, msg.len() as u8];
    expected.extend_from_slice(msg);
    expected.extend_from_slice(&[0x18, 6]);
    assert_eq!(r.body, expected);
}

/// A participant's join token is HS256 under the API secret, so its signature is a valid
/// HASH-SIGNATURE of `<header>.<payload>`. No content type may make the edge check the signature
/// against anything but the body (plugNmeet signs `Room-Id` for multipart uploads): that would
/// let every participant sign any request, e.g. ask for an admin token to any room.
fn auth_join_token_does_not_sign_requests(s: &Suite) {
    use base64::Engine;
    let room = unique("forged");
    s.target.create_room(&room, json!({}));
    let token = s.target.join_token(&room, "mallory", false, false);
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap();
    let hex: String = signature.iter().map(|b| format!("{b:02x}")).collect();
    let body = format!(
        r#"{{"room_id":"{room}","user_info":{{"name":"M","user_id":"mallory2","is_admin":true}}}}"#
    );
    let r = s.target.post(
        "/auth/room/getJoinToken",
        body.as_bytes(),
        &[
            ("API-KEY", "plugnmeet"),
            ("HASH-SIGNATURE", &hex),
            ("Content-Type", "multipart/form-data; boundary=x"),
            ("Room-Id", signed),
        ],
    );
    assert_auth_refused(
        &r,
        "INVALID_TOKEN_OR_SIGNATURE",
        "Failed to verify provided authentication details.",
    );
    // The token's own header and payload, sent as the body, carry a valid signature: no route
    // answers them, least of all getActiveRoomsInfo, which reads no field of its body.
    for path in [
        "/auth/room/getActiveRoomsInfo",
        "/auth/room/getActiveRoomInfo",
        "/auth/room/isRoomActive",
        "/auth/room/fetchPastRooms",
        "/auth/room/create",
        "/auth/room/getJoinToken",
        "/auth/room/endRoom",
    ] {
        let r = s.target.post(
            path,
            signed.as_bytes(),
            &[("API-KEY", "plugnmeet"), ("HASH-SIGNATURE", &hex)],
        );
        let text = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 200, "{path}: {text}");
        let j: Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_common(&j, false, "INVALID_PARAMETERS");
        assert!(!text.contains(&room), "{path} named the room: {text}");
    }
    let (_, j) = s
        .target
        .call("/auth/room/isRoomActive", &json!({"room_id": room}));
    assert_common(&j, true, "SUCCESS");
}

fn routing_method_and_path(s: &Suite) {
    assert_eq!(s.target.request("GET", "/auth/room/create").status, 405);
    assert_eq!(s.target.request("GET", "/api/session").status, 405);
    assert_eq!(s.target.request("GET", "/nope").status, 404);
    let r = s.target.call_bytes("/auth/room/doesNotExist", b"{}");
    assert_eq!(r.status, 404);
}

// ---------------------------------------------------------------- room/create

fn create_returns_plugnmeet_shape(s: &Suite) {
    let room = unique("shape");
    let (status, j) = s.target.call(
        "/auth/room/create",
        &json!({"room_id": room, "max_participants": 25, "empty_timeout": 60, "metadata": {
            "room_title": "Weekly sync", "welcome_message": "hi",
            "room_features": {"allow_webcams": false, "recording_features": {"is_allow": false}}}}),
    );
    assert_eq!(status, 200);
    assert_common(&j, true, "SUCCESS");
    let info = &j["room_info"];
    assert_eq!(info["room_id"], room.as_str());
    assert_eq!(info["room_title"], "Weekly sync");
    assert_eq!(info["is_running"], 1);
    assert_eq!(info["is_recording"], 0);
    assert_eq!(info["joined_participants"], "0", "int64 as a string");
    assert!(
        info["creation_time"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 1_700_000_000
    );
    assert_eq!(info["parent_room_id"], "");
    let sid = info["sid"].as_str().unwrap();
    assert_eq!(sid.len(), 36, "a UUID");
    let meta: Value = serde_json::from_str(info["metadata"].as_str().unwrap()).unwrap();
    assert_eq!(meta["room_title"], "Weekly sync");
    assert_eq!(meta["welcome_message"], "hi");
    // Explicit false survives; absent gets the default (upstream loses the false).
    assert_eq!(meta["room_features"]["allow_webcams"], false);
    assert_eq!(meta["room_features"]["allow_screen_share"], true);
    assert_eq!(
        meta["room_features"]["recording_features"]["is_allow"],
        false
    );
    assert_eq!(
        meta["room_features"]["recording_features"]["is_allow_cloud"],
        true
    );
    assert!(meta["metadata_id"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        meta.get("logout_url").is_none(),
        "unset optional fields are omitted"
    );
    assert_eq!(meta["is_recording"], false, "zero values are emitted");
}

fn create_is_idempotent(s: &Suite) {
    let room = unique("idem");
    let first = s.target.create_room(&room, json!({}));
    let second = s
        .target
        .create_room(&room, json!({"metadata": {"room_title": "Another title"}}));
    assert_eq!(first["sid"], second["sid"]);
    assert_eq!(
        second["room_title"], first["room_title"],
        "the running session is unchanged"
    );
}

fn create_is_idempotent_under_concurrency(s: &Suite) {
    let room = unique("race");
    let sids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    s.target.create_room(&room, json!({}))["sid"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(sids.iter().all(|sid| sid == &sids[0]), "{sids:?}");
}

fn create_accepts_camel_case_and_nulls(s: &Suite) {
    let room = unique("camel");
    let (_, j) = s.target.call(
        "/auth/room/create",
        &json!({"roomId": room, "maxParticipants": "7", "emptyTimeout": null, "from_": null,
            "metadata": {"roomTitle": "Camel", "welcomeMessage": null, "logoutUrl": "https://example.com/bye",
                "roomFeatures": {"allowWebcams": false, "chatFeatures": {"allowChat": false}},
                "defaultLockSettings": {"lockMicrophone": true}, "unknownField": 1}}),
    );
    assert_common(&j, true, "SUCCESS");
    let meta: Value = serde_json::from_str(j["room_info"]["metadata"].as_str().unwrap()).unwrap();
    assert_eq!(meta["room_title"], "Camel");
    assert_eq!(meta["logout_url"], "https://example.com/bye");
    assert_eq!(meta["room_features"]["allow_webcams"], false);
    assert_eq!(meta["room_features"]["chat_features"]["allow_chat"], false);
    assert_eq!(meta["default_lock_settings"]["lock_microphone"], true);
    assert!(meta.get("unknown_field").is_none() && meta.get("welcome_message").is_none());
}

fn create_refuses_bad_room_ids(s: &Suite) {
    let long = "a".repeat(200);
    for bad in [
        "",
        "has space",
        "ünïcode",
        "../etc",
        "user_1",
        "x-FIELD_2",
        "semi;colon",
        long.as_str(),
    ] {
        let (status, j) = s.target.call(
            "/auth/room/create",
            &json!({"room_id": bad, "metadata": {"room_title": "t"}}),
        );
        assert_eq!(status, 200, "{bad}");
        assert_common(&j, false, "INVALID_PARAMETERS");
    }
    let (_, j) = s.target.call(
        "/auth/room/create",
        &json!({"room_id": 42, "metadata": {"room_title": "t"}}),
    );
    assert_common(&j, false, "INVALID_PARAMETERS");
}

fn create_refuses_malformed_bodies(s: &Suite) {
    let room = unique("malformed");
    for body in [
        "{not json".to_string(),
        "[1,2,3]".to_string(),
        "\"a string\"".to_string(),
        format!("{{\"room_id\":\"{room}\"}}"),
        format!("{{\"room_id\":\"{room}\",\"metadata\":\"not an object\"}}"),
        format!("{{\"room_id\":\"{room}\",\"metadata\":{{}}}}"),
        format!("{{\"room_id\":\"{room}\",\"max_participants\":-5,\"metadata\":{{\"room_title\":\"t\"}}}}"),
        format!("{{\"room_id\":\"{room}\",\"max_participants\":\"lots\",\"metadata\":{{\"room_title\":\"t\"}}}}"),
        format!("{{\"room_id\":\"{room}\",\"metadata\":{{\"room_title\":\"t\",\"webhook_url\":\"ftp://x\"}}}}"),
        // One field in both spellings: which one was meant is anyone's guess.
        format!("{{\"room_id\":\"{room}\",\"roomId\":\"other-{room}\",\"metadata\":{{\"room_title\":\"t\"}}}}"),
        format!("{{\"room_id\":\"{room}\",\"metadata\":{{\"room_title\":\"t\",\"roomTitle\":\"u\"}}}}"),
    ] {
        let r = s.target.call_bytes("/auth/room/create", body.as_bytes());
        assert_eq!(r.status, 200, "{body}");
        assert_common(&r.json(), false, "INVALID_PARAMETERS");
    }
    // Nothing was stored.
    let (_, j) = s
        .target
        .call("/auth/room/isRoomActive", &json!({"room_id": room}));
    assert_eq!(j["status_code"], "ROOM_NOT_FOUND", "{j}");
}

fn create_refuses_server_owned_fields(s: &Suite) {
    let room = unique("owned");
    for metadata in [
        json!({"room_title": "t", "is_recording": true}),
        json!({"room_title": "t", "started_at": 5}),
        json!({"room_title": "t", "metadata_id": "mine"}),
        json!({"room_title": "t", "room_features": {"end_to_end_encryption_features": {"encryption_key": "k"}}}),
    ] {
        let (_, j) = s.target.call(
            "/auth/room/create",
            &json!({"room_id": room, "metadata": metadata}),
        );
        assert_common(&j, false, "INVALID_PARAMETERS");
        assert!(
            j["msg"].as_str().unwrap().contains("set by the server"),
            "{j}"
        );
    }
    let (_, j) = s
        .target
        .call("/auth/room/isRoomActive", &json!({"room_id": room}));
    assert_eq!(j["is_active"], false);
}

fn create_keeps_unicode(s: &Suite) {
    let room = unique("unicode");
    let title = "Sprechstunde 🎥 日本語 «quotes» \"and\" \\ back";
    let info = s
        .target
        .create_room(&room, json!({"metadata": {"room_title": title}}));
    assert_eq!(info["room_title"], title);
    let (_, j) = s
        .target
        .call("/auth/room/getActiveRoomInfo", &json!({"room_id": room}));
    assert_eq!(j["room"]["room_info"]["room_title"], title);
}

/// `post_tolerating_early_answer` for a signed plugNmeet call.
fn post_oversize(s: &Suite, path: &str, sent: &[u8], declared: usize) -> (u16, String) {
    let signature = support::sign(&s.target.api_secret, sent);
    support::post_tolerating_early_answer(
        &s.target.base,
        path,
        &[
            ("Content-Type", "application/json"),
            ("API-KEY", &s.target.api_key),
            ("HASH-SIGNATURE", &signature),
        ],
        sent,
        declared,
    )
}

fn create_refuses_oversize_body(s: &Suite) {
    let room = unique("big");
    let body = json!({"room_id": room, "metadata": {"room_title": "t", "welcome_message": "x".repeat(300 * 1024)}});
    let bytes = serde_json::to_vec(&body).unwrap();
    let (status, answer) = post_oversize(s, "/auth/room/create", &bytes, bytes.len());
    assert_eq!(status, 413, "{answer}");
    let json: Value = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or_else(|| panic!("no JSON answer: {answer}"));
    assert_common(&json, false, "INVALID_PARAMETERS");
    let (_, j) = s
        .target
        .call("/auth/room/isRoomActive", &json!({"room_id": room}));
    assert_eq!(j["status_code"], "ROOM_NOT_FOUND");
    // A body declared far larger is refused without being waited for (never held whole): only
    // its first bytes are sent.
    let (status, answer) =
        post_oversize(s, "/auth/room/create", b"{\"room_id\":\"", 64 * 1024 * 1024);
    assert_eq!(status, 413, "an answer before the body was sent: {answer}");
}

fn create_checks_region_hint(s: &Suite) {
    let (_, j) = s.target.call(
        "/auth/room/create",
        &json!({"room_id": unique("hint"), "region": "mars", "metadata": {"room_title": "t"}}),
    );
    assert_common(&j, false, "INVALID_PARAMETERS");
    assert!(j["msg"].as_str().unwrap().contains("mars"));
}

// ---------------------------------------------------------------- room/getJoinToken

fn join_token_claims(s: &Suite) {
    let room = unique("claims");
    s.target.create_room(&room, json!({}));
    let before = now_secs();
    let token = s.target.join_token(&room, "alice", true, false);
    let c = jwt_claims(&token);
    assert_eq!(c["iss"], "plugnmeet");
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["user_id"], "alice");
    assert_eq!(c["room_id"], room.as_str());
    assert_eq!(c["name"], "User alice");
    assert_eq!(c["is_admin"], true);
    assert!(
        c.get("is_hidden").is_none(),
        "false is omitted, like Go's omitempty"
    );
    assert_eq!(c["client_type"], 1, "an integer");
    let nbf = c["nbf"].as_i64().unwrap();
    assert!((before - 2..=before + 2).contains(&nbf));
    assert_eq!(c["exp"].as_i64().unwrap() - nbf, 600);
    assert!(c.get("iat").is_none() && c.get("jti").is_none() && c.get("aud").is_none());
}

fn join_token_refusals(s: &Suite) {
    let room = unique("refuse");
    let (_, j) = s.target.call(
        "/auth/room/getJoinToken",
        &json!({"room_id": room, "user_info": {"name": "A", "user_id": "a"}}),
    );
    assert_common(&j, false, "ROOM_NOT_FOUND");
    s.target.create_room(&room, json!({}));
    for user_info in [
        json!(null),
        json!({"name": "", "user_id": "a"}),
        json!({"name": "PLUGNMEET_RECORDER_AUTH", "user_id": "a"}),
        json!({"name": "A", "user_id": ""}),
        json!({"name": "A", "user_id": "sip_1"}),
        json!({"name": "A", "user_id": "pnm_agent-1"}),
        json!({"name": "A", "user_id": "bob-native"}),
        json!({"name": "A", "user_id": "bad id"}),
        json!({"name": "A", "user_id": "a", "user_metadata": {"is_presenter": true}}),
        json!({"name": "A", "user_id": "a", "user_metadata": {"profile_pic": "javascript:alert(1)"}}),
    ] {
        let (status, j) = s.target.call(
            "/auth/room/getJoinToken",
            &json!({"room_id": room, "user_info": user_info}),
        );
        assert_eq!(status, 200);
        assert_common(&j, false, "INVALID_PARAMETERS");
        assert!(j.get("token").is_none(), "{j}");
    }
}

fn join_token_auto_gen_user_id(s: &Suite) {
    let room = unique("autogen");
    s.target.create_room(
        &room,
        json!({"metadata": {"room_features": {"auto_gen_user_id": true}}}),
    );
    let token = s.target.join_token(&room, "customer-42", false, false);
    let c = jwt_claims(&token);
    let sub = c["sub"].as_str().unwrap();
    assert_ne!(sub, "customer-42");
    assert_eq!(sub.len(), 36);
    assert_eq!(c["user_id"], sub);
}

// ---------------------------------------------------------------- status calls

fn is_room_active_states(s: &Suite) {
    let room = unique("active");
    let (_, j) = s
        .target
        .call("/auth/room/isRoomActive", &json!({"room_id": room}));
    assert_common(&j, true, "ROOM_NOT_FOUND");
    assert_eq!(j["is_active"], false);
    s.target.create_room(&room, json!({}));
    let (_, j) = s
        .target
        .call("/auth/room/isRoomActive", &json!({"room_id": room}));
    assert_common(&j, true, "SUCCESS");
    assert_eq!(j["is_active"], true);
    let (_, j) = s
        .target
        .call("/auth/room/endRoom", &json!({"room_id": room}));
    assert_common(&j, true, "SUCCESS");
    let (_, j) = s
        .target
        .call("/auth/room/isRoomActive", &json!({"roomId": room}));
    assert_common(&j, true, "ROOM_NOT_ACTIVE");
    assert_eq!(j["is_active"], false);
    let (_, j) = s
        .target
        .call("/auth/room/isRoomActive", &json!({"room_id": "bad id"}));
    assert_common(&j, false, "INVALID_PARAMETERS");
}

fn active_room_info_for_unknown_room(s: &Suite) {
    let (status, j) = s.target.call(
        "/auth/room/getActiveRoomInfo",
        &json!({"room_id": unique("ghost")}),
    );
    assert_eq!(status, 200);
    assert_common(&j, false, "ROOM_NOT_ACTIVE");
    assert!(j["room"].is_null());
}

fn active_rooms_info_lists_running_rooms(s: &Suite) {
    let a = unique("list-a");
    let b = unique("list-b");
    s.target.create_room(&a, json!({}));
    s.target.create_room(&b, json!({}));
    s.target.call("/auth/room/endRoom", &json!({"room_id": b}));
    let (_, j) = s.target.call("/auth/room/getActiveRoomsInfo", &json!({}));
    assert_common(&j, true, "SUCCESS");
    let ids: Vec<&str> = j["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_info"]["room_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&a.as_str()), "{ids:?}");
    assert!(!ids.contains(&b.as_str()), "{ids:?}");
    for room in j["rooms"].as_array().unwrap() {
        assert!(room["participants_info"].is_array());
    }
}

fn end_room_semantics(s: &Suite) {
    let (_, j) = s
        .target
        .call("/auth/room/endRoom", &json!({"room_id": unique("never")}));
    assert_common(&j, false, "ROOM_NOT_FOUND");
    let room = unique("end");
    let sid = s.target.create_room(&room, json!({}))["sid"].clone();
    let token = s.target.join_token(&room, "u1", false, false);
    let (_, j) = s
        .target
        .call("/auth/room/endRoom", &json!({"room_id": room}));
    assert_common(&j, true, "SUCCESS");
    let (_, j) = s
        .target
        .call("/auth/room/endRoom", &json!({"room_id": room}));
    assert_common(&j, true, "SUCCESS");
    // An ended room mints nothing more.
    let r = s.target.session(&token, &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["msg"], "notifications.room-not-active");
    let (_, j) = s.target.call(
        "/auth/room/getJoinToken",
        &json!({"room_id": room, "user_info": {"name": "A", "user_id": "a"}}),
    );
    assert_common(&j, false, "ROOM_NOT_FOUND");
    // A new create after the end is a new session.
    let again = s.target.create_room(&room, json!({}));
    assert_ne!(again["sid"], sid);
}

fn past_rooms_paging_and_order(s: &Suite) {
    let ids: Vec<String> = (0..3).map(|i| unique(&format!("past{i}"))).collect();
    for id in &ids {
        s.target.create_room(id, json!({}));
        s.target.call("/auth/room/endRoom", &json!({"room_id": id}));
    }
    let fetch = |extra: Value| {
        let mut body = json!({"room_ids": ids});
        support::merge(&mut body, extra);
        s.target.call("/auth/room/fetchPastRooms", &body).1
    };
    let j = fetch(json!({"limit": 2}));
    assert_common(&j, true, "SUCCESS");
    let r = &j["result"];
    assert_eq!(r["total_rooms"], "3");
    assert_eq!(r["limit"], 2);
    assert_eq!(r["order_by"], "DESC");
    let list = r["rooms_list"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["room_id"], ids[2].as_str(), "newest first");
    assert_eq!(list[1]["room_id"], ids[1].as_str());
    let first = &list[0];
    assert_eq!(first["joined_participants"], "0");
    assert!(
        first["created"].as_str().unwrap().ends_with('Z'),
        "RFC 3339: {first}"
    );
    assert!(first["ended"].as_str().unwrap().contains('T'));
    assert_eq!(first["room_sid"].as_str().unwrap().len(), 36);
    let j = fetch(json!({"from": 2, "limit": 2}));
    let list = j["result"]["rooms_list"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["room_id"], ids[0].as_str());
    let j = fetch(json!({"order_by": "ASC", "limit": "1"}));
    assert_eq!(j["result"]["rooms_list"][0]["room_id"], ids[0].as_str());
    let j = fetch(json!({"limit": 0}));
    assert_eq!(j["result"]["limit"], 20);
    let j = fetch(json!({"limit": 5000}));
    assert_eq!(j["result"]["limit"], 100);
    let j = fetch(json!({"order_by": "sideways"}));
    assert_common(&j, false, "INVALID_PARAMETERS");
    let j = fetch(json!({"room_ids": ["no-such-room-ever"]}));
    assert_common(&j, false, "NOT_FOUND");
    let j = fetch(json!({"room_ids": ["bad id"]}));
    assert_common(&j, false, "INVALID_PARAMETERS");
    // The most ids a filter may name, with paging: D1 binds at most 100 parameters a statement.
    let mut many: Vec<String> = (0..97).map(|i| format!("never-{i}")).collect();
    many.extend(ids.iter().cloned());
    let j = fetch(json!({"room_ids": many, "from": 1, "limit": 1}));
    assert_common(&j, true, "SUCCESS");
    assert_eq!(j["result"]["total_rooms"], "3");
    assert_eq!(j["result"]["rooms_list"][0]["room_id"], ids[1].as_str());
    many.push("one-too-many".into());
    let j = fetch(json!({"room_ids": many}));
    assert_common(&j, false, "INVALID_PARAMETERS");
    // The same room named twice is one room.
    let j = fetch(json!({"room_ids": [ids[0], ids[0]]}));
    assert_eq!(j["result"]["total_rooms"], "1");
}

// ---------------------------------------------------------------- /api/session

fn session_refusals(s: &Suite) {
    let r = s.target.post("/api/session", b"{}", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["msg"], "notifications.auth-header-missing");
    let r = s.target.session("garbage", &[]);
    assert_eq!(
        (r.status, r.json()["msg"].clone()),
        (401, json!("notifications.invalid-token"))
    );
    let room = unique("sess");
    s.target.create_room(&room, json!({}));
    let claims = |exp: i64, iss: &str, sub: &str| json!({"iss": iss, "sub": sub, "nbf": exp - 600, "exp": exp, "name": "A", "user_id": "a", "room_id": room, "client_type": 1});
    let expired = hs256(
        &s.target.api_secret,
        &claims(now_secs() - 120, "plugnmeet", "a"),
    );
    let r = s.target.session(&expired, &[]);
    assert_eq!(
        (r.status, r.json()["msg"].clone()),
        (401, json!("notifications.token-expired"))
    );
    // Signed with another secret, by another issuer, or for another user than it names.
    let secret = s.target.api_secret.as_str();
    for (key, iss, sub) in [
        ("not-the-secret-not-the-secret-xx", "plugnmeet", "a"),
        (secret, "someone", "a"),
        (secret, "plugnmeet", "b"),
    ] {
        let token = hs256(key, &claims(now_secs() + 600, iss, sub));
        assert_eq!(
            s.target.session(&token, &[]).json()["msg"],
            "notifications.invalid-token",
            "iss={iss} sub={sub}"
        );
    }
    // alg=none is never accepted.
    let b64 = |v: &str| base64_url(v.as_bytes());
    let none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&claims(now_secs() + 600, "plugnmeet", "a").to_string())
    );
    assert_eq!(
        s.target.session(&none, &[]).json()["msg"],
        "notifications.invalid-token"
    );
    // A valid token for a room that is not running.
    let ghost = hs256(
        &s.target.api_secret,
        &json!({"iss":"plugnmeet","sub":"a","nbf":now_secs(),"exp":now_secs()+600,"user_id":"a","room_id":unique("ghost")}),
    );
    assert_eq!(
        s.target.session(&ghost, &[]).json()["msg"],
        "notifications.room-not-active"
    );
    // A token from an earlier session of the same room id does not open the next session: it
    // was issued under that session's settings, and this session never issued it.
    let again = unique("again");
    s.target.create_room(&again, json!({}));
    let earlier = s.target.join_token(&again, "a", false, false);
    let (_, j) = s
        .target
        .call("/auth/room/endRoom", &json!({"room_id": again}));
    assert_common(&j, true, "SUCCESS");
    s.target.create_room(&again, json!({}));
    let r = s.target.session(&earlier, &[]);
    assert_eq!(
        (r.status, r.json()["msg"].clone()),
        (401, json!("notifications.invalid-token"))
    );
    let current = s.target.join_token(&again, "a", false, false);
    assert_eq!(s.target.session(&current, &[]).status, 200);
}

fn end_room_from_the_page(s: &Suite) {
    let room = unique("pageend");
    s.target.create_room(&room, json!({}));
    let user = s.target.join_token(&room, "u1", false, false);
    let moderator = s.target.join_token(&room, "m1", true, false);
    let end = |headers: &[(&str, &str)]| s.target.post("/api/endRoom", b"{}", headers);
    let r = end(&[]);
    assert_eq!(
        (r.status, r.json()["msg"].clone()),
        (401, json!("notifications.auth-header-missing"))
    );
    let r = end(&[("Authorization", "garbage")]);
    assert_eq!(r.json()["msg"], "notifications.invalid-token");
    // Not a moderator: refused, and the room goes on.
    let r = end(&[("Authorization", user.as_str())]);
    assert_eq!(r.status, 403);
    assert_common(&r.json(), false, "PERMISSION_DENIED");
    let (_, j) = s
        .target
        .call("/auth/room/isRoomActive", &json!({"room_id": room}));
    assert_eq!(j["is_active"], true, "{j}");
    assert_eq!(s.target.session(&user, &[]).status, 200);
    // The moderator ends it: no more sessions, and it is a past room.
    let r = end(&[("Authorization", moderator.as_str())]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_common(&r.json(), true, "SUCCESS");
    let (_, j) = s
        .target
        .call("/auth/room/isRoomActive", &json!({"room_id": room}));
    assert_eq!(j["is_active"], false, "{j}");
    assert_eq!(
        s.target.session(&user, &[]).json()["msg"],
        "notifications.room-not-active"
    );
    let r = end(&[("Authorization", moderator.as_str())]);
    assert_eq!(r.json()["msg"], "notifications.room-not-active");
    let (_, j) = s
        .target
        .call("/auth/room/fetchPastRooms", &json!({"room_ids": [room]}));
    assert_eq!(j["result"]["total_rooms"], "1", "{j}");
    let r = s.target.request("GET", "/api/endRoom");
    assert_eq!(r.status, 405);
    // The room id created again: the earlier session's moderator token has no rights in it.
    s.target.create_room(&room, json!({}));
    let r = end(&[("Authorization", moderator.as_str())]);
    assert_eq!(
        (r.status, r.json()["msg"].clone()),
        (401, json!("notifications.invalid-token"))
    );
    // A moderator whose latest token made them a plain user: the older moderator token is no
    // longer enough.
    let demoted = s.target.join_token(&room, "m2", true, false);
    s.target.join_token(&room, "m2", false, false);
    let r = end(&[("Authorization", demoted.as_str())]);
    assert_eq!(r.status, 403, "{}", r.text());
    let (_, j) = s
        .target
        .call("/auth/room/isRoomActive", &json!({"room_id": room}));
    assert_eq!(j["is_active"], true, "{j}");
    s.target
        .call("/auth/room/endRoom", &json!({"room_id": room}));
}

/// Recording on an edge with no recorder nodes configured (`tests/recording.rs` has real
/// ones): every call answers in its conventions, and the recording tables answer on both
/// platforms' SQL (Spin sqlite, D1).
fn recording_without_recorders(s: &Suite) {
    let room = unique("norec");
    // Asked to be recorded from its start: the platform's store keeps that (a trigger), and
    // with no recorder nothing comes of it.
    let features = json!({"recording_features": {"enable_auto_cloud_recording": true}});
    let created = s
        .target
        .create_room(&room, json!({"metadata": {"room_features": features}}));
    let metadata: Value =
        serde_json::from_str(created["metadata"].as_str().expect("metadata")).expect("json");
    assert_eq!(
        metadata["room_features"]["recording_features"]["enable_auto_cloud_recording"], true,
        "{created}"
    );
    let moderator = s.target.join_token(&room, "m1", true, false);
    let guest = s.target.join_token(&room, "u1", false, false);
    assert_eq!(s.target.session(&moderator, &[]).status, 200);
    let ask = |token: &str, body: Value| {
        let r = s.target.post(
            "/api/recording",
            body.to_string().as_bytes(),
            &[("Authorization", token)],
        );
        (r.status, r.json())
    };
    let (status, j) = ask(&moderator, json!({"task": "START_RECORDING"}));
    assert_eq!(
        (status, &j["msg"]),
        (503, &json!("notifications.no-recorder-available")),
        "{j}"
    );
    let (status, j) = ask(&moderator, json!({"task": "STOP_RTMP"}));
    assert_eq!(
        (status, &j["msg"]),
        (409, &json!("notifications.rtmp-not-running")),
        "{j}"
    );
    let (status, j) = ask(&moderator, json!({"task": "START_RTMP"}));
    assert_eq!(
        (status, &j["msg"]),
        (400, &json!("rtmpUrl required")),
        "{j}"
    );
    let (status, j) = ask(&moderator, json!({"task": "PAUSE"}));
    assert_eq!(status, 400, "{j}");
    assert_common(&j, false, "INVALID_PARAMETERS");
    let (status, j) = ask(&guest, json!({"task": "START_RECORDING"}));
    assert_eq!(status, 403, "{j}");
    assert_common(&j, false, "PERMISSION_DENIED");
    assert_eq!(s.target.request("GET", "/api/recording").status, 405);
    let (_, j) = ask(&moderator, json!({}));
    assert_common(&j, false, "INVALID_PARAMETERS");
    let (status, j) = s
        .target
        .call("/auth/room/getActiveRoomInfo", &json!({"room_id": room}));
    assert_eq!(status, 200, "{j}");
    assert_eq!(j["room"]["room_info"]["is_recording"], 0, "{j}");
    // A recorder's report that no configured node signed.
    let r = s.target.post(
        "/internal/recorder/events",
        br#"{"type":"heartbeat","node_id":"rec-1"}"#,
        &[("API-KEY", "recorder"), ("HASH-SIGNATURE", "00")],
    );
    assert_eq!(r.status, 401, "{}", r.text());
    // The catalog: plugNmeet's answers for nothing found and bad input.
    let (status, j) = s
        .target
        .call("/auth/recording/fetch", &json!({"room_ids": [room]}));
    assert_eq!(status, 200, "{j}");
    assert_common(&j, false, "NOT_FOUND");
    assert_eq!(j["msg"], "no recordings found", "{j}");
    let (_, j) = s
        .target
        .call("/auth/recording/fetch", &json!({"order_by": "sideways"}));
    assert_common(&j, false, "INVALID_PARAMETERS");
    let (_, j) = s.target.call(
        "/auth/recording/info",
        &json!({"record_id": unique("none")}),
    );
    assert_common(&j, false, "NOT_FOUND");
    assert_eq!(j["msg"], "recording not found", "{j}");
    let (_, j) = s.target.call(
        "/auth/recording/recordingInfo",
        &json!({"record_id": "a b"}),
    );
    assert_common(&j, false, "INVALID_PARAMETERS");
    let r = s.target.post("/auth/recording/fetch", b"{}", &[]);
    assert_eq!(r.status, 401, "{}", r.text());
    let (_, j) = s.target.call(
        "/auth/recording/getDownloadToken",
        &json!({"record_id": unique("none")}),
    );
    assert_common(&j, false, "NOT_FOUND");
    let (_, j) = s.target.call(
        "/auth/recording/delete",
        &json!({"record_id": unique("none")}),
    );
    assert_common(&j, false, "NOT_FOUND");
    let (_, j) = s.target.call(
        "/auth/recording/updateMetadata",
        &json!({"record_id": unique("none"), "metadata": {"title": "T"}}),
    );
    assert_common(&j, false, "NOT_FOUND");
    let (_, j) = s.target.call(
        "/auth/recording/updateMetadata",
        &json!({"record_id": unique("none"), "metadata": {"extra_data": {"k": 1}}}),
    );
    assert_common(&j, false, "INVALID_PARAMETERS");
    // The download route: plain-text refusals, as plugNmeet's.
    let r = s.target.request("GET", "/download/recording/not-a-token");
    assert_eq!(
        (r.status, r.text()),
        (401, "invalid download token".to_owned())
    );
    let r = s.target.post("/download/recording/x", b"", &[]);
    assert_eq!(r.status, 405);
    let (status, j) = s
        .target
        .call("/auth/room/endRoom", &json!({"room_id": room}));
    assert_eq!((status, &j["status"]), (200, &json!(true)), "{j}");
}

/// An end-to-end encrypted room: create makes its key (kept in the metadata, as plugNmeet does)
/// and turns off what cannot work with it; every user's session carries that key; a plain
/// room's carries none.
fn encrypted_room(s: &Suite) {
    let room = unique("e2ee");
    let create = json!({"metadata": {"room_features": {
        "end_to_end_encryption_features": {"is_enabled": true},
        "recording_features": {"is_allow_cloud": true}}}});
    let info = s.target.create_room(&room, create.clone());
    let meta: Value = serde_json::from_str(info["metadata"].as_str().unwrap()).unwrap();
    let features = &meta["room_features"];
    let key = features["end_to_end_encryption_features"]["encryption_key"]
        .as_str()
        .expect("a key")
        .to_owned();
    assert_eq!(key.len(), 32, "{key}");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
    assert_eq!(features["ingress_features"]["is_allow"], false, "{meta}");
    assert_eq!(
        features["recording_features"]["is_allow_cloud"], false,
        "{meta}"
    );
    // Created again while it runs: the same session, the same key.
    let again = s.target.create_room(&room, create);
    assert!(again["metadata"].as_str().unwrap().contains(&key));
    for (user, admin, hidden) in [
        ("chair", true, false),
        ("member", false, false),
        ("bot", false, true),
    ] {
        let r = s
            .target
            .session(&s.target.join_token(&room, user, admin, hidden), &[]);
        assert_eq!(r.json()["e2ee_key"], key.as_str(), "{user}: {}", r.text());
    }
    let other = unique("e2ee");
    let info = s.target.create_room(
        &other,
        json!({"metadata": {"room_features": {"end_to_end_encryption_features": {"is_enabled": true}}}}),
    );
    assert!(
        !info["metadata"].as_str().unwrap().contains(&key),
        "each room its own key"
    );
    let plain = unique("plain");
    s.target.create_room(&plain, json!({}));
    let r = s
        .target
        .session(&s.target.join_token(&plain, "u", false, false), &[]);
    assert!(r.json().get("e2ee_key").is_none(), "{}", r.text());
    for r in [&room, &other, &plain] {
        s.target.call("/auth/room/endRoom", &json!({"room_id": r}));
    }
}

/// `POST /api/renewToken`: a valid join token of a running session is traded for a fresh one
/// with the user's latest rights; an expired, foreign, blocked or ended one gets nothing.
fn join_token_renewal(s: &Suite) {
    let room = unique("renew");
    s.target.create_room(&room, json!({}));
    let renew = |token: &str| {
        s.target
            .post("/api/renewToken", b"{}", &[("Authorization", token)])
    };
    let moderator = s.target.join_token(&room, "m", true, false);
    let before = jwt_claims(&moderator);
    std::thread::sleep(Duration::from_millis(1100));
    let r = renew(&moderator);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_common(&r.json(), true, "SUCCESS");
    let renewed = r.json()["token"].as_str().expect("token").to_owned();
    let after = jwt_claims(&renewed);
    assert!(
        after["exp"].as_i64() > before["exp"].as_i64(),
        "{before} {after}"
    );
    for claim in [
        "sub",
        "iss",
        "user_id",
        "room_id",
        "name",
        "is_admin",
        "client_type",
    ] {
        assert_eq!(after[claim], before[claim], "{claim}");
    }
    // The renewed token is a join token like the first: a session, and a moderator's rights.
    assert_eq!(s.target.session(&renewed, &[]).json()["is_admin"], true);
    // A token getJoinToken has since replaced is not renewed (it dies at its expiry); the new
    // one, which made the moderator a plain user, renews into a plain user.
    // (A second later: tokens are stamped in whole seconds.)
    std::thread::sleep(Duration::from_millis(1100));
    let plain = s.target.join_token(&room, "m", false, false);
    let r = renew(&moderator);
    assert_eq!(
        (r.status, r.json()["msg"].clone()),
        (401, json!("notifications.token-replaced"))
    );
    let demoted = jwt_claims(renew(&plain).json()["token"].as_str().unwrap());
    assert!(demoted.get("is_admin").is_none(), "{demoted}");
    // The renewal of the replaced token is a renewal too: refused as well.
    assert_eq!(
        renew(&renewed).json()["msg"],
        "notifications.token-replaced"
    );
    let renewed = renew(&plain).json()["token"].as_str().unwrap().to_owned();
    // Refused: no token, garbage, expired, a user turned away, an ended session.
    let r = s.target.post("/api/renewToken", b"{}", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        renew("garbage").json()["msg"],
        "notifications.invalid-token"
    );
    let expired = hs256(
        &s.target.api_secret,
        &json!({"iss": "plugnmeet", "sub": "m", "nbf": now_secs() - 900, "exp": now_secs() - 120,
                "user_id": "m", "room_id": room}),
    );
    let r = renew(&expired);
    assert_eq!(
        (r.status, r.json()["msg"].clone()),
        (401, json!("notifications.token-expired"))
    );
    let lobby = unique("renewwait");
    s.target.create_room(
        &lobby,
        json!({"metadata": {"room_features": {"waiting_room_features": {"is_active": true}}}}),
    );
    let host = s.target.join_token(&lobby, "host", true, false);
    let stranger = s.target.join_token(&lobby, "stranger", false, false);
    // Waiting users renew too (a wait may outlast a token), and still wait.
    let waiting = renew(&stranger).json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(s.target.session(&waiting, &[]).json()["waiting"], true);
    let r = s.target.post(
        "/api/waitingRoom/rejectUsers",
        br#"{"user_id":"stranger"}"#,
        &[("Authorization", host.as_str())],
    );
    assert_common(&r.json(), true, "SUCCESS");
    assert_eq!(renew(&stranger).json()["msg"], "notifications.user-blocked");
    assert_eq!(renew(&waiting).json()["msg"], "notifications.user-blocked");
    s.target
        .call("/auth/room/endRoom", &json!({"room_id": room}));
    assert_eq!(
        renew(&renewed).json()["msg"],
        "notifications.room-not-active"
    );
    assert_eq!(s.target.request("GET", "/api/renewToken").status, 405);
    s.target
        .call("/auth/room/endRoom", &json!({"room_id": lobby}));
}

/// The waiting room, kept at the edge: a guest gets no LiveKit token until a moderator lets
/// them in; only a moderator lists, lets in or turns away; a user turned away is blocked.
/// The waiting list shows the 200 who waited longest and says how many wait in all (a window
/// count, which each platform's SQLite runs).
fn waiting_list_counts_past_what_it_lists(s: &Suite) {
    let room = unique("crowd");
    s.target.create_room(
        &room,
        json!({"metadata": {"room_features": {"waiting_room_features": {"is_active": true}}}}),
    );
    let moderator = s.target.join_token(&room, "host", true, false);
    assert_eq!(s.target.session(&moderator, &[]).status, 200);
    let listed = || {
        let r = s.target.post(
            "/api/waitingRoom/users",
            b"{}",
            &[("Authorization", moderator.as_str())],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let j = r.json();
        (
            j["users"].as_array().map_or(0, Vec::len),
            j["total"].clone(),
        )
    };
    assert_eq!(listed(), (0, json!(0)));
    for n in 0..201 {
        let guest = s
            .target
            .join_token(&room, &format!("g{n:03}"), false, false);
        let r = s.target.session(&guest, &[]);
        assert_eq!(r.json()["waiting"], true, "{}", r.text());
        if n == 1 {
            assert_eq!(listed(), (2, json!(2)));
        }
    }
    assert_eq!(listed(), (200, json!(201)));
}

fn waiting_room(s: &Suite) {
    let room = unique("wait");
    s.target.create_room(
        &room,
        json!({"metadata": {"room_features": {"waiting_room_features": {
            "is_active": true, "waiting_room_msg": "The host lets you in soon"}}}}),
    );
    let moderator = s.target.join_token(&room, "host", true, false);
    let guest = s.target.join_token(&room, "guest", false, false);
    let other = s.target.join_token(&room, "other", false, false);
    let call = |path: &str, token: &str, body: &[u8]| {
        s.target.post(
            &format!("/api/waitingRoom/{path}"),
            body,
            &[("Authorization", token)],
        )
    };
    let listed = || -> Vec<Value> {
        let r = call("users", &moderator, b"{}");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["users"].as_array().expect("users").clone()
    };
    // The moderator goes in, and is told the room has a waiting room.
    let m = s.target.session(&moderator, &[]).json();
    assert_eq!(
        (m["waiting"].clone(), m["waiting_room"].clone()),
        (json!(false), json!(true)),
        "{m}"
    );
    assert!(m["token"].is_string(), "{m}");
    assert_eq!(m["waiting_room_msg"], "The host lets you in soon", "{m}");
    // Tokens were issued, but nobody has asked to come in yet.
    assert_eq!(listed(), Vec::<Value>::new());
    // The guest waits: no region, no LiveKit token, the room's message.
    let r = s.target.session(&guest, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let g = r.json();
    assert_eq!(g["status"], true, "{g}");
    assert_eq!(g["waiting"], true, "{g}");
    assert_eq!(g["waiting_room_msg"], "The host lets you in soon");
    for absent in ["token", "livekit_url", "region", "publish_sources"] {
        assert!(g.get(absent).is_none(), "{absent} in {g}");
    }
    assert_eq!(s.target.session(&other, &[]).json()["waiting"], true);
    // Who waits, longest first.
    let users = listed();
    let ids: Vec<&str> = users
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["guest", "other"], "{users:?}");
    assert_eq!(users[0]["name"], "User guest");
    assert!(
        users[0]["waiting_since"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );
    // A waiting user can neither let anyone in, nor see who waits, nor change what they read.
    for path in ["users", "approveUsers", "rejectUsers", "updateMsg"] {
        let r = call(path, &guest, br#"{"user_id":"guest","msg":"Come in"}"#);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert_common(&r.json(), false, "PERMISSION_DENIED");
    }
    let g = s.target.session(&guest, &[]).json();
    assert_eq!(
        (&g["waiting"], &g["waiting_room_msg"]),
        (&json!(true), &json!("The host lets you in soon"))
    );
    assert!(g.get("room_locks").is_none(), "{g}");
    // The moderator changes the message (in any script, up to 2 KiB), and the waiting read it
    // at their next ask; too long a one is refused and changes nothing.
    let words = "Wir beginnen in fünf Minuten \"gleich\" 🙂";
    let r = call(
        "updateMsg",
        &moderator,
        json!({"msg": words}).to_string().as_bytes(),
    );
    assert_common(&r.json(), true, "SUCCESS");
    assert_eq!(
        s.target.session(&guest, &[]).json()["waiting_room_msg"],
        words
    );
    assert_eq!(
        s.target.session(&moderator, &[]).json()["waiting_room_msg"],
        words
    );
    let r = call(
        "updateMsg",
        &moderator,
        json!({"msg": "é".repeat(1025)}).to_string().as_bytes(),
    );
    assert_common(&r.json(), false, "INVALID_PARAMETERS");
    assert_eq!(r.json()["msg"], "msg: at most 2048 bytes");
    let r = call("updateMsg", &moderator, br#"{"msg":7}"#);
    assert_common(&r.json(), false, "INVALID_PARAMETERS");
    assert_eq!(
        s.target.session(&guest, &[]).json()["waiting_room_msg"],
        words
    );
    let (_, info) = s
        .target
        .call("/auth/room/getActiveRoomInfo", &json!({"room_id": room}));
    let metadata: Value = serde_json::from_str(
        info["room"]["room_info"]["metadata"]
            .as_str()
            .expect("metadata"),
    )
    .expect("json");
    assert_eq!(
        metadata["room_features"]["waiting_room_features"],
        json!({"is_active": true, "waiting_room_msg": words}),
        "{info}"
    );
    // Bad calls.
    let r = s.target.post("/api/waitingRoom/users", b"{}", &[]);
    assert_eq!(
        (r.status, r.json()["msg"].clone()),
        (401, json!("notifications.auth-header-missing"))
    );
    for body in [
        &b"{}"[..],
        br#"{"user_id":"a b"}"#,
        b"{",
        br#"{"user_id":7}"#,
        b"[]",
    ] {
        let r = call("approveUsers", &moderator, body);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_common(&r.json(), false, "INVALID_PARAMETERS");
    }
    let big = format!(r#"{{"user_id":"{}"}}"#, "a".repeat(8000));
    assert_eq!(call("approveUsers", &moderator, big.as_bytes()).status, 413);
    let r = call("approveUsers", &moderator, br#"{"user_id":"nobody"}"#);
    assert_common(&r.json(), false, "USER_NOT_FOUND");
    assert_eq!(
        s.target.request("GET", "/api/waitingRoom/users").status,
        405
    );
    assert_eq!(call("nothing", &moderator, b"{}").status, 404);
    // Let in (camelCase, as plugNmeet's client sends it): the guest now gets a LiveKit token,
    // and the metadata in it no longer says to wait.
    let r = call("approveUsers", &moderator, br#"{"userId":"guest"}"#);
    assert_eq!(r.json()["approved"], json!(["guest"]), "{}", r.text());
    let g = s.target.session(&guest, &[]).json();
    assert_eq!(g["waiting"], false, "{g}");
    let c = jwt_claims(g["token"].as_str().expect("a LiveKit token"));
    let meta: Value = serde_json::from_str(c["metadata"].as_str().unwrap()).unwrap();
    assert_eq!(meta["wait_for_approval"], false, "{meta}");
    assert_eq!(c["video"]["canSubscribe"], true);
    let ids: Vec<Value> = listed().iter().map(|u| u["user_id"].clone()).collect();
    assert_eq!(ids, [json!("other")]);
    let r = call("approveUsers", &moderator, br#"{"user_id":"guest"}"#);
    assert_common(&r.json(), false, "USER_NOT_FOUND");
    // Turned away: blocked from this session, and no new join token either.
    let r = call("rejectUsers", &moderator, br#"{"user_id":"other"}"#);
    assert_common(&r.json(), true, "SUCCESS");
    let r = s.target.session(&other, &[]);
    assert_eq!(
        (r.status, r.json()["msg"].clone()),
        (401, json!("notifications.user-blocked"))
    );
    let (_, j) = s.target.call(
        "/auth/room/getJoinToken",
        &json!({"room_id": room, "user_info": {"name": "Other", "user_id": "other"}}),
    );
    assert_common(&j, false, "USER_BLOCKED");
    assert_eq!(listed(), Vec::<Value>::new());
    // A user already in cannot be turned away through the waiting room.
    let r = call("rejectUsers", &moderator, br#"{"user_id":"guest"}"#);
    assert_common(&r.json(), false, "USER_NOT_FOUND");
    assert_eq!(s.target.session(&guest, &[]).status, 200);
    // Only this session's moderators decide: one of another room finds nobody waiting, and a
    // moderator whose latest token made them a plain user is refused.
    let late = s.target.join_token(&room, "late", false, false);
    assert_eq!(s.target.session(&late, &[]).json()["waiting"], true);
    let elsewhere = unique("elsewhere");
    s.target.create_room(&elsewhere, json!({}));
    let stranger_host = s.target.join_token(&elsewhere, "late", true, false);
    for path in ["approveUsers", "rejectUsers"] {
        let r = call(path, &stranger_host, br#"{"user_id":"late"}"#);
        assert_common(&r.json(), false, "USER_NOT_FOUND");
    }
    let demoted = s.target.join_token(&room, "host2", true, false);
    s.target.join_token(&room, "host2", false, false);
    let r = call("approveUsers", &demoted, br#"{"user_id":"late"}"#);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(s.target.session(&late, &[]).json()["waiting"], true);
    // "all" lets in everyone the list shows: those who asked, not everyone a token was issued
    // for.
    let hidden = s.target.join_token(&room, "quiet", false, true);
    let absent = s.target.join_token(&room, "absent", false, false);
    assert_eq!(s.target.session(&hidden, &[]).json()["waiting"], true);
    let r = call("approveUsers", &moderator, br#"{"user_id":"all"}"#);
    let mut approved: Vec<String> = serde_json::from_value(r.json()["approved"].clone()).unwrap();
    approved.sort();
    assert_eq!(approved, ["late", "quiet"]);
    assert!(s.target.session(&late, &[]).json()["token"].is_string());
    assert_eq!(s.target.session(&absent, &[]).json()["waiting"], true);
    // A moderator's page without a waiting room is told so.
    let plain = unique("nowait");
    s.target.create_room(&plain, json!({}));
    let m = s
        .target
        .session(&s.target.join_token(&plain, "host", true, false), &[])
        .json();
    assert_eq!(m["waiting_room"], false, "{m}");
    let g = s
        .target
        .session(&s.target.join_token(&plain, "guest", false, false), &[])
        .json();
    assert_eq!(g["waiting"], false, "{g}");
    for r in [&room, &plain, &elsewhere] {
        s.target.call("/auth/room/endRoom", &json!({"room_id": r}));
    }
}

/// The join page at `/`, as plugNmeet's integrations link to it, with its security headers,
/// and its hashed assets.
fn join_page_is_served(s: &Suite) {
    for path in [
        "/",
        "/?access_token=eyJhbGciOiJIUzI1NiJ9.e30.x",
        "/index.html",
    ] {
        let r = s.target.request("GET", path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(
            r.content_type().starts_with("text/html"),
            "{path}: {}",
            r.content_type()
        );
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(
            r.header("content-security-policy"),
            Some(edge_api::web::CONTENT_SECURITY_POLICY),
            "{path}"
        );
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
    }
    let html = s.target.request("GET", "/").text();
    assert!(html.contains(r#"id="app""#), "{html}");
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no script in {html}"));
    assert!(script.starts_with("/assets/app-"), "{script}");
    let js = s.target.request("GET", script);
    assert_eq!(js.status, 200);
    assert!(
        js.content_type().starts_with("text/javascript"),
        "{}",
        js.content_type()
    );
    assert!(
        js.text().contains("/api/session"),
        "the bundle calls the session endpoint"
    );
    let head = s.target.request("HEAD", "/");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    for missing in [
        "/assets/app-0000.js",
        "/assets/..%2f..%2fedge.sqlite",
        "/edge.sqlite",
    ] {
        assert_eq!(s.target.request("GET", missing).status, 404, "{missing}");
    }
    // The page is not a way around the API's methods.
    assert_eq!(s.target.post("/", b"{}", &[]).status, 404);
}

/// What plugNmeet's CMS plugins need to embed the page in one of their own (another origin):
/// the client files `/auth/getClientFiles` names, served to any origin, each loading the hashed
/// bundle next to it; and the page's API open to that origin (preflight and answers), while
/// `/auth/*`, called by servers, stays closed to browsers.
fn cms_plugins_embed_the_page(s: &Suite) {
    let cms = [("Origin", "http://cms.example")];
    let (status, files) = s.target.call("/auth/getClientFiles", &json!({}));
    assert_eq!(status, 200, "{files}");
    assert_common(&files, true, "SUCCESS");
    assert_eq!(files["js"], files["js_files"], "{files}");
    assert_eq!(files["css"], files["css_files"], "{files}");
    let names = |kind: &str| -> Vec<String> {
        files[kind]
            .as_array()
            .unwrap_or_else(|| panic!("{kind}: {files}"))
            .iter()
            .map(|f| f.as_str().expect("a file name").to_owned())
            .collect()
    };
    // Each list names a file; current plugins load `main-module.*` as the ES module.
    let (js, css) = (names("js_files"), names("css_files"));
    assert!(js.iter().any(|f| f.starts_with("main-module.")), "{files}");
    assert!(!css.is_empty(), "{files}");
    assert!(
        files.get("static_assets_path").is_none(),
        "the plugins use <server>/assets: {files}"
    );
    let unsigned = s.target.post("/auth/getClientFiles", b"{}", &[]);
    assert_eq!(unsigned.status, 401, "{}", unsigned.text());

    for (kind, list, content_type) in [("js", &js, "text/javascript"), ("css", &css, "text/css")] {
        for name in list {
            let path = format!("/assets/{kind}/{name}");
            let file = s.target.send("GET", &path, &cms);
            assert_eq!(file.status, 200, "{path}");
            assert!(file.content_type().starts_with(content_type), "{path}");
            assert_eq!(
                file.header("access-control-allow-origin"),
                Some("*"),
                "{path}"
            );
            // It loads the hashed bundle next to it, which is served to any origin too.
            let text = file.text();
            let bundle = text
                .split("../")
                .nth(1)
                .and_then(|rest| rest.split(['\'', '"']).next())
                .unwrap_or_else(|| panic!("{path} imports nothing: {text}"));
            let hashed = s.target.send("GET", &format!("/assets/{bundle}"), &cms);
            assert_eq!(hashed.status, 200, "{bundle}");
            assert!(hashed.content_type().starts_with(content_type), "{bundle}");
            assert_eq!(
                hashed.header("access-control-allow-origin"),
                Some("*"),
                "{bundle}"
            );
        }
    }

    // A server URL saved with a trailing slash makes the plugins ask for `<server>//assets/…`.
    for name in &js {
        let doubled = s.target.send("GET", &format!("//assets/js/{name}"), &cms);
        assert_eq!(doubled.status, 200, "//assets/js/{name}");
        assert_eq!(doubled.header("access-control-allow-origin"), Some("*"));
    }
    // Workers' header rules for the assets are not an asset.
    assert_eq!(s.target.request("GET", "/_headers").status, 404);

    // The page's API: the browser's preflight, then the call itself, from the CMS's origin.
    let preflight = s.target.send(
        "OPTIONS",
        "/api/session",
        &[
            cms[0],
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization,content-type",
            ),
        ],
    );
    assert_eq!(preflight.status, 204, "{}", preflight.text());
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("POST")
    );
    let allowed = preflight
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert!(preflight.header("access-control-max-age").is_some());
    let room = unique("cms");
    s.target.create_room(&room, json!({}));
    let token = s.target.join_token(&room, "cms-user", false, false);
    let session = s.target.post(
        "/api/session",
        b"{}",
        &[
            cms[0],
            ("Authorization", token.as_str()),
            ("Content-Type", "application/json"),
        ],
    );
    assert_eq!(session.status, 200, "{}", session.text());
    assert_eq!(session.header("access-control-allow-origin"), Some("*"));
    // A refusal is readable too: the page shows why.
    let refused = s
        .target
        .post("/api/session", b"{}", &[cms[0], ("Authorization", "x")]);
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("access-control-allow-origin"), Some("*"));
    // Servers call /auth/*: no browser of another origin may read it.
    let auth = s.target.send("OPTIONS", "/auth/room/create", &cms);
    assert_eq!(auth.header("access-control-allow-origin"), None);
    let signed = s
        .target
        .call_bytes("/auth/room/isRoomActive", br#"{"room_id":"x"}"#);
    assert_eq!(signed.header("access-control-allow-origin"), None);
    s.target
        .call("/auth/room/endRoom", &json!({"room_id": room}));
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn session_pins_nearest_region(s: &Suite) {
    let room = unique("pin");
    s.target.create_room(&room, json!({}));
    let singapore_user = [("x-test-latitude", "1.29"), ("x-test-longitude", "103.85")];
    let paris_user = [("x-test-latitude", "48.85"), ("x-test-longitude", "2.35")];
    let first = s.target.session(
        &s.target.join_token(&room, "sg", false, false),
        &singapore_user,
    );
    assert_eq!(first.status, 200, "{}", first.text());
    let j = first.json();
    assert_common(&j, true, "SUCCESS");
    assert_eq!(j["region"]["id"], "ap");
    assert_eq!(j["placement"], "nearest");
    assert_eq!(j["livekit_url"], s.livekit_ws.as_str());
    // Everyone after gets the same region, wherever they are.
    let second = s
        .target
        .session(&s.target.join_token(&room, "fr", false, false), &paris_user)
        .json();
    assert_eq!(second["region"]["id"], "ap");
    assert_eq!(second["placement"], "pinned");
    // Two distinct users entered; a user coming back is not counted twice, nor is a hidden
    // one (a recorder, an observer), as LiveKit's webhooks are counted with sidecars.
    s.target
        .session(&s.target.join_token(&room, "fr", false, false), &paris_user);
    let hidden = s.target.session(
        &s.target.join_token(&room, "watcher", true, true),
        &paris_user,
    );
    assert_eq!(hidden.status, 200, "{}", hidden.text());
    let (_, info) = s
        .target
        .call("/auth/room/getActiveRoomInfo", &json!({"room_id": room}));
    assert_eq!(
        info["room"]["room_info"]["joined_participants"], "2",
        "{info}"
    );
    // A room first joined from Paris lands in Frankfurt; without a usable location, the default.
    assert_eq!(
        first_session(s, json!({}), &paris_user),
        ("eu".into(), "nearest".into())
    );
    let nowhere = [("x-test-latitude", "999"), ("x-test-longitude", "0")];
    assert_eq!(
        first_session(s, json!({}), &nowhere),
        ("local".into(), "default".into())
    );
    assert_eq!(
        first_session(s, json!({}), &[]),
        ("local".into(), "default".into())
    );
}

fn session_region_hint_wins(s: &Suite) {
    let singapore_user = [("x-test-latitude", "1.29"), ("x-test-longitude", "103.85")];
    assert_eq!(
        first_session(s, json!({"region": "eu"}), &singapore_user),
        ("eu".into(), "hint".into())
    );
}

/// Creates a room and opens its first session from `geo`; returns the region id and why.
fn first_session(s: &Suite, create: Value, geo: &[(&str, &str)]) -> (String, String) {
    let room = unique("place");
    s.target.create_room(&room, create);
    let j = s
        .target
        .session(&s.target.join_token(&room, "first", false, false), geo)
        .json();
    assert_common(&j, true, "SUCCESS");
    (
        j["region"]["id"].as_str().unwrap_or_default().to_owned(),
        j["placement"].as_str().unwrap_or_default().to_owned(),
    )
}

fn session_livekit_grants(s: &Suite) {
    let room = unique("grants");
    s.target.create_room(&room, json!({}));
    let admin = s
        .target
        .session(&s.target.join_token(&room, "mod", true, false), &[])
        .json();
    let c = jwt_claims(admin["token"].as_str().unwrap());
    assert_eq!(c["iss"], s.livekit_key.as_str());
    assert_eq!(c["sub"], "mod");
    assert_eq!(c["name"], "User mod");
    assert_eq!(c["video"]["roomJoin"], true);
    // The session's own LiveKit room: a room id created again gets another one.
    let session_sid = admin["room_sid"].as_str().unwrap();
    assert_eq!(c["video"]["room"], format!("{room}.{session_sid}"));
    assert_eq!(c["video"]["roomAdmin"], true);
    assert_eq!(c["video"]["canPublish"], true);
    // A moderator has no locks: every source, so the list is left out (LiveKit: any).
    assert!(c["video"].get("canPublishSources").is_none(), "{c}");
    assert_eq!(
        admin["publish_sources"],
        json!(["camera", "microphone", "screen_share", "screen_share_audio"])
    );
    let meta: Value = serde_json::from_str(c["metadata"].as_str().unwrap()).unwrap();
    assert_eq!(meta["is_admin"], true);
    // A guest in a room with plugNmeet's default locks: screen sharing is locked.
    let guest = s
        .target
        .session(&s.target.join_token(&room, "guest", false, false), &[])
        .json();
    let c = jwt_claims(guest["token"].as_str().unwrap());
    assert_eq!(c["video"]["canPublish"], true);
    assert_eq!(
        c["video"]["canPublishSources"],
        json!(["camera", "microphone"])
    );
    assert_eq!(guest["publish_sources"], json!(["camera", "microphone"]));
    let hidden = s
        .target
        .session(&s.target.join_token(&room, "ghost", false, true), &[])
        .json();
    let c = jwt_claims(hidden["token"].as_str().unwrap());
    assert_eq!(c["video"]["hidden"], true);
    assert_eq!(c["video"]["canPublish"], false);
    assert_eq!(hidden["publish_sources"], json!([]));
    assert!(c["video"].get("roomAdmin").is_none());
    assert_eq!(c["exp"].as_i64().unwrap() - c["nbf"].as_i64().unwrap(), 600);
    // The LiveKit secret is nowhere in what the browser gets.
    assert!(!serde_json::to_string(&hidden)
        .unwrap()
        .contains(&s.livekit_secret));
}

// ---------------------------------------------------------------- real LiveKit and SDK

fn real_participant_joins_and_is_ended(s: &Suite) {
    let room = unique("live");
    s.target.create_room(&room, json!({}));
    let session = s
        .target
        .session(&s.target.join_token(&room, "alice", true, false), &[])
        .json();
    assert_common(&session, true, "SUCCESS");
    let url = session["livekit_url"].as_str().unwrap();
    let alice = Participant::join(url, session["token"].as_str().unwrap(), "audio,video");
    let joined = alice.expect_line("joined ", Duration::from_secs(30));
    assert!(joined.contains("identity=alice"), "{joined}");
    // LiveKit accepted the edge's token: the participant is listed, with its tracks.
    let mut listed = Value::Null;
    for _ in 0..100 {
        let (_, j) = s
            .target
            .call("/auth/room/getActiveRoomInfo", &json!({"room_id": room}));
        assert_common(&j, true, "SUCCESS");
        let parts = j["room"]["participants_info"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(p) = parts.iter().find(|p| {
            p["identity"] == "alice" && p["tracks"].as_array().is_some_and(|t| t.len() >= 2)
        }) {
            listed = p.clone();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        listed["identity"], "alice",
        "alice never listed with two tracks"
    );
    assert_eq!(listed["name"], "User alice");
    assert_eq!(listed["state"], "ACTIVE");
    assert!(
        listed["joined_at"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0,
        "int64 as string"
    );
    assert_eq!(listed["permission"]["can_publish"], true);
    let kinds: Vec<&str> = listed["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"AUDIO") && kinds.contains(&"VIDEO"),
        "{kinds:?}"
    );
    // Ending the room through the API removes it from LiveKit: the participant is disconnected.
    let (_, j) = s
        .target
        .call("/auth/room/endRoom", &json!({"room_id": room}));
    assert_common(&j, true, "SUCCESS");
    alice.expect_line("disconnected", Duration::from_secs(20));
    assert_eq!(alice.wait(Duration::from_secs(20)), Some(0));
    // The session's LiveKit room is its own (`<room_id>.<sid>`), and it is gone.
    let twirp = livekit_rooms(s);
    assert!(
        !twirp
            .iter()
            .any(|name| name == &room || name.starts_with(&format!("{room}."))),
        "LiveKit still has {room}: {twirp:?}"
    );
}

/// The participants of `room` as getActiveRoomInfo lists them (LiveKit's list, through the
/// edge).
fn listed_participants(s: &Suite, room: &str) -> Vec<Value> {
    let (_, j) = s
        .target
        .call("/auth/room/getActiveRoomInfo", &json!({"room_id": room}));
    j["room"]["participants_info"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Whether `identity`'s microphone in `room` is listed, and muted.
fn microphone_muted(s: &Suite, room: &str, identity: &str) -> Option<bool> {
    listed_participants(s, room)
        .iter()
        .find(|p| p["identity"] == identity)?["tracks"]
        .as_array()?
        .iter()
        .find(|t| t["source"] == "MICROPHONE")
        .map(|t| t["muted"] == true)
}

/// `identity`'s entry in `room`'s LiveKit participant list, if listed.
fn listed_participant(s: &Suite, room: &str, identity: &str) -> Option<Value> {
    listed_participants(s, room)
        .into_iter()
        .find(|p| p["identity"] == identity)
}

/// The sources LiveKit lists `identity` of `room` as publishing, sorted.
fn published_sources(s: &Suite, room: &str, identity: &str) -> Vec<String> {
    let mut sources: Vec<String> = listed_participant(s, room, identity)
        .and_then(|p| p["tracks"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t["source"].as_str().map(str::to_owned))
        .collect();
    sources.sort();
    sources
}

/// What LiveKit lets `identity` of `room` publish: `None` for nothing, else the sources it lists
/// (empty: any).
fn may_publish(s: &Suite, room: &str, identity: &str) -> Option<Vec<String>> {
    let p = listed_participant(s, room, identity)?;
    let permission = &p["permission"];
    if permission["can_publish"] != true {
        return None;
    }
    let mut sources: Vec<String> = permission["can_publish_sources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    sources.sort();
    Some(sources)
}

/// Polls `check` for up to 20 s until it holds.
fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("never: {what}");
}

/// A moderator keeps order with real participants in the real LiveKit: mutes one microphone,
/// then everyone's but their own; removes a participant, who may come back; removes and blocks
/// another, who gets no session, renewal or join token in this session again. Only a
/// moderator may, never against themselves, only users the session knows, and every refusal
/// is in the API's conventions.
fn moderator_mutes_removes_and_blocks(s: &Suite) {
    let room = unique("order");
    s.target.create_room(&room, json!({}));
    let moderator = s.target.join_token(&room, "host", true, false);
    let as_moderator = [("Authorization", moderator.as_str())];
    let join = |user: &str| {
        let token = s.target.join_token(&room, user, false, false);
        let session = s.target.session(&token, &[]).json();
        assert_common(&session, true, "SUCCESS");
        let participant = Participant::join(
            session["livekit_url"].as_str().unwrap(),
            session["token"].as_str().unwrap(),
            "audio",
        );
        participant.expect_line("joined ", Duration::from_secs(30));
        (token, participant)
    };
    let (alice_token, alice) = join("alice");
    let (_bob_token, bob) = join("bob");
    let (_carol_token, carol) = join("carol");
    for who in ["alice", "bob", "carol"] {
        eventually(&format!("{who}'s microphone listed"), || {
            microphone_muted(s, &room, who) == Some(false)
        });
    }
    let act = |path: &str, body: &str, headers: &[(&str, &str)]| {
        let r = s.target.post(path, body.as_bytes(), headers);
        (r.status, r.json())
    };

    // Refused, changing nothing: no token, a guest, bad ids, the moderator themselves, a user
    // the session does not know, an unmute, a wrong method.
    let (status, j) = act("/api/removeParticipant", r#"{"user_id":"bob"}"#, &[]);
    assert_eq!(
        (status, j["msg"].clone()),
        (401, json!("notifications.auth-header-missing"))
    );
    for path in ["/api/removeParticipant", "/api/muteUnmuteTrack"] {
        let (status, j) = act(
            path,
            r#"{"user_id":"bob"}"#,
            &[("Authorization", alice_token.as_str())],
        );
        assert_eq!(status, 403, "{path}: {j}");
        assert_common(&j, false, "PERMISSION_DENIED");
    }
    for body in [
        r#"{}"#,
        r#"{"user_id":"../bob"}"#,
        r#"{"user_id":"bob","block_user":"yes"}"#,
        r#"[1]"#,
        r#"{"user_id":"host"}"#,
    ] {
        let (status, j) = act("/api/removeParticipant", body, &as_moderator);
        assert_eq!(status, 200, "{body}: {j}");
        assert_common(&j, false, "INVALID_PARAMETERS");
    }
    let (_, j) = act(
        "/api/removeParticipant",
        r#"{"user_id":"host"}"#,
        &as_moderator,
    );
    assert_eq!(j["msg"], "notifications.cannot-remove-yourself");
    let (_, j) = act(
        "/api/removeParticipant",
        r#"{"user_id":"stranger","block_user":true}"#,
        &as_moderator,
    );
    assert_common(&j, false, "USER_NOT_FOUND");
    // An unmute, also as protojson writes one (`muted` false is left out).
    for body in [r#"{"user_id":"bob","muted":false}"#, r#"{"user_id":"bob"}"#] {
        let (_, j) = act("/api/muteUnmuteTrack", body, &as_moderator);
        assert_eq!(j["msg"], "notifications.remote-unmute-not-allowed", "{j}");
    }
    // A hidden user is not a moderator's to see, nor to act on.
    s.target.join_token(&room, "observer", false, true);
    for (path, body) in [
        (
            "/api/removeParticipant",
            r#"{"user_id":"observer","block_user":true}"#,
        ),
        ("/api/removeParticipant", r#"{"user_id":"observer"}"#),
        (
            "/api/muteUnmuteTrack",
            r#"{"user_id":"observer","muted":true}"#,
        ),
    ] {
        let (_, j) = act(path, body, &as_moderator);
        assert_common(&j, false, "USER_NOT_FOUND");
    }
    let (_, j) = act(
        "/api/muteUnmuteTrack",
        r#"{"user_id":"bob","track_sid":"TR_not/a/sid","muted":true}"#,
        &as_moderator,
    );
    assert_common(&j, false, "INVALID_PARAMETERS");
    let (_, j) = act(
        "/api/muteUnmuteTrack",
        r#"{"user_id":"bob","track_sid":"TR_nosuchtrack","muted":true}"#,
        &as_moderator,
    );
    assert_common(&j, false, "NOT_FOUND");
    assert_eq!(
        s.target.request("GET", "/api/removeParticipant").status,
        405
    );
    assert_eq!(s.target.request("GET", "/api/muteUnmuteTrack").status, 405);
    for who in ["alice", "bob", "carol"] {
        assert_eq!(microphone_muted(s, &room, who), Some(false), "{who}");
    }

    // Alice's microphone, by her user id alone; then everyone's: bob's and carol's.
    let (_, j) = act(
        "/api/muteUnmuteTrack",
        r#"{"userId":"alice","muted":true}"#,
        &as_moderator,
    );
    assert_common(&j, true, "SUCCESS");
    assert_eq!(
        (j["muted"].clone(), j["left"].clone()),
        (json!(1), json!(0))
    );
    eventually("alice muted", || {
        microphone_muted(s, &room, "alice") == Some(true)
    });
    assert_eq!(microphone_muted(s, &room, "bob"), Some(false));
    let (_, j) = act(
        "/api/muteUnmuteTrack",
        r#"{"user_id":"all","muted":true}"#,
        &as_moderator,
    );
    assert_common(&j, true, "SUCCESS");
    assert_eq!(
        (j["muted"].clone(), j["left"].clone()),
        (json!(2), json!(0))
    );
    for who in ["bob", "carol"] {
        eventually(&format!("{who} muted"), || {
            microphone_muted(s, &room, who) == Some(true)
        });
    }

    // Bob removed: LiveKit disconnects him, he may come back; removing him again finds nobody.
    let (_, j) = act(
        "/api/removeParticipant",
        r#"{"user_id":"bob"}"#,
        &as_moderator,
    );
    assert_common(&j, true, "SUCCESS");
    assert_eq!(
        (j["removed"].clone(), j["blocked"].clone()),
        (json!(true), json!(false))
    );
    let gone = bob.expect_line("disconnected", Duration::from_secs(20));
    assert!(gone.contains("PARTICIPANT_REMOVED"), "{gone}");
    eventually("bob off LiveKit's list", || {
        !listed_participants(s, &room)
            .iter()
            .any(|p| p["identity"] == "bob")
    });
    let (_, j) = act(
        "/api/removeParticipant",
        r#"{"user_id":"bob"}"#,
        &as_moderator,
    );
    assert_common(&j, false, "USER_NOT_ACTIVE");
    let bob_again = s.target.join_token(&room, "bob", false, false);
    assert_eq!(s.target.session(&bob_again, &[]).status, 200);

    // Alice removed and blocked: out, and kept out of this session.
    let (_, j) = act(
        "/api/removeParticipant",
        r#"{"user_id":"alice","block_user":true}"#,
        &as_moderator,
    );
    assert_common(&j, true, "SUCCESS");
    assert_eq!(
        (j["removed"].clone(), j["blocked"].clone()),
        (json!(true), json!(true))
    );
    let gone = alice.expect_line("disconnected", Duration::from_secs(20));
    assert!(gone.contains("PARTICIPANT_REMOVED"), "{gone}");
    let r = s.target.session(&alice_token, &[]);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_common(&r.json(), false, "USER_BLOCKED");
    let r = s.target.post(
        "/api/renewToken",
        b"{}",
        &[("Authorization", alice_token.as_str())],
    );
    assert_eq!(r.json()["msg"], "notifications.user-blocked");
    let (_, j) = s.target.call(
        "/auth/room/getJoinToken",
        &json!({"room_id": room, "user_info": {"name": "Alice", "user_id": "alice"}}),
    );
    assert_common(&j, false, "USER_BLOCKED");
    // Bob, no longer in the meeting, can still be blocked.
    let (_, j) = act(
        "/api/removeParticipant",
        r#"{"user_id":"bob","block_user":true}"#,
        &as_moderator,
    );
    assert_common(&j, true, "SUCCESS");
    assert_eq!(
        (j["removed"].clone(), j["blocked"].clone()),
        (json!(false), json!(true))
    );
    assert_common(
        &s.target.session(&bob_again, &[]).json(),
        false,
        "USER_BLOCKED",
    );
    // Carol was never touched by any of it.
    let listed: Vec<Value> = listed_participants(s, &room)
        .iter()
        .map(|p| p["identity"].clone())
        .collect();
    assert_eq!(listed, vec![json!("carol")]);
    let (_, j) = s
        .target
        .call("/auth/room/endRoom", &json!({"room_id": room}));
    assert_common(&j, true, "SUCCESS");
    drop(carol);
}

/// `room/broadcastToRoom`: the backend's notice reaches the people in the meeting through the
/// real LiveKit, from the server (no participant is its sender): to everyone, to the moderators
/// only, or to one user; refusals in plugNmeet's conventions.
fn backend_broadcasts_to_the_room(s: &Suite) {
    let room = unique("notice");
    s.target.create_room(&room, json!({}));
    let broadcast = |body: Value| s.target.call("/auth/room/broadcastToRoom", &body).1;
    // Before anyone joined: nobody to tell, and no moderator online.
    assert_common(
        &broadcast(json!({"room_id": room, "chat_msg": {"message": "early"}})),
        true,
        "SUCCESS",
    );
    let j = broadcast(
        json!({"room_id": room, "only_to_admins": true, "chat_msg": {"message": "early"}}),
    );
    assert_common(&j, false, "USER_NOT_FOUND");
    let join = |user: &str, admin: bool| {
        let token = s.target.join_token(&room, user, admin, false);
        let session = s.target.session(&token, &[]).json();
        let p = Participant::join(
            session["livekit_url"].as_str().unwrap(),
            session["token"].as_str().unwrap(),
            "audio",
        );
        p.expect_line("joined ", Duration::from_secs(30));
        p
    };
    let host = join("host", true);
    let guest = join("guest", false);
    // Both fully connected (LiveKit drops data for a participant whose connection to receive
    // is not up yet): each receives the other's audio.
    host.expect_line("track_subscribed identity=guest", Duration::from_secs(30));
    guest.expect_line("track_subscribed identity=host", Duration::from_secs(30));
    let notice = |p: &Participant| {
        let line = p.expect_line("data_received ", Duration::from_secs(20));
        assert!(
            line.starts_with("data_received from=server topic=edgemeet.notice data="),
            "{line}"
        );
        let data: Value = serde_json::from_str(line.split_once("data=").unwrap().1).unwrap();
        data
    };

    let j = broadcast(json!({"roomId": room, "notificationMsg": {
        "text": "The meeting ends in 5 minutes", "type": "NATS_SYSTEM_NOTIFICATION_WARNING",
        "withSound": true}}));
    assert_common(&j, true, "SUCCESS");
    for p in [&host, &guest] {
        let data = notice(p);
        assert_eq!(
            (
                &data["kind"],
                &data["text"],
                &data["level"],
                &data["with_sound"]
            ),
            (
                &json!("notification"),
                &json!("The meeting ends in 5 minutes"),
                &json!("warning"),
                &json!(true)
            ),
            "{data}"
        );
    }
    // Only to the moderators: the host hears it, the guest does not; then one to the guest.
    let j = broadcast(
        json!({"room_id": room, "only_to_admins": true, "chat_msg": {"message": "for hosts"}}),
    );
    assert_common(&j, true, "SUCCESS");
    assert_eq!(notice(&host)["text"], "for hosts");
    let j = broadcast(
        json!({"room_id": room, "to_user_id": "guest", "notification_msg": {"text": "hi", "type": 2}}),
    );
    assert_common(&j, true, "SUCCESS");
    // The guest's next notice is this one: the hosts' one never reached them.
    let data = notice(&guest);
    assert_eq!(
        (&data["text"], &data["level"]),
        (&json!("hi"), &json!("error")),
        "{data}"
    );

    // Refused: no payload, both, an empty or oversize text, an unknown type, a bad room or user,
    // a room not running.
    for body in [
        json!({"room_id": room}),
        json!({"room_id": room, "chat_msg": {"message": "a"}, "notification_msg": {"text": "b"}}),
        json!({"room_id": room, "chat_msg": {"message": ""}}),
        json!({"room_id": room, "chat_msg": {"message": "x".repeat(5000)}}),
        json!({"room_id": room, "notification_msg": {"text": "t", "type": "LOUD"}}),
        json!({"room_id": "bad room", "chat_msg": {"message": "a"}}),
        json!({"room_id": room, "to_user_id": "../x", "chat_msg": {"message": "a"}}),
    ] {
        assert_common(&broadcast(body.clone()), false, "INVALID_PARAMETERS");
    }
    let j = broadcast(json!({"room_id": unique("never"), "chat_msg": {"message": "a"}}));
    assert_common(&j, false, "ROOM_NOT_FOUND");
    let (_, j) = s
        .target
        .call("/auth/room/endRoom", &json!({"room_id": room}));
    assert_common(&j, true, "SUCCESS");
    let j = broadcast(json!({"room_id": room, "chat_msg": {"message": "late"}}));
    assert_common(&j, false, "ROOM_NOT_ACTIVE");
    drop((host, guest));
}

/// A room's `max_participants` is not just stored: the LiveKit token carries it as the room's
/// configuration, and the real LiveKit server turns away the participant past it.
fn max_participants_reaches_livekit(s: &Suite) {
    let room = unique("full");
    s.target.create_room(&room, json!({"max_participants": 1}));
    let join = |user: &str| {
        let session = s
            .target
            .session(&s.target.join_token(&room, user, false, false), &[])
            .json();
        assert_common(&session, true, "SUCCESS");
        let token = session["token"].as_str().unwrap().to_owned();
        assert_eq!(
            jwt_claims(&token)["roomConfig"],
            json!({"maxParticipants": 1})
        );
        (session["livekit_url"].as_str().unwrap().to_owned(), token)
    };
    let (url, token) = join("first");
    let first = Participant::join(&url, &token, "none");
    first.expect_line("joined ", Duration::from_secs(30));
    let (url, token) = join("second");
    let second = Participant::join(&url, &token, "none");
    let refused = second.expect_line("error ", Duration::from_secs(30));
    assert_eq!(second.wait(Duration::from_secs(20)), Some(2), "{refused}");
    // The first is still in.
    let (_, j) = s
        .target
        .call("/auth/room/getActiveRoomInfo", &json!({"room_id": room}));
    let identities: Vec<Value> = j["room"]["participants_info"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| p["identity"].clone())
        .collect();
    assert_eq!(identities, vec![json!("first")], "{j}");
    let (_, j) = s
        .target
        .call("/auth/room/endRoom", &json!({"room_id": room}));
    assert_common(&j, true, "SUCCESS");
    drop(first);
}

/// A room's features and locks reach LiveKit as the token's publishable sources, and the real
/// LiveKit server holds a client to them: in a room without webcams it refuses a guest's camera
/// and takes her microphone.
fn publish_sources_reach_livekit(s: &Suite) {
    let room = unique("nocams");
    s.target.create_room(
        &room,
        json!({"metadata": {"room_features": {"allow_webcams": false}}}),
    );
    let session = s
        .target
        .session(&s.target.join_token(&room, "guest", false, false), &[])
        .json();
    assert_common(&session, true, "SUCCESS");
    assert_eq!(session["publish_sources"], json!(["microphone"]));
    let url = session["livekit_url"].as_str().unwrap();
    let token = session["token"].as_str().unwrap();
    assert_eq!(
        jwt_claims(token)["video"]["canPublishSources"],
        json!(["microphone"])
    );
    let with_camera = Participant::join(url, token, "audio,video");
    let refused = with_camera.expect_line("error ", Duration::from_secs(60));
    assert!(refused.contains("publish failed"), "{refused}");
    assert_eq!(
        with_camera.wait(Duration::from_secs(20)),
        Some(2),
        "{refused}"
    );
    let microphone_only = Participant::join(url, token, "audio");
    microphone_only.expect_line("joined ", Duration::from_secs(30));
    let (_, j) = s
        .target
        .call("/auth/room/endRoom", &json!({"room_id": room}));
    assert_common(&j, true, "SUCCESS");
    drop(microphone_only);
}

/// Room names LiveKit reports, asked directly over Twirp (independently of the edge).
fn livekit_rooms(s: &Suite) -> Vec<String> {
    let token = hs256(
        &s.livekit_secret,
        &json!({"iss": s.livekit_key, "nbf": now_secs(), "exp": now_secs() + 60, "video": {"roomList": true}}),
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(format!(
            "{}/twirp/livekit.RoomService/ListRooms",
            s.livekit_http
        ))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(&b"{}"[..])
        .expect("ListRooms");
    let body: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    body["rooms"]
        .as_array()
        .map(|rooms| {
            rooms
                .iter()
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn plugnmeet_python_sdk_unchanged(s: &Suite) {
    let room = unique("sdk");
    let out = std::process::Command::new(support::python())
        .arg(support::repo_root().join("tests/clients/plugnmeet_sdk_flow.py"))
        .args([
            &s.target.base,
            &s.target.api_key,
            &s.target.api_secret,
            &room,
        ])
        .output()
        .expect("run the SDK script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "SDK flow failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("sdk flow ok"), "{stdout}");
    // What the SDK did is visible through the API: the room ended and is a past room.
    let (_, j) = s
        .target
        .call("/auth/room/fetchPastRooms", &json!({"room_ids": [room]}));
    assert_eq!(
        j["result"]["rooms_list"][0]["room_id"],
        room.as_str(),
        "{j}"
    );
}

/// A moderator's locks reach LiveKit, which takes the locked tracks down and refuses them: one
/// user's microphone, then everyone's cameras (a later user included, never the moderator);
/// an unlock gives the microphone back; the refusals change nothing.
fn moderator_locks_reach_livekit(s: &Suite) {
    let room = unique("locks");
    s.target.create_room(&room, json!({}));
    let moderator = s.target.join_token(&room, "host", true, false);
    let as_moderator = [("Authorization", moderator.as_str())];
    let join = |user: &str, publish: &str| {
        let token = s.target.join_token(&room, user, false, false);
        let session = s.target.session(&token, &[]).json();
        assert_common(&session, true, "SUCCESS");
        let participant = Participant::join(
            session["livekit_url"].as_str().unwrap(),
            session["token"].as_str().unwrap(),
            publish,
        );
        participant.expect_line("joined ", Duration::from_secs(30));
        (token, participant)
    };
    let (alice_token, alice) = join("alice", "audio,video");
    let (_, bob) = join("bob", "audio");
    eventually("alice's media listed", || {
        published_sources(s, &room, "alice") == ["CAMERA", "MICROPHONE"]
    });
    eventually("bob's microphone listed", || {
        published_sources(s, &room, "bob") == ["MICROPHONE"]
    });
    let lock = |body: Value, headers: &[(&str, &str)]| {
        let r = s.target.post(
            "/api/updateLockSettings",
            body.to_string().as_bytes(),
            headers,
        );
        (r.status, r.json())
    };

    // Refused, changing nothing.
    let (status, j) = lock(
        json!({"user_id": "bob", "service": "mic", "direction": "lock"}),
        &[("Authorization", alice_token.as_str())],
    );
    assert_eq!(status, 403, "{j}");
    assert_common(&j, false, "PERMISSION_DENIED");
    for (body, msg) in [
        (
            json!({"user_id": "host", "service": "mic", "direction": "lock"}),
            "notifications.cannot-lock-admin",
        ),
        (
            json!({"user_id": "stranger", "service": "mic", "direction": "lock"}),
            "notifications.user-not-found",
        ),
        (
            json!({"user_id": "bob", "service": "microphone", "direction": "lock"}),
            "service: one of mic, webcam, screenShare, chat, sendChatMsg, chatFile, privateChat, whiteboard, sharedNotepad, reactions",
        ),
        (
            json!({"user_id": "bob", "service": "mic"}),
            "direction: lock or unlock",
        ),
    ] {
        let (status, j) = lock(body.clone(), &as_moderator);
        assert_eq!((status, &j["status"], &j["msg"]), (200, &json!(false), &json!(msg)), "{body}: {j}");
    }
    assert_eq!(
        may_publish(s, &room, "bob"),
        Some(vec!["CAMERA".to_owned(), "MICROPHONE".to_owned()])
    );

    // Alice's microphone: LiveKit takes her track down and lets her publish only her camera.
    let (_, j) = lock(
        json!({"user_id": "alice", "service": "mic", "direction": "lock"}),
        &as_moderator,
    );
    assert_common(&j, true, "SUCCESS");
    assert_eq!((&j["updated"], &j["left"]), (&json!(1), &json!(0)), "{j}");
    eventually("alice's microphone taken down", || {
        published_sources(s, &room, "alice") == ["CAMERA"]
    });
    assert_eq!(
        may_publish(s, &room, "alice"),
        Some(vec!["CAMERA".to_owned()])
    );
    let metadata: Value = serde_json::from_str(
        listed_participant(s, &room, "alice").unwrap()["metadata"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        metadata["lock_settings"]["lock_microphone"], true,
        "{metadata}"
    );
    assert_eq!(
        published_sources(s, &room, "bob"),
        ["MICROPHONE"],
        "bob untouched"
    );

    // Everyone's cameras: Alice publishes nothing now, Bob only his microphone; a later user
    // is locked too; the moderator is not.
    let (_, j) = lock(
        json!({"user_id": "all", "service": "webcam", "direction": "lock"}),
        &as_moderator,
    );
    assert_common(&j, true, "SUCCESS");
    assert_eq!((&j["updated"], &j["left"]), (&json!(2), &json!(0)), "{j}");
    eventually("alice's camera taken down", || {
        published_sources(s, &room, "alice").is_empty()
    });
    assert_eq!(may_publish(s, &room, "alice"), None);
    assert_eq!(
        may_publish(s, &room, "bob"),
        Some(vec!["MICROPHONE".to_owned()])
    );
    assert_eq!(published_sources(s, &room, "bob"), ["MICROPHONE"]);
    let carol = s.target.join_token(&room, "carol", false, false);
    assert_eq!(
        s.target.session(&carol, &[]).json()["publish_sources"],
        json!(["microphone"])
    );
    let host = s.target.session(&moderator, &[]).json();
    assert_eq!(
        host["publish_sources"],
        json!(["camera", "microphone", "screen_share", "screen_share_audio"])
    );
    assert_eq!(host["room_locks"]["lock_webcam"], true, "{host}");
    // Again: everyone already has it.
    let (_, j) = lock(
        json!({"user_id": "all", "service": "webcam", "direction": "lock"}),
        &as_moderator,
    );
    assert_eq!((&j["updated"], &j["left"]), (&json!(0), &json!(0)), "{j}");

    // Alice's microphone back (her camera stays locked): she may publish it again.
    let (_, j) = lock(
        json!({"user_id": "alice", "service": "mic", "direction": "unlock"}),
        &as_moderator,
    );
    assert_common(&j, true, "SUCCESS");
    eventually("alice may use her microphone", || {
        may_publish(s, &room, "alice") == Some(vec!["MICROPHONE".to_owned()])
    });
    alice.leave(Duration::from_secs(10));
    bob.leave(Duration::from_secs(10));
    s.target
        .call("/auth/room/endRoom", &json!({"room_id": room}));
}

/// A user raises and lowers their own hand, which LiveKit then shows everyone in the user's
/// metadata; a moderator lowers another's; nobody raises another's, a guest lowers no one's,
/// and a hidden user has no hand.
fn hands_go_up_and_down(s: &Suite) {
    let room = unique("hands");
    s.target.create_room(&room, json!({}));
    let moderator = s.target.join_token(&room, "host", true, false);
    let alice_token = s.target.join_token(&room, "alice", false, false);
    let bob_token = s.target.join_token(&room, "bob", false, false);
    let session = s.target.session(&alice_token, &[]).json();
    let alice = Participant::join(
        session["livekit_url"].as_str().unwrap(),
        session["token"].as_str().unwrap(),
        "none",
    );
    alice.expect_line("joined ", Duration::from_secs(30));
    let hand = |token: &str, body: Value| {
        let r = s.target.post(
            "/api/raiseHand",
            body.to_string().as_bytes(),
            &[("Authorization", token)],
        );
        (r.status, r.json())
    };
    let listed_hand = || {
        listed_participant(s, &room, "alice").map(|p| {
            let metadata: Value =
                serde_json::from_str(p["metadata"].as_str().unwrap_or("{}")).unwrap_or_default();
            metadata["raised_hand"].clone()
        })
    };
    assert_eq!(listed_hand(), Some(json!(false)));

    let (status, j) = hand(&alice_token, json!({"raised": true}));
    assert_eq!(status, 200, "{j}");
    assert_common(&j, true, "SUCCESS");
    assert_eq!(j["raised"], true);
    assert_eq!(listed_hand(), Some(json!(true)), "LiveKit shows it at once");

    // Refused, changing nothing.
    let (status, j) = hand(&bob_token, json!({"user_id": "alice", "raised": false}));
    assert_eq!(status, 403, "{j}");
    assert_common(&j, false, "PERMISSION_DENIED");
    let (_, j) = hand(&moderator, json!({"user_id": "bob", "raised": true}));
    assert_eq!(j["msg"], "notifications.cannot-raise-others-hand", "{j}");
    let (_, j) = hand(&moderator, json!({"user_id": "nobody", "raised": false}));
    assert_common(&j, false, "USER_NOT_FOUND");
    let (_, j) = hand(&moderator, json!({"user_id": "a b", "raised": false}));
    assert_common(&j, false, "INVALID_PARAMETERS");
    let (_, j) = hand(&alice_token, json!({"raised": "yes"}));
    assert_common(&j, false, "INVALID_PARAMETERS");
    let observer = s.target.join_token(&room, "observer", false, true);
    let (_, j) = hand(&observer, json!({"raised": true}));
    assert_eq!(j["msg"], "notifications.hidden-user-has-no-hand", "{j}");
    let (status, _) = hand("not-a-token", json!({"raised": true}));
    assert_eq!(status, 401);
    assert_eq!(listed_hand(), Some(json!(true)));

    // Bob, not in the meeting, raises his: kept for when he comes.
    let (status, j) = hand(&bob_token, json!({"raised": true}));
    assert_eq!((status, &j["raised"]), (200, &json!(true)), "{j}");
    let bob_session = s.target.session(&bob_token, &[]).json();
    let claims = jwt_claims(bob_session["token"].as_str().unwrap());
    let metadata: Value = serde_json::from_str(claims["metadata"].as_str().unwrap()).unwrap();
    assert_eq!(metadata["raised_hand"], true, "{metadata}");

    // The moderator lowers Alice's.
    let (_, j) = hand(&moderator, json!({"user_id": "alice", "raised": false}));
    assert_common(&j, true, "SUCCESS");
    assert_eq!(listed_hand(), Some(json!(false)));
    alice.leave(Duration::from_secs(10));
    s.target
        .call("/auth/room/endRoom", &json!({"room_id": room}));
}

// ---------------------------------------------------------------- BigBlueButton-compatible API

/// A BBB call's path to this edge (signed with SHA-256; the client library below signs with
/// SHA-1).
fn bbb_url(s: &Suite, call: &str, params: &str) -> String {
    s.target.bbb_path(call, params)
}

/// GET a BBB URL or path, not following a redirect.
fn bbb_get(s: &Suite, path_and_query: &str) -> support::Reply {
    s.target.get_unfollowed(path_and_query)
}

/// An unchanged third-party BBB client (bigbluebutton-js from npm) creates, joins, watches and
/// ends a meeting; its join links work for a real participant in LiveKit, who shows as an
/// attendee with the right role.
fn bbb_client_unchanged(s: &Suite) {
    // BBB allows any meeting id; this one is no room id, so the edge hashes it.
    let meeting_id = format!("Course 42: {}", unique("bbb"));
    let out = std::process::Command::new("node")
        .arg(support::repo_root().join("tests/clients/bbb_client_flow.mjs"))
        .args([
            &s.target.base,
            &s.target.api_key,
            &s.target.api_secret,
            &meeting_id,
        ])
        .env(
            "NODE_MODULES_DIR",
            edgemeet::cache_dir().join("node").join("node_modules"),
        )
        .output()
        .expect("run node (scripts/bootstrap.sh installs bigbluebutton-js)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "BBB client flow failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<Value>(line).ok())
        .expect("a result line");
    let done = &done["done"];
    let token_of = |url: &str| {
        assert!(
            url.starts_with(&format!("{}/?access_token=", s.target.base)),
            "{url}"
        );
        url.split("access_token=").nth(1).unwrap().to_owned()
    };
    // The moderator's link is a moderator's join token; the BBB userID is their user id.
    let moderator = token_of(done["moderatorUrl"].as_str().unwrap());
    let claims = jwt_claims(&moderator);
    assert_eq!(claims["is_admin"], true, "{claims}");
    assert_eq!(claims["name"], "Ada O'Lovelace");
    assert_eq!(claims["user_id"], "ada-1");
    let viewer = jwt_claims(&token_of(done["viewerUrl"].as_str().unwrap()));
    assert!(viewer.get("is_admin").is_none(), "{viewer}");
    // The room is the hashed meeting id; the plugNmeet API sees the same session.
    let room_id = claims["room_id"].as_str().unwrap().to_owned();
    assert_eq!(room_id.len(), 32, "{room_id}");
    let (_, j) = s
        .target
        .call("/auth/room/getActiveRoomInfo", &json!({"room_id": room_id}));
    assert_eq!(
        j["room"]["room_info"]["sid"], done["internalMeetingID"],
        "{j}"
    );
    let metadata: Value =
        serde_json::from_str(j["room"]["room_info"]["metadata"].as_str().unwrap()).unwrap();
    assert_eq!(metadata["welcome_message"], "Welcome to Algebra");
    assert_eq!(
        metadata["room_features"]["recording_features"]["is_allow"],
        true
    );
    // Nothing BBB-only reaches the room's metadata, which every participant reads.
    let text = metadata.to_string();
    assert!(
        !text.contains("mp-secret") && !text.contains("ap-secret") && !text.contains("Moodle"),
        "{text}"
    );

    // A real participant joins LiveKit with the moderator's link.
    let session = s.target.session(&moderator, &[]).json();
    assert_common(&session, true, "SUCCESS");
    let ada = Participant::join(
        session["livekit_url"].as_str().unwrap(),
        session["token"].as_str().unwrap(),
        "audio",
    );
    ada.expect_line("joined ", Duration::from_secs(30));
    let mut info = String::new();
    for _ in 0..100 {
        info = bbb_get(s, done["infoUrl"].as_str().unwrap()).text();
        if info.contains("<participantCount>1</participantCount>")
            && info.contains("<hasJoinedVoice>true</hasJoinedVoice>")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(xml_field(&info, "participantCount"), "1", "{info}");
    assert_eq!(xml_field(&info, "fullName"), "Ada O&apos;Lovelace");
    assert_eq!(xml_field(&info, "userID"), "ada-1", "BBB's own user id");
    assert_eq!(xml_field(&info, "role"), "MODERATOR");
    assert_eq!(xml_field(&info, "moderatorCount"), "1");
    assert_eq!(xml_field(&info, "voiceParticipantCount"), "1");
    assert_eq!(xml_field(&info, "meetingID"), meeting_id);
    assert_eq!(xml_field(&info, "running"), "true");
    let running = bbb_get(s, done["runningUrl"].as_str().unwrap()).text();
    assert_eq!(xml_field(&running, "running"), "true", "{running}");

    // `end` with the moderator's password ends it: LiveKit disconnects the participant.
    let ended = bbb_get(s, done["endUrl"].as_str().unwrap()).text();
    assert_eq!(xml_field(&ended, "returncode"), "SUCCESS", "{ended}");
    assert_eq!(xml_field(&ended, "messageKey"), "sentEndMeetingRequest");
    ada.expect_line("disconnected", Duration::from_secs(20));
    let running = bbb_get(s, done["runningUrl"].as_str().unwrap()).text();
    assert_eq!(xml_field(&running, "running"), "false", "{running}");
    let gone = bbb_get(s, done["infoUrl"].as_str().unwrap()).text();
    assert_eq!(xml_field(&gone, "messageKey"), "notFound", "{gone}");
    // Its passwords went with the session: an old link's password joins nobody now.
    let late = bbb_get(
        s,
        &bbb_url(
            s,
            "join",
            &format!(
                "fullName=Late&meetingID={}&password=mp-secret&redirect=false",
                urlencode(&meeting_id)
            ),
        ),
    )
    .text();
    assert_eq!(xml_field(&late, "messageKey"), "notFound", "{late}");
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What the BBB API refuses, and its answers read raw: the version at its root, checksums,
/// the API key, escaping, a form body, the redirect a browser follows, and roles.
fn bbb_refusals_and_raw_answers(s: &Suite) {
    let key = &s.target.api_key;
    // The root answers its version, unsigned, as BBB's does.
    for root in ["api", "api/"] {
        let r = bbb_get(s, &format!("/{key}/bigbluebutton/{root}"));
        assert_eq!(r.status, 200);
        assert!(
            r.content_type().starts_with("text/xml"),
            "{}",
            r.content_type()
        );
        assert_eq!(xml_field(&r.text(), "returncode"), "SUCCESS");
        assert_eq!(xml_field(&r.text(), "version"), "2.0");
    }
    // SHA-512, which LMS integrations may be set to sign with, is taken as BBB takes it.
    let sha512 = {
        use sha2::Digest as _;
        let secret = &s.target.api_secret;
        hex::encode(sha2::Sha512::digest(
            format!("getMeetings{secret}").as_bytes(),
        ))
    };
    let listed = bbb_get(
        s,
        &format!("/{key}/bigbluebutton/api/getMeetings?checksum={sha512}"),
    );
    assert_eq!(
        xml_field(&listed.text(), "returncode"),
        "SUCCESS",
        "{}",
        listed.text()
    );
    let meeting = unique("bbbraw");
    let create = format!(
        "name={}&meetingID={meeting}&moderatorPW=mp&attendeePW=ap&duration=45&meta_bbb-context=%3Cb%3E%26",
        urlencode("Tom & Jerry's <Room>")
    );
    // Refused, each with BBB's key and nothing created: a wrong secret, no checksum, a changed
    // parameter, another call's checksum, another API key.
    let wrong_secret = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(
            format!("create{create}not-the-secret").as_bytes(),
        ))
    };
    let signed = bbb_url(s, "create", &create);
    let refused = [
        format!("/{key}/bigbluebutton/api/create?{create}&checksum={wrong_secret}"),
        format!("/{key}/bigbluebutton/api/create?{create}"),
        signed.replace("moderatorPW=mp", "moderatorPW=mq"),
        signed.replace("/api/create?", "/api/join?"),
    ];
    for url in &refused {
        let r = bbb_get(s, url);
        assert_eq!(r.status, 200, "BBB answers errors with 200");
        let text = r.text();
        assert_eq!(xml_field(&text, "returncode"), "FAILED", "{url}: {text}");
        assert_eq!(xml_field(&text, "messageKey"), "checksumError", "{url}");
    }
    let other_key = bbb_get(s, &signed.replacen(&format!("/{key}/"), "/not-the-key/", 1)).text();
    assert_eq!(xml_field(&other_key, "messageKey"), "apiKeyError");
    let (_, j) = s
        .target
        .call("/auth/room/isRoomActive", &json!({"room_id": meeting}));
    assert_eq!(
        j["is_active"], false,
        "refused creates created nothing: {j}"
    );

    // Created, with the name and meta escaped in the XML.
    let created = bbb_get(s, &signed).text();
    assert_eq!(xml_field(&created, "returncode"), "SUCCESS", "{created}");
    assert_eq!(
        xml_field(&created, "meetingName"),
        "Tom &amp; Jerry&apos;s &lt;Room&gt;"
    );
    assert_eq!(xml_field(&created, "meetingID"), meeting);
    let info = bbb_get(
        s,
        &bbb_url(s, "getMeetingInfo", &format!("meetingID={meeting}")),
    )
    .text();
    assert_eq!(xml_field(&info, "bbb-context"), "&lt;b&gt;&amp;", "{info}");
    assert_eq!(xml_field(&info, "running"), "false");
    assert_eq!(xml_field(&info, "participantCount"), "0");
    assert_eq!(xml_field(&info, "duration"), "45", "minutes, as created");

    // A POST with a form body, signed over the body.
    let params = format!("fullName=Carol&meetingID={meeting}&role=VIEWER&redirect=false");
    let url = bbb_url(s, "join", &params);
    let checksum = url.rsplit("checksum=").next().unwrap();
    let body = format!("{params}&checksum={checksum}");
    let posted = s
        .target
        .post(
            &format!("/{key}/bigbluebutton/api/join"),
            body.as_bytes(),
            &[("Content-Type", "application/x-www-form-urlencoded")],
        )
        .text();
    assert_eq!(xml_field(&posted, "returncode"), "SUCCESS", "{posted}");
    let carol = jwt_claims(
        xml_field(&posted, "url")
            .split("access_token=")
            .nth(1)
            .unwrap(),
    );
    assert!(carol.get("is_admin").is_none(), "role VIEWER: {carol}");

    // By default `join` redirects the browser to the join page with its token.
    let redirect = bbb_get(
        s,
        &bbb_url(
            s,
            "join",
            &format!("fullName=Dan&meetingID={meeting}&role=MODERATOR&userID=dan%40lms"),
        ),
    );
    assert_eq!(redirect.status, 302, "{}", redirect.text());
    let location = redirect.header("location").unwrap();
    assert!(
        location.starts_with(&format!("{}/?access_token=", s.target.base)),
        "{location}"
    );
    assert_eq!(redirect.header("cache-control"), Some("no-store"));
    let dan = jwt_claims(location.split("access_token=").nth(1).unwrap());
    assert_eq!(dan["is_admin"], true);
    let dan_id = dan["user_id"].as_str().unwrap();
    assert!(
        dan_id.starts_with("bbb-") && dan_id.len() == 36,
        "an e-mail is no user id: {dan_id}"
    );
    // The page takes it: the link works.
    let page = s
        .target
        .session(location.split("access_token=").nth(1).unwrap(), &[])
        .json();
    assert_common(&page, true, "SUCCESS");

    // Join refusals: no role and no password, a wrong password, an unknown role, a created
    // time that is not this session's, no name, a meeting that does not run.
    for (params, message_key) in [
        (format!("fullName=E&meetingID={meeting}"), "invalidPassword"),
        (
            format!("fullName=E&meetingID={meeting}&password=guess"),
            "invalidPassword",
        ),
        (
            format!("fullName=E&meetingID={meeting}&role=ADMIN"),
            "invalidRole",
        ),
        (
            format!("fullName=E&meetingID={meeting}&role=VIEWER&createTime=1"),
            "mismatchCreateTime",
        ),
        (
            format!("meetingID={meeting}&role=VIEWER"),
            "missingParamFullName",
        ),
        (
            "fullName=E&meetingID=nothing-here&role=VIEWER".to_owned(),
            "notFound",
        ),
        ("fullName=E&role=VIEWER".to_owned(), "missingParamMeetingID"),
    ] {
        let text = bbb_get(s, &bbb_url(s, "join", &params)).text();
        assert_eq!(xml_field(&text, "returncode"), "FAILED", "{params}: {text}");
        assert_eq!(xml_field(&text, "messageKey"), message_key, "{params}");
    }
    // A meta name that cannot be an XML element, and an unknown call, are refused.
    let bad_meta = bbb_get(s, &bbb_url(s, "create", "meetingID=m-bad&meta_a%3Cb=1")).text();
    assert_eq!(
        xml_field(&bad_meta, "messageKey"),
        "invalidMetadata",
        "{bad_meta}"
    );
    // BBB's hooks API is not there: a path below a call is no call.
    assert_eq!(bbb_get(s, &bbb_url(s, "hooks/create", "")).status, 404);
    let unknown = bbb_get(s, &bbb_url(s, "getDefaultConfigXML", "")).text();
    assert_eq!(xml_field(&unknown, "messageKey"), "unsupportedRequest");
    // Recordings: none for this meeting; unpublishing is refused rather than pretended.
    let none = bbb_get(
        s,
        &bbb_url(s, "getRecordings", &format!("meetingID={meeting}")),
    )
    .text();
    assert_eq!(xml_field(&none, "messageKey"), "noRecordings", "{none}");
    let unpublish = bbb_get(
        s,
        &bbb_url(s, "publishRecordings", "recordID=r-1&publish=false"),
    )
    .text();
    assert_eq!(xml_field(&unpublish, "returncode"), "FAILED", "{unpublish}");
    let missing = bbb_get(
        s,
        &bbb_url(s, "deleteRecordings", "recordID=no-such-recording"),
    )
    .text();
    assert_eq!(xml_field(&missing, "messageKey"), "notFound", "{missing}");
    // A room made with plugNmeet's API has no BBB passwords: `role` joins it, a password does
    // not, and `end` with a password is refused.
    let plain = unique("bbbplain");
    s.target.create_room(&plain, json!({}));
    let by_role = bbb_get(
        s,
        &bbb_url(
            s,
            "join",
            &format!("fullName=F&meetingID={plain}&role=VIEWER&redirect=false"),
        ),
    )
    .text();
    assert_eq!(xml_field(&by_role, "returncode"), "SUCCESS", "{by_role}");
    let by_password = bbb_get(
        s,
        &bbb_url(
            s,
            "join",
            &format!("fullName=F&meetingID={plain}&password=x"),
        ),
    )
    .text();
    assert_eq!(
        xml_field(&by_password, "messageKey"),
        "invalidPassword",
        "{by_password}"
    );
    let end_guess = bbb_get(
        s,
        &bbb_url(s, "end", &format!("meetingID={plain}&password=x")),
    )
    .text();
    assert_eq!(
        xml_field(&end_guess, "messageKey"),
        "invalidPassword",
        "{end_guess}"
    );
    let (_, j) = s
        .target
        .call("/auth/room/isRoomActive", &json!({"room_id": plain}));
    assert_eq!(j["is_active"], true, "a refused end ended nothing: {j}");
    // `end` without a password (BBB 2.x): done.
    let ended = bbb_get(s, &bbb_url(s, "end", &format!("meetingID={meeting}"))).text();
    assert_eq!(xml_field(&ended, "returncode"), "SUCCESS", "{ended}");
    let (_, j) = s
        .target
        .call("/auth/room/isRoomActive", &json!({"room_id": meeting}));
    assert_eq!(j["is_active"], false, "{j}");
}
