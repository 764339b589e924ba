//! plugNmeet's analytics calls, HMAC-signed like the room calls: `/auth/analytics/fetch` (paged,
//! filtered by rooms), `/auth/analytics/getDownloadToken` and `/auth/analytics/delete`, and the
//! browser's `GET /download/analytics/<token>`. plugNmeet's CMS plugins list and offer these
//! files as each meeting's attendance.
//!
//! A file is written by the schema in the statement that ends its session
//! (`migrations/0020_session_analytics.sql`): plugNmeet's `AnalyticsResult` with the room and
//! each visible user's joins and leaves (the session's first 2,000), which the edge knows from
//! LiveKit's webhooks. The
//! events plugNmeet's own client reports (talking, chat, polls, raised hands) are not in it. It
//! is kept in the edge's store, so a download is the store's answer, not a redirect. The
//! download token is a JWT of its own kind (`tokens::Download::Analytics`), valid for
//! `download_token_validity_secs` like a recording's. Errors of the download route are plain
//! text: 401 invalid or expired token, 404 no such file.

use serde::{Deserialize, Serialize};

use crate::db::analytics::{self as db, AnalyticsFile};
use crate::exchange::{EdgeRequest, EdgeResponse};
use crate::platform::{Clock, HttpClient, Store};
use crate::recording::downloads::{token_answer, verified_download};
use crate::rooms::{bad_input, internal, invalid, is_plain_id, listing_answer, Page};
use crate::tokens::Download;
use crate::wire::{int64_string, parse_input, Common, StatusCode};
use crate::Edge;

/// The download route's path prefix.
pub const DOWNLOAD_PREFIX: &str = "/download/analytics/";

/// Most room ids one filter may name (D1 takes 100 bound parameters).
const MAX_ROOM_IDS: usize = 100;

/// plugNmeet's `AnalyticsInfo`.
#[derive(Serialize)]
struct AnalyticsInfo {
    room_id: String,
    file_id: String,
    file_name: String,
    /// Bytes, as plugNmeet's artifacts count them.
    file_size: f64,
    #[serde(serialize_with = "int64_string")]
    creation_time: i64,
}

impl From<&AnalyticsFile> for AnalyticsInfo {
    fn from(file: &AnalyticsFile) -> Self {
        AnalyticsInfo {
            room_id: file.room_id.clone(),
            file_id: file.file_id.clone(),
            file_name: file_name(&file.file_id),
            file_size: file.bytes as f64,
            creation_time: file.created_at,
        }
    }
}

/// The name a file is listed and downloaded under.
fn file_name(file_id: &str) -> String {
    format!("{file_id}.json")
}

#[derive(Serialize)]
struct FetchResult {
    #[serde(serialize_with = "int64_string")]
    total_analytics: i64,
    from: u32,
    limit: u32,
    order_by: String,
    analytics_list: Vec<AnalyticsInfo>,
}

/// Handles `POST /auth/analytics/fetch`.
pub async fn fetch<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    let (req, page) = match Page::requested(body, MAX_ROOM_IDS) {
        Ok(asked) => asked,
        Err(response) => return response,
    };
    let (total, files) = match db::analytics_page(&edge.store, &page.of(&req.room_ids)).await {
        Ok(found) => found,
        Err(e) => return internal(e),
    };
    let result = (!files.is_empty()).then(|| FetchResult {
        total_analytics: total,
        from: page.from,
        limit: page.limit,
        order_by: page.order_by().into(),
        analytics_list: files.iter().map(AnalyticsInfo::from).collect(),
    });
    listing_answer(result, "no analytics found")
}

/// The `file_id` a call names, checked (an id the schema could have written).
fn requested_file(body: &[u8]) -> Result<String, EdgeResponse> {
    #[derive(Deserialize)]
    struct FileIdReq {
        #[serde(default)]
        file_id: String,
    }
    let req: FileIdReq = parse_input(body).map_err(bad_input)?;
    let id = req.file_id;
    if id.len() > 128 || !is_plain_id(&id) {
        return Err(invalid("file_id: 1 to 128 of [A-Za-z0-9_-]"));
    }
    Ok(id)
}

/// Handles `POST /auth/analytics/getDownloadToken`.
pub async fn get_download_token<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    let file_id = match requested_file(body) {
        Ok(id) => id,
        Err(response) => return response,
    };
    match db::analytics_exists(&edge.store, &file_id).await {
        Ok(exists) => token_answer(
            edge,
            Download::Analytics,
            Some(file_id.as_str())
                .filter(|_| exists)
                .ok_or("analytics not found"),
        ),
        Err(e) => internal(e),
    }
}

/// Handles `POST /auth/analytics/delete`.
pub async fn delete<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    let file_id = match requested_file(body) {
        Ok(id) => id,
        Err(response) => return response,
    };
    match db::delete_analytics(&edge.store, &file_id).await {
        Ok(true) => EdgeResponse::common(200, Common::ok("success")),
        Ok(false) => EdgeResponse::common(
            200,
            Common::fail(StatusCode::NotFound, "analytics not found"),
        ),
        Err(e) => internal(e),
    }
}

/// Handles `GET` and `HEAD /download/analytics/<token>`: the file, as an attachment.
pub async fn download<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
) -> EdgeResponse {
    let file_id = match verified_download(edge, Download::Analytics, request, DOWNLOAD_PREFIX) {
        Ok((file_id, _)) => file_id,
        Err(refused) => return refused,
    };
    let body = match db::analytics_body(&edge.store, &file_id).await {
        Ok(Some(body)) => body,
        Ok(None) => return EdgeResponse::text(404, "analytics not found"),
        Err(e) => {
            tracing::error!(error = %e, "store failure on an analytics download");
            return EdgeResponse::text(503, "the analytics store is unavailable");
        }
    };
    EdgeResponse {
        status: 200,
        headers: vec![
            ("content-type", "application/json".into()),
            (
                "content-disposition",
                format!("attachment; filename=\"{}\"", file_name(&file_id)),
            ),
            ("cache-control", "no-store".into()),
            ("x-content-type-options", "nosniff".into()),
        ],
        // The server leaves the body out of a HEAD answer, its length in.
        body: body.into_bytes(),
    }
}
