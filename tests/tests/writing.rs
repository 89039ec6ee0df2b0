//! Exactly-once writing through both drivers against the reference server (PROTOCOL.md 5.2.1):
//! volume, faults, fencing, auto-claim, JSON, close.

use bytes::Bytes;
use ds_proto::ops::CreateOptions;
use ds_proto::producer::ProducerConfig;
use ds_proto::reader::ReadMode;
use ds_proto::sim::server::{SimServer, SimServerConfig};
use ds_proto::{ErrorKind, Offset, RetryPolicy};
use ds_tests::drivers::{AnyClient, AnyStream, DriverKind};
use ds_tests::hostile::{HostileServer, Reply, SeenRequest, Step};
use ds_tests::{Proxy, RefServer};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn new_stream(server: &RefServer, kind: DriverKind, name: &str, ct: &str) -> AnyStream {
    let s = AnyClient::new(kind, server.url()).stream(&server.stream_url(name));
    s.create(CreateOptions::with_content_type(ct)).unwrap();
    s
}

/// 100-byte records numbered in order: "{n:010}" padded with dots.
fn record(n: usize) -> Vec<u8> {
    let mut r = format!("{n:010}").into_bytes();
    r.resize(99, b'.');
    r.push(b'\n');
    r
}

fn check_records(data: &[u8], count: usize) {
    assert_eq!(data.len(), count * 100, "every record exactly once");
    for (n, rec) in data.chunks(100).enumerate() {
        assert_eq!(rec, &record(n)[..], "record {n} in order");
    }
}

fn config(id: &str) -> ProducerConfig {
    ProducerConfig {
        content_type: "text/plain".into(),
        retry: RetryPolicy {
            initial_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(200),
            max_attempts: Some(50),
            ..RetryPolicy::default()
        },
        ..ProducerConfig::new("http://placeholder/", id)
    }
}

#[test]
fn hundred_thousand_appends_arrive_exactly_once_in_order() {
    let server = RefServer::shared();
    for kind in DriverKind::ALL {
        let s = new_stream(server, kind, "volume", "text/plain");
        let w = s.writer_with(config("volume")).unwrap();
        let count = 100_000;
        for n in 0..count {
            w.append(record(n)).unwrap();
        }
        w.close(false).unwrap();
        check_records(&s.read_all().unwrap().data, count);
    }
}

#[test]
fn faults_on_post_never_lose_or_duplicate() {
    let server = RefServer::start();
    for kind in DriverKind::ALL {
        for in_flight in [1, 4] {
            let s = new_stream(&server, kind, "faulty-writes", "text/plain");
            for fault in [
                serde_json::json!({"status": 500, "count": 3, "method": "POST"}),
                serde_json::json!({"status": 503, "count": 2, "method": "POST"}),
                serde_json::json!({"status": 429, "retryAfter": 1, "count": 1, "method": "POST"}),
                serde_json::json!({"dropConnection": true, "count": 3, "method": "POST"}),
                serde_json::json!({"delayMs": 100, "count": 5, "method": "POST"}),
                serde_json::json!({"status": 503, "probability": 0.2, "count": 1000, "method": "POST"}),
            ] {
                server.inject_error(s.url(), fault);
            }
            let w = s
                .writer_with(ProducerConfig {
                    max_in_flight: in_flight,
                    max_batch_items: 20,
                    ..config("faulty")
                })
                .unwrap();
            let count = 3_000;
            for n in 0..count {
                w.append(record(n)).unwrap();
            }
            w.close(false)
                .unwrap_or_else(|f| panic!("{kind:?} {in_flight}: {f:?}"));
            server.clear_errors();
            check_records(&s.read_all().unwrap().data, count);
        }
    }
}

