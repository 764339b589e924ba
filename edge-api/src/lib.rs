//! # edge-api: the edgemeet brain
//!
//! Authentication and room logic that runs at the edge (Fermyon Spin, Cloudflare Workers, or the
//! local wasmtime host). It speaks plugNmeet's server API so plugNmeet's SDKs and CMS plugins
//! work unchanged, mints join and LiveKit tokens, and pins each room to a media region.
//!
//! The core is sans-IO: [`Edge::handle`] takes an [`EdgeRequest`] and returns an
//! [`EdgeResponse`], reaching the world only through four small traits in [`platform`]. A
//! platform adapter (see [`spin`]) only converts types.
//!
//! ## Layout
//! - [`platform`]: the traits an adapter implements: SQL store, outbound HTTP, clock, config.
//! - [`config`]: the API client, limits and regions, read from the platform's variables.
//! - [`exchange`]: the request and response types the adapters convert from and to.
//! - [`wire`]: plugNmeet's protojson conventions (camelCase in, int64 as strings, status codes).
//! - [`auth`]: `API-KEY` + `HASH-SIGNATURE` HMAC verification of `/auth/*` calls.
//! - [`tokens`]: plugNmeet join tokens and LiveKit access tokens.
//! - [`metadata`]: RoomMetadata checks and defaults.
//! - [`rooms`]: the `/auth/room/*` calls, one module each.
//! - [`sessions`]: `POST /api/session`, where a browser gets its region and LiveKit token,
//!   `POST /api/renewToken`, where it keeps its join token fresh, and `POST /api/endRoom`,
//!   where a moderator's page ends the meeting.
//! - [`bbb`]: the BigBlueButton-compatible API (`/<api key>/bigbluebutton/api/*`), done by the
//!   plugNmeet calls above, for BBB integrations.
//! - [`waiting`]: the waiting room: who waits, and a moderator letting them in or not.
//! - [`moderation`]: a moderator removing (and blocking) a participant, or muting microphones.
//! - [`web`]: the join page's files served at `/` (paths, types, cache and security headers),
//!   and what lets plugNmeet's CMS plugins embed it (`/auth/getClientFiles`, CORS on `/api/*`).
//! - [`placement`]: the rule that picks a room's region.
//! - [`registry`]: the regions' health, load and drain state from their sidecars' heartbeats.
//! - [`sidecars`]: the internal endpoints media-sidecars call (heartbeats, webhook batches).
//! - [`livekit_webhooks`]: LiveKit's webhooks posted straight to the edge, for a region without
//!   a sidecar.
//! - [`lifecycle`]: room state from LiveKit's webhooks; duration and empty-room limits.
//! - [`recording`]: recordings and RTMP broadcasts sent to recorder nodes, their jobs'
//!   reports, and the catalog of finished recordings.
//! - [`analytics`]: `/auth/analytics/*`, each ended session's attendance file.
//! - [`artifacts`]: `/auth/artifact/*`, the same files as plugNmeet's artifacts.
//! - [`webhooks`]: plugNmeet's webhooks to the customer's servers, queued by the schema and
//!   delivered in order on heartbeats.
//! - [`livekit`]: LiveKit's Twirp API (delete room, write its metadata, list, remove and mute
//!   participants).
//! - [`db`]: the schema and every SQL statement.
//! - `native` (not on wasm32): the traits over rusqlite and the system clock, for tests,
//!   benchmarks and native tools.

pub mod analytics;
pub mod artifacts;
pub mod auth;
pub mod bbb;
pub mod config;
pub mod db;
pub mod exchange;
pub mod hands;
pub mod lifecycle;
pub mod livekit;
pub mod livekit_webhooks;
pub mod locks;
pub mod metadata;
pub mod moderation;
pub mod placement;
pub mod platform;
pub mod recording;
pub mod registry;
pub mod rooms;
pub mod sessions;
pub mod sidecars;
pub mod tokens;
pub mod waiting;
pub mod web;
pub mod webhooks;
pub mod wire;

#[cfg(all(any(feature = "spin", feature = "workers"), target_arch = "wasm32"))]
pub mod logging;

#[cfg(all(feature = "spin", target_arch = "wasm32"))]
pub mod spin;

#[cfg(all(feature = "workers", target_arch = "wasm32"))]
pub mod workers;

#[cfg(not(target_arch = "wasm32"))]
pub mod native;

use http::Method;

pub use config::{ConfigError, EdgeConfig};
pub use exchange::{EdgeRequest, EdgeResponse, MAX_BODY_BYTES};
use platform::{Clock, HttpClient, Store};

/// The edge with its platform: configuration plus the store, outbound HTTP and clock it uses.
pub struct Edge<S, H, C> {
    /// The configuration in force.
    pub config: EdgeConfig,
    /// The SQL store.
    pub store: S,
    /// Outbound HTTP.
    pub http: H,
    /// Wall clock.
    pub clock: C,
}

