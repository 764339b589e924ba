//! Admission by CPU cost, in cores: each job holds its estimated cost from the start, replaced
//! by its measured cost once it has run a while; a new job is admitted only if it fits under a
//! share of the node's cores and under the hard maximum of concurrent jobs. A job that writes a
//! file also needs free disk space in the recordings directory ([`check_free_disk`]) and a job
//! database that takes writes.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The node's budget.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Cores jobs may use together (the node's cores times the configured share).
    pub cap_cores: f64,
    /// Hard maximum of concurrent jobs.
    pub max_jobs: usize,
}

/// Why a job was refused: the "no capacity" answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoCapacity {
    /// The hard maximum of jobs is reached.
    #[error("no capacity: {running} of {max} jobs running")]
    Jobs {
        /// Jobs running now.
        running: usize,
        /// The maximum.
        max: usize,
    },
    /// The job's cost does not fit.
    #[error("no capacity: the job needs {needed:.2} cores, {free:.2} of {cap:.2} are free")]
    Cpu {
        /// The new job's estimated cost.
        needed: f64,
        /// Cores not reserved by running jobs.
        free: f64,
        /// The cap.
        cap: f64,
    },
    /// Too little free space in the recordings directory for a job that writes a file.
    #[error(
        "no capacity: free disk space is too low: {free_mb} MiB free in the recordings \
         directory, {min_mb} MiB required (admission.min_free_disk_mb)"
    )]
    Disk {
        /// MiB free now.
        free_mb: u64,
        /// The configured minimum.
        min_mb: u64,
    },
    /// The job database refuses writes (its disk is full, say): the job's states could not be
    /// kept.
    #[error(
        "no capacity: the job database refuses writes (is its disk full?){}",
        unstored_note(*.unstored_final_states)
    )]
    Store {
        /// Ended jobs whose final state waits to be stored.
        unstored_final_states: usize,
    },
}

/// The end of [`NoCapacity::Store`]'s message: how many final states wait, if any.
fn unstored_note(unstored: usize) -> String {
    match unstored {
        0 => String::new(),
        1 => "; 1 ended job waits for its final state to be stored".into(),
        n => format!("; {n} ended jobs wait for their final state to be stored"),
    }
}

