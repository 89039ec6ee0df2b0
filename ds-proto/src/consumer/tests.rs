//! Unit tests of the consumer, driven by hand-made inputs (no IO).

use super::*;
use crate::error::ErrorKind;
use crate::io::{Input, RequestId, Transmit};
use crate::machine::Machine;
use crate::offset::Offset;
use crate::ops::test_util::parts;
use crate::reader::{ReadMode, ReaderConfig, ReaderEvent};
use crate::retry::RetryPolicy;
use bytes::Bytes;
use std::time::{Duration, Instant};

const URL: &str = "http://h/s";
const BASE: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(1);

fn off(n: u32) -> Offset {
    Offset::parse(format!("0_{n:04}")).unwrap()
}

fn options(mode: ReadMode) -> ConsumerOptions {
    ConsumerOptions {
        mode,
        backoff_base: BASE,
        backoff_max: MAX,
        // A failed read is reported at once (no retries of the reader's own).
        reader_retry: RetryPolicy::none(),
        ..ConsumerOptions::default()
    }
}

fn query(t: &Transmit) -> String {
    t.request.uri().query().unwrap_or("").to_owned()
}

/// A consumer and the clock it is driven with.
struct T {
    c: Consumer<String>,
    now: Instant,
}

impl T {
    fn new(options: ConsumerOptions) -> T {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let config = ReaderConfig {
            rng_seed: 11,
            ..ReaderConfig::new(URL)
        };
        T {
            c: Consumer::new(config, &options, now),
            now,
        }
    }

    fn long_poll() -> T {
        T::new(options(ReadMode::LongPoll))
    }

    fn tx(&mut self) -> Transmit {
        self.c.poll_transmit(self.now).expect("a transmit")
    }

    fn no_tx(&mut self) {
        assert!(
            self.c.poll_transmit(self.now).is_none(),
            "unexpected transmit"
        );
    }

    fn respond(&mut self, id: RequestId, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let now = self.now;
        self.c.handle_input(
            Input::Head {
                id,
                parts: parts(status, headers),
            },
            now,
        );
        if !body.is_empty() {
            self.c.handle_input(
                Input::Body {
                    id,
                    chunk: Bytes::copy_from_slice(body),
                },
                now,
            );
        }
        self.c.handle_input(Input::End { id }, now);
    }

    /// A 200 with `body` and the offset after it.
    fn data(&mut self, id: RequestId, body: &str, next: u32) {
        let next = off(next);
        self.respond(
            id,
            200,
            &[("stream-next-offset", next.as_str())],
            body.as_bytes(),
        );
    }

    /// Reads `body` (followed by offset `next`) and checks it is handed out as the batch.
    fn deliver(&mut self, body: &str, next: u32) {
        let r = self.tx();
        self.data(r.id, body, next);
        assert_eq!(self.batch(), body);
    }

    /// Every event queued.
    fn all_events(&mut self) -> Vec<ConsumerEvent<String>> {
        std::iter::from_fn(|| self.c.poll_event()).collect()
    }

    /// The events queued, without the reader's for logging.
    fn events(&mut self) -> Vec<ConsumerEvent<String>> {
        let mut events = self.all_events();
        events.retain(|e| !matches!(e, ConsumerEvent::Read(_)));
        events
    }

    /// The one event queued, which must be a batch: its data.
    fn batch(&mut self) -> String {
        match self.events().as_slice() {
            [ConsumerEvent::Batch(chunk)] => String::from_utf8(chunk.data.to_vec()).unwrap(),
            other => panic!("expected one batch, got {other:?}"),
        }
    }

    fn error_event(&mut self) {
        let events = self.events();
        assert!(
            matches!(events.as_slice(), [ConsumerEvent::Error]),
            "expected the error hook's turn, got {events:?}"
        );
    }

    fn exit(&mut self) -> ConsumerExit<String> {
        let mut events = self.events();
        assert_eq!(events.len(), 1, "{events:?}");
        match events.pop() {
            Some(ConsumerEvent::Exit(exit)) => exit,
            other => panic!("expected the exit, got {other:?}"),
        }
    }

    fn ok(&mut self) {
        self.c.batch_done(Ok(()), self.now).unwrap();
    }

    fn refuse(&mut self) {
        self.c.batch_done(Err("refused".into()), self.now).unwrap();
    }

