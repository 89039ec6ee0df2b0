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

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::sync::Arc;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// Parses one root certificate argument: PEM when it starts like PEM (every `CERTIFICATE`
/// block is taken, other blocks are ignored), DER otherwise.
pub(crate) fn parse_certificates(
    der_or_pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, String> {
    let looks_pem = der_or_pem.trim_ascii_start().starts_with(b"-----BEGIN");
    if !looks_pem {
        if der_or_pem.is_empty() {
            return Err("a root certificate is empty".to_owned());
        }
        return Ok(vec![CertificateDer::from(der_or_pem.to_vec())]);
    }
    let certs = CertificateDer::pem_slice_iter(der_or_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("a root certificate is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("a PEM root certificate has no CERTIFICATE block".to_owned());
    }
    Ok(certs)
}

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
        for cert in parse_certificates(raw)? {
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

/// Whether an I/O failure wraps a rustls error (ureq reports a handshake failure, such as a
/// rejected certificate, as an I/O error around it).
pub(crate) fn is_tls_io(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| is_tls_failure(inner))
}

/// Whether an error or anything it wraps is a rustls error (`io::Error::source` skips the
/// error it wraps, so I/O errors are looked into directly).
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    if e.downcast_ref::<rustls::Error>().is_some() {
        return true;
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
    {
        if is_tls_failure(inner) {
            return true;
        }
    }
    e.source().is_some_and(is_tls_failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused() {
        assert!(parse_certificates(b"").is_err());
        assert!(parse_certificates(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
        assert!(tls_config(false, &[b"not a certificate".to_vec()]).is_err());
        assert!(tls_config(false, &[]).is_err());
        assert!(tls_config(true, &[]).unwrap().is_none());
    }
}
