//! How a driver's writer carries its batches (issue 16, "Writers that fill the pipe"): the
//! connection plan, sans IO. A [`WriterPipe`] decides whether the writer's requests go
//! pipelined on one dedicated HTTP/1.1 connection (through the `http1` codec's
//! `Connection::pipelined`) or one request per pooled connection as before
//! ([`Carrier`]); it feeds [`WritePipe`] from the writer's sends, acknowledgements and round
//! trips, and hands the [`Producer`] its batch target ([`Producer::set_batch_target`]).
//!
//! The driver's part, with the writer core locked:
//!
//! ```text
//! plan = WriterPipe::new(producer.config())
//! for every transmit the producer hands out:   plan.on_sent(&t, now); carry it (plan.carrier())
//! when its request's last byte was written:    plan.on_written(id, now)
//! for every input fed to the producer:         plan.on_input(&input, now)
//! when the codec's connection says so:         plan.on_pipelining_refused()
//! after that:                                  plan.apply(producer)
//! ```
//!
//! Failures need no mapping of their own: the codec reports a request it can prove was not
//! processed as [`TransportErrorKind::Connect`] (its `NotProcessed`: safe to send again as if
//! never sent) and every other cut-off exchange as
//! [`TransportErrorKind::ConnectionReset`] (outcome unknown), which the [`Producer`] already
//! treats under its indeterminate rule (the batch is re-sent byte-identical with the same
//! `Producer-Seq`, so the server deduplicates it). [`outcome_known_unprocessed`] names that
//! split for drivers that report their own failures (a deadline: `Timeout`, outcome unknown).

use crate::io::{Input, RequestId, Transmit, TransportErrorKind};
use crate::pipe::{PipeLimits, PipeMode, WritePipe};
use crate::producer::{Producer, ProducerConfig};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The smallest batch target: 1 MiB (or `max_batch_bytes` when smaller), the producer's
/// batch size before issue 16.
pub const MIN_TARGET_BYTES: usize = 1 << 20;

/// How the writer's requests travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Carrier {
    /// One request per connection from the client's pool (the driver's ordinary exchanges).
    Pooled,
    /// Up to `depth` requests pipelined on one dedicated HTTP/1.1 connection, answered in
    /// order.
    Pipelined {
        /// Requests outstanding at most on the connection.
        depth: usize,
    },
}

/// Whether a failed exchange is known not to have been processed (safe to send again as if
/// never sent): the codec's `NotProcessed` (`Connect`). Every other kind leaves the outcome
/// unknown (the producer's indeterminate rule).
pub fn outcome_known_unprocessed(kind: TransportErrorKind) -> bool {
    matches!(kind, TransportErrorKind::Connect)
}

/// One request of the writer the plan follows.
#[derive(Debug, Clone, Copy)]
struct Sent {
    bytes: usize,
    /// When its last byte was written (round trips are measured from there).
    written: Option<Instant>,
    /// When it was handed to the carrier (fallback when `written` is never reported).
    started: Instant,
    /// Its response head arrived with this status.
    status: Option<u16>,
    rtt: Option<Duration>,
}

/// The writer's connection plan. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct WriterPipe {
    pipe: WritePipe,
    /// The stream URL is plain `http://`.
    plain_http: bool,
    /// The stream URL is `https://`.
    https: bool,
    /// The driver's dedicated connection speaks TLS ([`WriterPipe::with_tls`]).
    tls: bool,
    sent: HashMap<RequestId, Sent>,
    /// No request of the current run of outstanding requests failed or was refused: a `409`
    /// sequence gap now means the requests were reordered on the way.
    clean_run: bool,
}

impl WriterPipe {
    /// The plan for a writer with `config`: `max_in_flight` is the pipeline depth; batches are
    /// cut between [`MIN_TARGET_BYTES`] (at most `max_batch_bytes`) and `max_batch_bytes`
    /// (within [`crate::pipe::BUDGET_MAX_BATCH_BYTES`] but for a batch that waits alone, one
    /// at a time); at most `max_buffered_bytes` in flight.
    pub fn new(config: &ProducerConfig) -> WriterPipe {
        let depth = config.max_in_flight.max(1);
        let max_batch = config.max_batch_bytes.max(1);
        let min_batch = MIN_TARGET_BYTES.min(max_batch);
        let floor = (min_batch as u64).saturating_mul(depth as u64);
        let limits = PipeLimits {
            max_in_flight: depth,
            min_batch_bytes: min_batch,
            max_batch_bytes: max_batch,
            max_budget_bytes: (config.max_buffered_bytes as u64).max(floor),
        };
        let pipe = WritePipe::new(limits).unwrap_or_else(|_| {
            // The limits above always validate; keep one at a time with 1-byte bounds anyway.
            WritePipe::new(PipeLimits {
                max_in_flight: 1,
                min_batch_bytes: 1,
                max_batch_bytes: max_batch,
                max_budget_bytes: max_batch as u64,
            })
            .expect("one at a time with a 1-byte floor is valid")
        });
        let plain_http = config
            .url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
        let https = config
            .url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
        WriterPipe {
            pipe,
            plain_http,
            https,
            tls: false,
            sent: HashMap::new(),
            clean_run: true,
        }
    }

    /// The plan of a driver whose dedicated connection speaks TLS (`tls`): `https://`
    /// streams are pipelined too. Without it they go pooled.
    #[must_use]
    pub fn with_tls(mut self, tls: bool) -> WriterPipe {
        self.tls = tls;
        self
    }

