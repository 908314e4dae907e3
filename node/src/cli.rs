//! The command line: `berth master`, `berth agent`, `berth local`, `berth leader`,
//! `berth state` and `berth resources` (and `berth executor`, which agents start).
//!
//! Every flag can also be given as a `BERTH_*` environment variable (shown in `--help`), and
//! those of `berth master`, `berth agent` and `berth local` in a configuration file
//! ([`crate::config`]). [`parse_command_line`] reads all three.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use berth_protocol::Address;
use berth_protocol::agent::AgentConfig;
use berth_protocol::bounded::{Name, NameError};
use berth_protocol::ids::{BootId, ExecutorId, FrameworkId, MasterId, Principal, Role, VolumeId};
use berth_protocol::master::{MEMBERSHIP_SIZES, MasterConfig};
use berth_protocol::registry::AgentInfo;
use berth_protocol::resources::{
    ContainerPath, Reservation, ResourceParseError, ResourceValue, Resources,
};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::agent::{AgentNode, AgentNodeConfig, ExecutorSettings, host};
use crate::client::{ClusterState, LeaderReport, find_leader, query_state};
use crate::config::{ConfigError, ConfigFile, config_file_named};
use crate::driver::DriverConfig;
use crate::executor::{ExecutorConfig, run_executor};
use crate::local::{LocalOptions, run_local};
use crate::logging::LogFormat;
use crate::master::{MasterNodeConfig, run_master};
use crate::transport::{ClusterSecret, INBOUND_CONNECTIONS_DEFAULT};

/// The cluster name used when `--cluster` is not given.
pub const CLUSTER_DEFAULT: &str = "berth";

/// Berth: a cluster resource manager whose fault tolerance is model-checked.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Berth: a cluster resource manager whose fault tolerance is model-checked.",
    after_help = "Start with `berth local` to run a cluster of masters and agents on this machine."
)]
pub struct Cli {
    /// How log lines are written (set the level with RUST_LOG, e.g. RUST_LOG=info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "BERTH_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs a master: elects a leader with the other masters and replicates the registry.
    ///
    /// Example, the first of three masters:
    /// berth master --id 1 --masters 1=10.0.0.1:5050,2=10.0.0.2:5050,3=10.0.0.3:5050
    /// --data-dir /var/lib/berth/master --secret-file /etc/berth/secret
    ///
    /// Runs until Ctrl-C or SIGTERM. Logs go to standard error; RUST_LOG=info shows
    /// elections and leadership changes.
    Master(MasterArgs),
    /// Runs an agent: registers with the leading master, runs tasks in executor processes,
    /// and checkpoints what it runs in its work directory.
    ///
    /// Example:
    /// berth agent --masters 10.0.0.1:5050,10.0.0.2:5050,10.0.0.3:5050
    /// --listen 10.0.0.7:5051 --work-dir /var/lib/berth/agent
    /// --resources "cpus:4;mem:8192;disk:100000;cpus(ops):1" --secret-file /etc/berth/secret
    ///
    /// Executors run in sessions of their own and survive the agent: stopping it (Ctrl-C,
    /// SIGTERM) or killing it leaves its tasks running, and an agent restarted with the same
    /// work directory reconnects to them. Logs go to standard error; RUST_LOG=info shows
    /// registrations, executors and tasks.
    Agent(AgentArgs),
    /// Runs a whole cluster on this machine: starts masters, then agents, as separate
    /// processes on loopback, prints where their data and logs are and which master leads,
    /// and stops them all (agents, their executors and tasks, masters) on Ctrl-C.
    Local(LocalArgs),
    /// Asks each master who leads and prints every answer.
    ///
    /// Exits with status 1 if no master names a leader.
    Leader(LeaderArgs),
    /// Shows the cluster: each master's term and the leader, then the registry's agents
    /// (with reachability), frameworks and role weights, as the best-informed master reports
    /// them. Takes the same flags as `berth leader`.
    State(LeaderArgs),
    /// Runs one command on the cluster as a framework of its own, streams the task's status
    /// and exits with its outcome (0 if it finished), like mesos-execute.
    ///
    /// Example: berth run --masters 127.0.0.1:5050 --secret-file secret --role web
    /// --cpus 0.5 --mem 64 --volume data:64:data -- 'echo hello >> data/log'
    ///
    /// With --volume, the task runs on a persistent volume of the role: one with that id if
    /// an offer holds it, else a new one on disk reserved for the role first. The
    /// reservation and the volume outlive the task.
    Run(Box<RunArgs>),
    /// Reserves unreserved resources for a role, on an agent that offers them.
    ///
    /// Example: berth reserve --masters 127.0.0.1:5050 --secret-file secret --role web
    /// --resources "cpus:1;mem:256"
    Reserve(Box<ReserveArgs>),
    /// Gives resources reserved for a role (by the same principal) back to the pool.
    Unreserve(Box<ReserveArgs>),
    /// Creates or destroys a persistent volume of a role.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Checks an agent resource string and prints what it describes, one entry per line.
    ///
    /// Example: berth resources "cpus:4;mem:8192;disk:100000;ports:[31000-32000];cpus(ops):2"
    Resources {
        /// The resource string, as given to `berth agent --resources`.
        text: String,
    },
    /// Runs an executor: started by an agent, not by hand.
    #[command(hide = true)]
    Executor(ExecutorArgs),
}

