//! The adapter: protocol commands translated into calls on the public API of `ds-tokio` or
//! `ds-blocking` (through [`crate::drivers`]), and the outcomes translated back into replies.
//!
//! Nothing here makes a protocol decision: retries, offsets, batching, fencing, JSON framing,
//! SSE parsing and error classification are the client's. The adapter only
//!
//! - chooses client settings (a bounded retry policy that also retries plain appends, so
//!   every command answers within seconds, as the suite expects of a client),
//! - keeps the objects a conformance client keeps between commands: one stream handle per path
//!   (which remembers the stream's content type), one idempotent producer per
//!   `(path, producerId, epoch)`, and the dynamic headers and parameters, which it hands the
//!   client as its per-request extras provider,
//! - collects a `read` for at most `timeoutMs`, stopping at `maxChunks` chunks, at
//!   up-to-date when `waitForUpToDate`, or at EOF,
//! - maps results and errors to the protocol's fields and error codes.
//!
//! The same [`Adapter`] serves the in-process conformance runner and the
//! `ds-conformance-adapter` binary.

use super::protocol::*;
use crate::drivers::{AnyClient, AnyStream, AnyWriter, ClientSettings, DeadlinePassed, DriverKind};
use base64::Engine as _;
use bytes::Bytes;
use ds_proto::driver::write_tracker::{WriteFailure, WriteOutcome};
use ds_proto::driver::writer::FlushError;
use ds_proto::ops::{AppendOptions, AppendOutcome, CallOptions, CreateOptions, RequestExtras};
use ds_proto::producer::{AppendError, FailureReason, ProducerConfig, DEFAULT_CONTENT_TYPE};
use ds_proto::reader::{Chunk, ReadMode, ReaderConfig, ReaderEvent};
use ds_proto::retry::RetryPolicyError;
use ds_proto::{
    ConflictKind, Error, ErrorKind, Offset, Operation, RetryPolicy, TransportErrorKind,
};
use http::{HeaderName, HeaderValue};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a `read` collects when the command does not say.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_millis(5000);
/// How many chunks a `read` collects when the command does not say.
pub const DEFAULT_MAX_CHUNKS: u64 = 100;

/// The retry policy of every operation the adapter performs: the client's backoff (100 ms
/// doubling, capped at 1 s), at most 10 attempts within 4 s, and plain appends retried too (the
/// suite expects appends to survive a 5xx). Bounded, so a command always answers, and bounded
/// below the reads' default 5 s wait, so persistent failures surface as errors rather than as
/// a read that timed out (`retry-exhaustion-fails` was flaky with a 15 s budget: ten jittered
/// delays can add up to 6.5 s).
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        multiplier: 2.0,
        max_attempts: Some(10),
        max_elapsed: Some(Duration::from_secs(4)),
        retry_appends: true,
    }
}

/// Translates protocol commands into client calls. Create one per runner session; `init`
/// (re)starts it.
#[derive(Debug)]
pub struct Adapter {
    driver: DriverKind,
    session: Option<Session>,
    shut_down: bool,
}

/// What exists between `init` and the next `init`.
#[derive(Debug)]
struct Session {
    client: AnyClient,
    /// One handle per stream path: it remembers the stream's content type (learned from
    /// create, connect, head and reads).
    streams: HashMap<String, AnyStream>,
    /// The idempotent producers of `idempotent-append`/`-close`, by `(path, producerId, epoch)`.
    producers: HashMap<(String, String, u64), ProducerSlot>,
    dynamic: Arc<Mutex<Dynamic>>,
}

/// A cached idempotent producer.
#[derive(Debug)]
enum ProducerSlot {
    /// Usable.
    Open(AnyWriter),
    /// Closed (its writer is consumed): closing again answers what the close answered.
    Closed(Reply),
}

/// Dynamic headers and parameters, evaluated for every request the client sends.
#[derive(Debug, Default)]
struct Dynamic {
    headers: Vec<DynamicEntry>,
    params: Vec<DynamicEntry>,
    /// Requests that carried dynamic values so far.
    requests: u64,
    /// What the latest such request carried, by the names as configured.
    last_headers: StringMap,
    last_params: StringMap,
}

#[derive(Debug)]
struct DynamicEntry {
    name: String,
    header: Option<HeaderName>,
    value: DynamicValue,
}

#[derive(Debug)]
enum DynamicValue {
    /// Incremented before each use: the first request sends `1`.
    Counter(u64),
    /// Milliseconds since the Unix epoch.
    Timestamp,
    /// A fixed value.
    Token(String),
}

impl DynamicValue {
    fn next(&mut self) -> String {
        match self {
            DynamicValue::Counter(n) => {
                *n += 1;
                n.to_string()
            }
            DynamicValue::Timestamp => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
                .to_string(),
            DynamicValue::Token(t) => t.clone(),
        }
    }
}

impl Dynamic {
    /// The extras of one request (the client calls this once per attempt).
    fn evaluate(&mut self) -> RequestExtras {
        let mut extras = RequestExtras::new();
        if self.headers.is_empty() && self.params.is_empty() {
            return extras;
        }
        self.requests += 1;
        self.last_headers.clear();
        self.last_params.clear();
        for e in &mut self.headers {
            let v = e.value.next();
            if let (Some(name), Ok(value)) = (&e.header, HeaderValue::from_str(&v)) {
                extras.headers.insert(name.clone(), value);
                self.last_headers.insert(e.name.clone(), v);
            }
        }
        for e in &mut self.params {
            let v = e.value.next();
            extras.params.push((e.name.clone(), v.clone()));
            self.last_params.insert(e.name.clone(), v);
        }
        extras
    }

    /// What requests sent after `mark` (a value of `requests`) carried, as reply fields.
    fn sent_since(&self, mark: u64) -> (Option<StringMap>, Option<StringMap>) {
        if self.requests <= mark {
            return (None, None);
        }
        let some = |m: &StringMap| (!m.is_empty()).then(|| m.clone());
        (some(&self.last_headers), some(&self.last_params))
    }
}

