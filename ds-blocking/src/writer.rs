//! The writer: exactly-once appends through ds-proto's idempotent
//! [`Producer`](ds_proto::producer::Producer), batched, pipelined and retried on a background
//! thread.
//!
//! `append` never waits for the network: it hands the payload to the producer (a short lock)
//! and returns its [`AppendId`]. [`Writer::flush`] waits until every append so far is
//! acknowledged or failed; [`Writer::close`] flushes and optionally closes the stream.
//!
//! Dropping a writer without [`Writer::close`] stops its background thread: appends not yet
//! acknowledged may or may not reach the stream, and nothing reports them. Call `close` (or at
//! least `flush`) before dropping.

use crate::client::Client;
use crate::engine::{Exchanges, Msg, Received};
use crate::handle::StreamHandle;
use bytes::Bytes;
use ds_proto::producer::{AppendError, AppendId, Producer, ProducerConfig, ProducerEvent};
use ds_proto::write_tracker::{CloseOutcome, WriteFailure, WriteOutcome, WriteTracker};
use ds_proto::{Error, Offset, Operation};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

/// Called with every failure, as it happens (for fire-and-forget writers).
pub type ErrorCallback = Arc<dyn Fn(&WriteFailure) + Send + Sync>;

/// What the background thread is asked to do.
enum Command {
    /// Look at the producer again (new appends, flush, close).
    Wake,
    /// Stop.
    Stop,
}

struct Core {
    producer: Producer,
    tracker: WriteTracker,
    waiters: HashMap<u64, mpsc::Sender<WriteOutcome>>,
    on_error: Option<ErrorCallback>,
    stopped: bool,
}

impl Core {
    fn dispatch(&mut self, event: ProducerEvent) {
        if let (
            ProducerEvent::Failed {
                first,
                last,
                items,
                reason,
            },
            Some(cb),
        ) = (&event, &self.on_error)
        {
            cb(&WriteFailure {
                first: *first,
                last: *last,
                items: items.clone(),
                reason: reason.clone(),
            });
        }
        if let Some(resolved) = self.tracker.observe(&event) {
            if !self.waiters.is_empty() {
                for id in resolved.first.0..=resolved.last.0 {
                    if let Some(tx) = self.waiters.remove(&id) {
                        let _ = tx.send(resolved.outcome.clone());
                    }
                }
            }
        }
    }
}

struct Shared {
    core: Mutex<Core>,
    /// Signalled when events were processed.
    changed: Condvar,
    wake_pending: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Waits for one append's outcome (from [`Writer::append_tracked`]).
#[derive(Debug)]
pub struct AppendHandle {
    id: AppendId,
    rx: mpsc::Receiver<WriteOutcome>,
}

impl AppendHandle {
    /// The append's id.
    pub fn id(&self) -> AppendId {
        self.id
    }

    /// Waits for the outcome. `None` if the writer was dropped first.
    pub fn outcome(self) -> Option<WriteOutcome> {
        self.rx.recv().ok()
    }
}

/// Appends that failed, reported by [`Writer::flush`] and [`Writer::close`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} batch(es) failed; first: {}", failures.len(), failures.first().map(|f| f.reason.to_string()).unwrap_or_default())]
pub struct FlushError {
    /// The failed batches with their payloads.
    pub failures: Vec<WriteFailure>,
}

/// How a [`Writer::close`] ended.
#[derive(Debug, Clone, PartialEq)]
pub struct CloseReport {
    /// The stream's final offset (closing the stream) or the latest acknowledged tail.
    pub offset: Option<Offset>,
    /// Whether the stream itself was closed.
    pub stream_closed: bool,
}

/// An exactly-once writer of one stream.
pub struct Writer {
    shared: Arc<Shared>,
    commands: SyncSender<Msg<Command>>,
    thread: Option<JoinHandle<()>>,
    url: String,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let core = self.shared.lock();
        f.debug_struct("Writer")
            .field("url", &self.url)
            .field("epoch", &core.producer.epoch())
            .field("buffered_bytes", &core.producer.buffered_bytes())
            .finish_non_exhaustive()
    }
}

impl StreamHandle {
    /// A writer with the producer defaults ([`ProducerConfig::new`]) and the handle's content
    /// type.
    pub fn writer(&self, producer_id: impl Into<String>) -> Result<Writer, Error> {
        let mut config = ProducerConfig::new(self.url(), producer_id);
        if let Some(ct) = self.content_type() {
            config.content_type = ct;
        }
        self.writer_with(config)
    }

