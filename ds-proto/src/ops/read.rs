//! One read: catch-up (PROTOCOL.md 5.6) or one long-poll (5.7), with ETag revalidation (10.1).

use super::{finish_request, next_offset, start_request, RequestExtras};
use crate::error::{Error, Operation};
use crate::error::{InputReason, ResponseReason};
use crate::headers;
use crate::offset::Offset;
use bytes::Bytes;
use http::{HeaderValue, Method};

/// How a read waits for data.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum LiveMode {
    /// Catch-up only: return what exists now.
    #[default]
    Off,
    /// Long-poll: wait for data when at the tail (5.7).
    LongPoll,
    /// Server-Sent Events (5.8).
    Sse,
}

impl LiveMode {
    /// The `live=` query value, if any.
    pub fn query_value(self) -> Option<&'static str> {
        match self {
            LiveMode::Off => None,
            LiveMode::LongPoll => Some("long-poll"),
            LiveMode::Sse => Some("sse"),
        }
    }
}

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// Where to start: `-1`, `now`, or an offset the server returned.
    pub offset: Offset,
    /// Catch-up, long-poll or SSE.
    pub live: LiveMode,
    /// The last `Stream-Cursor` seen, echoed as `cursor=` (10.1).
    pub cursor: Option<String>,
    /// An `ETag` from an earlier identical read, sent as `If-None-Match`.
    pub if_none_match: Option<String>,
}

impl ReadOptions {
    /// A catch-up read from `offset`.
    pub fn from(offset: Offset) -> Self {
        ReadOptions {
            offset,
            live: LiveMode::Off,
            cursor: None,
            if_none_match: None,
        }
    }
}

/// What one read returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// The bytes (for JSON streams, a JSON array; see [`ReadResult::json_items`]).
    pub data: Bytes,
    /// Where the next read starts.
    pub next_offset: Offset,
    /// The response reached the tail (not EOF).
    pub up_to_date: bool,
    /// The stream is closed and this response reached its end: EOF.
    pub closed: bool,
    /// `Stream-Cursor`, to echo on the next live read.
    pub cursor: Option<String>,
    /// `ETag`, for revalidation.
    pub etag: Option<String>,
    /// The response's content type.
    pub content_type: Option<String>,
    /// 304: the data did not change since the `If-None-Match` ETag (no data).
    pub not_modified: bool,
    /// 204: a long-poll ended without data.
    pub timed_out: bool,
}

impl ReadResult {
    /// Whether the response is JSON mode.
    pub fn is_json(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(headers::is_json_content_type)
    }

    /// The messages of a JSON-mode body, each a slice of [`ReadResult::data`].
    pub fn json_items(&self) -> Result<Vec<Bytes>, String> {
        crate::json::split_array(&self.data).map_err(String::from)
    }
}

