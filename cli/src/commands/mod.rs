//! One module per command; [`run`] dispatches.

mod append;
mod close;
mod create;
mod delete;
mod head;
mod read;
mod serve;
mod sub;
mod work;

use crate::args::{Cli, Command};
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
        Command::Sub(sub) => sub::run(&sub, &client(&base_url)?).await,
        Command::Work(args) => work::run(&args, &client(&base_url)?).await,
    }
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
