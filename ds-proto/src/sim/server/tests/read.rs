//! Catch-up reads (PROTOCOL.md 5.6), offsets (8), JSON bodies (9.1.5), caching (10.1) and the
//! chunk limit.

use super::{off, Harness};
use bytes::Bytes;
use http::Method;

const CACHEABLE: &str = "public, max-age=60, stale-while-revalidate=300";

#[test]
fn catch_up_from_anywhere() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    t.append("/s", "text/plain", "hello");
    let mid = t.append("/s", "text/plain", " world");
    assert_eq!(mid, off(11));
    for uri in ["/s", "/s?offset=-1", &format!("/s?offset={}", off(0))] {
        let r = t.get(uri);
        assert_eq!(r.status, 200, "{uri}");
        assert_eq!(r.text(), "hello world");
        assert_eq!(r.next(), off(11));
        assert!(r.flag("stream-up-to-date"));
        assert!(r.h("stream-closed").is_none());
        assert_eq!(r.h("content-type"), Some("text/plain"));
        assert_eq!(r.h("cache-control"), Some(CACHEABLE));
        assert!(r.h("stream-cursor").is_none());
        assert!(r.h("etag").is_some());
    }
    let r = t.get(&format!("/s?offset={}", off(5)));
    assert_eq!(r.text(), " world");
    // Byte streams may be read from any position.
    assert_eq!(t.get(&format!("/s?offset={}", off(7))).text(), "orld");
    // At the tail: empty, up to date, the same offset.
    let r = t.get(&format!("/s?offset={}", off(11)));
    assert!(r.body.is_empty());
    assert_eq!(r.next(), off(11));
    assert!(r.flag("stream-up-to-date"));
}

#[test]
fn bad_offsets_are_400_and_missing_streams_404() {
    let mut t = Harness::new();
    t.create("/s", "application/json");
    t.post(
        "/s",
        &[("content-type", "application/json")],
        "[\"ab\",\"cd\"]",
    );
    for bad in [
        "offset=",
        "offset=abc",
        "offset=5",
        "offset=-2",
        &format!("offset={}", off(99)),
        // Inside a JSON message.
        &format!("offset={}", off(1)),
        &format!("offset=-1&offset={}", off(0)),
        "offset=-1&live=forever",
    ] {
        let r = t.get(&format!("/s?{bad}"));
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.h("content-type"), Some("text/plain; charset=utf-8"));
    }
    assert_eq!(t.get(&format!("/s?offset={}", off(4))).text(), "[\"cd\"]");
    assert_eq!(t.get("/nope?offset=-1").status, 404);
    assert_eq!(t.head("/nope").status, 404);
    assert!(t.head("/nope").body.is_empty());
}

#[test]
fn json_reads_are_arrays() {
    let mut t = Harness::new();
    t.create("/j", "application/json");
    assert_eq!(t.get("/j?offset=-1").text(), "[]");
    t.post("/j", &[("content-type", "application/json")], "{\"a\":1}");
    t.post("/j", &[("content-type", "application/json")], "[2,3]");
    let r = t.get("/j?offset=-1");
    assert_eq!(r.text(), "[{\"a\":1},2,3]");
    assert_eq!(r.h("content-type"), Some("application/json"));
    assert_eq!(crate::json::split_array(&r.body).unwrap().len(), 3);
    let r = t.get(&format!("/j?offset={}", r.next()));
    assert_eq!(r.text(), "[]");
}

#[test]
fn offset_now_in_catch_up() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    t.append("/s", "text/plain", "old");
    let r = t.get("/s?offset=now");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.next(), off(3));
    assert!(r.flag("stream-up-to-date"));
    assert_eq!(r.h("cache-control"), Some("no-store"));
    assert!(r.h("etag").is_none());
    assert!(r.h("stream-closed").is_none());
    t.create("/j", "application/json");
    t.post("/j", &[("content-type", "application/json")], "[1]");
    let r = t.get("/j?offset=now");
    assert_eq!(r.text(), "[]");
    assert_eq!(r.next(), off(1));
    t.post("/s", &[("stream-closed", "true")], Bytes::new());
    let r = t.get("/s?offset=now");
    assert!(r.flag("stream-closed") && r.flag("stream-up-to-date"));
    assert_eq!(r.next(), off(3));
}

