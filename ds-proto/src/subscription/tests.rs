//! Tests of the subscription types, operations and webhook verification (no IO).

use super::*;
use crate::error::ErrorKind;
use crate::io::{TransportError, TransportErrorKind};
use crate::offset::Offset;
use crate::ops::RequestExtras;
use ed25519_dalek::SigningKey;
use http::Method;
use std::time::{Duration, Instant};

fn parts(status: u16) -> http::response::Parts {
    http::Response::builder()
        .status(status)
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn root() -> SubscriptionRoot {
    SubscriptionRoot::new("http://h:4437/v1/stream/").unwrap()
}

fn off(s: &str) -> Offset {
    Offset::parse(s).unwrap()
}

fn body_json(req: &http::Request<bytes::Bytes>) -> serde_json::Value {
    serde_json::from_slice(req.body()).unwrap()
}

fn err_kind(status: u16, body: &str, op: SubscriptionOp) -> SubscriptionErrorKind {
    error_from_response(op, "http://h/x", &parts(status), body.as_bytes()).kind
}

// ----- configuration -----

#[test]
fn config_serializes_with_protocol_field_names() {
    let c = SubscriptionConfig::webhook("https://worker.example/hooks")
        .pattern("events/*")
        .stream("events/manual-a")
        .lease_ttl_ms(30_000)
        .description("event processor");
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "type": "webhook",
            "pattern": "events/*",
            "streams": ["events/manual-a"],
            "webhook": { "url": "https://worker.example/hooks" },
            "lease_ttl_ms": 30000,
            "description": "event processor"
        })
    );
    let p = SubscriptionConfig::pull_wake("wake/pool").stream("a");
    assert_eq!(
        serde_json::to_value(&p).unwrap(),
        serde_json::json!({ "type": "pull-wake", "streams": ["a"], "wake_stream": "wake/pool" })
    );
}

