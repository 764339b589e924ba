//! The recorder service with real parts: a real LiveKit server (from `edgemeet up`), real
//! publishers (LiveKit's Python realtime SDK over WebRTC), `recorder-native serve` with its
//! workers joining as hidden subscribers through `livekitwebrtcsrc`, and ffprobe/ffmpeg looking
//! at what they wrote. Jobs go through the signed job API; events go to a test control plane.
//!
//! Runs inside `scripts/test.sh`'s private network namespace (WebRTC ignores loopback). The cases
//! run one at a time: they measure frames kept, which would suffer from sharing two cores.

mod support;

use std::time::{Duration, Instant};

use recorder_native::layout::{layout, Canvas, VideoKind};
use serde_json::{json, Value};
use support::recorder::{
    assert_faststart, download_token, fetch, frame_rgb, media_system, new_secret, number, probe,
    publisher_token, raw_head, recorder_token, recorder_token_until, room_with_publisher, serial,
    start_body, stream, ControlPlane, Service, RECORDER_KEY,
};
use support::{now_secs, sign, unique, Participant, System};

#[test]
fn records_a_room_through_the_api_and_reports_every_state() {
    let _serial = serial();
    let system = media_system("recorder-api");
    let (room, _publisher) = room_with_publisher(&system, "rec-room");
    let secret = new_secret();
    let control = ControlPlane::start(RECORDER_KEY, &secret);
    let mut service = Service::start("api", &secret, Some(&control), "");

    let job_id = unique("job");
    let body = start_body(&system, &room, &job_id, json!({}));
    let job = service.start_job(&body);
    assert_eq!(job["state"], "STARTING", "{job}");
    assert_eq!(job["room_id"], room.as_str());

    let active_at = {
        service.wait_state(&job_id, "ACTIVE", Duration::from_secs(30));
        Instant::now()
    };
    // Starting the same job again (with a re-minted token) returns it; other settings conflict.
    let mut again = body.clone();
    again["token"] = recorder_token(&system, &room).into();
    let (status, reply) = service.call("/jobs/start", &again);
    assert_eq!(
        (status, reply["msg"].as_str()),
        (200, Some("job already exists")),
        "{reply}"
    );
    assert_eq!(reply["job"]["state"], "ACTIVE");
    let mut other = body.clone();
    other["mode"] = "tracks".into();
    let (status, reply) = service.call("/jobs/start", &other);
    assert_eq!(status, 409, "{reply}");

    service.wait_log(
        0,
        "video track joined the composite",
        Duration::from_secs(30),
    );
    service.wait_log(0, "audio track joined the mix", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(6));
    let (status, reply) = service.call("/jobs/stop", &json!({ "job_id": job_id }));
    let wall = active_at.elapsed().as_secs_f64();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["job"]["state"], "ENDING");
    let done = service.wait_state(&job_id, "COMPLETE", Duration::from_secs(30));

    let file = std::path::PathBuf::from(done["file"].as_str().expect("file"));
    assert_eq!(file, service.recordings.join(format!("{job_id}.mp4")));
    assert!(
        !file.with_extension("part.mp4").exists(),
        "fragmented file left"
    );
    assert_faststart(&file);
    let size = std::fs::metadata(&file).expect("stat").len();
    assert_eq!(done["file_bytes"].as_u64(), Some(size), "{done}");
    // The meeting's content is for the service's user only.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file).expect("stat").permissions(),
    );
    assert_eq!(mode & 0o077, 0, "recording mode {mode:o}");
    let mut beside: Vec<String> = std::fs::read_dir(&service.recordings)
        .expect("list recordings")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(job_id.as_str()))
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        [format!("{job_id}.mp4")],
        "leftovers beside the recording"
    );
    let info = probe(&file);
    let duration = number(&info["format"]["duration"]);
    assert!(
        (duration - wall).abs() <= 1.0,
        "duration {duration:.2} s, recorded for {wall:.2} s: {info}"
    );
    let video = stream(&info, "video");
    assert_eq!(
        (
            video["codec_name"].as_str(),
            video["width"].as_u64(),
            video["height"].as_u64()
        ),
        (Some("h264"), Some(1280), Some(720)),
        "{info}"
    );
    // Frames kept: the picture runs without gaps for as long as it lasts, and it lasts about as
    // long as the wall time (the duration check above).
    let frames = number(&video["nb_read_frames"]);
    let video_duration = number(&video["duration"]);
    assert!(
        frames >= video_duration * 30.0 * 0.99 && video_duration >= wall - 1.0,
        "{frames} frames in {video_duration:.2} s of video ({wall:.2} s recorded): frames were lost"
    );
    assert_eq!(stream(&info, "audio")["codec_name"], "aac", "{info}");

    // The token never stays on disk after the job.
    let job_files = std::fs::read_dir(service.data_dir.join("jobs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(job_files, 0, "a worker job file (with its token) was left");
    // Stopping an ended job returns it as it ended.
    let (status, reply) = service.call("/jobs/stop", &json!({ "job_id": job_id }));
    assert_eq!(
        (status, reply["job"]["state"].as_str()),
        (200, Some("COMPLETE"))
    );

    let complete = control.wait_event("COMPLETE", Duration::from_secs(10), |e| {
        e["job"]["job_id"] == job_id.as_str() && e["job"]["state"] == "COMPLETE"
    });
    assert_eq!(
        complete["job"]["file_bytes"].as_u64(),
        Some(size),
        "{complete}"
    );
    assert_eq!(
        control.states(&job_id),
        ["STARTING", "ACTIVE", "ENDING", "COMPLETE"],
        "{:#?}",
        control.events()
    );
    let ids: std::collections::HashSet<String> = control
        .events()
        .iter()
        .map(|e| e["event_id"].as_str().expect("event id").to_owned())
        .collect();
    assert_eq!(ids.len(), control.events().len(), "repeated event ids");
    let beats = control.heartbeats();
    assert!(!beats.is_empty(), "no heartbeat");
    let busy = beats
        .iter()
        .find(|b| b["jobs"].as_array().is_some_and(|j| !j.is_empty()))
        .expect("a heartbeat while the job ran");
    assert_eq!(busy["node_id"], "api");
    assert!(number(&busy["capacity"]["reserved_cores"]) > 0.0, "{busy}");
    assert!(number(&busy["capacity"]["cap_cores"]) > 0.0, "{busy}");
    assert_eq!(control.forged(), 0);

    // A stop right behind the start reaches a worker that is still starting up: it must be
    // handled as a stop (the worker ends its pipeline), not kill the worker by the signal's
    // default action before its handler exists.
    let quick = unique("quick");
    service.start_job(&start_body(&system, &room, &quick, json!({})));
    let (status, _) = service.call("/jobs/stop", &json!({ "job_id": quick }));
    assert_eq!(status, 200);
    let ended = service.wait_ended(&quick, Duration::from_secs(40));
    assert!(
        !ended["reason"]
            .as_str()
            .is_some_and(|r| r.contains("signal")),
        "{ended}"
    );
    assert_eq!(service.terminate(Duration::from_secs(30)), Some(0));
}

/// A finished recording is downloaded from the node with a link the control plane minted (no
/// API key), whole, in part, or as headers only; a forged or expired link is refused, and so
/// is one for a job that is unknown or still running. Deleted, the recording is gone for good:
/// its job stays listed without it (after a restart too), downloads answer 404, and a second
/// deletion succeeds. A running job is not deleted.
#[test]
fn a_finished_recording_is_downloaded_with_a_link_and_deleted() {
    let _serial = serial();
    let system = media_system("recorder-download");
    let (room, _publisher) = room_with_publisher(&system, "download-room");
    let secret = new_secret();
    let mut service = Service::start("download", &secret, None, "");
    let base = service.api.base.clone();
    let link = |job_id: &str, expires_at: i64| {
        format!(
            "{base}/download/{}",
            download_token(&secret, job_id, expires_at)
        )
    };

    let job_id = unique("job");
    service.start_job(&start_body(&system, &room, &job_id, json!({})));
    service.wait_state(&job_id, "ACTIVE", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    let (status, reply) = service.call("/jobs/delete", &json!({ "job_id": job_id }));
    assert_eq!(status, 409, "a running job was deleted: {reply}");
    assert!(
        reply["msg"]
            .as_str()
            .is_some_and(|m| m.contains("has not ended")),
        "{reply}"
    );
    let early = fetch("GET", &link(&job_id, now_secs() + 60), &[]);
    assert_eq!(early.status, 404, "{}", early.text());
    let (status, reply) = service.call("/jobs/stop", &json!({ "job_id": job_id }));
    assert_eq!(status, 200, "{reply}");
    let done = service.wait_state(&job_id, "COMPLETE", Duration::from_secs(30));
    let file = std::path::PathBuf::from(done["file"].as_str().expect("file"));
    let recorded = std::fs::read(&file).expect("the recording");

    let token = download_token(&secret, &job_id, now_secs() + 60);
    let url = format!("{base}/download/{token}");
    let whole = fetch("GET", &url, &[]);
    assert_eq!(whole.status, 200, "{}", whole.text());
    assert!(whole.body == recorded, "the download differs from the file");
    for (name, value) in [
        ("content-type", "video/mp4".to_owned()),
        ("content-length", recorded.len().to_string()),
        (
            "content-disposition",
            format!("attachment; filename=\"{job_id}.mp4\""),
        ),
        ("cache-control", "private, no-store".to_owned()),
        ("accept-ranges", "bytes".to_owned()),
    ] {
        assert_eq!(whole.header(name), Some(value.as_str()), "{name}");
    }
    let head = fetch("HEAD", &url, &[]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(recorded.len().to_string().as_str())
    );
    let raw = raw_head(&base, &format!("/download/{token}"));
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("\r\n\r\n"),
        "a HEAD answered with a body: {text}"
    );
    // What a browser's video player asks for.
    let part = fetch("GET", &url, &[("Range", "bytes=100-1123")]);
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 100-1123/{}", recorded.len()).as_str())
    );
    assert!(part.body == recorded[100..=1123], "the range differs");

    let other_secret = new_secret();
    for (url, status, what) in [
        (link(&job_id, now_secs() - 61), 401, "expired"),
        (
            format!(
                "{base}/download/{}",
                download_token(&other_secret, &job_id, now_secs() + 60)
            ),
            401,
            "invalid",
        ),
        (url.replacen(&job_id, &unique("job"), 1), 401, "invalid"),
        (link(&unique("unknown"), now_secs() + 60), 404, "no job"),
    ] {
        let answer = fetch("GET", &url, &[]);
        assert_eq!(answer.status, status, "{what}: {}", answer.text());
        assert!(answer.content_type().starts_with("text/plain"), "{what}");
        assert!(answer.text().contains(what), "{what}: {}", answer.text());
    }

    for _ in 0..2 {
        let (status, reply) = service.call("/jobs/delete", &json!({ "job_id": job_id }));
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["msg"], "deleted");
        assert_eq!(
            (
                &reply["job"]["state"],
                &reply["job"]["file"],
                &reply["job"]["file_bytes"]
            ),
            (&json!("COMPLETE"), &Value::Null, &Value::Null),
            "{reply}"
        );
    }
    assert!(!file.exists(), "the recording is still on disk");
    assert_eq!(fetch("GET", &url, &[]).status, 404);
    // An id the node neither knows nor keeps anything of: nothing to delete, done.
    let (status, reply) = service.call("/jobs/delete", &json!({ "job_id": unique("job") }));
    assert_eq!(
        (status, &reply["msg"]),
        (200, &json!("nothing kept")),
        "{reply}"
    );
    let (status, reply) = service.call("/jobs/delete", &json!({ "job_id": "../data" }));
    assert_eq!(status, 400, "{reply}");

    // The token went into no log line.
    service.wait_log(0, "", Duration::from_millis(200));
    let signature = token.rsplit('.').next().expect("signature");
    assert!(
        !service.log.iter().any(|line| line.contains(signature)),
        "the download token was logged"
    );
    assert_eq!(service.terminate(Duration::from_secs(30)), Some(0));
    service.restart();
    let listed = service.job(&job_id).expect("listed after a restart");
    assert_eq!(
        (&listed["state"], &listed["file"], &listed["file_bytes"]),
        (&json!("COMPLETE"), &Value::Null, &Value::Null),
        "{listed}"
    );
    // On a new port: the same token.
    let answer = fetch(
        "GET",
        &format!("{}/download/{token}", service.api.base),
        &[],
    );
    assert_eq!(answer.status, 404);
    assert!(answer.text().contains("deleted"), "{}", answer.text());
    assert_eq!(service.terminate(Duration::from_secs(30)), Some(0));
}

