//! TLS through rustls (feature `rustls`): the root certificates of the ureq agent (the bundled
//! webpki roots unless turned off, plus the root certificates the application adds) and the
//! classification of rustls failures as
//! [`TransportErrorKind::Tls`](ds_proto::TransportErrorKind::Tls).
//!
//! The same rules hold in `ds-tokio`: [`ClientBuilder::add_root_certificate`] takes DER or PEM
//! (every `CERTIFICATE` block of a PEM bundle), and a certificate that cannot be parsed makes
//! [`ClientBuilder::build`] fail with [`ErrorKind::InvalidInput`](ds_proto::ErrorKind::InvalidInput).
//!
//! ureq replaces its built-in roots when given specific ones, so the bundled roots are passed
//! along as certificates (`webpki-root-certs`, the same Mozilla set as `webpki-roots`).
//!
//! [`ClientBuilder::add_root_certificate`]: crate::ClientBuilder::add_root_certificate
//! [`ClientBuilder::build`]: crate::ClientBuilder::build

use ds_proto::driver::client::parse_root_certificates;
use std::sync::Arc;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// The agent's TLS configuration: `None` (ureq's default: the webpki roots) when nothing was
/// changed.
pub(crate) fn tls_config(
    built_in_roots: bool,
    extra_roots: &[Vec<u8>],
) -> Result<Option<TlsConfig>, String> {
    if built_in_roots && extra_roots.is_empty() {
        return Ok(None);
    }
    let mut certs: Vec<Certificate<'static>> = Vec::new();
    if built_in_roots {
        certs.extend(
            webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned()),
        );
    }
    // ureq skips certificates it cannot use without a word: check each one here.
    let mut check = rustls::RootCertStore::empty();
    for raw in extra_roots {
        for cert in parse_root_certificates(raw)? {
            check
                .add(cert.clone())
                .map_err(|e| format!("a root certificate is not usable: {e}"))?;
            certs.push(Certificate::from_der(cert.as_ref()).to_owned());
        }
    }
    if certs.is_empty() {
        return Err(
            "no root certificate: the built-in roots are off and none was added".to_owned(),
        );
    }
    Ok(Some(
        TlsConfig::builder()
            .root_certs(RootCerts::Specific(Arc::new(certs)))
            .build(),
    ))
}

/// The rustls configuration of a writer's pipelined connection, which the driver opens
/// itself: the same roots as the agent's (the bundled ones unless turned off, plus the
/// application's), ring, the safe default protocol versions.
pub(crate) fn rustls_config(
    built_in_roots: bool,
    extra_roots: &[Vec<u8>],
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    if built_in_roots {
        roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    }
    for raw in extra_roots {
        for cert in parse_root_certificates(raw)? {
            roots
                .add(cert)
                .map_err(|e| format!("a root certificate is not usable: {e}"))?;
        }
    }
    if roots.is_empty() {
        return Err(
            "no root certificate: the built-in roots are off and none was added".to_owned(),
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Whether an I/O failure wraps a rustls error (ureq reports a handshake failure, such as a
/// rejected certificate, as an I/O error around it), anywhere in its chain.
pub(crate) fn is_tls_io(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| ds_proto::driver::client::error_chain_has::<rustls::Error>(inner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused() {
        assert!(tls_config(false, &[b"not a certificate".to_vec()]).is_err());
        assert!(tls_config(false, &[]).is_err());
        assert!(tls_config(true, &[]).unwrap().is_none());
        assert!(rustls_config(false, &[b"not a certificate".to_vec()]).is_err());
        assert!(rustls_config(false, &[]).is_err());
        assert!(rustls_config(true, &[]).is_ok());
    }
}
