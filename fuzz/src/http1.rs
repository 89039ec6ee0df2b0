//! `http1_decode`: arbitrary response bytes, cut at arbitrary points, through the HTTP/1.1
//! [`Connection`] after a `send`: no panic, limits respected, a well-formed sequence of
//! inputs, and the same inputs (bodies concatenated) and connection state whatever the cuts.
//!
//! Input format: byte 0 = flags (bits 0-1: the request is GET, HEAD, POST, or GET with
//! `Connection: close`; bit 2: the socket reaches EOF after the last byte; bit 3: small
//! limits picked by byte 1, else the defaults), byte 1 = limit selector, byte 2 = number of
//! cuts (mod 17) followed by that many `u16` LE cut positions; the rest is what the server
//! sends.

use crate::util::{cut, limit, Cursor};
use bytes::Bytes;
use ds_proto::http1::{Connection, Http1Error, Limits};
use ds_proto::io::{Input, RequestId, Transmit, TransportError};

/// An input with the id checked and bodies joined.
#[derive(Debug, PartialEq)]
enum Norm {
    Head(http::StatusCode, http::Version, Vec<(String, Vec<u8>)>),
    Body(Vec<u8>),
    End,
    Failed(TransportError),
}

#[derive(Debug, PartialEq)]
struct Outcome {
    inputs: Vec<Norm>,
    must_close: bool,
    idle: bool,
    error: Option<Http1Error>,
}

fn request(kind: u8) -> Transmit {
    let b = match kind & 3 {
        0 => http::Request::get("http://h:1/v1/stream/s?offset=-1"),
        1 => http::Request::head("http://h:1/v1/stream/s"),
        2 => http::Request::post("http://h:1/v1/stream/s").header("content-type", "text/plain"),
        _ => http::Request::get("http://h:1/v1/stream/s?offset=-1").header("connection", "close"),
    };
    let body = if kind & 3 == 2 {
        Bytes::from_static(b"hello")
    } else {
        Bytes::new()
    };
    Transmit {
        id: RequestId(7),
        request: b.body(body).expect("valid request"),
        deadline: None,
    }
}

fn run(limits: Limits, kind: u8, pieces: &[&[u8]], eof: bool) -> Outcome {
    let tx = request(kind);
    let head_request = kind & 3 == 1;
    let mut conn = Connection::new(limits);
    let mut wire = Vec::new();
    conn.send(&tx, &mut wire).expect("an idle connection sends");
    assert!(!wire.is_empty());
    let mut again = Vec::new();
    assert_eq!(
        conn.send(&tx, &mut again),
        Err(Http1Error::ExchangeInProgress)
    );
    assert!(again.is_empty());
    let bound = limits.max_header_bytes.max(limits.max_chunk_line_bytes);
    let mut inputs: Vec<Norm> = Vec::new();
    let mut content_length = None;
    let mut poll = |conn: &mut Connection, inputs: &mut Vec<Norm>| {
        while let Some(input) = conn.poll_input() {
            assert_eq!(input.id(), tx.id);
            assert!(
                !matches!(inputs.last(), Some(Norm::End | Norm::Failed(_))),
                "{input:?} after the end of the exchange"
            );
            match input {
                Input::Head { parts, .. } => {
                    assert!(inputs.is_empty(), "a second head");
                    assert!(!parts.status.is_informational());
                    assert!(parts.headers.len() <= limits.max_headers);
                    let h = &parts.headers;
                    let framed = !head_request
                        && !matches!(parts.status.as_u16(), 204 | 304)
                        && !h.contains_key(http::header::TRANSFER_ENCODING);
                    if framed {
                        content_length = h
                            .get(http::header::CONTENT_LENGTH)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|s| s.trim().parse::<u64>().ok());
                    }
                    let hs = h
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
                        .collect();
                    inputs.push(Norm::Head(parts.status, parts.version, hs));
                }
                Input::Body { chunk, .. } => {
                    assert!(!chunk.is_empty(), "an empty body chunk");
                    assert!(!head_request, "a body for HEAD");
                    match inputs.last_mut() {
                        Some(Norm::Body(b)) => b.extend_from_slice(&chunk),
                        Some(Norm::Head(..)) => inputs.push(Norm::Body(chunk.to_vec())),
                        other => panic!("a body chunk after {other:?}"),
                    }
                }
                Input::End { .. } => {
                    assert!(!inputs.is_empty(), "End without a head");
                    if let Some(n) = content_length {
                        let got = match inputs.last() {
                            Some(Norm::Body(b)) => b.len() as u64,
                            _ => 0,
                        };
                        assert_eq!(got, n, "body length vs Content-Length");
                    }
                    inputs.push(Norm::End);
                }
                Input::Failed { error, .. } => {
                    assert!(conn.error().is_some());
                    assert!(conn.must_close());
                    inputs.push(Norm::Failed(error));
                }
            }
        }
        assert!(
            conn.buffered_len() <= bound,
            "{} bytes buffered after polling, bound {bound}",
            conn.buffered_len()
        );
        if conn.current().is_none() {
            assert!(matches!(inputs.last(), Some(Norm::End | Norm::Failed(_))));
        }
    };
    for piece in pieces {
        conn.feed(piece);
        poll(&mut conn, &mut inputs);
    }
    if eof {
        conn.on_eof();
        poll(&mut conn, &mut inputs);
        assert!(conn.current().is_none(), "an exchange survives EOF");
        assert!(conn.must_close());
    }
    if conn.is_idle() {
        // The connection carries another request.
        let mut out = Vec::new();
        conn.send(&tx, &mut out).expect("an idle connection sends");
    } else if conn.current().is_none() {
        let mut out = Vec::new();
        assert_eq!(conn.send(&tx, &mut out), Err(Http1Error::ConnectionClosed));
    }
    Outcome {
        inputs,
        must_close: conn.must_close(),
        idle: conn.is_idle(),
        error: conn.error().cloned(),
    }
}

