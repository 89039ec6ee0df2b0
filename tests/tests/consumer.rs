//! The consumer in both drivers: every message handled exactly once across injected failures
//! and a refused batch, and a clean stop at EOF.

use ds_proto::ops::CreateOptions;
use ds_proto::reader::Chunk;
use ds_proto::RetryPolicy;
use ds_tests::RefServer;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MESSAGES: usize = 60;

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

struct TokioHandler(Arc<Mutex<Table>>);

impl ds_tokio::Handler for TokioHandler {
    type Error = String;
    async fn handle_batch(&mut self, batch: Chunk) -> Result<(), String> {
        self.0.lock().unwrap().apply(&batch)
    }
    fn handle_error(&mut self, _error: &ds_tokio::ConsumerError<String>) -> ds_tokio::ErrorAction {
        self.0.lock().unwrap().errors += 1;
        ds_tokio::ErrorAction::Reconnect
    }
}

struct BlockingHandler(Arc<Mutex<Table>>);

impl ds_blocking::Handler for BlockingHandler {
    type Error = String;
    fn handle_batch(&mut self, batch: Chunk) -> Result<(), String> {
        self.0.lock().unwrap().apply(&batch)
    }
    fn handle_error(
        &mut self,
        _error: &ds_blocking::ConsumerError<String>,
    ) -> ds_blocking::ErrorAction {
        self.0.lock().unwrap().errors += 1;
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
    let table = Arc::new(Mutex::new(Table::default()));
    let client = ds_tokio::Client::new(server.url()).unwrap();
    let consumer = client
        .stream(&url)
        .consume(options().0, TokioHandler(table.clone()));
    let (s2, u2) = (server.url().to_owned(), url.clone());
    tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(300));
        let s = ds_blocking::Client::new(&s2).unwrap().stream(&u2);
        for n in MESSAGES / 2..MESSAGES {
            s.append_json(&serde_json::json!({ "n": n })).unwrap();
        }
        s.close().unwrap();
    })
    .await
    .unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(30), consumer.wait())
        .await
        .expect("consumer ends at EOF");
    assert!(
        matches!(exit, ds_tokio::ConsumerExit::Eof { .. }),
        "{exit:?}"
    );
    check(&table.lock().unwrap());
}

#[test]
fn blocking_consumer_handles_each_message_once_and_stops_at_eof() {
    let server = RefServer::start();
    let url = make_stream(&server);
    faults(&server, &url);
    let table = Arc::new(Mutex::new(Table::default()));
    let client = ds_blocking::Client::new(server.url()).unwrap();
    let consumer = client
        .stream(&url)
        .consume(options().1, BlockingHandler(table.clone()));
    std::thread::sleep(Duration::from_millis(300));
    write_all(&server, &url, MESSAGES / 2, MESSAGES);
    client.stream(&url).close().unwrap();
    let exit = consumer.wait();
    assert!(
        matches!(exit, ds_blocking::ConsumerExit::Eof { .. }),
        "{exit:?}"
    );
    check(&table.lock().unwrap());
}

#[test]
fn consumers_stop_on_request() {
    let server = RefServer::shared();
    let url = server.stream_url("stop");
    let client = ds_blocking::Client::new(server.url()).unwrap();
    client
        .stream(&url)
        .create(CreateOptions::with_content_type("application/json"))
        .unwrap();
    let table = Arc::new(Mutex::new(Table::default()));
    let consumer = client
        .stream(&url)
        .consume(options().1, BlockingHandler(table.clone()));
    std::thread::sleep(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let exit = consumer.shutdown();
    assert!(
        matches!(exit, ds_blocking::ConsumerExit::Stopped { .. }),
        "{exit:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stop interrupts a long-poll"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = ds_tokio::Client::new(server.url()).unwrap();
        let consumer = client
            .stream(&url)
            .consume(options().0, TokioHandler(table.clone()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let exit = consumer.shutdown().await;
        assert!(
            matches!(exit, ds_tokio::ConsumerExit::Stopped { .. }),
            "{exit:?}"
        );
    });
}
