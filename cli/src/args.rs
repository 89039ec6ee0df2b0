//! The command line: clap definitions, and nothing that talks to a server.

use clap::{ArgGroup, Args, Parser, Subcommand};
use ds_tokio::Offset;
use std::time::Duration;

/// Where `ds serve` listens and the other commands connect when neither `--url` nor
/// `$DS_URL` says otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:4437";
/// `ds serve`'s default port.
pub const DEFAULT_PORT: u16 = 4437;

const AFTER_HELP: &str = "\
STREAM: a URL (http://host:port/path), a path (/v1/stream/x) or a name (x = /v1/stream/x).
Server: --url, else $DS_URL, else http://127.0.0.1:4437 (where `ds serve` listens).
Data goes to stdout; progress and errors go to stderr.
Exit codes: 0 ok, 1 usage, 2 not found, 3 conflict/closed, 4 other.";

/// A command-line client for Durable Streams, and a local development server.
#[derive(Debug, Parser)]
#[command(
    name = "ds",
    version,
    after_help = AFTER_HELP,
    arg_required_else_help = true,
    // As before clap: a repeated option keeps its last value.
    args_override_self = true
)]
pub struct Cli {
    /// The server [default: http://127.0.0.1:4437]
    #[arg(
        long,
        global = true,
        env = "DS_URL",
        value_name = "URL",
        display_order = 100,
        hide_env_values = true
    )]
    pub url: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The server to talk to: `--url`, else `$DS_URL` (an empty value counts as unset), else
    /// [`DEFAULT_URL`].
    pub fn base_url(&self) -> &str {
        self.url
            .as_deref()
            .filter(|u| !u.is_empty())
            .unwrap_or(DEFAULT_URL)
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the embedded server (the in-memory sim model) on 127.0.0.1, printing its URL on
    /// stdout; runs until killed, or for SECS
    Serve(ServeArgs),
    /// Create a stream (re-confirming one with the same configuration is fine); prints its URL
    Create(CreateArgs),
    /// Append messages through an exactly-once writer
    #[command(
        long_about = "Append each MESSAGE, or each line of stdin when there is none, through an \
                      exactly-once writer.\n\nJSON streams: one JSON value per message or line \
                      (blank lines are skipped). Other streams: each message or line is appended \
                      with a trailing newline; --raw appends the arguments as given, or stdin as \
                      it comes. A message that starts with `-` (other than a negative number) \
                      goes after `--`."
    )]
    Append(AppendArgs),
    /// Print what the stream holds now (from --offset, default the beginning), then exit
    Read(ReadArgs),
    /// Print the stream and follow it live until it is closed (or for SECS)
    Tail(TailArgs),
    /// Print the stream's metadata as `key: value` lines
    Head(StreamArg),
    /// Close the stream; prints its final offset
    Close(StreamArg),
    /// Delete the stream
    Delete(StreamArg),
    /// Manage a subscription (PROTOCOL.md section 6)
    #[command(subcommand)]
    Sub(SubCommand),
    /// Run a pull-wake worker for a subscription
    #[command(long_about = "Run a pull-wake worker for a subscription.\n\n\
                      It writes what it processes to stdout as JSON lines {\"stream\": PATH, \
                      \"offset\": OFFSET, \"data\": ...}: PATH relative to the stream root without \
                      a leading slash, OFFSET the offset after the chunk that carried the data; \
                      for JSON streams one line per message with `data` the JSON value, for \
                      other streams one line per chunk with `data` the chunk as text (invalid \
                      UTF-8 replaced). It flushes stdout, and only then acks. On SIGINT or \
                      SIGTERM it finishes the line it is writing, acks what it wrote, releases \
                      its claim and exits 0. A lost lease (FENCED) is reported on stderr and the \
                      worker goes on with later wakes. A missing subscription exits 2.")]
    Work(WorkArgs),
}

/// `ds serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port on 127.0.0.1 (0 picks a free one)
    #[arg(long, value_name = "P", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// How long a long-poll read waits for data before answering "up to date"
    #[arg(long, value_name = "MS")]
    pub long_poll_ms: Option<u64>,
    /// Stop after SECS seconds (fractions allowed)
    #[arg(long = "for", value_name = "SECS", value_parser = parse_secs)]
    pub for_: Option<Duration>,
}

/// `ds create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The stream
    pub stream: String,
    /// The stream's content type [default: application/octet-stream]
    #[arg(long, value_name = "CT")]
    pub content_type: Option<String>,
    /// Sliding time-to-live in seconds
    #[arg(long, value_name = "SECS", conflicts_with = "expires_at")]
    pub ttl: Option<u64>,
    /// Absolute expiry time
    #[arg(long, value_name = "RFC3339")]
    pub expires_at: Option<String>,
    /// Create the stream closed
    #[arg(long)]
    pub closed: bool,
    /// Initial content
    #[arg(long, value_name = "TEXT")]
    pub data: Option<String>,
}

