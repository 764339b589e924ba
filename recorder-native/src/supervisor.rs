//! The node: admits jobs, runs each in its own worker process, watches it, and records every
//! state change with its event.
//!
//! A worker is `recorder-native record --job FILE`. It reports on stdout ([`WorkerReport`]); the
//! supervisor turns that into STARTING -> ACTIVE -> ENDING -> COMPLETE or FAILED. Stop is SIGTERM
//! (the worker sends EOS and finalizes), then a watchdog, then SIGKILL. A worker that does not
//! join in time or stops making progress is killed the same way. Whatever a failed worker left is
//! repaired into a playable MP4 and reported. Workers die with the service (`PR_SET_PDEATHSIG`),
//! and the next start repairs what they left ([`crate::recovery`]).
//!
//! A job's final state that the store refuses (a full disk) is not dropped: the job keeps it in
//! memory, is listed with it, and it is written again with a growing delay until the store
//! takes it ([`Node::heartbeat`] counts such jobs). Meanwhile new jobs that write a file are
//! refused, as they are while the recordings directory is short of free space.

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::Notify;

use crate::admission::{
    check_free_disk, free_disk_bytes, process_cpu_seconds, Budget, CostMeter, Figures, NoCapacity,
    MIB,
};
use crate::config::{seconds, ServiceConfig};
use crate::events::{now_ms, Event, EventKind};
use crate::job::{redact_rtmp, InvalidJob, JobState, JobView, Mode, StartRequest};
use crate::storage::{Storage, StorageError};
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

/// Why a deletion was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// No such job.
    #[error("no job {0}")]
    NotFound(String),
    /// The job has not ended, or its output is still being delivered.
    #[error(
        "job {job_id} has not ended ({state}); stop it, and delete its recording once it is \
         COMPLETE or FAILED"
    )]
    NotEnded {
        /// The job.
        job_id: String,
        /// Its state now.
        state: &'static str,
    },
    /// The bucket refused the deletion, or the job's recorded location is not this node's.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A local file or directory could not be removed.
    #[error("removing {path}: {source}")]
    Remove {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The job database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a finished recording can be downloaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recording {
    /// A file on this node.
    Local(PathBuf),
    /// A presigned GET URL of the object in the bucket, valid for [`PRESIGNED_FOR`]. It
    /// grants the recording to whoever holds it: never logged.
    Presigned(String),
}

/// What a deletion did.
#[derive(Debug, Clone, PartialEq)]
pub enum Deleted {
    /// A job's recording was deleted (or was already); the job as it is now, without a file.
    Job(JobView),
    /// What was kept of a job the node had forgotten was deleted.
    Forgotten,
    /// The node neither knows the job nor keeps anything of it: nothing to delete.
    NothingKept,
}

/// Whether `path` is a regular file itself (not a link to one elsewhere): only such a file is
/// handed out as a recording.
fn is_plain_file(path: &std::path::Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_file())
}

/// How long a presigned download URL of a recording in the bucket is valid.
pub const PRESIGNED_FOR: Duration = Duration::from_secs(300);

/// Why a job's recording cannot be downloaded.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// No such job.
    #[error("no job {0}")]
    NotFound(String),
    /// The job has not ended with a recording (COMPLETE, or FAILED with what it kept).
    #[error("job {job_id} is {state}: only an ended job's recording can be downloaded")]
    NotComplete {
        /// The job.
        job_id: String,
        /// Its state.
        state: &'static str,
    },
    /// A tracks job leaves a directory of files, not one file.
    #[error("job {0} recorded separate tracks: there is no single file to download")]
    Tracks(String),
    /// The job has no recording: it wrote none (a broadcast), or it was deleted.
    #[error("job {0} has no recording: it kept none, or it was deleted")]
    NoFile(String),
    /// The recording is not where the job says.
    #[error("the recording of job {0} is missing")]
    Missing(String),
    /// The bucket could not be asked, or could not sign a URL.
    #[error(transparent)]
    Storage(#[from] StorageError),
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
    /// Whether the job database takes writes: false from a job change it refused (its disk is
    /// full, say) until it takes one again, and while any job's final state waits to be stored
    /// (`unstored_final_states`). While a final state waits, new jobs that write a file are
    /// refused ("no capacity").
    pub store_ok: bool,
    /// Ended jobs whose final state (COMPLETE or FAILED, with its events) the job database has
    /// not taken yet. Each is written again, at growing intervals up to 30 s, until it is
    /// stored; meanwhile the job is listed with its final state, but the store (and so a
    /// restart) and the control plane still know it as it was.
    pub unstored_final_states: usize,
    /// Bytes free in the recordings directory's file system; `null` when it cannot be read.
    pub free_disk_bytes: Option<u64>,
    /// The least free space (`admission.min_free_disk_mb`, in bytes) a new job that writes a
    /// file needs; 0 for no minimum.
    pub min_free_disk_bytes: u64,
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
    /// Final states of ended jobs that the store refused, by job id, until it takes them.
    /// Locked after `running` and the store when taken with them.
    unstored: Mutex<HashMap<String, JobView>>,
    /// Whether the store refused the last job change written to it.
    store_refused: AtomicBool,
    /// Wakes the retries of unstored final states at once.
    retry_unstored: Notify,
    /// Held through a deletion, so two of the same job do not interleave.
    deleting: tokio::sync::Mutex<()>,
}

