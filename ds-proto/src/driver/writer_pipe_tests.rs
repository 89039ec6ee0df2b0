//! The writer's connection plan, without IO.
#![allow(clippy::disallowed_methods)] // tests take a real `Instant` as the clock's origin

use super::*;
use crate::io::TransportError;
use crate::pipe::BUDGET_MAX_BATCH_BYTES;
use bytes::Bytes;

const URL: &str = "http://h/v1/stream/s";

fn config(url: &str, in_flight: usize, max_batch: usize) -> ProducerConfig {
    ProducerConfig {
        max_in_flight: in_flight,
        max_batch_bytes: max_batch,
        max_buffered_bytes: 64 << 20,
        ..ProducerConfig::new(url, "p1")
    }
}

fn transmit(id: u64, bytes: usize) -> Transmit {
    Transmit {
        id: RequestId(id),
        request: http::Request::post(URL)
            .body(Bytes::from(vec![0u8; bytes]))
            .unwrap(),
        deadline: None,
    }
}

fn head(id: u64, status: u16, headers: &[(&str, &str)]) -> Input {
    let mut b = http::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    Input::Head {
        id: RequestId(id),
        parts: b.body(()).unwrap().into_parts().0,
    }
}

#[test]
fn carrier_follows_in_flight_scheme_and_refusal() {
    assert_eq!(
        WriterPipe::new(&config(URL, 1, 1 << 20)).carrier(),
        Carrier::Pipelined { depth: 1 },
        "one at a time on the dedicated connection"
    );
    assert_eq!(
        WriterPipe::new(&config(URL, 4, 1 << 20)).carrier(),
        Carrier::Pipelined { depth: 4 }
    );
    assert_eq!(
        WriterPipe::new(&config("HTTP://h/v1/stream/s", 2, 1 << 20)).carrier(),
        Carrier::Pipelined { depth: 2 }
    );
    assert_eq!(
        WriterPipe::new(&config("https://h/v1/stream/s", 4, 1 << 20)).carrier(),
        Carrier::Pooled,
        "a driver without TLS on its dedicated connection"
    );
    assert_eq!(
        WriterPipe::new(&config("HTTPS://h/v1/stream/s", 4, 1 << 20))
            .with_tls(true)
            .carrier(),
        Carrier::Pipelined { depth: 4 },
        "a driver with TLS on its dedicated connection"
    );
    assert_eq!(
        WriterPipe::new(&config("ftp://h/v1/stream/s", 4, 1 << 20))
            .with_tls(true)
            .carrier(),
        Carrier::Pooled
    );
    let mut plan = WriterPipe::new(&config(URL, 4, 1 << 20));
    plan.on_pipelining_refused();
    assert_eq!(plan.carrier(), Carrier::Pooled);
}

#[test]
fn the_producer_knows_its_requests_keep_order_only_while_they_are_pipelined() {
    let ordered = |plan: &WriterPipe, config: &ProducerConfig| {
        let mut producer = Producer::new(config.clone(), Instant::now()).unwrap();
        plan.apply(&mut producer);
        producer.is_ordered()
    };
    let piped = config(URL, 4, 1 << 20);
    let mut plan = WriterPipe::new(&piped);
    assert!(ordered(&plan, &piped), "pipelined on one connection");
    let tls = config("https://h/v1/stream/s", 4, 1 << 20);
    assert!(!ordered(&WriterPipe::new(&tls), &tls), "pooled connections");
    assert!(ordered(&WriterPipe::new(&tls).with_tls(true), &tls));
    plan.on_pipelining_refused();
    assert!(!ordered(&plan, &piped), "fallen back to pooled connections");
    // A producer told once is told again when the plan falls back.
    let mut producer = Producer::new(piped.clone(), Instant::now()).unwrap();
    WriterPipe::new(&piped).apply(&mut producer);
    plan.apply(&mut producer);
    assert!(!producer.is_ordered());
}

