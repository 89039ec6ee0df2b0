//! `ds read STREAM` (what the stream holds now) and `ds tail STREAM` (and then live).

use crate::args::PrintArgs;
use crate::commands::cli_retry;
use crate::exit::{describe, Failure};
use crate::output::{self, Written};
use ds_tokio::{Offset, ReadMode, ReaderConfig, ReaderEvent, RetryPolicy, StreamHandle};
use std::time::Duration;

/// How `tail` follows the stream.
#[derive(Debug, Clone, Copy)]
pub struct Follow {
    mode: ReadMode,
    limit: Option<Duration>,
}

impl Follow {
    /// From `--sse`, `--long-poll` (clap refuses both at once) and `--for`.
    pub fn new(sse: bool, long_poll: bool, limit: Option<Duration>) -> Follow {
        let mode = match (sse, long_poll) {
            (true, _) => ReadMode::Sse,
            (false, true) => ReadMode::LongPoll,
            (false, false) => ReadMode::Auto,
        };
        Follow { mode, limit }
    }
}

/// Prints the stream from `--offset`; without `follow` until it is caught up, with it until
/// it is closed (or `--for` has passed).
pub async fn run(
    print: &PrintArgs,
    follow: Option<Follow>,
    stream: &StreamHandle,
) -> Result<(), Failure> {
    let mode = follow.map_or(ReadMode::CatchUp, |f| f.mode);
    let limit = follow.and_then(|f| f.limit);
    if mode == ReadMode::Sse {
        // SSE responses do not say whether the stream is JSON: ask first.
        let info = stream.head().await?;
        if let Some(ct) = info.content_type {
            stream.set_content_type(ct);
        }
    }
    let mut reader = stream.reader_with(ReaderConfig {
        offset: print.offset.clone().unwrap_or_else(Offset::beginning),
        mode,
        // `read` gives up like the other commands; `tail` keeps trying (and says so).
        retry: if follow.is_some() {
            RetryPolicy::unlimited()
        } else {
            cli_retry()
        },
        ..ReaderConfig::new(stream.url())
    })?;
    if follow.is_some() {
        eprintln!("following {} ({mode:?})", stream.url());
    }
    let deadline = limit.map(|l| tokio::time::Instant::now() + l);
    let mut stdout = std::io::stdout().lock();
    loop {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, reader.next_event()).await {
                Ok(next) => next,
                Err(_) => {
                    eprintln!(
                        "stopped after {:?} at {}",
                        limit.unwrap_or_default(),
                        reader.offset()
                    );
                    return Ok(());
                }
            },
            None => reader.next_event().await,
        };
        let chunk = match next {
            None => break,
            Some(ReaderEvent::Data(chunk)) => chunk,
            Some(ReaderEvent::Failed(e)) => return Err(e.into()),
            Some(ReaderEvent::Retrying { error, delay, .. }) => {
                eprintln!("ds: {}; retrying in {delay:.1?}", describe(&error));
                continue;
            }
            Some(ReaderEvent::FellBackToLongPoll) => {
                eprintln!("ds: SSE connections keep ending early; using long-poll");
                continue;
            }
            Some(_) => continue, // up to date, closed, done: the loop ends with `None`
        };
        let mut out = Vec::new();
        if chunk.json {
            let items = chunk
                .items()
                .map_err(|e| Failure::Other(format!("bad JSON from the server: {e}")))?;
            output::json_lines(&items, chunk.next_offset.as_str(), print.offsets, &mut out);
        } else {
            output::raw_chunk(
                &chunk.data,
                chunk.next_offset.as_str(),
                print.offsets,
                &mut out,
            );
        }
        if output::write_flushed(&mut stdout, &out)? == Written::ReaderLeft {
            return Ok(());
        }
    }
    if reader.is_eof() {
        eprintln!("end of stream at {} (closed)", reader.offset());
    } else {
        eprintln!("up to date at {}", reader.offset());
    }
    Ok(())
}
