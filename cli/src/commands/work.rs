//! `ds work ID --worker NAME`: a pull-wake worker (PROTOCOL.md 7.2) writing what it processes
//! to stdout as JSON lines `{"stream": PATH, "offset": OFFSET, "data": ...}`: for JSON
//! streams one line per message (`data` the value), otherwise one line per batch (`data` the
//! text, invalid UTF-8 replaced). `OFFSET` is the offset after the batch that carried the
//! data. Stdout is flushed before the batch is acked. SIGINT or SIGTERM: the batch being
//! written is finished and acked, the claim released, exit 0.

use crate::args::WorkArgs;
use crate::exit::Failure;
use ds_proto::subscription::{Batch, LeaseLoss, WorkerEvent};
use ds_tokio::{Client, WorkerAction, WorkerExit, WorkerHandler, WorkerOptions};
use std::io::Write;

/// The JSON lines of one batch.
pub fn lines(batch: &Batch) -> Vec<String> {
    let offset = batch.next_offset.to_string();
    let line = |data: serde_json::Value| {
        serde_json::json!({ "stream": batch.stream, "offset": offset, "data": data }).to_string()
    };
    if batch.json {
        match serde_json::from_slice::<serde_json::Value>(&batch.data) {
            Ok(serde_json::Value::Array(items)) => return items.into_iter().map(line).collect(),
            Ok(other) => return vec![line(other)],
            Err(_) => {}
        }
    }
    vec![line(
        String::from_utf8_lossy(&batch.data).into_owned().into(),
    )]
}

struct Printer;

impl WorkerHandler for Printer {
    type Error = std::io::Error;

    async fn handle_batch(&mut self, batch: &Batch) -> Result<(), std::io::Error> {
        let mut out = std::io::stdout().lock();
        for l in lines(batch) {
            writeln!(out, "{l}")?;
        }
        out.flush()
    }

    fn handle_error(&mut self, _batch: &Batch, error: &std::io::Error) -> WorkerAction {
        eprintln!("ds: cannot write to stdout ({error}): stopping");
        WorkerAction::Stop
    }

    fn on_event(&mut self, event: &WorkerEvent) {
        match event {
            WorkerEvent::Claimed {
                generation,
                streams,
                ..
            } => eprintln!(
                "ds: claimed wake of generation {generation} ({} streams)",
                streams.len()
            ),
            WorkerEvent::LeaseLost { generation, reason } => {
                let why = match reason {
                    LeaseLoss::Fenced => "FENCED",
                    LeaseLoss::Expired => "expired",
                    LeaseLoss::Unauthorized => "token refused",
                    _ => "lost",
                };
                eprintln!(
                    "ds: lease of generation {generation} lost ({why}); waiting for the next wake"
                );
            }
            WorkerEvent::Retrying { error, delay, .. } => {
                eprintln!("ds: {error}; retrying in {delay:?}")
            }
            WorkerEvent::StreamFailed { stream, error, .. } => {
                eprintln!("ds: cannot read {stream}: {error}")
            }
            WorkerEvent::AckRefused { error, .. } => eprintln!("ds: ack refused: {error}"),
            _ => {}
        }
    }
}

/// Runs the worker until a signal or a failure.
pub async fn run(args: &WorkArgs, client: &Client) -> Result<(), Failure> {
    let mut options = WorkerOptions::new(&args.worker);
    if let Some(w) = &args.wake_stream {
        options = options.wake_stream(w);
    }
    if let Some(o) = &args.wake_offset {
        options = options.wake_offset(o.clone());
    }
    let handle = client.subscription(&args.id).work(options, Printer).await?;
    eprintln!("ds: worker {} on subscription {}", args.worker, args.id);
    let mut handle = handle;
    let early = tokio::select! {
        () = signal() => None,
        exit = handle.join() => Some(exit),
    };
    let exit = match early {
        Some(exit) => exit,
        None => {
            eprintln!("ds: stopping: acking what was written and releasing the claim");
            handle.shutdown().await
        }
    };
    match exit {
        WorkerExit::Stopped => Ok(()),
        WorkerExit::Failed(ds_proto::subscription::worker::WorkerFailure::Subscription(e)) => {
            Err(e.into())
        }
        WorkerExit::Failed(f) => Err(Failure::Other(f.to_string())),
    }
}

/// SIGINT or (on Unix) SIGTERM.
async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ds_proto::Offset;

    fn batch(json: bool, data: &'static [u8]) -> Batch {
        Batch {
            generation: 1,
            stream: "a/b".into(),
            data: Bytes::from_static(data),
            json,
            next_offset: "0_9".parse::<Offset>().unwrap(),
            last: true,
        }
    }

    #[test]
    fn json_batches_print_one_line_per_message_and_others_one_per_batch() {
        assert_eq!(
            lines(&batch(true, br#"[{"x":1},2]"#)),
            [
                r#"{"data":{"x":1},"offset":"0_9","stream":"a/b"}"#,
                r#"{"data":2,"offset":"0_9","stream":"a/b"}"#
            ]
        );
        assert_eq!(
            lines(&batch(false, b"hi\xff")),
            [r#"{"data":"hi\u{fffd}","offset":"0_9","stream":"a/b"}"#
                .replace("\\u{fffd}", "\u{fffd}")]
        );
    }
}
