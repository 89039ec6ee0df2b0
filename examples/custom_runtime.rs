//! Embedding ds-proto in a runtime of your own: the template for porting.
//!
//! ```text
//! cargo run --example custom_runtime                  # against the embedded server
//! DS_URL=http://127.0.0.1:4437 cargo run --example custom_runtime
//! ```
//!
//! This program drives ds-proto's [`Producer`] (exactly-once writer) and [`Reader`] (live
//! reader) with **one hand-written, single-threaded loop** over non-blocking
//! `std::net::TcpStream`s, speaking HTTP/1.1 through ds-proto's sans-IO codec
//! ([`ds_proto::http1::Connection`], feature `http1`). No tokio, hyper or ureq is involved in
//! the loop (only the embedded server, when `DS_URL` is not set, runs on a background thread
//! through `ExampleServer`).
//!
//! Porting it to another runtime (an embedded executor, a game loop, glommio, a WASI host, a
//! durable-execution engine...) means replacing three things, each marked `PORT:` below:
//!
//! 1. **Sockets**: how a connection is opened, written and read (here: `std::net`, non-blocking).
//! 2. **Waiting**: how the loop sleeps until "a socket is ready or the earliest timer is due"
//!    (here: a short sleep, because `std` has no readiness API; use epoll/kqueue/io_uring, your
//!    executor's wakers, or your host's poll call).
//! 3. **The clock**: where `now` comes from (here: `std::time::Instant::now()`; a simulation
//!    would use a virtual clock, a durable-execution engine its journaled time).
//!
//! Everything else is the contract every driver follows (see ds-proto's crate docs, "Writing
//! your own driver"):
//!
//! ```text
//! loop {
//!     now = clock()
//!     for each machine m:
//!         while let Some(id) = m.poll_cancel()       -> drop the connection carrying id
//!         while let Some(t)  = m.poll_transmit(now)  -> send t on an idle (or new) connection
//!         while let Some(e)  = m.poll_event()        -> hand e to the application
//!     for each connection with an exchange:
//!         write what is pending; read what arrived -> codec.feed(bytes) / codec.on_eof()
//!         while let Some(input) = codec.poll_input() -> owner.handle_input(input, now)
//!         past the Transmit's deadline               -> owner.handle_input(Failed(Timeout))
//!     for each machine m: if m.poll_timeout() <= now -> m.handle_timeout(now)
//!     wait until: a socket is ready, or the earliest poll_timeout / deadline, or a command
//! }
//! ```
//!
//! Every request in flight has a connection of its own (HTTP/1.1 does not multiplex): here the
//! reader's long-poll waits on one connection while the producer's appends go on others.
//! Connections are kept alive and reused unless the codec says
//! [`must_close`](ds_proto::http1::Connection::must_close).

use bytes::Bytes;
use ds_examples::ExampleServer;
use ds_proto::http1::{Connection, Limits};
use ds_proto::ops::{self, CreateOptions, RequestExtras};
use ds_proto::producer::{Producer, ProducerConfig, ProducerEvent};
use ds_proto::reader::{ReadMode, Reader, ReaderConfig, ReaderEvent};
use ds_proto::{Input, RequestId, Transmit, TransportError, TransportErrorKind};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How many messages the producer writes.
const MESSAGES: usize = 300;

/// PORT (the clock): where time comes from. The machines only ever see the `Instant`s given.
#[allow(clippy::disallowed_methods)] // the workspace clippy.toml is written for ds-proto
fn clock() -> Instant {
    Instant::now()
}

/// PORT (waiting): blocks until something may have happened. Plain `std` has no readiness
/// API, so this sleeps; a runtime waits on its reactor (epoll, kqueue, io_uring, wakers) and its
/// timer for `nap` at most.
#[allow(clippy::disallowed_methods)] // the workspace clippy.toml is written for ds-proto
fn wait(nap: Duration) {
    std::thread::sleep(nap);
}

/// Which state machine an exchange belongs to. Request ids are unique per machine, not
/// globally, so inputs are routed by (owner, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Reader,
    Producer,
}

/// One HTTP/1.1 connection: a non-blocking socket and the sans-IO codec that frames it.
#[derive(Debug)]
struct Conn {
    /// PORT (sockets): your runtime's connection type.
    socket: TcpStream,
    codec: Connection,
    /// `host:port`, to reuse the connection for the same origin only.
    origin: String,
    /// Encoded request bytes not yet written.
    pending: Vec<u8>,
    /// The exchange this connection carries, and when to give up on it.
    exchange: Option<(Owner, RequestId, Option<Instant>)>,
}

