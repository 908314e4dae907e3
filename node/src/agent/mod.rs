//! An agent process: the protocol's [`Agent`] machine behind a [`Driver`], a [`Network`], a
//! checkpoint in its work directory, and the executor processes that run its tasks.
//!
//! Every protocol decision (registration, fencing, reliable status updates, recovery) is in
//! [`berth_protocol::agent`]; this module executes the machine's actions and feeds it what
//! happens on the host:
//!
//! ```text
//!   masters <--TCP--> Network --inbox--> Driver(Agent) --Act--> ExecutorManager --spawn--> berth executor
//!                                          ^    |                     |     ^                  |
//!                                          |    +- Persist: meta/     |     +---Unix socket----+
//!                                          +------- AgentEvent -------+   (executor.sock)
//! ```
//!
//! | the machine asks ([`AgentAction`]) | the node does |
//! | --- | --- |
//! | `StartExecutor` | starts `berth executor` in its own session, detached (stdin `/dev/null`, output to `executors/<fw>/<ex>/executor.log`) |
//! | `LaunchTask` | hands the task to its executor over the socket, once the executor has connected |
//! | `KillTask` | asks the executor to kill the task |
//! | `ShutdownExecutor` | asks the executor to kill its tasks and exit |
//! | `DestroyExecutor` | kills the executor's whole session (it and its tasks) by the pid in its pid file and waits until it is gone, before the commands after it run |
//! | `CreateVolumeDirectory` | creates `volumes/<role>/<id>/` |
//! | `DeleteVolumeDirectory` | deletes `volumes/<role>/<id>/` and its data (only `DestroyVolume` asks for it, after it is persisted) |
//!
//! | the node sees | the machine is told ([`AgentEvent`]) |
//! | --- | --- |
//! | an executor's report | `TaskStateReported`; the report is acknowledged to the executor once the step it caused is durable |
//! | an executor connects (first time, or after an agent restart, with the tasks it holds) | `ExecutorConnected` |
//! | an executor's connection ends **and** its process is gone | `ExecutorExited` |
//!
//! An executor whose connection ended but whose process still runs is reconnecting: only
//! the end of both means it exited. Its leftover processes (its session) are killed then.
//!
//! Two things the node decides itself, because they are about processes, not the protocol:
//! an executor that holds no task and has none coming is told to shut down (its process is
//! not needed), and a task an executor still runs but the machine does not hold as running
//! in that executor (after a host reboot was simulated, say) is killed, so that no task runs
//! that the agent reports as ended (A1). A launch for an executor told to shut down waits
//! for its process to exit and goes to a new one (the machine still counts the executor as
//! running, and rightly so); a launch for an executor that has just exited is dropped,
//! because the machine, told of the exit next, reports the task failed.
//!
//! Stopping an agent (SIGTERM) leaves its executors and their tasks running, as in Mesos: a
//! restarted agent recovers them from its checkpoint (A3).
//!
//! The stop runs in order over tokio channels, with no memory shared of the agent's own: the
//! driver stops between two steps, then tells the network (a `oneshot`) and the executor
//! manager (a `watch`) to stop. The network's own shutdown, where its tasks do share memory,
//! is loom-checked ([`transport`](crate::transport), `lifecycle.rs`).

#![warn(missing_docs)]

mod executors;
pub mod host;
#[cfg(feature = "mutations")]
pub mod mutation;

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use berth_protocol::Address;
use berth_protocol::agent::{Agent, AgentConfig, AgentPhase};
use berth_protocol::bounded::Name;
use berth_protocol::ids::{AgentId, ExecutorId, FrameworkId, TaskId, Term};
use berth_protocol::task::TaskState;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use self::executors::{EVENTS_QUEUE_MAX, ExecutorLaunch, ExecutorManager};
use crate::driver::{Driver, DriverConfig, DriverError};
use crate::logging::LogFormat;
use crate::storage::StorageError;
use crate::transport::{AGENT_INBOUND_CONNECTIONS_MAX, ClusterSecret, Network, NetworkConfig};
use crate::work_dir::{SOCKET_PATH_LENGTH_MAX, WorkDir, WorkDirError};

