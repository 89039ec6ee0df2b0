//! The parts of a driver's `ClientBuilder`, `Client` and `StreamHandle` that are the same in
//! every driver, written once. Each macro is expanded inside a driver's own crate, so the
//! result is a plain struct of that crate: its documentation links to the driver's own types
//! (`crate::StreamHandle`, `crate::ClientBuilder`), and `#[cfg(feature = "rustls")]` is the
//! driver's feature. Not a public API: only `ds-tokio` and `ds-blocking` use them, and they
//! need the `http` crate as a dependency of their own.

/// Defines a driver's `ClientBuilder` and `Client` (expanded in the driver's `client`
/// module, with the first paragraph of `Client`'s documentation as attributes): the builder
/// around a `ds_proto::client::ClientSettings` with `Default`, `Debug` and every setter; the
/// client's `Inner` (the driver's `Transport`, the seed generator, the settings); `Client`
/// with its documentation, `Debug`, `new`, `builder` and the crate-private accessors the rest
/// of the driver uses (`Client::stream` comes with `__stream_handle!`, so the client's module
/// does not import the handle's), and `ClientBuilder::build`. The driver provides `Transport`
/// with `Transport::from_settings(&ClientSettings) -> Result<Transport, Error>` (its HTTP
/// stack and TLS configuration) and `crate::entropy_seed()` (see `__driver_exports!`).
#[doc(hidden)]
#[macro_export]
#[allow(clippy::crate_in_macro_def)] // items of the driver's crate, on purpose
macro_rules! __client {
    ($(#[$meta:meta])*) => {
        /// Builds a [`Client`].
        #[derive(Clone, Debug, Default)]
        pub struct ClientBuilder {
            settings: $crate::driver::client::ClientSettings,
        }

        impl ClientBuilder {
            /// The base URL stream paths are resolved against (`http://host:port`).
            pub fn base_url(mut self, url: impl Into<String>) -> Self {
                self.settings.base_url = Some(url.into());
                self
            }

            /// A header sent with every request. `Authorization`, `Cookie` and
            /// `Proxy-Authorization`, and the names given to [`ClientBuilder::sensitive_header`],
            /// are marked sensitive.
            pub fn header(
                mut self,
                name: ::http::header::HeaderName,
                value: ::http::header::HeaderValue,
            ) -> Self {
                self.settings.add_header(name, value);
                self
            }

            /// Marks header `name` as carrying a credential (an API key header, say): its values,
            /// from the builder, a provider or per-call options, are marked sensitive and shown as
            /// `<redacted>` by every `Debug` output. `Authorization`, `Cookie` and
            /// `Proxy-Authorization` always are.
            pub fn sensitive_header(mut self, name: ::http::header::HeaderName) -> Self {
                self.settings.add_sensitive_header(name);
                self
            }

            /// A query parameter sent with every request.
            pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
                self.settings.params.push((key.into(), value.into()));
                self
            }

            /// A provider of per-request headers and parameters, called for every attempt.
            pub fn extras_provider(
                mut self,
                f: impl Fn() -> $crate::ops::RequestExtras + Send + Sync + 'static,
            ) -> Self {
                self.settings.provider = Some(::std::sync::Arc::new(f));
                self
            }

            /// The retry policy of one-shot operations (validated by [`ClientBuilder::build`]).
            pub fn retry_policy(mut self, policy: $crate::RetryPolicy) -> Self {
                self.settings.retry = policy;
                self
            }

            /// How long connecting may take (10 s by default; `None`: no limit).
            pub fn connect_timeout(mut self, t: Option<::std::time::Duration>) -> Self {
                self.settings.connect_timeout = t;
                self
            }

            /// How long one attempt of a one-shot operation may take, body included (60 s by
            /// default).
            pub fn request_timeout(mut self, t: Option<::std::time::Duration>) -> Self {
                self.settings.request_timeout = t;
                self
            }

            /// The largest response body a one-shot operation buffers (256 MiB by default; at least
            /// 1). A larger body ends the operation with
            /// [`ErrorKind::LimitExceeded`](crate::ErrorKind::LimitExceeded), without retry.
            pub fn max_response_bytes(mut self, n: usize) -> Self {
                self.settings.max_response_bytes = n;
                self
            }

            /// How long the server holds a long-poll open before it answers `204` (30 s by default,
            /// as the reference server). Readers made by
            /// [`StreamHandle::reader`](crate::StreamHandle::reader) (and
            /// [`StreamHandle::reader_config`](crate::StreamHandle::reader_config)) abandon a
            /// long-poll request that has not ended after twice this, at least this plus one
            /// second, and retry it: a server that accepts a long-poll and then says nothing cannot
            /// park a reader. The default deadline is 60 s.
            pub fn long_poll_wait(mut self, server_wait: ::std::time::Duration) -> Self {
                self.settings.set_long_poll_wait(server_wait);
                self
            }

            /// How long an SSE response of a reader made by
            /// [`StreamHandle::reader`](crate::StreamHandle::reader) may deliver nothing (no data,
            /// no comment) before the reader drops it and reconnects from its last offset (120 s by
            /// default; `None`: never).
            pub fn sse_idle_timeout(mut self, t: Option<::std::time::Duration>) -> Self {
                self.settings.sse_idle_timeout = t;
                self
            }

            /// Trusts `der_or_pem` as a root certificate for https, in addition to the built-in
            /// (webpki) roots: one DER certificate, or PEM with one or more `CERTIFICATE` blocks. A
            /// certificate that cannot be parsed makes [`ClientBuilder::build`] fail. A server
            /// whose certificate chains to no trusted root is refused with a transport error of
            /// kind [`TransportErrorKind::Tls`](ds_proto::TransportErrorKind::Tls), which is not
            /// retried.
            #[cfg(feature = "rustls")]
            pub fn add_root_certificate(mut self, der_or_pem: impl AsRef<[u8]>) -> Self {
                self.settings
                    .root_certificates
                    .push(der_or_pem.as_ref().to_vec());
                self
            }

            /// Whether the bundled webpki (Mozilla) roots are trusted (`true` by default). Turn
            /// them off to trust only the certificates given to
            /// [`ClientBuilder::add_root_certificate`].
            #[cfg(feature = "rustls")]
            pub fn tls_built_in_roots(mut self, enabled: bool) -> Self {
                self.settings.tls_built_in_roots = enabled;
                self
            }
        }

        pub(crate) struct Inner {
            pub(crate) transport: Transport,
            pub(crate) rng: ::std::sync::Mutex<$crate::Rng>,
            pub(crate) config: $crate::driver::client::ClientSettings,
        }

        $(#[$meta])*
        ///
        /// # Credentials
        ///
        /// `Authorization`, `Cookie` and `Proxy-Authorization`, and every header named with
        /// [`ClientBuilder::sensitive_header`], are marked sensitive wherever they come from (the
        /// builder, a provider, [`CallOptions`](crate::CallOptions)) and are shown as `<redacted>`
        /// by every `Debug` implementation of this crate; query parameter values are never shown
        /// either. Errors carry the stream URL without its query, and no error message, log line or
        /// tracing span contains a header value or a query string.
        ///
        /// # Redirects
        ///
        /// Redirects are never followed: a `3xx` answer is returned as
        /// [`ErrorKind::UnexpectedStatus`](crate::ErrorKind::UnexpectedStatus) (with its status),
        /// and nothing, credentials least of all, is sent to the `Location` it names. A Durable
        /// Streams server has no reason to redirect; if yours does, point the client at the final
        /// URL.
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
        ///   [`ClientBuilder::sse_idle_timeout`] is how long an SSE response may stay silent before
        ///   the reader reconnects from its last offset.
        ///
        /// # TLS
        ///
        /// With the default `rustls` feature, `https://` URLs are served by rustls with the bundled
        /// webpki (Mozilla) roots; `ClientBuilder::add_root_certificate` trusts more roots (a
        /// private CA, DER or PEM) and `ClientBuilder::tls_built_in_roots` turns the bundled ones
        /// off. A certificate that chains to no trusted root fails the request with
        /// [`TransportErrorKind::Tls`](ds_proto::TransportErrorKind::Tls), which is not retried.
        #[derive(Clone)]
        pub struct Client {
            pub(crate) inner: ::std::sync::Arc<Inner>,
        }

        impl ::std::fmt::Debug for Client {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct("Client")
                    .field("config", &self.inner.config)
                    .finish()
            }
        }

        impl ClientBuilder {
            /// Builds the client. Fails with
            /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) on an invalid retry
            /// policy, a zero timeout or limit, a base URL that is not `http://` or `https://`,
            /// or a root certificate that cannot be parsed.
            pub fn build(self) -> Result<Client, $crate::Error> {
                let settings = self.settings;
                settings.validate()?;
                let transport = Transport::from_settings(&settings)?;
                Ok(Client::from_parts(transport, settings, crate::entropy_seed()))
            }
        }

        impl Client {
            /// A client with default settings for `base_url`.
            pub fn new(base_url: impl Into<String>) -> Result<Client, $crate::Error> {
                Client::builder().base_url(base_url).build()
            }

            /// A builder.
            pub fn builder() -> ClientBuilder {
                ClientBuilder::default()
            }

            /// The client of a transport and validated settings; `seed` (from OS entropy) seeds
            /// the generator of its machines' seeds.
            pub(crate) fn from_parts(
                transport: Transport,
                config: $crate::driver::client::ClientSettings,
                seed: u64,
            ) -> Client {
                Client {
                    inner: ::std::sync::Arc::new(Inner {
                        transport,
                        rng: ::std::sync::Mutex::new($crate::Rng::new(seed)),
                        config,
                    }),
                }
            }

            /// The settings this client was built with.
            pub(crate) fn settings(&self) -> &$crate::driver::client::ClientSettings {
                &self.inner.config
            }

            /// The headers and parameters for one attempt: defaults, then the provider's, then the
            /// call's.
            pub(crate) fn extras(
                &self,
                call: &$crate::ops::CallOptions,
            ) -> $crate::ops::RequestExtras {
                self.settings().extras(call)
            }

            /// Marks the values of every credential header in `headers` as sensitive.
            pub(crate) fn mark_sensitive(&self, headers: &mut ::http::HeaderMap) {
                self.settings().mark_sensitive(headers);
            }

            /// The reader defaults of this client: long-poll deadline and SSE idle timeout.
            pub(crate) fn reader_defaults(&self, config: &mut $crate::reader::ReaderConfig) {
                self.settings().apply_reader_defaults(config);
            }

            pub(crate) fn retry_policy(&self) -> &$crate::RetryPolicy {
                &self.settings().retry
            }

            pub(crate) fn request_timeout(&self) -> Option<::std::time::Duration> {
                self.settings().request_timeout
            }

            pub(crate) fn max_response_bytes(&self) -> usize {
                self.settings().max_response_bytes
            }

            /// A seed for a machine's PRNG (retry jitter only), from the client's generator (a
            /// poisoned lock is harmless: the generator's state is always valid).
            pub(crate) fn next_seed(&self) -> u64 {
                self.inner
                    .rng
                    .lock()
                    .unwrap_or_else(::std::sync::PoisonError::into_inner)
                    .next_u64()
            }
        }
    };
}

