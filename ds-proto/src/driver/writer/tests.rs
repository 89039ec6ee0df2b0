use super::*;
use crate::exchange::{Input, Transmit};
use crate::ops::CallOptions;
use crate::producer::ProducerConfig;
use crate::ErrorKind;
use std::sync::Mutex;
use std::time::Duration;

const URL: &str = "http://h/v1/stream/s";

#[allow(clippy::disallowed_methods)]
fn t0() -> Instant {
    Instant::now()
}

fn core(now: Instant) -> WriterCore<u64> {
    let mut config = ProducerConfig::new(URL, "p");
    config.linger = Duration::ZERO;
    WriterCore::new(Producer::new(config, now).unwrap())
}

fn transmits(core: &mut WriterCore<u64>, now: Instant) -> Vec<Transmit> {
    let mut out = Vec::new();
    let most = core.producer_mut().config().max_in_flight;
    while let Some(t) = core.producer_mut().poll_transmit(now) {
        out.push(t);
        // A producer never has more than max_in_flight requests out: more is a bug, and a
        // test that fails on it does not loop forever.
        assert!(
            out.len() <= most,
            "more than max_in_flight requests at once"
        );
    }
    out
}

fn answer(core: &mut WriterCore<u64>, t: &Transmit, status: u16, offset: &str, now: Instant) {
    let mut b = http::Response::builder().status(status);
    if !offset.is_empty() {
        b = b.header("stream-next-offset", offset);
    }
    if t.request.headers().contains_key("stream-closed") && status < 300 {
        b = b.header("stream-closed", "true");
    }
    let parts = b.body(()).unwrap().into_parts().0;
    let p = core.producer_mut();
    p.handle_input(Input::Head { id: t.id, parts }, now);
    p.handle_input(Input::End { id: t.id }, now);
}

fn deliver(core: &mut WriterCore<u64>, seen: &mut Vec<(u64, WriteOutcome)>) -> bool {
    core.deliver_events(|_, _| {}, |w, o| seen.push((w, o)))
}

#[test]
fn a_flush_ends_when_every_append_before_it_resolved_and_waiters_hear_of_theirs() {
    let now = t0();
    let mut c = core(now);
    let (a, _) = c.append(Bytes::from_static(b"a"), false, now).unwrap();
    c.track(a, 7);
    let wait = c.flush(now);
    assert_eq!(c.flushed(wait), None);
    let sent = transmits(&mut c, now);
    assert_eq!(sent.len(), 1);
    let mut seen = Vec::new();
    assert!(!deliver(&mut c, &mut seen));
    answer(&mut c, &sent[0], 200, "0_1", now);
    assert!(deliver(&mut c, &mut seen));
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, 7);
    assert!(matches!(
        seen[0].1,
        WriteOutcome::Acked {
            duplicate: false,
            ..
        }
    ));
    assert_eq!(c.flushed(wait), Some(Ok(())));
    assert_eq!(c.offset().unwrap().as_str(), "0_1");
}

#[test]
fn failures_are_reported_once_with_their_payloads_and_to_the_callback() {
    let now = t0();
    let mut c = core(now);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let sink = calls.clone();
    c.set_on_error(Arc::new(move |f: &WriteFailure| {
        sink.lock().unwrap().push(f.items.clone())
    }));
    c.append(Bytes::from_static(b"lost"), false, now).unwrap();
    let wait = c.flush(now);
    let sent = transmits(&mut c, now);
    answer(&mut c, &sent[0], 404, "", now);
    deliver(&mut c, &mut Vec::new());
    let err = c.flushed(wait).unwrap().unwrap_err();
    assert_eq!(err.failures.len(), 1);
    assert_eq!(err.failures[0].items, vec![Bytes::from_static(b"lost")]);
    assert_eq!(err.failed_appends(), 1);
    assert!(matches!(
        err.reason(),
        Some(FailureReason::NotStored(e)) if e.kind == ErrorKind::NotFound
    ));
    assert_eq!(err.close_failure, None);
    assert_eq!(
        *calls.lock().unwrap(),
        vec![vec![Bytes::from_static(b"lost")]]
    );
    // Reported once: the next flush has nothing to say.
    let again = c.flush(now);
    assert_eq!(c.flushed(again), Some(Ok(())));
}

