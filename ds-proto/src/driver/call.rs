//! Running a one-shot operation ([`OneShot`]) with retries, sans IO: the decisions of a
//! driver's `StreamHandle` methods live here once, and a driver only sends each attempt's
//! request, hands back what came of it, and waits the delay it is told.
//!
//! ```text
//! let mut call = Call::new(op, &settings, &call_options, seed, now)?;  // options checked
//! loop {
//!     let request = call.request(&extras)?;        // fresh extras each attempt
//!     let outcome = send(request);                  // (parts, body) or a TransportError
//!     match call.outcome(outcome, now) {
//!         Step::Done(result) => return result,      // the handle learned what it teaches
//!         Step::Retry { delay, error } => sleep(delay),
//!     }
//! }
//! ```

use crate::driver::client::{check_call_options, transport_error, ClientSettings};
use crate::error::{Error, Operation};
use crate::exchange::TransportError;
use crate::ops::{CallOptions, OneShot, RequestExtras};
use crate::retry::{Retrier, RetryPolicy};
use crate::rng::Rng;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// What the driver does next.
#[derive(Debug)]
pub enum Step<T> {
    /// The operation ended: its result, and what it taught about the stream's content type.
    Done {
        /// The outcome of the operation.
        result: Result<T, Error>,
        /// The stream's content type, when the answer told it (the handle remembers it).
        content_type: Option<String>,
    },
    /// Wait `delay`, then send the next attempt ([`Call::request`] again).
    Retry {
        /// How long to wait.
        delay: Duration,
        /// What the attempt failed with (for the driver's trace).
        error: Error,
    },
}

/// One logical operation across its attempts.
#[derive(Debug)]
pub struct Call<O> {
    op: O,
    retrier: Retrier,
    rng: Rng,
    timeout: Option<Duration>,
    max_response_bytes: usize,
}

