//! Durable state of the [`Producer`]: [`Producer::snapshot`] takes a [`ProducerSnapshot`],
//! [`Producer::restore`] continues from one, in this process or another (DESIGN.md section 2,
//! "Durable state"). The guarantees are documented on [`ProducerSnapshot`].
//!
//! It reads and sets the machine's fields (visible to the `producer` module).

use super::Producer;
use crate::error::InputReason;
use crate::error::{Error, ErrorKind, Operation};
use crate::headers::MAX_SAFE_INTEGER;
use crate::offset::Offset;
use crate::producer::batch::{Batch, BatchState, OpenBatch};
use crate::producer::{AppendId, FailureReason, ProducerConfig, ProducerEvent};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Everything a [`Producer`] needs to continue where it was, as a plain value: take it with
/// [`Producer::snapshot`], persist it (it implements `serde::Serialize`; bodies are base64 in
/// human-readable formats such as JSON), and continue with [`Producer::restore`], in this
/// process or in another one after a crash.
///
/// # What it holds
///
/// The configuration, the current epoch and next `Producer-Seq`, the next append id, every
/// sealed batch that has not been reported yet (its epoch, seq, exact request body and the
/// append ids it covers; acknowledged or failed batches waiting for an earlier one keep their
/// outcome), the open batch's payloads, an auto-claim in progress, and whether the producer is
/// closing, closed or stopped. Reports not yet drained from [`Producer::poll_event`]
/// ([`Acked`](ProducerEvent::Acked), [`Failed`](ProducerEvent::Failed),
/// [`Closed`](ProducerEvent::Closed), [`CloseFailed`](ProducerEvent::CloseFailed)) are kept as
/// resolved batches, so the restored producer reports every append exactly once; only
/// [`EpochClaimed`](ProducerEvent::EpochClaimed) and [`Writable`](ProducerEvent::Writable) are
/// not. Not kept: requests in flight (their batches are re-sent), retry timers (restarted),
/// the PRNG state (reseeded from `config.rng_seed`).
///
/// Taking a snapshot copies no payload (bodies are [`Bytes`], shared by reference count) and
/// never changes what the producer does. Serializing it is the application's cost.
///
/// # Restoring: exactly-once
///
/// [`Producer::restore`] re-sends every pending sealed batch with its original epoch, seq and
/// body, in seq order (the first alone, then up to `max_in_flight`; all together on an
/// ordered carrier, [`Producer::set_ordered`]), so the server stores each
/// once: `200` for a batch it never saw, `204` (reported as
/// [`Acked`](ProducerEvent::Acked) with `duplicate: true`) for one the crashed instance had
/// already stored. The open batch then continues and is sealed with the next seq, and new
/// appends get ids from [`next_append_id`](ProducerSnapshot::next_append_id) on.
///
/// That is exactly-once for everything the snapshot holds. For the appends made after it
/// there are two rules, and the drivers' `Writer::on_snapshot` follows the first for you:
///
/// 1. **Persist before sending (write-ahead).** The snapshot an application restores from must
///    hold every batch the crashed instance may have sent. Persist a new snapshot whenever
///    [`Producer::snapshot_mark`] differs from the [`mark`](ProducerSnapshot::mark) of the last
///    persisted one, *before* sending the transmits [`Producer::poll_transmit`] returned (a new
///    mark means a newly sealed batch or an epoch change). A producer restored from an older
///    snapshot cannot know what the batches sent after it held: batch boundaries depend on
///    timing, so the same appends would be cut into other batches under the same seqs, and
///    the server's de-duplication (by seq, not by content) would drop or repeat some of them.
///    A restored producer notices this when an answer shows that the server holds a seq it
///    never sent (a `204` whose `Producer-Seq` is at or past the snapshot's
///    [`next_seq`](ProducerSnapshot::next_seq) and past every seq it sent since): the answered
///    batch and every later one fail with [`FailureReason::Indeterminate`] and
///    [`ErrorKind::StaleSnapshot`], and the producer stops. It cannot always notice (when the
///    old instance stored nothing past the seq it is about to use, a `204` looks like the
///    answer to a duplicate of its own request), so the rule matters. Persisting after every
///    acknowledgement as well keeps the snapshot small.
/// 2. **Journal the appends after the snapshot.** Appends with ids from
///    [`next_append_id`](ProducerSnapshot::next_append_id) on are not in the snapshot. They
///    are the application's to replay: record each payload durably *before* calling
///    `append`, and after [`Producer::restore`] append the recorded payloads whose ids are at
///    or after `next_append_id`, in order; they get the same ids again. Under rule 1 none of
///    them was ever sent, so replaying them is exactly-once too. Once a snapshot is
///    persisted, journal entries before its `next_append_id` may be dropped.
///
/// # When to bump the epoch instead
///
/// Restore only when the instance that took the snapshot is gone and no other instance uses
/// the same producer id and epoch. Start a fresh [`Producer`] with a higher epoch instead
/// (it fences the other instance, PROTOCOL.md 5.2.1) when another instance may still be
/// running (a partition rather than a crash, or the same snapshot restored twice), when the
/// snapshot may be stale (not persisted under rule 1), when the server may have dropped its
/// producer state (state TTL), or when its store is not atomic. Re-append
/// [`unresolved_appends`](ProducerSnapshot::unresolved_appends) and the journal: that is
/// at-least-once (a batch the server already stored is stored again), or read the stream to
/// decide what is missing. A restored producer with `auto_claim` treats its restored batches
/// the same way: if it is fenced, they fail as [`FailureReason::Indeterminate`] rather than
/// being re-sent under the new epoch.
///
/// # Format
///
/// [`format_version`](ProducerSnapshot::format_version) is [`ProducerSnapshot::FORMAT_VERSION`];
/// [`Producer::restore`] and [`ProducerSnapshot::from_json`] refuse any other version with
/// [`ErrorKind::InvalidInput`] rather than misread it. The fields are public for inspection;
/// the type is `#[non_exhaustive]`, so it is built only by [`Producer::snapshot`] or by
/// deserializing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProducerSnapshot {
    /// The snapshot format ([`ProducerSnapshot::FORMAT_VERSION`]).
    pub format_version: u32,
    /// The producer's configuration (its `epoch` is the one it started with; see
    /// [`epoch`](ProducerSnapshot::epoch) for the current one).
    pub config: ProducerConfig,
    /// The current `Producer-Epoch`.
    pub epoch: u64,
    /// The `Producer-Seq` the next sealed batch gets.
    pub next_seq: u64,
    /// The id the next accepted append gets.
    pub next_append_id: AppendId,
    /// The sealed batches not yet reported, in the order they are reported (append order).
    pub batches: Vec<SnapshotBatch>,
    /// The open batch's payloads, in order: appends `next_append_id - open.len()` up to
    /// `next_append_id - 1`.
    #[serde(with = "b64_vec")]
    pub open: Vec<Bytes>,
    /// An auto-claim waiting for outstanding answers.
    pub claim: Option<SnapshotClaim>,
    /// [`Producer::close`] was called.
    pub closing: bool,
    /// The producer's close succeeded.
    pub closed: bool,
    /// The server answered `409` with `Stream-Closed` (someone closed the stream).
    pub stream_closed: bool,
    /// The failure that stopped the producer ([`Producer::error`]).
    pub stopped: Option<Error>,
}

