//! The one run loop of this driver, generic over ds-proto's [`Machine`]s: each `Transmit` runs
//! on its own thread (ureq is blocking), which sends `Input`s back over a bounded channel; the
//! owner waits on that channel until the machine's `poll_timeout`. No protocol decision lives
//! here.
//!
//! Cancelling an exchange sets a flag its thread checks between body reads; a thread blocked in
//! a read ends when the server sends more, closes, or the exchange deadline passes.
//!
//! Exchange threads are reused: a thread that finished an exchange waits up to 30 s for the
//! next one (of any machine) before it ends.

use crate::client::Client;
use crate::trace;
use crate::transport::{is_event_stream, ChunkReader};
use ds_proto::ops::CallOptions;
use ds_proto::{Input, Machine, Outgoing, RequestId, Transmit, TransportError, TransportErrorKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How many input messages may wait before an exchange thread waits for the machine.
const INPUT_QUEUE: usize = 64;
/// The most a body read hands over at once.
const READ_CHUNK: usize = 64 * 1024;

/// A message to the loop: an input of an exchange, or an application command.
pub(crate) enum Msg<C> {
    /// An exchange's input.
    Input(Input),
    /// An application command.
    Command(C),
}

/// The in-flight HTTP exchanges of one machine and the channel their inputs (and the owner's
/// commands) arrive on.
pub(crate) struct Exchanges<C> {
    client: Client,
    call: CallOptions,
    tx: mpsc::SyncSender<Msg<C>>,
    rx: mpsc::Receiver<Msg<C>>,
    flags: HashMap<RequestId, Arc<AtomicBool>>,
    /// The client's `Authorization` is not applied: the machine sets it (see
    /// [`Engine::keep_authorization`]).
    keep_authorization: bool,
}

impl<C> std::fmt::Debug for Exchanges<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchanges")
            .field("in_flight", &self.flags.len())
            .finish_non_exhaustive()
    }
}

/// What [`Exchanges::recv`] got.
pub(crate) enum Received<C> {
    /// An exchange's input.
    Input(Input),
    /// A command.
    Command(C),
    /// The deadline passed.
    Timeout,
    /// Nothing can arrive any more.
    Closed,
}

impl<C: Send + 'static> Exchanges<C> {
    pub(crate) fn new(client: Client, call: CallOptions) -> Self {
        let (tx, rx) = mpsc::sync_channel(INPUT_QUEUE);
        Exchanges {
            client,
            call,
            tx,
            rx,
            flags: HashMap::new(),
            keep_authorization: false,
        }
    }

    /// A sender for commands.
    pub(crate) fn commands(&self) -> mpsc::SyncSender<Msg<C>> {
        self.tx.clone()
    }

    /// Whether no exchange is in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// Cancels an exchange.
    pub(crate) fn abort(&mut self, id: RequestId) {
        if let Some(flag) = self.flags.remove(&id) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Waits for an input or a command until `deadline`.
    pub(crate) fn recv(&mut self, deadline: Option<Instant>) -> Received<C> {
        let msg = match deadline {
            Some(d) => match self
                .rx
                .recv_timeout(d.saturating_duration_since(Instant::now()))
            {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => return Received::Timeout,
                Err(RecvTimeoutError::Disconnected) => return Received::Closed,
            },
            None => match self.rx.recv() {
                Ok(m) => m,
                Err(_) => return Received::Closed,
            },
        };
        match msg {
            Msg::Command(c) => Received::Command(c),
            Msg::Input(input) => {
                if input.ends_exchange() {
                    self.flags.remove(&input.id());
                }
                Received::Input(input)
            }
        }
    }

    /// Starts an exchange on its own thread. A failure to spawn is returned as the input the
    /// machine must see.
    pub(crate) fn start(&mut self, t: Transmit) -> Option<Input> {
        let id = t.id;
        let (request, timeout, trace) = self.prepare(t);
        let transport = self.client.inner.transport.clone();
        let tx = self.tx.clone();
        let cancelled = Arc::new(AtomicBool::new(false));
        let flag = cancelled.clone();
        let spawned = pool().execute(Box::new(move || {
            let mut send = |i: Input| tx.send(Msg::Input(i)).is_ok();
            perform(&transport, id, request, timeout, &flag, trace, &mut send);
        }));
        match spawned {
            Ok(_) => {
                self.flags.insert(id, cancelled);
                None
            }
            Err(e) => Some(Input::Failed {
                id,
                error: TransportError::new(
                    TransportErrorKind::Other,
                    format!("cannot spawn exchange thread: {e}"),
                ),
            }),
        }
    }

    /// Sends a request on this thread and waits for its head; the caller then reads the body
    /// with [`Here::next_input`] as it needs it. For a reader whose owner has nothing else to
    /// do while it waits: no exchange thread, no hand-over and wake-up per response. Errors are
    /// the input the machine must see.
    pub(crate) fn open_here(&mut self, t: Transmit) -> Result<(Here, Input), Input> {
        let id = t.id;
        let (request, timeout, trace) = self.prepare(t);
        let (here, parts) = open(&self.client.inner.transport, id, request, timeout, trace)?;
        Ok((here, Input::Head { id, parts }))
    }

    /// How the client opens a writer's pipelined connection.
    pub(crate) fn pipelined_connector(&self) -> crate::pipeline::Connector {
        self.client.inner.transport.pipelined.clone()
    }

    /// `t` with the client's and the call's extra headers, as an exchange sends it (a
    /// writer's pipelined connection, which writes requests itself, too).
    pub(crate) fn with_extras(&self, t: Transmit) -> Transmit {
        let settings = self.client.settings();
        t.with_extras(&settings.exchange_extras(&self.call, self.keep_authorization))
    }

    /// The request with the client's extras, its timeout, and its trace.
    fn prepare(
        &self,
        t: Transmit,
    ) -> (
        http::Request<bytes::Bytes>,
        Option<Duration>,
        trace::RequestTrace,
    ) {
        let Transmit {
            id,
            request,
            deadline,
        } = self.with_extras(t);
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let trace = trace::RequestTrace::start(&request, None, Some(id));
        (request, timeout, trace)
    }
}

