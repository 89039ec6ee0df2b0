//! Delete (PROTOCOL.md 5.4), TTL and expiry with virtual time (5.1, 4.2), determinism.

use super::{off, Harness};
use crate::sim::{ExchangeOutput, SimServer, SimServerConfig};
use bytes::Bytes;
use http::Method;
use std::time::Duration;

const TEXT: (&str, &str) = ("content-type", "text/plain");

#[test]
fn delete_and_recreate() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    t.append("/s", "text/plain", "old");
    assert_eq!(t.delete("/s").status, 204);
    assert_eq!(t.delete("/s").status, 404);
    assert_eq!(t.get("/s?offset=-1").status, 404);
    assert_eq!(t.head("/s").status, 404);
    assert_eq!(t.post("/s", &[TEXT], "x").status, 404);
    assert_eq!(t.server.stream_data("/s"), None);
    assert_eq!(t.put("/s", &[TEXT], Bytes::new()).status, 201);
    assert_eq!(t.get("/s?offset=-1").text(), "");
}

#[test]
fn sliding_ttl_is_refreshed_by_reads_and_writes_not_head() {
    let mut t = Harness::new();
    t.put("/s", &[TEXT, ("stream-ttl", "10")], Bytes::new());
    assert_eq!(
        t.server.poll_timeout(),
        Some(t.now + Duration::from_secs(10))
    );
    t.advance(Duration::from_secs(9));
    assert_eq!(t.get("/s?offset=-1").status, 200);
    t.advance(Duration::from_secs(9));
    assert_eq!(t.post("/s", &[TEXT], "x").status, 204);
    t.advance(Duration::from_secs(9));
    // HEAD does not refresh: the stream expires 10 s after the POST.
    assert_eq!(t.head("/s").status, 200);
    assert_eq!(
        t.server.poll_timeout(),
        Some(t.now + Duration::from_secs(1))
    );
    t.advance(Duration::from_secs(1));
    assert_eq!(t.server.stream_paths(), Vec::<String>::new());
    assert_eq!(t.head("/s").status, 404);
    assert_eq!(t.get("/s?offset=-1").status, 404);
    assert_eq!(t.server.poll_timeout(), None);
    // The path is free again.
    assert_eq!(t.put("/s", &[TEXT], Bytes::new()).status, 201);
}

#[test]
fn live_reads_refresh_the_ttl() {
    let mut t = Harness::new();
    t.put("/s", &[TEXT, ("stream-ttl", "2")], Bytes::new());
    for _ in 0..5 {
        let id = t.start(
            Method::GET,
            &format!("/s?live=long-poll&offset={}", off(0)),
            &[],
            Bytes::new(),
        );
        t.advance(Duration::from_secs(1));
        assert_eq!(t.seen(id).status(), 204);
    }
    assert_eq!(t.head("/s").status, 200);
}

#[test]
fn absolute_expiry_uses_the_virtual_wall_clock() {
    // The origin is the first `now`; default wall time there is 2026-01-01T00:00:00Z.
    let mut t = Harness::new();
    t.put(
        "/s",
        &[TEXT, ("stream-expires-at", "2026-01-01T00:00:05Z")],
        Bytes::new(),
    );
    t.put(
        "/old",
        &[TEXT, ("stream-expires-at", "2025-12-31T23:59:59Z")],
        Bytes::new(),
    );
    assert_eq!(t.head("/old").status, 404, "expired on arrival");
    t.advance(Duration::from_millis(4999));
    assert_eq!(t.get("/s?offset=-1").status, 200);
    t.advance(Duration::from_millis(1));
    assert_eq!(t.get("/s?offset=-1").status, 404);
}

#[test]
fn expiry_ends_live_reads() {
    let mut t = Harness::with(SimServerConfig {
        long_poll_timeout: Duration::from_secs(30),
        sse_keepalive: None,
        ..SimServerConfig::default()
    });
    t.put("/s", &[TEXT, ("stream-ttl", "5")], Bytes::new());
    let lp = t.start(
        Method::GET,
        &format!("/s?live=long-poll&offset={}", off(0)),
        &[],
        Bytes::new(),
    );
    let sse = t.start(Method::GET, "/s?live=sse&offset=-1", &[], Bytes::new());
    t.advance(Duration::from_secs(5));
    assert_eq!(t.seen(lp).status(), 404);
    assert!(t.seen(sse).reset);
    assert_eq!(t.server.open_exchanges(), 0);
}

