//! Collecting a reader's chunks into one value: what drivers' `read_all` return.

use crate::driver::client::ClientSettings;
use crate::error::ResponseReason;
use crate::error::{Error, ErrorKind, Operation};
use crate::offset::Offset;
use crate::ops::CallOptions;
use crate::reader::{Chunk, ReadMode, ReaderConfig, ReaderEvent};
use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;

/// The reader settings of a `read_all` from `offset`, starting from a handle's reader defaults
/// (`base`): catch-up only, and each request bounded like a one-shot read (the response limit
/// is the client's `max_response_bytes`, the deadline the call's or the client's request
/// timeout, the retry policy the call's or the client's), so a server that accepts and then
/// says nothing cannot hang it.
pub fn reader_config(
    mut base: ReaderConfig,
    offset: Offset,
    settings: &ClientSettings,
    call: &CallOptions,
) -> ReaderConfig {
    base.offset = offset;
    base.mode = ReadMode::CatchUp;
    base.max_body_bytes = settings.max_response_bytes;
    base.catch_up_deadline = call.timeout.or(settings.request_timeout);
    base.retry = call.retry.clone().unwrap_or_else(|| settings.retry.clone());
    base
}

/// The messages of a JSON `read_all` as `T`s; what serde refuses is
/// [`ErrorKind::InvalidResponse`].
pub fn json_messages<T: DeserializeOwned>(all: &ReadAll, url: &str) -> Result<Vec<T>, Error> {
    serde_json::from_slice(&all.data).map_err(|e| {
        Error::new(
            Operation::Read,
            url,
            ErrorKind::invalid_response(
                ResponseReason::Body,
                format!("cannot deserialize JSON messages: {e}"),
            ),
        )
    })
}

/// Everything read from an offset until up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadAll {
    /// The bytes; for JSON streams one JSON array holding every message.
    pub data: Bytes,
    /// Where to continue reading.
    pub next_offset: Offset,
    /// Whether the stream is closed (EOF reached).
    pub closed: bool,
    /// Whether the stream is JSON mode.
    pub json: bool,
}

/// Accumulates [`Chunk`]s into a [`ReadAll`], merging JSON arrays.
#[derive(Debug, Default)]
pub struct ChunkAccumulator {
    /// The only non-empty chunk so far (handed out without a copy when no other follows).
    first: Option<Bytes>,
    bytes: BytesMut,
    json_items: Vec<Bytes>,
    next_offset: Option<Offset>,
    closed: bool,
    json: bool,
    error: Option<String>,
}

impl ChunkAccumulator {
    /// Starts where a read starts (the offset reported when nothing at all arrives).
    pub fn starting_at(offset: Offset) -> Self {
        ChunkAccumulator {
            next_offset: Some(offset),
            ..Self::default()
        }
    }

    /// Adds a chunk.
    pub fn push(&mut self, chunk: Chunk) {
        if chunk.json {
            self.json = true;
            match chunk.items() {
                Ok(items) => self.json_items.extend(items),
                Err(e) => self.error = Some(e),
            }
        } else if !chunk.data.is_empty() {
            if self.first.is_none() && self.bytes.is_empty() {
                self.first = Some(chunk.data);
            } else {
                if let Some(first) = self.first.take() {
                    self.bytes.extend_from_slice(&first);
                }
                self.bytes.extend_from_slice(&chunk.data);
            }
        }
        self.closed |= chunk.closed;
        self.next_offset = Some(chunk.next_offset);
    }

    /// Records that the stream is closed (EOF seen) at `offset`.
    pub fn closed_at(&mut self, offset: Offset) {
        self.closed = true;
        self.next_offset = Some(offset);
    }

    /// Takes one event of the reader: data is kept, a close recorded, a failure returned.
    pub fn observe(&mut self, event: ReaderEvent) -> Result<(), Error> {
        match event {
            ReaderEvent::Data(chunk) => self.push(chunk),
            ReaderEvent::Closed { offset } => self.closed_at(offset),
            ReaderEvent::Failed(e) => return Err(e),
            _ => {}
        }
        Ok(())
    }

    /// The result of a `read_all` of the stream at `url`; a JSON chunk that was not an array
    /// is [`ErrorKind::InvalidResponse`].
    pub fn into_result(self, url: &str) -> Result<ReadAll, Error> {
        self.finish()
            .map_err(|m| Error::invalid_response(Operation::Read, url, ResponseReason::Body, m))
    }

