//! `--only subscriptions` (issue 17, "How it is shown", the ds-bench bullet): pull-wake
//! workers of ds-tokio against the reference server (`webhooks: true`) and the embedded
//! server (`ds_tokio::server`; `--server rust` means the embedded server here, as
//! `durable-streams-server` has no subscriptions), on loopback:
//!
//! 1. wake-to-handler latency: an append to an idle linked stream until the worker's handler
//!    sees the batch (p50/p99);
//! 2. messages per second over 1,000 linked streams (10 messages each, appended before the
//!    workers start), the streams sharded over 1, 2 and 4 subscriptions (disjoint patterns),
//!    one worker each;
//! 3. failover: a worker aborted while its handler holds a batch (lease 1 s; it heartbeats
//!    every 100 ms so its lease was renewed just before); abort until a standby worker's
//!    handler sees the data, shown as "lease + X ms";
//! 4. worker memory with 10,000 linked streams (process RSS before starting the worker and
//!    after it processed one message on each; the reference server only, as the embedded
//!    server lives in this process).
//!
//! Every wait is bounded (`WAIT`); a scenario that times out prints its reason instead of a
//! figure.

use crate::servers::Kind;
use ds_proto::driver::subscription::WorkerOptions;
use ds_proto::ops::CreateOptions;
use ds_proto::subscription::{Batch, SubscriptionConfig, WorkerEvent};
use ds_tests::{RefServer, RefServerOptions};
use ds_tokio::server::{BackgroundServer, ServerConfig};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// The bound of every wait.
const WAIT: Duration = Duration::from_secs(60);
/// Latency samples.
const LATENCY_SAMPLES: usize = 50;
/// Streams and messages of the throughput scenario.
const STREAMS: usize = 1000;
const MESSAGES: usize = 10;
/// Bytes per message (text streams: a batch's length / this is its message count).
const MESSAGE_LEN: usize = 16;
/// Lease of the failover scenario.
const FAILOVER_LEASE_MS: u64 = 1000;
const FAILOVER_SAMPLES: usize = 3;
/// Streams of the memory scenario, and how many of them get a message (the worker's claim
/// response lists the streams with pending work, and ds-proto's worker keeps at most 1 MiB of
/// a claim response: 10,000 pending streams do not fit, see the report).
const MEMORY_STREAMS: usize = 10_000;
const MEMORY_PENDING: &[usize] = &[1_000, 5_000, 10_000];
/// Concurrent setup requests.
const SETUP_CONCURRENCY: usize = 32;

static UNIQUE: AtomicU64 = AtomicU64::new(0);

enum SubServer {
    Ref(RefServer),
    Embedded(BackgroundServer),
}

impl SubServer {
    fn start(kind: Kind) -> Result<SubServer, String> {
        match kind {
            Kind::Ref => RefServer::try_start_with(RefServerOptions {
                webhooks: true,
                long_poll_timeout_ms: crate::servers::LONG_POLL_TIMEOUT_MS,
                compression: Some(false),
                ..RefServerOptions::default()
            })
            .map(SubServer::Ref)
            .map_err(|e| format!("reference server: {e}")),
            Kind::Rust => {
                let mut config = ServerConfig::default();
                config.model.long_poll_timeout =
                    Duration::from_millis(crate::servers::LONG_POLL_TIMEOUT_MS);
                BackgroundServer::start(config)
                    .map(SubServer::Embedded)
                    .map_err(|e| format!("embedded server: {e}"))
            }
        }
    }