/// Defines a driver's `StreamHandle` (expanded in the module that implements its operations,
/// with the struct's documentation as attributes): the struct, `Clone`, a `Debug` without
/// credentials, `Client::stream`, and the methods that need no I/O (accessors, reader
/// configurations and constructors). The driver provides its clock as `$now`,
/// `engine::Engine::new(machine, Client, CallOptions)` and
/// `Reader::from_machine(Engine<ds_proto::reader::Reader>, url: String)`. The driver's `Client`
/// provides `fn mark_sensitive(&self, &mut HeaderMap)` (see `__client!`).
#[doc(hidden)]
#[macro_export]
#[allow(clippy::crate_in_macro_def)] // items of the driver's crate, on purpose
macro_rules! __stream_handle {
    (now: $now:path; $(#[$meta:meta])*) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct StreamHandle {
            client: Client,
            url: ::std::sync::Arc<str>,
            content_type: ::std::sync::Arc<::std::sync::Mutex<Option<String>>>,
            call: $crate::ops::CallOptions,
        }

        impl ::std::fmt::Debug for StreamHandle {
            /// The URL without its query (parameters may carry credentials); credential headers of
            /// the call options redacted.
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct("StreamHandle")
                    .field("url", &$crate::url::strip_query(&self.url))
                    .field("content_type", &self.content_type())
                    .field("call", &self.call)
                    .field("client", &self.client)
                    .finish()
            }
        }

        impl Client {
            /// A handle to the stream at `path` (resolved against the base URL) or at an absolute
            /// URL.
            pub fn stream(&self, path_or_url: &str) -> StreamHandle {
                StreamHandle::new(self.clone(), self.settings().resolve(path_or_url))
            }
        }

        impl StreamHandle {
            pub(crate) fn new(client: Client, url: String) -> Self {
                StreamHandle {
                    client,
                    url: url.into(),
                    content_type: ::std::sync::Arc::new(::std::sync::Mutex::new(None)),
                    call: $crate::ops::CallOptions::default(),
                }
            }

            /// The stream's URL.
            pub fn url(&self) -> &str {
                &self.url
            }

            /// The client this handle belongs to.
            pub fn client(&self) -> &Client {
                &self.client
            }

            /// The content type appends are sent with: set by [`StreamHandle::set_content_type`],
            /// or learned from `create`, `head` and reads.
            pub fn content_type(&self) -> Option<String> {
                self.content_type.lock().ok().and_then(|c| c.clone())
            }

            /// Sets the content type appends are sent with (`application/octet-stream` otherwise).
            pub fn set_content_type(&self, content_type: impl Into<String>) {
                if let Ok(mut c) = self.content_type.lock() {
                    *c = Some(content_type.into());
                }
            }

            /// A handle whose operations use `call` (extra headers and parameters, retry policy,
            /// timeout) on top of the client's settings.
            pub fn with_options(&self, mut call: $crate::ops::CallOptions) -> StreamHandle {
                self.client.mark_sensitive(&mut call.extras.headers);
                StreamHandle {
                    call,
                    ..self.clone()
                }
            }

            pub(crate) fn call_options(&self) -> $crate::ops::CallOptions {
                self.call.clone()
            }

            /// The driver's engine for `machine`, with this handle's client and call options.
            pub(crate) fn engine<M: $crate::Machine>(&self, machine: M) -> crate::engine::Engine<M> {
                crate::engine::Engine::new(machine, self.client.clone(), self.call.clone())
            }

            /// Starts a consumer in the background (ds-tokio: a task, ds-blocking: a thread),
            /// calling `handler` for every batch, at least once, reconnecting with backoff
            /// until EOF or a stop (see the crate's `consumer` module). Its reader has this
            /// handle's reader defaults and is told whether the stream is JSON.
            ///
            /// # Panics
            ///
            /// ds-blocking: when the operating system cannot start a thread (as
            /// `std::thread::spawn` does); ds-tokio: outside a tokio runtime (as
            /// `tokio::spawn` does).
            pub fn consume<H: crate::consumer::Handler>(
                &self,
                options: $crate::consumer::ConsumerOptions,
                handler: H,
            ) -> crate::consumer::ConsumerHandle<H::Error> {
                let mut config = self.complete(self.reader_config());
                config.rng_seed = self.client.next_seed();
                let url = config.url.clone();
                let machine = $crate::consumer::Consumer::new(config, &options, $now());
                crate::consumer::start(self.engine(machine), url, handler)
            }

            /// Takes what came of an attempt of `call` at `now`: the operation's result (the
            /// handle has learned what it teaches), or how long to wait before the next
            /// attempt. Traced through the driver's `trace::call_step`.
            fn settle<O: $crate::ops::OneShot>(
                &self,
                call: &mut $crate::driver::call::Call<O>,
                outcome: Result<(::http::response::Parts, ::bytes::Bytes), $crate::TransportError>,
                now: ::std::time::Instant,
            ) -> Result<Result<O::Output, $crate::Error>, ::std::time::Duration> {
                let step = call.outcome(outcome, now);
                crate::trace::call_step(call, &step);
                match step {
                    $crate::driver::call::Step::Done {
                        result,
                        content_type,
                    } => {
                        self.learn_content_type(&content_type);
                        Ok(result)
                    }
                    $crate::driver::call::Step::Retry { delay, .. } => Err(delay),
                }
            }

            /// A reader from `offset` in `mode` (catch-up, long-poll, SSE or auto), with the
            /// reader defaults of [`StreamHandle::reader_config`] (retries without limit).
            pub fn reader(
                &self,
                offset: $crate::Offset,
                mode: $crate::reader::ReadMode,
            ) -> Result<crate::Reader, $crate::Error> {
                self.reader_with(self.reader_config_at(offset, mode))
            }

            /// A reader with every setting chosen (its `url` is replaced by this stream's).
            ///
            /// When the handle knows the stream's content type (from `create`, `head`, a read,
            /// or [`StreamHandle::set_content_type`]) and `config.json` is unset, the reader is
            /// told whether the stream is JSON: SSE responses do not carry the stream's content
            /// type, and JSON messages of several SSE events are merged into one array only for
            /// JSON streams.
            pub fn reader_with(
                &self,
                config: $crate::reader::ReaderConfig,
            ) -> Result<crate::Reader, $crate::Error> {
                let mut config = self.complete(config);
                config.rng_seed = self.client.next_seed();
                let url = config.url.clone();
                let machine = $crate::reader::Reader::new(config, $now())?;
                Ok(crate::Reader::from_machine(self.engine(machine), url))
            }

            /// A reader that continues from `snapshot` (from `Reader::snapshot`, maybe taken in
            /// another process): it resumes right after the last event the snapshotted reader
            /// handed out, in the same mode and phase; a reader restored after EOF sends nothing
            /// and ends at once with
            /// [`ReaderEvent::Closed`]($crate::reader::ReaderEvent::Closed). The snapshot's
            /// configuration is used, with this stream's URL and a fresh PRNG seed. See
            /// [`ReaderSnapshot`]($crate::reader::ReaderSnapshot).
            ///
            /// Errors: [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a
            /// snapshot of another format version or a configuration
            /// [`StreamHandle::reader_with`] would refuse.
            pub fn reader_from_snapshot(
                &self,
                mut snapshot: $crate::reader::ReaderSnapshot,
            ) -> Result<crate::Reader, $crate::Error> {
                snapshot.config.url = self.url.to_string();
                snapshot.config.rng_seed = self.client.next_seed();
                let url = snapshot.config.url.clone();
                let machine = $crate::reader::Reader::restore(snapshot, $now())?;
                Ok(crate::Reader::from_machine(self.engine(machine), url))
            }

            /// The reader configuration [`StreamHandle::reader`] starts from:
            /// [`ReaderConfig::new`]($crate::reader::ReaderConfig::new) for this stream with the
            /// client's long-poll deadline
            /// ([`ClientBuilder::long_poll_wait`](crate::ClientBuilder::long_poll_wait)) and SSE
            /// idle timeout
            /// ([`ClientBuilder::sse_idle_timeout`](crate::ClientBuilder::sse_idle_timeout)).
            /// Change what you need and pass it to [`StreamHandle::reader_with`].
            pub fn reader_config(&self) -> $crate::reader::ReaderConfig {
                let mut config = $crate::reader::ReaderConfig::new(self.url.to_string());
                self.client.reader_defaults(&mut config);
                config
            }

            /// [`StreamHandle::reader_config`] from `offset` in `mode`.
            fn reader_config_at(
                &self,
                offset: $crate::Offset,
                mode: $crate::reader::ReadMode,
            ) -> $crate::reader::ReaderConfig {
                let mut config = self.reader_config();
                config.offset = offset;
                config.mode = mode;
                config
            }

            /// The settings of a `read_all` from `offset` (see
            /// [`read_all::reader_config`]($crate::driver::read_all::reader_config)).
            fn read_all_config(&self, offset: $crate::Offset) -> $crate::reader::ReaderConfig {
                $crate::driver::read_all::reader_config(
                    self.reader_config(),
                    offset,
                    self.client.settings(),
                    &self.call,
                )
            }

            /// A reader configuration made for this stream: its URL, and whether it is JSON
            /// when the handle knows the content type and `config.json` is unset.
            fn complete(
                &self,
                mut config: $crate::reader::ReaderConfig,
            ) -> $crate::reader::ReaderConfig {
                config.url = self.url.to_string();
                if config.json.is_none() {
                    config.json = self
                        .content_type()
                        .map(|ct| $crate::headers::is_json_content_type(&ct));
                }
                config
            }

            /// Remembers the stream's content type from an answer, unless one is already known.
            fn learn_content_type(&self, ct: &Option<String>) {
                if let (Some(ct), Ok(mut slot)) = (ct, self.content_type.lock()) {
                    if slot.is_none() {
                        *slot = Some(ct.clone());
                    }
                }
            }
        }
    };
}

