//! `berth local`: a whole cluster on this machine, one process per node.
//!
//! The masters and agents are real `berth master` and `berth agent` processes (this
//! executable, started again) listening on free loopback ports, so killing one with
//! `kill -9` is a real crash. `berth local` writes a cluster secret, gives each node a data
//! (or work) directory and a log file in one directory, waits for a leader, starts the
//! agents and waits for them to register, reports leadership changes and nodes that exit,
//! and on Ctrl-C or SIGTERM stops everything, in order: the agents, then their executors
//! (which kill their tasks), then the masters; each with SIGTERM, then SIGKILL after
//! [`STOP_TIMEOUT`].
//!
//! ```text
//!   DIR/cluster-secret      the cluster secret (mode 600)
//!   DIR/master-1/           master 1's data directory (term, vote, replicated log)
//!   DIR/master-1.log        master 1's standard output and error
//!   DIR/agent-1/            agent 1's work directory (checkpoint, sandboxes, volumes)
//!   DIR/agent-1.log         agent 1's standard output and error
//! ```
//!
//! Each node is a [`LocalNode`] of some [`NodeKind`].

#![warn(missing_docs)]

use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use berth_protocol::Address;
use berth_protocol::bounded::Name;
use berth_protocol::ids::{MasterId, Term};
use berth_protocol::resources::Resources;
use rustix::process::Signal;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::client::{find_leader, query_state};
use crate::logging::LogFormat;
use crate::process::{process_is_running, signal_process, signal_session};
use crate::transport::ClusterSecret;
use crate::work_dir::WorkDir;

/// The cluster name of a local cluster.
pub const LOCAL_CLUSTER_NAME: &str = "local";
/// The secret file's name in the cluster's directory.
pub const SECRET_FILE_NAME: &str = "cluster-secret";
/// What each local agent offers unless told otherwise.
pub const AGENT_RESOURCES_DEFAULT: &str = "cpus:2;mem:2048;disk:10000";
/// The host name local agents report.
pub const AGENT_HOSTNAME: &str = "localhost";
/// The most agents a local cluster runs.
pub const LOCAL_AGENTS_MAX: usize = 16;
/// How long to wait for the first leader.
pub const LEADER_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the agents to register once a master leads.
pub const AGENTS_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often to ask the masters who leads, while waiting for the first leader, and whether
/// the agents are registered, while waiting for them.
pub const LEADER_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How often to check the nodes and the leader once the cluster runs.
pub const MONITOR_INTERVAL: Duration = Duration::from_millis(500);
/// How long a `FindLeader` (or `StateRequest`) round may wait for answers.
pub const FIND_LEADER_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the nodes (and the executors) get to stop after SIGTERM before they are killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often to look whether the executors have stopped.
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The log level of the nodes when `RUST_LOG` is not set: elections, leadership changes,
/// registrations, executors and tasks.
pub const NODE_LOG_LEVEL_DEFAULT: &str = "info";

/// What `berth local` starts.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// How many masters: 1, 3 or 5.
    pub masters: usize,
    /// How many agents: 0 to [`LOCAL_AGENTS_MAX`].
    pub agents: usize,
    /// What each agent offers.
    pub agent_resources: Resources,
    /// The cluster's directory; a new temporary one if `None`.
    pub dir: Option<PathBuf>,
    /// The log format of the nodes.
    pub log_format: LogFormat,
}

/// What a node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A master with this id.
    Master(MasterId),
    /// The agent with this number, from 1.
    Agent(usize),
}

impl fmt::Display for NodeKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeKind::Master(id) => write!(formatter, "master {id}"),
            NodeKind::Agent(number) => write!(formatter, "agent {number}"),
        }
    }
}

/// One node process of the local cluster.
#[derive(Debug)]
pub struct LocalNode {
    /// What it is.
    pub kind: NodeKind,
    /// Its address in the protocol.
    pub address: Address,
    /// Its data directory (a master's) or work directory (an agent's).
    pub data_dir: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    /// Its process id.
    pub pid: Option<u32>,
    child: Child,
    exit: Option<ExitStatus>,
}

impl LocalNode {
    fn is_master(&self) -> bool {
        matches!(self.kind, NodeKind::Master(_))
    }

    fn is_agent(&self) -> bool {
        matches!(self.kind, NodeKind::Agent(_))
    }
}

/// Everything the nodes' command lines share.
struct Cluster {
    executable: PathBuf,
    dir: PathBuf,
    secret_file: PathBuf,
    cluster: Name,
    secret: ClusterSecret,
    master_addresses: Vec<Address>,
    agent_addresses: Vec<Address>,
    agent_resources: Resources,
    log_format: LogFormat,
    /// Whether the nodes log at [`NODE_LOG_LEVEL_DEFAULT`] whatever `RUST_LOG` says: the
    /// demo reads the agents' logs.
    force_log_level: bool,
}

