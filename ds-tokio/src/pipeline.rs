//! A writer's dedicated HTTP/1.1 connection with pipelined requests (issue 16), over a tokio
//! `TcpStream`: the bytes only. ds-proto's `http1::Connection::pipelined` keeps the exchanges
//! in order and says which failed requests are known unprocessed; ds-proto's
//! [`WriterPipe`] decides when this connection is used at all.
//!
//! The writer's task writes the requests and feeds the codec; one reader task per connection
//! reads the socket and hands the bytes to the writer's task through a channel, tagged with the
//! connection's generation so that bytes of a dropped connection are ignored.

use ds_proto::driver::writer_pipe::WriterPipe;
use ds_proto::http1::{Connection, Limits};
use ds_proto::io::{Input, RequestId, Transmit, TransportError, TransportErrorKind};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// Carries the reader task's bytes (`Some`) or the end of the connection (`None`) to the
/// writer's task, with the connection's generation.
pub(crate) type Notify = UnboundedSender<(u64, Option<Vec<u8>>)>;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

struct Conn {
    stream: OwnedWriteHalf,
    reader: JoinHandle<()>,
    codec: Connection,
    gen: u64,
}

/// The writer's pipelined connection and the requests waiting for room on it.
pub(crate) struct Pipeline {
    conn: Option<Conn>,
    gen: u64,
    pending: VecDeque<Transmit>,
    deadlines: HashMap<RequestId, Instant>,
    notify: Notify,
    depth: usize,
}

impl Pipeline {
    pub(crate) fn new(depth: usize, notify: Notify) -> Self {
        Pipeline {
            conn: None,
            gen: 0,
            pending: VecDeque::new(),
            deadlines: HashMap::new(),
            notify,
            depth: depth.max(1),
        }
    }

    /// Requests waiting for room (taken back by the writer when it falls back to pooled
    /// exchanges).
    pub(crate) fn take_pending(&mut self) -> Vec<Transmit> {
        self.pending.drain(..).collect()
    }

    /// Queues `t` and writes what the connection has room for; inputs for the machine go to
    /// `out`.
    pub(crate) async fn submit(
        &mut self,
        t: Transmit,
        plan: &mut WriterPipe,
        out: &mut Vec<Input>,
    ) {
        if let Some(d) = t.deadline {
            self.deadlines.insert(t.id, d);
        }
        self.pending.push_back(t);
        self.pump(plan, out).await;
    }

    /// Writes waiting requests while the connection has room, opening one when needed.
    async fn pump(&mut self, plan: &mut WriterPipe, out: &mut Vec<Input>) {
        while let Some(uri) = self.pending.front().map(|t| t.request.uri().clone()) {
            if self
                .conn
                .as_ref()
                .is_some_and(|c| c.codec.must_close() && c.codec.in_flight() == 0)
            {
                self.kill(plan, out);
            }
            if self.conn.is_none() {
                match self.connect(&uri).await {
                    Ok(c) => self.conn = Some(c),
                    Err(e) => {
                        let t = self.pending.pop_front().expect("front exists");
                        self.deadlines.remove(&t.id);
                        out.push(Input::Failed { id: t.id, error: e });
                        continue;
                    }
                }
            }
            let conn = self.conn.as_mut().expect("connected above");
            if !conn.codec.can_send() {
                return;
            }
            let t = self.pending.pop_front().expect("front exists");
            let mut wire = Vec::with_capacity(t.request.body().len() + 1024);
            if let Err(e) = conn.codec.send(&t, &mut wire) {
                self.deadlines.remove(&t.id);
                out.push(Input::Failed {
                    id: t.id,
                    error: TransportError::new(e.transport_kind(), e.to_string()),
                });
                continue;
            }
            match conn.stream.write_all(&wire).await {
                Ok(()) => {
                    conn.codec.on_written(wire.len());
                    plan.on_written(t.id, Instant::now());
                }
                // The codec knows this request was not fully written: it fails it as not
                // processed; those before it as their bytes prove.
                Err(_) => self.kill(plan, out),
            }
        }
    }