#[test]
fn config_validation_rules() {
    let ok = SubscriptionConfig::pull_wake("wake/pool").pattern("events/**");
    assert_eq!(ok.validate(), Ok(()));
    assert_eq!(
        SubscriptionConfig::pull_wake("wake/pool").validate(),
        Err(ConfigError::NoStreams)
    );
    let mut no_wake = ok.clone();
    no_wake.wake_stream = None;
    assert_eq!(no_wake.validate(), Err(ConfigError::MissingWakeStream));
    let mut no_hook = SubscriptionConfig::webhook("https://a.example/").pattern("x");
    no_hook.webhook = None;
    assert_eq!(no_hook.validate(), Err(ConfigError::MissingWebhook));
    let mut both = ok.clone();
    both.webhook = Some(WebhookConfig {
        url: "https://a.example/".into(),
    });
    assert_eq!(both.validate(), Err(ConfigError::WrongDelivery("webhook")));
    // Lease boundaries: 1 s and 10 min inclusive.
    for (ms, good) in [
        (999, false),
        (1_000, true),
        (600_000, true),
        (600_001, false),
        (0, false),
    ] {
        let r = ok.clone().lease_ttl_ms(ms).validate();
        assert_eq!(r.is_ok(), good, "{ms}");
        if !good {
            assert_eq!(r, Err(ConfigError::LeaseOutOfRange(ms)));
        }
    }
    for bad in ["", "/a", "a/", "a//b", "a/../b", "__ds/x", "a\nb"] {
        assert!(
            matches!(
                ok.clone().stream(bad).validate(),
                Err(ConfigError::InvalidStreamPath { .. })
            ),
            "{bad:?}"
        );
    }
    for bad in ["", "/events/*", "events//*", "events/", "a\tb"] {
        assert!(
            matches!(
                SubscriptionConfig::pull_wake("w").pattern(bad).validate(),
                Err(ConfigError::InvalidPattern { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn webhook_url_rules() {
    for good in [
        "https://worker.example/hooks",
        "https://8.8.8.8/h",
        "http://localhost:8080/h",
        "http://LOCALHOST/h",
        "http://127.0.0.1:9/h",
        "http://127.1.2.3/h",
        "https://localhost/h",
    ] {
        assert_eq!(check_webhook_url(good), Ok(()), "{good}");
    }
    for bad in [
        "http://worker.example/hooks",
        "ftp://worker.example/",
        "https://10.0.0.1/h",
        "https://192.168.1.1/h",
        "https://172.16.0.1/h",
        "https://169.254.169.254/latest",
        "https://0.0.0.0/",
        "https://255.255.255.255/h",
        "https://[::1]/h",
        "https://[::]/h",
        "https://[::ffff:10.0.0.1]/h",
        "https://[fe80::1]/h",
        "https://[fd00::1]/h",
        "http://10.0.0.1/h",
        "https://user:pw@worker.example/",
        "/relative",
        "not a url",
    ] {
        assert!(
            matches!(
                check_webhook_url(bad),
                Err(ConfigError::InvalidWebhookUrl { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn subscription_reads_back_and_ignores_unknown_fields() {
    let body = br#"{
      "id": "sub-1", "subscription_id": "sub-1", "type": "webhook", "pattern": "events/*",
      "streams": [
        {"path": "events/abc", "link_type": "glob", "acked_offset": "0000000000000001_0000000000000042"},
        {"path": "events/x", "link_type": "explicit", "acked_offset": "-1", "extra": 1}
      ],
      "webhook": {"url": "https://worker.example/hooks",
                  "signing": {"alg": "ed25519", "kid": "ds_abc123", "jwks_url": "https://s/__ds/jwks.json"}},
      "wake_stream": null, "lease_ttl_ms": 30000, "created_at": "2026-05-09T00:00:00.000Z",
      "status": "failed", "description": "event processor", "future_field": {"a": 1}
    }"#;
    let s = get_subscription_response(&root(), "sub-1", &parts(200), body).unwrap();
    assert_eq!(s.id(), Some("sub-1"));
    assert_eq!(s.kind, SubscriptionType::Webhook);
    assert_eq!(s.streams.len(), 2);
    assert_eq!(s.link("events/x").unwrap().link_type, LinkType::Explicit);
    assert!(s.link("events/x").unwrap().acked_offset.is_beginning());
    assert_eq!(
        s.streams[0].acked_offset.as_str(),
        "0000000000000001_0000000000000042"
    );
    assert_eq!(s.status, Some(SubscriptionStatus::Failed));
    let signing = s.webhook.unwrap().signing.unwrap();
    assert_eq!(signing.kid.as_deref(), Some("ds_abc123"));
    assert_eq!(s.wake_stream, None);
    let e = get_subscription_response(&root(), "sub-1", &parts(200), b"[]").unwrap_err();
    assert!(matches!(
        e.kind,
        SubscriptionErrorKind::Http(ErrorKind::InvalidResponse(_))
    ));
}

// ----- builders -----

#[test]
fn root_is_checked() {
    assert_eq!(root().as_str(), "http://h:4437/v1/stream");
    for bad in [
        "/v1/stream",
        "ftp://h/x",
        "http://h/s?x=1",
        "http://u:p@h/s",
        "",
    ] {
        assert!(SubscriptionRoot::new(bad).is_err(), "{bad}");
    }
    assert_eq!(
        root().stream_url("events/a b").unwrap(),
        "http://h:4437/v1/stream/events/a%20b"
    );
    assert!(root().stream_url("/abs").is_err());
    assert_eq!(root().jwks_url(), "http://h:4437/v1/stream/__ds/jwks.json");
}

#[test]
fn control_builders() {
    let config = SubscriptionConfig::pull_wake("wake/pool").pattern("events/*");
    let extras = RequestExtras::new().header(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_static("Bearer svc"),
    );
    let req = create_subscription_request(&root(), "sub 1", &config, &extras).unwrap();
    assert_eq!(req.method(), Method::PUT);
    assert_eq!(
        req.uri().to_string(),
        "http://h:4437/v1/stream/__ds/subscriptions/sub%201"
    );
    assert_eq!(req.headers()["content-type"], "application/json");
    assert_eq!(req.headers()["authorization"], "Bearer svc");
    assert_eq!(body_json(&req), serde_json::to_value(&config).unwrap());
    let bad =
        create_subscription_request(&root(), "s", &SubscriptionConfig::pull_wake("w"), &extras)
            .unwrap_err();
    assert_eq!(
        bad.kind,
        SubscriptionErrorKind::InvalidConfig(ConfigError::NoStreams)
    );
    assert!(create_subscription_request(&root(), "", &config, &extras).is_err());

    let get = get_subscription_request(&root(), "s", &RequestExtras::new()).unwrap();
    assert_eq!(get.method(), Method::GET);
    assert!(get.body().is_empty());
    let del = delete_subscription_request(&root(), "s", &RequestExtras::new()).unwrap();
    assert_eq!(del.method(), Method::DELETE);
    assert_eq!(
        del.uri().to_string(),
        "http://h:4437/v1/stream/__ds/subscriptions/s"
    );

    let add = add_streams_request(
        &root(),
        "s",
        &["events/x", "events/y"],
        &RequestExtras::new(),
    )
    .unwrap();
    assert_eq!(add.method(), Method::POST);
    assert_eq!(
        add.uri().to_string(),
        "http://h:4437/v1/stream/__ds/subscriptions/s/streams"
    );
    assert_eq!(
        body_json(&add),
        serde_json::json!({ "streams": ["events/x", "events/y"] })
    );
    assert!(add_streams_request(&root(), "s", &[], &RequestExtras::new()).is_err());
    assert!(add_streams_request(&root(), "s", &["/x"], &RequestExtras::new()).is_err());

    let rm = remove_stream_request(&root(), "s", "events/a b", &RequestExtras::new()).unwrap();
    assert_eq!(rm.method(), Method::DELETE);
    assert_eq!(
        rm.uri().to_string(),
        "http://h:4437/v1/stream/__ds/subscriptions/s/streams/events%2Fa%20b"
    );

    let jwks = jwks_request(&root(), &RequestExtras::new()).unwrap();
    assert_eq!(jwks.method(), Method::GET);
    assert_eq!(
        jwks.uri().to_string(),
        "http://h:4437/v1/stream/__ds/jwks.json"
    );
}

#[test]
fn delivery_builders() {
    let claim = claim_request(&root(), "s", "worker-1", &RequestExtras::new()).unwrap();
    assert_eq!(claim.method(), Method::POST);
    assert_eq!(claim.uri().path(), "/v1/stream/__ds/subscriptions/s/claim");
    assert_eq!(
        body_json(&claim),
        serde_json::json!({ "worker": "worker-1" })
    );
    assert!(claim_request(&root(), "s", "", &RequestExtras::new()).is_err());

    let ack = AckBody {
        wake_id: "w1".into(),
        generation: 7,
        acks: vec![Ack {
            stream: "events/abc".into(),
            offset: off("0_84"),
        }],
        done: true,
    };
    let req = ack_request(&root(), "s", "tok", &ack, &RequestExtras::new()).unwrap();
    assert_eq!(req.uri().path(), "/v1/stream/__ds/subscriptions/s/ack");
    assert_eq!(req.headers()["authorization"], "Bearer tok");
    assert!(req.headers()["authorization"].is_sensitive());
    assert_eq!(
        body_json(&req),
        serde_json::json!({
            "wake_id": "w1", "generation": 7,
            "acks": [{ "stream": "events/abc", "offset": "0_84" }], "done": true
        })
    );
    let heartbeat = AckBody {
        acks: vec![],
        done: false,
        ..ack.clone()
    };
    let req = ack_request(&root(), "s", "tok", &heartbeat, &RequestExtras::new()).unwrap();
    assert_eq!(
        body_json(&req),
        serde_json::json!({ "wake_id": "w1", "generation": 7, "acks": [], "done": false })
    );
    let sentinel = AckBody {
        acks: vec![Ack {
            stream: "a".into(),
            offset: Offset::beginning(),
        }],
        ..ack.clone()
    };
    assert!(ack_request(&root(), "s", "tok", &sentinel, &RequestExtras::new()).is_err());
    assert!(ack_request(&root(), "s", "bad\ntoken", &ack, &RequestExtras::new()).is_err());

    let rel = release_request(&root(), "s", "tok", "w1", 7, &RequestExtras::new()).unwrap();
    assert_eq!(rel.uri().path(), "/v1/stream/__ds/subscriptions/s/release");
    assert_eq!(
        body_json(&rel),
        serde_json::json!({ "wake_id": "w1", "generation": 7 })
    );
    assert_eq!(rel.headers()["authorization"], "Bearer tok");

    let cb = callback_request(
        "https://server.example/streams/__ds/subscriptions/s/callback",
        "cbt",
        &ack,
        &RequestExtras::new(),
    )
    .unwrap();
    assert_eq!(cb.method(), Method::POST);
    assert_eq!(cb.headers()["authorization"], "Bearer cbt");
    assert_eq!(body_json(&cb)["done"], true);
}

// ----- interpreters -----

#[test]
fn create_outcomes() {
    let r = root();
    let created = create_subscription_response(&r, "s", &parts(201), b"").unwrap();
    assert!(created.created && created.subscription.is_none());
    let again = create_subscription_response(
        &r,
        "s",
        &parts(200),
        br#"{"id":"s","type":"pull-wake","wake_stream":"w","streams":[]}"#,
    )
    .unwrap();
    assert!(!again.created);
    assert_eq!(
        again.subscription.unwrap().wake_stream.as_deref(),
        Some("w")
    );
    let conflict = create_subscription_response(
        &r,
        "s",
        &parts(409),
        br#"{"error":{"code":"SUBSCRIPTION_EXISTS","message":"different config"}}"#,
    )
    .unwrap_err();
    assert_eq!(conflict.op, SubscriptionOp::Create);
    assert_eq!(
        conflict.kind,
        SubscriptionErrorKind::ConfigConflict {
            message: "different config".into()
        }
    );
}

#[test]
fn every_server_code_is_typed() {
    use SubscriptionErrorKind as K;
    assert_eq!(
        err_kind(
            404,
            r#"{"error":{"code":"SUBSCRIPTION_NOT_FOUND","message":"no"}}"#,
            SubscriptionOp::Get
        ),
        K::NotFound {
            message: "no".into()
        }
    );
    assert_eq!(
        err_kind(
            400,
            r#"{"error":{"code":"INVALID_REQUEST","message":"bad"}}"#,
            SubscriptionOp::Create
        ),
        K::InvalidRequest {
            code: "INVALID_REQUEST".into(),
            message: "bad".into()
        }
    );
    assert_eq!(
        err_kind(409, r#"{"error":{"code":"FENCED"}}"#, SubscriptionOp::Ack),
        K::Fenced {
            message: r#"{"error":{"code":"FENCED"}}"#.into()
        }
    );
    assert_eq!(
        err_kind(
            409,
            r#"{"error":{"code":"ALREADY_CLAIMED","current_holder":"worker-2","generation":7}}"#,
            SubscriptionOp::Claim
        ),
        K::AlreadyClaimed {
            current_holder: Some("worker-2".into()),
            generation: Some(7)
        }
    );
    assert_eq!(
        err_kind(
            409,
            r#"{"error":{"code":"NO_PENDING_WORK","message":"idle"}}"#,
            SubscriptionOp::Claim
        ),
        K::NoPendingWork
    );
    assert_eq!(
        err_kind(
            409,
            r#"{"error":{"code":"INVALID_OFFSET","message":"past tail"}}"#,
            SubscriptionOp::Ack
        ),
        K::InvalidOffset {
            message: "past tail".into()
        }
    );
    assert_eq!(
        err_kind(
            409,
            r#"{"error":{"code":"OTHER","message":"m"}}"#,
            SubscriptionOp::Ack
        ),
        K::Conflict {
            code: "OTHER".into(),
            message: "m".into()
        }
    );
    assert_eq!(
        err_kind(
            401,
            r#"{"error":{"code":"UNAUTHORIZED","message":"expired"}}"#,
            SubscriptionOp::Release
        ),
        K::Unauthorized {
            code: "UNAUTHORIZED".into(),
            message: "expired".into()
        }
    );
    // Not JSON: the message is the start of the body.
    assert_eq!(
        err_kind(401, "nope", SubscriptionOp::Ack),
        K::Unauthorized {
            code: String::new(),
            message: "nope".into()
        }
    );
    let busy = error_from_response(
        SubscriptionOp::Claim,
        "http://h/x?token=secret",
        &http::Response::builder()
            .status(429)
            .header("retry-after", "2")
            .body(())
            .unwrap()
            .into_parts()
            .0,
        b"",
    );
    assert!(busy.is_retryable() && busy.certainly_not_applied());
    assert_eq!(busy.retry_after(), Some(Duration::from_secs(2)));
    assert_eq!(busy.url, "http://h/x");
    let e503 = error_from_response(SubscriptionOp::Ack, "http://h/x", &parts(503), b"");
    assert!(e503.is_retryable() && !e503.certainly_not_applied());
    assert!(matches!(
        e503.kind,
        K::Http(ErrorKind::UnexpectedStatus { status: 503, .. })
    ));
    assert!(!error_from_response(SubscriptionOp::Ack, "u", &parts(403), b"").is_retryable());
    let reset = SubscriptionError::transport(
        SubscriptionOp::Claim,
        "u",
        TransportError::new(TransportErrorKind::ConnectionReset, "r"),
    );
    assert!(reset.is_retryable() && !reset.certainly_not_applied());
    let refused = SubscriptionError::transport(
        SubscriptionOp::Claim,
        "u",
        TransportError::new(TransportErrorKind::Connect, "r"),
    );
    assert!(refused.certainly_not_applied());
    assert!(!SubscriptionOp::Claim.is_idempotent());
    assert!(SubscriptionOp::Ack.is_idempotent());
}

#[test]
fn claim_ack_release_callback_answers() {
    let r = root();
    let claim = claim_response(
        &r,
        "s",
        &parts(200),
        br#"{"wake_id":"w_abc","generation":7,"token":"eyJ","lease_ttl_ms":30000,
            "streams":[{"path":"events/abc","link_type":"glob",
              "acked_offset":"0000000000000001_0000000000000042",
              "tail_offset":"0000000000000002_0000000000000084","has_pending":true}]}"#,
    )
    .unwrap();
    assert_eq!(claim.wake_id, "w_abc");
    assert_eq!(claim.generation, 7);
    assert_eq!(claim.lease_ttl_ms, Some(30_000));
    assert!(claim.streams[0].has_pending);
    assert_eq!(
        claim.streams[0].tail_offset.as_str(),
        "0000000000000002_0000000000000084"
    );
    assert!(!format!("{claim:?}").contains("eyJ"), "token redacted");
    assert!(matches!(
        claim_response(&r, "s", &parts(200), b"{}")
            .unwrap_err()
            .kind,
        SubscriptionErrorKind::Http(ErrorKind::InvalidResponse(_))
    ));

    assert_eq!(
        ack_response(&r, "s", &parts(200), br#"{"ok":true,"next_wake":true}"#).unwrap(),
        AckOutcome { next_wake: true }
    );
    assert_eq!(
        ack_response(&r, "s", &parts(200), br#"{"ok":true}"#).unwrap(),
        AckOutcome { next_wake: false }
    );
    assert_eq!(
        ack_response(&r, "s", &parts(204), b"").unwrap(),
        AckOutcome::default()
    );
    assert!(ack_response(&r, "s", &parts(200), br#"{"ok":false}"#).is_err());
    assert!(
        ack_response(&r, "s", &parts(409), br#"{"error":{"code":"FENCED"}}"#)
            .unwrap_err()
            .is_fenced()
    );
    assert!(release_response(&r, "s", &parts(204), b"").is_ok());
    assert!(
        release_response(&r, "s", &parts(409), br#"{"error":{"code":"FENCED"}}"#)
            .unwrap_err()
            .is_fenced()
    );
    let cb = "https://server.example/streams/__ds/subscriptions/s/callback";
    assert_eq!(
        callback_response(cb, &parts(200), br#"{"ok":true,"next_wake":false}"#).unwrap(),
        AckOutcome { next_wake: false }
    );
    let fenced = callback_response(cb, &parts(409), br#"{"error":{"code":"FENCED"}}"#).unwrap_err();
    assert_eq!(fenced.op, SubscriptionOp::Callback);
    assert!(fenced.is_fenced());
    assert!(delete_subscription_response(&r, "s", &parts(204), b"").is_ok());
    assert!(matches!(
        delete_subscription_response(&r, "s", &parts(404), b"")
            .unwrap_err()
            .kind,
        SubscriptionErrorKind::NotFound { .. }
    ));
    assert!(add_streams_response(&r, "s", &parts(204), b"").is_ok());
    assert!(add_streams_response(&r, "s", &parts(200), b"{}").is_ok());
    assert!(matches!(
        add_streams_response(&r, "s", &parts(404), b"")
            .unwrap_err()
            .kind,
        SubscriptionErrorKind::NotFound { .. }
    ));
    assert!(remove_stream_response(&r, "s", "a/b", &parts(204), b"").is_ok());
    // An ack answered 200 without a body (or only whitespace) is a plain success.
    for empty in [&b""[..], b" \r\n"] {
        assert_eq!(
            ack_response(&r, "s", &parts(200), empty).unwrap(),
            AckOutcome::default()
        );
    }
}

#[test]
fn only_fenced_errors_are_fenced() {
    for (status, body) in [
        (409, r#"{"error":{"code":"ALREADY_CLAIMED"}}"#),
        (409, r#"{"error":{"code":"INVALID_OFFSET"}}"#),
        (401, r#"{"error":{"code":"TOKEN_EXPIRED"}}"#),
        (503, ""),
    ] {
        let e = error_from_response(
            SubscriptionOp::Ack,
            "http://h/x",
            &parts(status),
            body.as_bytes(),
        );
        assert!(!e.is_fenced(), "{status} {body}: {e:?}");
    }
}

#[test]
fn a_server_retry_after_is_handed_to_the_retry_policy() {
    let head = crate::ops::test_util::parts(503, &[("retry-after", "3")]);
    let e = error_from_response(SubscriptionOp::Claim, "http://h/x", &head, b"");
    assert_eq!(
        crate::retry::RetryableError::server_retry_after(&e),
        Some(Duration::from_secs(3))
    );
}

#[test]
fn wake_events_parse() {
    let w = WakeEvent::parse(
        br#"{"type":"wake","subscription_id":"sub-1","stream":"events/abc","generation":7,"ts":1778324210000}"#,
    )
    .unwrap()
    .unwrap();
    assert_eq!(w.subscription_id, "sub-1");
    assert_eq!(w.generation, Some(7));
    assert_eq!(WakeEvent::parse(br#"{"type":"note","x":1}"#).unwrap(), None);
    assert!(WakeEvent::parse(b"nope").is_err());
    assert!(WakeEvent::parse(br#"{"type":"wake"}"#).is_err());
}

// ----- webhook signatures -----

const T: u64 = 1_778_324_210;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn jwks_of(keys: &[(&str, u8)]) -> Jwks {
    Jwks::new(
        keys.iter()
            .map(|(kid, seed)| Jwk::ed25519(*kid, key(*seed).verifying_key()))
            .collect(),
    )
}

#[test]
fn signature_round_trip_and_rejections() {
    let jwks = jwks_of(&[("k1", 1), ("k2", 2)]);
    let body = br#"{"subscription_id":"sub-1"}"#;
    let header = sign_webhook(&key(1), "k1", T, body);
    assert!(header.starts_with(&format!("t={T},kid=k1,ed25519=")));
    assert!(
        !header.contains('='.to_string().repeat(2).as_str()),
        "unpadded"
    );
    let ok = verify_webhook(&header, body, &jwks, T + 10, DEFAULT_REPLAY_WINDOW).unwrap();
    assert_eq!(
        ok,
        VerifiedWebhook {
            kid: "k1".into(),
            timestamp: T
        }
    );
    // Tampered body.
    assert_eq!(
        verify_webhook(&header, b"{}", &jwks, T, DEFAULT_REPLAY_WINDOW),
        Err(WebhookRejection::BadSignature)
    );
    // Signed by key 2 but announced as k1.
    let wrong = sign_webhook(&key(2), "k1", T, body);
    assert_eq!(
        verify_webhook(&wrong, body, &jwks, T, DEFAULT_REPLAY_WINDOW),
        Err(WebhookRejection::BadSignature)
    );
    // The timestamp is part of what is signed.
    let moved = header.replacen(&format!("t={T}"), &format!("t={}", T + 1), 1);
    assert_eq!(
        verify_webhook(&moved, body, &jwks, T, DEFAULT_REPLAY_WINDOW),
        Err(WebhookRejection::BadSignature)
    );
    // Window boundaries: exactly 300 s either way passes, one more fails.
    assert!(verify_webhook(&header, body, &jwks, T + 300, DEFAULT_REPLAY_WINDOW).is_ok());
    assert_eq!(
        verify_webhook(&header, body, &jwks, T + 301, DEFAULT_REPLAY_WINDOW),
        Err(WebhookRejection::TooOld { age_secs: 301 })
    );
    assert!(verify_webhook(&header, body, &jwks, T - 300, DEFAULT_REPLAY_WINDOW).is_ok());
    assert_eq!(
        verify_webhook(&header, body, &jwks, T - 301, DEFAULT_REPLAY_WINDOW),
        Err(WebhookRejection::TooNew { ahead_secs: 301 })
    );
    let unknown = sign_webhook(&key(3), "k3", T, body);
    assert_eq!(
        verify_webhook(&unknown, body, &jwks, T, DEFAULT_REPLAY_WINDOW),
        Err(WebhookRejection::UnknownKid { kid: "k3".into() })
    );
}

#[test]
fn malformed_headers_are_refused() {
    let good_sig = sign_webhook(&key(1), "k1", T, b"x");
    let sig = good_sig.rsplit_once("ed25519=").unwrap().1.to_owned();
    // Order, spaces and unknown parameters are tolerated.
    let reordered = format!(" kid=k1 , v=2, ed25519={sig}, t={T}");
    assert!(SignatureHeader::parse(&reordered).is_ok());
    let padded = format!("t={T},kid=k1,ed25519={sig}==");
    assert!(SignatureHeader::parse(&padded).is_ok());
    for bad in [
        String::new(),
        format!("kid=k1,ed25519={sig}"),
        format!("t={T},ed25519={sig}"),
        format!("t={T},kid=k1"),
        format!("t=-5,kid=k1,ed25519={sig}"),
        format!("t=1e9,kid=k1,ed25519={sig}"),
        format!("t=99999999999999999999999,kid=k1,ed25519={sig}"),
        format!("t={T},kid=,ed25519={sig}"),
        format!("t={T},kid=k1,ed25519=@@@"),
        format!("t={T},kid=k1,ed25519=AAAA"),
        format!("t={T},t={T},kid=k1,ed25519={sig}"),
        format!("t={T};kid=k1;ed25519={sig}"),
    ] {
        assert!(
            matches!(
                SignatureHeader::parse(&bad),
                Err(WebhookRejection::MalformedHeader(_))
            ),
            "{bad}"
        );
    }
    // The reason names what is wrong: an empty timestamp is not a decimal one.
    match SignatureHeader::parse(&format!("t=,kid=k1,ed25519={sig}")) {
        Err(WebhookRejection::MalformedHeader(m)) => assert!(m.contains("decimal"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_claims_debug_form_hides_its_token() {
    let claim: Claim = serde_json::from_str(
        r#"{"wake_id":"w_1","generation":2,"token":"secret-token","streams":[],"lease_ttl_ms":30000}"#,
    )
    .unwrap();
    let shown = format!("{claim:?}");
    assert!(!shown.contains("secret-token"), "{shown}");
    assert!(shown.contains("w_1") && shown.contains("30000"), "{shown}");
}

#[test]
fn jwks_parses_only_usable_ed25519_keys() {
    let jwks = jwks_of(&[("k1", 1)]);
    let json = jwks.to_json();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["keys"][0]["kty"], "OKP");
    assert_eq!(v["keys"][0]["crv"], "Ed25519");
    assert_eq!(v["keys"][0]["alg"], "EdDSA");
    assert_eq!(Jwks::from_json(&json).unwrap(), jwks);
    let x = v["keys"][0]["x"].as_str().unwrap();
    let mixed = format!(
        r#"{{"keys":[
            {{"kty":"RSA","kid":"r","n":"abc","e":"AQAB"}},
            {{"kty":"OKP","crv":"X25519","kid":"x","x":"{x}"}},
            {{"kty":"OKP","crv":"Ed25519","kid":"enc","use":"enc","x":"{x}"}},
            {{"kty":"OKP","crv":"Ed25519","x":"{x}"}},
            {{"kty":"OKP","crv":"Ed25519","kid":"short","x":"AAAA"}},
            {{"kty":"OKP","crv":"Ed25519","kid":"good","x":"{x}","extra":true}}
        ]}}"#
    );
    let parsed = Jwks::from_json(mixed.as_bytes()).unwrap();
    assert_eq!(parsed.keys().len(), 1);
    assert!(parsed.key("good").is_some());
    assert!(Jwks::from_json(b"{}").is_err());
    let dup = format!(
        r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"a","x":"{x}"}},{{"kty":"OKP","crv":"Ed25519","kid":"a","x":"{x}"}}]}}"#
    );
    assert!(Jwks::from_json(dup.as_bytes()).is_err());
    let url = "http://h/v1/stream/__ds/jwks.json";
    assert_eq!(jwks_response(url, &parts(200), &json).unwrap(), jwks);
    assert!(jwks_response(url, &parts(200), b"[]").is_err());
    assert!(matches!(
        jwks_response(url, &parts(404), b"").unwrap_err().kind,
        SubscriptionErrorKind::NotFound { .. }
    ));
}

#[test]
#[allow(clippy::disallowed_methods)]
fn jwks_cache_bounds_refetches() {
    let t0 = Instant::now();
    let interval = Duration::from_secs(60);
    let mut cache = JwksCache::new(interval, DEFAULT_REPLAY_WINDOW);
    assert!(cache.jwks().is_none(), "a new cache holds no key set");
    let body = b"{}";
    let h1 = sign_webhook(&key(1), "k1", T, body);
    // No key set yet: fetch; a failed first fetch does not leave the cache refusing: the
    // next request fetches again, even for a kid already asked about.
    for _ in 0..2 {
        assert_eq!(
            cache.verify(Some(&h1), body, T, t0),
            Verification::FetchJwks
        );
        cache.fetch_failed(t0);
    }
    cache.update(jwks_of(&[("k1", 1)]), t0);
    assert!(matches!(
        cache.verify(Some(&h1), body, T, t0),
        Verification::Valid(_)
    ));
    // A rotated key: one refetch, then refused until the interval passes.
    let h2 = sign_webhook(&key(2), "k2", T, body);
    assert_eq!(
        cache.verify(Some(&h2), body, T, t0),
        Verification::FetchJwks
    );
    cache.update(jwks_of(&[("k1", 1)]), t0); // the server does not have it yet
    assert_eq!(
        cache.verify(Some(&h2), body, T, t0 + Duration::from_secs(1)),
        Verification::Invalid(WebhookRejection::UnknownKid { kid: "k2".into() })
    );
    assert_eq!(
        cache.verify(Some(&h2), body, T, t0 + Duration::from_secs(59)),
        Verification::Invalid(WebhookRejection::UnknownKid { kid: "k2".into() })
    );
    assert_eq!(
        cache.verify(Some(&h2), body, T, t0 + interval),
        Verification::FetchJwks
    );
    cache.update(jwks_of(&[("k1", 1), ("k2", 2)]), t0 + interval);
    assert!(matches!(
        cache.verify(Some(&h2), body, T, t0 + interval),
        Verification::Valid(_)
    ));
    // Checks before any fetch: missing header, malformed, stale timestamps never fetch.
    assert_eq!(
        cache.verify(None, body, T, t0),
        Verification::Invalid(WebhookRejection::MissingHeader)
    );
    let h9 = sign_webhook(&key(9), "k9", T, body);
    assert!(matches!(
        cache.verify(Some(&h9), body, T + 1000, t0),
        Verification::Invalid(WebhookRejection::TooOld { .. })
    ));
    // A flood of made-up kids: at most DEFAULT_MAX_TRACKED_KIDS fetches per interval.
    let later = t0 + interval * 3;
    let mut fetches = 0;
    for i in 0..500 {
        let h = sign_webhook(&key(9), &format!("fake{i}"), T, body);
        if cache.verify(Some(&h), body, T, later) == Verification::FetchJwks {
            fetches += 1;
            cache.fetch_failed(later);
        }
    }
    assert_eq!(fetches, JwksCache::DEFAULT_MAX_TRACKED_KIDS);
}

/// A stream whose tail is past its cursor is acked to its tail even when the server's
/// `has_pending` says otherwise; one flagged pending is acked even at its cursor.
#[test]
fn acks_to_tail_trust_either_sign_of_work() {
    let body = br#"{"subscription_id":"s","wake_id":"w","generation":1,
      "streams":[{"path":"a","acked_offset":"0_1","tail_offset":"0_4","has_pending":false},
        {"path":"b","acked_offset":"0_2","tail_offset":"0_2","has_pending":true},
        {"path":"c","acked_offset":"0_3","tail_offset":"0_3","has_pending":false}],
      "callback_url":"https://h/cb","callback_token":"t"}"#;
    let n = WakeNotification::parse(body).unwrap();
    let acked: Vec<(String, String)> = n
        .acks_to_tail()
        .into_iter()
        .map(|a| (a.stream, a.offset.to_string()))
        .collect();
    assert_eq!(
        acked,
        vec![("a".into(), "0_4".into()), ("b".into(), "0_2".into())]
    );
}

#[test]
fn wake_notification_body() {
    let body = br#"{
      "subscription_id": "sub-1", "wake_id": "w_abc123", "generation": 7,
      "streams": [{"path": "events/abc", "link_type": "glob",
        "acked_offset": "0000000000000001_0000000000000042",
        "tail_offset": "0000000000000002_0000000000000084", "has_pending": true},
        {"path": "events/idle", "link_type": "explicit",
        "acked_offset": "0_1", "tail_offset": "0_1", "has_pending": false}],
      "callback_url": "https://server.example/streams/__ds/subscriptions/sub-1/callback",
      "callback_token": "eyJsecret"
    }"#;
    let n = WakeNotification::parse_for(body, "sub-1").unwrap();
    assert_eq!(n.wake_id, "w_abc123");
    assert_eq!(n.generation, 7);
    assert_eq!(n.streams.len(), 2);
    let shown = format!("{n:?}");
    assert!(!shown.contains("eyJsecret"), "{shown}");
    assert!(
        shown.contains("w_abc123") && shown.contains("events/idle"),
        "{shown}"
    );
    assert_eq!(
        n.acks_to_tail(),
        vec![Ack {
            stream: "events/abc".into(),
            offset: off("0000000000000002_0000000000000084")
        }]
    );
    assert_eq!(
        WakeNotification::parse_for(body, "other"),
        Err(WebhookRejection::WrongSubscription {
            got: "sub-1".into()
        })
    );
    assert!(matches!(
        WakeNotification::parse(b"{}"),
        Err(WebhookRejection::BadBody(_))
    ));
    assert_eq!(&webhook_done_body()[..], br#"{"done":true}"#);
    let req = callback_request(
        &n.callback_url,
        &n.callback_token,
        &AckBody {
            wake_id: n.wake_id.clone(),
            generation: n.generation,
            acks: n.acks_to_tail(),
            done: true,
        },
        &RequestExtras::new(),
    )
    .unwrap();
    assert_eq!(req.uri().to_string(), n.callback_url);
    assert_eq!(req.headers()["authorization"], "Bearer eyJsecret");
}

proptest::proptest! {
    #[test]
    fn parsers_never_panic(s in ".{0,200}", bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let _ = SignatureHeader::parse(&s);
        let _ = WakeNotification::parse(&bytes);
        let _ = Jwks::from_json(&bytes);
        let _ = WakeEvent::parse(&bytes);
        let _ = check_webhook_url(&s);
        let _ = check_stream_path(&s);
        let _ = SubscriptionRoot::new(s.clone());
        let _ = root().stream_url(&s);
        let _ = remove_stream_request(&root(), &s, &s, &RequestExtras::new());
        let _ = error_from_response(SubscriptionOp::Ack, "http://h/x", &parts(409), &bytes);
        let _ = verify_webhook(&s, &bytes, &Jwks::default(), 0, DEFAULT_REPLAY_WINDOW);
    }
}

// ----- mutation-testing follow-ups -----

#[test]
fn webhook_url_address_ranges() {
    // Local development over plain http (6.2).
    assert_eq!(check_webhook_url("http://localhost:8080/hook"), Ok(()));
    assert_eq!(check_webhook_url("http://127.0.0.1/hook"), Ok(()));
    // Private (RFC 1918) and shared (100.64.0.0/10, carrier-grade NAT) addresses are refused.
    for url in [
        "https://10.1.2.3/hook",
        "https://192.168.0.1/hook",
        "https://100.64.0.1/hook",
        "https://100.127.255.255/hook",
        "https://0.1.2.3/hook",
    ] {
        assert!(check_webhook_url(url).is_err(), "{url}");
    }
    // Public addresses around the shared range are accepted.
    for url in [
        "https://100.1.2.3/hook",
        "https://100.63.255.255/hook",
        "https://100.128.0.1/hook",
        "https://8.64.1.1/hook",
    ] {
        assert_eq!(check_webhook_url(url), Ok(()), "{url}");
    }
}

#[test]
fn plain_http_to_a_remote_host_says_why() {
    match check_webhook_url("http://example.com/hook") {
        Err(ConfigError::InvalidWebhookUrl { reason, .. }) => {
            assert!(reason.contains("localhost"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn stream_path_with_a_slash_at_an_end_says_why() {
    for path in ["/events/a", "events/a/"] {
        match check_stream_path(path) {
            Err(ConfigError::InvalidStreamPath { reason, .. }) => {
                assert!(reason.contains("slash"), "{path}: {reason}")
            }
            other => panic!("{path}: {other:?}"),
        }
    }
}

#[test]
fn remove_stream_answers() {
    let r = root();
    assert!(remove_stream_response(&r, "s", "events/a", &parts(204), b"").is_ok());
    let e = remove_stream_response(&r, "s", "events/a", &parts(404), b"").unwrap_err();
    assert!(
        e.to_string().contains("remove subscription stream"),
        "the message names the operation: {e}"
    );
    let e = remove_stream_response(&r, "s", "events/a", &parts(503), b"").unwrap_err();
    assert_eq!(crate::retry::RetryableError::server_retry_after(&e), None);
}

#[test]
fn a_relative_jwks_url_is_refused() {
    assert!(jwks_request_at("example.com:443", &RequestExtras::new()).is_err());
    assert!(jwks_request_at("/__ds/jwks.json", &RequestExtras::new()).is_err());
}

#[test]
fn jwk_debug_shows_kid_and_key() {
    let jwk = Jwk::ed25519("k1", key(1).verifying_key());
    let s = format!("{jwk:?}");
    assert!(s.contains("Jwk") && s.contains("\"k1\""), "{s}");
}
