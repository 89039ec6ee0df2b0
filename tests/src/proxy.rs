//! A recording HTTP/1.1 forwarding proxy on `127.0.0.1`.
//!
//! Each client connection gets its own upstream connection to the target (1:1), so keep-alive,
//! pipelining and connection closes are mirrored faithfully. Requests are parsed (with
//! `httparse`) only to record them and to find where each body ends (`Content-Length` or
//! chunked); they are forwarded byte for byte, `Host` included. Responses are not parsed at all:
//! upstream bytes are written to the client as soon as they arrive, so SSE and long-poll
//! responses stream through unbuffered, whatever their framing.
//!
//! A request is recorded as soon as its head has arrived, before anything is forwarded, so a
//! test that has seen a response always finds its request recorded (a long-poll in flight is
//! recorded too). The record then says when the request was wholly forwarded
//! ([`RecordedRequest::forwarded`]) and when its answer began
//! ([`RecordedRequest::answer_began`]), so a test can wait for what happened instead of
//! sleeping: "the long-poll reached the server and is unanswered, now append".
//!
//! When either side closes, the proxy closes both sides of that connection pair (so a client
//! that half-closes after sending cannot wait for the answer; HTTP clients do not do that). A
//! malformed request head also closes the pair.
//!
//! ```no_run
//! use ds_tests::{raw_http, Proxy, RefServer};
//! let server = RefServer::start();
//! let proxy = Proxy::start(server.url());
//! let url = proxy.url_for(&server.stream_url("p"));
//! raw_http::request("PUT", &url, &[("Content-Type", "text/plain"), ("Authorization", "Bearer t")], b"").unwrap();
//! assert_eq!(proxy.count_matching(|r| r.header("authorization") == Some("Bearer t")), 1);
//! ```

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::raw_http::{self, invalid, is_chunked, parse_chunk_size, read_head};

/// One request as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Position in the proxy's lifetime order, from 0 (not reset by [`Proxy::clear`]).
    pub seq: u64,
    /// Id of the client connection it came on (from 0, in accept order): equal ids mean the
    /// client reused a keep-alive connection.
    pub connection: u64,
    /// The method, e.g. `GET`.
    pub method: String,
    /// The request target as sent: path and query, e.g. `/v1/stream/x?offset=-1&live=sse`.
    pub target: String,
    /// Header fields in the order sent, names spelled as the client sent them.
    pub headers: Vec<(String, String)>,
    /// Number of body bytes: the `Content-Length`, or for a chunked body the de-chunked length
    /// (0 until its last chunk has arrived).
    pub body_len: u64,
    /// Whether the whole request (head and body) has been written to the upstream
    /// connection, so it is on its way to the server (or there).
    pub forwarded: bool,
    /// When the first response bytes after this request came back on its connection, as the
    /// proxy's [`seq`](RecordedRequest::seq) counter then: every request with a smaller `seq`
    /// had been recorded before any of this answer reached the proxy, every request with a
    /// `seq` at least this large was recorded after. `None` while nothing has come back.
    /// (Responses are not parsed: this assumes the client waits for an answer before it sends
    /// the next request on a connection, as HTTP/1.1 clients without pipelining do.)
    pub answer_began: Option<u64>,
}

impl RecordedRequest {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The raw query string (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The raw (not percent-decoded) value of query parameter `key`; `Some("")` for a bare key.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then_some(v)
        })
    }

    /// The first value of header `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether header `name` is present (compared case-insensitively).
    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// Whether it was wholly forwarded and no answer to it has come back yet: a long-poll the
    /// server holds, for instance.
    pub fn is_pending(&self) -> bool {
        self.forwarded && self.answer_began.is_none()
    }
}

#[derive(Debug, Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    next_seq: AtomicU64,
    next_conn: AtomicU64,
    stopping: AtomicBool,
    /// Live connections: (client, upstream) clones, to shut them down when the proxy stops.
    conns: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
}

impl Shared {
    /// Sets `f` on the record of request `seq` (gone after a [`Proxy::clear`]).
    fn update(&self, seq: u64, f: impl FnOnce(&mut RecordedRequest)) {
        if let Some(r) = lock(&self.requests).iter_mut().rev().find(|r| r.seq == seq) {
            f(r);
        }
    }

