//! TLS through rustls in both drivers: a local TLS-terminating proxy with certificates made by
//! `rcgen`, in front of the embedded server. A root added with
//! `ClientBuilder::add_root_certificate` (DER or PEM) is trusted; a certificate that chains to
//! no trusted root is refused with a transport error of kind `Tls`, at once and without retry.

use ds_proto::ops::CreateOptions;
use ds_proto::reader::{ReadMode, ReaderEvent};
use ds_proto::{ErrorKind, Offset, TransportErrorKind};
use ds_tests::drivers::{AnyClient, ClientSettings, DriverKind};
use ds_tests::hostile::within;
use ds_tests::tls::TlsProxy;
use ds_tokio::server::{BackgroundServer, ServerConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::time::{Duration, Instant};

/// A CA, and a leaf for `localhost` / `127.0.0.1` signed by it.
struct Pki {
    ca_der: Vec<u8>,
    ca_pem: String,
    leaf_der: Vec<u8>,
    leaf_key: Vec<u8>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ds hardening test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    Pki {
        ca_der: ca.der().to_vec(),
        ca_pem: ca.pem(),
        leaf_der: leaf.der().to_vec(),
        leaf_key: leaf_key.serialize_der(),
    }
}

/// A self-signed leaf for `127.0.0.1` (no CA behind it).
fn self_signed() -> (Vec<u8>, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.der().to_vec(), key.serialize_der())
}

fn embedded() -> BackgroundServer {
    let mut config = ServerConfig::default();
    config.model.long_poll_timeout = Duration::from_millis(300);
    BackgroundServer::start(config).expect("embedded server")
}

fn settings(roots: Vec<Vec<u8>>) -> ClientSettings {
    ClientSettings {
        root_certificates: roots,
        request_timeout: Some(Duration::from_secs(10)),
        ..ClientSettings::default()
    }
}

#[test]
fn added_root_makes_https_work_in_both_drivers() {
    within(
        Duration::from_secs(60),
        "added_root_makes_https_work_in_both_drivers",
        || {
            let server = embedded();
            let pki = pki();
            let proxy = TlsProxy::start(
                vec![pki.leaf_der.clone(), pki.ca_der.clone()],
                pki.leaf_key.clone(),
                server.url(),
            )
            .unwrap();
            for kind in DriverKind::ALL {
                // DER for one form, PEM for the other: both parse.
                for (form, root) in [
                    ("der", pki.ca_der.clone()),
                    ("pem", pki.ca_pem.clone().into_bytes()),
                ] {
                    let client = AnyClient::with_settings(kind, proxy.url(), settings(vec![root]));
                    let s = client.stream(&format!("/v1/stream/tls-{kind:?}-{form}"));
                    assert!(s.url().starts_with("https://"));
                    assert!(
                        s.create(CreateOptions::with_content_type("text/plain"))
                            .unwrap()
                            .created
                    );
                    s.append("over ").unwrap();
                    s.append("tls").unwrap();
                    assert_eq!(
                        &s.read_all().unwrap().data[..],
                        b"over tls",
                        "{kind:?} {form}"
                    );
                    // The machines' exchanges (engine) go over TLS too.
                    let w = s.writer("tls-writer").unwrap();
                    w.append("!").unwrap();
                    w.close(false).unwrap();
                    let mut r = s.reader(Offset::beginning(), ReadMode::CatchUp).unwrap();
                    let c = r.next_chunk().unwrap().unwrap();
                    assert_eq!(&c.data[..], b"over tls!", "{kind:?} {form}");
                }
            }
            assert_eq!(proxy.failed_handshakes(), 0);
            assert!(proxy.handshakes() >= 4);
        },
    );
}

