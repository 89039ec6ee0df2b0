//! The stream store: the path namespace, stream records, fork chains, the lifecycle (delete,
//! soft-delete, expiry, cascading clean-up) and reads stitched across fork chains.
//!
//! Streams live under an internal [`StreamId`]; the namespace maps a request path to the id
//! currently living there. Forks reference their source by id, so a source that leaves the
//! namespace (soft-deleted or expired) keeps serving its data to forks until the last fork is
//! gone (PROTOCOL.md 4.2, "Soft-delete and lifecycle").

use super::clock::{UnixNanos, VirtualClock};
use super::producer::{ProducerState, ProducerTuple};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// The internal identity of a stream (also its `ETag` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct StreamId(pub u64);

/// One stored unit: a JSON message, or the body of one append for other content types.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub start: u64,
    pub data: Bytes,
    /// The last unit of one append (a JSON batch stores several messages).
    pub append_end: bool,
}

impl Entry {
    fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }
}

/// Where a fork branches off its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ForkBase {
    pub source: StreamId,
    /// Positions before this come from the source.
    pub position: u64,
}

/// When a stream expires (5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expiry {
    Never,
    /// Sliding TTL in seconds, counted from the last read or write.
    Ttl(u64),
    /// Absolute expiry: the header text (echoed by HEAD) and its time.
    At {
        text: String,
        unix: UnixNanos,
    },
}

/// The configuration a `PUT` asked for, compared by later `PUT`s (5.1, 4.2 "Idempotent fork
/// creation"); the content type and closure status are compared with the stream's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CreateConfig {
    pub ttl: Option<u64>,
    pub expires_at: Option<UnixNanos>,
    pub fork: Option<ForkRequest>,
}

/// The fork headers of a `PUT`, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForkRequest {
    pub from: String,
    pub offset: Option<u64>,
    pub sub_offset: u64,
}

/// Whether clients can reach a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visibility {
    Live,
    /// Deleted while forks reference it: 410 at its path, which stays blocked (4.2).
    SoftDeleted,
    /// Expired while forks reference it: gone from the namespace, data kept for the forks.
    Detached,
}

/// One stream.
#[derive(Debug, Clone)]
pub(crate) struct Stream {
    pub id: StreamId,
    pub path: String,
    pub content_type: String,
    pub json: bool,
    pub text: bool,
    pub expiry: Expiry,
    pub last_access: Instant,
    pub base: Option<ForkBase>,
    pub entries: Vec<Entry>,
    pub tail: u64,
    pub closed: bool,
    /// The producer tuple whose append closed the stream (5.2.1, "Stream Closure with
    /// Idempotent Producers").
    pub closed_by: Option<ProducerTuple>,
    pub producers: BTreeMap<String, ProducerState>,
    /// The last `Stream-Seq` (scope: the whole stream, 5.2).
    pub stream_seq: Option<String>,
    /// How many forks reference this stream.
    pub refcount: u32,
    pub visibility: Visibility,
    pub requested: CreateConfig,
}

impl Stream {
    /// The first position stored by this stream itself (the fork point, or 0).
    pub fn own_start(&self) -> u64 {
        self.base.map_or(0, |b| b.position)
    }

    /// Stores one append: several JSON messages, or one body. Returns the new tail.
    pub fn push_append(&mut self, units: Vec<Bytes>) -> u64 {
        let n = units.len();
        for (i, data) in units.into_iter().enumerate() {
            let start = self.tail;
            self.tail += data.len() as u64;
            self.entries.push(Entry {
                start,
                data,
                append_end: i + 1 == n,
            });
        }
        self.tail
    }

    /// When the stream expires, if it does.
    pub fn deadline(&self, clock: &VirtualClock) -> Option<Instant> {
        match &self.expiry {
            Expiry::Never => None,
            Expiry::Ttl(secs) => self.last_access.checked_add(Duration::from_secs(*secs)),
            Expiry::At { unix, .. } => clock.instant_at(*unix),
        }
    }