/// Builds the `GET`. Query parameters are sorted by key and percent-encoded; the offset is sent
/// as an opaque token.
pub fn read_request(
    stream_url: &str,
    opts: &ReadOptions,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, Error> {
    let op = Operation::Read;
    let mut params: Vec<(&str, &str)> = vec![("offset", opts.offset.as_str())];
    if let Some(live) = opts.live.query_value() {
        params.push(("live", live));
    }
    if let Some(c) = &opts.cursor {
        if opts.live != LiveMode::Off {
            params.push(("cursor", c.as_str()));
        }
    }
    let mut b = start_request(op, Method::GET, stream_url, &params, extras)?;
    if let Some(tag) = &opts.if_none_match {
        let v = HeaderValue::from_str(tag).map_err(|_| {
            Error::invalid_input(
                op,
                stream_url,
                InputReason::Header,
                "ETag is not a header value",
            )
        })?;
        b.headers_mut()
            .expect("builder is valid")
            .insert(http::header::IF_NONE_MATCH, v);
    }
    finish_request(op, stream_url, b, Bytes::new())
}

/// Interprets the response to one read. `requested` is the offset that was asked for (a 304
/// without `Stream-Next-Offset` stays there). A 200 or 204 must carry `Stream-Next-Offset`.
pub fn read_response(
    stream_url: &str,
    requested: &Offset,
    parts: &http::response::Parts,
    body: Bytes,
) -> Result<ReadResult, Error> {
    let op = Operation::Read;
    let status = parts.status.as_u16();
    if !matches!(status, 200 | 204 | 304) {
        return Err(super::error_from_response(op, stream_url, parts, &body));
    }
    let h = &parts.headers;
    let next = next_offset(op, stream_url, h)?;
    let next_offset = match (next, status) {
        (Some(o), _) => o,
        // 304: nothing changed since the cached response; the caller keeps that response's
        // offset, and this one stays where it asked to be.
        (None, 304) => requested.clone(),
        (None, _) => {
            return Err(Error::invalid_response(
                op,
                crate::url::strip_query(stream_url),
                ResponseReason::MissingHeader,
                format!("{status} without Stream-Next-Offset"),
            ))
        }
    };
    let closed = headers::flag(h, &headers::STREAM_CLOSED);
    Ok(ReadResult {
        data: if status == 200 { body } else { Bytes::new() },
        next_offset,
        up_to_date: closed || status == 204 || headers::flag(h, &headers::STREAM_UP_TO_DATE),
        closed,
        cursor: headers::cursor(h),
        etag: h
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        content_type: headers::content_type(h),
        not_modified: status == 304,
        timed_out: status == 204,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::parts;
    use super::*;
    use crate::error::ErrorKind;

    const URL: &str = "http://h/s";

    #[test]
    fn request_sorts_and_encodes() {
        let opts = ReadOptions {
            offset: Offset::parse("a+b").unwrap(),
            live: LiveMode::LongPoll,
            cursor: Some("99".into()),
            if_none_match: Some("\"e1\"".into()),
        };
        let extras = RequestExtras::new().param("tenant", "x y");
        let req = read_request(URL, &opts, &extras).unwrap();
        assert_eq!(
            req.uri().to_string(),
            "http://h/s?cursor=99&live=long-poll&offset=a%2Bb&tenant=x%20y"
        );
        assert_eq!(req.headers()["if-none-match"], "\"e1\"");
        let req = read_request(
            URL,
            &ReadOptions::from(Offset::now()),
            &RequestExtras::new(),
        )
        .unwrap();
        assert_eq!(req.uri().to_string(), "http://h/s?offset=now");
    }

    #[test]
    fn protocol_params_win_over_extras() {
        let extras = RequestExtras::new().param("offset", "evil");
        let req = read_request(URL, &ReadOptions::from(Offset::beginning()), &extras).unwrap();
        assert_eq!(req.uri().query(), Some("offset=-1"));
    }

    #[test]
    fn catch_up_result() {
        let r = read_response(
            URL,
            &Offset::beginning(),
            &parts(
                200,
                &[
                    ("Stream-Next-Offset", "0_5"),
                    ("Stream-Up-To-Date", "true"),
                    ("ETag", "\"x\""),
                    ("content-type", "application/json"),
                ],
            ),
            Bytes::from_static(b"[1,2]"),
        )
        .unwrap();
        assert!(r.up_to_date && !r.closed);
        assert_eq!(r.etag.as_deref(), Some("\"x\""));
        assert!(r.is_json(), "application/json is JSON mode");
        assert_eq!(r.json_items().unwrap().len(), 2);
        let text = ReadResult {
            content_type: Some("text/plain; charset=utf-8".into()),
            ..r.clone()
        };
        assert!(!text.is_json(), "text/plain is not");
        let params = ReadResult {
            content_type: Some("Application/JSON; charset=utf-8".into()),
            ..r.clone()
        };
        assert!(params.is_json(), "parameters and case do not matter");
        let none = ReadResult {
            content_type: None,
            ..r
        };
        assert!(!none.is_json(), "no content type is not JSON mode");
    }

    #[test]
    fn eof_timeout_and_not_modified() {
        let eof = read_response(
            URL,
            &Offset::parse("0_5").unwrap(),
            &parts(
                200,
                &[("Stream-Next-Offset", "0_5"), ("Stream-Closed", "true")],
            ),
            Bytes::new(),
        )
        .unwrap();
        assert!(eof.closed && eof.up_to_date);
        let t = read_response(
            URL,
            &Offset::parse("0_5").unwrap(),
            &parts(
                204,
                &[("Stream-Next-Offset", "0_5"), ("Stream-Cursor", "7")],
            ),
            Bytes::new(),
        )
        .unwrap();
        assert!(t.timed_out && t.up_to_date);
        assert_eq!(t.cursor.as_deref(), Some("7"));
        let nm = read_response(
            URL,
            &Offset::parse("0_5").unwrap(),
            &parts(304, &[]),
            Bytes::new(),
        )
        .unwrap();
        assert!(nm.not_modified);
        assert_eq!(nm.next_offset.as_str(), "0_5");
    }

    #[test]
    fn missing_offset_and_errors() {
        let e =
            read_response(URL, &Offset::beginning(), &parts(200, &[]), Bytes::new()).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidResponse(_)));
        let e =
            read_response(URL, &Offset::beginning(), &parts(410, &[]), Bytes::new()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Gone);
    }
}
