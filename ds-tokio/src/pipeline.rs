//! A writer's dedicated HTTP/1.1 connection with pipelined requests (issue 16), over a tokio
//! `TcpStream`: the bytes only. ds-proto's [`PipelinedLink`] keeps the queue, the deadlines,
//! the codec and the rules for dropping the connection; ds-proto's [`WriterPipe`] decides
//! when this connection is used at all.
//!
//! The writer's task connects (TLS for `https`, with feature `rustls`: the client's roots) and
//! writes what the link asks for, within the earliest request deadline; one reader task per
//! connection reads the socket and hands the bytes to the writer's task through a channel,
//! tagged with the connection's generation so that bytes of a dropped connection are ignored.

use crate::clock::now;
use ds_proto::driver::pipelined_link::{self, Origin};
use ds_proto::io::{TransportError, TransportErrorKind};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// Carries the reader task's bytes (`Some`) or the end of the connection (`None`) to the
/// writer's task, with the connection's generation.
pub(crate) type Notify = UnboundedSender<(u64, Option<Vec<u8>>)>;

type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// The TLS settings of a transport, pooled and pipelined: ds-proto's rustls configuration
/// ([`ds_proto::driver::tls::client_config`]).
#[cfg(feature = "rustls")]
pub(crate) type TlsSettings = std::sync::Arc<rustls::ClientConfig>;
/// Without the `rustls` feature there is no TLS to configure.
#[cfg(not(feature = "rustls"))]
pub(crate) type TlsSettings = ();

/// Whether `https` streams can be written on a pipelined connection (TLS compiled in).
pub(crate) const TLS_PIPELINED: bool = cfg!(feature = "rustls");

/// How a writer's pipelined connection is opened: the client's connect timeout and TLS roots.
#[derive(Clone)]
pub(crate) struct Connector {
    connect_timeout: Duration,
    /// The client's rustls configuration.
    #[cfg(feature = "rustls")]
    tls: TlsSettings,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// The connector of a client with these settings.
    pub(crate) fn new(connect_timeout: Option<Duration>, tls: &TlsSettings) -> Self {
        #[cfg(not(feature = "rustls"))]
        let () = *tls;
        Connector {
            connect_timeout: pipelined_link::connect_timeout(connect_timeout),
            #[cfg(feature = "rustls")]
            tls: tls.clone(),
        }
    }

    /// A connection to `uri`'s origin, split into its halves.
    async fn connect(&self, uri: &http::Uri) -> Result<Wire, TransportError> {
        let origin = Origin::of(uri);
        let connect = TcpStream::connect((origin.host.as_str(), origin.port));
        let tcp = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| TransportError::new(TransportErrorKind::Timeout, "connect timed out"))?
            .map_err(|e| TransportError::connect_failed(&e))?;
        let _ = tcp.set_nodelay(true);
        if !origin.tls {
            let (read, write) = tcp.into_split();
            return Ok((Box::new(read), Box::new(write)));
        }
        #[cfg(feature = "rustls")]
        {
            let name = ds_proto::driver::tls::server_name(&origin.host)?;
            let handshake = tokio_rustls::TlsConnector::from(self.tls.clone()).connect(name, tcp);
            let tls = tokio::time::timeout(self.connect_timeout, handshake)
                .await
                .map_err(|_| {
                    TransportError::new(TransportErrorKind::Timeout, "TLS handshake timed out")
                })?
                .map_err(|e| ds_proto::driver::tls::handshake_error(&e))?;
            let (read, write) = tokio::io::split(tls);
            Ok((Box::new(read), Box::new(write)))
        }
        #[cfg(not(feature = "rustls"))]
        Err(pipelined_link::tls_not_built())
    }
}

/// A connection's read and write halves, before its reader task starts.
type Wire = (ReadHalf, WriteHalf);

/// The socket of the link's live connection, kept by the link: dropping it ends its reader
/// task (the read half goes with it).
pub(crate) struct Socket {
    write: WriteHalf,
    reader: JoinHandle<()>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

ds_proto::__pipeline!(async; .await; now: now);

/// Writes `head`, then `body`, by `deadline` (`TimedOut` after it).
async fn write(
    socket: &mut Socket,
    head: &[u8],
    body: &[u8],
    deadline: Option<std::time::Instant>,
) -> std::io::Result<()> {
    let write = async {
        socket.write.write_all(head).await?;
        socket.write.write_all(body).await
    };
    match deadline {
        Some(d) => tokio::time::timeout_at(d.into(), write)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())),
        None => write.await,
    }
}

/// A task reads the connection and hands the bytes to the writer's task, tagged `gen`.
fn attach((mut read, write): Wire, gen: u64, notify: Notify) -> Result<Socket, TransportError> {
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
    Ok(Socket { write, reader })
}
