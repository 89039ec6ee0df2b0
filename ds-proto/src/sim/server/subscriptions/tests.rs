//! Subscriptions driven through `SimServer` with hand-built requests and virtual time
//! (PROTOCOL.md 6, 7).

use crate::sim::server::tests::{off, Harness, Resp};
use crate::sim::{SimServerConfig, WebhookDelivery};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use http::Method;
use serde_json::{json, Value};
use std::time::Duration;

const JSON: (&str, &str) = ("content-type", "application/json");
const TEXT: (&str, &str) = ("content-type", "text/plain");
const HOST: (&str, &str) = ("host", "ds.test:4437");
const CTL: &str = "/v1/stream/__ds/subscriptions";

fn body(r: &Resp) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

fn code(r: &Resp) -> String {
    body(r)["error"]["code"].as_str().unwrap().to_owned()
}

fn put_sub(t: &mut Harness, id: &str, config: &Value) -> Resp {
    t.put(&format!("{CTL}/{id}"), &[JSON, HOST], config.to_string())
}

fn get_sub(t: &mut Harness, id: &str) -> Value {
    let r = t.get(&format!("{CTL}/{id}"));
    assert_eq!(r.status, 200, "{}", r.text());
    body(&r)
}

/// `(path, link_type, acked_offset)` of a subscription's links.
fn links(t: &mut Harness, id: &str) -> Vec<(String, String, String)> {
    get_sub(t, id)["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_owned(),
                s["link_type"].as_str().unwrap().to_owned(),
                s["acked_offset"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn link(path: &str, kind: &str, acked: &str) -> (String, String, String) {
    (path.to_owned(), kind.to_owned(), acked.to_owned())
}

fn stream(t: &mut Harness, rel: &str, data: &str) {
    let path = format!("/v1/stream/{rel}");
    t.create(&path, "text/plain");
    if !data.is_empty() {
        t.append(&path, "text/plain", data);
    }
}

fn append(t: &mut Harness, rel: &str, data: &str) -> String {
    t.append(&format!("/v1/stream/{rel}"), "text/plain", data)
}

/// A pull-wake subscription `id` on `pattern` with wake stream `wake/pool` (a JSON stream).
fn pull_wake(t: &mut Harness, id: &str, pattern: &str, lease_ms: u64) {
    if t.server.stream_data("/v1/stream/wake/pool").is_none() {
        t.create("/v1/stream/wake/pool", "application/json");
    }
    let r = put_sub(
        t,
        id,
        &json!({"type": "pull-wake", "pattern": pattern, "wake_stream": "wake/pool",
                "lease_ttl_ms": lease_ms}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

fn wake_events(t: &Harness) -> Vec<Value> {
    t.server
        .stream_data("/v1/stream/wake/pool")
        .unwrap()
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect()
}

fn post_json(t: &mut Harness, uri: &str, token: Option<&str>, value: &Value) -> Resp {
    let auth = token.map(|tok| format!("Bearer {tok}"));
    let mut headers = vec![JSON];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    t.post(uri, &headers, value.to_string())
}

fn claim(t: &mut Harness, id: &str, worker: &str) -> Resp {
    post_json(
        t,
        &format!("{CTL}/{id}/claim"),
        None,
        &json!({ "worker": worker }),
    )
}

/// A successful claim's `(wake_id, generation, token, body)`.
fn claimed(t: &mut Harness, id: &str, worker: &str) -> (String, u64, String, Value) {
    let r = claim(t, id, worker);
    assert_eq!(r.status, 200, "{}", r.text());
    let b = body(&r);
    (
        b["wake_id"].as_str().unwrap().to_owned(),
        b["generation"].as_u64().unwrap(),
        b["token"].as_str().unwrap().to_owned(),
        b,
    )
}

fn ack(
    t: &mut Harness,
    id: &str,
    token: &str,
    wake: &str,
    generation: u64,
    acks: &[(&str, &str)],
    done: bool,
) -> Resp {
    let acks: Vec<Value> = acks
        .iter()
        .map(|(s, o)| json!({"stream": s, "offset": o}))
        .collect();
    post_json(
        t,
        &format!("{CTL}/{id}/ack"),
        Some(token),
        &json!({"wake_id": wake, "generation": generation, "acks": acks, "done": done}),
    )
}

// ----- create, re-confirm, read, delete (6.2, 6.3) ---------------------------------------------

#[test]
fn create_reconfirm_conflict_get_delete() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "hello");
    let config = json!({"type": "pull-wake", "pattern": "events/*", "streams": ["x/b", "x/a"],
                        "wake_stream": "wake/pool", "description": "proc"});
    let r = put_sub(&mut t, "sub-1", &config);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.h("content-type"), Some("application/json"));
    let created = body(&r);
    assert_eq!(created["id"], "sub-1");
    assert_eq!(created["subscription_id"], "sub-1");
    assert_eq!(created["type"], "pull-wake");
    assert_eq!(created["pattern"], "events/*");
    assert_eq!(created["wake_stream"], "wake/pool");
    assert_eq!(created["webhook"], Value::Null);
    assert_eq!(created["lease_ttl_ms"], 30_000);
    assert_eq!(created["status"], "active");
    assert_eq!(created["description"], "proc");
    assert_eq!(created["created_at"], "2026-01-01T00:00:00.000Z");

    // Same configuration, differently spelled (order, duplicates, slashes): 200.
    let same = json!({"type": "pull-wake", "pattern": "/events/*", "streams": ["x/a", "x/b/", "x/a"],
                      "wake_stream": "wake/pool/", "description": "proc", "lease_ttl_ms": 30000});
    let r = put_sub(&mut t, "sub-1", &same);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(body(&r), created);

    for different in [
        json!({"type": "pull-wake", "pattern": "events/**", "streams": ["x/a", "x/b"],
               "wake_stream": "wake/pool", "description": "proc"}),
        json!({"type": "pull-wake", "pattern": "events/*", "streams": ["x/a"],
               "wake_stream": "wake/pool", "description": "proc"}),
        json!({"type": "pull-wake", "pattern": "events/*", "streams": ["x/a", "x/b"],
               "wake_stream": "wake/pool", "description": "other"}),
        json!({"type": "pull-wake", "pattern": "events/*", "streams": ["x/a", "x/b"],
               "wake_stream": "wake/pool", "description": "proc", "lease_ttl_ms": 1000}),
    ] {
        let r = put_sub(&mut t, "sub-1", &different);
        assert_eq!(r.status, 409, "{different}");
        assert_eq!(code(&r), "SUBSCRIPTION_ALREADY_EXISTS");
    }

    assert_eq!(get_sub(&mut t, "sub-1"), created);
    assert_eq!(t.server.subscription_ids(), vec!["sub-1"]);
    assert_eq!(t.delete(&format!("{CTL}/sub-1")).status, 204);
    let r = t.get(&format!("{CTL}/sub-1"));
    assert_eq!(r.status, 404);
    assert_eq!(code(&r), "SUBSCRIPTION_NOT_FOUND");
    // Deleting an absent subscription is idempotent.
    assert_eq!(t.delete(&format!("{CTL}/sub-1")).status, 204);
    // And the id can be used again.
    assert_eq!(put_sub(&mut t, "sub-1", &config).status, 201);
}

#[test]
fn invalid_configurations_are_400_invalid_request() {
    let mut t = Harness::new();
    for bad in [
        json!({"type": "pull-wake", "wake_stream": "w"}),
        json!({"type": "push", "pattern": "a"}),
        json!({"type": "pull-wake", "pattern": "a"}),
        json!({"type": "webhook", "pattern": "a"}),
        json!({"type": "pull-wake", "pattern": "a", "wake_stream": "w", "lease_ttl_ms": 999}),
        json!({"type": "pull-wake", "pattern": "a", "wake_stream": "w", "lease_ttl_ms": 600_001}),
    ] {
        let r = put_sub(&mut t, "s", &bad);
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(code(&r), "INVALID_REQUEST", "{bad}");
        assert!(body(&r)["error"]["message"].is_string());
    }
    for unsafe_url in [
        "http://worker.example/",
        "https://10.0.0.1/",
        "https://169.254.169.254/",
    ] {
        let bad = json!({"type": "webhook", "pattern": "a", "webhook": {"url": unsafe_url}});
        let r = put_sub(&mut t, "s", &bad);
        assert_eq!(
            (r.status, code(&r).as_str()),
            (400, "WEBHOOK_URL_REJECTED"),
            "{bad}"
        );
    }
    let r = t.put(&format!("{CTL}/s"), &[JSON], "{not json");
    assert_eq!((r.status, code(&r).as_str()), (400, "INVALID_REQUEST"));
    assert!(t.server.subscription_ids().is_empty());
}

/// 6: `__ds` paths never reach stream operations.
#[test]
fn the_ds_prefix_is_reserved() {
    let mut t = Harness::new();
    let r = t.put("/v1/stream/__ds/whatever", &[TEXT], Bytes::new());
    assert_eq!(r.status, 404);
    assert_eq!(code(&r), "NOT_FOUND");
    assert!(t.server.stream_paths().is_empty());
    let r = t.send(Method::PATCH, &format!("{CTL}/s"), &[], Bytes::new());
    assert_eq!(r.status, 405);
    // Not a control path: an ordinary stream.
    t.create("/v1/stream/__dsx", "text/plain");
}

#[test]
fn the_stream_root_is_configurable() {
    let mut t = Harness::with(SimServerConfig {
        stream_root: "/streams/".to_owned(),
        ..SimServerConfig::default()
    });
    t.create("/streams/events/a", "text/plain");
    t.create("/v1/stream/events/b", "text/plain");
    let r = t.put(
        "/streams/__ds/subscriptions/s",
        &[JSON],
        json!({"type": "pull-wake", "pattern": "events/*", "wake_stream": "w"}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let b = body(&r);
    let paths: Vec<&str> = b["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["events/a"]);
}

// ----- membership and globs (6.1, 6.2, 6.4) ----------------------------------------------------

#[test]
fn backfill_links_matching_streams_at_their_tail() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "12345");
    stream(&mut t, "events/deep/er/b", "xy");
    stream(&mut t, "events", "");
    stream(&mut t, "other/c", "zzz");
    t.create("/elsewhere/events/d", "text/plain");
    pull_wake(&mut t, "all", "events/**", 30_000);
    pull_wake(&mut t, "one", "events/*", 30_000);
    assert_eq!(
        links(&mut t, "all"),
        vec![
            link("events", "glob", &off(0)),
            link("events/a", "glob", &off(5)),
            link("events/deep/er/b", "glob", &off(2)),
        ]
    );
    assert_eq!(
        links(&mut t, "one"),
        vec![link("events/a", "glob", &off(5))]
    );
    // Backfill replays nothing: no wake.
    assert!(wake_events(&t).is_empty());
    assert_eq!(code(&claim(&mut t, "all", "w")), "NO_PENDING_WORK");
}

#[test]
fn streams_first_seen_through_a_write_are_linked_at_minus_one() {
    let mut t = Harness::new();
    pull_wake(&mut t, "s", "events/**", 30_000);
    stream(&mut t, "events/new/x", "");
    // Created empty: not linked yet.
    assert!(links(&mut t, "s").is_empty());
    append(&mut t, "events/new/x", "abc");
    assert_eq!(links(&mut t, "s"), vec![link("events/new/x", "glob", "-1")]);
    // A stream created with data counts as written.
    t.put("/v1/stream/events/y", &[TEXT], "data");
    assert_eq!(
        links(&mut t, "s"),
        vec![
            link("events/new/x", "glob", "-1"),
            link("events/y", "glob", "-1")
        ]
    );
    // Non-matching streams stay out.
    stream(&mut t, "other/z", "q");
    assert_eq!(links(&mut t, "s").len(), 2);
}

#[test]
fn explicit_membership_add_and_remove_with_slashes() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "1234");
    stream(&mut t, "x/y/z", "12");
    pull_wake(&mut t, "s", "events/*", 30_000);
    let uri = format!("{CTL}/s/streams");
    let r = t.post(
        &uri,
        &[JSON],
        json!({"streams": ["x/y/z", "events/a", "nope/n"]}).to_string(),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        links(&mut t, "s"),
        vec![
            link("events/a", "explicit", &off(4)),
            link("nope/n", "explicit", &off(0)),
            link("x/y/z", "explicit", &off(2)),
        ]
    );
    // Idempotent.
    assert_eq!(
        t.post(&uri, &[JSON], json!({"streams": ["x/y/z"]}).to_string())
            .status,
        204
    );
    assert_eq!(links(&mut t, "s").len(), 3);
    // Removal: URL-encoded slashes, raw slashes, an absent link.
    assert_eq!(t.delete(&format!("{CTL}/s/streams/x%2Fy%2Fz")).status, 204);
    assert_eq!(t.delete(&format!("{CTL}/s/streams/nope/n")).status, 204);
    assert_eq!(
        t.delete(&format!("{CTL}/s/streams/never/linked")).status,
        204
    );
    // The explicit link of a stream the pattern matches becomes a glob link.
    assert_eq!(t.delete(&format!("{CTL}/s/streams/events%2Fa")).status, 204);
    assert_eq!(links(&mut t, "s"), vec![link("events/a", "glob", &off(4))]);
    // Errors.
    let r = t.post(&uri, &[JSON], json!({"streams": []}).to_string());
    assert_eq!((r.status, code(&r).as_str()), (400, "INVALID_REQUEST"));
    let r = t.post(
        &format!("{CTL}/missing/streams"),
        &[JSON],
        json!({"streams": ["a"]}).to_string(),
    );
    assert_eq!(
        (r.status, code(&r).as_str()),
        (404, "SUBSCRIPTION_NOT_FOUND")
    );
    let r = t.delete(&format!("{CTL}/missing/streams/a"));
    assert_eq!(
        (r.status, code(&r).as_str()),
        (404, "SUBSCRIPTION_NOT_FOUND")
    );
}

#[test]
fn deleted_streams_leave_glob_links_and_reset_explicit_ones() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "1234");
    stream(&mut t, "pinned", "12");
    let r = put_sub(
        &mut t,
        "s",
        &json!({"type": "pull-wake", "pattern": "events/*", "streams": ["pinned"], "wake_stream": "w"}),
    );
    assert_eq!(r.status, 201);
    t.delete("/v1/stream/events/a");
    t.delete("/v1/stream/pinned");
    assert_eq!(
        links(&mut t, "s"),
        vec![link("pinned", "explicit", &off(0))]
    );
}

