//! Retry policy and the backoff schedule (capped exponential backoff with full jitter).
//!
//! The schedule is pure: the caller passes `now` and the machine's [`Rng`]. `Retry-After` from
//! the server is a floor under the jittered delay. Which operations retry is explicit in
//! [`RetryPolicy::retries`]: reads, head, delete, close and creates retry on 429/5xx/transport
//! failures; plain appends only when the caller opts in, since a blind retry could duplicate data
//! (idempotent producer appends are always safe to retry, PROTOCOL.md 5.2.1).

use crate::error::Operation;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The longest delay, deadline or timer any configuration may set: ten years. Longer values
/// are refused (they would overflow `Instant` arithmetic, and mean "never" in practice).
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How failed requests are retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// The first delay's upper bound.
    pub initial_delay: Duration,
    /// The largest delay's upper bound.
    pub max_delay: Duration,
    /// Growth of the bound per attempt (at least 1.0).
    pub multiplier: f64,
    /// Attempts in all, the first included; `None` for no limit.
    pub max_attempts: Option<u32>,
    /// Give up once this long has passed since the first attempt; `None` for no limit.
    pub max_elapsed: Option<Duration>,
    /// Whether plain (non-idempotent) appends are retried too. They could be stored twice if a
    /// response was lost, so this is off by default.
    pub retry_appends: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            multiplier: 2.0,
            max_attempts: Some(10),
            max_elapsed: Some(Duration::from_secs(120)),
            retry_appends: false,
        }
    }
}

/// Why a retry policy is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetryPolicyError {
    /// A delay is zero.
    #[error("{0} must be greater than zero")]
    ZeroDelay(&'static str),
    /// `initial_delay` exceeds `max_delay`.
    #[error("initial_delay exceeds max_delay")]
    InitialAboveMax,
    /// `multiplier` is below 1, infinite or NaN.
    #[error("multiplier must be a finite number >= 1")]
    BadMultiplier,
    /// `max_attempts` is zero.
    #[error("max_attempts must be at least 1")]
    ZeroAttempts,
    /// A delay exceeds [`MAX_DURATION`].
    #[error("{0} exceeds ten years")]
    TooLong(&'static str),
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: Some(1),
            ..RetryPolicy::default()
        }
    }

    /// A policy that retries without limit (the Reader's default).
    pub fn unlimited() -> Self {
        RetryPolicy {
            max_attempts: None,
            max_elapsed: None,
            ..RetryPolicy::default()
        }
    }

    /// Checks the policy.
    pub fn validate(&self) -> Result<(), RetryPolicyError> {
        if self.initial_delay.is_zero() {
            return Err(RetryPolicyError::ZeroDelay("initial_delay"));
        }
        if self.max_delay.is_zero() {
            return Err(RetryPolicyError::ZeroDelay("max_delay"));
        }
        if self.max_elapsed.is_some_and(|d| d.is_zero()) {
            return Err(RetryPolicyError::ZeroDelay("max_elapsed"));
        }
        if self.max_delay > MAX_DURATION {
            return Err(RetryPolicyError::TooLong("max_delay"));
        }
        if self.max_elapsed.is_some_and(|d| d > MAX_DURATION) {
            return Err(RetryPolicyError::TooLong("max_elapsed"));
        }
        if self.initial_delay > self.max_delay {
            return Err(RetryPolicyError::InitialAboveMax);
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(RetryPolicyError::BadMultiplier);
        }
        if self.max_attempts == Some(0) {
            return Err(RetryPolicyError::ZeroAttempts);
        }
        Ok(())
    }

    /// Whether this operation is retried at all under this policy. `idempotent` says the request
    /// carries idempotent-producer headers (always safe to repeat).
    pub fn retries(&self, operation: Operation, idempotent: bool) -> bool {
        match operation {
            Operation::Append => idempotent || self.retry_appends,
            _ => true,
        }
    }

    /// The upper bound of the delay before retry number `retry` (1 for the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exp = self
            .multiplier
            .powi(i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX));
        let secs = self.initial_delay.as_secs_f64() * exp;
        if !secs.is_finite() || secs >= self.max_delay.as_secs_f64() {
            self.max_delay
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// Starts a schedule for one logical request whose first attempt is sent at `now`.
    pub fn start(&self, now: Instant) -> Backoff {
        Backoff {
            policy: self.clone(),
            started: now,
            attempts: 1,
        }
    }
}

/// The retry schedule of one logical request.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    policy: RetryPolicy,
    started: Instant,
    attempts: u32,
}

