//! Simulation sweeps with crashes (DESIGN.md sections 2 and 4): a writer that persists its
//! producer snapshots write-ahead (before a batch the last snapshot does not hold is sent, and
//! after every report, as the drivers' `Writer::on_snapshot` does) and journals every payload
//! before appending it; its process crashes at random points (the `Producer` is removed from
//! the [`World`] and its open exchanges are abandoned) and a new one is restored from the last
//! persisted snapshot (through its JSON form), replaying the journal from the snapshot's
//! `next_append_id`. Meanwhile the network drops, duplicates, reorders, delays and fails
//! requests as each seed's fault mix says.
//!
//! Checked for every seed: every append is on the server exactly once and in order; every
//! append is reported acknowledged exactly once across all incarnations, none fails; the
//! producer never needed another epoch; a restored producer's first requests re-send the
//! snapshot's pending batches byte-identically.
//!
//! Environment, as for the other sweeps: `DS_SIM_SEED=<n>` runs only seed `n` (the replay
//! command a failure prints); `DS_SIM_CASES=<n>` seeds per sweep (default [`DEFAULT_CASES`]);
//! `DS_SIM_FIRST_SEED=<n>` the first seed (default 0).

use bytes::Bytes;
use ds_proto::io::{Input, RequestId, Transmit};
use ds_proto::machine::Machine;
use ds_proto::ops::{create_request, CreateOptions, RequestExtras};
use ds_proto::producer::{
    ProducerConfig, ProducerEvent, ProducerSnapshot, SnapshotBatchState, SnapshotMark,
};
use ds_proto::retry::RetryPolicy;
use ds_proto::rng::Rng;
use ds_proto::sim::net::{ClientId, FaultConfig};
use ds_proto::sim::world::{PartyEvent, World, WorldConfig};
use ds_proto::Producer;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Seeds per sweep when `DS_SIM_CASES` is not set.
const DEFAULT_CASES: u64 = 300;

const PATH: &str = "/v1/stream/crash";
const URL: &str = "http://sim.test/v1/stream/crash";

// ----- the durable writer: a producer that persists snapshots write-ahead --------------------

/// What survives a crash: the last persisted snapshot (as JSON), like a file or a database row.
#[derive(Debug, Default)]
struct Store {
    json: Option<Vec<u8>>,
    persists: u64,
    /// Pending batches re-sent by restored incarnations, checked against their snapshot.
    resent: u64,
    violations: Vec<String>,
}

/// A [`Producer`] wrapped the way a driver wraps it: a snapshot is persisted before any
/// transmit of a batch the last persisted snapshot does not hold, and after every report.
#[derive(Debug)]
struct Durable {
    producer: Producer,
    store: Rc<RefCell<Store>>,
    persisted: Option<SnapshotMark>,
    /// For a restored incarnation: the `(epoch, seq)` and body of each pending batch of its
    /// snapshot, to check that its re-send is byte-identical.
    resend: BTreeMap<(u64, u64), Bytes>,
}

impl Durable {
    fn new(producer: Producer, store: Rc<RefCell<Store>>) -> Durable {
        let mut d = Durable {
            producer,
            store,
            persisted: None,
            resend: BTreeMap::new(),
        };
        d.persist();
        d
    }

    fn check_resend(&mut self, t: &Transmit) {
        let h = t.request.headers();
        let num = |n: &str| h.get(n)?.to_str().ok()?.parse::<u64>().ok();
        let (Some(epoch), Some(seq)) = (num("producer-epoch"), num("producer-seq")) else {
            return;
        };
        if let Some(body) = self.resend.remove(&(epoch, seq)) {
            let mut store = self.store.borrow_mut();
            store.resent += 1;
            if t.request.body() != &body {
                store.violations.push(format!(
                    "restored batch (epoch {epoch}, seq {seq}) re-sent with another body"
                ));
            }
        }
    }

    fn persist(&mut self) {
        let snapshot = self.producer.snapshot();
        let mut store = self.store.borrow_mut();
        store.json = Some(snapshot.to_json());
        store.persists += 1;
        self.persisted = Some(snapshot.mark());
    }
}

impl Machine for Durable {
    type Event = ProducerEvent;

    fn handle_input(&mut self, input: Input, now: Instant) {
        self.producer.handle_input(input, now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.producer.handle_timeout(now);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        let t = self.producer.poll_transmit(now)?;
        self.check_resend(&t);
        // Write-ahead: persisted before the request leaves.
        if self.persisted != Some(self.producer.snapshot_mark()) {
            self.persist();
        }
        Some(t)
    }

    fn poll_cancel(&mut self) -> Option<RequestId> {
        self.producer.poll_cancel()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.producer.poll_timeout()
    }

    fn poll_event(&mut self) -> Option<ProducerEvent> {
        let event = self.producer.poll_event()?;
        if matches!(
            event,
            ProducerEvent::Acked { .. } | ProducerEvent::Failed { .. }
        ) {
            self.persist();
        }
        Some(event)
    }
}

// ----- one seed ------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    Binary,
    Text,
    Json,
}

