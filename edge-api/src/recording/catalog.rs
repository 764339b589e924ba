//! plugNmeet's recording catalog calls, HMAC-signed like the room calls:
//! `/auth/recording/fetch` (paged, filtered by rooms and session), `/auth/recording/info`
//! (alias `/auth/recording/recordingInfo`: one recording with its session as a past room) and
//! `/auth/recording/delete` (the file on its node, then the catalog entry), and
//! `/auth/recording/updateMetadata` (the backend's title, description, subtitles and extra data
//! for a recording, which fetch and info then show).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::nodes::NodeApi;
use crate::db::recordings::{self as db, MetadataUpdate, RecordingRow};
use crate::exchange::EdgeResponse;
use crate::platform::{Clock, HttpClient, Store};
use crate::rooms::past::PastRoomInfo;
use crate::rooms::{bad_input, internal, invalid, listing_answer, Page};
use crate::wire::{int64_string, parse_input, Common, StatusCode};
use crate::Edge;

/// Most room ids one filter may name (with `room_sid`, 100 bound parameters: D1's cap).
const MAX_ROOM_IDS: usize = 99;
/// Bytes in plugNmeet's file-size unit (sizes are reported in MB).
const BYTES_PER_MB: f64 = 1_000_000.0;

/// A file's size as plugNmeet reports it: megabytes, two decimals.
pub fn megabytes(bytes: i64) -> f64 {
    (bytes as f64 / BYTES_PER_MB * 100.0).round() / 100.0
}

/// plugNmeet's `RecordingInfo`.
#[derive(Serialize)]
struct RecordingInfo {
    record_id: String,
    room_id: String,
    room_sid: String,
    file_path: String,
    /// Megabytes, to two decimals.
    file_size: f64,
    #[serde(serialize_with = "int64_string")]
    creation_time: i64,
    #[serde(serialize_with = "int64_string")]
    room_creation_time: i64,
    /// Omitted until the backend sets some (plugNmeet's `optional`).
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<RecordingMetadata>,
}

/// plugNmeet's `RecordingMetadata`, as stored and as shown (the maps always written, the unset
/// texts not, as protojson writes an `optional` field).
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct RecordingMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// By language, e.g. `{"en": {"label": "English", "url": "..."}}`.
    #[serde(default)]
    subtitles: BTreeMap<String, Subtitle>,
    #[serde(default)]
    extra_data: BTreeMap<String, String>,
}

/// plugNmeet's `RecordingSubtitle`.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Subtitle {
    #[serde(default)]
    label: String,
    #[serde(default)]
    url: String,
}

/// The stored metadata as shown; a row that does not read is logged and left out.
fn shown_metadata(record_id: &str, stored: Option<&str>) -> Option<RecordingMetadata> {
    let stored = stored?;
    match serde_json::from_str(stored) {
        Ok(metadata) => Some(metadata),
        Err(e) => {
            tracing::error!(%record_id, error = %e, "stored recording metadata does not read");
            None
        }
    }
}

impl From<&RecordingRow> for RecordingInfo {
    fn from(row: &RecordingRow) -> Self {
        RecordingInfo {
            record_id: row.record_id.clone(),
            room_id: row.room_id.clone(),
            room_sid: row.room_sid.clone(),
            file_path: row.file_path.clone(),
            file_size: megabytes(row.file_bytes),
            creation_time: row.created_at,
            room_creation_time: row.room_created_at,
            metadata: shown_metadata(&row.record_id, row.metadata.as_deref()),
        }
    }
}

#[derive(Serialize)]
struct FetchResult {
    #[serde(serialize_with = "int64_string")]
    total_recordings: i64,
    from: u32,
    limit: u32,
    order_by: String,
    recordings_list: Vec<RecordingInfo>,
}

/// Handles `POST /auth/recording/fetch`.
pub async fn fetch<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    let (req, page) = match Page::requested_with_session(body, MAX_ROOM_IDS) {
        Ok(asked) => asked,
        Err(response) => return response,
    };
    let query = page.of_session(&req);
    let (total, rows) = match db::recordings_page(&edge.store, &query).await {
        Ok(found) => found,
        Err(e) => return internal(e),
    };
    let result = (!rows.is_empty()).then(|| FetchResult {
        total_recordings: total,
        from: page.from,
        limit: page.limit,
        order_by: page.order_by().into(),
        recordings_list: rows.iter().map(RecordingInfo::from).collect(),
    });
    listing_answer(result, "no recordings found")
}

