//! The real `berth agent` process, driven by a test that plays the leading master over the
//! real authenticated transport: registration, tasks run through real executors, an agent
//! killed with `kill -9` and restarted (A3), a simulated host reboot, and the failures an
//! operator can cause (a damaged or contradicted checkpoint, a missing or unusable work
//! directory, a wrong secret).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_node::process::{process_is_running, process_stat, session_members, signal_session};
use berth_node::storage::{RECORD_HEADER_LENGTH, Store};
use berth_node::transport::{ClusterSecret, INBOUND_CONNECTIONS_DEFAULT, Network, NetworkConfig};
use berth_node::work_dir::WorkDir;
use berth_protocol::agent::{Agent, AgentDurable, AgentRecord};
use berth_protocol::bounded::Name;
use berth_protocol::ids::{AgentId, AssignedId, ExecutorId, FrameworkId, TaskId, Term};
use berth_protocol::message::{
    AgentRegistered, KillTask, LeaderChanged, Message, Ping, ReregisterAgent, RunTask,
    StatusAcknowledgement, StatusUpdate,
};
use berth_protocol::resources::Resources;
use berth_protocol::task::{TaskCommand, TaskState, TaskStatusReason};
use berth_protocol::{Address, Machine};
use rustix::process::Signal;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

mod common;
use common::TestDirectory;

/// Long enough for anything here on a loaded machine; a test that waits this long failed.
const PATIENCE: Duration = Duration::from_secs(20);
/// How often the tests look at processes and files.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The cluster's name in these tests.
const CLUSTER: &str = "agent-test";
/// What the test agents offer.
const AGENT_RESOURCES: &str = "cpus:2;mem:1024;disk:1000";
/// The leader's term in these tests.
const TERM: Term = Term(1);

fn framework() -> FrameworkId {
    FrameworkId(AssignedId {
        term: TERM,
        sequence: 0,
    })
}

fn agent_id() -> AgentId {
    AgentId(AssignedId {
        term: TERM,
        sequence: 7,
    })
}

fn task_id(text: &str) -> TaskId {
    TaskId::new(text).expect("a task id")
}

fn executor_id(text: &str) -> ExecutorId {
    ExecutorId::new(text).expect("an executor id")
}

/// Polls `condition` until it holds; panics with `what` after [`PATIENCE`].
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The cluster's secret, in a file the agents read.
struct Secret {
    secret: ClusterSecret,
    file: PathBuf,
}

impl Secret {
    fn new(directory: &Path, name: &str) -> Secret {
        let secret = ClusterSecret::generate();
        let file = directory.join(name);
        secret.write_new_file(&file).expect("write the secret file");
        Secret { secret, file }
    }
}

/// A test that plays the leading master: it listens on loopback, and everything the agent
/// sends it arrives in its inbox.
struct FakeLeader {
    address: Address,
    network: Network,
    inbox: mpsc::Receiver<(Address, Message)>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    pinger: Option<JoinHandle<()>>,
    /// The updates acknowledged so far: a resent one is acknowledged again and skipped.
    acknowledged: Vec<StatusUpdate>,
}

impl FakeLeader {
    async fn start(secret: &ClusterSecret) -> FakeLeader {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = Address::new(&listener.local_addr().expect("an address").to_string())
            .expect("an address");
        let (network, inbox) = Network::new(NetworkConfig {
            address: address.clone(),
            cluster: Name::new(CLUSTER).expect("a name"),
            secret: secret.clone(),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = network.clone();
        let server = tokio::spawn(async move {
            serving
                .run(listener, INBOUND_CONNECTIONS_DEFAULT, async {
                    let _ = stopped.await;
                })
                .await;
        });
        FakeLeader {
            address,
            network,
            inbox,
            stop: Some(stop),
            server: Some(server),
            pinger: None,
            acknowledged: Vec::new(),
        }
    }

    fn send(&self, to: &Address, message: Message) {
        let _ = self.network.send(to, message);
    }

    /// Waits for the first message `pick` accepts, skipping others (pongs, resent
    /// registrations); panics after [`PATIENCE`] with `what` and the agent's log.
    async fn expect<T>(
        &mut self,
        what: &str,
        agent: &AgentProcess,
        mut pick: impl FnMut(&Address, &Message) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, self.inbox.recv()).await {
                Ok(Some((from, message))) => {
                    if let Some(found) = pick(&from, &message) {
                        return found;
                    }
                }
                Ok(None) | Err(_) => panic!(
                    "the leader did not receive {what} within {PATIENCE:?}; agent log:\n{}",
                    agent.log_text()
                ),
            }
        }
    }

