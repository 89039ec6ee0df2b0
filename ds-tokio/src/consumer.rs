//! The long-running consumer: ds-proto's [`Consumer`] machine on its own task, calling the
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

use crate::engine::{now, Engine, Wake};
use crate::trace;
use ds_proto::consumer::{Consumer, ConsumerError, ConsumerEvent, ConsumerExit, ErrorAction};
use ds_proto::reader::Chunk;
use std::future::Future;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The application's side of a consumer.
pub trait Handler: Send + 'static {
    /// What `handle_batch` fails with.
    type Error: Send + 'static;

    /// Handles one batch: its data, the offset after it, and whether it reached the tail or
    /// the end of the stream. Return `Ok` to move past it.
    fn handle_batch(
        &mut self,
        batch: Chunk,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Decides what follows an error; reconnects by default.
    fn handle_error(&mut self, error: &ConsumerError<Self::Error>) -> ErrorAction {
        let _ = error;
        ErrorAction::Reconnect
    }
}

/// Controls a running consumer.
#[derive(Debug)]
pub struct ConsumerHandle<E> {
    stop: watch::Sender<bool>,
    task: JoinHandle<ConsumerExit<E>>,
}

impl<E: Send + 'static> ConsumerHandle<E> {
    /// Asks the consumer to stop (after the batch being handled, if any).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits for the consumer to end.
    pub async fn wait(self) -> ConsumerExit<E> {
        match self.task.await {
            Ok(exit) => exit,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Stops the consumer and waits for it.
    pub async fn shutdown(self) -> ConsumerExit<E> {
        self.stop();
        self.wait().await
    }
}

/// Runs a consumer of `engine`'s machine on its own task (see `StreamHandle::consume`).
pub(crate) fn start<H: Handler>(
    engine: Engine<Consumer<H::Error>>,
    url: String,
    handler: H,
) -> ConsumerHandle<H::Error> {
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(engine.owner_polled(), url, handler, stop_rx));
    ConsumerHandle { stop, task }
}

async fn run<H: Handler>(
    mut engine: Engine<Consumer<H::Error>>,
    url: String,
    mut handler: H,
    mut stop: watch::Receiver<bool>,
) -> ConsumerExit<H::Error> {
    loop {
        if *stop.borrow() {
            engine.machine.stop();
        }
        engine.flush_outputs();
        match engine.machine.poll_event() {
            Some(ConsumerEvent::Batch(chunk)) => {
                let result = handler.handle_batch(chunk).await;
                let _ = engine.machine.batch_done(result, now());
            }
            Some(ConsumerEvent::Error) => {
                let _ = engine
                    .machine
                    .resolve_error_with(|e| handler.handle_error(e), now());
            }
            Some(ConsumerEvent::Read(e)) => trace::reader_event(&url, &e),
            Some(ConsumerEvent::Exit(exit)) => return engine.finish(exit),
            None => {
                tokio::select! {
                    biased;
                    // A stop, or the handle dropped.
                    _ = stop.wait_for(|s| *s) => engine.machine.stop(),
                    wake = engine.step() => if let Wake::Idle = wake {
                        engine.machine.stop();
                    },
                }
            }
        }
    }
}
