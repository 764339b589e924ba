//! The BigBlueButton-compatible API, as plugNmeet offers it, so BBB integrations (LMS plugins,
//! front ends, BBB client libraries) work against edgemeet: `/<api key>/bigbluebutton/api/<call>`
//! with BBB's parameters (a query string, or a form body on `POST`) and BBB's checksum, answered
//! in BBB's XML. Each call is translated to the plugNmeet call that does the work, so the rules,
//! limits and stored state are those of plugNmeet's API.
//!
//! The checksum is the lowercase hex SHA-1, SHA-256, SHA-384 or SHA-512 (told apart by length,
//! as BBB lets its integrations choose) of the call's name, the parameters exactly as sent
//! without `checksum`, and the API secret, compared in constant time. Errors are BBB's: HTTP 200 with `returncode` `FAILED`, a
//! `messageKey` and a `message`.
//!
//! What plugNmeet's does that this does not: a `join` whose password matches neither password
//! is refused here (plugNmeet lets it in as a viewer); a checksum is checked over the
//! parameters without `checksum` however they are ordered (plugNmeet cuts the text at the first
//! `checksum=`); the passwords and `meta_*` parameters are kept apart from the room's metadata,
//! which every participant reads (`migrations/0018_bbb_meetings.sql`).
//!
//! The URLs a `create` names for BBB's callbacks are called back as BBB calls them
//! ([`callbacks`]).

pub mod callbacks;
pub mod meetings;
pub mod recordings;
mod xml;

use std::borrow::Cow;

use http::Method;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;

use crate::exchange::{EdgeRequest, EdgeResponse, MAX_BODY_BYTES};
use crate::platform::{Clock, HttpClient, Store};
use crate::rooms::check_room_id;
use crate::Edge;
pub use xml::Xml;

/// What follows the API key in a BBB path.
const API_PATH: &str = "bigbluebutton/api";

/// The call a path names: `Some("")` for the API's root (its version), `None` when the path is
/// not the BBB API's; with the API key it was called under.
pub fn route(path: &str) -> Option<(&str, &str)> {
    let (key, rest) = path.strip_prefix('/')?.split_once('/')?;
    let call = rest.strip_prefix(API_PATH)?;
    let call = match call {
        "" | "/" => "",
        call => call.strip_prefix('/').filter(|c| !c.contains('/'))?,
    };
    Some((key, call))
}

/// A checked BBB call: its name and its parameters, decoded.
pub struct Call<'a> {
    name: &'a str,
    params: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl Call<'_> {
    /// Parameter `key`'s first value, `""` when absent.
    pub fn text(&self, key: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_ref())
    }

    /// Parameter `key` as BBB's booleans read: `true` in any case.
    pub fn flag(&self, key: &str) -> bool {
        self.text(key).eq_ignore_ascii_case("true")
    }

    /// Whether parameter `key` was given (even empty).
    pub fn has(&self, key: &str) -> bool {
        self.params.iter().any(|(k, _)| k == key)
    }

    /// The `meta_*` parameters: their names without the prefix, lowercased as BBB does.
    pub fn meta(&self) -> impl Iterator<Item = (String, &str)> {
        self.params.iter().filter_map(|(k, v)| {
            k.strip_prefix("meta_")
                .map(|name| (name.to_ascii_lowercase(), v.as_ref()))
        })
    }
}

/// Handles a request whose path [`route`] matched.
pub async fn handle<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    request: &EdgeRequest,
    api_key: &str,
    call: &str,
) -> EdgeResponse {
    if request.method != Method::GET && request.method != Method::POST {
        return EdgeResponse::text(405, "Method Not Allowed");
    }
    if !bool::from(api_key.as_bytes().ct_eq(edge.config.api_key.as_bytes())) {
        return xml::failed("apiKeyError", "invalid api key");
    }
    if call.is_empty() {
        return Xml::success().field("version", "2.0").finish();
    }
    if request.body_exceeds(MAX_BODY_BYTES) {
        return xml::failed("paramsTooLarge", "the request body is too large");
    }
    let raw = parameters_of(request);
    let Some(raw) = checked(call, raw, &edge.config.api_secret) else {
        return xml::failed("checksumError", "Checksums do not match");
    };
    let call = Call {
        name: call,
        params: form_urlencoded::parse(raw.as_bytes()).collect(),
    };
    match call.name {
        "create" => meetings::create(edge, &call).await,
        "join" => meetings::join(edge, request, &call).await,
        "isMeetingRunning" => meetings::is_meeting_running(edge, &call).await,
        "getMeetingInfo" => meetings::get_meeting_info(edge, &call).await,
        "getMeetings" => meetings::get_meetings(edge).await,
        "end" => meetings::end(edge, &call).await,
        "getRecordings" => recordings::get_recordings(edge, request, &call).await,
        "deleteRecordings" => recordings::delete_recordings(edge, &call).await,
        "publishRecordings" => recordings::publish_recordings(edge, &call).await,
        "updateRecordings" => recordings::update_recordings(edge, &call).await,
        _ => xml::failed(
            "unsupportedRequest",
            "This request is not supported by this server",
        ),
    }
}

