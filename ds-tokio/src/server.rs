//! The embedded Durable Streams server: ds-proto's in-memory [`SimServer`] model served over
//! HTTP/1.1 on 127.0.0.1, in real time. Examples use it when no server URL is given; use it in
//! your own integration tests when you do not want to run Node.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let server = ds_tokio::server::spawn(Default::default()).await?;
//! let client = ds_tokio::Client::new(server.url())?;
//! client.stream("/v1/stream/demo").create(Default::default()).await?;
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! One task owns the model; each connection hands it complete requests and streams back what
//! the model produces (long-poll and SSE responses stay open until the model finishes them).
//! A client that goes away cancels its exchange in the model.
//!
//! Subscriptions (PROTOCOL.md 6 and 7) are served under `/v1/stream/__ds/` (the model's
//! `stream_root`). The model queues webhook deliveries; the model task sends each with a hyper
//! client (plain HTTP: the model accepts `http://` webhook URLs only for `localhost` and
//! `127.x.x.x`; an `https://` delivery fails and is retried) and feeds the answer back, or a
//! failure when none came within [`WEBHOOK_TIMEOUT`].

use bytes::Bytes;
use ds_proto::sim::server::{
    ExchangeId, ExchangeOutput, SimServer, SimServerConfig, WebhookDelivery, WebhookId,
};
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

mod faults;

/// The largest request body the embedded server accepts.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// How long a webhook delivery may take, response body included, before it counts as failed
/// (and is retried, PROTOCOL.md 7.1).
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// The most of a webhook response body the server reads (only `{"done": true}` matters).
const MAX_WEBHOOK_RESPONSE_BYTES: usize = 1024 * 1024;

/// How the embedded server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The port on 127.0.0.1 (0: an ephemeral port).
    pub port: u16,
    /// The model's behaviour (long-poll timeout, chunk limit, SSE connection lifetime...). Its
    /// clock is set to real time by [`spawn`].
    pub model: SimServerConfig,
    /// A test facility: serve the reference server's fault-injection endpoint.
    /// `POST /_test/inject-error` with JSON `{"path": ..., "method"?, "count"? (default 1),
    /// "probability"?, and at least one of "status" (+ "retryAfter"), "delayMs" (+ "jitterMs"),
    /// "dropConnection", "truncateBodyBytes", "corruptBody", "injectSseEvent": {"eventType",
    /// "data"}}` arms a fault for the next requests to that exact path; `DELETE` clears every
    /// fault. Tests use it to make requests fail, stall, drop or return damaged bodies. On by
    /// default; turn it off when the server must only speak the protocol.
    pub fault_injection: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: 0,
            model: SimServerConfig {
                long_poll_timeout: Duration::from_secs(20),
                ..SimServerConfig::default()
            },
            fault_injection: true,
        }
    }
}

