//! The join page's files (`web/dist`, built from `web/`): which request path is which file, and
//! the headers it is served with. Reading the file is the platform's job: the Spin adapter
//! reads the directory mounted into the component; on Workers the platform serves them as
//! static assets before the Worker runs.
//!
//! plugNmeet's integrations send users to `/?access_token=<join token>`, so the page's URL
//! carries a secret: it is served with `Referrer-Policy: no-referrer`, and the page moves the
//! token into the tab's session storage and out of the address bar.
//!
//! plugNmeet's CMS plugins (Moodle, WordPress, Joomla) embed the page in one of their own
//! instead: they ask `/auth/getClientFiles` for its files ([`client_files`]), load them from
//! `/assets/js/` and `/assets/css/` into a page on their site, and the page calls the edge's
//! `/api/*` from there, so those answer any origin ([`allow_any_origin`], [`preflight`]). That
//! is safe because the only credential is the join token the page sends in `Authorization`:
//! no cookie rides along, and another site learns nothing it could not ask for itself.

use http::Method;

use crate::exchange::EdgeResponse;

/// One file of the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageFile {
    /// Path relative to the page's directory, e.g. `index.html` or `assets/app-3F2A.js`.
    pub relative_path: String,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its `Cache-Control`: hashed assets never change; the HTML is revalidated every time.
    pub cache_control: &'static str,
}

/// The page's Content-Security-Policy: its own scripts and styles only; connections to the
/// regions' LiveKit servers (any host, ws/wss and http/https).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; \
connect-src 'self' ws: wss: http: https:; frame-ancestors 'none'; base-uri 'none'; \
form-action 'none'";

/// The client files `/auth/getClientFiles` names: plugNmeet's CMS plugins load
/// `/assets/js/<each>` and `/assets/css/<each>` into their own page (web/build.mjs writes them).
pub const CLIENT_JS_FILES: &[&str] = &["main-module.js"];
/// See [`CLIENT_JS_FILES`].
pub const CLIENT_CSS_FILES: &[&str] = &["main.css"];

/// `/auth/getClientFiles`'s answer, plugNmeet's `GetClientFilesRes`: the envelope, then
/// [`CLIENT_CSS_FILES`] and [`CLIENT_JS_FILES`] under their old and current field names. Written
/// out, since it never changes (a serializer for it cost the component 166 bytes gzipped); a
/// test checks it against the serialized form.
const CLIENT_FILES_REPLY: &str = r#"{"status":true,"msg":"success","status_code":"SUCCESS","css":["main.css"],"js":["main-module.js"],"css_files":["main.css"],"js_files":["main-module.js"]}"#;

/// `/auth/getClientFiles`: the page's files a CMS plugin loads into its own page. No
/// `static_assets_path`, so the plugins take them from the edge's `/assets`.
pub fn client_files() -> EdgeResponse {
    EdgeResponse {
        status: 200,
        headers: vec![("content-type", "application/json".to_owned())],
        body: CLIENT_FILES_REPLY.as_bytes().to_vec(),
    }
}

/// How long a browser may keep a preflight's answer (Chromium keeps at most two hours). Each
/// preflight is a request the platform bills.
const PREFLIGHT_MAX_AGE_SECS: &str = "7200";

/// The answer to a CORS preflight (`OPTIONS`) of the page's API: any origin may `POST` with the
/// join token in `Authorization` and a JSON body.
pub fn preflight() -> EdgeResponse {
    allow_any_origin(EdgeResponse {
        status: 204,
        headers: vec![
            ("access-control-allow-methods", "POST".to_owned()),
            (
                "access-control-allow-headers",
                "authorization, content-type".to_owned(),
            ),
            ("access-control-max-age", PREFLIGHT_MAX_AGE_SECS.to_owned()),
        ],
        body: Vec::new(),
    })
}

/// `response` of the page's API, readable by a page of any origin.
pub fn allow_any_origin(mut response: EdgeResponse) -> EdgeResponse {
    response
        .headers
        .push(("access-control-allow-origin", "*".to_owned()));
    response
}

/// The file a `GET`/`HEAD` of `path` asks for, if it is one of the page's: `/` (and
/// `/index.html`) or a file under `/assets/` (or `/assets/js/`, `/assets/css/`, where the CMS
/// plugins' client files are) whose name is plain ASCII (letters, digits, `-`, `_`, `.`; no
/// `..`). Anything else is not the page's and goes to the API.
pub fn page_file(method: &Method, path: &str) -> Option<PageFile> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    if path == "/" || path == "/index.html" {
        return Some(PageFile {
            relative_path: "index.html".into(),
            content_type: "text/html; charset=utf-8",
            cache_control: "no-cache",
        });
    }
    // A plugin whose server URL was saved with a trailing slash asks for `//assets/…`.
    let under_assets = path.trim_start_matches('/').strip_prefix("assets/")?;
    // The client files keep their names from build to build: revalidated on every load. They
    // only import the hashed files, which never change.
    let (name, cache_control) = match under_assets.split_once('/') {
        Some(("js" | "css", name)) => (name, "no-cache"),
        Some(_) => return None,
        None => (under_assets, "public, max-age=31536000, immutable"),
    };
    let plain = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !plain {
        return None;
    }
    let content_type = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("map") => "application/json",
        Some("woff2") => "font/woff2",
        _ => return None,
    };
    Some(PageFile {
        relative_path: format!("assets/{under_assets}"),
        content_type,
        cache_control,
    })
}

/// Whether the client takes gzip (`Accept-Encoding` lists it without `q=0`).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|value| {
        value.split(',').any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| p.replace(' ', "") == "q=0" || p == "q=0.0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
    })
}

