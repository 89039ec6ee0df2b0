//! [`ProducerConfig`]: what a producer is, and how it batches, pipelines and retries.

use crate::error::InputReason;
use crate::error::{Error, Operation};
use crate::headers::{self, MAX_SAFE_INTEGER};
use crate::ops::{self, ProducerHeaders, RequestExtras};
use crate::retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The default content type (`application/octet-stream`).
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// The configuration of a [`Producer`](super::Producer), checked by
/// [`Producer::new`](super::Producer::new).
///
/// Build it with [`ProducerConfig::new`] and change fields with struct update syntax:
///
/// ```
/// # use ds_proto::producer::ProducerConfig;
/// # use std::time::Duration;
/// let config = ProducerConfig {
///     linger: Duration::from_millis(20),
///     auto_claim: true,
///     ..ProducerConfig::new("http://127.0.0.1:4437/v1/stream/orders", "order-service-1")
/// };
/// assert_eq!(config.max_in_flight, 4);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProducerConfig {
    /// The stream URL (absolute `http://` or `https://`).
    pub url: String,
    /// `Producer-Id`: non-empty, a valid header value; stable across restarts.
    pub producer_id: String,
    /// `Producer-Epoch` to start with (default 0, at most 2^53-1). A restarted producer must use
    /// a higher epoch than any earlier instance with the same id (PROTOCOL.md 5.2.1): sequence
    /// numbers restart at 0, and a server that already holds seq 0 of this epoch answers `204`
    /// (duplicate) to different data. `auto_claim` does not help there: it only reacts to a
    /// `403` (a server epoch above ours).
    pub epoch: u64,
    /// On `403` (fenced), take the server's epoch + 1 and go on (PROTOCOL.md 5.2.1,
    /// "Auto-claim Flow"); otherwise a `403` stops the producer. Default `false`.
    pub auto_claim: bool,
    /// How long the first append of a batch waits for company before the batch is sealed
    /// (default 5 ms). A minimum, not a maximum: while the batch could not be sent at once
    /// (`max_in_flight` batches outstanding, or a batch ahead of it waiting), it keeps collecting
    /// appends, past the batch target a writer's pipe plan sets and up to `max_batch_bytes`, and
    /// is sealed as soon as it can be sent.
    pub linger: Duration,
    /// Largest request body of a batch, in bytes (default 32 MiB; at least 1). A single append
    /// larger than this goes alone in its own batch.
    ///
    /// A ceiling, not a size: the writers of `ds-tokio` and `ds-blocking` cut batches at the
    /// target of their pipe plan ([`crate::pipe::WritePipe`]), which starts at 1 MiB and grows
    /// only as measured round trips and delivery rates say the link needs (never beyond about
    /// a second of the measured rate), within 8 MiB ([`crate::pipe::BUDGET_MAX_BATCH_BYTES`]).
    /// Only with `max_in_flight = 1`, before any answer and on a long link (no round trip
    /// under [`crate::pipe::LONG_ANSWER_ROUND_TRIP`]), the batch that waits for the answer in
    /// flight carries what arrives meanwhile up to this ceiling: through a 20 ms round trip, 50 MB
    /// written as fast as possible left in 3 requests instead of 6-10 at the former 8 MiB default
    /// (the official Rust client sends about 26 MB per request). A machine driven without a plan
    /// cuts at this size.
    pub max_batch_bytes: usize,
    /// Most appends in a batch (default 100,000; at least 1). Batches of small appends are
    /// bounded by bytes, not by this count: 100 appends a batch made 100 times more requests
    /// for 100-byte appends, and cost two to three times the throughput and client CPU
    /// (ds-bench, both servers); 10,000 capped a batch of 100-byte appends at 1 MB, below the
    /// plan's targets on a long round trip.
    pub max_batch_items: usize,
    /// Batches outstanding at once (default 4; at least 1).
    ///
    /// With the writers of `ds-tokio` and `ds-blocking` (`http://`, and `https://` with the
    /// default `rustls` feature), more than 1 pipelines the batches in order on one dedicated
    /// HTTP/1.1 connection ([`crate::driver::writer_pipe`]): no `409` when nothing fails, and a
    /// server or proxy that closes pipelined connections makes the writer fall back to one
    /// batch at a time. Measured through a 20 ms round trip (`ds-bench --rtt-ms 20`, both
    /// servers, both drivers, 1 MiB batches, `bench/RTT-20MS.md`): about 40 MB/s at 1 in
    /// flight, 60-90 at 2, 115-160 at 4, 150-195 at 8, with 0 answers of 409. On loopback 4
    /// against 1: 100-byte appends 0.9-1.8x, 1 MiB appends 0.8-1.1x (two runs each, both
    /// servers). Hence 4.
    ///
    /// Correctness does not depend on it: a batch refused with a sequence gap is re-sent,
    /// byte-identical, once every earlier batch has an outcome, and the first batch of every
    /// epoch is sent alone (a server that sees `seq > 0` of a new epoch first answers `400`)
    /// unless the carrier keeps order ([`Producer::set_ordered`](super::Producer::set_ordered),
    /// set by the writers' plan while they pipeline). With machines driven by other carriers
    /// (several connections, no order kept), both real servers answer batches that arrive out
    /// of order with `409` instead of holding them (FIELD-NOTES.md): set 1 there.
    pub max_in_flight: usize,
    /// Backpressure bound: payload bytes held (open batch plus sealed batches not yet
    /// acknowledged or failed). [`Producer::append`](super::Producer::append) answers
    /// [`AppendError::Full`](super::AppendError::Full) beyond it. Default 64 MiB; at least
    /// `max_batch_bytes`.
    pub max_buffered_bytes: usize,
    /// The stream's content type (default `application/octet-stream`). With
    /// `application/json` (JSON mode, PROTOCOL.md 9.1) each append is one JSON value and a batch
    /// is sent as one JSON array; otherwise a batch is the appends' bytes concatenated.
    pub content_type: String,
    /// How failed attempts (429, 5xx, transport failures) are retried. Producer appends carry
    /// producer headers, so retrying them is always safe. Default: [`RetryPolicy::default`]
    /// (bounded: 10 attempts, 2 minutes). Exhaustion fails the batch and stops the producer.
    pub retry: RetryPolicy,
    /// Seed of the machine's PRNG (retry jitter only). Drivers seed it from OS entropy,
    /// simulations from the run's seed.
    pub rng_seed: u64,
    /// The deadline put on every [`Transmit`](crate::io::Transmit) (`now + request_deadline`;
    /// greater than zero); `None` (default) for none. An attempt that passes it fails as a
    /// timeout and is retried under `retry`. The writers of `ds-tokio` and `ds-blocking` fill a
    /// `None` with their client's request timeout (60 s by default), so a server that stops
    /// answering cannot park a writer.
    pub request_deadline: Option<Duration>,
}

