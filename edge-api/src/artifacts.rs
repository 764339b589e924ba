//! plugNmeet's artifact API (`/auth/artifact/*`), which its newer SDKs and plugins use in place
//! of the analytics calls: `fetch` (paged, filtered by rooms, session and type) and `info` (one
//! artifact and its session). Its `getDownloadToken`, `delete` and the browser's
//! `GET /download/artifact/<token>` are `crate::analytics`' handlers ([`Api::Artifact`]).
//!
//! plugNmeet's artifacts are the files and usage records a session leaves: its analytics, and
//! the summaries, transcripts and AI usage of features the edge does not have. So the edge's
//! artifacts are its analytics files (`crate::analytics`), typed `MEETING_ANALYTICS`, the
//! artifact id being the file id; a filter on another type finds none.

use serde::Serialize;

use crate::analytics::{Api, ArtifactFileInfo};
use crate::db::analytics::{self as db, AnalyticsFile};
use crate::exchange::EdgeResponse;
use crate::platform::{Clock, HttpClient, Store};
use crate::rooms::past::{rfc3339, PastRoomInfo};
use crate::rooms::{internal, invalid, listing_answer, Page};
use crate::wire::{int64_string, Common, StatusCode};
use crate::Edge;

/// The artifact type of an analytics file.
pub const MEETING_ANALYTICS: &str = "MEETING_ANALYTICS";

/// plugNmeet's artifact types (`RoomArtifactType`), which a filter may name.
const TYPES: [&str; 10] = [
    "UNKNOWN_ARTIFACT",
    MEETING_ANALYTICS,
    "MEETING_SUMMARY",
    "MEETING_SUMMARY_USAGE",
    "SPEECH_TRANSCRIPTION",
    "SPEECH_TRANSCRIPTION_USAGE",
    "SYNTHESIZED_SPEECH_USAGE",
    "CHAT_TRANSLATION_USAGE",
    "AI_TEXT_CHAT_INTERACTION_USAGE",
    "AI_TEXT_CHAT_SUMMARIZATION_USAGE",
];

/// Most room ids one filter may name (with `room_sid`, 100 bound parameters: D1's cap).
const MAX_ROOM_IDS: usize = 99;

/// Whether a `type` filter (a name, or a number as text) lets analytics files through. `Err`
/// is the answer to a name plugNmeet does not have.
fn analytics_wanted(kind: Option<&str>) -> Result<bool, EdgeResponse> {
    let Some(kind) = kind else { return Ok(true) };
    // protojson takes any number for an open enum.
    let digits = kind.strip_prefix('-').unwrap_or(kind);
    let number = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    if number || TYPES.contains(&kind) {
        Ok(kind == "1" || kind == MEETING_ANALYTICS)
    } else {
        Err(invalid("type: not an artifact type"))
    }
}

/// plugNmeet's `ArtifactInfo`.
#[derive(Serialize)]
struct ArtifactInfo {
    artifact_id: String,
    room_id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    created: String,
    metadata: ArtifactMetadata,
}

/// plugNmeet's `RoomArtifactMetadata` as its API writes it: unset messages as `null`.
#[derive(Serialize)]
struct ArtifactMetadata {
    user_info: (),
    provider_job_info: (),
    file_info: ArtifactFileInfo,
}

impl From<&AnalyticsFile> for ArtifactInfo {
    fn from(file: &AnalyticsFile) -> Self {
        ArtifactInfo {
            artifact_id: file.file_id.clone(),
            room_id: file.room_id.clone(),
            kind: MEETING_ANALYTICS,
            created: rfc3339(file.created_at),
            metadata: ArtifactMetadata {
                user_info: (),
                provider_job_info: (),
                file_info: ArtifactFileInfo::of(&file.room_id, &file.file_id, file.bytes),
            },
        }
    }
}

/// plugNmeet's `FetchArtifactsResult` (its `from` and `limit` are uint64: strings).
#[derive(Serialize)]
struct FetchResult {
    #[serde(serialize_with = "int64_string")]
    total_artifacts: i64,
    from: String,
    limit: String,
    order_by: &'static str,
    /// Echoed when the call named one.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    artifacts_list: Vec<ArtifactInfo>,
}

/// Handles `POST /auth/artifact/fetch`.
pub async fn fetch<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    const NONE_FOUND: &str = "no artifact found";
    let (req, page) = match Page::requested_with_session(body, MAX_ROOM_IDS) {
        Ok(asked) => asked,
        Err(response) => return response,
    };
    let query = page.of_session(&req);
    match analytics_wanted(req.artifact_type.as_deref()) {
        Ok(true) => {}
        Ok(false) => return listing_answer(None::<FetchResult>, NONE_FOUND),
        Err(response) => return response,
    }
    let (total, files) = match db::analytics_page(&edge.store, &query).await {
        Ok(found) => found,
        Err(e) => return internal(e),
    };
    // As plugNmeet: a page past the end is an empty list, none at all is NOT_FOUND.
    let result = (total > 0).then(|| FetchResult {
        total_artifacts: total,
        from: page.from.to_string(),
        limit: page.limit.to_string(),
        order_by: page.order_by(),
        kind: req.artifact_type.as_ref().map(|_| MEETING_ANALYTICS),
        artifacts_list: files.iter().map(ArtifactInfo::from).collect(),
    });
    listing_answer(result, NONE_FOUND)
}

#[derive(Serialize)]
struct InfoRes {
    artifact_info: ArtifactInfo,
    /// Its session, times written `2006-01-02 15:04:05` as plugNmeet writes them here
    /// (plugNmeet's `optional`: left out when the session is gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    room_info: Option<PastRoomInfo>,
}

/// Handles `POST /auth/artifact/info`.
pub async fn info<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    let id = match Api::Artifact.requested_id(body) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let file = match db::analytics_file(&edge.store, &id).await {
        Ok(Some(file)) => file,
        Ok(None) => {
            let missing = Common::fail(StatusCode::NotFound, Api::Artifact.not_found());
            return EdgeResponse::common(200, missing);
        }
        Err(e) => return internal(e),
    };
    let room = match crate::db::room_by_sid(&edge.store, &file.room_sid).await {
        Ok(room) => room,
        Err(e) => return internal(e),
    };
    EdgeResponse::reply(
        Common::ok("success"),
        InfoRes {
            artifact_info: ArtifactInfo::from(&file),
            room_info: room.as_ref().map(PastRoomInfo::plain),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_filter_is_read_as_protojson_reads_an_enum() {
        assert!(matches!(analytics_wanted(None), Ok(true)));
        assert!(matches!(
            analytics_wanted(Some("MEETING_ANALYTICS")),
            Ok(true)
        ));
        assert!(matches!(analytics_wanted(Some("1")), Ok(true)));
        assert!(matches!(
            analytics_wanted(Some("MEETING_SUMMARY")),
            Ok(false)
        ));
        assert!(matches!(analytics_wanted(Some("0")), Ok(false)));
        assert!(matches!(analytics_wanted(Some("42")), Ok(false)));
        assert!(matches!(analytics_wanted(Some("-3")), Ok(false)));
        assert!(analytics_wanted(Some("meeting_analytics")).is_err());
        assert!(analytics_wanted(Some("")).is_err());
        assert!(analytics_wanted(Some("-")).is_err());
        assert!(analytics_wanted(Some("1-2")).is_err());
    }
}