#[test]
fn closure_is_signalled_at_the_end_only() {
    let mut t = Harness::with_chunk_limit(2);
    t.create("/s", "application/octet-stream");
    t.append("/s", "application/octet-stream", "abcd");
    t.post("/s", &[("stream-closed", "true")], Bytes::new());
    let r = t.get("/s?offset=-1");
    assert_eq!(r.text(), "ab");
    assert!(r.h("stream-closed").is_none());
    assert!(r.h("stream-up-to-date").is_none());
    let r = t.get(&format!("/s?offset={}", r.next()));
    assert_eq!(r.text(), "cd");
    assert!(r.flag("stream-closed") && r.flag("stream-up-to-date"));
    let r = t.get(&format!("/s?offset={}", r.next()));
    assert!(r.body.is_empty());
    assert!(r.flag("stream-closed"));
    assert_eq!(r.next(), off(4));
}

#[test]
fn etags_revalidate_and_change_on_close() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    t.append("/s", "text/plain", "abc");
    let r = t.get("/s?offset=-1");
    let etag = r.h("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let inm = [("if-none-match", etag.as_str())];
    let r = t.send(Method::GET, "/s?offset=-1", &inm, Bytes::new());
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.h("etag"), Some(etag.as_str()));
    assert_eq!(r.next(), off(3));
    let r = t.send(
        Method::GET,
        "/s?offset=-1",
        &[("if-none-match", "\"other\", *")],
        Bytes::new(),
    );
    assert_eq!(r.status, 304);
    let r = t.send(
        Method::GET,
        "/s?offset=-1",
        &[("if-none-match", "\"other\"")],
        Bytes::new(),
    );
    assert_eq!(r.status, 200);
    // The same range after close: the ETag changes, so no 304 hides the closure.
    t.post("/s", &[("stream-closed", "true")], Bytes::new());
    let r = t.send(Method::GET, "/s?offset=-1", &inm, Bytes::new());
    assert_eq!(r.status, 200);
    assert!(r.flag("stream-closed"));
    let closed_tag = r.h("etag").unwrap();
    assert_ne!(closed_tag, etag);
    assert!(closed_tag.ends_with(":c\""), "{closed_tag}");
    // New data changes the ETag too.
    t.create("/g", "text/plain");
    t.append("/g", "text/plain", "a");
    let before = t.get("/g?offset=-1").h("etag").unwrap().to_owned();
    t.append("/g", "text/plain", "b");
    assert_ne!(t.get("/g?offset=-1").h("etag").unwrap(), before);
}

#[test]
fn chunk_limit_splits_bytes() {
    let mut t = Harness::with_chunk_limit(4);
    t.create("/s", "application/octet-stream");
    t.append("/s", "application/octet-stream", "ab");
    t.append("/s", "application/octet-stream", "cdefghij");
    assert_eq!(read_all(&mut t, "/s"), ["abcd", "efgh", "ij"]);
}

#[test]
fn chunk_limit_keeps_json_messages_whole() {
    let mut t = Harness::with_chunk_limit(5);
    t.create("/j", "application/json");
    t.post(
        "/j",
        &[("content-type", "application/json")],
        "[1,22,\"long string\",4]",
    );
    assert_eq!(
        read_all(&mut t, "/j"),
        ["[1,22]", "[\"long string\"]", "[4]"]
    );
}

#[test]
fn chunk_limit_respects_utf8_in_text_streams() {
    let mut t = Harness::with_chunk_limit(3);
    t.create("/t", "text/plain; charset=utf-8");
    t.post("/t", &[("content-type", "text/plain")], "aé€b");
    assert_eq!(read_all(&mut t, "/t"), ["aé", "€", "b"]);
}

