//! Batches: the open one collecting appends, and sealed ones with a fixed body and sequence
//! number. Plain fields throughout, so a later snapshot can serialize sealed batches.

use super::events::FailureReason;
use crate::error::Error;
use crate::io::RequestId;
use crate::offset::Offset;
use crate::retry::Backoff;
use bytes::{BufMut, Bytes, BytesMut};
use std::time::Instant;

/// The batch collecting appends; it has no sequence number yet.
///
/// Its body is built as appends arrive: the first payload is kept as it is (a batch of one
/// is sent without a copy, which matters for large appends), and from the second on the
/// payloads are copied into one buffer, `[a,b,...` in JSON mode. Sealing then hands the
/// buffer over without another pass over the bytes or a list of per-item handles.
#[derive(Debug, Default)]
pub(super) struct OpenBatch {
    /// Id of its first append (meaningful when not empty).
    pub first: u64,
    /// The only payload so far, not copied.
    lone: Option<Bytes>,
    /// The body so far once there are two payloads or more.
    joined: BytesMut,
    /// The payloads' lengths, in order.
    lens: Vec<usize>,
    /// Sum of the payload lengths.
    pub payload: usize,
    /// When linger expires (set by the first append).
    pub deadline: Option<Instant>,
    /// Linger expired while the batch could not be sent: seal it as soon as it can be.
    pub due: bool,
}

impl OpenBatch {
    /// A batch holding `items` (restoring a snapshot).
    pub fn from_items(items: Vec<Bytes>, json: bool) -> OpenBatch {
        let mut open = OpenBatch::default();
        let mut spare = None;
        for item in items {
            open.push(item, json, &mut spare, 0);
        }
        open
    }

    /// The request body size if a payload of `extra` bytes were added (`extra` 0: as it is).
    pub fn body_len_with(&self, json: bool, extra: usize) -> usize {
        let n = self.lens.len() + usize::from(extra > 0);
        let payload = self.payload + extra;
        if json && n > 0 {
            // `[` + items joined by `,` + `]`
            payload + n + 1
        } else {
            payload
        }
    }

    /// The number of appends in it.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Adds a payload. The body buffer, when one is started, is `spare` (a recycled one) if
    /// there is one, with room for `reserve` bytes.
    #[inline]
    pub fn push(&mut self, data: Bytes, json: bool, spare: &mut Option<BytesMut>, reserve: usize) {
        self.payload += data.len();
        self.lens.push(data.len());
        if self.lens.len() == 1 {
            self.lone = Some(data);
            return;
        }
        if let Some(first) = self.lone.take() {
            let mut buf = spare.take().unwrap_or_default();
            buf.clear();
            buf.reserve(reserve.max(first.len() + data.len() + 3));
            if json {
                buf.put_u8(b'[');
            }
            buf.put_slice(&first);
            self.joined = buf;
        }
        if json {
            self.joined.put_u8(b',');
        }
        self.joined.put_slice(&data);
    }

    /// Takes the body (a JSON array in JSON mode, the bytes concatenated otherwise; empty for
    /// an empty batch) and the payloads' lengths, from which [`Batch::payloads`] finds them
    /// again; the batch is left empty, its length list with room for as many appends.
    pub fn seal(&mut self, json: bool) -> (Bytes, Vec<usize>) {
        let room = self.lens.len();
        let lens = std::mem::replace(&mut self.lens, Vec::with_capacity(room));
        self.payload = 0;
        self.deadline = None;
        self.due = false;
        let body = match self.lone.take() {
            Some(one) if json => {
                let mut out = BytesMut::with_capacity(one.len() + 2);
                out.put_u8(b'[');
                out.put_slice(&one);
                out.put_u8(b']');
                out.freeze()
            }
            Some(one) => one,
            None if lens.is_empty() => Bytes::new(),
            None => {
                if json {
                    self.joined.put_u8(b']');
                }
                std::mem::take(&mut self.joined).freeze()
            }
        };
        (body, lens)
    }

    /// Cuts the batch so that its body is at most `limit` bytes: keeps its first appends (at
    /// least one) and returns the others as a new open batch that is due at once (it has
    /// waited already). `None` when the body is within `limit` or there is one append. No
    /// payload is copied: the joined buffer is split where the kept appends end (in JSON mode
    /// the `,` there becomes the rest's `[`, and the kept part gets its `]` when sealed).
    pub fn split_off_past(&mut self, json: bool, limit: usize) -> Option<OpenBatch> {
        if self.lens.len() < 2 || self.body_len_with(json, 0) <= limit {
            return None;
        }
        let mut keep = 0;
        let mut payload = 0;
        for &len in &self.lens[..self.lens.len() - 1] {
            let body = if json {
                payload + len + keep + 2
            } else {
                payload + len
            };
            if keep > 0 && body > limit {
                break;
            }
            keep += 1;
            payload += len;
        }
        let cut = payload + if json { keep } else { 0 };
        let mut rest_body = self.joined.split_off(cut);
        if json {
            rest_body[0] = b'[';
        }
        let rest_lens = self.lens.split_off(keep);
        let rest = OpenBatch {
            first: self.first + keep as u64,
            lone: None,
            joined: rest_body,
            payload: self.payload - payload,
            lens: rest_lens,
            deadline: None,
            due: true,
        };
        self.payload = payload;
        Some(rest)
    }

