//! Tracing (feature `tracing`, off by default): one `ds.request` span per HTTP exchange, an
//! event per retry of a one-shot operation, and an event per state change of a reader or
//! writer. Without the feature every function here is an empty inline stub, so users who do
//! not want tracing pay nothing.
//!
//! What is recorded: the operation (`create`, `append`, `close`, `head`, `delete`, `read`), the
//! read mode (`catch-up`, `long-poll`, `sse`), the HTTP method, the stream **path** (never the
//! query: parameters may carry tokens), the attempt (one-shot operations) or the machine's
//! request id, the status, bytes sent and received, the latency, and the error kind. Never
//! recorded: header values, query strings, request or response bodies, payloads.
//!
//! Levels: `ds.request` spans and their `request finished` events are `DEBUG`; retries and
//! state changes (fallback to long-poll, epoch claimed, EOF, close) are `INFO`; terminal
//! failures are `WARN`; data events are `TRACE`.

#[cfg(feature = "tracing")]
mod imp {
    use bytes::Bytes;
    use ds_proto::producer::ProducerEvent;
    use ds_proto::reader::ReaderEvent;
    use ds_proto::{Error, Operation, RequestId, TransportError};
    use std::time::{Duration, Instant};
    use tracing::field::Empty;

    /// The span of one HTTP exchange and what is counted while it runs.
    #[derive(Debug)]
    pub(crate) struct RequestTrace {
        span: tracing::Span,
        started: Instant,
        received: u64,
    }

    /// The protocol operation and read mode of a request, from its method, headers and query.
    fn describe(request: &http::Request<Bytes>) -> (&'static str, Option<&'static str>) {
        use http::Method;
        let m = request.method();
        if m == Method::GET {
            let live = request
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("live="));
            let mode = match live {
                Some("sse") => "sse",
                Some("long-poll") => "long-poll",
                Some(_) => "live",
                None => "catch-up",
            };
            ("read", Some(mode))
        } else if m == Method::PUT {
            ("create", None)
        } else if m == Method::HEAD {
            ("head", None)
        } else if m == Method::DELETE {
            ("delete", None)
        } else if m == Method::POST {
            let closing =
                ds_proto::headers::flag(request.headers(), &ds_proto::headers::STREAM_CLOSED);
            if closing && request.body().is_empty() {
                ("close", None)
            } else {
                ("append", None)
            }
        } else {
            ("other", None)
        }
    }

    impl RequestTrace {
        /// Opens the span of an exchange: `attempt` for one-shot operations (1 for the first),
        /// `id` for a machine's exchanges.
        pub(crate) fn start(
            request: &http::Request<Bytes>,
            attempt: Option<u32>,
            id: Option<RequestId>,
        ) -> Self {
            let (op, mode) = describe(request);
            let producer_seq = request
                .headers()
                .get(&ds_proto::headers::PRODUCER_SEQ)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let span = tracing::debug_span!(
                "ds.request",
                op,
                mode,
                method = %request.method(),
                path = request.uri().path(),
                attempt,
                id = id.map(|i| i.0),
                producer_seq,
                bytes_sent = request.body().len(),
                status = Empty,
                bytes_received = Empty,
                latency_ms = Empty,
                error = Empty,
            );
            RequestTrace {
                span,
                started: Instant::now(),
                received: 0,
            }
        }

        /// The span, to run the exchange in (see [`enter`](super::enter)).
        pub(crate) fn handle(&self) -> tracing::Span {
            self.span.clone()
        }

        /// The response head arrived.
        pub(crate) fn head(&self, status: http::StatusCode) {
            self.span.record("status", status.as_u16());
        }

        /// Body bytes arrived.
        pub(crate) fn body(&mut self, n: usize) {
            self.received = self.received.saturating_add(n as u64);
        }

        /// The exchange ended: cleanly (`None`), failed, or was abandoned by its owner.
        pub(crate) fn finish(self, error: Option<&TransportError>) {
            let latency = self.started.elapsed();
            let latency_ms = latency.as_secs_f64() * 1000.0;
            self.span.record("bytes_received", self.received);
            self.span.record("latency_ms", latency_ms);
            match error {
                None => tracing::debug!(
                    parent: &self.span,
                    bytes_received = self.received,
                    latency_ms,
                    "request finished"
                ),
                Some(e) => {
                    self.span.record("error", tracing::field::display(e.kind));
                    tracing::debug!(
                        parent: &self.span,
                        error = %e.kind,
                        bytes_received = self.received,
                        latency_ms,
                        "request failed"
                    );
                }
            }
        }
    }

    /// A one-shot operation will be retried after `delay`.
    pub(crate) fn retry(op: Operation, url: &str, attempt: u32, delay: Duration, error: &Error) {
        tracing::info!(
            op = op.as_str(),
            path = ds_proto::url::path_of(url),
            attempt,
            delay_ms = delay.as_millis() as u64,
            error = %error.kind,
            "retrying"
        );
    }

    /// A one-shot operation failed for good.
    pub(crate) fn failed(op: Operation, url: &str, attempts: u32, error: &Error) {
        tracing::warn!(
            op = op.as_str(),
            path = ds_proto::url::path_of(url),
            attempts,
            error = %error.kind,
            "operation failed"
        );
    }

    /// A reader handed out `event`.
    pub(crate) fn reader_event(url: &str, event: &ReaderEvent) {
        let path = ds_proto::url::path_of(url);
        match event {
            ReaderEvent::Data(c) => tracing::trace!(
                path,
                bytes = c.data.len(),
                next_offset = c.next_offset.as_str(),
                up_to_date = c.up_to_date,
                "reader data"
            ),
            ReaderEvent::UpToDate { offset } => {
                tracing::debug!(path, offset = offset.as_str(), "reader up to date")
            }
            ReaderEvent::Closed { offset } => {
                tracing::info!(path, offset = offset.as_str(), "reader reached EOF")
            }
            ReaderEvent::Retrying {
                error,
                attempt,
                delay,
            } => tracing::info!(
                path,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %error.kind,
                "reader retrying"
            ),
            ReaderEvent::FellBackToLongPoll => {
                tracing::info!(path, "reader fell back from SSE to long-poll")
            }
            ReaderEvent::Failed(e) => tracing::warn!(path, error = %e.kind, "reader failed"),
            ReaderEvent::Done => tracing::debug!(path, "reader caught up and done"),
            _ => tracing::debug!(path, "reader event"),
        }
    }

    /// A writer's producer reported `event`.
    pub(crate) fn producer_event(url: &str, event: &ProducerEvent) {
        let path = ds_proto::url::path_of(url);
        match event {
            ProducerEvent::Acked {
                first,
                last,
                duplicate,
                ..
            } => tracing::debug!(
                path,
                first = first.0,
                last = last.0,
                duplicate,
                "appends acknowledged"
            ),
            ProducerEvent::Failed {
                first,
                last,
                reason,
                ..
            } => tracing::warn!(
                path,
                first = first.0,
                last = last.0,
                indeterminate = reason.is_indeterminate(),
                error = %reason.kind(),
                "appends failed"
            ),
            ProducerEvent::EpochClaimed { epoch } => {
                tracing::info!(path, epoch, "writer claimed a new epoch")
            }
            ProducerEvent::Writable => tracing::debug!(path, "writer has room again"),
            ProducerEvent::Closed { final_offset } => tracing::info!(
                path,
                final_offset = final_offset.as_ref().map(|o| o.as_str()),
                "writer closed the stream"
            ),
            ProducerEvent::CloseFailed { reason } => {
                tracing::warn!(path, error = %reason.kind(), "writer close failed")
            }
            _ => tracing::debug!(path, "writer event"),
        }
    }
}