    /// Refreshes a sliding TTL (reads and writes do, `HEAD` does not: 5.1).
    pub fn touch(&mut self, now: Instant) {
        self.last_access = now;
    }
}

/// A slice of stored data met while reading.
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    pub start: u64,
    pub data: Bytes,
    /// The piece ends an append (or the inherited range of a fork).
    pub append_end: bool,
}

/// The data of one read: its units in order and the position after them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Chunk {
    pub units: Vec<Bytes>,
    pub end: u64,
}

/// What lives at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    Missing,
    /// Soft-deleted (410).
    Gone(StreamId),
    Live(StreamId),
}

/// All streams.
#[derive(Debug, Clone, Default)]
pub(crate) struct Store {
    streams: BTreeMap<StreamId, Stream>,
    paths: BTreeMap<String, StreamId>,
    next_id: u64,
}

impl Store {
    pub fn lookup(&self, path: &str) -> Lookup {
        match self.paths.get(path) {
            None => Lookup::Missing,
            Some(id) if self.streams[id].visibility == Visibility::Live => Lookup::Live(*id),
            Some(id) => Lookup::Gone(*id),
        }
    }

    /// The live stream at `path`.
    pub fn live(&self, path: &str) -> Option<&Stream> {
        match self.lookup(path) {
            Lookup::Live(id) => Some(self.get(id)),
            _ => None,
        }
    }

    pub fn get(&self, id: StreamId) -> &Stream {
        &self.streams[&id]
    }

    pub fn get_mut(&mut self, id: StreamId) -> &mut Stream {
        self.streams.get_mut(&id).expect("stream ids are valid")
    }

    /// Reserves the id of a stream about to be inserted.
    pub fn next_id(&mut self) -> StreamId {
        self.next_id += 1;
        StreamId(self.next_id)
    }

    /// Adds a stream at its path (replacing nothing: the caller checked the path is free) and
    /// counts the reference to its fork source.
    pub fn insert(&mut self, stream: Stream) {
        if let Some(base) = stream.base {
            self.get_mut(base.source).refcount += 1;
        }
        self.paths.insert(stream.path.clone(), stream.id);
        self.streams.insert(stream.id, stream);
    }

    /// `DELETE` of a live stream: soft-delete when forks reference it, remove otherwise (5.4).
    pub fn delete(&mut self, id: StreamId) {
        let s = self.get_mut(id);
        if s.refcount > 0 {
            s.visibility = Visibility::SoftDeleted;
        } else {
            self.remove(id);
        }
    }

    /// Removes a stream's data, then its source's if that was the last reference to a source
    /// that clients can no longer reach (cascading clean-up, 4.2).
    fn remove(&mut self, id: StreamId) {
        let Some(s) = self.streams.remove(&id) else {
            return;
        };
        if self.paths.get(&s.path) == Some(&id) {
            self.paths.remove(&s.path);
        }
        if let Some(base) = s.base {
            if let Some(src) = self.streams.get_mut(&base.source) {
                src.refcount = src.refcount.saturating_sub(1);
                if src.refcount == 0 && src.visibility != Visibility::Live {
                    self.remove(base.source);
                }
            }
        }
    }

    /// Expires every stream in the namespace whose TTL or expiry time has passed: it leaves the
    /// namespace (404 from now on, path free) and its data goes unless forks still use it.
    /// Returns the streams that left the namespace.
    pub fn expire_due(&mut self, now: Instant, clock: &VirtualClock) -> Vec<StreamId> {
        let due: Vec<StreamId> = self
            .paths
            .values()
            .copied()
            .filter(|id| self.get(*id).deadline(clock).is_some_and(|d| d <= now))
            .collect();
        for id in &due {
            let path = self.get(*id).path.clone();
            self.paths.remove(&path);
            let s = self.get_mut(*id);
            if s.refcount > 0 {
                s.visibility = Visibility::Detached;
            } else {
                self.remove(*id);
            }
        }
        due
    }

    /// The earliest expiry among streams in the namespace.
    pub fn next_expiry(&self, clock: &VirtualClock) -> Option<Instant> {
        self.paths
            .values()
            .filter_map(|id| self.get(*id).deadline(clock))
            .min()
    }

