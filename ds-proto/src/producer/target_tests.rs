//! The batch target a writer's pipe plan sets ([`Producer::set_batch_target`]): where the open
//! batch is cut, within the user's `max_batch_bytes`.
#![allow(clippy::disallowed_methods)] // tests take a real `Instant` as the clock's origin

use super::*;
use crate::io::{Input, Transmit};
use bytes::Bytes;
use std::time::{Duration, Instant};

const URL: &str = "http://h/v1/stream/s";

fn producer(max_batch_bytes: usize) -> (Producer, Instant) {
    let now = Instant::now();
    let config = ProducerConfig {
        rng_seed: 7,
        max_batch_bytes,
        max_in_flight: 1,
        max_buffered_bytes: 64 << 20,
        linger: Duration::from_secs(1),
        ..ProducerConfig::new(URL, "p1")
    };
    (Producer::new(config, now).unwrap(), now)
}

fn ok(p: &mut Producer, t: &Transmit, now: Instant) {
    let parts = http::Response::builder()
        .status(200)
        .header("stream-next-offset", "0000000000000001_0000000000000000")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    p.handle_input(Input::Head { id: t.id, parts }, now);
    p.handle_input(Input::End { id: t.id }, now);
}

fn bodies(p: &mut Producer, now: Instant) -> Vec<Transmit> {
    let mut out = Vec::new();
    let limit = p.config().max_in_flight;
    while let Some(t) = p.poll_transmit(now) {
        out.push(t);
        assert!(
            out.len() <= limit,
            "more than max_in_flight ({limit}) requests"
        );
    }
    out
}

#[test]
fn without_a_target_batches_are_cut_at_max_batch_bytes() {
    let (mut p, now) = producer(4000);
    assert_eq!(p.batch_target_bytes(), 4000);
    for _ in 0..10 {
        p.append(Bytes::from(vec![b'x'; 1000]), now).unwrap();
    }
    let sent = bodies(&mut p, now);
    assert_eq!(sent.len(), 1, "the first batch of the epoch goes alone");
    assert_eq!(sent[0].request.body().len(), 4000);
}

#[test]
fn a_target_cuts_batches_earlier_and_a_larger_one_is_capped_by_max_batch_bytes() {
    let (mut p, now) = producer(8000);
    p.set_batch_target(Some(2000));
    assert_eq!(p.batch_target_bytes(), 2000);
    for _ in 0..4 {
        p.append(Bytes::from(vec![b'x'; 1000]), now).unwrap();
    }
    let first = bodies(&mut p, now);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].request.body().len(), 2000);
    ok(&mut p, &first[0], now);
    let second = bodies(&mut p, now);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].request.body().len(), 2000);
    ok(&mut p, &second[0], now);

    // Grown beyond the ceiling: the user's max_batch_bytes still bounds the batch.
    p.set_batch_target(Some(1 << 30));
    assert_eq!(p.batch_target_bytes(), 8000);
    for _ in 0..9 {
        p.append(Bytes::from(vec![b'y'; 1000]), now).unwrap();
    }
    let third = bodies(&mut p, now);
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].request.body().len(), 8000);

    // Back to the default.
    p.set_batch_target(None);
    assert_eq!(p.batch_target_bytes(), 8000);
    p.set_batch_target(Some(0));
    assert_eq!(
        p.batch_target_bytes(),
        1,
        "a zero target is one byte: every append alone"
    );
}

