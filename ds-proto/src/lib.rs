//! # ds-proto: the Durable Streams protocol, sans IO
//!
//! This crate turns the Durable Streams protocol (`PROTOCOL.md`) into synchronous, runtime-free
//! code: request builders and response interpreters for one-shot operations, and state machines
//! for reading and writing. It never opens a socket, spawns a thread, reads a clock or draws OS
//! randomness: time and randomness are inputs, HTTP messages are values (`http::Request<Bytes>`
//! out, response heads and body chunks in). Drivers (`ds-tokio`, `ds-blocking`, or your own)
//! move the bytes.
//!
//! Most applications want a driver: `ds-tokio` for async code, `ds-blocking` for plain threads.
//! Use this crate directly to run the protocol inside a runtime of your own (an embedded
//! executor, a game loop, a durable-execution engine, a WASI host), to test an application
//! deterministically against a simulated server and network (feature `sim`), or to write a
//! driver.
//!
//! # What is in it
//!
//! | module | what it holds |
//! |---|---|
//! | [`ops`] | one-shot operations: `*_request` builds the `http::Request`, `*_response` turns the answer into a typed result or a typed [`Error`] (create, append, close, head, delete, one read) |
//! | [`reader`] | the [`Reader`]: consumer offset progression (catch-up, long-poll, SSE, auto), cursors, retries |
//! | [`consumer`] | the [`Consumer`]: a reader that hands batches to the application one at a time, checkpoints what it handled, and reconnects with backoff (at-least-once) |
//! | [`producer`] | the [`Producer`]: the idempotent, batching, exactly-once writer |
//! | [`machine`] | the [`Machine`] trait: the vocabulary both machines share, so a driver writes its loop once |
//! | [`exchange`] | what crosses the boundary between a machine and its driver's HTTP exchanges: [`Transmit`] out, [`Input`] in, [`TransportError`] |
//! | [`retry`] | [`RetryPolicy`] and the backoff schedule (capped exponential, full jitter) |
//! | [`sse`] | the incremental Server-Sent Events parser |
//! | [`subscription`] | subscriptions (PROTOCOL.md 6, 7): control-route and claim / ack / release / callback builders and interpreters, webhook signature verification and the JWKS cache |
//! | [`error`] | structured errors: [`Error`], [`ErrorKind`], [`ConflictKind`] |
//! | [`offset`], [`headers`], [`json`], [`url`] | offsets, header names and parsing, JSON-mode bodies, URL building |
//! | [`driver`] | driver support, apart from the protocol: the client settings both drivers share ([`driver::client`]), their `tracing` spans ([`driver::trace`]), collecting a `read_all` ([`driver::read_all`]), tracking a writer's appends ([`driver::write_tracker`]) |
//! | `http1` (feature `http1`) | a sans-IO HTTP/1.1 client codec, for embedders whose runtime only gives them a socket |
//! | `sim` (feature `sim`) | an in-memory server written from the spec, a seeded faulty network, and a virtual-time world that drives machines deterministically |
//!
//! # Driving a machine
//!
//! The [`Reader`] and the [`Producer`] (and any [`Machine`]) are used the same way, in the
//! vocabulary of quinn-proto:
//!
//! - **getters** take `&self` (`Reader::offset`, `Producer::buffered_bytes`, ...);
//! - **commands** come from the application (`Producer::append`, `flush`, `close`;
//!   `Reader::stop`); misuse is an `Err` from the command, never a panic;
//! - **`handle_input(input, now)`** feeds what the driver saw of an exchange, and
//!   **`handle_timeout(now)`** tells the machine time has passed; neither ever fails;
//! - **`poll_*`** drain the outputs, after every command, input and timeout, in one order:
//!   `poll_cancel()`, then `poll_transmit(now)` (together: [`Machine::poll_outgoing`]), then
//!   `poll_event()`; `poll_timeout()` says when to wake next. This order is documented here
//!   and on [`machine`], and both drivers follow it.
//!   Protocol outcomes (a refused append, a failed read) are events, not errors.
//!
//! ```text
//!    application ── commands (append, flush, close, stop) ──┐
//!         ▲                                                  ▼
//!         │                                          ┌──────────────┐
//!         └──────────── poll_event() ────────────────┤              │
//!                                                    │   machine    │── poll_transmit(now) ──► Transmit { id, request, deadline }
//!    clock ──── handle_timeout(now) ────────────────►│  (Reader,    │── poll_cancel()      ──► RequestId to abort
//!               at poll_timeout()                    │   Producer)  │                              │
//!                                                    │              │◄─ handle_input(Input, now) ──┘  Head, Body*, End | Failed
//!                                                    └──────────────┘      (what the exchange of that id returned)
//! ```
//!
//! The loop, in order:
//!
//! ```text
//! loop {
//!     now = clock()                                    // one monotonic clock
//!     feed what happened since the last turn:
//!         machine.handle_input(input, now)             // for each Input that arrived, in order
//!         machine.handle_timeout(now)                  // if poll_timeout() <= now
//!         application commands                         // append, flush, close, stop
//!     drain, each until it returns None, in this order (Machine::poll_outgoing does the first two):
//!         machine.poll_cancel()        -> abort that exchange (close its connection)
//!         machine.poll_transmit(now)   -> start that exchange
//!         machine.poll_event()         -> hand the event to the application
//!     wait for the first of: an Input, a command, machine.poll_timeout(), a Transmit deadline
//! }
//! ```
//!
//! ## The time contract
//!
//! - Every `now` comes from **one monotonic clock** and never goes backwards. The crate never
//!   reads a clock itself (a `clippy.toml` enforces it): ds-tokio passes `tokio::time::Instant`
//!   (so paused-time tests work), a simulation passes virtual time.
//! - Timers (the producer's linger, retry backoff, the SSE idle timeout) fire only when the
//!   driver calls `handle_timeout(now)` with `now >= poll_timeout()`. Calling it early, late or
//!   twice is harmless: early does nothing, late only delays.
//! - `poll_timeout()` changes after every mutation: read it again each time around the loop.
//! - [`Transmit::deadline`] is the driver's to enforce: at the deadline, abort the exchange and
//!   feed [`Input::Failed`] with [`TransportErrorKind::Timeout`].
//!
//! ## Example: a complete loop
//!
//! A producer driven by a loop whose "network" is a closure answering every append at once
//! (a real driver performs HTTP exchanges instead, concurrently, and waits on a real clock):
//!
//! ```
//! use bytes::Bytes;
//! use ds_proto::{Input, Machine, Producer, ProducerConfig, ProducerEvent, Transmit};
//! use std::collections::VecDeque;
//! use std::time::Instant;
//!
//! /// The "server": answers each request with 200 and the new tail.
//! fn exchange(t: &Transmit, stored: &mut Vec<u8>) -> Vec<Input> {
//!     stored.extend_from_slice(t.request.body());
//!     let head = http::Response::builder()
//!         .status(200)
//!         .header("stream-next-offset", format!("0_{}", stored.len()))
//!         .body(())
//!         .unwrap()
//!         .into_parts()
//!         .0;
//!     vec![Input::Head { id: t.id, parts: head }, Input::End { id: t.id }]
//! }
//!
//! /// A driver's loop, written once for any machine.
//! fn drive<M: Machine>(m: &mut M, mut now: Instant, stored: &mut Vec<u8>) -> Vec<M::Event> {
//!     let mut inputs = VecDeque::new();
//!     let mut events = Vec::new();
//!     loop {
//!         while let Some(_id) = m.poll_cancel() {} // abort that exchange
//!         while let Some(t) = m.poll_transmit(now) {
//!             inputs.extend(exchange(&t, stored));
//!         }
//!         while let Some(e) = m.poll_event() {
//!             events.push(e);
//!         }
//!         if let Some(input) = inputs.pop_front() {
//!             m.handle_input(input, now);
//!         } else if let Some(at) = m.poll_timeout() {
//!             now = now.max(at); // a real driver sleeps until `at`
//!             m.handle_timeout(now);
//!         } else {
//!             return events; // nothing in flight, no timer: idle
//!         }
//!     }
//! }
//!
//! # #[allow(clippy::disallowed_methods)]
//! let start = Instant::now();
//! let config = ProducerConfig::new("http://127.0.0.1:4437/v1/stream/log", "writer-1");
//! let mut producer = Producer::new(config, start).unwrap();
//! producer.append(Bytes::from_static(b"hello "), start).unwrap();
//! producer.append(Bytes::from_static(b"world"), start).unwrap();
//! let mut stored = Vec::new();
//! let events = drive(&mut producer, start, &mut stored); // linger expires, the batch goes out
//! assert_eq!(stored, b"hello world");
//! assert!(matches!(events[0], ProducerEvent::Acked { duplicate: false, .. }));
//! assert!(producer.is_idle());
//! ```
//!
//! # The Reader's modes
//!
//! ```text
//!  CatchUp   GET ?offset=o ──200──► GET ?offset=o' ──► … ──Stream-Up-To-Date──► UpToDate, Done (end)
//!
//!  Auto      GET ?offset=o ──► … ──Stream-Up-To-Date──► GET ?cursor=c&live=long-poll&offset=o'
//!                                                         ▲                          │
//!                                                         └── 200 data / 204 ────────┘
//!
//!  LongPoll  GET ?cursor=c&live=long-poll&offset=o ──200 data / 204 timeout──► again from the
//!            returned Stream-Next-Offset, echoing Stream-Cursor
//!
//!  Sse       GET ?cursor=c&live=sse&offset=o ──► data, data, control, data, control, …
//!              │ data is held until its control event, then released with the control's offset
//!              │ the body ends without streamClosed ──► reconnect from the last control offset
//!              └ N connections ending fast without progress ──► FellBackToLongPoll, then LongPoll
//!
//!  any mode  Stream-Closed / streamClosed ──► Closed (end: no request, ever again)
//!            429 / 5xx / transport failure ──► Retrying ──(poll_timeout)──► the same request again
//!            400 / 404 / 410 / other 4xx, invalid response, limit, retries exhausted ──► Failed (end)
//! ```
//!
//! A reader never releases bytes without the offset that follows them: persist
//! [`Chunk::next_offset`] with what you did with the data, and a reader started from it
//! ([`ReaderConfig::offset`]) continues without a gap or a repeat. At most one request is in
//! flight. See [`reader`] for the details.
//!
//! # The life of a batch in the Producer
//!
//! ```text
//!   append ──► OPEN ── linger / max_batch_items / max_batch_bytes / flush / close ──┐
//!              (no seq yet; keeps growing while it could not be sent anyway)        │
//!                                                                                   ▼
//!              SEALED: gets the next Producer-Seq; its body never changes again
//!                 │ its turn: fewer than max_in_flight outstanding, no earlier batch waiting
//!                 ▼
//!   ┌──────► IN FLIGHT ──── 200 / 204 ─────────────────────► ACKED (204: duplicate = true)
//!   │             ├── 409 gap ──► wait until every earlier batch has an outcome ──┐
//!   │             ├── 429 / 5xx / transport ──► BACKOFF ── timer ───────────────┤
//!   │             ├── 403 + auto_claim ──► epoch + 1, seq 0: re-sealed (safe)    │
//!   │             │                        or FAILED (indeterminate)             │
//!   │             └── 400 / 404 / 409 closed / 410 / 413 / 403 ──► FAILED, and every later batch
//!   └───────────────────────────────────────────────────────────────────────────┘
//!
//!   ACKED / FAILED ──► reported (Acked / Failed event) in append order, each append exactly once
//! ```
//!
//! A sealed batch is re-sent byte-identical with its seq, so the server's de-duplication makes
//! every retry safe; a batch that may already be stored is never re-sent under a new epoch (it
//! fails as [`FailureReason::Indeterminate`] with its payloads). See [`producer`] for the rules.
//!
//! # Writing your own driver
//!
//! A driver owns one loop per machine (or one loop for all of them, through [`Machine`]) and
//! makes no protocol decision: the machine says what to send, when to retry and what to report.
//! `examples/custom_runtime.rs` in the repository is a complete, commented template: a
//! single-threaded loop over non-blocking `std::net::TcpStream`s with the `http1` codec, driving
//! a `Producer` and a `Reader` at once.
//!
//! ## How what a socket gives maps to [`Input`]s
//!
//! | what the driver sees | what it feeds (same [`RequestId`] as the [`Transmit`]) |
//! |---|---|
//! | the status line and headers (skip interim `1xx`) | [`Input::Head`] `{ parts }` |
//! | body bytes, de-chunked and decompressed, in any pieces, as they arrive | [`Input::Body`] `{ chunk }` |
//! | the body ended cleanly | [`Input::End`] |
//! | connect refused, DNS failure | [`Input::Failed`], [`TransportErrorKind::Connect`] |
//! | reset, or EOF before the response ended | `Failed`, [`TransportErrorKind::ConnectionReset`] |
//! | the [`Transmit::deadline`] passed | `Failed`, [`TransportErrorKind::Timeout`] (and drop the connection) |
//! | malformed HTTP | `Failed`, [`TransportErrorKind::Protocol`] |
//! | TLS handshake or certificate failure | `Failed`, [`TransportErrorKind::Tls`] |
//! | a driver limit on the response exceeded | `Failed`, [`TransportErrorKind::TooLarge`] |
//!
//! Rules:
//!
//! - **One exchange per connection at a time.** HTTP/1.1 does not multiplex: a reader's
//!   long-poll or SSE response holds its connection for minutes while the producer's appends use
//!   others. Pool idle keep-alive connections; never reuse one whose exchange was cancelled,
//!   failed, or whose response asked to close.
//! - **Stream bodies.** Feed body pieces as they arrive: SSE never ends, and a catch-up read
//!   may be large. Decode `Transfer-Encoding` and any `Content-Encoding` first (or do not ask
//!   for compression).
//! - **Inputs in order, once.** `Head`, then `Body`*, then exactly one of `End` or `Failed`.
//!   After [`poll_cancel`](Machine::poll_cancel) names an exchange, abort it; inputs for ids the
//!   machine no longer waits for are ignored, so a race with a late input is harmless.
//! - **Do not retry.** Never re-send a `Transmit` and never answer one with a made-up status:
//!   report what happened and let the machine decide (it knows which retries are safe).
//! - **Seed the PRNGs** (`ReaderConfig::rng_seed`, `ProducerConfig::rng_seed`) from OS entropy:
//!   they only jitter retry delays, and request contents never depend on them.
//! - **One-shot operations** need no machine: build with `ops::*_request`, send, interpret with
//!   `ops::*_response`, and let a [`Retrier`] decide whether and when to try again.
//! - **Only a socket?** Feature `http1`: `http1::Connection::send` encodes a `Transmit`,
//!   `feed`/`on_eof` take what the socket read, `poll_input` returns the `Input`s, and
//!   `must_close` says whether the connection may carry the next request.
//!
//! ## Testing a driver
//!
//! The `sim` feature gives a driver three levels of test, all deterministic where it matters:
//!
//! 1. **The reference run.** `sim::world::World` is itself a driver on virtual time: it drives
//!    the same machines against the in-memory `sim::SimServer` through a seeded faulty
//!    `sim::net::Net`. Run your scenario there first: what your driver reports must match it.
//! 2. **Your loop, the simulated network.** Make your driver's transport and clock replaceable,
//!    and in tests plug in the simulation: `Net::send(client, transmit, now)` instead of a
//!    socket; route `NetOutput::ToServer` to `SimServer::handle` and the server's outputs back
//!    through `Net::respond`; feed `NetOutput::ToClient` inputs to your driver's input path;
//!    advance a virtual clock to the earliest of your machines', the network's and the server's
//!    `poll_timeout()`. Faults (drops before and after the server applied a request,
//!    duplicates, reordering, 429/5xx, split bodies, resets) then hit your loop exactly as a
//!    real network would, replayably by seed. `sim::world` is the reference implementation of
//!    that plumbing.
//! 3. **Real sockets.** ds-tokio's `server` feature serves the same model over HTTP on
//!    loopback (`ds_tokio::server::BackgroundServer`), for end-to-end tests of your byte layer
//!    without Node or a remote server.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod consumer;
pub mod driver;
pub mod error;
pub mod exchange;
pub mod headers;
#[cfg(feature = "http1")]
pub mod http1;
/// The former name of [`exchange`], kept so existing imports keep compiling.
#[doc(hidden)]
pub mod io {
    pub use crate::exchange::*;
}
pub mod json;
pub mod machine;
pub mod offset;
pub mod ops;
pub mod pipe;
pub mod producer;
pub mod reader;
pub mod retry;
pub mod rng;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sse;
pub mod subscription;
pub mod url;

pub use consumer::{
    Consumer, ConsumerError, ConsumerEvent, ConsumerExit, ConsumerOptions, ErrorAction,
};
pub use error::{
    ConflictKind, Error, ErrorKind, InputReason, InvalidInput, InvalidResponse, Limit,
    LimitExceeded, Operation, ResponseReason,
};
pub use exchange::{Input, RequestId, Transmit, TransportError, TransportErrorKind};
pub use machine::{Machine, Outgoing};
pub use offset::Offset;
pub use producer::{AppendError, AppendId, FailureReason, Producer, ProducerConfig, ProducerEvent};
pub use reader::{Chunk, ReadMode, Reader, ReaderConfig, ReaderEvent};
pub use retry::{Backoff, Retrier, RetryPolicy};
pub use rng::Rng;
pub use subscription::{
    SubscriptionConfig, SubscriptionError, SubscriptionErrorKind, SubscriptionRoot,
};
