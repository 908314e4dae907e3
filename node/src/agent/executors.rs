//! The agent's side of its executors: starting them, talking to them over the Unix socket,
//! and noticing when they exit. See the [agent documentation](super) for what is done for
//! each action and event.
//!
//! One task, [`ExecutorManager::run`], owns every executor's entry. Connections and child
//! processes report to it through a channel; it reports to the machine's driver through the
//! events channel, counting each event it sends. An executor's report is acknowledged only
//! once the driver has processed the event it caused ([`Driver::events_processed`]), so only
//! once the resulting checkpoint record is durable.
//!
//! No memory is shared here, so there is nothing for loom to check (RELIABILITY.md, "loom"):
//! the executor map (`executors`, `connections`) is a field of the manager, and only its
//! task reads or changes it. Connection tasks and child-process waiters own their sockets and
//! children and reach the map only by sending an [`Input`] on a tokio channel; the driver's
//! actions and its count of processed events arrive on tokio channels too. What races is the
//! order in which those messages arrive, and the manager is written for any order: every
//! input names its connection by a number never reused, an executor's entry follows only its
//! newest connection (a late `Disconnected` of an older one changes nothing), a report or an
//! acknowledgement for a connection that is no longer the executor's live one is dropped, and
//! an entry is removed only by this task, after which every input naming it finds nothing.
//! One ordering crosses two channels: the driver publishes its status before it counts an
//! event as processed, and each `watch` is behind a lock, so the status the manager reads
//! after it sees the count of an executor's connection already holds that step (what
//! `kill_unheld` relies on).
//!
//! [`Driver::events_processed`]: crate::driver::Driver::events_processed

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::OpenOptions;
use std::future::Future;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use berth_protocol::agent::{AgentAction, AgentEvent};
use berth_protocol::bounded::BoundedVec;
use berth_protocol::ids::{ExecutorId, FrameworkId, TaskId};
use rustix::process::Signal;
use tokio::net::{UnixListener, UnixStream};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{AgentNodeStatus, ExecutorSettings};
use crate::executor::wire::{
    EXECUTOR_PROTOCOL_VERSION, ExecutorHello, FromExecutor, HeldTask, LaunchTask, TaskStateReport,
    ToExecutor, read_frame, write_frame,
};
use crate::logging::LogFormat;
use crate::process::{process_is_running, signal_process, signal_session};
use crate::work_dir::{EXECUTOR_LOG_FILE, WorkDir};

/// Events queued for the driver before the manager waits for it.
pub const EVENTS_QUEUE_MAX: usize = 1024;
/// Reports and connection changes queued for the manager before connections wait for it.
pub const INPUTS_QUEUE_MAX: usize = 1024;
/// Frames queued for one executor before more are dropped (a task launch is never
/// dropped: there are at most `AGENT_TASKS_MAX` of them).
pub const EXECUTOR_QUEUE_MAX: usize = 3 * berth_protocol::message::AGENT_TASKS_MAX;
/// Executor connections open at once (an executor has one, and an agent runs at most one
/// executor per task); more are refused.
pub const EXECUTOR_CONNECTIONS_MAX: usize = berth_protocol::message::AGENT_TASKS_MAX;
/// How long a connecting executor has to say hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the manager looks at executors that are not connected: has the process gone,
/// has a new executor taken too long to connect.
pub const EXECUTOR_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// What the manager needs to start an executor.
#[derive(Clone, Debug)]
pub struct ExecutorLaunch {
    executable: PathBuf,
    kill_grace: Duration,
    registration_timeout: Duration,
    log_format: LogFormat,
}

impl From<&ExecutorSettings> for ExecutorLaunch {
    fn from(settings: &ExecutorSettings) -> ExecutorLaunch {
        ExecutorLaunch {
            executable: settings.executable.clone(),
            kill_grace: settings.kill_grace,
            registration_timeout: settings.registration_timeout,
            log_format: settings.log_format,
        }
    }
}

type ExecutorKey = (FrameworkId, ExecutorId);

