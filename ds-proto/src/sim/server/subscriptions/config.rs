//! The configuration of a subscription: parsing and normalizing a `PUT` body (PROTOCOL.md
//! 6.2) and validating webhook URLs against SSRF (6.2, 12.8).

use serde_json::{Map, Value};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Default lease, 30 s (6.2).
pub(super) const DEFAULT_LEASE_TTL_MS: u64 = 30_000;
/// Shortest lease, 1 s (6.2).
pub(super) const MIN_LEASE_TTL_MS: u64 = 1_000;
/// Longest lease, 10 minutes (6.2).
pub(super) const MAX_LEASE_TTL_MS: u64 = 600_000;

/// How wakes are delivered (6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Webhook,
    PullWake,
}

impl Kind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::PullWake => "pull-wake",
        }
    }
}

/// A normalized subscription configuration. Two `PUT`s re-confirm each other exactly when
/// their normalized configurations are equal (6.2 "MUST hash the normalized subscription
/// configuration and compare that hash"): this server keeps the normalized form itself and
/// compares it field by field, which is what comparing a collision-free hash of it means.
///
/// Normalization: paths lose leading and trailing `/`; `streams` is sorted and deduplicated;
/// `lease_ttl_ms` takes its default when absent; only the delivery field of the chosen type is
/// kept (`webhook.url` for webhooks, `wake_stream` for pull-wake: the example of 6.3 answers
/// `"wake_stream": null` for a webhook subscription whose `PUT` named one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SubConfig {
    pub kind: Kind,
    pub pattern: Option<String>,
    pub streams: Vec<String>,
    pub webhook_url: Option<String>,
    pub wake_stream: Option<String>,
    pub lease_ttl_ms: u64,
    pub description: Option<String>,
}

/// Strips leading and trailing `/` from a stream-root-relative path; `None` when nothing is
/// left or a segment is empty (`a//b`).
pub(super) fn normalize_path(path: &str) -> Option<String> {
    let p = path.trim_matches('/');
    if p.is_empty() || p.split('/').any(str::is_empty) {
        return None;
    }
    Some(p.to_owned())
}

/// Parses a `streams` array of stream-root-relative paths.
pub(super) fn parse_streams(value: &Value) -> Result<Vec<String>, String> {
    let Value::Array(items) = value else {
        return Err("streams must be an array of stream paths".to_owned());
    };
    items
        .iter()
        .map(|v| {
            v.as_str()
                .and_then(normalize_path)
                .ok_or_else(|| format!("streams: {v} is not a stream path"))
        })
        .collect()
}

fn optional_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("{key} must be a string, not {other}")),
    }
}

/// Why a create body was refused; both are 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ConfigError {
    /// `INVALID_REQUEST`: malformed or missing fields.
    Invalid(String),
    /// `WEBHOOK_URL_REJECTED`: the webhook URL failed the SSRF checks (6.2, 12.8); the code
    /// the reference server and the conformance suite use.
    UrlRejected(String),
}

impl From<String> for ConfigError {
    fn from(m: String) -> Self {
        ConfigError::Invalid(m)
    }
}

impl From<&str> for ConfigError {
    fn from(m: &str) -> Self {
        ConfigError::Invalid(m.to_owned())
    }
}