pub use berth_protocol::agent::{AgentAction, AgentEvent};

/// How long a started executor may take to connect before it is killed (Mesos's
/// `--executor_registration_timeout`: 1 min).
pub const EXECUTOR_REGISTRATION_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);

/// Everything an agent process needs.
#[derive(Clone, Debug)]
pub struct AgentNodeConfig {
    /// The protocol's configuration: masters, own address, host name and resources, boot id,
    /// timing.
    pub agent: AgentConfig,
    /// The cluster's name; peers of another cluster are refused at the handshake.
    pub cluster: Name,
    /// The cluster's shared secret.
    pub secret: ClusterSecret,
    /// The work directory; created if missing.
    pub work_dir: PathBuf,
    /// How executors are started.
    pub executors: ExecutorSettings,
    /// The driver's settings.
    pub driver: DriverConfig,
}

/// How an agent starts and supervises its executors.
#[derive(Clone, Debug)]
pub struct ExecutorSettings {
    /// The `berth` executable to run as `berth executor`.
    pub executable: PathBuf,
    /// The wait between SIGTERM and SIGKILL when a task is killed.
    pub kill_grace: Duration,
    /// How long a started executor may take to connect.
    pub registration_timeout: Duration,
    /// The executors' log format.
    pub log_format: LogFormat,
}

impl ExecutorSettings {
    /// The defaults, running executors with `executable`.
    pub fn new(executable: PathBuf) -> ExecutorSettings {
        ExecutorSettings {
            executable,
            kill_grace: crate::executor::KILL_GRACE_DEFAULT,
            registration_timeout: EXECUTOR_REGISTRATION_TIMEOUT_DEFAULT,
            log_format: LogFormat::Text,
        }
    }
}

/// Where an agent stands with the masters, for status output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentStanding {
    /// Restarted from its checkpoint: waiting for its executors to reconnect.
    Recovering,
    /// Looking for the leader.
    Registering,
    /// Registered with the leader at `leader`, of `term`.
    Registered {
        /// The leader.
        leader: Address,
        /// Its term.
        term: Term,
    },
}

/// One task an agent holds, for status output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSummary {
    /// The executor running it.
    pub executor: ExecutorId,
    /// Its latest state.
    pub state: TaskState,
    /// How many of its updates the leader has not acknowledged yet.
    pub unacknowledged: usize,
}

/// A snapshot of an agent, published after every step of its machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentNodeStatus {
    /// Its id, once a leader admitted it.
    pub agent: Option<AgentId>,
    /// Where it stands.
    pub standing: AgentStanding,
    /// The highest term it has seen.
    pub highest_term: Term,
    /// The tasks it holds.
    pub tasks: BTreeMap<(FrameworkId, TaskId), TaskSummary>,
}

impl AgentNodeStatus {
    /// The status of `agent`.
    pub fn of(agent: &Agent) -> AgentNodeStatus {
        let standing = match agent.phase() {
            AgentPhase::Recovering { .. } => AgentStanding::Recovering,
            AgentPhase::Registering { .. } => AgentStanding::Registering,
            AgentPhase::Registered { leader, term } => AgentStanding::Registered {
                leader: leader.clone(),
                term: *term,
            },
        };
        let tasks = agent
            .durable()
            .tasks
            .iter()
            .map(|(key, task)| {
                let summary = TaskSummary {
                    executor: task.executor.clone(),
                    state: task.state,
                    unacknowledged: task.unacknowledged.len(),
                };
                (key.clone(), summary)
            })
            .collect();
        AgentNodeStatus {
            agent: agent.id(),
            standing,
            highest_term: agent.highest_term(),
            tasks,
        }
    }
}