    /// Answers the agent's registration and keeps pinging it, as a leader does.
    async fn register(&mut self, agent: &AgentProcess) {
        let (from, report) = self
            .expect("a registration", agent, |from, message| match message {
                Message::RegisterAgent(register) => Some((from.clone(), register.report)),
                _ => None,
            })
            .await;
        self.send(
            &from,
            Message::AgentRegistered(AgentRegistered {
                term: TERM,
                agent: agent_id(),
                report,
            }),
        );
        self.keep_pinging(&from);
    }

    /// Pings `agent` every 500 ms, so that it never looks for another leader.
    fn keep_pinging(&mut self, agent: &Address) {
        if let Some(pinger) = self.pinger.take() {
            pinger.abort();
        }
        let network = self.network.clone();
        let agent = agent.clone();
        self.pinger = Some(tokio::spawn(async move {
            for sequence in 0.. {
                let _ = network.send(
                    &agent,
                    Message::Ping(Ping {
                        term: TERM,
                        sequence,
                    }),
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
    }

    fn run_task(
        &self,
        agent: &Address,
        executor: &str,
        task: &str,
        resources: &str,
        command: &str,
    ) {
        self.send(
            agent,
            Message::RunTask(Box::new(RunTask {
                term: TERM,
                framework: framework(),
                executor: executor_id(executor),
                task: task_id(task),
                resources: Resources::parse(resources).expect("resources"),
                command: TaskCommand::new(command).expect("a command"),
            })),
        );
    }

    /// Waits for the next new update of `task`, checks its state and acknowledges it. An
    /// update resent because its acknowledgement was lost (the agent was killed before it
    /// was durable) is acknowledged again and skipped, as a leader does.
    async fn acknowledge_update(
        &mut self,
        agent: &AgentProcess,
        task: &str,
        state: TaskState,
    ) -> StatusUpdate {
        let wanted = task_id(task);
        loop {
            let update = self
                .expect(
                    &format!("{task} {state}"),
                    agent,
                    |_, message| match message {
                        Message::StatusUpdate(update) if update.task == wanted => {
                            Some(update.clone())
                        }
                        _ => None,
                    },
                )
                .await;
            assert_eq!(update.agent, agent_id());
            self.send(
                &agent.address,
                Message::StatusAcknowledgement(StatusAcknowledgement {
                    term: TERM,
                    framework: update.framework,
                    task: update.task.clone(),
                    update: update.update,
                }),
            );
            if self.acknowledged.contains(&update) {
                continue;
            }
            self.acknowledged.push(update.clone());
            assert_eq!(update.state, state, "{update:?}\n{}", agent.log_text());
            return update;
        }
    }

    async fn stop(mut self) {
        if let Some(pinger) = self.pinger.take() {
            pinger.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for FakeLeader {
    fn drop(&mut self) {
        if let Some(pinger) = self.pinger.take() {
            pinger.abort();
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// A `berth agent` process. Dropping it kills the agent (`kill -9`) and every process of its
/// executors' sessions, tasks included.
struct AgentProcess {
    address: Address,
    work_dir: PathBuf,
    log: PathBuf,
    /// Its flags, by name.
    flags: BTreeMap<String, String>,
    child: Option<Child>,
}

impl AgentProcess {
    /// Starts `berth agent` on a free loopback port, obeying `master`, with `flags` besides
    /// the ones every test agent has, and its log in `directory`.
    fn start(
        directory: &Path,
        work_dir: &Path,
        master: &Address,
        secret: &Path,
        flags: &[(&str, &str)],
    ) -> AgentProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind a free port")
            .local_addr()
            .expect("an address");
        let address = Address::new(&port.to_string()).expect("an address");
        let mut all_flags: BTreeMap<String, String> = [
            ("--masters", master.as_str()),
            ("--listen", address.as_str()),
            ("--cluster", CLUSTER),
            ("--hostname", "test-host"),
            ("--resources", AGENT_RESOURCES),
        ]
        .into_iter()
        .map(|(flag, value)| (flag.to_string(), value.to_string()))
        .collect();
        all_flags.insert("--work-dir".into(), work_dir.display().to_string());
        all_flags.insert("--secret-file".into(), secret.display().to_string());
        for (flag, value) in flags {
            all_flags.insert((*flag).to_string(), (*value).to_string());
        }
        let log = directory.join("agent.log");
        let mut agent = AgentProcess {
            address,
            work_dir: work_dir.to_path_buf(),
            log,
            flags: all_flags,
            child: None,
        };
        agent.restart(&[]);
        agent
    }

    /// Starts the agent again with the same flags, but for those in `changed`.
    fn restart(&mut self, changed: &[(&str, &str)]) {
        assert!(self.child.is_none(), "the agent is not running");
        for (flag, value) in changed {
            self.flags.insert((*flag).to_string(), (*value).to_string());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the agent's log");
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("agent")
            .args(self.flags.iter().flat_map(|(flag, value)| [flag, value]))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("share the log"))
            .stderr(log)
            .spawn()
            .expect("start berth agent");
        self.child = Some(child);
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("the agent runs")
    }

    /// `kill -9` the agent process alone, as a crash would, and reap it.
    fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn layout(&self) -> WorkDir {
        WorkDir::new(&self.work_dir)
    }

    /// The pid of the executor `executor`, from its pid file, once it runs.
    fn executor_pid(&self, executor: &str) -> u32 {
        let file = self
            .layout()
            .executor_dir(&framework(), &executor_id(executor))
            .join(berth_node::work_dir::EXECUTOR_PID_FILE);
        let mut pid = None;
        wait_until("the executor writes its pid file", || {
            pid = std::fs::read_to_string(&file)
                .ok()
                .and_then(|text| text.trim().parse().ok());
            pid.is_some()
        });
        pid.expect("polled")
    }

    /// The log of the executor `executor`.
    fn executor_log(&self, executor: &str) -> String {
        let file = self
            .layout()
            .executor_dir(&framework(), &executor_id(executor))
            .join(berth_node::work_dir::EXECUTOR_LOG_FILE);
        std::fs::read_to_string(file).unwrap_or_default()
    }

    /// The sandbox of a task's run.
    fn sandbox(&self, executor: &str, task: &str, run: u32) -> PathBuf {
        self.layout()
            .task_dir(&framework(), &executor_id(executor), &task_id(task))
            .join(format!("run-{run}"))
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill_hard();
        for pid in self.layout().executor_pids() {
            signal_session(pid, Signal::KILL);
        }
    }
}

/// The processes of the executor's session besides the executor, once one of them runs
/// `program` (the shell may not have started it yet when the task is reported running).
fn task_processes_running(executor: u32, program: &str) -> Vec<u32> {
    let others = || -> Vec<u32> {
        session_members(executor)
            .into_iter()
            .filter(|pid| *pid != executor)
            .collect()
    };
    wait_until(
        &format!("the task runs {program} in the executor's session"),
        || {
            others().iter().any(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|name| name.trim() == program)
            })
        },
    );
    others()
}

/// Every file of a directory tree, with its contents.
fn snapshot(directory: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(directory)
        .expect("list the directory")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.insert(path.clone(), std::fs::read(&path).expect("read a file"));
        }
    }
    files
}

/// The durable state an agent's checkpoint holds, read from a copy (opening a store may
/// truncate a torn tail, and the original must stay as the agent left it).
fn durable_state(work_dir: &Path, scratch: &Path) -> AgentDurable {
    let meta = WorkDir::new(work_dir).meta();
    std::fs::create_dir_all(scratch).expect("create the scratch directory");
    for (path, bytes) in snapshot(&meta) {
        let name = path.file_name().expect("a file name");
        std::fs::write(scratch.join(name), bytes).expect("copy a checkpoint file");
    }
    let (_, durable) = Store::<AgentRecord, AgentDurable>::open(scratch, Agent::apply)
        .expect("the checkpoint opens");
    durable
}

/// Runs `berth agent` to completion (it is expected to refuse to start), offering
/// `resources`.
fn run_agent_to_exit(work_dir: &Path, master: &Address, secret: &Path, resources: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "agent",
            "--masters",
            master.as_str(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--advertise", "127.0.0.1:1", "--cluster", CLUSTER])
        .arg("--work-dir")
        .arg(work_dir)
        .arg("--secret-file")
        .arg(secret)
        .args(["--hostname", "test-host", "--resources", resources])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start berth agent");
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().expect("check the agent").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent did not stop");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    child.wait_with_output().expect("the agent's output")
}

/// A3 (DESIGN.md: "after an agent-process restart, every task whose executor survived is
/// still known and running"), end to end: a task's executor and process survive `kill -9` of
/// the agent with the same pids, and the restarted agent re-registers with the task RUNNING.
/// Then a kill reaches the task through the reconnected executor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_survives_an_agent_crash_and_is_reregistered_running() {
    let directory = TestDirectory::new("agent-a3");
    let secret = Secret::new(directory.path(), "secret");
    let mut leader = FakeLeader::start(&secret.secret).await;
    let mut agent = AgentProcess::start(
        directory.path(),
        &directory.path().join("work"),
        &leader.address,
        &secret.file,
        &[],
    );
    leader.register(&agent).await;

    leader.run_task(
        &agent.address,
        "e1",
        "t1",
        "cpus:0.5;mem:64",
        "echo hello > out; sleep 30",
    );
    leader
        .acknowledge_update(&agent, "t1", TaskState::Starting)
        .await;
    leader
        .acknowledge_update(&agent, "t1", TaskState::Running)
        .await;

    let sandbox = agent.sandbox("e1", "t1", 1);
    wait_until("the task writes its file", || {
        std::fs::read_to_string(sandbox.join("out")).is_ok_and(|text| text == "hello\n")
    });
    assert!(sandbox.join("stdout").is_file() && sandbox.join("stderr").is_file());
    let executor = agent.executor_pid("e1");
    let task_processes = task_processes_running(executor, "sleep");
    let session_of = |pid: u32| process_stat(pid).map(|stat| stat.session);
    assert_eq!(
        session_of(executor),
        Some(executor),
        "the executor leads a session"
    );
    assert_ne!(
        session_of(agent.pid()),
        Some(executor),
        "not the agent's session"
    );

    agent.kill_hard();
    assert!(
        process_is_running(executor),
        "the executor survives the agent"
    );
    for pid in &task_processes {
        assert!(
            process_is_running(*pid),
            "task process {pid} survives the agent"
        );
    }

    let restarted = Instant::now();
    agent.restart(&[]);
    let reregistration: ReregisterAgent = leader
        .expect("a re-registration", &agent, |_, message| match message {
            Message::ReregisterAgent(reregister) => Some((**reregister).clone()),
            _ => None,
        })
        .await;
    let reregistered_after = restarted.elapsed();
    assert_eq!(reregistration.agent, agent_id());
    let reported: Vec<(TaskId, TaskState)> = reregistration
        .tasks
        .iter()
        .map(|task| (task.task.clone(), task.state))
        .collect();
    assert_eq!(reported, [(task_id("t1"), TaskState::Running)], "A3");
    assert_eq!(
        agent.log_text().matches("an executor connected").count(),
        2,
        "the executor connected to each agent process:\n{}",
        agent.log_text()
    );
    assert!(process_is_running(executor), "the same executor");
    assert_eq!(
        session_members(executor)
            .into_iter()
            .filter(|pid| *pid != executor)
            .collect::<Vec<_>>(),
        task_processes,
        "the same task processes"
    );
    println!(
        "agent restart -> re-registration with its surviving task: {} ms",
        reregistered_after.as_millis()
    );
    leader.send(
        &agent.address,
        Message::AgentReregistered(AgentRegistered {
            term: TERM,
            agent: agent_id(),
            report: reregistration.report,
        }),
    );
    leader.keep_pinging(&agent.address);

    let killed = Instant::now();
    leader.send(
        &agent.address,
        Message::KillTask(KillTask {
            term: TERM,
            framework: framework(),
            task: task_id("t1"),
        }),
    );
    let update = leader
        .acknowledge_update(&agent, "t1", TaskState::Killed)
        .await;
    assert_eq!(update.reason, Some(TaskStatusReason::KilledByFramework));
    println!("kill -> TASK_KILLED: {} ms", killed.elapsed().as_millis());
    for pid in &task_processes {
        let pid = *pid;
        wait_until("the killed task's processes are gone", || {
            !process_is_running(pid)
        });
    }
    wait_until("the idle executor exits", || !process_is_running(executor));
    leader.stop().await;
}

/// A task whose command exits non-zero is reported FAILED, after STARTING and RUNNING, with
/// its output in its sandbox; its executor, idle, exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_exits_non_zero_is_reported_failed() {
    let directory = TestDirectory::new("agent-failed");
    let secret = Secret::new(directory.path(), "secret");
    let mut leader = FakeLeader::start(&secret.secret).await;
    let agent = AgentProcess::start(
        directory.path(),
        &directory.path().join("work"),
        &leader.address,
        &secret.file,
        &[],
    );
    leader.register(&agent).await;

    leader.run_task(
        &agent.address,
        "e2",
        "bad",
        "cpus:0.1",
        "echo oops >&2; exit 3",
    );
    leader
        .acknowledge_update(&agent, "bad", TaskState::Starting)
        .await;
    leader
        .acknowledge_update(&agent, "bad", TaskState::Running)
        .await;
    let failed = leader
        .acknowledge_update(&agent, "bad", TaskState::Failed)
        .await;
    assert_eq!(failed.reason, Some(TaskStatusReason::CommandExited));
    let stderr = std::fs::read_to_string(agent.sandbox("e2", "bad", 1).join("stderr"))
        .expect("the task's stderr");
    assert_eq!(stderr, "oops\n");
    wait_until("the idle executor exits", || {
        agent.executor_log("e2").contains("executor exiting")
    });
    let pid_file = agent
        .layout()
        .executor_dir(&framework(), &executor_id("e2"))
        .join(berth_node::work_dir::EXECUTOR_PID_FILE);
    assert!(
        !pid_file.exists(),
        "an executor removes its pid file when it exits"
    );
    leader.stop().await;
}

/// A new boot id means the host rebooted: the restarted agent keeps its id and reports its
/// earlier task LOST (reason agent restarted). The executor, which here did survive (the
/// reboot is simulated), is told to kill the task, so no task runs that the agent reported
/// ended (A1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_boot_id_reports_earlier_tasks_lost_under_the_same_agent_id() {
    let directory = TestDirectory::new("agent-reboot");
    let secret = Secret::new(directory.path(), "secret");
    let mut leader = FakeLeader::start(&secret.secret).await;
    let mut agent = AgentProcess::start(
        directory.path(),
        &directory.path().join("work"),
        &leader.address,
        &secret.file,
        &[("--boot-id", "boot-one")],
    );
    leader.register(&agent).await;
    leader.run_task(&agent.address, "e3", "t3", "cpus:0.5", "sleep 30");
    leader
        .acknowledge_update(&agent, "t3", TaskState::Starting)
        .await;
    leader
        .acknowledge_update(&agent, "t3", TaskState::Running)
        .await;
    let executor = agent.executor_pid("e3");

    agent.kill_hard();
    agent.restart(&[("--boot-id", "boot-two")]);
    let reregistration: ReregisterAgent = leader
        .expect("a re-registration", &agent, |_, message| match message {
            Message::ReregisterAgent(reregister) => Some((**reregister).clone()),
            _ => None,
        })
        .await;
    assert_eq!(reregistration.agent, agent_id(), "the same agent id");
    assert_eq!(reregistration.tasks.len(), 1);
    assert_eq!(reregistration.tasks.as_slice()[0].state, TaskState::Lost);
    leader.send(
        &agent.address,
        Message::AgentReregistered(AgentRegistered {
            term: TERM,
            agent: agent_id(),
            report: reregistration.report,
        }),
    );
    leader.keep_pinging(&agent.address);
    let lost = leader
        .acknowledge_update(&agent, "t3", TaskState::Lost)
        .await;
    assert_eq!(lost.reason, Some(TaskStatusReason::AgentRestarted));
    wait_until(
        "the executor of the lost task exits, its task killed",
        || !process_is_running(executor),
    );
    assert!(
        session_members(executor).is_empty(),
        "nothing of the lost task runs"
    );
    leader.stop().await;
}

/// A damaged checkpoint stops the agent with an error that names the damaged file, and the
/// checkpoint stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_checkpoint_is_named_and_left_unchanged() {
    let directory = TestDirectory::new("agent-corrupt");
    let secret = Secret::new(directory.path(), "secret");
    let mut leader = FakeLeader::start(&secret.secret).await;
    let work_dir = directory.path().join("work");
    let mut agent = AgentProcess::start(
        directory.path(),
        &work_dir,
        &leader.address,
        &secret.file,
        &[],
    );
    leader.register(&agent).await;
    // The registration is durable once the agent answers pings as registered.
    leader
        .expect("a pong", &agent, |_, message| {
            matches!(message, Message::Pong(_)).then_some(())
        })
        .await;
    agent.kill_hard();

    let meta = WorkDir::new(&work_dir).meta();
    let (log, mut bytes) = snapshot(&meta)
        .into_iter()
        .find(|(path, _)| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("log-"))
        })
        .expect("the checkpoint has a log");
    assert!(
        bytes.len() > 2 * RECORD_HEADER_LENGTH,
        "more than one record"
    );
    bytes[RECORD_HEADER_LENGTH] ^= 0xff;
    std::fs::write(&log, &bytes).expect("damage the first record");
    let before = snapshot(&meta);

    let output = run_agent_to_exit(&work_dir, &leader.address, &secret.file, AGENT_RESOURCES);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&log.display().to_string()),
        "names the file: {stderr}"
    );
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert_eq!(snapshot(&meta), before, "the checkpoint is unchanged");
    leader.stop().await;
}

