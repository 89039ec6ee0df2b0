//! Subscription values with the JSON field names of PROTOCOL.md 6 and 7: the configuration
//! sent ([`SubscriptionConfig`], checked by [`SubscriptionConfig::validate`]), the
//! subscription read back ([`Subscription`]), and the wake-time values shared by webhook and
//! pull-wake delivery ([`PendingStream`], [`Claim`], [`Ack`], [`AckOutcome`],
//! [`WakeEvent`]). Unknown JSON fields are ignored everywhere.

use crate::offset::Offset;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The shortest lease a configuration may ask for: 1 second (6.2).
pub const MIN_LEASE_TTL_MS: u64 = 1_000;
/// The longest lease a configuration may ask for: 10 minutes (6.2).
pub const MAX_LEASE_TTL_MS: u64 = 600_000;
/// The lease the server applies when the configuration names none: 30 seconds (6.2).
pub const DEFAULT_LEASE_TTL_MS: u64 = 30_000;

/// How a subscription delivers wakes (6.2, 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubscriptionType {
    /// `webhook`: the server POSTs each wake to a URL (7.1).
    Webhook,
    /// `pull-wake`: the server appends wake events to a stream; workers claim (7.2).
    PullWake,
}

/// `webhook` in a configuration: where wakes are POSTed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookConfig {
    /// The URL receiving wake notifications (`https://`, or `http://localhost` /
    /// `http://127.x.x.x` for development; see [`check_webhook_url`]).
    pub url: String,
}

/// The body of `PUT .../__ds/subscriptions/:id` (6.2). Build it with
/// [`SubscriptionConfig::webhook`] or [`SubscriptionConfig::pull_wake`] and the chained
/// setters; [`SubscriptionConfig::validate`] runs before the request is built.
///
/// ```
/// use ds_proto::subscription::SubscriptionConfig;
/// let config = SubscriptionConfig::pull_wake("wake/pool")
///     .pattern("events/*")
///     .lease_ttl_ms(60_000);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionConfig {
    /// `type`: webhook or pull-wake.
    #[serde(rename = "type")]
    pub kind: SubscriptionType,
    /// `pattern`: a glob over stream-root-relative paths (`*` one segment, `**` any number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// `streams`: explicit stream-root-relative paths, additive to the pattern.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<String>,
    /// `webhook`: required for webhook subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
    /// `wake_stream`: the wake channel of a pull-wake subscription (a stream-root-relative
    /// path of a stream the application created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_stream: Option<String>,
    /// `lease_ttl_ms`: 1 000 to 600 000; `None`: the server's default (30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ttl_ms: Option<u64>,
    /// `description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Why a [`SubscriptionConfig`] (or a path or webhook URL) is refused before sending.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Neither `pattern` nor `streams` is given (6.2).
    #[error("at least one of pattern or streams is required")]
    NoStreams,
    /// A webhook subscription without `webhook.url`.
    #[error("a webhook subscription needs webhook.url")]
    MissingWebhook,
    /// A pull-wake subscription without `wake_stream`.
    #[error("a pull-wake subscription needs wake_stream")]
    MissingWakeStream,
    /// A delivery field of the other type is set (`webhook` on pull-wake or `wake_stream` on
    /// webhook): the server would hash it into the configuration.
    #[error("{0} does not belong to this subscription type")]
    WrongDelivery(&'static str),
    /// `lease_ttl_ms` outside 1 s ..= 10 min.
    #[error("lease_ttl_ms {0} is outside 1000..=600000")]
    LeaseOutOfRange(u64),
    /// The pattern is empty or malformed.
    #[error("invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: &'static str,
    },
    /// A stream path is empty or malformed.
    #[error("invalid stream path {path:?}: {reason}")]
    InvalidStreamPath {
        /// The path.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// The webhook URL is not acceptable (12.8).
    #[error("invalid webhook URL {url:?}: {reason}")]
    InvalidWebhookUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: &'static str,
    },
}

impl SubscriptionConfig {
    /// A webhook subscription delivering to `url`; add a pattern or streams.
    pub fn webhook(url: impl Into<String>) -> Self {
        SubscriptionConfig {
            kind: SubscriptionType::Webhook,
            pattern: None,
            streams: Vec::new(),
            webhook: Some(WebhookConfig { url: url.into() }),
            wake_stream: None,
            lease_ttl_ms: None,
            description: None,
        }
    }

