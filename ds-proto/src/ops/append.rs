//! Append (PROTOCOL.md 5.2), idempotent producer headers (5.2.1) and close (5.3).

use super::create::DEFAULT_CONTENT_TYPE;
use super::{finish_request, header_value, next_offset, start_request, RequestExtras};
use crate::error::{Error, ErrorKind, Operation};
use crate::error::{InputReason, ResponseReason};
use crate::headers::{self, MAX_SAFE_INTEGER};
use crate::offset::Offset;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};

/// Idempotent producer headers chosen by the caller (5.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProducerHeaders {
    /// `Producer-Id`: non-empty.
    pub id: String,
    /// `Producer-Epoch`: at most 2^53-1.
    pub epoch: u64,
    /// `Producer-Seq`: at most 2^53-1.
    pub seq: u64,
}

impl ProducerHeaders {
    /// Checks the values the protocol bounds.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.is_empty() {
            return Err("producer id must not be empty".to_owned());
        }
        if self.epoch > MAX_SAFE_INTEGER {
            return Err(format!("producer epoch {} exceeds 2^53-1", self.epoch));
        }
        if self.seq > MAX_SAFE_INTEGER {
            return Err(format!("producer seq {} exceeds 2^53-1", self.seq));
        }
        Ok(())
    }

    pub(crate) fn apply(&self, op: Operation, url: &str, h: &mut HeaderMap) -> Result<(), Error> {
        self.validate()
            .map_err(|m| Error::invalid_input(op, url, InputReason::Header, m))?;
        h.insert(
            headers::PRODUCER_ID,
            header_value(op, url, "producer id", &self.id)?,
        );
        h.insert(headers::PRODUCER_EPOCH, self.epoch.into());
        h.insert(headers::PRODUCER_SEQ, self.seq.into());
        Ok(())
    }
}

/// How an append is sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppendOptions {
    /// The stream's content type (`application/octet-stream` when `None`). For
    /// `application/json` the body is one JSON message and is framed as such (9.1).
    pub content_type: Option<String>,
    /// `Stream-Seq`: the writer's lexicographic sequence.
    pub seq: Option<String>,
    /// Close the stream atomically with this append.
    pub close: bool,
    /// Idempotent producer headers.
    pub producer: Option<ProducerHeaders>,
    /// The body is already a JSON array of messages (a batch) and is sent as is; only for JSON
    /// streams.
    pub json_batch: bool,
}

/// Whether an idempotent append was stored now or recognised as a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The data was stored by this request.
    Stored,
    /// The server had already stored it (204 to an idempotent append, 5.2.1).
    Duplicate,
}

/// The outcome of a successful append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The tail offset after the append.
    pub next_offset: Option<Offset>,
    /// Whether the stream is now closed.
    pub closed: bool,
    /// Stored or duplicate (plain appends are always `Stored`).
    pub outcome: AppendOutcome,
    /// `Producer-Epoch` echoed by the server.
    pub producer_epoch: Option<u64>,
    /// `Producer-Seq` echoed: the highest sequence the server accepted for the epoch.
    pub producer_seq: Option<u64>,
}

/// The outcome of a successful close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The stream's final offset.
    pub final_offset: Option<Offset>,
}

