//! The client: base URL, default headers, per-request providers, retry policy, timeouts, TLS
//! and the connection pool, shared by every stream handle, reader and writer made from it.

use crate::handle::StreamHandle;
use crate::transport::Transport;
use ds_proto::ops::{CallOptions, RequestExtras};
use ds_proto::reader::ReaderConfig;
use ds_proto::{Error, ErrorKind, Operation, RetryPolicy, Rng};
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Produces headers and query parameters for each request (e.g. a fresh auth token). Called
/// once per attempt, so a rotated token is picked up by the next retry.
pub type ExtrasProvider = Arc<dyn Fn() -> RequestExtras + Send + Sync>;

/// Builds a [`Client`].
#[derive(Clone)]
pub struct ClientBuilder {
    base_url: Option<String>,
    headers: HeaderMap,
    params: Vec<(String, String)>,
    provider: Option<ExtrasProvider>,
    retry: RetryPolicy,
    connect_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    max_response_bytes: usize,
    sensitive: Vec<HeaderName>,
    long_poll_deadline: Option<Duration>,
    sse_idle_timeout: Option<Duration>,
    root_certificates: Vec<Vec<u8>>,
    built_in_roots: bool,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field(
                "base_url",
                &self.base_url.as_deref().map(ds_proto::url::strip_query),
            )
            .field(
                "extras",
                &RequestExtras {
                    headers: self.headers.clone(),
                    params: self.params.clone(),
                },
            )
            .field("provider", &self.provider.is_some())
            .field("retry", &self.retry)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("sensitive_headers", &self.sensitive)
            .field("long_poll_deadline", &self.long_poll_deadline)
            .field("sse_idle_timeout", &self.sse_idle_timeout)
            .field("root_certificates", &self.root_certificates.len())
            .field("built_in_roots", &self.built_in_roots)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            base_url: None,
            headers: HeaderMap::new(),
            params: Vec::new(),
            provider: None,
            retry: RetryPolicy::default(),
            connect_timeout: Some(Duration::from_secs(10)),
            request_timeout: Some(Duration::from_secs(60)),
            max_response_bytes: 256 * 1024 * 1024,
            sensitive: Vec::new(),
            long_poll_deadline: Some(ReaderConfig::DEFAULT_LONG_POLL_DEADLINE),
            sse_idle_timeout: Some(ReaderConfig::DEFAULT_SSE_IDLE_TIMEOUT),
            root_certificates: Vec::new(),
            built_in_roots: true,
        }
    }
}

