//! The edge dispatches recordings to recorder nodes, with real parts: `edgemeet up` (the edge
//! component in the local host, a real LiveKit and the local media-sidecar) configured with a
//! `[[recorders]]` entry, a real `recorder-native serve` at that address heartbeating and
//! reporting its jobs to the edge's `/internal/recorder/events`, a moderator publishing audio
//! and video over real WebRTC (LiveKit's Python realtime SDK) through the edge's session, and
//! ffprobe looking at the MP4 the recorder wrote. Everything is asked of the edge the way a
//! plugNmeet client and backend ask: `/api/recording` with a join token, `/auth/room/*` and
//! `/auth/recording/*` signed.
//!
//! Runs inside `scripts/test.sh`'s private network namespace (WebRTC ignores loopback). The
//! cases with a recorder run one at a time (a composite encode takes a core).

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::recorder::{number, probe, serial, signal, stream, PlannedRecorder, Service};
use support::{unique, xml_field, Participant, System, Target};

/// The edge with a local LiveKit and one recorder configured (not started).
fn system_with_recorder(name: &str, edge_toml: &str) -> (System, PlannedRecorder) {
    let recorder = PlannedRecorder::new("rec-1", name);
    let system = System::start_with(name, edge_toml, &recorder.edge_toml());
    (system, recorder)
}

/// `POST /api/recording` with `token` as a Bearer token (none when empty) and these body bytes.
fn recording_raw(target: &Target, token: &str, body: &[u8]) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Content-Type", "application/json")];
    if !token.is_empty() {
        headers.push(("Authorization", bearer.as_str()));
    }
    let reply = target.post("/api/recording", body, &headers);
    let json = serde_json::from_slice(&reply.body).unwrap_or_else(|_| json!({"raw": reply.text()}));
    (reply.status, json)
}

/// `POST /api/recording` with a JSON body.
fn recording(target: &Target, token: &str, body: &Value) -> (u16, Value) {
    recording_raw(target, token, &serde_json::to_vec(body).expect("json"))
}

fn task(target: &Target, token: &str, task: &str) -> (u16, Value) {
    recording(target, token, &json!({ "task": task }))
}

/// plugNmeet's flags are booleans in some messages and 0/1 in `ActiveRoomInfo`.
fn truthy(v: &Value) -> bool {
    v == &json!(true) || v == &json!(1)
}

/// `room.room_info` of `getActiveRoomInfo`.
fn room_info(target: &Target, room: &str) -> Value {
    let (status, body) = target.call("/auth/room/getActiveRoomInfo", &json!({ "room_id": room }));
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    body["room"]["room_info"].clone()
}

