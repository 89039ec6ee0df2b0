//! The consumer in both drivers: every message handled exactly once across injected failures
//! and a refused batch, and a clean stop at EOF.
//!
//! Nothing here waits for time to pass: the second half of the messages is written once the
//! handler has applied the first half, and a stop is asked for once the proxy has seen the
//! consumer's long-poll wait at the server.

use ds_proto::ops::CreateOptions;
use ds_proto::reader::Chunk;
use ds_proto::RetryPolicy;
use ds_tests::refserver::unique_stream_path;
use ds_tests::{Proxy, RecordedRequest, RefServer, RefServerOptions};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

const MESSAGES: usize = 60;

/// The longest a test waits for something it expects (a bound against hanging when the
/// behaviour breaks, never a measurement).
const EVENTUALLY: Duration = Duration::from_secs(60);

fn options() -> (ds_tokio::ConsumerOptions, ds_blocking::ConsumerOptions) {
    let retry = RetryPolicy {
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_attempts: Some(2),
        ..RetryPolicy::default()
    };
    (
        ds_tokio::ConsumerOptions {
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(100),
            reader_retry: retry.clone(),
            ..Default::default()
        },
        ds_blocking::ConsumerOptions {
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(100),
            reader_retry: retry,
            ..Default::default()
        },
    )
}

/// The application state: applied message numbers, and one batch refused on purpose.
#[derive(Default)]
struct Table {
    applied: Vec<u64>,
    refused_once: bool,
    errors: usize,
}

impl Table {
    fn apply(&mut self, batch: &Chunk) -> Result<(), String> {
        let items = batch.items().map_err(|e| e.to_string())?;
        if !self.refused_once && self.applied.len() >= MESSAGES / 3 && !items.is_empty() {
            self.refused_once = true;
            return Err("refused on purpose".into());
        }
        for it in items {
            let v: serde_json::Value = serde_json::from_slice(&it).map_err(|e| e.to_string())?;
            self.applied.push(v["n"].as_u64().unwrap());
        }
        Ok(())
    }
}

/// The table the handlers write, and a signal for each change.
#[derive(Default)]
struct Progress {
    table: Mutex<Table>,
    changed: Condvar,
}

impl Progress {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap()
    }

    /// Runs `f` on the table and signals the change.
    fn update<T>(&self, f: impl FnOnce(&mut Table) -> T) -> T {
        let out = f(&mut self.table());
        self.changed.notify_all();
        out
    }

    /// Waits until the handler has applied `n` messages.
    fn wait_applied(&self, n: usize) {
        let (table, timeout) = self
            .changed
            .wait_timeout_while(self.table(), EVENTUALLY, |t| t.applied.len() < n)
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "the consumer applied {} of {n} messages",
            table.applied.len()
        );
    }
}

fn write_all(server: &RefServer, url: &str, from: usize, to: usize) {
    let s = ds_blocking::Client::new(server.url()).unwrap().stream(url);
    for n in from..to {
        s.append_json(&serde_json::json!({ "n": n })).unwrap();
    }
}

fn check(table: &Table) {
    let expected: Vec<u64> = (0..MESSAGES as u64).collect();
    assert_eq!(table.applied, expected, "every message once, in order");
    assert!(table.refused_once);
    assert!(
        table.errors >= 1,
        "the refusal was reported to handle_error"
    );
}

fn make_stream(server: &RefServer) -> String {
    let url = server.stream_url("consumer");
    ds_blocking::Client::new(server.url())
        .unwrap()
        .stream(&url)
        .create(CreateOptions::with_content_type("application/json"))
        .unwrap();
    write_all(server, &url, 0, MESSAGES / 2);
    url
}

struct TokioHandler(Arc<Progress>);

impl ds_tokio::Handler for TokioHandler {
    type Error = String;
    async fn handle_batch(&mut self, batch: Chunk) -> Result<(), String> {
        self.0.update(|t| t.apply(&batch))
    }
    fn handle_error(&mut self, _error: &ds_tokio::ConsumerError<String>) -> ds_tokio::ErrorAction {
        self.0.update(|t| t.errors += 1);
        ds_tokio::ErrorAction::Reconnect
    }
}

struct BlockingHandler(Arc<Progress>);

impl ds_blocking::Handler for BlockingHandler {
    type Error = String;
    fn handle_batch(&mut self, batch: Chunk) -> Result<(), String> {
        self.0.update(|t| t.apply(&batch))
    }
    fn handle_error(
        &mut self,
        _error: &ds_blocking::ConsumerError<String>,
    ) -> ds_blocking::ErrorAction {
        self.0.update(|t| t.errors += 1);
        ds_blocking::ErrorAction::Reconnect
    }
}