/// The raw parameters: a form body on `POST`, else the query string (a `POST` whose body is
/// BBB's presentation XML carries its parameters in the query).
fn parameters_of(request: &EdgeRequest) -> &str {
    let form = request.method == Method::POST
        && request
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
        && !request.body.is_empty();
    if form {
        std::str::from_utf8(&request.body).unwrap_or("")
    } else {
        &request.query
    }
}

/// The parameters without `checksum` when its one `checksum` is right for `call` under
/// `secret`; `None` otherwise (none, two, or a wrong one). A client may sign `'` as it sends it,
/// unencoded (Node's `querystring`, `encodeURIComponent`), and a platform that parses the URL
/// (Workers) hands the query on with `%27`: that form is checked too, as both read the same.
fn checked(call: &str, raw: &str, secret: &str) -> Option<String> {
    checked_as_sent(call, raw, secret).or_else(|| {
        raw.contains("%27")
            .then(|| raw.replace("%27", "'"))
            .and_then(|unquoted| checked_as_sent(call, &unquoted, secret))
    })
}

fn checked_as_sent(call: &str, raw: &str, secret: &str) -> Option<String> {
    let mut checksum = None;
    let mut rest: Vec<&str> = Vec::new();
    for pair in raw.split('&') {
        match pair.strip_prefix("checksum=") {
            Some(_) if checksum.is_some() => return None,
            Some(sum) => checksum = Some(sum),
            None => rest.push(pair),
        }
    }
    let presented = checksum?.to_ascii_lowercase();
    let signed = rest.join("&");
    let parts = [call.as_bytes(), signed.as_bytes(), secret.as_bytes()];
    let expected = match presented.len() {
        40 => {
            let mut hash = hmac_sha1_compact::Hash::new();
            parts.iter().for_each(|p| hash.update(p));
            hex::encode(hash.finalize())
        }
        64 => digest::<Sha256>(&parts),
        96 => digest::<Sha384>(&parts),
        128 => digest::<Sha512>(&parts),
        _ => return None,
    };
    bool::from(presented.as_bytes().ct_eq(expected.as_bytes())).then_some(signed)
}

fn digest<D: Digest>(parts: &[&[u8]]) -> String {
    let mut hash = D::new();
    parts.iter().for_each(|p| hash.update(p));
    hex::encode(hash.finalize())
}

/// The room id of BBB meeting `meeting_id`: itself when it is a valid room id, else 32 hex
/// characters of its SHA-256 (BBB allows any text; plugNmeet hashes such ids with MD5).
pub fn room_id_of(meeting_id: &str) -> String {
    if check_room_id(meeting_id).is_ok() {
        return meeting_id.to_owned();
    }
    hashed_id(meeting_id)
}

/// An id for text that cannot be one: 32 hex characters (128 bits) of its SHA-256.
fn hashed_id(text: &str) -> String {
    let mut id = digest::<Sha256>(&[text.as_bytes()]);
    id.truncate(32);
    id
}

/// The `meta_*` parameters BBB's `create` kept for a meeting (none for a session created
/// otherwise).
fn meeting_meta(bbb: Option<&crate::db::bbb::BbbMeeting>) -> serde_json::Map<String, Value> {
    bbb.and_then(|b| serde_json::from_str(&b.meta).ok())
        .unwrap_or_default()
}

/// Longest BBB meeting id (BBB's own limit).
const MAX_MEETING_ID_LEN: usize = 256;

/// The call's `meetingID`, checked, and the room id it names; `Err` is the answer to send.
fn meeting<'c>(call: &'c Call<'_>) -> Result<(&'c str, String), EdgeResponse> {
    let id = meeting_id(call)?;
    Ok((id, room_id_of(id)))
}

