//! A deterministic world: a virtual clock, a [`SimServer`], a faulty [`Net`] and any number of
//! client state machines, driven together (DESIGN.md sections 2 and 4).
//!
//! A [`World`] owns every party of a simulation and runs them the way real drivers would, but
//! on virtual time: after each change it drains every machine's outputs
//! ([`Machine::poll_cancel`], [`Machine::poll_transmit`], [`Machine::poll_event`]) into the
//! network, hands arriving requests to the server, routes the server's answers back through the
//! network, and then jumps straight to the earliest instant any party asked for
//! ([`Machine::poll_timeout`], [`Net::poll_timeout`], [`SimServer::poll_timeout`], or an action
//! the test scheduled). Nothing ever sleeps, and nothing depends on the real clock: the world's
//! time starts at an `Instant` you give it once and only moves when the world moves it.
//!
//! Parties are [`Reader`]s, [`Producer`]s, subscription [`Worker`]s, the world's built-in [`Requester`] for one-shot
//! requests ([`World::request`], [`World::call`]), or any [`Machine`] of your own whose events
//! convert into [`PartyEvent`]. Application commands (append, flush, close, stop, ...) are
//! ordinary method calls on the machines ([`World::producer_mut`] and friends), made between
//! steps or from an action scheduled at a chosen virtual time ([`World::schedule`]).
//!
//! # Determinism and the trace
//!
//! The same [`WorldConfig`] (seed, fault mix, server configuration), the same parties and the
//! same commands give the same run, byte for byte: every random choice comes from seeded
//! [`Rng`](crate::rng::Rng)s. The world records each transmit, cancel, arrival at the server,
//! delivery to a client, fault and event as a [`TraceEntry`] (kept when
//! [`WorldConfig::record_trace`] is set) and folds all of them into [`World::trace_hash`], so a
//! test can assert that a seed replays exactly.
//!
//! # Limits
//!
//! A run is bounded: by [`WorldConfig::max_steps`], by [`WorldConfig::max_time`] of virtual
//! time, and by [`WorldConfig::max_steps_per_instant`] steps without time moving. Hitting a
//! bound, or waiting for a condition when nothing at all is scheduled, is a typed
//! [`SimError`].
//!
//! # Example: testing an application against a faulty network
//!
//! ```
//! use bytes::Bytes;
//! use ds_proto::ops::{create_request, CreateOptions, RequestExtras};
//! use ds_proto::producer::{ProducerConfig, ProducerEvent};
//! use ds_proto::reader::{ReadMode, ReaderConfig, ReaderEvent};
//! use ds_proto::sim::net::FaultConfig;
//! use ds_proto::sim::world::{PartyEvent, World, WorldConfig};
//! use ds_proto::{Producer, Reader};
//! use std::time::Duration;
//!
//! # #[allow(clippy::disallowed_methods)]
//! let start = std::time::Instant::now(); // read once; the world's clock is virtual
//! let config = WorldConfig {
//!     faults: FaultConfig::random(7), // a seeded mix of drops, duplicates, 429/5xx, ...
//!     ..WorldConfig::new(7)
//! };
//! let mut world = World::new(config, start);
//! let url = "http://sim/v1/stream/orders";
//!
//! // Set up the stream over the network (a one-shot request; retried here by hand).
//! loop {
//!     let put = create_request(url, &CreateOptions::default(), &RequestExtras::default()).unwrap();
//!     match world.call(put).unwrap() {
//!         Ok(resp) if resp.status().is_success() => break,
//!         _ => world.run_for(Duration::from_millis(100)).unwrap(),
//!     }
//! }
//!
//! // A writer and a live reader.
//! let now = world.now();
//! let writer = world.add_machine(
//!     Producer::new(ProducerConfig::new(url, "writer-1"), now).unwrap(),
//! );
//! let reader = world.add_machine(
//!     Reader::new(ReaderConfig { mode: ReadMode::Sse, ..ReaderConfig::new(url) }, now).unwrap(),
//! );
//!
//! // The application: three appends now, a close two seconds later.
//! for order in ["a", "b", "c"] {
//!     let now = world.now();
//!     world.producer_mut(writer).unwrap().append(Bytes::from(order), now).unwrap();
//! }
//! world.schedule(start + Duration::from_secs(2), move |w| {
//!     let now = w.now();
//!     w.producer_mut(writer).unwrap().close(now).unwrap();
//! });
//!
//! // Run until the reader sees EOF, checking what each party reports.
//! let mut read = Vec::new();
//! let mut eof = false;
//! while !eof {
//!     world.step().unwrap();
//!     while let Some(e) = world.poll_event() {
//!         match e.event {
//!             PartyEvent::Reader(ReaderEvent::Data(chunk)) => read.extend_from_slice(&chunk.data),
//!             PartyEvent::Reader(ReaderEvent::Closed { .. }) => eof = true,
//!             PartyEvent::Producer(ProducerEvent::Failed { reason, .. }) => {
//!                 // A seed with harsh faults may exhaust the writer's retries: an
//!                 // application decides what to do; this one checks the stream instead.
//!                 assert!(e.client == writer, "{reason}");
//!             }
//!             _ => {}
//!         }
//!     }
//! }
//! // What the reader saw is exactly what the server stored.
//! assert_eq!(read, world.server().stream_bytes("/v1/stream/orders").unwrap());
//!
//! // Same seed, same run: the trace hash is a fingerprint of everything that happened.
//! println!("trace {:016x} after {} steps", world.trace_hash(), world.steps());
//! ```