#[test]
fn expired_streams_leave_glob_links_and_reset_explicit_ones() {
    // As a delete: a stream whose TTL runs out (PROTOCOL.md 5.1) leaves the namespace.
    let mut t = Harness::new();
    t.put("/v1/stream/events/a", &[TEXT, ("stream-ttl", "10")], "1234");
    t.put("/v1/stream/pinned", &[TEXT, ("stream-ttl", "10")], "12");
    stream(&mut t, "events/kept", "5");
    let r = put_sub(
        &mut t,
        "s",
        &json!({"type": "pull-wake", "pattern": "events/*", "streams": ["pinned"], "wake_stream": "w"}),
    );
    assert_eq!(r.status, 201);
    assert_eq!(links(&mut t, "s").len(), 3);
    t.advance(Duration::from_secs(11));
    assert_eq!(
        links(&mut t, "s"),
        vec![
            link("events/kept", "glob", &off(1)),
            link("pinned", "explicit", &off(0))
        ]
    );
}

// ----- pull-wake (7.2, 7.3) -----------------------------------------------------------------

#[test]
fn a_wake_is_written_once_while_one_is_outstanding() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    stream(&mut t, "events/b", "");
    pull_wake(&mut t, "s", "events/*", 30_000);
    append(&mut t, "events/a", "1");
    append(&mut t, "events/a", "2");
    append(&mut t, "events/b", "3");
    let events = wake_events(&t);
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["type"], "wake");
    assert_eq!(e["subscription_id"], "s");
    assert_eq!(e["stream"], "events/a");
    assert_eq!(e["generation"], 1);
    assert_eq!(e["ts"], 1_767_225_600_000u64);
}

