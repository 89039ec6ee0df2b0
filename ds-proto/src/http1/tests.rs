//! Tests of the HTTP/1.1 codec, without IO: every response is decoded fed whole, byte by byte
//! and split at every point, and the `Input` sequences (body chunks joined) must agree.

use bytes::Bytes;
use http::{Method, Request, Version};
use proptest::prelude::*;

use super::encode::check_value;
use super::*;
use crate::io::{Input, RequestId, Transmit, TransportError, TransportErrorKind};

// ------------------------------------------------------------------------------------------------
// Encoding
// ------------------------------------------------------------------------------------------------

fn encode(request: Request<Bytes>) -> Result<String, Http1Error> {
    let mut out = b"prefix".to_vec();
    let result = encode_request(&request, &mut out);
    match result {
        Ok(()) => Ok(String::from_utf8(out[6..].to_vec()).unwrap()),
        Err(e) => {
            assert_eq!(out, b"prefix", "out is left as it was on error");
            Err(e)
        }
    }
}

#[test]
fn encode_get() {
    let request = Request::get("http://example.com/v1/stream/a%20b?offset=-1&live=long-poll")
        .header("accept", "*/*")
        .header("x-multi", "1")
        .header("x-multi", "2")
        .body(Bytes::new())
        .unwrap();
    assert_eq!(
        encode(request).unwrap(),
        "GET /v1/stream/a%20b?offset=-1&live=long-poll HTTP/1.1\r\n\
         host: example.com\r\n\
         accept: */*\r\n\
         x-multi: 1\r\n\
         x-multi: 2\r\n\
         \r\n"
    );
}

#[test]
fn encode_get_root_with_port_and_userinfo() {
    let request = Request::get("http://user:pw@[::1]:4437")
        .body(Bytes::new())
        .unwrap();
    assert_eq!(
        encode(request).unwrap(),
        "GET / HTTP/1.1\r\nhost: [::1]:4437\r\n\r\n"
    );
}

#[test]
fn encode_post_with_body() {
    let request = Request::post("https://example.com:8443/v1/stream/s")
        .header("content-type", "application/json")
        .header("producer-id", "p1")
        .body(Bytes::from_static(b"[1,2]"))
        .unwrap();
    assert_eq!(
        encode(request).unwrap(),
        "POST /v1/stream/s HTTP/1.1\r\n\
         host: example.com:8443\r\n\
         content-type: application/json\r\n\
         producer-id: p1\r\n\
         content-length: 5\r\n\
         \r\n\
         [1,2]"
    );
}

#[test]
fn encode_post_and_put_empty_have_zero_length() {
    for method in [Method::POST, Method::PUT, Method::PATCH] {
        let request = Request::builder()
            .method(method.clone())
            .uri("http://h/s")
            .body(Bytes::new())
            .unwrap();
        assert_eq!(
            encode(request).unwrap(),
            format!("{method} /s HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n")
        );
    }
}

#[test]
fn encode_put_with_body() {
    let request = Request::put("http://h/v1/stream/new")
        .header("content-type", "text/plain")
        .header("stream-ttl", "60")
        .body(Bytes::from_static(b"first"))
        .unwrap();
    assert_eq!(
        encode(request).unwrap(),
        "PUT /v1/stream/new HTTP/1.1\r\nhost: h\r\ncontent-type: text/plain\r\n\
         stream-ttl: 60\r\ncontent-length: 5\r\n\r\nfirst"
    );
}

#[test]
fn encode_head_and_delete_have_no_length() {
    let request = Request::head("http://h/s").body(Bytes::new()).unwrap();
    assert_eq!(
        encode(request).unwrap(),
        "HEAD /s HTTP/1.1\r\nhost: h\r\n\r\n"
    );
    let request = Request::delete("http://h/s").body(Bytes::new()).unwrap();
    assert_eq!(
        encode(request).unwrap(),
        "DELETE /s HTTP/1.1\r\nhost: h\r\n\r\n"
    );
}

#[test]
fn encode_explicit_host_and_length_are_kept() {
    let request = Request::post("http://internal:1/s")
        .header("host", "public.example")
        .header("content-length", "3")
        .header("connection", "close")
        .body(Bytes::from_static(b"abc"))
        .unwrap();
    assert_eq!(
        encode(request).unwrap(),
        "POST /s HTTP/1.1\r\nhost: public.example\r\ncontent-length: 3\r\n\
         connection: close\r\n\r\nabc"
    );
    // Origin-form URI: the Host header is required.
    let request = Request::get("/s?x=1")
        .header("host", "h:81")
        .body(Bytes::new())
        .unwrap();
    assert_eq!(
        encode(request).unwrap(),
        "GET /s?x=1 HTTP/1.1\r\nhost: h:81\r\n\r\n"
    );
}

#[test]
fn encode_errors() {
    let request = Request::get("/s").body(Bytes::new()).unwrap();
    assert_eq!(encode(request), Err(Http1Error::MissingHost));

    let request = Request::post("http://h/s")
        .header("content-length", "4")
        .body(Bytes::from_static(b"abc"))
        .unwrap();
    assert_eq!(
        encode(request),
        Err(Http1Error::ContentLengthMismatch { body_len: 3 })
    );

    let request = Request::post("http://h/s")
        .header("transfer-encoding", "chunked")
        .body(Bytes::from_static(b"abc"))
        .unwrap();
    assert_eq!(encode(request), Err(Http1Error::RequestTransferEncoding));

    let request = Request::builder()
        .method(Method::CONNECT)
        .uri("h:443")
        .body(Bytes::new())
        .unwrap();
    assert_eq!(
        encode(request),
        Err(Http1Error::UnsupportedMethod {
            method: "CONNECT".into()
        })
    );
}

#[test]
fn encode_refuses_an_authority_with_an_empty_host() {
    // `http::Uri` accepts these authorities; there is no host to write.
    for uri in ["http://:8080/s", "http://user@:80/s", "http://:/s"] {
        let request = Request::get(uri).body(Bytes::new()).unwrap();
        assert_eq!(request.uri().host(), Some(""), "{uri}");
        assert_eq!(encode(request), Err(Http1Error::MissingHost), "{uri}");
    }
    // With a Host header of its own, the URI's authority does not matter.
    let request = Request::get("http://:8080/s")
        .header("host", "h")
        .body(Bytes::new())
        .unwrap();
    assert_eq!(
        encode(request).unwrap(),
        "GET /s HTTP/1.1\r\nhost: h\r\n\r\n"
    );
}

#[test]
fn header_values_with_cr_lf_or_nul_are_refused() {
    // `http::HeaderValue`'s safe constructors cannot hold these bytes, so the guard is tested
    // directly.
    for bad in [&b"a\r\nx-injected: 1"[..], b"a\nb", b"a\rb", b"a\0b"] {
        assert_eq!(
            check_value("x-h", bad),
            Err(Http1Error::InvalidHeaderValue { name: "x-h".into() })
        );
    }
    assert_eq!(check_value("x-h", b"tab\tand \x80 obs-text"), Ok(()));
}

// ------------------------------------------------------------------------------------------------
// Decoding harness
// ------------------------------------------------------------------------------------------------

/// An `Input`, comparable.
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Head {
        id: u64,
        status: u16,
        version: Version,
        headers: Vec<(String, Vec<u8>)>,
    },
    Body {
        id: u64,
        data: Vec<u8>,
    },
    End {
        id: u64,
    },
    Failed {
        id: u64,
        error: TransportError,
    },
}

/// Everything observable after a run.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    events: Vec<Ev>,
    /// `send` results, one per exchange after the first.
    sends: Vec<Result<(), Http1Error>>,
    must_close: bool,
    idle: bool,
    error: Option<Http1Error>,
}

fn push(events: &mut Vec<Ev>, input: Input) {
    let ev = match input {
        Input::Head { id, parts } => Ev::Head {
            id: id.0,
            status: parts.status.as_u16(),
            version: parts.version,
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect(),
        },
        Input::Body { id, chunk } => {
            assert!(!chunk.is_empty(), "no empty body chunks");
            if let Some(Ev::Body { id: last, data }) = events.last_mut() {
                if *last == id.0 {
                    data.extend_from_slice(&chunk);
                    return;
                }
            }
            Ev::Body {
                id: id.0,
                data: chunk.to_vec(),
            }
        }
        Input::End { id } => Ev::End { id: id.0 },
        Input::Failed { id, error } => Ev::Failed { id: id.0, error },
    };
    events.push(ev);
}