/// Defines a driver's one-shot `StreamHandle` operations (PROTOCOL.md 5.1-5.6: `create`,
/// `append`, `append_with`, `append_json`, `close`, `close_with`, `head`, `delete`, `read`,
/// `read_all`, `read_all_from`, `read_json`), written once for both drivers (`$async` /
/// `.$await` are `async` / `.await` in an async driver, nothing in a blocking one). Each hands
/// its ds-proto descriptor to the driver's `StreamHandle::run(op)` (its IO); the reads to the
/// end go through the driver's `Reader::next_event()`.
#[doc(hidden)]
#[macro_export]
#[allow(clippy::crate_in_macro_def)] // items of the driver's crate, on purpose
macro_rules! __stream_handle_ops {
    ($($async:ident)?; $(.$await:ident)?) => {
        impl StreamHandle {
            /// Creates the stream (PUT, PROTOCOL.md 5.1). `Created::created` tells a new stream
            /// (201) from an existing one with the same configuration (200); another
            /// configuration is a conflict error.
            pub $($async)? fn create(
                &self,
                opts: $crate::ops::CreateOptions,
            ) -> Result<$crate::ops::Created, $crate::Error> {
                self.run($crate::ops::Create::new(self.url(), opts))$(.$await)?
            }

            /// Appends `body` (POST, 5.2) with the handle's content type. For JSON streams
            /// `body` is one JSON message. Not retried unless the retry policy opts in (a lost
            /// response could store it twice); use a writer or producer headers for
            /// exactly-once retries.
            pub $($async)? fn append(
                &self,
                body: impl Into<::bytes::Bytes>,
            ) -> Result<$crate::ops::Appended, $crate::Error> {
                self.append_with(body, $crate::ops::AppendOptions::default())$(.$await)?
            }

            /// Appends with options: `Stream-Seq`, append-and-close, idempotent producer
            /// headers (then the result tells stored from duplicate, and errors tell fenced and
            /// sequence gaps).
            pub $($async)? fn append_with(
                &self,
                body: impl Into<::bytes::Bytes>,
                opts: $crate::ops::AppendOptions,
            ) -> Result<$crate::ops::Appended, $crate::Error> {
                let op = $crate::ops::Append::new(self.url(), body.into(), opts, self.content_type());
                self.run(op)$(.$await)?
            }

            /// Appends one value as a JSON message (the stream must be `application/json`).
            pub $($async)? fn append_json<T: ::serde::Serialize + ?Sized>(
                &self,
                value: &T,
            ) -> Result<$crate::ops::Appended, $crate::Error> {
                self.run($crate::ops::Append::json(self.url(), value)?)$(.$await)?
            }

            /// Closes the stream (5.3). Closing a closed stream succeeds.
            pub $($async)? fn close(&self) -> Result<$crate::ops::Closed, $crate::Error> {
                self.close_with(None)$(.$await)?
            }

            /// Closes the stream with idempotent producer headers (5.2.1).
            pub $($async)? fn close_with(
                &self,
                producer: Option<$crate::ops::ProducerHeaders>,
            ) -> Result<$crate::ops::Closed, $crate::Error> {
                self.run($crate::ops::Close::new(self.url(), producer))$(.$await)?
            }

            /// The stream's metadata (HEAD, 5.5).
            pub $($async)? fn head(&self) -> Result<$crate::ops::StreamInfo, $crate::Error> {
                self.run($crate::ops::Head::new(self.url()))$(.$await)?
            }

            /// Deletes the stream (5.4).
            pub $($async)? fn delete(&self) -> Result<(), $crate::Error> {
                self.run($crate::ops::Delete::new(self.url()))$(.$await)?
            }

            /// One read (catch-up, or one long-poll), buffered whole. For continuous reading
            /// use [`StreamHandle::reader`].
            pub $($async)? fn read(
                &self,
                opts: $crate::ops::ReadOptions,
            ) -> Result<$crate::ops::ReadResult, $crate::Error> {
                self.run($crate::ops::Read::new(self.url(), opts))$(.$await)?
            }

            /// Reads everything from the beginning until up to date: the bytes (for JSON
            /// streams, one JSON array of all messages), the offset to continue from, and
            /// whether the stream is closed.
            pub $($async)? fn read_all(
                &self,
            ) -> Result<$crate::driver::read_all::ReadAll, $crate::Error> {
                self.read_all_from($crate::Offset::beginning())$(.$await)?
            }

            /// Like [`StreamHandle::read_all`], from `offset`.
            pub $($async)? fn read_all_from(
                &self,
                offset: $crate::Offset,
            ) -> Result<$crate::driver::read_all::ReadAll, $crate::Error> {
                let mut reader = self.reader_with(self.read_all_config(offset.clone()))?;
                let mut acc = $crate::driver::read_all::ChunkAccumulator::starting_at(offset);
                while let Some(event) = reader.next_event()$(.$await)? {
                    acc.observe(event)?;
                }
                acc.into_result(self.url())
            }

            /// Reads every message of a JSON stream from the beginning until up to date.
            pub $($async)? fn read_json<T: ::serde::de::DeserializeOwned>(
                &self,
            ) -> Result<Vec<T>, $crate::Error> {
                $crate::driver::read_all::json_messages(&self.read_all()$(.$await)??, self.url())
            }
        }
    };
}

