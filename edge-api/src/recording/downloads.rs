//! Downloads of finished recordings, as plugNmeet's CMS plugins ask for them:
//! `/auth/recording/getDownloadToken {record_id}` (signed) answers a token, and the user's
//! browser then opens `GET /download/recording/<token>`. The file stays on the recorder node
//! that made it (or in its bucket): the edge checks the token and redirects (307) to the node's
//! `/download/<link>` at its `public_url`, with a link of its own that names this one recording
//! and works for [`NODE_LINK_SECS`]. The node serves the file (or redirects to its bucket).
//!
//! The edge's token is a JWT under the API secret (`iss` = API key, `sub` = record id, a claim
//! that marks it a download token, `exp` = `download_token_validity_secs`, 30 minutes unless
//! configured; plugNmeet has no default). Errors of the download route are plain text, as
//! plugNmeet's: 401 invalid or expired token, 404 no such recording.
//!
//! BBB's `getRecordings` gives playback links instead, which integrations keep (Greenlight
//! stores them): `GET /playback/recording/<record_id>/<signature>`, the signature the hex
//! HMAC-SHA256 under the API secret of `edgemeet-playback\n<record_id>`. Such a link works for
//! as long as its recording exists (and the API secret is unchanged), like BBB's own, and
//! redirects as a download does.

use serde::Serialize;

use crate::db::recordings as db;
use crate::exchange::{EdgeRequest, EdgeResponse};
use crate::platform::{Clock, HttpClient, Store};
use crate::tokens::{mint_download_token, verify_download_token, Download, TokenError};
use crate::wire::{Common, StatusCode};
use crate::Edge;

/// How long the node's link works: the browser follows the redirect at once.
pub const NODE_LINK_SECS: u64 = 300;

/// The download route's path prefix.
pub const DOWNLOAD_PREFIX: &str = "/download/recording/";

/// The playback links' path prefix.
pub const PLAYBACK_PREFIX: &str = "/playback/recording/";

/// What a playback link's signature covers: a purpose, so it cannot be a body's signature.
fn playback_text(record_id: &str) -> String {
    format!("edgemeet-playback\n{record_id}")
}

/// The path of recording `record_id`'s permanent playback link.
pub fn playback_path(api_secret: &str, record_id: &str) -> String {
    let signature = edgemeet_protocol::signing::sign(
        api_secret.as_bytes(),
        playback_text(record_id).as_bytes(),
    );
    format!("{PLAYBACK_PREFIX}{record_id}/{signature}")
}

/// plugNmeet's `getDownloadToken` answer.
#[derive(Serialize)]
struct TokenRes {
    token: Option<String>,
}

/// The `getDownloadToken` answer for `kind` `id`, which exists: a token valid for
/// `download_token_validity_secs` (recordings here, analytics files in `analytics`); `None`
/// is its NOT_FOUND answer with `missing` as the message.
pub(crate) fn token_answer<S, H, C: Clock>(
    edge: &Edge<S, H, C>,
    kind: Download,
    id: Result<&str, &str>,
) -> EdgeResponse {
    let id = match id {
        Ok(id) => id,
        Err(missing) => {
            return EdgeResponse::reply(
                Common::fail(StatusCode::NotFound, missing),
                TokenRes { token: None },
            )
        }
    };
    let now = u64::try_from(edge.clock.now_ms().div_euclid(1000)).unwrap_or(0);
    match mint_download_token(
        &edge.config.api_key,
        &edge.config.api_secret,
        kind,
        id,
        now,
        edge.config.recorders.download_token_validity_secs,
    ) {
        Ok(token) => EdgeResponse::reply(Common::ok("success"), TokenRes { token: Some(token) }),
        Err(e) => {
            tracing::error!(error = %e, "download token signing failed");
            EdgeResponse::common(
                500,
                Common::fail(StatusCode::InternalServerError, "could not sign the token"),
            )
        }
    }
}

/// The id the token ending `request`'s path (after `prefix`) grants for `kind`, and the time it
/// was checked at (Unix seconds); `Err` is the plain-text 401 to answer.
pub(crate) fn verified_download<S, H, C: Clock>(
    edge: &Edge<S, H, C>,
    kind: Download,
    request: &EdgeRequest,
    prefix: &str,
) -> Result<(String, u64), EdgeResponse> {
    let token = request.path.strip_prefix(prefix).unwrap_or_default();
    let now = u64::try_from(edge.clock.now_ms().div_euclid(1000)).unwrap_or(0);
    let config = &edge.config;
    match verify_download_token(&config.api_key, &config.api_secret, kind, token, now) {
        Ok(id) => Ok((id, now)),
        Err(TokenError::Expired) => Err(EdgeResponse::text(401, "download token expired")),
        Err(_) => Err(EdgeResponse::text(401, "invalid download token")),
    }
}

/// Handles `POST /auth/recording/getDownloadToken`.
pub async fn get_download_token<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    match super::catalog::requested_recording(edge, body).await {
        Ok(row) => token_answer(
            edge,
            Download::Recording,
            row.as_ref()
                .map(|row| row.record_id.as_str())
                .ok_or("recording not found"),
        ),
        Err(response) => response,
    }
}

/// Handles `GET` and `HEAD /download/recording/<token>`.
pub async fn download<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    match verified_download(edge, Download::Recording, request, DOWNLOAD_PREFIX) {
        Ok((record_id, now)) => redirect_to_node(edge, &record_id, now).await,
        Err(refused) => refused,
    }
}

/// Handles `GET` and `HEAD /playback/recording/<record_id>/<signature>`.
pub async fn playback<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    let link = request
        .path
        .strip_prefix(PLAYBACK_PREFIX)
        .unwrap_or_default();
    let signed = link.split_once('/').filter(|(record_id, signature)| {
        edgemeet_protocol::signing::verify_signature(
            edge.config.api_secret.as_bytes(),
            playback_text(record_id).as_bytes(),
            signature,
        )
    });
    let Some((record_id, _)) = signed else {
        return EdgeResponse::text(401, "invalid playback link");
    };
    let now = u64::try_from(edge.clock.now_ms().div_euclid(1000)).unwrap_or(0);
    redirect_to_node(edge, record_id, now).await
}

/// The answer to a checked download or playback of `record_id`: a redirect to its node with a
/// link of the node's own, or why there is none.
async fn redirect_to_node<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    record_id: &str,
    now: u64,
) -> EdgeResponse {
    let config = &edge.config;
    let recording = match db::recording(&edge.store, record_id).await {
        Ok(Some(recording)) => recording,
        Ok(None) => return EdgeResponse::text(404, "recording not found"),
        Err(e) => {
            tracing::error!(error = %e, "store failure on a download");
            return EdgeResponse::text(503, "the recordings catalog is unavailable");
        }
    };
    let Some(node) = config.recorders.node(&recording.recorder_id) else {
        tracing::warn!(record_id = %record_id, recorder = %recording.recorder_id, "download of a recording whose recorder is not configured");
        return EdgeResponse::text(404, "the recorder holding this recording is not configured");
    };
    let link = edgemeet_protocol::download::mint(
        node.api_secret.as_bytes(),
        record_id,
        now + NODE_LINK_SECS,
    );
    tracing::info!(record_id = %record_id, recorder = %node.id, "recording download");
    EdgeResponse {
        status: 307,
        headers: vec![
            ("location", format!("{}/download/{link}", node.public_url)),
            ("cache-control", "no-store".into()),
            ("referrer-policy", "no-referrer".into()),
        ],
        body: Vec::new(),
    }
}
