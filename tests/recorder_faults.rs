//! The recorder under faults, with real parts: a worker SIGKILLed or frozen mid-recording, the
//! whole service SIGKILLed, an RTMP server (real nginx with the RTMP module) that goes away
//! mid-broadcast, and a control plane that is unreachable for a while or refuses one job's
//! events for good. Nothing recorded may be lost beyond the last second, and no event may be
//! lost or reordered.
//!
//! Runs inside `scripts/test.sh`'s private network namespace, one case at a time.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use support::recorder::{
    alive, assert_faststart, media_system, new_secret, number, probe, recorder_binary,
    room_with_publisher, serial, signal, start_body, stream, video_packet_times, ControlPlane,
    Nginx, Service, RECORDER_KEY,
};
use support::unique;

/// Asserts `file` is a playable faststart MP4 of about `seconds` (a crash may lose the last
/// second or so, never more), with H.264 and AAC.
fn assert_recovered(file: &Path, seconds: f64) {
    assert!(file.is_file(), "{} was not recovered", file.display());
    assert!(
        !file.with_extension("part.mp4").exists(),
        "the fragmented file was left beside the repaired one"
    );
    assert_faststart(file);
    let info = probe(file);
    let duration = number(&info["format"]["duration"]);
    assert!(
        duration >= seconds - 2.0 && duration <= seconds + 1.0,
        "recovered {duration:.2} s of about {seconds:.2} s: {info}"
    );
    assert_eq!(stream(&info, "video")["codec_name"], "h264", "{info}");
    assert_eq!(stream(&info, "audio")["codec_name"], "aac", "{info}");
    let frames = number(&stream(&info, "video")["nb_read_frames"]);
    assert!(
        frames >= duration * 30.0 * 0.95,
        "{frames} frames in {duration:.2} s"
    );
}

/// The one worker of `service`, once it runs.
fn worker_of(service: &mut Service) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let [pid] = service.worker_pids()[..] {
            return pid;
        }
        if Instant::now() >= deadline {
            let pids = service.worker_pids();
            service.wait_log(0, "", Duration::from_secs(1));
            panic!("no single worker: {pids:?}\n{}", service.log.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_or_frozen_worker_fails_only_its_job_and_its_file_is_repaired() {
    let _serial = serial();
    let system = media_system("recorder-worker-faults");
    let (room, _publisher) = room_with_publisher(&system, "fault-room");
    let secret = new_secret();
    let control = ControlPlane::start(RECORDER_KEY, &secret);
    let mut service = Service::start(
        "worker-faults",
        &secret,
        Some(&control),
        "[watchdog]\nstall_seconds = 3\nmemory_mb = 1536\n",
    );

    // SIGKILL mid-recording.
    let killed = unique("killed");
    service.start_job(&start_body(&system, &room, &killed, json!({})));
    service.wait_state(&killed, "ACTIVE", Duration::from_secs(30));
    let active = Instant::now();
    std::thread::sleep(Duration::from_secs(6));
    signal(worker_of(&mut service), libc::SIGKILL);
    let recorded = active.elapsed().as_secs_f64();
    let failed = service.wait_state(&killed, "FAILED", Duration::from_secs(30));
    let reason = failed["reason"].as_str().expect("reason");
    assert!(reason.contains("signal: 9"), "reason: {reason}");
    let file = Path::new(failed["file"].as_str().expect("file"));
    assert_recovered(file, recorded);
    let recovered = control.wait_event("recovered", Duration::from_secs(10), |e| {
        e["type"] == "recovered" && e["job"]["job_id"] == killed.as_str()
    });
    // Its size goes with it, for the control plane's catalog.
    let on_disk = std::fs::metadata(file).expect("the repaired file").len();
    assert_eq!(
        recovered["job"]["file_bytes"],
        json!(on_disk),
        "{recovered}"
    );
    assert_eq!(failed["file_bytes"], json!(on_disk), "{failed}");

    // A frozen worker (SIGSTOP) makes no progress: the watchdog kills it.
    let frozen = unique("frozen");
    service.start_job(&start_body(&system, &room, &frozen, json!({})));
    service.wait_state(&frozen, "ACTIVE", Duration::from_secs(30));
    let active = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let pid = worker_of(&mut service);
    signal(pid, libc::SIGSTOP);
    let recorded = active.elapsed().as_secs_f64();
    let failed = service.wait_state(&frozen, "FAILED", Duration::from_secs(30));
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("stalled")),
        "{failed}"
    );
    assert!(
        !alive(pid)
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z")),
        "the frozen worker still runs"
    );
    assert_recovered(Path::new(failed["file"].as_str().expect("file")), recorded);

    // The service itself carried on: a new job records normally.
    let after = unique("after");
    service.start_job(&start_body(&system, &room, &after, json!({})));
    service.wait_state(&after, "ACTIVE", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    // Its worker is held to its memory limit, and the kernel's OOM killer would take it before
    // the service.
    let pid = worker_of(&mut service);
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let data = limits
        .lines()
        .find(|l| l.starts_with("Max data size"))
        .expect("data limit");
    let bytes = (1536u64 * 1024 * 1024).to_string();
    assert_eq!(
        data.split_whitespace().filter(|w| *w == bytes).count(),
        2,
        "soft and hard limits: {data}"
    );
    let adj = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).expect("adj");
    assert_eq!(adj.trim(), "500");
    service.call("/jobs/stop", &json!({ "job_id": after }));
    service.wait_state(&after, "COMPLETE", Duration::from_secs(30));
    for job in [&killed, &frozen] {
        assert_eq!(
            control.states(job),
            ["STARTING", "ACTIVE", "FAILED"],
            "{job}"
        );
    }

    // A worker that needs more memory than it may have (a composite maps about 400 MiB) fails
    // alone, with its job, and the reason says so.
    let mut starved = Service::start(
        "starved",
        &secret,
        None,
        "[watchdog]\nstall_seconds = 3\nmemory_mb = 256\n",
    );
    let hungry = unique("hungry");
    starved.start_job(&start_body(&system, &room, &hungry, json!({})));
    let failed = starved.wait_state(&hungry, "FAILED", Duration::from_secs(60));
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("memory limit of 256 MiB")),
        "{failed}"
    );
    let (status, list) = starved.call("/jobs/list", &json!({}));
    assert_eq!(status, 200, "the service went down with its worker: {list}");
}

