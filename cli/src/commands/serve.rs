//! `ds serve`: the embedded server (ds-tokio feature `server`, the in-memory sim model).

use crate::args::ServeArgs;
use crate::exit::Failure;
use ds_tokio::server::ServerConfig;
use std::io::Write;
use std::time::Duration;

/// Serves on 127.0.0.1 until killed, or for `--for`; prints the URL on stdout first.
pub async fn run(args: &ServeArgs) -> Result<(), Failure> {
    let mut config = ServerConfig {
        port: args.port,
        ..ServerConfig::default()
    };
    if let Some(ms) = args.long_poll_ms {
        config.model.long_poll_timeout = Duration::from_millis(ms);
    }
    let server = ds_tokio::server::spawn(config)
        .await
        .map_err(|e| Failure::Other(format!("cannot listen: {e}")))?;
    println!("{}", server.url());
    std::io::stdout().flush()?;
    eprintln!(
        "serving Durable Streams at {} (in memory; stop with Ctrl-C)\n\
         try: ds --url {} create demo && ds --url {} tail demo",
        server.url(),
        server.url(),
        server.url()
    );
    match args.for_ {
        Some(limit) => tokio::time::sleep(limit).await,
        None => std::future::pending::<()>().await,
    }
    server.shutdown().await;
    Ok(())
}
