//! A Berth cluster on a [`Fabric`]: masters and agents as real `berth` processes, each on a
//! host of its own, and a `client` host from which the test asks `berth state`, runs the
//! operator commands and starts frameworks.
//!
//! Every `berth state --json` the cluster reads goes through its [`Observer`], so an
//! invariant broken at any moment a test looks is a failure with the evidence and every
//! node's log.
//!
//! The nodes run with their default timing: the binary has no flags for ping intervals or
//! timeouts, so a partitioned agent is marked unreachable after 5 missed pings (about 5 s),
//! an agent looks for a new leader after 5 s without a ping, and executors have 2 s to
//! reconnect to a restarted agent. The frameworks of [`FrameworkProcess`] choose their own
//! failover timeout and leader-silence timeout.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::fabric::{Fabric, HostId};
use super::framework::{FrameworkProcess, FrameworkSpec};
use super::invariants::{Observer, TaskHistory, is_terminal};
use super::process::{NodeProcess, ProcessState, is_running};
use crate::{TEST_CLUSTER, TestDirectory, berth_binary, write_secret_file};

/// The port every master listens on, each at its own host's address.
pub const MASTER_PORT: u16 = 5050;
/// The port every agent listens on.
pub const AGENT_PORT: u16 = 5051;
/// How often the harness asks the masters while it waits.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long `berth state` waits for the masters' answers.
const STATE_TIMEOUT_MS: &str = "700";
/// How many lines of each log a failure message shows.
const LOG_LINES_SHOWN: usize = 40;
/// The logs every node writes: info, and the notes of stale terms (E3) at debug.
const NODE_LOG_FILTER: &str = "info,berth_node::driver::notes=debug";
/// How long a SIGTERM'd node may take to stop before it is killed.
const STOP_PATIENCE: Duration = Duration::from_secs(5);

/// What a cluster is made of.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// How many masters: 1, 3 or 5.
    pub masters: usize,
    /// How many agents.
    pub agents: usize,
    /// What each agent offers.
    pub agent_resources: String,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            masters: 3,
            agents: 2,
            agent_resources: "cpus:2;mem:1024;disk:1024".to_string(),
        }
    }
}

/// An agent node: its process, address and work directory, and the boot it is on.
#[derive(Debug)]
pub struct AgentNode {
    /// The `berth agent` process.
    pub process: NodeProcess,
    /// Where the masters reach it.
    pub address: String,
    /// Its work directory.
    pub work_dir: PathBuf,
    /// Its host's boot number: a reboot makes a new one (`--boot-id boot-<n>`).
    pub boot: u32,
}

impl AgentNode {
    /// How many times its log says it registered with a leader: a test that restarts it
    /// waits for the count to grow.
    pub fn registrations(&self) -> usize {
        self.process
            .log_text()
            .lines()
            .filter(|line| line.contains("registered with the leader"))
            .count()
    }
}

/// One run of a task, found in an agent's sandboxes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRun {
    /// The agent's index.
    pub agent: usize,
    /// The run's sandbox.
    pub sandbox: PathBuf,
    /// The pid the task wrote (see [`long_task`]), once it did.
    pub pid: Option<u32>,
}

/// A task command that writes its pid to `pid` in its sandbox, then sleeps for `seconds`
/// as that same process; the harness finds the process through the file.
pub fn task_command(seconds: u64) -> String {
    format!("echo $$ > pid; exec sleep {seconds}")
}

/// A task that runs until killed (an hour).
pub fn long_task() -> String {
    task_command(3600)
}

/// A cluster. Dropping it kills every node, then every process left on its hosts
/// (executors, tasks, frameworks), deletes the namespaces and removes the directory.
#[derive(Debug)]
pub struct Cluster {
    // Declared first: dropped (killed) before the fabric and the directory go.
    masters: Vec<NodeProcess>,
    agents: Vec<AgentNode>,
    master_addresses: Vec<String>,
    client: HostId,
    secret_file: PathBuf,
    observer: Observer,
    fabric: Fabric,
    directory: TestDirectory,
}