/// Issue 16: with more than one batch in flight on a plain `http://` stream the writers pipeline
/// their batches on one connection (one at a time, they use it too); the server drops that
/// connection under one of several pipelined POSTs (after the epoch's first batch, so the others are in flight behind it):
/// the batches behind it fail as the codec can prove (not processed, or outcome unknown) and
/// are sent again with their sequence numbers; every record lands exactly once, in order.
#[test]
fn a_dropped_pipelined_connection_keeps_exactly_once() {
    let server = RefServer::start();
    for kind in DriverKind::ALL {
        for in_flight in [1, 2, 8] {
            let s = new_stream(&server, kind, "pipelined-drop", "text/plain");
            let w = s
                .writer_with(ProducerConfig {
                    max_in_flight: in_flight,
                    max_batch_items: 25,
                    ..config("piped")
                })
                .unwrap();
            // The epoch is acknowledged before the fault is armed: the dropped POST is one of
            // several pipelined behind it.
            w.append(record(0)).unwrap();
            w.flush().unwrap();
            server.inject_error(
                s.url(),
                serde_json::json!({"dropConnection": true, "count": 1, "method": "POST"}),
            );
            server.inject_error(
                s.url(),
                serde_json::json!({"delayMs": 20, "count": 10, "method": "POST"}),
            );
            let count = 2_000;
            for n in 1..count {
                w.append(record(n)).unwrap();
            }
            w.close(false)
                .unwrap_or_else(|f| panic!("{kind:?} {in_flight}: {f:?}"));
            server.clear_errors();
            check_records(&s.read_all().unwrap().data, count);
        }
    }
}

/// An epoch's first batches leave together on the pipelined connection. When the first is
/// refused on the way (here a `503` after 50 ms), the reference server answers the batches
/// behind it `400` ("New epoch must start with sequence 0", PROTOCOL.md 5.2.1): they are sent
/// again once the first is stored, and every record lands exactly once, in order.
#[test]
fn a_new_epoch_whose_first_batch_is_refused_keeps_exactly_once() {
    let server = RefServer::start();
    for kind in DriverKind::ALL {
        let s = new_stream(&server, kind, "new-epoch", "text/plain");
        // Epoch 0 is known to the server, so epoch 1 is a new epoch (a fresh producer's later
        // seqs get `409` instead, the gap the writers already handle).
        let old = s.writer_with(config("epochs")).unwrap();
        old.append(record(0)).unwrap();
        old.flush().unwrap();
        drop(old);
        server.inject_error(
            s.url(),
            serde_json::json!({"status": 503, "delayMs": 50, "count": 1, "method": "POST"}),
        );
        let w = s
            .writer_with(ProducerConfig {
                epoch: 1,
                max_in_flight: 4,
                max_batch_items: 10,
                ..config("epochs")
            })
            .unwrap();
        let count = 1_000;
        for n in 1..count {
            w.append(record(n)).unwrap();
        }
        w.close(false).unwrap_or_else(|f| panic!("{kind:?}: {f:?}"));
        server.clear_errors();
        check_records(&s.read_all().unwrap().data, count);
    }
}

#[test]
fn a_higher_epoch_fences_the_zombie() {
    let server = RefServer::shared();
    for kind in DriverKind::ALL {
        let s = new_stream(server, kind, "fence", "text/plain");
        let zombie = s.writer_with(config("svc")).unwrap();
        zombie.append("from-zombie;").unwrap();
        zombie.flush().unwrap();
        let fresh = s
            .writer_with(ProducerConfig {
                epoch: 1,
                ..config("svc")
            })
            .unwrap();
        fresh.append("from-fresh;").unwrap();
        fresh.flush().unwrap();
        zombie.append("late-zombie;").unwrap();
        let failures = zombie.flush().unwrap_err();
        assert_eq!(
            failures[0].reason.kind(),
            &ErrorKind::Fenced { server_epoch: 1 },
            "{kind:?}"
        );
        assert_eq!(failures[0].items[0], "late-zombie;");
        assert!(
            zombie.append("more").is_err(),
            "a fenced writer refuses appends"
        );
        fresh.close(false).unwrap();
        let data = s.read_all().unwrap().data;
        assert_eq!(&data[..], b"from-zombie;from-fresh;", "{kind:?}");
    }
}