fn payload(content: Content, n: u64, rng: &mut Rng) -> Bytes {
    let len = rng.below(40) as usize;
    match content {
        Content::Json => {
            let pad: String = (0..len)
                .map(|_| ['a', 'z', ' ', 'é', '"', '\\', '\n', '€'][rng.below(8) as usize])
                .collect();
            Bytes::from(serde_json::to_vec(&serde_json::json!({ "n": n, "p": pad })).unwrap())
        }
        Content::Text => {
            let pad: String = (0..len)
                .map(|_| ['a', ' ', 'é', '€', '\n', '😀'][rng.below(6) as usize])
                .collect();
            Bytes::from(format!("<{n}|{pad}>"))
        }
        Content::Binary => {
            let mut out = format!("<{n}|").into_bytes();
            out.extend((0..len).map(|_| rng.below(256) as u8));
            out.push(b'>');
            Bytes::from(out)
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Stats {
    steps: u64,
    trace_hash: u64,
    virtual_time: Duration,
    appends: u64,
    crashes: u64,
    crashes_in_flight: u64,
    resent: u64,
    duplicates: u64,
    replayed: u64,
    persists: u64,
}

/// The application: its journal, what it was told, and the current incarnation of its writer.
struct App {
    content: Content,
    store: Rc<RefCell<Store>>,
    journal: Vec<Bytes>,
    client: Option<ClientId>,
    /// Per append id: how many times it was reported acknowledged.
    acks: BTreeMap<u64, u32>,
    stats: Stats,
    violations: Vec<String>,
}

impl App {
    fn writer<'w>(&self, world: &'w mut World) -> &'w mut Durable {
        let client = self.client.expect("a writer is running");
        world.machine_mut::<Durable>(client).expect("the writer")
    }

    fn append(&mut self, world: &mut World, rng: &mut Rng) {
        let n = self.journal.len() as u64;
        let data = payload(self.content, n, rng);
        // Journal first: after a crash, whatever was appended is in the journal.
        self.journal.push(data.clone());
        let now = world.now();
        match self.writer(world).producer.append(data, now) {
            Ok(id) if id.0 == n => {}
            other => self.violations.push(format!("append {n}: {other:?}")),
        }
        self.stats.appends += 1;
    }

    fn drain(&mut self, world: &mut World) {
        while let Some(e) = world.poll_event() {
            match e.event {
                PartyEvent::Producer(ProducerEvent::Acked {
                    first,
                    last,
                    duplicate,
                    ..
                }) => {
                    for id in first.0..=last.0 {
                        *self.acks.entry(id).or_default() += 1;
                    }
                    self.stats.duplicates += u64::from(duplicate);
                }
                PartyEvent::Producer(ProducerEvent::Failed {
                    first,
                    last,
                    reason,
                    ..
                }) => self
                    .violations
                    .push(format!("appends {}..={} failed: {reason}", first.0, last.0)),
                PartyEvent::Producer(ProducerEvent::EpochClaimed { epoch }) => self
                    .violations
                    .push(format!("the writer needed epoch {epoch}")),
                _ => {}
            }
        }
    }

    /// The process dies; after `downtime` a new one restores from the store and replays the
    /// journal.
    fn crash_and_restore(&mut self, world: &mut World, downtime: Duration, seed: u64) {
        let client = self.client.take().expect("a writer");
        if world
            .machine::<Durable>(client)
            .unwrap()
            .producer
            .in_flight()
            > 0
        {
            self.stats.crashes_in_flight += 1;
        }
        world.remove(client);
        self.stats.crashes += 1;
        if let Err(e) = world.run_for(downtime) {
            self.violations.push(format!("downtime: {e}"));
        }
        let json = self.store.borrow().json.clone().expect("a snapshot");
        let mut snapshot = match ProducerSnapshot::from_json(&json) {
            Ok(s) => s,
            Err(e) => {
                self.violations.push(format!("snapshot: {e}"));
                return;
            }
        };
        snapshot.config.rng_seed ^= seed.rotate_left(self.stats.crashes as u32);
        let from = snapshot.next_append_id.0;
        let resend = snapshot
            .batches
            .iter()
            .filter_map(|b| match &b.state {
                SnapshotBatchState::Pending { body, .. } => Some(((b.epoch, b.seq), body.clone())),
                _ => None,
            })
            .collect();
        let producer = match Producer::restore(snapshot, world.now()) {
            Ok(p) => p,
            Err(e) => {
                self.violations.push(format!("restore: {e}"));
                return;
            }
        };
        let mut durable = Durable::new(producer, self.store.clone());
        durable.resend = resend;
        self.client = Some(world.add_machine(durable));
        let now = world.now();
        for n in from..self.journal.len() as u64 {
            let data = self.journal[n as usize].clone();
            match self.writer(world).producer.append(data, now) {
                Ok(id) if id.0 == n => {}
                other => self
                    .violations
                    .push(format!("replayed append {n}: {other:?}")),
            }
            self.stats.replayed += 1;
        }
    }
}

fn run_seed(seed: u64) -> Result<Stats, String> {
    let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xC0A5);
    let content = [Content::Binary, Content::Text, Content::Json][rng.below(3) as usize];
    let content_type = match content {
        Content::Binary => "application/octet-stream",
        Content::Text => "text/plain",
        Content::Json => "application/json",
    };
    let faults = FaultConfig::random(rng.next_u64());
    #[allow(clippy::disallowed_methods)] // the world's clock starts here and is virtual after
    let start = Instant::now();
    let mut world = World::new(
        WorldConfig {
            faults,
            ..WorldConfig::new(seed)
        },
        start,
    );

    // The stream, created by hand over the faulty network.
    let create = CreateOptions::with_content_type(content_type);
    loop {
        let put = create_request(URL, &create, &RequestExtras::default()).unwrap();
        match world.call(put).map_err(|e| e.to_string())? {
            Ok(resp) if resp.status().is_success() => break,
            _ => world
                .run_for(Duration::from_millis(50))
                .map_err(|e| e.to_string())?,
        }
    }

    let ms = |rng: &mut Rng, lo: u64, hi: u64| Duration::from_millis(lo + rng.below(hi - lo + 1));
    let max_batch_bytes = 32 + rng.below(480) as usize;
    let config = ProducerConfig {
        linger: ms(&mut rng, 0, 20),
        max_batch_bytes,
        max_batch_items: 1 + rng.below(8) as usize,
        max_in_flight: 1 + rng.below(4) as usize,
        content_type: content_type.to_owned(),
        // Every append must get through: retries without limit.
        retry: RetryPolicy {
            initial_delay: ms(&mut rng, 5, 100),
            max_delay: ms(&mut rng, 200, 2000),
            max_attempts: None,
            max_elapsed: None,
            ..RetryPolicy::default()
        },
        rng_seed: rng.next_u64(),
        request_deadline: rng.chance(0.25).then(|| ms(&mut rng, 500, 5000)),
        ..ProducerConfig::new(URL, "crashy")
    };
    let store = Rc::new(RefCell::new(Store::default()));
    let producer = Producer::new(config, world.now()).map_err(|e| e.to_string())?;
    let client = world.add_machine(Durable::new(producer, store.clone()));
    let mut app = App {
        content,
        store,
        journal: Vec::new(),
        client: Some(client),
        acks: BTreeMap::new(),
        stats: Stats::default(),
        violations: Vec::new(),
    };

    let total = 10 + rng.below(90);
    let crash_rate = 0.02 + rng.unit() * 0.15;
    let max_crashes = 1 + rng.below(8);
    // The application runs: appends in bursts, flushes now and then, and crashes.
    while (app.journal.len() as u64) < total {
        for _ in 0..rng.below(5) {
            if (app.journal.len() as u64) < total {
                app.append(&mut world, &mut rng);
            }
        }
        if rng.chance(0.05) {
            let now = world.now();
            app.writer(&mut world).producer.flush(now);
        }
        world
            .run_for(ms(&mut rng, 0, 60))
            .map_err(|e| e.to_string())?;
        app.drain(&mut world);
        if app.stats.crashes < max_crashes && rng.chance(crash_rate) {
            let downtime = ms(&mut rng, 0, 500);
            app.crash_and_restore(&mut world, downtime, seed);
        }
        if !app.violations.is_empty() {
            return Err(app.violations.join("; "));
        }
    }
    // The end: flush, and keep going (crashing now and then) until everything is acknowledged.
    let now = world.now();
    app.writer(&mut world).producer.flush(now);
    while app.acks.len() < total as usize {
        world
            .run_for(ms(&mut rng, 10, 300))
            .map_err(|e| e.to_string())?;
        app.drain(&mut world);
        if app.stats.crashes < max_crashes && rng.chance(crash_rate) {
            let downtime = ms(&mut rng, 0, 500);
            app.crash_and_restore(&mut world, downtime, seed);
            let now = world.now();
            app.writer(&mut world).producer.flush(now);
        }
        if !app.violations.is_empty() {
            return Err(app.violations.join("; "));
        }
    }
    world
        .run_for(Duration::from_secs(1))
        .map_err(|e| e.to_string())?;
    app.drain(&mut world);

    // Every append reported acknowledged exactly once, across incarnations.
    for n in 0..total {
        match app.acks.get(&n) {
            Some(1) => {}
            Some(k) => return Err(format!("append {n} acknowledged {k} times")),
            None => return Err(format!("append {n} never acknowledged")),
        }
    }
    if app.acks.len() as u64 != total {
        return Err(format!("acknowledgements for {} appends", app.acks.len()));
    }
    if !app.violations.is_empty() {
        return Err(app.violations.join("; "));
    }
    // The server holds every append exactly once, in order.
    let server = world.server();
    match content {
        Content::Json => {
            let stored = server.stream_data(PATH).ok_or("the stream vanished")?;
            if stored.len() != app.journal.len() {
                return Err(format!(
                    "{} messages on the server for {} appends",
                    stored.len(),
                    app.journal.len()
                ));
            }
            for (n, (got, want)) in stored.iter().zip(&app.journal).enumerate() {
                let got: serde_json::Value =
                    serde_json::from_slice(got).map_err(|e| e.to_string())?;
                let want: serde_json::Value = serde_json::from_slice(want).unwrap();
                if got != want {
                    return Err(format!(
                        "message {n} on the server: {got} instead of {want}"
                    ));
                }
            }
        }
        Content::Binary | Content::Text => {
            let stored = server.stream_bytes(PATH).ok_or("the stream vanished")?;
            let want: Vec<u8> = app.journal.concat();
            if stored[..] != want[..] {
                return Err(format!(
                    "the server holds {} bytes, not the journal's {} (first difference at {})",
                    stored.len(),
                    want.len(),
                    stored
                        .iter()
                        .zip(&want)
                        .position(|(a, b)| a != b)
                        .unwrap_or(stored.len().min(want.len()))
                ));
            }
        }
    }
    let state = server
        .producer_state(PATH, "crashy")
        .ok_or("no producer state")?;
    if state.epoch != 0 {
        return Err(format!("the server holds epoch {}", state.epoch));
    }
    {
        let store = app.store.borrow();
        if !store.violations.is_empty() {
            return Err(store.violations.join("; "));
        }
        app.stats.resent = store.resent;
    }
    app.stats.steps = world.steps();
    app.stats.trace_hash = world.trace_hash();
    app.stats.virtual_time = world.elapsed();
    app.stats.persists = app.store.borrow().persists;
    Ok(app.stats)
}