#[test]
fn bad_calls_are_refused_and_start_nothing() {
    let _serial = serial();
    let secret = new_secret();
    let mut service = Service::start("refuse", &secret, None, "");
    let good = json!({
        "job_id": "job-1",
        "room_id": "room",
        "livekit_url": "ws://127.0.0.1:9",
        "token": "token",
    });
    let bytes = serde_json::to_vec(&good).expect("json");
    let signature = sign(&secret, &bytes);
    let refused = |status: u16, reply: support::Reply, what: &str| {
        assert_eq!(reply.status, status, "{what}: {}", reply.text());
        let body = reply.json();
        assert_eq!(body["status"], false, "{what}: {body}");
        assert!(
            body["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
        body
    };
    let json_type = ("Content-Type", "application/json");
    refused(
        401,
        service.api.post("/jobs/start", &bytes, &[json_type]),
        "unsigned",
    );
    refused(
        401,
        service.api.post(
            "/jobs/start",
            &bytes,
            &[
                ("API-KEY", "someone-else"),
                ("HASH-SIGNATURE", &signature),
                json_type,
            ],
        ),
        "wrong key",
    );
    let forged = sign("not-the-secret", &bytes);
    refused(
        401,
        service.api.post(
            "/jobs/start",
            &bytes,
            &[
                ("API-KEY", RECORDER_KEY),
                ("HASH-SIGNATURE", &forged),
                json_type,
            ],
        ),
        "forged signature",
    );
    let tampered = serde_json::to_vec(&json!({
        "job_id": "job-1", "room_id": "room", "livekit_url": "ws://evil:9", "token": "token"
    }))
    .expect("json");
    let body = refused(
        401,
        service.api.post(
            "/jobs/start",
            &tampered,
            &[
                ("API-KEY", RECORDER_KEY),
                ("HASH-SIGNATURE", &signature),
                json_type,
            ],
        ),
        "body changed after signing",
    );
    assert!(
        !body.to_string().contains(&secret),
        "the secret leaked: {body}"
    );

    refused(
        400,
        service.api.call_bytes("/jobs/start", b"{not json"),
        "bad JSON",
    );
    let invalid = [
        ("unknown field", json!({ "surprise": 1 })),
        ("path in job id", json!({ "job_id": "../../etc/passwd" })),
        (
            "http livekit url",
            json!({ "livekit_url": "http://127.0.0.1:9" }),
        ),
        ("empty token", json!({ "token": "" })),
        (
            "http rtmp url",
            json!({ "rtmp_url": "http://127.0.0.1/live/key" }),
        ),
        ("no output", json!({ "file": false })),
        // Broadcasts go to public addresses only: not into the recorder's own network.
        (
            "rtmp to loopback",
            json!({ "rtmp_url": "rtmp://127.0.0.1/live/key" }),
        ),
        (
            "rtmp to a name for loopback",
            json!({ "rtmp_url": "rtmp://localhost:1935/live/key" }),
        ),
        (
            "rtmp to a numeric loopback",
            json!({ "rtmp_url": "rtmp://2130706433/live/key" }),
        ),
        (
            "rtmp to the metadata service",
            json!({ "rtmp_url": "rtmp://169.254.169.254/latest/key" }),
        ),
        (
            "rtmp to a mapped private address",
            json!({ "rtmp_url": "rtmps://[::ffff:10.0.0.1]/live/key" }),
        ),
        (
            "rtmp to a name that does not resolve",
            json!({ "rtmp_url": "rtmp://no-such-host.invalid/live/key" }),
        ),
        (
            "tracks broadcast",
            json!({ "mode": "tracks", "rtmp_url": "rtmp://127.0.0.1/live/k" }),
        ),
        ("unknown mode", json!({ "mode": "everything" })),
        ("wrong type", json!({ "file": "yes" })),
    ];
    for (what, change) in invalid {
        let mut body = good.clone();
        support::merge(&mut body, change);
        let bytes = serde_json::to_vec(&body).expect("json");
        refused(400, service.api.call_bytes("/jobs/start", &bytes), what);
    }
    let huge = json!({ "job_id": "big", "room_id": "r", "livekit_url": "ws://h", "token": "x".repeat(200_000) });
    let bytes = serde_json::to_vec(&huge).expect("json");
    // Past the 64 KiB limit but not all of it: the server answers without reading the rest, and
    // data it never reads could turn its close into a reset that loses the answer.
    let (status, answer) = support::post_tolerating_early_answer(
        &service.api.base,
        "/jobs/start",
        &[
            ("Content-Type", "application/json"),
            ("API-KEY", RECORDER_KEY),
            ("HASH-SIGNATURE", "00"),
        ],
        &bytes[..bytes.len().min(70_000)],
        bytes.len(),
    );
    assert_eq!(status, 413, "oversized body: {answer}");
    assert!(
        answer.contains("\"status\":false"),
        "oversized body: {answer}"
    );
    refused(
        404,
        service
            .api
            .call_bytes("/jobs/stop", br#"{"job_id":"never-started"}"#),
        "unknown job",
    );
    refused(
        404,
        service.api.call_bytes("/jobs/nothing", b"{}"),
        "unknown route",
    );
    let health = service.api.request("GET", "/health");
    assert_eq!(health.status, 200, "{}", health.text());

    let (status, list) = service.call("/jobs/list", &json!({}));
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["jobs"], json!([]), "a refused call started something");
    assert_eq!(list["capacity"]["jobs"], 0);
    // Only the service's lock on the directory is there.
    let recordings: Vec<_> = std::fs::read_dir(&service.recordings)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name != ".recorder.lock")
                .collect()
        })
        .unwrap_or_default();
    assert!(
        recordings.is_empty(),
        "a refused call wrote something: {recordings:?}"
    );
    assert!(
        service.worker_pids().is_empty(),
        "a refused call started a worker"
    );
    assert_eq!(service.terminate(Duration::from_secs(10)), Some(0));
}