/// A checkpoint whose tasks need more than the configured resources is refused by the
/// protocol (`AgentBootError`): the agent says so, names the checkpoint, and changes
/// nothing; the running task is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_the_protocol_refuses_stops_the_agent_and_changes_nothing() {
    let directory = TestDirectory::new("agent-refused");
    let secret = Secret::new(directory.path(), "secret");
    let mut leader = FakeLeader::start(&secret.secret).await;
    let work_dir = directory.path().join("work");
    let mut agent = AgentProcess::start(
        directory.path(),
        &work_dir,
        &leader.address,
        &secret.file,
        &[],
    );
    leader.register(&agent).await;
    leader.run_task(&agent.address, "e4", "big", "cpus:1.5", "sleep 30");
    leader
        .acknowledge_update(&agent, "big", TaskState::Starting)
        .await;
    leader
        .acknowledge_update(&agent, "big", TaskState::Running)
        .await;
    let executor = agent.executor_pid("e4");
    agent.kill_hard();

    let meta = WorkDir::new(&work_dir).meta();
    let before = snapshot(&meta);
    let output = run_agent_to_exit(
        &work_dir,
        &leader.address,
        &secret.file,
        "cpus:1;mem:1024;disk:1000",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&meta.display().to_string()),
        "names the checkpoint: {stderr}"
    );
    assert!(
        stderr.contains("more than the configured resources"),
        "{stderr}"
    );
    assert_eq!(snapshot(&meta), before, "the checkpoint is unchanged");
    assert!(
        process_is_running(executor),
        "the task's executor is untouched"
    );
    leader.stop().await;
}

