//! A stream handle: the one-shot operations of PROTOCOL.md 5.1-5.6 with retries.
//!
//! Each operation is a ds-proto descriptor ([`ds_proto::ops::OneShot`]) run by
//! [`StreamHandle::run`]: one HTTP exchange per attempt; ds-proto's
//! [`Call`](ds_proto::driver::call::Call) decides the request, whether and when to try again,
//! and what the handle learns. The operations themselves are written once for both drivers
//! (`ds_proto::__stream_handle_ops!`); this module is their IO.

use crate::client::Client;
use crate::trace;
use ds_proto::driver::call::Call;
use ds_proto::ops::OneShot;
use ds_proto::Error;
use std::time::Instant;

ds_proto::__stream_handle! {
    now: std::time::Instant::now;
    /// A handle to one stream. Cheap to clone. Not named `Stream` so it does not collide with
    /// `futures::Stream` (the same name as in `ds-tokio`).
}

impl StreamHandle {
    /// Runs one operation across its attempts: ds-proto's [`Call`] decides the request,
    /// retries and result; this only sends, times out and waits.
    pub(crate) fn run<O: OneShot>(&self, op: O) -> Result<O::Output, Error> {
        let now = Instant::now();
        let settings = self.client.settings();
        let mut call = Call::new(op, settings, &self.call, self.client.next_seed(), now)?;
        loop {
            let request = call.request(&self.client.extras(&self.call))?;
            let trace = trace::RequestTrace::start(&request, Some(call.attempts()), None);
            let outcome = {
                let _span = trace::enter(trace.handle());
                self.client.inner.transport.send_buffered_timeout(
                    request,
                    call.max_response_bytes(),
                    call.timeout(),
                )
            };
            trace.outcome(&outcome);
            match self.settle(&mut call, outcome, Instant::now()) {
                Ok(result) => return result,
                Err(delay) => std::thread::sleep(delay),
            }
        }
    }
}

ds_proto::__stream_handle_ops!(; );
