//! ds-tokio, and bare hyper doing the same HTTP exchanges without protocol logic.

use crate::util::{batch_bodies, live_payload, markers, Lat, Tput};
use crate::{Stack, WriteCfg, LIVE_GAP, LIVE_WAIT};
use bytes::Bytes;
use ds_proto::ops::{CreateOptions, ReadOptions};
use ds_proto::producer::ProducerConfig;
use ds_proto::reader::{ReadMode, ReaderConfig};
use ds_proto::Offset;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// The ds-tokio driver.
#[derive(Debug)]
pub struct TokioDriver {
    pub rt: Arc<Runtime>,
}

/// Bare hyper (hyper-util's pooled legacy client, as ds-tokio uses).
#[derive(Debug)]
pub struct Hyper {
    pub rt: Arc<Runtime>,
}

type Bare = HyperClient<HttpConnector, Full<Bytes>>;

fn bare_client() -> Bare {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .build(http)
}

fn client() -> Result<ds_tokio::Client, String> {
    ds_tokio::Client::builder()
        .build()
        .map_err(|e| e.to_string())
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Sends a request and reads the body to its end; returns the head and the body length.
async fn exchange(
    c: &Bare,
    req: http::Request<Full<Bytes>>,
) -> Result<(http::response::Parts, u64), String> {
    let resp = c.request(req).await.map_err(err)?;
    let (parts, mut body) = resp.into_parts();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(err)?.into_data() {
            n += data.len() as u64;
        }
    }
    Ok((parts, n))
}

fn header<'a>(p: &'a http::response::Parts, name: &str) -> Option<&'a str> {
    p.headers.get(name).and_then(|v| v.to_str().ok())
}

impl Stack for TokioDriver {
    fn name(&self) -> &'static str {
        "ds-tokio"
    }

    fn write(&self, url: &str, payloads: Vec<Bytes>, cfg: &WriteCfg) -> Result<Tput, String> {
        self.rt.block_on(async {
            let h = client()?.stream(url);
            h.set_content_type("application/octet-stream");
            let mut config = ProducerConfig::new(url, "bench-writer");
            cfg.apply(&mut config);
            let w = h.writer_with(config).map_err(err)?;
            let msgs = payloads.len() as u64;
            let bytes = payloads.iter().map(|p| p.len() as u64).sum();
            let start = Tput::start();
            for p in payloads {
                w.append(p).await.map_err(err)?;
            }
            w.flush().await.map_err(err)?;
            let t = Tput::finish(start, msgs, bytes);
            w.close(false).await.map_err(err)?;
            Ok(t)
        })
    }

    fn catch_up(&self, url: &str, expect: u64) -> Result<Tput, String> {
        self.rt.block_on(async {
            let h = client()?.stream(url);
            let mut config = ReaderConfig::new(url);
            config.mode = ReadMode::CatchUp;
            config.max_body_bytes = config.max_body_bytes.max(crate::CATCH_UP_LIMIT);
            let start = Tput::start();
            let mut r = h.reader_with(config).map_err(err)?;
            let mut n = 0u64;
            while let Some(c) = r.next_chunk().await {
                n += c.map_err(err)?.data.len() as u64;
            }
            let t = Tput::finish(start, 1, n);
            if n != expect {
                return Err(format!("read {n} bytes, expected {expect}"));
            }
            Ok(t)
        })
    }

    fn live(&self, url: &str, sse: bool, n: usize, budget: Duration) -> Result<Lat, String> {
        self.rt.block_on(async {
            let h = client()?.stream(url);
            h.set_content_type("text/plain");
            let mode = if sse {
                ReadMode::Sse
            } else {
                ReadMode::LongPoll
            };
            let mut reader = h.reader(Offset::now(), mode).map_err(err)?;
            let (tx, mut rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(async move {
                while let Some(Ok(c)) = reader.next_chunk().await {
                    let at = Instant::now();
                    for m in markers(&c.data) {
                        let _ = tx.send((m, at));
                    }
                }
            });
            let lat = live_loop(n, budget, &mut rx, |i| {
                let h = h.clone();
                async move { h.append(live_payload(i)).await.map(|_| ()).map_err(err) }
            })
            .await;
            task.abort();
            lat
        })
    }

    fn ops(&self, url: &str, n: usize) -> Result<[Lat; 4], String> {
        self.rt.block_on(async {
            let c = client()?;
            let mut out: [Lat; 4] = Default::default();
            let data = c.stream(&format!("{url}-data"));
            data.create(CreateOptions::with_content_type("text/plain"))
                .await
                .map_err(err)?;
            for i in 0..10 {
                data.append(live_payload(i)).await.map_err(err)?;
            }
            let target = c.stream(&format!("{url}-append"));
            target
                .create(CreateOptions::with_content_type("text/plain"))
                .await
                .map_err(err)?;
            let body = live_payload(0);
            for i in 0..n + crate::WARMUP {
                let keep = i >= crate::WARMUP;
                let t = Instant::now();
                c.stream(&format!("{url}-c{i}"))
                    .create(CreateOptions::with_content_type("text/plain"))
                    .await
                    .map_err(err)?;
                let t1 = Instant::now();
                target.append(body.clone()).await.map_err(err)?;
                let t2 = Instant::now();
                data.head().await.map_err(err)?;
                let t3 = Instant::now();
                let r = data
                    .read(ReadOptions::from(Offset::beginning()))
                    .await
                    .map_err(err)?;
                let t4 = Instant::now();
                if r.data.len() != 1000 {
                    return Err(format!("read {} bytes", r.data.len()));
                }
                if keep {
                    out[0].0.push(t1 - t);
                    out[1].0.push(t2 - t1);
                    out[2].0.push(t3 - t2);
                    out[3].0.push(t4 - t3);
                }
            }
            Ok(out)
        })
    }
}

