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
use ds_proto::{Error, TransportError};
use tokio::time::Instant;

ds_proto::__stream_handle! {
    now: crate::clock::now;
    /// A handle to one stream. Cheap to clone. Not named `Stream` so it does not collide with
    /// `futures::Stream`.
}

impl StreamHandle {
    /// Runs one operation across its attempts: ds-proto's [`Call`] decides the request,
    /// retries and result; this only sends, times out and waits.
    pub(crate) async fn run<O: OneShot>(&self, op: O) -> Result<O::Output, Error> {
        let now = Instant::now().into_std();
        let settings = self.client.settings();
        let mut call = Call::new(op, settings, &self.call, self.client.next_seed(), now)?;
        loop {
            let request = call.request(&self.client.extras(&self.call))?;
            let trace = trace::RequestTrace::start(&request, Some(call.attempts()), None);
            let exchange = self
                .client
                .inner
                .transport
                .send_buffered(request, call.max_response_bytes());
            let exchange = trace::in_span(trace.handle(), exchange);
            let outcome = match call.timeout() {
                Some(t) => tokio::time::timeout(t, exchange)
                    .await
                    .unwrap_or_else(|_| Err(TransportError::timed_out(t))),
                None => exchange.await,
            };
            trace.outcome(&outcome);
            match self.settle(&mut call, outcome, Instant::now().into_std()) {
                Ok(result) => return result,
                Err(delay) => tokio::time::sleep(delay).await,
            }
        }
    }
}

ds_proto::__stream_handle_ops!(async; .await);