    /// The payloads, in order (copies when they were joined).
    pub fn payloads(&self, json: bool) -> Vec<Bytes> {
        if let Some(one) = &self.lone {
            return vec![one.clone()];
        }
        if self.lens.is_empty() {
            return Vec::new();
        }
        let joined = Bytes::copy_from_slice(&self.joined);
        split_body(&joined, &self.lens, json)
    }
}

/// The items of a body built by [`OpenBatch::seal`], as slices of it (byte-equal to the
/// originals).
pub(super) fn split_body(body: &Bytes, lens: &[usize], json: bool) -> Vec<Bytes> {
    let mut at = usize::from(json); // after `[`
    lens.iter()
        .map(|&len| {
            let slice = body.slice(at..at + len);
            at += len + usize::from(json); // and the `,`
            slice
        })
        .collect()
}

/// Where a sealed batch is in its life (see the diagram in the module docs).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum BatchState {
    /// To be sent (first attempt, after a backoff, or waiting for an epoch switch).
    Ready,
    /// An attempt is outstanding.
    InFlight(RequestId),
    /// Waiting to retry after a 429, 5xx or transport failure.
    Backoff(Instant),
    /// Got a `409` sequence gap: re-sent once every earlier batch has an outcome.
    GapWait,
    /// Stored (waiting for earlier batches before being reported).
    Acked {
        next_offset: Option<Offset>,
        duplicate: bool,
    },
    /// Failed (waiting for earlier batches before being reported).
    Failed(FailureReason),
}

/// A sealed batch: its body, epoch and sequence number never change (except for an epoch
/// switch, which renumbers batches that are safe to re-send).
#[derive(Debug)]
pub(super) struct Batch {
    /// Internal key, increasing in queue order.
    pub bid: u64,
    /// Id of its first append.
    pub first: u64,
    /// Number of appends (0 for an empty close).
    pub count: u64,
    /// The payloads' lengths: with `body`, they give the payloads back
    /// ([`Batch::payloads`]) for a failure report.
    pub lens: Vec<usize>,
    /// The payloads of a failed batch, for its failure report (empty until it fails).
    pub failed_items: Vec<Bytes>,
    /// The exact request body (dropped once resolved).
    pub body: Bytes,
    /// Sum of the payload lengths (what `buffered_bytes` counts).
    pub payload: usize,
    /// Sent with `Stream-Closed: true`.
    pub close: bool,
    /// `Producer-Epoch` it is sent under.
    pub epoch: u64,
    /// `Producer-Seq` in that epoch.
    pub seq: u64,
    /// Where it is.
    pub state: BatchState,
    /// An attempt in this epoch ended without a definite answer: it may be stored.
    pub uncertain: bool,
    /// Retry schedule, started by the first attempt in this epoch (`None`: never sent in it).
    pub backoff: Option<Backoff>,
    /// An earlier (or global) failure stopped the producer while this batch was in flight: on
    /// its answer it is acknowledged (2xx) or failed with this error.
    pub doomed: Option<Error>,
}

impl Batch {
    /// Whether it has an outcome (acked or failed).
    pub fn is_resolved(&self) -> bool {
        matches!(self.state, BatchState::Acked { .. } | BatchState::Failed(_))
    }

    /// Whether it is an empty close (sent with `close_request`).
    pub fn is_close_only(&self) -> bool {
        self.close && self.count == 0
    }

    /// The payloads, as slices of the body (byte-equal to what was appended).
    pub fn payloads(&self, json: bool) -> Vec<Bytes> {
        if self.body.is_empty() {
            return Vec::new();
        }
        split_body(&self.body, &self.lens, json)
    }

