//! The worker process: one job, one process (`recorder-native record --job FILE`), so a crashed
//! or hung pipeline takes down only its job. It reads its job from a file (the token is a
//! secret, never an argument), reports on stdout as JSON lines ([`WorkerReport`]), stops on
//! SIGTERM by EOS and finalizes its files.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::composite::{CompositeSettings, Outputs, Recording};
use crate::finalize::remux_faststart;
use crate::job::Mode;
use crate::media::{self, PipelineError, RoomInput, RoomToken, RunEvent};
use crate::tracks::TrackRecording;

/// The job file a worker reads. Its `Debug` leaves out the token and the stream key.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerJob {
    /// LiveKit signalling URL.
    pub livekit_url: String,
    /// LiveKit access token of a hidden subscriber.
    pub token: String,
    /// Composite or tracks.
    #[serde(default = "composite")]
    pub mode: Mode,
    /// Composite: the finished MP4 (written as [`part_file`] while recording). Tracks: the
    /// directory of track files.
    #[serde(default)]
    pub output: Option<PathBuf>,
    /// Broadcast target (composite only).
    #[serde(default)]
    pub rtmp_url: Option<String>,
    /// The addresses the service checked for `rtmp_url`'s host: the only ones the worker
    /// connects to. A name with none cannot be reached.
    #[serde(default)]
    pub rtmp_addresses: Vec<std::net::IpAddr>,
    /// The composite's encode (the service's `[composite]` settings).
    #[serde(default)]
    pub composite: CompositeSettings,
}

impl std::fmt::Debug for WorkerJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerJob")
            .field("livekit_url", &self.livekit_url)
            .field("token", &"<redacted>")
            .field("mode", &self.mode)
            .field("output", &self.output)
            .field(
                "rtmp_url",
                &self.rtmp_url.as_deref().map(crate::job::redact_rtmp),
            )
            .field("rtmp_addresses", &self.rtmp_addresses)
            .field("composite", &self.composite)
            .finish()
    }
}

fn composite() -> Mode {
    Mode::Composite
}

/// The fragmented file a composite writes while recording, beside its finished file.
pub fn part_file(output: &Path) -> PathBuf {
    output.with_extension("part.mp4")
}

/// What a worker says on stdout, one JSON object a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerReport {
    /// The room is joined and output is being written.
    Active,
    /// Once a second: encoded frames (composite) or media buffers (tracks) so far.
    Progress {
        /// Frames or buffers.
        frames: u64,
        /// Media time recorded.
        media_ms: u64,
        /// Tracks: buffers wait to be written and none was written since the last report.
        #[serde(default)]
        backlog: bool,
    },
    /// The RTMP broadcast ended on its own; the file goes on.
    BroadcastEnded {
        /// Why.
        reason: String,
    },
    /// Stopped; now rewriting the recording into a faststart MP4, which for a long recording
    /// outlasts the stop deadline (the supervisor then watches the worker's file I/O instead).
    Finalizing,
    /// Stopped and finalized.
    Finished {
        /// Media time recorded.
        media_ms: u64,
    },
    /// The recording failed; the supervisor repairs what it left.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Why a job file was refused.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The job file could not be read or is not a job.
    #[error("job file {path}: {message}")]
    JobFile {
        /// The job file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The recording failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl WorkerJob {
    /// Reads a job file.
    pub fn load(path: &Path) -> Result<WorkerJob, WorkerError> {
        let job_file = |message: String| WorkerError::JobFile {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| job_file(e.to_string()))?;
        let job: WorkerJob = serde_json::from_str(&text).map_err(|e| job_file(e.to_string()))?;
        if job.output.is_none() && job.rtmp_url.is_none() {
            return Err(job_file("neither output nor rtmp_url".into()));
        }
        Ok(job)
    }
}

/// The signal set holding SIGTERM alone. Workers start with it blocked (the supervisor sets
/// that up before exec) and unblock it once their stop handler is in place, so an early stop
/// waits for the handler. Async-signal-safe: only `sigemptyset` and `sigaddset`.
pub fn sigterm_only() -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is a valid argument for sigemptyset, which initialises it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// What the supervisor tells a running worker, one JSON object a line on its stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "instruction", rename_all = "snake_case")]
pub enum WorkerInstruction {
    /// Join with this token from now on (the job was started again with a fresh one).
    Token {
        /// The LiveKit access token.
        token: String,
    },
}

