//! Head (PROTOCOL.md 5.5) and delete (5.4).

use super::{finish_request, next_offset, start_request, RequestExtras};
use crate::error::ResponseReason;
use crate::error::{Error, Operation};
use crate::headers;
use crate::offset::Offset;
use bytes::Bytes;
use http::Method;

/// A stream's metadata, from `HEAD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream's content type.
    pub content_type: Option<String>,
    /// The tail offset.
    pub next_offset: Offset,
    /// Sliding TTL in seconds, if set.
    pub ttl_seconds: Option<u64>,
    /// Absolute expiry (RFC 3339), if set.
    pub expires_at: Option<String>,
    /// Whether the stream is closed.
    pub closed: bool,
    /// The `ETag`, if any.
    pub etag: Option<String>,
}

/// Builds the `HEAD` request.
pub fn head_request(
    stream_url: &str,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, Error> {
    let b = start_request(Operation::Head, Method::HEAD, stream_url, &[], extras)?;
    finish_request(Operation::Head, stream_url, b, Bytes::new())
}

/// Interprets the response to `HEAD`: 200 gives [`StreamInfo`]; `Stream-Next-Offset` is
/// required.
pub fn head_response(
    stream_url: &str,
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<StreamInfo, Error> {
    let op = Operation::Head;
    if parts.status.as_u16() != 200 {
        return Err(super::error_from_response(op, stream_url, parts, body));
    }
    let h = &parts.headers;
    let url = crate::url::strip_query(stream_url);
    let next_offset = next_offset(op, stream_url, h)?.ok_or_else(|| {
        Error::invalid_response(
            op,
            url,
            ResponseReason::MissingHeader,
            "HEAD without Stream-Next-Offset",
        )
    })?;
    Ok(StreamInfo {
        content_type: headers::content_type(h),
        next_offset,
        ttl_seconds: headers::ttl(h)
            .map_err(|m| Error::invalid_response(op, url, ResponseReason::MalformedHeader, m))?,
        expires_at: headers::expires_at(h)
            .map_err(|m| Error::invalid_response(op, url, ResponseReason::MalformedHeader, m))?,
        closed: headers::flag(h, &headers::STREAM_CLOSED),
        etag: h
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    })
}

/// Builds the `DELETE` request.
pub fn delete_request(
    stream_url: &str,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, Error> {
    let b = start_request(Operation::Delete, Method::DELETE, stream_url, &[], extras)?;
    finish_request(Operation::Delete, stream_url, b, Bytes::new())
}

/// Interprets the response to `DELETE`: 204 (or 200) succeeds.
pub fn delete_response(
    stream_url: &str,
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<(), Error> {
    match parts.status.as_u16() {
        200 | 202 | 204 => Ok(()),
        _ => Err(super::error_from_response(
            Operation::Delete,
            stream_url,
            parts,
            body,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::parts;
    use super::*;
    use crate::error::ErrorKind;

    const URL: &str = "http://h/s";

    #[test]
    fn head_reads_metadata() {
        let info = head_response(
            URL,
            &parts(
                200,
                &[
                    ("content-type", "application/json"),
                    ("Stream-Next-Offset", "0_7"),
                    ("Stream-TTL", "60"),
                    ("Stream-Closed", "true"),
                ],
            ),
            b"",
        )
        .unwrap();
        assert_eq!(info.content_type.as_deref(), Some("application/json"));
        assert_eq!(info.next_offset.as_str(), "0_7");
        assert_eq!(info.ttl_seconds, Some(60));
        assert!(info.closed);
        let e = head_response(URL, &parts(200, &[]), b"").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidResponse(_)));
        assert_eq!(
            head_response(URL, &parts(410, &[]), b"").unwrap_err().kind,
            ErrorKind::Gone
        );
        let req = head_request(URL, &RequestExtras::new()).unwrap();
        assert_eq!(req.method(), Method::HEAD);
    }

    #[test]
    fn delete_outcomes() {
        assert!(delete_response(URL, &parts(204, &[]), b"").is_ok());
        assert!(delete_response(URL, &parts(404, &[]), b"")
            .unwrap_err()
            .is_not_found());
        assert_eq!(
            delete_request(URL, &RequestExtras::new()).unwrap().method(),
            Method::DELETE
        );
    }
}