/// One sealed batch of a [`ProducerSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SnapshotBatch {
    /// Its first append (for an empty close, the next append id).
    pub first: AppendId,
    /// How many appends it holds (0 for an empty close).
    pub count: u64,
    /// The `Producer-Epoch` it was sealed or last sent under (0 when unknown: reports that
    /// were waiting in [`Producer::poll_event`]).
    pub epoch: u64,
    /// Its `Producer-Seq` in that epoch (0 when unknown, as for `epoch`).
    pub seq: u64,
    /// It carries `Stream-Closed: true` (the final batch).
    pub close: bool,
    /// Pending, acknowledged or failed.
    pub state: SnapshotBatchState,
}

/// Where a [`SnapshotBatch`] is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SnapshotBatchState {
    /// No outcome yet (never sent, in flight, waiting to retry): re-sent on restore, with
    /// this exact body.
    Pending {
        /// The exact request body.
        #[serde(with = "b64")]
        body: Bytes,
        /// The length of each append in `body`, in order (in JSON mode the body is
        /// `[` + the appends joined by `,` + `]`; otherwise they are concatenated).
        item_lens: Vec<u64>,
        /// An earlier failure stopped the producer while this batch was in flight: a `2xx`
        /// acknowledges it, anything else fails it with this error.
        doomed: Option<Error>,
    },
    /// Acknowledged, waiting for an earlier batch to be reported.
    Acked {
        /// The tail after the batch, when the server said.
        next_offset: Option<Offset>,
        /// The server had it already (`204`).
        duplicate: bool,
    },
    /// Failed, waiting for an earlier batch to be reported.
    Failed {
        /// The payloads, in order.
        #[serde(with = "b64_vec")]
        items: Vec<Bytes>,
        /// Why.
        reason: FailureReason,
    },
}