/// Defines a driver's `Writer` shell (expanded in the driver's writer module): the struct with
/// the driver's own fields, its documentation, `Debug`, the `StreamHandle` constructors
/// (`writer`, `writer_with`, `writer_from_snapshot`) and the writer's methods that need no
/// waiting (`on_error`, `try_append`, `try_append_json`, `snapshot`, `on_snapshot`, `epoch`,
/// `buffered_bytes`, `offset`). The driver provides `Shared::lock()` (to something that
/// dereferences to a [`WriterCore`](crate::driver::writer::WriterCore)),
/// `Writer::spawn(client, call, core, url) -> Result<Writer, Error>`, `Writer::wake()`,
/// `Writer::wait_for(done)` (waits, `async` in an async driver, until `done(&mut Core)` has an
/// answer, looking again whenever events were processed), its clock as `$now` (a path to a
/// `fn() -> std::time::Instant`) and the channel of a tracked append's outcome as `$channel`
/// (`$async` / `.$await` are `async` / `.await` in an async driver, nothing in a blocking
/// one). The appends that wait for room, `flush` and `close` are written here.
#[doc(hidden)]
#[macro_export]
#[allow(clippy::crate_in_macro_def)] // items of the driver's crate, on purpose
macro_rules! __writer {
    (
        $($async:ident)?; $(.$await:ident)?;
        now: $now:path;
        outcome: $rx:ty;
        channel: $channel:path;
        $(#[$meta:meta])*
        fields { $($field:ident: $fty:ty),* $(,)? }
    ) => {
        /// Waits for one append's outcome (from [`Writer::append_tracked`]).
        #[derive(Debug)]
        pub struct AppendHandle {
            id: $crate::producer::AppendId,
            rx: $rx,
        }

        impl AppendHandle {
            /// The append's id.
            pub fn id(&self) -> $crate::producer::AppendId {
                self.id
            }
        }

        /// An exactly-once writer of one stream.
        ///
        /// # Durable state: surviving a crash exactly-once
        ///
        /// [`Writer::snapshot`] takes a [`ProducerSnapshot`]($crate::producer::ProducerSnapshot)
        /// at any time, and [`StreamHandle::writer_from_snapshot`] continues from one, in this
        /// process or in another after a crash: the batches that were sealed but not
        /// acknowledged are re-sent with their original epoch, seq and body, so the server
        /// stores each exactly once (a `204` duplicate for those the crashed writer had
        /// already stored), then the open batch continues.
        ///
        /// To persist snapshots, register [`Writer::on_snapshot`]. Its callback gets a
        /// snapshot at once, then again *before* the writer sends a batch the last one did
        /// not hold (write-ahead), and after every acknowledgement or failure. It runs on the
        /// writer's background task or thread with the writer locked and nothing is sent until
        /// it returns, so a snapshot it has persisted always holds every batch that may be on
        /// the server. Keep it short (a file write, a database row); a callback that cannot
        /// persist should stop the process rather than return.
        ///
        /// Appends made after the last persisted snapshot are the application's to replay:
        /// journal each payload durably before calling `append`, and after restoring append
        /// the journaled payloads from
        /// [`ProducerSnapshot::next_append_id`]($crate::producer::ProducerSnapshot::next_append_id)
        /// on, in order (they get the same ids). Restore only when the old writer is surely
        /// gone; when another instance may still be writing with the same producer id and
        /// epoch, or the snapshot may be stale, start a writer with a higher epoch instead
        /// (at-least-once). The details are on
        /// [`ProducerSnapshot`]($crate::producer::ProducerSnapshot).
        $(#[$meta])*
        pub struct Writer {
            shared: ::std::sync::Arc<Shared>,
            url: String,
            $($field: $fty,)*
        }

        impl ::std::fmt::Debug for Writer {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                let core = self.shared.lock();
                f.debug_struct("Writer")
                    .field("url", &$crate::url::strip_query(&self.url))
                    .field("epoch", &core.producer().epoch())
                    .field("buffered_bytes", &core.producer().buffered_bytes())
                    .finish_non_exhaustive()
            }
        }

        impl StreamHandle {
            /// A writer with the producer defaults
            /// ([`ProducerConfig::new`]($crate::producer::ProducerConfig::new)) and the
            /// handle's content type.
            pub fn writer(&self, producer_id: impl Into<String>) -> Result<Writer, $crate::Error> {
                self.writer_with($crate::driver::writer::default_config(
                    self.url(),
                    producer_id,
                    self.content_type(),
                ))
            }

            /// A writer with every producer setting chosen (its `url` is replaced by this
            /// stream's).
            ///
            /// When `config.request_deadline` is `None`, each request gets the handle's call
            /// timeout or the client's
            /// [`request_timeout`](crate::ClientBuilder::request_timeout) (60 s by default) as
            /// its deadline: a server that stops answering makes the attempt fail and be
            /// retried, and the appends fail once the retry policy is exhausted, instead of
            /// waiting for ever. (With the client's request timeout set to `None` there is no
            /// deadline.)
            pub fn writer_with(
                &self,
                mut config: $crate::producer::ProducerConfig,
            ) -> Result<Writer, $crate::Error> {
                let (client, call) = (self.client().clone(), self.call_options());
                $crate::driver::writer::prepare_config(
                    &mut config,
                    self.url(),
                    client.settings(),
                    &call,
                    client.next_seed(),
                );
                let url = config.url.clone();
                let producer = $crate::producer::Producer::new(config, $now())?;
                Writer::spawn(client, call, $crate::driver::writer::WriterCore::new(producer), url)
            }

            /// A writer that continues from `snapshot` (taken by [`Writer::snapshot`] or given
            /// to an [`Writer::on_snapshot`] callback, maybe in another process): see the
            /// [`Writer`] docs ("Durable state") and
            /// [`ProducerSnapshot`]($crate::producer::ProducerSnapshot) for the guarantees. The
            /// snapshot's configuration is used, with this stream's URL (it must be the same
            /// stream, perhaps reached at another address) and a fresh PRNG seed. Re-append the
            /// journaled appends from
            /// [`ProducerSnapshot::next_append_id`]($crate::producer::ProducerSnapshot::next_append_id)
            /// on after this returns.
            ///
            /// Errors: [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a
            /// snapshot of another format version or an inconsistent one.
            pub fn writer_from_snapshot(
                &self,
                mut snapshot: $crate::producer::ProducerSnapshot,
            ) -> Result<Writer, $crate::Error> {
                let (client, call) = (self.client().clone(), self.call_options());
                $crate::driver::writer::prepare_config(
                    &mut snapshot.config,
                    self.url(),
                    client.settings(),
                    &call,
                    client.next_seed(),
                );
                let url = snapshot.config.url.clone();
                let core = $crate::driver::writer::WriterCore::restore(snapshot, $now())?;
                Writer::spawn(client, call, core, url)
            }
        }

        impl Writer {
            /// Sets the callback told of every failure as it happens.
            pub fn on_error(
                &self,
                callback: impl Fn(&$crate::driver::write_tracker::WriteFailure)
                    + Send
                    + Sync
                    + 'static,
            ) {
                self.shared.lock().set_on_error(::std::sync::Arc::new(callback));
            }

            /// Appends without waiting: `Err(AppendError::Full)` (with the payload handed back)
            /// when the buffer is full, `Err(AppendError::Refused)` for an invalid payload or a
            /// stopped writer.
            pub fn try_append(
                &self,
                data: impl Into<::bytes::Bytes>,
            ) -> Result<$crate::producer::AppendId, $crate::producer::AppendError> {
                self.try_append_as(data.into(), false)
            }

            /// Appends one value as a JSON message without waiting for room.
            pub fn try_append_json<T: ::serde::Serialize + ?Sized>(
                &self,
                value: &T,
            ) -> Result<$crate::producer::AppendId, $crate::producer::AppendError> {
                self.try_append_as(self.to_json(value)?, true)
            }

            /// `serialized`: JSON bytes serde_json just wrote, not validated again.
            fn try_append_as(
                &self,
                data: ::bytes::Bytes,
                serialized: bool,
            ) -> Result<$crate::producer::AppendId, $crate::producer::AppendError> {
                let (id, wake) = self.shared.lock().append(data, serialized, $now())?;
                if wake {
                    self.wake();
                }
                Ok(id)
            }

            fn to_json<T: ::serde::Serialize + ?Sized>(
                &self,
                value: &T,
            ) -> Result<::bytes::Bytes, $crate::producer::AppendError> {
                $crate::driver::writer::json_payload(&self.url, value)
            }

            /// A snapshot of the writer's producer now: everything needed to continue with
            /// [`StreamHandle::writer_from_snapshot`]. Cheap (payloads are shared, not copied)
            /// and without effect on the writer. To persist snapshots for crash recovery use
            /// [`Writer::on_snapshot`], which takes them at the right moments.
            pub fn snapshot(&self) -> $crate::producer::ProducerSnapshot {
                self.shared.lock().producer().snapshot()
            }

            /// Sets the callback that persists snapshots (replacing any earlier one). It is
            /// called at once with the current snapshot (on this thread), then by the writer's
            /// task or thread *before* it sends a batch the last snapshot did not hold, and
            /// after every acknowledgement or failure. Nothing is sent while it runs, so the
            /// snapshot it last persisted always holds every batch that may be on the server:
            /// restoring from it (plus the journaled appends from its
            /// [`next_append_id`]($crate::producer::ProducerSnapshot::next_append_id) on) is
            /// exactly-once, provided it was set before the first append (right after
            /// [`StreamHandle::writer`] or [`StreamHandle::writer_from_snapshot`]). It runs with
            /// the writer locked: keep it short, and do not call the writer from it.
            pub fn on_snapshot(
                &self,
                callback: impl Fn(&$crate::producer::ProducerSnapshot) + Send + Sync + 'static,
            ) {
                self.shared.lock().set_on_snapshot(::std::sync::Arc::new(callback));
            }

            /// The producer's current epoch (changes when auto-claim takes over).
            pub fn epoch(&self) -> u64 {
                self.shared.lock().producer().epoch()
            }

            /// Payload bytes buffered and not yet acknowledged.
            pub fn buffered_bytes(&self) -> usize {
                self.shared.lock().producer().buffered_bytes()
            }

            /// The latest tail offset an acknowledgement reported.
            pub fn offset(&self) -> Option<$crate::Offset> {
                self.shared.lock().offset()
            }

            /// Appends, waiting for room when the buffer is full (never for the network
            /// otherwise).
            pub $($async)? fn append(
                &self,
                data: impl Into<::bytes::Bytes>,
            ) -> Result<$crate::producer::AppendId, $crate::producer::AppendError> {
                self.append_waiting(data.into(), false, |_, _| {})$(.$await)?
            }

            /// Appends one value as a JSON message (the stream must be `application/json`).
            pub $($async)? fn append_json<T: ::serde::Serialize + ?Sized>(
                &self,
                value: &T,
            ) -> Result<$crate::producer::AppendId, $crate::producer::AppendError> {
                self.append_waiting(self.to_json(value)?, true, |_, _| {})$(.$await)?
            }

            /// Appends (waiting for room) and returns a handle resolving to this append's
            /// outcome.
            pub $($async)? fn append_tracked(
                &self,
                data: impl Into<::bytes::Bytes>,
            ) -> Result<AppendHandle, $crate::producer::AppendError> {
                let (tx, rx) = $channel();
                let mut tx = Some(tx);
                let track = |core: &mut Core, id| {
                    if let Some(tx) = tx.take() {
                        core.track(id, tx);
                    }
                };
                let id = self.append_waiting(data.into(), false, track)$(.$await)??;
                Ok(AppendHandle { id, rx })
            }

            /// Sends what is buffered now and waits until every append so far is acknowledged
            /// or failed; reports the failures since the last flush.
            pub $($async)? fn flush(&self) -> Result<(), $crate::driver::writer::FlushError> {
                let wait = self.shared.lock().flush($now());
                self.wake();
                self.wait_for(|core| core.flushed(wait))$(.$await)?
            }

            /// Flushes, then closes the stream when `close_stream` (the final batch carries
            /// `Stream-Closed: true`), and stops the writer.
            pub $($async)? fn close(
                self,
                close_stream: bool,
            ) -> Result<$crate::driver::writer::CloseReport, $crate::driver::writer::FlushError>
            {
                let wait = self.shared.lock().close(close_stream, $now())?;
                self.wake();
                self.wait_for(|core| core.closed(wait))$(.$await)?
            }

            /// Appends `data` (`serialized`: JSON serde_json just wrote), waiting while the
            /// buffer is full; `accepted` runs under the lock once the producer took it.
            $($async)? fn append_waiting(
                &self,
                mut data: ::bytes::Bytes,
                serialized: bool,
                mut accepted: impl FnMut(&mut Core, $crate::producer::AppendId),
            ) -> Result<$crate::producer::AppendId, $crate::producer::AppendError> {
                let (result, wake) = self.wait_for(|core| {
                    match core.append(::std::mem::take(&mut data), serialized, $now()) {
                        Ok((id, wake)) => {
                            accepted(core, id);
                            Some((Ok(id), wake))
                        }
                        Err($crate::producer::AppendError::Full { data: back, .. }) => {
                            data = back;
                            None
                        }
                        Err(e) => Some((Err(e), false)),
                    }
                })$(.$await)?;
                if wake {
                    self.wake();
                }
                result
            }
        }
    };
}

/// Writes a driver's `Reader` accessors (`snapshot`, `offset`, `is_up_to_date`, `is_eof`,
/// `last_status`) and its `Debug`, expanded in the driver's reader module. The driver's
/// `Reader` has a `url: String` field and a method `state(&self) -> &impl ReaderState`
/// ([`ReaderState`](crate::driver::reader_state::ReaderState): the machine itself, or the
/// [`HandedOut`](crate::driver::reader_state::HandedOut) copy of the last event's moment).
#[doc(hidden)]
#[macro_export]
#[allow(clippy::crate_in_macro_def)] // items of the driver's crate, on purpose
macro_rules! __reader_state {
    () => {
        impl ::std::fmt::Debug for Reader {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct("Reader")
                    .field("url", &$crate::url::strip_query(&self.url))
                    .field("offset", self.offset())
                    .field("up_to_date", &self.is_up_to_date())
                    .field("eof", &self.is_eof())
                    .finish_non_exhaustive()
            }
        }

        impl Reader {
            /// A snapshot of what this reader has handed out: continue from it with
            /// [`StreamHandle::reader_from_snapshot`](crate::StreamHandle::reader_from_snapshot),
            /// here or in another process. It resumes right after the last event handed out
            /// (nothing repeated, nothing skipped), in the same phase (an auto reader past its
            /// catch-up long-polls at once, an SSE reader that fell back stays on long-poll),
            /// and a reader restored after EOF sends nothing. See
            /// [`ReaderSnapshot`]($crate::reader::ReaderSnapshot).
            pub fn snapshot(&self) -> $crate::reader::ReaderSnapshot {
                $crate::driver::reader_state::ReaderState::snapshot(self.state())
            }

            /// The checkpoint: the offset after everything this reader has handed out.
            pub fn offset(&self) -> &$crate::Offset {
                $crate::driver::reader_state::ReaderState::offset(self.state())
            }

            /// Whether the reader has caught up with the stream's tail (more may come unless
            /// EOF).
            pub fn is_up_to_date(&self) -> bool {
                $crate::driver::reader_state::ReaderState::is_up_to_date(self.state())
            }

            /// Whether the stream is closed and everything was read (EOF).
            pub fn is_eof(&self) -> bool {
                $crate::driver::reader_state::ReaderState::is_eof(self.state())
            }

            /// The HTTP status of the latest response the reader received, as of the last
            /// event handed out (`204`: a long-poll that ended without data); `None` before the
            /// first.
            pub fn last_status(&self) -> Option<u16> {
                $crate::driver::reader_state::ReaderState::last_status(self.state())
            }
        }
    };
}