#[test]
fn a_killed_service_repairs_and_reports_on_restart_and_loses_no_event() {
    let _serial = serial();
    let system = media_system("recorder-service-kill");
    let (room, _publisher) = room_with_publisher(&system, "fault-room");
    let secret = new_secret();
    let control = ControlPlane::start(RECORDER_KEY, &secret);
    // The control plane is unreachable for the whole first life of the service.
    control.refuse(true);
    let mut service = Service::start("service-kill", &secret, Some(&control), "");
    let job_id = unique("orphan");
    service.start_job(&start_body(&system, &room, &job_id, json!({})));
    service.wait_state(&job_id, "ACTIVE", Duration::from_secs(30));
    let active = Instant::now();
    // A second service started on the same directories by mistake refuses to run, and touches
    // nothing of the first one's.
    let mut second = std::process::Command::new(recorder_binary())
        .arg("serve")
        .arg("--config")
        .arg(service.config_path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run a second service");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = second.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut said = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("stderr"), &mut said)
        .expect("read");
    assert!(
        status.is_some_and(|s| !s.success())
            && said.contains("in use by another recorder-native service"),
        "{status:?}: {said}"
    );
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        service.job(&job_id).expect("job")["state"],
        "ACTIVE",
        "the second service disturbed the first one's job"
    );
    let worker = worker_of(&mut service);
    service.kill();
    let recorded = active.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(worker) {
        assert!(Instant::now() < deadline, "the worker outlived its service");
        std::thread::sleep(Duration::from_millis(50));
    }
    let part = service.recordings.join(format!("{job_id}.part.mp4"));
    assert!(part.is_file(), "no fragmented file after the kill");
    assert!(
        control.events().is_empty(),
        "the refusing control plane kept events"
    );

    control.refuse(false);
    service.restart();
    let failed = service.wait_state(&job_id, "FAILED", Duration::from_secs(30));
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("service stopped")),
        "{failed}"
    );
    let file = PathBuf::from(failed["file"].as_str().expect("file"));
    assert_recovered(&file, recorded);
    assert_eq!(
        failed["file_bytes"],
        json!(std::fs::metadata(&file).expect("the repaired file").len()),
        "{failed}"
    );
    control.wait_event("FAILED", Duration::from_secs(20), |e| {
        e["type"] == "job_state" && e["job"]["state"] == "FAILED"
    });
    // Every event of the first life arrived after the outage, in order, once each.
    assert_eq!(control.states(&job_id), ["STARTING", "ACTIVE", "FAILED"]);
    let events = control.events();
    let ids: std::collections::HashSet<&str> = events
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert_eq!(
        ids.len(),
        events.len(),
        "an event arrived twice: {events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "recovered" && e["job"]["job_id"] == job_id.as_str()),
        "the repair was not reported: {events:#?}"
    );
}