fn lock(d: &Mutex<Dynamic>) -> MutexGuard<'_, Dynamic> {
    d.lock().unwrap_or_else(|p| p.into_inner())
}

/// The error reply of a client error: the protocol's code for its kind, and the HTTP status
/// when it was an HTTP answer.
pub fn error_reply(command_type: &str, e: &Error) -> ErrorReply {
    use codes::*;
    let (status, code) = match &e.kind {
        ErrorKind::NotFound => (Some(404), NOT_FOUND),
        ErrorKind::Gone => (Some(410), UNEXPECTED_STATUS),
        ErrorKind::Conflict(ConflictKind::Closed { .. }) => (Some(409), STREAM_CLOSED),
        ErrorKind::Conflict(ConflictKind::SeqRegression) => (Some(409), SEQUENCE_CONFLICT),
        ErrorKind::Conflict(_) => (Some(409), CONFLICT),
        ErrorKind::Fenced { .. } => (Some(403), UNEXPECTED_STATUS),
        ErrorKind::SequenceGap { .. } => (Some(409), SEQUENCE_CONFLICT),
        ErrorKind::RateLimited { .. } => (Some(429), UNEXPECTED_STATUS),
        ErrorKind::PayloadTooLarge => (Some(413), UNEXPECTED_STATUS),
        // The only thing a reader asks of the server that it can refuse is the offset.
        ErrorKind::BadRequest { .. } if e.operation == Operation::Read => {
            (Some(400), INVALID_OFFSET)
        }
        ErrorKind::BadRequest { .. } => (Some(400), UNEXPECTED_STATUS),
        ErrorKind::UnexpectedStatus { status, .. } => (Some(*status), UNEXPECTED_STATUS),
        ErrorKind::Transport(t) if t.kind == TransportErrorKind::Timeout => (None, TIMEOUT),
        ErrorKind::Transport(_) => (None, NETWORK_ERROR),
        ErrorKind::InvalidResponse(_) => (None, PARSE_ERROR),
        ErrorKind::InvalidInput(_) => (None, INVALID_ARGUMENT),
        _ => (None, INTERNAL_ERROR),
    };
    ErrorReply {
        success: false,
        command_type: command_type.to_owned(),
        status,
        error_code: code.to_owned(),
        message: e.to_string(),
        details: Some(serde_json::json!({
            "operation": e.operation.as_str(),
            "url": e.url,
            "kind": format!("{:?}", e.kind),
        })),
    }
}

/// A failed command's reply (boxed: it is large, and travels as an `Err`).
type Failure = Box<ErrorReply>;
/// What a command's handler returns.
type Outcome<T = Reply> = Result<T, Failure>;

fn fail(e: ErrorReply) -> Failure {
    Box::new(e)
}

fn client_error(command_type: &str, e: &Error) -> Failure {
    Box::new(error_reply(command_type, e))
}

fn failure_reply(command_type: &str, failures: &[WriteFailure]) -> Failure {
    reason_reply(command_type, failures.first().map(|f| &f.reason))
}

fn close_failure_reply(command_type: &str, e: &FlushError) -> Failure {
    reason_reply(command_type, e.reason())
}

fn reason_reply(command_type: &str, reason: Option<&FailureReason>) -> Failure {
    match reason {
        Some(reason) => client_error(command_type, reason.error()),
        None => internal(
            command_type,
            "the writer reported a failure without details",
        ),
    }
}

fn append_error_reply(command_type: &str, e: &AppendError) -> Failure {
    match e {
        AppendError::Refused(e) => client_error(command_type, e),
        AppendError::Full { .. } => internal(command_type, "the producer buffer is full"),
        other => internal(command_type, &other.to_string()),
    }
}

fn internal(command_type: &str, message: &str) -> Failure {
    fail(ErrorReply::new(
        command_type,
        codes::INTERNAL_ERROR,
        message,
    ))
}

fn invalid(command_type: &str, message: impl Into<String>) -> Failure {
    fail(ErrorReply::new(
        command_type,
        codes::INVALID_ARGUMENT,
        message,
    ))
}

/// The command types the protocol defines; anything else is `NOT_SUPPORTED`.
const KNOWN_TYPES: &[&str] = &[
    "init",
    "create",
    "connect",
    "append",
    "idempotent-append",
    "idempotent-append-batch",
    "idempotent-close",
    "idempotent-detach",
    "read",
    "head",
    "delete",
    "close",
    "shutdown",
    "set-dynamic-header",
    "set-dynamic-param",
    "clear-dynamic",
    "validate",
    "benchmark",
];

impl Adapter {
    /// An adapter for `driver`; it answers nothing but `init` until initialised.
    pub fn new(driver: DriverKind) -> Self {
        Adapter {
            driver,
            session: None,
            shut_down: false,
        }
    }

    /// The driver it uses.
    pub fn driver(&self) -> DriverKind {
        self.driver
    }

