//! A misbehaving HTTP/1.1 server on `127.0.0.1`: it reads each request (head and
//! `Content-Length` body), records it, and answers with whatever raw bytes a test scripts —
//! malformed status lines, enormous headers, bodies that lie about their length, endless
//! bodies, SSE streams that go silent — or with nothing at all.
//!
//! Every connection runs on its own thread. A [`Reply`] is a list of [`Step`]s: write bytes,
//! write a chunk over and over up to a bound (stopping as soon as the client goes away), pause,
//! or hang (hold the connection open, saying nothing, until the client closes it or the server
//! is dropped). After the steps the connection is closed, unless the reply says
//! [`Reply::keep_alive`], in which case the next request is read from it.
//!
//! Dropping the server stops accepting and shuts down every connection, so no test is left
//! with a thread blocked on a silent socket.
//!
//! ```no_run
//! use ds_tests::hostile::{HostileServer, Reply};
//! // Every request gets a status line no parser accepts.
//! let server = HostileServer::always(Reply::raw(b"HTTP/1.1 abc OK\r\n\r\n".to_vec()));
//! let url = server.stream_url("s");
//! // ... point a client at `url`, then look at what it sent:
//! let seen = server.requests();
//! # let _ = (url, seen);
//! ```

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::raw_http::{invalid, read_head};

/// One step of a scripted reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write these bytes.
    Write(Vec<u8>),
    /// Write `chunk` again and again until `total` bytes were written or the client went away.
    Repeat {
        /// The bytes repeated.
        chunk: Vec<u8>,
        /// The most bytes written in all (the bound of an "endless" body).
        total: u64,
    },
    /// Wait this long.
    Pause(Duration),
    /// Say nothing more, holding the connection open until the client closes it or the server
    /// is dropped.
    Hang,
    /// End the connection as a server that does not pipeline does: shut the write side (the
    /// client reads an EOF, not a reset) and discard what the client still sends until it
    /// closes.
    CloseGracefully,
}

/// A scripted answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// What to do, in order.
    pub steps: Vec<Step>,
    /// Read another request from the connection after the steps (otherwise it is closed).
    pub keep_alive: bool,
}

impl Reply {
    /// Writes `bytes`, then closes the connection.
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply {
            steps: vec![Step::Write(bytes.into())],
            keep_alive: false,
        }
    }

    /// Says nothing at all: the request is read, then the connection hangs.
    pub fn silent() -> Reply {
        Reply {
            steps: vec![Step::Hang],
            keep_alive: false,
        }
    }

    /// A well-formed response: the status line, `headers`, `Content-Length` and
    /// `Connection: close` (unless `headers` name them), and `body`; then the connection
    /// closes.
    pub fn http(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        Reply::raw(response_bytes(status, headers, body))
    }

    /// A response head only (status line, `headers`, blank line); add body steps with
    /// [`Reply::then`].
    pub fn head(status: u16, headers: &[(&str, &str)]) -> Reply {
        let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        Reply::raw(head.into_bytes())
    }

    /// Appends a step.
    pub fn then(mut self, step: Step) -> Reply {
        self.steps.push(step);
        self
    }

    /// Keeps the connection for the next request after this reply.
    pub fn keep_alive(mut self) -> Reply {
        self.keep_alive = true;
        self
    }
}

/// The bytes of a well-formed response (see [`Reply::http`]).
pub fn response_bytes(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has("content-length") && !has("transfer-encoding") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    if !has("connection") {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// One request as the server read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// Position in arrival order, from 0.
    pub index: usize,
    /// The connection it came on (from 0, in accept order).
    pub connection: u64,
    /// The method.
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// Header fields in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl SeenRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The raw value of query parameter `key`.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then_some(v)
        })
    }
}

type Handler = dyn Fn(&SeenRequest) -> Reply + Send + Sync;

struct Shared {
    handler: Box<Handler>,
    requests: Mutex<Vec<SeenRequest>>,
    next_conn: AtomicU64,
    written: AtomicU64,
    discarded: AtomicU64,
    stopping: AtomicBool,
    conns: Mutex<HashMap<u64, TcpStream>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running hostile server. Dropping it stops it and closes every connection.
pub struct HostileServer {
    addr: SocketAddr,
    url: String,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HostileServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostileServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl HostileServer {
    /// Starts a server answering each request with `handler(request)`.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub fn start(handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            requests: Mutex::new(Vec::new()),
            next_conn: AtomicU64::new(0),
            written: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("ds-hostile-accept".into())
                .spawn(move || accept_loop(&listener, &shared))
                .expect("spawn the accept thread")
        };
        HostileServer {
            addr,
            url: format!("http://{addr}"),
            shared,
            accept: Some(accept),
        }
    }

