//! One synchronous face over both drivers, so a scenario is written once and run through
//! `ds-tokio` and `ds-blocking` alike.

use bytes::Bytes;
use ds_proto::driver::read_all::ReadAll;
use ds_proto::ops::{
    AppendOptions, Appended, CallOptions, Closed, CreateOptions, Created, ProducerHeaders,
    ReadOptions, ReadResult, RequestExtras, StreamInfo,
};
use ds_proto::reader::{Chunk, ReadMode, ReaderConfig, ReaderEvent};
use ds_proto::{Error, Offset, RetryPolicy};
use std::sync::Arc;

/// Which driver a test runs through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    /// `ds-tokio` (hyper), run on a private multi-threaded runtime.
    Tokio,
    /// `ds-blocking` (ureq).
    Blocking,
}

impl DriverKind {
    /// Both drivers.
    pub const ALL: [DriverKind; 2] = [DriverKind::Tokio, DriverKind::Blocking];

    /// The driver named by `DS_DRIVER` (`tokio`, the default, or `blocking`).
    pub fn from_env() -> DriverKind {
        match std::env::var("DS_DRIVER").as_deref() {
            Ok("blocking") => DriverKind::Blocking,
            _ => DriverKind::Tokio,
        }
    }
}

/// Client settings shared by both drivers in tests.
#[derive(Clone, Default)]
pub struct ClientSettings {
    /// The retry policy (the driver default when `None`).
    pub retry: Option<RetryPolicy>,
    /// Headers sent with every request.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// A per-request provider.
    pub provider: Option<Arc<dyn Fn() -> RequestExtras + Send + Sync>>,
    /// Per-attempt timeout.
    pub request_timeout: Option<std::time::Duration>,
    /// Connect timeout (the driver default when `None`).
    pub connect_timeout: Option<std::time::Duration>,
    /// The largest buffered response body (the driver default when `None`).
    pub max_response_bytes: Option<usize>,
    /// Header names marked as credentials (`ClientBuilder::sensitive_header`).
    pub sensitive_headers: Vec<http::HeaderName>,
    /// Extra trusted root certificates, DER or PEM (`ClientBuilder::add_root_certificate`).
    pub root_certificates: Vec<Vec<u8>>,
    /// Whether the bundled webpki roots are trusted (the driver default when `None`).
    pub built_in_roots: Option<bool>,
    /// The server's long-poll wait (`ClientBuilder::long_poll_wait`).
    pub long_poll_wait: Option<std::time::Duration>,
    /// The SSE idle timeout of readers (`ClientBuilder::sse_idle_timeout`).
    pub sse_idle_timeout: Option<std::time::Duration>,
}

impl std::fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSettings")
            .field("retry", &self.retry)
            .field("provider", &self.provider.is_some())
            .finish_non_exhaustive()
    }
}

/// A client of either driver.
#[derive(Debug, Clone)]
pub enum AnyClient {
    /// A tokio client and the runtime its futures run on.
    Tokio(Arc<tokio::runtime::Runtime>, ds_tokio::Client),
    /// A blocking client.
    Blocking(ds_blocking::Client),
}

impl AnyClient {
    /// A client of `kind` for `base_url` with default settings.
    pub fn new(kind: DriverKind, base_url: &str) -> AnyClient {
        AnyClient::with_settings(kind, base_url, ClientSettings::default())
    }

