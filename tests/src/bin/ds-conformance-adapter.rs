//! The client-conformance adapter: speaks the official suite's JSON-lines protocol on stdin and
//! stdout (one command per line in, exactly one reply per line out) and performs each command
//! with our client, through the driver named by `DS_DRIVER` (`tokio`, the default, or
//! `blocking`). Diagnostics go to stderr; after replying to `shutdown` it exits.
//!
//! ```text
//! DS_DRIVER=blocking ds-conformance-adapter
//! {"type":"init","serverUrl":"http://127.0.0.1:4437"}
//! ```
//!
//! With the official runner (from a checkout of `packages/client-conformance-tests`):
//! `cargo build --release --bins -p ds-tests`, then
//! `npx tsx src/cli.ts --run <workspace>/target/release/ds-conformance-adapter` (a two-line
//! wrapper script sets `DS_DRIVER=blocking`); `--bench` runs the benchmark operations.

#![forbid(unsafe_code)]

use ds_tests::conformance::Adapter;
use ds_tests::drivers::DriverKind;
use std::io::{self, BufRead, Write};

fn main() {
    let driver = match std::env::var("DS_DRIVER").as_deref() {
        Ok("tokio") | Err(_) => DriverKind::Tokio,
        Ok("blocking") => DriverKind::Blocking,
        Ok(other) => {
            eprintln!(
                "ds-conformance-adapter: DS_DRIVER must be `tokio` or `blocking`, not {other:?}"
            );
            std::process::exit(2);
        }
    };
    let mut adapter = Adapter::new(driver);
    let stdin = io::stdin();
    let mut stdout = io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ds-conformance-adapter: cannot read stdin: {e}");
                break;
            }
        };
        let Some(reply) = adapter.handle_line(&line) else {
            continue;
        };
        if writeln!(stdout, "{reply}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // The runner went away.
            break;
        }
        if adapter.is_shut_down() {
            break;
        }
    }
}