/// An auto-claim in progress: the producer was fenced and will take `epoch` once no request
/// of the old epoch is outstanding (at once, after a restore).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SnapshotClaim {
    /// The epoch to take.
    pub epoch: u64,
    /// The fence (`403`) that asked for it.
    pub fence: Error,
}

/// Which sealed batches a snapshot covers: a snapshot taken when [`Producer::snapshot_mark`]
/// was `m` holds every batch the producer may send while its mark is still `m`. The mark
/// changes when a batch is sealed and when the epoch changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SnapshotMark {
    epoch: u64,
    next_seq: u64,
}

/// When a driver hands a [`ProducerSnapshot`] to the application's persistence (a writer's
/// `on_snapshot` callback): once at the start, then *before* sending a batch the last persisted
/// snapshot does not hold (write-ahead: the persisted snapshot always holds every batch that may
/// be on the server), and after events that [change it](ProducerEvent::changes_snapshot).
///
/// Call [`SnapshotSchedule::due`] after draining the producer's transmits, before sending them,
/// with whether the events just handed out changed the snapshot.
#[derive(Debug, Clone, Default)]
pub struct SnapshotSchedule {
    /// The mark of the last snapshot handed out.
    persisted: Option<SnapshotMark>,
}

impl SnapshotSchedule {
    /// A schedule that has handed out nothing yet (its first [`due`](Self::due) is a snapshot).
    pub fn new() -> SnapshotSchedule {
        SnapshotSchedule::default()
    }

    /// The snapshot to persist now, if one is due: when `changed` (events that
    /// [change the snapshot](ProducerEvent::changes_snapshot) were handed out), or when the
    /// producer may now send a batch the last one handed out does not hold.
    pub fn due(&mut self, producer: &Producer, changed: bool) -> Option<ProducerSnapshot> {
        let mark = producer.snapshot_mark();
        if changed || self.persisted != Some(mark) {
            self.persisted = Some(mark);
            Some(producer.snapshot())
        } else {
            None
        }
    }
}

impl ProducerSnapshot {
    /// The snapshot format this version writes and reads.
    pub const FORMAT_VERSION: u32 = 1;

    /// Checks [`format_version`](ProducerSnapshot::format_version):
    /// [`ErrorKind::InvalidInput`] unless it is [`ProducerSnapshot::FORMAT_VERSION`].
    pub fn check_version(&self) -> Result<(), Error> {
        check_version(self.format_version, &self.config.url)
    }

