//! The [`Reader`](super::Reader)'s configuration.

use crate::error::{Error, InputReason, Operation};
use crate::offset::Offset;
use crate::ops::{self, LiveMode, ReadOptions, RequestExtras};
use crate::retry::RetryPolicy;
use crate::sse::SseLimits;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a [`Reader`](super::Reader) reads: catch-up only, or catch-up followed by live tailing.
///
/// See the [module documentation](super) for a diagram of each mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ReadMode {
    /// Plain catch-up `GET`s (no `live` parameter) until a response says `Stream-Up-To-Date`;
    /// then the reader emits [`UpToDate`](super::ReaderEvent::UpToDate) and
    /// [`Done`](super::ReaderEvent::Done) and sends nothing more.
    CatchUp,
    /// `live=long-poll` from the first request on (PROTOCOL.md 5.7).
    LongPoll,
    /// `live=sse` from the first request on (PROTOCOL.md 5.8), falling back to long-poll when
    /// SSE connections keep ending fast (see [`SseFallback`]).
    Sse,
    /// Cacheable catch-up `GET`s (no `live` parameter) until `Stream-Up-To-Date`, then
    /// `live=long-poll` for ever after.
    #[default]
    Auto,
}

/// When SSE gives way to long-poll: after `connections` consecutive SSE responses that each
/// ended (or broke) less than `window` after their request was sent without delivering a
/// `control` event that moved the offset.
///
/// This catches proxies that buffer or cut streaming responses. The fallback is permanent for
/// the reader's life and reported once as
/// [`FellBackToLongPoll`](super::ReaderEvent::FellBackToLongPoll).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SseFallback {
    /// How many consecutive fast, unproductive SSE connections trigger the fallback (at least 1).
    pub connections: u32,
    /// A connection that lasts at least this long is never counted (greater than zero).
    pub window: Duration,
}

impl Default for SseFallback {
    /// Three connections ending within one second.
    fn default() -> Self {
        SseFallback {
            connections: 3,
            window: Duration::from_secs(1),
        }
    }
}

