//! `ds`: a small command-line client for Durable Streams, and a local development server.
//!
//! ```text
//! cargo run --example ds -- serve                         # embedded server on 127.0.0.1:4437
//! cargo run --example ds -- create chat --content-type application/json
//! echo '{"text":"hi"}' | cargo run --example ds -- append chat
//! cargo run --example ds -- tail chat --offsets           # follow live until the stream closes
//! ```
//!
//! (Build it once with `cargo build --example ds` and use `target/debug/examples/ds` directly.)
//!
//! ```text
//! ds [--url URL] COMMAND [ARGS]
//!
//!   serve  [--port P] [--long-poll-ms MS] [--for SECS]
//!          Run the embedded server (the in-memory sim model) on 127.0.0.1:P (default 4437;
//!          0 picks a free port). Prints its URL on stdout. Runs until killed, or SECS.
//!   create STREAM [--content-type CT] [--ttl SECS | --expires-at RFC3339] [--closed]
//!          [--data TEXT]
//!          Create a stream (default content type application/octet-stream). Prints its URL.
//!   append STREAM [MESSAGE...] [--close] [--raw] [--producer-id ID]
//!          Append each MESSAGE, or each line of stdin when there is none, through an
//!          exactly-once writer. JSON streams: one JSON value per message/line. Other streams:
//!          each message/line is appended with a trailing newline; --raw appends the
//!          arguments as given, or stdin as it comes. --close closes the stream afterwards.
//!   read   STREAM [--offset O] [--offsets]
//!          Print what the stream holds now (from O, default the beginning), then exit.
//!   tail   STREAM [--offset O] [--offsets] [--sse | --long-poll] [--for SECS]
//!          Print the stream and follow it live until it is closed (or for SECS).
//!   head   STREAM      Print the stream's metadata as `key: value` lines.
//!   close  STREAM      Close the stream; prints its final offset.
//!   delete STREAM      Delete the stream.
//! ```
//!
//! - `STREAM` is a URL (`http://host:port/path`), a path (`/v1/stream/chat`), or a name
//!   (`chat`, meaning `/v1/stream/chat`).
//! - The server is `--url`, else `$DS_URL`, else `http://127.0.0.1:4437` (where `ds serve`
//!   listens by default).
//! - Data goes to stdout; progress and errors go to stderr. JSON streams print one message
//!   per line. With `--offsets`, every printed chunk (or, for JSON streams, message) is
//!   prefixed with the offset to resume from after the chunk that carried it, and a tab.
//! - Exit codes: 0 ok, 1 usage, 2 not found (or gone), 3 conflict (closed stream, existing
//!   stream with another configuration, fenced writer), 4 anything else.

use ds_tokio::server::ServerConfig;
use ds_tokio::{
    Client, ConflictKind, CreateOptions, Error, ErrorKind, FailureReason, Offset, ReadMode,
    ReaderConfig, ReaderEvent, RetryPolicy, StreamHandle,
};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

const DEFAULT_URL: &str = "http://127.0.0.1:4437";
const DEFAULT_PORT: u16 = 4437;

/// Why the command failed, and with which exit code.
#[derive(Debug)]
enum Failure {
    /// Exit 1.
    Usage(String),
    /// Exit 2, 3 or 4, from the error's kind.
    Stream(Error),
    /// Exit 4.
    Other(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Stream(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Other(e.to_string())
    }
}

fn exit_code(kind: &ErrorKind) -> u8 {
    match kind {
        ErrorKind::NotFound | ErrorKind::Gone => 2,
        ErrorKind::Conflict(_) | ErrorKind::Fenced { .. } => 3,
        _ => 4,
    }
}

/// The parsed command line: positional arguments and `--flag [value]` options.
#[derive(Debug, Default)]
struct Args {
    positional: Vec<String>,
    options: Vec<(String, Option<String>)>,
}

/// Options that take a value.
const VALUED: &[&str] = &[
    "--url",
    "--port",
    "--long-poll-ms",
    "--for",
    "--content-type",
    "--ttl",
    "--expires-at",
    "--data",
    "--offset",
    "--producer-id",
];

impl Args {
    fn parse(raw: impl Iterator<Item = String>) -> Result<Args, Failure> {
        let mut args = Args::default();
        let mut raw = raw.peekable();
        let mut only_positional = false;
        while let Some(a) = raw.next() {
            if only_positional || !a.starts_with("--") || a == "-" {
                args.positional.push(a);
            } else if a == "--" {
                only_positional = true;
            } else if let Some((name, value)) = a.split_once('=') {
                args.options.push((name.to_owned(), Some(value.to_owned())));
            } else if VALUED.contains(&a.as_str()) {
                let value = raw
                    .next()
                    .ok_or_else(|| Failure::Usage(format!("{a} needs a value")))?;
                args.options.push((a, Some(value)));
            } else {
                args.options.push((a, None));
            }
        }
        Ok(args)
    }