    /// Reads a snapshot from JSON (as written by `serde_json` or [`ProducerSnapshot::to_json`]).
    /// The format version is checked first, so a snapshot of another version is refused with
    /// [`ErrorKind::InvalidInput`] naming the version, whatever its shape; malformed JSON is
    /// [`ErrorKind::InvalidInput`] too.
    pub fn from_json(json: &[u8]) -> Result<ProducerSnapshot, Error> {
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let invalid =
            |m: String| Error::invalid_input(Operation::Append, "", InputReason::Snapshot, m);
        let v: Version = serde_json::from_slice(json)
            .map_err(|e| invalid(format!("not a producer snapshot: {e}")))?;
        check_version(v.format_version, "")?;
        let snapshot: ProducerSnapshot = serde_json::from_slice(json)
            .map_err(|e| invalid(format!("not a producer snapshot: {e}")))?;
        Ok(snapshot)
    }

    /// The snapshot as JSON (what `serde_json::to_vec` gives).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .unwrap_or_else(|e| unreachable!("a producer snapshot always serializes: {e}"))
    }

    /// The [`SnapshotMark`] the producer had when this snapshot was taken.
    pub fn mark(&self) -> SnapshotMark {
        SnapshotMark {
            epoch: self.epoch,
            next_seq: self.next_seq,
        }
    }

    /// The first append id the restored producer will report: the first append of the first
    /// batch, or of the open batch, or [`next_append_id`](ProducerSnapshot::next_append_id).
    /// Every append before it was reported before the snapshot was taken.
    pub fn first_unreported(&self) -> AppendId {
        self.batches
            .iter()
            .find(|b| b.count > 0)
            .map(|b| b.first)
            .unwrap_or_else(|| self.open_first())
    }

    /// The appends without an outcome yet, with their ids, in order: those of the pending
    /// sealed batches (which may or may not be stored) and of the open batch (not sent).
    /// What to re-append under a new epoch when the snapshot is not restored (see "When to
    /// bump the epoch instead" above). The payloads are shared, not copied.
    pub fn unresolved_appends(&self) -> Vec<(AppendId, Bytes)> {
        let json = self.config.is_json();
        let mut out = Vec::new();
        for b in &self.batches {
            if let SnapshotBatchState::Pending {
                body, item_lens, ..
            } = &b.state
            {
                if let Ok(items) = split_body(body, item_lens, json) {
                    out.extend(
                        items
                            .into_iter()
                            .enumerate()
                            .map(|(k, item)| (AppendId(b.first.0 + k as u64), item)),
                    );
                }
            }
        }
        let first = self.open_first().0;
        out.extend(
            self.open
                .iter()
                .enumerate()
                .map(|(k, item)| (AppendId(first + k as u64), item.clone())),
        );
        out
    }

    fn open_first(&self) -> AppendId {
        AppendId(self.next_append_id.0.saturating_sub(self.open.len() as u64))
    }
}

fn check_version(version: u32, url: &str) -> Result<(), Error> {
    if version == ProducerSnapshot::FORMAT_VERSION {
        return Ok(());
    }
    Err(Error::invalid_input(
        Operation::Append,
        crate::url::strip_query(url), InputReason::Snapshot,
        format!(
            "unsupported producer snapshot format_version {version}: this version reads format_version {}",
            ProducerSnapshot::FORMAT_VERSION
        ),
    ))
}

