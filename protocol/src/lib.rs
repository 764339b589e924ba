//! # edgemeet-protocol
//!
//! What the parts of edgemeet say to each other, written once for every side: the request
//! signing every hop uses ([`signing`]), the heartbeat a media-sidecar sends the edge
//! ([`heartbeat`]) and how an outbox of events is delivered ([`delivery`]). It builds for every
//! target the edge runs on (no I/O, no std-only dependency), so the WASM edge and the native
//! services share the same types.

pub mod delivery;
pub mod heartbeat;
pub mod signing;
