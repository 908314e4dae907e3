//! `berth local --demo`: the fault-tolerance and persistent-storage story, on real processes,
//! with every claim checked and timed.
//!
//! 1. Start 3 masters and 3 agents; wait for a leader and the agents.
//! 2. A framework of role `web` reserves resources, creates a persistent volume on the reserved
//!    disk and launches a task that writes to it, in one accept. The task keeps running.
//! 3. `kill -9` the leader; time until a new leader has every agent re-registered.
//! 4. `kill -9` the task's agent process and start it again: the task keeps running, with the
//!    same process, and is still RUNNING.
//! 5. Let the task finish; launch a second task on the volume offered back to the role; it
//!    reads what the first one wrote.
//! 6. Print a table of every check with its measured time; exit non-zero if any failed.

use std::time::{Duration, Instant};

use anyhow::Context;
use berth_protocol::bounded::Name;
use berth_protocol::ids::{AgentId, Principal, Role, TaskId, VolumeId};
use berth_protocol::registry::FrameworkInfo;
use berth_protocol::resources::ContainerPath;
use berth_protocol::scheduler::{SchedulerAction, SchedulerEvent};
use berth_protocol::task::TaskState;
use rustix::process::Signal;
use tokio::sync::mpsc;

use super::{
    Cluster, LocalNode, LocalOptions, NodeKind, leader_of, new_cluster, print_nodes, start_agent,
    start_agents, start_masters, stop,
};
use crate::client::query_state;
use crate::process::{process_is_running, signal_process};
use crate::run::{Framework, RunOptions, VolumeRequest, plan};

/// How long any one step of the demo may take before it counts as failed.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the demo polls the masters.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The demo framework's role.
const ROLE: &str = "web";
/// The volume's id.
const VOLUME: &str = "demo-data";
/// What the first task writes.
const WRITTEN: &str = "written by the first task";

/// One checked claim.
struct Check {
    name: String,
    passed: bool,
    measured: String,
}

/// Runs the demo on a new local cluster of 3 masters and 3 agents.
pub async fn run_demo(options: LocalOptions) -> anyhow::Result<()> {
    let options = LocalOptions {
        masters: 3,
        agents: 3,
        ..options
    };
    let cluster = Cluster {
        force_log_level: true,
        ..new_cluster(&options)?
    };
    println!(
        "Berth demo: 3 masters and 3 agents on loopback, in {}",
        cluster.dir.display()
    );
    let mut nodes = Vec::new();
    let mut checks = Vec::new();
    let outcome = demo(&cluster, &mut nodes, &mut checks).await;
    println!();
    println!("Stopping the cluster...");
    stop(&mut nodes).await;
    println!();
    println!("{:<66} {:<6} MEASURED", "CHECK", "RESULT");
    for check in &checks {
        println!(
            "{:<66} {:<6} {}",
            check.name,
            if check.passed { "ok" } else { "FAILED" },
            check.measured
        );
    }
    if let Err(error) = &outcome {
        println!();
        println!("The demo stopped early: {error:#}");
        println!("Logs: {}", cluster.dir.display());
    }
    let failed = checks.iter().filter(|check| !check.passed).count();
    if outcome.is_err() || failed > 0 {
        anyhow::bail!("{failed} of {} checks failed", checks.len());
    }
    println!();
    println!("Every check passed.");
    Ok(())
}

fn millis(duration: Duration) -> String {
    format!("{} ms", duration.as_millis())
}

async fn demo(
    cluster: &Cluster,
    nodes: &mut Vec<LocalNode>,
    checks: &mut Vec<Check>,
) -> anyhow::Result<()> {
    start_masters(nodes, cluster)?;
    let started = Instant::now();
    let leader = poll(|| async { leader_of(nodes, cluster).await }).await;
    checks.push(Check {
        name: "a leader is elected among 3 masters".into(),
        passed: leader.is_some(),
        measured: millis(started.elapsed()),
    });
    let (first_leader, first_term) = leader.context("no leader was elected")?;
    println!("Leader: {first_leader} (term {first_term}).");

    start_agents(nodes, cluster)?;
    print_nodes(nodes.iter());
    let started = Instant::now();
    let registered = poll(|| async {
        let agents = registered_agents(cluster, nodes).await;
        (agents.len() == cluster.agent_addresses.len()).then_some(agents)
    })
    .await;
    checks.push(Check {
        name: "3 agents register".into(),
        passed: registered.is_some(),
        measured: millis(started.elapsed()),
    });
    registered.context("the agents did not register")?;

    // The framework: reserve, create a volume, launch a task that writes to it and keeps
    // running until told to finish (a file in the volume).
    let role = Role::new(ROLE).expect("a valid role");
    let info = FrameworkInfo {
        name: Name::new("berth-demo").expect("valid"),
        role: role.clone(),
        principal: Principal::new(ROLE).expect("valid"),
        failover_timeout: Duration::from_secs(7 * 24 * 3600),
    };
    let mut framework = Framework::start(
        cluster.master_addresses.clone(),
        info,
        cluster.cluster.clone(),
        cluster.secret.clone(),
    )?;
    let result = with_framework(cluster, nodes, checks, &mut framework, &role).await;
    framework.stop().await?;
    result
}

