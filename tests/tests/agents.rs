//! Agents as real `berth agent` processes with real masters on loopback: they register and
//! show in `berth state`, and after the leader is killed with `kill -9` they re-register with
//! the new leader. `berth local` starts agents after the masters and stops everything.

use std::process::Command;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use berth_tests::{
    AgentProcess, BerthProcess, MasterCluster, TestDirectory, admitted_agents, ask_state,
    berth_binary, free_loopback_addresses, process_exists,
};

/// How long an election, or an agent's registration, may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(20);
/// How often the tests ask the masters.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `berth state` against `masters` until `accept` approves it; panics after
/// [`PATIENCE`] with the last answer and `logs`.
fn wait_for_state(
    masters: &[String],
    cluster: &MasterCluster,
    what: &str,
    accept: impl Fn(&serde_json::Value) -> bool,
    logs: impl Fn() -> String,
) -> serde_json::Value {
    let deadline = Instant::now() + PATIENCE;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(state) = ask_state(masters, cluster.secret_file()) {
            if accept(&state) {
                return state;
            }
            last = Some(state);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    panic!(
        "berth state never showed {what}; last answer: {last:#?}\n{}\n{}",
        logs(),
        cluster.logs()
    );
}

/// Liveness ("a connected agent gets registered") and failover: two agents register with
/// the leader and appear in `berth state` with their addresses; after `kill -9` of the
/// leader, each re-registers with the new leader, in its higher term, and the registry
/// still lists both, admitted, under the same ids.
#[test]
fn agents_register_and_follow_a_new_leader() {
    let mut cluster = MasterCluster::start("agents-failover", 3);
    let (leader, term) = cluster.wait_for_leader(PATIENCE, |_, _| true);
    let directory = TestDirectory::new("agents-failover-work");
    let agents: Vec<AgentProcess> = free_loopback_addresses(2)
        .iter()
        .enumerate()
        .map(|(index, address)| {
            AgentProcess::start(
                &(index + 1).to_string(),
                directory.path(),
                address,
                cluster.addresses(),
                cluster.secret_file(),
            )
        })
        .collect();
    let logs = || {
        agents
            .iter()
            .map(|agent| format!("--- agent {} ---\n{}", agent.address(), agent.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let addresses: Vec<String> = agents
        .iter()
        .map(|agent| agent.address().to_string())
        .collect();
    let all_admitted = |state: &serde_json::Value| {
        let admitted = admitted_agents(state);
        addresses
            .iter()
            .all(|address| admitted.iter().any(|(known, _)| known == address))
    };
    let state = wait_for_state(
        cluster.addresses(),
        &cluster,
        "both agents admitted",
        all_admitted,
        logs,
    );
    let ids_before = admitted_agents(&state);
    let table = Command::new(berth_binary())
        .args(["state", "--cluster", berth_tests::TEST_CLUSTER, "--masters"])
        .arg(cluster.addresses().join(","))
        .arg("--secret-file")
        .arg(cluster.secret_file())
        .output()
        .expect("berth state runs");
    let table = String::from_utf8_lossy(&table.stdout);
    for (address, id) in &ids_before {
        let row = table
            .lines()
            .find(|line| line.starts_with(id.as_str()))
            .unwrap_or_else(|| panic!("agent {id} in the table:\n{table}"));
        assert!(
            row.contains(address.as_str()) && row.contains("admitted"),
            "{row}"
        );
    }

    cluster.kill_hard(cluster.id_of(&leader).expect("the leader is a master"));
    let killed = Instant::now();
    let (new_leader, new_term) = cluster.wait_for_leader(PATIENCE, |candidate, candidate_term| {
        candidate != leader && candidate_term > term
    });
    let registered_with_new_leader = |agent: &AgentProcess| {
        agent.log_text().lines().any(|line| {
            line.contains("registered with the leader")
                && line.contains(&format!("leader={new_leader}"))
                && line.contains(&format!("term={new_term}"))
        })
    };
    let deadline = Instant::now() + PATIENCE;
    while !agents.iter().all(registered_with_new_leader) {
        assert!(
            Instant::now() < deadline,
            "the agents did not re-register with {new_leader} in term {new_term}\n{}",
            logs()
        );
        std::thread::sleep(POLL_INTERVAL);
    }
    let reregistered = killed.elapsed();
    let state = wait_for_state(
        &cluster.running_addresses(),
        &cluster,
        "both agents admitted after the failover",
        all_admitted,
        logs,
    );
    let mut ids_after = admitted_agents(&state);
    let mut ids_before = ids_before;
    ids_after.sort();
    ids_before.sort();
    assert_eq!(ids_after, ids_before, "the same agents, under the same ids");
    println!(
        "leader killed -> both agents re-registered with the new leader (term {new_term}): {} ms",
        reregistered.as_millis()
    );
}

#[test]
fn agent_help_documents_every_flag_and_its_variable() {
    let output = Command::new(berth_binary())
        .args(["agent", "--help"])
        .output()
        .expect("berth runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, variable) in [
        ("--masters", "BERTH_MASTERS"),
        ("--listen", "BERTH_LISTEN"),
        ("--advertise", "BERTH_ADVERTISE"),
        ("--work-dir", "BERTH_WORK_DIR"),
        ("--resources", "BERTH_RESOURCES"),
        ("--hostname", "BERTH_HOSTNAME"),
        ("--cluster", "BERTH_CLUSTER"),
        ("--secret-file", "BERTH_SECRET_FILE"),
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
        assert!(help.contains(variable), "{variable} in {help}");
    }
    assert!(help.contains("detected as Mesos does"), "{help}");
}

/// `berth local --agents 2` starts the agents once a master leads, waits for them to
/// register, and on SIGTERM stops them and the master, and exits cleanly.
#[test]
fn berth_local_starts_agents_and_stops_everything() {
    let directory = TestDirectory::new("local-agents");
    let cluster_dir = directory.path().join("cluster");
    let mut local = BerthProcess::start_piped(
        "berth local",
        &[
            "local",
            "--masters",
            "1",
            "--agents",
            "2",
            "--dir",
            cluster_dir.to_str().expect("a UTF-8 temporary directory"),
        ],
        &directory.path().join("local.log"),
    );
    let lines = local.stdout_lines();
    let deadline = Instant::now() + PATIENCE;
    let mut printed = Vec::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let done = line.starts_with("Agents registered after");
                printed.push(line);
                if done {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                "the agents did not register; output: {printed:#?}\nstderr: {}",
                local.log_text()
            ),
        }
    }
    // The table: "  agent N   ADDRESS   PID   DIRECTORY   LOG".
    let pids: Vec<u32> = printed
        .iter()
        .filter(|line| {
            let line = line.trim_start();
            line.starts_with("agent ") || line.starts_with("master ")
        })
        .filter_map(|line| line.split_whitespace().nth(3)?.parse().ok())
        .collect();
    assert_eq!(pids.len(), 3, "{printed:#?}");
    for number in 1..=2 {
        let work_dir = cluster_dir.join(format!("agent-{number}"));
        assert!(work_dir.join("meta").is_dir(), "{}", work_dir.display());
        assert!(cluster_dir.join(format!("agent-{number}.log")).is_file());
    }

    local.terminate();
    let status = local.wait_timeout(PATIENCE);
    assert!(
        status.is_some_and(|status| status.success()),
        "berth local exits cleanly on SIGTERM: {status:?}; stderr: {}",
        local.log_text()
    );
    for pid in pids {
        assert!(!process_exists(pid), "node process {pid} was stopped");
    }
}
