//! `HEAD`: stream metadata (PROTOCOL.md 5.5), and `DELETE` (5.4, soft-delete 4.2).

use super::offsets;
use super::reply::{Reply, NO_STORE};
use super::streams::{Expiry, Lookup};
use super::{ExchangeId, SimServer};
use crate::headers::{STREAM_CLOSED, STREAM_EXPIRES_AT, STREAM_NEXT_OFFSET, STREAM_TTL};
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};

impl SimServer {
    /// `HEAD {path}`: 200 with the metadata, 404, or 410 when soft-deleted; never a body. A
    /// `HEAD` does not refresh a sliding TTL (5.1).
    pub(super) fn head(&mut self, id: ExchangeId, req: &http::Request<Bytes>) {
        let reply = match self.live_stream(req.uri().path()) {
            Err(reply) => reply.body(Bytes::new()),
            Ok(sid) => {
                let s = self.store.get(sid);
                let reply = Reply::new(200)
                    .header(CONTENT_TYPE, &s.content_type)
                    .header(STREAM_NEXT_OFFSET, offsets::mint(s.tail).as_str())
                    .flag(STREAM_CLOSED, s.closed)
                    .header(CACHE_CONTROL, NO_STORE);
                match &s.expiry {
                    Expiry::Never => reply,
                    Expiry::Ttl(secs) => reply.header(STREAM_TTL, secs.to_string()),
                    Expiry::At { text, .. } => reply.header(STREAM_EXPIRES_AT, text),
                }
            }
        };
        self.reply(id, reply);
    }

    /// `DELETE {path}`: 204, 404, or 410 when already soft-deleted. A stream that forks still
    /// reference is soft-deleted (410 from now on, path blocked); otherwise it is removed (its
    /// path can be created again). Live reads on it end: long-polls with the status a new
    /// request would get, SSE connections with a reset.
    pub(super) fn delete(&mut self, id: ExchangeId, req: &http::Request<Bytes>) {
        let path = req.uri().path();
        let reply = match self.live_stream(path) {
            Err(reply) => reply,
            Ok(sid) => {
                self.store.delete(sid);
                let status = match self.store.lookup(path) {
                    Lookup::Gone(_) => 410,
                    _ => 404,
                };
                self.stream_vanished(sid, status);
                self.subscriptions_on_vanished(path);
                Reply::new(204)
            }
        };
        self.reply(id, reply);
    }
}
