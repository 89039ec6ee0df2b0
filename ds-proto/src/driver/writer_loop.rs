//! One turn of a driver writer's background loop, written once: the decisions both drivers'
//! loops made each on their own before (issue 18). A [`WriterLoop`] keeps the writer's
//! connection plan ([`WriterPipe`]) and the inputs that wait to be fed; with the
//! [`WriterCore`] locked, [`WriterLoop::take`] feeds those inputs, takes what the producer
//! wants sent or cancelled, persists the write-ahead snapshot before anything leaves, tells the
//! plan, and sorts each request onto its carrier ([`Carry`]). The driver then carries the
//! requests (pooled exchanges, or the dedicated connection's [`PipelinedLink`]) with the lock
//! released, and waits until [`WriterLoop::deadline`].
//!
//! ```text
//! wl = WriterLoop::new(&mut core, has_tls)            // the plan's sizes apply at once
//! loop:
//!     carry = wl.take(&mut core, &mut link, now)       // under the writer's lock
//!     deliver the core's events; deadline = wl.deadline(&core, link.next_deadline())
//!     cancels: abort the exchange, LinkEvent::Abort;   pooled: start an exchange
//!     piped: LinkEvent::Submit (with the client's extras)
//!     wait: an input -> wl.push(input); link bytes -> the link (its inputs: wl.parts().1);
//!           the deadline -> LinkEvent::Timeout, then wl.on_timeout(&mut core, now)
//! ```

use crate::driver::pipelined_link::{InputTraces, PipelinedLink};
use crate::driver::writer::WriterCore;
use crate::driver::writer_pipe::{Carrier, WriterPipe};
use crate::io::{Input, RequestId, Transmit};
use crate::machine::{Machine, Outgoing};
use std::time::Instant;

/// What one turn hands the driver to carry, in the producer's order within each list.
#[derive(Debug, Default)]
pub struct Carry {
    /// Requests the producer gave up on: abort their exchange, and tell the dedicated
    /// connection (`LinkEvent::Abort`). The plan already counts them as failed.
    pub cancels: Vec<RequestId>,
    /// Requests for the driver's pooled exchanges.
    pub pooled: Vec<Transmit>,
    /// Requests for the dedicated connection (`LinkEvent::Submit`, after the client's extras).
    pub piped: Vec<Transmit>,
}

impl Carry {
    /// Whether there is nothing to carry.
    pub fn is_empty(&self) -> bool {
        self.cancels.is_empty() && self.pooled.is_empty() && self.piped.is_empty()
    }
}

/// The writer's plan and its waiting inputs. See the [module documentation](self).
#[derive(Debug)]
pub struct WriterLoop {
    plan: WriterPipe,
    inputs: Vec<Input>,
}

impl WriterLoop {
    /// The loop of the writer whose core is `core`; `tls`: the driver's dedicated connection
    /// speaks TLS ([`WriterPipe::with_tls`]). The plan's sizes apply to the producer at once,
    /// so that appends made before the loop first runs are cut as the plan says.
    pub fn new<W>(core: &mut WriterCore<W>, tls: bool) -> WriterLoop {
        let plan = WriterPipe::new(core.producer().config()).with_tls(tls);
        plan.apply(core.producer_mut());
        WriterLoop {
            plan,
            inputs: Vec::new(),
        }
    }

    /// The connection plan.
    pub fn plan(&self) -> &WriterPipe {
        &self.plan
    }

    /// The plan and the inputs waiting to be fed, to hand to the dedicated connection (which
    /// tells the plan what it writes and adds the inputs it decodes).
    pub fn parts(&mut self) -> (&mut WriterPipe, &mut Vec<Input>) {
        (&mut self.plan, &mut self.inputs)
    }

    /// Keeps `input` (of a pooled exchange) until the next turn ([`take`](Self::take) or
    /// [`on_timeout`](Self::on_timeout)) feeds it.
    pub fn push(&mut self, input: Input) {
        self.inputs.push(input);
    }

    /// Whether inputs wait to be fed.
    pub fn has_inputs(&self) -> bool {
        !self.inputs.is_empty()
    }

    /// Feeds the waiting inputs, in order, to the plan and the producer
    /// ([`WriterPipe::feed`]).
    fn feed<W>(&mut self, core: &mut WriterCore<W>, now: Instant) {
        for input in self.inputs.drain(..) {
            self.plan.feed(core.producer_mut(), input, now);
        }
    }

    /// One turn at `now`: feeds the waiting inputs, then takes every cancel and transmit the
    /// producer has ([`Machine::poll_outgoing`]). Before the first transmit leaves, the
    /// snapshot callback gets a snapshot holding it if one is due (write-ahead,
    /// [`WriterCore::persist`]). Each request is counted by the plan
    /// ([`WriterPipe::on_sent`], [`WriterPipe::on_abandoned`]) and sorted onto the carrier the
    /// plan names for it. Once the plan carries requests pooled (pipelining refused, or
    /// reordered), those still waiting for room on the dedicated connection (`link`) come
    /// first among the pooled ones ([`PipelinedLink::take_for_pool`]).
    pub fn take<W, T: InputTraces, S>(
        &mut self,
        core: &mut WriterCore<W>,
        link: &mut PipelinedLink<T, S>,
        now: Instant,
    ) -> Carry {
        self.feed(core, now);
        let mut carry = Carry {
            pooled: link.take_for_pool(&self.plan),
            ..Carry::default()
        };
        let mut persisted = false;
        while let Some(out) = core.producer_mut().poll_outgoing(now) {
            match out {
                Outgoing::Cancel(id) => {
                    self.plan.on_abandoned(id, now);
                    carry.cancels.push(id);
                }
                Outgoing::Send(t) => {
                    if !persisted {
                        core.persist(false);
                        persisted = true;
                    }
                    self.plan.on_sent(&t, now);
                    match self.plan.carrier() {
                        Carrier::Pooled => carry.pooled.push(t),
                        Carrier::Pipelined { .. } => carry.piped.push(t),
                    }
                }
            }
        }
        carry
    }

    /// When the loop must wake up: the producer's timer or the dedicated connection's
    /// (`link`), whichever comes first.
    pub fn deadline<W>(&self, core: &WriterCore<W>, link: Option<Instant>) -> Option<Instant> {
        match (core.producer().poll_timeout(), link) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The deadline passed at `now` (after the dedicated connection saw its
    /// `LinkEvent::Timeout`): the waiting inputs are fed, then the producer's timers fire.
    pub fn on_timeout<W>(&mut self, core: &mut WriterCore<W>, now: Instant) {
        self.feed(core, now);
        core.producer_mut().handle_timeout(now);
    }
}

#[cfg(test)]
#[path = "writer_loop_tests.rs"]
mod tests;
