//! Testing your own application against a simulated, faulty world, and replaying a seed.
//!
//! ```text
//! cargo run --example simulation                      # a sweep of 20 seeds
//! cargo run --example simulation -- --seeds 500       # a longer sweep
//! cargo run --example simulation -- --seed 7          # replay one seed, with its trace summary
//! ```
//!
//! The application under test is a small **ledger**: a teller publishes transfers through an
//! idempotent [`Producer`], and a projection folds them into account balances with a
//! [`Reader`], persisting `(balances, offset)` together every few chunks. Halfway through, the
//! projection's process crashes: it restarts from what it persisted, re-reading what it had not
//! persisted yet.
//!
//! The test runs it in ds-proto's `sim` [`World`]: the in-memory server, a seeded network that
//! drops requests and responses, duplicates, reorders, injects 429/500/503, splits bodies and
//! resets connections ([`FaultConfig::random`]), and a virtual clock, so minutes of retries take
//! milliseconds and nothing sleeps. The same code as in production (the ds-proto machines) runs
//! unchanged: only the world around it is simulated. No network, no server process, no tokio.
//!
//! For every seed it checks the application's invariants:
//!
//! - every transfer is acknowledged exactly once, and the stream holds each exactly once, in
//!   order (compared with the server's own record);
//! - the projection's balances equal the fold of all transfers, across the crash;
//! - the same seed replays the same run: the trace hash of a second run is identical.
//!
//! A failing seed prints the one command that replays it.

use bytes::Bytes;
use ds_proto::ops::{create_request, CreateOptions, RequestExtras};
use ds_proto::producer::{Producer, ProducerConfig, ProducerEvent};
use ds_proto::reader::{Chunk, ReadMode, Reader, ReaderConfig, ReaderEvent};
use ds_proto::sim::net::FaultConfig;
use ds_proto::sim::world::{PartyEvent, TraceKind, World, WorldConfig};
use ds_proto::{Offset, RetryPolicy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const PATH: &str = "/v1/stream/ledger";
const URL: &str = "http://sim/v1/stream/ledger";
const TRANSFERS: u64 = 40;
/// Virtual time between two transfers.
const PACE: Duration = Duration::from_millis(15);

// ----- the application ----------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Transfer {
    n: u64,
    account: String,
    amount: i64,
}

fn transfer(n: u64) -> Transfer {
    Transfer {
        n,
        account: ["alice", "bob", "carol"][(n % 3) as usize].to_owned(),
        amount: (n as i64 * 37) % 200 - 80,
    }
}

/// The projection: balances, how many transfers it folded, and where to resume.
#[derive(Debug, Clone, PartialEq)]
struct Ledger {
    balances: BTreeMap<String, i64>,
    applied: u64,
    offset: Offset,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            balances: BTreeMap::new(),
            applied: 0,
            offset: Offset::beginning(),
        }
    }
}

impl Ledger {
    fn apply(&mut self, t: &Transfer) {
        *self.balances.entry(t.account.clone()).or_default() += t.amount;
        self.applied += 1;
    }

    /// Folds one chunk of the stream in and moves the resume offset past it.
    fn apply_chunk(&mut self, chunk: &Chunk) -> Result<(), String> {
        for item in chunk.items()? {
            let t: Transfer = serde_json::from_slice(&item).map_err(|e| e.to_string())?;
            if t.n != self.applied {
                return Err(format!("expected transfer {}, read {}", self.applied, t.n));
            }
            self.apply(&t);
        }
        self.offset = chunk.next_offset.clone();
        Ok(())
    }
}

// ----- the test harness ---------------------------------------------------------------------

/// What one seed's run produced.
#[derive(Debug)]
struct Outcome {
    faults: FaultConfig,
    mode: ReadMode,
    duplicates: u64,
    redelivered: u64,
    steps: u64,
    virtual_time: Duration,
    trace_hash: u64,
    fault_count: usize,
}

/// The world's start: the only real `Instant` a run sees.
#[allow(clippy::disallowed_methods)] // the workspace clippy.toml is written for ds-proto
fn real_now() -> Instant {
    Instant::now()
}