    /// A client of `kind` for `base_url`.
    pub fn with_settings(kind: DriverKind, base_url: &str, s: ClientSettings) -> AnyClient {
        macro_rules! configure {
            ($b:expr) => {{
                let mut b = $b.base_url(base_url);
                if let Some(r) = s.retry.clone() {
                    b = b.retry_policy(r);
                }
                for (k, v) in s.headers.clone() {
                    b = b.header(k, v);
                }
                if let Some(p) = s.provider.clone() {
                    b = b.extras_provider(move || p());
                }
                if s.request_timeout.is_some() {
                    b = b.request_timeout(s.request_timeout);
                }
                if s.connect_timeout.is_some() {
                    b = b.connect_timeout(s.connect_timeout);
                }
                if let Some(n) = s.max_response_bytes {
                    b = b.max_response_bytes(n);
                }
                for name in s.sensitive_headers.clone() {
                    b = b.sensitive_header(name);
                }
                for cert in &s.root_certificates {
                    b = b.add_root_certificate(cert);
                }
                if let Some(on) = s.built_in_roots {
                    b = b.tls_built_in_roots(on);
                }
                if let Some(w) = s.long_poll_wait {
                    b = b.long_poll_wait(w);
                }
                if s.sse_idle_timeout.is_some() {
                    b = b.sse_idle_timeout(s.sse_idle_timeout);
                }
                b.build().expect("valid client settings")
            }};
        }
        match kind {
            DriverKind::Tokio => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                let client = {
                    let _guard = rt.enter();
                    configure!(ds_tokio::Client::builder())
                };
                AnyClient::Tokio(Arc::new(rt), client)
            }
            DriverKind::Blocking => AnyClient::Blocking(configure!(ds_blocking::Client::builder())),
        }
    }

    /// The driver.
    pub fn kind(&self) -> DriverKind {
        match self {
            AnyClient::Tokio(..) => DriverKind::Tokio,
            AnyClient::Blocking(_) => DriverKind::Blocking,
        }
    }

    /// A handle to the stream at `path_or_url`.
    pub fn stream(&self, path_or_url: &str) -> AnyStream {
        match self {
            AnyClient::Tokio(rt, c) => AnyStream::Tokio(rt.clone(), c.stream(path_or_url)),
            AnyClient::Blocking(c) => AnyStream::Blocking(c.stream(path_or_url)),
        }
    }
}

/// A stream handle of either driver, with synchronous methods.
#[derive(Debug, Clone)]
pub enum AnyStream {
    /// A tokio handle and its runtime.
    Tokio(Arc<tokio::runtime::Runtime>, ds_tokio::StreamHandle),
    /// A blocking handle.
    Blocking(ds_blocking::StreamHandle),
}

macro_rules! both {
    ($self:ident, $h:ident => $call:expr) => {
        match $self {
            AnyStream::Tokio(rt, $h) => rt.block_on(async { $call.await }),
            AnyStream::Blocking($h) => $call,
        }
    };
}

impl AnyStream {
    /// The stream URL.
    pub fn url(&self) -> &str {
        match self {
            AnyStream::Tokio(_, h) => h.url(),
            AnyStream::Blocking(h) => h.url(),
        }
    }

    /// The runtime of a tokio handle.
    pub fn runtime(&self) -> Option<&Arc<tokio::runtime::Runtime>> {
        match self {
            AnyStream::Tokio(rt, _) => Some(rt),
            AnyStream::Blocking(_) => None,
        }
    }

    /// The same stream with per-call options.
    pub fn with_options(&self, call: CallOptions) -> AnyStream {
        match self {
            AnyStream::Tokio(rt, h) => AnyStream::Tokio(rt.clone(), h.with_options(call)),
            AnyStream::Blocking(h) => AnyStream::Blocking(h.with_options(call)),
        }
    }

    /// The content type appends use (set, or learned from create, head and reads).
    pub fn content_type(&self) -> Option<String> {
        match self {
            AnyStream::Tokio(_, h) => h.content_type(),
            AnyStream::Blocking(h) => h.content_type(),
        }
    }

    /// Sets the content type appends use.
    pub fn set_content_type(&self, ct: &str) {
        match self {
            AnyStream::Tokio(_, h) => h.set_content_type(ct),
            AnyStream::Blocking(h) => h.set_content_type(ct),
        }
    }

    /// `create`.
    pub fn create(&self, opts: CreateOptions) -> Result<Created, Error> {
        both!(self, h => h.create(opts))
    }