/// `berth master`.
#[derive(Debug, Args)]
pub struct MasterArgs {
    /// This master's id: its key in --masters.
    #[arg(long, env = "BERTH_ID")]
    pub id: u8,

    /// The socket address to listen on [default: this master's address in --masters]. Use
    /// 0.0.0.0:PORT to listen on every interface; peers still reach it at its --masters
    /// address.
    #[arg(long, env = "BERTH_LISTEN", value_name = "IP:PORT")]
    pub listen: Option<SocketAddr>,

    /// Every master of the cluster, this one included: 1, 3 or 5 entries ID=IP:PORT separated
    /// by commas. Every master must be given the same list; masters with different lists
    /// refuse each other.
    #[arg(long, env = "BERTH_MASTERS", value_name = "ID=IP:PORT,...", value_parser = parse_master_list)]
    pub masters: MasterList,

    /// The directory where this master keeps its term, vote and replicated log; created if
    /// missing. Keep it across restarts: a master that loses it may vote twice in a term.
    #[arg(long, env = "BERTH_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// The cluster's name: nodes of another cluster are refused.
    #[arg(long, env = "BERTH_CLUSTER", value_name = "NAME", default_value = CLUSTER_DEFAULT, value_parser = parse_cluster)]
    pub cluster: Name,

    /// A file holding the cluster secret shared by every node (at least 16 bytes, e.g. 32
    /// random bytes as hex; mode 600).
    #[arg(long, env = "BERTH_SECRET_FILE", value_name = "FILE")]
    pub secret_file: PathBuf,

    /// Inbound connections held open at once (one per agent, framework, other master and
    /// operator command); more are refused and logged. The soft open files limit is raised to
    /// the hard one if needed; if even that is too low, fewer are accepted, with a warning.
    #[arg(long, env = "BERTH_MAX_CONNECTIONS", value_name = "COUNT", default_value_t = INBOUND_CONNECTIONS_DEFAULT, value_parser = parse_connections_max)]
    pub max_connections: usize,

    /// A TOML file of settings for this command: its long flags without the dashes, e.g.
    /// `data-dir = "/var/lib/berth"`. Flags and BERTH_* variables override it.
    #[arg(long, env = "BERTH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Stop when the process with this id (the `berth local` that started this master)
    /// exits. Set by `berth local`.
    #[arg(long, env = "BERTH_PARENT_PID", value_name = "PID", hide = true)]
    pub parent_pid: Option<u32>,
}

/// `berth agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The masters, as IP:PORT (or ID=IP:PORT, as given to `berth master`) separated by
    /// commas: 1 to 5 of them. The agent obeys only these addresses.
    #[arg(long, env = "BERTH_MASTERS", value_name = "IP:PORT,...", value_parser = parse_master_addresses)]
    pub masters: MasterAddresses,

    /// The socket address to listen on for the masters.
    #[arg(long, env = "BERTH_LISTEN", value_name = "IP:PORT")]
    pub listen: SocketAddr,

    /// The address the masters reach this agent at [default: --listen]. Needed when --listen
    /// is 0.0.0.0:PORT.
    #[arg(long, env = "BERTH_ADVERTISE", value_name = "IP:PORT")]
    pub advertise: Option<SocketAddr>,

    /// The agent's work directory: its checkpoint (meta/), the tasks' sandboxes
    /// (sandboxes/), persistent volumes (volumes/), executors' logs (executors/) and the
    /// executors' socket. Created if missing. Keep it across restarts: it is how the agent
    /// finds its tasks again.
    #[arg(long, env = "BERTH_WORK_DIR", value_name = "DIR")]
    pub work_dir: PathBuf,

    /// The resources to offer, e.g. "cpus:4;mem:8192;disk:100000;ports:[31000-32000];cpus(ops):1"
    /// (mem and disk in MB; NAME(ROLE) reserves for a role) [default: detected as Mesos does:
    /// every CPU; total memory minus 1 GB (half if under 2 GB); the work directory's file
    /// system minus 5 GB (half if under 10 GB); ports [31000-32000]].
    #[arg(long, env = "BERTH_RESOURCES", value_name = "RESOURCES", value_parser = parse_resources)]
    pub resources: Option<Resources>,

    /// The host name to report [default: the system's host name].
    #[arg(long, env = "BERTH_HOSTNAME", value_name = "NAME")]
    pub hostname: Option<String>,

    /// The cluster's name: nodes of another cluster are refused.
    #[arg(long, env = "BERTH_CLUSTER", value_name = "NAME", default_value = CLUSTER_DEFAULT, value_parser = parse_cluster)]
    pub cluster: Name,

    /// A file holding the cluster secret shared by every node (at least 16 bytes; mode 600).
    #[arg(long, env = "BERTH_SECRET_FILE", value_name = "FILE")]
    pub secret_file: PathBuf,

    /// A TOML file of settings for this command: its long flags without the dashes, e.g.
    /// `data-dir = "/var/lib/berth"`. Flags and BERTH_* variables override it.
    #[arg(long, env = "BERTH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The host's boot id [default: /proc/sys/kernel/random/boot_id]. A different boot id
    /// than the checkpoint's means the host rebooted: earlier tasks are reported lost.
    #[arg(long, env = "BERTH_BOOT_ID", value_name = "ID", hide = true)]
    pub boot_id: Option<String>,

    /// Stop when the process with this id (the `berth local` that started this agent)
    /// exits. Set by `berth local`.
    #[arg(long, env = "BERTH_PARENT_PID", value_name = "PID", hide = true)]
    pub parent_pid: Option<u32>,
}