    /// Response bytes came back on connection `conn`: marks its requests without an answer.
    fn answer_began(&self, conn: u64) {
        let mut requests = lock(&self.requests);
        let now = self.next_seq.load(Ordering::SeqCst);
        for r in requests.iter_mut().rev() {
            if r.connection == conn && r.answer_began.is_none() {
                r.answer_began = Some(now);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running proxy. Dropping it stops accepting and closes every connection through it.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    url: String,
    target: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy on an ephemeral port of `127.0.0.1` forwarding to `target`, an
    /// `http://host:port` base URL (any path in it is ignored: paths are forwarded unchanged).
    ///
    /// # Panics
    /// If `target` is not a usable `http://` URL or the listener cannot be bound.
    pub fn start(target: &str) -> Proxy {
        Proxy::try_start(target).unwrap_or_else(|e| panic!("cannot start a proxy to {target}: {e}"))
    }

    /// Like [`Proxy::start`], returning errors.
    pub fn try_start(target: &str) -> io::Result<Proxy> {
        let parts = raw_http::parse_url(target)?;
        let target = (parts.host.as_str(), parts.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| invalid(format!("{target} resolves to no address")))?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("ds-proxy-accept".into())
                .spawn(move || accept_loop(&listener, target, &shared))?
        };
        Ok(Proxy {
            addr,
            url: format!("http://{addr}"),
            target,
            shared,
            accept: Some(accept),
        })
    }

    /// The proxy's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The upstream address requests are forwarded to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// `url` (e.g. a stream URL of the target server) with its scheme and authority replaced
    /// by the proxy's; path and query are kept.
    pub fn url_for(&self, url: &str) -> String {
        match raw_http::parse_url(url) {
            Ok(parts) => format!("{}{}", self.url, parts.target),
            Err(_) if url.starts_with('/') => format!("{}{url}", self.url),
            Err(_) => format!("{}/{url}", self.url),
        }
    }

    /// A copy of every request recorded since the start or the last [`Proxy::clear`].
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// How many recorded requests satisfy `pred`.
    pub fn count_matching(&self, pred: impl Fn(&RecordedRequest) -> bool) -> usize {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| pred(r))
            .count()
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Waits until `pred` holds for the recorded requests, checking every 5 ms; returns whether
    /// it did before `timeout` (a bound against hanging, not a measurement).
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&[RecordedRequest]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&lock(&self.shared.requests)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// How many client connections the proxy has accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.next_conn.load(Ordering::SeqCst)
    }

    /// How many client connections are open now.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.conns).len()
    }

    /// Waits until no client connection is open, checking every 5 ms; whether that happened
    /// within `timeout` (a bound against hanging). A connection is forgotten only once its
    /// client closed it and everything it sent was read, so after the clients are dropped this
    /// waits until every request they sent is recorded.
    pub fn wait_for_no_connections(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.open_connections() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Closes every open connection through the proxy (both sides), as a network failure
    /// would; the proxy keeps accepting new ones.
    pub fn close_all_connections(&self) {
        for (client, upstream) in lock(&self.shared.conns).values() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
        self.close_all_connections();
    }
}

fn accept_loop(listener: &TcpListener, target: SocketAddr, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let shared = Arc::clone(shared);
        let _ = std::thread::Builder::new()
            .name("ds-proxy-conn".into())
            .spawn(move || serve_connection(client, target, &shared));
    }
}

fn serve_connection(client: TcpStream, target: SocketAddr, shared: &Arc<Shared>) {
    let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
    let _ = client.set_nodelay(true);
    let upstream = match TcpStream::connect_timeout(&target, Duration::from_secs(10)) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("proxy cannot reach {target}: {e}");
            let _ = (&client).write_all(
                format!(
                    "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                    msg.len()
                )
                .as_bytes(),
            );
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let (Ok(client_w), Ok(upstream_r), Ok(client_reg), Ok(upstream_reg)) = (
        client.try_clone(),
        upstream.try_clone(),
        client.try_clone(),
        upstream.try_clone(),
    ) else {
        return;
    };
    lock(&shared.conns).insert(id, (client_reg, upstream_reg));
    if shared.stopping.load(Ordering::SeqCst) {
        // The proxy began stopping while we registered: it may have missed us.
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
    }

    // Set when a request is recorded, cleared when response bytes next come back.
    let awaiting = Arc::new(AtomicBool::new(false));

    // Responses: raw bytes upstream -> client, as they arrive.
    let responses = {
        let (shared, awaiting) = (Arc::clone(shared), Arc::clone(&awaiting));
        std::thread::Builder::new()
            .name("ds-proxy-resp".into())
            .spawn(move || pump_responses(upstream_r, client_w, id, &shared, &awaiting))
    };

    let _ = pump_requests(id, client, &upstream, shared, &awaiting);

    if let Some(conn) = lock(&shared.conns).remove(&id) {
        let _ = conn.0.shutdown(Shutdown::Both);
        let _ = conn.1.shutdown(Shutdown::Both);
    }
    if let Ok(handle) = responses {
        let _ = handle.join();
    }
}

fn pump_responses(
    mut upstream: TcpStream,
    mut client: TcpStream,
    conn: u64,
    shared: &Shared,
    awaiting: &AtomicBool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match upstream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                // Marked before the client can see any of it.
                if awaiting.swap(false, Ordering::SeqCst) {
                    shared.answer_began(conn);
                }
                if client.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    // The server closed (or the client went away): close the other side too, as a direct
    // connection would have been.
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
}

