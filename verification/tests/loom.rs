//! Runs the loom tests (`tests/loom_*.rs`) from the normal test command: they need the whole
//! crate graph built with `--cfg loom`, so this test builds it in a separate target directory
//! (`target/loom`) and runs them with at most two preemptions per execution (TOOLING.md).

use std::path::Path;
use std::process::Command;

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
            "loom_routes",
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
    // Two tests ran: a build that compiled them away (no `cfg(loom)`) must not pass.
    assert!(
        stdout.contains("test result: ok. 2 passed"),
        "the loom tests did not run:\n{stdout}\n{stderr}"
    );
}
