//! The vocabulary every ds-proto state machine shares, as a trait, so a driver can write its
//! run loop once for the [`Reader`](crate::reader::Reader) and the
//! [`Producer`](crate::producer::Producer).
//!
//! The driving loop, in order (quinn-proto's model):
//!
//! ```text
//!   loop {
//!       while let Some(t) = m.poll_transmit(now) { start the exchange t }
//!       while let Some(id) = m.poll_cancel()     { abort exchange id }
//!       while let Some(e) = m.poll_event()       { hand e to the application }
//!       wait for the first of: an Input, an application command, m.poll_timeout()
//!       feed it: m.handle_input(input, now) / command / m.handle_timeout(now)
//!   }
//! ```
//!
//! Time contract: `now` is monotonic, never earlier than a previous call's; calling
//! `handle_timeout` early or twice is harmless.

use crate::io::{Input, RequestId, Transmit};
use std::time::Instant;

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