#[test]
fn a_batch_that_must_wait_grows_past_the_target_up_to_max_batch_bytes() {
    let (mut p, now) = producer(8000);
    p.set_batch_target(Some(2000));
    p.append(Bytes::from(vec![b'a'; 2000]), now).unwrap();
    let first = bodies(&mut p, now);
    assert_eq!(first.len(), 1);
    // One batch in flight (max_in_flight 1): the open batch cannot leave, so it keeps what
    // arrives instead of being cut at the target into a queue of small batches.
    for _ in 0..6 {
        p.append(Bytes::from(vec![b'b'; 1000]), now).unwrap();
    }
    assert!(
        bodies(&mut p, now).is_empty(),
        "nothing leaves before the answer"
    );
    ok(&mut p, &first[0], now);
    let second = bodies(&mut p, now);
    assert_eq!(second.len(), 1, "it leaves with the answer, whole");
    assert_eq!(second[0].request.body().len(), 6000);

    // Still bounded by max_batch_bytes while it waits.
    for _ in 0..10 {
        p.append(Bytes::from(vec![b'c'; 1000]), now).unwrap();
    }
    ok(&mut p, &second[0], now);
    let third = bodies(&mut p, now);
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].request.body().len(), 8000);
    ok(&mut p, &third[0], now);
    let fourth = bodies(&mut p, now);
    assert_eq!(fourth[0].request.body().len(), 2000);
    ok(&mut p, &fourth[0], now);

    // With room, the open batch is cut at the target again.
    for _ in 0..3 {
        p.append(Bytes::from(vec![b'd'; 1000]), now).unwrap();
    }
    let fifth = bodies(&mut p, now);
    assert_eq!(fifth.len(), 1);
    assert_eq!(fifth[0].request.body().len(), 2000);
}

#[test]
fn a_waiting_batch_stops_at_the_wait_ceiling() {
    let (mut p, now) = producer(8000);
    p.set_batch_target(Some(2000));
    p.set_wait_ceiling(Some(3000));
    assert_eq!(p.wait_ceiling_bytes(), 3000);
    p.append(Bytes::from(vec![b'a'; 2000]), now).unwrap();
    let first = bodies(&mut p, now);
    for _ in 0..6 {
        p.append(Bytes::from(vec![b'b'; 1000]), now).unwrap();
    }
    ok(&mut p, &first[0], now);
    let second = bodies(&mut p, now);
    assert_eq!(second.len(), 1);
    assert_eq!(
        second[0].request.body().len(),
        3000,
        "cut at the ceiling while waiting"
    );
    ok(&mut p, &second[0], now);
    let third = bodies(&mut p, now);
    assert_eq!(third[0].request.body().len(), 3000);

    // The ceiling is never below the target, nor above max_batch_bytes.
    p.set_wait_ceiling(Some(10));
    assert_eq!(p.wait_ceiling_bytes(), 2000);
    p.set_wait_ceiling(Some(1 << 30));
    assert_eq!(p.wait_ceiling_bytes(), 8000);
    p.set_wait_ceiling(None);
    assert_eq!(p.wait_ceiling_bytes(), 8000);
}

#[test]
fn an_append_larger_than_the_target_goes_alone_whole() {
    let (mut p, now) = producer(1 << 20);
    p.set_batch_target(Some(100));
    p.append(Bytes::from(vec![b'a'; 10]), now).unwrap();
    p.append(Bytes::from(vec![b'b'; 500]), now).unwrap();
    let sent = bodies(&mut p, now);
    assert_eq!(sent.len(), 1);
    assert_eq!(&sent[0].request.body()[..], &[b'a'; 10][..]);
    ok(&mut p, &sent[0], now);
    p.flush(now);
    let next = bodies(&mut p, now);
    assert_eq!(next.len(), 1);
    assert_eq!(
        next[0].request.body().len(),
        500,
        "never split, never dropped"
    );
}

