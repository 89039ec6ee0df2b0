//! End-to-end benchmarks of the Durable Streams drivers against real servers, each scenario
//! run through a driver and through a bare-stack loop doing the same HTTP exchanges without
//! protocol logic (bare hyper beside ds-tokio, bare ureq beside ds-blocking); the table gives
//! the ratios.
//!
//! ```text
//! cargo run --release -p ds-bench -- --server ref|rust|both \[options\]
//! ```
//!
//! Options (defaults in brackets):
//!
//! - `--server ref|rust|both` \[both\]: the reference server (npm, started through the ds-tests
//!   harness) and/or `durable-streams-server` (installed into `<workspace>/.cache/ds-server`
//!   with `cargo install` when missing);
//! - `--stacks tokio,blocking,pipe` \[tokio,blocking\]: `pipe` is a bench-only ordered writer
//!   ([`pipe_stack`]: producer appends pipelined on one connection through ds-proto's sans-IO
//!   HTTP/1.1 codec), beside bare hyper; write scenarios only;
//! - `--pipe-plan`: the `pipe` stack sizes its batches with `ds_proto::pipe::WritePipe`
//!   (from `--batch-bytes` up to 16 MiB, at most 64 MiB in flight) instead of fixed
//!   `--batch-bytes` batches;
//! - `--only write,catch-up,live,ops` \[all\]; `--only subscriptions` (never part of "all")
//!   runs `subscriptions.rs` (`--server rust` is the embedded server there); `--only paced`
//!   (never part of "all") runs `paced.rs`: append-to-acknowledgement latency of a 100-byte
//!   append every 2 ms through the delay proxy (`--rtt-ms`, 20 unless given; `--in-flight`,
//!   4 unless given);
//! - `--reps N` \[3\]: repetitions of each throughput run (the median is shown);
//! - `--in-flight 1,2,5` \[1\]: the writer's `max_in_flight` values to run;
//! - `--batch-items N`, `--linger-ms N`, `--batch-bytes N`: writer settings (the producer's
//!   defaults unless given; `--batch-bytes` also sizes the bare loops' bodies, otherwise
//!   1 MiB);
//! - `--bare-prebuilt`: the bare loops build their batch bodies before the clock starts
//!   (by default building them, a copy of the payloads, is part of their measured work, as
//!   batching is part of the driver's);
//! - `--appends N` \[100000\]: the small-append count; `--catch-up-mb N` \[100\];
//!   `--live-samples N` \[200\]; `--op-samples N` \[300\];
//! - `--rtt-ms N` \[0: none\]: the write scenarios go through an in-process delay proxy
//!   ([`delay`]) adding N/2 ms each way (order kept, bounded buffers); the table then also
//!   gives the POST and 409 counts the proxy saw (of the median run; every run is printed on
//!   stderr);
//! - `--trace-posts` (with `--rtt-ms`): stderr also gets a line per POST (its body length) and
//!   per answer (its status) as each head passes the proxy, in ms since it started: where a
//!   writer's round trips go;
//! - `--sizes COUNTxLEN,...` \[`APPENDSx100,50x1M`; with `--rtt-ms`, `200x256K,200000x100`\]:
//!   the write scenarios (LEN may end in K or M, binary);
//! - `--external NAME=PATH` (repeatable): a writer program that is not part of this repository
//!   (e.g. one built by you on the official Rust client) joins the write scenarios: it is run
//!   once per run, as many runs as the other stacks, against the same server and delay proxy,
//!   and gets a column in the table, followed by the ratios of each driver to it; the
//!   command-line protocol it speaks is in [`external`];
//! - `--out FILE`: also write the table (markdown) to FILE.
//!
//! The bare write loops send the batch bodies (at most `--batch-bytes` each) as producer appends
//! one at a time at in-flight 1; at in-flight N > 1 they send them as plain appends without
//! producer headers, N at a time on N connections, so order is not kept: an upper bound for
//! an ordered writer.
//!
//! Every loop is bounded in count and time; all traffic stays on 127.0.0.1.
#![forbid(unsafe_code)]

mod blocking_stacks;
mod delay;
mod external;
mod paced;
mod pipe_stack;
mod servers;
mod subscriptions;
mod tokio_stacks;
mod util;

use bytes::Bytes;
use ds_proto::producer::ProducerConfig;
use servers::{Kind, Server};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;
use util::{Lat, Tput};

