//! `berth executor`: the process an agent starts to run a framework's tasks.
//!
//! An executor runs in a session of its own (it calls `setsid` first), with no pipe to its
//! agent, so it survives its agent: a `kill -9` of the agent process, an agent upgrade or a
//! restart. It talks to the agent over the Unix socket in the agent's work directory
//! ([`wire`]), and while the agent is gone it keeps running its tasks, keeps their reports,
//! and tries to reconnect with backoff from [`RECONNECT_BACKOFF_MIN`] doubling to
//! [`RECONNECT_BACKOFF_MAX`]. The longest pause is well inside the agent's executor
//! re-register window (2 s by default), so a restarted agent finds its executors in time.
//!
//! # Tasks
//!
//! Each task runs as `sh -c COMMAND` in a fresh sandbox
//! `sandboxes/<framework>/<executor>/<task>/run-<n>/` (see [`WorkDir`]), with `stdout` and
//! `stderr` files there, in a process group of its own. The executor reports:
//!
//! | event | report |
//! | --- | --- |
//! | launch received | `TASK_STARTING` |
//! | process started | `TASK_RUNNING` |
//! | exit status 0 | `TASK_FINISHED` (reason command exited) |
//! | non-zero exit, or a signal it was not asked for | `TASK_FAILED` (reason command exited) |
//! | exit after a kill | `TASK_KILLED` (reason killed by framework; executor terminated on shutdown) |
//! | sandbox or process could not be set up | `TASK_FAILED` (the error is in the run's `stderr`) |
//!
//! A kill is SIGTERM to the task's process group, then SIGKILL after the grace period
//! ([`KILL_GRACE_DEFAULT`]). When a task's shell exits, whatever it left in its process group
//! is killed. Persistent volumes in the task's resources appear at their container paths as
//! symbolic links to `volumes/<role>/<id>/`, which the executor creates if missing and never
//! deletes.
//!
//! # Reports and reconnection
//!
//! Reports are numbered and kept until the agent acknowledges them, which it does once their
//! effect is durable in its checkpoint. On every (re)connection the executor first says who
//! it is and which tasks it holds (running, or ended with a report not yet acknowledged),
//! then re-sends, for each task, its latest unacknowledged report: an older one is superseded
//! and dropped, so that the agent never sees a task's state go backwards.
//!
//! # Exit
//!
//! The executor exits (status 0) once the agent told it to shut down and it holds no task
//! (every task ended and its final report was acknowledged). The agent says so when the
//! executor is idle, or when its tasks must stop. On SIGTERM or SIGINT, or when no agent was
//! reachable for the recovery timeout ([`RECOVERY_TIMEOUT_DEFAULT`], Mesos's
//! `--recovery_timeout`), it kills its tasks and exits once their processes are gone, without
//! waiting for acknowledgements.

#![warn(missing_docs)]

pub mod task;
pub mod wire;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use berth_protocol::bounded::BoundedVec;
use berth_protocol::ids::{ExecutorId, FrameworkId, TaskId};
use berth_protocol::message::AGENT_TASKS_MAX;
use berth_protocol::task::{TaskState, TaskStatusReason};
use rustix::process::Signal;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::wire::{
    EXECUTOR_PROTOCOL_VERSION, ExecutorHello, FromExecutor, HeldTask, LaunchTask, TaskStateReport,
    ToExecutor, read_frame, write_frame,
};
use crate::process::signal_process_group;
use crate::work_dir::{EXECUTOR_PID_FILE, WorkDir};

/// The default wait between SIGTERM and SIGKILL when a task is killed (Mesos: the task's
/// kill policy, else a grace period derived from the agent's 5 s
/// `--executor_shutdown_grace_period`).
pub const KILL_GRACE_DEFAULT: Duration = Duration::from_secs(3);
/// The default time without an agent after which the executor kills its tasks and exits
/// (Mesos's `--recovery_timeout`: 15 min).
pub const RECOVERY_TIMEOUT_DEFAULT: Duration = Duration::from_secs(15 * 60);
/// The first pause before reconnecting to the agent.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest pause between two connection attempts.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Frames queued for the agent before the connection is given up as stuck (it is then
/// re-established, and everything unacknowledged re-sent).
pub const OUTGOING_QUEUE_MAX: usize = 4 * AGENT_TASKS_MAX;
/// Frames from the agent queued for the executor's loop.
pub const INCOMING_QUEUE_MAX: usize = 1024;
/// How long an exiting executor waits for its last reports to be written.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// What an executor is told when it starts.
#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    /// Its agent's work directory.
    pub work_dir: PathBuf,
    /// Its framework.
    pub framework: FrameworkId,
    /// Its id.
    pub executor: ExecutorId,
    /// The wait between SIGTERM and SIGKILL when a task is killed.
    pub kill_grace: Duration,
    /// The time without an agent after which it kills its tasks and exits.
    pub recovery_timeout: Duration,
}

