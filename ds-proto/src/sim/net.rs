//! A seeded, fault-injecting network between simulated clients and a [`SimServer`], itself a
//! sans-IO machine (DESIGN.md section 2, `sim` feature).
//!
//! [`Net`] carries each client request ([`Transmit`]) to the server and each piece of the
//! server's answer ([`ExchangeOutput`]) back to the client as an [`Input`], after a latency, and
//! injects the faults its [`FaultConfig`] asks for:
//!
//! | fault | what the client sees | did the server apply it? |
//! |---|---|---|
//! | request dropped | `Failed` (`Connect` or `ConnectionReset`) | no |
//! | response dropped | `Failed` (`ConnectionReset` or `Timeout`) | yes |
//! | duplicate | the answer to one of two back-to-back copies | yes, twice |
//! | reorder | a late delivery: concurrent requests overtake it | yes |
//! | injected 429 | `429` with `Retry-After` | no |
//! | injected 500 / 503 | the status (503 with `Retry-After`) | either (a coin flip) |
//! | split body | the body in random pieces, down to one byte | yes |
//! | reset body | part of a body piece, then `Failed` (`ConnectionReset`) | yes |
//!
//! The network never lies in a way a real one could not: a client is told "not sent"
//! (`Connect`) or "refused" (`429`) only when no copy of its request reached the server, so a
//! client that trusts those answers stays correct. It also plays the driver's part for
//! [`Transmit::deadline`]: an exchange still open at its deadline fails with `Timeout`.
//!
//! Every random choice comes from one [`Rng`] seeded at construction: the same seed and the
//! same calls give the same deliveries at the same times, and the same [`Fault`]s.
//!
//! # The machine
//!
//! ```text
//!   client's Transmit ─► send() ──(latency, faults)──► NetOutput::ToServer ─► SimServer::handle
//!   SimServer output  ─► respond() ──(latency, faults)──► NetOutput::ToClient ─► client
//!   client's cancel   ─► cancel() ───────────────────► NetOutput::CancelServer ─► SimServer::cancel
//!   time              ─► poll_timeout() / handle_timeout(now) releases what is due
//! ```
//!
//! After every call, drain [`Net::poll_output`] (and, for a trace, [`Net::poll_fault`]).
//! [`World`](super::world::World) does all of this for you.
//!
//! [`SimServer`]: super::SimServer

use super::server::ExchangeOutput;
use crate::io::{Input, RequestId, Transmit, TransportError, TransportErrorKind};
use crate::rng::Rng;
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

/// Identifies a client of the simulated network (one state machine, or the world's requester).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u32);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {}", self.0)
    }
}

/// Identifies one copy of a request on its way through the network (a duplicated request has
/// two). The owner maps it to the server's [`ExchangeId`](super::ExchangeId).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u64);

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "flow #{}", self.0)
    }
}

/// How the network behaves: latencies and the probability of each fault.
///
/// Probabilities are per request unless said otherwise, in `[0, 1]`. The default (and
/// [`FaultConfig::none`]) is a perfect network with 1 ms of latency.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// The one-way latency of every message.
    pub latency: Duration,
    /// Extra one-way latency, uniform in `[0, jitter]`, drawn per message. Pieces of one
    /// response never overtake each other (the connection is ordered).
    pub jitter: Duration,
    /// The request is lost before the server: the client sees a transport failure.
    pub drop_request: f64,
    /// The server applies the request but its response is lost: the client sees a transport
    /// failure.
    pub drop_response: f64,
    /// The server gets the request twice, the second copy right after the first (as a
    /// retransmission would); the client sees the answer to one of the copies (a coin flip), so
    /// a first-time request may be answered as a duplicate.
    ///
    /// The copy is never delayed further: a copy applied *after* the client got a definite
    /// refusal of the other one (a `403` fence, a `409` gap) would make the refusal a lie no
    /// client can defend against, and neither TCP nor HTTP delivers such late copies.
    pub duplicate: f64,
    /// The request is held up to [`reorder_delay`](Self::reorder_delay) longer, so that
    /// requests sent after it can overtake it.
    pub reorder: f64,
    /// The longest extra delay of a reordered request.
    pub reorder_delay: Duration,
    /// A `429 Too Many Requests` with `Retry-After` answers in place of the server (which never
    /// sees the request).
    pub inject_429: f64,
    /// A `500 Internal Server Error` answers; half the time the server applied the request
    /// first.
    pub inject_500: f64,
    /// A `503 Service Unavailable` with `Retry-After` answers; half the time the server applied
    /// the request first.
    pub inject_503: f64,
    /// The largest `Retry-After` (whole seconds, drawn uniformly from `0..=max`) of injected
    /// 429 and 503 answers.
    pub max_retry_after_secs: u32,
    /// The response body is cut into random pieces (for each response, a largest piece size
    /// among 1, 2, 7, 64 and 1024 bytes is drawn, then each piece's size up to it).
    pub split_body: f64,
    /// Per body piece the server sends: the connection is reset after a random part of it (a
    /// streaming SSE connection has many pieces, so it is reset sooner or later).
    pub reset_body: f64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig::none()
    }
}

