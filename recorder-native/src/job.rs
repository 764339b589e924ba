//! What a job is: the start request the API accepts, its checks, its states and its public view.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the recorder makes of the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every camera in a grid, screen share large, all audio mixed; one H.264 + AAC encode.
    Composite,
    /// Each participant track to its own file, without re-encoding (pass-through).
    Tracks,
}

/// The life of a job, in order: a job only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Accepted; the worker is joining the room.
    Starting,
    /// Recording or broadcasting.
    Active,
    /// Stop requested; the worker is finishing its files.
    Ending,
    /// Ended normally; the outputs are final.
    Complete,
    /// Ended abnormally; `reason` says why, and any recovered file is reported.
    Failed,
}

impl JobState {
    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Complete | JobState::Failed)
    }

    /// The name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Starting => "STARTING",
            JobState::Active => "ACTIVE",
            JobState::Ending => "ENDING",
            JobState::Complete => "COMPLETE",
            JobState::Failed => "FAILED",
        }
    }

    /// Parses [`JobState::as_str`].
    pub fn parse(s: &str) -> Option<JobState> {
        [
            JobState::Starting,
            JobState::Active,
            JobState::Ending,
            JobState::Complete,
            JobState::Failed,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }
}

/// `POST /jobs/start`: record a room to a file, broadcast it to RTMP, or both from one encode.
/// Its `Debug` leaves out the token and the stream key.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The caller's id for this job: letters, digits, `-` and `_`, at most 64. Starting the same
    /// id again returns the existing job.
    pub job_id: String,
    /// The room, for the caller's bookkeeping (reported back in events).
    pub room_id: String,
    /// LiveKit signalling URL of the room's region (`ws://` or `wss://`).
    pub livekit_url: String,
    /// A LiveKit access token for a hidden subscriber of the room (with the `recorder` grant,
    /// LiveKit does not count it toward the room's `max_participants`).
    pub token: String,
    /// Composite (default) or tracks.
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Write a file (default true).
    #[serde(default = "default_true")]
    pub file: bool,
    /// Also (or only) broadcast to this `rtmp://` or `rtmps://` URL.
    #[serde(default)]
    pub rtmp_url: Option<String>,
}

impl std::fmt::Debug for StartRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartRequest")
            .field("job_id", &self.job_id)
            .field("room_id", &self.room_id)
            .field("livekit_url", &self.livekit_url)
            .field("token", &"<redacted>")
            .field("mode", &self.mode)
            .field("file", &self.file)
            .field("rtmp_url", &self.rtmp_url.as_deref().map(redact_rtmp))
            .finish()
    }
}

fn default_mode() -> Mode {
    Mode::Composite
}

fn default_true() -> bool {
    true
}

/// A start request that cannot work, with the message the caller gets.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidJob(pub String);

const MAX_TOKEN_BYTES: usize = 8 * 1024;
const MAX_URL_BYTES: usize = 2048;

impl StartRequest {
    /// Checks everything before anything starts.
    pub fn check(&self) -> Result<(), InvalidJob> {
        let invalid = |m: &str| Err(InvalidJob(m.to_owned()));
        if !is_job_id(&self.job_id) {
            return invalid("job_id must be 1 to 64 letters, digits, '-' or '_'");
        }
        if self.room_id.trim().is_empty() || self.room_id.len() > 256 {
            return invalid("room_id must be 1 to 256 characters");
        }
        if !(self.livekit_url.starts_with("ws://") || self.livekit_url.starts_with("wss://"))
            || self.livekit_url.len() > MAX_URL_BYTES
            || self.livekit_url.chars().any(char::is_whitespace)
        {
            return invalid("livekit_url must be a ws:// or wss:// URL");
        }
        if self.token.trim().is_empty() || self.token.len() > MAX_TOKEN_BYTES {
            return invalid("token must be a LiveKit access token");
        }
        if let Some(url) = &self.rtmp_url {
            let parsed = url::Url::parse(url).ok();
            if !(url.starts_with("rtmp://") || url.starts_with("rtmps://"))
                || url.len() > MAX_URL_BYTES
                || url
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
                || parsed
                    .as_ref()
                    .is_none_or(|u| u.host_str().unwrap_or("").is_empty())
            {
                return invalid("rtmp_url must be an rtmp:// or rtmps:// URL");
            }
            if !parsed.as_ref().is_some_and(|u| plain_authority(url, u)) {
                // Never the URL itself: it may hold credentials and the stream key.
                return invalid(
                    "rtmp_url must name its server plainly before the path: \
                     [user[:password]@]host[:port], with one '@' at most, a host name or IP \
                     address, and nothing that needs escaping",
                );
            }
        }
        if !self.file && self.rtmp_url.is_none() {
            return invalid("nothing to do: set file or rtmp_url");
        }
        if self.mode == Mode::Tracks && (self.rtmp_url.is_some() || !self.file) {
            return invalid("tracks mode writes files only; it cannot broadcast");
        }
        Ok(())
    }