/// Why an executor could not run.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// Its directory or pid file could not be written.
    #[error("cannot write {}: {error}", path.display())]
    PidFile {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// It gave up on an agent that did not come back.
    #[error(
        "no agent at {} for {timeout:?}: killed the tasks and exited",
        socket.display()
    )]
    AgentGone {
        /// The agent's socket.
        socket: PathBuf,
        /// The recovery timeout.
        timeout: Duration,
    },
}

/// Runs the executor until it is told to shut down and holds no task, or `shutdown`
/// completes, or its agent stays away for the recovery timeout.
pub async fn run_executor(
    config: ExecutorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ExecutorError> {
    become_session_leader();
    let work_dir = WorkDir::new(&config.work_dir);
    let directory = work_dir.executor_dir(&config.framework, &config.executor);
    let pid_file = directory.join(EXECUTOR_PID_FILE);
    std::fs::create_dir_all(&directory).map_err(|error| ExecutorError::PidFile {
        path: directory.clone(),
        error,
    })?;
    crate::storage::atomic_write_file(
        &directory,
        EXECUTOR_PID_FILE,
        format!("{}\n", std::process::id()).as_bytes(),
    )
    .map_err(|error| ExecutorError::PidFile {
        path: pid_file.clone(),
        error: std::io::Error::other(error.to_string()),
    })?;
    tracing::info!(
        framework = %config.framework,
        executor = %config.executor,
        pid = std::process::id(),
        work_dir = %config.work_dir.display(),
        "executor starting"
    );
    let (exits_sender, exits) = mpsc::channel(AGENT_TASKS_MAX);
    let (escalations_sender, escalations) = mpsc::channel(AGENT_TASKS_MAX);
    let mut executor = Executor {
        socket: work_dir.executor_socket(),
        work_dir,
        config,
        tasks: BTreeMap::new(),
        reports: Vec::new(),
        next_sequence: 0,
        shutdown_requested: false,
        abandoning: false,
        link: None,
        exits_sender,
        escalations_sender,
    };
    let result = executor.run(exits, escalations, shutdown).await;
    if let Err(error) = std::fs::remove_file(&pid_file) {
        tracing::warn!(file = %pid_file.display(), %error, "cannot remove the pid file");
    }
    tracing::info!("executor exiting");
    result
}

/// Starts a session of its own, so that the executor outlives its agent and a signal to the
/// agent's process group or terminal does not reach it.
fn become_session_leader() {
    if let Err(error) = rustix::process::setsid() {
        // Already a session leader (started by hand from a shell's job control, say).
        tracing::debug!(%error, "setsid failed; keeping the current session");
    }
}

/// One task the executor holds.
#[derive(Debug)]
struct HeldTaskState {
    state: TaskState,
    /// The shell's process id (= the task's process group), while it runs.
    process: Option<u32>,
    /// Why it is being killed, once a kill was asked for.
    kill_reason: Option<TaskStatusReason>,
}

/// The live connection to the agent.
struct Link {
    outgoing: mpsc::Sender<FromExecutor>,
    writer: JoinHandle<()>,
}

/// What woke the executor's loop.
enum Wake {
    Shutdown,
    TaskExited(TaskId, u32, std::io::Result<ExitStatus>),
    KillDue(TaskId, u32),
    Agent(Option<ToExecutor>),
    Reconnect,
    RecoveryTimeout,
}

struct Executor {
    config: ExecutorConfig,
    work_dir: WorkDir,
    socket: PathBuf,
    /// Every task held: running, or ended with its final report unacknowledged.
    tasks: BTreeMap<TaskId, HeldTaskState>,
    /// Unacknowledged reports, oldest first.
    reports: Vec<TaskStateReport>,
    next_sequence: u64,
    shutdown_requested: bool,
    /// Exiting without the agent: killing the tasks, then exit.
    abandoning: bool,
    link: Option<Link>,
    exits_sender: mpsc::Sender<(TaskId, u32, std::io::Result<ExitStatus>)>,
    escalations_sender: mpsc::Sender<(TaskId, u32)>,
}

impl Executor {
    async fn run(
        &mut self,
        mut exits: mpsc::Receiver<(TaskId, u32, std::io::Result<ExitStatus>)>,
        mut escalations: mpsc::Receiver<(TaskId, u32)>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ExecutorError> {
        tokio::pin!(shutdown);
        let mut incoming: Option<mpsc::Receiver<ToExecutor>> = None;
        let mut backoff = RECONNECT_BACKOFF_MIN;
        let mut next_attempt = Instant::now();
        let mut disconnected_since = Some(Instant::now());
        let mut gave_up = false;
        loop {
            if self.should_exit() {
                break;
            }
            let reconnect_at = incoming.is_none().then_some(next_attempt);
            let recovery_deadline = disconnected_since
                .filter(|_| !self.abandoning)
                .map(|since| since + self.config.recovery_timeout);
            let wake = tokio::select! {
                () = &mut shutdown, if !self.abandoning => Wake::Shutdown,
                Some((task, pid, status)) = exits.recv() => Wake::TaskExited(task, pid, status),
                Some((task, pid)) = escalations.recv() => Wake::KillDue(task, pid),
                frame = receive(&mut incoming) => Wake::Agent(frame),
                () = sleep_until(reconnect_at) => Wake::Reconnect,
                () = sleep_until(recovery_deadline) => Wake::RecoveryTimeout,
            };
            match wake {
                Wake::Shutdown => {
                    tracing::info!("asked to stop: killing every task");
                    self.abandon();
                }
                Wake::TaskExited(task, pid, status) => self.task_exited(task, pid, status),
                Wake::KillDue(task, pid) => self.kill_due(&task, pid),
                Wake::Agent(Some(frame)) => self.handle_frame(frame),
                Wake::Agent(None) => {
                    tracing::info!(socket = %self.socket.display(), "lost the agent; reconnecting");
                    incoming = None;
                    self.link = None;
                    backoff = RECONNECT_BACKOFF_MIN;
                    next_attempt = Instant::now() + backoff;
                    disconnected_since = Some(Instant::now());
                }
                Wake::Reconnect => match self.connect().await {
                    Ok(receiver) => {
                        incoming = Some(receiver);
                        disconnected_since = None;
                        backoff = RECONNECT_BACKOFF_MIN;
                    }
                    Err(error) => {
                        tracing::debug!(socket = %self.socket.display(), %error, "cannot reach the agent");
                        next_attempt = Instant::now() + backoff;
                        backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
                    }
                },
                Wake::RecoveryTimeout => {
                    tracing::error!(
                        socket = %self.socket.display(),
                        timeout = ?self.config.recovery_timeout,
                        "the agent did not come back: killing every task and exiting"
                    );
                    gave_up = true;
                    self.abandon();
                }
            }
        }
        if let Some(link) = self.link.take() {
            drop(link.outgoing);
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, link.writer).await;
        }
        if gave_up {
            return Err(ExecutorError::AgentGone {
                socket: self.socket.clone(),
                timeout: self.config.recovery_timeout,
            });
        }
        Ok(())
    }

    fn should_exit(&self) -> bool {
        let told_and_idle = self.shutdown_requested && self.tasks.is_empty();
        let abandoned = self.abandoning && self.tasks.values().all(|task| task.process.is_none());
        told_and_idle || abandoned
    }

    /// Connects to the agent, says hello and re-sends the latest unacknowledged report of
    /// each task. Returns the receiver of the agent's frames.
    async fn connect(&mut self) -> std::io::Result<mpsc::Receiver<ToExecutor>> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(&self.socket))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let (mut reading, mut writing) = stream.into_split();
        let (outgoing, mut queue) = mpsc::channel::<FromExecutor>(OUTGOING_QUEUE_MAX);
        let (frames, incoming) = mpsc::channel(INCOMING_QUEUE_MAX);
        let writer = tokio::spawn(async move {
            while let Some(frame) = queue.recv().await {
                if let Err(error) = write_frame(&mut writing, &frame).await {
                    tracing::info!(%error, "writing to the agent failed");
                    break;
                }
            }
        });
        tokio::spawn(async move {
            loop {
                match read_frame::<_, ToExecutor>(&mut reading).await {
                    Ok(Some(frame)) => {
                        if frames.send(frame).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(%error, "a bad frame from the agent; closing the connection");
                        break;
                    }
                }
            }
        });
        self.link = Some(Link { outgoing, writer });
        self.supersede_old_reports();
        let tasks: Vec<HeldTask> = self
            .tasks
            .iter()
            .map(|(task, held)| HeldTask {
                task: task.clone(),
                state: held.state,
            })
            .collect();
        let hello = ExecutorHello {
            version: EXECUTOR_PROTOCOL_VERSION,
            framework: self.config.framework,
            executor: self.config.executor.clone(),
            pid: std::process::id(),
            tasks: BoundedVec::from_vec(tasks)
                .map_err(|_| std::io::Error::other("more tasks than an agent holds"))?,
        };
        tracing::info!(
            socket = %self.socket.display(),
            tasks = hello.tasks.len(),
            reports = self.reports.len(),
            "connected to the agent"
        );
        self.send(FromExecutor::Hello(hello));
        for report in self.reports.clone() {
            self.send(FromExecutor::Report(report));
        }
        Ok(incoming)
    }

    /// Keeps only the latest unacknowledged report of each task.
    fn supersede_old_reports(&mut self) {
        let mut latest: BTreeMap<TaskId, u64> = BTreeMap::new();
        for report in &self.reports {
            latest.insert(report.task.clone(), report.sequence);
        }
        self.reports
            .retain(|report| latest.get(&report.task) == Some(&report.sequence));
    }

    /// Queues `frame` for the agent; a stuck or closed connection is dropped (the reader sees
    /// it end, and the executor reconnects).
    fn send(&mut self, frame: FromExecutor) {
        let Some(link) = &self.link else {
            return;
        };
        if let Err(error) = link.outgoing.try_send(frame) {
            tracing::warn!(%error, "cannot queue a frame for the agent; dropping the connection");
            if let Some(link) = self.link.take() {
                link.writer.abort();
            }
        }
    }

    fn handle_frame(&mut self, frame: ToExecutor) {
        match frame {
            ToExecutor::Launch(launch) => self.launch(*launch),
            ToExecutor::Kill { task } => self.kill(&task, TaskStatusReason::KilledByFramework),
            ToExecutor::Acknowledge { sequence } => self.acknowledge(sequence),
            ToExecutor::Shutdown => {
                tracing::info!(
                    tasks = self.tasks.len(),
                    "the agent asks this executor to shut down"
                );
                self.shutdown_requested = true;
                let running: Vec<TaskId> = self.tasks.keys().cloned().collect();
                for task in running {
                    self.kill(&task, TaskStatusReason::ExecutorTerminated);
                }
            }
        }
    }

    fn launch(&mut self, launch: LaunchTask) {
        if self.tasks.contains_key(&launch.task) {
            tracing::debug!(task = %launch.task, "a duplicate launch; ignored");
            return;
        }
        if self.abandoning || self.tasks.len() >= AGENT_TASKS_MAX {
            tracing::warn!(task = %launch.task, "not launching: this executor is exiting or full");
            return;
        }
        // A launch means the agent wants this executor: an earlier shutdown is void.
        self.shutdown_requested = false;
        self.tasks.insert(
            launch.task.clone(),
            HeldTaskState {
                state: TaskState::Staging,
                process: None,
                kill_reason: None,
            },
        );
        self.report(&launch.task, TaskState::Starting, None);
        match task::start(
            &self.work_dir,
            &self.config.framework,
            &self.config.executor,
            &launch,
        ) {
            Ok(started) => {
                tracing::info!(
                    task = %launch.task,
                    pid = started.pid,
                    sandbox = %started.sandbox.display(),
                    "task started"
                );
                if let Some(held) = self.tasks.get_mut(&launch.task) {
                    held.process = Some(started.pid);
                }
                let exits = self.exits_sender.clone();
                let task = launch.task.clone();
                let pid = started.pid;
                let mut child = started.child;
                tokio::spawn(async move {
                    let status = child.wait().await;
                    let _ = exits.send((task, pid, status)).await;
                });
                self.report(&launch.task, TaskState::Running, None);
            }
            Err(error) => {
                tracing::warn!(task = %launch.task, %error, "the task could not start");
                task::record_failure(&error);
                self.report(&launch.task, TaskState::Failed, None);
            }
        }
    }

    /// SIGTERM to the task's process group, and SIGKILL after the grace period.
    fn kill(&mut self, task: &TaskId, reason: TaskStatusReason) {
        let Some(held) = self.tasks.get_mut(task) else {
            tracing::debug!(%task, "a kill of a task this executor does not hold; ignored");
            return;
        };
        let Some(pid) = held.process else {
            return; // It has ended already.
        };
        if held.kill_reason.is_some() {
            return; // A kill is under way.
        }
        held.kill_reason = Some(reason);
        tracing::info!(%task, pid, grace = ?self.config.kill_grace, "killing the task");
        if let Err(error) = signal_process_group(pid, Signal::TERM) {
            tracing::debug!(%task, %error, "SIGTERM failed; the task may have exited");
        }
        let escalations = self.escalations_sender.clone();
        let grace = self.config.kill_grace;
        let task = task.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = escalations.send((task, pid)).await;
        });
    }

    fn kill_due(&mut self, task: &TaskId, pid: u32) {
        let still_running = self
            .tasks
            .get(task)
            .is_some_and(|held| held.process == Some(pid));
        if still_running {
            tracing::info!(%task, pid, "the task outlived its grace period: SIGKILL");
            if let Err(error) = signal_process_group(pid, Signal::KILL) {
                tracing::debug!(%task, %error, "SIGKILL failed; the task may have exited");
            }
        }
    }

    fn task_exited(&mut self, task: TaskId, pid: u32, status: std::io::Result<ExitStatus>) {
        // Whatever the shell left in its process group goes with it.
        let _ = signal_process_group(pid, Signal::KILL);
        let Some(held) = self.tasks.get_mut(&task) else {
            return;
        };
        if held.process != Some(pid) {
            return;
        }
        held.process = None;
        let (state, reason) = match (&held.kill_reason, &status) {
            (Some(reason), _) => (TaskState::Killed, Some(*reason)),
            (None, Ok(status)) if status.success() => {
                (TaskState::Finished, Some(TaskStatusReason::CommandExited))
            }
            (None, _) => (TaskState::Failed, Some(TaskStatusReason::CommandExited)),
        };
        match &status {
            Ok(status) => tracing::info!(%task, %status, state = %state, "task exited"),
            Err(error) => tracing::warn!(%task, %error, "cannot learn how the task exited"),
        }
        self.report(&task, state, reason);
    }

    fn acknowledge(&mut self, sequence: u64) {
        let Some(position) = self
            .reports
            .iter()
            .position(|report| report.sequence == sequence)
        else {
            return; // A duplicate, or for a superseded report.
        };
        let report = self.reports.remove(position);
        let done = report.state.is_terminal()
            && !self.reports.iter().any(|other| other.task == report.task);
        if done {
            self.tasks.remove(&report.task);
            tracing::debug!(task = %report.task, "the task's final report is acknowledged");
        }
    }

    fn report(&mut self, task: &TaskId, state: TaskState, reason: Option<TaskStatusReason>) {
        let Some(held) = self.tasks.get_mut(task) else {
            return;
        };
        held.state = state;
        let report = TaskStateReport {
            sequence: self.next_sequence,
            task: task.clone(),
            state,
            reason,
        };
        self.next_sequence += 1;
        self.reports.push(report.clone());
        self.send(FromExecutor::Report(report));
    }

    /// Kills every task; the loop exits once their processes are gone.
    fn abandon(&mut self) {
        self.abandoning = true;
        let tasks: Vec<TaskId> = self.tasks.keys().cloned().collect();
        for task in tasks {
            self.kill(&task, TaskStatusReason::ExecutorTerminated);
        }
    }
}

/// The next frame of the connection; `None` once it ends; never completes without one.
async fn receive(incoming: &mut Option<mpsc::Receiver<ToExecutor>>) -> Option<ToExecutor> {
    match incoming {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
