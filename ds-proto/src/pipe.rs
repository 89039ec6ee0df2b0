//! The plan a writer follows to fill the pipe on a high-latency link (issue 16, "Writers that
//! fill the pipe"), sans IO: how to carry batches (pipelined on one connection, or one at a
//! time), how many bytes to keep in flight, and how large the next batch may grow.
//!
//! A [`WritePipe`] is fed measurements by the writer's driver or machine (batches sent and
//! acknowledged, round-trip samples, whether the server refused pipelining) and answers with
//! getters: [`WritePipe::mode`], [`WritePipe::budget_bytes`], [`WritePipe::batch_target_bytes`]
//! and [`WritePipe::may_send`]. It never reads a clock: `now` is an argument.
//!
//! # Why
//!
//! Measured through a 20 ms round-trip delay proxy in front of `durable-streams-server`
//! (issue 16): a writer with one 1 MiB batch in flight moves one batch per round trip, about
//! 40 MB/s (1 MiB / ~25 ms); bare POSTs of 1 MiB with 2, 4, 8 in flight reach about 80, 140,
//! 220 MB/s (the link can carry more than one batch per round trip); 8 MiB batches reach
//! 140-200 MB/s at 1 in flight and 250-270 at 2; the official Rust client, with batches of tens
//! of MB, 127-185 MB/s. Several batches in flight on separate connections overtake each other
//! and are answered 409 (sequence gap), so order needs one connection carrying them in turn:
//! HTTP/1.1 pipelining (the `http1` codec's `Connection::pipelined`).
//!
//! So the bytes in flight must cover the bandwidth-delay product, and a batch may be larger
//! than 1 MiB while others are in flight.
//!
//! # The formulas
//!
//! - **Round trip.** `srtt ← 7/8 · srtt + 1/8 · sample` (RFC 6298 section 2), and `min_rtt`,
//!   the smallest sample of the last [`MIN_RTT_WINDOW`] (10 s; the propagation delay, without
//!   queueing). A sample is the time from a batch's last byte written to its response head.
//! - **Delivery rate.** Acknowledged bytes are summed over intervals of at least one `srtt`
//!   (and at least [`MIN_INTERVAL`]); each interval gives `rate = bytes / interval`. An
//!   interval during which the bytes in flight never reached half the budget is *app-limited*
//!   (the application did not offer enough): its sample only counts if it is a new maximum.
//!   `max_rate` is the largest of the last [`RATE_SAMPLES`] samples counted.
//! - **Budget** (bytes in flight): `budget = clamp(GAIN · max_rate · min_rtt, floor,
//!   max_budget_bytes)` with `GAIN` = 2 and `floor = min_batch_bytes · depth`, never more than
//!   twice the previous budget per interval. While the writer is held back by the budget, the
//!   measured rate is `budget / rtt`, so the next budget is twice the last: the budget doubles
//!   each round trip (as a TCP slow start) until the rate stops growing, then settles at about
//!   twice the bandwidth-delay product (headroom for the batch being filled while others are
//!   in flight). At 20 ms and 220 MB/s that is 2 · 220 MB/s · 20 ms = 8.8 MB.
//! - **Next batch** ([`batch_target`]): pipelined with depth `d`, `budget / d`; one at a time,
//!   the whole budget (one batch must cover the pipe alone); clamped to `min_batch_bytes ..=
//!   max_batch_bytes`, and never more than [`BATCH_SPAN`] (1 s) of `max_rate` (at least
//!   `min_batch_bytes`): on a link whose round trip is mostly the time to carry the batch
//!   itself, the budget would otherwise keep growing with its own transfer time. Small appends
//!   still leave after the producer's `linger`: the target is a size at which a batch is cut early,
//!   not a size to wait for.
//! - **A batch that waits** ([`WritePipe::wait_ceiling_bytes`]): while no room is free, the
//!   open batch keeps what arrives instead of being cut at the target, up to the budget and
//!   one [`BATCH_SPAN`] of `max_rate` (at least the target, at most `max_batch_bytes`; before
//!   any rate is measured the target, or [`FIRST_WAIT_MULTIPLE`] targets when a round trip of
//!   at least [`LONG_ROUND_TRIP`] is known, such as the connect's), and leaves with the next
//!   answer. Before any rate is measured, batches that wait one behind the other double the
//!   ceiling, up to [`FIRST_WAIT_MULTIPLE`] targets ([`WritePipe::wait_ramp_bytes`]): a burst
//!   leaves in requests of 1, 2, 4, 8 targets. One at a time (until a round trip shorter
//!   than [`LONG_ANSWER_ROUND_TRIP`] is answered), the batch that waits leaves alone after the
//!   answer in flight and takes all that arrives meanwhile: up to `max_batch_bytes` before any rate
//!   is measured, one [`BATCH_SPAN`] of `max_rate` after, with no ramp; as it leaves it is cut at
//!   [`WritePipe::leave_ceiling_bytes`] (the ceiling may have fallen while it waited).
//! - **Mode.** Pipelined on one connection with depth `max_in_flight` while the server has not
//!   refused pipelining ([`WritePipe::on_pipelining_refused`]: the codec's
//!   `Connection::pipelining_refused`) and no batch was answered out of order
//!   ([`WritePipe::on_out_of_order`]: a 409 sequence gap while pipelining means something
//!   between us and the server reordered requests); otherwise one at a time, for the rest of
//!   the writer's life. `max_in_flight = 1` is always one at a time.
//!
//! The drivers' writers use it through [`crate::driver::writer_pipe::WriterPipe`], which feeds
//! it from the writer's exchanges and hands the batch target to the producer
//! ([`crate::producer::Producer::set_batch_target`]); `may_send` is not consulted yet (the
//! producer's `max_in_flight` and `max_buffered_bytes` bound what is in flight).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back `min_rtt` looks: 10 s.
pub const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// The shortest interval a delivery-rate sample is taken over: 1 ms.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// How many delivery-rate samples `max_rate` is the maximum of: 10.
pub const RATE_SAMPLES: usize = 10;
/// How much of the measured delivery rate one batch may hold: 1 s. A batch the link takes
/// longer than that to carry gains nothing (the pipe is full already) and comes closer to a
/// request deadline ([`WritePipe::batch_target_bytes`], [`WritePipe::wait_ceiling_bytes`]).
pub const BATCH_SPAN: Duration = Duration::from_secs(1);
/// A round trip from which on batches that wait may grow before any rate is measured: 5 ms
/// (a link beyond the local network; [`WritePipe::wait_ceiling_bytes`]).
pub const LONG_ROUND_TRIP: Duration = Duration::from_millis(5);
/// An answer round trip from which on a writer one at a time lets the batch that waits take a
/// whole round trip's appends: 10 ms ([`WritePipe::wait_ceiling_bytes`]). Answers measure
/// from the body's last byte written to the response head, and so include the server's work
/// on the body: the first 1 MiB batch through a 1 ms round trip was answered in 5.7 ms by the
/// reference server. Links between regions take 20 ms and more.
pub const LONG_ANSWER_ROUND_TRIP: Duration = Duration::from_millis(10);
/// Answers a writer one at a time waits for before it judges its link long or short: 2.
/// Until then the batch that waits takes what arrives (so a burst is not sealed in small
/// batches before anything is known) and leaves cut at the target. One answer is not enough:
/// on loopback the reference server answered the first 1 MiB batch of a new stream in 25 to
/// 31 ms in about half of the runs, and in 1 to 2 ms after that.
pub const PROBE_ANSWERS: u64 = 2;
/// How many targets a batch that waits may hold before any rate is measured, on a long round
/// trip: 8.
pub const FIRST_WAIT_MULTIPLE: usize = 8;
/// The budget's multiple of the bandwidth-delay product: 2.
pub const GAIN: u64 = 2;
/// The largest batch the budget's rule makes (pipelined, or one at a time once a round trip
/// under [`LONG_ANSWER_ROUND_TRIP`] is answered): 8 MiB, or `max_batch_bytes` when smaller. Only
/// the batch that waits alone one at a time may take more ([`WritePipe::wait_ceiling_bytes`]).
/// Pipelined, batches share the budget, and waiting batches allowed 32 MiB took the whole pipe (20
/// ms round trip, 8 in flight, durable-streams-server: 199 / 138 MB/s against 279 / 261 at 8 MiB,
/// ds-tokio / ds-blocking); on loopback one at a time, batches allowed 32 MiB went from about 540
/// to 410 MB/s on the reference server (`ds-bench`, 50 x 1 MiB; `bench/RTT-20MS.md`).
pub const BUDGET_MAX_BATCH_BYTES: usize = 8 << 20;