#[test]
fn batches_that_wait_one_behind_the_other_double_up_to_the_ramp_top() {
    let (mut p, now) = producer(64_000);
    p.set_batch_target(Some(1000));
    p.set_wait_ceiling(Some(1000));
    p.set_wait_ramp(Some(8000));
    assert_eq!(p.wait_ceiling_bytes(), 1000, "no step yet: the ceiling");
    p.append(Bytes::from(vec![b'a'; 1000]), now).unwrap();
    let first = bodies(&mut p, now);
    assert_eq!(first.len(), 1);
    // A burst while the first batch is unanswered: 30 appends of 1000 bytes.
    for _ in 0..30 {
        p.append(Bytes::from(vec![b'b'; 1000]), now).unwrap();
    }
    let mut sizes = vec![first[0].request.body().len()];
    let mut last = first;
    loop {
        ok(&mut p, &last[0], now);
        p.flush(now);
        last = bodies(&mut p, now);
        if last.is_empty() {
            break;
        }
        assert_eq!(last.len(), 1, "one in flight");
        sizes.push(last[0].request.body().len());
    }
    assert_eq!(
        sizes,
        vec![1000, 1000, 2000, 4000, 8000, 8000, 7000],
        "each batch that waited behind another doubles the ceiling, up to the top; \
         nothing is lost"
    );

    // Ending the ramp forgets its steps; without a ramp the ceiling is the ceiling.
    p.set_wait_ramp(None);
    assert_eq!(p.wait_ceiling_bytes(), 1000);
    p.set_wait_ramp(Some(8000));
    assert_eq!(p.wait_ceiling_bytes(), 1000);
    // The top is never above max_batch_bytes.
    let (mut small, now) = producer(3000);
    small.set_batch_target(Some(1000));
    small.set_wait_ceiling(Some(1000));
    small.set_wait_ramp(Some(1 << 30));
    small.append(Bytes::from(vec![b'a'; 1000]), now).unwrap();
    let _in_flight = bodies(&mut small, now);
    for _ in 0..12 {
        small.append(Bytes::from(vec![b'b'; 1000]), now).unwrap();
    }
    assert_eq!(small.wait_ceiling_bytes(), 3000);
}

mod sizing_properties {
    //! Whatever a writer's plan does with the batch target, the wait ceiling and the ramp,
    //! the producer sends every append once, in order, and no batch over `max_batch_bytes`.
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    const MAX: usize = 8000;

    #[derive(Debug, Clone)]
    enum Op {
        Append(usize),
        Answer,
        Target(Option<usize>),
        Ceiling(Option<usize>),
        Ramp(Option<usize>),
        Leave(Option<usize>),
        Flush,
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (1usize..3000).prop_map(Op::Append),
            3 => Just(Op::Answer),
            1 => proptest::option::of(1usize..12_000).prop_map(Op::Target),
            1 => proptest::option::of(1usize..20_000).prop_map(Op::Ceiling),
            1 => proptest::option::of(1usize..40_000).prop_map(Op::Ramp),
            1 => proptest::option::of(1usize..12_000).prop_map(Op::Leave),
            1 => Just(Op::Flush),
            1 => (0u64..2000).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #[test]
        fn every_append_once_in_order_and_no_batch_over_the_limit(
            in_flight in 1usize..5,
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let t0 = Instant::now();
            let config = ProducerConfig {
                rng_seed: 7,
                max_batch_bytes: MAX,
                max_in_flight: in_flight,
                max_buffered_bytes: 1 << 30,
                linger: Duration::from_millis(5),
                ..ProducerConfig::new(URL, "p1")
            };
            let mut p = Producer::new(config, t0).unwrap();
            let mut now = t0;
            let mut appended: Vec<u8> = Vec::new();
            let mut sent: Vec<u8> = Vec::new();
            let mut outstanding: VecDeque<Transmit> = VecDeque::new();
            let mut n = 0u8;
            let take = |p: &mut Producer, now, sent: &mut Vec<u8>, out: &mut VecDeque<Transmit>| {
                let mut burst = 0;
                while let Some(t) = p.poll_transmit(now) {
                    burst += 1;
                    assert!(burst <= p.config().max_in_flight, "more than max_in_flight requests");
                    let body = t.request.body();
                    assert!(body.len() <= MAX, "a batch of {} bytes", body.len());
                    sent.extend_from_slice(body);
                    out.push_back(t);
                }
            };
            for op in ops {
                match op {
                    Op::Append(len) => {
                        n = n.wrapping_add(1);
                        let data = vec![n; len];
                        appended.extend_from_slice(&data);
                        p.append(Bytes::from(data), now).unwrap();
                    }
                    Op::Answer => {
                        if let Some(t) = outstanding.pop_front() {
                            ok(&mut p, &t, now);
                        }
                    }
                    Op::Target(t) => p.set_batch_target(t),
                    Op::Ceiling(c) => p.set_wait_ceiling(c),
                    Op::Ramp(r) => p.set_wait_ramp(r),
                    Op::Leave(c) => p.set_leave_ceiling(c),
                    Op::Flush => p.flush(now),
                    Op::Advance(ms) => {
                        now += Duration::from_millis(ms);
                        p.handle_timeout(now);
                    }
                }
                take(&mut p, now, &mut sent, &mut outstanding);
            }
            // The end: flush and answer until nothing is left.
            p.flush(now);
            for _ in 0..10_000 {
                take(&mut p, now, &mut sent, &mut outstanding);
                match outstanding.pop_front() {
                    Some(t) => ok(&mut p, &t, now),
                    None => break,
                }
            }
            prop_assert!(outstanding.is_empty());
            prop_assert_eq!(sent.len(), appended.len(), "every byte sent once");
            prop_assert!(sent == appended, "in append order");
        }
    }
}