    /// Whether it was sealed and never sent in its epoch: nothing at or after it is active.
    pub fn is_unsent(&self) -> bool {
        self.state == BatchState::Ready && self.backoff.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(items: &[Bytes], json: bool) -> (Bytes, Vec<usize>) {
        let mut open = OpenBatch::default();
        let mut spare = None;
        for item in items {
            open.push(item.clone(), json, &mut spare, 0);
        }
        open.seal(json)
    }

    #[test]
    fn bodies() {
        let items = vec![Bytes::from_static(b"{}"), Bytes::from_static(b"[1]")];
        for (json, expected) in [(true, &b"[{},[1]]"[..]), (false, &b"{}[1]"[..])] {
            let (body, lens) = sealed(&items, json);
            assert_eq!(&body[..], expected);
            assert_eq!(split_body(&body, &lens, json), items);
            assert_eq!(
                OpenBatch::from_items(items.clone(), json).payloads(json),
                items
            );
        }
        let (body, lens) = sealed(&items[..1], true);
        let slices = split_body(&body, &lens, true);
        assert_eq!((&body[..], &slices[..]), (&b"[{}]"[..], &items[..1]));
        let (body, lens) = sealed(&items[..1], false);
        let slices = split_body(&body, &lens, false);
        assert_eq!((&body[..], &slices[..]), (&b"{}"[..], &items[..1]));
        assert!(sealed(&[], true).0.is_empty());
    }

    #[test]
    fn a_lone_payload_is_sent_without_a_copy_and_a_spare_buffer_is_used() {
        let big = Bytes::from(vec![7u8; 1 << 16]);
        let (body, _) = sealed(std::slice::from_ref(&big), false);
        assert_eq!(body.as_ptr(), big.as_ptr());
        let mut spare = Some(BytesMut::with_capacity(4096));
        let at = spare.as_ref().map(|b| b.as_ptr());
        let mut open = OpenBatch::default();
        open.push(Bytes::from_static(b"ab"), false, &mut spare, 0);
        open.push(Bytes::from_static(b"cd"), false, &mut spare, 0);
        assert!(spare.is_none());
        let (body, lens) = open.seal(false);
        assert_eq!((&body[..], &lens[..]), (&b"abcd"[..], &[2, 2][..]));
        assert_eq!(Some(body.as_ptr()), at);
        assert!(open.is_empty() && open.payload == 0);
    }

    /// A batch cut at a limit keeps its first appends within it (at least one) and hands the
    /// others on, in order, as a batch that is due; both seal to the bodies they would have
    /// had alone, in both modes, at every limit.
    #[test]
    fn a_batch_split_past_a_limit_keeps_its_first_appends() {
        let items: Vec<Bytes> = ["a", "bcd", "ef", "g", "hijk"]
            .iter()
            .map(|s| Bytes::from_static(s.as_bytes()))
            .collect();
        for json in [false, true] {
            let whole = sealed(&items, json).0.len();
            for limit in 0..whole + 2 {
                let mut open = OpenBatch::default();
                let mut spare = None;
                for item in &items {
                    open.push(item.clone(), json, &mut spare, 0);
                }
                open.first = 10;
                let Some(mut rest) = open.split_off_past(json, limit) else {
                    assert!(limit >= whole, "json {json}, limit {limit}");
                    continue;
                };
                assert!(limit < whole);
                let keep = open.len();
                assert!(keep >= 1 && keep < items.len());
                let (body, lens) = open.seal(json);
                assert_eq!((body.clone(), lens), sealed(&items[..keep], json));
                assert!(
                    keep == 1 || body.len() <= limit,
                    "json {json}, limit {limit}"
                );
                // One more append would not have fitted.
                assert!(sealed(&items[..=keep], json).0.len() > limit);
                assert_eq!(
                    (rest.first, rest.due, rest.deadline),
                    (10 + keep as u64, true, None)
                );
                assert_eq!(rest.payloads(json), items[keep..].to_vec());
                assert_eq!(
                    rest.payload,
                    items[keep..].iter().map(Bytes::len).sum::<usize>()
                );
                // The rest goes on collecting appends.
                rest.push(Bytes::from_static(b"z"), json, &mut spare, 0);
                let mut more = items[keep..].to_vec();
                more.push(Bytes::from_static(b"z"));
                assert_eq!(rest.seal(json), sealed(&more, json));
            }
        }
        let mut one = OpenBatch::from_items(vec![Bytes::from_static(b"abcdef")], false);
        assert!(
            one.split_off_past(false, 2).is_none(),
            "one append is not cut"
        );
    }

    #[test]
    fn body_lengths() {
        let mut open = OpenBatch::default();
        assert_eq!(open.body_len_with(true, 0), 0);
        assert_eq!(open.body_len_with(true, 2), 4);
        let mut spare = None;
        open.push(Bytes::from_static(b"{}"), true, &mut spare, 0);
        assert_eq!(open.body_len_with(true, 0), 4);
        assert_eq!(open.body_len_with(true, 3), 8);
        assert_eq!(open.body_len_with(false, 3), 5);
    }
}