/// Pause between two live messages (so a long-poll is parked when the append arrives).
pub const LIVE_GAP: Duration = Duration::from_millis(3);
/// How long a live message may take to arrive before the scenario fails.
pub const LIVE_WAIT: Duration = Duration::from_secs(5);
/// Operations run before the measured ones.
pub const WARMUP: usize = 20;
/// The reader's `max_body_bytes` for the catch-up scenario (a 100 MB stream comes back as one
/// response from both servers).
pub const CATCH_UP_LIMIT: usize = 1 << 30;
/// The bare loops' body size unless `--batch-bytes` is given: 1 MiB (issue 16's baseline).
pub const BARE_BODY_BYTES: usize = 1 << 20;
/// Upper bound on a whole scenario's live phase.
const LIVE_BUDGET: Duration = Duration::from_secs(30);

/// The writer's settings for one run.
#[derive(Debug, Clone)]
pub struct WriteCfg {
    pub in_flight: usize,
    pub batch_items: Option<usize>,
    /// The writers' `max_batch_bytes` (`--batch-bytes`); `None`: the producer's default.
    pub batch_bytes: Option<usize>,
    /// The bare loops' (and the `pipe` stack's) body size: `--batch-bytes`, else 1 MiB.
    pub bare_bytes: usize,
    pub linger: Option<Duration>,
    /// The bare loops build their bodies before the measurement starts (`--bare-prebuilt`).
    pub bare_prebuilt: bool,
}

impl WriteCfg {
    pub fn apply(&self, c: &mut ProducerConfig) {
        c.max_in_flight = self.in_flight;
        if let Some(b) = self.batch_bytes {
            c.max_batch_bytes = b;
        }
        if let Some(n) = self.batch_items {
            c.max_batch_items = n;
        }
        if let Some(l) = self.linger {
            c.linger = l;
        }
    }
}

/// A driver and its bare stack.
type StackPair = (Box<dyn Stack>, Box<dyn Stack>);

/// One way of doing each scenario's HTTP exchanges.
pub trait Stack {
    fn name(&self) -> &str;
    /// Appends every payload (in order, exactly once) and returns when the server confirmed
    /// them all.
    fn write(&self, url: &str, payloads: Vec<Bytes>, cfg: &WriteCfg) -> Result<Tput, String>;
    /// Reads the whole stream from the beginning (it holds `expect` bytes).
    fn catch_up(&self, url: &str, expect: u64) -> Result<Tput, String>;
    /// Append-to-delivery latency through long-poll (or SSE) on a `text/plain` stream.
    fn live(&self, url: &str, sse: bool, n: usize, budget: Duration) -> Result<Lat, String>;
    /// Latency of create, append, head and read (streams named from `url`).
    fn ops(&self, url: &str, n: usize) -> Result<[Lat; 4], String>;
}

/// The `streamNextOffset` of the last complete control event in `data`, if any.
pub fn last_control_offset(data: &[u8]) -> Option<String> {
    let key = b"\"streamNextOffset\":\"";
    let at = memchr::memmem::rfind(data, key)? + key.len();
    let end = memchr::memchr(b'"', &data[at..])?;
    std::str::from_utf8(&data[at..at + end])
        .ok()
        .map(str::to_owned)
}

#[derive(Debug, Clone)]
struct Args {
    servers: Vec<Kind>,
    tokio: bool,
    blocking: bool,
    pipe: bool,
    pipe_plan: bool,
    only: Vec<String>,
    reps: usize,
    in_flight: Vec<usize>,
    /// `--in-flight` was given (the paced scenario's default is 4, not 1).
    in_flight_given: bool,
    batch_items: Option<usize>,
    batch_bytes: Option<usize>,
    linger: Option<Duration>,
    bare_prebuilt: bool,
    appends: usize,
    catch_up_mb: usize,
    live_samples: usize,
    op_samples: usize,
    out: Option<String>,
    rtt_ms: u64,
    /// Print each POST and answer the delay proxy sees (`--trace-posts`).
    trace_posts: bool,
    sizes: Option<Vec<(usize, usize)>>,
    externals: Vec<external::External>,
}