#[test]
fn a_sequence_gap_on_a_clean_pipeline_falls_back_but_one_after_a_failure_does_not() {
    let now = Instant::now();
    let gap = [
        ("producer-expected-seq", "1"),
        ("producer-received-seq", "2"),
    ];

    // Batch 1 failed (503): batch 2's gap is the consequence, not a reordering.
    let mut plan = WriterPipe::new(&config(URL, 4, 1 << 20));
    plan.on_sent(&transmit(1, 10), now);
    plan.on_sent(&transmit(2, 10), now);
    plan.on_input(&head(1, 503, &[]), now);
    plan.on_input(&Input::End { id: RequestId(1) }, now);
    plan.on_input(&head(2, 409, &gap), now);
    plan.on_input(&Input::End { id: RequestId(2) }, now);
    assert_eq!(plan.carrier(), Carrier::Pipelined { depth: 4 });
    assert_eq!(plan.pipe().in_flight_batches(), 0);

    // Nothing failed before: the requests were reordered on the way.
    plan.on_sent(&transmit(3, 10), now);
    plan.on_sent(&transmit(4, 10), now);
    plan.on_input(&head(3, 200, &[]), now);
    plan.on_input(&Input::End { id: RequestId(3) }, now);
    plan.on_input(&head(4, 409, &gap), now);
    assert_eq!(plan.carrier(), Carrier::Pooled);

    // A 409 without a gap (stream closed, content type) says nothing about order.
    let mut plan = WriterPipe::new(&config(URL, 4, 1 << 20));
    plan.on_sent(&transmit(1, 10), now);
    plan.on_input(&head(1, 409, &[("stream-closed", "true")]), now);
    assert_eq!(plan.carrier(), Carrier::Pipelined { depth: 4 });
}

#[test]
fn acknowledged_batches_grow_the_target_within_max_batch_bytes() {
    let t0 = Instant::now();
    let max_batch = 8 << 20;
    let mut plan = WriterPipe::new(&config(URL, 2, max_batch));
    assert_eq!(plan.batch_target_bytes(), 1 << 20, "starts at 1 MiB");
    let mut producer = Producer::new(config(URL, 2, max_batch), t0).unwrap();
    plan.apply(&mut producer);
    assert_eq!(producer.batch_target_bytes(), 1 << 20);

    // A link that keeps up: every round trip (20 ms) acknowledges all the budget.
    let rtt = Duration::from_millis(20);
    let mut now = t0;
    let mut id = 0;
    for _ in 0..20 {
        let target = plan.batch_target_bytes();
        let n = plan.pipe().mode().depth();
        for _ in 0..n {
            id += 1;
            plan.on_sent(&transmit(id, target), now);
            plan.on_written(RequestId(id), now);
        }
        now += rtt;
        for k in (id + 1 - n as u64)..=id {
            plan.on_input(&head(k, 200, &[]), now);
            plan.on_input(&Input::End { id: RequestId(k) }, now);
        }
    }
    assert!(plan.pipe().srtt().is_some_and(|s| s == rtt));
    assert_eq!(
        plan.batch_target_bytes(),
        max_batch,
        "the target grew to the user's ceiling"
    );
    plan.apply(&mut producer);
    assert_eq!(producer.batch_target_bytes(), max_batch);
    assert_eq!(plan.pipe().in_flight_bytes(), 0);
}

#[test]
fn failures_and_abandoned_requests_leave_the_flight() {
    let now = Instant::now();
    let mut plan = WriterPipe::new(&config(URL, 4, 1 << 20));
    plan.on_sent(&transmit(1, 100), now);
    plan.on_sent(&transmit(2, 100), now);
    plan.on_sent(&transmit(3, 100), now);
    assert_eq!(plan.pipe().in_flight_bytes(), 300);
    plan.on_input(
        &Input::Failed {
            id: RequestId(1),
            error: TransportError::new(TransportErrorKind::ConnectionReset, "eof"),
        },
        now,
    );
    plan.on_abandoned(RequestId(2), now);
    plan.on_input(&Input::End { id: RequestId(99) }, now); // unknown: ignored
    assert_eq!(plan.pipe().in_flight_bytes(), 100);
    assert_eq!(plan.pipe().in_flight_batches(), 1);
    assert!(outcome_known_unprocessed(TransportErrorKind::Connect));
    assert!(!outcome_known_unprocessed(
        TransportErrorKind::ConnectionReset
    ));
    assert!(!outcome_known_unprocessed(TransportErrorKind::Timeout));
}

