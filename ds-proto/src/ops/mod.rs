//! One-shot operations: for each of create, append, close, head, delete and one read, a pure
//! builder of the `http::Request` and a pure interpreter of the response (DESIGN.md section 2).
//!
//! Builders check the caller's input and refuse bad input with [`ErrorKind::InvalidInput`]
//! before anything is sent. Interpreters take the response head and the whole (bounded) body
//! and return a typed result or a typed [`Error`]. Drivers add transport and retries
//! ([`crate::retry`]) and nothing else.

mod append;
mod create;
mod meta;
mod oneshot;
mod read;

pub(crate) use append::build_append;
pub use append::{
    append_request, append_response, close_request, close_response, AppendOptions, AppendOutcome,
    Appended, Closed, ProducerHeaders,
};
pub use create::{create_request, create_response, CreateOptions, Created, ForkFrom};
pub use meta::{delete_request, delete_response, head_request, head_response, StreamInfo};
pub use oneshot::{Append, Close, Create, Delete, Head, OneShot, Read};
pub use read::{read_request, read_response, LiveMode, ReadOptions, ReadResult};

use crate::error::{ConflictKind, Error, ErrorKind, Operation};
use crate::error::{InputReason, ResponseReason};
use crate::headers;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};

/// How many bytes of an error body are kept in errors.
pub const ERROR_BODY_PREFIX: usize = 512;

/// Headers and query parameters added to every request of an operation: the client's defaults
/// and what its per-request providers return (rotating auth tokens, tenant parameters).
#[derive(Clone, Default, PartialEq)]
pub struct RequestExtras {
    /// Extra headers (values marked sensitive are redacted in `Debug`).
    pub headers: HeaderMap,
    /// Extra query parameters (merged with the protocol's, all sorted by key).
    pub params: Vec<(String, String)>,
}

impl std::fmt::Debug for RequestExtras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret_header(k) || v.is_sensitive() {
                    "<redacted>"
                } else {
                    v.to_str().unwrap_or("<binary>")
                };
                (k.as_str(), shown)
            })
            .collect();
        // Parameter values may be credentials (`?token=...`): only the keys are shown.
        let params: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, _)| (k.as_str(), "<redacted>"))
            .collect();
        f.debug_struct("RequestExtras")
            .field("headers", &headers)
            .field("params", &params)
            .finish()
    }
}

/// Marks the values of credential headers in `headers` as sensitive: the protocol's
/// ([`is_secret_header`]) and those named in `also`.
pub fn mark_sensitive(headers: &mut HeaderMap, also: &[HeaderName]) {
    for (name, value) in headers.iter_mut() {
        if is_secret_header(name) || also.contains(name) {
            value.set_sensitive(true);
        }
    }
}

/// Whether a header carries credentials (`Authorization`, `Cookie`, `Proxy-Authorization`).
pub fn is_secret_header(name: &HeaderName) -> bool {
    name == http::header::AUTHORIZATION
        || name == http::header::COOKIE
        || name == http::header::PROXY_AUTHORIZATION
}

impl RequestExtras {
    /// No extra headers or parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a header, replacing one of the same name.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Adds a query parameter.
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((key.into(), value.into()));
        self
    }

    /// Layers `from` on top: its headers replace same-named ones (several values of one name
    /// are kept together), its parameters replace those with the same key. This is how a
    /// client's defaults, a provider's per-attempt values and a call's options combine.
    pub fn merge(&mut self, from: RequestExtras) {
        let mut last: Option<HeaderName> = None;
        for (name, value) in from.headers {
            match name {
                Some(n) => {
                    self.headers.insert(n.clone(), value);
                    last = Some(n);
                }
                None => {
                    if let Some(n) = &last {
                        self.headers.append(n.clone(), value);
                    }
                }
            }
        }
        for (k, v) in from.params {
            self.params.retain(|(ek, _)| *ek != k);
            self.params.push((k, v));
        }
    }

    /// Marks as sensitive (redacted in `Debug`, never logged) the values of the protocol's
    /// credential headers and of the headers the user named in `also`.
    pub fn mark_sensitive(&mut self, also: &[HeaderName]) {
        mark_sensitive(&mut self.headers, also);
    }
}