/// How each response is cut into pieces.
#[derive(Debug, Clone)]
enum Split {
    Whole,
    Bytewise,
    At(usize),
    Cuts(Vec<usize>),
}

fn pieces<'a>(bytes: &'a [u8], split: &Split) -> Vec<&'a [u8]> {
    let cuts: Vec<usize> = match split {
        Split::Whole => vec![],
        Split::Bytewise => (1..bytes.len()).collect(),
        Split::At(i) => vec![*i],
        Split::Cuts(cuts) => cuts.clone(),
    };
    let mut out = Vec::new();
    let mut start = 0;
    for cut in cuts {
        let cut = cut.min(bytes.len());
        if cut > start {
            out.push(&bytes[start..cut]);
            start = cut;
        }
    }
    out.push(&bytes[start..]);
    out
}

fn transmit(id: u64, method: &Method) -> Transmit {
    let body = if *method == Method::POST {
        Bytes::from_static(b"data")
    } else {
        Bytes::new()
    };
    Transmit {
        id: RequestId(id),
        request: Request::builder()
            .method(method.clone())
            .uri("http://example.com/v1/stream/s")
            .body(body)
            .unwrap(),
        deadline: None,
    }
}

/// Runs exchanges one after the other on one connection (ids 1, 2, ...): each request is sent
/// when the connection is idle, its response fed in pieces with every input polled after each
/// piece; then EOF if `eof`.
fn run_script(limits: Limits, exchanges: &[(Method, &[u8])], split: &Split, eof: bool) -> Outcome {
    let mut conn = Connection::new(limits);
    let mut events = Vec::new();
    let mut sends = Vec::new();
    for (i, (method, response)) in exchanges.iter().enumerate() {
        let mut wire = Vec::new();
        let sent = conn.send(&transmit(i as u64 + 1, method), &mut wire);
        if i > 0 {
            sends.push(sent.clone());
        }
        if sent.is_err() {
            assert!(wire.is_empty());
            break;
        }
        assert!(!wire.is_empty());
        assert_eq!(conn.current(), Some(RequestId(i as u64 + 1)));
        for piece in pieces(response, split) {
            conn.feed(piece);
            while let Some(input) = conn.poll_input() {
                push(&mut events, input);
            }
        }
    }
    if eof {
        conn.on_eof();
        while let Some(input) = conn.poll_input() {
            push(&mut events, input);
        }
    }
    assert_eq!(conn.poll_input().map(|i| i.id()), None);
    Outcome {
        events,
        sends,
        must_close: conn.must_close(),
        idle: conn.is_idle(),
        error: conn.error().cloned(),
    }
}

/// Runs the script fed whole, byte by byte and split at every point; asserts they agree and
/// returns the outcome.
fn check_script(limits: Limits, exchanges: &[(Method, &[u8])], eof: bool) -> Outcome {
    let whole = run_script(limits, exchanges, &Split::Whole, eof);
    let bytewise = run_script(limits, exchanges, &Split::Bytewise, eof);
    assert_eq!(bytewise, whole, "byte by byte vs whole");
    let longest = exchanges.iter().map(|(_, r)| r.len()).max().unwrap_or(0);
    for at in 1..longest {
        let split = run_script(limits, exchanges, &Split::At(at), eof);
        assert_eq!(split, whole, "split at {at} vs whole");
    }
    whole
}

fn check(method: Method, response: &[u8], eof: bool) -> Outcome {
    check_script(Limits::default(), &[(method, response)], eof)
}

fn head(id: u64, status: u16, headers: &[(&str, &str)]) -> Ev {
    head_v(id, status, Version::HTTP_11, headers)
}

fn head_v(id: u64, status: u16, version: Version, headers: &[(&str, &str)]) -> Ev {
    Ev::Head {
        id,
        status,
        version,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect(),
    }
}

fn body(id: u64, data: &[u8]) -> Ev {
    Ev::Body {
        id,
        data: data.to_vec(),
    }
}

fn failed(id: u64, error: Http1Error) -> Ev {
    Ev::Failed {
        id,
        error: error.into(),
    }
}

fn assert_failed(outcome: &Outcome, error: Http1Error, kind: TransportErrorKind) {
    assert_eq!(error.transport_kind(), kind);
    let Some(Ev::Failed { error: got, .. }) = outcome.events.last() else {
        panic!("expected a failure, got {:?}", outcome.events);
    };
    assert_eq!(got.kind, kind);
    assert_eq!(outcome.error.as_ref(), Some(&error));
    assert!(outcome.must_close && !outcome.idle);
}

// ------------------------------------------------------------------------------------------------
// Decoding: responses
// ------------------------------------------------------------------------------------------------

#[test]
fn content_length_body() {
    let response = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                     Stream-Next-Offset: 0000000000000011\r\nETag: \"abc\"\r\n\
                     Cache-Control: public, max-age=60\r\nContent-Length: 11\r\n\r\nhello world";
    let out = check(Method::GET, response, false);
    assert_eq!(
        out.events,
        vec![
            head(
                1,
                200,
                &[
                    ("content-type", "application/octet-stream"),
                    ("stream-next-offset", "0000000000000011"),
                    ("etag", "\"abc\""),
                    ("cache-control", "public, max-age=60"),
                    ("content-length", "11"),
                ]
            ),
            body(1, b"hello world"),
            Ev::End { id: 1 },
        ]
    );
    assert!(!out.must_close && out.idle && out.error.is_none());
}

#[test]
fn content_length_zero_and_duplicates() {
    let out = check(
        Method::POST,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        false,
    );
    assert_eq!(
        out.events,
        vec![head(1, 200, &[("content-length", "0")]), Ev::End { id: 1 }]
    );
    assert!(out.idle);
    // Repeated identical values are accepted (RFC 9110 8.6).
    let out = check(
        Method::GET,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok",
        false,
    );
    assert_eq!(out.events[1], body(1, b"ok"));
    assert!(out.idle);
}

#[test]
fn chunked_with_extensions_and_trailers() {
    let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                     5;ext=1\r\nhello\r\n\
                     6 ; name=\"v\";flag\r\n world\r\n\
                     A\r\n0123456789\r\n\
                     000\r\nX-Trailer: yes\r\nAnother: t\r\n\r\n";
    let out = check(Method::GET, response, false);
    assert_eq!(
        out.events,
        vec![
            head(1, 200, &[("transfer-encoding", "chunked")]),
            body(1, b"hello world0123456789"),
            Ev::End { id: 1 },
        ]
    );
    assert!(!out.must_close && out.idle);
}

#[test]
fn chunked_without_trailers_and_bare_lf() {
    let response = b"HTTP/1.1 200 OK\nTransfer-Encoding: gzip, chunked\n\n3\nabc\n0\n\n";
    let out = check(Method::GET, response, false);
    assert_eq!(
        out.events,
        vec![
            head(1, 200, &[("transfer-encoding", "gzip, chunked")]),
            body(1, b"abc"),
            Ev::End { id: 1 },
        ]
    );
    assert!(out.idle);
}