/// The response for `file` with `body` (gzip-encoded when `gzipped`); a `HEAD` gets the
/// headers without the body.
pub fn file_response(
    method: &Method,
    file: &PageFile,
    body: Vec<u8>,
    gzipped: bool,
) -> EdgeResponse {
    let mut headers = vec![
        ("content-type", file.content_type.to_owned()),
        ("cache-control", file.cache_control.to_owned()),
        ("vary", "accept-encoding".to_owned()),
        ("x-content-type-options", "nosniff".to_owned()),
        ("referrer-policy", "no-referrer".to_owned()),
    ];
    let page = file.relative_path == "index.html";
    if page {
        headers.push((
            "content-security-policy",
            CONTENT_SECURITY_POLICY.to_owned(),
        ));
        headers.push((
            "permissions-policy",
            "camera=(self), microphone=(self), display-capture=(self)".to_owned(),
        ));
    }
    if gzipped {
        headers.push(("content-encoding", "gzip".to_owned()));
    }
    let response = EdgeResponse {
        status: 200,
        headers,
        body: if method == Method::HEAD {
            Vec::new()
        } else {
            body
        },
    };
    if page {
        response
    } else {
        // A CMS plugin's page (another origin) loads the client as ES modules, which the
        // browser fetches with CORS; the files are public. On Workers, `_headers` says the same.
        allow_any_origin(response)
    }
}

/// The answer when the page's files are not installed (`web/dist` not built or not mounted).
pub fn page_missing() -> EdgeResponse {
    EdgeResponse::text(
        503,
        "the join page is not installed (build web/ and mount web/dist)",
    )
}

/// The answer when the platform has no such file: the page itself missing means the page is
/// not installed (503); a missing asset is a plain 404.
pub fn file_missing(file: &PageFile) -> EdgeResponse {
    if file.relative_path == "index.html" {
        page_missing()
    } else {
        EdgeResponse::text(404, "Not Found")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_page_paths_and_refuses_the_rest() {
        let index = page_file(&Method::GET, "/").unwrap();
        assert_eq!(index.relative_path, "index.html");
        assert_eq!(index.cache_control, "no-cache");
        assert_eq!(page_file(&Method::HEAD, "/index.html").unwrap(), index);
        let js = page_file(&Method::GET, "/assets/app-AB12.js").unwrap();
        assert_eq!(js.relative_path, "assets/app-AB12.js");
        assert!(js.content_type.starts_with("text/javascript"));
        assert!(js.cache_control.contains("immutable"));
        for name in CLIENT_JS_FILES {
            let file = page_file(&Method::GET, &format!("/assets/js/{name}")).unwrap();
            assert_eq!(file.relative_path, format!("assets/js/{name}"));
            assert!(file.content_type.starts_with("text/javascript"));
            assert_eq!(file.cache_control, "no-cache");
        }
        assert_eq!(
            page_file(&Method::GET, "//assets/js/main-module.js"),
            page_file(&Method::GET, "/assets/js/main-module.js")
        );
        for name in CLIENT_CSS_FILES {
            let file = page_file(&Method::GET, &format!("/assets/css/{name}")).unwrap();
            assert_eq!(file.relative_path, format!("assets/css/{name}"));
            assert!(file.content_type.starts_with("text/css"));
        }

        for path in [
            "/assets/../edge.sqlite",
            "/assets/..%2fedge.sqlite",
            "/assets/.hidden.js",
            "/assets/a/b.js",
            "/assets/js/a/b.js",
            "/assets/js/../x.js",
            "/assets/js/",
            "/assets/css/.x.css",
            "/assets/",
            "/assets/app.exe",
            "/auth/room/create",
            "/api/session",
            "/healthCheck",
            "/favicon.txt",
        ] {
            assert_eq!(page_file(&Method::GET, path), None, "{path}");
        }
        assert_eq!(page_file(&Method::POST, "/"), None);
    }

    #[test]
    fn client_files_reply_names_the_client_files() {
        let reply = client_files();
        assert_eq!(reply.status, 200);
        let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        let expected = crate::exchange::EdgeResponse::reply(
            crate::wire::Common::ok("success"),
            serde_json::json!({
                "css": CLIENT_CSS_FILES, "js": CLIENT_JS_FILES,
                "css_files": CLIENT_CSS_FILES, "js_files": CLIENT_JS_FILES,
            }),
        );
        let expected: serde_json::Value = serde_json::from_slice(&expected.body).unwrap();
        assert_eq!(json, expected);
    }

    #[test]
    fn a_missing_page_is_503_a_missing_asset_404() {
        let index = page_file(&Method::GET, "/").unwrap();
        let asset = page_file(&Method::GET, "/assets/app-0000.js").unwrap();
        assert_eq!(file_missing(&index).status, 503);
        assert_eq!(file_missing(&asset).status, 404);
    }

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(Some("gzip, deflate, br")));
        assert!(accepts_gzip(Some("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("br")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn page_headers() {
        let index = page_file(&Method::GET, "/").unwrap();
        let res = file_response(&Method::HEAD, &index, b"<html>".to_vec(), true);
        assert!(res.body.is_empty());
        let header = |name: &str| {
            res.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("content-encoding"), Some("gzip"));
        assert_eq!(header("referrer-policy"), Some("no-referrer"));
        assert!(header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'"));
        assert_eq!(header("access-control-allow-origin"), None);

        let asset = page_file(&Method::GET, "/assets/js/main-module.js").unwrap();
        let res = file_response(&Method::GET, &asset, b"import".to_vec(), false);
        assert!(res
            .headers
            .iter()
            .any(|(n, v)| *n == "access-control-allow-origin" && v == "*"));
        assert!(res
            .headers
            .iter()
            .all(|(n, _)| *n != "content-security-policy"));
    }
}