    /// Whether `shutdown` was handled (the binary exits then).
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    /// Handles one protocol line; `None` for a blank line (no reply is due).
    pub fn handle_line(&mut self, line: &str) -> Option<String> {
        let line = line.trim();
        if line.is_empty() {
            return None;
        }
        let reply = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => self.handle_value(v),
            Err(e) => Reply::Error(ErrorReply::new(
                "init",
                codes::PARSE_ERROR,
                format!("Failed to parse command: {e}"),
            )),
        };
        Some(reply.to_line())
    }

    /// Handles one command given as JSON.
    pub fn handle_value(&mut self, command: serde_json::Value) -> Reply {
        let type_name = command
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_owned();
        if !KNOWN_TYPES.contains(&type_name.as_str()) {
            let shown = if type_name.is_empty() {
                "init"
            } else {
                &type_name
            };
            return Reply::Error(ErrorReply::new(
                shown,
                codes::NOT_SUPPORTED,
                format!("unknown command type {type_name:?}"),
            ));
        }
        match serde_json::from_value::<Command>(command) {
            Ok(cmd) => self.handle(cmd),
            Err(e) => Reply::Error(ErrorReply::new(
                &type_name,
                codes::PARSE_ERROR,
                format!("Failed to parse {type_name} command: {e}"),
            )),
        }
    }

    /// Handles one command.
    pub fn handle(&mut self, command: Command) -> Reply {
        let ty = command.type_name();
        match command {
            Command::Init(c) => self.init(c),
            Command::Shutdown => {
                self.shut_down = true;
                self.session = None;
                Reply::Shutdown(Ack::ok())
            }
            Command::Validate(c) => validate(&c.target),
            other => match self.session.as_mut() {
                None => Reply::Error(ErrorReply::new(
                    ty,
                    codes::INTERNAL_ERROR,
                    "the adapter is not initialised: send `init` first",
                )),
                Some(s) => s.handle(other),
            },
        }
    }

    fn init(&mut self, c: InitCmd) -> Reply {
        let dynamic = Arc::new(Mutex::new(Dynamic::default()));
        let provider_state = Arc::clone(&dynamic);
        let settings = ClientSettings {
            retry: Some(retry_policy()),
            provider: Some(Arc::new(move || lock(&provider_state).evaluate())),
            ..ClientSettings::default()
        };
        let base = c.server_url.trim_end_matches('/').to_owned();
        // Drop the previous session (its readers, writers and runtime) before starting anew.
        self.session = None;
        let client = AnyClient::with_settings(self.driver, &base, settings);
        self.session = Some(Session {
            client,
            streams: HashMap::new(),
            producers: HashMap::new(),
            dynamic,
        });
        let driver = match self.driver {
            DriverKind::Tokio => "ds-tokio",
            DriverKind::Blocking => "ds-blocking",
        };
        Reply::Init(InitReply {
            success: true,
            client_name: format!("ds ({driver})"),
            client_version: env!("CARGO_PKG_VERSION").to_owned(),
            features: Features::all(),
        })
    }
}

impl Session {
    fn handle(&mut self, command: Command) -> Reply {
        let ty = command.type_name();
        let result = match command {
            Command::Create(c) => self.create(c),
            Command::Connect(c) => self.connect(c),
            Command::Append(c) => self.append(c),
            Command::IdempotentAppend(c) => self.idempotent_append(c),
            Command::IdempotentAppendBatch(c) => self.idempotent_append_batch(c),
            Command::IdempotentClose(c) => self.idempotent_close(c),
            Command::IdempotentDetach(c) => self.idempotent_detach(c),
            Command::Read(c) => self.read(c),
            Command::Head(c) => self.head(c),
            Command::Delete(c) => self.delete(c),
            Command::Close(c) => self.close(c),
            Command::SetDynamicHeader(c) => {
                self.set_dynamic(c.name, &c.value_type, c.initial_value, true)
            }
            Command::SetDynamicParam(c) => self.set_dynamic(c.name, &c.value_type, None, false),
            Command::ClearDynamic => {
                let mut d = lock(&self.dynamic);
                d.headers.clear();
                d.params.clear();
                Ok(Reply::ClearDynamic(Ack::ok()))
            }
            Command::Benchmark(c) => Ok(self.benchmark(c)),
            Command::Init(_) | Command::Shutdown | Command::Validate(_) => {
                Err(internal(ty, "handled by the adapter"))
            }
        };
        result.unwrap_or_else(|mut err| {
            err.command_type = ty.to_owned();
            Reply::Error(*err)
        })
    }

    /// The handle of `path` (cached, so it keeps the content type it learned).
    fn stream(&mut self, path: &str) -> AnyStream {
        if let Some(s) = self.streams.get(path) {
            return s.clone();
        }
        let s = self.client.stream(path);
        self.streams.insert(path.to_owned(), s.clone());
        s
    }

    fn dynamic_mark(&self) -> u64 {
        lock(&self.dynamic).requests
    }

    fn dynamic_sent(&self, mark: u64) -> (Option<StringMap>, Option<StringMap>) {
        lock(&self.dynamic).sent_since(mark)
    }

    fn create(&mut self, c: CreateCmd) -> Outcome {
        // A fresh handle: a re-created stream may have another content type.
        let stream = self.client.stream(&c.path);
        let opts = CreateOptions {
            content_type: c.content_type.clone(),
            ttl_seconds: c.ttl_seconds,
            expires_at: c.expires_at.clone(),
            closed: c.closed.unwrap_or(false),
            body: Bytes::from(c.data.clone().unwrap_or_default()),
            fork: None,
        };
        let created = with_headers(&stream, c.headers.as_ref())?
            .create(opts)
            .map_err(|e| client_error("create", &e))?;
        self.streams.insert(c.path, stream);
        Ok(Reply::Create(StatusReply {
            success: true,
            status: if created.created { 201 } else { 200 },
            offset: created.next_offset.map(|o| o.to_string()),
        }))
    }

    fn connect(&mut self, c: PathCmd) -> Outcome {
        let stream = self.stream(&c.path);
        let info = with_headers(&stream, c.headers.as_ref())?
            .head()
            .map_err(|e| client_error("connect", &e))?;
        Ok(Reply::Connect(StatusReply {
            success: true,
            status: 200,
            offset: Some(info.next_offset.to_string()),
        }))
    }

    fn append(&mut self, c: AppendCmd) -> Outcome {
        let body = if c.binary.unwrap_or(false) {
            base64::engine::general_purpose::STANDARD
                .decode(c.data.as_bytes())
                .map_err(|e| invalid("append", format!("binary data is not base64: {e}")))?
        } else {
            c.data.into_bytes()
        };
        let stream = self.stream(&c.path);
        let opts = AppendOptions {
            seq: c.seq.map(|s| s.to_string()),
            ..AppendOptions::default()
        };
        let mark = self.dynamic_mark();
        let appended = with_headers(&stream, c.headers.as_ref())?
            .append_with(body, opts)
            .map_err(|e| client_error("append", &e))?;
        let (headers_sent, params_sent) = self.dynamic_sent(mark);
        Ok(Reply::Append(AppendReply {
            success: true,
            status: 200,
            offset: appended.next_offset.map(|o| o.to_string()),
            headers_sent,
            params_sent,
            duplicate: Some(appended.outcome == AppendOutcome::Duplicate),
            producer_epoch: appended.producer_epoch,
            producer_seq: appended.producer_seq,
        }))
    }

