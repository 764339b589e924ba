//! When a worker is overdue and must be killed. Checked once a second by the supervisor:
//!
//! - a worker that has not joined its room within `start_seconds`;
//! - a running worker that reports no progress for `stall_seconds`;
//! - after a stop, a worker that has not finished within `stop_seconds`, unless it has said it
//!   is finalizing its MP4. A finalize rewrites the whole recording (gigabytes for a long one),
//!   so it gets no fixed deadline: it is killed only when its file I/O stands still for
//!   `stall_seconds`.

use std::time::Instant;

use crate::config::{seconds, WatchdogConfig};
use crate::job::{JobState, Mode};

/// One worker's watchdog.
#[derive(Debug)]
pub struct Watchdog {
    limits: WatchdogConfig,
    mode: Mode,
    started: Instant,
    /// When progress last moved, and the frame count then.
    progress: (Instant, u64),
    /// Once finalizing: when its I/O last moved, and the byte count then.
    finalizing: Option<(Instant, u64)>,
}

impl Watchdog {
    /// A watchdog for a worker started at `now`.
    pub fn new(limits: WatchdogConfig, mode: Mode, now: Instant) -> Watchdog {
        Watchdog {
            limits,
            mode,
            started: now,
            progress: (now, 0),
            finalizing: None,
        }
    }

    /// The worker reported `frames` so far, and whether buffers wait to be written with none
    /// written since its last report (`backlog`).
    pub fn progress(&mut self, now: Instant, frames: u64, backlog: bool) {
        // Composites always produce frames (the background keeps time). A tracks worker writes
        // nothing while nobody publishes, or while every camera and microphone is muted: that
        // is alive as long as nothing waits to be written.
        let idle = self.mode == Mode::Tracks && !backlog;
        if idle || frames > self.progress.1 {
            self.progress = (now, frames);
        }
    }

    /// The worker said it is finalizing; `io_bytes` is its I/O so far.
    pub fn finalizing(&mut self, now: Instant, io_bytes: u64) {
        self.finalizing = Some((now, io_bytes));
    }

    /// Why the worker should be killed now, if it should. `io_bytes` reads its I/O so far (see
    /// [`process_io_bytes`]); it is called only while the worker is finalizing.
    pub fn overdue(
        &mut self,
        now: Instant,
        state: JobState,
        stop_requested: Option<Instant>,
        io_bytes: impl FnOnce() -> Option<u64>,
    ) -> Option<String> {
        let limits = &self.limits;
        if let Some((moved, bytes)) = &mut self.finalizing {
            if let Some(io) = io_bytes().filter(|&io| io != *bytes) {
                *moved = now;
                *bytes = io;
            }
            return (now - *moved > seconds(limits.stall_seconds)).then(|| {
                format!(
                    "finalizing the MP4 stalled: no file I/O for {} s",
                    limits.stall_seconds
                )
            });
        }
        match (state, stop_requested) {
            (_, Some(asked)) if now - asked > seconds(limits.stop_seconds) => Some(format!(
                "the worker did not finish within {} s of the stop",
                limits.stop_seconds
            )),
            (_, Some(_)) => None,
            (JobState::Starting, None) if now - self.started > seconds(limits.start_seconds) => {
                Some(format!(
                    "the worker did not join the room within {} s",
                    limits.start_seconds
                ))
            }
            (JobState::Active, None) if now - self.progress.0 > seconds(limits.stall_seconds) => {
                Some(format!(
                    "the recording stalled: no progress for {} s",
                    limits.stall_seconds
                ))
            }
            _ => None,
        }
    }
}

/// Bytes a process has read and written through system calls so far (`rchar + wchar` of
/// `/proc/<pid>/io`), or `None` when it cannot be read.
pub fn process_io_bytes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let field = |name: &str| {
        io.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(field("rchar:")?.saturating_add(field("wchar:")?))
}

/// The memory a process has mapped for its data (`VmData` of `/proc/<pid>/status`: what
/// `RLIMIT_DATA` limits), in bytes, or `None` when it cannot be read.
pub fn process_data_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmData:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib.saturating_mul(1024))
}