#[test]
fn a_failure_counts_every_append_of_its_batch() {
    let now = t0();
    let mut c = core(now);
    c.append(Bytes::from_static(b"one"), false, now).unwrap();
    c.append(Bytes::from_static(b"two"), false, now).unwrap();
    let wait = c.flush(now);
    let sent = transmits(&mut c, now);
    assert_eq!(sent.len(), 1, "one batch");
    answer(&mut c, &sent[0], 404, "", now);
    deliver(&mut c, &mut Vec::new());
    let err = c.flushed(wait).unwrap().unwrap_err();
    assert_eq!(err.failed_appends(), 2);
    assert!(format!("{c:?}").starts_with("WriterCore"));
}

#[test]
fn a_close_after_failed_appends_reports_them() {
    // Auto-claim goes on after a batch whose outcome it cannot know (fenced after a lost
    // answer): the close then succeeds, and still reports that batch.
    let now = t0();
    let mut config = ProducerConfig::new(URL, "p");
    config.linger = Duration::ZERO;
    config.auto_claim = true;
    let mut c = WriterCore::new(Producer::new(config, now).unwrap());
    c.append(Bytes::from_static(b"a"), false, now).unwrap();
    let wait = c.close(true, now).unwrap();
    let sent = transmits(&mut c, now);
    assert_eq!(sent.len(), 1);
    let error = crate::TransportError::new(crate::TransportErrorKind::ConnectionReset, "reset");
    let p = c.producer_mut();
    p.handle_input(
        Input::Failed {
            id: sent[0].id,
            error,
        },
        now,
    );
    let later = p.poll_timeout().expect("a retry timer");
    p.handle_timeout(later);
    let again = transmits(&mut c, later);
    assert_eq!(again.len(), 1);
    let fenced = crate::ops::test_util::parts(403, &[("producer-epoch", "1")]);
    let p = c.producer_mut();
    p.handle_input(
        Input::Head {
            id: again[0].id,
            parts: fenced,
        },
        later,
    );
    p.handle_input(Input::End { id: again[0].id }, later);
    loop {
        let sent = transmits(&mut c, later);
        if sent.is_empty() {
            break;
        }
        for t in &sent {
            answer(&mut c, t, 200, "0_0", later);
        }
    }
    deliver(&mut c, &mut Vec::new());
    let err = c.closed(wait).unwrap().unwrap_err();
    assert_eq!(err.failed_appends(), 1);
    assert!(matches!(
        err.reason(),
        Some(FailureReason::Indeterminate { .. })
    ));
    assert_eq!(err.close_failure, None, "the close itself went through");
}

#[test]
fn a_close_reports_the_final_offset() {
    let now = t0();
    let mut c = core(now);
    c.append(Bytes::from_static(b"x"), false, now).unwrap();
    let wait = c.close(true, now).unwrap();
    assert_eq!(wait, Wait::Closed);
    assert_eq!(c.closed(wait), None);
    // The data batch, then the closing one once it has an outcome.
    let mut offsets = ["0_1", "0_9"].into_iter();
    loop {
        let sent = transmits(&mut c, now);
        if sent.is_empty() {
            break;
        }
        for t in &sent {
            answer(&mut c, t, 200, offsets.next().unwrap(), now);
        }
    }
    deliver(&mut c, &mut Vec::new());
    let report = c.closed(wait).unwrap().unwrap();
    assert!(report.stream_closed);
    assert_eq!(report.offset.unwrap().as_str(), "0_9");
}

#[test]
fn a_close_without_closing_the_stream_is_a_flush_reporting_the_tail() {
    let now = t0();
    let mut c = core(now);
    c.append(Bytes::from_static(b"x"), false, now).unwrap();
    let wait = c.close(false, now).unwrap();
    let sent = transmits(&mut c, now);
    answer(&mut c, &sent[0], 200, "0_3", now);
    deliver(&mut c, &mut Vec::new());
    let report = c.closed(wait).unwrap().unwrap();
    assert!(!report.stream_closed);
    assert_eq!(report.offset.unwrap().as_str(), "0_3");
}