    /// Paths of the live streams.
    pub fn live_paths(&self) -> impl Iterator<Item = &str> {
        self.paths
            .iter()
            .filter(|(_, id)| self.get(**id).visibility == Visibility::Live)
            .map(|(p, _)| p.as_str())
    }

    /// Calls `f` with the data of stream `id` in `[from, to)`, in order, stitching the fork
    /// chain: positions before the fork point come from the source (4.2).
    pub fn visit(
        &self,
        id: StreamId,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(Piece) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let s = self.get(id);
        let own_start = s.own_start();
        if let Some(base) = s.base.filter(|_| from < own_start) {
            let cap = to.min(base.position);
            self.visit(base.source, from, cap, &mut |mut p| {
                if p.start + p.data.len() as u64 == base.position {
                    p.append_end = true;
                }
                f(p)
            })?;
        }
        let from = from.max(own_start);
        let first = s.entries.partition_point(|e| e.end() <= from);
        for e in &s.entries[first..] {
            if e.start >= to {
                break;
            }
            let (a, b) = (from.max(e.start), to.min(e.end()));
            f(Piece {
                start: a,
                data: e.data.slice((a - e.start) as usize..(b - e.start) as usize),
                append_end: e.append_end && b == e.end(),
            })?;
        }
        ControlFlow::Continue(())
    }

    /// Everything stream `id` holds from `from` to its tail.
    pub fn units(&self, id: StreamId, from: u64) -> Vec<Bytes> {
        let mut out = Vec::new();
        let _ = self.visit(id, from, self.get(id).tail, &mut |p| {
            out.push(p.data);
            ControlFlow::Continue(())
        });
        out
    }

