//! Tests of the test tooling itself: the reference-server harness, the raw client and the proxy.

use std::io::{BufRead, Read, Write};
use std::time::Duration;

use ds_tests::{raw_http, Proxy, RawConnection, RefServer, RefServerOptions};
use serde_json::json;

const TEXT: (&str, &str) = ("Content-Type", "text/plain");

#[test]
fn put_returns_201_and_injected_error_is_seen() {
    let server = RefServer::start();
    assert!(
        server.url().starts_with("http://127.0.0.1:"),
        "{}",
        server.url()
    );
    let url = server.stream_url("put");
    let resp = raw_http::request("PUT", &url, &[TEXT], b"").unwrap();
    assert_eq!(resp.status, 201, "{}", resp.body_text());

    let append = raw_http::request("POST", &url, &[TEXT], b"hello").unwrap();
    assert!(append.status == 200 || append.status == 204, "{append:?}");

    server.inject_error(&url, json!({ "status": 503, "count": 1 }));
    let read_url = format!("{url}?offset=-1");
    let failed = raw_http::request("GET", &read_url, &[], b"").unwrap();
    assert_eq!(failed.status, 503);
    let ok = raw_http::request("GET", &read_url, &[], b"").unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, b"hello");
    assert!(ok.header("stream-next-offset").is_some(), "{ok:?}");

    // Faults by request path, with a retry-after; then cleared.
    let path = url.split_once("127.0.0.1").unwrap().1;
    let path = &path[path.find('/').unwrap()..];
    server.inject_error(path, json!({ "status": 429, "retryAfter": 2, "count": 5 }));
    let limited = raw_http::request("GET", &read_url, &[], b"").unwrap();
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("2"));
    server.clear_errors();
    assert_eq!(
        raw_http::request("GET", &read_url, &[], b"")
            .unwrap()
            .status,
        200
    );
}

#[test]
fn create_stream_and_unique_urls() {
    let server = RefServer::shared();
    let a = server.create_stream("same", "application/json");
    let b = server.create_stream("same", "application/json");
    assert_ne!(a, b);
    assert!(
        a.starts_with(&format!("{}/v1/stream/same-", server.url())),
        "{a}"
    );
    assert!(std::ptr::eq(server, RefServer::shared()));
}

#[test]
fn two_servers_start_in_parallel_threads() {
    let handles: Vec<_> = (0..2)
        .map(|i| {
            std::thread::spawn(move || {
                let server = RefServer::start();
                let url = server.create_stream(&format!("par{i}"), "text/plain");
                let resp = raw_http::request("POST", &url, &[TEXT], b"x").unwrap();
                assert!(resp.status < 300, "{resp:?}");
                server.url().to_owned()
            })
        })
        .collect();
    let urls: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_ne!(urls[0], urls[1]);
}

#[test]
fn drop_stops_the_node_process() {
    let server = RefServer::start();
    let pid = server.pid();
    let url = server.url().to_owned();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(server);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(raw_http::request("GET", &format!("{url}/x"), &[], b"").is_err());
}

#[test]
fn file_backed_server_survives_restart_on_the_same_port() {
    let dir = std::env::temp_dir().join(format!("ds-tests-data-{}", std::process::id()));
    let options = RefServerOptions {
        data_dir: Some(dir.clone()),
        ..RefServerOptions::default()
    };
    let first = RefServer::start_with(options.clone());
    let url = first.create_stream("durable", "text/plain");
    raw_http::request("POST", &url, &[TEXT], b"kept").unwrap();
    let port = first.port();
    first.kill(); // a crash, not a graceful stop

    let second = RefServer::start_with(RefServerOptions { port, ..options });
    assert_eq!(second.port(), port);
    let resp = raw_http::request("GET", &format!("{url}?offset=-1"), &[], b"").unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"kept");
    drop(second);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn proxy_records_headers_and_forwards() {
    let server = RefServer::shared();
    let proxy = Proxy::start(server.url());
    let url = proxy.url_for(&server.stream_url("proxied"));
    assert!(url.starts_with(proxy.url()));
    let resp = raw_http::request(
        "PUT",
        &url,
        &[TEXT, ("Authorization", "Bearer secret-token")],
        b"",
    )
    .unwrap();
    assert_eq!(resp.status, 201);
    let reqs = proxy.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "PUT");
    assert_eq!(reqs[0].header("authorization"), Some("Bearer secret-token"));
    assert_eq!(
        proxy.count_matching(|r| r.header("Authorization") == Some("Bearer secret-token")),
        1
    );

    // Injected errors reach requests through the proxy too (same path).
    server.inject_error(&url, json!({ "status": 503 }));
    let read = format!("{url}?offset=-1");
    assert_eq!(
        raw_http::request("GET", &read, &[], b"").unwrap().status,
        503
    );
    assert_eq!(
        raw_http::request("GET", &read, &[], b"").unwrap().status,
        200
    );
    assert_eq!(
        proxy.count_matching(|r| r.query_param("offset") == Some("-1")),
        2
    );
    proxy.clear();
    assert!(proxy.requests().is_empty());
}