    /// What makes two starts the same job: everything but the token, which callers re-mint
    /// when they retry.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for part in [
            self.job_id.as_str(),
            self.room_id.as_str(),
            self.livekit_url.as_str(),
            match self.mode {
                Mode::Composite => "composite",
                Mode::Tracks => "tracks",
            },
            if self.file { "file" } else { "nofile" },
            self.rtmp_url.as_deref().unwrap_or(""),
        ] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
        hex::encode(hash.finalize())
    }
}

/// Whether the server part of `url` (everything between `://` and the first `/`) reads the same
/// to every parser: the `url` crate's `parsed`, which the target check and the worker's pin go
/// by, and GStreamer's rtmp2sink, which connects. They differ on ambiguous forms: rtmp2sink's
/// `GstUri` ends the user info at the first `@` where the `url` crate (WHATWG) ends it at the
/// last, and it decodes `%` escapes in the host. So the raw text must be exactly what the
/// `url` crate read, with nothing it would escape or drop: `[user[:password]@]host[:port]`, the
/// host a name of letters, digits, `-`, `_` and `.`, or a bracketed IPv6 address.
fn plain_authority(url: &str, parsed: &url::Url) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (userinfo, host_port) = match authority.split_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    let userinfo_plain = match userinfo {
        None => parsed.username().is_empty() && parsed.password().is_none(),
        Some(raw) => {
            !raw.is_empty()
                && match parsed.password() {
                    Some(password) => raw.split_once(':') == Some((parsed.username(), password)),
                    None => raw == parsed.username(),
                }
        }
    };
    let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    let Some(host) = host_port.strip_suffix(port.as_str()) else {
        return false;
    };
    let host_plain = match parsed.host() {
        Some(url::Host::Domain(name)) => {
            name == host
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        Some(url::Host::Ipv4(ip)) => host == ip.to_string(),
        // Bracketed; any spelling of the same address (`[0:0::1]` is `[::1]`).
        Some(url::Host::Ipv6(ip)) => {
            host.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse::<std::net::Ipv6Addr>().ok())
                == Some(ip)
        }
        None => false,
    };
    userinfo_plain && host_plain
}

/// Whether `id` is a job id: also safe as a file name.
pub fn is_job_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An RTMP URL for lists, logs and events: scheme, host and port only. The path carries the
/// stream key, and `user:password@` may carry credentials (rtmp2sink reads them from the URL).
pub fn redact_rtmp(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return "rtmp://***".into();
    };
    let host = parsed.host_str().unwrap_or("***");
    let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    let secret_part = !parsed.username().is_empty()
        || parsed.password().is_some()
        || !matches!(parsed.path(), "" | "/")
        || parsed.query().is_some();
    let tail = if secret_part { "/***" } else { "" };
    format!("{}://{host}{port}{tail}", parsed.scheme())
}

/// A job as the API lists it and events report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// The caller's job id.
    pub job_id: String,
    /// The caller's room id.
    pub room_id: String,
    /// Composite or tracks.
    pub mode: Mode,
    /// Where it is in its life.
    pub state: JobState,
    /// Why it failed, or what went wrong on the way (an RTMP branch that ended).
    pub reason: Option<String>,
    /// The finished file (composite) or directory of track files (tracks), if it writes one.
    pub file: Option<String>,
    /// Size in bytes of the finished file (composite) or of all track files (tracks), once the
    /// job is COMPLETE; None before or when unknown.
    #[serde(default)]
    pub file_bytes: Option<u64>,
    /// The broadcast target with its stream key hidden.
    pub rtmp: Option<String>,
    /// Unix milliseconds when accepted.
    pub created_ms: i64,
    /// Unix milliseconds of the last state change.
    pub updated_ms: i64,
}

