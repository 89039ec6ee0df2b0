//! The pipelined link, without IO: the bytes a server would send are fed by hand.
#![allow(clippy::disallowed_methods)] // tests take a real `Instant` as the clock's origin

use super::*;
use crate::driver::writer_pipe::Carrier;
use crate::producer::ProducerConfig;
use bytes::Bytes;
use std::time::Duration;

const URL: &str = "http://h/v1/stream/s";

fn plan(depth: usize) -> WriterPipe {
    WriterPipe::new(&ProducerConfig {
        max_in_flight: depth,
        ..ProducerConfig::new(URL, "p1")
    })
}

fn transmit(id: u64, deadline: Option<Instant>) -> Transmit {
    Transmit {
        id: RequestId(id),
        request: http::Request::post(URL)
            .body(Bytes::from(format!("batch {id}")))
            .unwrap(),
        deadline,
    }
}

const OK: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";

/// Runs the steps a driver would until the link is idle, connecting when asked (`connect`
/// answers) and writing successfully; returns the requests written, as their first lines.
fn pump(link: &mut PipelinedLink, plan: &mut WriterPipe, connect: bool) -> Vec<String> {
    let mut written = Vec::new();
    loop {
        match link.next_step(plan) {
            LinkStep::Connect { uri } => {
                assert_eq!(uri, URL);
                if connect {
                    let now = Instant::now();
                    link.on_connected(plan, now, now, |_| Ok(()));
                } else {
                    link.on_connect_failed(TransportError::new(
                        TransportErrorKind::Connect,
                        "refused",
                    ));
                }
            }
            LinkStep::Write { mut head, body } => {
                head.extend_from_slice(&body);
                let text = String::from_utf8_lossy(&head).to_string();
                written.push(text.lines().last().unwrap_or_default().to_string());
                link.on_written(plan, Instant::now());
            }
            LinkStep::Idle => return written,
        }
    }
}

fn inputs(link: &mut PipelinedLink) -> Vec<String> {
    link.take_inputs()
        .map(|i| match i {
            Input::Head { id, parts } => format!("head {} {}", id.0, parts.status.as_u16()),
            Input::Body { id, .. } => format!("body {}", id.0),
            Input::End { id } => format!("end {}", id.0),
            Input::Failed { id, error } => format!("failed {} {:?}", id.0, error.kind),
        })
        .collect()
}

#[test]
fn writes_in_order_up_to_the_depth_and_more_as_answers_free_room() {
    let mut plan = plan(2);
    let mut link = PipelinedLink::new(2);
    for id in 1..=3 {
        link.submit(transmit(id, None));
    }
    assert_eq!(
        pump(&mut link, &mut plan, true),
        ["batch 1", "batch 2"],
        "two in flight, the third waits"
    );
    let gen = link.connection().unwrap();
    link.on_read(gen, Some(OK), &mut plan);
    assert_eq!(inputs(&mut link), ["head 1 204", "end 1"]);
    assert_eq!(pump(&mut link, &mut plan, true), ["batch 3"]);
    link.on_read(gen, Some(&[OK, OK].concat()), &mut plan);
    assert_eq!(
        inputs(&mut link),
        ["head 2 204", "end 2", "head 3 204", "end 3"]
    );
    assert_eq!(
        link.connection(),
        Some(gen),
        "one connection carried all three"
    );
}

