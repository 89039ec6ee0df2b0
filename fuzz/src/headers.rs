//! `headers`: arbitrary header maps through every header interpreter and every response
//! interpreter of `ds_proto::ops`.
//!
//! Input format: a response head as text, so that real heads make seeds. The first line holds
//! the status (its first run of three digits; 200 without one, e.g. `HTTP/1.1 409 Conflict`);
//! each following line up to a blank one is `name:value` (one space after the colon is
//! dropped; lines whose name or value `http` refuses are skipped, so header values may hold
//! any byte `http` accepts, obs-text included); whatever follows the blank line is the body.
//! Lines end with LF or CRLF.

use crate::util::parts;
use bytes::Bytes;
use ds_proto::error::{ConflictKind, Error, ErrorKind, Operation};
use ds_proto::headers::{self, MAX_RETRY_AFTER, MAX_SAFE_INTEGER};
use ds_proto::offset::Offset;
use ds_proto::ops::{self, LiveMode, ReadOptions, RequestExtras};
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

const URL: &str = "http://h:8080/v1/stream/s?token=secret#frag";
const STRIPPED: &str = "http://h:8080/v1/stream/s";

/// The first line, the headers and the body of a textual head: lines end with LF or CRLF;
/// header lines are `name:value` (one space after the colon dropped; lines `http` refuses are
/// skipped) up to a blank line; the body is the rest.
pub fn parse_lines(data: &[u8]) -> (Vec<u8>, Vec<(HeaderName, HeaderValue)>, &[u8]) {
    let mut rest = data;
    let next_line = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        if rest.is_empty() {
            return None;
        }
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let line = &rest[..end];
        *rest = &rest[(end + 1).min(rest.len())..];
        Some(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
    };
    let first = next_line(&mut rest).unwrap_or_default();
    let mut hs = Vec::new();
    while let Some(line) = next_line(&mut rest) {
        if line.is_empty() {
            break;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(c) => (&line[..c], &line[c + 1..]),
            None => (&line[..], &b""[..]),
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            hs.push((n, v));
        }
    }
    (first, hs, rest)
}

/// Status, headers and body of a textual response head.
pub fn parse_head(data: &[u8]) -> (u16, Vec<(HeaderName, HeaderValue)>, &[u8]) {
    let (first, hs, body) = parse_lines(data);
    let status = first
        .windows(3)
        .find(|w| w.iter().all(u8::is_ascii_digit))
        .map(|w| w.iter().fold(0u16, |a, d| a * 10 + u16::from(d - b'0')))
        .filter(|s| (100..=999).contains(s))
        .unwrap_or(200);
    (status, hs, body)
}

/// The value the interpreters read: the first one, trimmed, if visible ASCII.
fn first_str<'a>(h: &'a HeaderMap, name: &HeaderName) -> Option<Result<&'a str, ()>> {
    h.get(name)
        .map(|v| v.to_str().map(str::trim).map_err(|_| ()))
}

fn check_error(e: &Error, op: Operation) {
    assert_eq!(e.operation, op);
    assert_eq!(e.url, STRIPPED, "errors carry the URL without query");
    let _ = e.to_string();
    let _ = e.is_retryable();
    if let Some(d) = e.kind.retry_after() {
        assert!(d <= MAX_RETRY_AFTER);
    }
}

/// Checks the typed error of a non-success status against the generic status rules.
fn check_status_error(e: &Error, op: Operation, status: u16, h: &HeaderMap) {
    check_error(e, op);
    let kind = &e.kind;
    match status {
        404 => assert_eq!(*kind, ErrorKind::NotFound),
        410 => assert_eq!(*kind, ErrorKind::Gone),
        413 => assert_eq!(*kind, ErrorKind::PayloadTooLarge),
        429 => assert!(matches!(kind, ErrorKind::RateLimited { .. })),
        400 => assert!(
            matches!(kind, ErrorKind::BadRequest { message } if message.len() <= 4 * ops::ERROR_BODY_PREFIX)
        ),
        403 => assert!(
            matches!(
                kind,
                ErrorKind::Fenced { server_epoch } if *server_epoch <= MAX_SAFE_INTEGER
            ) || matches!(kind, ErrorKind::UnexpectedStatus { status: 403, .. })
        ),
        409 => match kind {
            ErrorKind::Conflict(ConflictKind::Closed { .. }) => {
                assert!(headers::flag(h, &headers::STREAM_CLOSED))
            }
            ErrorKind::SequenceGap { expected, received } => {
                assert!(*expected <= MAX_SAFE_INTEGER && *received <= MAX_SAFE_INTEGER)
            }
            ErrorKind::Conflict(_) => {}
            other => panic!("409 gave {other:?}"),
        },
        _ => assert!(
            matches!(kind, ErrorKind::UnexpectedStatus { status: s, body_prefix, .. } if *s == status && body_prefix.len() <= 4 * ops::ERROR_BODY_PREFIX),
            "{status} gave {kind:?}"
        ),
    }
    assert_eq!(
        kind.is_retryable(),
        status == 429 || status >= 500,
        "retryable({status}) for {kind:?}"
    );
}

