//! What a writer built on the [`Producer`](crate::producer::Producer) must remember for its
//! application: which appends are resolved, the failures not yet reported by a flush, and how a
//! close ended. Drivers feed it every [`ProducerEvent`] and wait on its answers.

use crate::offset::Offset;
use crate::producer::{AppendId, FailureReason, ProducerEvent};
use bytes::Bytes;

/// The outcome of one append.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    /// Durably in the stream, exactly once.
    Acked {
        /// The tail after the append's batch, when the server said.
        next_offset: Option<Offset>,
        /// The server had it already (a retry whose earlier answer was lost).
        duplicate: bool,
    },
    /// Not stored, or perhaps stored ([`FailureReason::Indeterminate`]).
    Failed(FailureReason),
}

/// Appends that failed together (one batch).
#[derive(Debug, Clone, PartialEq)]
pub struct WriteFailure {
    /// The first append.
    pub first: AppendId,
    /// The last append (inclusive).
    pub last: AppendId,
    /// Their payloads, in order: nothing is lost.
    pub items: Vec<Bytes>,
    /// Why.
    pub reason: FailureReason,
}

impl WriteFailure {
    /// The failure a [`ProducerEvent::Failed`] reports; `None` for any other event.
    pub fn of(event: &ProducerEvent) -> Option<WriteFailure> {
        match event {
            ProducerEvent::Failed {
                first,
                last,
                items,
                reason,
            } => Some(WriteFailure {
                first: *first,
                last: *last,
                items: items.clone(),
                reason: reason.clone(),
            }),
            _ => None,
        }
    }
}

/// How a close ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CloseOutcome {
    /// The stream is closed.
    Closed {
        /// Its final offset, when the server said.
        final_offset: Option<Offset>,
    },
    /// The close did not happen.
    Failed(FailureReason),
}

/// The bookkeeping of a writer.
#[derive(Debug, Default)]
pub struct WriteTracker {
    resolved: u64,
    unreported: Vec<WriteFailure>,
    close: Option<CloseOutcome>,
    last_offset: Option<Offset>,
    epoch_claims: u64,
}

/// What one event resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The first append resolved.
    pub first: AppendId,
    /// The last append resolved (inclusive).
    pub last: AppendId,
    /// Their common outcome.
    pub outcome: WriteOutcome,
}

impl WriteTracker {
    /// A tracker for a fresh producer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker for a producer restored from a snapshot: every append before `first` (its
    /// [`ProducerSnapshot::first_unreported`]) was resolved before the snapshot was taken.
    ///
    /// [`ProducerSnapshot::first_unreported`]: crate::producer::ProducerSnapshot::first_unreported
    pub fn starting_at(first: AppendId) -> Self {
        WriteTracker {
            resolved: first.0,
            ..Self::default()
        }
    }

    /// Records an event; returns the appends it resolved, if any.
    pub fn observe(&mut self, event: &ProducerEvent) -> Option<Resolved> {
        match event {
            ProducerEvent::Acked {
                first,
                last,
                next_offset,
                duplicate,
            } => {
                self.resolved = self.resolved.max(last.0 + 1);
                if next_offset.is_some() {
                    self.last_offset = next_offset.clone();
                }
                Some(Resolved {
                    first: *first,
                    last: *last,
                    outcome: WriteOutcome::Acked {
                        next_offset: next_offset.clone(),
                        duplicate: *duplicate,
                    },
                })
            }
            ProducerEvent::Failed {
                first,
                last,
                items,
                reason,
            } => {
                self.resolved = self.resolved.max(last.0 + 1);
                self.unreported.push(WriteFailure {
                    first: *first,
                    last: *last,
                    items: items.clone(),
                    reason: reason.clone(),
                });
                Some(Resolved {
                    first: *first,
                    last: *last,
                    outcome: WriteOutcome::Failed(reason.clone()),
                })
            }
            ProducerEvent::Closed { final_offset } => {
                if final_offset.is_some() {
                    self.last_offset = final_offset.clone();
                }
                self.close = Some(CloseOutcome::Closed {
                    final_offset: final_offset.clone(),
                });
                None
            }
            ProducerEvent::CloseFailed { reason } => {
                self.close = Some(CloseOutcome::Failed(reason.clone()));
                None
            }
            ProducerEvent::EpochClaimed { .. } => {
                self.epoch_claims += 1;
                None
            }
            _ => None,
        }
    }

    /// Whether every append before `next` (a [`Producer::next_append_id`] taken earlier) is
    /// resolved.
    ///
    /// [`Producer::next_append_id`]: crate::producer::Producer::next_append_id
    pub fn all_resolved_before(&self, next: AppendId) -> bool {
        self.resolved >= next.0
    }

    /// Takes the failures not yet reported (what a flush reports).
    pub fn take_failures(&mut self) -> Vec<WriteFailure> {
        std::mem::take(&mut self.unreported)
    }

    /// How the close ended, once it has.
    pub fn close_outcome(&self) -> Option<&CloseOutcome> {
        self.close.as_ref()
    }

    /// The latest tail offset an acknowledgement reported.
    pub fn last_offset(&self) -> Option<&Offset> {
        self.last_offset.as_ref()
    }

    /// How many times auto-claim took a new epoch.
    pub fn epoch_claims(&self) -> u64 {
        self.epoch_claims
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, ErrorKind, Operation};

    #[test]
    fn tracks_resolution_failures_and_close() {
        let mut t = WriteTracker::new();
        assert!(t.all_resolved_before(AppendId(0)));
        let r = t
            .observe(&ProducerEvent::Acked {
                first: AppendId(0),
                last: AppendId(2),
                next_offset: Some(Offset::parse("0_3").unwrap()),
                duplicate: false,
            })
            .unwrap();
        assert_eq!(r.last, AppendId(2));
        assert!(t.all_resolved_before(AppendId(3)));
        assert!(!t.all_resolved_before(AppendId(4)));
        let reason = FailureReason::NotStored(Error::new(
            Operation::Append,
            "u",
            ErrorKind::PayloadTooLarge,
        ));
        t.observe(&ProducerEvent::Failed {
            first: AppendId(3),
            last: AppendId(3),
            items: vec![Bytes::from_static(b"x")],
            reason: reason.clone(),
        });
        let f = t.take_failures();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].items[0], Bytes::from_static(b"x"));
        assert!(t.take_failures().is_empty());
        t.observe(&ProducerEvent::Closed { final_offset: None });
        assert_eq!(
            t.close_outcome(),
            Some(&CloseOutcome::Closed { final_offset: None })
        );
        assert_eq!(t.last_offset().unwrap().as_str(), "0_3");
    }

    #[test]
    fn a_restored_tracker_starts_resolved_and_counts_epoch_claims() {
        let mut t = WriteTracker::starting_at(AppendId(5));
        assert!(t.all_resolved_before(AppendId(5)));
        assert!(!t.all_resolved_before(AppendId(6)));
        assert_eq!(t.epoch_claims(), 0);
        for epoch in [1, 2] {
            assert!(t.observe(&ProducerEvent::EpochClaimed { epoch }).is_none());
        }
        assert_eq!(t.epoch_claims(), 2);
    }
}
