//! Unit and property tests of the SSE parser.

use super::*;
use proptest::prelude::*;

// ----- helpers -----

fn limits(max_line_bytes: usize, max_event_bytes: usize) -> SseLimits {
    SseLimits {
        max_line_bytes,
        max_event_bytes,
    }
}

/// Pulls every available result.
fn drain(p: &mut SseParser) -> Vec<Result<SseEvent, SseError>> {
    std::iter::from_fn(|| p.next_event()).collect()
}

/// Feeds `chunks` with `feed`, pulling after each, then finishes.
fn run_chunks(
    l: SseLimits,
    chunks: &[&[u8]],
    owned: bool,
) -> (Vec<Result<SseEvent, SseError>>, Result<SseEof, SseError>) {
    let mut p = SseParser::new(l);
    let mut out = Vec::new();
    for c in chunks {
        if owned {
            p.feed_bytes(Bytes::copy_from_slice(c));
        } else {
            p.feed(c);
        }
        out.extend(drain(&mut p));
    }
    let eof = p.finish();
    out.extend(drain(&mut p));
    (out, eof)
}

fn run_whole(input: &[u8]) -> (Vec<Result<SseEvent, SseError>>, Result<SseEof, SseError>) {
    run_chunks(SseLimits::default(), &[input], false)
}

fn events(input: &[u8]) -> Vec<SseEvent> {
    let (out, _) = run_whole(input);
    out.into_iter().map(|r| r.expect("no error")).collect()
}

fn ev(event: EventType, data: &str) -> SseEvent {
    SseEvent {
        event,
        data: Bytes::copy_from_slice(data.as_bytes()),
        id: None,
        retry: None,
    }
}

fn msg(data: &str) -> SseEvent {
    ev(EventType::Message, data)
}

/// Asserts that every two-way and three-way split, byte-by-byte feeding, and both feed
/// methods (and mixes of them) give the same results as feeding the input whole.
fn assert_split_invariant(l: SseLimits, input: &[u8]) {
    let whole = run_chunks(l, &[input], false);
    assert_eq!(run_chunks(l, &[input], true), whole, "whole via feed_bytes");
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run_chunks(l, &bytes, false), whole, "byte by byte");
    assert_eq!(run_chunks(l, &bytes, true), whole, "byte by byte, owned");
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        for owned in [false, true] {
            assert_eq!(run_chunks(l, &[a, b], owned), whole, "split at {i}");
        }
        // Mixed: the first part copied, the second owned, and vice versa.
        let mut p = SseParser::new(l);
        let mut out = Vec::new();
        p.feed(a);
        out.extend(drain(&mut p));
        p.feed_bytes(Bytes::copy_from_slice(b));
        out.extend(drain(&mut p));
        let eof = p.finish();
        out.extend(drain(&mut p));
        assert_eq!((out, eof), whole, "mixed split at {i}");
    }
    if input.len() <= 64 {
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let parts = [&input[..i], &input[i..j], &input[j..]];
                assert_eq!(run_chunks(l, &parts, false), whole, "split at {i},{j}");
                assert_eq!(run_chunks(l, &parts, true), whole, "owned split {i},{j}");
            }
        }
    }
    // Feeding everything before pulling anything, with both methods interleaved.
    let mut p = SseParser::new(l);
    for (k, c) in input.chunks(3).enumerate() {
        if k % 2 == 0 {
            p.feed(c);
        } else {
            p.feed_bytes(Bytes::copy_from_slice(c));
        }
    }
    let mut out = drain(&mut p);
    let eof = p.finish();
    out.extend(drain(&mut p));
    assert_eq!((out, eof), whole, "fed whole in pieces, then pulled");
}

// ----- basic rules -----

#[test]
fn defaults() {
    let l = SseLimits::default();
    assert_eq!(l.max_line_bytes, 1024 * 1024);
    assert_eq!(l.max_event_bytes, 16 * 1024 * 1024);
    assert_eq!(SseParser::default().limits(), l);
}

#[test]
fn simple_message() {
    assert_eq!(events(b"data: hello\n\n"), vec![msg("hello")]);
    assert_eq!(
        run_whole(b"data: hello\n\n").1,
        Ok(SseEof::Clean),
        "ended at a boundary"
    );
}

