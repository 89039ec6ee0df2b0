//! Subscription requests as pure builders and interpreters (PROTOCOL.md 6, 7.1, 7.2), in the
//! style of [`crate::ops`]: `*_request` checks its input and builds the `http::Request`,
//! `*_response` turns the response head and whole body into a typed result or a
//! [`SubscriptionError`]. Whether a request is safe to send again is
//! [`SubscriptionOp::is_idempotent`].
//!
//! Credentials: the control routes and claims take the caller's service credential through
//! [`RequestExtras`] (for instance `Authorization: Bearer <service-jwt>`); acks and releases
//! carry the claim token and callbacks the callback token, set by the builder as
//! `Authorization: Bearer` (12.9) and marked sensitive.

use super::error::SubscriptionErrorKind;
use super::error::{error_from_response, SubscriptionError, SubscriptionOp};
use super::types::{
    check_stream_path, AckBody, AckOutcome, Claim, Subscription, SubscriptionConfig,
};
use super::webhook::Jwks;
use crate::ops::RequestExtras;
use crate::url::encode_component;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::Method;

/// A checked stream root URL, such as `http://host:4437/v1/stream`: the URL under which
/// stream paths and the reserved `__ds` routes live (6, 6.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SubscriptionRoot(String);

impl SubscriptionRoot {
    /// Checks `url`: absolute `http://` or `https://`, no query, fragment or credentials.
    /// A trailing `/` is dropped.
    pub fn new(url: impl Into<String>) -> Result<SubscriptionRoot, SubscriptionError> {
        let url = url.into();
        let invalid = |m: &str| {
            SubscriptionError::invalid_input(SubscriptionOp::Get, &url, crate::InputReason::Url, m)
        };
        if url.contains(['?', '#']) {
            return Err(invalid("the stream root must not have a query or fragment"));
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|_| invalid("the stream root is not a URL"))?;
        if !matches!(uri.scheme_str(), Some("http") | Some("https")) {
            return Err(invalid("the stream root must be http:// or https://"));
        }
        match uri.authority() {
            None => return Err(invalid("the stream root must be absolute")),
            Some(a) if a.as_str().contains('@') => {
                return Err(invalid("the stream root must not carry credentials"))
            }
            Some(_) => {}
        }
        Ok(SubscriptionRoot(url.trim_end_matches('/').to_owned()))
    }

    /// The root URL, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL of a stream-root-relative stream path (each segment percent-encoded).
    pub fn stream_url(&self, path: &str) -> Result<String, SubscriptionError> {
        check_stream_path(path).map_err(|e| {
            SubscriptionError::invalid_input(
                SubscriptionOp::Get,
                &self.0,
                crate::InputReason::Url,
                e.to_string(),
            )
        })?;
        let mut url = self.0.clone();
        for seg in path.split('/') {
            url.push('/');
            url.push_str(&encode_component(seg));
        }
        Ok(url)
    }

    /// `<root>/__ds/subscriptions/<id>` (the id is one percent-encoded segment).
    pub fn subscription_url(&self, id: &str) -> String {
        format!("{}/__ds/subscriptions/{}", self.0, encode_component(id))
    }

    /// `<root>/__ds/jwks.json` (6.5).
    pub fn jwks_url(&self) -> String {
        format!("{}/__ds/jwks.json", self.0)
    }

    fn route(&self, id: &str, tail: &str) -> String {
        format!("{}/{tail}", self.subscription_url(id))
    }
}

impl TryFrom<String> for SubscriptionRoot {
    type Error = SubscriptionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        SubscriptionRoot::new(s)
    }
}

impl From<SubscriptionRoot> for String {
    fn from(r: SubscriptionRoot) -> String {
        r.0
    }
}

fn check_id(
    op: SubscriptionOp,
    root: &SubscriptionRoot,
    id: &str,
) -> Result<(), SubscriptionError> {
    if id.is_empty() || id.chars().any(char::is_control) {
        return Err(SubscriptionError::invalid_input(
            op,
            root.as_str(),
            crate::InputReason::Config,
            format!("subscription id {id:?} is empty or has control characters"),
        ));
    }
    Ok(())
}