    fn head(&mut self, c: PathCmd) -> Outcome {
        let stream = self.stream(&c.path);
        let info = with_headers(&stream, c.headers.as_ref())?
            .head()
            .map_err(|e| client_error("head", &e))?;
        Ok(Reply::Head(HeadReply {
            success: true,
            status: 200,
            offset: Some(info.next_offset.to_string()),
            content_type: info.content_type,
            ttl_seconds: info.ttl_seconds,
            expires_at: info.expires_at,
            stream_closed: info.closed,
        }))
    }

    fn delete(&mut self, c: PathCmd) -> Outcome {
        let stream = self.stream(&c.path);
        with_headers(&stream, c.headers.as_ref())?
            .delete()
            .map_err(|e| client_error("delete", &e))?;
        // Forget what the handle learned: a stream re-created here starts anew.
        self.streams.remove(&c.path);
        Ok(Reply::Delete(StatusReply {
            success: true,
            status: 200,
            offset: None,
        }))
    }

    fn close(&mut self, c: CloseCmd) -> Outcome {
        let stream = self.stream(&c.path);
        let final_offset = match c.data {
            // Append-and-close, atomically (PROTOCOL.md 5.2, `Stream-Closed: true` with a body).
            Some(data) => {
                let opts = AppendOptions {
                    content_type: c.content_type,
                    close: true,
                    ..AppendOptions::default()
                };
                stream
                    .append_with(data.into_bytes(), opts)
                    .map_err(|e| client_error("close", &e))?
                    .next_offset
            }
            None => {
                stream
                    .close()
                    .map_err(|e| client_error("close", &e))?
                    .final_offset
            }
        };
        Ok(Reply::Close(CloseReply {
            success: true,
            status: 200,
            final_offset: final_offset.map(|o| o.to_string()).unwrap_or_default(),
        }))
    }

    /// A writer for `stream` with the adapter's retry policy and the stream's content type.
    fn writer(
        &self,
        stream: &AnyStream,
        configure: impl FnOnce(ProducerConfig) -> ProducerConfig,
    ) -> Result<AnyWriter, Error> {
        let base = ProducerConfig {
            content_type: stream
                .content_type()
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
            retry: retry_policy(),
            ..ProducerConfig::new(stream.url(), "")
        };
        stream.writer_with(configure(base))
    }

    /// The cached producer of `(path, producerId, epoch)`, created on first use: one batch at
    /// a time, and a long linger, so that `idempotent-close` with a final message seals that
    /// message as the closing batch (appends are flushed explicitly).
    fn producer(
        &mut self,
        ty: &str,
        path: &str,
        producer_id: &str,
        epoch: u64,
        auto_claim: bool,
    ) -> Outcome<&mut ProducerSlot> {
        let key = (path.to_owned(), producer_id.to_owned(), epoch);
        if !self.producers.contains_key(&key) {
            let stream = self.stream(path);
            let writer = self
                .writer(&stream, |c| ProducerConfig {
                    producer_id: producer_id.to_owned(),
                    epoch,
                    auto_claim,
                    linger: Duration::from_secs(1),
                    max_in_flight: 1,
                    ..c
                })
                .map_err(|e| client_error(ty, &e))?;
            self.producers
                .insert(key.clone(), ProducerSlot::Open(writer));
        }
        self.producers
            .get_mut(&key)
            .ok_or_else(|| internal(ty, "producer cache"))
    }

    fn idempotent_append(&mut self, c: IdempotentAppendCmd) -> Outcome {
        const TY: &str = "idempotent-append";
        let slot = self.producer(TY, &c.path, &c.producer_id, c.epoch, c.auto_claim)?;
        let ProducerSlot::Open(writer) = slot else {
            return Err(invalid(TY, "this producer was closed"));
        };
        match writer.append_and_wait(c.data.into_bytes()) {
            Ok(Some(WriteOutcome::Acked {
                next_offset,
                duplicate,
            })) => Ok(Reply::IdempotentAppend(AppendReply {
                success: true,
                status: 200,
                offset: next_offset.map(|o| o.to_string()),
                duplicate: Some(duplicate),
                ..AppendReply::default()
            })),
            Ok(Some(WriteOutcome::Failed(reason))) => Err(client_error(TY, reason.error())),
            Ok(None) => Err(internal(
                TY,
                "the writer stopped before the append's outcome",
            )),
            Err(e) => Err(append_error_reply(TY, &e)),
        }
    }

    fn idempotent_append_batch(&mut self, c: IdempotentAppendBatchCmd) -> Outcome {
        const TY: &str = "idempotent-append-batch";
        let stream = self.stream(&c.path);
        let in_flight = usize::try_from(c.max_in_flight.unwrap_or(1).max(1)).unwrap_or(usize::MAX);
        // A fresh producer: its sequence starts at 0 (so an identical batch is a duplicate).
        // With several batches in flight, one message per batch so they really pipeline;
        // otherwise every message goes in one batch (sealed by the flush).
        let writer = self
            .writer(&stream, |cfg| ProducerConfig {
                producer_id: c.producer_id.clone(),
                epoch: c.epoch,
                auto_claim: c.auto_claim,
                max_in_flight: in_flight,
                max_batch_items: if in_flight > 1 {
                    1
                } else {
                    cfg.max_batch_items
                },
                linger: if in_flight > 1 {
                    Duration::ZERO
                } else {
                    Duration::from_secs(1)
                },
                ..cfg
            })
            .map_err(|e| client_error(TY, &e))?;
        for item in c.items {
            writer
                .append(item.into_bytes())
                .map_err(|e| append_error_reply(TY, &e))?;
        }
        writer.flush().map_err(|f| failure_reply(TY, &f))?;
        writer
            .close(false)
            .map_err(|e| close_failure_reply(TY, &e))?;
        Ok(Reply::IdempotentAppendBatch(StatusReply {
            success: true,
            status: 200,
            offset: None,
        }))
    }