/// Parses and validates a create body (6.2).
pub(super) fn parse(body: &[u8]) -> Result<SubConfig, ConfigError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("the body must be a JSON object".into());
    };
    let kind = match obj.get("type").and_then(Value::as_str) {
        Some("webhook") => Kind::Webhook,
        Some("pull-wake") => Kind::PullWake,
        _ => return Err(r#"type must be "webhook" or "pull-wake""#.into()),
    };
    let pattern = match optional_str(&obj, "pattern")? {
        None => None,
        Some(p) => Some(normalize_path(p).ok_or("pattern is not a stream path pattern")?),
    };
    let mut streams = match obj.get("streams") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => parse_streams(v)?,
    };
    streams.sort();
    streams.dedup();
    if pattern.is_none() && streams.is_empty() {
        return Err("at least one of pattern or streams is required".into());
    }
    let lease_ttl_ms = match obj.get("lease_ttl_ms") {
        None | Some(Value::Null) => DEFAULT_LEASE_TTL_MS,
        Some(v) => v
            .as_u64()
            .filter(|ms| (MIN_LEASE_TTL_MS..=MAX_LEASE_TTL_MS).contains(ms))
            .ok_or_else(|| {
                format!(
                    "lease_ttl_ms must be an integer from {MIN_LEASE_TTL_MS} to {MAX_LEASE_TTL_MS}"
                )
            })?,
    };
    let description = optional_str(&obj, "description")?.map(str::to_owned);
    let (webhook_url, wake_stream) = match kind {
        Kind::Webhook => {
            let url = obj
                .get("webhook")
                .and_then(|w| w.get("url"))
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
                .ok_or("webhook subscriptions require webhook.url")?;
            validate_webhook_url(url).map_err(ConfigError::UrlRejected)?;
            (Some(url.to_owned()), None)
        }
        Kind::PullWake => {
            let wake = optional_str(&obj, "wake_stream")?
                .and_then(normalize_path)
                .ok_or("pull-wake subscriptions require wake_stream")?;
            (None, Some(wake))
        }
    };
    Ok(SubConfig {
        kind,
        pattern,
        streams,
        webhook_url,
        wake_stream,
        lease_ttl_ms,
        description,
    })
}

/// Validates a webhook URL (6.2, 12.8):
///
/// - `https://` to any host except local ones: `localhost` (and `*.localhost`), and IP
///   literals that are loopback, private (RFC 1918), link-local (which holds the cloud
///   metadata address 169.254.169.254), carrier-grade NAT, unspecified, broadcast or multicast;
///   for IPv6 also unique-local and link-local addresses, and IPv4-mapped forms of the above.
/// - `http://` only for the development exception of 6.2: `localhost` or `127.x.y.z` (the
///   reference server accepts all of 127/8, FIELD-NOTES; 6.2 writes `127.0.0.x`).
/// - No user information in the URL (credentials would leak into logs and requests).
/// - No numeric host that is not a dotted quad (`2130706433`, `0x7f.1`, `127.1`: resolvers
///   read them as IPv4 addresses); a trailing dot is ignored (`localhost.` is `localhost`).
///
/// Host names are not resolved: this server has no DNS, and a name that resolves to a private
/// address is beyond what it can see.
pub(super) fn validate_webhook_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("webhook.url {url:?} is not a valid URL"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| format!("webhook.url {url:?} has no host"))?;
    if authority.as_str().contains('@') {
        return Err("webhook.url must not carry credentials".to_owned());
    }
    // A trailing dot names the same host (`localhost.` is `localhost`).
    let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
    let localhost = host == "localhost" || host.ends_with(".localhost");
    // Numeric hosts that are not dotted quads (`2130706433`, `0x7f.1`, `127.1`) are IPv4
    // addresses to many resolvers: refused rather than guessed (no top-level domain is
    // numeric).
    let last_label = host.rsplit('.').next().unwrap_or("");
    let numeric = !last_label.is_empty()
        && (last_label.bytes().all(|b| b.is_ascii_digit()) || last_label.starts_with("0x"));
    if numeric && host.parse::<Ipv4Addr>().is_err() {
        return Err(format!("webhook.url host {host:?} is not a valid address"));
    }
    match uri.scheme_str() {
        Some("http") => {
            let loopback4 = host
                .parse::<Ipv4Addr>()
                .is_ok_and(|ip| ip.octets()[0] == 127);
            if host == "localhost" || loopback4 {
                Ok(())
            } else {
                Err("http webhook URLs are only allowed for localhost or 127.x.x.x".to_owned())
            }
        }
        Some("https") => {
            let local = localhost
                || host.parse::<Ipv4Addr>().is_ok_and(local_v4)
                || host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .and_then(|h| h.parse::<Ipv6Addr>().ok())
                    .is_some_and(local_v6);
            if local {
                Err("webhook.url must not target a local, private or link-local host".to_owned())
            } else {
                Ok(())
            }
        }
        _ => Err("webhook.url must use https".to_owned()),
    }
}

