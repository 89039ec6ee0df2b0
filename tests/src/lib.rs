//! Test tooling for the Durable Streams client crates (not published).
//!
//! - [`refserver`]: runs the reference server (npm `@durable-streams/server`, pinned) as a child
//!   `node` process, installing it on first use into `<workspace>/.cache/refserver` (or
//!   `$DS_REFSERVER_DIR`); [`RefServer::start`] for a private server, [`RefServer::shared`] for
//!   one per test process; fault injection through [`RefServer::inject_error`].
//! - [`proxy`]: [`Proxy`], a recording HTTP/1.1 proxy that forwards to a server and remembers
//!   every request's method, target and headers, streaming responses through unbuffered.
//! - [`drivers`]: one synchronous face over both client drivers, so every integration test
//!   runs the same scenario through `ds-tokio` and `ds-blocking`.
//! - [`raw_http`]: a minimal blocking HTTP/1.1 client for test setup and assertions.
//! - [`hostile`]: a misbehaving server answering each request with scripted raw bytes
//!   (malformed heads, lying lengths, endless bodies, silence), for the hardening tests.
//! - [`tls`]: a TLS-terminating proxy (tokio-rustls) with a certificate the test provides.
//! - [`conformance`]: the official client-conformance cases (YAML) and adapter protocol: a
//!   strict case runner, and the adapter shared with the `ds-conformance-adapter` binary.
//!
//! Everything here is blocking and needs no async runtime, so it can be used from plain
//! `#[test]`s and from `#[tokio::test]`s alike (the calls are short; inside a single-threaded
//! runtime they simply block it for their duration).
//!
//! Requires `node` (18 or later) and `npm` on `PATH`, and the npm registry for the first install.

#![forbid(unsafe_code)]

pub mod conformance;
pub mod drivers;
pub mod hostile;
pub mod proxy;
pub mod raw_http;
pub mod refserver;
pub mod sweep;
pub mod tls;

pub use proxy::{Proxy, RecordedRequest};
pub use raw_http::{RawConnection, RawResponse};
pub use refserver::{RefServer, RefServerOptions};
