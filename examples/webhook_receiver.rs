//! Webhook receiver: a small hyper server receives a subscription's signed webhooks (PROTOCOL.md
//! 7.1), verifies each with the server's JWKS (fetched and cached through the client), and
//! processes the wake both ways:
//!
//! - **synchronously**: it reads the pending data, processes it, and answers `{"done": true}`:
//!   the server acks the wake's tail offsets and releases the lease;
//! - **asynchronously**: it answers `200 {}` at once, processes the data afterwards on a task,
//!   and sends the acks and `done` with a callback to the wake's `callback_url`.
//!
//! ```text
//! cargo run --example webhook_receiver                      # against the embedded server
//! DS_URL=http://127.0.0.1:4437 cargo run --example webhook_receiver   # a server with webhooks
//! ```
//!
//! The receiver listens on `http://127.0.0.1:<port>/hook`: servers accept plain-HTTP webhook
//! URLs only on loopback, for development; use https in production. A request that does not
//! verify is answered 401 and not processed. The example asserts that every event appended is
//! processed and that both wakes end with the cursor at the stream's tail.

use bytes::Bytes;
use ds_examples::ExampleServer;
use ds_proto::driver::subscription::WebhookError;
use ds_proto::subscription::{Ack, SubscriptionConfig, WakeNotification};
use ds_tokio::{webhook_done_body, Client, CreateOptions, Offset, WebhookVerifier};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// What the receiver shares between requests.
struct Receiver {
    client: Client,
    verifier: WebhookVerifier,
    subscription_id: String,
    /// Answer synchronously (`{"done": true}`) or asynchronously (callback).
    synchronous: AtomicBool,
    /// Every event processed, in order.
    processed: Mutex<Vec<String>>,
    /// One message per wake finished.
    finished: mpsc::UnboundedSender<&'static str>,
}

type Response = hyper::Response<Full<Bytes>>;

fn respond(status: u16, body: Bytes) -> Response {
    let mut r = hyper::Response::new(Full::new(body));
    *r.status_mut() = hyper::StatusCode::from_u16(status).expect("a valid status");
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

impl Receiver {
    /// Reads each pending stream from its acked cursor up to the wake's tail and processes it.
    async fn process(&self, wake: &WakeNotification) -> Result<Vec<Ack>, ds_tokio::Error> {
        let mut acks = Vec::new();
        for s in wake.streams.iter().filter(|s| s.has_pending) {
            let stream = self.client.stream(&format!("/v1/stream/{}", s.path));
            let read = stream.read_all_from(s.acked_offset.clone()).await?;
            let text = String::from_utf8_lossy(&read.data).into_owned();
            let mut processed = self.processed.lock().expect("not poisoned");
            processed.extend(text.lines().map(str::to_owned));
            acks.push(Ack {
                stream: s.path.clone(),
                offset: read.next_offset,
            });
        }
        Ok(acks)
    }

    async fn handle(self: Arc<Self>, req: hyper::Request<hyper::body::Incoming>) -> Response {
        let (parts, body) = req.into_parts();
        let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
            return respond(400, Bytes::from_static(b"{}"));
        };
        // Verify first, on the raw body: nothing is parsed or done before.
        let wake = match self
            .verifier
            .notification(&parts.headers, &body, &self.subscription_id)
            .await
        {
            Ok(wake) => wake,
            Err(WebhookError::Jwks(e)) => {
                eprintln!("cannot fetch the JWKS ({e}): the server will retry");
                return respond(503, Bytes::from_static(b"{}"));
            }
            Err(e) => {
                eprintln!("refused a webhook: {e}");
                return respond(401, Bytes::from_static(b"{}"));
            }
        };
        if self.synchronous.load(Ordering::SeqCst) {
            // Process now and finish the wake in the answer.
            match self.process(&wake).await {
                Ok(_) => {
                    let _ = self.finished.send("synchronous: answered {\"done\": true}");
                    respond(200, webhook_done_body())
                }
                Err(e) => {
                    eprintln!("processing failed ({e}): the wake is retried");
                    respond(500, Bytes::from_static(b"{}"))
                }
            }
        } else {
            // Accept now; process later and call back with the acks and `done`.
            let me = self.clone();
            tokio::spawn(async move {
                match me.process(&wake).await {
                    Ok(acks) => match me.client.send_callback(&wake, acks, true).await {
                        Ok(_) => {
                            let _ = me.finished.send("asynchronous: callback with done");
                        }
                        Err(e) if e.is_fenced() => eprintln!("the wake is stale: {e}"),
                        Err(e) => eprintln!("callback failed: {e}"),
                    },
                    Err(e) => eprintln!("processing failed ({e}): the lease will expire"),
                }
            });
            respond(200, Bytes::from_static(b"{}"))
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = ExampleServer::from_env()?;
    let client = Client::new(server.url())?;

    // The receiver's socket first: the subscription names its URL.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}/hook", listener.local_addr()?);

    let path = server.unique_path("orders");
    let stream = client.stream(&path);
    stream
        .create(CreateOptions::with_content_type("text/plain"))
        .await?;
    let relative = path.trim_start_matches("/v1/stream/").to_owned();
    let subscription_id = format!("orders-hook-{}", std::process::id());
    let subscription = client.subscription(&subscription_id);
    subscription
        .create(SubscriptionConfig::webhook(&hook_url).stream(&relative))
        .await?;

    let (finished, mut wakes) = mpsc::unbounded_channel();
    let receiver = Arc::new(Receiver {
        verifier: subscription.webhook_verifier()?,
        client: client.clone(),
        subscription_id: subscription_id.clone(),
        synchronous: AtomicBool::new(true),
        processed: Mutex::new(Vec::new()),
        finished,
    });
    let serving = receiver.clone();
    let server_task = tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let r = serving.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let r = r.clone();
                    async move { Ok::<_, std::convert::Infallible>(r.handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });

    let bound = Duration::from_secs(60);
    for (round, events) in [["order 1", "order 2"], ["order 3", "order 4"]]
        .iter()
        .enumerate()
    {
        receiver.synchronous.store(round == 0, Ordering::SeqCst);
        stream.set_content_type("text/plain");
        // One append per round: one wake. (Data appended after a wake's snapshot is read by
        // `process` too, but `{"done": true}` acks only up to the snapshot's tail, so that data
        // would come again in the next wake: delivery is at least once.)
        let batch: String = events.iter().map(|e| format!("{e}\n")).collect();
        let tail: Offset = stream.append(batch).await?.next_offset.expect("an offset");
        let how = tokio::time::timeout(bound, wakes.recv())
            .await?
            .expect("the receiver runs");
        println!("wake {}: {how}", round + 1);
        // The server applies the acks as it gets the answer or the callback: read it back.
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let s = subscription.get().await?;
            if s.link(&relative).is_some_and(|l| l.acked_offset == tail) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "never acked");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let processed = receiver.processed.lock().expect("not poisoned").clone();
    assert_eq!(processed, ["order 1", "order 2", "order 3", "order 4"]);
    subscription.delete().await?;
    stream.delete().await?;
    server_task.abort();
    println!("processed {} events in 2 wakes, both ways", processed.len());
    Ok(())
}