/// The recording a `{record_id}` request (info, delete, getDownloadToken) names, `None` when
/// the catalog has none by that id; `Err` is the answer to send (bad input, a store failure).
pub(crate) async fn requested_recording<S: Store, H, C>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> Result<Option<RecordingRow>, EdgeResponse> {
    #[derive(Deserialize)]
    struct RecordIdReq {
        record_id: String,
    }
    let req: RecordIdReq = parse_input(body).map_err(bad_input)?;
    if !super::is_node_id(&req.record_id) {
        return Err(invalid("record_id: 1 to 64 of [A-Za-z0-9_-]"));
    }
    db::recording(&edge.store, &req.record_id)
        .await
        .map_err(internal)
}

#[derive(Serialize)]
struct InfoRes {
    recording_info: Option<RecordingInfo>,
    room_info: Option<PastRoomInfo>,
}

/// Handles `POST /auth/recording/info` and its alias `/auth/recording/recordingInfo`.
pub async fn info<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    let row = match requested_recording(edge, body).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return EdgeResponse::reply(
                Common::fail(StatusCode::NotFound, "recording not found"),
                InfoRes {
                    recording_info: None,
                    room_info: None,
                },
            )
        }
        Err(response) => return response,
    };
    let room = match crate::db::room_by_sid(&edge.store, &row.room_sid).await {
        Ok(room) => room,
        Err(e) => return internal(e),
    };
    EdgeResponse::reply(
        Common::ok("success"),
        InfoRes {
            recording_info: Some(RecordingInfo::from(&row)),
            room_info: room.as_ref().map(PastRoomInfo::plain),
        },
    )
}

/// Handles `POST /auth/recording/delete`: the node that holds the recording deletes it, then it
/// leaves the catalog. If the node cannot be asked, the entry stays (the file would otherwise
/// be left behind with nothing pointing at it) and the call can be made again.
pub async fn delete<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    let row = match requested_recording(edge, body).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return EdgeResponse::common(
                200,
                Common::fail(StatusCode::NotFound, "recording not found"),
            )
        }
        Err(response) => return response,
    };
    let unavailable =
        |msg: &str| EdgeResponse::common(200, Common::fail(StatusCode::InternalServerError, msg));
    let Some(node) = edge.config.recorders.node(&row.recorder_id) else {
        return unavailable("the recorder holding this recording is not configured");
    };
    match NodeApi::new(&edge.http, node).delete(&row.record_id).await {
        // Also when the node keeps nothing of it any more (deleted already). Any refusal, a
        // 404 included (a node without the route, a proxy), keeps the entry.
        Ok(()) => {}
        Err(e) => {
            tracing::warn!(record_id = %row.record_id, recorder = %node.id, error = %e, "recording delete not done");
            return unavailable(
                "the recorder holding this recording could not delete it; try again",
            );
        }
    }
    if let Err(e) = db::delete_recording(&edge.store, &row.record_id).await {
        return internal(e);
    }
    tracing::info!(record_id = %row.record_id, recorder = %node.id, "recording deleted");
    EdgeResponse::common(200, Common::ok("success"))
}

/// Longest subtitle language or extra-data key taken.
const MAX_METADATA_KEY_LEN: usize = 128;
/// Most subtitles, and most extra-data entries, one change names (far more than fit in the
/// stored 16 KiB; it bounds the work of the patch).
const MAX_METADATA_KEYS: usize = 256;

/// `/auth/recording/updateMetadata`'s request: plugNmeet's `UpdateRecordingMetadataReq`.
#[derive(Deserialize)]
struct UpdateMetadataReq {
    #[serde(default)]
    record_id: String,
    #[serde(default)]
    metadata: Option<MetadataChange>,
}

/// What to change, as plugNmeet reads it: a text given replaces the stored one, `""` clears it,
/// absent (or `null`) keeps it; a subtitle given with its label and URL is set, one without
/// either (or `null`) removed; an extra-data value is set, `""` removes it. What is not named
/// stays.
#[derive(Deserialize)]
struct MetadataChange {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    subtitles: BTreeMap<String, Option<SubtitleChange>>,
    #[serde(default)]
    extra_data: BTreeMap<String, String>,
}

