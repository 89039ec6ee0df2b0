//! Deterministic simulation support (feature `sim`).
//!
//! [`SimServer`] is an in-memory Durable Streams server written from `PROTOCOL.md`: streams,
//! appends, idempotent producers, closure, forks, TTL and expiry, catch-up, long-poll and SSE
//! reads, JSON mode, and subscriptions (pull-wake, and webhooks queued as requests for the owner
//! to send: [`SimServer::poll_webhook`]). It is sans-IO like the rest of the crate: requests are `http::Request`
//! values, responses come out as a queue of [`ExchangeOutput`]s, time is an `Instant` argument
//! and randomness comes from a seeded [`crate::rng::Rng`]. The same seed and the same inputs
//! give the same outputs, byte for byte.
//!
//! [`net::Net`] is a seeded, fault-injecting network (latency, drops before and after the
//! server, duplicates, reordering, injected 429/5xx, split bodies, connection resets), itself a
//! sans-IO machine. [`world::World`] puts a server, a network and any number of client state
//! machines on one virtual clock and drives them deterministically: the harness for testing
//! applications (and this crate) against a faulty world.

pub mod net;
pub mod server;
pub mod world;

pub use server::{
    ExchangeId, ExchangeOutput, ProducerState, SimServer, SimServerConfig, WebhookDelivery,
    WebhookId,
};
