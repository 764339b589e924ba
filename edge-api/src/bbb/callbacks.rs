//! BigBlueButton's callbacks to the integration that created a meeting, at the URLs its
//! `create` named in `meta_*`: LMS plugins and front ends (Moodle, Greenlight) learn from them
//! that a meeting ended and that a recording can be listed.
//!
//! - **Meeting ended** (`meta_endCallbackUrl`): a `GET` of the URL with `recordingmarks`
//!   (whether anything of the session was recorded) and `meetingID` added to its query.
//! - **Recording ready** (`meta_bbb-recording-ready-url`, or BBB's other names for it): a form
//!   `POST` of `signed_parameters`, an HS256 JWT under the API secret of the meeting id and the
//!   recording's id, once for each recording of the session.
//!
//! The schema queues them (`migrations/0019_bbb_callbacks.sql`) in the customer webhooks'
//! outbox, so they are delivered, retried and ordered as those are (`webhooks.rs`); BBB tries
//! a recording-ready callback once.

use http::Method;

use crate::platform::OutboundRequest;
use crate::tokens::{self, RecordingReadyClaims, TokenError};

/// The outbox event of a meeting-ended callback.
pub const MEETING_ENDED: &str = "bbb_meeting_ended";
/// The outbox event of a recording-ready callback.
pub const RECORDING_READY: &str = "bbb_recording_ready";

/// The `meta_*` names (lowercased, as kept) whose value is a callback URL.
const CALLBACK_META: [&str; 4] = [
    "endcallbackurl",
    "bbb-recording-ready-url",
    "bn-recording-ready-url",
    "canvas-recording-ready-url",
];

/// How long a recording-ready signature is valid: every attempt is signed anew.
const SIGNATURE_VALIDITY_SECS: u64 = 300;

/// Whether `value` may be kept as `meta_<name>`: a callback's must be empty (none) or an
/// absolute http(s) URL without user info (which Workers' `fetch` refuses), any other is free
/// text.
pub fn is_acceptable_meta(name: &str, value: &str) -> bool {
    if !CALLBACK_META.contains(&name) || value.is_empty() {
        return true;
    }
    let scheme_ok = ["http://", "https://"].iter().any(|scheme| {
        value
            .get(..scheme.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
    });
    scheme_ok
        && value.parse::<http::Uri>().is_ok_and(|uri| {
            uri.host().is_some_and(|host| !host.is_empty())
                && uri.authority().is_some_and(|a| !a.as_str().contains('@'))
        })
}

/// The meeting-ended callback to `url` for meeting `meeting_id`.
pub fn meeting_ended(
    url: &str,
    meeting_id: &str,
    recording_marks: bool,
    timeout: std::time::Duration,
) -> OutboundRequest {
    // A fragment is not sent; the query goes before it.
    let base = url.split('#').next().unwrap_or(url);
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair(
            "recordingmarks",
            if recording_marks { "true" } else { "false" },
        )
        .append_pair("meetingID", meeting_id)
        .finish();
    let separator = match base.rfind('?') {
        None => "?",
        Some(at) if at + 1 == base.len() || base.ends_with('&') => "",
        Some(_) => "&",
    };
    OutboundRequest {
        method: Method::GET,
        url: format!("{base}{separator}{query}"),
        headers: Vec::new(),
        body: Vec::new(),
        timeout,
        read_body: false,
    }
}

/// The recording-ready callback to `url`, signed with `api_secret` at `now_secs`.
pub fn recording_ready(
    url: &str,
    api_secret: &str,
    claims: RecordingReadyClaims,
    now_secs: u64,
    timeout: std::time::Duration,
) -> Result<OutboundRequest, TokenError> {
    let token =
        tokens::mint_recording_ready(api_secret, claims, now_secs, SIGNATURE_VALIDITY_SECS)?;
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("signed_parameters", &token)
        .finish();
    Ok(OutboundRequest {
        method: Method::POST,
        url: url.to_owned(),
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: body.into_bytes(),
        timeout,
        read_body: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_simple::prelude::{HS256Key, MACLike, VerificationOptions};

    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

    #[test]
    fn meeting_ended_adds_to_the_query_the_url_has() {
        let plain = meeting_ended("https://lms.example/ended", "a b&c", true, TIMEOUT);
        assert_eq!(plain.method, Method::GET);
        assert_eq!(
            plain.url,
            "https://lms.example/ended?recordingmarks=true&meetingID=a+b%26c"
        );
        assert!(plain.body.is_empty());
        let with_query = meeting_ended("https://lms.example/e?room=7#top", "m", false, TIMEOUT);
        assert_eq!(
            with_query.url,
            "https://lms.example/e?room=7&recordingmarks=false&meetingID=m"
        );
        let open_query = meeting_ended("https://lms.example/e?", "m", false, TIMEOUT);
        assert_eq!(
            open_query.url,
            "https://lms.example/e?recordingmarks=false&meetingID=m"
        );
    }

    #[test]
    fn recording_ready_is_a_signed_form_post() {
        let secret = "0123456789abcdef0123456789abcdef";
        let claims = RecordingReadyClaims {
            meeting_id: "Algebra 1".into(),
            record_id: "rec-1".into(),
        };
        let now = jwt_simple::prelude::Clock::now_since_epoch().as_secs();
        let request = recording_ready("https://gl.example/ready", secret, claims, now, TIMEOUT)
            .expect("signed");
        assert_eq!(request.method, Method::POST);
        assert_eq!(
            request.headers,
            [(
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned()
            )]
        );
        let form: Vec<(String, String)> =
            form_urlencoded::parse(&request.body).into_owned().collect();
        assert_eq!(form.len(), 1);
        assert_eq!(form[0].0, "signed_parameters");
        let verified = HS256Key::from_bytes(secret.as_bytes())
            .verify_token::<RecordingReadyClaims>(&form[0].1, Some(VerificationOptions::default()))
            .expect("verifies under the API secret");
        assert_eq!(verified.custom.meeting_id, "Algebra 1");
        assert_eq!(verified.custom.record_id, "rec-1");
        assert!(verified.invalid_before.is_none() && verified.issued_at.is_none());
        assert!(verified.expires_at.is_some());
        let forged = HS256Key::from_bytes(b"another secret")
            .verify_token::<RecordingReadyClaims>(&form[0].1, None);
        assert!(forged.is_err());
    }

    #[test]
    fn callback_urls_must_be_http() {
        assert!(is_acceptable_meta(
            "endcallbackurl",
            "https://lms.example/e?x=1"
        ));
        assert!(is_acceptable_meta(
            "bbb-recording-ready-url",
            "HTTP://10.0.0.1:8080/r"
        ));
        assert!(is_acceptable_meta("endcallbackurl", ""), "empty: none");
        for bad in [
            "ftp://x/y",
            "javascript:alert(1)",
            "https://",
            "/relative",
            "https://a b/",
            "https://user:pw@lms.example/e",
        ] {
            assert!(!is_acceptable_meta("endcallbackurl", bad), "{bad}");
            assert!(
                !is_acceptable_meta("canvas-recording-ready-url", bad),
                "{bad}"
            );
        }
        assert!(is_acceptable_meta("bbb-origin", "not a URL"));
    }
}
