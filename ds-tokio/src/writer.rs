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
//!
//! Snapshots ([`Writer::snapshot`], [`Writer::on_snapshot`],
//! [`StreamHandle::writer_from_snapshot`]) carry a writer across a crash exactly-once: see
//! [`Writer`]'s docs, "Durable state".

use crate::client::Client;
use crate::engine::{now, sleep_until, Exchanges};
use crate::handle::StreamHandle;
use crate::trace;
use bytes::Bytes;
use ds_proto::driver::write_tracker::{WriteFailure, WriteOutcome};
use ds_proto::driver::writer::{self as core_writer, WriterCore};
pub use ds_proto::driver::writer::{CloseReport, ErrorCallback, FlushError, SnapshotCallback};
use ds_proto::producer::{AppendError, AppendId, Producer, ProducerConfig, ProducerSnapshot};
use ds_proto::{Error, Offset};
use serde::Serialize;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

type Core = WriterCore<oneshot::Sender<WriteOutcome>>;

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

/// An exactly-once writer of one stream.
///
/// # Durable state: surviving a crash exactly-once
///
/// [`Writer::snapshot`] takes a [`ProducerSnapshot`] at any time, and
/// [`StreamHandle::writer_from_snapshot`] continues from one, in this process or in another
/// after a crash: the batches that were sealed but not acknowledged are re-sent with their
/// original epoch, seq and body, so the server stores each exactly once (a `204` duplicate
/// for those the crashed writer had already stored), then the open batch continues.
///
/// To persist snapshots, register [`Writer::on_snapshot`]. Its callback gets a snapshot at
/// once, then again *before* the writer sends a batch the last one did not hold
/// (write-ahead), and after every acknowledgement or failure. It runs on the writer's task
/// with the writer locked and nothing is sent until it returns, so a snapshot it has
/// persisted always holds every batch that may be on the server. Keep it short (a file write,
/// a database row); a callback that cannot persist should stop the process rather than
/// return.
///
/// Appends made after the last persisted snapshot are the application's to replay: journal
/// each payload durably before calling `append`, and after restoring append the journaled
/// payloads from [`ProducerSnapshot::next_append_id`] on, in order (they get the same ids).
/// Restore only when the old writer is surely gone; when another instance may still be
/// writing with the same producer id and epoch, or the snapshot may be stale, start a writer
/// with a higher epoch instead (at-least-once). The details are on [`ProducerSnapshot`].
pub struct Writer {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    url: String,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let core = self.shared.lock();
        f.debug_struct("Writer")
            .field("url", &ds_proto::url::strip_query(&self.url))
            .field("epoch", &core.producer().epoch())
            .field("buffered_bytes", &core.producer().buffered_bytes())
            .finish_non_exhaustive()
    }
}

impl StreamHandle {
    /// A writer with the producer defaults ([`ProducerConfig::new`]) and the handle's content
    /// type.
    pub fn writer(&self, producer_id: impl Into<String>) -> Result<Writer, Error> {
        self.writer_with(core_writer::default_config(
            self.url(),
            producer_id,
            self.content_type(),
        ))
    }

    /// A writer with every producer setting chosen (its `url` is replaced by this stream's).
    ///
    /// When `config.request_deadline` is `None`, each request gets the handle's call timeout
    /// or the client's [`request_timeout`](crate::ClientBuilder::request_timeout) (60 s by
    /// default) as its deadline: a server that stops answering makes the attempt fail and be
    /// retried, and the appends fail once the retry policy is exhausted, instead of waiting
    /// for ever. (With the client's request timeout set to `None` there is no deadline.)
    pub fn writer_with(&self, mut config: ProducerConfig) -> Result<Writer, Error> {
        let (client, call) = (self.client().clone(), self.call_options());
        core_writer::prepare_config(
            &mut config,
            self.url(),
            client.settings(),
            &call,
            client.next_seed(),
        );
        let url = config.url.clone();
        let core = Core::new(Producer::new(config, now())?);
        Ok(Writer::spawn(client, call, core, url))
    }
}

