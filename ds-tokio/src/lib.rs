//! # ds-tokio: a Durable Streams client for tokio
//!
//! A thin driver over [`ds_proto`]: hyper 1 with a pooled keep-alive client (https through
//! rustls with the default `rustls` feature), tokio timers, and the ds-proto state machines
//! making every protocol decision.
//!
//! Durable Streams are append-only byte streams addressed by URL: writers append, readers read
//! from any offset and follow the tail live (long-poll or Server-Sent Events), and every read
//! returns the offset that follows its data, so a reader that saves it resumes exactly where it
//! stopped. This crate is the async client; `ds-blocking` is the same API for plain threads.
//!
//! # Quick start
//!
//! ```no_run
//! use ds_tokio::{Client, CreateOptions, Offset, ReadMode};
//! use serde_json::json;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new("http://127.0.0.1:4437")?;
//! let stream = client.stream("/v1/stream/chat");
//!
//! // Create a JSON stream (every append is one message), and append once.
//! stream.create(CreateOptions::with_content_type("application/json")).await?;
//! stream.append_json(&json!({ "user": "ada", "text": "hello" })).await?;
//!
//! // Many appends: a writer batches them, exactly once, retrying safely.
//! let writer = stream.writer("chat-bot-1")?;
//! for n in 0..100 {
//!     writer.append_json(&json!({ "user": "bot", "n": n })).await?; // never waits for the network
//! }
//! writer.flush().await?; // every append acknowledged
//!
//! // Read from the beginning, then follow live; `offset` is the checkpoint to resume from.
//! let mut reader = stream.reader(Offset::beginning(), ReadMode::Auto)?;
//! while let Some(chunk) = reader.next_chunk().await {
//!     let chunk = chunk?;
//!     for message in chunk.items()? {
//!         println!("{}", String::from_utf8_lossy(&message));
//!     }
//!     let _checkpoint = chunk.next_offset; // persist it with what you did with the data
//! #   break;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! `cargo run --example quickstart` in the repository runs a longer version against an embedded
//! server.
//!
//! # What to use when
//!
//! | you want to | use |
//! |---|---|
//! | create, append once, close, delete, inspect | [`StreamHandle`]: [`create`](StreamHandle::create), [`append`](StreamHandle::append) / [`append_with`](StreamHandle::append_with) / [`append_json`](StreamHandle::append_json), [`close`](StreamHandle::close), [`head`](StreamHandle::head), [`delete`](StreamHandle::delete) |
//! | read what is there now | [`read_all`](StreamHandle::read_all), [`read_json`](StreamHandle::read_json), or one [`read`](StreamHandle::read) |
//! | follow a stream live, pulling | a [`Reader`] from [`reader`](StreamHandle::reader): a `futures::Stream` of [`Chunk`]s, [`next_chunk`](Reader::next_chunk), [`next_event`](Reader::next_event), or [`json`](Reader::json) for typed messages |
//! | write many appends, exactly once | a [`Writer`] from [`writer`](StreamHandle::writer): batched, pipelined, retried; [`on_error`](Writer::on_error) for fire-and-forget, [`append_tracked`](Writer::append_tracked) for a per-append outcome |
//! | process a stream in a long-running service | a consumer: [`consume`](StreamHandle::consume) with your [`Handler`], reconnecting with backoff until the stream closes or you stop it |
//! | process many streams with a fleet of workers, or receive webhooks | a subscription: [`subscription`](Client::subscription) gives a [`SubscriptionHandle`] ([`create`](SubscriptionHandle::create), [`get`](SubscriptionHandle::get), [`add_streams`](SubscriptionHandle::add_streams), ...), [`work`](SubscriptionHandle::work) runs a pull-wake worker with your [`WorkerHandler`], a [`WebhookVerifier`] checks signed webhooks and [`send_callback`](Client::send_callback) acks them |
//! | a server for tests or local development | feature `server`: `server::spawn` / `server::BackgroundServer` |
//!
//! Readers read in one of four [`ReadMode`]s: `CatchUp` (what is there, then stop), `LongPoll`,
//! `Sse`, and `Auto` (cacheable catch-up requests, then long-poll; the default for following).
//!
//! # A consumer
//!
//! ```no_run
//! use ds_tokio::{Chunk, Client, ConsumerExit, ConsumerOptions, Handler, Offset};
//!
//! struct Indexer {
//!     /// Where to resume: stored with the effects of each batch.
//!     checkpoint: Offset,
//! }
//!
//! impl Handler for Indexer {
//!     type Error = String;
//!
//!     async fn handle_batch(&mut self, batch: Chunk) -> Result<(), String> {
//!         for message in batch.items()? {
//!             let _ = message; // index it
//!         }
//!         self.checkpoint = batch.next_offset; // in one transaction with the effects
//!         Ok(())
//!     }
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new("http://127.0.0.1:4437")?;
//! let consumer = client.stream("/v1/stream/orders").consume(
//!     ConsumerOptions::default(), // from the beginning; `offset` resumes from a checkpoint
//!     Indexer { checkpoint: Offset::beginning() },
//! );
//! match consumer.wait().await {
//!     ConsumerExit::Eof { offset } => println!("stream closed at {offset}"),
//!     other => println!("consumer ended: {other:?}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Delivery is at least once; storing the checkpoint together with the batch's effects makes it
//! exactly once (`examples/change_feed.rs` shows a restart).
//!
//! # Errors
//!
//! Every failure is a [`ds_tokio::Error`](Error): the [`Operation`], the stream URL (never a
//! query string or a header value), and an [`ErrorKind`] to match on: `NotFound`, `Gone`,
//! `Conflict(ConflictKind::Closed { .. })` and the other conflicts, `Fenced`, `SequenceGap`,
//! `RateLimited`, `PayloadTooLarge`, `BadRequest`, `UnexpectedStatus`, `Transport`, ... with
//! shortcuts such as [`Error::is_not_found`] and [`Error::is_closed`]. One-shot operations retry
//! transient failures (429, 5xx, transport) by the client's [`RetryPolicy`], except plain appends,
//! which could be stored twice (use a writer: its retries are exactly-once).
//!
//! # Lifetimes and cancellation
//!
//! Nothing keeps running after its owner is dropped. Dropping a [`Reader`] aborts its request;
//! dropping a future (a `select!` branch, a timeout) leaves no corrupt state. Dropping a
//! [`Writer`] without [`close`](Writer::close) or [`flush`](Writer::flush) abandons what is not
//! acknowledged yet, so close it. Time comes from `tokio::time`, so tests with paused time work.
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
//! - `server`: the embedded server, `ds_proto`'s in-memory model served over HTTP on loopback,
//!   for tests and local development without Node (`ds serve`, from the `ds-cli` crate).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod clock;
mod consumer;
mod engine;
mod handle;
mod pipeline;
mod reader;
#[cfg(feature = "server")]
pub mod server;
mod subscription;
mod trace;
mod transport;
mod writer;

pub use client::{Client, ClientBuilder, ExtrasProvider};
pub use consumer::{ConsumerHandle, Handler};
pub use ds_proto::consumer::{ConsumerError, ConsumerExit, ConsumerOptions, ErrorAction};
pub use handle::StreamHandle;
pub use reader::{JsonItems, Reader};
pub use subscription::{
    webhook_done_body, SubscriptionHandle, WebhookVerifier, WorkerAction, WorkerExit, WorkerHandle,
    WorkerHandler, WorkerOptions, DEFAULT_STREAM_ROOT,
};
pub use writer::{AppendHandle, Writer};

ds_proto::__driver_exports!();