    async fn connect(&mut self, uri: &http::Uri) -> Result<Conn, TransportError> {
        let host = uri.host().unwrap_or("localhost");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(80);
        let fail =
            |e: std::io::Error| TransportError::new(TransportErrorKind::Connect, e.to_string());
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| TransportError::new(TransportErrorKind::Connect, "connect timed out"))?
            .map_err(fail)?;
        let _ = stream.set_nodelay(true);
        let (mut read, write) = stream.into_split();
        self.gen += 1;
        let gen = self.gen;
        let notify = self.notify.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = notify.send((gen, None));
                        return;
                    }
                    Ok(n) => {
                        if notify.send((gen, Some(buf[..n].to_vec()))).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Conn {
            stream: write,
            reader,
            codec: Connection::pipelined(Limits::default(), self.depth),
            gen,
        })
    }

    /// Bytes (or the end) from connection `gen`'s reader.
    pub(crate) async fn on_read(
        &mut self,
        gen: u64,
        data: Option<Vec<u8>>,
        plan: &mut WriterPipe,
        out: &mut Vec<Input>,
    ) {
        let Some(conn) = self.conn.as_mut().filter(|c| c.gen == gen) else {
            return;
        };
        match data {
            Some(bytes) => {
                conn.codec.feed(&bytes);
                drain(conn, &mut self.deadlines, out);
                if conn.codec.must_close() && conn.codec.in_flight() == 0 {
                    self.kill(plan, out);
                }
            }
            None => self.kill(plan, out),
        }
        self.pump(plan, out).await;
    }

    /// Drops the connection: its outstanding requests fail as the codec can prove.
    fn kill(&mut self, plan: &mut WriterPipe, out: &mut Vec<Input>) {
        if let Some(mut conn) = self.conn.take() {
            conn.reader.abort();
            conn.codec.on_eof();
            drain(&mut conn, &mut self.deadlines, out);
            if conn.codec.pipelining_refused() {
                plan.on_pipelining_refused();
            }
        }
    }

    /// The machine cancelled `id`: a pipelined request cannot be taken back alone, so the
    /// connection goes (the others fail as the codec can prove; the cancelled one's inputs
    /// are dropped).
    pub(crate) async fn abort(
        &mut self,
        id: RequestId,
        plan: &mut WriterPipe,
        out: &mut Vec<Input>,
    ) {
        let now = Instant::now();
        if let Some(i) = self.pending.iter().position(|t| t.id == id) {
            self.pending.remove(i);
            self.deadlines.remove(&id);
            plan.on_abandoned(id, now);
            return;
        }
        if self
            .conn
            .as_ref()
            .is_some_and(|c| c.codec.outstanding().any(|o| o == id))
        {
            let mut lost = Vec::new();
            self.kill(plan, &mut lost);
            out.extend(lost.into_iter().filter(|i| i.id() != id));
            plan.on_abandoned(id, now);
            self.pump(plan, out).await;
        }
    }

    /// The earliest deadline of a request written or waiting.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.values().min().copied()
    }

    /// Deadlines that passed at `now`: the connection goes; the expired requests fail as
    /// timeouts (outcome unknown), the others as the codec can prove.
    pub(crate) async fn on_timeout(
        &mut self,
        now: Instant,
        plan: &mut WriterPipe,
        out: &mut Vec<Input>,
    ) {
        let expired: Vec<RequestId> = self
            .deadlines
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| *id)
            .collect();
        if expired.is_empty() {
            return;
        }
        for id in &expired {
            if let Some(i) = self.pending.iter().position(|t| t.id == *id) {
                self.pending.remove(i);
                self.deadlines.remove(id);
                out.push(Input::Failed {
                    id: *id,
                    error: TransportError::new(TransportErrorKind::Timeout, "deadline passed"),
                });
            }
        }
        let mut lost = Vec::new();
        self.kill(plan, &mut lost);
        for input in lost {
            match input {
                Input::Failed { id, error } if expired.contains(&id) => out.push(Input::Failed {
                    id,
                    error: TransportError::new(TransportErrorKind::Timeout, error.message),
                }),
                other => out.push(other),
            }
        }
        self.pump(plan, out).await;
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Some(conn) = &self.conn {
            conn.reader.abort();
        }
    }
}

fn drain(conn: &mut Conn, deadlines: &mut HashMap<RequestId, Instant>, out: &mut Vec<Input>) {
    while let Some(input) = conn.codec.poll_input() {
        if matches!(input, Input::End { .. } | Input::Failed { .. }) {
            deadlines.remove(&input.id());
        }
        out.push(input);
    }
}
