//! A writer's dedicated HTTP/1.1 connection with pipelined requests (issue 16), over a std
//! `TcpStream`: the bytes only. ds-proto's [`PipelinedLink`] keeps the queue, the deadlines,
//! the codec and the rules for dropping the connection; ds-proto's [`WriterPipe`] decides
//! when this connection is used at all.
//!
//! The writer's thread connects (TLS for `https`, with feature `rustls`: the client's roots)
//! and writes what the link asks for (blocking, within the earliest request deadline); one
//! reader thread per connection reads the socket and hands the bytes to the writer's thread
//! through its channel (`notify`), tagged with the connection's generation so that bytes of a
//! dropped connection are ignored. Over TLS both threads share the rustls connection behind a
//! mutex, held only to move bytes between it and the socket (never during a blocking read).

use ds_proto::driver::pipelined_link::{self, Origin};
use ds_proto::io::TransportError;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Hands the reader thread's bytes (`Some`) or the end of the connection (`None`) to the
/// writer's thread; returns `false` when the writer is gone.
pub(crate) type Notify = Arc<dyn Fn(u64, Option<Vec<u8>>) -> bool + Send + Sync>;

/// The rustls client connection both threads of a TLS connection use.
#[cfg(feature = "rustls")]
type SharedTls = Arc<std::sync::Mutex<rustls::ClientConnection>>;

/// Whether `https` streams can be written on a pipelined connection (TLS compiled in).
pub(crate) const TLS_PIPELINED: bool = cfg!(feature = "rustls");

/// How a writer's pipelined connection is opened: the client's connect timeout and TLS roots.
#[derive(Clone)]
pub(crate) struct Connector {
    connect_timeout: Duration,
    #[cfg(feature = "rustls")]
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// The TLS configuration a [`Connector`] is made with.
#[cfg(feature = "rustls")]
pub(crate) type ConnectorTls = rustls::ClientConfig;
/// Without the `rustls` feature there is no TLS to configure.
#[cfg(not(feature = "rustls"))]
pub(crate) type ConnectorTls = ();

impl Connector {
    /// The connector of a client with these settings.
    pub(crate) fn new(connect_timeout: Option<Duration>, tls: ConnectorTls) -> Self {
        #[cfg(not(feature = "rustls"))]
        let () = tls;
        Connector {
            connect_timeout: pipelined_link::connect_timeout(connect_timeout),
            #[cfg(feature = "rustls")]
            tls: Arc::new(tls),
        }
    }

    /// A connection to `uri`'s origin, TLS handshake done for `https`.
    fn connect(&self, uri: &http::Uri) -> Result<Wire, TransportError> {
        let origin = Origin::of(uri);
        let addrs = (origin.host.as_str(), origin.port).to_socket_addrs();
        let mut last = std::io::Error::other("no address for host");
        let mut tcp = None;
        for addr in addrs.map_err(|e| TransportError::connect_failed(&e))? {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let tcp = tcp.ok_or_else(|| TransportError::connect_failed(&last))?;
        let _ = tcp.set_nodelay(true);
        if !origin.tls {
            return Ok(Wire::Plain(tcp));
        }
        #[cfg(feature = "rustls")]
        {
            let name = ds_proto::driver::tls::server_name(&origin.host)?;
            let mut conn = rustls::ClientConnection::new(self.tls.clone(), name).map_err(|e| {
                TransportError::new(ds_proto::io::TransportErrorKind::Tls, e.to_string())
            })?;
            let mut tcp = tcp;
            let _ = tcp.set_read_timeout(Some(self.connect_timeout));
            while conn.is_handshaking() {
                conn.complete_io(&mut tcp)
                    .map_err(|e| ds_proto::driver::tls::handshake_error(&e))?;
            }
            let _ = tcp.set_read_timeout(None);
            Ok(Wire::Tls(tcp, Arc::new(std::sync::Mutex::new(conn))))
        }
        #[cfg(not(feature = "rustls"))]
        Err(pipelined_link::tls_not_built())
    }
}

/// A connected socket: plain, or TLS over a rustls connection the reader thread shares.
enum Wire {
    Plain(TcpStream),
    #[cfg(feature = "rustls")]
    Tls(TcpStream, SharedTls),
}

impl Wire {
    fn tcp(&self) -> &TcpStream {
        match self {
            Wire::Plain(tcp) => tcp,
            #[cfg(feature = "rustls")]
            Wire::Tls(tcp, _) => tcp,
        }
    }