/// The I/O half of the driver: a keep-alive pool and the connections in use.
#[derive(Debug, Default)]
struct Io {
    idle: Vec<Conn>,
    busy: Vec<Conn>,
    opened: usize,
    reused: usize,
}

impl Io {
    /// Starts `transmit` on an idle connection to its origin, or on a new one. A failure to
    /// start is reported back as the exchange's `Input::Failed`.
    fn start(&mut self, owner: Owner, transmit: Transmit) -> Result<(), Input> {
        let fail = |kind, message: String| Input::Failed {
            id: transmit.id,
            error: TransportError::new(kind, message),
        };
        let uri = transmit.request.uri();
        if uri.scheme_str() != Some("http") {
            // A port with TLS wraps the socket in a TLS session (rustls has a sans-IO API too).
            return Err(fail(
                TransportErrorKind::Tls,
                "this template speaks plain http only".into(),
            ));
        }
        let origin = format!(
            "{}:{}",
            uri.host().unwrap_or("localhost"),
            uri.port_u16().unwrap_or(80)
        );
        let mut conn = match self.take_idle(&origin) {
            Some(conn) => {
                self.reused += 1;
                conn
            }
            None => match connect(&origin) {
                Ok(socket) => {
                    self.opened += 1;
                    Conn {
                        socket,
                        codec: Connection::new(Limits::default()),
                        origin,
                        pending: Vec::new(),
                        exchange: None,
                    }
                }
                Err(e) => return Err(fail(TransportErrorKind::Connect, e.to_string())),
            },
        };
        if let Err(e) = conn.codec.send(&transmit, &mut conn.pending) {
            return Err(fail(TransportErrorKind::Protocol, e.to_string()));
        }
        conn.exchange = Some((owner, transmit.id, transmit.deadline));
        self.busy.push(conn);
        Ok(())
    }