    fn idempotent_close(&mut self, c: IdempotentCloseCmd) -> Outcome {
        const TY: &str = "idempotent-close";
        self.producer(TY, &c.path, &c.producer_id, c.epoch, c.auto_claim)?;
        let key = (c.path.clone(), c.producer_id.clone(), c.epoch);
        let Some(slot) = self.producers.remove(&key) else {
            return Err(internal(TY, "producer cache"));
        };
        let reply = match slot {
            ProducerSlot::Closed(reply) => reply,
            ProducerSlot::Open(writer) => {
                let appended = match c.data.filter(|d| !d.is_empty()) {
                    Some(data) => writer.append(data.into_bytes()).map(|_| ()),
                    None => Ok(()),
                };
                match appended {
                    Err(e) => Reply::Error(*append_error_reply(TY, &e)),
                    Ok(()) => match writer.close(true) {
                        Ok(offset) => Reply::IdempotentClose(CloseReply {
                            success: true,
                            status: 200,
                            final_offset: offset.map(|o| o.to_string()).unwrap_or_default(),
                        }),
                        Err(e) => Reply::Error(*close_failure_reply(TY, &e)),
                    },
                }
            }
        };
        self.producers
            .insert(key, ProducerSlot::Closed(reply.clone()));
        Ok(reply)
    }

    fn idempotent_detach(&mut self, c: IdempotentDetachCmd) -> Outcome {
        const TY: &str = "idempotent-detach";
        let key = (c.path, c.producer_id, c.epoch);
        if let Some(ProducerSlot::Open(writer)) = self.producers.remove(&key) {
            writer
                .close(false)
                .map_err(|e| close_failure_reply(TY, &e))?;
        }
        Ok(Reply::IdempotentDetach(StatusReply {
            success: true,
            status: 200,
            offset: None,
        }))
    }

    fn read(&mut self, c: ReadCmd) -> Outcome {
        const TY: &str = "read";
        let offset = match c.offset.as_deref() {
            None | Some("") => Offset::beginning(),
            Some(o) => Offset::parse(o).map_err(|e| {
                fail(ErrorReply::new(
                    TY,
                    codes::INVALID_OFFSET,
                    format!("offset {o:?}: {e}"),
                ))
            })?,
        };
        let mode = match &c.live {
            None | Some(Live::Flag(false)) => ReadMode::CatchUp,
            Some(Live::Flag(true)) => ReadMode::Auto,
            Some(Live::Mode(m)) if m == "long-poll" => ReadMode::LongPoll,
            Some(Live::Mode(m)) if m == "sse" => ReadMode::Sse,
            Some(Live::Mode(m)) => {
                return Err(fail(ErrorReply::new(
                    TY,
                    codes::NOT_SUPPORTED,
                    format!("live mode {m:?}"),
                )))
            }
        };
        let timeout = c
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_READ_TIMEOUT);
        let max_chunks =
            usize::try_from(c.max_chunks.unwrap_or(DEFAULT_MAX_CHUNKS)).unwrap_or(usize::MAX);
        let until_up_to_date = c.wait_for_up_to_date.unwrap_or(false);

