//! SSE parser throughput beside a plain `memchr` scan of the same input (the ratio is the
//! figure): small events (100-byte JSON data) and large data events (64 KiB), fed in network-
//! sized chunks as `Bytes` (zero-copy, `feed_bytes`) and as slices (`feed`, which copies).
//!
//! `cargo bench -p ds-proto --bench sse`
#![forbid(unsafe_code)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ds_proto::sse::{SseLimits, SseParser};
use std::hint::black_box;

/// Bytes fed per chunk: what a socket read typically hands over.
const CHUNK: usize = 64 * 1024;

/// A Durable Streams SSE body: `count` data events of `data_len` bytes of JSON-ish text, a
/// control event after every `per_control` data events.
fn body(count: usize, data_len: usize, per_control: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * (data_len + 32));
    let mut payload = String::with_capacity(data_len);
    payload.push_str("[{\"id\":0,\"text\":\"");
    while payload.len() + 3 < data_len {
        payload.push('x');
    }
    payload.push_str("\"}]");
    for i in 0..count {
        out.extend_from_slice(b"event: data\ndata:");
        out.extend_from_slice(payload.as_bytes());
        out.extend_from_slice(b"\n\n");
        if (i + 1) % per_control == 0 {
            out.extend_from_slice(
                format!(
                    "event: control\ndata:{{\"streamNextOffset\":\"{:016}\",\"streamCursor\":\"1\"}}\n\n",
                    i
                )
                .as_bytes(),
            );
        }
    }
    out
}

fn chunks(body: &[u8]) -> Vec<Bytes> {
    body.chunks(CHUNK).map(Bytes::copy_from_slice).collect()
}

fn parse_bytes(chunks: &[Bytes]) -> usize {
    let mut p = SseParser::new(SseLimits::default());
    let mut n = 0;
    for c in chunks {
        p.feed_bytes(c.clone());
        while let Some(e) = p.next_event() {
            n += black_box(e.expect("valid")).data.len();
        }
    }
    let _ = p.finish();
    n
}

fn parse_slices(chunks: &[Bytes]) -> usize {
    let mut p = SseParser::new(SseLimits::default());
    let mut n = 0;
    for c in chunks {
        p.feed(c);
        while let Some(e) = p.next_event() {
            n += black_box(e.expect("valid")).data.len();
        }
    }
    let _ = p.finish();
    n
}

fn memchr_scan(chunks: &[Bytes]) -> usize {
    chunks
        .iter()
        .map(|c| memchr::memchr_iter(b'\n', c).count())
        .sum()
}

fn bench(c: &mut Criterion) {
    let cases = [
        // ~4 MiB of 100-byte events, a control every 10 events (a long-poll's worth each).
        ("small-100B", body(36_000, 100, 10)),
        // 4 MiB of 64 KiB events (one per append), a control every 4.
        ("large-64KiB", body(64, 64 * 1024, 4)),
    ];
    let mut g = c.benchmark_group("sse");
    for (name, input) in &cases {
        let chunks = chunks(input);
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_with_input(BenchmarkId::new("memchr", name), &chunks, |b, ch| {
            b.iter(|| memchr_scan(black_box(ch)))
        });
        g.bench_with_input(BenchmarkId::new("feed_bytes", name), &chunks, |b, ch| {
            b.iter(|| parse_bytes(black_box(ch)))
        });
        g.bench_with_input(BenchmarkId::new("feed", name), &chunks, |b, ch| {
            b.iter(|| parse_slices(black_box(ch)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
