//! The control routes under `{stream root}/__ds/` (PROTOCOL.md 6, 7.1, 7.2).

use super::config::{self, normalize_path, Kind};
use super::keys::TokenError;
use super::wake::StreamInfo;
use super::{Link, Subscription, WebhookState};
use crate::sim::server::reply::Reply;
use crate::sim::server::{offsets, ExchangeId, SimServer};
use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST};
use http::Method;
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// An error reply: `{"error":{"code":..,"message":..}}` (FIELD-NOTES, 7.1).
fn error(status: u16, code: &str, message: impl Into<String>) -> Reply {
    json_reply(
        status,
        &json!({ "error": { "code": code, "message": message.into() } }),
    )
}

fn json_reply(status: u16, value: &Value) -> Reply {
    Reply::new(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Bytes::from(value.to_string()))
}

fn invalid(message: impl Into<String>) -> Reply {
    error(400, "INVALID_REQUEST", message)
}

fn not_found() -> Reply {
    error(404, "SUBSCRIPTION_NOT_FOUND", "subscription not found")
}

fn fenced(message: &str) -> Reply {
    error(409, "FENCED", message)
}

fn invalid_offset(message: impl Into<String>) -> Reply {
    error(409, "INVALID_OFFSET", message)
}

fn method_not_allowed(allow: &str) -> Reply {
    error(405, "METHOD_NOT_ALLOWED", "method not allowed").header(ALLOW, allow)
}

/// Decodes a percent-encoded path part; `None` when it is not UTF-8.
fn decode(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// What a callback, ack or release says (7.1, 7.2).
struct WakeRequest {
    wake_id: Option<String>,
    generation: Option<u64>,
    acks: Vec<(String, String)>,
    done: bool,
}

/// Parses a callback, ack or release body. An empty body is `{}` (it then fails the fencing
/// check, having no `wake_id`). Malformed JSON or fields of the wrong type: 400.
fn parse_wake_request(body: &[u8]) -> Result<WakeRequest, Reply> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not JSON: {e}")))?
    };
    let Value::Object(obj) = value else {
        return Err(invalid("the body must be a JSON object"));
    };
    let wake_id = match obj.get("wake_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid("wake_id must be a string")),
    };
    let generation = match obj.get("generation") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| invalid("generation must be a non-negative integer"))?,
        ),
    };
    let done = match obj.get("done") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("done must be a boolean")),
    };
    let acks = match obj.get("acks") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|a| {
                // `stream` as in 7.1; `path` as the reference server also accepts.
                let stream = a
                    .get("stream")
                    .or_else(|| a.get("path"))
                    .and_then(Value::as_str);
                let offset = a.get("offset").and_then(Value::as_str);
                match (stream, offset) {
                    (Some(s), Some(o)) => Ok((s.to_owned(), o.to_owned())),
                    _ => Err(invalid(
                        "each ack must be {\"stream\": string, \"offset\": string}",
                    )),
                }
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("acks must be an array")),
    };
    Ok(WakeRequest {
        wake_id,
        generation,
        acks,
        done,
    })
}