    fn reconnect(&mut self) -> Duration {
        self.c
            .resolve_error(ErrorAction::Reconnect, self.now)
            .unwrap();
        let at = self.c.poll_timeout().expect("the backoff timer");
        assert_eq!(self.c.reconnect_at(), Some(at));
        at - self.now
    }

    /// Moves the clock to the consumer's timer and fires it.
    fn wait_timer(&mut self) {
        let at = self.c.poll_timeout().expect("a timer");
        self.now = self.now.max(at);
        self.c.handle_timeout(self.now);
    }

    fn finished(&mut self) {
        assert!(self.c.is_finished());
        self.no_tx();
        assert_eq!(self.c.poll_timeout(), None);
        assert!(self.c.poll_event().is_none());
        assert_eq!(self.c.poll_cancel(), None);
    }
}

#[test]
fn the_checkpoint_moves_only_when_a_batch_is_handled() {
    let mut t = T::long_poll();
    assert_eq!(t.c.checkpoint().as_str(), "-1");
    let a = t.tx();
    assert!(query(&a).contains("offset=-1"), "{}", query(&a));
    t.data(a.id, "a", 1);
    assert_eq!(t.batch(), "a");
    assert!(t.c.is_batch_out());
    assert_eq!(t.c.checkpoint().as_str(), "-1", "not before the outcome");

    // The reader goes on (its next request may be made), but no batch is handed out while one
    // is out.
    let b = t.tx();
    t.data(b.id, "b", 2);
    assert!(t.all_events().is_empty(), "one batch out at a time");
    assert_eq!(t.c.checkpoint().as_str(), "-1");

    t.ok();
    assert_eq!(t.c.checkpoint(), &off(1));
    assert!(!t.c.is_batch_out());
    assert_eq!(t.batch(), "b");
    t.ok();
    assert_eq!(t.c.checkpoint(), &off(2));
    assert_eq!(t.c.reader().unwrap().offset(), &off(2));
}

#[test]
fn commands_at_the_wrong_time_are_refused() {
    let mut t = T::long_poll();
    assert_eq!(
        t.c.batch_done(Ok(()), t.now),
        Err(ConsumerCommandError::NoBatchOut)
    );
    assert_eq!(
        t.c.resolve_error(ErrorAction::Stop, t.now),
        Err(ConsumerCommandError::NoErrorPending)
    );
    t.deliver("a", 1);
    assert_eq!(
        t.c.resolve_error(ErrorAction::Reconnect, t.now),
        Err(ConsumerCommandError::NoErrorPending)
    );
    t.ok();
    assert_eq!(
        t.c.batch_done(Ok(()), t.now),
        Err(ConsumerCommandError::NoBatchOut),
        "an outcome counts once"
    );
    assert_eq!(t.c.checkpoint(), &off(1));
    let mut asked = false;
    assert_eq!(
        t.c.resolve_error_with(
            |_| {
                asked = true;
                ErrorAction::Stop
            },
            t.now
        ),
        Err(ConsumerCommandError::NoErrorPending)
    );
    assert!(!asked, "no hook call without an error");
}

#[test]
fn the_hook_is_shown_the_pending_error_and_its_answer_applies() {
    let mut t = T::long_poll();
    t.deliver("a", 1);
    t.c.batch_done(Err("bad batch".into()), t.now).unwrap();
    t.error_event();
    let mut seen = None;
    t.c.resolve_error_with(
        |e| {
            seen = Some(e.to_string());
            ErrorAction::Stop
        },
        t.now,
    )
    .unwrap();
    assert_eq!(seen.as_deref(), Some("handler failed: bad batch"));
    assert!(matches!(
        t.exit(),
        ConsumerExit::Failed {
            error: ConsumerError::Handler(e),
            ..
        } if e == "bad batch"
    ));
}

