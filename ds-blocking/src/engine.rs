//! The one run loop of this driver, generic over ds-proto's [`Machine`]s: each `Transmit` runs
//! on its own thread (ureq is blocking), which sends `Input`s back over a bounded channel; the
//! owner waits on that channel until the machine's `poll_timeout`. No protocol decision lives
//! here.
//!
//! Cancelling an exchange sets a flag its thread checks between body reads; a thread blocked in
//! a read ends when the server sends more, closes, or the exchange deadline passes.

use crate::client::Client;
use crate::transport::read_chunk;
use ds_proto::ops::{apply_extras, CallOptions};
use ds_proto::{Input, Machine, RequestId, Transmit, TransportError, TransportErrorKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

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

/// A machine and its in-flight exchanges.
pub(crate) struct Engine<M: Machine, C = ()> {
    pub(crate) machine: M,
    client: Client,
    call: CallOptions,
    tx: mpsc::SyncSender<Msg<C>>,
    rx: mpsc::Receiver<Msg<C>>,
    exchanges: HashMap<RequestId, Arc<AtomicBool>>,
}

impl<M: Machine, C> std::fmt::Debug for Engine<M, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("in_flight", &self.exchanges.len())
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
        let (tx, rx) = mpsc::sync_channel(INPUT_QUEUE);
        Engine {
            machine,
            client,
            call,
            tx,
            rx,
            exchanges: HashMap::new(),
        }
    }

    /// A sender for application commands.
    pub(crate) fn commands(&self) -> mpsc::SyncSender<Msg<C>> {
        self.tx.clone()
    }

    /// Starts every pending transmit and cancels every pending cancel.
    pub(crate) fn flush_outputs(&mut self) {
        let now = Instant::now();
        while let Some(t) = self.machine.poll_transmit(now) {
            self.start(t);
        }
        while let Some(id) = self.machine.poll_cancel() {
            if let Some(flag) = self.exchanges.remove(&id) {
                flag.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Waits for the next input, command or the machine's timer, and feeds inputs and timers to
    /// the machine. `commands_possible`: whether a command may still arrive (otherwise an idle
    /// machine returns [`Wake::Idle`] at once).
    pub(crate) fn step(&mut self, commands_possible: bool) -> Wake<C> {
        let deadline = self.machine.poll_timeout();
        if deadline.is_none() && self.exchanges.is_empty() && !commands_possible {
            return Wake::Idle;
        }
        let msg = match deadline {
            Some(d) => match self
                .rx
                .recv_timeout(d.saturating_duration_since(Instant::now()))
            {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return Wake::Idle,
            },
            None => match self.rx.recv() {
                Ok(m) => Some(m),
                Err(_) => return Wake::Idle,
            },
        };
        match msg {
            None => self.machine.handle_timeout(Instant::now()),
            Some(Msg::Command(c)) => return Wake::Command(c),
            Some(Msg::Input(input)) => {
                if matches!(input, Input::End { .. } | Input::Failed { .. }) {
                    self.exchanges.remove(&input.id());
                }
                self.machine.handle_input(input, Instant::now());
            }
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
        let cancelled = Arc::new(AtomicBool::new(false));
        let flag = cancelled.clone();
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let spawned = std::thread::Builder::new()
            .name(format!("ds-exchange-{}", id.0))
            .spawn(move || {
                let send = |i: Input| tx.send(Msg::Input(i)).is_ok();
                let (parts, mut body) = match transport.send(request, timeout) {
                    Ok(r) => r,
                    Err(error) => {
                        send(Input::Failed { id, error });
                        return;
                    }
                };
                if !send(Input::Head { id, parts }) {
                    return;
                }
                loop {
                    if flag.load(Ordering::Relaxed) {
                        return;
                    }
                    match read_chunk(&mut body, READ_CHUNK) {
                        None => {
                            send(Input::End { id });
                            return;
                        }
                        Some(Ok(chunk)) => {
                            if flag.load(Ordering::Relaxed) || !send(Input::Body { id, chunk }) {
                                return;
                            }
                        }
                        Some(Err(error)) => {
                            send(Input::Failed { id, error });
                            return;
                        }
                    }
                }
            });
        match spawned {
            Ok(_) => {
                self.exchanges.insert(id, cancelled);
            }
            Err(e) => {
                let error = TransportError::new(
                    TransportErrorKind::Other,
                    format!("cannot spawn exchange thread: {e}"),
                );
                self.machine
                    .handle_input(Input::Failed { id, error }, Instant::now());
            }
        }
    }
}

impl<M: Machine, C> Drop for Engine<M, C> {
    fn drop(&mut self) {
        for (_, flag) in self.exchanges.drain() {
            flag.store(true, Ordering::Relaxed);
        }
    }
}
