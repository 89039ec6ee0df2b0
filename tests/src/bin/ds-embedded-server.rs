//! Runs the embedded Durable Streams server (ds-tokio's `server` feature) on 127.0.0.1 until its
//! standard input closes or it is killed, and prints its base URL on one line of standard
//! output. Used by `tests/server-conformance/run.sh` to run the official conformance suite.
//!
//! ```text
//! ds-embedded-server [--port N] [--long-poll-timeout-ms N]
//! ```
//!
//! `--port`: the port on 127.0.0.1 (default 0, an ephemeral port). `--long-poll-timeout-ms`:
//! how long a long-poll at the tail waits before answering 204 (default: the server's).

use ds_tokio::server::{BackgroundServer, ServerConfig};
use std::io::{Read, Write};
use std::time::Duration;

const USAGE: &str = "usage: ds-embedded-server [--port N] [--long-poll-timeout-ms N]";

fn parse_args() -> Result<ServerConfig, String> {
    let mut config = ServerConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--port" => {
                let v = value("--port")?;
                config.port = v.parse().map_err(|_| format!("bad --port: {v}"))?;
            }
            "--long-poll-timeout-ms" => {
                let v = value("--long-poll-timeout-ms")?;
                let ms: u64 = v
                    .parse()
                    .map_err(|_| format!("bad --long-poll-timeout-ms: {v}"))?;
                config.model.long_poll_timeout = Duration::from_millis(ms);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(config)
}

fn main() {
    let config = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ds-embedded-server: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let server = match BackgroundServer::start(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ds-embedded-server: cannot start: {e}");
            std::process::exit(1);
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", server.url());
    let _ = stdout.flush();
    drop(stdout);
    // Serve until standard input ends (our parent closed it, or died).
    let mut sink = [0u8; 4096];
    let mut stdin = std::io::stdin().lock();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    drop(server);
}