/// Cuts a pending batch's body back into its appends (slices of the body), checking that the
/// lengths describe the body exactly as `OpenBatch::seal` built it.
fn split_body(body: &Bytes, lens: &[u64], json: bool) -> Result<Vec<Bytes>, String> {
    if lens.is_empty() {
        return if body.is_empty() {
            Ok(Vec::new())
        } else {
            Err("a batch without appends has a body".to_owned())
        };
    }
    if json && body.first() != Some(&b'[') {
        return Err("a JSON batch body does not start with `[`".to_owned());
    }
    let mut at = usize::from(json);
    let mut items = Vec::with_capacity(lens.len());
    for (k, &len) in lens.iter().enumerate() {
        let end = usize::try_from(len)
            .ok()
            .filter(|&len| len > 0)
            .and_then(|len| at.checked_add(len))
            .filter(|&end| end <= body.len())
            .ok_or_else(|| format!("append length {len} does not fit the body"))?;
        items.push(body.slice(at..end));
        at = end;
        if json {
            let sep = if k + 1 == lens.len() { b']' } else { b',' };
            if body.get(at) != Some(&sep) {
                return Err(format!(
                    "the JSON batch body lacks `{}` after append {k}",
                    sep as char
                ));
            }
            at += 1;
        }
    }
    if at != body.len() {
        return Err("the body is longer than its appends".to_owned());
    }
    Ok(items)
}

impl Producer {
    /// Takes a [`ProducerSnapshot`]: everything needed to continue with
    /// [`Producer::restore`], here or in another process. Cheap (payloads are shared, not
    /// copied) and without effect on the producer. See [`ProducerSnapshot`] for what it
    /// guarantees, and for when to persist one (before sending, whenever
    /// [`Producer::snapshot_mark`] changed).
    pub fn snapshot(&self) -> ProducerSnapshot {
        let mut batches = Vec::with_capacity(self.events.len() + self.queue.len());
        // Reports not drained yet: batches already out of the queue.
        for event in &self.events {
            let (first, count, close, state) = match event {
                ProducerEvent::Acked {
                    first,
                    last,
                    next_offset,
                    duplicate,
                } => (
                    *first,
                    span(*first, *last),
                    false,
                    SnapshotBatchState::Acked {
                        next_offset: next_offset.clone(),
                        duplicate: *duplicate,
                    },
                ),
                ProducerEvent::Failed {
                    first,
                    last,
                    items,
                    reason,
                } => (
                    *first,
                    span(*first, *last),
                    false,
                    SnapshotBatchState::Failed {
                        items: items.clone(),
                        reason: reason.clone(),
                    },
                ),
                ProducerEvent::Closed { final_offset } => (
                    AppendId(self.next_append),
                    0,
                    true,
                    SnapshotBatchState::Acked {
                        next_offset: final_offset.clone(),
                        duplicate: false,
                    },
                ),
                ProducerEvent::CloseFailed { reason } => (
                    AppendId(self.next_append),
                    0,
                    true,
                    SnapshotBatchState::Failed {
                        items: Vec::new(),
                        reason: reason.clone(),
                    },
                ),
                _ => continue,
            };
            let (epoch, seq) = match &state {
                SnapshotBatchState::Failed {
                    reason: FailureReason::Indeterminate { epoch, seq, .. },
                    ..
                } => (*epoch, *seq),
                _ => (0, 0),
            };
            batches.push(SnapshotBatch {
                first,
                count,
                epoch,
                seq,
                close,
                state,
            });
        }
        for b in &self.queue {
            let state = match &b.state {
                BatchState::Acked {
                    next_offset,
                    duplicate,
                } => SnapshotBatchState::Acked {
                    next_offset: next_offset.clone(),
                    duplicate: *duplicate,
                },
                BatchState::Failed(reason) => SnapshotBatchState::Failed {
                    items: b.failed_items.clone(),
                    reason: reason.clone(),
                },
                BatchState::Ready
                | BatchState::InFlight(_)
                | BatchState::Backoff(_)
                | BatchState::GapWait => SnapshotBatchState::Pending {
                    body: b.body.clone(),
                    item_lens: b.lens.iter().map(|&l| l as u64).collect(),
                    doomed: b.doomed.clone(),
                },
            };
            batches.push(SnapshotBatch {
                first: AppendId(b.first),
                count: b.count,
                epoch: b.epoch,
                seq: b.seq,
                close: b.close,
                state,
            });
        }
        ProducerSnapshot {
            format_version: ProducerSnapshot::FORMAT_VERSION,
            config: self.config.clone(),
            epoch: self.epoch,
            next_seq: self.next_seq,
            next_append_id: AppendId(self.next_append),
            batches,
            open: self.open.payloads(self.json),
            claim: self.claim.as_ref().map(|(epoch, fence)| SnapshotClaim {
                epoch: *epoch,
                fence: fence.clone(),
            }),
            closing: self.closing,
            closed: self.closed,
            stream_closed: self.stream_closed,
            stopped: self.terminal.clone(),
        }
    }