        let stream = self.stream(&c.path);
        let config = ReaderConfig {
            offset,
            mode,
            retry: retry_policy(),
            ..ReaderConfig::new(stream.url())
        };
        let mark = self.dynamic_mark();
        let deadline = Instant::now() + timeout;
        let mut reader = with_headers(&stream, c.headers.as_ref())?
            .reader_with(config)
            .map_err(|e| client_error(TY, &e))?;
        let mut chunks = Vec::new();
        let mut timed_out = false;
        loop {
            let event = match reader.next_event_until(deadline) {
                Err(DeadlinePassed) => {
                    timed_out = true;
                    break;
                }
                Ok(None) => break,
                Ok(Some(event)) => event,
            };
            match event {
                ReaderEvent::Data(chunk) => {
                    if let Some(text) = chunk_text(&chunk)? {
                        chunks.push(ReadChunk {
                            data: text,
                            offset: Some(chunk.next_offset.to_string()),
                        });
                    }
                    // A chunk that ends the stream is followed by `Closed` at once: take it, so
                    // the reply says EOF.
                    let full = chunks.len() >= max_chunks || (until_up_to_date && chunk.up_to_date);
                    if full && !chunk.closed {
                        break;
                    }
                }
                ReaderEvent::UpToDate { .. } if until_up_to_date => break,
                ReaderEvent::Closed { .. } | ReaderEvent::Done => break,
                ReaderEvent::Failed(e) => return Err(client_error(TY, &e)),
                _ => {}
            }
        }
        let (headers_sent, params_sent) = self.dynamic_sent(mark);
        Ok(Reply::Read(ReadReply {
            success: true,
            status: reader.last_status(),
            chunks,
            offset: Some(reader.offset().to_string()),
            // The protocol's definition (the TypeScript and Rust reference adapters do the
            // same): a read that waited `timeoutMs` without more data ends up to date.
            // `timedOut` tells such a read apart.
            up_to_date: reader.is_up_to_date() || timed_out,
            timed_out,
            stream_closed: reader.is_eof(),
            headers_sent,
            params_sent,
        }))
    }

    fn set_dynamic(
        &mut self,
        name: String,
        value_type: &str,
        initial: Option<String>,
        header: bool,
    ) -> Outcome {
        let ty = if header {
            "set-dynamic-header"
        } else {
            "set-dynamic-param"
        };
        let value = match (value_type, initial) {
            ("counter", _) => DynamicValue::Counter(0),
            ("timestamp", _) => DynamicValue::Timestamp,
            ("token", Some(t)) if header => DynamicValue::Token(t),
            ("token", None) if header => return Err(invalid(ty, "a token needs initialValue")),
            (other, _) => {
                return Err(invalid(ty, format!("unknown valueType {other:?}")));
            }
        };
        let header_name = if header {
            Some(
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| invalid(ty, format!("{name:?} is not a header name")))?,
            )
        } else {
            None
        };
        let entry = DynamicEntry {
            name,
            header: header_name,
            value,
        };
        let mut d = lock(&self.dynamic);
        let list = if header {
            &mut d.headers
        } else {
            &mut d.params
        };
        match list.iter_mut().find(|e| e.name == entry.name) {
            Some(existing) => *existing = entry,
            None => list.push(entry),
        }
        Ok(if header {
            Reply::SetDynamicHeader(Ack::ok())
        } else {
            Reply::SetDynamicParam(Ack::ok())
        })
    }

    fn benchmark(&mut self, c: BenchmarkCmd) -> Reply {
        const TY: &str = "benchmark";
        let op = &c.operation;
        let name = op.get("op").and_then(|v| v.as_str()).unwrap_or("");
        let path = op.get("path").and_then(|v| v.as_str()).unwrap_or("");
        let size = op.get("size").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
        let result = match name {
            "create" => self.bench_create(path, op),
            "append" => self.bench_append(path, size),
            "read" => self.bench_read(path, op),
            "roundtrip" => self.bench_roundtrip(path, size, op),
            "throughput_append" => self.bench_throughput_append(path, size, op),
            "throughput_read" => self.bench_throughput_read(path),
            other => {
                return Reply::Error(ErrorReply::new(
                    TY,
                    codes::NOT_SUPPORTED,
                    format!("benchmark operation {other:?}"),
                ))
            }
        };
        match result {
            Ok((elapsed, metrics)) => Reply::Benchmark(BenchmarkReply {
                success: true,
                iteration_id: c.iteration_id,
                duration_ns: elapsed.as_nanos().to_string(),
                metrics: Some(with_rates(metrics, elapsed)),
            }),
            Err(message) => Reply::Error(ErrorReply::new(TY, codes::INTERNAL_ERROR, message)),
        }
    }

    fn bench_create(
        &mut self,
        path: &str,
        op: &serde_json::Value,
    ) -> Result<(Duration, BenchmarkMetrics), String> {
        let stream = self.client.stream(path);
        let opts = CreateOptions::with_content_type(content_type_of(op));
        let start = Instant::now();
        stream.create(opts).map_err(|e| e.to_string())?;
        let elapsed = start.elapsed();
        self.streams.insert(path.to_owned(), stream);
        Ok((elapsed, BenchmarkMetrics::default()))
    }

    fn bench_append(
        &mut self,
        path: &str,
        size: usize,
    ) -> Result<(Duration, BenchmarkMetrics), String> {
        let stream = self.stream(path);
        let body = Bytes::from(vec![b'x'; size]);
        let start = Instant::now();
        stream.append(body).map_err(|e| e.to_string())?;
        Ok((
            start.elapsed(),
            BenchmarkMetrics {
                bytes_transferred: Some(size as u64),
                messages_processed: Some(1),
                ..BenchmarkMetrics::default()
            },
        ))
    }

    fn bench_read(
        &mut self,
        path: &str,
        op: &serde_json::Value,
    ) -> Result<(Duration, BenchmarkMetrics), String> {
        let stream = self.stream(path);
        let offset = match op.get("offset").and_then(|v| v.as_str()) {
            Some(o) if !o.is_empty() => Offset::parse(o).map_err(|e| e.to_string())?,
            _ => Offset::beginning(),
        };
        let start = Instant::now();
        let all = stream.read_all_from(offset).map_err(|e| e.to_string())?;
        Ok((
            start.elapsed(),
            BenchmarkMetrics {
                bytes_transferred: Some(all.data.len() as u64),
                ..BenchmarkMetrics::default()
            },
        ))
    }

    /// Create a stream, tail it live, append `size` bytes, and wait until they are read back.
    fn bench_roundtrip(
        &mut self,
        path: &str,
        size: usize,
        op: &serde_json::Value,
    ) -> Result<(Duration, BenchmarkMetrics), String> {
        let mode = match op.get("live").and_then(|v| v.as_str()) {
            Some("sse") => ReadMode::Sse,
            _ => ReadMode::LongPoll,
        };
        let content_type = content_type_of(op);
        // A JSON stream takes JSON messages: one string of `size` bytes.
        let body = if ds_proto::headers::is_json_content_type(&content_type) {
            let mut s = vec![b'x'; size.max(2)];
            s[0] = b'"';
            if let Some(last) = s.last_mut() {
                *last = b'"';
            }
            Bytes::from(s)
        } else {
            Bytes::from(vec![b'x'; size.max(1)])
        };
        let stream = self.client.stream(path);
        let start = Instant::now();
        stream
            .create(CreateOptions::with_content_type(content_type))
            .map_err(|e| e.to_string())?;
        let tail = stream.clone();
        let reading = std::thread::spawn(move || -> Result<usize, String> {
            let config = ReaderConfig {
                mode,
                retry: retry_policy(),
                ..ReaderConfig::new(tail.url())
            };
            let mut reader = tail.reader_with(config).map_err(|e| e.to_string())?;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match reader.next_event_until(deadline) {
                    Ok(Some(ReaderEvent::Data(chunk))) if !chunk.data.is_empty() => {
                        return Ok(chunk.data.len())
                    }
                    Ok(Some(ReaderEvent::Failed(e))) => return Err(e.to_string()),
                    Ok(Some(_)) => {}
                    Ok(None) => return Err("the reader ended before the data came back".into()),
                    Err(DeadlinePassed) => {
                        return Err("the data did not come back within 10 s".into())
                    }
                }
            }
        });
        // If the append fails, the reading thread ends at its own deadline.
        stream.append(body).map_err(|e| e.to_string())?;
        let received = reading
            .join()
            .map_err(|_| "the reading thread panicked".to_owned())??;
        let elapsed = start.elapsed();
        self.streams.insert(path.to_owned(), stream);
        Ok((
            elapsed,
            BenchmarkMetrics {
                bytes_transferred: Some((size + received) as u64),
                messages_processed: Some(1),
                ..BenchmarkMetrics::default()
            },
        ))
    }

    fn bench_throughput_append(
        &mut self,
        path: &str,
        size: usize,
        op: &serde_json::Value,
    ) -> Result<(Duration, BenchmarkMetrics), String> {
        let count = op.get("count").and_then(|v| v.as_u64()).unwrap_or(0);
        let concurrency = op
            .get("concurrency")
            .and_then(|v| v.as_u64())
            .unwrap_or(1)
            .max(1);
        let stream = self.stream(path);
        // Set-up, not measured: the stream may exist already.
        let _ = stream.create(CreateOptions::default());
        let writer = self
            .writer(&stream, |c| ProducerConfig {
                producer_id: format!("bench-{}", crate::conformance::subst::random_uuid()),
                max_in_flight: usize::try_from(concurrency).unwrap_or(1),
                linger: Duration::ZERO,
                ..c
            })
            .map_err(|e| e.to_string())?;
        let payload = Bytes::from(vec![b'x'; size.max(1)]);
        let start = Instant::now();
        for _ in 0..count {
            writer.append(payload.clone()).map_err(|e| e.to_string())?;
        }
        writer
            .flush()
            .map_err(|f| format!("{} batch(es) failed", f.len()))?;
        let elapsed = start.elapsed();
        let _ = writer.close(false);
        Ok((
            elapsed,
            BenchmarkMetrics {
                bytes_transferred: Some(count * size as u64),
                messages_processed: Some(count),
                ..BenchmarkMetrics::default()
            },
        ))
    }

    fn bench_throughput_read(
        &mut self,
        path: &str,
    ) -> Result<(Duration, BenchmarkMetrics), String> {
        let stream = self.stream(path);
        let start = Instant::now();
        let all = stream.read_all().map_err(|e| e.to_string())?;
        let items = ds_proto::json::split_array(&all.data)?;
        let elapsed = start.elapsed();
        let bytes: usize = items.iter().map(Bytes::len).sum();
        Ok((
            elapsed,
            BenchmarkMetrics {
                bytes_transferred: Some(bytes as u64),
                messages_processed: Some(items.len() as u64),
                ..BenchmarkMetrics::default()
            },
        ))
    }
}