#[test]
fn one_at_a_time_the_target_grows_too() {
    // A 20 ms link carrying 250 MB/s: a batch of B bytes is answered 20 ms + B / 250 MB/s
    // after it is sent; the next one leaves with the answer (the application offers more).
    let t0 = Instant::now();
    let max_batch = 32 << 20;
    let mut plan = WriterPipe::new(&config(URL, 1, max_batch));
    let mut now = t0;
    let mut targets = Vec::new();
    // The producer seals the next batch while one is in flight: the batch that leaves with an
    // answer was cut at the target of one answer earlier.
    let mut sealed = plan.batch_target_bytes();
    for id in 1..=30u64 {
        let target = sealed;
        sealed = plan.batch_target_bytes();
        targets.push(target);
        plan.on_sent(&transmit(id, target), now);
        now += Duration::from_millis(20) + Duration::from_secs_f64(target as f64 / 250e6);
        plan.on_input(&head(id, 204, &[]), now);
        plan.on_input(&Input::End { id: RequestId(id) }, now);
    }
    eprintln!("{targets:?}");
    assert!(plan.batch_target_bytes() >= 4 << 20, "grew: {targets:?}");
}

#[test]
fn on_a_slow_link_batches_stay_within_a_second_of_its_rate() {
    // 2 MB/s, 5 ms of propagation, pooled (no write times): a round-trip sample is mostly the
    // batch's own transfer time, which would let the budget feed on itself.
    let t0 = Instant::now();
    let mut plan = WriterPipe::new(&config(URL, 1, 64 << 20));
    let mut now = t0;
    for id in 1..=40u64 {
        let target = plan
            .pipe()
            .wait_ceiling_bytes()
            .max(plan.batch_target_bytes());
        plan.on_sent(&transmit(id, target), now);
        now += Duration::from_millis(5) + Duration::from_secs_f64(target as f64 / 2e6);
        plan.on_input(&head(id, 204, &[]), now);
        plan.on_input(&Input::End { id: RequestId(id) }, now);
    }
    let rate = plan.pipe().max_rate().unwrap();
    assert!(rate <= 2_000_000, "{rate}");
    assert!(
        plan.batch_target_bytes() <= 2_000_000 && plan.pipe().wait_ceiling_bytes() <= 2_000_000,
        "target {} ceiling {}",
        plan.batch_target_bytes(),
        plan.pipe().wait_ceiling_bytes()
    );
}

/// Request `id` of `bytes` sent and written at `now`, answered 204 `rtt` later (returned).
fn answered(plan: &mut WriterPipe, id: u64, bytes: usize, now: Instant, rtt: Duration) -> Instant {
    plan.on_sent(&transmit(id, bytes), now);
    plan.on_written(RequestId(id), now);
    let at = now + rtt;
    plan.on_input(&head(id, 204, &[]), at);
    plan.on_input(&Input::End { id: RequestId(id) }, at);
    at
}

