//! The HTTP exchange through a ureq agent, errors flattened into ds-proto's
//! [`TransportError`]. No protocol decision is made here.

use bytes::Bytes;
use ds_proto::driver::pipelined_link::Origin;
use ds_proto::{TransportError, TransportErrorKind};
use std::io::Read;
use std::time::Duration;

/// A ureq agent configured for the protocol: error statuses are responses (their headers
/// matter), no redirects are followed (credentials never travel to another origin), no
/// compression is asked for (byte counts and SSE streaming stay exact).
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    agent: ureq::Agent,
    /// How writers open their pipelined connections (the same timeout and TLS roots).
    pub(crate) pipelined: crate::pipeline::Connector,
}

/// A streaming response body.
pub(crate) type BodyReader = ureq::BodyReader<'static>;

/// The TLS settings of a transport: `None` for ureq's default (rustls, webpki roots).
#[cfg(feature = "rustls")]
pub(crate) type TlsSettings = Option<ureq::tls::TlsConfig>;
/// Without the `rustls` feature there is no TLS to configure.
#[cfg(not(feature = "rustls"))]
pub(crate) type TlsSettings = ();

impl Transport {
    /// A transport whose https connections use `tls` (see [`crate::tls`]), and whose writers
    /// open their pipelined connections with `pipelined`.
    pub(crate) fn with_tls(
        connect: Option<Duration>,
        global: Option<Duration>,
        tls: TlsSettings,
        pipelined: crate::pipeline::Connector,
    ) -> Self {
        let builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(connect)
            .timeout_global(global)
            .max_idle_connections_per_host(64);
        #[cfg(feature = "rustls")]
        let builder = match tls {
            Some(tls) => builder.tls_config(tls),
            None => builder,
        };
        #[cfg(not(feature = "rustls"))]
        let () = tls;
        let agent = ureq::Agent::with_parts(
            builder.build(),
            ureq::unversioned::transport::DefaultConnector::default(),
            LiteralFirst::default(),
        );
        Transport { agent, pipelined }
    }

    /// Sends a request; returns the response head and a streaming body reader. `timeout`
    /// bounds the whole exchange, body included.
    pub(crate) fn send(
        &self,
        request: http::Request<Bytes>,
        timeout: Option<Duration>,
    ) -> Result<(http::response::Parts, BodyReader), TransportError> {
        use ureq::RequestExt;
        let (parts, body) = request.into_parts();
        let query = parts.uri.query().map(str::to_owned);
        let request = http::Request::from_parts(parts, &body[..]);
        let response = request
            .with_agent(&self.agent)
            .configure()
            .timeout_global(timeout)
            .build()
            .run()
            .map_err(|e| classify(&e).without_query(query.as_deref()))?;
        let (parts, body) = response.into_parts();
        let reader = body.into_with_config().limit(u64::MAX).reader();
        Ok((parts, reader))
    }

    /// Sends a request and reads the whole body, refusing more than `limit` bytes.
    pub(crate) fn send_buffered_timeout(
        &self,
        request: http::Request<Bytes>,
        limit: usize,
        timeout: Option<Duration>,
    ) -> Result<(http::response::Parts, Bytes), TransportError> {
        let (parts, mut reader) = self.send(request, timeout)?;
        let mut body = Vec::new();
        let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        (&mut reader)
            .take(cap)
            .read_to_end(&mut body)
            .map_err(|e| classify_io(&e))?;
        if body.len() > limit {
            return Err(TransportError::too_large(limit));
        }
        Ok((parts, Bytes::from(body)))
    }
}

/// ureq's resolver, except that an IP-address host (`127.0.0.1`, `[::1]`) is resolved on the
/// calling thread. ureq's default resolver starts a thread for every request that has a
/// timeout (every request of this driver), even to "resolve" an IP address: that thread cost
/// more than a small request on loopback.
#[derive(Debug, Default)]
struct LiteralFirst(ureq::unversioned::resolver::DefaultResolver);

impl ureq::unversioned::resolver::Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        match Origin::of(uri).ip_addr() {
            Some(addr) => {
                let mut addrs = self.empty();
                addrs.push(addr);
                Ok(addrs)
            }
            None => self.0.resolve(uri, config, timeout),
        }
    }
}

/// Reads a streaming body in pieces through the thread's reused buffer; each piece is copied
/// out at its exact size, so a small piece never pins a large allocation, and no buffer is
/// allocated or zeroed per read or per exchange.
pub(crate) struct ChunkReader {
    max: usize,
}

thread_local! {
    /// The buffer body reads go through, one per thread.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl ChunkReader {
    /// A reader handing out at most `max` bytes at once.
    pub(crate) fn new(max: usize) -> ChunkReader {
        ChunkReader { max: max.max(1) }
    }

    /// The next piece of `reader`: `None` at its end.
    pub(crate) fn next(
        &mut self,
        reader: &mut BodyReader,
    ) -> Option<Result<Bytes, TransportError>> {
        SCRATCH.with(|scratch| {
            let mut buf = scratch.borrow_mut();
            if buf.len() < self.max {
                buf.resize(self.max, 0);
            }
            let buf = &mut buf[..self.max];
            loop {
                match reader.read(buf) {
                    Ok(0) => return None,
                    Ok(n) => return Some(Ok(Bytes::copy_from_slice(&buf[..n]))),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Some(Err(classify_io(&e))),
                }
            }
        })
    }
}

/// Whether a response is an event stream (`text/event-stream`), whose pieces must be handed
/// over as they come.
pub(crate) fn is_event_stream(parts: &http::response::Parts) -> bool {
    parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(ds_proto::headers::is_event_stream_content_type)
}

pub(crate) fn classify(e: &ureq::Error) -> TransportError {
    use ureq::Error as E;
    let kind = match e {
        E::Timeout(_) => TransportErrorKind::Timeout,
        E::HostNotFound | E::ConnectionFailed => TransportErrorKind::Connect,
        E::Io(io) => return classify_io(io),
        E::Protocol(_) | E::LargeResponseHeader(..) | E::Http(_) => TransportErrorKind::Protocol,
        E::BodyExceedsLimit(_) => TransportErrorKind::TooLarge,
        E::Tls(_) | E::TlsRequired => TransportErrorKind::Tls,
        #[cfg(feature = "rustls")]
        E::Rustls(_) | E::Pem(_) => TransportErrorKind::Tls,
        E::BodyStalled => TransportErrorKind::Timeout,
        _ => TransportErrorKind::Other,
    };
    TransportError::new(kind, e.to_string())
}

pub(crate) fn classify_io(e: &std::io::Error) -> TransportError {
    // ureq wraps its own errors (timeouts, protocol) in io::Error when reading bodies.
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
        return classify(inner);
    }
    #[cfg(feature = "rustls")]
    if ds_proto::driver::tls::is_tls_failure(e) {
        return TransportError::new(TransportErrorKind::Tls, e.to_string());
    }
    TransportError::new(TransportErrorKind::from_io(e.kind()), e.to_string())
}
