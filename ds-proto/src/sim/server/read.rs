//! `GET`: catch-up reads (PROTOCOL.md 5.6), long-poll (5.7), `offset` sentinels (8), JSON
//! response bodies (9.1.5), ETags and caching (10.1). SSE is in `sse.rs`.

use super::offsets::{self, Requested};
use super::reply::{Reply, CACHEABLE, NO_STORE};
use super::streams::{Chunk, StreamId};
use super::{ExchangeId, SimServer, Waiter};
use crate::headers::{STREAM_CLOSED, STREAM_CURSOR, STREAM_NEXT_OFFSET, STREAM_UP_TO_DATE};
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::HeaderMap;
use percent_encoding::percent_decode_str;
use std::time::Instant;

/// How the read waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Live {
    Off,
    LongPoll,
    Sse,
}

/// The query parameters of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ReadQuery {
    /// `None`: no `offset` parameter.
    pub offset: Option<Requested>,
    pub live: Live,
    /// The client's `cursor` when it is an interval number; other values are ignored.
    pub cursor: Option<u64>,
}

/// Parses the query: one non-empty `offset` (`-1`, `now` or a minted token), `live` of
/// `long-poll` or `sse`; anything malformed is a 400. Unknown parameters are ignored.
pub(super) fn parse_query(query: Option<&str>) -> Result<ReadQuery, String> {
    let mut q = ReadQuery {
        offset: None,
        live: Live::Off,
        cursor: None,
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| format!("query parameter {s:?} is not UTF-8"))
        };
        let (k, v) = (decode(k)?, decode(v)?);
        match k.as_str() {
            "offset" => {
                if q.offset.is_some() {
                    return Err("more than one offset parameter".to_owned());
                }
                if v.is_empty() {
                    return Err("empty offset parameter".to_owned());
                }
                q.offset = Some(offsets::parse_requested(&v)?);
            }
            "live" => {
                q.live = match v.as_str() {
                    "long-poll" => Live::LongPoll,
                    "sse" => Live::Sse,
                    other => return Err(format!("unknown live mode {other:?}")),
                }
            }
            "cursor" => q.cursor = v.parse().ok(),
            _ => {}
        }
    }
    Ok(q)
}

/// The body of a read: the bytes, or for JSON streams a JSON array of the messages (`[]` when
/// there are none, 9.1.5).
pub(super) fn body_of(json: bool, units: &[Bytes]) -> Bytes {
    if !json {
        return match units {
            [] => Bytes::new(),
            [one] => one.clone(),
            _ => units.concat().into(),
        };
    }
    let len: usize = units.iter().map(|u| u.len() + 1).sum();
    let mut out = BytesMut::with_capacity(len + 2);
    out.put_u8(b'[');
    for (i, u) in units.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(u);
    }
    out.put_u8(b']');
    out.freeze()
}

/// A long-poll waiting at the tail.
#[derive(Debug, Clone)]
pub(super) struct LongPoll {
    pub stream: StreamId,
    pub position: u64,
    pub deadline: Instant,
    pub cursor: Option<u64>,
}

/// Whether `If-None-Match` names `etag` (a list, or `*`).
fn etag_matches(h: &HeaderMap, etag: &str) -> bool {
    h.get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == etag || t == "*")
}

impl SimServer {
    /// `GET {path}?offset=..[&live=..][&cursor=..]`.
    pub(super) fn read(&mut self, id: ExchangeId, req: &http::Request<Bytes>, now: Instant) {
        let sid = match self.live_stream(req.uri().path()) {
            Ok(sid) => sid,
            Err(reply) => return self.reply(id, reply),
        };
        let q = match parse_query(req.uri().query()) {
            Ok(q) => q,
            Err(m) => return self.reply(id, Reply::error(400, m)),
        };
        // Reads refresh a sliding TTL when the server begins processing them, live reads
        // included (5.1).
        self.store.get_mut(sid).touch(now);
        match q.live {
            Live::Off => {
                let reply = self.catch_up(sid, &q, req.headers());
                self.reply(id, reply);
            }
            Live::LongPoll => self.long_poll(id, sid, &q, now),
            Live::Sse => self.sse_start(id, sid, &q, now),
        }
    }

