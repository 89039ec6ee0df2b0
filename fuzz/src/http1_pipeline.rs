//! `http1_pipeline`: several requests pipelined on one
//! [`Connection::pipelined`](ds_proto::http1::Connection::pipelined), then arbitrary server
//! bytes cut at arbitrary points (and maybe EOF): the same inputs and connection state
//! whatever the cuts; inputs grouped per request in the order the requests were sent; each
//! request ends (`End` or `Failed`) at most once, in order, and every one of them after EOF;
//! `NotProcessed` only behind a response that announced `Connection: close` or for a request
//! not fully written; a refusal of pipelining only after EOF and an answered request.
//!
//! Input format: byte 0 = number of requests `n` (`1 + b % 8`), byte 1 = extra depth (depth is
//! `n + b % 3`), bytes 2-3 = methods (`u16` LE, two bits per request: GET, HEAD, POST, POST with
//! `Connection: close`), byte 4 = flags (bit 0: EOF after the last byte; bit 1: report only
//! `written` bytes written), bytes 5-6 = `written` (`u16` LE, modulo the bytes encoded + 1),
//! byte 7 = number of cuts (mod 17) followed by that many `u16` LE cut positions; the rest is
//! what the server sends.

use crate::util::{cut, Cursor};
use bytes::Bytes;
use ds_proto::http1::{Connection, Http1Error, Limits};
use ds_proto::io::{Input, RequestId, Transmit, TransportErrorKind};

/// An input with bodies joined.
#[derive(Debug, PartialEq)]
enum Norm {
    Head(u64, http::StatusCode, bool),
    Body(u64, Vec<u8>),
    End(u64),
    Failed(u64, TransportErrorKind, String),
}

#[derive(Debug, PartialEq)]
struct Outcome {
    inputs: Vec<Norm>,
    must_close: bool,
    idle: bool,
    can_send: bool,
    in_flight: usize,
    refused: bool,
    error: Option<Http1Error>,
}

fn request(id: u64, kind: u16) -> Transmit {
    let b = match kind & 3 {
        0 => http::Request::get("http://h:1/v1/stream/s?offset=-1"),
        1 => http::Request::head("http://h:1/v1/stream/s"),
        2 => http::Request::post("http://h:1/v1/stream/s"),
        _ => http::Request::post("http://h:1/v1/stream/s").header("connection", "close"),
    };
    let body = if kind & 2 == 2 {
        Bytes::from_static(b"batch")
    } else {
        Bytes::new()
    };
    Transmit {
        id: RequestId(id),
        request: b.body(body).expect("valid request"),
        deadline: None,
    }
}

fn run(
    n: usize,
    depth: usize,
    methods: u16,
    written: Option<u16>,
    pieces: &[&[u8]],
    eof: bool,
) -> Outcome {
    let mut conn = Connection::pipelined(Limits::default(), depth);
    let mut wire = Vec::new();
    let mut sent = 0u64;
    for i in 0..n {
        let kind = (methods >> (2 * i)) & 3;
        let before = wire.len();
        match conn.send(&request(i as u64 + 1, kind), &mut wire) {
            Ok(()) => sent += 1,
            Err(Http1Error::ConnectionClosed) => {
                // Only after a request asking for `Connection: close`.
                assert_eq!(wire.len(), before);
                break;
            }
            Err(e) => panic!("send {i} refused: {e}"),
        }
    }
    assert_eq!(conn.in_flight() as u64, sent);
    if conn.can_send() {
        assert!((sent as usize) < depth);
    } else if sent as usize == depth {
        let before = wire.len();
        let refused = conn.send(&request(99, 0), &mut wire);
        // Full (or closed, when the last request asked for `Connection: close`).
        assert!(matches!(
            refused,
            Err(Http1Error::PipelineFull { .. }
                | Http1Error::ExchangeInProgress
                | Http1Error::ConnectionClosed)
        ));
        assert_eq!(wire.len(), before);
    }
    if let Some(w) = written {
        conn.on_written(usize::from(w) % (wire.len() + 1));
    }
    let mut inputs = Vec::new();
    let poll = |conn: &mut Connection, inputs: &mut Vec<Norm>| {
        while let Some(input) = conn.poll_input() {
            let norm = match input {
                Input::Head { id, parts } => {
                    let close = parts
                        .headers
                        .get_all(http::header::CONNECTION)
                        .iter()
                        .any(|v| {
                            v.as_bytes()
                                .split(|&b| b == b',')
                                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
                        });
                    Norm::Head(id.0, parts.status, close)
                }
                Input::Body { id, chunk } => {
                    assert!(!chunk.is_empty(), "an empty body chunk");
                    if let Some(Norm::Body(last, data)) = inputs.last_mut() {
                        if *last == id.0 {
                            data.extend_from_slice(&chunk);
                            continue;
                        }
                    }
                    Norm::Body(id.0, chunk.to_vec())
                }
                Input::End { id } => Norm::End(id.0),
                Input::Failed { id, error } => Norm::Failed(id.0, error.kind, error.message),
            };
            inputs.push(norm);
        }
    };
    for piece in pieces {
        conn.feed(piece);
        poll(&mut conn, &mut inputs);
    }
    if eof {
        conn.on_eof();
        poll(&mut conn, &mut inputs);
    }
    assert!(conn.poll_input().is_none());
    check(&inputs, sent, eof, written.is_some(), &conn);
    Outcome {
        inputs,
        must_close: conn.must_close(),
        idle: conn.is_idle(),
        can_send: conn.can_send(),
        in_flight: conn.in_flight(),
        refused: conn.pipelining_refused(),
        error: conn.error().cloned(),
    }
}

