//! Unit tests of reader snapshots.
#![allow(clippy::disallowed_methods)] // tests take a real `Instant` as the clock's origin

use super::*;
use crate::error::ErrorKind;
use crate::io::{Input, RequestId};
use crate::offset::Offset;
use crate::ops::test_util::parts;
use crate::reader::{Chunk, ReadMode};
use bytes::Bytes;
use std::time::{Duration, Instant};

const URL: &str = "http://h/s";

fn reader(mode: ReadMode, now: Instant) -> Reader {
    let config = ReaderConfig {
        mode,
        rng_seed: 7,
        ..ReaderConfig::new(URL)
    };
    Reader::new(config, now).unwrap()
}

fn query(r: &mut Reader, now: Instant) -> (RequestId, String) {
    let tx = r.poll_transmit(now).expect("a request");
    (tx.id, tx.request.uri().query().unwrap_or("").to_owned())
}

fn respond(
    r: &mut Reader,
    id: RequestId,
    status: u16,
    h: &[(&str, &str)],
    body: &str,
    now: Instant,
) {
    r.handle_input(
        Input::Head {
            id,
            parts: parts(status, h),
        },
        now,
    );
    if !body.is_empty() {
        let chunk = Bytes::copy_from_slice(body.as_bytes());
        r.handle_input(Input::Body { id, chunk }, now);
    }
    r.handle_input(Input::End { id }, now);
}

fn drain(r: &mut Reader) -> Vec<ReaderEvent> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

fn data(events: &[ReaderEvent]) -> Vec<Chunk> {
    events
        .iter()
        .filter_map(|e| match e {
            ReaderEvent::Data(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn restore_resumes_at_the_checkpoint_with_the_cursor() {
    let now = Instant::now();
    let mut r = reader(ReadMode::Auto, now);
    let (id, q) = query(&mut r, now);
    assert_eq!(q, "offset=-1");
    respond(
        &mut r,
        id,
        200,
        &[("stream-next-offset", "0_5"), ("stream-cursor", "c1")],
        "hello",
        now,
    );
    assert_eq!(data(&drain(&mut r))[0].data, "hello");
    let snap = r.snapshot();
    assert_eq!(snap.config.offset.as_str(), "0_5");
    assert_eq!(snap.config.cursor.as_deref(), Some("c1"));
    assert!(!snap.caught_up);
    let json = serde_json::to_vec(&snap).unwrap();
    let back: ReaderSnapshot = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, snap);
    assert_eq!(ReaderSnapshot::from_json(&snap.to_json()).unwrap(), snap);
    let mut restored = Reader::restore(back, now).unwrap();
    assert_eq!(restored.offset().as_str(), "0_5");
    assert_eq!(restored.cursor(), Some("c1"));
    // Still catching up: a plain GET from the checkpoint.
    let (id, q) = query(&mut restored, now);
    assert_eq!(q, "offset=0_5");
    respond(
        &mut restored,
        id,
        200,
        &[("stream-next-offset", "0_9"), ("stream-up-to-date", "true")],
        " you",
        now,
    );
    let ev = drain(&mut restored);
    assert_eq!(data(&ev)[0].data, " you");
    assert!(matches!(ev.last(), Some(ReaderEvent::UpToDate { .. })));
    // Caught up: the next request is a long-poll, and a snapshot now says so.
    let snap = restored.snapshot();
    assert!(snap.caught_up);
    let mut again = Reader::restore(snap, now).unwrap();
    let (_, q) = query(&mut again, now);
    assert_eq!(q, "cursor=c1&live=long-poll&offset=0_9");
}

#[test]
fn events_not_handed_out_are_not_covered() {
    let now = Instant::now();
    let mut r = reader(ReadMode::Auto, now);
    let (id, _) = query(&mut r, now);
    respond(
        &mut r,
        id,
        200,
        &[("stream-next-offset", "0_5"), ("stream-up-to-date", "true")],
        "hello",
        now,
    );
    // Nothing drained: the checkpoint is still the start, and the catch-up is not over.
    let snap = r.snapshot();
    assert_eq!(snap.config.offset, Offset::beginning());
    assert!(!snap.caught_up);
    let mut restored = Reader::restore(snap, now).unwrap();
    let (_, q) = query(&mut restored, now);
    assert_eq!(q, "offset=-1");
}

#[test]
fn a_fallen_back_sse_reader_stays_on_long_poll() {
    let now = Instant::now();
    let mut r = reader(ReadMode::Sse, now);
    let mut t = now;
    for _ in 0..3 {
        let (id, q) = query(&mut r, t);
        assert!(q.contains("live=sse"), "{q}");
        respond(
            &mut r,
            id,
            200,
            &[("content-type", "text/event-stream")],
            "",
            t,
        );
        t += Duration::from_millis(10);
        r.handle_timeout(t);
    }
    assert!(drain(&mut r).contains(&ReaderEvent::FellBackToLongPoll));
    let snap = r.snapshot();
    assert!(snap.fell_back_to_long_poll);
    let mut restored = Reader::restore(snap, t).unwrap();
    assert_eq!(restored.mode(), ReadMode::LongPoll);
    let (_, q) = query(&mut restored, t);
    assert!(q.contains("live=long-poll"), "{q}");
}

#[test]
fn a_reader_restored_after_eof_sends_nothing() {
    let now = Instant::now();
    let mut r = reader(ReadMode::LongPoll, now);
    let (id, _) = query(&mut r, now);
    respond(
        &mut r,
        id,
        200,
        &[("stream-next-offset", "0_3"), ("stream-closed", "true")],
        "end",
        now,
    );
    let ev = drain(&mut r);
    assert!(matches!(ev.last(), Some(ReaderEvent::Closed { .. })));
    let snap = ReaderSnapshot::from_json(&r.snapshot().to_json()).unwrap();
    assert!(snap.eof);
    let mut restored = Reader::restore(snap, now).unwrap();
    assert!(restored.is_eof() && restored.is_finished());
    assert!(restored.poll_transmit(now).is_none());
    assert_eq!(restored.poll_timeout(), None);
    assert_eq!(
        drain(&mut restored),
        [ReaderEvent::Closed {
            offset: Offset::parse("0_3").unwrap()
        }]
    );
    assert!(restored
        .poll_transmit(now + Duration::from_secs(60))
        .is_none());
}

#[test]
fn another_format_version_is_refused() {
    let now = Instant::now();
    let mut snap = reader(ReadMode::Auto, now).snapshot();
    snap.format_version = 0;
    let e = Reader::restore(snap, now).unwrap_err();
    assert!(
        matches!(&e.kind, ErrorKind::InvalidInput(m) if m.reason == crate::InputReason::Snapshot && m.message.contains("format_version 0")),
        "{e}"
    );
    let e = ReaderSnapshot::from_json(br#"{"format_version":2,"position":"x"}"#).unwrap_err();
    assert!(
        matches!(&e.kind, ErrorKind::InvalidInput(m) if m.reason == crate::InputReason::Snapshot && m.message.contains("format_version 2")),
        "{e}"
    );
    assert!(ReaderSnapshot::from_json(b"[]").is_err());
}
