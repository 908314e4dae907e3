//! Runs the loom tests (`tests/loom_*.rs`) from the normal test command: they need the whole
//! crate graph built with `--cfg loom`, so this test builds it in a separate target directory
//! (`target/loom`) and runs them with at most two preemptions per execution (TOOLING.md).

use std::path::Path;
use std::process::Command;

/// How many loom tests there are, the seeded-bug ones included. A build that compiled them
/// away (no `cfg(loom)`), or a file the pattern misses, must not pass.
const LOOM_TESTS: usize = 10;

#[test]
fn the_loom_tests_pass() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is in the workspace");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "test",
            "--release",
            "-p",
            "berth-verification",
            "--test",
            "loom_*",
        ])
        .env("RUSTFLAGS", "--cfg loom")
        .env("LOOM_MAX_PREEMPTIONS", "2")
        .env("CARGO_TARGET_DIR", workspace.join("target").join("loom"))
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the loom tests failed:\n{stdout}\n{stderr}"
    );
    assert_eq!(
        passed(&stdout),
        LOOM_TESTS,
        "not every loom test ran:\n{stdout}\n{stderr}"
    );
}

/// The sum of the passed counts of every `test result` line of a test run's output.
fn passed(stdout: &str) -> usize {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("test result: ok. "))
        .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
        .sum()
}
