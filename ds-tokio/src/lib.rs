//! # ds-tokio: a Durable Streams client for tokio
//!
//! A thin driver over [`ds_proto`]: hyper 1 with a pooled keep-alive client (https through
//! rustls with the default `rustls` feature), tokio timers, and the ds-proto state machines
//! making every protocol decision.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod consumer;
mod engine;
mod handle;
mod reader;
#[cfg(feature = "server")]
pub mod server;
mod transport;
mod writer;

pub use client::{Client, ClientBuilder, ExtrasProvider};
pub use consumer::{
    ConsumerError, ConsumerExit, ConsumerHandle, ConsumerOptions, ErrorAction, Handler,
};
pub use handle::StreamHandle;
pub use reader::{JsonItems, Reader};
pub use writer::{AppendHandle, CloseReport, ErrorCallback, FlushError, Writer};

pub use ds_proto::producer::{AppendError, AppendId, FailureReason, ProducerConfig};
pub use ds_proto::read_all::ReadAll;
pub use ds_proto::reader::{Chunk, ReadMode, ReaderConfig, ReaderEvent};
pub use ds_proto::write_tracker::{WriteFailure, WriteOutcome};

pub use ds_proto::ops::{
    AppendOptions, AppendOutcome, Appended, CallOptions, Closed, CreateOptions, Created, ForkFrom,
    LiveMode, ProducerHeaders, ReadOptions, ReadResult, RequestExtras, StreamInfo,
};
pub use ds_proto::{ConflictKind, Error, ErrorKind, Offset, Operation, RetryPolicy};

/// A seed from OS entropy for the machines' PRNGs (retry jitter only).
pub(crate) fn entropy_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    h.finish()
}
