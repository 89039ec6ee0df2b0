//! The servers under test: the reference server (npm, through the ds-tests harness) and
//! `durable-streams-server` (crates.io `durable-streams` 0.1.5, installed on first use).

use ds_tests::{RefServer, RefServerOptions};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The long-poll timeout given to both servers.
pub const LONG_POLL_TIMEOUT_MS: u64 = 1000;

const RUST_VERSION: &str = "0.1.5";

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// npm `@durable-streams/server` (reference).
    Ref,
    /// crates.io `durable-streams` (`durable-streams-server`).
    Rust,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ref => "reference server (npm @durable-streams/server 0.3.7)",
            Kind::Rust => "durable-streams-server (crates.io durable-streams 0.1.5, memory)",
        }
    }
}

/// A running server; stopped on drop.
#[derive(Debug)]
pub enum Server {
    Ref(RefServer),
    Rust(RustServer),
}

impl Server {
    pub fn start(kind: Kind) -> Result<Server, String> {
        match kind {
            Kind::Ref => RefServer::try_start_with(RefServerOptions {
                long_poll_timeout_ms: LONG_POLL_TIMEOUT_MS,
                compression: Some(false),
                ..RefServerOptions::default()
            })
            .map(Server::Ref)
            .map_err(|e| format!("reference server: {e}")),
            Kind::Rust => RustServer::start().map(Server::Rust),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        match self {
            Server::Ref(s) => s.url(),
            Server::Rust(s) => &s.url,
        }
    }
}

/// `durable-streams-server` as a child process with a temporary data folder.
#[derive(Debug)]
pub struct RustServer {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl RustServer {
    fn start() -> Result<RustServer, String> {
        let bin = ensure_installed()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let dir = std::env::temp_dir().join(format!("ds-bench-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--durability", "memory"])
            .args(["--long-poll-timeout-ms", &LONG_POLL_TIMEOUT_MS.to_string()])
            .arg("--data-dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let server = RustServer {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("durable-streams-server did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(server)
    }
}

impl Drop for RustServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The workspace root (this crate's parent folder).
fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// The server binary, installed with `cargo install` into `<workspace>/.cache/ds-server` when
/// missing.
fn ensure_installed() -> Result<PathBuf, String> {
    let root = workspace_root().join(".cache").join("ds-server");
    let bin = root.join("bin").join("durable-streams-server");
    if bin.is_file() {
        return Ok(bin);
    }
    eprintln!(
        "installing durable-streams {RUST_VERSION} into {} (about a minute)...",
        root.display()
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "install",
            "durable-streams",
            "--version",
            RUST_VERSION,
            "--locked",
        ])
        .arg("--root")
        .arg(&root)
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}"))?;
    if !status.success() || !bin.is_file() {
        return Err(format!("cargo install durable-streams failed ({status})"));
    }
    Ok(bin)
}