/// The call's `meetingID`, checked; `Err` is the answer to send.
fn meeting_id<'c>(call: &'c Call<'_>) -> Result<&'c str, EdgeResponse> {
    match call.text("meetingID") {
        "" => Err(xml::failed(
            "missingParamMeetingID",
            "You must specify a meeting ID for the meeting.",
        )),
        id if id.len() > MAX_MEETING_ID_LEN || id.chars().any(char::is_control) => Err(
            xml::failed("invalidMeetingIdentifier", "The meeting ID is not valid."),
        ),
        id => Ok(id),
    }
}

/// A store failure: logged, answered without detail.
fn store_failure(e: crate::platform::StoreError) -> EdgeResponse {
    let _ = crate::rooms::internal(e);
    xml::failed("internalError", "internal server error")
}

/// A plugNmeet call's refusal: its `status_code` and `msg`.
struct Refusal {
    status_code: String,
    msg: String,
}

impl Refusal {
    /// Reads a plugNmeet answer that refused.
    fn of(response: &EdgeResponse) -> Refusal {
        let value: Value = serde_json::from_slice(&response.body).unwrap_or_default();
        let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
        let msg = text("msg");
        Refusal {
            status_code: text("status_code"),
            msg: if msg.is_empty() {
                "the call failed".into()
            } else {
                msg
            },
        }
    }

    /// BBB's answer to it, `messageKey` named by the caller.
    fn answer(&self, message_key: &str) -> EdgeResponse {
        xml::failed(message_key, &self.msg)
    }
}

/// Whether a plugNmeet answer did what was asked (`status: true`); its refusal otherwise.
fn outcome(response: &EdgeResponse) -> Result<(), Refusal> {
    let done = serde_json::from_slice::<Value>(&response.body)
        .is_ok_and(|value| value["status"] == Value::Bool(true));
    if done {
        Ok(())
    } else {
        Err(Refusal::of(response))
    }
}