#[test]
fn head_reports_metadata_without_touching() {
    let mut t = Harness::new();
    t.put(
        "/s",
        &[("content-type", "text/plain"), ("stream-ttl", "30")],
        "abc",
    );
    let h = t.head("/s");
    assert_eq!(h.status, 200);
    assert_eq!(h.h("content-type"), Some("text/plain"));
    assert_eq!(h.next(), off(3));
    assert_eq!(h.h("stream-ttl"), Some("30"));
    assert!(h.h("stream-closed").is_none());
    assert_eq!(h.h("cache-control"), Some("no-store"));
    assert!(h.body.is_empty());
}

/// Reads every chunk of `path` from the start, following `Stream-Next-Offset` until up to date.
fn read_all(t: &mut Harness, path: &str) -> Vec<String> {
    let mut offset = "-1".to_owned();
    let mut bodies = Vec::new();
    loop {
        let r = t.get(&format!("{path}?offset={offset}"));
        assert_eq!(r.status, 200, "{path} at {offset}");
        bodies.push(r.text().to_owned());
        if r.flag("stream-up-to-date") {
            break;
        }
        // A read that is not up to date makes progress, and the reads come to an end.
        assert_ne!(r.next(), offset, "{path}: no progress");
        assert!(bodies.len() < 64, "{path}: no end in sight");
        offset = r.next().to_owned();
    }
    bodies
}

#[test]
fn offsets_past_the_tail_are_400_for_byte_streams_too() {
    // 5.6: an offset the stream never handed out is a bad request, whatever the content type.
    let mut t = Harness::new();
    t.create("/s", "application/octet-stream");
    t.append("/s", "application/octet-stream", "abc");
    assert_eq!(t.get(&format!("/s?offset={}", off(3))).status, 200);
    for past in [4, 99] {
        let r = t.get(&format!("/s?offset={}", off(past)));
        assert_eq!(r.status, 400, "{past}");
        let r = t.get(&format!("/s?offset={}&live=long-poll", off(past)));
        assert_eq!(r.status, 400, "long-poll at {past}");
    }
}

#[test]
fn json_chunk_limit_counts_the_bytes_of_whole_messages() {
    // 9.1.5 and the chunk limit: messages are never split; a message that exactly fills the
    // limit still goes in, one that would pass it waits for the next read.
    let json = [("content-type", "application/json")];
    let mut t = Harness::with_chunk_limit(5);
    t.create("/exact", "application/json");
    t.post("/exact", &json, "[1,2345,6]");
    assert_eq!(read_all(&mut t, "/exact"), ["[1,2345]", "[6]"]);
    t.create("/over", "application/json");
    t.post("/over", &json, "[1,\"abc\",7]");
    assert_eq!(read_all(&mut t, "/over"), ["[1]", "[\"abc\"]", "[7]"]);
    t.create("/pairs", "application/json");
    t.post("/pairs", &json, "[12,345,6789]");
    assert_eq!(read_all(&mut t, "/pairs"), ["[12,345]", "[6789]"]);
}

#[test]
fn json_fork_offsets_are_the_message_boundaries_of_both_parts() {
    // 8 "Offsets and forked streams", 9.1: a fork's reads may start at any message boundary,
    // inherited or its own, and nowhere else.
    let json = [("content-type", "application/json")];
    let mut t = Harness::new();
    t.create("/src", "application/json");
    t.post("/src", &json, "[1,22]"); // 1: 0..1, 22: 1..3
    let r = t.put("/f", &[("stream-forked-from", "/src")], Bytes::new());
    assert_eq!(r.status, 201);
    t.post("/f", &json, "[333,4444]"); // 333: 3..6, 4444: 6..10
    t.post("/src", &json, "[55555]"); // the source diverges: 3..8
    for (at, body) in [
        (0, "[1,22,333,4444]"),
        (1, "[22,333,4444]"),
        (3, "[333,4444]"),
        (6, "[4444]"),
        (10, "[]"),
    ] {
        let r = t.get(&format!("/f?offset={}", off(at)));
        assert_eq!(r.status, 200, "{at}");
        assert_eq!(r.text(), body, "{at}");
    }
    for inside in [2, 4, 5, 7, 8, 9, 11] {
        assert_eq!(
            t.get(&format!("/f?offset={}", off(inside))).status,
            400,
            "{inside}"
        );
    }
    // The source's own boundaries after the fork point are its own.
    assert_eq!(t.get(&format!("/src?offset={}", off(3))).text(), "[55555]");
    assert_eq!(t.get(&format!("/src?offset={}", off(6))).status, 400);
}

