//! The node: admits jobs, runs each in its own worker process, watches it, and records every
//! state change with its event.
//!
//! A worker is `recorder-native record --job FILE`. It reports on stdout ([`WorkerReport`]); the
//! supervisor turns that into STARTING -> ACTIVE -> ENDING -> COMPLETE or FAILED. Stop is SIGTERM
//! (the worker sends EOS and finalizes), then a watchdog, then SIGKILL. A worker that does not
//! join in time or stops making progress is killed the same way. Whatever a failed worker left is
//! repaired into a playable MP4 and reported. Workers die with the service (`PR_SET_PDEATHSIG`),
//! and the next start repairs what they left ([`crate::recovery`]).

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::Notify;

use crate::admission::{process_cpu_seconds, Budget, CostMeter, Figures, NoCapacity};
use crate::config::{seconds, ServiceConfig};
use crate::events::{now_ms, Event, EventKind};
use crate::job::{redact_rtmp, InvalidJob, JobState, JobView, Mode, StartRequest};
use crate::storage::Storage;
use crate::store::{Outcome, Store, StoreError, Unfinished};
use crate::targets::check_rtmp_target;
use crate::watchdog::{memory_note, process_data_bytes, process_io_bytes, Watchdog};
use crate::worker::{part_file, sigterm_only, WorkerInstruction, WorkerJob, WorkerReport};

