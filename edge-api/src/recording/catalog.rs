//! plugNmeet's recording catalog calls, HMAC-signed like the room calls:
//! `/auth/recording/fetch` (paged, filtered by rooms and session), `/auth/recording/info`
//! (alias `/auth/recording/recordingInfo`: one recording with its session as a past room) and
//! `/auth/recording/delete` (the file on its node, then the catalog entry).

use serde::{Deserialize, Serialize};

use super::nodes::NodeApi;
use crate::db::recordings::{self as db, RecordingRow, RecordingsQuery};
use crate::exchange::EdgeResponse;
use crate::platform::{Clock, HttpClient, Store};
use crate::rooms::past::PastRoomInfo;
use crate::rooms::{bad_input, internal, invalid, Page};
use crate::wire::{int64_string, lenient_int, parse_input, Common, StatusCode};
use crate::Edge;

/// Most room ids one filter may name (with `room_sid`, 100 bound parameters: D1's cap).
const MAX_ROOM_IDS: usize = 99;
/// Bytes in plugNmeet's file-size unit (sizes are reported in MB).
const BYTES_PER_MB: f64 = 1_000_000.0;

/// A file's size as plugNmeet reports it: megabytes, two decimals.
pub fn megabytes(bytes: i64) -> f64 {
    (bytes as f64 / BYTES_PER_MB * 100.0).round() / 100.0
}

#[derive(Deserialize)]
struct FetchReq {
    #[serde(default)]
    room_ids: Vec<String>,
    #[serde(default)]
    room_sid: Option<String>,
    #[serde(default, deserialize_with = "lenient_int")]
    from: Option<u32>,
    #[serde(default, deserialize_with = "lenient_int")]
    limit: Option<u32>,
    #[serde(default)]
    order_by: String,
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

#[derive(Serialize)]
struct FetchRes {
    result: Option<FetchResult>,
}

/// Handles `POST /auth/recording/fetch`.
pub async fn fetch<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    let mut req: FetchReq = match parse_input(body) {
        Ok(r) => r,
        Err(e) => return bad_input(e),
    };
    let page = match Page::read(
        &mut req.room_ids,
        MAX_ROOM_IDS,
        req.from,
        req.limit,
        &req.order_by,
    ) {
        Ok(page) => page,
        Err(response) => return response,
    };
    let room_sid = req.room_sid.as_deref().filter(|sid| !sid.is_empty());
    if room_sid.is_some_and(|sid| sid.len() > 64) {
        return invalid("room_sid: at most 64 characters");
    }
    let query = RecordingsQuery {
        room_ids: &req.room_ids,
        room_sid,
        from: page.from,
        limit: page.limit,
        descending: page.descending,
    };
    let (total, rows) = match db::recordings_page(&edge.store, &query).await {
        Ok(found) => found,
        Err(e) => return internal(e),
    };
    if rows.is_empty() {
        return EdgeResponse::reply(
            Common::fail(StatusCode::NotFound, "no recordings found"),
            FetchRes { result: None },
        );
    }
    EdgeResponse::reply(
        Common::ok("success"),
        FetchRes {
            result: Some(FetchResult {
                total_recordings: total,
                from: page.from,
                limit: page.limit,
                order_by: page.order_by().into(),
                recordings_list: rows.iter().map(RecordingInfo::from).collect(),
            }),
        },
    )
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
            // plugNmeet writes this one's times as `2006-01-02 15:04:05`.
            room_info: room.map(|room| PastRoomInfo::of(&room, plain_time)),
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

/// Unix seconds as `2006-01-02 15:04:05` in UTC, as plugNmeet's `recording/info` writes them.
fn plain_time(unix_secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_secs)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes_as_plugnmeet_writes_them() {
        assert_eq!(plain_time(1_700_000_000), "2023-11-14 22:13:20");
        let row = RecordingRow {
            record_id: "r".into(),
            room_id: "room".into(),
            room_sid: "sid".into(),
            recorder_id: "rec".into(),
            file_path: "r.mp4".into(),
            file_bytes: 12_345_678,
            created_at: 1,
            room_created_at: 0,
        };
        assert_eq!(RecordingInfo::from(&row).file_size, 12.35);
    }
}