    /// `append`.
    pub fn append(&self, body: impl Into<Bytes>) -> Result<Appended, Error> {
        let body = body.into();
        both!(self, h => h.append(body))
    }

    /// `append_with`.
    pub fn append_with(
        &self,
        body: impl Into<Bytes>,
        opts: AppendOptions,
    ) -> Result<Appended, Error> {
        let body = body.into();
        both!(self, h => h.append_with(body, opts))
    }

    /// `append_json`.
    pub fn append_json(&self, v: &serde_json::Value) -> Result<Appended, Error> {
        both!(self, h => h.append_json(v))
    }

    /// `close`.
    pub fn close(&self) -> Result<Closed, Error> {
        both!(self, h => h.close())
    }

    /// `close_with`.
    pub fn close_with(&self, p: Option<ProducerHeaders>) -> Result<Closed, Error> {
        both!(self, h => h.close_with(p))
    }

    /// `head`.
    pub fn head(&self) -> Result<StreamInfo, Error> {
        both!(self, h => h.head())
    }

    /// `delete`.
    pub fn delete(&self) -> Result<(), Error> {
        both!(self, h => h.delete())
    }

    /// `read` (one request).
    pub fn read(&self, opts: ReadOptions) -> Result<ReadResult, Error> {
        both!(self, h => h.read(opts))
    }
}

impl AnyStream {
    /// `read_all`.
    pub fn read_all(&self) -> Result<ReadAll, Error> {
        both!(self, h => h.read_all())
    }

    /// `read_all_from`.
    pub fn read_all_from(&self, offset: Offset) -> Result<ReadAll, Error> {
        both!(self, h => h.read_all_from(offset))
    }

    /// `read_json`.
    pub fn read_json(&self) -> Result<Vec<serde_json::Value>, Error> {
        both!(self, h => h.read_json::<serde_json::Value>())
    }

    /// A reader from `offset` in `mode`.
    pub fn reader(&self, offset: Offset, mode: ReadMode) -> Result<AnyReader, Error> {
        match self {
            AnyStream::Tokio(rt, h) => {
                let _g = rt.enter();
                Ok(AnyReader::Tokio(rt.clone(), h.reader(offset, mode)?))
            }
            AnyStream::Blocking(h) => Ok(AnyReader::Blocking(h.reader(offset, mode)?)),
        }
    }

    /// The reader configuration `reader` starts from (the client's reader defaults).
    pub fn reader_config(&self) -> ReaderConfig {
        match self {
            AnyStream::Tokio(_, h) => h.reader_config(),
            AnyStream::Blocking(h) => h.reader_config(),
        }
    }

    /// A reader with a full configuration.
    pub fn reader_with(&self, config: ReaderConfig) -> Result<AnyReader, Error> {
        match self {
            AnyStream::Tokio(rt, h) => {
                let _g = rt.enter();
                Ok(AnyReader::Tokio(rt.clone(), h.reader_with(config)?))
            }
            AnyStream::Blocking(h) => Ok(AnyReader::Blocking(h.reader_with(config)?)),
        }
    }
}

/// A reader of either driver, with synchronous methods.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // test helper; the size of a reader does not matter here
pub enum AnyReader {
    /// A tokio reader and its runtime.
    Tokio(Arc<tokio::runtime::Runtime>, ds_tokio::Reader),
    /// A blocking reader.
    Blocking(ds_blocking::Reader),
}

impl AnyReader {
    /// The next raw event.
    pub fn next_event(&mut self) -> Option<ReaderEvent> {
        match self {
            AnyReader::Tokio(rt, r) => rt.block_on(r.next_event()),
            AnyReader::Blocking(r) => r.next_event(),
        }
    }

    /// The next data chunk.
    pub fn next_chunk(&mut self) -> Option<Result<Chunk, Error>> {
        match self {
            AnyReader::Tokio(rt, r) => rt.block_on(r.next_chunk()),
            AnyReader::Blocking(r) => r.next_chunk(),
        }
    }

