//! Tracing for drivers: one `ds.request` span per HTTP exchange, an event per retry of a
//! one-shot operation, and an event per state change of a reader or writer. ds-proto's
//! machines never trace; the drivers (`ds-tokio`, `ds-blocking`) call these helpers from their
//! loops, so both record exactly the same spans and fields.
//!
//! Two modules with the same items:
//!
//! - `on` (feature `tracing`): the helpers, on the [`tracing`](https://docs.rs/tracing)
//!   crate.
//! - [`off`] (always): the same names as empty `#[inline(always)]` functions and zero-sized
//!   types, for a driver built without its own `tracing` feature: it pays nothing.
//!
//! A driver picks one by its own feature, so one driver's `tracing` feature (which enables
//! ds-proto's) does not switch tracing on in another:
//!
//! ```text
//! #[cfg(feature = "tracing")]
//! use ds_proto::driver::trace::on as imp;
//! #[cfg(not(feature = "tracing"))]
//! use ds_proto::driver::trace::off as imp;
//! pub(crate) type RequestTrace = imp::RequestTrace<MyClock>;
//! ```
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

use std::time::Instant;

/// The clock a driver measures request latencies with. ds-proto reads no clock itself (time is
/// an input), so the driver names one: `std::time::Instant::now`, or its runtime's clock.
pub trait Clock {
    /// The current instant.
    fn now() -> Instant;
}

/// The tracing helpers (feature `tracing`).
#[cfg(feature = "tracing")]
pub mod on {
    use super::Clock;
    use crate::producer::ProducerEvent;
    use crate::reader::ReaderEvent;
    use crate::{Error, Operation, RequestId, TransportError};
    use bytes::Bytes;
    use std::marker::PhantomData;
    use std::time::{Duration, Instant};
    use tracing::field::Empty;

    /// The span of one HTTP exchange and what is counted while it runs; `C` measures the
    /// latency.
    #[derive(Debug)]
    pub struct RequestTrace<C: Clock> {
        span: tracing::Span,
        started: Instant,
        received: u64,
        clock: PhantomData<fn() -> C>,
    }