/// Starts a request: method, URL with the extras' parameters plus `params`, the extras' headers.
pub(crate) fn start_request(
    op: Operation,
    method: Method,
    stream_url: &str,
    params: &[(&str, &str)],
    extras: &RequestExtras,
) -> Result<http::request::Builder, Error> {
    let mut all: Vec<(&str, &str)> = extras
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .filter(|(k, _)| !params.iter().any(|(p, _)| p == k))
        .collect();
    all.extend_from_slice(params);
    let url = crate::url::with_query(stream_url, &all);
    let uri: http::Uri = url.parse().map_err(|e| {
        Error::invalid_input(
            op,
            stream_url,
            InputReason::Url,
            format!("bad stream URL: {e}"),
        )
    })?;
    if uri.scheme().is_none() || uri.authority().is_none() {
        return Err(Error::invalid_input(
            op,
            stream_url,
            InputReason::Url,
            "stream URL must be absolute (http:// or https://)",
        ));
    }
    let mut builder = http::Request::builder().method(method).uri(uri);
    if let Some(h) = builder.headers_mut() {
        for (k, v) in &extras.headers {
            h.append(k.clone(), v.clone());
        }
    }
    Ok(builder)
}

/// Finishes a request with its body.
pub(crate) fn finish_request(
    op: Operation,
    url: &str,
    builder: http::request::Builder,
    body: Bytes,
) -> Result<http::Request<Bytes>, Error> {
    builder.body(body).map_err(|e| {
        Error::invalid_input(
            op,
            url,
            InputReason::Header,
            format!("cannot build request: {e}"),
        )
    })
}

/// A header value from user input, refused when it is not a valid header value.
pub(crate) fn header_value(
    op: Operation,
    url: &str,
    what: &str,
    v: &str,
) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(v).map_err(|_| {
        Error::invalid_input(
            op,
            url,
            InputReason::Header,
            format!("{what} {v:?} is not a valid header value"),
        )
    })
}

/// The start of a body as text, for error messages.
pub fn body_prefix(body: &[u8]) -> String {
    let cut = &body[..body.len().min(ERROR_BODY_PREFIX)];
    String::from_utf8_lossy(cut).trim().to_owned()
}

/// Maps an error status to a typed error; the protocol's generic rules (PROTOCOL.md 5).
///
/// 409s are told apart by headers first (`Stream-Closed`, producer sequence headers), then by
/// the operation (a create's 409 is a configuration mismatch), then, for appends only, by a hint
/// from the server's message.
pub fn error_from_response(
    op: Operation,
    url: &str,
    parts: &http::response::Parts,
    body: &[u8],
) -> Error {
    let h = &parts.headers;
    let url = crate::url::strip_query(url);
    let status = parts.status.as_u16();
    let kind = match status {
        404 => ErrorKind::NotFound,
        410 => ErrorKind::Gone,
        413 => ErrorKind::PayloadTooLarge,
        429 => ErrorKind::RateLimited {
            retry_after: headers::retry_after(h),
        },
        400 => ErrorKind::BadRequest {
            message: body_prefix(body),
        },
        403 => match headers::producer_number(h, &headers::PRODUCER_EPOCH) {
            Ok(Some(server_epoch)) => ErrorKind::Fenced { server_epoch },
            _ => unexpected(parts, body),
        },
        409 => conflict(op, h, body),
        _ => unexpected(parts, body),
    };
    Error::new(op, url, kind)
}

fn unexpected(parts: &http::response::Parts, body: &[u8]) -> ErrorKind {
    ErrorKind::UnexpectedStatus {
        status: parts.status.as_u16(),
        retry_after: headers::retry_after(&parts.headers),
        body_prefix: body_prefix(body),
    }
}