    /// A pull-wake subscription writing wakes to `wake_stream`; add a pattern or streams.
    pub fn pull_wake(wake_stream: impl Into<String>) -> Self {
        SubscriptionConfig {
            kind: SubscriptionType::PullWake,
            pattern: None,
            streams: Vec::new(),
            webhook: None,
            wake_stream: Some(wake_stream.into()),
            lease_ttl_ms: None,
            description: None,
        }
    }

    /// Sets the glob pattern.
    pub fn pattern(mut self, pattern: impl Into<String>) -> Self {
        self.pattern = Some(pattern.into());
        self
    }

    /// Adds an explicit stream.
    pub fn stream(mut self, path: impl Into<String>) -> Self {
        self.streams.push(path.into());
        self
    }

    /// Sets the lease duration in milliseconds.
    pub fn lease_ttl_ms(mut self, ms: u64) -> Self {
        self.lease_ttl_ms = Some(ms);
        self
    }

    /// Sets the description.
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = Some(d.into());
        self
    }

    /// Checks the configuration the way PROTOCOL.md 6.2 and 12.8 ask: the delivery field of
    /// the type is present (and the other absent), at least one of `pattern` / `streams`,
    /// paths and pattern well-formed, `lease_ttl_ms` within 1 s ..= 10 min, and the webhook
    /// URL acceptable ([`check_webhook_url`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.kind {
            SubscriptionType::Webhook => {
                let hook = self.webhook.as_ref().ok_or(ConfigError::MissingWebhook)?;
                check_webhook_url(&hook.url)?;
                if self.wake_stream.is_some() {
                    return Err(ConfigError::WrongDelivery("wake_stream"));
                }
            }
            SubscriptionType::PullWake => {
                let wake = self
                    .wake_stream
                    .as_ref()
                    .ok_or(ConfigError::MissingWakeStream)?;
                check_stream_path(wake)?;
                if self.webhook.is_some() {
                    return Err(ConfigError::WrongDelivery("webhook"));
                }
            }
        }
        if self.pattern.is_none() && self.streams.is_empty() {
            return Err(ConfigError::NoStreams);
        }
        if let Some(p) = &self.pattern {
            check_pattern(p)?;
        }
        for s in &self.streams {
            check_stream_path(s)?;
        }
        if let Some(ms) = self.lease_ttl_ms {
            if !(MIN_LEASE_TTL_MS..=MAX_LEASE_TTL_MS).contains(&ms) {
                return Err(ConfigError::LeaseOutOfRange(ms));
            }
        }
        Ok(())
    }
}