/// What to add to a failed worker's reason when it had come close to its memory limit
/// (`limit_mb`, 0 for none) before it failed: its allocations were then likely what failed.
pub fn memory_note(limit_mb: u64, peak_bytes: u64) -> Option<String> {
    let limit = limit_mb.checked_mul(1024 * 1024).filter(|&l| l > 0)?;
    (peak_bytes >= limit / 10 * 9)
        .then(|| format!("the worker had reached its memory limit of {limit_mb} MiB"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits() -> WatchdogConfig {
        WatchdogConfig {
            start_seconds: 30.0,
            stall_seconds: 10.0,
            stop_seconds: 20.0,
            memory_mb: 0,
        }
    }

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    #[test]
    fn memory_is_blamed_only_near_the_limit() {
        let mib = 1024 * 1024;
        assert_eq!(memory_note(0, u64::MAX), None);
        assert_eq!(memory_note(256, 100 * mib), None);
        let note = memory_note(256, 250 * mib).expect("near the limit");
        assert!(note.contains("256 MiB"), "{note}");
        let own = process_data_bytes(std::process::id()).expect("own VmData");
        assert!(own > 0);
    }

    #[test]
    fn start_stall_and_stop_deadlines() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(limits(), Mode::Composite, t0);
        assert!(dog
            .overdue(at(t0, 29), JobState::Starting, None, || None)
            .is_none());
        assert!(dog
            .overdue(at(t0, 31), JobState::Starting, None, || None)
            .is_some_and(|r| r.contains("join")));
        dog.progress(at(t0, 31), 30, false);
        assert!(dog
            .overdue(at(t0, 40), JobState::Active, None, || None)
            .is_none());
        // The same frame count again is no progress for a composite.
        dog.progress(at(t0, 40), 30, false);
        assert!(dog
            .overdue(at(t0, 42), JobState::Active, None, || None)
            .is_some_and(|r| r.contains("stalled")));
        let asked = at(t0, 50);
        assert!(dog
            .overdue(at(t0, 69), JobState::Ending, Some(asked), || None)
            .is_none());
        assert!(dog
            .overdue(at(t0, 71), JobState::Ending, Some(asked), || None)
            .is_some_and(|r| r.contains("of the stop")));
    }

    /// A tracks worker that writes nothing is alive while nothing waits to be written (nobody
    /// publishes, or everyone is muted); buffers waiting with none written is a stuck writer.
    #[test]
    fn tracks_stall_only_when_buffers_wait() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(limits(), Mode::Tracks, t0);
        for s in 1..=60 {
            dog.progress(at(t0, s), 0, false);
        }
        assert!(dog
            .overdue(at(t0, 60), JobState::Active, None, || None)
            .is_none());
        for s in 61..=71 {
            dog.progress(at(t0, s), 0, true);
        }
        assert!(dog
            .overdue(at(t0, 71), JobState::Active, None, || None)
            .is_some_and(|r| r.contains("stalled")));
        // Written again: progress, backlog or not.
        dog.progress(at(t0, 72), 5, true);
        assert!(dog
            .overdue(at(t0, 73), JobState::Active, None, || None)
            .is_none());
    }

    /// A long recording's finalize outlives the stop deadline as long as its I/O moves.
    #[test]
    fn finalizing_is_judged_by_its_io() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(limits(), Mode::Composite, t0);
        let asked = at(t0, 100);
        dog.finalizing(at(t0, 105), 1_000);
        for s in 106..400 {
            let io = 1_000 + s * 50_000_000;
            assert!(
                dog.overdue(at(t0, s), JobState::Ending, Some(asked), || Some(io))
                    .is_none(),
                "killed at {s} s while writing"
            );
        }
        let still = 1_000 + 399 * 50_000_000;
        assert!(dog
            .overdue(at(t0, 405), JobState::Ending, Some(asked), || Some(still))
            .is_none());
        assert!(dog
            .overdue(at(t0, 410), JobState::Ending, Some(asked), || Some(still))
            .is_some_and(|r| r.contains("finalizing")));
    }

    #[test]
    fn reads_this_process_io() {
        let before = process_io_bytes(std::process::id()).expect("/proc/self/io");
        let path = std::env::temp_dir().join(format!("watchdog-io-{}", std::process::id()));
        std::fs::write(&path, vec![0u8; 64 * 1024]).expect("write");
        let _ = std::fs::remove_file(&path);
        let after = process_io_bytes(std::process::id()).expect("/proc/self/io");
        assert!(after >= before + 64 * 1024, "{before} -> {after}");
    }
}