    /// Which sealed batches a snapshot taken now would cover. When it differs from the
    /// [`mark`](ProducerSnapshot::mark) of the last snapshot persisted, persist a new one
    /// before sending what [`poll_transmit`](Producer::poll_transmit) returned (see
    /// [`ProducerSnapshot`], "Restoring: exactly-once"). Changes when a batch is sealed
    /// (after [`append`](Producer::append), [`flush`](Producer::flush),
    /// [`close`](Producer::close), [`handle_timeout`](Producer::handle_timeout), ...) and when
    /// the epoch changes (auto-claim).
    pub fn snapshot_mark(&self) -> SnapshotMark {
        SnapshotMark {
            epoch: self.epoch,
            next_seq: self.next_seq,
        }
    }

    /// Continues from `snapshot` (see [`ProducerSnapshot`] for the guarantees): reports not
    /// yet delivered come first from [`poll_event`](Producer::poll_event); pending sealed
    /// batches are re-sent with their original epoch, seq and body, in seq order, the first
    /// alone (unless the carrier keeps order, [`Producer::set_ordered`]); then the open batch
    /// continues (its linger restarts at `now`) and new appends get ids from
    /// [`ProducerSnapshot::next_append_id`] on. A pending claim takes its epoch at
    /// once; restored batches count as possibly stored (a later auto-claim fails them as
    /// [`FailureReason::Indeterminate`] rather than re-sending them under a new epoch).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`]: another `format_version`, an invalid configuration, or an
    /// inconsistent snapshot (batches out of seq order, append ids that do not follow each
    /// other, item lengths that do not match a body, ...).
    pub fn restore(snapshot: ProducerSnapshot, now: Instant) -> Result<Producer, Error> {
        snapshot.check_version()?;
        let open_first = snapshot.open_first();
        let ProducerSnapshot {
            config,
            epoch,
            next_seq,
            next_append_id,
            batches,
            open,
            claim,
            closing,
            closed,
            stream_closed,
            stopped,
            ..
        } = snapshot;
        // `Producer::new` validates the configuration: a snapshot is input from outside (a
        // file, a database), and its durations are bounded there (ten years) like any other.
        let mut p = Producer::new(config, now)?;
        let url = p.url.clone();
        let bad = |m: String| {
            Error::invalid_input(
                Operation::Append,
                &url,
                InputReason::Snapshot,
                format!("invalid producer snapshot: {m}"),
            )
        };
        if epoch > MAX_SAFE_INTEGER || next_seq > MAX_SAFE_INTEGER {
            return Err(bad(format!(
                "epoch {epoch} or next_seq {next_seq} exceeds 2^53-1"
            )));
        }
        if (open.len() as u64) > next_append_id.0 {
            return Err(bad("the open batch has more appends than ids".to_owned()));
        }
        if let Some(c) = &claim {
            if c.epoch <= epoch || c.epoch > MAX_SAFE_INTEGER {
                return Err(bad(format!(
                    "claim of epoch {} from epoch {epoch}",
                    c.epoch
                )));
            }
        }
        let mut queue = std::collections::VecDeque::with_capacity(batches.len());
        let mut buffered = 0usize;
        let mut next_id: Option<u64> = None;
        let mut last_seq: Option<u64> = None;
        let mut final_seen = false;
        for (bid, b) in batches.into_iter().enumerate() {
            if final_seen {
                return Err(bad("a batch follows the final (closing) batch".to_owned()));
            }
            final_seen = b.close;
            if b.count > 0 {
                if next_id.is_some_and(|n| n != b.first.0) {
                    return Err(bad(format!(
                        "batch of {} does not follow the previous one",
                        b.first
                    )));
                }
                let end = b
                    .first
                    .0
                    .checked_add(b.count)
                    .filter(|&e| e <= open_first.0);
                next_id = Some(end.ok_or_else(|| {
                    bad(format!("batch of {} runs past the next append id", b.first))
                })?);
            } else if !b.close {
                return Err(bad("a batch without appends that does not close".to_owned()));
            }
            let (items, body, payload, state, doomed) = match b.state {
                SnapshotBatchState::Pending {
                    body,
                    item_lens,
                    doomed,
                } => {
                    if b.epoch != epoch {
                        return Err(bad(format!(
                            "pending batch seq {} of epoch {} in epoch {epoch}",
                            b.seq, b.epoch
                        )));
                    }
                    if b.seq >= next_seq || last_seq.is_some_and(|s| b.seq <= s) {
                        return Err(bad(format!("pending batch seq {} out of order", b.seq)));
                    }
                    last_seq = Some(b.seq);
                    if item_lens.len() as u64 != b.count {
                        return Err(bad(format!(
                            "batch seq {} has {} lengths for {} appends",
                            b.seq,
                            item_lens.len(),
                            b.count
                        )));
                    }
                    let items = split_body(&body, &item_lens, p.json)
                        .map_err(|m| bad(format!("batch seq {}: {m}", b.seq)))?;
                    let payload: usize = items.iter().map(Bytes::len).sum();
                    buffered = buffered.saturating_add(payload);
                    (items, body, payload, BatchState::Ready, doomed)
                }
                SnapshotBatchState::Acked {
                    next_offset,
                    duplicate,
                } => (
                    Vec::new(),
                    Bytes::new(),
                    0,
                    BatchState::Acked {
                        next_offset,
                        duplicate,
                    },
                    None,
                ),
                SnapshotBatchState::Failed { items, reason } => {
                    if items.len() as u64 != b.count {
                        return Err(bad(format!(
                            "failed batch of {} has {} payloads for {} appends",
                            b.first,
                            items.len(),
                            b.count
                        )));
                    }
                    (items, Bytes::new(), 0, BatchState::Failed(reason), None)
                }
            };
            queue.push_back(Batch {
                bid: bid as u64,
                first: b.first.0,
                count: b.count,
                // A pending batch holds its payload once, in its body (see `Batch::lens`).
                lens: if body.is_empty() {
                    Vec::new()
                } else {
                    items.iter().map(Bytes::len).collect()
                },
                failed_items: if body.is_empty() { items } else { Vec::new() },
                body,
                payload,
                close: b.close,
                epoch: b.epoch,
                seq: b.seq,
                state,
                // It may have been sent (and stored) after the snapshot was taken.
                uncertain: true,
                backoff: None,
                doomed,
            });
        }
        if next_id.is_some_and(|n| n != open_first.0) {
            return Err(bad(
                "the batches do not end where the open batch (or the next append id) starts"
                    .to_owned(),
            ));
        }
        if !open.is_empty() {
            if final_seen || closing {
                return Err(bad("an open batch after close".to_owned()));
            }
            if open.iter().any(Bytes::is_empty) {
                return Err(bad("an empty append in the open batch".to_owned()));
            }
        }
        let open_payload: usize = open.iter().map(Bytes::len).sum();
        p.epoch = epoch;
        p.next_seq = next_seq;
        p.next_append = next_append_id.0;
        p.next_bid = queue.len() as u64;
        p.queue = queue;
        p.buffered = buffered.saturating_add(open_payload);
        let linger = (!open.is_empty()).then(|| now + p.config.linger);
        p.open = OpenBatch::from_items(open, p.json);
        p.open.first = open_first.0;
        p.open.deadline = linger;
        p.claim = claim.map(|c| (c.epoch, c.fence));
        p.terminal = stopped;
        p.closing = closing || final_seen;
        p.closed = closed;
        p.stream_closed = stream_closed;
        p.restored_at = Some((epoch, next_seq));
        p.tick(now);
        Ok(p)
    }

