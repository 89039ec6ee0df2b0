//! Encoding a request into HTTP/1.1 bytes.

use bytes::Bytes;
use http::{header, Method};

use super::Http1Error;

/// Appends the HTTP/1.1 encoding of `request` to `out`: request line, headers, body.
///
/// - The request line uses the origin-form target (path and query of the URI; `/` when the
///   path is empty) and always says `HTTP/1.1` (`request.version()` is ignored).
/// - `Host` is written first, from the URI authority (host and port, without user info),
///   unless the request has its own `Host` header. A request with neither fails with
///   [`Http1Error::MissingHost`].
/// - Every header of the request follows, in order (names as the `http` crate stores them,
///   lowercase). A value containing CR, LF or NUL fails with
///   [`Http1Error::InvalidHeaderValue`].
/// - `Content-Length` is added for a non-empty body, and for `POST`, `PUT` and `PATCH`
///   whatever the body (`0` when empty), unless the request has one, which must then equal the
///   body length ([`Http1Error::ContentLengthMismatch`]). Requests with a `Transfer-Encoding`
///   header are refused ([`Http1Error::RequestTransferEncoding`]); `CONNECT` too
///   ([`Http1Error::UnsupportedMethod`]).
/// - Nothing about the connection is added: HTTP/1.1 connections are persistent by default.
///   To ask for the connection to be closed after the response, give the request a
///   `Connection: close` header.
///
/// On error, `out` is left as it was.
///
/// ```
/// use bytes::Bytes;
/// # fn main() -> Result<(), ds_proto::http1::Http1Error> {
/// let request = http::Request::post("http://example.com:8080/v1/stream/a?x=1")
///     .header("content-type", "text/plain")
///     .body(Bytes::from_static(b"hello"))
///     .unwrap();
/// let mut out = Vec::new();
/// ds_proto::http1::encode_request(&request, &mut out)?;
/// assert_eq!(
///     out,
///     b"POST /v1/stream/a?x=1 HTTP/1.1\r\nhost: example.com:8080\r\n\
///       content-type: text/plain\r\ncontent-length: 5\r\n\r\nhello"
/// );
/// # Ok(())
/// # }
/// ```
pub fn encode_request(request: &http::Request<Bytes>, out: &mut Vec<u8>) -> Result<(), Http1Error> {
    encode_request_head(request, out)?;
    out.extend_from_slice(request.body());
    Ok(())
}

/// Appends the HTTP/1.1 encoding of `request` without its body: what [`encode_request`]
/// writes before the body, with the same checks (`Content-Length` counts the body). Write
/// `request.body()` right after it: a large body then goes to the socket as it is, without a
/// copy into `out`.
///
/// On error, `out` is left as it was.
pub fn encode_request_head(
    request: &http::Request<Bytes>,
    out: &mut Vec<u8>,
) -> Result<(), Http1Error> {
    let start = out.len();
    let result = encode_head(request, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_head(request: &http::Request<Bytes>, out: &mut Vec<u8>) -> Result<(), Http1Error> {
    let method = request.method();
    if method == Method::CONNECT {
        return Err(Http1Error::UnsupportedMethod {
            method: method.to_string(),
        });
    }
    let uri = request.uri();
    let headers = request.headers();
    let body = request.body();

    // Request line.
    let path = uri.path();
    let path = if path.is_empty() { "/" } else { path };
    let query = uri.query();
    let target_ok = |s: &str| s.bytes().all(|b| b > b' ' && b != 0x7f);
    if !target_ok(path) || !query.is_none_or(target_ok) {
        return Err(Http1Error::InvalidRequestTarget);
    }
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    if let Some(query) = query {
        out.push(b'?');
        out.extend_from_slice(query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");

    // Host.
    if !headers.contains_key(header::HOST) {
        let authority = uri.authority().ok_or(Http1Error::MissingHost)?;
        let host = authority.host();
        if host.is_empty() || !target_ok(host) {
            return Err(Http1Error::MissingHost);
        }
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(host.as_bytes());
        if let Some(port) = authority.port() {
            out.push(b':');
            out.extend_from_slice(port.as_str().as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }

    // The request's own headers.
    let body_len = body.len() as u64;
    let mut has_length = false;
    for (name, value) in headers {
        if name == header::TRANSFER_ENCODING {
            return Err(Http1Error::RequestTransferEncoding);
        }
        let bytes = value.as_bytes();
        check_value(name.as_str(), bytes)?;
        if name == header::CONTENT_LENGTH {
            if parse_decimal(bytes) != Some(body_len) {
                return Err(Http1Error::ContentLengthMismatch { body_len });
            }
            has_length = true;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }

    // Framing.
    let wants_length = !body.is_empty()
        || method == Method::POST
        || method == Method::PUT
        || method == Method::PATCH;
    if wants_length && !has_length {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(body_len.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Refuses a header value that could end the header line early (CR, LF) or that servers
/// treat inconsistently (NUL). `http::HeaderValue` already rejects them when built with its
/// safe constructors; this guards the bytes actually written.
pub(crate) fn check_value(name: &str, value: &[u8]) -> Result<(), Http1Error> {
    if value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(Http1Error::InvalidHeaderValue {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Parses `1*DIGIT` (surrounding spaces and tabs allowed) into a `u64`; `None` on anything else
/// or on overflow.
pub(crate) fn parse_decimal(bytes: &[u8]) -> Option<u64> {
    let bytes = trim_ows(bytes);
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Strips optional whitespace (spaces and tabs) from both ends.
pub(crate) fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}
