//! `berth local`: a whole cluster on this machine, one process per node.
//!
//! The masters are real `berth master` processes (this executable, started again) listening
//! on free loopback ports, so killing one with `kill -9` is a real crash. `berth local`
//! writes a cluster secret, gives each node a data directory and a log file in one
//! directory, waits for a leader, reports leadership changes and nodes that exit, and on
//! Ctrl-C or SIGTERM stops every node: SIGTERM, then SIGKILL after [`STOP_TIMEOUT`].
//!
//! ```text
//!   DIR/cluster-secret      the cluster secret (mode 600)
//!   DIR/master-1/           master 1's data directory (term, vote, replicated log)
//!   DIR/master-1.log        master 1's standard output and error
//! ```
//!
//! Each node is a [`LocalNode`] of some [`NodeKind`]; agents will be a second kind, started
//! the same way once the masters lead.

#![warn(missing_docs)]

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use berth_protocol::Address;
use berth_protocol::bounded::Name;
use berth_protocol::ids::{MasterId, Term};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::client::find_leader;
use crate::logging::LogFormat;
use crate::transport::ClusterSecret;

/// The cluster name of a local cluster.
pub const LOCAL_CLUSTER_NAME: &str = "local";
/// The secret file's name in the cluster's directory.
pub const SECRET_FILE_NAME: &str = "cluster-secret";
/// How long to wait for the first leader.
pub const LEADER_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often to ask the masters who leads, while waiting for the first leader.
pub const LEADER_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How often to check the nodes and the leader once the cluster runs.
pub const MONITOR_INTERVAL: Duration = Duration::from_millis(500);
/// How long a `FindLeader` round may wait for answers.
pub const FIND_LEADER_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the nodes get to stop after SIGTERM before they are killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The log level of the nodes when `RUST_LOG` is not set: elections and leadership changes.
pub const NODE_LOG_LEVEL_DEFAULT: &str = "info";

/// What `berth local` starts.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// How many masters: 1, 3 or 5.
    pub masters: usize,
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
}

impl fmt::Display for NodeKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeKind::Master(id) => write!(formatter, "master {id}"),
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
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    /// Its process id.
    pub pid: Option<u32>,
    child: Child,
    exit: Option<ExitStatus>,
}

