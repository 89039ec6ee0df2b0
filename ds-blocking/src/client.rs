//! The client: base URL, default headers, per-request providers, retry policy, timeouts and the
//! connection pool, shared by every stream handle, reader and writer made from it.

use crate::handle::StreamHandle;
use crate::transport::Transport;
use ds_proto::ops::{CallOptions, RequestExtras};
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
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field(
                "extras",
                &RequestExtras {
                    headers: self.headers.clone(),
                    params: self.params.clone(),
                },
            )
            .field("provider", &self.provider.is_some())
            .field("retry", &self.retry)
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
    /// `Proxy-Authorization` are marked sensitive.
    pub fn header(mut self, name: HeaderName, mut value: HeaderValue) -> Self {
        if ds_proto::ops::is_secret_header(&name) {
            value.set_sensitive(true);
        }
        self.headers.insert(name, value);
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

    /// The largest response body a one-shot operation buffers (256 MiB by default).
    pub fn max_response_bytes(mut self, n: usize) -> Self {
        self.max_response_bytes = n;
        self
    }

    /// Builds the client. Fails on an invalid retry policy or zero timeouts.
    pub fn build(self) -> Result<Client, Error> {
        let url = self.base_url.clone().unwrap_or_default();
        let bad =
            |m: String| Error::new(Operation::Create, url.clone(), ErrorKind::InvalidInput(m));
        self.retry.validate().map_err(|e| bad(e.to_string()))?;
        if self.connect_timeout.is_some_and(|t| t.is_zero())
            || self.request_timeout.is_some_and(|t| t.is_zero())
        {
            return Err(bad("timeouts must be greater than zero".into()));
        }
        let transport = Transport::new(self.connect_timeout, None);
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

/// A Durable Streams client for plain threads. Cheap to clone; clones share the connection pool.
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
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            return path_or_url.to_owned();
        }
        let base = self
            .inner
            .config
            .base_url
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/');
        if path_or_url.starts_with('/') {
            format!("{base}{path_or_url}")
        } else {
            format!("{base}/{path_or_url}")
        }
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
            merge(&mut extras, p());
        }
        merge(&mut extras, call.extras.clone());
        for (name, value) in extras.headers.iter_mut() {
            if ds_proto::ops::is_secret_header(name) {
                value.set_sensitive(true);
            }
        }
        extras
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

fn merge(into: &mut RequestExtras, from: RequestExtras) {
    let mut last: Option<HeaderName> = None;
    for (name, value) in from.headers {
        match name {
            Some(n) => {
                into.headers.insert(n.clone(), value);
                last = Some(n);
            }
            None => {
                if let Some(n) = &last {
                    into.headers.append(n.clone(), value);
                }
            }
        }
    }
    for (k, v) in from.params {
        into.params.retain(|(ek, _)| *ek != k);
        into.params.push((k, v));
    }
}
