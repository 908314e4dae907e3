//! `berth-bench launch`: launch throughput and latency through one real master.
//!
//! * **Master.** A real `berth master` child process (a lone master, which leads at once),
//!   with its data directory on disk.
//! * **Agents.** `--agents` copies of the protocol's [`Agent`] machine in this process, each
//!   behind the [lightweight driver](crate::sim) with its own [`Network`], so each agent has
//!   its own authenticated TCP connection to the master (it dials the master; the master
//!   answers over that connection, as it answers a client, so the simulated agents do not
//!   listen). Their durable state is kept in memory. Their executors are emulated: a
//!   `LaunchTask` action is answered at once with `RUNNING`, then `FINISHED`, then the
//!   executor's exit.
//! * **Frameworks.** One or more protocol [`Scheduler`] machines behind the same driver (state
//!   in memory), each with its own connection. `--tasks` are spread over at least one
//!   framework per [`SCHEDULER_TASKS_MAX`] tasks (the limit was once on the tasks a scheduler
//!   launched in its life; it is now on its live tasks, but the recorded runs used this
//!   split, and it is kept so that they stay comparable).
//!
//! Once every agent is registered and every framework subscribed, all `--tasks` are handed to
//! the schedulers at once (time zero). For each task the benchmark records when the accept
//! that launches it leaves its scheduler and when the scheduler hears `RUNNING` and queues
//! its acknowledgement (the same step). Throughput is tasks over the time from time zero to
//! the last `RUNNING`; latency is per task, from its accept to its acknowledged `RUNNING`.
//! That latency is split at the step in which the simulated agent launches the task: the
//! way there (the accept through the master to the agent) and the way back (the agent's
//! `RUNNING` through the master to the scheduler).
//! A run's schedulers stop without a word at its end; the master disconnects their
//! frameworks as their connections close, so the next run, started at once, is not offered
//! less.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use berth_node::transport::{ClusterSecret, Network, NetworkConfig};
use berth_protocol::Address;
use berth_protocol::agent::{Agent, AgentAction, AgentConfig, AgentEvent};
use berth_protocol::bounded::Name;
use berth_protocol::ids::{BootId, ExecutorId, Principal, Role, TaskId};
use berth_protocol::message::{Message, OperationKind, TaskSpec};
use berth_protocol::note::Note;
use berth_protocol::registry::{AgentInfo, FrameworkInfo};
use berth_protocol::resources::Resources;
use berth_protocol::scheduler::{
    SCHEDULER_TASKS_MAX, Scheduler, SchedulerAction, SchedulerConfig, SchedulerEvent,
};
use berth_protocol::task::{TaskCommand, TaskState, TaskStatusReason};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::cpu::ProcessCpu;
use crate::sim::{Host, SimNode};
use crate::stats::{Summary, median_f64, millis};

/// What to measure.
#[derive(Clone, Debug, clap::Args)]
pub struct LaunchOptions {
    /// Simulated agents, each with its own connection to the master.
    #[arg(long, default_value_t = 1_000)]
    pub agents: u64,
    /// Tasks launched per run.
    #[arg(long, default_value_t = 10_000)]
    pub tasks: u64,
    /// Runs, each with new frameworks, on the same master and agents.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Each agent's resources.
    #[arg(long, default_value = "cpus:8;mem:32768")]
    pub agent_resources: String,
    /// Each task's resources.
    #[arg(long, default_value = "cpus:1;mem:128")]
    pub task_resources: String,
    /// Frameworks per run [default: enough to hold the tasks (a scheduler launches at most
    /// 4,096 in its life), and one per 128 agents, so that a scheduler's answers to one
    /// offer message (one accept or decline per agent) fit its connection's queue of 256].
    #[arg(long)]
    pub frameworks: Option<u64>,
    /// Tasks each framework has submitted and not yet seen RUNNING; a new one is submitted
    /// as each starts. 0 submits all at once.
    #[arg(long, default_value_t = 128)]
    pub window: u64,
    /// The `berth` binary [default: `berth` next to this one].
    #[arg(long)]
    pub berth: Option<PathBuf>,
    /// Give up on a phase (registration, a run) after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
}

/// Agents per framework by default: a scheduler answers each offer of an offer message (at
/// most one per agent) with its own accept or decline, in one step, and a connection queues
/// 256 messages ([`berth_node::transport::PEER_QUEUE_LENGTH_MAX`]) before it drops them.
const AGENTS_PER_FRAMEWORK: u64 = 128;