    /// Answers every request with `reply`.
    pub fn always(reply: Reply) -> Self {
        HostileServer::start(move |_| reply.clone())
    }

    /// Answers the n-th request (from 0) with `replies[n]`, and every later one with the last.
    ///
    /// # Panics
    /// If `replies` is empty.
    pub fn script(replies: Vec<Reply>) -> Self {
        assert!(!replies.is_empty(), "a script needs at least one reply");
        HostileServer::start(move |r| replies[r.index.min(replies.len() - 1)].clone())
    }

    /// A server that accepts connections, reads each request, and never answers.
    pub fn silent() -> Self {
        HostileServer::always(Reply::silent())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1/stream/{name}`.
    pub fn stream_url(&self, name: &str) -> String {
        format!("{}/v1/stream/{name}", self.url)
    }

    /// Every request read so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.shared.requests).clone()
    }

    /// How many requests were read so far.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.next_conn.load(Ordering::SeqCst)
    }

    /// How many bytes clients sent after a [`Step::Hang`] or [`Step::CloseGracefully`], which
    /// were read and thrown away unanswered (requests pipelined behind the one answered).
    pub fn bytes_discarded(&self) -> u64 {
        self.shared.discarded.load(Ordering::SeqCst)
    }

    /// How many response bytes were written so far, over all connections.
    pub fn bytes_written(&self) -> u64 {
        self.shared.written.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests were read; whether that happened within `timeout`.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.request_count() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.request_count() >= n
    }

    /// Waits until no connection is open any more (the client gave up); whether that happened
    /// within `timeout`.
    pub fn wait_for_no_connections(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if lock(&self.shared.conns).is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        lock(&self.shared.conns).is_empty()
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        for conn in lock(&self.shared.conns).values() {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.conns).insert(id, clone);
        }
        let shared = Arc::clone(shared);
        let _ = std::thread::Builder::new()
            .name("ds-hostile-conn".into())
            .spawn(move || {
                let _ = serve(id, stream, &shared);
                if let Some(s) = lock(&shared.conns).remove(&id) {
                    let _ = s.shutdown(Shutdown::Both);
                }
            });
    }
}

fn serve(conn: u64, stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        let mut hdrs = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut hdrs);
        match req.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return Err(invalid("bad request head")),
        }
        let headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let length: u64 = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = Vec::new();
        (&mut reader).take(length).read_to_end(&mut body)?;
        let seen = {
            let mut requests = lock(&shared.requests);
            let seen = SeenRequest {
                index: requests.len(),
                connection: conn,
                method: req.method.unwrap_or("").to_owned(),
                target: req.path.unwrap_or("").to_owned(),
                headers,
                body,
            };
            requests.push(seen.clone());
            seen
        };
        let reply = (shared.handler)(&seen);
        for step in &reply.steps {
            match step {
                Step::Write(bytes) => {
                    writer.write_all(bytes)?;
                    writer.flush()?;
                    shared
                        .written
                        .fetch_add(bytes.len() as u64, Ordering::SeqCst);
                }
                Step::Repeat { chunk, total } => {
                    let mut sent = 0u64;
                    while sent < *total && !chunk.is_empty() {
                        let n = (chunk.len() as u64).min(total - sent) as usize;
                        writer.write_all(&chunk[..n])?;
                        sent += n as u64;
                        shared.written.fetch_add(n as u64, Ordering::SeqCst);
                        if shared.stopping.load(Ordering::SeqCst) {
                            return Ok(());
                        }
                    }
                    writer.flush()?;
                }
                Step::Pause(d) => std::thread::sleep(*d),
                Step::Hang | Step::CloseGracefully => {
                    if *step == Step::CloseGracefully {
                        let _ = writer.shutdown(Shutdown::Write);
                    }
                    // Discard whatever the client sends until it closes (or we are dropped).
                    let mut sink = [0u8; 4096];
                    while let Ok(n @ 1..) = reader.read(&mut sink) {
                        shared.discarded.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    return Ok(());
                }
            }
        }
        if !reply.keep_alive {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// Runs `f` on its own thread and returns its result, or panics (failing the test) when it has
/// not finished within `limit`: a test of a hostile case must end, whatever the client does.
/// A thread that is still running when the limit passes is left behind (the test process ends
/// it).
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::Builder::new()
        .name(format!("ds-within-{what}"))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn a test thread");
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = worker.join();
            v
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: still running after {limit:?} (a hang)")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("{what}: the test thread ended without a result"),
        },
    }
}