fn content_type_of(op: &serde_json::Value) -> String {
    op.get("contentType")
        .and_then(|v| v.as_str())
        .unwrap_or(DEFAULT_CONTENT_TYPE)
        .to_owned()
}

fn with_rates(mut m: BenchmarkMetrics, elapsed: Duration) -> BenchmarkMetrics {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        m.ops_per_second = m.messages_processed.map(|n| n as f64 / secs);
        m.bytes_per_second = m.bytes_transferred.map(|n| n as f64 / secs);
    }
    m
}

/// `stream` with the command's extra headers for this call.
fn with_headers(stream: &AnyStream, headers: Option<&StringMap>) -> Outcome<AnyStream> {
    let Some(headers) = headers.filter(|h| !h.is_empty()) else {
        return Ok(stream.clone());
    };
    let mut extras = RequestExtras::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| invalid("", format!("{k:?} is not a header name")))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| invalid("", format!("{v:?} is not a header value")))?;
        extras = extras.header(name, value);
    }
    Ok(stream.with_options(CallOptions {
        extras,
        ..CallOptions::default()
    }))
}

/// A chunk's data as the protocol shows it: `None` when empty. JSON chunks are the messages as
/// one compact array (an undecodable JSON body is the client's `PARSE_ERROR`); other chunks
/// are their bytes decoded as UTF-8, lossily.
fn chunk_text(chunk: &Chunk) -> Outcome<Option<String>> {
    if chunk.data.is_empty() {
        return Ok(None);
    }
    if !chunk.json {
        return Ok(Some(String::from_utf8_lossy(&chunk.data).into_owned()));
    }
    let items = chunk.items().map_err(|m| {
        fail(ErrorReply::new(
            "read",
            codes::PARSE_ERROR,
            format!("JSON response body: {m}"),
        ))
    })?;
    if items.is_empty() {
        return Ok(None);
    }
    let mut text = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&String::from_utf8_lossy(item));
    }
    text.push(']');
    Ok(Some(text))
}

/// `validate`: builds the client's own option types from the target and reports whether the
/// client accepts them; messages name the protocol's option.
fn validate(target: &serde_json::Value) -> Reply {
    const TY: &str = "validate";
    let result = match target.get("target").and_then(|t| t.as_str()) {
        Some("retry-options") => validate_retry(target),
        Some("idempotent-producer") => validate_producer(target),
        other => {
            return Reply::Error(ErrorReply::new(
                TY,
                codes::NOT_SUPPORTED,
                format!("unknown validation target {other:?}"),
            ))
        }
    };
    match result {
        Ok(()) => Reply::Validate(Ack::ok()),
        Err(message) => Reply::Error(*invalid(TY, message)),
    }
}

fn non_negative_int(v: &serde_json::Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0)
            .map(|f| f as u64)
    })
}

fn millis(target: &serde_json::Value, field: &str) -> Result<Option<Duration>, String> {
    match target.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|ms| *ms >= 0.0 && ms.is_finite())
            .map(|ms| Some(Duration::from_secs_f64(ms / 1000.0)))
            .ok_or_else(|| {
                format!("{field} must be a non-negative number of milliseconds, got {v}")
            }),
    }
}

fn validate_retry(t: &serde_json::Value) -> Result<(), String> {
    let mut policy = RetryPolicy::default();
    if let Some(v) = t.get("maxRetries").filter(|v| !v.is_null()) {
        let n = non_negative_int(v)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("maxRetries must be a non-negative integer, got {v}"))?;
        policy.max_attempts = Some(n.saturating_add(1));
    }
    if let Some(d) = millis(t, "initialDelayMs")? {
        policy.initial_delay = d;
    }
    if let Some(d) = millis(t, "maxDelayMs")? {
        policy.max_delay = d;
    }
    if let Some(v) = t.get("multiplier").filter(|v| !v.is_null()) {
        policy.multiplier = v
            .as_f64()
            .ok_or_else(|| format!("multiplier must be a number, got {v}"))?;
    }
    policy.validate().map_err(|e| {
        let field = match e {
            RetryPolicyError::ZeroDelay("initial_delay") => "initialDelayMs",
            RetryPolicyError::ZeroDelay(_) | RetryPolicyError::InitialAboveMax => "maxDelayMs",
            RetryPolicyError::BadMultiplier => "multiplier",
            RetryPolicyError::ZeroAttempts => "maxRetries",
            _ => "retry options",
        };
        format!("{field}: {e}")
    })
}