/// Defines a driver's `JsonItems` (the messages of a JSON stream, one by one) and
/// `Reader::json`, expanded in the driver's reader module; the driver implements the iteration
/// (`Iterator` or `Stream`) over [`JsonItemQueue`](crate::driver::json_items::JsonItemQueue).
#[doc(hidden)]
#[macro_export]
#[allow(clippy::crate_in_macro_def)] // items of the driver's crate, on purpose
macro_rules! __json_items {
    () => {
        /// The messages of a JSON stream, one by one (from [`Reader::json`]).
        pub struct JsonItems<T> {
            reader: Reader,
            pending: $crate::driver::json_items::JsonItemQueue,
            _item: ::std::marker::PhantomData<fn() -> T>,
        }

        impl<T> ::std::fmt::Debug for JsonItems<T> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct("JsonItems")
                    .field("reader", &self.reader)
                    .field("pending", &self.pending.len())
                    .finish()
            }
        }

        impl<T: ::serde::de::DeserializeOwned> JsonItems<T> {
            /// The reader's checkpoint. While messages of a chunk are still pending it is the
            /// offset after that whole chunk.
            pub fn offset(&self) -> &$crate::Offset {
                self.reader.offset()
            }
        }

        impl Reader {
            /// Iterates the messages of a JSON stream, deserialized.
            pub fn json<T: ::serde::de::DeserializeOwned>(self) -> JsonItems<T> {
                JsonItems {
                    reader: self,
                    pending: $crate::driver::json_items::JsonItemQueue::new(),
                    _item: ::std::marker::PhantomData,
                }
            }
        }
    };
}