use super::net::{ClientId, FaultConfig, FaultKind, FlowId, Net, NetOutput};
use super::server::{ExchangeId, SimServer, SimServerConfig};
use crate::io::{Input, RequestId, Transmit, TransportError};
use crate::machine::Machine;
use crate::producer::{Producer, ProducerEvent};
use crate::reader::{Reader, ReaderEvent};
use crate::subscription::{Worker, WorkerEvent};
use bytes::{Bytes, BytesMut};
use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

/// How a [`World`] is set up and bounded.
#[derive(Debug, Clone, PartialEq)]
pub struct WorldConfig {
    /// The run's seed: the network's random choices derive from it (and, with
    /// [`WorldConfig::new`], the server's seed too).
    pub seed: u64,
    /// The network's latencies and fault mix.
    pub faults: FaultConfig,
    /// The server's configuration. When its `clock_origin` is `None`, the world's start is
    /// used.
    pub server: SimServerConfig,
    /// The most steps (instants the world jumps to) a run may take. Default: 1 000 000.
    pub max_steps: u64,
    /// The most virtual time a run may cover, from the start. Default: one day.
    pub max_time: Duration,
    /// The most consecutive steps without virtual time moving (a livelock guard).
    /// Default: 10 000.
    pub max_steps_per_instant: u64,
    /// Keep every [`TraceEntry`] ([`World::trace`]); the hash is computed either way.
    /// Default: `false`.
    pub record_trace: bool,
}

impl WorldConfig {
    /// The defaults documented on each field, a fault-free network, and a default server
    /// whose seed derives from `seed`.
    pub fn new(seed: u64) -> Self {
        WorldConfig {
            seed,
            faults: FaultConfig::none(),
            server: SimServerConfig {
                seed: crate::rng::Rng::new(seed ^ 0x7365_7276_6572).next_u64(),
                ..SimServerConfig::default()
            },
            max_steps: 1_000_000,
            max_time: Duration::from_secs(86_400),
            max_steps_per_instant: 10_000,
            record_trace: false,
        }
    }
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig::new(0)
    }
}

/// Why a run stopped before what it was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// No progress: nothing at all is scheduled (no timer, nothing on the network), yet the
    /// condition the run waits for does not hold.
    #[error("no progress at {at:?}: nothing is scheduled and the awaited condition does not hold")]
    Stalled {
        /// Virtual time since the start.
        at: Duration,
    },
    /// No progress: [`WorldConfig::max_steps_per_instant`] steps in a row without virtual time
    /// moving (a party keeps asking to be woken now).
    #[error("no progress at {at:?}: {steps} steps without time moving")]
    Livelock {
        /// Virtual time since the start.
        at: Duration,
        /// Steps taken at that instant.
        steps: u64,
    },
    /// [`WorldConfig::max_steps`] reached.
    #[error("step limit of {limit} reached at {at:?}")]
    StepLimit {
        /// The limit.
        limit: u64,
        /// Virtual time since the start.
        at: Duration,
    },
    /// The next thing to do lies beyond [`WorldConfig::max_time`].
    #[error("time limit of {limit:?} reached")]
    TimeLimit {
        /// The limit.
        limit: Duration,
    },
}

/// An event of a custom party (see [`PartyEvent::Other`]): any `Debug` type.
pub trait CustomEvent: Any + fmt::Debug {
    /// The event, to downcast.
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any + fmt::Debug> CustomEvent for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The answer to a one-shot request sent with [`World::request`].
#[derive(Debug)]
pub struct OneShotResponse {
    /// The id [`World::request`] returned.
    pub id: RequestId,
    /// The whole response, or the transport failure the client saw.
    pub result: Result<http::Response<Bytes>, TransportError>,
}

/// What a party reported.
#[derive(Debug)]
#[non_exhaustive]
pub enum PartyEvent {
    /// From a [`Reader`].
    Reader(ReaderEvent),
    /// From a [`Producer`].
    Producer(ProducerEvent),
    /// From the world's [`Requester`].
    Response(OneShotResponse),
    /// From a subscription [`Worker`].
    Worker(WorkerEvent),
    /// From a custom machine: implement `From<YourEvent> for PartyEvent` as
    /// `PartyEvent::Other(Box::new(event))`, and downcast with [`PartyEvent::downcast_ref`].
    Other(Box<dyn CustomEvent>),
}

impl PartyEvent {
    /// The reader event, if it is one.
    pub fn as_reader(&self) -> Option<&ReaderEvent> {
        match self {
            PartyEvent::Reader(e) => Some(e),
            _ => None,
        }
    }

    /// The producer event, if it is one.
    pub fn as_producer(&self) -> Option<&ProducerEvent> {
        match self {
            PartyEvent::Producer(e) => Some(e),
            _ => None,
        }
    }

    /// The worker event, if it is one.
    pub fn as_worker(&self) -> Option<&WorkerEvent> {
        match self {
            PartyEvent::Worker(e) => Some(e),
            _ => None,
        }
    }