/// What a framework's scheduler did, as the benchmark sees it.
#[derive(Debug)]
pub(crate) enum Observation {
    Subscribed,
    Accepted(TaskId, Instant),
    State(TaskId, TaskState, Instant),
}

/// The emulated node of a simulated agent.
struct AgentHost {
    registered: Arc<AtomicU64>,
    counted: bool,
    /// Each task as its launch reaches the agent's node, and when.
    launched: mpsc::UnboundedSender<(TaskId, Instant)>,
}

impl Host<Agent> for AgentHost {
    fn act(&mut self, action: AgentAction, events: &mut Vec<AgentEvent>) {
        if let AgentAction::LaunchTask {
            framework,
            executor,
            task,
            ..
        } = action
        {
            let _ = self.launched.send((task.clone(), Instant::now()));
            // A short task: it runs, exits at once, and so does its executor.
            events.push(AgentEvent::TaskStateReported {
                framework,
                executor: executor.clone(),
                task: task.clone(),
                state: TaskState::Running,
                reason: None,
            });
            events.push(AgentEvent::TaskStateReported {
                framework,
                executor: executor.clone(),
                task,
                state: TaskState::Finished,
                reason: Some(TaskStatusReason::CommandExited),
            });
            events.push(AgentEvent::ExecutorExited {
                framework,
                executor,
            });
        }
    }

