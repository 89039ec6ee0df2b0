//! The `ds` binary, run as a user runs it, against `ds serve --port 0` started by each test
//! (and stopped when the test ends, pass or fail). Every command is bounded in time: one that
//! hangs is killed and fails its test.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DS: &str = env!("CARGO_BIN_EXE_ds");
/// The longest any one command may take (the unreachable-server case retries for up to 10 s).
const BOUND: Duration = Duration::from_secs(30);

/// What a finished command did.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A `ds` command line; `DS_URL` is removed from its environment unless set here.
struct Ds {
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

fn ds(args: &[&str]) -> Ds {
    let mut cmd = Command::new(DS);
    cmd.args(args).env_remove("DS_URL");
    Ds { cmd, stdin: None }
}

impl Ds {
    fn env(mut self, key: &str, value: &str) -> Ds {
        self.cmd.env(key, value);
        self
    }

    fn stdin(mut self, input: &str) -> Ds {
        self.stdin = Some(input.as_bytes().to_vec());
        self
    }

    fn spawn(mut self) -> Running {
        let mut child = self
            .cmd
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ds starts");
        if let Some(input) = self.stdin.take() {
            let mut pipe = child.stdin.take().expect("piped stdin");
            // Dropping the pipe at the end of the thread is the end of input.
            std::thread::spawn(move || pipe.write_all(&input));
        }
        let stdout = collect(child.stdout.take().expect("piped stdout"));
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        Running {
            child,
            stdout,
            stderr,
            what: format!("{:?}", self.cmd),
        }
    }

    /// Runs to the end (at most [`BOUND`]).
    fn run(self) -> Out {
        self.spawn().finish()
    }
}

/// Reads a pipe to its end on a thread.
fn collect(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    rx
}

/// A `ds` process that has been started.
struct Running {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
    what: String,
}

impl Running {
    /// Waits for the end, at most [`BOUND`]; a process still running then is killed and the
    /// test fails.
    fn finish(mut self) -> Out {
        let deadline = Instant::now() + BOUND;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waitable") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} still running after {BOUND:?}", self.what);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let text = |rx: &mpsc::Receiver<String>| rx.recv_timeout(BOUND).unwrap_or_default();
        Out {
            code: status.code().expect("exited, not killed by a signal"),
            stdout: text(&self.stdout),
            stderr: text(&self.stderr),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `ds serve --port 0`, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(DS)
            .args(["serve", "--port", "0", "--long-poll-ms", "500"])
            .env_remove("DS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ds serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut server = Server {
            child,
            url: String::new(),
        };
        // The server prints its URL once it listens.
        let line = rx.recv_timeout(BOUND).expect("ds serve prints its URL");
        server.url = line.trim().to_owned();
        assert!(
            server.url.starts_with("http://127.0.0.1:"),
            "ds serve printed {line:?}"
        );
        server
    }

    /// `ds --url URL ARGS...`
    fn ds(&self, args: &[&str]) -> Ds {
        let mut all = vec!["--url", self.url.as_str()];
        all.extend_from_slice(args);
        ds(&all)
    }

    fn stream_url(&self, name: &str) -> String {
        format!("{}/v1/stream/{name}", self.url)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[track_caller]
fn assert_exit(out: &Out, code: i32) {
    assert_eq!(out.code, code, "exit code; {out:#?}");
}

#[test]
fn help_lists_every_command_and_exits_0() {
    let out = ds(&["--help"]).run();
    assert_exit(&out, 0);
    for command in [
        "serve", "create", "append", "read", "tail", "head", "close", "delete", "sub", "work",
    ] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(command)),
            "{command} missing from --help: {}",
            out.stdout
        );
    }
    assert!(out
        .stdout
        .contains("Exit codes: 0 ok, 1 usage, 2 not found"));
    let out = ds(&["help", "tail"]).run();
    assert_exit(&out, 0);
    assert!(out.stdout.contains("--sse"), "{}", out.stdout);
    let out = ds(&["append", "--help"]).run();
    assert_exit(&out, 0);
    assert!(out.stdout.contains("--producer-id"), "{}", out.stdout);
}