    /// The position a read starts at: `-1` is 0 (a fork's inherited data included), `now` the
    /// tail, a token must be within the stream and, for JSON streams, at a message boundary.
    pub(super) fn resolve(&self, sid: StreamId, offset: Requested) -> Result<u64, String> {
        let s = self.store.get(sid);
        match offset {
            Requested::Start => Ok(0),
            Requested::Now => Ok(s.tail),
            Requested::At(p) if p > s.tail => Err("offset is beyond the stream's tail".to_owned()),
            Requested::At(p) if s.json && !self.store.is_message_boundary(sid, p) => {
                Err("offset is not a message boundary".to_owned())
            }
            Requested::At(p) => Ok(p),
        }
    }

    fn catch_up(&mut self, sid: StreamId, q: &ReadQuery, h: &HeaderMap) -> Reply {
        let offset = q.offset.unwrap_or(Requested::Start);
        if offset == Requested::Now {
            // No data, the tail, up to date, not cacheable and no ETag (8, 10.1).
            let s = self.store.get(sid);
            return Reply::new(200)
                .header(CONTENT_TYPE, &s.content_type)
                .header(STREAM_NEXT_OFFSET, offsets::mint(s.tail).as_str())
                .flag(STREAM_UP_TO_DATE, true)
                .flag(STREAM_CLOSED, s.closed)
                .header(CACHE_CONTROL, NO_STORE)
                .body(body_of(s.json, &[]));
        }
        let start = match self.resolve(sid, offset) {
            Ok(p) => p,
            Err(m) => return Reply::error(400, m),
        };
        let chunk = self
            .store
            .read_chunk(sid, start, self.config.max_chunk_bytes);
        self.data_reply(sid, start, chunk, None, Some(h))
    }

    /// A 200 carrying `chunk` (read from `start`): next offset, `Stream-Up-To-Date` when it
    /// reaches the tail, `Stream-Closed` when it also reaches the end of a closed stream
    /// (5.6), an ETag that changes with closure, cache headers, and the cursor of live
    /// responses. With `if_none_match` (catch-up reads) a matching ETag gives 304.
    fn data_reply(
        &self,
        sid: StreamId,
        start: u64,
        chunk: Chunk,
        cursor: Option<u64>,
        if_none_match: Option<&HeaderMap>,
    ) -> Reply {
        let s = self.store.get(sid);
        let at_tail = chunk.end == s.tail;
        let eof = s.closed && at_tail;
        let next = offsets::mint(chunk.end);
        let etag = format!(
            "\"{}:{}:{}{}\"",
            sid.0,
            offsets::mint(start),
            next,
            if eof { ":c" } else { "" }
        );
        let reply = Reply::new(200)
            .header(CONTENT_TYPE, &s.content_type)
            .header(STREAM_NEXT_OFFSET, next.as_str())
            .flag(STREAM_UP_TO_DATE, at_tail)
            .flag(STREAM_CLOSED, eof)
            .header(CACHE_CONTROL, CACHEABLE);
        let reply = match cursor {
            Some(c) => reply.header(STREAM_CURSOR, c.to_string()),
            None => reply,
        };
        if if_none_match.is_some_and(|h| etag_matches(h, &etag)) {
            let mut reply = reply.header(ETAG, &etag);
            reply.status = http::StatusCode::NOT_MODIFIED;
            return reply;
        }
        reply
            .header(ETAG, &etag)
            .body(body_of(s.json, &chunk.units))
    }