impl Backoff {
    /// Attempts made so far (the first included).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// When the first attempt was sent.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// After a failed attempt at `now`: the delay before the next attempt, or `None` when the
    /// policy is exhausted. The delay is uniform in `[0, ceiling]` (full jitter) and never below
    /// `retry_after`. Counts the next attempt as made.
    pub fn next_delay(
        &mut self,
        now: Instant,
        rng: &mut Rng,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if self
            .policy
            .max_attempts
            .is_some_and(|max| self.attempts >= max)
        {
            return None;
        }
        let ceiling = self.policy.ceiling(self.attempts);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let jittered = Duration::from_nanos(rng.below(nanos.saturating_add(1)));
        let delay = jittered.max(retry_after.unwrap_or(Duration::ZERO));
        if let Some(max) = self.policy.max_elapsed {
            if now.saturating_duration_since(self.started) + delay > max {
                return None;
            }
        }
        self.attempts += 1;
        Some(delay)
    }
}

/// The retry decisions of one logical one-shot request (create, append, close, head, delete,
/// read): drivers send an attempt, and on failure ask [`Retrier::on_failure`] whether and when
/// to send the next one. All the rules live here; a driver only waits.
#[derive(Debug, Clone)]
pub struct Retrier {
    retries: bool,
    backoff: Backoff,
}

impl Retrier {
    /// Starts the schedule of a request whose first attempt is sent at `now`. `idempotent`: the
    /// request carries producer headers, so repeating it is safe even for appends.
    pub fn new(policy: &RetryPolicy, operation: Operation, idempotent: bool, now: Instant) -> Self {
        Retrier {
            retries: policy.retries(operation, idempotent),
            backoff: policy.start(now),
        }
    }

    /// Starts the schedule of a request whose first attempt is sent at `now`, retried at all
    /// only when `retries` (for operations whose safety the caller decides, such as the
    /// subscription routes).
    pub fn with_rule(policy: &RetryPolicy, retries: bool, now: Instant) -> Self {
        Retrier {
            retries,
            backoff: policy.start(now),
        }
    }

    /// After attempt failed with `error` at `now`: `Ok(delay)` to retry after `delay`, or
    /// `Err(error)` to give up (the error is not transient, the operation is not retried, or
    /// the policy is exhausted).
    pub fn on_failure<E: RetryableError>(
        &mut self,
        error: E,
        now: Instant,
        rng: &mut Rng,
    ) -> Result<Duration, E> {
        if !self.retries || !error.is_transient() {
            return Err(error);
        }
        match self
            .backoff
            .next_delay(now, rng, error.server_retry_after())
        {
            Some(delay) => Ok(delay),
            None => Err(error),
        }
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.backoff.attempts()
    }
}

/// What the retry schedule needs to know of an error.
pub trait RetryableError {
    /// Whether a later attempt may succeed (429, 5xx, transport).
    fn is_transient(&self) -> bool;
    /// The server's `Retry-After`, a floor for the delay.
    fn server_retry_after(&self) -> Option<Duration>;
}

