//! A reader's JSON messages one by one: what the drivers' `JsonItems` hand out. Each chunk of
//! a JSON stream is an array of messages (PROTOCOL.md 9.1.5); they are queued and decoded one
//! at a time, so a slow consumer holds raw bytes, not decoded values.

use crate::error::ResponseReason;
use crate::error::{Error, Operation};
use crate::reader::Chunk;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;

/// The messages of the chunks read so far that were not handed out yet.
#[derive(Debug, Default)]
pub struct JsonItemQueue {
    pending: VecDeque<Bytes>,
}

impl JsonItemQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many messages wait.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no message waits (the driver then reads the next chunk).
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Queues the messages of `chunk` (read from the stream at `url`); a chunk that is not a
    /// JSON array is [`ErrorKind::InvalidResponse`](crate::ErrorKind::InvalidResponse).
    pub fn push(&mut self, chunk: &Chunk, url: &str) -> Result<(), Error> {
        let items = chunk
            .items()
            .map_err(|m| Error::invalid_response(Operation::Read, url, ResponseReason::Body, m))?;
        self.pending.extend(items);
        Ok(())
    }

    /// The next message as a `T`, if one waits; what serde refuses is
    /// [`ErrorKind::InvalidResponse`](crate::ErrorKind::InvalidResponse) (the message is
    /// consumed: the next call moves on).
    pub fn next<T: DeserializeOwned>(&mut self, url: &str) -> Option<Result<T, Error>> {
        let raw = self.pending.pop_front()?;
        Some(serde_json::from_slice(&raw).map_err(|e| {
            Error::invalid_response(
                Operation::Read,
                url,
                ResponseReason::Body,
                format!("JSON message: {e}"),
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, Offset};

    fn chunk(data: &'static [u8]) -> Chunk {
        Chunk {
            data: Bytes::from_static(data),
            next_offset: Offset::parse("1").unwrap(),
            partial: false,
            up_to_date: false,
            closed: false,
            cursor: None,
            json: true,
        }
    }

    #[test]
    fn messages_come_out_one_by_one_in_order() {
        let mut q = JsonItemQueue::new();
        assert!(q.next::<u32>("u").is_none());
        q.push(&chunk(b"[1,2]"), "u").unwrap();
        q.push(&chunk(b"[3]"), "u").unwrap();
        assert_eq!(q.len(), 3);
        assert!(
            !q.is_empty(),
            "messages wait: the driver must not read another chunk"
        );
        let got: Vec<u32> = std::iter::from_fn(|| q.next("u"))
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, vec![1, 2, 3]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_bad_chunk_or_message_is_an_invalid_response_and_the_rest_goes_on() {
        let mut q = JsonItemQueue::new();
        let e = q.push(&chunk(b"{\"a\":1}"), "http://h/s?t=1").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidResponse(_)));
        assert_eq!(e.url, "http://h/s");
        q.push(&chunk(b"[\"x\",2]"), "u").unwrap();
        let e = q.next::<u32>("u").unwrap().unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidResponse(_)));
        assert_eq!(q.next::<u32>("u").unwrap().unwrap(), 2);
    }
}
