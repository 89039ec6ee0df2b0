//! `read_body`: arbitrary bytes as the body of a read: a JSON-mode catch-up body
//! (`json::split_array`, `ReadResult::json_items`, checked against serde_json), a binary one,
//! the same through a catch-up [`Reader`], and an SSE body through an SSE [`Reader`] with and
//! without `stream-sse-data-encoding: base64` (checked against the SSE parser and a model of
//! the reader's release rule).
//!
//! Input format: byte 0 = flags (bits 0-3: body piece size `1 + 16 * n`, 15 = whole; bit 4:
//! the catch-up response says `application/json`; bit 5: the SSE reader is told the stream is
//! JSON), byte 1 picks `max_body_bytes`, byte 2 the SSE limits (see [`crate::util::limit`]);
//! the rest is the body.

use crate::util::{base_instant, hdr, limit, parts, Cursor};
use bytes::Bytes;
use ds_proto::error::ErrorKind;
use ds_proto::io::{Input, RequestId};
use ds_proto::json;
use ds_proto::offset::Offset;
use ds_proto::ops::{self, ReadResult};
use ds_proto::reader::{ReadMode, Reader, ReaderConfig, ReaderEvent};
use ds_proto::sse::{self, ControlEvent, EventType, SseLimits, SseParser};
use serde::de::IgnoredAny;

const URL: &str = "http://h/v1/stream/s";
const NEXT: &str = "0000000000000005";

/// The `read_body` target: see the module documentation.
pub fn read_body(data: &[u8]) {
    let mut c = Cursor::new(data);
    let flags = c.u8();
    let max_body = limit(c.u8(), 64);
    let sse_sel = c.u8();
    let body = c.rest();
    let piece = match flags & 15 {
        15 => usize::MAX,
        n => 1 + 16 * usize::from(n),
    };
    let sse_limits = SseLimits {
        max_line_bytes: limit(sse_sel, 32),
        max_event_bytes: limit(sse_sel, 64),
    };
    json_body(body);
    read_response(body);
    catch_up(body, piece, flags & 16 != 0, max_body);
    for base64 in [false, true] {
        sse_body(body, piece, base64, flags & 32 != 0, max_body, sse_limits);
    }
}

/// `split_array` agrees with serde_json on which bodies are arrays and on their length, hands
/// out valid zero-copy items, and round-trips through `batch` and `merge_arrays`.
fn json_body(body: &[u8]) {
    let b = Bytes::copy_from_slice(body);
    let blank = body.iter().all(u8::is_ascii_whitespace);
    // JSON text is UTF-8 (RFC 8259 8.1); serde_json's IgnoredAny does not check strings.
    let oracle = std::str::from_utf8(body)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str::<Vec<IgnoredAny>>(s).map_err(|e| e.to_string()));
    // What `validate` accepts as an array (what a producer sends), `split_array` splits (what
    // a reader gets back).
    let validated_array = json::validate(body).is_ok() && body.trim_ascii_start().starts_with(b"[");
    match json::split_array(&b) {
        Ok(items) => {
            if blank {
                assert!(items.is_empty());
            } else {
                let n = oracle
                    .expect("split_array accepted what serde_json refuses")
                    .len();
                assert_eq!(items.len(), n);
            }
            if json::is_empty_array(body) {
                assert!(items.is_empty());
            }
            let span = b.as_ptr() as usize..b.as_ptr() as usize + b.len();
            for item in &items {
                assert!(json::validate(item).is_ok(), "item {item:?} is not JSON");
                assert!(!item.is_empty() && !item[0].is_ascii_whitespace());
                assert!(!item[item.len() - 1].is_ascii_whitespace());
                assert!(span.contains(&(item.as_ptr() as usize)), "item was copied");
            }
            let merged = json::merge_arrays(&[body]).expect("an array merges");
            assert_eq!(
                json::split_array(&merged).expect("merged is an array"),
                items
            );
            if !items.is_empty() {
                let joined = json::batch(&items).expect("non-empty batch");
                assert_eq!(
                    json::split_array(&joined).expect("a batch is an array"),
                    items
                );
            }
        }
        Err(e) => {
            assert!(
                !validated_array,
                "validate accepts an array that split_array refuses: {e}"
            );
            assert!(!blank);
            assert!(
                oracle.is_err(),
                "serde_json reads an array that split_array refuses"
            );
            assert!(json::merge_arrays(&[body]).is_err());
        }
    }
}