#[test]
fn event_types() {
    let input = b"event: data\ndata: a\n\nevent: control\ndata: b\n\nevent: other\ndata: c\n\n\
                  event:\ndata: d\n\nevent: message\ndata: e\n\ndata: f\n\n";
    let got = events(input);
    assert_eq!(
        got,
        vec![
            ev(EventType::Data, "a"),
            ev(EventType::Control, "b"),
            ev(EventType::Other("other".into()), "c"),
            msg("d"),
            msg("e"),
            msg("f"),
        ]
    );
    let names: Vec<&str> = got.iter().map(SseEvent::event_type).collect();
    assert_eq!(
        names,
        ["data", "control", "other", "message", "message", "message"]
    );
    assert!(got[0].is_data() && !got[0].is_control());
    assert!(got[1].is_control() && !got[1].is_data());
}

#[test]
fn event_type_helpers() {
    assert_eq!(EventType::from("data"), EventType::Data);
    assert_eq!(EventType::from("control"), EventType::Control);
    assert_eq!(EventType::from("message"), EventType::Message);
    assert_eq!(EventType::from(""), EventType::Message);
    assert_eq!(EventType::from("x"), EventType::Other("x".into()));
    assert_eq!(EventType::Other("x".into()).to_string(), "x");
    assert_eq!(EventType::default(), EventType::Message);
    assert_eq!(EventType::from_bytes(b"\xff").as_str(), "\u{fffd}");
}

#[test]
fn last_event_field_wins_and_type_resets_after_dispatch() {
    let got = events(b"event: a\nevent: data\ndata: x\n\ndata: y\n\n");
    assert_eq!(got, vec![ev(EventType::Data, "x"), msg("y")]);
}

#[test]
fn multi_line_data_joined_with_newline() {
    assert_eq!(
        events(b"data: [\ndata: {\"k\":\"v\"},\ndata: {\"k\":\"w\"}\ndata: ]\n\n"),
        vec![msg("[\n{\"k\":\"v\"},\n{\"k\":\"w\"}\n]")]
    );
    assert_eq!(events(b"data: a\ndata: b\n\n"), vec![msg("a\nb")]);
    // An empty data line contributes an empty line.
    assert_eq!(events(b"data: a\ndata\ndata: b\n\n"), vec![msg("a\n\nb")]);
    assert_eq!(events(b"data\ndata\n\n"), vec![msg("\n")]);
    // A value ending with a newline-like content keeps everything but the final '\n'.
    assert_eq!(events(b"data: a\ndata:\n\n"), vec![msg("a\n")]);
}

#[test]
fn empty_data_dispatches_empty_event() {
    assert_eq!(events(b"data\n\n"), vec![msg("")]);
    assert_eq!(events(b"data:\n\n"), vec![msg("")]);
    assert_eq!(events(b"data: \n\n"), vec![msg("")]);
}

#[test]
fn no_data_no_dispatch_but_type_reset() {
    assert_eq!(events(b"event: control\n\ndata: x\n\n"), vec![msg("x")]);
    assert_eq!(events(b"\n\n\n"), vec![]);
    assert_eq!(events(b"id: 1\nretry: 5\n\n"), vec![]);
}

#[test]
fn space_stripping() {
    assert_eq!(events(b"data:x\n\n"), vec![msg("x")]);
    assert_eq!(events(b"data: x\n\n"), vec![msg("x")]);
    assert_eq!(events(b"data:  x\n\n"), vec![msg(" x")]);
    assert_eq!(events(b"data:\tx\n\n"), vec![msg("\tx")]);
    assert_eq!(events(b"data: x \n\n"), vec![msg("x ")]);
    // Only the first colon separates.
    assert_eq!(events(b"data: a: b\n\n"), vec![msg("a: b")]);
    assert_eq!(events(b"data::\n\n"), vec![msg(":")]);
    assert_eq!(
        events(b"event:  data\ndata: x\n\n")[0].event_type(),
        " data"
    );
}

#[test]
fn field_without_colon() {
    // "data" alone is a data field with an empty value.
    assert_eq!(events(b"data\n\n"), vec![msg("")]);
    // "event" alone sets an empty type, i.e. message.
    assert_eq!(events(b"event: data\nevent\ndata: x\n\n"), vec![msg("x")]);
    // "id" alone resets the last event id.
    let mut p = SseParser::default();
    p.feed(b"id: 7\ndata: a\n\nid\ndata: b\n\n");
    let got: Vec<_> = drain(&mut p).into_iter().map(Result::unwrap).collect();
    assert_eq!(got[0].id.as_deref(), Some("7"));
    assert_eq!(got[1].id, None);
    assert_eq!(p.last_event_id(), "");
    // Field names are case sensitive and exact.
    assert_eq!(
        events(b"Data: x\ndata : y\ndat: z\ndatax\ndata: ok\n\n"),
        vec![msg("ok")]
    );
}