    /// The checkpoint offset.
    pub fn offset(&self) -> Offset {
        match self {
            AnyReader::Tokio(_, r) => r.offset().clone(),
            AnyReader::Blocking(r) => r.offset().clone(),
        }
    }

    /// Whether EOF was seen.
    pub fn is_eof(&self) -> bool {
        match self {
            AnyReader::Tokio(_, r) => r.is_eof(),
            AnyReader::Blocking(r) => r.is_eof(),
        }
    }

    /// Whether the reader is at the stream's tail.
    pub fn is_up_to_date(&self) -> bool {
        match self {
            AnyReader::Tokio(_, r) => r.is_up_to_date(),
            AnyReader::Blocking(r) => r.is_up_to_date(),
        }
    }

    /// The HTTP status of the latest response the reader received.
    pub fn last_status(&self) -> Option<u16> {
        match self {
            AnyReader::Tokio(_, r) => r.last_status(),
            AnyReader::Blocking(r) => r.last_status(),
        }
    }

    /// The next raw event, waiting at most until `deadline`: `Err(DeadlinePassed)` when it
    /// passed first. The tokio reader's pending step survives the timeout; the blocking reader
    /// is stopped by it (through its [`ds_blocking::ReaderStopper`]), so a timed-out reader
    /// is finished.
    pub fn next_event_until(
        &mut self,
        deadline: std::time::Instant,
    ) -> Result<Option<ReaderEvent>, DeadlinePassed> {
        if std::time::Instant::now() >= deadline {
            return Err(DeadlinePassed);
        }
        match self {
            AnyReader::Tokio(rt, r) => rt.block_on(async {
                tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), r.next_event())
                    .await
                    .map_err(|_| DeadlinePassed)
            }),
            AnyReader::Blocking(r) => {
                let stopper = r.stopper();
                let (done, wait) = std::sync::mpsc::channel::<()>();
                let timer = std::thread::spawn(move || {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(left)
                    {
                        stopper.stop();
                    }
                });
                let event = r.next_event();
                drop(done);
                let _ = timer.join();
                match event {
                    None if std::time::Instant::now() >= deadline => Err(DeadlinePassed),
                    other => Ok(other),
                }
            }
        }
    }
}

/// [`AnyReader::next_event_until`]: the deadline passed before the next event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlinePassed;

/// A writer of either driver, with synchronous methods.
#[derive(Debug)]
pub enum AnyWriter {
    /// A tokio writer and its runtime.
    Tokio(Arc<tokio::runtime::Runtime>, ds_tokio::Writer),
    /// A blocking writer.
    Blocking(ds_blocking::Writer),
}

impl AnyStream {
    /// A writer with every producer setting chosen.
    pub fn writer_with(
        &self,
        config: ds_proto::producer::ProducerConfig,
    ) -> Result<AnyWriter, Error> {
        match self {
            AnyStream::Tokio(rt, h) => {
                let _g = rt.enter();
                Ok(AnyWriter::Tokio(rt.clone(), h.writer_with(config)?))
            }
            AnyStream::Blocking(h) => Ok(AnyWriter::Blocking(h.writer_with(config)?)),
        }
    }

    /// A writer with the producer defaults.
    pub fn writer(&self, producer_id: &str) -> Result<AnyWriter, Error> {
        match self {
            AnyStream::Tokio(rt, h) => {
                let _g = rt.enter();
                Ok(AnyWriter::Tokio(rt.clone(), h.writer(producer_id)?))
            }
            AnyStream::Blocking(h) => Ok(AnyWriter::Blocking(h.writer(producer_id)?)),
        }
    }
}

impl AnyWriter {
    /// Appends, waiting for room.
    pub fn append(
        &self,
        data: impl Into<Bytes>,
    ) -> Result<ds_proto::producer::AppendId, ds_proto::producer::AppendError> {
        let data = data.into();
        match self {
            AnyWriter::Tokio(rt, w) => rt.block_on(w.append(data)),
            AnyWriter::Blocking(w) => w.append(data),
        }
    }

