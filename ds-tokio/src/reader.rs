//! The pull reader: a `futures_core::Stream` of [`Chunk`]s driven by ds-proto's
//! [`Reader`](ds_proto::reader::Reader) state machine (catch-up, long-poll, SSE, auto).
//!
//! Dropping a reader aborts its in-flight request. Offsets to checkpoint come with every chunk
//! ([`Chunk::next_offset`]) and from [`Reader::offset`]: resuming from them never skips or
//! repeats data. (A large response may come in
//! [`partial`](Chunk::partial) chunks whose offset is the checkpoint before it: resuming
//! from one reads the response again; snapshots skip what was handed out.) [`Reader::snapshot`] captures the checkpoint with the cursor and the
//! reader's phase as a serializable [`ReaderSnapshot`];
//! [`StreamHandle::reader_from_snapshot`](crate::StreamHandle::reader_from_snapshot) resumes
//! from it, in this process or another.

use crate::client::Client;
use crate::engine::{Engine, Wake};
use crate::trace;
use ds_proto::ops::CallOptions;
use ds_proto::reader::{Chunk, ReaderEvent, ReaderSnapshot};
use ds_proto::{Error, Offset};
use futures_core::Stream;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

type Step = Pin<Box<dyn Future<Output = (Box<Inner>, Option<ReaderEvent>)> + Send>>;

struct Inner {
    engine: Engine<ds_proto::reader::Reader>,
}

impl Inner {
    /// Drives the machine until it has an event; `None` when it is finished.
    async fn next_event(mut self: Box<Self>) -> (Box<Self>, Option<ReaderEvent>) {
        loop {
            if let Some(e) = self.engine.machine.poll_event() {
                return (self, Some(e));
            }
            self.engine.flush_outputs();
            if let Some(e) = self.engine.machine.poll_event() {
                return (self, Some(e));
            }
            if let Wake::Idle = self.engine.step().await {
                return (self, None);
            }
        }
    }
}

/// A live or catch-up reader of one stream.
pub struct Reader {
    inner: Option<Box<Inner>>,
    step: Option<Step>,
    offset: Offset,
    up_to_date: bool,
    eof: bool,
    last_status: Option<u16>,
    finished: bool,
    url: String,
    /// The machine's snapshot as of the last event handed out (the machine itself may be
    /// inside a pending step).
    snapshot: ReaderSnapshot,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("url", &ds_proto::url::strip_query(&self.url))
            .field("offset", &self.offset)
            .field("up_to_date", &self.up_to_date)
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// A reader driving `machine` (made by the stream handle) for the stream at `url`.
    pub(crate) fn from_machine(
        client: Client,
        call: CallOptions,
        machine: ds_proto::reader::Reader,
        url: String,
    ) -> Reader {
        Reader {
            offset: machine.offset().clone(),
            up_to_date: machine.is_up_to_date(),
            eof: machine.is_eof(),
            snapshot: machine.snapshot(),
            inner: Some(Box::new(Inner {
                engine: Engine::new(machine, client, call).owner_polled(),
            })),
            step: None,
            last_status: None,
            finished: false,
            url,
        }
    }

    /// A snapshot of what this reader has handed out: continue from it with
    /// [`StreamHandle::reader_from_snapshot`](crate::StreamHandle::reader_from_snapshot), here
    /// or in another process. It resumes right
    /// after the last event handed out (nothing repeated, nothing skipped), in the same phase
    /// (an auto reader past its catch-up long-polls at once, an SSE reader that fell back
    /// stays on long-poll), and a reader restored after EOF sends nothing. See
    /// [`ReaderSnapshot`].
    pub fn snapshot(&self) -> ReaderSnapshot {
        self.snapshot.clone()
    }

    /// The checkpoint: the offset after everything this reader has handed out.
    pub fn offset(&self) -> &Offset {
        &self.offset
    }

    /// Whether the reader has caught up with the stream's tail (more may come unless EOF).
    pub fn is_up_to_date(&self) -> bool {
        self.up_to_date
    }

    /// Whether the stream is closed and everything was read (EOF).
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// The HTTP status of the latest response the reader received, as of the last event
    /// handed out (`204`: a long-poll that ended without data); `None` before the first.
    pub fn last_status(&self) -> Option<u16> {
        self.last_status
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<ReaderEvent>> {
        if self.finished {
            return Poll::Ready(None);
        }
        if self.step.is_none() {
            let Some(inner) = self.inner.take() else {
                return Poll::Ready(None);
            };
            self.step = Some(Box::pin(inner.next_event()));
        }
        let Some(step) = self.step.as_mut() else {
            return Poll::Ready(None);
        };
        match step.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready((inner, event)) => {
                if let Some(e) = &event {
                    trace::reader_event(&self.url, e);
                }
                self.step = None;
                self.offset = inner.engine.machine.offset().clone();
                self.up_to_date = inner.engine.machine.is_up_to_date();
                self.eof = inner.engine.machine.is_eof();
                self.last_status = inner.engine.machine.last_status();
                self.snapshot = inner.engine.machine.snapshot();
                self.inner = Some(inner);
                match &event {
                    None | Some(ReaderEvent::Done | ReaderEvent::Failed(_)) => self.finished = true,
                    Some(ReaderEvent::Closed { .. }) => self.finished = true,
                    _ => {}
                }
                Poll::Ready(event)
            }
        }
    }

    /// The next raw event of the machine (data, up-to-date, closed, retrying, fallback,
    /// failure); `None` when the reader is finished.
    pub async fn next_event(&mut self) -> Option<ReaderEvent> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// The next chunk of data; `None` at EOF, or when a catch-up reader is up to date. An error
    /// is terminal (the next call returns `None`).
    pub async fn next_chunk(&mut self) -> Option<Result<Chunk, Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for Reader {
    type Item = Result<Chunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match self.poll_event(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(ReaderEvent::Data(c))) => return Poll::Ready(Some(Ok(c))),
                Poll::Ready(Some(ReaderEvent::Failed(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(ReaderEvent::Closed { .. } | ReaderEvent::Done)) => {
                    return Poll::Ready(None)
                }
                Poll::Ready(Some(_)) => continue,
            }
        }
    }
}

ds_proto::__json_items!();

impl<T: DeserializeOwned> JsonItems<T> {
    /// The next message.
    pub async fn next_item(&mut self) -> Option<Result<T, Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl<T: DeserializeOwned> Stream for JsonItems<T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(item) = this.pending.next(&this.reader.url) {
                return Poll::Ready(Some(item));
            }
            match Pin::new(&mut this.reader).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Err(e) = this.pending.push(&chunk, &this.reader.url) {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
        }
    }
}