impl ProducerConfig {
    /// A configuration with the defaults documented on each field.
    pub fn new(url: impl Into<String>, producer_id: impl Into<String>) -> Self {
        ProducerConfig {
            url: url.into(),
            producer_id: producer_id.into(),
            epoch: 0,
            auto_claim: false,
            linger: Duration::from_millis(5),
            max_batch_bytes: 32 * 1024 * 1024,
            max_batch_items: 100_000,
            max_in_flight: 4,
            max_buffered_bytes: 64 * 1024 * 1024,
            content_type: DEFAULT_CONTENT_TYPE.to_owned(),
            retry: RetryPolicy::default(),
            rng_seed: 0,
            request_deadline: None,
        }
    }

    /// Whether the stream is in JSON mode (`application/json`, parameters ignored).
    pub fn is_json(&self) -> bool {
        headers::is_json_content_type(&self.content_type)
    }

    /// Checks every field; errors are [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
    /// for [`Operation::Append`].
    pub fn validate(&self) -> Result<(), Error> {
        let url = crate::url::strip_query(&self.url);
        let bad = |m: String| {
            Err(Error::invalid_input(
                Operation::Append,
                url,
                InputReason::Config,
                m,
            ))
        };
        if self.producer_id.is_empty() {
            return bad("producer_id must not be empty".to_owned());
        }
        if self.epoch > MAX_SAFE_INTEGER {
            return bad(format!("epoch {} exceeds 2^53-1", self.epoch));
        }
        if self.max_batch_bytes == 0 {
            return bad("max_batch_bytes must be at least 1".to_owned());
        }
        if self.max_batch_items == 0 {
            return bad("max_batch_items must be at least 1".to_owned());
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight must be at least 1".to_owned());
        }
        if self.max_buffered_bytes < self.max_batch_bytes {
            return bad(format!(
                "max_buffered_bytes ({}) must be at least max_batch_bytes ({})",
                self.max_buffered_bytes, self.max_batch_bytes
            ));
        }
        if self.content_type.trim().is_empty() {
            return bad("content_type must not be empty".to_owned());
        }
        if http::HeaderValue::from_str(&self.content_type).is_err() {
            return bad(format!(
                "content_type {:?} is not a valid header value",
                self.content_type
            ));
        }
        if let Err(e) = self.retry.validate() {
            return bad(format!("retry policy: {e}"));
        }
        if self.linger > crate::retry::MAX_DURATION
            || self
                .request_deadline
                .is_some_and(|d| d > crate::retry::MAX_DURATION)
        {
            return bad("linger and request_deadline must not exceed ten years".to_owned());
        }
        if self.request_deadline.is_some_and(|d| d.is_zero()) {
            return bad("request_deadline must be greater than zero".to_owned());
        }
        // The URL and the producer id as a header value: build (and drop) the close request.
        let headers = ProducerHeaders {
            id: self.producer_id.clone(),
            epoch: self.epoch,
            seq: 0,
        };
        ops::close_request(&self.url, Some(&headers), &RequestExtras::default()).map_err(|e| {
            Error {
                operation: Operation::Append,
                ..e
            }
        })?;
        Ok(())
    }
}