    /// Appends without waiting.
    pub fn try_append(
        &self,
        data: impl Into<Bytes>,
    ) -> Result<ds_proto::producer::AppendId, ds_proto::producer::AppendError> {
        match self {
            AnyWriter::Tokio(_, w) => w.try_append(data),
            AnyWriter::Blocking(w) => w.try_append(data),
        }
    }

    /// Appends a JSON value.
    pub fn append_json(
        &self,
        v: &serde_json::Value,
    ) -> Result<ds_proto::producer::AppendId, ds_proto::producer::AppendError> {
        match self {
            AnyWriter::Tokio(rt, w) => rt.block_on(w.append_json(v)),
            AnyWriter::Blocking(w) => w.append_json(v),
        }
    }

    /// Appends and waits for this append's outcome.
    pub fn append_and_wait(
        &self,
        data: impl Into<Bytes>,
    ) -> Result<
        Option<ds_proto::driver::write_tracker::WriteOutcome>,
        ds_proto::producer::AppendError,
    > {
        let data = data.into();
        match self {
            AnyWriter::Tokio(rt, w) => rt.block_on(async {
                let h = w.append_tracked(data).await?;
                w.flush().await.ok();
                Ok(h.outcome().await)
            }),
            AnyWriter::Blocking(w) => {
                let h = w.append_tracked(data)?;
                w.flush().ok();
                Ok(h.outcome())
            }
        }
    }

    /// Flushes.
    pub fn flush(&self) -> Result<(), Vec<ds_proto::driver::write_tracker::WriteFailure>> {
        match self {
            AnyWriter::Tokio(rt, w) => rt.block_on(w.flush()).map_err(|e| e.failures),
            AnyWriter::Blocking(w) => w.flush().map_err(|e| e.failures),
        }
    }

    /// Closes the writer (and the stream when asked); the final offset.
    pub fn close(
        self,
        close_stream: bool,
    ) -> Result<Option<Offset>, ds_proto::driver::writer::FlushError> {
        match self {
            AnyWriter::Tokio(rt, w) => rt.block_on(w.close(close_stream)).map(|r| r.offset),
            AnyWriter::Blocking(w) => w.close(close_stream).map(|r| r.offset),
        }
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        match self {
            AnyWriter::Tokio(_, w) => w.epoch(),
            AnyWriter::Blocking(w) => w.epoch(),
        }
    }
}

// ----- durable state (snapshots) -----

impl AnyStream {
    /// A writer continuing from a producer snapshot (`writer_from_snapshot`).
    pub fn writer_from_snapshot(
        &self,
        snapshot: ds_proto::producer::ProducerSnapshot,
    ) -> Result<AnyWriter, Error> {
        match self {
            AnyStream::Tokio(rt, h) => {
                let _g = rt.enter();
                Ok(AnyWriter::Tokio(
                    rt.clone(),
                    h.writer_from_snapshot(snapshot)?,
                ))
            }
            AnyStream::Blocking(h) => Ok(AnyWriter::Blocking(h.writer_from_snapshot(snapshot)?)),
        }
    }

    /// A reader continuing from a reader snapshot (`reader_from_snapshot`).
    pub fn reader_from_snapshot(
        &self,
        snapshot: ds_proto::reader::ReaderSnapshot,
    ) -> Result<AnyReader, Error> {
        match self {
            AnyStream::Tokio(rt, h) => {
                let _g = rt.enter();
                Ok(AnyReader::Tokio(
                    rt.clone(),
                    h.reader_from_snapshot(snapshot)?,
                ))
            }
            AnyStream::Blocking(h) => Ok(AnyReader::Blocking(h.reader_from_snapshot(snapshot)?)),
        }
    }
}

impl AnyWriter {
    /// The writer's producer snapshot now.
    pub fn snapshot(&self) -> ds_proto::producer::ProducerSnapshot {
        match self {
            AnyWriter::Tokio(_, w) => w.snapshot(),
            AnyWriter::Blocking(w) => w.snapshot(),
        }
    }

