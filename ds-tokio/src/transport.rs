//! The HTTP exchange: hyper's pooled client, errors flattened into ds-proto's
//! [`TransportError`]. No protocol decision is made here.

use bytes::Bytes;
use ds_proto::{TransportError, TransportErrorKind};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

#[cfg(feature = "rustls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "rustls"))]
type Connector = HttpConnector;

/// A pooled, keep-alive HTTP/1.1 client.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    client: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    /// How writers open their pipelined connections (the same timeout and TLS roots).
    pub(crate) pipelined: crate::pipeline::Connector,
}

/// The TLS settings of a transport: ds-proto's rustls configuration
/// ([`ds_proto::driver::tls::client_config`]).
#[cfg(feature = "rustls")]
pub(crate) type TlsSettings = std::sync::Arc<rustls::ClientConfig>;
/// Without the `rustls` feature there is no TLS to configure.
#[cfg(not(feature = "rustls"))]
pub(crate) type TlsSettings = ();

impl Transport {
    /// A transport whose https connections, pooled or pipelined, use `tls`.
    pub(crate) fn with_tls(
        connect_timeout: Option<Duration>,
        pool_idle: Duration,
        tls: TlsSettings,
    ) -> Self {
        let pipelined = crate::pipeline::Connector::new(connect_timeout, &tls);
        let mut http = HttpConnector::new();
        http.set_connect_timeout(connect_timeout);
        http.set_nodelay(true);
        http.enforce_http(false);
        #[cfg(feature = "rustls")]
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        #[cfg(not(feature = "rustls"))]
        let () = tls;
        #[cfg(not(feature = "rustls"))]
        let connector = http;
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(pool_idle)
            .pool_max_idle_per_host(64)
            .build(connector);
        Transport { client, pipelined }
    }

    /// Sends a request and returns the response head and its streaming body.
    pub(crate) async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<(http::response::Parts, Incoming), TransportError> {
        let (parts, body) = request.into_parts();
        let query = parts.uri.query().map(str::to_owned);
        let request = http::Request::from_parts(parts, Full::new(body));
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| classify_client(e).without_query(query.as_deref()))?;
        Ok(response.into_parts())
    }

    /// Sends a request and reads the whole body, refusing more than `limit` bytes.
    pub(crate) async fn send_buffered(
        &self,
        request: http::Request<Bytes>,
        limit: usize,
    ) -> Result<(http::response::Parts, Bytes), TransportError> {
        let (parts, mut body) = self.send(request).await?;
        // One frame is kept as it is; from the second on, frames are copied into one buffer as
        // they arrive (sized from the body's length when known), so hyper reuses its buffers.
        let hint = usize::try_from(hyper::body::Body::size_hint(&body).lower())
            .unwrap_or(usize::MAX)
            .min(limit);
        let mut first: Option<Bytes> = None;
        let mut all = bytes::BytesMut::new();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| classify_hyper(&e))?;
            if let Ok(data) = frame.into_data() {
                if data.is_empty() {
                    continue;
                }
                total += data.len();
                if total > limit {
                    return Err(TransportError::new(
                        TransportErrorKind::TooLarge,
                        format!("response body exceeds {limit} bytes"),
                    ));
                }
                if total == data.len() {
                    first = Some(data);
                    continue;
                }
                if let Some(f) = first.take() {
                    all.reserve(hint.max(total));
                    all.extend_from_slice(&f);
                }
                all.extend_from_slice(&data);
            }
        }
        Ok((parts, first.unwrap_or_else(|| all.freeze())))
    }
}

fn classify_client(e: hyper_util::client::legacy::Error) -> TransportError {
    use std::error::Error as _;
    let msg = error_chain(&e);
    #[cfg(feature = "rustls")]
    let tls = ds_proto::driver::tls::is_tls_failure(&e);
    #[cfg(not(feature = "rustls"))]
    let tls = false;
    let kind = if e.is_connect() {
        if tls {
            TransportErrorKind::Tls
        } else if msg.contains("timed out") || msg.contains("timeout") {
            TransportErrorKind::Timeout
        } else {
            TransportErrorKind::Connect
        }
    } else if let Some(h) = e.source().and_then(|s| s.downcast_ref::<hyper::Error>()) {
        return classify_hyper(h);
    } else {
        TransportErrorKind::Other
    };
    TransportError::new(kind, msg)
}

pub(crate) fn classify_hyper(e: &hyper::Error) -> TransportError {
    let kind = if e.is_parse() || e.is_parse_status() {
        TransportErrorKind::Protocol
    } else if e.is_timeout() {
        TransportErrorKind::Timeout
    } else if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        TransportErrorKind::ConnectionReset
    } else if let Some(io) = io_source(e) {
        // A body read that failed below HTTP: a body cut short by the peer closing
        // (`UnexpectedEof`), a reset.
        TransportErrorKind::from_io(io.kind())
    } else {
        TransportErrorKind::Other
    };
    TransportError::new(kind, error_chain(e))
}

/// The first I/O error in `e`'s source chain.
fn io_source<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cur = e.source();
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