#[test]
fn fork_expiry_follows_the_table() {
    let mut t = Harness::new();
    t.put("/ttl", &[TEXT, ("stream-ttl", "100")], Bytes::new());
    t.put(
        "/at",
        &[TEXT, ("stream-expires-at", "2026-01-01T01:00:00Z")],
        Bytes::new(),
    );
    t.put("/none", &[TEXT], Bytes::new());
    /// Source, the fork's own expiry headers, and the fork's TTL and expiry as HEAD shows them.
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
        Option<&'a str>,
    );
    let cases: [Case; 9] = [
        ("/none", &[], None, None),
        ("/none", &[("stream-ttl", "7")], Some("7"), None),
        (
            "/none",
            &[("stream-expires-at", "2027-01-01T00:00:00Z")],
            None,
            Some("2027-01-01T00:00:00Z"),
        ),
        ("/ttl", &[], Some("100"), None),
        ("/ttl", &[("stream-ttl", "7")], Some("7"), None),
        (
            "/ttl",
            &[("stream-expires-at", "2027-01-01T00:00:00Z")],
            None,
            Some("2027-01-01T00:00:00Z"),
        ),
        ("/at", &[], None, Some("2026-01-01T01:00:00Z")),
        ("/at", &[("stream-ttl", "7")], Some("7"), None),
        (
            "/at",
            &[("stream-expires-at", "2027-01-01T00:00:00Z")],
            None,
            Some("2027-01-01T00:00:00Z"),
        ),
    ];
    for (i, (src, own, ttl, at)) in cases.iter().enumerate() {
        let path = format!("/fork{i}");
        let mut h = vec![("stream-forked-from", *src)];
        h.extend_from_slice(own);
        assert_eq!(t.put(&path, &h, Bytes::new()).status, 201, "{path}");
        let head = t.head(&path);
        assert_eq!(head.h("stream-ttl"), *ttl, "{src} {own:?}");
        assert_eq!(head.h("stream-expires-at"), *at, "{src} {own:?}");
    }
    // An inherited TTL is a window of the fork's own.
    t.advance(Duration::from_secs(60));
    t.get("/fork3?offset=-1");
    t.advance(Duration::from_secs(60));
    assert_eq!(t.head("/ttl").status, 404);
    assert_eq!(t.head("/fork3").status, 200);
}

#[test]
fn expired_sources_still_serve_their_forks() {
    let mut t = Harness::new();
    t.put("/src", &[TEXT, ("stream-ttl", "5")], "inherited");
    t.put(
        "/f",
        &[("stream-forked-from", "/src"), ("stream-ttl", "100")],
        Bytes::new(),
    );
    t.advance(Duration::from_secs(5));
    assert_eq!(t.head("/src").status, 404);
    assert_eq!(t.get("/f?offset=-1").text(), "inherited");
    // The path is free while the old data lives on for the fork.
    assert_eq!(t.put("/src", &[TEXT], "new").status, 201);
    assert_eq!(t.get("/f?offset=-1").text(), "inherited");
    assert_eq!(t.delete("/f").status, 204);
    assert_eq!(t.get("/src?offset=-1").text(), "new");
}

/// A scripted session whose every output is recorded.
fn transcript(seed: u64) -> Vec<String> {
    #[allow(clippy::disallowed_methods)]
    let t0 = std::time::Instant::now();
    let mut server = SimServer::new(SimServerConfig {
        seed,
        ..SimServerConfig::default()
    });
    let mut log = Vec::new();
    let req = |m: Method, uri: &str, h: &[(&str, &str)], body: &str| {
        let mut b = http::Request::builder().method(m).uri(uri);
        for (k, v) in h {
            b = b.header(*k, *v);
        }
        b.body(Bytes::from(body.to_owned())).unwrap()
    };
    server.handle(req(Method::PUT, "/s", &[TEXT], ""), t0);
    let mut cursor = super::FIRST_INTERVAL;
    for i in 0..30u64 {
        let now = t0 + Duration::from_millis(700 * i);
        let uri = format!("/s?cursor={cursor}&live=long-poll&offset=now");
        server.handle(req(Method::GET, &uri, &[], ""), now);
        if i % 3 == 0 {
            server.handle(req(Method::POST, "/s", &[TEXT], "x"), now);
        }
        server.handle_timeout(now + Duration::from_secs(1));
        while let Some((id, out)) = server.poll_output() {
            if let ExchangeOutput::Head(p) = &out {
                if let Some(c) = p.headers.get("stream-cursor") {
                    cursor = c.to_str().unwrap().parse().unwrap();
                }
            }
            log.push(format!("{id} {out:?}"));
        }
    }
    log
}

#[test]
fn same_seed_same_outputs() {
    let a = transcript(7);
    assert_eq!(a, transcript(7));
    assert_ne!(a, transcript(8), "cursor jitter depends on the seed");
}