/// Why a start was refused.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The request cannot work.
    #[error(transparent)]
    Invalid(#[from] InvalidJob),
    /// The job id is taken by a different job.
    #[error("job {0} already exists with different settings")]
    Conflict(String),
    /// The job id is new to the node, but the recording of an earlier job with that id (one
    /// the node has forgotten) is still there; a new job would write over it or report it as
    /// its own.
    #[error(
        "job {job_id}: the recording of an earlier job with this id is still at {location}; \
         move it away or start the job under another id"
    )]
    RecordingExists {
        /// The job id.
        job_id: String,
        /// Where the earlier recording is: a path in the recordings directory, or `s3://...`.
        location: String,
    },
    /// The node is full.
    #[error(transparent)]
    NoCapacity(#[from] NoCapacity),
    /// The job database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a stop was refused.
#[derive(Debug, thiserror::Error)]
pub enum StopError {
    /// No such job.
    #[error("no job {0}")]
    NotFound(String),
    /// The job database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A start that was accepted.
#[derive(Debug, Clone)]
pub struct Started {
    /// The job now.
    pub job: JobView,
    /// Whether it already existed (an idempotent repeat).
    pub existing: bool,
}

/// One job's share of the node, in the heartbeat.
#[derive(Debug, Clone, Serialize)]
pub struct JobLoad {
    /// The job.
    pub job_id: String,
    /// Its state.
    pub state: JobState,
    /// Cores it holds.
    pub cost_cores: f64,
    /// Whether that is measured (else the estimate).
    pub measured: bool,
}

/// What the node reports every few seconds.
#[derive(Debug, Clone, Serialize)]
pub struct Heartbeat {
    /// The node's cores.
    pub cores: f64,
    /// The admission figures.
    pub capacity: Figures,
    /// Running jobs and their costs.
    pub jobs: Vec<JobLoad>,
    /// Events waiting for the control plane.
    pub undelivered_events: i64,
    /// Events the control plane refused for good, kept in the store's `dead_letter` table.
    pub dead_letter_events: i64,
}

/// A job with a worker.
struct Running {
    view: JobView,
    meter: CostMeter,
    pid: Option<u32>,
    stop_requested: Option<Instant>,
    /// The worker is gone; the job is only being concluded (repair, upload) and holds no CPU.
    worker_exited: bool,
    /// Instructions for the worker (a fresh token), written to its stdin in order; those sent
    /// before it was spawned wait in the channel.
    instructions: tokio::sync::mpsc::UnboundedSender<WorkerInstruction>,
    /// The other end, until the worker's watcher takes it.
    instructions_out: Option<tokio::sync::mpsc::UnboundedReceiver<WorkerInstruction>>,
}

/// The recorder node: configuration, durable state and the running jobs.
pub struct Node {
    config: ServiceConfig,
    budget: Budget,
    store: Arc<Mutex<Store>>,
    storage: Storage,
    running: Mutex<HashMap<String, Running>>,
    outbox: Arc<Notify>,
    worker_exe: PathBuf,
    /// Where workers' job files live (they hold tokens: 0600, removed when the job ends).
    jobs_dir: PathBuf,
    all_done: Notify,
}

/// How a worker ended, as its supervisor saw it.
pub(crate) enum WorkerOutcome {
    Finished,
    Failed(String),
}

impl Node {
    /// A node over an open store, keeping finished outputs in `storage`; `worker_exe` is the
    /// `recorder-native` binary.
    pub fn new(
        config: ServiceConfig,
        store: Store,
        storage: Storage,
        worker_exe: PathBuf,
    ) -> Arc<Node> {
        let budget = Budget {
            cap_cores: config.cores() * config.admission.cpu_share,
            max_jobs: config.admission.max_jobs,
        };
        let jobs_dir = config.jobs_dir();
        Arc::new(Node {
            config,
            budget,
            store: Arc::new(Mutex::new(store)),
            storage,
            running: Mutex::new(HashMap::new()),
            outbox: Arc::new(Notify::new()),
            worker_exe,
            jobs_dir,
            all_done: Notify::new(),
        })
    }

    /// The store, shared with event delivery.
    pub fn store(&self) -> Arc<Mutex<Store>> {
        self.store.clone()
    }

    /// Notified whenever an event is queued.
    pub fn outbox(&self) -> Arc<Notify> {
        self.outbox.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    fn store_lock(&self) -> std::sync::MutexGuard<'_, Store> {
        // A poisoned lock means a panic mid-statement; SQLite's transaction kept the data whole.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn running_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn estimate(&self, mode: Mode) -> f64 {
        match mode {
            Mode::Composite => self.config.admission.composite_cost,
            Mode::Tracks => self.config.admission.tracks_cost,
        }
    }

    fn costs(running: &HashMap<String, Running>, now: Instant) -> Vec<f64> {
        running
            .values()
            .filter(|r| !r.worker_exited)
            .map(|r| r.meter.cost(now))
            .collect()
    }

    /// Where a job's outputs go: `<recordings>/<job_id>.mp4`, or a directory for tracks.
    fn output_path(&self, job_id: &str, mode: Mode) -> PathBuf {
        let dir = self.config.recordings_dir();
        match mode {
            Mode::Composite => dir.join(format!("{job_id}.mp4")),
            Mode::Tracks => dir.join(job_id),
        }
    }

    /// What is left in the recordings directory of an earlier job with this id, if anything:
    /// its MP4, its fragmented or damaged file, or its (non-empty) directory of track files. A
    /// path that cannot be looked at counts as taken.
    fn earlier_local_recording(&self, job_id: &str) -> Option<PathBuf> {
        let composite = self.output_path(job_id, Mode::Composite);
        let names = [
            part_file(&composite),
            crate::recovery::damaged_file(&composite),
            self.output_path(job_id, Mode::Tracks),
            composite,
        ];
        names
            .into_iter()
            .find(|path| match std::fs::symlink_metadata(path) {
                Ok(meta) if meta.is_dir() => {
                    std::fs::read_dir(path).map_or(true, |mut entries| entries.next().is_some())
                }
                Ok(_) => true,
                Err(e) => e.kind() != std::io::ErrorKind::NotFound,
            })
    }

    /// Where storage (a bucket) holds a recording of an earlier job with this id, for a job id
    /// the node does not know. Asked for [`STORAGE_LOOKUP_TIMEOUT`] at most: a store that does
    /// not answer delays no start further, and the upload itself never writes over another
    /// job's objects.
    async fn earlier_stored_recording(&self, job_id: &str) -> Option<String> {
        if !self.storage.is_remote() || self.knows(job_id) {
            return None;
        }
        match tokio::time::timeout(
            STORAGE_LOOKUP_TIMEOUT,
            self.storage.earlier_recording(job_id),
        )
        .await
        {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::warn!(job = %job_id, error = %e, "cannot look for an earlier recording; starting anyway");
                None
            }
            Err(_) => {
                tracing::warn!(job = %job_id, "the store did not say in time whether it holds an earlier recording; starting anyway");
                None
            }
        }
    }

    /// Admits and starts a job, or returns the existing one with this id. A job with a file
    /// whose id the node does not know (never seen, or forgotten) is refused while an earlier
    /// recording of that id is still in the recordings directory or the bucket: that recording
    /// is never touched.
    pub async fn start(self: &Arc<Self>, request: StartRequest) -> Result<Started, StartError> {
        request.check()?;
        let rtmp_addresses = match &request.rtmp_url {
            Some(url) => check_rtmp_target(url, &self.config.broadcast.allowed_networks).await?,
            None => Vec::new(),
        };
        // A broadcast-only job writes nothing, so it cannot touch an earlier recording.
        if request.file {
            if let Some(location) = self.earlier_stored_recording(&request.job_id).await {
                return Err(StartError::RecordingExists {
                    job_id: request.job_id,
                    location,
                });
            }
        }
        let fingerprint = request.fingerprint();
        let output = request
            .file
            .then(|| self.output_path(&request.job_id, request.mode));
        let view = {
            let mut running = self.running_lock();
            let mut store = self.store_lock();
            if let Some((existing, existing_fingerprint)) = store.job(&request.job_id)? {
                if existing_fingerprint != fingerprint {
                    return Err(StartError::Conflict(request.job_id));
                }
                // A running job started again carries a fresh token: its worker joins with it
                // from now on (a long recording's re-joins must not use an expired one).
                if let Some(job) = running.get(&request.job_id) {
                    let _ = job.instructions.send(WorkerInstruction::Token {
                        token: request.token.clone(),
                    });
                }
                let job = running
                    .get(&request.job_id)
                    .map_or(existing, |r| r.view.clone());
                return Ok(Started {
                    job,
                    existing: true,
                });
            }
            // A new job that writes files: an earlier one's files under its names are not its
            // to write over (or to report and upload as its own). Looked at under the locks, so
            // no start of the same id slips in between.
            if let Some(earlier) = request
                .file
                .then(|| self.earlier_local_recording(&request.job_id))
                .flatten()
            {
                return Err(StartError::RecordingExists {
                    job_id: request.job_id,
                    location: earlier.display().to_string(),
                });
            }
            let now = Instant::now();
            let estimate = self.estimate(request.mode);
            self.budget.admit(&Self::costs(&running, now), estimate)?;
            let view = JobView {
                job_id: request.job_id.clone(),
                room_id: request.room_id.clone(),
                mode: request.mode,
                state: JobState::Starting,
                reason: None,
                file: output.as_ref().map(|p| p.display().to_string()),
                rtmp: request.rtmp_url.as_deref().map(redact_rtmp),
                created_ms: now_ms(),
                updated_ms: now_ms(),
            };
            store.insert(
                &view,
                &fingerprint,
                self.event(EventKind::JobState, &view).as_ref(),
            )?;
            self.forget_old_jobs(&mut store);
            let (instructions, instructions_out) = tokio::sync::mpsc::unbounded_channel();
            running.insert(
                view.job_id.clone(),
                Running {
                    view: view.clone(),
                    meter: CostMeter::new(
                        estimate,
                        seconds(self.config.admission.measure_after_seconds),
                    ),
                    pid: None,
                    stop_requested: None,
                    worker_exited: false,
                    instructions,
                    instructions_out: Some(instructions_out),
                },
            );
            view
        };
        self.outbox.notify_one();
        tracing::info!(job = %view.job_id, room = %view.room_id, mode = ?view.mode, "job accepted");
        let worker_job = WorkerJob {
            livekit_url: request.livekit_url,
            token: request.token,
            mode: request.mode,
            output,
            rtmp_url: request.rtmp_url,
            rtmp_addresses,
            composite: self.config.composite,
        };
        let node = self.clone();
        let job_id = view.job_id.clone();
        tokio::spawn(async move { node.run_worker(job_id, worker_job).await });
        Ok(Started {
            job: view,
            existing: false,
        })
    }

    /// Deletes a few of the jobs that finished longer ago than the configured retention: each
    /// new job takes away up to 20, so the table stays bounded without a timer. A failure is
    /// logged; the new job goes ahead.
    fn forget_old_jobs(&self, store: &mut Store) {
        let days = self.config.keep_finished_jobs_days;
        if days == 0 {
            return;
        }
        let before = now_ms().saturating_sub(i64::from(days) * 86_400_000);
        match store.forget_finished(before, 20) {
            Ok(0) => {}
            Ok(forgotten) => tracing::info!(forgotten, days, "forgot finished jobs"),
            Err(e) => tracing::warn!(error = %e, "could not forget finished jobs"),
        }
    }

    /// The event for a state change, if events are sent anywhere.
    fn event(&self, kind: EventKind, view: &JobView) -> Option<Event> {
        self.config
            .control_plane
            .as_ref()
            .map(|_| Event::new(kind, view))
    }

    /// Stores a job change with its event; whether it was stored. Callers that change a running
    /// job hold the running lock through this, so changes reach the table and the outbox in the
    /// order they were made; the store refuses a change that would move a job back.
    fn record(&self, view: &JobView, kinds: &[EventKind]) -> bool {
        let events: Vec<Event> = kinds
            .iter()
            .filter_map(|&kind| self.event(kind, view))
            .collect();
        let result = self.store_lock().update(view, &events);
        match result {
            Ok(true) => {
                self.outbox.notify_one();
                true
            }
            Ok(false) => {
                tracing::debug!(job = %view.job_id, state = view.state.as_str(), "a late job change was not stored");
                false
            }
            Err(e) => {
                tracing::error!(job = %view.job_id, error = %e, "cannot record a job change");
                false
            }
        }
    }

    /// Moves a running job to `state` (with `reason`), unless it is already past it.
    fn transition(&self, job_id: &str, state: JobState, reason: Option<String>) {
        let mut running = self.running_lock();
        let Some(job) = running.get_mut(job_id) else {
            return;
        };
        if job.view.state >= state {
            return;
        }
        job.view.state = state;
        if reason.is_some() {
            job.view.reason = reason;
        }
        job.view.updated_ms = now_ms();
        let view = job.view.clone();
        tracing::info!(job = %job_id, state = state.as_str(), reason = ?view.reason, "job state");
        self.record(&view, &[EventKind::JobState]);
    }

    /// Asks a job to stop: ENDING, SIGTERM to its worker (EOS, finalize), watchdog after.
    /// Stopping an ended job returns it as it is.
    pub fn stop(&self, job_id: &str) -> Result<JobView, StopError> {
        let signal = {
            let mut running = self.running_lock();
            match running.get_mut(job_id) {
                Some(job) if job.stop_requested.is_none() => {
                    job.stop_requested = Some(Instant::now());
                    Some(job.pid)
                }
                Some(_) => None,
                None => {
                    drop(running);
                    return self
                        .store_lock()
                        .job(job_id)?
                        .map(|(view, _)| view)
                        .ok_or_else(|| StopError::NotFound(job_id.to_owned()));
                }
            }
        };
        if let Some(pid) = signal {
            self.transition(job_id, JobState::Ending, None);
            if let Some(pid) = pid {
                send_signal(pid, libc::SIGTERM);
            }
        }
        self.running_lock()
            .get(job_id)
            .map(|r| r.view.clone())
            .ok_or_else(|| StopError::NotFound(job_id.to_owned()))
    }

    /// Running jobs first, then recently ended ones, with the admission figures.
    pub fn list(&self, limit: usize) -> Result<(Vec<JobView>, Figures), StoreError> {
        let now = Instant::now();
        let (mut jobs, figures) = {
            let running = self.running_lock();
            let jobs: Vec<JobView> = running.values().map(|r| r.view.clone()).collect();
            (jobs, self.budget.figures(&Self::costs(&running, now)))
        };
        jobs.sort_by(|a, b| {
            a.created_ms
                .cmp(&b.created_ms)
                .then(a.job_id.cmp(&b.job_id))
        });
        // From the store: ended jobs, and those an earlier run left that recovery is still
        // concluding (in the store unfinished, but not running here).
        let stored = self.store_lock().recent(limit)?;
        let listed: std::collections::HashSet<String> =
            jobs.iter().map(|j| j.job_id.clone()).collect();
        jobs.extend(
            stored
                .into_iter()
                .filter(|view| !listed.contains(&view.job_id))
                .take(limit.saturating_sub(jobs.len())),
        );
        Ok((jobs, figures))
    }

    /// The node's figures now.
    pub fn heartbeat(&self) -> Heartbeat {
        let now = Instant::now();
        let (jobs, capacity) = {
            let running = self.running_lock();
            let jobs = running
                .values()
                .map(|r| JobLoad {
                    job_id: r.view.job_id.clone(),
                    state: r.view.state,
                    cost_cores: if r.worker_exited {
                        0.0
                    } else {
                        r.meter.cost(now)
                    },
                    measured: r.meter.is_measured(now),
                })
                .collect();
            (jobs, self.budget.figures(&Self::costs(&running, now)))
        };
        let (undelivered_events, dead_letter_events) = {
            let store = self.store_lock();
            (
                store.backlog().unwrap_or(-1),
                store.set_aside_count().unwrap_or(-1),
            )
        };
        Heartbeat {
            cores: self.config.cores(),
            capacity,
            jobs,
            undelivered_events,
            dead_letter_events,
        }
    }

    /// Stops every job and waits for them to end (at most the stop watchdog and a little).
    pub async fn shutdown(&self) {
        let ids: Vec<String> = self.running_lock().keys().cloned().collect();
        for id in &ids {
            let _ = self.stop(id);
        }
        let deadline =
            seconds(self.config.watchdog.stop_seconds).saturating_add(Duration::from_secs(30));
        let _ = tokio::time::timeout(deadline, async {
            loop {
                let notified = self.all_done.notified();
                if self.running_lock().is_empty() {
                    break;
                }
                notified.await;
            }
        })
        .await;
    }

    /// Writes the job file, spawns the worker and supervises it to the end.
    async fn run_worker(self: Arc<Self>, job_id: String, job: WorkerJob) {
        let job_file = self.jobs_dir.join(format!("{job_id}.json"));
        let mode = job.mode;
        let output = job.output.clone();
        let ending = match self.spawn(&job_file, &job) {
            Ok(child) => self.watch(&job_id, mode, child).await,
            Err(e) => WorkerOutcome::Failed(format!("could not start the worker: {e}")),
        };
        if let Some(job) = self.running_lock().get_mut(&job_id) {
            job.worker_exited = true;
            job.pid = None;
        }
        if let Err(e) = std::fs::remove_file(&job_file) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(job = %job_id, error = %e, "cannot remove the job file");
            }
        }
        let view = self.running_lock().get(&job_id).map(|r| r.view.clone());
        if let Some(view) = view {
            self.conclude(view, mode, output.as_deref(), ending).await;
        }
        self.running_lock().remove(&job_id);
        self.all_done.notify_waiters();
    }

    fn spawn(&self, job_file: &Path, job: &WorkerJob) -> std::io::Result<tokio::process::Child> {
        std::fs::create_dir_all(&self.jobs_dir)?;
        if let Some(output) = &job.output {
            let dir = if job.mode == Mode::Tracks {
                output.as_path()
            } else {
                output.parent().unwrap_or(Path::new("."))
            };
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(job_file)?;
        serde_json::to_writer(&mut file, job)?;
        file.sync_all()?;
        let mut command = tokio::process::Command::new(&self.worker_exe);
        command
            .arg("record")
            .arg("--job")
            .arg(job_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        die_with_service(&mut command);
        let memory = match self.config.watchdog.memory_mb {
            0 => libc::RLIM_INFINITY,
            mb => mb.saturating_mul(1024 * 1024),
        };
        // SAFETY: sigprocmask, sigterm_only, setrlimit, open, write and close are
        // async-signal-safe, and nothing here allocates. A worker starts with SIGTERM blocked,
        // so a stop sent before it has installed its handler waits for the handler instead of
        // killing it (the worker unblocks it).
        unsafe {
            command.pre_exec(move || {
                let term = sigterm_only();
                if libc::sigprocmask(libc::SIG_BLOCK, &term, std::ptr::null_mut()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // One worker's runaway decode (a huge frame size from a publisher) fails its
                // own allocations instead of taking the machine's memory.
                let limit = libc::rlimit {
                    rlim_cur: memory,
                    rlim_max: memory,
                };
                if libc::setrlimit(libc::RLIMIT_DATA, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Should the machine run out of memory anyway, the kernel kills a worker (one
                // job) before the service (every job). Best effort: raising is always allowed.
                let adj = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
                if adj >= 0 {
                    libc::write(
                        adj,
                        WORKER_OOM_SCORE_ADJ.as_ptr().cast(),
                        WORKER_OOM_SCORE_ADJ.len(),
                    );
                    libc::close(adj);
                }
                Ok(())
            });
        }
        command.spawn()
    }

    /// Follows a worker's reports and enforces the watchdogs until it exits.
    async fn watch(
        &self,
        job_id: &str,
        mode: Mode,
        mut child: tokio::process::Child,
    ) -> WorkerOutcome {
        let pid = child.id();
        let instructions = self.running_lock().get_mut(job_id).and_then(|job| {
            job.pid = pid;
            job.instructions_out.take()
        });
        if let (Some(mut instructions), Some(mut stdin)) = (instructions, child.stdin.take()) {
            // Ends when the job leaves the running table (the sender goes) or the worker does.
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt as _;
                while let Some(instruction) = instructions.recv().await {
                    let Ok(mut line) = serde_json::to_vec(&instruction) else {
                        continue;
                    };
                    line.push(b'\n');
                    if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
                        break;
                    }
                }
            });
        }
        // A stop that came before the worker existed is delivered now.
        let stop_early = self
            .running_lock()
            .get(job_id)
            .is_some_and(|j| j.stop_requested.is_some());
        if let (true, Some(pid)) = (stop_early, pid) {
            send_signal(pid, libc::SIGTERM);
        }
        let mut watchdog = Watchdog::new(self.config.watchdog.clone(), mode, Instant::now());
        let mut lines = child.stdout.take().map(|out| BufReader::new(out).lines());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut reported: Option<WorkerOutcome> = None;
        let mut killed: Option<String> = None;
        let mut peak_data = 0;
        let status = loop {
            tokio::select! {
                line = async { lines.as_mut()?.next_line().await.ok().flatten() }, if lines.is_some() => {
                    let Some(line) = line else {
                        lines = None;
                        continue;
                    };
                    match serde_json::from_str::<WorkerReport>(&line) {
                        Ok(WorkerReport::Active) => {
                            if let Some(job) = self.running_lock().get_mut(job_id) {
                                job.meter.active(Instant::now());
                            }
                            self.transition(job_id, JobState::Active, None);
                        }
                        Ok(WorkerReport::Progress { frames, backlog, .. }) => watchdog.progress(Instant::now(), frames, backlog),
                        Ok(WorkerReport::BroadcastEnded { reason }) => self.broadcast_ended(job_id, &reason),
                        Ok(WorkerReport::Finalizing) => {
                            let io = pid.and_then(process_io_bytes).unwrap_or(0);
                            watchdog.finalizing(Instant::now(), io);
                        }
                        Ok(WorkerReport::Finished { .. }) => reported = Some(WorkerOutcome::Finished),
                        Ok(WorkerReport::Failed { reason }) => reported = Some(WorkerOutcome::Failed(reason)),
                        Err(_) => tracing::debug!(job = %job_id, %line, "unrecognised worker output"),
                    }
                }
                status = child.wait(), if lines.is_none() => break status,
                _ = tick.tick() => {
                    let now = Instant::now();
                    let (state, stop_requested) = {
                        let mut running = self.running_lock();
                        let Some(job) = running.get_mut(job_id) else { continue };
                        if let Some(cpu) = pid.and_then(process_cpu_seconds) {
                            job.meter.sample(now, cpu);
                        }
                        if let Some(data) = pid.and_then(process_data_bytes) {
                            peak_data = data.max(peak_data);
                        }
                        (job.view.state, job.stop_requested)
                    };
                    let io = || pid.and_then(process_io_bytes);
                    let overdue = watchdog.overdue(now, state, stop_requested, io);
                    if let (Some(reason), None, Some(pid)) = (overdue, &killed, pid) {
                        tracing::warn!(job = %job_id, %reason, "killing the worker");
                        send_signal(pid, libc::SIGKILL);
                        killed = Some(reason);
                    }
                }
            }
        };
        let outcome = match (killed, reported, status) {
            (Some(reason), _, _) => WorkerOutcome::Failed(reason),
            (None, Some(WorkerOutcome::Finished), Ok(status)) if status.success() => {
                WorkerOutcome::Finished
            }
            (None, Some(WorkerOutcome::Failed(reason)), _) => WorkerOutcome::Failed(reason),
            (None, _, Ok(status)) => WorkerOutcome::Failed(format!("the worker exited: {status}")),
            (None, _, Err(e)) => WorkerOutcome::Failed(format!("lost the worker: {e}")),
        };
        match (
            outcome,
            memory_note(self.config.watchdog.memory_mb, peak_data),
        ) {
            (WorkerOutcome::Failed(reason), Some(note)) => {
                WorkerOutcome::Failed(format!("{reason}; {note}"))
            }
            (outcome, _) => outcome,
        }
    }

    fn broadcast_ended(&self, job_id: &str, reason: &str) {
        let mut running = self.running_lock();
        let Some(job) = running.get_mut(job_id) else {
            return;
        };
        job.view.reason = Some(format!("RTMP broadcast ended: {reason}"));
        job.view.updated_ms = now_ms();
        let view = job.view.clone();
        tracing::warn!(job = %job_id, %reason, "RTMP broadcast ended; the file goes on");
        self.record(&view, &[EventKind::BroadcastEnded]);
    }

    /// Final state of a job whose worker is gone: COMPLETE, or FAILED with whatever could be
    /// recovered from the fragmented file. The output then goes to its storage; the local copy
    /// is released only after the final state is recorded.
    pub(crate) async fn conclude(
        &self,
        mut view: JobView,
        mode: Mode,
        output: Option<&Path>,
        ending: WorkerOutcome,
    ) {
        let outcome = match ending {
            WorkerOutcome::Finished => Outcome::Complete,
            WorkerOutcome::Failed(reason) => {
                view.reason = Some(reason);
                match (mode, output) {
                    (Mode::Composite, Some(output)) => {
                        match crate::recovery::repair(&self.worker_exe, output).await {
                            Ok(true) => Outcome::Recovered,
                            // Nothing to repair: the output is whatever the worker finished.
                            Ok(false) => {
                                if !output.is_file() {
                                    view.file = None;
                                }
                                Outcome::Failed
                            }
                            Err(e) => {
                                tracing::error!(job = %view.job_id, error = %e, "could not repair the recording");
                                // The bytes are kept (aside, or where they were): the report
                                // says where, so nothing recorded goes unmentioned.
                                let kept = crate::recovery::kept_after_failed_repair(&e, output);
                                view.add_reason(e.to_string());
                                view.file = kept.map(|p| p.display().to_string());
                                Outcome::Failed
                            }
                        }
                    }
                    _ => Outcome::Failed,
                }
            }
        };
        self.deliver(view, output, outcome).await;
    }

    /// Sends a concluded job's output to storage and records its final state. The decided
    /// outcome is kept in the store first, so a restart during a long upload reports it as
    /// decided.
    async fn deliver(&self, mut view: JobView, output: Option<&Path>, outcome: Outcome) {
        view.state = match outcome {
            Outcome::Complete => JobState::Complete,
            Outcome::Failed | Outcome::Recovered => JobState::Failed,
        };
        let mut release = None;
        if let (Some(output), Some(_)) = (output, &view.file) {
            if output.exists() && self.storage.is_remote() {
                if let Err(e) =
                    self.store_lock()
                        .decide(&view.job_id, outcome, view.reason.as_deref())
                {
                    tracing::error!(job = %view.job_id, error = %e, "cannot keep the job's outcome");
                }
                self.transition(&view.job_id, JobState::Ending, None);
                match self
                    .storage
                    .store(&view.job_id, view.created_ms, output)
                    .await
                {
                    Ok(location) => {
                        view.file = Some(location);
                        release = Some(output);
                    }
                    Err(e) => {
                        view.add_reason(format!(
                            "{e}; the recording is kept at {}",
                            output.display()
                        ));
                    }
                }
            }
        }
        view.updated_ms = now_ms();
        match view.state {
            JobState::Complete => {
                tracing::info!(job = %view.job_id, file = ?view.file, reason = ?view.reason, "job complete")
            }
            _ => {
                tracing::warn!(job = %view.job_id, reason = ?view.reason, file = ?view.file, "job failed")
            }
        }
        // The job's final state, in memory as in the table: a stop arriving now finds it ended.
        let mut running = self.running_lock();
        if let Some(job) = running.get_mut(&view.job_id) {
            job.view = view.clone();
        }
        // A repaired recording is reported as such, then the final state, in one transaction.
        let kinds: &[EventKind] = if outcome == Outcome::Recovered {
            &[EventKind::Recovered, EventKind::JobState]
        } else {
            &[EventKind::JobState]
        };
        let stored = self.record(&view, kinds);
        drop(running);
        // The local copy goes only once the final state saying where the upload is was stored
        // (a full disk failing the write must not leave a FAILED job with no file anywhere).
        match release {
            Some(output) if stored => self.storage.release(output),
            Some(output) => {
                tracing::warn!(job = %view.job_id, file = %output.display(), "the final state was not stored: the local copy stays")
            }
            None => {}
        }
    }

    /// Sends a recovered stray recording (reported as created at `created_ms`) to storage;
    /// where it now is, and whether it was uploaded (then the caller releases the local copy
    /// once the report is stored).
    pub(crate) async fn store_recovered(
        &self,
        job_id: &str,
        created_ms: i64,
        output: &Path,
    ) -> (String, bool) {
        match self.storage.store(job_id, created_ms, output).await {
            Ok(location) => (location, true),
            Err(e) => {
                tracing::error!(job = %job_id, error = %e, "the recovered recording stays local");
                (output.display().to_string(), false)
            }
        }
    }

    /// Drops the local copy of an uploaded recording.
    pub(crate) fn release(&self, output: &Path) {
        self.storage.release(output);
    }

    /// Concludes a job left unfinished by an earlier run of the service: as it was decided if
    /// that run got so far (it stopped while uploading), else from the files it left.
    pub(crate) async fn conclude_orphan(&self, job: Unfinished) {
        let Unfinished { view, decided } = job;
        let output = view.file.as_ref().map(PathBuf::from);
        if let Some((outcome, reason)) = decided {
            let view = JobView { reason, ..view };
            self.deliver(view, output.as_deref(), outcome).await;
            return;
        }
        let finished = match (&output, view.mode) {
            (Some(out), Mode::Composite) => out.is_file() && !part_file(out).exists(),
            _ => false,
        };
        let ending = if finished {
            WorkerOutcome::Finished
        } else {
            WorkerOutcome::Failed("the recorder service stopped during the job".into())
        };
        self.conclude(view.clone(), view.mode, output.as_deref(), ending)
            .await;
    }

    /// Whether a job of this id is running here (its worker, or its conclusion: a repair, an
    /// upload).
    pub(crate) fn is_running(&self, job_id: &str) -> bool {
        self.running_lock().contains_key(job_id)
    }

    /// Whether a job id is known (running or in the store).
    pub(crate) fn knows(&self, job_id: &str) -> bool {
        self.is_running(job_id) || self.store_lock().job(job_id).ok().flatten().is_some()
    }

    /// Queues an event outside a job's life (a stray file recovered).
    pub(crate) fn report(&self, kind: EventKind, view: &JobView) -> bool {
        let Some(event) = self.event(kind, view) else {
            return true;
        };
        match self.store_lock().append_event(&event) {
            Ok(()) => {
                self.outbox.notify_one();
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot queue an event");
                false
            }
        }
    }

    /// The `recorder-native` binary workers run.
    pub(crate) fn worker_exe(&self) -> &Path {
        &self.worker_exe
    }
}

/// The longest a start waits for the bucket to say whether it holds an earlier recording.
const STORAGE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// What a worker writes to its `oom_score_adj`: the kernel's OOM killer picks workers before
/// the service.
const WORKER_OOM_SCORE_ADJ: &[u8] = b"500";

/// Makes a child the service spawns (a worker, a repair) die with it: SIGKILL when the thread
/// that spawned it exits (a runtime worker thread, which lives as long as the service). A child
/// that outlived the service would go on writing files the next run takes over. A service that
/// died while the child was being started is caught too: the child then has another parent.
pub(crate) fn die_with_service(command: &mut tokio::process::Command) {
    let service = std::process::id();
    // SAFETY: prctl and getppid are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if u32::try_from(libc::getppid()).ok() != Some(service) {
                return Err(std::io::Error::other(
                    "the service died while starting this child",
                ));
            }
            Ok(())
        });
    }
}

