//! POST (PROTOCOL.md 5.2, 5.3) and JSON mode (9.1).

use super::{off, Harness};
use bytes::Bytes;

const OCTET: (&str, &str) = ("content-type", "application/octet-stream");
const JSON: (&str, &str) = ("content-type", "application/json");
const CLOSE: (&str, &str) = ("stream-closed", "true");

#[test]
fn plain_appends() {
    let mut t = Harness::new();
    t.create("/s", "application/octet-stream");
    let r = t.post("/s", &[OCTET], "hello");
    assert_eq!(r.status, 204);
    assert_eq!(r.next(), off(5));
    assert!(r.body.is_empty());
    assert!(r.h("stream-closed").is_none());
    assert!(r.h("producer-epoch").is_none());
    let r = t.post("/s", &[OCTET], " world");
    assert_eq!(r.next(), off(11));
    assert_eq!(t.get("/s?offset=-1").text(), "hello world");
    assert_eq!(
        t.server.stream_data("/s").unwrap(),
        vec![Bytes::from_static(b"hello"), Bytes::from_static(b" world")]
    );
    assert_eq!(t.server.tail_offset("/s").unwrap().as_str(), off(11));
    assert_eq!(t.post("/missing", &[OCTET], "x").status, 404);
}

#[test]
fn append_rejections() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    assert_eq!(
        t.post("/s", &[("content-type", "text/plain")], Bytes::new())
            .status,
        400
    );
    assert_eq!(
        t.post("/s", &[], "x").status,
        400,
        "a body needs a content type"
    );
    assert_eq!(
        t.post("/s", &[("content-type", "text/html")], "x").status,
        409
    );
    assert_eq!(
        t.post("/s", &[("content-type", "TEXT/PLAIN; charset=utf-8")], "x")
            .status,
        204
    );
    assert_eq!(t.server.stream_bytes("/s").unwrap(), "x");
}

#[test]
fn stream_seq_is_lexicographic() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    let ct = ("content-type", "text/plain");
    assert_eq!(t.post("/s", &[ct, ("stream-seq", "9")], "a").status, 204);
    // "10" < "9" byte-wise: a regression.
    let r = t.post("/s", &[ct, ("stream-seq", "10")], "b");
    assert_eq!(r.status, 409);
    assert!(r.h("stream-closed").is_none());
    assert_eq!(t.post("/s", &[ct, ("stream-seq", "9")], "b").status, 409);
    assert_eq!(t.post("/s", &[ct, ("stream-seq", "9a")], "b").status, 204);
    // Appends without Stream-Seq do not reset it.
    assert_eq!(t.post("/s", &[ct], "c").status, 204);
    assert_eq!(t.post("/s", &[ct, ("stream-seq", "9")], "d").status, 409);
    assert_eq!(t.server.stream_bytes("/s").unwrap(), "abc");
}

#[test]
fn json_mode_flattens_one_level() {
    let mut t = Harness::new();
    t.create("/j", "application/json");
    let cases: [(&str, &[&str]); 4] = [
        ("{\"event\": \"created\"}", &["{\"event\": \"created\"}"]),
        (
            "[{\"event\": \"a\"}, {\"event\": \"b\"}]",
            &["{\"event\": \"a\"}", "{\"event\": \"b\"}"],
        ),
        ("[[1,2], [3,4]]", &["[1,2]", "[3,4]"]),
        ("[[[1,2,3]]]", &["[[1,2,3]]"]),
    ];
    let mut all = Vec::new();
    for (body, stored) in cases {
        assert_eq!(t.post("/j", &[JSON], body).status, 204, "{body}");
        all.extend(stored.iter().map(|s| Bytes::from(s.to_string())));
    }
    assert_eq!(t.server.stream_data("/j").unwrap(), all);
    assert_eq!(
        t.get("/j?offset=-1").text(),
        "[{\"event\": \"created\"},{\"event\": \"a\"},{\"event\": \"b\"},[1,2],[3,4],[[1,2,3]]]"
    );
    let tail = t.server.tail_offset("/j").unwrap();
    for bad in ["[]", " [ ] ", "{", "[1,]", "nope", "1 2"] {
        assert_eq!(t.post("/j", &[JSON], bad).status, 400, "{bad}");
    }
    assert_eq!(t.server.tail_offset("/j").unwrap(), tail);
    // Scalars and strings are messages too.
    t.post("/j", &[JSON], "\"s\"");
    t.post("/j", &[JSON], "[1, null]");
    assert!(t.get("/j?offset=-1").text().ends_with(",\"s\",1,null]"));
}

#[test]
fn close_with_and_without_data() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    let ct = ("content-type", "text/plain");
    let r = t.post("/s", &[ct, CLOSE], "last");
    assert_eq!(r.status, 204);
    assert!(r.flag("stream-closed"));
    assert_eq!(r.next(), off(4));
    // Close-only again: idempotent 204 with the final offset, any content type.
    for headers in [&[CLOSE][..], &[CLOSE, ("content-type", "image/png")]] {
        let r = t.post("/s", headers, Bytes::new());
        assert_eq!(r.status, 204);
        assert!(r.flag("stream-closed"));
        assert_eq!(r.next(), off(4));
    }
    // Appending to a closed stream: 409 with Stream-Closed and the final offset, checked
    // before the content type (error precedence, 5.2).
    for headers in [&[ct][..], &[ct, CLOSE], &[("content-type", "image/png")]] {
        let r = t.post("/s", headers, "more");
        assert_eq!(r.status, 409);
        assert!(r.flag("stream-closed"));
        assert_eq!(r.next(), off(4));
    }
    assert_eq!(t.server.stream_bytes("/s").unwrap(), "last");

    t.create("/c", "text/plain");
    t.append("/c", "text/plain", "ab");
    let r = t.post("/c", &[CLOSE], Bytes::new());
    assert_eq!(r.status, 204);
    assert!(r.flag("stream-closed"));
    assert_eq!(r.next(), off(2));
    let h = t.head("/c");
    assert!(h.flag("stream-closed"));
    assert_eq!(h.next(), off(2));
    // An empty body with a non-"true" Stream-Closed is an empty append.
    t.create("/d", "text/plain");
    assert_eq!(
        t.post("/d", &[("stream-closed", "1")], Bytes::new()).status,
        400
    );
    assert_eq!(t.server.is_closed("/d"), Some(false));
}