#[test]
fn a_refused_or_failed_close_is_a_close_failure_not_a_made_up_batch() {
    let now = t0();
    let mut c = core(now);
    let wait = c.close(true, now).unwrap();
    // A second close is refused at once.
    let again = c.close(true, now).unwrap_err();
    assert!(again.failures.is_empty());
    assert!(matches!(
        &again.close_failure,
        Some(FailureReason::NotStored(e)) if matches!(e.kind, ErrorKind::InvalidInput(_))
    ));
    assert!(again.to_string().contains("the close failed"));
    let sent = transmits(&mut c, now);
    answer(&mut c, &sent[0], 404, "", now);
    deliver(&mut c, &mut Vec::new());
    let err = c.closed(wait).unwrap().unwrap_err();
    assert!(err.failures.is_empty());
    assert!(err.close_failure.is_some());
    assert_eq!(err.reason(), err.close_failure.as_ref());
}

#[test]
fn snapshots_are_written_ahead_of_every_batch_and_after_outcomes() {
    let now = t0();
    let mut c = core(now);
    let taken = Arc::new(Mutex::new(Vec::new()));
    let sink = taken.clone();
    c.set_on_snapshot(Arc::new(move |s: &ProducerSnapshot| {
        sink.lock().unwrap().push(s.clone())
    }));
    assert_eq!(taken.lock().unwrap().len(), 1, "handed one at once");
    c.append(Bytes::from_static(b"x"), false, now).unwrap();
    c.flush(now);
    let sent = transmits(&mut c, now);
    deliver(&mut c, &mut Vec::new());
    let before_send = taken.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        before_send.first_unreported(),
        AppendId(0),
        "the batch about to be sent is in the persisted snapshot"
    );
    let n = taken.lock().unwrap().len();
    answer(&mut c, &sent[0], 200, "0_1", now);
    deliver(&mut c, &mut Vec::new());
    assert!(taken.lock().unwrap().len() > n, "persisted after the ack");
}

#[test]
fn an_append_says_when_the_loop_must_look() {
    let now = t0();
    let mut config = ProducerConfig::new(URL, "p");
    config.linger = Duration::from_millis(5);
    let mut c: WriterCore<u64> = WriterCore::new(Producer::new(config, now).unwrap());
    let (_, wake) = c.append(Bytes::from_static(b"x"), false, now).unwrap();
    assert!(wake, "the first append starts the linger timer");
    let (_, wake) = c.append(Bytes::from_static(b"y"), false, now).unwrap();
    assert!(!wake, "the timer already runs");
}

#[test]
fn a_writers_configuration_gets_the_stream_the_seed_and_a_deadline() {
    let settings = ClientSettings {
        request_timeout: Some(Duration::from_secs(9)),
        ..ClientSettings::default()
    };
    let mut config = default_config("http://h/other", "p", Some("text/plain".into()));
    assert_eq!(config.content_type, "text/plain");
    prepare_config(&mut config, URL, &settings, &CallOptions::default(), 42);
    assert_eq!(config.url, URL);
    assert_eq!(config.rng_seed, 42);
    assert_eq!(config.request_deadline, Some(Duration::from_secs(9)));
    let call = CallOptions {
        timeout: Some(Duration::from_millis(7)),
        ..CallOptions::default()
    };
    let mut config = default_config(URL, "p", None);
    assert_eq!(
        config.content_type,
        ProducerConfig::new(URL, "p").content_type
    );
    prepare_config(&mut config, URL, &settings, &call, 1);
    assert_eq!(config.request_deadline, Some(Duration::from_millis(7)));
    config.request_deadline = Some(Duration::from_secs(1));
    prepare_config(&mut config, URL, &settings, &call, 1);
    assert_eq!(
        config.request_deadline,
        Some(Duration::from_secs(1)),
        "a chosen deadline stays"
    );
}

#[test]
fn a_json_payload_that_serde_refuses_is_refused() {
    let ok = json_payload(URL, &serde_json::json!([1])).unwrap();
    assert_eq!(&ok[..], b"[1]");
    let mut map = std::collections::HashMap::new();
    map.insert(vec![1u8], 1);
    let e = json_payload(URL, &map).unwrap_err();
    assert!(
        matches!(e, AppendError::Refused(ref e) if matches!(e.kind, ErrorKind::InvalidInput(_)))
    );
}