/// The protocol types every driver re-exports (so users name them from the driver's crate),
/// and the driver's source of PRNG seeds; expanded at the root of a driver's crate.
#[doc(hidden)]
#[macro_export]
#[allow(clippy::crate_in_macro_def)] // items of the driver's crate, on purpose
macro_rules! __driver_exports {
    () => {
        pub use $crate::driver::read_all::ReadAll;
        pub use $crate::driver::write_tracker::{WriteFailure, WriteOutcome};
        pub use $crate::driver::writer::{
            CloseReport, ErrorCallback, FlushError, SnapshotCallback,
        };
        pub use $crate::ops::{
            AppendOptions, AppendOutcome, Appended, CallOptions, Closed, CreateOptions, Created,
            ForkFrom, LiveMode, ProducerHeaders, ReadOptions, ReadResult, RequestExtras,
            StreamInfo,
        };
        pub use $crate::producer::{
            AppendError, AppendId, FailureReason, ProducerConfig, ProducerSnapshot,
        };
        pub use $crate::reader::{Chunk, ReadMode, ReaderConfig, ReaderEvent, ReaderSnapshot};
        pub use $crate::subscription::{
            Ack, Batch, Confirmed, Subscription, SubscriptionConfig, SubscriptionError,
            SubscriptionErrorKind, WakeNotification, WorkerEvent,
        };
        pub use $crate::{ConflictKind, Error, ErrorKind, Offset, Operation, RetryPolicy};

        /// A seed from OS entropy for the machines' PRNGs (retry jitter only): ds-proto draws
        /// no randomness of its own.
        pub(crate) fn entropy_seed() -> u64 {
            use ::std::hash::{BuildHasher, Hasher};
            let mut h = ::std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(u64::from(::std::process::id()));
            h.finish()
        }
    };
}