    /// Refuses options the command does not know.
    fn allow(&self, command: &str, known: &[&str]) -> Result<(), Failure> {
        for (name, _) in &self.options {
            if name != "--url" && !known.contains(&name.as_str()) {
                return Err(Failure::Usage(format!("`{command}` does not take {name}")));
            }
        }
        Ok(())
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    fn flag(&self, name: &str) -> bool {
        self.options.iter().any(|(n, _)| n == name)
    }

    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, Failure> {
        self.value(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| Failure::Usage(format!("{name} wants a number, not {v:?}")))
            })
            .transpose()
    }

    fn offset(&self) -> Result<Offset, Failure> {
        match self.value("--offset") {
            None => Ok(Offset::beginning()),
            Some(o) => Offset::parse(o).map_err(|e| Failure::Usage(format!("--offset: {e}"))),
        }
    }
}

const USAGE: &str = "usage: ds [--url URL] COMMAND [ARGS]

commands:
  serve  [--port P] [--long-poll-ms MS] [--for SECS]
  create STREAM [--content-type CT] [--ttl SECS | --expires-at RFC3339] [--closed] [--data TEXT]
  append STREAM [MESSAGE...] [--close] [--raw] [--producer-id ID]   (no MESSAGE: stdin lines)
  read   STREAM [--offset O] [--offsets]
  tail   STREAM [--offset O] [--offsets] [--sse | --long-poll] [--for SECS]
  head   STREAM
  close  STREAM
  delete STREAM

STREAM: a URL, a path (/v1/stream/x) or a name (x = /v1/stream/x).
Server: --url, else $DS_URL, else http://127.0.0.1:4437.
Exit codes: 0 ok, 1 usage, 2 not found, 3 conflict/closed, 4 other.";

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(f) => return report(f),
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => report(f),
    }
}

fn report(failure: Failure) -> ExitCode {
    let code = match &failure {
        Failure::Usage(m) => {
            eprintln!("ds: {m}\n(`ds help` shows the usage)");
            1
        }
        Failure::Stream(e) => {
            eprintln!("ds: {}", describe(e));
            exit_code(&e.kind)
        }
        Failure::Other(m) => {
            eprintln!("ds: {m}");
            4
        }
    };
    ExitCode::from(code)
}

/// An error in words a user acts on.
fn describe(e: &Error) -> String {
    let what = match &e.kind {
        ErrorKind::NotFound => "no such stream".to_owned(),
        ErrorKind::Gone => "gone (deleted, or the offset is before the retained data)".to_owned(),
        ErrorKind::Conflict(ConflictKind::Closed { .. }) => "the stream is closed".to_owned(),
        ErrorKind::Conflict(ConflictKind::ExistsWithDifferentConfig) => {
            "the stream exists with another configuration".to_owned()
        }
        ErrorKind::Conflict(ConflictKind::ContentTypeMismatch) => {
            "content type does not match the stream's".to_owned()
        }
        ErrorKind::Transport(t) => format!("cannot reach the server ({t})"),
        other => other.to_string(),
    };
    format!("{} {}: {what}", e.operation, e.url)
}

