//! One module per command; [`run`] dispatches.

mod append;
mod close;
mod create;
mod delete;
mod head;
mod read;
mod serve;

use crate::args::{Cli, Command, SubCommand};
use crate::exit::Failure;
use ds_tokio::{Client, RetryPolicy, StreamHandle};
use std::time::Duration;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    let base_url = cli.base_url().to_owned();
    let stream = |name: &str| -> Result<StreamHandle, Failure> {
        Ok(client(&base_url)?.stream(&stream_path(name)))
    };
    match cli.command {
        // The server needs no client (and ignores --url).
        Command::Serve(args) => serve::run(&args).await,
        Command::Create(args) => create::run(&args, &stream(&args.stream)?).await,
        Command::Append(args) => append::run(&args, &stream(&args.stream)?).await,
        Command::Read(args) => read::run(&args.print, None, &stream(&args.stream)?).await,
        Command::Tail(args) => {
            let follow = read::Follow::new(args.sse, args.long_poll, args.for_);
            read::run(&args.print, Some(follow), &stream(&args.stream)?).await
        }
        Command::Head(args) => head::run(&stream(&args.stream)?).await,
        Command::Close(args) => close::run(&stream(&args.stream)?).await,
        Command::Delete(args) => delete::run(&stream(&args.stream)?).await,
        // integration point (issue 17, item 7): each arm calls the driver's subscription API,
        // `client.subscription(id)` (create with the config built from `SubCreateArgs`, get,
        // delete, add, remove), prints the result, and maps a missing subscription to exit 2
        // (`exit::NOT_FOUND`) as a missing stream is. Paths are stream-root relative.
        Command::Sub(sub) => Err(not_available(match sub {
            SubCommand::Create(_) => "sub create",
            SubCommand::Get(_) => "sub get",
            SubCommand::Delete(_) => "sub delete",
            SubCommand::Add(_) => "sub add",
            SubCommand::Remove(_) => "sub remove",
        })),
        // integration point (issue 17, item 7): `client.subscription(id)`'s pull-wake worker
        // run loop, its handler writing the JSON lines `WorkArgs` documents (flush, then ack),
        // and SIGINT/SIGTERM leading to a graceful stop that releases the claim (exit 0).
        Command::Work(_) => Err(not_available("work")),
    }
}

/// The error of a command whose protocol support is not there yet (exit 4).
fn not_available(command: &str) -> Failure {
    Failure::Other(format!("`ds {command}` is not available yet"))
}

/// A client that gives up on an unreachable server within seconds, as a command-line tool
/// should, not minutes.
fn client(base_url: &str) -> Result<Client, Failure> {
    Ok(Client::builder()
        .base_url(base_url.trim_end_matches('/'))
        .retry_policy(cli_retry())
        .build()?)
}

/// Four attempts within ten seconds.
pub(crate) fn cli_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: Some(4),
        max_elapsed: Some(Duration::from_secs(10)),
        ..RetryPolicy::default()
    }
}

/// `chat` -> `/v1/stream/chat`; paths and URLs as given.
fn stream_path(name: &str) -> String {
    if name.starts_with('/') || name.starts_with("http://") || name.starts_with("https://") {
        name.to_owned()
    } else {
        format!("/v1/stream/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_live_under_the_stream_root_and_paths_and_urls_stay() {
        assert_eq!(stream_path("chat"), "/v1/stream/chat");
        assert_eq!(stream_path("a/b"), "/v1/stream/a/b");
        assert_eq!(stream_path("/other/x"), "/other/x");
        assert_eq!(stream_path("http://h:1/s"), "http://h:1/s");
        assert_eq!(stream_path("https://h/s"), "https://h/s");
    }
}