/// A writer's limits, as the user set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipeLimits {
    /// Batches in flight at most (the pipeline depth): at least 1. 1: one at a time.
    pub max_in_flight: usize,
    /// The smallest batch target (a batch is cut at this size at least): at least 1.
    pub min_batch_bytes: usize,
    /// The largest batch: at least `min_batch_bytes`.
    pub max_batch_bytes: usize,
    /// The most bytes in flight: at least `min_batch_bytes · max_in_flight` (memory held by
    /// batches awaiting their answer).
    pub max_budget_bytes: u64,
}

impl Default for PipeLimits {
    /// Depth 4, batches of 1 MiB to 16 MiB, at most 64 MiB in flight.
    fn default() -> Self {
        PipeLimits {
            max_in_flight: 4,
            min_batch_bytes: 1 << 20,
            max_batch_bytes: 16 << 20,
            max_budget_bytes: 64 << 20,
        }
    }
}

/// Limits a [`WritePipe`] cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PipeLimitsError {
    /// `max_in_flight` is 0.
    #[error("max_in_flight must be at least 1")]
    NoInFlight,
    /// `min_batch_bytes` is 0 or above `max_batch_bytes`.
    #[error("min_batch_bytes ({min}) must be at least 1 and at most max_batch_bytes ({max})")]
    BatchBounds {
        /// `min_batch_bytes`.
        min: usize,
        /// `max_batch_bytes`.
        max: usize,
    },
    /// `max_budget_bytes` is below `min_batch_bytes · max_in_flight`.
    #[error(
        "max_budget_bytes ({budget}) must be at least min_batch_bytes x max_in_flight ({floor})"
    )]
    BudgetTooSmall {
        /// `max_budget_bytes`.
        budget: u64,
        /// `min_batch_bytes · max_in_flight`.
        floor: u64,
    },
}

impl PipeLimits {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), PipeLimitsError> {
        if self.max_in_flight == 0 {
            return Err(PipeLimitsError::NoInFlight);
        }
        if self.min_batch_bytes == 0 || self.min_batch_bytes > self.max_batch_bytes {
            return Err(PipeLimitsError::BatchBounds {
                min: self.min_batch_bytes,
                max: self.max_batch_bytes,
            });
        }
        let floor = (self.min_batch_bytes as u64).saturating_mul(self.max_in_flight as u64);
        if self.max_budget_bytes < floor {
            return Err(PipeLimitsError::BudgetTooSmall {
                budget: self.max_budget_bytes,
                floor,
            });
        }
        Ok(())
    }
}

/// How the writer carries its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PipeMode {
    /// One batch at a time: the next is sent when the previous was answered.
    OneAtATime,
    /// Up to `depth` batches pipelined on one HTTP/1.1 connection, answered in order.
    Pipelined {
        /// How many batches may be outstanding.
        depth: usize,
    },
}

impl PipeMode {
    /// How many batches may be outstanding.
    pub fn depth(self) -> usize {
        match self {
            PipeMode::OneAtATime => 1,
            PipeMode::Pipelined { depth } => depth,
        }
    }
}

/// The bandwidth-delay product: the bytes `rate` (bytes per second) delivers in `rtt`.
pub fn bdp_bytes(rate: u64, rtt: Duration) -> u64 {
    u128::from(rate)
        .checked_mul(rtt.as_nanos())
        .and_then(|b| u64::try_from(b / 1_000_000_000).ok())
        .unwrap_or(u64::MAX)
}

/// The budget for a delivery rate (bytes per second) and a round trip, within the limits:
/// `clamp(GAIN · bdp, min_batch_bytes · depth, max_budget_bytes)`.
pub fn budget_for(rate: u64, rtt: Duration, depth: usize, limits: &PipeLimits) -> u64 {
    let floor = (limits.min_batch_bytes as u64).saturating_mul(depth as u64);
    GAIN.saturating_mul(bdp_bytes(rate, rtt))
        .min(limits.max_budget_bytes)
        .max(floor.min(limits.max_budget_bytes))
}

/// The size at which the next batch is cut: `budget / depth`, clamped to
/// `min_batch_bytes ..= max_batch_bytes`.
pub fn batch_target(budget: u64, depth: usize, limits: &PipeLimits) -> usize {
    let share = budget / depth.max(1) as u64;
    let share = usize::try_from(share).unwrap_or(usize::MAX);
    share.clamp(limits.min_batch_bytes, limits.max_batch_bytes)
}