    /// An idle connection to `origin` that the server has not closed meanwhile.
    fn take_idle(&mut self, origin: &str) -> Option<Conn> {
        while let Some(i) = self.idle.iter().position(|c| c.origin == origin) {
            let mut conn = self.idle.swap_remove(i);
            // A keep-alive connection the server closed while idle reads EOF: drop it. (If it
            // closes right after this check, the exchange fails with ConnectionReset and the
            // machine retries: both machines' requests are safe to repeat.)
            let mut probe = [0u8; 1];
            match conn.socket.read(&mut probe) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Some(conn),
                _ => drop(conn),
            }
        }
        None
    }

    /// Abandons the exchange `id` of `owner`: its connection is closed (its response, if any
    /// comes, is never read).
    fn cancel(&mut self, owner: Owner, id: RequestId) {
        self.busy
            .retain(|c| !matches!(c.exchange, Some((o, i, _)) if o == owner && i == id));
    }

    /// Moves bytes both ways on every busy connection and collects the inputs they produced.
    /// Returns whether anything happened.
    fn poll(&mut self, now: Instant, inputs: &mut Vec<(Owner, Input)>) -> bool {
        let before = inputs.len();
        let mut progress = false;
        let mut buf = [0u8; 16 * 1024];
        let mut i = 0;
        while i < self.busy.len() {
            let conn = &mut self.busy[i];
            let (owner, id, deadline) = conn.exchange.expect("busy connections carry one");
            let mut broken = None;
            // PORT (sockets): write what is pending...
            while !conn.pending.is_empty() && broken.is_none() {
                match conn.socket.write(&conn.pending) {
                    Ok(0) => broken = Some("wrote nothing".to_string()),
                    Ok(n) => {
                        conn.pending.drain(..n);
                        progress = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => broken = Some(e.to_string()),
                }
            }
            // ...and read what arrived, feeding the codec in whatever pieces the socket gives.
            while broken.is_none() {
                match conn.socket.read(&mut buf) {
                    Ok(0) => {
                        conn.codec.on_eof();
                        progress = true;
                        break;
                    }
                    Ok(n) => {
                        conn.codec.feed(&buf[..n]);
                        progress = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => broken = Some(e.to_string()),
                }
            }
            // The codec turns bytes into the inputs the machine expects: Head, Body*, End.
            let mut over = false;
            while let Some(input) = conn.codec.poll_input() {
                over = matches!(input, Input::End { .. } | Input::Failed { .. });
                inputs.push((owner, input));
            }
            if !over {
                if let Some(message) = broken {
                    inputs.push((
                        owner,
                        failed(id, TransportErrorKind::ConnectionReset, message),
                    ));
                    over = true;
                    conn.codec.on_eof(); // the socket is unusable: never reuse it
                } else if deadline.is_some_and(|d| now >= d) {
                    // The codec has no clock: deadlines are the driver's job.
                    inputs.push((
                        owner,
                        failed(id, TransportErrorKind::Timeout, "deadline".into()),
                    ));
                    over = true;
                    conn.codec.on_eof();
                }
            }
            if over {
                let mut conn = self.busy.swap_remove(i);
                conn.exchange = None;
                if !conn.codec.must_close() {
                    self.idle.push(conn); // keep-alive: reuse it for the next request
                }
            } else {
                i += 1;
            }
        }
        progress || inputs.len() > before
    }

    /// The earliest exchange deadline.
    fn next_deadline(&self) -> Option<Instant> {
        self.busy.iter().filter_map(|c| c.exchange?.2).min()
    }
}

fn failed(id: RequestId, kind: TransportErrorKind, message: String) -> Input {
    Input::Failed {
        id,
        error: TransportError::new(kind, message),
    }
}

/// PORT (sockets): opens a connection. `std` only connects in blocking mode; a real runtime
/// connects asynchronously and reports a failure as `TransportErrorKind::Connect`.
fn connect(origin: &str) -> std::io::Result<TcpStream> {
    let socket = TcpStream::connect(origin)?;
    socket.set_nodelay(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A one-shot operation outside the loop (creating the stream), with the same codec on a
/// blocking socket: build the request with `ds_proto::ops::*_request`, interpret the answer
/// with `ds_proto::ops::*_response`.
fn one_shot(request: http::Request<Bytes>) -> std::io::Result<http::Response<Bytes>> {
    let uri = request.uri();
    let origin = format!(
        "{}:{}",
        uri.host().unwrap_or("localhost"),
        uri.port_u16().unwrap_or(80)
    );
    let mut socket = TcpStream::connect(origin)?;
    let mut codec = Connection::new(Limits::default());
    let transmit = Transmit {
        id: RequestId(0),
        request,
        deadline: None,
    };
    let mut out = Vec::new();
    codec
        .send(&transmit, &mut out)
        .map_err(std::io::Error::other)?;
    socket.write_all(&out)?;
    let (mut head, mut body) = (None, Vec::new());
    let mut buf = [0u8; 4096];
    loop {
        while let Some(input) = codec.poll_input() {
            match input {
                Input::Head { parts, .. } => head = Some(parts),
                Input::Body { chunk, .. } => body.extend_from_slice(&chunk),
                Input::End { .. } => {
                    let parts = head.take().expect("a head before the end");
                    return Ok(http::Response::from_parts(parts, Bytes::from(body)));
                }
                Input::Failed { error, .. } => return Err(std::io::Error::other(error)),
            }
        }
        match socket.read(&mut buf)? {
            0 => codec.on_eof(),
            n => codec.feed(&buf[..n]),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = ExampleServer::from_env()?;
    let url = format!("{}{}", server.url(), server.unique_path("custom-runtime"));

    // Create the stream (a one-shot operation: builder + interpreter).
    let request = ops::create_request(
        &url,
        &CreateOptions::with_content_type("text/plain"),
        &RequestExtras::default(),
    )?;
    let response = one_shot(request)?;
    let (parts, body) = response.into_parts();
    let created = ops::create_response(&url, &parts, &body)?;
    println!("created {url} (new: {})", created.created);

    // The two machines. Seeds would come from OS entropy in a real driver (jitter only).
    let start = clock();
    let mut producer = Producer::new(
        ProducerConfig {
            content_type: "text/plain".into(),
            linger: Duration::from_millis(5),
            max_in_flight: 2, // two batches on two connections at once
            rng_seed: 1,
            ..ProducerConfig::new(url.as_str(), "custom-runtime-writer")
        },
        start,
    )?;
    let mut reader = Reader::new(
        ReaderConfig {
            mode: ReadMode::Auto, // catch up, then long-poll
            rng_seed: 2,
            ..ReaderConfig::new(url.as_str())
        },
        start,
    )?;

    let mut io = Io::default();
    let mut inputs = Vec::new();
    let mut written = Vec::new();
    let mut read = Vec::new();
    let (mut next_message, mut closing) = (0usize, false);
    let (mut acked_batches, mut reads, mut producer_requests) = (0usize, 0usize, 0usize);
    let (mut writer_done, mut reader_done) = (false, false);
    let give_up = start + Duration::from_secs(60);

    while !(writer_done && reader_done) {
        let now = clock();
        if now > give_up {
            return Err("the example did not finish within 60 s".into());
        }
        let mut progress = false;

        // The application: one message per millisecond, then close the stream.
        if next_message < MESSAGES && now >= start + Duration::from_millis(next_message as u64) {
            let line = format!("message {next_message}\n");
            producer.append(Bytes::from(line.clone()), now)?; // never blocks on the network
            written.extend_from_slice(line.as_bytes());
            next_message += 1;
            progress = true;
        } else if next_message == MESSAGES && !closing {
            producer.close(now)?; // flushes, then closes the stream with the final batch
            closing = true;
            progress = true;
        }

        // Drain the machines' outputs: cancels, transmits, events.
        while let Some(id) = reader.poll_cancel() {
            io.cancel(Owner::Reader, id);
        }
        while let Some(t) = reader.poll_transmit(now) {
            reads += 1;
            if let Err(input) = io.start(Owner::Reader, t) {
                inputs.push((Owner::Reader, input));
            }
        }
        while let Some(event) = reader.poll_event() {
            progress = true;
            match event {
                ReaderEvent::Data(chunk) => read.extend_from_slice(&chunk.data),
                ReaderEvent::Closed { offset } => {
                    println!("reader: end of stream at {offset} after {reads} requests");
                    reader_done = true;
                }
                ReaderEvent::Retrying { error, delay, .. } => {
                    eprintln!("reader: retrying in {delay:?}: {error}")
                }
                ReaderEvent::Failed(e) => return Err(format!("reader failed: {e}").into()),
                _ => {}
            }
        }
        while let Some(id) = producer.poll_cancel() {
            io.cancel(Owner::Producer, id);
        }
        while let Some(t) = producer.poll_transmit(now) {
            producer_requests += 1;
            if let Err(input) = io.start(Owner::Producer, t) {
                inputs.push((Owner::Producer, input));
            }
        }
        while let Some(event) = producer.poll_event() {
            progress = true;
            match event {
                ProducerEvent::Acked { .. } => acked_batches += 1,
                ProducerEvent::Closed { final_offset } => {
                    println!(
                        "producer: {MESSAGES} messages in {acked_batches} batches \
                         ({producer_requests} requests); stream closed at {}",
                        final_offset.map(|o| o.to_string()).unwrap_or_default()
                    );
                    writer_done = true;
                }
                ProducerEvent::Failed { reason, .. } => {
                    return Err(format!("append failed: {reason}").into())
                }
                ProducerEvent::CloseFailed { reason } => {
                    return Err(format!("close failed: {reason}").into())
                }
                _ => {}
            }
        }

        // Sockets: move bytes, and feed what the codec decoded to the machine it belongs to.
        progress |= io.poll(now, &mut inputs);
        for (owner, input) in inputs.drain(..) {
            match owner {
                Owner::Reader => reader.handle_input(input, now),
                Owner::Producer => producer.handle_input(input, now),
            }
        }

        // Timers: linger expiry, retry backoffs. Calling early or twice is harmless.
        if reader.poll_timeout().is_some_and(|t| t <= now) {
            reader.handle_timeout(now);
            progress = true;
        }
        if producer.poll_timeout().is_some_and(|t| t <= now) {
            producer.handle_timeout(now);
            progress = true;
        }

        // Wait for the first of: a socket ready, a timer, the next application command.
        // PORT (waiting): with a readiness API, block on it until `wake_at`. Plain `std` has
        // none, so this template sleeps at most 1 ms between looks at the sockets.
        if !progress {
            let next_command = (next_message < MESSAGES)
                .then(|| start + Duration::from_millis(next_message as u64));
            let wake_at = [
                reader.poll_timeout(),
                producer.poll_timeout(),
                io.next_deadline(),
                next_command,
            ]
            .into_iter()
            .flatten()
            .min();
            let mut nap = Duration::from_millis(1);
            if let Some(at) = wake_at {
                nap = nap.min(at.saturating_duration_since(now));
            }
            wait(nap);
        }
    }

    println!(
        "connections: {} opened, {} reuses of kept-alive ones",
        io.opened, io.reused
    );
    assert_eq!(read, written, "the reader saw every byte once, in order");
    println!(
        "ok: {} bytes written exactly once and read back live, in {:?}",
        read.len(),
        clock() - start
    );
    Ok(())
}
