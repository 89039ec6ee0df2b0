//! `ds`: a command-line client for Durable Streams, and a local development server.
//!
//! ```text
//! cargo install --path cli                 # installs `ds`
//! ds serve                                 # embedded server on 127.0.0.1:4437
//! ds create chat --content-type application/json
//! echo '{"text":"hi"}' | ds append chat
//! ds tail chat --offsets                   # follow live until the stream closes
//! ```
//!
//! `ds --help` and `ds COMMAND --help` describe every command and flag ([`args`] holds the
//! definitions).
//!
//! - `STREAM` is a URL (`http://host:port/path`), a path (`/v1/stream/chat`), or a name
//!   (`chat`, meaning `/v1/stream/chat`).
//! - The server is `--url`, else `$DS_URL`, else `http://127.0.0.1:4437` (where `ds serve`
//!   listens by default).
//! - Data goes to stdout; progress and errors go to stderr. JSON streams print one message
//!   per line. With `--offsets`, every printed chunk (or, for JSON streams, message) is
//!   prefixed with the offset to resume from after the chunk that carried it, and a tab.
//! - Exit codes ([`exit`]): 0 ok, 1 usage, 2 not found (or gone), 3 conflict (closed stream,
//!   existing stream with another configuration, fenced writer), 4 anything else.

mod args;
mod commands;
mod exit;
mod output;

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return exit::clap_error(&e),
    };
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => exit::report(&failure),
    }
}