/// Parses `COUNTxLEN[,COUNTxLEN...]`, LEN with an optional K or M (binary) suffix.
fn parse_sizes(v: &str) -> Result<Vec<(usize, usize)>, String> {
    v.split(',')
        .map(|item| {
            let (count, len) = item
                .split_once('x')
                .ok_or(format!("--sizes: {item:?} is not COUNTxLEN"))?;
            let count: usize = count.parse().map_err(|e| format!("--sizes: {e}"))?;
            let (digits, unit) = match len.strip_suffix(['K', 'k']) {
                Some(d) => (d, 1 << 10),
                None => match len.strip_suffix(['M', 'm']) {
                    Some(d) => (d, 1 << 20),
                    None => (len, 1),
                },
            };
            let len = digits
                .parse::<usize>()
                .map_err(|e| format!("--sizes: {e}"))?
                * unit;
            if count == 0 || len == 0 || count > 10_000_000 || len > 1 << 30 {
                return Err(format!("--sizes: {item:?} out of range"));
            }
            Ok((count, len))
        })
        .collect()
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        servers: vec![Kind::Ref, Kind::Rust],
        tokio: true,
        blocking: true,
        pipe: false,
        pipe_plan: false,
        only: Vec::new(),
        reps: 3,
        in_flight: vec![1],
        in_flight_given: false,
        batch_items: None,
        batch_bytes: None,
        linger: None,
        bare_prebuilt: false,
        appends: 100_000,
        catch_up_mb: 100,
        live_samples: 200,
        op_samples: 300,
        out: None,
        rtt_ms: 0,
        trace_posts: false,
        sizes: None,
        externals: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, name: &str| -> Result<usize, String> {
        v.ok_or(format!("{name} needs a value"))?
            .parse()
            .map_err(|e| format!("{name}: {e}"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--server" => {
                a.servers = match it.next().as_deref() {
                    Some("ref") => vec![Kind::Ref],
                    Some("rust") => vec![Kind::Rust],
                    Some("both") => vec![Kind::Ref, Kind::Rust],
                    other => return Err(format!("--server ref|rust|both, not {other:?}")),
                }
            }
            "--stacks" => {
                let v = it.next().unwrap_or_default();
                a.tokio = v.split(',').any(|s| s == "tokio");
                a.blocking = v.split(',').any(|s| s == "blocking");
                a.pipe = v.split(',').any(|s| s == "pipe");
            }
            "--only" => {
                a.only = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::to_owned)
                    .collect()
            }
            "--reps" => a.reps = num(it.next(), "--reps")?.clamp(1, 50),
            "--in-flight" => {
                a.in_flight_given = true;
                a.in_flight = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|s| s.parse().map_err(|e| format!("--in-flight: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--batch-items" => a.batch_items = Some(num(it.next(), "--batch-items")?),
            "--batch-bytes" => a.batch_bytes = Some(num(it.next(), "--batch-bytes")?),
            "--linger-ms" => {
                a.linger = Some(Duration::from_millis(num(it.next(), "--linger-ms")? as u64))
            }
            "--bare-prebuilt" => a.bare_prebuilt = true,
            "--trace-posts" => a.trace_posts = true,
            "--pipe-plan" => a.pipe_plan = true,
            "--appends" => a.appends = num(it.next(), "--appends")?.clamp(1, 10_000_000),
            "--catch-up-mb" => a.catch_up_mb = num(it.next(), "--catch-up-mb")?.clamp(1, 2000),
            "--live-samples" => {
                a.live_samples = num(it.next(), "--live-samples")?.clamp(1, 100_000)
            }
            "--op-samples" => a.op_samples = num(it.next(), "--op-samples")?.clamp(1, 100_000),
            "--out" => a.out = it.next(),
            "--rtt-ms" => a.rtt_ms = num(it.next(), "--rtt-ms")?.clamp(0, 2000) as u64,
            "--sizes" => a.sizes = Some(parse_sizes(&it.next().unwrap_or_default())?),
            "--external" => a
                .externals
                .push(external::parse(&it.next().unwrap_or_default())?),
            "-h" | "--help" => {
                println!("usage: ds-bench --server ref|rust|both [--stacks tokio,blocking,pipe] [--only write,catch-up,live,ops,subscriptions,paced] [--reps N] [--in-flight 1,2,5] [--batch-items N] [--batch-bytes N] [--linger-ms N] [--bare-prebuilt] [--pipe-plan] [--appends N] [--catch-up-mb N] [--live-samples N] [--op-samples N] [--rtt-ms N [--trace-posts]] [--sizes COUNTxLEN,...] [--external NAME=PATH ...] [--out FILE]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(a)
}

impl Args {
    fn runs(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

/// A measured value of a driver and of its bare stack.
#[derive(Debug, Clone, Copy)]
struct Pair {
    driver: f64,
    bare: f64,
}

impl Pair {
    fn ratio(self) -> f64 {
        self.driver / self.bare
    }
}

#[derive(Debug)]
struct Row {
    scenario: String,
    metric: &'static str,
    /// Per stack pair (tokio, blocking, pipe); `None`: not run.
    cells: [Option<Result<Pair, String>>; 3],
    /// Per external writer (`--external`), in order; `None`: not run.
    ext: Vec<Option<Result<f64, String>>>,
}

/// A row of the write scenarios: its metric and how to get it from a run.
type Metric = (&'static str, fn(&Tput) -> f64);

/// The write scenarios' rows, in order.
const WRITE_METRICS: [Metric; 5] = [
    ("msgs/s", Tput::msgs_per_s),
    ("MB/s", Tput::mb_per_s),
    ("CPU s / M msgs", Tput::cpu_per_million),
    ("POSTs", Tput::posts),
    ("409s", Tput::conflicts),
];

fn median(mut v: Vec<Tput>) -> Tput {
    v.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    v[v.len() / 2]
}

/// Runs a throughput scenario `reps` times for both stacks of a pair, alternating the order.
fn tput_pair(
    reps: usize,
    driver: &dyn Stack,
    bare: Option<&dyn Stack>,
    mut run: impl FnMut(&dyn Stack) -> Result<Tput, String>,
) -> Result<(Tput, Option<Tput>), String> {
    let (mut d, mut b) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        if rep % 2 == 1 {
            if let Some(bare) = bare {
                b.push(run(bare).map_err(|e| format!("{}: {e}", bare.name()))?);
            }
        }
        d.push(run(driver).map_err(|e| format!("{}: {e}", driver.name()))?);
        if rep % 2 == 0 {
            if let Some(bare) = bare {
                b.push(run(bare).map_err(|e| format!("{}: {e}", bare.name()))?);
            }
        }
    }
    Ok((median(d), (!b.is_empty()).then(|| median(b))))
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v.fract() == 0.0 && v.abs() < 1e6 {
        // Counts.
        format!("{v:.0}")
    } else if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn fmt_ratio(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{ratio:.2}")
    } else {
        "n/a".into()
    }
}

fn fmt_err(e: &str) -> String {
    let e: String = e.chars().take(60).collect();
    format!("failed: {e}")
}

fn render(kind: Kind, rows: &[Row], externals: &[external::External]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n### {}\n", kind.name());
    let names = [
        ("ds-tokio", "bare hyper"),
        ("ds-blocking", "bare ureq"),
        ("http1 pipelined", "bare hyper"),
    ];
    let used: Vec<bool> = (0..3)
        .map(|i| rows.iter().any(|r| r.cells[i].is_some()))
        .collect();
    let ext_used: Vec<bool> = (0..externals.len())
        .map(|i| {
            rows.iter()
                .any(|r| r.ext.get(i).is_some_and(Option::is_some))
        })
        .collect();
    let mut header = "| scenario | metric |".to_owned();
    let mut rule = "|---|---|".to_owned();
    for (i, (d, b)) in names.iter().enumerate() {
        if used[i] {
            let _ = write!(header, " {d} | {b} | ratio |");
            rule.push_str("---:|---:|---:|");
        }
    }
    for (e, _) in externals.iter().zip(&ext_used).filter(|(_, u)| **u) {
        let _ = write!(header, " {} |", e.name);
        rule.push_str("---:|");
        for (d, _) in names.iter().zip(&used).filter(|(_, u)| **u) {
            let _ = write!(header, " {} / {} |", d.0, e.name);
            rule.push_str("---:|");
        }
    }
    let _ = writeln!(s, "{header}");
    let _ = writeln!(s, "{rule}");
    for r in rows {
        let mut line = format!("| {} | {} |", r.scenario, r.metric);
        // The cells of the stacks that have a column.
        let cells = || {
            r.cells
                .iter()
                .zip(&used)
                .filter(|(_, u)| **u)
                .map(|(c, _)| c)
        };
        for c in cells() {
            match c {
                None => line.push_str(" | | |"),
                Some(Ok(p)) => {
                    let _ = write!(
                        line,
                        " {} | {} | {} |",
                        fmt_num(p.driver),
                        fmt_num(p.bare),
                        fmt_ratio(p.ratio()),
                    );
                }
                Some(Err(e)) => {
                    let _ = write!(line, " {} | | |", fmt_err(e));
                }
            }
        }
        for (i, _) in ext_used.iter().enumerate().filter(|(_, u)| **u) {
            let v = r.ext.get(i).cloned().flatten();
            match &v {
                None => line.push_str(" |"),
                Some(Ok(v)) => {
                    let _ = write!(line, " {} |", fmt_num(*v));
                }
                Some(Err(e)) => {
                    let _ = write!(line, " {} |", fmt_err(e));
                }
            }
            for c in cells() {
                match (c, &v) {
                    (Some(Ok(p)), Some(Ok(v))) => {
                        let _ = write!(line, " {} |", fmt_ratio(p.driver / v));
                    }
                    _ => line.push_str(" |"),
                }
            }
        }
        let _ = writeln!(s, "{line}");
    }
    s
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or("unknown".into(), |kb| format!("{:.1} GiB", kb / 1048576.0));
    format!("{cpus} CPUs ({model}), {mem} memory")
}

fn main() {
    let mut args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ds-bench: {e}");
            std::process::exit(2);
        }
    };
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime"),
    );
    let command: Vec<String> = std::env::args().skip(1).collect();
    let mut report = format!(
        "Machine: {}. Command: `cargo run --release -p ds-bench -- {}`\n",
        machine(),
        command.join(" ")
    );
    println!("{report}");
    if args.only.iter().any(|s| s == "paced") {
        // Issue 16's latency target: 4 in flight and a 20 ms round trip unless told.
        let rtt = if args.rtt_ms > 0 { args.rtt_ms } else { 20 };
        let in_flight = if !args.in_flight_given {
            vec![4]
        } else {
            args.in_flight.clone()
        };
        for &kind in &args.servers {
            match Server::start(kind) {
                Ok(server) => {
                    let table = paced::run(&rt, &server, kind, rtt, &in_flight);
                    println!("{table}");
                    report.push_str(&table);
                }
                Err(e) => eprintln!("ds-bench: cannot start {}: {e}", kind.name()),
            }
        }
    }
    if args.only.iter().any(|s| s == "subscriptions") {
        let table = subscriptions::run(&rt, &args.servers);
        println!("{table}");
        report.push_str(&table);
    }
    if !args.only.is_empty()
        && args
            .only
            .iter()
            .all(|s| s == "subscriptions" || s == "paced")
    {
        args.servers.clear();
    }
    let tokio_pair: StackPair = (
        Box::new(tokio_stacks::TokioDriver { rt: rt.clone() }),
        Box::new(tokio_stacks::Hyper { rt: rt.clone() }),
    );
    let blocking_pair: StackPair = (
        Box::new(blocking_stacks::BlockingDriver),
        Box::new(blocking_stacks::Ureq),
    );
    let mut pairs: Vec<(usize, &StackPair)> = Vec::new();
    if args.tokio {
        pairs.push((0, &tokio_pair));
    }
    if args.blocking {
        pairs.push((1, &blocking_pair));
    }
    let pipe_pair: StackPair = (
        Box::new(pipe_stack::PipeLoop {
            plan: args.pipe_plan,
        }),
        Box::new(tokio_stacks::Hyper { rt: rt.clone() }),
    );
    if args.pipe {
        pairs.push((2, &pipe_pair));
    }
    for &kind in &args.servers {
        let server = match Server::start(kind) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("ds-bench: cannot start {}: {e}", kind.name());
                std::process::exit(1);
            }
        };
        eprintln!("== {} at {}", kind.name(), server.url());
        let rows = run_server(&args, &server, &pairs);
        let table = render(kind, &rows, &args.externals);
        println!("{table}");
        report.push_str(&table);
    }
    if let Some(path) = &args.out {
        if let Err(e) = std::fs::write(path, &report) {
            eprintln!("ds-bench: cannot write {path}: {e}");
        }
    }
}

fn run_server(args: &Args, server: &Server, pairs: &[(usize, &StackPair)]) -> Vec<Row> {
    let base = server.url();
    let setup = util::setup_agent();
    let mut rows: Vec<Row> = Vec::new();
    let n_ext = args.externals.len();
    let row = |rows: &mut Vec<Row>, scenario: &str, metric: &'static str| -> usize {
        match rows
            .iter()
            .position(|r| r.scenario == scenario && r.metric == metric)
        {
            Some(i) => i,
            None => {
                rows.push(Row {
                    scenario: scenario.to_owned(),
                    metric,
                    cells: [None, None, None],
                    ext: vec![None; n_ext],
                });
                rows.len() - 1
            }
        }
    };
    let put = |rows: &mut Vec<Row>, scenario: &str, metric: &'static str, slot: usize, v| {
        let i = row(rows, scenario, metric);
        rows[i].cells[slot] = Some(v);
    };
    let put_ext = |rows: &mut Vec<Row>, scenario: &str, metric: &'static str, e: usize, v| {
        let i = row(rows, scenario, metric);
        rows[i].ext[e] = Some(v);
    };

    if args.runs("write") {
        let proxy = if args.rtt_ms > 0 {
            let addr = base
                .strip_prefix("http://")
                .and_then(|a| a.parse::<std::net::SocketAddr>().ok());
            match addr.map(|a| {
                let one_way = Duration::from_micros(args.rtt_ms * 500);
                delay::DelayProxy::start(a, one_way, args.trace_posts)
            }) {
                Some(Ok(p)) => Some(p),
                Some(Err(e)) => {
                    eprintln!("ds-bench: {e}");
                    std::process::exit(1);
                }
                None => {
                    eprintln!("ds-bench: cannot parse the server address {base}");
                    std::process::exit(1);
                }
            }
        } else {
            None
        };
        let write_base = proxy.as_ref().map_or(base.to_owned(), |p| p.url());
        let sizes = args.sizes.clone().unwrap_or_else(|| {
            if proxy.is_some() {
                vec![(200, 256 << 10), (200_000, 100)]
            } else {
                vec![(args.appends, 100), (50, 1 << 20)]
            }
        });
        let rtt = if args.rtt_ms > 0 {
            format!(", rtt {} ms", args.rtt_ms)
        } else {
            String::new()
        };
        for (count, len) in sizes {
            for &in_flight in &args.in_flight {
                let cfg = WriteCfg {
                    in_flight,
                    batch_items: args.batch_items,
                    batch_bytes: args.batch_bytes,
                    bare_bytes: args.batch_bytes.unwrap_or(BARE_BODY_BYTES),
                    linger: args.linger,
                    bare_prebuilt: args.bare_prebuilt,
                };
                let size = if len % (1 << 20) == 0 {
                    format!("{} MiB", len >> 20)
                } else if len % (1 << 10) == 0 {
                    format!("{} KiB", len >> 10)
                } else {
                    format!("{len} B")
                };
                let label = format!("write {count} x {size}, in-flight {in_flight}{rtt}");
                // One measured run of a stack on a fresh stream.
                let run = |s: &dyn Stack| -> Result<Tput, String> {
                    let path = ds_tests::refserver::unique_stream_path("write");
                    let url = format!("{base}{path}");
                    util::create_stream(&setup, &url, "application/octet-stream")?;
                    if let Some(p) = &proxy {
                        p.take_counts();
                    }
                    let mut t = s.write(
                        &format!("{write_base}{path}"),
                        util::payloads(count, len),
                        &cfg,
                    )?;
                    if let Some(p) = &proxy {
                        // Connections the stack keeps open are closed so that the next run
                        // starts afresh.
                        p.close_connections();
                        t.counts = Some(p.take_counts());
                    }
                    let stored = util::stream_len(&setup, &url)?;
                    if stored != (count * len) as u64 {
                        return Err(format!("stream holds {stored} bytes"));
                    }
                    eprintln!(
                        "      {}: {:.1} MB/s, {:.2} s{}",
                        s.name(),
                        t.mb_per_s(),
                        t.secs,
                        t.counts.map_or(String::new(), |c| format!(
                            ", {} POSTs, {} x 409, {} other errors, {} connections{}",
                            c.posts,
                            c.conflicts,
                            c.other_errors,
                            c.connections,
                            if c.lost > 0 {
                                " (counts lost on some)"
                            } else {
                                ""
                            }
                        ))
                    );
                    Ok(t)
                };
                // The POST and 409 counts only with the proxy (the last two).
                let metrics = &WRITE_METRICS[..if proxy.is_some() { 5 } else { 3 }];
                for (slot, (driver, bare)) in pairs {
                    eprintln!("   {label}: {} / {}", driver.name(), bare.name());
                    let result =
                        tput_pair(args.reps, driver.as_ref(), Some(bare.as_ref()), |s| run(s));
                    for &(metric, f) in metrics {
                        let v = result
                            .as_ref()
                            .map(|(d, b)| Pair {
                                driver: f(d),
                                bare: b.as_ref().map_or(f64::NAN, f),
                            })
                            .map_err(Clone::clone);
                        put(&mut rows, &label, metric, *slot, v);
                    }
                }
                for (i, ext) in args.externals.iter().enumerate() {
                    eprintln!("   {label}: {}", ext.name);
                    let result = tput_pair(args.reps, ext, None, |s| run(s));
                    for &(metric, f) in metrics {
                        let v = result.as_ref().map(|(t, _)| f(t)).map_err(Clone::clone);
                        put_ext(&mut rows, &label, metric, i, v);
                    }
                }
            }
        }
    }

    if args.runs("catch-up") {
        let label = format!("catch-up read {} MB", args.catch_up_mb);
        let url = util::stream_url(base, "catch-up");
        let chunk = Bytes::from(vec![b'x'; 1_000_000]);
        let bodies = vec![chunk; args.catch_up_mb];
        let expect = (args.catch_up_mb * 1_000_000) as u64;
        let ready = util::create_stream(&setup, &url, "application/octet-stream")
            .and_then(|()| util::populate(&setup, &url, "application/octet-stream", &bodies));
        for (slot, (driver, bare)) in pairs.iter().filter(|(slot, _)| *slot < 2) {
            eprintln!("   {label}: {} / {}", driver.name(), bare.name());
            let result = ready.clone().and_then(|()| {
                tput_pair(args.reps, driver.as_ref(), Some(bare.as_ref()), |s| {
                    s.catch_up(&url, expect)
                })
            });
            let v = result.map(|(d, b)| Pair {
                driver: d.mb_per_s(),
                bare: b.map_or(f64::NAN, |b| b.mb_per_s()),
            });
            put(&mut rows, &label, "MB/s", *slot, v);
        }
    }

    if args.runs("live") {
        for sse in [false, true] {
            let label = if sse {
                "live append-to-delivery, SSE"
            } else {
                "live append-to-delivery, long-poll"
            };
            for (slot, (driver, bare)) in pairs.iter().filter(|(slot, _)| *slot < 2) {
                eprintln!("   {label}: {} / {}", driver.name(), bare.name());
                let run = |s: &dyn Stack| {
                    let url = util::stream_url(base, "live");
                    util::create_stream(&setup, &url, "text/plain")?;
                    s.live(&url, sse, args.live_samples, LIVE_BUDGET)
                        .map_err(|e| format!("{}: {e}", s.name()))
                };
                let d = run(driver.as_ref());
                let b = run(bare.as_ref());
                let (p50, p99) = match (d, b) {
                    (Ok(d), Ok(b)) => (
                        Ok(Pair {
                            driver: d.p50(),
                            bare: b.p50(),
                        }),
                        Ok(Pair {
                            driver: d.p99(),
                            bare: b.p99(),
                        }),
                    ),
                    (Err(e), _) | (_, Err(e)) => (Err(e.clone()), Err(e)),
                };
                put(&mut rows, label, "p50 ms", *slot, p50);
                put(&mut rows, label, "p99 ms", *slot, p99);
            }
        }
    }

    if args.runs("ops") {
        for (slot, (driver, bare)) in pairs.iter().filter(|(slot, _)| *slot < 2) {
            eprintln!("   single operations: {} / {}", driver.name(), bare.name());
            let d = driver.ops(&util::stream_url(base, "ops"), args.op_samples);
            let b = bare.ops(&util::stream_url(base, "ops"), args.op_samples);
            for (i, op) in ["create", "append", "head", "read"].iter().enumerate() {
                let label = format!("single {op}");
                for (metric, q) in [("p50 ms", 0.5), ("p99 ms", 0.99)] {
                    let v = match (&d, &b) {
                        (Ok(d), Ok(b)) => Ok(Pair {
                            driver: d[i].quantile_ms(q),
                            bare: b[i].quantile_ms(q),
                        }),
                        (Err(e), _) => Err(format!("{}: {e}", driver.name())),
                        (_, Err(e)) => Err(format!("{}: {e}", bare.name())),
                    };
                    put(&mut rows, &label, metric, *slot, v);
                }
            }
        }
    }
    rows
}
