//! The Producer's append-and-seal path (appends/s for 100-byte and 1 KiB items, JSON and
//! binary) beside copying the same bytes into a `Vec` the way a batch body is built (the
//! ratio is the figure).
//!
//! Each iteration appends 4 MiB of items to a producer (1 MiB batches, one in flight), runs
//! the `poll_*` round whenever [`Producer::take_append_wake`] asks for it (as both drivers
//! do: an append that only joins the open batch does not wake their loop), and acknowledges
//! every request at once, so the measured path is: validate, buffer, seal, build the batch
//! body and the request, and handle the acknowledgement.
//!
//! `cargo bench -p ds-proto --bench producer`
#![forbid(unsafe_code)]
// A benchmark plays the driver: it reads the clock and hands `now` to the machines.
#![allow(clippy::disallowed_methods)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ds_proto::producer::{Producer, ProducerConfig};
use ds_proto::Input;
use std::hint::black_box;
use std::time::Instant;

const TOTAL: usize = 4 << 20;
const BATCH: usize = 1 << 20;

/// `count` items of `len` bytes each, as static slices (cloning them costs nothing, so the
/// producer's own work is what is measured).
fn items(len: usize, json: bool) -> Vec<Bytes> {
    let count = TOTAL / len;
    let mut all = Vec::with_capacity(count * len);
    for i in 0..count {
        let start = all.len();
        if json {
            all.extend_from_slice(format!("{{\"id\":{i},\"text\":\"").as_bytes());
            while all.len() - start < len - 2 {
                all.push(b'a' + (all.len() % 26) as u8);
            }
            all.extend_from_slice(b"\"}");
        } else {
            all.extend((0..len).map(|j| (i + j) as u8));
        }
    }
    let all: &'static [u8] = Vec::leak(all);
    (0..count)
        .map(|i| Bytes::from_static(&all[i * len..(i + 1) * len]))
        .collect()
}

fn ack_head() -> http::response::Parts {
    http::Response::builder()
        .status(200)
        .header("stream-next-offset", "0000000000000000_0000000000000001")
        .body(())
        .expect("valid")
        .into_parts()
        .0
}

fn config(json: bool) -> ProducerConfig {
    ProducerConfig {
        max_batch_bytes: BATCH,
        max_batch_items: usize::MAX,
        max_buffered_bytes: 64 << 20,
        content_type: if json {
            "application/json".into()
        } else {
            "application/octet-stream".into()
        },
        ..ProducerConfig::new("http://127.0.0.1:4437/v1/stream/bench", "bench")
    }
}

/// `serialized`: JSON items are appended with `append_serialized_json` (what the drivers'
/// `append_json` does with the bytes serde_json just wrote), so they are not validated again.
fn run_producer(
    items: &[Bytes],
    json: bool,
    serialized: bool,
    head: &http::response::Parts,
) -> usize {
    let now = Instant::now();
    let mut p = Producer::new(config(json), now).expect("valid config");
    let mut sent = 0;
    let mut send = |p: &mut Producer| {
        while let Some(t) = p.poll_transmit(now) {
            sent += black_box(t.request.body().len());
            p.handle_input(
                Input::Head {
                    id: t.id,
                    parts: head.clone(),
                },
                now,
            );
            p.handle_input(Input::End { id: t.id }, now);
        }
        while let Some(e) = p.poll_event() {
            black_box(e);
        }
    };
    for item in items {
        if serialized {
            p.append_serialized_json(item.clone(), now)
                .expect("accepted");
        } else {
            p.append(item.clone(), now).expect("accepted");
        }
        if p.take_append_wake() {
            send(&mut p);
        }
    }
    p.flush(now);
    send(&mut p);
    assert!(p.is_idle());
    sent
}

/// The floor: the same bytes copied into a batch body (`[a,b,...]` for JSON).
fn run_copy(items: &[Bytes], json: bool) -> usize {
    let mut body: Vec<u8> = Vec::with_capacity(BATCH + 1024);
    let mut sent = 0;
    for item in items {
        if body.len() + item.len() + 2 > BATCH && !body.is_empty() {
            if json {
                body.push(b']');
            }
            sent += black_box(&body).len();
            body.clear();
        }
        if json {
            body.push(if body.is_empty() { b'[' } else { b',' });
        }
        body.extend_from_slice(item);
    }
    sent + black_box(&body).len()
}

fn bench(c: &mut Criterion) {
    let head = ack_head();
    let mut g = c.benchmark_group("producer");
    for json in [false, true] {
        for len in [100usize, 1024] {
            let items = items(len, json);
            let name = format!("{}-{}B", if json { "json" } else { "binary" }, len);
            g.throughput(Throughput::Elements(items.len() as u64));
            g.bench_with_input(BenchmarkId::new("vec-copy", &name), &items, |b, it| {
                b.iter(|| run_copy(it, json))
            });
            g.bench_with_input(BenchmarkId::new("append-seal", &name), &items, |b, it| {
                b.iter(|| run_producer(it, json, false, &head))
            });
            if json {
                let id = BenchmarkId::new("append-seal-serialized", &name);
                g.bench_with_input(id, &items, |b, it| {
                    b.iter(|| run_producer(it, json, true, &head))
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