impl Cluster {
    /// Creates the hosts (`m1`.., `a1`.., `client`), starts the masters, waits for a leader,
    /// starts the agents and waits until each is admitted by it.
    pub fn start(name: &str, spec: &ClusterSpec) -> Cluster {
        let mut fabric = Fabric::new(name);
        let directory = TestDirectory::new(&format!("netns-{name}"));
        let secret_file = directory.path().join("cluster-secret");
        write_secret_file(&secret_file);
        let master_hosts: Vec<HostId> = (1..=spec.masters)
            .map(|id| fabric.add_host(&format!("m{id}")))
            .collect();
        let agent_hosts: Vec<HostId> = (1..=spec.agents)
            .map(|number| fabric.add_host(&format!("a{number}")))
            .collect();
        let client = fabric.add_host("client");
        let master_addresses: Vec<String> = master_hosts
            .iter()
            .map(|host| format!("{}:{MASTER_PORT}", fabric.host(*host).address))
            .collect();
        let members = master_addresses
            .iter()
            .enumerate()
            .map(|(index, address)| format!("{}={address}", index + 1))
            .collect::<Vec<_>>()
            .join(",");
        let binary = berth_binary();
        let masters = master_hosts
            .iter()
            .enumerate()
            .map(|(index, host)| {
                let id = index + 1;
                let data_dir = directory.path().join(format!("master-{id}"));
                let args = os_args(&[
                    "master",
                    "--id",
                    &id.to_string(),
                    "--masters",
                    &members,
                    "--data-dir",
                    path_text(&data_dir),
                    "--cluster",
                    TEST_CLUSTER,
                    "--secret-file",
                    path_text(&secret_file),
                ]);
                let log = directory.path().join(format!("master-{id}.log"));
                let mut process =
                    NodeProcess::new(&format!("master {id}"), *host, &binary, args, log);
                process.set_env("RUST_LOG", NODE_LOG_FILTER);
                process
            })
            .collect();
        let agents = agent_hosts
            .iter()
            .enumerate()
            .map(|(index, host)| {
                let number = index + 1;
                let address = format!("{}:{AGENT_PORT}", fabric.host(*host).address);
                let work_dir = directory.path().join(format!("agent-{number}"));
                let args = os_args(&[
                    "agent",
                    "--masters",
                    &master_addresses.join(","),
                    "--listen",
                    &address,
                    "--work-dir",
                    path_text(&work_dir),
                    "--resources",
                    &spec.agent_resources,
                    "--hostname",
                    &format!("host-a{number}"),
                    "--cluster",
                    TEST_CLUSTER,
                    "--secret-file",
                    path_text(&secret_file),
                    "--boot-id",
                    "boot-1",
                ]);
                let log = directory.path().join(format!("agent-{number}.log"));
                let mut process =
                    NodeProcess::new(&format!("agent {number}"), *host, &binary, args, log);
                process.set_env("RUST_LOG", NODE_LOG_FILTER);
                AgentNode {
                    process,
                    address,
                    work_dir,
                    boot: 1,
                }
            })
            .collect();
        let mut cluster = Cluster {
            masters,
            agents,
            master_addresses,
            client,
            secret_file,
            observer: Observer::new(),
            fabric,
            directory,
        };
        for master in &mut cluster.masters {
            master.start(&cluster.fabric);
        }
        cluster.wait_for_leader(Duration::from_secs(30));
        for agent in &mut cluster.agents {
            agent.process.start(&cluster.fabric);
        }
        cluster.wait_for_agents(Duration::from_secs(30));
        cluster
    }

    /// The network, to inject faults.
    pub fn fabric(&mut self) -> &mut Fabric {
        &mut self.fabric
    }