impl JobView {
    /// Adds `more` to the reason (after what is there, `; `-separated).
    pub fn add_reason(&mut self, more: String) {
        self.reason = Some(match self.reason.take() {
            Some(reason) => format!("{reason}; {more}"),
            None => more,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> StartRequest {
        StartRequest {
            job_id: "job-1".into(),
            room_id: "room".into(),
            livekit_url: "ws://10.0.0.1:7880".into(),
            token: "t".into(),
            mode: Mode::Composite,
            file: true,
            rtmp_url: None,
        }
    }

    #[test]
    fn debug_output_carries_no_credentials() {
        let mut secret = request();
        secret.token = "eyJsecret-token".into();
        secret.rtmp_url = Some("rtmp://user:pw@live.example/app/stream-key".into());
        let shown = format!("{secret:?}");
        for leak in ["eyJsecret-token", "pw", "stream-key"] {
            assert!(!shown.contains(leak), "{leak} in {shown}");
        }
        assert!(
            shown.contains("job-1") && shown.contains("live.example"),
            "{shown}"
        );
    }

    #[test]
    fn checks_refuse_unusable_jobs() {
        assert!(request().check().is_ok());
        let bad: &[fn(&mut StartRequest)] = &[
            |r| r.job_id = "../etc".into(),
            |r| r.job_id = "x".repeat(65),
            |r| r.room_id = " ".into(),
            |r| r.livekit_url = "http://h".into(),
            |r| r.token = String::new(),
            |r| r.rtmp_url = Some("http://h/live/key".into()),
            |r| r.rtmp_url = Some("rtmp://h/live/k ey".into()),
            |r| r.rtmp_url = Some("rtmp:///live/key".into()),
            |r| r.file = false,
            |r| {
                r.mode = Mode::Tracks;
                r.rtmp_url = Some("rtmp://h/live/key".into());
            },
        ];
        for change in bad.iter() {
            let mut r = request();
            change(&mut r);
            assert!(r.check().is_err(), "accepted {r:?}");
        }
    }

    /// RTMP URLs whose server part two parsers read two ways, or that hold what one of them
    /// would escape, drop or decode.
    const AMBIGUOUS_RTMP: &[&str] = &[
        // rtmp2sink's GstUri ends the user info at the first '@', the url crate at the last.
        "rtmp://a@127.0.0.1@public.example/app/secret-key",
        "rtmp://a@127.0.0.1:1935@public.example/app/secret-key",
        "rtmp://user:pw@10.0.0.1@public.example/app/secret-key",
        "rtmp://public.example\\@127.0.0.1/app/secret-key",
        "rtmp://public.example/app\\secret-key",
        // GstUri decodes escapes in the host.
        "rtmp://127.0.0.1%2e/app/secret-key",
        "rtmp://%31%32%37.0.0.1/app/secret-key",
        // rtmp2sink's server part runs to the first '/', the url crate's host to '?' or '#'.
        "rtmp://public.example?x@127.0.0.1/app/secret-key",
        "rtmp://public.example#x@127.0.0.1/app/secret-key",
        // What the url crate escapes or drops.
        "rtmp://user\"pw@public.example/app/secret-key",
        "rtmp://user:p:w@public.example/app/secret-key",
        "rtmp://@public.example/app/secret-key",
        "rtmp://public.example:/app/secret-key",
        "rtmp://public.example:01935/app/secret-key",
        "rtmp://p\u{fc}blic.example/app/secret-key",
        "rtmp://public{.example/app/secret-key",
        // Whitespace and control characters anywhere.
        "rtmp://public.example\t/app/secret-key",
        "rtmp://public.example\u{a0}/app/secret-key",
        "rtmp://public.example/app/secret-key\u{0}",
    ];

    /// RTMP URLs that name their server plainly.
    const PLAIN_RTMP: &[&str] = &[
        "rtmp://live.example.com/app/key",
        "rtmp://Live.Example.com/app/key",
        "rtmps://live.example.com:443/app/key",
        "rtmp://user:p%40ss@live.example.com:1935/app/key",
        "rtmp://127.0.0.1:1935/live/key",
        "rtmp://[::1]:1935/live/key",
        "rtmp://[0:0::1]/live/key",
        "rtmp://live_1.example.com/app/k@y?x=1",
        "rtmp://2130706433/live/key",
    ];

    fn with_rtmp(url: &str) -> StartRequest {
        StartRequest {
            rtmp_url: Some(url.into()),
            ..request()
        }
    }

    #[test]
    fn rtmp_urls_with_an_ambiguous_server_are_refused() {
        for url in AMBIGUOUS_RTMP {
            let InvalidJob(message) = with_rtmp(url)
                .check()
                .expect_err(&format!("accepted {url:?}"));
            assert!(message.starts_with("rtmp_url must"), "{message}");
            for leak in ["secret-key", "pw", "public.example", "127.0.0.1"] {
                assert!(!message.contains(leak), "{leak} in {message}");
            }
        }
        for url in PLAIN_RTMP {
            assert_eq!(with_rtmp(url).check(), Ok(()), "{url}");
        }
    }

    /// The server a start is checked against ([`crate::targets::check_rtmp_target`], the
    /// worker's pin) is the one rtmp2sink connects to: for every URL `check` accepts, a real
    /// rtmp2sink given it as its location reads the same host and port as the url crate.
    #[test]
    fn an_accepted_rtmp_url_names_the_server_rtmp2sink_connects_to() {
        use gst::prelude::*;
        gst::init().expect("gstreamer");
        let mut accepted = 0;
        for url in AMBIGUOUS_RTMP.iter().chain(PLAIN_RTMP) {
            if with_rtmp(url).check().is_err() {
                continue;
            }
            accepted += 1;
            let sink = gst::ElementFactory::make("rtmp2sink")
                .property("location", *url)
                .build()
                .expect("rtmp2sink (gst-plugins-bad)");
            let host: Option<String> = sink.property("host");
            let port: i32 = sink.property("port");
            let parsed = url::Url::parse(url).expect("parses");
            let host = host.unwrap_or_else(|| panic!("rtmp2sink refused {url:?}"));
            let same_host = match parsed.host() {
                Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case(&host),
                Some(url::Host::Ipv4(ip)) => host.parse() == Ok(ip),
                Some(url::Host::Ipv6(ip)) => host.parse() == Ok(ip),
                None => false,
            };
            assert!(
                same_host,
                "{url:?}: checked {:?}, rtmp2sink connects to {host:?}",
                parsed.host_str()
            );
            let default_port = if parsed.scheme() == "rtmps" {
                443
            } else {
                1935
            };
            assert_eq!(
                i32::from(parsed.port().unwrap_or(default_port)),
                port,
                "{url:?}"
            );
        }
        assert_eq!(accepted, PLAIN_RTMP.len());
    }

    #[test]
    fn fingerprint_ignores_only_the_token() {
        let a = request();
        let mut b = request();
        b.token = "re-minted".into();
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.rtmp_url = Some("rtmp://h/live/key".into());
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn stream_keys_are_hidden() {
        assert_eq!(
            redact_rtmp("rtmp://127.0.0.1:1935/live/secret-key"),
            "rtmp://127.0.0.1:1935/***"
        );
        assert_eq!(redact_rtmp("rtmp://host"), "rtmp://host");
        assert_eq!(
            redact_rtmp("rtmp://user:pass@live.example.com/app/key"),
            "rtmp://live.example.com/***"
        );
        assert_eq!(
            redact_rtmp("rtmps://live.example.com:443/app?key=secret"),
            "rtmps://live.example.com:443/***"
        );
        assert_eq!(redact_rtmp("rtmp://user@host"), "rtmp://host/***");
        assert_eq!(redact_rtmp("not a url with a key"), "rtmp://***");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<StartRequest>(
            r#"{"job_id":"a","room_id":"r","livekit_url":"ws://h","token":"t","extra":1}"#,
        );
        assert!(err.is_err());
        let state: JobState = serde_json::from_str("\"COMPLETE\"").expect("state");
        assert_eq!(JobState::parse(state.as_str()), Some(JobState::Complete));
    }

    /// A job reported or kept before `file_bytes` existed still reads, without a size; a
    /// finished one carries its size.
    #[test]
    fn a_view_without_a_size_still_reads() {
        let old: JobView = serde_json::from_str(
            r#"{"job_id":"a","room_id":"r","mode":"composite","state":"COMPLETE","reason":null,
                "file":"/r/a.mp4","rtmp":null,"created_ms":1,"updated_ms":2}"#,
        )
        .expect("an older view");
        assert_eq!(old.file_bytes, None);
        let sized = JobView {
            file_bytes: Some(1234),
            ..old
        };
        let json = serde_json::to_value(&sized).expect("json");
        assert_eq!(json["file_bytes"], 1234);
        assert_eq!(
            serde_json::from_value::<JobView>(json).expect("read back"),
            sized
        );
    }
}
