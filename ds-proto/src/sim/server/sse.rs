//! `GET ...&live=sse`: Server-Sent Events (PROTOCOL.md 5.8, 8 for `offset=now`, 10.2).
//!
//! Each batch of data is one `event: data` followed by one `event: control` carrying
//! `streamNextOffset`, `streamCursor` (while open), `upToDate` (at the tail) and `streamClosed`
//! (at the end of a closed stream, after which the connection ends). Data of `text/*` streams is
//! sent as text, of JSON streams as a JSON array (one message per line), of other streams as
//! base64 in lines of at most 76 characters, announced by `stream-sse-data-encoding: base64`.
//! Payload lines are split on CR, LF and CRLF, each sent as `data:<line>` (5.8: "each line
//! prefixed with `data:`"), with one space after the colon only when the line itself starts
//! with a space (an SSE parser drops one leading space of a field value).

use super::offsets;
use super::read::ReadQuery;
use super::reply::Reply;
use super::streams::StreamId;
use super::{ExchangeId, ExchangeOutput, SimServer, Waiter};
use crate::headers::STREAM_SSE_DATA_ENCODING;
use base64::Engine;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use serde::Serialize;
use std::time::Instant;

/// Base64 text is split into lines of this many characters (5.8 allows several lines).
const BASE64_LINE: usize = 76;

/// How `data` payloads are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    Text,
    Json,
    Base64,
}

/// An open SSE connection.
#[derive(Debug, Clone)]
pub(super) struct SseConn {
    pub stream: StreamId,
    /// The offset the client has been told about (the next data to send starts here).
    pub position: u64,
    encoding: Encoding,
    /// The request's `cursor`, the base of every cursor sent on this connection (10.1).
    client_cursor: Option<u64>,
    /// The last cursor sent: cursors on one connection never go backwards.
    last_cursor: u64,
    next_keepalive: Option<Instant>,
    close_at: Option<Instant>,
}

impl SseConn {
    /// When the connection next needs the server: a keep-alive or its scheduled close.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.next_keepalive, self.close_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Control<'a> {
    stream_next_offset: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_cursor: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    up_to_date: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream_closed: bool,
}

/// Appends `data:<line>` for each line of `text` (split on CRLF, CR or LF). A line that starts
/// with a space gets one more, which the client's SSE parser removes.
fn push_data_lines(out: &mut String, text: &str) {
    // `data:` then the line; a line starting with a space gets one more, which SSE parsing
    // strips (PROTOCOL.md 5.8: "per SSE rules"), so the payload arrives whole.
    let mut push_line = |line: &str| {
        out.push_str("data:");
        if line.starts_with(' ') {
            out.push(' ');
        }
        out.push_str(line);
        out.push('\n');
    };
    let mut rest = text;
    loop {
        let Some(i) = rest.find(['\r', '\n']) else {
            push_line(rest);
            return;
        };
        push_line(&rest[..i]);
        let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[i + skip..];
    }
}

/// An `event: data` carrying `units`. Text that is not UTF-8 is sent lossily (an SSE stream
/// is UTF-8 by definition).
pub(super) fn data_event(encoding: Encoding, units: &[Bytes]) -> String {
    let mut out = String::from("event: data\n");
    match encoding {
        Encoding::Text => {
            let bytes = units.concat();
            push_data_lines(&mut out, &String::from_utf8_lossy(&bytes));
        }
        Encoding::Json => {
            push_data_lines(&mut out, "[");
            for (i, u) in units.iter().enumerate() {
                let mut line = String::from_utf8_lossy(u).into_owned();
                if i + 1 < units.len() {
                    line.push(',');
                }
                push_data_lines(&mut out, &line);
            }
            push_data_lines(&mut out, "]");
        }
        Encoding::Base64 => {
            let text = base64::engine::general_purpose::STANDARD.encode(units.concat());
            if text.is_empty() {
                push_data_lines(&mut out, "");
            }
            for line in text.as_bytes().chunks(BASE64_LINE) {
                push_data_lines(&mut out, std::str::from_utf8(line).unwrap_or_default());
            }
        }
    }
    out.push('\n');
    out
}

/// An `event: control`.
pub(super) fn control_event(
    next: u64,
    cursor: Option<u64>,
    up_to_date: bool,
    closed: bool,
) -> String {
    let next = offsets::mint(next);
    let control = Control {
        stream_next_offset: next.as_str(),
        stream_cursor: cursor.map(|c| c.to_string()),
        up_to_date,
        stream_closed: closed,
    };
    let json = serde_json::to_string(&control).expect("a control event serialises");
    let mut out = String::from("event: control\n");
    push_data_lines(&mut out, &json);
    out.push('\n');
    out
}

impl SimServer {
    /// Starts an SSE read: the head, then everything from the offset, then it stays open.
    pub(super) fn sse_start(&mut self, id: ExchangeId, sid: StreamId, q: &ReadQuery, now: Instant) {
        let Some(offset) = q.offset else {
            return self.reply(id, Reply::error(400, "an SSE read needs an offset"));
        };
        let position = match self.resolve(sid, offset) {
            Ok(p) => p,
            Err(m) => return self.reply(id, Reply::error(400, m)),
        };
        let s = self.store.get(sid);
        let encoding = if s.json {
            Encoding::Json
        } else if s.text {
            Encoding::Text
        } else {
            Encoding::Base64
        };
        let mut head = Reply::new(200)
            .header(CONTENT_TYPE, "text/event-stream")
            .header(CACHE_CONTROL, "no-cache");
        if encoding == Encoding::Base64 {
            head = head.header(STREAM_SSE_DATA_ENCODING, "base64");
        }
        let (parts, _) = head.into_parts();
        self.emit(id, ExchangeOutput::Head(parts));
        let mut conn = SseConn {
            stream: sid,
            position,
            encoding,
            client_cursor: q.cursor,
            last_cursor: 0,
            next_keepalive: None,
            close_at: self.config.sse_close_after.map(|d| now + d),
        };
        if !self.sse_pump(id, &mut conn, now, true) {
            self.waiters.insert(id, Waiter::Sse(conn));
        }
    }