    /// The test's directory (data, work directories, logs).
    pub fn directory(&self) -> &Path {
        self.directory.path()
    }

    /// The cluster secret.
    pub fn secret_file(&self) -> &Path {
        &self.secret_file
    }

    /// Every master's address, by id - 1.
    pub fn master_addresses(&self) -> &[String] {
        &self.master_addresses
    }

    /// The id (1..) of the master at `address`.
    pub fn master_id(&self, address: &str) -> usize {
        self.master_addresses
            .iter()
            .position(|known| known == address)
            .map(|index| index + 1)
            .unwrap_or_else(|| panic!("{address} is not a master"))
    }

    /// Master `id`'s host.
    pub fn master_host(&self, id: usize) -> HostId {
        self.masters[id - 1].host()
    }

    /// Every master's host, by id - 1.
    pub fn master_hosts(&self) -> Vec<HostId> {
        self.masters.iter().map(NodeProcess::host).collect()
    }

    /// How many masters.
    pub fn master_count(&self) -> usize {
        self.masters.len()
    }

    /// Master `id`'s process.
    pub fn master(&mut self, id: usize) -> &mut NodeProcess {
        &mut self.masters[id - 1]
    }

    /// How many agents.
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// Agent `index` (0..).
    pub fn agent(&mut self, index: usize) -> &mut AgentNode {
        &mut self.agents[index]
    }

    /// Agent `index`'s host.
    pub fn agent_host(&self, index: usize) -> HostId {
        self.agents[index].process.host()
    }

    /// Every agent's host, by index.
    pub fn agent_hosts(&self) -> Vec<HostId> {
        self.agents
            .iter()
            .map(|agent| agent.process.host())
            .collect()
    }

    /// Agent `index`'s address.
    pub fn agent_address(&self, index: usize) -> &str {
        &self.agents[index].address
    }

    /// Agent `index`'s work directory.
    pub fn agent_work_dir(&self, index: usize) -> &Path {
        &self.agents[index].work_dir
    }

    /// The client host.
    pub fn client_host(&self) -> HostId {
        self.client
    }

    /// Adds a host to the fabric (for a framework).
    pub fn add_host(&mut self, name: &str) -> HostId {
        self.fabric.add_host(name)
    }

    /// `kill -9` master `id`.
    pub fn kill_master(&mut self, id: usize) {
        self.masters[id - 1].kill_hard();
    }

    /// Starts master `id` (after a kill or stop) on its data directory.
    pub fn start_master(&mut self, id: usize) {
        self.masters[id - 1].start(&self.fabric);
    }

    /// Stops master `id` with SIGTERM (SIGKILL if it does not stop in time), then starts it.
    pub fn restart_master_cleanly(&mut self, id: usize) {
        self.masters[id - 1].stop(STOP_PATIENCE);
        self.masters[id - 1].start(&self.fabric);
    }

    /// `kill -9` agent `index` (its executors and tasks keep running).
    pub fn kill_agent(&mut self, index: usize) {
        self.agents[index].process.kill_hard();
    }

    /// Starts agent `index` on its work directory.
    pub fn start_agent(&mut self, index: usize) {
        self.agents[index].process.start(&self.fabric);
    }

    /// Stops agent `index` with SIGTERM, then starts it.
    pub fn restart_agent_cleanly(&mut self, index: usize) {
        self.agents[index].process.stop(STOP_PATIENCE);
        self.agents[index].process.start(&self.fabric);
    }

    /// A host reboot: every process on agent `index`'s host dies (the agent, its executors
    /// and their tasks), and the agent starts again on a new boot id with its work
    /// directory.
    pub fn reboot_agent(&mut self, index: usize) {
        let host = self.agents[index].process.host();
        self.agents[index].process.kill_hard();
        self.fabric.kill_all(host);
        let agent = &mut self.agents[index];
        agent.boot += 1;
        agent
            .process
            .set_flag("--boot-id", &format!("boot-{}", agent.boot));
        agent.process.start(&self.fabric);
    }