    /// Writes all of `bytes` (encrypted over TLS).
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Wire::Plain(tcp) => tcp.write_all(bytes),
            #[cfg(feature = "rustls")]
            Wire::Tls(tcp, conn) => {
                // In pieces, so the reader thread gets the lock between them.
                for piece in bytes.chunks(64 << 10) {
                    let mut conn = conn.lock().map_err(|_| std::io::Error::other("poisoned"))?;
                    conn.writer().write_all(piece)?;
                    while conn.wants_write() {
                        conn.write_tls(tcp)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// What the reader thread reads: a clone of the socket, decrypting over TLS.
    fn reader(&self) -> std::io::Result<WireReader> {
        Ok(match self {
            Wire::Plain(tcp) => WireReader::Plain(tcp.try_clone()?),
            #[cfg(feature = "rustls")]
            Wire::Tls(tcp, conn) => WireReader::Tls(tcp.try_clone()?, conn.clone()),
        })
    }
}

/// The reader thread's side of a [`Wire`].
enum WireReader {
    Plain(TcpStream),
    #[cfg(feature = "rustls")]
    Tls(TcpStream, SharedTls),
}

impl WireReader {
    /// The next bytes of the response stream (empty: the end), blocking until some arrive.
    fn next(&mut self, buf: &mut [u8]) -> std::io::Result<Vec<u8>> {
        match self {
            WireReader::Plain(tcp) => {
                let n = tcp.read(buf)?;
                Ok(buf[..n].to_vec())
            }
            #[cfg(feature = "rustls")]
            WireReader::Tls(tcp, conn) => loop {
                let n = tcp.read(buf)?;
                if n == 0 {
                    return Ok(Vec::new());
                }
                let mut conn = conn.lock().map_err(|_| std::io::Error::other("poisoned"))?;
                let mut raw = &buf[..n];
                while !raw.is_empty() {
                    conn.read_tls(&mut raw)?;
                    conn.process_new_packets()
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                }
                let mut plain = Vec::new();
                match conn.reader().read_to_end(&mut plain) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                while conn.wants_write() {
                    conn.write_tls(tcp)?;
                }
                if !plain.is_empty() {
                    return Ok(plain);
                }
            },
        }
    }
}

/// The socket of the link's live connection, kept by the link: dropping it shuts the socket
/// down, which ends its reader thread.
pub(crate) struct Socket {
    wire: Wire,
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = self.wire.tcp().shutdown(Shutdown::Both);
    }
}

ds_proto::__pipeline!(; ; now: Instant::now);

/// Writes `head`, then `body`, by `deadline` (the socket's write timeout: `WouldBlock` or
/// `TimedOut` after it).
fn write(
    socket: &mut Socket,
    head: &[u8],
    body: &[u8],
    deadline: Option<Instant>,
) -> std::io::Result<()> {
    let limit = deadline.map(|d| {
        d.saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    });
    socket.wire.tcp().set_write_timeout(limit)?;
    socket.wire.write_all(head)?;
    socket.wire.write_all(body)
}

/// A thread reads the connection and hands the bytes to the writer's thread, tagged `gen`.
/// No reader, no connection: the link then fails its first request as never sent.
fn attach(wire: Wire, gen: u64, notify: Notify) -> Result<Socket, TransportError> {
    let fail = |e: std::io::Error| TransportError::connect_failed(&e);
    let mut reader = wire.reader().map_err(fail)?;
    std::thread::Builder::new()
        .name("ds-writer-read".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match reader.next(&mut buf) {
                    Ok(bytes) if !bytes.is_empty() => {
                        if !notify(gen, Some(bytes)) {
                            return;
                        }
                    }
                    Ok(_) | Err(_) => {
                        notify(gen, None);
                        return;
                    }
                }
            }
        })
        .map_err(fail)?;
    Ok(Socket { wire })
}