    /// The protocol operation and read mode of a request, from its method, headers and query.
    pub(super) fn describe(request: &http::Request<Bytes>) -> (&'static str, Option<&'static str>) {
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
            let closing = crate::headers::flag(request.headers(), &crate::headers::STREAM_CLOSED);
            if closing && request.body().is_empty() {
                ("close", None)
            } else {
                ("append", None)
            }
        } else {
            ("other", None)
        }
    }

    impl<C: Clock> RequestTrace<C> {
        /// Opens the span of an exchange: `attempt` for one-shot operations (1 for the first),
        /// `id` for a machine's exchanges.
        pub fn start(
            request: &http::Request<Bytes>,
            attempt: Option<u32>,
            id: Option<RequestId>,
        ) -> Self {
            let (op, mode) = describe(request);
            let producer_seq = request
                .headers()
                .get(&crate::headers::PRODUCER_SEQ)
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
                started: C::now(),
                received: 0,
                clock: PhantomData,
            }
        }

        /// The span, for the driver to run the exchange in (entered on a thread, or
        /// instrumenting a future).
        pub fn handle(&self) -> tracing::Span {
            self.span.clone()
        }

        /// The response head arrived.
        pub fn head(&self, status: http::StatusCode) {
            self.span.record("status", status.as_u16());
        }

        /// Body bytes arrived.
        pub fn body(&mut self, n: usize) {
            self.received = self.received.saturating_add(n as u64);
        }

        /// Records what `input` says about the exchange of the trace in `slot`: its status, its
        /// body bytes; the last input finishes the trace and empties the slot.
        pub fn follow(slot: &mut Option<Self>, input: &crate::exchange::Input) {
            use crate::exchange::Input;
            let Some(t) = slot.as_mut() else {
                return;
            };
            match input {
                Input::Head { parts, .. } => t.head(parts.status),
                Input::Body { chunk, .. } => t.body(chunk.len()),
                Input::End { .. } | Input::Failed { .. } => {
                    if let Some(t) = slot.take() {
                        t.finish(match input {
                            Input::Failed { error, .. } => Some(error),
                            _ => None,
                        });
                    }
                }
            }
        }

        /// A buffered exchange ended: its head and whole body, or its failure.
        pub fn outcome(
            mut self,
            outcome: &Result<(http::response::Parts, bytes::Bytes), TransportError>,
        ) {
            match outcome {
                Ok((parts, body)) => {
                    self.head(parts.status);
                    self.body(body.len());
                    self.finish(None);
                }
                Err(e) => self.finish(Some(e)),
            }
        }

        /// The exchange ended: cleanly (`None`), failed, or was abandoned by its owner.
        pub fn finish(self, error: Option<&TransportError>) {
            let latency = C::now().saturating_duration_since(self.started);
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

    /// The spans of exchanges whose inputs arrive as [`Input`](crate::exchange::Input)s (a
    /// writer's pipelined connection): opened when a request is handed to the connection,
    /// fed every input, finished with the exchange.
    #[cfg(feature = "http1")]
    #[derive(Debug)]
    pub struct RequestTraces<C: Clock> {
        open: std::collections::HashMap<RequestId, RequestTrace<C>>,
    }

    #[cfg(feature = "http1")]
    impl<C: Clock> Default for RequestTraces<C> {
        fn default() -> Self {
            RequestTraces {
                open: std::collections::HashMap::new(),
            }
        }
    }

    #[cfg(feature = "http1")]
    impl<C: Clock> crate::driver::pipelined_link::InputTraces for RequestTraces<C> {
        /// Opens the span of `request` (the machine's request `id`).
        fn start(&mut self, request: &http::Request<Bytes>, id: RequestId) {
            self.open
                .insert(id, RequestTrace::start(request, None, Some(id)));
        }

        /// Records what `input` says about its exchange; the last one finishes its span.
        fn observe(&mut self, input: &crate::exchange::Input) {
            use crate::exchange::Input;
            match input {
                Input::Head { id, parts } => {
                    if let Some(t) = self.open.get(id) {
                        t.head(parts.status);
                    }
                }
                Input::Body { id, chunk } => {
                    if let Some(t) = self.open.get_mut(id) {
                        t.body(chunk.len());
                    }
                }
                Input::End { id } => {
                    if let Some(t) = self.open.remove(id) {
                        t.finish(None);
                    }
                }
                Input::Failed { id, error } => {
                    if let Some(t) = self.open.remove(id) {
                        t.finish(Some(error));
                    }
                }
            }
        }

        /// The exchange `id` was abandoned (cancelled, or handed elsewhere): its span closes
        /// without an outcome.
        fn abandon(&mut self, id: RequestId) {
            self.open.remove(&id);
        }
    }

    /// What an attempt of a one-shot operation came to: a retry or a final failure is
    /// recorded (a success is not: its request span says it).
    pub fn call_step<T, O: crate::ops::OneShot>(
        call: &crate::driver::call::Call<O>,
        step: &crate::driver::call::Step<T>,
    ) {
        use crate::driver::call::Step;
        match step {
            Step::Done { result: Err(e), .. } => {
                failed(call.operation(), call.url(), call.attempts(), e)
            }
            Step::Retry { delay, error } => {
                retry(call.operation(), call.url(), call.attempts(), *delay, error)
            }
            Step::Done { .. } => {}
        }
    }

    /// A one-shot operation will be retried after `delay`.
    pub fn retry(op: Operation, url: &str, attempt: u32, delay: Duration, error: &Error) {
        tracing::info!(
            op = op.as_str(),
            path = crate::url::path_of(url),
            attempt,
            delay_ms = delay.as_millis() as u64,
            error = %error.kind,
            "retrying"
        );
    }

    /// A one-shot operation failed for good.
    pub fn failed(op: Operation, url: &str, attempts: u32, error: &Error) {
        tracing::warn!(
            op = op.as_str(),
            path = crate::url::path_of(url),
            attempts,
            error = %error.kind,
            "operation failed"
        );
    }

    /// A reader handed out `event`.
    pub fn reader_event(url: &str, event: &ReaderEvent) {
        let path = crate::url::path_of(url);
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
            #[allow(unreachable_patterns)]
            _ => tracing::debug!(path, "reader event"),
        }
    }

    /// A writer's producer reported `event`.
    pub fn producer_event(url: &str, event: &ProducerEvent) {
        let path = crate::url::path_of(url);
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
            #[allow(unreachable_patterns)]
            _ => tracing::debug!(path, "writer event"),
        }
    }
}

