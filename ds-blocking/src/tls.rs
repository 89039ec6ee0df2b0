//! TLS through rustls (feature `rustls`): the root certificates of the ureq agent. The roots
//! trusted and their checks are ds-proto's ([`ds_proto::driver::tls`], the same rules as in
//! `ds-tokio`): [`ClientBuilder::add_root_certificate`] takes DER or PEM (every `CERTIFICATE`
//! block of a PEM bundle), and a certificate that cannot be parsed or used makes
//! [`ClientBuilder::build`] fail with [`ErrorKind::InvalidInput`](ds_proto::ErrorKind::InvalidInput).
//!
//! ureq replaces its built-in roots when given specific ones, so the bundled roots are passed
//! along as certificates (`webpki-root-certs`, the same Mozilla set as `webpki-roots`).
//!
//! [`ClientBuilder::add_root_certificate`]: crate::ClientBuilder::add_root_certificate
//! [`ClientBuilder::build`]: crate::ClientBuilder::build

use ds_proto::driver::client::ClientSettings;
use ds_proto::driver::tls::{added_roots, bundled_roots_only};
use ds_proto::Error;
use std::sync::Arc;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// The agent's TLS configuration: `None` (ureq's default: the webpki roots) when `settings`
/// trust just the bundled roots.
pub(crate) fn tls_config(settings: &ClientSettings) -> Result<Option<TlsConfig>, Error> {
    if bundled_roots_only(settings) {
        return Ok(None);
    }
    let added = added_roots(settings.tls_built_in_roots, &settings.root_certificates)
        .map_err(|m| settings.invalid(m))?;
    let bundled = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter(|_| settings.tls_built_in_roots);
    let certs = bundled
        .chain(&added)
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    Ok(Some(
        TlsConfig::builder()
            .root_certs(RootCerts::Specific(Arc::new(certs)))
            .build(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_gets_roots_only_when_they_differ_from_the_bundled_ones() {
        let mut settings = ClientSettings::default();
        assert!(tls_config(&settings).unwrap().is_none());
        settings.tls_built_in_roots = false;
        assert!(tls_config(&settings).is_err());
        settings
            .root_certificates
            .push(b"not a certificate".to_vec());
        assert!(tls_config(&settings).is_err());
    }
}