impl FaultConfig {
    /// A perfect network: 1 ms latency, no jitter, no fault.
    pub fn none() -> Self {
        FaultConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            drop_request: 0.0,
            drop_response: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            inject_429: 0.0,
            inject_500: 0.0,
            inject_503: 0.0,
            max_retry_after_secs: 0,
            split_body: 0.0,
            reset_body: 0.0,
        }
    }

    /// A random fault mix drawn from `seed`: latency up to 20 ms and jitter up to 30 ms; one
    /// seed in eight is fault-free, otherwise each fault is enabled with probability 1/2, at a
    /// random rate up to its cap (drops 15%, duplicates 20%, reorders 30%, each injected
    /// status 8%, split bodies 90%, reset per body piece 10%). The same seed always gives the
    /// same mix.
    pub fn random(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0x6E65_745F_6661_756C);
        let ms = |rng: &mut Rng, max: u64| Duration::from_millis(rng.below(max + 1));
        let latency = ms(&mut rng, 20);
        let jitter = ms(&mut rng, 30);
        let mut config = FaultConfig {
            latency,
            jitter,
            ..FaultConfig::none()
        };
        if rng.below(8) == 0 {
            return config;
        }
        let rate = |rng: &mut Rng, cap: f64| {
            if rng.chance(0.5) {
                rng.unit() * cap
            } else {
                0.0
            }
        };
        config.drop_request = rate(&mut rng, 0.15);
        config.drop_response = rate(&mut rng, 0.15);
        config.duplicate = rate(&mut rng, 0.2);
        config.reorder = rate(&mut rng, 0.3);
        config.inject_429 = rate(&mut rng, 0.08);
        config.inject_500 = rate(&mut rng, 0.08);
        config.inject_503 = rate(&mut rng, 0.08);
        config.split_body = rate(&mut rng, 0.9);
        config.reset_body = rate(&mut rng, 0.1);
        config.reorder_delay = ms(&mut rng, 300);
        config.max_retry_after_secs = rng.below(3) as u32;
        config
    }

    /// Whether any fault can happen (latency and jitter aside).
    pub fn is_faulty(&self) -> bool {
        [
            self.drop_request,
            self.drop_response,
            self.duplicate,
            self.reorder,
            self.inject_429,
            self.inject_500,
            self.inject_503,
            self.split_body,
            self.reset_body,
        ]
        .iter()
        .any(|p| *p > 0.0)
    }
}

/// What the owner of the network must do, drained with [`Net::poll_output`].
#[derive(Debug)]
pub enum NetOutput {
    /// A request reached the server: hand it to [`SimServer::handle`](super::SimServer::handle)
    /// and pass the server's outputs for that exchange to [`Net::respond`] with this `flow`.
    ToServer {
        /// The copy of the request.
        flow: FlowId,
        /// The client that sent it.
        client: ClientId,
        /// The client's id for the exchange.
        id: RequestId,
        /// The request.
        request: http::Request<Bytes>,
        /// This copy is a duplicate: the client never sees its answer.
        duplicate: bool,
    },
    /// The connection of `flow` is gone: [`SimServer::cancel`](super::SimServer::cancel) its
    /// exchange (a no-op when it already finished).
    CancelServer {
        /// The copy whose exchange to cancel.
        flow: FlowId,
    },
    /// Feed `input` to `client`'s [`handle_input`](crate::Machine::handle_input).
    ToClient {
        /// The client.
        client: ClientId,
        /// What it sees of its exchange.
        input: Input,
    },
}

/// A fault the network injected (or a deadline it enforced), drained with [`Net::poll_fault`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// When it was decided.
    pub at: Instant,
    /// The client of the exchange.
    pub client: ClientId,
    /// The client's id for the exchange.
    pub id: RequestId,
    /// What happened.
    pub kind: FaultKind,
}

/// The kinds of [`Fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// The request was lost before the server; the client sees this failure.
    DropRequest(TransportErrorKind),
    /// The server answered but the answer was lost; the client sees this failure.
    DropResponse(TransportErrorKind),
    /// The server gets the request twice.
    Duplicate,
    /// The request was held this much longer than its latency.
    Reorder(Duration),
    /// This status answered in place of the server's; `applied`: the server applied the
    /// request first.
    Inject {
        /// The injected status (429, 500 or 503).
        status: u16,
        /// Whether the server applied the request.
        applied: bool,
    },
    /// The response body is cut into pieces of at most this many bytes.
    SplitBody(usize),
    /// The connection was reset after this many bytes of a body piece.
    ResetBody(usize),
    /// The exchange was still open at its [`Transmit::deadline`]: it failed with `Timeout`.
    Deadline,
}

