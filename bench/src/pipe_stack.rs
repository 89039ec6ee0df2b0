//! A bench-only ordered writer (`--stacks pipe`): the batch bodies sent as producer appends
//! (`Producer-Id`/`-Epoch`/`-Seq`), up to `in_flight` pipelined on one HTTP/1.1 connection
//! through ds-proto's sans-IO codec (`http1::Connection::pipelined`) over a std `TcpStream`.
//! It shows what pipelining does on a long link (issue 16) before any driver uses it: order is
//! kept (no 409), and the pipe fills.
//!
//! No retries and no fallback: any failure (a 409 included) ends the run with an error; the
//! delay proxy counts what the server answered.

use crate::util::{batch_bodies, Tput};
use crate::{Stack, WriteCfg};
use bytes::Bytes;
use ds_proto::http1::{Connection, Limits};
use ds_proto::io::{Input, RequestId, Transmit};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

/// The pipelined http1 loop.
#[derive(Debug)]
pub struct PipeLoop;

/// How long the loop waits for the server's next bytes before giving up.
const READ_WAIT: Duration = Duration::from_secs(30);

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Stack for PipeLoop {
    fn name(&self) -> &'static str {
        "http1 pipelined"
    }

    fn write(&self, url: &str, payloads: Vec<Bytes>, cfg: &WriteCfg) -> Result<Tput, String> {
        let msgs = payloads.len() as u64;
        let bytes = payloads.iter().map(|p| p.len() as u64).sum();
        let uri: http::Uri = url.parse().map_err(err)?;
        let authority = uri.authority().ok_or("no authority")?.as_str().to_owned();
        let start = Tput::start();
        // Building the bodies is part of the work, as for the bare loops.
        let bodies = batch_bodies(&payloads, cfg.batch_bytes);
        drop(payloads);
        let mut socket = TcpStream::connect(&authority).map_err(err)?;
        socket.set_nodelay(true).map_err(err)?;
        // A reader thread moves what the server sends to this thread, so that a write blocked
        // on a full pipe never stops responses from being read.
        let mut rsock = socket.try_clone().map_err(err)?;
        let (tx, rx) = mpsc::sync_channel::<Option<Vec<u8>>>(1024);
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match rsock.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(None);
                        return;
                    }
                    Ok(n) => {
                        if tx.send(Some(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut conn = Connection::pipelined(Limits::default(), cfg.in_flight);
        let total = bodies.len();
        let mut next = 0usize;
        let mut done = 0usize;
        let mut out = Vec::new();
        let mut status: Option<u16> = None;
        let mut result = Ok(());
        let mut bodies = bodies.into_iter();
        'run: while done < total {
            while next < total && conn.can_send() {
                let body = bodies.next().ok_or("ran out of bodies")?;
                let request = http::Request::post(url)
                    .header("content-type", "application/octet-stream")
                    .header("producer-id", "bench-pipe")
                    .header("producer-epoch", "0")
                    .header("producer-seq", next.to_string())
                    .body(body)
                    .map_err(err)?;
                let t = Transmit {
                    id: RequestId(next as u64),
                    request,
                    deadline: None,
                };
                out.clear();
                conn.send(&t, &mut out).map_err(err)?;
                if let Err(e) = socket.write_all(&out) {
                    result = Err(format!("write: {e}"));
                    break 'run;
                }
                conn.on_written(out.len());
                next += 1;
            }
            match rx.recv_timeout(READ_WAIT) {
                Ok(Some(bytes)) => conn.feed(&bytes),
                Ok(None) => conn.on_eof(),
                Err(e) => {
                    result = Err(format!("no answer within {READ_WAIT:?}: {e}"));
                    break;
                }
            }
            while let Some(input) = conn.poll_input() {
                match input {
                    Input::Head { parts, .. } => status = Some(parts.status.as_u16()),
                    Input::Body { .. } => {}
                    Input::End { id } => match status.take() {
                        Some(200 | 204) => done += 1,
                        other => {
                            result = Err(format!("batch {} answered {other:?}", id.0));
                            break 'run;
                        }
                    },
                    Input::Failed { id, error } => {
                        result = Err(format!(
                            "batch {} failed: {error} (pipelining refused: {})",
                            id.0,
                            conn.pipelining_refused()
                        ));
                        break 'run;
                    }
                }
            }
        }
        let t = Tput::finish(start, msgs, bytes);
        let _ = socket.shutdown(std::net::Shutdown::Both);
        drop(rx);
        let _ = reader.join();
        result.map(|()| t)
    }

    fn catch_up(&self, _url: &str, _expect: u64) -> Result<Tput, String> {
        Err("the pipelined loop only writes".into())
    }

    fn live(
        &self,
        _url: &str,
        _sse: bool,
        _n: usize,
        _budget: Duration,
    ) -> Result<crate::util::Lat, String> {
        Err("the pipelined loop only writes".into())
    }

    fn ops(&self, _url: &str, _n: usize) -> Result<[crate::util::Lat; 4], String> {
        Err("the pipelined loop only writes".into())
    }
}