#[test]
fn json_forks_of_forks_count_sub_offsets_within_the_inherited_append() {
    // 4.2 "Fork creation errors": a sub-offset counts messages of the append the anchor starts;
    // a fork cut inside an append ends that append at its fork point.
    let json = [("content-type", "application/json")];
    let mut t = Harness::new();
    t.create("/src", "application/json");
    t.post("/src", &json, "[1,2,3,4]");
    let start = off(0);
    let from = |src: &'static str, sub: &'static str| {
        vec![
            ("stream-forked-from", src),
            ("stream-fork-offset", start.as_str()),
            ("stream-fork-sub-offset", sub),
        ]
    };
    let r = t.put("/f", &from("/src", "3"), Bytes::new());
    assert_eq!(r.status, 201);
    assert_eq!(r.next(), off(3));
    t.post("/f", &json, "[5]");
    let r = t.put("/g", &from("/f", "2"), Bytes::new());
    assert_eq!(r.status, 201);
    assert_eq!(r.next(), off(2));
    assert_eq!(t.get("/g?offset=-1").text(), "[1,2]");
    let r = t.put("/h", &from("/f", "3"), Bytes::new());
    assert_eq!(r.status, 201);
    assert_eq!(t.get("/h?offset=-1").text(), "[1,2,3]");
    // Past the inherited part of the append: the message 5 is another append of /f.
    assert_eq!(t.put("/i", &from("/f", "4"), Bytes::new()).status, 400);
}

#[test]
fn text_forks_cut_inside_an_append_read_from_their_fork_point() {
    // 5.6 with the chunk limit: a read from a fork's own start makes progress (the first
    // character whole) even when the fork point lies inside one of the source's appends.
    let mut t = Harness::with_chunk_limit(1);
    t.create("/src", "text/plain");
    t.append("/src", "text/plain", "abc");
    let r = t.put(
        "/f",
        &[
            ("stream-forked-from", "/src"),
            ("stream-fork-offset", &off(0)),
            ("stream-fork-sub-offset", "1"),
        ],
        Bytes::new(),
    );
    assert_eq!(r.status, 201);
    t.append("/f", "text/plain", "€é");
    let r = t.get(&format!("/f?offset={}", off(1)));
    assert_eq!(r.text(), "€");
    assert_eq!(r.next(), off(4));
    assert_eq!(read_all(&mut t, "/f"), ["a", "€", "é"]);
}

#[test]
fn text_read_from_inside_a_character_makes_progress() {
    // Byte offsets may fall inside a character of a text stream (5.6 allows any offset the
    // server handed out, a fork point may be one): the read neither fails nor stalls.
    let mut t = Harness::with_chunk_limit(1);
    t.create("/t", "text/plain");
    t.append("/t", "text/plain", "€");
    let r = t.get(&format!("/t?offset={}", off(1)));
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], &"€".as_bytes()[1..2]);
    assert_eq!(r.next(), off(2));
}

#[test]
fn deleting_a_fork_keeps_its_source_readable() {
    // 4.2 / 5.4: clean-up cascades only to sources clients can no longer reach.
    let mut t = Harness::new();
    t.create("/src", "text/plain");
    t.append("/src", "text/plain", "abc");
    let r = t.put("/f", &[("stream-forked-from", "/src")], Bytes::new());
    assert_eq!(r.status, 201);
    assert_eq!(t.delete("/f").status, 204);
    let r = t.get("/src?offset=-1");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "abc");
    t.append("/src", "text/plain", "d");
    assert_eq!(t.get("/src?offset=-1").text(), "abcd");
}