    /// A custom event of type `T`, if it is one.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        match self {
            PartyEvent::Other(e) => (**e).as_any().downcast_ref(),
            _ => None,
        }
    }
}

impl From<ReaderEvent> for PartyEvent {
    fn from(e: ReaderEvent) -> Self {
        PartyEvent::Reader(e)
    }
}

impl From<ProducerEvent> for PartyEvent {
    fn from(e: ProducerEvent) -> Self {
        PartyEvent::Producer(e)
    }
}

impl From<WorkerEvent> for PartyEvent {
    fn from(e: WorkerEvent) -> Self {
        PartyEvent::Worker(e)
    }
}

impl From<OneShotResponse> for PartyEvent {
    fn from(e: OneShotResponse) -> Self {
        PartyEvent::Response(e)
    }
}

/// An event, with who reported it and when.
#[derive(Debug)]
pub struct WorldEvent {
    /// When the party reported it.
    pub at: Instant,
    /// The party.
    pub client: ClientId,
    /// What it reported.
    pub event: PartyEvent,
}

/// One thing that happened, for the trace.
#[derive(Debug, Clone)]
pub struct TraceEntry {
    /// Virtual time since the start.
    pub at: Duration,
    /// What happened.
    pub kind: TraceKind,
}

/// The kinds of [`TraceEntry`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TraceKind {
    /// A party emitted a request.
    Transmit {
        /// The party.
        client: ClientId,
        /// Its id for the exchange.
        id: RequestId,
        /// The method.
        method: http::Method,
        /// The URI.
        uri: http::Uri,
        /// The headers.
        headers: http::HeaderMap,
        /// The body.
        body: Bytes,
        /// The deadline, as time since the start.
        deadline: Option<Duration>,
    },
    /// A party abandoned an exchange.
    Cancel {
        /// The party.
        client: ClientId,
        /// Its id for the exchange.
        id: RequestId,
    },
    /// A copy of a request reached the server.
    Arrive {
        /// The party that sent it.
        client: ClientId,
        /// Its id for the exchange.
        id: RequestId,
        /// The server's id for it.
        exchange: ExchangeId,
        /// This copy is a duplicate the client never hears of.
        duplicate: bool,
    },
    /// The network cancelled a server exchange (its connection is gone).
    ServerCancel {
        /// The server's id for it.
        exchange: ExchangeId,
    },
    /// A party was fed an input.
    Deliver {
        /// The party.
        client: ClientId,
        /// The input.
        input: Input,
    },
    /// The network injected a fault.
    Fault {
        /// The party whose exchange it hit.
        client: ClientId,
        /// Its id for the exchange.
        id: RequestId,
        /// What happened.
        kind: FaultKind,
    },
    /// A party reported an event (its `Debug` text).
    Event {
        /// The party.
        client: ClientId,
        /// The event, formatted with `{:?}`.
        event: String,
    },
    /// A party was added.
    Join {
        /// The party.
        client: ClientId,
    },
    /// A party was removed.
    Leave {
        /// The party.
        client: ClientId,
    },
    /// A scheduled action ran.
    Action,
}

/// A client of the world's own: sends raw one-shot requests and reports each whole response
/// as a [`OneShotResponse`]. No retries: build requests with [`crate::ops`] and interpret
/// responses with its interpreters.
#[derive(Debug, Default)]
pub struct Requester {
    next_id: u64,
    queued: VecDeque<Transmit>,
    open: BTreeMap<RequestId, Option<(http::response::Parts, BytesMut)>>,
    events: VecDeque<OneShotResponse>,
}

impl Requester {
    /// Queues `request`, to be sent at the next drain; `deadline`: when the network fails it
    /// with `Timeout` if it has not ended.
    pub fn send(&mut self, request: http::Request<Bytes>, deadline: Option<Instant>) -> RequestId {
        self.next_id += 1;
        let id = RequestId(self.next_id);
        self.queued.push_back(Transmit {
            id,
            request,
            deadline,
        });
        id
    }

    /// How many requests are queued or open.
    pub fn pending(&self) -> usize {
        self.queued.len() + self.open.len()
    }
}

impl Machine for Requester {
    type Event = OneShotResponse;