    fn url(&self) -> &str {
        match self {
            SubServer::Ref(s) => s.url(),
            SubServer::Embedded(s) => s.url(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            SubServer::Ref(_) => {
                "reference server (npm @durable-streams/server 0.3.7, webhooks: true)"
            }
            SubServer::Embedded(_) => "embedded server (ds_tokio::server, in process)",
        }
    }
}

fn tag(what: &str) -> String {
    format!(
        "sb-{what}-{}-{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    )
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn message(i: usize) -> String {
    format!("{i:0width$};", width = MESSAGE_LEN - 1)
}

/// Creates text streams `paths` (`SETUP_CONCURRENCY` at a time), each with `messages`
/// messages.
async fn create_streams(
    client: &ds_tokio::Client,
    paths: &[String],
    messages: usize,
) -> Result<(), String> {
    let sem = Arc::new(tokio::sync::Semaphore::new(SETUP_CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for p in paths {
        let permit = sem.clone().acquire_owned().await.map_err(err)?;
        let h = client.stream(&format!("/v1/stream/{p}"));
        set.spawn(async move {
            let _permit = permit;
            h.create(CreateOptions::with_content_type("text/plain"))
                .await
                .map_err(err)?;
            for i in 0..messages {
                h.append(message(i)).await.map_err(err)?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(err)??;
    }
    Ok(())
}

/// Appends one message to each of `paths`, `SETUP_CONCURRENCY` at a time.
async fn append_each(client: &ds_tokio::Client, paths: &[String]) -> Result<(), String> {
    let sem = Arc::new(tokio::sync::Semaphore::new(SETUP_CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for p in paths {
        let permit = sem.clone().acquire_owned().await.map_err(err)?;
        let h = client.stream(&format!("/v1/stream/{p}"));
        h.set_content_type("text/plain");
        set.spawn(async move {
            let _permit = permit;
            h.append(message(0)).await.map_err(err)?;
            Ok::<(), String>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(err)??;
    }
    Ok(())
}

/// A handler that reports every batch (stream, bytes, when) on a channel, and optionally
/// blocks forever after the first (a worker "dying" mid-wake).
struct Report {
    tx: mpsc::UnboundedSender<(String, usize, Instant)>,
    hang: bool,
    /// When each claim succeeded.
    claims: Option<mpsc::UnboundedSender<Instant>>,
    /// Every event, printed (`DS_DEBUG`).
    debug: bool,
}

impl Report {
    fn new(tx: mpsc::UnboundedSender<(String, usize, Instant)>) -> Report {
        Report {
            tx,
            hang: false,
            claims: None,
            debug: std::env::var_os("DS_DEBUG").is_some(),
        }
    }
}

impl ds_tokio::WorkerHandler for Report {
    type Error = String;
    async fn handle_batch(&mut self, batch: &Batch) -> Result<(), String> {
        let _ = self
            .tx
            .send((batch.stream.clone(), batch.data.len(), Instant::now()));
        if self.hang {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    fn on_event(&mut self, event: &WorkerEvent) {
        if self.debug {
            eprintln!("    event: {event:?}");
        }
        if let (WorkerEvent::Claimed { .. }, Some(tx)) = (event, &self.claims) {
            let _ = tx.send(Instant::now());
        }
    }
}

fn options(name: &str, wake: &str) -> WorkerOptions {
    let mut o = WorkerOptions::new(name).wake_stream(wake);
    o.request_timeout = Duration::from_secs(5);
    o
}

async fn create_subscription(
    client: &ds_tokio::Client,
    id: &str,
    wake: &str,
    pattern: &str,
    lease_ms: u64,
) -> Result<ds_tokio::SubscriptionHandle, String> {
    client
        .stream(&format!("/v1/stream/{wake}"))
        .create(CreateOptions::with_content_type("text/plain"))
        .await
        .map_err(err)?;
    let sub = client.subscription(id);
    sub.create(
        SubscriptionConfig::pull_wake(wake)
            .pattern(pattern)
            .lease_ttl_ms(lease_ms),
    )
    .await
    .map_err(err)?;
    Ok(sub)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Scenario 1: Append to an idle linked stream until the handler sees it.
async fn latency(client: &ds_tokio::Client) -> Result<String, String> {
    let t = tag("lat");
    let path = format!("{t}/s");
    create_streams(client, std::slice::from_ref(&path), 0).await?;
    let wake = format!("{t}-wake");
    let sub = create_subscription(
        client,
        &format!("{t}-sub"),
        &wake,
        &format!("{t}/*"),
        10_000,
    )
    .await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let worker = sub
        .work(options("lat", &wake), Report::new(tx))
        .await
        .map_err(err)?;
    let h = client.stream(&format!("/v1/stream/{path}"));
    h.set_content_type("text/plain");
    let mut samples = Vec::new();
    // One warm-up append, then the samples.
    for i in 0..=LATENCY_SAMPLES {
        // Let the previous wake end (done acked) so the stream is idle.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let t0 = Instant::now();
        h.append(message(i)).await.map_err(err)?;
        let (_, _, seen) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .map_err(|_| format!("sample {i}: the handler saw nothing within {WAIT:?}"))?
            .ok_or("the worker ended")?;
        if i > 0 {
            samples.push(seen - t0);
        }
    }
    worker.shutdown().await;
    samples.sort();
    Ok(format!(
        "p50 {}, p99 {} ({} samples)",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        samples.len()
    ))
}

/// A webhook receiver on loopback (one request per connection): reports when each request
/// was read whole and answers `{"done":true}`.
fn webhook_receiver() -> Result<(String, std::sync::mpsc::Receiver<Instant>), String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(err)?;
    let url = format!("http://{}/hook", listener.local_addr().map_err(err)?);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = conn.set_nodelay(true);
            let mut reader = BufReader::new(conn);
            let mut line = String::new();
            let mut length = 0usize;
            let mut first = true;
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(n) if n > 0 && (first || !line.trim().is_empty()) => {}
                    _ => break,
                }
                first = false;
                if let Some((k, v)) = line.split_once(':') {
                    if k.trim().eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let arrived = Instant::now();
            let answer = r#"{"done":true}"#;
            let mut conn = reader.into_inner();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = conn.flush();
            if tx.send(arrived).is_err() {
                return;
            }
        }
    });
    Ok((url, rx))
}

/// Scenario 1b: append to an idle stream of a webhook subscription until the receiver has
/// read the delivery (signature not verified).
async fn webhook_latency(client: &ds_tokio::Client) -> Result<String, String> {
    let t = tag("hook");
    let path = format!("{t}/s");
    create_streams(client, std::slice::from_ref(&path), 0).await?;
    let (url, arrivals) = webhook_receiver()?;
    let arrivals = Arc::new(std::sync::Mutex::new(arrivals));
    let sub = client.subscription(format!("{t}-sub"));
    sub.create(SubscriptionConfig::webhook(&url).stream(&path))
        .await
        .map_err(err)?;
    let h = client.stream(&format!("/v1/stream/{path}"));
    h.set_content_type("text/plain");
    let mut samples = Vec::new();
    for i in 0..=LATENCY_SAMPLES {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let t0 = Instant::now();
        h.append(message(i)).await.map_err(err)?;
        let rx = arrivals.clone();
        let seen = tokio::task::spawn_blocking(move || {
            rx.lock().map_err(err)?.recv_timeout(WAIT).map_err(err)
        })
        .await
        .map_err(err)?
        .map_err(|e| format!("sample {i}: no delivery: {e}"))?;
        if i > 0 {
            samples.push(seen - t0);
        }
    }
    samples.sort();
    Ok(format!(
        "p50 {}, p99 {} ({} samples)",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        samples.len()
    ))
}

/// Scenario 2: `STREAMS` streams of `MESSAGES` messages, over `shards` subscriptions and workers.
async fn throughput(client: &ds_tokio::Client, shards: usize) -> Result<String, String> {
    let t = tag("tp");
    let paths: Vec<String> = (0..STREAMS)
        .map(|i| format!("{t}/g{}/s{i:04}", i % shards))
        .collect();
    // Subscriptions first (links made at the tail when the streams are created), then the
    // streams and their data.
    let mut subs = Vec::new();
    for g in 0..shards {
        let wake = format!("{t}-wake{g}");
        let sub = create_subscription(
            client,
            &format!("{t}-sub{g}"),
            &wake,
            &format!("{t}/g{g}/*"),
            10_000,
        )
        .await?;
        subs.push((sub, wake));
    }
    create_streams(client, &paths, 0).await?;
    create_streams_data(client, &paths).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let start = Instant::now();
    let mut workers = Vec::new();
    for (g, (sub, wake)) in subs.iter().enumerate() {
        workers.push(
            sub.work(options(&format!("tp{g}"), wake), Report::new(tx.clone()))
                .await
                .map_err(err)?,
        );
    }
    let want = MESSAGES * MESSAGE_LEN;
    let mut got: HashMap<String, usize> = HashMap::new();
    let mut complete = 0;
    let mut batches = 0usize;
    let mut shard_left = vec![STREAMS / shards; shards];
    let mut shard_done = vec![0.0f64; shards];
    let deadline = tokio::time::Instant::now() + WAIT;
    let end = loop {
        let (stream, len, at) = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .map_err(|_| format!("{complete} of {STREAMS} streams processed within {WAIT:?}"))?
            .ok_or("the workers ended")?;
        batches += 1;
        let n = got.entry(stream.clone()).or_default();
        let before = *n;
        *n += len;
        if before < want && *n >= want {
            complete += 1;
            let g: usize = stream
                .strip_prefix(&format!("{t}/g"))
                .and_then(|r| r.split('/').next())
                .and_then(|g| g.parse().ok())
                .unwrap_or(0);
            shard_left[g] -= 1;
            if shard_left[g] == 0 {
                shard_done[g] = (at - start).as_secs_f64();
            }
            if complete == STREAMS {
                break at;
            }
        }
    };
    let secs = (end - start).as_secs_f64();
    for w in workers {
        w.shutdown().await;
    }
    let done: Vec<String> = shard_done.iter().map(|d| format!("{d:.2}")).collect();
    Ok(format!(
        "{:.0} msg/s ({} messages in {:.2} s, {batches} batches; each worker done at [{}] s)",
        (STREAMS * MESSAGES) as f64 / secs,
        STREAMS * MESSAGES,
        secs,
        done.join(", ")
    ))
}

/// Appends `MESSAGES` messages to each stream (after they are linked).
async fn create_streams_data(client: &ds_tokio::Client, paths: &[String]) -> Result<(), String> {
    for _ in 0..MESSAGES {
        append_each(client, paths).await?;
    }
    Ok(())
}

/// Scenario 3: Abort a worker whose handler holds a batch; a standby's handler sees the data after.
async fn failover(client: &ds_tokio::Client) -> Result<String, String> {
    let mut extra = Vec::new();
    let mut after_abort = Vec::new();
    for _ in 0..FAILOVER_SAMPLES {
        let t = tag("fo");
        let paths: Vec<String> = (0..5).map(|i| format!("{t}/k{i}")).collect();
        let wake = format!("{t}-wake");
        let sub = create_subscription(
            client,
            &format!("{t}-sub"),
            &wake,
            &format!("{t}/*"),
            FAILOVER_LEASE_MS,
        )
        .await?;
        create_streams(client, &paths, 0).await?;
        append_each(client, &paths).await?;
        let (dtx, mut drx) = mpsc::unbounded_channel();
        let (ctx, mut crx) = mpsc::unbounded_channel();
        let mut doomed_options = options("doomed", &wake);
        // No heartbeat before the abort: the lease runs from the claim.
        doomed_options.heartbeat_interval = Some(Duration::from_millis(FAILOVER_LEASE_MS - 1));
        let doomed = sub
            .work(
                doomed_options,
                Report {
                    hang: true,
                    claims: Some(ctx),
                    ..Report::new(dtx)
                },
            )
            .await
            .map_err(err)?;
        tokio::time::timeout(WAIT, drx.recv())
            .await
            .map_err(|_| "the doomed worker got no batch")?;
        let claimed = crx.try_recv().map_err(|_| "no claim seen")?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let standby = sub
            .work(options("standby", &wake), Report::new(tx))
            .await
            .map_err(err)?;
        // Let the standby start (its claim is refused).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = Instant::now();
        doomed.abort();
        let (_, _, seen) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .map_err(|_| "the standby saw nothing")?
            .ok_or("the standby ended")?;
        extra.push((seen - claimed).as_secs_f64() * 1000.0 - FAILOVER_LEASE_MS as f64);
        after_abort.push((seen - t0).as_secs_f64() * 1000.0);
        standby.shutdown().await;
    }
    let list = |v: &[f64], sign: bool| {
        v.iter()
            .map(|x| {
                if sign {
                    format!("{x:+.0}")
                } else {
                    format!("{x:.0}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(format!(
        "lease ({FAILOVER_LEASE_MS} ms) + [{}] ms from the claim (no heartbeat after it) to the standby's handler; [{}] ms from the abort ({} samples)",
        list(&extra, true),
        list(&after_abort, false),
        extra.len()
    ))
}

fn rss_kb() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Scenario 4: RSS before a worker starts and after it processed one message on each of `pending` of
/// `MEMORY_STREAMS` linked streams.
async fn memory(client: &ds_tokio::Client, pending: usize) -> Result<String, String> {
    let t = tag("mem");
    let paths: Vec<String> = (0..MEMORY_STREAMS)
        .map(|i| format!("{t}/s{i:05}"))
        .collect();
    let wake = format!("{t}-wake");
    let sub = create_subscription(
        client,
        &format!("{t}-sub"),
        &wake,
        &format!("{t}/*"),
        10_000,
    )
    .await?;
    let setup = Instant::now();
    create_streams(client, &paths, 0).await?;
    append_each(client, &paths[..pending]).await?;
    eprintln!(
        "  memory: {MEMORY_STREAMS} streams set up in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    let before = rss_kb().ok_or("no /proc/self/status")?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let start = Instant::now();
    let worker = sub
        .work(options("mem", &wake), Report::new(tx))
        .await
        .map_err(err)?;
    let mut seen = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut peak = before;
    while seen.len() < pending {
        let stream = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .map_err(|_| format!("{} of {pending} streams seen", seen.len()))?;
        let Some((stream, _, _)) = stream else {
            let exit = worker.wait().await;
            return Err(format!(
                "the worker ended ({exit:?}) after {} of {pending} streams",
                seen.len()
            ));
        };
        seen.insert(stream);
        if seen.len() % 500 == 0 {
            peak = peak.max(rss_kb().unwrap_or(0));
        }
    }
    let took = start.elapsed();
    let after = rss_kb().ok_or("no /proc/self/status")?;
    peak = peak.max(after);
    worker.shutdown().await;
    Ok(format!(
        "RSS {:.1} MiB before, {:.1} MiB after (+{:.1} MiB, peak +{:.1} MiB); the wake took {:.2} s",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after as f64 - before as f64) / 1024.0,
        (peak as f64 - before as f64) / 1024.0,
        took.as_secs_f64()
    ))
}

/// A fresh server of `kind` and a client of it: every scenario gets its own, as the
/// embedded server slows down as streams and subscriptions accumulate (seen: 1,000 streams
/// over one subscription ran at a third of the speed after two earlier runs).
fn fresh(rt: &Runtime, kind: Kind) -> Result<(SubServer, ds_tokio::Client), String> {
    let server = SubServer::start(kind)?;
    let client = {
        let _guard = rt.enter();
        ds_tokio::Client::builder()
            .base_url(server.url())
            .build()
            .map_err(err)?
    };
    Ok((server, client))
}

/// Runs the scenarios against `kinds` and returns the table (markdown).
pub fn run(rt: &Runtime, kinds: &[Kind]) -> String {
    let mut table = String::from(
        "\n### Subscriptions (ds-tokio pull-wake worker, loopback, a fresh server per row)\n\n| server | scenario | figure |\n|---|---|---|\n",
    );
    type Scenario<'a> = Box<dyn Fn(&ds_tokio::Client) -> Result<String, String> + 'a>;
    for &kind in kinds {
        let short = match kind {
            Kind::Ref => "reference",
            Kind::Rust => "embedded",
        };
        let mut scenarios: Vec<(String, Scenario)> = vec![(
            "wake-to-handler latency (pull-wake)".into(),
            Box::new(|c| rt.block_on(latency(c))),
        )];
        scenarios.push((
            "append-to-webhook latency (request read by the receiver)".into(),
            Box::new(|c| rt.block_on(webhook_latency(c))),
        ));
        for shards in [1, 2, 4] {
            scenarios.push((
                format!("{STREAMS} streams x {MESSAGES} msgs, {shards} subscription(s)/worker(s)"),
                Box::new(move |c| rt.block_on(throughput(c, shards))),
            ));
        }
        scenarios.push((
            "failover after abort mid-wake".into(),
            Box::new(|c| rt.block_on(failover(c))),
        ));
        // The embedded server lives in this process: its memory would count as the worker's.
        if kind == Kind::Ref {
            for &pending in MEMORY_PENDING {
                scenarios.push((
                    format!(
                        "worker memory, {MEMORY_STREAMS} linked streams, {pending} with a message"
                    ),
                    Box::new(move |c| rt.block_on(memory(c, pending))),
                ));
            }
        }
        for (name, scenario) in scenarios {
            let result = fresh(rt, kind).and_then(|(server, client)| {
                eprintln!("== subscriptions: {} at {}", server.name(), server.url());
                let r = scenario(&client);
                drop(client);
                drop(server);
                r
            });
            let cell = result.unwrap_or_else(|e| format!("failed: {e}"));
            eprintln!("  {name}: {cell}");
            table.push_str(&format!("| {short} | {name} | {cell} |\n"));
        }
    }
    table
}
