//! BBB's recording calls over the edge's recording catalog: `getRecordings` (each with a
//! permanent playback link that redirects as a download does), `deleteRecordings`, `updateRecordings` (meta
//! parameters into the recording's metadata) and `publishRecordings` (every recording is
//! published; unpublishing is refused rather than pretended).

use serde_json::{json, Value};

use super::xml::{self, Xml};
use super::{meeting_meta, outcome, public_origin, room_id_of, store_failure, Call, Refusal};
use crate::db::bbb as bbb_store;
use crate::db::recordings::{self as store, RecordingRow};
use crate::db::ListingQuery;
use crate::exchange::{EdgeRequest, EdgeResponse};
use crate::platform::{Clock, HttpClient, Store};
use crate::recording::{catalog, downloads::playback_path};
use crate::Edge;

/// Most recordings `getRecordings` and `publishRecordings` name (read in one statement), and
/// most meetings (one bound parameter each, within D1's 100).
const MAX_LISTED: usize = 99;
/// Most recordings `deleteRecordings` and `updateRecordings` name: each is a few statements and,
/// to delete, a call to its node, and a request must stay cheap.
const MAX_CHANGED: usize = 10;
/// Largest page, also when neither `offset` nor `limit` is given (BBB then lists everything).
const MAX_LIMIT: u32 = 100;

/// A comma-separated list parameter, without empty items or repeats; `Err` when it names more
/// than `max`, or a recording id that cannot be one.
fn list<'c>(call: &'c Call<'_>, key: &str, max: usize) -> Result<Vec<&'c str>, EdgeResponse> {
    let mut items: Vec<&str> = Vec::new();
    for item in call.text(key).split(',').filter(|s| !s.is_empty()) {
        if !items.contains(&item) {
            items.push(item);
        }
    }
    if items.len() > max {
        return Err(xml::failed(
            "invalidParameters",
            &format!("{key}: at most {max} ids"),
        ));
    }
    if key == "recordID" && !items.iter().all(|id| crate::recording::is_node_id(id)) {
        return Err(xml::failed(
            "invalidParameters",
            "recordID: 1 to 64 of [A-Za-z0-9_-]",
        ));
    }
    Ok(items)
}

/// Recordings `ids` the catalog has, in one statement; `Err` is the answer when one is missing.
async fn existing<S: Store, H, C>(
    edge: &Edge<S, H, C>,
    ids: &[&str],
) -> Result<Vec<RecordingRow>, EdgeResponse> {
    let rows = store::recordings_by_ids(&edge.store, ids)
        .await
        .map_err(store_failure)?;
    match ids
        .iter()
        .find(|id| !rows.iter().any(|r| r.record_id == **id))
    {
        Some(id) => Err(xml::failed(
            "notFound",
            &format!("{id}: recording not found"),
        )),
        None => Ok(rows),
    }
}

/// Handles BBB `getRecordings`: by `recordID`s, else by `meetingID`s (else all), newest first,
/// paged by `offset` and `limit`.
pub async fn get_recordings<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
    call: &Call<'_>,
) -> EdgeResponse {
    let lists = list(call, "recordID", MAX_LISTED)
        .and_then(|records| Ok((records, list(call, "meetingID", MAX_LISTED)?)));
    let (record_ids, meeting_ids) = match lists {
        Ok(lists) => lists,
        Err(response) => return response,
    };
    let offset: u32 = call.text("offset").parse().unwrap_or(0);
    let limit = match call.text("limit").parse::<u32>() {
        Ok(n) if n > 0 => n.min(MAX_LIMIT),
        _ => MAX_LIMIT,
    };
    let (total, rows) = if record_ids.is_empty() {
        let room_ids: Vec<String> = meeting_ids.iter().map(|id| room_id_of(id)).collect();
        let query = ListingQuery {
            room_ids: &room_ids,
            room_sid: None,
            from: offset,
            limit,
            descending: true,
        };
        match store::recordings_page(&edge.store, &query).await {
            Ok(found) => found,
            Err(e) => return store_failure(e),
        }
    } else {
        match store::recordings_by_ids(&edge.store, &record_ids).await {
            Ok(rows) => (rows.len() as i64, rows),
            Err(e) => return store_failure(e),
        }
    };
    if rows.is_empty() {
        return Xml::success()
            .field("recordings", "")
            .field("messageKey", "noRecordings")
            .field("message", "There are no recordings for the meeting(s).")
            .finish();
    }
    let mut sids: Vec<&str> = rows.iter().map(|r| r.room_sid.as_str()).collect();
    sids.sort_unstable();
    sids.dedup();
    let sessions = match bbb_store::sessions(&edge.store, &sids).await {
        Ok(sessions) => sessions,
        Err(e) => return store_failure(e),
    };
    let origin = public_origin(&edge.config.public_url, request);
    let mut xml = Xml::success().open("recordings");
    for row in &rows {
        let session = sessions.iter().find(|s| s.sid == row.room_sid);
        let link = format!(
            "{origin}{}",
            playback_path(&edge.config.api_secret, &row.record_id)
        );
        xml = recording(xml, row, session, &link);
    }
    xml.close("recordings")
        .open("pagination")
        .open("pageable")
        .field("offset", offset)
        .field("limit", limit)
        .close("pageable")
        .field("totalElements", total)
        .field("empty", false)
        .close("pagination")
        .finish()
}

