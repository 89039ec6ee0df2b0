//! Deterministic simulation support (feature `sim`).
//!
//! [`SimServer`] is an in-memory Durable Streams server written from `PROTOCOL.md`: streams,
//! appends, idempotent producers, closure, forks, TTL and expiry, catch-up, long-poll and SSE
//! reads, JSON mode. It is sans-IO like the rest of the crate: requests are `http::Request`
//! values, responses come out as a queue of [`ExchangeOutput`]s, time is an `Instant` argument
//! and randomness comes from a seeded [`crate::rng::Rng`]. The same seed and the same inputs
//! give the same outputs, byte for byte.

pub mod server;

pub use server::{ExchangeId, ExchangeOutput, ProducerState, SimServer, SimServerConfig};
