//! A writer's dedicated, pipelined HTTP/1.1 connection, sans IO (issue 16): the queue of
//! requests waiting for room, their deadlines, the [`http1`](crate::http1) codec of the live
//! connection, and the rules for dropping it (a deadline passed, a request cancelled, a write
//! failed, the server closed it). The driver only connects, writes the bytes it is given,
//! and hands back what it reads.
//!
//! The driver's part:
//!
//! ```text
//! link.submit(transmit)                      for each transmit the plan sends pipelined
//! loop link.next_step(plan):                 after every call below
//!     Connect { uri }      -> connect to uri's origin; link.on_connected(plan, started,
//!                             now, |gen| make the socket, its reads tagged gen) or
//!                             link.on_connect_failed(error)
//!     Write { head, body } -> write head, then body, on link.socket_mut(), by
//!                             link.next_deadline(); link.on_write_result(plan, result, now)
//!     Idle                 -> wait for bytes, a deadline (link.next_deadline()) or work
//! bytes (or the end) read on connection gen: link.on_read(gen, Some(bytes) / None, plan)
//! the producer cancelled id:                 link.abort(id, plan, now)
//! a deadline passed:                         link.on_timeout(now, plan)
//! afterwards:                                feed link.take_inputs() to the plan and
//!                                            the producer
//! ```
//!
//! The link keeps the driver's socket (`S`) beside the connection's codec and drops it when
//! it drops the connection: the driver's socket type closes the socket and ends its reader
//! in its `Drop`.
//!
//! Failures follow the codec: a request it can prove unprocessed fails as
//! [`TransportErrorKind::Connect`] (safe to send again), any other cut-off exchange as
//! [`TransportErrorKind::ConnectionReset`] (outcome unknown), and an expired deadline as
//! [`TransportErrorKind::Timeout`] (outcome unknown): the [`Producer`](crate::producer::Producer)
//! handles each under its retry and indeterminate rules (PROTOCOL.md 5.2.1).

use crate::driver::writer_pipe::{Carrier, WriterPipe};
use crate::exchange::{Input, RequestId, Transmit, TransportError, TransportErrorKind};
use crate::http1::{Connection, Limits};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What the driver does next for a [`PipelinedLink`].
#[derive(Debug)]
pub enum LinkStep {
    /// Open a connection to the origin of `uri` (scheme, host, port), then answer with
    /// [`PipelinedLink::on_connected`] or [`PipelinedLink::on_connect_failed`].
    Connect {
        /// A request URI of the queue's first request.
        uri: http::Uri,
    },
    /// Write all of `head`, then all of `body`, on the live connection, then answer with
    /// [`PipelinedLink::on_write_result`].
    Write {
        /// One encoded request: its head, and its body when that is smaller than
        /// [`JOIN_BODY_BELOW`].
        head: Vec<u8>,
        /// The request's body when it is not in `head` (empty otherwise): written as it
        /// is, never copied.
        body: Bytes,
    },
    /// Nothing to do until bytes arrive, a deadline passes or a request is submitted.
    Idle,
}

/// Bodies smaller than this (64 KiB) are written in one piece with their head; larger ones
/// go to the socket as they are, after it. Copying a batch of 32 MiB into one buffer with its
/// head took 15 to 27 ms here, during which nothing was written (`ds-bench --trace-posts`
/// through a 20 ms round trip: such a batch left 23 ms later than a 1 MiB one).
pub const JOIN_BODY_BELOW: usize = 64 << 10;

/// How long a [`LinkStep::Connect`] may take, TLS handshake included: the client's connect
/// timeout, or 30 s when it sets none.
pub fn connect_timeout(configured: Option<Duration>) -> Duration {
    configured.unwrap_or(Duration::from_secs(30))
}

/// Where a [`LinkStep::Connect`] goes: the host (without IPv6 brackets), the port (the
/// scheme's default when the URI names none) and whether the connection speaks TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The host name or address, brackets of an IPv6 literal removed.
    pub host: String,
    /// The port.
    pub port: u16,
    /// `https`: TLS over the connection.
    pub tls: bool,
}