#[test]
fn a_large_body_is_handed_over_as_it_is_after_its_head_and_a_small_one_with_it() {
    let mut plan = plan(2);
    let mut link = PipelinedLink::new(2);
    let large = Bytes::from(vec![b'x'; JOIN_BODY_BELOW]);
    link.submit(Transmit {
        id: RequestId(1),
        request: http::Request::post(URL).body(large.clone()).unwrap(),
        deadline: None,
    });
    link.submit(transmit(2, None));
    let LinkStep::Connect { .. } = link.next_step(&mut plan) else {
        panic!("connects first");
    };
    let now = Instant::now();
    link.on_connected(&mut plan, now, now, |_| Ok(()));
    let LinkStep::Write { head, body } = link.next_step(&mut plan) else {
        panic!("writes the first request");
    };
    let head = String::from_utf8(head).unwrap();
    assert!(
        head.ends_with(&format!("content-length: {JOIN_BODY_BELOW}\r\n\r\n")),
        "{head}"
    );
    assert_eq!(body.as_ptr(), large.as_ptr(), "the body is not copied");
    assert_eq!(body.len(), large.len());
    link.on_written(&mut plan, Instant::now());
    let LinkStep::Write { head, body } = link.next_step(&mut plan) else {
        panic!("writes the second request");
    };
    assert!(body.is_empty(), "a small body travels in its head's buffer");
    assert!(head.ends_with(b"\r\n\r\nbatch 2"));
    link.on_written(&mut plan, Instant::now());
    // The codec counted the large body: both answers are framed.
    let gen = link.connection().unwrap();
    link.on_read(gen, Some(&[OK, OK].concat()), &mut plan);
    assert_eq!(
        inputs(&mut link),
        ["head 1 204", "end 1", "head 2 204", "end 2"]
    );
}

#[test]
fn a_failed_connect_fails_only_the_first_request_as_never_sent() {
    let mut plan = plan(4);
    let mut link = PipelinedLink::new(4);
    link.submit(transmit(1, None));
    link.submit(transmit(2, None));
    match link.next_step(&mut plan) {
        LinkStep::Connect { .. } => {
            link.on_connect_failed(TransportError::new(TransportErrorKind::Connect, "refused"))
        }
        other => panic!("expected Connect, got {other:?}"),
    }
    assert_eq!(inputs(&mut link), ["failed 1 Connect"]);
    // The second request is still waiting, for the next attempt.
    assert_eq!(pump(&mut link, &mut plan, true), ["batch 2"]);
}

#[test]
fn reads_of_a_dropped_connection_are_ignored() {
    let mut plan = plan(2);
    let mut link = PipelinedLink::new(2);
    link.submit(transmit(1, None));
    pump(&mut link, &mut plan, true);
    let old = link.connection().unwrap();
    link.on_read(old, None, &mut plan);
    assert_eq!(
        link.connection(),
        None,
        "the end of the connection drops it"
    );
    assert_eq!(inputs(&mut link), ["failed 1 ConnectionReset"]);
    link.submit(transmit(2, None));
    pump(&mut link, &mut plan, true);
    let new = link.connection().unwrap();
    assert_ne!(new, old);
    link.on_read(old, Some(OK), &mut plan);
    assert!(
        inputs(&mut link).is_empty(),
        "an old connection's bytes mean nothing"
    );
    link.on_read(new, Some(OK), &mut plan);
    assert_eq!(inputs(&mut link), ["head 2 204", "end 2"]);
}

#[test]
fn a_failed_write_drops_the_connection_and_the_request_is_known_unsent() {
    let mut plan = plan(2);
    let mut link = PipelinedLink::new(2);
    link.submit(transmit(1, None));
    link.submit(transmit(2, None));
    assert_eq!(pump(&mut link, &mut plan, true), ["batch 1", "batch 2"]);
    link.submit(transmit(3, None));
    // Room for the third once the first is answered.
    let gen = link.connection().unwrap();
    link.on_read(gen, Some(OK), &mut plan);
    assert_eq!(inputs(&mut link), ["head 1 204", "end 1"]);
    match link.next_step(&mut plan) {
        LinkStep::Write { .. } => {
            let broken = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
            link.on_write_result(&mut plan, Err(broken), Instant::now());
        }
        other => panic!("expected Write, got {other:?}"),
    }
    assert_eq!(link.connection(), None);
    assert_eq!(
        inputs(&mut link),
        ["failed 2 ConnectionReset", "failed 3 Connect"],
        "batch 2 was written (outcome unknown), batch 3 was not (never processed)"
    );
}

