//! Quickstart: create a JSON stream, append, read it back, tail it live, close it.
//!
//! ```text
//! cargo run --example quickstart                      # against the embedded server
//! DS_URL=http://127.0.0.1:4437 cargo run --example quickstart
//! ```

use ds_examples::ExampleServer;
use ds_tokio::{Client, CreateOptions, Offset, ReadMode};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Event {
    id: u32,
    text: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = ExampleServer::from_env()?;
    let client = Client::new(server.url())?;
    let stream = client.stream(&server.unique_path("quickstart"));

    // 1. Create a JSON stream: every append is one message.
    stream
        .create(CreateOptions::with_content_type("application/json"))
        .await?;
    println!("created {}", stream.url());

    // 2. Append a few events with one-shot appends.
    for (id, text) in [(1, "hello"), (2, "durable"), (3, "streams")] {
        let appended = stream
            .append_json(&Event {
                id,
                text: text.into(),
            })
            .await?;
        println!(
            "appended event {id}; the stream's tail is now {:?}",
            appended.next_offset
        );
    }

    // 3. Read everything back.
    let events: Vec<Event> = stream.read_json().await?;
    println!("read back {} events: {events:?}", events.len());

    // 4. Tail it live: a reader that catches up, then long-polls for more.
    let tail = client.stream(stream.url());
    let mut reader = tail
        .reader(Offset::beginning(), ReadMode::Auto)?
        .json::<Event>();
    let live = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(event) = reader.next_item().await {
            let event = event?;
            println!("  live reader got #{}: {}", event.id, event.text);
            seen.push(event.id);
        }
        println!(
            "  live reader saw the end of the stream at {}",
            reader.offset()
        );
        Ok::<_, ds_tokio::Error>(seen)
    });

    // 5. A writer batches appends exactly once (idempotent producer), then closes the stream.
    let writer = stream.writer("quickstart-writer")?;
    for (id, text) in [(4, "written"), (5, "exactly"), (6, "once")] {
        writer
            .append_json(&Event {
                id,
                text: text.into(),
            })
            .await?;
    }
    let report = writer.close(true).await?;
    println!("closed the stream at {:?}", report.offset);

    let seen = live.await??;
    assert_eq!(
        seen,
        vec![1, 2, 3, 4, 5, 6],
        "the live reader sees every event once"
    );
    println!("done: {} events, stream closed", seen.len());
    Ok(())
}