impl Origin {
    /// The origin of `uri` (a request URI of the link's stream).
    pub fn of(uri: &http::Uri) -> Origin {
        let tls = uri
            .scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("https"));
        let host = uri.host().unwrap_or("localhost");
        Origin {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            tls,
        }
    }

    /// The socket address, when the host is an IP address (nothing to resolve).
    pub fn ip_addr(&self) -> Option<std::net::SocketAddr> {
        let ip: std::net::IpAddr = self.host.parse().ok()?;
        Some(std::net::SocketAddr::new(ip, self.port))
    }
}

/// What happened to a [`PipelinedLink`], for [`PipelinedLink::handle`].
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // made and consumed at once, never stored
pub enum LinkEvent {
    /// The writer hands a request to the connection.
    Submit(Transmit),
    /// Bytes read on connection `gen` (`None`: it ended).
    Read(u64, Option<Vec<u8>>),
    /// The producer cancelled a request.
    Abort(RequestId),
    /// Deadlines may have passed.
    Timeout,
}

/// Spans that follow a link's requests through their inputs (a driver's request traces:
/// `ds_proto::driver::trace::{on, off}::RequestTraces`); `()` follows nothing.
pub trait InputTraces: Default {
    /// A request was handed to the connection.
    fn start(&mut self, request: &http::Request<bytes::Bytes>, id: RequestId);
    /// An input of one of the requests.
    fn observe(&mut self, input: &Input);
    /// A request left without an input (cancelled, or taken back).
    fn abandon(&mut self, id: RequestId);
}

impl InputTraces for () {
    fn start(&mut self, _request: &http::Request<bytes::Bytes>, _id: RequestId) {}
    fn observe(&mut self, _input: &Input) {}
    fn abandon(&mut self, _id: RequestId) {}
}

/// The live connection: its codec, generation and the driver's socket.
#[derive(Debug)]
struct Live<S> {
    codec: Connection,
    gen: u64,
    socket: S,
}

/// A writer's dedicated pipelined connection and the requests waiting for room on it; `T`
/// follows each request with a span; `S` is the driver's socket of the live connection.
#[derive(Debug)]
pub struct PipelinedLink<T: InputTraces = (), S = ()> {
    live: Option<Live<S>>,
    gen: u64,
    depth: usize,
    pending: VecDeque<Transmit>,
    deadlines: HashMap<RequestId, Instant>,
    /// The request whose bytes the driver is writing, and their length.
    writing: Option<(RequestId, usize)>,
    inputs: Vec<Input>,
    traces: T,
}

impl<T: InputTraces, S> PipelinedLink<T, S> {
    /// A link that keeps at most `depth` requests in flight on its connection (at least one).
    pub fn new(depth: usize) -> PipelinedLink<T, S> {
        PipelinedLink {
            live: None,
            gen: 0,
            depth: depth.max(1),
            pending: VecDeque::new(),
            deadlines: HashMap::new(),
            writing: None,
            inputs: Vec::new(),
            traces: T::default(),
        }
    }

    /// Applies `event` at `now` (then [`next_step`](Self::next_step) says what to do).
    pub fn handle(&mut self, event: LinkEvent, plan: &mut WriterPipe, now: Instant) {
        match event {
            LinkEvent::Submit(t) => self.submit(t),
            LinkEvent::Read(gen, bytes) => self.on_read(gen, bytes.as_deref(), plan),
            LinkEvent::Abort(id) => self.abort(id, plan, now),
            LinkEvent::Timeout => self.on_timeout(now, plan),
        }
    }

    /// Queues `transmit`; [`next_step`](Self::next_step) writes it when the connection has
    /// room.
    pub fn submit(&mut self, transmit: Transmit) {
        self.traces.start(&transmit.request, transmit.id);
        if let Some(d) = transmit.deadline {
            self.deadlines.insert(transmit.id, d);
        }
        self.pending.push_back(transmit);
    }

    /// The generation of the live connection, if any: reads of another generation are
    /// ignored.
    pub fn connection(&self) -> Option<u64> {
        self.live.as_ref().map(|l| l.gen)
    }

    /// The driver's socket of the live connection, to write a [`LinkStep::Write`] on.
    pub fn socket_mut(&mut self) -> Option<&mut S> {
        self.live.as_mut().map(|l| &mut l.socket)
    }

    /// Requests still waiting for room, taken back (the writer falls back to pooled
    /// exchanges).
    fn take_pending(&mut self) -> Vec<Transmit> {
        for t in &self.pending {
            self.deadlines.remove(&t.id);
            self.traces.abandon(t.id);
        }
        self.pending.drain(..).collect()
    }

