//! plugNmeet's analytics calls, HMAC-signed like the room calls: `/auth/analytics/fetch` (paged,
//! filtered by rooms), `/auth/analytics/getDownloadToken` and `/auth/analytics/delete`, and the
//! browser's `GET /download/analytics/<token>`. plugNmeet's CMS plugins list and offer these
//! files as each meeting's attendance. plugNmeet's newer artifact API (`crate::artifacts`)
//! shows the same files as `MEETING_ANALYTICS` artifacts, under the same ids; its token and
//! delete calls are these, the id named `artifact_id`.
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
/// The artifact API's download route's path prefix.
pub const ARTIFACT_DOWNLOAD_PREFIX: &str = "/download/artifact/";

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

/// plugNmeet's `RoomArtifactFileInfo` of an analytics file, as its artifact API and its
/// `artifact_created` webhook describe one. The path is where plugNmeet would keep it (the
/// edge keeps it in its store).
#[derive(Serialize)]
pub(crate) struct ArtifactFileInfo {
    file_path: String,
    #[serde(serialize_with = "int64_string")]
    file_size: i64,
    mime_type: &'static str,
}

impl ArtifactFileInfo {
    /// The file `file_id` of room `room_id`, `bytes` long.
    pub(crate) fn of(room_id: &str, file_id: &str, bytes: i64) -> Self {
        ArtifactFileInfo {
            file_path: format!("meeting_analytics/{room_id}/{}", file_name(file_id)),
            file_size: bytes,
            mime_type: "application/json",
        }
    }
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

/// Which of plugNmeet's APIs a call about one file comes from: its analytics calls name the
/// file `file_id`, its artifact calls (`/auth/artifact/*`) name the same id `artifact_id`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/auth/analytics/*`.
    Analytics,
    /// `/auth/artifact/*`.
    Artifact,
}

impl Api {
    /// The id a call names, checked (an id the schema could have written).
    pub(crate) fn requested_id(self, body: &[u8]) -> Result<String, EdgeResponse> {
        #[derive(Deserialize)]
        struct IdReq {
            #[serde(default)]
            file_id: String,
            #[serde(default)]
            artifact_id: String,
        }
        let req: IdReq = parse_input(body).map_err(bad_input)?;
        let (field, id) = match self {
            Api::Analytics => ("file_id", req.file_id),
            Api::Artifact => ("artifact_id", req.artifact_id),
        };
        if id.len() > 128 || !is_plain_id(&id) {
            return Err(invalid(format!("{field}: 1 to 128 of [A-Za-z0-9_-]")));
        }
        Ok(id)
    }

    /// What a call about a file that does not exist is told.
    pub(crate) fn not_found(self) -> &'static str {
        match self {
            Api::Analytics => "analytics not found",
            Api::Artifact => "artifact not found",
        }
    }
}

/// Handles `POST /auth/analytics/getDownloadToken` and `/auth/artifact/getDownloadToken`.
pub async fn get_download_token<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
    api: Api,
) -> EdgeResponse {
    let file_id = match api.requested_id(body) {
        Ok(id) => id,
        Err(response) => return response,
    };
    match db::analytics_file(&edge.store, &file_id).await {
        Ok(file) => token_answer(
            edge,
            Download::Analytics,
            file.as_ref()
                .map(|file| file.file_id.as_str())
                .ok_or(api.not_found()),
        ),
        Err(e) => internal(e),
    }
}

/// Handles `POST /auth/analytics/delete` and `/auth/artifact/delete`.
pub async fn delete<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
    api: Api,
) -> EdgeResponse {
    let file_id = match api.requested_id(body) {
        Ok(id) => id,
        Err(response) => return response,
    };
    match db::delete_analytics(&edge.store, &file_id).await {
        Ok(true) => EdgeResponse::common(200, Common::ok("success")),
        Ok(false) => EdgeResponse::common(200, Common::fail(StatusCode::NotFound, api.not_found())),
        Err(e) => internal(e),
    }
}

/// Handles `GET` and `HEAD /download/analytics/<token>` and `/download/artifact/<token>` (one
/// token works on both, as in plugNmeet; `prefix` is the route's): the file, as an attachment.
pub async fn download<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
    prefix: &str,
) -> EdgeResponse {
    let file_id = match verified_download(edge, Download::Analytics, request, prefix) {
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
