//! The recorder's S3-compatible storage with real parts: a real MinIO (go-installed by the
//! bootstrap), a real LiveKit room with a real publisher, `recorder-native serve` uploading what
//! its workers wrote, and an independent client (boto3) plus ffprobe looking at the objects.
//! The store going away, and the service dying while an upload waits, lose no recording.
//!
//! Runs inside `scripts/test.sh`'s private network namespace, one case at a time.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::recorder::{
    assert_faststart, download_token, fetch, media_system, new_secret, number, probe,
    room_with_publisher, serial, signal, start_body, stream, ControlPlane, Service, RECORDER_KEY,
};
use support::s3::Minio;
use support::{now_secs, unique, System};

const BUCKET: &str = "recordings";
const PREFIX: &str = "edgemeet/rec";

/// Records `seconds` of `room` as job `job_id` (mode from `extra`) and asks it to stop.
fn record_and_stop(
    service: &mut Service,
    system: &System,
    room: &str,
    job_id: &str,
    extra: Value,
    seconds: u64,
) {
    service.start_job(&start_body(system, room, job_id, extra));
    service.wait_state(job_id, "ACTIVE", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(seconds));
    let (status, reply) = service.call("/jobs/stop", &json!({ "job_id": job_id }));
    assert_eq!(status, 200, "{reply}");
}

/// Downloads an uploaded composite and checks it is a finished recording of about `seconds`.
fn assert_uploaded_composite(minio: &Minio, key: &str, seconds: f64) {
    let objects = minio.objects(BUCKET);
    assert_eq!(
        objects.get(key).and_then(|o| o["content_type"].as_str()),
        Some("video/mp4"),
        "{key} missing or mistyped: {objects:?}"
    );
    let file = std::env::temp_dir()
        .join(unique("downloaded"))
        .with_extension("mp4");
    minio.get(BUCKET, key, &file);
    assert_faststart(&file);
    let info = probe(&file);
    let duration = number(&info["format"]["duration"]);
    assert!(
        duration >= seconds - 1.5 && duration <= seconds + 2.0,
        "{key}: {duration:.2} s for about {seconds} s recorded"
    );
    assert_eq!(stream(&info, "video")["codec_name"], "h264", "{info}");
    assert_eq!(stream(&info, "audio")["codec_name"], "aac", "{info}");
    let _ = std::fs::remove_file(&file);
}