/// The origin the edge's own links in BBB answers start with (a join link, a recording's
/// playback link): the configured `public_url`; else the one the request was made to (the
/// platform's, else its `Host`), over the scheme `X-Forwarded-Proto` names, else the request's,
/// else `http` for this machine's loopback and `https` for anything else.
fn public_origin(edge_public_url: &str, request: &EdgeRequest) -> String {
    if !edge_public_url.is_empty() {
        return edge_public_url.trim_end_matches('/').to_owned();
    }
    let (scheme, host) = match request.origin.as_deref().and_then(|o| o.split_once("://")) {
        Some((scheme, host)) => (scheme, host),
        None => ("", request.header("host").unwrap_or("localhost")),
    };
    let loopback = ["localhost", "127.", "[::1]"]
        .iter()
        .any(|prefix| host.starts_with(prefix));
    let scheme = match request.header("x-forwarded-proto") {
        Some("http") => "http",
        Some("https") => "https",
        _ if !scheme.is_empty() => scheme,
        _ if loopback => "http",
        _ => "https",
    };
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha1_hex(text: &str) -> String {
        hex::encode(hmac_sha1_compact::Hash::hash(text.as_bytes()))
    }

    #[test]
    fn routes() {
        assert_eq!(route("/key/bigbluebutton/api"), Some(("key", "")));
        assert_eq!(route("/key/bigbluebutton/api/"), Some(("key", "")));
        assert_eq!(
            route("/key/bigbluebutton/api/create"),
            Some(("key", "create"))
        );
        assert_eq!(route("/key/bigbluebutton/api/a/b"), None);
        assert_eq!(route("/key/bigbluebutton/apix"), None);
        assert_eq!(route("/auth/room/create"), None);
        assert_eq!(route("/bigbluebutton/api/create"), None);
    }

    #[test]
    fn checksums_cover_the_parameters_as_sent() {
        let secret = "s3cret";
        let params = "name=Demo%20Room&meetingID=m-1";
        let sum = sha1_hex(&format!("create{params}{secret}"));
        // Anywhere in the query, either case.
        for raw in [
            format!("{params}&checksum={sum}"),
            format!("checksum={}&{params}", sum.to_uppercase()),
        ] {
            let signed = checked("create", &raw, secret);
            assert_eq!(signed.as_deref(), Some(params), "{raw}");
        }
        // Signed with `'` as sent, handed on as `%27` (Workers' URL parser).
        let quoted = "fullName=O'Brien";
        let sum = sha1_hex(&format!("join{quoted}{secret}"));
        let signed = checked(
            "join",
            &format!("fullName=O%27Brien&checksum={sum}"),
            secret,
        );
        assert_eq!(signed.as_deref(), Some(quoted));
        let sum = sha1_hex(&format!("create{params}{secret}"));
        // No parameters but the checksum.
        let bare = sha1_hex(&format!("getMeetings{secret}"));
        assert_eq!(
            checked("getMeetings", &format!("checksum={bare}"), secret).as_deref(),
            Some("")
        );
        // SHA-256 by its length.
        let sha256 = hex::encode(Sha256::digest(format!("create{params}{secret}").as_bytes()));
        assert!(checked("create", &format!("{params}&checksum={sha256}"), secret).is_some());
        let signed = format!("create{params}{secret}");
        for sum in [
            hex::encode(Sha384::digest(signed.as_bytes())),
            hex::encode(Sha512::digest(signed.as_bytes())),
        ] {
            assert!(checked("create", &format!("{params}&checksum={sum}"), secret).is_some());
            let upper = sum.to_ascii_uppercase();
            assert!(checked("create", &format!("{params}&checksum={upper}"), secret).is_some());
            let wrong = hex::encode(Sha512::digest(format!("join{params}{secret}").as_bytes()));
            assert!(checked("create", &format!("{params}&checksum={wrong}"), secret).is_none());
        }
        // A checksum of another length is no checksum.
        assert!(checked(
            "create",
            &format!("{params}&checksum={}", &sha256[..62]),
            secret
        )
        .is_none());
        // Refused: another call's, another secret's, a changed parameter, none, two, a stub.
        let refused = [
            ("join", format!("{params}&checksum={sum}")),
            (
                "create",
                format!(
                    "{params}&checksum={}",
                    sha1_hex(&format!("create{params}other"))
                ),
            ),
            (
                "create",
                format!("name=Demo%20Roon&meetingID=m-1&checksum={sum}"),
            ),
            ("create", params.to_owned()),
            ("create", format!("{params}&checksum={sum}&checksum={sum}")),
            ("create", format!("{params}&checksum={}", &sum[..39])),
            ("create", format!("{params}&checksum=")),
        ];
        for (call, raw) in refused {
            assert!(checked(call, &raw, secret).is_none(), "{call} {raw}");
        }
    }

    #[test]
    fn meeting_ids_that_are_not_room_ids_are_hashed() {
        assert_eq!(room_id_of("course-42_a"), "course-42_a");
        for odd in ["Course 42: Algebra", "user_1", "x-FIELD_y", "ünï"] {
            let id = room_id_of(odd);
            assert_eq!(id.len(), 32, "{odd}");
            assert!(check_room_id(&id).is_ok(), "{odd} -> {id}");
            assert_eq!(id, room_id_of(odd), "stable");
        }
        assert_ne!(room_id_of("a b"), room_id_of("a  b"));
    }

    #[test]
    fn parameters_decode_and_meta_is_lowercased() {
        let call = Call {
            name: "create",
            params: form_urlencoded::parse(b"name=A+B%26C&meta_BBB-Origin=Moodle&record=TRUE&x=")
                .collect(),
        };
        assert_eq!(call.name, "create");
        assert_eq!(call.text("name"), "A B&C");
        assert!(call.flag("record"));
        assert!(call.has("x") && !call.has("y"));
        assert_eq!(
            call.meta().collect::<Vec<_>>(),
            vec![("bbb-origin".to_owned(), "Moodle")]
        );
    }

    #[test]
    fn origins() {
        let mut request = EdgeRequest::new(Method::GET, "/k/bigbluebutton/api/join");
        assert_eq!(
            public_origin("https://meet.example.com/", &request),
            "https://meet.example.com"
        );
        request
            .headers
            .insert("host", "127.0.0.1:8080".parse().unwrap());
        assert_eq!(public_origin("", &request), "http://127.0.0.1:8080");
        request
            .headers
            .insert("host", "meet.example.com".parse().unwrap());
        assert_eq!(public_origin("", &request), "https://meet.example.com");
        request
            .headers
            .insert("x-forwarded-proto", "http".parse().unwrap());
        assert_eq!(public_origin("", &request), "http://meet.example.com");
        // The platform's origin wins over the header; a proxy's scheme over the platform's.
        request.origin = Some("http://edge.internal:8080".into());
        assert_eq!(public_origin("", &request), "http://edge.internal:8080");
        request
            .headers
            .insert("x-forwarded-proto", "https".parse().unwrap());
        assert_eq!(public_origin("", &request), "https://edge.internal:8080");
    }
}