fn faults(server: &RefServer, url: &str) {
    for fault in [
        serde_json::json!({"status": 503, "count": 3, "method": "GET"}),
        serde_json::json!({"dropConnection": true, "count": 1, "method": "GET"}),
    ] {
        server.inject_error(url, fault);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_consumer_handles_each_message_once_and_stops_at_eof() {
    let server = RefServer::start();
    let url = make_stream(&server);
    faults(&server, &url);
    let progress = Arc::new(Progress::default());
    let client = ds_tokio::Client::new(server.url()).unwrap();
    let consumer = client
        .stream(&url)
        .consume(options().0, TokioHandler(progress.clone()));
    let (s2, u2, p2) = (server.url().to_owned(), url.clone(), progress.clone());
    tokio::task::spawn_blocking(move || {
        // The rest arrives while the consumer is live, past the faults and the refusal.
        p2.wait_applied(MESSAGES / 2);
        let s = ds_blocking::Client::new(&s2).unwrap().stream(&u2);
        for n in MESSAGES / 2..MESSAGES {
            s.append_json(&serde_json::json!({ "n": n })).unwrap();
        }
        s.close().unwrap();
    })
    .await
    .unwrap();
    let exit = tokio::time::timeout(EVENTUALLY, consumer.wait())
        .await
        .expect("consumer ends at EOF");
    assert!(
        matches!(exit, ds_tokio::ConsumerExit::Eof { .. }),
        "{exit:?}"
    );
    check(&progress.table());
}

#[test]
fn blocking_consumer_handles_each_message_once_and_stops_at_eof() {
    let server = RefServer::start();
    let url = make_stream(&server);
    faults(&server, &url);
    let progress = Arc::new(Progress::default());
    let client = ds_blocking::Client::new(server.url()).unwrap();
    let consumer = client
        .stream(&url)
        .consume(options().1, BlockingHandler(progress.clone()));
    // The rest arrives while the consumer is live, past the faults and the refusal.
    progress.wait_applied(MESSAGES / 2);
    write_all(&server, &url, MESSAGES / 2, MESSAGES);
    client.stream(&url).close().unwrap();
    let exit = consumer.wait();
    assert!(
        matches!(exit, ds_blocking::ConsumerExit::Eof { .. }),
        "{exit:?}"
    );
    check(&progress.table());
}

/// Whether `q` is a long-poll read of the stream at `path`.
fn is_long_poll(q: &RecordedRequest, path: &str) -> bool {
    q.method == "GET" && q.path() == path && q.query_param("live") == Some("long-poll")
}

/// Waits until a long-poll of `path` waits at the server; returns its record.
fn pending_long_poll(proxy: &Proxy, path: &str) -> RecordedRequest {
    assert!(
        proxy.wait_until(EVENTUALLY, |rs| rs
            .iter()
            .any(|q| is_long_poll(q, path) && q.is_pending())),
        "the consumer never long-polled: {:#?}",
        proxy.requests()
    );
    proxy
        .requests()
        .into_iter()
        .find(|q| is_long_poll(q, path) && q.is_pending())
        .expect("a long-poll that waits")
}

/// Whether the long-poll `poll` was still unanswered (the stop interrupted it).
fn still_unanswered(proxy: &Proxy, poll: &RecordedRequest) -> bool {
    proxy
        .requests()
        .iter()
        .any(|q| q.seq == poll.seq && q.answer_began.is_none())
}

#[test]
fn consumers_stop_on_request() {
    // The server holds a long-poll for a minute; each consumer is stopped while its long-poll
    // waits there, and must end without that long-poll being answered.
    let server = RefServer::start_with(RefServerOptions {
        long_poll_timeout_ms: 60_000,
        ..RefServerOptions::default()
    });
    let proxy = Proxy::start(server.url());
    let path = unique_stream_path("stop");
    let client = ds_blocking::Client::new(proxy.url()).unwrap();
    client
        .stream(&path)
        .create(CreateOptions::with_content_type("application/json"))
        .unwrap();
    let progress = Arc::new(Progress::default());
    let consumer = client
        .stream(&path)
        .consume(options().1, BlockingHandler(progress.clone()));
    let poll = pending_long_poll(&proxy, &path);
    let (done, exit) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(consumer.shutdown()));
    let exit = exit
        .recv_timeout(EVENTUALLY)
        .expect("the blocking consumer stops when asked");
    assert!(
        matches!(exit, ds_blocking::ConsumerExit::Stopped { .. }),
        "{exit:?}"
    );
    assert!(
        still_unanswered(&proxy, &poll),
        "blocking: the stop interrupted the long-poll: {:#?}",
        proxy.requests()
    );

    proxy.clear();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let consumer = {
        let _runtime = rt.enter();
        ds_tokio::Client::new(proxy.url())
            .unwrap()
            .stream(&path)
            .consume(options().0, TokioHandler(progress.clone()))
    };
    let poll = pending_long_poll(&proxy, &path);
    let exit = rt
        .block_on(async { tokio::time::timeout(EVENTUALLY, consumer.shutdown()).await })
        .expect("the tokio consumer stops when asked");
    assert!(
        matches!(exit, ds_tokio::ConsumerExit::Stopped { .. }),
        "{exit:?}"
    );
    assert!(
        still_unanswered(&proxy, &poll),
        "tokio: the stop interrupted the long-poll: {:#?}",
        proxy.requests()
    );
}
