//! # edgemeet-protocol
//!
//! What the parts of edgemeet say to each other, written once for every side: the request
//! signing every hop uses ([`signing`]), the heartbeat a media-sidecar sends the edge
//! ([`heartbeat`]), how an outbox of events is delivered ([`delivery`]) and the download links
//! for finished recordings ([`download`]). It builds for every
//! target the edge runs on (no I/O, no std-only dependency), so the WASM edge and the native
//! services share the same types.

pub mod delivery;
pub mod download;
pub mod heartbeat;
pub mod signing;