/// The `http1_decode` target: see the module documentation.
pub fn http1_decode(data: &[u8]) {
    let mut c = Cursor::new(data);
    let flags = c.u8();
    let sel = c.u8();
    let limits = if flags & 8 != 0 {
        Limits {
            max_header_bytes: limit(sel, 64),
            max_headers: 1 + usize::from(sel % 16),
            max_chunk_line_bytes: 1 + usize::from(sel % 64),
        }
    } else {
        Limits::default()
    };
    let n = usize::from(c.u8() % 17);
    let cuts: Vec<usize> = (0..n).map(|_| usize::from(c.u16())).collect();
    let bytes = c.rest();
    let eof = flags & 4 != 0;
    let whole = run(limits, flags, &[bytes], eof);
    let pieces = cut(bytes, &cuts);
    assert_eq!(run(limits, flags, &pieces, eof), whole, "cut at {cuts:?}");
    if bytes.len() <= 1024 {
        let each: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(run(limits, flags, &each, eof), whole, "byte by byte");
    }
}

/// The `http1_encode` target: an arbitrary request through [`encode_request`] and
/// [`Connection::send`] (and their head-only forms followed by the body): refused with a
/// typed error leaving the output untouched, or encoded so that an HTTP/1.1 parser
/// (httparse) reads back exactly the request: method, target, `Host`, every header in order,
/// framing and body (no header injection, no smuggling).
///
/// Input format, as text: the first line is `METHOD URI`; each following line up to a blank
/// one is `name:value` (lines `http` refuses are skipped); the rest is the body.
///
/// [`encode_request`]: ds_proto::http1::encode_request
pub fn http1_encode(data: &[u8]) {
    let (first, pairs, body) = crate::headers::parse_lines(data);
    let mut words = first.splitn(2, |&b| b == b' ');
    let method = words.next().unwrap_or_default();
    let uri = words.next().unwrap_or_default();
    let Ok(method) = http::Method::from_bytes(method) else {
        return;
    };
    let Ok(uri) = http::Uri::try_from(uri) else {
        return;
    };
    let mut b = http::Request::builder()
        .method(method.clone())
        .uri(uri.clone());
    for (k, v) in &pairs {
        b = b.header(k, v);
    }
    let Ok(request) = b.body(Bytes::copy_from_slice(body)) else {
        return;
    };
    let mut out = b"previous".to_vec();
    let result = ds_proto::http1::encode_request(&request, &mut out);
    let mut conn = Connection::new(Limits::default());
    let mut sent = b"previous".to_vec();
    let tx = Transmit {
        id: RequestId(1),
        request,
        deadline: None,
    };
    assert_eq!(conn.send(&tx, &mut sent), result.clone());
    assert_eq!(sent, out, "send writes what encode_request writes");
    assert_eq!(conn.current(), result.is_ok().then_some(RequestId(1)));
    // The head alone, then the body, is the same request on the wire.
    let mut head_only = Connection::new(Limits::default());
    let mut head = b"previous".to_vec();
    assert_eq!(head_only.send_head(&tx, &mut head), result.clone());
    if result.is_ok() {
        head.extend_from_slice(tx.request.body());
    }
    assert_eq!(head, out, "send_head and the body write what send writes");
    let mut alone = b"previous".to_vec();
    assert_eq!(
        ds_proto::http1::encode_request_head(&tx.request, &mut alone),
        result.clone()
    );
    if result.is_ok() {
        alone.extend_from_slice(tx.request.body());
    }
    assert_eq!(alone, out, "encode_request_head and the body write what encode_request writes");
    let request = tx.request;
    let wire = &out[b"previous".len()..];
    if let Err(e) = result {
        assert!(wire.is_empty(), "an error leaves the output as it was");
        assert_eq!(e.transport_kind(), ds_proto::io::TransportErrorKind::Other);
        return;
    }
    let mut hs = vec![httparse::EMPTY_HEADER; request.headers().len() + 2];
    let mut parsed = httparse::Request::new(&mut hs);
    let n = match parsed.parse(wire) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!(
            "the encoding does not parse: {other:?}\n{}",
            String::from_utf8_lossy(wire)
        ),
    };
    assert_eq!(parsed.method, Some(method.as_str()));
    assert_eq!(parsed.version, Some(1));
    let path = if uri.path().is_empty() {
        "/"
    } else {
        uri.path()
    };
    let target = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    assert_eq!(parsed.path, Some(target.as_str()));
    let trim = |v: &[u8]| -> Vec<u8> {
        let v = v.trim_ascii();
        v.to_vec()
    };
    let got: Vec<(String, Vec<u8>)> = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), trim(h.value)))
        .collect();
    let mut want: Vec<(String, Vec<u8>)> = Vec::new();
    if !request.headers().contains_key(http::header::HOST) {
        let a = uri.authority().expect("encoded, so it has an authority");
        let host = match a.port() {
            Some(p) => format!("{}:{}", a.host(), p.as_str()),
            None => a.host().to_owned(),
        };
        want.push(("host".to_owned(), host.into_bytes()));
    }
    for (k, v) in request.headers() {
        want.push((k.as_str().to_owned(), trim(v.as_bytes())));
    }
    let with_length = !body.is_empty() || matches!(method.as_str(), "POST" | "PUT" | "PATCH");
    if with_length && !request.headers().contains_key(http::header::CONTENT_LENGTH) {
        want.push((
            "content-length".to_owned(),
            body.len().to_string().into_bytes(),
        ));
    }
    assert_eq!(got, want, "headers read back");
    assert_eq!(&wire[n..], body, "body read back");
}
