//! A writer's dedicated HTTP/1.1 connection with pipelined requests (issue 16), over a tokio
//! `TcpStream`: the bytes only. ds-proto's [`PipelinedLink`] keeps the queue, the deadlines,
//! the codec and the rules for dropping the connection; ds-proto's [`WriterPipe`] decides
//! when this connection is used at all.
//!
//! The writer's task connects and writes what the link asks for; one reader task per
//! connection reads the socket and hands the bytes to the writer's task through a channel,
//! tagged with the connection's generation so that bytes of a dropped connection are ignored.

use crate::clock::now;
use ds_proto::driver::pipelined_link::{LinkStep, PipelinedLink};
use ds_proto::driver::writer_pipe::WriterPipe;
use ds_proto::io::{Input, RequestId, Transmit, TransportError, TransportErrorKind};
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

/// The socket of the link's live connection.
struct Socket {
    write: OwnedWriteHalf,
    reader: JoinHandle<()>,
    gen: u64,
}

/// The writer's pipelined connection: ds-proto's link and its socket.
pub(crate) struct Pipeline {
    link: PipelinedLink,
    socket: Option<Socket>,
    notify: Notify,
}

impl Pipeline {
    pub(crate) fn new(depth: usize, notify: Notify) -> Self {
        Pipeline {
            link: PipelinedLink::new(depth),
            socket: None,
            notify,
        }
    }

    /// Requests waiting for room (taken back by the writer when it falls back to pooled
    /// exchanges).
    pub(crate) fn take_pending(&mut self) -> Vec<Transmit> {
        self.link.take_pending()
    }

    /// The earliest deadline of a request written or waiting.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.link.next_deadline()
    }

    /// Queues `t` and writes what the connection has room for; inputs for the machine go to
    /// `out`.
    pub(crate) async fn submit(
        &mut self,
        t: Transmit,
        plan: &mut WriterPipe,
        out: &mut Vec<Input>,
    ) {
        self.link.submit(t);
        self.pump(plan, out).await;
    }

    /// Bytes (or the end) from connection `gen`'s reader.
    pub(crate) async fn on_read(
        &mut self,
        gen: u64,
        data: Option<Vec<u8>>,
        plan: &mut WriterPipe,
        out: &mut Vec<Input>,
    ) {
        self.link.on_read(gen, data.as_deref(), plan);
        self.pump(plan, out).await;
    }

    /// The machine cancelled `id`.
    pub(crate) async fn abort(
        &mut self,
        id: RequestId,
        plan: &mut WriterPipe,
        out: &mut Vec<Input>,
    ) {
        self.link.abort(id, plan, now());
        self.pump(plan, out).await;
    }

    /// Deadlines may have passed at `at`.
    pub(crate) async fn on_timeout(
        &mut self,
        at: Instant,
        plan: &mut WriterPipe,
        out: &mut Vec<Input>,
    ) {
        self.link.on_timeout(at, plan);
        self.pump(plan, out).await;
    }

    /// Does what the link asks until it is idle; its inputs go to `out`.
    async fn pump(&mut self, plan: &mut WriterPipe, out: &mut Vec<Input>) {
        loop {
            self.drop_stale_socket();
            match self.link.next_step(plan) {
                LinkStep::Connect { uri } => match connect(&uri).await {
                    Ok(stream) => {
                        let gen = self.link.on_connected();
                        self.socket = Some(spawn_reader(stream, gen, self.notify.clone()));
                    }
                    Err(e) => self.link.on_connect_failed(e),
                },
                LinkStep::Write { bytes } => {
                    let socket = self
                        .socket
                        .as_mut()
                        .expect("the link writes on a connection");
                    match socket.write.write_all(&bytes).await {
                        Ok(()) => self.link.on_written(plan, now()),
                        Err(_) => self.link.on_write_failed(plan),
                    }
                }
                LinkStep::Idle => break,
            }
        }
        self.drop_stale_socket();
        out.extend(self.link.take_inputs());
    }

    /// Drops the socket once the link dropped its connection.
    fn drop_stale_socket(&mut self) {
        if self
            .socket
            .as_ref()
            .is_some_and(|s| Some(s.gen) != self.link.connection())
        {
            if let Some(s) = self.socket.take() {
                s.reader.abort();
            }
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Some(s) = &self.socket {
            s.reader.abort();
        }
    }
}

async fn connect(uri: &http::Uri) -> Result<TcpStream, TransportError> {
    let host = uri.host().unwrap_or("localhost");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .map_err(|_| TransportError::new(TransportErrorKind::Connect, "connect timed out"))?
        .map_err(|e| TransportError::new(TransportErrorKind::Connect, e.to_string()))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Splits `stream`: a task reads it and hands the bytes to the writer's task, tagged `gen`.
fn spawn_reader(stream: TcpStream, gen: u64, notify: Notify) -> Socket {
    let (mut read, write) = stream.into_split();
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
    Socket { write, reader, gen }
}