/// The routes under `/auth/` (POST only), as in plugNmeet.
const AUTH_ROUTES: &[&str] = &[
    "/auth/room/create",
    "/auth/room/getJoinToken",
    "/auth/room/isRoomActive",
    "/auth/room/getActiveRoomInfo",
    "/auth/room/getActiveRoomsInfo",
    "/auth/room/endRoom",
    "/auth/room/fetchPastRooms",
    "/auth/room/broadcastToRoom",
    "/auth/recording/fetch",
    "/auth/recording/info",
    "/auth/recording/recordingInfo",
    "/auth/recording/delete",
    "/auth/recording/getDownloadToken",
    "/auth/recording/updateMetadata",
    "/auth/analytics/fetch",
    "/auth/analytics/getDownloadToken",
    "/auth/analytics/delete",
    "/auth/artifact/fetch",
    "/auth/artifact/info",
    "/auth/artifact/getDownloadToken",
    "/auth/artifact/delete",
    "/auth/getClientFiles",
];

/// The page's calls under `/api/` (POST only).
const PAGE_API_CALLS: &[&str] = &[
    "session",
    "renewToken",
    "endRoom",
    "waitingRoom/users",
    "waitingRoom/approveUsers",
    "waitingRoom/rejectUsers",
    "waitingRoom/updateMsg",
    "removeParticipant",
    "muteUnmuteTrack",
    "raiseHand",
    "updateLockSettings",
    "recording",
];

impl<S: Store, H: HttpClient, C: Clock> Edge<S, H, C> {
    /// Answers one request.
    pub async fn handle(&self, request: EdgeRequest) -> EdgeResponse {
        let path = request.path.as_str();
        if path == "/healthCheck" {
            return self.health().await;
        }
        // First: a BBB path's API key could be `api`.
        if let Some((api_key, call)) = bbb::route(path) {
            return bbb::handle(self, &request, api_key, call).await;
        }
        if path.starts_with("/api/") {
            // The page's API, called from the edge's own page or a CMS plugin's (see `web`).
            if request.method == Method::OPTIONS {
                return web::preflight();
            }
            return web::allow_any_origin(self.page_api(&request).await);
        }
        if path.starts_with(recording::downloads::DOWNLOAD_PREFIX) {
            if request.method != Method::GET && request.method != Method::HEAD {
                return method_not_allowed();
            }
            return recording::downloads::download(self, &request).await;
        }
        if let Some(prefix) = [
            analytics::DOWNLOAD_PREFIX,
            analytics::ARTIFACT_DOWNLOAD_PREFIX,
        ]
        .into_iter()
        .find(|prefix| path.starts_with(prefix))
        {
            if request.method != Method::GET && request.method != Method::HEAD {
                return method_not_allowed();
            }
            return analytics::download(self, &request, prefix).await;
        }
        if path.starts_with(recording::downloads::PLAYBACK_PREFIX) {
            if request.method != Method::GET && request.method != Method::HEAD {
                return method_not_allowed();
            }
            return recording::downloads::playback(self, &request).await;
        }
        if path == "/internal/recorder/events" {
            if request.method != Method::POST {
                return method_not_allowed();
            }
            if request.body_exceeds(MAX_BODY_BYTES) {
                return EdgeResponse::text(413, "Payload Too Large");
            }
            return recording::reports::handle(self, &request).await;
        }
        if path.starts_with(livekit_webhooks::PREFIX) {
            if request.method != Method::POST {
                return method_not_allowed();
            }
            return livekit_webhooks::handle(self, &request).await;
        }
        if path.starts_with("/internal/sidecar/") {
            if request.method != Method::POST {
                return method_not_allowed();
            }
            if request.body_exceeds(MAX_BODY_BYTES) {
                return EdgeResponse::text(413, "Payload Too Large");
            }
            return sidecars::handle(self, &request).await;
        }
        if !AUTH_ROUTES.contains(&path) {
            return EdgeResponse::text(404, "Not Found");
        }
        if request.method != Method::POST {
            return method_not_allowed();
        }
        if request.body_exceeds(MAX_BODY_BYTES) {
            return EdgeResponse::body_over(MAX_BODY_BYTES);
        }
        if let Err(response) = auth::authenticate(&self.config, &request) {
            return response;
        }
        let body = request.body.as_slice();
        match path {
            "/auth/room/create" => rooms::create::handle(self, body).await,
            "/auth/room/getJoinToken" => rooms::join::handle(self, body).await,
            "/auth/room/isRoomActive" => rooms::status::is_room_active(self, body).await,
            "/auth/room/getActiveRoomInfo" => rooms::status::get_active_room_info(self, body).await,
            "/auth/room/getActiveRoomsInfo" => rooms::status::get_active_rooms_info(self).await,
            "/auth/room/endRoom" => rooms::end::handle(self, body).await,
            "/auth/room/fetchPastRooms" => rooms::past::handle(self, body).await,
            "/auth/room/broadcastToRoom" => rooms::broadcast::handle(self, body).await,
            "/auth/recording/fetch" => recording::catalog::fetch(self, body).await,
            "/auth/analytics/fetch" => analytics::fetch(self, body).await,
            "/auth/analytics/getDownloadToken" => {
                analytics::get_download_token(self, body, analytics::Api::Analytics).await
            }
            "/auth/analytics/delete" => {
                analytics::delete(self, body, analytics::Api::Analytics).await
            }
            "/auth/artifact/fetch" => artifacts::fetch(self, body).await,
            "/auth/artifact/info" => artifacts::info(self, body).await,
            "/auth/artifact/getDownloadToken" => {
                analytics::get_download_token(self, body, analytics::Api::Artifact).await
            }
            "/auth/artifact/delete" => {
                analytics::delete(self, body, analytics::Api::Artifact).await
            }
            "/auth/recording/info" | "/auth/recording/recordingInfo" => {
                recording::catalog::info(self, body).await
            }
            "/auth/recording/delete" => recording::catalog::delete(self, body).await,
            "/auth/recording/updateMetadata" => {
                recording::catalog::update_metadata(self, body).await
            }
            "/auth/recording/getDownloadToken" => {
                recording::downloads::get_download_token(self, body).await
            }
            "/auth/getClientFiles" => web::client_files(),
            _ => EdgeResponse::text(404, "Not Found"),
        }
    }

