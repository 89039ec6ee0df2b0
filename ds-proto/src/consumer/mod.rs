//! The [`Consumer`]: a long-running reader that hands batches to the application, as a sans-IO
//! state machine. Both drivers' `consume` run it; what they add is only IO, calling the
//! application's handler, and waiting.
//!
//! A consumer owns a [`Reader`](crate::Reader) started at its checkpoint and drives it through
//! the [`Machine`](crate::Machine) vocabulary (its requests are the reader's). On top, it adds:
//!
//! - **At-least-once hand-off.** Data comes out one batch at a time as
//!   [`ConsumerEvent::Batch`]; no further batch is handed out until the application reports the
//!   outcome with [`Consumer::batch_done`]. Only `Ok` moves the checkpoint
//!   ([`Consumer::checkpoint`]) to the batch's [`Chunk::next_offset`](crate::Chunk::next_offset)
//!   (PROTOCOL.md section 8: offsets are opaque, and resuming from the one that follows a batch
//!   reads what comes after it, without a gap or a repeat).
//! - **The error hook.** A refused batch or a failed reader (after the reader's own retries) is
//!   reported as [`ConsumerEvent::Error`]; the application looks at
//!   [`Consumer::pending_error`] and answers with [`Consumer::resolve_error`]:
//!   [`ErrorAction::Reconnect`] or [`ErrorAction::Stop`].
//! - **Reconnect backoff.** A reconnect waits a delay from [`crate::retry`] (capped exponential
//!   with full jitter, [`ConsumerOptions::backoff_base`] up to
//!   [`ConsumerOptions::backoff_max`], no attempt limit) as a timer in
//!   [`Consumer::poll_timeout`], then starts a new reader from the checkpoint, so a refused batch
//!   is delivered again. A handled batch starts the schedule over.
//! - **Stop and EOF.** [`Consumer::stop`] ends it at the checkpoint (a batch that is out is
//!   waited for); a closed stream ends it (PROTOCOL.md section 4.1). It ends with exactly one
//!   [`ConsumerEvent::Exit`].
//!
//! ```text
//!          batch_done(Ok): checkpoint = next_offset
//!       .------------------------------------------.
//!       v                                          |
//!   Reading --- reader Data ---> Batch out --------'
//!    |  ^  \                        |
//!    |  |   '-- reader Failed --.   '-- batch_done(Err) --.
//!    |  |                       v                         v
//!    |  |                  Error pending  <---------------'
//!    |  |                   |         |
//!    |  |   Reconnect: delay from     '-- Stop --> Exit(Failed)
//!    |  |   the retry schedule
//!    |  |                   v
//!    |  '--- timer -----  Waiting          stop() anywhere --> Exit(Stopped at the checkpoint)
//!    |                                    (with a batch out: once its outcome is reported)
//!    '-- reader Closed --> Exit(Eof)
//! ```
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use ds_proto::consumer::{Consumer, ConsumerEvent, ConsumerOptions};
//! use ds_proto::{Input, ReaderConfig};
//! # #[allow(clippy::disallowed_methods)]
//! let now = std::time::Instant::now();
//! let config = ReaderConfig::new("http://127.0.0.1:4437/v1/stream/orders");
//! let mut consumer: Consumer<String> = Consumer::new(config, &ConsumerOptions::default(), now);
//!
//! // The consumer's requests are its reader's: the driver sends them and feeds the answers.
//! let t = consumer.poll_transmit(now).expect("the first read");
//! let head = http::Response::builder()
//!     .status(200)
//!     .header("stream-next-offset", "0_5")
//!     .body(())
//!     .unwrap()
//!     .into_parts()
//!     .0;
//! consumer.handle_input(Input::Head { id: t.id, parts: head }, now);
//! consumer.handle_input(Input::Body { id: t.id, chunk: Bytes::from_static(b"hello") }, now);
//! consumer.handle_input(Input::End { id: t.id }, now);
//!
//! // One batch for the application; the checkpoint moves once it says the batch is handled.
//! let Some(ConsumerEvent::Batch(batch)) = consumer.poll_event() else { panic!() };
//! assert_eq!(&batch.data[..], b"hello");
//! assert!(consumer.poll_event().is_none(), "one batch at a time");
//! assert_eq!(consumer.checkpoint().as_str(), "-1");
//! consumer.batch_done(Ok(()), now).unwrap();
//! assert_eq!(consumer.checkpoint().as_str(), "0_5");
//! ```

mod machine;
mod types;

pub use machine::Consumer;
pub use types::{
    ConsumerCommandError, ConsumerError, ConsumerEvent, ConsumerExit, ConsumerOptions, ErrorAction,
};

#[cfg(test)]
mod tests;
