//! `POST`: append (PROTOCOL.md 5.2), idempotent producers (5.2.1), close (5.3), and JSON-mode
//! message framing (9.1).

use super::content::{json_units, media_type, text_header};
use super::offsets;
use super::producer::{self, ProducerTuple, Verdict};
use super::reply::Reply;
use super::streams::StreamId;
use super::{ExchangeId, SimServer};
use crate::headers::{
    self, PRODUCER_EPOCH, PRODUCER_EXPECTED_SEQ, PRODUCER_RECEIVED_SEQ, PRODUCER_SEQ,
    STREAM_CLOSED, STREAM_NEXT_OFFSET, STREAM_SEQ,
};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use std::time::Instant;

/// The 409 for an append to a closed stream: `Stream-Closed` and the final offset (5.2).
fn closed_conflict(tail: u64) -> Reply {
    Reply::error(409, "stream is closed")
        .flag(STREAM_CLOSED, true)
        .header(STREAM_NEXT_OFFSET, offsets::mint(tail).as_str())
}

/// The response to a producer tuple that is not accepted (5.2.1, "Response Codes").
fn rejection(verdict: Verdict, p: &ProducerTuple) -> Option<Reply> {
    Some(match verdict {
        Verdict::Accept(_) => return None,
        Verdict::Duplicate { last_seq } => Reply::new(204)
            .header(PRODUCER_EPOCH, p.epoch.to_string())
            .header(PRODUCER_SEQ, last_seq.to_string()),
        Verdict::StaleEpoch { current } => {
            Reply::error(403, "stale producer epoch").header(PRODUCER_EPOCH, current.to_string())
        }
        Verdict::NewEpochNotAtZero => Reply::error(400, "a new producer epoch must start at seq 0"),
        Verdict::Gap { expected, received } => Reply::error(409, "producer sequence gap")
            .header(PRODUCER_EXPECTED_SEQ, expected.to_string())
            .header(PRODUCER_RECEIVED_SEQ, received.to_string()),
    })
}

/// The 204 for a retry of the request that closed the stream (5.2.1, "Stream Closure with
/// Idempotent Producers").
fn closing_duplicate(p: &ProducerTuple, tail: u64) -> Reply {
    Reply::new(204)
        .flag(STREAM_CLOSED, true)
        .header(STREAM_NEXT_OFFSET, offsets::mint(tail).as_str())
        .header(PRODUCER_EPOCH, p.epoch.to_string())
        .header(PRODUCER_SEQ, p.seq.to_string())
}

impl SimServer {
    /// `POST {path}`.
    pub(super) fn append(&mut self, id: ExchangeId, req: &http::Request<Bytes>, now: Instant) {
        let reply = match self.live_stream(req.uri().path()) {
            Ok(sid) => {
                // A write reaching the server refreshes a sliding TTL (5.1).
                self.store.get_mut(sid).touch(now);
                let before = self.store.get(sid).tail;
                let reply = self.append_to(sid, req, now);
                if self.store.get(sid).tail != before {
                    // New data: subscriptions link and wake (PROTOCOL.md 6.2, 7).
                    self.subscriptions_on_write(req.uri().path(), now);
                }
                reply
            }
            Err(reply) => reply,
        };
        self.reply(id, reply);
    }

