//! Subscriptions (PROTOCOL.md 6, 7): the control operations of a [`SubscriptionHandle`], the
//! pull-wake worker run loop ([`SubscriptionHandle::work`]: ds-proto's
//! [`Worker`] machine on its own thread, calling a [`WorkerHandler`]), and the webhook helpers
//! ([`WebhookVerifier`], [`Client::send_callback`]). The rules are ds-proto's
//! (`ds_proto::subscription`, `ds_proto::driver::subscription`); this module sends, waits and
//! calls the application.
//!
//! Delivery to a worker's handler is **at least once**: a batch is handed out again (to this
//! worker or another) when its ack did not reach the server before the wake ended: the lease
//! was lost, the handler failed and the wake was released, or the worker was stopped, aborted
//! or crashed before the ack succeeded (see `ds_proto::subscription::worker`).

use crate::client::Client;
use crate::engine::{Engine, Msg, Wake};
use ds_proto::driver::subscription::{
    self as drv, SubscriptionCall, SubscriptionOneShot, SubscriptionStep,
};
use ds_proto::ops::CallOptions;
use ds_proto::subscription::{Batch, SubscriptionError, SubscriptionOp, Worker, WorkerEvent};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Instant;

use ds_proto::driver::subscription::WorkerStep;
pub use ds_proto::driver::subscription::{WorkerAction, WorkerExit, WorkerOptions};

ds_proto::__subscription_handle!(; ; now: std::time::Instant::now);

impl Client {
    /// Runs one subscription operation across its attempts.
    pub(crate) fn run_subscription<O: SubscriptionOneShot>(
        &self,
        op: O,
        call: &CallOptions,
    ) -> Result<O::Output, SubscriptionError> {
        let mut c =
            SubscriptionCall::new(op, self.settings(), call, self.next_seed(), Instant::now())?;
        loop {
            let request = c.request(&self.extras(call))?;
            let outcome = self.inner.transport.send_buffered_timeout(
                request,
                c.max_response_bytes(),
                c.timeout(),
            );
            match c.outcome(outcome, Instant::now()) {
                SubscriptionStep::Done(result) => return result,
                SubscriptionStep::Retry { delay, .. } => std::thread::sleep(delay),
            }
        }
    }
}

impl SubscriptionHandle {
    /// Starts a pull-wake worker on its own thread, calling `handler` for every batch. Without
    /// [`WorkerOptions::wake_stream`] the subscription is read first to learn its wake stream
    /// (a missing subscription is
    /// [`NotFound`](ds_proto::subscription::SubscriptionErrorKind::NotFound)). A thread that
    /// cannot be started is an
    /// [`InvalidInput`](ds_proto::ErrorKind::InvalidInput) error (`InputReason::Resource`).
    pub fn work<H: WorkerHandler>(
        &self,
        options: WorkerOptions,
        handler: H,
    ) -> Result<WorkerHandle, SubscriptionError> {
        let machine = self.worker_machine(&options)?;
        let url = self.root()?.subscription_url(&self.id);
        let engine =
            Engine::new(machine, self.client.clone(), self.call.clone()).keep_authorization();
        let wake = engine.commands();
        let flags = Arc::new(Flags::default());
        let f = flags.clone();
        let thread = std::thread::Builder::new()
            .name("ds-worker".into())
            .spawn(move || run_worker(engine, handler, &f))
            .map_err(|e| {
                SubscriptionError::invalid_input(
                    SubscriptionOp::Claim,
                    &url,
                    ds_proto::InputReason::Resource,
                    format!("cannot spawn the worker thread: {e}"),
                )
            })?;
        Ok(WorkerHandle {
            flags,
            wake,
            thread: Some(thread),
        })
    }
}

/// The application's side of a worker.
pub trait WorkerHandler: Send + 'static {
    /// What `handle_batch` fails with.
    type Error: Send + 'static;

    /// Handles one batch of one stream (`batch.stream`, `batch.data`, `batch.next_offset`).
    /// Return `Ok` once it is processed: the worker then acks `batch.next_offset`.
    /// The engine does not run meanwhile: a handler that takes longer than the lease loses
    /// it (ds-tokio's worker renews the lease while its handler runs).
    fn handle_batch(&mut self, batch: &Batch) -> Result<(), Self::Error>;

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

/// The stop and abort requests of a worker's handle.
#[derive(Debug, Default)]
struct Flags {
    stop: AtomicBool,
    abort: AtomicBool,
}

/// Controls a running worker. Dropping it stops the worker gracefully (and waits for it).
#[derive(Debug)]
pub struct WorkerHandle {
    flags: Arc<Flags>,
    wake: mpsc::SyncSender<Msg<()>>,
    thread: Option<JoinHandle<WorkerExit>>,
}

impl WorkerHandle {
    /// Asks the worker to stop: the batch being handled is finished and acked, the acks
    /// recorded are sent, the claim is released. Never blocks.
    pub fn stop(&self) {
        self.flags.stop.store(true, Ordering::Release);
        let _ = self.wake.try_send(Msg::Command(()));
    }

    /// Waits for the worker to end.
    pub fn wait(mut self) -> WorkerExit {
        let thread = self.thread.take().expect("the thread is joined once");
        match thread.join() {
            Ok(exit) => exit,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Stops the worker and waits for it.
    pub fn shutdown(self) -> WorkerExit {
        self.stop();
        self.wait()
    }

    /// Kills the worker as a crash would: nothing more is sent (no ack, no release); its
    /// lease expires on the server. A handler running finishes first, its result ignored.
    pub fn abort(mut self) {
        self.flags.abort.store(true, Ordering::Release);
        let _ = self.wake.try_send(Msg::Command(()));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.flags.stop.store(true, Ordering::Release);
            let _ = self.wake.try_send(Msg::Command(()));
            let _ = t.join();
        }
    }
}

fn run_worker<H: WorkerHandler>(
    mut engine: Engine<Worker>,
    mut handler: H,
    flags: &Flags,
) -> WorkerExit {
    loop {
        if flags.abort.load(Ordering::Acquire) {
            // Dropping the engine cancels every exchange; nothing more is sent.
            return WorkerExit::Stopped;
        }
        if flags.stop.load(Ordering::Acquire) {
            engine.machine.stop();
        }
        engine.flush_outputs();
        match drv::next_worker_step(&mut engine.machine, |e| handler.on_event(e)) {
            Some(WorkerStep::Handled) => {}
            Some(WorkerStep::Exit(exit)) => return engine.finish(exit),
            Some(WorkerStep::Batch(batch)) => loop {
                let result = handler.handle_batch(&batch);
                if flags.abort.load(Ordering::Acquire) {
                    return WorkerExit::Stopped;
                }
                let decide = |e: &H::Error| handler.handle_error(&batch, e);
                if !drv::batch_handled(&mut engine.machine, &batch, result, decide) {
                    break;
                }
            },
            None => {
                // A command is a stop or an abort: the flags are looked at above.
                if let Wake::Idle = engine.step(true) {
                    engine.machine.stop();
                }
            }
        }
    }
}