/// Appends message `i` and waits for the reader to see it, `n` times (bounded by `budget`).
async fn live_loop<F, Fut>(
    n: usize,
    budget: Duration,
    rx: &mut mpsc::UnboundedReceiver<(usize, Instant)>,
    append: F,
) -> Result<Lat, String>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + budget;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut lat = Lat::default();
    for i in 0..n {
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(LIVE_GAP).await;
        let t0 = Instant::now();
        append(i).await?;
        loop {
            match tokio::time::timeout(LIVE_WAIT, rx.recv()).await {
                Ok(Some((m, at))) if m == i => {
                    lat.0.push(at.saturating_duration_since(t0));
                    break;
                }
                Ok(Some(_)) => continue,
                Ok(None) => return Err("the reader ended".into()),
                Err(_) => return Err(format!("message {i} not delivered within {LIVE_WAIT:?}")),
            }
        }
    }
    Ok(lat)
}

fn post(url: &str, ct: &str, body: Bytes) -> http::Request<Full<Bytes>> {
    http::Request::post(url)
        .header("content-type", ct)
        .body(Full::new(body))
        .expect("valid request")
}

fn get(url: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("valid request")
}

impl Stack for Hyper {
    fn name(&self) -> &'static str {
        "hyper"
    }

    fn write(&self, url: &str, payloads: Vec<Bytes>, cfg: &WriteCfg) -> Result<Tput, String> {
        let msgs = payloads.len() as u64;
        let bytes = payloads.iter().map(|p| p.len() as u64).sum();
        self.rt.block_on(async {
            let prebuilt = cfg
                .bare_prebuilt
                .then(|| batch_bodies(&payloads, cfg.bare_bytes));
            let c = bare_client();
            let start = Tput::start();
            // Building the bodies from the payloads is part of the work (a copy, as a client's
            // batching does), so it is inside the measurement unless `--bare-prebuilt`.
            let bodies = prebuilt.unwrap_or_else(|| batch_bodies(&payloads, cfg.bare_bytes));
            drop(payloads);
            if cfg.in_flight > 1 {
                // Plain appends, `in_flight` at a time on as many connections: order not kept.
                let queue = Arc::new(std::sync::Mutex::new(bodies.into_iter()));
                let mut tasks = Vec::new();
                for _ in 0..cfg.in_flight {
                    let (queue, c, url) = (queue.clone(), c.clone(), url.to_owned());
                    tasks.push(tokio::spawn(async move {
                        loop {
                            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                            let Some(body) = next else { return Ok(()) };
                            let req = post(&url, "application/octet-stream", body);
                            let (parts, _) = exchange(&c, req).await?;
                            if !parts.status.is_success() {
                                return Err(format!("POST answered {}", parts.status));
                            }
                        }
                    }));
                }
                for t in tasks {
                    t.await.map_err(err)??;
                }
                return Ok(Tput::finish(start, msgs, bytes));
            }
            for (seq, body) in bodies.into_iter().enumerate() {
                let mut req = post(url, "application/octet-stream", body);
                let h = req.headers_mut();
                h.insert("producer-id", http::HeaderValue::from_static("bench-bare"));
                h.insert("producer-epoch", http::HeaderValue::from(0u64));
                h.insert("producer-seq", http::HeaderValue::from(seq as u64));
                let (parts, _) = exchange(&c, req).await?;
                if parts.status.as_u16() != 200 {
                    return Err(format!("POST answered {}", parts.status));
                }
            }
            Ok(Tput::finish(start, msgs, bytes))
        })
    }

    fn catch_up(&self, url: &str, expect: u64) -> Result<Tput, String> {
        self.rt.block_on(async {
            let c = bare_client();
            let start = Tput::start();
            let (parts, n) = exchange(&c, get(&format!("{url}?offset=-1"))).await?;
            let t = Tput::finish(start, 1, n);
            if parts.status.as_u16() != 200 || n != expect {
                return Err(format!("status {}, {n} bytes of {expect}", parts.status));
            }
            Ok(t)
        })
    }

    fn live(&self, url: &str, sse: bool, n: usize, budget: Duration) -> Result<Lat, String> {
        self.rt.block_on(async {
            let c = bare_client();
            let (tx, mut rx) = mpsc::unbounded_channel();
            let reader_url = url.to_owned();
            let rc = c.clone();
            let task = tokio::spawn(async move {
                let _ = if sse {
                    bare_sse(&rc, &reader_url, &tx).await
                } else {
                    bare_long_poll(&rc, &reader_url, &tx).await
                };
            });
            let lat = live_loop(n, budget, &mut rx, |i| {
                let c = c.clone();
                let url = url.to_owned();
                async move {
                    let (p, _) = exchange(&c, post(&url, "text/plain", live_payload(i))).await?;
                    if p.status.is_success() {
                        Ok(())
                    } else {
                        Err(format!("POST answered {}", p.status))
                    }
                }
            })
            .await;
            task.abort();
            lat
        })
    }

    fn ops(&self, url: &str, n: usize) -> Result<[Lat; 4], String> {
        self.rt.block_on(async {
            let c = bare_client();
            let mut out: [Lat; 4] = Default::default();
            let put = |u: String| {
                http::Request::put(u)
                    .header("content-type", "text/plain")
                    .body(Full::new(Bytes::new()))
                    .expect("valid request")
            };
            let data = format!("{url}-data");
            exchange(&c, put(data.clone())).await?;
            for i in 0..10 {
                exchange(&c, post(&data, "text/plain", live_payload(i))).await?;
            }
            let target = format!("{url}-append");
            exchange(&c, put(target.clone())).await?;
            let body = live_payload(0);
            let read_url = format!("{data}?offset=-1");
            for i in 0..n + crate::WARMUP {
                let keep = i >= crate::WARMUP;
                let t = Instant::now();
                let (p, _) = exchange(&c, put(format!("{url}-c{i}"))).await?;
                let t1 = Instant::now();
                let (p1, _) = exchange(&c, post(&target, "text/plain", body.clone())).await?;
                let t2 = Instant::now();
                let head = http::Request::head(&data)
                    .body(Full::new(Bytes::new()))
                    .expect("valid request");
                let (p2, _) = exchange(&c, head).await?;
                let t3 = Instant::now();
                let (p3, len) = exchange(&c, get(&read_url)).await?;
                let t4 = Instant::now();
                if p.status.as_u16() != 201
                    || !p1.status.is_success()
                    || p2.status.as_u16() != 200
                    || p3.status.as_u16() != 200
                    || len != 1000
                {
                    return Err("unexpected answer".into());
                }
                if keep {
                    out[0].0.push(t1 - t);
                    out[1].0.push(t2 - t1);
                    out[2].0.push(t3 - t2);
                    out[3].0.push(t4 - t3);
                }
            }
            Ok(out)
        })
    }
}