    /// Sets the snapshot callback (called at once, before new batches are sent, and after
    /// every acknowledgement).
    pub fn on_snapshot(
        &self,
        callback: impl Fn(&ds_proto::producer::ProducerSnapshot) + Send + Sync + 'static,
    ) {
        match self {
            AnyWriter::Tokio(_, w) => w.on_snapshot(callback),
            AnyWriter::Blocking(w) => w.on_snapshot(callback),
        }
    }
}

impl AnyReader {
    /// The reader's snapshot (what it has handed out).
    pub fn snapshot(&self) -> ds_proto::reader::ReaderSnapshot {
        match self {
            AnyReader::Tokio(_, r) => r.snapshot(),
            AnyReader::Blocking(r) => r.snapshot(),
        }
    }
}

// ----- subscriptions -----

use ds_proto::subscription::{
    Ack, AckOutcome, Batch, Confirmed, Jwks, Subscription, SubscriptionConfig, SubscriptionError,
    VerifiedWebhook, WakeNotification, WorkerEvent,
};

/// A batch handler shared by both drivers' workers: `Ok` acks the batch.
pub type BatchFn = Arc<dyn Fn(&Batch) -> Result<(), String> + Send + Sync>;
/// Sees a worker's other events.
pub type EventFn = Arc<dyn Fn(&WorkerEvent) + Send + Sync>;

/// The handler both drivers' workers run in tests.
#[derive(Clone)]
pub struct FnHandler {
    batch: BatchFn,
    event: EventFn,
}

impl std::fmt::Debug for FnHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnHandler").finish_non_exhaustive()
    }
}

impl FnHandler {
    /// A handler of `batch` and `event`.
    pub fn new(batch: BatchFn, event: EventFn) -> FnHandler {
        FnHandler { batch, event }
    }
}

impl ds_tokio::WorkerHandler for FnHandler {
    type Error = String;
    async fn handle_batch(&mut self, batch: &Batch) -> Result<(), String> {
        (self.batch)(batch)
    }
    fn on_event(&mut self, event: &WorkerEvent) {
        (self.event)(event)
    }
}

impl ds_blocking::WorkerHandler for FnHandler {
    type Error = String;
    fn handle_batch(&mut self, batch: &Batch) -> Result<(), String> {
        (self.batch)(batch)
    }
    fn on_event(&mut self, event: &WorkerEvent) {
        (self.event)(event)
    }
}

impl AnyClient {
    /// A handle to subscription `id` under `<base>/v1/stream`.
    pub fn subscription(&self, id: &str) -> AnySubscription {
        match self {
            AnyClient::Tokio(rt, c) => AnySubscription::Tokio(rt.clone(), c.subscription(id)),
            AnyClient::Blocking(c) => AnySubscription::Blocking(c.subscription(id)),
        }
    }

    /// Sends a webhook callback.
    pub fn send_callback(
        &self,
        n: &WakeNotification,
        acks: Vec<Ack>,
        done: bool,
    ) -> Result<AckOutcome, SubscriptionError> {
        match self {
            AnyClient::Tokio(rt, c) => rt.block_on(c.send_callback(n, acks, done)),
            AnyClient::Blocking(c) => c.send_callback(n, acks, done),
        }
    }
}

/// A subscription handle of either driver.
#[derive(Debug, Clone)]
pub enum AnySubscription {
    /// tokio.
    Tokio(Arc<tokio::runtime::Runtime>, ds_tokio::SubscriptionHandle),
    /// blocking.
    Blocking(ds_blocking::SubscriptionHandle),
}

macro_rules! both_sub {
    ($self:ident, $h:ident => $call:expr) => {
        match $self {
            AnySubscription::Tokio(rt, $h) => rt.block_on(async { $call.await }),
            AnySubscription::Blocking($h) => $call,
        }
    };
}

