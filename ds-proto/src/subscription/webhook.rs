//! Receiving webhooks without a web framework (PROTOCOL.md 6.5, 7.1, 12.10): parse and verify
//! the `Webhook-Signature` header against a JWKS, keep the key set in a [`JwksCache`] that
//! says when to refetch, parse the [`WakeNotification`], and answer it (the `{ "done": true }`
//! body, or a callback with [`callback_request`](super::callback_request)). Signing
//! ([`sign_webhook`]) is here too, for servers and tests.
//!
//! Everything is pure: the current Unix time and the monotonic `now` are arguments, keys come
//! from the caller, and the cache returns "fetch the JWKS" instead of fetching.
//!
//! ```
//! use ds_proto::subscription::{
//!     sign_webhook, verify_webhook, Jwk, Jwks, SigningKey, DEFAULT_REPLAY_WINDOW,
//! };
//! let key = SigningKey::from_bytes(&[7; 32]);
//! let jwks = Jwks::new(vec![Jwk::ed25519("k1", key.verifying_key())]);
//! let body = br#"{"subscription_id":"s"}"#;
//! let header = sign_webhook(&key, "k1", 1_700_000_000, body);
//! let ok = verify_webhook(&header, body, &jwks, 1_700_000_010, DEFAULT_REPLAY_WINDOW).unwrap();
//! assert_eq!(ok.kid, "k1");
//! ```

use super::types::PendingStream;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::Bytes;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

/// The header carrying the signature.
pub const WEBHOOK_SIGNATURE: http::header::HeaderName =
    http::header::HeaderName::from_static("webhook-signature");

/// The replay window PROTOCOL.md 7.1 suggests: five minutes either way.
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(300);

/// Unpadded base64url, accepting padding on input.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a webhook request is refused. Each is a reason to answer 401 or 400 and do no work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookRejection {
    /// No `Webhook-Signature` header.
    #[error("missing Webhook-Signature header")]
    MissingHeader,
    /// The header is not `t=<unix>,kid=<id>,ed25519=<base64url>`.
    #[error("malformed Webhook-Signature header: {0}")]
    MalformedHeader(String),
    /// No key with this `kid` in the key set (after a refetch, when the cache allowed one).
    #[error("unknown signing key {kid:?}")]
    UnknownKid {
        /// The header's `kid`.
        kid: String,
    },
    /// The signature does not verify with the key of `kid`.
    #[error("bad signature")]
    BadSignature,
    /// The timestamp is older than the replay window.
    #[error("timestamp too old ({age_secs} s)")]
    TooOld {
        /// How old it is.
        age_secs: u64,
    },
    /// The timestamp is further in the future than the replay window.
    #[error("timestamp too far in the future ({ahead_secs} s)")]
    TooNew {
        /// How far ahead it is.
        ahead_secs: u64,
    },
    /// The (verified) body is not a wake notification.
    #[error("bad webhook body: {0}")]
    BadBody(String),
    /// The (verified) notification is for another subscription than expected (12.10).
    #[error("unexpected subscription {got:?}")]
    WrongSubscription {
        /// The notification's `subscription_id`.
        got: String,
    },
}

/// A parsed `Webhook-Signature` header (7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    /// `t`: Unix seconds.
    pub timestamp: u64,
    /// `kid`: the signing key's id.
    pub kid: String,
    /// `ed25519`: the signature.
    pub signature: [u8; 64],
}

impl SignatureHeader {
    /// Parses `t=<unix>,kid=<id>,ed25519=<unpadded base64url>`: parameters in any order,
    /// spaces around them tolerated, unknown parameters ignored; each of the three exactly
    /// once.
    pub fn parse(value: &str) -> Result<SignatureHeader, WebhookRejection> {
        let bad = |m: &str| WebhookRejection::MalformedHeader(m.to_owned());
        let (mut t, mut kid, mut sig) = (None, None, None);
        for part in value.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| bad("a parameter without `=`"))?;
            let slot = match k.trim() {
                "t" => &mut t,
                "kid" => &mut kid,
                "ed25519" => &mut sig,
                _ => continue,
            };
            if slot.replace(v.trim()).is_some() {
                return Err(bad("a parameter appears twice"));
            }
        }
        let t = t.ok_or_else(|| bad("no t"))?;
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("t is not a decimal Unix timestamp"));
        }
        let timestamp = t.parse().map_err(|_| bad("t is out of range"))?;
        let kid = kid.filter(|k| !k.is_empty()).ok_or_else(|| bad("no kid"))?;
        let raw = B64URL
            .decode(sig.ok_or_else(|| bad("no ed25519"))?)
            .map_err(|_| bad("ed25519 is not base64url"))?;
        let signature: [u8; 64] = raw.try_into().map_err(|_| bad("ed25519 is not 64 bytes"))?;
        Ok(SignatureHeader {
            timestamp,
            kid: kid.to_owned(),
            signature,
        })
    }
}