/// Reads the supervisor's instructions from stdin on a thread of its own, until stdin closes.
fn follow_instructions(token: RoomToken) {
    let spawned = std::thread::Builder::new()
        .name("instructions".into())
        .spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<WorkerInstruction>(&line) {
                    Ok(WorkerInstruction::Token { token: fresh }) => {
                        token.replace(fresh);
                        tracing::info!("the room token was replaced; re-joins use the new one");
                    }
                    Err(e) => tracing::warn!(error = %e, "unrecognised instruction"),
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot read instructions; the job keeps its first token");
    }
}

/// Writes one report line to stdout (the supervisor reads it).
pub fn report(line: &WorkerReport) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, line);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Records `job` on the calling (plain) thread until `stop` receives, then finalizes.
pub fn record(job: &WorkerJob, stop: &std::sync::mpsc::Receiver<()>) -> Result<(), WorkerError> {
    media::init()?;
    let input = RoomInput {
        ws_url: job.livekit_url.clone(),
        token: RoomToken::new(job.token.clone()),
    };
    follow_instructions(input.token.clone());
    let mut last = media::Progress::default();
    let mut active = false;
    let mut on_event = |event: RunEvent| match event {
        RunEvent::Playing if !active => {
            active = true;
            report(&WorkerReport::Active);
        }
        RunEvent::Playing => {}
        RunEvent::Progress(progress) => {
            last = progress;
            report(&WorkerReport::Progress {
                frames: progress.frames,
                media_ms: progress.media_ms,
                backlog: progress.backlog,
            });
        }
        RunEvent::BroadcastEnded(reason) => report(&WorkerReport::BroadcastEnded { reason }),
    };
    match job.mode {
        Mode::Composite => {
            if let Some(url) = &job.rtmp_url {
                crate::targets::pin_rtmp_host(url, &job.rtmp_addresses)
                    .map_err(|e| PipelineError::Setup(e.to_string()))?;
            }
            let part = job.output.as_deref().map(part_file);
            let recording = Recording::build(
                &input,
                job.composite,
                Outputs {
                    file: part.clone(),
                    rtmp_url: job.rtmp_url.clone(),
                },
            )?;
            recording.run(stop, &mut on_event)?;
            if let (Some(part), Some(output)) = (part, &job.output) {
                tracing::info!(file = %output.display(), "finalizing the MP4");
                report(&WorkerReport::Finalizing);
                remux_faststart(&part, output)?;
                std::fs::remove_file(&part).map_err(|e| {
                    PipelineError::Setup(format!("removing {}: {e}", part.display()))
                })?;
            }
        }
        Mode::Tracks => {
            let dir = job.output.clone().ok_or_else(|| WorkerError::JobFile {
                path: PathBuf::new(),
                message: "tracks mode needs an output directory".into(),
            })?;
            TrackRecording::build(&input, dir)?.run(stop, &mut on_event)?;
        }
    }
    report(&WorkerReport::Finished {
        media_ms: last.media_ms,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_one_json_object_a_line() {
        let line = serde_json::to_string(&WorkerReport::Progress {
            frames: 30,
            media_ms: 1000,
            backlog: false,
        })
        .expect("json");
        assert_eq!(
            line,
            r#"{"event":"progress","frames":30,"media_ms":1000,"backlog":false}"#
        );
        // A report without `backlog` (an older worker) reads as no backlog.
        let old: WorkerReport =
            serde_json::from_str(r#"{"event":"progress","frames":1,"media_ms":2}"#).expect("parse");
        assert_eq!(
            old,
            WorkerReport::Progress {
                frames: 1,
                media_ms: 2,
                backlog: false
            }
        );
        let back: WorkerReport = serde_json::from_str(r#"{"event":"active"}"#).expect("parse");
        assert_eq!(back, WorkerReport::Active);
    }

    #[test]
    fn instructions_are_one_json_object_a_line() {
        let line =
            serde_json::to_string(&WorkerInstruction::Token { token: "t".into() }).expect("json");
        assert_eq!(line, r#"{"instruction":"token","token":"t"}"#);
        assert!(serde_json::from_str::<WorkerInstruction>(r#"{"instruction":"nope"}"#).is_err());
    }

    #[test]
    fn part_file_sits_beside_the_output() {
        assert_eq!(
            part_file(Path::new("/r/a.mp4")),
            PathBuf::from("/r/a.part.mp4")
        );
    }
}