/// What happens to the server's answer of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Passed on, maybe split or reset.
    Normal,
    /// Lost: the client sees this failure when the head would have arrived.
    Drop(TransportErrorKind),
    /// Replaced by this status (with a `Retry-After` when `Some`).
    Inject(u16, Option<u32>),
}

/// One copy of a request and what became of it.
#[derive(Debug)]
struct Flow {
    client: ClientId,
    id: RequestId,
    /// The request, until it reaches the server.
    request: Option<http::Request<Bytes>>,
    /// A duplicate: its answer is discarded.
    shadow: bool,
    answer: Answer,
    /// The largest piece of a split body.
    split: Option<usize>,
    /// The latest time a piece of this flow's answer is scheduled for the client (the
    /// connection is ordered).
    last_delivery: Option<Instant>,
    /// The request reached the server.
    at_server: bool,
    /// The server's exchange is over (ended, reset, cancelled), or will never start.
    server_done: bool,
    /// The client's exchange is over (ended, failed, cancelled, timed out).
    client_done: bool,
}

/// Something scheduled.
#[derive(Debug)]
enum Due {
    /// The request of a flow reaches the server.
    Arrive(FlowId),
    /// An input reaches the flow's client.
    Deliver(FlowId, Input),
    /// The flow's deadline.
    Deadline(FlowId),
}

/// The simulated network. See the [module documentation](self).
#[derive(Debug)]
pub struct Net {
    config: FaultConfig,
    rng: Rng,
    now: Option<Instant>,
    next_flow: u64,
    next_seq: u64,
    schedule: BTreeMap<(Instant, u64), Due>,
    flows: BTreeMap<FlowId, Flow>,
    /// The primary flow of each open client exchange.
    by_request: BTreeMap<(ClientId, RequestId), FlowId>,
    outputs: VecDeque<NetOutput>,
    faults: VecDeque<Fault>,
}

