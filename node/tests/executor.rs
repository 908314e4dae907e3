//! The real `berth executor` process, talking to a test that plays its agent on the Unix
//! socket: sandboxes and persistent volumes, reports kept until acknowledged and re-sent
//! after a reconnection, the kill grace period, and an agent that never comes back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use berth_node::executor::wire::{
    EXECUTOR_PROTOCOL_VERSION, ExecutorHello, FromExecutor, HeldTask, LaunchTask, TaskStateReport,
    ToExecutor, read_frame, write_frame,
};
use berth_node::process::{process_is_running, signal_session};
use berth_node::work_dir::WorkDir;
use berth_protocol::bounded::Name;
use berth_protocol::ids::{AssignedId, ExecutorId, FrameworkId, Role, TaskId, Term, VolumeId};
use berth_protocol::resources::{
    ContainerPath, PersistentVolume, Quantity, Reservation, ResourceKey, Resources,
};
use berth_protocol::task::{TaskCommand, TaskState, TaskStatusReason};
use rustix::process::Signal;
use tokio::net::{UnixListener, UnixStream};

mod common;
use common::TestDirectory;

/// Long enough for anything here on a loaded machine; a test that waits this long failed.
const PATIENCE: Duration = Duration::from_secs(20);

fn framework() -> FrameworkId {
    FrameworkId(AssignedId {
        term: Term(2),
        sequence: 5,
    })
}

fn executor_id() -> ExecutorId {
    ExecutorId::new("worker").expect("an executor id")
}

fn task_id(text: &str) -> TaskId {
    TaskId::new(text).expect("a task id")
}

/// A `berth executor` process; dropping it kills its whole session, tasks included.
struct ExecutorProcess {
    child: Child,
    log: PathBuf,
}

