//! `ds head STREAM`.

use crate::exit::Failure;
use crate::output;
use ds_tokio::StreamHandle;

/// Prints the stream's metadata as `key: value` lines.
pub async fn run(stream: &StreamHandle) -> Result<(), Failure> {
    let info = stream.head().await?;
    print!("{}", output::head_lines(&info));
    Ok(())
}
