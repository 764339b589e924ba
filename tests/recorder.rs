//! The recorder with real parts: a real LiveKit server (from `edgemeet up`), a real publisher
//! (LiveKit's Python realtime SDK sending audio and video over WebRTC) and `recorder-native
//! record` joining as a hidden subscriber through `livekitwebrtcsrc`. The MP4 it leaves is
//! checked with ffprobe: H.264 and AAC streams, the wall-clock duration, frames kept.
//!
//! Runs inside `scripts/test.sh`'s private network namespace (WebRTC ignores loopback).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{forward_lines, hs256, now_secs, unique, Participant, System};

/// The `recorder-native` binary, built by scripts/build.sh next to the test binaries.
fn recorder_binary() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_edgemeet"));
    let path = exe.with_file_name("recorder-native");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build.sh",
        path.display()
    );
    path
}

/// A LiveKit token for `identity` in `room` with the given video grant fields.
fn livekit_token(system: &System, room: &str, identity: &str, grant: Value) -> String {
    let mut video = json!({ "room": room, "roomJoin": true });
    if let (Some(video), Some(extra)) = (video.as_object_mut(), grant.as_object()) {
        video.extend(extra.clone());
    }
    hs256(
        &system.livekit_secret,
        &json!({
            "iss": system.livekit_key,
            "sub": identity,
            "name": identity,
            "nbf": now_secs() - 10,
            "exp": now_secs() + 600,
            "video": video,
        }),
    )
}

/// A running `recorder-native record` with its stderr collected.
struct Recorder {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Recorder {
    fn start(job: &Path) -> Recorder {
        let mut child = Command::new(recorder_binary())
            .args(["record", "--job"])
            .arg(job)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn recorder-native");
        let stdout = forward_lines(child.stdout.take().expect("stdout"));
        let stderr = forward_lines(child.stderr.take().expect("stderr"));
        Recorder {
            child,
            stdout,
            stderr,
            log: Vec::new(),
        }
    }

    /// Waits for a log line (stderr) containing `needle`.
    fn wait_log(&mut self, needle: &str, timeout: Duration) {
        if self.log.iter().any(|line| line.contains(needle)) {
            return;
        }
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.log.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "recorder did not log `{needle}` within {timeout:?}:\n{}",
            self.log.join("\n")
        );
    }

    fn expect_stdout(&mut self, prefix: &str, timeout: Duration) -> String {
        match self.stdout.recv_timeout(timeout) {
            Ok(line) if line.starts_with(prefix) => line,
            other => {
                std::thread::sleep(Duration::from_millis(200));
                self.log.extend(self.stderr.try_iter());
                panic!(
                    "recorder stdout: expected `{prefix}`, got {other:?}; it logged:\n{}",
                    self.log.join("\n")
                )
            }
        }
    }

    /// SIGTERM, then the exit code (None if it had to be killed after `grace`).
    fn stop(&mut self, grace: Duration) -> Option<i32> {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.log.extend(self.stderr.try_iter());
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ffprobe's view of a media file: format duration and each stream's codec and frame count.
fn probe(file: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "format=duration,format_name:stream=codec_type,codec_name,nb_read_frames,width,height",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe (installed by scripts/bootstrap.sh)");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

fn stream<'a>(probe: &'a Value, kind: &str) -> &'a Value {
    probe["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} stream in {probe}"))
}

fn number(v: &Value) -> f64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_f64())
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn records_a_live_room_into_a_finished_mp4() {
    let system = System::start("recorder", "");
    let room = unique("rec-room");
    let publisher = Participant::join(
        &system.livekit_ws,
        &livekit_token(
            &system,
            &room,
            "alice",
            json!({ "canPublish": true, "canSubscribe": true }),
        ),
        "audio,video",
    );
    publisher.expect_line("joined", Duration::from_secs(30));

    let dir = system.data_dir.join("recordings");
    std::fs::create_dir_all(&dir).expect("recordings dir");
    let output = dir.join("composite.mp4");
    let job = dir.join("job.json");
    std::fs::write(
        &job,
        json!({
            "livekit_url": system.livekit_ws,
            "token": livekit_token(
                &system,
                &room,
                "recorder",
                json!({ "canSubscribe": true, "canPublish": false, "hidden": true, "recorder": true }),
            ),
            "output": output,
        })
        .to_string(),
    )
    .expect("job file");

    let mut recorder = Recorder::start(&job);
    recorder.expect_stdout("recording", Duration::from_secs(30));
    let started = Instant::now();
    recorder.wait_log("video track joined the composite", Duration::from_secs(30));
    recorder.wait_log("audio track joined the mix", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(6));
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(
        recorder.stop(Duration::from_secs(30)),
        Some(0),
        "recorder did not stop cleanly:\n{}",
        recorder.log.join("\n")
    );
    assert!(output.is_file(), "no finished file");
    assert!(
        !output.with_extension("part.mp4").exists(),
        "the fragmented file was left behind"
    );

    let bytes = std::fs::read(&output).expect("read mp4");
    let at = |atom: &[u8]| bytes.windows(4).position(|w| w == atom);
    let (moov, mdat) = (at(b"moov").expect("moov"), at(b"mdat").expect("mdat"));
    assert!(moov < mdat, "not faststart: moov at {moov}, mdat at {mdat}");
    assert!(at(b"moof").is_none(), "still fragmented");

    let info = probe(&output);
    let duration = number(&info["format"]["duration"]);
    assert!(
        (duration - wall).abs() <= 1.0,
        "duration {duration:.2} s, recorded for {wall:.2} s: {info}"
    );
    let video = stream(&info, "video");
    assert_eq!(video["codec_name"], "h264", "{info}");
    assert_eq!(video["width"], 1280);
    assert_eq!(video["height"], 720);
    let frames = number(&video["nb_read_frames"]);
    assert!(
        frames >= duration * 30.0 * 0.97,
        "{frames} frames in {duration:.2} s at 30 fps: frames were lost"
    );
    assert_eq!(stream(&info, "audio")["codec_name"], "aac", "{info}");
}