#[test]
fn a_refused_batch_is_delivered_again_from_the_checkpoint_after_the_backoff() {
    let mut t = T::long_poll();
    let a = t.tx();
    t.data(a.id, "a", 1);
    assert_eq!(t.batch(), "a");
    t.ok();
    let b = t.tx();
    t.data(b.id, "b", 2);
    assert_eq!(t.batch(), "b");
    // The reader's next request is in flight when the handler refuses "b".
    let c = t.tx();
    t.refuse();
    assert_eq!(
        t.c.poll_cancel(),
        Some(c.id),
        "the reader's request is cancelled"
    );
    assert_eq!(t.c.poll_cancel(), None);
    t.error_event();
    assert!(matches!(
        t.c.pending_error(),
        Some(ConsumerError::Handler(e)) if e == "refused"
    ));
    assert_eq!(
        t.c.checkpoint(),
        &off(1),
        "a refused batch does not move it"
    );
    // Nothing happens until the hook answers.
    t.no_tx();
    assert_eq!(t.c.poll_timeout(), None);

    let delay = t.reconnect();
    assert!(delay <= BASE, "{delay:?}");
    assert!(t.c.pending_error().is_none());
    if !delay.is_zero() {
        t.no_tx();
    }
    t.wait_timer();
    let again = t.tx();
    assert!(
        query(&again).contains(&format!("offset={}", off(1))),
        "{}",
        query(&again)
    );
    assert!(again.id > c.id, "ids stay unique across readers");
    // A late answer to the cancelled request is ignored.
    t.data(c.id, "c", 3);
    assert!(t.all_events().is_empty());
    t.data(again.id, "b", 2);
    assert_eq!(t.batch(), "b", "delivered again");
    t.ok();
    assert_eq!(t.c.checkpoint(), &off(2));
    assert_eq!(
        t.c.reconnects(),
        0,
        "a handled batch starts the schedule over"
    );
}

#[test]
fn the_backoff_grows_is_capped_and_follows_the_retry_module() {
    let opts = options(ReadMode::LongPoll);
    let policy = opts.backoff_policy();
    assert_eq!(
        policy,
        RetryPolicy {
            initial_delay: BASE,
            max_delay: MAX,
            max_attempts: None,
            max_elapsed: None,
            ..RetryPolicy::default()
        }
    );
    let mut t = T::new(opts);
    let mut delays = Vec::new();
    for n in 1..=30u32 {
        let r = t.tx();
        t.respond(r.id, 503, &[], b"");
        t.error_event();
        assert!(matches!(
            t.c.pending_error(),
            Some(ConsumerError::Read(e)) if e.kind.is_retryable()
        ));
        let delay = t.reconnect();
        assert_eq!(t.c.reconnects(), n);
        assert!(delay <= policy.ceiling(n), "reconnect {n}: {delay:?}");
        assert!(delay <= MAX);
        delays.push(delay);
        t.wait_timer();
    }
    assert!(
        delays[10..].iter().any(|d| *d > 4 * BASE),
        "the delays grow past the first ceiling: {delays:?}"
    );
    // The same seed gives the same schedule.
    let mut u = T::new(options(ReadMode::LongPoll));
    for d in &delays {
        let r = u.tx();
        u.respond(r.id, 503, &[], b"");
        u.error_event();
        assert_eq!(u.reconnect(), *d);
        u.wait_timer();
    }

    // A handled batch starts the schedule over.
    let r = t.tx();
    t.data(r.id, "x", 1);
    assert_eq!(t.batch(), "x");
    t.ok();
    assert_eq!(t.c.reconnects(), 0);
    let r = t.tx();
    t.respond(r.id, 503, &[], b"");
    t.error_event();
    assert!(t.reconnect() <= BASE);

    // A maximum below the base is raised to it.
    let low = ConsumerOptions {
        backoff_max: Duration::from_millis(1),
        ..options(ReadMode::LongPoll)
    };
    assert_eq!(low.backoff_policy().max_delay, BASE);
    assert!(low.backoff_policy().validate().is_ok());
}

#[test]
fn stop_while_a_batch_is_out_waits_for_its_outcome() {
    let mut t = T::long_poll();
    let a = t.tx();
    t.data(a.id, "a", 1);
    assert_eq!(t.batch(), "a");
    let b = t.tx();
    t.c.stop();
    assert_eq!(t.c.poll_cancel(), Some(b.id));
    assert!(t.all_events().is_empty(), "not before the outcome");
    assert!(!t.c.is_finished());
    t.no_tx();
    t.ok();
    match t.exit() {
        ConsumerExit::Stopped { offset } => assert_eq!(offset, off(1), "past the handled batch"),
        other => panic!("{other:?}"),
    }
    t.finished();

    // A refusal after a stop is still shown to the hook; its Reconnect means stop.
    let mut t = T::long_poll();
    t.deliver("a", 1);
    t.c.stop();
    t.refuse();
    t.error_event();
    t.c.resolve_error(ErrorAction::Reconnect, t.now).unwrap();
    match t.exit() {
        ConsumerExit::Stopped { offset } => assert_eq!(offset.as_str(), "-1"),
        other => panic!("{other:?}"),
    }
    t.finished();
}

