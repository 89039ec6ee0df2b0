//! Fuzz targets of `ds-proto`, as library functions.
//!
//! Each target is a `pub fn(&[u8])` that panics when an invariant breaks. The cargo-fuzz
//! binaries in `fuzz_targets/` are two-liners calling them, and `tests/corpus.rs` replays the
//! committed seed corpus (`corpus/<target>/`) and crash inputs (`regressions/<target>/`)
//! through the same functions with a plain `cargo test` on stable.
//!
//! Every module documents the input format of its target(s).
#![forbid(unsafe_code)]

pub mod headers;
pub mod http1;
pub mod http1_pipeline;
pub mod json_validate;
pub mod producer;
pub mod read_body;
pub mod reader;
pub mod script;
pub mod seeds;
pub mod sse;
pub mod subscription;
pub mod util;

pub use headers::headers;
pub use http1::{http1_decode, http1_encode};
pub use http1_pipeline::http1_pipeline;
pub use json_validate::json_validate;
pub use producer::producer_script;
pub use read_body::read_body;
pub use reader::reader_script;
pub use sse::{sse_chunking, sse_parse};
pub use subscription::{subscription_bodies, webhook_signature, worker_script};

/// A target: panics when it finds a bug.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of `fuzz_targets/*.rs` and of the corpus folders).
pub const TARGETS: &[(&str, Target)] = &[
    ("sse_parse", sse_parse),
    ("sse_chunking", sse_chunking),
    ("headers", headers),
    ("read_body", read_body),
    ("producer_script", producer_script),
    ("reader_script", reader_script),
    ("http1_decode", http1_decode),
    ("http1_encode", http1_encode),
    ("http1_pipeline", http1_pipeline),
    ("json_validate", json_validate),
    ("webhook_signature", webhook_signature),
    ("subscription_bodies", subscription_bodies),
    ("worker_script", worker_script),
];

/// Runs the target called `name` on `data`.
///
/// # Panics
///
/// When `name` is not a target, or the target finds a bug.
pub fn run(name: &str, data: &[u8]) {
    let (_, f) = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name:?}"));
    f(data);
}
