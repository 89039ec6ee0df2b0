//! The run loop of this driver, generic over ds-proto's [`Machine`]s: it starts an HTTP
//! exchange per `Transmit` (each on its own task, so dropping the engine aborts them), feeds
//! back `Input`s, and wakes the machine at its `poll_timeout`. No protocol decision lives here.
//!
//! A machine with one exchange at a time whose owner awaits it anyway (the reader) has its
//! exchange polled by the owner itself ([`Engine::owner_polled`]): no task, and no channel
//! hand-over and wake-up per body frame.

use crate::client::Client;
use crate::trace;
use bytes::Bytes;
use ds_proto::ops::CallOptions;
use ds_proto::{Input, Machine, Outgoing, RequestId, Transmit, TransportError, TransportErrorKind};
use hyper::body::{Body as _, Incoming};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How many input messages may wait before an exchange task waits for the machine (keeps a fast
/// server from filling memory while the application is slow).
const INPUT_QUEUE: usize = 64;

pub(crate) use crate::clock::now;

/// The in-flight HTTP exchanges of one machine and the channel their inputs arrive on.
pub(crate) struct Exchanges {
    client: Client,
    call: CallOptions,
    tx: mpsc::Sender<Input>,
    rx: mpsc::Receiver<Input>,
    tasks: HashMap<RequestId, JoinHandle<()>>,
    /// The exchange the owner polls itself, if any.
    local: Option<Local>,
    /// The client's `Authorization` is not applied: the machine sets it (see
    /// [`Engine::keep_authorization`]).
    keep_authorization: bool,
}

impl std::fmt::Debug for Exchanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchanges")
            .field("in_flight", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl Exchanges {
    pub(crate) fn new(client: Client, call: CallOptions) -> Self {
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        Exchanges {
            client,
            call,
            tx,
            rx,
            tasks: HashMap::new(),
            local: None,
            keep_authorization: false,
        }
    }

    /// Whether no exchange is in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.local.is_none()
    }

    /// Aborts an exchange.
    pub(crate) fn abort(&mut self, id: RequestId) {
        if self.local.as_ref().is_some_and(|l| l.id == id) {
            self.local = None;
        }
        if let Some(h) = self.tasks.remove(&id) {
            h.abort();
        }
    }

    /// The next input of any exchange (pending forever when none can come).
    pub(crate) async fn recv(&mut self) -> Input {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Input> {
        if let Some(local) = &mut self.local {
            if let Poll::Ready(input) = local.poll_input(cx) {
                if input.ends_exchange() {
                    self.local = None;
                }
                return Poll::Ready(input);
            }
        }
        if self.tasks.is_empty() && self.rx.is_empty() {
            return Poll::Pending;
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(input)) => {
                if input.ends_exchange() {
                    self.tasks.remove(&input.id());
                }
                Poll::Ready(input)
            }
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
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

    /// The exchange of a transmit (the request with the client's headers and parameters, its
    /// deadline and trace), not yet polled, and its span.
    fn exchange(&self, t: Transmit) -> (Local, trace::Span) {
        let Transmit {
            id,
            request,
            deadline,
        } = self.with_extras(t);
        let transport = self.client.inner.transport.clone();
        let trace = trace::RequestTrace::start(&request, None, Some(id));
        let span = trace.handle();
        let send = trace::in_span(trace.handle(), async move { transport.send(request).await });
        let exchange = Local {
            id,
            state: LocalState::Sending(Box::pin(send)),
            deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(Instant::from_std(d)))),
            trace: Some(trace),
        };
        (exchange, span)
    }

    /// Starts an exchange that [`Exchanges::recv`] polls itself (one at a time).
    pub(crate) fn start_local(&mut self, t: Transmit) {
        self.local = Some(self.exchange(t).0);
    }

    /// Starts an exchange on its own task: the request with the client's headers and
    /// parameters, its inputs sent back over the channel, the deadline enforced.
    pub(crate) fn start(&mut self, t: Transmit) {
        let (mut exchange, span) = self.exchange(t);
        let id = exchange.id;
        let tx = self.tx.clone();
        let task = async move {
            loop {
                let input = std::future::poll_fn(|cx| exchange.poll_input(cx)).await;
                let last = input.ends_exchange();
                if tx.send(input).await.is_err() || last {
                    return;
                }
            }
        };
        self.tasks
            .insert(id, tokio::spawn(trace::in_span(span, task)));
    }
}

type Sending =
    Pin<Box<dyn Future<Output = Result<(http::response::Parts, Incoming), TransportError>> + Send>>;

/// One exchange as a state machine of inputs: polled by the machine's owner
/// ([`Exchanges::start_local`]) or by its own task ([`Exchanges::start`]); dropping it drops
/// the connection.
struct Local {
    id: RequestId,
    state: LocalState,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Taken when the exchange ends.
    trace: Option<trace::RequestTrace>,
}

enum LocalState {
    Sending(Sending),
    Body(Incoming),
}

impl Local {
    /// The exchange's next input, followed by its trace; after `End` or `Failed` it must not
    /// be polled again.
    fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<Input> {
        let input = std::task::ready!(self.poll_exchange(cx));
        trace::RequestTrace::follow(&mut self.trace, &input);
        Poll::Ready(input)
    }

    fn poll_exchange(&mut self, cx: &mut Context<'_>) -> Poll<Input> {
        let id = self.id;
        if let Some(d) = &mut self.deadline {
            if d.as_mut().poll(cx).is_ready() {
                let error =
                    TransportError::new(TransportErrorKind::Timeout, "exchange deadline passed");
                return Poll::Ready(Input::Failed { id, error });
            }
        }
        loop {
            match &mut self.state {
                LocalState::Sending(send) => match std::task::ready!(send.as_mut().poll(cx)) {
                    Err(error) => return Poll::Ready(Input::Failed { id, error }),
                    Ok((parts, body)) => {
                        self.state = LocalState::Body(body);
                        return Poll::Ready(Input::Head { id, parts });
                    }
                },
                LocalState::Body(body) => match std::task::ready!(Pin::new(body).poll_frame(cx)) {
                    None => return Poll::Ready(Input::End { id }),
                    Some(Err(e)) => {
                        let error = crate::transport::classify_hyper(&e);
                        return Poll::Ready(Input::Failed { id, error });
                    }
                    Some(Ok(frame)) => {
                        if let Ok(chunk) = frame.into_data() {
                            let chunk: Bytes = chunk;
                            return Poll::Ready(Input::Body { id, chunk });
                        }
                    }
                },
            }
        }
    }
}

impl Drop for Exchanges {
    fn drop(&mut self) {
        for (_, h) in self.tasks.drain() {
            h.abort();
        }
    }
}

/// Sleeps until `deadline`, or forever when there is none.
pub(crate) async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// A machine owned by one task, with its exchanges.
pub(crate) struct Engine<M: Machine> {
    pub(crate) machine: M,
    exchanges: Exchanges,
    /// Exchanges are polled by the owner (see [`Engine::owner_polled`]).
    owner_polled: bool,
}

impl<M: Machine> std::fmt::Debug for Engine<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("exchanges", &self.exchanges)
            .finish_non_exhaustive()
    }
}

