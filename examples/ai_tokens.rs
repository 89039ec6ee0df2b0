//! AI token streaming: a model's tokens written to a stream as they are generated, read by a
//! client that dies halfway and resumes from its saved offset without losing or repeating a
//! token.
//!
//! ```text
//! cargo run --example ai_tokens                       # against the embedded server
//! DS_URL=http://127.0.0.1:4437 cargo run --example ai_tokens
//! ```
//!
//! - The **writer** is an idempotent producer with a 10 ms linger: tokens produced within 10 ms
//!   of each other travel in one request, so a fast model does not cost one request per token.
//!   Closing the writer closes the stream: readers see the end of the answer.
//! - The **first reader** follows the stream over SSE, prints tokens as they arrive and saves
//!   the offset after each chunk (in a real UI: local storage, or the URL). Halfway it is
//!   dropped, as if the browser tab was closed mid-answer.
//! - The **second reader** starts from the saved offset (over long-poll this time: an offset
//!   does not care how it was read) and prints the rest.
//!
//! The example asserts that the two readers together saw the whole answer exactly once.

use ds_examples::ExampleServer;
use ds_tokio::{Client, CreateOptions, Offset, ProducerConfig, ReadMode, ReaderConfig};
use std::io::Write;
use std::time::Duration;

const ANSWER: &str = "Durable Streams are append-only byte streams addressed by URL. \
Every read returns the offset that follows the data, so a client that saves it can \
disconnect at any moment and resume exactly where it stopped: no token is lost, none is \
shown twice, and the server keeps no session for it.";

/// Splits the answer into "tokens" the way a tokenizer roughly would: words with their
/// leading space.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c == ' ' && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = ExampleServer::from_env()?;
    let embedded = server.is_embedded();
    let client = Client::new(server.url())?;
    let stream = client.stream(&server.unique_path("chat-answer"));
    stream
        .create(CreateOptions::with_content_type(
            "text/plain; charset=utf-8",
        ))
        .await?;
    eprintln!("answer stream: {}", stream.url());

    // The model: one token every 3-15 ms, through a writer lingering 10 ms per batch.
    let writer = stream.writer_with(ProducerConfig {
        linger: Duration::from_millis(10),
        content_type: "text/plain; charset=utf-8".into(),
        ..ProducerConfig::new(stream.url(), "model-run-1")
    })?;
    let model = tokio::spawn(async move {
        for (i, token) in tokens(ANSWER).into_iter().enumerate() {
            writer.append(token).await?;
            tokio::time::sleep(Duration::from_millis(3 + (i as u64 * 7) % 13)).await;
        }
        // Flush every token and close the stream: the answer is complete.
        let report = writer.close(true).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(report)
    });

    // The first reader: follows over SSE, saving the offset after each chunk.
    let mut shown = String::new();
    let mut saved = Offset::beginning();
    let mut chunks = 0;
    {
        let mut config = ReaderConfig::new(stream.url());
        config.mode = ReadMode::Sse;
        // Tokens start with spaces. The reference servers write `data:<token>` verbatim, and
        // standard SSE parsing (PROTOCOL.md 5.8) strips one leading space; the embedded server
        // adds that space itself. Against a real server, keep the spaces.
        config.sse_preserve_leading_space = !embedded;
        let mut reader = stream.reader_with(config)?;
        println!("--- reader 1 (SSE) ---");
        while let Some(chunk) = reader.next_chunk().await {
            let chunk = chunk?;
            let text = std::str::from_utf8(&chunk.data)?;
            print!("{text}");
            std::io::stdout().flush()?;
            shown.push_str(text);
            saved = chunk.next_offset.clone(); // the checkpoint: persist it after showing
            chunks += 1;
            if shown.len() >= ANSWER.len() / 2 {
                break;
            }
        }
        // `reader` is dropped here, mid-answer, with its SSE connection open: the tab closed.
    }
    println!();
    println!("--- reader 1 killed after {chunks} chunks; saved offset {saved} ---");

    // The second reader: resumes from the saved offset, over long-poll this time.
    let mut reader = stream.reader(saved.clone(), ReadMode::LongPoll)?;
    println!("--- reader 2 (long-poll from {saved}) ---");
    while let Some(chunk) = reader.next_chunk().await {
        let chunk = chunk?;
        let text = std::str::from_utf8(&chunk.data)?;
        print!("{text}");
        std::io::stdout().flush()?;
        shown.push_str(text);
    }
    println!();
    let report = model.await?.map_err(|e| e.to_string())?;
    println!(
        "--- end of answer at {}; stream closed: {} ---",
        reader.offset(),
        report.stream_closed
    );

    assert!(reader.is_eof(), "reader 2 reached the end of the stream");
    assert_eq!(shown, ANSWER, "every token shown exactly once");
    println!(
        "ok: {} tokens, {} bytes, shown exactly once across the restart",
        tokens(ANSWER).len(),
        ANSWER.len()
    );
    Ok(())
}