/// Checks a stream-root-relative path: not empty, no leading or trailing `/`, no empty, `.`
/// or `..` segment, no control characters, and not under the reserved `__ds` prefix (6).
pub fn check_stream_path(path: &str) -> Result<(), ConfigError> {
    let bad = |reason| {
        Err(ConfigError::InvalidStreamPath {
            path: path.to_owned(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("empty");
    }
    if path.chars().any(char::is_control) {
        return bad("control character");
    }
    if path.starts_with('/') || path.ends_with('/') {
        return bad("leading or trailing slash (paths are relative to the stream root)");
    }
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return bad("empty, `.` or `..` segment");
    }
    if path.split('/').next() == Some("__ds") {
        return bad("the __ds prefix is reserved");
    }
    Ok(())
}

fn check_pattern(pattern: &str) -> Result<(), ConfigError> {
    let bad = |reason| {
        Err(ConfigError::InvalidPattern {
            pattern: pattern.to_owned(),
            reason,
        })
    };
    if pattern.is_empty() {
        return bad("empty");
    }
    if pattern.chars().any(char::is_control) {
        return bad("control character");
    }
    if pattern.starts_with('/') || pattern.split('/').any(str::is_empty) {
        return bad("empty segment or leading slash");
    }
    Ok(())
}

/// Checks a webhook URL (PROTOCOL.md 6.2, 12.8): `https://` with a host that is not a literal
/// private, link-local, loopback or unspecified address; or, for local development,
/// `http://localhost` or `http://127.x.x.x` (any port). No credentials in the URL.
///
/// Only literal addresses can be checked here (sans IO, nothing is resolved): the server
/// checks what a name resolves to.
pub fn check_webhook_url(url: &str) -> Result<(), ConfigError> {
    let bad = |reason| {
        Err(ConfigError::InvalidWebhookUrl {
            url: url.to_owned(),
            reason,
        })
    };
    let uri: http::Uri = match url.parse() {
        Ok(u) => u,
        Err(_) => return bad("not a URL"),
    };
    let Some(authority) = uri.authority() else {
        return bad("not absolute");
    };
    if authority.as_str().contains('@') {
        return bad("credentials in the URL");
    }
    let host = authority.host();
    let dev = is_dev_host(host);
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if dev => return Ok(()),
        Some("http") => return bad("http is allowed only for localhost and 127.x.x.x"),
        _ => return bad("scheme must be https"),
    }
    if dev {
        return Ok(());
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        if ip.is_private()
            || ip.is_loopback()
            || ip.is_link_local()
            || ip.is_unspecified()
            || ip.is_broadcast()
            || ip.octets()[0] == 0
            || (ip.octets()[0] == 100 && (ip.octets()[1] & 0xC0) == 64)
        {
            return bad("private, loopback or link-local address");
        }
    }
    let inner = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = inner.parse::<Ipv6Addr>() {
        let first = ip.segments()[0];
        let mapped_v4 = ip.to_ipv4_mapped().is_some();
        if ip.is_loopback()
            || ip.is_unspecified()
            || mapped_v4
            || (first & 0xFE00) == 0xFC00
            || (first & 0xFFC0) == 0xFE80
        {
            return bad("private, loopback or link-local address");
        }
    }
    Ok(())
}

fn is_dev_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<Ipv4Addr>()
        .is_ok_and(|ip| ip.octets()[0] == 127)
}

/// How a stream is linked to a subscription (6.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkType {
    /// Matched by the pattern.
    Glob,
    /// Added through `streams`.
    Explicit,
    /// A value this crate does not know.
    #[serde(other)]
    Other,
}

/// A linked stream and its cursor, as in a [`Subscription`] (6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamLink {
    /// The stream-root-relative path.
    pub path: String,
    /// Glob or explicit.
    pub link_type: LinkType,
    /// The cursor: everything up to this offset is processed, and a read from it continues
    /// after it (`-1` for a stream first seen through an append).
    pub acked_offset: Offset,
}

/// Subscription status (6.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionStatus {
    /// Delivery operates normally.
    Active,
    /// A webhook retry is scheduled after a failed attempt.
    Failed,
    /// A value this crate does not know.
    #[serde(other)]
    Other,
}

/// The signing metadata of a webhook subscription (6.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSigning {
    /// `alg` (`ed25519`).
    #[serde(default)]
    pub alg: Option<String>,
    /// The server's active key id when the subscription was serialized; verify with the
    /// `kid` of each signature header, not this one.
    #[serde(default)]
    pub kid: Option<String>,
    /// The authoritative JWKS URL.
    #[serde(default)]
    pub jwks_url: Option<String>,
}

/// `webhook` as read back (6.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookInfo {
    /// The webhook URL.
    pub url: String,
    /// Signing metadata, when the server sends it.
    #[serde(default)]
    pub signing: Option<WebhookSigning>,
}

/// A subscription as `GET .../__ds/subscriptions/:id` returns it (6.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// `id`.
    #[serde(default)]
    pub id: Option<String>,
    /// `subscription_id` (the same value as `id`).
    #[serde(default)]
    pub subscription_id: Option<String>,
    /// `type`.
    #[serde(rename = "type")]
    pub kind: SubscriptionType,
    /// `pattern`.
    #[serde(default)]
    pub pattern: Option<String>,
    /// `streams`: every linked stream with its cursor.
    #[serde(default)]
    pub streams: Vec<StreamLink>,
    /// `webhook`, for webhook subscriptions.
    #[serde(default)]
    pub webhook: Option<WebhookInfo>,
    /// `wake_stream`, for pull-wake subscriptions.
    #[serde(default)]
    pub wake_stream: Option<String>,
    /// `lease_ttl_ms`.
    #[serde(default)]
    pub lease_ttl_ms: Option<u64>,
    /// `created_at` (RFC 3339, as sent).
    #[serde(default)]
    pub created_at: Option<String>,
    /// `status`.
    #[serde(default)]
    pub status: Option<SubscriptionStatus>,
    /// `description`.
    #[serde(default)]
    pub description: Option<String>,
}