/// A missing work directory is created with its layout; a second agent on it, or a work
/// directory that is a file, is a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_work_dir_is_created_and_an_unusable_one_refused() {
    let directory = TestDirectory::new("agent-work-dir");
    let secret = Secret::new(directory.path(), "secret");
    let mut leader = FakeLeader::start(&secret.secret).await;
    let work_dir = directory.path().join("not").join("yet").join("there");
    let agent = AgentProcess::start(
        directory.path(),
        &work_dir,
        &leader.address,
        &secret.file,
        &[],
    );
    leader.register(&agent).await;
    for part in ["meta", "sandboxes", "volumes", "executors", "executor.sock"] {
        assert!(
            work_dir.join(part).exists(),
            "{part} in the new work directory"
        );
    }

    let second = run_agent_to_exit(&work_dir, &leader.address, &secret.file, AGENT_RESOURCES);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("another agent (pid {})", agent.pid())),
        "a second agent on the same work directory is refused: {stderr}"
    );

    let file = directory.path().join("a-file");
    std::fs::write(&file, "not a directory").expect("write a file");
    let output = run_agent_to_exit(&file, &leader.address, &secret.file, AGENT_RESOURCES);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&file.display().to_string()),
        "names the path: {stderr}"
    );
    assert!(stderr.contains("work directory"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&file).expect("the file"),
        "not a directory"
    );
    leader.stop().await;
}

