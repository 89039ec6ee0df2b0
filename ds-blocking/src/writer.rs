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
        mut writer: WriterCore<mpsc::Sender<WriteOutcome>>,
        url: String,
    ) -> Result<Writer, Error> {
        // The loop's turns and connection plan (ds-proto): pipelined on one dedicated
        // connection, or pooled; the plan's sizes apply from the first append on.
        let wl = WriterLoop::new(&mut writer, TLS_PIPELINED);
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
        self.shared.lock().stopped = true;
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
    loop {
        let deadline = {
            let mut core = shared.lock();
            if core.stopped {
                return;
            }
            // Cancels and pipelined requests wait for the lock to be released: the pipelined
            // connection's writes block, and appenders must not wait for the network.
            let mut cancels = Vec::new();
            let mut piped = Vec::new();
            loop {
                let mut carry = wl.take(&mut core, &mut pipeline.link, Instant::now());
                if carry.is_empty() {
                    break;
                }
                for &id in &carry.cancels {
                    exchanges.abort(id);
                }
                cancels.append(&mut carry.cancels);
                for t in carry.pooled {
                    if let Some(failed) = exchanges.start(t) {
                        wl.push(failed);
                    }
                }
                piped.append(&mut carry.piped);
                if !piped.is_empty() {
                    break;
                }
            }
            if !cancels.is_empty() || !piped.is_empty() {
                drop(core);
                for id in cancels {
                    pipeline.handle(LinkEvent::Abort(id), &mut wl);
                }
                for t in piped {
                    let t = exchanges.with_extras(t);
                    pipeline.handle(LinkEvent::Submit(t), &mut wl);
                }
                // Their inputs are fed, what the producer has next is sent, and what the link
                // hands back after a fallback goes pooled, with the lock taken again.
                continue;
            }
            deliver_events(&shared, &mut core);
            wl.deadline(&core, pipeline.link.next_deadline())
        };
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
        // The inputs are fed at the next turn, with the lock taken once (and requests the
        // link hands back after a fallback go pooled).
    }
}
