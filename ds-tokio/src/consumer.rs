//! The long-running consumer: a reader on its own task calling the application's handler for
//! every batch, reconnecting with exponential backoff, until EOF or a stop.
//!
//! Delivery is **at least once**: a batch is handed to `handle_batch`, and only when the handler
//! returns `Ok` does the consumer move past it. If the handler fails, or the process dies, the
//! batch is delivered again from the last offset the application checkpointed. Checkpointing is
//! the application's: every batch carries the offset to resume from
//! ([`Chunk::next_offset`]); store it together with the effects of the batch to make
//! processing exactly-once.

use crate::handle::StreamHandle;
use ds_proto::reader::{Chunk, ReadMode, ReaderEvent};
use ds_proto::{Error, Offset, RetryPolicy, Rng};
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the consumer does after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorAction {
    /// Reconnect from the last handled offset after the backoff delay.
    Reconnect,
    /// Stop the consumer.
    Stop,
}

/// An error the consumer reports to the handler.
#[derive(Debug)]
pub enum ConsumerError<E> {
    /// The reader failed (after its own retries): a typed protocol or transport error.
    Read(Error),
    /// The handler refused a batch.
    Handler(E),
}

impl<E: std::fmt::Display> std::fmt::Display for ConsumerError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsumerError::Read(e) => write!(f, "read failed: {e}"),
            ConsumerError::Handler(e) => write!(f, "handler failed: {e}"),
        }
    }
}

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

/// How a consumer reads and reconnects.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerOptions {
    /// Where to start (a checkpoint, `-1` or `now`).
    pub offset: Offset,
    /// How to read (auto by default: catch up, then long-poll).
    pub mode: ReadMode,
    /// The first reconnect delay (1 s by default).
    pub backoff_base: Duration,
    /// The largest reconnect delay (30 s by default).
    pub backoff_max: Duration,
    /// The reader's own retry policy for transient failures before the consumer reconnects.
    pub reader_retry: RetryPolicy,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            offset: Offset::beginning(),
            mode: ReadMode::Auto,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            reader_retry: RetryPolicy::default(),
        }
    }
}

/// How a consumer ended.
#[derive(Debug)]
pub enum ConsumerExit<E> {
    /// The stream is closed and every batch was handled.
    Eof {
        /// The final offset.
        offset: Offset,
    },
    /// Stopped through [`ConsumerHandle::stop`].
    Stopped {
        /// The offset after the last handled batch.
        offset: Offset,
    },
    /// The handler chose [`ErrorAction::Stop`] after this error.
    Failed {
        /// The offset after the last handled batch.
        offset: Offset,
        /// The error.
        error: ConsumerError<E>,
    },
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

impl StreamHandle {
    /// Starts a consumer on its own task, calling `handler` for every batch.
    pub fn consume<H: Handler>(
        &self,
        options: ConsumerOptions,
        handler: H,
    ) -> ConsumerHandle<H::Error> {
        let (stop, stop_rx) = watch::channel(false);
        let handle = self.clone();
        let task = tokio::spawn(run(handle, options, handler, stop_rx));
        ConsumerHandle { stop, task }
    }
}

async fn run<H: Handler>(
    handle: StreamHandle,
    options: ConsumerOptions,
    mut handler: H,
    mut stop: watch::Receiver<bool>,
) -> ConsumerExit<H::Error> {
    let mut offset = options.offset.clone();
    let backoff_policy = RetryPolicy {
        initial_delay: options.backoff_base,
        max_delay: options.backoff_max.max(options.backoff_base),
        max_attempts: None,
        max_elapsed: None,
        ..RetryPolicy::default()
    };
    let mut rng = Rng::new(handle.client().next_seed());
    let mut backoff = backoff_policy.start(crate::engine::now());
    loop {
        let mut config = handle.reader_config();
        config.offset = offset.clone();
        config.mode = options.mode;
        config.retry = options.reader_retry.clone();
        let error = match handle.reader_with(config) {
            Err(e) => ConsumerError::Read(e),
            Ok(mut reader) => loop {
                let event = tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => return ConsumerExit::Stopped { offset },
                    e = reader.next_event() => e,
                };
                match event {
                    Some(ReaderEvent::Data(chunk)) => {
                        let next = chunk.next_offset.clone();
                        match handler.handle_batch(chunk).await {
                            Ok(()) => {
                                offset = next;
                                backoff = backoff_policy.start(crate::engine::now());
                            }
                            Err(e) => break ConsumerError::Handler(e),
                        }
                    }
                    Some(ReaderEvent::Closed { offset: end }) => {
                        return ConsumerExit::Eof { offset: end };
                    }
                    Some(ReaderEvent::UpToDate { offset: at }) => offset = at,
                    Some(ReaderEvent::Failed(e)) => break ConsumerError::Read(e),
                    Some(_) => {}
                    None => return ConsumerExit::Stopped { offset },
                }
            },
        };
        if handler.handle_error(&error) == ErrorAction::Stop {
            return ConsumerExit::Failed { offset, error };
        }
        let delay = backoff
            .next_delay(crate::engine::now(), &mut rng, None)
            .unwrap_or(options.backoff_max);
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return ConsumerExit::Stopped { offset },
            () = tokio::time::sleep(delay) => {}
        }
    }
}
