//! The `berth` binary's command line, run as a real process.

use std::process::Command;

use berth_tests::berth_binary;

#[test]
fn help_lists_the_commands() {
    let output = Command::new(berth_binary())
        .arg("--help")
        .output()
        .expect("berth runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for command in ["master", "agent", "local", "leader", "state", "resources"] {
        assert!(
            help.contains(&format!("  {command} ")),
            "{command} in {help}"
        );
    }
    assert!(
        !help.contains("  executor "),
        "executors are started by agents, not listed: {help}"
    );
}

#[test]
fn a_bad_resource_string_fails_naming_the_part_at_fault() {
    let output = Command::new(berth_binary())
        .args(["resources", "cpus:4;ports:[9-1]"])
        .output()
        .expect("berth runs");
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("ports:[9-1]"), "{error}");
    assert!(error.contains("ends before it starts"), "{error}");
}

#[test]
fn a_good_resource_string_is_described() {
    let output = Command::new(berth_binary())
        .args(["resources", "cpus:4;mem:8192;cpus(ops):2"])
        .output()
        .expect("berth runs");
    assert!(output.status.success());
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("ops (static)"), "{table}");
}
