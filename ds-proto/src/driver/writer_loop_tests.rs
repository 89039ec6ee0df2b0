//! A writer loop's turns, without IO.
#![allow(clippy::disallowed_methods)] // tests take a real `Instant` as the clock's origin

use super::*;
use crate::driver::writer::SnapshotCallback;
use crate::producer::{Producer, ProducerConfig, ProducerEvent};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn core(url: &str, in_flight: usize, now: Instant) -> WriterCore<()> {
    let config = ProducerConfig {
        max_in_flight: in_flight,
        linger: Duration::from_millis(5),
        ..ProducerConfig::new(url, "p1")
    };
    WriterCore::new(Producer::new(config, now).unwrap())
}

/// A dedicated connection with nothing waiting.
fn link() -> PipelinedLink {
    PipelinedLink::new(4)
}

fn answer(id: RequestId, status: u16, offset: &str) -> [Input; 2] {
    let parts = http::Response::builder()
        .status(status)
        .header(crate::headers::STREAM_NEXT_OFFSET, offset)
        .body(())
        .unwrap()
        .into_parts()
        .0;
    [Input::Head { id, parts }, Input::End { id }]
}

#[test]
fn the_plan_sizes_apply_before_the_first_turn() {
    let now = Instant::now();
    let mut core = core("http://h/v1/stream/s", 1, now);
    let mut wl = WriterLoop::new(&mut core, false);
    // Appends made before the loop first runs are cut at the plan's target (1 MiB), not at
    // `max_batch_bytes`.
    for _ in 0..5 {
        core.append(Bytes::from(vec![b'x'; 1 << 20]), false, now)
            .unwrap();
    }
    let carry = wl.take(&mut core, &mut link(), now);
    let sizes: Vec<usize> = carry.piped.iter().map(|t| t.request.body().len()).collect();
    assert_eq!(sizes, vec![1 << 20], "one at a time, cut at the target");
}

#[test]
fn requests_go_on_the_carrier_the_plan_names() {
    let now = Instant::now();
    for (url, tls, piped) in [
        ("http://h/v1/stream/s", false, true),
        ("https://h/v1/stream/s", false, false),
        ("https://h/v1/stream/s", true, true),
    ] {
        let mut core = core(url, 4, now);
        let mut wl = WriterLoop::new(&mut core, tls);
        core.append(Bytes::from_static(b"a"), false, now).unwrap();
        core.flush(now);
        let carry = wl.take(&mut core, &mut link(), now);
        assert_eq!(
            (carry.piped.len(), carry.pooled.len()),
            if piped { (1, 0) } else { (0, 1) },
            "{url}, tls {tls}"
        );
        assert!(carry.cancels.is_empty() && !carry.is_empty());
        assert!(
            wl.take(&mut core, &mut link(), now).is_empty(),
            "nothing more to send"
        );
        assert_eq!(wl.plan().carrier() == Carrier::Pooled, !piped);
    }
}

#[test]
fn a_snapshot_holding_the_batch_is_persisted_before_it_leaves() {
    let now = Instant::now();
    let mut core = core("http://h/v1/stream/s", 1, now);
    let seen: Arc<Mutex<Vec<usize>>> = Arc::default();
    let record = seen.clone();
    let cb: SnapshotCallback = Arc::new(move |s| {
        record.lock().unwrap().push(s.unresolved_appends().len());
    });
    core.set_on_snapshot(cb);
    let mut wl = WriterLoop::new(&mut core, false);
    core.append(Bytes::from_static(b"a"), false, now).unwrap();
    core.flush(now);
    let carry = wl.take(&mut core, &mut link(), now);
    assert_eq!(carry.piped.len(), 1);
    assert_eq!(
        seen.lock().unwrap().last(),
        Some(&1),
        "the last snapshot before the send holds the append"
    );
}

