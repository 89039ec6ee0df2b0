//! Durable client state against the reference server, through both drivers: a writer killed
//! (SIGKILL) in a child process mid-stream, with batches in flight, is restored from its last
//! persisted snapshot plus its journal, and every append is in the stream exactly once, in
//! order; a reader restored from a snapshot reproduces the rest of the stream exactly.
//!
//! The child is this test binary itself, run with `DS_DURABLE_CHILD` set and filtered to
//! [`durable_child_process`] (which does nothing in a normal run).

use ds_proto::ops::CreateOptions;
use ds_proto::producer::{ProducerConfig, ProducerSnapshot};
use ds_proto::reader::{ReadMode, ReaderEvent, ReaderSnapshot};
use ds_proto::RetryPolicy;
use ds_tests::drivers::{AnyClient, AnyReader, AnyStream, DriverKind};
use ds_tests::{Proxy, RefServer};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "DS_DURABLE_CHILD";
const DIR_ENV: &str = "DS_DURABLE_DIR";
const BASE_ENV: &str = "DS_DURABLE_BASE";
const STREAM_ENV: &str = "DS_DURABLE_STREAM";
const DRIVER_ENV: &str = "DS_DURABLE_DRIVER";

/// Every record is this long, so the journal's complete records are `len / RECORD`.
const RECORD: usize = 100;

/// Record `n`: "{n:010}" padded with dots, newline-terminated.
fn record(n: u64) -> Vec<u8> {
    let mut r = format!("{n:010}").into_bytes();
    r.resize(RECORD - 1, b'.');
    r.push(b'\n');
    r
}

fn check_records(data: &[u8], count: u64) {
    for (n, rec) in data.chunks(RECORD).enumerate() {
        assert_eq!(
            rec,
            &record(n as u64)[..],
            "record {n}: every append exactly once, in order"
        );
    }
    assert_eq!(data.len() as u64, count * RECORD as u64, "record count");
}

fn writer_config() -> ProducerConfig {
    ProducerConfig {
        content_type: "text/plain".into(),
        linger: Duration::from_millis(2),
        max_batch_items: 8,
        max_batch_bytes: 1000,
        // Small: `append` waits for acknowledgements, so the journal stays just ahead of the
        // server and batches are always in flight.
        max_buffered_bytes: 4000,
        max_in_flight: 4,
        retry: RetryPolicy {
            initial_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(100),
            max_attempts: None,
            max_elapsed: Some(Duration::from_secs(60)),
            ..RetryPolicy::default()
        },
        ..ProducerConfig::new("http://placeholder/", "crash-writer")
    }
}

fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join("snapshot.json")
}

fn journal_path(dir: &Path) -> PathBuf {
    dir.join("journal")
}

/// Persists a snapshot atomically (write, then rename over the old one).
fn persist(dir: &Path, snapshot: &ProducerSnapshot) {
    let tmp = dir.join("snapshot.json.tmp");
    fs::write(&tmp, snapshot.to_json()).expect("write snapshot");
    fs::rename(&tmp, snapshot_path(dir)).expect("rename snapshot");
}

fn load(dir: &Path) -> Option<ProducerSnapshot> {
    let bytes = fs::read(snapshot_path(dir)).ok()?;
    Some(ProducerSnapshot::from_json(&bytes).expect("a valid snapshot"))
}

/// The journal's complete records; a record cut by the kill is cut off (its append was never
/// called: the journal is written first).
fn journal_records(dir: &Path, truncate: bool) -> u64 {
    let path = journal_path(dir);
    let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let complete = len / RECORD as u64;
    if truncate && len != complete * RECORD as u64 {
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(complete * RECORD as u64).unwrap();
    }
    complete
}

/// Restores a writer from `dir` (or starts one) and replays the journal after the snapshot.
/// The snapshot callback is set before anything new can be sent.
fn resume(stream: &AnyStream, dir: &Path) -> (ds_tests::drivers::AnyWriter, u64) {
    let complete = journal_records(dir, true);
    let (writer, from) = match load(dir) {
        Some(snap) => {
            let from = snap.next_append_id.0;
            (stream.writer_from_snapshot(snap).unwrap(), from)
        }
        None => (stream.writer_with(writer_config()).unwrap(), 0),
    };
    let d = dir.to_owned();
    writer.on_snapshot(move |s| persist(&d, s));
    for n in from..complete {
        let id = writer.append(record(n)).unwrap();
        assert_eq!(id.0, n, "a replayed append gets its old id");
    }
    (writer, complete)
}