/// A driver's tracing facade (expanded in its `trace` module): `ds_proto::driver::trace::on`
/// with the driver's `tracing` feature, `off` without, the helpers its loops call, and the
/// driver's clock (`$now`, a path to a `fn() -> std::time::Instant`) for request latencies.
#[doc(hidden)]
#[macro_export]
#[allow(clippy::crate_in_macro_def)] // items of the driver's crate, on purpose
macro_rules! __driver_trace {
    (now: $now:path) => {
        #[cfg(not(feature = "tracing"))]
        use $crate::driver::trace::off as imp;
        #[cfg(feature = "tracing")]
        use $crate::driver::trace::on as imp;

        pub(crate) use imp::{call_step, producer_event, reader_event};

        /// The clock request latencies are measured with: the driver's one clock (the
        /// machines get their `now` from it too), so a span's latency agrees with their
        /// deadlines.
        #[derive(Debug)]
        pub(crate) struct Clock;

        impl $crate::driver::trace::Clock for Clock {
            fn now() -> ::std::time::Instant {
                $now()
            }
        }

        /// The span of one HTTP exchange and what is counted while it runs.
        pub(crate) type RequestTrace = imp::RequestTrace<Clock>;

        /// The spans of exchanges followed through their inputs (a pipelined connection).
        pub(crate) type RequestTraces = imp::RequestTraces<Clock>;
    };
}

