//! Why a command failed, in words a user acts on, and the exit code that goes with it:
//! 0 ok, 1 usage, 2 not found (or gone), 3 conflict (closed stream, existing stream with
//! another configuration, fenced writer), 4 anything else.

use ds_proto::subscription::{SubscriptionError, SubscriptionErrorKind};
use ds_tokio::{ConflictKind, Error, ErrorKind};
use std::process::ExitCode;

/// Exit code of a command line that does not parse (clap's own default would be 2, which
/// `ds` gives to "not found").
pub const USAGE: u8 = 1;
/// Exit code of a missing (or deleted) stream.
pub const NOT_FOUND: u8 = 2;
/// Exit code of a conflict: closed stream, other configuration, fenced writer.
pub const CONFLICT: u8 = 3;
/// Exit code of anything else (transport, server, bad data, not available yet).
pub const OTHER: u8 = 4;

/// Why the command failed, and with which exit code.
#[derive(Debug)]
pub enum Failure {
    /// Exit 1: the command line is wrong in a way clap cannot see (for instance `--raw` on a
    /// JSON stream).
    Usage(String),
    /// Exit 2, 3 or 4, from the error's kind.
    Stream(Error),
    /// Exit 2 (no such subscription), 3 (conflict, fenced) or 4.
    Subscription(SubscriptionError),
    /// Exit 4.
    Other(String),
}

impl From<SubscriptionError> for Failure {
    fn from(e: SubscriptionError) -> Self {
        Failure::Subscription(e)
    }
}

/// The exit code of a subscription error.
pub fn subscription_code(kind: &SubscriptionErrorKind) -> u8 {
    match kind {
        SubscriptionErrorKind::NotFound { .. } => NOT_FOUND,
        SubscriptionErrorKind::ConfigConflict { .. }
        | SubscriptionErrorKind::Fenced { .. }
        | SubscriptionErrorKind::Conflict { .. } => CONFLICT,
        SubscriptionErrorKind::InvalidConfig(_) => USAGE,
        SubscriptionErrorKind::Http(k) => exit_code(k),
        _ => OTHER,
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Stream(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Other(e.to_string())
    }
}

/// The exit code of a protocol error.
pub fn exit_code(kind: &ErrorKind) -> u8 {
    match kind {
        ErrorKind::NotFound | ErrorKind::Gone => NOT_FOUND,
        ErrorKind::Conflict(_) | ErrorKind::Fenced { .. } => CONFLICT,
        _ => OTHER,
    }
}

/// The exit code of a failure.
pub fn failure_code(failure: &Failure) -> u8 {
    match failure {
        Failure::Usage(_) => USAGE,
        Failure::Stream(e) => exit_code(&e.kind),
        Failure::Subscription(e) => subscription_code(&e.kind),
        Failure::Other(_) => OTHER,
    }
}

/// Prints the failure on stderr and gives its exit code.
pub fn report(failure: &Failure) -> ExitCode {
    match failure {
        Failure::Usage(m) => eprintln!("ds: {m}\n(`ds --help` shows the usage)"),
        Failure::Stream(e) => eprintln!("ds: {}", describe(e)),
        Failure::Subscription(e) => eprintln!("ds: {e}"),
        Failure::Other(m) => eprintln!("ds: {m}"),
    }
    ExitCode::from(failure_code(failure))
}

/// Prints what clap has to say (help, version, or a usage error) where it belongs, and exits
/// 0 for help and version, [`USAGE`] for everything else.
pub fn clap_error(e: &clap::Error) -> ExitCode {
    // Nothing useful is left to do when stdout or stderr is gone.
    let _ = e.print();
    ExitCode::from(clap_code(e))
}

/// The exit code of a clap outcome: help and version are successes.
pub fn clap_code(e: &clap::Error) -> u8 {
    if e.use_stderr() {
        USAGE
    } else {
        0
    }
}

/// An error in words a user acts on.
pub fn describe(e: &Error) -> String {
    let what = match &e.kind {
        ErrorKind::NotFound => "no such stream".to_owned(),
        ErrorKind::Gone => "gone (deleted, or the offset is before the retained data)".to_owned(),
        ErrorKind::Conflict(ConflictKind::Closed { .. }) => "the stream is closed".to_owned(),
        ErrorKind::Conflict(ConflictKind::ExistsWithDifferentConfig) => {
            "the stream exists with another configuration".to_owned()
        }
        ErrorKind::Conflict(ConflictKind::ContentTypeMismatch) => {
            "content type does not match the stream's".to_owned()
        }
        ErrorKind::Transport(t) => format!("cannot reach the server ({t})"),
        other => other.to_string(),
    };
    format!("{} {}: {what}", e.operation, e.url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn protocol_errors_map_to_the_documented_codes() {
        assert_eq!(exit_code(&ErrorKind::NotFound), NOT_FOUND);
        assert_eq!(exit_code(&ErrorKind::Gone), NOT_FOUND);
        assert_eq!(
            exit_code(&ErrorKind::Conflict(ConflictKind::Closed {
                final_offset: None
            })),
            CONFLICT
        );
        assert_eq!(
            exit_code(&ErrorKind::Conflict(
                ConflictKind::ExistsWithDifferentConfig
            )),
            CONFLICT
        );
        assert_eq!(failure_code(&Failure::Usage("x".into())), USAGE);
        assert_eq!(failure_code(&Failure::Other("x".into())), OTHER);
    }

    #[test]
    fn subscription_errors_map_to_the_documented_codes() {
        let code = |kind| {
            failure_code(&Failure::Subscription(SubscriptionError::new(
                ds_proto::subscription::SubscriptionOp::Get,
                "http://h/v1/stream/__ds/subscriptions/s",
                kind,
            )))
        };
        let message = String::new;
        assert_eq!(
            code(SubscriptionErrorKind::NotFound { message: message() }),
            NOT_FOUND
        );
        assert_eq!(
            code(SubscriptionErrorKind::Fenced { message: message() }),
            CONFLICT
        );
        assert_eq!(
            code(SubscriptionErrorKind::ConfigConflict { message: message() }),
            CONFLICT
        );
        assert_eq!(code(SubscriptionErrorKind::NoPendingWork), OTHER);
    }

    #[test]
    fn usage_errors_exit_1_and_help_exits_0() {
        let parse = |argv: &[&str]| crate::args::Cli::try_parse_from(argv).map(|_| ());
        for bad in [
            &["ds"][..],
            &["ds", "frobnicate"],
            &["ds", "read"],
            &["ds", "read", "x", "--bogus"],
            &["ds", "read", "x", "y"],
            &["ds", "serve", "--port", "http"],
        ] {
            let e = parse(bad).expect_err("a usage error");
            assert_eq!(clap_code(&e), USAGE, "{bad:?}");
        }
        for help in [
            &["ds", "--help"][..],
            &["ds", "help"],
            &["ds", "tail", "-h"],
        ] {
            let e = parse(help).expect_err("help is reported as an error by clap");
            assert_eq!(clap_code(&e), 0, "{help:?}");
        }
    }
}
