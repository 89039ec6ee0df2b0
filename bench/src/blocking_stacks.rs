//! ds-blocking, and bare ureq doing the same HTTP exchanges without protocol logic.

use crate::util::{batch_bodies, live_payload, markers, Lat, Tput};
use crate::{Stack, WriteCfg, LIVE_GAP, LIVE_WAIT};
use bytes::Bytes;
use ds_proto::ops::{CreateOptions, ReadOptions};
use ds_proto::producer::ProducerConfig;
use ds_proto::reader::{ReadMode, ReaderConfig};
use ds_proto::Offset;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The ds-blocking driver.
#[derive(Debug)]
pub struct BlockingDriver;

/// Bare ureq (an agent configured as ds-blocking configures its own).
#[derive(Debug)]
pub struct Ureq;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn client() -> Result<ds_blocking::Client, String> {
    ds_blocking::Client::builder().build().map_err(err)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_idle_connections_per_host(64)
        .build()
        .into()
}

/// Reads a body to its end through a reused buffer; returns its length.
fn drain(body: &mut ureq::Body, buf: &mut [u8]) -> Result<u64, String> {
    let mut r = body.with_config().limit(u64::MAX).reader();
    let mut n = 0u64;
    loop {
        match r.read(buf) {
            Ok(0) => return Ok(n),
            Ok(k) => n += k as u64,
            Err(e) => return Err(err(e)),
        }
    }
}

impl Stack for BlockingDriver {
    fn name(&self) -> &'static str {
        "ds-blocking"
    }

    fn write(&self, url: &str, payloads: Vec<Bytes>, cfg: &WriteCfg) -> Result<Tput, String> {
        let h = client()?.stream(url);
        h.set_content_type("application/octet-stream");
        let mut config = ProducerConfig::new(url, "bench-writer");
        cfg.apply(&mut config);
        let w = h.writer_with(config).map_err(err)?;
        let msgs = payloads.len() as u64;
        let bytes = payloads.iter().map(|p| p.len() as u64).sum();
        let start = Tput::start();
        for p in payloads {
            w.append(p).map_err(err)?;
        }
        w.flush().map_err(err)?;
        let t = Tput::finish(start, msgs, bytes);
        w.close(false).map_err(err)?;
        Ok(t)
    }

    fn catch_up(&self, url: &str, expect: u64) -> Result<Tput, String> {
        let h = client()?.stream(url);
        let mut config = ReaderConfig::new(url);
        config.mode = ReadMode::CatchUp;
        config.max_body_bytes = config.max_body_bytes.max(crate::CATCH_UP_LIMIT);
        let start = Tput::start();
        let mut r = h.reader_with(config).map_err(err)?;
        let mut n = 0u64;
        while let Some(c) = r.next_chunk() {
            n += c.map_err(err)?.data.len() as u64;
        }
        let t = Tput::finish(start, 1, n);
        if n != expect {
            return Err(format!("read {n} bytes, expected {expect}"));
        }
        Ok(t)
    }

    fn live(&self, url: &str, sse: bool, n: usize, budget: Duration) -> Result<Lat, String> {
        let h = client()?.stream(url);
        h.set_content_type("text/plain");
        let mode = if sse {
            ReadMode::Sse
        } else {
            ReadMode::LongPoll
        };
        // No `ReaderStopper`: the reader makes its long-polls on its own thread (a stopper
        // would move them to exchange threads so that it can interrupt them); closing the
        // stream ends it instead.
        let mut reader = h.reader(Offset::now(), mode).map_err(err)?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            while let Some(Ok(c)) = reader.next_chunk() {
                let at = Instant::now();
                for m in markers(&c.data) {
                    let _ = tx.send((m, at));
                }
            }
        });
        let lat = live_loop(n, budget, &rx, |i| {
            h.append(live_payload(i)).map(|_| ()).map_err(err)
        });
        h.close().map_err(err)?;
        let _ = thread.join();
        lat
    }

    fn ops(&self, url: &str, n: usize) -> Result<[Lat; 4], String> {
        let c = client()?;
        let mut out: [Lat; 4] = Default::default();
        let data = c.stream(&format!("{url}-data"));
        data.create(CreateOptions::with_content_type("text/plain"))
            .map_err(err)?;
        for i in 0..10 {
            data.append(live_payload(i)).map_err(err)?;
        }
        let target = c.stream(&format!("{url}-append"));
        target
            .create(CreateOptions::with_content_type("text/plain"))
            .map_err(err)?;
        let body = live_payload(0);
        for i in 0..n + crate::WARMUP {
            let keep = i >= crate::WARMUP;
            let t = Instant::now();
            c.stream(&format!("{url}-c{i}"))
                .create(CreateOptions::with_content_type("text/plain"))
                .map_err(err)?;
            let t1 = Instant::now();
            target.append(body.clone()).map_err(err)?;
            let t2 = Instant::now();
            data.head().map_err(err)?;
            let t3 = Instant::now();
            let r = data
                .read(ReadOptions::from(Offset::beginning()))
                .map_err(err)?;
            let t4 = Instant::now();
            if r.data.len() != 1000 {
                return Err(format!("read {} bytes", r.data.len()));
            }
            if keep {
                out[0].0.push(t1 - t);
                out[1].0.push(t2 - t1);
                out[2].0.push(t3 - t2);
                out[3].0.push(t4 - t3);
            }
        }
        Ok(out)
    }
}