/// The first wait before a final state the store refused is written again.
const FINAL_RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two writes of a final state the store refuses.
const FINAL_RETRY_MAX: Duration = Duration::from_secs(30);

/// A job concluded (its output repaired and delivered): the final state to store, and the
/// local copy to release once it is stored.
pub(crate) struct Concluded {
    view: JobView,
    kinds: &'static [EventKind],
    release: Option<PathBuf>,
}

/// Removes a file, or a directory with what is in it; one that is not there is no error.
fn remove_output(path: &Path) -> Result<(), DeleteError> {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match removed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DeleteError::Remove {
            path: path.to_owned(),
            source,
        }),
    }
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
            unstored: Mutex::new(HashMap::new()),
            store_refused: AtomicBool::new(false),
            retry_unstored: Notify::new(),
            deleting: tokio::sync::Mutex::new(()),
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

    fn unstored_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, JobView>> {
        self.unstored
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Remembers whether the store took a job change, logging when that changes.
    fn note_store<T>(&self, result: &Result<T, StoreError>) {
        let refused = result.is_err();
        if self.store_refused.swap(refused, Ordering::Relaxed) && !refused {
            tracing::info!("the job database takes writes again");
        }
    }

    /// Free bytes in the recordings directory, `None` (logged) when they cannot be read.
    fn free_disk(&self) -> Option<u64> {
        let dir = self.config.recordings_dir();
        match free_disk_bytes(&dir) {
            Ok(free) => Some(free),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read the free disk space");
                None
            }
        }
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

    /// Every name a job's outputs can have in the recordings directory: `<id>.part.mp4` (while
    /// recording), `<id>.damaged.mp4` (a repair's leftover), `<id>/` (tracks) and `<id>.mp4`.
    fn local_outputs(&self, job_id: &str) -> [PathBuf; 4] {
        let composite = self.output_path(job_id, Mode::Composite);
        [
            part_file(&composite),
            crate::recovery::damaged_file(&composite),
            self.output_path(job_id, Mode::Tracks),
            composite,
        ]
    }

    /// What is left in the recordings directory of an earlier job with this id, if anything:
    /// its MP4, its fragmented or damaged file, or its (non-empty) directory of track files. A
    /// path that cannot be looked at counts as taken.
    fn earlier_local_recording(&self, job_id: &str) -> Option<PathBuf> {
        self.local_outputs(job_id)
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
        // Read before the locks (a file system call); judged only for a new job, below.
        let min_free_mb = self.config.admission.min_free_disk_mb;
        let free_disk = if request.file && min_free_mb > 0 {
            self.free_disk()
        } else {
            None
        };
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
                let job = match running.get(&request.job_id) {
                    Some(r) => r.view.clone(),
                    None => self
                        .unstored_lock()
                        .get(&request.job_id)
                        .cloned()
                        .unwrap_or(existing),
                };
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
            if request.file {
                // Unknown free space (logged) does not hold a job back.
                if let Some(free) = free_disk {
                    check_free_disk(free, min_free_mb)?;
                }
                // A job whose states may not be stored could end up listed wrongly, and the
                // disk is likely full: none is started while a final state waits. Its retries
                // are woken, so a store that takes writes again takes the next job.
                let unstored_final_states = self.unstored_lock().len();
                if unstored_final_states > 0 {
                    self.retry_unstored.notify_waiters();
                    return Err(NoCapacity::Store {
                        unstored_final_states,
                    }
                    .into());
                }
            }
            let view = JobView {
                job_id: request.job_id.clone(),
                room_id: request.room_id.clone(),
                mode: request.mode,
                state: JobState::Starting,
                reason: None,
                file: output.as_ref().map(|p| p.display().to_string()),
                file_bytes: None,
                rtmp: request.rtmp_url.as_deref().map(redact_rtmp),
                created_ms: now_ms(),
                updated_ms: now_ms(),
            };
            let inserted = store.insert(
                &view,
                &fingerprint,
                self.event(EventKind::JobState, &view).as_ref(),
            );
            self.note_store(&inserted);
            match inserted {
                Ok(()) => {}
                Err(e) if e.is_full() => {
                    tracing::error!(job = %view.job_id, error = %e, "the job database is full: job refused");
                    return Err(NoCapacity::Store {
                        unstored_final_states: self.unstored_lock().len(),
                    }
                    .into());
                }
                Err(e) => return Err(e.into()),
            }
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

    /// Stores a job change with its event; whether it was stored (`Ok(false)`: the store holds
    /// the job further on, and keeps it). Callers that change a running job hold the running
    /// lock through this, so changes reach the table and the outbox in the order they were
    /// made; the store refuses a change that would move a job back.
    fn try_record(&self, view: &JobView, kinds: &[EventKind]) -> Result<bool, StoreError> {
        let events: Vec<Event> = kinds
            .iter()
            .filter_map(|&kind| self.event(kind, view))
            .collect();
        let result = self.store_lock().update(view, &events);
        self.note_store(&result);
        match result {
            Ok(true) => self.outbox.notify_one(),
            Ok(false) => {
                tracing::debug!(job = %view.job_id, state = view.state.as_str(), "a late job change was not stored")
            }
            Err(_) => {}
        }
        result
    }

    /// [`Node::try_record`] for a change on the way (a later one supersedes it): a failure is
    /// logged.
    fn record(&self, view: &JobView, kinds: &[EventKind]) -> bool {
        self.try_record(view, kinds).unwrap_or_else(|e| {
            tracing::error!(job = %view.job_id, error = %e, "cannot record a job change");
            false
        })
    }

    /// Stores a job's final state with its events, and writes it again while the store refuses
    /// it (a full disk): after [`FINAL_RETRY_FIRST`], twice as long each time up to
    /// [`FINAL_RETRY_MAX`], or at once when woken. Meanwhile the job is listed and stopped with
    /// this state (its running entry holds it, or `unstored` for a job an earlier run left) and
    /// the heartbeat counts it. Whether it was stored by this call (`false`: the store already
    /// held a final state).
    async fn store_final(&self, view: &JobView, kinds: &[EventKind]) -> bool {
        let mut delay = FINAL_RETRY_FIRST;
        loop {
            if let Some(stored) = self.write_final(view, kinds) {
                return stored;
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.retry_unstored.notified() => {}
            }
            delay = delay.saturating_mul(2).min(FINAL_RETRY_MAX);
        }
    }

    /// One write of a job's final state: whether it was stored, once the store answered;
    /// `None` when it refused the write, and the job's final state is then kept in `unstored`.
    fn write_final(&self, view: &JobView, kinds: &[EventKind]) -> Option<bool> {
        let result = {
            // In memory as in the table: a stop arriving now finds the job ended.
            let mut running = self.running_lock();
            if let Some(job) = running.get_mut(&view.job_id) {
                job.view = view.clone();
            }
            self.try_record(view, kinds)
        };
        match result {
            Ok(stored) => {
                if self.unstored_lock().remove(&view.job_id).is_some() {
                    tracing::info!(job = %view.job_id, state = view.state.as_str(), "the job's final state is stored at last");
                }
                Some(stored)
            }
            Err(e) => {
                let first = self
                    .unstored_lock()
                    .insert(view.job_id.clone(), view.clone())
                    .is_none();
                if first {
                    tracing::error!(job = %view.job_id, state = view.state.as_str(), error = %e, "cannot store the job's final state; it is kept and written again");
                } else {
                    tracing::warn!(job = %view.job_id, state = view.state.as_str(), error = %e, "the job's final state is still not stored");
                }
                None
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
                    if let Some(view) = self.unstored_lock().get(job_id) {
                        return Ok(view.clone());
                    }
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

    /// Where an ended job's COMPLETE composite recording can be downloaded: its file here, or a
    /// presigned URL of its object in the bucket (asked of the bucket, which must hold it).
    pub async fn recording(&self, job_id: &str) -> Result<Recording, RecordingError> {
        // Outputs are named by job id: nothing but a job id may name a path.
        if !crate::job::is_job_id(job_id) {
            return Err(RecordingError::NotFound(job_id.to_owned()));
        }
        let stored = self.store_lock().job(job_id)?;
        let Some((view, _)) = stored else {
            return self.forgotten_recording(job_id).await;
        };
        // A failed job may have kept what it recorded before it failed (repaired).
        let ended_with_file = view.state == JobState::Complete
            || (view.state == JobState::Failed && view.file.is_some());
        if !ended_with_file {
            return Err(RecordingError::NotComplete {
                job_id: view.job_id,
                state: view.state.as_str(),
            });
        }
        if view.mode == Mode::Tracks {
            return Err(RecordingError::Tracks(view.job_id));
        }
        let Some(file) = view.file else {
            return Err(RecordingError::NoFile(view.job_id));
        };
        if file.starts_with("s3://") {
            return self
                .storage
                .presigned_get(job_id, &file, PRESIGNED_FOR)
                .await?
                .map(Recording::Presigned)
                .ok_or_else(|| RecordingError::Missing(view.job_id));
        }
        // Only the job's own file: the recorded path names it.
        let path = PathBuf::from(file);
        let own_name = format!("{job_id}.mp4");
        if path.file_name().and_then(|n| n.to_str()) != Some(own_name.as_str())
            || !is_plain_file(&path)
        {
            return Err(RecordingError::Missing(view.job_id));
        }
        Ok(Recording::Local(path))
    }

    /// The recording of a job this node no longer knows (forgotten after
    /// `keep_finished_jobs_days`, or from before a reinstall) that is still kept: its composite
    /// in the recordings directory, or its object in the bucket. A control plane lists
    /// recordings for longer than the node keeps jobs.
    async fn forgotten_recording(&self, job_id: &str) -> Result<Recording, RecordingError> {
        let not_found = || RecordingError::NotFound(job_id.to_owned());
        if self.is_running(job_id) {
            return Err(not_found());
        }
        let local = self.output_path(job_id, Mode::Composite);
        if is_plain_file(&local) {
            return Ok(Recording::Local(local));
        }
        if self.output_path(job_id, Mode::Tracks).is_dir() {
            return Err(RecordingError::Tracks(job_id.to_owned()));
        }
        let Some(location) = self.storage.earlier_recording(job_id).await? else {
            return Err(not_found());
        };
        if location.ends_with('/') {
            return Err(RecordingError::Tracks(job_id.to_owned()));
        }
        self.storage
            .presigned_get(job_id, &location, PRESIGNED_FOR)
            .await?
            .map(Recording::Presigned)
            .ok_or_else(not_found)
    }

    /// Deletes what is kept of a job this node no longer knows: its outputs in the recordings
    /// directory and in the bucket. Whether anything was kept.
    async fn delete_forgotten(&self, job_id: &str) -> Result<bool, DeleteError> {
        let stored = self.storage.earlier_recording(job_id).await?;
        let local = self.earlier_local_recording(job_id);
        if stored.is_none() && local.is_none() {
            return Ok(false);
        }
        // A start of this id may have come in while the bucket was asked: its outputs are
        // not the forgotten job's.
        if self.knows(job_id) {
            return Err(DeleteError::NotEnded {
                job_id: job_id.to_owned(),
                state: JobState::Starting.as_str(),
            });
        }
        if let Some(location) = stored {
            self.storage.delete_stored(job_id, &location).await?;
        }
        for path in self.local_outputs(job_id) {
            remove_output(&path)?;
        }
        tracing::info!(job = %job_id, "recording of a forgotten job deleted");
        Ok(true)
    }

    /// Deletes an ended (COMPLETE or FAILED) job's recording: its object(s) in the bucket, and
    /// whatever of it is in the recordings directory (`<id>.mp4`, `<id>.part.mp4`,
    /// `<id>.damaged.mp4`, `<id>/`). The job stays, listed with no `file` and no `file_bytes`.
    /// Deleting again changes nothing and succeeds.
    pub async fn delete(&self, job_id: &str) -> Result<Deleted, DeleteError> {
        // Outputs are named by job id: nothing but a job id may name a path.
        if !crate::job::is_job_id(job_id) {
            return Err(DeleteError::NotFound(job_id.to_owned()));
        }
        let _one_at_a_time = self.deleting.lock().await;
        // A job still running here (its worker, or its conclusion: a repair, an upload, a
        // final state the store has not taken) is not ended yet, whatever its view says.
        let running_state = self
            .running_lock()
            .get(job_id)
            .map(|r| r.view.state)
            .or_else(|| self.unstored_lock().get(job_id).map(|v| v.state));
        let stored = self.store_lock().job(job_id)?.map(|(view, _)| view);
        let view = match (running_state, stored) {
            (Some(state), _) => {
                return Err(DeleteError::NotEnded {
                    job_id: job_id.to_owned(),
                    state: if state.is_final() {
                        // Ended, but its output is still on its way (or its final state is).
                        JobState::Ending.as_str()
                    } else {
                        state.as_str()
                    },
                });
            }
            // Forgotten: what is kept of it goes; there is no job to show.
            (None, None) => {
                return self.delete_forgotten(job_id).await.map(|kept| {
                    if kept {
                        Deleted::Forgotten
                    } else {
                        Deleted::NothingKept
                    }
                })
            }
            (None, Some(view)) if !view.state.is_final() => {
                return Err(DeleteError::NotEnded {
                    job_id: job_id.to_owned(),
                    state: view.state.as_str(),
                })
            }
            (None, Some(view)) => view,
        };
        if let Some(location) = view.file.as_deref().filter(|f| f.starts_with("s3://")) {
            self.storage.delete_stored(job_id, location).await?;
        }
        let mut local = self.local_outputs(job_id).to_vec();
        // The recorded path, if the recordings directory has moved since: one of the same
        // names (the job's own), nothing else.
        if let Some(recorded) = view
            .file
            .as_deref()
            .filter(|f| !f.starts_with("s3://"))
            .map(PathBuf::from)
        {
            let own = recorded.file_name().is_some()
                && local
                    .iter()
                    .any(|path| path.file_name() == recorded.file_name());
            if own && !local.contains(&recorded) {
                local.push(recorded);
            }
        }
        for path in &local {
            remove_output(path)?;
        }
        self.store_lock().clear_output(job_id)?;
        tracing::info!(job = %job_id, "recording deleted");
        let (view, _) = self
            .store_lock()
            .job(job_id)?
            .ok_or_else(|| DeleteError::NotFound(job_id.to_owned()))?;
        Ok(Deleted::Job(view))
    }

    /// Running jobs first, then recently ended ones, with the admission figures.
    pub fn list(&self, limit: usize) -> Result<(Vec<JobView>, Figures), StoreError> {
        let now = Instant::now();
        let (mut jobs, figures) = {
            let running = self.running_lock();
            let jobs: Vec<JobView> = running.values().map(|r| r.view.clone()).collect();
            (jobs, self.budget.figures(&Self::costs(&running, now)))
        };
        // Final states not stored yet, of jobs an earlier run left (the others are running).
        let unstored: Vec<JobView> = self.unstored_lock().values().cloned().collect();
        for view in unstored {
            if !jobs.iter().any(|j| j.job_id == view.job_id) {
                jobs.push(view);
            }
        }
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
        let unstored_final_states = self.unstored_lock().len();
        Heartbeat {
            cores: self.config.cores(),
            capacity,
            jobs,
            undelivered_events,
            dead_letter_events,
            store_ok: unstored_final_states == 0 && !self.store_refused.load(Ordering::Relaxed),
            unstored_final_states,
            free_disk_bytes: free_disk_bytes(&self.config.recordings_dir()).ok(),
            min_free_disk_bytes: self.config.admission.min_free_disk_mb.saturating_mul(MIB),
        }
    }

    /// Stops every job and waits for them to end (at most the stop watchdog and a little). A
    /// job whose final state the store still refuses by then stays as the store has it: the
    /// next start concludes it again.
    pub async fn shutdown(&self) {
        let ids: Vec<String> = self.running_lock().keys().cloned().collect();
        for id in &ids {
            let _ = self.stop(id);
        }
        // Final states waiting for the store get one more try now rather than at their next
        // turn, which may be later than the deadline.
        self.retry_unstored.notify_waiters();
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
        let unstored: Vec<String> = self.unstored_lock().keys().cloned().collect();
        if !unstored.is_empty() {
            tracing::error!(jobs = ?unstored, "shutting down with final job states the job database did not take; the next start concludes those jobs again");
        }
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
            let concluded = self.conclude(view, mode, output.as_deref(), ending).await;
            self.settle(concluded).await;
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
    /// is to be released only after the final state is stored ([`Node::settle`]).
    pub(crate) async fn conclude(
        &self,
        mut view: JobView,
        mode: Mode,
        output: Option<&Path>,
        ending: WorkerOutcome,
    ) -> Concluded {
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
        self.deliver(view, output, outcome).await
    }

    /// Sends a concluded job's output to storage; its final state, to be stored. The decided
    /// outcome is kept in the store first, so a restart during a long upload reports it as
    /// decided. A COMPLETE job reports its output's size: what was uploaded, else what is on
    /// disk; a FAILED job that kept a file, that file's.
    async fn deliver(
        &self,
        mut view: JobView,
        output: Option<&Path>,
        outcome: Outcome,
    ) -> Concluded {
        view.state = match outcome {
            Outcome::Complete => JobState::Complete,
            Outcome::Failed | Outcome::Recovered => JobState::Failed,
        };
        let mut release = None;
        let mut uploaded_bytes = None;
        if let (Some(output), Some(_)) = (output, &view.file) {
            if output.exists() && self.storage.is_remote() {
                let decided =
                    self.store_lock()
                        .decide(&view.job_id, outcome, view.reason.as_deref());
                self.note_store(&decided);
                if let Err(e) = decided {
                    tracing::error!(job = %view.job_id, error = %e, "cannot keep the job's outcome");
                }
                self.transition(&view.job_id, JobState::Ending, None);
                match self
                    .storage
                    .store(&view.job_id, view.created_ms, output)
                    .await
                {
                    Ok(stored) => {
                        view.file = Some(stored.location);
                        uploaded_bytes = Some(stored.bytes);
                        release = Some(output.to_owned());
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
        view.file_bytes = match (view.state, output, &view.file) {
            (JobState::Complete, Some(output), Some(_)) => {
                uploaded_bytes.or_else(|| match crate::storage::output_bytes(output) {
                    Ok(bytes) => Some(bytes),
                    Err(e) => {
                        tracing::warn!(job = %view.job_id, file = %output.display(), error = %e, "cannot read the size of the recording");
                        None
                    }
                })
            }
            // What a failed job kept (a repaired or partial recording): listed by the control
            // plane like a finished one, with its size.
            (JobState::Failed, _, Some(file)) => {
                uploaded_bytes.or_else(|| crate::storage::output_bytes(Path::new(file)).ok())
            }
            _ => None,
        };
        view.updated_ms = now_ms();
        match view.state {
            JobState::Complete => {
                tracing::info!(job = %view.job_id, file = ?view.file, file_bytes = ?view.file_bytes, reason = ?view.reason, "job complete")
            }
            _ => {
                tracing::warn!(job = %view.job_id, reason = ?view.reason, file = ?view.file, "job failed")
            }
        }
        // A repaired recording is reported as such, then the final state, in one transaction.
        let kinds: &'static [EventKind] = if outcome == Outcome::Recovered {
            &[EventKind::Recovered, EventKind::JobState]
        } else {
            &[EventKind::JobState]
        };
        Concluded {
            view,
            kinds,
            release,
        }
    }

    /// Stores a concluded job's final state ([`Node::store_final`]: until the store takes it),
    /// then releases the uploaded local copy.
    async fn settle(&self, concluded: Concluded) {
        let stored = self.store_final(&concluded.view, concluded.kinds).await;
        self.release_once_stored(&concluded, stored);
    }

    /// The local copy goes only once the final state saying where the upload is was stored (a
    /// full disk failing the write must not leave a FAILED job with no file anywhere).
    fn release_once_stored(&self, concluded: &Concluded, stored: bool) {
        match &concluded.release {
            Some(output) if stored => self.storage.release(output),
            Some(output) => {
                tracing::warn!(job = %concluded.view.job_id, file = %output.display(), "the final state was not stored: the local copy stays")
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
            Ok(stored) => (stored.location, true),
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
    pub(crate) async fn conclude_orphan(self: &Arc<Self>, job: Unfinished) {
        let Unfinished { view, decided } = job;
        let output = view.file.as_ref().map(PathBuf::from);
        let concluded = if let Some((outcome, reason)) = decided {
            let view = JobView { reason, ..view };
            self.deliver(view, output.as_deref(), outcome).await
        } else {
            self.conclude_from_files(view, output.as_deref()).await
        };
        // Written now; a final state the store refuses is written again in the background, so
        // the other jobs the last run left are concluded meanwhile.
        match self.write_final(&concluded.view, concluded.kinds) {
            Some(stored) => self.release_once_stored(&concluded, stored),
            None => {
                let node = self.clone();
                tokio::spawn(async move { node.settle(concluded).await });
            }
        }
    }

    /// Concludes a job an earlier run left, undecided, from the files it left.
    async fn conclude_from_files(&self, view: JobView, output: Option<&Path>) -> Concluded {
        let finished = match (&output, view.mode) {
            (Some(out), Mode::Composite) => out.is_file() && !part_file(out).exists(),
            _ => false,
        };
        let ending = if finished {
            WorkerOutcome::Finished
        } else {
            WorkerOutcome::Failed("the recorder service stopped during the job".into())
        };
        let mode = view.mode;
        self.conclude(view, mode, output, ending).await
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
        assert_eq!(done.file_bytes, u64::try_from(recorded.len()).ok());
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
        assert_eq!(done.file_bytes, u64::try_from(uploaded.len()).ok());
        assert_eq!(fake.forget_finished(), 1);

        let refused = refused_for(
            fake.node.start(FakeNode::request("uploaded")).await,
            "uploaded",
        );
        assert_eq!(refused, location);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(bucket.object("fake/uploaded.mp4").await, uploaded);
    }

    /// A COMPLETE job reports the size of what it recorded: its COMPLETE event and the job list
    /// carry the sum of a tracks job's files; a failed job reports no size.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_complete_job_reports_the_size_of_its_files() {
        let fake = FakeNode::configured("sized", WRITES_AND_FINISHES, Storage::Local, with_events);
        let request = StartRequest {
            mode: Mode::Tracks,
            ..FakeNode::request("sized")
        };
        fake.node.start(request).await.expect("start");
        let done = fake.wait_ended("sized").await;
        assert_eq!(done.state, JobState::Complete, "{done:?}");
        let dir = fake.recordings().join("sized");
        let on_disk: u64 = std::fs::read_dir(&dir)
            .expect("track dir")
            .map(|entry| entry.expect("entry").metadata().expect("size").len())
            .sum();
        assert!(on_disk > 0);
        assert_eq!(done.file_bytes, Some(on_disk), "{done:?}");

        let pending = fake.node.store_lock().pending(100).expect("pending");
        let events: Vec<Event> = pending
            .iter()
            .map(|p| serde_json::from_str(&p.body).expect("event"))
            .collect();
        let complete = events
            .iter()
            .find(|e| e.job.state == JobState::Complete)
            .expect("a COMPLETE event");
        assert_eq!(complete.job.file_bytes, Some(on_disk));
        assert!(events
            .iter()
            .filter(|e| e.job.state != JobState::Complete)
            .all(|e| e.job.file_bytes.is_none()));
        let (listed, _) = fake.node.list(10).expect("list");
        assert_eq!(listed[0].file_bytes, Some(on_disk), "{listed:?}");
    }

    /// Serves the job API over `node` for one signed `/jobs/start` of `job_id` (a composite to
    /// a file): its status and JSON answer.
    async fn start_through_the_api(
        node: &Arc<Node>,
        job_id: &str,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(edgemeet_serve::serve(
            listener,
            crate::api::router(node.clone()),
            crate::api::LIMITS,
            async {
                let _ = stopped.await;
            },
        ));
        let body = serde_json::json!({
            "job_id": job_id,
            "room_id": "room",
            "livekit_url": "ws://127.0.0.1:7880",
            "token": "token",
        });
        let (status, answer) =
            crate::testing::signed_post(node, &format!("http://{address}/jobs/start"), &body).await;
        let status = reqwest::StatusCode::from_u16(status).expect("status");
        let _ = stop.send(());
        let _ = server.await;
        (status, answer)
    }

    /// The job API answers such a start with its own 409 and a message that says why.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_api_refuses_a_start_over_an_earlier_recording_with_409() {
        let fake = FakeNode::new("reuse-api", WRITES_AND_FINISHES, Storage::Local);
        let file = fake.recordings().join("earlier.mp4");
        std::fs::write(&file, b"an earlier recording").expect("earlier recording");
        let (status, answer) = start_through_the_api(&fake.node, "earlier").await;
        assert_eq!(status, reqwest::StatusCode::CONFLICT);
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
    }

    /// Polls `done` every 50 ms for up to 20 s.
    async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Events are queued in the outbox (nothing delivers them in these tests).
    fn with_events(config: &mut ServiceConfig) {
        config.control_plane = Some(crate::config::ControlPlane {
            url: "http://127.0.0.1:9/events".into(),
            heartbeat_seconds: 5.0,
        });
    }

    /// A reason longer than a page of the job database, as a GStreamer error with its debug
    /// text can be: a final state carrying it needs new pages, which a full store refuses
    /// (one that fits in the pages already there is stored even on a full disk).
    const LONG_REASON_BYTES: usize = 6000;

    /// A worker that reports `active`, waits for `$out.go`, then fails with a reason of
    /// [`LONG_REASON_BYTES`].
    const FAILS_ON_GO_WITH_A_LONG_REASON: &str = r#"echo '{"event":"active"}'
while [ ! -e "$out.go" ]; do sleep 0.05; done
printf '{"event":"failed","reason":"%s"}\n' "$(head -c 6000 /dev/zero | tr '\0' x)"
exit 1"#;

    fn stored_state(node: &Node, job_id: &str) -> Option<JobState> {
        let stored = node.store_lock().job(job_id).expect("read");
        stored.map(|(view, _)| view.state)
    }

    /// Queued events reporting `job_id` as FAILED.
    fn failed_events(node: &Node, job_id: &str) -> usize {
        let pending = node.store_lock().pending(1000).expect("pending");
        pending
            .iter()
            .filter(|e| e.body.contains("\"FAILED\"") && e.body.contains(job_id))
            .count()
    }

    /// A job whose final state the store refuses (a genuine SQLITE_FULL) is kept with that
    /// state, listed and stopped as ended, counted in the heartbeat, and no new file job
    /// starts meanwhile; once the store takes writes again the state is stored with its event
    /// and the job released.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_final_state_the_store_refuses_is_kept_and_stored_once_it_can_be() {
        let fake = FakeNode::configured(
            "unstored",
            FAILS_ON_GO_WITH_A_LONG_REASON,
            Storage::Local,
            with_events,
        );
        let node = &fake.node;
        node.start(FakeNode::request("full")).await.expect("start");
        wait_for("ACTIVE stored", || {
            stored_state(node, "full") == Some(JobState::Active)
        })
        .await;
        node.store_lock().stop_growing().expect("fill the store");
        std::fs::write(fake.recordings().join("full.mp4.go"), b"").expect("go");
        wait_for("the final state to be refused", || {
            node.heartbeat().unstored_final_states == 1
        })
        .await;

        let (jobs, _) = node.list(10).expect("list");
        let listed = jobs.iter().find(|j| j.job_id == "full").expect("listed");
        assert_eq!(listed.state, JobState::Failed, "{listed:?}");
        let reason = listed.reason.clone().expect("reason");
        assert_eq!(reason, "x".repeat(LONG_REASON_BYTES));
        let stopped = node.stop("full").expect("stop");
        assert_eq!(stopped.state, JobState::Failed);
        // The store refused it: it still has the job as ACTIVE, with no event of its end.
        assert_eq!(stored_state(node, "full"), Some(JobState::Active));
        assert_eq!(failed_events(node, "full"), 0);
        let beat = node.heartbeat();
        assert!(!beat.store_ok, "{beat:?}");
        assert!(node.is_running("full"), "released before it was stored");
        // The retries go on failing while the store is full.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(node.heartbeat().unstored_final_states, 1);
        assert_eq!(stored_state(node, "full"), Some(JobState::Active));

        // No job that writes a file is admitted meanwhile.
        std::fs::write(fake.recordings().join("next.mp4.go"), b"").expect("go");
        let refused = node.start(FakeNode::request("next")).await;
        match &refused {
            Err(StartError::NoCapacity(NoCapacity::Store {
                unstored_final_states: 1,
            })) => {}
            other => panic!("a file job started while the store refused writes: {other:?}"),
        }
        let message = refused.map(|_| ()).expect_err("refused").to_string();
        assert!(message.starts_with("no capacity"), "{message}");
        assert!(!node.knows("next"));

        node.store_lock().grow_again().expect("free the store");
        let done = fake.wait_ended("full").await;
        assert_eq!(done.state, JobState::Failed);
        assert_eq!(done.reason.as_deref(), Some(reason.as_str()));
        assert_eq!(failed_events(node, "full"), 1);
        let beat = node.heartbeat();
        assert!(beat.store_ok && beat.unstored_final_states == 0, "{beat:?}");
        node.start(FakeNode::request("next"))
            .await
            .expect("a file job once the store takes writes");
        assert_eq!(fake.wait_ended("next").await.state, JobState::Failed);
    }

    /// A job an earlier run left whose final state the store refuses does not hold up
    /// recovery: it is listed with that state, and stored in the background once it can be.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_left_job_whose_final_state_the_store_refuses_is_stored_later() {
        let fake = FakeNode::configured(
            "unstored-left",
            WRITES_AND_FINISHES,
            Storage::Local,
            with_events,
        );
        let node = &fake.node;
        let view = JobView {
            job_id: "left".into(),
            room_id: "room".into(),
            mode: Mode::Composite,
            state: JobState::Ending,
            reason: None,
            file: None,
            file_bytes: None,
            rtmp: None,
            created_ms: now_ms(),
            updated_ms: now_ms(),
        };
        node.store_lock().insert(&view, "fp", None).expect("insert");
        node.store_lock().stop_growing().expect("fill the store");
        let reason = "x".repeat(LONG_REASON_BYTES);
        let left = Unfinished {
            view,
            decided: Some((Outcome::Failed, Some(reason.clone()))),
        };
        tokio::time::timeout(
            Duration::from_secs(10),
            crate::recovery::recover(node.clone(), vec![left]),
        )
        .await
        .expect("recovery waited for the store");
        assert_eq!(node.heartbeat().unstored_final_states, 1);
        let (jobs, _) = node.list(10).expect("list");
        let listed: Vec<_> = jobs.iter().filter(|j| j.job_id == "left").collect();
        assert_eq!(listed.len(), 1, "{jobs:?}");
        assert_eq!(listed[0].state, JobState::Failed);
        assert_eq!(node.stop("left").expect("stop").state, JobState::Failed);
        assert_eq!(stored_state(node, "left"), Some(JobState::Ending));

        node.store_lock().grow_again().expect("free the store");
        wait_for("the final state to be stored", || {
            stored_state(node, "left") == Some(JobState::Failed)
        })
        .await;
        assert_eq!(failed_events(node, "left"), 1);
        assert_eq!(node.heartbeat().unstored_final_states, 0);
    }

    /// Below `min_free_disk_mb` of free space a job that writes a file is refused as "no
    /// capacity" (503 from the API), saying why with the numbers; a broadcast-only job writes
    /// nothing there and starts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_job_is_refused_while_free_disk_space_is_below_the_minimum() {
        let free_mb = free_disk_bytes(&std::env::temp_dir()).expect("free space") / MIB;
        let min_mb = free_mb + 1024;
        assert!(
            min_mb <= crate::config::MAX_MIN_FREE_DISK_MB,
            "this test needs less than 1 TiB free"
        );
        let fake = FakeNode::configured("low-disk", WRITES_AND_FINISHES, Storage::Local, |c| {
            c.admission.min_free_disk_mb = min_mb;
        });
        let node = &fake.node;
        let refused = node.start(FakeNode::request("big")).await;
        let message = match &refused {
            Err(
                e @ StartError::NoCapacity(NoCapacity::Disk {
                    free_mb,
                    min_mb: min,
                }),
            ) => {
                assert_eq!(*min, min_mb);
                assert!(*free_mb < min_mb);
                e.to_string()
            }
            other => panic!("a file job started on a nearly full disk: {other:?}"),
        };
        assert!(
            message.starts_with("no capacity: free disk space is too low")
                && message.contains(&format!("{min_mb} MiB required")),
            "{message}"
        );
        assert!(!node.knows("big"));
        let (status, answer) = start_through_the_api(node, "big").await;
        assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE);
        let msg = answer["msg"].as_str().expect("msg");
        assert!(
            msg.starts_with("no capacity: free disk space is too low"),
            "{msg}"
        );

        let broadcast = StartRequest {
            file: false,
            rtmp_url: Some("rtmp://127.0.0.1:1/live/key".into()),
            ..FakeNode::request("cast")
        };
        node.start(broadcast)
            .await
            .expect("a broadcast needs no disk space");
        assert_eq!(fake.wait_ended("cast").await.state, JobState::Complete);
        let beat = node.heartbeat();
        assert!(
            beat.free_disk_bytes.is_some_and(|free| free > 0),
            "{beat:?}"
        );
        assert_eq!(beat.min_free_disk_bytes, min_mb * MIB);

        // With a minimum the disk meets, the same job starts.
        let roomy = FakeNode::configured("roomy-disk", WRITES_AND_FINISHES, Storage::Local, |c| {
            c.admission.min_free_disk_mb = 1;
        });
        roomy
            .node
            .start(FakeNode::request("big"))
            .await
            .expect("enough free space");
        assert_eq!(roomy.wait_ended("big").await.state, JobState::Complete);
    }
}