fn send_signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeNode, WRITES_AND_FINISHES};

    fn refused_for(started: Result<Started, StartError>, job: &str) -> String {
        match started {
            Err(StartError::RecordingExists { job_id, location }) => {
                assert_eq!(job_id, job);
                location
            }
            other => panic!("a start over an earlier recording of {job} went ahead: {other:?}"),
        }
    }

    /// A job id started again once its job was forgotten is refused while that job's recording
    /// is still there, and the recording stays as it was. Moved away, the id is a new job.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_start_of_a_forgotten_job_id_never_touches_its_recording() {
        let fake = FakeNode::new("reuse", WRITES_AND_FINISHES, Storage::Local);
        let node = &fake.node;
        let first = node
            .start(FakeNode::request("reused"))
            .await
            .expect("first start");
        assert!(!first.existing);
        let done = fake.wait_ended("reused").await;
        let file = fake.recordings().join("reused.mp4");
        assert_eq!(done.state, JobState::Complete, "{done:?}");
        assert_eq!(done.file, Some(file.display().to_string()));
        let recorded = std::fs::read(&file).expect("the first recording");
        assert_eq!(fake.forget_finished(), 1);
        assert!(!node.knows("reused"));

        let location = refused_for(node.start(FakeNode::request("reused")).await, "reused");
        assert_eq!(location, file.display().to_string());
        assert!(
            !node.knows("reused"),
            "a refused start leaves no job behind"
        );
        // Had a worker started, it would have written its own recording by now.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(std::fs::read(&file).expect("still there"), recorded);

        let kept = fake.dir.join("kept.mp4");
        std::fs::rename(&file, &kept).expect("move the recording away");
        let second = node
            .start(FakeNode::request("reused"))
            .await
            .expect("a new job once the recording was moved away");
        assert!(!second.existing);
        let done = fake.wait_ended("reused").await;
        assert_eq!(done.state, JobState::Complete, "{done:?}");
        assert_ne!(std::fs::read(&file).expect("the new recording"), recorded);
        assert_eq!(std::fs::read(&kept).expect("the old one"), recorded);
    }

    /// What is left of an earlier job's recording (a fragmented file, bytes kept aside as
    /// damaged, track files) blocks a new job of the same id just as a finished MP4 does; an
    /// empty track directory holds nothing and does not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_is_left_of_an_earlier_recording_is_never_touched() {
        let fake = FakeNode::new("leftovers", WRITES_AND_FINISHES, Storage::Local);
        let recordings = fake.recordings();
        let tracks = recordings.join("left-tracks");
        std::fs::create_dir_all(&tracks).expect("track dir");
        let leftovers = [
            (
                "left-part",
                recordings.join("left-part.part.mp4"),
                Mode::Composite,
            ),
            (
                "left-damaged",
                recordings.join("left-damaged.damaged.mp4"),
                Mode::Composite,
            ),
            ("left-tracks", tracks.join("alice_TR_1.mkv"), Mode::Tracks),
            // Whatever the new job's mode: a job id names one recording.
            (
                "left-tracks",
                tracks.join("alice_TR_1.mkv"),
                Mode::Composite,
            ),
        ];
        for (job, path, _) in &leftovers {
            std::fs::write(path, format!("what {job} left")).expect("leftover");
        }
        for (job, path, mode) in &leftovers {
            let request = StartRequest {
                mode: *mode,
                ..FakeNode::request(job)
            };
            let location = refused_for(fake.node.start(request).await, job);
            let expected = if *mode == Mode::Tracks || path.starts_with(&tracks) {
                tracks.clone()
            } else {
                path.clone()
            };
            assert_eq!(location, expected.display().to_string());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        for (job, path, _) in &leftovers {
            assert_eq!(
                std::fs::read_to_string(path).expect("still there"),
                format!("what {job} left")
            );
        }
        // A broadcast-only job writes nothing there, so it is no threat to what is left.
        let broadcast = StartRequest {
            file: false,
            rtmp_url: Some("rtmp://127.0.0.1:1/live/key".into()),
            ..FakeNode::request("left-part")
        };
        fake.node
            .start(broadcast)
            .await
            .expect("a broadcast touches no recording");
        fake.wait_ended("left-part").await;
        std::fs::create_dir_all(recordings.join("empty")).expect("empty dir");
        let request = StartRequest {
            mode: Mode::Tracks,
            ..FakeNode::request("empty")
        };
        fake.node
            .start(request)
            .await
            .expect("an empty directory holds no recording");
        fake.wait_ended("empty").await;
    }

    /// With a bucket, a recording uploaded (and removed locally) by a job since forgotten
    /// still refuses the id.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_uploaded_recording_of_a_forgotten_job_is_never_written_over() {
        let bucket = Arc::new(crate::storage::S3Storage::in_memory("fake"));
        let fake = FakeNode::new("reuse-s3", WRITES_AND_FINISHES, Storage::S3(bucket.clone()));
        fake.node
            .start(FakeNode::request("uploaded"))
            .await
            .expect("first start");
        let done = fake.wait_ended("uploaded").await;
        let location = "s3://test-bucket/fake/uploaded.mp4";
        assert_eq!(done.file.as_deref(), Some(location), "{done:?}");
        assert!(!fake.recordings().join("uploaded.mp4").exists());
        let uploaded = bucket.object("fake/uploaded.mp4").await;
        assert_eq!(fake.forget_finished(), 1);

        let refused = refused_for(
            fake.node.start(FakeNode::request("uploaded")).await,
            "uploaded",
        );
        assert_eq!(refused, location);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(bucket.object("fake/uploaded.mp4").await, uploaded);
    }

    /// The job API answers such a start with its own 409 and a message that says why.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_api_refuses_a_start_over_an_earlier_recording_with_409() {
        let fake = FakeNode::new("reuse-api", WRITES_AND_FINISHES, Storage::Local);
        let file = fake.recordings().join("earlier.mp4");
        std::fs::write(&file, b"an earlier recording").expect("earlier recording");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(edgemeet_serve::serve(
            listener,
            crate::api::router(fake.node.clone()),
            crate::api::LIMITS,
            async {
                let _ = stopped.await;
            },
        ));
        let body = serde_json::json!({
            "job_id": "earlier",
            "room_id": "room",
            "livekit_url": "ws://127.0.0.1:7880",
            "token": "token",
        })
        .to_string();
        let config = fake.node.config();
        let answer = reqwest::Client::new()
            .post(format!("http://{address}/jobs/start"))
            .header(crate::auth::API_KEY_HEADER, &config.api_key)
            .header(
                crate::auth::SIGNATURE_HEADER,
                crate::auth::sign(config.api_secret.as_bytes(), body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .expect("answer");
        assert_eq!(answer.status(), reqwest::StatusCode::CONFLICT);
        let answer: serde_json::Value = answer.json().await.expect("json");
        assert_eq!(answer["status"], false, "{answer}");
        let msg = answer["msg"].as_str().expect("msg");
        assert!(
            msg.contains("earlier job with this id") && msg.contains(&*file.to_string_lossy()),
            "{msg}"
        );
        assert_eq!(
            std::fs::read(&file).expect("still there"),
            b"an earlier recording"
        );
        let _ = stop.send(());
        let _ = server.await;
    }
}