    /// A writer with every producer setting chosen (its `url` is replaced by this stream's).
    pub fn writer_with(&self, mut config: ProducerConfig) -> Result<Writer, Error> {
        config.url = self.url().to_owned();
        Writer::new(self.client().clone(), self.call_options(), config)
    }
}

impl Writer {
    fn new(
        client: Client,
        call: ds_proto::ops::CallOptions,
        mut config: ProducerConfig,
    ) -> Result<Writer, Error> {
        config.rng_seed = client.next_seed();
        let url = config.url.clone();
        let producer = Producer::new(config, Instant::now())?;
        let shared = Arc::new(Shared {
            core: Mutex::new(Core {
                producer,
                tracker: WriteTracker::new(),
                waiters: HashMap::new(),
                on_error: None,
                stopped: false,
            }),
            changed: Condvar::new(),
            wake_pending: AtomicBool::new(false),
        });
        let exchanges = Exchanges::new(client, call);
        let commands = exchanges.commands();
        let bg = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ds-writer".into())
            .spawn(move || run(bg, exchanges))
            .map_err(|e| {
                Error::invalid_input(Operation::Append, &url, format!("cannot spawn: {e}"))
            })?;
        Ok(Writer {
            shared,
            commands,
            thread: Some(thread),
            url,
        })
    }

    fn wake(&self) {
        if !self.shared.wake_pending.swap(true, Ordering::AcqRel)
            && self.commands.try_send(Msg::Command(Command::Wake)).is_err()
        {
            // The queue is full of inputs: the thread is busy and will look again anyway.
            self.shared.wake_pending.store(false, Ordering::Release);
        }
    }

    /// Sets the callback told of every failure as it happens.
    pub fn on_error(&self, callback: impl Fn(&WriteFailure) + Send + Sync + 'static) {
        self.shared.lock().on_error = Some(Arc::new(callback));
    }

    /// Appends without waiting: `Err(AppendError::Full)` (with the payload handed back) when the
    /// buffer is full, `Err(AppendError::Refused)` for an invalid payload or a stopped writer.
    pub fn try_append(&self, data: impl Into<Bytes>) -> Result<AppendId, AppendError> {
        let id = self
            .shared
            .lock()
            .producer
            .append(data.into(), Instant::now())?;
        self.wake();
        Ok(id)
    }

    /// Appends, waiting for room when the buffer is full (never for the network otherwise).
    pub fn append(&self, data: impl Into<Bytes>) -> Result<AppendId, AppendError> {
        self.append_inner(data.into(), false).map(|(id, _)| id)
    }