/// The bearer token of a request (12.9: tokens travel in `Authorization`).
fn bearer(req: &http::Request<Bytes>) -> Option<&str> {
    let v = req.headers().get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// `scheme://authority` of the request, for absolute URLs in bodies: the configured public
/// URL, else the request's absolute URI, else its `Host` header (scheme `http`); empty when
/// none is known (URLs are then paths).
fn origin_of(public_url: Option<&str>, req: &http::Request<Bytes>) -> String {
    if let Some(u) = public_url {
        return u.trim_end_matches('/').to_owned();
    }
    let uri = req.uri();
    let authority = uri.authority().cloned().or_else(|| {
        let host = req.headers().get(HOST)?.to_str().ok()?.trim();
        host.parse::<http::uri::Authority>().ok()
    });
    match authority {
        Some(a) => format!("{}://{a}", uri.scheme_str().unwrap_or("http")),
        None => String::new(),
    }
}

impl SimServer {
    /// Answers the request when its path is under `{stream root}/__ds` (6: routed before
    /// stream operations; every such path is reserved, so unknown ones are 404) and returns
    /// whether it did.
    pub(in crate::sim::server) fn subscription_route(
        &mut self,
        id: ExchangeId,
        req: &http::Request<Bytes>,
        now: Instant,
    ) -> bool {
        let root = self.config.stream_root.trim_end_matches('/').to_owned();
        let path = req.uri().path();
        let Some(rest) = path
            .strip_prefix(root.as_str())
            .and_then(|r| r.strip_prefix("/__ds"))
        else {
            return false;
        };
        if !(rest.is_empty() || rest.starts_with('/')) {
            return false;
        }
        let rest = rest.trim_start_matches('/').to_owned();
        let reply = self.control(req, &rest, now);
        self.reply(id, reply);
        true
    }

    fn control(&mut self, req: &http::Request<Bytes>, rest: &str, now: Instant) -> Reply {
        let segs: Vec<&str> = rest.split('/').collect();
        let method = req.method();
        if segs == ["jwks.json"] {
            if method != Method::GET {
                return method_not_allowed("GET");
            }
            // 6.5.
            return json_reply(200, &self.subs.keys.jwks())
                .header(CONTENT_TYPE, "application/jwk-set+json")
                .header(CACHE_CONTROL, "public, max-age=300");
        }
        let ["subscriptions", raw_id, tail @ ..] = segs.as_slice() else {
            return error(404, "NOT_FOUND", "no such control route");
        };
        let Some(sub_id) = decode(raw_id).filter(|s| !s.is_empty()) else {
            return invalid("the subscription id is not a UTF-8 path segment");
        };
        match (tail, method) {
            ([], &Method::PUT) => self.put_subscription(&sub_id, req, now),
            ([], &Method::GET) => match self.subs.subs.get(&sub_id) {
                Some(sub) => json_reply(200, &self.describe(sub)),
                None => not_found(),
            },
            ([], &Method::DELETE) => {
                self.delete_subscription(&sub_id);
                Reply::new(204)
            }
            ([], _) => method_not_allowed("GET, PUT, DELETE"),
            (["streams"], &Method::POST) => self.add_streams(&sub_id, req.body()),
            (["streams"], _) => method_not_allowed("POST"),
            (["streams", path @ ..], &Method::DELETE) => {
                match decode(&path.join("/")).and_then(|p| normalize_path(&p)) {
                    Some(p) => self.remove_stream(&sub_id, &p),
                    None => invalid("the stream path is not a stream path"),
                }
            }
            (["streams", ..], _) => method_not_allowed("DELETE"),
            ([action @ ("callback" | "claim" | "ack" | "release")], &Method::POST) => match *action
            {
                "claim" => self.claim(&sub_id, req.body(), now),
                action => self.wake_action(&sub_id, action, req, now),
            },
            (["callback" | "claim" | "ack" | "release"], _) => method_not_allowed("POST"),
            _ => error(404, "NOT_FOUND", "no such control route"),
        }
    }

    /// `PUT subscriptions/:id` (6.2): 201 created (with eager backfill), 200 re-confirmed
    /// with an identical normalized configuration, 409 otherwise.
    fn put_subscription(
        &mut self,
        sub_id: &str,
        req: &http::Request<Bytes>,
        now: Instant,
    ) -> Reply {
        let config = match config::parse(req.body()) {
            Ok(c) => c,
            Err(config::ConfigError::Invalid(m)) => return invalid(m),
            Err(config::ConfigError::UrlRejected(m)) => {
                return error(400, "WEBHOOK_URL_REJECTED", m)
            }
        };
        if let Some(existing) = self.subs.subs.get(sub_id) {
            if existing.config == config {
                return json_reply(200, &self.describe(existing));
            }
            return error(
                409,
                "SUBSCRIPTION_ALREADY_EXISTS",
                "a subscription with this id exists with a different configuration",
            );
        }
        let mut links = BTreeMap::new();
        // Explicit streams and backfilled pattern matches start at their tail (6.2, 6.4): no
        // replay of history. A stream that does not exist yet has its tail at position 0 (as
        // on the reference server), so that everything it will hold is pending.
        for rel in &config.streams {
            let acked = Some(self.tail_of(rel));
            links.insert(
                rel.clone(),
                Link {
                    explicit: true,
                    acked,
                },
            );
        }
        if let Some(pattern) = &config.pattern {
            let root_matches: Vec<(String, u64)> = self
                .store
                .live_paths()
                .filter_map(|p| {
                    let rel = self.relative_path(p)?;
                    let own_wake_stream = config.wake_stream.as_deref() == Some(rel);
                    (super::glob::matches(pattern, rel) && !own_wake_stream)
                        .then(|| (rel.to_owned(), self.tail_of(rel)))
                })
                .collect();
            for (rel, tail) in root_matches {
                links.entry(rel).or_insert(Link {
                    explicit: false,
                    acked: Some(tail),
                });
            }
        }
        self.subs.next_incarnation += 1;
        let sub = Subscription {
            id: sub_id.to_owned(),
            incarnation: self.subs.next_incarnation,
            config,
            created_at: super::rfc3339(self.clock.unix_nanos(now)),
            origin: origin_of(self.config.public_url.as_deref(), req),
            links,
            generation: 0,
            wake: None,
            holder: None,
            token: None,
            lease_deadline: None,
            webhook: WebhookState::default(),
        };
        let reply = json_reply(201, &self.describe(&sub));
        self.subs.subs.insert(sub_id.to_owned(), sub);
        reply
    }

    /// `DELETE subscriptions/:id` (6.3): always 204. The subscription is gone: its later
    /// callbacks, acks and releases get 404 and advance nothing, its queued webhook deliveries
    /// are dropped and answers to sent ones are ignored. A subscription created again under
    /// the id is a new one (tokens of the old one are invalid for it).
    fn delete_subscription(&mut self, sub_id: &str) {
        if self.subs.subs.remove(sub_id).is_some() {
            let stale: Vec<_> = self
                .subs
                .in_flight
                .iter()
                .filter(|(_, r)| r.sub == sub_id)
                .map(|(id, _)| *id)
                .collect();
            for id in stale {
                self.subs.in_flight.remove(&id);
            }
            self.subs
                .outbound
                .retain(|d| self.subs.in_flight.contains_key(&d.id));
        }
    }

    /// The body of `GET subscriptions/:id` (6.3) and of a `PUT`'s answer.
    fn describe(&self, sub: &Subscription) -> Value {
        let streams: Vec<Value> = self
            .stream_infos(sub)
            .iter()
            .map(|i: &StreamInfo| {
                json!({
                    "path": i.path,
                    "link_type": i.link_type(),
                    "acked_offset": i.acked_offset(),
                })
            })
            .collect();
        let webhook = sub.config.webhook_url.as_ref().map(|url| {
            json!({
                "url": url,
                // 6.3: signing metadata; no shared secret ever.
                "signing": {
                    "alg": "ed25519",
                    "kid": self.subs.keys.kid(),
                    "jwks_url": self.jwks_url(&sub.origin),
                },
            })
        });
        json!({
            "id": sub.id,
            "subscription_id": sub.id,
            "type": sub.config.kind.as_str(),
            "pattern": sub.config.pattern,
            "streams": streams,
            "webhook": webhook,
            "wake_stream": sub.config.wake_stream,
            "lease_ttl_ms": sub.config.lease_ttl_ms,
            "created_at": sub.created_at,
            "status": if Self::is_failing(sub) { "failed" } else { "active" },
            "description": sub.config.description,
        })
    }

    /// `POST subscriptions/:id/streams` (6.4): explicit links at the current tail; an
    /// already-linked stream keeps its cursor and becomes explicit.
    fn add_streams(&mut self, sub_id: &str, body: &Bytes) -> Reply {
        let streams = match serde_json::from_slice::<Value>(body) {
            Ok(v) => match v.get("streams").map(config::parse_streams) {
                Some(Ok(s)) if !s.is_empty() => s,
                Some(Err(m)) => return invalid(m),
                _ => return invalid("streams must be a non-empty array of stream paths"),
            },
            Err(e) => return invalid(format!("the body is not JSON: {e}")),
        };
        if !self.subs.subs.contains_key(sub_id) {
            return not_found();
        }
        let tails: Vec<(String, Option<u64>)> = streams
            .into_iter()
            .map(|rel| {
                let tail = Some(self.tail_of(&rel));
                (rel, tail)
            })
            .collect();
        let sub = self.subs.subs.get_mut(sub_id).expect("checked above");
        for (rel, tail) in tails {
            sub.links
                .entry(rel)
                .and_modify(|l| l.explicit = true)
                .or_insert(Link {
                    explicit: true,
                    acked: tail,
                });
        }
        Reply::new(204)
    }

    /// `DELETE subscriptions/:id/streams/:path` (6.4): removes only the explicit link; a
    /// stream the pattern matches stays linked (as a glob link, cursor kept). Idempotent.
    fn remove_stream(&mut self, sub_id: &str, rel: &str) -> Reply {
        let Some(sub) = self.subs.subs.get_mut(sub_id) else {
            return not_found();
        };
        let globbed = sub
            .config
            .pattern
            .as_deref()
            .is_some_and(|p| super::glob::matches(p, rel));
        if let Some(link) = sub.links.get_mut(rel) {
            if globbed {
                link.explicit = false;
            } else {
                sub.links.remove(rel);
            }
        }
        Reply::new(204)
    }

    /// `POST subscriptions/:id/claim` (7.2).
    fn claim(&mut self, sub_id: &str, body: &Bytes, now: Instant) -> Reply {
        let worker = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("worker").and_then(Value::as_str).map(str::to_owned))
            .filter(|w| !w.is_empty());
        let Some(worker) = worker else {
            return invalid("the body must be {\"worker\": non-empty string}");
        };
        let Some(sub) = self.subs.subs.get(sub_id) else {
            return not_found();
        };
        if sub.config.kind != Kind::PullWake {
            return invalid("claims are for pull-wake subscriptions");
        }
        if let Some(holder) = &sub.holder {
            return json_reply(
                409,
                &json!({ "error": {
                    "code": "ALREADY_CLAIMED",
                    "message": "another worker holds the lease",
                    "current_holder": holder,
                    "generation": sub.generation,
                }}),
            );
        }
        if sub.wake.is_none() {
            // A claim creates the wake when none is pending (FIELD-NOTES), which writes a wake
            // event like any new wake.
            match self.first_pending(sub) {
                Some(trigger) => self.create_wake(sub_id, &trigger, now),
                None => {
                    return error(
                        409,
                        "NO_PENDING_WORK",
                        "the subscription has no pending work",
                    )
                }
            }
        }
        let sub = self.subs.subs.get(sub_id).expect("checked above");
        let token = self.mint_token(sub, now);
        let lease = Duration::from_millis(sub.config.lease_ttl_ms);
        let sub = self.subs.subs.get_mut(sub_id).expect("checked above");
        sub.holder = Some(worker);
        sub.token = Some(token.clone());
        // 7.3: a pull-wake lease starts with a successful claim.
        sub.lease_deadline = Some(now + lease);
        let sub = &self.subs.subs[sub_id];
        let infos: Vec<Value> = self
            .stream_infos(sub)
            .iter()
            .map(StreamInfo::to_json)
            .collect();
        json_reply(
            200,
            &json!({
                "wake_id": sub.wake.as_ref().map(|w| w.id.clone()),
                "generation": sub.generation,
                "token": token,
                "streams": infos,
                "lease_ttl_ms": sub.config.lease_ttl_ms,
            }),
        )
    }

    /// `POST subscriptions/:id/{callback,ack,release}` (7.1, 7.2, 7.3).
    fn wake_action(
        &mut self,
        sub_id: &str,
        action: &str,
        req: &http::Request<Bytes>,
        now: Instant,
    ) -> Reply {
        let Some(sub) = self.subs.subs.get(sub_id) else {
            return not_found();
        };
        // Acks and releases belong to pull-wake claims; callbacks to webhook wakes, but the
        // reference server takes them for either type, and so does this one.
        if action != "callback" && sub.config.kind != Kind::PullWake {
            return invalid(format!("{action} is for pull-wake subscriptions"));
        }
        let Some(token) = bearer(req) else {
            return error(
                401,
                "TOKEN_INVALID",
                "missing or malformed Authorization header",
            );
        };
        let request = match parse_wake_request(req.body()) {
            Ok(r) => r,
            Err(reply) => return reply,
        };
        if let Err(reply) = self.check_wake(sub, token, &request, now) {
            return reply;
        }
        if action == "release" {
            // 7.2: no acks; the next wake if work is left.
            self.end_wake_and_rewake(sub_id, now);
            return Reply::new(204);
        }
        if let Err(reply) = self.apply_acks(sub_id, &request.acks) {
            return reply;
        }
        let next_wake = if request.done {
            self.end_wake_and_rewake(sub_id, now)
        } else {
            // 7.2, 7.3: a valid call without `done` is a heartbeat that extends the lease.
            let sub = self.subs.subs.get_mut(sub_id).expect("checked above");
            sub.lease_deadline = Some(now + Duration::from_millis(sub.config.lease_ttl_ms));
            false
        };
        json_reply(200, &json!({ "ok": true, "next_wake": next_wake }))
    }

    /// 7.3: the token must be valid for this subscription (else 401), and its generation, the
    /// request's generation and wake id must be the current ones, and the token the one
    /// issued for the current wake or claim (else 409 `FENCED`).
    fn check_wake(
        &self,
        sub: &Subscription,
        token: &str,
        request: &WakeRequest,
        now: Instant,
    ) -> Result<(), Reply> {
        let claims = match self.subs.keys.verify_token(token, self.unix_secs(now)) {
            Ok(c) => c,
            Err(TokenError::Expired) => return Err(error(401, "TOKEN_EXPIRED", "token expired")),
            Err(TokenError::Invalid) => return Err(error(401, "TOKEN_INVALID", "token invalid")),
        };
        if claims.sub != sub.id || claims.incarnation != sub.incarnation {
            return Err(error(
                401,
                "TOKEN_INVALID",
                "the token is not valid for this subscription",
            ));
        }
        let Some(wake) = &sub.wake else {
            return Err(fenced("no wake is in flight"));
        };
        if claims.generation != sub.generation || request.generation != Some(sub.generation) {
            return Err(fenced("stale generation"));
        }
        if request.wake_id.as_deref() != Some(wake.id.as_str()) || claims.wake_id != wake.id {
            return Err(fenced("stale wake_id"));
        }
        if sub.token.as_deref() != Some(token) {
            return Err(fenced("the token is not the current one"));
        }
        Ok(())
    }

    /// Validates every ack, then applies them all, or none (FIELD-NOTES: `INVALID_OFFSET` for
    /// an unlinked stream, `-1`, a regressing cursor, an offset past the current tail; this
    /// server also refuses offsets it did not mint). Acking the cursor's own value is allowed.
    fn apply_acks(&mut self, sub_id: &str, acks: &[(String, String)]) -> Result<(), Reply> {
        let sub = &self.subs.subs[sub_id];
        let mut updates = Vec::with_capacity(acks.len());
        for (stream, offset) in acks {
            let Some(rel) = normalize_path(stream) else {
                return Err(invalid_offset(format!("{stream:?} is not a stream path")));
            };
            let Some(link) = sub.links.get(&rel) else {
                return Err(invalid_offset(format!(
                    "{rel:?} is not linked to this subscription"
                )));
            };
            if offset == "-1" {
                return Err(invalid_offset("an ack offset cannot be -1"));
            }
            let pos = offsets::parse_token(offset).map_err(invalid_offset)?;
            if link.acked.is_some_and(|a| pos < a) {
                return Err(invalid_offset(format!(
                    "{offset} is behind the acked offset of {rel:?}"
                )));
            }
            if pos > self.tail_of(&rel) {
                return Err(invalid_offset(format!(
                    "{offset} is past the tail of {rel:?}"
                )));
            }
            updates.push((rel, pos));
        }
        let sub = self
            .subs
            .subs
            .get_mut(sub_id)
            .expect("checked by the caller");
        for (rel, pos) in updates {
            if let Some(link) = sub.links.get_mut(&rel) {
                link.acked = Some(link.acked.map_or(pos, |a| a.max(pos)));
            }
        }
        Ok(())
    }
}