impl Net {
    /// A network behaving as `config`, its random choices drawn from `seed`.
    pub fn new(config: FaultConfig, seed: u64) -> Net {
        Net {
            config,
            rng: Rng::new(seed),
            now: None,
            next_flow: 0,
            next_seq: 0,
            schedule: BTreeMap::new(),
            flows: BTreeMap::new(),
            by_request: BTreeMap::new(),
            outputs: VecDeque::new(),
            faults: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// How many client exchanges are open (sent, not yet ended, failed or cancelled).
    pub fn open_exchanges(&self) -> usize {
        self.by_request.len()
    }

    /// How many client exchanges `client` has open.
    pub fn open_exchanges_of(&self, client: ClientId) -> usize {
        self.by_request
            .range((client, RequestId(0))..=(client, RequestId(u64::MAX)))
            .count()
    }

    // ----- commands -------------------------------------------------------------------------

    /// `client` sends `transmit` at `now`: the network decides its fate and schedules its
    /// arrival at the server (or the client's failure). A second transmit with an id the client
    /// still has open replaces the first one's bookkeeping (clients never do that).
    pub fn send(&mut self, client: ClientId, transmit: Transmit, now: Instant) {
        let now = self.advance(now);
        let Transmit {
            id,
            request,
            deadline,
        } = transmit;
        let duplicate = self.rng.chance(self.config.duplicate);
        let flow = self.new_flow(client, id, false);
        self.by_request.insert((client, id), flow);
        if let Some(deadline) = deadline {
            self.at(deadline.max(now), Due::Deadline(flow));
        }
        if !duplicate {
            // Faults before the server: the client may be told the truth (not applied).
            if self.rng.chance(self.config.drop_request) {
                let kind = if self.rng.chance(0.5) {
                    TransportErrorKind::Connect
                } else {
                    TransportErrorKind::ConnectionReset
                };
                self.fault(now, client, id, FaultKind::DropRequest(kind));
                self.flow_mut(flow).server_done = true;
                let at = now + self.one_way() + self.one_way();
                self.deliver_at(flow, at, failed(id, kind, "request lost by sim::net"));
                return;
            }
            if let Some(status) = self.draw_injection() {
                let applied = status != 429 && self.rng.chance(0.5);
                let retry_after = self.draw_retry_after(status);
                if !applied {
                    self.fault(
                        now,
                        client,
                        id,
                        FaultKind::Inject {
                            status,
                            applied: false,
                        },
                    );
                    self.flow_mut(flow).server_done = true;
                    let at = now + self.one_way() + self.one_way();
                    self.inject_response(flow, at, status, retry_after);
                    return;
                }
                self.flow_mut(flow).answer = Answer::Inject(status, retry_after);
            }
            if self.flow(flow).answer == Answer::Normal
                && self.rng.chance(self.config.drop_response)
            {
                let kind = if self.rng.chance(0.5) {
                    TransportErrorKind::ConnectionReset
                } else {
                    TransportErrorKind::Timeout
                };
                self.flow_mut(flow).answer = Answer::Drop(kind);
            }
        }
        if self.rng.chance(self.config.split_body) {
            let max = [1, 2, 7, 64, 1024][self.rng.below(5) as usize];
            self.flow_mut(flow).split = Some(max);
        }
        let copy = duplicate.then(|| clone_request(&request));
        self.flow_mut(flow).request = Some(request);
        let at = self.arrival(now, client, id);
        self.at(at, Due::Arrive(flow));
        if let Some(copy) = copy {
            self.fault(now, client, id, FaultKind::Duplicate);
            let shadow = self.new_flow(client, id, true);
            let s = self.flow_mut(shadow);
            s.request = Some(copy);
            s.client_done = true;
            // Right behind the first copy: see `FaultConfig::duplicate`.
            self.at(at, Due::Arrive(shadow));
            // Which copy's answer the client sees is a coin flip.
            if self.rng.chance(0.5) {
                self.swap_roles(flow, shadow);
            }
        }
    }

    /// The server produced `out` for the exchange of `flow` at `now`: schedule it for the
    /// client (or apply the flow's fault to it).
    pub fn respond(&mut self, flow: FlowId, out: ExchangeOutput, now: Instant) {
        let now = self.advance(now);
        let Some(f) = self.flows.get_mut(&flow) else {
            return;
        };
        if f.server_done {
            return;
        }
        let terminal = matches!(out, ExchangeOutput::End | ExchangeOutput::Reset);
        if terminal {
            f.server_done = true;
        }
        let (client, id, answer) = (f.client, f.id, f.answer);
        if f.shadow || f.client_done {
            // Nobody listens: a still-open exchange is closed.
            if !terminal {
                self.cancel_server(flow);
            }
            self.gc(flow);
            return;
        }
        match (answer, out) {
            (Answer::Drop(kind), _) => {
                self.fault(now, client, id, FaultKind::DropResponse(kind));
                if !terminal {
                    self.cancel_server(flow);
                }
                let at = self.next_delivery(flow, now);
                self.deliver_at(flow, at, failed(id, kind, "response lost by sim::net"));
            }
            (Answer::Inject(status, retry_after), _) => {
                self.fault(
                    now,
                    client,
                    id,
                    FaultKind::Inject {
                        status,
                        applied: true,
                    },
                );
                if !terminal {
                    self.cancel_server(flow);
                }
                let at = self.next_delivery(flow, now);
                self.inject_response(flow, at, status, retry_after);
            }
            (Answer::Normal, ExchangeOutput::Head(parts)) => {
                let at = self.next_delivery(flow, now);
                self.deliver_at(flow, at, Input::Head { id, parts });
            }
            (Answer::Normal, ExchangeOutput::Body(chunk)) => self.body(flow, chunk, now),
            (Answer::Normal, ExchangeOutput::End) => {
                let at = self.next_delivery(flow, now);
                self.deliver_at(flow, at, Input::End { id });
            }
            (Answer::Normal, ExchangeOutput::Reset) => {
                let at = self.next_delivery(flow, now);
                let input = failed(
                    id,
                    TransportErrorKind::ConnectionReset,
                    "the server reset the connection",
                );
                self.deliver_at(flow, at, input);
            }
        }
    }

    /// `client` abandons exchange `id` (its [`poll_cancel`](crate::Machine::poll_cancel)): nothing
    /// more is delivered for it, and the server's exchange is cancelled. Unknown ids are
    /// ignored.
    pub fn cancel(&mut self, client: ClientId, id: RequestId, now: Instant) {
        self.advance(now);
        let Some(flow) = self.by_request.remove(&(client, id)) else {
            return;
        };
        self.client_gone(flow);
    }

    /// Abandons every open exchange of `client` (it went away).
    pub fn disconnect(&mut self, client: ClientId, now: Instant) {
        self.advance(now);
        let flows: Vec<FlowId> = self
            .by_request
            .range((client, RequestId(0))..=(client, RequestId(u64::MAX)))
            .map(|(_, f)| *f)
            .collect();
        for flow in flows {
            let id = self.flow(flow).id;
            self.by_request.remove(&(client, id));
            self.client_gone(flow);
        }
    }

    /// Releases what is due at `now`: arrivals at the server, deliveries to clients, deadlines.
    /// Safe to call at any time.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        while let Some(entry) = self.schedule.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let due = entry.remove();
            match due {
                Due::Arrive(flow) => self.arrive(flow),
                Due::Deliver(flow, input) => self.release(flow, input),
                Due::Deadline(flow) => self.deadline(flow, now),
            }
        }
    }

