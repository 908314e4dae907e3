//! `berth-bench agent-recovery`: how long a `berth agent` that runs many tasks takes to come
//! back after a `kill -9`, its executors and their tasks running on.
//!
//! * **Cluster.** A real `berth master` (a lone master, which leads at once) and a real
//!   `berth agent`, each a child process with its directory on disk. The agent starts real
//!   `berth executor` processes, each running its tasks as real processes (`sleep 3600` by
//!   default).
//! * **Framework.** One protocol [`Scheduler`] in this process (state in memory, its own
//!   connection) launches `--tasks` tasks, `--tasks-per-executor` of them in each executor,
//!   and waits until every one is `RUNNING`.
//! * **Measured.** Each run waits until the agent is idle, then takes the time, sends
//!   `SIGKILL` to the agent process, reaps it and starts it again on the same work
//!   directory and port. The agent recovers its checkpoint, waits for every executor of a
//!   running task to reconnect over its Unix socket, then re-registers with the leader with
//!   every task. The end of a run is the agent's own `registered with the leader` log line:
//!   the agent writes it in the step that handles the leader's answer to its
//!   re-registration, so by then the leader has accepted the agent with every task it
//!   reported. The agent's standard error is read by a thread of this process, which takes
//!   the time of each line as it arrives; the agent's `an executor connected` lines give the
//!   per-executor reconnection times.
//! * **Checked.** Every executor reconnects with the process id it had before the kill (the
//!   same process, not a new one), the agent re-registers only after all have (the
//!   recovery did not end by the executors' re-registration timeout), and the framework
//!   hears of no task leaving `RUNNING` during the runs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_node::transport::{ClusterSecret, Network};
use berth_protocol::Address;
use berth_protocol::bounded::Name;
use berth_protocol::ids::{ExecutorId, Principal, Role, TaskId};
use berth_protocol::message::TaskSpec;
use berth_protocol::registry::FrameworkInfo;
use berth_protocol::resources::Resources;
use berth_protocol::scheduler::{Scheduler, SchedulerConfig, SchedulerEvent};
use berth_protocol::task::{TaskCommand, TaskState};
use tokio::sync::{mpsc, watch};

use crate::cpu::ProcessCpu;
use crate::launch::{Credentials, FrameworkHost, Observation};
use crate::sim::SimNode;
use crate::stats::{Summary, millis};

/// What to measure.
#[derive(Clone, Debug, clap::Args)]
pub struct RecoveryOptions {
    /// Tasks running on the agent.
    #[arg(long, default_value_t = 1_000)]
    pub tasks: u64,
    /// Tasks per executor (1: one `berth executor` process per task, as Mesos's command
    /// executor).
    #[arg(long, default_value_t = 1)]
    pub tasks_per_executor: u64,
    /// Restarts measured.
    #[arg(long, default_value_t = 5)]
    pub runs: u32,
    /// Each task's command.
    #[arg(long, default_value = "sleep 3600")]
    pub command: String,
    /// The agent's resources.
    #[arg(long, default_value = "cpus:64;mem:65536")]
    pub agent_resources: String,
    /// Each task's resources.
    #[arg(long, default_value = "cpus:0.01;mem:16")]
    pub task_resources: String,
    /// The `berth` binary [default: `berth` next to this one].
    #[arg(long)]
    pub berth: Option<PathBuf>,
    /// Give up on a phase (launching the tasks, one recovery) after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_s: u64,
}

/// Mesos's executor re-registration window (`--executor_reregistration_timeout`): the time
/// a restarted Mesos agent gives its executors to reconnect, the anchor of this benchmark.
const MESOS_EXECUTOR_REREGISTRATION_WINDOW: Duration = Duration::from_secs(2);
/// The target for the whole recovery, kill to re-registration.
const TARGET: Duration = Duration::from_secs(1);

const REGISTERED_LINE: &str = "registered with the leader";
const EXECUTOR_CONNECTED_LINE: &str = "an executor connected";
const AGENT_STARTING_LINE: &str = "agent starting";

/// One line of the agent's standard error and when this process read it.
struct LogLine {
    at: Instant,
    text: String,
}

/// A running `berth agent` child whose standard error a thread reads.
struct AgentProcess {
    child: Child,
    spawned_at: Instant,
    lines: mpsc::UnboundedReceiver<LogLine>,
}

/// How to start the agent, the same way every time.
struct AgentLaunch {
    berth: PathBuf,
    master: Address,
    listen: String,
    work_dir: PathBuf,
    secret_file: PathBuf,
    resources: String,
    log_directory: PathBuf,
}