mod demo;

pub use demo::run_demo;

/// Runs a local cluster until `shutdown` completes, then stops every node.
pub async fn run_local(
    options: LocalOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let cluster = new_cluster(&options)?;

    println!(
        "Starting a local Berth cluster of {} masters and {} agents in {}",
        options.masters,
        options.agents,
        cluster.dir.display()
    );
    println!("  cluster name  {LOCAL_CLUSTER_NAME}");
    println!("  secret file   {}", cluster.secret_file.display());
    if options.agents > 0 {
        println!("  agents offer  {}", cluster.agent_resources);
    }
    println!();

    let mut nodes = Vec::new();
    let outcome = match start_masters(&mut nodes, &cluster) {
        Ok(()) => {
            print_nodes(&nodes);
            watch(&mut nodes, &cluster, shutdown).await
        }
        Err(error) => Err(error),
    };
    stop(&mut nodes).await;
    outcome
}

/// The cluster `options` describe: its directory, secret and addresses.
fn new_cluster(options: &LocalOptions) -> anyhow::Result<Cluster> {
    let dir = prepare_directory(options.dir.clone())?;
    let secret_file = dir.join(SECRET_FILE_NAME);
    let secret = ensure_secret(&secret_file)?;
    let mut addresses = free_loopback_addresses(options.masters + options.agents)?;
    let agent_addresses = addresses.split_off(options.masters);
    Ok(Cluster {
        executable: std::env::current_exe().context("cannot find the berth executable")?,
        dir,
        secret_file,
        cluster: Name::new(LOCAL_CLUSTER_NAME).context("the local cluster's name")?,
        secret,
        master_addresses: addresses,
        agent_addresses,
        agent_resources: options.agent_resources.clone(),
        log_format: options.log_format,
        force_log_level: false,
    })
}

/// Creates the cluster's directory.
fn prepare_directory(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = dir.unwrap_or_else(|| {
        let random: [u8; 4] = rand::random();
        let suffix: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
        std::env::temp_dir().join(format!("berth-local-{suffix}"))
    });
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    // Absolute, so the paths printed and given to the nodes work from anywhere.
    std::fs::canonicalize(&dir).with_context(|| format!("cannot resolve {}", dir.display()))
}

/// Reads the secret file of an earlier run, or writes a new one.
fn ensure_secret(path: &Path) -> anyhow::Result<ClusterSecret> {
    if !path.exists() {
        ClusterSecret::generate()
            .write_new_file(path)
            .with_context(|| format!("cannot write the cluster secret {}", path.display()))?;
    }
    Ok(ClusterSecret::read(path)?)
}

/// `count` loopback addresses with ports that were free a moment ago. All are held open at
/// once, so they differ.
fn free_loopback_addresses(count: usize) -> anyhow::Result<Vec<Address>> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot find a free loopback port")?;
    listeners
        .iter()
        .map(|listener| {
            let address = listener.local_addr().context("a bound port's address")?;
            Address::new(&address.to_string()).context("a socket address is an address")
        })
        .collect()
}

