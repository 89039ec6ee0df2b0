//! A response body collected whole under a size limit, for one-shot operations: the driver
//! hands each piece it reads to a [`BodyCollector`] and takes the body at the end. A body of
//! one piece is kept as it is (no copy); from the second piece on, the pieces are copied into
//! one buffer, sized once from the body's expected length when the HTTP stack knows it.

use crate::exchange::TransportError;
use bytes::{Bytes, BytesMut};

/// Collects the pieces of one response body, refusing more than a limit.
#[derive(Debug)]
pub struct BodyCollector {
    limit: usize,
    hint: usize,
    first: Option<Bytes>,
    all: BytesMut,
    total: usize,
}

impl BodyCollector {
    /// A collector that refuses bodies over `limit` bytes; `expected`: the body's length as
    /// far as the HTTP stack knows it (a lower bound, `0` when unknown).
    pub fn new(limit: usize, expected: u64) -> BodyCollector {
        BodyCollector {
            limit,
            hint: usize::try_from(expected).unwrap_or(usize::MAX).min(limit),
            first: None,
            all: BytesMut::new(),
            total: 0,
        }
    }

    /// Adds the next piece; fails ([`TransportError::too_large`]) once the body is over the
    /// limit.
    pub fn push(&mut self, piece: Bytes) -> Result<(), TransportError> {
        if piece.is_empty() {
            return Ok(());
        }
        self.total = self.total.saturating_add(piece.len());
        if self.total > self.limit {
            return Err(TransportError::too_large(self.limit));
        }
        if self.total == piece.len() {
            self.first = Some(piece);
            return Ok(());
        }
        if let Some(first) = self.first.take() {
            self.all.reserve(self.hint.max(self.total));
            self.all.extend_from_slice(&first);
        }
        self.all.extend_from_slice(&piece);
        Ok(())
    }

    /// The whole body.
    pub fn finish(self) -> Bytes {
        self.first.unwrap_or_else(|| self.all.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::TransportErrorKind;

    #[test]
    fn one_piece_is_kept_as_it_is_and_more_are_joined() {
        let piece = Bytes::from_static(b"hello");
        let mut one = BodyCollector::new(10, 0);
        one.push(piece.clone()).unwrap();
        one.push(Bytes::new()).unwrap();
        let body = one.finish();
        assert_eq!(body.as_ptr(), piece.as_ptr(), "not copied");
        let mut many = BodyCollector::new(10, 8);
        for p in ["he", "", "llo", " w"] {
            many.push(Bytes::from(p)).unwrap();
        }
        assert_eq!(many.finish(), "hello w");
        assert!(BodyCollector::new(10, 0).finish().is_empty());
    }

    #[test]
    fn a_body_over_the_limit_is_refused() {
        let mut c = BodyCollector::new(4, u64::MAX);
        c.push(Bytes::from_static(b"abcd")).unwrap();
        let err = c.push(Bytes::from_static(b"e")).unwrap_err();
        assert_eq!(err.kind, TransportErrorKind::TooLarge);
        assert!(err.message.contains("exceeds 4 bytes"), "{err}");
        let mut at_once = BodyCollector::new(4, 0);
        assert!(at_once.push(Bytes::from_static(b"abcde")).is_err());
    }
}
