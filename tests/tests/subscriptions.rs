//! Subscriptions end to end (issue 17, "How it is shown"), through both drivers, against the
//! npm reference server (started with `webhooks: true`) and the embedded server: control
//! operations, JWKS, webhook delivery and verification, `{"done": true}` and callbacks, a stale
//! callback fenced, pull-wake workers racing, and a worker killed mid-wake.
//!
//! Every wait is bounded (`DEADLINE`); waits are on events (channels), never on sleeps.

use ds_proto::driver::subscription::{WebhookError, WorkerOptions};
use ds_proto::ops::CreateOptions;
use ds_proto::subscription::{
    sign_webhook, Ack, AckBody, Claim, SigningKey, SubscriptionConfig, SubscriptionErrorKind,
    SubscriptionRoot, SubscriptionType, WakeNotification, WebhookRejection, WorkerEvent,
};
use ds_proto::Offset;
use ds_tests::drivers::{AnyClient, DriverKind, FnHandler};
use ds_tests::{raw_http, RefServer, RefServerOptions};
use ds_tokio::server::{BackgroundServer, ServerConfig};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The bound of every wait in these tests.
const DEADLINE: Duration = Duration::from_secs(60);

enum Server {
    Ref(RefServer),
    Embedded(BackgroundServer),
}

impl Server {
    fn url(&self) -> &str {
        match self {
            Server::Ref(s) => s.url(),
            Server::Embedded(s) => s.url(),
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Server::Ref(_) => "ref",
            Server::Embedded(_) => "embedded",
        }
    }
}

fn ref_server() -> Server {
    Server::Ref(RefServer::start_with(RefServerOptions {
        webhooks: true,
        long_poll_timeout_ms: 1000,
        ..RefServerOptions::default()
    }))
}

fn embedded_server() -> Server {
    let mut config = ServerConfig::default();
    config.model.long_poll_timeout = Duration::from_millis(1000);
    Server::Embedded(BackgroundServer::start(config).expect("embedded server"))
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

fn tag(server: &Server, kind: DriverKind) -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    format!("{}-{kind:?}-{n}-{}", server.name(), std::process::id()).to_lowercase()
}

fn create_text(client: &AnyClient, path: &str) {
    client
        .stream(&format!("/v1/stream/{path}"))
        .create(CreateOptions::with_content_type("text/plain"))
        .unwrap();
}

fn append(client: &AnyClient, path: &str, data: &str) -> Offset {
    let s = client.stream(&format!("/v1/stream/{path}"));
    s.set_content_type("text/plain");
    s.append(data.to_owned())
        .unwrap()
        .next_offset
        .expect("the append's offset")
}

fn tail(client: &AnyClient, path: &str) -> Offset {
    client
        .stream(&format!("/v1/stream/{path}"))
        .head()
        .unwrap()
        .next_offset
}

// ----- control operations -----

fn control_operations(server: &Server) {
    for kind in DriverKind::ALL {
        let t = tag(server, kind);
        let client = AnyClient::new(kind, server.url());
        let wake = format!("{t}/wake");
        create_text(&client, &wake);
        let deep = format!("{t}/deep/nested");
        create_text(&client, &deep);
        let sub = client.subscription(&format!("ctl-{t}"));
        let config = SubscriptionConfig::pull_wake(&wake)
            .pattern(format!("{t}/items/*"))
            .lease_ttl_ms(5000);
        assert!(sub.create(config.clone()).unwrap().created, "{kind:?}");
        assert!(!sub.create(config.clone()).unwrap().created, "re-confirmed");
        let other = sub.create(config.clone().lease_ttl_ms(6000)).unwrap_err();
        assert!(
            matches!(other.kind, SubscriptionErrorKind::ConfigConflict { .. }),
            "{other}"
        );
        let got = sub.get().unwrap();
        assert_eq!(got.kind, SubscriptionType::PullWake);
        assert_eq!(got.wake_stream.as_deref(), Some(wake.as_str()));
        assert_eq!(got.lease_ttl_ms, Some(5000));
        assert!(got.link(&deep).is_none());

        sub.add_streams(&[deep.as_str()]).unwrap();
        assert!(sub.get().unwrap().link(&deep).is_some(), "linked by path");
        sub.remove_stream(&deep).unwrap();
        assert!(sub.get().unwrap().link(&deep).is_none(), "unlinked");

        let jwks = sub.jwks().unwrap();
        assert!(!jwks.keys().is_empty(), "the JWKS has keys");

        sub.delete().unwrap();
        let gone = sub.get().unwrap_err();
        assert!(
            matches!(gone.kind, SubscriptionErrorKind::NotFound { .. }),
            "{gone}"
        );
    }
}