/// What woke the engine.
pub(crate) enum Wake {
    /// An input was fed to the machine, or its timer fired.
    Progress,
    /// Nothing is in flight and no timer is set: the machine is idle.
    Idle,
}

impl<M: Machine> Engine<M> {
    pub(crate) fn new(machine: M, client: Client, call: CallOptions) -> Self {
        Engine {
            machine,
            exchanges: Exchanges::new(client, call),
            owner_polled: false,
        }
    }

    /// The owner polls the exchanges itself in [`Engine::step`] instead of each running on a
    /// task: for a machine with at most one exchange at a time (the reader).
    pub(crate) fn owner_polled(mut self) -> Self {
        self.owner_polled = true;
        self
    }

    /// The machine sets `Authorization` itself (a worker's acks carry the claim token, its
    /// claims and reads the credential it was configured with): the client's is not applied
    /// over it.
    pub(crate) fn keep_authorization(mut self) -> Self {
        self.exchanges.keep_authorization = true;
        self
    }

    /// Aborts every pending cancel and starts every pending transmit, in the machine's order
    /// ([`Machine::poll_outgoing`]).
    pub(crate) fn flush_outputs(&mut self) {
        let now = now();
        while let Some(out) = self.machine.poll_outgoing(now) {
            match out {
                Outgoing::Cancel(id) => self.exchanges.abort(id),
                Outgoing::Send(t) if self.owner_polled && self.exchanges.local.is_none() => {
                    self.exchanges.start_local(t)
                }
                Outgoing::Send(t) => self.exchanges.start(t),
            }
        }
    }

    /// Ends the run loop with `value`: what the machine has last to send or cancel goes out
    /// first; dropping the engine then cancels what is still in flight.
    pub(crate) fn finish<T>(mut self, value: T) -> T {
        self.flush_outputs();
        value
    }

    /// Waits for the next input or the machine's timer, and feeds it. Call
    /// [`Engine::flush_outputs`] before.
    pub(crate) async fn step(&mut self) -> Wake {
        let deadline = self.machine.poll_timeout();
        if deadline.is_none() && self.exchanges.is_empty() {
            return Wake::Idle;
        }
        tokio::select! {
            biased;
            input = self.exchanges.recv() => self.machine.handle_input(input, now()),
            () = sleep_until(deadline) => self.machine.handle_timeout(now()),
        }
        Wake::Progress
    }
}