/// The child: resumes, then journals and appends records until it is killed.
#[test]
fn durable_child_process() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let dir = PathBuf::from(std::env::var(DIR_ENV).unwrap());
    let kind = match std::env::var(DRIVER_ENV).as_deref() {
        Ok("blocking") => DriverKind::Blocking,
        _ => DriverKind::Tokio,
    };
    let client = AnyClient::new(kind, &std::env::var(BASE_ENV).unwrap());
    let stream = client.stream(&std::env::var(STREAM_ENV).unwrap());
    let (writer, mut n) = resume(&stream, &dir);
    let mut journal = OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal_path(&dir))
        .unwrap();
    loop {
        // Journal first: after a crash, whatever was appended is in the journal.
        journal.write_all(&record(n)).unwrap();
        let id = writer.append(record(n)).unwrap();
        assert_eq!(id.0, n);
        n += 1;
    }
}

/// The child process, killed if the parent test panics before it does.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(kind: DriverKind, base: &str, stream: &str, dir: &Path, round: u32) -> ChildGuard {
    let log = File::create(dir.join(format!("child-{round}.log"))).unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args(["durable_child_process", "--exact", "--nocapture"])
        .env(CHILD_ENV, "1")
        .env(DIR_ENV, dir)
        .env(BASE_ENV, base)
        .env(STREAM_ENV, stream)
        .env(
            DRIVER_ENV,
            match kind {
                DriverKind::Tokio => "tokio",
                DriverKind::Blocking => "blocking",
            },
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(ChildGuard)
        .expect("spawn the child writer")
}

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("ds-{name}-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn pending_batches(snap: &ProducerSnapshot) -> usize {
    snap.batches
        .iter()
        .filter(|b| {
            matches!(
                b.state,
                ds_proto::producer::SnapshotBatchState::Pending { .. }
            )
        })
        .count()
}

#[test]
fn a_writer_killed_mid_stream_resumes_exactly_once_from_its_snapshot_and_journal() {
    // A private server: the fault below slows every append of the stream.
    let server = RefServer::start();
    // The child writes with one driver, the parent finishes with the other: the snapshot
    // format is the same.
    for (child_kind, parent_kind) in [
        (DriverKind::Tokio, DriverKind::Blocking),
        (DriverKind::Blocking, DriverKind::Tokio),
    ] {
        let client = AnyClient::new(parent_kind, server.url());
        let stream = client.stream(&server.stream_url("crash"));
        stream
            .create(CreateOptions::with_content_type("text/plain"))
            .unwrap();
        // Every append waits 10-30 ms on the server before it is applied: batches are in flight
        // when the child dies, and some are applied after it died.
        server.inject_error(
            stream.url(),
            serde_json::json!({"delayMs": 10, "jitterMs": 20, "count": 100_000_000, "method": "POST"}),
        );
        let dir = temp_dir("durable-writer");
        let mut in_flight_at_kill = 0;
        for round in 0..4u32 {
            let start = journal_records(&dir, false);
            let mut child = spawn_child(child_kind, server.url(), stream.url(), &dir, round);
            let target = start + 120 + u64::from(round) * 37;
            let deadline = Instant::now() + Duration::from_secs(120);
            while journal_records(&dir, false) < target {
                if let Some(status) = child.0.try_wait().unwrap() {
                    let log = fs::read_to_string(dir.join(format!("child-{round}.log")));
                    panic!("the child exited ({status}): {log:?}");
                }
                assert!(Instant::now() < deadline, "the child makes no progress");
                std::thread::sleep(Duration::from_millis(5));
            }
            child.0.kill().unwrap(); // SIGKILL
            child.0.wait().unwrap();
            let snap = load(&dir).expect("the child persisted a snapshot");
            if pending_batches(&snap) > 0 {
                in_flight_at_kill += 1;
            }
        }
        assert!(
            in_flight_at_kill > 0,
            "{child_kind:?}: no kill happened with batches in flight"
        );
        // The parent takes over: restore, replay the journal, finish.
        let (writer, complete) = resume(&stream, &dir);
        writer
            .close(false)
            .unwrap_or_else(|f| panic!("{child_kind:?} -> {parent_kind:?}: {f:?}"));
        server.clear_errors();
        let all = stream.read_all().unwrap();
        check_records(&all.data, complete);
        let _ = fs::remove_dir_all(&dir);
    }
}

