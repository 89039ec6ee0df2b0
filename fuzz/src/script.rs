//! Pieces shared by the state-machine scripts (`producer_script`, `reader_script`): fuzzer
//! choices derived with `arbitrary`, and an encoder that writes a script back as the bytes
//! `arbitrary` 1.x decodes it from, so that hand-written scripts can be committed as seeds
//! (`tests/corpus.rs` checks the round trip).

use arbitrary::{Arbitrary, Unstructured};
use ds_proto::io::{TransportError, TransportErrorKind};
use ds_proto::retry::RetryPolicy;
use std::time::Duration;

/// Decodes a script the way `fuzz_target!` would decode a typed input.
pub fn decode<'a, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}

/// Writes a value as the bytes `arbitrary` decodes it from (the layout of arbitrary 1.x:
/// integers little-endian, `bool` as a byte, enum variants as a `u32` scaled to the variant
/// count, `Option` as a bool then the value, collections as a "one more" bool before each
/// element and a `false` after the last; in last position, collections take the rest of the
/// input, with no final `false`).
pub trait Encode {
    fn encode(&self, out: &mut Vec<u8>);
    /// The encoding in last position (`arbitrary_take_rest`).
    fn encode_last(&self, out: &mut Vec<u8>) {
        self.encode(out)
    }
}

/// Encodes enum variant `index` of `count`.
pub fn variant(out: &mut Vec<u8>, index: u32, count: u32) {
    // The decoder computes (x * count) >> 32; take the smallest x giving `index`.
    let x = (u64::from(index) << 32).div_ceil(u64::from(count));
    out.extend_from_slice(&(x as u32).to_le_bytes());
}

/// Encodes a script.
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value.encode_last(&mut out);
    out
}

macro_rules! encode_int {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
encode_int!(u8, u16, u32, u64);

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        for v in self {
            out.push(1);
            v.encode(out);
        }
        out.push(0);
    }
    fn encode_last(&self, out: &mut Vec<u8>) {
        for v in self {
            out.push(1);
            v.encode(out);
        }
    }
}

/// Implements [`Encode`] for a struct: fields in order, the last one in last position.
#[macro_export]
macro_rules! encode_struct {
    ($ty:ty { $($field:ident),* ; $last:ident }) => {
        impl $crate::script::Encode for $ty {
            fn encode(&self, out: &mut Vec<u8>) {
                $( $crate::script::Encode::encode(&self.$field, out); )*
                $crate::script::Encode::encode(&self.$last, out);
            }
            fn encode_last(&self, out: &mut Vec<u8>) {
                $( $crate::script::Encode::encode(&self.$field, out); )*
                $crate::script::Encode::encode_last(&self.$last, out);
            }
        }
    };
}

/// A response status: the ones the protocol gives a meaning to, or any other.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    S200,
    S201,
    S204,
    S304,
    S400,
    S403,
    S404,
    S409,
    S410,
    S413,
    S429,
    S500,
    S503,
    Other(u16),
}

impl Status {
    pub const COUNT: u32 = 14;

    pub fn code(self) -> u16 {
        match self {
            Status::S200 => 200,
            Status::S201 => 201,
            Status::S204 => 204,
            Status::S304 => 304,
            Status::S400 => 400,
            Status::S403 => 403,
            Status::S404 => 404,
            Status::S409 => 409,
            Status::S410 => 410,
            Status::S413 => 413,
            Status::S429 => 429,
            Status::S500 => 500,
            Status::S503 => 503,
            Status::Other(n) => 100 + n % 900,
        }
    }

    fn index(self) -> u32 {
        match self {
            Status::S200 => 0,
            Status::S201 => 1,
            Status::S204 => 2,
            Status::S304 => 3,
            Status::S400 => 4,
            Status::S403 => 5,
            Status::S404 => 6,
            Status::S409 => 7,
            Status::S410 => 8,
            Status::S413 => 9,
            Status::S429 => 10,
            Status::S500 => 11,
            Status::S503 => 12,
            Status::Other(_) => 13,
        }
    }
}

impl Encode for Status {
    fn encode(&self, out: &mut Vec<u8>) {
        variant(out, self.index(), Self::COUNT);
        if let Status::Other(n) = self {
            n.encode(out);
        }
    }
}

/// A transport failure kind.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    Connect,
    Timeout,
    Reset,
    Protocol,
    TooLarge,
    Other,
}

impl FailKind {
    pub fn error(self) -> TransportError {
        let kind = match self {
            FailKind::Connect => TransportErrorKind::Connect,
            FailKind::Timeout => TransportErrorKind::Timeout,
            FailKind::Reset => TransportErrorKind::ConnectionReset,
            FailKind::Protocol => TransportErrorKind::Protocol,
            FailKind::TooLarge => TransportErrorKind::TooLarge,
            FailKind::Other => TransportErrorKind::Other,
        };
        TransportError::new(kind, "fuzz")
    }
}

impl Encode for FailKind {
    fn encode(&self, out: &mut Vec<u8>) {
        variant(out, *self as u32, 6);
    }
}

/// A retry policy, kept valid.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryKnobs {
    /// `initial_delay` in ms (at least 1).
    pub initial_ms: u8,
    /// `max_delay` = `initial_delay` + this many ms.
    pub spread_ms: u16,
    /// `max_attempts`: 0 = no limit.
    pub attempts: u8,
    /// `max_elapsed` in seconds: 0 = no limit.
    pub elapsed_s: u8,
}

encode_struct!(RetryKnobs { initial_ms, spread_ms, attempts; elapsed_s });

impl RetryKnobs {
    pub fn policy(self) -> RetryPolicy {
        let initial = Duration::from_millis(1 + u64::from(self.initial_ms));
        RetryPolicy {
            initial_delay: initial,
            max_delay: initial + Duration::from_millis(u64::from(self.spread_ms)),
            multiplier: 2.0,
            max_attempts: (self.attempts > 0).then_some(u32::from(self.attempts % 16) + 1),
            max_elapsed: (self.elapsed_s > 0)
                .then(|| Duration::from_secs(u64::from(self.elapsed_s))),
            retry_appends: false,
        }
    }
}
