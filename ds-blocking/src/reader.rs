//! The pull reader: an `Iterator` of [`Chunk`]s driven by ds-proto's
//! [`Reader`](ds_proto::reader::Reader) state machine (catch-up, long-poll, SSE, auto).
//!
//! Catch-up and long-poll requests are made on the thread calling [`Reader::next_event`]
//! itself (no hand-over to another thread and back per response), unless a
//! [`ReaderStopper`] exists: then, as for SSE (whose idle timeout must fire while a read
//! blocks), they run on exchange threads so that a blocked call can be interrupted.
//!
//! Dropping a reader cancels its in-flight request (an exchange thread stops at its next
//! read; a request made on the reader's thread is closed at once). Offsets to checkpoint come with every chunk ([`Chunk::next_offset`]) and from
//! [`Reader::offset`]: resuming from them never skips or repeats data. (A large response may come in
//! [`partial`](Chunk::partial) chunks whose offset is the checkpoint before it: resuming
//! from one reads the response again; snapshots skip what was handed out.) [`Reader::snapshot`]
//! captures the checkpoint with the cursor and the reader's phase as a serializable
//! [`ReaderSnapshot`];
//! [`StreamHandle::reader_from_snapshot`](crate::StreamHandle::reader_from_snapshot) resumes
//! from it, in this process
//! or another.

use crate::engine::{Engine, Here, Msg, Wake};
use crate::trace;
use ds_proto::ops::LiveMode;
use ds_proto::reader::{Chunk, ReaderEvent};
use ds_proto::Error;
use serde::de::DeserializeOwned;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A live or catch-up reader of one stream.
pub struct Reader {
    engine: Engine<ds_proto::reader::Reader>,
    finished: bool,
    url: String,
    /// Set by a [`ReaderStopper`]. While one exists (it holds a clone), requests go to
    /// exchange threads, which it can interrupt.
    stop: Arc<AtomicBool>,
    /// The exchange this thread reads itself.
    here: Option<Here>,
}

ds_proto::__reader_state!();

impl Reader {
    /// A reader driving `engine`'s machine (made by the stream handle) for the stream at
    /// `url`.
    pub(crate) fn from_machine(engine: Engine<ds_proto::reader::Reader>, url: String) -> Reader {
        Reader {
            engine,
            finished: false,
            url,
            stop: Arc::new(AtomicBool::new(false)),
            here: None,
        }
    }

    /// The machine itself: this thread hands out each event as soon as the machine has it.
    fn state(&self) -> &ds_proto::reader::Reader {
        &self.engine.machine
    }

    /// The next raw event of the machine (data, up-to-date, closed, retrying, fallback,
    /// failure); `None` when the reader is finished.
    pub fn next_event(&mut self) -> Option<ReaderEvent> {
        if self.finished {
            return None;
        }
        loop {
            if self.stop.load(Ordering::Acquire) {
                // A stopper asked: nothing more is handed out, whatever is queued.
                return self.end();
            }
            if let Some(e) = self.engine.machine.poll_event() {
                trace::reader_event(&self.url, &e);
                self.finished = e.is_terminal();
                return Some(e);
            }
            if self.start_requests() {
                // A request made here already has an outcome to look at.
                continue;
            }
            if let Some(here) = &mut self.here {
                let input = here.next_input();
                if input.ends_exchange() {
                    self.here = None;
                }
                self.engine.machine.handle_input(input, Instant::now());
                continue;
            }
            match self.engine.step(false) {
                Wake::Progress => {}
                // Idle: the machine ended; Command: a `ReaderStopper` asked to stop.
                Wake::Idle | Wake::Command(()) => return self.end(),
            }
        }
    }

    /// Ends the reader: the machine stops, its request is cancelled or closed.
    fn end(&mut self) -> Option<ReaderEvent> {
        self.engine.machine.stop();
        self.engine.flush_outputs();
        self.here = None;
        self.finished = true;
        None
    }

    /// Starts what the machine wants sent and cancels what it abandons. A catch-up or
    /// long-poll request is made on this thread when no stopper exists (its deadline bounds
    /// it); others go to exchange threads. Returns whether a request made here fed the
    /// machine (its head, or its failure).
    fn start_requests(&mut self) -> bool {
        while let Some(id) = self.engine.machine.poll_cancel() {
            if self.here.as_ref().is_some_and(|h| h.id == id) {
                self.here = None;
            } else {
                self.engine.exchanges().abort(id);
            }
        }
        let stoppable = Arc::strong_count(&self.stop) > 1;
        let inline =
            !stoppable && self.here.is_none() && self.engine.machine.live_mode() != LiveMode::Sse;
        if inline {
            if let Some(t) = self.engine.machine.poll_transmit(Instant::now()) {
                let input = match self.engine.exchanges().open_here(t) {
                    Ok((here, head)) => {
                        self.here = Some(here);
                        head
                    }
                    Err(failed) => failed,
                };
                self.engine.machine.handle_input(input, Instant::now());
                // What it abandons is cancelled on the next round, above.
                return true;
            }
        }
        self.engine.flush_outputs();
        false
    }

    /// A handle that stops this reader from another thread: a blocked `next_event` returns
    /// `None` and the in-flight request is cancelled.
    pub fn stopper(&self) -> ReaderStopper {
        ReaderStopper {
            stop: self.stop.clone(),
            tx: self.engine.commands(),
        }
    }

    /// The raw events as an iterator.
    pub fn events(&mut self) -> impl Iterator<Item = ReaderEvent> + '_ {
        std::iter::from_fn(move || self.next_event())
    }

    /// The next chunk of data; `None` at EOF, or when a catch-up reader is up to date. An error
    /// is terminal (the next call returns `None`).
    pub fn next_chunk(&mut self) -> Option<Result<Chunk, Error>> {
        loop {
            if let ControlFlow::Break(item) = self.next_event()?.into_chunk() {
                return item;
            }
        }
    }
}

/// Stops a [`Reader`] from another thread.
#[derive(Debug, Clone)]
pub struct ReaderStopper {
    stop: Arc<AtomicBool>,
    tx: std::sync::mpsc::SyncSender<Msg<()>>,
}

impl ReaderStopper {
    /// Stops the reader: its next (or blocked) `next_event` returns `None`, whatever data is
    /// queued. Never blocks; no effect once the reader has ended or been dropped.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        // Wakes a `next_event` blocked waiting for an exchange thread. A full queue means the
        // reader has inputs to look at, and it sees the flag before the next one.
        let _ = self.tx.try_send(Msg::Command(()));
    }
}

impl Iterator for Reader {
    type Item = Result<Chunk, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk()
    }
}

ds_proto::__json_items!();

impl<T: DeserializeOwned> Iterator for JsonItems<T> {
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.next(&self.reader.url) {
                return Some(item);
            }
            match self.reader.next_chunk()? {
                Err(e) => return Some(Err(e)),
                Ok(chunk) => {
                    if let Err(e) = self.pending.push(&chunk, &self.reader.url) {
                        return Some(Err(e));
                    }
                }
            }
        }
    }
}