async fn with_framework(
    cluster: &Cluster,
    nodes: &mut [LocalNode],
    checks: &mut Vec<Check>,
    framework: &mut Framework,
    role: &Role,
) -> anyhow::Result<()> {
    let first = TaskId::new("writer").expect("valid");
    let command = format!(
        "echo $$ > data/pid; echo '{WRITTEN}' > data/log; \
         while [ ! -f data/release ]; do sleep 0.05; done"
    );
    let options = run_options(cluster, role, command);
    framework
        .events
        .send(SchedulerEvent::SubmitFirstFitting(plan(&options, &first)?))
        .await
        .context("the scheduler stopped")?;
    let started = Instant::now();
    let running = wait_for_state(&mut framework.actions, &first, TaskState::Running).await;
    checks.push(Check {
        name: "reserve, create a volume and launch a task on it (one accept)".into(),
        passed: running.is_some(),
        measured: millis(started.elapsed()),
    });
    let agent = running.context("the first task did not start")?;
    let agent_number = agent_number(cluster, nodes, agent).await?;
    let work_dir = cluster.dir.join(format!("agent-{agent_number}"));
    let volume_dir = work_dir
        .join(crate::work_dir::VOLUMES_DIRECTORY)
        .join(ROLE)
        .join(VOLUME);
    let pid_file = volume_dir.join("pid");
    let pid: u32 = poll(|| async {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
    })
    .await
    .context("the task did not write its pid to the volume")?;
    println!(
        "The task runs on agent {agent_number} as process {pid}; its volume is {}.",
        volume_dir.display()
    );

    // Kill the leader.
    let (leader, term) = leader_of(nodes, cluster).await.context("no leader")?;
    let leader_index = nodes
        .iter()
        .position(|node| node.address == leader && matches!(node.kind, NodeKind::Master(_)))
        .context("the leader is not one of ours")?;
    let leader_pid = nodes[leader_index].pid.context("the leader's pid")?;
    println!(
        "kill -9 the leader, {} (pid {leader_pid}, term {term})...",
        nodes[leader_index].kind
    );
    signal_process(leader_pid, Signal::KILL).context("cannot kill the leader")?;
    let killed = Instant::now();
    // Reaped at once, so that the polls below ask only the masters that run.
    nodes[leader_index].exit = nodes[leader_index].child.wait().await.ok();
    let new_leader = poll(|| async {
        let (address, new_term) = leader_of(nodes, cluster).await?;
        (address != leader && new_term > term).then_some((address, new_term))
    })
    .await;
    let elected = killed.elapsed();
    checks.push(Check {
        name: "kill -9 the leader: a new leader is elected".into(),
        passed: new_leader.is_some(),
        measured: millis(elected),
    });
    let rejoined = poll(|| async {
        let agents = registered_agents(cluster, nodes).await;
        (agents.len() == cluster.agent_addresses.len()).then_some(())
    })
    .await;
    checks.push(Check {
        name: "  ... and every agent has re-registered with it".into(),
        passed: rejoined.is_some(),
        measured: millis(killed.elapsed()),
    });

    // Restart the task's agent process: the executor and the task live on.
    let index = nodes
        .iter()
        .position(|node| node.kind == NodeKind::Agent(agent_number))
        .context("the agent's node")?;
    let agent_pid = nodes[index].pid.context("the agent's pid")?;
    let agent_log = nodes[index].log.clone();
    let registrations_before = registrations_in(&agent_log);
    println!("kill -9 agent {agent_number} (pid {agent_pid}) and start it again...");
    signal_process(agent_pid, Signal::KILL).context("cannot kill the agent")?;
    let _ = nodes[index].child.wait().await;
    let restarted = Instant::now();
    // The old process is gone: the new one gets the agent's address and work directory.
    nodes[index] = start_agent(cluster, agent_number)?;
    // The new process re-registered: its log says so (the leader's registry cannot tell a
    // re-registration from the registration it replaces).
    let agent_back = poll(|| async {
        (registrations_in(&agent_log) > registrations_before
            && nodes[index].pid.is_some_and(process_is_running))
        .then_some(())
    })
    .await;
    let recovered = restarted.elapsed();
    // No status for the task arrived meanwhile but RUNNING ones.
    let mut changed = Vec::new();
    while let Ok(action) = framework.actions.try_recv() {
        if let SchedulerAction::Status { task, state, .. } = action
            && task == first
            && state != TaskState::Running
        {
            changed.push(state);
        }
    }
    checks.push(Check {
        name: "restart the task's agent: it re-registers".into(),
        passed: agent_back.is_some(),
        measured: millis(recovered),
    });
    checks.push(Check {
        name: "  ... and the task is still RUNNING, the same process".into(),
        passed: process_is_running(pid) && changed.is_empty(),
        measured: format!("pid {pid} alive: {}", process_is_running(pid)),
    });

    // Let the task finish; a second task on the volume reads its data.
    std::fs::write(volume_dir.join("release"), b"")
        .with_context(|| format!("cannot write to {}", volume_dir.display()))?;
    let finished = wait_for_state(&mut framework.actions, &first, TaskState::Finished).await;
    checks.push(Check {
        name: "the first task finishes".into(),
        passed: finished.is_some(),
        measured: String::new(),
    });
    let second = TaskId::new("reader").expect("valid");
    let command = format!("grep -q '{WRITTEN}' data/log && rm -f data/release");
    let options = run_options(cluster, role, command);
    framework
        .events
        .send(SchedulerEvent::SubmitFirstFitting(plan(&options, &second)?))
        .await
        .context("the scheduler stopped")?;
    let started = Instant::now();
    let read = wait_for_state(&mut framework.actions, &second, TaskState::Finished).await;
    checks.push(Check {
        name: "a second task on the volume offered back reads the first's data".into(),
        passed: read.is_some(),
        measured: millis(started.elapsed()),
    });
    Ok(())
}