/// A driver's subscription shell (expanded in the driver's subscription module): the stream
/// root default, `Client::subscription`, `Client::subscription_at`, `Client::send_callback`,
/// and `SubscriptionHandle` with its control operations, written once for both drivers
/// (`$async` / `.$await` are `async` / `.await` in an async driver, nothing in a blocking one),
/// and the `WebhookVerifier` with `Client::webhook_verifier` (its key cache behind a mutex
/// locked for a step alone, never across a fetch; `$now` is the driver's clock). The driver
/// provides `Client::run_subscription(op, &CallOptions)` (its IO).
#[doc(hidden)]
#[macro_export]
#[allow(clippy::crate_in_macro_def)] // items of the driver's crate, on purpose
macro_rules! __subscription_handle {
    ($($async:ident)?; $(.$await:ident)?; now: $now:path) => {
        /// The stream root a client's subscriptions live under unless told otherwise.
        pub const DEFAULT_STREAM_ROOT: &str = "/v1/stream";

        impl Client {
            /// A handle to subscription `id` under the stream root `<base URL>/v1/stream`.
            pub fn subscription(&self, id: impl Into<String>) -> SubscriptionHandle {
                self.subscription_at(DEFAULT_STREAM_ROOT, id)
            }

            /// A handle to subscription `id` under the stream root `root` (a path resolved against
            /// the base URL, or an absolute URL).
            pub fn subscription_at(&self, root: &str, id: impl Into<String>) -> SubscriptionHandle {
                SubscriptionHandle {
                    client: self.clone(),
                    root: $crate::subscription::SubscriptionRoot::new(self.settings().resolve(root)),
                    id: id.into(),
                    call: $crate::ops::CallOptions::default(),
                }
            }

            /// Sends a webhook callback (7.1) for `notification`: `acks` (progress per stream) and
            /// `done` (finish the wake and release the lease). A stale wake answers
            /// [`SubscriptionErrorKind::Fenced`]($crate::subscription::SubscriptionErrorKind::Fenced).
            pub $($async)? fn send_callback(
                &self,
                notification: &$crate::subscription::WakeNotification,
                acks: Vec<$crate::subscription::Ack>,
                done: bool,
            ) -> Result<$crate::subscription::AckOutcome, $crate::subscription::SubscriptionError> {
                let op = $crate::driver::subscription::SendCallback {
                    url: notification.callback_url.clone(),
                    token: notification.callback_token.clone(),
                    ack: $crate::subscription::AckBody {
                        wake_id: notification.wake_id.clone(),
                        generation: notification.generation,
                        acks,
                        done,
                    },
                };
                self.run_subscription(op, &$crate::ops::CallOptions::default())$(.$await)?
            }
        }

        /// A handle to one subscription. Cheap to clone.
        #[derive(Debug, Clone)]
        pub struct SubscriptionHandle {
            client: Client,
            root: Result<$crate::subscription::SubscriptionRoot, $crate::subscription::SubscriptionError>,
            id: String,
            call: $crate::ops::CallOptions,
        }

        impl SubscriptionHandle {
            /// The subscription id.
            pub fn id(&self) -> &str {
                &self.id
            }

            /// The stream root (an error when the client's base URL and the root make no URL).
            pub fn root(&self) -> Result<&$crate::subscription::SubscriptionRoot, $crate::subscription::SubscriptionError> {
                self.root.as_ref().map_err(Clone::clone)
            }

            /// The same handle with per-call options (headers, timeout, retry policy).
            pub fn with_options(&self, call: $crate::ops::CallOptions) -> SubscriptionHandle {
                SubscriptionHandle {
                    call,
                    ..self.clone()
                }
            }

            $($async)? fn run<O: $crate::driver::subscription::SubscriptionOneShot>(&self, op: O) -> Result<O::Output, $crate::subscription::SubscriptionError> {
                self.client.run_subscription(op, &self.call)$(.$await)?
            }

            /// Creates the subscription, or re-confirms it with an identical configuration
            /// (`created: false`); another configuration is
            /// [`ConfigConflict`]($crate::subscription::SubscriptionErrorKind::ConfigConflict).
            pub $($async)? fn create(&self, config: $crate::subscription::SubscriptionConfig) -> Result<$crate::subscription::Confirmed, $crate::subscription::SubscriptionError> {
                let root = self.root()?.clone();
                let id = self.id.clone();
                self.run($crate::driver::subscription::CreateSubscription { root, id, config })$(.$await)?
            }

            /// Reads the subscription.
            pub $($async)? fn get(&self) -> Result<$crate::subscription::Subscription, $crate::subscription::SubscriptionError> {
                let (root, id) = (self.root()?.clone(), self.id.clone());
                self.run($crate::driver::subscription::GetSubscription { root, id })$(.$await)?
            }

            /// The machine of a pull-wake worker with `options`, seeded from the client; without
            /// [`WorkerOptions::wake_stream`]($crate::driver::subscription::WorkerOptions::wake_stream)
            /// the subscription is read first to learn its wake stream.
            $($async)? fn worker_machine(
                &self,
                options: &$crate::driver::subscription::WorkerOptions,
            ) -> Result<$crate::subscription::Worker, $crate::subscription::SubscriptionError> {
                let subscription = match options.needs_subscription() {
                    true => Some(self.get()$(.$await)??),
                    false => None,
                };
                options.machine(
                    self.root()?.clone(),
                    &self.id,
                    subscription.as_ref(),
                    self.client.extras(&self.call),
                    self.client.next_seed(),
                    $now(),
                )
            }

            /// Deletes the subscription.
            pub $($async)? fn delete(&self) -> Result<(), $crate::subscription::SubscriptionError> {
                let (root, id) = (self.root()?.clone(), self.id.clone());
                self.run($crate::driver::subscription::DeleteSubscription { root, id })$(.$await)?
            }

            /// Links explicit streams (stream-root-relative paths).
            pub $($async)? fn add_streams<S: AsRef<str>>(&self, paths: &[S]) -> Result<(), $crate::subscription::SubscriptionError> {
                let (root, id) = (self.root()?.clone(), self.id.clone());
                let streams = paths.iter().map(|p| p.as_ref().to_owned()).collect();
                self.run($crate::driver::subscription::AddStreams { root, id, streams })$(.$await)?
            }

            /// Removes one explicit link (a matching pattern still links the stream).
            pub $($async)? fn remove_stream(&self, path: &str) -> Result<(), $crate::subscription::SubscriptionError> {
                let (root, id) = (self.root()?.clone(), self.id.clone());
                let path = path.to_owned();
                self.run($crate::driver::subscription::RemoveStream { root, id, path })$(.$await)?
            }

            /// The stream root's JWKS (the keys webhooks are signed with).
            pub $($async)? fn jwks(&self) -> Result<$crate::subscription::Jwks, $crate::subscription::SubscriptionError> {
                let url = self.root()?.jwks_url();
                self.run($crate::driver::subscription::FetchJwks { url })$(.$await)?
            }

            /// A verifier of this stream root's webhooks ([`Client::webhook_verifier`] of its JWKS).
            pub fn webhook_verifier(&self) -> Result<WebhookVerifier, $crate::subscription::SubscriptionError> {
                Ok(self.client.webhook_verifier(&self.root()?.jwks_url()))
            }
        }

        /// Verifies webhook requests (PROTOCOL.md 7.1, 12.10) with a JWKS fetched and cached
        /// through the client: an unknown `kid` refetches the key set once (bounded by
        /// ds-proto's [`JwksCache`]($crate::subscription::JwksCache)). Share it between threads
        /// or tasks (`Arc`).
        #[derive(Debug)]
        pub struct WebhookVerifier {
            client: Client,
            jwks_url: String,
            cache: ::std::sync::Mutex<$crate::subscription::JwksCache>,
        }

        impl Client {
            /// A verifier of webhooks signed with the keys at `jwks_url` (the stream root's
            /// `__ds/jwks.json`, or a subscription's `webhook.signing.jwks_url`), fetched
            /// through this client.
            pub fn webhook_verifier(&self, jwks_url: &str) -> WebhookVerifier {
                WebhookVerifier {
                    client: self.clone(),
                    jwks_url: self.settings().resolve(jwks_url),
                    cache: ::std::sync::Mutex::new($crate::driver::subscription::verifier_cache()),
                }
            }
        }

        impl WebhookVerifier {
            fn lock(&self) -> ::std::sync::MutexGuard<'_, $crate::subscription::JwksCache> {
                // A poisoned lock is harmless: the cache's state is always valid.
                self.cache
                    .lock()
                    .unwrap_or_else(::std::sync::PoisonError::into_inner)
            }

            /// Like [`WebhookVerifier::verify`], at Unix time `unix_now` (seconds).
            pub $($async)? fn verify_at(
                &self,
                headers: &::http::HeaderMap,
                body: &[u8],
                unix_now: u64,
            ) -> Result<$crate::subscription::VerifiedWebhook, $crate::driver::subscription::WebhookError>
            {
                use $crate::driver::subscription::{CheckStep, WebhookCheck};
                let mut check = WebhookCheck::new(headers, body, unix_now);
                loop {
                    // The cache is locked for the step alone, not across the fetch.
                    let step = check.step(&mut self.lock(), &self.jwks_url, $now());
                    match step {
                        CheckStep::Done(verdict) => return verdict,
                        CheckStep::Fetch(op) => {
                            let call = $crate::ops::CallOptions::default();
                            let fetched = self.client.run_subscription(op, &call) $(.$await)?;
                            check.fetched(&mut self.lock(), fetched, $now())?;
                        }
                    }
                }
            }

            /// Verifies a request's `Webhook-Signature` header against its raw body, with the
            /// system clock's Unix time.
            pub $($async)? fn verify(
                &self,
                headers: &::http::HeaderMap,
                body: &[u8],
            ) -> Result<$crate::subscription::VerifiedWebhook, $crate::driver::subscription::WebhookError>
            {
                self.verify_at(headers, body, unix_now()) $(.$await)?
            }

            /// Verifies the request and parses its
            /// [`WakeNotification`]($crate::subscription::WakeNotification), checking it is
            /// for `subscription_id`.
            pub $($async)? fn notification(
                &self,
                headers: &::http::HeaderMap,
                body: &[u8],
                subscription_id: &str,
            ) -> Result<$crate::subscription::WakeNotification, $crate::driver::subscription::WebhookError>
            {
                self.verify(headers, body) $(.$await)??;
                Ok($crate::subscription::WakeNotification::parse_for(body, subscription_id)?)
            }
        }

        /// The response body that finishes a webhook synchronously: `{"done":true}`.
        pub fn webhook_done_body() -> ::bytes::Bytes {
            $crate::subscription::webhook_done_body()
        }

        /// The system clock's Unix time in seconds (the replay window's clock).
        #[allow(clippy::disallowed_methods)] // the driver owns the clock
        fn unix_now() -> u64 {
            ::std::time::SystemTime::now()
                .duration_since(::std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        }
    };
}
