//! Collecting a reader's chunks into one value: what drivers' `read_all` return.

use crate::offset::Offset;
use crate::reader::Chunk;
use bytes::{Bytes, BytesMut};

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

        let empty = ChunkAccumulator::starting_at(Offset::parse("9").unwrap())
            .finish()
            .unwrap();
        assert!(empty.data.is_empty());
        assert_eq!(empty.next_offset.as_str(), "9");
    }
}