async fn run(args: Args) -> Result<(), Failure> {
    let Some(command) = args.positional.first().cloned() else {
        return Err(Failure::Usage("no command".into()));
    };
    if command == "help" || args.flag("--help") || args.flag("-h") {
        println!("{USAGE}");
        return Ok(());
    }
    if command == "serve" {
        return serve(&args).await;
    }
    let base = args
        .value("--url")
        .map(str::to_owned)
        .or_else(|| std::env::var("DS_URL").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    // A command-line tool should give up on an unreachable server in seconds, not minutes.
    let client = Client::builder()
        .base_url(base.trim_end_matches('/'))
        .retry_policy(cli_retry())
        .build()?;
    let Some(name) = args.positional.get(1) else {
        return Err(Failure::Usage(format!("`{command}` needs a STREAM")));
    };
    let stream = client.stream(&stream_path(name));
    let extra = &args.positional[2..];
    if command != "append" && !extra.is_empty() {
        return Err(Failure::Usage(format!(
            "`{command}` takes one STREAM, not {extra:?}"
        )));
    }
    match command.as_str() {
        "create" => create(&args, &stream).await,
        "append" => append(&args, &stream, extra).await,
        "read" => read(&args, &stream, false).await,
        "tail" => read(&args, &stream, true).await,
        "head" => head(&args, &stream).await,
        "close" => {
            args.allow("close", &[])?;
            let closed = stream.close().await?;
            let offset = closed
                .final_offset
                .map(|o| o.to_string())
                .unwrap_or_default();
            eprintln!("closed {}", stream.url());
            println!("{offset}");
            Ok(())
        }
        "delete" => {
            args.allow("delete", &[])?;
            stream.delete().await?;
            eprintln!("deleted {}", stream.url());
            Ok(())
        }
        other => Err(Failure::Usage(format!("unknown command {other:?}"))),
    }
}

/// Four attempts within ten seconds.
fn cli_retry() -> RetryPolicy {
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

async fn serve(args: &Args) -> Result<(), Failure> {
    args.allow("serve", &["--port", "--long-poll-ms", "--for"])?;
    let mut config = ServerConfig {
        port: args.number("--port")?.unwrap_or(DEFAULT_PORT),
        ..ServerConfig::default()
    };
    if let Some(ms) = args.number::<u64>("--long-poll-ms")? {
        config.model.long_poll_timeout = Duration::from_millis(ms);
    }
    let server = ds_tokio::server::spawn(config)
        .await
        .map_err(|e| Failure::Other(format!("cannot listen: {e}")))?;
    println!("{}", server.url());
    std::io::stdout().flush()?;
    eprintln!(
        "serving Durable Streams at {} (in memory; stop with Ctrl-C)\n\
         try: ds --url {} create demo && ds --url {} tail demo",
        server.url(),
        server.url(),
        server.url()
    );
    match args.number::<f64>("--for")? {
        Some(secs) => tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await,
        None => std::future::pending::<()>().await,
    }
    server.shutdown().await;
    Ok(())
}

async fn create(args: &Args, stream: &StreamHandle) -> Result<(), Failure> {
    args.allow(
        "create",
        &[
            "--content-type",
            "--ttl",
            "--expires-at",
            "--closed",
            "--data",
        ],
    )?;
    let options = CreateOptions {
        content_type: args.value("--content-type").map(str::to_owned),
        ttl_seconds: args.number("--ttl")?,
        expires_at: args.value("--expires-at").map(str::to_owned),
        closed: args.flag("--closed"),
        body: args
            .value("--data")
            .map(|d| bytes::Bytes::from(d.to_owned()))
            .unwrap_or_default(),
        ..CreateOptions::default()
    };
    if options.ttl_seconds.is_some() && options.expires_at.is_some() {
        return Err(Failure::Usage(
            "--ttl and --expires-at cannot be used together".into(),
        ));
    }
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

async fn head(args: &Args, stream: &StreamHandle) -> Result<(), Failure> {
    args.allow("head", &[])?;
    let info = stream.head().await?;
    let mut out = String::new();
    if let Some(ct) = &info.content_type {
        out += &format!("content-type: {ct}\n");
    }
    out += &format!("next-offset: {}\n", info.next_offset);
    out += &format!("closed: {}\n", info.closed);
    if let Some(ttl) = info.ttl_seconds {
        out += &format!("ttl: {ttl}\n");
    }
    if let Some(at) = &info.expires_at {
        out += &format!("expires-at: {at}\n");
    }
    if let Some(etag) = &info.etag {
        out += &format!("etag: {etag}\n");
    }
    print!("{out}");
    Ok(())
}

async fn append(args: &Args, stream: &StreamHandle, messages: &[String]) -> Result<(), Failure> {
    args.allow("append", &["--close", "--raw", "--producer-id"])?;
    // Learn the content type (and that the stream exists and is open) before writing.
    let info = stream.head().await?;
    if info.closed {
        return Err(Failure::Stream(Error::new(
            ds_tokio::Operation::Append,
            stream.url(),
            ErrorKind::Conflict(ConflictKind::Closed {
                final_offset: Some(info.next_offset),
            }),
        )));
    }
    let json = info
        .content_type
        .as_deref()
        .is_some_and(ds_proto::headers::is_json_content_type);
    let raw = args.flag("--raw");
    if raw && json {
        return Err(Failure::Usage("--raw is for non-JSON streams".into()));
    }
    let producer_id = args
        .value("--producer-id")
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let millis = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            format!("ds-cli-{}-{millis}", std::process::id())
        });
    let writer = stream.writer(producer_id)?;
    let mut count = 0usize;
    let mut bytes = 0usize;
    let mut push = |data: Vec<u8>, what: &str| -> Result<Option<Vec<u8>>, Failure> {
        if json {
            if data.iter().all(u8::is_ascii_whitespace) {
                return Ok(None); // blank lines between JSON values
            }
            serde_json::from_slice::<serde::de::IgnoredAny>(&data)
                .map_err(|e| Failure::Other(format!("{what} is not JSON: {e}")))?;
        }
        count += 1;
        bytes += data.len();
        Ok(Some(data))
    };
    // Feed the writer; on a bad line, stop feeding but still deliver what was accepted.
    let fed: Result<(), Failure> = async {
        let mut send = Vec::new();
        if !messages.is_empty() {
            for (i, m) in messages.iter().enumerate() {
                let mut data = m.clone().into_bytes();
                if !json && !raw {
                    data.push(b'\n');
                }
                if let Some(d) = push(data, &format!("message {}", i + 1))? {
                    send.push(d);
                }
            }
            for d in send.drain(..) {
                append_one(&writer, d).await?;
            }
        } else if raw {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = stdin.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                if let Some(d) = push(buf[..n].to_vec(), "input")? {
                    append_one(&writer, d).await?;
                }
            }
        } else {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            let mut n = 0usize;
            while let Some(line) = lines.next_line().await? {
                n += 1;
                let mut data = line.into_bytes();
                if !json {
                    data.push(b'\n');
                }
                if let Some(d) = push(data, &format!("line {n}"))? {
                    append_one(&writer, d).await?;
                }
                if n % 10_000 == 0 {
                    eprintln!("ds: {n} lines read...");
                }
            }
        }
        Ok(())
    }
    .await;
    // Close the stream only when every message was accepted.
    let close = args.flag("--close") && fed.is_ok();
    match writer.close(close).await {
        Ok(report) if fed.is_err() => {
            eprintln!(
                "ds: stopped after {count} message(s), appended up to {}",
                report
                    .offset
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| "?".into())
            );
            fed
        }
        Ok(report) => {
            eprintln!(
                "appended {count} message(s), {bytes} bytes{}; tail at {}",
                if report.stream_closed {
                    "; stream closed"
                } else {
                    ""
                },
                report
                    .offset
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| "?".into())
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("ds: {} message(s) not appended", e.failed_appends());
            match e.reason() {
                Some(FailureReason::NotStored(err)) => Err(Failure::Stream(err.clone())),
                Some(reason) => Err(Failure::Other(reason.to_string())),
                None => Err(Failure::Other(e.to_string())),
            }
        }
    }
}

