//! # media-sidecar
//!
//! The native agent that runs beside each regional LiveKit cluster. Its job, built in a later
//! issue: report the region's health and load to the edge in signed heartbeats, relay LiveKit's
//! webhooks to the edge through a durable outbox without losing or duplicating one, and let the
//! region join, drain and leave the system at run time.
//!
//! Until then this crate only states its role, so the workspace layout is the final one.