#[test]
fn usage_errors_exit_1_and_print_nothing_on_stdout() {
    for args in [
        &[][..],
        &["frobnicate", "notes"],
        &["read"],
        &["read", "x", "--bogus"],
        &["read", "x", "y"],
        &["tail", "x", "--sse", "--long-poll"],
        &[
            "create",
            "x",
            "--ttl",
            "5",
            "--expires-at",
            "2030-01-01T00:00:00Z",
        ],
        &["serve", "--port", "eighty"],
        &["tail", "x", "--for", "soon"],
        &["sub", "create", "s", "--pull-wake", "w"],
        &["work", "s"],
    ] {
        // No server is needed: nothing is sent.
        let out = ds(args).env("DS_URL", "http://127.0.0.1:9").run();
        assert_eq!(out.code, 1, "ds {args:?}: {out:#?}");
        assert!(out.stdout.is_empty(), "ds {args:?}: {out:#?}");
        assert!(!out.stderr.is_empty(), "ds {args:?}: no explanation");
    }
}

#[test]
fn subscription_commands_from_create_to_delete() {
    let server = Server::start();
    assert_exit(
        &server
            .ds(&["create", "wake", "--content-type", "application/json"])
            .run(),
        0,
    );
    assert_exit(
        &server
            .ds(&["create", "deep/x/y", "--content-type", "text/plain"])
            .run(),
        0,
    );
    let create = [
        "sub",
        "create",
        "s1",
        "--pull-wake",
        "wake",
        "--pattern",
        "items/*",
        "--lease-ttl-ms",
        "5000",
    ];
    let out = server.ds(&create).run();
    assert_exit(&out, 0);
    assert!(out.stderr.contains("created"), "{out:#?}");
    assert_exit(&server.ds(&create).run(), 0);
    let mut other = create.to_vec();
    other[8] = "6000";
    assert_exit(&server.ds(&other).run(), 3);

    assert_exit(&server.ds(&["sub", "add", "s1", "deep/x/y"]).run(), 0);
    let got = server.ds(&["sub", "get", "s1"]).run();
    assert_exit(&got, 0);
    let v: serde_json::Value = serde_json::from_str(&got.stdout).expect("JSON on stdout");
    assert_eq!(v["wake_stream"], "wake");
    assert!(got.stdout.contains("deep/x/y"), "{got:#?}");
    assert_exit(&server.ds(&["sub", "remove", "s1", "deep/x/y"]).run(), 0);
    let got = server.ds(&["sub", "get", "s1"]).run();
    assert!(!got.stdout.contains("deep/x/y"), "{got:#?}");

    assert_exit(&server.ds(&["sub", "delete", "s1"]).run(), 0);
    assert_exit(&server.ds(&["sub", "get", "s1"]).run(), 2);
    assert_exit(&server.ds(&["work", "s1", "--worker", "w1"]).run(), 2);
    assert_exit(
        &server
            .ds(&["work", "s1", "--worker", "w1", "--wake-stream", "wake"])
            .run(),
        2,
    );
}

