//! A TLS-terminating proxy on `127.0.0.1`: it accepts TLS connections with the certificate
//! chain and key a test gives it (generated with `rcgen`, say), and forwards the plaintext
//! bytes both ways to an `http://` server (the embedded server, the reference server, a
//! [`HostileServer`](crate::hostile::HostileServer)).
//!
//! It runs on a tokio runtime of its own thread (tokio-rustls), so it serves blocking and async
//! clients alike. Dropping it stops it. Connections are counted when accepted, before their
//! handshake starts ([`TlsProxy::connections`]), so a client that has seen the proxy's
//! certificate is already counted; handshakes that fail (a client refusing the certificate) are
//! counted in [`TlsProxy::failed_handshakes`] once the proxy has seen them end, which
//! [`TlsProxy::wait_settled`] waits for.
//!
//! ```no_run
//! # fn demo(chain: Vec<Vec<u8>>, key: Vec<u8>) {
//! use ds_tests::tls::TlsProxy;
//! let proxy = TlsProxy::start(chain, key, "http://127.0.0.1:4437").unwrap();
//! let base = proxy.url(); // https://127.0.0.1:PORT
//! # let _ = base; }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A running TLS proxy. Dropping it stops it.
#[derive(Debug)]
pub struct TlsProxy {
    url: String,
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    handshakes: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsProxy {
    /// Starts a proxy presenting `chain` (DER certificates, leaf first) with `key` (a PKCS#8
    /// DER private key) and forwarding to `upstream` (`http://host:port`).
    pub fn start(chain: Vec<Vec<u8>>, key: Vec<u8>, upstream: &str) -> io::Result<TlsProxy> {
        let target = crate::raw_http::parse_url(upstream)?;
        let target = format!("{}:{}", target.host, target.port);
        let chain: Vec<CertificateDer<'static>> =
            chain.into_iter().map(CertificateDer::from).collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(io::Error::other)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let accepted = Arc::new(AtomicU64::new(0));
        let handshakes = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (stop, mut stop_rx) = oneshot::channel::<()>();
        let (a, h, f) = (accepted.clone(), handshakes.clone(), failed.clone());
        let thread = std::thread::Builder::new()
            .name("ds-tls-proxy".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(std_listener) else {
                        return;
                    };
                    loop {
                        let accepted = tokio::select! {
                            _ = &mut stop_rx => return,
                            a = listener.accept() => a,
                        };
                        let Ok((client, _)) = accepted else { continue };
                        // Before the handshake: the client cannot see the certificate first.
                        a.fetch_add(1, Ordering::SeqCst);
                        let (acceptor, target) = (acceptor.clone(), target.clone());
                        let (h, f) = (h.clone(), f.clone());
                        tokio::spawn(async move {
                            let mut tls = match acceptor.accept(client).await {
                                Ok(s) => s,
                                Err(_) => {
                                    f.fetch_add(1, Ordering::SeqCst);
                                    return;
                                }
                            };
                            h.fetch_add(1, Ordering::SeqCst);
                            let Ok(mut upstream) = TcpStream::connect(&target).await else {
                                return;
                            };
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                        });
                    }
                });
            })?;
        Ok(TlsProxy {
            url: format!("https://{addr}"),
            addr,
            accepted,
            handshakes,
            failed,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Handshakes that completed.
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// Handshakes that failed (e.g. the client refused the certificate).
    pub fn failed_handshakes(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    /// TCP connections accepted, counted before their handshake starts.
    pub fn connections(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Waits until every accepted connection's handshake has ended (completed or failed),
    /// checking every 5 ms; whether that happened within `timeout` (a bound against hanging).
    pub fn wait_settled(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            // Read in this order: a connection counted as ended was accepted before.
            let ended = self.handshakes() + self.failed_handshakes();
            if ended >= self.connections() {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