/// What connections and child processes tell the manager.
enum Input {
    Connected {
        connection: u64,
        hello: ExecutorHello,
        outgoing: mpsc::Sender<ToExecutor>,
    },
    Report {
        connection: u64,
        report: TaskStateReport,
    },
    Disconnected {
        connection: u64,
    },
    ProcessExited {
        pid: u32,
        status: std::io::Result<ExitStatus>,
    },
}

/// Something to do once the driver has processed event number `event`.
enum AfterEvent {
    /// Acknowledge a report to the executor (on the connection it came on).
    Acknowledge {
        event: u64,
        connection: u64,
        key: ExecutorKey,
        sequence: u64,
        task: TaskId,
        terminal: bool,
    },
    /// Kill the tasks a (re)connected executor runs that the machine does not hold as
    /// running in it.
    KillUnheld {
        event: u64,
        connection: u64,
        key: ExecutorKey,
        tasks: Vec<HeldTask>,
    },
}

impl AfterEvent {
    fn event(&self) -> u64 {
        match self {
            AfterEvent::Acknowledge { event, .. } | AfterEvent::KillUnheld { event, .. } => *event,
        }
    }
}

/// One executor, from its start (or first connection) until its process is gone.
#[derive(Debug)]
struct ExecutorEntry {
    /// Its process id, once started or connected.
    pid: Option<u32>,
    /// When this agent process started it, until it connects.
    started_at: Option<Instant>,
    /// Its process has exited.
    process_gone: bool,
    /// Its live connection.
    connection: Option<(u64, mpsc::Sender<ToExecutor>)>,
    /// Frames waiting for a connection, in order.
    queued: Vec<ToExecutor>,
    /// The tasks it holds, as far as the agent knows: launched or announced in its hello,
    /// until their final report is acknowledged.
    held: BTreeSet<TaskId>,
    /// Told to shut down; launches wait for the process to exit and go to a new one.
    retiring: bool,
}

impl ExecutorEntry {
    fn new(pid: Option<u32>, started_at: Option<Instant>) -> ExecutorEntry {
        ExecutorEntry {
            pid,
            started_at,
            process_gone: pid.is_none(),
            connection: None,
            queued: Vec::new(),
            held: BTreeSet::new(),
            retiring: false,
        }
    }

    fn is_connected_on(&self, connection: u64) -> bool {
        self.connection
            .as_ref()
            .is_some_and(|(id, _)| *id == connection)
    }

    fn has_launches_queued(&self) -> bool {
        self.queued
            .iter()
            .any(|frame| matches!(frame, ToExecutor::Launch(_)))
    }
}

/// The task that owns the agent's executors. See the [module documentation](self).
pub struct ExecutorManager {
    work_dir: WorkDir,
    launch: ExecutorLaunch,
    executors: BTreeMap<ExecutorKey, ExecutorEntry>,
    connections: BTreeMap<u64, ExecutorKey>,
    next_connection: u64,
    events: mpsc::Sender<AgentEvent>,
    /// Events sent to the driver so far.
    events_sent: u64,
    events_processed: watch::Receiver<u64>,
    status: watch::Receiver<AgentNodeStatus>,
    after_events: VecDeque<AfterEvent>,
    inputs_sender: mpsc::Sender<Input>,
    inputs: mpsc::Receiver<Input>,
    /// One task per open executor connection.
    connection_tasks: JoinSet<()>,
    /// One task per executor this agent process started, waiting for it to exit.
    waiters: JoinSet<()>,
}

/// What woke the manager.
enum Wake {
    Action(Option<AgentAction>),
    Input(Input),
    Processed,
    Accepted(std::io::Result<UnixStream>),
    Check,
    Stop,
}

impl ExecutorManager {
    /// A manager with no executors yet.
    pub fn new(
        work_dir: WorkDir,
        launch: ExecutorLaunch,
        events: mpsc::Sender<AgentEvent>,
        events_processed: watch::Receiver<u64>,
        status: watch::Receiver<AgentNodeStatus>,
    ) -> ExecutorManager {
        let (inputs_sender, inputs) = mpsc::channel(INPUTS_QUEUE_MAX);
        ExecutorManager {
            work_dir,
            launch,
            executors: BTreeMap::new(),
            connections: BTreeMap::new(),
            next_connection: 0,
            events,
            events_sent: 0,
            events_processed,
            status,
            after_events: VecDeque::new(),
            inputs_sender,
            inputs,
            connection_tasks: JoinSet::new(),
            waiters: JoinSet::new(),
        }
    }