/// Aborting the later of two written requests: the connection goes, the earlier one fails as
/// the codec proves (outcome unknown), and the aborted one yields nothing.
#[test]
fn aborting_a_written_request_fails_only_the_others_on_the_connection() {
    let now = Instant::now();
    let mut plan = plan(2);
    let mut link = PipelinedLink::new(2);
    link.submit(transmit(1, None));
    link.submit(transmit(2, None));
    assert_eq!(pump(&mut link, &mut plan, true), ["batch 1", "batch 2"]);
    link.abort(RequestId(2), &mut plan, now);
    assert_eq!(link.connection(), None);
    assert_eq!(inputs(&mut link), ["failed 1 ConnectionReset"]);
}

#[test]
fn aborting_a_waiting_request_removes_it_and_a_written_one_drops_the_connection() {
    let now = Instant::now();
    let mut plan = plan(1);
    let mut link = PipelinedLink::new(1);
    link.submit(transmit(1, None));
    link.submit(transmit(2, None));
    link.submit(transmit(3, None));
    assert_eq!(pump(&mut link, &mut plan, true), ["batch 1"]);
    link.abort(RequestId(2), &mut plan, now);
    assert!(inputs(&mut link).is_empty());
    assert!(
        link.connection().is_some(),
        "a waiting request costs no connection"
    );

    link.abort(RequestId(1), &mut plan, now);
    assert_eq!(
        link.connection(),
        None,
        "a written request cannot be taken back alone"
    );
    assert!(
        inputs(&mut link).is_empty(),
        "the cancelled request yields nothing"
    );
    assert_eq!(pump(&mut link, &mut plan, true), ["batch 3"]);
}

#[test]
fn an_expired_deadline_fails_its_request_as_a_timeout_and_the_others_as_the_codec_proves() {
    let t0 = Instant::now();
    let mut plan = plan(2);
    let mut link = PipelinedLink::new(2);
    let soon = t0 + Duration::from_secs(1);
    let later = t0 + Duration::from_secs(60);
    link.submit(transmit(1, Some(soon)));
    link.submit(transmit(2, Some(later)));
    link.submit(transmit(3, Some(soon)));
    pump(&mut link, &mut plan, true);
    assert_eq!(link.next_deadline(), Some(soon));
    link.on_timeout(t0, &mut plan);
    assert!(inputs(&mut link).is_empty(), "nothing expired yet");
    assert!(link.connection().is_some());

    link.on_timeout(soon, &mut plan);
    let mut got = inputs(&mut link);
    got.sort();
    assert_eq!(
        got,
        [
            "failed 1 Timeout",
            "failed 2 ConnectionReset",
            "failed 3 Timeout"
        ],
        "the waiting one and the written one expired; the other was written, outcome unknown"
    );
    assert_eq!(link.connection(), None);
    assert_eq!(
        link.next_deadline(),
        None,
        "no deadline outlives its request"
    );
}

#[test]
fn a_server_closing_a_pipelined_connection_makes_the_plan_fall_back() {
    let mut plan = plan(4);
    assert_eq!(plan.carrier(), Carrier::Pipelined { depth: 4 });
    let mut link = PipelinedLink::new(4);
    for id in 1..=3 {
        link.submit(transmit(id, None));
    }
    pump(&mut link, &mut plan, true);
    let gen = link.connection().unwrap();
    // The first answered with keep-alive, then EOF with two pipelined requests outstanding.
    link.on_read(gen, Some(OK), &mut plan);
    link.on_read(gen, None, &mut plan);
    assert_eq!(
        inputs(&mut link),
        [
            "head 1 204",
            "end 1",
            "failed 2 ConnectionReset",
            "failed 3 ConnectionReset"
        ]
    );
    assert_eq!(plan.carrier(), Carrier::Pooled);
}

