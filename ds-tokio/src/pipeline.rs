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
use ds_proto::driver::pipelined_link::{self, LinkEvent, LinkStep, Origin, PipelinedLink};
use ds_proto::driver::writer_loop::WriterLoop;
use ds_proto::driver::writer_pipe::WriterPipe;
use ds_proto::io::{Input, TransportError, TransportErrorKind};
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

    /// Whether `https` streams can be written on a pipelined connection (TLS compiled in).
    pub(crate) fn has_tls() -> bool {
        cfg!(feature = "rustls")
    }

    /// A connection to `uri`'s origin, split into its halves.
    async fn connect(&self, uri: &http::Uri) -> Result<(ReadHalf, WriteHalf), TransportError> {
        let connect =
            |e: std::io::Error| TransportError::new(TransportErrorKind::Connect, e.to_string());
        let Origin {
            host,
            port,
            tls: https,
        } = Origin::of(uri);
        let bare = host.as_str();
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect((bare, port)))
            .await
            .map_err(|_| TransportError::new(TransportErrorKind::Timeout, "connect timed out"))?
            .map_err(connect)?;
        let _ = tcp.set_nodelay(true);
        if !https {
            let (read, write) = tcp.into_split();
            return Ok((Box::new(read), Box::new(write)));
        }
        #[cfg(feature = "rustls")]
        {
            let name = rustls::pki_types::ServerName::try_from(bare.to_owned())
                .map_err(|e| TransportError::new(TransportErrorKind::Tls, e.to_string()))?;
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
        Err(TransportError::new(
            TransportErrorKind::Tls,
            "https needs the `rustls` feature",
        ))
    }
}

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

/// The writer's pipelined connection: ds-proto's link (with a span per request, as pooled
/// exchanges have, and the socket of its connection).
pub(crate) struct Pipeline {
    pub(crate) link: PipelinedLink<crate::trace::RequestTraces, Socket>,
    connector: Connector,
    notify: Notify,
}

impl Pipeline {
    /// A pipelined connection of at most `depth` requests in flight, opened with
    /// `connector`; its reader task sends what it reads to `notify`.
    pub(crate) fn new(depth: usize, connector: Connector, notify: Notify) -> Self {
        Pipeline {
            link: PipelinedLink::new(depth),
            connector,
            notify,
        }
    }

    /// Applies `event` to the link, then does what it asks until it is idle; inputs for the
    /// producer wait in `wl`.
    pub(crate) async fn handle(&mut self, event: LinkEvent, wl: &mut WriterLoop) {
        let (plan, out) = wl.parts();
        self.link.handle(event, plan, now());
        self.pump(plan, out).await;
    }

    /// Does what the link asks until it is idle; its inputs go to `out`.
    async fn pump(&mut self, plan: &mut WriterPipe, out: &mut Vec<Input>) {
        loop {
            match self.link.next_step(plan) {
                LinkStep::Connect { uri } => {
                    let started = now();
                    match self.connector.connect(&uri).await {
                        Ok((read, write)) => {
                            let notify = &self.notify;
                            self.link.on_connected(plan, started, now(), |gen| {
                                Ok(spawn_reader(read, write, gen, notify.clone()))
                            });
                        }
                        Err(e) => self.link.on_connect_failed(e),
                    }
                }
                LinkStep::Write { head, body } => {
                    // A stalled write ends at the earliest request deadline.
                    let deadline = self.link.next_deadline();
                    let socket = self
                        .link
                        .socket_mut()
                        .expect("the link writes on a connection");
                    let write = async {
                        socket.write.write_all(&head).await?;
                        socket.write.write_all(&body).await
                    };
                    let written = match deadline {
                        Some(d) => tokio::time::timeout_at(d.into(), write).await.ok(),
                        None => Some(write.await),
                    };
                    match written {
                        Some(Ok(())) => self.link.on_written(plan, now()),
                        Some(Err(_)) => self.link.on_write_failed(plan),
                        None => self.link.on_write_timed_out(plan, now()),
                    }
                }
                LinkStep::Idle => break,
            }
        }
        out.extend(self.link.take_inputs());
    }
}

/// A task reads `read` and hands the bytes to the writer's task, tagged `gen`.
fn spawn_reader(mut read: ReadHalf, write: WriteHalf, gen: u64, notify: Notify) -> Socket {
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
    Socket { write, reader }
}