    /// Accepts executors on `listener` and carries out `actions` until `shutdown`
    /// completes. Executors keep running; their connections close.
    pub async fn run(
        mut self,
        listener: UnixListener,
        mut actions: mpsc::UnboundedReceiver<AgentAction>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut check = tokio::time::interval(EXECUTOR_CHECK_INTERVAL);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut processed = self.events_processed.clone();
        loop {
            // Actions first: a machine step's StartExecutor and LaunchTask are handled before
            // the new executor's hello, so a new executor is never taken for an idle one.
            let wake = tokio::select! {
                biased;
                () = &mut shutdown => Wake::Stop,
                action = actions.recv() => Wake::Action(action),
                Some(input) = self.inputs.recv() => Wake::Input(input),
                changed = processed.changed() => match changed {
                    Ok(()) => Wake::Processed,
                    Err(_) => Wake::Stop,
                },
                accepted = listener.accept() => Wake::Accepted(accepted.map(|(stream, _)| stream)),
                _ = check.tick() => Wake::Check,
            };
            match wake {
                Wake::Stop | Wake::Action(None) => break,
                Wake::Action(Some(action)) => self.handle_action(action).await,
                Wake::Input(input) => self.handle_input(input).await,
                Wake::Processed => self.run_after_events(),
                Wake::Accepted(Ok(stream)) => self.accept(stream),
                Wake::Accepted(Err(error)) => {
                    tracing::warn!(%error, "accepting an executor's connection failed");
                    tokio::time::sleep(EXECUTOR_CHECK_INTERVAL).await;
                }
                Wake::Check => self.check_processes().await,
            }
            if self.events.is_closed() {
                break;
            }
        }
        self.connection_tasks.shutdown().await;
        self.waiters.shutdown().await;
    }

    async fn handle_action(&mut self, action: AgentAction) {
        match action {
            AgentAction::StartExecutor {
                framework,
                executor,
            } => {
                let key = (framework, executor);
                if self.executors.contains_key(&key) {
                    tracing::debug!(framework = %key.0, executor = %key.1, "the executor is already running");
                    return;
                }
                let entry = self.start_executor(&key);
                let gone = entry.process_gone;
                self.executors.insert(key.clone(), entry);
                if gone {
                    self.executor_ended(&key).await;
                }
            }
            AgentAction::LaunchTask {
                framework,
                executor,
                task,
                resources,
                command,
            } => {
                let key = (framework, executor);
                let Some(entry) = self.executors.get_mut(&key) else {
                    // The executor has just exited and the machine, told so next, fails the
                    // task: running it would contradict that report (A1).
                    tracing::warn!(%framework, executor = %key.1, %task, "not launching: its executor has exited");
                    return;
                };
                tracing::info!(%framework, executor = %key.1, %task, "launching a task");
                let launch = ToExecutor::Launch(Box::new(LaunchTask {
                    task: task.clone(),
                    command,
                    resources,
                }));
                if entry.retiring || entry.connection.is_none() {
                    entry.queued.push(launch);
                } else {
                    entry.held.insert(task);
                    send_to(&key, entry, launch);
                }
            }
            AgentAction::KillTask {
                framework,
                executor,
                task,
            } => {
                let key = (framework, executor);
                let Some(entry) = self.executors.get_mut(&key) else {
                    tracing::info!(%framework, executor = %key.1, %task, "cannot kill: the executor is not running");
                    return;
                };
                tracing::info!(%framework, executor = %key.1, %task, "killing a task");
                let kill = ToExecutor::Kill { task };
                if entry.connection.is_some() && !entry.retiring {
                    send_to(&key, entry, kill);
                } else {
                    entry.queued.push(kill);
                }
            }
            // Done by the driver's action hook already; the executor is gone.
            AgentAction::DestroyExecutor {
                framework,
                executor,
            } => {
                let key = (framework, executor);
                self.executors.remove(&key);
                self.connections.retain(|_, connected| *connected != key);
            }
            AgentAction::CreateVolumeDirectory { .. }
            | AgentAction::DeleteVolumeDirectory { .. } => {}
            AgentAction::ShutdownExecutor {
                framework,
                executor,
            } => {
                let key = (framework, executor);
                let Some(entry) = self.executors.get_mut(&key) else {
                    return;
                };
                tracing::info!(%framework, executor = %key.1, "shutting the executor down");
                entry.queued.clear();
                entry.retiring = true;
                if entry.connection.is_some() {
                    send_to(&key, entry, ToExecutor::Shutdown);
                } else {
                    entry.queued.push(ToExecutor::Shutdown);
                }
            }
        }
    }

