//! The one run loop of this driver, generic over ds-proto's [`Machine`]s: it starts an HTTP
//! exchange per `Transmit` (each on its own task, so dropping the engine aborts them), feeds
//! back `Input`s, and wakes the machine at its `poll_timeout`. No protocol decision lives here.

use crate::client::Client;
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

/// A machine and its in-flight exchanges.
pub(crate) struct Engine<M: Machine> {
    pub(crate) machine: M,
    client: Client,
    call: CallOptions,
    tx: mpsc::Sender<Input>,
    rx: mpsc::Receiver<Input>,
    exchanges: HashMap<RequestId, JoinHandle<()>>,
}

impl<M: Machine> std::fmt::Debug for Engine<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("in_flight", &self.exchanges.len())
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

pub(crate) fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl<M: Machine> Engine<M> {
    pub(crate) fn new(machine: M, client: Client, call: CallOptions) -> Self {
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        Engine {
            machine,
            client,
            call,
            tx,
            rx,
            exchanges: HashMap::new(),
        }
    }

    /// Starts every pending transmit and aborts every pending cancel.
    pub(crate) fn flush_outputs(&mut self) {
        let now = now();
        while let Some(t) = self.machine.poll_transmit(now) {
            self.start(t);
        }
        while let Some(id) = self.machine.poll_cancel() {
            if let Some(h) = self.exchanges.remove(&id) {
                h.abort();
            }
        }
    }

    /// Waits for the next input or the machine's timer, and feeds it. Call
    /// [`Engine::flush_outputs`] before.
    pub(crate) async fn step(&mut self) -> Wake {
        let deadline = self.machine.poll_timeout();
        if deadline.is_none() && self.exchanges.is_empty() {
            return Wake::Idle;
        }
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            input = self.rx.recv() => {
                if let Some(input) = input {
                    if matches!(input, Input::End { .. } | Input::Failed { .. }) {
                        self.exchanges.remove(&input.id());
                    }
                    self.machine.handle_input(input, now());
                }
            }
            () = sleep => self.machine.handle_timeout(now()),
        }
        Wake::Progress
    }

    fn start(&mut self, t: Transmit) {
        let Transmit {
            id,
            mut request,
            deadline,
        } = t;
        apply_extras(&mut request, &self.client.extras(&self.call));
        let transport = self.client.inner.transport.clone();
        let tx = self.tx.clone();
        let task = async move {
            let exchange = async {
                let (parts, mut body) = transport.send(request).await?;
                if tx.send(Input::Head { id, parts }).await.is_err() {
                    return Ok(());
                }
                while let Some(chunk) = next_chunk(&mut body).await {
                    let chunk = chunk?;
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
            if let Err(error) = result {
                let _ = tx.send(Input::Failed { id, error }).await;
            }
        };
        self.exchanges.insert(id, tokio::spawn(task));
    }
}

impl<M: Machine> Drop for Engine<M> {
    fn drop(&mut self) {
        for (_, h) in self.exchanges.drain() {
            h.abort();
        }
    }
}