/// `berth executor`: started by an agent.
#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// The agent's work directory.
    #[arg(long, value_name = "DIR")]
    pub work_dir: PathBuf,

    /// The executor's framework.
    #[arg(long, value_name = "ID")]
    pub framework: FrameworkId,

    /// The executor's id.
    #[arg(long, value_name = "ID")]
    pub executor: ExecutorId,

    /// The wait between SIGTERM and SIGKILL when a task is killed, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub kill_grace_ms: u64,

    /// How long to wait for an absent agent before killing every task and exiting, in
    /// milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 15 * 60 * 1000)]
    pub recovery_timeout_ms: u64,
}

/// `berth local`.
#[derive(Debug, Args)]
pub struct LocalArgs {
    /// How many masters to start: 1, 3 or 5.
    #[arg(long, env = "BERTH_LOCAL_MASTERS", default_value_t = 3, value_parser = parse_membership_size)]
    pub masters: usize,

    /// How many agents to start once a master leads, each with its own work directory.
    #[arg(long, env = "BERTH_LOCAL_AGENTS", default_value_t = 2, value_parser = parse_local_agents)]
    pub agents: usize,

    /// What each agent offers.
    #[arg(long, env = "BERTH_LOCAL_AGENT_RESOURCES", value_name = "RESOURCES", default_value = crate::local::AGENT_RESOURCES_DEFAULT, value_parser = parse_resources)]
    pub agent_resources: Resources,

    /// The directory for the cluster secret, the masters' data directories, the agents' work
    /// directories and their logs [default: a new directory under the system's temporary
    /// directory]. Given an existing directory of an earlier `berth local`, the masters and
    /// agents recover their state from it.
    #[arg(long, env = "BERTH_LOCAL_DIR", value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Run the demo instead and exit: 3 masters and 3 agents; a framework reserves
    /// resources, creates a persistent volume and runs a task on it; the leader is killed
    /// (kill -9) and the agents follow the new one; the task's agent is restarted while the
    /// task keeps running; a second task reads the first's data from the volume. Prints every
    /// check with its measured time and exits non-zero if any failed.
    #[arg(long)]
    pub demo: bool,

    /// A TOML file of settings for this command: its long flags without the dashes, e.g.
    /// `data-dir = "/var/lib/berth"`. Flags and BERTH_* variables override it.
    #[arg(long, env = "BERTH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `berth reserve`, `berth unreserve`, `berth volume ...`.
async fn operator(
    target: OperatorArgs,
    request: crate::operator::OperatorRequest,
) -> anyhow::Result<()> {
    let secret = ClusterSecret::read(&target.secret_file)?;
    let principal = match target.principal {
        Some(principal) => principal,
        None => {
            Principal::new(target.role.as_str()).context("the role is not a valid principal")?
        }
    };
    let options = crate::operator::OperatorOptions {
        masters: target.masters.0,
        cluster: target.cluster,
        secret,
        role: target.role,
        principal,
        timeout: Duration::from_millis(target.timeout_ms),
    };
    crate::operator::apply(options, request).await
}

/// `berth run`.
async fn run_command(args: RunArgs) -> anyhow::Result<()> {
    let secret = ClusterSecret::read(&args.secret_file)?;
    let principal = match args.principal {
        Some(principal) => principal,
        None => Principal::new(args.role.as_str()).context("the role is not a valid principal")?,
    };
    let options = crate::run::RunOptions {
        masters: args.masters.0,
        cluster: args.cluster,
        secret,
        name: args.name,
        role: args.role,
        principal,
        cpus: args.cpus,
        mem: args.mem,
        volume: args.volume,
        command: args.command.join(" "),
        timeout: args.timeout_ms.map(Duration::from_millis),
    };
    let outcome = crate::run::run(options).await?;
    match outcome.state {
        Some(berth_protocol::task::TaskState::Finished) => Ok(()),
        Some(state) => anyhow::bail!("the task ended {state}"),
        None => anyhow::bail!("the task did not end"),
    }
}

/// `berth leader`.
#[derive(Debug, Args)]
pub struct LeaderArgs {
    /// The masters to ask, as IP:PORT (or ID=IP:PORT, as given to `berth master`) separated
    /// by commas.
    #[arg(long, env = "BERTH_MASTERS", value_name = "IP:PORT,...", value_parser = parse_master_addresses)]
    pub masters: MasterAddresses,

