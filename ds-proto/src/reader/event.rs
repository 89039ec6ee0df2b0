//! What a [`Reader`](super::Reader) reports: [`ReaderEvent`]s and the [`Chunk`]s of data.

use crate::error::Error;
use crate::offset::Offset;
use bytes::Bytes;
use std::ops::ControlFlow;
use std::time::Duration;

/// Bytes released by the reader, together with the offset that follows them (or, for a
/// [`partial`](Chunk::partial) piece of a large response, the checkpoint before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The data. For JSON streams ([`Chunk::json`]) one JSON array of messages (use
    /// [`Chunk::items`]); otherwise raw bytes. Empty when the offset advanced without data.
    pub data: Bytes,
    /// The offset right after `data`: resume from here to read what follows. This is the
    /// checkpoint to persist once `data` is processed. For a partial chunk it is the
    /// checkpoint before the response the piece belongs to (unchanged until its last piece).
    pub next_offset: Offset,
    /// A piece of a large response body, released before the rest of the body arrived
    /// (see [`ReaderConfig::partial_chunks_over`](super::ReaderConfig::partial_chunks_over));
    /// more pieces follow, and the last one (not partial) carries the response's offset. Never
    /// set for JSON chunks.
    pub partial: bool,
    /// The reader had caught up with the stream's tail when this chunk was read.
    pub up_to_date: bool,
    /// The stream is closed and this chunk ends it (EOF). A
    /// [`ReaderEvent::Closed`] follows.
    pub closed: bool,
    /// The cursor in effect after this chunk (`Stream-Cursor` / `streamCursor`).
    pub cursor: Option<String>,
    /// The stream is JSON mode (PROTOCOL.md 9.1): `data` is one JSON array.
    pub json: bool,
}

impl Chunk {
    /// The messages of a JSON chunk, each a zero-copy slice of [`Chunk::data`]; empty data gives
    /// no messages. Fails when `data` is not one JSON array (for instance for a non-JSON
    /// stream).
    pub fn items(&self) -> Result<Vec<Bytes>, String> {
        crate::json::split_array(&self.data).map_err(String::from)
    }
}

/// What happened, drained with [`Reader::poll_event`](super::Reader::poll_event).
///
/// A reader ends with exactly one of [`Closed`](ReaderEvent::Closed),
/// [`Failed`](ReaderEvent::Failed) or [`Done`](ReaderEvent::Done), unless
/// [`Reader::stop`](super::Reader::stop) ends it first (then silently). After its terminal
/// event it never emits a request or another event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ReaderEvent {
    /// Data, with the offset that follows it. Emitted when a response (or, in SSE, a `control`
    /// event) released bytes, or moved a real offset forward without bytes (then `data` is
    /// empty). A response without data at an unchanged offset emits none; neither does the
    /// first response after a sentinel start (`-1`, `now`) when it has no data.
    Data(Chunk),
    /// The reader reached the stream's tail (no EOF: more data may come). Emitted after the
    /// [`Data`](ReaderEvent::Data) of the response that reached it, each time a response
    /// reaches the tail after being behind, after releasing data, or at a new offset;
    /// repeated long-poll timeouts at the same offset do not repeat it.
    UpToDate {
        /// The checkpoint (the offset after everything released).
        offset: Offset,
    },
    /// EOF: the stream is closed and everything was released. Terminal; implies up-to-date.
    Closed {
        /// The stream's final offset.
        offset: Offset,
    },
    /// A read failed and will be retried after `delay`; no request is emitted until then
    /// (the timer is [`Reader::poll_timeout`](super::Reader::poll_timeout)).
    Retrying {
        /// Why the read failed.
        error: Error,
        /// Which retry this is in the current run of failures (1 for the first retry).
        attempt: u32,
        /// How long the reader waits before retrying.
        delay: Duration,
    },
    /// SSE connections kept ending fast: the reader now uses long-poll for good.
    FellBackToLongPoll,
    /// The reader gave up: a non-retryable status (400, 404, 410 = offset before retention,
    /// other 4xx), an invalid response (missing or backwards `Stream-Next-Offset`, bad SSE
    /// control or base64), a limit exceeded, or the retry policy exhausted. Terminal.
    Failed(Error),
    /// [`ReadMode::CatchUp`](super::ReadMode::CatchUp) only: the reader caught up (an
    /// [`UpToDate`](ReaderEvent::UpToDate) precedes it) and stops. Terminal.
    Done,
}

impl ReaderEvent {
    /// Whether the reader ends with this event ([`Closed`](ReaderEvent::Closed),
    /// [`Failed`](ReaderEvent::Failed) or [`Done`](ReaderEvent::Done)): a driver hands out
    /// nothing after it.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            ReaderEvent::Closed { .. } | ReaderEvent::Failed(_) | ReaderEvent::Done
        )
    }

    /// What a reader of chunks makes of this event: data is the next item, a failure the last
    /// one (as an error), EOF or the end of a catch-up ends the chunks
    /// (`Break(None)`), and any other event is passed over (`Continue`).
    pub fn into_chunk(self) -> ControlFlow<Option<Result<Chunk, Error>>> {
        match self {
            ReaderEvent::Data(c) => ControlFlow::Break(Some(Ok(c))),
            ReaderEvent::Failed(e) => ControlFlow::Break(Some(Err(e))),
            ReaderEvent::Closed { .. } | ReaderEvent::Done => ControlFlow::Break(None),
            ReaderEvent::UpToDate { .. }
            | ReaderEvent::Retrying { .. }
            | ReaderEvent::FellBackToLongPoll => ControlFlow::Continue(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, Operation};

    #[test]
    fn chunks_end_where_the_reader_ends() {
        let chunk = Chunk {
            data: Bytes::from_static(b"x"),
            next_offset: Offset::beginning(),
            partial: false,
            up_to_date: false,
            closed: false,
            cursor: None,
            json: false,
        };
        let error = Error::new(Operation::Read, "u", ErrorKind::NotFound);
        let events = [
            (
                ReaderEvent::Data(chunk.clone()),
                false,
                Some(Some(Ok(chunk))),
            ),
            (
                ReaderEvent::Failed(error.clone()),
                true,
                Some(Some(Err(error.clone()))),
            ),
            (
                ReaderEvent::Closed {
                    offset: Offset::beginning(),
                },
                true,
                Some(None),
            ),
            (ReaderEvent::Done, true, Some(None)),
            (
                ReaderEvent::UpToDate {
                    offset: Offset::beginning(),
                },
                false,
                None,
            ),
            (ReaderEvent::FellBackToLongPoll, false, None),
            (
                ReaderEvent::Retrying {
                    error,
                    attempt: 1,
                    delay: Duration::from_secs(1),
                },
                false,
                None,
            ),
        ];
        for (event, terminal, item) in events {
            assert_eq!(event.is_terminal(), terminal, "{event:?}");
            let got = match event.into_chunk() {
                ControlFlow::Break(item) => Some(item),
                ControlFlow::Continue(()) => None,
            };
            assert_eq!(got, item);
        }
    }
}