    async fn handle_input(&mut self, input: Input) {
        match input {
            Input::Connected {
                connection,
                hello,
                outgoing,
            } => self.connected(connection, hello, outgoing).await,
            Input::Report { connection, report } => self.reported(connection, report).await,
            Input::Disconnected { connection } => {
                let Some(key) = self.connections.remove(&connection) else {
                    return;
                };
                let Some(entry) = self.executors.get_mut(&key) else {
                    return;
                };
                if entry.is_connected_on(connection) {
                    entry.connection = None;
                    tracing::info!(framework = %key.0, executor = %key.1, "an executor disconnected");
                }
                if entry.connection.is_none() && entry.process_gone {
                    self.executor_ended(&key).await;
                }
            }
            Input::ProcessExited { pid, status } => {
                let Some((key, entry)) = self
                    .executors
                    .iter_mut()
                    .find(|(_, entry)| entry.pid == Some(pid) && !entry.process_gone)
                else {
                    return;
                };
                let key = key.clone();
                match &status {
                    Ok(status) => {
                        tracing::info!(framework = %key.0, executor = %key.1, pid, %status, "an executor exited")
                    }
                    Err(error) => {
                        tracing::warn!(framework = %key.0, executor = %key.1, pid, %error, "cannot learn how an executor exited")
                    }
                }
                entry.process_gone = true;
                if entry.connection.is_none() {
                    self.executor_ended(&key).await;
                }
            }
        }
    }

    /// An executor said hello: it is (again) reachable, with the tasks it holds.
    async fn connected(
        &mut self,
        connection: u64,
        hello: ExecutorHello,
        outgoing: mpsc::Sender<ToExecutor>,
    ) {
        let key = (hello.framework, hello.executor.clone());
        tracing::info!(
            framework = %key.0,
            executor = %key.1,
            pid = hello.pid,
            tasks = hello.tasks.len(),
            "an executor connected"
        );
        let entry = self
            .executors
            .entry(key.clone())
            .or_insert_with(|| ExecutorEntry::new(Some(hello.pid), None));
        if entry.pid != Some(hello.pid) {
            if let Some(previous) = entry.pid
                && !entry.process_gone
            {
                tracing::warn!(
                    framework = %key.0,
                    executor = %key.1,
                    previous,
                    pid = hello.pid,
                    "a second process claims to be this executor; following the newest"
                );
            }
            entry.pid = Some(hello.pid);
            entry.process_gone = false;
        }
        if let Some((previous, _)) = entry.connection.take() {
            self.connections.remove(&previous);
        }
        entry.started_at = None;
        entry.connection = Some((connection, outgoing));
        entry.held = hello.tasks.iter().map(|held| held.task.clone()).collect();
        self.connections.insert(connection, key.clone());
        if entry.retiring && entry.has_launches_queued() {
            // Still alive, so it has not acted on the shutdown: it can take the launches.
            entry.retiring = false;
        }
        let queued = std::mem::take(&mut entry.queued);
        if entry.retiring {
            send_to(&key, entry, ToExecutor::Shutdown);
        } else {
            for frame in queued {
                if let ToExecutor::Launch(launch) = &frame {
                    entry.held.insert(launch.task.clone());
                }
                send_to(&key, entry, frame);
            }
            self.retire_if_idle(&key);
        }
        let tasks =
            BoundedVec::from_vec(hello.tasks.iter().map(|held| held.task.clone()).collect())
                .expect("a hello holds at most as many tasks as an agent");
        let event = AgentEvent::ExecutorConnected {
            framework: key.0,
            executor: key.1.clone(),
            tasks,
        };
        if let Some(event) = self.send_event(event).await {
            self.after_events.push_back(AfterEvent::KillUnheld {
                event,
                connection,
                key,
                tasks: hello.tasks.into_vec(),
            });
        }
    }