#[test]
fn stop_while_reading_cancels_the_request_and_hands_out_nothing_more() {
    let mut t = T::long_poll();
    t.deliver("a", 1);
    t.ok();
    let b = t.tx();
    t.data(b.id, "b", 2); // queued in the reader, not handed out yet
    let c = t.tx();
    t.c.stop();
    assert_eq!(t.c.poll_cancel(), Some(c.id));
    match t.exit() {
        ConsumerExit::Stopped { offset } => assert_eq!(offset, off(1)),
        other => panic!("{other:?}"),
    }
    t.finished();
    t.c.stop(); // idempotent
    assert!(t.c.poll_event().is_none());
}

#[test]
fn stop_while_waiting_to_reconnect_ends_at_once() {
    let mut t = T::long_poll();
    let a = t.tx();
    t.respond(a.id, 503, &[], b"");
    t.error_event();
    t.reconnect();
    t.c.stop();
    assert_eq!(t.c.reconnect_at(), None);
    match t.exit() {
        ConsumerExit::Stopped { offset } => assert_eq!(offset.as_str(), "-1"),
        other => panic!("{other:?}"),
    }
    t.finished();
}

/// The end of a reconnect's backoff is a timer like the reader's: `handle_timeout` starts the
/// new reader from the checkpoint when it is due, and not before, so a driver that fires
/// timers first and asks for requests afterwards reconnects on time and does not spin on an
/// expired timer.
#[test]
fn handle_timeout_starts_the_reader_when_the_backoff_ends_and_not_before() {
    let mut t = T::long_poll();
    // Full jitter may draw a zero delay: fail reads until a reconnect waits (same seed, same
    // schedule).
    let delay = (0..30)
        .find_map(|_| {
            let r = t.tx();
            t.respond(r.id, 503, &[], b"");
            t.error_event();
            let d = t.reconnect();
            if d.is_zero() {
                t.wait_timer();
                None
            } else {
                Some(d)
            }
        })
        .expect("a reconnect with a delay");
    let at = t.now + delay;
    t.c.handle_timeout(t.now);
    assert_eq!(t.c.reconnect_at(), Some(at), "not before the delay");
    assert!(t.c.reader().is_none());
    assert_eq!(t.c.poll_timeout(), Some(at));
    t.now = at;
    t.c.handle_timeout(t.now);
    assert_eq!(t.c.reconnect_at(), None, "the reader started");
    assert_eq!(t.c.reader().map(|r| r.offset().as_str()), Some("-1"));
    assert_ne!(t.c.poll_timeout(), Some(at), "the expired timer is gone");
    let r = t.tx();
    assert!(query(&r).contains("offset=-1"), "{}", query(&r));
}

