//! `edgemeet up` as a person uses it: it starts, keeps its state and compiled component across
//! restarts, stops everything it started on a signal, and refuses a bad configuration at once.

mod support;

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{unique, Participant, System};

#[test]
fn restart_keeps_rooms_and_reuses_the_compiled_component() {
    let mut system = System::start("up-restart", "");
    let room = unique("persist");
    let sid = system.target.create_room(&room, json!({}))["sid"].clone();
    let livekit = system.livekit_http.trim_start_matches("http://").to_owned();
    assert!(
        TcpStream::connect(&livekit).is_ok(),
        "LiveKit listens while up"
    );

    let status = system
        .stop(Duration::from_secs(15))
        .expect("stops on SIGTERM within 15 s");
    assert!(status.success(), "clean exit: {status}");
    assert!(
        TcpStream::connect(&livekit).is_err(),
        "LiveKit was stopped with it"
    );

    system.restart();
    let (_, j) = system
        .target
        .call("/auth/room/isRoomActive", &json!({"room_id": room}));
    assert_eq!(j["is_active"], true, "{j}");
    let again = system.target.create_room(&room, json!({}));
    assert_eq!(again["sid"], sid, "same session after restart");
    let log = system.stderr();
    assert!(
        log.contains("cached=true"),
        "second start loads the compiled component from the cache:\n{log}"
    );
}

