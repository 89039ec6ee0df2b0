//! The official client-conformance suite (the YAML cases of `durable-streams`'
//! `client-conformance-tests`) for our client.
//!
//! - [`model`]: the YAML case files, loaded strictly (unknown actions and keys are refused).
//! - [`subst`]: case variables and `${...}` substitution.
//! - [`protocol`]: the adapter protocol's commands and replies (JSON lines).
//! - [`adapter`]: commands translated into calls on the public API of either driver, shared
//!   by the in-process runner and the `ds-conformance-adapter` binary.
//! - [`expect`]: strict checking of results against `expect` blocks.
//! - [`overrides`]: the few cases checked differently from their YAML, each with its reason.
//! - [`runner`]: runs one case against the reference server through one driver.
//!
//! The `conformance` test (`tests/tests/conformance.rs`) runs every case through both drivers,
//! each case as its own named trial.

pub mod adapter;
pub mod expect;
pub mod model;
pub mod overrides;
pub mod protocol;
pub mod runner;
pub mod subst;

pub use adapter::Adapter;
pub use model::{
    cases_dir, default_cases_dir, load_suites, locate_cases, Case, CasesLocation, Suite, CASES_ENV,
};
pub use runner::{run_case, run_case_with_timeout, CaseEnv, Target, Verdict};