impl AgentLaunch {
    /// Starts the agent; its log goes to `agent-<generation>.log` as well as to the returned
    /// line receiver.
    fn start(&self, generation: u32) -> anyhow::Result<AgentProcess> {
        let log_path = self.log_directory.join(format!("agent-{generation}.log"));
        let mut log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let spawned_at = Instant::now();
        let mut child = std::process::Command::new(&self.berth)
            .arg("agent")
            .args(["--masters", self.master.as_str()])
            .args(["--listen", &self.listen])
            .arg("--work-dir")
            .arg(&self.work_dir)
            .arg("--secret-file")
            .arg(&self.secret_file)
            .args(["--cluster", "bench"])
            .args(["--resources", &self.resources])
            .args(["--parent-pid", &std::process::id().to_string()])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", self.berth.display()))?;
        let stderr = child.stderr.take().expect("standard error is piped");
        let (sender, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for text in std::io::BufReader::new(stderr).lines() {
                let at = Instant::now();
                let Ok(text) = text else { break };
                let _ = writeln!(log, "{text}");
                if sender.send(LogLine { at, text }).is_err() {
                    break;
                }
            }
        });
        Ok(AgentProcess {
            child,
            spawned_at,
            lines,
        })
    }
}

impl AgentProcess {
    /// Waits for a line containing `needle`; returns when it was read.
    async fn wait_for(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if line.text.contains(needle) => return Ok(line.at),
                Ok(Some(_)) => {}
                Ok(None) => anyhow::bail!("the agent exited before it wrote {needle:?}"),
                Err(_) => anyhow::bail!("the agent did not write {needle:?} within {timeout:?}"),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL and reaps the process.
    fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().context("cannot kill the agent")?;
        self.child.wait().context("cannot reap the agent")?;
        Ok(())
    }
}

/// One restart's figures, all from the moment just before `kill(2)`.
struct RunResult {
    /// The restarted process was spawned (after the old one was reaped).
    spawned: Duration,
    /// It wrote `agent starting`: checkpoint recovered, sockets bound.
    started: Duration,
    /// Each executor's reconnection.
    executors: Summary,
    /// The agent re-registered with the leader.
    registered: Duration,
}

/// Runs the benchmark and prints its figures.
pub async fn run(options: &RecoveryOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.tasks > 0 && options.tasks_per_executor > 0,
        "--tasks and --tasks-per-executor must be positive"
    );
    Resources::parse(&options.agent_resources).context("invalid --agent-resources")?;
    let task_resources =
        Resources::parse(&options.task_resources).context("invalid --task-resources")?;
    let limit = crate::raise_open_files_limit()?;
    let executors = options.tasks.div_ceil(options.tasks_per_executor);
    println!(
        "agent-recovery: {} tasks ({:?}, {}) in {executors} executors, {} restarts; open \
         files limit {limit}",
        options.tasks, options.command, options.task_resources, options.runs
    );
    let berth = crate::berth_binary(options.berth.as_deref())?;
    let work = crate::scratch_directory("recovery")?;
    let credentials = Credentials {
        cluster: Name::new("bench").expect("a valid name"),
        secret: ClusterSecret::generate(),
    };
    let secret_file = work.join("secret");
    credentials
        .secret
        .write_new_file(&secret_file)
        .context("cannot write the secret file")?;
    let (mut master, master_address) =
        crate::launch::start_master(&berth, &work, &secret_file).await?;
    let launch = AgentLaunch {
        berth: berth.clone(),
        master: master_address.clone(),
        listen: format!("127.0.0.1:{}", crate::free_port()?),
        work_dir: work.join("agent"),
        secret_file: secret_file.clone(),
        resources: options.agent_resources.clone(),
        log_directory: work.clone(),
    };
    let result = measure(options, &credentials, &launch, &task_resources).await;
    let stopped = berth_node::local::stop_executors(std::slice::from_ref(&launch.work_dir)).await;
    println!("stopped {stopped} executors");
    let _ = master.kill().await;
    if result.is_ok() {
        if let Err(error) = std::fs::remove_dir_all(&work) {
            eprintln!("cannot remove {}: {error}", work.display());
        }
    } else {
        println!(
            "kept {} (master.log, agent-N.log, agent/executors/)",
            work.display()
        );
    }
    result
}

async fn measure(
    options: &RecoveryOptions,
    credentials: &Credentials,
    launch: &AgentLaunch,
    task_resources: &Resources,
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(options.timeout_s);
    let mut agent = launch.start(0)?;
    let (stop, stopped) = watch::channel(false);
    let result = async {
        agent.wait_for(REGISTERED_LINE, timeout).await?;
        // `_submit` keeps the scheduler's input open for as long as it runs.
        let (_submit, mut observations) = start_framework(
            options,
            credentials,
            &launch.master,
            task_resources,
            stopped,
        )?;
        wait_until_running(options, &mut observations, timeout).await?;
        let executor_pids = executor_pids(&launch.work_dir);
        println!(
            "  {} tasks RUNNING in {} executor processes",
            options.tasks,
            executor_pids.len()
        );
        measure_restarts(
            options,
            launch,
            &mut agent,
            &executor_pids,
            &mut observations,
            timeout,
        )
        .await
    }
    .await;
    let _ = stop.send(true);
    let _ = agent.kill();
    result
}