    // ----- outputs --------------------------------------------------------------------------

    /// The next thing the owner must do. Changes after every command and
    /// [`handle_timeout`](Self::handle_timeout).
    #[must_use]
    pub fn poll_output(&mut self) -> Option<NetOutput> {
        self.outputs.pop_front()
    }

    /// The next fault injected, for a trace. Changes after [`send`](Self::send),
    /// [`respond`](Self::respond) and [`handle_timeout`](Self::handle_timeout).
    #[must_use]
    pub fn poll_fault(&mut self) -> Option<Fault> {
        self.faults.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has something to do; `None` when
    /// nothing is on the way. Changes after every command and `handle_timeout`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.schedule.keys().next().map(|(t, _)| *t)
    }

    // ----- internals ------------------------------------------------------------------------

    /// Time never goes backwards.
    fn advance(&mut self, now: Instant) -> Instant {
        let now = self.now.map_or(now, |n| n.max(now));
        self.now = Some(now);
        now
    }

    fn new_flow(&mut self, client: ClientId, id: RequestId, shadow: bool) -> FlowId {
        let flow = FlowId(self.next_flow);
        self.next_flow += 1;
        self.flows.insert(
            flow,
            Flow {
                client,
                id,
                request: None,
                shadow,
                answer: Answer::Normal,
                split: None,
                last_delivery: None,
                at_server: false,
                server_done: false,
                client_done: false,
            },
        );
        flow
    }

    fn flow(&self, flow: FlowId) -> &Flow {
        &self.flows[&flow]
    }

    fn flow_mut(&mut self, flow: FlowId) -> &mut Flow {
        self.flows.get_mut(&flow).expect("a known flow")
    }

    /// Makes `shadow` the copy the client listens to, and `primary` the discarded one.
    fn swap_roles(&mut self, primary: FlowId, shadow: FlowId) {
        let (client, id) = {
            let p = self.flow_mut(primary);
            p.shadow = true;
            p.client_done = true;
            (p.client, p.id)
        };
        let s = self.flow_mut(shadow);
        s.shadow = false;
        s.client_done = false;
        let split = self.flow(primary).split;
        self.flow_mut(shadow).split = split;
        self.by_request.insert((client, id), shadow);
        // The deadline stays with the client's exchange.
        let deadlines: Vec<(Instant, u64)> = self
            .schedule
            .iter()
            .filter(|(_, d)| matches!(d, Due::Deadline(f) if *f == primary))
            .map(|(k, _)| *k)
            .collect();
        for k in deadlines {
            self.schedule.insert(k, Due::Deadline(shadow));
        }
    }

    fn one_way(&mut self) -> Duration {
        let jitter = u64::try_from(self.config.jitter.as_nanos()).unwrap_or(u64::MAX);
        self.config.latency + Duration::from_nanos(self.rng.below(jitter.saturating_add(1)))
    }

    /// When a request sent at `now` arrives (a reorder fault may hold it back).
    fn arrival(&mut self, now: Instant, client: ClientId, id: RequestId) -> Instant {
        let mut at = now + self.one_way();
        if self.rng.chance(self.config.reorder) {
            let max = u64::try_from(self.config.reorder_delay.as_nanos()).unwrap_or(u64::MAX);
            let extra = Duration::from_nanos(self.rng.below(max.saturating_add(1)));
            self.fault(now, client, id, FaultKind::Reorder(extra));
            at += extra;
        }
        at
    }

    /// The time of the next piece of `flow`'s answer: a latency after `now`, never before the
    /// previous piece.
    fn next_delivery(&mut self, flow: FlowId, now: Instant) -> Instant {
        let at = now + self.one_way();
        let f = self.flow_mut(flow);
        let at = f.last_delivery.map_or(at, |l| l.max(at));
        f.last_delivery = Some(at);
        at
    }

    fn at(&mut self, at: Instant, due: Due) {
        self.next_seq += 1;
        self.schedule.insert((at, self.next_seq), due);
    }

    fn deliver_at(&mut self, flow: FlowId, at: Instant, input: Input) {
        self.at(at, Due::Deliver(flow, input));
    }

    fn fault(&mut self, at: Instant, client: ClientId, id: RequestId, kind: FaultKind) {
        self.faults.push_back(Fault {
            at,
            client,
            id,
            kind,
        });
    }

