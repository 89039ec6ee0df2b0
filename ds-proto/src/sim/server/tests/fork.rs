//! Forks (PROTOCOL.md 4.2, 8 "Offsets and forked streams").

use super::{off, Harness};
use bytes::Bytes;
use http::Method;

const TEXT: (&str, &str) = ("content-type", "text/plain");

fn fork(t: &mut Harness, path: &str, headers: &[(&str, &str)]) -> super::Resp {
    t.put(path, headers, Bytes::new())
}

fn source(t: &mut Harness) {
    t.create("/src", "text/plain");
    t.append("/src", "text/plain", "hello");
    t.append("/src", "text/plain", " world");
}

#[test]
fn fork_inherits_up_to_the_offset_then_diverges() {
    let mut t = Harness::new();
    source(&mut t);
    let r = fork(
        &mut t,
        "/f",
        &[
            ("stream-forked-from", "/src"),
            ("stream-fork-offset", &off(5)),
        ],
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.h("content-type"), Some("text/plain"), "inherited");
    assert_eq!(r.next(), off(5));
    t.append("/f", "text/plain", "!");
    t.append("/src", "text/plain", " again");
    assert_eq!(t.get("/f?offset=-1").text(), "hello!");
    assert_eq!(t.get(&format!("/f?offset={}", off(2))).text(), "llo!");
    assert_eq!(t.get(&format!("/f?offset={}", off(5))).text(), "!");
    assert_eq!(t.get("/src?offset=-1").text(), "hello world again");
    assert_eq!(
        t.server.stream_data("/f").unwrap(),
        vec![Bytes::from_static(b"hello"), Bytes::from_static(b"!")]
    );
    // Offsets are shared up to the divergence point.
    assert_eq!(t.get("/f?offset=-1").next(), off(6));
}

#[test]
fn fork_offset_defaults_to_the_tail_and_is_checked() {
    let mut t = Harness::new();
    source(&mut t);
    let r = fork(&mut t, "/f", &[("stream-forked-from", "/src")]);
    assert_eq!(r.status, 201);
    assert_eq!(r.next(), off(11));
    assert_eq!(t.get("/f?offset=-1").text(), "hello world");
    let from = ("stream-forked-from", "/src");
    assert_eq!(
        fork(&mut t, "/g", &[from, ("stream-fork-offset", &off(12))]).status,
        400
    );
    assert_eq!(
        fork(&mut t, "/g", &[from, ("stream-fork-offset", "12")]).status,
        400
    );
    assert_eq!(
        fork(&mut t, "/g", &[from, ("stream-fork-offset", "-1")]).status,
        400
    );
    assert_eq!(
        fork(&mut t, "/g", &[("stream-forked-from", "/none")]).status,
        404
    );
    assert_eq!(
        fork(&mut t, "/g", &[("stream-fork-offset", &off(1))]).status,
        400
    );
    assert_eq!(
        fork(&mut t, "/g", &[from, ("content-type", "application/json")]).status,
        409
    );
    assert_eq!(
        fork(
            &mut t,
            "/g",
            &[from, ("content-type", "text/plain; charset=utf-8")]
        )
        .status,
        201
    );
}

#[test]
fn sub_offsets_refine_within_an_append() {
    let mut t = Harness::new();
    source(&mut t);
    let at = |sub: &'static str| {
        vec![
            ("stream-forked-from", "/src"),
            ("stream-fork-offset", "0000000000000000_0000000000000005"),
            ("stream-fork-sub-offset", sub),
        ]
    };
    let r = fork(&mut t, "/f3", &at("3"));
    assert_eq!(r.status, 201);
    assert_eq!(r.next(), off(8));
    assert_eq!(t.get("/f3?offset=-1").text(), "hello wo");
    assert_eq!(fork(&mut t, "/f6", &at("6")).status, 201);
    // Past the end of the append " world": 400.
    assert_eq!(fork(&mut t, "/f7", &at("7")).status, 400);
    assert_eq!(fork(&mut t, "/fx", &at("x")).status, 400);
    assert_eq!(fork(&mut t, "/fn", &at("-1")).status, 400);
    let r = fork(&mut t, "/f0", &at("0"));
    assert_eq!(r.next(), off(5));
    // A fork of a fork cut inside an append: its inherited range ends there.
    let r = fork(
        &mut t,
        "/ff",
        &[
            ("stream-forked-from", "/f3"),
            ("stream-fork-offset", &off(5)),
            ("stream-fork-sub-offset", "3"),
        ],
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        fork(
            &mut t,
            "/fg",
            &[
                ("stream-forked-from", "/f3"),
                ("stream-fork-offset", &off(5)),
                ("stream-fork-sub-offset", "4"),
            ],
        )
        .status,
        400
    );
}

