//! Fault injection, a test facility of the embedded server: the same control endpoint as the
//! reference server's (`@durable-streams/server` 0.3.7), so tests written against one run
//! against the other.
//!
//! - `POST /_test/inject-error` with a JSON body arms a fault for one request path (replacing
//!   any fault armed for that path): `path` (required), `method` (only requests with that
//!   method trigger it; others pass untouched), `count` (how many requests trigger it, default
//!   1), `probability` (each matching request triggers it with that chance; one that does not
//!   leaves the count alone), and at least one fault: `status` (answer with that status and a
//!   plain-text body, with `Retry-After: <retryAfter>` when given), `delayMs` (plus up to
//!   `jitterMs` of random extra delay) before anything else, `dropConnection` (close the
//!   connection without a response), `truncateBodyBytes` and `corruptBody` (change the body of
//!   a successful non-SSE read), `injectSseEvent` (`{eventType, data}`: an event written first
//!   in an SSE response). Answers 200 `{"ok":true}`, or 400 when `path` or every fault is
//!   missing or the body is not JSON.
//! - `DELETE /_test/inject-error` clears every armed fault.
//!
//! A triggered fault applies in that order: delay, then drop, then status; otherwise the
//! request goes to the model and its response is changed as the fault says. `OPTIONS`
//! requests (CORS preflight) never trigger a fault, as with the reference server.

use super::{async_stream, BoxError, ResponseBody};
use bytes::{Bytes, BytesMut};
use ds_proto::rng::Rng;
use ds_proto::sim::server::ExchangeOutput;
use http_body_util::StreamBody;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// The control endpoint's path.
pub(super) const CONTROL_PATH: &str = "/_test/inject-error";

/// An SSE event to write first in an SSE response.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SseEvent {
    event_type: String,
    data: String,
}

/// A fault as posted to the control endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    path: Option<String>,
    status: Option<u16>,
    count: Option<f64>,
    retry_after: Option<serde_json::Value>,
    method: Option<String>,
    delay_ms: Option<f64>,
    jitter_ms: Option<f64>,
    drop_connection: Option<bool>,
    truncate_body_bytes: Option<usize>,
    corrupt_body: Option<bool>,
    probability: Option<f64>,
    inject_sse_event: Option<SseEvent>,
}

/// An armed fault.
#[derive(Debug, Clone)]
pub(super) struct Fault {
    remaining: f64,
    method: Option<String>,
    probability: Option<f64>,
    status: Option<http::StatusCode>,
    retry_after: Option<String>,
    delay: Duration,
    jitter: Duration,
    drop_connection: bool,
    truncate_body_bytes: Option<usize>,
    corrupt_body: bool,
    inject_sse_event: Option<SseEvent>,
}

/// What a triggered fault does to the request.
pub(super) enum Action {
    /// Close the connection without a response.
    Drop,
    /// Answer with this response instead of the model's.
    Respond(http::Response<ResponseBody>),
    /// Pass the request to the model, then change its response with [`Faults::modify`].
    Modify(Fault),
}

/// The armed faults of one server.
pub(super) struct Faults {
    armed: Mutex<HashMap<String, Fault>>,
    rng: Mutex<Rng>,
}