/// Adds the round trip `rtt` seen at `now` to `samples`, a windowed minimum over
/// [`MIN_RTT_WINDOW`]: samples older than the window leave, and only samples that may become
/// the minimum are kept (a monotonic queue, its minimum in front).
fn push_windowed_min(samples: &mut VecDeque<(Instant, Duration)>, rtt: Duration, now: Instant) {
    while samples
        .front()
        .is_some_and(|(at, _)| now.saturating_duration_since(*at) > MIN_RTT_WINDOW)
    {
        samples.pop_front();
    }
    while samples.back().is_some_and(|(_, d)| *d >= rtt) {
        samples.pop_back();
    }
    samples.push_back((now, rtt));
}

/// The writer's plan, fed with measurements. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct WritePipe {
    limits: PipeLimits,
    pipelining_allowed: bool,
    budget: u64,
    in_flight_bytes: u64,
    in_flight_batches: usize,
    srtt: Option<Duration>,
    /// Recent round-trip samples (for the windowed minimum), oldest first.
    rtt_samples: VecDeque<(Instant, Duration)>,
    /// The shortest round trip of the first [`PROBE_ANSWERS`] answers (not connects: a proxy
    /// or a load balancer accepts at once): what a writer one at a time judges its link on.
    probe_rtt: Option<Duration>,
    /// Answers with a round trip measured, in all (saturating).
    answers: u64,
    /// Counted delivery-rate samples (bytes per second), oldest first.
    rates: VecDeque<u64>,
    /// The interval being measured: when it started, bytes acknowledged in it, and the most
    /// bytes in flight during it.
    interval: Option<(Instant, u64, u64)>,
    /// Since when nothing is in flight (idle time is left out of the interval).
    idle_since: Option<Instant>,
}

impl WritePipe {
    /// A plan for a writer with these limits; the budget starts at `min_batch_bytes · depth`
    /// (what a writer with fixed batches of `min_batch_bytes` keeps in flight).
    pub fn new(limits: PipeLimits) -> Result<Self, PipeLimitsError> {
        limits.validate()?;
        let mut pipe = WritePipe {
            limits,
            pipelining_allowed: limits.max_in_flight > 1,
            budget: 0,
            in_flight_bytes: 0,
            in_flight_batches: 0,
            srtt: None,
            rtt_samples: VecDeque::new(),
            probe_rtt: None,
            answers: 0,
            rates: VecDeque::new(),
            interval: None,
            idle_since: None,
        };
        pipe.budget = pipe.floor();
        Ok(pipe)
    }

    // --- getters -------------------------------------------------------------------------------

    /// The limits.
    pub fn limits(&self) -> &PipeLimits {
        &self.limits
    }

    /// How to carry batches now.
    pub fn mode(&self) -> PipeMode {
        if self.pipelining_allowed {
            PipeMode::Pipelined {
                depth: self.limits.max_in_flight,
            }
        } else {
            PipeMode::OneAtATime
        }
    }

    /// The bytes that may be in flight.
    pub fn budget_bytes(&self) -> u64 {
        self.budget
    }

    /// The size at which the next batch is cut: [`batch_target`] of the budget and the
    /// mode's depth, and at most [`BATCH_SPAN`] of the measured rate (not below
    /// `min_batch_bytes`).
    pub fn batch_target_bytes(&self) -> usize {
        let target = batch_target(self.budget, self.mode().depth(), &self.limits)
            .min(self.budget_max_batch_bytes());
        self.rate_span().map_or(target, |span| target.min(span))
    }

    /// [`BATCH_SPAN`] of the measured rate, at least `min_batch_bytes`; `None` before a rate
    /// is measured.
    fn rate_span(&self) -> Option<usize> {
        let rate = self.max_rate()?;
        let span = u128::from(rate) * BATCH_SPAN.as_millis() / 1000;
        Some(
            usize::try_from(span)
                .unwrap_or(usize::MAX)
                .max(self.limits.min_batch_bytes),
        )
    }

    /// How large a batch that must wait for room may grow: the whole budget (what the pipe
    /// needs in flight), but at most [`BATCH_SPAN`] of the measured delivery rate, at least
    /// the batch target and at most `max_batch_bytes`; before any rate is measured, the
    /// target (a short round trip gains nothing from large bodies, and some servers take them
    /// more slowly), or [`FIRST_WAIT_MULTIPLE`] targets once a round trip of at least
    /// [`LONG_ROUND_TRIP`] was seen (a connect: [`WritePipe::on_rtt_sample`]).
    /// A batch that waits carries what arrived meanwhile, but not more than the pipe needs
    /// (on a short round trip, large bodies only cost the server more), nor more than the link
    /// moves in about a second, so that a slow link does not get a batch it cannot carry within
    /// a request deadline.
    ///
    /// One at a time ([`PipeMode::OneAtATime`]), before any round trip is seen and on a long
    /// link (no round trip answered in less than [`LONG_ANSWER_ROUND_TRIP`]), the batch that waits
    /// is the next to leave, alone, once the answer in flight is in: it may carry everything that
    /// arrives meanwhile, up to `max_batch_bytes` before any rate is measured and [`BATCH_SPAN`] of
    /// the measured rate after (at least the target). The budget does not bound it: with nothing
    /// else in flight, a batch of about two round trips' worth leaves the link idle a third of the
    /// time. The producer cuts a batch that grew past a ceiling that has since fallen as it leaves
    /// ([`crate::producer::Producer::set_wait_ceiling`]), so a link slower than it looked gets
    /// about a second of its rate per request ([`WritePipe::leave_ceiling_bytes`]).
    pub fn wait_ceiling_bytes(&self) -> usize {
        let target = self.batch_target_bytes();
        if self.takes_round_trips_whole() {
            let max = self.limits.max_batch_bytes.max(target);
            // Before any rate, all that the budget may hold: it leaves in batches of at most
            // `max_batch_bytes` (`leave_ceiling_bytes`).
            let all = usize::try_from(self.limits.max_budget_bytes).unwrap_or(usize::MAX);
            if self.probing() {
                return all.max(max);
            }
            return self.rate_span().map_or(max, |span| span.clamp(target, max));
        }
        let max = self.budget_max_batch_bytes().max(target);
        match self.rate_span() {
            // No rate yet. A long round trip is already known (a connect took it): what
            // arrives meanwhile leaves in a few larger requests, a bounded multiple of the
            // target (a slow link's first answer then brings the ceiling down).
            None if self.min_rtt().is_some_and(|r| r >= LONG_ROUND_TRIP) => self.first_wait_top(),
            None => target,
            Some(span) => {
                let budget = usize::try_from(self.budget).unwrap_or(usize::MAX);
                budget.min(span).clamp(target, max)
            }
        }
    }

