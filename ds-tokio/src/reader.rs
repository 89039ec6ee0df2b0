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

use crate::engine::{Engine, Wake};
use crate::trace;
use ds_proto::driver::reader_state::HandedOut;
use ds_proto::reader::{Chunk, ReaderEvent};
use ds_proto::Error;
use futures_core::Stream;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::ops::ControlFlow;
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
    /// The machine's state as of the last event handed out (the machine itself may be inside
    /// a pending step).
    handed_out: HandedOut,
    finished: bool,
    url: String,
}

ds_proto::__reader_state!();

impl Reader {
    /// A reader driving `engine`'s machine (made by the stream handle) for the stream at
    /// `url`; the reader's task polls its exchange itself.
    pub(crate) fn from_machine(engine: Engine<ds_proto::reader::Reader>, url: String) -> Reader {
        Reader {
            handed_out: HandedOut::of(&engine.machine),
            inner: Some(Box::new(Inner {
                engine: engine.owner_polled(),
            })),
            step: None,
            finished: false,
            url,
        }
    }

    /// What was handed out last: the machine may be inside a pending step.
    fn state(&self) -> &HandedOut {
        &self.handed_out
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
                self.handed_out = HandedOut::of(&inner.engine.machine);
                self.inner = Some(inner);
                self.finished = event.as_ref().is_none_or(ReaderEvent::is_terminal);
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
            let event = std::task::ready!(self.poll_event(cx));
            if let ControlFlow::Break(item) =
                event.map_or(ControlFlow::Break(None), |e| e.into_chunk())
            {
                return Poll::Ready(item);
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
