//! The vocabulary every ds-proto state machine shares, as a trait, so a driver can write its
//! run loop once for the [`Reader`](crate::reader::Reader) and the
//! [`Producer`](crate::producer::Producer).
//!
//! The driving loop, in the one order every driver follows (quinn-proto's model):
//!
//! ```text
//!   loop {
//!       while let Some(out) = m.poll_outgoing(now) {  // poll_cancel first, then poll_transmit
//!           Outgoing::Cancel(id) => abort exchange id
//!           Outgoing::Send(t)    => start the exchange t
//!       }
//!       while let Some(e) = m.poll_event()       { hand e to the application }
//!       wait for the first of: an Input, an application command, m.poll_timeout()
//!       feed it: m.handle_input(input, now) / command / m.handle_timeout(now)
//!   }
//! ```
//!
//! Cancels go before transmits: an exchange the machine abandoned is closed before a new one
//! may take its connection. [`Machine::poll_outgoing`] asks for cancels again before every
//! transmit, so a driver that feeds an input while draining (an exchange that failed as it
//! started) still keeps the order.
//!
//! Time contract: `now` is monotonic, never earlier than a previous call's; calling
//! `handle_timeout` early or twice is harmless.

use crate::io::{Input, RequestId, Transmit};
use std::time::Instant;

/// What the driver must do with its exchanges, from [`Machine::poll_outgoing`].
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // taken apart at once; boxing would allocate per request
pub enum Outgoing {
    /// Abort this exchange and feed nothing more about it.
    Cancel(RequestId),
    /// Start this exchange.
    Send(Transmit),
}

/// A sans-IO state machine that emits HTTP requests and consumes their responses.
pub trait Machine {
    /// What the machine reports to the application.
    type Event;

    /// Feeds what the driver saw of an exchange.
    fn handle_input(&mut self, input: Input, now: Instant);

    /// Tells the machine time has passed (safe to call spuriously).
    fn handle_timeout(&mut self, now: Instant);

    /// The next request to send; changes after inputs, timeouts and commands.
    #[must_use]
    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit>;

    /// An exchange the driver must abort; changes after inputs, timeouts and commands.
    #[must_use]
    fn poll_cancel(&mut self) -> Option<RequestId>;

    /// The next thing to do with the exchanges, in drain order: every pending cancel, then
    /// the next transmit. Drain it until `None` after every mutation, before
    /// [`Machine::poll_event`].
    #[must_use]
    fn poll_outgoing(&mut self, now: Instant) -> Option<Outgoing> {
        if let Some(id) = self.poll_cancel() {
            return Some(Outgoing::Cancel(id));
        }
        self.poll_transmit(now).map(Outgoing::Send)
    }

    /// When [`Machine::handle_timeout`] must be called next; changes after any mutation.
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;

    /// The next event for the application; changes after any mutation.
    #[must_use]
    fn poll_event(&mut self) -> Option<Self::Event>;
}

/// Implements [`Machine`] by delegating to the type's inherent methods of the same names.
macro_rules! delegate_machine {
    ($ty:ty, $event:ty) => {
        impl Machine for $ty {
            type Event = $event;
            fn handle_input(&mut self, input: Input, now: Instant) {
                <$ty>::handle_input(self, input, now)
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$ty>::handle_timeout(self, now)
            }
            fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
                <$ty>::poll_transmit(self, now)
            }
            fn poll_cancel(&mut self) -> Option<RequestId> {
                <$ty>::poll_cancel(self)
            }
            fn poll_timeout(&self) -> Option<Instant> {
                <$ty>::poll_timeout(self)
            }
            fn poll_event(&mut self) -> Option<$event> {
                <$ty>::poll_event(self)
            }
        }
    };
}

delegate_machine!(crate::reader::Reader, crate::reader::ReaderEvent);
delegate_machine!(crate::producer::Producer, crate::producer::ProducerEvent);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::{ReadMode, Reader, ReaderConfig};
    use std::time::Duration;

    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn cancels_come_before_the_next_transmit() {
        // An SSE reader whose connection went idle: it abandons that exchange and opens
        // another; the driver must close the first before starting the second.
        let now = t0();
        let mut config = ReaderConfig::new("http://h/v1/stream/s");
        config.mode = ReadMode::Sse;
        config.sse_idle_timeout = Some(Duration::from_secs(1));
        let mut r = Reader::new(config, now).unwrap();
        let first = match r.poll_outgoing(now) {
            Some(Outgoing::Send(t)) => t,
            other => panic!("expected the first request, got {other:?}"),
        };
        assert!(r.poll_outgoing(now).is_none());
        let head = http::Response::builder()
            .status(200)
            .header("content-type", "text/event-stream")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        r.handle_input(
            Input::Head {
                id: first.id,
                parts: head,
            },
            now,
        );
        let later = now + Duration::from_secs(5);
        r.handle_timeout(later);
        let mut order = Vec::new();
        let mut at = later;
        for _ in 0..100 {
            match r.poll_outgoing(at) {
                Some(Outgoing::Cancel(id)) => order.push(("cancel", id)),
                Some(Outgoing::Send(t)) => {
                    order.push(("send", t.id));
                    break;
                }
                None => match r.poll_timeout() {
                    Some(t) => {
                        at = at.max(t);
                        r.handle_timeout(at);
                    }
                    None => break,
                },
            }
        }
        assert_eq!(order.first(), Some(&("cancel", first.id)), "{order:?}");
        assert!(
            matches!(order.last(), Some(("send", id)) if *id != first.id),
            "{order:?}"
        );
    }
}
