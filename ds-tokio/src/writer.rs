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
use crate::pipeline::{Pipeline, TLS_PIPELINED};
use crate::trace;
use ds_proto::driver::pipelined_link::LinkEvent;
use ds_proto::driver::write_tracker::WriteOutcome;
use ds_proto::driver::writer::WriterCore;
use ds_proto::driver::writer_loop::WriterLoop;
use ds_proto::Error;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, oneshot, Notify};
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

impl AppendHandle {
    /// Waits for the outcome. `None` if the writer was dropped first.
    pub async fn outcome(self) -> Option<WriteOutcome> {
        self.rx.await.ok()
    }
}

ds_proto::__writer! {
    async; .await;
    now: crate::clock::now;
    outcome: oneshot::Receiver<WriteOutcome>;
    channel: oneshot::channel;
    fields { task: JoinHandle<()> }
}

impl Writer {
    fn spawn(
        client: Client,
        call: ds_proto::ops::CallOptions,
        mut core: Core,
        url: String,
    ) -> Result<Writer, Error> {
        // The loop's turns and connection plan (ds-proto): pipelined on one dedicated
        // connection, or pooled; the plan's sizes apply from the first append on.
        let wl = WriterLoop::new(&mut core, TLS_PIPELINED);
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            wake: Notify::new(),
            changed: Notify::new(),
        });
        let exchanges = Exchanges::new(client, call);
        let task = tokio::spawn(run(shared.clone(), exchanges, wl));
        Ok(Writer { shared, task, url })
    }

    /// Wakes the background task: new appends, flush, close.
    fn wake(&self) {
        self.shared.wake.notify_one();
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
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(shared: Arc<Shared>, mut exchanges: Exchanges, mut wl: WriterLoop) {
    let (read_tx, mut read_rx) = mpsc::unbounded_channel();
    let connector = exchanges.pipelined_connector();
    let mut pipeline = Pipeline::new(wl.plan().carrier_depth(), connector, read_tx);
    loop {
        // Under the lock: the loop's turn (ds-proto) and the producer's events delivered. The
        // pipelined connection's writes happen after the lock is released.
        let (carry, deadline) = {
            let mut core = shared.lock();
            let carry = wl.take(&mut core, &mut pipeline.link, now());
            let changed = core.deliver_events(trace::producer_event, |tx, outcome| {
                let _ = tx.send(outcome);
            });
            if changed {
                shared.changed.notify_waiters();
            }
            (carry, wl.deadline(&core, pipeline.link.next_deadline()))
        };
        let carried = !carry.is_empty();
        for id in carry.cancels {
            exchanges.abort(id);
            pipeline.handle(LinkEvent::Abort(id), &mut wl).await;
        }
        for t in carry.pooled {
            exchanges.start(t);
        }
        for t in carry.piped {
            let t = exchanges.with_extras(t);
            pipeline.handle(LinkEvent::Submit(t), &mut wl).await;
        }
        if carried || wl.has_inputs() {
            // Inputs of the writes, transmits the producer may have now, and requests the
            // link hands back after a fallback: all in the next turn.
            continue;
        }
        tokio::select! {
            biased;
            input = exchanges.recv() => wl.push(input),
            Some((gen, data)) = read_rx.recv() => {
                pipeline.handle(LinkEvent::Read(gen, data), &mut wl).await;
            }
            () = shared.wake.notified() => {}
            () = sleep_until(deadline) => {
                let at = now();
                pipeline.handle(LinkEvent::Timeout, &mut wl).await;
                wl.on_timeout(&mut shared.lock(), at);
            }
        }
    }
}
