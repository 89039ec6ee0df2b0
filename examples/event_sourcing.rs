//! Event sourcing: a bank account whose state is the fold of its events. Events are appended as
//! JSON; the aggregate is rebuilt by replaying the stream from `-1` (the beginning).
//!
//! ```text
//! cargo run --example event_sourcing                  # against the embedded server
//! DS_URL=http://127.0.0.1:4437 cargo run --example event_sourcing
//! ```
//!
//! - One stream per aggregate (`account-<id>`), `application/json`: each append is one event.
//! - A command is decided against the state rebuilt from the events, and its event is appended
//!   with `Stream-Seq` = the aggregate's next version (zero-padded: the server compares
//!   `Stream-Seq` byte-wise). A command decided on a stale state carries a version the stream
//!   already passed, and the server refuses it with `409 Conflict`: optimistic concurrency
//!   without a lock.
//! - Replaying from `-1` rebuilds the aggregate; replaying from a snapshot's offset rebuilds it
//!   incrementally.

use ds_examples::ExampleServer;
use ds_tokio::{AppendOptions, Client, CreateOptions, ErrorKind, Offset, ReadMode, StreamHandle};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    Opened { owner: String },
    Deposited { amount: u64 },
    Withdrew { amount: u64 },
    Closed,
}

/// The aggregate: folded from events, never stored.
#[derive(Debug, Clone, Default, PartialEq)]
struct Account {
    owner: Option<String>,
    balance: u64,
    closed: bool,
    /// How many events were folded in: the version the next event gets.
    version: u64,
}

impl Account {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::Opened { owner } => self.owner = Some(owner.clone()),
            Event::Deposited { amount } => self.balance += amount,
            Event::Withdrew { amount } => self.balance -= amount,
            Event::Closed => self.closed = true,
        }
        self.version += 1;
    }

    /// Decides a withdrawal: the business rule lives here, against the folded state.
    fn withdraw(&self, amount: u64) -> Result<Event, String> {
        if self.closed {
            return Err("account closed".into());
        }
        if amount > self.balance {
            return Err(format!(
                "insufficient funds: balance {}, asked {amount}",
                self.balance
            ));
        }
        Ok(Event::Withdrew { amount })
    }
}

/// Replays the stream from `offset`, folding events into `state`; returns the offset to resume
/// from (a snapshot is `(state, offset)`).
async fn replay(
    stream: &StreamHandle,
    mut state: Account,
    offset: Offset,
) -> Result<(Account, Offset), ds_tokio::Error> {
    let mut events = stream.reader(offset, ReadMode::CatchUp)?.json::<Event>();
    while let Some(event) = events.next_item().await {
        state.apply(&event?);
    }
    Ok((state, events.offset().clone()))
}

/// Appends `event` as version `version` of the aggregate: refused with a conflict if the
/// stream already has that version (someone else appended since we read).
async fn append_event(
    stream: &StreamHandle,
    version: u64,
    event: &Event,
) -> Result<(), ds_tokio::Error> {
    let body = serde_json::to_vec(event).expect("events serialize");
    stream
        .append_with(
            body,
            AppendOptions {
                seq: Some(format!("{version:012}")),
                ..AppendOptions::default()
            },
        )
        .await?;
    println!("  v{version}: {}", serde_json::to_string(event).unwrap());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = ExampleServer::from_env()?;
    let client = Client::new(server.url())?;
    let stream = client.stream(&server.unique_path("account-42"));
    stream
        .create(CreateOptions::with_content_type("application/json"))
        .await?;
    eprintln!("account stream: {}", stream.url());

    // 1. Some history.
    println!("appending events:");
    let history = [
        Event::Opened {
            owner: "ada".into(),
        },
        Event::Deposited { amount: 100 },
        Event::Deposited { amount: 250 },
        Event::Withdrew { amount: 80 },
    ];
    for (version, event) in history.iter().enumerate() {
        append_event(&stream, version as u64, event).await?;
    }

    // 2. Rebuild the aggregate from the beginning, and keep it as a snapshot.
    let (account, snapshot_offset) =
        replay(&stream, Account::default(), Offset::beginning()).await?;
    println!(
        "replayed from -1: owner {:?}, balance {}, version {} (snapshot at {snapshot_offset})",
        account.owner, account.balance, account.version
    );
    assert_eq!(account.balance, 270);

    // 3. Two command handlers decide on the same state concurrently: both withdrawals are
    //    valid on their own, but not together. The first append wins; the second carries a
    //    version the stream already has and is refused.
    println!(
        "two concurrent withdrawals of 200, decided on version {}:",
        account.version
    );
    let first = account.withdraw(200)?;
    let second = account.withdraw(200)?;
    append_event(&stream, account.version, &first).await?;
    match append_event(&stream, account.version, &second).await {
        Err(e) if matches!(e.kind, ErrorKind::Conflict(_)) => {
            println!("  the second was refused: {}", e.kind)
        }
        other => return Err(format!("expected a conflict, got {other:?}").into()),
    }

    // 4. The loser reloads (incrementally: the snapshot plus what followed it) and decides
    //    again.
    let (account, offset) = replay(&stream, account, snapshot_offset).await?;
    println!(
        "reloaded from the snapshot: balance {}, version {}",
        account.balance, account.version
    );
    match account.withdraw(200) {
        Err(reason) => println!("  the retried withdrawal is refused by the rule: {reason}"),
        Ok(_) => return Err("the rule should refuse the second withdrawal".into()),
    }
    append_event(&stream, account.version, &Event::Deposited { amount: 30 }).await?;
    append_event(&stream, account.version + 1, &Event::Closed).await?;

    // 5. A full replay from -1 gives the same state as the incremental one.
    let (full, end) = replay(&stream, Account::default(), Offset::beginning()).await?;
    let (incremental, _) = replay(&stream, account, offset).await?;
    assert_eq!(full, incremental, "full and incremental replays agree");
    let events: Vec<Event> = stream.read_json().await?;
    println!(
        "full replay of {} events: owner {:?}, balance {}, closed {}, version {} (tail {end})",
        events.len(),
        full.owner,
        full.balance,
        full.closed,
        full.version
    );
    assert_eq!(full.balance, 100 + 250 - 80 - 200 + 30);
    assert!(full.closed);
    assert_eq!(full.version, events.len() as u64);
    println!("ok: the aggregate is the fold of its events");
    Ok(())
}