/// Starts the framework's scheduler in this process; returns what it observes.
fn start_framework(
    options: &RecoveryOptions,
    credentials: &Credentials,
    master: &Address,
    task_resources: &Resources,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<(
    mpsc::Sender<SchedulerEvent>,
    mpsc::UnboundedReceiver<Observation>,
)> {
    let command = TaskCommand::new(&options.command).context("invalid --command")?;
    let address = berth_node::client::client_address();
    let info = FrameworkInfo {
        name: Name::new("recovery").expect("a valid name"),
        role: Role::new("bench").expect("a valid role"),
        principal: Principal::new("bench").expect("a valid principal"),
        failover_timeout: Duration::from_secs(3600),
    };
    let config = SchedulerConfig::new(address.clone(), vec![master.clone()], info)
        .context("the scheduler's configuration")?;
    let network_config = credentials.network(address);
    let (observations_sender, observations) = mpsc::unbounded_channel();
    let mut host = FrameworkHost {
        observations: observations_sender,
    };
    let capacity = usize::try_from(options.tasks).context("too many tasks")?;
    let (submit, mut events) = mpsc::channel(capacity);
    // Every task at once: the scheduler launches them as offers come.
    for index in 0..options.tasks {
        let executor = index / options.tasks_per_executor;
        let spec = TaskSpec {
            task: TaskId::new(&format!("task-{index}")).expect("a valid id"),
            executor: ExecutorId::new(&format!("executor-{executor}")).expect("a valid id"),
            resources: task_resources.clone(),
            command: command.clone(),
        };
        submit
            .try_send(SchedulerEvent::Launch(spec))
            .expect("the queue holds every task");
    }
    tokio::spawn(async move {
        let (network, mut inbox) = Network::new(network_config);
        let Ok(mut node) =
            SimNode::<Scheduler>::boot(&config, Default::default(), &network, &mut host);
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        node.run(&network, &mut inbox, &mut events, &mut host, shutdown)
            .await;
        network.shutdown().await;
    });
    Ok((submit, observations))
}

/// Waits until the framework subscribed and every task is `RUNNING`.
async fn wait_until_running(
    options: &RecoveryOptions,
    observations: &mut mpsc::UnboundedReceiver<Observation>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut running = BTreeSet::new();
    while running.len() < usize::try_from(options.tasks).context("too many tasks")? {
        match tokio::time::timeout_at(deadline, observations.recv()).await {
            Ok(Some(Observation::State(task, TaskState::Running, _))) => {
                running.insert(task);
            }
            Ok(Some(Observation::State(task, state, _)))
                if state != TaskState::Starting && state != TaskState::Staging =>
            {
                anyhow::bail!("task {task} became {state} while the tasks were launched");
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => anyhow::bail!(
                "only {} of {} tasks RUNNING within {timeout:?}",
                running.len(),
                options.tasks
            ),
        }
    }
    println!(
        "  launched {} tasks in {:.2} s",
        options.tasks,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The pid of each executor the agent started, by executor id (from their pid files).
pub(crate) fn executor_pids(work_dir: &Path) -> BTreeMap<String, u32> {
    let mut pids = BTreeMap::new();
    let executors = berth_node::work_dir::WorkDir::new(work_dir).executors();
    let Ok(frameworks) = std::fs::read_dir(executors) else {
        return pids;
    };
    for framework in frameworks.flatten() {
        let Ok(entries) = std::fs::read_dir(framework.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.path().join(berth_node::work_dir::EXECUTOR_PID_FILE);
            if let Some(pid) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|text| text.trim().parse().ok())
            {
                pids.insert(entry.file_name().to_string_lossy().into_owned(), pid);
            }
        }
    }
    pids
}

async fn measure_restarts(
    options: &RecoveryOptions,
    launch: &AgentLaunch,
    agent: &mut AgentProcess,
    executor_pids: &BTreeMap<String, u32>,
    observations: &mut mpsc::UnboundedReceiver<Observation>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let mut results = Vec::new();
    for run in 1..=options.runs {
        wait_until_idle(agent.pid(), timeout).await?;
        let killed_at = Instant::now();
        agent.kill()?;
        let reaped = killed_at.elapsed();
        *agent = launch.start(run)?;
        let result = observe_recovery(agent, killed_at, executor_pids, timeout).await?;
        // Anything the framework heard meanwhile: no task may have left RUNNING.
        while let Ok(observation) = observations.try_recv() {
            if let Observation::State(task, state, _) = observation {
                anyhow::ensure!(
                    state == TaskState::Running,
                    "run {run}: task {task} became {state}"
                );
            }
        }
        println!(
            "  run {run}: killed and reaped in {}, respawned at {}, recovered its checkpoint \
             and listening at {}, executors reconnected {}, re-registered at {}",
            millis(reaped),
            millis(result.spawned),
            millis(result.started),
            result.executors,
            millis(result.registered),
        );
        results.push(result);
    }
    summarize(options, executor_pids.len(), &results);
    Ok(())
}

/// Reads the restarted agent's log until it re-registers; checks each executor came back as
/// the same process.
async fn observe_recovery(
    agent: &mut AgentProcess,
    killed_at: Instant,
    executor_pids: &BTreeMap<String, u32>,
    timeout: Duration,
) -> anyhow::Result<RunResult> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut started = None;
    let mut reconnected: BTreeMap<String, Duration> = BTreeMap::new();
    let registered = loop {
        let line = match tokio::time::timeout_at(deadline, agent.lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => anyhow::bail!("the restarted agent exited"),
            Err(_) => anyhow::bail!(
                "the restarted agent did not re-register within {timeout:?} ({} of {} \
                 executors reconnected)",
                reconnected.len(),
                executor_pids.len()
            ),
        };
        let since_kill = line.at.duration_since(killed_at);
        if line.text.contains(AGENT_STARTING_LINE) {
            started = Some(since_kill);
        } else if line.text.contains(EXECUTOR_CONNECTED_LINE) {
            let executor = field(&line.text, "executor").context("a connection line")?;
            let pid: u32 = field(&line.text, "pid")
                .and_then(|pid| pid.parse().ok())
                .context("a connection line")?;
            anyhow::ensure!(
                executor_pids.get(executor) == Some(&pid),
                "executor {executor} reconnected as pid {pid}, not as before the restart \
                 ({:?})",
                executor_pids.get(executor)
            );
            reconnected.insert(executor.to_string(), since_kill);
        } else if line.text.contains(REGISTERED_LINE) {
            break since_kill;
        }
    };
    anyhow::ensure!(
        reconnected.len() == executor_pids.len(),
        "the agent re-registered with {} of {} executors reconnected",
        reconnected.len(),
        executor_pids.len()
    );
    let executors: Vec<Duration> = reconnected.into_values().collect();
    Ok(RunResult {
        spawned: agent.spawned_at.duration_since(killed_at),
        started: started.context("the agent did not say it started")?,
        executors: Summary::of(&executors).context("no executor")?,
        registered,
    })
}

/// The value of `name=VALUE` in a text log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[start..];
    Some(rest.split_whitespace().next().unwrap_or(rest))
}

/// Waits until process `pid` used under a tenth of a core for half a second.
async fn wait_until_idle(pid: u32, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let before = ProcessCpu::of(pid)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if ProcessCpu::of(pid)?.since(before) < Duration::from_millis(50) {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "the agent is still busy after {timeout:?}"
        );
    }
}