#[test]
fn comments_and_unknown_fields_ignored() {
    let input = b": hello\n:\ndata: a\n: comment between data lines\nfoo: bar\nfoo\n\
                  averyveryverylongfieldname: data\nx:\ndata: b\n\n:ping\n\n";
    assert_eq!(events(input), vec![msg("a\nb")]);
    // A comment alone is not an event.
    assert_eq!(run_whole(b": keepalive\n").1, Ok(SseEof::Clean));
}

#[test]
fn line_endings() {
    let want = vec![msg("a\nb"), msg("c")];
    assert_eq!(events(b"data: a\ndata: b\n\ndata: c\n\n"), want);
    assert_eq!(events(b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"), want);
    assert_eq!(events(b"data: a\rdata: b\r\rdata: c\r\r"), want);
    assert_eq!(events(b"data: a\rdata: b\r\n\ndata: c\n\r\n"), want);
    // "\r\r\n" is CR then CRLF: two line endings, dispatching once.
    assert_eq!(
        events(b"data: a\r\r\ndata: c\n\n"),
        vec![msg("a"), msg("c")]
    );
    // "\n\r" is LF then CR: two line endings.
    assert_eq!(events(b"data: a\n\rdata: c\n\n"), vec![msg("a"), msg("c")]);
}

#[test]
fn crlf_straddling_chunks_is_one_line_ending() {
    for owned in [false, true] {
        // If the LF counted as a second line ending, "a" would be dispatched alone.
        let (out, eof) = run_chunks(
            SseLimits::default(),
            &[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"],
            owned,
        );
        assert_eq!(out, vec![Ok(msg("a\nb"))]);
        assert_eq!(eof, Ok(SseEof::Clean));
        // CR at the end of a chunk followed by an empty chunk and then the LF.
        let (out, _) = run_chunks(
            SseLimits::default(),
            &[b"data: a\r", b"", b"\n", b"\r", b"", b"\n"],
            owned,
        );
        assert_eq!(out, vec![Ok(msg("a"))]);
    }
}

#[test]
fn lone_cr_at_chunk_end_is_a_line_ending_immediately() {
    let mut p = SseParser::default();
    p.feed(b"data: a\r\r");
    // Both lines are complete: the event is dispatched without waiting for more input.
    assert_eq!(drain(&mut p), vec![Ok(msg("a"))]);
    p.feed(b"\ndata: b\n\n");
    // The LF completes the CRLF of the blank line, it is not another blank line.
    assert_eq!(drain(&mut p), vec![Ok(msg("b"))]);
}

#[test]
fn bom_skipped_once_at_start() {
    assert_eq!(events(b"\xEF\xBB\xBFdata: a\n\n"), vec![msg("a")]);
    // A BOM before a blank line or comment.
    assert_eq!(events(b"\xEF\xBB\xBF\ndata: a\n\n"), vec![msg("a")]);
    assert_eq!(events(b"\xEF\xBB\xBF: c\ndata: a\n\n"), vec![msg("a")]);
    // A second BOM is part of the field name, making it unknown.
    assert_eq!(
        events(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n"),
        vec![msg("b")]
    );
    // A BOM elsewhere is not skipped.
    assert_eq!(
        events(b"data: a\n\n\xEF\xBB\xBFdata: b\n\n"),
        vec![msg("a")]
    );
    assert_eq!(
        events(b"data: \xEF\xBB\xBFx\n\n"),
        vec![ev(EventType::Message, "\u{feff}x")]
    );
    // A partial BOM is not a BOM.
    assert_eq!(events(b"\xEF\xBBdata: a\n\ndata: b\n\n"), vec![msg("b")]);
    // A BOM split across chunks.
    for owned in [false, true] {
        let (out, _) = run_chunks(
            SseLimits::default(),
            &[b"\xEF", b"\xBB", b"\xBFda", b"ta: a\n\n"],
            owned,
        );
        assert_eq!(out, vec![Ok(msg("a"))]);
    }
    // A stream that is only a BOM ended cleanly.
    assert_eq!(run_whole(b"\xEF\xBB\xBF").1, Ok(SseEof::Clean));
    assert_eq!(run_whole(b"\xEF\xBB").1, Ok(SseEof::IncompleteLine));
}

#[test]
fn id_rules() {
    let mut p = SseParser::default();
    p.feed(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\0x\ndata: c\n\nid: \ndata: d\n\nid:3\n\n");
    let got: Vec<_> = drain(&mut p).into_iter().map(Result::unwrap).collect();
    let ids: Vec<Option<&str>> = got.iter().map(|e| e.id.as_deref()).collect();
    // The id persists; one containing NUL is ignored; an empty one resets it.
    assert_eq!(ids, [Some("1"), Some("1"), Some("1"), None]);
    // An id in a block that dispatched nothing still sets the last event id.
    assert_eq!(p.last_event_id(), "3");
    p.feed(b"data: e\n\n");
    assert_eq!(drain(&mut p)[0].as_ref().unwrap().id.as_deref(), Some("3"));
    // Non UTF-8 is replaced.
    assert_eq!(
        events(b"id: \xff\ndata\n\n")[0].id.as_deref(),
        Some("\u{fffd}")
    );
}

#[test]
fn retry_rules() {
    let mut p = SseParser::default();
    p.feed(
        b"retry: 1500\ndata: a\n\ndata: b\n\nretry: 12x\ndata: c\n\nretry: -1\nretry:\nretry\n\
             retry: 1 0\nretry:  5\ndata: d\n\nretry: 99999999999999999999999\ndata: e\n\n",
    );
    let got: Vec<_> = drain(&mut p).into_iter().map(Result::unwrap).collect();
    let retries: Vec<Option<u64>> = got.iter().map(|e| e.retry).collect();
    assert_eq!(retries, [Some(1500), None, None, None, None]);
    assert_eq!(p.retry(), Some(1500));
    p.feed(b"retry: 0\n\n");
    assert!(drain(&mut p).is_empty());
    assert_eq!(p.retry(), Some(0));
    assert_eq!(parse_retry(b"18446744073709551615"), Some(u64::MAX));
    assert_eq!(parse_retry(b"18446744073709551616"), None);
    assert_eq!(parse_retry(b""), None);
    assert_eq!(parse_retry(b"007"), Some(7));
}

#[test]
fn data_bytes_are_raw() {
    let got = events(b"data: \xff\xfe\0\x01\n\n");
    assert_eq!(&got[0].data[..], b"\xff\xfe\0\x01");
}

#[test]
fn eof_discards_incomplete_event_and_line() {
    let (out, eof) = run_whole(b"data: a\n\ndata: b\n");
    assert_eq!(out, vec![Ok(msg("a"))]);
    assert_eq!(eof, Ok(SseEof::IncompleteEvent));
    let (out, eof) = run_whole(b"data: a\n\ndata: b");
    assert_eq!(out, vec![Ok(msg("a"))]);
    assert_eq!(eof, Ok(SseEof::IncompleteLine));
    // A final line with no line ending is not processed (no event, no id).
    let mut p = SseParser::default();
    p.feed(b"data: a\n\nid: 9");
    assert_eq!(drain(&mut p).len(), 1);
    assert_eq!(p.finish(), Ok(SseEof::IncompleteLine));
    assert_eq!(p.last_event_id(), "");
    // A blank line ending with a lone CR at EOF completes the event.
    let (out, eof) = run_whole(b"data: a\r\r");
    assert_eq!(out, vec![Ok(msg("a"))]);
    assert_eq!(eof, Ok(SseEof::Clean));
    // Empty input, comment-only input.
    assert_eq!(run_whole(b""), (vec![], Ok(SseEof::Clean)));
    assert_eq!(run_whole(b":x\n"), (vec![], Ok(SseEof::Clean)));
    assert_eq!(run_whole(b"event: x\n").1, Ok(SseEof::IncompleteEvent));
}

#[test]
fn finish_keeps_unpulled_events_and_is_idempotent() {
    let mut p = SseParser::default();
    p.feed(b"data: a\n\ndata: b\n\ndata: c");
    assert_eq!(p.finish(), Ok(SseEof::IncompleteLine));
    assert_eq!(p.finish(), Ok(SseEof::IncompleteLine));
    // Input after finish is ignored.
    p.feed(b"\n\n");
    p.feed_bytes(Bytes::from_static(b"data: d\n\n"));
    assert_eq!(drain(&mut p), vec![Ok(msg("a")), Ok(msg("b"))]);
    assert_eq!(p.buffered_bytes(), 0);
}

#[test]
fn zero_copy_single_data_line() {
    let chunk = Bytes::from(b"event: data\ndata: 0123456789\n\n".to_vec());
    let base = chunk.as_ptr() as usize;
    let mut p = SseParser::default();
    p.feed_bytes(chunk.clone());
    let e = p.next_event().unwrap().unwrap();
    assert_eq!(&e.data[..], b"0123456789");
    // The data points into the fed chunk.
    assert_eq!(e.data.as_ptr() as usize, base + "event: data\ndata: ".len());
}

// ----- limits -----

#[test]
fn line_too_long() {
    let l = limits(8, 100);
    // The parser reports the limits it enforces.
    assert_eq!(SseParser::new(l).limits(), l);
    // Exactly at the limit is fine.
    let (out, _) = run_chunks(l, &[b"data: ab\n\n"], false);
    assert_eq!(out, vec![Ok(msg("ab"))]);
    let (out, eof) = run_chunks(l, &[b"data: abc\n\n"], false);
    assert_eq!(out, vec![Err(SseError::LineTooLong { limit: 8 })]);
    assert_eq!(eof, Err(SseError::LineTooLong { limit: 8 }));
    // Comments and unknown fields count too.
    let (out, _) = run_chunks(l, &[b": 34567890\n"], true);
    assert_eq!(out, vec![Err(SseError::LineTooLong { limit: 8 })]);
    // Split every way: same result.
    assert_split_invariant(l, b"data: ab\r\ndata: ab\r\n\r\ndata: abc\n\ndata: x\n\n");
    assert_split_invariant(l, b"data: a\n\n:12345678\r\n\r\n");
}

#[test]
fn line_that_never_ends_is_detected_early_with_bounded_memory() {
    let l = limits(1024, 1 << 20);
    for owned in [false, true] {
        let mut p = SseParser::new(l);
        p.feed(b"data: ");
        let chunk = vec![b'x'; 100];
        let mut fed = 6;
        let mut error = None;
        for _ in 0..1_000_000 {
            if owned {
                p.feed_bytes(Bytes::copy_from_slice(&chunk));
            } else {
                p.feed(&chunk);
            }
            fed += chunk.len();
            assert!(p.buffered_bytes() <= 1024 + chunk.len());
            if let Some(r) = p.next_event() {
                error = Some((r, fed));
                break;
            }
        }
        let (r, fed) = error.expect("the overflow is detected");
        assert_eq!(r, Err(SseError::LineTooLong { limit: 1024 }));
        assert!(fed <= 1024 + chunk.len(), "detected after {fed} bytes");
        // The parser stays failed, drops its memory and ignores input.
        assert_eq!(p.buffered_bytes(), 0);
        p.feed(b"\n\ndata: x\n\n");
        p.feed_bytes(Bytes::from_static(b"data: y\n\n"));
        assert_eq!(p.buffered_bytes(), 0);
        assert_eq!(p.next_event(), None);
        assert_eq!(p.error(), Some(&SseError::LineTooLong { limit: 1024 }));
        assert_eq!(p.finish(), Err(SseError::LineTooLong { limit: 1024 }));
        assert_eq!(p.next_event(), None);
    }
}

#[test]
fn long_line_in_one_big_chunk_with_default_limits() {
    let mut input = b"data: ".to_vec();
    input.resize(SseLimits::DEFAULT_MAX_LINE_BYTES + 1, b'y');
    let mut p = SseParser::default();
    p.feed(&input);
    assert_eq!(
        p.next_event(),
        Some(Err(SseError::LineTooLong {
            limit: SseLimits::DEFAULT_MAX_LINE_BYTES
        }))
    );
    assert_eq!(p.next_event(), None);
}

#[test]
fn event_too_large() {
    let l = limits(100, 10);
    // 4 + 1 + 5 = 10 bytes: at the limit.
    let (out, _) = run_chunks(l, &[b"data: abcd\ndata: efghi\n\n"], false);
    assert_eq!(out, vec![Ok(msg("abcd\nefghi"))]);
    // 11 bytes.
    let (out, eof) = run_chunks(l, &[b"data: a\n\ndata: abcd\ndata: efghij\n\n"], false);
    assert_eq!(
        out,
        vec![Ok(msg("a")), Err(SseError::EventTooLarge { limit: 10 })]
    );
    assert_eq!(eof, Err(SseError::EventTooLarge { limit: 10 }));
    // A single data line over the event limit but within the line limit.
    let (out, _) = run_chunks(l, &[b"data: 0123456789A\n\n"], true);
    assert_eq!(out, vec![Err(SseError::EventTooLarge { limit: 10 })]);
    // Many empty data lines count their newlines.
    let (out, _) = run_chunks(l, &[&b"data\n".repeat(12)], false);
    assert_eq!(out, vec![Err(SseError::EventTooLarge { limit: 10 })]);
    // The limit is per event.
    let (out, _) = run_chunks(l, &[&b"data: 0123456789\n\n".repeat(3)], false);
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(Result::is_ok));
    assert_split_invariant(
        l,
        b"data: abcd\ndata: efghi\n\ndata: abcd\r\ndata: efghij\n\n",
    );
}

#[test]
fn error_in_finish_drain() {
    let mut p = SseParser::new(limits(100, 3));
    p.feed(b"data: a\n\ndata: abcd\n\n");
    assert_eq!(p.finish(), Err(SseError::EventTooLarge { limit: 3 }));
    assert_eq!(
        drain(&mut p),
        vec![Ok(msg("a")), Err(SseError::EventTooLarge { limit: 3 })]
    );
    assert_eq!(p.finish(), Err(SseError::EventTooLarge { limit: 3 }));
}

#[test]
fn errors_display() {
    assert_eq!(
        SseError::LineTooLong { limit: 5 }.to_string(),
        "SSE line longer than the limit of 5 bytes"
    );
    assert!(SseError::EventTooLarge { limit: 5 }
        .to_string()
        .contains('5'));
    assert!(SseError::InvalidControl("x".into())
        .to_string()
        .contains("control"));
    assert!(SseError::InvalidBase64("x".into())
        .to_string()
        .contains("base64"));
}

// ----- chunking equivalence on fixed inputs -----

#[test]
fn split_at_every_position() {
    let inputs: &[&[u8]] = &[
        b"\xEF\xBB\xBFevent: data\r\ndata: [\r\ndata: {\"k\":\"v\"}\r\ndata: ]\r\n\r\n\
          event: control\r\ndata: {\"streamNextOffset\":\"1_2\",\"streamCursor\":\"c\"}\r\n\r\n",
        b"data: a\rdata: b\r\r: c\r\rid: 1\nretry: 10\ndata\n\nevent: x\nfoo\n\ndata: tail",
        b"data: a\n\r\n\r\r\n\ndata: b\r\n\r",
        b"\r\n\r\n\r\r\n\n\n\r",
        b"data:x\ndata\r\nevent\n\n:\rid\ndata:  y \n\n",
    ];
    for input in inputs {
        assert_split_invariant(SseLimits::default(), input);
    }
}

#[test]
fn large_events_any_chunking() {
    let mut input = Vec::new();
    let payload: Vec<u8> = (0..70_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    // More than BIG_CHUNK in all, so that feeding it whole takes the arena path.
    for _ in 0..4 {
        input.extend_from_slice(b"event: data\r\ndata: ");
        input.extend_from_slice(&payload);
        input.extend_from_slice(b"\r\n\r\nevent: control\r\ndata: {}\r\n\r\n");
    }
    assert!(input.len() > BIG_CHUNK);
    let whole = run_whole(&input);
    assert_eq!(whole.0.len(), 8);
    assert_eq!(&whole.0[0].as_ref().unwrap().data[..], &payload[..]);
    for size in [1usize, 7, 4096, 65_536, 65_537, 100_000] {
        let chunks: Vec<&[u8]> = input.chunks(size).collect();
        assert_eq!(run_chunks(SseLimits::default(), &chunks, false), whole);
        assert_eq!(run_chunks(SseLimits::default(), &chunks, true), whole);
    }
}

// ----- reference model and property tests -----

/// A straightforward implementation of the WHATWG rules over the whole input.
fn reference(input: &[u8]) -> (Vec<SseEvent>, SseEof) {
    let input = input.strip_prefix(BOM).unwrap_or(input);
    let mut lines = Vec::new();
    let mut i = 0;
    let mut start = 0;
    while i < input.len() {
        match input[i] {
            b'\n' => {
                lines.push(&input[start..i]);
                i += 1;
                start = i;
            }
            b'\r' => {
                lines.push(&input[start..i]);
                i += 1;
                if input.get(i) == Some(&b'\n') {
                    i += 1;
                }
                start = i;
            }
            _ => i += 1,
        }
    }
    let partial = start < input.len();
    let mut out = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    let mut has_data = false;
    let mut event_type = String::new();
    let mut id = String::new();
    let mut retry = None;
    let mut pending = false;
    for line in lines {
        if line.is_empty() {
            if has_data {
                out.push(SseEvent {
                    event: EventType::from_bytes(event_type.as_bytes()),
                    data: Bytes::from(data.clone()),
                    id: (!id.is_empty()).then(|| id.clone()),
                    retry,
                });
            }
            data.clear();
            has_data = false;
            event_type.clear();
            retry = None;
            pending = false;
            continue;
        }
        if line[0] == b':' {
            continue;
        }
        pending = true;
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"event" => event_type = String::from_utf8_lossy(value).into_owned(),
            b"data" => {
                if has_data {
                    data.push(b'\n');
                }
                data.extend_from_slice(value);
                has_data = true;
            }
            b"id" if !value.contains(&0) => id = String::from_utf8_lossy(value).into_owned(),
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                if let Ok(v) = std::str::from_utf8(value).unwrap().parse::<u64>() {
                    retry = Some(v);
                }
            }
            _ => {}
        }
    }
    let eof = if partial {
        SseEof::IncompleteLine
    } else if pending {
        SseEof::IncompleteEvent
    } else {
        SseEof::Clean
    };
    (out, eof)
}

#[test]
fn reference_agrees_on_fixed_inputs() {
    let input = b"\xEF\xBB\xBFid: 1\r\nevent: data\rdata: a\n\ndata: b\r\n\r\nretry: 3\ndata\n\nx";
    let (out, eof) = run_whole(input);
    let out: Vec<_> = out.into_iter().map(Result::unwrap).collect();
    assert_eq!((out, eof.unwrap()), reference(input));
}

/// Pieces that random event streams are made of.
fn line_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"".to_vec()),
        Just(b"data".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"data: ".to_vec()),
        Just(b"event: data".to_vec()),
        Just(b"event: control".to_vec()),
        Just(b"event".to_vec()),
        Just(b"id: 42".to_vec()),
        Just(b"id".to_vec()),
        Just(b"id: a\0b".to_vec()),
        Just(b"retry: 250".to_vec()),
        Just(b"retry: 2x".to_vec()),
        Just(b": comment".to_vec()),
        Just(b":".to_vec()),
        Just(b"dat".to_vec()),
        Just(b"datas: x".to_vec()),
        Just(b"unknown: data".to_vec()),
        "[ -~]{0,12}".prop_map(|s| format!("data: {s}").into_bytes()),
        "[ -~]{0,12}".prop_map(|s| format!("data:{s}").into_bytes()),
        "[a-z]{0,8}".prop_map(|s| format!("event: {s}").into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

fn stream_strategy() -> impl Strategy<Value = Vec<u8>> {
    let terminator = prop_oneof![Just(&b"\n"[..]), Just(&b"\r\n"[..]), Just(&b"\r"[..])];
    (
        any::<bool>(),
        proptest::collection::vec((line_strategy(), terminator), 0..24),
        proptest::collection::vec(any::<u8>(), 0..4),
    )
        .prop_map(|(bom, lines, tail)| {
            let mut out = Vec::new();
            if bom {
                out.extend_from_slice(BOM);
            }
            for (line, term) in lines {
                out.extend_from_slice(&line);
                out.extend_from_slice(term);
            }
            out.extend_from_slice(&tail);
            out
        })
}

/// Cuts `input` at the given (sorted, deduplicated, clamped) positions.
fn cut<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut parts = Vec::new();
    let mut prev = 0;
    for c in cuts {
        parts.push(&input[prev..c]);
        prev = c;
    }
    parts.push(&input[prev..]);
    parts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_chunking_matches_whole_and_reference(
        input in stream_strategy(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        owned_mask in any::<u16>(),
    ) {
        let whole = run_whole(&input);
        let (want_events, want_eof) = reference(&input);
        let got: Vec<SseEvent> = whole.0.iter().cloned().map(Result::unwrap).collect();
        prop_assert_eq!(&got, &want_events);
        prop_assert_eq!(whole.1.clone(), Ok(want_eof));

        let parts = cut(&input, &cuts);
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for (k, part) in parts.iter().enumerate() {
            if owned_mask & (1 << (k % 16)) != 0 {
                p.feed_bytes(Bytes::copy_from_slice(part));
            } else {
                p.feed(part);
            }
            out.extend(drain(&mut p));
        }
        let eof = p.finish();
        out.extend(drain(&mut p));
        prop_assert_eq!((out, eof), whole);
    }

    #[test]
    fn random_chunking_with_small_limits(
        input in stream_strategy(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        max_line in 0usize..24,
        max_event in 0usize..24,
    ) {
        let l = limits(max_line, max_event);
        let whole = run_chunks(l, &[&input], false);
        let parts = cut(&input, &cuts);
        prop_assert_eq!(run_chunks(l, &parts, false), whole.clone());
        prop_assert_eq!(run_chunks(l, &parts, true), whole.clone());
        // An error, if any, is the last result, and matches finish.
        let errors = whole.0.iter().filter(|r| r.is_err()).count();
        prop_assert!(errors <= 1);
        if errors == 1 {
            prop_assert!(whole.0.last().unwrap().is_err());
            prop_assert_eq!(whole.0.last().unwrap().clone().map(|_| SseEof::Clean), whole.1.clone());
        }
        for r in whole.0.iter().flatten() {
            prop_assert!(r.data.len() <= max_event);
        }
    }
}

#[test]
fn keeping_the_data_space_keeps_payload_spaces() {
    let mut p = SseParser::default().keep_data_space(true);
    p.feed(b"event: data\ndata: two\ndata:one\n\n");
    let e = p.next_event().unwrap().unwrap();
    assert_eq!(&e.data[..], b" two\none");
    assert_eq!(
        e.event_type(),
        "data",
        "other fields still strip their space"
    );
    let mut p = SseParser::default();
    p.feed(b"data: two\n\n");
    assert_eq!(&p.next_event().unwrap().unwrap().data[..], b"two");
}

#[test]
fn buffered_bytes_counts_the_line_the_pending_data_and_unpulled_events() {
    let mut p = SseParser::default();
    p.feed(b"data: abc\ndata: de\n\ndata: xy\ndata: z");
    // Unpulled event "abc\nde" (6), pending data "xy" (2), incomplete line "data: z" (7).
    assert_eq!(p.buffered_bytes(), 6 + 2 + 7);
    let e = p.next_event().unwrap().unwrap();
    assert_eq!(&e.data[..], b"abc\nde");
    assert_eq!(p.buffered_bytes(), 2 + 7);
    p.feed(b"\n");
    assert_eq!(p.buffered_bytes(), 4, "pending data \"xy\\nz\"");
    p.feed(b"\n");
    assert_eq!(p.buffered_bytes(), 4, "the event, not pulled yet");
    assert_eq!(&p.next_event().unwrap().unwrap().data[..], b"xy\nz");
    assert_eq!(p.buffered_bytes(), 0);
    // The end drops an incomplete event's data: nothing stays held.
    p.feed(b"data: pending\n");
    assert_eq!(p.buffered_bytes(), 7);
    assert_eq!(p.finish(), Ok(SseEof::IncompleteEvent));
    assert_eq!(p.buffered_bytes(), 0);
    // So does an error: the data before the line that broke the limit is let go.
    let mut p = SseParser::new(limits(16, 100));
    p.feed(b"data: pending\ndata: this line is too long\n");
    assert_eq!(
        p.next_event(),
        Some(Err(SseError::LineTooLong { limit: 16 }))
    );
    assert_eq!(p.buffered_bytes(), 0);
}

#[test]
fn the_event_size_limit_counts_the_newlines_between_data_lines() {
    // "ab\ncd" is 5 bytes: within a limit of 5, over a limit of 4.
    for (limit, ok) in [(5, true), (4, false)] {
        let mut p = SseParser::new(limits(64, limit));
        p.feed(b"data: ab\ndata: cd\n\n");
        match p.next_event().unwrap() {
            Ok(e) => assert!(ok && &e.data[..] == b"ab\ncd", "limit {limit}"),
            Err(e) => assert!(
                !ok && e == SseError::EventTooLarge { limit },
                "limit {limit}: {e}"
            ),
        }
    }
}
