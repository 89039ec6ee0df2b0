//! The client: base URL, default headers, per-request providers, retry policy, timeouts, TLS
//! and the connection pool, shared by every stream handle, reader and writer made from it.
//!
//! The builder's settings and their validation, the client's documentation and its accessors
//! are the same in both drivers: they live once in `ds_proto::driver::client` (the settings) and its
//! hidden `__client!` macro, expanded here. What is this driver's own: building the transport
//! (and its TLS configuration) from the settings.

use crate::transport::Transport;
use ds_proto::Error;
use std::time::Duration;

use ds_proto::driver::client::ClientSettings;
pub use ds_proto::driver::client::ExtrasProvider;

ds_proto::__client! {
    /// A Durable Streams client for tokio. Cheap to clone; clones share the connection pool.
}

impl Transport {
    /// The transport of validated `settings`: hyper's pooled client and the writers'
    /// pipelined connections, with ds-proto's rustls configuration of the settings' roots
    /// (ring as the crypto provider).
    pub(crate) fn from_settings(settings: &ClientSettings) -> Result<Transport, Error> {
        #[cfg(feature = "rustls")]
        let tls = std::sync::Arc::new(ds_proto::driver::tls::client_config(
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
            settings,
        )?);
        #[cfg(not(feature = "rustls"))]
        let tls = ();
        Ok(Transport::with_tls(
            settings.connect_timeout,
            Duration::from_secs(90),
            tls,
        ))
    }
}
