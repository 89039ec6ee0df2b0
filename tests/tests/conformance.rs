//! The official client-conformance cases, every one through both drivers, against the
//! reference server and against the embedded server (ds-tokio `server`), both with a long-poll
//! timeout of 500 ms, as the official runner uses; one server of each kind per driver.
//!
//! Each case is its own trial, named `<driver>::<suite-id>/<case-id>` against the reference
//! server and `embedded-<driver>::<suite-id>/<case-id>` against the embedded one (with the
//! same checks, plus the embedded server's own documented overrides), so a failure names the
//! case; filters work as with any test (`cargo test -p ds-tests --test conformance -- sse`).
//! The cases are read from `$DS_CONFORMANCE_CASES` (the `test-cases` folder of
//! `packages/client-conformance-tests` in a checkout of
//! <https://github.com/durable-streams/durable-streams>), or from
//! `<workspace>/../shared/conformance/test-cases`. When neither exists the run says so, before
//! and after the trials, with the commands to get them, and its summary counts one ignored trial
//! named `conformance-cases-not-found` (a failed one with `DS_CONFORMANCE_REQUIRED=1`, or when
//! `$DS_CONFORMANCE_CASES` names no folder). Cases run in parallel (16 at a time unless
//! `--test-threads` or `$DS_CONFORMANCE_THREADS` says otherwise), each with a time limit. At
//! the end a line per driver and server gives its counts.

use ds_tests::conformance::{self, overrides, CaseEnv, CasesLocation, Target, CASES_ENV};
use ds_tests::drivers::DriverKind;
use ds_tests::{RefServer, RefServerOptions};
use ds_tokio::server::{BackgroundServer, ServerConfig};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The longest a case may take (the longest cases wait 10 s for a background read).
const CASE_TIMEOUT: Duration = Duration::from_secs(90);
/// Cases run at once by default: they mostly wait on the network and on timers. With four
/// targets (1077 trials), 16 runs the whole file in about 27 s on 2 cores (8: about 37 s).
const DEFAULT_THREADS: usize = 16;

/// Set to `1`, missing cases fail the run instead of being reported as ignored (for CI).
const REQUIRED_ENV: &str = "DS_CONFORMANCE_REQUIRED";

/// How to get the cases, shown when they are missing.
const HOW_TO_RUN: &str = "To run them, check out the upstream repository and point \
DS_CONFORMANCE_CASES at its cases:
    git clone https://github.com/durable-streams/durable-streams
    DS_CONFORMANCE_CASES=$PWD/durable-streams/packages/client-conformance-tests/test-cases \\
        cargo test -p ds-tests --all-features --test conformance
(or put them at <workspace>/../shared/conformance/test-cases;
DS_CONFORMANCE_REQUIRED=1 makes missing cases a failure)";

/// One server of the target's kind per driver, and its fault lock.
fn env(driver: DriverKind, target: Target) -> CaseEnv {
    if target == Target::Embedded {
        return embedded_env(driver);
    }
    static SERVERS: [OnceLock<(RefServer, Arc<Mutex<()>>)>; 2] = [OnceLock::new(), OnceLock::new()];
    let slot = match driver {
        DriverKind::Tokio => &SERVERS[0],
        DriverKind::Blocking => &SERVERS[1],
    };
    let (server, lock) = slot.get_or_init(|| {
        let server = RefServer::start_with(RefServerOptions {
            long_poll_timeout_ms: 500,
            ..RefServerOptions::default()
        });
        (server, Arc::new(Mutex::new(())))
    });
    CaseEnv {
        server_url: server.url().to_owned(),
        driver,
        fault_lock: Arc::clone(lock),
        target,
    }
}

/// One embedded server per driver (fault injection on, as by default), and its fault lock.
fn embedded_env(driver: DriverKind) -> CaseEnv {
    static SERVERS: [OnceLock<(BackgroundServer, Arc<Mutex<()>>)>; 2] =
        [OnceLock::new(), OnceLock::new()];
    let slot = match driver {
        DriverKind::Tokio => &SERVERS[0],
        DriverKind::Blocking => &SERVERS[1],
    };
    let (server, lock) = slot.get_or_init(|| {
        let mut config = ServerConfig::default();
        config.model.long_poll_timeout = Duration::from_millis(500);
        let server = BackgroundServer::start(config).expect("start the embedded server");
        (server, Arc::new(Mutex::new(())))
    });
    CaseEnv {
        server_url: server.url().to_owned(),
        driver,
        fault_lock: Arc::clone(lock),
        target: Target::Embedded,
    }
}

fn target_name(d: DriverKind, target: Target) -> &'static str {
    match (target, d) {
        (Target::Reference, DriverKind::Tokio) => "tokio",
        (Target::Reference, DriverKind::Blocking) => "blocking",
        (Target::Embedded, DriverKind::Tokio) => "embedded-tokio",
        (Target::Embedded, DriverKind::Blocking) => "embedded-blocking",
    }
}