#[test]
fn auto_claim_takes_over_after_a_restart() {
    let server = RefServer::shared();
    for kind in DriverKind::ALL {
        let s = new_stream(server, kind, "claim", "text/plain");
        let before = s
            .writer_with(ProducerConfig {
                epoch: 3,
                ..config("ephemeral")
            })
            .unwrap();
        before.append("one;").unwrap();
        before.close(false).unwrap();
        // A restarted instance without its epoch: starts at 0, is fenced, claims 4.
        let after = s
            .writer_with(ProducerConfig {
                auto_claim: true,
                ..config("ephemeral")
            })
            .unwrap();
        after.append("two;").unwrap();
        after.append("three;").unwrap();
        after.flush().unwrap();
        assert_eq!(after.epoch(), 4, "{kind:?}");
        after.close(false).unwrap();
        assert_eq!(
            &s.read_all().unwrap().data[..],
            b"one;two;three;",
            "{kind:?}"
        );
    }
}

#[test]
fn json_writer_round_trip() {
    let server = RefServer::shared();
    for kind in DriverKind::ALL {
        let s = new_stream(server, kind, "json-writer", "application/json");
        let w = s
            .writer_with(ProducerConfig {
                content_type: "application/json".into(),
                ..config("json")
            })
            .unwrap();
        for n in 0..10_000 {
            w.append_json(&serde_json::json!({"n": n, "tag": "x"}))
                .unwrap();
        }
        w.close(false).unwrap();
        let values = s.read_json().unwrap();
        assert_eq!(values.len(), 10_000, "{kind:?}");
        for (n, v) in values.iter().enumerate() {
            assert_eq!(v["n"], n, "{kind:?}");
        }
        let bad = s.writer_with(ProducerConfig {
            content_type: "application/json".into(),
            ..config("json-bad")
        });
        let bad = bad.unwrap();
        assert!(bad.try_append("{not json").is_err(), "invalid JSON refused");
    }
}

#[test]
fn closing_through_the_writer_makes_readers_see_eof() {
    let server = RefServer::shared();
    for kind in DriverKind::ALL {
        let s = new_stream(server, kind, "writer-close", "text/plain");
        let mut reader = s.reader(Offset::beginning(), ReadMode::LongPoll).unwrap();
        let w = s.writer_with(config("closer")).unwrap();
        w.append("a").unwrap();
        w.append("b").unwrap();
        let final_offset = w.close(true).unwrap().expect("final offset");
        let mut data = Vec::new();
        while let Some(chunk) = reader.next_chunk() {
            data.extend_from_slice(&chunk.unwrap().data);
        }
        assert_eq!(data, b"ab", "{kind:?}");
        assert!(reader.is_eof());
        assert_eq!(reader.offset(), final_offset);
        let e = s.append("late").unwrap_err();
        assert!(e.is_closed(), "{kind:?}");
    }
}

#[test]
fn tracked_appends_report_their_outcome() {
    let server = RefServer::shared();
    for kind in DriverKind::ALL {
        let s = new_stream(server, kind, "tracked", "text/plain");
        let w = s.writer_with(config("tracked")).unwrap();
        let outcome = w.append_and_wait("x").unwrap().expect("an outcome");
        assert!(
            matches!(
                outcome,
                ds_proto::driver::write_tracker::WriteOutcome::Acked {
                    duplicate: false,
                    ..
                }
            ),
            "{kind:?}: {outcome:?}"
        );
        w.close(false).unwrap();
    }
}

/// Issue 16: a writer's batch sizes apply from its first append, also to appends made before
/// its background task or thread first runs (they went out in one batch of up to
/// `max_batch_bytes`, 32 MiB by default, where the plan cuts at 1 MiB); one at a time on a
/// plain `http://` stream the writer uses its dedicated connection.
/// The project's in-memory server model (ds-proto `sim`) behind a server that answers one
/// request per connection although its answers say keep-alive, then closes the connection
/// gracefully: it does not pipeline.
#[derive(Debug)]
struct OneRequestPerConnection {
    model: SimServer,
}

