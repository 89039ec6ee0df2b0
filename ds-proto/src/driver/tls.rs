//! The drivers' TLS configuration (feature `rustls`), built once for both: which root
//! certificates are trusted (the bundled webpki roots unless turned off, plus the ones the
//! application adds, DER or PEM), the rustls client configuration made from them, and how a
//! rustls failure is recognised inside a transport error. No crypto provider is chosen here:
//! each driver passes the one it links (ring), so ds-proto stays free of it. No I/O.
//!
//! A certificate that cannot be parsed or used, or no root at all (the bundled ones turned off
//! and none added), is refused with a message; drivers turn it into
//! [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) with
//! [`ClientSettings::invalid`].

use super::client::{error_chain_has, parse_root_certificates, ClientSettings};
use crate::exchange::{TransportError, TransportErrorKind};
use crate::Error;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use std::sync::Arc;

/// Whether `settings` trust exactly the bundled roots (nothing added, nothing turned off): a
/// driver whose HTTP stack bundles the same roots then needs no configuration of its own.
pub fn bundled_roots_only(settings: &ClientSettings) -> bool {
    settings.tls_built_in_roots && settings.root_certificates.is_empty()
}

/// The root certificates the application added (each argument DER or PEM), each checked to be
/// usable as a trust anchor: some HTTP stacks skip an unusable one without a word. Refused
/// too: no root at all, when `built_in_roots` is off and nothing was added.
pub fn added_roots(
    built_in_roots: bool,
    extra_roots: &[Vec<u8>],
) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut check = RootCertStore::empty();
    let mut added = Vec::new();
    for raw in extra_roots {
        for cert in parse_root_certificates(raw)? {
            check
                .add(cert.clone())
                .map_err(|e| format!("a root certificate is not usable: {e}"))?;
            added.push(cert);
        }
    }
    if !built_in_roots && added.is_empty() {
        return Err(
            "no root certificate: the built-in roots are off and none was added".to_owned(),
        );
    }
    Ok(added)
}

/// The rustls root store: the bundled webpki (Mozilla) roots when `built_in_roots`, plus the
/// [`added_roots`].
pub fn root_store(built_in_roots: bool, extra_roots: &[Vec<u8>]) -> Result<RootCertStore, String> {
    let added = added_roots(built_in_roots, extra_roots)?;
    let mut roots = RootCertStore::empty();
    if built_in_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    roots.add_parsable_certificates(added);
    Ok(roots)
}

