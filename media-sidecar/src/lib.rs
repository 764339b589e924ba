//! # media-sidecar
//!
//! The native agent that runs beside each regional LiveKit cluster (`media-sidecar serve
//! --config FILE`). It reports the region's health and load to the edge in signed heartbeats,
//! relays LiveKit's webhooks to the edge through a durable outbox without losing one (repeats
//! are dropped by the edge by event id), and lets the region drain and leave the system at run
//! time. The wire protocol to the edge is `POST {edge}/internal/sidecar/heartbeat` and
//! `POST {edge}/internal/sidecar/events`, JSON signed with the region's `sidecar_secret`.
//!
//! ## Layout
//! - [`config`]: the TOML file, checked at load.
//! - [`auth`]: the HMAC-SHA256 signing scheme (`API-KEY`, `HASH-SIGNATURE`), both ways.
//! - [`edge`]: the signed client for the edge's internal endpoints.
//! - [`webhooks`]: LiveKit's webhooks, received and verified.
//! - [`outbox`]: the durable webhook outbox (SQLite, WAL, `synchronous=FULL`).
//! - [`relay`]: forwarding the outbox in order and in batches, with backoff (pure decisions).
//! - [`heartbeat`]: LiveKit's rooms (Twirp `ListRooms`), machine load, heartbeats.
//! - [`drain`]: the drain decision (pure) and the signals that ask for one.
//! - [`metrics`]: Prometheus metrics.
//! - [`http`]: the HTTP server: `/webhook`, `/admin/drain`, `/metrics`.
//! - [`service`]: the wiring, and the order of a clean exit.

#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod drain;
pub mod edge;
pub mod heartbeat;
pub mod http;
pub mod metrics;
pub mod outbox;
pub mod relay;
pub mod service;
pub mod webhooks;
