//! Masters as real `berth master` processes on loopback: a cluster elects a leader, and after
//! the leader is killed with `kill -9` the other two elect a new one in a higher term.
//! `berth local` starts and stops a whole cluster.

use std::process::Command;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use berth_tests::{BerthProcess, MasterCluster, TestDirectory, berth_binary, process_exists};

/// How long a cluster may take to elect a leader on a loaded machine (the election timeout
/// is 500-1000 ms, so an election takes a second or two).
const ELECTION_PATIENCE: Duration = Duration::from_secs(15);

/// Liveness with a majority up (DESIGN.md, "Liveness"), and E1 across a crash: the new
/// leader's term is higher than the dead leader's.
#[test]
fn a_killed_leader_is_replaced_in_a_higher_term() {
    let mut cluster = MasterCluster::start("failover", 3);
    let (leader, term) = cluster.wait_for_leader(ELECTION_PATIENCE, |_, _| true);
    let leader_id = cluster
        .id_of(&leader)
        .expect("the leader is one of the masters");

    cluster.kill_hard(leader_id);
    let killed = Instant::now();
    let (new_leader, new_term) = cluster
        .wait_for_leader(ELECTION_PATIENCE, |candidate, candidate_term| {
            candidate != leader && candidate_term > term
        });
    let failover = killed.elapsed();

    assert_ne!(new_leader, leader);
    assert!(new_term > term, "term {new_term} after term {term}");
    println!(
        "failover: master {leader_id} (term {term}) killed; master {} leads term {new_term} \
         after {} ms (both survivors agree)",
        cluster.id_of(&new_leader).unwrap_or(0),
        failover.as_millis()
    );
}

#[test]
fn a_master_list_of_two_is_refused_with_a_clear_error() {
    let directory = TestDirectory::new("bad-list");
    let output = Command::new(berth_binary())
        .args([
            "master",
            "--id",
            "1",
            "--masters",
            "1=127.0.0.1:1,2=127.0.0.1:2",
            "--secret-file",
        ])
        .arg(directory.path().join("secret"))
        .arg("--data-dir")
        .arg(directory.path().join("data"))
        .output()
        .expect("berth runs");
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("--masters must list 1, 3 or 5 masters, not 2"),
        "{error}"
    );
}

#[test]
fn master_help_documents_every_flag_and_its_variable() {
    let output = Command::new(berth_binary())
        .args(["master", "--help"])
        .output()
        .expect("berth runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, variable) in [
        ("--id", "BERTH_ID"),
        ("--listen", "BERTH_LISTEN"),
        ("--masters", "BERTH_MASTERS"),
        ("--data-dir", "BERTH_DATA_DIR"),
        ("--cluster", "BERTH_CLUSTER"),
        ("--secret-file", "BERTH_SECRET_FILE"),
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
        assert!(help.contains(variable), "{variable} in {help}");
    }
}

/// `berth local` prints where everything is and the leader, and on SIGTERM stops every master
/// it started and exits cleanly.
#[test]
fn berth_local_starts_a_cluster_and_stops_it() {
    let directory = TestDirectory::new("local");
    let cluster_dir = directory.path().join("cluster");
    let mut local = BerthProcess::start_piped(
        "berth local",
        &[
            "local",
            "--masters",
            "3",
            "--dir",
            cluster_dir.to_str().expect("a UTF-8 temporary directory"),
        ],
        &directory.path().join("local.log"),
    );
    let lines = local.stdout_lines();
    let deadline = Instant::now() + ELECTION_PATIENCE;
    let mut printed = Vec::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let done = line.starts_with("Leader: master");
                printed.push(line);
                if done {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                "no leader printed; output: {printed:#?}\nstderr: {}",
                local.log_text()
            ),
        }
    }
    // The table: "  master N   ADDRESS   PID   DATA DIRECTORY   LOG".
    let pids: Vec<u32> = printed
        .iter()
        .filter(|line| line.trim_start().starts_with("master "))
        .filter_map(|line| line.split_whitespace().nth(3)?.parse().ok())
        .collect();
    assert_eq!(pids.len(), 3, "{printed:#?}");
    for id in 1..=3 {
        assert!(cluster_dir.join(format!("master-{id}")).is_dir());
        assert!(cluster_dir.join(format!("master-{id}.log")).is_file());
    }
    assert!(cluster_dir.join("cluster-secret").is_file());

    local.terminate();
    let status = local.wait_timeout(Duration::from_secs(10));
    assert!(
        status.is_some_and(|status| status.success()),
        "berth local exits cleanly on SIGTERM: {status:?}; stderr: {}",
        local.log_text()
    );
    for pid in pids {
        assert!(!process_exists(pid), "master process {pid} was stopped");
    }
}

/// `berth state` shows every master's term, the leader, and the (empty) registry, as a table
/// and as JSON.
#[test]
fn berth_state_shows_the_masters_and_the_registry() {
    let cluster = MasterCluster::start("state", 3);
    let (leader, term) = cluster.wait_for_leader(ELECTION_PATIENCE, |_, _| true);
    let run = |json: bool| {
        let mut command = Command::new(berth_binary());
        command
            .args(["state", "--cluster", berth_tests::TEST_CLUSTER, "--masters"])
            .arg(cluster.addresses().join(","))
            .arg("--secret-file")
            .arg(cluster.secret_file());
        if json {
            command.arg("--json");
        }
        let output = command.output().expect("berth state runs");
        assert!(
            output.status.success(),
            "berth state failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let json: serde_json::Value = serde_json::from_str(run(true).trim()).expect("JSON");
    assert_eq!(json["leader"].as_str(), Some(leader.as_str()));
    assert!(json["term"].as_u64() >= Some(term));
    let masters = json["masters"].as_array().expect("a list of masters");
    assert_eq!(masters.len(), 3);
    assert!(masters.iter().all(|master| master["answered"] == true));
    assert_eq!(json["agents"].as_array().map(Vec::len), Some(0));
    assert!(
        json["commit_index"].as_u64() >= Some(1),
        "the leader's no-op commits"
    );
    let table = run(false);
    assert!(table.contains(&format!("leader: {leader}")), "{table}");
    assert!(
        table.contains("AGENT") && table.contains("FRAMEWORK"),
        "{table}"
    );
}