    fn noted(&mut self, note: &Note) {
        if matches!(note, Note::RegisteredWithLeader { .. }) && !self.counted {
            self.counted = true;
            self.registered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The application side of a simulated framework.
pub(crate) struct FrameworkHost {
    pub(crate) observations: mpsc::UnboundedSender<Observation>,
}

/// Offers the schedulers of this process accepted and declined so far.
static OFFERS_ACCEPTED: AtomicU64 = AtomicU64::new(0);
static OFFERS_DECLINED: AtomicU64 = AtomicU64::new(0);

impl Host<Scheduler> for FrameworkHost {
    fn act(&mut self, action: SchedulerAction, _: &mut Vec<SchedulerEvent>) {
        let observation = match action {
            SchedulerAction::Subscribed(_) => Observation::Subscribed,
            SchedulerAction::Status { task, state, .. } => {
                Observation::State(task, state, Instant::now())
            }
            _ => return,
        };
        let _ = self.observations.send(observation);
    }

    fn sent(&mut self, _: &Address, message: &Message) {
        if let Message::Decline(decline) = message {
            let offers = decline.offers.len() as u64;
            OFFERS_DECLINED.fetch_add(offers, Ordering::Relaxed);
        }
        if let Message::Accept(accept) = message {
            let offers = accept.offers.len() as u64;
            OFFERS_ACCEPTED.fetch_add(offers, Ordering::Relaxed);
            let now = Instant::now();
            for operation in accept.operations.iter() {
                if let OperationKind::Launch(spec) = &operation.kind {
                    let _ = self
                        .observations
                        .send(Observation::Accepted(spec.task.clone(), now));
                }
            }
        }
    }
}

/// The cluster's name and secret, shared by every node of the benchmark.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) cluster: Name,
    pub(crate) secret: ClusterSecret,
}

impl Credentials {
    pub(crate) fn network(&self, address: Address) -> NetworkConfig {
        NetworkConfig {
            address,
            cluster: self.cluster.clone(),
            secret: self.secret.clone(),
        }
    }
}

/// One run's figures.
struct RunResult {
    wall_running: Duration,
    wall_finished: Duration,
    accept_to_running: Summary,
    /// The two halves of `accept_to_running`, split where the agent launches the task.
    accept_to_launch: Summary,
    launch_to_running: Summary,
    submit_to_running: Summary,
    master_cpu: Duration,
    bench_cpu: Duration,
    /// Time the master's and this process's threads waited for a CPU.
    master_waited: Duration,
    bench_waited: Duration,
    /// Offers the schedulers accepted and declined.
    offers_accepted: u64,
    offers_declined: u64,
}

/// Runs the benchmark and prints its figures.
pub async fn run(options: &LaunchOptions) -> anyhow::Result<()> {
    let agent_resources =
        Resources::parse(&options.agent_resources).context("invalid --agent-resources")?;
    let task_resources =
        Resources::parse(&options.task_resources).context("invalid --task-resources")?;
    let limit = crate::raise_open_files_limit()?;
    println!(
        "launch: {} agents ({}), {} tasks ({}) per run, {} runs; open files limit {limit}",
        options.agents,
        options.agent_resources,
        options.tasks,
        options.task_resources,
        options.runs
    );
    let berth = crate::berth_binary(options.berth.as_deref())?;
    let work = crate::scratch_directory("launch")?;
    let credentials = Credentials {
        cluster: Name::new("bench").expect("a valid name"),
        secret: ClusterSecret::generate(),
    };
    let secret_file = work.join("secret");
    credentials
        .secret
        .write_new_file(&secret_file)
        .context("cannot write the secret file")?;
    let (mut master, master_address) = start_master(&berth, &work, &secret_file).await?;
    let result = measure(
        options,
        &credentials,
        &master_address,
        master.id().context("the master's pid")?,
        &agent_resources,
        &task_resources,
    )
    .await;
    let _ = master.kill().await;
    let log = std::fs::read_to_string(work.join("master.log")).unwrap_or_default();
    println!(
        "messages dropped: by the master on full queues {}, without a route {}; by this \
         process {} (and {} waited for room in a full connection queue)",
        log.matches("queue full; dropping a message").count(),
        log.matches("no connection to this address").count(),
        crate::sim::DROPPED.load(Ordering::Relaxed),
        crate::sim::DELAYED.load(Ordering::Relaxed)
    );
    if result.is_ok() {
        if let Err(error) = std::fs::remove_dir_all(&work) {
            eprintln!("cannot remove {}: {error}", work.display());
        }
    } else {
        println!("kept {} (the master's log is master.log)", work.display());
    }
    result
}

async fn measure(
    options: &LaunchOptions,
    credentials: &Credentials,
    master_address: &Address,
    master_pid: u32,
    agent_resources: &Resources,
    task_resources: &Resources,
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(options.timeout_s);
    let (stop, stopped) = watch::channel(false);
    let registered = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let (launched_sender, mut launched) = mpsc::unbounded_channel();
    let mut agents = tokio::task::JoinSet::new();
    for index in 0..options.agents {
        let address = Address::new(&format!("sim-agent-{index}")).expect("a valid address");
        let info = AgentInfo {
            hostname: Name::new(&format!("sim-host-{index}")).expect("a valid name"),
            resources: agent_resources.clone(),
        };
        let config = AgentConfig::new(
            vec![master_address.clone()],
            address.clone(),
            info,
            BootId::new("sim-boot").expect("a valid boot id"),
        )
        .context("an agent's configuration")?;
        let network_config = credentials.network(address);
        let mut host = AgentHost {
            registered: Arc::clone(&registered),
            counted: false,
            launched: launched_sender.clone(),
        };
        let mut stopped = stopped.clone();
        agents.spawn(async move {
            let (network, mut inbox) = Network::new(network_config);
            let (_events, mut events) = mpsc::channel(1);
            let Ok(mut node) =
                SimNode::<Agent>::boot(&config, Default::default(), &network, &mut host)
            else {
                return;
            };
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            node.run(&network, &mut inbox, &mut events, &mut host, shutdown)
                .await;
            network.shutdown().await;
        });
    }
    // Wait for every agent to register.
    loop {
        let count = registered.load(Ordering::Relaxed);
        if count == options.agents {
            break;
        }
        if started.elapsed() > timeout {
            let _ = stop.send(true);
            anyhow::bail!(
                "only {count} of {} agents registered within {timeout:?}",
                options.agents
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "  {} agents registered in {:.2} s",
        options.agents,
        started.elapsed().as_secs_f64()
    );
    // The master may still work through registrations the agents retried while it was
    // busy: wait until it is idle, that is under a tenth of a core for a second, or, with
    // many agents (whose pings keep a master busy even with no launches), steady: three
    // seconds in a row within a twentieth of a core of each other.
    let settling = Instant::now();
    let mut last_seconds: std::collections::VecDeque<Duration> = std::collections::VecDeque::new();
    let steady_load = loop {
        let before = ProcessCpu::of(master_pid)?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let busy = ProcessCpu::of(master_pid)?.since(before);
        if busy < Duration::from_millis(100) {
            break busy;
        }
        last_seconds.push_back(busy);
        if last_seconds.len() > 3 {
            last_seconds.pop_front();
        }
        let spread = last_seconds.iter().max().copied().unwrap_or_default()
            - last_seconds.iter().min().copied().unwrap_or_default();
        if last_seconds.len() == 3 && spread <= Duration::from_millis(50) {
            break busy;
        }
        anyhow::ensure!(
            settling.elapsed() < timeout,
            "the master is still busy {timeout:?} after the agents registered"
        );
    };
    println!(
        "  the master settled {:.2} s after the last registration, at {:.2} cores busy \
         without launches",
        settling.elapsed().as_secs_f64(),
        steady_load.as_secs_f64()
    );

    let frameworks = options.frameworks.unwrap_or_else(|| {
        options
            .tasks
            .div_ceil(SCHEDULER_TASKS_MAX as u64)
            .max(options.agents.div_ceil(AGENTS_PER_FRAMEWORK))
            .max(1)
    });
    println!(
        "  {frameworks} frameworks per run, window {} tasks each",
        options.window
    );
    let mut results = Vec::new();
    for run in 1..=options.runs {
        let result = measure_run(
            run,
            options,
            frameworks,
            credentials,
            master_address,
            master_pid,
            task_resources,
            timeout,
            &mut launched,
        )
        .await;
        match result {
            Ok(result) => results.push(result),
            Err(error) => {
                let _ = stop.send(true);
                return Err(error);
            }
        }
    }
    let _ = stop.send(true);
    while agents.join_next().await.is_some() {}
    summarize(options, &results);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn measure_run(
    run: u32,
    options: &LaunchOptions,
    frameworks: u64,
    credentials: &Credentials,
    master_address: &Address,
    master_pid: u32,
    task_resources: &Resources,
    timeout: Duration,
    launched: &mut mpsc::UnboundedReceiver<(TaskId, Instant)>,
) -> anyhow::Result<RunResult> {
    let (observations_sender, mut observations) = mpsc::unbounded_channel();
    let (stop, stopped) = watch::channel(false);
    let mut schedulers = tokio::task::JoinSet::new();
    let mut submitters = Vec::new();
    for index in 0..frameworks {
        let address = berth_node::client::client_address();
        let info = FrameworkInfo {
            name: Name::new(&format!("bench-{run}-{index}")).expect("a valid name"),
            role: Role::new("bench").expect("a valid role"),
            principal: Principal::new("bench").expect("a valid principal"),
            failover_timeout: Duration::from_secs(3600),
        };
        let config = SchedulerConfig::new(address.clone(), vec![master_address.clone()], info)
            .context("a scheduler's configuration")?;
        let network_config = credentials.network(address);
        let mut host = FrameworkHost {
            observations: observations_sender.clone(),
        };
        let (submit, mut events) = mpsc::channel(SCHEDULER_TASKS_MAX);
        submitters.push(submit);
        let mut stopped = stopped.clone();
        schedulers.spawn(async move {
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
    }
    drop(observations_sender);
    let deadline = Instant::now() + timeout;
    let mut subscribed = 0;
    while subscribed < frameworks {
        match tokio::time::timeout_at(deadline, observations.recv()).await {
            Ok(Some(Observation::Subscribed)) => subscribed += 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                let _ = stop.send(true);
                anyhow::bail!("only {subscribed} of {frameworks} frameworks subscribed");
            }
        }
    }

    let command = TaskCommand::new("true").expect("a short command");
    let master_cpu_before = ProcessCpu::of(master_pid)?;
    let bench_cpu_before = ProcessCpu::own()?;
    let accepted_before = OFFERS_ACCEPTED.load(Ordering::Relaxed);
    let declined_before = OFFERS_DECLINED.load(Ordering::Relaxed);
    let submitted = Instant::now();
    // Task `index` belongs to framework `index % frameworks`; each framework has at most
    // `window` tasks submitted and not yet RUNNING.
    let spec_of = |index: u64| {
        let id = TaskId::new(&format!("task-{run}-{index}")).expect("a valid id");
        TaskSpec {
            task: id.clone(),
            executor: ExecutorId::new(id.as_str()).expect("a valid id"),
            resources: task_resources.clone(),
            command: command.clone(),
        }
    };
    let window = if options.window == 0 {
        options.tasks
    } else {
        options.window
    };
    let mut next_index: Vec<u64> = (0..frameworks).collect();
    let mut framework_of: BTreeMap<TaskId, usize> = BTreeMap::new();
    for (framework, submit) in submitters.iter().enumerate() {
        for _ in 0..window {
            let index = next_index[framework];
            if index >= options.tasks {
                break;
            }
            next_index[framework] += frameworks;
            let spec = spec_of(index);
            framework_of.insert(spec.task.clone(), framework);
            submit
                .send(SchedulerEvent::Launch(spec))
                .await
                .context("a scheduler stopped")?;
        }
    }
    let mut accepted: BTreeMap<TaskId, Instant> = BTreeMap::new();
    let mut running: BTreeMap<TaskId, Instant> = BTreeMap::new();
    let mut finished: BTreeMap<TaskId, Instant> = BTreeMap::new();
    let mut other_states: BTreeMap<String, u64> = BTreeMap::new();
    let tasks = usize::try_from(options.tasks).expect("a task count fits in memory");
    while finished.len() + (other_states.values().sum::<u64>() as usize) < tasks {
        match tokio::time::timeout_at(deadline.max(submitted + timeout), observations.recv()).await
        {
            Ok(Some(Observation::Accepted(task, at))) => {
                accepted.entry(task).or_insert(at);
            }
            Ok(Some(Observation::State(task, TaskState::Running, at))) => {
                if let Some(&framework) = framework_of.get(&task) {
                    let index = next_index[framework];
                    if index < options.tasks {
                        next_index[framework] += frameworks;
                        let spec = spec_of(index);
                        framework_of.insert(spec.task.clone(), framework);
                        submitters[framework]
                            .send(SchedulerEvent::Launch(spec))
                            .await
                            .context("a scheduler stopped")?;
                    }
                }
                running.entry(task).or_insert(at);
            }
            Ok(Some(Observation::State(task, TaskState::Finished, at))) => {
                finished.entry(task).or_insert(at);
            }
            Ok(Some(Observation::State(_, state, _))) => {
                *other_states.entry(format!("{state}")).or_default() += 1;
            }
            Ok(Some(Observation::Subscribed)) => {}
            Ok(None) | Err(_) => {
                let _ = stop.send(true);
                anyhow::bail!(
                    "run {run}: after {:.1} s, {} tasks accepted, {} running, {} finished \
                     of {tasks} (other states: {other_states:?})",
                    submitted.elapsed().as_secs_f64(),
                    accepted.len(),
                    running.len(),
                    finished.len()
                );
            }
        }
    }
    let master_cpu_after = ProcessCpu::of(master_pid)?;
    let bench_cpu_after = ProcessCpu::own()?;
    let master_cpu = master_cpu_after.since(master_cpu_before);
    let bench_cpu = bench_cpu_after.since(bench_cpu_before);
    let master_waited = master_cpu_after.waited_since(master_cpu_before);
    let bench_waited = bench_cpu_after.waited_since(bench_cpu_before);
    let offers_accepted = OFFERS_ACCEPTED.load(Ordering::Relaxed) - accepted_before;
    let offers_declined = OFFERS_DECLINED.load(Ordering::Relaxed) - declined_before;
    let _ = stop.send(true);
    while schedulers.join_next().await.is_some() {}
    anyhow::ensure!(
        other_states.is_empty(),
        "run {run}: states other than RUNNING and FINISHED: {other_states:?}"
    );
    let last_running = running.values().max().copied().unwrap_or(submitted);
    let last_finished = finished.values().max().copied().unwrap_or(submitted);
    let accept_to_running: Vec<Duration> = running
        .iter()
        .filter_map(|(task, at)| Some(at.duration_since(*accepted.get(task)?)))
        .collect();
    let submit_to_running: Vec<Duration> = running
        .values()
        .map(|at| at.duration_since(submitted))
        .collect();
    // Every launch of this run reached its agent before its RUNNING was heard.
    let mut launched_at: BTreeMap<TaskId, Instant> = BTreeMap::new();
    while let Ok((task, at)) = launched.try_recv() {
        launched_at.entry(task).or_insert(at);
    }
    let (accept_to_launch, launch_to_running): (Vec<Duration>, Vec<Duration>) = running
        .iter()
        .filter_map(|(task, at)| {
            let launch = *launched_at.get(task)?;
            let accept = *accepted.get(task)?;
            Some((launch.duration_since(accept), at.duration_since(launch)))
        })
        .unzip();
    let result = RunResult {
        wall_running: last_running.duration_since(submitted),
        wall_finished: last_finished.duration_since(submitted),
        accept_to_running: Summary::of(&accept_to_running).context("no task ran")?,
        accept_to_launch: Summary::of(&accept_to_launch).context("no launch was seen")?,
        launch_to_running: Summary::of(&launch_to_running).context("no launch was seen")?,
        submit_to_running: Summary::of(&submit_to_running).context("no task ran")?,
        master_cpu,
        bench_cpu,
        master_waited,
        bench_waited,
        offers_accepted,
        offers_declined,
    };
    println!(
        "  run {run}: {} tasks RUNNING in {:.3} s = {:.0} tasks/s (all FINISHED after {:.3} s); \
         accept -> RUNNING acknowledged: {} (accept -> launched at the agent: {}; launched -> \
         RUNNING acknowledged: {}); submit -> RUNNING: {}; CPU: master {:.2} s, \
         agents + frameworks {:.2} s; waiting for a CPU: master {:.2} s, agents + frameworks \
         {:.2} s; offers accepted {}, declined {}",
        running.len(),
        result.wall_running.as_secs_f64(),
        options.tasks as f64 / result.wall_running.as_secs_f64(),
        result.wall_finished.as_secs_f64(),
        result.accept_to_running,
        result.accept_to_launch,
        result.launch_to_running,
        result.submit_to_running,
        result.master_cpu.as_secs_f64(),
        result.bench_cpu.as_secs_f64(),
        result.master_waited.as_secs_f64(),
        result.bench_waited.as_secs_f64(),
        result.offers_accepted,
        result.offers_declined,
    );
    Ok(result)
}

fn summarize(options: &LaunchOptions, results: &[RunResult]) {
    let rates: Vec<f64> = results
        .iter()
        .map(|result| options.tasks as f64 / result.wall_running.as_secs_f64())
        .collect();
    let medians: Vec<f64> = results
        .iter()
        .map(|result| result.accept_to_running.median.as_secs_f64())
        .collect();
    let p99s: Vec<f64> = results
        .iter()
        .map(|result| result.accept_to_running.p99.as_secs_f64())
        .collect();
    // The median over runs of one figure of each run.
    let median_of = |figure: fn(&RunResult) -> Duration| {
        let figures: Vec<f64> = results
            .iter()
            .map(|result| figure(result).as_secs_f64())
            .collect();
        millis(Duration::from_secs_f64(median_f64(&figures).unwrap_or(0.0)))
    };
    let master_share: Vec<f64> = results
        .iter()
        .map(|result| result.master_cpu.as_secs_f64() / result.wall_running.as_secs_f64())
        .collect();
    let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rates.iter().copied().fold(0.0, f64::max);
    println!(
        "result: {} agents, {} tasks per run, {} runs: median {:.0} tasks/s (min {:.0}, max {:.0}); \
         accept -> RUNNING acknowledged: median of medians {}, median p99 {} (to the agent: \
         {} / {}; back: {} / {}); master CPU {:.2} cores busy (median)",
        options.agents,
        options.tasks,
        results.len(),
        median_f64(&rates).unwrap_or(0.0),
        min,
        max,
        millis(Duration::from_secs_f64(median_f64(&medians).unwrap_or(0.0))),
        millis(Duration::from_secs_f64(median_f64(&p99s).unwrap_or(0.0))),
        median_of(|result| result.accept_to_launch.median),
        median_of(|result| result.accept_to_launch.p99),
        median_of(|result| result.launch_to_running.median),
        median_of(|result| result.launch_to_running.p99),
        median_f64(&master_share).unwrap_or(0.0),
    );
}

/// Starts a lone `berth master` on a free loopback port; returns it once it accepts
/// connections.
pub(crate) async fn start_master(
    berth: &Path,
    work: &Path,
    secret_file: &Path,
) -> anyhow::Result<(tokio::process::Child, Address)> {
    let port = crate::free_port()?;
    let address = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(work.join("master.log")).context("the master's log")?;
    let child = tokio::process::Command::new(berth)
        .arg("master")
        .args(["--id", "1", "--masters", &format!("1={address}")])
        .arg("--data-dir")
        .arg(work.join("master"))
        .arg("--secret-file")
        .arg(secret_file)
        .args(["--cluster", "bench"])
        // Debug lines of the transport name each message dropped on a full queue;
        // `BERTH_BENCH_MASTER_LOG` replaces the filter (`info` adds the master's notes).
        .env(
            "RUST_LOG",
            std::env::var("BERTH_BENCH_MASTER_LOG")
                .unwrap_or_else(|_| "warn,berth_node::transport=debug".to_owned()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("the master's log")?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", berth.display()))?;
    crate::wait_for_port(&address, Duration::from_secs(10)).await?;
    Ok((child, Address::new(&address).expect("a valid address")))
}