    async fn reported(&mut self, connection: u64, report: TaskStateReport) {
        let Some(key) = self.connections.get(&connection).cloned() else {
            return;
        };
        tracing::info!(
            framework = %key.0,
            executor = %key.1,
            task = %report.task,
            state = %report.state,
            reason = ?report.reason,
            "the executor reports a task's state"
        );
        let event = AgentEvent::TaskStateReported {
            framework: key.0,
            executor: key.1.clone(),
            task: report.task.clone(),
            state: report.state,
            reason: report.reason,
        };
        if let Some(event) = self.send_event(event).await {
            self.after_events.push_back(AfterEvent::Acknowledge {
                event,
                connection,
                key,
                sequence: report.sequence,
                task: report.task,
                terminal: report.state.is_terminal(),
            });
        }
    }

    /// Sends `event` to the driver; returns its number, or `None` if the driver has stopped.
    async fn send_event(&mut self, event: AgentEvent) -> Option<u64> {
        self.events.send(event).await.ok()?;
        self.events_sent += 1;
        Some(self.events_sent)
    }

    /// Does what waited for events the driver has now processed.
    fn run_after_events(&mut self) {
        let processed = *self.events_processed.borrow_and_update();
        while self
            .after_events
            .front()
            .is_some_and(|after| after.event() <= processed)
        {
            let Some(after) = self.after_events.pop_front() else {
                break;
            };
            match after {
                AfterEvent::Acknowledge {
                    connection,
                    key,
                    sequence,
                    task,
                    terminal,
                    ..
                } => self.acknowledge(connection, &key, sequence, &task, terminal),
                AfterEvent::KillUnheld {
                    connection,
                    key,
                    tasks,
                    ..
                } => self.kill_unheld(connection, &key, &tasks),
            }
        }
    }

    fn acknowledge(
        &mut self,
        connection: u64,
        key: &ExecutorKey,
        sequence: u64,
        task: &TaskId,
        terminal: bool,
    ) {
        let Some(entry) = self.executors.get_mut(key) else {
            return;
        };
        if !entry.is_connected_on(connection) {
            return; // The executor re-sends the report on its new connection.
        }
        send_to(key, entry, ToExecutor::Acknowledge { sequence });
        if terminal {
            entry.held.remove(task);
            self.retire_if_idle(key);
        }
    }

    /// Kills what a (re)connected executor runs that the machine does not hold as a running
    /// task of this executor: a task the agent reported ended must not run (A1).
    fn kill_unheld(&mut self, connection: u64, key: &ExecutorKey, tasks: &[HeldTask]) {
        let status = self.status.borrow().clone();
        let Some(entry) = self.executors.get_mut(key) else {
            return;
        };
        if !entry.is_connected_on(connection) {
            return;
        }
        for held in tasks.iter().filter(|held| !held.state.is_terminal()) {
            let running_here = status
                .tasks
                .get(&(key.0, held.task.clone()))
                .is_some_and(|task| task.executor == key.1 && !task.state.is_terminal());
            if !running_here {
                tracing::warn!(
                    framework = %key.0,
                    executor = %key.1,
                    task = %held.task,
                    "the executor runs a task this agent does not hold as running: killing it"
                );
                send_to(
                    key,
                    entry,
                    ToExecutor::Kill {
                        task: held.task.clone(),
                    },
                );
            }
        }
    }

    /// Tells a connected executor that holds nothing, and has nothing coming, to exit.
    fn retire_if_idle(&mut self, key: &ExecutorKey) {
        let Some(entry) = self.executors.get_mut(key) else {
            return;
        };
        if entry.connection.is_some()
            && !entry.retiring
            && entry.held.is_empty()
            && entry.queued.is_empty()
        {
            tracing::info!(framework = %key.0, executor = %key.1, "the executor is idle: telling it to exit");
            entry.retiring = true;
            send_to(key, entry, ToExecutor::Shutdown);
        }
    }

