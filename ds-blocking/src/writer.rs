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
use crate::pipeline::{self, Pipeline, TLS_PIPELINED};
use crate::trace;
use ds_proto::driver::pipelined_link::LinkEvent;
use ds_proto::driver::write_tracker::WriteOutcome;
use ds_proto::driver::writer::WriterCore;
use ds_proto::driver::writer_loop::WriterLoop;
use ds_proto::{Error, Operation};
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
    /// Bytes read from the pipelined connection of this generation (`None`: it ended).
    Read(u64, Option<Vec<u8>>),
}

type Core = WriterCore<mpsc::Sender<WriteOutcome>>;

struct Shared {
    core: Mutex<Core>,
    /// Signalled when events were processed.
    changed: Condvar,
    wake_pending: AtomicBool,
    /// The writer was dropped: the thread ends at its next turn.
    stopped: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl AppendHandle {
    /// Waits for the outcome. `None` if the writer was dropped first.
    pub fn outcome(self) -> Option<WriteOutcome> {
        self.rx.recv().ok()
    }
}

ds_proto::__writer! {
    ; ;
    now: std::time::Instant::now;
    outcome: mpsc::Receiver<WriteOutcome>;
    channel: mpsc::channel;
    fields {
        commands: SyncSender<Msg<Command>>,
        thread: Option<JoinHandle<()>>,
    }
}

impl Writer {
    fn spawn(
        client: Client,
        call: ds_proto::ops::CallOptions,
        mut writer: Core,
        url: String,
    ) -> Result<Writer, Error> {
        // The loop's turns and connection plan (ds-proto): pipelined on one dedicated
        // connection, or pooled; the plan's sizes apply from the first append on.
        let wl = WriterLoop::new(&mut writer, TLS_PIPELINED);
        let shared = Arc::new(Shared {
            core: Mutex::new(writer),
            changed: Condvar::new(),
            wake_pending: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        });
        let exchanges = Exchanges::new(client, call);
        let commands = exchanges.commands();
        let bg = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ds-writer".into())
            .spawn(move || run(bg, exchanges, wl))
            .map_err(|e| {
                Error::invalid_input(
                    Operation::Append,
                    &url,
                    ds_proto::InputReason::Resource,
                    format!("cannot spawn: {e}"),
                )
            })?;
        Ok(Writer {
            shared,
            commands,
            thread: Some(thread),
            url,
        })
    }

    /// Wakes the background thread: new appends, flush, close.
    fn wake(&self) {
        if !self.shared.wake_pending.swap(true, Ordering::AcqRel)
            && self.commands.try_send(Msg::Command(Command::Wake)).is_err()
        {
            // The queue is full of inputs: the thread is busy and will look again anyway.
            self.shared.wake_pending.store(false, Ordering::Release);
        }
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
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        let _ = self.commands.try_send(Msg::Command(Command::Stop));
        // The thread ends at its next wake-up; it is not joined so drop never blocks.
        self.thread.take();
    }
}

fn deliver_events(shared: &Shared, core: &mut Core) {
    let changed = core.deliver_events(trace::producer_event, |tx, outcome| {
        let _ = tx.send(outcome);
    });
    if changed {
        shared.changed.notify_all();
    }
}

fn run(shared: Arc<Shared>, mut exchanges: Exchanges<Command>, mut wl: WriterLoop) {
    let tx = exchanges.commands();
    let notify: pipeline::Notify =
        Arc::new(move |gen, data| tx.send(Msg::Command(Command::Read(gen, data))).is_ok());
    let connector = exchanges.pipelined_connector();
    let mut pipeline = Pipeline::new(wl.plan().carrier_depth(), connector, notify);
    while !shared.stopped.load(Ordering::Acquire) {
        // Under the lock: the loop's turn (ds-proto) and the producer's events delivered. The
        // pipelined connection's writes block, and happen after the lock is released:
        // appenders never wait for the network.
        let (carry, deadline) = {
            let mut core = shared.lock();
            let carry = wl.take(&mut core, &mut pipeline.link, Instant::now());
            deliver_events(&shared, &mut core);
            (carry, wl.deadline(&core, pipeline.link.next_deadline()))
        };
        let carried = !carry.is_empty();
        for id in carry.cancels {
            exchanges.abort(id);
            pipeline.handle(LinkEvent::Abort(id), &mut wl);
        }
        for t in carry.pooled {
            if let Some(failed) = exchanges.start(t) {
                wl.push(failed);
            }
        }
        for t in carry.piped {
            let t = exchanges.with_extras(t);
            pipeline.handle(LinkEvent::Submit(t), &mut wl);
        }
        if carried || wl.has_inputs() {
            // Inputs of the writes, transmits the producer may have now, and requests the
            // link hands back after a fallback: all in the next turn.
            continue;
        }
        match exchanges.recv(deadline) {
            Received::Input(input) => wl.push(input),
            Received::Timeout => {
                let now = Instant::now();
                pipeline.handle(LinkEvent::Timeout, &mut wl);
                wl.on_timeout(&mut shared.lock(), now);
            }
            Received::Command(Command::Wake) => shared.wake_pending.store(false, Ordering::Release),
            Received::Command(Command::Read(gen, data)) => {
                pipeline.handle(LinkEvent::Read(gen, data), &mut wl);
            }
            Received::Command(Command::Stop) | Received::Closed => return,
        }
    }
}