/// `ds append`.
#[derive(Debug, Args)]
pub struct AppendArgs {
    /// The stream
    pub stream: String,
    /// Messages to append (none: each line of stdin)
    #[arg(value_name = "MESSAGE", allow_negative_numbers = true)]
    pub messages: Vec<String>,
    /// Close the stream afterwards (only when every message was accepted)
    #[arg(long)]
    pub close: bool,
    /// Non-JSON streams: append the arguments as given, or stdin as it comes, without adding
    /// newlines
    #[arg(long)]
    pub raw: bool,
    /// The idempotent producer's id [default: ds-cli-PID-MILLIS]
    #[arg(long, value_name = "ID")]
    pub producer_id: Option<String>,
}

/// `ds read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The stream
    pub stream: String,
    #[command(flatten)]
    pub print: PrintArgs,
}

/// Where a read starts and how it prints, for `read` and `tail`.
#[derive(Debug, Args)]
pub struct PrintArgs {
    /// Start at offset O (`-1` the beginning, `now` the tail) [default: -1]
    #[arg(long, value_name = "O", value_parser = parse_offset, allow_hyphen_values = true)]
    pub offset: Option<Offset>,
    /// Prefix every chunk (JSON: every message) with the offset after it, and a tab
    #[arg(long)]
    pub offsets: bool,
}

/// `ds tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// The stream
    pub stream: String,
    #[command(flatten)]
    pub print: PrintArgs,
    /// Follow with server-sent events
    #[arg(long, conflicts_with = "long_poll")]
    pub sse: bool,
    /// Follow with long-poll requests
    #[arg(long)]
    pub long_poll: bool,
    /// Stop after SECS seconds (fractions allowed)
    #[arg(long = "for", value_name = "SECS", value_parser = parse_secs)]
    pub for_: Option<Duration>,
}

/// `ds head`, `ds close`, `ds delete`.
#[derive(Debug, Args)]
pub struct StreamArg {
    /// The stream
    pub stream: String,
}

/// `ds sub ...`: subscriptions. Stream paths are relative to the stream root (`/v1/stream`
/// on the server), without a leading slash, as the protocol's subscription bodies are.
#[derive(Debug, Subcommand)]
pub enum SubCommand {
    /// Create a subscription, or re-confirm one with the same configuration
    Create(SubCreateArgs),
    /// Print a subscription: type, pattern, linked streams and their acked offsets, delivery,
    /// lease, status
    Get(SubIdArg),
    /// Delete a subscription
    Delete(SubIdArg),
    /// Link streams to a subscription explicitly (linked at their current tail)
    Add(SubAddArgs),
    /// Remove one explicit stream link (a matching pattern still links it)
    Remove(SubRemoveArgs),
}

/// `ds sub create`.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("delivery").required(true).args(["pull_wake", "webhook"])),
    group(ArgGroup::new("links").required(true).multiple(true).args(["pattern", "streams"]))
)]
pub struct SubCreateArgs {
    /// The subscription's id
    pub id: String,
    /// Pull-wake delivery: wake events are written to WAKE_STREAM (relative to the stream root)
    #[arg(long, value_name = "WAKE_STREAM")]
    pub pull_wake: Option<String>,
    /// Webhook delivery to URL (https, or http://localhost / http://127.0.0.x for development)
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// Link every stream whose path matches GLOB (`*` one segment, `**` any number)
    #[arg(long, value_name = "GLOB")]
    pub pattern: Option<String>,
    /// Link the stream at PATH explicitly (repeatable)
    #[arg(long = "stream", value_name = "PATH")]
    pub streams: Vec<String>,
    /// Lease duration in milliseconds, 1000 to 600000 [server default: 30000]
    #[arg(long, value_name = "N")]
    pub lease_ttl_ms: Option<u64>,
    /// A human-readable description
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
}

/// `ds sub get` and `ds sub delete`.
#[derive(Debug, Args)]
pub struct SubIdArg {
    /// The subscription's id
    pub id: String,
}

/// `ds sub add`.
#[derive(Debug, Args)]
pub struct SubAddArgs {
    /// The subscription's id
    pub id: String,
    /// Stream paths relative to the stream root
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<String>,
}

/// `ds sub remove`.
#[derive(Debug, Args)]
pub struct SubRemoveArgs {
    /// The subscription's id
    pub id: String,
    /// The stream path relative to the stream root (may contain slashes)
    #[arg(value_name = "PATH")]
    pub path: String,
}