    /// Once the plan carries the writer's requests pooled (pipelining refused, or the
    /// pipeline reordered: [`WriterPipe::carrier`]), the requests still waiting for room here,
    /// taken back for the driver's pooled exchanges; nothing while the plan still pipelines.
    pub fn take_for_pool(&mut self, plan: &WriterPipe) -> Vec<Transmit> {
        if plan.carrier() == Carrier::Pooled {
            self.take_pending()
        } else {
            Vec::new()
        }
    }

    /// The inputs for the plan and the producer, in the order they happened.
    pub fn take_inputs(&mut self) -> std::vec::Drain<'_, Input> {
        for input in &self.inputs {
            self.traces.observe(input);
        }
        self.inputs.drain(..)
    }

    /// The earliest deadline of a request written or waiting.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.values().min().copied()
    }

    /// What the driver does next.
    pub fn next_step(&mut self, plan: &mut WriterPipe) -> LinkStep {
        debug_assert!(self.writing.is_none(), "a write is still unanswered");
        loop {
            let Some(uri) = self.pending.front().map(|t| t.request.uri().clone()) else {
                return LinkStep::Idle;
            };
            if self
                .live
                .as_ref()
                .is_some_and(|l| l.codec.must_close() && l.codec.in_flight() == 0)
            {
                self.drop_live(plan);
            }
            let Some(live) = self.live.as_mut() else {
                return LinkStep::Connect { uri };
            };
            if !live.codec.can_send() {
                return LinkStep::Idle;
            }
            let t = self.pending.pop_front().expect("the queue has a front");
            let join = t.request.body().len() < JOIN_BODY_BELOW;
            let mut head = Vec::with_capacity(1024 + if join { t.request.body().len() } else { 0 });
            let sent = if join {
                live.codec.send(&t, &mut head)
            } else {
                live.codec.send_head(&t, &mut head)
            };
            match sent {
                Ok(()) => {
                    let body = if join {
                        Bytes::new()
                    } else {
                        t.request.body().clone()
                    };
                    self.writing = Some((t.id, head.len() + body.len()));
                    return LinkStep::Write { head, body };
                }
                Err(e) => {
                    self.deadlines.remove(&t.id);
                    self.inputs.push(Input::Failed {
                        id: t.id,
                        error: TransportError::new(e.transport_kind(), e.to_string()),
                    });
                }
            }
        }
    }

    /// The driver connected at `now`, having started at `started` (about one round trip:
    /// the plan learns the link's length early); `socket` makes the driver's socket of the
    /// new connection, given its generation (tag the socket's reads with it). The link keeps
    /// the socket until it drops the connection. A socket that cannot be made (its reader
    /// could not start) fails the first waiting request as
    /// [`on_connect_failed`](Self::on_connect_failed) does.
    pub fn on_connected(
        &mut self,
        plan: &mut WriterPipe,
        started: Instant,
        now: Instant,
        socket: impl FnOnce(u64) -> Result<S, TransportError>,
    ) {
        plan.on_connected(now.saturating_duration_since(started), now);
        self.gen += 1;
        match socket(self.gen) {
            Ok(socket) => {
                self.live = Some(Live {
                    codec: Connection::pipelined(Limits::default(), self.depth),
                    gen: self.gen,
                    socket,
                });
            }
            Err(error) => self.on_connect_failed(error),
        }
    }

    /// Connecting failed: the first waiting request fails with `error` (never sent, so the
    /// producer may send it again); the others wait for the next attempt.
    pub fn on_connect_failed(&mut self, error: TransportError) {
        if let Some(t) = self.pending.pop_front() {
            self.deadlines.remove(&t.id);
            self.inputs.push(Input::Failed { id: t.id, error });
        }
    }

    /// All bytes of the last [`LinkStep::Write`] were written at `now`.
    pub fn on_written(&mut self, plan: &mut WriterPipe, now: Instant) {
        if let Some((id, n)) = self.writing.take() {
            if let Some(live) = self.live.as_mut() {
                live.codec.on_written(n);
            }
            plan.on_written(id, now);
        }
    }

    /// How writing the last [`LinkStep::Write`] ended at `now`: all written
    /// ([`on_written`](Self::on_written)); not finished by the earliest request deadline (the
    /// driver's write timed out: `TimedOut`, or `WouldBlock` from a socket write timeout):
    /// the peer stopped reading, the connection goes and the expired requests fail as
    /// timeouts, as in [`on_timeout`](Self::on_timeout); any other error: the connection
    /// goes, the codec fails the request cut off as not processed and the ones before it as
    /// their answers prove.
    pub fn on_write_result(
        &mut self,
        plan: &mut WriterPipe,
        result: std::io::Result<()>,
        now: Instant,
    ) {
        use std::io::ErrorKind;
        match result {
            Ok(()) => self.on_written(plan, now),
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                self.on_write_timed_out(plan, now)
            }
            Err(_) => self.on_write_failed(plan),
        }
    }

    /// Writing the last [`LinkStep::Write`] failed: the connection goes. The codec knows the
    /// request was not fully written (it fails as not processed) and fails the ones before it
    /// as their answers prove.
    fn on_write_failed(&mut self, plan: &mut WriterPipe) {
        self.writing = None;
        self.drop_live(plan);
    }

    /// The last [`LinkStep::Write`] did not finish by the earliest request deadline (the peer
    /// stopped reading): the connection goes, and the expired requests fail as timeouts, as
    /// in [`on_timeout`](Self::on_timeout).
    fn on_write_timed_out(&mut self, plan: &mut WriterPipe, now: Instant) {
        self.writing = None;
        self.expire(now, plan, true);
    }

    /// Bytes read on connection `gen` (`None`: it ended). Reads of a dropped connection are
    /// ignored.
    pub fn on_read(&mut self, gen: u64, bytes: Option<&[u8]>, plan: &mut WriterPipe) {
        let Some(live) = self.live.as_mut().filter(|l| l.gen == gen) else {
            return;
        };
        match bytes {
            Some(bytes) => {
                live.codec.feed(bytes);
                drain(&mut live.codec, &mut self.deadlines, &mut self.inputs);
                if live.codec.must_close() && live.codec.in_flight() == 0 {
                    self.drop_live(plan);
                }
            }
            None => self.drop_live(plan),
        }
    }

    /// The producer cancelled `id`. Waiting, it is simply removed; written, it cannot be taken
    /// back alone, so the connection goes (the others fail as the codec can prove, the
    /// cancelled one yields no input).
    pub fn abort(&mut self, id: RequestId, plan: &mut WriterPipe, now: Instant) {
        self.traces.abandon(id);
        if let Some(i) = self.pending.iter().position(|t| t.id == id) {
            self.pending.remove(i);
            self.deadlines.remove(&id);
            plan.on_abandoned(id, now);
            return;
        }
        if self
            .live
            .as_ref()
            .is_some_and(|l| l.codec.outstanding().any(|o| o == id))
        {
            let before = self.inputs.len();
            self.drop_live(plan);
            let mut i = before;
            while i < self.inputs.len() {
                if self.inputs[i].id() == id {
                    self.inputs.remove(i);
                } else {
                    i += 1;
                }
            }
            plan.on_abandoned(id, now);
        }
    }

    /// Deadlines that passed at `now`: the connection goes; the expired requests fail as
    /// timeouts (outcome unknown for those written, not sent for those waiting), the others
    /// as the codec can prove.
    pub fn on_timeout(&mut self, now: Instant, plan: &mut WriterPipe) {
        self.expire(now, plan, false);
    }

    /// Fails the requests whose deadline passed at `now` as timeouts; the connection goes
    /// when one of them expired, or anyway with `drop`.
    fn expire(&mut self, now: Instant, plan: &mut WriterPipe, drop: bool) {
        let expired: Vec<RequestId> = self
            .deadlines
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| *id)
            .collect();
        if expired.is_empty() && !drop {
            return;
        }
        for id in &expired {
            if let Some(i) = self.pending.iter().position(|t| t.id == *id) {
                self.pending.remove(i);
                self.deadlines.remove(id);
                self.inputs.push(Input::Failed {
                    id: *id,
                    error: TransportError::new(TransportErrorKind::Timeout, "deadline passed"),
                });
            }
        }
        let before = self.inputs.len();
        self.drop_live(plan);
        for input in &mut self.inputs[before..] {
            if let Input::Failed { id, error } = input {
                if expired.contains(id) {
                    error.kind = TransportErrorKind::Timeout;
                }
            }
        }
    }

    /// Drops the live connection: its outstanding requests fail as the codec can prove.
    fn drop_live(&mut self, plan: &mut WriterPipe) {
        if let Some(mut live) = self.live.take() {
            live.codec.on_eof();
            drain(&mut live.codec, &mut self.deadlines, &mut self.inputs);
            if live.codec.pipelining_refused() {
                plan.on_pipelining_refused();
            }
        }
    }
}

