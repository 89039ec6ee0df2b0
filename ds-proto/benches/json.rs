//! `json::validate`, run by the producer on every JSON append, beside the serde_json
//! implementation it replaced and beside `std::str::from_utf8` alone (its first step, and the
//! floor): a 100-byte object, a 1 KiB object and a 64 KiB array of mixed values.
//!
//! `cargo bench -p ds-proto --bench json`
#![forbid(unsafe_code)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ds_proto::json;
use std::hint::black_box;

/// The implementation `validate` replaced: UTF-8, then serde_json skipping the value.
fn serde_validate(body: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("invalid JSON: not UTF-8: {e}"))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| format!("invalid JSON: {e}"))
}

/// `{"id":123,"text":"abc..."}` of exactly `len` bytes: what the producer bench appends.
fn object(len: usize) -> Vec<u8> {
    let mut out = b"{\"id\":123,\"text\":\"".to_vec();
    while out.len() < len - 2 {
        out.push(b'a' + (out.len() % 26) as u8);
    }
    out.extend_from_slice(b"\"}");
    out
}

/// A 1 KiB object with the fields of a typical event: numbers, a flag, a null, tags, a nested
/// object, and a text with escapes and non-ASCII characters.
fn event(len: usize) -> Vec<u8> {
    let mut out = String::from(
        "{\"id\":1234567,\"ts\":1718000000.125,\"user\":\"u-42\",\"ok\":true,\"parent\":null,\
         \"tags\":[\"chat\",\"ai\",\"tokens\"],\"meta\":{\"model\":\"m-1\",\"score\":-0.5e-3},\
         \"text\":\"",
    );
    let words = [
        "the ",
        "quick ",
        "brown ",
        "fox ",
        "\\n",
        "caf\u{e9} ",
        "\\\"q\\\" ",
    ];
    let mut k = 0;
    while out.len() < len - 2 - 8 {
        out.push_str(words[k % words.len()]);
        k += 1;
    }
    while out.len() < len - 2 {
        out.push('.');
    }
    out.push_str("\"}");
    out.into_bytes()
}

/// A JSON array of about `len` bytes of mixed values: integers, floats, literals, strings with
/// escapes and non-ASCII text, small objects and nested arrays.
fn mixed(len: usize) -> Vec<u8> {
    let items = [
        "12345",
        "-7",
        "3.14159",
        "6.02e23",
        "true",
        "false",
        "null",
        "\"short\"",
        "\"a longer string with some words in it, as messages have\"",
        "\"esc\\\"aped\\\\ \\u00e9\\n\\t\"",
        "\"\u{e9}t\u{e9} \u{1F600} \u{4e2d}\u{6587}\"",
        "{\"k\":1,\"v\":[1,2,3],\"s\":\"x\"}",
        "[[1,2],[3,4],{\"a\":null}]",
        "{}",
        "[]",
    ];
    let mut out = String::from("[");
    let mut k = 0;
    while out.len() < len - 64 {
        if k > 0 {
            out.push(',');
        }
        out.push_str(items[k % items.len()]);
        k += 1;
    }
    out.push(']');
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("json-validate");
    let inputs = [
        ("object-100B", object(100)),
        ("object-1KiB", event(1024)),
        ("array-64KiB", mixed(64 * 1024)),
    ];
    for (name, body) in &inputs {
        assert!(json::validate(body).is_ok(), "{name}");
        assert!(serde_validate(body).is_ok(), "{name}");
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("from_utf8", name), body, |b, body| {
            b.iter(|| std::str::from_utf8(black_box(body)).is_ok())
        });
        g.bench_with_input(BenchmarkId::new("serde_json", name), body, |b, body| {
            b.iter(|| serde_validate(black_box(body)).is_ok())
        });
        g.bench_with_input(BenchmarkId::new("validate", name), body, |b, body| {
            b.iter(|| json::validate(black_box(body)).is_ok())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
