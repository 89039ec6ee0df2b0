//! An in-process, order-preserving TCP delay proxy on `127.0.0.1` (`--rtt-ms N`).
//!
//! Each accepted connection gets its own upstream connection (1:1, so keep-alive, pipelining
//! and closes are mirrored). Each direction has a reader thread and a writer thread joined by a
//! bounded queue: the reader stamps every piece it reads with `read time + one_way` and queues
//! it; the writer writes the pieces in the order they were read, each not before its stamp. So
//! bytes keep their order, every byte is delayed by `one_way` (plus scheduling noise), and a
//! direction holds at most [`QUEUE_PIECES`] pieces of at most [`PIECE`] bytes (when the queue
//! is full the reader stops reading and TCP flow control pushes back on the sender).
//!
//! An EOF read on one side is forwarded, after the same delay, as a write shutdown of the
//! other side; a failed write shuts both sockets of the pair. Dropping the proxy stops
//! accepting and shuts every socket, which ends every thread.
//!
//! The proxy also counts requests and responses, by following HTTP/1.1 message framing in
//! each direction ([`Framer`]): POST requests, every response status, and 409 answers. A
//! message whose framing it cannot follow (a response whose body runs until close) stops the
//! counting on that connection (the count is then a lower bound; `lost` says how often).
//!
//! With a trace ([`DelayProxy::start`]'s `trace`, `ds-bench --trace-posts`), the framer also
//! prints to stderr, in milliseconds since the proxy started, when each POST head and each
//! answer head reached the proxy: POSTs as the client sent them, answers as the server sent
//! them (so an answer and the next POST are one round trip plus the client's own time apart).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest piece read at once.
pub const PIECE: usize = 64 * 1024;
/// Pieces a direction may hold (so at most `PIECE * QUEUE_PIECES` = 16 MiB per direction).
pub const QUEUE_PIECES: usize = 256;
/// Longest head the framer follows before giving up on a connection.
const MAX_HEAD: usize = 64 * 1024;

/// What the proxy counted since the last [`DelayProxy::take_counts`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// POST requests (heads seen going upstream).
    pub posts: u64,
    /// Responses (final, non-1xx) seen coming back.
    pub responses: u64,
    /// Responses with status 409.
    pub conflicts: u64,
    /// Responses with another 4xx/5xx status.
    pub other_errors: u64,
    /// Connections on which the framing could not be followed (counts are lower bounds).
    pub lost: u64,
    /// Connections accepted.
    pub connections: u64,
}

#[derive(Debug, Default)]
struct Counters {
    /// When the proxy started, if it prints a trace of POSTs and answers.
    trace: Option<Instant>,
    posts: AtomicU64,
    responses: AtomicU64,
    conflicts: AtomicU64,
    other_errors: AtomicU64,
    lost: AtomicU64,
    connections: AtomicU64,
}

/// A running delay proxy; stopped on drop.
#[derive(Debug)]
pub struct DelayProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl DelayProxy {
    /// Starts a proxy on an ephemeral port of 127.0.0.1 forwarding to `upstream`, delaying each
    /// direction by `one_way`; `trace`: print each POST and answer head as it passes (see the
    /// module docs).
    pub fn start(
        upstream: SocketAddr,
        one_way: Duration,
        trace: bool,
    ) -> Result<DelayProxy, String> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| format!("delay proxy: bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters {
            trace: trace.then(Instant::now),
            ..Counters::default()
        });
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let (s, c, k) = (stop.clone(), counters.clone(), sockets.clone());
        let accept = std::thread::Builder::new()
            .name("delay-accept".into())
            .spawn(move || accept_loop(listener, upstream, one_way, &s, &c, &k))
            .map_err(|e| e.to_string())?;
        Ok(DelayProxy {
            addr,
            stop,
            counters,
            sockets,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The counts since the last call (and resets them).
    pub fn take_counts(&self) -> Counts {
        let c = &self.counters;
        let t = |a: &AtomicU64| a.swap(0, Ordering::Relaxed);
        Counts {
            posts: t(&c.posts),
            responses: t(&c.responses),
            conflicts: t(&c.conflicts),
            other_errors: t(&c.other_errors),
            lost: t(&c.lost),
            connections: t(&c.connections),
        }
    }

    /// Shuts every connection pair (clients see their connections closed).
    pub fn close_connections(&self) {
        let mut sockets = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        for s in sockets.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        self.close_connections();
    }
}

fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    one_way: Duration,
    stop: &AtomicBool,
    counters: &Arc<Counters>,
    sockets: &Mutex<Vec<TcpStream>>,
) {
    for client in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(upstream) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        counters.connections.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        {
            let mut s = sockets.lock().unwrap_or_else(|e| e.into_inner());
            // Forget pairs that are long gone (their clones are closed already or soon).
            if s.len() > 4096 {
                s.drain(..2048);
            }
            if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
                s.push(a);
                s.push(b);
            }
        }
        // Requests going up tell the response framer which answers have no body (HEAD).
        let heads = Arc::new(Mutex::new(VecDeque::new()));
        let up = Framer::new(false, heads.clone(), counters.clone());
        let down = Framer::new(true, heads, counters.clone());
        if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
            pipe(client, server, one_way, up);
            pipe(s2, c2, one_way, down);
        }
    }
}

