//! Create (PROTOCOL.md 5.1) and fork (4.2).

use super::{finish_request, header_value, next_offset, start_request, RequestExtras};
use crate::error::InputReason;
use crate::error::{Error, Operation};
use crate::headers;
use crate::offset::Offset;
use bytes::Bytes;
use http::Method;

/// The default content type of a stream (5.1).
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// What a new stream looks like.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateOptions {
    /// The stream's content type; `application/octet-stream` when `None` (a fork inherits its
    /// source's instead).
    pub content_type: Option<String>,
    /// Sliding time-to-live in seconds (`Stream-TTL`).
    pub ttl_seconds: Option<u64>,
    /// Absolute expiry, RFC 3339 (`Stream-Expires-At`). Not together with a TTL.
    pub expires_at: Option<String>,
    /// Create the stream closed (`Stream-Closed: true`); the body is then its whole content.
    pub closed: bool,
    /// Initial content (may be empty).
    pub body: Bytes,
    /// Create a fork of another stream.
    pub fork: Option<ForkFrom>,
}

/// The source of a fork (4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkFrom {
    /// The source stream's path on the same server (`/v1/stream/source`).
    pub source_path: String,
    /// The divergence offset; the source's tail when `None`.
    pub offset: Option<Offset>,
    /// Messages (JSON) or bytes (others) inherited past `offset`.
    pub sub_offset: Option<u64>,
}

impl CreateOptions {
    /// Options with this content type.
    pub fn with_content_type(content_type: impl Into<String>) -> Self {
        CreateOptions {
            content_type: Some(content_type.into()),
            ..Self::default()
        }
    }

    /// Sets the TTL from its header text, checked as PROTOCOL.md 5.1 demands (decimal, no sign,
    /// no leading zero).
    pub fn ttl_from_str(&mut self, ttl: &str) -> Result<(), String> {
        self.ttl_seconds = Some(headers::validate_ttl(ttl)?);
        Ok(())
    }
}

/// The outcome of a successful create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// `true` for 201 (made now), `false` for 200 (it existed with the same configuration).
    pub created: bool,
    /// The tail offset after any initial content.
    pub next_offset: Option<Offset>,
    /// The stream's content type as the server reports it.
    pub content_type: Option<String>,
    /// Whether the stream is closed.
    pub closed: bool,
}

/// Builds the `PUT` that creates a stream.
pub fn create_request(
    stream_url: &str,
    opts: &CreateOptions,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, Error> {
    let op = Operation::Create;
    if opts.ttl_seconds.is_some() && opts.expires_at.is_some() {
        return Err(Error::invalid_input(
            op,
            stream_url,
            InputReason::Config,
            "Stream-TTL and Stream-Expires-At cannot be used together (PROTOCOL.md 5.1)",
        ));
    }
    let mut b = start_request(op, Method::PUT, stream_url, &[], extras)?;
    let h = b.headers_mut().expect("builder is valid");
    let content_type = match (&opts.content_type, &opts.fork) {
        (Some(ct), _) => Some(ct.as_str()),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_CONTENT_TYPE),
    };
    if let Some(ct) = content_type {
        h.insert(
            http::header::CONTENT_TYPE,
            header_value(op, stream_url, "content type", ct)?,
        );
        if headers::is_json_content_type(ct) && !opts.body.is_empty() {
            crate::json::validate(&opts.body)
                .map_err(|m| Error::invalid_input(op, stream_url, InputReason::Body, m))?;
        }
    }
    if let Some(ttl) = opts.ttl_seconds {
        h.insert(headers::STREAM_TTL, ttl.into());
    }
    if let Some(at) = &opts.expires_at {
        headers::validate_rfc3339(at)
            .map_err(|m| Error::invalid_input(op, stream_url, InputReason::Config, m))?;
        h.insert(
            headers::STREAM_EXPIRES_AT,
            header_value(op, stream_url, "expires-at", at)?,
        );
    }
    if opts.closed {
        h.insert(
            headers::STREAM_CLOSED,
            http::HeaderValue::from_static("true"),
        );
    }
    if let Some(fork) = &opts.fork {
        if fork.source_path.is_empty() {
            return Err(Error::invalid_input(
                op,
                stream_url,
                InputReason::Header,
                "fork source path is empty",
            ));
        }
        h.insert(
            headers::STREAM_FORKED_FROM,
            header_value(op, stream_url, "fork source", &fork.source_path)?,
        );
        if let Some(off) = &fork.offset {
            if off.is_sentinel() {
                return Err(Error::invalid_input(
                    op,
                    stream_url,
                    InputReason::Offset,
                    "a fork offset must be an offset the server returned, not a sentinel",
                ));
            }
            h.insert(
                headers::STREAM_FORK_OFFSET,
                header_value(op, stream_url, "fork offset", off.as_str())?,
            );
        }
        if let Some(sub) = fork.sub_offset {
            h.insert(headers::STREAM_FORK_SUB_OFFSET, sub.into());
        }
    }
    finish_request(op, stream_url, b, opts.body.clone())
}

