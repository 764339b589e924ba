//! The child processes `edgemeet up` runs beside the edge (the local LiveKit server and the local
//! recorder): each logs to a file, goes when edgemeet goes, and is stopped politely first.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

/// Starts `command` with its output appended to `log` (created anew). The child goes when
/// edgemeet goes, however it goes: `kill_on_drop` needs the destructors to run, and a SIGTERM
/// before the signal handlers exist (while the component compiles) ends the process without
/// them, so the child also gets the kernel's parent-death signal. That signal follows the
/// spawning thread, which is the main thread here (`up` runs in `block_on`), alive as long as
/// the process.
pub fn spawn_tied(command: &mut Command, log: &Path) -> anyhow::Result<Child> {
    let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    // SAFETY: the closure only calls prctl, which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let program = command.as_std().get_program().to_owned();
    command
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", Path::new(&program).display()))
}

/// Asks `child` to stop (SIGTERM), then kills it if it has not left after `grace`.
pub async fn stop(child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) {
        // SAFETY: plain syscall on a pid we own; no memory is touched.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// The first file named `name` in a directory of `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Waits until `ready()` holds for the started `child` (`what`, logging to `log`; `ready` checks
/// that it did `awaited`, e.g. "listen on ADDRESS"): fails if it exits first or `within` passes.
pub async fn wait_started(
    child: &mut Child,
    what: &str,
    awaited: &str,
    log: &Path,
    within: Duration,
    mut ready: impl AsyncFnMut() -> bool,
) -> anyhow::Result<()> {
    let until = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "{what} exited with {status} at start; see {}",
                log.display()
            );
        }
        if ready().await {
            return Ok(());
        }
        if Instant::now() >= until {
            bail!(
                "{what} did not {awaited} within {within:?}; see {}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
