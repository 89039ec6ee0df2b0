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
#[derive(Debug, Default)]
pub(super) struct OpenBatch {
    /// Id of its first append (meaningful when `items` is not empty).
    pub first: u64,
    /// The payloads, in order.
    pub items: Vec<Bytes>,
    /// Sum of the payload lengths.
    pub payload: usize,
    /// When linger expires (set by the first append).
    pub deadline: Option<Instant>,
    /// Linger expired while the batch could not be sent: seal it as soon as it can be.
    pub due: bool,
}

impl OpenBatch {
    /// The request body size if a payload of `extra` bytes were added (`extra` 0: as it is).
    pub fn body_len_with(&self, json: bool, extra: usize) -> usize {
        let n = self.items.len() + usize::from(extra > 0);
        let payload = self.payload + extra;
        if json && n > 0 {
            // `[` + items joined by `,` + `]`
            payload + n + 1
        } else {
            payload
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Builds the body of a sealed batch: a JSON array of the items in JSON mode, the bytes
/// concatenated otherwise; empty for an empty close. Also returns the items' lengths, from
/// which [`Batch::payloads`] finds them again in the body, so a sealed batch holds its payload
/// once and sealing does no per-item reference counting.
pub(super) fn seal_body(items: Vec<Bytes>, json: bool) -> (Bytes, Vec<usize>) {
    let lens = items.iter().map(Bytes::len).collect();
    let body = match items.as_slice() {
        [] => Bytes::new(),
        [one] if !json => one.clone(),
        _ if json => {
            crate::json::batch(&items).unwrap_or_else(|_| unreachable!("a batch is never empty"))
        }
        _ => {
            let mut out = BytesMut::with_capacity(items.iter().map(Bytes::len).sum());
            for item in &items {
                out.put_slice(item);
            }
            out.freeze()
        }
    };
    (body, lens)
}

/// The items of a body built by [`seal_body`], as slices of it (byte-equal to the originals).
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

    #[test]
    fn bodies() {
        let items = vec![Bytes::from_static(b"{}"), Bytes::from_static(b"[1]")];
        for (json, expected) in [(true, &b"[{},[1]]"[..]), (false, &b"{}[1]"[..])] {
            let (body, lens) = seal_body(items.clone(), json);
            assert_eq!(&body[..], expected);
            assert_eq!(split_body(&body, &lens, json), items);
        }
        let (body, lens) = seal_body(items[..1].to_vec(), true);
        let slices = split_body(&body, &lens, true);
        assert_eq!((&body[..], &slices[..]), (&b"[{}]"[..], &items[..1]));
        let (body, lens) = seal_body(items[..1].to_vec(), false);
        let slices = split_body(&body, &lens, false);
        assert_eq!((&body[..], &slices[..]), (&b"{}"[..], &items[..1]));
        assert!(seal_body(Vec::new(), true).0.is_empty());
    }

    #[test]
    fn body_lengths() {
        let mut open = OpenBatch::default();
        assert_eq!(open.body_len_with(true, 0), 0);
        assert_eq!(open.body_len_with(true, 2), 4);
        open.items.push(Bytes::from_static(b"{}"));
        open.payload = 2;
        assert_eq!(open.body_len_with(true, 0), 4);
        assert_eq!(open.body_len_with(true, 3), 8);
        assert_eq!(open.body_len_with(false, 3), 5);
    }
}
