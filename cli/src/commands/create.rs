//! `ds create STREAM`.

use crate::args::CreateArgs;
use crate::exit::Failure;
use ds_tokio::{CreateOptions, StreamHandle};

/// Creates the stream (or re-confirms it with the same configuration); prints its URL.
pub async fn run(args: &CreateArgs, stream: &StreamHandle) -> Result<(), Failure> {
    let options = CreateOptions {
        content_type: args.content_type.clone(),
        ttl_seconds: args.ttl,
        expires_at: args.expires_at.clone(),
        closed: args.closed,
        body: args
            .data
            .as_ref()
            .map(|d| bytes::Bytes::from(d.clone()))
            .unwrap_or_default(),
        ..CreateOptions::default()
    };
    let created = stream.create(options).await?;
    eprintln!(
        "{} {} ({})",
        if created.created {
            "created"
        } else {
            "exists (same configuration):"
        },
        stream.url(),
        created.content_type.as_deref().unwrap_or("no content type")
    );
    println!("{}", stream.url());
    Ok(())
}
