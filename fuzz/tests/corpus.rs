//! Replays the committed seed corpus (`corpus/<target>/`) and the crash inputs
//! (`regressions/<target>/`) through the targets, on stable, with a plain `cargo test`.
//! `DS_FUZZ_WRITE_SEEDS=1 cargo test` rewrites the hand-written seeds from `src/seeds.rs`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir` (not hidden), sorted; none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    out.sort();
    out
}

/// Runs every file of `<kind>/<target>/` through its target; returns how many ran.
fn replay(kind: &str) -> usize {
    let mut failures = Vec::new();
    let mut ran = 0;
    for (target, f) in ds_fuzz::TARGETS {
        for path in files(&root().join(kind).join(target)) {
            let data = std::fs::read(&path).expect("readable");
            ran += 1;
            if catch_unwind(AssertUnwindSafe(|| f(&data))).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "failing inputs:\n{}",
        failures.join("\n")
    );
    ran
}

#[test]
fn seed_corpus_passes() {
    let ran = replay("corpus");
    assert!(ran >= ds_fuzz::TARGETS.len(), "only {ran} seeds");
}

#[test]
fn regressions_pass() {
    replay("regressions");
}

#[test]
fn every_target_has_seeds() {
    for (target, _) in ds_fuzz::TARGETS {
        let n = files(&root().join("corpus").join(target)).len();
        assert!(n >= 3, "{target} has {n} seeds");
        assert!(
            root()
                .join("fuzz_targets")
                .join(format!("{target}.rs"))
                .is_file(),
            "no fuzz_targets/{target}.rs"
        );
    }
}

#[test]
fn hand_written_seeds_are_committed() {
    let write = std::env::var_os("DS_FUZZ_WRITE_SEEDS").is_some();
    for (target, name, bytes) in ds_fuzz::seeds::seeds() {
        let path = root().join("corpus").join(target).join(name);
        if write {
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(&path, &bytes).expect("write");
        }
        let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (DS_FUZZ_WRITE_SEEDS=1 writes it)", path.display())
        });
        assert_eq!(
            on_disk,
            bytes,
            "{} is stale (DS_FUZZ_WRITE_SEEDS=1 rewrites it)",
            path.display()
        );
    }
}

#[test]
fn scripts_encode_as_arbitrary_decodes() {
    for (name, ok) in ds_fuzz::seeds::script_round_trips() {
        assert!(
            ok,
            "seed {name}: the encoder disagrees with arbitrary's decoding"
        );
    }
}

#[test]
fn empty_and_tiny_inputs() {
    for (target, f) in ds_fuzz::TARGETS {
        for data in [&[][..], &[0], &[0xff; 3], &[0x80; 64]] {
            if catch_unwind(AssertUnwindSafe(|| f(data))).is_err() {
                panic!("{target} fails on {data:?}");
            }
        }
    }
}

/// Replays one input: `DS_FUZZ_TARGET=<target> DS_FUZZ_INPUT=<file> cargo test --test corpus
/// one_input -- --nocapture` (with `DS_FUZZ_TRACE=1`, the script targets tell what they do).
#[test]
fn one_input() {
    let (Some(target), Some(path)) = (
        std::env::var_os("DS_FUZZ_TARGET"),
        std::env::var_os("DS_FUZZ_INPUT"),
    ) else {
        return;
    };
    let data = std::fs::read(&path).expect("readable input");
    ds_fuzz::run(&target.to_string_lossy(), &data);
}