    /// A file holding the cluster secret.
    #[arg(long, env = "BERTH_SECRET_FILE", value_name = "FILE")]
    pub secret_file: PathBuf,

    /// The cluster's name.
    #[arg(long, env = "BERTH_CLUSTER", value_name = "NAME", default_value = CLUSTER_DEFAULT, value_parser = parse_cluster)]
    pub cluster: Name,

    /// Print one JSON object instead of a table.
    #[arg(long, env = "BERTH_JSON")]
    pub json: bool,

    /// How long to wait for the masters' answers, in milliseconds.
    #[arg(
        long,
        env = "BERTH_TIMEOUT_MS",
        value_name = "MS",
        default_value_t = 2000
    )]
    pub timeout_ms: u64,
}

/// Where an operator operation goes, and as whom.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// The masters, as IP:PORT separated by commas.
    #[arg(long, env = "BERTH_MASTERS", value_name = "IP:PORT,...", value_parser = parse_master_addresses)]
    pub masters: MasterAddresses,

    /// A file holding the cluster secret.
    #[arg(long, env = "BERTH_SECRET_FILE", value_name = "FILE")]
    pub secret_file: PathBuf,

    /// The cluster's name.
    #[arg(long, env = "BERTH_CLUSTER", value_name = "NAME", default_value = CLUSTER_DEFAULT, value_parser = parse_cluster)]
    pub cluster: Name,

    /// The role the resources are (to be) reserved for.
    #[arg(long, env = "BERTH_ROLE", value_name = "ROLE")]
    pub role: Role,

    /// The principal the operation is done as [default: the role].
    #[arg(long, env = "BERTH_PRINCIPAL", value_name = "PRINCIPAL")]
    pub principal: Option<Principal>,

    /// How long to wait for an offer that holds the resources, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub timeout_ms: u64,
}

/// `berth reserve` and `berth unreserve`.
#[derive(Debug, Args)]
pub struct ReserveArgs {
    #[command(flatten)]
    pub target: OperatorArgs,

    /// The resources, unreserved, as a resource string: "cpus:1;mem:256".
    #[arg(long, value_name = "RESOURCES", value_parser = parse_resources)]
    pub resources: Resources,
}

/// `berth volume`.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Reserves disk for the role and creates a persistent volume on it.
    Create(VolumeArgs),
    /// Destroys a persistent volume (its data is deleted) and unreserves its disk. Refused
    /// while a task uses it.
    Destroy(VolumeArgs),
}

/// A volume, as `berth volume` names it.
#[derive(Debug, Args)]
pub struct VolumeArgs {
    #[command(flatten)]
    pub target: OperatorArgs,

    /// The volume's id.
    #[arg(long, value_name = "ID")]
    pub id: VolumeId,

    /// Its size, in MiB of disk.
    #[arg(long, value_name = "MIB")]
    pub size: u64,

    /// Where tasks see it, relative to their sandbox.
    #[arg(long, value_name = "PATH", value_parser = parse_container_path)]
    pub path: ContainerPath,
}

fn parse_container_path(text: &str) -> Result<ContainerPath, String> {
    ContainerPath::new(text).map_err(|error| error.to_string())
}

/// `berth run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The masters, as IP:PORT separated by commas.
    #[arg(long, env = "BERTH_MASTERS", value_name = "IP:PORT,...", value_parser = parse_master_addresses)]
    pub masters: MasterAddresses,

    /// A file holding the cluster secret.
    #[arg(long, env = "BERTH_SECRET_FILE", value_name = "FILE")]
    pub secret_file: PathBuf,

    /// The cluster's name.
    #[arg(long, env = "BERTH_CLUSTER", value_name = "NAME", default_value = CLUSTER_DEFAULT, value_parser = parse_cluster)]
    pub cluster: Name,

    /// The framework's name.
    #[arg(long, env = "BERTH_RUN_NAME", value_name = "NAME", default_value = "berth-run", value_parser = parse_cluster)]
    pub name: Name,

    /// The framework's role: its share of the cluster, its reservations and volumes.
    #[arg(
        long,
        env = "BERTH_ROLE",
        value_name = "ROLE",
        default_value = "default"
    )]
    pub role: Role,

    /// The framework's principal [default: the role].
    #[arg(long, env = "BERTH_PRINCIPAL", value_name = "PRINCIPAL")]
    pub principal: Option<Principal>,

    /// The task's cpus.
    #[arg(long, value_name = "CPUS", default_value = "0.1")]
    pub cpus: String,

    /// The task's memory, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 32)]
    pub mem: u64,

    /// A persistent volume for the task, as ID:SIZE_MIB:PATH (PATH inside the sandbox).
    #[arg(long, value_name = "ID:SIZE:PATH")]
    pub volume: Option<crate::run::VolumeRequest>,

    /// Give up after this many milliseconds without the task ending [default: wait].
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,

    /// The command, run with `sh -c` in the task's sandbox.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// A parsed `--masters ID=IP:PORT,...` list: 1, 3 or 5 masters with distinct ids and
/// addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterList(pub BTreeMap<MasterId, Address>);

/// A parsed `--masters IP:PORT,...` list of masters to ask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterAddresses(pub Vec<Address>);

/// The most masters `berth leader` asks: the largest cluster.
pub const MASTER_ADDRESSES_MAX: usize = 5;

/// Why a `--masters` list is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MasterListError {
    /// An entry is not `ID=IP:PORT`.
    #[error("{entry:?} is not ID=IP:PORT (for example 1=10.0.0.1:5050)")]
    Entry {
        /// The entry.
        entry: String,
    },
    /// An id is not a number from 0 to 255.
    #[error("the id in {entry:?} is not a number from 0 to 255")]
    Id {
        /// The entry.
        entry: String,
    },
    /// An address is not `IP:PORT`.
    #[error("the address in {entry:?} is not IP:PORT (for example 10.0.0.1:5050)")]
    Address {
        /// The entry.
        entry: String,
    },
    /// Two entries have the same id.
    #[error("master id {id} is listed twice")]
    DuplicateId {
        /// The id.
        id: u8,
    },
    /// Two entries have the same address.
    #[error("address {address} is listed twice")]
    DuplicateAddress {
        /// The address.
        address: String,
    },
    /// The list does not have 1, 3 or 5 masters.
    #[error(
        "--masters must list 1, 3 or 5 masters, not {count} (an even number adds no fault \
         tolerance)"
    )]
    Count {
        /// How many it lists.
        count: usize,
    },
    /// `berth leader` was given more masters than a cluster has.
    #[error("--masters lists {count} masters; a cluster has at most {MASTER_ADDRESSES_MAX}")]
    TooMany {
        /// How many it lists.
        count: usize,
    },
}

/// Parses `--masters` for `berth master`: `ID=IP:PORT` entries separated by commas.
pub fn parse_master_list(text: &str) -> Result<MasterList, MasterListError> {
    let mut members = BTreeMap::new();
    for entry in text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let Some((id, address)) = entry.split_once('=') else {
            return Err(MasterListError::Entry {
                entry: entry.to_string(),
            });
        };
        let id: u8 = id.trim().parse().map_err(|_| MasterListError::Id {
            entry: entry.to_string(),
        })?;
        let address = parse_socket_address(address.trim(), entry)?;
        if members.values().any(|listed| *listed == address) {
            return Err(MasterListError::DuplicateAddress {
                address: address.to_string(),
            });
        }
        if members.insert(MasterId(id), address).is_some() {
            return Err(MasterListError::DuplicateId { id });
        }
    }
    if !MEMBERSHIP_SIZES.contains(&members.len()) {
        return Err(MasterListError::Count {
            count: members.len(),
        });
    }
    Ok(MasterList(members))
}

/// Parses `--masters` for `berth leader`: `IP:PORT` or `ID=IP:PORT` entries separated by
/// commas.
pub fn parse_master_addresses(text: &str) -> Result<MasterAddresses, MasterListError> {
    let mut addresses: Vec<Address> = Vec::new();
    for entry in text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let address_text = entry.split_once('=').map_or(entry, |(_, address)| address);
        let address = parse_socket_address(address_text.trim(), entry)?;
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    if addresses.is_empty() {
        return Err(MasterListError::Count { count: 0 });
    }
    if addresses.len() > MASTER_ADDRESSES_MAX {
        return Err(MasterListError::TooMany {
            count: addresses.len(),
        });
    }
    Ok(MasterAddresses(addresses))
}

/// A master's address: a socket address, written the way the transport dials it.
fn parse_socket_address(text: &str, entry: &str) -> Result<Address, MasterListError> {
    let error = || MasterListError::Address {
        entry: entry.to_string(),
    };
    let socket_address: SocketAddr = text.parse().map_err(|_| error())?;
    Address::new(&socket_address.to_string()).map_err(|_| error())
}

fn parse_cluster(text: &str) -> Result<Name, NameError> {
    Name::new(text)
}

fn parse_resources(text: &str) -> Result<Resources, ResourceParseError> {
    Resources::parse(text)
}

fn parse_connections_max(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(count) if count > 0 => Ok(count),
        _ => Err(format!(
            "the number of connections to accept is a whole number from 1, not {text:?}"
        )),
    }
}

fn parse_local_agents(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(count) if count <= crate::local::LOCAL_AGENTS_MAX => Ok(count),
        _ => Err(format!(
            "a local cluster has 0 to {} agents, not {text:?}",
            crate::local::LOCAL_AGENTS_MAX
        )),
    }
}

fn parse_membership_size(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(count) if MEMBERSHIP_SIZES.contains(&count) => Ok(count),
        _ => Err(format!("a cluster has 1, 3 or 5 masters, not {text:?}")),
    }
}