    fn draw_injection(&mut self) -> Option<u16> {
        let c = &self.config;
        let (p429, p500, p503) = (c.inject_429, c.inject_500, c.inject_503);
        if self.rng.chance(p429) {
            Some(429)
        } else if self.rng.chance(p500) {
            Some(500)
        } else if self.rng.chance(p503) {
            Some(503)
        } else {
            None
        }
    }

    fn draw_retry_after(&mut self, status: u16) -> Option<u32> {
        (status != 500).then(|| {
            self.rng
                .below(u64::from(self.config.max_retry_after_secs) + 1) as u32
        })
    }

    /// Schedules an injected answer (head, short body, end) for `flow` at `at`.
    fn inject_response(
        &mut self,
        flow: FlowId,
        at: Instant,
        status: u16,
        retry_after: Option<u32>,
    ) {
        let id = self.flow(flow).id;
        let mut b = http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "text/plain");
        if let Some(secs) = retry_after {
            b = b.header(http::header::RETRY_AFTER, secs.to_string());
        }
        let (parts, ()) = b.body(()).expect("a valid injected response").into_parts();
        self.deliver_at(flow, at, Input::Head { id, parts });
        let chunk = Bytes::from_static(b"injected by sim::net");
        self.deliver_at(flow, at, Input::Body { id, chunk });
        self.deliver_at(flow, at, Input::End { id });
    }

    /// A body piece of a normal answer: maybe reset, maybe split.
    fn body(&mut self, flow: FlowId, chunk: Bytes, now: Instant) {
        let (client, id, split) = {
            let f = self.flow(flow);
            (f.client, f.id, f.split)
        };
        if self.rng.chance(self.config.reset_body) {
            let cut = self.rng.below(chunk.len() as u64) as usize;
            self.fault(now, client, id, FaultKind::ResetBody(cut));
            self.flow_mut(flow).server_done = true;
            self.cancel_server(flow);
            let at = self.next_delivery(flow, now);
            if cut > 0 {
                let chunk = chunk.slice(..cut);
                self.deliver_at(flow, at, Input::Body { id, chunk });
            }
            let input = failed(
                id,
                TransportErrorKind::ConnectionReset,
                "connection reset by sim::net",
            );
            self.deliver_at(flow, at, input);
            return;
        }
        let Some(max) = split.filter(|m| *m < chunk.len()) else {
            let at = self.next_delivery(flow, now);
            self.deliver_at(flow, at, Input::Body { id, chunk });
            return;
        };
        self.fault(now, client, id, FaultKind::SplitBody(max));
        let mut rest = chunk;
        while !rest.is_empty() {
            let n = (1 + self.rng.below(max as u64) as usize).min(rest.len());
            let piece = rest.split_to(n);
            let at = self.next_delivery(flow, now);
            self.deliver_at(flow, at, Input::Body { id, chunk: piece });
        }
    }

    fn cancel_server(&mut self, flow: FlowId) {
        let f = self.flow_mut(flow);
        f.server_done = true;
        if f.at_server {
            self.outputs.push_back(NetOutput::CancelServer { flow });
        }
    }

    /// The client of `flow` is no longer listening.
    fn client_gone(&mut self, flow: FlowId) {
        let f = self.flow_mut(flow);
        f.client_done = true;
        if f.at_server && !f.server_done {
            self.cancel_server(flow);
        }
        self.gc(flow);
    }

    /// Forgets a flow nobody will hear from again.
    fn gc(&mut self, flow: FlowId) {
        let f = self.flow(flow);
        if f.client_done && (f.server_done || (!f.at_server && f.request.is_none())) {
            self.flows.remove(&flow);
        }
    }

    fn arrive(&mut self, flow: FlowId) {
        let Some(f) = self.flows.get_mut(&flow) else {
            return;
        };
        let Some(request) = f.request.take() else {
            return;
        };
        if f.client_done && !f.shadow {
            // The client gave up before it arrived: the request dies with the connection.
            f.server_done = true;
            self.gc(flow);
            return;
        }
        f.at_server = true;
        let (client, id, duplicate) = (f.client, f.id, f.shadow);
        self.outputs.push_back(NetOutput::ToServer {
            flow,
            client,
            id,
            request,
            duplicate,
        });
    }

    fn release(&mut self, flow: FlowId, input: Input) {
        let Some(f) = self.flows.get_mut(&flow) else {
            return;
        };
        if f.client_done {
            return;
        }
        let client = f.client;
        if matches!(input, Input::End { .. } | Input::Failed { .. }) {
            f.client_done = true;
            let id = f.id;
            if self.by_request.get(&(client, id)) == Some(&flow) {
                self.by_request.remove(&(client, id));
            }
            if !self.flow(flow).server_done {
                self.cancel_server(flow);
            }
            self.gc(flow);
        }
        self.outputs
            .push_back(NetOutput::ToClient { client, input });
    }

    fn deadline(&mut self, flow: FlowId, now: Instant) {
        let Some(f) = self.flows.get(&flow) else {
            return;
        };
        if f.client_done {
            return;
        }
        let (client, id) = (f.client, f.id);
        self.fault(now, client, id, FaultKind::Deadline);
        let input = failed(
            id,
            TransportErrorKind::Timeout,
            "the exchange passed its deadline",
        );
        self.release(flow, input);
    }
}

