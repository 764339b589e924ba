//! # recorder-native
//!
//! The recording factory: a native GStreamer service on dedicated machines that joins LiveKit
//! rooms as a hidden subscriber and writes MP4 files (and, later, RTMP broadcasts), admitting
//! jobs by CPU cost so a transcode never touches a live meeting.
//!
//! ## Layout
//! - [`layout`]: where each participant's video goes on the composite canvas (pure arithmetic).
//! - [`pipeline`]: the room-composite GStreamer pipeline: LiveKit room in, H.264 + AAC
//!   fragmented MP4 out; participants come and go while it runs; stop by EOS.
//! - [`finalize`]: fragmented MP4 to faststart MP4 without re-encoding, after a stop or a crash.
//! - [`job`]: what one recording job is, as the worker process reads it.
//!
//! The `recorder-native` binary's `record` command runs one job in the foreground until
//! SIGINT/SIGTERM; the supervising service with its job API and admission comes next.

pub mod finalize;
pub mod job;
pub mod layout;
pub mod pipeline;