impl<O: OneShot> Call<O> {
    /// Starts `op` at `now` with the client's `settings` and the handle's `call` options (a
    /// call's retry policy and timeout replace the client's). Bad call options are
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput), before anything is sent.
    pub fn new(
        op: O,
        settings: &ClientSettings,
        call: &CallOptions,
        seed: u64,
        now: Instant,
    ) -> Result<Self, Error> {
        check_call_options(call, op.operation(), op.url())?;
        let policy: &RetryPolicy = call.retry.as_ref().unwrap_or(&settings.retry);
        let retrier = Retrier::new(policy, op.operation(), op.idempotent(), now);
        Ok(Call {
            retrier,
            rng: Rng::new(seed),
            timeout: call.timeout.or(settings.request_timeout),
            max_response_bytes: settings.max_response_bytes,
            op,
        })
    }

    /// The operation.
    pub fn op(&self) -> &O {
        &self.op
    }

    /// Which operation this is.
    pub fn operation(&self) -> Operation {
        self.op.operation()
    }

    /// The stream's URL.
    pub fn url(&self) -> &str {
        self.op.url()
    }

    /// How long one attempt may take, from sending to the end of the answer (`None`: no limit).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The most bytes an answer's body may have; a longer one is reported as a transport
    /// failure of kind [`TooLarge`](crate::TransportErrorKind::TooLarge).
    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }

    /// Attempts made so far, the first included (counted when the retry is decided).
    pub fn attempts(&self) -> u32 {
        self.retrier.attempts()
    }

    /// The request of the next attempt, with the `extras` the client gives now.
    pub fn request(&self, extras: &RequestExtras) -> Result<http::Request<Bytes>, Error> {
        self.op.request(extras)
    }

    /// What came of the attempt: the whole answer, or a transport failure (a timeout the
    /// driver enforced included), at `now`.
    pub fn outcome(
        &mut self,
        outcome: Result<(http::response::Parts, Bytes), TransportError>,
        now: Instant,
    ) -> Step<O::Output> {
        let result = match outcome {
            Ok((parts, body)) => self.op.response(&parts, body),
            Err(e) => Err(transport_error(self.op.operation(), self.op.url(), e)),
        };
        let error = match result {
            Ok(output) => {
                let content_type = self.op.learned_content_type(&output);
                return Step::Done {
                    result: Ok(output),
                    content_type,
                };
            }
            Err(e) => e,
        };
        let seen = error.clone();
        match self.retrier.on_failure(error, now, &mut self.rng) {
            Ok(delay) => Step::Retry { delay, error: seen },
            Err(e) => Step::Done {
                result: Err(e),
                content_type: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::TransportErrorKind;
    use crate::ops::{Append, AppendOptions, Head};
    use crate::ErrorKind;

    const URL: &str = "http://h/v1/stream/s";

    fn settings(retry: RetryPolicy) -> ClientSettings {
        ClientSettings {
            retry,
            ..ClientSettings::default()
        }
    }

    fn parts(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
        let mut b = http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    fn reset() -> TransportError {
        TransportError::new(TransportErrorKind::ConnectionReset, "reset")
    }

    #[test]
    fn a_transient_failure_is_retried_then_the_answer_teaches_the_content_type() {
        let now = t0();
        let s = settings(RetryPolicy::default());
        let mut call = Call::new(Head::new(URL), &s, &CallOptions::default(), 7, now).unwrap();
        match call.outcome(Ok((parts(503, &[]), Bytes::new())), now) {
            Step::Retry { delay, error } => {
                assert!(delay <= s.retry.max_delay);
                assert!(matches!(
                    error.kind,
                    ErrorKind::UnexpectedStatus { status: 503, .. }
                ));
            }
            other => panic!("expected a retry, got {other:?}"),
        }
        let ok = parts(
            200,
            &[
                ("stream-next-offset", "0_1"),
                ("content-type", "text/plain"),
            ],
        );
        match call.outcome(Ok((ok, Bytes::new())), now) {
            Step::Done {
                result,
                content_type,
            } => {
                assert!(result.is_ok());
                assert_eq!(content_type.as_deref(), Some("text/plain"));
            }
            other => panic!("expected the end, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_append_is_not_retried_after_a_transport_failure() {
        let now = t0();
        let s = settings(RetryPolicy::default());
        let op = Append::new(
            URL,
            Bytes::from_static(b"x"),
            AppendOptions::default(),
            None,
        );
        let mut call = Call::new(op, &s, &CallOptions::default(), 7, now).unwrap();
        match call.outcome(Err(reset()), now) {
            Step::Done { result, .. } => {
                assert!(matches!(result.unwrap_err().kind, ErrorKind::Transport(_)))
            }
            other => panic!("a plain append must not be retried: {other:?}"),
        }
    }

    #[test]
    fn a_body_over_the_limit_is_a_limit_error_and_not_retried() {
        let now = t0();
        let s = settings(RetryPolicy::default());
        let mut call = Call::new(Head::new(URL), &s, &CallOptions::default(), 7, now).unwrap();
        let too_large = TransportError::new(TransportErrorKind::TooLarge, "over 10 bytes");
        match call.outcome(Err(too_large), now) {
            Step::Done { result, .. } => {
                assert!(matches!(
                    result.unwrap_err().kind,
                    ErrorKind::LimitExceeded(_)
                ))
            }
            other => panic!("expected the end, got {other:?}"),
        }
    }

    #[test]
    fn call_options_replace_the_clients_and_bad_ones_are_refused_before_sending() {
        let now = t0();
        let s = settings(RetryPolicy::default());
        let call = CallOptions {
            timeout: Some(Duration::from_millis(250)),
            retry: Some(RetryPolicy::none()),
            ..CallOptions::default()
        };
        let mut c = Call::new(Head::new(URL), &s, &call, 7, now).unwrap();
        assert_eq!(c.timeout(), Some(Duration::from_millis(250)));
        // The client's body limit and the operation's URL (what its errors name) carry over.
        assert_eq!(c.max_response_bytes(), s.max_response_bytes);
        assert_eq!(c.url(), URL);
        assert_eq!(c.operation(), Operation::Head);
        assert!(matches!(
            c.outcome(Err(reset()), now),
            Step::Done { result: Err(_), .. }
        ));
        let zero = CallOptions {
            timeout: Some(Duration::ZERO),
            ..CallOptions::default()
        };
        let e = Call::new(Head::new(URL), &s, &zero, 7, now).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidInput(_)));
    }

    #[test]
    fn the_policy_gives_up_after_its_attempts() {
        let now = t0();
        let policy = RetryPolicy {
            max_attempts: Some(2),
            ..RetryPolicy::default()
        };
        let s = settings(policy);
        let mut c = Call::new(Head::new(URL), &s, &CallOptions::default(), 1, now).unwrap();
        assert!(matches!(c.outcome(Err(reset()), now), Step::Retry { .. }));
        assert_eq!(c.attempts(), 2);
        assert!(matches!(
            c.outcome(Err(reset()), now),
            Step::Done { result: Err(_), .. }
        ));
    }
}