/// The rustls client configuration of `settings`' roots ([`root_store`]) with the driver's
/// crypto `provider` and its safe default protocol versions, no client certificate. Bad roots
/// are [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput).
pub fn client_config(
    provider: Arc<CryptoProvider>,
    settings: &ClientSettings,
) -> Result<ClientConfig, Error> {
    let roots = root_store(settings.tls_built_in_roots, &settings.root_certificates)
        .map_err(|m| settings.invalid(m))?;
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| settings.invalid(format!("TLS configuration: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Whether a failure (or anything in its source chain, inside I/O errors too) is a rustls
/// error: a handshake alert, a rejected or unparsable certificate, a protocol violation. An
/// I/O failure during the handshake (a reset, a refused connection) is not. HTTP stacks wrap
/// the rustls error in I/O errors (hyper-rustls in tokio-rustls', ureq in its own).
pub fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    error_chain_has::<rustls::Error>(e)
}

/// A TLS handshake that failed with `e`, as a transport error:
/// [`Tls`](TransportErrorKind::Tls) when rustls refused (a certificate, an alert, a protocol
/// violation), [`Connect`](TransportErrorKind::Connect) when the connection itself failed (a
/// reset, the peer closing): the request was not sent either way.
pub fn handshake_error(e: &std::io::Error) -> TransportError {
    let kind = if is_tls_failure(e) {
        TransportErrorKind::Tls
    } else {
        TransportErrorKind::Connect
    };
    TransportError::new(kind, e.to_string())
}

/// The name a writer's dedicated connection verifies the server's certificate against: the
/// request's host (a DNS name or an IP address). A host rustls cannot take is a
/// [`Tls`](TransportErrorKind::Tls) error, before anything is sent.
pub fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, TransportError> {
    rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| TransportError::new(TransportErrorKind::Tls, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    /// A self-signed root made for these tests (P-256, valid until 2126).
    const ROOT: &[u8] = b"-----BEGIN CERTIFICATE-----
MIIBhjCCASugAwIBAgIUR2hYsdEg8d14BnVjHdSPoPJMIbIwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMZHMgdGVzdCByb290MCAXDTI2MTIwNzA5MzgyMloYDzIxMjYx
MTEzMDkzODIyWjAXMRUwEwYDVQQDDAxkcyB0ZXN0IHJvb3QwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAQ4IugRBN/kBJg/D87OvtvpaGL4fNAZY4gH77B9wnBtEF0e
XyLzF1zWP5tO93r/4XIRCSQWlZ6+PsHiO/kG26YNo1MwUTAdBgNVHQ4EFgQU7ve8
eh3kasWtOTpPHq12KdzUSJYwHwYDVR0jBBgwFoAU7ve8eh3kasWtOTpPHq12KdzU
SJYwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEA8fI6sv+N7jje
RWVUp4e/JdzJx795Jh1fcfxJNnLxjpsCIQCwdnFmAt8iH6sbtl5L3dEo15uiAzOh
Q2rprbTt8tFnxA==
-----END CERTIFICATE-----
";

    #[test]
    fn roots_are_the_bundled_ones_plus_the_added_ones() {
        let bundled = root_store(true, &[]).unwrap().len();
        assert_eq!(bundled, webpki_roots::TLS_SERVER_ROOTS.len());
        assert_eq!(
            root_store(true, &[ROOT.to_vec()]).unwrap().len(),
            bundled + 1
        );
        assert_eq!(root_store(false, &[ROOT.to_vec()]).unwrap().len(), 1);
        assert_eq!(added_roots(true, &[]).unwrap(), Vec::new());
        assert_eq!(added_roots(false, &[ROOT.to_vec()]).unwrap().len(), 1);
    }

    #[test]
    fn unusable_or_missing_roots_are_refused() {
        // Parses as DER (it does not start like PEM) but is no certificate.
        let garbage = added_roots(true, &[b"not a certificate".to_vec()]).unwrap_err();
        assert!(garbage.contains("not usable"), "{garbage}");
        let none = root_store(false, &[]).unwrap_err();
        assert!(none.contains("no root certificate"), "{none}");
        let mut settings = ClientSettings::default();
        settings
            .root_certificates
            .push(b"not a certificate".to_vec());
        assert!(!bundled_roots_only(&settings));
        let err = client_config(Arc::new(no_crypto()), &settings).unwrap_err();
        assert!(matches!(err.kind, ErrorKind::InvalidInput(_)), "{err}");
    }

    #[test]
    fn a_provider_without_cipher_suites_is_an_error_not_a_panic() {
        let settings = ClientSettings::default();
        assert!(bundled_roots_only(&settings));
        let err = client_config(Arc::new(no_crypto()), &settings).unwrap_err();
        assert!(err.to_string().contains("TLS configuration"), "{err}");
    }

    #[test]
    fn rustls_failures_are_found_inside_io_errors() {
        let tls = std::io::Error::other(rustls::Error::DecryptError);
        assert!(is_tls_failure(&tls));
        assert!(!is_tls_failure(&std::io::Error::other("reset")));
        assert_eq!(handshake_error(&tls).kind, TransportErrorKind::Tls);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(handshake_error(&reset).kind, TransportErrorKind::Connect);
    }

    /// A provider that offers nothing (ds-proto links no crypto).
    fn no_crypto() -> CryptoProvider {
        #[derive(Debug)]
        struct Nothing;
        impl rustls::crypto::SecureRandom for Nothing {
            fn fill(&self, _: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
                Err(rustls::crypto::GetRandomFailed)
            }
        }
        impl rustls::crypto::KeyProvider for Nothing {
            fn load_private_key(
                &self,
                _: rustls_pki_types::PrivateKeyDer<'static>,
            ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
                Err(rustls::Error::General("no keys".into()))
            }
        }
        CryptoProvider {
            cipher_suites: Vec::new(),
            kx_groups: Vec::new(),
            signature_verification_algorithms: rustls::crypto::WebPkiSupportedAlgorithms {
                all: &[],
                mapping: &[],
            },
            secure_random: &Nothing,
            key_provider: &Nothing,
        }
    }

    #[test]
    fn a_server_name_is_the_host_or_a_tls_error() {
        assert!(matches!(
            server_name("example.com"),
            Ok(rustls::pki_types::ServerName::DnsName(_))
        ));
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(rustls::pki_types::ServerName::IpAddress(_))
        ));
        let bad = server_name("not a host").unwrap_err();
        assert_eq!(bad.kind, TransportErrorKind::Tls);
    }
}