/// An exchange whose body the owner reads itself (see [`Exchanges::open_here`]); dropping it
/// closes the connection.
pub(crate) struct Here {
    /// The request's id.
    pub(crate) id: RequestId,
    body: crate::transport::BodyReader,
    chunks: ChunkReader,
    /// Taken when the exchange ends.
    trace: Option<trace::RequestTrace>,
}

impl std::fmt::Debug for Here {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Here")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Here {
    /// Reads the next piece of the body (blocking): `Body`, or `End` / `Failed` once, after
    /// which the exchange is over.
    pub(crate) fn next_input(&mut self) -> Input {
        let id = self.id;
        let Some(trace) = &self.trace else {
            return Input::End { id };
        };
        let input = {
            let _span = trace::enter(trace.handle());
            match self.chunks.next(&mut self.body) {
                None => Input::End { id },
                Some(Ok(chunk)) => Input::Body { id, chunk },
                Some(Err(error)) => Input::Failed { id, error },
            }
        };
        trace::RequestTrace::follow(&mut self.trace, &input);
        input
    }
}

/// Sends a request and waits for its head: the exchange, whose body is then read with
/// [`Here::next_input`], and the head; or the `Failed` input.
fn open(
    transport: &crate::transport::Transport,
    id: RequestId,
    request: http::Request<bytes::Bytes>,
    timeout: Option<Duration>,
    trace: trace::RequestTrace,
) -> Result<(Here, http::response::Parts), Input> {
    let (parts, body) = {
        let _span = trace::enter(trace.handle());
        match transport.send(request, timeout) {
            Ok(r) => r,
            Err(error) => {
                trace.finish(Some(&error));
                return Err(Input::Failed { id, error });
            }
        }
    };
    trace.head(parts.status);
    let here = Here {
        id,
        body,
        chunks: ChunkReader::new(READ_CHUNK),
        trace: Some(trace),
    };
    Ok((here, parts))
}

/// Runs one exchange to its end on the calling thread, handing each input to `send` (`false`:
/// stop); `cancelled` is checked between body reads.
fn perform(
    transport: &crate::transport::Transport,
    id: RequestId,
    request: http::Request<bytes::Bytes>,
    timeout: Option<Duration>,
    cancelled: &AtomicBool,
    trace: trace::RequestTrace,
    send: &mut dyn FnMut(Input) -> bool,
) {
    let (mut here, parts) = match open(transport, id, request, timeout, trace) {
        Ok(opened) => opened,
        Err(failed) => {
            send(failed);
            return;
        }
    };
    // A response that is not an event stream is handed over with its first piece of body (and
    // its end, when that is all): the owner wakes once for a small response instead of once
    // per message. An event stream's head goes at once.
    let mut first = None;
    if !is_event_stream(&parts) {
        first = Some(here.next_input());
    }
    if !send(Input::Head { id, parts }) {
        return;
    }
    loop {
        if cancelled.load(Ordering::Relaxed) {
            return;
        }
        let input = first.take().unwrap_or_else(|| here.next_input());
        if input.ends_exchange() {
            send(input);
            return;
        }
        if cancelled.load(Ordering::Relaxed) || !send(input) {
            return;
        }
    }
}

/// A job for an exchange thread.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// Exchange threads kept for reuse: starting a thread per exchange cost more than a small
/// request itself (a writer's batch, a long-poll). A thread waits this long for another
/// exchange before it ends.
const IDLE_THREAD: Duration = Duration::from_secs(30);