    /// Reads from `from` towards the tail, at most `limit` bytes (None: no limit): whole
    /// messages for JSON streams (at least one), otherwise bytes, cut at a UTF-8 character
    /// boundary for `text/*` streams.
    pub fn read_chunk(&self, id: StreamId, from: u64, limit: Option<usize>) -> Chunk {
        let s = self.get(id);
        let (json, text, tail) = (s.json, s.text, s.tail);
        let limit = limit.unwrap_or(usize::MAX).max(1);
        let mut chunk = Chunk {
            units: Vec::new(),
            end: from,
        };
        let mut used = 0usize;
        let _ = self.visit(id, from, tail, &mut |p| {
            let len = p.data.len();
            if json {
                if !chunk.units.is_empty() && used + len > limit {
                    return ControlFlow::Break(());
                }
            } else if len > limit - used {
                let room = limit - used;
                let cut = if text {
                    utf8_cut(&p.data, room, chunk.units.is_empty())
                } else {
                    room
                };
                if cut > 0 {
                    chunk.end = p.start + cut as u64;
                    chunk.units.push(p.data.slice(..cut));
                }
                return ControlFlow::Break(());
            }
            used += len;
            chunk.end = p.start + len as u64;
            chunk.units.push(p.data);
            if used >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        chunk
    }

    /// Whether `position` starts a message of a JSON stream (or is its tail).
    pub fn is_message_boundary(&self, id: StreamId, position: u64) -> bool {
        let s = self.get(id);
        if position == s.tail || position == s.own_start() {
            return position <= s.tail;
        }
        if position > s.tail {
            return false;
        }
        match s.base {
            Some(base) if position < base.position => {
                self.is_message_boundary(base.source, position)
            }
            _ => s
                .entries
                .binary_search_by_key(&position, |e| e.start)
                .is_ok(),
        }
    }

    /// Resolves a fork's divergence point: `anchor` refined by `sub` units (JSON messages or
    /// bytes) that must stay within the append the anchor starts (4.2, "Fork creation errors").
    pub fn fork_point(&self, source: StreamId, anchor: u64, sub: u64) -> Result<u64, String> {
        let s = self.get(source);
        if anchor > s.tail {
            return Err("Stream-Fork-Offset is beyond the source stream's tail".to_owned());
        }
        if s.json && !self.is_message_boundary(source, anchor) {
            return Err("Stream-Fork-Offset is not a message boundary".to_owned());
        }
        if sub == 0 {
            return Ok(anchor);
        }
        let json = s.json;
        let (mut left, mut target, mut reached) = (sub, anchor, false);
        let _ = self.visit(source, anchor, s.tail, &mut |p| {
            let len = p.data.len() as u64;
            if json {
                left -= 1;
                target = p.start + len;
                reached = left == 0;
                if reached || p.append_end {
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            } else {
                reached = sub <= len;
                target = anchor + sub;
                ControlFlow::Break(())
            }
        });
        if reached {
            Ok(target)
        } else {
            Err("Stream-Fork-Sub-Offset goes past the next data boundary".to_owned())
        }
    }
}

/// Where to cut `data` at most `room` bytes in without splitting a UTF-8 character; when that
/// leaves nothing and the chunk must make progress, the first character is taken whole.
fn utf8_cut(data: &[u8], room: usize, must_progress: bool) -> usize {
    let continuation = |i: usize| data.get(i).is_some_and(|b| b & 0xC0 == 0x80);
    let mut cut = room;
    while cut > 0 && room - cut < 3 && continuation(cut) {
        cut -= 1;
    }
    if continuation(cut) {
        // Not UTF-8 around here: cut where asked.
        return room;
    }
    if cut == 0 && must_progress {
        cut = room.max(1);
        while cut < data.len() && cut - room < 3 && continuation(cut) {
            cut += 1;
        }
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::utf8_cut;

    #[test]
    fn utf8_cuts() {
        let s = "aé€😀".as_bytes(); // 1 + 2 + 3 + 4 bytes
        assert_eq!(utf8_cut(s, 1, false), 1);
        assert_eq!(utf8_cut(s, 2, false), 1);
        assert_eq!(utf8_cut(s, 3, false), 3);
        assert_eq!(utf8_cut(s, 5, false), 3);
        assert_eq!(utf8_cut(s, 8, false), 6);
        let e = "€".as_bytes();
        assert_eq!(utf8_cut(e, 1, false), 0);
        assert_eq!(utf8_cut(e, 1, true), 3);
        assert_eq!(utf8_cut(&[0x80, 0x80, 0x80, 0x80, 0x80], 4, false), 4);
    }

    /// Where a text read cut by `max_chunk_bytes` ends (5.6): never inside a character of at
    /// most 4 bytes, the first character whole when nothing else fits, and where asked when the
    /// bytes around the cut are not UTF-8 (a read may start inside a character).
    #[test]
    fn utf8_cuts_at_the_edges() {
        let table: &[(&[u8], usize, bool, usize)] = &[
            // A whole 4-byte character when one byte is allowed and progress is needed.
            ("😀".as_bytes(), 1, true, 4),
            ("😀b".as_bytes(), 1, true, 4),
            ("😀".as_bytes(), 3, false, 0),
            ("😀".as_bytes(), 3, true, 4),
            // Only the first character, not what follows it.
            ("€b".as_bytes(), 1, true, 3),
            ("€bcd".as_bytes(), 1, true, 3),
            ("é€".as_bytes(), 1, true, 2),
            // Starting inside a character: cut where asked.
            (&[0x80, 0x80], 1, false, 1),
            (&[0x80, 0x80], 1, true, 1),
            (&[0x82, 0xAC, b'b'], 1, true, 1),
            // Not UTF-8: at most three continuation bytes are stepped over, either way.
            (b"a\x80\x80\x80\x80", 4, false, 4),
            (b"aaaaaa\x80\x80\x80\x80\x80", 10, false, 10),
            (&[0xC3, 0x80, 0x80, 0x80, 0x80, 0x80], 1, true, 4),
            // Valid text far from the start.
            ("aaaaaaaa€".as_bytes(), 9, false, 8),
            ("aaaaaaaa€".as_bytes(), 10, true, 8),
        ];
        for &(data, room, progress, want) in table {
            assert_eq!(
                utf8_cut(data, room, progress),
                want,
                "{data:?} room {room} progress {progress}"
            );
        }
    }
}