/// A batch that grew while it waited, then saw its leave ceiling fall (the plan measured a
/// slow link as the answer came in): it leaves cut at the new ceiling, and the appends past
/// it leave next, in order, each within the ceiling; every append is acknowledged once.
#[test]
fn a_waiting_batch_whose_ceiling_fell_leaves_cut_at_it() {
    let (mut p, now) = producer(64_000);
    p.set_batch_target(Some(2000));
    p.set_wait_ceiling(Some(64_000));
    p.set_leave_ceiling(Some(64_000));
    p.append(Bytes::from(vec![b'a'; 2000]), now).unwrap();
    let first = bodies(&mut p, now);
    for i in 0..20u8 {
        p.append(Bytes::from(vec![b'b' + i; 1000]), now).unwrap();
    }
    assert!(bodies(&mut p, now).is_empty(), "it waits for the answer");
    p.set_wait_ceiling(Some(7500));
    p.set_leave_ceiling(Some(7500));
    ok(&mut p, &first[0], now);
    let mut sent = Vec::new();
    loop {
        let out = bodies(&mut p, now);
        let Some(t) = out.first() else { break };
        sent.push(t.request.body().clone());
        ok(&mut p, t, now);
    }
    let sizes: Vec<usize> = sent.iter().map(Bytes::len).collect();
    assert_eq!(
        sizes,
        vec![7000, 7000, 6000],
        "cut at 7 appends of 1000 (7500)"
    );
    let joined: Vec<u8> = sent.iter().flat_map(|b| b.iter().copied()).collect();
    let expected: Vec<u8> = (0..20u8).flat_map(|i| vec![b'b' + i; 1000]).collect();
    assert_eq!(joined, expected, "every append once, in order");
    let acked: u64 = std::iter::from_fn(|| p.poll_event())
        .filter_map(|e| match e {
            ProducerEvent::Acked { first, last, .. } => Some(last.0 - first.0 + 1),
            _ => None,
        })
        .sum();
    assert_eq!(acked, 21);
    assert!(p.is_idle());
}

/// Without a leave ceiling (the default, and a writer's pipelined plan), a batch that grew
/// while it waited leaves whole, in one request, even when the wait ceiling fell meanwhile;
/// with one, a batch of exactly the leave ceiling leaves whole too.
#[test]
fn a_waiting_batch_leaves_whole_within_its_leave_ceiling() {
    for leave in [None, Some(20_000)] {
        let (mut p, now) = producer(64_000);
        p.set_batch_target(Some(2000));
        p.set_wait_ceiling(Some(64_000));
        p.set_leave_ceiling(leave);
        p.append(Bytes::from(vec![b'a'; 2000]), now).unwrap();
        let first = bodies(&mut p, now);
        for i in 0..20u8 {
            p.append(Bytes::from(vec![b'b' + i; 1000]), now).unwrap();
        }
        p.set_wait_ceiling(Some(7500));
        ok(&mut p, &first[0], now);
        let out = bodies(&mut p, now);
        assert_eq!(out.len(), 1, "leave {leave:?}");
        assert_eq!(out[0].request.body().len(), 20_000, "leave {leave:?}");
    }
}