impl ClientBuilder {
    /// The base URL stream paths are resolved against (`http://host:port`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// A header sent with every request. `Authorization`, `Cookie` and
    /// `Proxy-Authorization`, and the names given to [`ClientBuilder::sensitive_header`], are
    /// marked sensitive.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        ds_proto::ops::mark_sensitive(&mut self.headers, &self.sensitive);
        self
    }

    /// Marks header `name` as carrying a credential (an API key header, say): its values, from
    /// the builder, a provider or per-call options, are marked sensitive and shown as
    /// `<redacted>` by every `Debug` output. `Authorization`, `Cookie` and
    /// `Proxy-Authorization` always are.
    pub fn sensitive_header(mut self, name: HeaderName) -> Self {
        if !self.sensitive.contains(&name) {
            self.sensitive.push(name);
        }
        ds_proto::ops::mark_sensitive(&mut self.headers, &self.sensitive);
        self
    }

    /// A query parameter sent with every request.
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((key.into(), value.into()));
        self
    }

    /// A provider of per-request headers and parameters, called for every attempt.
    pub fn extras_provider(
        mut self,
        f: impl Fn() -> RequestExtras + Send + Sync + 'static,
    ) -> Self {
        self.provider = Some(Arc::new(f));
        self
    }

    /// The retry policy of one-shot operations (validated by [`ClientBuilder::build`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How long connecting may take (10 s by default; `None`: no limit).
    pub fn connect_timeout(mut self, t: Option<Duration>) -> Self {
        self.connect_timeout = t;
        self
    }

    /// How long one attempt of a one-shot operation may take, body included (60 s by default).
    pub fn request_timeout(mut self, t: Option<Duration>) -> Self {
        self.request_timeout = t;
        self
    }

    /// The largest response body a one-shot operation buffers (256 MiB by default; at least
    /// 1). A larger body ends the operation with [`ErrorKind::LimitExceeded`], without retry.
    pub fn max_response_bytes(mut self, n: usize) -> Self {
        self.max_response_bytes = n;
        self
    }

    /// How long the server holds a long-poll open before it answers `204` (30 s by default, as
    /// the reference server). Readers made by [`StreamHandle::reader`] (and
    /// [`StreamHandle::reader_config`]) abandon a long-poll request that has not ended after
    /// twice this, at least this plus one second, and retry it: a server that accepts a
    /// long-poll and then says nothing cannot park a reader. The default deadline is 60 s.
    pub fn long_poll_wait(mut self, server_wait: Duration) -> Self {
        self.long_poll_deadline = if server_wait.is_zero() {
            Some(Duration::ZERO) // refused by `build`
        } else {
            let margin = server_wait.max(Duration::from_secs(1));
            Some(server_wait.saturating_add(margin))
        };
        self
    }

    /// How long an SSE response of a reader made by [`StreamHandle::reader`] may deliver
    /// nothing (no data, no comment) before the reader drops it and reconnects from its last
    /// offset (120 s by default; `None`: never).
    pub fn sse_idle_timeout(mut self, t: Option<Duration>) -> Self {
        self.sse_idle_timeout = t;
        self
    }

    /// Trusts `der_or_pem` as a root certificate for https, in addition to the built-in
    /// (webpki) roots: one DER certificate, or PEM with one or more `CERTIFICATE` blocks. A
    /// certificate that cannot be parsed makes [`ClientBuilder::build`] fail. A server whose
    /// certificate chains to no trusted root is refused with a transport error of kind
    /// [`TransportErrorKind::Tls`](ds_proto::TransportErrorKind::Tls), which is not retried.
    #[cfg(feature = "rustls")]
    pub fn add_root_certificate(mut self, der_or_pem: impl AsRef<[u8]>) -> Self {
        self.root_certificates.push(der_or_pem.as_ref().to_vec());
        self
    }

    /// Whether the bundled webpki (Mozilla) roots are trusted (`true` by default). Turn them
    /// off to trust only the certificates given to [`ClientBuilder::add_root_certificate`].
    #[cfg(feature = "rustls")]
    pub fn tls_built_in_roots(mut self, enabled: bool) -> Self {
        self.built_in_roots = enabled;
        self
    }

    /// Builds the client. Fails with [`ErrorKind::InvalidInput`] on an invalid retry policy,
    /// a zero timeout or limit, a base URL that is not `http://` or `https://`, or a root
    /// certificate that cannot be parsed.
    pub fn build(self) -> Result<Client, Error> {
        let url = self.base_url.clone().unwrap_or_default();
        let bad =
            |m: String| Error::new(Operation::Create, url.clone(), ErrorKind::InvalidInput(m));
        self.retry.validate().map_err(|e| bad(e.to_string()))?;
        if self.connect_timeout.is_some_and(|t| t.is_zero())
            || self.request_timeout.is_some_and(|t| t.is_zero())
            || self.long_poll_deadline.is_some_and(|t| t.is_zero())
            || self.sse_idle_timeout.is_some_and(|t| t.is_zero())
        {
            return Err(bad("timeouts must be greater than zero".into()));
        }
        if self.max_response_bytes == 0 {
            return Err(bad("max_response_bytes must be at least 1".into()));
        }
        if let Some(base) = self.base_url.as_deref().filter(|b| !b.is_empty()) {
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                return Err(bad(format!(
                    "the base URL {:?} must start with http:// or https://",
                    ds_proto::url::strip_query(base)
                )));
            }
        }
        #[cfg(feature = "rustls")]
        let tls = if self.root_certificates.is_empty() && self.built_in_roots {
            None
        } else {
            Some(
                crate::tls::client_config(self.built_in_roots, &self.root_certificates)
                    .map_err(bad)?,
            )
        };
        #[cfg(not(feature = "rustls"))]
        let tls = ();
        let transport = Transport::with_tls(self.connect_timeout, Duration::from_secs(90), tls);
        Ok(Client {
            inner: Arc::new(Inner {
                transport,
                rng: Mutex::new(Rng::new(crate::entropy_seed())),
                config: self,
            }),
        })
    }
}

pub(crate) struct Inner {
    pub(crate) transport: Transport,
    pub(crate) rng: Mutex<Rng>,
    pub(crate) config: ClientBuilder,
}

