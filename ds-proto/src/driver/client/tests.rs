// Settings are changed field by field after `default()`, as a driver must (the struct is
// `#[non_exhaustive]`, so other crates cannot use a struct literal).
#![allow(clippy::field_reassign_with_default)]

use super::*;
use crate::ops::RequestExtras;

fn secret(s: &'static str) -> HeaderValue {
    HeaderValue::from_static(s)
}

#[test]
fn defaults_are_valid_and_documented() {
    let s = ClientSettings::default();
    assert!(s.validate().is_ok());
    assert_eq!(s.connect_timeout, Some(Duration::from_secs(10)));
    assert_eq!(s.request_timeout, Some(Duration::from_secs(60)));
    assert_eq!(s.max_response_bytes, 256 * 1024 * 1024);
    assert_eq!(s.long_poll_deadline, Some(Duration::from_secs(60)));
    assert_eq!(s.sse_idle_timeout, Some(Duration::from_secs(120)));
    assert!(s.tls_built_in_roots);
}

#[test]
fn validation_refuses_zero_limits_bad_urls_and_policies() {
    let invalid = |s: &ClientSettings| {
        let e = s.validate().unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidInput(_)), "{e}");
        assert_eq!(e.operation, Operation::Create);
        e
    };
    let mut s = ClientSettings::default();
    s.connect_timeout = Some(Duration::ZERO);
    invalid(&s);
    let mut s = ClientSettings::default();
    s.request_timeout = Some(Duration::ZERO);
    invalid(&s);
    let mut s = ClientSettings::default();
    s.sse_idle_timeout = Some(Duration::ZERO);
    invalid(&s);
    let mut s = ClientSettings::default();
    s.set_long_poll_wait(Duration::ZERO);
    invalid(&s);
    let mut s = ClientSettings::default();
    s.max_response_bytes = 0;
    invalid(&s);
    let mut s = ClientSettings::default();
    s.retry.max_delay = Duration::ZERO;
    invalid(&s);
    let mut s = ClientSettings::default();
    s.base_url = Some("ftp://h/?token=hunter2".into());
    let e = invalid(&s);
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let mut s = ClientSettings::default();
    s.base_url = Some(String::new());
    assert!(
        s.validate().is_ok(),
        "an empty base URL means absolute stream URLs"
    );
    s.base_url = Some("https://h:1".into());
    assert!(s.validate().is_ok());
}

#[test]
fn long_poll_deadline_is_twice_the_wait_with_a_second_at_least() {
    let mut s = ClientSettings::default();
    s.set_long_poll_wait(Duration::from_secs(30));
    assert_eq!(s.long_poll_deadline, Some(Duration::from_secs(60)));
    s.set_long_poll_wait(Duration::from_millis(200));
    assert_eq!(s.long_poll_deadline, Some(Duration::from_millis(1200)));
    let mut config = ReaderConfig::new("http://h/s");
    s.sse_idle_timeout = None;
    s.apply_reader_defaults(&mut config);
    assert_eq!(config.long_poll_deadline, Some(Duration::from_millis(1200)));
    assert_eq!(config.sse_idle_timeout, None);
}

#[test]
fn credentials_are_marked_and_never_shown() {
    let mut s = ClientSettings::default();
    s.base_url = Some("http://h:1/?token=hunter2-base".into());
    s.add_header(http::header::AUTHORIZATION, secret("Bearer hunter2-auth"));
    s.add_header(HeaderName::from_static("x-api-key"), secret("hunter2-key"));
    s.add_sensitive_header(HeaderName::from_static("x-api-key"));
    s.add_sensitive_header(HeaderName::from_static("x-api-key"));
    assert_eq!(s.sensitive_headers.len(), 1);
    s.params.push(("token".into(), "hunter2-param".into()));
    s.root_certificates.push(b"hunter2-cert".to_vec());
    assert!(s.headers.values().all(|v| v.is_sensitive()));
    // Even a header written into the public field directly is redacted by Debug.
    s.headers
        .insert(HeaderName::from_static("x-other"), secret("hunter2-raw"));
    s.add_sensitive_header(HeaderName::from_static("x-other"));
    let shown = format!("{s:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("x-api-key"), "{shown}");
}

#[test]
fn extras_layer_defaults_provider_and_call() {
    let mut s = ClientSettings::default();
    s.add_header(HeaderName::from_static("x-a"), secret("client"));
    s.add_header(HeaderName::from_static("x-b"), secret("client"));
    s.add_sensitive_header(HeaderName::from_static("x-key"));
    s.params.push(("p".into(), "client".into()));
    s.provider = Some(Arc::new(|| {
        RequestExtras::new()
            .header(HeaderName::from_static("x-b"), secret("provider"))
            .header(HeaderName::from_static("x-key"), secret("hunter2"))
    }));
    let mut call = CallOptions::default();
    call.extras = RequestExtras::new().header(HeaderName::from_static("x-a"), secret("call"));
    let extras = s.extras(&call);
    assert_eq!(extras.headers["x-a"], "call");
    assert_eq!(extras.headers["x-b"], "provider");
    assert!(extras.headers["x-key"].is_sensitive());
    assert_eq!(extras.params, vec![("p".to_owned(), "client".to_owned())]);

    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static("x-key"), secret("hunter2"));
    s.mark_sensitive(&mut headers);
    assert!(headers["x-key"].is_sensitive());
}