/// The invariants of one run.
fn check(inputs: &[Norm], sent: u64, eof: bool, tracked: bool, conn: &Connection) {
    let id_of = |n: &Norm| match n {
        Norm::Head(id, ..) | Norm::Body(id, _) | Norm::End(id) | Norm::Failed(id, ..) => *id,
    };
    // Grouped per request, in order; one head at most, before bodies; one end, last.
    let mut ended = 0u64;
    let mut current: Option<(u64, bool)> = None; // (id, head seen)
    let mut close_seen = false;
    let mut answered = false;
    for n in inputs {
        let id = id_of(n);
        assert!(
            id == ended + 1,
            "input for {id} while {} is next: {n:?}",
            ended + 1
        );
        assert!(id <= sent);
        let head_seen = current.filter(|(c, _)| *c == id).is_some_and(|(_, h)| h);
        match n {
            Norm::Head(_, status, close) => {
                assert!(!head_seen, "a second head for {id}");
                assert!(!status.is_informational());
                close_seen |= *close;
                current = Some((id, true));
            }
            Norm::Body(..) => {
                assert!(head_seen, "a body before the head of {id}");
            }
            Norm::End(_) => {
                assert!(head_seen, "an end before the head of {id}");
                answered = true;
                ended = id;
                current = None;
            }
            Norm::Failed(_, kind, _) => {
                if *kind == TransportErrorKind::Connect {
                    // Known not processed: behind an announced close, or not fully written,
                    // and never with a response started.
                    assert!(close_seen || tracked, "NotProcessed without proof for {id}");
                    assert!(!head_seen, "NotProcessed after a head for {id}");
                }
                ended = id;
                current = None;
            }
        }
    }
    assert_eq!(conn.in_flight() as u64, sent - ended);
    if eof {
        assert_eq!(ended, sent, "after EOF every request ends");
    }
    if conn.pipelining_refused() {
        assert!(eof && answered, "refusal without EOF after an answer");
    }
}

/// The target.
pub fn http1_pipeline(data: &[u8]) {
    let mut c = Cursor::new(data);
    let n = 1 + usize::from(c.u8() % 8);
    let depth = n + usize::from(c.u8() % 3);
    let methods = c.u16();
    let flags = c.u8();
    let written = c.u16();
    let ncuts = c.u8() % 17;
    let cuts: Vec<usize> = (0..ncuts).map(|_| usize::from(c.u16())).collect();
    let body = c.rest();
    let eof = flags & 1 == 1;
    let written = (flags & 2 == 2).then_some(written);
    let whole = run(n, depth, methods, written, &[body], eof);
    let split = run(n, depth, methods, written, &cut(body, &cuts), eof);
    assert_eq!(split, whole, "cut at {cuts:?}");
    let bytewise: Vec<&[u8]> = body.chunks(1).collect();
    if body.len() <= 512 {
        assert_eq!(
            run(n, depth, methods, written, &bytewise, eof),
            whole,
            "byte by byte"
        );
    }
}
