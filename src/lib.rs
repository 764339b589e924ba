//! # edgemeet: the whole system on one machine
//!
//! The `edgemeet` command's library. `edgemeet up` starts a local LiveKit server, its
//! media-sidecar and a recorder node (unless regions are configured) and serves the edge-api
//! Spin component in a wasmtime host.
//!
//! ## Layout
//! - [`host`]: the wasmtime host that serves a Spin HTTP component (WASI HTTP p3, Spin
//!   variables and sqlite), like `spin up`.
//! - [`settings`]: `edgemeet.toml` and the credentials generated on first run.
//! - [`livekit_server`]: the local LiveKit server child process.
//! - [`local_sidecar`]: the media-sidecar beside it, in this process.
//! - [`local_recorder`]: a recorder node beside it, a `recorder-native` child process.
//! - [`children`]: how those child processes are started and stopped.
//! - [`up`]: `edgemeet up`, wiring the above together.

pub mod children;
pub mod host;
pub mod livekit_server;
pub mod local_recorder;
pub mod local_sidecar;
pub mod settings;
pub mod up;

use std::path::PathBuf;

/// Where installed tools and build outputs are cached outside the clone:
/// `$EDGEMEET_CACHE`, else `~/.cache/edgemeet`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EDGEMEET_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("edgemeet")
}