/// Why a command line was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommandLineError {
    /// The flags or environment variables are wrong, or help or the version was asked for:
    /// clap's own error, which knows how to print itself ([`clap::Error::exit`]).
    #[error(transparent)]
    Usage(clap::Error),
    /// The configuration file is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Parses `berth`'s command line `args` (the program's name first), with the configuration
/// file it names if any: flags first, then `BERTH_*` variables, then the file, then the
/// built-in defaults. See [`crate::config`].
pub fn parse_command_line<I, T>(args: I) -> Result<Cli, CommandLineError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut command = Cli::command();
    if let Some((name, path)) = config_file_named(&command, &args) {
        command = ConfigFile::read(&path, &command, &name)?.apply(command);
    }
    let matches = command
        .try_get_matches_from_mut(args)
        .map_err(CommandLineError::Usage)?;
    Cli::from_arg_matches(&matches)
        .map_err(|error| CommandLineError::Usage(error.format(&mut command)))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Resources { text } => {
            print!("{}", describe_resources(&text)?);
            Ok(())
        }
        Command::Master(args) => runtime()?.block_on(master(args)),
        Command::Agent(args) => runtime()?.block_on(agent(args, cli.log_format)),
        Command::Executor(args) => executor_runtime()?.block_on(executor(args)),
        Command::Local(args) => {
            let options = LocalOptions {
                masters: args.masters,
                agents: args.agents,
                agent_resources: args.agent_resources,
                dir: args.dir,
                log_format: cli.log_format,
            };
            if args.demo {
                runtime()?.block_on(crate::local::run_demo(options))
            } else {
                runtime()?.block_on(run_local(options, shutdown_signal()))
            }
        }
        Command::Leader(args) => runtime()?.block_on(leader(args)),
        Command::State(args) => runtime()?.block_on(state(args)),
        Command::Run(args) => runtime()?.block_on(run_command(*args)),
        Command::Reserve(args) => runtime()?.block_on(operator(
            args.target,
            crate::operator::OperatorRequest::Reserve(args.resources),
        )),
        Command::Unreserve(args) => runtime()?.block_on(operator(
            args.target,
            crate::operator::OperatorRequest::Unreserve(args.resources),
        )),
        Command::Volume(VolumeCommand::Create(args)) => runtime()?.block_on(operator(
            args.target,
            crate::operator::OperatorRequest::CreateVolume {
                id: args.id,
                size_mb: args.size,
                path: args.path,
            },
        )),
        Command::Volume(VolumeCommand::Destroy(args)) => runtime()?.block_on(operator(
            args.target,
            crate::operator::OperatorRequest::DestroyVolume {
                id: args.id,
                size_mb: args.size,
                path: args.path,
            },
        )),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// An executor's runtime: one thread is plenty for a few tasks, and leaves the CPUs to them.
fn executor_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// `berth agent`.
async fn agent(args: AgentArgs, log_format: crate::logging::LogFormat) -> anyhow::Result<()> {
    if let Some(parent) = args.parent_pid {
        exit_with_parent(parent)?;
    }
    let advertise = args.advertise.unwrap_or(args.listen);
    if advertise.ip().is_unspecified() || advertise.port() == 0 {
        anyhow::bail!(
            "the masters cannot reach this agent at {advertise}: give --advertise IP:PORT, \
             the address they reach it at"
        );
    }
    let address = Address::new(&advertise.to_string()).context("a socket address")?;
    let boot_id = match args.boot_id {
        Some(text) => BootId::new(&text).with_context(|| format!("invalid --boot-id {text:?}"))?,
        None => host::boot_id()?,
    };
    let hostname_text = args.hostname.unwrap_or_else(host::hostname);
    let hostname = Name::new(&hostname_text).with_context(|| {
        format!("the host name {hostname_text:?} is not a valid name: give --hostname")
    })?;
    let resources = match args.resources {
        Some(resources) => resources,
        None => {
            crate::work_dir::WorkDir::new(&args.work_dir).create()?;
            host::detect_resources(&args.work_dir)?
        }
    };
    let info = AgentInfo {
        hostname,
        resources,
    };
    let agent =
        AgentConfig::new(args.masters.0, address, info, boot_id).context("invalid --masters")?;
    let secret = ClusterSecret::read(&args.secret_file)?;
    let executable = std::env::current_exe().context("cannot find the berth executable")?;
    let mut executors = ExecutorSettings::new(executable);
    executors.log_format = log_format;
    let node = AgentNode::open(AgentNodeConfig {
        agent,
        cluster: args.cluster,
        secret,
        work_dir: args.work_dir,
        executors,
        driver: DriverConfig::default(),
    })?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    node.run(listener, shutdown_signal()).await?;
    Ok(())
}

/// `berth executor`.
async fn executor(args: ExecutorArgs) -> anyhow::Result<()> {
    let config = ExecutorConfig {
        work_dir: args.work_dir,
        framework: args.framework,
        executor: args.executor,
        kill_grace: Duration::from_millis(args.kill_grace_ms),
        recovery_timeout: Duration::from_millis(args.recovery_timeout_ms),
    };
    run_executor(config, shutdown_signal()).await?;
    Ok(())
}

