//! The run loop of this driver, generic over ds-proto's [`Machine`]s: it starts an HTTP
//! exchange per `Transmit` (each on its own task, so dropping the engine aborts them), feeds
//! back `Input`s, and wakes the machine at its `poll_timeout`. No protocol decision lives here.

use crate::client::Client;
use crate::trace;
use crate::transport::next_chunk;
use ds_proto::ops::{apply_extras, CallOptions};
use ds_proto::{Input, Machine, RequestId, Transmit, TransportError, TransportErrorKind};
use std::collections::HashMap;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How many input messages may wait before an exchange task waits for the machine (keeps a fast
/// server from filling memory while the application is slow).
const INPUT_QUEUE: usize = 64;

pub(crate) fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// The in-flight HTTP exchanges of one machine and the channel their inputs arrive on.
pub(crate) struct Exchanges {
    client: Client,
    call: CallOptions,
    tx: mpsc::Sender<Input>,
    rx: mpsc::Receiver<Input>,
    tasks: HashMap<RequestId, JoinHandle<()>>,
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
        }
    }

    /// Whether no exchange is in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Aborts an exchange.
    pub(crate) fn abort(&mut self, id: RequestId) {
        if let Some(h) = self.tasks.remove(&id) {
            h.abort();
        }
    }

    /// The next input of any exchange (pending forever when none can come).
    pub(crate) async fn recv(&mut self) -> Input {
        if self.tasks.is_empty() && self.rx.is_empty() {
            return std::future::pending().await;
        }
        match self.rx.recv().await {
            Some(input) => {
                if matches!(input, Input::End { .. } | Input::Failed { .. }) {
                    self.tasks.remove(&input.id());
                }
                input
            }
            None => std::future::pending().await,
        }
    }

    /// Starts an exchange: the request with the client's headers and parameters, its body
    /// streamed back as inputs, the deadline enforced.
    pub(crate) fn start(&mut self, t: Transmit) {
        let Transmit {
            id,
            mut request,
            deadline,
        } = t;
        apply_extras(&mut request, &self.client.extras(&self.call));
        let transport = self.client.inner.transport.clone();
        let tx = self.tx.clone();
        let mut trace = trace::RequestTrace::start(&request, None, Some(id));
        let span = trace.handle();
        let task = async move {
            let exchange = async {
                let (parts, mut body) = transport.send(request).await?;
                trace.head(parts.status);
                if tx.send(Input::Head { id, parts }).await.is_err() {
                    return Ok(());
                }
                while let Some(chunk) = next_chunk(&mut body).await {
                    let chunk = chunk?;
                    trace.body(chunk.len());
                    if tx.send(Input::Body { id, chunk }).await.is_err() {
                        return Ok(());
                    }
                }
                let _ = tx.send(Input::End { id }).await;
                Ok::<(), TransportError>(())
            };
            let result = match deadline {
                Some(d) => match tokio::time::timeout_at(Instant::from_std(d), exchange).await {
                    Ok(r) => r,
                    Err(_) => Err(TransportError::new(
                        TransportErrorKind::Timeout,
                        "exchange deadline passed",
                    )),
                },
                None => exchange.await,
            };
            trace.finish(result.as_ref().err());
            if let Err(error) = result {
                let _ = tx.send(Input::Failed { id, error }).await;
            }
        };
        self.tasks
            .insert(id, tokio::spawn(trace::in_span(span, task)));
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
        }
    }

    /// Starts every pending transmit and aborts every pending cancel.
    pub(crate) fn flush_outputs(&mut self) {
        let now = now();
        while let Some(id) = self.machine.poll_cancel() {
            self.exchanges.abort(id);
        }
        while let Some(t) = self.machine.poll_transmit(now) {
            self.exchanges.start(t);
        }
        while let Some(id) = self.machine.poll_cancel() {
            self.exchanges.abort(id);
        }
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