    fn handle_input(&mut self, input: Input, _now: Instant) {
        let id = input.id();
        let Some(slot) = self.open.get_mut(&id) else {
            return;
        };
        match input {
            Input::Head { parts, .. } => {
                if slot.is_none() {
                    *slot = Some((parts, BytesMut::new()));
                }
            }
            Input::Body { chunk, .. } => {
                if let Some((_, body)) = slot {
                    body.extend_from_slice(&chunk);
                }
            }
            Input::End { .. } => {
                let result = match self.open.remove(&id).flatten() {
                    Some((parts, body)) => Ok(http::Response::from_parts(parts, body.freeze())),
                    None => Err(TransportError::new(
                        crate::io::TransportErrorKind::Protocol,
                        "the exchange ended without a response head",
                    )),
                };
                self.events.push_back(OneShotResponse { id, result });
            }
            Input::Failed { error, .. } => {
                self.open.remove(&id);
                self.events.push_back(OneShotResponse {
                    id,
                    result: Err(error),
                });
            }
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self, _now: Instant) -> Option<Transmit> {
        let t = self.queued.pop_front()?;
        self.open.insert(t.id, None);
        Some(t)
    }

    fn poll_cancel(&mut self) -> Option<RequestId> {
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn poll_event(&mut self) -> Option<OneShotResponse> {
        self.events.pop_front()
    }
}

/// A machine, type-erased.
trait Party {
    fn handle_input(&mut self, input: Input, now: Instant);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit>;
    fn poll_cancel(&mut self) -> Option<RequestId>;
    fn poll_timeout(&self) -> Option<Instant>;
    fn poll_event(&mut self) -> Option<PartyEvent>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

struct Wrapped<M>(M);

impl<M> Party for Wrapped<M>
where
    M: Machine + Any,
    M::Event: Into<PartyEvent>,
{
    fn handle_input(&mut self, input: Input, now: Instant) {
        self.0.handle_input(input, now)
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.0.handle_timeout(now)
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.0.poll_transmit(now)
    }
    fn poll_cancel(&mut self) -> Option<RequestId> {
        self.0.poll_cancel()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }
    fn poll_event(&mut self) -> Option<PartyEvent> {
        self.0.poll_event().map(Into::into)
    }
    fn as_any(&self) -> &dyn Any {
        &self.0
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        &mut self.0
    }
}

/// An action scheduled by the test.
type Action = Box<dyn FnOnce(&mut World)>;

/// 64-bit FNV-1a, fed through `fmt::Write` so entries hash without an allocation.
#[derive(Debug, Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    const BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
}

impl fmt::Write for Fnv {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(Self::PRIME);
        }
        Ok(())
    }
}

/// The world: clock, server, network and parties. See the [module documentation](self).
pub struct World {
    config: WorldConfig,
    start: Instant,
    now: Instant,
    steps: u64,
    same_instant: u64,
    server: SimServer,
    net: Net,
    parties: Vec<Option<Box<dyn Party>>>,
    requester: ClientId,
    exchange_of: BTreeMap<FlowId, ExchangeId>,
    flow_of: BTreeMap<ExchangeId, FlowId>,
    actions: BTreeMap<(Instant, u64), Action>,
    next_action: u64,
    events: VecDeque<WorldEvent>,
    trace: Vec<TraceEntry>,
    trace_len: u64,
    hash: Fnv,
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("World")
            .field("seed", &self.config.seed)
            .field("elapsed", &self.elapsed())
            .field("steps", &self.steps)
            .field("parties", &self.parties.iter().flatten().count())
            .field("actions", &self.actions.len())
            .field("events", &self.events.len())
            .field("trace_len", &self.trace_len)
            .field("trace_hash", &format_args!("{:016x}", self.hash.0))
            .finish_non_exhaustive()
    }
}

impl World {
    /// A world starting at `start` (the only real `Instant` it ever sees; take it once from
    /// `Instant::now()`), with a server of `config.server`, a network of `config.faults` seeded
    /// from `config.seed`, and one party: the [`Requester`] ([`World::requester`]).
    pub fn new(mut config: WorldConfig, start: Instant) -> World {
        if config.server.clock_origin.is_none() {
            config.server.clock_origin = Some(start);
        }
        let net_seed = crate::rng::Rng::new(config.seed ^ 0x6E65_7477_6F72_6B00).next_u64();
        let mut world = World {
            server: SimServer::new(config.server.clone()),
            net: Net::new(config.faults.clone(), net_seed),
            config,
            start,
            now: start,
            steps: 0,
            same_instant: 0,
            parties: Vec::new(),
            requester: ClientId(0),
            exchange_of: BTreeMap::new(),
            flow_of: BTreeMap::new(),
            actions: BTreeMap::new(),
            next_action: 0,
            events: VecDeque::new(),
            trace: Vec::new(),
            trace_len: 0,
            hash: Fnv(Fnv::BASIS),
        };
        world.requester = world.add_machine(Requester::default());
        world
    }

    // ----- getters --------------------------------------------------------------------------