/// A master with another secret cannot talk to the agent either way: the handshake fails and
/// is logged, nothing is delivered, and the agent's checkpoint records no registration and
/// no term from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_and_changes_nothing() {
    let directory = TestDirectory::new("agent-secret");
    let secret = Secret::new(directory.path(), "secret");
    let other = ClusterSecret::generate();
    let mut impostor = FakeLeader::start(&other).await;
    let work_dir = directory.path().join("work");
    let mut agent = AgentProcess::start(
        directory.path(),
        &work_dir,
        &impostor.address,
        &secret.file,
        &[],
    );
    wait_until(
        "the agent logs the failed handshake with the master",
        || agent.log_text().contains("handshake failed"),
    );
    // The impostor calls the agent too, with a higher term than any.
    impostor.send(
        &agent.address,
        Message::LeaderChanged(LeaderChanged { term: Term(9) }),
    );
    wait_until("the agent refuses the impostor's connection", || {
        agent
            .log_text()
            .contains("handshake failed; closing the connection")
    });
    assert!(
        impostor.inbox.try_recv().is_err(),
        "nothing reached the impostor"
    );
    agent.kill_hard();
    let durable = durable_state(&work_dir, &directory.path().join("scratch"));
    assert_eq!(durable.agent, None, "not registered");
    assert_eq!(durable.highest_term, Term(0), "no term from the impostor");
    impostor.stop().await;
}

