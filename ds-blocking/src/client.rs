//! The client: base URL, default headers, per-request providers, retry policy, timeouts, TLS
//! and the connection pool, shared by every stream handle, reader and writer made from it.
//!
//! The builder's settings and their validation, the client's documentation and its accessors
//! are the same in both drivers: they live once in `ds_proto::driver::client` (the settings) and its
//! hidden `__client!` macro, expanded here. What is this driver's own: building the transport
//! (and its TLS configuration) from the settings.

use crate::transport::Transport;
use ds_proto::Error;

use ds_proto::driver::client::ClientSettings;
pub use ds_proto::driver::client::ExtrasProvider;

ds_proto::__client! {
    /// A Durable Streams client for plain threads. Cheap to clone; clones share the connection
    /// pool.
}

impl Transport {
    /// The transport of validated `settings`: ureq's pooled agent with its TLS configuration,
    /// and the writers' pipelined connections with ds-proto's rustls configuration of the same
    /// roots (ring as the crypto provider).
    pub(crate) fn from_settings(settings: &ClientSettings) -> Result<Transport, Error> {
        #[cfg(feature = "rustls")]
        let tls = crate::tls::tls_config(settings)?;
        #[cfg(not(feature = "rustls"))]
        let tls = ();
        #[cfg(feature = "rustls")]
        let pipelined_tls = ds_proto::driver::tls::client_config(
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
            settings,
        )?;
        #[cfg(not(feature = "rustls"))]
        let pipelined_tls = ();
        let pipelined = crate::pipeline::Connector::new(settings.connect_timeout, pipelined_tls);
        Ok(Transport::with_tls(
            settings.connect_timeout,
            None,
            tls,
            pipelined,
        ))
    }
}