impl Faults {
    /// No faults; the random generator is seeded from the clock.
    pub(super) fn new() -> Faults {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed);
        Faults {
            armed: Mutex::new(HashMap::new()),
            rng: Mutex::new(Rng::new(seed)),
        }
    }

    fn unit(&self) -> f64 {
        self.rng.lock().map(|mut r| r.unit()).unwrap_or(0.0)
    }

    /// Answers a request to [`CONTROL_PATH`].
    pub(super) fn control(
        &self,
        method: &http::Method,
        body: &[u8],
    ) -> http::Response<ResponseBody> {
        if method == http::Method::DELETE {
            self.armed.lock().map(|mut a| a.clear()).ok();
            return json_ok();
        }
        if method != http::Method::POST {
            return text(405, "Method not allowed");
        }
        let Ok(spec) = serde_json::from_slice::<Spec>(body) else {
            return text(400, "Invalid JSON body");
        };
        let path = match spec.path {
            Some(p) if !p.is_empty() => p,
            _ => return text(400, "Missing required field: path"),
        };
        let has_fault = spec.status.is_some()
            || spec.delay_ms.is_some()
            || spec.drop_connection == Some(true)
            || spec.truncate_body_bytes.is_some()
            || spec.corrupt_body == Some(true)
            || spec.inject_sse_event.is_some();
        if !has_fault {
            return text(
                400,
                "Must specify at least one fault type: status, delayMs, dropConnection, \
                 truncateBodyBytes, corruptBody, or injectSseEvent",
            );
        }
        let status = match spec.status.map(http::StatusCode::from_u16) {
            None => None,
            Some(Ok(s)) => Some(s),
            Some(Err(_)) => return text(400, "Invalid status"),
        };
        let millis = |ms: Option<f64>| Duration::from_secs_f64(ms.unwrap_or(0.0).max(0.0) / 1000.0);
        let fault = Fault {
            remaining: spec.count.unwrap_or(1.0),
            method: spec.method,
            probability: spec.probability,
            status,
            retry_after: spec.retry_after.map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            }),
            delay: millis(spec.delay_ms),
            jitter: millis(spec.jitter_ms),
            drop_connection: spec.drop_connection == Some(true),
            truncate_body_bytes: spec.truncate_body_bytes,
            corrupt_body: spec.corrupt_body == Some(true),
            inject_sse_event: spec.inject_sse_event,
        };
        if let Ok(mut armed) = self.armed.lock() {
            armed.insert(path, fault);
        }
        json_ok()
    }

    /// Takes one trigger of the fault armed for this request, if it matches (path exactly,
    /// method when the fault names one, and the fault's probability).
    fn take(&self, path: &str, method: &http::Method) -> Option<Fault> {
        let mut armed = self.armed.lock().ok()?;
        let fault = armed.get_mut(path)?;
        if let Some(m) = &fault.method {
            if !m.eq_ignore_ascii_case(method.as_str()) {
                return None;
            }
        }
        if let Some(p) = fault.probability {
            if self.unit() > p {
                return None;
            }
        }
        fault.remaining -= 1.0;
        let taken = fault.clone();
        if fault.remaining <= 0.0 {
            armed.remove(path);
        }
        Some(taken)
    }

    /// What a fault armed for this request does, after its delay; `None` when none triggers.
    pub(super) async fn trigger(&self, path: &str, method: &http::Method) -> Option<Action> {
        let fault = self.take(path, method)?;
        let delay = fault.delay + fault.jitter.mul_f64(self.unit());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if fault.drop_connection {
            return Some(Action::Drop);
        }
        if let Some(status) = fault.status {
            let mut r = text(status.as_u16(), "Injected error for testing");
            *r.status_mut() = status;
            if let Some(v) = fault
                .retry_after
                .as_deref()
                .and_then(|v| http::HeaderValue::from_str(v).ok())
            {
                r.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
            return Some(Action::Respond(r));
        }
        Some(Action::Modify(fault))
    }

    /// Changes the model's response as the fault says: an SSE response gets the event first;
    /// the body of a successful non-SSE `GET` is truncated and/or corrupted.
    pub(super) async fn modify(
        &self,
        fault: &Fault,
        method: &http::Method,
        head: http::response::Parts,
        mut rx: mpsc::UnboundedReceiver<ExchangeOutput>,
    ) -> Result<http::Response<ResponseBody>, BoxError> {
        let sse = head
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(ds_proto::headers::is_event_stream_content_type);
        if sse {
            if let Some(e) = &fault.inject_sse_event {
                let (tx, first) = mpsc::unbounded_channel();
                let event = format!("event: {}\ndata: {}\n\n", e.event_type, e.data);
                let _ = tx.send(ExchangeOutput::Body(Bytes::from(event)));
                let body = futures_chain(first, rx);
                return Ok(http::Response::from_parts(head, StreamBody::new(body)));
            }
        } else if method == http::Method::GET
            && head.status == http::StatusCode::OK
            && (fault.truncate_body_bytes.is_some() || fault.corrupt_body)
        {
            let mut body = BytesMut::new();
            loop {
                match rx.recv().await {
                    Some(ExchangeOutput::Body(b)) => body.extend_from_slice(&b),
                    Some(ExchangeOutput::End) | None => break,
                    Some(ExchangeOutput::Reset) => {
                        return Err("connection reset by the model".into())
                    }
                    Some(ExchangeOutput::Head(_)) => {
                        return Err("the model sent a second response head".into())
                    }
                }
            }
            if let Some(n) = fault.truncate_body_bytes {
                body.truncate(n);
            }
            if fault.corrupt_body && !body.is_empty() {
                self.corrupt(&mut body);
            }
            let mut head = head;
            head.headers.remove(http::header::CONTENT_LENGTH);
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = tx.send(ExchangeOutput::Body(body.freeze()));
            let _ = tx.send(ExchangeOutput::End);
            return Ok(http::Response::from_parts(
                head,
                StreamBody::new(async_stream(rx)),
            ));
        }
        Ok(http::Response::from_parts(
            head,
            StreamBody::new(async_stream(rx)),
        ))
    }

    /// `X` then `Y` at the start, then `Z` at a tenth of the positions (at least one), chosen
    /// at random.
    fn corrupt(&self, body: &mut [u8]) {
        body[0] = b'X';
        if body.len() > 1 {
            body[1] = b'Y';
        }
        let n = (body.len() / 10).max(1);
        for _ in 0..n {
            let pos = ((self.unit() * body.len() as f64) as usize).min(body.len() - 1);
            body[pos] = b'Z';
        }
    }
}

/// The frames of `first` (until it is empty), then those of `rest`.
fn futures_chain(
    mut first: mpsc::UnboundedReceiver<ExchangeOutput>,
    rest: mpsc::UnboundedReceiver<ExchangeOutput>,
) -> std::pin::Pin<
    Box<dyn futures_core::Stream<Item = Result<hyper::body::Frame<Bytes>, BoxError>> + Send>,
> {
    // Forward the queued frames of `first` ahead of `rest` through one channel.
    let (tx, rx) = mpsc::unbounded_channel();
    while let Ok(out) = first.try_recv() {
        let _ = tx.send(out);
    }
    let mut rest = rest;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                out = rest.recv() => {
                    let Some(out) = out else { break };
                    let end = matches!(out, ExchangeOutput::End | ExchangeOutput::Reset);
                    if tx.send(out).is_err() || end {
                        break;
                    }
                }
                () = tx.closed() => break,
            }
        }
    });
    async_stream(rx)
}

fn json_ok() -> http::Response<ResponseBody> {
    let mut r = text(200, r#"{"ok":true}"#);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn text(status: u16, message: &'static str) -> http::Response<ResponseBody> {
    let mut r = super::plain(status, message);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}