#[test]
fn a_machine_that_authorizes_itself_gets_no_client_authorization() {
    let mut s = ClientSettings::default();
    s.add_header(http::header::AUTHORIZATION, secret("Bearer client"));
    s.add_header(HeaderName::from_static("x-a"), secret("a"));
    let call = CallOptions::default();
    let plain = s.exchange_extras(&call, false);
    assert_eq!(plain.headers[http::header::AUTHORIZATION], "Bearer client");
    let own = s.exchange_extras(&call, true);
    assert!(!own.headers.contains_key(http::header::AUTHORIZATION));
    assert_eq!(own.headers["x-a"], "a");
}

#[test]
fn stream_urls_resolve_against_the_base() {
    let mut s = ClientSettings::default();
    assert_eq!(s.resolve("http://x/s"), "http://x/s");
    s.base_url = Some("http://h:1".into());
    assert_eq!(
        s.resolve("/v1/stream/a"),
        crate::url::resolve("http://h:1", "/v1/stream/a")
    );
    assert_eq!(s.resolve("https://o/s"), "https://o/s");
}

#[test]
fn call_options_are_checked() {
    let url = "http://h/s";
    assert!(check_call_options(&CallOptions::default(), Operation::Head, url).is_ok());
    let mut call = CallOptions::default();
    call.timeout = Some(Duration::ZERO);
    let e = check_call_options(&call, Operation::Head, url).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::InvalidInput(_)));
    assert_eq!(e.operation, Operation::Head);
}

#[test]
fn too_large_is_a_limit_and_urls_lose_their_query() {
    let url = "http://h/s?token=hunter2";
    let e = transport_error(
        Operation::Read,
        url,
        TransportError::new(TransportErrorKind::TooLarge, "over 10 bytes"),
    );
    assert!(matches!(e.kind, ErrorKind::LimitExceeded(_)), "{e}");
    assert_eq!(e.url, "http://h/s");
    let e = transport_error(
        Operation::Read,
        url,
        TransportError::new(TransportErrorKind::ConnectionReset, "reset"),
    );
    assert!(matches!(e.kind, ErrorKind::Transport(_)), "{e}");
    assert!(!e.to_string().contains("hunter2"));
}

#[test]
fn error_chains_are_searched_inside_io_errors() {
    #[derive(Debug)]
    struct Tls;
    impl fmt::Display for Tls {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("tls")
        }
    }
    impl std::error::Error for Tls {}
    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let wrapped = Outer(std::io::Error::other(Tls));
    assert!(error_chain_has::<Tls>(&wrapped));
    assert!(error_chain_has::<Tls>(&Tls));
    let plain = Outer(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    assert!(!error_chain_has::<Tls>(&plain));
    // The text names every level; the search skips the error itself.
    assert_eq!(error_chain_text(&plain), "outer: connection reset");
    assert_eq!(error_chain_text(&Tls), "tls");
    let io = find_source::<std::io::Error>(&plain).expect("the I/O error below");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset);
    assert!(find_source::<Outer>(&plain).is_none());
    assert!(find_source::<Tls>(&Tls).is_none());
}

#[cfg(feature = "pem")]
#[test]
fn root_certificates_parse_as_der_or_pem() {
    assert!(parse_root_certificates(b"").is_err());
    assert!(parse_root_certificates(
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    .is_err());
    assert_eq!(
        parse_root_certificates(b"\x30\x03\x02\x01\x00")
            .unwrap()
            .len(),
        1
    );
    let pem = b"-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n\
                -----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n\
                -----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";
    let certs = parse_root_certificates(pem).unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0].as_ref(), b"\x30\x03\x02\x01\x00");
    assert!(parse_root_certificates(b"-----BEGIN CERTIFICATE-----\n!!\n").is_err());
}
