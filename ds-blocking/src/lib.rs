//! # ds-blocking: a Durable Streams client for plain threads
//!
//! A thin driver over [`ds_proto`]: ureq 3 with a pooled keep-alive agent (https through
//! rustls with the default `rustls` feature), no async runtime, and the ds-proto state machines
//! making every protocol decision.
//!
//! Durable Streams are append-only byte streams addressed by URL: writers append, readers read
//! from any offset and follow the tail live (long-poll or Server-Sent Events), and every read
//! returns the offset that follows its data, so a reader that saves it resumes exactly where it
//! stopped. This crate has the same API as `ds-tokio`, with blocking calls: use it in
//! command-line tools, scripts, synchronous services and tests.
//!
//! # Quick start
//!
//! ```no_run
//! use ds_blocking::{Client, CreateOptions, Offset, ReadMode};
//! use serde_json::json;
//!
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new("http://127.0.0.1:4437")?;
//! let stream = client.stream("/v1/stream/chat");
//!
//! // Create a JSON stream (every append is one message), and append once.
//! stream.create(CreateOptions::with_content_type("application/json"))?;
//! stream.append_json(&json!({ "user": "ada", "text": "hello" }))?;
//!
//! // Many appends: a writer batches them on its own thread, exactly once.
//! let writer = stream.writer("chat-bot-1")?;
//! for n in 0..100 {
//!     writer.append_json(&json!({ "user": "bot", "n": n }))?; // never waits for the network
//! }
//! writer.close(false)?; // flush every append; `true` would also close the stream
//!
//! // Follow live: the reader is an Iterator that blocks for more, and ends when the stream closes.
//! let reader = stream.reader(Offset::beginning(), ReadMode::Auto)?;
//! let stopper = reader.stopper(); // `stopper.stop()` from another thread ends the loop
//! for chunk in reader {
//!     let chunk = chunk?;
//!     println!("{} bytes; resume from {}", chunk.data.len(), chunk.next_offset);
//! #   stopper.stop();
//! }
//! # Ok(())
//! # }
//! ```
//!
//! `cargo run --example blocking` in the repository runs the quickstart with this crate.
//!
//! # What to use when
//!
//! | you want to | use |
//! |---|---|
//! | create, append once, close, delete, inspect | [`StreamHandle`]: [`create`](StreamHandle::create), [`append`](StreamHandle::append) / [`append_with`](StreamHandle::append_with) / [`append_json`](StreamHandle::append_json), [`close`](StreamHandle::close), [`head`](StreamHandle::head), [`delete`](StreamHandle::delete) |
//! | read what is there now | [`read_all`](StreamHandle::read_all), [`read_json`](StreamHandle::read_json), or one [`read`](StreamHandle::read) |
//! | follow a stream live, pulling | a [`Reader`] from [`reader`](StreamHandle::reader): an `Iterator` of [`Chunk`]s, [`next_event`](Reader::next_event), [`json`](Reader::json) for typed messages, and a [`ReaderStopper`] to end it from another thread |
//! | write many appends, exactly once | a [`Writer`] from [`writer`](StreamHandle::writer): batched and retried on a background thread; [`on_error`](Writer::on_error) for fire-and-forget, [`append_tracked`](Writer::append_tracked) for a per-append outcome |
//! | process a stream in a long-running service | a consumer: [`consume`](StreamHandle::consume) with your [`Handler`], on its own thread, reconnecting with backoff until the stream closes or you stop it |
//! | process many streams with a fleet of workers, or receive webhooks | a subscription: [`subscription`](Client::subscription) gives a [`SubscriptionHandle`] ([`create`](SubscriptionHandle::create), [`get`](SubscriptionHandle::get), [`add_streams`](SubscriptionHandle::add_streams), ...), [`work`](SubscriptionHandle::work) runs a pull-wake worker with your [`WorkerHandler`], a [`WebhookVerifier`] checks signed webhooks and [`send_callback`](Client::send_callback) acks them |
//!
//! Readers read in one of four [`ReadMode`]s: `CatchUp` (what is there, then stop), `LongPoll`,
//! `Sse`, and `Auto` (cacheable catch-up requests, then long-poll; the default for following).
//!
//! # A consumer
//!
//! ```no_run
//! use ds_blocking::{Chunk, Client, ConsumerExit, ConsumerOptions, Handler, Offset};
//!
//! struct Indexer {
//!     /// Where to resume: stored with the effects of each batch.
//!     checkpoint: Offset,
//! }
//!
//! impl Handler for Indexer {
//!     type Error = String;
//!
//!     fn handle_batch(&mut self, batch: Chunk) -> Result<(), String> {
//!         for message in batch.items()? {
//!             let _ = message; // index it
//!         }
//!         self.checkpoint = batch.next_offset; // in one transaction with the effects
//!         Ok(())
//!     }
//! }
//!
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new("http://127.0.0.1:4437")?;
//! let consumer = client.stream("/v1/stream/orders").consume(
//!     ConsumerOptions::default(), // from the beginning; `offset` resumes from a checkpoint
//!     Indexer { checkpoint: Offset::beginning() },
//! );
//! match consumer.wait() {
//!     ConsumerExit::Eof { offset } => println!("stream closed at {offset}"),
//!     other => println!("consumer ended: {other:?}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! Every failure is a [`ds_blocking::Error`](Error): the [`Operation`], the stream URL (never a
//! query string or a header value), and an [`ErrorKind`] to match on (`NotFound`, `Gone`,
//! `Conflict(ConflictKind::Closed { .. })` and the other conflicts, `Fenced`, `SequenceGap`,
//! `RateLimited`, `Transport`, ...), with shortcuts such as [`Error::is_not_found`] and
//! [`Error::is_closed`]. One-shot operations retry transient failures (429, 5xx, transport) by the
//! client's [`RetryPolicy`], except plain appends, which could be stored twice (use a writer: its
//! retries are exactly-once).
//!
//! # Threads and lifetimes
//!
//! A reader performs its requests on a helper thread and blocks the caller until an event
//! arrives; dropping it cancels its request. A writer runs its producer on a background thread;
//! close (or flush) it before dropping it, or appends not yet acknowledged are abandoned. No
//! async runtime is started: a tokio application wants `ds-tokio` instead.
//!
//! # Features
//!
//! - `rustls` (default): https through rustls with the webpki roots, plus any root certificates
//!   added with `ClientBuilder::add_root_certificate` (see [`Client`] for TLS, credentials,
//!   redirects and timeouts).
//! - `tracing` (off): a `ds.request` span per HTTP exchange (operation, path, status, attempt,
//!   bytes, latency) and events for retries and state changes, never with a header value, a
//!   query string or a payload. Off by default so that users who do not want it compile none
//!   of it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod consumer;
mod engine;
mod handle;
mod pipeline;
mod reader;
mod subscription;
#[cfg(feature = "rustls")]
mod tls;
mod trace;
mod transport;
mod writer;

pub use client::{Client, ClientBuilder, ExtrasProvider};
pub use consumer::{ConsumerHandle, Handler};
pub use ds_proto::consumer::{ConsumerError, ConsumerExit, ConsumerOptions, ErrorAction};
pub use handle::StreamHandle;
pub use reader::{JsonItems, Reader, ReaderStopper};
pub use subscription::{
    webhook_done_body, SubscriptionHandle, WebhookVerifier, WorkerAction, WorkerExit, WorkerHandle,
    WorkerHandler, WorkerOptions, DEFAULT_STREAM_ROOT,
};
pub use writer::{AppendHandle, Writer};

ds_proto::__driver_exports!();