/// An executor that dies while its agent runs (its connection closes and its process is
/// gone) fails its tasks (reason executor terminated), and what it left running is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_that_dies_fails_its_tasks_and_leaves_nothing_behind() {
    let directory = TestDirectory::new("agent-executor-dies");
    let secret = Secret::new(directory.path(), "secret");
    let mut leader = FakeLeader::start(&secret.secret).await;
    let agent = AgentProcess::start(
        directory.path(),
        &directory.path().join("work"),
        &leader.address,
        &secret.file,
        &[],
    );
    leader.register(&agent).await;
    leader.run_task(&agent.address, "e5", "orphan", "cpus:0.1", "sleep 30");
    leader
        .acknowledge_update(&agent, "orphan", TaskState::Starting)
        .await;
    leader
        .acknowledge_update(&agent, "orphan", TaskState::Running)
        .await;
    let executor = agent.executor_pid("e5");
    let task_processes = task_processes_running(executor, "sleep");

    berth_node::process::signal_process(executor, Signal::KILL).expect("kill the executor");
    let failed = leader
        .acknowledge_update(&agent, "orphan", TaskState::Failed)
        .await;
    assert_eq!(failed.reason, Some(TaskStatusReason::ExecutorTerminated));
    for pid in task_processes {
        wait_until("the dead executor's task is killed", || {
            !process_is_running(pid)
        });
    }
    leader.stop().await;
}