#[test]
fn claim_ack_done() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    pull_wake(&mut t, "s", "events/*", 30_000);
    let tail = append(&mut t, "events/a", "hello");
    let (wake, generation, token, b) = claimed(&mut t, "s", "worker-1");
    assert_eq!(generation, 1, "the claim takes the outstanding wake");
    assert!(wake.starts_with("w_"));
    assert_eq!(b["lease_ttl_ms"], 30_000);
    assert_eq!(
        b["streams"],
        json!([{"path": "events/a", "link_type": "glob", "acked_offset": off(0),
                "tail_offset": tail, "has_pending": true}])
    );
    let r = ack(&mut t, "s", &token, &wake, 1, &[("events/a", &tail)], true);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(body(&r), json!({"ok": true, "next_wake": false}));
    assert_eq!(links(&mut t, "s"), vec![link("events/a", "glob", &tail)]);
    assert_eq!(code(&claim(&mut t, "s", "worker-1")), "NO_PENDING_WORK");
    // The token died with the wake.
    let r = ack(&mut t, "s", &token, &wake, 1, &[], false);
    assert_eq!((r.status, code(&r).as_str()), (409, "FENCED"));
    assert_eq!(wake_events(&t).len(), 1);
}

#[test]
fn a_claim_without_a_wake_event_creates_the_wake() {
    let mut t = Harness::new();
    // No wake stream at all: the wake event cannot be written, the claim still works.
    let r = put_sub(
        &mut t,
        "s",
        &json!({"type": "pull-wake", "streams": ["a"], "wake_stream": "missing"}),
    );
    assert_eq!(r.status, 201);
    t.create("/v1/stream/a", "text/plain");
    append(&mut t, "a", "x");
    let (_, generation, _, _) = claimed(&mut t, "s", "w");
    assert_eq!(generation, 1);
}

#[test]
fn done_with_work_left_starts_the_next_wake() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    pull_wake(&mut t, "s", "events/*", 30_000);
    let first = append(&mut t, "events/a", "one");
    let (wake, g, token, _) = claimed(&mut t, "s", "w");
    append(&mut t, "events/a", "two");
    let r = ack(&mut t, "s", &token, &wake, g, &[("events/a", &first)], true);
    assert_eq!(body(&r), json!({"ok": true, "next_wake": true}));
    let events = wake_events(&t);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["generation"], 2);
    let (wake2, g2, _, b) = claimed(&mut t, "s", "w");
    assert_ne!(wake2, wake);
    assert_eq!(g2, 2);
    assert_eq!(b["streams"][0]["acked_offset"], first);
}

