//! Crash recovery. A composite is written as fragmented MP4, so a worker killed mid-recording
//! (or a machine that lost power) leaves a file playable up to its last fragment. On a failed
//! job, and on every start of the service for what an earlier run left, the fragmented file is
//! remuxed into a finished faststart MP4 (in a `recorder-native repair` process, so GStreamer
//! never runs inside the service) and reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::events::{now_ms, EventKind};
use crate::finalize;
use crate::job::{is_job_id, JobState, JobView, Mode};
use crate::store::Unfinished;
use crate::supervisor::Node;
use crate::worker::part_file;

/// Why a repair failed.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The repair process could not run; the fragmented file is where it was.
    #[error("running the repair: {0}")]
    Spawn(#[from] std::io::Error),
    /// It ran and failed (the file held no complete fragment); the file is kept aside.
    #[error("the file could not be repaired; kept as {0}")]
    Unrepairable(String),
    /// It took too long; the fragmented file is where it was.
    #[error("the repair took longer than {0:?}; the fragmented file is kept")]
    Timeout(Duration),
}

/// Where the bytes of `output`'s fragmented file are kept when they cannot be repaired.
pub fn damaged_file(output: &Path) -> PathBuf {
    output.with_extension("damaged.mp4")
}

/// Where a recording's bytes are after a failed repair of `output`'s fragmented file.
pub fn kept_after_failed_repair(error: &RepairError, output: &Path) -> Option<PathBuf> {
    let kept = match error {
        RepairError::Unrepairable(aside) => PathBuf::from(aside),
        RepairError::Spawn(_) | RepairError::Timeout(_) => part_file(output),
    };
    kept.is_file().then_some(kept)
}

/// The longest a repair of `bytes` may take: ten minutes, plus the file read and written again
/// at a slow disk's 8 MiB/s (a remux runs at disk speed; a 10-hour composite is about 11 GB).
fn repair_deadline(bytes: u64) -> Duration {
    Duration::from_secs(600 + bytes / (8 * 1024 * 1024) * 2)
}

/// Repairs the fragmented file beside `output` into `output`. `Ok(false)` when there is none,
/// or when it holds no media (a worker that failed before its first fragment): such a file is
/// removed, as there is nothing in it to keep.
pub async fn repair(worker_exe: &Path, output: &Path) -> Result<bool, RepairError> {
    let part = part_file(output);
    if !part.is_file() {
        return Ok(false);
    }
    if !holds_a_fragment(&part)? {
        tracing::info!(file = %part.display(), "removing a recording that holds no media");
        std::fs::remove_file(&part)?;
        return Ok(false);
    }
    let mut command = tokio::process::Command::new(worker_exe);
    command
        .arg("repair")
        .arg("--input")
        .arg(&part)
        .arg("--output")
        .arg(output)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    // A repair outliving a killed service would race the next run's repair of the same file.
    crate::supervisor::die_with_service(&mut command);
    let run = command.status();
    let deadline = repair_deadline(std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0));
    let status = tokio::time::timeout(deadline, run)
        .await
        .map_err(|_| RepairError::Timeout(deadline))??;
    if status.success() {
        std::fs::remove_file(&part)?;
        tracing::info!(file = %output.display(), "recording repaired");
        Ok(true)
    } else {
        // Keep the bytes (nothing is deleted), out of the way of the next scan.
        let aside = damaged_file(output);
        std::fs::rename(&part, &aside)?;
        Err(RepairError::Unrepairable(aside.display().to_string()))
    }
}

/// Whether the fragmented MP4 at `path` has a movie fragment (`moof` box) at its top level,
/// that is, any media at all. Walks the box headers only.
fn holds_a_fragment(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut at = 0u64;
    while at + 8 <= len {
        file.seek(SeekFrom::Start(at))?;
        let mut header = [0u8; 8];
        file.read_exact(&mut header)?;
        let [s0, s1, s2, s3, t0, t1, t2, t3] = header;
        if [t0, t1, t2, t3] == *b"moof" {
            return Ok(true);
        }
        let size = match u32::from_be_bytes([s0, s1, s2, s3]) {
            // The box runs to the end of the file.
            0 => return Ok(false),
            // A 64-bit size follows the type.
            1 => {
                if at + 16 > len {
                    return Ok(false);
                }
                let mut large = [0u8; 8];
                file.read_exact(&mut large)?;
                u64::from_be_bytes(large)
            }
            size => u64::from(size),
        };
        if size < 8 {
            // Not a box: a torn write. Let the repair judge the file.
            return Ok(true);
        }
        at = at.saturating_add(size);
    }
    Ok(false)
}

