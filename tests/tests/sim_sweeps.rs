//! Deterministic simulation sweeps (DESIGN.md section 4): many seeds, each choosing its own
//! scenario and fault mix, each run in a [`World`] (virtual time, the `SimServer` model, a
//! faulty network) with the protocol's invariants checked as the run goes.
//!
//! Environment:
//!
//! - `DS_SIM_SEED=<n>`: run only seed `n` (the replay command a failure prints);
//! - `DS_SIM_CASES=<n>`: seeds per sweep (default [`DEFAULT_CASES`]);
//! - `DS_SIM_FIRST_SEED=<n>`: the first seed of a sweep (default 0), to explore other ranges;
//! - `DS_SIM_TRACE=1`: print every trace entry as it is checked (with `DS_SIM_SEED`).
//!
//! Checked after every step: readers release a prefix of the server's log (bytes, or JSON
//! messages) with the offset that follows it, never a gap or a repeat, and nothing after EOF;
//! no request after EOF (or after a producer's close succeeded); at most one request in
//! flight per reader and `max_in_flight` per producer; buffered bytes within
//! `max_buffered_bytes`; producer events cover the accepted appends contiguously and in order;
//! a retry is never sent before its backoff delay (the reader's announced delay; the server's
//! `Retry-After` for producers). Checked at the end of each seed: every accepted append
//! resolved exactly once; acknowledged appends are on the server exactly once and in order;
//! appends that failed as "not stored" (and refused ones) are not on the server;
//! indeterminate ones are there at most once, and only for batches with an attempt that ended
//! without a definite answer (the producer's documented rule); a first-time acknowledgement's
//! `next_offset` is where its last append ends on the server; every reader ended (EOF for live
//! readers).
//!
//! Scenarios (each seed draws its own): binary, text or JSON streams; a server cutting reads at
//! `max_chunk_bytes` (down to 1 byte), with short or long long-polls and SSE connections; a
//! fault mix from [`FaultConfig::random`] (one seed in eight a "storm" that exhausts producer
//! retries); one writer that may close mid-stream ([`sim_sweep_writer_and_readers`]), or two
//! writers with the same producer id where the second has a higher epoch and fences the first,
//! auto-claim on either, one of them maybe closing, the first maybe crashing
//! ([`sim_sweep_zombie_writers`]); backpressure (`Full`, then `Writable`); one to four readers
//! in every mode (CatchUp, LongPoll, Sse, Auto), some restarting from their checkpoint. In the
//! end phase the stream is closed (by a one-shot request when no writer closed it) so that
//! every live reader must reach EOF.

use bytes::Bytes;
use ds_proto::ops::{close_request, create_request, CreateOptions, RequestExtras};
use ds_proto::producer::{AppendError, FailureReason, ProducerConfig, ProducerEvent};
use ds_proto::reader::{ReadMode, ReaderConfig, ReaderEvent, SseFallback};
use ds_proto::retry::RetryPolicy;
use ds_proto::rng::Rng;
use ds_proto::sim::net::{ClientId, FaultConfig, FaultKind};
use ds_proto::sim::world::{PartyEvent, TraceEntry, TraceKind, World, WorldConfig, WorldEvent};
use ds_proto::sim::SimServerConfig;
use ds_proto::{ErrorKind, Input, Producer, Reader, RequestId};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Seeds per sweep when `DS_SIM_CASES` is not set: sized so that the sweeps stay well under
/// two minutes on two cores in a debug build (see the summary each sweep prints).
const DEFAULT_CASES: u64 = 500;

const PATH: &str = "/v1/stream/sim";
const URL: &str = "http://sim.test/v1/stream/sim";

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

/// Which scenarios a sweep draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// One producer (sometimes closing mid-stream), readers in every mode.
    Writer,
    /// Two producers with the same id, the second with a higher epoch (a zombie fence), auto-claim
    /// on either, sometimes one of them closing; readers in every mode.
    Zombies,
}

/// Runs a sweep and panics with the seed and the replay command on the first violation.
fn sweep(test: &str, family: Family) {
    let seeds: Vec<u64> = match env_u64("DS_SIM_SEED") {
        Some(seed) => vec![seed],
        None => {
            let first = env_u64("DS_SIM_FIRST_SEED").unwrap_or(0);
            let cases = env_u64("DS_SIM_CASES").unwrap_or(DEFAULT_CASES);
            (first..first + cases).collect()
        }
    };
    #[allow(clippy::disallowed_methods)]
    let wall = Instant::now();
    let mut totals = Totals::default();
    for &seed in &seeds {
        let outcome = catch_unwind(AssertUnwindSafe(|| run_seed(family, seed)));
        let failure = match outcome {
            Ok(Ok(stats)) => {
                totals.add(&stats);
                continue;
            }
            Ok(Err(violation)) => violation,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic".to_owned());
                format!("panicked: {msg}")
            }
        };
        panic!(
            "{test}: seed {seed} failed: {failure}\n\
             replay: DS_SIM_SEED={seed} cargo test -p ds-tests --test sim_sweeps {test} -- --nocapture"
        );
    }
    eprintln!(
        "{test}: {} seeds passed in {:.1?} (wall); {totals}",
        seeds.len(),
        wall.elapsed()
    );
}

#[test]
fn sim_sweep_writer_and_readers() {
    sweep("sim_sweep_writer_and_readers", Family::Writer);
}

#[test]
fn sim_sweep_zombie_writers() {
    sweep("sim_sweep_zombie_writers", Family::Zombies);
}

#[test]
fn sim_same_seed_same_trace() {
    let mut hashes = BTreeSet::new();
    for seed in 0..8 {
        let a = run_seed(Family::Zombies, seed).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let b = run_seed(Family::Zombies, seed).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} did not replay");
        assert_eq!(a.steps, b.steps, "seed {seed} did not replay");
        hashes.insert(a.trace_hash);
    }
    assert!(hashes.len() >= 7, "different seeds gave equal traces");
}

// ----- scenarios ------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    Binary,
    Text,
    Json,
}

impl Content {
    fn content_type(self) -> &'static str {
        match self {
            Content::Binary => "application/octet-stream",
            Content::Text => "text/plain; charset=utf-8",
            Content::Json => "application/json",
        }
    }
}

#[derive(Debug)]
struct WriterPlan {
    config: ProducerConfig,
}

#[derive(Debug)]
struct ReaderPlan {
    config: ReaderConfig,
}

