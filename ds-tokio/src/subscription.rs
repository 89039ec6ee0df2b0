//! Subscriptions (PROTOCOL.md 6, 7): the control operations of a [`SubscriptionHandle`], the
//! pull-wake worker run loop ([`SubscriptionHandle::work`]: ds-proto's
//! [`Worker`] machine on its own task, calling a [`WorkerHandler`]), and the webhook helpers
//! ([`WebhookVerifier`], [`Client::send_callback`]). The rules are ds-proto's
//! (`ds_proto::subscription`, `ds_proto::driver::subscription`); this module sends, waits and
//! calls the application.
//!
//! Delivery to a worker's handler is **at least once**: a batch is handed out again (to this
//! worker or another) when its ack did not reach the server before the wake ended: the lease
//! was lost, the handler failed and the wake was released, or the worker was stopped, aborted
//! or crashed before the ack succeeded (see `ds_proto::subscription::worker`).

use crate::client::Client;
use crate::engine::{now, Engine, Wake};
use ds_proto::driver::subscription::{
    self as drv, SubscriptionCall, SubscriptionOneShot, SubscriptionStep,
};
use ds_proto::ops::CallOptions;
use ds_proto::subscription::{Batch, SubscriptionError, Worker, WorkerEvent};
use ds_proto::TransportError;
use std::future::Future;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use ds_proto::driver::subscription::WorkerStep;
pub use ds_proto::driver::subscription::{WorkerAction, WorkerExit, WorkerOptions};

ds_proto::__subscription_handle!(async; .await; now: crate::clock::now);

impl Client {
    /// Runs one subscription operation across its attempts.
    pub(crate) async fn run_subscription<O: SubscriptionOneShot>(
        &self,
        op: O,
        call: &CallOptions,
    ) -> Result<O::Output, SubscriptionError> {
        let mut c = SubscriptionCall::new(op, self.settings(), call, self.next_seed(), now())?;
        loop {
            let request = c.request(&self.extras(call))?;
            let exchange = self
                .inner
                .transport
                .send_buffered(request, c.max_response_bytes());
            let outcome = match c.timeout() {
                Some(t) => tokio::time::timeout(t, exchange)
                    .await
                    .unwrap_or_else(|_| Err(TransportError::timed_out(t))),
                None => exchange.await,
            };
            match c.outcome(outcome, now()) {
                SubscriptionStep::Done(result) => return result,
                SubscriptionStep::Retry { delay, .. } => tokio::time::sleep(delay).await,
            }
        }
    }
}

impl SubscriptionHandle {
    /// Starts a pull-wake worker on its own task, calling `handler` for every batch. Without
    /// [`WorkerOptions::wake_stream`] the subscription is read first to learn its wake stream
    /// (a missing subscription is
    /// [`NotFound`](ds_proto::subscription::SubscriptionErrorKind::NotFound)).
    pub async fn work<H: WorkerHandler>(
        &self,
        options: WorkerOptions,
        handler: H,
    ) -> Result<WorkerHandle, SubscriptionError> {
        let machine = self.worker_machine(&options).await?;
        let engine =
            Engine::new(machine, self.client.clone(), self.call.clone()).keep_authorization();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_worker(engine, handler, stop_rx));
        Ok(WorkerHandle { stop, task })
    }
}

/// The application's side of a worker.
pub trait WorkerHandler: Send + 'static {
    /// What `handle_batch` fails with.
    type Error: Send + 'static;

    /// Handles one batch of one stream (`batch.stream`, `batch.data`, `batch.next_offset`).
    /// Return `Ok` once it is processed: the worker then acks `batch.next_offset`.
    fn handle_batch(
        &mut self,
        batch: &Batch,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Decides what follows a failed batch; releases the wake by default.
    fn handle_error(&mut self, batch: &Batch, error: &Self::Error) -> WorkerAction {
        let _ = (batch, error);
        WorkerAction::Release
    }

    /// Sees every other event of the worker (claims, lease losses, retries, ...).
    fn on_event(&mut self, event: &WorkerEvent) {
        let _ = event;
    }
}

/// Controls a running worker. Dropping it stops the worker gracefully.
#[derive(Debug)]
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<WorkerExit>,
}

impl WorkerHandle {
    /// Asks the worker to stop: the batch being handled is finished and acked, the acks
    /// recorded are sent, the claim is released.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits for the worker to end.
    pub async fn wait(mut self) -> WorkerExit {
        self.join().await
    }

    /// Waits for the worker to end, keeping the handle (to [`WorkerHandle::stop`] it while
    /// waiting in a `select!`). Once it returned, call neither it nor `wait` again.
    pub async fn join(&mut self) -> WorkerExit {
        match (&mut self.task).await {
            Ok(exit) => exit,
            Err(e) if e.is_cancelled() => WorkerExit::Stopped,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Stops the worker and waits for it.
    pub async fn shutdown(self) -> WorkerExit {
        self.stop();
        self.wait().await
    }

    /// Kills the worker at once, as a crash would: nothing more is sent (no ack, no
    /// release); its lease expires on the server.
    pub fn abort(self) {
        self.task.abort();
    }
}

async fn run_worker<H: WorkerHandler>(
    mut engine: Engine<Worker>,
    mut handler: H,
    mut stop: watch::Receiver<bool>,
) -> WorkerExit {
    let mut stopping = false;
    loop {
        if !stopping && *stop.borrow() {
            stopping = true;
            engine.machine.stop();
        }
        engine.flush_outputs();
        match drv::next_worker_step(&mut engine.machine, |e| handler.on_event(e)) {
            Some(WorkerStep::Handled) => {}
            Some(WorkerStep::Exit(exit)) => return engine.finish(exit),
            Some(WorkerStep::Batch(batch)) => loop {
                let result = {
                    let fut = handler.handle_batch(&batch);
                    tokio::pin!(fut);
                    // The engine keeps running while the handler works: heartbeats renew the
                    // lease, reads go on.
                    loop {
                        tokio::select! {
                            biased;
                            r = &mut fut => break r,
                            wake = engine.step() => match wake {
                                Wake::Progress => engine.flush_outputs(),
                                Wake::Idle => break fut.await,
                            },
                        }
                    }
                };
                let decide = |e: &H::Error| handler.handle_error(&batch, e);
                if !drv::batch_handled(&mut engine.machine, &batch, result, decide) {
                    break;
                }
            },
            None if stopping => {
                // Stopping: the acks and the release go out; the stop request is not looked
                // at again (it stays set).
                if let Wake::Idle = engine.step().await {
                    return WorkerExit::Stopped;
                }
            }
            None => {
                tokio::select! {
                    biased;
                    // A stop, or the handle dropped.
                    _ = stop.wait_for(|s| *s) => {
                        stopping = true;
                        engine.machine.stop();
                    }
                    wake = engine.step() => if let Wake::Idle = wake {
                        engine.machine.stop();
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verification can run on any task: its key cache is not locked across the fetch.
    #[test]
    fn verifying_is_send() {
        fn send<T: Send>(_: &T) {}
        let client = Client::new("http://127.0.0.1:9").unwrap();
        let verifier = client.webhook_verifier("http://127.0.0.1:9/__ds/jwks.json");
        let headers = http::HeaderMap::new();
        send(&verifier.verify_at(&headers, b"{}", 0));
        send(&verifier.notification(&headers, b"{}", "s1"));
    }
}
