//! A complete response under construction: status, headers, body.

use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};

use bytes::Bytes;

/// `Cache-Control` of catch-up and long-poll data responses (PROTOCOL.md 10.1).
pub(crate) const CACHEABLE: &str = "public, max-age=60, stale-while-revalidate=300";
/// `Cache-Control` of responses that must not be cached (HEAD 5.5, `offset=now` 8, 204s 10.1).
pub(crate) const NO_STORE: &str = "no-store";

/// A response that is complete when built.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: StatusCode,
    /// Boxed to keep `Result<_, Reply>` small.
    pub headers: Box<HeaderMap>,
    pub body: Bytes,
}

impl Reply {
    pub fn new(status: u16) -> Self {
        Reply {
            status: StatusCode::from_u16(status).expect("the server only uses valid statuses"),
            headers: Box::default(),
            body: Bytes::new(),
        }
    }

    /// An error with a short plain-text explanation.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Reply::new(status)
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Bytes::from(message.into()))
    }

    /// Sets a header. Values come from the server's own formatting or from request headers
    /// that were already valid header values; anything else is skipped.
    pub fn header(mut self, name: HeaderName, value: impl AsRef<str>) -> Self {
        if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
            self.headers.insert(name, v);
        }
        self
    }

    /// Sets a `true` flag header (4.1) when `on`.
    pub fn flag(self, name: HeaderName, on: bool) -> Self {
        if on {
            self.header(name, "true")
        } else {
            self
        }
    }

    pub fn body(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }

    /// The response head.
    pub fn into_parts(self) -> (http::response::Parts, Bytes) {
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.status = self.status;
        parts.headers = *self.headers;
        (parts, self.body)
    }
}