/// A command of the scenario's application, at a virtual time.
#[derive(Debug, Clone)]
enum Command {
    AddWriter(usize),
    Append {
        writer: usize,
        n: u64,
    },
    Flush(usize),
    Close(usize),
    /// The writer's process dies: removed from the world, its open exchanges abandoned.
    Crash(usize),
    AddReader(usize),
    /// The reader's process restarts: a new reader resumes from the old one's checkpoint
    /// (offset and cursor).
    RestartReader(usize),
    /// The end phase: close the stream with a one-shot request (no producer headers) so that
    /// every live reader must reach EOF.
    FinalClose,
}

#[derive(Debug)]
struct Scenario {
    content: Content,
    faults: FaultConfig,
    server: SimServerConfig,
    writers: Vec<WriterPlan>,
    readers: Vec<ReaderPlan>,
    commands: Vec<(Duration, Command)>,
}

fn ms(rng: &mut Rng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(lo + rng.below(hi - lo + 1))
}

fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.below(items.len() as u64) as usize]
}

fn scenario(family: Family, seed: u64) -> Scenario {
    let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ family as u64);
    let content = pick(&mut rng, &[Content::Binary, Content::Text, Content::Json]);
    let mut faults = FaultConfig::random(rng.next_u64());
    // One seed in eight is a storm: producers then have few attempts and run out of them.
    let storm = rng.chance(0.125);
    if storm {
        faults.drop_request = 0.2 + rng.unit() * 0.3;
        faults.drop_response = 0.2 + rng.unit() * 0.3;
    }
    let server = SimServerConfig {
        long_poll_timeout: ms(&mut rng, 100, 2000),
        max_chunk_bytes: if rng.chance(0.75) {
            Some(1 + rng.below(64) as usize)
        } else {
            None
        },
        // Short SSE connections (under the reader's fallback window) now and then.
        sse_close_after: match rng.below(10) {
            0..=2 => Some(ms(&mut rng, 100, 900)),
            3..=7 => Some(ms(&mut rng, 1000, 10_000)),
            _ => None,
        },
        sse_keepalive: rng.chance(0.8).then(|| ms(&mut rng, 200, 2000)),
        ..SimServerConfig::default()
    };

    let writer_count = match family {
        Family::Writer => 1,
        Family::Zombies => 2,
    };
    let mut writers = Vec::new();
    let mut commands = Vec::new();
    for w in 0..writer_count {
        let max_batch_bytes = 32 + rng.below(480) as usize;
        let retry = if storm {
            RetryPolicy {
                initial_delay: ms(&mut rng, 5, 100),
                max_attempts: Some(2 + rng.below(4) as u32),
                ..RetryPolicy::default()
            }
        } else if rng.chance(0.5) {
            RetryPolicy::default()
        } else {
            RetryPolicy {
                initial_delay: ms(&mut rng, 5, 200),
                max_delay: ms(&mut rng, 500, 5000),
                max_attempts: Some(5 + rng.below(30) as u32),
                max_elapsed: None,
                ..RetryPolicy::default()
            }
        };
        let config = ProducerConfig {
            epoch: w as u64,
            auto_claim: rng.chance(0.5),
            linger: ms(&mut rng, 0, 20),
            max_batch_bytes,
            max_batch_items: 1 + rng.below(8) as usize,
            max_in_flight: 1 + rng.below(4) as usize,
            max_buffered_bytes: if rng.chance(0.3) {
                max_batch_bytes * (1 + rng.below(4) as usize)
            } else {
                64 << 20
            },
            content_type: content.content_type().to_owned(),
            retry,
            rng_seed: rng.next_u64(),
            request_deadline: match rng.below(8) {
                0 => Some(ms(&mut rng, 30, 500)),
                1 | 2 => Some(ms(&mut rng, 1000, 8000)),
                _ => None,
            },
            ..ProducerConfig::new(URL, "sim-writer")
        };
        let start = if w == 0 {
            ms(&mut rng, 0, 200)
        } else {
            ms(&mut rng, 300, 3000)
        };
        commands.push((start, Command::AddWriter(w)));
        let appends = 5 + rng.below(36);
        let mut at = start;
        for n in 0..appends {
            at += ms(&mut rng, 0, 150);
            commands.push((at, Command::Append { writer: w, n }));
            if rng.chance(0.05) {
                commands.push((at, Command::Flush(w)));
            }
        }
        let close = match family {
            Family::Writer => rng.chance(0.4),
            Family::Zombies => rng.chance(0.25),
        };
        if close {
            // Sometimes mid-stream: later appends are refused (or fail, for the other writer).
            let close_at = start + ms(&mut rng, 0, (at - start).as_millis() as u64 + 500);
            commands.push((close_at, Command::Close(w)));
        }
        if family == Family::Zombies && w == 0 && rng.chance(0.25) {
            // The old writer's process dies (its successor is writer 1).
            let crash_at = start + ms(&mut rng, 0, (at - start).as_millis() as u64 + 500);
            commands.push((crash_at, Command::Crash(w)));
        }
        writers.push(WriterPlan { config });
    }

    let mut readers = Vec::new();
    let reader_count = 1 + rng.below(4) as usize;
    for r in 0..reader_count {
        // Every mode appears often; the first reader's mode cycles with the seed.
        let mode = if r == 0 {
            [
                ReadMode::CatchUp,
                ReadMode::LongPoll,
                ReadMode::Sse,
                ReadMode::Auto,
            ][(seed % 4) as usize]
        } else {
            pick(
                &mut rng,
                &[
                    ReadMode::CatchUp,
                    ReadMode::LongPoll,
                    ReadMode::Sse,
                    ReadMode::Auto,
                ],
            )
        };
        let json = match (content, mode) {
            (Content::Json, ReadMode::Sse) => Some(true),
            (Content::Json, _) if rng.chance(0.5) => Some(true),
            _ => None,
        };
        let retry = if rng.chance(0.5) {
            RetryPolicy::unlimited()
        } else {
            RetryPolicy {
                initial_delay: ms(&mut rng, 5, 200),
                max_delay: ms(&mut rng, 300, 3000),
                ..RetryPolicy::unlimited()
            }
        };
        let config = ReaderConfig {
            mode,
            retry,
            json,
            rng_seed: rng.next_u64(),
            sse_fallback: if rng.chance(0.3) {
                None
            } else {
                Some(SseFallback::default())
            },
            long_poll_deadline: if rng.chance(0.3) {
                Some(ms(&mut rng, 3000, 10_000))
            } else {
                Some(ReaderConfig::DEFAULT_LONG_POLL_DEADLINE)
            },
            sse_idle_timeout: if rng.chance(0.3) {
                Some(ms(&mut rng, 500, 10_000))
            } else {
                Some(ReaderConfig::DEFAULT_SSE_IDLE_TIMEOUT)
            },
            // Small thresholds make large bodies common: pieces released before a body's
            // end must survive truncation, retries and restarts exactly once.
            partial_chunks_over: if rng.chance(0.5) {
                Some(1 + rng.below(64) as usize)
            } else {
                Some(ReaderConfig::DEFAULT_PARTIAL_CHUNKS_OVER)
            },
            ..ReaderConfig::new(URL)
        };
        let start = ms(&mut rng, 0, 4000);
        commands.push((start, Command::AddReader(r)));
        if rng.chance(0.3) {
            let at = start + ms(&mut rng, 0, 6000);
            commands.push((at, Command::RestartReader(r)));
        }
        readers.push(ReaderPlan { config });
    }
    // Stable: commands at equal times keep their order.
    commands.sort_by_key(|(t, _)| *t);
    Scenario {
        content,
        faults,
        server,
        writers,
        readers,
        commands,
    }
}

