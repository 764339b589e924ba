//! The request the edge receives and the response it gives, independent of any platform.

use http::{HeaderMap, Method};
use serde::Serialize;

use crate::config::GeoPoint;
use crate::wire::{Common, Reply, StatusCode};

/// Request bodies larger than this are refused before they are read as JSON.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// An HTTP request, as an adapter hands it to [`crate::Edge::handle`].
#[derive(Debug, Clone)]
pub struct EdgeRequest {
    /// The method.
    pub method: Method,
    /// The path, without the query string.
    pub path: String,
    /// The query string, without `?`.
    pub query: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body (adapters stop reading past [`MAX_BODY_BYTES`] and set `body_too_large`).
    pub body: Vec<u8>,
    /// True when the adapter stopped reading because the body was over [`MAX_BODY_BYTES`].
    pub body_too_large: bool,
    /// The end user's location if the platform knows it (e.g. Cloudflare's `request.cf`).
    pub platform_geo: Option<GeoPoint>,
    /// The scheme and authority the request was made to (`https://meet.example.com`), when the
    /// platform gives them (WASI HTTP carries the host as the authority, not as a header).
    pub origin: Option<String>,
}

impl EdgeRequest {
    /// A request with no headers and no body.
    pub fn new(method: Method, path_and_query: &str) -> EdgeRequest {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        EdgeRequest {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            headers: HeaderMap::new(),
            body: Vec::new(),
            body_too_large: false,
            platform_geo: None,
            origin: None,
        }
    }

    /// A header's value as text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The token in `Authorization`, raw (as plugNmeet's `/api/*` and LiveKit's webhooks send
    /// it) or as `Bearer`; `None` when there is none.
    pub fn authorization_token(&self) -> Option<&str> {
        self.header("authorization")
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim())
            .filter(|t| !t.is_empty())
    }

    /// Whether the body is over `limit` bytes (or over what the adapter read).
    pub fn body_exceeds(&self, limit: usize) -> bool {
        self.body_too_large || self.body.len() > limit
    }
}

/// An HTTP response from the edge.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeResponse {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl EdgeResponse {
    /// The 413 for a JSON call whose body is over `limit` bytes, in plugNmeet's shape.
    pub fn body_over(limit: usize) -> EdgeResponse {
        EdgeResponse::common(
            413,
            Common::fail(
                StatusCode::InvalidParameters,
                format!("request body larger than {limit} bytes"),
            ),
        )
    }

    /// A JSON response.
    pub fn json(status: u16, body: &impl Serialize) -> EdgeResponse {
        match serde_json::to_vec(body) {
            Ok(bytes) => EdgeResponse {
                status,
                headers: vec![("content-type", "application/json".into())],
                body: bytes,
            },
            Err(e) => {
                tracing::error!(error = %e, "response serialization failed");
                EdgeResponse::text(500, "internal error")
            }
        }
    }

    /// A plugNmeet reply with HTTP 200: the envelope plus the endpoint's fields.
    pub fn reply(common: Common, body: impl Serialize) -> EdgeResponse {
        EdgeResponse::json(200, &Reply::new(common, body))
    }

    /// A bare `CommonResponse` with this HTTP status.
    pub fn common(status: u16, common: Common) -> EdgeResponse {
        EdgeResponse::json(status, &common)
    }

    /// A plain-text response.
    pub fn text(status: u16, text: &str) -> EdgeResponse {
        EdgeResponse {
            status,
            headers: vec![("content-type", "text/plain; charset=utf-8".into())],
            body: text.as_bytes().to_vec(),
        }
    }
}
