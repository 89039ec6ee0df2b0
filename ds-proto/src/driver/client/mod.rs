//! What a driver's client shares with every other driver's: the settings a `ClientBuilder`
//! collects ([`ClientSettings`]) and their validation, the layering of per-request headers and
//! parameters, and the small rules of one-shot operations ([`check_call_options`],
//! [`transport_error`]). No sockets, no runtime: `ds-tokio` and `ds-blocking` each keep only
//! what is really theirs (the transport, the TLS configuration of their HTTP stack, waiting).
//!
//! The drivers' `ClientBuilder` and the synchronous part of their `StreamHandle` (fields,
//! accessors, `Debug`) are written once too, as hidden macros each driver expands in its own
//! crate, so that each keeps a plain struct whose documentation links to its own types.

mod macros;

use crate::error::{Error, ErrorKind, Operation};
use crate::error::{InputReason, Limit};
use crate::io::{TransportError, TransportErrorKind};
use crate::ops::{CallOptions, RequestExtras};
use crate::reader::ReaderConfig;
use crate::retry::RetryPolicy;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Produces headers and query parameters for each request (e.g. a fresh auth token). Called
/// once per attempt, so a rotated token is picked up by the next retry.
pub type ExtrasProvider = Arc<dyn Fn() -> RequestExtras + Send + Sync>;

/// The settings of a client, as a driver's `ClientBuilder` collects them: base URL, default
/// headers and parameters, the per-request provider, retry policy, timeouts, limits, credential
/// header names, reader defaults and trusted root certificates (kept as the bytes given, DER or
/// PEM; each driver builds its own TLS configuration from them).
///
/// Drivers start from [`ClientSettings::default`], set what the application chose, call
/// [`validate`](ClientSettings::validate) when building, and use the helpers
/// ([`extras`](ClientSettings::extras), [`resolve`](ClientSettings::resolve), ...) on every
/// request. `Debug` never shows a credential header value or a query parameter value.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientSettings {
    /// The base URL stream paths are resolved against (`http://host:port`). `None`: every
    /// stream is named by an absolute URL.
    pub base_url: Option<String>,
    /// Headers sent with every request. Add them with [`ClientSettings::add_header`], which
    /// marks credential values sensitive.
    pub headers: HeaderMap,
    /// Query parameters sent with every request.
    pub params: Vec<(String, String)>,
    /// A provider of per-request headers and parameters, called for every attempt.
    pub provider: Option<ExtrasProvider>,
    /// The retry policy of one-shot operations. Default: [`RetryPolicy::default`].
    pub retry: RetryPolicy,
    /// How long connecting may take. Default: 10 s; `None`: no limit.
    pub connect_timeout: Option<Duration>,
    /// How long one attempt of a one-shot operation may take, body included. Default: 60 s.
    pub request_timeout: Option<Duration>,
    /// The largest response body a one-shot operation buffers. Default: 256 MiB.
    pub max_response_bytes: usize,
    /// Header names whose values are credentials, besides `Authorization`, `Cookie` and
    /// `Proxy-Authorization`. Add them with [`ClientSettings::add_sensitive_header`].
    pub sensitive_headers: Vec<HeaderName>,
    /// The deadline of a reader's long-poll request
    /// ([`ReaderConfig::long_poll_deadline`]); see [`ClientSettings::set_long_poll_wait`].
    /// Default: [`ReaderConfig::DEFAULT_LONG_POLL_DEADLINE`].
    pub long_poll_deadline: Option<Duration>,
    /// How long a reader's SSE response may stay silent ([`ReaderConfig::sse_idle_timeout`]).
    /// Default: [`ReaderConfig::DEFAULT_SSE_IDLE_TIMEOUT`].
    pub sse_idle_timeout: Option<Duration>,
    /// Root certificates trusted for https besides the built-in ones, each DER or PEM, as
    /// given (see `parse_root_certificates`, feature `pem`).
    pub root_certificates: Vec<Vec<u8>>,
    /// Whether the bundled (webpki, Mozilla) roots are trusted. Default: `true`.
    pub tls_built_in_roots: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            base_url: None,
            headers: HeaderMap::new(),
            params: Vec::new(),
            provider: None,
            retry: RetryPolicy::default(),
            connect_timeout: Some(Duration::from_secs(10)),
            request_timeout: Some(Duration::from_secs(60)),
            max_response_bytes: 256 * 1024 * 1024,
            sensitive_headers: Vec::new(),
            long_poll_deadline: Some(ReaderConfig::DEFAULT_LONG_POLL_DEADLINE),
            sse_idle_timeout: Some(ReaderConfig::DEFAULT_SSE_IDLE_TIMEOUT),
            root_certificates: Vec::new(),
            tls_built_in_roots: true,
        }
    }
}