#[test]
fn already_claimed_names_the_holder_and_generation() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    pull_wake(&mut t, "s", "events/*", 30_000);
    append(&mut t, "events/a", "x");
    claimed(&mut t, "s", "worker-1");
    let r = claim(&mut t, "s", "worker-2");
    assert_eq!(r.status, 409);
    let e = &body(&r)["error"];
    assert_eq!(e["code"], "ALREADY_CLAIMED");
    assert_eq!(e["current_holder"], "worker-1");
    assert_eq!(e["generation"], 1);
}

#[test]
fn claim_errors() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "x");
    pull_wake(&mut t, "s", "events/*", 30_000);
    let r = claim(&mut t, "s", "w");
    assert_eq!((r.status, code(&r).as_str()), (409, "NO_PENDING_WORK"));
    let r = claim(&mut t, "missing", "w");
    assert_eq!(
        (r.status, code(&r).as_str()),
        (404, "SUBSCRIPTION_NOT_FOUND")
    );
    let r = post_json(
        &mut t,
        &format!("{CTL}/s/claim"),
        None,
        &json!({"worker": ""}),
    );
    assert_eq!((r.status, code(&r).as_str()), (400, "INVALID_REQUEST"));
}

#[test]
fn lease_expiry_starts_a_new_generation() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    pull_wake(&mut t, "s", "events/*", 5_000);
    let tail = append(&mut t, "events/a", "x");
    // An unclaimed wake has no lease: nothing is scheduled.
    assert_eq!(t.server.poll_timeout(), None);
    let (wake, g, token, _) = claimed(&mut t, "s", "w1");
    assert_eq!(
        t.server.poll_timeout(),
        Some(t.now + Duration::from_secs(5))
    );
    t.advance(Duration::from_millis(4_999));
    assert_eq!(wake_events(&t).len(), 1);
    t.advance(Duration::from_millis(1));
    let events = wake_events(&t);
    assert_eq!(
        events.len(),
        2,
        "lease expiry with work pending writes a wake"
    );
    assert_eq!(events[1]["generation"], 2);
    // The old holder is fenced; another worker can claim the new generation.
    let r = ack(&mut t, "s", &token, &wake, g, &[("events/a", &tail)], true);
    assert_eq!((r.status, code(&r).as_str()), (409, "FENCED"));
    let (_, g2, _, b) = claimed(&mut t, "s", "w2");
    assert_eq!(g2, 2);
    assert_eq!(
        b["streams"][0]["acked_offset"],
        off(0),
        "the fenced ack moved nothing"
    );
}

#[test]
fn heartbeats_extend_the_lease() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    pull_wake(&mut t, "s", "events/*", 1_000);
    let tail = append(&mut t, "events/a", "x");
    let (wake, g, token, _) = claimed(&mut t, "s", "w");
    for _ in 0..5 {
        t.advance(Duration::from_millis(800));
        let r = ack(&mut t, "s", &token, &wake, g, &[], false);
        assert_eq!(body(&r), json!({"ok": true, "next_wake": false}));
    }
    // 4 s after the claim of a 1 s lease, still held.
    let r = ack(&mut t, "s", &token, &wake, g, &[("events/a", &tail)], true);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(wake_events(&t).len(), 1);
}

#[test]
fn release_wakes_again_when_work_is_left() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    pull_wake(&mut t, "s", "events/*", 30_000);
    append(&mut t, "events/a", "x");
    let (wake, g, token, _) = claimed(&mut t, "s", "w");
    let uri = format!("{CTL}/s/release");
    let r = post_json(
        &mut t,
        &uri,
        Some(&token),
        &json!({"wake_id": wake, "generation": g}),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let events = wake_events(&t);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["generation"], 2);
    // A stale release is fenced.
    let r = post_json(
        &mut t,
        &uri,
        Some(&token),
        &json!({"wake_id": wake, "generation": g}),
    );
    assert_eq!((r.status, code(&r).as_str()), (409, "FENCED"));
}

#[test]
fn fencing_and_token_checks() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    pull_wake(&mut t, "s", "events/*", 30_000);
    pull_wake(&mut t, "other", "events/*", 30_000);
    append(&mut t, "events/a", "x");
    let (wake, g, token, _) = claimed(&mut t, "s", "w");
    let (owake, og, otoken, _) = claimed(&mut t, "other", "w");
    let uri = format!("{CTL}/s/ack");
    let cases: Vec<(Option<&str>, Value, u16, &str)> = vec![
        (
            None,
            json!({"wake_id": wake, "generation": g}),
            401,
            "TOKEN_INVALID",
        ),
        (
            Some("garbage"),
            json!({"wake_id": wake, "generation": g}),
            401,
            "TOKEN_INVALID",
        ),
        // Another subscription's token.
        (
            Some(&otoken),
            json!({"wake_id": owake, "generation": og}),
            401,
            "TOKEN_INVALID",
        ),
        (
            Some(&token),
            json!({"wake_id": wake, "generation": g + 1}),
            409,
            "FENCED",
        ),
        (
            Some(&token),
            json!({"wake_id": wake, "generation": g - 1}),
            409,
            "FENCED",
        ),
        (
            Some(&token),
            json!({"wake_id": "w_other", "generation": g}),
            409,
            "FENCED",
        ),
        (Some(&token), json!({}), 409, "FENCED"),
    ];
    for (tok, req, status, c) in cases {
        let r = post_json(&mut t, &uri, tok, &req);
        assert_eq!((r.status, code(&r).as_str()), (status, c), "{req}");
    }
    let r = post_json(
        &mut t,
        &uri,
        Some(&token),
        &json!({"wake_id": wake, "generation": "1"}),
    );
    assert_eq!((r.status, code(&r).as_str()), (400, "INVALID_REQUEST"));
    // A subscription deleted under a worker: its acks fail.
    t.delete(&format!("{CTL}/s"));
    let r = post_json(
        &mut t,
        &uri,
        Some(&token),
        &json!({"wake_id": wake, "generation": g}),
    );
    assert_eq!(
        (r.status, code(&r).as_str()),
        (404, "SUBSCRIPTION_NOT_FOUND")
    );
    // Re-created under the same id: the old token is not valid for it.
    pull_wake(&mut t, "s", "events/*", 30_000);
    append(&mut t, "events/a", "y");
    let (wake2, g2, _, _) = claimed(&mut t, "s", "w");
    let r = post_json(
        &mut t,
        &uri,
        Some(&token),
        &json!({"wake_id": wake2, "generation": g2}),
    );
    assert_eq!((r.status, code(&r).as_str()), (401, "TOKEN_INVALID"));
}