fn sweep(test: &str) {
    let seeds = ds_tests::sweep::seeds(DEFAULT_CASES);
    #[allow(clippy::disallowed_methods)]
    let wall = Instant::now();
    let mut total = Stats::default();
    for &seed in &seeds {
        let failure = match catch_unwind(AssertUnwindSafe(|| run_seed(seed))) {
            Ok(Ok(s)) => {
                total.steps += s.steps;
                total.virtual_time += s.virtual_time;
                total.appends += s.appends;
                total.crashes += s.crashes;
                total.crashes_in_flight += s.crashes_in_flight;
                total.resent += s.resent;
                total.duplicates += s.duplicates;
                total.replayed += s.replayed;
                total.persists += s.persists;
                continue;
            }
            Ok(Err(violation)) => violation,
            Err(panic) => ds_tests::sweep::panic_message(&*panic),
        };
        panic!(
            "{test}: seed {seed} failed: {failure}\n\
             replay: DS_SIM_SEED={seed} cargo test -p ds-tests --test sim_crash {test} -- --nocapture"
        );
    }
    eprintln!(
        "{test}: {} seeds passed in {:.1?} (wall): {} steps, {:.0?} virtual, {} appends, {} \
         crashes ({} with requests in flight), {} restored batches re-sent, {} journal appends \
         replayed, {} duplicate acknowledgements, {} snapshots persisted",
        seeds.len(),
        wall.elapsed(),
        total.steps,
        total.virtual_time,
        total.appends,
        total.crashes,
        total.crashes_in_flight,
        total.resent,
        total.replayed,
        total.duplicates,
        total.persists,
    );
    assert!(
        seeds.len() < 20 || total.crashes_in_flight > 0,
        "no crash happened with requests in flight"
    );
}

#[test]
fn sim_crash_restore_is_exactly_once() {
    sweep("sim_crash_restore_is_exactly_once");
}

#[test]
fn sim_crash_same_seed_same_trace() {
    for seed in 0..6 {
        let a = run_seed(seed).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let b = run_seed(seed).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} did not replay");
        assert_eq!(a.steps, b.steps, "seed {seed} did not replay");
    }
}