/// The payload of append `n` of writer `w`: unique, self-delimiting, of varied size. JSON: an
/// object; text: UTF-8 with multi-byte characters and newlines (no CR: SSE turns CR and CRLF
/// into LF, so text with CR cannot cross an SSE read unchanged); binary: any byte but the
/// delimiters.
fn payload(content: Content, w: usize, n: u64, seed: u64) -> Bytes {
    let mut rng = Rng::new(seed ^ ((w as u64) << 48) ^ n.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let len = rng.below(40) as usize;
    match content {
        Content::Json => {
            let pad: String = (0..len)
                .map(|_| pick(&mut rng, &['a', 'b', 'z', ' ', 'é', '"', '\\', '\n', '€']))
                .collect();
            let v = serde_json::json!({ "w": w, "n": n, "p": pad });
            Bytes::from(serde_json::to_vec(&v).unwrap())
        }
        Content::Text => {
            let pad: String = (0..len)
                .map(|_| pick(&mut rng, &['a', 'q', ' ', 'é', '€', '\n', '😀']))
                .collect();
            Bytes::from(format!("<{w}.{n}|{pad}>"))
        }
        Content::Binary => {
            let mut out = format!("<{w}.{n}|").into_bytes();
            for _ in 0..len {
                let b = loop {
                    let b = rng.below(256) as u8;
                    if !matches!(b, b'<' | b'>' | b'|') {
                        break b;
                    }
                };
                out.push(b);
            }
            out.push(b'>');
            Bytes::from(out)
        }
    }
}

/// `(writer, n)` of an append, and the offset position right after it on the server.
type StoredAppend = ((usize, u64), usize);

/// The `(writer, n)` of every append on the server, in order, with the offset position right
/// after it.
fn server_appends(content: Content, world: &World) -> Result<Vec<StoredAppend>, String> {
    let server = world.server();
    match content {
        Content::Json => {
            let items = server.stream_data(PATH).ok_or("the stream vanished")?;
            let mut end = 0;
            items
                .iter()
                .map(|m| {
                    let v: serde_json::Value = serde_json::from_slice(m)
                        .map_err(|e| format!("a stored message is not JSON: {e}"))?;
                    let w = v["w"].as_u64().ok_or("a message without w")? as usize;
                    let n = v["n"].as_u64().ok_or("a message without n")?;
                    end += m.len();
                    Ok(((w, n), end))
                })
                .collect()
        }
        Content::Text | Content::Binary => {
            let bytes = server.stream_bytes(PATH).ok_or("the stream vanished")?;
            let mut out = Vec::new();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                if rest[0] != b'<' {
                    return Err(format!("garbage on the server at {rest:?}"));
                }
                let end = rest
                    .iter()
                    .position(|b| *b == b'>')
                    .ok_or("a torn append on the server")?;
                let bar = rest[..end]
                    .iter()
                    .position(|b| *b == b'|')
                    .ok_or("an append without |")?;
                let head = std::str::from_utf8(&rest[1..bar]).map_err(|e| e.to_string())?;
                let (w, n) = head.split_once('.').ok_or("an append without .")?;
                rest = &rest[end + 1..];
                out.push((
                    (
                        w.parse().map_err(|_| "bad writer")?,
                        n.parse().map_err(|_| "bad n")?,
                    ),
                    bytes.len() - rest.len(),
                ));
            }
            Ok(out)
        }
    }
}

fn mint(position: usize) -> String {
    format!("0000000000000000_{position:016}")
}

// ----- the run and its checks ----------------------------------------------------------------

/// What one seed did.
#[derive(Debug, Default, Clone)]
struct Stats {
    steps: u64,
    trace_hash: u64,
    virtual_time: Duration,
    faults: u64,
    acked: u64,
    failed: u64,
    indeterminate: u64,
    refused: u64,
    reader_bytes: u64,
    eofs: u64,
    fenced_writers: u64,
    sse_fallbacks: u64,
    full: u64,
    crashes: u64,
    reader_restarts: u64,
    partial_chunks: u64,
}

#[derive(Debug, Default)]
struct Totals {
    seeds: u64,
    stats: Stats,
}

impl Totals {
    fn add(&mut self, s: &Stats) {
        self.seeds += 1;
        let t = &mut self.stats;
        t.steps += s.steps;
        t.virtual_time += s.virtual_time;
        t.faults += s.faults;
        t.acked += s.acked;
        t.failed += s.failed;
        t.indeterminate += s.indeterminate;
        t.refused += s.refused;
        t.reader_bytes += s.reader_bytes;
        t.eofs += s.eofs;
        t.fenced_writers += s.fenced_writers;
        t.sse_fallbacks += s.sse_fallbacks;
        t.full += s.full;
        t.crashes += s.crashes;
        t.reader_restarts += s.reader_restarts;
        t.partial_chunks += s.partial_chunks;
    }
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.stats;
        write!(
            f,
            "{} steps, {:.0?} virtual, {} faults injected, appends: {} acked / {} failed ({} \
             indeterminate) / {} refused / {} times full; readers: {} bytes, {} EOFs, {} SSE \
             fallbacks, {} restarts, {} partial chunks; {} writers fenced, {} crashed",
            s.steps,
            s.virtual_time,
            s.faults,
            s.acked,
            s.failed,
            s.indeterminate,
            s.refused,
            s.full,
            s.reader_bytes,
            s.eofs,
            s.sse_fallbacks,
            s.reader_restarts,
            s.partial_chunks,
            s.fenced_writers,
            s.crashes
        )
    }
}

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Acked,
    NotStored,
    Indeterminate,
}