/// The one-machine system ends rooms as a deployment with regions does: its LiveKit's webhooks
/// reach the edge through the local media-sidecar. A room whose only participant leaves ends
/// once its `empty_timeout` has passed, and is then a past room counting her.
#[test]
fn a_room_left_empty_ends_and_becomes_a_past_room() {
    let system = System::start("up-lifecycle", "");
    let room = unique("emptied");
    system
        .target
        .create_room(&room, json!({ "empty_timeout": 8 }));
    let token = system.target.join_token(&room, "alice", false, false);
    let session = system.target.session(&token, &[]).json();
    assert_eq!(session["status"], true, "{session}");
    let alice = Participant::join(
        session["livekit_url"].as_str().expect("livekit_url"),
        session["token"].as_str().expect("token"),
        "none",
    );
    alice.expect_line("joined ", Duration::from_secs(30));
    // While she is there the room stays active past its empty_timeout and a heartbeat: the
    // edge heard of her.
    std::thread::sleep(Duration::from_secs(14));
    let (_, active) = system
        .target
        .call("/auth/room/isRoomActive", &json!({ "room_id": room }));
    assert_eq!(active["is_active"], true, "{active}");
    assert_eq!(alice.leave(Duration::from_secs(20)), Some(0));
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (_, active) = system
            .target
            .call("/auth/room/isRoomActive", &json!({ "room_id": room }));
        if active["is_active"] == false {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the emptied room never ended: {active}\n{}",
            system.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let (_, past) = system
        .target
        .call("/auth/room/fetchPastRooms", &json!({ "room_ids": [room] }));
    let listed = &past["result"]["rooms_list"];
    assert_eq!(listed[0]["room_id"], room.as_str(), "{past}");
    assert_eq!(listed[0]["joined_participants"], "1", "{past}");
}

/// The customer's server is told of a meeting as plugNmeet tells it: the webhooks, signed as
/// plugNmeet signs them and checked by LiveKit's own receiver (the same scheme), arrive in
/// order, each once, on the local sidecar's heartbeats.
#[test]
fn the_customers_server_hears_of_the_meeting() {
    let hook_port = support::free_port();
    let system = System::start_with(
        "up-webhooks",
        &format!("webhook_url = \"http://127.0.0.1:{hook_port}/hook\""),
        "",
    );
    let mut receiver = std::process::Command::new(support::python())
        .arg(support::repo_root().join("tests/clients/webhook_receiver.py"))
        .args(["--port", &hook_port.to_string(), "--api-key", "plugnmeet"])
        .args(["--api-secret", &system.target.api_secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the webhook receiver");
    let lines = support::forward_lines(receiver.stdout.take().expect("stdout"));
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(30)).as_deref(),
        Ok("listening")
    );
    let room = unique("hooked");
    // Another room created at the same time: its events go side by side with the first's.
    let other = unique("hooked-other");
    system.target.create_room(&other, json!({}));
    system.target.create_room(&room, json!({}));
    let token = system.target.join_token(&room, "alice", false, false);
    let session = system.target.session(&token, &[]).json();
    let alice = Participant::join(
        session["livekit_url"].as_str().expect("livekit_url"),
        session["token"].as_str().expect("token"),
        "none",
    );
    alice.expect_line("joined ", Duration::from_secs(30));
    assert_eq!(alice.leave(Duration::from_secs(20)), Some(0));
    let (_, ended) = system
        .target
        .call("/auth/room/endRoom", &json!({ "room_id": room }));
    assert_eq!(ended["status"], true, "{ended}");

    let expected = [
        "room_created",
        "room_started",
        "participant_joined",
        "participant_left",
        "room_finished",
        "session_ended",
        "artifact_created",
        "analytics_proceeded",
    ];
    let mut received: Vec<serde_json::Value> = Vec::new();
    let mut others: Vec<serde_json::Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.len() < expected.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.starts_with("refused") => panic!("a webhook was refused: {line}"),
            Ok(line) => {
                let event: serde_json::Value = serde_json::from_str(&line).expect("JSON");
                if event["room_id"] == other.as_str() {
                    others.push(event);
                } else {
                    received.push(event);
                }
            }
            Err(_) => panic!(
                "webhooks received: {received:?}, expected {expected:?}\n{}",
                system.stderr()
            ),
        }
    }
    let names: Vec<&str> = received
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(names, expected, "{received:?}");
    for event in &received {
        assert_eq!(event["room_id"], room.as_str(), "{event}");
        assert_eq!(event["sid"], received[0]["sid"], "one session: {event}");
    }
    let other_names: Vec<&str> = others.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(other_names, ["room_created"], "{others:?}");
    assert_ne!(others[0]["id"], received[0]["id"]);
    assert_eq!(received[2]["identity"], "alice");
    assert_eq!(received[2]["num_participants"], 1);
    assert_eq!(received[3]["identity"], "alice");
    // The analytics file it announces, as an artifact and then as itself, has alice's
    // attendance.
    assert_eq!(received[6]["artifact_type"], "MEETING_ANALYTICS");
    let file_id = received[7]["file_id"].as_str().expect("file_id");
    assert_eq!(received[6]["artifact_id"], file_id);
    let (_, artifact) = system
        .target
        .call("/auth/artifact/info", &json!({ "artifact_id": file_id }));
    assert_eq!(
        artifact["room_info"]["room_sid"], received[0]["sid"],
        "{artifact}"
    );
    let (_, token) = system.target.call(
        "/auth/analytics/getDownloadToken",
        &serde_json::json!({ "file_id": file_id }),
    );
    let token = token["token"].as_str().expect("token");
    let file = system
        .target
        .get_unfollowed(&format!("/download/analytics/{token}"));
    assert_eq!(file.status, 200, "{}", file.text());
    let analytics = file.json();
    assert_eq!(analytics["room"]["room_id"], room.as_str(), "{analytics}");
    let users = analytics["users"].as_array().expect("users");
    assert_eq!(users.len(), 1, "{analytics}");
    assert_eq!(users[0]["user_id"], "alice");
    let events: Vec<&str> = users[0]["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(events, ["joined", "left"], "{analytics}");
    // Nothing more comes (each event once): a heartbeat later, still eight.
    assert!(
        lines.recv_timeout(Duration::from_secs(7)).is_err(),
        "more webhooks than the meeting made"
    );
    drop(receiver.stdin.take());
    let _ = receiver.wait();
}

