//! Frameworks on real processes: `berth run` runs a command to completion (on a persistent
//! volume that a second run finds again), and the operator commands reserve, create and
//! destroy a volume and unreserve, each through the leader and the agent's checkpoint.

use std::process::{Command, Output};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use berth_tests::{BerthProcess, TestDirectory, berth_binary};

const PATIENCE: Duration = Duration::from_secs(30);

/// A `berth local` cluster of 1 master and 1 agent; returns it and the flags that reach it.
fn local_cluster(directory: &TestDirectory) -> (BerthProcess, Vec<String>) {
    let cluster_dir = directory.path().join("cluster");
    let mut local = BerthProcess::start_piped(
        "berth local",
        &[
            "local",
            "--masters",
            "1",
            "--agents",
            "1",
            "--dir",
            cluster_dir.to_str().expect("a UTF-8 temporary directory"),
        ],
        &directory.path().join("local.log"),
    );
    let lines = local.stdout_lines();
    let deadline = Instant::now() + PATIENCE;
    let mut masters = Vec::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                // The table: "  master N   ADDRESS   PID   DIRECTORY   LOG".
                let words: Vec<&str> = line.split_whitespace().collect();
                if words.first() == Some(&"master") && words.len() > 2 {
                    masters.push(words[2].to_string());
                }
                if line.starts_with("Agents registered after") {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                panic!("the cluster did not start: {}", local.log_text())
            }
        }
    }
    let secret = cluster_dir.join("cluster-secret");
    let flags = vec![
        "--cluster".to_string(),
        "local".to_string(),
        "--secret-file".to_string(),
        secret.to_str().expect("UTF-8").to_string(),
        "--masters".to_string(),
        masters.join(","),
    ];
    (local, flags)
}

fn berth(flags: &[String], args: &[&str]) -> Output {
    let mut command = Command::new(berth_binary());
    command.args(&args[..1]);
    if args[0] == "volume" {
        command.arg(args[1]).args(flags).args(&args[2..]);
    } else {
        command.args(flags).args(&args[1..]);
    }
    command.output().expect("berth runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn berth_run_and_the_operator_commands_keep_a_volume_across_tasks() {
    let directory = TestDirectory::new("frameworks");
    let (local, flags) = local_cluster(&directory);
    let volume = directory.path().join("cluster/agent-1/volumes/web/data");

    let first = berth(
        &flags,
        &[
            "run",
            "--role",
            "web",
            "--cpus",
            "0.5",
            "--mem",
            "64",
            "--volume",
            "data:64:data",
            "--",
            "echo hello >> data/log",
        ],
    );
    assert!(first.status.success(), "{}", text(&first));
    assert!(text(&first).contains("TASK_FINISHED"), "{}", text(&first));
    let second = berth(
        &flags,
        &[
            "run",
            "--role",
            "web",
            "--cpus",
            "0.5",
            "--mem",
            "64",
            "--volume",
            "data:64:data",
            "--",
            "grep -q hello data/log",
        ],
    );
    assert!(
        second.status.success(),
        "the second task read the volume: {}",
        text(&second)
    );
    let failing = berth(&flags, &["run", "--role", "web", "--", "exit 3"]);
    assert!(!failing.status.success());
    assert!(text(&failing).contains("TASK_FAILED"), "{}", text(&failing));
    assert!(volume.join("log").is_file());

    // Operator commands: a second volume, destroyed again, and a reservation undone.
    let reserve = berth(
        &flags,
        &["reserve", "--role", "ops", "--resources", "cpus:0.5"],
    );
    assert!(reserve.status.success(), "{}", text(&reserve));
    let create = berth(
        &flags,
        &[
            "volume", "create", "--role", "ops", "--id", "scratch", "--size", "32", "--path", "s",
        ],
    );
    assert!(create.status.success(), "{}", text(&create));
    let scratch = directory.path().join("cluster/agent-1/volumes/ops/scratch");
    assert!(
        scratch.is_dir(),
        "the volume's directory exists once created"
    );
    let destroy = berth(
        &flags,
        &[
            "volume", "destroy", "--role", "ops", "--id", "scratch", "--size", "32", "--path", "s",
        ],
    );
    assert!(destroy.status.success(), "{}", text(&destroy));
    assert!(
        !scratch.exists(),
        "DestroyVolume deletes the data (R4: only it does)"
    );
    let unreserve = berth(
        &flags,
        &["unreserve", "--role", "ops", "--resources", "cpus:0.5"],
    );
    assert!(unreserve.status.success(), "{}", text(&unreserve));
    let again = berth(
        &flags,
        &[
            "unreserve",
            "--role",
            "ops",
            "--resources",
            "cpus:0.5",
            "--timeout-ms",
            "1500",
        ],
    );
    assert!(!again.status.success(), "nothing is left to unreserve");
    // The first volume was never touched.
    assert_eq!(
        std::fs::read_to_string(volume.join("log")).expect("readable"),
        "hello\n"
    );
    local.terminate();
}
