//! The long-running consumer: ds-proto's [`Consumer`] machine on its own thread, calling the
//! application's handler for every batch, reconnecting with backoff, until EOF or a stop. The
//! rules (checkpoint, backoff, stop, EOF) are the machine's; this module runs its exchanges,
//! calls the handler and waits.
//!
//! Delivery is **at least once**: a batch is handed to `handle_batch`, and only when the handler
//! returns `Ok` does the consumer move past it. If the handler fails, or the process dies, the
//! batch is delivered again from the last offset the application checkpointed. Checkpointing is
//! the application's: every batch carries the offset to resume from
//! ([`Chunk::next_offset`]); store it together with the effects of the batch to make
//! processing exactly-once.

use crate::engine::{Engine, Msg, Wake};
use crate::trace;
use ds_proto::consumer::{Consumer, ConsumerError, ConsumerEvent, ConsumerExit, ErrorAction};
use ds_proto::reader::Chunk;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Instant;

/// The application's side of a consumer.
pub trait Handler: Send + 'static {
    /// What `handle_batch` fails with.
    type Error: Send + 'static;

    /// Handles one batch: its data, the offset after it, and whether it reached the tail or
    /// the end of the stream. Return `Ok` to move past it.
    fn handle_batch(&mut self, batch: Chunk) -> Result<(), Self::Error>;

    /// Decides what follows an error; reconnects by default.
    fn handle_error(&mut self, error: &ConsumerError<Self::Error>) -> ErrorAction {
        let _ = error;
        ErrorAction::Reconnect
    }
}

/// Controls a running consumer.
#[derive(Debug)]
pub struct ConsumerHandle<E> {
    stop: Arc<AtomicBool>,
    wake: mpsc::SyncSender<Msg<()>>,
    thread: JoinHandle<ConsumerExit<E>>,
}

impl<E> ConsumerHandle<E> {
    /// Asks the consumer to stop (after the batch being handled, if any). Never blocks.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the consumer's thread if it waits for a response or a reconnect. A full queue
        // means it has inputs to look at, and it sees the flag before the next one.
        let _ = self.wake.try_send(Msg::Command(()));
    }

    /// Waits for the consumer to end.
    pub fn wait(self) -> ConsumerExit<E> {
        match self.thread.join() {
            Ok(exit) => exit,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Stops the consumer and waits for it.
    pub fn shutdown(self) -> ConsumerExit<E> {
        self.stop();
        self.wait()
    }
}

/// Runs a consumer of `engine`'s machine on its own thread (see `StreamHandle::consume`).
pub(crate) fn start<H: Handler>(
    engine: Engine<Consumer<H::Error>>,
    url: String,
    handler: H,
) -> ConsumerHandle<H::Error> {
    let wake = engine.commands();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("ds-consumer".into())
        .spawn(move || run(engine, url, handler, &flag))
        .expect("spawn the consumer thread");
    ConsumerHandle { stop, wake, thread }
}

fn run<H: Handler>(
    mut engine: Engine<Consumer<H::Error>>,
    url: String,
    mut handler: H,
    stop: &AtomicBool,
) -> ConsumerExit<H::Error> {
    loop {
        if stop.load(Ordering::Acquire) {
            engine.machine.stop();
        }
        engine.flush_outputs();
        match engine.machine.poll_event() {
            Some(ConsumerEvent::Batch(chunk)) => {
                let result = handler.handle_batch(chunk);
                let _ = engine.machine.batch_done(result, Instant::now());
            }
            Some(ConsumerEvent::Error) => {
                let _ = engine
                    .machine
                    .resolve_error_with(|e| handler.handle_error(e), Instant::now());
            }
            Some(ConsumerEvent::Read(e)) => trace::reader_event(&url, &e),
            Some(ConsumerEvent::Exit(exit)) => return engine.finish(exit),
            None => {
                // A command is a stop: the flag is looked at above.
                if let Wake::Idle = engine.step(true) {
                    engine.machine.stop();
                }
            }
        }
    }
}
