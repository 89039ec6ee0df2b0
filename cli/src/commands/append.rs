//! `ds append STREAM [MESSAGE...]`: through an exactly-once writer (idempotent producer).

use crate::args::AppendArgs;
use crate::exit::Failure;
use ds_tokio::{ConflictKind, Error, ErrorKind, FailureReason, StreamHandle, Writer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

/// Appends the messages, or stdin (lines, or raw bytes with `--raw`), then closes the writer
/// (and the stream with `--close` when every message was accepted).
pub async fn run(args: &AppendArgs, stream: &StreamHandle) -> Result<(), Failure> {
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
    let raw = args.raw;
    if raw && json {
        return Err(Failure::Usage("--raw is for non-JSON streams".into()));
    }
    let producer_id = args.producer_id.clone().unwrap_or_else(default_producer_id);
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
        if !args.messages.is_empty() {
            // Every argument is checked before the first is sent.
            let mut send = Vec::new();
            for (i, m) in args.messages.iter().enumerate() {
                let mut data = m.clone().into_bytes();
                if !json && !raw {
                    data.push(b'\n');
                }
                if let Some(d) = push(data, &format!("message {}", i + 1))? {
                    send.push(d);
                }
            }
            for d in send {
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
    let close = args.close && fed.is_ok();
    let offset =
        |o: Option<ds_tokio::Offset>| o.map(|o| o.to_string()).unwrap_or_else(|| "?".into());
    match writer.close(close).await {
        Ok(report) if fed.is_err() => {
            eprintln!(
                "ds: stopped after {count} message(s), appended up to {}",
                offset(report.offset)
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
                offset(report.offset)
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

/// `ds-cli-PID-MILLIS`: unique enough between the runs of one machine.
fn default_producer_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("ds-cli-{}-{millis}", std::process::id())
}

async fn append_one(writer: &Writer, data: Vec<u8>) -> Result<(), Failure> {
    match writer.append(data).await {
        Ok(_) => Ok(()),
        Err(e) => match e.error() {
            Some(err) => Err(Failure::Stream(err.clone())),
            None => Err(Failure::Other(e.to_string())),
        },
    }
}