impl fmt::Debug for ClientSettings {
    /// The base URL without its query; headers with credential values redacted, parameters
    /// with their values redacted; the provider and certificates only counted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut extras = RequestExtras {
            headers: self.headers.clone(),
            params: self.params.clone(),
        };
        extras.mark_sensitive(&self.sensitive_headers);
        f.debug_struct("ClientSettings")
            .field(
                "base_url",
                &self.base_url.as_deref().map(crate::url::strip_query),
            )
            .field("extras", &extras)
            .field("provider", &self.provider.is_some())
            .field("retry", &self.retry)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("sensitive_headers", &self.sensitive_headers)
            .field("long_poll_deadline", &self.long_poll_deadline)
            .field("sse_idle_timeout", &self.sse_idle_timeout)
            .field("root_certificates", &self.root_certificates.len())
            .field("tls_built_in_roots", &self.tls_built_in_roots)
            .finish_non_exhaustive()
    }
}

impl ClientSettings {
    /// Sets a header sent with every request (replacing that name's earlier values) and marks
    /// it sensitive if it is a credential: `Authorization`, `Cookie`, `Proxy-Authorization`, or
    /// a name in [`sensitive_headers`](ClientSettings::sensitive_headers).
    pub fn add_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.insert(name, value);
        crate::ops::mark_sensitive(&mut self.headers, &self.sensitive_headers);
    }

    /// Marks header `name` as carrying a credential, here and in every request's headers
    /// ([`ClientSettings::extras`], [`ClientSettings::mark_sensitive`]).
    pub fn add_sensitive_header(&mut self, name: HeaderName) {
        if !self.sensitive_headers.contains(&name) {
            self.sensitive_headers.push(name);
        }
        crate::ops::mark_sensitive(&mut self.headers, &self.sensitive_headers);
    }

    /// Sets the long-poll deadline from how long the server holds a long-poll open
    /// (`server_wait`): twice that, at least `server_wait` plus one second. Zero gives a zero
    /// deadline, which [`validate`](ClientSettings::validate) refuses.
    pub fn set_long_poll_wait(&mut self, server_wait: Duration) {
        self.long_poll_deadline = if server_wait.is_zero() {
            Some(Duration::ZERO)
        } else {
            let margin = server_wait.max(Duration::from_secs(1));
            Some(server_wait.saturating_add(margin))
        };
    }

    /// An [`ErrorKind::InvalidInput`] error about these settings (operation `Create`, the base
    /// URL without its query), for a driver's own checks (its TLS configuration).
    pub fn invalid(&self, message: impl Into<String>) -> Error {
        Error::new(
            Operation::Create,
            self.base_url.clone().unwrap_or_default(),
            ErrorKind::invalid_input(InputReason::Config, message),
        )
    }

    /// Checks the settings: a valid retry policy, no zero timeout or limit, a base URL (if
    /// any) that starts with `http://` or `https://`. Root certificates are the driver's to
    /// check, when it builds its TLS configuration.
    pub fn validate(&self) -> Result<(), Error> {
        self.retry
            .validate()
            .map_err(|e| self.invalid(e.to_string()))?;
        if self.connect_timeout.is_some_and(|t| t.is_zero())
            || self.request_timeout.is_some_and(|t| t.is_zero())
            || self.long_poll_deadline.is_some_and(|t| t.is_zero())
            || self.sse_idle_timeout.is_some_and(|t| t.is_zero())
        {
            return Err(self.invalid("timeouts must be greater than zero"));
        }
        if self.max_response_bytes == 0 {
            return Err(self.invalid("max_response_bytes must be at least 1"));
        }
        if let Some(base) = self.base_url.as_deref().filter(|b| !b.is_empty()) {
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                return Err(self.invalid(format!(
                    "the base URL {:?} must start with http:// or https://",
                    crate::url::strip_query(base)
                )));
            }
        }
        Ok(())
    }

    /// The URL of the stream at `path_or_url`: resolved against the base URL, or kept when
    /// absolute (see [`url::resolve`](crate::url::resolve)).
    pub fn resolve(&self, path_or_url: &str) -> String {
        crate::url::resolve(self.base_url.as_deref().unwrap_or(""), path_or_url)
    }

    /// The headers and parameters for one attempt: the defaults, then the provider's, then the
    /// call's (later layers win, header by header), with every credential marked sensitive.
    pub fn extras(&self, call: &CallOptions) -> RequestExtras {
        let mut extras = RequestExtras {
            headers: self.headers.clone(),
            params: self.params.clone(),
        };
        if let Some(p) = &self.provider {
            extras.merge(p());
        }
        extras.merge(call.extras.clone());
        extras.mark_sensitive(&self.sensitive_headers);
        extras
    }

    /// The headers and parameters of one exchange of a machine: [`extras`](Self::extras),
    /// without the client's `Authorization` when `machine_authorizes` (the machine sets it
    /// itself: a subscription worker's acks carry the claim token, its claims and reads the
    /// credential it was configured with).
    pub fn exchange_extras(&self, call: &CallOptions, machine_authorizes: bool) -> RequestExtras {
        let mut extras = self.extras(call);
        if machine_authorizes {
            extras.headers.remove(http::header::AUTHORIZATION);
        }
        extras
    }

    /// Marks the values of every credential header in `headers` as sensitive.
    pub fn mark_sensitive(&self, headers: &mut HeaderMap) {
        crate::ops::mark_sensitive(headers, &self.sensitive_headers);
    }

    /// Sets the client's reader defaults in `config`: the long-poll deadline and the SSE idle
    /// timeout.
    pub fn apply_reader_defaults(&self, config: &mut ReaderConfig) {
        config.long_poll_deadline = self.long_poll_deadline;
        config.sse_idle_timeout = self.sse_idle_timeout;
    }
}