    /// How the next requests travel: on the dedicated connection when the stream is plain
    /// `http://` (or `https://` with [`with_tls`](Self::with_tls)) and either more than one
    /// may be in flight and pipelining was not refused, or one at a time by configuration
    /// (`max_in_flight = 1`: depth 1, so that the plan learns when each body was written and
    /// measures round trips from there, see [`WriterPipe::on_written`]); pooled otherwise.
    pub fn carrier(&self) -> Carrier {
        let carried = self.plain_http || (self.https && self.tls);
        match self.pipe.mode() {
            PipeMode::Pipelined { depth } if carried => Carrier::Pipelined { depth },
            PipeMode::OneAtATime if carried && self.pipe.limits().max_in_flight == 1 => {
                Carrier::Pipelined { depth: 1 }
            }
            _ => Carrier::Pooled,
        }
    }

    /// The pipeline depth the dedicated connection is opened with (`max_in_flight`).
    pub fn carrier_depth(&self) -> usize {
        self.pipe.limits().max_in_flight
    }

    /// The plan's measurements and budget.
    pub fn pipe(&self) -> &WritePipe {
        &self.pipe
    }

    /// The size at which the producer cuts its next batch.
    pub fn batch_target_bytes(&self) -> usize {
        self.pipe.batch_target_bytes()
    }

    /// Hands the producer its batch target, how far a batch that waits may grow, and whether
    /// its requests keep their order on the way ([`Producer::set_ordered`]: while they are
    /// pipelined on the dedicated connection, an epoch's first batches leave together).
    pub fn apply(&self, producer: &mut Producer) {
        producer.set_ordered(matches!(self.carrier(), Carrier::Pipelined { .. }));
        producer.set_batch_target(Some(self.pipe.batch_target_bytes()));
        producer.set_wait_ceiling(Some(self.pipe.wait_ceiling_bytes()));
        producer.set_wait_ramp(self.pipe.wait_ramp_bytes());
        producer.set_leave_ceiling(self.pipe.leave_ceiling_bytes());
    }

    /// The writer handed `transmit` to its carrier at `now`.
    pub fn on_sent(&mut self, transmit: &Transmit, now: Instant) {
        let bytes = transmit.request.body().len();
        if self.sent.is_empty() {
            self.clean_run = true;
        }
        if let Some(old) = self.sent.insert(
            transmit.id,
            Sent {
                bytes,
                written: None,
                started: now,
                status: None,
                rtt: None,
            },
        ) {
            self.pipe.on_failed(old.bytes, now);
        }
        self.pipe.on_sent(bytes, now);
    }

    /// The last byte of request `id` was written at `now`.
    pub fn on_written(&mut self, id: RequestId, now: Instant) {
        if let Some(s) = self.sent.get_mut(&id) {
            s.written = Some(now);
        }
    }

    /// Feeds one input of the writer's exchanges to the plan, hands the producer the plan's
    /// sizes, then feeds the input to the producer: a batch that leaves with this answer is
    /// cut at the ceiling the answer's measurement set (see
    /// [`Producer::set_wait_ceiling`]).
    pub fn feed(&mut self, producer: &mut Producer, input: Input, now: Instant) {
        self.on_input(&input, now);
        self.apply(producer);
        producer.handle_input(input, now);
    }

    /// An input of the writer's exchanges, as it is fed to the producer.
    pub fn on_input(&mut self, input: &Input, now: Instant) {
        match input {
            Input::Head { id, parts } => {
                let pipelined = matches!(self.carrier(), Carrier::Pipelined { .. });
                let Some(s) = self.sent.get_mut(id) else {
                    return;
                };
                let from = s.written.unwrap_or(s.started);
                s.rtt = Some(now.saturating_duration_since(from));
                s.status = Some(parts.status.as_u16());
                let status = parts.status.as_u16();
                if status == 409
                    && parts
                        .headers
                        .contains_key(crate::headers::PRODUCER_EXPECTED_SEQ)
                {
                    // A sequence gap while every earlier request of the run went through:
                    // something between us and the server reordered the pipeline.
                    if pipelined && self.clean_run {
                        self.pipe.on_out_of_order();
                    }
                    self.clean_run = false;
                } else if !(200..300).contains(&status) {
                    self.clean_run = false;
                }
            }
            Input::Body { .. } => {}
            Input::End { id } => {
                if let Some(s) = self.sent.remove(id) {
                    if s.status.is_some_and(|st| (200..300).contains(&st)) {
                        self.pipe.on_acked(s.bytes, s.rtt, now);
                    } else {
                        self.pipe.on_failed(s.bytes, now);
                    }
                }
            }
            Input::Failed { id, .. } => {
                if let Some(s) = self.sent.remove(id) {
                    self.clean_run = false;
                    self.pipe.on_failed(s.bytes, now);
                }
            }
        }
    }

    /// The writer gave up on request `id` (cancelled, or its connection dropped without an
    /// input for it).
    pub fn on_abandoned(&mut self, id: RequestId, now: Instant) {
        if let Some(s) = self.sent.remove(&id) {
            self.clean_run = false;
            self.pipe.on_failed(s.bytes, now);
        }
    }

    /// Connecting the dedicated connection took `elapsed` (about one round trip), at `now`.
    pub fn on_connected(&mut self, elapsed: Duration, now: Instant) {
        self.pipe.on_rtt_sample(elapsed, now);
    }

    /// The server or a proxy refused pipelining (the codec's `Connection::pipelining_refused`):
    /// pooled, one request per connection, from now on.
    pub fn on_pipelining_refused(&mut self) {
        self.pipe.on_pipelining_refused();
    }
}

#[cfg(test)]
#[path = "writer_pipe_tests.rs"]
mod tests;
