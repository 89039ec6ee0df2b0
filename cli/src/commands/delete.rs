//! `ds delete STREAM`.

use crate::exit::Failure;
use ds_tokio::StreamHandle;

/// Deletes the stream.
pub async fn run(stream: &StreamHandle) -> Result<(), Failure> {
    stream.delete().await?;
    eprintln!("deleted {}", stream.url());
    Ok(())
}