/// Issue 16 over TLS: with more than one batch in flight on an `https://` stream, each
/// driver's writer pipelines its batches on one TLS connection of its own (not one per batch
/// from the pool), and every record lands once, in order.
#[test]
fn writers_pipeline_over_tls_on_one_connection() {
    within(
        Duration::from_secs(60),
        "writers_pipeline_over_tls_on_one_connection",
        || {
            let server = embedded();
            let pki = pki();
            let proxy = TlsProxy::start(
                vec![pki.leaf_der.clone(), pki.ca_der.clone()],
                pki.leaf_key.clone(),
                server.url(),
            )
            .unwrap();
            for kind in DriverKind::ALL {
                let client =
                    AnyClient::with_settings(kind, proxy.url(), settings(vec![pki.ca_der.clone()]));
                let s = client.stream(&format!("/v1/stream/tls-pipelined-{kind:?}"));
                s.create(CreateOptions::with_content_type("text/plain"))
                    .unwrap();
                // A writer with 4 batches in flight, cut at `items` records each.
                let piped_writer = |producer: &str, items: usize| {
                    s.writer_with(ds_proto::producer::ProducerConfig {
                        max_in_flight: 4,
                        max_batch_items: items,
                        content_type: "text/plain".into(),
                        ..ds_proto::producer::ProducerConfig::new(s.url(), producer)
                    })
                    .unwrap()
                };
                let before = settled(&proxy).0;
                let w = piped_writer("tls-piped", 10);
                let count = 1_000;
                let mut expected = Vec::new();
                for n in 0..count {
                    let record = format!("{n:05};");
                    expected.extend_from_slice(record.as_bytes());
                    w.append(record).unwrap();
                }
                w.close(false).unwrap_or_else(|f| panic!("{kind:?}: {f:?}"));
                assert_eq!(
                    settled(&proxy).0 - before,
                    1,
                    "{kind:?}: one connection carried the writer's {count} records in batches of 10"
                );
                assert_eq!(&s.read_all().unwrap().data[..], &expected[..], "{kind:?}");

                // Bodies from 64 KiB on are written after their head, as they are (not
                // copied into one buffer with it): over TLS too, they arrive whole.
                let before = settled(&proxy).0;
                let w = piped_writer("tls-piped-large", 3);
                for n in 0..30u8 {
                    let record = vec![b'A' + n % 26; 100_000 + usize::from(n)];
                    expected.extend_from_slice(&record);
                    w.append(record).unwrap();
                }
                w.close(false).unwrap_or_else(|f| panic!("{kind:?}: {f:?}"));
                assert_eq!(settled(&proxy).0 - before, 1, "{kind:?}: one connection");
                assert!(s.read_all().unwrap().data[..] == expected[..], "{kind:?}");
            }
            assert_eq!(proxy.failed_handshakes(), 0);
        },
    );
}

#[test]
fn only_added_roots_when_built_in_roots_are_off() {
    within(
        Duration::from_secs(60),
        "only_added_roots_when_built_in_roots_are_off",
        || {
            let server = embedded();
            let pki = pki();
            let proxy = TlsProxy::start(
                vec![pki.leaf_der.clone()],
                pki.leaf_key.clone(),
                server.url(),
            )
            .unwrap();
            for kind in DriverKind::ALL {
                let mut s = settings(vec![pki.ca_der.clone()]);
                s.built_in_roots = Some(false);
                let stream = AnyClient::with_settings(kind, proxy.url(), s)
                    .stream(&format!("/v1/stream/tls-only-{kind:?}"));
                stream.create(CreateOptions::default()).unwrap();
                stream.head().unwrap();
            }
        },
    );
}

/// The proxy's connection and failed-handshake counts once every connection it accepted has
/// ended its handshake.
fn settled(proxy: &TlsProxy) -> (u64, u64) {
    assert!(
        proxy.wait_settled(Duration::from_secs(10)),
        "the proxy's handshakes end"
    );
    (proxy.connections(), proxy.failed_handshakes())
}

/// Asserts `e` is a transport error of kind `Tls`.
fn assert_tls(kind: DriverKind, e: &ds_proto::Error) {
    match &e.kind {
        ErrorKind::Transport(t) => assert_eq!(t.kind, TransportErrorKind::Tls, "{kind:?}: {e}"),
        other => panic!("{kind:?}: expected a TLS transport error, got {other:?} ({e})"),
    }
    assert!(!e.is_retryable(), "{kind:?}: a TLS failure is not retried");
}

