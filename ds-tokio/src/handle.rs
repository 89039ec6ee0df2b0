//! A stream handle: the one-shot operations of PROTOCOL.md 5.1-5.6 with retries.
//!
//! Each operation is a ds-proto builder, one HTTP exchange per attempt, and the ds-proto
//! interpreter; [`ds_proto::Retrier`] decides whether and when to try again.

use crate::client::Client;
use crate::reader::Reader;
use crate::trace;
use bytes::Bytes;
use ds_proto::driver::read_all::{ChunkAccumulator, ReadAll};
use ds_proto::ops::{
    self, AppendOptions, Appended, Closed, CreateOptions, Created, ProducerHeaders, ReadOptions,
    ReadResult, RequestExtras, StreamInfo,
};
use ds_proto::reader::{ReadMode, ReaderConfig, ReaderEvent};
use ds_proto::{Error, ErrorKind, Offset, Operation, Retrier};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

ds_proto::__stream_handle! {
    /// A handle to one stream. Cheap to clone. Not named `Stream` so it does not collide with
    /// `futures::Stream`.
}

impl StreamHandle {
    /// Runs one operation with retries.
    pub(crate) async fn execute<T>(
        &self,
        op: Operation,
        idempotent: bool,
        build: impl Fn(&RequestExtras) -> Result<http::Request<Bytes>, Error>,
        interpret: impl Fn(&http::response::Parts, Bytes) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let policy = self
            .call
            .retry
            .as_ref()
            .unwrap_or(self.client.retry_policy());
        let timeout = self.call.timeout.or(self.client.request_timeout());
        let limit = self.client.max_response_bytes();
        check_call_options(&self.call, op, &self.url)?;
        let mut retrier = Retrier::new(policy, op, idempotent, Instant::now().into_std());
        let mut rng = ds_proto::Rng::new(self.client.next_seed());
        loop {
            let request = build(&self.client.extras(&self.call))?;
            let mut trace = trace::RequestTrace::start(&request, Some(retrier.attempts()), None);
            let exchange = self.client.inner.transport.send_buffered(request, limit);
            let exchange = trace::in_span(trace.handle(), exchange);
            let outcome = match timeout {
                Some(t) => match tokio::time::timeout(t, exchange).await {
                    Ok(r) => r,
                    Err(_) => Err(ds_proto::TransportError::new(
                        ds_proto::TransportErrorKind::Timeout,
                        format!("no complete response within {t:?}"),
                    )),
                },
                None => exchange.await,
            };
            match &outcome {
                Ok((parts, body)) => {
                    trace.head(parts.status);
                    trace.body(body.len());
                    trace.finish(None);
                }
                Err(e) => trace.finish(Some(e)),
            }
            let result = match outcome {
                Ok((parts, body)) => interpret(&parts, body),
                Err(e) => Err(transport_error(op, &self.url, e)),
            };
            let error = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let seen = error.clone();
            match retrier.on_failure(error, Instant::now().into_std(), &mut rng) {
                Ok(delay) => {
                    trace::retry(op, &self.url, retrier.attempts(), delay, &seen);
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    trace::failed(op, &self.url, retrier.attempts(), &e);
                    return Err(e);
                }
            }
        }
    }

    /// Creates the stream (PUT, PROTOCOL.md 5.1). `Created::created` tells a new stream (201)
    /// from an existing one with the same configuration (200); another configuration is a
    /// conflict error.
    pub async fn create(&self, opts: CreateOptions) -> Result<Created, Error> {
        let url = self.url.clone();
        let created = self
            .execute(
                Operation::Create,
                true,
                |x| ops::create_request(&url, &opts, x),
                |p, b| ops::create_response(&url, p, &b),
            )
            .await?;
        let ct = created
            .content_type
            .clone()
            .or_else(|| opts.content_type.clone());
        self.learn_content_type(&ct);
        Ok(created)
    }

    /// Appends `body` (POST, 5.2) with the handle's content type. For JSON streams `body` is
    /// one JSON message. Not retried unless the retry policy opts in (a lost response could
    /// store it twice); use a writer or producer headers for exactly-once retries.
    pub async fn append(&self, body: impl Into<Bytes>) -> Result<Appended, Error> {
        self.append_with(body, AppendOptions::default()).await
    }

    /// Appends with options: `Stream-Seq`, append-and-close, idempotent producer headers
    /// (then the result tells stored from duplicate, and errors tell fenced and sequence gaps).
    pub async fn append_with(
        &self,
        body: impl Into<Bytes>,
        mut opts: AppendOptions,
    ) -> Result<Appended, Error> {
        let body = body.into();
        if opts.content_type.is_none() {
            opts.content_type = self.content_type();
        }
        let url = self.url.clone();
        let idempotent = opts.producer.is_some();
        self.execute(
            Operation::Append,
            idempotent,
            |x| ops::append_request(&url, body.clone(), &opts, x),
            |p, b| ops::append_response(&url, idempotent, p, &b),
        )
        .await
    }

    /// Appends one value as a JSON message (the stream must be `application/json`).
    pub async fn append_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<Appended, Error> {
        let body = serde_json::to_vec(value).map_err(|e| {
            Error::invalid_input(
                Operation::Append,
                &self.url,
                format!("cannot serialize: {e}"),
            )
        })?;
        self.append_with(
            body,
            AppendOptions {
                content_type: Some("application/json".into()),
                ..AppendOptions::default()
            },
        )
        .await
    }

    /// Closes the stream (5.3). Closing a closed stream succeeds.
    pub async fn close(&self) -> Result<Closed, Error> {
        self.close_with(None).await
    }