fn summarize(options: &RecoveryOptions, executors: usize, results: &[RunResult]) {
    let registered: Vec<Duration> = results.iter().map(|result| result.registered).collect();
    let started: Vec<Duration> = results.iter().map(|result| result.started).collect();
    let last_executor: Vec<Duration> = results.iter().map(|result| result.executors.max).collect();
    let median_executor: Vec<Duration> = results
        .iter()
        .map(|result| result.executors.median)
        .collect();
    let (Some(registered), Some(started), Some(last_executor), Some(median_executor)) = (
        Summary::of(&registered),
        Summary::of(&started),
        Summary::of(&last_executor),
        Summary::of(&median_executor),
    ) else {
        return;
    };
    println!(
        "result: {} tasks in {executors} executors, {} restarts, from kill -9: agent \
         listening {}; executors reconnected, median executor {}, last executor {}; \
         re-registered with every task {}",
        options.tasks,
        results.len(),
        range(&started),
        range(&median_executor),
        range(&last_executor),
        range(&registered),
    );
    println!(
        "  against the anchor (Mesos's executor re-registration window alone, {} s): {:.1}x \
         faster (median); target {} ms: {}",
        MESOS_EXECUTOR_REREGISTRATION_WINDOW.as_secs(),
        MESOS_EXECUTOR_REREGISTRATION_WINDOW.as_secs_f64() / registered.median.as_secs_f64(),
        TARGET.as_millis(),
        if registered.max < TARGET {
            "met by every run"
        } else if registered.median < TARGET {
            "met by the median"
        } else {
            "missed"
        },
    );
}

/// "median M (min A, max B)".
fn range(summary: &Summary) -> String {
    format!(
        "median {} (min {}, max {})",
        millis(summary.median),
        millis(summary.min),
        millis(summary.max)
    )
}