fn run(seed: u64, record_trace: bool) -> Result<Outcome, String> {
    let start = real_now();
    let faults = FaultConfig::random(seed);
    let config = WorldConfig {
        faults: faults.clone(),
        record_trace,
        max_time: Duration::from_secs(30 * 60),
        ..WorldConfig::new(seed)
    };
    let mut world = World::new(config, start);

    // The stream, set up directly on the server (bypassing the faulty network).
    let put = create_request(
        URL,
        &CreateOptions::with_content_type("application/json"),
        &RequestExtras::default(),
    )
    .map_err(|e| e.to_string())?;
    let now = world.now();
    let created = world.server_mut().call(put, now);
    if !matches!(&created, Ok(r) if r.status().is_success()) {
        return Err(format!("cannot create the stream: {created:?}"));
    }

    // The teller: an idempotent producer that never gives up (the network heals eventually).
    let teller = world.add_machine(
        Producer::new(
            ProducerConfig {
                content_type: "application/json".into(),
                linger: Duration::from_millis(5),
                max_in_flight: 1 + (seed % 3) as usize,
                retry: RetryPolicy::unlimited(),
                rng_seed: seed,
                ..ProducerConfig::new(URL, "teller-1")
            },
            now,
        )
        .map_err(|e| e.to_string())?,
    );
    for n in 0..TRANSFERS {
        world.schedule(start + PACE * n as u32, move |w| {
            let now = w.now();
            let body = serde_json::to_vec(&transfer(n)).expect("serializable");
            let producer = w.producer_mut(teller).expect("the teller");
            producer
                .append(Bytes::from(body), now)
                .expect("room in the buffer");
        });
    }
    world.schedule(start + PACE * TRANSFERS as u32, move |w| {
        let now = w.now();
        let producer = w.producer_mut(teller).expect("the teller");
        producer.close(now).expect("close once");
    });

    // The projection: a live reader in a mode chosen by the seed.
    let mode = [ReadMode::Auto, ReadMode::LongPoll, ReadMode::Sse][(seed % 3) as usize];
    let new_reader = |offset: Offset, now: Instant, rng_seed: u64| {
        Reader::new(
            ReaderConfig {
                mode,
                offset,
                json: Some(true),
                rng_seed,
                ..ReaderConfig::new(URL)
            },
            now,
        )
        .map_err(|e| e.to_string())
    };
    let mut projection = world.add_machine(new_reader(Offset::beginning(), now, seed + 1)?);
    let mut ledger = Ledger::default();
    let mut persisted = Ledger::default();
    let mut chunks = 0u64;
    let crash_at = PACE * (TRANSFERS / 2) as u32;
    let mut crashed = false;
    let mut redelivered = 0;

    // Run the world, dispatching each party's events to the application.
    let mut acked = Vec::new();
    let mut duplicates = 0;
    let (mut teller_closed, mut projection_done) = (false, false);
    while !(teller_closed && projection_done) {
        if !world.step().map_err(|e| e.to_string())? {
            return Err("the world went idle before the run ended".into());
        }
        while let Some(event) = world.poll_event() {
            match event.event {
                PartyEvent::Producer(e) if event.client == teller => match e {
                    ProducerEvent::Acked {
                        first,
                        last,
                        duplicate,
                        ..
                    } => {
                        acked.extend(first.0..=last.0);
                        duplicates += u64::from(duplicate);
                    }
                    ProducerEvent::Closed { .. } => teller_closed = true,
                    ProducerEvent::Failed { reason, .. } => {
                        return Err(format!("a transfer failed: {reason}"))
                    }
                    ProducerEvent::CloseFailed { reason } => {
                        return Err(format!("the close failed: {reason}"))
                    }
                    _ => {}
                },
                PartyEvent::Reader(e) if event.client == projection => match e {
                    ReaderEvent::Data(chunk) => {
                        ledger.apply_chunk(&chunk)?;
                        chunks += 1;
                        if chunks % 3 == 0 {
                            persisted = ledger.clone(); // the application's "fsync"
                        }
                    }
                    ReaderEvent::Closed { .. } => projection_done = true,
                    ReaderEvent::Failed(e) => return Err(format!("the projection failed: {e}")),
                    _ => {}
                },
                _ => {} // events of the crashed projection: its process is gone
            }
        }
        if !crashed && world.elapsed() >= crash_at && !projection_done {
            // Crash: whatever was not persisted is lost; restart from what was.
            crashed = true;
            world.remove(projection);
            redelivered = ledger.applied - persisted.applied;
            ledger = persisted.clone();
            let now = world.now();
            projection = world.add_machine(new_reader(ledger.offset.clone(), now, seed + 2)?);
        }
    }

    // The invariants.
    if acked != (0..TRANSFERS).collect::<Vec<_>>() {
        return Err(format!(
            "acknowledgements are not 0..{TRANSFERS} once each: {acked:?}"
        ));
    }
    let stored = world
        .server()
        .stream_data(PATH)
        .ok_or("the stream is gone")?
        .iter()
        .map(|m| serde_json::from_slice::<Transfer>(m).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let expected: Vec<Transfer> = (0..TRANSFERS).map(transfer).collect();
    if stored != expected {
        return Err(format!(
            "the stream holds {} transfers, not each of the {TRANSFERS} once in order",
            stored.len()
        ));
    }
    let mut truth = Ledger::default();
    expected.iter().for_each(|t| truth.apply(t));
    if ledger.balances != truth.balances || ledger.applied != TRANSFERS {
        return Err(format!(
            "the projection is wrong: {:?} after {} transfers, expected {:?}",
            ledger.balances, ledger.applied, truth.balances
        ));
    }
    let fault_count = world
        .trace()
        .iter()
        .filter(|t| matches!(t.kind, TraceKind::Fault { .. }))
        .count();
    Ok(Outcome {
        faults,
        mode,
        duplicates,
        redelivered,
        steps: world.steps(),
        virtual_time: world.elapsed(),
        trace_hash: world.trace_hash(),
        fault_count,
    })
}

/// Runs a seed twice: the second run must replay the first exactly.
fn check(seed: u64, record_trace: bool) -> Result<Outcome, String> {
    let first = run(seed, record_trace)?;
    let second = run(seed, false)?;
    if first.trace_hash != second.trace_hash {
        return Err(format!(
            "not deterministic: trace {:016x}, then {:016x}",
            first.trace_hash, second.trace_hash
        ));
    }
    Ok(first)
}

fn describe(f: &FaultConfig) -> String {
    if !f.is_faulty() {
        return format!("no faults, latency {:?}", f.latency);
    }
    let pct = |p: f64| format!("{:.0}%", p * 100.0);
    format!(
        "drop {}/{} dup {} reorder {} 429 {} 5xx {}/{} split {} reset {}",
        pct(f.drop_request),
        pct(f.drop_response),
        pct(f.duplicate),
        pct(f.reorder),
        pct(f.inject_429),
        pct(f.inject_500),
        pct(f.inject_503),
        pct(f.split_body),
        pct(f.reset_body),
    )
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let Some(seed) = value("--seed") {
        // Replay one seed, with a summary of its trace.
        return match check(seed, true) {
            Ok(o) => {
                println!("seed {seed}: {}", describe(&o.faults));
                println!(
                    "  reader mode {:?}; {} faults injected; {} duplicate acks; crash re-read {} transfers",
                    o.mode, o.fault_count, o.duplicates, o.redelivered
                );
                println!(
                    "  {} steps, {:?} of virtual time; trace {:016x} (replayed identically)",
                    o.steps, o.virtual_time, o.trace_hash
                );
                println!("ok");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("seed {seed} FAILED: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let seeds = value("--seeds").unwrap_or(20);
    let started = real_now();
    let mut faults = 0;
    for seed in 0..seeds {
        match check(seed, true) {
            Ok(o) => {
                faults += o.fault_count;
                println!(
                    "seed {seed:>3}: ok  {:<8} {:>4} faults, {:>6.1}s virtual, re-read {:>2} after the crash  [{}]",
                    format!("{:?}", o.mode),
                    o.fault_count,
                    o.virtual_time.as_secs_f64(),
                    o.redelivered,
                    describe(&o.faults)
                );
            }
            Err(e) => {
                eprintln!("seed {seed}: FAILED: {e}");
                eprintln!("replay with: cargo run --example simulation -- --seed {seed}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    println!(
        "ok: {seeds} seeds, {faults} faults injected, every invariant held, every seed replayed \
         identically ({:.1?} of real time)",
        real_now() - started
    );
    std::process::ExitCode::SUCCESS
}
