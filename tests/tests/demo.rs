//! The README's main command, end to end: `berth local --demo` runs the fault-tolerance and
//! persistent-storage story on real processes (3 masters, 3 agents, executors, a framework),
//! kills the leader and an agent with SIGKILL, and checks every claim.

use std::process::Command;

use berth_tests::{TestDirectory, berth_binary};

#[test]
fn the_demo_passes_every_check_on_real_processes() {
    let directory = TestDirectory::new("demo");
    let cluster = directory.path().join("cluster");
    let output = Command::new(berth_binary())
        .args(["local", "--demo", "--dir"])
        .arg(&cluster)
        .env("RUST_LOG", "error")
        .output()
        .expect("berth runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the demo failed:\n{stdout}\n{stderr}\nlogs in {}",
        cluster.display()
    );
    for check in [
        "a leader is elected among 3 masters",
        "3 agents register",
        "reserve, create a volume and launch a task on it (one accept)",
        "kill -9 the leader: a new leader is elected",
        "  ... and every agent has re-registered with it",
        "restart the task's agent: it re-registers",
        "  ... and the task is still RUNNING, the same process",
        "the first task finishes",
        "a second task on the volume offered back reads the first's data",
    ] {
        let line = stdout
            .lines()
            .find(|line| line.starts_with(check))
            .unwrap_or_else(|| panic!("no line for {check:?} in:\n{stdout}"));
        assert!(line.contains(" ok "), "{line}");
    }
    assert!(stdout.contains("Every check passed."), "{stdout}");
    // The volume's data is on disk where the agent keeps it.
    let volumes: Vec<_> = (1..=3)
        .map(|number| cluster.join(format!("agent-{number}/volumes/web/demo-data/log")))
        .filter(|path| path.exists())
        .collect();
    assert_eq!(volumes.len(), 1, "one agent holds the volume");
    assert_eq!(
        std::fs::read_to_string(&volumes[0]).expect("readable"),
        "written by the first task\n"
    );
}