/// Killed outright (no destructors, no signal handler), `edgemeet up` still takes its LiveKit
/// with it: the child has a parent-death signal.
/// Waits until nothing listens at `address`; panics with `message` after `within`.
fn assert_closes_within(address: &str, within: Duration, message: &str) {
    let deadline = std::time::Instant::now() + within;
    while TcpStream::connect(address).is_ok() {
        assert!(std::time::Instant::now() < deadline, "{message}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// LiveKit, and the recorder `up` starts by default beside a LiveKit it can reach (the tests'
/// LiveKit advertises the namespace's address), go when edgemeet goes, however it goes.
#[test]
fn livekit_and_the_local_recorder_do_not_outlive_a_killed_edgemeet() {
    let system = System::start("up-killed", "[recorder]\nport = 0\n");
    let livekit = system.livekit_http.trim_start_matches("http://").to_owned();
    let recorder = banner_address(&system, "recorder").unwrap_or_else(|| {
        panic!("no recorder in the banner: {:#?}", system.banner);
    });
    for (what, address) in [("LiveKit", &livekit), ("the recorder", &recorder)] {
        assert!(
            TcpStream::connect(address).is_ok(),
            "{what} listens while up: {address}"
        );
    }
    let pid = system.pid().expect("running") as libc::pid_t;
    // SAFETY: signalling our own child, not its group.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    for (what, address) in [("LiveKit", &livekit), ("the recorder", &recorder)] {
        assert_closes_within(
            address,
            Duration::from_secs(10),
            &format!("{what} outlived a SIGKILLed edgemeet up by 10 s"),
        );
    }
}

/// A first SIGTERM waits for open requests; a second one stops at once, LiveKit included.
#[test]
fn a_second_signal_stops_at_once() {
    use std::io::Write as _;
    let mut system = System::start("up-twice", "");
    let livekit = system.livekit_http.trim_start_matches("http://").to_owned();
    // A request whose body never comes holds the first, graceful stop (for up to 30 s).
    let address = system.target.base.trim_start_matches("http://").to_owned();
    let mut stalled = TcpStream::connect(&address).expect("connect");
    stalled
        .write_all(b"POST /auth/room/create HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .expect("write");
    std::thread::sleep(Duration::from_millis(200));
    let pid = system.pid().expect("running") as libc::pid_t;
    // SAFETY: signalling our own child, not its group.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    assert!(
        system.wait_exit(Duration::from_secs(2)).is_none(),
        "the first signal did not wait for the open request"
    );
    // SAFETY: as above.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = system
        .wait_exit(Duration::from_secs(5))
        .expect("a second signal stops at once");
    assert_eq!(status.code(), Some(130), "{status}");
    assert_closes_within(
        &livekit,
        Duration::from_secs(10),
        "LiveKit outlived edgemeet up",
    );
    drop(stalled);
}

#[test]
fn refuses_a_bad_configuration_without_echoing_secrets() {
    let dir = std::env::temp_dir().join(unique("edgemeet-badcfg"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("edgemeet.toml");
    std::fs::write(
        &config,
        format!(
            "[edge]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\napi_secret = \"tooshort\"\n\
             [[regions]]\nid = \"eu\"\nlat = 50.0\nlon = 8.0\nlivekit_url = \"wss://eu.example\"\n\
             api_key = \"k\"\napi_secret = \"also-a-secret-that-is-long-enough-xx\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edgemeet"))
        .args(["up", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("api_secret"), "{stderr}");
    assert!(
        !stderr.contains("tooshort"),
        "the secret is not echoed: {stderr}"
    );
    let missing = Command::new(env!("CARGO_BIN_EXE_edgemeet"))
        .args(["up", "--config"])
        .arg(dir.join("no-such-file.toml"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such-file.toml"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The address in the banner line that starts with `label`, e.g. `recorder     http://...`.
fn banner_address(system: &System, label: &str) -> Option<String> {
    system.banner.iter().find_map(|line| {
        let rest = line.trim_start().strip_prefix(label)?.trim_start();
        let url = rest.split_whitespace().next()?;
        Some(url.trim_start_matches("http://").to_owned())
    })
}

/// A recorder that was not asked for and cannot start leaves the rest running, and the banner
/// says so.
#[test]
fn a_local_recorder_that_cannot_start_is_named_and_the_rest_runs() {
    let system = System::start(
        "up-recorder-broken",
        "[recorder]\nport = 0\nbinary = \"/bin/false\"\n",
    );
    let note = system
        .banner
        .iter()
        .find(|line| line.trim_start().starts_with("recorder"))
        .unwrap_or_else(|| panic!("no recorder line: {:#?}", system.banner));
    assert!(
        note.contains("not started") && note.contains("exited"),
        "{note}"
    );
    system
        .target
        .create_room(&unique("after-recorder"), json!({}));
}
