//! A stream handle: the one-shot operations of PROTOCOL.md 5.1-5.6 with retries.
//!
//! Each operation is a ds-proto descriptor ([`ds_proto::ops::OneShot`]) run by
//! [`StreamHandle::run`]: one HTTP exchange per attempt; ds-proto's
//! [`Call`](ds_proto::driver::call::Call) decides the request, whether and when to try again,
//! and what the handle learns.

use crate::client::Client;
use crate::trace;
use bytes::Bytes;
use ds_proto::driver::call::Call;
use ds_proto::driver::read_all::{self, ChunkAccumulator, ReadAll};
use ds_proto::ops::{
    self, AppendOptions, Appended, Closed, CreateOptions, Created, OneShot, ProducerHeaders,
    ReadOptions, ReadResult, StreamInfo,
};
use ds_proto::{Error, Offset, TransportError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

ds_proto::__stream_handle! {
    now: crate::clock::now;
    /// A handle to one stream. Cheap to clone. Not named `Stream` so it does not collide with
    /// `futures::Stream`.
}

impl StreamHandle {
    /// Runs one operation across its attempts: ds-proto's [`Call`] decides the request,
    /// retries and result; this only sends, times out and waits.
    pub(crate) async fn run<O: OneShot>(&self, op: O) -> Result<O::Output, Error> {
        let now = Instant::now().into_std();
        let settings = self.client.settings();
        let mut call = Call::new(op, settings, &self.call, self.client.next_seed(), now)?;
        loop {
            let request = call.request(&self.client.extras(&self.call))?;
            let trace = trace::RequestTrace::start(&request, Some(call.attempts()), None);
            let exchange = self
                .client
                .inner
                .transport
                .send_buffered(request, call.max_response_bytes());
            let exchange = trace::in_span(trace.handle(), exchange);
            let outcome = match call.timeout() {
                Some(t) => tokio::time::timeout(t, exchange)
                    .await
                    .unwrap_or_else(|_| Err(TransportError::timed_out(t))),
                None => exchange.await,
            };
            trace.outcome(&outcome);
            match self.settle(&mut call, outcome, Instant::now().into_std()) {
                Ok(result) => return result,
                Err(delay) => tokio::time::sleep(delay).await,
            }
        }
    }

    /// Creates the stream (PUT, PROTOCOL.md 5.1). `Created::created` tells a new stream (201)
    /// from an existing one with the same configuration (200); another configuration is a
    /// conflict error.
    pub async fn create(&self, opts: CreateOptions) -> Result<Created, Error> {
        self.run(ops::Create::new(self.url(), opts)).await
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
        opts: AppendOptions,
    ) -> Result<Appended, Error> {
        let op = ops::Append::new(self.url(), body.into(), opts, self.content_type());
        self.run(op).await
    }

    /// Appends one value as a JSON message (the stream must be `application/json`).
    pub async fn append_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<Appended, Error> {
        self.run(ops::Append::json(self.url(), value)?).await
    }

    /// Closes the stream (5.3). Closing a closed stream succeeds.
    pub async fn close(&self) -> Result<Closed, Error> {
        self.close_with(None).await
    }

    /// Closes the stream with idempotent producer headers (5.2.1).
    pub async fn close_with(&self, producer: Option<ProducerHeaders>) -> Result<Closed, Error> {
        self.run(ops::Close::new(self.url(), producer)).await
    }

    /// The stream's metadata (HEAD, 5.5).
    pub async fn head(&self) -> Result<StreamInfo, Error> {
        self.run(ops::Head::new(self.url())).await
    }

    /// Deletes the stream (5.4).
    pub async fn delete(&self) -> Result<(), Error> {
        self.run(ops::Delete::new(self.url())).await
    }

    /// One read (catch-up, or one long-poll), buffered whole. For continuous reading use
    /// [`StreamHandle::reader`].
    pub async fn read(&self, opts: ReadOptions) -> Result<ReadResult, Error> {
        self.run(ops::Read::new(self.url(), opts)).await
    }

    /// Reads everything from the beginning until up to date: the bytes (for JSON streams, one
    /// JSON array of all messages), the offset to continue from, and whether the stream is
    /// closed.
    pub async fn read_all(&self) -> Result<ReadAll, Error> {
        self.read_all_from(Offset::beginning()).await
    }

    /// Like [`StreamHandle::read_all`], from `offset`.
    pub async fn read_all_from(&self, offset: Offset) -> Result<ReadAll, Error> {
        let mut reader = self.reader_with(self.read_all_config(offset.clone()))?;
        let mut acc = ChunkAccumulator::starting_at(offset);
        while let Some(event) = reader.next_event().await {
            acc.observe(event)?;
        }
        acc.into_result(self.url())
    }

    /// Reads every message of a JSON stream from the beginning until up to date.
    pub async fn read_json<T: DeserializeOwned>(&self) -> Result<Vec<T>, Error> {
        read_all::json_messages(&self.read_all().await?, self.url())
    }
}
