//! The quickstart with `ds-blocking`: plain threads, no async runtime in your code.
//!
//! ```text
//! cargo run --example blocking                        # against the embedded server
//! DS_URL=http://127.0.0.1:4437 cargo run --example blocking
//! ```
//!
//! Same steps as `quickstart`: create a JSON stream, append, read it back, tail it live from a
//! thread while a writer appends exactly once, and close it. (When `DS_URL` is not set, the
//! embedded server runs on a background thread of its own; this program never touches tokio.)

use ds_blocking::{Client, CreateOptions, Offset, ReadMode};
use ds_examples::ExampleServer;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Event {
    id: u32,
    text: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = ExampleServer::from_env()?;
    let client = Client::new(server.url())?;
    let stream = client.stream(&server.unique_path("blocking"));

    // 1. Create a JSON stream: every append is one message.
    stream.create(CreateOptions::with_content_type("application/json"))?;
    println!("created {}", stream.url());

    // 2. One-shot appends.
    for (id, text) in [(1, "hello"), (2, "durable"), (3, "streams")] {
        let appended = stream.append_json(&Event {
            id,
            text: text.into(),
        })?;
        println!(
            "appended event {id}; tail now {}",
            appended
                .next_offset
                .map(|o| o.to_string())
                .unwrap_or_default()
        );
    }

    // 3. Read everything back.
    let events: Vec<Event> = stream.read_json()?;
    println!("read back {} events", events.len());

    // 4. Tail it live on a thread: the reader is an Iterator that blocks for more data, and
    //    ends when the stream is closed.
    let reader = stream
        .reader(Offset::beginning(), ReadMode::Auto)?
        .json::<Event>();
    let live = std::thread::spawn(move || -> Result<Vec<u32>, ds_blocking::Error> {
        let mut seen = Vec::new();
        for event in reader {
            let event = event?;
            println!("  live reader got #{}: {}", event.id, event.text);
            seen.push(event.id);
        }
        Ok(seen)
    });

    // 5. A writer batches appends exactly once on its own thread, then closes the stream.
    let writer = stream.writer("blocking-writer")?;
    for (id, text) in [(4, "written"), (5, "exactly"), (6, "once")] {
        writer.append_json(&Event {
            id,
            text: text.into(),
        })?;
    }
    let report = writer.close(true)?;
    println!(
        "closed the stream at {}",
        report.offset.map(|o| o.to_string()).unwrap_or_default()
    );

    let seen = live.join().expect("the reader thread panicked")?;
    assert_eq!(
        seen,
        vec![1, 2, 3, 4, 5, 6],
        "the live reader sees every event once"
    );
    println!("done: {} events, stream closed", seen.len());
    Ok(())
}
