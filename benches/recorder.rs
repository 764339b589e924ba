//! Recorder benchmark, with the same real parts as the tests: a real LiveKit server, real
//! publishers (LiveKit's Python SDK, 320x240 at 15 fps VP8 + Opus each), `recorder-native serve`
//! and its workers. Run it with `scripts/bench-recorder.sh` (it needs the private network
//! namespace). It prints a Markdown table for docs/benchmarks.md:
//!
//! - CPU-seconds per media-second of one worker, measured from `/proc/<pid>/stat` over a steady
//!   window after the worker joined, for the 720p30 composite with 1, 2 and 4 publishers and for
//!   pass-through track recording;
//! - ffmpeg (libx264 veryfast/zerolatency, one thread, at the same bitrate, VBV and keyframe
//!   interval, plus AAC) encoding the same picture: the 1-publisher composite decoded to raw
//!   frames first, so only the encode is timed. The ratio shows what our pipeline costs beyond its encoder (WebRTC
//!   ingest, decode, compositing, muxing);
//! - the most concurrent single-publisher composites that keep at least 99% of their frames;
//! - peak memory (VmHWM) per worker.
//!
//! `EDGEMEET_BENCH_SECONDS` sets the measured window (default 20). `EDGEMEET_BENCH_PART=ratio`
//! runs only the 1-publisher composite and the ffmpeg baseline, `EDGEMEET_BENCH_PART=concurrency`
//! only the concurrency sweep (for trying a change quickly), `EDGEMEET_BENCH_PART=cap` only the
//! canvas cap (4 publishers on a canvas with places for 2 against 2 and 4 uncapped); the default
//! runs everything.
//! `EDGEMEET_BENCH_PRESET` sets the x264 preset of the workers and of ffmpeg (default
//! veryfast, the service's default).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use support::recorder::{
    media_system, new_secret, number, probe, publisher_token, recorder_token, stream, Service,
};
use support::{unique, Participant, System};

/// One worker's figures over the window.
struct Measured {
    cpu_per_media_second: f64,
    peak_rss_mib: f64,
    frames_kept: f64,
    /// Whether the participant's video is in the picture halfway through (a composite of a
    /// black canvas costs a fraction of a real one, so without it the figures mean nothing).
    shows_participant: bool,
}

/// Whether the frame at `seconds` has a picture at the centre of the canvas, where a single
/// participant's tile is.
fn shows_participant(file: &Path, seconds: f64) -> bool {
    let frame = support::recorder::frame_rgb(file, seconds);
    let (width, x0, y0) = (1280usize, 632usize, 352usize);
    let mut sum = 0u64;
    for y in y0..y0 + 16 {
        for x in x0..x0 + 16 {
            let i = (y * width + x) * 3;
            sum += frame[i..i + 3].iter().map(|&c| u64::from(c)).sum::<u64>();
        }
    }
    sum / (16 * 16 * 3) > 24
}

/// The x264 preset the workers and ffmpeg use.
fn preset() -> String {
    std::env::var("EDGEMEET_BENCH_PRESET").unwrap_or_else(|_| "veryfast".into())
}