async fn append_one(writer: &ds_tokio::Writer, data: Vec<u8>) -> Result<(), Failure> {
    match writer.append(data).await {
        Ok(_) => Ok(()),
        Err(e) => match e.error() {
            Some(err) => Err(Failure::Stream(err.clone())),
            None => Err(Failure::Other(e.to_string())),
        },
    }
}

async fn read(args: &Args, stream: &StreamHandle, follow: bool) -> Result<(), Failure> {
    if follow {
        args.allow(
            "tail",
            &["--offset", "--offsets", "--sse", "--long-poll", "--for"],
        )?;
    } else {
        args.allow("read", &["--offset", "--offsets"])?;
    }
    let mode = match (follow, args.flag("--sse"), args.flag("--long-poll")) {
        (false, _, _) => ReadMode::CatchUp,
        (true, true, true) => return Err(Failure::Usage("--sse or --long-poll, not both".into())),
        (true, true, false) => ReadMode::Sse,
        (true, false, true) => ReadMode::LongPoll,
        (true, false, false) => ReadMode::Auto,
    };
    if mode == ReadMode::Sse {
        // SSE responses do not say whether the stream is JSON: ask first.
        let info = stream.head().await?;
        if let Some(ct) = info.content_type {
            stream.set_content_type(ct);
        }
    }
    let offsets = args.flag("--offsets");
    let limit = args
        .number::<f64>("--for")?
        .map(|s| Duration::from_secs_f64(s.max(0.0)));
    let mut reader = stream.reader_with(ReaderConfig {
        offset: args.offset()?,
        mode,
        // `read` gives up like the other commands; `tail` keeps trying (and says so).
        retry: if follow {
            RetryPolicy::unlimited()
        } else {
            cli_retry()
        },
        ..ReaderConfig::new(stream.url())
    })?;
    if follow {
        eprintln!("following {} ({mode:?})", stream.url());
    }
    let deadline = limit.map(|l| tokio::time::Instant::now() + l);
    let mut stdout = std::io::stdout().lock();
    loop {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, reader.next_event()).await {
                Ok(next) => next,
                Err(_) => {
                    eprintln!(
                        "stopped after {:?} at {}",
                        limit.unwrap_or_default(),
                        reader.offset()
                    );
                    return Ok(());
                }
            },
            None => reader.next_event().await,
        };
        let chunk = match next {
            None => break,
            Some(ReaderEvent::Data(chunk)) => chunk,
            Some(ReaderEvent::Failed(e)) => return Err(e.into()),
            Some(ReaderEvent::Retrying { error, delay, .. }) => {
                eprintln!("ds: {}; retrying in {delay:.1?}", describe(&error));
                continue;
            }
            Some(ReaderEvent::FellBackToLongPoll) => {
                eprintln!("ds: SSE connections keep ending early; using long-poll");
                continue;
            }
            Some(_) => continue, // up to date, closed, done: the loop ends with `None`
        };
        let mut out = Vec::new();
        if chunk.json {
            let items = chunk
                .items()
                .map_err(|e| Failure::Other(format!("bad JSON from the server: {e}")))?;
            for item in items {
                if offsets {
                    out.extend_from_slice(chunk.next_offset.as_str().as_bytes());
                    out.push(b'\t');
                }
                out.extend_from_slice(&item);
                out.push(b'\n');
            }
        } else if !chunk.data.is_empty() {
            if offsets {
                out.extend_from_slice(chunk.next_offset.as_str().as_bytes());
                out.push(b'\t');
            }
            out.extend_from_slice(&chunk.data);
            if offsets && !chunk.data.ends_with(b"\n") {
                out.push(b'\n');
            }
        }
        match stdout.write_all(&out).and_then(|()| stdout.flush()) {
            Ok(()) => {}
            // `ds tail x | head`: the reader of our output left; so do we.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    if reader.is_eof() {
        eprintln!("end of stream at {} (closed)", reader.offset());
    } else {
        eprintln!("up to date at {}", reader.offset());
    }
    Ok(())
}