    /// The page's API under `/api/` (POST only): the join token in `Authorization`, JSON in and
    /// out.
    async fn page_api(&self, request: &EdgeRequest) -> EdgeResponse {
        let call = request.path.strip_prefix("/api/").unwrap_or_default();
        if !PAGE_API_CALLS.contains(&call) {
            return EdgeResponse::text(404, "Not Found");
        }
        if request.method != Method::POST {
            return method_not_allowed();
        }
        match call {
            "session" => sessions::handle(self, request).await,
            "renewToken" => sessions::renew_token(self, request).await,
            "endRoom" => sessions::end_room(self, request).await,
            "waitingRoom/users" => waiting::users(self, request).await,
            "waitingRoom/approveUsers" => waiting::approve(self, request).await,
            "waitingRoom/rejectUsers" => waiting::reject(self, request).await,
            "waitingRoom/updateMsg" => waiting::update_message(self, request).await,
            "removeParticipant" => moderation::remove(self, request).await,
            "muteUnmuteTrack" => moderation::mute(self, request).await,
            "raiseHand" => hands::raise(self, request).await,
            "updateLockSettings" => locks::update(self, request).await,
            "recording" => recording::dispatch::handle(self, request).await,
            _ => EdgeResponse::text(404, "Not Found"),
        }
    }

    /// `/healthCheck`: 200 `Healthy`, or 503 `Unhealthy` (the store's error goes to the log, not
    /// to an unauthenticated caller: it may name tables and paths).
    async fn health(&self) -> EdgeResponse {
        match db::ping(&self.store).await {
            Ok(()) => EdgeResponse::text(200, "Healthy"),
            Err(e) => {
                tracing::error!(error = %e, "health check: the store failed");
                EdgeResponse::text(503, "Unhealthy: the database is unavailable")
            }
        }
    }

    /// The platform clock in Unix seconds.
    pub fn now_secs(&self) -> i64 {
        self.clock.now_ms().div_euclid(1000)
    }

    /// The configured region session `room` (as read) runs its media in; none before anyone
    /// joined it (nobody is on a media server), or when that region is no longer configured.
    pub fn media_region(&self, room: &db::RoomRow) -> Option<&config::Region> {
        room.region.as_deref().and_then(|id| self.config.region(id))
    }

    /// `region`'s LiveKit server API, called over this edge's outbound HTTP and signed now.
    pub fn livekit<'a>(&'a self, region: &'a config::Region) -> livekit::LiveKitApi<'a, H> {
        livekit::LiveKitApi::new(
            &self.http,
            region,
            u64::try_from(self.now_secs()).unwrap_or(0),
        )
    }
}

fn method_not_allowed() -> EdgeResponse {
    EdgeResponse::text(405, "Method Not Allowed")
}

/// A new random id (UUID v4), for session ids and metadata versions.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new end-to-end encryption key for a room: 32 lowercase hex characters holding 122 random
/// bits from the platform's cryptographic random source (a UUID v4's, written without dashes;
/// kept apart from [`new_id`] so ids can change form without weakening keys).
pub fn new_room_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The answer when the configuration cannot be loaded: names the problem, never a value.
pub fn misconfigured(error: &ConfigError) -> EdgeResponse {
    tracing::error!(%error, "edge configuration invalid");
    EdgeResponse::text(500, &format!("edge is misconfigured: {error}"))
}