/// A running embedded server. Dropping it stops it.
#[derive(Debug)]
pub struct ServerHandle {
    url: String,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and ends open exchanges.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A request for the model task: the complete request and where its outputs go.
struct Call {
    request: http::Request<Bytes>,
    outputs: mpsc::UnboundedSender<ExchangeOutput>,
}

/// Starts the server on the current tokio runtime.
pub async fn spawn(config: ServerConfig) -> std::io::Result<ServerHandle> {
    let listener = TcpListener::bind(("127.0.0.1", config.port)).await?;
    let addr = listener.local_addr()?;
    let mut model = config.model;
    // Absolute callback and JWKS URLs in subscription bodies (PROTOCOL.md 6.3, 7.1).
    model
        .public_url
        .get_or_insert_with(|| format!("http://{addr}"));
    model.clock_origin = Some(tokio::time::Instant::now().into_std());
    model.unix_time_at_origin = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (calls, calls_rx) = mpsc::channel::<Call>(1024);
    let (stop, mut stop_rx) = oneshot::channel::<()>();
    let faults = config
        .fault_injection
        .then(|| Arc::new(faults::Faults::new()));
    let task = tokio::spawn(async move {
        let model_task = tokio::spawn(run_model(SimServer::new(model), calls_rx));
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                accepted = listener.accept() => {
                    let Ok((tcp, _)) = accepted else { continue };
                    let _ = tcp.set_nodelay(true);
                    let calls = calls.clone();
                    let faults = faults.clone();
                    connections.spawn(async move {
                        let service =
                            service_fn(move |req| serve(req, calls.clone(), faults.clone()));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), service)
                            .await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        connections.abort_all();
        model_task.abort();
    });
    Ok(ServerHandle {
        url: format!("http://{addr}"),
        addr,
        stop: Some(stop),
        task: Some(task),
    })
}

/// A server on a runtime and thread of its own, for programs without tokio (tests, the
/// blocking driver's users) and for starting one from any context, async or not. Dropping it
/// stops the server.
#[derive(Debug)]
pub struct BackgroundServer {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundServer {
    /// Starts a server on a fresh runtime running on its own thread.
    pub fn start(config: ServerConfig) -> std::io::Result<BackgroundServer> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<String>>();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ds-embedded-server".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match spawn(config).await {
                        Ok(handle) => {
                            let _ = ready_tx.send(Ok(handle.url().to_owned()));
                            let _ = stop_rx.await;
                            handle.shutdown().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })?;
        let url = ready_rx.recv().map_err(|_| {
            std::io::Error::other("the embedded server thread ended before it was ready")
        })??;
        Ok(BackgroundServer {
            url,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

type WebhookClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// Sends one webhook delivery: its status and body, or `None` when no complete response came
/// within [`WEBHOOK_TIMEOUT`].
async fn deliver(client: WebhookClient, delivery: WebhookDelivery) -> Option<(u16, Bytes)> {
    let (parts, body) = delivery.request.into_parts();
    let request = http::Request::from_parts(parts, Full::new(body));
    let exchange = async {
        let response = client.request(request).await.ok()?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_WEBHOOK_RESPONSE_BYTES)
            .collect()
            .await
            .ok()?
            .to_bytes();
        Some((status, body))
    };
    tokio::time::timeout(WEBHOOK_TIMEOUT, exchange)
        .await
        .ok()
        .flatten()
}

/// The one task that owns the model. Webhook deliveries run as tasks of its own, aborted with
/// it.
async fn run_model(mut model: SimServer, mut calls: mpsc::Receiver<Call>) {
    let mut routes: HashMap<ExchangeId, mpsc::UnboundedSender<ExchangeOutput>> = HashMap::new();
    let client: WebhookClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let mut deliveries: tokio::task::JoinSet<(WebhookId, Option<(u16, Bytes)>)> =
        tokio::task::JoinSet::new();
    loop {
        while let Some(delivery) = model.poll_webhook() {
            let id = delivery.id;
            let client = client.clone();
            deliveries.spawn(async move { (id, deliver(client, delivery).await) });
        }
        // Route what the model produced; a closed receiver means the client went away.
        while let Some((id, out)) = model.poll_output() {
            let done = matches!(out, ExchangeOutput::End | ExchangeOutput::Reset);
            let gone = match routes.get(&id) {
                Some(tx) => tx.send(out).is_err(),
                None => false,
            };
            if gone {
                routes.remove(&id);
                model.cancel(id);
            } else if done {
                routes.remove(&id);
            }
        }
        routes.retain(|id, tx| {
            if tx.is_closed() {
                model.cancel(*id);
                false
            } else {
                true
            }
        });
        let deadline = model.poll_timeout();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
        tokio::select! {
            call = calls.recv() => {
                let Some(call) = call else { return };
                let id = model.handle(call.request, now());
                routes.insert(id, call.outputs);
            }
            () = sleep => model.handle_timeout(now()),
            Some(joined) = deliveries.join_next(), if !deliveries.is_empty() => {
                if let Ok((id, outcome)) = joined {
                    match outcome {
                        Some((status, body)) => {
                            model.handle_webhook_response(id, status, &body, now());
                        }
                        None => model.handle_webhook_failure(id, now()),
                    }
                }
            }
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ResponseBody = StreamBody<
    std::pin::Pin<Box<dyn futures_core::Stream<Item = Result<Frame<Bytes>, BoxError>> + Send>>,
>;

/// Serves one request. An error closes the connection without a response (an injected
/// `dropConnection` fault).
async fn serve(
    request: http::Request<Incoming>,
    calls: mpsc::Sender<Call>,
    faults: Option<Arc<faults::Faults>>,
) -> Result<http::Response<ResponseBody>, BoxError> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(plain(413, "request body too large")),
    };
    let mut fault = None;
    if let Some(faults) = faults
        .as_ref()
        .filter(|_| parts.method != http::Method::OPTIONS)
    {
        if parts.uri.path() == faults::CONTROL_PATH {
            return Ok(faults.control(&parts.method, &body));
        }
        match faults.trigger(parts.uri.path(), &parts.method).await {
            None => {}
            Some(faults::Action::Drop) => return Err("injected fault: connection dropped".into()),
            Some(faults::Action::Respond(r)) => return Ok(r),
            Some(faults::Action::Modify(f)) => fault = Some(f),
        }
    }
    let method = parts.method.clone();
    let (outputs, mut rx) = mpsc::unbounded_channel();
    let call = Call {
        request: http::Request::from_parts(parts, body),
        outputs,
    };
    if calls.send(call).await.is_err() {
        return Ok(plain(503, "server stopping"));
    }
    let head = match rx.recv().await {
        Some(ExchangeOutput::Head(parts)) => parts,
        _ => return Ok(plain(500, "the model produced no response head")),
    };
    if let (Some(faults), Some(fault)) = (&faults, &fault) {
        return faults.modify(fault, &method, head, rx).await;
    }
    let stream = async_stream(rx);
    Ok(http::Response::from_parts(head, StreamBody::new(stream)))
}

/// The model's body outputs as a stream of frames; `Reset` aborts the connection.
fn async_stream(
    rx: mpsc::UnboundedReceiver<ExchangeOutput>,
) -> std::pin::Pin<Box<dyn futures_core::Stream<Item = Result<Frame<Bytes>, BoxError>> + Send>> {
    struct Frames {
        rx: mpsc::UnboundedReceiver<ExchangeOutput>,
        done: bool,
    }
    impl futures_core::Stream for Frames {
        type Item = Result<Frame<Bytes>, BoxError>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            use std::task::Poll;
            if self.done {
                return Poll::Ready(None);
            }
            match self.rx.poll_recv(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(ExchangeOutput::Body(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
                Poll::Ready(Some(ExchangeOutput::Reset)) => {
                    self.done = true;
                    Poll::Ready(Some(Err("connection reset by the model".into())))
                }
                Poll::Ready(Some(ExchangeOutput::Head(_))) => {
                    Poll::Ready(Some(Err("the model sent a second response head".into())))
                }
                Poll::Ready(Some(ExchangeOutput::End) | None) => {
                    self.done = true;
                    Poll::Ready(None)
                }
            }
        }
    }
    Box::pin(Frames { rx, done: false })
}

fn plain(status: u16, message: &'static str) -> http::Response<ResponseBody> {
    let stream = futures_stream_once(Bytes::from_static(message.as_bytes()));
    let mut r = http::Response::new(StreamBody::new(stream));
    *r.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    r
}

fn futures_stream_once(
    b: Bytes,
) -> std::pin::Pin<Box<dyn futures_core::Stream<Item = Result<Frame<Bytes>, BoxError>> + Send>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = tx.send(ExchangeOutput::Body(b));
    let _ = tx.send(ExchangeOutput::End);
    async_stream(rx)
}

#[cfg(test)]
mod webhook_tests {
    use super::*;

    async fn call(
        client: &WebhookClient,
        method: http::Method,
        url: &str,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let request = http::Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, value)
    }

    /// A webhook receiver on loopback: forwards each request's signature header and body, and
    /// answers `{"done": true}`.
    async fn receiver() -> (SocketAddr, mpsc::UnboundedReceiver<(String, Bytes)>) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let sig = req
                                .headers()
                                .get("webhook-signature")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            let body = req.into_body().collect().await?.to_bytes();
                            let _ = tx.send((sig, body));
                            Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from(
                                r#"{"done":true}"#,
                            ))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn webhooks_are_delivered_and_done_acks() {
        let (hook, mut received) = receiver().await;
        let server = spawn(ServerConfig {
            fault_injection: false,
            ..ServerConfig::default()
        })
        .await
        .unwrap();
        let client: WebhookClient =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let base = server.url().to_owned();
        let stream = format!("{base}/v1/stream/events/a");
        let sub = format!("{base}/v1/stream/__ds/subscriptions/hook");
        assert_eq!(call(&client, http::Method::PUT, &stream, "").await.0, 201);
        let config = serde_json::json!({
            "type": "webhook",
            "pattern": "events/*",
            "webhook": { "url": format!("http://{hook}/hook") },
        });
        let (status, _) = call(&client, http::Method::PUT, &sub, &config.to_string()).await;
        assert_eq!(status, 201);
        assert_eq!(
            call(&client, http::Method::POST, &stream, r#"{"n":1}"#)
                .await
                .0,
            204
        );
        let (sig, body) = tokio::time::timeout(Duration::from_secs(20), received.recv())
            .await
            .expect("a webhook delivery")
            .unwrap();
        assert!(sig.starts_with("t=") && sig.contains(",ed25519="), "{sig}");
        let wake: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(wake["subscription_id"], "hook");
        assert_eq!(
            wake["callback_url"],
            format!("{base}/v1/stream/__ds/subscriptions/hook/callback")
        );
        let tail = wake["streams"][0]["tail_offset"].clone();
        // The receiver answered done: the server acks the delivered tail (7.1). Wait for the
        // answer to reach the model (bounded).
        let mut acked = serde_json::Value::Null;
        for _ in 0..200 {
            let (_, sub) = call(&client, http::Method::GET, &sub, "").await;
            acked = sub["streams"][0]["acked_offset"].clone();
            if acked == tail {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(acked, tail);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn an_unreachable_receiver_marks_the_subscription_failed() {
        // A port nothing listens on (bound, then released).
        let closed = TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let server = spawn(ServerConfig {
            fault_injection: false,
            ..ServerConfig::default()
        })
        .await
        .unwrap();
        let client: WebhookClient =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let base = server.url().to_owned();
        let stream = format!("{base}/v1/stream/events/a");
        let sub = format!("{base}/v1/stream/__ds/subscriptions/hook");
        assert_eq!(call(&client, http::Method::PUT, &stream, "").await.0, 201);
        let config = serde_json::json!({
            "type": "webhook",
            "streams": ["events/a"],
            "webhook": { "url": format!("http://{closed}/hook") },
        });
        assert_eq!(
            call(&client, http::Method::PUT, &sub, &config.to_string())
                .await
                .0,
            201
        );
        call(&client, http::Method::POST, &stream, "1").await;
        // The failed delivery schedules a retry: status `failed` (6.3). Bounded wait.
        let mut status = serde_json::Value::Null;
        for _ in 0..200 {
            status = call(&client, http::Method::GET, &sub, "").await.1["status"].clone();
            if status == "failed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(status, "failed");
        server.shutdown().await;
    }
}