/// Run once at start, before the API opens: removes the job files an earlier run left (they
/// hold tokens, and their workers died with it) and returns the jobs it left unfinished. Before
/// the API, so neither a new job's file nor a new job itself is taken for a leftover.
pub fn leftovers(node: &Node) -> Vec<Unfinished> {
    let jobs_dir = node.config().jobs_dir();
    if let Ok(entries) = std::fs::read_dir(&jobs_dir) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    match node.store().lock().map(|s| s.unfinished()) {
        Ok(Ok(jobs)) => jobs,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read unfinished jobs");
            Vec::new()
        }
        Err(_) => {
            tracing::error!("job store lock poisoned");
            Vec::new()
        }
    }
}

/// Runs beside the API (repairs and uploads can take minutes, and the node should answer and
/// heartbeat meanwhile): concludes the `unfinished` jobs [`leftovers`] found, repairs stray
/// fragmented files, and removes what killed finalizes left. New jobs are safe from it: their
/// ids are known to the node, so their fragmented files are not taken for strays, and the
/// temporary files of a running job's finalize are not taken for leftovers.
pub async fn recover(node: Arc<Node>, unfinished: Vec<Unfinished>) {
    let node = &node;
    for job in unfinished {
        tracing::warn!(job = %job.view.job_id, state = job.view.state.as_str(), "concluding a job the last run left");
        node.conclude_orphan(job).await;
    }
    let Ok(entries) = std::fs::read_dir(node.config().recordings_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(job_id) = finalize::temp_file_of(name) {
            // A job started since the API opened may be finalizing (or being repaired) right
            // now: its temporary files are live. Only those of no running job are leftovers.
            if node.is_running(job_id) {
                continue;
            }
            tracing::info!(file = %path.display(), "removing what a killed finalize left");
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let Some(job_id) = name.strip_suffix(".part.mp4") else {
            continue;
        };
        if !is_job_id(job_id) || node.knows(job_id) {
            continue;
        }
        let output = path.with_file_name(format!("{job_id}.mp4"));
        match repair(node.worker_exe(), &output).await {
            Ok(true) => {
                let created_ms = now_ms();
                // Read before an upload releases the local copy; the bucket keeps the same bytes.
                let file_bytes = crate::storage::output_bytes(&output).ok();
                let (file, uploaded) = node.store_recovered(job_id, created_ms, &output).await;
                let reported = node.report(
                    EventKind::Recovered,
                    &JobView {
                        job_id: job_id.to_owned(),
                        room_id: String::new(),
                        mode: Mode::Composite,
                        state: JobState::Failed,
                        reason: Some("found unfinished after a restart".into()),
                        file: Some(file),
                        file_bytes,
                        rtmp: None,
                        created_ms,
                        updated_ms: now_ms(),
                    },
                );
                if uploaded && reported {
                    node.release(&output);
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "cannot repair a stray recording")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_longer_recording_gets_longer_to_repair() {
        assert_eq!(repair_deadline(0), Duration::from_secs(600));
        // 11 GB, a 10-hour composite: the remux reads and writes it at 8 MiB/s.
        let ten_hours = repair_deadline(11_000_000_000);
        assert!(ten_hours > Duration::from_secs(3000), "{ten_hours:?}");
    }

    #[test]
    fn only_files_with_a_fragment_hold_media() {
        let dir = std::env::temp_dir().join(format!("repair-boxes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("job.part.mp4");
        let boxed = |kind: &[u8; 4], body: usize| {
            let mut b = u32::try_from(8 + body)
                .expect("size")
                .to_be_bytes()
                .to_vec();
            b.extend_from_slice(kind);
            b.extend(std::iter::repeat_n(0u8, body));
            b
        };
        let header = [boxed(b"ftyp", 16), boxed(b"moov", 100)].concat();
        std::fs::write(&path, &header).expect("write");
        assert!(!holds_a_fragment(&path).expect("read"));
        let with_fragment = [header.clone(), boxed(b"moof", 40), boxed(b"mdat", 500)].concat();
        std::fs::write(&path, &with_fragment).expect("write");
        assert!(holds_a_fragment(&path).expect("read"));
        // A fragment cut off mid-write still counts: the repair keeps what it can.
        std::fs::write(&path, &with_fragment[..header.len() + 12]).expect("write");
        assert!(holds_a_fragment(&path).expect("read"));
        std::fs::write(&path, b"").expect("write");
        assert!(!holds_a_fragment(&path).expect("read"));
        // A box with a 64-bit size is stepped over whole.
        let mut large = 1u32.to_be_bytes().to_vec();
        large.extend_from_slice(b"mdat");
        large.extend_from_slice(&(16u64 + 32).to_be_bytes());
        large.extend(std::iter::repeat_n(0u8, 32));
        let without = [header.clone(), large.clone()].concat();
        std::fs::write(&path, &without).expect("write");
        assert!(!holds_a_fragment(&path).expect("read"));
        let after_large = [header.clone(), large, boxed(b"moof", 40)].concat();
        std::fs::write(&path, &after_large).expect("write");
        assert!(holds_a_fragment(&path).expect("read"));

        // A file without media is not repaired (nor kept aside as damaged): it goes.
        std::fs::write(&path, &header).expect("write");
        let output = dir.join("job.mp4");
        assert_eq!(part_file(&output), path);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let repaired = runtime.block_on(repair(Path::new("/nonexistent/worker"), &output));
        assert!(matches!(repaired, Ok(false)), "{repaired:?}");
        assert!(!path.exists() && !output.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The sweep for what killed finalizes left runs beside the API, after concluding what the
    /// last run left (which can take minutes): by then new jobs may be finalizing. Their
    /// temporary files stay; those of no running job go.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sweep_spares_the_temporary_files_of_running_jobs() {
        use crate::testing::{FakeNode, RUNS_UNTIL_KILLED};
        let fake = FakeNode::new("sweep", RUNS_UNTIL_KILLED, crate::storage::Storage::Local);
        fake.node
            .start(FakeNode::request("live"))
            .await
            .expect("start");
        assert!(fake.node.is_running("live"));
        let recordings = fake.recordings();
        let live = ["live.remux.tmp", "live.faststart.tmp"].map(|n| recordings.join(n));
        let stale = ["gone.remux.tmp", "gone.faststart.tmp"].map(|n| recordings.join(n));
        for file in live.iter().chain(&stale) {
            std::fs::write(file, b"media").expect("temporary file");
        }
        recover(fake.node.clone(), Vec::new()).await;
        for file in &live {
            assert!(
                file.exists(),
                "a running job's {} was removed",
                file.display()
            );
        }
        for file in &stale {
            assert!(!file.exists(), "{} was left", file.display());
        }
        fake.node.shutdown().await;
        assert!(!fake.node.is_running("live"));
    }

    #[test]
    fn a_failed_repair_names_where_the_bytes_are() {
        let dir = std::env::temp_dir().join(format!("repair-kept-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let output = dir.join("job.mp4");
        let timeout = RepairError::Timeout(Duration::from_secs(1));
        assert_eq!(kept_after_failed_repair(&timeout, &output), None);
        std::fs::write(part_file(&output), b"fragments").expect("part");
        assert_eq!(
            kept_after_failed_repair(&timeout, &output),
            Some(part_file(&output))
        );
        let aside = dir.join("job.damaged.mp4");
        std::fs::write(&aside, b"bytes").expect("aside");
        let unrepairable = RepairError::Unrepairable(aside.display().to_string());
        assert_eq!(
            kept_after_failed_repair(&unrepairable, &output),
            Some(aside)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