/// A `ds work` process whose stdout lines arrive one by one.
struct Worker {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Worker {
    fn start(server: &Server, id: &str, name: &str) -> Worker {
        let mut child = Command::new(DS)
            .args(["--url", &server.url, "work", id, "--worker", name])
            .env_remove("DS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ds work starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Worker { child, lines }
    }

    fn line(&self) -> serde_json::Value {
        let line = self.lines.recv_timeout(BOUND).expect("a line from ds work");
        serde_json::from_str(&line).expect("a JSON line")
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the exit (bounded) and gives its code.
    fn exit_code(mut self) -> Option<i32> {
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(status) = self.child.try_wait().expect("waitable") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "ds work did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn acked(server: &Server, id: &str, stream: &str) -> String {
    let got = server.ds(&["sub", "get", id]).run();
    let v: serde_json::Value = serde_json::from_str(&got.stdout).expect("JSON on stdout");
    v["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|l| l["path"] == stream))
        .map(|l| l["acked_offset"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

fn head_offset(server: &Server, stream: &str) -> String {
    let out = server.ds(&["head", stream]).run();
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("next-offset: "))
        .or_else(|| {
            out.stdout
                .lines()
                .find_map(|l| l.strip_prefix("next_offset: "))
        })
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn work_prints_json_lines_acks_them_and_stops_on_sigterm() {
    let server = Server::start();
    assert_exit(
        &server
            .ds(&["create", "wake", "--content-type", "application/json"])
            .run(),
        0,
    );
    assert_exit(
        &server
            .ds(&["create", "items/a", "--content-type", "application/json"])
            .run(),
        0,
    );
    assert_exit(
        &server
            .ds(&[
                "sub",
                "create",
                "s",
                "--pull-wake",
                "wake",
                "--pattern",
                "items/*",
            ])
            .run(),
        0,
    );
    assert_exit(&server.ds(&["append", "items/a", "1", "2", "3"]).run(), 0);
    let worker = Worker::start(&server, "s", "w1");
    let mut got = Vec::new();
    for _ in 0..3 {
        let line = worker.line();
        assert_eq!(line["stream"], "items/a");
        assert!(line["offset"].is_string());
        got.push(line["data"].clone());
    }
    assert_eq!(got, [1, 2, 3]);
    // Everything printed is acked (the worker acks after the flush; the wake then ends).
    let tail = head_offset(&server, "items/a");
    let deadline = Instant::now() + BOUND;
    while acked(&server, "s", "items/a") != tail {
        assert!(Instant::now() < deadline, "never acked to {tail}");
    }
    worker.signal("-TERM");
    assert_eq!(worker.exit_code(), Some(0));
}

#[test]
fn three_worker_processes_race_and_every_message_is_printed() {
    let server = Server::start();
    assert_exit(
        &server
            .ds(&["create", "wake", "--content-type", "application/json"])
            .run(),
        0,
    );
    let streams: Vec<String> = (0..30).map(|i| format!("race/s{i}")).collect();
    for s in &streams {
        assert_exit(
            &server
                .ds(&["create", s, "--content-type", "application/json"])
                .run(),
            0,
        );
    }
    assert_exit(
        &server
            .ds(&[
                "sub",
                "create",
                "s",
                "--pull-wake",
                "wake",
                "--pattern",
                "race/*",
            ])
            .run(),
        0,
    );
    let mut want = std::collections::BTreeSet::new();
    for (i, s) in streams.iter().enumerate() {
        assert_exit(&server.ds(&["append", s, &i.to_string(), "100"]).run(), 0);
        want.insert((s.clone(), i.to_string()));
        want.insert((s.clone(), "100".to_owned()));
    }
    let workers: Vec<Worker> = (0..3)
        .map(|i| Worker::start(&server, "s", &format!("w{i}")))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + BOUND;
    while !want.is_subset(&seen) {
        assert!(
            Instant::now() < deadline,
            "missing {:?}",
            want.difference(&seen)
        );
        let mut any = false;
        for w in &workers {
            while let Ok(line) = w.lines.try_recv() {
                any = true;
                let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
                let stream = v["stream"].as_str().expect("a stream").to_owned();
                seen.insert((stream, v["data"].to_string()));
            }
        }
        if !any {
            // Wait for the next line of any worker (bounded) rather than spinning.
            if let Ok(line) = workers[0].lines.recv_timeout(Duration::from_millis(100)) {
                let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
                let stream = v["stream"].as_str().expect("a stream").to_owned();
                seen.insert((stream, v["data"].to_string()));
            }
        }
    }
    for w in workers {
        w.signal("-INT");
        assert_eq!(w.exit_code(), Some(0));
    }
}

#[test]
fn a_worker_killed_with_sigkill_is_taken_over_after_its_lease() {
    let server = Server::start();
    assert_exit(
        &server
            .ds(&["create", "wake", "--content-type", "application/json"])
            .run(),
        0,
    );
    let streams: Vec<String> = (0..20).map(|i| format!("items/s{i}")).collect();
    for s in &streams {
        assert_exit(
            &server
                .ds(&["create", s, "--content-type", "application/json"])
                .run(),
            0,
        );
    }
    let create = [
        "sub",
        "create",
        "s",
        "--pull-wake",
        "wake",
        "--pattern",
        "items/*",
        "--lease-ttl-ms",
        "1000",
    ];
    assert_exit(&server.ds(&create).run(), 0);
    for s in &streams {
        assert_exit(&server.ds(&["append", s, "1", "2"]).run(), 0);
    }
    let doomed = Worker::start(&server, "s", "doomed");
    doomed.line();
    doomed.signal("-KILL");
    assert_eq!(doomed.exit_code(), None, "killed by a signal");
    let survivor = Worker::start(&server, "s", "survivor");
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + BOUND;
    // Every stream is acked to its tail eventually: by the doomed worker before it died, or
    // by the survivor once the lease expired.
    for s in &streams {
        let tail = head_offset(&server, s);
        while acked(&server, "s", s) != tail {
            while let Ok(l) = survivor.lines.try_recv() {
                seen.insert(l);
            }
            assert!(Instant::now() < deadline, "{s} never acked to {tail}");
        }
    }
    survivor.signal("-TERM");
    assert_eq!(survivor.exit_code(), Some(0));
}

#[test]
fn a_text_stream_from_create_to_delete() {
    let server = Server::start();
    let url = server.stream_url("notes");

    let out = server
        .ds(&["create", "notes", "--content-type", "text/plain"])
        .run();
    assert_exit(&out, 0);
    assert_eq!(out.stdout, format!("{url}\n"));
    let again = server
        .ds(&["create", "notes", "--content-type", "text/plain"])
        .run();
    assert_exit(&again, 0);
    let other = server
        .ds(&["create", "notes", "--content-type", "application/json"])
        .run();
    assert_exit(&other, 3);

    assert_exit(
        &server.ds(&["append", "notes"]).stdin("one\ntwo\n").run(),
        0,
    );
    assert_exit(&server.ds(&["append", "notes", "three", "four"]).run(), 0);

    let read = server.ds(&["read", "notes"]).run();
    assert_exit(&read, 0);
    assert_eq!(read.stdout, "one\ntwo\nthree\nfour\n");

    // Every chunk printed with the offset after it; reading from that offset resumes there.
    let with_offsets = server.ds(&["read", "notes", "--offsets"]).run();
    assert_exit(&with_offsets, 0);
    let first = with_offsets.stdout.lines().next().expect("a chunk");
    let (offset, data) = first.split_once('\t').expect("OFFSET<tab>DATA");
    assert!(!data.is_empty());
    let rest = server.ds(&["read", "notes", "--offset", offset]).run();
    assert_exit(&rest, 0);
    assert!(
        "one\ntwo\nthree\nfour\n".ends_with(&rest.stdout) && rest.stdout.len() < read.stdout.len(),
        "from {offset}: {:?}",
        rest.stdout
    );

    // An open stream: `tail --for` prints what is there and stops when told to.
    let tail = server.ds(&["tail", "notes", "--for", "1"]).run();
    assert_exit(&tail, 0);
    assert_eq!(tail.stdout, "one\ntwo\nthree\nfour\n");

    let head = server.ds(&["head", "notes"]).run();
    assert_exit(&head, 0);
    assert!(
        head.stdout.lines().any(|l| l == "content-type: text/plain"),
        "{head:#?}"
    );
    assert!(
        head.stdout.lines().any(|l| l == "closed: false"),
        "{head:#?}"
    );
    assert!(
        head.stdout.lines().any(|l| l.starts_with("next-offset: ")),
        "{head:#?}"
    );

    let close = server.ds(&["close", "notes"]).run();
    assert_exit(&close, 0);
    let final_offset = close.stdout.trim();
    assert!(!final_offset.is_empty(), "{close:#?}");
    assert_exit(&server.ds(&["append", "notes", "five"]).run(), 3);
    let head = server.ds(&["head", "notes"]).run();
    assert!(
        head.stdout.lines().any(|l| l == "closed: true"),
        "{head:#?}"
    );
    assert!(
        head.stdout
            .lines()
            .any(|l| l == format!("next-offset: {final_offset}")),
        "{head:#?}"
    );
    // A closed stream: `tail` ends by itself.
    let tail = server.ds(&["tail", "notes"]).run();
    assert_exit(&tail, 0);
    assert_eq!(tail.stdout, "one\ntwo\nthree\nfour\n");

    assert_exit(&server.ds(&["delete", "notes"]).run(), 0);
    assert_exit(&server.ds(&["head", "notes"]).run(), 2);
    assert_exit(&server.ds(&["read", "notes"]).run(), 2);
}

#[test]
fn tail_follows_a_json_writer_to_the_end_over_sse_and_long_poll() {
    let server = Server::start();
    assert_exit(
        &server
            .ds(&["create", "events", "--content-type", "application/json"])
            .run(),
        0,
    );
    let sse = server.ds(&["tail", "events", "--sse"]).spawn();
    let long_poll = server
        .ds(&["tail", "events", "--long-poll", "--offsets"])
        .spawn();

    // One bad message and nothing of the call is appended.
    let bad = server
        .ds(&["append", "events", "{\"n\":1}", "not json"])
        .run();
    assert_exit(&bad, 4);
    let out = server
        .ds(&["append", "events", "--close"])
        .stdin("{\"n\":1}\n\n{\"n\":2}\n")
        .run();
    assert_exit(&out, 0);

    let sse = sse.finish();
    assert_exit(&sse, 0);
    assert_eq!(sse.stdout, "{\"n\":1}\n{\"n\":2}\n");
    let long_poll = long_poll.finish();
    assert_exit(&long_poll, 0);
    let messages: Vec<&str> = long_poll
        .stdout
        .lines()
        .map(|l| l.split_once('\t').expect("OFFSET<tab>MESSAGE").1)
        .collect();
    assert_eq!(messages, ["{\"n\":1}", "{\"n\":2}"]);
}

#[test]
fn append_takes_negative_numbers_raw_input_and_escaped_dashes() {
    let server = Server::start();
    assert_exit(
        &server
            .ds(&["create", "nums", "--content-type", "application/json"])
            .run(),
        0,
    );
    assert_exit(&server.ds(&["append", "nums", "-5", "3"]).run(), 0);
    assert_eq!(server.ds(&["read", "nums"]).run().stdout, "-5\n3\n");
    // --raw is for non-JSON streams: a usage error.
    assert_exit(&server.ds(&["append", "nums", "--raw", "1"]).run(), 1);

    assert_exit(&server.ds(&["create", "bytes"]).run(), 0);
    assert_exit(
        &server.ds(&["append", "bytes", "--raw"]).stdin("a\nb").run(),
        0,
    );
    assert_exit(&server.ds(&["append", "bytes", "--", "--c"]).run(), 0);
    assert_eq!(server.ds(&["read", "bytes"]).run().stdout, "a\nb--c\n");
}

#[test]
fn missing_streams_exit_2() {
    let server = Server::start();
    for args in [
        &["head", "nowhere"][..],
        &["read", "nowhere"],
        &["append", "nowhere", "x"],
        &["close", "nowhere"],
        &["delete", "nowhere"],
    ] {
        let out = server.ds(args).run();
        assert_eq!(out.code, 2, "ds {args:?}: {out:#?}");
        assert!(out.stdout.is_empty(), "ds {args:?}: {out:#?}");
    }
}

#[test]
fn the_server_comes_from_ds_url_unless_url_is_given() {
    let server = Server::start();
    let out = ds(&["create", "envy"]).env("DS_URL", &server.url).run();
    assert_exit(&out, 0);
    assert_eq!(out.stdout, format!("{}\n", server.stream_url("envy")));
    // --url wins over $DS_URL.
    let out = ds(&["--url", &server.url, "head", "envy"])
        .env("DS_URL", "http://127.0.0.1:9")
        .run();
    assert_exit(&out, 0);
    // Nothing listens on the discard port: another error, exit 4.
    let out = ds(&["head", "envy"])
        .env("DS_URL", "http://127.0.0.1:9")
        .run();
    assert_exit(&out, 4);
    assert!(out.stderr.contains("cannot reach the server"), "{out:#?}");
}

#[test]
fn serve_for_stops_by_itself() {
    let out = ds(&["serve", "--port", "0", "--for", "0.2"]).run();
    assert_exit(&out, 0);
    assert!(out.stdout.starts_with("http://127.0.0.1:"), "{out:#?}");
}
