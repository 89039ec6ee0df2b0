//! The Reader turning a catch-up body of 10,000 JSON messages (about 100 bytes each) into
//! items: the response fed in 64 KiB chunks, the `Data` chunk pulled, split into messages
//! (zero-copy slices). Beside it, the two floors: splitting the same body with serde_json
//! alone, and a `memchr` scan.
//!
//! `cargo bench -p ds-proto --bench reader`
#![forbid(unsafe_code)]
// A benchmark plays the driver: it reads the clock and hands `now` to the machines.
#![allow(clippy::disallowed_methods)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ds_proto::reader::{ReadMode, Reader, ReaderConfig, ReaderEvent};
use ds_proto::Input;
use std::hint::black_box;
use std::time::Instant;

const MESSAGES: usize = 10_000;

fn body() -> Vec<u8> {
    let mut out = Vec::with_capacity(MESSAGES * 104);
    out.push(b'[');
    for i in 0..MESSAGES {
        if i > 0 {
            out.push(b',');
        }
        let start = out.len();
        out.extend_from_slice(format!("{{\"id\":{i},\"kind\":\"event\",\"text\":\"").as_bytes());
        while out.len() - start < 98 {
            out.push(b'a' + (out.len() % 26) as u8);
        }
        out.extend_from_slice(b"\"}");
    }
    out.push(b']');
    out
}

fn head(len: usize) -> http::response::Parts {
    http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("content-length", len)
        .header("stream-next-offset", "0000000000000000_0000000001000000")
        .header("stream-up-to-date", "true")
        .body(())
        .expect("valid")
        .into_parts()
        .0
}

fn run_reader(chunks: &[Bytes], head: &http::response::Parts) -> usize {
    let now = Instant::now();
    let config = ReaderConfig {
        mode: ReadMode::CatchUp,
        ..ReaderConfig::new("http://127.0.0.1:4437/v1/stream/bench")
    };
    let mut r = Reader::new(config, now).expect("valid config");
    let t = r.poll_transmit(now).expect("a request");
    let id = t.id;
    r.handle_input(
        Input::Head {
            id,
            parts: head.clone(),
        },
        now,
    );
    for c in chunks {
        r.handle_input(
            Input::Body {
                id,
                chunk: c.clone(),
            },
            now,
        );
    }
    r.handle_input(Input::End { id }, now);
    let mut n = 0;
    while let Some(e) = r.poll_event() {
        if let ReaderEvent::Data(chunk) = e {
            let items = chunk.items().expect("a JSON array");
            for item in &items {
                n += black_box(item).len();
            }
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let body = body();
    let chunks: Vec<Bytes> = body.chunks(64 * 1024).map(Bytes::copy_from_slice).collect();
    let whole = Bytes::from(body.clone());
    let head = head(body.len());
    let mut g = c.benchmark_group("reader");
    g.throughput(Throughput::Elements(MESSAGES as u64));
    g.bench_function(BenchmarkId::new("catch-up-json", "10k-msgs"), |b| {
        b.iter(|| run_reader(black_box(&chunks), &head))
    });
    g.bench_function(BenchmarkId::new("split-array-only", "10k-msgs"), |b| {
        b.iter(|| ds_proto::json::split_array(black_box(&whole)).map(|v| v.len()))
    });
    g.bench_function(BenchmarkId::new("memchr", "10k-msgs"), |b| {
        b.iter(|| memchr::memchr_iter(b',', black_box(&whole)).count())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