/// Everything a [`Reader`](super::Reader) needs to start; checked by
/// [`Reader::new`](super::Reader::new).
///
/// Build it with [`ReaderConfig::new`] and struct-update syntax:
///
/// ```
/// use ds_proto::reader::{ReadMode, ReaderConfig};
/// let config = ReaderConfig {
///     mode: ReadMode::Sse,
///     rng_seed: 42,
///     ..ReaderConfig::new("http://127.0.0.1:4437/v1/stream/chat")
/// };
/// assert_eq!(config.offset.as_str(), "-1");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReaderConfig {
    /// The absolute stream URL (`http://` or `https://`). It may carry query parameters of its
    /// own, but not `offset`, `live` or `cursor`, which the reader owns.
    pub url: String,
    /// Where to start: [`Offset::beginning`] (`-1`), [`Offset::now`] (only future data), or an
    /// offset saved from an earlier read.
    pub offset: Offset,
    /// Catch-up only, long-poll, SSE or auto.
    pub mode: ReadMode,
    /// How failed reads (429, 5xx, transport failures) are retried. Default:
    /// [`RetryPolicy::unlimited`].
    pub retry: RetryPolicy,
    /// The largest response body buffered whole (JSON bodies, and every catch-up or long-poll
    /// body when [`partial_chunks_over`](ReaderConfig::partial_chunks_over) is `None`) or the
    /// most SSE data held before its `control` event, in bytes; more is a terminal
    /// [`ErrorKind::LimitExceeded`](crate::ErrorKind::LimitExceeded). Default: 64 MiB.
    pub max_body_bytes: usize,
    /// Large catch-up and long-poll bodies are handed out in pieces: once more than this many
    /// bytes of one response body have arrived, they are released as a
    /// [`partial`](super::Chunk::partial) chunk, then the rest of the body piece by piece as
    /// it arrives (without copying), and the last piece carries the response's offset. Memory
    /// stays bounded by this size (plus one transport read) however large the response, and
    /// [`max_body_bytes`](ReaderConfig::max_body_bytes) does not apply to such bodies. JSON
    /// bodies are always whole (their items need the whole array). `None`: every body is
    /// buffered whole (up to `max_body_bytes`) and each chunk is one response. Default: 1 MiB.
    ///
    /// An offset inside a response is unknown (offsets are opaque), so a partial chunk's
    /// `next_offset` is the checkpoint before the response: resuming from it reads the partial
    /// bytes again. A reader that retries a response after releasing part of it skips the
    /// bytes it released (the stream never changes below its tail), so each byte is still
    /// handed out once; so does a reader restored from a snapshot taken mid-response.
    #[serde(default = "default_partial_chunks_over")]
    pub partial_chunks_over: Option<usize>,
    /// Line and event size limits of the SSE parser (exceeding them is a terminal
    /// [`ErrorKind::LimitExceeded`](crate::ErrorKind::LimitExceeded)).
    pub sse_limits: SseLimits,
    /// When SSE falls back to long-poll; `None`: never. Default: 3 connections within 1 s.
    pub sse_fallback: Option<SseFallback>,
    /// The deadline of a long-poll exchange, counted from when its [`Transmit`](crate::Transmit)
    /// is emitted (it becomes [`Transmit::deadline`](crate::Transmit::deadline)). It must exceed
    /// the server's long-poll timeout. Default: 60 s.
    pub long_poll_deadline: Option<Duration>,
    /// The deadline of a catch-up exchange (no `live` parameter). A catch-up response may be
    /// large, so the default is `None`: no deadline from the reader.
    pub catch_up_deadline: Option<Duration>,
    /// If an SSE exchange delivers nothing (no head, no body bytes, not even a comment) for this
    /// long, the reader cancels it (see [`Reader::poll_cancel`](super::Reader::poll_cancel)) and
    /// reconnects from the last `control` offset at once: such a connection is no fast
    /// ending (no backoff, and it does not count towards `sse_fallback`). Default: 120 s.
    pub sse_idle_timeout: Option<Duration>,
    /// Keep a text payload's leading spaces over SSE from servers that write `data:<payload>`
    /// verbatim, without the space the SSE rules strip (the reference servers do this, so a
    /// payload starting with a space loses it under standard parsing). When on, the reader
    /// keeps the space after `data:` and strips one per line only when the server's `control`
    /// lines show it writes `data: `. Off by default: PROTOCOL.md 5.8 says to parse per the SSE
    /// rules, and the conformance suite checks exactly that. Do not turn it on for servers that
    /// add the space themselves when a payload starts with one (the embedded server does).
    /// Base64 responses (`stream-sse-data-encoding: base64`) are parsed per the SSE rules
    /// whatever this says: base64 text has no payload spaces to keep.
    pub sse_preserve_leading_space: bool,
    /// Whether the stream is JSON mode (PROTOCOL.md 9.1). `None`: learn it from the
    /// `Content-Type` of catch-up and long-poll responses. SSE responses do not carry the
    /// stream's content type, so a reader that starts in [`ReadMode::Sse`] should be told:
    /// with `Some(true)` the data events released by one `control` event are merged into one
    /// JSON array. Default: `None`.
    pub json: Option<bool>,
    /// Seed of the reader's PRNG (retry jitter only). Drivers seed from OS entropy,
    /// simulations from the run's seed. Default: 0.
    pub rng_seed: u64,
    /// A `Stream-Cursor` saved from an earlier read, echoed as `cursor=` on the first live
    /// request. Default: `None`.
    pub cursor: Option<String>,
}

impl ReaderConfig {
    /// The default `max_body_bytes`: 64 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 20;
    /// The default `long_poll_deadline`: 60 s.
    pub const DEFAULT_LONG_POLL_DEADLINE: Duration = Duration::from_secs(60);
    /// The default `partial_chunks_over`: 1 MiB.
    pub const DEFAULT_PARTIAL_CHUNKS_OVER: usize = 1 << 20;
    /// The default `sse_idle_timeout`: 120 s.
    pub const DEFAULT_SSE_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