/// The same names as `on` (feature `tracing`), doing nothing: for a driver built without its `tracing` feature.
pub mod off {
    use super::Clock;
    use crate::producer::ProducerEvent;
    use crate::reader::ReaderEvent;
    use crate::{Error, Operation, RequestId, TransportError};
    use bytes::Bytes;
    use std::marker::PhantomData;
    use std::time::Duration;

    /// Nothing: no span, no clock read.
    #[derive(Debug)]
    pub struct RequestTrace<C: Clock>(PhantomData<fn() -> C>);

    /// Nothing.
    #[cfg(feature = "http1")]
    #[derive(Debug)]
    pub struct RequestTraces<C: Clock>(PhantomData<fn() -> C>);

    #[cfg(feature = "http1")]
    impl<C: Clock> Default for RequestTraces<C> {
        fn default() -> Self {
            RequestTraces(PhantomData)
        }
    }

    #[cfg(feature = "http1")]
    impl<C: Clock> crate::driver::pipelined_link::InputTraces for RequestTraces<C> {
        fn start(&mut self, _request: &http::Request<Bytes>, _id: RequestId) {}
        fn observe(&mut self, _input: &crate::exchange::Input) {}
        fn abandon(&mut self, _id: RequestId) {}
    }

    /// No span.
    #[derive(Debug, Clone, Copy)]
    pub struct NoSpan;

    impl<C: Clock> RequestTrace<C> {
        /// Nothing.
        #[inline(always)]
        pub fn start(
            _request: &http::Request<Bytes>,
            _attempt: Option<u32>,
            _id: Option<RequestId>,
        ) -> Self {
            RequestTrace(PhantomData)
        }
        /// No span.
        #[inline(always)]
        pub fn handle(&self) -> NoSpan {
            NoSpan
        }
        /// Nothing.
        #[inline(always)]
        pub fn head(&self, _status: http::StatusCode) {}
        /// Nothing.
        #[inline(always)]
        pub fn body(&mut self, _n: usize) {}
        /// Nothing.
        #[inline(always)]
        pub fn finish(self, _error: Option<&TransportError>) {}
        /// Nothing.
        #[inline(always)]
        pub fn outcome(self, _outcome: &Result<(http::response::Parts, Bytes), TransportError>) {}
        /// Nothing (the slot is emptied by the last input, as with tracing).
        #[inline(always)]
        pub fn follow(slot: &mut Option<Self>, input: &crate::exchange::Input) {
            if input.ends_exchange() {
                *slot = None;
            }
        }
    }

    /// Nothing.
    #[inline(always)]
    pub fn call_step<T, O: crate::ops::OneShot>(
        _call: &crate::driver::call::Call<O>,
        _step: &crate::driver::call::Step<T>,
    ) {
    }

    /// Nothing.
    #[inline(always)]
    pub fn retry(_op: Operation, _url: &str, _attempt: u32, _delay: Duration, _e: &Error) {}
    /// Nothing.
    #[inline(always)]
    pub fn failed(_op: Operation, _url: &str, _attempts: u32, _error: &Error) {}
    /// Nothing.
    #[inline(always)]
    pub fn reader_event(_url: &str, _event: &ReaderEvent) {}
    /// Nothing.
    #[inline(always)]
    pub fn producer_event(_url: &str, _event: &ProducerEvent) {}
}

#[cfg(all(test, feature = "tracing"))]
mod tests {
    use super::on::describe;
    use bytes::Bytes;