fn conflict(op: Operation, h: &HeaderMap, body: &[u8]) -> ErrorKind {
    if headers::flag(h, &headers::STREAM_CLOSED) {
        return ErrorKind::Conflict(ConflictKind::Closed {
            final_offset: headers::next_offset(h).ok().flatten(),
        });
    }
    let expected = headers::producer_number(h, &headers::PRODUCER_EXPECTED_SEQ);
    let received = headers::producer_number(h, &headers::PRODUCER_RECEIVED_SEQ);
    if let (Ok(Some(expected)), Ok(Some(received))) = (expected, received) {
        return ErrorKind::SequenceGap { expected, received };
    }
    let kind = match op {
        Operation::Create => ConflictKind::ExistsWithDifferentConfig,
        // Without knowing the request, only the server's words can tell a content-type
        // mismatch from a `Stream-Seq` regression; see `append_conflict` for the rule that
        // knows whether `Stream-Seq` was sent.
        Operation::Append if mentions_content_type(body) => ConflictKind::ContentTypeMismatch,
        _ => ConflictKind::Other,
    };
    ErrorKind::Conflict(kind)
}

/// Whether a 409's body names the content type (a hint, used only where no header tells).
fn mentions_content_type(body: &[u8]) -> bool {
    let msg = body_prefix(body).to_ascii_lowercase();
    msg.contains("content type") || msg.contains("content-type")
}

/// The conflict of an append that was answered 409 without `Stream-Closed` and without
/// producer sequence headers (those are told by their headers, PROTOCOL.md 5.2 and 5.2.1).
/// 5.2 leaves two causes: a content-type mismatch, and a `Stream-Seq` regression, which is
/// only possible when the request carried `Stream-Seq` (`sent_stream_seq`). When both are
/// possible no header tells them apart, so the server's message decides, content type first
/// (5.2's precedence), and a regression otherwise.
pub fn append_conflict(sent_stream_seq: bool, body: &[u8]) -> ConflictKind {
    if !sent_stream_seq || mentions_content_type(body) {
        ConflictKind::ContentTypeMismatch
    } else {
        ConflictKind::SeqRegression
    }
}

/// Reads `Stream-Next-Offset`, mapping a malformed value to an invalid-response error.
pub(crate) fn next_offset(
    op: Operation,
    url: &str,
    h: &HeaderMap,
) -> Result<Option<crate::offset::Offset>, Error> {
    headers::next_offset(h).map_err(|m| {
        Error::invalid_response(
            op,
            crate::url::strip_query(url),
            ResponseReason::MalformedHeader,
            m,
        )
    })
}

#[cfg(test)]
pub(crate) mod test_util {
    use http::response::Parts;