/// Bytes free in the file system that holds `path`, as an unprivileged writer may use them
/// (`statvfs`'s `f_bavail`).
pub fn free_disk_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stat` is a valid, writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Both fields are u64 on 64-bit Linux but narrower on some targets.
    #[allow(clippy::useless_conversion)]
    let (blocks, size) = (u64::from(stat.f_bavail), u64::from(stat.f_frsize));
    Ok(blocks.saturating_mul(size))
}

/// Refuses a job that writes a file when `free_bytes` are below `min_mb` MiB (0: no minimum).
pub fn check_free_disk(free_bytes: u64, min_mb: u64) -> Result<(), NoCapacity> {
    if free_bytes < min_mb.saturating_mul(MIB) {
        return Err(NoCapacity::Disk {
            free_mb: free_bytes / MIB,
            min_mb,
        });
    }
    Ok(())
}

/// Bytes in a MiB.
pub const MIB: u64 = 1024 * 1024;

/// The budget's figures, for the heartbeat and the job list.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figures {
    /// The cap on jobs' cores together.
    pub cap_cores: f64,
    /// Cores held by running jobs (estimates and measurements).
    pub reserved_cores: f64,
    /// `cap_cores - reserved_cores`, at least 0.
    pub free_cores: f64,
    /// Jobs running.
    pub jobs: usize,
    /// The hard maximum of jobs.
    pub max_jobs: usize,
}

impl Budget {
    /// The figures with these jobs' costs held.
    pub fn figures(&self, costs: &[f64]) -> Figures {
        let reserved: f64 = costs.iter().sum();
        Figures {
            cap_cores: self.cap_cores,
            reserved_cores: reserved,
            free_cores: (self.cap_cores - reserved).max(0.0),
            jobs: costs.len(),
            max_jobs: self.max_jobs,
        }
    }

    /// Admits a job costing `needed` next to jobs holding `costs`, or says why not.
    pub fn admit(&self, costs: &[f64], needed: f64) -> Result<(), NoCapacity> {
        let figures = self.figures(costs);
        if figures.jobs >= self.max_jobs {
            return Err(NoCapacity::Jobs {
                running: figures.jobs,
                max: self.max_jobs,
            });
        }
        // A small tolerance so that, e.g., five jobs of 0.32 fit under a cap of 1.6.
        if figures.reserved_cores + needed > self.cap_cores + 1e-9 {
            return Err(NoCapacity::Cpu {
                needed,
                free: figures.free_cores,
                cap: self.cap_cores,
            });
        }
        Ok(())
    }
}

/// One job's cost: its estimate until it has been ACTIVE for `measure_after`, then its measured
/// CPU use (an average over the last few samples, so a short spike neither admits nor refuses
/// much). Joining a room costs a fraction of recording it, so what a worker uses before it is
/// ACTIVE says nothing about its cost and is not counted.
#[derive(Debug, Clone)]
pub struct CostMeter {
    estimate: f64,
    active_since: Option<Instant>,
    measure_after: Duration,
    last: Option<(Instant, f64)>,
    measured: Option<f64>,
}

/// Weight of the newest sample in the moving average.
const SMOOTHING: f64 = 0.3;

impl CostMeter {
    /// A meter holding `estimate` cores until the job is active and measured.
    pub fn new(estimate: f64, measure_after: Duration) -> CostMeter {
        CostMeter {
            estimate,
            active_since: None,
            measure_after,
            last: None,
            measured: None,
        }
    }

    /// The job became ACTIVE at `now`: measuring starts afresh.
    pub fn active(&mut self, now: Instant) {
        if self.active_since.is_none() {
            self.active_since = Some(now);
            self.measured = None;
        }
    }

    /// Feeds the job's total CPU seconds so far, read at `now`.
    pub fn sample(&mut self, now: Instant, cpu_seconds: f64) {
        if let (Some((then, before)), Some(_)) = (self.last, self.active_since) {
            let wall = now.saturating_duration_since(then).as_secs_f64();
            if wall > 0.0 {
                let cores = ((cpu_seconds - before) / wall).max(0.0);
                self.measured = Some(match self.measured {
                    Some(avg) => avg + SMOOTHING * (cores - avg),
                    None => cores,
                });
            }
        }
        self.last = Some((now, cpu_seconds));
    }

    /// The cores this job holds now.
    pub fn cost(&self, now: Instant) -> f64 {
        match self.measured {
            Some(measured) if self.is_measured(now) => measured,
            _ => self.estimate,
        }
    }

    /// Whether [`CostMeter::cost`] is a measurement yet.
    pub fn is_measured(&self, now: Instant) -> bool {
        self.measured.is_some()
            && self
                .active_since
                .is_some_and(|since| now.saturating_duration_since(since) >= self.measure_after)
    }
}

/// Total CPU seconds (user + system, all threads) of process `pid`, from `/proc`.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_over_the_cap_and_over_the_job_limit() {
        let budget = Budget {
            cap_cores: 1.6,
            max_jobs: 3,
        };
        assert!(budget.admit(&[0.4, 0.4], 0.4).is_ok());
        assert!(matches!(
            budget.admit(&[0.8, 0.6], 0.4),
            Err(NoCapacity::Cpu { .. })
        ));
        assert!(matches!(
            budget.admit(&[0.1, 0.1, 0.1], 0.1),
            Err(NoCapacity::Jobs { running: 3, max: 3 })
        ));
        let five = Budget {
            cap_cores: 1.6,
            max_jobs: 8,
        };
        assert!(five.admit(&[0.32; 4], 0.32).is_ok());
        let figures = budget.figures(&[0.5, 0.25]);
        assert!((figures.free_cores - 0.85).abs() < 1e-9, "{figures:?}");
        assert!(budget
            .admit(&[2.0], 0.1)
            .unwrap_err()
            .to_string()
            .starts_with("no capacity"));
    }

    #[test]
    fn a_file_job_needs_the_minimum_of_free_disk_space() {
        assert_eq!(check_free_disk(0, 0), Ok(()), "0 is no minimum");
        assert_eq!(check_free_disk(1024 * MIB, 1024), Ok(()));
        let refused = check_free_disk(1024 * MIB - 1, 1024).expect_err("below");
        assert_eq!(
            refused,
            NoCapacity::Disk {
                free_mb: 1023,
                min_mb: 1024
            }
        );
        let message = refused.to_string();
        assert!(
            message.starts_with("no capacity: free disk space is too low: 1023 MiB free")
                && message.contains("1024 MiB required"),
            "{message}"
        );
        let free = free_disk_bytes(&std::env::temp_dir()).expect("statvfs");
        assert!(free > 0);
        assert!(free_disk_bytes(Path::new("/nonexistent/recordings")).is_err());
    }

    #[test]
    fn a_store_that_refuses_writes_is_no_capacity() {
        let full = NoCapacity::Store {
            unstored_final_states: 0,
        };
        assert_eq!(
            full.to_string(),
            "no capacity: the job database refuses writes (is its disk full?)"
        );
        let waiting = NoCapacity::Store {
            unstored_final_states: 2,
        }
        .to_string();
        assert!(
            waiting.starts_with("no capacity") && waiting.contains("2 ended jobs wait"),
            "{waiting}"
        );
    }

    #[test]
    fn the_estimate_holds_until_measured() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut meter = CostMeter::new(0.4, Duration::from_secs(10));
        // Joining: cheap, and however long it takes, not a measurement.
        for s in 0..=20 {
            meter.sample(at(s), 0.02 * s as f64);
        }
        assert_eq!(meter.cost(at(20)), 0.4);
        assert!(!meter.is_measured(at(20)));
        meter.active(at(20));
        for s in 21..=29 {
            meter.sample(at(s), 0.4 + 0.3 * (s - 20) as f64);
        }
        assert_eq!(meter.cost(at(29)), 0.4, "not active for 10 s yet");
        meter.sample(at(30), 0.4 + 0.3 * 10.0);
        assert!(meter.is_measured(at(30)));
        assert!(
            (meter.cost(at(30)) - 0.3).abs() < 1e-9,
            "{}",
            meter.cost(at(30))
        );
    }

    #[test]
    fn reads_this_process_cpu_time() {
        let before = process_cpu_seconds(std::process::id()).expect("own /proc stat");
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(100) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let after = process_cpu_seconds(std::process::id()).expect("own /proc stat");
        assert!(after > before, "{before} -> {after} ({x})");
    }
}
