//! The client: base URL, default headers, per-request providers, retry policy, timeouts, TLS
//! and the connection pool, shared by every stream handle, reader and writer made from it.
//!
//! The builder's settings and their validation, the client's documentation and its accessors
//! are the same in both drivers: they live once in `ds_proto::driver::client` (the settings) and its
//! hidden `__client!` macro, expanded here. What is this driver's own: building the transport
//! (and its TLS configuration) in [`ClientBuilder::build`].

use crate::handle::StreamHandle;
use crate::transport::Transport;
use ds_proto::Error;
use std::time::Duration;

pub use ds_proto::driver::client::ExtrasProvider;

ds_proto::__client! {
    /// A Durable Streams client for tokio. Cheap to clone; clones share the connection pool.
}

impl ClientBuilder {
    /// Builds the client. Fails with
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) on an invalid retry policy,
    /// a zero timeout or limit, a base URL that is not `http://` or `https://`, or a root
    /// certificate that cannot be parsed.
    pub fn build(self) -> Result<Client, Error> {
        let settings = self.settings;
        settings.validate()?;
        #[cfg(feature = "rustls")]
        let tls = if settings.root_certificates.is_empty() && settings.tls_built_in_roots {
            None
        } else {
            Some(
                crate::tls::client_config(settings.tls_built_in_roots, &settings.root_certificates)
                    .map_err(|m| settings.invalid(m))?,
            )
        };
        #[cfg(not(feature = "rustls"))]
        let tls = ();
        let transport = Transport::with_tls(settings.connect_timeout, Duration::from_secs(90), tls);
        Ok(Client::from_parts(
            transport,
            settings,
            crate::entropy_seed(),
        ))
    }
}