/// `ds work`.
#[derive(Debug, Args)]
pub struct WorkArgs {
    /// The subscription's id
    pub id: String,
    /// This worker's name (the claim holder the server reports)
    #[arg(long, value_name = "NAME")]
    pub worker: String,
    /// The wake stream to follow, relative to the stream root [default: the subscription's]
    #[arg(long, value_name = "PATH")]
    pub wake_stream: Option<String>,
    /// Follow the wake stream from offset O [default: its tail]
    #[arg(long, value_name = "O", value_parser = parse_offset, allow_hyphen_values = true)]
    pub wake_offset: Option<Offset>,
}

/// A number of seconds (fractions allowed; a negative one means no time at all).
fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("wants a number of seconds, not {s:?}"))?;
    if secs.is_nan() {
        return Err(format!("wants a number of seconds, not {s:?}"));
    }
    Duration::try_from_secs_f64(secs.max(0.0)).map_err(|_| format!("{s} seconds is too long"))
}

/// An offset: `-1`, `now`, or a token the server returned.
fn parse_offset(s: &str) -> Result<Offset, String> {
    Offset::parse(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(argv: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(argv)
    }

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn url_goes_anywhere_and_a_repeated_option_keeps_its_last_value() {
        let cli = parse(&["ds", "head", "x", "--url", "http://a:1", "--url=http://b:2"]).unwrap();
        assert_eq!(cli.base_url(), "http://b:2");
        let cli = parse(&["ds", "--url", "http://a:1", "head", "x"]).unwrap();
        assert_eq!(cli.base_url(), "http://a:1");
        let cli = parse(&["ds", "--url", "", "head", "x"]).unwrap();
        assert_eq!(cli.base_url(), DEFAULT_URL);
    }

    #[test]
    fn append_takes_negative_numbers_and_escaped_dashes_as_messages() {
        let cli = parse(&["ds", "append", "n", "-5", "x", "--close", "--", "--y", "-z"]).unwrap();
        let Command::Append(a) = cli.command else {
            panic!("not append: {cli:?}")
        };
        assert_eq!(a.messages, ["-5", "x", "--y", "-z"]);
        assert!(a.close);
        assert!(parse(&["ds", "append", "n", "--bogus"]).is_err());
    }

    #[test]
    fn offsets_and_durations_parse_or_fail_as_usage_errors() {
        let cli = parse(&["ds", "tail", "x", "--offset", "-1", "--for", "0.5"]).unwrap();
        let Command::Tail(t) = cli.command else {
            panic!("not tail: {cli:?}")
        };
        assert_eq!(t.print.offset, Some(Offset::beginning()));
        assert_eq!(t.for_, Some(Duration::from_millis(500)));
        assert_eq!(parse_secs("-3"), Ok(Duration::ZERO));
        assert!(parse_secs("inf").is_err());
        assert!(parse_secs("NaN").is_err());
        assert!(parse_secs("soon").is_err());
        assert!(parse(&["ds", "read", "x", "--offset", "not an offset"]).is_err());
    }

    #[test]
    fn exclusive_options_are_refused() {
        assert!(parse(&[
            "ds",
            "create",
            "x",
            "--ttl",
            "5",
            "--expires-at",
            "2030-01-01T00:00:00Z"
        ])
        .is_err());
        assert!(parse(&["ds", "tail", "x", "--sse", "--long-poll"]).is_err());
        assert!(parse(&["ds", "tail", "x", "--sse"]).is_ok());
    }

    #[test]
    fn sub_create_wants_one_delivery_and_at_least_one_link() {
        let ok = parse(&[
            "ds",
            "sub",
            "create",
            "s",
            "--pull-wake",
            "wake",
            "--stream",
            "a/b",
            "--stream",
            "c",
        ])
        .unwrap();
        let Command::Sub(SubCommand::Create(c)) = ok.command else {
            panic!("not sub create: {ok:?}")
        };
        assert_eq!(c.streams, ["a/b", "c"]);
        assert_eq!(c.pull_wake.as_deref(), Some("wake"));
        assert!(parse(&["ds", "sub", "create", "s", "--pattern", "a/*"]).is_err());
        assert!(parse(&[
            "ds",
            "sub",
            "create",
            "s",
            "--pull-wake",
            "w",
            "--webhook",
            "https://h",
            "--pattern",
            "*"
        ])
        .is_err());
        assert!(parse(&["ds", "sub", "create", "s", "--webhook", "https://h"]).is_err());
        assert!(parse(&[
            "ds",
            "sub",
            "create",
            "s",
            "--webhook",
            "https://h",
            "--pattern",
            "**"
        ])
        .is_ok());
        assert!(parse(&["ds", "sub", "add", "s"]).is_err());
        assert!(parse(&["ds", "sub", "remove", "s", "a/b"]).is_ok());
        assert!(parse(&["ds", "work", "s"]).is_err());
        assert!(parse(&["ds", "work", "s", "--worker", "w1", "--wake-offset", "now"]).is_ok());
    }
}