fn local_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
}

fn local_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    if let Some(v4) = ip.to_ipv4_mapped() {
        return local_v4(v4);
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls() {
        for ok in [
            "https://worker.example/hooks",
            "https://93.184.216.34/x",
            "https://[2606:4700::1111]/x",
            "http://localhost:8080/hook",
            "http://localhost/hook",
            "http://127.0.0.1:9/x",
            "http://127.0.0.7/x",
            // Public addresses next to the shared range 100.64.0.0/10.
            "https://8.100.0.1/x",
            "https://100.128.0.1/x",
            "https://100.63.0.1/x",
        ] {
            assert_eq!(validate_webhook_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://worker.example/hooks",
            "ftp://worker.example/",
            "https://localhost/x",
            "https://api.localhost/x",
            "https://10.1.2.3/x",
            "https://172.16.0.1/x",
            "https://192.168.1.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://127.0.0.1/x",
            "https://0.0.0.0/x",
            "https://100.64.0.1/x",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[fe80::1]/x",
            "https://[::ffff:10.0.0.1]/x",
            // Broadcast, multicast, "this network" (0.0.0.0/8), IPv6 multicast and
            // unspecified.
            "https://255.255.255.255/x",
            "https://224.0.0.1/x",
            "https://239.1.2.3/x",
            "https://0.1.2.3/x",
            "https://100.127.255.254/x",
            "https://[ff02::1]/x",
            "https://[::]/x",
            "http://10.0.0.1/x",
            "http://192.168.0.10/x",
            "https://user:pw@worker.example/x",
            "https://localhost./x",
            "https://2130706433/x",
            "https://0x7f.1/x",
            "https://127.1/x",
            "http://127.1/x",
            "https://10.0.0.1./x",
            "not a url",
            "/relative",
        ] {
            assert!(validate_webhook_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn configs_normalize() {
        let c = parse(
            br#"{"type":"pull-wake","pattern":"/events/*/","streams":["b","/a","b"],
                 "wake_stream":"wake/pool/","webhook":{"url":"https://x.example"}}"#,
        )
        .unwrap();
        assert_eq!(c.pattern.as_deref(), Some("events/*"));
        assert_eq!(c.streams, vec!["a", "b"]);
        assert_eq!(c.wake_stream.as_deref(), Some("wake/pool"));
        assert_eq!(c.webhook_url, None);
        assert_eq!(c.lease_ttl_ms, DEFAULT_LEASE_TTL_MS);
    }

    #[test]
    fn invalid_configs_are_refused() {
        for bad in [
            &b"not json"[..],
            br#"[]"#,
            br#"{"type":"poll","pattern":"a"}"#,
            br#"{"type":"pull-wake","wake_stream":"w"}"#,
            br#"{"type":"pull-wake","pattern":"a"}"#,
            br#"{"type":"webhook","pattern":"a"}"#,
            br#"{"type":"webhook","pattern":"a","webhook":{"url":"http://example.com"}}"#,
            br#"{"type":"pull-wake","pattern":"a","wake_stream":"w","lease_ttl_ms":999}"#,
            br#"{"type":"pull-wake","pattern":"a","wake_stream":"w","lease_ttl_ms":600001}"#,
            br#"{"type":"pull-wake","pattern":"a","wake_stream":"w","lease_ttl_ms":1.5}"#,
            br#"{"type":"pull-wake","streams":[1],"wake_stream":"w"}"#,
            br#"{"type":"pull-wake","streams":["a//b"],"wake_stream":"w"}"#,
            br#"{"type":"pull-wake","pattern":5,"wake_stream":"w"}"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        for ok in [1_000u64, 600_000] {
            let body = format!(
                r#"{{"type":"pull-wake","pattern":"a","wake_stream":"w","lease_ttl_ms":{ok}}}"#
            );
            assert_eq!(parse(body.as_bytes()).unwrap().lease_ttl_ms, ok);
        }
    }
}