#[test]
fn invalid_offsets() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    stream(&mut t, "unlinked", "zz");
    pull_wake(&mut t, "s", "events/*", 30_000);
    let first = append(&mut t, "events/a", "one");
    let tail = append(&mut t, "events/a", "two");
    let (wake, g, token, _) = claimed(&mut t, "s", "w");
    let r = ack(&mut t, "s", &token, &wake, g, &[("events/a", &tail)], false);
    assert_eq!(r.status, 200);
    for (stream, offset) in [
        ("unlinked", off(1)),
        ("events/a", "-1".to_owned()),
        ("events/a", first.clone()),
        ("events/a", off(7)),
        ("events/a", "garbage".to_owned()),
    ] {
        let r = ack(&mut t, "s", &token, &wake, g, &[(stream, &offset)], false);
        assert_eq!(
            (r.status, code(&r).as_str()),
            (409, "INVALID_OFFSET"),
            "{stream} {offset}"
        );
    }
    // All or nothing: one bad ack leaves the good one unapplied... (the cursor is at the tail
    // already, so acking it again is allowed and changes nothing).
    let r = ack(
        &mut t,
        "s",
        &token,
        &wake,
        g,
        &[("events/a", &tail), ("unlinked", &off(0))],
        false,
    );
    assert_eq!(r.status, 409);
    assert_eq!(links(&mut t, "s"), vec![link("events/a", "glob", &tail)]);
}

#[test]
fn the_wake_stream_wakes_its_long_polls() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    pull_wake(&mut t, "s", "events/*", 30_000);
    let id = t.start(
        Method::GET,
        "/v1/stream/wake/pool?offset=now&live=long-poll",
        &[],
        Bytes::new(),
    );
    assert!(t.server.is_open(id));
    append(&mut t, "events/a", "x");
    let seen = t.seen(id);
    assert_eq!(seen.status(), 200);
    let events: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(events[0]["type"], "wake");
}

// ----- webhooks (6.5, 7.1) ------------------------------------------------------------------