    /// The configuration.
    pub fn config(&self) -> &WorldConfig {
        &self.config
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The start of the world.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now.saturating_duration_since(self.start)
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The server (its oracles: `stream_data`, `stream_bytes`, `is_closed`, ...).
    pub fn server(&self) -> &SimServer {
        &self.server
    }

    /// The server, to set streams up directly (bypassing the network) or change it between
    /// steps.
    pub fn server_mut(&mut self) -> &mut SimServer {
        &mut self.server
    }

    /// The network.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// The id of the world's [`Requester`].
    pub fn requester(&self) -> ClientId {
        self.requester
    }

    /// The machine of party `client`, if it is an `M`.
    pub fn machine<M: Any>(&self, client: ClientId) -> Option<&M> {
        let party = self.parties.get(client.0 as usize)?.as_ref()?;
        party.as_any().downcast_ref()
    }

    /// The machine of party `client`, if it is an `M`, to issue commands (pass
    /// [`World::now`] as their time). The world drains its outputs at the next step.
    pub fn machine_mut<M: Any>(&mut self, client: ClientId) -> Option<&mut M> {
        let party = self.parties.get_mut(client.0 as usize)?.as_mut()?;
        party.as_any_mut().downcast_mut()
    }

    /// The reader of party `client`.
    pub fn reader(&self, client: ClientId) -> Option<&Reader> {
        self.machine(client)
    }

    /// The reader of party `client`, for commands.
    pub fn reader_mut(&mut self, client: ClientId) -> Option<&mut Reader> {
        self.machine_mut(client)
    }

    /// The producer of party `client`.
    pub fn producer(&self, client: ClientId) -> Option<&Producer> {
        self.machine(client)
    }

    /// The producer of party `client`, for commands.
    pub fn producer_mut(&mut self, client: ClientId) -> Option<&mut Producer> {
        self.machine_mut(client)
    }

    /// The subscription worker of party `client`.
    pub fn worker(&self, client: ClientId) -> Option<&Worker> {
        self.machine(client)
    }

    /// The subscription worker of party `client`, for commands ([`Worker::ack`],
    /// [`Worker::done`], ...).
    pub fn worker_mut(&mut self, client: ClientId) -> Option<&mut Worker> {
        self.machine_mut(client)
    }

    /// The clients added so far and not removed, in id order (the requester included).
    pub fn clients(&self) -> Vec<ClientId> {
        (0..self.parties.len())
            .filter(|i| self.parties[*i].is_some())
            .map(|i| ClientId(i as u32))
            .collect()
    }

    /// The trace entries recorded so far (empty unless [`WorldConfig::record_trace`]).
    pub fn trace(&self) -> &[TraceEntry] {
        &self.trace
    }

    /// Takes the trace entries recorded so far out of the world (the hash is unaffected), to
    /// check them incrementally without keeping a long run's trace in memory.
    pub fn take_trace(&mut self) -> Vec<TraceEntry> {
        std::mem::take(&mut self.trace)
    }

    /// How many trace entries happened (recorded or not).
    pub fn trace_len(&self) -> u64 {
        self.trace_len
    }

    /// A fingerprint of everything that happened so far (64-bit FNV-1a of every trace entry's
    /// `Debug` text, times relative to the start). Equal seeds and equal commands give equal
    /// hashes.
    pub fn trace_hash(&self) -> u64 {
        self.hash.0
    }

    // ----- commands -------------------------------------------------------------------------

    /// Adds a party: a [`Reader`], a [`Producer`], a [`Requester`], or any [`Machine`] whose
    /// events convert into [`PartyEvent`]. Returns its id (ids count up from 0, the world's
    /// requester). Its first outputs are drained at the next step.
    pub fn add_machine<M>(&mut self, machine: M) -> ClientId
    where
        M: Machine + Any,
        M::Event: Into<PartyEvent>,
    {
        let client = ClientId(self.parties.len() as u32);
        self.parties.push(Some(Box::new(Wrapped(machine))));
        self.record(TraceKind::Join { client });
        client
    }

    /// Removes a party (its process "crashes"): its open exchanges are abandoned (the server
    /// sees the connections go), and nothing is delivered to it any more. Returns whether it
    /// existed. Its queued events stay in [`World::poll_event`].
    pub fn remove(&mut self, client: ClientId) -> bool {
        let Some(slot) = self.parties.get_mut(client.0 as usize) else {
            return false;
        };
        if slot.take().is_none() {
            return false;
        }
        self.net.disconnect(client, self.now);
        self.record(TraceKind::Leave { client });
        true
    }

    /// Sends a one-shot request from the world's [`Requester`] (no retries); its answer comes
    /// as a [`PartyEvent::Response`] from [`World::requester`] with the returned id.
    pub fn request(&mut self, request: http::Request<Bytes>) -> RequestId {
        let requester = self.requester;
        self.machine_mut::<Requester>(requester)
            .expect("the world's requester")
            .send(request, None)
    }

    /// Sends a one-shot request and runs the world until its answer arrives (other events stay
    /// queued).
    pub fn call(
        &mut self,
        request: http::Request<Bytes>,
    ) -> Result<Result<http::Response<Bytes>, TransportError>, SimError> {
        let id = self.request(request);
        let requester = self.requester;
        let is_it = |e: &WorldEvent| {
            e.client == requester && matches!(&e.event, PartyEvent::Response(r) if r.id == id)
        };
        self.run_until_cond(|w| w.events.iter().any(is_it))?;
        let i = self
            .events
            .iter()
            .position(is_it)
            .expect("the condition held");
        match self.events.remove(i).map(|e| e.event) {
            Some(PartyEvent::Response(r)) => Ok(r.result),
            _ => unreachable!("matched above"),
        }
    }

    /// Runs `action` when virtual time reaches `at` (at once, at the next step, if `at` has
    /// passed). Actions due at the same instant run in the order they were scheduled, before
    /// the timers of that instant.
    pub fn schedule(&mut self, at: Instant, action: impl FnOnce(&mut World) + 'static) {
        self.next_action += 1;
        self.actions
            .insert((at.max(self.now), self.next_action), Box::new(action));
    }

    /// The next event any party reported, in order. Changes after every step.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<WorldEvent> {
        self.events.pop_front()
    }