#[test]
fn control_operations_on_the_reference_server() {
    control_operations(&ref_server());
}

#[test]
fn control_operations_on_the_embedded_server() {
    control_operations(&embedded_server());
}

// ----- webhooks -----

/// A webhook receiver on loopback: hands each request's headers and raw body to the test and
/// answers `{"done":true}` when `done` is set, `{}` otherwise.
struct Receiver {
    url: String,
    requests: mpsc::Receiver<(http::HeaderMap, Vec<u8>)>,
    done: Arc<AtomicBool>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, requests) = mpsc::channel();
        let done = Arc::new(AtomicBool::new(true));
        let answer_done = done.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(conn);
                let mut headers = http::HeaderMap::new();
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut length = 0;
                loop {
                    line.clear();
                    if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if let (Ok(k), Ok(v)) = (
                            http::HeaderName::from_bytes(k.trim().as_bytes()),
                            http::HeaderValue::from_str(v.trim()),
                        ) {
                            headers.append(k, v);
                        }
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let answer = if answer_done.load(Ordering::SeqCst) {
                    r#"{"done":true}"#
                } else {
                    "{}"
                };
                let mut conn = reader.into_inner();
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = conn.flush();
                if tx.send((headers, body)).is_err() {
                    return;
                }
            }
        });
        Receiver {
            url,
            requests,
            done,
        }
    }

    fn next(&self) -> (http::HeaderMap, Vec<u8>) {
        self.requests
            .recv_timeout(DEADLINE)
            .expect("a webhook delivery")
    }
}

#[allow(clippy::disallowed_methods)] // the test owns the clock
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn webhooks(server: &Server) {
    for kind in DriverKind::ALL {
        let t = tag(server, kind);
        let client = AnyClient::new(kind, server.url());
        let receiver = Receiver::start();
        let stream = format!("{t}/hooked/one");
        create_text(&client, &stream);
        let id = format!("hook-{t}");
        let sub = client.subscription(&id);
        sub.create(SubscriptionConfig::webhook(&receiver.url).stream(&stream))
            .unwrap();
        let verifier = sub.verifier();

        // 1. `{"done": true}` in the answer acks the wake.
        let end = append(&client, &stream, "first");
        let (headers, body) = receiver.next();
        let now = unix_now();
        let ok = verifier.verify_at(&headers, &body, now).unwrap();
        assert!(!ok.kid.is_empty());
        let n = WakeNotification::parse_for(&body, &id).unwrap();
        assert!(n.streams.iter().any(|s| s.path == stream));

        let mut tampered = body.clone();
        tampered.push(b' ');
        assert_eq!(
            verifier.verify_at(&headers, &tampered, now).unwrap_err(),
            WebhookError::Rejected(WebhookRejection::BadSignature)
        );
        let old = verifier.verify_at(&headers, &body, now + 3600).unwrap_err();
        assert!(
            matches!(old, WebhookError::Rejected(WebhookRejection::TooOld { .. })),
            "{old}"
        );
        let sig = headers[ds_proto::subscription::WEBHOOK_SIGNATURE]
            .to_str()
            .unwrap()
            .to_owned();
        let mut unknown = headers.clone();
        let renamed = sig.replace(&format!("kid={}", ok.kid), "kid=no-such-key");
        unknown.insert(
            ds_proto::subscription::WEBHOOK_SIGNATURE,
            renamed.parse().unwrap(),
        );
        assert_eq!(
            verifier.verify_at(&unknown, &body, now).unwrap_err(),
            WebhookError::Rejected(WebhookRejection::UnknownKid {
                kid: "no-such-key".into()
            })
        );
        let forged = sign_webhook(&SigningKey::from_bytes(&[9; 32]), &ok.kid, now, &body);
        let mut wrong = headers.clone();
        wrong.insert(
            ds_proto::subscription::WEBHOOK_SIGNATURE,
            forged.parse().unwrap(),
        );
        assert_eq!(
            verifier.verify_at(&wrong, &body, now).unwrap_err(),
            WebhookError::Rejected(WebhookRejection::BadSignature)
        );
        wait_acked(&sub, &stream, &end);

        // 2. An asynchronous callback: the answer is `{}`, the acks come by callback.
        receiver.done.store(false, Ordering::SeqCst);
        let end = append(&client, &stream, "second");
        let (headers, body) = receiver.next();
        verifier.verify_at(&headers, &body, unix_now()).unwrap();
        let n = WakeNotification::parse_for(&body, &id).unwrap();
        let acks = vec![Ack {
            stream: stream.clone(),
            offset: end.clone(),
        }];
        client.send_callback(&n, acks.clone(), true).unwrap();
        wait_acked(&sub, &stream, &end);

        // 3. The same wake's callback again: stale, fenced.
        let stale = client.send_callback(&n, acks, true).unwrap_err();
        assert!(stale.is_fenced(), "{kind:?}: {stale}");
        sub.delete().unwrap();
    }
}

