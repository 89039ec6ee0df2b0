//! `sse_parse` and `sse_chunking`: the SSE parser against a whole-input reference model, and
//! against itself fed in arbitrary pieces.
//!
//! Input format (both targets): byte 0 picks `max_line_bytes`, byte 1 `max_event_bytes` (see
//! [`crate::util::limit`]); then:
//!
//! - `sse_parse`: byte 2 picks how the body is fed (bit 0: pull after every piece; bits 1-2:
//!   `feed` / `feed_bytes` / alternating / only the first piece copied; bits 3-7: piece size,
//!   31 = whole); the rest is the body.
//! - `sse_chunking`: byte 2 is the number of cuts (mod 17), followed by that many `u16` LE cut
//!   positions, then one byte of feed-method bits (one per piece, cycling) and the body.

use crate::util::{cut, limit, Cursor};
use bytes::Bytes;
use ds_proto::sse::{EventType, SseEof, SseError, SseEvent, SseLimits, SseParser};

const BOM: &[u8] = b"\xEF\xBB\xBF";

type Outcome = (Vec<Result<SseEvent, SseError>>, Result<SseEof, SseError>);

fn limits(c: &mut Cursor<'_>) -> SseLimits {
    SseLimits {
        max_line_bytes: limit(c.u8(), 32),
        max_event_bytes: limit(c.u8(), 64),
    }
}

/// Pulls every queued result, checking the limits on each event.
fn drain(p: &mut SseParser, out: &mut Vec<Result<SseEvent, SseError>>) {
    let l = p.limits();
    while let Some(r) = p.next_event() {
        if let Ok(e) = &r {
            assert!(e.data.len() <= l.max_event_bytes, "event over the limit");
            assert!(
                !matches!(&e.event, EventType::Other(n) if n == "data" || n == "control" || n == "message" || n.is_empty()),
                "a reserved event name came out as Other"
            );
        }
        assert!(
            !out.iter().any(Result::is_err),
            "a result after the error: {r:?}"
        );
        out.push(r);
    }
}

/// Feeds `pieces` (method per piece from `methods`), pulling after each when `pull`, then
/// finishes; checks the memory bound and the state after an error and after `finish`.
fn run(l: SseLimits, pieces: &[&[u8]], methods: impl Fn(usize) -> bool, pull: bool) -> Outcome {
    let mut p = SseParser::new(l);
    let mut out = Vec::new();
    let mut fed = 0usize;
    for (i, piece) in pieces.iter().enumerate() {
        if methods(i) {
            p.feed_bytes(Bytes::copy_from_slice(piece));
        } else {
            p.feed(piece);
        }
        fed += piece.len();
        // At most one incomplete line and one pending event, besides the queued events (which
        // never hold more than what was fed).
        let bound = l.max_line_bytes + l.max_event_bytes;
        if pull {
            drain(&mut p, &mut out);
            assert!(
                p.buffered_bytes() <= bound,
                "{} bytes buffered, bound {bound}",
                p.buffered_bytes()
            );
        } else {
            assert!(p.buffered_bytes() <= bound + fed);
        }
        if let Some(err) = p.error() {
            assert!(
                p.buffered_bytes() <= fed,
                "a failed parser keeps only queued events"
            );
            let err = err.clone();
            assert!(matches!(
                err,
                SseError::LineTooLong { .. } | SseError::EventTooLarge { .. }
            ));
        }
    }
    let eof = p.finish();
    drain(&mut p, &mut out);
    assert_eq!(p.buffered_bytes(), 0, "nothing held after finish and drain");
    // finish is idempotent, input after it is ignored.
    assert_eq!(p.finish(), eof);
    p.feed(b"data: late\n\n");
    p.feed_bytes(Bytes::from_static(b"data: late\n\n"));
    assert!(p.next_event().is_none(), "an event after finish");
    assert_eq!(p.finish(), eof);
    match (&eof, out.last()) {
        (Err(e), Some(Err(last))) => assert_eq!(e, last),
        (Err(e), _) => panic!("finish failed with {e:?} but no error was pulled"),
        (Ok(_), Some(Err(e))) => panic!("error {e:?} pulled but finish is Ok"),
        (Ok(_), _) => {}
    }
    (out, eof)
}