#[test]
fn proxy_keeps_connections_alive_and_forwards_chunked_bodies() {
    let server = RefServer::shared();
    let proxy = Proxy::start(server.url());
    let path = ds_tests::refserver::unique_stream_path("keepalive");
    let mut conn = RawConnection::connect(proxy.url()).unwrap();

    assert_eq!(
        conn.request("PUT", &path, &[TEXT], b"").unwrap().status,
        201
    );
    let chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let resp = conn
        .request(
            "POST",
            &path,
            &[TEXT, ("Transfer-Encoding", "chunked")],
            chunked,
        )
        .unwrap();
    assert!(resp.status < 300, "{resp:?}");
    let resp = conn.request("POST", &path, &[TEXT], b"!").unwrap();
    assert!(resp.status < 300, "{resp:?}");
    let read = conn
        .request("GET", &format!("{path}?offset=-1"), &[], b"")
        .unwrap();
    assert_eq!(read.status, 200);
    assert_eq!(read.body, b"hello world!");
    // The server frames catch-up reads as chunked: they came through the proxy intact.
    assert_eq!(read.header("transfer-encoding"), Some("chunked"));
    let again = conn
        .request(
            "GET",
            &format!("{path}?offset=-1"),
            &[("Accept-Encoding", "gzip")],
            b"",
        )
        .unwrap();
    assert_eq!(again.status, 200);

    let reqs = proxy.requests();
    assert_eq!(reqs.len(), 5);
    assert!(reqs.iter().all(|r| r.connection == reqs[0].connection));
    assert_eq!(reqs[1].body_len, 11);
    assert_eq!(reqs[2].body_len, 1);
    assert_eq!(proxy.connections_accepted(), 1);
    assert_eq!(
        reqs.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
}

#[test]
fn proxy_streams_sse_without_buffering() {
    let server = RefServer::shared();
    let url = server.create_stream("sse", "text/plain");
    raw_http::request("POST", &url, &[TEXT], b"first").unwrap();
    let proxy = Proxy::start(server.url());

    let mut conn = RawConnection::connect(proxy.url()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let target = raw_http::parse_url(&url).unwrap().target;
    conn.send("GET", &format!("{target}?offset=-1&live=sse"), &[], b"")
        .unwrap();
    let head = conn.read_response_head().unwrap();
    assert_eq!(head.status, 200);
    assert!(head
        .header("content-type")
        .is_some_and(|v| v.starts_with("text/event-stream")));

    let mut seen = String::new();
    let mut read_until = |conn: &mut RawConnection, needle: &str| {
        while !seen.contains(needle) {
            let mut line = String::new();
            let n = conn.reader().read_line(&mut line).unwrap();
            assert!(n > 0, "stream ended before {needle:?}; got {seen}");
            seen.push_str(&line);
        }
    };
    read_until(&mut conn, "first");
    read_until(&mut conn, "event: control");
    // The response is still open: a new append must come through while it is.
    raw_http::request("POST", &url, &[TEXT], b"second").unwrap();
    read_until(&mut conn, "second");
    assert!(proxy.wait_until(Duration::from_secs(1), |reqs| reqs
        .iter()
        .any(|r| r.query_param("live") == Some("sse"))));
    drop(conn);
}

#[test]
fn proxy_close_all_connections_and_drop() {
    let server = RefServer::shared();
    let proxy = Proxy::start(server.url());
    let path = ds_tests::refserver::unique_stream_path("close");
    let mut conn = RawConnection::connect(proxy.url()).unwrap();
    assert_eq!(
        conn.request("PUT", &path, &[TEXT], b"").unwrap().status,
        201
    );
    assert!(proxy.wait_until(Duration::from_secs(2), |_| true));
    assert_eq!(proxy.open_connections(), 1);
    proxy.close_all_connections();
    let mut buf = [0u8; 1];
    assert_eq!(conn.reader().read(&mut buf).unwrap_or(0), 0);

    let proxy_url = proxy.url().to_owned();
    drop(proxy);
    let refused = raw_http::request("GET", &format!("{proxy_url}{path}?offset=-1"), &[], b"");
    assert!(refused.is_err(), "{refused:?}");
}

#[test]
fn long_poll_times_out_with_the_configured_timeout() {
    let server = RefServer::start_with(RefServerOptions {
        long_poll_timeout_ms: 300,
        ..RefServerOptions::default()
    });
    let url = server.create_stream("lp", "text/plain");
    raw_http::request("POST", &url, &[TEXT], b"a").unwrap();
    let caught_up = raw_http::request("GET", &format!("{url}?offset=-1"), &[], b"").unwrap();
    let offset = caught_up.header("stream-next-offset").unwrap().to_owned();
    let started = std::time::Instant::now();
    let resp = raw_http::request(
        "GET",
        &format!("{url}?offset={offset}&live=long-poll"),
        &[],
        b"",
    )
    .unwrap();
    let waited = started.elapsed();
    assert_eq!(resp.status, 204, "{resp:?}");
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[tokio::test]
async fn usable_from_a_tokio_test() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = RefServer::shared();
    let url = server.create_stream("tokio", "text/plain");
    let proxy = Proxy::start(server.url());
    let target = raw_http::parse_url(&url).unwrap().target;

    let mut stream = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let req = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nX-Test: tokio\r\nConnection: close\r\n\r\nabc"
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.1 204"),
        "{text}"
    );
    assert_eq!(
        proxy.count_matching(|r| r.header("x-test") == Some("tokio")),
        1
    );

    let mut sync_out = Vec::new();
    let mut s = std::net::TcpStream::connect(proxy.addr()).unwrap();
    write!(
        s,
        "GET {target}?offset=-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    s.read_to_end(&mut sync_out).unwrap();
    let text = String::from_utf8_lossy(&sync_out);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.contains("abc"),
        "{text}"
    );
}