/// Interprets the response to a create: 201 and 200 succeed, everything else is an error (409:
/// exists with another configuration or closure status).
pub fn create_response(
    stream_url: &str,
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<Created, Error> {
    let op = Operation::Create;
    let created = match parts.status.as_u16() {
        201 => true,
        200 | 204 => false,
        _ => return Err(super::error_from_response(op, stream_url, parts, body)),
    };
    Ok(Created {
        created,
        next_offset: next_offset(op, stream_url, &parts.headers)?,
        content_type: headers::content_type(&parts.headers),
        closed: headers::flag(&parts.headers, &headers::STREAM_CLOSED),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::parts;
    use super::*;
    use crate::error::{ConflictKind, ErrorKind};

    const URL: &str = "http://h/v1/stream/s";

    #[test]
    fn defaults_to_octet_stream() {
        let req = create_request(URL, &CreateOptions::default(), &RequestExtras::new()).unwrap();
        assert_eq!(req.method(), Method::PUT);
        assert_eq!(req.headers()["content-type"], "application/octet-stream");
        assert!(req.headers().get("stream-closed").is_none());
    }

    #[test]
    fn sets_every_header() {
        let opts = CreateOptions {
            content_type: Some("application/json".into()),
            ttl_seconds: Some(60),
            closed: true,
            body: Bytes::from_static(b"[1]"),
            fork: Some(ForkFrom {
                source_path: "/v1/stream/src".into(),
                offset: Some(Offset::parse("0_5").unwrap()),
                sub_offset: Some(2),
            }),
            ..CreateOptions::default()
        };
        let req = create_request(URL, &opts, &RequestExtras::new()).unwrap();
        let h = req.headers();
        assert_eq!(h["stream-ttl"], "60");
        assert_eq!(h["stream-closed"], "true");
        assert_eq!(h["stream-forked-from"], "/v1/stream/src");
        assert_eq!(h["stream-fork-offset"], "0_5");
        assert_eq!(h["stream-fork-sub-offset"], "2");
        assert_eq!(req.body().as_ref(), b"[1]");
    }

    #[test]
    fn fork_without_content_type_inherits() {
        let opts = CreateOptions {
            fork: Some(ForkFrom {
                source_path: "/a".into(),
                offset: None,
                sub_offset: None,
            }),
            ..CreateOptions::default()
        };
        let req = create_request(URL, &opts, &RequestExtras::new()).unwrap();
        assert!(req.headers().get("content-type").is_none());
    }

    /// Only JSON initial content is checked as JSON (PROTOCOL.md 5.1): binary content that is
    /// not JSON is sent as it is, and a JSON stream may be created empty.
    #[test]
    fn only_json_initial_content_is_validated() {
        let binary = CreateOptions {
            body: Bytes::from_static(b"{not json"),
            ..CreateOptions::default()
        };
        let req = create_request(URL, &binary, &RequestExtras::new()).unwrap();
        assert_eq!(req.body().as_ref(), b"{not json");
        let empty_json = CreateOptions {
            content_type: Some("application/json".into()),
            ..CreateOptions::default()
        };
        let req = create_request(URL, &empty_json, &RequestExtras::new()).unwrap();
        assert!(req.body().is_empty());
        assert_eq!(req.headers()["content-type"], "application/json");
    }

    #[test]
    fn refuses_bad_input() {
        let both = CreateOptions {
            ttl_seconds: Some(1),
            expires_at: Some("2030-01-01T00:00:00Z".into()),
            ..CreateOptions::default()
        };
        let e = create_request(URL, &both, &RequestExtras::new()).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidInput(_)));
        let bad_date = CreateOptions {
            expires_at: Some("tomorrow".into()),
            ..CreateOptions::default()
        };
        assert!(create_request(URL, &bad_date, &RequestExtras::new()).is_err());
        let bad_json = CreateOptions {
            content_type: Some("application/json".into()),
            body: Bytes::from_static(b"{"),
            ..CreateOptions::default()
        };
        assert!(create_request(URL, &bad_json, &RequestExtras::new()).is_err());
        let mut o = CreateOptions::default();
        assert!(o.ttl_from_str("0100").is_err());
        assert!(o.ttl_from_str("100").is_ok());
        assert!(create_request("not a url", &o, &RequestExtras::new()).is_err());
    }

    #[test]
    fn created_vs_existing_vs_conflict() {
        let c = create_response(URL, &parts(201, &[("Stream-Next-Offset", "0_0")]), b"").unwrap();
        assert!(c.created);
        let c = create_response(URL, &parts(200, &[("stream-closed", "true")]), b"").unwrap();
        assert!(!c.created && c.closed);
        let e = create_response(URL, &parts(409, &[]), b"").unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::Conflict(ConflictKind::ExistsWithDifferentConfig)
        );
    }
}