/// An executor that is gone when its agent restarts does not reconnect: once the executor
/// re-register window (2 s) closes, its task is reported FAILED (reason executor
/// re-registration timeout), and the agent re-registers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_executor_did_not_survive_fails_after_the_window() {
    let directory = TestDirectory::new("agent-window");
    let secret = Secret::new(directory.path(), "secret");
    let mut leader = FakeLeader::start(&secret.secret).await;
    let mut agent = AgentProcess::start(
        directory.path(),
        &directory.path().join("work"),
        &leader.address,
        &secret.file,
        &[],
    );
    leader.register(&agent).await;
    leader.run_task(&agent.address, "e6", "gone", "cpus:0.1", "sleep 30");
    leader
        .acknowledge_update(&agent, "gone", TaskState::Starting)
        .await;
    leader
        .acknowledge_update(&agent, "gone", TaskState::Running)
        .await;
    let executor = agent.executor_pid("e6");

    agent.kill_hard();
    signal_session(executor, Signal::KILL);
    wait_until("the executor is gone", || !process_is_running(executor));
    let restarted = Instant::now();
    agent.restart(&[]);
    let reregistration: ReregisterAgent = leader
        .expect("a re-registration", &agent, |_, message| match message {
            Message::ReregisterAgent(reregister) => Some((**reregister).clone()),
            _ => None,
        })
        .await;
    let waited = restarted.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "the agent waited the executor re-register window: {waited:?}"
    );
    assert_eq!(reregistration.tasks.as_slice()[0].state, TaskState::Failed);
    leader.send(
        &agent.address,
        Message::AgentReregistered(AgentRegistered {
            term: TERM,
            agent: agent_id(),
            report: reregistration.report,
        }),
    );
    let failed = leader
        .acknowledge_update(&agent, "gone", TaskState::Failed)
        .await;
    assert_eq!(
        failed.reason,
        Some(TaskStatusReason::ExecutorReregistrationTimeout)
    );
    println!(
        "agent restart without its executor -> re-registration: {} ms",
        waited.as_millis()
    );
    leader.stop().await;
}