impl Writer {
    fn spawn(client: Client, call: ds_proto::ops::CallOptions, core: Core, url: String) -> Writer {
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            wake: Notify::new(),
            changed: Notify::new(),
        });
        let exchanges = Exchanges::new(client, call);
        let task = tokio::spawn(run(shared.clone(), exchanges));
        Writer { shared, task, url }
    }

    /// Sets the callback told of every failure as it happens.
    pub fn on_error(&self, callback: impl Fn(&WriteFailure) + Send + Sync + 'static) {
        self.shared.lock().set_on_error(Arc::new(callback));
    }

    /// Appends without waiting: `Err(AppendError::Full)` (with the payload handed back) when the
    /// buffer is full, `Err(AppendError::Refused)` for an invalid payload or a stopped writer.
    pub fn try_append(&self, data: impl Into<Bytes>) -> Result<AppendId, AppendError> {
        self.try_append_as(data.into(), false)
    }

    /// `serialized`: JSON bytes serde_json just wrote, not validated again.
    fn try_append_as(&self, data: Bytes, serialized: bool) -> Result<AppendId, AppendError> {
        let (id, wake) = self.shared.lock().append(data, serialized, now())?;
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(id)
    }

    /// Appends, waiting for room when the buffer is full (never for the network otherwise).
    pub async fn append(&self, data: impl Into<Bytes>) -> Result<AppendId, AppendError> {
        self.append_as(data.into(), false).await
    }

    async fn append_as(&self, mut data: Bytes, serialized: bool) -> Result<AppendId, AppendError> {
        loop {
            let changed = self.shared.changed.notified();
            match self.try_append_as(data, serialized) {
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
        self.append_as(self.to_json(value)?, true).await
    }

    /// [`Writer::append_json`] without waiting for room.
    pub fn try_append_json<T: Serialize + ?Sized>(
        &self,
        value: &T,
    ) -> Result<AppendId, AppendError> {
        self.try_append_as(self.to_json(value)?, true)
    }

    fn to_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes, AppendError> {
        core_writer::json_payload(&self.url, value)
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
                match core.append(data, false, now()) {
                    Ok((id, wake)) => {
                        let (tx, rx) = oneshot::channel();
                        core.track(id, tx);
                        Ok((AppendHandle { id, rx }, wake))
                    }
                    Err(e) => Err(e),
                }
            };
            match attempt {
                Ok((h, wake)) => {
                    if wake {
                        self.shared.wake.notify_one();
                    }
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
        let wait = self.shared.lock().flush(now());
        self.shared.wake.notify_one();
        self.wait_for(|core| core.flushed(wait)).await
    }

    /// Flushes, then closes the stream when `close_stream` (the final batch carries
    /// `Stream-Closed: true`), and stops the writer.
    pub async fn close(self, close_stream: bool) -> Result<CloseReport, FlushError> {
        let wait = self.shared.lock().close(close_stream, now())?;
        self.shared.wake.notify_one();
        self.wait_for(|core| core.closed(wait)).await
    }

    /// Waits until `done` has an answer (checked after every batch of events).
    async fn wait_for<T>(&self, mut done: impl FnMut(&mut Core) -> Option<T>) -> T {
        loop {
            let changed = self.shared.changed.notified();
            if let Some(answer) = done(&mut self.shared.lock()) {
                return answer;
            }
            changed.await;
        }
    }

    /// The producer's current epoch (changes when auto-claim takes over).
    pub fn epoch(&self) -> u64 {
        self.shared.lock().producer().epoch()
    }

    /// Payload bytes buffered and not yet acknowledged.
    pub fn buffered_bytes(&self) -> usize {
        self.shared.lock().producer().buffered_bytes()
    }

    /// The latest tail offset an acknowledgement reported.
    pub fn offset(&self) -> Option<Offset> {
        self.shared.lock().offset()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StreamHandle {
    /// A writer that continues from `snapshot` (taken by [`Writer::snapshot`] or given to an
    /// [`Writer::on_snapshot`] callback, maybe in another process): see the
    /// [`Writer`] docs ("Durable state") and [`ProducerSnapshot`] for the guarantees. The snapshot's
    /// configuration is used, with this stream's URL (it must be the same stream, perhaps
    /// reached at another address) and a fresh PRNG seed. Re-append the journaled appends from
    /// [`ProducerSnapshot::next_append_id`] on after this returns.
    ///
    /// Errors: [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a snapshot of
    /// another format version or an inconsistent one.
    pub fn writer_from_snapshot(&self, mut snapshot: ProducerSnapshot) -> Result<Writer, Error> {
        let (client, call) = (self.client().clone(), self.call_options());
        core_writer::prepare_config(
            &mut snapshot.config,
            self.url(),
            client.settings(),
            &call,
            client.next_seed(),
        );
        let url = snapshot.config.url.clone();
        let core = Core::restore(snapshot, now())?;
        Ok(Writer::spawn(client, call, core, url))
    }
}

impl Writer {
    /// A snapshot of the writer's producer now: everything needed to continue with
    /// [`StreamHandle::writer_from_snapshot`]. Cheap (payloads are shared, not copied) and
    /// without effect on the writer. To persist snapshots for crash recovery use
    /// [`Writer::on_snapshot`], which takes them at the right moments.
    pub fn snapshot(&self) -> ProducerSnapshot {
        self.shared.lock().producer().snapshot()
    }

    /// Sets the callback that persists snapshots (replacing any earlier one). It is called
    /// at once with the current snapshot (on this thread), then by the writer's task
    /// *before* it sends a batch the last snapshot did not hold, and after every
    /// acknowledgement or failure. Nothing is sent while it runs, so the snapshot it last
    /// persisted always holds every batch that may be on the server: restoring from it (plus
    /// the journaled appends from its [`next_append_id`](ProducerSnapshot::next_append_id)
    /// on) is exactly-once, provided it was set before the first append (right after
    /// [`StreamHandle::writer`] or [`StreamHandle::writer_from_snapshot`]). It runs with the
    /// writer locked: keep it short, and do not call the writer from it.
    pub fn on_snapshot(&self, callback: impl Fn(&ProducerSnapshot) + Send + Sync + 'static) {
        self.shared.lock().set_on_snapshot(Arc::new(callback));
    }
}

async fn run(shared: Arc<Shared>, mut exchanges: Exchanges) {
    loop {
        let deadline = {
            let mut core = shared.lock();
            let now = now();
            let producer = core.producer_mut();
            while let Some(id) = producer.poll_cancel() {
                exchanges.abort(id);
            }
            let mut transmits = Vec::new();
            while let Some(t) = producer.poll_transmit(now) {
                transmits.push(t);
            }
            // Persists a due snapshot before anything is sent: it holds every batch in flight.
            let changed = core.deliver_events(trace::producer_event, |tx, outcome| {
                let _ = tx.send(outcome);
            });
            for t in transmits {
                exchanges.start(t);
            }
            if changed {
                shared.changed.notify_waiters();
            }
            core.producer().poll_timeout()
        };
        tokio::select! {
            biased;
            input = exchanges.recv() => shared.lock().producer_mut().handle_input(input, now()),
            () = shared.wake.notified() => {}
            () = sleep_until(deadline) => shared.lock().producer_mut().handle_timeout(now()),
        }
    }
}