fn read_result(body: &[u8], content_type: &str) -> ReadResult {
    let p = parts(
        200,
        &[
            hdr("stream-next-offset", NEXT),
            hdr("content-type", content_type),
        ],
    );
    ops::read_response(URL, &Offset::beginning(), &p, Bytes::copy_from_slice(body))
        .expect("a 200 with an offset is a result")
}

fn read_response(body: &[u8]) {
    let r = read_result(body, "application/json; charset=utf-8");
    assert!(r.is_json());
    assert_eq!(
        r.json_items(),
        json::split_array(&Bytes::copy_from_slice(body)).map_err(String::from)
    );
    let r = read_result(body, "application/octet-stream");
    assert!(!r.is_json());
    assert_eq!(&r.data[..], body);
}

fn pieces(body: &[u8], piece: usize) -> Vec<&[u8]> {
    if piece >= body.len() {
        vec![body]
    } else {
        body.chunks(piece).collect()
    }
}

fn events(r: &mut Reader) -> Vec<ReaderEvent> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

/// A catch-up read whose response carries `body`: released whole, or refused over the limit.
fn catch_up(body: &[u8], piece: usize, json_ct: bool, max_body: usize) {
    let now = base_instant();
    let config = ReaderConfig {
        mode: ReadMode::CatchUp,
        max_body_bytes: max_body,
        ..ReaderConfig::new(URL)
    };
    let mut r = Reader::new(config, now).expect("valid config");
    let tx = r.poll_transmit(now).expect("a first request");
    assert!(r.poll_transmit(now).is_none(), "one request at a time");
    let ct = if json_ct {
        "application/json"
    } else {
        "application/octet-stream"
    };
    let head = parts(
        200,
        &[
            hdr("stream-next-offset", NEXT),
            hdr("stream-up-to-date", "true"),
            hdr("content-type", ct),
        ],
    );
    r.handle_input(
        Input::Head {
            id: tx.id,
            parts: head,
        },
        now,
    );
    let mut cancelled = false;
    for p in pieces(body, piece) {
        r.handle_input(
            Input::Body {
                id: tx.id,
                chunk: Bytes::copy_from_slice(p),
            },
            now,
        );
        if let Some(id) = r.poll_cancel() {
            assert_eq!(id, tx.id);
            cancelled = true;
            break;
        }
    }
    if !cancelled {
        r.handle_input(Input::End { id: tx.id }, now);
    }
    let evs = events(&mut r);
    assert!(r.poll_transmit(now).is_none(), "a request after the end");
    if body.len() > max_body {
        assert!(cancelled);
        assert!(
            matches!(&evs[..], [ReaderEvent::Failed(e)] if matches!(e.kind, ErrorKind::LimitExceeded(_))),
            "{evs:?}"
        );
        return;
    }
    assert!(!cancelled);
    let empty = body.is_empty() || (json_ct && json::is_empty_array(body));
    let next = Offset::parse(NEXT).expect("valid");
    match &evs[..] {
        [ReaderEvent::Data(chunk), ReaderEvent::UpToDate { offset }, ReaderEvent::Done] => {
            assert!(!empty);
            assert_eq!(&chunk.data[..], body);
            assert_eq!(chunk.json, json_ct);
            assert!(chunk.up_to_date && !chunk.closed);
            assert_eq!(chunk.next_offset, next);
            assert_eq!(offset, &next);
        }
        [ReaderEvent::UpToDate { offset }, ReaderEvent::Done] => {
            assert!(empty);
            assert_eq!(offset, &next);
        }
        other => panic!("catch-up gave {other:?}"),
    }
    assert_eq!(r.offset(), &next);
}

/// What the reader must release from an SSE body (non-JSON streams): the data events before
/// each valid `control`, decoded, until the first thing that ends the read.
struct SseModel {
    released: Vec<u8>,
    /// The read ended in failure.
    failed: bool,
    /// A control said `streamClosed`.
    closed: bool,
    /// The offset of the last accepted control (`-1` if none).
    offset: Offset,
}

