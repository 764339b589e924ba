//! # recorder-native
//!
//! The recording factory: a native service on dedicated machines that joins LiveKit rooms as a
//! hidden subscriber and writes MP4 files, broadcasts to RTMP, or records each track as is,
//! admitting jobs by CPU cost so a transcode never touches a live meeting.
//!
//! ## The service (`recorder-native serve --config FILE`)
//! - [`config`]: the TOML file.
//! - [`api`]: the signed job API (start, stop, list, delete) and the recordings' download links;
//!   [`auth`] its HMAC scheme.
//! - [`job`]: what a job is: the start request, its checks, its states.
//! - [`supervisor`]: the node: admission, one worker process per job, states.
//! - [`watchdog`]: when a worker is overdue (start, stall, stop, finalize) and gets killed.
//! - [`admission`]: CPU-cost budget and per-job cost measurement.
//! - [`store`]: the job table and the durable event outbox (SQLite).
//! - [`events`]: events and heartbeats to the control plane, signed, retried, in order.
//! - [`recovery`]: repairing what a crash left, at job end and at start.
//! - [`storage`]: where finished recordings go: the local directory or an S3-compatible bucket.
//! - [`service`]: the wiring of all of the above.
//!
//! ## The media (`recorder-native record --job FILE`, one worker process per job)
//! - [`worker`]: the worker's job file, its reports, its run.
//! - [`media`]: what the pipelines share: errors, the room source, the run loop.
//! - [`composite`]: the room composite: one H.264 + AAC encode to a fragmented MP4 and/or RTMP.
//! - [`layout`]: where each participant's video goes on the canvas (pure arithmetic).
//! - [`broadcast`]: the RTMP branch, in its own pipeline so its failure spares the file.
//! - [`tracks`]: per-track files without re-encoding.
//! - [`finalize`]: fragmented MP4 to faststart MP4 without re-encoding, after a stop or a crash.

pub mod admission;
pub mod api;
pub mod auth;
pub mod broadcast;
pub mod composite;
pub mod config;
pub mod events;
pub mod finalize;
pub mod job;
pub mod layout;
pub mod media;
pub mod recovery;
pub mod service;
pub mod storage;
pub mod store;
pub mod supervisor;
pub mod targets;
#[cfg(test)]
mod testing;
pub mod tracks;
pub mod watchdog;
pub mod worker;