/// The process's exchange threads that wait for a job.
struct Pool {
    /// The idle threads' job queues, with a number to find one's own entry.
    idle: Mutex<Vec<(u64, mpsc::Sender<Job>)>>,
    next: AtomicU64,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        idle: Mutex::new(Vec::new()),
        next: AtomicU64::new(0),
    })
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, mpsc::Sender<Job>)>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `job` on an idle thread, or on a new one.
    fn execute(&'static self, mut job: Job) -> std::io::Result<()> {
        loop {
            let Some((_, tx)) = self.lock().pop() else {
                break;
            };
            match tx.send(job) {
                Ok(()) => return Ok(()),
                // That thread is gone: try another.
                Err(mpsc::SendError(back)) => job = back,
            }
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        std::thread::Builder::new()
            .name(format!("ds-exchange-{n}"))
            .spawn(move || self.work(n, job))
            .map(|_| ())
    }

    fn work(&self, n: u64, first: Job) {
        let (tx, rx) = mpsc::channel::<Job>();
        let mut job = first;
        loop {
            job();
            self.lock().push((n, tx.clone()));
            job = match rx.recv_timeout(IDLE_THREAD) {
                Ok(next) => next,
                Err(_) => {
                    let mut idle = self.lock();
                    match idle.iter().position(|(k, _)| *k == n) {
                        Some(i) => {
                            idle.swap_remove(i);
                            return;
                        }
                        // Taken for a job just now: it is on its way.
                        None => {
                            drop(idle);
                            match rx.recv() {
                                Ok(next) => next,
                                Err(_) => return,
                            }
                        }
                    }
                }
            };
        }
    }
}

impl<C> Drop for Exchanges<C> {
    fn drop(&mut self) {
        for (_, flag) in self.flags.drain() {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

/// A machine owned by one thread, with its exchanges.
pub(crate) struct Engine<M: Machine, C = ()> {
    pub(crate) machine: M,
    exchanges: Exchanges<C>,
}

impl<M: Machine, C> std::fmt::Debug for Engine<M, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("exchanges", &self.exchanges)
            .finish_non_exhaustive()
    }
}

/// What woke the engine.
pub(crate) enum Wake<C> {
    /// An input was fed to the machine, or its timer fired.
    Progress,
    /// An application command arrived.
    Command(C),
    /// Nothing is in flight, no timer is set and no command can arrive: the machine is idle.
    Idle,
}

impl<M: Machine, C: Send + 'static> Engine<M, C> {
    pub(crate) fn new(machine: M, client: Client, call: CallOptions) -> Self {
        Engine {
            machine,
            exchanges: Exchanges::new(client, call),
        }
    }

    /// The machine sets `Authorization` itself (a worker's acks carry the claim token, its
    /// claims and reads the credential it was configured with): the client's is not applied
    /// over it.
    pub(crate) fn keep_authorization(mut self) -> Self {
        self.exchanges.keep_authorization = true;
        self
    }

    /// A sender for application commands.
    pub(crate) fn commands(&self) -> mpsc::SyncSender<Msg<C>> {
        self.exchanges.commands()
    }

    /// The in-flight exchanges (to start one on this thread).
    pub(crate) fn exchanges(&mut self) -> &mut Exchanges<C> {
        &mut self.exchanges
    }

    /// Aborts every pending cancel and starts every pending transmit, in the machine's order
    /// ([`Machine::poll_outgoing`]); an exchange that fails as it starts is fed back at once.
    pub(crate) fn flush_outputs(&mut self) {
        while let Some(out) = self.machine.poll_outgoing(Instant::now()) {
            match out {
                Outgoing::Cancel(id) => self.exchanges.abort(id),
                Outgoing::Send(t) => {
                    if let Some(failed) = self.exchanges.start(t) {
                        self.machine.handle_input(failed, Instant::now());
                    }
                }
            }
        }
    }

    /// Ends the run loop with `value`: what the machine has last to send or cancel goes out
    /// first; dropping the engine then cancels what is still in flight.
    pub(crate) fn finish<T>(mut self, value: T) -> T {
        self.flush_outputs();
        value
    }

    /// Waits for the next input, command or the machine's timer, and feeds inputs and timers to
    /// the machine. `commands_possible`: whether a command may still arrive (otherwise an idle
    /// machine returns [`Wake::Idle`] at once).
    pub(crate) fn step(&mut self, commands_possible: bool) -> Wake<C> {
        let deadline = self.machine.poll_timeout();
        if deadline.is_none() && self.exchanges.is_empty() && !commands_possible {
            return Wake::Idle;
        }
        match self.exchanges.recv(deadline) {
            Received::Timeout => self.machine.handle_timeout(Instant::now()),
            Received::Command(c) => return Wake::Command(c),
            Received::Input(input) => self.machine.handle_input(input, Instant::now()),
            Received::Closed => return Wake::Idle,
        }
        Wake::Progress
    }
}