#[test]
fn json_sub_offsets_count_messages() {
    let mut t = Harness::new();
    t.create("/j", "application/json");
    t.post("/j", &[("content-type", "application/json")], "[1,2,3]");
    t.post("/j", &[("content-type", "application/json")], "[4]");
    let h = |offset: String, sub: &'static str| {
        vec![
            ("stream-forked-from".to_owned(), "/j".to_owned()),
            ("stream-fork-offset".to_owned(), offset),
            ("stream-fork-sub-offset".to_owned(), sub.to_owned()),
        ]
    };
    let send = |t: &mut Harness, path: &str, h: Vec<(String, String)>| {
        let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        fork(t, path, &h)
    };
    let r = send(&mut t, "/a", h(off(0), "2"));
    assert_eq!(r.status, 201);
    assert_eq!(t.get("/a?offset=-1").text(), "[1,2]");
    assert_eq!(send(&mut t, "/b", h(off(1), "2")).status, 201);
    assert_eq!(t.get("/b?offset=-1").text(), "[1,2,3]");
    assert_eq!(
        send(&mut t, "/c", h(off(1), "3")).status,
        400,
        "past the batch"
    );
    assert_eq!(send(&mut t, "/d", h(off(3), "1")).status, 201);
    assert_eq!(t.get("/d?offset=-1").text(), "[1,2,3,4]");
    // Not a message boundary? Messages here are one byte each; any position up to the tail
    // is one. A longer message makes a non-boundary.
    t.create("/k", "application/json");
    t.post("/k", &[("content-type", "application/json")], "[\"abc\"]");
    let r = fork(
        &mut t,
        "/e",
        &[
            ("stream-forked-from", "/k"),
            ("stream-fork-offset", &off(2)),
        ],
    );
    assert_eq!(r.status, 400);
    // Reads spanning the fork boundary are one array.
    t.post("/d", &[("content-type", "application/json")], "{\"own\":5}");
    assert_eq!(t.get("/d?offset=-1").text(), "[1,2,3,4,{\"own\":5}]");
}

#[test]
fn forks_are_independent_streams() {
    let mut t = Harness::new();
    source(&mut t);
    let p = [
        TEXT,
        ("producer-id", "p"),
        ("producer-epoch", "3"),
        ("producer-seq", "0"),
    ];
    assert_eq!(t.post("/src", &p, "x").status, 200);
    assert_eq!(
        t.post("/src", &[TEXT, ("stream-seq", "5")], "y").status,
        204
    );
    t.post("/src", &[("stream-closed", "true")], Bytes::new());
    // Closed sources may be forked; the fork is open.
    let r = fork(&mut t, "/f", &[("stream-forked-from", "/src")]);
    assert_eq!(r.status, 201);
    assert!(r.h("stream-closed").is_none());
    // No producer or Stream-Seq state is inherited.
    assert_eq!(t.server.producer_state("/f", "p"), None);
    let p0 = [
        TEXT,
        ("producer-id", "p"),
        ("producer-epoch", "0"),
        ("producer-seq", "0"),
    ];
    assert_eq!(t.post("/f", &p0, "z").status, 200);
    assert_eq!(t.post("/f", &[TEXT, ("stream-seq", "1")], "w").status, 204);
    assert_eq!(t.get("/f?offset=-1").text(), "hello worldxyzw");
    assert_eq!(t.server.is_closed("/src"), Some(true));
}

#[test]
fn fork_creation_is_idempotent() {
    let mut t = Harness::new();
    source(&mut t);
    let h = [
        ("stream-forked-from", "/src"),
        ("stream-fork-offset", &off(5)),
    ];
    assert_eq!(fork(&mut t, "/f", &h).status, 201);
    assert_eq!(fork(&mut t, "/f", &h).status, 200);
    assert_eq!(fork(&mut t, "/f", &[h[0], h[1], TEXT]).status, 200);
    assert_eq!(
        fork(&mut t, "/f", &[h[0], ("stream-fork-offset", &off(6))]).status,
        409
    );
    assert_eq!(
        fork(&mut t, "/f", &[TEXT]).status,
        409,
        "not a fork request"
    );
    t.create("/src2", "text/plain");
    assert_eq!(
        fork(&mut t, "/f", &[("stream-forked-from", "/src2"), h[1]]).status,
        409
    );
}