fn pump_requests(
    conn: u64,
    client: TcpStream,
    mut upstream: &TcpStream,
    shared: &Shared,
    awaiting: &AtomicBool,
) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(64 * 1024, client);
    while let Some(head) = read_head(&mut reader)? {
        let mut hdrs = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut hdrs);
        match req.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(invalid("incomplete request head")),
            Err(e) => return Err(invalid(format!("bad request head: {e}"))),
        }
        let method = req.method.unwrap_or("").to_owned();
        let target = req.path.unwrap_or("").to_owned();
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
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let chunked = is_chunked(find("transfer-encoding"));
        let length = match (chunked, find("content-length")) {
            (false, Some(v)) => Some(
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| invalid(format!("bad Content-Length {v:?}")))?,
            ),
            _ => None,
        };

        // Record before forwarding anything, so the record exists before any response can
        // reach the client.
        let seq = shared.next_seq.fetch_add(1, Ordering::SeqCst);
        lock(&shared.requests).push(RecordedRequest {
            seq,
            connection: conn,
            method,
            target,
            headers,
            body_len: length.unwrap_or(0),
            forwarded: false,
            answer_began: None,
        });
        awaiting.store(true, Ordering::SeqCst);

        upstream.write_all(&head)?;
        if chunked {
            forward_chunked(&mut reader, &mut upstream, |total| {
                shared.update(seq, |r| r.body_len = total);
            })?;
        } else if let Some(len) = length {
            let copied = io::copy(&mut (&mut reader).take(len), &mut upstream)?;
            if copied < len {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        upstream.flush()?;
        shared.update(seq, |r| r.forwarded = true);
    }
    Ok(())
}

/// Forwards a chunked body verbatim; returns its de-chunked length, which it also passes to
/// `at_end` just before forwarding the last chunk.
fn forward_chunked<R: BufRead, W: Write>(
    reader: &mut R,
    out: &mut W,
    at_end: impl FnOnce(u64),
) -> io::Result<u64> {
    let mut at_end = Some(at_end);
    let mut total = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let size = parse_chunk_size(&line)?;
        if size == 0 {
            if let Some(f) = at_end.take() {
                f(total);
            }
        }
        out.write_all(&line)?;
        if size == 0 {
            // Trailers, through the blank line.
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line)? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                out.write_all(&line)?;
                if line == b"\r\n" || line == b"\n" {
                    return Ok(total);
                }
            }
        }
        let copied = io::copy(&mut reader.take(size), out)?;
        if copied < size {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        total += size;
        line.clear();
        reader.read_until(b'\n', &mut line)?; // the CRLF after the data
        out.write_all(&line)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_chunked_verbatim() {
        let raw: &[u8] = b"3\r\nabc\r\n2;e=1\r\nde\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let mut reader = raw;
        let mut out = Vec::new();
        let mut seen = None;
        let n = forward_chunked(&mut reader, &mut out, |t| seen = Some(t)).unwrap();
        assert_eq!((n, seen), (5, Some(5)));
        assert_eq!(out, &raw[..raw.len() - 4]);
        assert_eq!(reader, b"NEXT");
    }

    #[test]
    fn records_when_a_request_was_forwarded_and_when_its_answer_began() {
        // An upstream that answers its one request only when told to.
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = format!("http://{}", upstream.local_addr().unwrap());
        let (answer, answer_now) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (conn, _) = upstream.accept().unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            read_head(&mut reader).unwrap().expect("a request");
            answer_now.recv().unwrap();
            (&conn)
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                .unwrap();
        });
        let proxy = Proxy::start(&target);
        let url = proxy.url_for("/held");
        let client = std::thread::spawn(move || raw_http::request("GET", &url, &[], b"").unwrap());
        assert!(proxy.wait_until(Duration::from_secs(30), |rs| rs
            .iter()
            .any(RecordedRequest::is_pending)));
        assert_eq!(proxy.requests()[0].answer_began, None);
        answer.send(()).unwrap();
        let response = client.join().unwrap();
        server.join().unwrap();
        assert_eq!(&response.body[..], b"ok");
        let seen = proxy.requests();
        assert!(seen[0].forwarded);
        assert_eq!(
            seen[0].answer_began,
            Some(1),
            "one request recorded by then"
        );
        assert!(!seen[0].is_pending());
    }

    #[test]
    fn recorded_request_accessors() {
        let r = RecordedRequest {
            seq: 0,
            connection: 0,
            method: "GET".into(),
            target: "/s?offset=-1&live=sse&flag".into(),
            headers: vec![("Authorization".into(), "Bearer x".into())],
            body_len: 0,
            forwarded: true,
            answer_began: None,
        };
        assert_eq!(r.path(), "/s");
        assert_eq!(r.query_param("live"), Some("sse"));
        assert_eq!(r.query_param("flag"), Some(""));
        assert_eq!(r.query_param("nope"), None);
        assert_eq!(r.header("authorization"), Some("Bearer x"));
        assert!(!r.has_header("cookie"));
        assert!(r.is_pending());
        assert!(!RecordedRequest {
            answer_began: Some(1),
            ..r
        }
        .is_pending());
    }
}
