//! Faults across network namespaces: real `berth` masters, agents and frameworks, each on a
//! host of its own, killed, paused, restarted and partitioned, while the invariants of
//! DESIGN.md are checked through `berth state --json` (every read: E1, E2, agent ids) and
//! through the frameworks' own views (A1, A2, A3, R4, R5, E3, F1).
//!
//! These tests need root and iproute2 (see `berth_tests::netns`); without them they fail.
//! The nodes run with the binary's default timing (no flag shortens it): an agent cut off
//! from the masters is marked unreachable after 5 missed pings of 1 s; a scheduler is
//! silent after 5 missed pings; executors have 2 s to reconnect to a restarted agent. The
//! frameworks set their own failover timeout and leader-silence timeout.
//!
//! `BERTH_NEMESIS_SECS` and `BERTH_NEMESIS_SEED` lengthen and replay the random nemesis.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use berth_tests::netns::cluster::{
    Cluster, ClusterSpec, agent_row, agreed_leader, framework_row, long_task, registered,
};
use berth_tests::netns::framework::{FrameworkProcess, FrameworkSpec, SteadyLoad};
use berth_tests::netns::invariants::is_terminal;
use berth_tests::netns::nemesis::{Nemesis, NemesisConfig};
use berth_tests::netns::process::is_running;

/// How long an election, a registration or a status may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);
/// What a task of the tests asks for.
const TASK_RESOURCES: &str = "cpus:0.1;mem:16";
/// How long a task's last update may take to reach its framework after failovers: an agent
/// retries an unacknowledged update 1 s, then doubling to 60 s, so one sent while its
/// framework had no leader to talk to can wait a minute.
const SETTLE_PATIENCE: Duration = Duration::from_secs(90);
/// How long the tests watch for an update that must not come (a kill, a failure) once the
/// agent concerned has registered again: its updates are sent on registration.
const QUIET_WINDOW: Duration = Duration::from_secs(3);

/// Prints a scenario's duration when it ends, passed or not.
struct Timer {
    name: &'static str,
    started: Instant,
}