/// Moves the codec's inputs to `out`; a finished exchange's deadline goes.
fn drain(
    codec: &mut Connection,
    deadlines: &mut HashMap<RequestId, Instant>,
    out: &mut Vec<Input>,
) {
    while let Some(input) = codec.poll_input() {
        if input.ends_exchange() {
            deadlines.remove(&input.id());
        }
        out.push(input);
    }
}

#[cfg(test)]
#[path = "pipelined_link_tests.rs"]
mod tests;

/// The error of an `https` connection in a driver built without TLS (its writers never
/// pipeline `https` streams: [`WriterPipe::with_tls`]).
pub fn tls_not_built() -> TransportError {
    TransportError::new(TransportErrorKind::Tls, "https needs the `rustls` feature")
}

/// Defines a driver's `Pipeline` (expanded in the driver's pipeline module): a writer's
/// [`PipelinedLink`] with the driver's socket, and the loop that does what the link asks
/// until it is idle, written once for both drivers (`$async` / `.$await` are `async` /
/// `.await` in an async driver, nothing in a blocking one; `$now` is the driver's clock). The
/// driver provides its IO: `Connector::connect(&self, &http::Uri) -> Result<Wire,
/// TransportError>` (TCP, and TLS for `https`), `attach(Wire, gen, Notify) -> Result<Socket,
/// TransportError>` (starts the reader that hands the connection's bytes, tagged `gen`, to
/// `Notify`), and `write(&mut Socket, head, body, deadline) -> std::io::Result<()>` (writes
/// both by the deadline, or fails with `TimedOut` / `WouldBlock`).
#[doc(hidden)]
#[macro_export]
#[allow(clippy::crate_in_macro_def)] // items of the driver's crate, on purpose
macro_rules! __pipeline {
    ($($async:ident)?; $(.$await:ident)?; now: $now:path) => {
        /// The writer's pipelined connection: ds-proto's link (with a span per request, as
        /// pooled exchanges have, and the socket of its connection), how it connects, and
        /// where the connection's reader hands what it reads.
        pub(crate) struct Pipeline {
            pub(crate) link: $crate::driver::pipelined_link::PipelinedLink<
                crate::trace::RequestTraces,
                Socket,
            >,
            connector: Connector,
            notify: Notify,
        }

        impl Pipeline {
            /// A pipelined connection of at most `depth` requests in flight, opened with
            /// `connector`; its reader hands what it reads to `notify`.
            pub(crate) fn new(depth: usize, connector: Connector, notify: Notify) -> Self {
                Pipeline {
                    link: $crate::driver::pipelined_link::PipelinedLink::new(depth),
                    connector,
                    notify,
                }
            }

            /// Applies `event` to the link, then does what it asks until it is idle; inputs
            /// for the producer wait in `wl`.
            pub(crate) $($async)? fn handle(
                &mut self,
                event: $crate::driver::pipelined_link::LinkEvent,
                wl: &mut $crate::driver::writer_loop::WriterLoop,
            ) {
                use $crate::driver::pipelined_link::LinkStep;
                let (plan, out) = wl.parts();
                self.link.handle(event, plan, $now());
                loop {
                    match self.link.next_step(plan) {
                        LinkStep::Connect { uri } => {
                            let started = $now();
                            match self.connector.connect(&uri)$(.$await)? {
                                Ok(wire) => {
                                    let notify = &self.notify;
                                    self.link.on_connected(plan, started, $now(), |gen| {
                                        attach(wire, gen, notify.clone())
                                    });
                                }
                                Err(e) => self.link.on_connect_failed(e),
                            }
                        }
                        LinkStep::Write { head, body } => {
                            // A stalled write ends at the earliest request deadline.
                            let deadline = self.link.next_deadline();
                            let socket = self
                                .link
                                .socket_mut()
                                .expect("the link writes on a connection");
                            let result = write(socket, &head, &body, deadline)$(.$await)?;
                            self.link.on_write_result(plan, result, $now());
                        }
                        LinkStep::Idle => break,
                    }
                }
                out.extend(self.link.take_inputs());
            }
        }
    };
}
