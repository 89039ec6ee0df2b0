//! The HTTP exchange: hyper's pooled client, errors flattened into ds-proto's
//! [`TransportError`]. No protocol decision is made here.

use bytes::Bytes;
use ds_proto::driver::buffered::BodyCollector;
use ds_proto::driver::client::{error_chain_text, find_source};
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

use crate::pipeline::TlsSettings;

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
        let expected = hyper::body::Body::size_hint(&body).lower();
        let mut collected = BodyCollector::new(limit, expected);
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.map_err(|e| classify_hyper(&e))?.into_data() {
                collected.push(data)?;
            }
        }
        Ok((parts, collected.finish()))
    }
}

fn classify_client(e: hyper_util::client::legacy::Error) -> TransportError {
    use std::error::Error as _;
    let msg = error_chain_text(&e);
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
    } else if let Some(io) = find_source::<std::io::Error>(e) {
        // A body read that failed below HTTP: a body cut short by the peer closing
        // (`UnexpectedEof`), a reset.
        TransportErrorKind::from_io(io.kind())
    } else {
        TransportErrorKind::Other
    };
    TransportError::new(kind, error_chain_text(e))
}