impl Timer {
    fn start(name: &'static str) -> Timer {
        Timer {
            name,
            started: Instant::now(),
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        println!(
            "scenario {}: {:.1} s",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// Starts a framework on the client host and waits until it has subscribed.
fn subscribed_framework(cluster: &mut Cluster, spec: &FrameworkSpec) -> FrameworkProcess {
    let mut framework = cluster.start_framework(cluster.client_host(), spec);
    framework.wait_until(
        "the subscription",
        PATIENCE,
        |framework| framework.framework_id().is_some() && framework.leader().is_some(),
        || cluster.logs(),
    );
    framework
}

/// Launches `tasks` (long tasks) and waits until each is RUNNING with its pid written.
fn launch_running(cluster: &Cluster, framework: &mut FrameworkProcess, tasks: &[&str]) {
    for task in tasks {
        framework.launch(task, TASK_RESOURCES, &long_task());
    }
    for task in tasks {
        framework.wait_for_state(task, "TASK_RUNNING", PATIENCE, || cluster.logs());
    }
    let deadline = Instant::now() + PATIENCE;
    while tasks.iter().any(|task| cluster.task_pid(task).is_none()) {
        assert!(
            Instant::now() < deadline,
            "the tasks never wrote their pids"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The agent index each task runs on.
fn agents_of(cluster: &Cluster, tasks: &[&str]) -> BTreeMap<String, usize> {
    tasks
        .iter()
        .map(|task| {
            let runs = cluster.task_runs(task);
            assert_eq!(runs.len(), 1, "task {task} ran once: {runs:?}");
            ((*task).to_string(), runs[0].agent)
        })
        .collect()
}

/// Watches the framework for `window`: no task of `tasks` may get a status.
fn assert_quiet(
    cluster: &Cluster,
    framework: &mut FrameworkProcess,
    tasks: &[&str],
    window: Duration,
) {
    let before: Vec<usize> = tasks
        .iter()
        .map(|task| framework.history.of(task).len())
        .collect();
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        framework.poll();
        std::thread::sleep(Duration::from_millis(50));
    }
    for (task, count) in tasks.iter().zip(before) {
        let events = framework.history.of(task);
        assert_eq!(
            events.len(),
            count,
            "task {task} got a status it must not: {events:?}\n{}\n{}",
            framework.describe(),
            cluster.logs()
        );
    }
}

fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// How many times `resources` reserved for `role` can be unreserved, trying at most
/// `attempts` times: the number of reservations of that size the agents hold. Each
/// `berth unreserve` is a short-lived framework of the role that needs an offer holding
/// the reservation; the last, failing one waits `timeout_ms` for it.
fn unreserve_all(
    cluster: &Cluster,
    role: &str,
    resources: &str,
    attempts: usize,
    timeout_ms: &str,
) -> usize {
    for count in 0..attempts {
        let output = cluster.berth(
            &["unreserve"],
            &[
                "--role",
                role,
                "--resources",
                resources,
                "--timeout-ms",
                timeout_ms,
            ],
        );
        if !output.status.success() {
            return count;
        }
    }
    attempts
}

/// The agents holding a volume directory `volumes/<role>/<id>`.
fn volume_directories(cluster: &Cluster, role: &str, id: &str) -> Vec<std::path::PathBuf> {
    (0..cluster.agent_count())
        .map(|index| {
            cluster
                .agent_work_dir(index)
                .join("volumes")
                .join(role)
                .join(id)
        })
        .filter(|path| path.is_dir())
        .collect()
}

/// The harness itself: a cut link drops what crosses it, in the direction cut, and heals;
/// loss of 100% drops everything a host sends.
#[test]
fn faults_cut_and_heal_links() {
    let _timer = Timer::start("fabric");
    let mut cluster = Cluster::start(
        "fabric",
        &ClusterSpec {
            masters: 1,
            agents: 0,
            ..ClusterSpec::default()
        },
    );
    let master = cluster.master_host(1);
    let client = cluster.client_host();
    let answered = |cluster: &mut Cluster| {
        cluster
            .state()
            .is_some_and(|state| state["masters"][0]["answered"] == true)
    };
    assert!(answered(&mut cluster), "the master answers");
    cluster.fabric().cut_one_way(client, master);
    assert!(!answered(&mut cluster), "client -> master cut");
    cluster.fabric().heal_one_way(client, master);
    assert!(answered(&mut cluster), "healed");
    cluster.fabric().cut_one_way(master, client);
    assert!(!answered(&mut cluster), "master -> client cut");
    cluster.fabric().heal_all();
    assert!(answered(&mut cluster), "healed");
    cluster.fabric().set_loss(master, 100);
    assert!(!answered(&mut cluster), "100% loss");
    cluster.fabric().clear_loss(master);
    assert!(answered(&mut cluster), "loss cleared");
}

/// Scenario 1. The leader is `kill -9`ed while a framework launches tasks and operators
/// reserve resources and create a volume. A new leader takes over; every task ends up
/// RUNNING or reported ended with no process left (A1), none runs twice (R5); no
/// reservation is applied twice (R5): what the agents hold is at most what was asked, and
/// at least what was confirmed.
#[test]
fn leader_killed_during_launches_and_reservations() {
    let _timer = Timer::start("1 leader killed during launches and reservations");
    let mut cluster = Cluster::start("leaderkill", &ClusterSpec::default());
    let mut framework = subscribed_framework(&mut cluster, &FrameworkSpec::new("launcher", "web"));
    let (leader, term) = cluster.wait_for_leader(PATIENCE);
    let tasks: Vec<String> = (0..6).map(|n| format!("task-{n}")).collect();
    let mut reservations: Vec<_> = (0..2)
        .map(|n| {
            cluster.berth_background(
                &format!("reserve-{n}"),
                &["reserve"],
                &[
                    "--role",
                    "ops",
                    "--resources",
                    "cpus:0.25;mem:32",
                    "--timeout-ms",
                    "20000",
                ],
            )
        })
        .collect();
    let volume = cluster.berth_background(
        "volume-create",
        &["volume", "create"],
        &[
            "--role",
            "ops",
            "--id",
            "v1",
            "--size",
            "16",
            "--path",
            "v",
            "--timeout-ms",
            "20000",
        ],
    );
    reservations.push(volume);
    for task in &tasks {
        framework.launch(task, TASK_RESOURCES, &long_task());
        std::thread::sleep(Duration::from_millis(40));
    }
    cluster.kill_master(cluster.master_id(&leader));
    let (new_leader, new_term) = cluster
        .wait_for_leader_where(PATIENCE, |candidate, candidate_term| {
            candidate != leader && candidate_term > term
        });
    cluster.wait_for_agents(PATIENCE);
    println!("leader {leader} (term {term}) killed; {new_leader} leads term {new_term}");

    // Every operator command ends, one way or the other.
    let deadline = Instant::now() + PATIENCE;
    for command in &mut reservations {
        while command.state() != berth_tests::netns::process::ProcessState::Down {
            assert!(
                Instant::now() < deadline,
                "{} did not end: {}",
                command.name(),
                command.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let confirmed: Vec<bool> = reservations
        .iter()
        .map(|command| command.last_exit().is_some_and(|status| status.success()))
        .collect();

    // Every task reaches RUNNING or an end.
    framework.wait_until(
        "every task RUNNING or ended",
        PATIENCE,
        |framework| {
            tasks.iter().all(|task| {
                framework
                    .history
                    .latest(task)
                    .is_some_and(|event| event.state == "TASK_RUNNING" || is_terminal(&event.state))
            })
        },
        || cluster.logs(),
    );
    cluster
        .check_tasks(&framework.history)
        .unwrap_or_else(|violation| panic!("{violation}\n{}", cluster.logs()));
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for task in &tasks {
        let latest = framework.history.latest(task).expect("seen").state.clone();
        if latest == "TASK_RUNNING" {
            let pid = cluster
                .task_pid(task)
                .expect("a running task wrote its pid");
            assert!(
                is_running(pid),
                "task {task} is RUNNING but its process {pid} is gone"
            );
        }
        *outcomes.entry(latest).or_insert(0) += 1;
    }
    println!("tasks launched around the kill: {outcomes:?}");

    // R5: each reservation applied at most once, and each confirmed one applied.
    cluster.wait_for_agents(PATIENCE);
    let confirmed_reservations = confirmed[..2].iter().filter(|done| **done).count();
    let applied = unreserve_all(&cluster, "ops", "cpus:0.25;mem:32", 3, "4000");
    assert!(
        (confirmed_reservations..=2).contains(&applied),
        "R5: {applied} reservations of cpus:0.25;mem:32 held after 2 requests ({confirmed:?} \
         confirmed)\n{}",
        cluster.logs()
    );
    let volumes = volume_directories(&cluster, "ops", "v1");
    assert!(
        volumes.len() <= 1,
        "R5: volume v1 created twice: {volumes:?}"
    );
    if confirmed[2] {
        assert_eq!(volumes.len(), 1, "a confirmed volume exists");
    }
    println!(
        "operator commands confirmed {confirmed:?}; {applied} reservation(s) applied, {} volume(s)",
        volumes.len()
    );
}

/// Scenario 2 (E3). The leader is paused (a long GC pause) and cut off from the other
/// masters, which elect a new leader that the agents follow; then it is resumed: it still
/// believes it leads, reaches the agents, and forwards a framework's kill of a running
/// task. The agent must not obey a deposed leader: the task keeps running,
/// and the framework, once it finds the new leader, hears nothing of a kill.
///
/// Whether the resumed leader still believes it leads depends on where in its check-quorum
/// period the pause fell: it steps down at once if no follower had answered since its last
/// check. The test asks it right after the resume (its answer comes after the kill it read
/// first) and tries again, with the then leader, if it had already stepped down.
#[test]
fn a_deposed_leader_is_never_obeyed() {
    const ATTEMPTS_MAX: usize = 4;
    let _timer = Timer::start("2 deposed leader never obeyed");
    let mut cluster = Cluster::start("deposed", &ClusterSpec::default());
    let mut spec = FrameworkSpec::new("fenced", "web");
    // Long enough to stay with the paused leader while the others elect.
    spec.leader_silence = Duration::from_secs(10);
    let mut framework = subscribed_framework(&mut cluster, &spec);
    launch_running(&cluster, &mut framework, &["victim"]);
    let victim_pid = cluster.task_pid("victim").expect("written");
    let victim_agent = agents_of(&cluster, &["victim"])["victim"];
    let mut exercised = None;
    for attempt in 1..=ATTEMPTS_MAX {
        let (old_leader, old_term) = cluster.wait_for_leader(PATIENCE);
        framework.wait_until(
            "the framework to follow the leader",
            PATIENCE,
            |framework| framework.leader() == Some(&(old_leader.clone(), old_term)),
            || cluster.logs(),
        );
        let old_id = cluster.master_id(&old_leader);
        let others: Vec<_> = (1..=cluster.master_count())
            .filter(|id| *id != old_id)
            .map(|id| cluster.master_host(id))
            .collect();
        let old_host = cluster.master_host(old_id);
        // Paused, then cut off from the other masters before they elect: nothing of the new
        // term waits in its sockets when it wakes (agents never tell a deposed leader).
        cluster.master(old_id).pause();
        let paused = Instant::now();
        cluster.fabric().isolate(old_host, &others);
        let (new_leader, new_term) = cluster.wait_for_leader_where(PATIENCE, |candidate, term| {
            candidate != old_leader && term > old_term
        });
        cluster.wait_for_agents(PATIENCE);
        framework.poll();
        let still_following = framework.leader() == Some(&(old_leader.clone(), old_term));
        // Queued in the paused leader's socket: read once its overdue timers have run.
        framework.kill("victim");
        cluster.master(old_id).resume();
        let pause = paused.elapsed();
        let believes_it_leads = cluster.state().is_some_and(|state| {
            state["masters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|answer| {
                    answer["address"].as_str() == Some(old_leader.as_str())
                        && answer["term"].as_u64() == Some(old_term)
                        && answer["leader"].as_str() == Some(old_leader.as_str())
                })
        });
        framework.wait_until(
            "the framework to follow the new leader",
            PATIENCE,
            |framework| {
                framework
                    .leader()
                    .is_some_and(|(_, term)| *term >= new_term)
            },
            || cluster.logs(),
        );
        println!(
            "attempt {attempt}: master {old_id} paused {} ms while {new_leader} was elected \
             for term {new_term}; resumed cut off, it {} it led term {old_term}",
            pause.as_millis(),
            if believes_it_leads {
                "still believed"
            } else {
                "no longer believed"
            }
        );
        cluster.fabric().heal_all();
        if still_following && believes_it_leads {
            exercised = Some((old_leader, old_term));
            break;
        }
    }
    let Some((deposed, deposed_term)) = exercised else {
        panic!(
            "in {ATTEMPTS_MAX} attempts the resumed leader never still believed it led: the \
             scenario could not put a deposed leader in front of the agents\n{}",
            cluster.logs()
        );
    };
    let events = framework.history.of("victim").to_vec();
    assert!(
        events.iter().all(|event| !is_terminal(&event.state)),
        "E3 violated: the agent obeyed the deposed leader of term {deposed_term}: {events:?}\n{}",
        cluster.logs()
    );
    assert!(
        is_running(victim_pid),
        "E3 violated: the victim's process {victim_pid} was killed on the deposed leader's \
         word\n{}",
        cluster.logs()
    );
    let fenced = cluster
        .agent(victim_agent)
        .process
        .log_text()
        .lines()
        .any(|line| {
            line.contains("ignored a command from a deposed leader") && line.contains(&deposed)
        });
    assert!(
        fenced,
        "the deposed leader's kill reached the agent, which must say it ignored it\n{}",
        cluster.logs()
    );

    cluster.wait_for_leader(PATIENCE);
    cluster.wait_for_agents(PATIENCE);
    // The framework still kills the task through the real leader.
    framework.kill("victim");
    framework.wait_for_state("victim", "TASK_KILLED", PATIENCE, || cluster.logs());
    cluster
        .check_tasks(&framework.history)
        .unwrap_or_else(|violation| panic!("{violation}\n{}", cluster.logs()));
}

/// Partitions agent 1 (the only one) from every master until it is marked unreachable and
/// the framework hears its tasks are UNREACHABLE, checking they keep running, then heals
/// and waits until the agent is admitted again. Returns the tasks' pids.
fn partition_agent_and_heal(
    cluster: &mut Cluster,
    framework: &mut FrameworkProcess,
    tasks: &[&str],
) -> Vec<u32> {
    launch_running(cluster, framework, tasks);
    let pids: Vec<u32> = tasks
        .iter()
        .map(|task| cluster.task_pid(task).expect("written"))
        .collect();
    let agent_host = cluster.agent_host(0);
    let masters = cluster.master_hosts();
    let address = cluster.agent_address(0).to_string();
    let cut = Instant::now();
    cluster.fabric().isolate(agent_host, &masters);
    cluster.wait_for("the agent to be marked unreachable", PATIENCE, |state| {
        agent_row(state, &address).is_some_and(|row| row["status"] == "unreachable")
    });
    let marked = cut.elapsed();
    for task in tasks {
        framework.wait_for_state(task, "TASK_UNREACHABLE", PATIENCE, || cluster.logs());
    }
    for pid in &pids {
        assert!(
            is_running(*pid),
            "a task of an unreachable agent keeps running"
        );
    }
    cluster.fabric().heal_all();
    let healed = Instant::now();
    cluster.wait_for_agents(PATIENCE);
    println!(
        "agent marked unreachable {} ms after the cut; admitted again {} ms after the heal",
        marked.as_millis(),
        healed.elapsed().as_millis()
    );
    pids
}

/// Checks that each task is RUNNING again to the framework, the same process, and nothing
/// was killed.
fn assert_running_again(
    cluster: &Cluster,
    framework: &mut FrameworkProcess,
    tasks: &[&str],
    pids: &[u32],
) {
    for task in tasks {
        framework.wait_for_state(task, "TASK_RUNNING", PATIENCE, || cluster.logs());
    }
    for (task, pid) in tasks.iter().zip(pids) {
        assert_eq!(cluster.task_pid(task), Some(*pid), "the same process");
        assert!(is_running(*pid), "task {task} still runs");
        let states: Vec<&str> = framework
            .history
            .of(task)
            .iter()
            .map(|event| event.state.as_str())
            .collect();
        assert!(
            states.ends_with(&["TASK_RUNNING", "TASK_UNREACHABLE", "TASK_RUNNING"]),
            "{task}: {states:?}"
        );
    }
    cluster
        .check_tasks(&framework.history)
        .unwrap_or_else(|violation| panic!("{violation}\n{}", cluster.logs()));
}

/// Scenario 3. An agent is cut off from every master: it is marked unreachable and its
/// tasks go UNREACHABLE (partition-aware: not terminal), while they keep running. Healed,
/// it is admitted again; its tasks were never killed, and the framework, reconciling when
/// its scheduler restarts, hears they are RUNNING, the same processes.
///
/// What the framework hears without restarting is `..._tells_a_connected_framework`.
#[test]
fn a_partitioned_agent_comes_back_with_its_tasks() {
    let _timer = Timer::start("3 agent partitioned and healed");
    let mut cluster = Cluster::start(
        "agentpartition",
        &ClusterSpec {
            agents: 1,
            ..ClusterSpec::default()
        },
    );
    let spec = FrameworkSpec::new("patient", "web");
    let mut framework = subscribed_framework(&mut cluster, &spec);
    let tasks = ["p1", "p2"];
    let pids = partition_agent_and_heal(&mut cluster, &mut framework, &tasks);
    // The scheduler restarts on its checkpoint: it reconciles its tasks with the leader.
    framework.kill_hard();
    let mut restarted_spec = spec.clone();
    restarted_spec.state_dir = Some(framework.state_dir().to_path_buf());
    let mut restarted = cluster.start_framework(cluster.client_host(), &restarted_spec);
    restarted.history = framework.history.clone();
    assert_running_again(&cluster, &mut restarted, &tasks, &pids);
}

/// Scenario 3, as the design promises it: "an unreachable agent that comes back is
/// re-admitted and its tasks resume", and the framework that was told UNREACHABLE is told
/// RUNNING without having to reconnect.
///
/// Regression: the leader used to tell only frameworks whose UNREACHABLE was still
/// unacknowledged, so a connected scheduler (which acknowledges at once) kept seeing
/// UNREACHABLE. Fixed in `handle_reregister_agent` (protocol/src/master/agents.rs); unit
/// test `a_framework_that_acknowledged_unreachable_hears_running_when_the_agent_returns`.
#[test]
fn a_partitioned_agent_comes_back_and_tells_a_connected_framework() {
    let _timer = Timer::start("3b agent partitioned and healed, framework connected");
    let mut cluster = Cluster::start(
        "agentpartition2",
        &ClusterSpec {
            agents: 1,
            ..ClusterSpec::default()
        },
    );
    let mut framework = subscribed_framework(&mut cluster, &FrameworkSpec::new("patient", "web"));
    let tasks = ["p1", "p2"];
    let pids = partition_agent_and_heal(&mut cluster, &mut framework, &tasks);
    assert_running_again(&cluster, &mut framework, &tasks, &pids);
}

/// A launch accepted on an agent the leader cannot reach (the partition started, the agent
/// is not yet marked unreachable) must end for its framework once the agent is back: the
/// task runs, or the framework hears it is lost. Found by the nemesis.
///
/// Regression: the leader used to drop the pending launch when the agent re-registered
/// without it, leaving the task UNREACHABLE (then UNKNOWN) for good. It is now staging
/// again and resent (`handle_reregister_agent`, protocol/src/master/agents.rs); unit test
/// `a_launch_lost_to_an_unreachable_agent_is_resent_when_the_agent_returns`.
#[test]
fn a_launch_to_a_partitioned_agent_ends_for_its_framework() {
    let _timer = Timer::start("3c launch to a partitioned agent");
    let mut cluster = Cluster::start(
        "strandedlaunch",
        &ClusterSpec {
            agents: 1,
            ..ClusterSpec::default()
        },
    );
    let mut framework = subscribed_framework(&mut cluster, &FrameworkSpec::new("stranded", "web"));
    let agent_host = cluster.agent_host(0);
    let masters = cluster.master_hosts();
    let address = cluster.agent_address(0).to_string();
    cluster.fabric().isolate(agent_host, &masters);
    framework.launch("stranded", TASK_RESOURCES, &long_task());
    cluster.wait_for("the agent to be marked unreachable", PATIENCE, |state| {
        agent_row(state, &address).is_some_and(|row| row["status"] == "unreachable")
    });
    cluster.fabric().heal_all();
    cluster.wait_for_agents(PATIENCE);
    framework.wait_until(
        "the stranded task to run or end",
        PATIENCE,
        |framework| {
            framework
                .history
                .latest("stranded")
                .is_some_and(|event| event.state == "TASK_RUNNING" || is_terminal(&event.state))
        },
        || cluster.logs(),
    );
    cluster
        .check_tasks(&framework.history)
        .unwrap_or_else(|violation| panic!("{violation}\n{}", cluster.logs()));
}

/// Scenario 4 (A3). An agent process restarts while its tasks run: stopped cleanly
/// (SIGTERM), then crashed (`kill -9`). Each time its executors reconnect, it registers
/// again, and every task is still known and RUNNING, the same process; no status says
/// otherwise.
#[test]
fn an_agent_restart_keeps_its_running_tasks() {
    let _timer = Timer::start("4 agent process restarts");
    let mut cluster = Cluster::start(
        "agentrestart",
        &ClusterSpec {
            agents: 1,
            ..ClusterSpec::default()
        },
    );
    let mut framework = subscribed_framework(&mut cluster, &FrameworkSpec::new("steady", "web"));
    let tasks = ["r1", "r2", "r3"];
    launch_running(&cluster, &mut framework, &tasks);
    let pids: Vec<u32> = tasks
        .iter()
        .map(|task| cluster.task_pid(task).expect("written"))
        .collect();

    for crash in [false, true] {
        let before = cluster.agent(0).registrations();
        let restarted = Instant::now();
        if crash {
            cluster.kill_agent(0);
            cluster.start_agent(0);
        } else {
            cluster.restart_agent_cleanly(0);
        }
        cluster.wait_for_reregistration(0, before, PATIENCE);
        let back = restarted.elapsed();
        assert_quiet(&cluster, &mut framework, &tasks, QUIET_WINDOW);
        for (task, pid) in tasks.iter().zip(&pids) {
            assert!(
                is_running(*pid),
                "A3: task {task}'s process {pid} survived the agent"
            );
            assert_eq!(
                framework
                    .history
                    .latest(task)
                    .map(|event| event.state.as_str()),
                Some("TASK_RUNNING")
            );
        }
        println!(
            "agent {} and registered again after {} ms with its {} tasks",
            if crash {
                "killed -9"
            } else {
                "stopped (SIGTERM)"
            },
            back.as_millis(),
            tasks.len()
        );
    }
    // Still in the agent's hands: a kill goes through it.
    framework.kill("r1");
    framework.wait_for_state("r1", "TASK_KILLED", PATIENCE, || cluster.logs());
    cluster
        .check_tasks(&framework.history)
        .unwrap_or_else(|violation| panic!("{violation}\n{}", cluster.logs()));
}

/// Scenario 5. A host reboot: the agent, its executors and tasks all die, and the agent
/// starts on a new boot id. Its tasks are reported LOST (agent restarted), and nothing of
/// them runs (A1); the agent keeps its id, its reservations and its volume with the data.
#[test]
fn a_host_reboot_loses_tasks_but_keeps_the_agent_reservations_and_volumes() {
    let _timer = Timer::start("5 host reboot");
    let mut cluster = Cluster::start(
        "reboot",
        &ClusterSpec {
            agents: 1,
            ..ClusterSpec::default()
        },
    );
    let reserve = cluster.berth(
        &["reserve"],
        &["--role", "ops", "--resources", "cpus:0.5;mem:64"],
    );
    assert!(reserve.status.success(), "{}", output_text(&reserve));
    let write = cluster.berth(
        &["run"],
        &[
            "--role",
            "ops",
            "--cpus",
            "0.1",
            "--mem",
            "16",
            "--volume",
            "keep:16:keep",
            "--",
            "echo survived > keep/data",
        ],
    );
    assert!(write.status.success(), "{}", output_text(&write));
    let mut framework = subscribed_framework(&mut cluster, &FrameworkSpec::new("rebooted", "web"));
    let tasks = ["b1", "b2"];
    launch_running(&cluster, &mut framework, &tasks);
    let pids: Vec<u32> = tasks
        .iter()
        .map(|task| cluster.task_pid(task).expect("written"))
        .collect();
    let address = cluster.agent_address(0).to_string();
    let state = cluster.wait_for_agents(PATIENCE);
    let row = agent_row(&state, &address).expect("listed").clone();

    let before = cluster.agent(0).registrations();
    cluster.reboot_agent(0);
    let rebooted = Instant::now();
    let state = cluster.wait_for_reregistration(0, before, PATIENCE);
    for task in tasks {
        framework.wait_for_state(task, "TASK_LOST", PATIENCE, || cluster.logs());
        let reason = framework
            .history
            .latest(task)
            .and_then(|event| event.reason.clone());
        assert_eq!(reason.as_deref(), Some("AgentRestarted"), "{task}");
    }
    let lost_after = rebooted.elapsed();
    for pid in pids {
        assert!(!is_running(pid), "A1: a LOST task's process {pid} is gone");
    }
    let row_after = agent_row(&state, &address).expect("still listed");
    assert_eq!(row_after["id"], row["id"], "the agent keeps its id");
    let data = cluster.agent_work_dir(0).join("volumes/ops/keep/data");
    assert_eq!(
        std::fs::read_to_string(&data).ok().as_deref(),
        Some("survived\n"),
        "R4: the volume's data survives the reboot"
    );
    let read = cluster.berth(
        &["run"],
        &[
            "--role",
            "ops",
            "--cpus",
            "0.1",
            "--mem",
            "16",
            "--volume",
            "keep:16:keep",
            "--",
            "grep -qx survived keep/data",
        ],
    );
    assert!(
        read.status.success(),
        "a task on the kept volume reads the data: {}",
        output_text(&read)
    );
    launch_running(&cluster, &mut framework, &["after-reboot"]);
    cluster
        .check_tasks(&framework.history)
        .unwrap_or_else(|violation| panic!("{violation}\n{}", cluster.logs()));
    assert_eq!(
        unreserve_all(&cluster, "ops", "cpus:0.5;mem:64", 2, "3000"),
        1,
        "the reservation survives the reboot, once"
    );
    println!(
        "tasks reported LOST {} ms after the reboot",
        lost_after.as_millis()
    );
}

/// Scenario 6 (F1). A scheduler crashes and a second instance, on another host with the
/// first one's checkpoint, takes the framework over within its failover timeout: the tasks
/// keep running and obey it. A third instance replaces it while it runs: the second is told
/// so and stops. Then the last scheduler dies for good and the leader is killed while the
/// failover timeout runs: the tasks outlive the scheduler for at least the timeout (a new
/// leader re-arms it in full), and are then killed and the framework removed.
#[test]
fn a_scheduler_fails_over_and_its_failover_timeout_expires() {
    let _timer = Timer::start("6 scheduler failover and failover timeout");
    let failover_timeout = Duration::from_secs(6);
    let mut cluster = Cluster::start("schedfailover", &ClusterSpec::default());
    let mut spec = FrameworkSpec::new("failing", "web");
    spec.failover_timeout = failover_timeout;
    let mut first = subscribed_framework(&mut cluster, &spec);
    launch_running(&cluster, &mut first, &["svc", "doomed"]);
    let framework_id = first.framework_id().expect("subscribed").to_string();
    let svc_pid = cluster.task_pid("svc").expect("written");
    let doomed_pid = cluster.task_pid("doomed").expect("written");

    // A crash, and a second instance elsewhere with the first one's checkpoint.
    first.kill_hard();
    let second_host = cluster.add_host("f2");
    let mut second_spec = spec.clone();
    second_spec.framework = Some(framework_id.clone());
    second_spec.state_dir = Some(first.state_dir().to_path_buf());
    let mut second = cluster.start_framework(second_host, &second_spec);
    second.wait_until(
        "the second scheduler to subscribe",
        PATIENCE,
        |framework| {
            framework.framework_id() == Some(framework_id.as_str()) && framework.leader().is_some()
        },
        || cluster.logs(),
    );
    cluster.wait_for("the framework connected again", PATIENCE, |state| {
        framework_row(state, &framework_id).is_some_and(|row| row["connected"] == true)
    });
    assert!(
        is_running(svc_pid) && is_running(doomed_pid),
        "the tasks outlive the crash"
    );
    second.kill("doomed");
    second.wait_for_state("doomed", "TASK_KILLED", PATIENCE, || cluster.logs());
    assert!(
        !is_running(doomed_pid),
        "A1: a KILLED task's process is gone"
    );

    // A hot handover: the running second scheduler is replaced by a third.
    let mut third_spec = spec.clone();
    third_spec.framework = Some(framework_id.clone());
    let mut third = cluster.start_framework(cluster.client_host(), &third_spec);
    third.wait_until(
        "the third scheduler to subscribe",
        PATIENCE,
        |framework| {
            framework.framework_id() == Some(framework_id.as_str()) && framework.leader().is_some()
        },
        || cluster.logs(),
    );
    second.wait_until(
        "the second scheduler to hear it was replaced",
        PATIENCE,
        FrameworkProcess::replaced,
        || cluster.logs(),
    );
    let deadline = Instant::now() + PATIENCE;
    while second.is_running() {
        assert!(Instant::now() < deadline, "a replaced scheduler stops");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The last scheduler dies; the leader dies while the failover timeout runs.
    third.kill_hard();
    let gone = Instant::now();
    cluster.wait_for("the framework marked disconnected", PATIENCE, |state| {
        framework_row(state, &framework_id).is_some_and(|row| row["connected"] == false)
    });
    let disconnected = gone.elapsed();
    let (leader, term) = cluster.wait_for_leader(PATIENCE);
    cluster.kill_master(cluster.master_id(&leader));
    cluster.wait_for_leader_where(PATIENCE, |candidate, candidate_term| {
        candidate != leader && candidate_term > term
    });
    let earliest = gone + failover_timeout;
    let deadline = Instant::now() + PATIENCE + failover_timeout;
    let mut killed_after = None;
    while killed_after.is_none() {
        let state = cluster.state();
        if !is_running(svc_pid) {
            let now = Instant::now();
            assert!(
                now >= earliest,
                "F1 violated: the task was killed {} ms after its scheduler died, before the \
                 failover timeout of {} ms\n{}",
                gone.elapsed().as_millis(),
                failover_timeout.as_millis(),
                cluster.logs()
            );
            killed_after = Some(gone.elapsed());
        } else if let Some(state) = state {
            assert!(
                framework_row(&state, &framework_id).is_some(),
                "the framework is removed only with its tasks: {state}"
            );
        }
        assert!(
            Instant::now() < deadline,
            "the failover timeout never expired\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.wait_for("the framework removed", PATIENCE, |state| {
        framework_row(state, &framework_id).is_none()
    });
    println!(
        "scheduler died: disconnected after {} ms, tasks killed after {} ms (failover timeout \
         {} ms, leader killed in between)",
        disconnected.as_millis(),
        killed_after.unwrap_or_default().as_millis(),
        failover_timeout.as_millis()
    );
}

/// Scenario 7 (R4, R5). A reservation and a persistent volume survive an agent restart and
/// a master failover, unchanged (not lost, not applied twice), and the volume's data is
/// intact: a later task of the role reads it. Another role's task never sees it (R3).
#[test]
fn a_reservation_and_a_volume_survive_restarts_and_failovers() {
    let _timer = Timer::start("7 reservation and volume survive");
    let mut cluster = Cluster::start(
        "volume",
        &ClusterSpec {
            agents: 1,
            ..ClusterSpec::default()
        },
    );
    let reserve = cluster.berth(
        &["reserve"],
        &["--role", "ops", "--resources", "cpus:0.5;mem:64"],
    );
    assert!(reserve.status.success(), "{}", output_text(&reserve));
    let create = cluster.berth(
        &["volume", "create"],
        &[
            "--role", "ops", "--id", "data", "--size", "32", "--path", "data",
        ],
    );
    assert!(create.status.success(), "{}", output_text(&create));
    let write = cluster.berth(
        &["run"],
        &[
            "--role",
            "ops",
            "--cpus",
            "0.1",
            "--mem",
            "16",
            "--volume",
            "data:32:data",
            "--",
            "echo precious > data/file",
        ],
    );
    assert!(write.status.success(), "{}", output_text(&write));
    let registrations = cluster.agent(0).registrations();
    cluster.kill_agent(0);
    cluster.start_agent(0);
    cluster.wait_for_reregistration(0, registrations, PATIENCE);

    let (leader, term) = cluster.wait_for_leader(PATIENCE);
    let leader_id = cluster.master_id(&leader);
    cluster.kill_master(leader_id);
    cluster.wait_for_leader_where(PATIENCE, |candidate, candidate_term| {
        candidate != leader && candidate_term > term
    });
    cluster.wait_for_agents(PATIENCE);
    cluster.start_master(leader_id);
    cluster.wait_for_leader(PATIENCE);

    let file = cluster.agent_work_dir(0).join("volumes/ops/data/file");
    assert_eq!(
        std::fs::read_to_string(&file).ok().as_deref(),
        Some("precious\n"),
        "R4"
    );
    let read = cluster.berth(
        &["run"],
        &[
            "--role",
            "ops",
            "--cpus",
            "0.1",
            "--mem",
            "16",
            "--volume",
            "data:32:data",
            "--",
            "grep -qx precious data/file",
        ],
    );
    assert!(
        read.status.success(),
        "the volume, offered back to ops, holds the data: {}",
        output_text(&read)
    );
    // R3: another role gets a volume of its own, never ops's.
    let other = cluster.berth(
        &["run"],
        &[
            "--role",
            "web",
            "--cpus",
            "0.1",
            "--mem",
            "16",
            "--volume",
            "data:16:data",
            "--",
            "test ! -e data/file",
        ],
    );
    assert!(
        other.status.success(),
        "web's task does not see ops's volume: {}",
        output_text(&other)
    );
    assert_eq!(
        unreserve_all(&cluster, "ops", "cpus:0.5;mem:64", 2, "3000"),
        1,
        "R5: the reservation is held once, after an agent restart and a master failover"
    );
    assert_eq!(volume_directories(&cluster, "ops", "data").len(), 1);
    assert_eq!(
        std::fs::read_to_string(&file).ok().as_deref(),
        Some("precious\n"),
        "R4"
    );
}

/// Polls the cluster and drives `load` until `accept` approves a state.
fn wait_under_load(
    cluster: &mut Cluster,
    framework: &mut FrameworkProcess,
    load: &mut SteadyLoad,
    what: &str,
    mut accept: impl FnMut(&serde_json::Value) -> bool,
) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        load.tick(framework);
        if cluster.state().is_some_and(|state| accept(&state)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited {PATIENCE:?} for {what}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Drives `load` for `duration` while reading the cluster's state (every read is checked).
fn soak(
    cluster: &mut Cluster,
    framework: &mut FrameworkProcess,
    load: &mut SteadyLoad,
    duration: Duration,
) {
    let end = Instant::now() + duration;
    while Instant::now() < end {
        load.tick(framework);
        cluster.state();
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Scenario 8. A rolling restart of every master, then every agent, one at a time
/// (SIGTERM, start, wait until the cluster is whole again, let the load run a while), under
/// a steady stream of short tasks. Every task that reached an agent runs to completion:
/// none is lost, failed or run twice.
///
/// This variant counts and prints launches lost as their agent restarts instead of failing
/// on them (protocol bug 2, fixed); the strict variant below, which fails on them, runs in
/// CI. Run this one to see what a regression loses.
#[test]
#[ignore = "the strict variant runs in CI; this one counts lost launches instead of failing"]
fn a_rolling_restart_under_load_loses_nothing() {
    rolling_restart_scenario(false);
}

/// Scenario 8, strict: as above, but a launch lost as its agent restarts fails it.
///
/// It found protocol bug 2 (in about one run in seven, a launch that reached its agent as
/// the agent stopped was dropped from the leader's view when the agent re-registered, and
/// its framework was told nothing); fixed, see RELIABILITY.md.
#[test]
fn a_rolling_restart_under_load_loses_nothing_strict() {
    rolling_restart_scenario(true);
}

fn rolling_restart_scenario(strict: bool) {
    const SOAK: Duration = Duration::from_secs(2);
    // A launch that reached no agent this long after the load stopped never will.
    const LAUNCH_PATIENCE: Duration = Duration::from_secs(10);
    let _timer = Timer::start("8 rolling restart under load");
    let mut cluster = Cluster::start("rolling", &ClusterSpec::default());
    let mut framework = subscribed_framework(&mut cluster, &FrameworkSpec::new("load", "web"));
    let mut load = SteadyLoad::new("load", Duration::from_millis(250), 1, 8);
    let masters: Vec<String> = cluster.master_addresses().to_vec();
    let agents: Vec<String> = (0..cluster.agent_count())
        .map(|index| cluster.agent_address(index).to_string())
        .collect();
    let whole = move |state: &serde_json::Value| {
        agreed_leader(state, &masters).is_some()
            && agents
                .iter()
                .all(|address| agent_row(state, address).is_some_and(registered))
    };
    soak(&mut cluster, &mut framework, &mut load, SOAK);
    let started = Instant::now();
    let mut leaders_restarted = 0;
    for id in 1..=cluster.master_count() {
        let (leader, _) = cluster.wait_for_leader(PATIENCE);
        leaders_restarted += usize::from(cluster.master_id(&leader) == id);
        cluster.restart_master_cleanly(id);
        wait_under_load(
            &mut cluster,
            &mut framework,
            &mut load,
            "the cluster whole again",
            &whole,
        );
        soak(&mut cluster, &mut framework, &mut load, SOAK);
    }
    for index in 0..cluster.agent_count() {
        let before = cluster.agent(index).registrations();
        cluster.restart_agent_cleanly(index);
        let deadline = Instant::now() + PATIENCE;
        while cluster.agent(index).registrations() <= before {
            assert!(
                Instant::now() < deadline,
                "agent {} did not come back",
                index + 1
            );
            load.tick(&mut framework);
            std::thread::sleep(Duration::from_millis(100));
        }
        wait_under_load(
            &mut cluster,
            &mut framework,
            &mut load,
            "the cluster whole again",
            &whole,
        );
        soak(&mut cluster, &mut framework, &mut load, SOAK);
    }
    let rolled = started.elapsed();
    let launched = load.launched().len();
    let never_ran = |cluster: &Cluster, framework: &FrameworkProcess, task: &str| {
        !framework
            .history
            .latest(task)
            .is_some_and(|event| is_terminal(&event.state))
            && cluster.task_runs(task).is_empty()
    };
    framework.wait_until(
        "every task to end",
        SETTLE_PATIENCE,
        |framework| {
            load.launched().iter().all(|task| {
                framework
                    .history
                    .latest(task)
                    .is_some_and(|event| is_terminal(&event.state))
                    || (started.elapsed() > rolled + LAUNCH_PATIENCE
                        && never_ran(&cluster, framework, task))
            })
        },
        || cluster.logs(),
    );
    let settled = started.elapsed() - rolled;
    let lost_launches: Vec<&String> = load
        .launched()
        .iter()
        .filter(|task| never_ran(&cluster, &framework, task))
        .collect();
    let outcomes = load.outcomes(&framework);
    println!(
        "rolling restart of 3 masters (the leader among them {leaders_restarted} time(s)) and 2 \
         agents: {} ms, {launched} tasks launched, the last ended {} ms later: {outcomes:?}; \
         launches lost as their agent restarted: {lost_launches:?}",
        rolled.as_millis(),
        settled.as_millis()
    );
    cluster
        .check_tasks(&framework.history)
        .unwrap_or_else(|violation| panic!("{violation}\n{}", cluster.logs()));
    if strict {
        assert!(
            lost_launches.is_empty(),
            "launches lost as their agent restarted: {lost_launches:?}\n{}",
            framework.describe()
        );
    }
    let unfinished: Vec<&String> = load
        .launched()
        .iter()
        .filter(|task| !lost_launches.contains(task))
        .filter(|task| {
            framework
                .history
                .latest(task)
                .is_none_or(|event| event.state != "TASK_FINISHED")
        })
        .collect();
    assert!(
        unfinished.is_empty(),
        "every task finished; these did not: {unfinished:?}: {outcomes:?}\n{}",
        framework.describe()
    );
    assert!(
        leaders_restarted >= 1,
        "the leader was among the masters restarted"
    );
}

/// Scenario 9. A seeded random nemesis (kills, pauses, partitions of masters and agents,
/// one-way cuts, packet loss, agent restarts and host reboots) under a steady load for
/// `BERTH_NEMESIS_SECS` (default 25 s), then every fault healed and every node back. The
/// cluster converges (one leader, every agent registered, every task RUNNING or ended, a
/// new task runs), every state read during and after kept E1 and E2, and the framework's
/// view keeps A1, A2 and R5. A task that was RUNNING ends LOST only if its host rebooted.
///
/// This variant counts and prints lost launches and stale updates after a reconciliation
/// instead of failing on them; the strict variant below, which fails on them, runs in CI.
#[test]
#[ignore = "the strict variant runs in CI; this one counts lost launches instead of failing"]
fn a_random_nemesis_then_convergence() {
    nemesis_scenario(false);
}

/// Scenario 9, strict: as above, but a launch lost with an unreachable agent, or a task
/// whose updates go back after a reconciliation, fails it.
///
/// It found protocol bugs 2, 3 and 4 (launches lost with an unreachable agent or across a
/// leader change, left UNKNOWN for good; a stale update passed on after a reconciliation,
/// seen with `BERTH_NEMESIS_SEED=20261129 BERTH_NEMESIS_SECS=240`); all fixed, see
/// RELIABILITY.md.
#[test]
fn a_random_nemesis_strict() {
    nemesis_scenario(true);
}

fn nemesis_scenario(strict: bool) {
    let _timer = Timer::start("9 random nemesis");
    let config = NemesisConfig::from_environment(Duration::from_secs(25));
    println!(
        "nemesis seed {} for {} s (replay: BERTH_NEMESIS_SEED={} BERTH_NEMESIS_SECS={})",
        config.seed,
        config.duration.as_secs(),
        config.seed,
        config.duration.as_secs()
    );
    let mut cluster = Cluster::start("nemesis", &ClusterSpec::default());
    let mut spec = FrameworkSpec::new("chaos", "web");
    spec.leader_silence = Duration::from_secs(3);
    let mut framework = subscribed_framework(&mut cluster, &spec);
    launch_running(&cluster, &mut framework, &["long-1", "long-2", "long-3"]);
    let mut load = SteadyLoad::new("short", Duration::from_millis(500), 2, 8);
    let mut nemesis = Nemesis::new(config, &mut cluster);
    let journal = |nemesis: &Nemesis| nemesis.journal().join("\n");
    while !nemesis.finished() {
        let leader = cluster.state().and_then(|state| {
            let leader = state["leader"].as_str()?.to_string();
            Some(cluster.master_id(&leader))
        });
        nemesis.step(&mut cluster, leader);
        load.tick(&mut framework);
        std::thread::sleep(Duration::from_millis(100));
    }
    nemesis.heal_all(&mut cluster);
    cluster.revive_all();
    let healed = Instant::now();
    println!(
        "nemesis: {} faults injected:\n{}",
        nemesis.injected(),
        journal(&nemesis)
    );

    // Convergence: one leader, every agent back, every task settled.
    let masters: Vec<String> = cluster.master_addresses().to_vec();
    let agents: Vec<String> = (0..cluster.agent_count())
        .map(|index| cluster.agent_address(index).to_string())
        .collect();
    let state = cluster.wait_for(
        "convergence after the nemesis",
        Duration::from_secs(60),
        |state| {
            agreed_leader(state, &masters).is_some()
                && agents
                    .iter()
                    .all(|address| agent_row(state, address).is_some_and(registered))
        },
    );
    let converged = healed.elapsed();
    let agent_ids: BTreeMap<String, usize> = agents
        .iter()
        .enumerate()
        .filter_map(|(index, address)| {
            Some((
                agent_row(&state, address)?["id"].as_str()?.to_string(),
                index,
            ))
        })
        .collect();
    let long = ["long-1", "long-2", "long-3"];
    // A launch lost on its way to an agent (with an unreachable agent, or with a deposed
    // leader) is answered UNREACHABLE or UNKNOWN until its agent re-registers without it,
    // then DROPPED. Such a task never ran anywhere. The strict run waits for the DROPPED;
    // the default run counts and reports it, not waiting.
    let stranded = |cluster: &Cluster, framework: &FrameworkProcess, task: &str| {
        let events = framework.history.of(task);
        events.last().is_some_and(|event| {
            matches!(event.state.as_str(), "TASK_UNREACHABLE" | "TASK_UNKNOWN")
        }) && events
            .iter()
            .all(|event| !matches!(event.state.as_str(), "TASK_STARTING" | "TASK_RUNNING"))
            && cluster.task_runs(task).is_empty()
    };
    framework.wait_until(
        "every short task to end and every long one to settle",
        SETTLE_PATIENCE,
        |framework| {
            load.launched().iter().all(|task| {
                framework
                    .history
                    .latest(task)
                    .is_some_and(|event| is_terminal(&event.state))
                    || (!strict && stranded(&cluster, framework, task))
            }) && long.iter().all(|task| {
                framework
                    .history
                    .latest(task)
                    .is_some_and(|event| event.state == "TASK_RUNNING" || is_terminal(&event.state))
            })
        },
        || format!("{}\nnemesis:\n{}", cluster.logs(), journal(&nemesis)),
    );
    let stranded_tasks: Vec<&String> = load
        .launched()
        .iter()
        .filter(|task| stranded(&cluster, &framework, task))
        .collect();
    let failed = |violation: String| -> ! {
        panic!(
            "{violation}\nseed {}\n{}\n{}",
            config.seed,
            journal(&nemesis),
            cluster.logs()
        )
    };
    let stale_after_reconciliation = if strict {
        cluster
            .check_tasks(&framework.history)
            .unwrap_or_else(|violation| failed(violation));
        if !stranded_tasks.is_empty() {
            failed(format!(
                "launches lost with an unreachable agent, never ended: {stranded_tasks:?}"
            ));
        }
        Vec::new()
    } else {
        let stale = framework
            .history
            .check_order_but_stale_after_reconciliation()
            .unwrap_or_else(|violation| failed(violation));
        cluster
            .check_processes(&framework.history)
            .unwrap_or_else(|violation| failed(violation));
        stale
    };
    // Nothing that ran is lost unless its host rebooted while it ran.
    let mut lost = Vec::new();
    for (task, events) in framework.history.tasks() {
        let Some(last) = events.last() else { continue };
        let Some(running) = events.iter().find(|event| event.state == "TASK_RUNNING") else {
            continue;
        };
        let agent = running
            .agent
            .as_ref()
            .and_then(|id| agent_ids.get(id))
            .copied();
        // A reboot after the task was first heard of (its RUNNING may arrive late).
        let first_heard = events[0].at;
        let rebooted = agent.is_some_and(|agent| {
            nemesis
                .reboots()
                .iter()
                .any(|(index, at)| *index == agent && *at + Duration::from_secs(2) >= first_heard)
        });
        let ended_badly = is_terminal(&last.state) && last.state != "TASK_FINISHED";
        if ended_badly && !rebooted {
            lost.push(format!("{task}: {events:?}"));
        }
        if last.state == "TASK_RUNNING" {
            let pid = cluster.task_pid(task);
            assert!(
                pid.is_some_and(is_running),
                "task {task} is RUNNING to its framework but its process ({pid:?}) is gone\nseed {}",
                config.seed
            );
        }
    }
    assert!(
        lost.is_empty(),
        "tasks that ran were lost without a reboot (seed {}):\n{}\nnemesis:\n{}\n{}",
        config.seed,
        lost.join("\n"),
        journal(&nemesis),
        cluster.logs()
    );
    // Liveness: a new task runs.
    launch_running(&cluster, &mut framework, &["after-nemesis"]);
    println!(
        "converged {} ms after healing; {} states checked (E1, E2); tasks: {:?}; launches \
         lost with an unreachable agent (never ran): {stranded_tasks:?}; stale updates after a \
         reconciliation: {stale_after_reconciliation:?}; leaders by term: {:?}",
        converged.as_millis(),
        cluster.observer().states_checked(),
        load.outcomes(&framework),
        cluster.observer().leaders()
    );
}