    /// The processes of every node, masters first, as (name, state).
    pub fn node_states(&mut self) -> Vec<(String, ProcessState)> {
        self.masters
            .iter_mut()
            .chain(self.agents.iter_mut().map(|agent| &mut agent.process))
            .map(|process| (process.name().to_string(), process.state()))
            .collect()
    }

    /// Starts every node that is down and resumes every paused one.
    pub fn revive_all(&mut self) {
        for process in self
            .masters
            .iter_mut()
            .chain(self.agents.iter_mut().map(|agent| &mut agent.process))
        {
            match process.state() {
                ProcessState::Down => process.start(&self.fabric),
                ProcessState::Paused => process.resume(),
                ProcessState::Running => {}
            }
        }
    }

    /// A `berth` command run on the client host with the cluster's flags: `words` is the
    /// subcommand (one or two words, e.g. `["volume", "create"]`) and `args` what follows.
    pub fn berth_command(&self, words: &[&str], args: &[&str]) -> Command {
        let mut command = self.fabric.command(self.client, berth_binary());
        command
            .args(words)
            .args(["--cluster", TEST_CLUSTER, "--secret-file"])
            .arg(&self.secret_file)
            .args(["--masters", &self.master_addresses.join(",")])
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs a `berth` command on the client host (see [`berth_command`](Self::berth_command))
    /// to completion.
    pub fn berth(&self, words: &[&str], args: &[&str]) -> Output {
        self.berth_command(words, args)
            .output()
            .unwrap_or_else(|error| panic!("cannot run berth {words:?}: {error}"))
    }

    /// Starts a `berth` command on the client host in the background, its output in
    /// `<name>.log` in the test's directory.
    pub fn berth_background(&self, name: &str, words: &[&str], args: &[&str]) -> NodeProcess {
        let mut all: Vec<&str> = words.to_vec();
        all.extend_from_slice(&["--cluster", TEST_CLUSTER, "--secret-file"]);
        all.push(path_text(&self.secret_file));
        let masters = self.master_addresses.join(",");
        all.extend_from_slice(&["--masters", &masters]);
        all.extend_from_slice(args);
        let log = self.directory.path().join(format!("{name}.log"));
        let mut process = NodeProcess::new(name, self.client, &berth_binary(), os_args(&all), log);
        process.start(&self.fabric);
        process
    }

    /// Starts a framework on `host` (see [`FrameworkProcess`]).
    pub fn start_framework(&self, host: HostId, spec: &FrameworkSpec) -> FrameworkProcess {
        FrameworkProcess::start(
            &self.fabric,
            host,
            spec,
            &self.master_addresses,
            &self.secret_file,
            self.directory.path(),
        )
    }

    /// Runs `berth state --json` on the client host and checks it with the observer; `None`
    /// if no master answered.
    ///
    /// # Panics
    /// If the state breaks an invariant, with every node's log.
    pub fn state(&mut self) -> Option<Value> {
        let output = self
            .berth_command(&["state"], &["--json", "--timeout-ms", STATE_TIMEOUT_MS])
            .output()
            .ok()?;
        let state: Value =
            serde_json::from_str(String::from_utf8_lossy(&output.stdout).trim()).ok()?;
        if let Err(violation) = self.observer.observe(&state) {
            panic!("{violation}\n{}", self.logs());
        }
        Some(state)
    }

    /// The observer, to see what it checked.
    pub fn observer(&self) -> &Observer {
        &self.observer
    }

    /// Polls [`state`](Self::state) until `accept` approves one; panics after `timeout`
    /// with the last answer and every log.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut accept: impl FnMut(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(state) = self.state() {
                if accept(&state) {
                    return state;
                }
                last = Some(state);
            }
            if Instant::now() >= deadline {
                panic!(
                    "waited {timeout:?} for {what}; the last state: {}\n{}",
                    last.map_or_else(|| "no answer".to_string(), |state| state.to_string()),
                    self.logs()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until every running master names the same leader in the same term; returns it.
    pub fn wait_for_leader(&mut self, timeout: Duration) -> (String, u64) {
        self.wait_for_leader_where(timeout, |_, _| true)
    }

    /// Waits until every running master names the same leader in the same term, and
    /// `accept` approves it; returns it.
    pub fn wait_for_leader_where(
        &mut self,
        timeout: Duration,
        accept: impl Fn(&str, u64) -> bool,
    ) -> (String, u64) {
        let running: Vec<String> = self.running_master_addresses();
        let state = self.wait_for(
            "every running master to agree on a leader",
            timeout,
            |state| {
                agreed_leader(state, &running).is_some_and(|(leader, term)| accept(&leader, term))
            },
        );
        agreed_leader(&state, &running).expect("accepted")
    }

    /// The addresses of the masters whose process runs (not down, not paused).
    pub fn running_master_addresses(&mut self) -> Vec<String> {
        let addresses = self.master_addresses.clone();
        self.masters
            .iter_mut()
            .zip(addresses)
            .filter_map(|(master, address)| {
                (master.state() == ProcessState::Running).then_some(address)
            })
            .collect()
    }

    /// Waits until every running master agrees on a leader and every agent is admitted and
    /// registered with it; returns the state.
    pub fn wait_for_agents(&mut self, timeout: Duration) -> Value {
        let running = self.running_master_addresses();
        let addresses: Vec<String> = self
            .agents
            .iter()
            .map(|agent| agent.address.clone())
            .collect();
        self.wait_for(
            "a leader with every agent admitted and registered with it",
            timeout,
            |state| {
                agreed_leader(state, &running).is_some()
                    && addresses
                        .iter()
                        .all(|address| agent_row(state, address).is_some_and(registered))
            },
        )
    }

    /// Waits until agent `index` has registered more than `before` times (see
    /// [`AgentNode::registrations`]) and every agent is registered with an agreed leader.
    pub fn wait_for_reregistration(
        &mut self,
        index: usize,
        before: usize,
        timeout: Duration,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        while self.agents[index].registrations() <= before {
            assert!(
                Instant::now() < deadline,
                "agent {} did not register again within {timeout:?}\n{}",
                index + 1,
                self.logs()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
        self.wait_for_agents(deadline.saturating_duration_since(Instant::now()))
    }

    /// Every run of `task` in the agents' sandboxes
    /// (`sandboxes/<framework>/<executor>/<task>/run-<n>/`), with the pid it wrote.
    pub fn task_runs(&self, task: &str) -> Vec<TaskRun> {
        let mut runs = Vec::new();
        for (index, agent) in self.agents.iter().enumerate() {
            for framework in read_directories(&agent.work_dir.join("sandboxes")) {
                for executor in read_directories(&framework) {
                    for run in read_directories(&executor.join(task)) {
                        let pid = fs::read_to_string(run.join("pid"))
                            .ok()
                            .and_then(|text| text.trim().parse().ok());
                        runs.push(TaskRun {
                            agent: index,
                            sandbox: run,
                            pid,
                        });
                    }
                }
            }
        }
        runs.sort_by(|a, b| a.sandbox.cmp(&b.sandbox));
        runs
    }

    /// The pid of `task`'s only run, once it wrote it; panics if it ran more than once (R5:
    /// a launch is applied at most once).
    pub fn task_pid(&self, task: &str) -> Option<u32> {
        let runs = self.task_runs(task);
        assert!(
            runs.len() <= 1,
            "R5 violated: task {task} ran {} times: {runs:?}",
            runs.len()
        );
        runs.first().and_then(|run| run.pid)
    }

    /// A2, A1 and R5 over a framework's view: its updates in order, a task it was told
    /// ended runs nowhere, and no task ran more than once.
    ///
    /// # Errors
    /// The task and what was found.
    pub fn check_tasks(&self, history: &TaskHistory) -> Result<(), String> {
        history.check_order()?;
        self.check_processes(history)
    }

    /// A1 and R5 over a framework's view: a task it was told ended runs nowhere, and no
    /// task ran more than once.
    ///
    /// # Errors
    /// The task and what was found.
    pub fn check_processes(&self, history: &TaskHistory) -> Result<(), String> {
        for (task, events) in history.tasks() {
            let runs = self.task_runs(task);
            if runs.len() > 1 {
                return Err(format!(
                    "R5 violated: task {task} ran {} times: {runs:?}",
                    runs.len()
                ));
            }
            let Some(last) = events.last() else { continue };
            if is_terminal(&last.state)
                && let Some(pid) = runs
                    .iter()
                    .filter_map(|run| run.pid)
                    .find(|pid| is_running(*pid))
            {
                return Err(format!(
                    "A1 violated: task {task} was reported {} but its process {pid} runs",
                    last.state
                ));
            }
        }
        Ok(())
    }

    /// The last lines of every node's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for process in self
            .masters
            .iter()
            .chain(self.agents.iter().map(|agent| &agent.process))
        {
            text.push_str(&format!(
                "--- {} (last {LOG_LINES_SHOWN} lines) ---\n{}\n",
                process.name(),
                process.log_tail(LOG_LINES_SHOWN)
            ));
        }
        text.push_str(&format!(
            "--- faults in force: {:?}\n",
            self.fabric.faults()
        ));
        text
    }
}

impl Drop for Cluster {
    /// A failing test keeps every log (nodes, frameworks, operator commands) where the
    /// message says, before the test's directory is removed.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let kept = std::env::temp_dir().join(format!(
            "berth-faults-logs-{}",
            self.directory
                .path()
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        if fs::create_dir_all(&kept).is_err() {
            return;
        }
        for entry in fs::read_dir(self.directory.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|extension| extension == "log") {
                let _ = fs::copy(&path, kept.join(entry.file_name()));
            }
        }
        eprintln!("the cluster's logs are kept in {}", kept.display());
    }
}

/// The leader every master of `among` names in the same term, if they all answered and
/// agree, and the leader itself is one of them.
pub fn agreed_leader(state: &Value, among: &[String]) -> Option<(String, u64)> {
    let answers = state["masters"].as_array()?;
    let mut agreed: Option<(String, u64)> = None;
    for address in among {
        let answer = answers
            .iter()
            .find(|answer| answer["address"].as_str() == Some(address))?;
        if answer["answered"] != true {
            return None;
        }
        let named = (
            answer["leader"].as_str()?.to_string(),
            answer["term"].as_u64()?,
        );
        match &agreed {
            Some(known) if *known != named => return None,
            Some(_) => {}
            None => agreed = Some(named),
        }
    }
    agreed.filter(|(leader, _)| among.contains(leader))
}

/// The registry's row for the agent at `address`.
pub fn agent_row<'a>(state: &'a Value, address: &str) -> Option<&'a Value> {
    state["agents"]
        .as_array()?
        .iter()
        .find(|agent| agent["address"].as_str() == Some(address))
}

/// Whether an agent's row says it is admitted and registered with the current leader.
pub fn registered(row: &Value) -> bool {
    row["status"] == "admitted" && row["registered_with_leader"] == true
}

/// The registry's row for the framework `id`.
pub fn framework_row<'a>(state: &'a Value, id: &str) -> Option<&'a Value> {
    state["frameworks"]
        .as_array()?
        .iter()
        .find(|framework| framework["id"].as_str() == Some(id))
}

fn read_directories(path: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(path) else {
        return Vec::new();
    };
    let mut directories: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    directories.sort();
    directories
}

fn os_args(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary directory")
}
