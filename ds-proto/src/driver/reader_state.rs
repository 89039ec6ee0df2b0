//! What a driver's reader tells about itself besides its events: the checkpoint, whether it
//! is up to date or at EOF, the latest status and its snapshot ([`ReaderState`]), read from
//! the machine itself, or from a [`HandedOut`] copy taken when the last event was handed out
//! (a driver whose machine runs ahead of the application, inside a pending step). The
//! driver's public accessors are written once by the hidden `__reader_state!` macro.

use crate::offset::Offset;
use crate::reader::{Reader, ReaderSnapshot};

/// A reader's state as its driver's accessors report it.
pub trait ReaderState {
    /// The checkpoint: the offset after everything handed out.
    fn offset(&self) -> &Offset;
    /// Whether the reader has caught up with the stream's tail.
    fn is_up_to_date(&self) -> bool;
    /// Whether the stream is closed and everything was read (EOF).
    fn is_eof(&self) -> bool;
    /// The HTTP status of the latest response received; `None` before the first.
    fn last_status(&self) -> Option<u16>;
    /// A snapshot to resume from.
    fn snapshot(&self) -> ReaderSnapshot;
}

impl ReaderState for Reader {
    fn offset(&self) -> &Offset {
        Reader::offset(self)
    }
    fn is_up_to_date(&self) -> bool {
        Reader::is_up_to_date(self)
    }
    fn is_eof(&self) -> bool {
        Reader::is_eof(self)
    }
    fn last_status(&self) -> Option<u16> {
        Reader::last_status(self)
    }
    fn snapshot(&self) -> ReaderSnapshot {
        Reader::snapshot(self)
    }
}

/// A machine's [`ReaderState`] as of the last event handed out: the driver takes it with
/// [`HandedOut::of`] each time it hands one out, while the machine itself may already be
/// inside the next step.
#[derive(Debug, Clone)]
pub struct HandedOut {
    offset: Offset,
    up_to_date: bool,
    eof: bool,
    last_status: Option<u16>,
    snapshot: ReaderSnapshot,
}

impl HandedOut {
    /// The state of `machine` now.
    pub fn of(machine: &Reader) -> HandedOut {
        HandedOut {
            offset: machine.offset().clone(),
            up_to_date: machine.is_up_to_date(),
            eof: machine.is_eof(),
            last_status: machine.last_status(),
            snapshot: machine.snapshot(),
        }
    }
}

impl ReaderState for HandedOut {
    fn offset(&self) -> &Offset {
        &self.offset
    }
    fn is_up_to_date(&self) -> bool {
        self.up_to_date
    }
    fn is_eof(&self) -> bool {
        self.eof
    }
    fn last_status(&self) -> Option<u16> {
        self.last_status
    }
    fn snapshot(&self) -> ReaderSnapshot {
        self.snapshot.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::Input;
    use crate::ops::test_util::parts;
    use crate::reader::{ReadMode, ReaderConfig};

    /// The copy keeps what was handed out while the machine moves on; the machine's own
    /// state is what a driver without a pending step reports.
    #[test]
    #[allow(clippy::disallowed_methods)] // the clock's origin only
    fn handed_out_keeps_the_state_of_its_moment() {
        let now = std::time::Instant::now();
        let config = ReaderConfig {
            mode: ReadMode::CatchUp,
            ..ReaderConfig::new("http://h/s")
        };
        let mut machine = Reader::new(config.clone(), now).unwrap();
        let before = HandedOut::of(&machine);
        assert!(!(&machine as &dyn ReaderState).is_up_to_date());
        let id = machine.poll_transmit(now).expect("a catch-up request").id;
        let head = parts(
            200,
            &[("Stream-Next-Offset", "5"), ("Stream-Up-To-Date", "true")],
        );
        machine.handle_input(Input::Head { id, parts: head }, now);
        machine.handle_input(Input::End { id }, now);
        while machine.poll_event().is_some() {}
        let after = HandedOut::of(&machine);
        assert_eq!(before.offset(), &Offset::beginning());
        assert!(!before.is_up_to_date());
        assert_eq!(before.last_status(), None);
        assert_eq!(after.offset(), &Offset::parse("5").unwrap());
        assert!(after.is_up_to_date());
        assert_eq!(after.last_status(), Some(200));
        assert!(!after.is_eof());
        assert_ne!(before.snapshot(), after.snapshot());
        let live: &dyn ReaderState = &machine;
        assert_eq!(live.offset(), after.offset());
        assert_eq!(live.snapshot(), after.snapshot());
        assert_eq!(live.last_status(), after.last_status());
        assert_eq!(live.is_up_to_date(), after.is_up_to_date());
        assert_eq!(live.is_eof(), after.is_eof());

        // A stream closed at its tail: EOF, from the machine and from the copy alike.
        let mut closing = Reader::new(config, now).unwrap();
        let id = closing.poll_transmit(now).expect("a catch-up request").id;
        let head = parts(
            200,
            &[
                ("Stream-Next-Offset", "5"),
                ("Stream-Up-To-Date", "true"),
                ("Stream-Closed", "true"),
            ],
        );
        closing.handle_input(Input::Head { id, parts: head }, now);
        closing.handle_input(Input::End { id }, now);
        while closing.poll_event().is_some() {}
        assert!(HandedOut::of(&closing).is_eof());
        assert!((&closing as &dyn ReaderState).is_eof());
    }
}