/// The latest heartbeat's figure `name`, once one has come.
fn heartbeat_figure(control: &ControlPlane, name: &str) -> Option<i64> {
    control
        .heartbeats()
        .last()
        .and_then(|beat| beat[name].as_i64())
}

/// Waits until the heartbeats report `dead` events set aside and none waiting.
fn wait_dead_letters(control: &ControlPlane, dead: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while heartbeat_figure(control, "dead_letter_events") != Some(dead)
        || heartbeat_figure(control, "undelivered_events") != Some(0)
    {
        assert!(
            Instant::now() < deadline,
            "no heartbeat with {dead} events set aside and none waiting: {:#?}",
            control.heartbeats().last()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn events_the_control_plane_refuses_for_good_are_set_aside_and_hold_up_none_behind() {
    let _serial = serial();
    let system = media_system("recorder-dead-letter");
    let (room, _publisher) = room_with_publisher(&system, "dead-letter-room");
    let secret = new_secret();
    let control = ControlPlane::start(RECORDER_KEY, &secret);
    // The control plane will never take this job's events (say, it does not know the job).
    let refused = unique("refused");
    control.refuse_job(&refused);
    let mut service = Service::start("dead-letter", &secret, Some(&control), "");
    let kept = unique("kept");
    // Pass-through jobs: two fit any node, and their events are the same as a composite's.
    for job in [&refused, &kept] {
        service.start_job(&start_body(
            &system,
            &room,
            job,
            json!({ "mode": "tracks" }),
        ));
    }
    for job in [&refused, &kept] {
        service.wait_state(job, "ACTIVE", Duration::from_secs(30));
    }
    std::thread::sleep(Duration::from_secs(2));
    for job in [&refused, &kept] {
        let (status, reply) = service.call("/jobs/stop", &json!({ "job_id": job }));
        assert_eq!(status, 200, "{reply}");
    }
    for job in [&refused, &kept] {
        let ended = service.wait_ended(job, Duration::from_secs(30));
        assert_eq!(ended["state"], "COMPLETE", "{ended}");
    }

    // The other job's events all arrived, in order, although the refused job's were queued
    // between them; none of the refused job's was taken.
    control.wait_event("the kept job's COMPLETE", Duration::from_secs(20), |e| {
        e["job"]["job_id"] == kept.as_str() && e["job"]["state"] == "COMPLETE"
    });
    assert_eq!(
        control.states(&kept),
        ["STARTING", "ACTIVE", "ENDING", "COMPLETE"],
        "{:#?}",
        control.events()
    );
    assert!(control.states(&refused).is_empty());
    // Each of the refused job's four events was isolated and set aside, kept on disk.
    wait_dead_letters(&control, 4);
    assert!(
        control.refused_batches() >= 4,
        "{} batches refused",
        control.refused_batches()
    );
    service.wait_log(
        0,
        "the control plane refused an event; setting it aside",
        Duration::from_secs(5),
    );

    // They stay set aside across a restart and are not sent again.
    let refusals = control.refused_batches();
    assert_eq!(service.terminate(Duration::from_secs(30)), Some(0));
    service.restart();
    let restarted = control.heartbeats().len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while control.heartbeats().len() < restarted + 2 {
        assert!(Instant::now() < deadline, "no heartbeat after the restart");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_dead_letters(&control, 4);
    assert_eq!(
        control.refused_batches(),
        refusals,
        "set-aside events were sent again"
    );
}

#[test]
fn a_broadcast_reaches_nginx_and_its_failure_spares_the_file() {
    let _serial = serial();
    let system = media_system("recorder-rtmp");
    let (room, _publisher) = room_with_publisher(&system, "fault-room");
    let mut nginx = Nginx::start();
    let secret = new_secret();
    let control = ControlPlane::start(RECORDER_KEY, &secret);
    // nginx listens on loopback, which broadcasts may reach only when the operator allows it.
    let mut service = Service::start(
        "rtmp",
        &secret,
        Some(&control),
        "[broadcast]\nallowed_networks = [\"127.0.0.0/8\"]\n",
    );

    // Broadcast only, then stop: nginx has a playable stream.
    let stream_key = unique("key");
    let only = unique("broadcast");
    let mut body = start_body(&system, &room, &only, json!({}));
    body["file"] = false.into();
    body["rtmp_url"] = format!("{}/{stream_key}", nginx.base_url).into();
    let job = service.start_job(&body);
    let shown = job["rtmp"].as_str().expect("rtmp");
    assert!(
        !shown.contains(&stream_key),
        "the stream key is listed: {shown}"
    );
    service.wait_state(&only, "ACTIVE", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(6));
    service.call("/jobs/stop", &json!({ "job_id": only }));
    let done = service.wait_state(&only, "COMPLETE", Duration::from_secs(30));
    assert!(done["file"].is_null(), "{done}");
    let flv = nginx.record_dir.join(format!("{stream_key}.flv"));
    assert!(flv.is_file(), "nginx recorded nothing:\n{}", nginx.log());
    let info = probe(&flv);
    let duration = number(&info["format"]["duration"]);
    assert!(duration >= 4.0, "{duration:.2} s reached nginx: {info}");
    assert_eq!(stream(&info, "video")["codec_name"], "h264", "{info}");
    assert_eq!(stream(&info, "audio")["codec_name"], "aac", "{info}");
    let frames = number(&stream(&info, "video")["nb_read_frames"]);
    assert!(
        frames >= duration * 30.0 * 0.95,
        "{frames} frames in {duration:.2} s"
    );
    // The video went out as it was made, not held back by the muxer until the end: its
    // frames run to the end of the stream, not all stamped at its start.
    let last = video_packet_times(&flv).into_iter().fold(0.0, f64::max);
    assert!(
        last >= duration - 2.0,
        "the video's last frame is at {last:.2} s of {duration:.2} s"
    );

    // File and broadcast from one encode; nginx dies; the file goes on to the end.
    let both = unique("both");
    let mut body = start_body(&system, &room, &both, json!({}));
    body["rtmp_url"] = format!("{}/{}", nginx.base_url, unique("key")).into();
    service.start_job(&body);
    service.wait_state(&both, "ACTIVE", Duration::from_secs(30));
    let active = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    nginx.kill();
    let ended = control.wait_event("broadcast_ended", Duration::from_secs(20), |e| {
        e["type"] == "broadcast_ended" && e["job"]["job_id"] == both.as_str()
    });
    assert_eq!(ended["job"]["state"], "ACTIVE", "{ended}");
    std::thread::sleep(Duration::from_secs(4));
    let job = service.job(&both).expect("job");
    assert_eq!(
        job["state"], "ACTIVE",
        "the file stopped with the broadcast: {job}"
    );
    service.call("/jobs/stop", &json!({ "job_id": both }));
    let recorded = active.elapsed().as_secs_f64();
    let done = service.wait_state(&both, "COMPLETE", Duration::from_secs(30));
    assert!(
        done["reason"].as_str().is_some_and(|r| r.contains("RTMP")),
        "the broadcast's end is not on the job: {done}"
    );
    let file = PathBuf::from(done["file"].as_str().expect("file"));
    assert_faststart(&file);
    let info = probe(&file);
    let duration = number(&info["format"]["duration"]);
    assert!(
        (duration - recorded).abs() <= 1.0,
        "{duration:.2} s of {recorded:.2} s"
    );

    // An RTMP server that is not there at all: a broadcast-only job fails with the reason.
    let nowhere = unique("nowhere");
    let mut body = start_body(&system, &room, &nowhere, json!({}));
    body["file"] = false.into();
    body["rtmp_url"] = format!("{}/{}", nginx.base_url, unique("key")).into();
    service.start_job(&body);
    let failed = service.wait_state(&nowhere, "FAILED", Duration::from_secs(30));
    assert!(
        failed["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{failed}"
    );
}

/// Runs a broadcast-only worker on `job` (a worker job file's JSON) for a few seconds, stops it
/// as the service would, and returns its reports.
fn run_broadcast_worker(job: &serde_json::Value) -> Vec<serde_json::Value> {
    let dir = std::env::temp_dir().join(unique("worker-job"));
    std::fs::create_dir_all(&dir).expect("job dir");
    let job_file = dir.join("job.json");
    std::fs::write(&job_file, job.to_string()).expect("job file");
    let mut worker = std::process::Command::new(recorder_binary())
        .args(["record", "--job"])
        .arg(&job_file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start a worker");
    let lines = support::forward_lines(worker.stdout.take().expect("stdout"));
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut seen = Vec::new();
    let mut stop_at = None;
    while Instant::now() < deadline {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let Ok(report) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if report["event"] == "active" {
                    stop_at = Some(Instant::now() + Duration::from_secs(5));
                }
                seen.push(report);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if stop_at.is_some_and(|at| Instant::now() >= at) {
            stop_at = None;
            signal(worker.id(), libc::SIGTERM);
        }
    }
    if worker.try_wait().ok().flatten().is_none() {
        let _ = worker.kill();
    }
    let _ = worker.wait();
    let _ = std::fs::remove_dir_all(&dir);
    seen
}

#[test]
fn a_broadcast_connects_to_the_address_checked_at_start_not_a_new_answer_for_its_name() {
    let _serial = serial();
    let system = media_system("recorder-rtmp-pin");
    let (room, _publisher) = room_with_publisher(&system, "pin-room");
    let nginx = Nginx::start();
    let by_name = nginx.base_url.replace("127.0.0.1", "rtmp-target.invalid");
    let worker_job = |stream_key: &str, addresses: serde_json::Value| {
        json!({
            "livekit_url": system.livekit_ws,
            "token": support::recorder::recorder_token(&system, &room),
            // No DNS answers for .invalid names (RFC 6761): only the pinned address reaches
            // nginx, as only the checked address may reach anything after DNS rebinding.
            "rtmp_url": format!("{by_name}/{stream_key}"),
            "rtmp_addresses": addresses,
        })
    };

    // The service checked the name and found nginx's address: the worker streams there.
    let stream_key = unique("pinned");
    let reports = run_broadcast_worker(&worker_job(&stream_key, json!(["127.0.0.1"])));
    assert!(
        reports.iter().any(|r| r["event"] == "finished"),
        "{reports:?}\n{}",
        nginx.log()
    );
    let flv = nginx.record_dir.join(format!("{stream_key}.flv"));
    assert!(flv.is_file(), "nginx recorded nothing:\n{}", nginx.log());
    let duration = number(&probe(&flv)["format"]["duration"]);
    assert!(duration >= 3.0, "{duration:.2} s reached nginx");

    // No checked address for the name: the worker does not ask DNS, and the broadcast fails.
    let stream_key = unique("unchecked");
    let reports = run_broadcast_worker(&worker_job(&stream_key, json!([])));
    let failure = reports
        .iter()
        .find(|r| r["event"] == "failed" || r["event"] == "broadcast_ended")
        .unwrap_or_else(|| panic!("the broadcast went on: {reports:?}"));
    assert!(
        failure["reason"]
            .as_str()
            .is_some_and(|r| r.contains("rtmp-target.invalid")),
        "{failure}"
    );
    assert!(!nginx.record_dir.join(format!("{stream_key}.flv")).exists());
}
