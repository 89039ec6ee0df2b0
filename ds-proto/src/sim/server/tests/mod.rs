//! Tests of the simulated server, exchanging hand-built requests with virtual time.

mod append;
mod create;
mod fork;
mod lifecycle;
mod long_poll;
mod producer;
mod read;
mod sse;

use super::{ExchangeId, ExchangeOutput, SimServer, SimServerConfig};
use bytes::Bytes;
use http::{HeaderMap, Method};
use std::time::{Duration, Instant};

/// The first cursor interval of a default server: (2026-01-01 - 2024-10-09) / 20 s.
pub(super) const FIRST_INTERVAL: u64 = (1_767_225_600 - 1_728_432_000) / 20;

/// The token of a position.
pub(super) fn off(position: u64) -> String {
    format!("0000000000000000_{position:016}")
}

/// A complete response.
#[derive(Debug, Clone)]
pub(super) struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// A header as text.
    pub fn h(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Whether a flag header is `true`.
    pub fn flag(&self, name: &str) -> bool {
        self.h(name) == Some("true")
    }

    pub fn next(&self) -> &str {
        self.h("stream-next-offset").expect("Stream-Next-Offset")
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// Everything one exchange produced so far.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub head: Option<http::response::Parts>,
    pub body: Vec<u8>,
    pub ended: bool,
    pub reset: bool,
}

impl Seen {
    pub fn status(&self) -> u16 {
        self.head.as_ref().expect("a head").status.as_u16()
    }

    pub fn h(&self, name: &str) -> Option<&str> {
        self.head
            .as_ref()
            .and_then(|p| p.headers.get(name))
            .map(|v| v.to_str().unwrap())
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// A server, a virtual clock and request helpers.
pub(super) struct Harness {
    pub server: SimServer,
    pub now: Instant,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(SimServerConfig::default())
    }

    /// A server whose reads carry at most `bytes` of data each (`max_chunk_bytes`).
    pub fn with_chunk_limit(bytes: usize) -> Self {
        Self::with(SimServerConfig {
            max_chunk_bytes: Some(bytes),
            ..SimServerConfig::default()
        })
    }

    pub fn with(config: SimServerConfig) -> Self {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        Harness {
            server: SimServer::new(config),
            now,
        }
    }

    /// Moves the virtual clock and lets the server run its timers.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.server.handle_timeout(self.now);
    }

    pub fn request(
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> http::Request<Bytes> {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(body.into()).unwrap()
    }

    /// Starts an exchange.
    pub fn start(
        &mut self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> ExchangeId {
        let req = Self::request(method, uri, headers, body);
        self.server.handle(req, self.now)
    }

    /// Sends a request that must complete at once.
    pub fn send(
        &mut self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        let req = Self::request(method, uri, headers, body);
        let resp = self
            .server
            .call(req, self.now)
            .unwrap_or_else(|id| panic!("{uri}: {id} is still open"));
        let (parts, body) = resp.into_parts();
        Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }

    pub fn put(&mut self, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Resp {
        self.send(Method::PUT, path, headers, body)
    }

    pub fn post(&mut self, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Resp {
        self.send(Method::POST, path, headers, body)
    }

    pub fn get(&mut self, uri: &str) -> Resp {
        self.send(Method::GET, uri, &[], Bytes::new())
    }

    pub fn head(&mut self, path: &str) -> Resp {
        self.send(Method::HEAD, path, &[], Bytes::new())
    }

    pub fn delete(&mut self, path: &str) -> Resp {
        self.send(Method::DELETE, path, &[], Bytes::new())
    }

    /// Creates a stream of this content type.
    pub fn create(&mut self, path: &str, content_type: &str) {
        let r = self.put(path, &[("content-type", content_type)], Bytes::new());
        assert_eq!(r.status, 201, "{}", r.text());
    }

    /// Appends and expects success.
    pub fn append(&mut self, path: &str, content_type: &str, body: &str) -> String {
        let r = self.post(path, &[("content-type", content_type)], body.to_owned());
        assert_eq!(r.status, 204, "{}", r.text());
        r.next().to_owned()
    }

    /// Drains what exchange `id` produced so far.
    pub fn drain(&mut self, id: ExchangeId, seen: &mut Seen) {
        while let Some(out) = self.server.poll_exchange(id) {
            assert!(!seen.ended && !seen.reset, "output after the end");
            match out {
                ExchangeOutput::Head(p) => {
                    assert!(seen.head.is_none(), "two heads");
                    seen.head = Some(p);
                }
                ExchangeOutput::Body(b) => {
                    assert!(seen.head.is_some(), "body before head");
                    assert!(!b.is_empty(), "empty body piece");
                    seen.body.extend_from_slice(&b);
                }
                ExchangeOutput::End => seen.ended = true,
                ExchangeOutput::Reset => seen.reset = true,
            }
        }
    }

    /// What exchange `id` produced so far (a fresh view).
    pub fn seen(&mut self, id: ExchangeId) -> Seen {
        let mut seen = Seen::default();
        self.drain(id, &mut seen);
        seen
    }
}

#[test]
fn other_methods_are_405() {
    let mut t = Harness::new();
    let r = t.send(Method::PATCH, "/s", &[], Bytes::new());
    assert_eq!(r.status, 405);
    assert!(r.h("allow").unwrap().contains("POST"));
    let r = t.send(Method::OPTIONS, "/s", &[], Bytes::new());
    assert_eq!(r.status, 405);
}

#[test]
fn any_path_names_a_stream() {
    let mut t = Harness::new();
    for path in ["/a", "/v1/stream/deep/path", "/x.y-z_%20"] {
        t.create(path, "text/plain");
        t.append(path, "text/plain", path);
        assert_eq!(t.get(&format!("{path}?offset=-1")).text(), path);
    }
    assert_eq!(
        t.server.stream_paths(),
        vec!["/a", "/v1/stream/deep/path", "/x.y-z_%20"]
    );
}

#[test]
fn every_output_sequence_is_head_body_end() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    let id = t.start(Method::GET, "/s?offset=-1", &[], Bytes::new());
    let outs: Vec<ExchangeOutput> = std::iter::from_fn(|| t.server.poll_output())
        .map(|(i, o)| {
            assert_eq!(i, id);
            o
        })
        .collect();
    assert!(matches!(outs[0], ExchangeOutput::Head(_)));
    assert!(matches!(outs.last(), Some(ExchangeOutput::End)));
    assert_eq!(outs.len(), 2, "an empty body sends no Body piece");
    assert!(!t.server.is_open(id));
}

/// 12.7: `X-Content-Type-Options: nosniff` and `Cross-Origin-Resource-Policy` on every
/// response: success, error, live reads.
#[test]
fn every_response_has_the_browser_security_headers() {
    let mut t = Harness::new();
    let check = |what: &str, h: &HeaderMap| {
        assert_eq!(
            h.get("x-content-type-options").unwrap(),
            "nosniff",
            "{what}"
        );
        assert_eq!(
            h.get("cross-origin-resource-policy").unwrap(),
            "cross-origin",
            "{what}"
        );
    };
    check(
        "PUT",
        &t.put("/s", &[("content-type", "text/plain")], "x").headers,
    );
    check(
        "POST",
        &t.post("/s", &[("content-type", "text/plain")], "y").headers,
    );
    check("HEAD", &t.head("/s").headers);
    check("GET", &t.get("/s?offset=-1").headers);
    check("404", &t.get("/missing?offset=-1").headers);
    check(
        "405",
        &t.send(Method::PATCH, "/s", &[], Bytes::new()).headers,
    );
    for live in ["sse", "long-poll"] {
        let id = t.start(
            Method::GET,
            &format!("/s?offset=now&live={live}"),
            &[],
            Bytes::new(),
        );
        t.advance(Duration::from_secs(2));
        let seen = t.seen(id);
        check(live, &seen.head.expect("a head").headers);
    }
    check("DELETE", &t.delete("/s").headers);
}

#[test]
fn the_server_keeps_its_configuration_and_names_exchanges() {
    let config = SimServerConfig {
        long_poll_timeout: Duration::from_millis(1234),
        ..SimServerConfig::default()
    };
    let server = SimServer::new(config.clone());
    assert_eq!(
        server.config().long_poll_timeout,
        Duration::from_millis(1234)
    );
    assert_eq!(ExchangeId(7).to_string(), "exchange #7");
}
