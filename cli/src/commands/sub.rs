//! `ds sub create|get|delete|add|remove`: subscriptions (PROTOCOL.md 6). Paths are relative to
//! the stream root.

use crate::args::{SubCommand, SubCreateArgs};
use crate::exit::Failure;
use ds_proto::subscription::{SubscriptionConfig, SubscriptionConfig as Config};
use ds_tokio::Client;

/// The configuration `ds sub create` asks for.
pub fn config(args: &SubCreateArgs) -> SubscriptionConfig {
    let mut c = match (&args.pull_wake, &args.webhook) {
        (Some(wake), _) => Config::pull_wake(wake),
        (None, Some(url)) => Config::webhook(url),
        // clap requires one of the two.
        (None, None) => Config::pull_wake(""),
    };
    if let Some(p) = &args.pattern {
        c = c.pattern(p);
    }
    for s in &args.streams {
        c = c.stream(s);
    }
    if let Some(ms) = args.lease_ttl_ms {
        c = c.lease_ttl_ms(ms);
    }
    if let Some(d) = &args.description {
        c = c.description(d);
    }
    c
}

/// Runs one `ds sub` command.
pub async fn run(sub: &SubCommand, client: &Client) -> Result<(), Failure> {
    match sub {
        SubCommand::Create(args) => {
            let confirmed = client.subscription(&args.id).create(config(args)).await?;
            if confirmed.created {
                eprintln!("created subscription {}", args.id);
            } else {
                eprintln!("subscription {} exists with this configuration", args.id);
            }
        }
        SubCommand::Get(args) => {
            let s = client.subscription(&args.id).get().await?;
            let json = serde_json::to_string_pretty(&s)
                .map_err(|e| Failure::Other(format!("cannot print the subscription: {e}")))?;
            println!("{json}");
        }
        SubCommand::Delete(args) => client.subscription(&args.id).delete().await?,
        SubCommand::Add(args) => {
            client
                .subscription(&args.id)
                .add_streams(&args.paths)
                .await?
        }
        SubCommand::Remove(args) => {
            client
                .subscription(&args.id)
                .remove_stream(&args.path)
                .await?
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    #[test]
    fn the_command_line_becomes_the_configuration() {
        let cli = Cli::try_parse_from([
            "ds",
            "sub",
            "create",
            "s",
            "--pull-wake",
            "wake",
            "--pattern",
            "a/*",
            "--stream",
            "b/c",
            "--lease-ttl-ms",
            "5000",
            "--description",
            "d",
        ])
        .unwrap();
        let Command::Sub(SubCommand::Create(args)) = cli.command else {
            panic!("not sub create")
        };
        let c = config(&args);
        assert_eq!(
            c,
            Config::pull_wake("wake")
                .pattern("a/*")
                .stream("b/c")
                .lease_ttl_ms(5000)
                .description("d")
        );
        assert!(c.validate().is_ok());
    }
}