#[test]
fn pushed_inputs_are_fed_at_the_next_turn_and_counted_by_the_plan() {
    let now = Instant::now();
    let mut core = core("http://h/v1/stream/s", 1, now);
    let mut wl = WriterLoop::new(&mut core, false);
    core.append(Bytes::from_static(b"a"), false, now).unwrap();
    core.flush(now);
    let t = wl.take(&mut core, &mut link(), now).piped.pop().unwrap();
    assert_eq!(wl.plan().pipe().in_flight_bytes(), 1);
    for input in answer(t.id, 204, "0000000000000001") {
        wl.push(input);
    }
    assert!(wl.has_inputs());
    assert!(wl.take(&mut core, &mut link(), now).is_empty());
    assert!(!wl.has_inputs());
    assert_eq!(
        wl.plan().pipe().in_flight_bytes(),
        0,
        "the plan saw the answer"
    );
    let mut acked = false;
    while let Some(e) = core.producer_mut().poll_event() {
        acked |= matches!(e, ProducerEvent::Acked { .. });
    }
    assert!(acked, "the producer saw the answer");
}

#[test]
fn the_deadline_is_the_earlier_of_the_producer_and_the_link() {
    let now = Instant::now();
    let mut core = core("http://h/v1/stream/s", 1, now);
    let wl = WriterLoop::new(&mut core, false);
    let link = now + Duration::from_millis(1);
    assert_eq!(wl.deadline(&core, None), None);
    assert_eq!(wl.deadline(&core, Some(link)), Some(link));
    core.append(Bytes::from_static(b"a"), false, now).unwrap();
    let linger = now + Duration::from_millis(5);
    assert_eq!(wl.deadline(&core, None), Some(linger));
    assert_eq!(wl.deadline(&core, Some(link)), Some(link));
    let late = now + Duration::from_secs(1);
    assert_eq!(wl.deadline(&core, Some(late)), Some(linger));
}

#[test]
fn a_timeout_feeds_the_inputs_then_fires_the_producer_timers() {
    let now = Instant::now();
    let mut core = core("http://h/v1/stream/s", 1, now);
    let mut wl = WriterLoop::new(&mut core, false);
    core.append(Bytes::from_static(b"a"), false, now).unwrap();
    assert!(
        wl.take(&mut core, &mut link(), now).is_empty(),
        "the batch lingers"
    );
    let later = now + Duration::from_millis(5);
    wl.on_timeout(&mut core, later);
    let t = wl
        .take(&mut core, &mut link(), later)
        .piped
        .pop()
        .expect("linger expired");
    for input in answer(t.id, 204, "0000000000000001") {
        wl.push(input);
    }
    wl.on_timeout(&mut core, later + Duration::from_millis(1));
    assert!(!wl.has_inputs());
    assert!(
        std::iter::from_fn(|| core.producer_mut().poll_event())
            .any(|e| matches!(e, ProducerEvent::Acked { .. })),
        "the answer was fed"
    );
}

#[test]
fn requests_waiting_on_the_dedicated_connection_go_pooled_once_the_plan_falls_back() {
    let now = Instant::now();
    let mut core = core("http://h/v1/stream/s", 4, now);
    let mut wl = WriterLoop::new(&mut core, false);
    let mut link = link();
    core.append(Bytes::from_static(b"a"), false, now).unwrap();
    core.flush(now);
    let piped = wl.take(&mut core, &mut link, now).piped;
    assert_eq!(piped.len(), 1);
    for t in piped {
        link.submit(t);
    }
    assert!(
        wl.take(&mut core, &mut link, now).is_empty(),
        "pipelining: it waits for the connection"
    );
    wl.parts().0.on_pipelining_refused();
    let carry = wl.take(&mut core, &mut link, now);
    assert_eq!(carry.pooled.len(), 1, "taken back for a pooled exchange");
    assert!(carry.piped.is_empty() && carry.cancels.is_empty());
    assert!(wl.take(&mut core, &mut link, now).is_empty(), "once");
}