fn webhook_sub(t: &mut Harness, id: &str, lease_ms: u64) {
    let r = put_sub(
        t,
        id,
        &json!({"type": "webhook", "pattern": "events/*", "webhook": {"url": "http://localhost:9/hook"},
                "lease_ttl_ms": lease_ms}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

fn delivery(t: &mut Harness) -> (WebhookDelivery, Value) {
    let d = t.server.poll_webhook().expect("a webhook delivery");
    let b = serde_json::from_slice(d.request.body()).unwrap();
    (d, b)
}

fn callback(t: &mut Harness, b: &Value, acks: &[(&str, &str)], done: bool) -> Resp {
    let acks: Vec<Value> = acks
        .iter()
        .map(|(s, o)| json!({"stream": s, "offset": o}))
        .collect();
    let token = b["callback_token"].as_str().unwrap().to_owned();
    let uri = b["callback_url"]
        .as_str()
        .unwrap()
        .strip_prefix("http://ds.test:4437")
        .unwrap()
        .to_owned();
    post_json(
        t,
        &uri,
        Some(&token),
        &json!({"wake_id": b["wake_id"], "generation": b["generation"], "acks": acks, "done": done}),
    )
}

#[test]
fn webhook_deliveries_are_signed_with_the_published_key() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    webhook_sub(&mut t, "hook", 30_000);
    let sub = get_sub(&mut t, "hook");
    let signing = &sub["webhook"]["signing"];
    assert_eq!(sub["webhook"]["url"], "http://localhost:9/hook");
    assert_eq!(signing["alg"], "ed25519");
    assert_eq!(
        signing["jwks_url"],
        "http://ds.test:4437/v1/stream/__ds/jwks.json"
    );
    assert!(sub.get("webhook_secret").is_none() && sub["webhook"].get("secret").is_none());
    assert!(t.server.poll_webhook().is_none());

    let tail = append(&mut t, "events/a", "payload");
    let (d, b) = delivery(&mut t);
    assert!(t.server.poll_webhook().is_none(), "one delivery per wake");
    let req = &d.request;
    assert_eq!(req.method(), Method::POST);
    assert_eq!(req.uri(), "http://localhost:9/hook");
    assert_eq!(req.headers()["content-type"], "application/json");
    assert_eq!(b["subscription_id"], "hook");
    assert_eq!(b["generation"], 1);
    assert_eq!(
        b["callback_url"],
        "http://ds.test:4437/v1/stream/__ds/subscriptions/hook/callback"
    );
    assert_eq!(
        b["streams"],
        json!([{"path": "events/a", "link_type": "glob", "acked_offset": off(0),
                "tail_offset": tail, "has_pending": true}])
    );

    // Verify as a receiver would: key by kid from the JWKS, signature over "<t>.<body>".
    let jwks = t.get("/v1/stream/__ds/jwks.json");
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.h("content-type"), Some("application/jwk-set+json"));
    assert_eq!(jwks.h("cache-control"), Some("public, max-age=300"));
    let header = req.headers()["webhook-signature"].to_str().unwrap();
    let params: Vec<(&str, &str)> = header
        .split(',')
        .map(|p| p.split_once('=').unwrap())
        .collect();
    assert_eq!(
        params.iter().map(|p| p.0).collect::<Vec<_>>(),
        ["t", "kid", "ed25519"]
    );
    assert_eq!(
        params[0].1, "1767225600",
        "virtual wall clock, Unix seconds"
    );
    assert_eq!(params[1].1, signing["kid"]);
    let key = body(&jwks)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == params[1].1)
        .expect("the kid is in the JWKS")
        .clone();
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert_eq!(
        (key["alg"].as_str(), key["use"].as_str()),
        (Some("EdDSA"), Some("sig"))
    );
    let x: [u8; 32] = URL_SAFE_NO_PAD
        .decode(key["x"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let vk = VerifyingKey::from_bytes(&x).unwrap();
    let sig: [u8; 64] = URL_SAFE_NO_PAD
        .decode(params[2].1)
        .unwrap()
        .try_into()
        .unwrap();
    let mut signed = format!("{}.", params[0].1).into_bytes();
    signed.extend_from_slice(req.body());
    vk.verify(&signed, &Signature::from_bytes(&sig))
        .expect("a valid signature");
    let mut tampered = signed.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert!(vk.verify(&tampered, &Signature::from_bytes(&sig)).is_err());
}

#[test]
fn webhook_retries_back_off_and_mark_the_subscription_failed() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    // The longest lease, so that no lease expiry interleaves with the retries.
    webhook_sub(&mut t, "hook", 600_000);
    let issued = t.now;
    append(&mut t, "events/a", "x");
    let (mut d, first) = delivery(&mut t);
    let mut delays = Vec::new();
    for attempt in 0..9 {
        if attempt % 2 == 0 {
            t.server.handle_webhook_failure(d.id, t.now);
        } else {
            t.server.handle_webhook_response(d.id, 503, b"busy", t.now);
        }
        assert_eq!(get_sub(&mut t, "hook")["status"], "failed");
        assert!(
            t.server.poll_webhook().is_none(),
            "nothing before the retry time"
        );
        let at = t.server.poll_timeout().expect("a retry is scheduled");
        delays.push(at - t.now);
        t.now = at - Duration::from_millis(1);
        t.server.handle_timeout(t.now);
        assert!(t.server.poll_webhook().is_none());
        t.advance(Duration::from_millis(1));
        let (next, b) = delivery(&mut t);
        assert_eq!(
            b["wake_id"], first["wake_id"],
            "a retry delivers the same wake"
        );
        d = next;
    }
    for (n, (delay, base)) in delays
        .iter()
        .zip([1u64, 2, 4, 8, 16, 32, 60, 60, 60])
        .enumerate()
    {
        let base = Duration::from_secs(base);
        assert!(
            *delay >= base.mul_f64(0.8) && *delay <= base.mul_f64(1.2),
            "retry {n}: {delay:?} not within 20% of {base:?}"
        );
    }
    assert!(
        delays
            .iter()
            .zip([1u64, 2, 4, 8, 16, 32, 60, 60, 60])
            .any(|(d, b)| *d != Duration::from_secs(b)),
        "jittered"
    );
    // A success makes it active again.
    t.server.handle_webhook_response(d.id, 200, b"{}", t.now);
    assert_eq!(get_sub(&mut t, "hook")["status"], "active");
    // Only the lease of the wake is left to time.
    assert_eq!(
        t.server.poll_timeout(),
        Some(issued + Duration::from_secs(600))
    );
}

#[test]
fn done_true_auto_acks_the_delivered_snapshot() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    webhook_sub(&mut t, "hook", 30_000);
    let tail = append(&mut t, "events/a", "one");
    let (d, _) = delivery(&mut t);
    t.server
        .handle_webhook_response(d.id, 200, br#"{"done": true}"#, t.now);
    assert_eq!(links(&mut t, "hook"), vec![link("events/a", "glob", &tail)]);
    assert!(t.server.poll_webhook().is_none(), "nothing left to do");
    assert_eq!(t.server.poll_timeout(), None, "the lease was released");

    // Data arriving while a delivery is out is not acked by its `done`: a new wake follows.
    let tail2 = append(&mut t, "events/a", "two");
    let (d, b) = delivery(&mut t);
    assert_eq!(b["generation"], 2);
    let tail3 = append(&mut t, "events/a", "three");
    t.server
        .handle_webhook_response(d.id, 200, br#"{"done":true}"#, t.now);
    assert_eq!(
        links(&mut t, "hook"),
        vec![link("events/a", "glob", &tail2)]
    );
    let (_, b) = delivery(&mut t);
    assert_eq!(b["generation"], 3);
    assert_eq!(b["streams"][0]["tail_offset"], tail3);
}

#[test]
fn callbacks_ack_extend_and_fence() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    webhook_sub(&mut t, "hook", 5_000);
    let first = append(&mut t, "events/a", "one");
    let (d, b) = delivery(&mut t);
    t.server.handle_webhook_response(d.id, 202, b"", t.now);
    assert_eq!(get_sub(&mut t, "hook")["status"], "active");
    // The lease started with the wake; a valid callback extends it.
    t.advance(Duration::from_secs(4));
    let r = callback(&mut t, &b, &[("events/a", &first)], false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(body(&r), json!({"ok": true, "next_wake": false}));
    t.advance(Duration::from_secs(4));
    let second = append(&mut t, "events/a", "two");
    assert!(t.server.poll_webhook().is_none(), "a wake is in flight");
    let r = callback(&mut t, &b, &[("events/a", &second)], false);
    assert_eq!(
        r.status, 200,
        "the lease is still held 8 s after the 5 s lease started"
    );
    append(&mut t, "events/a", "three");
    let r = callback(&mut t, &b, &[("events/a", &second)], true);
    assert_eq!(body(&r), json!({"ok": true, "next_wake": true}));
    let (_, b2) = delivery(&mut t);
    assert_eq!(b2["generation"], 2);
    // The old wake's callback is fenced now.
    let r = callback(&mut t, &b, &[], true);
    assert_eq!((r.status, code(&r).as_str()), (409, "FENCED"));
    let mut mixed = b2.clone();
    mixed["wake_id"] = b["wake_id"].clone();
    let r = callback(&mut t, &mixed, &[], true);
    assert_eq!((r.status, code(&r).as_str()), (409, "FENCED"));
}

#[test]
fn webhook_lease_expiry_redelivers_a_new_generation() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    webhook_sub(&mut t, "hook", 1_000);
    append(&mut t, "events/a", "x");
    let (d, b) = delivery(&mut t);
    t.server.handle_webhook_response(d.id, 200, b"{}", t.now);
    t.advance(Duration::from_secs(1));
    let (_, b2) = delivery(&mut t);
    assert_eq!(b2["generation"], 2);
    assert_ne!(b2["wake_id"], b["wake_id"]);
    let r = callback(&mut t, &b, &[], true);
    assert_eq!((r.status, code(&r).as_str()), (409, "FENCED"));
}

#[test]
fn deleting_a_subscription_drops_its_deliveries() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    webhook_sub(&mut t, "hook", 30_000);
    append(&mut t, "events/a", "x");
    t.delete(&format!("{CTL}/hook"));
    assert!(t.server.poll_webhook().is_none());
    assert_eq!(t.server.poll_timeout(), None);
}