impl AnySubscription {
    /// Create or re-confirm.
    pub fn create(&self, c: SubscriptionConfig) -> Result<Confirmed, SubscriptionError> {
        both_sub!(self, h => h.create(c.clone()))
    }
    /// Read.
    pub fn get(&self) -> Result<Subscription, SubscriptionError> {
        both_sub!(self, h => h.get())
    }
    /// Delete.
    pub fn delete(&self) -> Result<(), SubscriptionError> {
        both_sub!(self, h => h.delete())
    }
    /// Add explicit streams.
    pub fn add_streams(&self, paths: &[&str]) -> Result<(), SubscriptionError> {
        both_sub!(self, h => h.add_streams(paths))
    }
    /// Remove one explicit stream.
    pub fn remove_stream(&self, path: &str) -> Result<(), SubscriptionError> {
        both_sub!(self, h => h.remove_stream(path))
    }
    /// The JWKS.
    pub fn jwks(&self) -> Result<Jwks, SubscriptionError> {
        both_sub!(self, h => h.jwks())
    }
    /// A webhook verifier of the stream root's JWKS.
    pub fn verifier(&self) -> AnyVerifier {
        match self {
            AnySubscription::Tokio(rt, h) => {
                AnyVerifier::Tokio(rt.clone(), Arc::new(h.webhook_verifier().unwrap()))
            }
            AnySubscription::Blocking(h) => {
                AnyVerifier::Blocking(Arc::new(h.webhook_verifier().unwrap()))
            }
        }
    }
    /// Starts a worker.
    pub fn work(
        &self,
        options: ds_proto::driver::subscription::WorkerOptions,
        handler: FnHandler,
    ) -> Result<AnyWorker, SubscriptionError> {
        match self {
            AnySubscription::Tokio(rt, h) => {
                let w = rt.block_on(h.work(options, handler))?;
                Ok(AnyWorker::Tokio(rt.clone(), Some(w)))
            }
            AnySubscription::Blocking(h) => {
                Ok(AnyWorker::Blocking(Some(h.work(options, handler)?)))
            }
        }
    }
}

/// A running worker of either driver.
#[derive(Debug)]
pub enum AnyWorker {
    /// tokio.
    Tokio(Arc<tokio::runtime::Runtime>, Option<ds_tokio::WorkerHandle>),
    /// blocking.
    Blocking(Option<ds_blocking::WorkerHandle>),
}

impl AnyWorker {
    /// Stops gracefully and waits; `true` when it stopped (rather than failed).
    pub fn shutdown(mut self) -> bool {
        match &mut self {
            AnyWorker::Tokio(rt, w) => matches!(
                rt.block_on(w.take().unwrap().shutdown()),
                ds_tokio::WorkerExit::Stopped
            ),
            AnyWorker::Blocking(w) => matches!(
                w.take().unwrap().shutdown(),
                ds_blocking::WorkerExit::Stopped
            ),
        }
    }
    /// Kills it as a crash would: nothing more is sent.
    pub fn abort(mut self) {
        match &mut self {
            AnyWorker::Tokio(_, w) => w.take().unwrap().abort(),
            AnyWorker::Blocking(w) => w.take().unwrap().abort(),
        }
    }
}

/// A webhook verifier of either driver.
#[derive(Debug, Clone)]
pub enum AnyVerifier {
    /// tokio.
    Tokio(Arc<tokio::runtime::Runtime>, Arc<ds_tokio::WebhookVerifier>),
    /// blocking.
    Blocking(Arc<ds_blocking::WebhookVerifier>),
}

impl AnyVerifier {
    /// Verifies at Unix time `unix_now`.
    pub fn verify_at(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        unix_now: u64,
    ) -> Result<VerifiedWebhook, ds_proto::driver::subscription::WebhookError> {
        match self {
            AnyVerifier::Tokio(rt, v) => rt.block_on(v.verify_at(headers, body, unix_now)),
            AnyVerifier::Blocking(v) => v.verify_at(headers, body, unix_now),
        }
    }
}