    fn append_to(&mut self, sid: StreamId, req: &http::Request<Bytes>, now: Instant) -> Reply {
        let h = req.headers();
        let producer = match producer::parse(h) {
            Ok(p) => p,
            Err(m) => return Reply::error(400, m),
        };
        let close = headers::flag(h, &STREAM_CLOSED);
        let body = req.body();
        if body.is_empty() {
            if !close {
                return Reply::error(400, "an append needs a body (or Stream-Closed: true)");
            }
            // Close-only: Content-Type is not checked (5.2).
            return self.close_only(sid, producer.as_ref(), now);
        }
        let s = self.store.get(sid);
        // Error precedence (5.2): closed, then content type, then sequence.
        if s.closed {
            return match &producer {
                Some(p) if s.closed_by.as_ref() == Some(p) => closing_duplicate(p, s.tail),
                _ => closed_conflict(s.tail),
            };
        }
        match text_header(h, &CONTENT_TYPE) {
            Err(reply) => return reply,
            Ok(None) | Ok(Some("")) => return Reply::error(400, "Content-Type is required"),
            Ok(Some(ct)) if media_type(ct) != media_type(&s.content_type) => {
                return Reply::error(409, "Content-Type does not match the stream's")
            }
            Ok(Some(_)) => {}
        }
        // Producer validation comes before Stream-Seq so that a retried duplicate carrying
        // both is acknowledged (204) rather than refused as a Stream-Seq regression.
        let verdict = producer.as_ref().map(|p| {
            (
                p,
                producer::validate(s.producers.get(&p.id), p.epoch, p.seq),
            )
        });
        if let Some(reply) = verdict.and_then(|(p, v)| rejection(v, p)) {
            return reply;
        }
        let seq = match text_header(h, &STREAM_SEQ) {
            Ok(seq) => seq,
            Err(reply) => return reply,
        };
        if let (Some(seq), Some(last)) = (seq, &s.stream_seq) {
            // Byte-wise lexicographic, strictly increasing (5.2).
            if seq.as_bytes() <= last.as_bytes() {
                return Reply::error(409, "Stream-Seq regression: seq must increase");
            }
        }
        let units = if s.json {
            match json_units(body) {
                Ok(units) if units.is_empty() => {
                    return Reply::error(400, "an empty JSON array appends nothing")
                }
                Ok(units) => units,
                Err(m) => return Reply::error(400, m),
            }
        } else {
            vec![body.clone()]
        };
        // Everything is valid: store the data and commit the writer state together.
        let s = self.store.get_mut(sid);
        let tail = s.push_append(units);
        if let Some(seq) = seq {
            s.stream_seq = Some(seq.to_owned());
        }
        if let Some((p, Verdict::Accept(state))) = verdict {
            s.producers.insert(p.id.clone(), state);
        }
        if close {
            s.closed = true;
            s.closed_by = producer.clone();
        }
        self.stream_changed(sid, now);
        let reply = Reply::new(if producer.is_some() { 200 } else { 204 })
            .header(STREAM_NEXT_OFFSET, offsets::mint(tail).as_str())
            .flag(STREAM_CLOSED, close);
        match &producer {
            Some(p) => reply
                .header(PRODUCER_EPOCH, p.epoch.to_string())
                .header(PRODUCER_SEQ, p.seq.to_string()),
            None => reply,
        }
    }

    /// `POST` with `Stream-Closed: true` and no body (5.3). Without producer headers it is
    /// idempotent (204 also when already closed). With them it takes part in producer
    /// sequencing; an accepted close answers 204 like any close-only (5.3: no data was
    /// appended, so not 5.2.1's 200 "new data"), and so does the retry of the closing request.
    fn close_only(
        &mut self,
        sid: StreamId,
        producer: Option<&ProducerTuple>,
        now: Instant,
    ) -> Reply {
        let s = self.store.get(sid);
        let tail = s.tail;
        let Some(p) = producer else {
            if !s.closed {
                self.store.get_mut(sid).closed = true;
                self.stream_changed(sid, now);
            }
            return Reply::new(204)
                .flag(STREAM_CLOSED, true)
                .header(STREAM_NEXT_OFFSET, offsets::mint(tail).as_str());
        };
        if s.closed {
            return if s.closed_by.as_ref() == Some(p) {
                closing_duplicate(p, tail)
            } else {
                closed_conflict(tail)
            };
        }
        let verdict = producer::validate(s.producers.get(&p.id), p.epoch, p.seq);
        if let Some(reply) = rejection(verdict, p) {
            return reply;
        }
        let s = self.store.get_mut(sid);
        if let Verdict::Accept(state) = verdict {
            s.producers.insert(p.id.clone(), state);
        }
        s.closed = true;
        s.closed_by = Some(p.clone());
        self.stream_changed(sid, now);
        Reply::new(204)
            .flag(STREAM_CLOSED, true)
            .header(STREAM_NEXT_OFFSET, offsets::mint(tail).as_str())
            .header(PRODUCER_EPOCH, p.epoch.to_string())
            .header(PRODUCER_SEQ, p.seq.to_string())
    }
}