    /// How far batches that wait may grow one after another before any rate is measured
    /// ([`crate::producer::Producer::set_wait_ramp`]): each doubles the wait ceiling for the
    /// next, up to [`FIRST_WAIT_MULTIPLE`] targets (at most `max_batch_bytes`). A burst
    /// appended before the first answer then leaves in requests of 1, 2, 4, 8 targets instead
    /// of one target per round trip, while on a short round trip the first answer (and its
    /// rate) comes before the ramp has climbed far. `None` once a rate is measured: the wait
    /// ceiling follows it from then on.
    /// One at a time, before any round trip is seen and on a long link, no ramp: the batch that
    /// waits may take all it can from the start (see [`WritePipe::wait_ceiling_bytes`]).
    pub fn wait_ramp_bytes(&self) -> Option<usize> {
        if self.rate_span().is_some() || self.takes_round_trips_whole() {
            return None;
        }
        Some(self.first_wait_top())
    }

    /// The largest batch of the budget's rule: [`BUDGET_MAX_BATCH_BYTES`], at most
    /// `max_batch_bytes`, at least `min_batch_bytes`.
    fn budget_max_batch_bytes(&self) -> usize {
        self.limits
            .max_batch_bytes
            .min(BUDGET_MAX_BATCH_BYTES)
            .max(self.limits.min_batch_bytes)
    }

    /// The most a batch may carry as it leaves ([`crate::producer::Producer::set_leave_ceiling`]):
    /// one at a time only, where a waiting batch may take a whole round trip's appends (up to
    /// `max_batch_bytes` before anything is measured). Before any round trip is seen and on a
    /// long link, the wait ceiling (so a link slower than it looked gets about a second of
    /// its rate per request); on a short round trip, the budget's largest batch
    /// ([`BUDGET_MAX_BATCH_BYTES`], at most a second of the measured rate): a burst that
    /// filled the waiting batch before the first answer leaves in batches of the size the
    /// budget's rule makes there, not in one large body nor in many small ones. `None`
    /// pipelined: batches leave as they were sealed.
    pub fn leave_ceiling_bytes(&self) -> Option<usize> {
        if self.mode() != PipeMode::OneAtATime {
            return None;
        }
        if self.probing() {
            return Some(self.batch_target_bytes());
        }
        if self.takes_round_trips_whole() {
            return Some(self.wait_ceiling_bytes().min(self.limits.max_batch_bytes));
        }
        let top = self.budget_max_batch_bytes();
        let top = self.rate_span().map_or(top, |span| span.min(top));
        Some(top.max(self.batch_target_bytes()))
    }

    /// Whether the first [`PROBE_ANSWERS`] answers all took at least
    /// [`LONG_ANSWER_ROUND_TRIP`] after their batch's last byte was written (connects do not
    /// count: a proxy or a load balancer accepts at once, whatever lies behind it). Judged
    /// once, on batches of the target's size: later answers carry larger batches, whose own
    /// transfer and the server's work on them would make a short link look long (and larger
    /// batches then make it look longer still).
    fn long_link(&self) -> bool {
        self.answers >= PROBE_ANSWERS && self.probe_rtt.is_some_and(|r| r >= LONG_ANSWER_ROUND_TRIP)
    }

    /// Whether the batch that waits may carry a whole round trip's appends: one at a time,
    /// while [`probing`](Self::probing) and on a long link. Before the link is judged nothing
    /// is known, and a burst appended then (the whole 50 MB of a benchmark, in a few
    /// milliseconds) would otherwise be sealed in ramp steps of 1, 2, 4, 8 MiB before the
    /// answers say the link is long. On a short round trip the rule of the pipelined
    /// mode applies (large bodies gain nothing there and cost the server: on loopback, 1 MiB
    /// appends one at a time went from about 600 to 430 MB/s on the reference server with
    /// 32 MiB batches).
    fn takes_round_trips_whole(&self) -> bool {
        self.probing() || (self.mode() == PipeMode::OneAtATime && self.long_link())
    }

    /// Whether a writer one at a time has not yet had the [`PROBE_ANSWERS`] it judges its link
    /// on: what arrives waits unsealed, and batches leave cut at the target.
    fn probing(&self) -> bool {
        self.mode() == PipeMode::OneAtATime && self.answers < PROBE_ANSWERS
    }

    /// The most a batch that waits may hold before any rate is measured:
    /// [`FIRST_WAIT_MULTIPLE`] targets, at most `max_batch_bytes`.
    fn first_wait_top(&self) -> usize {
        let target = self.batch_target_bytes();
        let max = self.budget_max_batch_bytes().max(target);
        target.saturating_mul(FIRST_WAIT_MULTIPLE).min(max)
    }

    /// Whether a batch of `batch_bytes` may be sent now: fewer batches than the mode's depth
    /// are in flight, and it fits in the budget (a batch always may when none is in flight).
    pub fn may_send(&self, batch_bytes: usize) -> bool {
        if self.in_flight_batches == 0 {
            return true;
        }
        self.in_flight_batches < self.mode().depth()
            && self.in_flight_bytes.saturating_add(batch_bytes as u64) <= self.budget
    }

    /// Bytes of batches sent and not yet answered.
    pub fn in_flight_bytes(&self) -> u64 {
        self.in_flight_bytes
    }

    /// Batches sent and not yet answered.
    pub fn in_flight_batches(&self) -> usize {
        self.in_flight_batches
    }

