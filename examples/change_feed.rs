//! Change feed: a service publishes database-style change events (insert/update/delete)
//! fire-and-forget; a consumer applies them to an in-memory table, checkpointing as it goes,
//! and is restarted halfway from its checkpoint.
//!
//! ```text
//! cargo run --example change_feed                     # against the embedded server
//! DS_URL=http://127.0.0.1:4437 cargo run --example change_feed
//! ```
//!
//! - The **producer** is a [`Writer`](ds_tokio::Writer): `append_json` returns as soon as the
//!   change is buffered (it only waits when the buffer is full), and failures are reported to
//!   the `on_error` callback instead of to the caller. Batches are exactly-once.
//! - The **consumer** is a [`Consumer`](ds_tokio::Handler): `handle_batch` applies a batch to
//!   the table *and* stores the batch's `next_offset` as the checkpoint in the same critical
//!   section. Storing both together is what makes an at-least-once feed apply every change
//!   exactly once: after a restart, the consumer starts from the checkpoint of the last applied
//!   batch.
//! - Halfway, consumer 1 is stopped (a deploy, a crash); consumer 2 starts from the checkpoint
//!   and runs until the producer closes the stream.
//!
//! The example asserts the table equals the source of truth and every change was applied once.

use ds_examples::ExampleServer;
use ds_tokio::{
    Chunk, Client, ConsumerExit, ConsumerOptions, CreateOptions, Handler, Offset, ProducerConfig,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CHANGES: u64 = 300;

/// One change event, as a CDC pipeline (Debezium, a WAL decoder...) would emit it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Change {
    /// Log sequence number: increasing, one per change.
    lsn: u64,
    op: Op,
    id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    row: Option<Row>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Insert,
    Update,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    name: String,
    balance: i64,
}

/// The replica: the table, the LSNs applied, and the checkpoint, kept together.
#[derive(Debug, Default)]
struct Replica {
    table: BTreeMap<u32, Row>,
    applied: Vec<u64>,
    checkpoint: Option<Offset>,
}

impl Replica {
    fn apply(&mut self, change: &Change) {
        match change.op {
            Op::Insert | Op::Update => {
                let row = change.row.clone().expect("inserts and updates carry a row");
                self.table.insert(change.id, row);
            }
            Op::Delete => {
                self.table.remove(&change.id);
            }
        }
        self.applied.push(change.lsn);
    }
}

/// The changes the "database" makes, deterministic so the example can check the result.
fn change(lsn: u64) -> Change {
    let id = (lsn * 7 % 40) as u32;
    let op = match lsn % 10 {
        0..=3 => Op::Insert,
        4..=8 => Op::Update,
        _ => Op::Delete,
    };
    let row = (!matches!(op, Op::Delete)).then(|| Row {
        name: format!("user-{id}"),
        balance: (lsn as i64 * 37) % 1000 - 200,
    });
    Change { lsn, op, id, row }
}