impl RetryableError for crate::error::Error {
    fn is_transient(&self) -> bool {
        self.kind.is_retryable()
    }
    fn server_retry_after(&self) -> Option<Duration> {
        self.kind.retry_after()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    #[test]
    fn retrier_decides() {
        use crate::error::{Error, ErrorKind};
        let now = Instant::now();
        let mut rng = Rng::new(3);
        let p = RetryPolicy::default();
        let busy = Error::new(
            Operation::Read,
            "u",
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(2)),
            },
        );
        let mut r = Retrier::new(&p, Operation::Read, false, now);
        assert!(r.on_failure(busy.clone(), now, &mut rng).unwrap() >= Duration::from_secs(2));
        let nf = Error::new(Operation::Read, "u", ErrorKind::NotFound);
        assert_eq!(r.on_failure(nf.clone(), now, &mut rng), Err(nf));
        let mut a = Retrier::new(&p, Operation::Append, false, now);
        assert!(a.on_failure(busy.clone(), now, &mut rng).is_err());
        let mut a = Retrier::new(&p, Operation::Append, true, now);
        assert!(a.on_failure(busy, now, &mut rng).is_ok());
        assert_eq!(a.attempts(), 2);
    }

    #[test]
    fn validation() {
        assert!(RetryPolicy::default().validate().is_ok());
        let mut p = RetryPolicy::default();
        p.initial_delay = Duration::ZERO;
        assert_eq!(
            p.validate(),
            Err(RetryPolicyError::ZeroDelay("initial_delay"))
        );
        let mut p = RetryPolicy::default();
        p.multiplier = 0.5;
        assert_eq!(p.validate(), Err(RetryPolicyError::BadMultiplier));
        let mut p = RetryPolicy::default();
        p.max_attempts = Some(0);
        assert_eq!(p.validate(), Err(RetryPolicyError::ZeroAttempts));
        let mut p = RetryPolicy::default();
        p.max_delay = Duration::MAX;
        assert_eq!(p.validate(), Err(RetryPolicyError::TooLong("max_delay")));
        let mut p = RetryPolicy::default();
        p.initial_delay = Duration::from_secs(60);
        assert_eq!(p.validate(), Err(RetryPolicyError::InitialAboveMax));
    }

    #[test]
    fn validation_limits_are_inclusive() {
        // Ten years (of 365 days) is the longest delay a policy may set; a nanosecond more is
        // refused. A delay equal to the cap and a multiplier of exactly 1 are fine.
        let ten_years = Duration::from_secs(10 * 365 * 24 * 3600);
        assert_eq!(MAX_DURATION, ten_years);
        let at_cap = RetryPolicy {
            max_delay: ten_years,
            max_elapsed: Some(ten_years),
            ..RetryPolicy::default()
        };
        assert_eq!(at_cap.validate(), Ok(()));
        let past = ten_years + Duration::from_nanos(1);
        let p = RetryPolicy {
            max_delay: past,
            ..at_cap.clone()
        };
        assert_eq!(p.validate(), Err(RetryPolicyError::TooLong("max_delay")));
        let p = RetryPolicy {
            max_elapsed: Some(past),
            ..at_cap.clone()
        };
        assert_eq!(p.validate(), Err(RetryPolicyError::TooLong("max_elapsed")));
        let p = RetryPolicy {
            initial_delay: Duration::from_secs(10),
            multiplier: 1.0,
            ..RetryPolicy::default()
        };
        assert_eq!(p.validate(), Ok(()), "initial_delay may equal max_delay");
        let p = RetryPolicy {
            multiplier: 0.999,
            ..RetryPolicy::default()
        };
        assert_eq!(p.validate(), Err(RetryPolicyError::BadMultiplier));
        let p = RetryPolicy {
            max_elapsed: Some(Duration::ZERO),
            ..RetryPolicy::default()
        };
        assert_eq!(
            p.validate(),
            Err(RetryPolicyError::ZeroDelay("max_elapsed"))
        );
    }

    #[test]
    fn none_never_retries_and_unlimited_never_gives_up() {
        let now = Instant::now();
        let mut rng = Rng::new(5);
        let mut b = RetryPolicy::none().start(now);
        assert_eq!(b.next_delay(now, &mut rng, None), None);
        assert_eq!(b.attempts(), 1);
        let mut b = RetryPolicy::unlimited().start(now);
        let late = now + Duration::from_secs(365 * 24 * 3600);
        for _ in 0..1000 {
            assert!(b.next_delay(late, &mut rng, None).is_some());
        }
    }

    #[test]
    fn a_retry_due_exactly_at_max_elapsed_is_still_made() {
        // The delay is the server's Retry-After (above the ceiling), so it is exact.
        let p = RetryPolicy {
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            max_attempts: None,
            max_elapsed: Some(Duration::from_secs(1)),
            ..RetryPolicy::default()
        };
        let now = Instant::now();
        let mut rng = Rng::new(1);
        let half = Duration::from_millis(500);
        let mut b = p.start(now);
        assert_eq!(b.next_delay(now + half, &mut rng, Some(half)), Some(half));
        let mut b = p.start(now);
        let over = Duration::from_millis(501);
        assert_eq!(b.next_delay(now + half, &mut rng, Some(over)), None);
    }

    #[test]
    fn ceilings_grow_and_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(2), Duration::from_millis(200));
        assert_eq!(p.ceiling(4), Duration::from_millis(800));
        assert_eq!(p.ceiling(40), Duration::from_secs(10));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn jitter_within_ceiling_and_above_retry_after() {
        let p = RetryPolicy::unlimited();
        let now = Instant::now();
        let mut rng = Rng::new(1);
        let mut b = p.start(now);
        for n in 1..50 {
            let ceiling = p.ceiling(n);
            let d = b.next_delay(now, &mut rng, None).unwrap();
            assert!(d <= ceiling);
        }
        let d = b
            .next_delay(now, &mut rng, Some(Duration::from_secs(30)))
            .unwrap();
        assert!(d >= Duration::from_secs(30));
    }

    #[test]
    fn attempts_and_elapsed_limits() {
        let p = RetryPolicy {
            max_attempts: Some(3),
            ..RetryPolicy::default()
        };
        let now = Instant::now();
        let mut rng = Rng::new(1);
        let mut b = p.start(now);
        assert!(b.next_delay(now, &mut rng, None).is_some());
        assert!(b.next_delay(now, &mut rng, None).is_some());
        assert_eq!(b.next_delay(now, &mut rng, None), None);
        assert_eq!(b.attempts(), 3);

        let p = RetryPolicy {
            max_elapsed: Some(Duration::from_secs(1)),
            max_attempts: None,
            ..RetryPolicy::default()
        };
        let mut b = p.start(now);
        assert_eq!(
            b.next_delay(now + Duration::from_secs(2), &mut rng, None),
            None
        );
    }

    #[test]
    fn appends_are_not_retried_unless_safe_or_opted_in() {
        let p = RetryPolicy::default();
        assert!(!p.retries(Operation::Append, false));
        assert!(p.retries(Operation::Append, true));
        assert!(p.retries(Operation::Read, false));
        assert!(p.retries(Operation::Create, false));
        let p = RetryPolicy {
            retry_appends: true,
            ..RetryPolicy::default()
        };
        assert!(p.retries(Operation::Append, false));
    }
}