/// Polls `room_info` until `want` holds; returns it.
fn wait_room_info(
    system: &System,
    room: &str,
    what: &str,
    timeout: Duration,
    want: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let info = room_info(&system.target, room);
        if want(&info) {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "room {room}: not {what} within {timeout:?}: {info}\nedge log:\n{}",
            system.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A created room and its moderator, who opened a session and publishes audio and video in
/// its LiveKit room. Returns the moderator's join token and the publisher.
fn meeting(system: &System, room: &str) -> (String, Participant) {
    meeting_with(system, room, json!({ "is_allow": true }))
}

/// [`meeting`] of a room created with these `recording_features`.
fn meeting_with(system: &System, room: &str, recording_features: Value) -> (String, Participant) {
    system.target.create_room(
        room,
        json!({ "metadata": { "room_features": { "recording_features": recording_features } } }),
    );
    moderator_publishes(system, room)
}

/// A moderator of running room `room` opens a session and publishes audio and video in its
/// LiveKit room. Returns the moderator's join token and the publisher.
fn moderator_publishes(system: &System, room: &str) -> (String, Participant) {
    let token = system.target.join_token(room, "mod", true, false);
    let reply = system.target.session(&token, &[]);
    let session = reply.json();
    assert_eq!(
        (reply.status, &session["status"]),
        (200, &json!(true)),
        "{session}"
    );
    let publisher = Participant::join(
        session["livekit_url"].as_str().expect("livekit_url"),
        session["token"].as_str().expect("token"),
        "audio,video",
    );
    publisher.expect_line("joined", Duration::from_secs(30));
    (token, publisher)
}

/// Asks to start a recording until the edge has heard the recorder's first heartbeat (until
/// then it has no live recorder: 503); the first other answer must be the start.
fn start_once_the_recorder_is_heard(
    system: &System,
    recorder: &mut Service,
    token: &str,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = task(&system.target, token, "START_RECORDING");
        if status == 503 && body["msg"] == "notifications.no-recorder-available" {
            if Instant::now() >= deadline {
                recorder.wait_log(0, "", Duration::from_secs(1));
                panic!(
                    "the edge never took the recorder as live: {body}\nrecorder log:\n{}\nedge log:\n{}",
                    recorder.log.join("\n"),
                    system.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
            continue;
        }
        assert_eq!(
            (status, &body["status"], &body["msg"]),
            (200, &json!(true), &json!("success")),
            "START_RECORDING: {body}\nedge log:\n{}",
            system.stderr()
        );
        let record_id = body["record_id"].as_str().unwrap_or_default().to_owned();
        assert!(!record_id.is_empty(), "no record_id: {body}");
        return record_id;
    }
}

/// The recordings `/auth/recording/fetch` lists for `room` (empty when it finds none).
fn fetch(target: &Target, room: &str) -> (Value, Vec<Value>) {
    let (status, body) = target.call(
        "/auth/recording/fetch",
        &json!({ "room_ids": [room], "from": 0, "limit": 20, "order_by": "DESC" }),
    );
    assert_eq!(status, 200, "{body}");
    let list = body["result"]["recordings_list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if body["status"] != true {
        assert_eq!(body["msg"], "no recordings found", "{body}");
        assert!(list.is_empty(), "{body}");
    }
    (body, list)
}

/// plugNmeet's download: a token from `getDownloadToken`, then `GET /download/recording/<token>`,
/// which the edge answers with a redirect to the recorder node; the node sends the file itself.
fn download_through_the_edge(target: &Target, record_id: &str, file: &std::path::Path) {
    let (status, body) = target.call(
        "/auth/recording/getDownloadToken",
        &json!({ "record_id": record_id }),
    );
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    let token = body["token"].as_str().expect("token");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let url = format!("{}/download/recording/{token}", target.base);
    let redirect = agent.get(&url).call().expect("GET the download");
    assert_eq!(redirect.status(), 307);
    let location = redirect
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_owned();
    assert!(location.contains("/download/"), "{location}");
    assert!(
        !location.contains(token),
        "the edge's token went to the node: {location}"
    );
    // The browser follows it.
    let mut file_response = agent.get(&location).call().expect("GET the node's link");
    assert_eq!(file_response.status(), 200);
    let disposition = file_response
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(disposition.contains("attachment"), "{disposition}");
    let bytes = file_response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .expect("read the recording");
    assert_eq!(bytes, std::fs::read(file).expect("read the file"));
    // A forged token gets nowhere.
    let forged = agent
        .get(&format!("{}/download/recording/{token}x", target.base))
        .call()
        .expect("GET");
    assert_eq!(forged.status(), 401);
}

/// The BigBlueButton API lists the recording with a playback link that downloads it, and its
/// updateRecordings names it.
fn bbb_sees_the_recording(target: &Target, room: &str, record_id: &str, file: &std::path::Path) {
    let listed = target
        .get_unfollowed(&target.bbb_path("getRecordings", &format!("meetingID={room}")))
        .text();
    assert_eq!(xml_field(&listed, "returncode"), "SUCCESS", "{listed}");
    assert_eq!(xml_field(&listed, "recordID"), record_id, "{listed}");
    assert_eq!(xml_field(&listed, "meetingID"), room);
    // Bytes, as BBB gives sizes (the catalog's MB, times a million, within its rounding).
    let size: f64 = xml_field(&listed, "size").parse().unwrap();
    let on_disk = std::fs::metadata(file).unwrap().len() as f64;
    assert!(
        (size - on_disk).abs() <= on_disk * 0.05 + 1e4,
        "{size} vs {on_disk} bytes"
    );
    // The playback link, which integrations keep, redirects to the node's file.
    let playback = xml_field(&listed, "url").replace("&amp;", "&");
    assert!(playback.contains("/playback/recording/"), "{playback}");
    let redirect = target.get_unfollowed(&playback);
    assert_eq!(redirect.status, 307, "{playback}: {}", redirect.text());
    // updateRecordings names it; getRecordings shows the name where BBB integrations read it.
    let updated = target
        .get_unfollowed(&target.bbb_path(
            "updateRecordings",
            &format!("recordID={record_id}&meta_bbb-recording-name=Lecture%201"),
        ))
        .text();
    assert_eq!(xml_field(&updated, "updated"), "true", "{updated}");
    let named = target
        .get_unfollowed(&target.bbb_path("getRecordings", &format!("recordID={record_id}")))
        .text();
    assert_eq!(xml_field(&named, "name"), "Lecture 1", "{named}");
    assert_eq!(xml_field(&named, "bbb-recording-name"), "Lecture 1");
    let published = target
        .get_unfollowed(&target.bbb_path(
            "publishRecordings",
            &format!("recordID={record_id}&publish=true"),
        ))
        .text();
    assert_eq!(xml_field(&published, "published"), "true", "{published}");
}

/// The request itself is checked before anything is dispatched: who asks, and what.
fn bad_requests_are_refused(system: &System, room: &str, moderator: &str) {
    let target = &system.target;
    let refused = |(status, body): (u16, Value), want: u16, what: &str| {
        assert_eq!(status, want, "{what}: {body}");
        assert_eq!(body["status"], false, "{what}: {body}");
    };
    refused(task(target, "", "START_RECORDING"), 401, "no token");
    refused(
        task(target, "not-a-token", "START_RECORDING"),
        401,
        "a bad token",
    );
    // Another first character of the signature (every bit of it counts).
    let at = moderator.rfind('.').expect("a JWT") + 1;
    let mut forged = moderator.to_owned();
    let other = if moderator[at..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    forged.replace_range(at..=at, other);
    refused(
        task(target, &forged, "START_RECORDING"),
        401,
        "a token with a bad signature",
    );
    refused(
        task(target, moderator, "START_EVERYTHING"),
        400,
        "unknown task",
    );
    refused(recording(target, moderator, &json!({})), 400, "no task");
    refused(
        recording_raw(target, moderator, b"{not json"),
        400,
        "not JSON",
    );
    refused(
        task(target, moderator, "START_RTMP"),
        400,
        "START_RTMP without rtmp_url",
    );
    refused(
        recording(
            target,
            moderator,
            &json!({ "task": "START_RTMP", "rtmp_url": "" }),
        ),
        400,
        "START_RTMP with an empty rtmp_url",
    );
    let info = room_info(target, room);
    assert!(
        !truthy(&info["is_recording"]) && !truthy(&info["is_active_rtmp"]),
        "a refused request started something: {info}"
    );
}

#[test]
fn a_moderator_records_a_meeting_and_the_edge_lists_it() {
    let _serial = serial();
    let (system, recorder) = system_with_recorder("recording-edge", "");
    let mut service = recorder.start(&system, "");
    let room = unique("rec-meeting");
    let (moderator, _publisher) = meeting(&system, &room);
    let guest = system.target.join_token(&room, "guest", false, false);
    let target = &system.target;

    bad_requests_are_refused(&system, &room, &moderator);
    // Nothing runs yet: nothing to stop.
    let (_, body) = task(target, &moderator, "STOP_RECORDING");
    assert_eq!(
        (&body["status"], &body["msg"]),
        (&json!(false), &json!("notifications.recording-not-running")),
        "{body}"
    );
    // A guest may not start one.
    let (status, body) = task(target, &guest, "START_RECORDING");
    assert_eq!(status, 403, "a guest started a recording: {body}");

    let record_id = start_once_the_recorder_is_heard(&system, &mut service, &moderator);
    let info = wait_room_info(&system, &room, "recording", Duration::from_secs(30), |i| {
        truthy(&i["is_recording"])
    });
    let active_at = Instant::now();
    let sid = info["sid"].as_str().expect("sid").to_owned();
    assert!(!truthy(&info["is_active_rtmp"]), "{info}");

    let (_, body) = task(target, &moderator, "START_RECORDING");
    assert_eq!(
        (&body["status"], &body["msg"]),
        (
            &json!(false),
            &json!("notifications.recording-already-running")
        ),
        "{body}"
    );
    let (status, body) = task(target, &guest, "START_RECORDING");
    assert_eq!(status, 403, "{body}");
    let (status, body) = task(target, &guest, "STOP_RECORDING");
    assert_eq!(status, 403, "a guest stopped the recording: {body}");
    assert!(
        truthy(&room_info(target, &room)["is_recording"]),
        "the recording stopped after a guest's refused stop"
    );

    // The moderator's camera and microphone are in the recording, then 5 s of them.
    service.wait_log(
        0,
        "video track joined the composite",
        Duration::from_secs(30),
    );
    service.wait_log(0, "audio track joined the mix", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(5));
    let (status, body) = task(target, &moderator, "STOP_RECORDING");
    let wall = active_at.elapsed().as_secs_f64();
    assert_eq!(
        (status, &body["status"]),
        (200, &json!(true)),
        "STOP_RECORDING: {body}"
    );

    // Listed once the recorder reports the job COMPLETE with its file.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (listing, listed) = loop {
        let (listing, list) = fetch(target, &room);
        if let Some(entry) = list.iter().find(|r| r["record_id"] == record_id.as_str()) {
            break (listing, entry.clone());
        }
        if Instant::now() >= deadline {
            service.wait_log(0, "", Duration::from_secs(1));
            panic!(
                "recording {record_id} never listed: {listing}\nrecorder log:\n{}\nedge log:\n{}",
                service.log.join("\n"),
                system.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(listing["status"], true, "{listing}");
    assert_eq!(listing["result"]["total_recordings"], "1", "{listing}");
    assert_eq!(
        listing["result"]["recordings_list"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{listing}"
    );
    assert_eq!(listed["room_id"], room.as_str(), "{listed}");
    assert_eq!(listed["room_sid"], sid.as_str(), "{listed}");
    let creation: i64 = listed["creation_time"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("creation_time as an int64 string: {listed}"));
    assert!(
        (creation - support::now_secs()).abs() < 600,
        "creation_time {creation}: {listed}"
    );
    let file_size = number(&listed["file_size"]);
    assert!(file_size > 0.0, "{listed}");
    wait_room_info(
        &system,
        &room,
        "done recording",
        Duration::from_secs(10),
        |i| !truthy(&i["is_recording"]),
    );

    // The file the recorder wrote, where it said.
    let file = PathBuf::from(listed["file_path"].as_str().expect("file_path"));
    assert_eq!(
        file,
        recorder.recordings.join(format!("{record_id}.mp4")),
        "{listed}"
    );
    let bytes = std::fs::metadata(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .len() as f64;
    // Megabytes, of 10^6 or 2^20 bytes, perhaps rounded.
    assert!(
        file_size >= bytes / 1_048_576.0 * 0.95 - 0.01 && file_size <= bytes / 1e6 * 1.05 + 0.01,
        "file_size {file_size} MB for {bytes} bytes"
    );
    let media = probe(&file);
    let duration = number(&media["format"]["duration"]);
    assert!(
        duration >= 4.0 && (duration - wall).abs() <= 2.0,
        "{duration:.2} s recorded, {wall:.2} s between ACTIVE and the stop: {media}"
    );
    let video = stream(&media, "video");
    assert_eq!(video["codec_name"], "h264", "{media}");
    assert!(number(&video["nb_read_frames"]) >= 30.0 * 3.0, "{media}");
    let audio = stream(&media, "audio");
    assert_eq!(audio["codec_name"], "aac", "{media}");
    assert!(number(&audio["nb_read_frames"]) > 0.0, "{media}");

    let (status, info) = target.call("/auth/recording/info", &json!({ "record_id": record_id }));
    assert_eq!((status, &info["status"]), (200, &json!(true)), "{info}");
    let recording_info = &info["recording_info"];
    for field in [
        "record_id",
        "room_id",
        "room_sid",
        "file_path",
        "file_size",
        "creation_time",
        "room_creation_time",
    ] {
        assert_eq!(
            recording_info[field], listed[field],
            "{field}: {info} vs {listed}"
        );
    }
    assert_eq!(info["room_info"]["room_id"], room.as_str(), "{info}");
    let (_, unknown) = target.call(
        "/auth/recording/info",
        &json!({ "record_id": unique("no-such-recording") }),
    );
    assert_eq!(unknown["status"], false, "{unknown}");

    download_through_the_edge(target, &record_id, &file);
    bbb_sees_the_recording(target, &room, &record_id, &file);
    let (_, body) = task(target, &moderator, "STOP_RECORDING");
    assert_eq!(
        (&body["status"], &body["msg"]),
        (&json!(false), &json!("notifications.recording-not-running")),
        "{body}"
    );
    // Another room has none.
    let (other, list) = fetch(target, &unique("rec-other"));
    assert_eq!(
        (&other["status"], list.len()),
        (&json!(false), 0),
        "{other}"
    );

    // A meeting ended while it is recorded leaves a finished recording: the edge stops the
    // job before it deletes the LiveKit room.
    let second = start_once_the_recorder_is_heard(&system, &mut service, &moderator);
    assert_ne!(second, record_id);
    wait_room_info(
        &system,
        &room,
        "recording again",
        Duration::from_secs(30),
        |i| truthy(&i["is_recording"]),
    );
    std::thread::sleep(Duration::from_secs(3));
    let (status, ended) = target.call("/auth/room/endRoom", &json!({ "room_id": room }));
    assert_eq!((status, &ended["status"]), (200, &json!(true)), "{ended}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let listed = loop {
        let (_, list) = fetch(target, &room);
        if let Some(found) = list.iter().find(|r| r["record_id"] == second.as_str()) {
            break found.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the recording of the ended meeting was never listed\nrecorder log:\n{}\nedge log:\n{}",
            service.log.join("\n"),
            system.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let file = PathBuf::from(listed["file_path"].as_str().expect("file_path"));
    let media = probe(&file);
    assert!(
        number(&media["format"]["duration"]) >= 2.0,
        "the ended meeting's recording is too short: {media}"
    );
    assert_eq!(stream(&media, "video")["codec_name"], "h264", "{media}");

    // BBB's deleteRecordings naming one that does not exist deletes none of them.
    let refused = target
        .get_unfollowed(&target.bbb_path(
            "deleteRecordings",
            &format!("recordID={second},no-such-recording"),
        ))
        .text();
    assert_eq!(xml_field(&refused, "messageKey"), "notFound", "{refused}");
    assert!(
        file.exists(),
        "{} went with a refused delete",
        file.display()
    );
    // Deleting it removes the file from the recorder, then the recording from the catalog.
    let (status, deleted) = target.call("/auth/recording/delete", &json!({ "record_id": second }));
    assert_eq!(
        (status, &deleted["status"]),
        (200, &json!(true)),
        "{deleted}"
    );
    assert!(!file.exists(), "{} is still there", file.display());
    let (_, list) = fetch(target, &room);
    assert!(
        list.iter().all(|r| r["record_id"] != second.as_str()),
        "still listed: {list:?}"
    );
    assert!(
        list.iter().any(|r| r["record_id"] == record_id.as_str()),
        "{list:?}"
    );
}

#[test]
fn no_live_recorder_means_no_recording() {
    let (system, _never_started) =
        system_with_recorder("recording-none", "recorder_timeout_secs = 2");
    let target = &system.target;
    let room = unique("rec-none");
    target.create_room(&room, json!({}));
    let moderator = target.join_token(&room, "mod", true, false);
    let session = target.session(&moderator, &[]);
    assert_eq!(session.status, 200, "{}", session.text());

    let (status, body) = task(target, &moderator, "START_RECORDING");
    assert_eq!(
        (status, &body["status"], &body["msg"]),
        (
            503,
            &json!(false),
            &json!("notifications.no-recorder-available")
        ),
        "{body}"
    );
    let (status, body) = recording(
        target,
        &moderator,
        &json!({ "task": "START_RTMP", "rtmp_url": "rtmp://live.example.com/app/stream-key" }),
    );
    assert_eq!(
        (status, &body["status"], &body["msg"]),
        (
            503,
            &json!(false),
            &json!("notifications.no-recorder-available")
        ),
        "{body}"
    );
    let info = room_info(target, &room);
    assert!(
        !truthy(&info["is_recording"]) && !truthy(&info["is_active_rtmp"]),
        "{info}"
    );
    let (_, body) = task(target, &moderator, "STOP_RECORDING");
    assert_eq!(body["msg"], "notifications.recording-not-running", "{body}");
    let (_, body) = task(target, &moderator, "STOP_RTMP");
    assert_eq!(body["msg"], "notifications.rtmp-not-running", "{body}");
    let (listing, list) = fetch(target, &room);
    assert_eq!(
        (&listing["status"], list.len()),
        (&json!(false), 0),
        "{listing}"
    );
}

/// A recorder that stops heartbeating (its machine died) for `recorder_timeout_secs` takes its
/// recording with it: the room is no longer recording, nothing is listed, and a new start
/// finds no recorder.
#[test]
fn a_recorder_that_dies_ends_its_recording_and_takes_no_new_one() {
    let _serial = serial();
    let (system, recorder) = system_with_recorder("recording-dies", "recorder_timeout_secs = 2");
    let mut service = recorder.start(&system, "");
    let room = unique("rec-dies");
    let (moderator, _publisher) = meeting(&system, &room);
    let target = &system.target;

    start_once_the_recorder_is_heard(&system, &mut service, &moderator);
    wait_room_info(&system, &room, "recording", Duration::from_secs(30), |i| {
        truthy(&i["is_recording"])
    });
    service.wait_log(
        0,
        "video track joined the composite",
        Duration::from_secs(30),
    );

    // The machine goes: the service and its workers, at once.
    let workers = service.worker_pids();
    assert!(!workers.is_empty(), "no worker records the room");
    service.kill();
    for pid in workers {
        signal(pid, libc::SIGKILL);
    }
    // Swept by the next heartbeat (the local media-sidecar's, every 5 s) past the timeout.
    wait_room_info(
        &system,
        &room,
        "done recording after its recorder died",
        Duration::from_secs(30),
        |i| !truthy(&i["is_recording"]),
    );
    let (status, body) = task(target, &moderator, "START_RECORDING");
    assert_eq!(
        (status, &body["status"], &body["msg"]),
        (
            503,
            &json!(false),
            &json!("notifications.no-recorder-available")
        ),
        "{body}"
    );
    let (_, body) = task(target, &moderator, "STOP_RECORDING");
    assert_eq!(body["msg"], "notifications.recording-not-running", "{body}");
    let (listing, list) = fetch(target, &room);
    assert_eq!(
        (&listing["status"], list.len()),
        (&json!(false), 0),
        "a recording whose recorder died is listed: {listing}"
    );
}

/// `edgemeet up`'s own recorder (`[recorder] start = true`: a `recorder-native` child beside
/// the local LiveKit) records a room created with `enable_auto_cloud_recording` from its start,
/// with nobody pressing Record: once its first user is in, the recorder's next heartbeat to the
/// edge has it sent the recording. Ending the meeting leaves it listed, with the moderator's
/// media in it, in the data directory's `recordings`.
/// Then the same through BBB's API, with BBB's callbacks
/// ([`a_bbb_integration_hears_of_its_recorded_meeting`]).
#[test]
fn up_records_a_room_from_its_start_with_its_own_recorder() {
    let _serial = serial();
    let system = System::start("recording-auto", "[recorder]\nstart = true\nport = 0\n");
    let recorder_log = system.data_dir.join("recorder.log");
    let room = unique("rec-auto");
    let target = &system.target;
    let (_moderator, _publisher) = meeting_with(
        &system,
        &room,
        json!({ "is_allow": true, "is_allow_cloud": true, "enable_auto_cloud_recording": true }),
    );

    let info = wait_room_info(
        &system,
        &room,
        "recording on its own",
        Duration::from_secs(30),
        |i| truthy(&i["is_recording"]),
    );
    let sid = info["sid"].as_str().expect("sid").to_owned();
    for line in [
        "video track joined the composite",
        "audio track joined the mix",
    ] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&recorder_log).is_ok_and(|log| log.contains(line)) {
            assert!(
                Instant::now() < deadline,
                "the local recorder never logged {line:?}:\n{}",
                std::fs::read_to_string(&recorder_log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    std::thread::sleep(Duration::from_secs(4));

    let (status, ended) = target.call("/auth/room/endRoom", &json!({ "room_id": room }));
    assert_eq!((status, &ended["status"]), (200, &json!(true)), "{ended}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let listed = loop {
        let (_, list) = fetch(target, &room);
        if let Some(found) = list.first() {
            assert_eq!(list.len(), 1, "one recording, not more: {list:?}");
            break found.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the meeting's recording was never listed\nrecorder log:\n{}\nedge log:\n{}",
            std::fs::read_to_string(&recorder_log).unwrap_or_default(),
            system.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(listed["room_sid"], sid.as_str(), "{listed}");
    let file = PathBuf::from(listed["file_path"].as_str().expect("file_path"));
    assert!(
        file.starts_with(system.data_dir.join("recordings")),
        "{}",
        file.display()
    );
    let media = probe(&file);
    assert!(
        number(&media["format"]["duration"]) >= 3.0,
        "too short for a meeting recorded from its start: {media}"
    );
    assert_eq!(stream(&media, "video")["codec_name"], "h264", "{media}");
    assert_eq!(stream(&media, "audio")["codec_name"], "aac", "{media}");

    a_bbb_integration_hears_of_its_recorded_meeting(&system);
}

/// A meeting created through BBB's API to be recorded from its start, as an LMS creates one,
/// with BBB's callback URLs: the integration (`tests/clients/bbb_callback_receiver.py`, which
/// checks the recording-ready token with PyJWT as Greenlight does) is called back when the
/// meeting ends, told something was recorded, and when its recording is stored, with the
/// recording `getRecordings` lists.
fn a_bbb_integration_hears_of_its_recorded_meeting(system: &System) {
    let target = &system.target;
    let port = support::free_port();
    let mut receiver = std::process::Command::new(support::python())
        .arg(support::repo_root().join("tests/clients/bbb_callback_receiver.py"))
        .args(["--port", &port.to_string()])
        .args(["--api-secret", &target.api_secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the BBB callback receiver");
    let lines = support::forward_lines(receiver.stdout.take().expect("stdout"));
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(30)).as_deref(),
        Ok("listening")
    );
    let encoded = |url: &str| {
        url.replace('%', "%25")
            .replace(':', "%3A")
            .replace('/', "%2F")
            .replace('?', "%3F")
            .replace('=', "%3D")
            .replace('&', "%26")
    };
    let room = unique("rec-bbb");
    let created = target
        .get_unfollowed(&target.bbb_path(
            "create",
            &format!(
                "meetingID={room}&name=Lecture&record=true&autoStartRecording=true\
                 &moderatorPW=mp&attendeePW=ap&meta_endCallbackUrl={}\
                 &meta_bbb-recording-ready-url={}",
                encoded(&format!("http://127.0.0.1:{port}/ended?lms=7&room={room}")),
                encoded(&format!("http://127.0.0.1:{port}/ready")),
            ),
        ))
        .text();
    assert_eq!(xml_field(&created, "returncode"), "SUCCESS", "{created}");
    let (_moderator, _publisher) = moderator_publishes(system, &room);
    wait_room_info(
        system,
        &room,
        "recording on its own",
        Duration::from_secs(30),
        |i| truthy(&i["is_recording"]),
    );
    std::thread::sleep(Duration::from_secs(3));
    let ended = target
        .get_unfollowed(&target.bbb_path("end", &format!("meetingID={room}&password=mp")))
        .text();
    assert_eq!(xml_field(&ended, "returncode"), "SUCCESS", "{ended}");

    let mut heard: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while heard.len() < 2 {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.starts_with("refused") => panic!("a callback was refused: {line}"),
            Ok(line) => heard.push(serde_json::from_str(&line).expect("JSON")),
            Err(_) => panic!("callbacks heard: {heard:?}\nedge log:\n{}", system.stderr()),
        }
    }
    let of_kind = |kind: &str| {
        heard
            .iter()
            .find(|h| h["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} callback: {heard:?}"))
    };
    let query = &of_kind("ended")["query"];
    assert_eq!(query["meetingID"], json!([room]), "{query}");
    assert_eq!(query["recordingmarks"], json!(["true"]), "{query}");
    assert_eq!(
        query["lms"],
        json!(["7"]),
        "the URL's own query is kept: {query}"
    );
    assert_eq!(query["room"], json!([room]), "{query}");
    let ready = of_kind("ready");
    assert_eq!(ready["content_type"], "application/x-www-form-urlencoded");
    assert_eq!(ready["claims"]["meeting_id"], room.as_str(), "{ready}");
    let record_id = ready["claims"]["record_id"].as_str().expect("record_id");
    // The recording it names is the one BBB's getRecordings lists for the meeting.
    let listed = target
        .get_unfollowed(&target.bbb_path("getRecordings", &format!("meetingID={room}")))
        .text();
    assert_eq!(xml_field(&listed, "recordID"), record_id, "{listed}");
    // Each once: nothing more comes on the next heartbeats.
    assert!(
        lines.recv_timeout(Duration::from_secs(7)).is_err(),
        "more callbacks than the meeting made"
    );
    drop(receiver.stdin.take());
    let _ = receiver.wait();
}