    /// For a restored producer, the `Producer-Seq` of an answer to batch `i` when it is a
    /// seq this producer never sent (at or past the snapshot's next seq, and past every seq
    /// sent since the restore): the highest seq the server accepted for the epoch, so another
    /// instance sent batches the restored snapshot does not hold. Batches sealed after the
    /// restore but not sent yet do not count: their seqs are ours on paper only, and the
    /// server may hold other appends under them. (A `204` with a lower seq may be the answer
    /// to a duplicate of our own request, so it proves nothing.)
    pub(super) fn foreign_seq(
        &self,
        i: usize,
        head: Option<&http::response::Parts>,
    ) -> Option<u64> {
        let (epoch, unsent) = self.restored_at?;
        let b = &self.queue[i];
        if b.epoch != epoch || b.epoch != self.epoch || b.doomed.is_some() {
            return None;
        }
        let seq = crate::headers::producer_number(&head?.headers, &crate::headers::PRODUCER_SEQ)
            .ok()
            .flatten()?;
        (seq >= unsent).then_some(seq)
    }

    /// The restored snapshot was stale (see [`ErrorKind::StaleSnapshot`]): the server holds
    /// `server_seq`, which this producer never sent. Batch `i` and everything after it, the
    /// open batch included, may or may not be stored (their seqs may hold other appends);
    /// they fail as indeterminate and the producer stops.
    pub(super) fn stale_snapshot(&mut self, i: usize, server_seq: u64) {
        let error = Error::new(
            Operation::Append,
            &self.url,
            ErrorKind::StaleSnapshot {
                epoch: self.queue[i].epoch,
                seq: server_seq,
            },
        );
        self.seal_open(false);
        for b in self.queue.iter_mut().skip(i) {
            if !b.is_resolved() {
                b.uncertain = true;
            }
        }
        self.fatal(i, error, false);
    }
}