/// Milliseconds from `start` to now.
fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// A piece of a direction and when it is due (`None`: EOF).
type Piece = Option<(Instant, Vec<u8>)>;

/// Forwards `from` to `to` with the delay, through a bounded queue.
fn pipe(from: TcpStream, to: TcpStream, one_way: Duration, mut framer: Framer) {
    let (tx, rx): (SyncSender<Piece>, Receiver<Piece>) = sync_channel(QUEUE_PIECES);
    let (from2, to2) = match (from.try_clone(), to.try_clone()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return,
    };
    let reader = move || {
        let mut from = from;
        loop {
            let mut buf = vec![0u8; PIECE];
            match from.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
                Ok(n) => {
                    let due = Instant::now() + one_way;
                    buf.truncate(n);
                    framer.feed(&buf);
                    if tx.send(Some((due, buf))).is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = move || {
        let mut to = to;
        while let Ok(item) = rx.recv() {
            match item {
                Some((due, bytes)) => {
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    if to.write_all(&bytes).is_err() {
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from2.shutdown(Shutdown::Both);
                        return;
                    }
                }
                None => {
                    // EOF from the other side, forwarded after the same delay as data.
                    std::thread::sleep(one_way);
                    let _ = to.shutdown(Shutdown::Write);
                    return;
                }
            }
        }
        drop(to2);
    };
    let _ = std::thread::Builder::new()
        .name("delay-read".into())
        .spawn(reader);
    let _ = std::thread::Builder::new()
        .name("delay-write".into())
        .spawn(writer);
}

/// Follows the framing of HTTP/1.1 messages in one direction, counting them.
#[derive(Debug)]
pub struct Framer {
    response: bool,
    /// Per request sent upstream, in order: whether it was a HEAD (its answer has no body).
    heads: Arc<Mutex<VecDeque<bool>>>,
    counters: Arc<Counters>,
    state: FrameState,
}

#[derive(Debug)]
enum FrameState {
    /// Reading a head (bytes so far).
    Head(Vec<u8>),
    /// Skipping this many body bytes.
    Body(u64),
    /// Reading a chunk-size line (bytes so far).
    ChunkSize(Vec<u8>),
    /// Skipping chunk data, then its CRLF (`left` counts the CRLF too).
    ChunkData(u64),
    /// Reading trailer lines after the last chunk (bytes of the current line).
    Trailers(Vec<u8>),
    /// Framing not followed any more.
    Lost,
}

impl Framer {
    fn new(response: bool, heads: Arc<Mutex<VecDeque<bool>>>, counters: Arc<Counters>) -> Self {
        Framer {
            response,
            heads,
            counters,
            state: FrameState::Head(Vec::new()),
        }
    }

    fn lose(&mut self) {
        self.counters.lost.fetch_add(1, Ordering::Relaxed);
        self.state = FrameState::Lost;
    }

    /// Takes the next bytes of the direction.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let trailers = matches!(self.state, FrameState::Trailers(_));
            match &mut self.state {
                FrameState::Lost => return,
                FrameState::Head(buf) => {
                    let old = buf.len();
                    buf.extend_from_slice(data);
                    let from = old.saturating_sub(3);
                    match memchr::memmem::find(&buf[from..], b"\r\n\r\n") {
                        None => {
                            if buf.len() > MAX_HEAD {
                                self.lose();
                            }
                            return;
                        }
                        Some(at) => {
                            let end = from + at + 4;
                            let head = std::mem::take(buf);
                            data = &data[end - old..];
                            self.on_head(&head[..end]);
                        }
                    }
                }
                FrameState::Body(left) => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        self.state = FrameState::Head(Vec::new());
                    }
                }
                FrameState::ChunkData(left) => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        self.state = FrameState::ChunkSize(Vec::new());
                    }
                }
                FrameState::ChunkSize(line) | FrameState::Trailers(line) => {
                    let Some(nl) = memchr::memchr(b'\n', data) else {
                        line.extend_from_slice(data);
                        if line.len() > MAX_HEAD {
                            self.lose();
                        }
                        return;
                    };
                    line.extend_from_slice(&data[..nl]);
                    data = &data[nl + 1..];
                    let text = String::from_utf8_lossy(line);
                    let text = text.trim();
                    if trailers {
                        self.state = if text.is_empty() {
                            FrameState::Head(Vec::new())
                        } else {
                            FrameState::Trailers(Vec::new())
                        };
                    } else {
                        let hex = text.split(';').next().unwrap_or("").trim();
                        match u64::from_str_radix(hex, 16) {
                            Ok(0) => self.state = FrameState::Trailers(Vec::new()),
                            Ok(n) => self.state = FrameState::ChunkData(n + 2),
                            Err(_) => self.lose(),
                        }
                    }
                }
            }
        }
    }

    fn on_head(&mut self, head: &[u8]) {
        let text = String::from_utf8_lossy(head);
        let mut lines = text.split("\r\n");
        let first = lines.next().unwrap_or("");
        let mut length = None;
        let mut chunked = false;
        for l in lines {
            let Some((name, value)) = l.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<u64>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().ends_with("chunked");
            }
        }
        let no_body;
        if self.response {
            let status: u16 = first
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if (100..200).contains(&status) {
                self.state = FrameState::Head(Vec::new());
                return;
            }
            let head_request = self
                .heads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()
                .unwrap_or(false);
            let c = &self.counters;
            if let Some(start) = c.trace {
                eprintln!("trace {:>9.1} ms  answer {status}", ms_since(start));
            }
            c.responses.fetch_add(1, Ordering::Relaxed);
            if status == 409 {
                c.conflicts.fetch_add(1, Ordering::Relaxed);
            } else if status >= 400 {
                c.other_errors.fetch_add(1, Ordering::Relaxed);
            }
            no_body = head_request || status == 204 || status == 304;
            if !no_body && !chunked && length.is_none() {
                // The body runs until close.
                self.lose();
                return;
            }
        } else {
            let method = first.split(' ').next().unwrap_or("");
            if method == "POST" {
                if let Some(start) = self.counters.trace {
                    let body = length.map_or("?".to_owned(), |n| n.to_string());
                    eprintln!("trace {:>9.1} ms  POST {body} B", ms_since(start));
                }
                self.counters.posts.fetch_add(1, Ordering::Relaxed);
            }
            self.heads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(method == "HEAD");
            no_body = false;
        }
        self.state = if no_body {
            FrameState::Head(Vec::new())
        } else if chunked {
            FrameState::ChunkSize(Vec::new())
        } else {
            match length {
                Some(0) | None => FrameState::Head(Vec::new()),
                Some(n) => FrameState::Body(n),
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framer(response: bool, heads: &[bool]) -> (Framer, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let q = Arc::new(Mutex::new(heads.iter().copied().collect()));
        (Framer::new(response, q, counters.clone()), counters)
    }

    #[test]
    fn counts_pipelined_responses_fed_in_every_split() {
        let wire: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nHTTP/1HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\nT: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        for step in [1, 2, 3, 7, wire.len()] {
            let (mut f, c) = framer(true, &[false, false, true, false]);
            for piece in wire.chunks(step) {
                f.feed(piece);
            }
            assert_eq!(c.responses.load(Ordering::Relaxed), 4, "step {step}");
            assert_eq!(c.conflicts.load(Ordering::Relaxed), 1, "step {step}");
            assert_eq!(c.lost.load(Ordering::Relaxed), 0, "step {step}");
        }
    }

    #[test]
    fn counts_posts() {
        let wire: &[u8] = b"POST /s HTTP/1.1\r\nContent-Length: 4\r\n\r\nPOSTPOST /s HTTP/1.1\r\ncontent-length: 0\r\n\r\nHEAD /s HTTP/1.1\r\n\r\n";
        for step in [1, 5, wire.len()] {
            let (mut f, c) = framer(false, &[]);
            for piece in wire.chunks(step) {
                f.feed(piece);
            }
            assert_eq!(c.posts.load(Ordering::Relaxed), 2);
            assert_eq!(
                f.heads.lock().unwrap().iter().copied().collect::<Vec<_>>(),
                [false, false, true]
            );
        }
    }

    #[test]
    fn delays_and_keeps_order() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = echo.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = echo.accept().unwrap();
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => s.write_all(&buf[..n]).unwrap(),
                }
            }
        });
        let proxy = DelayProxy::start(upstream, Duration::from_millis(10), false).unwrap();
        let mut c = TcpStream::connect(proxy.addr).unwrap();
        let t = Instant::now();
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut c2 = c.try_clone().unwrap();
        let s2 = sent.clone();
        let w = std::thread::spawn(move || c2.write_all(&s2).unwrap());
        let mut got = vec![0u8; sent.len()];
        c.read_exact(&mut got).unwrap();
        w.join().unwrap();
        assert_eq!(got, sent);
        assert!(t.elapsed() >= Duration::from_millis(20));
    }
}
