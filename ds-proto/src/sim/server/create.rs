//! `PUT`: create a stream (PROTOCOL.md 5.1) or a fork (4.2).

use super::clock::{parse_rfc3339, UnixNanos};
use super::content::{json_units, media_type, text_header};
use super::offsets;
use super::reply::Reply;
use super::streams::{CreateConfig, Expiry, ForkBase, ForkRequest, Lookup, Stream, Visibility};
use super::{ExchangeId, SimServer};
use crate::headers::{self, STREAM_CLOSED, STREAM_EXPIRES_AT, STREAM_NEXT_OFFSET, STREAM_TTL};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, LOCATION};
use http::HeaderMap;
use std::collections::BTreeMap;
use std::time::Instant;

/// The content type of a stream created without one (5.1).
pub(super) const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// What a `PUT` asks for.
struct CreateRequest {
    content_type: Option<String>,
    ttl: Option<u64>,
    expires_at: Option<(String, UnixNanos)>,
    closed: bool,
    fork: Option<ForkRequest>,
}

fn parse(h: &HeaderMap) -> Result<CreateRequest, Reply> {
    let content_type = text_header(h, &CONTENT_TYPE)?
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let ttl = text_header(h, &STREAM_TTL)?
        .map(|s| headers::validate_ttl(s).map_err(|m| Reply::error(400, m)))
        .transpose()?;
    let expires_at = text_header(h, &STREAM_EXPIRES_AT)?
        .map(|s| {
            parse_rfc3339(s)
                .map(|t| (s.to_owned(), t))
                .map_err(|m| Reply::error(400, format!("Stream-Expires-At: {m}")))
        })
        .transpose()?;
    // Both at once: 400, the SHOULD of 5.1 (no precedence rule).
    if ttl.is_some() && expires_at.is_some() {
        return Err(Reply::error(
            400,
            "Stream-TTL and Stream-Expires-At cannot be used together",
        ));
    }
    Ok(CreateRequest {
        content_type,
        ttl,
        expires_at,
        closed: headers::flag(h, &STREAM_CLOSED),
        fork: parse_fork(h)?,
    })
}

/// The fork headers (4.2): the offset must be a token this server minted, the sub-offset a
/// non-negative integer, and neither comes without `Stream-Forked-From`.
fn parse_fork(h: &HeaderMap) -> Result<Option<ForkRequest>, Reply> {
    let from = text_header(h, &headers::STREAM_FORKED_FROM)?;
    let offset = text_header(h, &headers::STREAM_FORK_OFFSET)?;
    let sub = text_header(h, &headers::STREAM_FORK_SUB_OFFSET)?;
    let Some(from) = from else {
        if offset.is_some() || sub.is_some() {
            return Err(Reply::error(
                400,
                "Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From",
            ));
        }
        return Ok(None);
    };
    if from.is_empty() {
        return Err(Reply::error(400, "Stream-Forked-From is empty"));
    }
    let offset = offset
        .map(|o| {
            offsets::parse_token(o)
                .map_err(|m| Reply::error(400, format!("Stream-Fork-Offset: {m}")))
        })
        .transpose()?;
    let sub_offset = sub
        .map(|s| {
            headers::parse_u53(s)
                .map_err(|m| Reply::error(400, format!("Stream-Fork-Sub-Offset: {m}")))
        })
        .transpose()?
        .unwrap_or(0);
    Ok(Some(ForkRequest {
        from: from.to_owned(),
        offset,
        sub_offset,
    }))
}

impl SimServer {
    /// `PUT {path}`.
    pub(super) fn create(&mut self, id: ExchangeId, req: &http::Request<Bytes>, now: Instant) {
        let mut reply = match parse(req.headers()) {
            Ok(create) => self.create_parsed(req.uri().path(), create, req.body(), now),
            Err(reply) => reply,
        };
        if reply.status == http::StatusCode::CREATED {
            reply = reply.header(LOCATION, stream_url(req));
        }
        self.reply(id, reply);
    }

