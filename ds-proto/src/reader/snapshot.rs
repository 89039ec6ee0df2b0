//! Durable state of the [`Reader`]: [`Reader::snapshot`] takes a [`ReaderSnapshot`],
//! [`Reader::restore`] continues from one, in this process or another (DESIGN.md section 2,
//! "Durable state").

use super::{Reader, ReaderConfig, ReaderEvent};
use crate::error::InputReason;
use crate::error::{Error, Operation};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Where a [`Reader`] is, as a plain value: take it with [`Reader::snapshot`], persist it (it
/// implements `serde::Serialize`), and continue with [`Reader::restore`].
///
/// It holds the reader's configuration with the checkpoint in it
/// ([`config.offset`](ReaderConfig::offset) is [`Reader::offset`]: the offset after every event
/// handed out by [`Reader::poll_event`], and [`config.cursor`](ReaderConfig::cursor) the latest
/// cursor), plus the phase: whether [`ReadMode::Auto`](super::ReadMode::Auto) finished its
/// catch-up (the restored reader long-polls at once), whether
/// [`ReadMode::Sse`](super::ReadMode::Sse) fell back to long-poll (it stays fallen back),
/// whether EOF was handed out, and the JSON mode learned from responses.
///
/// # Guarantees
///
/// A restored reader asks for the checkpoint offset, so it hands out exactly what the original
/// would have handed out after its last event: nothing handed out before the snapshot comes
/// again, nothing after it is skipped. Events still queued in the original reader when the
/// snapshot was taken are not covered: they are read again. A snapshot of a reader that saw
/// EOF restores a reader that sends nothing: its only event is
/// [`Closed`](ReaderEvent::Closed) at the final offset. Taking a snapshot never changes the
/// reader. The PRNG is not kept: `config.rng_seed` is 0 (set it before restoring if retry
/// jitter must differ between readers). Like a saved offset, a snapshot taken before the first
/// event of a reader started at a sentinel (`-1`, `now`) holds that sentinel.
///
/// # Format
///
/// [`format_version`](ReaderSnapshot::format_version) is [`ReaderSnapshot::FORMAT_VERSION`];
/// [`Reader::restore`] and [`ReaderSnapshot::from_json`] refuse any other version with
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReaderSnapshot {
    /// The snapshot format ([`ReaderSnapshot::FORMAT_VERSION`]).
    pub format_version: u32,
    /// The configuration, with the checkpoint as `offset` and the latest cursor as `cursor`.
    pub config: ReaderConfig,
    /// [`ReadMode::Auto`](super::ReadMode::Auto) finished its catch-up phase (at the
    /// checkpoint): the restored reader long-polls from the first request.
    pub caught_up: bool,
    /// [`ReadMode::Sse`](super::ReadMode::Sse) fell back to long-poll for good.
    pub fell_back_to_long_poll: bool,
    /// EOF ([`ReaderEvent::Closed`]) was handed out: the restored reader sends nothing.
    pub eof: bool,
    /// JSON mode as learned from a response's `Content-Type` (`None`: not learned).
    pub json_seen: Option<bool>,
    /// Bytes of the response at `config.offset` already handed out in
    /// [`partial`](super::Chunk::partial) chunks: the restored reader drops them from the
    /// start of its first response, so each byte is still handed out once. 0 when the last
    /// chunk handed out was whole. Absent in older snapshots (read as 0).
    #[serde(default)]
    pub skip_bytes: u64,
}

impl ReaderSnapshot {
    /// The snapshot format this version writes and reads.
    pub const FORMAT_VERSION: u32 = 1;

    /// Checks [`format_version`](ReaderSnapshot::format_version):
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) unless it is
    /// [`ReaderSnapshot::FORMAT_VERSION`].
    pub fn check_version(&self) -> Result<(), Error> {
        check_version(self.format_version, &self.config.url)
    }

    /// Reads a snapshot from JSON. The format version is checked first, so a snapshot of
    /// another version is refused with
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the version,
    /// whatever its shape; malformed JSON is `InvalidInput` too.
    pub fn from_json(json: &[u8]) -> Result<ReaderSnapshot, Error> {
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let invalid =
            |m: String| Error::invalid_input(Operation::Read, "", InputReason::Snapshot, m);
        let v: Version = serde_json::from_slice(json)
            .map_err(|e| invalid(format!("not a reader snapshot: {e}")))?;
        check_version(v.format_version, "")?;
        serde_json::from_slice(json).map_err(|e| invalid(format!("not a reader snapshot: {e}")))
    }

    /// The snapshot as JSON (what `serde_json::to_vec` gives).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .unwrap_or_else(|e| unreachable!("a reader snapshot always serializes: {e}"))
    }
}

