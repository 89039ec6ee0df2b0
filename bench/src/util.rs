//! Measurement helpers: client CPU time, latency percentiles, payloads, stream setup.

use bytes::Bytes;
use std::io::Read;
use std::time::{Duration, Instant};

/// This process's CPU time (user + system, every thread, including exited ones), in seconds,
/// from `/proc/self/stat` (clock ticks of 1/100 s, Linux's fixed `USER_HZ`).
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which may hold spaces) start at field 3 (`state`).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (tick(11), tick(12)) {
        (Some(u), Some(s)) => (u + s) as f64 / 100.0,
        _ => f64::NAN,
    }
}

/// A throughput measurement.
#[derive(Debug, Clone, Copy)]
pub struct Tput {
    /// Wall-clock seconds.
    pub secs: f64,
    /// Messages (appends) moved.
    pub msgs: u64,
    /// Payload bytes moved.
    pub bytes: u64,
    /// Client CPU seconds spent.
    pub cpu: f64,
    /// What the delay proxy counted during the run (with `--rtt-ms`).
    pub counts: Option<crate::delay::Counts>,
}

impl Tput {
    /// Starts a measurement.
    pub fn start() -> (Instant, f64) {
        (Instant::now(), cpu_seconds())
    }

    /// Ends a measurement started with [`Tput::start`].
    pub fn finish(start: (Instant, f64), msgs: u64, bytes: u64) -> Tput {
        Tput {
            secs: start.0.elapsed().as_secs_f64(),
            msgs,
            bytes,
            cpu: cpu_seconds() - start.1,
            counts: None,
        }
    }

    pub fn msgs_per_s(&self) -> f64 {
        self.msgs as f64 / self.secs
    }

    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs
    }

    pub fn cpu_per_million(&self) -> f64 {
        self.cpu / self.msgs as f64 * 1e6
    }

    /// POST requests the delay proxy saw (NaN without it).
    pub fn posts(&self) -> f64 {
        self.counts.map_or(f64::NAN, |c| c.posts as f64)
    }

    /// 409 answers the delay proxy saw (NaN without it).
    pub fn conflicts(&self) -> f64 {
        self.counts.map_or(f64::NAN, |c| c.conflicts as f64)
    }
}

/// Latency samples.
#[derive(Debug, Clone, Default)]
pub struct Lat(pub Vec<Duration>);

impl Lat {
    /// The `q` quantile (0..=1) in milliseconds (nearest rank).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let mut v = self.0.clone();
        v.sort();
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1].as_secs_f64() * 1e3
    }

    pub fn p50(&self) -> f64 {
        self.quantile_ms(0.5)
    }

    pub fn p99(&self) -> f64 {
        self.quantile_ms(0.99)
    }
}

/// `count` payloads of `len` bytes, as slices of one buffer (what an application holding its
/// messages in `Bytes` hands over).
pub fn payloads(count: usize, len: usize) -> Vec<Bytes> {
    let mut all = Vec::with_capacity(count * len);
    for i in 0..count {
        let start = all.len();
        all.extend_from_slice(format!("{i:010}:").as_bytes());
        while all.len() - start < len {
            all.push(b'a' + ((all.len() - start) % 26) as u8);
        }
        all.truncate(start + len);
    }
    let all = Bytes::from(all);
    (0..count)
        .map(|i| all.slice(i * len..(i + 1) * len))
        .collect()
}

/// Request bodies of at most `max` bytes each, concatenating `payloads` in order (what a
/// producer with `max_batch_bytes = max` sends, minus the protocol logic).
pub fn batch_bodies(payloads: &[Bytes], max: usize) -> Vec<Bytes> {
    // Payloads grouped into batches of at most `max` bytes; a batch of one payload is that
    // payload itself (no copy), others are concatenated.
    let mut out = Vec::new();
    let mut group: Vec<&Bytes> = Vec::new();
    let mut len = 0;
    let flush = |group: &mut Vec<&Bytes>, len: usize, out: &mut Vec<Bytes>| match group.as_slice() {
        [] => {}
        [one] => out.push((*one).clone()),
        many => {
            let mut body = Vec::with_capacity(len);
            for p in many {
                body.extend_from_slice(p);
            }
            out.push(Bytes::from(body));
        }
    };
    for p in payloads {
        if !group.is_empty() && len + p.len() > max {
            flush(&mut group, len, &mut out);
            group.clear();
            len = 0;
        }
        group.push(p);
        len += p.len();
    }
    flush(&mut group, len, &mut out);
    out
}

/// The marker of live message `i`, padded to 100 bytes.
pub fn live_payload(i: usize) -> Bytes {
    let mut s = format!("<<{i:08}>>");
    while s.len() < 100 {
        s.push('.');
    }
    Bytes::from(s)
}

/// The live message numbers found in `data`.
pub fn markers(data: &[u8]) -> Vec<usize> {
    memchr::memmem::find_iter(data, b"<<")
        .filter_map(|at| {
            let digits = data.get(at + 2..at + 10)?;
            if data.get(at + 10..at + 12)? != b">>" {
                return None;
            }
            std::str::from_utf8(digits).ok()?.parse().ok()
        })
        .collect()
}

/// A blocking agent for setup and checks (outside every measurement).
pub fn setup_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Creates a stream (PUT) with `content_type`.
pub fn create_stream(agent: &ureq::Agent, url: &str, content_type: &str) -> Result<(), String> {
    let resp = agent
        .put(url)
        .header("content-type", content_type)
        .send_empty()
        .map_err(|e| format!("PUT {url}: {e}"))?;
    match resp.status().as_u16() {
        200 | 201 => Ok(()),
        s => Err(format!("PUT {url}: status {s}")),
    }
}

/// Appends `bodies` (plain POSTs).
pub fn populate(
    agent: &ureq::Agent,
    url: &str,
    content_type: &str,
    bodies: &[Bytes],
) -> Result<(), String> {
    for b in bodies {
        let resp = agent
            .post(url)
            .header("content-type", content_type)
            .send(&b[..])
            .map_err(|e| format!("POST {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("POST {url}: status {}", resp.status()));
        }
    }
    Ok(())
}

/// The number of bytes in the stream (catch-up reads until up to date).
pub fn stream_len(agent: &ureq::Agent, url: &str) -> Result<u64, String> {
    let mut offset = "-1".to_owned();
    let mut total = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    for _ in 0..10_000 {
        let mut resp = agent
            .get(&format!("{url}?offset={offset}"))
            .call()
            .map_err(|e| format!("GET {url}: {e}"))?;
        if resp.status().as_u16() != 200 {
            return Err(format!("GET {url}: status {}", resp.status()));
        }
        let h = resp.headers();
        let next = h
            .get("stream-next-offset")
            .and_then(|v| v.to_str().ok())
            .ok_or("no stream-next-offset")?
            .to_owned();
        let done = h
            .get("stream-up-to-date")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        let mut body = resp.body_mut().with_config().limit(u64::MAX).reader();
        loop {
            match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(e) => return Err(format!("GET {url}: {e}")),
            }
        }
        if done {
            return Ok(total);
        }
        offset = next;
    }
    Err("too many catch-up reads".into())
}

/// A stream URL unique to this run.
pub fn stream_url(base: &str, name: &str) -> String {
    format!("{base}{}", ds_tests::refserver::unique_stream_path(name))
}