    fn request(method: &str, uri: &str, closed: bool, body: &'static [u8]) -> http::Request<Bytes> {
        let mut b = http::Request::builder().method(method).uri(uri);
        if closed {
            b = b.header(&crate::headers::STREAM_CLOSED, "true");
        }
        b.body(Bytes::from_static(body)).unwrap()
    }

    #[test]
    fn operations_and_modes_are_told_apart() {
        let d = |m, u, c, b| describe(&request(m, u, c, b));
        assert_eq!(
            d("GET", "http://h/s?offset=-1", false, b""),
            ("read", Some("catch-up"))
        );
        assert_eq!(
            d("GET", "http://h/s?offset=1&live=long-poll", false, b""),
            ("read", Some("long-poll"))
        );
        assert_eq!(
            d("GET", "http://h/s?live=sse", false, b""),
            ("read", Some("sse"))
        );
        assert_eq!(
            d("GET", "http://h/s?live=x", false, b""),
            ("read", Some("live"))
        );
        assert_eq!(d("PUT", "http://h/s", false, b""), ("create", None));
        assert_eq!(d("HEAD", "http://h/s", false, b""), ("head", None));
        assert_eq!(d("DELETE", "http://h/s", false, b""), ("delete", None));
        assert_eq!(d("POST", "http://h/s", false, b"x"), ("append", None));
        assert_eq!(d("POST", "http://h/s", true, b""), ("close", None));
        assert_eq!(d("POST", "http://h/s", true, b"x"), ("append", None));
        assert_eq!(d("PATCH", "http://h/s", false, b""), ("other", None));
    }
}

/// Both kinds of trace forget their exchange at its last input, and only then.
#[cfg(test)]
mod follow_tests {
    use super::Clock;
    use crate::exchange::Input;
    use crate::{RequestId, TransportError, TransportErrorKind};
    use bytes::Bytes;

    struct Fixed;
    impl Clock for Fixed {
        #[allow(clippy::disallowed_methods)]
        fn now() -> std::time::Instant {
            std::time::Instant::now()
        }
    }

    macro_rules! follows {
        ($imp:path) => {{
            use $imp as imp;
            let id = RequestId(1);
            let request = http::Request::get("http://h/s").body(Bytes::new()).unwrap();
            let ends = [
                Input::End { id },
                Input::Failed {
                    id,
                    error: TransportError::new(TransportErrorKind::Timeout, "late"),
                },
            ];
            for end in ends {
                let mut slot = Some(imp::RequestTrace::<Fixed>::start(&request, None, Some(id)));
                let parts = http::Response::new(()).into_parts().0;
                imp::RequestTrace::follow(&mut slot, &Input::Head { id, parts });
                let chunk = Bytes::from_static(b"abc");
                imp::RequestTrace::follow(&mut slot, &Input::Body { id, chunk });
                assert!(slot.is_some(), "open until the last input");
                imp::RequestTrace::follow(&mut slot, &end);
                assert!(slot.is_none(), "finished by {end:?}");
                imp::RequestTrace::follow(&mut slot, &end);
            }
        }};
    }

    #[test]
    fn a_trace_follows_its_exchange_to_the_last_input() {
        follows!(super::off);
        #[cfg(feature = "tracing")]
        follows!(super::on);
    }
}

/// What the `tracing` helpers record, read back through a `tracing-subscriber` fmt layer
/// writing into memory (this thread only): the fields the module docs promise, for every
/// kind of exchange end and every reader and writer event.
#[cfg(all(test, feature = "tracing"))]
mod recorded_tests {
    use super::{on, Clock};
    use crate::driver::call::{Call, Step};
    use crate::driver::client::ClientSettings;
    use crate::driver::pipelined_link::InputTraces;
    use crate::exchange::Input;
    use crate::ops::{CallOptions, Head};
    use crate::producer::{AppendId, FailureReason, ProducerEvent};
    use crate::reader::{Chunk, ReaderEvent};
    use crate::{Error, ErrorKind, Offset, Operation, RequestId, TransportError};
    use crate::{RetryPolicy, TransportErrorKind};
    use bytes::Bytes;
    use std::cell::Cell;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    use tracing_subscriber::fmt::format::FmtSpan;