type Tally = Mutex<BTreeMap<&'static str, (usize, usize)>>;

fn main() {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(
            std::env::var("DS_CONFORMANCE_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_THREADS),
        );
    }
    let tally: &'static Tally = Box::leak(Box::new(Mutex::new(BTreeMap::new())));

    // When the cases are missing the run says so before and after the trials (the last lines
    // of the output), and the summary counts one ignored trial named for it.
    let mut notice = None;
    let trials = match conformance::locate_cases() {
        CasesLocation::Found(dir) => match conformance::load_suites(&dir) {
            Err(e) => vec![Trial::test("load-conformance-cases", move || {
                Err(Failed::from(format!("cannot load the cases: {e}")))
            })],
            Ok(suites) => trials(suites, tally),
        },
        CasesLocation::NotAFolder(dir) => {
            let msg = format!("{CASES_ENV}={} names no folder", dir.display());
            notice = Some(format!("{msg}: no conformance case was run.\n{HOW_TO_RUN}"));
            vec![Trial::test(
                "conformance-cases-not-found (DS_CONFORMANCE_CASES names no folder)",
                move || Err(Failed::from(msg)),
            )]
        }
        CasesLocation::Absent { default } => {
            let msg = format!(
                "the official client-conformance cases were NOT run: {CASES_ENV} is not set \
                 and {} does not exist",
                default.display()
            );
            notice = Some(format!("{msg}.\n{HOW_TO_RUN}"));
            let required = std::env::var_os(REQUIRED_ENV).is_some_and(|v| v == "1");
            vec![Trial::ignorable_test(
                "conformance-cases-not-found (set DS_CONFORMANCE_CASES to run them)",
                move || {
                    if required {
                        Err(Failed::from(format!("{msg} ({REQUIRED_ENV}=1)")))
                    } else {
                        Ok(Completion::ignored_with("cases not found, nothing checked"))
                    }
                },
            )]
        }
    };
    if let Some(n) = &notice {
        eprintln!("\nconformance: {n}\n");
    }

    let conclusion = libtest_mimic::run(&args, trials);
    if let Ok(t) = tally.lock() {
        for (driver, (passed, failed)) in t.iter() {
            println!("{driver}: {passed} passed, {failed} failed");
        }
    }
    if let Some(n) = &notice {
        eprintln!("conformance: {n}\n");
    }
    conclusion.exit();
}

fn trials(suites: Vec<conformance::Suite>, tally: &'static Tally) -> Vec<Trial> {
    let mut trials = Vec::new();
    let suites = Arc::new(suites);

    // Every override must name a case that exists (a renamed case must not slip through).
    let all = Arc::clone(&suites);
    trials.push(Trial::test("overrides-name-existing-cases", move || {
        for o in overrides::OVERRIDES
            .iter()
            .chain(overrides::EMBEDDED_OVERRIDES)
        {
            let (s, c) = o.case.split_once('/').unwrap_or(("", ""));
            let found = all
                .iter()
                .any(|suite| suite.id == s && suite.tests.iter().any(|t| t.id == c));
            if !found {
                return Err(Failed::from(format!(
                    "override for a missing case {}",
                    o.case
                )));
            }
        }
        Ok(())
    }));

    let targets = DriverKind::ALL
        .into_iter()
        .map(|d| (d, Target::Reference))
        .chain(DriverKind::ALL.into_iter().map(|d| (d, Target::Embedded)));
    for (driver, target) in targets {
        for (si, suite) in suites.iter().enumerate() {
            for (ci, case) in suite.tests.iter().enumerate() {
                let name = format!("{}::{}/{}", target_name(driver, target), suite.id, case.id);
                let suites = Arc::clone(&suites);
                trials.push(Trial::test(name, move || {
                    let suite = &suites[si];
                    let case = &suite.tests[ci];
                    let verdict = conformance::run_case_with_timeout(
                        suite,
                        case,
                        &env(driver, target),
                        CASE_TIMEOUT,
                    );
                    if let Ok(mut t) = tally.lock() {
                        let e = t.entry(target_name(driver, target)).or_default();
                        if verdict.passed() {
                            e.0 += 1;
                        } else {
                            e.1 += 1;
                        }
                    }
                    match verdict.failure {
                        None => Ok(()),
                        Some(f) => {
                            let mut msg = format!("{}/{} ({}): {f}", suite.id, case.id, case.name);
                            for n in &verdict.notes {
                                msg.push_str("\n  note: ");
                                msg.push_str(n);
                            }
                            Err(Failed::from(msg))
                        }
                    }
                }));
            }
        }
    }
    trials
}
