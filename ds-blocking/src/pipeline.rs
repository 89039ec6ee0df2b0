//! A writer's dedicated HTTP/1.1 connection with pipelined requests (issue 16), over a std
//! `TcpStream`: the bytes only. ds-proto's [`PipelinedLink`] keeps the queue, the deadlines,
//! the codec and the rules for dropping the connection; ds-proto's [`WriterPipe`] decides
//! when this connection is used at all.
//!
//! The writer's thread connects and writes what the link asks for (blocking); one reader
//! thread per connection reads the socket and hands the bytes to the writer's thread through
//! its channel (`notify`), tagged with the connection's generation so that bytes of a dropped
//! connection are ignored.

use ds_proto::driver::pipelined_link::{LinkStep, PipelinedLink};
use ds_proto::driver::writer_pipe::WriterPipe;
use ds_proto::io::{Input, RequestId, Transmit, TransportError, TransportErrorKind};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Hands the reader thread's bytes (`Some`) or the end of the connection (`None`) to the
/// writer's thread; returns `false` when the writer is gone.
pub(crate) type Notify = Arc<dyn Fn(u64, Option<Vec<u8>>) -> bool + Send + Sync>;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The socket of the link's live connection (its reader thread ends when it is shut down).
struct Socket {
    stream: TcpStream,
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
    pub(crate) fn submit(&mut self, t: Transmit, plan: &mut WriterPipe, out: &mut Vec<Input>) {
        self.link.submit(t);
        self.pump(plan, out);
    }

    /// Bytes (or the end) from connection `gen`'s reader.
    pub(crate) fn on_read(
        &mut self,
        gen: u64,
        data: Option<Vec<u8>>,
        plan: &mut WriterPipe,
        out: &mut Vec<Input>,
    ) {
        self.link.on_read(gen, data.as_deref(), plan);
        self.pump(plan, out);
    }

    /// The machine cancelled `id`.
    pub(crate) fn abort(&mut self, id: RequestId, plan: &mut WriterPipe, out: &mut Vec<Input>) {
        self.link.abort(id, plan, Instant::now());
        self.pump(plan, out);
    }

    /// Deadlines may have passed at `now`.
    pub(crate) fn on_timeout(&mut self, now: Instant, plan: &mut WriterPipe, out: &mut Vec<Input>) {
        self.link.on_timeout(now, plan);
        self.pump(plan, out);
    }

    /// Does what the link asks until it is idle; its inputs go to `out`.
    fn pump(&mut self, plan: &mut WriterPipe, out: &mut Vec<Input>) {
        loop {
            self.drop_stale_socket();
            match self.link.next_step(plan) {
                LinkStep::Connect { uri } => match connect(&uri) {
                    Ok(stream) => {
                        let gen = self.link.on_connected();
                        match spawn_reader(stream, gen, self.notify.clone()) {
                            Ok(socket) => self.socket = Some(socket),
                            Err(e) => {
                                // No reader, no connection: the first request fails unsent.
                                self.link.on_read(gen, None, plan);
                                self.link.on_connect_failed(TransportError::new(
                                    TransportErrorKind::Connect,
                                    e.to_string(),
                                ));
                            }
                        }
                    }
                    Err(e) => self.link.on_connect_failed(e),
                },
                LinkStep::Write { bytes } => {
                    let socket = self
                        .socket
                        .as_mut()
                        .expect("the link writes on a connection");
                    match socket.stream.write_all(&bytes) {
                        Ok(()) => self.link.on_written(plan, Instant::now()),
                        Err(_) => self.link.on_write_failed(plan),
                    }
                }
                LinkStep::Idle => break,
            }
        }
        self.drop_stale_socket();
        out.extend(self.link.take_inputs());
    }

    /// Shuts the socket down once the link dropped its connection.
    fn drop_stale_socket(&mut self) {
        if self
            .socket
            .as_ref()
            .is_some_and(|s| Some(s.gen) != self.link.connection())
        {
            if let Some(s) = self.socket.take() {
                let _ = s.stream.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Some(s) = &self.socket {
            let _ = s.stream.shutdown(Shutdown::Both);
        }
    }
}

fn connect(uri: &http::Uri) -> Result<TcpStream, TransportError> {
    let fail = |e: std::io::Error| TransportError::new(TransportErrorKind::Connect, e.to_string());
    let host = uri.host().unwrap_or("localhost");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let mut last = None;
    for addr in (host, port).to_socket_addrs().map_err(fail)? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(fail(last.unwrap_or_else(|| {
        std::io::Error::other("no address for host")
    })))
}

/// A thread reads a clone of `stream` and hands the bytes to the writer's thread, tagged `gen`.
fn spawn_reader(stream: TcpStream, gen: u64, notify: Notify) -> std::io::Result<Socket> {
    let mut reader = stream.try_clone()?;
    std::thread::Builder::new()
        .name("ds-writer-read".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        notify(gen, None);
                        return;
                    }
                    Ok(n) => {
                        if !notify(gen, Some(buf[..n].to_vec())) {
                            return;
                        }
                    }
                }
            }
        })?;
    Ok(Socket { stream, gen })
}