/// Long-polls from `now`, following `Stream-Next-Offset` and echoing `Stream-Cursor`.
async fn bare_long_poll(
    c: &Bare,
    url: &str,
    tx: &mpsc::UnboundedSender<(usize, Instant)>,
) -> Result<(), String> {
    let mut offset = "now".to_owned();
    let mut cursor: Option<String> = None;
    loop {
        let mut u = format!("{url}?offset={offset}&live=long-poll");
        if let Some(c) = &cursor {
            u.push_str("&cursor=");
            u.push_str(c);
        }
        let resp = c.request(get(&u)).await.map_err(err)?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(err)?.to_bytes();
        let at = Instant::now();
        for m in markers(&body) {
            let _ = tx.send((m, at));
        }
        offset = header(&parts, "stream-next-offset")
            .ok_or("no stream-next-offset")?
            .to_owned();
        cursor = header(&parts, "stream-cursor").map(str::to_owned);
    }
}

/// Reads SSE from `now`, reconnecting from the last control's offset when the server ends the
/// response.
async fn bare_sse(
    c: &Bare,
    url: &str,
    tx: &mpsc::UnboundedSender<(usize, Instant)>,
) -> Result<(), String> {
    let mut offset = "now".to_owned();
    loop {
        let resp = c
            .request(get(&format!("{url}?offset={offset}&live=sse")))
            .await
            .map_err(err)?;
        let mut body = resp.into_body();
        let mut tail: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(err)?.into_data() else {
                continue;
            };
            let at = Instant::now();
            tail.extend_from_slice(&data);
            for m in markers(&tail) {
                let _ = tx.send((m, at));
            }
            if let Some(o) = crate::last_control_offset(&tail) {
                offset = o;
            }
            // Keep enough for a marker or a control straddling two frames (markers seen
            // twice are ignored by the caller).
            let keep = tail.len().min(256);
            tail.drain(..tail.len() - keep);
        }
    }
}
