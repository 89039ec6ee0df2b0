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
use ds_proto::pipe::{PipeLimits, WritePipe};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The pipelined http1 loop.
#[derive(Debug)]
pub struct PipeLoop {
    /// Batches sized by `ds_proto::pipe::WritePipe` (from `--batch-bytes` up to
    /// [`PLAN_MAX_BATCH`], at most [`PLAN_MAX_BUDGET`] in flight) instead of fixed
    /// `--batch-bytes` batches (`--pipe-plan`).
    pub plan: bool,
}

/// The largest batch the plan may choose.
pub const PLAN_MAX_BATCH: usize = 16 << 20;
/// The most bytes the plan may keep in flight.
pub const PLAN_MAX_BUDGET: u64 = 64 << 20;

/// How long the loop waits for the server's next bytes before giving up.
const READ_WAIT: Duration = Duration::from_secs(30);

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Stack for PipeLoop {
    fn name(&self) -> &'static str {
        if self.plan {
            "http1 pipelined + plan"
        } else {
            "http1 pipelined"
        }
    }

    fn write(&self, url: &str, payloads: Vec<Bytes>, cfg: &WriteCfg) -> Result<Tput, String> {
        let msgs = payloads.len() as u64;
        let bytes = payloads.iter().map(|p| p.len() as u64).sum();
        let uri: http::Uri = url.parse().map_err(err)?;
        let authority = uri.authority().ok_or("no authority")?.as_str().to_owned();
        let start = Tput::start();
        let mut plan = if self.plan {
            let limits = PipeLimits {
                max_in_flight: cfg.in_flight,
                min_batch_bytes: cfg.bare_bytes.min(PLAN_MAX_BATCH),
                max_batch_bytes: PLAN_MAX_BATCH,
                max_budget_bytes: PLAN_MAX_BUDGET.max(cfg.bare_bytes as u64 * cfg.in_flight as u64),
            };
            Some(WritePipe::new(limits).map_err(err)?)
        } else {
            None
        };
        // Building the bodies is part of the work, as for the bare loops; with the plan they
        // are cut as they are sent, at the plan's target size.
        let mut fixed = if plan.is_none() {
            batch_bodies(&payloads, cfg.bare_bytes).into_iter()
        } else {
            Vec::new().into_iter()
        };
        let mut payloads = payloads.into_iter().peekable();
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
        let mut seq = 0u64;
        let mut out = Vec::new();
        let mut status: Option<u16> = None;
        let mut result = Ok(());
        // Per request in flight: body length and when its last byte was written.
        let mut sent: VecDeque<(usize, Instant)> = VecDeque::new();
        let mut rtt: Option<Duration> = None;
        let mut exhausted = false;
        'run: while !(exhausted && sent.is_empty()) {
            while !exhausted && conn.can_send() {
                let body = match &plan {
                    None => fixed.next(),
                    Some(p) => {
                        let target = p.batch_target_bytes();
                        let first = payloads.peek().map_or(0, Bytes::len);
                        if first > 0 && !p.may_send(target.max(first)) {
                            break;
                        }
                        let mut body = Vec::with_capacity(target);
                        while let Some(next) = payloads.peek() {
                            if !body.is_empty() && body.len() + next.len() > target {
                                break;
                            }
                            body.extend_from_slice(next);
                            payloads.next();
                        }
                        (!body.is_empty()).then(|| Bytes::from(body))
                    }
                };
                let Some(body) = body else {
                    exhausted = true;
                    break;
                };
                let len = body.len();
                let request = http::Request::post(url)
                    .header("content-type", "application/octet-stream")
                    .header("producer-id", "bench-pipe")
                    .header("producer-epoch", "0")
                    .header("producer-seq", seq.to_string())
                    .body(body)
                    .map_err(err)?;
                let t = Transmit {
                    id: RequestId(seq),
                    request,
                    deadline: None,
                };
                out.clear();
                conn.send(&t, &mut out).map_err(err)?;
                if let Some(p) = &mut plan {
                    p.on_sent(len, Instant::now());
                }
                if let Err(e) = socket.write_all(&out) {
                    result = Err(format!("write: {e}"));
                    break 'run;
                }
                conn.on_written(out.len());
                sent.push_back((len, Instant::now()));
                seq += 1;
            }
            if exhausted && sent.is_empty() {
                break;
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
                    Input::Head { parts, .. } => {
                        status = Some(parts.status.as_u16());
                        rtt = sent.front().map(|(_, at)| at.elapsed());
                    }
                    Input::Body { .. } => {}
                    Input::End { id } => match status.take() {
                        Some(200 | 204) => {
                            let (len, _) = sent.pop_front().ok_or("an answer too many")?;
                            if let Some(p) = &mut plan {
                                p.on_acked(len, rtt.take(), Instant::now());
                            }
                        }
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
        if let Some(p) = &plan {
            eprintln!(
                "      plan: budget {:.1} MB, batch target {:.1} MB, min rtt {:?}, rate {:.0} MB/s",
                p.budget_bytes() as f64 / 1e6,
                p.batch_target_bytes() as f64 / 1e6,
                p.min_rtt().unwrap_or_default(),
                p.max_rate().unwrap_or(0) as f64 / 1e6
            );
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