#[test]
fn an_announced_close_reconnects_for_the_next_request() {
    let mut plan = plan(1);
    let mut link = PipelinedLink::new(1);
    link.submit(transmit(1, None));
    link.submit(transmit(2, None));
    pump(&mut link, &mut plan, true);
    let gen = link.connection().unwrap();
    link.on_read(
        gen,
        Some(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"),
        &mut plan,
    );
    assert_eq!(inputs(&mut link), ["head 1 204", "end 1"]);
    assert_eq!(link.connection(), None, "closed as announced");
    assert_eq!(pump(&mut link, &mut plan, true), ["batch 2"]);
    assert_ne!(link.connection(), Some(gen));
}

#[test]
fn an_announced_close_waits_for_the_end_of_the_answer_before_the_connection_goes() {
    let mut plan = plan(1);
    let mut link = PipelinedLink::new(1);
    link.submit(transmit(1, None));
    link.submit(transmit(2, None));
    assert_eq!(pump(&mut link, &mut plan, true), ["batch 1"]);
    let gen = link.connection().unwrap();
    link.on_read(
        gen,
        Some(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nab"),
        &mut plan,
    );
    assert_eq!(
        pump(&mut link, &mut plan, true),
        Vec::<String>::new(),
        "batch 2 waits: the answer to batch 1 is still coming"
    );
    assert_eq!(
        link.connection(),
        Some(gen),
        "kept until the answer has ended"
    );
    link.on_read(gen, Some(b"cde"), &mut plan);
    assert_eq!(
        inputs(&mut link),
        ["head 1 200", "body 1", "body 1", "end 1"]
    );
    assert_eq!(pump(&mut link, &mut plan, true), ["batch 2"]);
    assert_ne!(link.connection(), Some(gen), "then a new connection");
}

#[test]
fn requests_waiting_for_room_go_pooled_only_once_pipelining_is_refused() {
    let mut plan = plan(2);
    let mut link = PipelinedLink::new(2);
    for id in 1..=3 {
        link.submit(transmit(id, None));
    }
    assert_eq!(pump(&mut link, &mut plan, true), ["batch 1", "batch 2"]);
    assert!(
        link.take_for_pool(&plan).is_empty(),
        "while the plan pipelines, batch 3 waits for room here"
    );
    // The server answers the first request with keep-alive, then closes the connection with
    // the second outstanding: it does not pipeline.
    let gen = link.connection().unwrap();
    link.on_read(gen, Some(OK), &mut plan);
    link.on_read(gen, None, &mut plan);
    assert_eq!(plan.carrier(), Carrier::Pooled);
    let back: Vec<RequestId> = link.take_for_pool(&plan).iter().map(|t| t.id).collect();
    assert_eq!(
        back,
        [RequestId(3)],
        "the request never written goes pooled"
    );
    assert!(link.take_for_pool(&plan).is_empty());
}

#[test]
fn taken_back_requests_leave_no_deadline_behind() {
    let t0 = Instant::now();
    let mut plan = plan(1);
    let mut link = PipelinedLink::new(1);
    link.submit(transmit(1, None));
    link.submit(transmit(2, Some(t0)));
    pump(&mut link, &mut plan, true);
    let back = link.take_pending();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].id, RequestId(2));
    assert_eq!(link.next_deadline(), None);
    link.on_timeout(t0 + Duration::from_secs(1), &mut plan);
    assert!(
        link.connection().is_some(),
        "a request carried elsewhere does not time out this connection"
    );
}

/// A link with request 1 (deadline 1 s after `t0`) written and request 2 (60 s) being
/// written: the second write's end is up to the test.
fn second_write_under_way(t0: Instant) -> (WriterPipe, PipelinedLink) {
    let mut plan = plan(2);
    let mut link = PipelinedLink::new(2);
    link.submit(transmit(1, Some(t0 + Duration::from_secs(1))));
    link.submit(transmit(2, Some(t0 + Duration::from_secs(60))));
    match link.next_step(&mut plan) {
        LinkStep::Connect { .. } => link.on_connected(&mut plan, t0, t0, |_| Ok(())),
        other => panic!("expected Connect, got {other:?}"),
    }
    assert!(matches!(link.next_step(&mut plan), LinkStep::Write { .. }));
    link.on_write_result(&mut plan, Ok(()), t0);
    assert!(matches!(link.next_step(&mut plan), LinkStep::Write { .. }));
    (plan, link)
}