/// Waits until the server reports `stream` acked at `offset` (the server acks a webhook's
/// `done` after the answer arrives, so the read may come first: bounded retries on reads).
fn wait_acked(sub: &ds_tests::drivers::AnySubscription, stream: &str, offset: &Offset) {
    let start = Instant::now();
    loop {
        let s = sub.get().unwrap();
        if s.link(stream).is_some_and(|l| l.acked_offset == *offset) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{stream} never acked at {offset}: {s:?}"
        );
        // A read per round trip; the server's ack is an event we can only observe by reading.
        std::thread::yield_now();
    }
}

#[test]
fn webhooks_on_the_reference_server() {
    webhooks(&ref_server());
}

#[test]
fn webhooks_on_the_embedded_server() {
    webhooks(&embedded_server());
}

// ----- pull-wake workers -----

type Seen = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

fn recording_handler(seen: Seen, tx: mpsc::Sender<()>) -> FnHandler {
    FnHandler::new(
        Arc::new(move |b| {
            let text = String::from_utf8_lossy(&b.data).into_owned();
            seen.lock()
                .unwrap()
                .entry(b.stream.clone())
                .or_default()
                .push(text);
            let _ = tx.send(());
            Ok(())
        }),
        Arc::new(|e| {
            if std::env::var("DS_DEBUG").is_ok() {
                eprintln!("event: {e:?}");
            }
        }),
    )
}

fn debug(m: &str) {
    if std::env::var("DS_DEBUG").is_ok() {
        eprintln!("{m}");
    }
}

fn fast_options(name: &str) -> WorkerOptions {
    let mut o = WorkerOptions::new(name);
    o.request_timeout = Duration::from_secs(5);
    o
}

/// Every stream's data as one string per stream, from what the handlers saw (a batch seen
/// twice counts once: delivery is at least once).
fn covered(seen: &Seen, expected: &BTreeMap<String, String>) -> bool {
    let seen = seen.lock().unwrap();
    expected.iter().all(|(s, want)| {
        seen.get(s).is_some_and(|got| {
            let mut all = String::new();
            for piece in got {
                if !all.ends_with(piece.as_str()) {
                    all.push_str(piece);
                }
            }
            all.contains(want.as_str())
        })
    })
}