fn check_version(version: u32, url: &str) -> Result<(), Error> {
    if version == ReaderSnapshot::FORMAT_VERSION {
        return Ok(());
    }
    Err(Error::invalid_input(
        Operation::Read,
        crate::url::strip_query(url), InputReason::Snapshot,
        format!(
            "unsupported reader snapshot format_version {version}: this version reads format_version {}",
            ReaderSnapshot::FORMAT_VERSION
        ),
    ))
}

impl Reader {
    /// Takes a [`ReaderSnapshot`] of what has been handed out so far (see its docs for the
    /// guarantees). Cheap, and without effect on the reader.
    pub fn snapshot(&self) -> ReaderSnapshot {
        ReaderSnapshot {
            format_version: ReaderSnapshot::FORMAT_VERSION,
            config: ReaderConfig {
                url: self.url.clone(),
                offset: self.delivered_offset.clone(),
                mode: self.mode,
                retry: self.retry.clone(),
                max_body_bytes: self.max_body_bytes,
                partial_chunks_over: self.partial_chunks_over,
                sse_limits: self.sse_limits,
                sse_fallback: self.sse_fallback,
                long_poll_deadline: self.long_poll_deadline,
                catch_up_deadline: self.catch_up_deadline,
                sse_idle_timeout: self.sse_idle_timeout,
                sse_preserve_leading_space: self.sse_preserve_leading_space,
                json: self.json_hint,
                rng_seed: 0,
                cursor: self.cursor.clone(),
            },
            // Only when nothing is queued: otherwise the checkpoint is behind the response
            // that finished the catch-up, and the restored reader catches up again.
            caught_up: self.caught_up && self.delivered_offset == self.read_offset,
            fell_back_to_long_poll: self.fell_back,
            eof: self.delivered_eof,
            json_seen: self.json_seen,
            skip_bytes: self.delivered_partial,
        }
    }

    /// Continues from `snapshot`: a reader at the snapshot's checkpoint and cursor, in the
    /// same phase (see [`ReaderSnapshot`]). A snapshot taken after EOF gives a finished reader
    /// whose only event is [`ReaderEvent::Closed`]; it never sends a request.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput): another
    /// `format_version`, or a configuration [`Reader::new`] refuses.
    pub fn restore(snapshot: ReaderSnapshot, now: Instant) -> Result<Reader, Error> {
        snapshot.check_version()?;
        let ReaderSnapshot {
            config,
            caught_up,
            fell_back_to_long_poll,
            eof,
            json_seen,
            skip_bytes,
            ..
        } = snapshot;
        let mut reader = Reader::new(config, now)?;
        reader.caught_up = caught_up;
        reader.fell_back = fell_back_to_long_poll;
        reader.json_seen = json_seen;
        reader.partial_released = skip_bytes;
        reader.delivered_partial = skip_bytes;
        if eof {
            reader.eof = true;
            reader.up_to_date = true;
            reader.delivered_eof = true;
            reader.delivered_up_to_date = true;
            reader.set_finished();
            reader.events.push_back(ReaderEvent::Closed {
                offset: reader.read_offset.clone(),
            });
        }
        Ok(reader)
    }
}

#[cfg(test)]
mod tests;