/// `berth master`.
async fn master(args: MasterArgs) -> anyhow::Result<()> {
    if let Some(parent) = args.parent_pid {
        exit_with_parent(parent)?;
    }
    let id = MasterId(args.id);
    let MasterList(members) = args.masters;
    let Some(own_address) = members.get(&id) else {
        let ids: Vec<String> = members.keys().map(ToString::to_string).collect();
        anyhow::bail!(
            "--id {id} is not in --masters (its ids are {}): list this master too",
            ids.join(", ")
        );
    };
    let listen = match args.listen {
        Some(listen) => listen,
        None => own_address
            .as_str()
            .parse()
            .context("a --masters address is IP:PORT")?,
    };
    let master = MasterConfig::new(id, members).context("invalid --masters")?;
    let secret = ClusterSecret::read(&args.secret_file)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let config = MasterNodeConfig {
        master,
        cluster: args.cluster,
        secret,
        data_dir: args.data_dir,
        driver: DriverConfig::default(),
        inbound_connections_max: args.max_connections,
    };
    run_master(config, listener, shutdown_signal()).await?;
    Ok(())
}

/// `berth leader`.
async fn leader(args: LeaderArgs) -> anyhow::Result<()> {
    let secret = ClusterSecret::read(&args.secret_file)?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let report = find_leader(&args.masters.0, args.cluster, secret, timeout).await;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", describe_leader(&report, timeout));
    }
    if report.leader.is_none() {
        anyhow::bail!("no master named a leader: an election may be under way, retry");
    }
    Ok(())
}

/// `berth state`.
async fn state(args: LeaderArgs) -> anyhow::Result<()> {
    let secret = ClusterSecret::read(&args.secret_file)?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let state = query_state(&args.masters.0, args.cluster, secret, timeout).await;
    if args.json {
        println!("{}", serde_json::to_string(&state)?);
    } else {
        print!("{}", describe_state(&state, timeout));
    }
    if state.leaders.masters.iter().all(|answer| !answer.answered) {
        anyhow::bail!("no master answered within {timeout:?}: check --masters and --secret-file");
    }
    Ok(())
}

/// The tables `berth state` prints.
pub fn describe_state(state: &ClusterState, timeout: Duration) -> String {
    let mut text = describe_leader(&state.leaders, timeout);
    if let Some(commit_index) = state.commit_index {
        text.push_str(&format!("registry as of log index {commit_index}\n"));
    }
    text.push_str(&format!(
        "\n{:<10} {:<22} {:<16} {:<12} {:<8} {}\n",
        "AGENT", "ADDRESS", "HOST", "STATUS", "LEADER", "RESOURCES"
    ));
    for agent in &state.agents {
        let with_leader = if agent.registered_with_leader {
            "yes"
        } else {
            "no"
        };
        text.push_str(&format!(
            "{:<10} {:<22} {:<16} {:<12} {:<8} {}\n",
            agent.id, agent.address, agent.hostname, agent.status, with_leader, agent.resources
        ));
    }
    text.push_str(&format!(
        "\n{:<10} {:<16} {:<12} {:<12} {}\n",
        "FRAMEWORK", "NAME", "ROLE", "PRINCIPAL", "SCHEDULER"
    ));
    for framework in &state.frameworks {
        let scheduler = if framework.connected {
            "connected".to_string()
        } else {
            format!(
                "gone (failover timeout {} s)",
                framework.failover_timeout_seconds
            )
        };
        text.push_str(&format!(
            "{:<10} {:<16} {:<12} {:<12} {}\n",
            framework.id, framework.name, framework.role, framework.principal, scheduler
        ));
    }
    if !state.role_weights.is_empty() {
        text.push_str("\nROLE WEIGHTS\n");
        for (role, weight) in &state.role_weights {
            text.push_str(&format!("{role:<16} {weight}\n"));
        }
    }
    text
}

/// The table `berth leader` prints.
pub fn describe_leader(report: &LeaderReport, timeout: Duration) -> String {
    let mut table = format!("{:<24} {:<8} {}\n", "MASTER", "TERM", "LEADER");
    for answer in &report.masters {
        let (term, leader) = match (answer.answered, answer.term, &answer.leader) {
            (true, Some(term), Some(leader)) => (term.to_string(), leader.to_string()),
            (true, Some(term), None) => (term.to_string(), "(none known)".to_string()),
            _ => ("-".to_string(), format!("(no answer within {timeout:?})")),
        };
        table.push_str(&format!("{:<24} {:<8} {}\n", answer.address, term, leader));
    }
    if let (Some(leader), Some(term)) = (&report.leader, report.term) {
        table.push_str(&format!("leader: {leader} (term {term})\n"));
    }
    table
}

/// Completes on Ctrl-C or SIGTERM. If a handler cannot be installed, that signal is not
/// waited for (rather than completing at once).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate_signal() => {}
    }
}