    /// Builds response parts from a status and header pairs.
    pub fn parts(status: u16, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::parts;
    use super::*;
    use std::time::Duration;

    const URL: &str = "http://h/s";

    fn kind(op: Operation, status: u16, h: &[(&str, &str)], body: &str) -> ErrorKind {
        error_from_response(op, URL, &parts(status, h), body.as_bytes()).kind
    }

    #[test]
    fn every_error_status_is_typed() {
        assert_eq!(kind(Operation::Read, 404, &[], ""), ErrorKind::NotFound);
        assert_eq!(kind(Operation::Read, 410, &[], ""), ErrorKind::Gone);
        assert_eq!(
            kind(Operation::Append, 413, &[], ""),
            ErrorKind::PayloadTooLarge
        );
        assert_eq!(
            kind(Operation::Read, 429, &[("Retry-After", "3")], ""),
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(
            kind(Operation::Append, 400, &[], "empty body"),
            ErrorKind::BadRequest {
                message: "empty body".into()
            }
        );
        assert_eq!(
            kind(Operation::Append, 403, &[("Producer-Epoch", "7")], ""),
            ErrorKind::Fenced { server_epoch: 7 }
        );
        assert!(matches!(
            kind(Operation::Append, 403, &[], "no"),
            ErrorKind::UnexpectedStatus { status: 403, .. }
        ));
        assert!(matches!(
            kind(Operation::Read, 503, &[("retry-after", "1")], "busy"),
            ErrorKind::UnexpectedStatus { status: 503, retry_after: Some(_), ref body_prefix } if body_prefix == "busy"
        ));
    }

    #[test]
    fn conflicts_are_told_apart() {
        assert_eq!(
            kind(
                Operation::Append,
                409,
                &[("Stream-Closed", "true"), ("Stream-Next-Offset", "abc")],
                ""
            ),
            ErrorKind::Conflict(ConflictKind::Closed {
                final_offset: Some(crate::offset::Offset::parse("abc").unwrap())
            })
        );
        assert_eq!(
            kind(
                Operation::Append,
                409,
                &[
                    ("producer-expected-seq", "2"),
                    ("producer-received-seq", "4")
                ],
                ""
            ),
            ErrorKind::SequenceGap {
                expected: 2,
                received: 4
            }
        );
        assert_eq!(
            kind(Operation::Create, 409, &[], ""),
            ErrorKind::Conflict(ConflictKind::ExistsWithDifferentConfig)
        );
        assert_eq!(
            kind(Operation::Append, 409, &[], "Content-type mismatch"),
            ErrorKind::Conflict(ConflictKind::ContentTypeMismatch)
        );
        // Without the request, a body's words are no header: a regression is only told by
        // `append_conflict`, which knows whether `Stream-Seq` was sent.
        assert_eq!(
            kind(
                Operation::Append,
                409,
                &[],
                "Sequence conflict: seq regression"
            ),
            ErrorKind::Conflict(ConflictKind::Other)
        );
        assert_eq!(
            append_conflict(true, b"Sequence conflict: seq regression"),
            ConflictKind::SeqRegression
        );
        assert_eq!(append_conflict(true, b""), ConflictKind::SeqRegression);
        assert_eq!(
            append_conflict(true, b"content type differs"),
            ConflictKind::ContentTypeMismatch
        );
        assert_eq!(
            append_conflict(false, b"seq regression"),
            ConflictKind::ContentTypeMismatch
        );
    }

    #[test]
    fn error_carries_operation_and_url_without_query() {
        let e = error_from_response(
            Operation::Head,
            "http://h/s?token=secret",
            &parts(404, &[]),
            b"",
        );
        assert_eq!(e.operation, Operation::Head);
        assert_eq!(e.url, "http://h/s");
        assert!(e.to_string().contains("head http://h/s"));
    }

    #[test]
    fn extras_debug_redacts_secrets() {
        let extras = RequestExtras::new().header(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer hunter2"),
        );
        let shown = format!("{extras:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let mut marked = HeaderValue::from_static("k-123");
        marked.set_sensitive(true);
        let extras = RequestExtras::new()
            .header(HeaderName::from_static("x-api-key"), marked)
            .param("token", "t0ps3cret");
        let shown = format!("{extras:?}");
        assert!(
            !shown.contains("k-123") && !shown.contains("t0ps3cret"),
            "{shown}"
        );
        assert!(
            shown.contains("x-api-key") && shown.contains("token"),
            "{shown}"
        );
    }

    #[test]
    fn a_stream_url_without_scheme_or_host_is_refused() {
        let opts = CreateOptions::default();
        for url in ["/s", "h:8080", "localhost:4437", "s"] {
            let e = create_request(url, &opts, &RequestExtras::new())
                .expect_err(&format!("{url:?} is not absolute"));
            assert!(
                matches!(&e.kind, ErrorKind::InvalidInput(i) if i.reason == InputReason::Url),
                "{url:?}: {e:?}"
            );
        }
        assert!(create_request("http://h:8080/s", &opts, &RequestExtras::new()).is_ok());
    }

    #[test]
    fn errors_never_carry_the_query() {
        let e = Error::invalid_input(
            Operation::Create,
            "http://h/s?token=t0ps3cret#f",
            InputReason::Url,
            "bad",
        );
        assert_eq!(e.url, "http://h/s");
        assert!(!e.to_string().contains("t0ps3cret"));
    }

    #[test]
    fn tls_failures_are_not_retried() {
        use crate::io::{TransportError, TransportErrorKind};
        let tls = ErrorKind::Transport(TransportError::new(TransportErrorKind::Tls, "bad cert"));
        assert!(!tls.is_retryable());
        let reset = ErrorKind::Transport(TransportError::new(
            TransportErrorKind::ConnectionReset,
            "reset",
        ));
        assert!(reset.is_retryable());
    }
}

/// Adds `extras` to a request a state machine built: headers are set (replacing same-named
/// ones) and query parameters merged into the URL, keeping it sorted by key. Protocol
/// parameters already in the URL (`offset`, `live`, `cursor`) are never overridden.
pub fn apply_extras(request: &mut http::Request<Bytes>, extras: &RequestExtras) {
    for (k, v) in &extras.headers {
        request.headers_mut().insert(k.clone(), v.clone());
    }
    if extras.params.is_empty() {
        return;
    }
    let uri = request.uri().to_string();
    let present: Vec<String> = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split('=').next())
        .map(str::to_owned)
        .collect();
    let add: Vec<(&str, &str)> = extras
        .params
        .iter()
        .filter(|(k, _)| !present.contains(&crate::url::encode_component(k)))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if let Ok(new) = crate::url::with_query(&uri, &add).parse() {
        *request.uri_mut() = new;
    }
}

#[cfg(test)]
mod extras_tests {
    use super::*;

    #[test]
    fn merge_layers_headers_and_params() {
        let mut base = RequestExtras::new()
            .header(
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("1"),
            )
            .param("t", "old")
            .param("k", "v");
        let mut top = RequestExtras::new().param("t", "new");
        top.headers.append(
            HeaderName::from_static("x-a"),
            HeaderValue::from_static("2"),
        );
        top.headers.append(
            HeaderName::from_static("x-a"),
            HeaderValue::from_static("3"),
        );
        base.merge(top);
        let values: Vec<_> = base.headers.get_all("x-a").iter().collect();
        assert_eq!(values, ["2", "3"], "replaced, both new values kept");
        assert_eq!(
            base.params,
            vec![
                ("k".to_owned(), "v".to_owned()),
                ("t".to_owned(), "new".to_owned())
            ]
        );
    }

    #[test]
    fn credentials_and_named_headers_become_sensitive() {
        let mut x = RequestExtras::new()
            .header(http::header::AUTHORIZATION, HeaderValue::from_static("a"))
            .header(
                HeaderName::from_static("x-key"),
                HeaderValue::from_static("b"),
            )
            .header(
                HeaderName::from_static("x-open"),
                HeaderValue::from_static("c"),
            );
        x.mark_sensitive(&[HeaderName::from_static("x-key")]);
        assert!(x.headers["authorization"].is_sensitive());
        assert!(x.headers["x-key"].is_sensitive());
        assert!(!x.headers["x-open"].is_sensitive());
        // Every credential header of the protocol is one, whatever else is named.
        let mut x = RequestExtras::new()
            .header(http::header::COOKIE, HeaderValue::from_static("sid=1"))
            .header(
                http::header::PROXY_AUTHORIZATION,
                HeaderValue::from_static("Basic x"),
            );
        x.mark_sensitive(&[]);
        assert!(x.headers["cookie"].is_sensitive());
        assert!(x.headers["proxy-authorization"].is_sensitive());
        assert!(is_secret_header(&http::header::COOKIE));
        assert!(is_secret_header(&http::header::PROXY_AUTHORIZATION));
        assert!(!is_secret_header(&http::header::CONTENT_TYPE));
    }

    #[test]
    fn extras_are_merged_sorted() {
        let mut req = read_request(
            "http://h/s",
            &ReadOptions::from(crate::offset::Offset::beginning()),
            &RequestExtras::new(),
        )
        .unwrap();
        let extras = RequestExtras::new()
            .param("a", "1")
            .param("offset", "x")
            .header(http::header::AUTHORIZATION, HeaderValue::from_static("t"));
        apply_extras(&mut req, &extras);
        assert_eq!(req.uri().to_string(), "http://h/s?a=1&offset=-1");
        assert_eq!(req.headers()["authorization"], "t");
    }
}

/// Per-call settings a driver applies to one operation, on top of the client's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallOptions {
    /// Extra headers and query parameters for this call.
    pub extras: RequestExtras,
    /// A retry policy replacing the client's for this call.
    pub retry: Option<crate::retry::RetryPolicy>,
    /// A timeout for each attempt, replacing the client's request timeout.
    pub timeout: Option<std::time::Duration>,
}