    /// The 204 of a long-poll that found no data (5.7): the tail, up to date, the cursor while
    /// the stream is open, `Stream-Closed` when it is closed.
    fn no_content(
        &mut self,
        sid: StreamId,
        position: u64,
        client: Option<u64>,
        now: Instant,
    ) -> Reply {
        let closed = self.store.get(sid).closed;
        let reply = Reply::new(204)
            .header(STREAM_NEXT_OFFSET, offsets::mint(position).as_str())
            .flag(STREAM_UP_TO_DATE, true)
            .flag(STREAM_CLOSED, closed)
            .header(CACHE_CONTROL, NO_STORE);
        if closed {
            return reply;
        }
        let cursor = self.clock.cursor(now, client, &mut self.rng);
        reply.header(STREAM_CURSOR, cursor.to_string())
    }

    /// A long-poll: data at once if there is any past the offset (inherited fork data
    /// included), 204 with `Stream-Closed` at once at the tail of a closed stream, otherwise it
    /// waits for the stream's own appends, its closure or the timeout (5.7, 8 for `now`).
    fn long_poll(&mut self, id: ExchangeId, sid: StreamId, q: &ReadQuery, now: Instant) {
        let Some(offset) = q.offset else {
            return self.reply(id, Reply::error(400, "a long-poll needs an offset"));
        };
        let position = match self.resolve(sid, offset) {
            Ok(p) => p,
            Err(m) => return self.reply(id, Reply::error(400, m)),
        };
        let lp = LongPoll {
            stream: sid,
            position,
            deadline: now + self.config.long_poll_timeout,
            cursor: q.cursor,
        };
        self.long_poll_woken(id, lp, now);
    }

    /// Answers a long-poll if its stream has data past its position or is closed; keeps it
    /// waiting otherwise.
    pub(super) fn long_poll_woken(&mut self, id: ExchangeId, lp: LongPoll, now: Instant) {
        let s = self.store.get(lp.stream);
        if lp.position < s.tail {
            let chunk = self
                .store
                .read_chunk(lp.stream, lp.position, self.config.max_chunk_bytes);
            let cursor = self.clock.cursor(now, lp.cursor, &mut self.rng);
            let reply = self.data_reply(lp.stream, lp.position, chunk, Some(cursor), None);
            self.reply(id, reply);
        } else if s.closed {
            let reply = self.no_content(lp.stream, lp.position, lp.cursor, now);
            self.reply(id, reply);
        } else {
            self.waiters.insert(id, Waiter::LongPoll(lp));
        }
    }

    /// The long-poll timed out without data: 204.
    pub(super) fn long_poll_timed_out(&mut self, id: ExchangeId, lp: LongPoll, now: Instant) {
        let reply = self.no_content(lp.stream, lp.position, lp.cursor, now);
        self.reply(id, reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = parse_query(Some("cursor=12&live=long-poll&offset=-1&x=y")).unwrap();
        assert_eq!(q.offset, Some(Requested::Start));
        assert_eq!(q.live, Live::LongPoll);
        assert_eq!(q.cursor, Some(12));
        let q = parse_query(Some("offset=0000000000000000_0000000000000005&cursor=abc")).unwrap();
        assert_eq!(q.offset, Some(Requested::At(5)));
        assert_eq!(q.cursor, None);
        assert_eq!(parse_query(None).unwrap().offset, None);
        assert_eq!(
            parse_query(Some("offset=now&live=sse")).unwrap().live,
            Live::Sse
        );
        assert_eq!(
            parse_query(Some("offset=%2D1")).unwrap().offset,
            Some(Requested::Start)
        );
        for bad in [
            "offset=",
            "offset=-1&offset=now",
            "offset=12",
            "offset=abc",
            "live=auto",
            "live=",
            "offset=%FF",
        ] {
            assert!(parse_query(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn bodies() {
        let u = [Bytes::from_static(b"{\"a\":1}"), Bytes::from_static(b"2")];
        assert_eq!(&body_of(true, &u)[..], b"[{\"a\":1},2]");
        assert_eq!(&body_of(true, &[])[..], b"[]");
        assert_eq!(&body_of(false, &u)[..], b"{\"a\":1}2");
        assert!(body_of(false, &[]).is_empty());
    }
}