/// A straightforward implementation of the WHATWG rules over the whole input, with the
/// parser's limits: a line (raw, BOM included, final incomplete line included) longer than
/// `max_line_bytes` and data growing past `max_event_bytes` end the stream with that error.
pub fn reference(l: SseLimits, input: &[u8]) -> Outcome {
    // Split into lines; `partial` is the unterminated rest.
    let mut lines = Vec::new();
    let (mut i, mut start) = (0, 0);
    while i < input.len() {
        match input[i] {
            b'\n' | b'\r' => {
                lines.push(&input[start..i]);
                i += if input[i] == b'\r' && input.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            _ => i += 1,
        }
    }
    let partial = &input[start..];
    let mut out: Vec<Result<SseEvent, SseError>> = Vec::new();
    let mut data: Option<Vec<u8>> = None;
    let mut event_type: Vec<u8> = Vec::new();
    let mut id = String::new();
    let mut retry = None;
    let mut pending = false;
    for (n, raw) in lines.iter().enumerate() {
        if raw.len() > l.max_line_bytes {
            let e = SseError::LineTooLong {
                limit: l.max_line_bytes,
            };
            out.push(Err(e.clone()));
            return (out, Err(e));
        }
        let line = if n == 0 {
            raw.strip_prefix(BOM).unwrap_or(raw)
        } else {
            raw
        };
        if line.is_empty() {
            if let Some(d) = data.take() {
                out.push(Ok(SseEvent {
                    event: EventType::from_bytes(&event_type),
                    data: Bytes::from(d),
                    id: (!id.is_empty()).then(|| id.clone()),
                    retry,
                }));
            }
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
            b"event" => event_type = value.to_vec(),
            b"data" => {
                let new_len = match &data {
                    None => value.len(),
                    Some(d) => d.len() + 1 + value.len(),
                };
                if new_len > l.max_event_bytes {
                    let e = SseError::EventTooLarge {
                        limit: l.max_event_bytes,
                    };
                    out.push(Err(e.clone()));
                    return (out, Err(e));
                }
                match &mut data {
                    None => data = Some(value.to_vec()),
                    Some(d) => {
                        d.push(b'\n');
                        d.extend_from_slice(value);
                    }
                }
            }
            b"id" if !value.contains(&0) => id = String::from_utf8_lossy(value).into_owned(),
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                if let Ok(v) = std::str::from_utf8(value).unwrap_or("x").parse::<u64>() {
                    retry = Some(v);
                }
            }
            _ => {}
        }
    }
    let only_bom = lines.is_empty() && partial == BOM;
    if partial.len() > l.max_line_bytes {
        let e = SseError::LineTooLong {
            limit: l.max_line_bytes,
        };
        out.push(Err(e.clone()));
        return (out, Err(e));
    }
    let eof = if !partial.is_empty() && !only_bom {
        SseEof::IncompleteLine
    } else if pending {
        SseEof::IncompleteEvent
    } else {
        SseEof::Clean
    };
    (out, Ok(eof))
}

/// The `sse_parse` target: see the module documentation.
pub fn sse_parse(data: &[u8]) {
    let mut c = Cursor::new(data);
    let l = limits(&mut c);
    let mode = c.u8();
    let body = c.rest();
    let pull = mode & 1 == 1;
    let method = (mode >> 1) & 3;
    let size = usize::from(mode >> 3);
    let pieces: Vec<&[u8]> = if size == 31 {
        vec![body]
    } else {
        body.chunks(1 + size * 4).collect()
    };
    let methods = move |i: usize| match method {
        0 => false,
        1 => true,
        2 => i % 2 == 1,
        _ => i != 0,
    };
    let got = run(l, &pieces, methods, pull);
    assert_eq!(got, reference(l, body), "parser vs reference model");
}

/// The `sse_chunking` target: see the module documentation.
pub fn sse_chunking(data: &[u8]) {
    let mut c = Cursor::new(data);
    let l = limits(&mut c);
    let n = usize::from(c.u8() % 17);
    let cuts: Vec<usize> = (0..n).map(|_| usize::from(c.u16())).collect();
    let bits = c.u8();
    let body = c.rest();
    let methods = |i: usize| (bits >> (i % 8)) & 1 == 1;
    let whole = run(l, &[body], |_| false, true);
    assert_eq!(
        run(l, &[body], |_| true, true),
        whole,
        "whole, with feed_bytes"
    );
    let pieces = cut(body, &cuts);
    assert_eq!(run(l, &pieces, methods, true), whole, "pieces {cuts:?}");
    assert_eq!(
        run(l, &pieces, methods, false),
        whole,
        "pieces {cuts:?}, pulled at the end"
    );
    if body.len() <= 512 {
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(run(l, &bytes, methods, true), whole, "byte by byte");
    }
}