/// Appends message `i` and waits for the reader to see it, `n` times (bounded by `budget`).
fn live_loop(
    n: usize,
    budget: Duration,
    rx: &mpsc::Receiver<(usize, Instant)>,
    append: impl Fn(usize) -> Result<(), String>,
) -> Result<Lat, String> {
    let deadline = Instant::now() + budget;
    std::thread::sleep(Duration::from_millis(200));
    let mut lat = Lat::default();
    for i in 0..n {
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(LIVE_GAP);
        let t0 = Instant::now();
        append(i)?;
        loop {
            match rx.recv_timeout(LIVE_WAIT) {
                Ok((m, at)) if m == i => {
                    lat.0.push(at.saturating_duration_since(t0));
                    break;
                }
                Ok(_) => continue,
                Err(e) => return Err(format!("message {i} not delivered: {e}")),
            }
        }
    }
    Ok(lat)
}

impl Stack for Ureq {
    fn name(&self) -> &'static str {
        "ureq"
    }

    fn write(&self, url: &str, payloads: Vec<Bytes>, cfg: &WriteCfg) -> Result<Tput, String> {
        let msgs = payloads.len() as u64;
        let bytes = payloads.iter().map(|p| p.len() as u64).sum();
        let prebuilt = cfg
            .bare_prebuilt
            .then(|| batch_bodies(&payloads, cfg.bare_bytes));
        let a = agent();
        let mut buf = vec![0u8; 64 * 1024];
        let start = Tput::start();
        // Building the bodies from the payloads is part of the work (a copy, as a client's
        // batching does), so it is inside the measurement unless `--bare-prebuilt`.
        let bodies = prebuilt.unwrap_or_else(|| batch_bodies(&payloads, cfg.bare_bytes));
        drop(payloads);
        if cfg.in_flight > 1 {
            // Plain appends, `in_flight` at a time on as many connections: order not kept.
            let queue = std::sync::Mutex::new(bodies.into_iter());
            return std::thread::scope(|scope| {
                let workers: Vec<_> = (0..cfg.in_flight)
                    .map(|_| {
                        scope.spawn(|| -> Result<(), String> {
                            let mut buf = vec![0u8; 64 * 1024];
                            loop {
                                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                                let Some(body) = next else { return Ok(()) };
                                let mut resp = a
                                    .post(url)
                                    .header("content-type", "application/octet-stream")
                                    .send(&body[..])
                                    .map_err(err)?;
                                drain(resp.body_mut(), &mut buf)?;
                                if !resp.status().is_success() {
                                    return Err(format!("POST answered {}", resp.status()));
                                }
                            }
                        })
                    })
                    .collect();
                for w in workers {
                    w.join().map_err(|_| "a bare writer thread panicked")??;
                }
                Ok(Tput::finish(start, msgs, bytes))
            });
        }
        for (seq, body) in bodies.iter().enumerate() {
            let mut resp = a
                .post(url)
                .header("content-type", "application/octet-stream")
                .header("producer-id", "bench-bare")
                .header("producer-epoch", "0")
                .header("producer-seq", &seq.to_string())
                .send(&body[..])
                .map_err(err)?;
            drain(resp.body_mut(), &mut buf)?;
            if resp.status().as_u16() != 200 {
                return Err(format!("POST answered {}", resp.status()));
            }
        }
        Ok(Tput::finish(start, msgs, bytes))
    }

    fn catch_up(&self, url: &str, expect: u64) -> Result<Tput, String> {
        let a = agent();
        let mut buf = vec![0u8; 64 * 1024];
        let start = Tput::start();
        let mut resp = a.get(&format!("{url}?offset=-1")).call().map_err(err)?;
        let n = drain(resp.body_mut(), &mut buf)?;
        let t = Tput::finish(start, 1, n);
        if resp.status().as_u16() != 200 || n != expect {
            return Err(format!("status {}, {n} bytes of {expect}", resp.status()));
        }
        Ok(t)
    }

    fn live(&self, url: &str, sse: bool, n: usize, budget: Duration) -> Result<Lat, String> {
        let a = agent();
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (ra, ru, rs) = (a.clone(), url.to_owned(), stop.clone());
        // Not joined: a read blocked on a quiet connection ends when the server closes it.
        std::thread::spawn(move || {
            let _ = if sse {
                ureq_sse(&ra, &ru, &tx, &rs)
            } else {
                ureq_long_poll(&ra, &ru, &tx, &rs)
            };
        });
        let lat = live_loop(n, budget, &rx, |i| {
            let resp = a
                .post(url)
                .header("content-type", "text/plain")
                .send(&live_payload(i)[..])
                .map_err(err)?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(format!("POST answered {}", resp.status()))
            }
        });
        stop.store(true, Ordering::Relaxed);
        lat
    }

    fn ops(&self, url: &str, n: usize) -> Result<[Lat; 4], String> {
        let a = agent();
        let mut buf = vec![0u8; 64 * 1024];
        let mut out: [Lat; 4] = Default::default();
        let put = |u: &str| {
            a.put(u)
                .header("content-type", "text/plain")
                .send_empty()
                .map_err(err)
        };
        let post = |u: &str, b: &[u8]| {
            a.post(u)
                .header("content-type", "text/plain")
                .send(b)
                .map_err(err)
        };
        let data = format!("{url}-data");
        put(&data)?;
        for i in 0..10 {
            post(&data, &live_payload(i))?;
        }
        let target = format!("{url}-append");
        put(&target)?;
        let body = live_payload(0);
        let read_url = format!("{data}?offset=-1");
        for i in 0..n + crate::WARMUP {
            let keep = i >= crate::WARMUP;
            let t = Instant::now();
            let mut p = put(&format!("{url}-c{i}"))?;
            drain(p.body_mut(), &mut buf)?;
            let t1 = Instant::now();
            let mut p1 = post(&target, &body)?;
            drain(p1.body_mut(), &mut buf)?;
            let t2 = Instant::now();
            let p2 = a.head(&data).call().map_err(err)?;
            let t3 = Instant::now();
            let mut p3 = a.get(&read_url).call().map_err(err)?;
            let len = drain(p3.body_mut(), &mut buf)?;
            let t4 = Instant::now();
            if p.status().as_u16() != 201
                || !p1.status().is_success()
                || p2.status().as_u16() != 200
                || p3.status().as_u16() != 200
                || len != 1000
            {
                return Err("unexpected answer".into());
            }
            if keep {
                out[0].0.push(t1 - t);
                out[1].0.push(t2 - t1);
                out[2].0.push(t3 - t2);
                out[3].0.push(t4 - t3);
            }
        }
        Ok(out)
    }
}