    /// The cursor for the next control event of `conn`.
    fn sse_cursor(&mut self, conn: &mut SseConn, now: Instant) -> u64 {
        let c = self
            .clock
            .cursor(now, conn.client_cursor, &mut self.rng)
            .max(conn.last_cursor);
        conn.last_cursor = c;
        c
    }

    /// Sends what `conn` has not seen yet: a `data` + `control` pair per chunk, the final
    /// control and the end when the stream is closed, and on the first pump a lone control
    /// when there was no data (8: the first control carries the tail). Returns whether the
    /// connection ended.
    pub(super) fn sse_pump(
        &mut self,
        id: ExchangeId,
        conn: &mut SseConn,
        now: Instant,
        first: bool,
    ) -> bool {
        let mut sent = false;
        loop {
            let s = self.store.get(conn.stream);
            let (tail, closed) = (s.tail, s.closed);
            if conn.position >= tail {
                break;
            }
            let chunk =
                self.store
                    .read_chunk(conn.stream, conn.position, self.config.max_chunk_bytes);
            conn.position = chunk.end;
            let at_tail = chunk.end == tail;
            let eof = closed && at_tail;
            let cursor = if eof {
                None
            } else {
                Some(self.sse_cursor(conn, now))
            };
            let mut event = data_event(conn.encoding, &chunk.units);
            event.push_str(&control_event(chunk.end, cursor, at_tail, eof));
            self.emit(id, ExchangeOutput::Body(Bytes::from(event)));
            sent = true;
            if eof {
                self.emit(id, ExchangeOutput::End);
                return true;
            }
        }
        if self.store.get(conn.stream).closed {
            // Closed with nothing left to send: the final control, then the end (5.8).
            let event = control_event(conn.position, None, true, true);
            self.emit(id, ExchangeOutput::Body(Bytes::from(event)));
            self.emit(id, ExchangeOutput::End);
            return true;
        }
        if first && !sent {
            let cursor = self.sse_cursor(conn, now);
            let event = control_event(conn.position, Some(cursor), true, false);
            self.emit(id, ExchangeOutput::Body(Bytes::from(event)));
            sent = true;
        }
        if sent {
            conn.next_keepalive = self.config.sse_keepalive.map(|d| now + d);
        }
        false
    }

    /// A keep-alive or scheduled close of an SSE connection is due.
    pub(super) fn sse_timer(&mut self, id: ExchangeId, mut conn: SseConn, now: Instant) {
        if conn.close_at.is_some_and(|t| t <= now) {
            // The periodic close of 10.2, between events.
            self.emit(id, ExchangeOutput::End);
            return;
        }
        let cursor = self.sse_cursor(&mut conn, now);
        let event = control_event(conn.position, Some(cursor), true, false);
        self.emit(id, ExchangeOutput::Body(Bytes::from(event)));
        conn.next_keepalive = self.config.sse_keepalive.map(|d| now + d);
        self.waiters.insert(id, Waiter::Sse(conn));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_split_on_every_line_end() {
        let mut out = String::new();
        push_data_lines(&mut out, "a\r\nb\rc\nd\n");
        assert_eq!(out, "data:a\ndata:b\ndata:c\ndata:d\ndata:\n");
    }

    #[test]
    fn event_formats() {
        let units = [
            Bytes::from_static(b"{\"k\":\"v\"}"),
            Bytes::from_static(b"{\"k\":\"w\"}"),
        ];
        assert_eq!(
            data_event(Encoding::Json, &units),
            "event: data\ndata:[\ndata:{\"k\":\"v\"},\ndata:{\"k\":\"w\"}\ndata:]\n\n"
        );
        assert_eq!(
            data_event(
                Encoding::Text,
                &[Bytes::from_static(b"hi "), Bytes::from_static(b"there")]
            ),
            "event: data\ndata:hi there\n\n"
        );
        assert_eq!(
            data_event(Encoding::Base64, &[Bytes::from_static(&[1, 2, 3, 4, 5, 6])]),
            "event: data\ndata:AQIDBAUG\n\n"
        );
        let long = data_event(Encoding::Base64, &[Bytes::from(vec![0u8; 60])]);
        assert_eq!(long.lines().filter(|l| l.starts_with("data:")).count(), 2);
        assert_eq!(
            control_event(5, Some(7), true, false),
            "event: control\ndata:{\"streamNextOffset\":\"0000000000000000_0000000000000005\",\"streamCursor\":\"7\",\"upToDate\":true}\n\n"
        );
        assert_eq!(
            control_event(5, None, true, true),
            "event: control\ndata:{\"streamNextOffset\":\"0000000000000000_0000000000000005\",\"upToDate\":true,\"streamClosed\":true}\n\n"
        );
        assert_eq!(
            control_event(3, Some(1), false, false),
            "event: control\ndata:{\"streamNextOffset\":\"0000000000000000_0000000000000003\",\"streamCursor\":\"1\"}\n\n"
        );
    }
}
