//! The [`Worker`](super::Worker)'s configuration, events, command errors and snapshot.

use crate::error::Error;
use crate::offset::Offset;
use crate::ops::RequestExtras;
use crate::retry::RetryPolicy;
use crate::subscription::{
    PendingStream, SubscriptionError, SubscriptionErrorKind, SubscriptionRoot,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Everything a [`Worker`](super::Worker) needs; checked by
/// [`Worker::new`](super::Worker::new).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// The stream root (`http://host/v1/stream`).
    pub root: SubscriptionRoot,
    /// The pull-wake subscription's id.
    pub subscription_id: String,
    /// This worker's name, sent in claims (`ALREADY_CLAIMED` names the holder).
    pub worker: String,
    /// The subscription's wake stream (stream-root-relative path).
    pub wake_stream: String,
    /// Where to follow the wake stream from: its tail ([`Offset::now`], the default) or an
    /// offset saved in a [`WorkerSnapshot`]. The worker claims once at start anyway, so
    /// starting at the tail misses nothing.
    pub wake_offset: Offset,
    /// How failed requests are retried (claims, acks, releases, reads). Default:
    /// [`RetryPolicy::unlimited`] (acks are bounded by the lease anyway).
    pub retry: RetryPolicy,
    /// The deadline of each claim, ack and release exchange. Default: 10 s.
    pub request_timeout: Duration,
    /// How often the lease is renewed by a heartbeat when nothing else renewed it; `None`:
    /// a third of the lease. Must be shorter than the lease.
    pub heartbeat_interval: Option<Duration>,
    /// The largest linked-stream response buffered whole (one [`Batch`]). Default: 16 MiB.
    pub max_batch_bytes: usize,
    /// Seed of the worker's PRNG (retry jitter only).
    pub rng_seed: u64,
    /// Headers and query parameters added to every request: typically the service
    /// credential (`Authorization: Bearer <service-jwt>`) the claim and the reads need. Acks
    /// and releases replace `Authorization` with the claim token. Never serialized: set it
    /// again on a restored snapshot's config.
    #[serde(skip)]
    pub extras: RequestExtras,
}

impl WorkerConfig {
    /// The default `request_timeout`.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default `max_batch_bytes`.
    pub const DEFAULT_MAX_BATCH_BYTES: usize = 16 << 20;

    /// A configuration with the defaults documented on each field.
    pub fn new(
        root: SubscriptionRoot,
        subscription_id: impl Into<String>,
        worker: impl Into<String>,
        wake_stream: impl Into<String>,
    ) -> WorkerConfig {
        WorkerConfig {
            root,
            subscription_id: subscription_id.into(),
            worker: worker.into(),
            wake_stream: wake_stream.into(),
            wake_offset: Offset::now(),
            retry: RetryPolicy::unlimited(),
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            heartbeat_interval: None,
            max_batch_bytes: Self::DEFAULT_MAX_BATCH_BYTES,
            rng_seed: 0,
            extras: RequestExtras::default(),
        }
    }
}

/// Data of one linked stream, handed out during a wake: one read response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The wake's generation: pass it to [`Worker::ack`](super::Worker::ack).
    pub generation: u64,
    /// The stream-root-relative path.
    pub stream: String,
    /// The bytes (for JSON streams one JSON array; see [`Batch::json`]).
    pub data: Bytes,
    /// The stream is JSON mode: `data` is one JSON array.
    pub json: bool,
    /// The offset after `data`: ack it once `data` is processed.
    pub next_offset: Offset,
    /// The last batch of this stream in this wake.
    pub last: bool,
}

/// Why a wake's lease is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LeaseLoss {
    /// The server answered `FENCED`: the wake is no longer current (7.3): a newer one exists,
    /// or this wake already ended. A `done` or release re-sent after a lost answer gets this
    /// when its first attempt was applied; the worker then claims once, which finds any work
    /// left.
    Fenced,
    /// No renewal succeeded within the lease: the server has let it expire.
    Expired,
    /// The server refused the claim token (401): expired or invalid.
    Unauthorized,
}

