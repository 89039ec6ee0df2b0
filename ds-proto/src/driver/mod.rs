//! Driver support, apart from the protocol: what every driver needs but is not itself
//! protocol logic, written once so that a driver is only IO (sockets, tasks or threads,
//! waiting, and the application's callbacks).
//!
//! | module | what it holds |
//! |---|---|
//! | [`buffered`] | a response body collected whole under a size limit (one-shot operations) |
//! | [`call`] | running a one-shot operation ([`OneShot`](crate::ops::OneShot)) across its attempts: call options, retries, what the handle learns |
//! | [`client`] | the settings both drivers' `ClientBuilder`s share (defaults, validation, header layering, credential marking, root certificates with feature `pem`) and the hidden macros that write their `Client` and `StreamHandle` shells |
//! | [`subscription`] | running subscription operations ([`SubscriptionOneShot`](subscription::SubscriptionOneShot)) with retries, the worker run loop's options and error actions, the webhook verifier's steps (`WebhookCheck`) |
//! | [`trace`] | the `tracing` spans and events of the drivers (feature `tracing`; no-ops otherwise); the machines never trace |
//! | [`json_items`] | a reader's JSON messages one by one, decoded as they are taken |
//! | [`reader_state`] | what a driver's reader reports besides events (checkpoint, up to date, EOF, status, snapshot), live or as handed out |
//! | [`read_all`] | collecting a reader's chunks into one `read_all` result |
//! | [`write_tracker`] | per-append outcomes of a writer, for `flush`, `close` and tracked appends |
//! | [`writer`] | the core of a driver's writer: the producer, its bookkeeping, callbacks and waiters, and what `flush` and `close` report |
//! | `pipelined_link` | a writer's dedicated pipelined HTTP/1.1 connection: its queue, deadlines, codec and when it is dropped (feature `http1`); the driver only connects, writes and reads |
//! | `tls` | the rustls client configuration both drivers use (feature `rustls`): bundled and added root certificates, recognising a rustls failure |
//! | `writer_loop` | one turn of a writer's background loop: feeding answers, taking what the producer sends or cancels, the write-ahead snapshot, sorting requests onto their carrier, when to wake (feature `http1`) |
//! | [`writer_pipe`] | how a writer carries its batches: pipelined on one HTTP/1.1 connection or pooled, and the batch target that fills the pipe |

pub mod buffered;
pub mod call;
pub mod client;
pub mod json_items;
#[cfg(feature = "http1")]
pub mod pipelined_link;
pub mod read_all;
pub mod reader_state;
pub mod subscription;
#[cfg(feature = "rustls")]
pub mod tls;
pub mod trace;
pub mod write_tracker;
pub mod writer;
#[cfg(feature = "http1")]
pub mod writer_loop;
pub mod writer_pipe;