/// One at a time on a long link a batch that waits may take up to the user's
/// `max_batch_bytes` (32 MiB by default); pipelined, or one at a time on a short round trip,
/// the plan keeps batches within 8 MiB (or the user's lower ceiling).
#[test]
fn batch_ceilings_follow_the_depth_and_the_round_trip() {
    let t0 = Instant::now();
    let mut one = WriterPipe::new(&config(URL, 1, 32 << 20));
    assert_eq!(one.pipe().limits().max_batch_bytes, 32 << 20);
    one.on_connected(Duration::from_millis(20), t0);
    assert_eq!(
        one.pipe().wait_ceiling_bytes(),
        64 << 20,
        "max_buffered_bytes"
    );
    assert_eq!(
        one.pipe().leave_ceiling_bytes(),
        Some(1 << 20),
        "the target, probing"
    );
    // Two answers 20 ms after their bodies were written: long; a batch may take 32 MiB.
    let mut now = t0;
    for id in 1..=2u64 {
        now = answered(&mut one, id, 1 << 20, now, Duration::from_millis(20));
    }
    assert_eq!(one.pipe().wait_ceiling_bytes(), 32 << 20);
    assert_eq!(one.pipe().leave_ceiling_bytes(), Some(32 << 20));
    // Two answers 200 µs after their bodies were written: a short link.
    let mut near = WriterPipe::new(&config(URL, 1, 32 << 20));
    let mut now = t0;
    for id in 1..=2u64 {
        now = answered(&mut near, id, 1 << 20, now, Duration::from_micros(200));
    }
    assert_eq!(near.pipe().wait_ceiling_bytes(), 1 << 20, "the target");
    assert_eq!(
        near.pipe().leave_ceiling_bytes(),
        Some(BUDGET_MAX_BATCH_BYTES)
    );
    let mut four = WriterPipe::new(&config(URL, 4, 32 << 20));
    four.on_connected(Duration::from_millis(20), t0);
    assert_eq!(four.pipe().wait_ceiling_bytes(), BUDGET_MAX_BATCH_BYTES);
    // A fast link with a round trip just under LONG_ROUND_TRIP (2 GB/s, 4 ms: a budget of
    // about 16 MiB): the budget's rule never passes 8 MiB, pipelined or one at a time.
    for depth in [1, 4] {
        let mut plan = WriterPipe::new(&config(URL, depth, 32 << 20));
        let mut now = t0;
        plan.on_connected(Duration::from_millis(4), now);
        for id in 1..=50u64 {
            now = answered(&mut plan, id, 8 << 20, now, Duration::from_millis(4));
        }
        assert!(plan.pipe().budget_bytes() > 12 << 20, "depth {depth}");
        let target = plan.batch_target_bytes();
        if depth == 1 {
            assert_eq!(target, BUDGET_MAX_BATCH_BYTES);
        } else {
            assert!(target < BUDGET_MAX_BATCH_BYTES, "{target}");
        }
        assert_eq!(
            plan.pipe().wait_ceiling_bytes(),
            BUDGET_MAX_BATCH_BYTES,
            "depth {depth}"
        );
    }
    let low = WriterPipe::new(&config(URL, 4, 2 << 20));
    assert_eq!(low.pipe().wait_ceiling_bytes(), 1 << 20);
    assert_eq!(
        ProducerConfig::new(URL, "p1").max_batch_bytes,
        32 << 20,
        "the default"
    );
}

/// `feed` hands the producer the sizes the answer's measurement set before the producer sees
/// the answer: the batch that waited leaves cut at the new ceiling, not at the old one.
#[test]
fn feed_applies_the_new_ceiling_before_the_waiting_batch_leaves() {
    let t0 = Instant::now();
    let cfg = ProducerConfig {
        linger: Duration::from_secs(1),
        ..config(URL, 1, 32 << 20)
    };
    let mut plan = WriterPipe::new(&cfg);
    let mut producer = Producer::new(cfg, t0).unwrap();
    plan.apply(&mut producer);
    producer
        .append(Bytes::from(vec![1u8; 1 << 20]), t0)
        .unwrap();
    let first = producer.poll_transmit(t0).unwrap();
    plan.on_sent(&first, t0);
    plan.on_written(first.id, t0);
    // While the first batch is in flight, 24 MiB arrive: they wait, within 32 MiB.
    for _ in 0..24 {
        producer
            .append(Bytes::from(vec![2u8; 1 << 20]), t0)
            .unwrap();
    }
    assert!(producer.poll_transmit(t0).is_none());
    // The answer comes after 4 s: about 260 KB/s, so a second of it is less than the
    // 1 MiB target, and the batch that leaves is cut there.
    let t1 = t0 + Duration::from_secs(4);
    let ok = head(
        first.id.0,
        200,
        &[("stream-next-offset", "0000000000000001_0000000000000000")],
    );
    plan.feed(&mut producer, ok, t1);
    plan.feed(&mut producer, Input::End { id: first.id }, t1);
    let second = producer.poll_transmit(t1).unwrap();
    assert_eq!(second.request.body().len(), 1 << 20);
}

/// A round trip is measured from the request's last byte written (a large body takes its own
/// time to leave), and the dedicated connection is opened as deep as `max_in_flight`.
#[test]
fn the_round_trip_runs_from_the_last_byte_written() {
    let t0 = Instant::now();
    let mut plan = WriterPipe::new(&config(URL, 3, 1 << 20));
    assert_eq!(plan.carrier_depth(), 3);
    plan.on_sent(&transmit(1, 100), t0);
    plan.on_written(RequestId(1), t0 + Duration::from_millis(30));
    let at = t0 + Duration::from_millis(40);
    plan.on_input(&head(1, 204, &[]), at);
    plan.on_input(&Input::End { id: RequestId(1) }, at);
    assert_eq!(plan.pipe().srtt(), Some(Duration::from_millis(10)));
}