#[cfg(not(feature = "tracing"))]
mod imp {
    use bytes::Bytes;
    use ds_proto::producer::ProducerEvent;
    use ds_proto::reader::ReaderEvent;
    use ds_proto::{Error, Operation, RequestId, TransportError};
    use std::time::Duration;

    /// Without the `tracing` feature: nothing.
    #[derive(Debug)]
    pub(crate) struct RequestTrace;

    /// Without the `tracing` feature: no span.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct NoSpan;

    impl RequestTrace {
        #[inline(always)]
        pub(crate) fn start(
            _request: &http::Request<Bytes>,
            _attempt: Option<u32>,
            _id: Option<RequestId>,
        ) -> Self {
            RequestTrace
        }
        #[inline(always)]
        pub(crate) fn handle(&self) -> NoSpan {
            NoSpan
        }
        #[inline(always)]
        pub(crate) fn head(&self, _status: http::StatusCode) {}
        #[inline(always)]
        pub(crate) fn body(&mut self, _n: usize) {}
        #[inline(always)]
        pub(crate) fn finish(self, _error: Option<&TransportError>) {}
    }

    #[inline(always)]
    pub(crate) fn retry(_op: Operation, _url: &str, _attempt: u32, _delay: Duration, _e: &Error) {}
    #[inline(always)]
    pub(crate) fn failed(_op: Operation, _url: &str, _attempts: u32, _error: &Error) {}
    #[inline(always)]
    pub(crate) fn reader_event(_url: &str, _event: &ReaderEvent) {}
    #[inline(always)]
    pub(crate) fn producer_event(_url: &str, _event: &ProducerEvent) {}
}

pub(crate) use imp::*;

/// Enters a request's span (from [`RequestTrace::handle`]) until the guard is dropped.
#[cfg(feature = "tracing")]
pub(crate) fn enter(span: tracing::Span) -> tracing::span::EnteredSpan {
    span.entered()
}

/// Nothing to enter without the `tracing` feature.
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn enter(span: imp::NoSpan) -> imp::NoSpan {
    span
}