#[test]
fn same_seed_same_calls_same_outputs() {
    let run = |seed: u64| {
        let mut t = Harness::with(SimServerConfig {
            seed,
            ..SimServerConfig::default()
        });
        stream(&mut t, "events/a", "");
        webhook_sub(&mut t, "hook", 30_000);
        append(&mut t, "events/a", "x");
        let (d, _) = delivery(&mut t);
        t.server.handle_webhook_failure(d.id, t.now);
        let retry = t.server.poll_timeout().unwrap() - t.now;
        let sig = d.request.headers()["webhook-signature"].clone();
        (d.request.body().clone(), sig, retry)
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3).1, run(4).1);
}

#[test]
fn a_pattern_never_links_its_own_wake_stream() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    pull_wake(&mut t, "all", "**", 30_000);
    t.create("/v1/stream/other-wakes", "application/json");
    let watcher = json!({"type": "pull-wake", "pattern": "wake/*", "wake_stream": "other-wakes"});
    assert_eq!(put_sub(&mut t, "watcher", &watcher).status, 201);
    let tail = append(&mut t, "events/a", "x");
    // "all" matches every stream but its own wake stream (the watcher's wake stream is just
    // another stream to it).
    assert_eq!(
        links(&mut t, "all"),
        vec![
            link("events/a", "glob", &off(0)),
            link("other-wakes", "glob", "-1")
        ]
    );
    assert_eq!(wake_events(&t).len(), 1);
    // Another subscription sees the wake stream as an ordinary stream, and wakes.
    assert_eq!(
        links(&mut t, "watcher"),
        vec![link("wake/pool", "glob", &off(0))]
    );
    assert_eq!(
        t.server
            .stream_data("/v1/stream/other-wakes")
            .unwrap()
            .len(),
        1
    );
    let (wake, g, token, _) = claimed(&mut t, "all", "w");
    let other_tail = t
        .server
        .tail_offset("/v1/stream/other-wakes")
        .unwrap()
        .as_str()
        .to_owned();
    let r = ack(
        &mut t,
        "all",
        &token,
        &wake,
        g,
        &[("events/a", &tail), ("other-wakes", &other_tail)],
        true,
    );
    // Acking everything it was told about leaves nothing: its own wake events do not count.
    assert_eq!(body(&r), json!({"ok": true, "next_wake": false}));
}

#[test]
fn a_wake_issued_while_a_delivery_is_out_waits_for_its_answer() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    webhook_sub(&mut t, "hook", 1_000);
    append(&mut t, "events/a", "x");
    let (d, _) = delivery(&mut t);
    // The lease runs out before the receiver answers: a new wake is issued...
    t.advance(Duration::from_secs(1));
    assert!(t.server.poll_webhook().is_none(), "one delivery at a time");
    // ...and delivered once the old delivery is answered (its `done` is for a stale wake and
    // acks nothing).
    t.server
        .handle_webhook_response(d.id, 200, br#"{"done":true}"#, t.now);
    assert_eq!(
        links(&mut t, "hook"),
        vec![link("events/a", "glob", &off(0))]
    );
    let (_, b) = delivery(&mut t);
    assert_eq!(b["generation"], 2);
}

#[test]
fn absolute_urls_come_from_the_configured_origin_or_the_request() {
    let config =
        json!({"type": "webhook", "streams": ["a"], "webhook": {"url": "http://127.0.0.1:1/"}});
    // The request's Host header (the other tests), the configured public URL, or nothing.
    let mut t = Harness::with(SimServerConfig {
        public_url: Some("https://streams.example/".to_owned()),
        ..SimServerConfig::default()
    });
    let r = put_sub(&mut t, "s", &config);
    assert_eq!(
        body(&r)["webhook"]["signing"]["jwks_url"],
        "https://streams.example/v1/stream/__ds/jwks.json"
    );
    let mut t = Harness::new();
    let r = t.put(&format!("{CTL}/s"), &[JSON], config.to_string());
    assert_eq!(
        body(&r)["webhook"]["signing"]["jwks_url"],
        "/v1/stream/__ds/jwks.json"
    );
    t.create("/v1/stream/a", "text/plain");
    append(&mut t, "a", "x");
    let (_, b) = delivery(&mut t);
    assert_eq!(
        b["callback_url"],
        "/v1/stream/__ds/subscriptions/s/callback"
    );
}

// ----- routes, ids and timers (6.4, 7.1, 7.3, 12.9) ---------------------------------------------

/// 6.4, 7.1, 7.2: the sub-routes of a subscription exist for one method each; any other method
/// is 405 with `Allow` naming it, not 404 (the route exists).
#[test]
fn other_methods_on_subscription_routes_are_405_with_allow() {
    let mut t = Harness::new();
    pull_wake(&mut t, "s", "events/*", 30_000);
    let cases = [
        (Method::GET, "streams", "POST"),
        (Method::PUT, "streams", "POST"),
        (Method::GET, "streams/events%2Fa", "DELETE"),
        (Method::POST, "streams/events/a", "DELETE"),
        (Method::GET, "callback", "POST"),
        (Method::GET, "claim", "POST"),
        (Method::PUT, "ack", "POST"),
        (Method::DELETE, "release", "POST"),
    ];
    for (method, route, allow) in cases {
        let r = t.send(
            method.clone(),
            &format!("{CTL}/s/{route}"),
            &[],
            Bytes::new(),
        );
        assert_eq!(
            (r.status, code(&r).as_str(), r.h("allow")),
            (405, "METHOD_NOT_ALLOWED", Some(allow)),
            "{method} {route}"
        );
    }
}