fn join_addresses(addresses: &[Address]) -> String {
    addresses
        .iter()
        .map(Address::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// Starts one `berth master` process per master address, adding each to `nodes` as it
/// starts.
fn start_masters(nodes: &mut Vec<LocalNode>, cluster: &Cluster) -> anyhow::Result<()> {
    let members = cluster
        .master_addresses
        .iter()
        .enumerate()
        .map(|(index, address)| format!("{}={address}", index + 1))
        .collect::<Vec<_>>()
        .join(",");
    for (index, address) in cluster.master_addresses.iter().enumerate() {
        let id = u8::try_from(index + 1).context("at most 5 masters")?;
        let data_dir = cluster.dir.join(format!("master-{id}"));
        let args: Vec<OsString> = vec![
            "master".into(),
            "--id".into(),
            id.to_string().into(),
            "--listen".into(),
            address.as_str().into(),
            "--masters".into(),
            members.clone().into(),
            "--data-dir".into(),
            data_dir.clone().into(),
        ];
        let node = start_node(
            cluster,
            NodeKind::Master(MasterId(id)),
            address,
            data_dir,
            args,
        )?;
        nodes.push(node);
    }
    Ok(())
}

/// Starts one `berth agent` process per agent address, adding each to `nodes` as it starts.
fn start_agents(nodes: &mut Vec<LocalNode>, cluster: &Cluster) -> anyhow::Result<()> {
    for number in 1..=cluster.agent_addresses.len() {
        nodes.push(start_agent(cluster, number)?);
    }
    Ok(())
}

/// Starts agent `number` (from 1) on its address and work directory: the same command line
/// every time, so a restarted agent recovers from its checkpoint.
fn start_agent(cluster: &Cluster, number: usize) -> anyhow::Result<LocalNode> {
    let masters = join_addresses(&cluster.master_addresses);
    let address = &cluster.agent_addresses[number - 1];
    let work_dir = cluster.dir.join(format!("agent-{number}"));
    let args: Vec<OsString> = vec![
        "agent".into(),
        "--masters".into(),
        masters.into(),
        "--listen".into(),
        address.as_str().into(),
        "--work-dir".into(),
        work_dir.clone().into(),
        "--resources".into(),
        cluster.agent_resources.to_string().into(),
        "--hostname".into(),
        AGENT_HOSTNAME.into(),
    ];
    start_node(cluster, NodeKind::Agent(number), address, work_dir, args)
}

/// Starts `berth [--log-format F] ARGS... --cluster local --secret-file F --parent-pid P`
/// with its output appended to `DIR/<kind>.log`.
fn start_node(
    cluster: &Cluster,
    kind: NodeKind,
    address: &Address,
    data_dir: PathBuf,
    args: Vec<OsString>,
) -> anyhow::Result<LocalNode> {
    let log = cluster
        .dir
        .join(format!("{}.log", kind.to_string().replace(' ', "-")));
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("cannot open the log file {}", log.display()))?;
    let log_format = match cluster.log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    let mut command = Command::new(&cluster.executable);
    command
        .args(["--log-format", log_format])
        .args(args)
        .args(["--cluster", LOCAL_CLUSTER_NAME, "--secret-file"])
        .arg(&cluster.secret_file)
        .args(["--parent-pid", &std::process::id().to_string()])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().context("cannot share the log file")?)
        .stderr(log_file)
        // Its own process group: Ctrl-C reaches `berth local` only, which stops the
        // nodes in order.
        .process_group(0)
        // Should this process die without stopping them, they are killed.
        .kill_on_drop(true);
    // Each node takes its settings from the flags above alone: a `BERTH_*` variable (or a
    // `BERTH_CONFIG` file) meant for this command or for a standalone node must not reach it.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("BERTH_") {
            command.env_remove(name);
        }
    }
    // The logs are files: no terminal colour codes in them.
    command.env("NO_COLOR", "1");
    if cluster.force_log_level || std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", NODE_LOG_LEVEL_DEFAULT);
    }
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {kind}"))?;
    Ok(LocalNode {
        kind,
        address: address.clone(),
        data_dir,
        log,
        pid: child.id(),
        child,
        exit: None,
    })
}

fn print_nodes<'a>(nodes: impl IntoIterator<Item = &'a LocalNode>) {
    println!(
        "  {:<10} {:<22} {:<8} {:<40} LOG",
        "NODE", "ADDRESS", "PID", "DIRECTORY"
    );
    for node in nodes {
        let pid = node
            .pid
            .map_or_else(|| "-".to_string(), |pid| pid.to_string());
        println!(
            "  {:<10} {:<22} {:<8} {:<40} {}",
            node.kind.to_string(),
            node.address.as_str(),
            pid,
            node.data_dir.display().to_string(),
            node.log.display()
        );
    }
    println!();
}

/// Completes when `shutdown` does; `None` if `work` completed first with its output.
async fn unless_stopped<T>(
    shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        () = shutdown.as_mut() => None,
        output = work => Some(output),
    }
}