/// Refuses per-call options that make no sense: a zero timeout, an invalid retry policy.
pub fn check_call_options(call: &CallOptions, op: Operation, url: &str) -> Result<(), Error> {
    if call.timeout.is_some_and(|t| t.is_zero()) {
        return Err(Error::invalid_input(
            op,
            url,
            InputReason::Config,
            "the call timeout must be greater than zero",
        ));
    }
    if let Some(retry) = &call.retry {
        retry.validate().map_err(|e| {
            Error::invalid_input(op, url, InputReason::Config, format!("retry policy: {e}"))
        })?;
    }
    Ok(())
}

/// A failed exchange of a one-shot operation as the operation's error: a body over the
/// client's `max_response_bytes` ([`TransportErrorKind::TooLarge`]) is
/// [`ErrorKind::LimitExceeded`] (not retried: another attempt would fetch it again), anything
/// else a transport error. The URL loses its query.
pub fn transport_error(op: Operation, url: &str, e: TransportError) -> Error {
    let url = crate::url::strip_query(url);
    if e.kind == TransportErrorKind::TooLarge {
        Error::new(
            op,
            url,
            ErrorKind::limit_exceeded(Limit::ResponseBody, e.message),
        )
    } else {
        Error::transport(op, url, e)
    }
}

/// Whether `e`, or anything in its source chain, is an `E`, looking inside I/O errors too
/// (`io::Error::source` skips the error it wraps, so each one is opened with `get_ref`).
/// Drivers use it to tell a TLS failure (`rustls::Error`, wrapped by their HTTP stack) from
/// other transport failures.
pub fn error_chain_has<E: std::error::Error + 'static>(
    e: &(dyn std::error::Error + 'static),
) -> bool {
    if e.downcast_ref::<E>().is_some() {
        return true;
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
    {
        if error_chain_has::<E>(inner) {
            return true;
        }
    }
    e.source().is_some_and(error_chain_has::<E>)
}

/// The message of `e` followed by those of its sources, joined by `: `: HTTP stacks often say
/// what went wrong only in a source ("client error (Connect)": "tcp connect error": ...).
pub fn error_chain_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cur = inner.source();
    }
    text
}

/// The first `E` among the sources of `e` (not `e` itself): for instance the I/O error below
/// an HTTP stack's error.
pub fn find_source<'a, E: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut cur = e.source();
    while let Some(err) = cur {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        cur = err.source();
    }
    None
}

/// Parses one root certificate argument (feature `pem`): PEM when it starts like PEM (every
/// `CERTIFICATE` block is taken, other blocks are ignored), DER otherwise. The error says what
/// is wrong; drivers turn it into [`ErrorKind::InvalidInput`] with [`ClientSettings::invalid`].
#[cfg(feature = "pem")]
pub fn parse_root_certificates(
    der_or_pem: &[u8],
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
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

#[cfg(test)]
mod tests;