/// Why an agent stopped or could not start. Each names the file or directory concerned.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The work directory is unusable.
    #[error(transparent)]
    WorkDirectory(#[from] WorkDirError),
    /// Another agent process uses the work directory.
    #[error(
        "another agent ({holder}) is using the work directory {}: stop it, or give this \
         agent another --work-dir",
        path.display()
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as the file says.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {}: {error}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The checkpoint could not be read: it is damaged, or unreadable.
    #[error(
        "cannot recover the agent's checkpoint in {}: {error}; nothing was changed",
        directory.display()
    )]
    Checkpoint {
        /// The checkpoint directory.
        directory: PathBuf,
        /// What is wrong (the error names the file).
        error: StorageError,
    },
    /// The protocol refused to boot from the checkpoint.
    #[error(
        "the agent's checkpoint in {} was refused: {reason}; nothing was changed",
        directory.display()
    )]
    CheckpointRefused {
        /// The checkpoint directory.
        directory: PathBuf,
        /// Why.
        reason: String,
    },
    /// The executors' socket could not be set up.
    #[error("cannot listen for executors on {}: {error}", path.display())]
    Socket {
        /// The socket's path.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// The driver stopped: storage failed (fatal, never retried).
    #[error(transparent)]
    Driver(DriverError),
    /// `BERTH_AGENT_MUTATION` names no seeded bug (`mutations` feature only).
    #[cfg(feature = "mutations")]
    #[error("BERTH_AGENT_MUTATION={name:?} names no agent mutation")]
    UnknownMutation {
        /// The name given.
        name: String,
    },
}

/// An agent whose checkpoint is loaded, whose machine has booted and whose work directory is
/// locked, ready to [`run`](AgentNode::run).
#[derive(Debug)]
pub struct AgentNode {
    driver: Driver<Agent, AgentNodeStatus>,
    status: watch::Receiver<AgentNodeStatus>,
    network: NetworkConfig,
    work_dir: WorkDir,
    executors: ExecutorSettings,
    /// Held (flock) while the agent runs; released when the process ends.
    _lock: File,
}

impl AgentNode {
    /// Creates the work directory if needed, locks it, recovers the checkpoint and boots the
    /// machine. Does no network I/O. A damaged or refused checkpoint is an error that names
    /// it, and changes nothing on disk.
    pub fn open(config: AgentNodeConfig) -> Result<AgentNode, AgentError> {
        #[cfg(feature = "mutations")]
        let config = AgentNodeConfig {
            agent: mutation::from_environment(config.agent)?,
            ..config
        };
        let work_dir = WorkDir::new(&config.work_dir);
        work_dir.create()?;
        // Absolute, so that executors (started with this path) and messages do not depend on
        // the agent's current directory.
        let root = std::fs::canonicalize(work_dir.root()).map_err(|error| WorkDirError {
            path: work_dir.root().to_path_buf(),
            error,
        })?;
        let work_dir = WorkDir::new(root);
        let lock = lock_work_dir(&work_dir)?;
        let meta = work_dir.meta();
        let (driver, status) =
            Driver::open(&meta, &config.agent, AgentNodeStatus::of, config.driver).map_err(
                |error| match error {
                    DriverError::Storage(error) => AgentError::Checkpoint {
                        directory: meta.clone(),
                        error,
                    },
                    DriverError::Boot(reason) => AgentError::CheckpointRefused {
                        directory: meta.clone(),
                        reason,
                    },
                    other => AgentError::Driver(other),
                },
            )?;
        let network = NetworkConfig {
            address: config.agent.address().clone(),
            cluster: config.cluster,
            secret: config.secret,
        };
        Ok(AgentNode {
            driver,
            status,
            network,
            work_dir,
            executors: config.executors,
            _lock: lock,
        })
    }

    /// A receiver of the agent's status, updated after every step while it runs.
    pub fn status(&self) -> watch::Receiver<AgentNodeStatus> {
        self.status.clone()
    }

    /// The work directory (absolute).
    pub fn work_dir(&self) -> &WorkDir {
        &self.work_dir
    }