/// Waits for a leader, starts the agents and waits for them to register, then reports
/// changes until `shutdown`.
async fn watch(
    nodes: &mut Vec<LocalNode>,
    cluster: &Cluster,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    println!("Waiting for a leader...");
    let started = Instant::now();
    let mut current: Option<(Address, Term)> = None;
    while current.is_none() {
        if started.elapsed() > LEADER_WAIT_TIMEOUT {
            anyhow::bail!(
                "no leader after {LEADER_WAIT_TIMEOUT:?}: see the masters' logs in {}",
                cluster.dir.display()
            );
        }
        if report_exits(nodes) == nodes.len() {
            anyhow::bail!(
                "every node exited: see their logs in {}",
                cluster.dir.display()
            );
        }
        let Some(leader) = unless_stopped(&mut shutdown, leader_of(nodes, cluster)).await else {
            return Ok(());
        };
        current = leader;
        if current.is_none()
            && unless_stopped(&mut shutdown, tokio::time::sleep(LEADER_POLL_INTERVAL))
                .await
                .is_none()
        {
            return Ok(());
        }
    }
    if let Some((leader, term)) = &current {
        println!(
            "Leader: {} (term {term}), elected after {:.1} s.",
            describe_address(nodes, leader),
            started.elapsed().as_secs_f64()
        );
    }
    if !cluster.agent_addresses.is_empty() {
        println!();
        let first_agent = nodes.len();
        start_agents(nodes, cluster)?;
        print_nodes(&nodes[first_agent..]);
        if !wait_for_agents(nodes, cluster, &mut shutdown).await? {
            return Ok(());
        }
    }
    println!();
    println!("Ask the masters what the cluster holds:");
    println!(
        "  {} state --cluster {LOCAL_CLUSTER_NAME} --secret-file {} --masters {}",
        cluster.executable.display(),
        cluster.secret_file.display(),
        join_addresses(&cluster.master_addresses)
    );
    println!("Kill the leader (kill -9 PID) to watch a failover. Press Ctrl-C to stop.");
    loop {
        if unless_stopped(&mut shutdown, tokio::time::sleep(MONITOR_INTERVAL))
            .await
            .is_none()
        {
            return Ok(());
        }
        report_exits(nodes);
        let Some(leader) = unless_stopped(&mut shutdown, leader_of(nodes, cluster)).await else {
            return Ok(());
        };
        if let Some((address, term)) = leader
            && current.as_ref().is_none_or(|(_, known)| term > *known)
        {
            println!(
                "Leader: {} (term {term}).",
                describe_address(nodes, &address)
            );
            current = Some((address, term));
        }
    }
}

/// Polls the masters until every agent is in the registry, admitted; prints each agent's
/// id. Returns `false` if `shutdown` completed first.
async fn wait_for_agents(
    nodes: &mut [LocalNode],
    cluster: &Cluster,
    shutdown: &mut Pin<&mut impl Future<Output = ()>>,
) -> anyhow::Result<bool> {
    println!("Waiting for the agents to register...");
    let started = Instant::now();
    loop {
        let state = query_state(
            &cluster.master_addresses,
            cluster.cluster.clone(),
            cluster.secret.clone(),
            FIND_LEADER_TIMEOUT,
        );
        let Some(state) = unless_stopped(shutdown, state).await else {
            return Ok(false);
        };
        let registered: Vec<(Address, String)> = cluster
            .agent_addresses
            .iter()
            .filter_map(|address| {
                let row = state
                    .agents
                    .iter()
                    .find(|row| row.address == address.as_str() && row.status == "admitted")?;
                Some((address.clone(), row.id.clone()))
            })
            .collect();
        if registered.len() == cluster.agent_addresses.len() {
            let ids: Vec<String> = registered
                .iter()
                .map(|(address, id)| format!("{} as {id}", describe_address(nodes, address)))
                .collect();
            println!(
                "Agents registered after {:.1} s: {}.",
                started.elapsed().as_secs_f64(),
                ids.join(", ")
            );
            return Ok(true);
        }
        report_exits(nodes);
        if nodes
            .iter()
            .filter(|node| node.is_agent())
            .all(|node| node.exit.is_some())
        {
            anyhow::bail!(
                "every agent exited: see their logs in {}",
                cluster.dir.display()
            );
        }
        if started.elapsed() > AGENTS_WAIT_TIMEOUT {
            anyhow::bail!(
                "the agents did not all register within {AGENTS_WAIT_TIMEOUT:?}: see their logs \
                 in {}",
                cluster.dir.display()
            );
        }
        if unless_stopped(shutdown, tokio::time::sleep(LEADER_POLL_INTERVAL))
            .await
            .is_none()
        {
            return Ok(false);
        }
    }
}

/// Asks the masters that still run who leads.
async fn leader_of(nodes: &[LocalNode], cluster: &Cluster) -> Option<(Address, Term)> {
    let running: Vec<Address> = nodes
        .iter()
        .filter(|node| node.exit.is_none() && node.is_master())
        .map(|node| node.address.clone())
        .collect();
    if running.is_empty() {
        return None;
    }
    let report = find_leader(
        &running,
        cluster.cluster.clone(),
        cluster.secret.clone(),
        FIND_LEADER_TIMEOUT,
    )
    .await;
    Some((report.leader?, report.term?))
}

