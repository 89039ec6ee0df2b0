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
}

impl Transport {
    pub(crate) fn new(connect_timeout: Option<Duration>, pool_idle: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(connect_timeout);
        http.set_nodelay(true);
        http.enforce_http(false);
        #[cfg(feature = "rustls")]
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        #[cfg(not(feature = "rustls"))]
        let connector = http;
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(pool_idle)
            .pool_max_idle_per_host(64)
            .build(connector);
        Transport { client }
    }

    /// Sends a request and returns the response head and its streaming body.
    pub(crate) async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<(http::response::Parts, Incoming), TransportError> {
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, Full::new(body));
        let response = self
            .client
            .request(request)
            .await
            .map_err(classify_client)?;
        Ok(response.into_parts())
    }

    /// Sends a request and reads the whole body, refusing more than `limit` bytes.
    pub(crate) async fn send_buffered(
        &self,
        request: http::Request<Bytes>,
        limit: usize,
    ) -> Result<(http::response::Parts, Bytes), TransportError> {
        let (parts, mut body) = self.send(request).await?;
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| classify_hyper(&e))?;
            if let Ok(data) = frame.into_data() {
                total += data.len();
                if total > limit {
                    return Err(TransportError::new(
                        TransportErrorKind::TooLarge,
                        format!("response body exceeds {limit} bytes"),
                    ));
                }
                chunks.push(data);
            }
        }
        let body = match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.pop().unwrap_or_default(),
            _ => {
                let mut all = Vec::with_capacity(total);
                for c in &chunks {
                    all.extend_from_slice(c);
                }
                Bytes::from(all)
            }
        };
        Ok((parts, body))
    }
}

/// Reads the next body chunk of a streaming response.
pub(crate) async fn next_chunk(body: &mut Incoming) -> Option<Result<Bytes, TransportError>> {
    loop {
        match body.frame().await? {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    return Some(Ok(data));
                }
            }
            Err(e) => return Some(Err(classify_hyper(&e))),
        }
    }
}

fn classify_client(e: hyper_util::client::legacy::Error) -> TransportError {
    use std::error::Error as _;
    let msg = error_chain(&e);
    let kind = if e.is_connect() {
        if msg.contains("certificate") || msg.contains("tls") || msg.contains("TLS") {
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

fn classify_hyper(e: &hyper::Error) -> TransportError {
    let kind = if e.is_parse() || e.is_parse_status() {
        TransportErrorKind::Protocol
    } else if e.is_timeout() {
        TransportErrorKind::Timeout
    } else if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        TransportErrorKind::ConnectionReset
    } else {
        TransportErrorKind::Other
    };
    TransportError::new(kind, error_chain(e))
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