fn ureq_long_poll(
    a: &ureq::Agent,
    url: &str,
    tx: &mpsc::Sender<(usize, Instant)>,
    stop: &AtomicBool,
) -> Result<(), String> {
    let mut offset = "now".to_owned();
    let mut cursor: Option<String> = None;
    let mut buf = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut u = format!("{url}?offset={offset}&live=long-poll");
        if let Some(c) = &cursor {
            u.push_str("&cursor=");
            u.push_str(c);
        }
        let mut resp = a.get(&u).call().map_err(err)?;
        buf.clear();
        resp.body_mut()
            .with_config()
            .limit(u64::MAX)
            .reader()
            .read_to_end(&mut buf)
            .map_err(err)?;
        let at = Instant::now();
        for m in markers(&buf) {
            let _ = tx.send((m, at));
        }
        let h = resp.headers();
        offset = h
            .get("stream-next-offset")
            .and_then(|v| v.to_str().ok())
            .ok_or("no stream-next-offset")?
            .to_owned();
        cursor = h
            .get("stream-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
    }
    Ok(())
}

fn ureq_sse(
    a: &ureq::Agent,
    url: &str,
    tx: &mpsc::Sender<(usize, Instant)>,
    stop: &AtomicBool,
) -> Result<(), String> {
    let mut offset = "now".to_owned();
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let mut resp = a
            .get(&format!("{url}?offset={offset}&live=sse"))
            .call()
            .map_err(err)?;
        let mut r = resp.body_mut().with_config().limit(u64::MAX).reader();
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let k = r.read(&mut buf).map_err(err)?;
            if k == 0 || stop.load(Ordering::Relaxed) {
                break;
            }
            let at = Instant::now();
            tail.extend_from_slice(&buf[..k]);
            for m in markers(&tail) {
                let _ = tx.send((m, at));
            }
            if let Some(o) = crate::last_control_offset(&tail) {
                offset = o;
            }
            let keep = tail.len().min(256);
            tail.drain(..tail.len() - keep);
        }
    }
    Ok(())
}