/// Only a write that outlived the deadline is a timeout: a write that failed otherwise is
/// reported as the connection it broke, even once a deadline has passed meanwhile.
#[test]
fn a_failed_write_past_a_deadline_is_not_a_timeout() {
    let t0 = Instant::now();
    let (mut plan, mut link) = second_write_under_way(t0);
    let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    link.on_write_result(&mut plan, Err(reset), t0 + Duration::from_secs(2));
    assert_eq!(link.connection(), None);
    let mut got = inputs(&mut link);
    got.sort();
    assert_eq!(got, ["failed 1 ConnectionReset", "failed 2 Connect"]);
}

/// A write that ends with `TimedOut` (an async driver's timer) or `WouldBlock` (a socket
/// write timeout) outlived the earliest deadline.
#[test]
fn a_write_that_outlives_its_deadline_fails_the_expired_requests_as_timeouts() {
    for kind in [std::io::ErrorKind::TimedOut, std::io::ErrorKind::WouldBlock] {
        let t0 = Instant::now();
        let (mut plan, mut link) = second_write_under_way(t0);
        // The second request's write stalls until the first one's deadline.
        link.on_write_result(&mut plan, Err(kind.into()), t0 + Duration::from_secs(1));
        assert_eq!(link.connection(), None);
        let mut got = inputs(&mut link);
        got.sort();
        assert_eq!(
            got,
            ["failed 1 Timeout", "failed 2 Connect"],
            "{kind:?}: the expired one timed out; the one cut off mid-write was never processed"
        );
    }
}

/// A driver's socket that notes when it is dropped (closed).
struct Socket(u64, std::rc::Rc<std::cell::RefCell<Vec<u64>>>);

impl Drop for Socket {
    fn drop(&mut self) {
        self.1.borrow_mut().push(self.0);
    }
}

#[test]
fn the_link_keeps_the_socket_of_its_connection_and_drops_it_with_the_connection() {
    let t0 = Instant::now();
    let closed = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let mut plan = plan(2);
    let mut link: PipelinedLink<(), Socket> = PipelinedLink::new(2);
    link.submit(transmit(1, None));
    assert!(matches!(
        link.next_step(&mut plan),
        LinkStep::Connect { .. }
    ));
    link.on_connected(&mut plan, t0, t0, |gen| Ok(Socket(gen, closed.clone())));
    assert_eq!(link.socket_mut().map(|s| s.0), Some(1));
    assert!(matches!(link.next_step(&mut plan), LinkStep::Write { .. }));
    link.on_written(&mut plan, t0);
    // The server ends the connection: its socket goes with it.
    link.on_read(1, None, &mut plan);
    assert_eq!(*closed.borrow(), [1]);
    assert!(link.socket_mut().is_none());
    // A read of the dropped connection changes nothing.
    link.on_read(1, Some(OK), &mut plan);
    link.submit(transmit(2, None));
    assert!(matches!(
        link.next_step(&mut plan),
        LinkStep::Connect { .. }
    ));
    link.on_connected(&mut plan, t0, t0, |gen| Ok(Socket(gen, closed.clone())));
    assert_eq!(link.connection(), Some(2));
    drop(link);
    assert_eq!(
        *closed.borrow(),
        [1, 2],
        "dropping the link closes its socket"
    );
}