/// The consumer's handler: applies each batch and checkpoints it atomically.
struct Applier {
    replica: Arc<Mutex<Replica>>,
    name: &'static str,
    /// Wakes `main` when this consumer has applied at least half of the changes.
    halfway: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Handler for Applier {
    type Error = String;

    async fn handle_batch(&mut self, batch: Chunk) -> Result<(), String> {
        let items = batch
            .items()
            .map_err(|e| format!("not a JSON batch: {e}"))?;
        // Parse the whole batch first: a bad batch is refused before anything is applied.
        let changes = items
            .iter()
            .map(|it| serde_json::from_slice::<Change>(it))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("bad change event: {e}"))?;
        let mut replica = self.replica.lock().unwrap();
        for c in &changes {
            replica.apply(c);
        }
        // In a real replica: one database transaction writing the rows and the checkpoint.
        replica.checkpoint = Some(batch.next_offset.clone());
        if !changes.is_empty() {
            println!(
                "  {}: applied lsn {}..={} ({} changes), checkpoint {}",
                self.name,
                changes[0].lsn,
                changes[changes.len() - 1].lsn,
                changes.len(),
                batch.next_offset
            );
        }
        if replica.applied.len() as u64 >= CHANGES / 2 {
            if let Some(tx) = self.halfway.take() {
                let _ = tx.send(());
            }
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = ExampleServer::from_env()?;
    let client = Client::new(server.url())?;
    let feed = client.stream(&server.unique_path("users-changes"));
    feed.create(CreateOptions::with_content_type("application/json"))
        .await?;
    eprintln!("change feed: {}", feed.url());

    // The producer: fire-and-forget appends; failures go to the callback.
    let writer = feed.writer_with(ProducerConfig {
        content_type: "application/json".into(),
        linger: Duration::from_millis(5),
        ..ProducerConfig::new(feed.url(), "users-cdc")
    })?;
    let failures = Arc::new(AtomicUsize::new(0));
    let counter = failures.clone();
    writer.on_error(move |failure| {
        // A real service would alert, or re-publish `failure.items` after checking the stream.
        eprintln!(
            "publish failed for {} change(s): {}",
            failure.items.len(),
            failure.reason
        );
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let producer = tokio::spawn(async move {
        for lsn in 1..=CHANGES {
            writer.append_json(&change(lsn)).await?;
            if lsn % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await; // the database is busy
            }
        }
        // Shutting the service down: deliver what is buffered, and end the feed.
        writer.close(true).await.map_err(|e| e.to_string())?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    });

    let replica = Arc::new(Mutex::new(Replica::default()));
    let options = ConsumerOptions {
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(2),
        ..ConsumerOptions::default()
    };

    // Consumer 1 runs until it has applied half of the changes, then is stopped.
    println!("consumer 1 starts from the beginning");
    let (halfway_tx, halfway_rx) = tokio::sync::oneshot::channel();
    let consumer = feed.consume(
        options.clone(),
        Applier {
            replica: replica.clone(),
            name: "consumer 1",
            halfway: Some(halfway_tx),
        },
    );
    let _ = halfway_rx.await;
    match consumer.shutdown().await {
        ConsumerExit::Stopped { offset } => println!("consumer 1 stopped at {offset}"),
        other => return Err(format!("consumer 1 ended unexpectedly: {other:?}").into()),
    }

    // Consumer 2 resumes from the replica's checkpoint (not from consumer 1's exit offset:
    // after a crash, the checkpoint is all there is).
    let checkpoint = {
        let r = replica.lock().unwrap();
        println!(
            "replica holds {} rows after {} changes; checkpoint {:?}",
            r.table.len(),
            r.applied.len(),
            r.checkpoint.as_ref().map(Offset::as_str)
        );
        r.checkpoint.clone().unwrap_or_else(Offset::beginning)
    };
    println!("consumer 2 starts from the checkpoint {checkpoint}");
    let consumer = feed.consume(
        ConsumerOptions {
            offset: checkpoint,
            ..options
        },
        Applier {
            replica: replica.clone(),
            name: "consumer 2",
            halfway: None,
        },
    );
    let exit = tokio::time::timeout(Duration::from_secs(60), consumer.wait()).await?;
    producer.await?.map_err(|e| e.to_string())?;
    match exit {
        ConsumerExit::Eof { offset } => {
            println!("consumer 2 reached the end of the feed at {offset}")
        }
        other => return Err(format!("consumer 2 ended unexpectedly: {other:?}").into()),
    }

    // Check the replica against the source of truth.
    let mut expected = Replica::default();
    for lsn in 1..=CHANGES {
        expected.apply(&change(lsn));
    }
    let r = replica.lock().unwrap();
    assert_eq!(failures.load(Ordering::SeqCst), 0, "no publish failed");
    assert_eq!(
        r.applied,
        (1..=CHANGES).collect::<Vec<_>>(),
        "every change applied exactly once, in order"
    );
    assert_eq!(r.table, expected.table, "the replica matches the database");
    println!(
        "ok: {} changes applied exactly once across the restart; {} rows in the table",
        r.applied.len(),
        r.table.len()
    );
    Ok(())
}
