//! The writer: exactly-once appends through ds-proto's idempotent
//! [`Producer`](ds_proto::producer::Producer), batched, pipelined and retried on a background
//! task.
//!
//! `append` never waits for the network: it hands the payload to the producer (a short lock)
//! and returns its [`AppendId`]. [`Writer::flush`] waits until every append so far is
//! acknowledged or failed; [`Writer::close`] flushes and optionally closes the stream.
//!
//! Dropping a writer without [`Writer::close`] stops its background task at once: appends not
//! yet acknowledged may or may not reach the stream, and nothing reports them. Call `close` (or
//! at least `flush`) before dropping.

use crate::client::Client;
use crate::engine::{now, sleep_until, Exchanges};
use crate::handle::StreamHandle;
use bytes::Bytes;
use ds_proto::producer::{AppendError, AppendId, Producer, ProducerConfig, ProducerEvent};
use ds_proto::write_tracker::{CloseOutcome, WriteFailure, WriteOutcome, WriteTracker};
use ds_proto::{Error, Offset, Operation};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// Called with every failure, as it happens (for fire-and-forget writers).
pub type ErrorCallback = Arc<dyn Fn(&WriteFailure) + Send + Sync>;

struct Core {
    producer: Producer,
    tracker: WriteTracker,
    waiters: HashMap<u64, oneshot::Sender<WriteOutcome>>,
    on_error: Option<ErrorCallback>,
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
    /// Wakes the background task: new appends, flush, close.
    wake: Notify,
    /// Wakes waiters: events were processed.
    changed: Notify,
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
    rx: oneshot::Receiver<WriteOutcome>,
}

impl AppendHandle {
    /// The append's id.
    pub fn id(&self) -> AppendId {
        self.id
    }

    /// Waits for the outcome. `None` if the writer was dropped first.
    pub async fn outcome(self) -> Option<WriteOutcome> {
        self.rx.await.ok()
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
    task: JoinHandle<()>,
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
        let producer = Producer::new(config, now())?;
        let shared = Arc::new(Shared {
            core: Mutex::new(Core {
                producer,
                tracker: WriteTracker::new(),
                waiters: HashMap::new(),
                on_error: None,
            }),
            wake: Notify::new(),
            changed: Notify::new(),
        });
        let exchanges = Exchanges::new(client, call);
        let task = tokio::spawn(run(shared.clone(), exchanges));
        Ok(Writer { shared, task, url })
    }

    /// Sets the callback told of every failure as it happens.
    pub fn on_error(&self, callback: impl Fn(&WriteFailure) + Send + Sync + 'static) {
        self.shared.lock().on_error = Some(Arc::new(callback));
    }

    /// Appends without waiting: `Err(AppendError::Full)` (with the payload handed back) when the
    /// buffer is full, `Err(AppendError::Refused)` for an invalid payload or a stopped writer.
    pub fn try_append(&self, data: impl Into<Bytes>) -> Result<AppendId, AppendError> {
        let id = self.shared.lock().producer.append(data.into(), now())?;
        self.shared.wake.notify_one();
        Ok(id)
    }

    /// Appends, waiting for room when the buffer is full (never for the network otherwise).
    pub async fn append(&self, data: impl Into<Bytes>) -> Result<AppendId, AppendError> {
        let mut data = data.into();
        loop {
            let changed = self.shared.changed.notified();
            match self.try_append(data) {
                Err(AppendError::Full { data: back, .. }) => {
                    data = back;
                    changed.await;
                }
                other => return other,
            }
        }
    }

    /// Appends one value as a JSON message (the stream must be `application/json`).
    pub async fn append_json<T: Serialize + ?Sized>(
        &self,
        value: &T,
    ) -> Result<AppendId, AppendError> {
        self.append(self.to_json(value)?).await
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
    pub async fn append_tracked(
        &self,
        data: impl Into<Bytes>,
    ) -> Result<AppendHandle, AppendError> {
        let mut data = data.into();
        loop {
            let changed = self.shared.changed.notified();
            let attempt = {
                let mut core = self.shared.lock();
                match core.producer.append(data, now()) {
                    Ok(id) => {
                        let (tx, rx) = oneshot::channel();
                        core.waiters.insert(id.0, tx);
                        Ok(AppendHandle { id, rx })
                    }
                    Err(e) => Err(e),
                }
            };
            match attempt {
                Ok(h) => {
                    self.shared.wake.notify_one();
                    return Ok(h);
                }
                Err(AppendError::Full { data: back, .. }) => {
                    data = back;
                    changed.await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends what is buffered now and waits until every append so far is acknowledged or
    /// failed; reports the failures since the last flush.
    pub async fn flush(&self) -> Result<(), FlushError> {
        let target = {
            let mut core = self.shared.lock();
            core.producer.flush(now());
            core.producer.next_append_id()
        };
        self.shared.wake.notify_one();
        loop {
            let changed = self.shared.changed.notified();
            {
                let mut core = self.shared.lock();
                if core.tracker.all_resolved_before(target) {
                    let failures = core.tracker.take_failures();
                    return if failures.is_empty() {
                        Ok(())
                    } else {
                        Err(FlushError { failures })
                    };
                }
            }
            changed.await;
        }
    }

    /// Flushes, then closes the stream when `close_stream` (the final batch carries
    /// `Stream-Closed: true`), and stops the writer.
    pub async fn close(self, close_stream: bool) -> Result<CloseReport, FlushError> {
        if !close_stream {
            self.flush().await?;
            let offset = self.shared.lock().tracker.last_offset().cloned();
            return Ok(CloseReport {
                offset,
                stream_closed: false,
            });
        }
        {
            let mut core = self.shared.lock();
            if let Err(e) = core.producer.close(now()) {
                let mut failures = core.tracker.take_failures();
                failures.push(WriteFailure {
                    first: core.producer.next_append_id(),
                    last: core.producer.next_append_id(),
                    items: Vec::new(),
                    reason: ds_proto::producer::FailureReason::NotStored(e),
                });
                return Err(FlushError { failures });
            }
        }
        self.shared.wake.notify_one();
        loop {
            let changed = self.shared.changed.notified();
            {
                let mut core = self.shared.lock();
                if let Some(outcome) = core.tracker.close_outcome().cloned() {
                    let failures = core.tracker.take_failures();
                    return match outcome {
                        CloseOutcome::Closed { final_offset } if failures.is_empty() => {
                            Ok(CloseReport {
                                offset: final_offset,
                                stream_closed: true,
                            })
                        }
                        CloseOutcome::Closed { .. } => Err(FlushError { failures }),
                        CloseOutcome::Failed(reason) => {
                            let mut failures = failures;
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
            }
            changed.await;
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
        self.task.abort();
    }
}

async fn run(shared: Arc<Shared>, mut exchanges: Exchanges) {
    loop {
        let deadline = {
            let mut core = shared.lock();
            let now = now();
            while let Some(id) = core.producer.poll_cancel() {
                exchanges.abort(id);
            }
            while let Some(t) = core.producer.poll_transmit(now) {
                exchanges.start(t);
            }
            let mut changed = false;
            while let Some(event) = core.producer.poll_event() {
                core.dispatch(event);
                changed = true;
            }
            if changed {
                shared.changed.notify_waiters();
            }
            core.producer.poll_timeout()
        };
        tokio::select! {
            biased;
            input = exchanges.recv() => shared.lock().producer.handle_input(input, now()),
            () = shared.wake.notified() => {}
            () = sleep_until(deadline) => shared.lock().producer.handle_timeout(now()),
        }
    }
}