#[cfg(unix)]
fn terminate_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    async move {
        match terminate {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(not(unix))]
fn terminate_signal() -> impl Future<Output = ()> {
    std::future::pending()
}

/// Asks the kernel to send this process SIGTERM when its parent exits, and fails if the
/// parent `parent` is already gone (its orphan would otherwise run on unnoticed).
#[cfg(target_os = "linux")]
fn exit_with_parent(parent: u32) -> anyhow::Result<()> {
    use rustix::process::{Pid, Signal, getppid, set_parent_process_death_signal};
    set_parent_process_death_signal(Some(Signal::TERM))
        .context("cannot ask to be stopped with the parent process")?;
    let expected = i32::try_from(parent).ok().and_then(Pid::from_raw);
    if getppid() != expected {
        anyhow::bail!("the parent process {parent} has already exited");
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn exit_with_parent(_parent: u32) -> anyhow::Result<()> {
    Ok(())
}

/// The table `berth resources` prints.
pub fn describe_resources(text: &str) -> anyhow::Result<String> {
    let resources = Resources::parse(text).context("invalid resource string")?;
    let mut table = format!("{:<12} {:<16} {}\n", "NAME", "RESERVED FOR", "AMOUNT");
    for resource in resources.to_list() {
        let role = match &resource.key.reservation {
            Reservation::Unreserved => "*".to_string(),
            Reservation::Static(role) => format!("{role} (static)"),
            Reservation::Dynamic { role, principal } => format!("{role} (by {principal})"),
        };
        let amount = match &resource.value {
            ResourceValue::Scalar(quantity) => quantity.to_string(),
            ResourceValue::Ranges(ranges) => ranges.to_string(),
        };
        table.push_str(&format!(
            "{:<12} {:<16} {}\n",
            resource.key.name, role, amount
        ));
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn describes_each_entry() {
        let table = describe_resources("cpus:4;cpus(ops):0.5;ports:[1-2]").expect("valid");
        assert!(
            table.contains("cpus         *                4\n"),
            "{table}"
        );
        assert!(
            table.contains("cpus         ops (static)     0.5\n"),
            "{table}"
        );
        assert!(
            table.contains("ports        *                [1-2]\n"),
            "{table}"
        );
    }

    #[test]
    fn names_the_offending_part() {
        let error = describe_resources("cpus:4;mem:lots").expect_err("invalid");
        assert!(format!("{error:#}").contains("mem:lots"), "{error:#}");
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_master_accepts_65536_connections_unless_told_otherwise() {
        let master = |extra: &[&str]| -> Result<usize, clap::Error> {
            let mut arguments = vec![
                "berth",
                "master",
                "--id",
                "1",
                "--masters",
                "1=127.0.0.1:5050",
                "--data-dir",
                "d",
                "--secret-file",
                "s",
            ];
            arguments.extend_from_slice(extra);
            match Cli::try_parse_from(arguments)?.command {
                Command::Master(args) => Ok(args.max_connections),
                other => panic!("parsed as another command: {other:?}"),
            }
        };
        assert_eq!(master(&[]).expect("valid"), INBOUND_CONNECTIONS_DEFAULT);
        assert_eq!(
            master(&["--max-connections", "100000"]).expect("valid"),
            100_000
        );
        let error = master(&["--max-connections", "0"]).expect_err("zero accepts nothing");
        assert!(
            error.to_string().contains("a whole number from 1"),
            "{error}"
        );
    }

    #[test]
    fn a_master_list_has_one_three_or_five_masters() {
        let list = parse_master_list("1=127.0.0.1:5050, 2=127.0.0.1:5051,3=127.0.0.1:5052")
            .expect("valid");
        assert_eq!(list.0.len(), 3);
        assert_eq!(list.0[&MasterId(2)].as_str(), "127.0.0.1:5051");
        let error = parse_master_list("1=127.0.0.1:5050,2=127.0.0.1:5051").expect_err("two");
        assert_eq!(
            error.to_string(),
            "--masters must list 1, 3 or 5 masters, not 2 (an even number adds no fault \
             tolerance)"
        );
    }

    #[test]
    fn a_bad_master_entry_is_named() {
        let cases = [
            (
                "1=127.0.0.1:5050,127.0.0.1:5051",
                "\"127.0.0.1:5051\" is not ID=IP:PORT",
            ),
            ("x=127.0.0.1:5050", "the id in \"x=127.0.0.1:5050\""),
            (
                "1=localhost",
                "the address in \"1=localhost\" is not IP:PORT",
            ),
            (
                "1=127.0.0.1:1,1=127.0.0.1:2,3=127.0.0.1:3",
                "master id 1 is listed twice",
            ),
            (
                "1=127.0.0.1:1,2=127.0.0.1:1,3=127.0.0.1:3",
                "127.0.0.1:1 is listed twice",
            ),
        ];
        for (text, expected) in cases {
            let error = parse_master_list(text).expect_err(text).to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn leader_accepts_plain_or_numbered_addresses() {
        let addresses =
            parse_master_addresses("127.0.0.1:5050,2=127.0.0.1:5051,127.0.0.1:5050").expect("ok");
        assert_eq!(addresses.0.len(), 2, "duplicates are asked once");
        assert!(parse_master_addresses("").is_err());
    }
}