fn race(server: &Server, streams: usize) {
    for kind in DriverKind::ALL {
        let t = tag(server, kind);
        let client = AnyClient::new(kind, server.url());
        let wake = format!("{t}-wake");
        create_text(&client, &wake);
        let paths: Vec<String> = (0..streams).map(|i| format!("{t}/s{i:03}")).collect();
        for p in &paths {
            create_text(&client, p);
        }
        let sub = client.subscription(&format!("race-{t}"));
        sub.create(
            SubscriptionConfig::pull_wake(&wake)
                .pattern(format!("{t}/*"))
                .lease_ttl_ms(2000),
        )
        .unwrap();
        let mut expected = BTreeMap::new();
        for p in &paths {
            append(&client, p, "a;");
            append(&client, p, "b;");
            expected.insert(p.clone(), "a;b;".to_owned());
        }
        debug("appended");
        let seen: Seen = Arc::default();
        let (tx, rx) = mpsc::channel();
        let workers: Vec<_> = (0..3)
            .map(|i| {
                sub.work(
                    fast_options(&format!("w{i}")),
                    recording_handler(seen.clone(), tx.clone()),
                )
                .unwrap()
            })
            .collect();
        debug("workers started");
        let start = Instant::now();
        let mut last: BTreeMap<String, Offset> = BTreeMap::new();
        while !covered(&seen, &expected) {
            assert!(
                start.elapsed() < DEADLINE,
                "{kind:?}: not every message processed"
            );
            let _ = rx.recv_timeout(Duration::from_millis(500));
            // Acked cursors never go backwards.
            for link in sub.get().unwrap().streams {
                if let Some(prev) = last.get(&link.path) {
                    assert!(link.acked_offset >= *prev, "{} regressed", link.path);
                }
                last.insert(link.path.clone(), link.acked_offset);
            }
        }
        debug("covered");
        for w in workers {
            assert!(w.shutdown(), "{kind:?}: a worker failed");
            debug("one stopped");
        }
        let after = sub.get().unwrap();
        for p in &paths {
            assert_eq!(
                after.link(p).unwrap().acked_offset,
                tail(&client, p),
                "{kind:?}: {p} acked to its tail after a graceful stop"
            );
        }
        sub.delete().unwrap();
    }
}