    /// A configuration reading `url` from the beginning (`-1`) in [`ReadMode::Auto`], with the
    /// defaults documented on each field.
    pub fn new(url: impl Into<String>) -> Self {
        ReaderConfig {
            url: url.into(),
            offset: Offset::beginning(),
            mode: ReadMode::Auto,
            retry: RetryPolicy::unlimited(),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            partial_chunks_over: Some(Self::DEFAULT_PARTIAL_CHUNKS_OVER),
            sse_limits: SseLimits::default(),
            sse_fallback: Some(SseFallback::default()),
            long_poll_deadline: Some(Self::DEFAULT_LONG_POLL_DEADLINE),
            catch_up_deadline: None,
            sse_idle_timeout: Some(Self::DEFAULT_SSE_IDLE_TIMEOUT),
            sse_preserve_leading_space: false,
            json: None,
            rng_seed: 0,
            cursor: None,
        }
    }

    /// Checks every field, as [`Reader::new`](super::Reader::new) does before it creates a
    /// reader.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for [`Operation::Read`]
    /// when the URL is not absolute or its query already has `offset`, `live` or `cursor`,
    /// when the retry policy is invalid, when a limit, deadline or the SSE fallback is zero or
    /// a duration exceeds ten years, or when the cursor is empty or not a header-safe string.
    pub fn validate(&self) -> Result<(), Error> {
        let err_url = crate::url::strip_query(&self.url);
        let invalid =
            |msg: String| Error::invalid_input(Operation::Read, err_url, InputReason::Config, msg);
        if let Some((_, query)) = self.url.split('#').next().unwrap_or("").split_once('?') {
            for pair in query.split('&') {
                let key = pair.split('=').next().unwrap_or("");
                if matches!(key, "offset" | "live" | "cursor") {
                    return Err(invalid(format!(
                        "the stream URL must not carry the `{key}` parameter: the reader sets it"
                    )));
                }
            }
        }
        self.retry
            .validate()
            .map_err(|e| invalid(format!("retry policy: {e}")))?;
        if self.max_body_bytes == 0 {
            return Err(invalid("max_body_bytes must be greater than zero".into()));
        }
        if self.partial_chunks_over == Some(0) {
            return Err(invalid(
                "partial_chunks_over must be greater than zero (None: never)".into(),
            ));
        }
        if self.sse_limits.max_line_bytes == 0 || self.sse_limits.max_event_bytes == 0 {
            return Err(invalid("SSE limits must be greater than zero".into()));
        }
        if let Some(f) = self.sse_fallback {
            if f.connections == 0 || f.window.is_zero() {
                return Err(invalid(
                    "sse_fallback needs at least one connection and a non-zero window".into(),
                ));
            }
        }
        for (name, d) in [
            ("long_poll_deadline", self.long_poll_deadline),
            ("catch_up_deadline", self.catch_up_deadline),
            ("sse_idle_timeout", self.sse_idle_timeout),
            ("sse_fallback.window", self.sse_fallback.map(|f| f.window)),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(invalid(format!("{name} must be greater than zero")));
            }
            if d.is_some_and(|d| d > crate::retry::MAX_DURATION) {
                return Err(invalid(format!("{name} exceeds ten years")));
            }
        }
        if let Some(c) = &self.cursor {
            if c.is_empty() || c.chars().any(|ch| ch.is_control()) {
                return Err(invalid(format!(
                    "cursor {c:?} is empty or has control characters"
                )));
            }
        }
        // Building one request checks the URL (absolute, parseable).
        let probe = ReadOptions {
            offset: self.offset.clone(),
            live: LiveMode::LongPoll,
            cursor: self.cursor.clone(),
            if_none_match: None,
        };
        ops::read_request(&self.url, &probe, &RequestExtras::default())
            .map_err(|e| Error::new(Operation::Read, err_url, e.kind))?;
        Ok(())
    }
}

fn default_partial_chunks_over() -> Option<usize> {
    Some(ReaderConfig::DEFAULT_PARTIAL_CHUNKS_OVER)
}

#[cfg(test)]
mod tests;