/// A webhook whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedWebhook {
    /// The key that signed it.
    pub kid: String,
    /// The signed timestamp (Unix seconds).
    pub timestamp: u64,
}

/// One key of a JWK Set: an Ed25519 public key (`kty: OKP`, `crv: Ed25519`) and its `kid`.
#[derive(Clone, PartialEq, Eq)]
pub struct Jwk {
    /// `kid`.
    pub kid: String,
    /// The public key (`x`).
    pub key: VerifyingKey,
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("x", &B64URL.encode(self.key.as_bytes()))
            .finish()
    }
}

impl Jwk {
    /// An Ed25519 JWK.
    pub fn ed25519(kid: impl Into<String>, key: VerifyingKey) -> Jwk {
        Jwk {
            kid: kid.into(),
            key,
        }
    }
}

/// A JWK Set (6.5), holding the usable Ed25519 keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Serialize, Deserialize)]
struct RawJwk {
    #[serde(default)]
    kty: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alg: Option<String>,
    #[serde(default)]
    x: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

impl Jwks {
    /// A key set of these keys.
    pub fn new(keys: Vec<Jwk>) -> Jwks {
        Jwks { keys }
    }

    /// Parses `{ "keys": [...] }`. Keys that are not OKP/Ed25519 signing keys with a `kid`
    /// and a 32-byte base64url `x` (other key types, `use` other than `sig`) are skipped, not
    /// errors: a set may hold keys for other purposes. Fails when the document is not a key
    /// set or two usable keys share a `kid`.
    pub fn from_json(body: &[u8]) -> Result<Jwks, String> {
        let raw: RawJwks =
            serde_json::from_slice(body).map_err(|e| format!("not a JWK Set: {e}"))?;
        let mut keys: Vec<Jwk> = Vec::new();
        for value in raw.keys {
            let Ok(k) = serde_json::from_value::<RawJwk>(value) else {
                continue;
            };
            if k.kty.as_deref() != Some("OKP")
                || k.crv.as_deref() != Some("Ed25519")
                || k.use_.as_deref().is_some_and(|u| u != "sig")
            {
                continue;
            }
            let (Some(kid), Some(x)) = (k.kid, k.x) else {
                continue;
            };
            let Some(bytes) = B64URL
                .decode(x)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            else {
                continue;
            };
            let Ok(key) = VerifyingKey::from_bytes(&bytes) else {
                continue;
            };
            if keys.iter().any(|j| j.kid == kid) {
                return Err(format!("two keys share kid {kid:?}"));
            }
            keys.push(Jwk { kid, key });
        }
        Ok(Jwks { keys })
    }

    /// The set as JSON, as a server publishes it.
    pub fn to_json(&self) -> Vec<u8> {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .map(|j| {
                serde_json::to_value(RawJwk {
                    kty: Some("OKP".into()),
                    crv: Some("Ed25519".into()),
                    kid: Some(j.kid.clone()),
                    use_: Some("sig".into()),
                    alg: Some("EdDSA".into()),
                    x: Some(B64URL.encode(j.key.as_bytes())),
                })
                .expect("a JWK serializes")
            })
            .collect();
        serde_json::to_vec(&RawJwks { keys }).expect("a JWKS serializes")
    }

    /// The key of `kid`.
    pub fn key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|j| j.kid == kid).map(|j| &j.key)
    }

    /// The usable keys.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }
}

/// The `Webhook-Signature` value for `body` signed at `timestamp` (Unix seconds) with `key`,
/// announced as `kid`: `t=<timestamp>,kid=<kid>,ed25519=<signature over "<t>.<body>">`.
pub fn sign_webhook(key: &SigningKey, kid: &str, timestamp: u64, body: &[u8]) -> String {
    let sig = key.sign(&signed_message(timestamp, body));
    format!(
        "t={timestamp},kid={kid},ed25519={}",
        B64URL.encode(sig.to_bytes())
    )
}