/// A Durable Streams client for tokio. Cheap to clone; clones share the connection pool.
///
/// # Credentials
///
/// `Authorization`, `Cookie` and `Proxy-Authorization`, and every header named with
/// [`ClientBuilder::sensitive_header`], are marked sensitive wherever they come from (the
/// builder, a provider, [`CallOptions`]) and are shown as `<redacted>` by every `Debug`
/// implementation of this crate; query parameter values are never shown either. Errors carry
/// the stream URL without its query, and no error message, log line or tracing span contains a
/// header value or a query string.
///
/// # Redirects
///
/// Redirects are never followed: a `3xx` answer is returned as
/// [`ErrorKind::UnexpectedStatus`] (with its status), and nothing, credentials least of all, is
/// sent to the `Location` it names. A Durable Streams server has no reason to redirect; if
/// yours does, point the client at the final URL.
///
/// # Timeouts
///
/// - [`ClientBuilder::connect_timeout`] bounds establishing a TCP connection.
/// - [`ClientBuilder::request_timeout`] bounds each attempt of a one-shot operation, body
///   included, each catch-up request of `read_all`, and each request of a writer whose
///   [`ProducerConfig::request_deadline`](ds_proto::producer::ProducerConfig::request_deadline)
///   is unset. A writer whose server stops answering thus fails its appends once its retry
///   policy is exhausted instead of waiting for ever.
/// - [`ClientBuilder::long_poll_wait`] tells readers how long the server holds a long-poll;
///   each long-poll request is abandoned (and retried) after twice that, and
///   [`ClientBuilder::sse_idle_timeout`] is how long an SSE response may stay silent before the
///   reader reconnects from its last offset.
///
/// # TLS
///
/// With the default `rustls` feature, `https://` URLs are served by rustls with the bundled
/// webpki (Mozilla) roots; `ClientBuilder::add_root_certificate` trusts more roots (a private
/// CA, DER or PEM) and `ClientBuilder::tls_built_in_roots` turns the bundled ones off. A
/// certificate that chains to no trusted root fails the request with
/// [`TransportErrorKind::Tls`](ds_proto::TransportErrorKind::Tls), which is not retried.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Client {
    /// A client with default settings for `base_url`.
    pub fn new(base_url: impl Into<String>) -> Result<Client, Error> {
        Client::builder().base_url(base_url).build()
    }

    /// A builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A handle to the stream at `path` (resolved against the base URL) or at an absolute URL.
    pub fn stream(&self, path_or_url: &str) -> StreamHandle {
        StreamHandle::new(self.clone(), self.resolve(path_or_url))
    }

    pub(crate) fn resolve(&self, path_or_url: &str) -> String {
        let base = self.inner.config.base_url.as_deref().unwrap_or("");
        ds_proto::url::resolve(base, path_or_url)
    }

    /// The headers and parameters for one attempt: defaults, then the provider's, then the
    /// call's.
    pub(crate) fn extras(&self, call: &CallOptions) -> RequestExtras {
        let c = &self.inner.config;
        let mut extras = RequestExtras {
            headers: c.headers.clone(),
            params: c.params.clone(),
        };
        if let Some(p) = &c.provider {
            extras.merge(p());
        }
        extras.merge(call.extras.clone());
        extras.mark_sensitive(&c.sensitive);
        extras
    }

    /// Marks the values of every credential header in `headers` as sensitive.
    pub(crate) fn mark_sensitive(&self, headers: &mut HeaderMap) {
        ds_proto::ops::mark_sensitive(headers, &self.inner.config.sensitive);
    }

    /// The reader defaults of this client: long-poll deadline and SSE idle timeout.
    pub(crate) fn reader_defaults(&self, config: &mut ReaderConfig) {
        config.long_poll_deadline = self.inner.config.long_poll_deadline;
        config.sse_idle_timeout = self.inner.config.sse_idle_timeout;
    }

    pub(crate) fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.config.retry
    }

    pub(crate) fn request_timeout(&self) -> Option<Duration> {
        self.inner.config.request_timeout
    }

    pub(crate) fn max_response_bytes(&self) -> usize {
        self.inner.config.max_response_bytes
    }

    pub(crate) fn next_seed(&self) -> u64 {
        self.inner
            .rng
            .lock()
            .map(|mut r| r.next_u64())
            .unwrap_or_else(|_| crate::entropy_seed())
    }
}