    /// The smoothed round trip, once sampled.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The smallest round trip of the last [`MIN_RTT_WINDOW`], once sampled.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.rtt_samples.iter().map(|(_, d)| *d).min()
    }

    /// The delivery-rate estimate in bytes per second, once measured.
    pub fn max_rate(&self) -> Option<u64> {
        self.rates.iter().copied().max()
    }

    // --- inputs --------------------------------------------------------------------------------

    /// A batch of `bytes` was sent.
    pub fn on_sent(&mut self, bytes: usize, now: Instant) {
        self.in_flight_bytes = self.in_flight_bytes.saturating_add(bytes as u64);
        self.in_flight_batches += 1;
        let in_flight = self.in_flight_bytes;
        let idle = self
            .idle_since
            .take()
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        let (start, _, peak) = self.interval.get_or_insert((now, 0, 0));
        // Time with nothing in flight says nothing about the link.
        *start = start.checked_add(idle).unwrap_or(*start).min(now);
        *peak = (*peak).max(in_flight);
    }

    /// A batch of `bytes` was acknowledged (the server stored it); `rtt`: the time from its
    /// last byte written to its response head, if the driver measured it.
    pub fn on_acked(&mut self, bytes: usize, rtt: Option<Duration>, now: Instant) {
        self.leave_flight(bytes);
        if self.in_flight_batches == 0 {
            self.idle_since = Some(now);
        }
        if let Some(rtt) = rtt {
            self.on_rtt_sample(rtt, now);
            if self.answers < PROBE_ANSWERS {
                self.probe_rtt = Some(self.probe_rtt.map_or(rtt, |p| p.min(rtt)));
            }
            self.answers = self.answers.saturating_add(1);
        }
        let Some((start, acked, peak)) = &mut self.interval else {
            return;
        };
        *acked = acked.saturating_add(bytes as u64);
        let length = now.saturating_duration_since(*start);
        let least = self.srtt.unwrap_or(MIN_INTERVAL).max(MIN_INTERVAL);
        if length < least {
            return;
        }
        let rate = rate_of(*acked, length);
        let app_limited = peak.saturating_mul(2) < self.budget;
        if !app_limited || self.max_rate().is_none_or(|m| rate > m) {
            self.rates.push_back(rate);
            if self.rates.len() > RATE_SAMPLES {
                self.rates.pop_front();
            }
        }
        let in_flight = self.in_flight_bytes;
        self.interval = Some((now, 0, in_flight));
        self.update_budget();
    }

    /// A batch of `bytes` left the flight without being acknowledged (failed, to be retried or
    /// given up).
    pub fn on_failed(&mut self, bytes: usize, now: Instant) {
        self.leave_flight(bytes);
        if self.in_flight_batches == 0 {
            self.idle_since = Some(now);
        }
    }

    /// A round-trip sample (e.g. from a small request, or a batch's last byte written to its
    /// response head).
    pub fn on_rtt_sample(&mut self, rtt: Duration, now: Instant) {
        self.srtt = Some(match self.srtt {
            None => rtt,
            Some(s) => (s * 7 + rtt) / 8,
        });
        push_windowed_min(&mut self.rtt_samples, rtt, now);
    }

    /// The server (or a proxy) refused pipelining (the codec's
    /// `Connection::pipelining_refused`): one at a time from now on.
    pub fn on_pipelining_refused(&mut self) {
        self.fall_back();
    }

    /// A pipelined batch was answered out of order (409 with a sequence gap): something
    /// reorders requests; one at a time from now on.
    pub fn on_out_of_order(&mut self) {
        self.fall_back();
    }

    fn fall_back(&mut self) {
        self.pipelining_allowed = false;
        self.update_budget();
    }

    fn leave_flight(&mut self, bytes: usize) {
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(bytes as u64);
        self.in_flight_batches = self.in_flight_batches.saturating_sub(1);
    }

    fn floor(&self) -> u64 {
        (self.limits.min_batch_bytes as u64).saturating_mul(self.mode().depth() as u64)
    }

    fn update_budget(&mut self) {
        let target = match (self.max_rate(), self.min_rtt()) {
            (Some(rate), Some(rtt)) => budget_for(rate, rtt, self.mode().depth(), &self.limits),
            _ => self.floor(),
        };
        self.budget = target
            .min(self.budget.saturating_mul(2))
            .max(self.floor())
            .min(self.limits.max_budget_bytes);
    }
}