#[test]
fn soft_delete_keeps_data_for_forks() {
    let mut t = Harness::new();
    source(&mut t);
    fork(&mut t, "/f", &[("stream-forked-from", "/src")]);
    fork(&mut t, "/g", &[("stream-forked-from", "/f")]);
    assert_eq!(t.delete("/src").status, 204);
    // Every direct operation on the soft-deleted source: 410; re-creation: 409.
    assert_eq!(t.get("/src?offset=-1").status, 410);
    assert_eq!(t.head("/src").status, 410);
    assert_eq!(t.post("/src", &[TEXT], "x").status, 410);
    assert_eq!(t.delete("/src").status, 410);
    assert_eq!(t.put("/src", &[TEXT], Bytes::new()).status, 409);
    assert_eq!(
        fork(&mut t, "/h", &[("stream-forked-from", "/src")]).status,
        409
    );
    assert_eq!(t.server.stream_data("/src"), None);
    // Forks still read through it.
    assert_eq!(t.get("/g?offset=-1").text(), "hello world");
    // Deleting the middle fork soft-deletes it too (g references it).
    assert_eq!(t.delete("/f").status, 204);
    assert_eq!(t.get("/f?offset=-1").status, 410);
    assert_eq!(t.get("/g?offset=-1").text(), "hello world");
    // The last fork goes: the chain is cleaned up and the paths are free again.
    assert_eq!(t.delete("/g").status, 204);
    assert_eq!(t.get("/src?offset=-1").status, 404);
    assert_eq!(t.get("/f?offset=-1").status, 404);
    assert_eq!(t.put("/src", &[TEXT], Bytes::new()).status, 201);
    assert_eq!(t.get("/src?offset=-1").text(), "");
}

#[test]
fn the_last_fork_expiring_frees_a_deleted_source() {
    let mut t = Harness::new();
    source(&mut t);
    let r = fork(
        &mut t,
        "/f",
        &[("stream-forked-from", "/src"), ("stream-ttl", "60")],
    );
    assert_eq!(r.status, 201);
    assert_eq!(t.delete("/src").status, 204);
    assert_eq!(
        t.put("/src", &[TEXT], Bytes::new()).status,
        409,
        "held by /f"
    );
    // The fork's TTL runs out: it goes, and with it the soft-deleted source.
    t.advance(std::time::Duration::from_secs(61));
    assert_eq!(t.get("/f?offset=-1").status, 404);
    assert_eq!(t.put("/src", &[TEXT], Bytes::new()).status, 201);
    assert_eq!(t.get("/src?offset=-1").text(), "");
}

#[test]
fn live_reads_on_forks_wait_for_the_forks_own_appends() {
    let mut t = Harness::new();
    source(&mut t);
    fork(
        &mut t,
        "/f",
        &[
            ("stream-forked-from", "/src"),
            ("stream-fork-offset", &off(5)),
        ],
    );
    // In the inherited range: at once.
    let id = t.start(
        Method::GET,
        &format!("/f?live=long-poll&offset={}", off(1)),
        &[],
        Bytes::new(),
    );
    assert_eq!(t.seen(id).text(), "ello");
    // At the fork's tail: source appends do not wake it, fork appends do.
    let id = t.start(
        Method::GET,
        &format!("/f?live=long-poll&offset={}", off(5)),
        &[],
        Bytes::new(),
    );
    t.append("/src", "text/plain", "!!!");
    assert!(t.server.is_open(id));
    t.append("/f", "text/plain", "?");
    assert_eq!(t.seen(id).text(), "?");
    // SSE delivers inherited then own data, never the source's later appends.
    let id = t.start(Method::GET, "/f?live=sse&offset=-1", &[], Bytes::new());
    t.append("/src", "text/plain", "no");
    t.append("/f", "text/plain", "yes");
    let text = t.seen(id).text().to_owned();
    let data: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("data:") && !l.contains("streamNextOffset"))
        .collect();
    assert_eq!(data, ["data:hello?", "data:yes"]);
}

/// A long-poll waiting on a stream that is deleted ends with the status a new request would
/// get: 410 "gone" for a source that a fork keeps (soft-deleted), 404 for a stream removed.
#[test]
fn deleting_a_stream_ends_its_long_polls_with_the_status_of_a_new_request() {
    let mut t = Harness::new();
    source(&mut t);
    assert_eq!(
        fork(&mut t, "/f", &[("stream-forked-from", "/src")]).status,
        201
    );
    let tail = t.head("/src").next().to_owned();
    let poll = |t: &mut Harness, path: &str| {
        t.start(
            Method::GET,
            &format!("{path}?live=long-poll&offset={tail}"),
            &[],
            Bytes::new(),
        )
    };
    let kept = poll(&mut t, "/src");
    assert_eq!(t.delete("/src").status, 204);
    let s = t.seen(kept);
    assert_eq!((s.status(), s.text()), (410, "stream is gone"));
    let ftail = t.head("/f").next().to_owned();
    let removed = t.start(
        Method::GET,
        &format!("/f?live=long-poll&offset={ftail}"),
        &[],
        Bytes::new(),
    );
    assert_eq!(t.delete("/f").status, 204);
    let s = t.seen(removed);
    assert_eq!((s.status(), s.text()), (404, "stream not found"));
}