/// The number of appends in `first..=last`.
fn span(first: AppendId, last: AppendId) -> u64 {
    last.0.saturating_sub(first.0).saturating_add(1)
}

/// `Bytes` as base64 text in human-readable formats (JSON), as bytes otherwise.
mod b64 {
    use base64::Engine as _;
    use bytes::Bytes;
    use serde::{de, Deserializer, Serializer};
    use std::fmt;

    const ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&ENGINE.encode(bytes))
        } else {
            s.serialize_bytes(bytes)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("base64 text or bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                ENGINE.decode(v).map(Bytes::from).map_err(E::custom)
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes::copy_from_slice(v))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes::from(v))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Bytes::from(out))
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(Visitor)
        } else {
            d.deserialize_byte_buf(Visitor)
        }
    }
}

/// A list of `Bytes`, each as [`b64`].
mod b64_vec {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    struct Out<'a>(&'a Bytes);

    impl Serialize for Out<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::b64::serialize(self.0, s)
        }
    }

    struct In(Bytes);

    impl<'de> Deserialize<'de> for In {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<In, D::Error> {
            super::b64::deserialize(d).map(In)
        }
    }

    pub fn serialize<S: Serializer>(items: &[Bytes], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(items.iter().map(Out))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Bytes>, D::Error> {
        let items = Vec::<In>::deserialize(d)?;
        Ok(items.into_iter().map(|i| i.0).collect())
    }
}

#[cfg(test)]
mod tests;