fn validate_producer(t: &serde_json::Value) -> Result<(), String> {
    let id = t
        .get("producerId")
        .and_then(|v| v.as_str())
        .unwrap_or("validate");
    let mut config = ProducerConfig::new("http://127.0.0.1/validate", id);
    let count = |field: &str| -> Result<Option<u64>, String> {
        match t.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => non_negative_int(v)
                .map(Some)
                .ok_or_else(|| format!("{field} must be a non-negative integer, got {v}")),
        }
    };
    if let Some(epoch) = count("epoch")? {
        config.epoch = epoch;
    }
    if let Some(n) = count("maxBatchBytes")? {
        config.max_batch_bytes = usize::try_from(n).map_err(|e| format!("maxBatchBytes: {e}"))?;
        config.max_buffered_bytes = config.max_buffered_bytes.max(config.max_batch_bytes);
    }
    if let Some(n) = count("maxBatchItems")? {
        config.max_batch_items = usize::try_from(n).map_err(|e| format!("maxBatchItems: {e}"))?;
    }
    config.validate().map_err(|e| {
        let message = match &e.kind {
            ErrorKind::InvalidInput(m) => m.message.clone(),
            _ => e.to_string(),
        };
        // Name the protocol's option (our fields are snake_case).
        let field = [
            ("max_batch_bytes", "maxBatchBytes"),
            ("max_batch_items", "maxBatchItems"),
            ("max_buffered_bytes", "maxBatchBytes"),
            ("max_in_flight", "maxInFlight"),
            ("producer_id", "producerId"),
            ("epoch", "epoch"),
        ]
        .iter()
        .find(|(ours, _)| message.contains(ours))
        .map_or("producer options", |(_, theirs)| theirs);
        format!("{field}: {message}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(v: serde_json::Value) -> serde_json::Value {
        Adapter::new(DriverKind::Blocking).handle_value(v).to_json()
    }

    #[test]
    fn validation_names_protocol_options() {
        let ok = run(
            json!({"type": "validate", "target": {"target": "retry-options",
            "maxRetries": 3, "initialDelayMs": 100, "maxDelayMs": 5000, "multiplier": 2.0}}),
        );
        assert_eq!(ok["success"], true, "{ok}");
        for (target, field) in [
            (
                json!({"target": "retry-options", "maxRetries": -1}),
                "maxRetries",
            ),
            (
                json!({"target": "retry-options", "initialDelayMs": 0}),
                "initialDelayMs",
            ),
            (
                json!({"target": "retry-options", "initialDelayMs": -100}),
                "initialDelayMs",
            ),
            (
                json!({"target": "retry-options", "initialDelayMs": 1000, "maxDelayMs": 500}),
                "maxDelayMs",
            ),
            (
                json!({"target": "retry-options", "multiplier": 0.5}),
                "multiplier",
            ),
            (
                json!({"target": "idempotent-producer", "epoch": -1}),
                "epoch",
            ),
            (
                json!({"target": "idempotent-producer", "maxBatchBytes": 0}),
                "maxBatchBytes",
            ),
            (
                json!({"target": "idempotent-producer", "maxBatchBytes": -1}),
                "maxBatchBytes",
            ),
            (
                json!({"target": "idempotent-producer", "maxBatchItems": 0}),
                "maxBatchItems",
            ),
        ] {
            let r = run(json!({"type": "validate", "target": target}));
            assert_eq!(r["errorCode"], "INVALID_ARGUMENT", "{target}: {r}");
            assert!(
                r["message"].as_str().unwrap().contains(field),
                "{target}: {r}"
            );
        }
        let r = run(
            json!({"type": "validate", "target": {"target": "idempotent-producer",
            "producerId": "p", "epoch": 0, "maxBatchBytes": 1048576}}),
        );
        assert_eq!(r["success"], true, "{r}");
        let r = run(json!({"type": "validate", "target": {"target": "nope"}}));
        assert_eq!(r["errorCode"], "NOT_SUPPORTED");
    }

    #[test]
    fn unknown_and_malformed_commands() {
        let r = run(json!({"type": "teleport"}));
        assert_eq!(r["errorCode"], "NOT_SUPPORTED");
        let r = run(json!({"type": "append", "path": 7}));
        assert_eq!(
            (r["errorCode"].as_str(), r["commandType"].as_str()),
            (Some("PARSE_ERROR"), Some("append"))
        );
        let r = run(json!({"type": "head", "path": "/x"}));
        assert_eq!(r["errorCode"], "INTERNAL_ERROR", "not initialised: {r}");
        let mut a = Adapter::new(DriverKind::Blocking);
        assert_eq!(a.handle_line("   "), None);
        let line = a.handle_line("{not json").unwrap();
        assert!(line.contains("PARSE_ERROR"), "{line}");
        let line = a.handle_line(r#"{"type":"shutdown"}"#).unwrap();
        let reply: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(reply, json!({"type": "shutdown", "success": true}));
        assert!(a.is_shut_down());
    }

    #[test]
    fn dynamic_values_are_evaluated_per_request() {
        let mut d = Dynamic::default();
        assert!(d.evaluate().headers.is_empty());
        assert_eq!(d.sent_since(0), (None, None));
        d.headers.push(DynamicEntry {
            name: "X-Counter".into(),
            header: Some(HeaderName::from_static("x-counter")),
            value: DynamicValue::Counter(0),
        });
        d.params.push(DynamicEntry {
            name: "t".into(),
            header: None,
            value: DynamicValue::Token("v".into()),
        });
        let e = d.evaluate();
        assert_eq!(e.headers["x-counter"], "1");
        assert_eq!(e.params, vec![("t".to_owned(), "v".to_owned())]);
        d.evaluate();
        let (h, p) = d.sent_since(1);
        assert_eq!(h.unwrap()["X-Counter"], "2");
        assert_eq!(p.unwrap()["t"], "v");
        assert_eq!(d.sent_since(2), (None, None));
    }
}