/// 6.4: a `streams` array with a path that is not a stream path is refused with a message
/// naming that path, so that the client can tell which one.
#[test]
fn adding_a_bad_stream_path_names_it() {
    let mut t = Harness::new();
    pull_wake(&mut t, "s", "events/*", 30_000);
    let r = post_json(
        &mut t,
        &format!("{CTL}/s/streams"),
        None,
        &json!({"streams": ["events/a", "events//b"]}),
    );
    assert_eq!((r.status, code(&r).as_str()), (400, "INVALID_REQUEST"));
    let message = body(&r)["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("events//b"), "{message}");
    let r = post_json(
        &mut t,
        &format!("{CTL}/s/streams"),
        None,
        &json!({"streams": []}),
    );
    assert_eq!((r.status, code(&r).as_str()), (400, "INVALID_REQUEST"));
    assert!(links(&mut t, "s").is_empty());
}

/// Webhook delivery ids print as what they are, numbered in order (for logs of whoever sends
/// the deliveries, 7.1).
#[test]
fn webhook_ids_print_their_number() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    webhook_sub(&mut t, "hook", 600_000);
    append(&mut t, "events/a", "x");
    let (d, _) = delivery(&mut t);
    assert_eq!(d.id.to_string(), "webhook delivery #1");
    t.server.handle_webhook_failure(d.id, t.now);
    let at = t.server.poll_timeout().expect("a retry");
    t.now = at;
    t.server.handle_timeout(at);
    let (d, _) = delivery(&mut t);
    assert_eq!(d.id.to_string(), "webhook delivery #2");
}

/// 7.1: a delivery that failed from the server's view may still have reached the worker, which
/// finishes the wake through the callback. The retry scheduled for the failure is then moot:
/// nothing is left to time (`poll_timeout` is `None`) and nothing is sent at the retry time.
#[test]
fn a_wake_finished_by_callback_drops_its_retry() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    webhook_sub(&mut t, "hook", 600_000);
    let tail = append(&mut t, "events/a", "x");
    let (d, b) = delivery(&mut t);
    t.server.handle_webhook_failure(d.id, t.now);
    let retry = t.server.poll_timeout().expect("a retry is scheduled");
    assert!(retry < t.now + Duration::from_secs(600), "before the lease");
    let r = callback(&mut t, &b, &[("events/a", &tail)], true);
    assert_eq!(body(&r), json!({"ok": true, "next_wake": false}));
    assert_eq!(t.server.poll_timeout(), None, "nothing is scheduled");
    t.now = retry;
    t.server.handle_timeout(retry);
    assert!(t.server.poll_webhook().is_none());
}

/// 12.9, 7.3: a callback token carries an expiry, 24 hours after the claim. A worker that
/// keeps its lease by heartbeats keeps using the token it claimed with for hours (here 2 with
/// a 10-minute lease), but not past the expiry: then it gets 401 `TOKEN_EXPIRED`.
#[test]
fn a_token_outlives_hours_of_heartbeats_but_not_its_expiry() {
    let mut t = Harness::new();
    stream(&mut t, "events/a", "");
    pull_wake(&mut t, "s", "events/*", 600_000);
    let tail = append(&mut t, "events/a", "x");
    let (wake, g, token, _) = claimed(&mut t, "s", "w");
    let heartbeat = Duration::from_secs(9 * 60);
    for _ in 0..14 {
        t.advance(heartbeat);
        let r = ack(&mut t, "s", &token, &wake, g, &[], false);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = ack(&mut t, "s", &token, &wake, g, &[("events/a", &tail)], false);
    assert_eq!(body(&r), json!({"ok": true, "next_wake": false}));
    // 160 heartbeats of 9 minutes: 24 hours after the claim, the token has expired.
    for n in 15..=160 {
        t.advance(heartbeat);
        let r = ack(&mut t, "s", &token, &wake, g, &[], false);
        if n < 160 {
            assert_eq!(r.status, 200, "heartbeat {n}: {}", r.text());
        } else {
            assert_eq!((r.status, code(&r).as_str()), (401, "TOKEN_EXPIRED"));
        }
    }
}

/// 7.2: a wake event names the stream whose write woke the subscription, even when another
/// linked stream sorts first and has pending work too. And a claim finds pending work that no
/// write announced (FIELD-NOTES: a claim creates the wake when none is pending): here a fork
/// (4.2) made at an explicitly linked path brings inherited data without a write.
#[test]
fn wakes_name_the_written_stream_and_claims_find_unannounced_work() {
    let mut t = Harness::new();
    t.create("/v1/stream/wake/pool", "application/json");
    stream(&mut t, "src", "hello");
    stream(&mut t, "b", "");
    for (id, streams) in [("s", json!(["a/fork", "b"])), ("c", json!(["a/fork"]))] {
        let r = put_sub(
            &mut t,
            id,
            &json!({"type": "pull-wake", "streams": streams, "wake_stream": "wake/pool"}),
        );
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let r = t.put(
        "/v1/stream/a/fork",
        &[("stream-forked-from", "/v1/stream/src")],
        Bytes::new(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(wake_events(&t).is_empty(), "a fork is no write");
    assert_eq!(
        links(&mut t, "c"),
        vec![link("a/fork", "explicit", &off(0))]
    );
    // `c` has pending work and no wake: a claim creates one.
    let (_, generation, _, b) = claimed(&mut t, "c", "w");
    assert_eq!(generation, 1);
    assert_eq!(b["streams"][0]["has_pending"], true);
    // `s` is woken by a write to `b`; `a/fork` is pending too, but `b` was written.
    append(&mut t, "b", "x");
    let events: Vec<Value> = wake_events(&t)
        .into_iter()
        .map(|e| json!([e["subscription_id"], e["stream"]]))
        .collect();
    assert_eq!(events, vec![json!(["c", "a/fork"]), json!(["s", "b"])]);
}

/// 6: the stream root itself is no stream under the root: a stream made at `{root}/` is not
/// linked by a `**` pattern, on creation of the subscription or on a write.
#[test]
fn the_stream_root_itself_is_never_linked() {
    let mut t = Harness::new();
    t.create("/v1/stream/", "text/plain");
    stream(&mut t, "events/a", "");
    pull_wake(&mut t, "s", "**", 30_000);
    append(&mut t, "events/a", "y");
    let r = t.post("/v1/stream/", &[TEXT], Bytes::from_static(b"z"));
    assert_eq!(r.status, 204, "{}", r.text());
    let paths: Vec<String> = links(&mut t, "s").into_iter().map(|l| l.0).collect();
    assert_eq!(
        paths,
        vec!["events/a"],
        "not the root, not the own wake stream"
    );
}
