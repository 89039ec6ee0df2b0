//! The HTTP exchange through a ureq agent, errors flattened into ds-proto's
//! [`TransportError`]. No protocol decision is made here.

use bytes::Bytes;
use ds_proto::{TransportError, TransportErrorKind};
use std::io::Read;
use std::time::Duration;

/// A ureq agent configured for the protocol: error statuses are responses (their headers
/// matter), no redirects are followed (credentials never travel to another origin), no
/// compression is asked for (byte counts and SSE streaming stay exact).
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    agent: ureq::Agent,
}

/// A streaming response body.
pub(crate) type BodyReader = ureq::BodyReader<'static>;

impl Transport {
    pub(crate) fn new(connect: Option<Duration>, global: Option<Duration>) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(connect)
            .timeout_global(global)
            .max_idle_connections_per_host(64)
            .build();
        Transport {
            agent: config.into(),
        }
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
        let request = http::Request::from_parts(parts, &body[..]);
        let response = request
            .with_agent(&self.agent)
            .configure()
            .timeout_global(timeout)
            .build()
            .run()
            .map_err(|e| classify(&e))?;
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
            return Err(TransportError::new(
                TransportErrorKind::TooLarge,
                format!("response body exceeds {limit} bytes"),
            ));
        }
        Ok((parts, Bytes::from(body)))
    }
}

/// Reads up to `max` bytes of a streaming body: `None` at its end.
pub(crate) fn read_chunk(
    reader: &mut BodyReader,
    max: usize,
) -> Option<Result<Bytes, TransportError>> {
    let mut buf = vec![0u8; max];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => {
                buf.truncate(n);
                return Some(Ok(Bytes::from(buf)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Some(Err(classify_io(&e))),
        }
    }
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
    use std::io::ErrorKind as K;
    // ureq wraps its own errors (timeouts, protocol) in io::Error when reading bodies.
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
        return classify(inner);
    }
    let kind = match e.kind() {
        K::TimedOut | K::WouldBlock => TransportErrorKind::Timeout,
        K::ConnectionRefused | K::AddrNotAvailable => TransportErrorKind::Connect,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            TransportErrorKind::ConnectionReset
        }
        K::InvalidData => TransportErrorKind::Protocol,
        _ => TransportErrorKind::Other,
    };
    TransportError::new(kind, e.to_string())
}