/// Runs a local cluster until `shutdown` completes, then stops every node.
pub async fn run_local(
    options: LocalOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let dir = prepare_directory(options.dir)?;
    let secret_file = dir.join(SECRET_FILE_NAME);
    let secret = ensure_secret(&secret_file)?;
    let cluster = Name::new(LOCAL_CLUSTER_NAME).context("the local cluster's name")?;
    let addresses = free_loopback_addresses(options.masters)?;
    let masters_flag = addresses
        .iter()
        .enumerate()
        .map(|(index, address)| format!("{}={address}", index + 1))
        .collect::<Vec<_>>()
        .join(",");
    let executable = std::env::current_exe().context("cannot find the berth executable")?;

    println!(
        "Starting a local Berth cluster of {} masters in {}",
        options.masters,
        dir.display()
    );
    println!("  cluster name  {LOCAL_CLUSTER_NAME}");
    println!("  secret file   {}", secret_file.display());
    println!();

    let mut nodes = Vec::new();
    let started = start_masters(
        &mut nodes,
        &StartMasters {
            executable: &executable,
            dir: &dir,
            secret_file: &secret_file,
            addresses: &addresses,
            masters_flag: &masters_flag,
            log_format: options.log_format,
        },
    );
    let outcome = match started {
        Ok(()) => {
            print_nodes(&nodes);
            let hint = format!(
                "{} leader --cluster {LOCAL_CLUSTER_NAME} --secret-file {} --masters {}",
                executable.display(),
                secret_file.display(),
                addresses
                    .iter()
                    .map(Address::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            );
            watch(&mut nodes, &cluster, &secret, &hint, shutdown).await
        }
        Err(error) => Err(error),
    };
    stop(&mut nodes).await;
    outcome
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

/// What every master's command line shares.
struct StartMasters<'a> {
    executable: &'a Path,
    dir: &'a Path,
    secret_file: &'a Path,
    addresses: &'a [Address],
    masters_flag: &'a str,
    log_format: LogFormat,
}

/// Starts one `berth master` process per address, adding each to `nodes` as it starts.
fn start_masters(nodes: &mut Vec<LocalNode>, start: &StartMasters<'_>) -> anyhow::Result<()> {
    for (index, address) in start.addresses.iter().enumerate() {
        let id = u8::try_from(index + 1).context("at most 5 masters")?;
        let kind = NodeKind::Master(MasterId(id));
        let data_dir = start.dir.join(format!("master-{id}"));
        let log = start.dir.join(format!("master-{id}.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot open the log file {}", log.display()))?;
        let log_format = match start.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        let mut command = Command::new(start.executable);
        command
            .args([
                "--log-format",
                log_format,
                "master",
                "--id",
                &id.to_string(),
            ])
            .args([
                "--listen",
                address.as_str(),
                "--masters",
                start.masters_flag,
            ])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--cluster", LOCAL_CLUSTER_NAME, "--secret-file"])
            .arg(start.secret_file)
            .args(["--parent-pid", &std::process::id().to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("cannot share the log file")?)
            .stderr(log_file)
            // Its own process group: Ctrl-C reaches `berth local` only, which stops the
            // nodes in order.
            .process_group(0)
            // Should this process die without stopping them, they are killed.
            .kill_on_drop(true);
        // The logs are files: no terminal colour codes in them.
        command.env("NO_COLOR", "1");
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", NODE_LOG_LEVEL_DEFAULT);
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {kind}"))?;
        nodes.push(LocalNode {
            kind,
            address: address.clone(),
            data_dir,
            log,
            pid: child.id(),
            child,
            exit: None,
        });
    }
    Ok(())
}

fn print_nodes(nodes: &[LocalNode]) {
    println!(
        "  {:<10} {:<22} {:<8} {:<40} LOG",
        "NODE", "ADDRESS", "PID", "DATA DIRECTORY"
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

/// Waits for a leader, then reports changes until `shutdown`.
async fn watch(
    nodes: &mut [LocalNode],
    cluster: &Name,
    secret: &ClusterSecret,
    hint: &str,
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
                log_directory(nodes)
            );
        }
        if report_exits(nodes) == nodes.len() {
            anyhow::bail!(
                "every node exited: see their logs in {}",
                log_directory(nodes)
            );
        }
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            leader = leader_of(nodes, cluster, secret) => current = leader,
        }
        if current.is_none() {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(LEADER_POLL_INTERVAL) => {}
            }
        }
    }
    if let Some((leader, term)) = &current {
        println!(
            "Leader: {} (term {term}), elected after {:.1} s.",
            describe_address(nodes, leader),
            started.elapsed().as_secs_f64()
        );
    }
    println!();
    println!("Ask the masters who leads:");
    println!("  {hint}");
    println!("Kill the leader (kill -9 PID) to watch a failover. Press Ctrl-C to stop.");
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(MONITOR_INTERVAL) => {}
        }
        report_exits(nodes);
        let leader = tokio::select! {
            () = &mut shutdown => return Ok(()),
            leader = leader_of(nodes, cluster, secret) => leader,
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

/// Asks the nodes that still run who leads.
async fn leader_of(
    nodes: &[LocalNode],
    cluster: &Name,
    secret: &ClusterSecret,
) -> Option<(Address, Term)> {
    let running: Vec<Address> = nodes
        .iter()
        .filter(|node| node.exit.is_none() && matches!(node.kind, NodeKind::Master(_)))
        .map(|node| node.address.clone())
        .collect();
    if running.is_empty() {
        return None;
    }
    let report = find_leader(
        &running,
        cluster.clone(),
        secret.clone(),
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

/// Stops every node still running: SIGTERM, then SIGKILL after [`STOP_TIMEOUT`].
async fn stop(nodes: &mut [LocalNode]) {
    report_exits(nodes);
    let running = nodes.iter().filter(|node| node.exit.is_none()).count();
    if running == 0 {
        return;
    }
    println!("Stopping {running} nodes...");
    for node in nodes.iter().filter(|node| node.exit.is_none()) {
        if let Some(pid) = node.pid {
            terminate(pid);
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for node in nodes.iter_mut().filter(|node| node.exit.is_none()) {
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

/// Sends SIGTERM to `pid`.
#[cfg(unix)]
fn terminate(pid: u32) {
    use rustix::process::{Pid, Signal, kill_process};
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    if let Err(error) = kill_process(pid, Signal::TERM) {
        tracing::debug!(%error, "SIGTERM failed; the node may have exited");
    }
}

#[cfg(not(unix))]
fn terminate(_pid: u32) {}

/// "master 2 at 127.0.0.1:5051", or the address alone if no node has it.
fn describe_address(nodes: &[LocalNode], address: &Address) -> String {
    match nodes.iter().find(|node| node.address == *address) {
        Some(node) => format!("{} at {address}", node.kind),
        None => address.to_string(),
    }
}

fn log_directory(nodes: &[LocalNode]) -> String {
    nodes
        .first()
        .and_then(|node| node.log.parent())
        .map_or_else(String::new, |dir| dir.display().to_string())
}
