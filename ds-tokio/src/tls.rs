//! TLS through rustls (feature `rustls`): the root store (the bundled webpki roots unless turned
//! off, plus the root certificates the application adds) and the classification of rustls
//! failures as [`TransportErrorKind::Tls`](ds_proto::TransportErrorKind::Tls).
//!
//! The same rules hold in `ds-blocking`: [`ClientBuilder::add_root_certificate`] takes DER or
//! PEM (every `CERTIFICATE` block of a PEM bundle), and a certificate that cannot be parsed makes
//! [`ClientBuilder::build`] fail with [`ErrorKind::InvalidInput`](ds_proto::ErrorKind::InvalidInput).
//!
//! [`ClientBuilder::add_root_certificate`]: crate::ClientBuilder::add_root_certificate
//! [`ClientBuilder::build`]: crate::ClientBuilder::build

use ds_proto::driver::client::parse_root_certificates;
use std::sync::Arc;

/// The rustls client configuration: ring, the safe default protocol versions, and the roots.
pub(crate) fn client_config(
    built_in_roots: bool,
    extra_roots: &[Vec<u8>],
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    if built_in_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
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
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Whether a failure (or anything in its source chain, looking inside I/O errors too) is a
/// rustls error: a handshake alert, a rejected or unparsable certificate, a protocol violation.
/// An I/O failure during the handshake (a reset, a refused connection) is not.
pub(crate) fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    // hyper-rustls wraps tokio-rustls' I/O error, which wraps the rustls error.
    ds_proto::driver::client::error_chain_has::<rustls::Error>(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused() {
        assert!(client_config(false, &[b"not a certificate".to_vec()]).is_err());
        assert!(client_config(false, &[]).is_err());
        assert!(client_config(true, &[]).is_ok());
    }
}
