//! # ds-proto: the Durable Streams protocol, sans IO
//!
//! This crate turns the Durable Streams protocol (`PROTOCOL.md`) into synchronous, runtime-free
//! code: request builders and response interpreters for one-shot operations, and state machines
//! for reading and writing. It never opens a socket, spawns a thread, reads a clock or draws OS
//! randomness: time and randomness are inputs, HTTP messages are values (`http::Request<Bytes>`
//! out, response heads and body chunks in). Drivers (`ds-tokio`, `ds-blocking`, or your own)
//! move the bytes.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod error;
pub mod headers;
#[cfg(feature = "http1")]
pub mod http1;
pub mod io;
pub mod json;
pub mod machine;
pub mod offset;
pub mod ops;
pub mod producer;
pub mod read_all;
pub mod reader;
pub mod retry;
pub mod rng;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sse;
pub mod url;
pub mod write_tracker;

pub use error::{ConflictKind, Error, ErrorKind, Operation};
pub use io::{Input, RequestId, Transmit, TransportError, TransportErrorKind};
pub use machine::Machine;
pub use offset::Offset;
pub use producer::{AppendError, AppendId, FailureReason, Producer, ProducerConfig, ProducerEvent};
pub use reader::{Chunk, ReadMode, Reader, ReaderConfig, ReaderEvent};
pub use retry::{Backoff, Retrier, RetryPolicy};
pub use rng::Rng;