const SSE_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
    Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n\
    1b\r\nevent: data\ndata: [1,2,3]\n\n\r\n\
    43\r\nevent: control\ndata: {\"streamNextOffset\":\"3\",\"streamCursor\":\"c1\"}\n\n\r\n\
    0\r\n\r\n";

#[test]
fn sse_streaming() {
    let out = check(Method::GET, SSE_RESPONSE, false);
    let mut expected = Vec::new();
    expected.extend_from_slice(b"event: data\ndata: [1,2,3]\n\n");
    expected.extend_from_slice(
        b"event: control\ndata: {\"streamNextOffset\":\"3\",\"streamCursor\":\"c1\"}\n\n",
    );
    assert_eq!(
        out.events,
        vec![
            head(
                1,
                200,
                &[
                    ("content-type", "text/event-stream"),
                    ("cache-control", "no-cache"),
                    ("transfer-encoding", "chunked")
                ]
            ),
            body(1, &expected),
            Ev::End { id: 1 },
        ]
    );
}

#[test]
fn sse_body_chunks_arrive_before_the_end() {
    let mut conn = Connection::new(Limits::default());
    conn.send(&transmit(1, &Method::GET), &mut Vec::new())
        .unwrap();
    let first_event_end = SSE_RESPONSE
        .windows(4)
        .position(|w| w == b"\n\n\r\n")
        .unwrap()
        + 2;
    conn.feed(&SSE_RESPONSE[..first_event_end]);
    let mut inputs = Vec::new();
    while let Some(input) = conn.poll_input() {
        inputs.push(input);
    }
    assert!(matches!(inputs[0], Input::Head { .. }));
    let data: Vec<u8> = inputs[1..]
        .iter()
        .flat_map(|i| match i {
            Input::Body { chunk, .. } => chunk.to_vec(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(data, b"event: data\ndata: [1,2,3]\n\n");
    // Half of the next event: delivered as it arrives, still no End.
    conn.feed(&SSE_RESPONSE[first_event_end..first_event_end + 20]);
    let mut inputs = Vec::new();
    while let Some(input) = conn.poll_input() {
        inputs.push(input);
    }
    assert!(inputs.iter().all(|i| matches!(i, Input::Body { .. })));
    assert!(!inputs.is_empty());
    assert_eq!(conn.current(), Some(RequestId(1)));
}

#[test]
fn long_poll_204_has_headers_and_no_body() {
    let response = b"HTTP/1.1 204 No Content\r\nStream-Next-Offset: 10\r\n\
                     Stream-Up-To-Date: true\r\nStream-Cursor: 42\r\n\r\n";
    let out = check(Method::GET, response, false);
    assert_eq!(
        out.events,
        vec![
            head(
                1,
                204,
                &[
                    ("stream-next-offset", "10"),
                    ("stream-up-to-date", "true"),
                    ("stream-cursor", "42")
                ]
            ),
            Ev::End { id: 1 },
        ]
    );
    assert!(out.idle && !out.must_close);
}

#[test]
fn head_response_has_no_body() {
    let response = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n\
                     Stream-Next-Offset: 99\r\n\r\n";
    let out = check(Method::HEAD, response, false);
    assert_eq!(
        out.events,
        vec![
            head(
                1,
                200,
                &[
                    ("content-type", "text/plain"),
                    ("content-length", "1234"),
                    ("stream-next-offset", "99")
                ]
            ),
            Ev::End { id: 1 },
        ]
    );
    assert!(out.idle);
    // Even when chunked is announced.
    let out = check(
        Method::HEAD,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        false,
    );
    assert_eq!(out.events.len(), 2);
    assert!(out.idle);
}

#[test]
fn not_modified_304_has_no_body() {
    let response = b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 50\r\n\r\n";
    let out = check(Method::GET, response, false);
    assert_eq!(
        out.events,
        vec![
            head(1, 304, &[("etag", "\"v1\""), ("content-length", "50")]),
            Ev::End { id: 1 },
        ]
    );
    assert!(out.idle);
}

#[test]
fn error_responses_with_bodies() {
    let out = check(
        Method::GET,
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n\r\n\
          stream not found",
        false,
    );
    assert_eq!(
        out.events,
        vec![
            head(
                1,
                404,
                &[("content-type", "text/plain"), ("content-length", "16")]
            ),
            body(1, b"stream not found"),
            Ev::End { id: 1 },
        ]
    );
    assert!(out.idle);

    let out = check(
        Method::POST,
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nTransfer-Encoding: chunked\r\n\r\n\
          c\r\ntry a\r\nlater\r\n0\r\n\r\n",
        false,
    );
    assert_eq!(out.events[1], body(1, b"try a\r\nlater"));
    assert_eq!(out.events[2], Ev::End { id: 1 });

    // A 409 asking to close the connection.
    let out = check(
        Method::POST,
        b"HTTP/1.1 409 Conflict\r\nStream-Closed: true\r\nConnection: close\r\n\
          Content-Length: 6\r\n\r\nclosed",
        false,
    );
    assert_eq!(out.events[1], body(1, b"closed"));
    assert_eq!(out.events[2], Ev::End { id: 1 });
    assert!(out.must_close && !out.idle);
}

#[test]
fn read_until_close() {
    let response = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome body\r\n\r\nbytes";
    let out = check(Method::GET, response, true);
    assert_eq!(
        out.events,
        vec![
            head(1, 200, &[("content-type", "text/plain")]),
            body(1, b"some body\r\n\r\nbytes"),
            Ev::End { id: 1 },
        ]
    );
    assert!(out.must_close && !out.idle && out.error.is_none());
    // Before EOF: the body streams, no End, and the connection is already known unusable.
    let out = check(Method::GET, response, false);
    assert_eq!(out.events.len(), 2);
    assert!(out.must_close);
}

#[test]
fn non_chunked_transfer_encoding_reads_until_close() {
    let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08";
    let out = check(Method::GET, response, true);
    assert_eq!(out.events[1], body(1, b"\x1f\x8b\x08"));
    assert_eq!(out.events[2], Ev::End { id: 1 });
}

#[test]
fn transfer_encoding_overrides_content_length_and_closes() {
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n\
                     2\r\nok\r\n0\r\n\r\n";
    let out = check(Method::GET, response, false);
    assert_eq!(out.events[1], body(1, b"ok"));
    assert_eq!(out.events[2], Ev::End { id: 1 });
    assert!(out.must_close);
}

#[test]
fn http10_keep_alive_rules() {
    let out = check(
        Method::GET,
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        false,
    );
    assert_eq!(
        out.events,
        vec![
            head_v(1, 200, Version::HTTP_10, &[("content-length", "2")]),
            body(1, b"ok"),
            Ev::End { id: 1 }
        ]
    );
    assert!(out.must_close);
    let out = check(
        Method::GET,
        b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok",
        false,
    );
    assert!(!out.must_close && out.idle);
    let out = check(
        Method::GET,
        b"HTTP/1.1 200 OK\r\nConnection: upgrade, CLOSE\r\nContent-Length: 2\r\n\r\nok",
        false,
    );
    assert!(out.must_close);
}

#[test]
fn request_asking_for_close_closes() {
    let mut conn = Connection::new(Limits::default());
    let mut t = transmit(1, &Method::GET);
    t.request
        .headers_mut()
        .insert("connection", http::HeaderValue::from_static("close"));
    conn.send(&t, &mut Vec::new()).unwrap();
    conn.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert!(matches!(conn.poll_input(), Some(Input::Head { .. })));
    assert!(matches!(conn.poll_input(), Some(Input::End { .. })));
    assert!(conn.must_close());
    assert_eq!(
        conn.send(&transmit(2, &Method::GET), &mut Vec::new()),
        Err(Http1Error::ConnectionClosed)
    );
}

#[test]
fn keep_alive_two_exchanges() {
    let first: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nStream-Next-Offset: 5\r\n\r\nhello";
    let second: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                          6\r\n world\r\n0\r\n\r\n";
    let out = check_script(
        Limits::default(),
        &[(Method::GET, first), (Method::POST, second)],
        false,
    );
    assert_eq!(
        out.events,
        vec![
            head(
                1,
                200,
                &[("content-length", "5"), ("stream-next-offset", "5")]
            ),
            body(1, b"hello"),
            Ev::End { id: 1 },
            head(2, 200, &[("transfer-encoding", "chunked")]),
            body(2, b" world"),
            Ev::End { id: 2 },
        ]
    );
    assert_eq!(out.sends, vec![Ok(())]);
    assert!(out.idle);

    // Three in a row, the middle one a 204 and the last one closing.
    let third: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n!";
    let out = check_script(
        Limits::default(),
        &[
            (Method::GET, first),
            (Method::GET, b"HTTP/1.1 204 No Content\r\n\r\n"),
            (Method::GET, third),
            (Method::GET, first),
        ],
        false,
    );
    assert_eq!(out.events.len(), 3 + 2 + 3);
    assert_eq!(
        out.sends,
        vec![Ok(()), Ok(()), Err(Http1Error::ConnectionClosed)]
    );
}

#[test]
fn send_while_busy_is_refused() {
    let mut conn = Connection::new(Limits::default());
    conn.send(&transmit(1, &Method::GET), &mut Vec::new())
        .unwrap();
    let mut out = Vec::new();
    assert_eq!(
        conn.send(&transmit(2, &Method::GET), &mut out),
        Err(Http1Error::ExchangeInProgress)
    );
    assert!(out.is_empty());
    assert_eq!(conn.current(), Some(RequestId(1)));
    // An encoding error leaves the connection idle.
    let mut conn = Connection::new(Limits::default());
    let bad = Transmit {
        id: RequestId(1),
        request: Request::get("/no-host").body(Bytes::new()).unwrap(),
        deadline: None,
    };
    assert_eq!(conn.send(&bad, &mut out), Err(Http1Error::MissingHost));
    assert!(conn.is_idle() && conn.current().is_none());
}

#[test]
fn unsolicited_bytes_poison_the_connection() {
    // Bytes after a complete response (fed together or later).
    let out = check(
        Method::GET,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 408 Request Timeout\r\n\r\n",
        false,
    );
    assert_eq!(out.events.len(), 3);
    assert!(out.must_close && !out.idle && out.error.is_none());
    // Bytes on an idle connection.
    let mut conn = Connection::new(Limits::default());
    conn.feed(b"HTTP/1.1 408 Request Timeout\r\n\r\n");
    assert!(conn.poll_input().is_none());
    assert!(conn.must_close());
    assert_eq!(
        conn.send(&transmit(1, &Method::GET), &mut Vec::new()),
        Err(Http1Error::ConnectionClosed)
    );
}

#[test]
fn interim_responses_are_skipped() {
    let response = b"HTTP/1.1 100 Continue\r\n\r\n\
                     HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
                     HTTP/1.1 201 Created\r\nLocation: /v1/stream/s\r\nContent-Length: 0\r\n\r\n";
    let out = check(Method::PUT, response, false);
    assert_eq!(
        out.events,
        vec![
            head(
                1,
                201,
                &[("location", "/v1/stream/s"), ("content-length", "0")]
            ),
            Ev::End { id: 1 },
        ]
    );
    assert!(out.idle);
}

#[test]
fn leading_empty_lines_are_tolerated() {
    let out = check(
        Method::GET,
        b"\r\n\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
        false,
    );
    assert_eq!(out.events[1], body(1, b"x"));
    assert!(out.idle);
}

#[test]
fn switching_protocols_is_an_error() {
    let out = check(
        Method::GET,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        false,
    );
    assert_eq!(out.events, vec![failed(1, Http1Error::UnexpectedUpgrade)]);
    assert_failed(
        &out,
        Http1Error::UnexpectedUpgrade,
        TransportErrorKind::Protocol,
    );
}

// ------------------------------------------------------------------------------------------------
// Decoding: malformed responses and limits
// ------------------------------------------------------------------------------------------------

#[test]
fn malformed_status_line() {
    for response in [
        &b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n"[..],
        b"HTTP/2 200 OK\r\n\r\n",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"\rHTTP/1.1 200 OK\r\n\r\n",
    ] {
        let out = check(Method::GET, response, false);
        assert_eq!(
            out.events.len(),
            1,
            "{:?}",
            String::from_utf8_lossy(response)
        );
        let Some(Http1Error::MalformedHead { .. }) = out.error else {
            panic!("{:?}: {:?}", String::from_utf8_lossy(response), out.error);
        };
        assert_failed(
            &out,
            out.error.clone().unwrap(),
            TransportErrorKind::Protocol,
        );
    }
}

#[test]
fn a_peer_that_does_not_speak_http_is_caught_at_the_first_line() {
    // No blank line, no EOF: the status line alone is enough to fail.
    let out = check(Method::GET, b"SSH-2.0-OpenSSH_9.6\r\nmore", false);
    assert_eq!(out.events.len(), 1);
    assert!(matches!(out.error, Some(Http1Error::MalformedHead { .. })));
}

#[test]
fn too_many_headers() {
    let limits = Limits {
        max_headers: 3,
        ..Limits::default()
    };
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nContent-Length: 0\r\n\r\n";
    let out = check_script(limits, &[(Method::GET, ok)], false);
    assert_eq!(out.events.len(), 2);
    let too_many: &[u8] = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nContent-Length: 0\r\n\r\n";
    let out = check_script(limits, &[(Method::GET, too_many)], false);
    assert_eq!(
        out.events,
        vec![failed(1, Http1Error::TooManyHeaders { max: 3 })]
    );
    assert_failed(
        &out,
        Http1Error::TooManyHeaders { max: 3 },
        TransportErrorKind::Protocol,
    );
}

#[test]
fn oversized_header_section() {
    let limits = Limits {
        max_header_bytes: 64,
        ..Limits::default()
    };
    // Exactly at the limit: accepted.
    let mut fits = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: ".to_vec();
    fits.resize(64 - 4, b'p');
    fits.extend_from_slice(b"\r\n\r\n");
    assert_eq!(fits.len(), 64);
    let out = check_script(limits, &[(Method::GET, &fits)], false);
    assert_eq!(out.events.len(), 2);
    assert!(out.idle);
    // One byte more: refused, whether the blank line has arrived or not.
    let mut too_big = fits.clone();
    too_big.insert(50, b'p');
    let expected = Http1Error::HeadTooLarge { max: 64 };
    let mut unterminated = fits[..fits.len() - 4].to_vec();
    unterminated.resize(100, b'p');
    for response in [&too_big[..], &unterminated[..]] {
        let out = check_script(limits, &[(Method::GET, response)], false);
        assert_eq!(out.events, vec![failed(1, expected.clone())]);
        assert_failed(&out, expected.clone(), TransportErrorKind::Protocol);
    }
    // A status line without an end, with the default limits.
    let mut endless = b"HTTP/1.1 200 ".to_vec();
    endless.resize(Limits::DEFAULT_MAX_HEADER_BYTES + 1, b'x');
    let out = run_script(
        Limits::default(),
        &[(Method::GET, &endless)],
        &Split::Whole,
        false,
    );
    assert_eq!(
        out.error,
        Some(Http1Error::HeadTooLarge {
            max: Limits::DEFAULT_MAX_HEADER_BYTES
        })
    );
    let chunks = Split::Cuts((1..endless.len() / 1000).map(|i| i * 1000).collect());
    assert_eq!(
        run_script(
            Limits::default(),
            &[(Method::GET, &endless)],
            &chunks,
            false
        ),
        out
    );
}

#[test]
fn bad_chunk_size() {
    let cases: &[(&[u8], Http1Error)] = &[
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            Http1Error::InvalidChunkSize,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
            Http1Error::InvalidChunkSize,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n",
            Http1Error::InvalidChunkSize,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n",
            Http1Error::InvalidChunkSize,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n",
            Http1Error::InvalidChunkSize,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXY",
            Http1Error::MalformedChunk,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            Http1Error::InvalidTransferEncoding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n",
            Http1Error::InvalidContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            Http1Error::InvalidContentLength,
        ),
    ];
    for (response, error) in cases {
        let out = check(Method::GET, response, false);
        assert_failed(&out, error.clone(), TransportErrorKind::Protocol);
    }
    // Data before the bad line is delivered first.
    let out = check(
        Method::GET,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nxyz\r\n",
        false,
    );
    assert_eq!(out.events[1], body(1, b"ok"));
    assert_eq!(out.events[2], failed(1, Http1Error::InvalidChunkSize));
}

#[test]
fn chunk_line_and_trailer_limits() {
    let limits = Limits {
        max_chunk_line_bytes: 16,
        max_header_bytes: 80,
        ..Limits::default()
    };
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    // 16 bytes with CRLF: fine; 17: too long (with or without its line end).
    let fits = [&head[..], b"2;abcdefghijkl\r\nok\r\n0\r\n\r\n"].concat();
    let out = check_script(limits, &[(Method::GET, &fits)], false);
    assert_eq!(out.events[1], body(1, b"ok"));
    assert!(out.idle);
    let expected = Http1Error::ChunkLineTooLong { max: 16 };
    for tail in [
        &b"2;abcdefghijklm\r\nok\r\n0\r\n\r\n"[..],
        b"2;abcdefghijklmnop",
    ] {
        let response = [&head[..], tail].concat();
        let out = check_script(limits, &[(Method::GET, &response)], false);
        assert_failed(&out, expected.clone(), TransportErrorKind::Protocol);
    }
    // Trailers are bounded by max_header_bytes.
    let trailer = format!("X-T: {}\r\n", "t".repeat(30));
    let fits = [
        &head[..],
        b"0\r\n",
        trailer.as_bytes(),
        trailer.as_bytes(),
        b"\r\n",
    ]
    .concat();
    let out = check_script(limits, &[(Method::GET, &fits)], false);
    assert!(out.idle, "{out:?}");
    let too_big = [
        &head[..],
        b"0\r\n",
        trailer.as_bytes(),
        trailer.as_bytes(),
        b"X: 12\r\n\r\n",
    ]
    .concat();
    let out = check_script(limits, &[(Method::GET, &too_big)], false);
    assert_failed(
        &out,
        Http1Error::TrailersTooLarge { max: 80 },
        TransportErrorKind::Protocol,
    );
}

#[test]
fn trailer_section_limit_boundaries() {
    let limits = Limits {
        max_header_bytes: 80,
        ..Limits::default()
    };
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n".to_vec();
    let line = |pad: usize| format!("X-T: {}\r\n", "t".repeat(pad));
    // Trailers of exactly 80 bytes, blank line included: accepted.
    let exact = [&head[..], line(32).as_bytes(), line(32).as_bytes(), b"\r\n"].concat();
    assert_eq!(exact.len() - head.len(), 80);
    let out = check_script(limits, &[(Method::GET, &exact)], false);
    assert_eq!(
        out.events,
        vec![head_te(), body(1, b"x"), Ev::End { id: 1 }]
    );
    assert!(out.idle && !out.must_close);
    // 81 bytes, the last one being the blank line's: refused.
    let over = [&head[..], line(32).as_bytes(), line(33).as_bytes(), b"\r\n"].concat();
    assert_eq!(over.len() - head.len(), 81);
    let expected = Http1Error::TrailersTooLarge { max: 80 };
    let out = check_script(limits, &[(Method::GET, &over)], false);
    assert_eq!(
        out.events,
        vec![head_te(), body(1, b"x"), failed(1, expected.clone())]
    );
    assert_failed(&out, expected.clone(), TransportErrorKind::Protocol);
    // A trailer line that never ends is refused once it is over the limit, without waiting
    // for its line end.
    let endless = [&head[..], "t".repeat(200).as_bytes()].concat();
    let out = check_script(limits, &[(Method::GET, &endless)], false);
    assert_failed(&out, expected, TransportErrorKind::Protocol);
}

fn head_te() -> Ev {
    head(1, 200, &[("transfer-encoding", "chunked")])
}

#[test]
fn a_response_cut_off_at_exactly_a_limit_is_cut_short_not_too_large() {
    // Exactly `max` bytes of a head, a chunk-size line or a trailer section arrived, then EOF:
    // no limit was exceeded by what arrived; the response was cut short (ConnectionReset). One
    // byte more, and the limit is exceeded (Protocol), EOF or not.
    let limits = Limits {
        max_header_bytes: 64,
        max_chunk_line_bytes: 16,
        ..Limits::default()
    };
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut head_cut = b"HTTP/1.1 200 OK\r\nX-Pad: ".to_vec();
    head_cut.resize(64, b'p');
    let mut line_cut = chunked.clone();
    line_cut.extend_from_slice(b"2;abcdefghijklmn");
    let mut trailers_cut = [&chunked[..], b"0\r\n"].concat();
    let trailers_start = trailers_cut.len();
    trailers_cut.extend_from_slice(format!("X-T: {}", "t".repeat(59)).as_bytes());
    assert_eq!(line_cut.len() - chunked.len(), 16);
    assert_eq!(trailers_cut.len() - trailers_start, 64);
    let cases = [
        (
            &head_cut[..],
            "before the end of the response head",
            Http1Error::HeadTooLarge { max: 64 },
        ),
        (
            &line_cut[..],
            "before the end of the response body",
            Http1Error::ChunkLineTooLong { max: 16 },
        ),
        (
            &trailers_cut[..],
            "before the end of the response body",
            Http1Error::TrailersTooLarge { max: 64 },
        ),
    ];
    for (cut, during, too_large) in cases {
        let what = String::from_utf8_lossy(cut);
        let out = check_script(limits, &[(Method::GET, cut)], true);
        assert_eq!(
            out.events.last(),
            Some(&failed(1, Http1Error::UnexpectedEof { during })),
            "{what}"
        );
        assert_failed(
            &out,
            Http1Error::UnexpectedEof { during },
            TransportErrorKind::ConnectionReset,
        );
        let one_more = [cut, b"x"].concat();
        for eof in [false, true] {
            let out = check_script(limits, &[(Method::GET, &one_more)], eof);
            assert_failed(&out, too_large.clone(), TransportErrorKind::Protocol);
        }
    }
}

#[test]
fn only_the_blank_line_ends_the_trailers() {
    // Trailer lines are read and dropped whatever they hold: a one-byte line, or one that
    // starts with CR, is not the blank line that ends the body (an empty line is, CRLF or LF).
    for trailers in [
        &b"x\nX-T: 1\r\n\r\n"[..],
        b"\rx\r\nX-T: 1\r\n\r\n",
        b"x\r\n\n",
    ] {
        let response = [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"[..],
            trailers,
        ]
        .concat();
        let out = check(Method::GET, &response, false);
        let what = String::from_utf8_lossy(trailers);
        assert_eq!(
            out.events,
            vec![head_te(), body(1, b"ok"), Ev::End { id: 1 }],
            "{what}"
        );
        // The whole response was consumed: nothing was left over as unsolicited bytes.
        assert!(out.idle && !out.must_close, "{what}");
    }
}

#[test]
fn premature_eof() {
    let mid_head: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Le";
    let mid_body: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello";
    let mid_chunked: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
    let before_last_chunk: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    let mid_trailers: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n";
    for (response, during, body_data) in [
        (&b""[..], "before the end of the response head", None),
        (b"\r\n", "before the end of the response head", None),
        (mid_head, "before the end of the response head", None),
        (
            mid_body,
            "before the end of the response body",
            Some(&b"hello"[..]),
        ),
        (
            mid_chunked,
            "before the end of the response body",
            Some(b"hel"),
        ),
        (
            before_last_chunk,
            "before the end of the response body",
            Some(b"hello"),
        ),
        (mid_trailers, "before the end of the response body", None),
    ] {
        let out = check(Method::GET, response, true);
        let error = Http1Error::UnexpectedEof { during };
        assert_failed(&out, error.clone(), TransportErrorKind::ConnectionReset);
        if let Some(data) = body_data {
            assert_eq!(out.events[1], body(1, data));
        }
        assert_eq!(out.events.last(), Some(&failed(1, error)));
    }
}

#[test]
fn eof_on_an_idle_connection_is_quiet() {
    let mut conn = Connection::new(Limits::default());
    conn.on_eof();
    assert!(conn.poll_input().is_none());
    assert!(conn.must_close() && !conn.is_idle());
    assert_eq!(
        conn.send(&transmit(1, &Method::GET), &mut Vec::new()),
        Err(Http1Error::ConnectionClosed)
    );
}

#[test]
fn limits_and_buffered_len_report_the_connection_state() {
    let limits = Limits {
        max_header_bytes: 100,
        max_headers: 7,
        max_chunk_line_bytes: 9,
    };
    assert_ne!(limits, Limits::default());
    assert_eq!(Connection::new(limits).limits(), limits);
    assert_eq!(Connection::pipelined(limits, 3).limits(), limits);
    let mut conn = Connection::new(limits);
    assert_eq!(conn.buffered_len(), 0);
    conn.send(&transmit(1, &Method::GET), &mut Vec::new())
        .unwrap();
    // Fed, not yet consumed: a head without its end stays buffered after polling.
    conn.feed(b"HTTP/1.1 200 OK\r\n");
    assert_eq!(conn.buffered_len(), 17);
    assert!(conn.poll_input().is_none());
    assert_eq!(conn.buffered_len(), 17);
    conn.feed(b"Content-Length: 5\r\n\r\nhel");
    assert_eq!(conn.buffered_len(), 17 + 24);
    // The head consumed, the body bytes not yet.
    assert!(matches!(conn.poll_input(), Some(Input::Head { .. })));
    assert_eq!(conn.buffered_len(), 3);
    assert!(matches!(conn.poll_input(), Some(Input::Body { .. })));
    assert_eq!(conn.buffered_len(), 0);
    conn.feed(b"lo");
    assert_eq!(conn.buffered_len(), 2);
    while conn.poll_input().is_some() {}
    assert_eq!(conn.buffered_len(), 0);
    assert!(conn.is_idle());
}

#[test]
fn transport_error_conversion() {
    let error: TransportError = Http1Error::UnexpectedEof {
        during: "before the end of the response head",
    }
    .into();
    assert_eq!(error.kind, TransportErrorKind::ConnectionReset);
    assert_eq!(
        error.message,
        "connection closed before the end of the response head"
    );
    assert_eq!(
        TransportError::from(Http1Error::MissingHost).kind,
        TransportErrorKind::Other
    );
}

// ------------------------------------------------------------------------------------------------
// Random splits
// ------------------------------------------------------------------------------------------------

/// The corpus for the property test: (method, response, eof).
fn corpus() -> Vec<(Method, Vec<u8>, bool)> {
    let mut big_chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for i in 0..20u8 {
        let data = vec![b'a' + i; usize::from(i) * 7 + 1];
        big_chunked.extend_from_slice(format!("{:x};i={i}\r\n", data.len()).as_bytes());
        big_chunked.extend_from_slice(&data);
        big_chunked.extend_from_slice(b"\r\n");
    }
    big_chunked.extend_from_slice(b"0\r\nT: x\r\n\r\n");
    vec![
        (
            Method::GET,
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world".to_vec(),
            false,
        ),
        (Method::GET, SSE_RESPONSE.to_vec(), false),
        (Method::GET, big_chunked, false),
        (
            Method::GET,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nA: b\r\n\r\n".to_vec(),
            false,
        ),
        (
            Method::GET,
            b"HTTP/1.1 200 OK\r\n\r\nuntil close".to_vec(),
            true,
        ),
        (
            Method::HEAD,
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n".to_vec(),
            false,
        ),
        (
            Method::GET,
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort".to_vec(),
            true,
        ),
        (
            Method::GET,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nq\r\n".to_vec(),
            false,
        ),
    ]
}

proptest! {
    #[test]
    fn random_splits_decode_identically(
        which in 0usize..8,
        cuts in proptest::collection::vec(0usize..600, 0..40),
    ) {
        let corpus = corpus();
        let (method, response, eof) = &corpus[which % corpus.len()];
        let mut cuts = cuts;
        cuts.sort_unstable();
        let exchanges = [(method.clone(), &response[..])];
        let whole = run_script(Limits::default(), &exchanges, &Split::Whole, *eof);
        let split = run_script(Limits::default(), &exchanges, &Split::Cuts(cuts), *eof);
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn random_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        cuts in proptest::collection::vec(0usize..200, 0..10),
        eof in any::<bool>(),
    ) {
        let mut prefixed = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        prefixed.extend_from_slice(&bytes);
        for response in [&bytes[..], &prefixed[..]] {
            let exchanges = [(Method::GET, response)];
            let whole = run_script(Limits::default(), &exchanges, &Split::Whole, eof);
            let mut cuts = cuts.clone();
            cuts.sort_unstable();
            let split = run_script(Limits::default(), &exchanges, &Split::Cuts(cuts), eof);
            prop_assert_eq!(split, whole);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Pipelining
// ------------------------------------------------------------------------------------------------

/// Everything observable after a pipelined run.
#[derive(Debug, Clone, PartialEq)]
struct Piped {
    events: Vec<Ev>,
    must_close: bool,
    idle: bool,
    can_send: bool,
    in_flight: usize,
    refused: bool,
}

/// Sends every request of `methods` (ids 1, 2, ...) on a connection of `depth` before any
/// response, reports `written` bytes written (all if `None`), feeds `wire` in pieces polling
/// after each, then EOF if `eof`.
fn run_pipe(
    depth: usize,
    methods: &[Method],
    wire: &[u8],
    split: &Split,
    eof: bool,
    written: Option<usize>,
) -> Piped {
    let mut conn = Connection::pipelined(Limits::default(), depth);
    let mut out = Vec::new();
    for (i, m) in methods.iter().enumerate() {
        conn.send(&transmit(i as u64 + 1, m), &mut out).unwrap();
    }
    assert_eq!(conn.in_flight(), methods.len());
    if let Some(n) = written {
        conn.on_written(n);
    }
    let mut events = Vec::new();
    for piece in pieces(wire, split) {
        conn.feed(piece);
        while let Some(input) = conn.poll_input() {
            push(&mut events, input);
        }
    }
    if eof {
        conn.on_eof();
        while let Some(input) = conn.poll_input() {
            push(&mut events, input);
        }
    }
    assert_eq!(conn.poll_input().map(|i| i.id()), None);
    Piped {
        events,
        must_close: conn.must_close(),
        idle: conn.is_idle(),
        can_send: conn.can_send(),
        in_flight: conn.in_flight(),
        refused: conn.pipelining_refused(),
    }
}

/// `run_pipe` fed whole, byte by byte and split at every point: all must agree.
fn check_pipe(methods: &[Method], wire: &[u8], eof: bool, written: Option<usize>) -> Piped {
    let depth = methods.len().max(1);
    let whole = run_pipe(depth, methods, wire, &Split::Whole, eof, written);
    let bytewise = run_pipe(depth, methods, wire, &Split::Bytewise, eof, written);
    assert_eq!(bytewise, whole, "byte by byte vs whole");
    for at in 1..wire.len() {
        let split = run_pipe(depth, methods, wire, &Split::At(at), eof, written);
        assert_eq!(split, whole, "split at {at} vs whole");
    }
    whole
}

const OK_5: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
const CHUNKED_6: &[u8] =
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n world\r\n0\r\n\r\n";
const NO_CONTENT: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";

fn not_processed(id: u64, reason: &'static str) -> Ev {
    failed(id, Http1Error::NotProcessed { reason })
}

const CLOSE_ANNOUNCED: &str = "an earlier response on the connection announced `Connection: close`";
const NOT_WRITTEN: &str = "the connection closed before the request was fully written";

#[test]
fn pipelined_responses_are_matched_in_order_whatever_the_pieces() {
    let wire = [OK_5, CHUNKED_6, NO_CONTENT].concat();
    let out = check_pipe(
        &[Method::GET, Method::POST, Method::GET],
        &wire,
        false,
        None,
    );
    assert_eq!(
        out.events,
        vec![
            head(1, 200, &[("content-length", "5")]),
            body(1, b"hello"),
            Ev::End { id: 1 },
            head(2, 200, &[("transfer-encoding", "chunked")]),
            body(2, b" world"),
            Ev::End { id: 2 },
            head(3, 204, &[]),
            Ev::End { id: 3 },
        ]
    );
    assert!(out.idle && out.can_send && !out.must_close && !out.refused);
    assert_eq!(out.in_flight, 0);
}

#[test]
fn pipelined_interim_responses_and_leading_empty_lines() {
    let wire = [
        &b"HTTP/1.1 100 Continue\r\n\r\n"[..],
        OK_5,
        b"\r\nHTTP/1.1 103 Early Hints\r\n\r\n",
        NO_CONTENT,
    ]
    .concat();
    let out = check_pipe(&[Method::POST, Method::POST], &wire, false, None);
    assert_eq!(
        out.events,
        vec![
            head(1, 200, &[("content-length", "5")]),
            body(1, b"hello"),
            Ev::End { id: 1 },
            head(2, 204, &[]),
            Ev::End { id: 2 },
        ]
    );
}

#[test]
fn head_in_the_middle_of_a_pipeline_has_no_body() {
    // The HEAD response announces a length but carries no body: the next bytes are the next
    // response's.
    let head_response: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    let wire = [OK_5, head_response, OK_5].concat();
    let out = check_pipe(
        &[Method::GET, Method::HEAD, Method::GET],
        &wire,
        false,
        None,
    );
    assert_eq!(
        out.events,
        vec![
            head(1, 200, &[("content-length", "5")]),
            body(1, b"hello"),
            Ev::End { id: 1 },
            head(2, 200, &[("content-length", "100")]),
            Ev::End { id: 2 },
            head(3, 200, &[("content-length", "5")]),
            body(3, b"hello"),
            Ev::End { id: 3 },
        ]
    );
    assert!(out.idle);
}

#[test]
fn close_announced_on_response_k_of_n_fails_the_rest_as_not_processed() {
    let closing: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n!";
    // The server's bytes after the closing response (a broken server) are not taken as the
    // next responses.
    let wire = [OK_5, closing, OK_5].concat();
    let methods = [Method::POST, Method::POST, Method::POST, Method::POST];
    let out = check_pipe(&methods, &wire, false, None);
    assert_eq!(
        out.events,
        vec![
            head(1, 200, &[("content-length", "5")]),
            body(1, b"hello"),
            Ev::End { id: 1 },
            head(2, 200, &[("connection", "close"), ("content-length", "1")]),
            body(2, b"!"),
            Ev::End { id: 2 },
            not_processed(3, CLOSE_ANNOUNCED),
            not_processed(4, CLOSE_ANNOUNCED),
        ]
    );
    let Ev::Failed { error, .. } = &out.events[6] else {
        unreachable!()
    };
    assert_eq!(error.kind, TransportErrorKind::Connect);
    assert!(out.must_close && !out.can_send && !out.idle && !out.refused);
    assert_eq!(out.in_flight, 0);
    // The same on the first response, and with the EOF that follows.
    let out = check_pipe(&methods[..2], closing, true, None);
    assert_eq!(out.events.len(), 4);
    assert_eq!(out.events[3], not_processed(2, CLOSE_ANNOUNCED));
}

#[test]
fn eof_mid_pipeline_leaves_the_outcomes_unknown_and_signals_refusal() {
    let methods = [Method::POST, Method::POST, Method::POST];
    // The server answered the first with keep-alive, then closed.
    let out = check_pipe(&methods, OK_5, true, None);
    let eof_head = Http1Error::UnexpectedEof {
        during: "before the end of the response head",
    };
    assert_eq!(
        out.events,
        vec![
            head(1, 200, &[("content-length", "5")]),
            body(1, b"hello"),
            Ev::End { id: 1 },
            failed(2, eof_head.clone()),
            failed(3, Http1Error::PipelineAborted),
        ]
    );
    assert_eq!(
        eof_head.transport_kind(),
        TransportErrorKind::ConnectionReset
    );
    assert_eq!(
        Http1Error::PipelineAborted.transport_kind(),
        TransportErrorKind::ConnectionReset
    );
    assert!(out.refused && out.must_close && !out.can_send);
    assert_eq!(out.in_flight, 0);

    // Cut in the middle of the second response's body: it was processed, the third unknown.
    let wire = [
        OK_5,
        &b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhal"[..],
    ]
    .concat();
    let out = check_pipe(&methods, &wire, true, None);
    assert_eq!(
        out.events[3..],
        [
            head(2, 200, &[("content-length", "9")]),
            body(2, b"hal"),
            failed(
                2,
                Http1Error::UnexpectedEof {
                    during: "before the end of the response body"
                }
            ),
            failed(3, Http1Error::PipelineAborted),
        ]
    );
    assert!(out.refused);

    // Closed before any response: nothing says the server refuses pipelining.
    let out = check_pipe(&methods, b"", true, None);
    assert_eq!(
        out.events,
        vec![
            failed(1, eof_head),
            failed(2, Http1Error::PipelineAborted),
            failed(3, Http1Error::PipelineAborted),
        ]
    );
    assert!(!out.refused);
}

#[test]
fn requests_not_fully_written_are_not_processed() {
    let mut conn = Connection::pipelined(Limits::default(), 3);
    let mut out = Vec::new();
    let mut ends = Vec::new();
    for id in 1..=3 {
        conn.send(&transmit(id, &Method::POST), &mut out).unwrap();
        ends.push(out.len());
    }
    let methods = [Method::POST, Method::POST, Method::POST];
    let eof_head = failed(
        1,
        Http1Error::UnexpectedEof {
            during: "before the end of the response head",
        },
    );
    // The first written whole, the second in part.
    let out = check_pipe(&methods, b"", true, Some(ends[0] + 3));
    assert_eq!(
        out.events,
        vec![
            eof_head,
            not_processed(2, NOT_WRITTEN),
            not_processed(3, NOT_WRITTEN)
        ]
    );
    // The first in part: known not processed too (no response byte arrived).
    let out = check_pipe(&methods, b"", true, Some(ends[0] - 1));
    assert_eq!(out.events[0], not_processed(1, NOT_WRITTEN));
    // ... but not if its response had started: the server saw it.
    let out = check_pipe(&methods, b"HTTP/1.1 413", true, Some(ends[0] - 1));
    assert_eq!(
        out.events[0],
        failed(
            1,
            Http1Error::UnexpectedEof {
                during: "before the end of the response head",
            }
        )
    );
    // Everything written: outcomes unknown again.
    let out = check_pipe(&methods, OK_5, true, Some(ends[2]));
    assert_eq!(
        out.events[3..],
        [
            failed(
                2,
                Http1Error::UnexpectedEof {
                    during: "before the end of the response head",
                }
            ),
            failed(3, Http1Error::PipelineAborted)
        ]
    );
}

#[test]
fn a_decoding_error_mid_pipeline_aborts_the_rest() {
    let wire = [OK_5, b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"].concat();
    let out = check_pipe(&[Method::GET, Method::GET, Method::GET], &wire, false, None);
    assert_eq!(
        out.events[3..],
        [
            failed(2, Http1Error::InvalidContentLength),
            failed(3, Http1Error::PipelineAborted),
        ]
    );
    assert!(!out.refused && out.must_close);
}

#[test]
fn a_body_until_close_mid_pipeline_ends_the_connection() {
    let wire = b"HTTP/1.1 200 OK\r\n\r\nuntil close";
    let out = check_pipe(&[Method::GET, Method::GET], wire, true, None);
    assert_eq!(
        out.events,
        vec![
            head(1, 200, &[]),
            body(1, b"until close"),
            Ev::End { id: 1 },
            failed(2, Http1Error::PipelineAborted),
        ]
    );
}

#[test]
fn unsolicited_bytes_after_the_last_pipelined_response_poison_the_connection() {
    let wire = [OK_5, OK_5, b"HTTP/1.1 408 Request Timeout\r\n\r\n"].concat();
    let out = run_pipe(
        2,
        &[Method::GET, Method::GET],
        &wire,
        &Split::Whole,
        false,
        None,
    );
    assert_eq!(out.events.len(), 6);
    assert!(out.must_close && !out.can_send && !out.idle);
}

#[test]
fn pipeline_depth_and_can_send() {
    let mut conn = Connection::pipelined(Limits::default(), 2);
    assert_eq!(conn.pipeline_depth(), 2);
    assert!(conn.can_send() && conn.is_idle() && conn.in_flight() == 0);
    let mut out = Vec::new();
    conn.send(&transmit(1, &Method::POST), &mut out).unwrap();
    assert!(conn.can_send() && !conn.is_idle());
    conn.send(&transmit(2, &Method::POST), &mut out).unwrap();
    assert!(!conn.can_send());
    assert_eq!(conn.in_flight(), 2);
    let len = out.len();
    assert_eq!(
        conn.send(&transmit(3, &Method::POST), &mut out),
        Err(Http1Error::PipelineFull { depth: 2 })
    );
    assert_eq!(out.len(), len, "a refused send writes nothing");
    assert_eq!(
        conn.outstanding().collect::<Vec<_>>(),
        [RequestId(1), RequestId(2)]
    );
    assert_eq!(conn.current(), Some(RequestId(1)));
    // Half of the first response: still full; all of it: room for one more.
    conn.feed(&OK_5[..10]);
    while conn.poll_input().is_some() {}
    assert!(!conn.can_send());
    conn.feed(&OK_5[10..]);
    let mut ids = Vec::new();
    while let Some(input) = conn.poll_input() {
        ids.push(input.id());
    }
    assert_eq!(ids, [RequestId(1), RequestId(1), RequestId(1)]);
    assert!(conn.can_send());
    assert_eq!(conn.current(), Some(RequestId(2)));
    conn.send(&transmit(3, &Method::GET), &mut out).unwrap();
    // Sent between pieces of responses: the responses still match in order.
    conn.feed(&[NO_CONTENT, OK_5].concat());
    let mut events = Vec::new();
    while let Some(input) = conn.poll_input() {
        push(&mut events, input);
    }
    assert_eq!(
        events,
        vec![
            head(2, 204, &[]),
            Ev::End { id: 2 },
            head(3, 200, &[("content-length", "5")]),
            body(3, b"hello"),
            Ev::End { id: 3 },
        ]
    );
    assert!(conn.is_idle() && conn.in_flight() == 0);

    // Depth is clamped; depth 1 is the one-at-a-time connection.
    assert_eq!(
        Connection::pipelined(Limits::default(), 0).pipeline_depth(),
        1
    );
    assert_eq!(
        Connection::pipelined(Limits::default(), 1000).pipeline_depth(),
        Connection::MAX_PIPELINE_DEPTH
    );
    let mut one = Connection::pipelined(Limits::default(), 1);
    one.send(&transmit(1, &Method::GET), &mut Vec::new())
        .unwrap();
    assert!(!one.can_send());
    assert_eq!(
        one.send(&transmit(2, &Method::GET), &mut Vec::new()),
        Err(Http1Error::ExchangeInProgress)
    );
    let fresh = Connection::new(Limits::default());
    assert_eq!(fresh.pipeline_depth(), 1);
    assert!(fresh.can_send());
}

#[test]
fn a_request_asking_for_close_is_the_last_one_pipelined() {
    let mut conn = Connection::pipelined(Limits::default(), 4);
    let mut t = transmit(1, &Method::POST);
    t.request
        .headers_mut()
        .insert("connection", http::HeaderValue::from_static("close"));
    conn.send(&t, &mut Vec::new()).unwrap();
    assert!(!conn.can_send());
    assert_eq!(
        conn.send(&transmit(2, &Method::POST), &mut Vec::new()),
        Err(Http1Error::ConnectionClosed)
    );
    conn.feed(OK_5);
    let mut n = 0;
    while conn.poll_input().is_some() {
        n += 1;
    }
    assert_eq!(n, 3);
    assert!(conn.must_close() && conn.in_flight() == 0);
}

#[test]
fn eof_while_a_request_waits_on_a_one_at_a_time_connection_is_no_refusal() {
    // Two exchanges one after the other, then the server closes while the third waits: a
    // keep-alive connection closed by the server, not a refusal to pipeline.
    let mut conn = Connection::pipelined(Limits::default(), 4);
    for id in 1..=2 {
        conn.send(&transmit(id, &Method::GET), &mut Vec::new())
            .unwrap();
        conn.feed(OK_5);
        while conn.poll_input().is_some() {}
    }
    conn.send(&transmit(3, &Method::GET), &mut Vec::new())
        .unwrap();
    conn.on_eof();
    assert!(matches!(conn.poll_input(), Some(Input::Failed { .. })));
    assert!(!conn.pipelining_refused());
}

#[test]
fn in_flight_counts_the_failures_still_to_be_polled() {
    // The connection ended with three requests outstanding: each stays in flight until its
    // `Failed` was polled.
    let mut conn = Connection::pipelined(Limits::default(), 3);
    for id in 1..=3 {
        conn.send(&transmit(id, &Method::POST), &mut Vec::new())
            .unwrap();
    }
    conn.on_eof();
    for (polled, left) in [(1, 2), (2, 1), (3, 0)] {
        assert!(
            matches!(conn.poll_input(), Some(Input::Failed { id, .. }) if id == RequestId(polled))
        );
        assert_eq!(conn.in_flight(), left);
        assert_eq!(conn.outstanding().count(), left);
        assert_eq!(
            conn.outstanding().next(),
            (left > 0).then_some(RequestId(polled + 1))
        );
        assert!(!conn.can_send());
    }
    assert!(conn.poll_input().is_none());
}

#[test]
fn refusal_when_the_cut_off_request_was_pipelined_or_has_one_pipelined_behind_it() {
    // Two pipelined requests; the server answers the first with keep-alive and closes: the
    // second (pipelined, nothing behind it) fails, and the server seems not to pipeline.
    let out = check_pipe(&[Method::GET, Method::GET], OK_5, true, None);
    assert_eq!(
        out.events[3],
        failed(
            2,
            Http1Error::UnexpectedEof {
                during: "before the end of the response head",
            }
        )
    );
    assert!(out.refused);
    // The first exchange alone, then the second sent on the idle connection and a third
    // pipelined behind it: the second (not itself pipelined) is cut off with the third
    // waiting behind it.
    let mut conn = Connection::pipelined(Limits::default(), 4);
    conn.send(&transmit(1, &Method::GET), &mut Vec::new())
        .unwrap();
    conn.feed(OK_5);
    while conn.poll_input().is_some() {}
    for id in 2..=3 {
        conn.send(&transmit(id, &Method::GET), &mut Vec::new())
            .unwrap();
    }
    conn.on_eof();
    assert!(matches!(
        conn.poll_input(),
        Some(Input::Failed {
            id: RequestId(2),
            ..
        })
    ));
    assert!(conn.pipelining_refused());
}

/// Feeds `wire` whole and EOF before polling anything (`run_pipe` polls in between).
fn run_pipe_eof_first(methods: &[Method], wire: &[u8]) -> Piped {
    let mut conn = Connection::pipelined(Limits::default(), methods.len());
    for (i, m) in methods.iter().enumerate() {
        conn.send(&transmit(i as u64 + 1, m), &mut Vec::new())
            .unwrap();
    }
    conn.feed(wire);
    conn.on_eof();
    let mut events = Vec::new();
    while let Some(input) = conn.poll_input() {
        push(&mut events, input);
    }
    Piped {
        events,
        must_close: conn.must_close(),
        idle: conn.is_idle(),
        can_send: conn.can_send(),
        in_flight: conn.in_flight(),
        refused: conn.pipelining_refused(),
    }
}

#[test]
fn the_outcome_does_not_depend_on_polling_before_eof() {
    let closing: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n!";
    let cut: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhal";
    let methods = [Method::POST, Method::POST, Method::POST];
    for wire in [
        OK_5.to_vec(),
        [OK_5, OK_5].concat(),
        [OK_5, OK_5, OK_5].concat(),
        [OK_5, closing].concat(),
        [OK_5, cut].concat(),
        b"HTTP/1.1 200 OK\r\n\r\nuntil close".to_vec(),
        Vec::new(),
    ] {
        let polled = run_pipe(3, &methods, &wire, &Split::Whole, true, None);
        let eof_first = run_pipe_eof_first(&methods, &wire);
        assert_eq!(eof_first, polled, "{}", String::from_utf8_lossy(&wire));
    }
    // Answered with keep-alive, then closed with two pipelined requests left: a refusal,
    // whenever the EOF was seen.
    let out = run_pipe_eof_first(&methods, OK_5);
    assert!(out.refused);
    assert_eq!(out.events.len(), 5);
}

proptest! {
    #[test]
    fn random_pipelines_decode_identically_whatever_the_splits(
        picks in proptest::collection::vec(0usize..5, 1..6),
        cuts in proptest::collection::vec(0usize..400, 0..30),
        eof in any::<bool>(),
        cut_short in 0usize..30,
    ) {
        let menu: [(Method, &[u8]); 5] = [
            (Method::GET, OK_5),
            (Method::POST, CHUNKED_6),
            (Method::GET, NO_CONTENT),
            (Method::HEAD, b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n"),
            (Method::GET, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nx"),
        ];
        let methods: Vec<Method> = picks.iter().map(|&i| menu[i].0.clone()).collect();
        let mut wire: Vec<u8> = picks.iter().flat_map(|&i| menu[i].1.iter().copied()).collect();
        if eof {
            wire.truncate(wire.len().saturating_sub(cut_short));
        }
        let mut cuts = cuts;
        cuts.sort_unstable();
        let whole = run_pipe(methods.len(), &methods, &wire, &Split::Whole, eof, None);
        let split = run_pipe(methods.len(), &methods, &wire, &Split::Cuts(cuts), eof, None);
        prop_assert_eq!(&split, &whole);
        // Every request ends exactly once, in order.
        let ends: Vec<u64> = whole.events.iter().filter_map(|e| match e {
            Ev::End { id } | Ev::Failed { id, .. } => Some(*id),
            _ => None,
        }).collect();
        if eof || whole.must_close {
            prop_assert_eq!(ends, (1..=methods.len() as u64).collect::<Vec<_>>());
        } else {
            prop_assert_eq!(ends.len(), methods.len());
        }
    }
}