/// Bytes per second of `bytes` over `length` (> 0).
fn rate_of(bytes: u64, length: Duration) -> u64 {
    let nanos = length.as_nanos().max(1);
    u64::try_from(u128::from(bytes) * 1_000_000_000 / nanos).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    /// The origin of the tests' virtual clock (a real `Instant`, only as a starting point).
    #[allow(clippy::disallowed_methods)]
    fn origin() -> Instant {
        Instant::now()
    }

    fn limits(depth: usize) -> PipeLimits {
        PipeLimits {
            max_in_flight: depth,
            min_batch_bytes: MIB,
            max_batch_bytes: 16 * MIB,
            max_budget_bytes: 64 * MIB as u64,
        }
    }

    #[test]
    fn bdp_and_budget_formulas_with_the_issue_numbers() {
        // 220 MB/s (bare, 8 in flight at 20 ms) x 20 ms = 4.4 MB; the budget is twice that.
        let rtt = Duration::from_millis(20);
        assert_eq!(bdp_bytes(220_000_000, rtt), 4_400_000);
        assert_eq!(budget_for(220_000_000, rtt, 4, &limits(4)), 8_800_000);
        // 40 MB/s (one 1 MiB batch per round trip): the floor, 1 MiB per batch in flight.
        assert_eq!(budget_for(40_000_000, rtt, 4, &limits(4)), 4 * MIB as u64);
        // A huge rate is capped by max_budget_bytes.
        assert_eq!(
            budget_for(10_000_000_000, rtt, 4, &limits(4)),
            64 * MIB as u64
        );
        // No overflow on absurd inputs.
        assert_eq!(bdp_bytes(u64::MAX, Duration::MAX), u64::MAX);
    }

    #[test]
    fn batch_target_shares_the_budget_within_the_limits() {
        let l = limits(4);
        assert_eq!(batch_target(8_800_000, 4, &l), 2_200_000);
        assert_eq!(batch_target(8_800_000, 1, &l), 8_800_000);
        assert_eq!(batch_target(100, 4, &l), MIB);
        assert_eq!(batch_target(u64::MAX, 1, &l), 16 * MIB);
        assert_eq!(batch_target(u64::MAX, 0, &l), 16 * MIB);
    }

    #[test]
    fn a_waiting_batch_may_hold_about_a_second_of_the_measured_rate() {
        let t0 = origin();
        let mut pipe = WritePipe::new(limits(4)).unwrap();
        assert_eq!(
            pipe.wait_ceiling_bytes(),
            MIB,
            "nothing measured yet: the target"
        );
        // A slow link: 1 MiB answered after 4 s (about 260 KB/s).
        pipe.on_sent(MIB, t0);
        pipe.on_acked(
            MIB,
            Some(Duration::from_secs(4)),
            t0 + Duration::from_secs(4),
        );
        let rate = pipe.max_rate().unwrap();
        assert!(rate < 300_000, "{rate}");
        assert_eq!(
            pipe.batch_target_bytes(),
            MIB,
            "a second of this link is less than min_batch_bytes: batches stay at the floor"
        );
        assert_eq!(pipe.wait_ceiling_bytes(), MIB);

        // A connect that took 20 ms: a long link, whose rate is still unknown.
        let mut far = WritePipe::new(limits(4)).unwrap();
        far.on_rtt_sample(Duration::from_millis(20), t0);
        assert_eq!(far.wait_ceiling_bytes(), 8 * MIB);
        let mut near = WritePipe::new(limits(4)).unwrap();
        near.on_rtt_sample(Duration::from_micros(300), t0);
        assert_eq!(near.wait_ceiling_bytes(), MIB, "loopback: the target");

        // A fast link: 1 MiB per 25 ms (about 42 MB/s): a second of it is more than the pipe
        // needs, so the budget bounds a waiting batch.
        let mut fast = WritePipe::new(limits(4)).unwrap();
        fast.on_sent(MIB, t0);
        let t1 = t0 + Duration::from_millis(25);
        fast.on_acked(MIB, Some(Duration::from_millis(25)), t1);
        assert!(fast.max_rate().unwrap() > 40_000_000);
        assert_eq!(fast.wait_ceiling_bytes() as u64, fast.budget_bytes());
        assert!(fast.budget_bytes() > MIB as u64);
    }

    /// One at a time, until two answers judge the link, what arrives waits unsealed (up to the
    /// budget's most) and leaves cut at the target; on a long link the batch that waits then
    /// takes a second of the measured rate (at most `max_batch_bytes`), not the budget, with no
    /// ramp; on a short one the budget's rule applies, batches leaving at up to 8 MiB.
    #[test]
    fn one_at_a_time_a_waiting_batch_takes_a_round_trip_of_appends() {
        let t0 = origin();
        let far = Duration::from_millis(20);
        let answer = |pipe: &mut WritePipe, bytes: usize, rtt: Duration, at: Instant| {
            pipe.on_sent(bytes, at);
            pipe.on_acked(bytes, Some(rtt), at + rtt);
            at + rtt
        };
        let mut near = WritePipe::new(limits(1)).unwrap();
        assert_eq!(near.wait_ceiling_bytes(), 64 * MIB, "the budget's most");
        assert_eq!(near.wait_ramp_bytes(), None);
        assert_eq!(near.leave_ceiling_bytes(), Some(MIB), "the target");
        // A connect does not count (a proxy or a load balancer accepts at once).
        near.on_rtt_sample(Duration::from_micros(300), t0);
        assert_eq!(near.wait_ceiling_bytes(), 64 * MIB);
        // A slow first answer (a new stream on loopback) does not judge the link alone.
        let t1 = answer(&mut near, MIB, Duration::from_millis(26), t0);
        assert_eq!(near.wait_ceiling_bytes(), 64 * MIB);
        assert_eq!(near.leave_ceiling_bytes(), Some(MIB));
        // A second, quick one: short. The budget's rule; batches leave at up to 8 MiB.
        let t2 = answer(&mut near, MIB, Duration::from_millis(2), t1);
        assert_eq!(near.wait_ceiling_bytes(), near.batch_target_bytes());
        assert!(near.wait_ceiling_bytes() <= BUDGET_MAX_BATCH_BYTES);
        assert_eq!(near.wait_ramp_bytes(), None, "a rate is measured");
        assert_eq!(near.leave_ceiling_bytes(), Some(8 * MIB));
        // A short link stays short: later answers carry larger batches, slower for their own
        // size, also once the probe's answers are past the round-trip window.
        let mut at = t2;
        for _ in 0..3 {
            at = answer(&mut near, 8 * MIB, far, at + MIN_RTT_WINDOW);
        }
        assert_eq!(near.leave_ceiling_bytes(), Some(8 * MIB));
        assert!(near.wait_ceiling_bytes() <= BUDGET_MAX_BATCH_BYTES);

        // A long link (20 ms): a fast one (1 MiB per 25 ms, about 42 MB/s), where a second of
        // the rate is above max_batch_bytes.
        let mut pipe = WritePipe::new(limits(1)).unwrap();
        assert_eq!(pipe.mode(), PipeMode::OneAtATime);
        let t1 = answer(&mut pipe, MIB, Duration::from_millis(25), t0);
        answer(&mut pipe, MIB, Duration::from_millis(25), t1);
        assert!(pipe.budget_bytes() < 16 * MIB as u64);
        assert_eq!(pipe.wait_ceiling_bytes(), 16 * MIB, "max_batch_bytes");
        assert_eq!(pipe.wait_ramp_bytes(), None);
        assert_eq!(pipe.leave_ceiling_bytes(), Some(16 * MIB));
        // Judged once: a quick answer later does not make it short.
        answer(
            &mut pipe,
            MIB,
            Duration::from_millis(2),
            t1 + Duration::from_millis(25),
        );
        assert_eq!(pipe.leave_ceiling_bytes(), Some(16 * MIB));
        // A slow link (1 MiB answered after 4 s): a second of it, at least the target.
        let mut slow = WritePipe::new(limits(1)).unwrap();
        let t1 = answer(&mut slow, MIB, Duration::from_secs(4), t0);
        answer(&mut slow, MIB, Duration::from_secs(4), t1);
        assert_eq!(slow.wait_ceiling_bytes(), MIB);
        assert_eq!(slow.leave_ceiling_bytes(), Some(MIB));
        // 3 MiB per second: three of them.
        let mut mid = WritePipe::new(limits(1)).unwrap();
        let t1 = answer(&mut mid, 3 * MIB, Duration::from_secs(1), t0);
        answer(&mut mid, 3 * MIB, Duration::from_secs(1), t1);
        let span = usize::try_from(mid.max_rate().unwrap()).unwrap();
        assert!((3 * MIB - 4096..=3 * MIB).contains(&span), "{span}");
        assert_eq!(mid.wait_ceiling_bytes(), span.max(mid.batch_target_bytes()));
        // Pipelining refused: one at a time from then on, with its rule.
        let mut fell = WritePipe::new(limits(4)).unwrap();
        fell.on_rtt_sample(far, t0);
        assert_eq!(fell.wait_ramp_bytes(), Some(8 * MIB));
        assert_eq!(fell.leave_ceiling_bytes(), None, "pipelined");
        fell.on_pipelining_refused();
        assert_eq!(fell.wait_ramp_bytes(), None);
        assert_eq!(fell.wait_ceiling_bytes(), 64 * MIB);
        assert_eq!(fell.leave_ceiling_bytes(), Some(MIB));
    }

    #[test]
    fn waiting_batches_ramp_up_until_a_rate_is_measured() {
        let t0 = origin();
        let mut pipe = WritePipe::new(limits(4)).unwrap();
        assert_eq!(pipe.wait_ramp_bytes(), Some(8 * MIB), "8 targets");
        // A max_batch_bytes below 8 targets is the top.
        let small = WritePipe::new(PipeLimits {
            max_batch_bytes: 3 * MIB,
            ..limits(4)
        })
        .unwrap();
        assert_eq!(small.wait_ramp_bytes(), Some(3 * MIB));
        // The first answer brings a rate: the ceiling follows it, no ramp.
        pipe.on_sent(MIB, t0);
        let t1 = t0 + Duration::from_millis(25);
        pipe.on_acked(MIB, Some(Duration::from_millis(25)), t1);
        assert!(pipe.max_rate().is_some());
        assert_eq!(pipe.wait_ramp_bytes(), None);
    }

    #[test]
    fn limits_are_validated() {
        assert_eq!(
            WritePipe::new(PipeLimits {
                max_in_flight: 0,
                ..limits(1)
            })
            .unwrap_err(),
            PipeLimitsError::NoInFlight
        );
        assert!(matches!(
            PipeLimits {
                min_batch_bytes: 0,
                ..limits(1)
            }
            .validate(),
            Err(PipeLimitsError::BatchBounds { .. })
        ));
        assert!(matches!(
            PipeLimits {
                min_batch_bytes: 32 * MIB,
                ..limits(1)
            }
            .validate(),
            Err(PipeLimitsError::BatchBounds { .. })
        ));
        assert!(matches!(
            PipeLimits {
                max_budget_bytes: 3 * MIB as u64,
                ..limits(4)
            }
            .validate(),
            Err(PipeLimitsError::BudgetTooSmall { .. })
        ));
        assert_eq!(PipeLimits::default().validate(), Ok(()));
    }

    /// A simulated link: `rate` bytes per second, `rtt` propagation; the writer always has
    /// data (never app-limited) and sends batches of the target while `may_send`. Returns the
    /// plan after `rounds` round trips and the bytes acknowledged.
    fn run_link(mut pipe: WritePipe, rate: u64, rtt: Duration, rounds: u32) -> (WritePipe, u64) {
        let t0 = origin();
        let mut now = t0;
        // (time acknowledged, bytes)
        let mut flight: VecDeque<(Instant, usize)> = VecDeque::new();
        let mut link_free = t0;
        let mut acked = 0u64;
        let end = t0 + rtt * rounds;
        while now < end {
            loop {
                let size = pipe.batch_target_bytes();
                if !pipe.may_send(size) {
                    break;
                }
                // The batch is serialized on the link after the previous one, then answered
                // half a round trip after its last byte arrives.
                let start = link_free.max(now);
                let done = start + Duration::from_nanos(size as u64 * 1_000_000_000 / rate);
                link_free = done;
                flight.push_back((done + rtt, size));
                pipe.on_sent(size, now);
            }
            let (at, size) = flight.pop_front().expect("something in flight");
            now = now.max(at);
            pipe.on_acked(size, Some(rtt), now);
            acked += size as u64;
        }
        (pipe, acked)
    }

    #[test]
    fn the_budget_grows_to_about_twice_the_bdp_and_stays() {
        let rtt = Duration::from_millis(20);
        let rate = 220_000_000;
        let (pipe, _) = run_link(WritePipe::new(limits(4)).unwrap(), rate, rtt, 200);
        let bdp = bdp_bytes(rate, rtt);
        let budget = pipe.budget_bytes();
        assert!(
            budget >= 2 * bdp * 9 / 10 && budget <= 2 * bdp * 12 / 10,
            "budget {budget}, bdp {bdp}"
        );
        assert_eq!(pipe.min_rtt(), Some(rtt));
        // Batches grow beyond the 1 MiB floor while others are in flight.
        assert!(
            pipe.batch_target_bytes() > MIB,
            "{}",
            pipe.batch_target_bytes()
        );
        assert_eq!(pipe.mode(), PipeMode::Pipelined { depth: 4 });
    }

    #[test]
    fn filling_the_pipe_beats_fixed_one_mib_batches() {
        let rtt = Duration::from_millis(20);
        let rate = 220_000_000;
        let rounds = 100;
        let ideal = bdp_bytes(rate, rtt) * u64::from(rounds);
        // Pipelined, depth 4: close to the link's rate, slow start included.
        let (_, adaptive) = run_link(WritePipe::new(limits(4)).unwrap(), rate, rtt, rounds);
        assert!(
            adaptive >= ideal * 9 / 10,
            "adaptive {adaptive}, ideal {ideal}"
        );
        // One at a time, fixed 1 MiB batches: one batch per round trip (the issue's 40 MB/s)...
        let fixed = PipeLimits {
            max_batch_bytes: MIB,
            max_budget_bytes: MIB as u64,
            ..limits(1)
        };
        let (_, fixed) = run_link(WritePipe::new(fixed).unwrap(), rate, rtt, rounds);
        assert!(fixed < ideal / 4, "fixed {fixed}, ideal {ideal}");
        // ... while batches that grow with the budget fill the pipe even one at a time.
        let (_, one) = run_link(WritePipe::new(limits(1)).unwrap(), rate, rtt, rounds);
        assert!(one > fixed * 2, "one at a time {one}, fixed {fixed}");
    }

    #[test]
    fn a_slow_link_keeps_the_floor() {
        // 20 MB/s at 20 ms: the BDP (400 kB) is below one 1 MiB batch per in-flight slot.
        let (pipe, _) = run_link(
            WritePipe::new(limits(2)).unwrap(),
            20_000_000,
            Duration::from_millis(20),
            100,
        );
        assert_eq!(pipe.budget_bytes(), 2 * MIB as u64);
        assert_eq!(pipe.batch_target_bytes(), MIB);
    }

    #[test]
    fn refusal_falls_back_to_one_at_a_time_with_bigger_batches() {
        let rtt = Duration::from_millis(20);
        let (mut pipe, _) = run_link(WritePipe::new(limits(4)).unwrap(), 220_000_000, rtt, 100);
        let shared = pipe.batch_target_bytes();
        pipe.on_pipelining_refused();
        assert_eq!(pipe.mode(), PipeMode::OneAtATime);
        // One batch must now cover the pipe alone.
        assert!(pipe.batch_target_bytes() > shared);
        assert!(pipe.batch_target_bytes() <= 16 * MIB);
        let mut other = WritePipe::new(limits(4)).unwrap();
        other.on_out_of_order();
        assert_eq!(other.mode(), PipeMode::OneAtATime);
        // Depth 1 never pipelines.
        assert_eq!(
            WritePipe::new(limits(1)).unwrap().mode(),
            PipeMode::OneAtATime
        );
    }

    #[test]
    fn may_send_respects_depth_and_budget() {
        let now = origin();
        let mut pipe = WritePipe::new(limits(2)).unwrap();
        assert_eq!(pipe.budget_bytes(), 2 * MIB as u64);
        // A batch larger than the budget still goes when nothing is in flight.
        assert!(pipe.may_send(8 * MIB));
        pipe.on_sent(MIB, now);
        assert!(pipe.may_send(MIB));
        assert!(!pipe.may_send(MIB + 1));
        pipe.on_sent(MIB / 2, now);
        assert!(!pipe.may_send(1), "depth 2 reached");
        pipe.on_failed(MIB / 2, now);
        assert_eq!(
            (pipe.in_flight_batches(), pipe.in_flight_bytes()),
            (1, MIB as u64)
        );
        pipe.on_acked(MIB, None, now);
        assert_eq!((pipe.in_flight_batches(), pipe.in_flight_bytes()), (0, 0));
    }

    #[test]
    fn rtt_estimates() {
        let t = origin();
        let mut pipe = WritePipe::new(limits(1)).unwrap();
        assert_eq!((pipe.srtt(), pipe.min_rtt()), (None, None));
        pipe.on_rtt_sample(Duration::from_millis(40), t);
        pipe.on_rtt_sample(Duration::from_millis(20), t + Duration::from_secs(1));
        pipe.on_rtt_sample(Duration::from_millis(30), t + Duration::from_secs(2));
        assert_eq!(pipe.min_rtt(), Some(Duration::from_millis(20)));
        // 40, then 7/8 * 40 + 20/8 = 37.5, then 7/8 * 37.5 + 30/8 = 36.5625.
        assert_eq!(pipe.srtt(), Some(Duration::from_nanos(36_562_500)));
        // The 20 ms sample expires after the window.
        pipe.on_rtt_sample(Duration::from_millis(35), t + Duration::from_secs(12));
        assert_eq!(pipe.min_rtt(), Some(Duration::from_millis(30)));
    }

    #[test]
    fn app_limited_samples_do_not_shrink_the_estimate() {
        let rtt = Duration::from_millis(20);
        let (mut pipe, _) = run_link(WritePipe::new(limits(4)).unwrap(), 220_000_000, rtt, 100);
        let budget = pipe.budget_bytes();
        let mut now = origin() + Duration::from_secs(60);
        while pipe.in_flight_batches() > 0 {
            let each = pipe.in_flight_bytes() / pipe.in_flight_batches() as u64;
            pipe.on_acked(each as usize, Some(rtt), now);
        }
        // Now the application sends a trickle: 1 kB per round trip, for 50 round trips.
        for _ in 0..50 {
            pipe.on_sent(1000, now);
            now += rtt;
            pipe.on_acked(1000, Some(rtt), now);
        }
        assert!(
            pipe.budget_bytes() >= budget * 9 / 10,
            "{} < {budget}",
            pipe.budget_bytes()
        );
        // Without the app-limited rule, 50 kB/s samples would bring it down to the floor.
        assert!(pipe.budget_bytes() > 4 * MIB as u64);
    }
    /// A long link one at a time: the batch that waits may take exactly one second of the
    /// measured rate (100,000 bytes answered 25 ms after they left: 4,000,000 bytes/s).
    #[test]
    fn a_second_of_the_rate_is_exactly_the_rate() {
        let t0 = origin();
        let mut pipe = WritePipe::new(limits(1)).unwrap();
        let rtt = Duration::from_millis(25);
        let mut at = t0;
        for _ in 0..PROBE_ANSWERS {
            pipe.on_sent(100_000, at);
            at += rtt;
            pipe.on_acked(100_000, Some(rtt), at);
        }
        assert_eq!(pipe.max_rate(), Some(4_000_000));
        assert_eq!(pipe.wait_ceiling_bytes(), 4_000_000);
    }

    /// How delivery-rate samples are taken: over an interval of at least the smoothed round
    /// trip (one exactly that long counts), without the time nothing was in flight (after an
    /// answer or a failure), app-limited ones (bytes in flight under half the budget) only as
    /// a new maximum, and the last [`RATE_SAMPLES`] of them kept.
    #[test]
    fn rate_samples_count_busy_time_and_keep_a_window() {
        let ms = Duration::from_millis;
        let mut now = origin();
        let mut pipe = WritePipe::new(limits(1)).unwrap();
        // A 1 ms round trip: the budget stays at its floor (1 MiB) for every rate below.
        pipe.on_rtt_sample(ms(1), now);
        let sample = |pipe: &mut WritePipe, now: &mut Instant, bytes: usize, length: Duration| {
            pipe.on_sent(bytes, *now);
            *now += length;
            pipe.on_acked(bytes, None, *now);
            // Idle between batches: not part of the next interval.
            *now += ms(5);
        };
        let high = 200_000_000;
        let low = 52_428_800; // 512 KiB per 10 ms
                              // Exactly one round trip long, app-limited: the first sample counts.
        sample(&mut pipe, &mut now, 100_000, ms(1));
        assert_eq!(pipe.max_rate(), Some(100_000_000));
        // App-limited, but a new maximum: it counts.
        sample(&mut pipe, &mut now, 200_000, ms(1));
        assert_eq!(pipe.max_rate(), Some(high));
        assert_eq!(pipe.budget_bytes(), MIB as u64);
        // Half the budget in flight is not app-limited: lower samples count, and the window
        // keeps ten (the high one is the second of them after nine more).
        for _ in 0..9 {
            sample(&mut pipe, &mut now, MIB / 2, ms(10));
        }
        assert_eq!(pipe.max_rate(), Some(high), "ten samples kept");
        // An app-limited sample equal to the maximum is not taken: it would keep it longer.
        sample(&mut pipe, &mut now, 200_000, ms(1));
        sample(&mut pipe, &mut now, MIB / 2, ms(10));
        assert_eq!(pipe.max_rate(), Some(low));
        // A failed batch empties the flight too: the idle second after it does not count.
        pipe.on_sent(100_000, now);
        now += ms(1);
        pipe.on_failed(100_000, now);
        now += Duration::from_secs(1);
        sample(&mut pipe, &mut now, MIB, ms(2));
        assert_eq!(pipe.max_rate(), Some(rate_of(MIB as u64, ms(3))));
    }
}