/// One `<recording>`: its meeting as BBB named it, its title (the backend's, else the
/// meeting's), and the meeting's `meta_*` with the recording's own extra data over them.
fn recording(
    xml: Xml,
    row: &RecordingRow,
    session: Option<&bbb_store::SessionSummary>,
    link: &str,
) -> Xml {
    let bbb = session.and_then(|s| s.meeting.as_ref());
    let stored: Value = row
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default();
    let mut meta = meeting_meta(bbb);
    if let Some(extra) = stored["extra_data"].as_object() {
        meta.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    // What updateRecordings set as the recording's title and description, where BBB keeps them.
    for (field, name) in [
        ("title", "bbb-recording-name"),
        ("description", "bbb-recording-description"),
    ] {
        if let Some(text) = stored[field].as_str() {
            meta.insert(name.into(), text.into());
        }
    }
    let name = stored["title"]
        .as_str()
        .or(session.map(|s| s.room_title.as_str()))
        .unwrap_or(&row.room_id);
    let end_ms = session
        .and_then(|s| s.ended_at)
        .map_or(0, |t| t.saturating_mul(1000));
    xml.open("recording")
        .field("recordID", &row.record_id)
        .field(
            "meetingID",
            bbb.map_or(row.room_id.as_str(), |b| b.meeting_id.as_str()),
        )
        .field("internalMeetingID", &row.room_sid)
        .field("name", name)
        .field("isBreakout", false)
        .field("published", true)
        .field("state", "published")
        .field("startTime", row.created_at.saturating_mul(1000))
        .field("endTime", end_ms)
        .field("participants", session.map_or(0, |s| s.joined_participants))
        .field("rawSize", row.file_bytes)
        .field("size", row.file_bytes)
        .metadata(meta.iter())
        .open("playback")
        .open("format")
        .field("type", "video")
        .field("url", link)
        .field("processingTime", 0)
        .field("length", 0)
        .field("size", row.file_bytes)
        .close("format")
        .close("playback")
        .close("recording")
}

/// Handles BBB `deleteRecordings`: when every named recording exists, each is deleted as
/// plugNmeet's `recording/delete` deletes it (on its node, then from the catalog); stops at the
/// first that cannot be.
pub async fn delete_recordings<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    call: &Call<'_>,
) -> EdgeResponse {
    let ids = match named_recordings(call, MAX_CHANGED) {
        Ok(ids) => ids,
        Err(response) => return response,
    };
    if let Err(response) = existing(edge, &ids).await {
        return response;
    }
    for id in ids {
        let request = json!({ "record_id": id }).to_string();
        let response = catalog::delete(edge, request.as_bytes()).await;
        if let Err(refusal) = outcome(&response) {
            return refused(id, &refusal, "deleteFailed");
        }
    }
    Xml::success().field("deleted", true).finish()
}

/// BBB's answer to the refusal of what was asked of recording `id`: `notFound`, or `otherwise`.
fn refused(id: &str, refusal: &Refusal, otherwise: &str) -> EdgeResponse {
    let key = if refusal.status_code == "NOT_FOUND" {
        "notFound"
    } else {
        otherwise
    };
    xml::failed(key, &format!("{id}: {}", refusal.msg))
}

/// The call's `recordID` list, at least one and at most `max`; `Err` is the answer to send.
fn named_recordings<'c>(call: &'c Call<'_>, max: usize) -> Result<Vec<&'c str>, EdgeResponse> {
    let ids = list(call, "recordID", max)?;
    if ids.is_empty() {
        return Err(xml::failed(
            "missingParamRecordID",
            "You must specify one or more record IDs.",
        ));
    }
    Ok(ids)
}

/// Handles BBB `publishRecordings`: every finished recording is published, so `publish=true`
/// is done for recordings that exist; `publish=false` is refused (edgemeet has no unpublished
/// recordings; `deleteRecordings` removes one).
pub async fn publish_recordings<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    call: &Call<'_>,
) -> EdgeResponse {
    let ids = match named_recordings(call, MAX_LISTED) {
        Ok(ids) => ids,
        Err(response) => return response,
    };
    if !call.flag("publish") {
        return xml::failed(
            "notImplemented",
            "recordings cannot be unpublished here: every finished recording is published",
        );
    }
    match existing(edge, &ids).await {
        Ok(_) => Xml::success().field("published", true).finish(),
        Err(response) => response,
    }
}

/// Handles BBB `updateRecordings`: its `meta_*` parameters patch each recording's metadata as
/// plugNmeet's `recording/updateMetadata` does (`meta_bbb-recording-name` and
/// `meta_bbb-recording-description` are its title and description, the others its extra
/// data; an empty value removes one).
pub async fn update_recordings<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    call: &Call<'_>,
) -> EdgeResponse {
    let ids = match named_recordings(call, MAX_CHANGED) {
        Ok(ids) => ids,
        Err(response) => return response,
    };
    let mut metadata = json!({ "extra_data": {} });
    for (name, value) in call.meta() {
        let value = Value::from(value);
        match name.as_str() {
            "bbb-recording-name" => metadata["title"] = value,
            "bbb-recording-description" => metadata["description"] = value,
            _ => metadata["extra_data"][name] = value,
        }
    }
    for id in ids {
        let request = json!({ "record_id": id, "metadata": metadata }).to_string();
        let response = catalog::update_metadata(edge, request.as_bytes()).await;
        if let Err(refusal) = outcome(&response) {
            return refused(id, &refusal, "updateFailed");
        }
    }
    Xml::success().field("updated", true).finish()
}
