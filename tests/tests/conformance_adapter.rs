//! The `ds-conformance-adapter` binary, driven over stdin/stdout as the official runner drives
//! it: init, create, append, read, shutdown (and a few protocol edge cases), with each driver.

use ds_tests::RefServer;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct AdapterProcess {
    child: Child,
    stdin: ChildStdin,
    replies: mpsc::Receiver<String>,
}

impl AdapterProcess {
    fn spawn(driver: &str) -> AdapterProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ds-conformance-adapter"))
            .env("DS_DRIVER", driver)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ds-conformance-adapter");
        let stdin = child.stdin.take().expect("stdin");
        let stdout: ChildStdout = child.stdout.take().expect("stdout");
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        AdapterProcess {
            child,
            stdin,
            replies,
        }
    }

    /// Sends one raw line and returns the one reply line.
    fn send_line(&mut self, line: &str) -> Value {
        writeln!(self.stdin, "{line}").expect("write a command");
        self.stdin.flush().expect("flush");
        let reply = self
            .replies
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("no reply to {line}: {e}"));
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("reply {reply:?} is not JSON: {e}"))
    }

    fn send(&mut self, command: Value) -> Value {
        self.send_line(&command.to_string())
    }
}

fn conversation(driver: &str) {
    let server = RefServer::shared();
    let mut adapter = AdapterProcess::spawn(driver);

    let init = adapter.send(json!({"type": "init", "serverUrl": server.url()}));
    assert_eq!(init["type"], "init", "{init}");
    assert_eq!(init["success"], true, "{init}");
    for feature in [
        "batching",
        "sse",
        "longPoll",
        "auto",
        "streaming",
        "dynamicHeaders",
        "retryOptions",
        "batchItems",
        "strictZeroValidation",
    ] {
        assert_eq!(init["features"][feature], true, "{feature}: {init}");
    }

    let path = ds_tests::refserver::unique_stream_path(&format!("adapter-{driver}"));
    let created =
        adapter.send(json!({"type": "create", "path": path, "contentType": "text/plain"}));
    assert_eq!(
        (created["type"].as_str(), created["status"].as_u64()),
        (Some("create"), Some(201)),
        "{created}"
    );

    let appended = adapter.send(json!({
        "type": "append", "path": path, "data": "hello ", "binary": false,
        "seq": 9007199254740991u64
    }));
    assert_eq!(appended["type"], "append", "{appended}");
    assert_eq!(appended["status"], 200, "{appended}");
    assert!(appended["offset"].is_string(), "{appended}");
    let binary = adapter.send(json!({
        "type": "append", "path": path, "data": "d29ybGQ=", "binary": true
    }));
    assert_eq!(binary["success"], true, "{binary}");

    let read = adapter.send(json!({"type": "read", "path": path}));
    assert_eq!(read["type"], "read", "{read}");
    assert_eq!(read["status"], 200, "{read}");
    assert_eq!(read["chunks"][0]["data"], "hello world", "{read}");
    assert_eq!(read["upToDate"], true, "{read}");
    assert_eq!(read["streamClosed"], false, "{read}");
    assert_eq!(read["offset"], binary["offset"], "{read}");

    // The shared server holds long-polls for 1000 ms.
    let live = adapter.send(json!({
        "type": "read", "path": path, "offset": read["offset"], "live": "long-poll",
        "timeoutMs": 1500
    }));
    assert_eq!(
        live["status"], 204,
        "a long-poll that ended without data: {live}"
    );
    assert_eq!(live["chunks"], json!([]), "{live}");

    let missing = adapter.send(json!({"type": "head", "path": "/no-such-stream-for-the-adapter"}));
    assert_eq!(missing["type"], "error", "{missing}");
    assert_eq!(missing["commandType"], "head", "{missing}");
    assert_eq!(missing["errorCode"], "NOT_FOUND", "{missing}");
    assert_eq!(missing["status"], 404, "{missing}");
    assert!(missing["message"]
        .as_str()
        .unwrap()
        .contains("no-such-stream-for-the-adapter"));

    let unknown = adapter.send(json!({"type": "teleport"}));
    assert_eq!(unknown["errorCode"], "NOT_SUPPORTED", "{unknown}");
    let garbage = adapter.send_line("{this is not json");
    assert_eq!(garbage["errorCode"], "PARSE_ERROR", "{garbage}");
    // A blank line gets no reply: the next reply belongs to the next command.
    writeln!(adapter.stdin).unwrap();

    let bye = adapter.send(json!({"type": "shutdown"}));
    assert_eq!(bye, json!({"type": "shutdown", "success": true}));
    let status = adapter.child.wait().expect("the adapter exits");
    assert!(status.success(), "{status}");
}

#[test]
fn the_adapter_binary_speaks_the_protocol_with_tokio() {
    conversation("tokio");
}

#[test]
fn the_adapter_binary_speaks_the_protocol_with_blocking() {
    conversation("blocking");
}

#[test]
fn the_adapter_binary_refuses_an_unknown_driver() {
    let status = Command::new(env!("CARGO_BIN_EXE_ds-conformance-adapter"))
        .env("DS_DRIVER", "carrier-pigeon")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run the adapter");
    assert_eq!(status.code(), Some(2));
}