/// Prints each node that exited since the last call; returns how many have exited in all.
fn report_exits(nodes: &mut [LocalNode]) -> usize {
    for node in nodes.iter_mut().filter(|node| node.exit.is_none()) {
        match node.child.try_wait() {
            Ok(Some(status)) => {
                println!(
                    "{} ({}) exited: {status}; its log is {}",
                    node.kind,
                    node.address,
                    node.log.display()
                );
                node.exit = Some(status);
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(node = %node.kind, %error, "cannot check a node"),
        }
    }
    nodes.iter().filter(|node| node.exit.is_some()).count()
}

/// Stops everything: the agents, then the executors they left running (which kill their
/// tasks), then the masters.
async fn stop(nodes: &mut [LocalNode]) {
    report_exits(nodes);
    stop_nodes(nodes, LocalNode::is_agent).await;
    let work_dirs: Vec<PathBuf> = nodes
        .iter()
        .filter(|node| node.is_agent())
        .map(|node| node.data_dir.clone())
        .collect();
    stop_executors(&work_dirs).await;
    stop_nodes(nodes, LocalNode::is_master).await;
}

/// Stops the nodes `selected` picks that still run: SIGTERM, then SIGKILL after
/// [`STOP_TIMEOUT`].
async fn stop_nodes(nodes: &mut [LocalNode], selected: fn(&LocalNode) -> bool) {
    let running = nodes
        .iter()
        .filter(|node| node.exit.is_none() && selected(node))
        .count();
    if running == 0 {
        return;
    }
    println!("Stopping {running} nodes...");
    for node in nodes
        .iter()
        .filter(|node| node.exit.is_none() && selected(node))
    {
        if let Some(pid) = node.pid {
            terminate(pid);
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for node in nodes
        .iter_mut()
        .filter(|node| node.exit.is_none() && selected(node))
    {
        let status = match tokio::time::timeout_at(deadline, node.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            Ok(Err(error)) => {
                tracing::warn!(node = %node.kind, %error, "cannot wait for a node");
                None
            }
            Err(_) => {
                println!(
                    "{} did not stop within {STOP_TIMEOUT:?}; killing it",
                    node.kind
                );
                let _ = node.child.start_kill();
                node.child.wait().await.ok()
            }
        };
        match status {
            Some(status) => println!("Stopped {} ({status}).", node.kind),
            None => println!("Stopped {}.", node.kind),
        }
        node.exit = status;
    }
}

/// Stops the executors the agents of `work_dirs` left running: SIGTERM (an executor kills
/// its tasks and exits), then SIGKILL to whatever remains of their sessions after
/// [`STOP_TIMEOUT`]. Returns how many executors it stopped.
pub async fn stop_executors(work_dirs: &[PathBuf]) -> usize {
    let executors: Vec<u32> = work_dirs
        .iter()
        .flat_map(|work_dir| {
            let root = work_dir.clone();
            WorkDir::new(work_dir)
                .executor_pids()
                .into_iter()
                .filter(move |pid| is_executor_of(*pid, &root))
        })
        .collect();
    if executors.is_empty() {
        return 0;
    }
    println!("Stopping {} executors and their tasks...", executors.len());
    for pid in &executors {
        let _ = signal_process(*pid, Signal::TERM);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while executors.iter().any(|pid| process_is_running(*pid)) && Instant::now() < deadline {
        tokio::time::sleep(STOP_POLL_INTERVAL).await;
    }
    for pid in &executors {
        let killed = signal_session(*pid, Signal::KILL);
        if killed > 0 {
            println!("Killed {killed} processes left by executor {pid}.");
        }
    }
    executors.len()
}

/// Whether process `pid` is a `berth executor` of the agent with work directory `work_dir`
/// (a pid file can outlive its process, and the number can be reused).
pub(crate) fn is_executor_of(pid: u32, work_dir: &Path) -> bool {
    let Ok(command_line) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let arguments: Vec<&[u8]> = command_line.split(|byte| *byte == 0).collect();
    let work_dir = work_dir.as_os_str().as_encoded_bytes();
    arguments.contains(&b"executor".as_slice())
        && arguments
            .windows(2)
            .any(|pair| pair[0] == b"--work-dir" && pair[1] == work_dir)
}

/// Sends SIGTERM to `pid`.
fn terminate(pid: u32) {
    if let Err(error) = signal_process(pid, Signal::TERM) {
        tracing::debug!(%error, "SIGTERM failed; the node may have exited");
    }
}

/// "master 2 at 127.0.0.1:5051", or the address alone if no node has it.
fn describe_address(nodes: &[LocalNode], address: &Address) -> String {
    match nodes.iter().find(|node| node.address == *address) {
        Some(node) => format!("{} at {address}", node.kind),
        None => address.to_string(),
    }
}
