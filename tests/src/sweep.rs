//! What every simulation sweep shares: which seeds to run (`DS_SIM_SEED` replays one;
//! `DS_SIM_FIRST_SEED` and `DS_SIM_CASES` choose a range, `default_cases` seeds otherwise) and
//! how a seed's panic is told.

use std::any::Any;

/// A number from the environment; a value that is not one is a usage error.
fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

/// The seeds a sweep runs.
pub fn seeds(default_cases: u64) -> Vec<u64> {
    match env_u64("DS_SIM_SEED") {
        Some(seed) => vec![seed],
        None => {
            let first = env_u64("DS_SIM_FIRST_SEED").unwrap_or(0);
            let cases = env_u64("DS_SIM_CASES").unwrap_or(default_cases);
            (first..first + cases).collect()
        }
    }
}

/// A seed's panic as a failure message.
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .map_or_else(|| "a panic".to_owned(), |m| format!("panicked: {m}"))
}