fn sse_model(body: &[u8], base64: bool, max_body: usize, limits: SseLimits) -> SseModel {
    let mut m = SseModel {
        released: Vec::new(),
        failed: false,
        closed: false,
        offset: Offset::beginning(),
    };
    let mut p = SseParser::new(limits);
    p.feed(body);
    let _ = p.finish();
    let mut held: Vec<u8> = Vec::new();
    while let Some(ev) = p.next_event() {
        let Ok(ev) = ev else {
            m.failed = true;
            return m;
        };
        match ev.event {
            EventType::Data => {
                let payload = if base64 {
                    match sse::decode_base64_data(&ev.data) {
                        Ok(p) => p,
                        Err(_) => {
                            m.failed = true;
                            return m;
                        }
                    }
                } else {
                    ev.data
                };
                held.extend_from_slice(&payload);
                if held.len() > max_body {
                    m.failed = true;
                    return m;
                }
            }
            EventType::Control => {
                let Ok(control) = ControlEvent::parse(&ev.data) else {
                    m.failed = true;
                    return m;
                };
                let Ok(next) = Offset::parse(control.stream_next_offset.as_str()) else {
                    m.failed = true;
                    return m;
                };
                let cur = &m.offset;
                // `-1` is never a server offset (PROTOCOL.md 8): after data it would have the
                // reader read and deliver that data again.
                if next.is_now()
                    || (next.is_beginning() && (!cur.is_beginning() || !held.is_empty()))
                    || (!cur.is_sentinel() && next < *cur)
                {
                    m.failed = true;
                    return m;
                }
                m.released.append(&mut held);
                m.offset = next;
                if control.stream_closed {
                    m.closed = true;
                    return m;
                }
            }
            EventType::Message | EventType::Other(_) => {}
        }
    }
    m
}

fn sse_body(
    body: &[u8],
    piece: usize,
    base64: bool,
    json_hint: bool,
    max_body: usize,
    limits: SseLimits,
) {
    let now = base_instant();
    let config = ReaderConfig {
        mode: ReadMode::Sse,
        max_body_bytes: max_body,
        sse_limits: limits,
        json: json_hint.then_some(true),
        ..ReaderConfig::new(URL)
    };
    let mut r = Reader::new(config, now).expect("valid config");
    let tx = r.poll_transmit(now).expect("a first request");
    let mut head = vec![hdr("content-type", "text/event-stream")];
    if base64 {
        head.push(hdr("stream-sse-data-encoding", "base64"));
    }
    r.handle_input(
        Input::Head {
            id: tx.id,
            parts: parts(200, &head),
        },
        now,
    );
    let mut evs = Vec::new();
    let mut cancelled = false;
    for p in pieces(body, piece) {
        r.handle_input(
            Input::Body {
                id: tx.id,
                chunk: Bytes::copy_from_slice(p),
            },
            now,
        );
        evs.extend(events(&mut r));
        if let Some(id) = r.poll_cancel() {
            assert_eq!(id, tx.id);
            assert!(r.poll_cancel().is_none());
            cancelled = true;
            break;
        }
        // Inputs for another id are ignored.
        r.handle_input(
            Input::End {
                id: RequestId(tx.id.0 + 100),
            },
            now,
        );
        assert!(r.poll_transmit(now).is_none(), "a second request in flight");
    }
    if !cancelled {
        r.handle_input(Input::End { id: tx.id }, now);
    }
    evs.extend(events(&mut r));
    let mut data = Vec::new();
    let mut terminal = None;
    for ev in &evs {
        assert!(terminal.is_none(), "{ev:?} after the terminal event");
        match ev {
            ReaderEvent::Data(chunk) => {
                assert_eq!(chunk.json, json_hint && !base64);
                data.extend_from_slice(&chunk.data);
            }
            ReaderEvent::Closed { .. } | ReaderEvent::Failed(_) | ReaderEvent::Done => {
                terminal = Some(ev.clone())
            }
            _ => {}
        }
    }
    let next_tx = r.poll_transmit(now);
    if terminal.is_some() {
        assert!(next_tx.is_none(), "a request after {terminal:?}");
    }
    if json_hint && !base64 {
        return;
    }
    let m = sse_model(body, base64, max_body, limits);
    assert_eq!(data, m.released, "released data (base64: {base64})");
    assert_eq!(
        m.failed,
        matches!(terminal, Some(ReaderEvent::Failed(_))),
        "failure: {terminal:?}"
    );
    assert_eq!(
        m.closed,
        matches!(terminal, Some(ReaderEvent::Closed { .. }))
    );
    if terminal.is_none() {
        // The body ended without EOF: the reader reconnects from the last control's offset.
        let tx = next_tx.expect("a reconnection");
        let q = tx.request.uri().query().unwrap_or("").to_owned();
        let want = format!(
            "offset={}",
            ds_proto::url::encode_component(m.offset.as_str())
        );
        assert!(q.split('&').any(|kv| kv == want), "{q} lacks {want}");
    }
}