fn signed_message(timestamp: u64, body: &[u8]) -> Vec<u8> {
    let t = timestamp.to_string();
    let mut m = Vec::with_capacity(t.len() + 1 + body.len());
    m.extend_from_slice(t.as_bytes());
    m.push(b'.');
    m.extend_from_slice(body);
    m
}

fn check_time(timestamp: u64, unix_now: u64, window: Duration) -> Result<(), WebhookRejection> {
    let w = window.as_secs();
    if timestamp.saturating_add(w) < unix_now {
        return Err(WebhookRejection::TooOld {
            age_secs: unix_now - timestamp,
        });
    }
    if timestamp > unix_now.saturating_add(w) {
        return Err(WebhookRejection::TooNew {
            ahead_secs: timestamp - unix_now,
        });
    }
    Ok(())
}

fn check_signature(
    h: &SignatureHeader,
    key: &VerifyingKey,
    body: &[u8],
) -> Result<VerifiedWebhook, WebhookRejection> {
    let sig = Signature::from_bytes(&h.signature);
    key.verify_strict(&signed_message(h.timestamp, body), &sig)
        .map_err(|_| WebhookRejection::BadSignature)?;
    Ok(VerifiedWebhook {
        kid: h.kid.clone(),
        timestamp: h.timestamp,
    })
}

/// Verifies a webhook: the header parses, its timestamp is within `window` of `unix_now`
/// (Unix seconds, either way), `kid` is in `jwks`, and the Ed25519 signature over
/// `<t>.<raw body>` verifies (strict verification). Checked in that order. Pass the raw body
/// bytes exactly as received.
pub fn verify_webhook(
    header: &str,
    body: &[u8],
    jwks: &Jwks,
    unix_now: u64,
    window: Duration,
) -> Result<VerifiedWebhook, WebhookRejection> {
    let h = SignatureHeader::parse(header)?;
    check_time(h.timestamp, unix_now, window)?;
    let key = jwks
        .key(&h.kid)
        .ok_or_else(|| WebhookRejection::UnknownKid { kid: h.kid.clone() })?;
    check_signature(&h, key, body)
}

/// What [`JwksCache::verify`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The signature verified.
    Valid(VerifiedWebhook),
    /// The request is refused.
    Invalid(WebhookRejection),
    /// The key set is missing or lacks the header's `kid`, and a fetch is allowed now:
    /// fetch the JWKS ([`jwks_request`](super::jwks_request)), give it to
    /// [`JwksCache::update`] (or report [`JwksCache::fetch_failed`]) and verify again.
    FetchJwks,
}

/// A JWK Set cache that bounds refetches (sans IO: it says when to fetch, the driver fetches).
///
/// - With no key set yet, [`verify`](JwksCache::verify) asks for a fetch.
/// - A header naming a `kid` the set lacks asks for a refetch (key rotation) at most once per
///   `refetch_interval` for that `kid`; within the interval it is
///   [`WebhookRejection::UnknownKid`]. Only requests whose timestamp is inside the window
///   get that far.
/// - At most `max_tracked_kids` unknown kids are remembered; when that many were asked
///   about within the interval, further unknown kids are refused without a fetch, so a flood
///   of made-up kids cannot turn into a flood of fetches.
#[derive(Debug, Clone)]
pub struct JwksCache {
    jwks: Option<Jwks>,
    refetch_interval: Duration,
    window: Duration,
    asked: HashMap<String, Instant>,
    max_tracked_kids: usize,
    fetch_pending_since: Option<Instant>,
}

impl JwksCache {
    /// How many unknown kids are remembered by default.
    pub const DEFAULT_MAX_TRACKED_KIDS: usize = 64;

    /// An empty cache: at most one refetch per unknown kid per `refetch_interval`; timestamps
    /// checked against `window` (use [`DEFAULT_REPLAY_WINDOW`]).
    pub fn new(refetch_interval: Duration, window: Duration) -> JwksCache {
        JwksCache {
            jwks: None,
            refetch_interval,
            window,
            asked: HashMap::new(),
            max_tracked_kids: Self::DEFAULT_MAX_TRACKED_KIDS,
            fetch_pending_since: None,
        }
    }

    /// A cache that starts with `jwks`.
    pub fn with_jwks(mut self, jwks: Jwks) -> JwksCache {
        self.jwks = Some(jwks);
        self
    }

    /// The current key set.
    pub fn jwks(&self) -> Option<&Jwks> {
        self.jwks.as_ref()
    }