/// The job's worker has exited (only the upload is left).
fn wait_worker_gone(service: &Service) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !service.worker_pids().is_empty() {
        assert!(Instant::now() < deadline, "the worker did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn finished_recordings_are_uploaded_and_removed_locally() {
    let _serial = serial();
    let system = media_system("recorder-s3");
    let (room, _publisher) = room_with_publisher(&system, "s3-room");
    let minio = Minio::start();
    minio.create_bucket(BUCKET);
    let secret = new_secret();
    let mut service = Service::start(
        "s3",
        &secret,
        None,
        &minio.recorder_toml(BUCKET, PREFIX, 120.0),
    );
    // The config carries MinIO's secret key; nothing the service logs may.
    let composite = unique("job");
    record_and_stop(&mut service, &system, &room, &composite, json!({}), 5);
    let done = service.wait_state(&composite, "COMPLETE", Duration::from_secs(60));
    let key = format!("{PREFIX}/s3/{composite}.mp4");
    assert_eq!(done["file"], format!("s3://{BUCKET}/{key}"), "{done}");
    assert_eq!(done["reason"], Value::Null, "{done}");
    assert!(
        !service.recordings.join(format!("{composite}.mp4")).exists(),
        "the uploaded composite stayed on disk"
    );
    assert_uploaded_composite(&minio, &key, 5.0);

    // Pass-through tracks: one object per track file, under the job's own prefix.
    let tracks = unique("tracks");
    record_and_stop(
        &mut service,
        &system,
        &room,
        &tracks,
        json!({ "mode": "tracks" }),
        4,
    );
    let done = service.wait_state(&tracks, "COMPLETE", Duration::from_secs(60));
    assert_eq!(
        done["file"],
        format!("s3://{BUCKET}/{PREFIX}/s3/{tracks}/"),
        "{done}"
    );
    assert!(!service.recordings.join(&tracks).exists());
    let objects = minio.objects(BUCKET);
    let track_objects: Vec<(&String, &Value)> = objects
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{PREFIX}/s3/{tracks}/")))
        .collect();
    assert_eq!(track_objects.len(), 2, "video and audio: {objects:?}");
    for (key, object) in &track_objects {
        assert!(key.ends_with(".mkv"), "{key}");
        assert_eq!(object["content_type"], "video/x-matroska", "{key}");
        assert!(number(&object["size"]) > 1000.0, "{key}: {object}");
    }

    service.wait_log(0, "", Duration::from_millis(200));
    let log = service.log.join("\n");
    assert!(!log.contains(&minio.secret_key), "the S3 secret was logged");
    assert_eq!(service.terminate(Duration::from_secs(30)), Some(0));
}

/// A recording in the bucket is downloaded through the node: its link answers 307 to a
/// short-lived presigned URL that fetches the object's bytes from MinIO. Deleting a composite
/// removes its object, deleting a tracks job every object under its prefix; the jobs stay
/// listed without a file, and their links answer 404.
#[test]
fn a_stored_recording_is_downloaded_through_a_presigned_url_and_deleted() {
    let _serial = serial();
    let system = media_system("recorder-s3-download");
    let (room, _publisher) = room_with_publisher(&system, "s3-download-room");
    let minio = Minio::start();
    minio.create_bucket(BUCKET);
    let secret = new_secret();
    let mut service = Service::start(
        "s3-dl",
        &secret,
        None,
        &minio.recorder_toml(BUCKET, PREFIX, 120.0),
    );
    let base = service.api.base.clone();
    let link = |job_id: &str| {
        format!(
            "{base}/download/{}",
            download_token(&secret, job_id, now_secs() + 60)
        )
    };

    let composite = unique("job");
    record_and_stop(&mut service, &system, &room, &composite, json!({}), 3);
    service.wait_state(&composite, "COMPLETE", Duration::from_secs(60));
    let key = format!("{PREFIX}/s3-dl/{composite}.mp4");
    let stored = std::env::temp_dir()
        .join(unique("stored"))
        .with_extension("mp4");
    minio.get(BUCKET, &key, &stored);
    let stored_bytes = std::fs::read(&stored).expect("the stored object");
    let _ = std::fs::remove_file(&stored);

    let url = link(&composite);
    let redirect = fetch("GET", &url, &[]);
    assert_eq!(redirect.status, 307, "{}", redirect.text());
    assert_eq!(redirect.header("cache-control"), Some("no-store"));
    let location = redirect.header("location").expect("location").to_owned();
    assert!(
        location.starts_with(&format!("{}/{BUCKET}/{key}?", minio.endpoint))
            && location.contains("X-Amz-Expires="),
        "{location}"
    );
    let object = fetch("GET", &location, &[]);
    assert_eq!(object.status, 200, "{}", object.text());
    assert!(
        object.body == stored_bytes,
        "the presigned URL fetched other bytes"
    );
    // Saved under its own name, as the node serves a file from its disk.
    assert_eq!(
        object.header("content-disposition"),
        Some(format!("attachment; filename=\"{composite}.mp4\"").as_str()),
        "the bucket's answer"
    );
    assert_eq!(fetch("HEAD", &url, &[]).status, 307);

    let tracks = unique("tracks");
    record_and_stop(
        &mut service,
        &system,
        &room,
        &tracks,
        json!({ "mode": "tracks" }),
        3,
    );
    service.wait_state(&tracks, "COMPLETE", Duration::from_secs(60));
    let track_prefix = format!("{PREFIX}/s3-dl/{tracks}/");
    let track_objects = |minio: &Minio| {
        minio
            .objects(BUCKET)
            .keys()
            .filter(|k| k.starts_with(&track_prefix))
            .count()
    };
    assert_eq!(track_objects(&minio), 2, "{:?}", minio.objects(BUCKET));
    let answer = fetch("GET", &link(&tracks), &[]);
    assert_eq!(answer.status, 404);
    assert!(answer.text().contains("tracks"), "{}", answer.text());

    for job_id in [&composite, &tracks] {
        for _ in 0..2 {
            let (status, reply) = service.call("/jobs/delete", &json!({ "job_id": job_id }));
            assert_eq!(status, 200, "{reply}");
            assert_eq!(reply["job"]["file"], Value::Null, "{reply}");
            assert_eq!(reply["job"]["file_bytes"], Value::Null, "{reply}");
        }
    }
    let objects = minio.objects(BUCKET);
    assert!(!objects.contains_key(&key), "{objects:?}");
    assert_eq!(track_objects(&minio), 0, "{objects:?}");
    assert_eq!(fetch("GET", &url, &[]).status, 404);
    assert_eq!(
        fetch("GET", &location, &[]).status,
        404,
        "the object is still served"
    );
    assert_eq!(service.terminate(Duration::from_secs(30)), Some(0));
}

#[test]
fn an_unreachable_store_loses_no_recording() {
    let _serial = serial();
    let system = media_system("recorder-s3-down");
    let (room, _publisher) = room_with_publisher(&system, "s3-down-room");
    let mut minio = Minio::start();
    minio.create_bucket(BUCKET);
    let secret = new_secret();
    let control = ControlPlane::start(RECORDER_KEY, &secret);
    let mut service = Service::start(
        "s3-down",
        &secret,
        Some(&control),
        &minio.recorder_toml(BUCKET, PREFIX, 120.0),
    );

    // The store is down when the job ends: the job waits in ENDING with its file on disk, and
    // completes once the store is back.
    let waited = unique("job");
    minio.kill();
    record_and_stop(&mut service, &system, &room, &waited, json!({}), 4);
    wait_worker_gone(&service);
    std::thread::sleep(Duration::from_secs(3));
    let job = service.job(&waited).expect("job listed");
    assert_eq!(job["state"], "ENDING", "{job}");
    assert!(
        service_recording(&service, &waited).is_file(),
        "the recording must wait on disk"
    );
    minio.restart();
    let done = service.wait_state(&waited, "COMPLETE", Duration::from_secs(90));
    let key = format!("{PREFIX}/s3-down/{waited}.mp4");
    assert_eq!(done["file"], format!("s3://{BUCKET}/{key}"), "{done}");
    assert!(!service_recording(&service, &waited).exists());
    assert_uploaded_composite(&minio, &key, 4.0);
    control.wait_event("COMPLETE", Duration::from_secs(10), |e| {
        e["job"]["job_id"] == waited.as_str() && e["job"]["state"] == "COMPLETE"
    });
    assert_eq!(
        control.states(&waited),
        ["STARTING", "ACTIVE", "ENDING", "COMPLETE"]
    );

    // The service dies while an upload waits: its next start uploads the finished file.
    let orphan = unique("job");
    minio.kill();
    record_and_stop(&mut service, &system, &room, &orphan, json!({}), 4);
    wait_worker_gone(&service);
    std::thread::sleep(Duration::from_secs(1));
    service.kill();
    assert!(
        service_recording(&service, &orphan).is_file(),
        "the recording must wait on disk"
    );
    minio.restart();
    service.restart();
    let done = service.wait_state(&orphan, "COMPLETE", Duration::from_secs(90));
    let key = format!("{PREFIX}/s3-down/{orphan}.mp4");
    assert_eq!(done["file"], format!("s3://{BUCKET}/{key}"), "{done}");
    assert!(!service_recording(&service, &orphan).exists());
    assert_uploaded_composite(&minio, &key, 4.0);

    // A job that failed (its worker killed, its recording repaired) and whose upload waits when
    // the service dies: the next start reports it as it was decided, FAILED with its reason
    // and recovered, not COMPLETE because a finished-looking file is on disk.
    let failed = unique("job");
    minio.kill();
    service.start_job(&start_body(&system, &room, &failed, json!({})));
    service.wait_state(&failed, "ACTIVE", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(4));
    let pids = service.worker_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    signal(pids[0], libc::SIGKILL);
    service.wait_state(&failed, "ENDING", Duration::from_secs(60));
    service.kill();
    // The store is still down when the service comes back: recovery waits on the upload beside
    // the API, which answers meanwhile.
    let restarted = Instant::now();
    service.restart();
    assert!(
        restarted.elapsed() < Duration::from_secs(30),
        "the API waited for recovery: {:?}",
        restarted.elapsed()
    );
    assert_eq!(service.job(&failed).expect("listed")["state"], "ENDING");
    minio.restart();
    let done = service.wait_state(&failed, "FAILED", Duration::from_secs(120));
    assert!(
        done["reason"]
            .as_str()
            .is_some_and(|r| r.contains("signal: 9")),
        "{done}"
    );
    let key = format!("{PREFIX}/s3-down/{failed}.mp4");
    assert_eq!(done["file"], format!("s3://{BUCKET}/{key}"), "{done}");
    control.wait_event("recovered", Duration::from_secs(10), |e| {
        e["type"] == "recovered" && e["job"]["job_id"] == failed.as_str()
    });
    assert_eq!(service.terminate(Duration::from_secs(30)), Some(0));
}

/// Where the service writes a composite before it is uploaded.
fn service_recording(service: &Service, job: &str) -> PathBuf {
    service.recordings.join(format!("{job}.mp4"))
}
