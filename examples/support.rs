//! Shared support of the examples: where the server is.
//!
//! Every example runs against `DS_URL` when it is set (a real Durable Streams server, e.g. the
//! reference server or `durable-streams-server`), and otherwise starts the embedded server
//! (`ds-tokio`'s `server` feature) on an ephemeral port.
#![forbid(unsafe_code)]

use ds_tokio::server::{BackgroundServer, ServerConfig};

/// The server an example talks to: `DS_URL`, or an embedded one that lives as long as this.
#[derive(Debug)]
pub struct ExampleServer {
    url: String,
    _embedded: Option<BackgroundServer>,
}

impl ExampleServer {
    /// `DS_URL` when set, else a fresh embedded server.
    pub fn from_env() -> std::io::Result<ExampleServer> {
        if let Ok(url) = std::env::var("DS_URL") {
            if !url.is_empty() {
                return Ok(ExampleServer {
                    url: url.trim_end_matches('/').to_owned(),
                    _embedded: None,
                });
            }
        }
        let embedded = BackgroundServer::start(ServerConfig::default())?;
        eprintln!(
            "(no DS_URL: using the embedded server at {})",
            embedded.url()
        );
        Ok(ExampleServer {
            url: embedded.url().to_owned(),
            _embedded: Some(embedded),
        })
    }

    /// Whether this is the embedded server (no `DS_URL`).
    pub fn is_embedded(&self) -> bool {
        self._embedded.is_some()
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A stream path unique to this run (`/v1/stream/<name>-<pid>-<millis>`).
    pub fn unique_path(&self, name: &str) -> String {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        format!("/v1/stream/{name}-{}-{millis}", std::process::id())
    }
}
