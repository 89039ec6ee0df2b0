//! The long-running consumer: a reader on its own thread calling the application's handler for
//! every batch, reconnecting with exponential backoff, until EOF or a stop.
//!
//! Delivery is **at least once**: a batch is handed to `handle_batch`, and only when the handler
//! returns `Ok` does the consumer move past it. If the handler fails, or the process dies, the
//! batch is delivered again from the last offset the application checkpointed. Checkpointing is
//! the application's: every batch carries the offset to resume from
//! ([`Chunk::next_offset`]); store it together with the effects of the batch to make
//! processing exactly-once.

use crate::handle::StreamHandle;
use crate::reader::ReaderStopper;
use ds_proto::reader::{Chunk, ReadMode, ReaderEvent};
use ds_proto::{Error, Offset, RetryPolicy, Rng};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    fn handle_batch(&mut self, batch: Chunk) -> Result<(), Self::Error>;

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

#[derive(Debug, Default)]
struct StopState {
    stopped: bool,
    reader: Option<ReaderStopper>,
}

/// Controls a running consumer.
#[derive(Debug)]
pub struct ConsumerHandle<E> {
    state: Arc<Mutex<StopState>>,
    wake: mpsc::Sender<()>,
    thread: JoinHandle<ConsumerExit<E>>,
}

impl<E> ConsumerHandle<E> {
    /// Asks the consumer to stop (after the batch being handled, if any).
    pub fn stop(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.stopped = true;
            if let Some(r) = &s.reader {
                r.stop();
            }
        }
        let _ = self.wake.send(());
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

impl StreamHandle {
    /// Starts a consumer on its own thread, calling `handler` for every batch.
    pub fn consume<H: Handler>(
        &self,
        options: ConsumerOptions,
        handler: H,
    ) -> ConsumerHandle<H::Error> {
        let state = Arc::new(Mutex::new(StopState::default()));
        let (wake, wake_rx) = mpsc::channel();
        let handle = self.clone();
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("ds-consumer".into())
            .spawn(move || run(handle, options, handler, shared, wake_rx))
            .expect("spawn the consumer thread");
        ConsumerHandle {
            state,
            wake,
            thread,
        }
    }
}

fn stopped(state: &Mutex<StopState>) -> bool {
    state.lock().map(|s| s.stopped).unwrap_or(true)
}

fn run<H: Handler>(
    handle: StreamHandle,
    options: ConsumerOptions,
    mut handler: H,
    state: Arc<Mutex<StopState>>,
    wake: mpsc::Receiver<()>,
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
    let mut backoff = backoff_policy.start(Instant::now());
    loop {
        if stopped(&state) {
            return ConsumerExit::Stopped { offset };
        }
        let mut config = handle.reader_config();
        config.offset = offset.clone();
        config.mode = options.mode;
        config.retry = options.reader_retry.clone();
        let error = match handle.reader_with(config) {
            Err(e) => ConsumerError::Read(e),
            Ok(mut reader) => {
                if let Ok(mut s) = state.lock() {
                    s.reader = Some(reader.stopper());
                }
                // A stop that raced with the registration above.
                if stopped(&state) {
                    return ConsumerExit::Stopped { offset };
                }
                loop {
                    match reader.next_event() {
                        Some(ReaderEvent::Data(chunk)) => {
                            if stopped(&state) {
                                return ConsumerExit::Stopped { offset };
                            }
                            let next = chunk.next_offset.clone();
                            match handler.handle_batch(chunk) {
                                Ok(()) => {
                                    offset = next;
                                    backoff = backoff_policy.start(Instant::now());
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
                }
            }
        };
        if handler.handle_error(&error) == ErrorAction::Stop {
            return ConsumerExit::Failed { offset, error };
        }
        let delay = backoff
            .next_delay(Instant::now(), &mut rng, None)
            .unwrap_or(options.backoff_max);
        if wake.recv_timeout(delay).is_ok() && stopped(&state) {
            return ConsumerExit::Stopped { offset };
        }
    }
}
