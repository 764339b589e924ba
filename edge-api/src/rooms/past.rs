//! `room/fetchPastRooms`: ended sessions, filtered by room id, paged and ordered.

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{internal, listing_answer, Page};
use crate::db::{self, RoomRow};
use crate::exchange::EdgeResponse;
use crate::platform::{Clock, HttpClient, Store};
use crate::wire::int64_string;
use crate::Edge;

/// Most room ids one filter may name.
const MAX_ROOM_IDS: usize = 100;

/// plugNmeet's `PastRoomInfo`: an ended (or running) session as `fetchPastRooms` and
/// `recording/info` show it.
#[derive(Serialize)]
pub(crate) struct PastRoomInfo {
    room_title: String,
    room_id: String,
    room_sid: String,
    #[serde(serialize_with = "int64_string")]
    joined_participants: i64,
    webhook_url: String,
    created: String,
    ended: String,
    /// plugNmeet's `optional`: written when the session has an analytics file.
    #[serde(skip_serializing_if = "Option::is_none")]
    analytics_file_id: Option<String>,
}

#[derive(Serialize)]
struct FetchPastRoomsResult {
    #[serde(serialize_with = "int64_string")]
    total_rooms: i64,
    from: u32,
    limit: u32,
    order_by: String,
    rooms_list: Vec<PastRoomInfo>,
}

/// Handles `POST /auth/room/fetchPastRooms`.
pub async fn handle<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    body: &[u8],
) -> EdgeResponse {
    let (req, page) = match Page::requested(body, MAX_ROOM_IDS) {
        Ok(asked) => asked,
        Err(response) => return response,
    };
    let (total, rows) = match db::past_rooms(&edge.store, &page.of(&req.room_ids)).await {
        Ok(found) => found,
        Err(e) => return internal(e),
    };
    let result = (!rows.is_empty()).then(|| FetchPastRoomsResult {
        total_rooms: total,
        from: page.from,
        limit: page.limit,
        order_by: page.order_by().into(),
        rooms_list: rows
            .iter()
            .map(|past| PastRoomInfo {
                analytics_file_id: past.analytics_file_id.clone(),
                ..PastRoomInfo::of(&past.room, rfc3339)
            })
            .collect(),
    });
    listing_answer(result, "no info found")
}

impl PastRoomInfo {
    /// `row`, its times written by `time` (plugNmeet writes RFC 3339 in `fetchPastRooms` and
    /// `2006-01-02 15:04:05` in `recording/info`).
    pub(crate) fn of(row: &RoomRow, time: fn(i64) -> String) -> PastRoomInfo {
        PastRoomInfo {
            room_title: row.room_title.clone(),
            room_id: row.room_id.clone(),
            room_sid: row.sid.clone(),
            joined_participants: row.joined_participants,
            webhook_url: row.webhook_url.clone(),
            created: time(row.created_at),
            ended: row.ended_at.map(time).unwrap_or_default(),
            analytics_file_id: None,
        }
    }

    /// `row` with its times written as `2006-01-02 15:04:05`, as plugNmeet's `recording/info`
    /// and `artifact/info` show a session.
    pub(crate) fn plain(row: &RoomRow) -> PastRoomInfo {
        PastRoomInfo::of(row, plain_time)
    }
}

/// Unix seconds as `2006-01-02 15:04:05` in UTC, as plugNmeet's `recording/info` and `artifact/info`
/// write them.
pub fn plain_time(unix_secs: i64) -> String {
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

/// Unix seconds as RFC 3339 in UTC, e.g. `2026-11-23T22:15:38Z`.
pub fn rfc3339(unix_secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix_secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_472_138), "2026-11-23T22:15:38Z");
    }

    #[test]
    fn plain_time() {
        assert_eq!(super::plain_time(1_700_000_000), "2023-11-14 22:13:20");
    }
}