fn failed(id: RequestId, kind: TransportErrorKind, message: &str) -> Input {
    Input::Failed {
        id,
        error: TransportError::new(kind, message),
    }
}

/// A copy of a request (method, URI, version, headers, body; extensions are not copied).
pub fn clone_request(request: &http::Request<Bytes>) -> http::Request<Bytes> {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn transmit(id: u64, deadline: Option<Instant>) -> Transmit {
        Transmit {
            id: RequestId(id),
            request: http::Request::builder()
                .method("POST")
                .uri("http://sim/s")
                .body(Bytes::from_static(b"x"))
                .unwrap(),
            deadline,
        }
    }

    /// Runs the net to quiescence, answering every request with `200` + `body`.
    fn run(net: &mut Net, mut now: Instant, body: &'static [u8]) -> (Vec<Input>, usize) {
        let mut inputs = Vec::new();
        let mut arrivals = 0;
        loop {
            while let Some(out) = net.poll_output() {
                match out {
                    NetOutput::ToServer { flow, .. } => {
                        arrivals += 1;
                        let (parts, ()) = http::Response::new(()).into_parts();
                        net.respond(flow, ExchangeOutput::Head(parts), now);
                        net.respond(flow, ExchangeOutput::Body(Bytes::from_static(body)), now);
                        net.respond(flow, ExchangeOutput::End, now);
                    }
                    NetOutput::CancelServer { .. } => {}
                    NetOutput::ToClient { input, .. } => inputs.push(input),
                }
            }
            let Some(t) = net.poll_timeout() else { break };
            now = now.max(t);
            net.handle_timeout(now);
        }
        (inputs, arrivals)
    }

    #[test]
    fn a_perfect_network_delivers_after_the_latency() {
        let start = Instant::now();
        let mut net = Net::new(FaultConfig::none(), 1);
        net.send(ClientId(1), transmit(7, None), start);
        assert_eq!(net.poll_timeout(), Some(start + Duration::from_millis(1)));
        net.handle_timeout(start);
        assert!(net.poll_output().is_none());
        let (inputs, arrivals) = run(&mut net, start, b"hello");
        assert_eq!(arrivals, 1);
        assert_eq!(inputs.len(), 3);
        assert!(matches!(&inputs[1], Input::Body { chunk, .. } if &chunk[..] == b"hello"));
        assert!(matches!(inputs[2], Input::End { id: RequestId(7) }));
        assert_eq!(net.open_exchanges(), 0);
        assert!(net.flows.is_empty());
    }

    #[test]
    fn split_bodies_arrive_whole_and_in_order() {
        let start = Instant::now();
        let config = FaultConfig {
            split_body: 1.0,
            jitter: Duration::from_millis(5),
            ..FaultConfig::none()
        };
        for seed in 0..20 {
            let mut net = Net::new(config.clone(), seed);
            net.send(ClientId(1), transmit(1, None), start);
            let (inputs, _) = run(&mut net, start, b"0123456789abcdefghijklmnopqrstuvwxyz");
            let body: Vec<u8> = inputs
                .iter()
                .filter_map(|i| match i {
                    Input::Body { chunk, .. } => Some(chunk.to_vec()),
                    _ => None,
                })
                .flatten()
                .collect();
            assert_eq!(&body[..], b"0123456789abcdefghijklmnopqrstuvwxyz");
            assert!(matches!(inputs.last(), Some(Input::End { .. })));
        }
    }

    #[test]
    fn duplicates_reach_the_server_twice_and_the_client_once() {
        let start = Instant::now();
        let config = FaultConfig {
            duplicate: 1.0,
            ..FaultConfig::none()
        };
        let mut net = Net::new(config, 3);
        net.send(ClientId(1), transmit(1, None), start);
        let (inputs, arrivals) = run(&mut net, start, b"x");
        assert_eq!(arrivals, 2);
        assert_eq!(
            inputs
                .iter()
                .filter(|i| matches!(i, Input::End { .. }))
                .count(),
            1
        );
        assert!(matches!(
            net.poll_fault().unwrap().kind,
            FaultKind::Duplicate
        ));
    }

    /// A duplicate copy applied after the client got a definite refusal of the other would
    /// make the refusal a lie (the sweeps found a producer "re-storing" such a batch under a
    /// new epoch): the copies must reach the server back to back, however reordered.
    #[test]
    fn duplicate_copies_arrive_back_to_back() {
        let start = Instant::now();
        let config = FaultConfig {
            duplicate: 1.0,
            reorder: 1.0,
            reorder_delay: Duration::from_secs(1),
            jitter: Duration::from_millis(50),
            ..FaultConfig::none()
        };
        for seed in 0..32 {
            let mut net = Net::new(config.clone(), seed);
            net.send(ClientId(1), transmit(1, None), start);
            net.send(ClientId(1), transmit(2, None), start);
            let mut arrivals = Vec::new();
            while let Some(t) = net.poll_timeout() {
                net.handle_timeout(t);
                while let Some(out) = net.poll_output() {
                    if let NetOutput::ToServer { id, .. } = out {
                        arrivals.push((t, id));
                    }
                }
            }
            assert_eq!(arrivals.len(), 4);
            for pair in arrivals.chunks(2) {
                assert_eq!(pair[0], pair[1], "seed {seed}: {arrivals:?}");
            }
        }
    }

    #[test]
    fn dropped_requests_never_arrive_and_dropped_responses_do() {
        let start = Instant::now();
        let config = FaultConfig {
            drop_request: 1.0,
            ..FaultConfig::none()
        };
        let mut net = Net::new(config, 3);
        net.send(ClientId(1), transmit(1, None), start);
        let (inputs, arrivals) = run(&mut net, start, b"x");
        assert_eq!(arrivals, 0);
        assert!(matches!(inputs[..], [Input::Failed { .. }]));

        let config = FaultConfig {
            drop_response: 1.0,
            ..FaultConfig::none()
        };
        let mut net = Net::new(config, 3);
        net.send(ClientId(1), transmit(1, None), start);
        let (inputs, arrivals) = run(&mut net, start, b"x");
        assert_eq!(arrivals, 1);
        match &inputs[..] {
            [Input::Failed { error, .. }] => assert_ne!(error.kind, TransportErrorKind::Connect),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn injected_429_never_reaches_the_server() {
        let start = Instant::now();
        let config = FaultConfig {
            inject_429: 1.0,
            max_retry_after_secs: 2,
            ..FaultConfig::none()
        };
        let mut net = Net::new(config, 3);
        net.send(ClientId(1), transmit(1, None), start);
        let (inputs, arrivals) = run(&mut net, start, b"x");
        assert_eq!(arrivals, 0);
        match &inputs[0] {
            Input::Head { parts, .. } => {
                assert_eq!(parts.status, 429);
                assert!(parts.headers.contains_key(http::header::RETRY_AFTER));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deadlines_fail_open_exchanges_and_cancel_the_server() {
        let start = Instant::now();
        let mut net = Net::new(FaultConfig::none(), 3);
        let deadline = start + Duration::from_millis(50);
        net.send(ClientId(1), transmit(1, Some(deadline)), start);
        net.handle_timeout(start + Duration::from_millis(1));
        let Some(NetOutput::ToServer { flow, .. }) = net.poll_output() else {
            panic!()
        };
        net.handle_timeout(deadline);
        assert!(matches!(
            net.poll_output(),
            Some(NetOutput::CancelServer { flow: f }) if f == flow
        ));
        assert!(matches!(
            net.poll_output(),
            Some(NetOutput::ToClient { input: Input::Failed { error, .. }, .. })
                if error.kind == TransportErrorKind::Timeout
        ));
        assert_eq!(net.open_exchanges(), 0);
    }

    #[test]
    fn cancelled_exchanges_get_nothing_more() {
        let start = Instant::now();
        let mut net = Net::new(FaultConfig::none(), 3);
        net.send(ClientId(1), transmit(1, None), start);
        net.handle_timeout(start + Duration::from_millis(1));
        let Some(NetOutput::ToServer { flow, .. }) = net.poll_output() else {
            panic!()
        };
        let (parts, ()) = http::Response::new(()).into_parts();
        net.respond(flow, ExchangeOutput::Head(parts), start);
        net.cancel(ClientId(1), RequestId(1), start);
        assert!(matches!(
            net.poll_output(),
            Some(NetOutput::CancelServer { .. })
        ));
        net.handle_timeout(start + Duration::from_secs(1));
        assert!(net.poll_output().is_none());
    }

    #[test]
    fn random_mixes_are_reproducible_and_varied() {
        assert_eq!(FaultConfig::random(5), FaultConfig::random(5));
        let faulty = (0..64)
            .filter(|s| FaultConfig::random(*s).is_faulty())
            .count();
        assert!(faulty > 32 && faulty < 64, "{faulty}");
    }
}