#[test]
fn a_certificate_from_an_unknown_root_is_refused_without_retry() {
    within(
        Duration::from_secs(60),
        "a_certificate_from_an_unknown_root_is_refused_without_retry",
        || {
            let server = embedded();
            let pki = pki();
            let proxy = TlsProxy::start(
                vec![pki.leaf_der.clone()],
                pki.leaf_key.clone(),
                server.url(),
            )
            .unwrap();
            for kind in DriverKind::ALL {
                let before = settled(&proxy);
                // Default settings: only the webpki roots, which do not include our CA. The default
                // retry policy would retry a transient failure ten times; a TLS failure is not.
                let client = AnyClient::new(kind, proxy.url());
                let s = client.stream("/v1/stream/refused");
                let started = Instant::now();
                let e = s.head().unwrap_err();
                assert_tls(kind, &e);
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "{kind:?}: no backoff"
                );
                assert!(
                    e.to_string().to_ascii_lowercase().contains("certificate")
                        || e.to_string().contains("UnknownIssuer"),
                    "{kind:?}: {e}"
                );
                // One handshake attempt, refused by the client: a retry would have connected
                // again before the error came back.
                assert_eq!(
                    settled(&proxy),
                    (before.0 + 1, before.1 + 1),
                    "{kind:?}: not retried (connections, failed handshakes)"
                );

                // A writer's batch fails at once, known not stored (nothing was sent).
                let before = settled(&proxy);
                let w = s.writer("tls-refused").unwrap();
                w.append("x").unwrap();
                let started = Instant::now();
                let failures = w.flush().unwrap_err();
                assert!(started.elapsed() < Duration::from_secs(5), "{kind:?}");
                assert!(!failures[0].reason.is_indeterminate(), "{kind:?}");
                assert_tls(kind, failures[0].reason.error());
                assert_eq!(
                    settled(&proxy),
                    (before.0 + 1, before.1 + 1),
                    "{kind:?}: not retried (connections, failed handshakes)"
                );

                // A reader fails for good on the first attempt too (no endless `Retrying`).
                let mut r = s.reader(Offset::beginning(), ReadMode::LongPoll).unwrap();
                match r.next_event() {
                    Some(ReaderEvent::Failed(e)) => assert_tls(kind, &e),
                    other => panic!("{kind:?}: expected Failed, got {other:?}"),
                }
            }
        },
    );
}

#[test]
fn a_self_signed_certificate_not_added_as_root_is_refused() {
    within(
        Duration::from_secs(60),
        "a_self_signed_certificate_not_added_as_root_is_refused",
        || {
            let server = embedded();
            let pki = pki();
            let (cert, key) = self_signed();
            let proxy = TlsProxy::start(vec![cert], key, server.url()).unwrap();
            for kind in DriverKind::ALL {
                // The client trusts our CA (and the webpki roots), not the self-signed leaf.
                let client =
                    AnyClient::with_settings(kind, proxy.url(), settings(vec![pki.ca_der.clone()]));
                let e = client
                    .stream("/v1/stream/self-signed")
                    .create(CreateOptions::default())
                    .unwrap_err();
                assert_tls(kind, &e);
            }
        },
    );
}

#[test]
fn an_unparsable_root_certificate_fails_the_build() {
    within(
        Duration::from_secs(60),
        "an_unparsable_root_certificate_fails_the_build",
        || {
            let garbage = b"definitely not a certificate".to_vec();
            let pem_without_cert =
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
            let e = ds_tokio::Client::builder()
                .base_url("https://127.0.0.1:1")
                .add_root_certificate(&garbage)
                .build()
                .unwrap_err();
            assert!(matches!(e.kind, ErrorKind::InvalidInput(_)), "{e}");
            let e = ds_blocking::Client::builder()
                .base_url("https://127.0.0.1:1")
                .add_root_certificate(&garbage)
                .build()
                .unwrap_err();
            assert!(matches!(e.kind, ErrorKind::InvalidInput(_)), "{e}");
            assert!(ds_tokio::Client::builder()
                .add_root_certificate(pem_without_cert)
                .build()
                .is_err());
            assert!(ds_blocking::Client::builder()
                .add_root_certificate(pem_without_cert)
                .build()
                .is_err());
            // No roots at all is refused as well.
            assert!(ds_tokio::Client::builder()
                .tls_built_in_roots(false)
                .build()
                .is_err());
            assert!(ds_blocking::Client::builder()
                .tls_built_in_roots(false)
                .build()
                .is_err());
        },
    );
}