/// A subtitle as a change names it (`null` members read as empty, as protojson reads them).
#[derive(Deserialize)]
struct SubtitleChange {
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

/// A merge patch, and whether it sets anything (one that only removes creates no metadata).
struct MergePatch {
    patch: Map<String, Value>,
    sets_values: bool,
}

impl MetadataChange {
    /// The change as a JSON merge patch (RFC 7396: `null` removes), or the answer refusing it.
    fn merge_patch(self) -> Result<MergePatch, EdgeResponse> {
        let text = |v: String| {
            if v.is_empty() {
                Value::Null
            } else {
                Value::String(v)
            }
        };
        let mut patch = Map::new();
        if let Some(title) = self.title {
            patch.insert("title".into(), text(title));
        }
        if let Some(description) = self.description {
            patch.insert("description".into(), text(description));
        }
        if self.subtitles.len() > MAX_METADATA_KEYS || self.extra_data.len() > MAX_METADATA_KEYS {
            return Err(invalid(format!(
                "metadata: at most {MAX_METADATA_KEYS} subtitles and {MAX_METADATA_KEYS} extra_data entries a change"
            )));
        }
        let key_ok = |k: &str| !k.is_empty() && k.len() <= MAX_METADATA_KEY_LEN;
        if let Some(bad) = self.subtitles.keys().find(|k| !key_ok(k)) {
            return Err(invalid(format!(
                "subtitles: key `{}` must be 1 to {MAX_METADATA_KEY_LEN} bytes",
                bad.chars().take(16).collect::<String>()
            )));
        }
        if let Some(bad) = self.extra_data.keys().find(|k| !key_ok(k)) {
            return Err(invalid(format!(
                "extra_data: key `{}` must be 1 to {MAX_METADATA_KEY_LEN} bytes",
                bad.chars().take(16).collect::<String>()
            )));
        }
        if !self.subtitles.is_empty() {
            let subtitles = self
                .subtitles
                .into_iter()
                .map(|(lang, subtitle)| {
                    let value = match subtitle {
                        Some(SubtitleChange {
                            label: Some(label),
                            url: Some(url),
                        }) if !label.is_empty() && !url.is_empty() => {
                            serde_json::json!({"label": label, "url": url})
                        }
                        _ => Value::Null,
                    };
                    (lang, value)
                })
                .collect();
            patch.insert("subtitles".into(), Value::Object(subtitles));
        }
        if !self.extra_data.is_empty() {
            let extra = self
                .extra_data
                .into_iter()
                .map(|(k, v)| (k, text(v)))
                .collect();
            patch.insert("extra_data".into(), Value::Object(extra));
        }
        let sets_values = patch.values().any(|v| match v {
            Value::Object(members) => members.values().any(|m| !m.is_null()),
            other => !other.is_null(),
        });
        Ok(MergePatch { patch, sets_values })
    }
}

/// Handles `POST /auth/recording/updateMetadata`: patches what the backend says about a
/// recording (which starts with its meeting's title and times, as plugNmeet's does), in one
/// statement (two backends at once lose neither's change). The stored metadata stays under
/// 16 KiB of JSON: a change past that is refused and changes nothing.
pub async fn update_metadata<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    let req: UpdateMetadataReq = match parse_input(body) {
        Ok(r) => r,
        Err(e) => return bad_input(e),
    };
    if !super::is_node_id(&req.record_id) {
        return invalid("record_id: 1 to 64 of [A-Za-z0-9_-]");
    }
    let not_found = || {
        EdgeResponse::common(
            200,
            Common::fail(StatusCode::NotFound, "recording not found"),
        )
    };
    let MergePatch { patch, sets_values } = match req.metadata.map(MetadataChange::merge_patch) {
        Some(Ok(patch)) => patch,
        Some(Err(response)) => return response,
        None => MergePatch {
            patch: Map::new(),
            sets_values: false,
        },
    };
    // Nothing to change: plugNmeet answers success for a recording it has.
    if patch.is_empty() {
        return match db::recording(&edge.store, &req.record_id).await {
            Ok(Some(_)) => EdgeResponse::common(200, Common::ok("success")),
            Ok(None) => not_found(),
            Err(e) => internal(e),
        };
    }
    let patch = Value::Object(patch).to_string();
    match db::patch_recording_metadata(&edge.store, &req.record_id, &patch, sets_values).await {
        Ok(MetadataUpdate::Updated(_)) => {
            tracing::info!(record_id = %req.record_id, "recording metadata updated");
            EdgeResponse::common(200, Common::ok("success"))
        }
        Ok(MetadataUpdate::NotFound) => not_found(),
        Ok(MetadataUpdate::TooLarge) => invalid(format!(
            "metadata: over {} bytes with this change; nothing was changed",
            db::MAX_METADATA_BYTES
        )),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes_as_plugnmeet_writes_them() {
        let row = RecordingRow {
            record_id: "r".into(),
            room_id: "room".into(),
            room_sid: "sid".into(),
            recorder_id: "rec".into(),
            file_path: "r.mp4".into(),
            file_bytes: 12_345_678,
            created_at: 1,
            room_created_at: 0,
            metadata: None,
        };
        assert_eq!(RecordingInfo::from(&row).file_size, 12.35);
    }
}