#[test]
fn admission_refuses_a_full_node_and_measures_running_jobs() {
    let _serial = serial();
    let system = media_system("recorder-admission");
    let (room, _publisher) = room_with_publisher(&system, "adm-room");
    let secret = new_secret();
    let control = ControlPlane::start(RECORDER_KEY, &secret);
    // A budget of 0.9 cores: two composites (0.4 each) and one track job (0.05) fit.
    let mut service = Service::start(
        "admission",
        &secret,
        Some(&control),
        "[admission]\ncores = 1.0\ncpu_share = 0.9\ncomposite_cost = 0.4\ntracks_cost = 0.05\n\
         max_jobs = 3\nmeasure_after_seconds = 4\n",
    );
    let ids: Vec<String> = (0..2).map(|_| unique("adm")).collect();
    for id in &ids {
        service.start_job(&start_body(&system, &room, id, json!({})));
    }
    let (status, reply) = service.call(
        "/jobs/start",
        &start_body(&system, &room, &unique("adm-third"), json!({})),
    );
    assert_eq!(status, 503, "{reply}");
    let msg = reply["msg"].as_str().expect("msg");
    assert!(
        msg.starts_with("no capacity") && msg.contains("cores"),
        "{msg}"
    );

    let tracks = unique("adm-tracks");
    service.start_job(&start_body(
        &system,
        &room,
        &tracks,
        json!({ "mode": "tracks" }),
    ));
    let (status, reply) = service.call(
        "/jobs/start",
        &start_body(
            &system,
            &room,
            &unique("adm-fourth"),
            json!({ "mode": "tracks" }),
        ),
    );
    assert_eq!(status, 503, "{reply}");
    assert!(
        reply["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("no capacity") && m.contains("3 of 3 jobs")),
        "{reply}"
    );
    let (_, list) = service.call("/jobs/list", &json!({}));
    assert!(
        (number(&list["capacity"]["reserved_cores"]) - 0.85).abs() < 1e-6,
        "{list}"
    );
    assert_eq!(list["capacity"]["jobs"], 3);

    // Once measured, the heartbeat carries each composite's real cost.
    for id in &ids {
        service.wait_state(id, "ACTIVE", Duration::from_secs(30));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let measured = loop {
        let found = control.heartbeats().into_iter().rev().find_map(|beat| {
            let jobs = beat["jobs"].as_array()?.clone();
            let composites: Vec<Value> = jobs
                .into_iter()
                .filter(|j| ids.iter().any(|id| j["job_id"] == id.as_str()))
                .collect();
            (composites.len() == 2 && composites.iter().all(|j| j["measured"] == true))
                .then_some(composites)
        });
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "never measured: {:#?}",
            control.heartbeats()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for job in &measured {
        let cores = number(&job["cost_cores"]);
        // Decoding, compositing and encoding 720p30 costs well above a pass-through.
        assert!(
            cores > 0.05 && cores < 1.5,
            "implausible measured cost: {job}"
        );
    }

    // Finished jobs free their share.
    for id in ids.iter().chain([&tracks]) {
        service.call("/jobs/stop", &json!({ "job_id": id }));
    }
    for id in ids.iter().chain([&tracks]) {
        service.wait_state(id, "COMPLETE", Duration::from_secs(30));
    }
    let (_, list) = service.call("/jobs/list", &json!({}));
    assert_eq!(list["capacity"]["jobs"], 0, "{list}");
    assert_eq!(number(&list["capacity"]["reserved_cores"]), 0.0, "{list}");
    service.start_job(&start_body(&system, &room, &unique("adm-later"), json!({})));
    assert_eq!(service.terminate(Duration::from_secs(60)), Some(0));
}

/// Whether the 16x16 patch around (x, y) of an RGB frame shows something (not black).
fn lit(frame: &[u8], x: u32, y: u32) -> bool {
    let (width, height) = (1280u32, 720u32);
    let mut sum = 0u64;
    let mut n = 0u64;
    for py in y.saturating_sub(8)..(y + 8).min(height) {
        for px in x.saturating_sub(8)..(x + 8).min(width) {
            let i = ((py * width + px) * 3) as usize;
            sum += frame[i..i + 3].iter().map(|&c| u64::from(c)).sum::<u64>();
            n += 3;
        }
    }
    sum / n.max(1) > 24
}

/// Checks the frame at `seconds` shows exactly the layout for `videos` cameras: every tile's
/// centre has a picture and every sample point outside all tiles is black.
fn assert_layout(file: &std::path::Path, seconds: f64, videos: usize) {
    let frame = frame_rgb(file, seconds);
    assert_eq!(frame.len(), 1280 * 720 * 3, "not a 720p frame");
    let canvas = Canvas {
        width: 1280,
        height: 720,
    };
    let tiles = layout(canvas, &vec![VideoKind::Camera; videos]);
    for tile in &tiles {
        let (cx, cy) = (tile.x + tile.width / 2, tile.y + tile.height / 2);
        assert!(
            lit(&frame, cx, cy),
            "{videos} videos at {seconds:.1} s: tile {tile:?} is black"
        );
    }
    for y in (20..720).step_by(60) {
        for x in (20..1280).step_by(60) {
            let inside = tiles.iter().any(|t| {
                x + 10 >= t.x
                    && x <= t.x + t.width + 10
                    && y + 10 >= t.y
                    && y <= t.y + t.height + 10
            });
            if !inside {
                assert!(
                    !lit(&frame, x, y),
                    "{videos} videos at {seconds:.1} s: ({x}, {y}) outside every tile shows a picture"
                );
            }
        }
    }
}

/// `name` joins `room` publishing `kinds` ("video", "audio,video") with the test participant's
/// extra `args`; returns once joined.
fn publisher_with(
    system: &System,
    room: &str,
    name: &str,
    kinds: &str,
    args: &[&str],
) -> Participant {
    let publisher = Participant::join_with(
        &system.livekit_ws,
        &publisher_token(system, room, name),
        kinds,
        args,
    );
    publisher.expect_line("joined", Duration::from_secs(30));
    publisher
}

/// Starts a service named `name` (`extra_toml` added to its config) and a composite job of
/// `room` on it; returns once the job is ACTIVE.
fn start_composite_job(
    system: &System,
    room: &str,
    name: &str,
    extra_toml: &str,
) -> (Service, String) {
    let mut service = Service::start(name, &new_secret(), None, extra_toml);
    let job_id = unique(name);
    service.start_job(&start_body(system, room, &job_id, json!({})));
    service.wait_state(&job_id, "ACTIVE", Duration::from_secs(30));
    (service, job_id)
}

#[test]
fn the_layout_follows_two_then_four_publishers() {
    let _serial = serial();
    let system = media_system("recorder-layout");
    let room = unique("layout-room");
    let (mut service, job_id) = start_composite_job(&system, &room, "layout", "");
    let started = Instant::now();

    let join = |name: &str| publisher_with(&system, &room, name, "video", &[]);
    let mut phases = Vec::new();
    let first = vec![join("alice"), join("bob")];
    let mark = service.wait_log(0, "layout updated videos=2", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(5));
    phases.push((started.elapsed().as_secs_f64() - 2.0, 2));
    let second = vec![join("carol"), join("dave")];
    let mark = service.wait_log(mark, "layout updated videos=4", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(5));
    phases.push((started.elapsed().as_secs_f64() - 2.0, 4));
    for publisher in first {
        assert_eq!(
            publisher.leave(Duration::from_secs(20)),
            Some(0),
            "a publisher did not leave"
        );
    }
    service.wait_log(mark, "layout updated videos=2", Duration::from_secs(45));
    std::thread::sleep(Duration::from_secs(5));
    phases.push((started.elapsed().as_secs_f64() - 2.0, 2));

    service.call("/jobs/stop", &json!({ "job_id": job_id }));
    let done = service.wait_state(&job_id, "COMPLETE", Duration::from_secs(30));
    drop(second);
    let file = std::path::PathBuf::from(done["file"].as_str().expect("file"));
    for (at, videos) in phases {
        assert_layout(&file, at, videos);
    }
}

/// A canvas has places for `max_videos` videos. The earliest arrivals get them; a later camera
/// waits, switched off at LiveKit, and is not drawn. When someone on the canvas leaves, the
/// waiting camera takes the place.
#[test]
fn a_full_canvas_shows_the_earliest_videos_and_the_next_takes_a_freed_place() {
    let _serial = serial();
    let system = media_system("recorder-full-canvas");
    let room = unique("full-canvas-room");
    let (mut service, job_id) = start_composite_job(
        &system,
        &room,
        "full-canvas",
        "[composite]\nmax_videos = 2\n",
    );
    let started = Instant::now();

    let join = |name: &str| publisher_with(&system, &room, name, "video", &[]);
    let alice = join("alice");
    let mark = service.wait_log(0, "layout updated videos=1", Duration::from_secs(30));
    let bob = join("bob");
    let mark = service.wait_log(mark, "layout updated videos=2", Duration::from_secs(30));
    let carol = join("carol");
    // The third camera is switched off at LiveKit and left off the canvas.
    service.wait_log(mark, "sending=false", Duration::from_secs(30));
    let mark = service.wait_log(
        mark,
        "layout updated videos=3 shown=2",
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_secs(5));
    let full = started.elapsed().as_secs_f64() - 2.0;

    assert_eq!(alice.leave(Duration::from_secs(20)), Some(0));
    let mark = service.wait_log(mark, "re-joining", Duration::from_secs(30));
    service.wait_log(
        mark,
        "layout updated videos=2 shown=2",
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_secs(5));
    let freed = started.elapsed().as_secs_f64() - 2.0;

    service.call("/jobs/stop", &json!({ "job_id": job_id }));
    let done = service.wait_state(&job_id, "COMPLETE", Duration::from_secs(30));
    drop((bob, carol));
    let file = std::path::PathBuf::from(done["file"].as_str().expect("file"));
    // Two places, both with a picture, and no third picture anywhere.
    assert_layout(&file, full, 2);
    assert_layout(&file, freed, 2);
}

/// A recording outlives its first token: started again with a fresh one, the job hands it to
/// its worker, and the re-join that a leaving publisher forces after the first token expired
/// succeeds. (Without the fresh token that re-join is refused and the job fails.)
#[test]
fn a_running_job_rejoins_with_a_refreshed_token() {
    let _serial = serial();
    let system = media_system("recorder-token");
    let (room, _alice) = room_with_publisher(&system, "token-room");
    let secret = new_secret();
    let mut service = Service::start("token", &secret, None, "");
    let job_id = unique("token");
    // LiveKit accepts a token up to a minute past its expiry: this one is good for 20 s more.
    let mut body = start_body(&system, &room, &job_id, json!({}));
    body["token"] = recorder_token_until(&system, &room, now_secs() - 40).into();
    let minted = Instant::now();
    service.start_job(&body);
    service.wait_state(&job_id, "ACTIVE", Duration::from_secs(30));
    let bob = Participant::join(
        &system.livekit_ws,
        &publisher_token(&system, &room, "bob"),
        "video",
    );
    bob.expect_line("joined", Duration::from_secs(30));
    let mark = service.wait_log(0, "layout updated videos=2", Duration::from_secs(30));

    // The control plane re-sends the start with a fresh token: the same job comes back.
    body["token"] = recorder_token(&system, &room).into();
    let (status, reply) = service.call("/jobs/start", &body);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["job"]["state"], "ACTIVE", "{reply}");

    // Once the first token is dead, bob leaves: the room source must re-join to drop his track.
    if let Some(left) = Duration::from_secs(25).checked_sub(minted.elapsed()) {
        std::thread::sleep(left);
    }
    assert_eq!(bob.leave(Duration::from_secs(20)), Some(0));
    let mark = service.wait_log(mark, "re-joining", Duration::from_secs(30));
    service.wait_log(mark, "layout updated videos=1", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(service.job(&job_id).expect("job")["state"], "ACTIVE");
    service.call("/jobs/stop", &json!({ "job_id": job_id }));
    service.wait_state(&job_id, "COMPLETE", Duration::from_secs(30));
}

/// Starts a service named `name` and a tracks job of `room` on it; returns once a track is
/// being written.
fn start_tracks_job(system: &System, room: &str, name: &str) -> (Service, String) {
    let secret = new_secret();
    let mut service = Service::start(name, &secret, None, "");
    let job_id = unique(name);
    service.start_job(&start_body(
        system,
        room,
        &job_id,
        json!({ "mode": "tracks" }),
    ));
    service.wait_state(&job_id, "ACTIVE", Duration::from_secs(30));
    service.wait_log(
        0,
        "recording a track without re-encoding",
        Duration::from_secs(30),
    );
    (service, job_id)
}

/// Stops a tracks job, waits for COMPLETE and returns its track files, sorted.
fn stop_tracks_job(service: &mut Service, job_id: &str) -> Vec<std::path::PathBuf> {
    service.call("/jobs/stop", &json!({ "job_id": job_id }));
    let done = service.wait_state(job_id, "COMPLETE", Duration::from_secs(30));
    let dir = std::path::PathBuf::from(done["file"].as_str().expect("dir"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("track dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

#[test]
fn tracks_mode_keeps_each_track_as_published() {
    let _serial = serial();
    let system = media_system("recorder-tracks");
    let (room, _publisher) = room_with_publisher(&system, "tracks-room");
    let (mut service, job_id) = start_tracks_job(&system, &room, "tracks");
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(6));
    let files = stop_tracks_job(&mut service, &job_id);
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(files.len(), 2, "one file per track: {files:?}");
    let mut codecs = Vec::new();
    for file in &files {
        assert!(
            file.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("alice_")),
            "named after the participant: {file:?}"
        );
        let info = probe(file);
        let stream = &info["streams"][0];
        codecs.push(stream["codec_name"].as_str().expect("codec").to_owned());
        let duration = number(&info["format"]["duration"]);
        assert!(
            duration >= wall - 2.0,
            "{file:?}: {duration:.2} s of {wall:.2} s: {info}"
        );
    }
    codecs.sort();
    // As the publisher sent them: no decode, no encode.
    assert_eq!(codecs, ["opus", "vp8"], "{files:?}");
}

/// A publisher's encoder reconfigures when its bandwidth or CPU changes (and LiveKit switches a
/// subscriber between simulcast layers), so a track's picture size changes mid-stream. The
/// track's file goes on through the change, as sent: every frame before and after it is in
/// the one file and decodes at its own size.
#[test]
fn tracks_mode_keeps_a_camera_through_a_resize() {
    let _serial = serial();
    let system = media_system("recorder-resize");
    let room = unique("resize-room");
    let publisher = publisher_with(&system, &room, "alice", "video", &["--resize-after", "6"]);
    let (mut service, job_id) = start_tracks_job(&system, &room, "resize");
    publisher.expect_line("resized", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(5));
    let files = stop_tracks_job(&mut service, &job_id);
    assert_eq!(files.len(), 1, "one file for the one track: {files:?}");
    // Every frame decoded, with its size.
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["frame=width,height", "-of", "csv=p=0"])
        .arg(&files[0])
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sizes = String::from_utf8_lossy(&out.stdout);
    let count = |size: &str| sizes.lines().filter(|l| l.trim() == size).count();
    let (small, large) = (count("320,240"), count("640,480"));
    assert!(
        small > 15 && large > 15,
        "frames before ({small}) and after ({large}) the resize: {sizes}"
    );
}

/// A camera turned off mid-meeting (muted: the track stays published, with no media) is still
/// in LiveKit's offers, but no media ever comes for it. The recording re-joins once for each
/// change of the room, not again and again waiting for that media: every re-join takes
/// everyone out of the picture for about a second.
#[test]
fn a_muted_camera_does_not_make_the_recording_rejoin_again_and_again() {
    let _serial = serial();
    let system = media_system("recorder-muted");
    let room = unique("muted-room");
    let alice = publisher_with(
        &system,
        &room,
        "alice",
        "audio,video",
        &["--mute-video-after", "3"],
    );
    alice.expect_line("video muted", Duration::from_secs(30));
    let (mut service, job_id) = start_composite_job(&system, &room, "muted", "");
    std::thread::sleep(Duration::from_secs(8));
    // A change of the room: bob's camera comes in.
    let _bob = publisher_with(&system, &room, "bob", "video", &[]);
    service.wait_log(0, "layout updated videos=1", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(20));
    service.wait_log(0, "", Duration::from_secs(1));
    let rejoins = service
        .log
        .iter()
        .filter(|line| line.contains("re-joining it to receive its current tracks"))
        .count();
    // At most one for the muted camera seen at the start and one for bob.
    assert!(
        rejoins <= 2,
        "{rejoins} re-joins in about 30 s:\n{}",
        service.log.join("\n")
    );
    service.call("/jobs/stop", &json!({ "job_id": job_id }));
    let done = service.wait_state(&job_id, "COMPLETE", Duration::from_secs(30));
    assert!(done["reason"].is_null(), "{done}");
}

/// The recorder's token carries LiveKit's `recorder` grant, so LiveKit does not count it toward
/// the room's `max_participants`: a room that is full for people still admits its recorder.
#[test]
fn a_full_room_still_admits_its_recorder() {
    let _serial = serial();
    let system = media_system("recorder-full");
    let room = unique("full-room");
    // The first join creates the LiveKit room with room for one participant.
    let full_token = support::hs256(
        &system.livekit_secret,
        &json!({
            "iss": system.livekit_key, "sub": "alice", "name": "alice",
            "nbf": now_secs() - 10, "exp": now_secs() + 600,
            "video": { "room": room, "roomJoin": true, "canPublish": true, "canSubscribe": true },
            "roomConfig": { "maxParticipants": 1 },
        }),
    );
    let alice = Participant::join(&system.livekit_ws, &full_token, "audio,video");
    alice.expect_line("joined", Duration::from_secs(30));
    let bob = Participant::join(
        &system.livekit_ws,
        &publisher_token(&system, &room, "bob"),
        "video",
    );
    let refused = bob.expect_line("error", Duration::from_secs(60));
    assert!(!refused.is_empty(), "the room is not full");

    let (mut service, job_id) = start_composite_job(&system, &room, "full", "");
    service.wait_log(0, "layout updated videos=1", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    service.call("/jobs/stop", &json!({ "job_id": job_id }));
    let done = service.wait_state(&job_id, "COMPLETE", Duration::from_secs(30));
    let info = probe(std::path::Path::new(done["file"].as_str().expect("file")));
    assert!(number(&info["format"]["duration"]) >= 2.0, "{info}");
}

/// The recorder's WebRTC stack (GStreamer 1.22's webrtcbin) answers each track with one codec,
/// the first LiveKit offers: VP8. A camera published as H.264 would be withdrawn from the
/// recorder and missing from the recording. The LiveKit `edgemeet up` runs accepts VP8 video
/// only, so a client that asks for H.264 publishes VP8, and the recording has its camera.
#[test]
fn a_camera_that_asks_for_h264_is_still_recorded() {
    let _serial = serial();
    let system = media_system("recorder-h264");
    let room = unique("h264-room");
    let _alice = publisher_with(&system, &room, "alice", "video", &["--video-codec", "h264"]);
    let (mut service, job_id) = start_tracks_job(&system, &room, "h264");
    std::thread::sleep(Duration::from_secs(5));
    let files = stop_tracks_job(&mut service, &job_id);
    assert_eq!(files.len(), 1, "the camera's file: {files:?}");
    let info = probe(&files[0]);
    assert_eq!(info["streams"][0]["codec_name"], "vp8", "{info}");
    assert!(number(&info["format"]["duration"]) > 3.0, "{info}");
}

/// Whether the two-camera layout's tiles both show a moving picture at `seconds`: each tile's
/// centre differs between that frame and the one half a second later (a frozen picture does
/// not).
fn both_tiles_move(file: &std::path::Path, seconds: f64) -> bool {
    let (before, after) = (frame_rgb(file, seconds), frame_rgb(file, seconds + 0.5));
    let canvas = Canvas {
        width: 1280,
        height: 720,
    };
    layout(canvas, &[VideoKind::Camera; 2]).iter().all(|tile| {
        let (cx, cy) = (tile.x + tile.width / 2, tile.y + tile.height / 2);
        let mut difference = 0u64;
        for y in cy - 40..cy + 40 {
            for x in cx - 40..cx + 40 {
                let i = ((y * 1280 + x) * 3) as usize;
                for c in i..i + 3 {
                    difference += u64::from(before[c].abs_diff(after[c]));
                }
            }
        }
        difference > 80 * 80 * 3 * 4
    })
}

/// A camera turned off mid-recording (muted: the track stays, its pictures stop) leaves the
/// canvas instead of freezing on its last picture there; on a full canvas the camera waiting
/// for a place takes it. Turned on again, the camera has its place back.
#[test]
fn a_camera_turned_off_mid_recording_leaves_the_canvas_and_comes_back() {
    let _serial = serial();
    let system = media_system("recorder-camera-off");
    let room = unique("camera-off-room");
    let alice = publisher_with(
        &system,
        &room,
        "alice",
        "audio,video",
        &["--mute-video-after", "10", "--unmute-video-after", "10"],
    );
    let _bob = publisher_with(&system, &room, "bob", "video", &[]);
    // Two places: alice and bob have them, carol (later) waits.
    let (mut service, job_id) = start_composite_job(
        &system,
        &room,
        "camera-off",
        "[composite]\nmax_videos = 2\n",
    );
    let active = Instant::now();
    service.wait_log(
        0,
        "layout updated videos=2 shown=2",
        Duration::from_secs(30),
    );
    let _carol = publisher_with(&system, &room, "carol", "video", &[]);
    let waiting = service.wait_log(
        0,
        "layout updated videos=3 shown=2",
        Duration::from_secs(30),
    );

    alice.expect_line("video muted", Duration::from_secs(30));
    let muted = active.elapsed().as_secs_f64();
    let off = service.wait_log(waiting, "stalled=true", Duration::from_secs(10));
    let taken_off = active.elapsed().as_secs_f64();
    assert!(
        taken_off - muted <= 5.0,
        "{:.1} s from camera off to off the canvas",
        taken_off - muted
    );
    alice.expect_line("video unmuted", Duration::from_secs(30));
    service.wait_log(off, "stalled=false", Duration::from_secs(10));
    let back = active.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(4));
    service.call("/jobs/stop", &json!({ "job_id": job_id }));
    let done = service.wait_state(&job_id, "COMPLETE", Duration::from_secs(30));
    assert!(done["reason"].is_null(), "{done}");
    let file = std::path::PathBuf::from(done["file"].as_str().expect("file"));

    // Alice and bob; then bob and carol, with alice's last picture nowhere; then alice and bob.
    for (seconds, when) in [
        (muted - 2.0, "before the camera went off"),
        (taken_off + 1.5, "while it was off"),
        (back + 2.0, "after it came back"),
    ] {
        assert_layout(&file, seconds, 2);
        assert!(
            both_tiles_move(&file, seconds),
            "a tile is frozen {when} ({seconds:.1} s)"
        );
    }
}