/// Reads chunks until `want` bytes arrived.
fn read_bytes(r: &mut AnyReader, want: usize) -> Vec<u8> {
    let mut data = Vec::new();
    while data.len() < want {
        match r.next_chunk() {
            Some(Ok(c)) => data.extend_from_slice(&c.data),
            other => panic!("the reader ended after {} bytes: {other:?}", data.len()),
        }
    }
    data
}

#[test]
fn a_restored_reader_reproduces_the_rest_of_the_stream_exactly() {
    let server = RefServer::shared();
    let proxy = Proxy::start(server.url());
    for kind in DriverKind::ALL {
        for mode in [ReadMode::Auto, ReadMode::LongPoll, ReadMode::Sse] {
            let what = format!("{kind:?} {mode:?}");
            let client = AnyClient::new(kind, proxy.url());
            let stream = client.stream(&proxy.url_for(&server.stream_url("resume")));
            stream
                .create(CreateOptions::with_content_type("text/plain"))
                .unwrap();
            let part = |i: u64| record(i);
            let mut expected = Vec::new();
            for i in 0..5 {
                stream.append(part(i)).unwrap();
                expected.extend(part(i));
            }
            let mut reader = stream.reader(ds_proto::Offset::beginning(), mode).unwrap();
            let first = read_bytes(&mut reader, expected.len());
            assert_eq!(first, expected, "{what}");
            // Persist the reader's state, drop it (a crash), and restore.
            let json = serde_json::to_vec(&reader.snapshot()).unwrap();
            drop(reader);
            for i in 5..10 {
                stream.append(part(i)).unwrap();
                expected.extend(part(i));
            }
            let snap: ReaderSnapshot = serde_json::from_slice(&json).unwrap();
            assert_eq!(snap.config.mode, mode);
            let seen = proxy.requests().len();
            let mut restored = stream.reader_from_snapshot(snap).unwrap();
            let rest = read_bytes(&mut restored, expected.len() - first.len());
            assert_eq!(
                [first, rest].concat(),
                expected,
                "{what}: nothing repeated, nothing skipped"
            );
            let reads: Vec<_> = proxy.requests()[seen..]
                .iter()
                .filter(|r| r.method == "GET")
                .cloned()
                .collect();
            let offset = reads[0].query_param("offset").unwrap_or("");
            assert!(offset != "-1" && !offset.is_empty(), "{what}: {offset}");
            if mode == ReadMode::Auto {
                // Its catch-up was over: it long-polls from the first request.
                assert_eq!(reads[0].query_param("live"), Some("long-poll"), "{what}");
            }
            // EOF: a reader restored after it sends nothing.
            stream.close().unwrap();
            loop {
                match restored.next_event() {
                    Some(ReaderEvent::Closed { .. }) => break,
                    Some(ReaderEvent::Failed(e)) => panic!("{what}: {e}"),
                    None => panic!("{what}: ended without EOF"),
                    Some(_) => {}
                }
            }
            let snap = restored.snapshot();
            assert!(snap.eof, "{what}");
            drop(restored);
            let seen = proxy.requests().len();
            let mut after_eof = stream.reader_from_snapshot(snap).unwrap();
            assert!(matches!(
                after_eof.next_event(),
                Some(ReaderEvent::Closed { .. })
            ));
            assert_eq!(after_eof.next_event(), None, "{what}");
            assert!(after_eof.is_eof());
            // Once this client's connections are closed, the proxy has recorded everything
            // sent on them.
            drop((after_eof, stream, client));
            assert!(
                proxy.wait_for_no_connections(Duration::from_secs(30)),
                "{what}: the client's connections close"
            );
            assert_eq!(
                proxy.requests().len(),
                seen,
                "{what}: a reader restored after EOF sends nothing"
            );
        }
    }
}

#[test]
fn a_snapshot_of_another_format_version_is_refused() {
    let server = RefServer::shared();
    for kind in DriverKind::ALL {
        let client = AnyClient::new(kind, server.url());
        let stream = client.stream(&server.stream_url("version"));
        stream
            .create(CreateOptions::with_content_type("text/plain"))
            .unwrap();
        let w = stream.writer_with(writer_config()).unwrap();
        w.append(record(0)).unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(&w.snapshot().to_json()).unwrap();
        json["format_version"] = 99.into();
        let snap: ProducerSnapshot = serde_json::from_value(json).unwrap();
        let e = stream.writer_from_snapshot(snap).unwrap_err();
        assert!(
            matches!(&e.kind, ds_proto::ErrorKind::InvalidInput(m) if m.reason == ds_proto::InputReason::Snapshot && m.message.contains("format_version 99")),
            "{kind:?}: {e}"
        );
        w.close(false).unwrap();
    }
}