    /// The result; an error when a JSON chunk was not an array.
    pub fn finish(self) -> Result<ReadAll, String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let data = if self.json {
            if self.json_items.is_empty() {
                Bytes::from_static(b"[]")
            } else {
                crate::json::batch(self.json_items)?
            }
        } else if let Some(only) = self.first {
            only
        } else {
            self.bytes.freeze()
        };
        Ok(ReadAll {
            data,
            next_offset: self.next_offset.unwrap_or_else(Offset::beginning),
            closed: self.closed,
            json: self.json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(data: &'static [u8], off: &str, json: bool) -> Chunk {
        Chunk {
            data: Bytes::from_static(data),
            next_offset: Offset::parse(off).unwrap(),
            partial: false,
            up_to_date: false,
            closed: false,
            cursor: None,
            json,
        }
    }

    #[test]
    fn bytes_concatenate_and_json_merges() {
        let mut a = ChunkAccumulator::starting_at(Offset::beginning());
        a.push(chunk(b"ab", "1", false));
        a.push(chunk(b"cd", "2", false));
        let r = a.finish().unwrap();
        assert_eq!(&r.data[..], b"abcd");
        assert_eq!(r.next_offset.as_str(), "2");

        let mut a = ChunkAccumulator::default();
        a.push(chunk(b"[1,2]", "1", true));
        a.push(chunk(b"[{\"x\":3}]", "2", true));
        a.closed_at(Offset::parse("2").unwrap());
        let r = a.finish().unwrap();
        assert_eq!(&r.data[..], b"[1,2,{\"x\":3}]");
        assert!(r.closed && r.json);

        // A chunk that ends the stream closes the result.
        let mut a = ChunkAccumulator::default();
        a.push(chunk(b"ab", "1", false));
        a.push(Chunk {
            closed: true,
            ..chunk(b"cd", "2", false)
        });
        assert!(a.finish().unwrap().closed);

        let empty = ChunkAccumulator::starting_at(Offset::parse("9").unwrap())
            .finish()
            .unwrap();
        assert!(empty.data.is_empty());
        assert_eq!(empty.next_offset.as_str(), "9");
    }

    #[test]
    fn events_are_collected_until_a_failure() {
        let mut a = ChunkAccumulator::starting_at(Offset::beginning());
        a.observe(ReaderEvent::Data(chunk(b"ab", "1", false)))
            .unwrap();
        a.observe(ReaderEvent::Closed {
            offset: Offset::parse("1").unwrap(),
        })
        .unwrap();
        let r = a.into_result("http://h/s").unwrap();
        assert!(r.closed);
        assert_eq!(&r.data[..], b"ab");
        let mut a = ChunkAccumulator::default();
        let e = Error::new(Operation::Read, "http://h/s", ErrorKind::NotFound);
        assert_eq!(a.observe(ReaderEvent::Failed(e.clone())), Err(e));
        let mut a = ChunkAccumulator::default();
        a.push(chunk(b"{", "1", true));
        let e = a.into_result("http://h/s?token=x").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidResponse(_)));
        assert_eq!(e.url, "http://h/s");
    }

    #[test]
    fn read_all_is_a_bounded_catch_up() {
        let settings = ClientSettings {
            max_response_bytes: 1234,
            request_timeout: Some(std::time::Duration::from_secs(3)),
            ..ClientSettings::default()
        };
        let base = ReaderConfig::new("http://h/s");
        let call = CallOptions::default();
        let c = reader_config(base.clone(), Offset::now(), &settings, &call);
        assert_eq!(c.mode, ReadMode::CatchUp);
        assert!(c.offset.is_now());
        assert_eq!(c.max_body_bytes, 1234);
        assert_eq!(c.catch_up_deadline, Some(std::time::Duration::from_secs(3)));
        assert_eq!(c.retry, settings.retry);
        let call = CallOptions {
            timeout: Some(std::time::Duration::from_millis(5)),
            retry: Some(crate::RetryPolicy::none()),
            ..CallOptions::default()
        };
        let c = reader_config(base, Offset::beginning(), &settings, &call);
        assert_eq!(
            c.catch_up_deadline,
            Some(std::time::Duration::from_millis(5))
        );
        assert_eq!(c.retry, crate::RetryPolicy::none());
    }

    #[test]
    fn json_messages_are_typed_or_an_invalid_response() {
        let all = ReadAll {
            data: Bytes::from_static(b"[1,2]"),
            next_offset: Offset::beginning(),
            closed: false,
            json: true,
        };
        assert_eq!(json_messages::<u8>(&all, "http://h/s").unwrap(), vec![1, 2]);
        let e = json_messages::<String>(&all, "http://h/s").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidResponse(_)));
    }
}