    /// When the world next has something to do: the earliest timer of any party, the network,
    /// the server or a scheduled action (never before [`World::now`]); `None` when nothing at
    /// all is scheduled. Outputs that commands produced since the last step are not reflected
    /// here: [`World::step`] drains them first, at the current time.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let parties = self
            .parties
            .iter()
            .flatten()
            .filter_map(|p| p.poll_timeout());
        let others = [
            self.net.poll_timeout(),
            self.server.poll_timeout(),
            self.actions.keys().next().map(|(t, _)| *t),
        ];
        parties
            .chain(others.into_iter().flatten())
            .min()
            .map(|t| t.max(self.now))
    }

    /// One step: drains every party, then jumps to the earliest [`World::poll_timeout`] and
    /// runs what is due there (scheduled actions, then the server's, the network's and the
    /// parties' timers), and drains again. Returns `Ok(false)` when nothing at all is
    /// scheduled (the world is idle; time did not move).
    pub fn step(&mut self) -> Result<bool, SimError> {
        self.pump()?;
        let Some(next) = self.poll_timeout() else {
            return Ok(false);
        };
        self.advance(next)?;
        self.fire();
        self.pump()?;
        Ok(true)
    }

    /// Runs every step due up to `at`, then moves the clock to `at`.
    pub fn run_until(&mut self, at: Instant) -> Result<(), SimError> {
        loop {
            self.pump()?;
            match self.poll_timeout() {
                Some(t) if t <= at => {
                    self.step()?;
                }
                _ => break,
            }
        }
        if at > self.now {
            self.check_time(at)?;
            self.now = at;
            self.same_instant = 0;
            self.pump()?;
        }
        Ok(())
    }

    /// Runs for `d` of virtual time ([`World::run_until`] `now + d`).
    pub fn run_for(&mut self, d: Duration) -> Result<(), SimError> {
        self.run_until(self.now + d)
    }

    /// Steps until `done` holds (checked before every step). [`SimError::Stalled`] when the
    /// world goes idle first.
    pub fn run_until_cond(&mut self, mut done: impl FnMut(&World) -> bool) -> Result<(), SimError> {
        loop {
            self.pump()?;
            if done(self) {
                return Ok(());
            }
            if !self.step()? {
                if done(self) {
                    return Ok(());
                }
                return Err(SimError::Stalled { at: self.elapsed() });
            }
        }
    }

    /// Steps until nothing at all is scheduled. Live readers never let that happen; bound such
    /// runs with [`World::run_until`] instead.
    pub fn run_to_idle(&mut self) -> Result<(), SimError> {
        while self.step()? {}
        Ok(())
    }

    // ----- internals ------------------------------------------------------------------------

    fn record(&mut self, kind: TraceKind) {
        let entry = TraceEntry {
            at: self.elapsed(),
            kind,
        };
        self.trace_len += 1;
        let _ = writeln!(self.hash, "{entry:?}");
        if self.config.record_trace {
            self.trace.push(entry);
        }
    }

    fn check_time(&self, at: Instant) -> Result<(), SimError> {
        if at.saturating_duration_since(self.start) > self.config.max_time {
            return Err(SimError::TimeLimit {
                limit: self.config.max_time,
            });
        }
        Ok(())
    }

    /// Moves the clock to `t` (never back), enforcing the limits.
    fn advance(&mut self, t: Instant) -> Result<(), SimError> {
        let t = t.max(self.now);
        self.check_time(t)?;
        if t == self.now {
            self.same_instant += 1;
            if self.same_instant > self.config.max_steps_per_instant {
                return Err(SimError::Livelock {
                    at: self.elapsed(),
                    steps: self.same_instant,
                });
            }
        } else {
            self.same_instant = 0;
        }
        if self.steps >= self.config.max_steps {
            return Err(SimError::StepLimit {
                limit: self.config.max_steps,
                at: self.elapsed(),
            });
        }
        self.steps += 1;
        self.now = t;
        Ok(())
    }

    /// Runs what is due now.
    fn fire(&mut self) {
        let now = self.now;
        while let Some(entry) = self.actions.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let action = entry.remove();
            self.record(TraceKind::Action);
            action(self);
        }
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.server.handle_timeout(now);
        }
        if self.net.poll_timeout().is_some_and(|t| t <= now) {
            self.net.handle_timeout(now);
        }
        for party in self.parties.iter_mut().flatten() {
            if party.poll_timeout().is_some_and(|t| t <= now) {
                party.handle_timeout(now);
            }
        }
    }

    /// Drains every output of every party, the network and the server until nothing moves.
    fn pump(&mut self) -> Result<(), SimError> {
        let now = self.now;
        let mut rounds = 0u64;
        loop {
            let mut busy = false;
            for i in 0..self.parties.len() {
                let client = ClientId(i as u32);
                let Some(party) = self.parties[i].as_mut() else {
                    continue;
                };
                let mut cancels = Vec::new();
                while let Some(id) = party.poll_cancel() {
                    cancels.push(id);
                }
                let mut transmits = Vec::new();
                while let Some(t) = party.poll_transmit(now) {
                    transmits.push(t);
                }
                let mut events = Vec::new();
                while let Some(e) = party.poll_event() {
                    events.push(e);
                }
                busy |= !(cancels.is_empty() && transmits.is_empty() && events.is_empty());
                for id in cancels {
                    self.record(TraceKind::Cancel { client, id });
                    self.net.cancel(client, id, now);
                }
                for t in transmits {
                    let kind = TraceKind::Transmit {
                        client,
                        id: t.id,
                        method: t.request.method().clone(),
                        uri: t.request.uri().clone(),
                        headers: t.request.headers().clone(),
                        body: t.request.body().clone(),
                        deadline: t.deadline.map(|d| d.saturating_duration_since(self.start)),
                    };
                    self.record(kind);
                    self.net.send(client, t, now);
                }
                for event in events {
                    self.record(TraceKind::Event {
                        client,
                        event: format!("{event:?}"),
                    });
                    self.events.push_back(WorldEvent {
                        at: now,
                        client,
                        event,
                    });
                }
            }
            busy |= self.drain_net();
            while let Some((exchange, out)) = self.server.poll_output() {
                busy = true;
                let terminal = matches!(
                    out,
                    super::server::ExchangeOutput::End | super::server::ExchangeOutput::Reset
                );
                let Some(flow) = self.flow_of.get(&exchange).copied() else {
                    continue;
                };
                if terminal {
                    self.flow_of.remove(&exchange);
                    self.exchange_of.remove(&flow);
                }
                self.net.respond(flow, out, now);
            }
            busy |= self.drain_net();
            if !busy {
                return Ok(());
            }
            rounds += 1;
            if rounds > self.config.max_steps_per_instant {
                return Err(SimError::Livelock {
                    at: self.elapsed(),
                    steps: rounds,
                });
            }
        }
    }

    /// Routes the network's outputs; returns whether there were any.
    fn drain_net(&mut self) -> bool {
        let now = self.now;
        let mut busy = false;
        loop {
            while let Some(f) = self.net.poll_fault() {
                self.record(TraceKind::Fault {
                    client: f.client,
                    id: f.id,
                    kind: f.kind,
                });
            }
            let Some(out) = self.net.poll_output() else {
                return busy;
            };
            busy = true;
            match out {
                NetOutput::ToServer {
                    flow,
                    client,
                    id,
                    request,
                    duplicate,
                } => {
                    let exchange = self.server.handle(request, now);
                    self.record(TraceKind::Arrive {
                        client,
                        id,
                        exchange,
                        duplicate,
                    });
                    self.exchange_of.insert(flow, exchange);
                    self.flow_of.insert(exchange, flow);
                }
                NetOutput::CancelServer { flow } => {
                    if let Some(exchange) = self.exchange_of.remove(&flow) {
                        self.flow_of.remove(&exchange);
                        self.record(TraceKind::ServerCancel { exchange });
                        self.server.cancel(exchange);
                    }
                }
                NetOutput::ToClient { client, input } => {
                    let Some(party) = self
                        .parties
                        .get_mut(client.0 as usize)
                        .and_then(Option::as_mut)
                    else {
                        continue;
                    };
                    party.handle_input(input.clone(), now);
                    self.record(TraceKind::Deliver { client, input });
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::ops::{create_request, CreateOptions, RequestExtras};
    use crate::producer::ProducerConfig;
    use crate::reader::{ReadMode, ReaderConfig};

    const URL: &str = "http://sim/v1/stream/t";

    fn world(seed: u64, faults: FaultConfig) -> World {
        let config = WorldConfig {
            faults,
            record_trace: true,
            ..WorldConfig::new(seed)
        };
        let mut w = World::new(config, Instant::now());
        let put =
            create_request(URL, &CreateOptions::default(), &RequestExtras::default()).unwrap();
        let now = w.now();
        let resp = w.server_mut().call(put, now).unwrap();
        assert_eq!(resp.status(), 201);
        w
    }

    /// Appends, closes, reads to EOF; returns the trace hash.
    fn scenario(seed: u64, faults: FaultConfig) -> (u64, Vec<u8>) {
        let mut w = world(seed, faults);
        let now = w.now();
        let p = w.add_machine(
            Producer::new(
                ProducerConfig {
                    rng_seed: seed,
                    ..ProducerConfig::new(URL, "p")
                },
                now,
            )
            .unwrap(),
        );
        let r = w.add_machine(
            Reader::new(
                ReaderConfig {
                    mode: ReadMode::LongPoll,
                    rng_seed: seed,
                    ..ReaderConfig::new(URL)
                },
                now,
            )
            .unwrap(),
        );
        for i in 0..5u8 {
            let at = w.start() + Duration::from_millis(30 * u64::from(i));
            w.schedule(at, move |w| {
                let now = w.now();
                w.producer_mut(p)
                    .unwrap()
                    .append(Bytes::from(vec![b'a' + i]), now)
                    .unwrap();
            });
        }
        w.schedule(w.start() + Duration::from_millis(500), move |w| {
            let now = w.now();
            w.producer_mut(p).unwrap().close(now).unwrap();
        });
        let mut read = Vec::new();
        w.run_until_cond(|w| {
            w.reader(r).unwrap().is_finished() && w.producer(p).unwrap().is_idle()
        })
        .unwrap();
        while let Some(e) = w.poll_event() {
            if let PartyEvent::Reader(ReaderEvent::Data(c)) = e.event {
                read.extend_from_slice(&c.data);
            }
        }
        assert!(w.producer(p).unwrap().is_idle());
        (w.trace_hash(), read)
    }

    #[test]
    fn a_perfect_world_delivers_everything() {
        let (_, read) = scenario(1, FaultConfig::none());
        assert_eq!(read, b"abcde");
    }

    #[test]
    fn same_seed_same_trace_other_seeds_differ() {
        let faults = FaultConfig {
            jitter: Duration::from_millis(20),
            duplicate: 0.2,
            split_body: 0.5,
            ..FaultConfig::none()
        };
        let (a, read) = scenario(9, faults.clone());
        assert_eq!(read, b"abcde");
        let (b, _) = scenario(9, faults.clone());
        assert_eq!(a, b);
        let (c, _) = scenario(10, faults);
        assert_ne!(a, c);
    }

    #[test]
    fn call_returns_the_response_and_keeps_other_events() {
        let mut w = world(3, FaultConfig::none());
        let get = http::Request::get(format!("{URL}?offset=-1"))
            .body(Bytes::new())
            .unwrap();
        let resp = w.call(get).unwrap().unwrap();
        assert_eq!(resp.status(), 200);
        assert!(w.poll_event().is_none());
        assert!(w.elapsed() >= Duration::from_millis(2));
        assert!(w
            .trace()
            .iter()
            .any(|e| matches!(e.kind, TraceKind::Arrive { .. })));
    }

    #[test]
    fn limits_are_typed_errors() {
        let config = WorldConfig {
            max_time: Duration::from_secs(5),
            ..WorldConfig::new(1)
        };
        let mut w = World::new(config, Instant::now());
        let put =
            create_request(URL, &CreateOptions::default(), &RequestExtras::default()).unwrap();
        let now = w.now();
        w.server_mut().call(put, now).unwrap();
        let now = w.now();
        let r = w.add_machine(Reader::new(ReaderConfig::new(URL), now).unwrap());
        assert_eq!(
            w.run_for(Duration::from_secs(60)),
            Err(SimError::TimeLimit {
                limit: Duration::from_secs(5)
            })
        );
        assert!(!w.reader(r).unwrap().is_finished());

        let config = WorldConfig {
            max_steps: 10,
            ..WorldConfig::new(1)
        };
        let mut w = World::new(config, Instant::now());
        w.schedule(w.now() + Duration::from_secs(100), |_| {});
        for i in 0..20 {
            w.schedule(w.now() + Duration::from_millis(i), |_| {});
        }
        let mut err = None;
        for _ in 0..30 {
            if let Err(e) = w.step() {
                err = Some(e);
                break;
            }
        }
        assert!(
            matches!(err, Some(SimError::StepLimit { limit: 10, .. })),
            "{err:?}"
        );

        let mut w = World::new(WorldConfig::new(1), Instant::now());
        assert_eq!(
            w.run_until_cond(|_| false),
            Err(SimError::Stalled { at: Duration::ZERO })
        );
    }

    /// A machine that always wants to be woken now: the livelock guard stops it.
    #[derive(Debug)]
    struct Spinner(Instant);

    impl Machine for Spinner {
        type Event = PartyEvent;
        fn handle_input(&mut self, _: Input, _: Instant) {}
        fn handle_timeout(&mut self, _: Instant) {}
        fn poll_transmit(&mut self, _: Instant) -> Option<Transmit> {
            None
        }
        fn poll_cancel(&mut self) -> Option<RequestId> {
            None
        }
        fn poll_timeout(&self) -> Option<Instant> {
            Some(self.0)
        }
        fn poll_event(&mut self) -> Option<PartyEvent> {
            None
        }
    }

    #[test]
    fn a_machine_that_never_lets_time_move_is_a_livelock() {
        let start = Instant::now();
        let mut w = World::new(WorldConfig::new(1), start);
        w.add_machine(Spinner(start));
        assert!(matches!(
            w.run_for(Duration::from_secs(1)),
            Err(SimError::Livelock { .. })
        ));
    }

    #[derive(Debug, PartialEq)]
    struct Ping(u32);

    impl From<Ping> for PartyEvent {
        fn from(p: Ping) -> Self {
            PartyEvent::Other(Box::new(p))
        }
    }

    /// A custom machine: emits one event after a second.
    #[derive(Debug)]
    struct Timer {
        at: Instant,
        fired: bool,
        pending: Option<Ping>,
    }

    impl Machine for Timer {
        type Event = Ping;
        fn handle_input(&mut self, _: Input, _: Instant) {}
        fn handle_timeout(&mut self, now: Instant) {
            if !self.fired && now >= self.at {
                self.fired = true;
                self.pending = Some(Ping(7));
            }
        }
        fn poll_transmit(&mut self, _: Instant) -> Option<Transmit> {
            None
        }
        fn poll_cancel(&mut self) -> Option<RequestId> {
            None
        }
        fn poll_timeout(&self) -> Option<Instant> {
            (!self.fired).then_some(self.at)
        }
        fn poll_event(&mut self) -> Option<Ping> {
            self.pending.take()
        }
    }

    #[test]
    fn custom_machines_and_virtual_time() {
        let start = Instant::now();
        let mut w = World::new(WorldConfig::new(1), start);
        let t = w.add_machine(Timer {
            at: start + Duration::from_secs(1),
            fired: false,
            pending: None,
        });
        w.run_to_idle().unwrap();
        assert_eq!(w.now(), start + Duration::from_secs(1));
        let e = w.poll_event().unwrap();
        assert_eq!(e.client, t);
        assert_eq!(e.event.downcast_ref::<Ping>(), Some(&Ping(7)));
        assert!(w.machine::<Timer>(t).unwrap().fired);
        assert!(w.reader(t).is_none());
        assert!(w.remove(t));
        assert!(!w.remove(t));
    }
}