    fn create_parsed(
        &mut self,
        path: &str,
        create: CreateRequest,
        body: &Bytes,
        now: Instant,
    ) -> Reply {
        let config = CreateConfig {
            ttl: create.ttl,
            expires_at: create.expires_at.as_ref().map(|(_, t)| *t),
            fork: create.fork.clone(),
        };
        match self.store.lookup(path) {
            // A soft-deleted stream blocks its path (4.2).
            Lookup::Gone(_) => {
                return Reply::error(
                    409,
                    "the stream at this path was deleted and still has forks",
                )
            }
            Lookup::Live(sid) => {
                // Idempotent create: same content type, TTL/expiry, fork and closure status
                // gives 200, anything else 409 (5.1). An initial body is not compared.
                let s = self.store.get(sid);
                let ct_matches = match &create.content_type {
                    Some(ct) => media_type(ct) == media_type(&s.content_type),
                    None if create.fork.is_some() => true,
                    None => media_type(&s.content_type) == DEFAULT_CONTENT_TYPE,
                };
                if ct_matches && s.requested == config && s.closed == create.closed {
                    return created_reply(200, s);
                }
                return Reply::error(409, "stream already exists with a different configuration");
            }
            Lookup::Missing => {}
        }
        let sid = self.store.next_id();
        let (content_type, expiry, base) = match &create.fork {
            None => (
                create
                    .content_type
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
                own_expiry(&create),
                None,
            ),
            Some(fork) => match self.fork_source(fork, &create) {
                Ok(found) => found,
                Err(reply) => return reply,
            },
        };
        let json = crate::headers::is_json_content_type(&content_type);
        let units = if body.is_empty() {
            Vec::new()
        } else if json {
            // An initial JSON body is flattened like an append; `[]` creates an empty stream
            // (9.1.3).
            match json_units(body) {
                Ok(units) => units,
                Err(m) => return Reply::error(400, m),
            }
        } else {
            vec![body.clone()]
        };
        let tail = base.map_or(0, |b: ForkBase| b.position);
        let mut stream = Stream {
            id: sid,
            path: path.to_owned(),
            text: media_type(&content_type).starts_with("text/"),
            content_type,
            json,
            expiry,
            last_access: now,
            base,
            entries: Vec::new(),
            tail,
            closed: create.closed,
            closed_by: None,
            // Forks start with no producer or Stream-Seq state (4.2).
            producers: BTreeMap::new(),
            stream_seq: None,
            refcount: 0,
            visibility: Visibility::Live,
            requested: config,
        };
        if !units.is_empty() {
            stream.push_append(units);
        }
        let reply = created_reply(201, &stream);
        let has_data = !stream.entries.is_empty();
        self.store.insert(stream);
        if has_data {
            // A stream created with data counts as written for subscriptions (6.2, 7).
            self.subscriptions_on_write(path, now);
        }
        reply
    }

    /// Resolves the source of a fork: its content type, the fork's expiry (table of 4.2) and
    /// the divergence point.
    fn fork_source(
        &self,
        fork: &ForkRequest,
        create: &CreateRequest,
    ) -> Result<(String, Expiry, Option<ForkBase>), Reply> {
        let src = match self.store.lookup(&fork.from) {
            Lookup::Live(src) => self.store.get(src),
            Lookup::Gone(_) => {
                return Err(Reply::error(409, "the fork source is soft-deleted"));
            }
            Lookup::Missing => return Err(Reply::error(404, "fork source not found")),
        };
        if let Some(ct) = &create.content_type {
            if media_type(ct) != media_type(&src.content_type) {
                return Err(Reply::error(
                    409,
                    "Content-Type differs from the fork source's",
                ));
            }
        }
        let anchor = fork.offset.unwrap_or(src.tail);
        let position = self
            .store
            .fork_point(src.id, anchor, fork.sub_offset)
            .map_err(|m| Reply::error(400, m))?;
        // The fork's own TTL or expiry wins; without one it inherits the source's TTL value (a
        // fresh window of its own) or its expiry time (4.2).
        let expiry = match own_expiry(create) {
            Expiry::Never => src.expiry.clone(),
            own => own,
        };
        Ok((
            src.content_type.clone(),
            expiry,
            Some(ForkBase {
                source: src.id,
                position,
            }),
        ))
    }
}

fn own_expiry(create: &CreateRequest) -> Expiry {
    match (&create.ttl, &create.expires_at) {
        (Some(ttl), _) => Expiry::Ttl(*ttl),
        (None, Some((text, unix))) => Expiry::At {
            text: text.clone(),
            unix: *unix,
        },
        (None, None) => Expiry::Never,
    }
}

/// The response to a successful create (201) or idempotent re-create (200) (5.1); `create`
/// adds the `Location` of a 201.
fn created_reply(status: u16, s: &Stream) -> Reply {
    Reply::new(status)
        .header(CONTENT_TYPE, &s.content_type)
        .header(STREAM_NEXT_OFFSET, offsets::mint(s.tail).as_str())
        .flag(STREAM_CLOSED, s.closed)
}

/// The `{stream-url}` of a 201's `Location` (5.1): an absolute URL when the request tells
/// where it was sent (an absolute URI, or a valid `Host` header; the scheme is `http` unless
/// the URI names one), otherwise the path alone.
fn stream_url(req: &http::Request<Bytes>) -> String {
    let uri = req.uri();
    let authority = uri.authority().cloned().or_else(|| {
        let host = req.headers().get(HOST)?.to_str().ok()?.trim();
        host.parse::<http::uri::Authority>().ok()
    });
    match authority {
        Some(a) => format!("{}://{a}{}", uri.scheme_str().unwrap_or("http"), uri.path()),
        None => uri.path().to_owned(),
    }
}
