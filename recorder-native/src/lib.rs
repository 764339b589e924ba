//! # recorder-native
//!
//! The recording factory: a native GStreamer service on dedicated machines that joins LiveKit
//! rooms as a hidden subscriber and writes MP4 files or RTMP broadcasts, admitting jobs by CPU
//! cost so a transcode never touches a live meeting. Built in a later issue.
//!
//! Until then this crate only states its role, so the workspace layout is the final one.