impl OneRequestPerConnection {
    fn answer(&mut self, r: &SeenRequest) -> Reply {
        let mut request = http::Request::builder()
            .method(r.method.as_str())
            .uri(&r.target);
        for (name, value) in &r.headers {
            request = request.header(name, value);
        }
        let request = request.body(Bytes::from(r.body.clone())).unwrap();
        let response = self
            .model
            .call(request, Instant::now())
            .unwrap_or_else(|_| panic!("{} {}: a read that waits", r.method, r.target));
        let mut headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(name, _)| *name != http::header::CONNECTION)
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        headers.push(("connection".into(), "keep-alive".into()));
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Reply::http(response.status().as_u16(), &headers, response.body())
            .then(Step::CloseGracefully)
    }
}

/// Issue 16: behind a server or proxy that does not pipeline (one request per connection, the
/// connection closed after the answer although it said keep-alive), the writers' pipelined
/// requests behind the first are refused; every append lands exactly once, in order, and the
/// writer falls back to pooled requests instead of pipelining again on every connection.
#[test]
fn a_server_that_does_not_pipeline_gets_every_append_once() {
    for kind in DriverKind::ALL {
        let state = Arc::new(Mutex::new(OneRequestPerConnection {
            model: SimServer::new(SimServerConfig::default()),
        }));
        let answers = state.clone();
        let server = HostileServer::start(move |r| answers.lock().unwrap().answer(r));
        let s = AnyClient::new(kind, server.url()).stream(&server.stream_url("no-pipelining"));
        s.create(CreateOptions::with_content_type("text/plain"))
            .unwrap();
        let w = s
            .writer_with(ProducerConfig {
                max_in_flight: 4,
                max_batch_items: 25,
                ..config("unpiped")
            })
            .unwrap();
        let count = 2_000;
        for n in 0..count {
            w.append(record(n)).unwrap();
        }
        w.close(false).unwrap_or_else(|f| panic!("{kind:?}: {f:?}"));
        let stored = state
            .lock()
            .unwrap()
            .model
            .stream_bytes("/v1/stream/no-pipelining");
        check_records(&stored.unwrap(), count);
        let posts = server
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count();
        assert!(posts >= count / 25, "{kind:?}: {posts} POSTs");
        // Pipelined requests were refused on the first connections only; then the writer
        // sent one request per connection, pooled (a pooled request may still race the
        // server's close now and then). 4-10 batches of 25 records (about 2.7 KB each) were
        // seen sent unanswered, also under load; pipelining again on every connection throws
        // away about 700 KB here.
        let discarded = server.bytes_discarded();
        assert!(
            discarded <= 60 * 2_800,
            "{kind:?}: {discarded} bytes sent unanswered"
        );
    }
}

#[test]
fn the_first_batch_is_cut_at_the_plan_target() {
    let server = RefServer::start();
    let proxy = Proxy::start(server.url());
    for kind in DriverKind::ALL {
        let name = format!("first-batch-{kind:?}");
        let s = AnyClient::new(kind, proxy.url()).stream(&proxy.url_for(&server.stream_url(&name)));
        s.create(CreateOptions::with_content_type("text/plain"))
            .unwrap();
        proxy.clear();
        let w = s
            .writer_with(ProducerConfig {
                max_in_flight: 1,
                linger: Duration::from_secs(5),
                ..config("first")
            })
            .unwrap();
        for i in 0..6u8 {
            w.append(vec![b'a' + i; 1 << 20]).unwrap();
        }
        w.flush().unwrap();
        let posts: Vec<u64> = proxy
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .map(|r| r.body_len)
            .collect();
        assert_eq!(posts.iter().sum::<u64>(), 6 << 20, "{kind:?}: {posts:?}");
        assert_eq!(posts[0], 1 << 20, "{kind:?}: the first batch, {posts:?}");
        w.close(false).unwrap();
        // Bodies this large leave after their head, uncopied: the stream holds them whole.
        let expected: Vec<u8> = (0..6u8).flat_map(|i| vec![b'a' + i; 1 << 20]).collect();
        assert!(s.read_all().unwrap().data[..] == expected[..], "{kind:?}");
    }
}