    thread_local! {
        static ORIGIN: Instant = {
            #[allow(clippy::disallowed_methods)] // the clock's origin only
            Instant::now()
        };
        static TICKS: Cell<u32> = const { Cell::new(0) };
    }

    /// Each reading is 1.5 ms after the one before: a request's latency is 1.5 ms.
    struct Stepping;
    impl Clock for Stepping {
        fn now() -> Instant {
            let n = TICKS.with(|t| {
                t.set(t.get() + 1);
                t.get()
            });
            ORIGIN.with(|o| *o + Duration::from_micros(1500) * n)
        }
    }

    type Trace = on::RequestTrace<Stepping>;

    /// What `f` records, as the fmt layer prints it (span fields at span close too).
    fn recorded(f: impl FnOnce()) -> String {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(FmtSpan::CLOSE)
            .without_time()
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = out.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn append() -> http::Request<Bytes> {
        http::Request::post("http://h/v1/stream/s?token=secret")
            .body(Bytes::from_static(b"12345678"))
            .unwrap()
    }

    fn head(status: u16) -> http::response::Parts {
        crate::ops::test_util::parts(status, &[])
    }

    fn timeout() -> TransportError {
        TransportError::new(TransportErrorKind::Timeout, "late")
    }

    fn assert_has(out: &str, wanted: &[&str]) {
        for w in wanted {
            assert!(out.contains(w), "{w:?} not recorded in:\n{out}");
        }
    }

    #[test]
    fn an_exchange_records_its_status_bytes_latency_and_error() {
        let id = RequestId(7);
        let out = recorded(|| {
            let mut slot = Some(Trace::start(&append(), None, Some(id)));
            Trace::follow(
                &mut slot,
                &Input::Head {
                    id,
                    parts: head(201),
                },
            );
            let chunk = Bytes::from_static(b"abcde");
            Trace::follow(&mut slot, &Input::Body { id, chunk });
            Trace::follow(&mut slot, &Input::End { id });
        });
        assert_has(
            &out,
            &[
                "ds.request{op=\"append\" method=POST path=\"/v1/stream/s\" id=7",
                "bytes_sent=8 status=201",
                "request finished bytes_received=5 latency_ms=1.5\n",
            ],
        );
        assert!(!out.contains("secret"), "no query recorded: {out}");

        let out = recorded(|| {
            let mut slot = Some(Trace::start(&append(), Some(2), None));
            let error = timeout();
            Trace::follow(&mut slot, &Input::Failed { id, error });
        });
        assert_has(&out, &["attempt=2", "request failed error=timed out"]);

        // A buffered exchange: its head and whole body at once, or its failure.
        let out = recorded(|| {
            Trace::start(&append(), Some(1), None).outcome(&Ok((head(200), Bytes::from("xyz"))));
            Trace::start(&append(), Some(1), None).outcome(&Err(timeout()));
        });
        assert_has(
            &out,
            &[
                "status=200",
                "request finished bytes_received=3",
                "request failed error=timed out",
            ],
        );
    }

    #[test]
    fn a_pipelined_connections_exchanges_are_recorded_until_abandoned() {
        let (a, b, c) = (RequestId(1), RequestId(2), RequestId(3));
        let out = recorded(|| {
            let mut traces = on::RequestTraces::<Stepping>::default();
            traces.start(&append(), a);
            traces.start(&append(), b);
            traces.start(&append(), c);
            traces.observe(&Input::Head {
                id: a,
                parts: head(204),
            });
            let chunk = Bytes::from_static(b"ok");
            traces.observe(&Input::Body { id: a, chunk });
            traces.observe(&Input::End { id: a });
            let error = timeout();
            traces.observe(&Input::Failed { id: b, error });
            // Abandoned: what comes for it after is not its exchange's.
            traces.abandon(c);
            traces.observe(&Input::End { id: c });
        });
        assert_has(
            &out,
            &[
                "id=1",
                "status=204",
                "request finished bytes_received=2",
                "request failed error=timed out",
            ],
        );
        assert_eq!(out.matches("request finished").count(), 1, "{out}");
    }

    #[test]
    fn retries_and_final_failures_of_a_call_are_recorded() {
        #[allow(clippy::disallowed_methods)] // the clock's origin only
        let now = Instant::now();
        let settings = ClientSettings {
            retry: RetryPolicy {
                max_attempts: Some(2),
                ..RetryPolicy::default()
            },
            ..ClientSettings::default()
        };
        let url = "http://h/v1/stream/s?token=secret";
        let mut call =
            Call::new(Head::new(url), &settings, &CallOptions::default(), 1, now).unwrap();
        let out = recorded(|| {
            let step = call.outcome(Err(timeout()), now);
            assert!(matches!(step, Step::Retry { .. }));
            on::call_step(&call, &step);
            let step = call.outcome(Err(timeout()), now);
            assert!(matches!(step, Step::Done { result: Err(_), .. }));
            on::call_step(&call, &step);
        });
        assert_has(
            &out,
            &[
                "retrying op=\"head\" path=\"/v1/stream/s\" attempt=2",
                "operation failed op=\"head\" path=\"/v1/stream/s\" attempts=2",
            ],
        );
        assert!(!out.contains("secret"), "{out}");
    }

    #[test]
    fn every_reader_and_writer_event_is_recorded() {
        let url = "http://h/v1/stream/s";
        let offset = Offset::parse("5").unwrap();
        let error = Error::new(Operation::Read, url, ErrorKind::NotFound);
        let chunk = Chunk {
            data: Bytes::from_static(b"abc"),
            next_offset: offset.clone(),
            partial: false,
            up_to_date: true,
            closed: false,
            cursor: None,
            json: false,
        };
        let reader = [
            ReaderEvent::Data(chunk),
            ReaderEvent::UpToDate {
                offset: offset.clone(),
            },
            ReaderEvent::Closed {
                offset: offset.clone(),
            },
            ReaderEvent::Retrying {
                error: error.clone(),
                attempt: 3,
                delay: Duration::from_millis(40),
            },
            ReaderEvent::FellBackToLongPoll,
            ReaderEvent::Failed(error.clone()),
            ReaderEvent::Done,
        ];
        let reason = FailureReason::NotStored(error.clone());
        let writer = [
            ProducerEvent::Acked {
                first: AppendId(1),
                last: AppendId(4),
                next_offset: Some(offset.clone()),
                duplicate: true,
            },
            ProducerEvent::Failed {
                first: AppendId(5),
                last: AppendId(6),
                items: Vec::new(),
                reason: reason.clone(),
            },
            ProducerEvent::EpochClaimed { epoch: 9 },
            ProducerEvent::Writable,
            ProducerEvent::Closed {
                final_offset: Some(offset),
            },
            ProducerEvent::CloseFailed { reason },
        ];
        let out = recorded(|| {
            for e in &reader {
                on::reader_event(url, e);
            }
            for e in &writer {
                on::producer_event(url, e);
            }
        });
        assert_has(
            &out,
            &[
                "reader data path=\"/v1/stream/s\" bytes=3 next_offset=\"5\" up_to_date=true",
                "reader up to date path=\"/v1/stream/s\" offset=\"5\"",
                "reader reached EOF",
                "reader retrying path=\"/v1/stream/s\" attempt=3 delay_ms=40",
                "reader fell back from SSE to long-poll",
                "reader failed",
                "reader caught up and done",
                "appends acknowledged path=\"/v1/stream/s\" first=1 last=4 duplicate=true",
                "appends failed path=\"/v1/stream/s\" first=5 last=6 indeterminate=false",
                "writer claimed a new epoch path=\"/v1/stream/s\" epoch=9",
                "writer has room again",
                "writer closed the stream path=\"/v1/stream/s\" final_offset=\"5\"",
                "writer close failed",
            ],
        );
        assert!(
            !out.contains("reader event") && !out.contains("writer event"),
            "{out}"
        );
    }
}