/// The appends left open after a cut are still bounded when the next append comes: they are
/// cut again, and no batch exceeds `max_batch_bytes` (found by the sizing property below:
/// the rest of a cut, with the new append, once went out at 10,400 bytes of 8,000).
#[test]
fn what_a_cut_leaves_open_is_bounded_with_the_next_append() {
    let (mut p, now) = producer(8000);
    p.set_batch_target(Some(500));
    p.set_wait_ceiling(Some(8000));
    p.append(Bytes::from(vec![b'a'; 500]), now).unwrap();
    let mut out = bodies(&mut p, now);
    for len in [500, 2900, 2900, 1600] {
        p.append(Bytes::from(vec![b'b'; len]), now).unwrap();
    }
    p.set_wait_ceiling(Some(1000));
    p.set_leave_ceiling(Some(1000));
    p.append(Bytes::from(vec![b'c'; 3000]), now).unwrap();
    let mut sizes = Vec::new();
    while let Some(t) = out.pop() {
        sizes.push(t.request.body().len());
        ok(&mut p, &t, now);
        p.flush(now);
        out = bodies(&mut p, now);
    }
    assert_eq!(
        sizes.iter().sum::<usize>(),
        500 + 500 + 2900 + 2900 + 1600 + 3000
    );
    assert!(sizes.iter().all(|&s| s <= 8000), "{sizes:?}");
    assert!(
        sizes[1..].iter().all(|&s| s <= 3000),
        "cut at the ceiling or one append: {sizes:?}"
    );
}

/// Under a leave ceiling, the batch that waits for the answer in flight may hold more than
/// `max_batch_bytes` (nothing is sealed while it waits), and leaves in pieces of at most the
/// leave ceiling, in order: cut one by one as they leave (after a flush too, at the ceiling
/// of the moment they leave), or all at once at `max_batch_bytes` by a close (the last piece
/// carries the close).
#[test]
fn under_a_leave_ceiling_a_waiting_batch_grows_past_max_and_leaves_in_pieces() {
    for end in ["answers", "flush", "close"] {
        let (mut p, now) = producer(8000);
        p.set_batch_target(Some(1000));
        p.set_wait_ceiling(Some(1 << 20));
        p.set_leave_ceiling(Some(if end == "flush" { 12_000 } else { 6000 }));
        p.append(Bytes::from(vec![b'a'; 1000]), now).unwrap();
        let first = bodies(&mut p, now);
        for i in 0..30u8 {
            p.append(Bytes::from(vec![b'b' + i; 1000]), now).unwrap();
        }
        assert_eq!(p.poll_event(), None);
        assert!(bodies(&mut p, now).is_empty(), "{end}: it waits, unsealed");
        match end {
            "flush" => p.flush(now),
            "close" => p.close(now).unwrap(),
            _ => {}
        }
        // A flush does not seal: the ceiling the answer brings still applies.
        p.set_leave_ceiling(Some(6000));
        ok(&mut p, &first[0], now);
        let mut sent = Vec::new();
        let mut closed = Vec::new();
        loop {
            let out = bodies(&mut p, now);
            let Some(t) = out.first() else { break };
            sent.push(t.request.body().clone());
            closed.push(t.request.headers().contains_key("stream-closed"));
            ok(&mut p, t, now);
        }
        let sizes: Vec<usize> = sent.iter().map(Bytes::len).collect();
        let expected = if end == "close" {
            vec![8000, 8000, 8000, 6000]
        } else {
            vec![6000; 5]
        };
        assert_eq!(sizes, expected, "{end}");
        let n = expected.len();
        let closes: Vec<bool> = (0..n).map(|i| end == "close" && i == n - 1).collect();
        assert_eq!(closed, closes, "{end}");
        let joined: Vec<u8> = sent.iter().flat_map(|b| b.iter().copied()).collect();
        let expected: Vec<u8> = (0..30u8).flat_map(|i| vec![b'b' + i; 1000]).collect();
        assert_eq!(joined, expected, "{end}: every append once, in order");
    }
}

/// Without a leave ceiling the open batch never grows past `max_batch_bytes`, whatever the
/// wait ceiling says.
#[test]
fn without_a_leave_ceiling_the_wait_ceiling_stops_at_max() {
    let (mut p, _) = producer(8000);
    p.set_batch_target(Some(1000));
    p.set_wait_ceiling(Some(1 << 20));
    assert_eq!(p.wait_ceiling_bytes(), 8000);
    p.set_leave_ceiling(Some(6000));
    assert_eq!(p.wait_ceiling_bytes(), 1 << 20);
}
