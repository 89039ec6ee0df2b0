//! `ds close STREAM`.

use crate::exit::Failure;
use ds_tokio::StreamHandle;

/// Closes the stream; prints its final offset on stdout.
pub async fn run(stream: &StreamHandle) -> Result<(), Failure> {
    let closed = stream.close().await?;
    let offset = closed
        .final_offset
        .map(|o| o.to_string())
        .unwrap_or_default();
    eprintln!("closed {}", stream.url());
    println!("{offset}");
    Ok(())
}