    /// Listens for executors on the work directory's socket and for masters on `listener`,
    /// and runs the machine until `shutdown` completes (`Ok`) or storage fails (`Err`: stop
    /// the process, never retry). Executors keep running after it returns.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), AgentError> {
        let status = self.status.borrow().clone();
        let span = tracing::info_span!("agent", address = %self.network.address);
        async move {
            let socket = bind_executor_socket(&self.work_dir)?;
            tracing::info!(
                listening = %display_local_address(&listener),
                work_dir = %self.work_dir.root().display(),
                agent = ?status.agent.map(|agent| agent.to_string()),
                recovering = status.standing == AgentStanding::Recovering,
                tasks = status.tasks.len(),
                "agent starting"
            );
            let (network, inbox) = Network::new(self.network.clone());
            let (events_sender, events) = mpsc::channel::<AgentEvent>(EVENTS_QUEUE_MAX);
            // Unbounded because the driver must never wait: each step queues a few actions
            // and the manager takes them without waiting on the driver.
            let (actions_sender, actions) = mpsc::unbounded_channel::<AgentAction>();
            let manager = ExecutorManager::new(
                self.work_dir.clone(),
                ExecutorLaunch::from(&self.executors),
                events_sender,
                self.driver.events_processed(),
                self.status.clone(),
            );
            let (stop_others, others_stopped) = watch::channel(false);
            let (stop_accepting, accepting_stopped) = oneshot::channel::<()>();
            let driving = async {
                let work_dir = self.work_dir.clone();
                let act = move |action: AgentAction| {
                    // Actions whose effect must be complete before the commands after them
                    // (a task reported failed after its executor died; a volume directory
                    // made before its operation is acknowledged) are done here, in order.
                    match &action {
                        AgentAction::DestroyExecutor {
                            framework,
                            executor,
                        } => destroy_executor(&work_dir, framework, executor),
                        AgentAction::CreateVolumeDirectory { role, volume } => {
                            create_volume_directory(&work_dir, role, volume);
                        }
                        AgentAction::DeleteVolumeDirectory { role, volume } => {
                            delete_volume_directory(&work_dir, role, volume);
                        }
                        _ => {}
                    }
                    // The manager outlives the driver's loop; a send fails only once it has
                    // stopped, when the process is stopping too.
                    let _ = actions_sender.send(action);
                };
                let result = self
                    .driver
                    .run(&network, inbox, Some(events), act, shutdown)
                    .await;
                let _ = stop_accepting.send(());
                let _ = stop_others.send(true);
                result
            };
            let accepting = network.run(listener, AGENT_INBOUND_CONNECTIONS_MAX, async {
                let _ = accepting_stopped.await;
            });
            let mut stopped = others_stopped.clone();
            let managing = manager.run(socket, actions, async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            });
            let (result, (), ()) = tokio::join!(driving, accepting, managing);
            let socket_path = self.work_dir.executor_socket();
            if let Err(error) = std::fs::remove_file(&socket_path) {
                tracing::debug!(path = %socket_path.display(), %error, "cannot remove the socket");
            }
            tracing::info!("agent stopped; its executors keep running");
            result.map_err(AgentError::Driver)
        }
        .instrument(span)
        .await
    }
}

/// Opens the work directory, boots the agent and runs it on `listener` until `shutdown`.
pub async fn run_agent(
    config: AgentNodeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    AgentNode::open(config)?.run(listener, shutdown).await
}

/// Takes the work directory's lock, so that two agents never share a work directory, and
/// writes this process's id into the lock file.
fn lock_work_dir(work_dir: &WorkDir) -> Result<File, AgentError> {
    use rustix::fs::{FlockOperation, flock};
    let path = work_dir.lock_file();
    let lock_error = |error: std::io::Error| AgentError::Lock {
        path: path.clone(),
        error,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(lock_error)?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .map(|text| text.trim().to_string())
                .filter(|text| !text.is_empty())
                .unwrap_or_else(|| "a process".to_string());
            return Err(AgentError::Locked { path, holder });
        }
        Err(error) => return Err(lock_error(error.into())),
    }
    file.set_len(0).map_err(lock_error)?;
    writeln!(file, "pid {}", std::process::id()).map_err(lock_error)?;
    Ok(file)
}