/// How many streams the race runs over (`DS_RACE_STREAMS`, default 200).
fn streams() -> usize {
    std::env::var("DS_RACE_STREAMS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

#[test]
fn three_workers_race_over_many_streams_on_the_reference_server() {
    race(&ref_server(), streams());
}

#[test]
fn three_workers_race_over_many_streams_on_the_embedded_server() {
    race(&embedded_server(), streams());
}

/// A claim and a late ack sent by hand, as a worker that then dies would have.
fn raw_claim(server: &Server, id: &str, worker: &str) -> Option<Claim> {
    let root = SubscriptionRoot::new(format!("{}/v1/stream", server.url())).unwrap();
    let req =
        ds_proto::subscription::claim_request(&root, id, worker, &Default::default()).unwrap();
    let r = raw_http::request(
        "POST",
        &req.uri().to_string(),
        &[("content-type", "application/json")],
        req.body(),
    )
    .unwrap();
    let parts = http::Response::builder()
        .status(r.status)
        .body(())
        .unwrap()
        .into_parts()
        .0;
    ds_proto::subscription::claim_response(&root, id, &parts, &r.body).ok()
}

fn raw_ack(server: &Server, id: &str, claim: &Claim, ack: Ack) -> SubscriptionErrorKind {
    let root = SubscriptionRoot::new(format!("{}/v1/stream", server.url())).unwrap();
    let body = AckBody {
        wake_id: claim.wake_id.clone(),
        generation: claim.generation,
        acks: vec![ack],
        done: false,
    };
    let req =
        ds_proto::subscription::ack_request(&root, id, &claim.token, &body, &Default::default())
            .unwrap();
    let auth = format!("Bearer {}", claim.token);
    let r = raw_http::request(
        "POST",
        &req.uri().to_string(),
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
        ],
        req.body(),
    )
    .unwrap();
    let parts = http::Response::builder()
        .status(r.status)
        .body(())
        .unwrap()
        .into_parts()
        .0;
    ds_proto::subscription::ack_response(&root, id, &parts, &r.body)
        .expect_err("a late ack must be refused")
        .kind
}

fn killed_worker(server: &Server) {
    for kind in DriverKind::ALL {
        let t = tag(server, kind);
        let client = AnyClient::new(kind, server.url());
        let wake = format!("{t}-wake");
        create_text(&client, &wake);
        let paths: Vec<String> = (0..5).map(|i| format!("{t}/k{i}")).collect();
        for p in &paths {
            create_text(&client, p);
        }
        let id = format!("kill-{t}");
        let sub = client.subscription(&id);
        sub.create(
            SubscriptionConfig::pull_wake(&wake)
                .pattern(format!("{t}/*"))
                .lease_ttl_ms(1000),
        )
        .unwrap();
        let mut expected = BTreeMap::new();
        for p in &paths {
            append(&client, p, "x;");
            expected.insert(p.clone(), "x;".to_owned());
        }

        // 1. A worker dies in the middle of a wake: its handler saw a batch and never returned.
        let (started_tx, started) = mpsc::channel();
        let (hold, held) = mpsc::channel::<()>();
        let held = Arc::new(Mutex::new(held));
        let doomed = sub
            .work(
                fast_options("doomed"),
                FnHandler::new(
                    Arc::new(move |_| {
                        let _ = started_tx.send(());
                        // Blocks until the test drops `hold`.
                        let _ = held.lock().unwrap().recv();
                        Err("killed".into())
                    }),
                    Arc::new(|_| {}),
                ),
            )
            .unwrap();
        started
            .recv_timeout(DEADLINE)
            .expect("the doomed worker got a batch");
        drop(hold);
        doomed.abort();

        // 2. Another worker waits out the lease and finishes the work.
        let seen: Seen = Arc::default();
        let (tx, rx) = mpsc::channel();
        let claimed_after_expiry = Arc::new(AtomicBool::new(false));
        let flag = claimed_after_expiry.clone();
        let seen2 = seen.clone();
        let survivor = sub
            .work(
                fast_options("survivor"),
                FnHandler::new(
                    Arc::new(move |b| {
                        let text = String::from_utf8_lossy(&b.data).into_owned();
                        seen2
                            .lock()
                            .unwrap()
                            .entry(b.stream.clone())
                            .or_default()
                            .push(text);
                        let _ = tx.send(());
                        Ok(())
                    }),
                    Arc::new(move |e| {
                        if matches!(e, WorkerEvent::Claimed { .. }) {
                            flag.store(true, Ordering::SeqCst);
                        }
                    }),
                ),
            )
            .unwrap();
        let start = Instant::now();
        while !covered(&seen, &expected) {
            assert!(
                start.elapsed() < DEADLINE,
                "{kind:?}: the survivor did not finish"
            );
            let _ = rx.recv_timeout(Duration::from_millis(500));
        }
        assert!(claimed_after_expiry.load(Ordering::SeqCst));

        // 3. A worker claims by hand and dies; the survivor takes over after the lease; the
        //    dead worker's late ack is fenced.
        assert!(survivor.shutdown());
        for p in &paths {
            append(&client, p, "y;");
        }
        let claim = raw_claim(server, &id, "ghost").expect("the ghost claims the new work");
        let seen: Seen = Arc::default();
        let (tx, rx) = mpsc::channel();
        let survivor = sub
            .work(
                fast_options("survivor-2"),
                recording_handler(seen.clone(), tx),
            )
            .unwrap();
        let expected: BTreeMap<String, String> =
            paths.iter().map(|p| (p.clone(), "y;".to_owned())).collect();
        let start = Instant::now();
        while !covered(&seen, &expected) {
            assert!(
                start.elapsed() < DEADLINE,
                "{kind:?}: the ghost's work was not finished"
            );
            let _ = rx.recv_timeout(Duration::from_millis(500));
        }
        let late = raw_ack(
            server,
            &id,
            &claim,
            Ack {
                stream: paths[0].clone(),
                offset: tail(&client, &paths[0]),
            },
        );
        assert!(
            matches!(late, SubscriptionErrorKind::Fenced { .. }),
            "{kind:?}: the late ack got {late:?}"
        );
        assert!(survivor.shutdown());
        sub.delete().unwrap();
    }
}

#[test]
fn a_killed_worker_is_taken_over_after_its_lease_on_the_reference_server() {
    killed_worker(&ref_server());
}

#[test]
fn a_killed_worker_is_taken_over_after_its_lease_on_the_embedded_server() {
    killed_worker(&embedded_server());
}
