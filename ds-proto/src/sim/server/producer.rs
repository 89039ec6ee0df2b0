//! Idempotent producers (PROTOCOL.md 5.2.1): header parsing and the validation logic.
//!
//! Validation never mutates: it returns a verdict, and the caller commits the proposed state
//! only once the append itself succeeded (5.2.1, "Atomicity Requirements"). Requests are
//! handled one at a time, which serialises validation and append per `(stream, producer)`
//! ("Concurrency Requirements").

use crate::headers::{self, PRODUCER_EPOCH, PRODUCER_ID, PRODUCER_SEQ};
use http::HeaderMap;

/// What the server remembers about one producer on one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerState {
    /// The producer's current epoch.
    pub epoch: u64,
    /// The highest sequence number accepted in that epoch.
    pub last_seq: u64,
}

/// The `(Producer-Id, Producer-Epoch, Producer-Seq)` of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProducerTuple {
    pub id: String,
    pub epoch: u64,
    pub seq: u64,
}

/// Reads the producer headers: all three or none (400 otherwise), a non-empty id, and epoch
/// and seq as integers in `0..=2^53-1`.
pub(crate) fn parse(h: &HeaderMap) -> Result<Option<ProducerTuple>, String> {
    let (id, epoch, seq) = (
        h.get(PRODUCER_ID),
        h.get(PRODUCER_EPOCH),
        h.get(PRODUCER_SEQ),
    );
    let (id, epoch, seq) = match (id, epoch, seq) {
        (None, None, None) => return Ok(None),
        (Some(i), Some(e), Some(s)) => (i, e, s),
        _ => {
            return Err(
                "Producer-Id, Producer-Epoch and Producer-Seq must be sent together".to_owned(),
            )
        }
    };
    let id = id
        .to_str()
        .map_err(|_| "Producer-Id is not visible ASCII".to_owned())?
        .trim();
    if id.is_empty() {
        return Err("Producer-Id must not be empty".to_owned());
    }
    let number = |v: &http::HeaderValue, name: &str| {
        v.to_str()
            .map_err(|_| format!("{name} is not visible ASCII"))
            .and_then(|s| headers::parse_u53(s.trim()).map_err(|e| format!("{name}: {e}")))
    };
    Ok(Some(ProducerTuple {
        id: id.to_owned(),
        epoch: number(epoch, "Producer-Epoch")?,
        seq: number(seq, "Producer-Seq")?,
    }))
}

/// The outcome of validating a producer tuple against the stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// New data: store it, then commit this state (200).
    Accept(ProducerState),
    /// Already stored (204); `last_seq` is the highest sequence accepted in the epoch.
    Duplicate { last_seq: u64 },
    /// A zombie from an older epoch (403 with the current epoch).
    StaleEpoch { current: u64 },
    /// A new epoch must start at sequence 0 (400).
    NewEpochNotAtZero,
    /// A sequence gap (409 with the expected and received sequences).
    Gap { expected: u64, received: u64 },
}

/// The validation logic of 5.2.1. A producer the stream has no state for is treated as new:
/// it must start at sequence 0 (in any epoch), otherwise it is a gap with `expected = 0`.
pub(crate) fn validate(state: Option<&ProducerState>, epoch: u64, seq: u64) -> Verdict {
    let Some(state) = state else {
        return if seq == 0 {
            Verdict::Accept(ProducerState { epoch, last_seq: 0 })
        } else {
            Verdict::Gap {
                expected: 0,
                received: seq,
            }
        };
    };
    if epoch < state.epoch {
        return Verdict::StaleEpoch {
            current: state.epoch,
        };
    }
    if epoch > state.epoch {
        return if seq == 0 {
            Verdict::Accept(ProducerState { epoch, last_seq: 0 })
        } else {
            Verdict::NewEpochNotAtZero
        };
    }
    if seq <= state.last_seq {
        Verdict::Duplicate {
            last_seq: state.last_seq,
        }
    } else if seq == state.last_seq + 1 {
        Verdict::Accept(ProducerState {
            epoch,
            last_seq: seq,
        })
    } else {
        Verdict::Gap {
            expected: state.last_seq + 1,
            received: seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(epoch: u64, last_seq: u64) -> ProducerState {
        ProducerState { epoch, last_seq }
    }

    #[test]
    fn validation_table() {
        use Verdict::*;
        let s = st(2, 5);
        // Epoch validation.
        assert_eq!(validate(Some(&s), 1, 9), StaleEpoch { current: 2 });
        assert_eq!(validate(Some(&s), 3, 1), NewEpochNotAtZero);
        assert_eq!(validate(Some(&s), 3, 0), Accept(st(3, 0)));
        // Same epoch: sequence validation.
        assert_eq!(validate(Some(&s), 2, 5), Duplicate { last_seq: 5 });
        assert_eq!(validate(Some(&s), 2, 0), Duplicate { last_seq: 5 });
        assert_eq!(validate(Some(&s), 2, 6), Accept(st(2, 6)));
        assert_eq!(
            validate(Some(&s), 2, 8),
            Gap {
                expected: 6,
                received: 8
            }
        );
        // Unknown producer.
        assert_eq!(validate(None, 0, 0), Accept(st(0, 0)));
        assert_eq!(validate(None, 7, 0), Accept(st(7, 0)));
        assert_eq!(
            validate(None, 0, 1),
            Gap {
                expected: 0,
                received: 1
            }
        );
    }

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn headers_all_or_none() {
        assert_eq!(parse(&map(&[])), Ok(None));
        assert!(parse(&map(&[("producer-id", "p"), ("producer-epoch", "0")])).is_err());
        assert!(parse(&map(&[("producer-seq", "0")])).is_err());
        let full = [
            ("producer-id", "p"),
            ("producer-epoch", "1"),
            ("producer-seq", "2"),
        ];
        assert_eq!(
            parse(&map(&full)),
            Ok(Some(ProducerTuple {
                id: "p".into(),
                epoch: 1,
                seq: 2
            }))
        );
        for (name, bad) in [
            ("producer-id", ""),
            ("producer-epoch", "-1"),
            ("producer-epoch", "1e3"),
            ("producer-seq", "9007199254740992"),
            ("producer-seq", "x"),
        ] {
            let mut h = map(&full);
            h.insert(name, http::HeaderValue::from_static(bad));
            assert!(parse(&h).is_err(), "{name}: {bad}");
        }
        let mut h = map(&full);
        h.insert(
            "producer-seq",
            http::HeaderValue::from_static("9007199254740991"),
        );
        assert!(parse(&h).is_ok());
    }
}
