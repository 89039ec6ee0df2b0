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
//!
//! Snapshots ([`Writer::snapshot`], [`Writer::on_snapshot`],
//! [`StreamHandle::writer_from_snapshot`]) carry a writer across a crash exactly-once: see
//! [`Writer`]'s docs, "Durable state".

use crate::client::Client;
use crate::engine::{Exchanges, Msg, Received};
use crate::handle::StreamHandle;
use crate::trace;
use bytes::Bytes;
use ds_proto::driver::write_tracker::{WriteFailure, WriteOutcome};
use ds_proto::driver::writer::{self as core_writer, WriterCore};
pub use ds_proto::driver::writer::{CloseReport, ErrorCallback, FlushError, SnapshotCallback};
use ds_proto::producer::{AppendError, AppendId, Producer, ProducerConfig, ProducerSnapshot};
use ds_proto::{Error, Offset, Operation};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

/// What the background thread is asked to do.
enum Command {
    /// Look at the producer again (new appends, flush, close).
    Wake,
    /// Stop.
    Stop,
}

/// The writer's state behind the lock: ds-proto's core, and whether the writer was dropped.
struct Core {
    writer: WriterCore<mpsc::Sender<WriteOutcome>>,
    stopped: bool,
}

impl std::ops::Deref for Core {
    type Target = WriterCore<mpsc::Sender<WriteOutcome>>;
    fn deref(&self) -> &Self::Target {
        &self.writer
    }
}

impl std::ops::DerefMut for Core {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.writer
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
/// (write-ahead), and after every acknowledgement or failure. It runs on the writer's thread
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
    commands: SyncSender<Msg<Command>>,
    thread: Option<JoinHandle<()>>,
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
        let core = WriterCore::new(Producer::new(config, Instant::now())?);
        Writer::spawn(client, call, core, url)
    }
}