#[test]
fn a_socket_that_cannot_be_made_fails_the_first_request_unsent() {
    let t0 = Instant::now();
    let mut plan = plan(2);
    let mut link: PipelinedLink<(), ()> = PipelinedLink::new(2);
    link.submit(transmit(1, None));
    link.submit(transmit(2, None));
    assert!(matches!(
        link.next_step(&mut plan),
        LinkStep::Connect { .. }
    ));
    link.on_connected(&mut plan, t0, t0, |_| {
        Err(TransportError::new(
            TransportErrorKind::Connect,
            "no thread",
        ))
    });
    assert_eq!(link.connection(), None);
    assert_eq!(inputs(&mut link), ["failed 1 Connect"]);
    // The next one waits for another attempt.
    assert!(matches!(
        link.next_step(&mut plan),
        LinkStep::Connect { .. }
    ));
}

#[test]
fn connecting_takes_the_clients_timeout_or_thirty_seconds() {
    assert_eq!(connect_timeout(None), Duration::from_secs(30));
    assert_eq!(
        connect_timeout(Some(Duration::from_secs(2))),
        Duration::from_secs(2)
    );
}

#[test]
fn the_origin_of_a_request_uri() {
    let of = |u: &str| Origin::of(&u.parse().unwrap());
    assert_eq!(
        of("http://h:8080/v1/stream/s"),
        Origin {
            host: "h".into(),
            port: 8080,
            tls: false
        }
    );
    assert_eq!(
        of("HTTPS://example.com/v1/stream/s"),
        Origin {
            host: "example.com".into(),
            port: 443,
            tls: true
        }
    );
    // An IP-address host needs no lookup (ds-blocking's resolver skips it).
    assert_eq!(of("http://localhost:4437/s").ip_addr(), None);
    assert_eq!(
        of("http://[::1]/s").ip_addr(),
        Some((std::net::Ipv6Addr::LOCALHOST, 80).into())
    );
    assert_eq!(
        of("https://127.0.0.1/s").ip_addr(),
        Some(([127, 0, 0, 1], 443).into())
    );
    assert_eq!(
        of("http://[::1]:8080/s").ip_addr(),
        Some((std::net::Ipv6Addr::LOCALHOST, 8080).into())
    );
    assert_eq!(
        of("http://[::1]/s"),
        Origin {
            host: "::1".into(),
            port: 80,
            tls: false
        }
    );
}

/// What a driver's loop hands the link as events (`handle`) does what the methods they
/// name do: a submitted request is written, bytes read answer it, an aborted waiting request
/// leaves nothing, and a passed deadline fails its request as a timeout.
#[test]
fn events_handed_to_the_link_reach_it() {
    let t0 = Instant::now();
    let mut plan = plan(1);
    let mut link = PipelinedLink::new(1);
    link.handle(LinkEvent::Submit(transmit(1, None)), &mut plan, t0);
    assert_eq!(pump(&mut link, &mut plan, true), ["batch 1"]);
    let gen = link.connection().unwrap();
    link.handle(LinkEvent::Read(gen, Some(OK.to_vec())), &mut plan, t0);
    assert_eq!(inputs(&mut link), ["head 1 204", "end 1"]);
    // Request 2 is written; 3 waits behind it (depth 1) and is aborted there.
    let soon = t0 + Duration::from_secs(1);
    link.handle(LinkEvent::Submit(transmit(2, Some(soon))), &mut plan, t0);
    link.handle(LinkEvent::Submit(transmit(3, None)), &mut plan, t0);
    assert_eq!(pump(&mut link, &mut plan, true), ["batch 2"]);
    link.handle(LinkEvent::Abort(RequestId(3)), &mut plan, t0);
    assert_eq!(link.connection(), Some(gen), "a waiting request goes alone");
    link.handle(LinkEvent::Timeout, &mut plan, soon);
    assert_eq!(link.connection(), None);
    assert_eq!(inputs(&mut link), ["failed 2 Timeout"]);
    assert_eq!(
        pump(&mut link, &mut plan, true),
        Vec::<String>::new(),
        "3 was aborted"
    );
}