/// A malformed-response error (only on success statuses).
fn check_invalid(e: &Error, op: Operation) {
    check_error(e, op);
    assert!(
        matches!(e.kind, ErrorKind::InvalidResponse(_)),
        "success status gave {e:?}"
    );
}

/// The `headers` target: see the module documentation.
pub fn headers(data: &[u8]) {
    let (status, pairs, body) = parse_head(data);
    let p = parts(status, &pairs);
    let h = &p.headers;

    // Header interpreters.
    match (
        headers::next_offset(h),
        first_str(h, &headers::STREAM_NEXT_OFFSET),
    ) {
        (Ok(None), None) => {}
        (Ok(Some(o)), Some(Ok(s))) => {
            assert_eq!(o.as_str(), s);
            assert_eq!(Offset::parse(s).as_ref(), Ok(&o));
            // An offset the server gave can always be sent back.
            for live in [LiveMode::Off, LiveMode::LongPoll, LiveMode::Sse] {
                let opts = ReadOptions {
                    live,
                    cursor: headers::cursor(h),
                    ..ReadOptions::from(o.clone())
                };
                let req = ops::read_request(URL, &opts, &RequestExtras::new())
                    .expect("a read from a server offset can be built");
                let q = req.uri().query().unwrap_or("");
                assert!(q.contains("offset="), "{q}");
            }
        }
        (Err(_), Some(Err(()))) => {}
        (Err(_), Some(Ok(s))) => assert!(Offset::parse(s).is_err()),
        (r, v) => panic!("next_offset {r:?} for {v:?}"),
    }
    if let Some(c) = headers::cursor(h) {
        assert!(!c.is_empty() && c.trim() == c);
    }
    for name in [&headers::STREAM_UP_TO_DATE, &headers::STREAM_CLOSED] {
        let expected = matches!(first_str(h, name), Some(Ok(s)) if s.eq_ignore_ascii_case("true"));
        assert_eq!(headers::flag(h, name), expected);
    }
    for name in [
        &headers::PRODUCER_EPOCH,
        &headers::PRODUCER_SEQ,
        &headers::PRODUCER_EXPECTED_SEQ,
        &headers::PRODUCER_RECEIVED_SEQ,
    ] {
        match headers::producer_number(h, name) {
            Ok(Some(n)) => {
                assert!(n <= MAX_SAFE_INTEGER);
                let s = first_str(h, name).expect("present").expect("ascii");
                assert_eq!(s.parse::<u64>().ok(), Some(n));
            }
            Ok(None) => assert!(h.get(name).is_none()),
            Err(m) => assert!(!m.is_empty()),
        }
    }
    if let Some(d) = headers::retry_after(h) {
        assert!(d <= MAX_RETRY_AFTER, "{d:?}");
    }
    match headers::ttl(h) {
        Ok(Some(n)) => {
            let s = first_str(h, &headers::STREAM_TTL)
                .expect("present")
                .expect("ascii");
            assert_eq!(n.to_string(), s, "a TTL is canonical decimal");
        }
        Ok(None) => assert!(h.get(&headers::STREAM_TTL).is_none()),
        Err(_) => {}
    }
    if let Ok(Some(s)) = headers::expires_at(h) {
        assert!(headers::validate_rfc3339(&s).is_ok());
    }
    if let Some(ct) = headers::content_type(h) {
        if headers::is_json_content_type(&ct) {
            assert!(headers::is_text_content_type(&ct));
        }
    }
    // The parsers on every value, and on the body as text.
    let mut texts: Vec<&[u8]> = pairs.iter().map(|(_, v)| v.as_bytes()).collect();
    texts.push(body);
    for t in texts {
        let s = String::from_utf8_lossy(t);
        if let Ok(n) = headers::parse_u53(&s) {
            assert!(n <= MAX_SAFE_INTEGER);
        }
        if let Ok(n) = headers::validate_ttl(&s) {
            assert_eq!(n.to_string(), s);
        }
        let _ = headers::validate_rfc3339(&s);
        let _ = headers::is_json_content_type(&s);
        let _ = headers::is_text_content_type(&s);
        if let Ok(o) = Offset::parse(s.as_ref()) {
            assert!(!o.as_str().contains(['/', '?', '&', '=', ',', ' ']));
        }
    }

    // Response interpreters.
    let body_bytes = Bytes::copy_from_slice(body);
    for op in [
        Operation::Create,
        Operation::Append,
        Operation::Close,
        Operation::Head,
        Operation::Delete,
        Operation::Read,
    ] {
        let e = ops::error_from_response(op, URL, &p, body);
        if !(200..300).contains(&status) {
            check_status_error(&e, op, status, h);
        } else {
            check_error(&e, op);
        }
    }
    let requested = match first_str(h, &HeaderName::from_static("x-requested")) {
        Some(Ok(s)) => Offset::parse(s).unwrap_or_else(|_| Offset::beginning()),
        _ => Offset::beginning(),
    };
    match ops::read_response(URL, &requested, &p, body_bytes.clone()) {
        Ok(r) => {
            assert!(matches!(status, 200 | 204 | 304));
            assert_eq!(r.data.is_empty(), status != 200 || body.is_empty());
            assert_eq!(r.not_modified, status == 304);
            assert_eq!(r.timed_out, status == 204);
            if r.closed {
                assert!(r.up_to_date);
            }
            let _ = r.is_json();
            if let Ok(items) = r.json_items() {
                for item in items {
                    assert!(ds_proto::json::validate(&item).is_ok());
                }
            }
        }
        Err(e) if matches!(status, 200 | 204 | 304) => check_invalid(&e, Operation::Read),
        Err(e) => check_status_error(&e, Operation::Read, status, h),
    }
    for idempotent in [false, true] {
        match ops::append_response(URL, idempotent, &p, body) {
            Ok(a) => {
                assert!(matches!(status, 200 | 201 | 204));
                assert!(a.producer_epoch.is_none_or(|n| n <= MAX_SAFE_INTEGER));
                assert!(a.producer_seq.is_none_or(|n| n <= MAX_SAFE_INTEGER));
            }
            Err(e) if matches!(status, 200 | 201 | 204) => check_invalid(&e, Operation::Append),
            Err(e) => check_status_error(&e, Operation::Append, status, h),
        }
    }
    match ops::close_response(URL, &p, body) {
        Ok(_) => assert!(
            matches!(status, 200 | 204)
                || (status == 409 && headers::flag(h, &headers::STREAM_CLOSED))
        ),
        Err(e) if matches!(status, 200 | 204) => check_invalid(&e, Operation::Close),
        Err(e) => check_status_error(&e, Operation::Close, status, h),
    }
    match ops::head_response(URL, &p, body) {
        Ok(info) => {
            assert_eq!(status, 200);
            if let Some(at) = &info.expires_at {
                assert!(headers::validate_rfc3339(at).is_ok());
            }
        }
        Err(e) if status == 200 => check_invalid(&e, Operation::Head),
        Err(e) => check_status_error(&e, Operation::Head, status, h),
    }
    match ops::create_response(URL, &p, body) {
        Ok(c) => {
            assert!(matches!(status, 200 | 201 | 204));
            assert_eq!(c.created, status == 201);
        }
        Err(e) if matches!(status, 200 | 201 | 204) => check_invalid(&e, Operation::Create),
        Err(e) => check_status_error(&e, Operation::Create, status, h),
    }
    match ops::delete_response(URL, &p, body) {
        Ok(()) => assert!(matches!(status, 200 | 202 | 204)),
        Err(e) => check_status_error(&e, Operation::Delete, status, h),
    }
}