fn build(
    op: SubscriptionOp,
    method: Method,
    url: &str,
    json: Option<Vec<u8>>,
    bearer: Option<&str>,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, SubscriptionError> {
    let params: Vec<(&str, &str)> = extras
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let full = crate::url::with_query(url, &params);
    let uri: http::Uri = full.parse().map_err(|e| {
        SubscriptionError::invalid_input(op, url, crate::InputReason::Url, format!("bad URL: {e}"))
    })?;
    if uri.scheme().is_none() || uri.authority().is_none() {
        return Err(SubscriptionError::invalid_input(
            op,
            url,
            crate::InputReason::Url,
            "URL must be absolute",
        ));
    }
    let mut req = http::Request::builder().method(method).uri(uri);
    let headers = req.headers_mut().expect("a fresh builder is valid");
    for (k, v) in &extras.headers {
        headers.append(k.clone(), v.clone());
    }
    if let Some(token) = bearer {
        let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            SubscriptionError::invalid_input(
                op,
                url,
                crate::InputReason::Header,
                "the token is not a valid header value",
            )
        })?;
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    }
    let body = match json {
        Some(b) => {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Bytes::from(b)
        }
        None => Bytes::new(),
    };
    req.body(body).map_err(|e| {
        SubscriptionError::invalid_input(
            op,
            url,
            crate::InputReason::Header,
            format!("cannot build request: {e}"),
        )
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("subscription values always serialize")
}

fn parse_json<T: serde::de::DeserializeOwned>(
    op: SubscriptionOp,
    url: &str,
    body: &[u8],
) -> Result<T, SubscriptionError> {
    serde_json::from_slice(body).map_err(|e| {
        SubscriptionError::invalid_response(
            op,
            url,
            crate::ResponseReason::Body,
            format!("bad JSON body: {e}"),
        )
    })
}

fn expect(
    op: SubscriptionOp,
    url: &str,
    parts: &http::response::Parts,
    body: &[u8],
    ok: &[u16],
) -> Result<u16, SubscriptionError> {
    let status = parts.status.as_u16();
    if ok.contains(&status) {
        Ok(status)
    } else {
        Err(error_from_response(op, url, parts, body))
    }
}

// ----- control routes (6) -----

/// What a create returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    /// `true` for 201 (created), `false` for 200 (re-confirmed, identical configuration).
    pub created: bool,
    /// The subscription, when the response carried it.
    pub subscription: Option<Subscription>,
}