impl Writer {
    fn spawn(
        client: Client,
        call: ds_proto::ops::CallOptions,
        writer: WriterCore<mpsc::Sender<WriteOutcome>>,
        url: String,
    ) -> Result<Writer, Error> {
        let shared = Arc::new(Shared {
            core: Mutex::new(Core {
                writer,
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
        self.shared.lock().set_on_error(Arc::new(callback));
    }

    /// Appends without waiting: `Err(AppendError::Full)` (with the payload handed back) when the
    /// buffer is full, `Err(AppendError::Refused)` for an invalid payload or a stopped writer.
    pub fn try_append(&self, data: impl Into<Bytes>) -> Result<AppendId, AppendError> {
        self.try_append_as(data.into(), false)
    }

    /// `serialized`: JSON bytes serde_json just wrote, not validated again.
    fn try_append_as(&self, data: Bytes, serialized: bool) -> Result<AppendId, AppendError> {
        let (id, wake) = self
            .shared
            .lock()
            .append(data, serialized, Instant::now())?;
        if wake {
            self.wake();
        }
        Ok(id)
    }

    /// Appends, waiting for room when the buffer is full (never for the network otherwise).
    pub fn append(&self, data: impl Into<Bytes>) -> Result<AppendId, AppendError> {
        self.append_inner(data.into(), false, false)
            .map(|(id, _)| id)
    }

    fn append_inner(
        &self,
        mut data: Bytes,
        tracked: bool,
        serialized: bool,
    ) -> Result<(AppendId, Option<mpsc::Receiver<WriteOutcome>>), AppendError> {
        let mut core = self.shared.lock();
        loop {
            match core.append(data, serialized, Instant::now()) {
                Ok((id, wake)) => {
                    let rx = tracked.then(|| {
                        let (tx, rx) = mpsc::channel();
                        core.track(id, tx);
                        rx
                    });
                    drop(core);
                    if wake {
                        self.wake();
                    }
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
        self.append_inner(self.to_json(value)?, false, true)
            .map(|(id, _)| id)
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
    pub fn append_tracked(&self, data: impl Into<Bytes>) -> Result<AppendHandle, AppendError> {
        let (id, rx) = self.append_inner(data.into(), true, false)?;
        let rx = rx.expect("tracked appends have a receiver");
        Ok(AppendHandle { id, rx })
    }

    /// Sends what is buffered now and waits until every append so far is acknowledged or
    /// failed; reports the failures since the last flush.
    pub fn flush(&self) -> Result<(), FlushError> {
        let wait = self.shared.lock().flush(Instant::now());
        self.wake();
        self.wait_for(|core| core.flushed(wait))
    }

    /// Flushes, then closes the stream when `close_stream` (the final batch carries
    /// `Stream-Closed: true`), and stops the writer.
    pub fn close(self, close_stream: bool) -> Result<CloseReport, FlushError> {
        let wait = self.shared.lock().close(close_stream, Instant::now())?;
        self.wake();
        self.wait_for(|core| core.closed(wait))
    }

    /// Waits until `done` has an answer (checked after every batch of events).
    fn wait_for<T>(&self, mut done: impl FnMut(&mut Core) -> Option<T>) -> T {
        let mut core = self.shared.lock();
        loop {
            if let Some(answer) = done(&mut core) {
                return answer;
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
        self.shared.lock().stopped = true;
        let _ = self.commands.try_send(Msg::Command(Command::Stop));
        // The thread ends at its next wake-up; it is not joined so drop never blocks.
        self.thread.take();
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
        let core = WriterCore::restore(snapshot, Instant::now())?;
        Writer::spawn(client, call, core, url)
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
    /// at once with the current snapshot (on this thread), then by the writer's thread
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

/// Hands the producer's events to their waiters and callbacks, persists a snapshot when due,
/// and wakes `flush`/`close`/`append` waiters when anything happened.
fn deliver_events(shared: &Shared, core: &mut Core) {
    let changed = core.deliver_events(trace::producer_event, |tx, outcome| {
        let _ = tx.send(outcome);
    });
    if changed {
        shared.changed.notify_all();
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
            while let Some(id) = core.producer_mut().poll_cancel() {
                exchanges.abort(id);
            }
            let mut here = None;
            loop {
                let mut transmits = Vec::new();
                while let Some(t) = core.producer_mut().poll_transmit(now) {
                    transmits.push(t);
                }
                if transmits.is_empty() {
                    break;
                }
                // Before anything is sent: the persisted snapshot holds every batch in flight.
                core.persist(false);
                // One request at a time: this thread has nothing else to do until its answer
                // (no other batch may be sent, appends go to the producer directly), so it
                // makes the exchange itself instead of handing it to another thread and
                // waiting to be woken with the answer.
                if transmits.len() == 1
                    && exchanges.is_empty()
                    && core.producer_mut().config().max_in_flight == 1
                {
                    here = transmits.pop();
                    break;
                }
                for t in transmits {
                    if let Some(failed) = exchanges.start(t) {
                        core.producer_mut().handle_input(failed, Instant::now());
                    }
                }
            }
            if let Some(t) = here {
                drop(core);
                exchanges.run_here(t, &mut |input| {
                    let mut core = shared.lock();
                    core.producer_mut().handle_input(input, Instant::now());
                    !core.stopped
                });
                // The answer's events go out before the next batch is sent; timers that came
                // due meanwhile fire.
                let mut core = shared.lock();
                core.producer_mut().handle_timeout(Instant::now());
                deliver_events(&shared, &mut core);
                continue;
            }
            deliver_events(&shared, &mut core);
            core.producer_mut().poll_timeout()
        };
        match exchanges.recv(deadline) {
            Received::Input(input) => shared
                .lock()
                .producer_mut()
                .handle_input(input, Instant::now()),
            Received::Timeout => shared.lock().producer_mut().handle_timeout(Instant::now()),
            Received::Command(Command::Wake) => shared.wake_pending.store(false, Ordering::Release),
            Received::Command(Command::Stop) | Received::Closed => return,
        }
    }
}