/// Builds the `POST` that appends `body` (and closes the stream when `opts.close`).
///
/// Refused before sending: an empty body unless closing; for JSON streams, invalid JSON or an
/// empty array. A JSON body is one message: it is wrapped in an array so the server's one-level
/// flattening stores it whole (9.1.2), unless `json_batch` says it already is an array of
/// messages.
pub fn append_request(
    stream_url: &str,
    body: Bytes,
    opts: &AppendOptions,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, Error> {
    let op = Operation::Append;
    if body.is_empty() && !opts.close {
        return Err(Error::invalid_input(
            op,
            stream_url,
            InputReason::Body,
            "an append needs a non-empty body (PROTOCOL.md 5.2)",
        ));
    }
    let content_type = opts.content_type.as_deref().unwrap_or(DEFAULT_CONTENT_TYPE);
    let body = if headers::is_json_content_type(content_type) && !body.is_empty() {
        if opts.json_batch {
            crate::json::validate(&body)
                .map_err(|m| Error::invalid_input(op, stream_url, InputReason::Body, m))?;
            if crate::json::is_empty_array(&body) || !body.trim_ascii_start().starts_with(b"[") {
                return Err(Error::invalid_input(
                    op,
                    stream_url,
                    InputReason::Body,
                    "a JSON batch must be a non-empty array",
                ));
            }
            body
        } else {
            crate::json::wrap_one(&body)
                .map_err(|m| Error::invalid_input(op, stream_url, InputReason::Body, m))?
        }
    } else {
        body
    };
    build_append(stream_url, body, opts, extras)
}

/// Builds the append `POST` for a body sent exactly as given: no JSON check or framing. For
/// bodies correct by construction, such as a producer's sealed JSON batch (its items were
/// validated one by one when appended), so the batch is not parsed again on every attempt.
pub(crate) fn build_append(
    stream_url: &str,
    body: Bytes,
    opts: &AppendOptions,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, Error> {
    let op = Operation::Append;
    let content_type = opts.content_type.as_deref().unwrap_or(DEFAULT_CONTENT_TYPE);
    let mut b = start_request(op, Method::POST, stream_url, &[], extras)?;
    let h = b.headers_mut().expect("builder is valid");
    if !body.is_empty() {
        h.insert(
            http::header::CONTENT_TYPE,
            header_value(op, stream_url, "content type", content_type)?,
        );
    }
    if let Some(seq) = &opts.seq {
        if seq.is_empty() {
            return Err(Error::invalid_input(
                op,
                stream_url,
                InputReason::Header,
                "Stream-Seq is empty",
            ));
        }
        h.insert(
            headers::STREAM_SEQ,
            header_value(op, stream_url, "Stream-Seq", seq)?,
        );
    }
    if opts.close {
        h.insert(headers::STREAM_CLOSED, HeaderValue::from_static("true"));
    }
    if let Some(p) = &opts.producer {
        p.apply(op, stream_url, h)?;
    }
    finish_request(op, stream_url, b, body)
}

/// Interprets the response to an append. `idempotent` says the request carried producer
/// headers: then 200 is stored and 204 a duplicate; for plain appends 200 and 204 both mean
/// stored. A 403 is [`ErrorKind::Fenced`], a 409 with producer headers
/// [`ErrorKind::SequenceGap`], a 409 with `Stream-Closed` a closed conflict.
pub fn append_response(
    stream_url: &str,
    idempotent: bool,
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<Appended, Error> {
    let op = Operation::Append;
    let outcome = match parts.status.as_u16() {
        200 | 201 => AppendOutcome::Stored,
        204 if idempotent => AppendOutcome::Duplicate,
        204 => AppendOutcome::Stored,
        _ => return Err(super::error_from_response(op, stream_url, parts, body)),
    };
    let h = &parts.headers;
    let bad = |m: String| {
        Error::invalid_response(
            op,
            crate::url::strip_query(stream_url),
            ResponseReason::MalformedHeader,
            m,
        )
    };
    Ok(Appended {
        next_offset: next_offset(op, stream_url, h)?,
        closed: headers::flag(h, &headers::STREAM_CLOSED),
        outcome,
        producer_epoch: headers::producer_number(h, &headers::PRODUCER_EPOCH).map_err(bad)?,
        producer_seq: headers::producer_number(h, &headers::PRODUCER_SEQ).map_err(bad)?,
    })
}

/// Builds the close-only `POST`: empty body, `Stream-Closed: true` (5.3), optionally with
/// producer headers (5.2.1).
pub fn close_request(
    stream_url: &str,
    producer: Option<&ProducerHeaders>,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, Error> {
    let op = Operation::Close;
    let mut b = start_request(op, Method::POST, stream_url, &[], extras)?;
    let h = b.headers_mut().expect("builder is valid");
    h.insert(headers::STREAM_CLOSED, HeaderValue::from_static("true"));
    if let Some(p) = producer {
        p.apply(op, stream_url, h)?;
    }
    finish_request(op, stream_url, b, Bytes::new())
}

/// Interprets the response to a close: 204/200 succeed (closing twice is idempotent).
pub fn close_response(
    stream_url: &str,
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<Closed, Error> {
    let op = Operation::Close;
    match parts.status.as_u16() {
        200 | 204 => Ok(Closed {
            final_offset: next_offset(op, stream_url, &parts.headers)?,
        }),
        _ => {
            let e = super::error_from_response(op, stream_url, parts, body);
            // A 409 carrying Stream-Closed on a close-only request means "already closed"
            // by someone else: the stream is closed, which is what was asked.
            if let ErrorKind::Conflict(crate::error::ConflictKind::Closed { final_offset }) =
                &e.kind
            {
                return Ok(Closed {
                    final_offset: final_offset.clone(),
                });
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::parts;
    use super::*;
    use crate::error::ConflictKind;

    const URL: &str = "http://h/s";

    fn json() -> AppendOptions {
        AppendOptions {
            content_type: Some("application/json".into()),
            ..AppendOptions::default()
        }
    }

    #[test]
    fn plain_append() {
        let opts = AppendOptions {
            content_type: Some("text/plain".into()),
            seq: Some("0001".into()),
            ..AppendOptions::default()
        };
        let req =
            append_request(URL, Bytes::from_static(b"hi"), &opts, &RequestExtras::new()).unwrap();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.headers()["content-type"], "text/plain");
        assert_eq!(req.headers()["stream-seq"], "0001");
        assert!(req.headers().get("stream-closed").is_none());
        assert_eq!(req.body().as_ref(), b"hi");
    }

    #[test]
    fn empty_body_only_when_closing() {
        let e = append_request(
            URL,
            Bytes::new(),
            &AppendOptions::default(),
            &RequestExtras::new(),
        )
        .unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidInput(_)));
        let close = AppendOptions {
            close: true,
            ..AppendOptions::default()
        };
        let req = append_request(URL, Bytes::new(), &close, &RequestExtras::new()).unwrap();
        assert_eq!(req.headers()["stream-closed"], "true");
        assert!(req.headers().get("content-type").is_none());
    }

    #[test]
    fn json_is_one_message() {
        let req = append_request(
            URL,
            Bytes::from_static(b"[1,2]"),
            &json(),
            &RequestExtras::new(),
        )
        .unwrap();
        assert_eq!(req.body().as_ref(), b"[[1,2]]");
        assert!(append_request(
            URL,
            Bytes::from_static(b"[]"),
            &json(),
            &RequestExtras::new()
        )
        .is_err());
        assert!(append_request(
            URL,
            Bytes::from_static(b"{x"),
            &json(),
            &RequestExtras::new()
        )
        .is_err());
        let batch = AppendOptions {
            json_batch: true,
            ..json()
        };
        let req = append_request(
            URL,
            Bytes::from_static(b"[1,2]"),
            &batch,
            &RequestExtras::new(),
        )
        .unwrap();
        assert_eq!(req.body().as_ref(), b"[1,2]");
        assert!(append_request(
            URL,
            Bytes::from_static(b"{}"),
            &batch,
            &RequestExtras::new()
        )
        .is_err());
    }

    #[test]
    fn producer_headers_are_validated() {
        let mut opts = AppendOptions {
            producer: Some(ProducerHeaders {
                id: "p".into(),
                epoch: 3,
                seq: 9,
            }),
            ..AppendOptions::default()
        };
        let req =
            append_request(URL, Bytes::from_static(b"x"), &opts, &RequestExtras::new()).unwrap();
        assert_eq!(req.headers()["producer-id"], "p");
        assert_eq!(req.headers()["producer-epoch"], "3");
        assert_eq!(req.headers()["producer-seq"], "9");
        opts.producer.as_mut().unwrap().id.clear();
        assert!(
            append_request(URL, Bytes::from_static(b"x"), &opts, &RequestExtras::new()).is_err()
        );
        // 2^53-1 itself is allowed for both numbers (5.2.1); one more is not.
        opts.producer = Some(ProducerHeaders {
            id: "p".into(),
            epoch: MAX_SAFE_INTEGER,
            seq: MAX_SAFE_INTEGER,
        });
        assert!(
            append_request(URL, Bytes::from_static(b"x"), &opts, &RequestExtras::new()).is_ok()
        );
        opts.producer = Some(ProducerHeaders {
            id: "p".into(),
            epoch: 0,
            seq: MAX_SAFE_INTEGER + 1,
        });
        assert!(
            append_request(URL, Bytes::from_static(b"x"), &opts, &RequestExtras::new()).is_err()
        );
        opts.producer = Some(ProducerHeaders {
            id: "p".into(),
            epoch: MAX_SAFE_INTEGER + 1,
            seq: 0,
        });
        assert!(
            append_request(URL, Bytes::from_static(b"x"), &opts, &RequestExtras::new()).is_err()
        );
    }

    #[test]
    fn outcomes() {
        let ok = append_response(
            URL,
            false,
            &parts(204, &[("stream-next-offset", "0_1")]),
            b"",
        )
        .unwrap();
        assert_eq!(ok.outcome, AppendOutcome::Stored);
        assert_eq!(ok.next_offset.unwrap().as_str(), "0_1");
        // 200 and 201 are stored too, with producer headers or without.
        for (status, idempotent) in [(200, true), (200, false), (201, false)] {
            let ok = append_response(
                URL,
                idempotent,
                &parts(status, &[("stream-next-offset", "0_2")]),
                b"",
            )
            .unwrap();
            assert_eq!(ok.outcome, AppendOutcome::Stored, "{status}");
        }
        let dup = append_response(
            URL,
            true,
            &parts(204, &[("producer-epoch", "0"), ("producer-seq", "4")]),
            b"",
        )
        .unwrap();
        assert_eq!(dup.outcome, AppendOutcome::Duplicate);
        assert_eq!(dup.producer_seq, Some(4));
        let closed = append_response(
            URL,
            false,
            &parts(
                409,
                &[("stream-closed", "true"), ("stream-next-offset", "0_9")],
            ),
            b"",
        )
        .unwrap_err();
        assert!(closed.is_closed());
        assert_eq!(
            closed.kind,
            ErrorKind::Conflict(ConflictKind::Closed {
                final_offset: Some(Offset::parse("0_9").unwrap())
            })
        );
    }

    #[test]
    fn close_is_idempotent() {
        let req = close_request(URL, None, &RequestExtras::new()).unwrap();
        assert_eq!(req.headers()["stream-closed"], "true");
        assert!(req.body().is_empty());
        let c = close_response(URL, &parts(204, &[("stream-next-offset", "0_3")]), b"").unwrap();
        assert_eq!(c.final_offset.unwrap().as_str(), "0_3");
        assert!(close_response(URL, &parts(409, &[("stream-closed", "true")]), b"").is_ok());
        assert!(close_response(URL, &parts(404, &[]), b"")
            .unwrap_err()
            .is_not_found());
    }
}