    /// Closes the stream with idempotent producer headers (5.2.1).
    pub async fn close_with(&self, producer: Option<ProducerHeaders>) -> Result<Closed, Error> {
        let url = self.url.clone();
        self.execute(
            Operation::Close,
            true,
            |x| ops::close_request(&url, producer.as_ref(), x),
            |p, b| ops::close_response(&url, p, &b),
        )
        .await
    }

    /// The stream's metadata (HEAD, 5.5).
    pub async fn head(&self) -> Result<StreamInfo, Error> {
        let url = self.url.clone();
        let info = self
            .execute(
                Operation::Head,
                true,
                |x| ops::head_request(&url, x),
                |p, b| ops::head_response(&url, p, &b),
            )
            .await?;
        self.learn_content_type(&info.content_type);
        Ok(info)
    }

    /// Deletes the stream (5.4).
    pub async fn delete(&self) -> Result<(), Error> {
        let url = self.url.clone();
        self.execute(
            Operation::Delete,
            true,
            |x| ops::delete_request(&url, x),
            |p, b| ops::delete_response(&url, p, &b),
        )
        .await
    }

    /// One read (catch-up, or one long-poll), buffered whole. For continuous reading use
    /// [`StreamHandle::reader`].
    pub async fn read(&self, opts: ReadOptions) -> Result<ReadResult, Error> {
        let url = self.url.clone();
        let result = self
            .execute(
                Operation::Read,
                true,
                |x| ops::read_request(&url, &opts, x),
                |p, b| ops::read_response(&url, &opts.offset, p, b),
            )
            .await?;
        self.learn_content_type(&result.content_type);
        Ok(result)
    }

    /// A reader from `offset` in `mode` (catch-up, long-poll, SSE or auto), with the
    /// reader defaults of [`StreamHandle::reader_config`] (retries without limit).
    pub fn reader(&self, offset: Offset, mode: ReadMode) -> Result<Reader, Error> {
        let mut config = self.reader_config();
        config.offset = offset;
        config.mode = mode;
        self.reader_with(config)
    }

    /// The reader configuration [`StreamHandle::reader`] starts from: [`ReaderConfig::new`]
    /// for this stream with the client's long-poll deadline
    /// ([`ClientBuilder::long_poll_wait`](crate::ClientBuilder::long_poll_wait)) and SSE idle
    /// timeout ([`ClientBuilder::sse_idle_timeout`](crate::ClientBuilder::sse_idle_timeout)).
    /// Change what you need and pass it to [`StreamHandle::reader_with`].
    pub fn reader_config(&self) -> ReaderConfig {
        let mut config = ReaderConfig::new(self.url.to_string());
        self.client.reader_defaults(&mut config);
        config
    }

    /// A reader with every setting chosen (its `url` is replaced by this stream's).
    ///
    /// When the handle knows the stream's content type (from `create`, `head`, a read, or
    /// [`StreamHandle::set_content_type`]) and `config.json` is unset, the reader is told
    /// whether the stream is JSON: SSE responses do not carry the stream's content type, and
    /// JSON messages of several SSE events are merged into one array only for JSON streams.
    pub fn reader_with(&self, mut config: ReaderConfig) -> Result<Reader, Error> {
        config.url = self.url.to_string();
        if config.json.is_none() {
            config.json = self
                .content_type()
                .map(|ct| ds_proto::headers::is_json_content_type(&ct));
        }
        Reader::new(self.client.clone(), self.call.clone(), config)
    }

    /// Reads everything from the beginning until up to date: the bytes (for JSON streams, one
    /// JSON array of all messages), the offset to continue from, and whether the stream is
    /// closed.
    pub async fn read_all(&self) -> Result<ReadAll, Error> {
        self.read_all_from(Offset::beginning()).await
    }

    /// Like [`StreamHandle::read_all`], from `offset`.
    pub async fn read_all_from(&self, offset: Offset) -> Result<ReadAll, Error> {
        let mut config = self.reader_config();
        config.offset = offset.clone();
        config.mode = ReadMode::CatchUp;
        config.max_body_bytes = self.client.max_response_bytes();
        // Each catch-up request is bounded like a one-shot read: a server that accepts and
        // then says nothing cannot hang `read_all`.
        config.catch_up_deadline = self.call.timeout.or(self.client.request_timeout());
        config.retry = self
            .call
            .retry
            .clone()
            .unwrap_or_else(|| self.client.retry_policy().clone());
        let mut reader = self.reader_with(config)?;
        let mut acc = ChunkAccumulator::starting_at(offset);
        while let Some(event) = reader.next_event().await {
            match event {
                ReaderEvent::Data(chunk) => acc.push(chunk),
                ReaderEvent::Closed { offset } => acc.closed_at(offset),
                ReaderEvent::Failed(e) => return Err(e),
                _ => {}
            }
        }
        acc.finish()
            .map_err(|m| Error::invalid_response(Operation::Read, &self.url, m))
    }

    /// Reads every message of a JSON stream from the beginning until up to date.
    pub async fn read_json<T: DeserializeOwned>(&self) -> Result<Vec<T>, Error> {
        let all = self.read_all().await?;
        serde_json::from_slice(&all.data).map_err(|e| {
            Error::new(
                Operation::Read,
                self.url.to_string(),
                ErrorKind::InvalidResponse(format!("cannot deserialize JSON messages: {e}")),
            )
        })
    }
}

pub(crate) use ds_proto::driver::client::{check_call_options, transport_error};