    /// Installs a freshly fetched key set.
    pub fn update(&mut self, jwks: Jwks, now: Instant) {
        let _ = now;
        self.jwks = Some(jwks);
        self.fetch_pending_since = None;
    }

    /// The fetch asked for failed; the kid that caused it stays refused until its interval
    /// passes, except while no key set was ever fetched: then the next request asks for a
    /// fetch again, whatever its kid.
    pub fn fetch_failed(&mut self, now: Instant) {
        let _ = now;
        self.fetch_pending_since = None;
    }

    /// Verifies a webhook request: `header` is the `Webhook-Signature` value (`None` when
    /// absent), `body` the raw body, `unix_now` the current Unix time in seconds, `now` the
    /// monotonic clock of the refetch bound.
    pub fn verify(
        &mut self,
        header: Option<&str>,
        body: &[u8],
        unix_now: u64,
        now: Instant,
    ) -> Verification {
        let Some(header) = header else {
            return Verification::Invalid(WebhookRejection::MissingHeader);
        };
        let h = match SignatureHeader::parse(header) {
            Ok(h) => h,
            Err(e) => return Verification::Invalid(e),
        };
        if let Err(e) = check_time(h.timestamp, unix_now, self.window) {
            return Verification::Invalid(e);
        }
        let key = self.jwks.as_ref().and_then(|j| j.key(&h.kid)).copied();
        match key {
            Some(key) => match check_signature(&h, &key, body) {
                Ok(v) => Verification::Valid(v),
                Err(e) => Verification::Invalid(e),
            },
            None => {
                let interval = self.refetch_interval;
                self.asked
                    .retain(|_, at| now.saturating_duration_since(*at) < interval);
                let never_fetched = self.jwks.is_none() && self.fetch_pending_since.is_none();
                let may_ask =
                    !self.asked.contains_key(&h.kid) && self.asked.len() < self.max_tracked_kids;
                if may_ask {
                    self.asked.insert(h.kid.clone(), now);
                }
                if never_fetched || may_ask {
                    self.fetch_pending_since = Some(now);
                    Verification::FetchJwks
                } else {
                    Verification::Invalid(WebhookRejection::UnknownKid { kid: h.kid })
                }
            }
        }
    }
}

/// The body of a webhook request (7.1).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakeNotification {
    /// The subscription.
    pub subscription_id: String,
    /// The wake.
    pub wake_id: String,
    /// Its generation.
    pub generation: u64,
    /// The linked streams with cursors and tails.
    #[serde(default)]
    pub streams: Vec<PendingStream>,
    /// Where to call back ([`callback_request`](super::callback_request)).
    pub callback_url: String,
    /// The callback token (redacted in `Debug`).
    pub callback_token: String,
}

impl fmt::Debug for WakeNotification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WakeNotification")
            .field("subscription_id", &self.subscription_id)
            .field("wake_id", &self.wake_id)
            .field("generation", &self.generation)
            .field("streams", &self.streams)
            .field("callback_url", &self.callback_url)
            .field("callback_token", &"<redacted>")
            .finish()
    }
}

impl WakeNotification {
    /// Parses the body; call it after the signature verified.
    pub fn parse(body: &[u8]) -> Result<WakeNotification, WebhookRejection> {
        serde_json::from_slice(body).map_err(|e| WebhookRejection::BadBody(e.to_string()))
    }

    /// Parses the body and checks it is for `subscription_id` (12.10).
    pub fn parse_for(
        body: &[u8],
        subscription_id: &str,
    ) -> Result<WakeNotification, WebhookRejection> {
        let n = Self::parse(body)?;
        if n.subscription_id != subscription_id {
            return Err(WebhookRejection::WrongSubscription {
                got: n.subscription_id,
            });
        }
        Ok(n)
    }

    /// The acks that finish this wake at its snapshot: each pending stream at its tail.
    pub fn acks_to_tail(&self) -> Vec<super::types::Ack> {
        self.streams
            .iter()
            .filter(|s| s.has_pending || s.tail_offset != s.acked_offset)
            .filter(|s| !s.tail_offset.is_sentinel())
            .map(|s| super::types::Ack {
                stream: s.path.clone(),
                offset: s.tail_offset.clone(),
            })
            .collect()
    }
}

/// The response body that finishes a webhook synchronously: `{"done":true}` (7.1). The
/// server then acks the wake's tail offsets and releases the lease.
pub fn webhook_done_body() -> Bytes {
    Bytes::from_static(br#"{"done":true}"#)
}