#[derive(Debug)]
struct WriterState {
    client: ClientId,
    max_in_flight: usize,
    max_buffered: usize,
    /// Append id -> n.
    accepted: Vec<u64>,
    outcomes: Vec<Option<Outcome>>,
    refused: BTreeSet<u64>,
    /// Request id -> (epoch, seq).
    requests: BTreeMap<RequestId, (u64, u64)>,
    /// (epoch, seq) -> not before (Retry-After of the last answer).
    not_before: BTreeMap<(u64, u64), Duration>,
    /// Request id -> (status, Retry-After) of its answer's head.
    heads: BTreeMap<RequestId, (u16, Option<Duration>)>,
    /// (epoch, seq) of the batches with an attempt that ended without a definite answer.
    uncertain: BTreeSet<(u64, u64)>,
    outstanding: BTreeSet<RequestId>,
    closed: bool,
    close_reported: bool,
    fenced: bool,
    /// Removed from the world (its unresolved appends may or may not be stored).
    crashed: bool,
    /// Appends refused with `Full`, re-tried after `Writable`.
    blocked: std::collections::VecDeque<u64>,
    /// A `Writable` arrived: re-try the blocked appends.
    writable: bool,
    /// `(last append id, next offset)` of every first-time acknowledgement.
    acks: Vec<(u64, String)>,
}

#[derive(Debug)]
struct ReaderState {
    client: ClientId,
    mode: ReadMode,
    retry: RetryPolicy,
    /// Bytes (binary, text) released so far.
    bytes: Vec<u8>,
    /// JSON messages released so far.
    items: Vec<serde_json::Value>,
    /// Bytes of the stored JSON messages released so far (the offset position).
    json_position: usize,
    /// The position of the last checkpoint (the offset partial chunks carry).
    checkpoint: usize,
    outstanding: BTreeSet<RequestId>,
    not_before: Option<Duration>,
    ended: Option<String>,
}

struct Run {
    seed: u64,
    sc: Scenario,
    world: World,
    writers: Vec<Option<WriterState>>,
    readers: Vec<Option<ReaderState>>,
    stats: Stats,
    final_close: Option<RequestId>,
    final_closed: bool,
    /// `DS_SIM_TRACE` is set: print the trace as it is checked.
    verbose: bool,
}

/// One line per trace entry, for `DS_SIM_TRACE=1`.
fn describe(entry: &TraceEntry) -> String {
    let at = entry.at;
    let body = match &entry.kind {
        TraceKind::Transmit {
            client,
            id,
            method,
            uri,
            headers,
            body,
            ..
        } => {
            let h = |n: &str| {
                headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned()
            };
            format!(
                "{client} TX {id} {method} {} epoch={} seq={} closed={} body={:?}",
                uri.query().unwrap_or(""),
                h("producer-epoch"),
                h("producer-seq"),
                h("stream-closed"),
                String::from_utf8_lossy(body)
            )
        }
        TraceKind::Deliver { client, input } => match input {
            Input::Head { id, parts } => {
                let mut hs: Vec<String> = parts
                    .headers
                    .iter()
                    .filter(|(n, _)| {
                        n.as_str().starts_with("producer") || n.as_str().starts_with("stream")
                    })
                    .map(|(n, v)| format!("{n}={}", v.to_str().unwrap_or("?")))
                    .collect();
                hs.sort();
                format!("{client} <- {id} HEAD {} {}", parts.status, hs.join(" "))
            }
            Input::Body { id, chunk } => {
                format!("{client} <- {id} BODY {:?}", String::from_utf8_lossy(chunk))
            }
            Input::End { id } => format!("{client} <- {id} END"),
            Input::Failed { id, error } => format!("{client} <- {id} FAILED {error}"),
        },
        other => format!("{other:?}"),
    };
    format!("{at:>12.3?} {body}")
}

fn run_seed(family: Family, seed: u64) -> Result<Stats, String> {
    let sc = scenario(family, seed);
    let config = WorldConfig {
        faults: sc.faults.clone(),
        server: SimServerConfig {
            seed,
            ..sc.server.clone()
        },
        record_trace: true,
        max_steps: 2_000_000,
        max_time: Duration::from_secs(3600),
        ..WorldConfig::new(seed)
    };
    // The one real instant: everything after it is virtual.
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let mut world = World::new(config, start);
    let put = create_request(
        URL,
        &CreateOptions::with_content_type(sc.content.content_type()),
        &RequestExtras::default(),
    )
    .map_err(|e| e.to_string())?;
    let created = world
        .server_mut()
        .call(put, start)
        .map_err(|_| "create stayed open")?;
    ensure!(created.status() == 201, "create: {}", created.status());
    let mut run = Run {
        seed,
        writers: (0..sc.writers.len()).map(|_| None).collect(),
        readers: (0..sc.readers.len()).map(|_| None).collect(),
        sc,
        world,
        stats: Stats::default(),
        final_close: None,
        final_closed: false,
        verbose: std::env::var_os("DS_SIM_TRACE").is_some(),
    };
    run.go()?;
    run.stats.steps = run.world.steps();
    run.stats.trace_hash = run.world.trace_hash();
    run.stats.virtual_time = run.world.elapsed();
    Ok(run.stats)
}

impl Run {
    fn at(&self) -> Duration {
        self.world.elapsed()
    }