fn window() -> Duration {
    Duration::from_secs(
        std::env::var("EDGEMEET_BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    )
}

fn cpu_seconds(pid: u32) -> f64 {
    recorder_native::admission::process_cpu_seconds(pid).unwrap_or(f64::NAN)
}

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// The worker running `job_id` (its job file is on its command line).
fn worker_pid(service: &mut Service, job_id: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for pid in service.worker_pids() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&format!("{job_id}.json")) {
                return pid;
            }
        }
        if Instant::now() >= deadline {
            service.wait_log(0, "", Duration::from_secs(1));
            panic!("no worker for {job_id}:\n{}", service.log.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn publishers(system: &System, room: &str, n: usize) -> Vec<Participant> {
    (0..n)
        .map(|i| {
            let p = Participant::join(
                &system.livekit_ws,
                &publisher_token(system, room, &format!("publisher-{i}")),
                "audio,video",
            );
            p.expect_line("joined", Duration::from_secs(30));
            p
        })
        .collect()
}

/// Runs `jobs` jobs of `mode` on `room` at once; measures each worker over the window.
fn run_jobs(
    system: &System,
    service: &mut Service,
    room: &str,
    mode: &str,
    jobs: usize,
) -> (Vec<Measured>, Vec<PathBuf>) {
    let ids: Vec<String> = (0..jobs).map(|_| unique("bench")).collect();
    for id in &ids {
        service.start_job(&json!({
            "job_id": id,
            "room_id": room,
            "livekit_url": system.livekit_ws,
            "token": recorder_token(system, room),
            "mode": mode,
        }));
    }
    // When each became ACTIVE (the pipeline started producing), in Unix ms.
    let active_ms: Vec<i64> = ids
        .iter()
        .map(|id| {
            let job = service.wait_state(id, "ACTIVE", Duration::from_secs(60));
            job["updated_ms"].as_i64().expect("updated_ms")
        })
        .collect();
    // Let every worker join, subscribe and settle before the window.
    std::thread::sleep(Duration::from_secs(4));
    let pids: Vec<u32> = ids.iter().map(|id| worker_pid(service, id)).collect();
    let before: Vec<f64> = pids.iter().map(|&p| cpu_seconds(p)).collect();
    let started = Instant::now();
    std::thread::sleep(window());
    let after: Vec<f64> = pids.iter().map(|&p| cpu_seconds(p)).collect();
    let wall = started.elapsed().as_secs_f64();
    let rss: Vec<f64> = pids.iter().map(|&p| peak_rss_mib(p)).collect();
    let mut stopped_ms = Vec::new();
    for id in &ids {
        stopped_ms.push(recorder_native::events::now_ms());
        service.call("/jobs/stop", &json!({ "job_id": id }));
    }
    let mut files = Vec::new();
    let mut measured = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        // A worker that does not finish is killed by the stop watchdog and its file repaired
        // (FAILED, with the file): still a measurement, and counted.
        let done = service.wait_ended(id, Duration::from_secs(120));
        if done["state"] == "FAILED" {
            eprintln!("bench: job {id} failed: {}", done["reason"]);
        }
        let file = PathBuf::from(done["file"].as_str().expect("file"));
        let active_seconds = (stopped_ms[i] - active_ms[i]) as f64 / 1000.0;
        let (frames_kept, shows) = if mode == "composite" && file.is_file() {
            (
                frames_kept(&file, active_seconds),
                shows_participant(&file, active_seconds / 2.0),
            )
        } else {
            (f64::NAN, mode != "composite")
        };
        measured.push(Measured {
            cpu_per_media_second: (after[i] - before[i]) / wall,
            peak_rss_mib: rss[i],
            frames_kept,
            shows_participant: shows,
        });
        files.push(file);
    }
    (measured, files)
}

/// Frames in the file over 30 fps times the wall time the job was active (from ACTIVE to the
/// stop request): a worker that cannot keep up falls behind the clock and ends with fewer.
fn frames_kept(file: &Path, active_seconds: f64) -> f64 {
    let info = probe(file);
    number(&stream(&info, "video")["nb_read_frames"]) / (active_seconds * 30.0)
}

/// CPU-seconds of a child process, from its rusage.
#[allow(clippy::zombie_processes)] // reaped by wait4, which std does not know about
fn child_cpu_seconds(command: &mut std::process::Command) -> f64 {
    let child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn");
    let mut status = 0;
    // SAFETY: plain wait4 on our own child; rusage is written by the kernel.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage);
        usage
    };
    assert_eq!(status, 0, "{command:?} failed");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// ffmpeg's libx264 + AAC encode of the same picture, in CPU-seconds per media-second.
fn ffmpeg_baseline(composite: &Path) -> f64 {
    let dir = composite.with_extension("baseline");
    std::fs::create_dir_all(&dir).expect("dir");
    let raw = dir.join("raw.nut");
    // Decode once, untimed: raw video and PCM audio in NUT.
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(composite)
        .args([
            "-c:v",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "pcm_s16le",
        ])
        .arg(&raw)
        .status()
        .expect("ffmpeg decode");
    assert!(status.success());
    let media = number(&probe(composite)["format"]["duration"]);
    let cpu = child_cpu_seconds(
        std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&raw)
            .args([
                "-c:v",
                "libx264",
                "-preset",
                &preset(),
                "-tune",
                "zerolatency",
                "-b:v",
                "2500k",
                "-g",
                "30",
                "-profile:v",
                "high",
                // As the worker's x264enc runs: one thread, constant bitrate with its VBV
                // (gst's default buffer of 600 ms at 2500 kbit/s).
                "-threads",
                "1",
                "-maxrate",
                "2500k",
                "-bufsize",
                "1500k",
                "-c:a",
                "aac",
                "-b:a",
                "128k",
            ])
            .arg(dir.join("baseline.mp4")),
    );
    let _ = std::fs::remove_dir_all(&dir);
    cpu / media
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let system = media_system("bench-recorder");
    let secret = new_secret();
    let mut service = Service::start("bench", &secret, None, &service_config(""));
    println!(
        "window: {} s per measurement, x264 preset {}\n",
        window().as_secs(),
        preset()
    );
    let part = std::env::var("EDGEMEET_BENCH_PART").unwrap_or_default();
    if part.is_empty() || part == "ratio" {
        per_job_costs(&system, &mut service, part == "ratio");
    }
    if part.is_empty() || part == "cap" {
        canvas_cap(&system, &mut service, &secret);
    }
    if part.is_empty() || part == "concurrency" {
        concurrency(&system, &mut service);
    }
    let _ = service.terminate(Duration::from_secs(60));
}

/// The bench services' config: admission that never refuses (the bench measures, it does not
/// admit), a patient stall watchdog, the bench's x264 preset, and `composite` lines added to the
/// `[composite]` table.
fn service_config(composite: &str) -> String {
    format!(
        "[admission]\ncpu_share = 1.0\nmax_jobs = 32\ncomposite_cost = 0.01\n\
         tracks_cost = 0.01\n[watchdog]\nstall_seconds = 60\n[composite]\npreset = \"{}\"\n\
         {composite}",
        preset()
    )
}

/// What a canvas cap saves: 4 publishers on a canvas with places for 2 (the other two switched
/// off at LiveKit) against 2 and 4 publishers with room for all.
fn canvas_cap(system: &System, service: &mut Service, secret: &str) {
    let mut capped = Service::start(
        "bench-capped",
        secret,
        None,
        &service_config("max_videos = 2\n"),
    );
    println!("| composite | CPU-s per media-s | peak RSS (MiB) |\n|---|---|---|");
    for (n, is_capped, label) in [
        (2, false, "2 publishers, 2 shown"),
        (4, false, "4 publishers, 4 shown"),
        (
            4,
            true,
            "4 publishers, `max_videos = 2`: 2 shown, 2 switched off",
        ),
    ] {
        let node = if is_capped {
            &mut capped
        } else {
            &mut *service
        };
        let room = unique("bench-room");
        let _publishers = publishers(system, &room, n);
        let (measured, _) = run_jobs(system, node, &room, "composite", 1);
        println!(
            "| {label} | {:.3} | {:.0} |",
            measured[0].cpu_per_media_second, measured[0].peak_rss_mib
        );
    }
    println!();
    let _ = capped.terminate(Duration::from_secs(60));
}

/// CPU per media-second and memory of single jobs, and the ffmpeg baseline; with `ratio_only`
/// just the 1-publisher composite and the baseline.
fn per_job_costs(system: &System, service: &mut Service, ratio_only: bool) {
    println!("| job | CPU-s per media-s | peak RSS (MiB) |\n|---|---|---|");
    let mut baseline_input = None;
    let mut one_publisher_cost = f64::NAN;
    let publisher_counts: &[usize] = if ratio_only { &[1] } else { &[1, 2, 4] };
    for &n in publisher_counts {
        let room = unique("bench-room");
        let _publishers = publishers(system, &room, n);
        let (measured, files) = run_jobs(system, service, &room, "composite", 1);
        // The centre check fits a single tile; with more, the centre is between tiles.
        if n == 1 && !measured[0].shows_participant {
            println!("(no participant in the picture: the next line is not a real composite)");
        }
        println!(
            "| 720p30 composite, {n} publisher{} | {:.3} | {:.0} |",
            if n == 1 { "" } else { "s" },
            measured[0].cpu_per_media_second,
            measured[0].peak_rss_mib
        );
        if n == 1 {
            one_publisher_cost = measured[0].cpu_per_media_second;
            baseline_input = files.into_iter().next();
        }
    }
    if !ratio_only {
        let room = unique("bench-room");
        let _publishers = publishers(system, &room, 1);
        let (measured, _) = run_jobs(system, service, &room, "tracks", 1);
        println!(
            "| pass-through tracks, 1 publisher | {:.3} | {:.0} |",
            measured[0].cpu_per_media_second, measured[0].peak_rss_mib
        );
    }
    if let Some(input) = baseline_input {
        let ffmpeg = ffmpeg_baseline(&input);
        println!("| ffmpeg libx264 + AAC, same picture (encode only) | {ffmpeg:.3} | |");
        println!(
            "\ncomposite (1 publisher) / ffmpeg encode: {:.2}",
            one_publisher_cost / ffmpeg
        );
    }
}

/// The most concurrent 1-publisher composites this machine sustains.
fn concurrency(system: &System, service: &mut Service) {
    println!("\n| concurrent 1-publisher composites | worst frames kept | CPU-s per media-s each (mean) | showing the participant |\n|---|---|---|---|");
    let mut sustained = 0;
    for jobs in [1usize, 2, 3, 4, 5, 6] {
        // A fresh room and publisher per step: a test publisher leaves after 90 s, and a step
        // takes about 30 s (one shared publisher left mid-way through the fourth step once,
        // which read as four black recordings).
        let room = unique("bench-room");
        let _publisher = publishers(system, &room, 1);
        let (measured, _) = run_jobs(system, service, &room, "composite", jobs);
        let worst = measured
            .iter()
            .map(|m| m.frames_kept)
            .fold(f64::INFINITY, f64::min);
        let mean = measured.iter().map(|m| m.cpu_per_media_second).sum::<f64>() / jobs as f64;
        let visible = measured.iter().filter(|m| m.shows_participant).count();
        println!(
            "| {jobs} | {:.2}% | {mean:.3} | {visible} of {jobs} |",
            worst * 100.0
        );
        if worst >= 0.99 && visible == jobs {
            sustained = jobs;
        } else {
            break;
        }
    }
    println!("\nmost concurrent 720p composites with >= 99% frames kept: {sustained}");
}
