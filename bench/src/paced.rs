//! `--only paced` (never part of "all"): append-to-acknowledgement latency of a writer fed at
//! a steady pace, as issue 16 asks for: a 100-byte append every 2 ms, through the delay proxy
//! (`--rtt-ms`, 20 by default here), with the in-flight counts of `--in-flight` (4 when not
//! given), both drivers, default batch settings otherwise. Each append is tracked
//! (`append_tracked`); its latency runs from the call to its acknowledgement. The target is a
//! p50 of at most the round trip + `linger` (5 ms by default) + 2 ms.

use crate::delay::DelayProxy;
use crate::servers::{Kind, Server};
use crate::util::{self, Lat};
use bytes::Bytes;
use ds_proto::producer::ProducerConfig;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// Appends per run.
const APPENDS: usize = 500;
/// The pace.
const EVERY: Duration = Duration::from_millis(2);
/// The payload size.
const LEN: usize = 100;

/// Runs the scenario against `server` through a proxy of `rtt_ms` round trip; returns the
/// markdown table.
pub fn run(
    rt: &Arc<Runtime>,
    server: &Server,
    kind: Kind,
    rtt_ms: u64,
    in_flight: &[usize],
) -> String {
    let setup = util::setup_agent();
    let base = server.url();
    let addr = match base
        .strip_prefix("http://")
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
    {
        Some(a) => a,
        None => return format!("paced: cannot parse the server address {base}\n"),
    };
    let proxy = match DelayProxy::start(addr, Duration::from_micros(rtt_ms * 500), false) {
        Ok(p) => p,
        Err(e) => return format!("paced: {e}\n"),
    };
    let linger = ProducerConfig::new("http://x/s", "p").linger;
    let target = Duration::from_millis(rtt_ms) + linger + Duration::from_millis(2);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n#### {}: a {LEN}-byte append every {} ms, {APPENDS} appends, rtt {rtt_ms} ms (target p50 <= {:.0} ms)\n",
        kind.name(),
        EVERY.as_millis(),
        target.as_secs_f64() * 1e3
    );
    out.push_str("| in flight | driver | p50 ms | p90 ms | p99 ms | POSTs |\n|---:|---|---:|---:|---:|---:|\n");
    for &n in in_flight {
        for driver in ["ds-tokio", "ds-blocking"] {
            let path = ds_tests::refserver::unique_stream_path("paced");
            if let Err(e) =
                util::create_stream(&setup, &format!("{base}{path}"), "application/octet-stream")
            {
                let _ = writeln!(out, "| {n} | {driver} | {e} | | | |");
                continue;
            }
            let url = format!("{}{path}", proxy.url());
            proxy.take_counts();
            let result = if driver == "ds-tokio" {
                tokio_run(rt, &url, n)
            } else {
                blocking_run(&url, n)
            };
            proxy.close_connections();
            let posts = proxy.take_counts().posts;
            match result {
                Ok(lat) => {
                    eprintln!("   paced {driver}, {n} in flight: p50 {:.2} ms", lat.p50());
                    let _ = writeln!(
                        out,
                        "| {n} | {driver} | {:.2} | {:.2} | {:.2} | {posts} |",
                        lat.p50(),
                        lat.quantile_ms(0.9),
                        lat.quantile_ms(0.99)
                    );
                }
                Err(e) => {
                    let _ = writeln!(out, "| {n} | {driver} | {e} | | | |");
                }
            }
        }
    }
    out
}

fn config(url: &str, in_flight: usize) -> ProducerConfig {
    ProducerConfig {
        max_in_flight: in_flight,
        ..ProducerConfig::new(url, "paced-writer")
    }
}

fn tokio_run(rt: &Runtime, url: &str, in_flight: usize) -> Result<Lat, String> {
    rt.block_on(async {
        let client = ds_tokio::Client::builder()
            .build()
            .map_err(|e| e.to_string())?;
        let h = client.stream(url);
        h.set_content_type("application/octet-stream");
        let w = h
            .writer_with(config(url, in_flight))
            .map_err(|e| e.to_string())?;
        let mut waits = Vec::with_capacity(APPENDS);
        let mut next = tokio::time::Instant::now();
        for _ in 0..APPENDS {
            tokio::time::sleep_until(next).await;
            next += EVERY;
            let at = Instant::now();
            let handle = w
                .append_tracked(Bytes::from(vec![b'p'; LEN]))
                .await
                .map_err(|e| e.to_string())?;
            waits.push(tokio::spawn(async move {
                handle.outcome().await.map(|_| at.elapsed())
            }));
        }
        let mut lat = Vec::with_capacity(APPENDS);
        for w in waits {
            lat.push(
                w.await
                    .map_err(|e| e.to_string())?
                    .ok_or("the writer went away")?,
            );
        }
        w.close(false).await.map_err(|e| format!("{e:?}"))?;
        Ok(Lat(lat))
    })
}

fn blocking_run(url: &str, in_flight: usize) -> Result<Lat, String> {
    let client = ds_blocking::Client::builder()
        .build()
        .map_err(|e| e.to_string())?;
    let h = client.stream(url);
    h.set_content_type("application/octet-stream");
    let w = h
        .writer_with(config(url, in_flight))
        .map_err(|e| e.to_string())?;
    // Acknowledgements come in order: one thread waits for them one by one.
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, ds_blocking::AppendHandle)>();
    let waiter = std::thread::spawn(move || {
        let mut lat = Vec::with_capacity(APPENDS);
        for (at, handle) in rx {
            handle.outcome().ok_or("the writer went away")?;
            lat.push(at.elapsed());
        }
        Ok::<_, String>(lat)
    });
    let mut next = Instant::now();
    for _ in 0..APPENDS {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += EVERY;
        let at = Instant::now();
        let handle = w
            .append_tracked(Bytes::from(vec![b'p'; LEN]))
            .map_err(|e| e.to_string())?;
        let _ = tx.send((at, handle));
    }
    drop(tx);
    let lat = waiter.join().map_err(|_| "the waiter panicked")??;
    w.close(false).map_err(|e| format!("{e:?}"))?;
    Ok(Lat(lat))
}