    fn go(&mut self) -> Result<(), String> {
        let start = self.world.start();
        let mut commands: std::collections::VecDeque<(Duration, Command)> =
            self.sc.commands.drain(..).collect();
        // Bounds: the scenario's commands end within ~10 s; everything must settle well
        // within the limit (virtual), or the run made no progress.
        let limit = Duration::from_secs(1800);
        loop {
            if commands.is_empty() && self.finished() {
                return self.final_checks();
            }
            if commands.is_empty()
                && !self.final_closed
                && self.final_close.is_none()
                && self.writers_idle()
            {
                commands.push_back((self.at(), Command::FinalClose));
            }
            let next_cmd = commands.front().map(|(t, _)| start + *t);
            let next_world = self.world.poll_timeout();
            let command_first = match (next_cmd, next_world) {
                (Some(c), Some(w)) => c < w,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if command_first {
                let (t, cmd) = commands.pop_front().expect("a command");
                self.world.run_until(start + t).map_err(|e| e.to_string())?;
                self.observe()?;
                self.command(cmd)?;
            } else if !self.world.step().map_err(|e| e.to_string())? {
                return Err(format!(
                    "no progress at {:?}: nothing scheduled, but not finished: {}",
                    self.at(),
                    self.pending_summary()
                ));
            }
            self.observe()?;
            if self.at() > limit {
                return Err(format!(
                    "no progress: still not finished after {limit:?} of virtual time: {}",
                    self.pending_summary()
                ));
            }
        }
    }

    fn writers_idle(&self) -> bool {
        self.writers.iter().flatten().all(|w| {
            w.crashed
                || (w.blocked.is_empty()
                    && self
                        .world
                        .producer(w.client)
                        .is_some_and(|p| p.is_idle() && p.in_flight() == 0))
        })
    }

    fn finished(&self) -> bool {
        self.writers.iter().all(Option::is_some)
            && self.readers.iter().all(Option::is_some)
            && self.writers_idle()
            && self.readers.iter().flatten().all(|r| r.ended.is_some())
    }

    fn pending_summary(&self) -> String {
        let mut out = String::new();
        for w in self.writers.iter().flatten() {
            if let Some(p) = self.world.producer(w.client) {
                out += &format!(
                    "writer {}: idle {} in flight {} buffered {}; ",
                    w.client,
                    p.is_idle(),
                    p.in_flight(),
                    p.buffered_bytes()
                );
            }
        }
        for r in self.readers.iter().flatten() {
            if let Some(reader) = self.world.reader(r.client) {
                out += &format!(
                    "reader {} ({:?}): ended {:?}, offset {}, live {:?}; ",
                    r.client,
                    r.mode,
                    r.ended,
                    reader.offset(),
                    reader.live_mode()
                );
            }
        }
        out += &format!(
            "server closed {:?}, final close {:?}",
            self.world.server().is_closed(PATH),
            self.final_closed
        );
        out
    }

    fn command(&mut self, cmd: Command) -> Result<(), String> {
        let now = self.world.now();
        match cmd {
            Command::AddWriter(w) => {
                let config = self.sc.writers[w].config.clone();
                let (max_in_flight, max_buffered) =
                    (config.max_in_flight, config.max_buffered_bytes);
                let producer = Producer::new(config, now).map_err(|e| e.to_string())?;
                let client = self.world.add_machine(producer);
                self.writers[w] = Some(WriterState {
                    client,
                    max_in_flight,
                    max_buffered,
                    accepted: Vec::new(),
                    outcomes: Vec::new(),
                    refused: BTreeSet::new(),
                    requests: BTreeMap::new(),
                    not_before: BTreeMap::new(),
                    heads: BTreeMap::new(),
                    uncertain: BTreeSet::new(),
                    outstanding: BTreeSet::new(),
                    closed: false,
                    close_reported: false,
                    fenced: false,
                    crashed: false,
                    blocked: std::collections::VecDeque::new(),
                    writable: false,
                    acks: Vec::new(),
                });
            }
            Command::Append { writer, n } => {
                let data = payload(self.sc.content, writer, n, self.seed);
                let ws = self.writers[writer].as_ref().expect("added");
                if ws.crashed {
                    return Ok(());
                }
                if !ws.blocked.is_empty() {
                    // Keep the application's order: wait behind the blocked appends.
                    self.writers[writer]
                        .as_mut()
                        .expect("added")
                        .blocked
                        .push_back(n);
                    return Ok(());
                }
                let client = ws.client;
                let result = self
                    .world
                    .producer_mut(client)
                    .expect("a producer")
                    .append(data, now);
                let ws = self.writers[writer].as_mut().expect("added");
                match result {
                    Ok(id) => {
                        ensure!(
                            id.0 == ws.accepted.len() as u64,
                            "writer {writer}: append id {} out of sequence",
                            id.0
                        );
                        ws.accepted.push(n);
                        ws.outcomes.push(None);
                    }
                    Err(AppendError::Full { .. }) => {
                        ws.blocked.push_back(n);
                        self.stats.full += 1;
                    }
                    Err(AppendError::Refused(_)) => {
                        ws.refused.insert(n);
                        self.stats.refused += 1;
                    }
                    Err(e) => return Err(format!("unexpected append error {e:?}")),
                }
            }
            Command::Flush(w) => {
                let ws = self.writers[w].as_ref().expect("added");
                if ws.crashed {
                    return Ok(());
                }
                let client = ws.client;
                self.world
                    .producer_mut(client)
                    .expect("a producer")
                    .flush(now);
            }
            Command::Crash(w) => {
                let ws = self.writers[w].as_mut().expect("added");
                ws.crashed = true;
                self.world.remove(ws.client);
                self.stats.crashes += 1;
            }
            Command::Close(w) => {
                let ws = self.writers[w].as_ref().expect("added");
                if ws.crashed {
                    return Ok(());
                }
                let client = ws.client;
                // Refused after a failure stopped the producer: fine.
                let _ = self
                    .world
                    .producer_mut(client)
                    .expect("a producer")
                    .close(now);
            }
            Command::AddReader(r) => {
                let plan = &self.sc.readers[r];
                let (mode, retry) = (plan.config.mode, plan.config.retry.clone());
                let reader = Reader::new(plan.config.clone(), now).map_err(|e| e.to_string())?;
                let client = self.world.add_machine(reader);
                self.readers[r] = Some(ReaderState {
                    client,
                    mode,
                    retry,
                    bytes: Vec::new(),
                    items: Vec::new(),
                    json_position: 0,
                    checkpoint: 0,
                    outstanding: BTreeSet::new(),
                    not_before: None,
                    ended: None,
                });
            }
            Command::RestartReader(r) => {
                let plan = &self.sc.readers[r];
                let rs = self.readers[r].as_mut().expect("added");
                if rs.ended.is_some() {
                    return Ok(());
                }
                let old = self.world.reader(rs.client).expect("a reader");
                // From a snapshot: it also knows the pieces of a response already handed out.
                let mut snapshot = old.snapshot();
                snapshot.config.rng_seed = plan.config.rng_seed;
                self.world.remove(rs.client);
                let reader = Reader::restore(snapshot, now).map_err(|e| e.to_string())?;
                rs.client = self.world.add_machine(reader);
                rs.outstanding.clear();
                rs.not_before = None;
                self.stats.reader_restarts += 1;
            }
            Command::FinalClose => {
                if self.world.server().is_closed(PATH) == Some(true) {
                    self.final_closed = true;
                    return Ok(());
                }
                let req = close_request(URL, None, &RequestExtras::default())
                    .map_err(|e| e.to_string())?;
                self.final_close = Some(self.world.request(req));
            }
        }
        Ok(())
    }

    /// Checks everything that happened since the last call, in order.
    fn observe(&mut self) -> Result<(), String> {
        let trace = self.world.take_trace();
        for entry in trace {
            self.check_entry(entry)?;
        }
        self.unblock()?;
        // Cheap per-step checks of the readers' checkpoints and the producers' bounds.
        for r in self.readers.iter().flatten() {
            let reader = self.world.reader(r.client).expect("a reader");
            // Partial chunks leave the checkpoint where their response started.
            let pos = r.checkpoint;
            ensure!(
                reader.offset().is_sentinel() && pos == 0 || reader.offset().as_str() == mint(pos),
                "reader {}: checkpoint {} after releasing {pos} units",
                r.client,
                reader.offset()
            );
        }
        for w in self.writers.iter().flatten() {
            if w.crashed {
                continue;
            }
            let p = self.world.producer(w.client).expect("a producer");
            ensure!(
                p.in_flight() <= w.max_in_flight,
                "writer {}: {} requests in flight, max {}",
                w.client,
                p.in_flight(),
                w.max_in_flight
            );
            ensure!(
                p.buffered_bytes() <= w.max_buffered,
                "writer {}: {} bytes buffered, max {}",
                w.client,
                p.buffered_bytes(),
                w.max_buffered
            );
        }
        Ok(())
    }

    /// Re-tries the appends refused with `Full` once the producer said `Writable`.
    fn unblock(&mut self) -> Result<(), String> {
        let now = self.world.now();
        for k in 0..self.writers.len() {
            let Some(ws) = self.writers[k].as_mut() else {
                continue;
            };
            if !ws.writable || ws.crashed {
                continue;
            }
            ws.writable = false;
            let client = ws.client;
            while let Some(n) = self.writers[k].as_mut().expect("added").blocked.pop_front() {
                let data = payload(self.sc.content, k, n, self.seed);
                let result = self
                    .world
                    .producer_mut(client)
                    .expect("a producer")
                    .append(data, now);
                let ws = self.writers[k].as_mut().expect("added");
                match result {
                    Ok(id) => {
                        ensure!(
                            id.0 == ws.accepted.len() as u64,
                            "writer {k}: append id {} out of sequence",
                            id.0
                        );
                        ws.accepted.push(n);
                        ws.outcomes.push(None);
                    }
                    Err(AppendError::Full { .. }) => {
                        ws.blocked.push_front(n);
                        self.stats.full += 1;
                        break;
                    }
                    Err(_) => {
                        ws.refused.insert(n);
                        self.stats.refused += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn writer_of(&mut self, client: ClientId) -> Option<&mut WriterState> {
        self.writers
            .iter_mut()
            .flatten()
            .find(|w| w.client == client)
    }

    fn reader_of(&mut self, client: ClientId) -> Option<&mut ReaderState> {
        self.readers
            .iter_mut()
            .flatten()
            .find(|r| r.client == client)
    }

    fn check_entry(&mut self, entry: TraceEntry) -> Result<(), String> {
        if self.verbose {
            eprintln!("{}", describe(&entry));
        }
        let at = entry.at;
        match entry.kind {
            TraceKind::Transmit {
                client,
                id,
                headers,
                ..
            } => {
                if let Some(r) = self.reader_of(client) {
                    ensure!(
                        r.ended.is_none(),
                        "reader {client}: a request at {at:?} after it ended ({:?})",
                        r.ended
                    );
                    ensure!(
                        r.outstanding.is_empty(),
                        "reader {client}: a second request in flight"
                    );
                    if let Some(nb) = r.not_before.take() {
                        ensure!(
                            at >= nb,
                            "reader {client}: retry at {at:?} before its backoff ended at {nb:?}"
                        );
                    }
                    r.outstanding.insert(id);
                } else if let Some(w) = self.writer_of(client) {
                    ensure!(
                        !w.closed,
                        "writer {client}: a request at {at:?} after its close succeeded"
                    );
                    let num = |name: &str| -> Option<u64> {
                        headers.get(name)?.to_str().ok()?.parse().ok()
                    };
                    let key = (
                        num("producer-epoch").ok_or("a producer request without an epoch")?,
                        num("producer-seq").ok_or("a producer request without a seq")?,
                    );
                    if let Some(nb) = w.not_before.remove(&key) {
                        ensure!(
                            at >= nb,
                            "writer {client}: batch {key:?} re-sent at {at:?}, before the \
                             server's Retry-After allowed ({nb:?})"
                        );
                    }
                    w.requests.insert(id, key);
                    w.outstanding.insert(id);
                    ensure!(
                        w.outstanding.len() <= w.max_in_flight,
                        "writer {client}: {} requests in flight, max {}",
                        w.outstanding.len(),
                        w.max_in_flight
                    );
                }
            }
            TraceKind::Cancel { client, id } => {
                if let Some(r) = self.reader_of(client) {
                    r.outstanding.remove(&id);
                } else if let Some(w) = self.writer_of(client) {
                    return Err(format!("writer {}: cancelled request {id}", w.client));
                }
            }
            TraceKind::Deliver { client, input } => {
                let ended = matches!(input, Input::End { .. } | Input::Failed { .. });
                let id = input.id();
                if let Some(r) = self.reader_of(client) {
                    if ended {
                        r.outstanding.remove(&id);
                    }
                } else if let Some(w) = self.writer_of(client) {
                    match &input {
                        Input::Head { parts, .. } => {
                            let retry_after = matches!(parts.status.as_u16(), 429 | 503)
                                .then(|| parts.headers.get(http::header::RETRY_AFTER))
                                .flatten()
                                .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                                .map(Duration::from_secs);
                            w.heads.insert(id, (parts.status.as_u16(), retry_after));
                        }
                        Input::End { .. } | Input::Failed { .. } => {
                            w.outstanding.remove(&id);
                            let key = *w.requests.get(&id).ok_or("an answer to no request")?;
                            let head = w.heads.remove(&id);
                            if let Some((_, Some(ra))) = head {
                                w.not_before.insert(key, at + ra);
                            }
                            // The documented rule: a transport failure (other than a failed
                            // connect) before the head, or a 5xx, leaves the outcome unknown.
                            let uncertain = match (&input, head) {
                                (_, Some((status, _))) => status >= 500,
                                (Input::Failed { error, .. }, None) => {
                                    error.kind != ds_proto::TransportErrorKind::Connect
                                }
                                _ => true,
                            };
                            if uncertain {
                                w.uncertain.insert(key);
                            }
                        }
                        Input::Body { .. } => {}
                    }
                }
            }
            TraceKind::Fault { kind, .. }
                if !matches!(kind, FaultKind::SplitBody(_) | FaultKind::Deadline) =>
            {
                self.stats.faults += 1;
            }
            TraceKind::Event { client, .. } => {
                let event = self
                    .world
                    .poll_event()
                    .ok_or("a traced event is not in the event queue")?;
                ensure!(event.client == client, "events out of order");
                self.check_event(at, event)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn check_event(&mut self, at: Duration, e: WorldEvent) -> Result<(), String> {
        let client = e.client;
        match e.event {
            PartyEvent::Reader(ev) => self.check_reader_event(at, client, ev),
            PartyEvent::Producer(ev) => self.check_producer_event(client, ev),
            PartyEvent::Response(resp) => {
                if Some(resp.id) != self.final_close {
                    return Err(format!("an unexpected one-shot response {resp:?}"));
                }
                self.final_close = None;
                match resp.result {
                    Ok(r) if r.status().is_success() => self.final_closed = true,
                    // Lost, injected or refused: try again (the close is idempotent).
                    _ => {}
                }
                if !self.final_closed {
                    let req = close_request(URL, None, &RequestExtras::default())
                        .map_err(|e| e.to_string())?;
                    self.final_close = Some(self.world.request(req));
                }
                Ok(())
            }
            other => Err(format!("an unexpected event {other:?}")),
        }
    }

    fn check_reader_event(
        &mut self,
        at: Duration,
        client: ClientId,
        ev: ReaderEvent,
    ) -> Result<(), String> {
        let content = self.sc.content;
        let server_data = self.world.server().stream_data(PATH);
        let server_bytes = self.world.server().stream_bytes(PATH);
        let server_closed = self.world.server().is_closed(PATH) == Some(true);
        let r = self
            .reader_of(client)
            .ok_or("an event from an unknown reader")?;
        ensure!(
            r.ended.is_none(),
            "reader {client}: {ev:?} after it ended ({:?})",
            r.ended
        );
        let position = |r: &ReaderState| match content {
            Content::Json => r.json_position,
            _ => r.bytes.len(),
        };
        match ev {
            ReaderEvent::Data(chunk) => {
                let server_data = server_data.ok_or("the stream vanished")?;
                match content {
                    Content::Json => {
                        ensure!(
                            chunk.json || chunk.data.is_empty(),
                            "reader {client}: a JSON chunk not marked JSON"
                        );
                        let items = chunk
                            .items()
                            .map_err(|e| format!("reader {client}: chunk items: {e}"))?;
                        for item in items {
                            let v: serde_json::Value = serde_json::from_slice(&item)
                                .map_err(|e| format!("reader {client}: item: {e}"))?;
                            let k = r.items.len();
                            let stored = server_data.get(k).ok_or_else(|| {
                                format!("reader {client}: message {k} is not on the server")
                            })?;
                            let expected: serde_json::Value =
                                serde_json::from_slice(stored).map_err(|e| e.to_string())?;
                            ensure!(
                                v == expected,
                                "reader {client}: message {k} is {v}, the server has {expected}"
                            );
                            r.items.push(v);
                            r.json_position += stored.len();
                        }
                    }
                    _ => {
                        r.bytes.extend_from_slice(&chunk.data);
                        let server_bytes = server_bytes.ok_or("the stream vanished")?;
                        if !server_bytes.starts_with(&r.bytes) {
                            let at = r
                                .bytes
                                .iter()
                                .zip(server_bytes.iter())
                                .position(|(a, b)| a != b)
                                .unwrap_or(r.bytes.len().min(server_bytes.len()));
                            let from = at.saturating_sub(16);
                            return Err(format!(
                                "reader {client}: released bytes are not a prefix of the \
                                 server's log (released {}, server {}): a gap, a repeat or \
                                 foreign data at byte {at}: released {:?}, server {:?}",
                                r.bytes.len(),
                                server_bytes.len(),
                                String::from_utf8_lossy(
                                    &r.bytes[from..(at + 16).min(r.bytes.len())]
                                ),
                                String::from_utf8_lossy(
                                    &server_bytes[from..(at + 16).min(server_bytes.len())]
                                ),
                            ));
                        }
                    }
                }
                let pos = if chunk.partial {
                    ensure!(!chunk.json, "reader {client}: a partial JSON chunk");
                    r.checkpoint
                } else {
                    position(r)
                };
                ensure!(
                    chunk.next_offset.as_str() == mint(pos)
                        || (pos == 0 && chunk.partial && chunk.next_offset.is_beginning()),
                    "reader {client}: chunk next_offset {} does not follow the {} units \
                     released ({}; partial: {})",
                    chunk.next_offset,
                    pos,
                    mint(pos),
                    chunk.partial
                );
                r.checkpoint = pos;
                self.stats.partial_chunks += u64::from(chunk.partial);
                if chunk.closed {
                    ensure!(server_closed, "reader {client}: EOF on an open stream");
                }
            }
            ReaderEvent::UpToDate { offset } => {
                let pos = position(r);
                r.checkpoint = pos;
                ensure!(
                    offset.as_str() == mint(pos),
                    "reader {client}: up to date at {offset}, but released up to {pos}"
                );
            }
            ReaderEvent::Closed { offset } => {
                let pos = position(r);
                r.checkpoint = pos;
                ensure!(server_closed, "reader {client}: Closed on an open stream");
                ensure!(
                    offset.as_str() == mint(pos),
                    "reader {client}: Closed at {offset}, but released up to {pos}"
                );
                let complete = match content {
                    Content::Json => r.items.len() == server_data.map_or(0, |d| d.len()),
                    _ => server_bytes.is_some_and(|b| b.len() == r.bytes.len()),
                };
                ensure!(
                    complete,
                    "reader {client}: EOF before the end of the stream"
                );
                r.ended = Some("closed".to_owned());
                self.stats.eofs += 1;
            }
            ReaderEvent::Retrying {
                error,
                attempt,
                delay,
            } => {
                let ceiling = r.retry.ceiling(attempt);
                let floor = error.kind.retry_after().unwrap_or(Duration::ZERO);
                ensure!(
                    delay >= floor,
                    "reader {client}: retry delay {delay:?} below Retry-After {floor:?}"
                );
                ensure!(
                    delay <= ceiling.max(floor),
                    "reader {client}: retry delay {delay:?} above the policy's {ceiling:?}"
                );
                r.not_before = Some(at + delay);
            }
            ReaderEvent::Done => {
                ensure!(
                    r.mode == ReadMode::CatchUp,
                    "reader {client}: Done in mode {:?}",
                    r.mode
                );
                r.ended = Some("done".to_owned());
            }
            ReaderEvent::FellBackToLongPoll => {
                ensure!(
                    r.mode == ReadMode::Sse,
                    "reader {client}: fell back in {:?}",
                    r.mode
                );
                self.stats.sse_fallbacks += 1;
            }
            ReaderEvent::Failed(error) => {
                return Err(format!("reader {client}: failed: {error}"));
            }
            other => return Err(format!("reader {client}: unexpected {other:?}")),
        }
        Ok(())
    }

    fn check_producer_event(&mut self, client: ClientId, ev: ProducerEvent) -> Result<(), String> {
        let server_closed = self.world.server().is_closed(PATH) == Some(true);
        let w = self
            .writer_of(client)
            .ok_or("an event from an unknown writer")?;
        let mut resolve = |first: u64, last: u64, outcome: Outcome| -> Result<(), String> {
            let next = w
                .outcomes
                .iter()
                .position(Option::is_none)
                .unwrap_or(w.outcomes.len());
            ensure!(
                first as usize == next && last >= first && (last as usize) < w.outcomes.len(),
                "writer {client}: outcome for appends {first}..={last}, expected from {next} \
                 (of {})",
                w.outcomes.len()
            );
            for i in first..=last {
                w.outcomes[i as usize] = Some(outcome.clone());
            }
            Ok(())
        };
        match ev {
            ProducerEvent::Acked {
                first,
                last,
                next_offset,
                duplicate,
            } => {
                resolve(first.0, last.0, Outcome::Acked)?;
                if let (Some(next), false) = (next_offset, duplicate) {
                    w.acks.push((last.0, next.as_str().to_owned()));
                }
                self.stats.acked += last.0 - first.0 + 1;
            }
            ProducerEvent::Failed {
                first,
                last,
                items,
                reason,
            } => {
                ensure!(
                    items.len() as u64 == last.0 - first.0 + 1,
                    "writer {client}: a failure with {} items for {first}..={last}",
                    items.len()
                );
                let outcome = if reason.is_indeterminate() {
                    Outcome::Indeterminate
                } else {
                    Outcome::NotStored
                };
                resolve(first.0, last.0, outcome)?;
                if matches!(reason.kind(), ErrorKind::Fenced { .. }) {
                    w.fenced = true;
                }
                if let FailureReason::Indeterminate { epoch, seq, .. } = reason {
                    ensure!(
                        w.uncertain.contains(&(epoch, seq)),
                        "writer {client}: appends {first}..={last} failed as indeterminate \
                         (epoch {epoch}, seq {seq}), but every attempt got a definite answer"
                    );
                    self.stats.indeterminate += last.0 - first.0 + 1;
                }
                self.stats.failed += last.0 - first.0 + 1;
            }
            ProducerEvent::Closed { .. } => {
                ensure!(!w.close_reported, "writer {client}: two close outcomes");
                ensure!(
                    server_closed,
                    "writer {client}: Closed, but the stream is open"
                );
                w.close_reported = true;
                w.closed = true;
            }
            ProducerEvent::CloseFailed { .. } => {
                ensure!(!w.close_reported, "writer {client}: two close outcomes");
                w.close_reported = true;
            }
            ProducerEvent::Writable => w.writable = true,
            ProducerEvent::EpochClaimed { .. } => {}
            other => return Err(format!("writer {client}: unexpected {other:?}")),
        }
        Ok(())
    }

    fn final_checks(&mut self) -> Result<(), String> {
        self.observe()?;
        let on_server = server_appends(self.sc.content, &self.world)?;
        let mut seen = BTreeMap::new();
        let ends: BTreeMap<(usize, u64), usize> = on_server.iter().copied().collect();
        for (i, (key, _)) in on_server.iter().enumerate() {
            if let Some(prev) = seen.insert(*key, i) {
                return Err(format!(
                    "append {key:?} is on the server twice (positions {prev} and {i})"
                ));
            }
        }
        for (k, w) in self.writers.iter().enumerate() {
            let w = w.as_ref().ok_or("a writer was never added")?;
            if !w.crashed {
                let p = self.world.producer(w.client).expect("a producer");
                ensure!(
                    p.next_append_id().0 == w.accepted.len() as u64,
                    "writer {k}: the producer accepted {} appends, the test saw {}",
                    p.next_append_id().0,
                    w.accepted.len()
                );
            }
            for (last, next) in &w.acks {
                let n = w.accepted[*last as usize];
                let end = ends.get(&(k, n)).copied();
                ensure!(
                    end.map(mint).as_deref() == Some(next.as_str()),
                    "writer {k}: append {last} (n {n}) acknowledged with next offset {next}, \
                     but on the server it ends at {end:?}"
                );
            }
            let mut last_position = None;
            for (id, n) in w.accepted.iter().enumerate() {
                let position = seen.get(&(k, *n)).copied();
                let Some(outcome) = w.outcomes[id].as_ref() else {
                    // A crashed writer's unresolved appends may be stored (once: checked above).
                    ensure!(w.crashed, "writer {k}: append {id} (n {n}) never resolved");
                    continue;
                };
                match (outcome, position) {
                    (Outcome::Acked, None) => {
                        return Err(format!(
                            "writer {k}: append {id} (n {n}) was acknowledged but is not on \
                             the server"
                        ))
                    }
                    (Outcome::NotStored, Some(pos)) => {
                        return Err(format!(
                            "writer {k}: append {id} (n {n}) failed as not stored, but it is \
                             on the server at {pos}"
                        ))
                    }
                    _ => {}
                }
                if let Some(pos) = position {
                    if let Some(last) = last_position {
                        ensure!(
                            pos > last,
                            "writer {k}: append {id} (n {n}) is on the server before an \
                             earlier append of the same writer"
                        );
                    }
                    last_position = Some(pos);
                }
            }
            for n in &w.refused {
                ensure!(
                    !seen.contains_key(&(k, *n)),
                    "writer {k}: refused append n {n} is on the server"
                );
            }
            if w.fenced {
                self.stats.fenced_writers += 1;
            }
        }
        let known: BTreeSet<(usize, u64)> = self
            .writers
            .iter()
            .enumerate()
            .flat_map(|(k, w)| {
                w.as_ref()
                    .map(|w| w.accepted.iter().map(move |n| (k, *n)).collect::<Vec<_>>())
                    .unwrap_or_default()
            })
            .collect();
        for key in seen.keys() {
            ensure!(
                known.contains(key),
                "{key:?} is on the server but was never accepted"
            );
        }
        for r in self.readers.iter().flatten() {
            self.stats.reader_bytes += match self.sc.content {
                Content::Json => r.json_position,
                _ => r.bytes.len(),
            } as u64;
            if r.mode != ReadMode::CatchUp {
                ensure!(
                    r.ended.as_deref() == Some("closed"),
                    "reader {} ({:?}) ended {:?}, not at EOF",
                    r.client,
                    r.mode,
                    r.ended
                );
            }
        }
        Ok(())
    }
}
