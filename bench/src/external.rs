//! External writers (`--external NAME=PATH`): programs that are not part of this repository
//! (for instance a writer built by you on the official Rust client), run once per write run.
//!
//! The protocol, for a stream that ds-bench has created (`application/octet-stream`, empty):
//!
//! ```text
//! PATH --url URL --count N --len L --in-flight K [--batch-bytes B] [--linger-ms MS]
//! ```
//!
//! The program appends N payloads of L bytes each, in order, exactly once, with at most K
//! requests in flight (its own knob for that) and batches of at most B bytes where it has such
//! a knob (`--linger-ms` only when ds-bench was given it), waits until the server has
//! acknowledged all of them, and prints one line on stdout, `ok SECONDS [CPU_SECONDS]`: the
//! wall-clock time from its first append until everything was acknowledged (the span timed
//! for the built-in writers: setup before and closing after are not counted) and, optionally,
//! its own CPU time over the same span. On failure it prints `error MESSAGE` (or nothing) and
//! exits with a non-zero status. ds-bench then checks the stream's length, as for every writer.
//!
//! The CPU row is the program's own figure; the built-in stacks' is ds-bench's whole process,
//! which with `--rtt-ms` includes the in-process delay proxy's work (so it is not comparable
//! there).

use crate::util::Tput;
use crate::{Lat, Stack, WriteCfg};
use bytes::Bytes;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a single run of an external writer may take before it is killed.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// An external writer program.
#[derive(Debug, Clone)]
pub struct External {
    pub name: String,
    pub path: String,
}

/// Parses `NAME=PATH`.
pub fn parse(v: &str) -> Result<External, String> {
    match v.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => Ok(External {
            name: name.to_owned(),
            path: path.to_owned(),
        }),
        _ => Err(format!("--external: {v:?} is not NAME=PATH")),
    }
}

/// Reads the program's answer line: `(seconds, cpu seconds or NaN)`.
fn parse_answer(out: &str) -> Result<(f64, f64), String> {
    let line = out.lines().last().unwrap_or_default().trim();
    let mut words = line.split_whitespace();
    match words.next() {
        Some("ok") => {
            let secs: f64 = words
                .next()
                .and_then(|w| w.parse().ok())
                .filter(|s: &f64| s.is_finite() && *s > 0.0)
                .ok_or(format!("bad answer {line:?}"))?;
            let cpu = words
                .next()
                .and_then(|w| w.parse().ok())
                .unwrap_or(f64::NAN);
            Ok((secs, cpu))
        }
        _ => Err(format!("answered {line:?}")),
    }
}

impl Stack for External {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&self, url: &str, payloads: Vec<Bytes>, cfg: &WriteCfg) -> Result<Tput, String> {
        let count = payloads.len();
        let len = payloads.first().map_or(0, Bytes::len);
        if payloads.iter().any(|p| p.len() != len) {
            return Err("external writers take payloads of one length".into());
        }
        let mut cmd = Command::new(&self.path);
        cmd.args(["--url", url])
            .args(["--count", &count.to_string()])
            .args(["--len", &len.to_string()])
            .args(["--in-flight", &cfg.in_flight.to_string()]);
        if let Some(b) = cfg.batch_bytes {
            cmd.args(["--batch-bytes", &b.to_string()]);
        }
        if let Some(l) = cfg.linger {
            cmd.args(["--linger-ms", &l.as_millis().to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.path))?;
        let mut stdout = child.stdout.take().ok_or("no stdout")?;
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            stdout.read_to_string(&mut s).map(|_| s)
        });
        let deadline = Instant::now() + RUN_LIMIT;
        let status = loop {
            match child.try_wait().map_err(|e| e.to_string())? {
                Some(status) => break status,
                None if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("killed after {} s", RUN_LIMIT.as_secs()));
                }
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        };
        let out = reader
            .join()
            .map_err(|_| "stdout reader panicked")?
            .map_err(|e| format!("stdout: {e}"))?;
        let answer = parse_answer(&out);
        if !status.success() {
            let why = answer.err().unwrap_or_default();
            return Err(format!("exited with {status}: {why}"));
        }
        let (secs, cpu) = answer?;
        Ok(Tput {
            secs,
            msgs: count as u64,
            bytes: (count * len) as u64,
            cpu,
            counts: None,
        })
    }

    fn catch_up(&self, _: &str, _: u64) -> Result<Tput, String> {
        Err("external programs only write".into())
    }

    fn live(&self, _: &str, _: bool, _: usize, _: Duration) -> Result<Lat, String> {
        Err("external programs only write".into())
    }

    fn ops(&self, _: &str, _: usize) -> Result<[Lat; 4], String> {
        Err("external programs only write".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert_eq!(parse_answer("ok 1.5 0.25\n"), Ok((1.5, 0.25)));
        assert!(parse_answer("ok 2").is_ok_and(|(s, c)| s == 2.0 && c.is_nan()));
        assert!(parse_answer("error boom").is_err());
        assert!(parse_answer("ok -1").is_err());
        assert!(parse_answer("").is_err());
    }

    #[test]
    fn names() {
        let e = parse("official=/x/y=z").unwrap();
        assert_eq!((e.name.as_str(), e.path.as_str()), ("official", "/x/y=z"));
        assert!(parse("official").is_err());
        assert!(parse("=/x").is_err());
    }
}