impl ExecutorProcess {
    fn start(work_dir: &Path, log: &Path, extra: &[&str]) -> ExecutorProcess {
        let file = std::fs::File::create(log).expect("create the executor's log");
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["executor", "--work-dir"])
            .arg(work_dir)
            .args(["--framework", &framework().to_string()])
            .args(["--executor", executor_id().as_str()])
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("share the log"))
            .stderr(file)
            .spawn()
            .expect("start berth executor");
        ExecutorProcess {
            child,
            log: log.to_path_buf(),
        }
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("check the executor") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the executor did not exit; its log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ExecutorProcess {
    fn drop(&mut self) {
        signal_session(self.child.id(), Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test's side of one connection.
struct AgentSide {
    stream: UnixStream,
}

impl AgentSide {
    async fn accept(listener: &UnixListener) -> (AgentSide, ExecutorHello) {
        let (stream, _) = tokio::time::timeout(PATIENCE, listener.accept())
            .await
            .expect("the executor connects")
            .expect("accept");
        let mut side = AgentSide { stream };
        match side.receive().await {
            FromExecutor::Hello(hello) => (side, hello),
            other => panic!("expected a hello, got {other:?}"),
        }
    }

    async fn receive(&mut self) -> FromExecutor {
        tokio::time::timeout(PATIENCE, read_frame(&mut self.stream))
            .await
            .expect("a frame in time")
            .expect("a valid frame")
            .expect("the connection is open")
    }

    async fn report(&mut self) -> TaskStateReport {
        match self.receive().await {
            FromExecutor::Report(report) => report,
            other => panic!("expected a report, got {other:?}"),
        }
    }

    async fn send(&mut self, frame: ToExecutor) {
        write_frame(&mut self.stream, &frame)
            .await
            .expect("write to the executor");
    }

    async fn launch(&mut self, task: &str, command: &str, resources: Resources) {
        self.send(ToExecutor::Launch(Box::new(LaunchTask {
            task: task_id(task),
            command: TaskCommand::new(command).expect("a command"),
            resources,
        })))
        .await;
    }
}

fn cpus() -> Resources {
    Resources::parse("cpus:0.1").expect("resources")
}

/// Reports are kept until acknowledged and re-sent, latest per task, after a reconnection;
/// a persistent volume appears in the sandbox and keeps its data after the task; a second
/// run of a task id gets a new sandbox; the executor exits once told to, holding nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_survive_a_lost_connection_and_volumes_outlive_their_task() {
    let directory = TestDirectory::new("executor-volume");
    let work_dir = WorkDir::new(directory.path().join("work"));
    work_dir.create().expect("create the work directory");
    let listener = UnixListener::bind(work_dir.executor_socket()).expect("bind the socket");
    let mut executor =
        ExecutorProcess::start(work_dir.root(), &directory.path().join("executor.log"), &[]);

    let (mut agent, hello) = AgentSide::accept(&listener).await;
    assert_eq!(hello.version, EXECUTOR_PROTOCOL_VERSION);
    assert_eq!(hello.framework, framework());
    assert_eq!(hello.executor, executor_id());
    assert_eq!(hello.pid, executor.child.id());
    assert!(hello.tasks.is_empty());

    let role = Role::new("ops").expect("a role");
    let volume_id = VolumeId::new("data-1").expect("a volume id");
    let volume = Resources::scalar(
        ResourceKey {
            name: Name::new("disk").expect("a name"),
            reservation: Reservation::Static(role.clone()),
            volume: Some(PersistentVolume {
                id: volume_id.clone(),
                container_path: ContainerPath::new("state/db").expect("a container path"),
            }),
        },
        Quantity::from_units(10).expect("a quantity"),
    );
    let resources = cpus().checked_add(&volume).expect("disjoint resources");
    agent
        .launch("writer", "echo kept > state/db/file; echo done", resources)
        .await;
    let states: Vec<(u64, TaskState)> = [
        agent.report().await,
        agent.report().await,
        agent.report().await,
    ]
    .iter()
    .map(|report| (report.sequence, report.state))
    .collect();
    assert_eq!(
        states,
        [
            (0, TaskState::Starting),
            (1, TaskState::Running),
            (2, TaskState::Finished)
        ]
    );

    // The agent goes away before acknowledging anything.
    drop(agent);
    let (mut agent, hello) = AgentSide::accept(&listener).await;
    assert_eq!(
        hello.tasks.as_slice(),
        [HeldTask {
            task: task_id("writer"),
            state: TaskState::Finished,
        }],
        "the task is held until its final report is acknowledged"
    );
    let resent = agent.report().await;
    assert_eq!(
        (resent.sequence, resent.state, resent.reason),
        (
            2,
            TaskState::Finished,
            Some(TaskStatusReason::CommandExited)
        ),
        "only the latest report of the task is re-sent"
    );
    agent.send(ToExecutor::Acknowledge { sequence: 2 }).await;

    let data = work_dir.volume_dir(&Reservation::Static(role), &volume_id);
    assert_eq!(
        std::fs::read_to_string(data.join("file")).expect("the volume's file"),
        "kept\n"
    );
    let sandbox = work_dir
        .task_dir(&framework(), &executor_id(), &task_id("writer"))
        .join("run-1");
    assert_eq!(
        std::fs::read_link(sandbox.join("state/db")).expect("a link"),
        data
    );
    assert_eq!(
        std::fs::read_to_string(sandbox.join("stdout")).expect("stdout"),
        "done\n"
    );

    // The same task id again: a new run, a new sandbox.
    agent.launch("writer", "exit 0", cpus()).await;
    for expected in [TaskState::Starting, TaskState::Running, TaskState::Finished] {
        let report = agent.report().await;
        assert_eq!(report.state, expected);
        agent
            .send(ToExecutor::Acknowledge {
                sequence: report.sequence,
            })
            .await;
    }
    assert!(sandbox.with_file_name("run-2").is_dir(), "a second run");

    agent.send(ToExecutor::Shutdown).await;
    let status = executor.wait_exit();
    assert!(status.success(), "{status}\n{}", executor.log_text());
    assert!(
        data.join("file").is_file(),
        "R4: the volume's data outlives the task"
    );
    assert!(
        !work_dir
            .executor_dir(&framework(), &executor_id())
            .join(berth_node::work_dir::EXECUTOR_PID_FILE)
            .exists()
    );
}

/// A task that ignores SIGTERM is killed with SIGKILL after the grace period and reported
/// KILLED; a task whose process fails to exit 0 is FAILED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_escalates_to_sigkill_after_the_grace_period() {
    let directory = TestDirectory::new("executor-kill");
    let work_dir = WorkDir::new(directory.path().join("work"));
    work_dir.create().expect("create the work directory");
    let listener = UnixListener::bind(work_dir.executor_socket()).expect("bind the socket");
    let grace = Duration::from_millis(700);
    let _executor = ExecutorProcess::start(
        work_dir.root(),
        &directory.path().join("executor.log"),
        &["--kill-grace-ms", &grace.as_millis().to_string()],
    );
    let (mut agent, _) = AgentSide::accept(&listener).await;

    agent
        .launch("stubborn", "trap '' TERM; echo ready; sleep 30", cpus())
        .await;
    assert_eq!(agent.report().await.state, TaskState::Starting);
    assert_eq!(agent.report().await.state, TaskState::Running);
    let stdout = work_dir
        .task_dir(&framework(), &executor_id(), &task_id("stubborn"))
        .join("run-1")
        .join("stdout");
    let deadline = Instant::now() + PATIENCE;
    while std::fs::read_to_string(&stdout).unwrap_or_default() != "ready\n" {
        assert!(Instant::now() < deadline, "the task did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let asked = Instant::now();
    agent
        .send(ToExecutor::Kill {
            task: task_id("stubborn"),
        })
        .await;
    let killed = agent.report().await;
    assert_eq!(
        (killed.state, killed.reason),
        (TaskState::Killed, Some(TaskStatusReason::KilledByFramework))
    );
    assert!(
        asked.elapsed() >= grace,
        "SIGTERM was ignored, so only SIGKILL ended it, after {:?}",
        asked.elapsed()
    );

    agent.launch("broken", "kill -9 $$", cpus()).await;
    assert_eq!(agent.report().await.state, TaskState::Starting);
    assert_eq!(agent.report().await.state, TaskState::Running);
    let failed = agent.report().await;
    assert_eq!(
        (failed.state, failed.reason),
        (TaskState::Failed, Some(TaskStatusReason::CommandExited)),
        "a signal nobody asked for is a failure"
    );
}

/// An executor whose agent never comes back kills its tasks and exits after the recovery
/// timeout, with an error that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_without_an_agent_gives_up_after_the_recovery_timeout() {
    let directory = TestDirectory::new("executor-orphan");
    let work_dir = WorkDir::new(directory.path().join("work"));
    work_dir.create().expect("create the work directory");
    let listener = UnixListener::bind(work_dir.executor_socket()).expect("bind the socket");
    let mut executor = ExecutorProcess::start(
        work_dir.root(),
        &directory.path().join("executor.log"),
        &["--recovery-timeout-ms", "500"],
    );
    let (mut agent, _) = AgentSide::accept(&listener).await;
    agent.launch("sleeper", "sleep 30", cpus()).await;
    assert_eq!(agent.report().await.state, TaskState::Starting);
    assert_eq!(agent.report().await.state, TaskState::Running);
    let session = executor.child.id();
    let task_pids: Vec<u32> = berth_node::process::session_members(session)
        .into_iter()
        .filter(|pid| *pid != session)
        .collect();
    assert!(!task_pids.is_empty());

    drop(agent);
    drop(listener);
    std::fs::remove_file(work_dir.executor_socket()).expect("remove the socket");
    let gone = Instant::now();
    let status = executor.wait_exit();
    assert!(!status.success());
    assert!(gone.elapsed() >= Duration::from_millis(500));
    assert!(
        executor.log_text().contains("did not come back"),
        "{}",
        executor.log_text()
    );
    for pid in task_pids {
        assert!(!process_is_running(pid), "task process {pid} was killed");
    }
}

/// What `berth local` does after stopping its agents: the executors they left running are
/// found through their pid files and stopped, and their tasks with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_local_stops_the_executors_its_agents_left_running() {
    let directory = TestDirectory::new("executor-local-stop");
    let work_dir = WorkDir::new(directory.path().join("work"));
    work_dir.create().expect("create the work directory");
    let listener = UnixListener::bind(work_dir.executor_socket()).expect("bind the socket");
    let mut executor =
        ExecutorProcess::start(work_dir.root(), &directory.path().join("executor.log"), &[]);
    let (mut agent, _) = AgentSide::accept(&listener).await;
    agent.launch("sleeper", "sleep 30", cpus()).await;
    assert_eq!(agent.report().await.state, TaskState::Starting);
    assert_eq!(agent.report().await.state, TaskState::Running);
    let session = executor.child.id();
    let task_pids: Vec<u32> = berth_node::process::session_members(session)
        .into_iter()
        .filter(|pid| *pid != session)
        .collect();
    assert!(!task_pids.is_empty());

    // A pid file naming an unrelated process is not taken for an executor.
    let stranger = WorkDir::new(directory.path().join("other"));
    let stranger_dir = stranger.executor_dir(&framework(), &executor_id());
    std::fs::create_dir_all(&stranger_dir).expect("create a directory");
    std::fs::write(
        stranger_dir.join(berth_node::work_dir::EXECUTOR_PID_FILE),
        format!("{}\n", std::process::id()),
    )
    .expect("write a pid file");

    let stopped = berth_node::local::stop_executors(&[
        work_dir.root().to_path_buf(),
        stranger.root().to_path_buf(),
    ])
    .await;
    assert_eq!(stopped, 1);
    executor.wait_exit();
    for pid in task_pids {
        assert!(!process_is_running(pid), "task process {pid} was stopped");
    }
}