/// Builds `PUT <root>/__ds/subscriptions/<id>` with the configuration, after
/// [`SubscriptionConfig::validate`] (a refusal is [`SubscriptionErrorKind::InvalidConfig`]).
pub fn create_subscription_request(
    root: &SubscriptionRoot,
    id: &str,
    config: &SubscriptionConfig,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, SubscriptionError> {
    let op = SubscriptionOp::Create;
    check_id(op, root, id)?;
    let url = root.subscription_url(id);
    config
        .validate()
        .map_err(|e| SubscriptionError::new(op, &url, SubscriptionErrorKind::InvalidConfig(e)))?;
    build(op, Method::PUT, &url, Some(to_json(config)), None, extras)
}

/// Interprets the create: 201 created, 200 re-confirmed; 409 is
/// [`SubscriptionErrorKind::ConfigConflict`]. A body that is not a subscription is tolerated
/// (`subscription: None`).
pub fn create_subscription_response(
    root: &SubscriptionRoot,
    id: &str,
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<Confirmed, SubscriptionError> {
    let url = root.subscription_url(id);
    let status = expect(SubscriptionOp::Create, &url, parts, body, &[200, 201])?;
    Ok(Confirmed {
        created: status == 201,
        subscription: serde_json::from_slice(body).ok(),
    })
}

/// Builds `GET <root>/__ds/subscriptions/<id>`.
pub fn get_subscription_request(
    root: &SubscriptionRoot,
    id: &str,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, SubscriptionError> {
    check_id(SubscriptionOp::Get, root, id)?;
    build(
        SubscriptionOp::Get,
        Method::GET,
        &root.subscription_url(id),
        None,
        None,
        extras,
    )
}

/// Interprets the get: 200 with the [`Subscription`].
pub fn get_subscription_response(
    root: &SubscriptionRoot,
    id: &str,
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<Subscription, SubscriptionError> {
    let url = root.subscription_url(id);
    expect(SubscriptionOp::Get, &url, parts, body, &[200])?;
    parse_json(SubscriptionOp::Get, &url, body)
}

/// Builds `DELETE <root>/__ds/subscriptions/<id>`.
pub fn delete_subscription_request(
    root: &SubscriptionRoot,
    id: &str,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, SubscriptionError> {
    check_id(SubscriptionOp::Delete, root, id)?;
    build(
        SubscriptionOp::Delete,
        Method::DELETE,
        &root.subscription_url(id),
        None,
        None,
        extras,
    )
}

/// Interprets the delete: 204 (or 200).
pub fn delete_subscription_response(
    root: &SubscriptionRoot,
    id: &str,
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<(), SubscriptionError> {
    let url = root.subscription_url(id);
    expect(SubscriptionOp::Delete, &url, parts, body, &[200, 204]).map(drop)
}

/// Builds `POST <root>/__ds/subscriptions/<id>/streams` with `{ "streams": [...] }` (6.4).
pub fn add_streams_request(
    root: &SubscriptionRoot,
    id: &str,
    streams: &[&str],
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, SubscriptionError> {
    let op = SubscriptionOp::AddStreams;
    check_id(op, root, id)?;
    let url = root.route(id, "streams");
    if streams.is_empty() {
        return Err(SubscriptionError::invalid_input(
            op,
            &url,
            crate::InputReason::Config,
            "no streams to add",
        ));
    }
    for s in streams {
        check_stream_path(s).map_err(|e| {
            SubscriptionError::new(op, &url, SubscriptionErrorKind::InvalidConfig(e))
        })?;
    }
    let body = to_json(&serde_json::json!({ "streams": streams }));
    build(op, Method::POST, &url, Some(body), None, extras)
}

/// Interprets the add: 204 (or 200).
pub fn add_streams_response(
    root: &SubscriptionRoot,
    id: &str,
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<(), SubscriptionError> {
    let url = root.route(id, "streams");
    expect(SubscriptionOp::AddStreams, &url, parts, body, &[200, 204]).map(drop)
}

/// Builds `DELETE <root>/__ds/subscriptions/<id>/streams/<path>` (6.4). The path is sent as
/// one URL-encoded segment: its slashes become `%2F`.
pub fn remove_stream_request(
    root: &SubscriptionRoot,
    id: &str,
    path: &str,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, SubscriptionError> {
    let op = SubscriptionOp::RemoveStream;
    check_id(op, root, id)?;
    let url = remove_stream_url(root, id, path);
    check_stream_path(path)
        .map_err(|e| SubscriptionError::new(op, &url, SubscriptionErrorKind::InvalidConfig(e)))?;
    build(op, Method::DELETE, &url, None, None, extras)
}

fn remove_stream_url(root: &SubscriptionRoot, id: &str, path: &str) -> String {
    format!(
        "{}/streams/{}",
        root.subscription_url(id),
        encode_component(path)
    )
}

/// Interprets the removal: 204 (or 200).
pub fn remove_stream_response(
    root: &SubscriptionRoot,
    id: &str,
    path: &str,
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<(), SubscriptionError> {
    let url = remove_stream_url(root, id, path);
    expect(SubscriptionOp::RemoveStream, &url, parts, body, &[200, 204]).map(drop)
}

/// Builds `GET <root>/__ds/jwks.json` (6.5). To fetch the `jwks_url` a subscription names
/// instead, use [`jwks_request_at`].
pub fn jwks_request(
    root: &SubscriptionRoot,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, SubscriptionError> {
    jwks_request_at(&root.jwks_url(), extras)
}

/// Builds `GET <jwks_url>`.
pub fn jwks_request_at(
    jwks_url: &str,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, SubscriptionError> {
    build(
        SubscriptionOp::Jwks,
        Method::GET,
        jwks_url,
        None,
        None,
        extras,
    )
}

/// Interprets the JWKS: 200 with a key set ([`Jwks::from_json`]).
pub fn jwks_response(
    jwks_url: &str,
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<Jwks, SubscriptionError> {
    expect(SubscriptionOp::Jwks, jwks_url, parts, body, &[200])?;
    Jwks::from_json(body).map_err(|e| {
        SubscriptionError::invalid_response(
            SubscriptionOp::Jwks,
            jwks_url,
            crate::ResponseReason::Body,
            e,
        )
    })
}

// ----- pull-wake (7.2) -----

/// Builds `POST <root>/__ds/subscriptions/<id>/claim` with `{ "worker": name }`. Put the
/// service credential in `extras`. Not safe to re-send blindly ([`SubscriptionOp::is_idempotent`]).
pub fn claim_request(
    root: &SubscriptionRoot,
    id: &str,
    worker: &str,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, SubscriptionError> {
    let op = SubscriptionOp::Claim;
    check_id(op, root, id)?;
    let url = root.route(id, "claim");
    if worker.is_empty() || worker.chars().any(char::is_control) {
        return Err(SubscriptionError::invalid_input(
            op,
            &url,
            crate::InputReason::Config,
            "worker name is empty or has control characters",
        ));
    }
    let body = to_json(&serde_json::json!({ "worker": worker }));
    build(op, Method::POST, &url, Some(body), None, extras)
}

/// Interprets the claim: 200 (or 201) with the [`Claim`]. `ALREADY_CLAIMED`,
/// `NO_PENDING_WORK` and the others are typed errors.
pub fn claim_response(
    root: &SubscriptionRoot,
    id: &str,
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<Claim, SubscriptionError> {
    let url = root.route(id, "claim");
    expect(SubscriptionOp::Claim, &url, parts, body, &[200, 201])?;
    parse_json(SubscriptionOp::Claim, &url, body)
}

/// Builds `POST <root>/__ds/subscriptions/<id>/ack` with the claim token. `acks: []`
/// without `done` is a heartbeat that extends the lease.
pub fn ack_request(
    root: &SubscriptionRoot,
    id: &str,
    token: &str,
    ack: &AckBody,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, SubscriptionError> {
    let op = SubscriptionOp::Ack;
    check_id(op, root, id)?;
    check_acks(op, &root.route(id, "ack"), ack)?;
    build(
        op,
        Method::POST,
        &root.route(id, "ack"),
        Some(to_json(ack)),
        Some(token),
        extras,
    )
}

fn check_acks(op: SubscriptionOp, url: &str, ack: &AckBody) -> Result<(), SubscriptionError> {
    for a in &ack.acks {
        check_stream_path(&a.stream).map_err(|e| {
            SubscriptionError::new(op, url, SubscriptionErrorKind::InvalidConfig(e))
        })?;
        if a.offset.is_sentinel() {
            return Err(SubscriptionError::invalid_input(
                op,
                url,
                crate::InputReason::Offset,
                format!(
                    "ack offset for {} must be a server offset, not {}",
                    a.stream, a.offset
                ),
            ));
        }
    }
    Ok(())
}

/// Interprets an ack: 200 with `{ "ok": true, "next_wake": ... }`, or 204.
pub fn ack_response(
    root: &SubscriptionRoot,
    id: &str,
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<AckOutcome, SubscriptionError> {
    ack_like(SubscriptionOp::Ack, &root.route(id, "ack"), parts, body)
}

fn ack_like(
    op: SubscriptionOp,
    url: &str,
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<AckOutcome, SubscriptionError> {
    let status = expect(op, url, parts, body, &[200, 204])?;
    if status == 204 || body.iter().all(u8::is_ascii_whitespace) {
        return Ok(AckOutcome::default());
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        ok: Option<bool>,
        #[serde(default)]
        next_wake: bool,
    }
    let a: Answer = parse_json(op, url, body)?;
    if a.ok == Some(false) {
        return Err(SubscriptionError::invalid_response(
            op,
            url,
            crate::ResponseReason::Body,
            "the server answered ok: false",
        ));
    }
    Ok(AckOutcome {
        next_wake: a.next_wake,
    })
}

/// Builds `POST <root>/__ds/subscriptions/<id>/release` with the claim token and
/// `{ "wake_id", "generation" }`.
pub fn release_request(
    root: &SubscriptionRoot,
    id: &str,
    token: &str,
    wake_id: &str,
    generation: u64,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, SubscriptionError> {
    let op = SubscriptionOp::Release;
    check_id(op, root, id)?;
    let body = to_json(&serde_json::json!({ "wake_id": wake_id, "generation": generation }));
    build(
        op,
        Method::POST,
        &root.route(id, "release"),
        Some(body),
        Some(token),
        extras,
    )
}

/// Interprets a release: 204 (or 200).
pub fn release_response(
    root: &SubscriptionRoot,
    id: &str,
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<(), SubscriptionError> {
    let url = root.route(id, "release");
    expect(SubscriptionOp::Release, &url, parts, body, &[200, 204]).map(drop)
}

// ----- webhook callback (7.1) -----

/// Builds `POST <callback_url>` with the callback token and the acks (7.1). `callback_url`
/// and `callback_token` come from the [`WakeNotification`](super::WakeNotification).
pub fn callback_request(
    callback_url: &str,
    callback_token: &str,
    ack: &AckBody,
    extras: &RequestExtras,
) -> Result<http::Request<Bytes>, SubscriptionError> {
    let op = SubscriptionOp::Callback;
    check_acks(op, callback_url, ack)?;
    build(
        op,
        Method::POST,
        callback_url,
        Some(to_json(ack)),
        Some(callback_token),
        extras,
    )
}

/// Interprets a callback: `{ "ok": true, "next_wake": ... }` (or 204); a stale wake is
/// [`SubscriptionErrorKind::Fenced`].
pub fn callback_response(
    callback_url: &str,
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<AckOutcome, SubscriptionError> {
    ack_like(SubscriptionOp::Callback, callback_url, parts, body)
}