impl Subscription {
    /// The subscription id (`id`, or `subscription_id` when `id` is absent).
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref().or(self.subscription_id.as_deref())
    }

    /// The link of `path`, if linked.
    pub fn link(&self, path: &str) -> Option<&StreamLink> {
        self.streams.iter().find(|l| l.path == path)
    }
}

/// A linked stream in a wake snapshot: a webhook notification (7.1) or a claim (7.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingStream {
    /// The stream-root-relative path.
    pub path: String,
    /// Glob or explicit.
    #[serde(default = "other_link")]
    pub link_type: LinkType,
    /// The cursor: read from here.
    pub acked_offset: Offset,
    /// The stream's tail when the wake was taken: read up to here.
    pub tail_offset: Offset,
    /// Whether `tail_offset` is past `acked_offset`.
    #[serde(default)]
    pub has_pending: bool,
}

fn other_link() -> LinkType {
    LinkType::Other
}

/// A successful claim (7.2): the wake this worker now holds the lease of.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The wake.
    pub wake_id: String,
    /// Its generation (the fencing counter).
    pub generation: u64,
    /// The claim token, sent as `Authorization: Bearer` on acks and releases (redacted in
    /// `Debug`).
    pub token: String,
    /// The linked streams with their cursors and tails.
    #[serde(default)]
    pub streams: Vec<PendingStream>,
    /// The lease duration; renew (heartbeat) before it runs out.
    #[serde(default)]
    pub lease_ttl_ms: Option<u64>,
}

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claim")
            .field("wake_id", &self.wake_id)
            .field("generation", &self.generation)
            .field("token", &"<redacted>")
            .field("streams", &self.streams)
            .field("lease_ttl_ms", &self.lease_ttl_ms)
            .finish()
    }
}

/// One stream's progress in an ack or callback: everything up to `offset` (inclusive, as a
/// read's next offset) is processed (7).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ack {
    /// The stream-root-relative path.
    pub stream: String,
    /// The new cursor.
    pub offset: Offset,
}

/// The body of an ack (7.2) or callback (7.1): `acks: []` without `done` is a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckBody {
    /// The wake.
    pub wake_id: String,
    /// Its generation.
    pub generation: u64,
    /// Progress per stream.
    pub acks: Vec<Ack>,
    /// `true`: the wake is finished; the lease is released.
    pub done: bool,
}

/// What a successful ack or callback returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AckOutcome {
    /// `next_wake`: after `done`, pending work remains and a new wake was started.
    #[serde(default)]
    pub next_wake: bool,
}

/// An event of a pull-wake subscription's wake stream (7.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakeEvent {
    /// The subscription.
    pub subscription_id: String,
    /// The stream whose append caused the wake, when the server says.
    #[serde(default)]
    pub stream: Option<String>,
    /// The wake's generation.
    #[serde(default)]
    pub generation: Option<u64>,
    /// The server's timestamp (Unix milliseconds).
    #[serde(default)]
    pub ts: Option<u64>,
}

impl WakeEvent {
    /// Parses one message of the wake stream. `Ok(None)` for a well-formed message that is
    /// not a wake (another `type`): the wake stream is an ordinary stream and may carry
    /// other messages.
    pub fn parse(message: &[u8]) -> Result<Option<WakeEvent>, String> {
        #[derive(Deserialize)]
        struct Typed {
            #[serde(rename = "type")]
            kind: Option<String>,
        }
        let typed: Typed =
            serde_json::from_slice(message).map_err(|e| format!("wake event: {e}"))?;
        if typed.kind.as_deref() != Some("wake") {
            return Ok(None);
        }
        serde_json::from_slice(message)
            .map(Some)
            .map_err(|e| format!("wake event: {e}"))
    }
}