fn run_options(cluster: &Cluster, role: &Role, command: String) -> RunOptions {
    RunOptions {
        masters: cluster.master_addresses.clone(),
        cluster: cluster.cluster.clone(),
        secret: cluster.secret.clone(),
        name: Name::new("berth-demo").expect("valid"),
        role: role.clone(),
        principal: Principal::new(role.as_str()).expect("valid"),
        cpus: "0.5".into(),
        mem: 64,
        volume: Some(VolumeRequest {
            id: VolumeId::new(VOLUME).expect("valid"),
            size_mb: 64,
            path: ContainerPath::new("data").expect("valid"),
        }),
        command,
        timeout: None,
    }
}

/// Waits for `task` to reach `state`; returns its agent. A terminal state other than the
/// one awaited ends the wait.
async fn wait_for_state(
    actions: &mut mpsc::UnboundedReceiver<SchedulerAction>,
    task: &TaskId,
    wanted: TaskState,
) -> Option<AgentId> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let action = tokio::time::timeout_at(deadline, actions.recv())
            .await
            .ok()??;
        match action {
            SchedulerAction::Status {
                task: status_task,
                agent,
                state,
                reason,
            } if status_task == *task => {
                println!(
                    "  task {task}: {state}{}",
                    reason.map_or_else(String::new, |reason| format!(" ({reason:?})"))
                );
                if state == wanted {
                    return agent;
                }
                if state.is_terminal() {
                    return None;
                }
            }
            SchedulerAction::Operation { operation, state } => {
                println!("  operation {operation}: {state:?}");
            }
            _ => {}
        }
    }
}

/// How many times an agent's log says it registered with a leader.
fn registrations_in(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .map(|text| text.matches(REGISTERED_LINE).count())
        .unwrap_or(0)
}

/// What an agent logs when a leader admits it (the driver's note).
const REGISTERED_LINE: &str = "registered with the leader";

/// The masters that run.
fn live_masters(nodes: &[LocalNode]) -> Vec<berth_protocol::Address> {
    nodes
        .iter()
        .filter(|node| node.exit.is_none() && matches!(node.kind, NodeKind::Master(_)))
        .map(|node| node.address.clone())
        .collect()
}

/// The agents registered with the current leader.
async fn registered_agents(cluster: &Cluster, nodes: &[LocalNode]) -> Vec<String> {
    let state = query_state(
        &live_masters(nodes),
        cluster.cluster.clone(),
        cluster.secret.clone(),
        super::FIND_LEADER_TIMEOUT,
    )
    .await;
    state
        .agents
        .iter()
        .filter(|agent| agent.status == "admitted" && agent.registered_with_leader)
        .map(|agent| agent.address.clone())
        .collect()
}

/// The number (from 1) of the local agent with id `agent`.
async fn agent_number(
    cluster: &Cluster,
    nodes: &[LocalNode],
    agent: AgentId,
) -> anyhow::Result<usize> {
    let state = query_state(
        &live_masters(nodes),
        cluster.cluster.clone(),
        cluster.secret.clone(),
        super::FIND_LEADER_TIMEOUT,
    )
    .await;
    let row = state
        .agents
        .iter()
        .find(|row| row.id == agent.to_string())
        .context("the task's agent is not in the registry")?;
    cluster
        .agent_addresses
        .iter()
        .position(|address| address.as_str() == row.address)
        .map(|index| index + 1)
        .context("the task's agent is not one of ours")
}

/// Polls `probe` every [`POLL_INTERVAL`] until it gives a value or [`STEP_TIMEOUT`] passes.
async fn poll<T, F, Fut>(mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