    fn append_inner(
        &self,
        mut data: Bytes,
        tracked: bool,
    ) -> Result<(AppendId, Option<mpsc::Receiver<WriteOutcome>>), AppendError> {
        let mut core = self.shared.lock();
        loop {
            match core.producer.append(data, Instant::now()) {
                Ok(id) => {
                    let rx = tracked.then(|| {
                        let (tx, rx) = mpsc::channel();
                        core.waiters.insert(id.0, tx);
                        rx
                    });
                    drop(core);
                    self.wake();
                    return Ok((id, rx));
                }
                Err(AppendError::Full { data: back, .. }) => {
                    data = back;
                    core = self
                        .shared
                        .changed
                        .wait(core)
                        .unwrap_or_else(|p| p.into_inner());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Appends one value as a JSON message (the stream must be `application/json`).
    pub fn append_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<AppendId, AppendError> {
        self.append(self.to_json(value)?)
    }

    /// [`Writer::append_json`] without waiting for room.
    pub fn try_append_json<T: Serialize + ?Sized>(
        &self,
        value: &T,
    ) -> Result<AppendId, AppendError> {
        self.try_append(self.to_json(value)?)
    }

    fn to_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes, AppendError> {
        serde_json::to_vec(value).map(Bytes::from).map_err(|e| {
            AppendError::Refused(Error::invalid_input(
                Operation::Append,
                &self.url,
                format!("cannot serialize: {e}"),
            ))
        })
    }

    /// Appends (waiting for room) and returns a handle resolving to this append's outcome.
    pub fn append_tracked(&self, data: impl Into<Bytes>) -> Result<AppendHandle, AppendError> {
        let (id, rx) = self.append_inner(data.into(), true)?;
        let rx = rx.expect("tracked appends have a receiver");
        Ok(AppendHandle { id, rx })
    }

    /// Sends what is buffered now and waits until every append so far is acknowledged or
    /// failed; reports the failures since the last flush.
    pub fn flush(&self) -> Result<(), FlushError> {
        let target = {
            let mut core = self.shared.lock();
            core.producer.flush(Instant::now());
            core.producer.next_append_id()
        };
        self.wake();
        let mut core = self.shared.lock();
        loop {
            if core.tracker.all_resolved_before(target) {
                let failures = core.tracker.take_failures();
                return if failures.is_empty() {
                    Ok(())
                } else {
                    Err(FlushError { failures })
                };
            }
            core = self
                .shared
                .changed
                .wait(core)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Flushes, then closes the stream when `close_stream` (the final batch carries
    /// `Stream-Closed: true`), and stops the writer.
    pub fn close(self, close_stream: bool) -> Result<CloseReport, FlushError> {
        if !close_stream {
            self.flush()?;
            let offset = self.shared.lock().tracker.last_offset().cloned();
            return Ok(CloseReport {
                offset,
                stream_closed: false,
            });
        }
        {
            let mut core = self.shared.lock();
            if let Err(e) = core.producer.close(Instant::now()) {
                let mut failures = core.tracker.take_failures();
                let next = core.producer.next_append_id();
                failures.push(WriteFailure {
                    first: next,
                    last: next,
                    items: Vec::new(),
                    reason: ds_proto::producer::FailureReason::NotStored(e),
                });
                return Err(FlushError { failures });
            }
        }
        self.wake();
        let mut core = self.shared.lock();
        loop {
            if let Some(outcome) = core.tracker.close_outcome().cloned() {
                let mut failures = core.tracker.take_failures();
                return match outcome {
                    CloseOutcome::Closed { final_offset } if failures.is_empty() => {
                        Ok(CloseReport {
                            offset: final_offset,
                            stream_closed: true,
                        })
                    }
                    CloseOutcome::Closed { .. } => Err(FlushError { failures }),
                    CloseOutcome::Failed(reason) => {
                        let next = core.producer.next_append_id();
                        failures.push(WriteFailure {
                            first: next,
                            last: next,
                            items: Vec::new(),
                            reason,
                        });
                        Err(FlushError { failures })
                    }
                };
            }
            core = self
                .shared
                .changed
                .wait(core)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The producer's current epoch (changes when auto-claim takes over).
    pub fn epoch(&self) -> u64 {
        self.shared.lock().producer.epoch()
    }

    /// Payload bytes buffered and not yet acknowledged.
    pub fn buffered_bytes(&self) -> usize {
        self.shared.lock().producer.buffered_bytes()
    }

    /// The latest tail offset an acknowledgement reported.
    pub fn offset(&self) -> Option<Offset> {
        self.shared.lock().tracker.last_offset().cloned()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        let _ = self.commands.try_send(Msg::Command(Command::Stop));
        // The thread ends at its next wake-up; it is not joined so drop never blocks.
        self.thread.take();
    }
}

fn run(shared: Arc<Shared>, mut exchanges: Exchanges<Command>) {
    loop {
        let deadline = {
            let mut core = shared.lock();
            if core.stopped {
                return;
            }
            let now = Instant::now();
            while let Some(id) = core.producer.poll_cancel() {
                exchanges.abort(id);
            }
            while let Some(t) = core.producer.poll_transmit(now) {
                if let Some(failed) = exchanges.start(t) {
                    core.producer.handle_input(failed, Instant::now());
                }
            }
            let mut changed = false;
            while let Some(event) = core.producer.poll_event() {
                core.dispatch(event);
                changed = true;
            }
            if changed {
                shared.changed.notify_all();
            }
            core.producer.poll_timeout()
        };
        match exchanges.recv(deadline) {
            Received::Input(input) => shared.lock().producer.handle_input(input, Instant::now()),
            Received::Timeout => shared.lock().producer.handle_timeout(Instant::now()),
            Received::Command(Command::Wake) => shared.wake_pending.store(false, Ordering::Release),
            Received::Command(Command::Stop) | Received::Closed => return,
        }
    }
}
