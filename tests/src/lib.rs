//! End-to-end tests of Berth with real `berth` processes.
//!
//! The tests find the `berth` binary that `cargo test --workspace` builds alongside them
//! (`target/<profile>/berth`); run `cargo build -p berth-node` first when running this crate
//! alone.

use std::path::PathBuf;

/// The path of the `berth` binary built in this workspace's target directory.
///
/// # Panics
/// If it has not been built, with the command that builds it.
pub fn berth_binary() -> PathBuf {
    let test_executable = std::env::current_exe().expect("the test knows its own path");
    // target/<profile>/deps/<test> -> target/<profile>/berth
    let profile_directory = test_executable
        .parent()
        .and_then(|deps| deps.parent())
        .expect("tests run from target/<profile>/deps");
    let binary = profile_directory.join(format!("berth{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} does not exist: run `cargo build -p berth-node` (or `cargo test --workspace`) first",
        binary.display()
    );
    binary
}