#[test]
fn eof_ends_the_consumer_once_the_last_batch_is_handled() {
    let mut t = T::long_poll();
    let a = t.tx();
    let end = off(1);
    t.respond(
        a.id,
        200,
        &[
            ("stream-next-offset", end.as_str()),
            ("stream-closed", "true"),
        ],
        b"last",
    );
    let events = t.events();
    let [ConsumerEvent::Batch(chunk)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert!(chunk.closed);
    // Refused: no EOF yet, the last batch comes again.
    t.refuse();
    t.error_event();
    t.reconnect();
    t.wait_timer();
    let again = t.tx();
    t.respond(
        again.id,
        200,
        &[
            ("stream-next-offset", end.as_str()),
            ("stream-closed", "true"),
        ],
        b"last",
    );
    assert_eq!(t.batch(), "last");
    t.ok();
    let events = t.all_events();
    assert!(
        matches!(
            events.as_slice(),
            [
                ConsumerEvent::Read(ReaderEvent::Closed { offset: read }),
                ConsumerEvent::Exit(ConsumerExit::Eof { offset })
            ] if *read == end && *offset == end
        ),
        "{events:?}"
    );
    assert_eq!(t.c.checkpoint(), &end);
    t.finished();
}

#[test]
fn a_reader_failure_asks_the_hook_and_stop_ends_with_the_error() {
    let mut t = T::long_poll();
    t.deliver("a", 1);
    t.ok();
    let b = t.tx();
    t.respond(b.id, 404, &[], b"");
    let events = t.all_events();
    assert!(
        matches!(
            events.as_slice(),
            [
                ConsumerEvent::Read(ReaderEvent::Failed(e)),
                ConsumerEvent::Error
            ] if e.kind == ErrorKind::NotFound
        ),
        "the reader's failure, then the hook's turn: {events:?}"
    );
    assert!(matches!(
        t.c.pending_error(),
        Some(ConsumerError::Read(e)) if e.kind == ErrorKind::NotFound
    ));
    assert!(t.c.reader().is_none());
    t.c.resolve_error(ErrorAction::Stop, t.now).unwrap();
    let exit = t.exit();
    assert_eq!(exit.offset(), &off(1));
    match exit {
        ConsumerExit::Failed {
            offset,
            error: ConsumerError::Read(e),
        } => {
            assert_eq!(offset, off(1));
            assert_eq!(e.kind, ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    t.finished();
}

#[test]
fn a_request_the_reader_abandons_is_cancelled_under_the_id_it_was_sent_with() {
    // Each reader counts its ids from 1 and the consumer shifts them; a request the second
    // reader gives up on (here an SSE connection silent past the idle timeout) must be
    // cancelled under the id the driver sent it with.
    let mut t = T::new(options(ReadMode::Sse));
    let a = t.tx();
    t.respond(a.id, 404, &[], b"");
    t.error_event();
    t.reconnect();
    t.wait_timer();
    let b = t.tx();
    assert!(b.id > a.id, "{:?} after {:?}", b.id, a.id);
    assert!(query(&b).contains("live=sse"), "{}", query(&b));
    t.c.handle_input(
        Input::Head {
            id: b.id,
            parts: parts(200, &[("content-type", "text/event-stream")]),
        },
        t.now,
    );
    assert_eq!(t.c.poll_cancel(), None);
    t.now += ReaderConfig::DEFAULT_SSE_IDLE_TIMEOUT;
    t.c.handle_timeout(t.now);
    assert_eq!(t.c.poll_cancel(), Some(b.id));
    assert_eq!(t.c.poll_cancel(), None);
    let c = t.tx();
    assert!(c.id > b.id, "the reconnect is a new request: {:?}", c.id);
}

#[test]
fn a_consumer_error_has_its_cause_as_the_source() {
    use std::error::Error as _;
    let read: ConsumerError<std::fmt::Error> = ConsumerError::Read(crate::Error::new(
        crate::error::Operation::Read,
        URL,
        ErrorKind::NotFound,
    ));
    let source = read.source().expect("the read error");
    assert!(matches!(
        source.downcast_ref::<crate::Error>(),
        Some(e) if e.kind == ErrorKind::NotFound
    ));
    let handler: ConsumerError<std::fmt::Error> = ConsumerError::Handler(std::fmt::Error);
    let source = handler.source().expect("the handler's error");
    assert!(source.downcast_ref::<std::fmt::Error>().is_some());
}

#[test]
fn a_refused_batch_with_stop_ends_with_the_handlers_error() {
    let mut t = T::long_poll();
    t.deliver("a", 1);
    t.refuse();
    t.error_event();
    t.c.resolve_error(ErrorAction::Stop, t.now).unwrap();
    match t.exit() {
        ConsumerExit::Failed {
            offset,
            error: ConsumerError::Handler(e),
        } => {
            assert_eq!(offset.as_str(), "-1");
            assert_eq!(e, "refused");
        }
        other => panic!("{other:?}"),
    }
    t.finished();
}

#[test]
fn a_configuration_the_reader_refuses_is_a_read_error() {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let config = ReaderConfig {
        max_body_bytes: 0,
        ..ReaderConfig::new(URL)
    };
    let mut c: Consumer<String> = Consumer::new(config, &options(ReadMode::Auto), now);
    assert!(c.poll_transmit(now).is_none());
    assert!(matches!(c.poll_event(), Some(ConsumerEvent::Error)));
    assert!(matches!(
        c.pending_error(),
        Some(ConsumerError::Read(e)) if matches!(e.kind, ErrorKind::InvalidInput(_))
    ));
}

#[test]
fn up_to_date_moves_a_sentinel_checkpoint_and_catch_up_ends_stopped() {
    let mut t = T::new(options(ReadMode::CatchUp));
    let a = t.tx();
    let tail = off(5);
    t.respond(
        a.id,
        200,
        &[
            ("stream-next-offset", tail.as_str()),
            ("stream-up-to-date", "true"),
        ],
        b"",
    );
    let mut events = t.all_events();
    let exit = events.pop();
    assert!(
        matches!(
            events.as_slice(),
            [
                ConsumerEvent::Read(ReaderEvent::UpToDate { offset }),
                ConsumerEvent::Read(ReaderEvent::Done)
            ] if *offset == tail
        ),
        "{events:?}"
    );
    match exit {
        Some(ConsumerEvent::Exit(ConsumerExit::Stopped { offset })) => assert_eq!(offset, tail),
        other => panic!("{other:?}"),
    }
    assert_eq!(t.c.checkpoint(), &tail);
    t.finished();
}

#[test]
fn a_consumer_starts_at_the_offset_it_is_given() {
    let mut t = T::new(ConsumerOptions {
        offset: off(7),
        ..options(ReadMode::LongPoll)
    });
    assert_eq!(t.c.checkpoint(), &off(7));
    let a = t.tx();
    assert!(query(&a).contains(&format!("offset={}", off(7))));
    assert!(query(&a).contains("live=long-poll"));
}

#[test]
fn it_is_driven_through_the_machine_trait() {
    fn drain<M: Machine>(m: &mut M) -> Vec<M::Event> {
        std::iter::from_fn(|| m.poll_event()).collect()
    }
    let mut t = T::long_poll();
    let a = Machine::poll_transmit(&mut t.c, t.now).unwrap();
    t.data(a.id, "a", 1);
    let events = drain(&mut t.c);
    assert!(matches!(events.as_slice(), [ConsumerEvent::Batch(_)]));
    assert_eq!(Machine::poll_timeout(&t.c), None);
    // The reader's next request is in flight when the batch is refused: the trait's
    // poll_cancel names it.
    let b = Machine::poll_transmit(&mut t.c, t.now).unwrap();
    t.refuse();
    assert_eq!(Machine::poll_cancel(&mut t.c), Some(b.id));
    assert_eq!(Machine::poll_cancel(&mut t.c), None);
    t.error_event();
    // A reconnect's backoff is the trait's timer and ends through its handle_timeout.
    let delay = t.reconnect();
    assert_eq!(Machine::poll_timeout(&t.c), Some(t.now + delay));
    Machine::handle_timeout(&mut t.c, t.now + delay);
    assert_eq!(t.c.reconnect_at(), None);
    assert!(t.c.reader().is_some());
}

/// Each reader the consumer starts gets a seed of its own from the consumer's PRNG: readers
/// started by reconnects do not repeat the same retry jitter.
#[test]
fn each_reader_draws_its_own_retry_jitter() {
    let mut t = T::new(ConsumerOptions {
        reader_retry: RetryPolicy {
            max_attempts: Some(5),
            ..RetryPolicy::default()
        },
        ..options(ReadMode::LongPoll)
    });
    let first_retry = |t: &mut T| {
        let r = t.tx();
        t.respond(r.id, 503, &[], b"");
        let delay = t.all_events().into_iter().find_map(|e| match e {
            ConsumerEvent::Read(ReaderEvent::Retrying { delay, .. }) => Some(delay),
            _ => None,
        });
        t.wait_timer();
        delay.expect("the reader retries")
    };
    let d1 = first_retry(&mut t);
    t.deliver("a", 1);
    t.refuse();
    t.error_event();
    t.reconnect();
    t.wait_timer();
    let d2 = first_retry(&mut t);
    assert_ne!(d1, d2, "the second reader repeats the first one's jitter");
}

#[test]
fn the_backoff_starts_at_the_base_asked_for() {
    let opts = ConsumerOptions {
        backoff_base: Duration::from_millis(250),
        backoff_max: Duration::from_secs(2),
        ..ConsumerOptions::default()
    };
    let p = opts.backoff_policy();
    assert_eq!(p.initial_delay, Duration::from_millis(250));
    assert_eq!(p.max_delay, Duration::from_secs(2));
}

/// The consumer in a simulated world: a faulty network, a server that keeps appending, an
/// application that refuses some batches. Every byte is applied exactly once, in order.
#[cfg(feature = "sim")]
mod sim {
    use super::*;
    use crate::ops::{append_request, close_request, create_request};
    use crate::ops::{AppendOptions, CreateOptions, RequestExtras};
    use crate::rng::Rng;
    use crate::sim::net::FaultConfig;
    use crate::sim::world::{World, WorldConfig};

    const PATH: &str = "/v1/stream/feed";

    fn url() -> String {
        format!("http://sim{PATH}")
    }

    fn append(world: &mut World, n: u32) {
        let now = world.now();
        let body = Bytes::from(format!("<{n}>"));
        let req = append_request(
            &url(),
            body,
            &AppendOptions::default(),
            &RequestExtras::default(),
        );
        let resp = world.server_mut().call(req.unwrap(), now).unwrap();
        assert!(resp.status().is_success());
    }

    /// Runs one seed: (refusals, reconnects).
    fn run(seed: u64) -> (u32, u32) {
        #[allow(clippy::disallowed_methods)]
        let start = Instant::now();
        let config = WorldConfig {
            faults: FaultConfig::random(seed),
            ..WorldConfig::new(seed)
        };
        let mut world = World::new(config, start);
        let create = create_request(&url(), &CreateOptions::default(), &RequestExtras::default());
        let now = world.now();
        assert!(world
            .server_mut()
            .call(create.unwrap(), now)
            .unwrap()
            .status()
            .is_success());
        for n in 0..10 {
            append(&mut world, n);
        }
        // More data, and the close, while the consumer long-polls.
        for n in 10..20 {
            world.schedule(start + Duration::from_millis(300) * n, move |w| {
                append(w, n)
            });
        }
        world.schedule(start + Duration::from_secs(7), |w| {
            let now = w.now();
            let close = close_request(&url(), None, &RequestExtras::default()).unwrap();
            assert!(w
                .server_mut()
                .call(close, now)
                .unwrap()
                .status()
                .is_success());
        });

        let reader = ReaderConfig {
            rng_seed: seed,
            ..ReaderConfig::new(url())
        };
        let options = ConsumerOptions {
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            reader_retry: RetryPolicy {
                max_attempts: Some(2),
                ..RetryPolicy::default()
            },
            ..ConsumerOptions::default()
        };
        let id = world.add_machine(Consumer::<String>::new(reader, &options, world.now()));
        let mut app = Rng::new(seed);
        let (mut applied, mut refusals, mut reconnects) = (Vec::new(), 0, 0);
        let exit = 'run: loop {
            let progressed = world.step().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert!(
                progressed,
                "seed {seed}: the world went idle before the end"
            );
            while let Some(e) = world.poll_event() {
                let Some(event) = e.event.downcast_ref::<ConsumerEvent<String>>() else {
                    continue;
                };
                let now = world.now();
                let consumer = world.machine_mut::<Consumer<String>>(id).unwrap();
                match event {
                    ConsumerEvent::Batch(chunk) => {
                        if !chunk.data.is_empty() && app.chance(0.2) {
                            refusals += 1;
                            consumer.batch_done(Err("busy".into()), now).unwrap();
                        } else {
                            applied.extend_from_slice(&chunk.data);
                            consumer.batch_done(Ok(()), now).unwrap();
                        }
                    }
                    ConsumerEvent::Error => {
                        reconnects += 1;
                        consumer.resolve_error(ErrorAction::Reconnect, now).unwrap();
                    }
                    ConsumerEvent::Read(_) => {}
                    ConsumerEvent::Exit(exit) => {
                        assert!(
                            matches!(exit, ConsumerExit::Eof { .. }),
                            "seed {seed}: {exit:?}"
                        );
                        break 'run exit.offset().clone();
                    }
                }
            }
        };
        let server = world.server();
        let tail = server.tail_offset(PATH).unwrap();
        assert_eq!(exit, tail, "seed {seed}");
        assert_eq!(
            applied,
            server.stream_bytes(PATH).unwrap().to_vec(),
            "seed {seed}: every byte once, in order"
        );
        (refusals, reconnects)
    }

    #[test]
    fn every_byte_is_applied_once_across_faults_refusals_and_reconnects() {
        let (mut refusals, mut reconnects) = (0, 0);
        for seed in 0..24 {
            let (r, c) = run(seed);
            refusals += r;
            reconnects += c;
        }
        eprintln!("{refusals} refusals, {reconnects} reconnects");
        assert!(
            refusals > 0 && reconnects > refusals,
            "{refusals} {reconnects}"
        );
    }
}