/// What a [`Worker`](super::Worker) reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WorkerEvent {
    /// A claim succeeded: this worker holds the lease of this wake. [`Batch`]es follow.
    Claimed {
        /// The wake.
        wake_id: String,
        /// Its generation.
        generation: u64,
        /// The linked streams with their cursors and tails.
        streams: Vec<PendingStream>,
    },
    /// Data to process; ack it with [`Worker::ack`](super::Worker::ack).
    Batch(Batch),
    /// A linked stream could not be read (for instance it was deleted). Its data is not
    /// handed out in this wake; the other streams are.
    StreamFailed {
        /// The wake's generation.
        generation: u64,
        /// The stream.
        stream: String,
        /// Why.
        error: Error,
    },
    /// Every batch of the wake was handed out: call [`Worker::done`](super::Worker::done)
    /// once they are processed (or [`Worker::release`](super::Worker::release)).
    Drained {
        /// The wake's generation.
        generation: u64,
    },
    /// `done` was acknowledged: the wake is finished and the lease released.
    Finished {
        /// The wake's generation.
        generation: u64,
        /// Work remained: the worker claims again at once.
        next_wake: bool,
    },
    /// The wake was released without being finished (by [`Worker::release`] or
    /// [`Worker::stop`](super::Worker::stop)).
    ///
    /// [`Worker::release`]: super::Worker::release
    Released {
        /// The wake's generation.
        generation: u64,
    },
    /// The lease is gone: no more batches of this wake, and its acks are refused. Batches of
    /// it that were not acked will be handed out again in a later wake.
    LeaseLost {
        /// The wake's generation.
        generation: u64,
        /// Why.
        reason: LeaseLoss,
    },
    /// A claim found the subscription held by another worker (or by this one, when an
    /// earlier claim's answer was lost): the worker waits for the next wake event.
    AlreadyClaimed {
        /// The holder, when the server said.
        current_holder: Option<String>,
        /// The current generation, when the server said.
        generation: Option<u64>,
    },
    /// A claim found nothing to do: the worker waits for the next wake event.
    NoPendingWork,
    /// The server refused the offsets of an ack (`INVALID_OFFSET`); those acks are dropped.
    AckRefused {
        /// The wake's generation.
        generation: u64,
        /// The server's error.
        error: SubscriptionError,
    },
    /// A claim, ack or release failed and will be sent again after `delay`.
    Retrying {
        /// Why it failed.
        error: SubscriptionError,
        /// Which retry this is (1 for the first).
        attempt: u32,
        /// The wait before it is sent again.
        delay: Duration,
    },
    /// A claim failed for good (retries exhausted): the worker waits for the next wake event.
    /// If a wake is already outstanding, no event comes until it is claimed (an unclaimed wake
    /// never expires): with a bounded [`RetryPolicy`], restart the worker or drive a claim
    /// yourself. The default policy is unbounded, so this is not reported.
    ClaimFailed(SubscriptionError),
    /// A read of the wake stream or of a linked stream failed and will be retried after
    /// `delay` (by its [`Reader`](crate::Reader)).
    ReadRetrying {
        /// The stream-root-relative path of the stream read.
        stream: String,
        /// Why the read failed.
        error: Error,
        /// Which retry this is (1 for the first).
        attempt: u32,
        /// The wait before the read is sent again.
        delay: Duration,
    },
    /// The worker stopped after [`Worker::stop`](super::Worker::stop). Terminal.
    Stopped,
    /// The worker gave up: the subscription is gone, the credentials are refused, or the wake
    /// stream cannot be read. Terminal.
    Failed(WorkerFailure),
}

/// Why a worker failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerFailure {
    /// A subscription request failed in a way no retry fixes (404, 401 on a claim, 400).
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
    /// The wake stream failed (404, 410, retries exhausted).
    #[error("wake stream: {0}")]
    WakeStream(Error),
}

impl WorkerFailure {
    /// The subscription error kind, if this is a subscription failure.
    pub fn subscription_kind(&self) -> Option<&SubscriptionErrorKind> {
        match self {
            WorkerFailure::Subscription(e) => Some(&e.kind),
            WorkerFailure::WakeStream(_) => None,
        }
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The worker holds no wake of this generation (it finished, was released, or its
    /// lease was lost): the command has no effect.
    #[error("no wake of generation {0} is held")]
    NotHeld(u64),
    /// The stream is not part of the held wake.
    #[error("stream {0:?} is not part of this wake")]
    UnknownStream(String),
    /// The offset is a sentinel (`-1`, `now`): ack the `next_offset` of a batch.
    #[error("cannot ack the sentinel offset {0}")]
    SentinelOffset(Offset),
    /// `done` or `release` was already asked for this wake.
    #[error("the wake is already ending")]
    Ending,
    /// The worker is stopping or stopped.
    #[error("the worker is stopping")]
    Stopping,
}

/// Where a [`Worker`](super::Worker) is, as a plain value: its configuration with the wake
/// stream checkpoint as `wake_offset`, and the last generation it knows of. Credentials
/// (`config.extras`) are not kept. A restored worker claims once at start, then follows the
/// wake stream from the checkpoint: no wake event after the checkpoint is missed. A held
/// wake is not kept: its lease expires on the server, and its unacked data comes again in
/// a later wake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerSnapshot {
    /// [`WorkerSnapshot::FORMAT_VERSION`].
    pub format_version: u32,
    /// The configuration, with the checkpoint as `wake_offset`.
    pub config: WorkerConfig,
    /// The highest generation the worker has seen (claimed, refused or in a wake event).
    pub known_generation: Option<u64>,
}

impl WorkerSnapshot {
    /// The format this version reads and writes.
    pub const FORMAT_VERSION: u32 = 1;

    /// Serializes to JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a worker snapshot serializes")
    }

    /// Parses JSON written by [`WorkerSnapshot::to_json`].
    pub fn from_json(json: &[u8]) -> Result<WorkerSnapshot, String> {
        let s: WorkerSnapshot =
            serde_json::from_slice(json).map_err(|e| format!("worker snapshot: {e}"))?;
        if s.format_version != Self::FORMAT_VERSION {
            return Err(format!(
                "unsupported worker snapshot format_version {}",
                s.format_version
            ));
        }
        Ok(s)
    }
}
