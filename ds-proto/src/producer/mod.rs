//! The idempotent producer (PROTOCOL.md 5.2.1, DESIGN.md section 2): exactly-once appends with
//! batching, pipelining, retries, fencing and closing, as a sans-IO state machine.
//!
//! # The life of a batch
//!
//! ```text
//!   append ──► OPEN ── linger / max_batch_items / max_batch_bytes / flush / close ──┐
//!              (no seq yet; grows while it could not be sent anyway)               │
//!                                                                                  ▼
//!              SEALED: gets the next Producer-Seq; body fixed (retries are byte-identical)
//!                 │ its turn: fewer than max_in_flight outstanding (1 until the epoch's
//!                 │ first batch is acked), no earlier batch waiting, the final batch last
//!                 ▼
//!   ┌──────► IN FLIGHT ──── 200 / 204 ──────────────────► ACKED (204: duplicate = true)
//!   │             │
//!   │             ├── 409 gap ──► GAP-WAIT ── every earlier batch has an outcome ──┐
//!   │             │                                                                │
//!   │             ├── 429 / 5xx / transport ──► BACKOFF ── timer ──┐               │
//!   │             │                   (exhausted: FAILED, stop)    │               │
//!   │             ├── 403 + auto_claim ──► wait for every          │               │
//!   │             │    outstanding answer, then epoch+1, seq 0:    │               │
//!   │             │    re-sealed (safe) or FAILED (indeterminate)  │               │
//!   │             │                                                │               │
//!   │             └── 400 / 404 / 409 closed / 410 / 413 / 403 ──► FAILED, and every
//!   │                                   later batch fails (the producer stops)
//!   └──────────────────────────────────────────────────────────────┴───────────────┘
//!
//!   ACKED / FAILED ──► reported (Acked / Failed event) once every earlier batch is reported
//! ```
//!
//! # Rules
//!
//! - **Exactly once.** A sealed batch keeps its epoch, seq and body for every attempt, so the
//!   server's de-duplication (`204`) is sound. Every accepted append is reported exactly once,
//!   in append order.
//! - **Uncertainty.** An attempt that ended without a definite answer (transport failure other
//!   than a failed connect, timeout, a 5xx) may have been applied. Within an epoch this is
//!   harmless (a retry gets `204`). Across an epoch change it is not: such a batch is never
//!   re-sent under the new epoch; it fails with [`FailureReason::Indeterminate`], carrying its
//!   payloads. A batch after the first batch known not stored is still re-sent (the server
//!   applies an epoch's batches in order, so it cannot be stored either).
//! - **Gaps.** Pipelined batches overtaken on the way get `409` with `Producer-Expected-Seq`;
//!   such a batch is re-sent once every earlier batch has an outcome, in seq order. A gap on an
//!   attempt sent after every earlier batch was acknowledged means the server's producer state
//!   disagrees with ours (lost state, another writer with the same id and epoch): that batch
//!   fails with [`ErrorKind::SequenceGap`](crate::ErrorKind::SequenceGap).
//! - **An epoch's first batch.** A server learns a new epoch from its `seq = 0` and refuses a
//!   later seq of an epoch it does not know (`400`). Without order kept on the way, the first
//!   batch of every epoch goes alone and the rest follow its acknowledgement. On a carrier
//!   that keeps order ([`Producer::set_ordered`]) they leave together; a `400` to a later
//!   batch before the epoch is acknowledged is then a gap, handled as above.
//! - **Stopping.** A batch refused for good (400, 404, 409 conflict, 410, 413, a 403 without
//!   auto-claim, an unexpected status, retry exhaustion) fails, and so does every later batch
//!   and the open one: they could not be applied in order without it, and re-using its seq
//!   for other data could be de-duplicated away. Earlier batches still go on to their outcome
//!   (for a fence, a closed stream, 404 or 410 they fail too, except those in flight, whose
//!   answer decides). Appends and close are refused from then on
//!   ([`Producer::error`]).
//! - **Closing.** The final batch (`Stream-Closed: true`, or an empty close-only request with
//!   producer headers) is sent alone once every earlier batch has an outcome, so a `409` with
//!   `Stream-Closed` to any other batch means someone else closed the stream. A retried close
//!   that the server de-duplicates (`204`) is a success. A close-only request that finds the
//!   stream closed by another writer (`409` with `Stream-Closed`) fails: the stream is closed,
//!   but not by this producer.
//!
//! # Durable state
//!
//! [`Producer::snapshot`] takes a [`ProducerSnapshot`]: a plain, serializable value with the
//! epoch, the next seq and append id, every sealed batch not yet reported (epoch, seq, exact
//! body, append ids) and the open batch. [`Producer::restore`] continues from it, in this
//! process or in another after a crash: pending batches are re-sent with their original
//! epoch, seq and body in seq order, so the server stores each once (`204`, a duplicate
//! acknowledgement, for those already stored), then the open batch continues. For this to be
//! exactly-once across a crash, the snapshot restored from must hold every batch ever sent
//! (persist a new one before sending whenever [`Producer::snapshot_mark`] moved), and the
//! appends made after it must be journaled by the application and appended again after the
//! restore. When the snapshot may be stale, or another instance may still be writing, bump
//! the epoch instead. [`ProducerSnapshot`] details the guarantees; a restored producer that
//! finds its snapshot stale fails the affected appends with
//! [`ErrorKind::StaleSnapshot`](crate::ErrorKind::StaleSnapshot).
//!
//! # Driving it
//!
//! After every command, input or timeout: send every [`Producer::poll_transmit`], drain
//! [`Producer::poll_event`], and wake at [`Producer::poll_timeout`] to call
//! [`Producer::handle_timeout`]. Feed each exchange's response head, body chunks and end (or
//! failure) to [`Producer::handle_input`].
//!
//! ```
//! use bytes::Bytes;
//! use ds_proto::producer::{Producer, ProducerConfig, ProducerEvent};
//! use ds_proto::Input;
//! # #[allow(clippy::disallowed_methods)]
//! let now = std::time::Instant::now();
//! let config = ProducerConfig::new("http://127.0.0.1:4437/v1/stream/s", "writer-1");
//! let mut producer = Producer::new(config, now).unwrap();
//! let id = producer.append(Bytes::from_static(b"hello"), now).unwrap();
//! producer.flush(now);
//! let transmit = producer.poll_transmit(now).unwrap();
//! assert_eq!(transmit.request.headers()["producer-seq"], "0");
//! // ... the driver sends it and feeds back what it saw:
//! let head = http::Response::builder().status(200).header("stream-next-offset", "0_5");
//! let (parts, ()) = head.body(()).unwrap().into_parts();
//! producer.handle_input(Input::Head { id: transmit.id, parts }, now);
//! producer.handle_input(Input::End { id: transmit.id }, now);
//! assert!(matches!(
//!     producer.poll_event(),
//!     Some(ProducerEvent::Acked { first, last, duplicate: false, .. }) if first == id && last == id
//! ));
//! assert!(producer.is_idle());
//! ```

mod batch;
mod config;
mod events;
mod machine;
mod snapshot;
#[cfg(test)]
mod target_tests;

pub use config::{ProducerConfig, DEFAULT_CONTENT_TYPE};
pub use events::{AppendError, AppendId, FailureReason, ProducerEvent};
pub use machine::Producer;
pub use snapshot::{
    ProducerSnapshot, SnapshotBatch, SnapshotBatchState, SnapshotClaim, SnapshotMark,
    SnapshotSchedule,
};