/// Binds the executors' socket, replacing the socket a stopped agent left behind, with mode
/// 600 so that only this user's processes can connect.
fn bind_executor_socket(work_dir: &WorkDir) -> Result<UnixListener, AgentError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let path = work_dir.executor_socket();
    let socket_error = |error: std::io::Error| AgentError::Socket {
        path: path.clone(),
        error,
    };
    if path.as_os_str().len() > SOCKET_PATH_LENGTH_MAX {
        return Err(socket_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "a Unix socket path has at most {SOCKET_PATH_LENGTH_MAX} bytes: use a shorter \
                 --work-dir"
            ),
        )));
    }
    match std::fs::symlink_metadata(&path) {
        // The work directory is locked, so no other agent listens on it: a stale socket.
        Ok(metadata) if metadata.file_type().is_socket() => {
            std::fs::remove_file(&path).map_err(socket_error)?;
        }
        Ok(_) => {
            return Err(socket_error(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "something other than a socket is in the way",
            )));
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(socket_error(error)),
    }
    let listener = UnixListener::bind(&path).map_err(socket_error)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(socket_error)?;
    Ok(listener)
}

fn display_local_address(listener: &TcpListener) -> String {
    listener.local_addr().map_or_else(
        |error| format!("unknown ({error})"),
        |address| address.to_string(),
    )
}

/// How long destroying an executor waits for its processes to be gone.
const DESTROY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Kills an executor that did not reconnect, and every process of its session, and waits
/// until they are gone: its tasks are reported failed right after (A1). It blocks the
/// driver for at most [`DESTROY_TIMEOUT`], once per recovery.
fn destroy_executor(
    work_dir: &WorkDir,
    framework: &berth_protocol::ids::FrameworkId,
    executor: &berth_protocol::ids::ExecutorId,
) {
    use crate::process::{process_is_running, session_members, signal_process, signal_session};
    let file = work_dir
        .executor_dir(framework, executor)
        .join(crate::work_dir::EXECUTOR_PID_FILE);
    let Some(pid) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
    else {
        return; // It never started, or exited cleanly and removed its file.
    };
    if !crate::local::is_executor_of(pid, work_dir.root()) {
        return; // The pid was reused by another process: not ours to kill.
    }
    tracing::warn!(%framework, %executor, pid, "destroying an executor that did not reconnect");
    let _ = signal_process(pid, rustix::process::Signal::KILL);
    signal_session(pid, rustix::process::Signal::KILL);
    let deadline = std::time::Instant::now() + DESTROY_TIMEOUT;
    while (process_is_running(pid) || !session_members(pid).is_empty())
        && std::time::Instant::now() < deadline
    {
        signal_session(pid, rustix::process::Signal::KILL);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn create_volume_directory(
    work_dir: &WorkDir,
    role: &berth_protocol::ids::Role,
    volume: &berth_protocol::ids::VolumeId,
) {
    let directory = work_dir.volume_dir(
        &berth_protocol::resources::Reservation::Static(role.clone()),
        volume,
    );
    if let Err(error) = std::fs::create_dir_all(&directory) {
        tracing::error!(directory = %directory.display(), %error, "cannot create a volume's directory");
    }
}

fn delete_volume_directory(
    work_dir: &WorkDir,
    role: &berth_protocol::ids::Role,
    volume: &berth_protocol::ids::VolumeId,
) {
    let directory = work_dir.volume_dir(
        &berth_protocol::resources::Reservation::Static(role.clone()),
        volume,
    );
    match std::fs::remove_dir_all(&directory) {
        Ok(()) => tracing::info!(directory = %directory.display(), "deleted a destroyed volume"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::error!(directory = %directory.display(), %error, "cannot delete a destroyed volume");
        }
    }
}