    /// Starts `berth executor` for `key`, detached: its own session (it calls `setsid`),
    /// standard input from `/dev/null`, output to its log file, no pipe to this process. A
    /// failure to start is logged and returns an entry whose process is gone.
    fn start_executor(&mut self, key: &ExecutorKey) -> ExecutorEntry {
        match self.spawn_executor(key) {
            Ok(pid) => {
                tracing::info!(framework = %key.0, executor = %key.1, pid, "started an executor");
                ExecutorEntry::new(Some(pid), Some(Instant::now()))
            }
            Err(error) => {
                tracing::error!(framework = %key.0, executor = %key.1, %error, "cannot start an executor");
                ExecutorEntry::new(None, None)
            }
        }
    }

    fn spawn_executor(&mut self, key: &ExecutorKey) -> anyhow::Result<u32> {
        use anyhow::Context;
        let directory = self.work_dir.executor_dir(&key.0, &key.1);
        std::fs::create_dir_all(&directory)
            .with_context(|| format!("cannot create {}", directory.display()))?;
        let log_path = directory.join(EXECUTOR_LOG_FILE);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let log_format = match self.launch.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        let mut command = Command::new(&self.launch.executable);
        command
            .args(["--log-format", log_format, "executor", "--work-dir"])
            .arg(self.work_dir.root())
            .args([
                "--framework",
                &key.0.to_string(),
                "--executor",
                key.1.as_str(),
            ])
            .args([
                "--kill-grace-ms",
                &self.launch.kill_grace.as_millis().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cannot share the log file")?)
            .stderr(log)
            .env("NO_COLOR", "1")
            // It must outlive this process: never killed with it.
            .kill_on_drop(false);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot run {}", self.launch.executable.display()))?;
        let pid = child
            .id()
            .context("the executor exited before its process id was read")?;
        let inputs = self.inputs_sender.clone();
        self.waiters.spawn(async move {
            let status = child.wait().await;
            let _ = inputs.send(Input::ProcessExited { pid, status }).await;
        });
        Ok(pid)
    }

    /// The executor's connection is closed and its process gone: clean up what it left, and
    /// either start it again for launches that waited for it to retire, or tell the machine.
    async fn executor_ended(&mut self, key: &ExecutorKey) {
        let Some(entry) = self.executors.get_mut(key) else {
            return;
        };
        if let Some(pid) = entry.pid {
            let killed = signal_session(pid, Signal::KILL);
            if killed > 0 {
                tracing::warn!(framework = %key.0, executor = %key.1, killed, "killed processes the executor left behind");
            }
        }
        if entry.retiring && entry.has_launches_queued() {
            let queued: Vec<ToExecutor> = std::mem::take(&mut entry.queued)
                .into_iter()
                .filter(|frame| !matches!(frame, ToExecutor::Shutdown))
                .collect();
            let mut restarted = self.start_executor(key);
            if !restarted.process_gone {
                tracing::info!(framework = %key.0, executor = %key.1, "started the executor again for new tasks");
                restarted.queued = queued;
                self.executors.insert(key.clone(), restarted);
                return;
            }
        }
        self.executors.remove(key);
        self.connections.retain(|_, connected| connected != key);
        tracing::info!(framework = %key.0, executor = %key.1, "the executor is gone");
        let event = AgentEvent::ExecutorExited {
            framework: key.0,
            executor: key.1.clone(),
        };
        let _ = self.send_event(event).await;
    }

    /// Executors that are not connected: has the process gone (one this agent process did
    /// not start is not its child, so it is watched through `/proc`), has a new one taken
    /// too long to connect.
    async fn check_processes(&mut self) {
        // Forget the child waiters that have ended.
        while self.waiters.try_join_next().is_some() {}
        let now = Instant::now();
        let mut ended = Vec::new();
        for (key, entry) in &mut self.executors {
            if entry.connection.is_some() || entry.process_gone {
                continue;
            }
            let Some(pid) = entry.pid else {
                continue;
            };
            if !process_is_running(pid) {
                entry.process_gone = true;
                ended.push(key.clone());
                continue;
            }
            if entry.started_at.is_some_and(|started| {
                now.duration_since(started) > self.launch.registration_timeout
            }) {
                tracing::warn!(
                    framework = %key.0,
                    executor = %key.1,
                    pid,
                    timeout = ?self.launch.registration_timeout,
                    "the executor did not connect in time: killing it"
                );
                entry.started_at = None;
                // It may not have reached its own `setsid` yet: kill it by pid as well.
                let _ = signal_process(pid, Signal::KILL);
                signal_session(pid, Signal::KILL);
            }
        }
        for key in ended {
            self.executor_ended(&key).await;
        }
    }

    /// Serves a new executor connection: its hello, then its reports, until it ends.
    fn accept(&mut self, stream: UnixStream) {
        while self.connection_tasks.try_join_next().is_some() {}
        if self.connection_tasks.len() >= EXECUTOR_CONNECTIONS_MAX {
            tracing::warn!("refusing an executor connection: {EXECUTOR_CONNECTIONS_MAX} are open");
            return;
        }
        let connection = self.next_connection;
        self.next_connection += 1;
        let inputs = self.inputs_sender.clone();
        self.connection_tasks
            .spawn(async move { serve_connection(connection, stream, inputs).await });
    }
}

/// Queues `frame` for the executor's connection; a full queue drops it (logged).
fn send_to(key: &ExecutorKey, entry: &mut ExecutorEntry, frame: ToExecutor) {
    let Some((_, outgoing)) = &entry.connection else {
        entry.queued.push(frame);
        return;
    };
    if let Err(error) = outgoing.try_send(frame) {
        tracing::warn!(framework = %key.0, executor = %key.1, %error, "cannot queue a frame for the executor; dropped");
    }
}

/// Reads the hello, then forwards reports, until the connection ends; writes what the
/// manager queues for it.
async fn serve_connection(connection: u64, stream: UnixStream, inputs: mpsc::Sender<Input>) {
    let (mut reading, mut writing) = stream.into_split();
    let hello = match tokio::time::timeout(
        HELLO_TIMEOUT,
        read_frame::<_, FromExecutor>(&mut reading),
    )
    .await
    {
        Ok(Ok(Some(FromExecutor::Hello(hello)))) if hello.version == EXECUTOR_PROTOCOL_VERSION => {
            hello
        }
        Ok(Ok(Some(FromExecutor::Hello(hello)))) => {
            tracing::warn!(
                version = hello.version,
                expected = EXECUTOR_PROTOCOL_VERSION,
                framework = %hello.framework,
                executor = %hello.executor,
                "refusing an executor of another version"
            );
            return;
        }
        Ok(Ok(Some(FromExecutor::Report(_)))) => {
            tracing::warn!("an executor sent a report before its hello; closing the connection");
            return;
        }
        Ok(Ok(None)) => return,
        Ok(Err(error)) => {
            tracing::warn!(%error, "a bad hello from an executor; closing the connection");
            return;
        }
        Err(_) => {
            tracing::warn!(
                "an executor did not say hello within {HELLO_TIMEOUT:?}; closing the connection"
            );
            return;
        }
    };
    let (outgoing, mut queue) = mpsc::channel::<ToExecutor>(EXECUTOR_QUEUE_MAX);
    let connected = Input::Connected {
        connection,
        hello,
        outgoing,
    };
    if inputs.send(connected).await.is_err() {
        return;
    }
    let writer = async move {
        while let Some(frame) = queue.recv().await {
            if let Err(error) = write_frame(&mut writing, &frame).await {
                tracing::info!(%error, "writing to an executor failed");
                break;
            }
        }
    };
    let reader = async {
        loop {
            match read_frame::<_, FromExecutor>(&mut reading).await {
                Ok(Some(FromExecutor::Report(report))) => {
                    if inputs
                        .send(Input::Report { connection, report })
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Ok(Some(FromExecutor::Hello(_))) => {
                    tracing::warn!("an executor said hello twice; closing the connection");
                    break;
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, "a bad frame from an executor; closing the connection");
                    break;
                }
            }
        }
    };
    // The connection ends when the executor closes it, sends something bad, or the manager
    // drops its queue; either way both directions close.
    tokio::select! {
        () = reader => {}
        () = writer => {}
    }
    let _ = inputs.send(Input::Disconnected { connection }).await;
}
