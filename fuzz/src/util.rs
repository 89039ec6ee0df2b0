//! Small helpers shared by the targets: a byte cursor for the hand-made input formats, cutting
//! an input into pieces, response heads and a fixed base instant.

use http::header::{HeaderName, HeaderValue};
use std::sync::OnceLock;
use std::time::Instant;

/// Reads the leading configuration bytes of an input; missing bytes read as zero.
#[derive(Debug)]
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data }
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// A small limit from one byte: below 128 a tiny one (`1..=128`, to hit the limit often),
/// otherwise a roomy one (`128 + step * (b - 128)`, for realistic inputs).
pub fn limit(b: u8, step: usize) -> usize {
    if b < 128 {
        1 + usize::from(b)
    } else {
        128 + step * usize::from(b - 128)
    }
}

/// `input` cut at the given positions (taken modulo `len + 1`, sorted, duplicates kept as empty
/// pieces: feeding an empty piece must be harmless too).
pub fn cut<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for c in cuts {
        out.push(&input[start..c]);
        start = c;
    }
    out.push(&input[start..]);
    out
}

/// The instant every script starts at (only differences matter).
pub fn base_instant() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Response parts with this status (any `100..=999`) and headers.
pub fn parts(status: u16, headers: &[(HeaderName, HeaderValue)]) -> http::response::Parts {
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    for (k, v) in headers {
        parts.headers.append(k.clone(), v.clone());
    }
    parts
}

/// A header pair from strings known to be valid.
pub fn hdr(name: &str, value: &str) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_bytes(name.as_bytes()).expect("valid header name"),
        HeaderValue::from_str(value).expect("valid header value"),
    )
}

/// A fixed-width offset token: byte-wise order is numeric order.
pub fn offset_token(n: u64) -> String {
    format!("{n:016}")
}

/// Whether `DS_FUZZ_TRACE` is set: the script harnesses then print what they do (to debug a
/// crash input: `DS_FUZZ_TRACE=1 cargo test --test corpus regressions`).
pub fn tracing() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("DS_FUZZ_TRACE").is_some())
}

/// Prints when [`tracing`] is on.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => {
        if $crate::util::tracing() {
            eprintln!($($arg)*);
        }
    };
}

/// One seed of a fuzz target's corpus: target, file name, bytes.
pub type Seed = (&'static str, &'static str, Vec<u8>);
