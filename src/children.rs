//! The child processes `edgemeet up` runs beside the edge (the local LiveKit server and the local
//! recorder): each logs to a file, goes when edgemeet goes, and is stopped politely first.

use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
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
